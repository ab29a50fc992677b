"""Labels from real incidents: feedback records -> candidate labels -> the human review queue
-> a label set.

- ``records``: the input records (feedback, stored investigations, postmortems) and their schema;
- ``sources``: each input kind brought to one shape (stored ones read through ``Store``);
- ``drafting``: ground truth, flags and the ``Label``-shaped draft of a source;
- ``candidate``: the candidate and the validator's seam (:class:`Validation`);
- ``patching``: reviewer edits checked against the ``Label`` model;
- ``queue``: the SQLite review queue (list, show, edit, accept, reject, stats, history);
- ``promote``: accepted labels into a label set, versioned;
- ``intake``: a whole input file into the queue;
- ``validate`` and ``grounding``: the deterministic validator (the world read through the same tools an agent has).

Imports ``core``, ``telemetry`` and ``results`` only.
"""

from evaluator_agent.labelops.candidate import Candidate, Flag, Score, Validation, ValidationScores
from evaluator_agent.labelops.intake import DraftReport, draft_file
from evaluator_agent.labelops.patching import EditError
from evaluator_agent.labelops.promote import PromoteError, read_provenance
from evaluator_agent.labelops.queue import Queue, QueueError
from evaluator_agent.labelops.records import feedback_json_schema

__all__ = [
    "Candidate",
    "DraftReport",
    "EditError",
    "Flag",
    "PromoteError",
    "Queue",
    "QueueError",
    "Score",
    "Validation",
    "ValidationScores",
    "draft_file",
    "feedback_json_schema",
    "read_provenance",
]
