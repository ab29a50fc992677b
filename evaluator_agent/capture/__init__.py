"""``proctor capture``: the world of a real incident, from a Datadog organisation, as a snapshot.

Modules: ``options`` (what is asked), ``client`` (the Datadog API through datadog-api-client,
with rate limits and retries), ``steps`` (the capture procedure: seed, scope, data),
``scope`` (which services, in which order of precedence, and why each), ``convert`` (Datadog
JSON -> world records), ``redact`` (rules applied before anything is written), ``store`` (the
resumable capture directory), ``build`` (snapshot and draft label), ``progress`` (progress
lines on stderr), ``api`` (:func:`capture`, :func:`resume`).
"""

from evaluator_agent.capture.api import CaptureResult, capture, resume
from evaluator_agent.capture.client import DatadogError, DatadogReader
from evaluator_agent.capture.options import CaptureOptions, OptionsError
from evaluator_agent.capture.redact import RedactionError, Redactor
from evaluator_agent.capture.store import CaptureInterrupted, StoreError

__all__ = [
    "CaptureInterrupted",
    "CaptureOptions",
    "CaptureResult",
    "DatadogError",
    "DatadogReader",
    "OptionsError",
    "RedactionError",
    "Redactor",
    "StoreError",
    "capture",
    "resume",
]
