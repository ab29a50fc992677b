"""Snapshots as lint reads them: each file read once, gunzipped, hash-checked and validated as a
``WorldSnapshot`` (the ``snapshot.*`` problems), through a small process-wide LRU; and
``World``, one loaded snapshot with the lookups the label checks need (entity names, signals,
keys, names that spell a mechanism, the toolbox, what listing calls show).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from evaluator_agent.core.vocab import MECHANISM_INFO
from evaluator_agent.lint.words import entity_re, name_spells, norm

# The "tool" of the listing every tag value of every metric series makes (what filtered
# list_metrics calls can show), in World.listing and the evidence.listing_satisfies message.
TAG_VALUES = "a filtered list_metrics (tag values)"


def iter_keys(obj: Any) -> Iterator[str]:
    """Every key of a JSON value, those of nested objects included."""
    stack = [obj]
    while stack:
        x = stack.pop()
        if isinstance(x, dict):
            for k, v in x.items():
                yield k
                if isinstance(v, (dict, list)):
                    stack.append(v)
        elif isinstance(x, list):
            stack.extend(v for v in x if isinstance(v, (dict, list)))


class World:
    """One loaded snapshot with the lookups the checks need (built lazily, once)."""

    def __init__(self, digest: str, data: dict[str, Any], raw: bytes):
        self.digest = digest
        self.data = data
        self.raw_lower = raw.decode("utf-8", "replace").lower()
        self.start = float(data["start"])
        self.end = float(data["end"])
        self.monitors = {m["id"]: m for m in data.get("monitors", [])}
        topo = data.get("topology") or {}
        self.services = {s["name"] for s in topo.get("services", [])}
        names: dict[str, str] = {}  # lower name -> kind of entity

        def add(n: str | None, kind: str) -> None:
            if n:
                names.setdefault(n.lower(), kind)

        for s in topo.get("services", []):
            add(s["name"], "service")
            for h in s.get("hosts", []):
                add(h, "host")
        for h in topo.get("hosts", []):
            add(h["name"], "host")
            add(h.get("zone"), "zone")
        for c in topo.get("clusters", []):
            add(c["name"], "cluster")
            for z in c.get("zones", []):
                add(z, "zone")
            add(c.get("region"), "region")
        for t in topo.get("teams", []):
            add(t["name"], "team")
        for s in topo.get("services", []):
            add(s.get("namespace"), "namespace")
            add(s.get("cluster"), "cluster")
        self.names = names
        self.norm_names = {norm(n): n for n in names}
        self._index: Any = None
        self._toolbox: Any = None
        self._signals: tuple[set[str], str] | None = None
        self._keys: set[str] | None = None
        self._spelled: list[tuple[str, str, str, str]] | None = None
        self._listing: list[tuple[str, Any]] | None = None

    def has_entity(self, name: str) -> bool:
        low = name.strip().lower()
        return low in self.names or norm(name) in self.norm_names

    def event_ids(self) -> set[str]:
        return {str(e["id"]).lower() for e in self.data.get("events", [])}

    def signals(self) -> tuple[set[str], str]:
        """(tag/service/host values seen in any signal, text of event and monitor wording)."""
        if self._signals is None:
            vals: set[str] = set()
            d = self.data
            for r in d.get("logs", []):
                vals.add(r["service"])
                if r.get("host"):
                    vals.add(r["host"])
            for s in d.get("spans", []):
                vals.add(s["service"])
                vals.update(v for v in (s.get("tags") or {}).values() if isinstance(v, str))
            for m in d.get("metrics", []):
                vals.update((m.get("tags") or {}).values())
            texts = []
            for e in d.get("events", []):
                vals.update((e.get("tags") or {}).values())
                texts.append(f"{e.get('title', '')}\n{e.get('text', '')}")
            for m in d.get("monitors", []):
                vals.update((m.get("tags") or {}).values())
                texts.append(f"{m.get('name', '')}\n{m.get('query', '')}\n{m.get('message', '')}")
            low = {v.lower() for v in vals if isinstance(v, str)}
            self._signals = (low | {norm(v) for v in low}, "\n".join(texts).lower())
        return self._signals

    def visible(self, entity: str) -> bool:
        vals, text = self.signals()
        if entity.lower() in vals or norm(entity) in vals:
            return True
        rx = entity_re([entity, norm(entity)])
        return bool(rx and rx.search(text))

    def keys(self) -> set[str]:
        """Every key a tool result can show from the data: tag keys, log attribute keys (nested)."""
        if self._keys is None:
            keys: set[str] = set()
            nested: list[Any] = []
            d = self.data
            for group, fld in (("metrics", "tags"), ("logs", "attrs"), ("spans", "tags"), ("events", "tags"),
                               ("monitors", "tags")):
                for r in d.get(group, []):
                    sub = r.get(fld)
                    if sub:
                        keys.update(sub)
                        if fld == "attrs":
                            nested.extend(v for v in sub.values() if isinstance(v, (dict, list)))
            keys.update(iter_keys(nested))
            self._keys = keys
        return self._keys

    def spelled_names(self) -> list[tuple[str, str, str, str]]:
        """(name, kind, mechanism, matched words) for entity names that spell a mechanism."""
        if self._spelled is None:
            self._spelled = [
                (name, kind, mech, hit)
                for name, kind in sorted(self.names.items())
                for mech in MECHANISM_INFO
                if (hit := name_spells(name, mech)) is not None
            ]
        return self._spelled

    def toolbox(self) -> Any:
        if self._toolbox is None:
            from evaluator_agent.telemetry.index import WorldIndex
            from evaluator_agent.telemetry.tools import Toolbox

            self._index = WorldIndex.from_dict(self.data)
            self._toolbox = Toolbox(self._index, now=self.end)
        return self._toolbox

    def listing(self) -> list[tuple[str, Any]]:
        """(tool, scoring's view of its results) for the listing calls: every page of
        list_services and list_metrics, the dependencies of every service, and every tag
        value of every metric series (what filtered list_metrics calls can show)."""
        if self._listing is None:
            from evaluator_agent.engine.scoring import Seen, ViewedResult

            tb = self.toolbox()
            out: list[tuple[str, Any]] = []
            for tool in ("list_services", "list_metrics"):
                pages: list[Any] = []
                args: dict[str, Any] = {"limit": 500}
                for _ in range(1000):
                    res = tb.call(tool, dict(args))
                    if not res.ok:
                        break
                    pages.append(res.content)
                    cursor = res.content.get("next_cursor") if isinstance(res.content, dict) else None
                    if not cursor:
                        break
                    args["cursor"] = cursor
                out.append((tool, pages))
            topo = self.data.get("topology") or {}
            out.append(("get_service_dependencies", topo.get("dependencies") or []))
            tag_values = sorted({f"{k}:{v}" for m in self.data.get("metrics", []) for k, v in (m.get("tags") or {}).items()})
            out.append((TAG_VALUES, tag_values))
            self._listing = [
                (tool, Seen(ViewedResult(tool=tool, arguments={}, ok=True,
                                          text=json.dumps(content, default=str, separators=(",", ":")))))
                for tool, content in out
            ]
        return self._listing

    def monitor_state(self, m: dict[str, Any]) -> str:
        """State at the world's end, the way get_monitors computes it."""
        from evaluator_agent.telemetry.world import monitor_state_at

        return monitor_state_at(m, self.end)[0]


_SHARED: dict[tuple[Any, ...], tuple[World | None, list[tuple[str, str]]]] = {}
_SHARED_CAPACITY = 6


class Snapshots:
    """Snapshots by hash, each read, verified and validated once per lint run."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._cache: dict[str, tuple[World | None, list[tuple[str, str]]]] = {}
        self.loaded: set[str] = set()

    def __len__(self) -> int:
        return len(self.loaded)

    def get(self, digest: str) -> tuple[World | None, list[tuple[str, str]]]:
        if digest not in self._cache:
            self._cache[digest] = self._load_shared(digest)
            self.loaded.add(digest)
        return self._cache[digest]

    def _load_shared(self, digest: str) -> tuple[World | None, list[tuple[str, str]]]:
        """Through a small process-wide LRU keyed by the file's identity (repeat lints, tests)."""
        path = self.directory / f"{digest}.json.gz"
        try:
            st = path.stat()
        except OSError:
            return self._load(digest)
        key = (digest, str(path.resolve()), st.st_ino, st.st_mtime_ns, st.st_size)
        hit = _SHARED.pop(key, None)
        if hit is None:
            hit = self._load(digest)
        _SHARED[key] = hit
        while len(_SHARED) > _SHARED_CAPACITY:
            _SHARED.pop(next(iter(_SHARED)))
        return hit

    def release(self, digest: str) -> None:
        """Forget a loaded world (a big dict and index); a later get loads it again."""
        self._cache.pop(digest, None)

    def _load(self, digest: str) -> tuple[World | None, list[tuple[str, str]]]:
        """The world of a snapshot with what is wrong with it; a hash mismatch is reported and
        the world still checked, anything worse leaves no world."""
        from evaluator_agent.telemetry.world import (
            SnapshotError,
            WorldSnapshot,
            parse_snapshot,
            read_snapshot_bytes,
        )

        short = digest[:12]
        try:
            raw = read_snapshot_bytes(digest, self.directory, verify=False)
        except SnapshotError as e:
            return None, [(f"snapshot.{e.code}", str(e))]
        problems: list[tuple[str, str]] = []
        actual = hashlib.sha256(raw).hexdigest()
        if actual != digest:
            problems.append(
                ("snapshot.hash", f"snapshot {short}… does not match its content hash (sha256 of its bytes is {actual[:12]}…)")
            )
        try:
            data = parse_snapshot(raw, digest)
            WorldSnapshot.model_validate(data)
        except SnapshotError as e:
            return None, problems + [("snapshot.schema", str(e))]
        except ValidationError as e:
            return None, problems + [("snapshot.schema", f"snapshot {short}… is not a valid WorldSnapshot: {short_validation(e)}")]
        return World(digest, data, raw), problems


def short_validation(e: ValidationError, limit: int = 5) -> str:
    """A pydantic error in one line: the count and the first ``limit`` locations and messages."""
    errs = e.errors()
    parts = []
    for err in errs[:limit]:
        loc = ".".join(str(x) for x in err.get("loc", ())) or "(root)"
        parts.append(f"{loc}: {err.get('msg', '')}")
    more = f" (+{len(errs) - limit} more)" if len(errs) > limit else ""
    return f"{len(errs)} validation error(s): " + "; ".join(parts) + more
