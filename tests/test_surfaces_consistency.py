"""The three surfaces agree: the same questions asked in-band, over MCP and over the Datadog REST
facade of one :class:`~evaluator_agent.engine.surfaces.SurfaceSession` return the same records.

One uvicorn server on 127.0.0.1 for the module serves both out-of-band surfaces as the proctor
mounts them (``Surfaces(registry).routes`` under its ``lifespan()``: MCP at ``/mcp``, REST at
``/datadog``), in a thread of its own. Each test loads one world of the ``core`` label set,
opens one session on it (closed after), and asks, like an agent paged by the label's trigger
monitor would (the paged service is that monitor's ``service`` tag and the metric is the one
its query watches; the ground truth is never read; when the service has no error span in the
hour, the trace comes from its spans, else from any error span, else from any span):

=============================  ===============================  ==============================  ==============================================
question                       in-band: session.call("a2a")     MCP (official ``mcp`` client)  REST (official ``datadog-api-client``)
=============================  ===============================  ==============================  ==============================================
error logs, hour before now    search_logs                      search_datadog_logs             LogsApi.list_logs (POST search)
  ... their next page           search_logs + cursor             + cursor                        LogsApi.list_logs + page.cursor
metric by version              query_metrics                    get_datadog_metric              MetricsV1Api.query_metrics
metrics of the service         list_metrics                     search_datadog_metrics          MetricsV1Api.list_active_metrics
the metric's tags              list_metrics (name glob)         get_datadog_metric_context      MetricsV2Api.list_tags_by_metric_name
error spans of the service     search_spans                     search_datadog_spans            SpansApi.list_spans
  (none: widen, see above)
one whole trace                get_trace                        get_datadog_trace               SpansApi.list_spans, query ``trace_id:<id>``
monitors in alert              get_monitors status:alert        search_datadog_monitors         MonitorsApi.list_monitors, kept if Alert
events of the last 3 hours     get_events                       search_datadog_events           EventsV2Api.list_events
  ... their next page           get_events + cursor              + cursor                        EventsV2Api.search_events (POST, cursor)
the service list               list_services                    search_datadog_services         ServiceDefinitionApi.list_service_definitions
the service's dependencies     get_service_dependencies         ..._service_dependencies        SoftwareCatalogApi.list_catalog_relation
=============================  ===============================  ==============================  ==============================================

What is compared: each answer becomes a "view" per surface, a dict of canonical parts, and every
part two surfaces both have must be equal: ``records`` (a tuple of every field of each record
that both shapes carry, in order: ids, times, names, messages, attributes, tags, states,
durations, points...), ``after`` (the paging cursor), ``total`` (the in-band count, which REST
bodies do not carry), ``full`` (fields only in-band and MCP carry: monitor transitions, metric
tag values, dependency depth, trace services) and ``items`` (the whole Datadog-shaped records,
MCP's JSON against the REST client's deserialized models: the two share their shapes). REST
answers are deserialized into the client's models with type checks on and walked by
``strict`` (no undeclared field, nothing unparsed). Every question is exactly three recorded
calls of the session, with surfaces ``a2a``, ``mcp``, ``rest``, the same in-band tool and the
same in-band arguments (monitors over REST: all monitors, filtered by the test) and, where the
arguments are the same, the same in-band answer.

The normal suite runs a deterministic sample of 4 core worlds; ``PROCTOR_SURFACES_ALL=1`` runs
every core world (one test per label, each world loaded once and dropped after its test).
"""

from __future__ import annotations

import gc
import os
import re
from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import combinations
from typing import Any

import pytest
from datadog_api_client import ApiClient, Configuration
from datadog_api_client.model_utils import data_to_dict
from datadog_api_client.v1.api.metrics_api import MetricsApi as MetricsV1Api
from datadog_api_client.v1.api.monitors_api import MonitorsApi
from datadog_api_client.v2.api.events_api import EventsApi
from datadog_api_client.v2.api.logs_api import LogsApi
from datadog_api_client.v2.api.metrics_api import MetricsApi as MetricsV2Api
from datadog_api_client.v2.api.service_definition_api import ServiceDefinitionApi
from datadog_api_client.v2.api.software_catalog_api import SoftwareCatalogApi
from datadog_api_client.v2.api.spans_api import SpansApi
from datadog_api_client.v2.model.events_list_request import EventsListRequest
from datadog_api_client.v2.model.events_query_filter import EventsQueryFilter
from datadog_api_client.v2.model.events_request_page import EventsRequestPage
from datadog_api_client.v2.model.logs_list_request import LogsListRequest
from datadog_api_client.v2.model.logs_list_request_page import LogsListRequestPage
from datadog_api_client.v2.model.logs_query_filter import LogsQueryFilter
from mcp import ClientSession
from starlette.applications import Starlette

from evaluator_agent.core.labels import load_labelset, snapshots_dir
from evaluator_agent.engine.surfaces import (
    A2A,
    MCP,
    REST,
    SurfaceConfig,
    SurfaceRegistry,
    SurfaceSession,
)
from evaluator_agent.service.surfaces_app import Surfaces
from evaluator_agent.telemetry.index import WorldIndex
from evaluator_agent.telemetry.tools import Toolbox
from evaluator_agent.telemetry.world import load_snapshot_dict
from evaluator_agent.worldgen.calibrate import sample_labels
from tests.conftest import serving_in_thread
from tests.test_mcp_surface import (
    Recorder,
    _after,
    _log_in,
    _log_out,
    _metric_out,
    _span_in,
    _span_out,
    call,
    mcp_client,
)
from tests.test_rest_facade import _spans_body, strict

pytestmark = pytest.mark.anyio

ALL = os.environ.get("PROCTOR_SURFACES_ALL") == "1"
SAMPLE = 4
CORE = load_labelset("core")
LABEL_IDS = [lb.id for lb in (CORE.labels if ALL else sample_labels(CORE.labels, SAMPLE))]
_METRIC_IN_QUERY = re.compile(r"\b(?:avg|sum|min|max|count):([A-Za-z][A-Za-z0-9_.]*)\s*\{")
_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)")


# ----------------------------------------------------------------------------- the server


@pytest.fixture(scope="module")
def surfaces() -> Iterator[SurfaceConfig]:
    """MCP and REST as the proctor mounts them, on uvicorn in a thread (its own event loop),
    so that the synchronous REST client and the async MCP client can both call it."""
    registry = SurfaceRegistry()
    routes = Surfaces(registry)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> Any:
        async with routes.lifespan():
            yield

    app = Starlette(routes=routes.routes, lifespan=lifespan)
    with serving_in_thread(app) as base:
        yield routes.config(base)
    assert len(registry) == 0  # every session was closed


# ----------------------------------------------------------------------------- the world


@dataclass
class World:
    """What an agent paged for a label knows: the world's now and the trigger monitor."""

    label_id: str
    tb: Toolbox
    now: float
    service: str  # the trigger monitor's service tag
    metric: str  # the metric its query watches


def load_world(label_id: str) -> World:
    label = CORE.get(label_id)
    data = load_snapshot_dict(label.world.snapshot, snapshots_dir())
    monitors = {m["id"]: m for m in data.get("monitors", [])}  # the briefing's header
    trigger = monitors[label.task.trigger.monitor_id]
    service = trigger["tags"]["service"]
    metric = _METRIC_IN_QUERY.search(trigger["query"])
    assert metric, trigger["query"]
    now = float(data["end"])
    return World(label_id, Toolbox(WorldIndex.from_dict(data), now=now), now, service, metric.group(1))


# ----------------------------------------------------------------------------- canonical views


def iso(text: Any) -> Any:
    """An ISO 8601 time as the tools write it (``...T14:05:00.123Z``); other values unchanged."""
    if isinstance(text, str) and _ISO.fullmatch(text):
        dt = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
        return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return text


def plain(obj: Any) -> Any:
    """A REST answer as JSON-like data, from the client's models (times as the tools write them)."""
    def walk(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: walk(v) for k, v in x.items()}
        if isinstance(x, list):
            return [walk(v) for v in x]
        return iso(x)

    return walk(data_to_dict(obj))


def ms(t: float) -> int:
    return int(round(float(t) * 1000))


def _event_in(e: dict[str, Any]) -> tuple[Any, ...]:
    return e["id"], e["timestamp"], ms(e["ts"]), e["title"], e.get("text") or "", e["source"], e.get("tags") or []


def _event_out(d: dict[str, Any]) -> tuple[Any, ...]:
    a, inner = d["attributes"], d["attributes"]["attributes"]
    assert d["type"] == "event" and inner["evt"]["id"] == d["id"]
    return d["id"], a["timestamp"], inner["timestamp"], inner["title"], a["message"], inner["source_type_name"], a["tags"]


def _monitor_in(m: dict[str, Any]) -> tuple[Any, ...]:
    return m["id"], m["name"], m["type"], m["query"], m["message"], m["tags"], m["state"]


def _monitor_out(m: dict[str, Any]) -> tuple[Any, ...]:
    return m["id"], m["name"], m["type"], m["query"], m["message"], m["tags"], m["overall_state"]


def _service_in(s: dict[str, Any]) -> tuple[Any, ...]:
    """A catalog entry; an empty field is an absent one (a service definition omits it)."""
    tier = s.get("tier")
    return (s["name"], s.get("kind") or "service", s.get("team") or None, s.get("platform") or None,
            s.get("cluster") or None, None if tier in (None, "") else str(tier), s.get("language") or None,
            s.get("description") or None)


def _service_out(d: dict[str, Any]) -> tuple[Any, ...]:
    schema = d["attributes"]["schema"]
    tags = dict(t.split(":", 1) for t in schema["tags"])
    assert d["id"] == schema["dd-service"] and schema["schema-version"] == "v2.2"
    langs = schema.get("languages") or [None]
    return (schema["dd-service"], tags["kind"], schema.get("team"), tags.get("platform"), tags.get("cluster"),
            schema.get("tier"), langs[0], schema.get("description"))


def _series_in(c: dict[str, Any]) -> dict[str, Any]:
    return {"window": (ms(c["from"]), ms(c["to"])), "records": [
        (s["metric"], s["scope"], s.get("tags") or {}, s.get("aggregation"), int(s.get("interval", 0)),
         len(s["pointlist"]), [[ms(t), v] for t, v in s["pointlist"]]) for s in c["series"]]}


def _series_out(b: dict[str, Any]) -> dict[str, Any]:
    assert b["status"] == "ok" and b["res_type"] == "time_series"
    return {"window": (b["from_date"], b["to_date"]), "items": b["series"], "records": [
        (s["metric"], s["scope"], dict(t.split(":", 1) for t in s["tag_set"]), s["aggr"], s["interval"],
         s["length"], [[int(t), v] for t, v in s["pointlist"]]) for s in b["series"]]}


def _page_in(key: str, record: Callable[[dict[str, Any]], Any], total: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda c: {"records": [record(r) for r in c[key]], "after": c["next_cursor"], "total": c[total]}


def _page_out(record: Callable[[dict[str, Any]], Any], total: str | None = None) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A v2 search answer (MCP, or REST when ``total`` is None: REST bodies carry no count)."""
    def view(b: dict[str, Any]) -> dict[str, Any]:
        out = {"records": [record(d) for d in b["data"]], "after": _after(b), "items": b["data"]}
        if total:
            out["total"] = b["meta"][total]
        return out

    return view


def _deps_in(c: dict[str, Any]) -> dict[str, Any]:
    down, up = c.get("downstream") or [], c.get("upstream") or []
    return {"records": (c["service"], [(d["service"], d.get("protocol")) for d in down],
                        [(u["service"], u.get("protocol")) for u in up]), "full": (down, up)}


def _deps_mcp(b: dict[str, Any]) -> dict[str, Any]:
    a = b["data"]["attributes"]
    assert b["data"]["id"] == a["service"]
    return {"records": (a["service"], [(d["service"], d.get("protocol")) for d in a["calls"]],
                        [(u["service"], u.get("protocol")) for u in a["called_by"]]), "full": (a["calls"], a["called_by"])}


def _deps_rest(service: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def view(b: dict[str, Any]) -> dict[str, Any]:
        rels = b["data"]
        assert b["meta"]["count"] == len(rels) and "next" not in b.get("links", {})
        assert all(r["attributes"]["from"]["name"] == service for r in rels)
        by_type: dict[str, list[Any]] = {"RelationTypeDependsOn": [], "RelationTypeDependencyOf": []}
        for r in rels:
            by_type[r["attributes"]["type"]].append((r["attributes"]["to"]["name"], r.get("subtype")))
        return {"records": (service, by_type["RelationTypeDependsOn"], by_type["RelationTypeDependencyOf"])}

    return view


def _tags_in(metric: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def view(c: dict[str, Any]) -> dict[str, Any]:
        entry = next(m for m in c["metrics"] if m["metric"] == metric)
        tags = [f"{k}:{v}" for k, values in sorted(entry["tags"].items()) for v in values]
        return {"records": (metric, tags), "full": entry.get("type")}

    return view


def _trace_out(spans: list[dict[str, Any]]) -> dict[str, Any]:
    return {"records": [_span_out(d) for d in spans], "items": spans}


# ----------------------------------------------------------------------------- questions


@dataclass
class Question:
    """One question: the in-band call, the MCP call, the REST call (a function of the client's
    ``ApiClient``), and how each answer reads as a canonical view."""

    name: str
    tool: str
    args: dict[str, Any]
    inband: Callable[[dict[str, Any]], dict[str, Any]]
    mcp_tool: str
    mcp_args: dict[str, Any]
    mcp: Callable[[dict[str, Any]], dict[str, Any]]
    rest_call: Callable[[ApiClient], Any]
    rest: Callable[[Any], dict[str, Any]]
    rest_args: dict[str, Any] | None = None  # the REST call's in-band arguments, when not ``args``


def q_logs(w: World, cursor: str | None = None) -> Question:
    query = f"service:{w.service} status:(error OR critical)"
    args = {"query": query, "from": "now-1h", "to": "now", "limit": 50}
    if cursor is not None:
        args["cursor"] = cursor

    def rest_call(api: ApiClient) -> Any:
        page = LogsListRequestPage(limit=50, cursor=cursor) if cursor else LogsListRequestPage(limit=50)
        return LogsApi(api).list_logs(body=LogsListRequest(
            filter=LogsQueryFilter(query=query, _from="now-1h", to="now"), page=page))

    return Question("error logs" + (" page 2" if cursor else ""), "search_logs", args,
                    _page_in("logs", _log_in, "total_matched"), "search_datadog_logs", dict(args),
                    _page_out(_log_out, "total_matched"), rest_call, _page_out(_log_out))


def q_metric(w: World) -> Question:
    q = f"avg:{w.metric}{{service:{w.service}}} by {{version}}"
    t0, t1 = int(w.now) - 3600, int(w.now)
    return Question("metric by version", "query_metrics", {"query": q, "from": t0, "to": t1}, _series_in,
                    "get_datadog_metric", {"queries": [q], "from": t0, "to": t1}, _series_out,
                    lambda api: MetricsV1Api(api).query_metrics(_from=t0, to=t1, query=q), _series_out)


def q_metric_list(w: World) -> Question:
    tag = f"service:{w.service}"

    def full(records: list[dict[str, Any]]) -> list[Any]:
        return [(m["metric"], m["type"], m["tags"]) for m in records]

    return Question(
        "metrics of the service", "list_metrics", {"query": tag, "limit": 500},
        lambda c: {"records": [m["metric"] for m in c["metrics"]], "full": full(c["metrics"]), "total": c["total"]},
        "search_datadog_metrics", {"tag_filter": tag, "limit": 500},
        lambda b: {"records": [d["id"] for d in b["data"]], "full": [_metric_out(d) for d in b["data"]],
                   "total": b["meta"]["total"]},
        lambda api: MetricsV1Api(api).list_active_metrics(_from=int(w.now) - 3600, tag_filter=tag),
        lambda b: {"records": b["metrics"]})


def q_metric_tags(w: World) -> Question:
    m = w.metric
    return Question(
        "the metric's tags", "list_metrics", {"query": m[:-1] + "?", "limit": 500}, _tags_in(m),
        "get_datadog_metric_context", {"metric": m},
        lambda b: {"records": (b["data"]["id"], b["data"]["attributes"]["tags"]),
                   "full": b["data"]["attributes"]["metric_type"]},
        lambda api: MetricsV2Api(api).list_tags_by_metric_name(m),
        lambda b: {"records": (b["data"]["id"], b["data"]["attributes"]["tags"])})


def q_spans(name: str, query: str) -> Question:
    args = {"query": query, "from": "now-1h", "to": "now", "limit": 50}
    return Question(name, "search_spans", args, _page_in("spans", _span_in, "total_matched"),
                    "search_datadog_spans", dict(args), _page_out(_span_out, "total_matched"),
                    lambda api: SpansApi(api).list_spans(body=_spans_body(query, limit=50)), _page_out(_span_out))


def q_trace(trace_id: str) -> Question:
    return Question(
        "one trace", "get_trace", {"trace_id": trace_id},
        lambda c: {"records": [_span_in(s) for s in c["spans"]], "full": c.get("services") or []},
        "get_datadog_trace", {"trace_id": trace_id},
        lambda b: {**_trace_out(b["data"]["attributes"]["spans"]), "full": b["data"]["attributes"]["services"]},
        lambda api: SpansApi(api).list_spans(body=_spans_body(f"trace_id:{trace_id}", limit=50)),
        lambda b: _trace_out(b["data"]))


def q_monitors() -> Question:
    args = {"query": "status:alert", "limit": 500}

    def rest(b: list[dict[str, Any]]) -> dict[str, Any]:
        alerting = [m for m in b if m["overall_state"] == "Alert"]
        assert all(m["state"]["groups"]["*"]["status"] == "Alert" for m in alerting)
        return {"records": [_monitor_out(m) for m in alerting]}

    return Question(
        "monitors in alert", "get_monitors", args,
        lambda c: {"records": [_monitor_in(m) for m in c["monitors"]], "total": c["total"], "after": c["next_cursor"],
                   "full": [m.get("transitions") or [] for m in c["monitors"]]},
        "search_datadog_monitors", dict(args),
        lambda b: {"records": [_monitor_out(m) for m in b["monitors"]], "total": b["metadata"]["total_count"],
                   "after": _after(b, "metadata"), "full": [m["state_transitions"] for m in b["monitors"]]},
        lambda api: MonitorsApi(api).list_monitors(group_states="all"), rest, rest_args={"limit": 500})


def q_events(cursor: str | None = None) -> Question:
    args: dict[str, Any] = {"from": "now-3h", "to": "now", "limit": 50}
    if cursor is None:
        def rest_call(api: ApiClient) -> Any:
            return EventsApi(api).list_events(filter_from="now-3h", filter_to="now", page_limit=50)
    else:
        args["cursor"] = cursor

        def rest_call(api: ApiClient) -> Any:
            return EventsApi(api).search_events(body=EventsListRequest(
                filter=EventsQueryFilter(_from="now-3h", to="now"), page=EventsRequestPage(limit=50, cursor=cursor)))
    return Question("events, last 3h" + (" page 2" if cursor else ""), "get_events", args,
                    _page_in("events", _event_in, "total_matched"), "search_datadog_events", dict(args),
                    _page_out(_event_out, "total_matched"), rest_call, _page_out(_event_out))


def q_services() -> Question:
    return Question(
        "service list", "list_services", {"limit": 500},
        lambda c: {"records": [_service_in(s) for s in c["services"]], "total": c["total"], "after": c["next_cursor"],
                   "full": c["services"]},
        "search_datadog_services", {"limit": 500},
        lambda b: {"records": [_service_in(d["attributes"]) for d in b["data"]], "total": b["meta"]["total"],
                   "after": _after(b), "full": [d["attributes"] for d in b["data"]]},
        lambda api: ServiceDefinitionApi(api).list_service_definitions(),
        lambda b: {"records": [_service_out(d) for d in b["data"]]})


def q_dependencies(w: World) -> Question:
    args = {"service": w.service, "direction": "both", "depth": 1}
    return Question("dependencies", "get_service_dependencies", args, _deps_in,
                    "search_datadog_service_dependencies", dict(args), _deps_mcp,
                    lambda api: SoftwareCatalogApi(api).list_catalog_relation(filter_from_ref=f"service:{w.service}"),
                    _deps_rest(w.service))


# ----------------------------------------------------------------------------- asking


@dataclass
class Asker:
    """One world's session and the two clients on it."""

    session: SurfaceSession
    calls: list[tuple[Any, ...]]
    mcp: ClientSession
    api: ApiClient
    asked: list[str] = field(default_factory=list)

    async def ask(self, q: Question) -> dict[str, Any]:
        """Ask ``q`` on the three surfaces; check the views and the recorded calls; the in-band content."""
        first = len(self.calls)
        outcome = self.session.call(A2A, q.tool, q.args)  # in-band: Toolbox.call, recorded as "a2a"
        assert outcome.ok, (q.name, outcome.error)
        answer = await call(self.mcp, q.mcp_tool, q.mcp_args)
        model = q.rest_call(self.api)
        strict(model)
        views = {"in-band": q.inband(outcome.content), "mcp": q.mcp(answer), "rest": q.rest(plain(model))}
        agree(q.name, views)
        recorded = self.calls[first:]
        want = [(A2A, q.tool, q.args), (MCP, q.tool, q.args), (REST, q.tool, q.rest_args or q.args)]
        assert [c[:3] for c in recorded] == want, q.name
        assert all(c[3].ok for c in recorded), q.name
        for c in recorded[1:]:
            if c[2] == q.args:
                assert c[3].content == outcome.content, f"{q.name}: {c[0]} got another in-band answer"
        self.asked.append(q.name)
        return outcome.content


def agree(name: str, views: dict[str, dict[str, Any]]) -> None:
    """Every part that two surfaces' views both have is equal; all have ``records``."""
    assert all("records" in v for v in views.values()), name
    for (a, va), (b, vb) in combinations(views.items(), 2):
        for part in sorted(va.keys() & vb.keys()):
            x, y = va[part], vb[part]
            if x != y and isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
                i = next(i for i, (p, q) in enumerate(zip(x, y, strict=True)) if p != q)
                raise AssertionError(f"{name}: {part}[{i}] differs between {a} and {b}:\n{x[i]!r}\n{y[i]!r}")
            assert x == y, f"{name}: {part} differs between {a} and {b}:\n{x!r}\n{y!r}"[:4000]


async def ask_everything(ask: Asker, w: World) -> dict[str, int]:
    """The questions of an agent paged for ``w``; returns how many records each answer held."""
    sizes: dict[str, int] = {}
    logs = await ask.ask(q_logs(w))
    sizes["logs"] = len(logs["logs"])
    if logs["next_cursor"]:
        sizes["logs page 2"] = len((await ask.ask(q_logs(w, logs["next_cursor"])))["logs"])
    series = await ask.ask(q_metric(w))
    sizes["series"] = len(series["series"])
    sizes["metrics"] = len((await ask.ask(q_metric_list(w)))["metrics"])
    await ask.ask(q_metric_tags(w))
    spans = (await ask.ask(q_spans("error spans", f"service:{w.service} status:error")))["spans"]
    sizes["error spans"] = len(spans)
    # no error span of the service (a latency or throughput page; a worker without traces): widen
    for name, query in (("spans", f"service:{w.service}"), ("error spans, any service", "status:error"),
                        ("spans, any service", "*")):
        if spans:
            break
        spans = (await ask.ask(q_spans(name, query)))["spans"]
        sizes[name] = len(spans)
    assert spans, "no span at all in the hour before now"
    trace = await ask.ask(q_trace(spans[0]["trace_id"]))
    sizes["trace"] = len(trace["spans"])
    assert trace["spans"] and trace["spans"][0]["depth"] == 0
    sizes["alerting"] = len((await ask.ask(q_monitors()))["monitors"])
    events = await ask.ask(q_events())
    sizes["events"] = len(events["events"])
    if events["next_cursor"]:
        sizes["events page 2"] = len((await ask.ask(q_events(events["next_cursor"])))["events"])
    services = (await ask.ask(q_services()))["services"]
    assert w.service in {s["name"] for s in services}
    sizes["services"] = len(services)
    deps = await ask.ask(q_dependencies(w))
    sizes["dependencies"] = len(deps.get("downstream") or []) + len(deps.get("upstream") or [])
    return sizes


async def check_world(surfaces: SurfaceConfig, w: World) -> dict[str, int]:
    """Open a session on ``w``, ask everything through the briefing's URLs, close it."""
    rec = Recorder()
    session = surfaces.registry.open(w.tb, offered={A2A, MCP, REST}, max_calls=100, record=rec, now=w.now)
    briefing = surfaces.briefing(session)
    cfg = Configuration(host=briefing[REST]["base_url"],
                        api_key={"apiKeyAuth": session.token, "appKeyAuth": session.token})
    cfg.discard_unknown_keys = False
    failed: Exception | None = None
    try:
        with ApiClient(cfg) as api:
            async with mcp_client(briefing[MCP]["url"], session.token) as mcp:
                asker = Asker(session, rec.calls, mcp, api)
                try:
                    sizes = await ask_everything(asker, w)
                except Exception as e:  # noqa: BLE001 - raised below, not wrapped in the MCP client's task group
                    failed = e
    finally:
        surfaces.registry.close(session)
    if failed is not None:
        raise failed
    assert session.calls == len(rec.calls) == 3 * len(asker.asked)
    return sizes


@pytest.mark.parametrize("label_id", LABEL_IDS)
async def test_three_surfaces_return_the_same_records(surfaces: SurfaceConfig, label_id: str) -> None:
    sizes = await check_world(surfaces, load_world(label_id))  # the world is dropped on return
    assert sum(sizes.values()) > 0, sizes
    gc.collect()  # one world at a time: its index goes before the next is loaded
