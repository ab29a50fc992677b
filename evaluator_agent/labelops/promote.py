"""Promotion of an accepted label into a label set under a labelsets root.

A set is created when missing (``labelset.json`` version 1). Otherwise the set must load
cleanly first (a promotion never lands in a broken set), the label is written as
``<label id>.json`` (atomically), its full provenance as ``provenance/<label id>.json`` (a
subfolder: ``load_labelset`` reads only the set's top-level ``*.json``), and the set's version in
``labelset.json`` goes up by one. The set's content hash (``LabelSet.content_hash``, which runs
record in their manifest with the version) changes with the new label file; it is returned and
kept in the queue's history.

One promotion at a time per set (an exclusive lock file ``.promote.lock`` in the set's folder).
A label already in the set with the same bytes is the end of an interrupted promotion: done, no
second copy and no version bump. With other bytes it is refused.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from evaluator_agent.core.labels import Label, LabelError, LabelSetInfo, dump_label, load_labelset
from evaluator_agent.labelops.candidate import Promotion

SET_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")  # as core.labels accepts
DEFAULT_DESCRIPTION = "Labels from real incidents, promoted from feedback by proctor labels review."


class PromoteError(ValueError):
    """A promotion that did not happen; the set is as it was."""


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    with open(folder / ".promote.lock", "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def next_version(version: str) -> str:
    """1 -> 2, 1.4 -> 1.5, v7 -> v8; a version without a trailing number gains ``.1``."""
    m = re.match(r"^(.*?)(\d+)$", version.strip())
    if not m:
        return f"{version.strip() or '0'}.1"
    return f"{m.group(1)}{int(m.group(2)) + 1}"


def _info_text(info: LabelSetInfo) -> str:
    return json.dumps(info.model_dump(exclude_defaults=False), indent=2) + "\n"


def promote(label: Label, provenance: dict[str, Any], set_name: str, root: Path, description: str | None = None) -> Promotion:
    """Write ``label`` into set ``set_name`` under ``root``; see the module docstring."""
    if not SET_NAME_RE.match(set_name):
        raise PromoteError(f"invalid label set name {set_name!r} (lowercase letters, digits, _ . -; at most 64)")
    folder = root / set_name
    folder.mkdir(parents=True, exist_ok=True)
    info_path = folder / "labelset.json"
    label_path = folder / f"{label.id}.json"
    text = dump_label(label)
    with _locked(folder):
        created = not info_path.is_file()
        if created:
            info = LabelSetInfo(name=set_name, description=description or DEFAULT_DESCRIPTION, version="1")
            old_info_text = None
        else:
            try:
                current = load_labelset(set_name, root) if any(p.name != "labelset.json" for p in folder.glob("*.json")) else None
                info = current.info if current else LabelSetInfo.model_validate_json(info_path.read_bytes())
            except (LabelError, ValueError) as e:
                raise PromoteError(f"label set {set_name!r} does not load; nothing was promoted: {e}") from None
            old_info_text = info_path.read_text()
        if label_path.is_file():
            if label_path.read_text() != text:
                raise PromoteError(f"label {label.id} is already in set {set_name!r} with other content")
            ls = load_labelset(set_name, root)  # an interrupted promotion: the label is there, done
            _write_provenance(folder, label.id, provenance)
            return Promotion(labelset=set_name, label_id=label.id, path=str(label_path), version=ls.info.version,
                             content_hash=ls.content_hash, created_set=False)
        new_info = info if created else info.model_copy(update={"version": next_version(info.version)})
        try:
            _write_atomic(label_path, text)
            _write_atomic(info_path, _info_text(new_info))
            ls = load_labelset(set_name, root)
            if ls.get(label.id) != label:
                raise PromoteError(f"label {label.id} does not read back as written")
        except (OSError, LabelError, PromoteError) as e:
            label_path.unlink(missing_ok=True)
            if old_info_text is not None:
                _write_atomic(info_path, old_info_text)
            elif created:
                info_path.unlink(missing_ok=True)
            raise PromoteError(f"promotion into {set_name!r} failed and was undone: {e}") from None
        _write_provenance(folder, label.id, provenance)
    return Promotion(labelset=set_name, label_id=label.id, path=str(label_path), version=ls.info.version,
                     content_hash=ls.content_hash, created_set=created)


def _write_provenance(folder: Path, label_id: str, provenance: dict[str, Any]) -> None:
    (folder / "provenance").mkdir(exist_ok=True)
    _write_atomic(folder / "provenance" / f"{label_id}.json", json.dumps(provenance, indent=2, default=str) + "\n")


def read_provenance(set_name: str, label_id: str, root: Path) -> dict[str, Any] | None:
    """The full provenance of a promoted label, or None."""
    p = root / set_name / "provenance" / f"{label_id}.json"
    return json.loads(p.read_text()) if p.is_file() else None
