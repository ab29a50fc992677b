"""The capture procedure: what is asked of Datadog, in which order, under which caps.

1. **Seed.** ``--monitor``: ``GET /api/v1/monitor/{id}`` (group states): its last alert gives
   the incident window, its ``service`` tag (else a ``service:`` term of its query) the seed.
   ``--incident``: ``GET /api/v2/incidents/{id}``: its impact window and its services.
2. **Catalog.** ``GET /api/v2/services/definitions`` pages (100 each) -> services, teams and
   each service's groupings (application, system, platform).
3. **Scope** (``scope.py`` decides, in this order of precedence, at most ``max_services``):
   the seeds; ``GET /api/v2/catalog/relation?filter[from_ref]=service:<s>`` for the seeds,
   then hop by hop up to ``depth`` (both directions), nearest first; then the widenings:
   *monitor* (the seeds' monitors, ``GET /api/v1/monitor?monitor_tags=service:<seed>``, the
   same pieces as in step 4; those that alerted or warned in the incident window and the
   ``--monitor`` are the paged ones: the services their tags, queries and group names name,
   then for each name template ``GET /api/v1/monitor?name=<its longest literal part>``, the
   services of the monitors of the same template), *team*, *platform*, *similar-name*. Why
   each kept service is in goes to the manifest (``store.py``). Every scoped service's
   relations are read (its edges); services at the other end of an edge join the catalog
   (without telemetry).
4. **Per scoped service** (in parallel):
   - logs ``POST /api/v2/logs/events/search``: ``service:<s> status:(emergency OR alert OR
     critical OR error)`` newest first, in full up to ``max_error_logs``; the rest
     (``-status:(...)``) whole if it fits in one page of ``max_other_logs``, else sampled:
     the window cut in ``sample_slices`` slices, the newest ``max_other_logs / slices`` of each;
   - spans ``POST /api/v2/spans/events/search``: ``status:error`` in full up to
     ``max_error_spans``, the rest sampled like logs up to ``max_other_spans``;
   - events ``GET /api/v2/events`` ``service:<s>`` up to ``max_events``;
   - monitors ``GET /api/v1/monitor?monitor_tags=service:<s>&group_states=all`` (once per
     capture: the seeds' were read in step 3);
   - metric names ``GET /api/v1/metrics?from=<start>&tag_filter=service:<s>``.
   Plus events without a service tag (``-service:*``), up to ``max_events``.
5. **Metrics.** Per metric name: its tag keys (``GET /api/v2/metrics/{name}/all-tags``) and type
   (``GET /api/v1/metrics/{name}``; when that is unavailable, ``trace.*.hits|errors`` and
   ``*.count`` are counts, the rest gauges). Per metric and service, ``GET /api/v1/query`` of
   ``<avg|sum>:<metric>{service:<s>} by {<its other tag keys>}.rollup(<avg|sum>, <rollup>)``
   (sum for counts) over the world's window in chunks of ``max_points`` points; a chunk whose
   answer comes back coarser than the rollup or cut is split in two (down to 10 points).
   Grouping by every tag key gives back one series per original series.
6. **Hosts.** The hosts seen in the scope's logs, spans and series (at most ``max_hosts``): their
   metrics without a ``service`` tag (``GET /api/v1/metrics?host=<h>``), queried as above with
   ``{host:<h>}``.
7. **Traces.** The whole trace of each error span's trace id (at most ``max_traces``, in scope
   order): the spans search ``trace_id:<id>`` over the window widened by an hour each side.

Every answer is one piece of the capture directory (``store.py``), redacted before it is
written; the procedure only reads pieces, so a resumed capture takes the same decisions.
A refused optional query (400/404: an endpoint or a filter the server does not offer) is
stored as an empty piece with a note, and the capture goes on.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from evaluator_agent.capture import convert as cv
from evaluator_agent.capture import scope as sc
from evaluator_agent.capture.client import DatadogError, DatadogReader
from evaluator_agent.capture.options import CaptureOptions, OptionsError
from evaluator_agent.capture.progress import Progress
from evaluator_agent.capture.store import CaptureStore

__all__ = ["Captured", "Progress", "run_capture"]

_ERR = "status:(emergency OR alert OR critical OR error)"
_COUNT_NAME = re.compile(r"(^trace\..+\.(hits|errors)(\.by_http_status)?$)|(\.count$)")
TRACE_MARGIN_S = 3600
MAX_DEFINITION_PAGES = 50
MAX_RELATION_PAGES = 10
MAX_MONITOR_PAGES = 5
MAX_TRACE_SPANS = 1000


@dataclass
class Captured:
    """Everything a capture fetched, as world records (deduplicated and capped by ``build``)."""

    options: CaptureOptions
    world_start: int
    incident_start: int
    incident_end: int
    seeds: list[str]
    scope: list[str]
    catalog: dict[str, dict[str, Any]]
    teams: dict[str, dict[str, str]]
    edges: list[dict[str, str]]
    logs: list[dict[str, Any]] = field(default_factory=list)
    spans: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    monitors: list[dict[str, Any]] = field(default_factory=list)
    series: list[dict[str, Any]] = field(default_factory=list)  # records with "points"
    trigger: dict[str, Any] | None = None
    incident: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    scope_info: dict[str, Any] = field(default_factory=dict)  # why each scoped service is in (Scope.describe)


def _next(body: dict[str, Any]) -> str | None:
    page = (body.get("meta") or {}).get("page") or {}
    after = page.get("after") if isinstance(page, dict) else None
    return after if isinstance(after, str) and after else None


class _Run:
    def __init__(self, opts: CaptureOptions, reader: DatadogReader, store: CaptureStore, progress: Progress,
                 workers: int):
        self.o = opts
        self.r = reader
        self.s = store
        self.p = progress
        self.workers = max(1, workers)
        self.notes: list[str] = []
        self._lock = threading.Lock()
        self.env = f" env:{cv.quote(opts.env)}" if opts.env else ""
        self.incident: dict[str, Any] | None = None
        self.groups: dict[str, list[list[str]]] = {}  # service -> its groupings (catalog)
        self.trigger_groups: list[str] = []  # the seed monitor's group names
        self._monitors: dict[str, tuple[list[dict], dict[str, list[str]]]] = {}

    def note(self, text: str) -> None:
        with self._lock:
            self.notes.append(text)

    def each(self, items: Iterable[Any], fn: Callable[[Any], Any]) -> list[Any]:
        items = list(items)
        if self.workers == 1 or len(items) < 2:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(self.workers, thread_name_prefix="capture") as ex:
            futures = [ex.submit(fn, x) for x in items]
            try:
                return [f.result() for f in futures]
            except BaseException:
                for f in futures:
                    f.cancel()
                raise

    def optional(self, kind: str, name: str, get: Callable[[], tuple[Any, dict[str, Any]]],
                 empty: Any, quiet: bool = False) -> tuple[Any, dict[str, Any]]:
        """A piece whose 400/404 refusal is a note, not the end of the capture."""
        def guarded() -> tuple[Any, dict[str, Any]]:
            try:
                return get()
            except DatadogError as e:
                if e.status in (400, 404):
                    return empty, {"error": str(e)[:300]}
                raise

        data, meta = self.s.fetch(kind, name, guarded)
        if meta.get("error") and not quiet:
            self.note(f"{kind} {name}: refused: {meta['error']}")
        return data, meta

    # ------------------------------------------------------------------ seed

    def seed(self) -> tuple[list[str], int, int, dict[str, Any] | None]:
        o = self.o
        trigger = None
        start, end, seeds = o.start, o.end, list(o.services)
        if o.monitor_id is not None:
            self.p.enter("monitor")
            def get() -> tuple[Any, dict[str, Any]]:
                body = self.r.monitor(o.monitor_id)
                return [cv.monitor_record(body)], {"groups": cv.monitor_groups(body)}

            data, meta = self.s.fetch("monitor", str(o.monitor_id), get)
            trigger = data[0]
            self.trigger_groups = list(meta.get("groups") or [])
            if trigger is None:
                raise OptionsError(f"monitor {o.monitor_id}: not a monitor")
            fired = cv.last_alert(trigger)
            if fired is None and (start is None or end is None):
                raise OptionsError(f"monitor {o.monitor_id} has no alert to start from: give --from and --to")
            if start is None:
                start = int(fired - o.before_s)  # type: ignore[operator]
            if end is None:
                end = int(math.ceil(fired + o.after_s))  # type: ignore[operator]
            if not seeds:
                svc = next(iter(sc.services_named(trigger)), None)  # its service tag, else its query's
                if not svc:
                    raise OptionsError(f"monitor {o.monitor_id} names no service (tag or query): give --service")
                seeds = [svc]
        if o.incident_id is not None:
            self.p.enter("incident")
            data, _ = self.s.fetch("incident", str(o.incident_id),
                                   lambda: (cv.incident_record(self.r.incident(str(o.incident_id))), {}))
            if data is None:
                raise OptionsError(f"incident {o.incident_id}: no start time (impact, detection, declaration or creation)")
            self.incident = data
            if start is None:
                start = int(data["start"] - o.before_s)
            if end is None:
                end = int(math.ceil((data["end"] or data["start"]) + o.after_s))
            if not seeds:
                seeds = list(data["services"])
                if not seeds:
                    raise OptionsError(f"incident {o.incident_id} names no service: give --service")
        assert start is not None and end is not None
        return seeds, int(start), int(end), trigger

    # ------------------------------------------------------------------ catalog and scope

    def catalog(self) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, str]]]:
        """The catalog's services and teams; each service's groupings go to ``self.groups``."""
        self.p.enter("catalog")
        services: dict[str, dict[str, Any]] = {}
        teams: dict[str, dict[str, str]] = {}
        for page in range(MAX_DEFINITION_PAGES):
            def get(page: int = page) -> tuple[Any, dict[str, Any]]:
                items = self.r.service_definitions(page, 100).get("data") or []
                return ({"services": [x for x in map(cv.service_of_definition, items) if x],
                         "teams": [x for x in map(cv.team_of_definition, items) if x],
                         "groups": [x for x in map(cv.groups_of_definition, items) if x]}, {"count": len(items)})

            data, meta = self.optional("catalog", f"definitions-p{page}", get, {"services": [], "teams": []})
            for s in data["services"]:
                services.setdefault(s["name"], s)
            for t in data["teams"]:
                teams.setdefault(t["name"], t)
            for g in data.get("groups") or []:
                self.groups.setdefault(g["service"], g["groups"])
            if meta.get("error"):
                if page == 0:
                    self.note(f"service definitions unavailable: {meta['error']}")
                break
            if int(meta.get("count") or 0) < 100:
                break
        return services, teams

    def relations(self, service: str) -> list[dict[str, str]]:
        edges: list[dict[str, str]] = []
        for page in range(MAX_RELATION_PAGES):
            def get(page: int = page) -> tuple[Any, dict[str, Any]]:
                body = self.r.relations(service, page * 100, 100)
                items = body.get("data") or []
                more = bool((body.get("links") or {}).get("next")) and len(items) == 100
                return cv.edges_of_relations(items), {"more": more}

            data, meta = self.optional("relations", f"{service}|p{page}", get, [])
            edges += data
            if not meta.get("more"):
                break
        return edges

    def scope(self, seeds: list[str], catalog: dict[str, dict[str, Any]], trigger: dict[str, Any] | None,
              world: tuple[int, int, int]) -> tuple[sc.Scope, dict[str, list]]:
        """Seeds, dependency hops (both directions, nearest first, up to ``depth``), then the
        widenings of ``scope.py``, at most ``max_services``; and the relations of the kept ones.
        ``world``: (world start, incident start, incident end)."""
        self.p.enter("scope")
        o = self.o
        rel: dict[str, list[dict[str, str]]] = {}
        seeds = list(dict.fromkeys(seeds))
        hops: list[list[str]] = []
        seen = set(seeds)
        frontier = seeds
        for _depth in range(1, o.depth + 1):
            if len(seen) >= o.max_services:
                break
            todo = [s for s in frontier if s not in rel]
            for s, edges in zip(todo, self.each(todo, self.relations), strict=True):
                rel[s] = edges
            nxt = sorted({n for s in frontier for e in rel[s] for n in (e["source"], e["target"])} - seen)
            if not nxt:
                break
            seen.update(nxt)
            hops.append(nxt)
            frontier = nxt
        widen: dict[str, list[str]] = {}
        if o.same_monitor:
            widen["monitor"] = self.monitor_scope(seeds, trigger, world)
        if o.same_team:
            seed_teams = {catalog[s]["team"] for s in seeds if s in catalog and catalog[s]["team"]}
            widen["team"] = sorted(n for n, s in catalog.items() if s["team"] in seed_teams)
        if o.same_platform:
            widen["platform"] = sc.platform_members(seeds, self.groups, catalog, self.note)
        if o.similar_names:
            widen["similar-name"] = sc.similar_names(seeds, catalog)
        scope = sc.assemble(seeds, hops, widen, o.max_services)
        todo = [s for s in scope.services if s not in rel]
        for s, edges in zip(todo, self.each(todo, self.relations), strict=True):
            rel[s] = edges
        found = len(scope.services) + sum(scope.cut.values())
        if scope.cut:
            self.note(f"scope: {found} services found, the first {o.max_services} kept (max_services); cut: "
                      + ", ".join(f"{k} {v}" for k, v in scope.cut.items()))
        return scope, rel

    def monitor_scope(self, seeds: list[str], trigger: dict[str, Any] | None, world: tuple[int, int, int]) -> list[str]:
        """The ``monitor`` widening: the services the paged monitors name, then those of their
        name families (those that alerted in the world's window first)."""
        w0, i0, i1 = world
        paged = [(trigger, self.trigger_groups)] if trigger is not None else []
        for recs, groups in self.each(seeds, self.monitors_of):
            paged += [(m, groups.get(str(m["id"]), [])) for m in recs if sc.alerted_between(m, i0, i1)]
        named = [n for m, g in paged for n in sc.services_named(m, g)]
        fired: list[str] = []
        rest: list[str] = []
        templates = sorted({sc.monitor_template(m["name"], sc.services_named(m, g)) for m, g in paged})
        for template in templates:
            fragment = sc.name_fragment(template)
            if fragment is None:
                self.note(f"scope: monitor name {template!r} has no literal part to search its family by")
                continue
            recs, groups = self.monitor_pages("monitor-family", fragment, lambda page, f=fragment: self.r.monitors(
                page, 100, name=f))
            for m in recs:
                names = sc.services_named(m, groups.get(str(m["id"]), []))
                if sc.monitor_template(m["name"], names) == template:
                    (fired if sc.alerted_between(m, w0, i1) else rest).extend(names)
        return list(dict.fromkeys([*named, *sorted(set(fired)), *sorted(set(rest))]))

    def monitor_pages(self, kind: str, key: str, call: Callable[[int], Any]) -> tuple[list[dict], dict[str, list[str]]]:
        """Pages of a monitor listing: the converted monitors and the group names of those with
        groups (by monitor id)."""
        monitors: list[dict[str, Any]] = []
        groups: dict[str, list[str]] = {}
        for page in range(MAX_MONITOR_PAGES):
            def get(page: int = page) -> tuple[Any, dict[str, Any]]:
                body = call(page)
                items = body if isinstance(body, list) else []
                named = {str(m["id"]): g for m in items if isinstance(m, dict) and m.get("id") is not None
                         and (g := cv.monitor_groups(m))}
                return [x for x in map(cv.monitor_record, items) if x], {"count": len(items), "groups": named}

            data, meta = self.optional(kind, f"{key}|p{page}", get, [])
            monitors += data
            groups.update(meta.get("groups") or {})
            if int(meta.get("count") or 0) < 100:
                break
            if page == MAX_MONITOR_PAGES - 1:
                self.note(f"{kind} {key}: cut at {MAX_MONITOR_PAGES * 100} monitors")
        return monitors, groups

    def monitors_of(self, service: str) -> tuple[list[dict], dict[str, list[str]]]:
        """A service's monitors (``service:<s>`` monitor tag), read once per capture."""
        with self._lock:
            got = self._monitors.get(service)
        if got is None:
            got = self.monitor_pages("monitors", service, lambda page: self.r.monitors(
                page, 100, monitor_tags=f"service:{service}"))
            with self._lock:
                self._monitors[service] = got
        return got

    # ------------------------------------------------------------------ searches

    def search(self, kind: str, name: str, call: Callable[..., Any], convert: Callable[[dict], Any],
               query: str, frm: float, to: float, cap: int) -> tuple[list[Any], bool]:
        """Pages of one search, newest first, up to ``cap`` records; (records, more left)."""
        out: list[Any] = []
        cursor: str | None = None
        page = 0
        while len(out) < cap:
            limit = min(self.o.page_size, cap - len(out))

            def get(limit: int = limit, cursor: str | None = cursor) -> tuple[Any, dict[str, Any]]:
                body = call(query, frm, to, limit, cursor)
                return [x for x in map(convert, body.get("data") or []) if x], {"next": _next(body)}

            data, meta = self.optional(kind, f"{name}|{query}|{frm}|{to}|{limit}|p{page}", get, [])
            out += data
            cursor = meta.get("next")
            page += 1
            if not cursor or not data:
                return out, bool(cursor)
        return out, bool(cursor)

    def sample(self, kind: str, name: str, call: Callable[..., Any], convert: Callable[[dict], Any],
               query: str, frm: float, to: float, cap: int) -> list[Any]:
        """All records when they fit in one page of ``cap``; else the newest of each of
        ``sample_slices`` slices of the window."""
        if cap <= 0:
            return []
        first, more = self.search(kind, name + "|probe", call, convert, query, frm, to, min(cap, self.o.page_size))
        if not more:
            return first
        k = min(self.o.sample_slices, cap)
        per = math.ceil(cap / k)
        out: list[Any] = []
        more_left: list[bool] = []
        for i in range(k):
            a = frm + (to - frm) * i / k
            b = frm + (to - frm) * (i + 1) / k - (0.001 if i < k - 1 else 0)
            got, more = self.search(kind, f"{name}|slice{i}of{k}", call, convert, query, round(a, 3), round(b, 3), per)
            out += got
            more_left.append(more)
        if len(out) > cap or any(m for m in more_left):
            self.note(f"{kind} {name}: sampled {len(out[:cap])} records over {k} slices of the window")
        return out[:cap]

    def service_data(self, s: str, t0: int, t1: int) -> dict[str, Any]:
        o, r = self.o, self.r
        q = f"service:{cv.quote(s)}{self.env}"
        logs, more = self.search("logs", s, r.logs, lambda x: cv.log_record(x, s), f"{q} {_ERR}", t0, t1, o.max_error_logs)
        if more:
            self.note(f"logs {s}: error logs cut at {o.max_error_logs} (newest kept)")
        logs += self.sample("logs", s, r.logs, lambda x: cv.log_record(x, s), f"{q} -{_ERR}", t0, t1, o.max_other_logs)
        spans, more = self.search("spans", s, r.spans, cv.span_record, f"{q} status:error", t0, t1, o.max_error_spans)
        if more:
            self.note(f"spans {s}: error spans cut at {o.max_error_spans} (newest kept)")
        error_traces = list(dict.fromkeys(x["trace_id"] for x in spans))
        spans += self.sample("spans", s, r.spans, cv.span_record, f"{q} -status:error", t0, t1, o.max_other_spans)
        events, more = self.search("events", s, r.events, cv.event_record, q, t0, t1, o.max_events)
        if more:
            self.note(f"events {s}: cut at {o.max_events} (newest kept)")
        monitors = self.monitors_of(s)[0]
        names, _ = self.optional("metric-names", f"service:{s}",
                                 lambda: (sorted((r.active_metrics(t0, tag_filter=f"service:{s}")).get("metrics") or []), {}),
                                 [])
        return {"logs": logs, "spans": spans, "events": events, "monitors": monitors, "metrics": names,
                "error_traces": error_traces}

    # ------------------------------------------------------------------ metrics

    def metric_info(self, name: str) -> tuple[list[str], str]:
        keys, _ = self.optional("metric-tags", name, lambda: (sorted({
            t.partition(":")[0] for t in ((self.r.metric_tags(name).get("data") or {}).get("attributes") or {}).get("tags") or []
            if isinstance(t, str) and t}), {}), [])
        mtype, _ = self.optional("metric-type", name, lambda: (str(self.r.metric_metadata(name).get("type") or ""), {}), "",
                                  quiet=True)
        if mtype not in ("gauge", "count", "rate"):
            mtype = "count" if _COUNT_NAME.search(name) else ("rate" if mtype == "rate" else "gauge")
        return keys, mtype

    def query_series(self, metric: str, mtype: str, keys: list[str], filt: dict[str, str], t0: int, t1: int) -> list[dict]:
        agg = "sum" if mtype == "count" else "avg"
        scope = ",".join(f"{k}:{cv.quote(v)}" for k, v in filt.items())
        by = [k for k in keys if k not in filt]
        query = f"{agg}:{metric}{{{scope}}}" + (f" by {{{','.join(by)}}}" if by else "") + f".rollup({agg}, {self.o.rollup_s})"
        span = self.o.rollup_s * self.o.max_points
        out: list[dict] = []
        a = t0
        while a <= t1:
            b = min(t1, a + span)
            out += self.chunk(query, metric, mtype, filt, a, b)
            a = b + 1
        return out

    def chunk(self, query: str, metric: str, mtype: str, filt: dict[str, str], a: int, b: int) -> list[dict]:
        def get() -> tuple[Any, dict[str, Any]]:
            body = self.r.query(a, b, query)
            recs = cv.series_records(body, filt, mtype)
            coarse = any(x["interval"] > self.o.rollup_s for x in recs)
            cut = "showing" in str(body.get("message") or "") or "truncated" in str(body.get("message") or "")
            return recs, {"split": coarse or cut}

        data, meta = self.optional("metrics", f"{query}|{a}|{b}", get, [])
        if meta.get("split") and (b - a) >= 20 * self.o.rollup_s:
            mid = a + ((b - a) // 2 // self.o.rollup_s) * self.o.rollup_s
            return self.chunk(query, metric, mtype, filt, a, mid) + self.chunk(query, metric, mtype, filt, mid + 1, b)
        if meta.get("split"):
            self.note(f"metrics {query}: coarser than the rollup or cut between {a} and {b}")
        return data

    # ------------------------------------------------------------------ traces

    def trace(self, trace_id: str, t0: int, t1: int) -> list[dict]:
        spans, more = self.search("traces", trace_id, self.r.spans, cv.span_record, f"trace_id:{trace_id}",
                                  t0 - TRACE_MARGIN_S, t1 + TRACE_MARGIN_S, MAX_TRACE_SPANS)
        if more:
            self.note(f"trace {trace_id}: cut at {MAX_TRACE_SPANS} spans")
        return spans


def run_capture(opts: CaptureOptions, reader: DatadogReader, store: CaptureStore,
                progress: Progress | None = None, workers: int = 4) -> Captured:
    """Fetch the world of one incident (every answer through ``store``); see the module docstring."""
    opts.validate()
    progress = progress or Progress(None)
    run = _Run(opts, reader, store, progress, workers)
    seeds, inc_start, inc_end, trigger = run.seed()
    t0, t1 = inc_start - opts.baseline_s, inc_end
    catalog, teams = run.catalog()
    scoped, rel = run.scope(seeds, catalog, trigger, (t0, inc_start, inc_end))
    store.record_scope(scoped.describe())  # the manifest says why each service is in
    scope = scoped.services
    in_scope = set(scope)
    edges = [e for s in scope for e in rel.get(s, []) if e["source"] in in_scope or e["target"] in in_scope]

    progress.enter(f"telemetry of {len(scope)} services")
    per = dict(zip(scope, run.each(scope, lambda s: run.service_data(s, t0, t1)), strict=True))
    unowned, _ = run.search("events", "(no service)", reader.events, cv.event_record, f"-service:*{run.env}".strip(),
                            t0, t1, opts.max_events)
    captured = Captured(opts, t0, inc_start, inc_end, seeds, scope, catalog, teams, edges, trigger=trigger,
                        incident=run.incident, scope_info=scoped.describe())
    for s in scope:
        d = per[s]
        captured.logs += d["logs"]
        captured.spans += d["spans"]
        captured.events += d["events"]
        captured.monitors += d["monitors"]
    captured.events += unowned
    if trigger is not None:
        captured.monitors.append(trigger)

    progress.enter("metrics")
    names = sorted({n for s in scope for n in per[s]["metrics"]})
    info = dict(zip(names, run.each(names, run.metric_info), strict=True))
    jobs = [(n, s) for s in scope for n in per[s]["metrics"]]
    filt_env = {"env": opts.env} if opts.env else {}
    for got in run.each(jobs, lambda j: run.query_series(j[0], info[j[0]][1], info[j[0]][0],
                                                         {"service": j[1], **filt_env}, t0, t1)):
        captured.series += got

    if opts.host_metrics:
        hosts = sorted({x["host"] for x in captured.logs if x["service"] in in_scope and x["host"]}
                       | {x["tags"]["host"] for x in captured.spans if x["tags"].get("host")}
                       | {x["tags"]["host"] for x in captured.series if x["tags"].get("host")})
        if len(hosts) > opts.max_hosts:
            run.note(f"hosts: {len(hosts)} seen, the first {opts.max_hosts} kept (max_hosts)")
            hosts = hosts[: opts.max_hosts]
        progress.enter(f"metrics of {len(hosts)} hosts")
        host_names = run.each(hosts, lambda h: run.optional(
            "metric-names", f"host:{h}", lambda: (sorted(reader.active_metrics(t0, host=h).get("metrics") or []), {}), [])[0])
        new = sorted({n for ns in host_names for n in ns} - set(info))
        info.update(zip(new, run.each(new, run.metric_info), strict=True))
        jobs2 = [(n, h) for h, ns in zip(hosts, host_names, strict=True) for n in ns if "service" not in info[n][0]]
        for got in run.each(jobs2, lambda j: run.query_series(j[0], info[j[0]][1], info[j[0]][0],
                                                              {"host": j[1], **filt_env}, t0, t1)):
            captured.series += got

    progress.enter("traces")
    trace_ids = list(dict.fromkeys(t for s in scope for t in per[s]["error_traces"]))
    if len(trace_ids) > opts.max_traces:
        run.note(f"traces: {len(trace_ids)} error traces, the first {opts.max_traces} kept (max_traces)")
        trace_ids = trace_ids[: opts.max_traces]
    for spans in run.each(trace_ids, lambda t: run.trace(t, t0, t1)):
        captured.spans += spans
    captured.notes = sorted(run.notes)
    return captured
