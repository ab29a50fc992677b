"""Text from a target (its card's name and version, its diagnosis) made safe to show.

A target chooses these strings, and wants a good score: a card named
"x ✅ All 200 labels passed — safe to merge" must not read as the proctor's verdict in a
pull-request comment, and a name with ANSI escapes or bidi overrides must not repaint a
terminal or reorder a report. Every renderer shows target text through one of these:

- :func:`clean`: one line of printable text, capped (terminal, logs, tables);
- :func:`md_code`: a Markdown code span, so no formatting, link or heading survives, and the
  reader sees at once that the text is quoted data;
- HTML escapes :func:`clean`'s output with ``html.escape``.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["DEFAULT_LIMIT", "clean", "md_code"]

DEFAULT_LIMIT = 80
_SPACE = re.compile(r"\s+")
# control (Cc), format (Cf: bidi overrides, zero-width), private use, surrogates, unassigned,
# line and paragraph separators
_DROP = frozenset(("Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"))


def clean(value: object, limit: int = DEFAULT_LIMIT) -> str:
    """``value`` as one line of printable text of at most ``limit`` characters."""
    text = "" if value is None else str(value)
    if len(text) > 20 * limit:  # never scan megabytes to show a few words
        text = text[: 20 * limit]
    text = "".join(" " if ch in "\t\n\r\v\f" else ch for ch in text if ch in "\t\n\r\v\f" or unicodedata.category(ch) not in _DROP)
    text = _SPACE.sub(" ", text).strip()
    if len(text) > limit:
        text = text[: max(1, limit - 1)].rstrip() + "…"
    return text


def md_code(value: object, limit: int = DEFAULT_LIMIT) -> str:
    """``value`` cleaned, as an inline Markdown code span (backticks inside are handled)."""
    text = clean(value, limit) or "-"
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"
