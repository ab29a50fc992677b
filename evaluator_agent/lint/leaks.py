"""Set-level leak census: values a target can see that give the answer away across a label set.

Lint checks one label at a time; some leaks only show across a whole set. A log line that is
written in every ``oom_killed`` world and in no other, a metric that exists only on the
culprit, a page title only no-fault controls get: each looks harmless in its own world, and
each lets a lookup table pass without investigating. The census reads every world of a set
once, records the *values* a target can see in it with the entity each occurrence is attached
to, and judges each value across the set.

Values (``KINDS``; every field a tool shows a target)::

    event.source  event.title  event.text  event.tag_key  event.tag  event.precision
    metric.name   metric.tag_key  metric.tag
    log.template  log.status  log.attr_key  log.attr  log.precision
    span.name  span.resource  span.tag_key  span.tag  span.error_type  span.error_message
    page.name  page.type  page.metric  page.tag    (the label's paging monitor)
    monitor.name  monitor.type  monitor.metric     (every other monitor)

``*.tag`` / ``log.attr`` values are ``key:value`` (nested attributes flattened with dots),
``event.text`` is one value per line, ``*.precision`` is ``<source or status>: whole seconds``
or ``...: sub-second`` (noise on milliseconds while the culprit's events sit on whole seconds
is a leak). Free text (titles, text lines, log messages, error messages, resources, monitor
names, tag and attribute values) is reduced to a template by :class:`Masker`: quoted strings,
UUIDs, pod names, entity names, IPs, hex ids, durations and numbers become ``<str>``,
``<uuid>``, ``<pod>``, ``<svc>``/``<host>``/``<ns>``/``<cluster>``/``<zone>``, ``<ip>``,
``<hex>``, ``<dur>``, ``<num>``. Entity names are masked with the names of *every* world of the
set, so one library line gives one template whichever service logs it and whether or not the
word (``search``, ``orders``) happens to be a service name in that world. In free text every
digit run is a number (``x509`` reads ``x<num>``); in ``key:value`` pairs one or two digits
after a letter are a code and stay (``priority:P3``).

The entity of an occurrence is its ``service`` field or tag; else its ``host``, standing for
the services on that host (the most incriminated of them); else none. Against the world's
ground truth (from its label) every occurrence is *on the culprit* (a root-cause entity or
alias, or a host of one), *on the chain* (a causal-chain entity or its host) or *elsewhere*
(another entity, none, or any occurrence in a no-fault world).

Rules (check ids of :mod:`evaluator_agent.lint.checks`), one problem per value, not per label:

``leak.exclusive_mechanism``
    the value occurs in ``n >= 3`` worlds, all of one mechanism ``M`` (``no_fault`` counts as
    one). Under the null "mechanisms are assigned to worlds independently of the value" the
    chance of that is hypergeometric: ``p = C(K_M, n) / C(N, n)`` (``K_M`` worlds of ``M`` out
    of ``N``). ``p <= ALPHA / m`` (Bonferroni over the ``m`` values seen in >= 3 worlds) is an
    error; a larger ``p`` (too little support to rule out chance) is a warning. Values in
    fewer than 3 worlds are not judged: most values of one world occur in no other. A value
    confined to two or three mechanisms (event source ``terraform`` only in ``disk_full`` and
    ``dns_failure`` worlds) narrows the answer almost as much: the same test with ``K`` the
    worlds of those mechanisms and ``p`` multiplied by the number of such subsets (the subset
    is picked after the fact) is an error too; no warning below that.
``leak.culprit_only``
    in every world where the value occurs (``n >= 3``), every occurrence is on the culprit:
    an error. Every occurrence on the causal chain (and not all on the culprit) in every such
    world: ``leak.chain_only``, a warning (callers do see their callee's trouble, but a value
    that never occurs off the chain says which services are on it). Not for ``page.*``
    values: the page watches the end of the chain by construction.
``leak.entity_in_metric_name``
    a metric name of a world contains the name of a service or host of that world
    (``billing-api.generated_x.size_kb``): an error, reported once per metric-name pattern.

The paging monitor's name, type, query metric and tags are values like any other
(``page.*``), so "request rate above ..." pages that only no-fault controls get are caught by
``leak.exclusive_mechanism``, and "consumer lag high for X" pages that always name the culprit
by ``leak.culprit_only``.

A world shared by labels of different mechanisms counts as one world of the combined class
(``a+b``); noise-free twins are not in the census (targets see them only in ablations).

Speed: one pass over each world's records while lint has it loaded, keeping only its distinct
(entity, value) pairs; free text is masked once per distinct string at the end (digits zeroed
first, so lines that differ only in numbers are masked once), with one trie regex over all
entity names. About 15 ms per world, 3 s for a 200-world set on one core.
"""

from __future__ import annotations

import gc
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evaluator_agent.lint.masking import PLACEHOLDERS, Masker
from evaluator_agent.lint.words import norm

if TYPE_CHECKING:
    from evaluator_agent.core.labels import Label

__all__ = ["ALPHA", "KINDS", "MAX_CLASSES", "MIN_WORLDS", "Census", "Leak", "Masker", "WorldTruth"]

ALPHA = 0.01  # family-wise error rate of the exclusivity test, split over the values tested
MIN_WORLDS = 3  # a value must occur in at least this many worlds to be judged
MAX_CLASSES = 3  # a value confined to this many mechanisms (and enough worlds) is a leak too

KINDS: dict[str, str] = {
    "event.source": "event source",
    "event.title": "event title",
    "event.text": "event text line",
    "event.tag_key": "event tag key",
    "event.tag": "event tag",
    "event.precision": "event timestamp precision",
    "metric.name": "metric name",
    "metric.tag_key": "metric tag key",
    "metric.tag": "metric tag",
    "log.template": "log line",
    "log.status": "log status",
    "log.attr_key": "log attribute key",
    "log.attr": "log attribute",
    "log.precision": "log timestamp precision",
    "span.name": "span name",
    "span.resource": "span resource",
    "span.tag_key": "span tag key",
    "span.tag": "span tag",
    "span.error_type": "span error.type",
    "span.error_message": "span error message",
    "page.name": "paging monitor name",
    "page.type": "paging monitor type",
    "page.metric": "paging monitor query metric",
    "page.tag": "paging monitor tag",
    "monitor.name": "monitor name",
    "monitor.type": "monitor type",
    "monitor.metric": "monitor query metric",
}
# Kinds whose values are masked into templates at the end: free text, and key:value pairs.
_TEXT = frozenset({
    "event.title", "event.text", "log.template", "span.resource", "span.error_message", "page.name",
    "monitor.name",
})
_PAIRS = frozenset({"event.tag", "metric.tag", "log.attr", "span.tag", "page.tag"})
_MASKED = _TEXT | _PAIRS
# Span tags with a kind of their own.
_SPAN_OWN_TAGS = frozenset({"error.type", "error.message"})

# Where an occurrence sits relative to the ground truth (bits, OR-ed over occurrences).
ELSEWHERE, ON_CHAIN, ON_CULPRIT = 1, 2, 4


# --------------------------------------------------------------------------- ground truth


@dataclass(frozen=True)
class WorldTruth:
    """What the census needs from a world's label(s): its class, culprit, chain and page."""

    mechanism: str  # "no_fault" for controls; "a+b" for a world shared by two mechanisms
    labels: tuple[str, ...]  # label ids, for the report
    culprits: frozenset[str] = frozenset()  # normalized root-cause names and aliases
    chain: frozenset[str] = frozenset()  # normalized causal-chain entities
    paging_monitors: frozenset[Any] = frozenset()

    @classmethod
    def from_labels(cls, labels: Sequence[Label]) -> WorldTruth:
        mechs = sorted({lb.ground_truth.mechanism for lb in labels})
        culprits: set[str] = set()
        chain: set[str] = set()
        pages: set[Any] = set()
        for lb in labels:
            gt = lb.ground_truth
            if not gt.no_fault:
                for rc in gt.root_causes:
                    culprits.update(norm(s) for s in [rc.entity, *rc.aliases])
                chain.update(norm(s) for s in gt.causal_chain)
            if lb.task.trigger.monitor_id is not None:
                pages.add(lb.task.trigger.monitor_id)
        return cls("+".join(mechs), tuple(sorted(lb.id for lb in labels)), frozenset(culprits),
                   frozenset(chain | culprits), frozenset(pages))


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class Leak:
    """One value that gives the answer away across the set (one per value and check)."""

    check: str
    severity: str  # "error" | "warning"
    kind: str  # a key of KINDS
    value: str
    message: str
    labels: tuple[str, ...]  # label ids of the worlds where it occurs


def _quote(s: str, limit: int = 110) -> str:
    s = s if len(s) <= limit else s[: limit - 1] + "…"
    return repr(s)


def _and(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _label_list(ids: Sequence[str], limit: int = 4) -> str:
    ids = sorted(ids)
    more = f" (+{len(ids) - limit} more)" if len(ids) > limit else ""
    return ", ".join(ids[:limit]) + more


# --------------------------------------------------------------------------- the census


@dataclass
class _WorldRecord:
    truth: WorldTruth
    # (kind, raw value) -> [where bits, entity of one occurrence]
    values: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    metric_entities: list[tuple[str, str, str]] = field(default_factory=list)  # (metric, entity, kind)


_METRIC_IN_QUERY_RE = re.compile(r"(?:avg|sum|min|max|count|p\d+):([A-Za-z_][A-Za-z0-9_.]*)")
_QUERY_WINDOW_RE = re.compile(r"\b\w+\(last_[^)]*\):")
_QUERY_SOURCE_RE = re.compile(r"^\s*(logs|events|trace-analytics|rum|process|error-tracking)\(")


def _query_metrics(query: str) -> list[str]:
    out = _METRIC_IN_QUERY_RE.findall(_QUERY_WINDOW_RE.sub(" ", query or ""))
    if not out and (m := _QUERY_SOURCE_RE.match(query or "")):
        out = [f"{m.group(1)}()"]
    return sorted(set(out))


_KEY_ONLY = object()  # an attribute whose value is a mapping or list: its key is a value


def _add_attrs(add: Any, attrs: Mapping[str, Any], prefix: str) -> None:
    """Log attributes as ``("log.attr", key, value)`` items (nested keys dotted)."""
    for k, v in attrs.items():
        key = prefix + k if prefix else k
        t = v.__class__
        if t is str:
            add(("log.attr", key, v))
        elif t is int or t is float:
            add(("log.attr", key, "<num>"))
        elif t is dict:
            add(("log.attr", key, _KEY_ONLY))
            _add_attrs(add, v, key + ".")
        elif t is bool or v is None:
            add(("log.attr", key, str(v)))
        else:
            add(("log.attr", key, _KEY_ONLY))


def _expand(item: tuple[Any, ...]) -> list[tuple[str, str]]:
    """The (kind, value) pairs one collected item stands for (several kinds share an item:
    a tag gives its key and its key:value pair, a log status its precision)."""
    kind = item[0]
    if len(item) == 2:
        return [(kind, item[1])]
    a, b = item[1], item[2]
    if kind == "log.status":
        return [(kind, a), ("log.precision", f"{a}: {'whole seconds' if b else 'sub-second'}")]
    if kind == "event.precision":
        return [(kind, f"{a}: {'whole seconds' if b else 'sub-second'}")]
    if kind == "page.tag":
        return [(kind, f"{a}:{b}")]
    key_kind = kind + "_key" if kind != "log.attr" else "log.attr_key"
    if b is _KEY_ONLY:
        return [(key_kind, a)]
    if kind == "span.tag" and a in _SPAN_OWN_TAGS:
        return [(key_kind, a), ("span.error_type" if a == "error.type" else "span.error_message", str(b))]
    return [(key_kind, a), (kind, f"{a}:{b}")]


@contextmanager
def _no_gc() -> Iterator[None]:
    """The cyclic GC off for a while: the census allocates ~10^6 small tuples and sets (none
    in a cycle) while a world of ~10^6 objects is loaded, and every collection the
    allocations trigger walks that world; this halves the census's cost inside lint."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


class Census:
    """Values of every world of a set, judged across the set; see the module docstring.

    ``add_world(data, truth)`` once per world (one pass over its records), then
    ``leaks()``; ``census.worlds`` and ``census.values`` count what was seen.
    """

    def __init__(self, alpha: float = ALPHA, min_worlds: int = MIN_WORLDS):
        self.alpha = alpha
        self.min_worlds = min_worlds
        self._worlds: list[_WorldRecord] = []
        self._names: dict[str, str] = {}  # every entity name of the set -> kind
        self.values = 0  # distinct (kind, value) after masking, set by leaks()
        self.tested = 0  # values seen in >= min_worlds worlds

    @property
    def worlds(self) -> int:
        return len(self._worlds)

    def merge(self, other: Census) -> None:
        """Add the worlds another census recorded (a worker's part of the set)."""
        self._worlds.extend(other._worlds)
        self._add_names(other._names)

    def _add_names(self, names: Mapping[str, str]) -> None:
        """Entity names -> kind; a name of two kinds keeps the one masked first."""
        prio = list(PLACEHOLDERS)
        for n, k in names.items():
            old = self._names.get(n)
            if old is None or prio.index(k) < prio.index(old):
                self._names[n] = k

    # ---------------------------------------------------------------- one world

    def add_world(self, data: Mapping[str, Any], truth: WorldTruth) -> None:
        """Record the values of one world (one pass over its records)."""
        with _no_gc():
            self._add_world(data, truth)

    def _add_world(self, data: Mapping[str, Any], truth: WorldTruth) -> None:
        rec = _WorldRecord(truth)
        topo = data.get("topology") or {}
        services = topo.get("services") or []
        names: dict[str, str] = {}  # this world's names -> kind (masking priority order)
        host_services: dict[str, set[str]] = {}
        for s in services:
            names.setdefault(s["name"].lower(), "service")
            for h in s.get("hosts") or []:
                host_services.setdefault(h, set()).add(s["name"])
        for h in topo.get("hosts") or []:
            names.setdefault(h["name"].lower(), "host")
            if h.get("zone"):
                names.setdefault(h["zone"].lower(), "zone")
        for h in host_services:
            names.setdefault(h.lower(), "host")
        for s in services:
            for key in ("namespace", "cluster"):
                if s.get(key):
                    names.setdefault(s[key].lower(), key)
        for c in topo.get("clusters") or []:
            names.setdefault(c["name"].lower(), "cluster")
            for z in c.get("zones") or []:
                names.setdefault(z.lower(), "zone")
            if c.get("region"):
                names.setdefault(c["region"].lower(), "region")
        self._add_names(names)

        # Values collected per entity (a service, a host, or none), raw; where each entity
        # sits relative to the ground truth is resolved once per (entity, value) at the end.
        per_entity: dict[tuple[str, str], set[tuple[Any, ...]]] = {}

        def bucket(service: Any, host: Any) -> set[tuple[Any, ...]]:
            key = ("s", service) if service else ("h", host) if host else ("", "")
            b = per_entity.get(key)
            if b is None:
                b = per_entity[key] = set()
            return b

        for e in data.get("events") or []:
            tags = e.get("tags") or {}
            add = bucket(tags.get("service"), tags.get("host")).add
            src = str(e.get("source", ""))
            add(("event.source", src))
            add(("event.title", str(e.get("title", ""))))
            for line in str(e.get("text", "")).splitlines():
                add(("event.text", line.strip()))
            for k, v in tags.items():
                add(("event.tag", k, v))
            ts = e["ts"]
            add(("event.precision", src, ts == int(ts)))

        metric_names: set[str] = set()
        for m in data.get("metrics") or []:
            tags = m.get("tags") or {}
            add = bucket(tags.get("service"), tags.get("host")).add
            add(("metric.name", m["metric"]))
            for k, v in tags.items():
                add(("metric.tag", k, v))
            metric_names.add(m["metric"])

        for r in data.get("logs") or []:
            add = bucket(r.get("service"), r.get("host")).add
            status = r.get("status", "info")
            add(("log.template", r.get("message", "")))
            ts = r["ts"]
            add(("log.status", status, ts == int(ts)))
            attrs = r.get("attrs")
            if attrs:
                _add_attrs(add, attrs, "")

        for sp in data.get("spans") or []:
            add = bucket(sp.get("service"), None).add
            add(("span.name", str(sp.get("name", ""))))
            add(("span.resource", str(sp.get("resource", ""))))
            for k, v in (sp.get("tags") or {}).items():
                add(("span.tag", k, v))

        for mon in data.get("monitors") or []:
            tags = mon.get("tags") or {}
            add = bucket(tags.get("service"), tags.get("host")).add
            prefix = "page" if mon.get("id") in truth.paging_monitors else "monitor"
            add((f"{prefix}.name", str(mon.get("name", ""))))
            add((f"{prefix}.type", str(mon.get("type", ""))))
            for metric in _query_metrics(str(mon.get("query", ""))):
                add((f"{prefix}.metric", metric))
            if prefix == "page":
                for k, v in tags.items():
                    add(("page.tag", k, v))

        # Where each service / host sits relative to the ground truth.
        svc_where: dict[str, int] = {}

        def where_service(name: str) -> int:
            w = svc_where.get(name)
            if w is None:
                nm = norm(name)
                w = ON_CULPRIT if nm in truth.culprits else ON_CHAIN if nm in truth.chain else ELSEWHERE
                svc_where[name] = w
            return w

        values = rec.values
        for (what, entity), items in per_entity.items():
            if what == "s":
                where = where_service(entity)
            elif what == "h":  # the host itself (a root cause of kind host), or the most
                # incriminated service on it
                where = max([where_service(entity), *(where_service(s) for s in host_services.get(entity, ()))])
            else:
                where = ELSEWHERE
            for item in items:
                for key in _expand(item):
                    if not key[1]:
                        continue
                    slot = values.get(key)
                    if slot is None:
                        values[key] = [where, entity]
                    else:
                        slot[0] |= where

        # Metric names that carry an entity name of this world (as words of one segment).
        ent_names = {n.replace("_", "-"): k for n, k in names.items() if k in ("service", "host") and len(n) >= 3}
        for metric in sorted(metric_names):
            for segment in metric.lower().split("."):
                words = re.split(r"[-_]", segment)
                i = 0
                while i < len(words):
                    for j in range(len(words), i, -1):  # the longest name starting at word i
                        cand = "-".join(words[i:j])
                        if cand in ent_names:
                            rec.metric_entities.append((metric, cand, ent_names[cand]))
                            i = j - 1
                            break
                    i += 1
        self._worlds.append(rec)

    # ---------------------------------------------------------------- the set

    def leaks(self) -> list[Leak]:
        """Judge every value across the worlds added so far (see the module docstring)."""
        with _no_gc():
            return self._leaks()

    def _leaks(self) -> list[Leak]:
        masker = Masker(self._names)
        # (kind, template) -> {world index: [where, entity, example]}
        merged: dict[tuple[str, str], dict[int, list[Any]]] = {}
        for wi, rec in enumerate(self._worlds):
            for (kind, raw), (where, ent) in rec.values.items():
                tpl = masker(raw) if kind in _TEXT else masker.value(raw) if kind in _PAIRS else raw
                per = merged.setdefault((kind, tpl), {})
                slot = per.get(wi)
                if slot is None:
                    per[wi] = [where, ent, raw]
                else:
                    slot[0] |= where
                    # the example is the least raw value, not the first a set yields: the
                    # report must not depend on the interpreter's hash seed
                    if (raw, ent or "") < (slot[2], slot[1] or ""):
                        slot[1], slot[2] = ent, raw
        self.values = len(merged)
        n_worlds = len(self._worlds)
        per_class: dict[str, int] = {}
        for rec in self._worlds:
            per_class[rec.truth.mechanism] = per_class.get(rec.truth.mechanism, 0) + 1
        tested = [(key, per) for key, per in merged.items() if len(per) >= self.min_worlds]
        self.tested = len(tested)
        threshold = self.alpha / max(1, len(tested))
        out: list[Leak] = []
        for (kind, value), per in sorted(tested, key=lambda x: (x[0][0], x[0][1])):
            n = len(per)
            labels = tuple(lid for wi in per for lid in self._worlds[wi].truth.labels)
            what = f"{KINDS[kind]} {_quote(value)}"
            wi0, (_, ent0, ex0) = next(iter(per.items()))
            example = f"e.g. {self._worlds[wi0].truth.labels[0]}" + (f" on {ent0}" if ent0 else "")
            if kind in _MASKED and ex0 != value:
                example += f": {_quote(ex0, 90)}"
            classes = {self._worlds[wi].truth.mechanism for wi in per}
            if len(classes) == 1:
                mech = next(iter(classes))
                k = per_class[mech]
                p = math.comb(k, n) / math.comb(n_worlds, n)
                sev = "error" if p <= threshold else "warning"
                tail = "" if sev == "error" else "; too little support to rule out chance"
                out.append(Leak(
                    "leak.exclusive_mechanism", sev, kind, value,
                    f"{what} occurs only in {mech} worlds ({n} of its {k}, none of the other "
                    f"{n_worlds - k}; p={p:.1e}{tail}): {_label_list(labels)}; {example}",
                    labels,
                ))
            elif len(classes) <= MAX_CLASSES:
                # A few mechanisms: the subset is chosen after the fact, hence the factor.
                k = sum(per_class[c] for c in classes)
                p = math.comb(len(per_class), len(classes)) * math.comb(k, n) / math.comb(n_worlds, n)
                if p <= threshold:
                    out.append(Leak(
                        "leak.exclusive_mechanism", "error", kind, value,
                        f"{what} occurs only in {_and(sorted(classes))} worlds ({n} of their {k}, "
                        f"none of the other {n_worlds - k}; p={p:.1e}): {_label_list(labels)}; {example}",
                        labels,
                    ))
            wheres = [slot[0] for slot in per.values()]
            if all(w == ON_CULPRIT for w in wheres):
                out.append(Leak(
                    "leak.culprit_only", "error", kind, value,
                    f"{what} occurs only on the culprit, in all {n} worlds where it occurs "
                    f"({', '.join(sorted(classes))}): {_label_list(labels)}; {example}",
                    labels,
                ))
            elif not kind.startswith("page.") and all(not (w & ELSEWHERE) for w in wheres):
                # (the page watches the end of the chain by construction: not a leak)
                out.append(Leak(
                    "leak.chain_only", "warning", kind, value,
                    f"{what} occurs only on the causal chain, in all {n} worlds where it occurs "
                    f"({', '.join(sorted(classes))}): {_label_list(labels)}; {example}",
                    labels,
                ))
        out.extend(self._metric_entity_leaks())
        out.sort(key=lambda x: (x.check, x.severity != "error", -len(x.labels), x.kind, x.value))
        return out

    def _metric_entity_leaks(self) -> list[Leak]:
        groups: dict[str, list[tuple[int, str, str, str]]] = {}
        for wi, rec in enumerate(self._worlds):
            for metric, name, kind in rec.metric_entities:
                low = metric.lower()
                pattern = low.replace(name, f"<{kind}>").replace(name.replace("-", "_"), f"<{kind}>")
                groups.setdefault(pattern, []).append((wi, metric, name, kind))
        out = []
        for pattern, hits in sorted(groups.items()):
            labels = tuple(sorted({lid for wi, *_ in hits for lid in self._worlds[wi].truth.labels}))
            wi, metric, name, kind = hits[0]
            on_culprit = sum(1 for w, _, n, k in hits
                             if k == "service" and norm(n) in self._worlds[w].truth.culprits)
            culprit = f"; the culprit in {on_culprit} of {len(hits)}" if on_culprit else ""
            out.append(Leak(
                "leak.entity_in_metric_name", "error", "metric.name", pattern,
                f"metric name pattern {_quote(pattern)} carries an entity name of its world "
                f"({len(hits)} metric(s){culprit}): {_label_list(labels)}; e.g. "
                f"{self._worlds[wi].truth.labels[0]}: {metric!r} names {kind} {name}",
                labels,
            ))
        return out
