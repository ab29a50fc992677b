"""The observers: :class:`Observer`, the no-op one (every hook exists, none does anything),
and the active ones built on a span backend (spans.py) and a metric flusher (metrics.py):
:class:`DatadogObserver` sends, :class:`DryRunObserver` writes what would be sent to a file.

An active observer opens a workflow span per run (session id = run id), an agent span per
investigation, a tool span per tool call and a task span for scoring; it submits each
investigation's scores as evaluations joined to its agent span and hands the run's and
investigations' metric points (run_metrics.py) to the flusher. Every hook swallows its own
errors: observability must never break an evaluation.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from evaluator_agent.core.vocab import INFRA_ERROR_KINDS
from evaluator_agent.datadog.config import Settings, datadog_configuration, tag_value
from evaluator_agent.datadog.metrics import Flusher, Point, series_payload
from evaluator_agent.datadog.run_metrics import investigation_points, run_points
from evaluator_agent.datadog.spans import DrySpans, LLMObsSpans, Spans

log = logging.getLogger(__name__)

MAX_TEXT = 20_000  # characters of span input/output kept
TOOL_RESULT_CHARS = 1_000  # characters of a tool result kept on its span


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


_run_ctx: contextvars.ContextVar[RunTrace | None] = contextvars.ContextVar("proctor_run", default=None)


def _text(v: Any, limit: int = MAX_TEXT) -> str:
    s = v if isinstance(v, str) else json.dumps(v, default=str, separators=(",", ":"))
    return s if len(s) <= limit else s[:limit] + f"... [{len(s) - limit} more chars]"


def _model_of(card: dict[str, Any] | None) -> str | None:
    card = card or {}
    for src in (card, card.get("metadata") or {}, card.get("provider") or {}):
        if isinstance(src, dict) and isinstance(src.get("model"), str) and src["model"]:
            return src["model"]
    return None


class RunTrace:
    def __init__(self, obs: _Active, run_id: str, manifest: dict[str, Any], label_meta: dict[str, Any] | None):
        self.obs, self.run_id = obs, run_id
        self.label_meta = label_meta if label_meta is not None else {}  # the run may fill it as labels are drawn
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


class InvestigationTrace:
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

    def __init__(self, settings: Settings, spans: Spans, flusher: Flusher):
        self.s, self.spans, self.flusher = settings, spans, flusher
        self._warned: set[str] = set()

    def _warn(self, what: str) -> None:
        if what not in self._warned:
            self._warned.add(what)
            log.warning("Datadog observability: %s failed (further failures of this kind not logged)", what, exc_info=True)

    # -- run
    @asynccontextmanager
    async def run(self, run_id: str, manifest: dict[str, Any], label_meta: dict[str, Any] | None = None) -> Any:
        trace: RunTrace | None = None
        token = None
        try:
            trace = RunTrace(self, run_id, manifest, label_meta)
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

    def _finish_run(self, trace: RunTrace, failed: BaseException | None) -> None:
        try:
            if trace.result is not None:
                summ = trace.result.get("summary") or {}
                keep = {k: summ.get(k) for k in ("n", "scored", "passed", "pass_rate", "mean_score", "errors", "pass_at_1",
                                                 "pass_hat_k", "pass_at_k", "end_reasons", "ac_at_1", "ac_at_3",
                                                 "mechanism_accuracy")}
                self.spans.annotate(trace.span, output_data=_text({"status": trace.result.get("status"), "summary": keep}))
                self.flusher.add(run_points(trace))
            if trace.span is not None:
                self.spans.finish(trace.span, error=f"{type(failed).__name__}: {failed}" if failed else None)
        except Exception:  # noqa: BLE001
            self._warn("run metrics")

    # -- investigation
    def investigation(self, label: Any, attempt: int, target_info: Any, res: Any) -> Any:
        try:
            return InvestigationTrace(self, label, attempt, target_info, res)
        except Exception:  # noqa: BLE001
            self._warn("investigation span")
            return _NoopInvestigation()

    def _finish_investigation(self, t: InvestigationTrace) -> None:
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
        self.flusher.add(investigation_points(t, self.s))

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
            if isinstance(self.spans, LLMObsSpans):
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
        spans = LLMObsSpans(settings)
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
        super().__init__(settings, DrySpans(self._write), Flusher(self._send, settings))

    def _write(self, obj: dict[str, Any]) -> None:
        line = json.dumps(obj, default=str, separators=(",", ":"))
        with self._wlock, open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def _send(self, points: list[Point]) -> None:
        self._write({"type": "metrics", "endpoint": f"{self.s.api_base}/api/v2/series",
                     "payload": series_payload(points).to_dict()})
