"""Datadog observability: LLM Observability spans and evaluations, custom metrics (DESIGN.md section 8).

One :class:`Observer` per process, from :func:`get` (created lazily by :func:`from_env`):

* no ``DD_API_KEY`` and no dry run: :class:`Observer`, a no-op; neither ddtrace nor
  datadog_api_client is imported, nothing is sent.
* ``DD_API_KEY`` set: :class:`DatadogObserver`. ddtrace LLM Observability (agentless,
  ``integrations_enabled=False``) gets a workflow span per run (session id = run id), an agent
  span per investigation (input: briefing, output: diagnosis), a tool span per tool call, a
  task span for scoring; each investigation's scores are submitted as evaluations joined to
  its agent span (``proctor_score``, ``proctor_passed``, ``proctor_subscore_<name>``:
  evaluation labels may not contain a dot). Metrics ``proctor.*`` go through
  datadog-api-client (v2 series), buffered and flushed by a daemon thread (periodically and
  at run end), with short timeouts and bounded retries. A run waits for its final flush at
  most ``PROCTOR_DATADOG_FLUSH_TIMEOUT`` seconds (default 2): an intake that fails or hangs is
  logged and never fails or holds up an evaluation.
* dry run (``--datadog-dry-run FILE``): :class:`DryRunObserver` appends every payload that
  would be sent (spans, evaluations, metric payloads) to FILE as JSON lines.

Metric tags are low-cardinality only (env, service, target, target_version, model, labelset,
segment, difficulty_tier, ...). Run, label and investigation ids go on spans only.

Disclosure (disclosure.py): when the run's manifest says ``"disclosure": "scores"`` (the
server's default, and always for a private label set) the scoring span carries no explanation
and investigation spans no truth taxonomy (mechanism, problem category, technologies, family); the
segment stays as a low-cardinality tag.

Every method here swallows its own errors: observability must never break an evaluation.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

from evaluator_agent.core.vocab import INFRA_ERROR_KINDS

log = logging.getLogger(__name__)

ENV_API_URL = "PROCTOR_DATADOG_API_URL"
ENV_FLUSH_TIMEOUT = "PROCTOR_DATADOG_FLUSH_TIMEOUT"
ENV_FLUSH_INTERVAL = "PROCTOR_DATADOG_FLUSH_INTERVAL"
DEFAULT_SERVICE = "incident-proctor"
MAX_TEXT = 20_000  # characters of span input/output kept
TOOL_RESULT_CHARS = 1_000  # characters of a tool result kept on its span
MAX_SERIES_PER_PAYLOAD = 500
MAX_BUFFERED_POINTS = 100_000


# --------------------------------------------------------------------------- settings


def _float_env(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


@dataclass
class Settings:
    api_key: str | None = None
    app_key: str | None = None
    site: str = "datadoghq.com"
    env: str | None = None
    service: str = DEFAULT_SERVICE
    api_url: str | None = None
    dry_run: str | None = None
    flush_timeout: float = 2.0
    flush_interval: float = 10.0
    request_timeout: tuple[float, float] = (2.0, 3.0)  # connect, read
    max_attempts: int = 3
    backoff_s: float = 0.25

    @classmethod
    def from_env(cls, dry_run: str | None = None) -> Settings:
        e = os.environ
        return cls(
            api_key=e.get("DD_API_KEY") or None, app_key=e.get("DD_APP_KEY") or None,
            site=e.get("DD_SITE") or "datadoghq.com", env=e.get("DD_ENV") or None,
            service=e.get("DD_SERVICE") or DEFAULT_SERVICE, api_url=(e.get(ENV_API_URL) or "").rstrip("/") or None,
            dry_run=dry_run, flush_timeout=_float_env(ENV_FLUSH_TIMEOUT, 2.0),
            flush_interval=max(0.05, _float_env(ENV_FLUSH_INTERVAL, 10.0)),
        )

    @property
    def api_base(self) -> str:
        """Base URL of the REST API (metrics, dashboards, monitors)."""
        return self.api_url or f"https://api.{self.site}"

    def base_tags(self) -> list[str]:
        tags = [f"service:{tag_value(self.service)}"]
        if self.env:
            tags.append(f"env:{tag_value(self.env)}")
        return tags


_TAG_BAD = re.compile(r"[^a-z0-9_\-./]+")


def tag_value(v: Any) -> str:
    """A Datadog-safe tag value: lower case, no spaces or odd characters, at most 100 chars."""
    s = _TAG_BAD.sub("_", str(v).strip().lower()).strip("_")
    return (s or "none")[:100]


def datadog_configuration(settings: Settings) -> Any:
    """A datadog_api_client Configuration for these settings (imports the client)."""
    from datadog_api_client import Configuration

    cfg = Configuration(host=settings.api_base, request_timeout=settings.request_timeout)
    if settings.api_key:
        cfg.api_key["apiKeyAuth"] = settings.api_key
    if settings.app_key:
        cfg.api_key["appKeyAuth"] = settings.app_key
    return cfg


# --------------------------------------------------------------------------- process-wide observer

_dry_run_path: str | None = None
_observer: Observer | None = None
_lock = threading.Lock()


def configure(*, dry_run: str | None = None) -> None:
    """Called by the CLI before any work: remember options; the observer is made lazily by :func:`get`."""
    global _dry_run_path
    _dry_run_path = dry_run
    reset()


def get() -> Observer:
    """The process's observer (created on first use from the environment)."""
    global _observer
    obs = _observer
    if obs is None:
        with _lock:
            if _observer is None:
                _observer = from_env(dry_run=_dry_run_path)
            obs = _observer
    return obs


def reset() -> None:
    """Close the current observer (flushing briefly) and forget it; the next :func:`get` rebuilds."""
    global _observer
    with _lock:
        obs, _observer = _observer, None
    if obs is not None:
        obs.close()


def from_env(dry_run: str | None = None) -> Observer:
    settings = Settings.from_env(dry_run)
    try:
        if settings.dry_run:
            return DryRunObserver(settings)
        if settings.api_key:
            return DatadogObserver(settings)
    except Exception:  # noqa: BLE001 - without observability the proctor still works
        log.warning("Datadog observability disabled: setup failed", exc_info=True)
    return Observer()


def shutdown(timeout: float | None = None) -> None:
    """End of process (the CLI calls it): flush what is buffered, waiting at most about
    ``timeout`` seconds (default PROCTOR_DATADOG_FLUSH_TIMEOUT), so an intake that hangs
    cannot hold up the exit either."""
    global _observer
    with _lock:
        obs, _observer = _observer, None
    if obs is not None:
        obs.shutdown(timeout)


async def aclose() -> None:
    """Flush (bounded) at server shutdown."""
    obs = _observer
    if obs is not None:
        await obs.aflush()


# --------------------------------------------------------------------------- no-op observer


class _NoopRun:
    def done(self, result: dict[str, Any], store: Any = None) -> None:
        return None


class _NoopInvestigation:
    def briefing(self, briefing: Any) -> None:
        return None

    @contextmanager
    def scoring(self) -> Iterator[None]:
        yield None

    def finish(self) -> None:
        return None


class Observer:
    """The no-op observer: every hook exists, none does anything."""

    enabled = False

    @asynccontextmanager
    async def run(self, run_id: str, manifest: dict[str, Any], label_meta: dict[str, Any] | None = None) -> Any:
        yield _NoopRun()

    def investigation(self, label: Any, attempt: int, target_info: Any, res: Any) -> Any:
        return _NoopInvestigation()

    def tool_call(self, record: Any) -> None:
        return None

    @contextmanager
    def llm(self, model_name: str, provider: str = "", name: str = "llm", input_messages: Any = None) -> Iterator[Any]:
        """Wrap an LLM call the proctor makes (e.g. a judge); ``annotate(output=..., metrics=...)`` on what it yields."""
        yield _NoopLlm()

    async def aflush(self, timeout: float | None = None) -> None:
        return None

    def close(self, timeout: float | None = None) -> None:
        return None

    def shutdown(self, timeout: float | None = None) -> None:
        return None


class _NoopLlm:
    def annotate(self, **_: Any) -> None:
        return None


# --------------------------------------------------------------------------- metrics buffer + flusher


@dataclass
class Point:
    metric: str
    value: float
    tags: tuple[str, ...]
    kind: str = "gauge"  # gauge | count
    ts: int = field(default_factory=lambda: int(time.time()))
    unit: str | None = None


def series_payload(points: list[Point]) -> Any:
    """A v2 MetricPayload (datadog_api_client model) of these points, one series per metric+tags."""
    from datadog_api_client.v2.model.metric_intake_type import MetricIntakeType
    from datadog_api_client.v2.model.metric_payload import MetricPayload
    from datadog_api_client.v2.model.metric_point import MetricPoint
    from datadog_api_client.v2.model.metric_series import MetricSeries

    grouped: dict[tuple[str, str, tuple[str, ...], str | None], list[Point]] = {}
    for p in points:
        grouped.setdefault((p.metric, p.kind, tuple(sorted(set(p.tags))), p.unit), []).append(p)
    series = []
    for (metric, kind, tags, unit), pts in grouped.items():
        pts.sort(key=lambda p: p.ts)
        kw: dict[str, Any] = {"unit": unit} if unit else {}
        series.append(MetricSeries(
            metric=metric, type=MetricIntakeType.COUNT if kind == "count" else MetricIntakeType.GAUGE,
            points=[MetricPoint(timestamp=p.ts, value=float(p.value)) for p in pts], tags=list(tags), **kw,
        ))
    return MetricPayload(series=series)


class Flusher:
    """Buffers metric points; a daemon thread sends them every ``interval`` seconds and on request.

    ``send(points)`` is called in the thread, in batches; it is retried ``max_attempts`` times
    with exponential backoff; a batch that still fails is logged and dropped. ``after`` (e.g.
    LLMObs.flush) runs after each flush.
    """

    def __init__(self, send: Callable[[list[Point]], None], settings: Settings, after: Callable[[], None] | None = None):
        self._send, self._after, self.s = send, after, settings
        self._buf: list[Point] = []
        self._cv = threading.Condition()
        self._requested = self._completed = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self.dropped = 0
        self.failures = 0

    def add(self, points: list[Point]) -> None:
        with self._cv:
            room = MAX_BUFFERED_POINTS - len(self._buf)
            if room < len(points):
                self.dropped += len(points) - max(0, room)
                points = points[: max(0, room)]
            self._buf.extend(points)
            self._ensure_thread()

    def _ensure_thread(self) -> None:
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(target=self._loop, name="proctor-datadog-flush", daemon=True)
            self._thread.start()

    def request(self) -> int:
        with self._cv:
            self._requested += 1
            self._ensure_thread()
            self._cv.notify_all()
            return self._requested

    def done(self, target: int) -> bool:
        with self._cv:
            return self._completed >= target or self._thread is None

    def flush(self, timeout: float) -> bool:
        """Ask for a flush and wait for it at most ``timeout`` seconds (blocking)."""
        target = self.request()
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._completed < target and self._thread is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
        return True

    async def aflush(self, timeout: float) -> bool:
        """Same, without blocking the event loop (polls; never uses the default executor)."""
        target = self.request()
        deadline = time.monotonic() + timeout
        while not self.done(target):
            if time.monotonic() >= deadline:
                log.warning("Datadog flush still running after %.1fs; continuing without waiting", timeout)
                return False
            await asyncio.sleep(0.02)
        return True

    def close(self, timeout: float) -> None:
        if self._thread is not None:
            self.flush(timeout)
        with self._cv:
            self._closed = True
            self._cv.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cv:
                if self._requested == self._completed and not self._closed:
                    self._cv.wait(self.s.flush_interval)
                if self._closed:
                    self._thread = None
                    self._cv.notify_all()
                    return
                target = self._requested
                batch, self._buf = self._buf, []
            self._send_all(batch)
            if self._after is not None:
                try:
                    self._after()
                except Exception:  # noqa: BLE001
                    log.warning("Datadog: flushing LLM Observability failed", exc_info=True)
            with self._cv:
                self._completed = max(self._completed, target)
                self._cv.notify_all()

    def _send_all(self, points: list[Point]) -> None:
        if not points:
            return
        # Batch by series count: group first so one metric's points stay together.
        keys: dict[tuple[Any, ...], list[Point]] = {}
        for p in points:
            keys.setdefault((p.metric, p.kind, p.tags), []).append(p)
        groups = list(keys.values())
        for i in range(0, len(groups), MAX_SERIES_PER_PAYLOAD):
            batch = [p for g in groups[i : i + MAX_SERIES_PER_PAYLOAD] for p in g]
            self._send_with_retry(batch)

    def _send_with_retry(self, batch: list[Point]) -> None:
        for attempt in range(1, self.s.max_attempts + 1):
            try:
                self._send(batch)
                return
            except Exception as e:  # noqa: BLE001 - an outage is logged, never raised
                status = getattr(e, "status", None)
                retryable = status is None or status in (408, 429) or status >= 500
                if attempt >= self.s.max_attempts or not retryable:
                    self.failures += 1
                    log.warning("Datadog: dropped %d metric point(s) after %d attempt(s): %s",
                                len(batch), attempt, str(e).splitlines()[0][:200] if str(e) else type(e).__name__)
                    return
                time.sleep(self.s.backoff_s * 2 ** (attempt - 1))


# --------------------------------------------------------------------------- span backends


class _Spans:
    """What an active observer needs from a span system; implemented by LLMObs and by the dry run."""

    def start(self, kind: str, name: str, session_id: str | None = None) -> Any: ...
    def annotate(self, span: Any, **kw: Any) -> None: ...
    def finish(self, span: Any, error: str | None = None, duration_s: float | None = None) -> None: ...
    def evaluate(self, span: Any, label: str, metric_type: str, value: Any, tags: dict[str, str]) -> None: ...
    def export(self, span: Any) -> Any: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...
    def shutdown(self, timeout: float) -> None: ...


class _LLMObsSpans(_Spans):
    def __init__(self, settings: Settings):
        # Agentless LLM Observability without a local agent: do not also ship APM traces
        # to a non-existent agent, unless the user configured one.
        if not any(os.environ.get(k) for k in ("DD_TRACE_AGENT_URL", "DD_AGENT_HOST")):
            os.environ.setdefault("DD_APM_TRACING_ENABLED", "false")
        # ddtrace's LLMObs writers wait 5 s per attempt (3 attempts), and their threads are
        # joined at exit: a hanging intake would hold a CLI run's exit for ~17 s. 2 s is plenty.
        os.environ.setdefault("_DD_LLMOBS_WRITER_TIMEOUT", "2")
        from ddtrace.llmobs import LLMObs

        self.LLMObs = LLMObs
        if not LLMObs.enabled:
            # integrations_enabled=False: with integrations on, a later `import google.adk...`
            # breaks (ADK 2.x lazy submodules; STACK.md). We trace our own calls by hand.
            LLMObs.enable(
                agentless_enabled=True, integrations_enabled=False, api_key=settings.api_key, site=settings.site,
                env=settings.env, service=settings.service,
                agent_service=os.environ.get("DD_LLMOBS_ML_APP") or settings.service,
            )
            self.owner = True
        else:
            self.owner = False

    def start(self, kind: str, name: str, session_id: str | None = None) -> Any:
        return getattr(self.LLMObs, kind)(name=name, session_id=session_id)

    def annotate(self, span: Any, **kw: Any) -> None:
        self.LLMObs.annotate(span=span, **{k: v for k, v in kw.items() if v is not None})

    def finish(self, span: Any, error: str | None = None, duration_s: float | None = None) -> None:
        if duration_s is not None:
            span.start_ns = time.time_ns() - int(duration_s * 1e9)
        if error:
            span.error = 1
            span.set_tag("error.message", error[:1000])
        span.finish()

    def export(self, span: Any) -> Any:
        return self.LLMObs.export_span(span)

    def evaluate(self, span: Any, label: str, metric_type: str, value: Any, tags: dict[str, str]) -> None:
        self.LLMObs.submit_evaluation(span=span, label=label, metric_type=metric_type, value=value, tags=tags)

    def flush(self) -> None:
        self.LLMObs.flush()

    def close(self) -> None:
        # LLMObs stays enabled for the life of the process: re-enabling it later flushes the
        # tracer's queue synchronously (blocking on the network), and its own atexit hook
        # flushes what is left at exit.
        return None

    def shutdown(self, timeout: float) -> None:
        """Send pending spans and evaluations, waiting at most ``timeout``; if the intake does not
        answer by then, drop them and keep ddtrace's exit hooks from blocking on it again."""
        inst = getattr(self.LLMObs, "_instance", None)
        writers = [w for w in (getattr(inst, "_llmobs_span_writer", None), getattr(inst, "_llmobs_eval_metric_writer", None)) if w]

        def work() -> None:
            for w in writers:
                try:
                    w.periodic()
                except Exception:  # noqa: BLE001
                    log.debug("LLMObs writer flush failed", exc_info=True)

        t = threading.Thread(target=work, name="proctor-llmobs-flush", daemon=True)
        t.start()
        t.join(max(0.0, timeout))
        if t.is_alive():
            log.warning("Datadog LLM Observability intake did not answer within %.1fs; unsent spans dropped", timeout)
            try:
                from ddtrace.internal import atexit as dd_atexit

                dd_atexit.unregister(self.LLMObs.disable)
                for w in writers:
                    dd_atexit.unregister(w.on_shutdown)
                    with w._lock:  # what is still buffered would be retried at exit
                        w._buffer.clear()
            except Exception:  # noqa: BLE001
                log.debug("could not unregister ddtrace exit hooks", exc_info=True)


_dry_parent: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("proctor_dry_span", default=None)


class _DrySpans(_Spans):
    """Spans as JSON lines: the same tree LLM Observability would get, parents by span id."""

    def __init__(self, write: Callable[[dict[str, Any]], None]):
        self.write = write

    def start(self, kind: str, name: str, session_id: str | None = None) -> Any:
        parent = _dry_parent.get()
        span = {
            "kind": kind, "name": name, "span_id": uuid.uuid4().hex[:16],
            "parent_id": parent["span_id"] if parent else None,
            "trace_id": parent["trace_id"] if parent else uuid.uuid4().hex,
            "session_id": session_id or (parent or {}).get("session_id"), "start_ns": time.time_ns(),
            "input": None, "output": None, "metadata": {}, "metrics": {}, "tags": {},
        }
        span["_token"] = _dry_parent.set(span)
        return span

    def annotate(self, span: Any, **kw: Any) -> None:
        for key, dest in (("input_data", "input"), ("output_data", "output")):
            if kw.get(key) is not None:
                span[dest] = kw[key]
        for key in ("metadata", "metrics", "tags"):
            if kw.get(key):
                span[key].update(kw[key])

    def finish(self, span: Any, error: str | None = None, duration_s: float | None = None) -> None:
        token = span.pop("_token", None)
        if token is not None:
            try:
                _dry_parent.reset(token)
            except ValueError:  # finished in another context
                _dry_parent.set(None)
        now = time.time_ns()
        if duration_s is not None:
            span["start_ns"] = now - int(duration_s * 1e9)
        span["duration_ns"] = now - span["start_ns"]
        span["status"] = "error" if error else "ok"
        if error:
            span["error"] = error[:1000]
        self.write({"type": "llmobs_span", "endpoint": "/api/v2/llmobs", "span": span})

    def export(self, span: Any) -> Any:
        return {"span_id": span["span_id"], "trace_id": span["trace_id"]}

    def evaluate(self, span: Any, label: str, metric_type: str, value: Any, tags: dict[str, str]) -> None:
        self.write({"type": "llmobs_evaluation", "endpoint": "/api/intake/llm-obs/v2/eval-metric",
                    "evaluation": {"join_on": {"span": span}, "label": label, "metric_type": metric_type,
                                   "value": value, "tags": tags}})


# --------------------------------------------------------------------------- active observer


_run_ctx: contextvars.ContextVar[_RunTrace | None] = contextvars.ContextVar("proctor_run", default=None)


def _text(v: Any, limit: int = MAX_TEXT) -> str:
    s = v if isinstance(v, str) else json.dumps(v, default=str, separators=(",", ":"))
    return s if len(s) <= limit else s[:limit] + f"... [{len(s) - limit} more chars]"


def _model_of(card: dict[str, Any] | None) -> str | None:
    card = card or {}
    for src in (card, card.get("metadata") or {}, card.get("provider") or {}):
        if isinstance(src, dict) and isinstance(src.get("model"), str) and src["model"]:
            return src["model"]
    return None


class _RunTrace:
    def __init__(self, obs: _Active, run_id: str, manifest: dict[str, Any], label_meta: dict[str, Any] | None):
        self.obs, self.run_id = obs, run_id
        self.label_meta = label_meta or {}
        # Withhold what is derived from the ground truth (disclosure.py): the explanation, truth taxonomy.
        self.redact = manifest.get("disclosure", "full") != "full"
        target = manifest.get("target") or {}
        labelset = (manifest.get("labelset") or {}).get("name", "")
        self.target = {"name": target.get("name", ""), "version": target.get("version", ""), "url": target.get("url", "")}
        self.labelset = labelset
        tags = [*obs.s.base_tags(), f"target:{tag_value(self.target['name'])}",
                f"target_version:{tag_value(self.target['version'])}", f"labelset:{tag_value(labelset)}"]
        model = _model_of(target.get("card"))
        if model:
            tags.append(f"model:{tag_value(model)}")
        self.tags = tuple(tags)
        self.t0 = time.time()
        self.span: Any = None
        self.result: dict[str, Any] | None = None
        self.store: Any = None

    def done(self, result: dict[str, Any], store: Any = None) -> None:
        self.result, self.store = result, store


class _InvestigationTrace:
    def __init__(self, obs: _Active, label: Any, attempt: int, target_info: Any, res: Any):
        self.obs, self.label, self.attempt, self.res = obs, label, attempt, res
        self.run = _run_ctx.get()
        self.finished = False
        self.redact = bool(self.run and self.run.redact)
        tx = label.taxonomy
        self.segment, self.tier = tx.segment, label.difficulty.tier
        self.taxonomy = {"segment": tx.segment, "mechanism": tx.mechanism, "problem_category": tx.problem_category,
                         "monitor_type": tx.monitor_type, "technologies": list(tx.technologies),
                         "difficulty_tier": label.difficulty.tier, "family": getattr(label, "family", None)}
        if self.redact:
            for k in ("mechanism", "problem_category", "technologies", "family"):  # a family is named after its mechanism
                self.taxonomy.pop(k)
        self.target = {"name": getattr(target_info, "name", ""), "version": getattr(target_info, "version", ""),
                       "url": getattr(target_info, "url", "")}
        self.span = obs.spans.start("agent", "investigation", session_id=self.run.run_id if self.run else None)
        obs.spans.annotate(self.span, tags={
            "run_id": self.run.run_id if self.run else "", "label_id": label.id, "investigation_id": res.investigation_id,
            "attempt": str(attempt), "target": self.target["name"], "target_version": self.target["version"],
            "segment": self.segment, "difficulty_tier": self.tier,
        })

    def briefing(self, briefing: Any) -> None:
        try:
            from evaluator_agent.core.protocol import briefing_text

            self.obs.spans.annotate(self.span, input_data=_text(briefing_text(briefing)))
        except Exception:  # noqa: BLE001
            self.obs._warn("briefing")

    @contextmanager
    def scoring(self) -> Iterator[None]:
        span = None
        try:
            span = self.obs.spans.start("task", "score")
        except Exception:  # noqa: BLE001
            self.obs._warn("scoring span")
        try:
            yield None
        finally:
            if span is not None:
                try:
                    r = self.res
                    self.obs.spans.annotate(span, input_data=_text(r.diagnosis) if r.diagnosis else "(no diagnosis)",
                                            output_data=_text({"score": r.score, "passed": r.passed, "subscores": r.subscores}),
                                            metadata={"explanation": "withheld by the disclosure policy" if self.redact
                                                      else _text(r.explanation, 2000)})
                    self.obs.spans.finish(span)
                except Exception:  # noqa: BLE001
                    self.obs._warn("scoring span")

    def finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        try:
            self.obs._finish_investigation(self)
        except Exception:  # noqa: BLE001
            self.obs._warn("investigation span")


class _Active(Observer):
    """Shared logic of the Datadog and dry-run observers: span tree, evaluations, metric points."""

    enabled = True

    def __init__(self, settings: Settings, spans: _Spans, flusher: Flusher):
        self.s, self.spans, self.flusher = settings, spans, flusher
        self._warned: set[str] = set()

    def _warn(self, what: str) -> None:
        if what not in self._warned:
            self._warned.add(what)
            log.warning("Datadog observability: %s failed (further failures of this kind not logged)", what, exc_info=True)

    # -- run
    @asynccontextmanager
    async def run(self, run_id: str, manifest: dict[str, Any], label_meta: dict[str, Any] | None = None) -> Any:
        trace: _RunTrace | None = None
        token = None
        try:
            trace = _RunTrace(self, run_id, manifest, label_meta)
            trace.span = self.spans.start("workflow", "evaluation_run", session_id=run_id)
            self.spans.annotate(trace.span, input_data=_text({"target": trace.target, "labelset": manifest.get("labelset"),
                                                              "options": manifest.get("options"),
                                                              "labels": len(manifest.get("label_ids") or [])}),
                                tags={"run_id": run_id, "target": trace.target["name"], "target_version": trace.target["version"],
                                      "labelset": trace.labelset})
            token = _run_ctx.set(trace)
        except Exception:  # noqa: BLE001
            self._warn("run span")
        failed: BaseException | None = None
        try:
            yield trace if trace is not None else _NoopRun()
        except BaseException as e:
            failed = e
            raise
        finally:
            if token is not None:
                _run_ctx.reset(token)
            if trace is not None:
                self._finish_run(trace, failed)
            if failed is None:
                await self.aflush()
            else:
                self.flusher.request()

    def _finish_run(self, trace: _RunTrace, failed: BaseException | None) -> None:
        try:
            if trace.result is not None:
                summ = trace.result.get("summary") or {}
                keep = {k: summ.get(k) for k in ("n", "scored", "passed", "pass_rate", "mean_score", "errors", "pass_at_1",
                                                 "pass_hat_k", "pass_at_k", "end_reasons", "ac_at_1", "ac_at_3",
                                                 "mechanism_accuracy")}
                self.spans.annotate(trace.span, output_data=_text({"status": trace.result.get("status"), "summary": keep}))
                self.flusher.add(self._run_points(trace))
            if trace.span is not None:
                self.spans.finish(trace.span, error=f"{type(failed).__name__}: {failed}" if failed else None)
        except Exception:  # noqa: BLE001
            self._warn("run metrics")

    def _run_points(self, trace: _RunTrace) -> list[Point]:
        result = trace.result or {}
        summ = result.get("summary") or {}
        base, now = trace.tags, int(time.time())
        pts: list[Point] = []

        def g(metric: str, value: Any, extra: tuple[str, ...] = (), kind: str = "gauge", unit: str | None = None) -> None:
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                pts.append(Point(metric, float(value), base + extra, kind, now, unit))

        scored = summ.get("scored", 0)
        if scored:
            g("proctor.run.pass_rate", summ.get("pass_rate"))
            g("proctor.run.mean_score", summ.get("mean_score"))
            g("proctor.run.pass_at_1", (summ.get("pass_at_1") or {}).get("value"))
            for k in ("ac_at_1", "ac_at_3", "mechanism_accuracy"):
                g(f"proctor.run.{k}", summ.get(k))
            for k, v in (summ.get("pass_hat_k") or {}).items():
                g("proctor.run.pass_hat_k", v, (f"k:{tag_value(k)}",))
            for k, v in (summ.get("pass_at_k") or {}).items():
                g("proctor.run.pass_at_k", v, (f"k:{tag_value(k)}",))
            breakdown = summ.get("breakdown") or {}
            for seg, b in (breakdown.get("segment") or {}).items():
                g("proctor.run.pass_rate.by_segment", b.get("pass_rate"), (f"segment:{tag_value(seg)}",))
            for tier, b in (breakdown.get("tier") or {}).items():
                g("proctor.run.pass_rate.by_tier", b.get("pass_rate"), (f"difficulty_tier:{tag_value(tier)}",))
        n = summ.get("n", 0)
        g("proctor.run.investigations", n, kind="count")
        g("proctor.run.errors", summ.get("errors", 0), kind="count")
        g("proctor.run.error_rate", (summ.get("errors", 0) / n) if n else 0.0)
        g("proctor.run.degraded", 1.0 if summ.get("degraded") else 0.0)  # too many infra errors to judge
        g("proctor.run.duration", time.time() - trace.t0, unit="second")
        g("proctor.run.count", 1, (f"status:{tag_value(result.get('status', 'unknown'))}",), kind="count")
        pts.extend(self._difficulty_points(trace, base, now))
        return pts

    def _difficulty_points(self, trace: _RunTrace, base: tuple[str, ...], now: int) -> list[Point]:
        """Label difficulty from the stored IRT fit (table label_difficulty), aggregated so that
        no label id becomes a tag: mean/max per tier, and a histogram by half-logit bucket."""
        store = trace.store
        if store is None or not hasattr(store, "get_difficulty"):
            return []
        ids = {i["label_id"] for i in (trace.result or {}).get("investigations", [])}
        rows = [r for r in store.get_difficulty() if r.get("label_id") in ids and r.get("difficulty") is not None]
        if not rows:
            return []
        tags = tuple(t for t in base if not t.startswith(("target:", "target_version:", "model:")))
        by_tier: dict[str, list[float]] = {}
        buckets: dict[tuple[str, str], int] = {}
        for r in rows:
            tier = (trace.label_meta.get(r["label_id"]) or {}).get("tier") or r.get("tier") or "unknown"
            d = float(r["difficulty"])
            by_tier.setdefault(tier, []).append(d)
            lo = math.floor(d * 2) / 2
            buckets[(tier, f"{lo:+.1f}")] = buckets.get((tier, f"{lo:+.1f}"), 0) + 1
        pts: list[Point] = []
        for tier, ds in by_tier.items():
            t = (f"difficulty_tier:{tag_value(tier)}",)
            pts.append(Point("proctor.label.difficulty.mean", sum(ds) / len(ds), tags + t, "gauge", now))
            pts.append(Point("proctor.label.difficulty.max", max(ds), tags + t, "gauge", now))
            pts.append(Point("proctor.label.difficulty.min", min(ds), tags + t, "gauge", now))
            pts.append(Point("proctor.label.difficulty.labels", len(ds), tags + t, "gauge", now))
        for (tier, lo), cnt in buckets.items():
            pts.append(Point("proctor.label.difficulty.histogram", cnt,
                             tags + (f"difficulty_tier:{tag_value(tier)}", f"difficulty_bucket:{tag_value(lo)}"), "gauge", now))
        return pts

    # -- investigation
    def investigation(self, label: Any, attempt: int, target_info: Any, res: Any) -> Any:
        try:
            return _InvestigationTrace(self, label, attempt, target_info, res)
        except Exception:  # noqa: BLE001
            self._warn("investigation span")
            return _NoopInvestigation()

    def _finish_investigation(self, t: _InvestigationTrace) -> None:
        r = t.res
        meta = {**t.taxonomy, "attempt": t.attempt, "target": t.target, "end_reason": r.end_reason,
                "error_kind": r.error_kind, "labelset": t.run.labelset if t.run else None}
        metrics = {"turns": r.turns, "tool_calls": r.tool_calls, "invalid_calls": r.invalid_calls,
                   "red_herrings_chased": r.red_herrings_chased, "score": r.score, "duration_s": r.duration_s}
        tokens = r.tokens or {}
        for src, dst in (("input_tokens", "input_tokens"), ("output_tokens", "output_tokens"), ("total_tokens", "total_tokens")):
            if src in tokens:
                metrics[dst] = tokens[src]
        self.spans.annotate(t.span, output_data=_text(r.diagnosis) if r.diagnosis is not None else f"(no diagnosis: {r.end_reason})",
                            metadata=meta, metrics=metrics,
                            tags={"end_reason": r.end_reason, "passed": str(bool(r.passed)).lower()})
        exported = self.spans.export(t.span)
        self.spans.finish(t.span, error=r.error if r.error_kind in INFRA_ERROR_KINDS else None)
        if r.error_kind not in INFRA_ERROR_KINDS:
            etags = {"target": t.target["name"], "segment": t.segment, "difficulty_tier": t.tier}
            self.spans.evaluate(exported, "proctor_score", "score", float(r.score), etags)
            self.spans.evaluate(exported, "proctor_passed", "categorical", "pass" if r.passed else "fail", etags)
            for name, v in sorted((r.subscores or {}).items()):
                self.spans.evaluate(exported, f"proctor_subscore_{re.sub(r'[^a-z0-9_]', '_', name.lower())}", "score", float(v), etags)
        self.flusher.add(self._investigation_points(t))

    def _investigation_points(self, t: _InvestigationTrace) -> list[Point]:
        r = t.res
        base = t.run.tags if t.run else tuple(self.s.base_tags())
        if not t.run:
            base = base + (f"target:{tag_value(t.target['name'])}", f"target_version:{tag_value(t.target['version'])}")
        tags = base + (f"segment:{tag_value(t.segment)}", f"difficulty_tier:{tag_value(t.tier)}")
        ts = int(r.finished_at or time.time())
        pts = [
            Point("proctor.investigation.count", 1, tags + (f"end_reason:{tag_value(r.end_reason)}",
                                                           f"passed:{str(bool(r.passed)).lower()}",
                                                           f"error_kind:{tag_value(r.error_kind or 'none')}"), "count", ts),
            Point("proctor.investigation.duration", r.duration_s, tags, "gauge", ts, "second"),
            Point("proctor.investigation.turns", r.turns, tags, "gauge", ts),
            Point("proctor.investigation.tool_calls", r.tool_calls, tags, "gauge", ts),
            Point("proctor.investigation.invalid_calls", r.invalid_calls, tags, "gauge", ts),
            Point("proctor.investigation.errors", 1 if r.error_kind else 0,
                  tags + (f"error_kind:{tag_value(r.error_kind or 'none')}",), "count", ts),
        ]
        if r.error_kind not in INFRA_ERROR_KINDS:
            pts.append(Point("proctor.investigation.score", r.score, tags, "gauge", ts))
            pts.append(Point("proctor.investigation.passed", 1.0 if r.passed else 0.0, tags, "gauge", ts))
            for name, v in sorted((r.subscores or {}).items()):
                pts.append(Point("proctor.investigation.subscore", v, tags + (f"subscore:{tag_value(name)}",), "gauge", ts))
        tokens = r.tokens or {}
        if "total_tokens" in tokens or "input_tokens" in tokens:
            total = tokens.get("total_tokens") or tokens.get("input_tokens", 0) + tokens.get("output_tokens", 0)
            pts.append(Point("proctor.investigation.tokens", total, tags, "gauge", ts))
        if "cost_usd" in tokens:
            pts.append(Point("proctor.investigation.cost_usd", tokens["cost_usd"], tags, "gauge", ts, "dollar"))
        return pts

    # -- tools and llm calls
    def tool_call(self, record: Any) -> None:
        try:
            span = self.spans.start("tool", record.name)
            self.spans.annotate(span, input_data=_text(record.arguments, 4000),
                                output_data=_text(record.result_preview or (record.error or ""), TOOL_RESULT_CHARS),
                                metadata={"ok": record.ok, "error": record.error, "result_size": record.result_size,
                                          "turn": record.turn, "call_id": record.call_id})
            self.spans.finish(span, error=None, duration_s=max(0.0, record.duration_ms / 1000.0))
        except Exception:  # noqa: BLE001
            self._warn("tool span")

    @contextmanager
    def llm(self, model_name: str, provider: str = "", name: str = "llm", input_messages: Any = None) -> Iterator[Any]:
        obs = self
        span = None
        try:
            if isinstance(self.spans, _LLMObsSpans):
                span = self.spans.LLMObs.llm(model_name=model_name, model_provider=provider or None, name=name)
            else:
                span = self.spans.start("llm", name)
                self.spans.annotate(span, metadata={"model_name": model_name, "model_provider": provider})
            if input_messages is not None:
                self.spans.annotate(span, input_data=input_messages)
        except Exception:  # noqa: BLE001
            self._warn("llm span")

        class _Handle:
            def annotate(self, **kw: Any) -> None:
                if span is not None:
                    try:
                        obs.spans.annotate(span, **{("output_data" if k == "output" else k): v for k, v in kw.items()})
                    except Exception:  # noqa: BLE001
                        obs._warn("llm annotate")

        err: str | None = None
        try:
            yield _Handle()
        except BaseException as e:
            err = f"{type(e).__name__}: {e}"
            raise
        finally:
            if span is not None:
                try:
                    self.spans.finish(span, error=err)
                except Exception:  # noqa: BLE001
                    self._warn("llm span")

    # -- flushing
    async def aflush(self, timeout: float | None = None) -> None:
        try:
            await self.flusher.aflush(self.s.flush_timeout if timeout is None else timeout)
        except Exception:  # noqa: BLE001
            self._warn("flush")

    def close(self, timeout: float | None = None) -> None:
        try:
            self.flusher.close(self.s.flush_timeout if timeout is None else timeout)
            self.spans.close()
        except Exception:  # noqa: BLE001
            self._warn("close")

    def shutdown(self, timeout: float | None = None) -> None:
        budget = self.s.flush_timeout if timeout is None else timeout
        deadline = time.monotonic() + budget
        try:
            self.flusher.close(budget)
            self.spans.shutdown(max(0.2, deadline - time.monotonic()))
        except Exception:  # noqa: BLE001
            self._warn("shutdown")


class DatadogObserver(_Active):
    """Sends to Datadog: LLM Observability through ddtrace, metrics through datadog-api-client."""

    def __init__(self, settings: Settings):
        spans = _LLMObsSpans(settings)
        self._cfg = datadog_configuration(settings)
        self._api: Any = None
        super().__init__(settings, spans, Flusher(self._send, settings, after=spans.flush))

    def _send(self, points: list[Point]) -> None:
        if self._api is None:
            from datadog_api_client import ApiClient
            from datadog_api_client.v2.api.metrics_api import MetricsApi

            self._api = MetricsApi(ApiClient(self._cfg))
        self._api.submit_metrics(body=series_payload(points))


class DryRunObserver(_Active):
    """Writes every payload that would be sent to a file, one JSON object per line."""

    def __init__(self, settings: Settings):
        self.path = settings.dry_run or "datadog-dry-run.jsonl"
        self._wlock = threading.Lock()
        super().__init__(settings, _DrySpans(self._write), Flusher(self._send, settings))

    def _write(self, obj: dict[str, Any]) -> None:
        line = json.dumps(obj, default=str, separators=(",", ":"))
        with self._wlock, open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def _send(self, points: list[Point]) -> None:
        self._write({"type": "metrics", "endpoint": f"{self.s.api_base}/api/v2/series",
                     "payload": series_payload(points).to_dict()})
