"""What the query languages share: the error they raise, field values in the form queries
compare them, and wildcard patterns compiled to regexes.

The languages themselves are documented in ``query.py``.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["QueryError", "glob_regex", "norm_value", "num_value", "wild_pattern"]


class QueryError(ValueError):
    """A query, time or filter the tools cannot understand. The message says where."""


def norm_value(v: Any) -> str | None:
    """Canonical lower-case string of a field value, the form keyword matching compares."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return repr(v)
    if isinstance(v, str):
        return v.lower()
    return str(v).lower()


def num_value(v: Any) -> float | None:
    """Numeric value of a field value (numbers and numeric strings), else None."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            x = float(v)
        except ValueError:
            return None
        return x if math.isfinite(x) else None
    return None


def wild_pattern(chars: list[tuple[str, bool]], anychar: str, anchored: bool, span: str = "*") -> str:
    """Regex source of a wildcard pattern given as (char, is_wildcard) pairs.

    Each ``*`` but the last becomes an atomic lazy group (the trick of ``fnmatch``): the
    earliest match of each literal segment is committed, so ``*a*a*a*a*b`` is linear
    instead of exponential backtracking on a long value. ``span`` bounds what one ``*``
    may cover: an unanchored search restarts at every position, so free-text wildcards
    use a bounded span to stay linear in the length of the text.
    """
    segments: list[str] = [""]
    for ch, wild in chars:
        if wild and ch == "*":
            segments.append("")
        elif wild and ch == "?":
            segments[-1] += anychar
        else:
            segments[-1] += re.escape(ch)
    out = [segments[0]]
    middle, last = segments[1:-1], segments[-1] if len(segments) > 1 else None
    for seg in middle:
        out.append(f"(?>{anychar}{span}?{seg})" if seg else "")
    if last is not None:
        out.append(f"{anychar}{span}{last}" if anchored else f"(?>{anychar}{span}?{last})")
    return "".join(out)


def glob_regex(pattern: str, escaped: set[int] | frozenset[int] = frozenset()) -> re.Pattern[str]:
    """Regex of a ``*``/``?`` glob for ``fullmatch`` against lower-case values; characters
    at the ``escaped`` indexes are literal."""
    chars = [(c, c in "*?" and i not in escaped) for i, c in enumerate(pattern.lower())]
    return re.compile(wild_pattern(chars, ".", anchored=True), re.DOTALL)
