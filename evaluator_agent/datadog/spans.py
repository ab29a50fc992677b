"""Span backends of LLM Observability: :class:`LLMObsSpans` sends spans and evaluations
through ddtrace (agentless, ``integrations_enabled=False``); :class:`DrySpans` writes the
same span tree as JSON lines (parents by span id) for ``--datadog-dry-run``.
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from evaluator_agent.datadog.config import Settings

log = logging.getLogger(__name__)


class Spans:
    """What an active observer needs from a span system; implemented by LLMObs and by the dry run."""

    def start(self, kind: str, name: str, session_id: str | None = None) -> Any: ...
    def annotate(self, span: Any, **kw: Any) -> None: ...
    def finish(self, span: Any, error: str | None = None, duration_s: float | None = None) -> None: ...
    def evaluate(self, span: Any, label: str, metric_type: str, value: Any, tags: dict[str, str]) -> None: ...
    def export(self, span: Any) -> Any: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...
    def shutdown(self, timeout: float) -> None: ...


class LLMObsSpans(Spans):
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


class DrySpans(Spans):
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
