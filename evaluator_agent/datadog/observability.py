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

Where it lives: this module holds the process-wide observer (:func:`configure`, :func:`get`,
:func:`reset`, :func:`shutdown`, :func:`aclose`) and re-exports the rest: config.py (settings,
tag values, the API client configuration), observer.py (the observers and their span trees),
spans.py (the ddtrace and dry-run span backends), metrics.py (points, payloads, the flusher),
run_metrics.py (the metric points of a run and of an investigation).
"""

from __future__ import annotations

import logging
import threading

from evaluator_agent.datadog.config import Settings, datadog_configuration, tag_value
from evaluator_agent.datadog.observer import (
    TOOL_RESULT_CHARS,
    DatadogObserver,
    DryRunObserver,
    Observer,
)

# what callers and tests take from here (the CLI, the engine, the server, setup.py's old path)
__all__ = [
    "TOOL_RESULT_CHARS",
    "DatadogObserver",
    "DryRunObserver",
    "Observer",
    "Settings",
    "aclose",
    "configure",
    "datadog_configuration",
    "from_env",
    "get",
    "reset",
    "shutdown",
    "tag_value",
]

log = logging.getLogger(__name__)

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
