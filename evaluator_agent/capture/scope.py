"""Which services a capture takes, and why: the widenings of the seeds and their precedence.

Pure functions over what the capture fetched (``steps.py`` fetches, this module decides):

- **depends:N** -- N hops from a seed along Software Catalog relations (both directions).
- **monitor** -- the services the paged monitors name (the ``--monitor``, and the seeds'
  monitors that alerted or warned in the incident window): their ``service`` tag, the
  ``service:`` terms of their query and of their group names (``service:a,env:prod``); then
  the services of every monitor whose name is the same template (:func:`monitor_template`:
  the name with the services it names and ``{{...}}`` variables masked, and its numbers, so
  ``[P3] pricing error rate above 5%`` and ``[P2] cart error rate above 2%`` are one family).
  Inside the widening: the named services, then the family's that alerted or warned in the
  world's window, then the rest of the family.
- **team** -- the catalog's services of the seeds' teams.
- **platform** -- the catalog's services in a seed's most specific grouping
  (:func:`platform_members`: its ``application`` and ``system``, else its ``platform``).
  A grouping that holds more than half of the catalog (``platform:kubernetes``) says nothing
  about an incident: it is skipped, with a note. The tier is a criticality, not a grouping.
- **similar-name** -- the catalog's services whose name shares a token with a seed's
  (:func:`name_tokens`: split on ``- _ . /``, lower case, a plural ``s`` dropped, generic
  tokens such as ``api``, ``db``, ``redis``, ``worker`` left out), so ``checkout`` brings
  ``checkout-worker``, ``checkout-db`` and ``checkout-redis``.

:func:`assemble` orders them -- seeds, dependency hops nearest first, then monitor, team,
platform, similar-name -- and cuts at ``max_services``: when the cap bites, the later ones go.
Each kept service has its reasons, deciding reason first (``{"pricing": ["monitor",
"team"]}``); a seed has only ``["seed"]``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "GENERIC_TOKENS",
    "REASONS",
    "Scope",
    "alerted_between",
    "assemble",
    "monitor_template",
    "name_fragment",
    "name_tokens",
    "platform_members",
    "services_named",
    "similar_names",
]

REASONS = ("seed", "depends:N", "monitor", "team", "platform", "similar-name")
WIDENINGS = ("monitor", "team", "platform", "similar-name")
GENERIC_TOKENS = frozenset("""
    api apis service services svc app apps application web www worker workers db database prod production
    staging stage stg dev test qa sandbox server srv client backend frontend internal external public private
    http https grpc rest graphql k8s kube cache redis memcached postgres postgresql pg mysql mongo mongodb
    sql kafka queue sqs consumer producer cron job jobs main primary replica proxy gateway gw lb
    """.split())
MAX_GROUP_SHARE = 0.5  # a grouping of more than this share of the catalog is too broad to widen along
MIN_FRAGMENT = 4  # a family search needs a literal part of the name at least this long

_SERVICE_TERM = re.compile(r"\bservice:([A-Za-z0-9_.\-/]+)")
_SPLIT = re.compile(r"[-_./\s]+")
_VERSION = re.compile(r"^(v?\d+|[a-z])$")
_VARIABLE = re.compile(r"\{\{[^{}]*\}\}")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
SERVICE_MASK, NUMBER_MASK = "\x00", "\x01"


@dataclass
class Scope:
    """The scoped services in order, each one's reasons, and how many were cut (by deciding reason)."""

    services: list[str]
    reasons: dict[str, list[str]]
    cut: dict[str, int]

    def describe(self) -> dict[str, Any]:
        """What the manifest and the result say of the scope."""
        kept = Counter(_family(r[0]) for r in self.reasons.values())
        return {"services": list(self.services), "reasons": dict(self.reasons),
                "kept": {k: kept[k] for k in _reason_order(kept)}, "cut": dict(self.cut)}


def _family(reason: str) -> str:
    return "depends" if reason.startswith("depends:") else reason


def _reason_order(counts: Iterable[str]) -> list[str]:
    rank = {"seed": 0, "depends": 1, **{w: i + 2 for i, w in enumerate(WIDENINGS)}}
    return sorted(set(counts), key=lambda r: (rank.get(r, 99), r))


def assemble(seeds: list[str], hops: list[list[str]], widenings: dict[str, list[str]], max_services: int) -> Scope:
    """Seeds, then ``hops[0]`` (1 hop away), ``hops[1]``..., then the widenings in the order of
    ``WIDENINGS``; the first ``max_services`` are kept. A service keeps every reason it has."""
    order: list[tuple[str, str]] = [(s, "seed") for s in seeds]
    order += [(s, f"depends:{i}") for i, level in enumerate(hops, 1) for s in level]
    order += [(s, w) for w in WIDENINGS for s in widenings.get(w, [])]
    seed_set = set(seeds)
    reasons: dict[str, list[str]] = {}
    for s, why in order:
        got = reasons.setdefault(s, [])
        if why not in got and (why == "seed" or s not in seed_set):
            got.append(why)
    found = list(reasons)
    kept = found[:max_services]
    cut = Counter(_family(reasons[s][0]) for s in found[max_services:])
    return Scope(kept, {s: reasons[s] for s in kept}, {k: cut[k] for k in _reason_order(cut)})


# ---------------------------------------------------------------------- similar names


def name_tokens(name: str) -> set[str]:
    """The distinctive tokens of a service name (see the module docstring)."""
    out = set()
    for t in _SPLIT.split(name.lower()):
        if not t or _VERSION.match(t) or t in GENERIC_TOKENS:
            continue
        if len(t) > 4 and t.endswith("s") and not t.endswith("ss"):
            t = t[:-1]
        if t not in GENERIC_TOKENS:
            out.add(t)
    return out


def similar_names(seeds: Iterable[str], candidates: Iterable[str]) -> list[str]:
    """The candidates (not seeds) whose name shares a distinctive token with a seed's, sorted."""
    seeds = list(seeds)
    stems = set().union(*(name_tokens(s) for s in seeds)) if seeds else set()
    return sorted(c for c in set(candidates) - set(seeds) if name_tokens(c) & stems)


# ---------------------------------------------------------------------- platform


def platform_members(seeds: Iterable[str], groups: dict[str, list[list[str]]], catalog: Iterable[str],
                     note: Callable[[str], None] | None = None) -> list[str]:
    """The catalog's services that share a seed's most specific grouping (``groups``: service ->
    ``[[key, value], ...]`` most specific first, from ``convert.groups_of_definition``), sorted
    by grouping then name. Groupings of more than ``MAX_GROUP_SHARE`` of the catalog are skipped."""
    names = sorted(set(catalog))
    seeds = list(seeds)
    wanted: list[tuple[str, str]] = []
    for s in seeds:
        mine = [(g[0], g[1]) for g in groups.get(s) or []]
        specific = [g for g in mine if g[0] != "platform"] or mine
        wanted += [g for g in specific if g not in wanted]
    out: list[str] = []
    for key, value in wanted:
        members = [n for n in names if [key, value] in (groups.get(n) or [])]
        if len(members) > MAX_GROUP_SHARE * len(names):
            if note is not None:
                note(f"scope: {key}:{value} groups {len(members)} of the catalog's {len(names)} services, "
                     "too broad to widen along (skipped)")
            continue
        out += [n for n in members if n not in out and n not in seeds]
    return out


# ---------------------------------------------------------------------- monitors


def services_named(monitor: dict[str, Any], groups: Iterable[str] = ()) -> list[str]:
    """The services a converted monitor names: its ``service`` tag, the ``service:`` terms of
    its query and of its group names; in that order, once each."""
    out = [monitor["tags"]["service"]] if (monitor.get("tags") or {}).get("service") else []
    out += _SERVICE_TERM.findall(monitor.get("query") or "")
    for g in groups:
        out += [v for k, _, v in (part.strip().partition(":") for part in g.split(",")) if k == "service" and v]
    return list(dict.fromkeys(out))


def monitor_template(name: str, services: Iterable[str]) -> str:
    """A monitor's name as a family: its services, ``{{...}}`` variables and numbers masked,
    lower case, spaces folded."""
    text = _VARIABLE.sub(SERVICE_MASK, name)
    for s in sorted(set(services), key=lambda x: (-len(x), x)):
        text = re.sub(rf"(?<![A-Za-z0-9_\-]){re.escape(s)}(?![A-Za-z0-9_\-])", SERVICE_MASK, text)
    text = _NUMBER.sub(NUMBER_MASK, text)
    return " ".join(text.lower().split())


def name_fragment(template: str) -> str | None:
    """The longest literal part of a template (to ask Datadog for monitors by name), or None
    when it is shorter than ``MIN_FRAGMENT``."""
    parts = [p.strip(" []()-:|") for p in re.split(f"[{SERVICE_MASK}{NUMBER_MASK}]", template)]
    best = max(parts, key=lambda p: (len(p), p), default="")
    return best if len(best) >= MIN_FRAGMENT else None


def alerted_between(monitor: dict[str, Any], start: float, end: float) -> bool:
    """Whether a converted monitor went to Alert or Warn between ``start`` and ``end``."""
    return any(t["to"] in ("Alert", "Warn") and start <= t["ts"] <= end for t in monitor.get("transitions") or [])
