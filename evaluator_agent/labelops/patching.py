"""Reviewer edits of a draft: ``path=value`` assignments, JSON Patch (RFC 6902) or JSON Merge
Patch (RFC 7396), each checked against the ``Label`` model.

Paths are dotted, list items by index (``ground_truth.root_causes.0.entity``; ``-`` appends).
A value is read as JSON when it parses (``3``, ``true``, ``["a","b"]``, ``"text"``) and as a
plain string otherwise (``ground_truth.mechanism=cache_stampede``).

The rule: a draft may be incomplete while it waits (no snapshot yet, no onset), but an edit may
not make it worse. An edit is refused when, after it, the draft fails the ``Label`` model
anywhere under a path the edit touched (the value set is wrong: unknown field, bad type,
value out of the vocabulary), or in a new way elsewhere. Checks over a whole object that the edit
went into (the label's, the ground truth's: "a fault label needs an onset") run only once that
object's fields are valid; an edit that completes a field may reveal one, and it is then listed
as still to complete, not refused (accepting needs a draft that passes). Fields derived from the edited
ones and filled by defaults (``drafting.derive``) follow the edit; an edited field is no longer
assumed.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from evaluator_agent.labelops.drafting import derive, problems

MAX_OPS = 200


class EditError(ValueError):
    """An edit that is malformed or that the ``Label`` model refuses; nothing was changed."""


def parse_assignment(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise EditError(f"--set takes path=value, not {text[:80]!r}")
    path, raw = text.split("=", 1)
    path = path.strip()
    if not path:
        raise EditError("--set: empty path")
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        value = raw
    return path, value


def _steps(path: str) -> list[str]:
    steps = [p for p in path.split(".")]
    if any(p == "" for p in steps):
        raise EditError(f"bad path {path!r}")
    return steps


def _pointer_steps(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise EditError(f"bad JSON pointer {pointer[:80]!r}: it starts with /")
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/")]


def _container(doc: Any, steps: list[str], create: bool) -> Any:
    cur = doc
    for i, step in enumerate(steps):
        nxt_is_index = i + 1 < len(steps) and (steps[i + 1].isdigit() or steps[i + 1] == "-")
        if isinstance(cur, dict):
            if step not in cur:
                if not create:
                    raise EditError(f"no {'.'.join(steps[: i + 1])!r} in the draft")
                cur[step] = [] if nxt_is_index else {}
            cur = cur[step]
        elif isinstance(cur, list):
            idx = _index(cur, step, steps[: i + 1], allow_end=False)
            cur = cur[idx]
        else:
            raise EditError(f"{'.'.join(steps[:i])!r} is not an object or a list")
    return cur


def _index(items: list[Any], step: str, where: list[str], allow_end: bool) -> int:
    if step == "-" and allow_end:
        return len(items)
    if not step.isdigit():
        raise EditError(f"{'.'.join(where)!r}: a list index is a number")
    idx = int(step)
    if idx > len(items) or (idx == len(items) and not allow_end):
        raise EditError(f"{'.'.join(where)!r}: index out of range (the list has {len(items)} items)")
    return idx


def _put(doc: Any, steps: list[str], value: Any, mode: str) -> None:
    """mode: set (create parents, replace or append), add (RFC 6902 add), replace (must exist)."""
    if not steps:
        raise EditError("cannot replace the whole draft; edit its fields")
    parent = _container(doc, steps[:-1], create=mode == "set")
    last = steps[-1]
    if isinstance(parent, dict):
        if mode == "replace" and last not in parent:
            raise EditError(f"no {'.'.join(steps)!r} to replace")
        parent[last] = value
    elif isinstance(parent, list):
        idx = _index(parent, last, steps, allow_end=mode != "replace")
        if mode == "add" or idx == len(parent):
            parent.insert(idx, value)
        else:
            parent[idx] = value
    else:
        raise EditError(f"{'.'.join(steps[:-1])!r} is not an object or a list")


def _remove(doc: Any, steps: list[str]) -> Any:
    if not steps:
        raise EditError("cannot remove the whole draft")
    parent = _container(doc, steps[:-1], create=False)
    last = steps[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise EditError(f"no {'.'.join(steps)!r} to remove")
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(parent, last, steps, allow_end=False))
    raise EditError(f"{'.'.join(steps[:-1])!r} is not an object or a list")


def _get(doc: Any, steps: list[str]) -> Any:
    if not steps:
        return doc
    parent = _container(doc, steps[:-1], create=False)
    last = steps[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise EditError(f"no {'.'.join(steps)!r} in the draft")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, steps, allow_end=False)]
    raise EditError(f"{'.'.join(steps[:-1])!r} is not an object or a list")


def apply_assignments(doc: dict[str, Any], sets: list[tuple[str, Any]], unsets: list[str]) -> set[str]:
    """``--set``/``--unset`` in place; returns the dotted paths touched."""
    touched = set()
    for path, value in sets:
        _put(doc, _steps(path), value, "set")
        touched.add(path)
    for path in unsets:
        _remove(doc, _steps(path))
        touched.add(path)
    return touched


def apply_json_patch(doc: dict[str, Any], ops: list[Any]) -> set[str]:
    """RFC 6902 operations (add, remove, replace, move, copy, test) in place."""
    if len(ops) > MAX_OPS:
        raise EditError(f"more than {MAX_OPS} patch operations")
    touched = set()
    for n, op in enumerate(ops, 1):
        if not isinstance(op, dict) or not isinstance(op.get("op"), str) or not isinstance(op.get("path"), str):
            raise EditError(f"patch operation {n}: an object with op and path")
        steps = _pointer_steps(op["path"])
        kind = op["op"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise EditError(f"patch operation {n} ({kind}): no value")
        if kind == "add":
            _put(doc, steps, copy.deepcopy(op["value"]), "add")
        elif kind == "replace":
            _put(doc, steps, copy.deepcopy(op["value"]), "replace")
        elif kind == "remove":
            _remove(doc, steps)
        elif kind in ("move", "copy"):
            if not isinstance(op.get("from"), str):
                raise EditError(f"patch operation {n} ({kind}): no from")
            src = _pointer_steps(op["from"])
            value = _remove(doc, src) if kind == "move" else copy.deepcopy(_get(doc, src))
            _put(doc, steps, value, "add")
            if kind == "move":
                touched.add(".".join(src))
        elif kind == "test":
            if _get(doc, steps) != op["value"]:
                raise EditError(f"patch operation {n}: test failed at {op['path']}")
            continue
        else:
            raise EditError(f"patch operation {n}: unknown op {kind[:20]!r}")
        touched.add(".".join(steps))
    return touched


def apply_merge_patch(doc: dict[str, Any], patch: dict[str, Any], prefix: str = "") -> set[str]:
    """RFC 7396 in place: objects merge, null removes, anything else replaces."""
    touched = set()
    for key, value in patch.items():
        path = f"{prefix}{key}"
        if value is None:
            if key in doc:
                del doc[key]
                touched.add(path)
        elif isinstance(value, dict) and isinstance(doc.get(key), dict):
            touched |= apply_merge_patch(doc[key], value, path + ".")
        else:
            doc[key] = copy.deepcopy(value)
            touched.add(path)
    return touched


def _under(loc: str, touched: set[str]) -> bool:
    """The problem is in a value the edit set."""
    return any(loc == t or loc.startswith(t + ".") for t in touched)


def _above(loc: str, touched: set[str]) -> bool:
    """The problem is a check over an object the edit went into (the label, the ground truth):
    such checks run only once that object's fields are valid, so an edit that completes a field
    may reveal one; it is not made by the edit, it is what remains to complete."""
    return any(loc == "" or t.startswith(loc + ".") for t in touched)


def load_patch_file(text: str) -> Any:
    try:
        patch = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise EditError(f"the patch file is not JSON: {e}") from None
    if not isinstance(patch, list | dict):
        raise EditError("a patch file holds a JSON Patch (an array of operations) or a merge patch (an object)")
    return patch


def edit_draft(draft: dict[str, Any], assumed: list[str], *, sets: list[tuple[str, Any]] = (),  # type: ignore[assignment]
               unsets: list[str] = (), patch: Any = None) -> tuple[dict[str, Any], list[str], set[str]]:  # type: ignore[assignment]
    """The edited draft, its assumed paths and the paths touched; EditError when refused."""
    if patch is None and not sets and not unsets:
        raise EditError("nothing to edit: give --set, --unset or --patch")
    new = copy.deepcopy(draft)
    if patch is not None:
        touched = apply_json_patch(new, patch) if isinstance(patch, list) else apply_merge_patch(new, patch)
    else:
        touched = apply_assignments(new, list(sets), list(unsets))
    if any(t == "id" or t.startswith("id.") for t in touched):
        raise EditError("the label id is derived from the input record; it cannot be edited")
    still = [p for p in assumed if not any(p == t or p.startswith(t + ".") or t.startswith(p + ".") for t in touched)]
    derive(new, still)
    before = {(p["loc"], p["type"], p["msg"]) for p in problems(draft)}
    after = problems(new)
    bad = [p for p in after if _under(p["loc"], touched)
           or ((p["loc"], p["type"], p["msg"]) not in before and not _above(p["loc"], touched))]
    if bad:
        listed = "; ".join(f"{p['loc'] or '(label)'}: {p['msg']}" for p in bad[:8])
        raise EditError(f"the Label model refuses this edit: {listed}")
    return new, sorted(set(still)), touched
