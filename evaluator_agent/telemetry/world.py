"""World snapshots: what a target may see of one incident, immutable and content-hashed.

On disk a snapshot is ``environments/snapshots/<sha256>.json.gz``: gzip (mtime 0) of the
canonical JSON (sorted keys, compact separators, UTF-8) of a :class:`WorldSnapshot`. The
hash is the sha256 of the uncompressed canonical bytes, so the same world gives the same
name on every machine and a file whose bytes were altered no longer matches its name.

Timestamps are integer or float epoch seconds (UTC) throughout. Tags are flat string maps.

Format (schema_version 1)::

    {
      "schema_version": 1,
      "world_id": "w_...",               opaque
      "env": "prod",
      "start": 1700000000, "end": 1700010800,   data coverage
      "topology": {
        "services":     [{"name", "kind", "team", "platform", "language", "cluster",
                          "namespace", "tier", "hosts": [...], "description"}],
        "dependencies": [{"source", "target", "protocol"}],     source calls target
        "teams":        [{"name", "slack", "oncall"}],
        "clusters":     [{"name", "platform", "region", "zones": [...]}],
        "hosts":        [{"name", "cluster", "zone", "instance_type"}]
      },
      "metrics": [{"metric", "tags": {...}, "type": "gauge|count|rate",
                   "start", "interval", "values": [float|null, ...]}],
      "logs":    [{"ts", "service", "host", "status", "message", "attrs": {...}, "trace_id"}],
      "spans":   [{"trace_id", "span_id", "parent_id", "service", "name", "resource",
                   "start", "duration", "error", "tags": {...}}],
      "events":  [{"id", "ts", "source", "title", "text", "tags": {...}}],
      "monitors":[{"id", "name", "type", "query", "message", "tags": {...}, "state",
                   "transitions": [{"ts", "from", "to", "value"}]}]
    }
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from pathlib import Path
from typing import Any, Literal

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field

WORLD_SCHEMA_VERSION = 1


class _W(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Service(_W):
    name: str
    kind: Literal["service", "database", "cache", "queue", "external", "job", "infrastructure", "gateway"] = "service"
    team: str = ""
    platform: str = ""
    language: str = ""
    cluster: str = ""
    namespace: str = ""
    tier: int = 2
    hosts: list[str] = Field(default_factory=list)
    description: str = ""


class Dependency(_W):
    source: str
    target: str
    protocol: str = "http"


class Team(_W):
    name: str
    slack: str = ""
    oncall: str = ""


class Cluster(_W):
    name: str
    platform: str = "kubernetes"
    region: str = ""
    zones: list[str] = Field(default_factory=list)


class Host(_W):
    name: str
    cluster: str = ""
    zone: str = ""
    instance_type: str = ""


class Topology(_W):
    services: list[Service]
    dependencies: list[Dependency] = Field(default_factory=list)
    teams: list[Team] = Field(default_factory=list)
    clusters: list[Cluster] = Field(default_factory=list)
    hosts: list[Host] = Field(default_factory=list)


class MetricSeries(_W):
    metric: str
    tags: dict[str, str] = Field(default_factory=dict)
    type: Literal["gauge", "count", "rate"] = "gauge"
    start: int
    interval: int = Field(60, gt=0)
    values: list[float | None]


class LogRecord(_W):
    ts: float
    service: str
    host: str = ""
    status: Literal["debug", "info", "warn", "error", "critical"] = "info"
    message: str
    attrs: dict[str, Any] = Field(default_factory=dict)
    trace_id: str | None = None


class Span(_W):
    trace_id: str
    span_id: str
    parent_id: str | None = None
    service: str
    name: str
    resource: str
    start: float
    duration: float = Field(description="seconds")
    error: bool = False
    tags: dict[str, str] = Field(default_factory=dict)


class Event(_W):
    id: str
    ts: float
    source: str = Field(description="deploy | config | kubernetes | autoscaling | cron | feature_flag | terraform | database | ...")
    title: str
    text: str = ""
    tags: dict[str, str] = Field(default_factory=dict)


class MonitorTransition(_W):
    ts: float
    from_: str = Field(alias="from")
    to: str
    value: float | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Monitor(_W):
    id: int
    name: str
    type: str = "metric alert"
    query: str = ""
    message: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    state: Literal["OK", "Alert", "Warn", "No Data"] = "OK"
    transitions: list[MonitorTransition] = Field(default_factory=list)


class WorldSnapshot(_W):
    schema_version: int = WORLD_SCHEMA_VERSION
    world_id: str
    env: str = "prod"
    start: int
    end: int
    topology: Topology
    metrics: list[MetricSeries] = Field(default_factory=list)
    logs: list[LogRecord] = Field(default_factory=list)
    spans: list[Span] = Field(default_factory=list)
    events: list[Event] = Field(default_factory=list)
    monitors: list[Monitor] = Field(default_factory=list)


def monitor_state_at(m: dict[str, Any], ts: float) -> tuple[str, list[dict[str, Any]]]:
    """A monitor's state at ``ts`` and its transitions up to then, oldest first: the last
    transition's ``to``; before the first, its ``from``; without transitions, ``state``."""
    trans = sorted(m.get("transitions") or [], key=lambda t: t["ts"])
    past = [t for t in trans if t["ts"] <= ts]
    if past:
        return past[-1]["to"], past
    if trans:
        return trans[0]["from"], past
    return m.get("state", "OK"), past


class SnapshotError(ValueError):
    """A snapshot that is missing, corrupt, or does not match its hash. ``code`` says which:
    ``missing``, ``gzip``, ``hash``, ``json`` or ``schema``."""

    def __init__(self, message: str, code: str = "schema"):
        super().__init__(message)
        self.code = code


def canonical_bytes(world: WorldSnapshot | dict[str, Any]) -> bytes:
    data = world.model_dump(mode="json", by_alias=True) if isinstance(world, WorldSnapshot) else world
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def content_hash(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def write_snapshot(world: WorldSnapshot | dict[str, Any], directory: Path) -> str:
    """Write a snapshot under its content hash; returns the hash. Same world, same bytes."""
    raw = canonical_bytes(world)
    digest = content_hash(raw)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{digest}.json.gz"
    if not path.exists():
        buf = io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=9) as gz:
            gz.write(raw)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(buf.getvalue())
        tmp.replace(path)
    return digest


def read_snapshot_bytes(digest: str, directory: Path, verify: bool = True) -> bytes:
    path = directory / f"{digest}.json.gz"
    if not path.is_file():
        raise SnapshotError(f"snapshot {digest[:12]}… not found: {path}", "missing")
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as e:
        raise SnapshotError(f"snapshot {digest[:12]}… is not valid gzip: {e}", "gzip") from e
    if verify and content_hash(raw) != digest:
        raise SnapshotError(f"snapshot {digest[:12]}… does not match its content hash", "hash")
    return raw


def parse_snapshot(raw: bytes, digest: str) -> dict[str, Any]:
    """The dict of a snapshot's JSON bytes, of this schema version (no per-record validation)."""
    try:
        data = pydantic_core.from_json(raw)  # ~2x faster than json.loads on big snapshots
    except ValueError as e:
        raise SnapshotError(f"snapshot {digest[:12]}… is not valid JSON: {e}", "json") from e
    if not isinstance(data, dict) or data.get("schema_version") != WORLD_SCHEMA_VERSION:
        got = data.get("schema_version") if isinstance(data, dict) else type(data).__name__
        raise SnapshotError(f"snapshot {digest[:12]}… has unsupported schema_version {got!r}", "schema")
    return data


def load_snapshot_dict(digest: str, directory: Path, verify: bool = True) -> dict[str, Any]:
    """Raw dict form (fast path used by the tool index; no per-record validation)."""
    return parse_snapshot(read_snapshot_bytes(digest, directory, verify), digest)


def load_snapshot(digest: str, directory: Path, verify: bool = True) -> WorldSnapshot:
    """Fully validated model form (used by lint and the generator's tests)."""
    return WorldSnapshot.model_validate(load_snapshot_dict(digest, directory, verify))
