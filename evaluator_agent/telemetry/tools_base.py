"""What every telemetry tool shares: the result caps, the call error, value clipping, and
:class:`ToolBase` with the time window, ``limit``, cursors, cutting a result to the cap and
the bodies of paged listings. The rules these implement are in ``tools.py``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from evaluator_agent.core.clock import iso_ms as iso  # noqa: F401 - the tools' timestamp format
from evaluator_agent.telemetry.index_plan import search_table
from evaluator_agent.telemetry.search_parser import parse_search_query
from evaluator_agent.telemetry.times import parse_time

if TYPE_CHECKING:
    from evaluator_agent.telemetry.index import WorldIndex
    from evaluator_agent.telemetry.index_tables import RecordTable

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "MAX_RECORD_LIMIT",
    "MAX_RESULT_BYTES",
    "ToolBase",
    "ToolError",
    "clip",
    "clip_deep",
    "dumps",
    "iso",
    "nice_interval",
]

MAX_RESULT_BYTES = 64 * 1024
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_RECORD_LIMIT = 200  # logs and spans are bulky
DEFAULT_WINDOW_S = 3600
MAX_TEXT = 4000  # characters of one message / text field
NICE_INTERVALS = (1, 5, 10, 15, 20, 30, 60, 120, 180, 300, 600, 900, 1200, 1800, 3600, 7200, 10800,
                  14400, 21600, 43200, 86400)


class ToolError(Exception):
    """A call the target got wrong; the message is shown to it."""


def clip(s: Any) -> Any:
    if isinstance(s, str) and len(s) > MAX_TEXT:
        return s[:MAX_TEXT] + f"... [{len(s) - MAX_TEXT} more characters]"
    return s


def clip_deep(x: Any, depth: int = 0) -> Any:
    """Attributes as shown: long strings clipped, long lists cut, deep nesting flattened."""
    if isinstance(x, str):
        return clip(x)
    if isinstance(x, dict):
        if depth >= 4:
            return clip(json.dumps(x, default=str))
        return {k: clip_deep(v, depth + 1) for k, v in x.items()}
    if isinstance(x, list):
        return [clip_deep(v, depth + 1) for v in x[:50]] + (["..."] if len(x) > 50 else [])
    return x


def dumps(x: Any) -> str:
    return json.dumps(x, default=str)


def nice_interval(seconds: float) -> int:
    for n in NICE_INTERVALS:
        if n >= seconds:
            return n
    return int(math.ceil(seconds / 86400)) * 86400


class ToolBase:
    """Helpers of the tool implementations (the ``*Tools`` classes :class:`Toolbox` joins)."""

    index: WorldIndex
    now: float

    def _window(self, args: dict[str, Any]) -> tuple[float, float]:
        now = self.now
        t1 = parse_time(args["to"], now) if "to" in args else now
        t0 = parse_time(args["from"], now) if "from" in args else min(t1, now) - DEFAULT_WINDOW_S
        if t0 > now:
            raise ToolError(f"'from' ({iso(t0)}) is after now ({iso(now)}): nothing after now exists")
        t1 = min(t1, now)
        if t0 > t1:
            raise ToolError(f"'from' ({iso(t0)}) is after 'to' ({iso(t1)})")
        return t0, t1

    @staticmethod
    def _limit(args: dict[str, Any], cap: int = MAX_LIMIT) -> int:
        return min(int(args.get("limit", DEFAULT_LIMIT)), cap)

    @staticmethod
    def _fingerprint(tool: str, *parts: Any) -> str:
        raw = json.dumps([tool, *parts], sort_keys=True, default=str).encode()
        return hashlib.sha256(raw).hexdigest()[:16]

    @staticmethod
    def _encode_cursor(fp: str, pos: int) -> str:
        raw = json.dumps({"f": fp, "p": pos}, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @staticmethod
    def _decode_cursor(args: dict[str, Any], fp: str) -> int | None:
        cursor = args.get("cursor")
        if cursor is None or cursor == "":
            return None
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            obj = json.loads(raw)
            f, pos = obj["f"], obj["p"]
            if not isinstance(pos, int) or isinstance(pos, bool) or pos < 0:
                raise ValueError
        except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise ToolError("invalid cursor: pass next_cursor from the previous page unchanged") from None
        if f != fp:
            raise ToolError(
                "cursor belongs to a different query: page with the same query, window and sort "
                "that returned it, or drop the cursor to start over"
            )
        return pos

    @staticmethod
    def _fit(content: dict[str, Any], key: str) -> int:
        """Cut ``content[key]`` so the JSON stays under the cap; returns how many items stay."""
        items = content[key]
        if len(dumps(content)) <= MAX_RESULT_BYTES:
            return len(items)
        content[key] = []
        content["truncated"] = True
        budget = MAX_RESULT_BYTES - len(dumps(content)) - 16
        keep = 0
        for it in items:
            size = len(dumps(it)) + 2
            if size > budget:
                break
            budget -= size
            keep += 1
        content[key] = items[:keep]
        return keep

    def _page_start(self, args: dict[str, Any], tool: str, q: str) -> tuple[int, str, int]:
        """``limit``, fingerprint and offset of a page of an offset-paged listing."""
        limit = self._limit(args)
        fp = self._fingerprint(tool, q)
        return limit, fp, self._decode_cursor(args, fp) or 0

    def _page_end(self, content: dict[str, Any], key: str, fp: str, offset: int, total: int) -> dict[str, Any]:
        """Cut an offset-paged listing to the cap and add the cursor of the next page."""
        kept = self._fit(content, key)
        end = offset + kept
        content["next_cursor"] = self._encode_cursor(fp, end) if end < total and kept else None
        return content

    def _record_page(
        self,
        table: RecordTable,
        args: dict[str, Any],
        tool: str,
        key: str,
        cap: int,
        fmt: Callable[[dict[str, Any]], dict[str, Any]],
        desc: bool = True,
    ) -> dict[str, Any]:
        """Shared body of search_logs / search_spans / get_events (keyset pagination)."""
        q = args.get("query") or ""
        node = parse_search_query(q)
        t0, t1 = self._window(args)
        limit = self._limit(args, cap)
        fp = self._fingerprint(tool, q.strip(), t0, t1, desc)
        after = self._decode_cursor(args, fp)
        res = search_table(table, node, t0, t1)
        rows = res.rows.page(desc, after, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        recs = table.records
        content: dict[str, Any] = {key: [fmt(recs[r]) for r in rows], "total_matched": res.rows.count()}
        if res.warnings:
            content["warning"] = "; ".join(res.warnings)
        if "limit" in args and int(args["limit"]) > cap:
            content["warning"] = "; ".join(filter(None, [content.get("warning"), f"limit capped at {cap} for {tool}"]))
        kept = self._fit(content, key)
        more = more or kept < len(rows)
        if rows and not kept:  # one record alone is over the cap: skip it rather than stall
            kept = 1
            content["warning"] = "; ".join(filter(None, [content.get("warning"), "a record too large to show was skipped"]))
        content["next_cursor"] = self._encode_cursor(fp, rows[kept - 1]) if more and kept else None
        return content
