"""The capture directory: each fetched piece on disk as it arrives, so a capture can resume.

Layout::

    DIR/manifest.json          the capture's request (options), redaction rules, format version;
                               once the scope is decided, ``scope``: {"services": [...], "reasons":
                               {service: ["seed" | "depends:<hops>" | "monitor" | "team" | "platform"
                               | "similar-name", ...]}, "kept": {reason: n}, "cut": {reason: n}}
    DIR/pieces/<kind>/<name>.json   one fetched piece: {"key", "data", "meta"}
    DIR/result.json            written at the end: snapshot hash, counts, notes, timings

A piece is one answer of Datadog (one page, one query chunk) already converted to world
records and REDACTED: nothing unredacted ever reaches the disk. ``data`` is the records,
``meta`` holds only what the capture itself needs to go on (cursors, flags, the group names
of multi-alert monitors, an error note; all but the opaque cursors redacted as well).
Files are written atomically (a temporary file renamed into place), so an interrupted capture
leaves whole pieces only. :meth:`CaptureStore.fetch` returns the stored piece when it exists
(resume) and otherwise calls Datadog; the capture procedure is deterministic given its pieces,
so a resumed capture ends with the snapshot an uninterrupted one would have written.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evaluator_agent.capture.redact import Redactor

__all__ = ["FORMAT", "CaptureInterrupted", "CaptureStore", "StoreError"]

FORMAT = 1
_SLUG = re.compile(r"[^A-Za-z0-9_.\-]+")


class StoreError(ValueError):
    """A capture directory that cannot be used (missing, another capture's, corrupt)."""


class CaptureInterrupted(RuntimeError):
    """The capture stopped before its end (``max_steps`` reached); resume it with its directory."""


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False))
    tmp.replace(path)


class CaptureStore:
    """One capture directory. ``max_steps``: fetch at most this many pieces from Datadog in
    this process, then raise :class:`CaptureInterrupted` (for tests and for chunked captures)."""

    def __init__(self, root: Path, redactor: Redactor, max_steps: int | None = None,
                 on_piece: Callable[[str, bool], None] | None = None):
        self.root = Path(root)
        self.redactor = redactor
        self.max_steps = max_steps
        self.on_piece = on_piece
        self.fetched = 0
        self.resumed = 0
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ manifest

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def start(self, request: dict[str, Any]) -> None:
        """A new capture: the directory must be empty or hold this very request."""
        if self.manifest_path.exists():
            old = self.read_manifest()
            if old.get("request") != request:
                raise StoreError(f"{self.root} holds another capture; resume it with --resume {self.root} or pick a new directory")
            return
        if self.root.exists() and any(self.root.iterdir()):
            raise StoreError(f"{self.root} is not empty and holds no capture manifest")
        _write_json(self.manifest_path, {"format": FORMAT, "request": request,
                                         "redaction": self.redactor.describe()})

    def read_manifest(self) -> dict[str, Any]:
        try:
            data = json.loads(self.manifest_path.read_text())
        except FileNotFoundError:
            raise StoreError(f"{self.root} holds no capture (no manifest.json)") from None
        except ValueError as e:
            raise StoreError(f"{self.manifest_path} is not valid JSON: {e}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("request"), dict):
            raise StoreError(f"{self.manifest_path} is not a capture manifest of format {FORMAT}")
        return data

    def record_scope(self, scope: dict[str, Any]) -> None:
        """The manifest's ``scope``: the scoped services and why each is in (``scope.py``).
        Rewritten by a resumed capture with the same content (it is decided from stored pieces)."""
        manifest = self.read_manifest()
        if manifest.get("scope") != scope:
            _write_json(self.manifest_path, {**manifest, "scope": scope})

    def write_result(self, result: dict[str, Any]) -> None:
        _write_json(self.root / "result.json", result)

    # ------------------------------------------------------------------ pieces

    def path_of(self, kind: str, name: str) -> Path:
        slug = _SLUG.sub("_", name)[:80].strip("_") or "piece"
        digest = hashlib.sha256(f"{kind}\x1f{name}".encode()).hexdigest()[:12]
        return self.root / "pieces" / _SLUG.sub("_", kind) / f"{slug}-{digest}.json"

    def fetch(self, kind: str, name: str, get: Callable[[], tuple[Any, dict[str, Any]]]) -> tuple[Any, dict[str, Any]]:
        """The piece ``kind/name``: from disk when stored, else ``get()`` -> (data, meta),
        with ``data`` redacted before it is written and returned."""
        path = self.path_of(kind, name)
        try:
            piece = json.loads(path.read_text())
        except FileNotFoundError:
            piece = None
        except ValueError:  # a torn file cannot happen (atomic writes), but be safe: fetch again
            piece = None
        if piece is not None and piece.get("key") == f"{kind}/{name}":
            with self._lock:
                self.resumed += 1
            if self.on_piece is not None:
                self.on_piece(kind, True)
            return piece["data"], piece.get("meta") or {}
        with self._lock:
            if self.max_steps is not None and self.fetched >= self.max_steps:
                raise CaptureInterrupted(f"stopped after {self.fetched} fetched pieces (max_steps); resume with {self.root}")
            self.fetched += 1
        data, meta = get()
        data = self.redactor.apply(data)
        # meta: cursors stay as Datadog sent them (opaque), anything else is redacted too
        meta = {k: (v if k == "next" else self.redactor.apply(v)) for k, v in meta.items()}
        _write_json(path, {"key": f"{kind}/{name}", "data": data, "meta": meta})
        if self.on_piece is not None:
            self.on_piece(kind, False)
        return data, meta
