"""Redaction of secrets and personal data, applied to every string before anything is written.

A :class:`Redactor` holds rules of two kinds:

- **pattern rules**: a regular expression and a replacement (a ``re`` template, so a rule may
  keep a prefix such as ``password=`` with ``\\1``); a rule may ask for a Luhn check of the
  digits it matched (card numbers), so order numbers and ids are left alone;
- **key rules**: a regular expression over the names of attributes and tags; the whole value
  of a matching key (``password``, ``authorization``, ``http.request.headers.cookie`` ...)
  becomes ``[REDACTED:key]``, whatever it looks like.

:func:`Redactor.apply` walks any JSON value (dict keys included) and returns a redacted copy,
counting hits per rule. The defaults cover bearer and basic credentials, JWTs, API and
application keys and tokens in ``key=value`` form, passwords (also in URLs), AWS access keys
and secret keys, private key blocks, e-mail addresses and credit-card-like numbers. Bare hex
strings are NOT redacted by default: trace ids, span ids and hashes look exactly like a
Datadog API key, so only keys in a ``key: value`` context are.

Rules file (``--redact-rules FILE``, JSON)::

    {"defaults": true,                       # keep the default rules (default true)
     "disable": ["email"],                   # default rules to drop, by name
     "rules": [{"name": "ticket", "pattern": "TCK-[0-9]+",
                "replacement": "[REDACTED:ticket]", "luhn": false, "ignore_case": false}],
     "keys": ["x-internal-token"]}           # more key-name patterns (full match, any case)
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_KEYS", "DEFAULT_RULES", "RedactionError", "Redactor", "Rule"]


class RedactionError(ValueError):
    """A rules file or pattern that cannot be used."""


@dataclass(frozen=True)
class Rule:
    name: str
    pattern: re.Pattern[str]
    replacement: str
    luhn: bool = False

    @staticmethod
    def of(name: str, pattern: str, replacement: str | None = None, luhn: bool = False,
           ignore_case: bool = False) -> Rule:
        try:
            rx = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
        except re.error as e:
            raise RedactionError(f"redaction rule {name!r}: bad pattern: {e}") from None
        return Rule(name, rx, replacement if replacement is not None else f"[REDACTED:{name}]", luhn)


_VALUE = r"[A-Za-z0-9_\-./+=]{8,}"
_SEP = r"""["']?\s*[:=]\s*["']?"""

DEFAULT_RULES: tuple[Rule, ...] = (
    Rule.of("private_key", r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)"),
    Rule.of("bearer", r"(?i)\b(bearer\s+)[A-Za-z0-9\-._~+/]{8,}=*", r"\1[REDACTED:bearer]"),
    Rule.of("basic_auth", r"(?i)\b(authorization" + _SEP + r"basic\s+)[A-Za-z0-9+/]{8,}=*", r"\1[REDACTED:basic_auth]"),
    Rule.of("jwt", r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}"),
    Rule.of("aws_access_key", r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16}\b"),
    Rule.of("aws_secret_key", r"(?i)\b(aws_?secret_?(?:access_?)?key" + _SEP + r")[A-Za-z0-9/+=]{30,}",
            r"\1[REDACTED:aws_secret_key]"),
    Rule.of("api_key", r"(?i)\b((?:dd[_-]?|x[_-])?(?:api|app|application|access|secret|private|client)[_-]?"
            r"(?:key|token|secret)s?" + _SEP + r")" + _VALUE, r"\1[REDACTED:api_key]"),
    Rule.of("token", r"(?i)\b((?:access_|refresh_|auth_|session_|id_)?token" + _SEP + r")" + _VALUE,
            r"\1[REDACTED:token]"),
    Rule.of("password", r"""(?i)\b((?:password|passwd|pwd|passphrase|secret)""" + _SEP + r""")[^\s"',;&]{1,}""",
            r"\1[REDACTED:password]"),
    Rule.of("url_credentials", r"(?i)\b([a-z][a-z0-9+.\-]*://[^\s:/@]{1,64}:)[^\s@/]{1,128}@",
            r"\1[REDACTED:password]@"),
    # people's addresses; cloud service-account identities are not personal data
    Rule.of("email", r"\b[A-Za-z0-9._%+\-]+@(?![A-Za-z0-9\-.]*\.iam\.gserviceaccount\.com\b)"
            r"[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b"),
    # Visa, Mastercard, Amex, Discover shapes (15-16 digits, whole or in groups of 4), Luhn-checked
    Rule.of("credit_card", r"(?<![0-9A-Za-z.\-])(?:(?:4\d{3}|5[1-5]\d{2}|2[2-7]\d{2}|6011|65\d{2})(?:[ \-]?\d{4}){3}"
            r"|3[47]\d{2}[ \-]?\d{6}[ \-]?\d{5})(?![0-9A-Za-z.\-])", luhn=True),
)

# Attribute / tag names whose whole value is a secret (full match on the name or its last
# dotted part, any case).
DEFAULT_KEYS: tuple[str, ...] = (
    r"password", r"passwd", r"pwd", r"secret", r"client[_-]?secret", r"api[_-]?key", r"app[_-]?key",
    r"application[_-]?key", r"access[_-]?token", r"refresh[_-]?token", r"auth[_-]?token", r"token",
    r"authorization", r"proxy-authorization", r"cookie", r"set-cookie", r"x-api-key", r"dd-api-key",
    r"dd-application-key", r"private[_-]?key", r"credit[_-]?card", r"card[_-]?number", r"cvv", r"ssn",
)


def _luhn_ok(text: str) -> bool:
    digits = [int(c) for c in text if c.isdigit()]
    if not 13 <= len(digits) <= 19 or len(set(digits)) == 1:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


@dataclass
class Redactor:
    rules: tuple[Rule, ...] = DEFAULT_RULES
    keys: tuple[str, ...] = DEFAULT_KEYS
    hits: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._key_rx = re.compile("|".join(f"(?:{k})" for k in self.keys), re.IGNORECASE) if self.keys else None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_config(cls, rules_file: str | Path | None = None, patterns: Iterable[str] = (),
                    defaults: bool = True) -> Redactor:
        """Rules from a JSON rules file (see the module docstring), plus extra patterns
        (each a rule named ``custom``), on top of the defaults unless ``defaults`` is off."""
        rules = list(DEFAULT_RULES) if defaults else []
        keys = list(DEFAULT_KEYS) if defaults else []
        if rules_file is not None:
            try:
                cfg = json.loads(Path(rules_file).read_text())
            except (OSError, ValueError) as e:
                raise RedactionError(f"redaction rules {rules_file}: {e}") from None
            if not isinstance(cfg, dict):
                raise RedactionError(f"redaction rules {rules_file}: expected a JSON object")
            if cfg.get("defaults", True) is False:
                rules, keys = [], []
            drop = set(cfg.get("disable") or [])
            rules = [r for r in rules if r.name not in drop]
            for i, r in enumerate(cfg.get("rules") or []):
                if not isinstance(r, dict) or not isinstance(r.get("pattern"), str):
                    raise RedactionError(f"redaction rules {rules_file}: rule {i} needs a 'pattern' string")
                rules.append(Rule.of(str(r.get("name") or f"rule{i}"), r["pattern"], r.get("replacement"),
                                     bool(r.get("luhn", False)), bool(r.get("ignore_case", False))))
            for k in cfg.get("keys") or []:
                try:
                    re.compile(str(k))
                except re.error as e:
                    raise RedactionError(f"redaction rules {rules_file}: bad key pattern {k!r}: {e}") from None
                keys.append(str(k))
        for p in patterns:
            rules.append(Rule.of("custom", p))
        return cls(tuple(rules), tuple(keys))

    def describe(self) -> dict[str, Any]:
        """The rules as the capture manifest keeps them (no data): a resumed capture redacts
        what it still fetches with exactly these (:meth:`from_description`)."""
        return {"rules": [{"name": r.name, "pattern": r.pattern.pattern, "replacement": r.replacement,
                           "luhn": r.luhn, "flags": int(r.pattern.flags & re.IGNORECASE)} for r in self.rules],
                "keys": list(self.keys)}

    @classmethod
    def from_description(cls, desc: dict[str, Any]) -> Redactor:
        try:
            rules = tuple(Rule(str(r["name"]), re.compile(r["pattern"], int(r.get("flags") or 0)), str(r["replacement"]),
                               bool(r.get("luhn"))) for r in desc["rules"])
            return cls(rules, tuple(str(k) for k in desc["keys"]))
        except (KeyError, TypeError, re.error) as e:
            raise RedactionError(f"the capture's redaction rules cannot be read back: {e}") from None

    # ------------------------------------------------------------------ applying

    def text(self, s: str) -> str:
        if len(s) < 6:
            return s
        out = s
        for rule in self.rules:
            if rule.luhn:
                def sub(m: re.Match[str], rule: Rule = rule) -> str:
                    if not _luhn_ok(m.group(0)):
                        return m.group(0)
                    self._hit(rule.name)
                    return m.expand(rule.replacement)

                out = rule.pattern.sub(sub, out)
            else:
                out, n = rule.pattern.subn(rule.replacement, out)
                if n:
                    self._hit(rule.name, n)
        return out

    def _secret_key(self, key: str) -> bool:
        if self._key_rx is None:
            return False
        return bool(self._key_rx.fullmatch(key) or self._key_rx.fullmatch(key.rsplit(".", 1)[-1]))

    def apply(self, value: Any) -> Any:
        """A redacted copy of a JSON value: every string (dict keys too) through the pattern
        rules; values of secret-named keys replaced whole; ``k:v`` tag strings by their key."""
        if isinstance(value, str):
            if ":" in value and self._key_rx is not None and not any(c.isspace() for c in value):
                k, _, v = value.partition(":")
                if v and self._secret_key(k):
                    self._hit("key")
                    return f"{k}:[REDACTED:key]"
            return self.text(value)
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for k, v in value.items():
                key = self.text(k) if isinstance(k, str) else k
                if isinstance(k, str) and v not in (None, "") and not isinstance(v, dict | list) and self._secret_key(k):
                    self._hit("key")
                    out[key] = "[REDACTED:key]"
                else:
                    out[key] = self.apply(v)
            return out
        if isinstance(value, list | tuple):
            return [self.apply(v) for v in value]
        return value

    def _hit(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.hits[name] += n
