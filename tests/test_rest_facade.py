"""The Datadog REST facade over real HTTP: the official ``datadog-api-client`` against the facade
on uvicorn (127.0.0.1, mounted at ``/datadog`` as the proctor mounts it).

Every endpoint is called with the client, and its answer is deserialized into the client's own
models with return-type checking on; :func:`strict` then walks the models and refuses any field
the model does not declare and any value the client could not parse. Each answer holds the same
records as the in-band tool answering the same question (the test writes that in-band call by
hand), every call is recorded once with surface ``rest``, and the refusals (403, 429, 400, 404,
405, 413) carry Datadog's ``{"errors": [...]}`` body.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from datadog_api_client import ApiClient, Configuration
from datadog_api_client.exceptions import ApiException
from datadog_api_client.model_utils import ModelComposed, ModelSimple, OpenApiModel, UnparsedObject
from datadog_api_client.v1.api.events_api import EventsApi as EventsV1Api
from datadog_api_client.v1.api.metrics_api import MetricsApi as MetricsV1Api
from datadog_api_client.v1.api.monitors_api import MonitorsApi
from datadog_api_client.v2.api.events_api import EventsApi as EventsV2Api
from datadog_api_client.v2.api.logs_api import LogsApi
from datadog_api_client.v2.api.metrics_api import MetricsApi as MetricsV2Api
from datadog_api_client.v2.api.service_definition_api import ServiceDefinitionApi
from datadog_api_client.v2.api.software_catalog_api import SoftwareCatalogApi
from datadog_api_client.v2.api.spans_api import SpansApi
from datadog_api_client.v2.model.events_list_request import EventsListRequest
from datadog_api_client.v2.model.events_query_filter import EventsQueryFilter
from datadog_api_client.v2.model.events_request_page import EventsRequestPage
from datadog_api_client.v2.model.logs_aggregate_request import LogsAggregateRequest
from datadog_api_client.v2.model.logs_aggregation_function import LogsAggregationFunction
from datadog_api_client.v2.model.logs_compute import LogsCompute
from datadog_api_client.v2.model.logs_compute_type import LogsComputeType
from datadog_api_client.v2.model.logs_group_by import LogsGroupBy
from datadog_api_client.v2.model.logs_list_request import LogsListRequest
from datadog_api_client.v2.model.logs_list_request_page import LogsListRequestPage
from datadog_api_client.v2.model.logs_query_filter import LogsQueryFilter
from datadog_api_client.v2.model.logs_sort import LogsSort
from datadog_api_client.v2.model.relation_type import RelationType
from datadog_api_client.v2.model.spans_list_request import SpansListRequest
from datadog_api_client.v2.model.spans_list_request_attributes import SpansListRequestAttributes
from datadog_api_client.v2.model.spans_list_request_data import SpansListRequestData
from datadog_api_client.v2.model.spans_list_request_page import SpansListRequestPage
from datadog_api_client.v2.model.spans_list_request_type import SpansListRequestType
from datadog_api_client.v2.model.spans_query_filter import SpansQueryFilter
from starlette.applications import Starlette
from starlette.routing import Mount

from evaluator_agent.core.labels import load_labelset, snapshots_dir
from evaluator_agent.engine.surfaces import SurfaceRegistry, SurfaceSession
from evaluator_agent.service.rest_facade import MAX_BODY_BYTES, rest_app
from evaluator_agent.telemetry.index import WorldIndex
from evaluator_agent.telemetry.tools import Toolbox
from evaluator_agent.telemetry.world import load_snapshot_dict
from tests.conftest import serving_in_thread


@dataclass
class Facade:
    registry: SurfaceRegistry
    url: str  # the facade's root: http://127.0.0.1:PORT/datadog
    tb: Toolbox
    now: float

    def open(self, max_calls: int = 100, offered: tuple[str, ...] = ("a2a", "mcp", "rest")) -> tuple[SurfaceSession, list]:
        calls: list[tuple[Any, ...]] = []
        session = self.registry.open(self.tb, offered=offered, max_calls=max_calls,
                                     record=lambda *a: calls.append(a), now=self.now)
        return session, calls

    def inband(self, tool: str, args: dict[str, Any]) -> dict[str, Any]:
        out = self.tb.call(tool, args)
        assert out.ok, out.error
        return out.content


@pytest.fixture(scope="module")
def facade() -> Iterator[Facade]:
    lb = load_labelset("smoke").labels[0]
    data = load_snapshot_dict(lb.world.snapshot, snapshots_dir())
    now = float(data["end"])
    tb = Toolbox(WorldIndex.from_dict(data), now=now)
    registry = SurfaceRegistry()
    app = Starlette(routes=[Mount("/datadog", app=rest_app(registry))])
    with serving_in_thread(app) as base:
        yield Facade(registry, base + "/datadog", tb, now)


def client(f: Facade, token: str) -> ApiClient:
    cfg = Configuration(host=f.url, api_key={"apiKeyAuth": token, "appKeyAuth": token})
    cfg.discard_unknown_keys = False
    assert cfg.check_return_type
    return ApiClient(cfg)


def strict(obj: Any, path: str = "$") -> None:
    """No field the client's model does not declare, nothing it could not parse."""
    assert not isinstance(obj, UnparsedObject), f"{path}: unparsed {obj!r}"[:400]
    if isinstance(obj, OpenApiModel):
        assert not obj._unparsed, f"{path}: {type(obj).__name__} unparsed: {obj!r}"[:600]
        if isinstance(obj, ModelComposed):
            for inst in obj._composed_instances:
                strict(inst, path)
            return
        if isinstance(obj, ModelSimple):
            strict(obj.value, path)
            return
        extra = set(obj._data_store) - set(type(obj).openapi_types)
        assert not extra, f"{path}: {type(obj).__name__} has no field {sorted(extra)}"
        for k, v in obj._data_store.items():
            strict(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            strict(v, f"{path}[{i}]")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            strict(v, f"{path}.{k}")


def recorded(calls: list, n: int = 1) -> list[tuple[str, dict[str, Any]]]:
    """The last ``n`` recorded calls as (tool, arguments); all of them on the rest surface."""
    assert all(c[0] == "rest" for c in calls)
    return [(c[1], c[2]) for c in calls[-n:]]


def _body(exc: ApiException) -> Any:
    """An error answer's body (the client hands it over parsed, or as text)."""
    return exc.body if isinstance(exc.body, dict | list) else json.loads(exc.body)


def ms(t: float) -> int:
    return int(round(t * 1000))


# ---------------------------------------------------------------------- metrics


def test_metrics_query_is_query_metrics(facade: Facade) -> None:
    session, calls = facade.open()
    q = "avg:trace.http.request.duration{*} by {service}"
    t0, t1 = int(facade.now - 900), int(facade.now)
    with client(facade, session.token) as api:
        resp = MetricsV1Api(api).query_metrics(_from=t0, to=t1, query=q)
    strict(resp)
    assert recorded(calls) == [("query_metrics", {"query": q, "from": t0, "to": t1})]
    want = facade.inband("query_metrics", {"query": q, "from": t0, "to": t1})
    assert resp.status == "ok" and resp.res_type == "time_series" and resp.group_by == ["service"]
    assert resp.from_date == ms(want["from"]) and resp.to_date == ms(want["to"])
    assert [s.scope for s in resp.series] == [s["scope"] for s in want["series"]]
    for got, s in zip(resp.series, want["series"], strict=True):
        assert [p.value for p in got.pointlist] == [[float(ms(t)), v] for t, v in s["pointlist"]]
        assert got.tag_set == [f"{k}:{v}" for k, v in s["tags"].items()]
        assert got.interval == s["interval"] and got.length == s["length"] and got.aggr == "avg"
        assert got.start == ms(s["pointlist"][0][0]) and got.end == ms(s["pointlist"][-1][0]) and got.unit is None


def test_metrics_list_and_all_tags_are_list_metrics(facade: Facade) -> None:
    session, calls = facade.open()
    with client(facade, session.token) as api:
        listed = MetricsV1Api(api).list_active_metrics(_from=int(facade.now - 3600), tag_filter="service:catalog AND env:prod")
        tags = MetricsV2Api(api).list_tags_by_metric_name("jvm.heap_memory")
        narrowed = MetricsV2Api(api).list_tags_by_metric_name("jvm.heap_memory", filter_tags="service:support-api")
        with pytest.raises(ApiException) as missing:
            MetricsV2Api(api).list_tags_by_metric_name("no.such.metric")
    for r in (listed, tags, narrowed):
        strict(r)
    assert recorded(calls, 4) == [
        ("list_metrics", {"query": "service:catalog env:prod", "limit": 500}),
        ("list_metrics", {"query": "jvm.heap_memor?", "limit": 500}),
        ("list_metrics", {"query": "jvm.heap_memor? service:support-api", "limit": 500}),
        ("list_metrics", {"query": "no.such.metri?", "limit": 500}),
    ]
    want = facade.inband("list_metrics", {"query": "service:catalog env:prod", "limit": 500})
    assert listed.metrics == [m["metric"] for m in want["metrics"]] and listed.metrics
    assert listed._from == str(int(facade.now - 3600))
    # the same tags as the in-band entry of that metric (a name query matches it and maybe others)
    entry = next(m for m in facade.inband("list_metrics", {"query": "jvm.heap_memory"})["metrics"]
                 if m["metric"] == "jvm.heap_memory")
    assert tags.data.id == "jvm.heap_memory" and str(tags.data.type) == "metrics"
    assert tags.data.attributes.tags == [f"{k}:{v}" for k, vs in sorted(entry["tags"].items()) for v in vs]
    assert "service:support-api" in narrowed.data.attributes.tags
    assert "service:subscriptions" not in narrowed.data.attributes.tags
    assert missing.value.status == 404 and _body(missing.value) == {"errors": ["Metric not found"]}


# ---------------------------------------------------------------------- logs


def test_logs_search_pages_with_the_inband_cursor(facade: Facade) -> None:
    session, calls = facade.open()
    body = LogsListRequest(filter=LogsQueryFilter(query="status:error", _from="now-15m", to="now"),
                           page=LogsListRequestPage(limit=25), sort=LogsSort.TIMESTAMP_DESCENDING)
    with client(facade, session.token) as api:
        first = LogsApi(api).list_logs(body=body)
        body2 = LogsListRequest(filter=body.filter, sort=body.sort,
                                page=LogsListRequestPage(limit=25, cursor=first.meta.page.after))
        second = LogsApi(api).list_logs(body=body2)
    strict(first)
    strict(second)
    args = {"query": "status:error", "from": "now-15m", "to": "now", "limit": 25, "sort": "-timestamp"}
    want = facade.inband("search_logs", args)
    want2 = facade.inband("search_logs", {**args, "cursor": want["next_cursor"]})
    assert recorded(calls, 2) == [("search_logs", args), ("search_logs", {**args, "cursor": want["next_cursor"]})]
    for got, w in ((first, want), (second, want2)):
        assert len(got.data) == len(w["logs"]) == 25
        for log, r in zip(got.data, w["logs"], strict=True):
            a = log.attributes
            assert (a.message, a.service, a.status, a.host) == (r["message"], r["service"], r["status"], r["host"])
            assert a.timestamp == datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00"))
            assert str(log.type) == "log" and f"service:{r['service']}" in a.tags
    assert first.meta.page.after == want["next_cursor"] and str(first.meta.status) == "done"
    assert first.links.next.startswith(facade.url + "/api/v2/logs/events?")
    # links.next is a working GET of the next page
    r = httpx.get(first.links.next, headers={"DD-API-KEY": session.token})
    assert r.status_code == 200
    assert [d["attributes"]["message"] for d in r.json()["data"]] == [x["message"] for x in want2["logs"]]
    assert len({d.id for d in first.data + second.data}) == 50


def test_logs_get_is_search_logs(facade: Facade) -> None:
    session, calls = facade.open()
    t0, t1 = datetime.fromtimestamp(facade.now - 600, tz=UTC), datetime.fromtimestamp(facade.now, tz=UTC)
    with client(facade, session.token) as api:
        resp = LogsApi(api).list_logs_get(filter_query="service:web-bff", filter_from=t0, filter_to=t1,
                                          page_limit=7, sort=LogsSort.TIMESTAMP_ASCENDING)
    strict(resp)
    [(tool, args)] = recorded(calls)
    assert tool == "search_logs" and args["query"] == "service:web-bff" and args["limit"] == 7
    assert args["sort"] == "timestamp"
    want = facade.inband("search_logs", {"query": "service:web-bff", "from": facade.now - 600, "to": facade.now,
                                         "limit": 7, "sort": "timestamp"})
    assert [d.attributes.message for d in resp.data] == [r["message"] for r in want["logs"]]
    assert resp.meta.page.after == want["next_cursor"]


def test_logs_aggregate_is_aggregate_logs(facade: Facade) -> None:
    session, calls = facade.open()
    flt = LogsQueryFilter(query="status:error", _from="now-15m", to="now")
    total = LogsAggregateRequest(filter=flt, compute=[LogsCompute(aggregation=LogsAggregationFunction.COUNT)],
                                 group_by=[LogsGroupBy(facet="service", limit=5)])
    series = LogsAggregateRequest(
        filter=flt, compute=[LogsCompute(aggregation=LogsAggregationFunction.COUNT, type=LogsComputeType.TIMESERIES,
                                         interval="5m")],
        group_by=[LogsGroupBy(facet="service", limit=3), LogsGroupBy(facet="status", limit=2)])
    with client(facade, session.token) as api:
        got_total = LogsApi(api).aggregate_logs(body=total)
        got_series = LogsApi(api).aggregate_logs(body=series)
    strict(got_total)
    strict(got_series)
    a1 = {"query": "status:error", "from": "now-15m", "to": "now", "group_by": ["service"], "limit": 5}
    a2 = {"query": "status:error", "from": "now-15m", "to": "now", "group_by": ["service", "status"],
          "interval": 300, "limit": 6}
    assert recorded(calls, 2) == [("aggregate_logs", a1), ("aggregate_logs", a2)]
    w1, w2 = facade.inband("aggregate_logs", a1), facade.inband("aggregate_logs", a2)
    assert [(b.by, b.computes["c0"]) for b in got_total.data.buckets] == [(b["by"], b["count"]) for b in w1["buckets"]]
    assert len(got_series.data.buckets) == len(w2["buckets"]) > 1
    for b, w in zip(got_series.data.buckets, w2["buckets"], strict=True):
        assert b.by == w["by"]
        points = b.computes["c0"].value
        assert [(p.time, p.value) for p in points] == [
            (datetime.fromtimestamp(t, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"), n)
            for t, n in w["series"]]


# ---------------------------------------------------------------------- spans


def _spans_body(query: str, limit: int = 20, cursor: str | None = None) -> SpansListRequest:
    page = SpansListRequestPage(limit=limit, cursor=cursor) if cursor else SpansListRequestPage(limit=limit)
    return SpansListRequest(data=SpansListRequestData(
        type=SpansListRequestType.SEARCH_REQUEST,
        attributes=SpansListRequestAttributes(filter=SpansQueryFilter(query=query, _from="now-1h", to="now"), page=page)))


def test_spans_search_is_search_spans(facade: Facade) -> None:
    session, calls = facade.open()
    with client(facade, session.token) as api:
        resp = SpansApi(api).list_spans(body=_spans_body("service:api-gateway"))
        again = SpansApi(api).list_spans_get(filter_query="service:api-gateway", filter_from="now-1h",
                                             filter_to="now", page_limit=20, page_cursor=resp.meta.page.after)
    strict(resp)
    strict(again)
    args = {"query": "service:api-gateway", "from": "now-1h", "to": "now", "limit": 20}
    want = facade.inband("search_spans", args)
    want2 = facade.inband("search_spans", {**args, "cursor": want["next_cursor"]})
    assert recorded(calls, 2) == [("search_spans", args), ("search_spans", {**args, "cursor": want["next_cursor"]})]
    for got, w in ((resp, want), (again, want2)):
        assert [(s.id, s.attributes.trace_id, s.attributes.resource_name) for s in got.data] == [
            (s["span_id"], s["trace_id"], s["resource"]) for s in w["spans"]]
    s, w = resp.data[0].attributes, want["spans"][0]
    assert s.service == "api-gateway" and s.custom == w["tags"] and s.attributes["duration"] == w["duration"]
    assert s.attributes["operation_name"] == w["name"] and s.parent_id == (w["parent_id"] or "0")


def test_a_trace_is_the_spans_search_of_its_trace_id(facade: Facade) -> None:
    session, calls = facade.open()
    tid = facade.inband("search_spans", {"limit": 1})["spans"][0]["trace_id"]
    with client(facade, session.token) as api:
        resp = SpansApi(api).list_spans(body=_spans_body(f"trace_id:{tid}"))
        unknown = SpansApi(api).list_spans(body=_spans_body("trace_id:0000000000000000dead"))
    strict(resp)
    strict(unknown)
    assert recorded(calls, 2) == [("get_trace", {"trace_id": tid}), ("get_trace", {"trace_id": "0000000000000000dead"})]
    want = facade.inband("get_trace", {"trace_id": tid})
    assert [s.id for s in resp.data] == [s["span_id"] for s in want["spans"]]
    assert resp.data[0].attributes.parent_id == "0" and resp.data[0].attributes.attributes["depth"] == 0
    assert unknown.data == [] and "unknown trace_id" in unknown.meta.warnings[0].detail


# ---------------------------------------------------------------------- events


def test_events_v1_is_get_events(facade: Facade) -> None:
    session, calls = facade.open()
    start, end = int(facade.now - 3 * 3600), int(facade.now)
    with client(facade, session.token) as api:
        resp = EventsV1Api(api).list_events(start=start, end=end, sources="deploy,config", tags="env:prod")
    strict(resp)
    args = {"query": "(source:deploy OR source:config) env:prod", "from": start, "to": end, "limit": 500}
    assert recorded(calls) == [("get_events", args)]
    want = facade.inband("get_events", args)
    assert [e.id_str for e in resp.events] == [e["id"] for e in want["events"]] and resp.events
    e, w = resp.events[0], want["events"][0]
    assert (e.title, e.source_type_name, e.date_happened, e.tags) == (w["title"], w["source"], int(w["ts"]), w["tags"])


def test_events_v2_pages_with_the_inband_cursor(facade: Facade) -> None:
    session, calls = facade.open()
    with client(facade, session.token) as api:
        first = EventsV2Api(api).list_events(filter_query="source:deploy", filter_from="now-3h", filter_to="now",
                                             page_limit=5)
        body = EventsListRequest(filter=EventsQueryFilter(query="source:deploy", _from="now-3h", to="now"),
                                 page=EventsRequestPage(limit=5, cursor=first.meta.page.after))
        second = EventsV2Api(api).search_events(body=body)
    strict(first)
    strict(second)
    args = {"query": "source:deploy", "from": "now-3h", "to": "now", "limit": 5}
    want = facade.inband("get_events", args)
    want2 = facade.inband("get_events", {**args, "cursor": want["next_cursor"]})
    assert recorded(calls, 2) == [("get_events", args), ("get_events", {**args, "cursor": want["next_cursor"]})]
    assert [e.id for e in first.data] == [e["id"] for e in want["events"]]
    assert [e.id for e in second.data] == [e["id"] for e in want2["events"]]
    a = first.data[0].attributes
    assert a.attributes.title == want["events"][0]["title"] and a.attributes.timestamp == ms(want["events"][0]["ts"])
    assert first.links.next.startswith(facade.url + "/api/v2/events?")


# ---------------------------------------------------------------------- monitors, services


def test_monitors_are_get_monitors(facade: Facade) -> None:
    session, calls = facade.open()
    with client(facade, session.token) as api:
        listed = MonitorsApi(api).list_monitors(monitor_tags="env:prod", group_states="all")
        paged = MonitorsApi(api).list_monitors(name="error rate", page=1, page_size=2)
        one = MonitorsApi(api).get_monitor(listed[0].id, group_states="all")
        with pytest.raises(ApiException) as missing:
            MonitorsApi(api).get_monitor(1)
    for r in (listed, paged, one):
        strict(r)
    assert recorded(calls, 4) == [
        ("get_monitors", {"query": "env:prod", "limit": 500}),
        ("get_monitors", {"query": '"error rate"', "limit": 4}),
        ("get_monitors", {"query": f"id:{listed[0].id}"}),
        ("get_monitors", {"query": "id:1"}),
    ]
    want = facade.inband("get_monitors", {"query": "env:prod", "limit": 500})["monitors"]
    assert [(m.id, m.name, str(m.overall_state), m.query) for m in listed] == [
        (m["id"], m["name"], m["state"], m["query"]) for m in want]
    alerting = next(m for m in want if any(t["to"] == "Alert" for t in m["transitions"]))
    group = next(m for m in listed if m.id == alerting["id"]).state.groups["*"]
    assert group.last_triggered_ts == int([t for t in alerting["transitions"] if t["to"] == "Alert"][-1]["ts"])
    want_paged = facade.inband("get_monitors", {"query": '"error rate"', "limit": 4})["monitors"][2:4]
    assert [m.id for m in paged] == [m["id"] for m in want_paged] and len(paged) == 2
    assert one.id == listed[0].id and one.name == listed[0].name
    assert missing.value.status == 404 and _body(missing.value) == {"errors": ["Monitor not found"]}


def test_service_definitions_are_list_services(facade: Facade) -> None:
    session, calls = facade.open()
    with client(facade, session.token) as api:
        everything = ServiceDefinitionApi(api).list_service_definitions()
        page = ServiceDefinitionApi(api).list_service_definitions(page_size=10, page_number=1)
        one = ServiceDefinitionApi(api).get_service_definition("catalog-db")
    for r in (everything, page, one):
        strict(r)
    assert recorded(calls, 3) == [("list_services", {"limit": 500}), ("list_services", {"limit": 20}),
                                  ("list_services", {"query": "service:catalog-db"})]
    want = facade.inband("list_services", {"limit": 500})["services"]
    assert [d.attributes.schema.dd_service for d in everything.data] == [s["name"] for s in want]
    assert [d.id for d in page.data] == [s["name"] for s in want[10:20]]
    schema = one.data.attributes.schema
    db = next(s for s in want if s["name"] == "catalog-db")
    assert type(schema.get_oneof_instance()).__name__ == "ServiceDefinitionV2Dot2"
    assert (schema.dd_service, schema.team, schema.type, schema.tier) == ("catalog-db", db["team"], "db", str(db["tier"]))
    assert "kind:database" in schema.tags and schema.languages == [db["language"]]


def test_catalog_relations_are_get_service_dependencies(facade: Facade) -> None:
    session, calls = facade.open()
    with client(facade, session.token) as api:
        cat = SoftwareCatalogApi(api)
        down = cat.list_catalog_relation(filter_from_ref="service:api-gateway", filter_type=RelationType.RELATIONTYPEDEPENDSON)
        up = cat.list_catalog_relation(filter_to_ref="service:catalog", filter_type=RelationType.RELATIONTYPEDEPENDSON)
        both = cat.list_catalog_relation(filter_from_ref="service:default/catalog", page_limit=1)
    for r in (down, up, both):
        strict(r)
    assert recorded(calls, 3) == [
        ("get_service_dependencies", {"service": "api-gateway", "direction": "downstream", "depth": 1}),
        ("get_service_dependencies", {"service": "catalog", "direction": "upstream", "depth": 1}),
        ("get_service_dependencies", {"service": "catalog", "direction": "both", "depth": 1}),
    ]
    gw = facade.inband("get_service_dependencies", {"service": "api-gateway", "direction": "downstream"})
    assert [(r.attributes._from.name, r.attributes.to.name, str(r.attributes.type), r.subtype) for r in down.data] == [
        ("api-gateway", d["service"], "RelationTypeDependsOn", d["protocol"]) for d in gw["downstream"]]
    cat_deps = facade.inband("get_service_dependencies", {"service": "catalog"})
    assert [r.attributes._from.name for r in up.data] == [u["service"] for u in cat_deps["upstream"]]
    assert all(r.attributes.to.name == "catalog" for r in up.data) and up.data
    assert len(both.data) == 1 and both.meta.count == len(cat_deps["downstream"]) + len(cat_deps["upstream"])
    assert "page%5Boffset%5D=1" in both.links.next


# ---------------------------------------------------------------------- refusals


def _status(exc: pytest.ExceptionInfo[ApiException]) -> tuple[int, Any]:
    return exc.value.status, _body(exc.value)


def test_unknown_missing_and_closed_credentials_are_forbidden(facade: Facade) -> None:
    session, calls = facade.open()
    for token in ("ipx_not-a-session", "not-even-ours"):
        with client(facade, token) as api, pytest.raises(ApiException) as e:
            MonitorsApi(api).list_monitors()
        assert _status(e) == (403, {"errors": ["Forbidden"]})
    r = httpx.get(facade.url + "/api/v1/monitor")
    assert (r.status_code, r.json()) == (403, {"errors": ["Forbidden"]})
    with client(facade, session.token) as api:
        assert MonitorsApi(api).list_monitors()
        facade.registry.close(session)
        with pytest.raises(ApiException) as e:
            MonitorsApi(api).list_monitors()
    assert _status(e) == (403, {"errors": ["Forbidden"]})
    other, other_calls = facade.open(offered=("a2a", "mcp"))
    r = httpx.get(facade.url + "/api/v1/monitor", headers={"DD-APPLICATION-KEY": other.token})
    assert (r.status_code, r.json()) == (403, {"errors": ["Forbidden"]})
    assert len(calls) == 1 and not other_calls


def test_the_budget_gives_429(facade: Facade) -> None:
    session, calls = facade.open(max_calls=2)
    with client(facade, session.token) as api:
        MonitorsApi(api).list_monitors()
        MetricsV1Api(api).list_active_metrics(_from=0)
        with pytest.raises(ApiException) as e:
            MonitorsApi(api).list_monitors()
    status, body = _status(e)
    assert status == 429 and "budget of 2 tool calls" in body["errors"][0]
    assert len(calls) == 2


def test_bad_input_is_400_with_datadog_errors(facade: Facade) -> None:
    session, calls = facade.open()
    h = {"DD-API-KEY": session.token, "DD-APPLICATION-KEY": session.token, "Content-Type": "application/json"}
    u = facade.url
    refused = [
        httpx.post(u + "/api/v2/logs/events/search", headers=h, content=b'{"filter": {"query": '),
        httpx.post(u + "/api/v2/logs/events/search", headers=h, content=b"[1, 2]"),
        httpx.post(u + "/api/v2/logs/events/search", headers=h, json={"filter": "status:error"}),
        httpx.post(u + "/api/v2/logs/events/search", headers=h, json={"page": {"limit": "ten"}}),
        httpx.post(u + "/api/v2/logs/analytics/aggregate", headers=h, json={"compute": [{"aggregation": "avg", "metric": "@d"}]}),
        httpx.post(u + "/api/v2/spans/events/search", headers=h, json={"data": {"attributes": {"sort": "timestamp"}}}),
        httpx.get(u + "/api/v1/query", headers=h, params={"query": "avg:x{*}", "from": "1"}),
        httpx.get(u + "/api/v1/metrics", headers=h, params={"from": "0", "tag_filter": "env:a OR env:b"}),
        httpx.get(u + "/api/v1/monitor", headers=h, params={"page": "99", "page_size": "100"}),
        httpx.get(u + "/api/v2/catalog/relation", headers=h),
    ]
    for r in refused:
        assert r.status_code == 400, (r.request.url, r.text)
        errors = r.json()["errors"]
        assert isinstance(errors, list) and len(errors) == 1 and errors[0]
    assert "malformed JSON" in refused[0].json()["errors"][0]
    assert not calls  # refused before any tool call
    # the in-band tool's own refusal: recorded, and a 400 with its message
    with client(facade, session.token) as api, pytest.raises(ApiException) as e:
        MetricsV1Api(api).query_metrics(_from=int(facade.now - 60), to=int(facade.now), query="avg:")
    status, body = _status(e)
    want = facade.tb.call("query_metrics", {"query": "avg:", "from": int(facade.now - 60), "to": int(facade.now)})
    assert status == 400 and body == {"errors": [want.error]} and not want.ok
    assert [c[1] for c in calls] == ["query_metrics"] and calls[0][0] == "rest"


def test_an_oversized_body_is_refused(facade: Facade) -> None:
    session, calls = facade.open()
    h = {"DD-API-KEY": session.token, "Content-Type": "application/json"}
    big = json.dumps({"filter": {"query": "x" * (MAX_BODY_BYTES + 10)}}).encode()
    r = httpx.post(facade.url + "/api/v2/logs/events/search", headers=h, content=big)
    assert r.status_code == 413 and "over 65536 bytes" in r.json()["errors"][0]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap holds while reading
        yield b'{"filter": {"query": "'
        for _ in range(80):
            yield b"y" * 1024
        yield b'"}}'

    r = httpx.post(facade.url + "/api/v2/logs/events/search", headers=h, content=chunks())
    assert r.status_code == 413
    assert not calls


def test_unknown_paths_and_methods(facade: Facade) -> None:
    session, calls = facade.open()
    h = {"DD-API-KEY": session.token}
    r = httpx.get(facade.url + "/api/v1/dashboard", headers=h)
    assert (r.status_code, r.json()) == (404, {"errors": ["Not found"]})
    r = httpx.get(facade.url + "/api/v1/monitor/not-a-number", headers=h)
    assert (r.status_code, r.json()) == (404, {"errors": ["Not found"]})
    r = httpx.delete(facade.url + "/api/v1/monitor", headers=h)
    assert (r.status_code, r.json()) == (405, {"errors": ["Method not allowed"]}) and "GET" in r.headers["allow"]
    assert not calls
