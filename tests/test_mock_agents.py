"""Mock SRE agents: policies called directly, and the same policies served over A2A on loopback.

The tool results come from a small scripted world (``ScriptedWorld``) that answers in the
shapes the real tools use: a gateway pages, ``payments`` (two hops down) broke right after a
deploy, ``inventory`` had an innocent deploy at the same time, and ``noisy-batch`` (not a
dependency) throws far more errors than anyone.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from evaluator_agent.core.protocol import (
    Briefing,
    DiagnosisReply,
    ToolCallsReply,
    ToolResultsMessage,
    briefing_text,
    parse_reply,
    tool_results_text,
)
from evaluator_agent.telemetry.catalog import TOOL_SPECS
from mock_agents.policies import POLICY_NAMES, decide, get_policy
from mock_agents.transcript import DATA_END, DATA_START, Transcript, json_in_text


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# --------------------------------------------------------------------------- a scripted world

NOW = datetime(2026, 3, 2, 14, 10, tzinfo=UTC)
FIRED = datetime(2026, 3, 2, 14, 5, tzinfo=UTC)
START = FIRED - timedelta(hours=4)


def _ts(hh: int, mm: int) -> float:
    return datetime(2026, 3, 2, hh, mm, tzinfo=UTC).timestamp()


def _parse(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    s = str(value)
    m = re.fullmatch(r"now(?:-(\d+)([smhd]))?", s)
    if m:
        n = int(m.group(1) or 0) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2) or "s"]
        return NOW.timestamp() - n
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


class ScriptedWorld:
    services = {
        "web-gateway": "gateway",
        "checkout": "service",
        "payments": "service",
        "payments-db": "database",
        "inventory": "service",
        "noisy-batch": "job",
    }
    edges = [
        ("web-gateway", "checkout"),
        ("checkout", "payments"),
        ("checkout", "inventory"),
        ("payments", "payments-db"),
    ]
    # service -> (error onset, extra errors per minute)
    faults = {
        "payments": (_ts(13, 42), 30),
        "checkout": (_ts(13, 44), 20),
        "web-gateway": (_ts(13, 45), 15),
        "noisy-batch": (_ts(13, 30), 200),
    }
    # service -> (start, end, extra errors per minute): a burst that died down before the page
    bursts: dict[str, tuple[float, float, float]] = {}
    monitor = {
        "id": 101,
        "name": "web-gateway 5xx rate is high",
        "type": "metric alert",
        "query": "sum(last_5m):sum:trace.http.request.errors{service:web-gateway} > 50",
        "message": "Gateway errors @pagerduty",
        "tags": ["service:web-gateway", "team:edge"],
        "state": "Alert",
        "transitions": [{"ts": FIRED.timestamp(), "from": "OK", "to": "Alert", "value": 80.0}],
    }
    events = [
        {
            "id": "e1",
            "ts": _ts(13, 40),
            "source": "deploy",
            "title": "Deployed payments 2.5.0",
            "text": "payments 2.4.1 -> 2.5.0 by ci",
            "tags": ["service:payments", "version:2.5.0"],
        },
        {
            "id": "e2",
            "ts": _ts(13, 41),
            "source": "deploy",
            "title": "Deployed inventory 1.9.3",
            "text": "inventory 1.9.2 -> 1.9.3",
            "tags": ["service:inventory"],
        },
        {
            "id": "e3",
            "ts": _ts(12, 0),
            "source": "cron",
            "title": "nightly report job",
            "text": "",
            "tags": ["service:noisy-batch"],
        },
    ]

    def minutes(self, start: float, end: float) -> list[float]:
        t = max(start, START.timestamp()) // 60 * 60
        out = []
        while t < min(end, NOW.timestamp()):
            out.append(t)
            t += 60
        return out

    def errors(self, service: str, t: float) -> float:
        base = float(int(t // 60) * 7 % 3)  # 0..2 noise
        if service == "noisy-batch":
            base += 50
        onset, extra = self.faults.get(service, (None, 0))
        b0, b1, burst = self.bursts.get(service, (0, 0, 0))
        return (
            base
            + (extra if onset is not None and t >= onset else 0)
            + (burst if b0 <= t < b1 else 0)
        )

    def duration(self, service: str, t: float) -> float:
        onset, _ = self.faults.get(service, (None, 0))
        return 0.12 + (0.01 * (int(t // 60) % 2)) + (0.5 if onset is not None and t >= onset else 0)

    def downstream(self, service: str, depth: int) -> list[dict[str, Any]]:
        out, frontier, seen = [], [service], {service}
        for d in range(1, depth + 1):
            nxt = []
            for s in frontier:
                for a, b in self.edges:
                    if a == s and b not in seen:
                        seen.add(b)
                        nxt.append(b)
                        out.append({"service": b, "protocol": "http", "depth": d})
            frontier = nxt
        return out

    def answer(self, name: str, args: dict[str, Any]) -> Any:
        frm, to = _parse(args.get("from", "now-4h")), _parse(args.get("to", "now"))
        if name == "list_services":
            return {
                "services": [{"name": n, "kind": k, "team": "t"} for n, k in self.services.items()],
                "total": len(self.services),
                "next_cursor": None,
            }
        if name == "get_monitors":
            return {"monitors": [self.monitor], "total": 1}
        if name == "get_events":
            evs = [
                dict(e, timestamp=datetime.fromtimestamp(e["ts"], UTC).isoformat())
                for e in self.events
                if frm <= e["ts"] <= to
            ]
            return {"events": evs, "total_matched": len(evs), "next_cursor": None}
        if name == "get_service_dependencies":
            svc = args["service"]
            return {
                "service": svc,
                "downstream": self.downstream(svc, int(args.get("depth", 1))),
                "upstream": [],
            }
        if name == "aggregate_logs":
            buckets = []
            for svc in self.services:
                pts = [[t, self.errors(svc, t)] for t in self.minutes(frm, to)]
                n = sum(v for _, v in pts)
                if n:
                    b: dict[str, Any] = {"by": {"service": svc}, "count": n}
                    if args.get("interval"):
                        b["series"] = pts
                    buckets.append(b)
            return {
                "buckets": sorted(buckets, key=lambda b: -b["count"]),
                "total": sum(b["count"] for b in buckets),
            }
        if name == "list_metrics":
            svc = args.get("query", "").removeprefix("service:")
            names = [
                "trace.http.request.errors",
                "trace.http.request.duration",
                "trace.http.request.hits",
            ]
            if self.services.get(svc) == "database":
                names = ["postgresql.percent_usage_connections"]
            return {
                "metrics": [
                    {
                        "metric": n,
                        "type": "count" if "errors" in n or "hits" in n else "gauge",
                        "tags": {"service": [svc]},
                    }
                    for n in names
                ],
                "total": len(names),
                "next_cursor": None,
            }
        if name == "query_metrics":
            q = args["query"]
            m = re.match(r"(\w+):([\w.]+)\{([^}]*)\}(?: by \{(\w+)\})?", q)
            assert m, q
            metric, scope, by = m.group(2), m.group(3), m.group(4)
            svcs = (
                [scope.removeprefix("service:")]
                if scope.startswith("service:")
                else list(self.services)
            )
            series = []
            for svc in svcs:
                if metric.endswith("errors"):
                    pts = [[t, self.errors(svc, t)] for t in self.minutes(frm, to)]
                elif metric.endswith("duration"):
                    pts = [[t, self.duration(svc, t)] for t in self.minutes(frm, to)]
                else:
                    pts = [[t, 100.0 + (int(t // 60) % 5)] for t in self.minutes(frm, to)]
                tags = {"service": svc} if by else {}
                series.append(
                    {
                        "scope": f"service:{svc}",
                        "tags": tags,
                        "metric": metric,
                        "pointlist": pts,
                        "length": len(pts),
                    }
                )
            return {"query": q, "from": frm, "to": to, "series": series}
        if name == "search_logs":
            query = args.get("query", "")
            svc = re.search(r"service:(\S+)", query).group(1)
            status = re.search(r"status:(\S+)", query)
            onset, _ = self.faults.get(svc, (None, 0))
            logs = []
            if (status is None or status.group(1) == "error") and onset is not None:
                msg = {
                    "payments": "java.lang.IllegalStateException: PaymentIntent.amount is null (version 2.5.0)",
                    "checkout": "upstream payments returned 500 Internal Server Error",
                    "web-gateway": "upstream checkout returned 502",
                    "noisy-batch": "batch row rejected: duplicate key",
                }[svc]
                # one line a minute since the fault started, newest first
                for t in reversed(self.minutes(max(frm, onset), to)):
                    logs.append(
                        {
                            "timestamp": datetime.fromtimestamp(t + 5, UTC).isoformat(),
                            "ts": t + 5,
                            "service": svc,
                            "host": f"{svc}-1",
                            "status": "error",
                            "message": msg,
                            "attributes": {},
                            "trace_id": None,
                        }
                    )
            total = len(logs)
            return {"logs": logs[: int(args.get("limit", 50))], "total_matched": total, "next_cursor": None}
        raise ValueError(f"unknown tool {name}")

    def results(self, reply: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for c in reply["tool_calls"]:
            try:
                out.append(
                    {
                        "id": c["id"],
                        "ok": True,
                        "content": self.answer(c["name"], c.get("arguments") or {}),
                    }
                )
            except Exception as e:  # noqa: BLE001 - the proctor reports tool errors to the target
                out.append({"id": c["id"], "ok": False, "error": str(e)})
        return out


def make_briefing(
    investigation_id: str = "inv-1", *, max_turns: int = 30, with_monitor: bool = True
) -> Briefing:
    return Briefing(
        investigation_id=investigation_id,
        problem={
            "title": "web-gateway 5xx rate is high",
            "fired_at": FIRED,
            "monitor": ScriptedWorld.monitor if with_monitor else None,
            "prompt": "Find the root cause of the gateway errors.",
        },
        now=NOW,
        tools=TOOL_SPECS,
        budget={"max_turns": max_turns},
    )


def _as_float_numbers(obj: Any) -> Any:
    """What a protobuf Value does to numbers on the wire."""
    if isinstance(obj, bool) or obj is None:
        return obj
    if isinstance(obj, int):
        return float(obj)
    if isinstance(obj, dict):
        return {k: _as_float_numbers(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_as_float_numbers(v) for v in obj]
    return obj


# --------------------------------------------------------------------------- direct: contents as ADK builds them


def user_content(data: dict[str, Any] | None, text: str | None = None) -> Any:
    from google.genai import types

    parts = []
    if data is not None:
        blob = DATA_START + json.dumps(_as_float_numbers(data)).encode() + DATA_END
        parts.append(types.Part(inline_data=types.Blob(mime_type="text/plain", data=blob)))
    if text is not None:
        parts.append(types.Part(text=text))
    return types.Content(role="user", parts=parts)


def model_content(text: str) -> Any:
    from google.genai import types

    return types.Content(role="model", parts=[types.Part(text=text)])


def run_direct(
    policy_name: str, briefing: Briefing, world: ScriptedWorld, *, text_only: bool = False
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Drive a policy to its diagnosis; returns (tool call replies, diagnosis reply)."""
    policy = get_policy(policy_name)
    data, text = briefing.model_dump(mode="json"), briefing_text(briefing)
    contents = [user_content(None if text_only else data, text)]
    calls = []
    for turn in range(1, briefing.budget.max_turns + 1):
        reply = decide(policy, contents)
        parse_reply(reply)  # raises if the reply breaks the protocol
        if "diagnosis" in reply:
            return calls, reply
        assert len(reply["tool_calls"]) <= briefing.budget.max_calls_per_turn
        calls.append(reply)
        contents.append(model_content(json.dumps(reply)))
        msg = ToolResultsMessage(
            tool_results=world.results(reply),
            turn=turn,
            remaining_turns=briefing.budget.max_turns - turn,
        )
        contents.append(
            user_content(
                None if text_only else msg.model_dump(mode="json", exclude_none=True),
                tool_results_text(msg),
            )
        )
    raise AssertionError(f"{policy_name} used up its budget without a diagnosis")


def test_conversation_reads_data_parts_and_text_fallback() -> None:
    b = make_briefing()
    conv = Transcript.from_contents([user_content(b.model_dump(mode="json"), briefing_text(b))])
    assert conv.briefing["investigation_id"] == "inv-1"
    assert conv.max_turns == 30 and conv.max_calls == 8 and conv.remaining == 30
    assert conv.fired_at == FIRED and conv.now == NOW

    # text only: the briefing prose has no JSON, its facts are read from the words
    conv = Transcript.from_contents([user_content(None, briefing_text(b))])
    assert conv.fired_at == FIRED and conv.now == NOW and conv.max_turns == 30

    msg = ToolResultsMessage(
        tool_results=[{"id": "c1", "ok": True, "content": {"a": 1}}], turn=1, remaining_turns=29
    )
    contents = [
        user_content(b.model_dump(mode="json"), briefing_text(b)),
        model_content(
            '```json\n{"tool_calls": [{"id": "c1", "name": "list_services", "arguments": {}}]}\n```'
        ),
        user_content(None, tool_results_text(msg)),
    ]
    conv = Transcript.from_contents(contents)
    assert conv.calls["c1"]["name"] == "list_services"
    assert conv.content("c1") == {"a": 1}
    assert conv.remaining == 29 and conv.n_replies == 1
    assert json_in_text('prose first {"x": [1, 2]}') == {"x": [1, 2]}


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_every_policy_reaches_a_valid_diagnosis(name: str) -> None:
    calls, reply = run_direct(name, make_briefing(), ScriptedWorld())
    d = parse_reply(reply)
    assert isinstance(d, DiagnosisReply)
    cited = {c["id"] for r in calls for c in r["tool_calls"]}
    assert all(e.tool_call_id in cited for e in d.diagnosis.evidence if e.tool_call_id)
    ids = [c["id"] for r in calls for c in r["tool_calls"]]
    assert len(ids) == len(set(ids)), "tool call ids repeat"


def test_random_guess_is_deterministic_per_incident() -> None:
    world = ScriptedWorld()
    _, a = run_direct("random_guess", make_briefing("run-a"), world)
    _, b = run_direct("random_guess", make_briefing("run-b"), world)
    assert a == b  # same incident, another run: same guess
    assert a["diagnosis"]["root_causes"][0]["entity"] in world.services
    guesses = set()
    for minute in range(6):
        other = make_briefing()
        other.problem.fired_at = FIRED - timedelta(minutes=minute)
        guesses.add(json.dumps(run_direct("random_guess", other, world)[1]))
    assert len(guesses) > 1  # a different incident gets a different guess


def test_alert_blamer_blames_the_paged_service() -> None:
    for with_monitor in (True, False):
        calls, reply = run_direct(
            "alert_blamer", make_briefing(with_monitor=with_monitor), ScriptedWorld()
        )
        assert [c["name"] for c in calls[0]["tool_calls"]] == ["get_monitors"]
        rc = reply["diagnosis"]["root_causes"][0]
        assert rc["entity"] == "web-gateway"
        assert rc["mechanism"] == "bad_release"  # "5xx" in the monitor name


class NoisyInventory(ScriptedWorld):
    """An unrelated failure below the page, louder than the real one and older than the deploy."""

    faults = {**ScriptedWorld.faults, "inventory": (_ts(13, 35), 120)}


def test_greedy_anomaly_falls_for_the_noisy_neighbour_below_the_page() -> None:
    # the loudest service anywhere cannot be what paged the gateway: it is not below it
    _, reply = run_direct("greedy_anomaly", make_briefing(), ScriptedWorld())
    assert reply["diagnosis"]["root_causes"][0]["entity"] == "payments"
    # a louder failure below the page wins, though nothing links it to the page
    _, reply = run_direct("greedy_anomaly", make_briefing(), NoisyInventory())
    assert reply["diagnosis"]["root_causes"][0]["entity"] == "inventory"


@pytest.mark.parametrize("text_only", [False, True])
def test_methodical_follows_dependencies_to_the_deploy(text_only: bool) -> None:
    calls, reply = run_direct("methodical", make_briefing(), ScriptedWorld(), text_only=text_only)
    d = reply["diagnosis"]
    assert d["no_fault"] is False
    assert d["root_causes"][0]["entity"] == "payments"
    assert d["root_causes"][0]["mechanism"] == "bad_release"
    assert d["causal_chain"] == [
        {"source": "payments", "target": "checkout"},
        {"source": "checkout", "target": "web-gateway"},
    ]
    assert d["onset"] == "2026-03-02T13:42:00Z"  # the first errors, two minutes after the deploy
    names = [c["name"] for r in calls for c in r["tool_calls"]]
    assert "get_service_dependencies" in names and "get_events" in names
    assert not any(
        "noisy-batch" in json.dumps(c["arguments"]) for r in calls for c in r["tool_calls"]
    )
    assert any("Deployed payments" in e["description"] for e in d["evidence"])


def test_methodical_is_not_fooled_by_an_old_burst_or_simultaneous_symptoms() -> None:
    class Harder(ScriptedWorld):
        bursts = {"inventory": (_ts(12, 30), _ts(12, 40), 40.0)}  # earlier, but over by the page
        faults = {  # everything on the chain breaks in the same minute
            "payments": (_ts(13, 42), 30),
            "checkout": (_ts(13, 42), 20),
            "web-gateway": (_ts(13, 42), 15),
        }

    _, reply = run_direct("methodical", make_briefing(), Harder())
    d = reply["diagnosis"]
    assert d["root_causes"][0]["entity"] == "payments"  # the deploy breaks the tie, then depth
    assert d["causal_chain"][0] == {"source": "payments", "target": "checkout"}


def test_methodical_finds_the_symptom_without_a_monitor_in_the_briefing() -> None:
    _, reply = run_direct("methodical", make_briefing(with_monitor=False), ScriptedWorld())
    assert reply["diagnosis"]["root_causes"][0]["entity"] == "payments"


def test_methodical_respects_a_small_budget() -> None:
    calls, reply = run_direct("methodical", make_briefing(max_turns=4), ScriptedWorld())
    assert len(calls) == 2  # answers when two replies remain
    assert "diagnosis" in reply


def test_methodical_says_no_fault_for_a_benign_spike() -> None:
    class Benign(ScriptedWorld):
        faults: dict[str, tuple[float, float]] = {}
        events = [
            {
                "id": "e9",
                "ts": _ts(13, 55),
                "source": "marketing",
                "title": "Spring campaign email sent",
                "text": "",
                "tags": [],
            }
        ]

    _, reply = run_direct("methodical", make_briefing(), Benign())
    assert reply["diagnosis"]["no_fault"] is True
    assert reply["diagnosis"]["root_causes"] == []


def test_policy_survives_garbage() -> None:
    assert "diagnosis" in decide(get_policy("methodical"), [user_content(None, "hello?")])
    b = make_briefing()
    contents = [
        user_content(b.model_dump(mode="json")),
        model_content(
            json.dumps({"tool_calls": [{"id": "x", "name": "get_monitors", "arguments": {}}]})
        ),
        user_content(
            {
                "type": "tool_results",
                "tool_results": [{"id": "x", "ok": True, "content": {"monitors": "nope"}}],
                "turn": 1,
                "remaining_turns": 29,
            }
        ),
    ]
    for name in POLICY_NAMES:
        parse_reply(decide(get_policy(name), contents))


# --------------------------------------------------------------------------- methodical's reasoning


class StreamWorld(ScriptedWorld):
    """A world described the way the methodical agent reads one: log streams (a service's
    lines of one kind, at a rate, over a time span), events, and metric curves per service.
    Callers name their dependencies in ``peer.service``; background streams run all day."""

    services: dict[str, str] = {}
    edges: list[tuple[str, str]] = []
    # (service, start, end, lines per minute, status, message, attributes)
    streams: list[tuple[str, float, float, int, str, str, dict[str, Any]]] = []
    metrics_of: dict[str, list[str]] = {}
    # (service or host, metric) -> value at time t
    curves: dict[tuple[str, str], Any] = {}
    events: list[dict[str, Any]] = []

    def lines(self, service: str, status: str | None, frm: float, to: float) -> list[dict[str, Any]]:
        out = []
        for svc, start, end, per_min, st, msg, attrs in self.streams:
            if svc != service or (status is not None and st != status):
                continue
            for t in self.minutes(max(frm, start), min(to, end)):
                for k in range(per_min):
                    ts = t + (k + 0.5) * 60 / per_min
                    out.append(
                        {"timestamp": datetime.fromtimestamp(ts, UTC).isoformat(), "ts": ts,
                         "service": svc, "host": f"{svc}-1", "status": st, "message": msg,
                         "attributes": dict(attrs), "trace_id": None}
                    )  # fmt: skip
        return sorted(out, key=lambda x: -x["ts"])

    def answer(self, name: str, args: dict[str, Any]) -> Any:
        frm, to = _parse(args.get("from", "now-4h")), _parse(args.get("to", "now"))
        query = args.get("query", "")
        if name == "search_logs":
            svc = re.search(r"service:(\S+)", query).group(1)
            status = re.search(r"status:(\S+)", query)
            logs = self.lines(svc, status.group(1) if status else None, frm, to)
            return {"logs": logs[: int(args.get("limit", 50))], "total_matched": len(logs)}
        if name == "aggregate_logs":
            buckets = []
            for svc in self.services:
                pts = []
                for t in self.minutes(frm, to):
                    pts.append([t, len(self.lines(svc, "error", t, t + 59.9))])
                n = sum(v for _, v in pts)
                if n:
                    buckets.append({"by": {"service": svc}, "count": n, "series": pts})
            return {"buckets": sorted(buckets, key=lambda b: -b["count"]), "total": 0}
        if name == "get_service_dependencies":
            svc = args["service"]
            down = [{"service": b, "protocol": "http", "depth": 1} for a, b in self.edges if a == svc]
            up = [{"service": a, "protocol": "http", "depth": 1} for a, b in self.edges if b == svc]
            return {"service": svc, "downstream": down, "upstream": up}
        if name == "list_metrics":
            svc = query.removeprefix("service:")
            names = self.metrics_of.get(svc, [])
            return {
                "metrics": [{"metric": n, "type": "gauge", "tags": {"service": [svc], "host": [f"{svc}-host"]}}
                            for n in names],
                "total": len(names),
            }  # fmt: skip
        if name == "query_metrics":
            m = re.match(r"(\w+):([\w.]+)\{(\w+):([^}]*)\}", args["query"])
            metric, owner = m.group(2), m.group(4)
            curve = self.curves.get((owner, metric), lambda t: 1.0)
            pts = [[t, curve(t)] for t in self.minutes(frm, to)]
            return {"query": args["query"], "series": [{"tags": {}, "pointlist": pts}]}
        return super().answer(name, args)


def _event(ts: float, source: str, title: str, text: str, service: str | None, **tags: str) -> dict[str, Any]:
    tag_list = [f"{k}:{v}" for k, v in {"service": service, **tags}.items() if v]
    return {"id": f"{source}-{ts}", "ts": ts, "source": source, "title": title, "text": text, "tags": tag_list}


def _page(service: str, title: str) -> Briefing:
    b = make_briefing()
    b.problem.title = title
    b.problem.monitor = {**ScriptedWorld.monitor, "name": title, "tags": [f"service:{service}"]}
    return b


class DnsWorld(StreamWorld):
    """orders-db's DNS record is emptied at 13:40: orders cannot resolve it, the gateway gets
    503s from orders. Background: catalog's resolver times out all day, the gateway throws
    its own 503s all day, payments had a routine deploy a minute before the onset."""

    services = {
        "web-gateway": "gateway", "orders": "service", "orders-db": "database",
        "payments": "service", "payments-db": "database", "catalog": "service",
    }  # fmt: skip
    edges = [
        ("web-gateway", "orders"), ("web-gateway", "catalog"), ("orders", "orders-db"),
        ("orders", "payments"), ("payments", "payments-db"),
    ]  # fmt: skip
    day = (START.timestamp(), NOW.timestamp())
    streams = [
        ("orders", _ts(13, 41), NOW.timestamp(), 6, "error",
         "java.net.UnknownHostException: pg-orders-01: Name or service not known",
         {"peer.service": "orders-db", "peer.hostname": "pg-orders-01", "error.kind": "dns"}),
        ("web-gateway", _ts(13, 42), NOW.timestamp(), 4, "error",
         '"GET /v1/orders/1 HTTP/2" 503 UC 0 95 8886 - "10.1.2.3"', {"peer.service": "orders"}),
        ("web-gateway", *day, 1, "error", '"GET /v1/x HTTP/2" 503 URX 0 91 310 -', {}),
        ("catalog", *day, 2, "warn",
         "dial tcp: lookup pricing.catalog.svc.cluster.local on 10.96.0.10:53: i/o timeout",
         {"error.kind": "dns"}),
    ]  # fmt: skip
    metrics_of: dict[str, list[str]] = {}
    events = [
        _event(_ts(13, 39), "deploy", "Deployed payments 2.5.0", "payments 2.4.1 -> 2.5.0", "payments"),
        _event(_ts(13, 39) + 20, "terraform", "DNS automation applied plan 630073 to zone internal",
               "dns-enactor applied plan 630073: record set pg-orders-01 (A) updated, 0 records",
               "orders-db"),
        _event(_ts(13, 30), "terraform", "DNS automation applied plan 630001 to zone internal",
               "dns-enactor applied plan 630001: record set catalog (A) updated, 4 records", "catalog"),
    ]  # fmt: skip


def test_methodical_follows_the_errors_to_a_silent_database() -> None:
    calls, reply = run_direct("methodical", make_briefing(), DnsWorld())
    d = reply["diagnosis"]
    assert d["no_fault"] is False
    assert (d["root_causes"][0]["entity"], d["root_causes"][0]["mechanism"]) == ("orders-db", "dns_failure")
    assert d["causal_chain"] == [
        {"source": "orders-db", "target": "orders"},
        {"source": "orders", "target": "web-gateway"},
    ]
    # it read the errors of the services on the way, never the innocent ones' in detail
    asked = [json.dumps(c["arguments"]) for r in calls for c in r["tool_calls"] if c["name"] == "search_logs"]
    assert any("service:orders " in a for a in asked) and not any("service:catalog" in a for a in asked)


class LoadWorld(StreamWorld):
    """search got slower at 13:46 with its CPU throttled. With ``cause="loadtest"`` a k6 load
    test doubled its traffic (nothing is broken); with ``cause="limit"`` its CPU limit was
    lowered at 13:44 and traffic stayed flat (a fault)."""

    cause = "loadtest"
    services = {"web-gateway": "gateway", "search": "service", "search-db": "database"}
    edges = [("web-gateway", "search"), ("search", "search-db")]
    metrics_of = {
        "search": ["trace.http.request.hits", "trace.http.request.duration",
                   "kubernetes.cpu.cfs.throttled.seconds", "kubernetes.cpu.usage.total",
                   "kubernetes.cpu.limits"],
        "search-db": ["trace.postgres.query.hits", "trace.postgres.query.duration"],
    }  # fmt: skip

    def __init__(self, cause: str = "loadtest") -> None:
        t0 = _ts(13, 46)
        busy = 2.5 if cause == "loadtest" else 1.0
        self.curves = {
            ("search", "trace.http.request.hits"): lambda t: 1000 * (busy if t >= t0 else 1.0),
            ("search", "trace.http.request.duration"): lambda t: 0.5 if t >= t0 else 0.1,
            ("search", "kubernetes.cpu.cfs.throttled.seconds"): lambda t: 20.0 if t >= t0 else 0.1,
            ("search", "kubernetes.cpu.usage.total"): lambda t: 0.98e9 if t >= t0 else 0.3e9,
        }
        day = (START.timestamp(), NOW.timestamp())
        self.streams = [("search", *day, 1, "error", "context canceled", {})]
        if cause == "loadtest":
            self.events = [_event(_ts(13, 45), "loadtest", "k6 load test started against search",
                                  "Scenario ramp-30m: 400 requests/s from client loadtest-k6", "search")]
            self.streams.append(("search", t0, NOW.timestamp(), 2, "warn",
                                 "429 Too Many Requests: rate limit exceeded for client loadtest-k6",
                                 {"usr.id": "loadtest-k6"}))
        else:
            self.events = [_event(_ts(13, 44), "config", "ConfigMap catalog/search-config updated",
                                  "resources.limits.cpu: 2 -> 500m", "search")]
            self.streams.append(("search", t0, NOW.timestamp(), 2, "warn",
                                 "Slow request: 2400ms exceeds threshold of 1000ms", {}))


@pytest.mark.parametrize("cause", ["loadtest", "limit"])
def test_methodical_tells_load_from_a_fault(cause: str) -> None:
    briefing = _page("search", "search average latency above 0.3s")
    _, reply = run_direct("methodical", briefing, LoadWorld(cause))
    d = reply["diagnosis"]
    if cause == "loadtest":  # throttled because traffic doubled, and a load test explains it
        assert d["no_fault"] is True and d["root_causes"] == []
        assert "load test" in d["summary"]
    else:  # the same starvation with flat traffic, right after the limit was lowered
        assert d["no_fault"] is False
        assert (d["root_causes"][0]["entity"], d["root_causes"][0]["mechanism"]) == ("search", "cpu_throttling")


def _facts(kind: str = "service", **kw: Any) -> Any:
    from mock_agents.methodical_diagnosis import Facts

    return Facts("svc", kind, **kw)


def _frame() -> Any:
    from mock_agents.methodical_diagnosis import Frame

    f = FIRED.timestamp()
    return Frame(fired=f, end=f + 300, start=f - 3 * 3600)


def _ramp(t0: float, t1: float, lo: float, hi: float) -> list[tuple[float, float]]:
    f = FIRED.timestamp()
    pts = []
    for t in range(int(f - 3 * 3600), int(f + 300), 60):
        x = 0.0 if t < t0 else min(1.0, (t - t0) / max(1.0, t1 - t0))
        pts.append((float(t), lo + (hi - lo) * x))
    return pts


@pytest.mark.parametrize("deployed_min_before", [12, 150])
def test_methodical_tells_an_oom_after_a_deploy_from_a_leak(deployed_min_before: int) -> None:
    from mock_agents.methodical_diagnosis import hypotheses

    f0 = FIRED.timestamp()
    onset = f0 - 15 * 60
    t_dep = onset - deployed_min_before * 60
    kills = [
        _event(onset + k * 300, "kubernetes", "Events from the Node n1",
               "OOMKilling: Memory cgroup out of memory: Killed process 1 (java)", "svc",
               reason="OOMKilling")
        for k in range(3)
    ]  # fmt: skip
    deploy = _event(t_dep, "deploy", "Deployed svc 1.2.0", "svc 1.1.9 -> 1.2.0", "svc")
    facts = _facts(
        onset=onset,
        events=[deploy, *kills],
        new={"oom": 1.0},
        metrics={"mem": _ramp(t_dep, onset, 0.4, 0.97), "mem_limit": _ramp(0, 0, 1.0, 1.0)},
    )
    best = hypotheses(facts, _frame())[0]
    assert best.mechanism == ("oom_killed" if deployed_min_before == 12 else "memory_leak")


def test_methodical_reads_a_consumer_config_change_as_a_rebalance_storm_not_a_crash_loop() -> None:
    from mock_agents.methodical_diagnosis import hypotheses

    f0 = FIRED.timestamp()
    onset = f0 - 20 * 60
    config = _event(onset - 90, "config", "ConfigMap ml/svc-config updated",
                    "kafka.consumer.session.timeout.ms: 45000 -> 6000", "svc")  # fmt: skip
    storm = _facts(
        onset=onset,
        events=[config],
        new={"heartbeat": 1.2, "rebalance": 0.6, "commit_failed": 0.3},
        metrics={"lag": _ramp(onset, f0, 150, 60000)},
    )
    assert hypotheses(storm, _frame())[0].mechanism == "rebalance_storm"
    backoffs = [
        _event(onset + 30 * k, "kubernetes", "Events from the Pod ns/svc-1",
               "BackOff: Back-off restarting failed container svc", "svc", reason="BackOff")
        for k in range(3)
    ]  # fmt: skip
    crash = _facts(
        onset=onset,
        events=[config, *backoffs],
        new={"startup": 1.0, "no_upstream": 2.0},
        metrics={"replicas": _ramp(onset, onset + 60, 4, 2)},
    )
    assert hypotheses(crash, _frame())[0].mechanism == "crashloop_bad_config"


def test_methodical_counts_only_lines_that_started_with_the_incident() -> None:
    from mock_agents.methodical_evidence import LogWindow, new_kinds

    def window(t0: float, t1: float, per_min: dict[str, int]) -> LogWindow:
        logs = []
        for t in range(int(t0), int(t1), 60):
            for msg, n in per_min.items():
                logs += [{"ts": t + k, "status": "warn", "message": msg} for k in range(n)]
        return LogWindow.of({"logs": logs, "total_matched": len(logs)}, t0, t1)

    f0 = FIRED.timestamp()
    chronic = "process 4242 still waiting for RowExclusiveLock on relation 16384 of database x"
    started = "org.postgresql.util.PSQLException: ERROR: canceling statement due to lock timeout"
    before = window(f0 - 3 * 3600, f0 - 3600, {chronic: 2})
    now = window(f0 - 1500, f0, {chronic: 2, started: 3})
    new = new_kinds(now, before)
    assert "lock_timeout" in new and "lock_wait" not in new  # the waits were there all along


def test_methodical_names_the_dependency_a_client_error_dialled() -> None:
    from mock_agents.methodical_evidence import LogLine, Peer, named_peer

    peers = {
        "stripe-api": Peer("stripe-api", "external", "Stripe"),
        "adyen-api": Peer("adyen-api", "external", "Adyen"),
        "gcs-api": Peer("gcs-api", "external", "Google Cloud Storage"),
        "pricing": Peer("pricing", "service"),
    }

    def line(msg: str, **attrs: str) -> LogLine:
        return LogLine(0.0, "error", msg, dict(attrs), set())

    stripe = 'HttpServerErrorException: 503 Service Unavailable on POST request for "https://api.stripe.com/v1/charges"'
    assert named_peer(line(stripe), peers, "payments") == "stripe-api"
    assert named_peer(line("x509: certificate has expired", **{"peer.hostname": "storage.googleapis.com"}),
                      peers, "exports") == "gcs-api"  # fmt: skip
    assert named_peer(line('Post "https://pricing.catalog.svc.cluster.local:8443/": x509'), peers, "cart") == "pricing"
    assert named_peer(line("call pricing: unexpected status 503", **{"peer.service": "pricing"}), peers, "cart") == "pricing"
    assert named_peer(line("invalid character '<' looking for beginning of value"), peers, "cart") is None


def test_methodical_variants_are_policies_of_the_same_protocol() -> None:
    from mock_agents.methodical import VARIANTS

    names = [v.name for v in VARIANTS]
    assert len(names) >= 3 and len(set(names)) == len(names)
    for name in names:
        policy = get_policy(name)
        calls, reply = run_direct(name, make_briefing(), ScriptedWorld())
        assert isinstance(parse_reply(reply), DiagnosisReply)
        if name == "methodical_hasty":
            assert len(calls) <= policy.max_replies
        if name == "methodical_logs_only":
            assert not any(c["name"] == "query_metrics" for r in calls for c in r["tool_calls"])
    _, shallow = run_direct("methodical_shallow", make_briefing(), DnsWorld())
    # two hops down from the gateway is as far as it goes: orders, not its database
    assert shallow["diagnosis"]["root_causes"][0]["entity"] in ("orders", "orders-db")


GARBAGE: list[Any] = [
    None, "nope", 42, [], {"logs": "x"}, {"logs": [None, 3, {"ts": "soon", "message": None}]},
    {"events": [{"ts": None, "tags": 7}, {"source": ["deploy"], "title": {}}]},
    {"buckets": [{"by": None, "series": [[None, 1], ["t", "x"], [1.0]]}]},
    {"series": [{"pointlist": [[1, None], "p", [None, 2]], "tags": []}]},
    {"services": [{"name": None}, {"name": "orders", "kind": 3}], "monitors": [None]},
    {"downstream": [{"service": None}, {"service": 5}], "upstream": "x", "metrics": [{"metric": 1}]},
]  # fmt: skip


@pytest.mark.parametrize("name", ["methodical", "methodical_hasty", "methodical_logs_only",
                                  "methodical_shallow", "methodical_keywords"])  # fmt: skip
def test_methodical_never_raises_on_garbage_results(name: str) -> None:
    policy = get_policy(name)
    b = make_briefing()
    for k in range(len(GARBAGE)):
        contents = [user_content(b.model_dump(mode="json"))]
        for turn in range(1, 8):
            conv = Transcript.from_contents(contents)
            reply = policy.reply(conv)  # not through decide(): the policy itself must not raise
            parse_reply(reply)
            if "diagnosis" in reply:
                break
            contents.append(model_content(json.dumps(reply)))
            results = [
                {"id": c["id"], "ok": True, "content": GARBAGE[(k + i) % len(GARBAGE)]}
                for i, c in enumerate(reply["tool_calls"])
            ]
            msg = {"type": "tool_results", "tool_results": results, "turn": turn, "remaining_turns": 30 - turn}
            contents.append(user_content(msg))


@pytest.mark.anyio
async def test_policy_model_is_a_base_llm() -> None:
    from google.adk.models.llm_request import LlmRequest

    from mock_agents.model import PolicyModel

    b = make_briefing()
    model = PolicyModel(model="policy/alert_blamer", policy="alert_blamer")
    req = LlmRequest(contents=[user_content(b.model_dump(mode="json"), briefing_text(b))])
    responses = [r async for r in model.generate_content_async(req)]
    assert len(responses) == 1 and responses[0].usage_metadata.total_token_count > 0
    reply = json.loads(responses[0].content.parts[0].text)
    assert isinstance(parse_reply(reply), ToolCallsReply)


# --------------------------------------------------------------------------- over A2A on loopback


class Served:
    def __init__(self, base: str) -> None:
        self.base = base


@pytest.fixture
async def served(anyio_backend: str) -> Any:
    import uvicorn

    from mock_agents.server import bind, create_app

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    app = await create_app("127.0.0.1", port)
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield Served(f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        await task


async def _client(http: httpx.AsyncClient, base: str, name: str) -> tuple[Any, Any]:
    from a2a.client import ClientConfig, ClientFactory
    from a2a.client.card_resolver import parse_agent_card

    r = await http.get(f"{base}/{name}/.well-known/agent-card.json")
    r.raise_for_status()
    card = parse_agent_card(r.json())
    return card, ClientFactory(ClientConfig(streaming=False, httpx_client=http)).create(card)


async def _send(client: Any, context_id: str, data: dict[str, Any], text: str) -> dict[str, Any]:
    from a2a.helpers import new_data_part, new_text_part
    from a2a.types import Message, Role, SendMessageRequest

    msg = Message(
        role=Role.ROLE_USER,
        message_id=str(uuid.uuid4()),
        context_id=context_id,
        parts=[new_data_part(data), new_text_part(text)],
    )
    texts: list[str] = []
    async for ev in client.send_message(SendMessageRequest(message=msg)):
        if ev.HasField("task"):
            for art in ev.task.artifacts:
                texts += [p.text for p in art.parts if p.HasField("text")]
        elif ev.HasField("message"):
            texts += [p.text for p in ev.message.parts if p.HasField("text")]
    assert texts, "no text in the agent's answer"
    obj = json_in_text(texts[-1])
    parse_reply(obj)
    return obj


async def _investigate(
    client: Any, briefing: Briefing, world: ScriptedWorld
) -> tuple[list[dict[str, Any]], dict[str, Any], list[float]]:
    ctx = str(uuid.uuid4())
    data, text = briefing.model_dump(mode="json"), briefing_text(briefing)
    calls, latencies = [], []
    for turn in range(1, briefing.budget.max_turns + 1):
        t0 = time.perf_counter()
        reply = await _send(client, ctx, data, text)
        latencies.append(time.perf_counter() - t0)
        if "diagnosis" in reply:
            return calls, reply, latencies
        calls.append(reply)
        msg = ToolResultsMessage(
            tool_results=world.results(reply),
            turn=turn,
            remaining_turns=briefing.budget.max_turns - turn,
        )
        data, text = msg.model_dump(mode="json", exclude_none=True), tool_results_text(msg)
    raise AssertionError("no diagnosis within the budget")


@pytest.mark.anyio
async def test_agents_over_a2a(served: Served) -> None:
    world = ScriptedWorld()
    async with httpx.AsyncClient(timeout=30) as http:
        health = (await http.get(f"{served.base}/health")).json()
        assert set(POLICY_NAMES) <= set(health["agents"])

        clients = {}
        for name in POLICY_NAMES:
            card, clients[name] = await _client(http, served.base, name)
            assert card.name == name
            assert card.supported_interfaces[0].url == f"{served.base}/{name}"
            assert card.supported_interfaces[0].protocol_version == "1.0"

        # the same incident twice, in two conversations: the same guess
        _, a, _ = await _investigate(clients["random_guess"], make_briefing("run-a"), world)
        _, b, _ = await _investigate(clients["random_guess"], make_briefing("run-b"), world)
        assert a == b

        _, reply, _ = await _investigate(clients["alert_blamer"], make_briefing(), world)
        assert reply["diagnosis"]["root_causes"][0]["entity"] == "web-gateway"

        calls, reply, latencies = await _investigate(clients["methodical"], make_briefing(), world)
        d = reply["diagnosis"]
        assert d["root_causes"][0]["entity"] == "payments"
        assert d["causal_chain"][0] == {"source": "payments", "target": "checkout"}
        assert len(calls) >= 3
        assert sum(latencies) / len(latencies) < 2.0


@pytest.mark.anyio
async def test_app_works_in_process_and_speaks_0_3(anyio_backend: str) -> None:
    from mock_agents.server import create_app

    app = await create_app("test", 80, ["alert_blamer"])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test:80") as http:
        card = (await http.get("/alert_blamer/.well-known/agent-card.json")).json()
        assert card["supportedInterfaces"][0]["url"] == "http://test:80/alert_blamer"
        b = make_briefing()
        body = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "message/send",
            "params": {
                "message": {
                    "kind": "message",
                    "role": "user",
                    "messageId": str(uuid.uuid4()),
                    "contextId": "ctx-03",
                    "parts": [
                        {"kind": "data", "data": b.model_dump(mode="json")},
                        {"kind": "text", "text": briefing_text(b)},
                    ],
                }
            },
        }
        r = await http.post("/alert_blamer", json=body)
        assert r.status_code == 200, r.text
        result = r.json()["result"]
        texts = [
            p["text"]
            for a in result.get("artifacts", [])
            for p in a["parts"]
            if p.get("kind") == "text"
        ]
        reply = parse_reply(json_in_text(texts[-1]))
        assert isinstance(reply, ToolCallsReply) and reply.tool_calls[0].name == "get_monitors"


def test_build_app_without_an_event_loop() -> None:
    from mock_agents.server import build_app

    app = build_app("127.0.0.1", 9100, ["random_guess", "methodical"])

    async def check() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://127.0.0.1:9100"
        ) as client:
            health = (await client.get("/health")).json()
            assert health == {"status": "ok", "agents": ["methodical", "random_guess"]}
            card = (await client.get("/methodical/.well-known/agent-card.json")).json()
            assert card["name"] == "methodical" and card["skills"]
            index = (await client.get("/")).json()
            assert index["agents"]["random_guess"]["url"] == "http://127.0.0.1:9100/random_guess"

    asyncio.run(check())
    with pytest.raises(ValueError, match="unknown agent"):
        build_app("127.0.0.1", 9100, ["nope"])


def test_cli_serves_on_a_free_port() -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("PROCTOR_MOCK_LLM_MODEL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "mock_agents", "serve", "--port", "0", "--agents", "alert_blamer"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()  # printed once the server is about to listen
        url = re.search(r"card: (\S+)", line).group(1)
        deadline = time.monotonic() + 15
        while True:
            try:
                card = httpx.get(url, timeout=2).json()
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, proc.stderr.read()
                time.sleep(0.05)
        assert card["name"] == "alert_blamer"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
