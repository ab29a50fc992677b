"""Free text to templates for the leak census (``Masker``): quoted strings, UUIDs, pod names,
entity names, IPs, hex ids, durations and numbers become placeholders, so one library line
gives one template whichever service logs it in whichever world (the rules: the docstring of
:mod:`evaluator_agent.lint.leaks`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

_MAX_TEXT = 240  # longer free text is cut before masking: templates stay readable


def _trie_regex(words: Iterable[str]) -> str:
    """One regex alternation over ``words`` as a trie (fast in ``re``), longest match first."""
    trie: dict[str, Any] = {}
    for w in words:
        node = trie
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        alts = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        if "" in node:
            return f"(?:{body})?"
        return body

    return build(trie)


_QUOTED_RE = re.compile(r"(?<![A-Za-z0-9])'[^'\n]{0,200}'(?![A-Za-z0-9])|\"[^\"\n]{0,200}\"")
_UUID_RE = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
_POD_RE = re.compile(r"(?<![A-Za-z0-9])[a-z][a-z0-9]*(?:-[a-z0-9]+)*-[0-9a-f]{6,10}-[a-z0-9]{5}(?![A-Za-z0-9])")
_IP_RE = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?(?![\d.])")
_HEX_RE = re.compile(r"(?<![A-Za-z0-9])(?:0x[0-9a-fA-F]+|(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,})(?![A-Za-z0-9])")
_DUR_RE = re.compile(
    r"(?<![A-Za-z0-9.])\d+(?:\.\d+)?\s?(?:ns|us|µs|ms|s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?)(?![A-Za-z0-9])"
)
_DIGIT_RE = re.compile(r"\d")
_NUM_RE = re.compile(r"\d+(?:[.,]\d+)*")
# In tag values a short digit run right after a letter is part of a code (P3, psycopg2).
_CODE_NUM_RE = re.compile(r"(?<![0-9])(?:(?<=[A-Za-z])\d{3,}|(?<![A-Za-z])\d+)(?:[.,]\d+)*")
_ZERO = str.maketrans("123456789", "000000000")
# Entity kinds by masking priority: a name that is a service in one world and a namespace in
# another is masked the same way everywhere.
PLACEHOLDERS = {"service": "<svc>", "host": "<host>", "namespace": "<ns>", "cluster": "<cluster>",
                 "zone": "<zone>", "region": "<zone>"}


class Masker:
    """Free text to a template, the same for the same library line on any service or world.

    ``Masker(names)`` takes ``{name: entity kind}`` over all worlds of the set (kinds as in
    ``PLACEHOLDERS``; names shorter than 3 characters are left alone). Names are matched as
    written in the topology (lower case; case-insensitive matching costs 4x and entity names
    are not capitalised in telemetry).

    ``masker(text)`` is for free text (log lines, titles, error messages): every digit run
    becomes ``<num>`` (``x509`` reads ``x<num>``), so digits are zeroed first and the many
    lines that differ only in numbers are masked once. ``masker.value(text)`` is for short
    ``key:value`` tags and attributes, where one or two digits after a letter are part of a
    code and are kept (``priority:P3``, ``psycopg2``; ``migration:V394`` reads ``V<num>``).
    Both are cached.
    """

    def __init__(self, names: Mapping[str, str]):
        keep = {n.lower(): k for n, k in names.items() if len(n) >= 3 and k in PLACEHOLDERS}
        zeroed = {n.translate(_ZERO): k for n, k in keep.items()}
        self._kinds = {**keep, **zeroed}
        self._entity_re = _entity_regex(keep)
        self._entity_zero_re = _entity_regex(zeroed)
        self._raw_cache: dict[str, str] = {}
        self._cache: dict[str, str] = {}  # by the zeroed text
        self._value_cache: dict[str, str] = {}

    def _entity(self, m: re.Match[str]) -> str:
        return PLACEHOLDERS[self._kinds[m.group(0)]]

    def __call__(self, text: str) -> str:
        hit = self._raw_cache.get(text)
        if hit is None:
            zeroed = (text[:_MAX_TEXT] + "…" if len(text) > _MAX_TEXT else text).translate(_ZERO)
            hit = self._cache.get(zeroed)
            if hit is None:
                hit = self._cache[zeroed] = self._mask(zeroed, self._entity_zero_re, _NUM_RE)
            self._raw_cache[text] = hit
        return hit

    def value(self, text: str) -> str:
        hit = self._value_cache.get(text)
        if hit is None:
            key, _, val = text.partition(":")
            # Fast paths for the commonest values (what the masks below would give anyway).
            if val in self._kinds:
                hit = f"{key}:{PLACEHOLDERS[self._kinds[val]]}"
            elif _NUM_RE.fullmatch(val):
                hit = f"{key}:<num>"
            elif _POD_RE.fullmatch(val):
                hit = f"{key}:<pod>"
            else:
                short = text[:_MAX_TEXT] + "…" if len(text) > _MAX_TEXT else text
                hit = self._mask(short, self._entity_re, _CODE_NUM_RE)
            self._value_cache[text] = hit
        return hit

    def _mask(self, s: str, entity_re: re.Pattern[str] | None, num_re: re.Pattern[str]) -> str:
        if '"' in s or "'" in s:
            s = _QUOTED_RE.sub("<str>", s)
        if "-" in s:
            s = _POD_RE.sub("<pod>", _UUID_RE.sub("<uuid>", s))
        if entity_re is not None:
            s = entity_re.sub(self._entity, s)
        if _DIGIT_RE.search(s):
            if "." in s:
                s = _IP_RE.sub("<ip>", s)
            s = num_re.sub("<num>", _DUR_RE.sub("<dur>", _HEX_RE.sub("<hex>", s)))
        return " ".join(s.split())


def _entity_regex(names: Iterable[str]) -> re.Pattern[str] | None:
    names = sorted(names)
    if not names:
        return None
    return re.compile(r"(?<![A-Za-z0-9])(?:" + _trie_regex(names) + r")(?![A-Za-z0-9])")
