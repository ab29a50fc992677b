"""The capture procedure: what is asked of Datadog, in which order, under which caps.

1. **Seed.** ``--monitor``: ``GET /api/v1/monitor/{id}`` (group states): its last alert gives
   the incident window, its ``service`` tag (else a ``service:`` term of its query) the seed.
   ``--incident``: ``GET /api/v2/incidents/{id}``: its impact window and its services.
2. **Catalog.** ``GET /api/v2/services/definitions`` pages (100 each) -> services and teams.
3. **Scope.** ``GET /api/v2/catalog/relation?filter[from_ref]=service:<s>`` for the seeds, then
   hop by hop up to ``depth`` (both directions); the seeds' teams join after the first hop;
   at most ``max_services``. Every scoped service's relations are read (its edges); services
   at the other end of an edge join the catalog (without telemetry).
4. **Per scoped service** (in parallel):
   - logs ``POST /api/v2/logs/events/search``: ``service:<s> status:(emergency OR alert OR
     critical OR error)`` newest first, in full up to ``max_error_logs``; the rest
     (``-status:(...)``) whole if it fits in one page of ``max_other_logs``, else sampled:
     the window cut in ``sample_slices`` slices, the newest ``max_other_logs / slices`` of each;
   - spans ``POST /api/v2/spans/events/search``: ``status:error`` in full up to
     ``max_error_spans``, the rest sampled like logs up to ``max_other_spans``;
   - events ``GET /api/v2/events`` ``service:<s>`` up to ``max_events``;
   - monitors ``GET /api/v1/monitor?monitor_tags=service:<s>&group_states=all``;
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
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TextIO

from evaluator_agent.capture import convert as cv
from evaluator_agent.capture.client import DatadogError, DatadogReader
from evaluator_agent.capture.options import CaptureOptions, OptionsError
from evaluator_agent.capture.store import CaptureStore

__all__ = ["Captured", "Progress", "run_capture"]

_ERR = "status:(emergency OR alert OR critical OR error)"
_COUNT_NAME = re.compile(r"(^trace\..+\.(hits|errors)(\.by_http_status)?$)|(\.count$)")
_SERVICE_TERM = re.compile(r"\bservice:([A-Za-z0-9_.\-/]+)")
TRACE_MARGIN_S = 3600
MAX_DEFINITION_PAGES = 50
MAX_RELATION_PAGES = 10
MAX_MONITOR_PAGES = 5
MAX_TRACE_SPANS = 1000


class Progress:
    """Progress lines on stderr: the phase, pieces fetched / resumed, waits; at most one line a
    second (and one per phase)."""

    def __init__(self, stream: TextIO | None = sys.stderr, interval_s: float = 1.0):
        self.stream = stream
        self.interval_s = interval_s
        self.phase = ""
        self.fetched = 0
        self.resumed = 0
        self._last = 0.0
        self._t0 = time.monotonic()
        self._lock = threading.Lock()

    def say(self, text: str) -> None:
        if self.stream is not None:
            print(f"capture: {text}", file=self.stream, flush=True)

    def enter(self, phase: str) -> None:
        with self._lock:
            self.phase = phase
        self._line(force=True)

    def piece(self, kind: str, resumed: bool) -> None:
        with self._lock:
            if resumed:
                self.resumed += 1
            else:
                self.fetched += 1
        self._line()

    def wait(self, what: str, seconds: float, status: int) -> None:
        why = "rate limited (429)" if status == 429 else f"transient error ({status or 'no answer'})"
        self.say(f"{why} on {what}: waiting {seconds:.1f} s")

    def _line(self, force: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            if not force and now - self._last < self.interval_s:
                return
            self._last = now
            text = (f"[{self.phase}] {self.fetched} pieces fetched, {self.resumed} resumed, "
                    f"{now - self._t0:.1f} s")
        self.say(text)


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
            data, _ = self.s.fetch("monitor", str(o.monitor_id),
                                   lambda: ([cv.monitor_record(self.r.monitor(o.monitor_id))], {}))
            trigger = data[0]
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
                svc = trigger["tags"].get("service") or next(iter(_SERVICE_TERM.findall(trigger["query"])), None)
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
        self.p.enter("catalog")
        services: dict[str, dict[str, Any]] = {}
        teams: dict[str, dict[str, str]] = {}
        for page in range(MAX_DEFINITION_PAGES):
            def get(page: int = page) -> tuple[Any, dict[str, Any]]:
                items = self.r.service_definitions(page, 100).get("data") or []
                return ({"services": [x for x in map(cv.service_of_definition, items) if x],
                         "teams": [x for x in map(cv.team_of_definition, items) if x]}, {"count": len(items)})

            data, meta = self.optional("catalog", f"definitions-p{page}", get, {"services": [], "teams": []})
            for s in data["services"]:
                services.setdefault(s["name"], s)
            for t in data["teams"]:
                teams.setdefault(t["name"], t)
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

    def scope(self, seeds: list[str], catalog: dict[str, dict[str, Any]]) -> tuple[list[str], dict[str, list]]:
        self.p.enter("scope")
        o = self.o
        rel: dict[str, list[dict[str, str]]] = {}
        levels: list[list[str]] = [list(dict.fromkeys(seeds))]
        seen = set(levels[0])
        team_members: list[str] = []
        if o.same_team:
            seed_teams = {catalog[s]["team"] for s in seeds if s in catalog and catalog[s]["team"]}
            team_members = sorted(n for n, s in catalog.items() if s["team"] in seed_teams and n not in seen)

        def ordered() -> list[str]:
            out = list(levels[0])
            for i, lv in enumerate(levels[1:], 1):
                out += lv
                if i == 1:
                    out += team_members
            if len(levels) == 1:
                out += team_members
            return list(dict.fromkeys(out))

        frontier = levels[0]
        for _depth in range(1, o.depth + 1):
            if len(ordered()) >= o.max_services and _depth > 1:
                break
            todo = [s for s in frontier if s not in rel]
            for s, edges in zip(todo, self.each(todo, self.relations), strict=True):
                rel[s] = edges
            nxt = sorted({n for s in frontier for e in rel[s] for n in (e["source"], e["target"])} - seen)
            if not nxt:
                break
            seen.update(nxt)
            levels.append(nxt)
            frontier = nxt
        scope = ordered()[: o.max_services]
        todo = [s for s in scope if s not in rel]
        for s, edges in zip(todo, self.each(todo, self.relations), strict=True):
            rel[s] = edges
        if len(ordered()) > o.max_services:
            self.note(f"scope: {len(ordered())} services found, the first {o.max_services} kept (max_services)")
        return scope, rel

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
        monitors: list[dict[str, Any]] = []
        for page in range(MAX_MONITOR_PAGES):
            def get(page: int = page) -> tuple[Any, dict[str, Any]]:
                body = r.monitors(f"service:{s}", page, 100)
                items = body if isinstance(body, list) else []
                return [x for x in map(cv.monitor_record, items) if x], {"count": len(items)}

            data, meta = self.optional("monitors", f"{s}|p{page}", get, [])
            monitors += data
            if int(meta.get("count") or 0) < 100:
                break
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
    scope, rel = run.scope(seeds, catalog)
    in_scope = set(scope)
    edges = [e for s in scope for e in rel.get(s, []) if e["source"] in in_scope or e["target"] in in_scope]

    progress.enter(f"telemetry of {len(scope)} services")
    per = dict(zip(scope, run.each(scope, lambda s: run.service_data(s, t0, t1)), strict=True))
    unowned, _ = run.search("events", "(no service)", reader.events, cv.event_record, f"-service:*{run.env}".strip(),
                            t0, t1, opts.max_events)
    captured = Captured(opts, t0, inc_start, inc_end, seeds, scope, catalog, teams, edges, trigger=trigger,
                        incident=run.incident)
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
