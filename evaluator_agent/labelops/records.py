"""What ``proctor labels draft`` reads: feedback records, stored investigations, postmortems.

An input file holds JSON lines, one record each (a file that is one JSON object, or one JSON
array of objects, is read as well). Each record says what it is by ``kind``:

- ``feedback`` (the default when ``kind`` is absent): an investigation's metadata (the monitor
  that paged, when, the services in scope, the agent's diagnosis and the tool queries it made),
  the user's ``verdict`` (right | wrong | partly | unsure), a free-text ``comment``, the
  ``correction`` (the corrected root cause) when the user gave one, the world snapshot hash and
  the provenance (source incident, reporter, time). Published as JSON Schema by
  ``proctor labels schema --feedback``.
- ``stored``: feedback on one of the proctor's own stored investigations: ``run_id``,
  ``label_id``, ``attempt`` of a results database (read through ``Store``), plus the verdict,
  comment, correction and provenance as above.
- ``postmortem``: a structured postmortem: ``title``, ``impact_window`` {start, end},
  ``root_cause`` {entity, mechanism, description, causal_chain}, ``contributing_factors``
  (strings), ``timeline`` [{at, event, kind: change | onset | detected | mitigated | resolved |
  other, entity}], and optionally ``services``, ``monitor``, ``world`` and ``provenance``. The
  page is the ``monitor`` (else the title) at the first ``detected`` entry (else the impact
  start); the onset is the first ``onset`` entry (else the impact start); the triggering change
  is the first ``change`` entry.

Records are other systems' data: every string and list is capped, unknown fields are refused
(a typo is an error, never a silently dropped field), and a bad record is reported by its line
and never stops the others.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from evaluator_agent.core.labels import Window
from evaluator_agent.core.vocab import MONITOR_TYPES

FEEDBACK_SCHEMA_VERSION = 1
MAX_LINE_BYTES = 1 << 20  # one record
MAX_RECORDS = 100_000  # one file
VERDICTS = ("right", "wrong", "partly", "unsure")

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Text = Annotated[str, StringConstraints(max_length=20_000)]
Short = Annotated[str, StringConstraints(max_length=2_000)]
Verdict = Literal["right", "wrong", "partly", "unsure"]


def _utc(v: datetime) -> datetime:
    return v.replace(tzinfo=UTC) if v.tzinfo is None else v


When = Annotated[datetime, AfterValidator(_utc)]  # a time without a zone is UTC


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _path_of(v: Any) -> Any:
    """A causal chain given as edges [{source, target}] becomes the path of entities."""
    if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
        path: list[Any] = []
        for e in v:
            src, dst = e.get("source"), e.get("target")
            if not path or path[-1] != src:
                path.append(src)
            path.append(dst)
        return path
    return v


class MonitorInfo(_In):
    id: int | None = Field(None, description="Monitor id in the snapshot, if known")
    name: Name = Field(description="Monitor name: the page's title")
    type: str | None = Field(None, description=f"Monitor type: {', '.join(MONITOR_TYPES)}")
    query: Short | None = None
    service: Name | None = Field(None, description="The alerting service, if the monitor names one")

    @field_validator("type")
    @classmethod
    def _type(cls, v: str | None) -> str | None:
        if v is not None and v not in MONITOR_TYPES:
            raise ValueError(f"unknown monitor type {v!r}; expected one of {', '.join(MONITOR_TYPES)}")
        return v


class AgentRootCause(_In):
    entity: Name
    mechanism: Name | None = Field(None, description="Mechanism as the agent named it (closed vocabulary, or free text)")
    confidence: float | None = Field(None, ge=0, le=1)


class AgentDiagnosis(_In):
    """The agent's conclusion, as its diagnosis reply had it (candidates ranked, most likely first)."""

    no_fault: bool = False
    root_causes: list[AgentRootCause] = Field(default_factory=list, max_length=20)
    mechanism: Name | None = Field(None, description="The mechanism overall, when not given per root cause")
    causal_chain: list[Name] = Field(default_factory=list, max_length=50,
                                     description="Entities from the root cause to the alerting symptom (edges are accepted too)")
    onset: When | None = None
    summary: Text = ""

    @field_validator("causal_chain", mode="before")
    @classmethod
    def _chain(cls, v: Any) -> Any:
        return _path_of(v)


class ToolQuery(_In):
    """One query the agent made: a tool of the catalog and its arguments."""

    tool: Name
    arguments: dict[str, Any] = Field(default_factory=dict)
    ok: bool | None = None
    result_excerpt: Short | None = Field(None, description="What the query returned (an excerpt), if kept")


class InvestigationInfo(_In):
    id: Name | None = Field(None, description="The agent's investigation id")
    agent: Name | None = Field(None, description="Which agent investigated (name, version)")
    monitor: MonitorInfo
    fired_at: When = Field(description="When the monitor fired (the page)")
    services: list[Name] = Field(default_factory=list, max_length=1000, description="Services in scope of the investigation")
    diagnosis: AgentDiagnosis | None = None
    tool_queries: list[ToolQuery] = Field(default_factory=list, max_length=500)


class ChangeInfo(_In):
    kind: Name = Field(description="deploy | config | flag | migration | infrastructure | external | none")
    entity: Name | None = None
    description: Short = ""
    at: When | None = None


class Correction(_In):
    """The root cause as the user corrected it. Fields left out are not corrected."""

    no_fault: bool = Field(False, description="True: nothing was broken (the page was benign)")
    entity: Name | None = None
    aliases: list[Name] = Field(default_factory=list, max_length=20)
    kind: Name = Field("service", description="service | host | cluster | zone | external | change")
    mechanism: Name | None = None
    causal_chain: list[Name] = Field(default_factory=list, max_length=50)
    onset: When | None = None
    triggering_change: ChangeInfo | None = None
    note: Short = ""

    @field_validator("causal_chain", mode="before")
    @classmethod
    def _chain(cls, v: Any) -> Any:
        return _path_of(v)


class WorldInfo(_In):
    snapshot: str | None = Field(None, description="sha256 content hash of the world snapshot (64 hex), once captured")
    incident_window: Window | None = None
    baseline_window: Window | None = None

    @field_validator("snapshot")
    @classmethod
    def _hash(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[0-9a-f]{64}", v):
            raise ValueError("snapshot must be a 64-char lowercase sha256 hex digest")
        return v


class SourceProvenance(_In):
    source_incident: Name | None = Field(None, description="Incident id in the source system (INC-123, a PagerDuty id ...)")
    reporter: Name | None = Field(None, description="Who gave the feedback or wrote the postmortem")
    reported_at: When | None = None
    system: Name | None = Field(None, description="Where it came from: slack, pagerduty, a postmortem tool ...")
    url: Short | None = None


class FeedbackRecord(_In):
    """A user's feedback on one investigation of an agent."""

    kind: Literal["feedback"] = "feedback"
    schema_version: Literal[1] = FEEDBACK_SCHEMA_VERSION
    id: Name | None = Field(None, description="Feedback id in the source system; the record's content hash otherwise")
    investigation: InvestigationInfo
    verdict: Verdict = Field(description="The user's verdict on the agent's diagnosis")
    comment: Text = Field("", description="Free text; kept as the candidate's claim for the validator to resolve")
    correction: Correction | None = None
    world: WorldInfo = Field(default_factory=WorldInfo)
    provenance: SourceProvenance = Field(default_factory=SourceProvenance)


class StoredFeedback(_In):
    """Feedback on one of the proctor's own stored investigations (a run of a results database)."""

    kind: Literal["stored"]
    schema_version: Literal[1] = FEEDBACK_SCHEMA_VERSION
    id: Name | None = None
    run_id: Name
    label_id: Name
    attempt: int = Field(1, ge=1)
    verdict: Verdict
    comment: Text = ""
    correction: Correction | None = None
    provenance: SourceProvenance = Field(default_factory=SourceProvenance)


class TimelineEntry(_In):
    at: When
    event: Short
    kind: Literal["change", "onset", "detected", "mitigated", "resolved", "other"] = "other"
    entity: Name | None = None


class PostmortemRootCause(_In):
    entity: Name
    aliases: list[Name] = Field(default_factory=list, max_length=20)
    kind: Name = "service"
    mechanism: Name | None = None
    description: Text = ""
    causal_chain: list[Name] = Field(default_factory=list, max_length=50)

    @field_validator("causal_chain", mode="before")
    @classmethod
    def _chain(cls, v: Any) -> Any:
        return _path_of(v)


class Postmortem(_In):
    """A structured postmortem (see the module docstring for how it becomes a candidate)."""

    kind: Literal["postmortem"]
    schema_version: Literal[1] = FEEDBACK_SCHEMA_VERSION
    id: Name | None = None
    title: Name
    impact_window: Window
    root_cause: PostmortemRootCause
    contributing_factors: list[Short] = Field(default_factory=list, max_length=100)
    timeline: list[TimelineEntry] = Field(default_factory=list, max_length=500)
    services: list[Name] = Field(default_factory=list, max_length=1000)
    monitor: MonitorInfo | None = None
    world: WorldInfo = Field(default_factory=WorldInfo)
    provenance: SourceProvenance = Field(default_factory=SourceProvenance)


InputRecord = FeedbackRecord | StoredFeedback | Postmortem
_KINDS: dict[str, type[BaseModel]] = {"feedback": FeedbackRecord, "stored": StoredFeedback, "postmortem": Postmortem}


def feedback_json_schema() -> dict[str, Any]:
    """JSON Schema of one input record (any of the three kinds)."""
    schema = TypeAdapter(InputRecord).json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "proctor feedback record"
    schema["description"] = (
        "One line of a `proctor labels draft` input file. kind: feedback (default), stored (feedback on a stored "
        f"investigation of the proctor) or postmortem. Schema version {FEEDBACK_SCHEMA_VERSION}."
    )
    return schema


class RecordError(ValueError):
    """One record that cannot be used; ``where`` is its line (or item) in the input."""

    def __init__(self, where: str, message: str):
        super().__init__(f"{where}: {message}")
        self.where, self.message = where, message


def parse_record(obj: Any) -> InputRecord:
    """One decoded JSON value as an input record; ValueError with a readable message otherwise."""
    if not isinstance(obj, dict):
        raise ValueError(f"a record is a JSON object, not {type(obj).__name__}")
    kind = obj.get("kind", "feedback")
    model = _KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise ValueError(f"unknown kind {str(kind)[:40]!r}; expected one of {', '.join(_KINDS)}")
    try:
        return model.model_validate(obj)  # type: ignore[return-value]
    except ValidationError as e:
        raise ValueError(validation_message(e)) from None


def validation_message(e: ValidationError, limit: int = 8) -> str:
    """A pydantic error as short lines ``path: message`` (never the offending input)."""
    parts = []
    for err in e.errors()[:limit]:
        loc = ".".join(str(x) for x in err["loc"]) or "(record)"
        parts.append(f"{loc}: {err['msg']}")
    more = len(e.errors()) - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def read_records(path: Path) -> list[tuple[str, InputRecord | RecordError]]:
    """Every record of an input file with where it was: ``("line 3", record)`` or the error of
    that line. A file that is one JSON object or array is read whole (``item N``)."""
    raw = path.read_bytes()
    text = raw.decode("utf-8", errors="replace")
    stripped = text.lstrip()
    if stripped[:1] in ("[", "{"):
        try:
            whole = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            whole = None
        if isinstance(whole, list):
            return [(f"item {i}", _parsed(f"item {i}", v)) for i, v in enumerate(whole[:MAX_RECORDS], 1)]
        if isinstance(whole, dict) and "\n" in text.strip():  # a pretty-printed single record
            return [("item 1", _parsed("item 1", whole))]
    out: list[tuple[str, InputRecord | RecordError]] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"line {n}"
        if len(out) >= MAX_RECORDS:
            out.append((where, RecordError(where, f"more than {MAX_RECORDS} records; the rest were not read")))
            break
        if len(line.encode("utf-8", errors="replace")) > MAX_LINE_BYTES:
            out.append((where, RecordError(where, f"record longer than {MAX_LINE_BYTES} bytes")))
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            out.append((where, RecordError(where, f"not JSON: {e.msg} at column {e.colno}")))
            continue
        except RecursionError:
            out.append((where, RecordError(where, "not JSON: nested too deeply")))
            continue
        out.append((where, _parsed(where, obj)))
    return out


def _parsed(where: str, obj: Any) -> InputRecord | RecordError:
    try:
        return parse_record(obj)
    except ValueError as e:
        return RecordError(where, str(e))
    except RecursionError:
        return RecordError(where, "nested too deeply")


def canonical(record: BaseModel) -> str:
    """The record as canonical JSON (sorted keys): what its content hash is of."""
    return json.dumps(record.model_dump(mode="json", exclude_none=True), sort_keys=True, separators=(",", ":"))
