"""The reading layer of the ``methodical`` agent: its tool calls and what their answers say.

Every call's id is a function of its arguments (:func:`mock_agents.signals.call`), so the
stateless policy finds each answer again in the history. :class:`MethodicalReads` holds the
investigation's clock (the page, the baseline and incident windows), the calls (the orienting
ones, dependencies, logs, events, metrics) and the readers of their answers: the paged
service, the catalog, the dependency graph, log windows, the error-log anomalies, events and
which metrics are worth querying. The walk (:mod:`mock_agents.methodical_walk`) and the
examination (:mod:`mock_agents.methodical`) are built on it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from .methodical_diagnosis import Frame
from .methodical_evidence import LogWindow, Peer, event_service, event_ts
from .policy import Policy, paging_monitor
from .signals import as_dict, as_list, call, detect_anomaly, monitor_service
from .transcript import Transcript, iso

LOOKBACK = timedelta(hours=3)


class MethodicalReads(Policy):
    """The calls of the methodical investigation and the readers of their answers (memoised
    per turn in ``conv.memo``)."""

    #: a knob the weaker variants turn: read metrics at all
    use_metrics = True

    # ------------------------------------------------------------------ time

    def frame(self, conv: Transcript) -> Frame:
        fired = conv.fired_at.timestamp()
        end = max(conv.now.timestamp(), fired)
        return Frame(fired=fired, end=end, start=fired - LOOKBACK.total_seconds())

    def _span(self, conv: Transcript, which: str) -> tuple[float, float]:
        f = self.frame(conv)
        if which == "recent":
            return f.recent
        if which == "base":
            return f.base
        return f.start, f.end

    # ------------------------------------------------------------------ calls (ids from arguments)

    def _orient(self, conv: Transcript) -> dict[str, dict[str, Any]]:
        t0, t1 = self._span(conv, "all")
        return {
            "monitors": call("get_monitors", {"query": "status:alert"}, "monitors"),
            "events": call("get_events", {"from": iso(t0), "to": iso(t1), "limit": 500}, "events"),
            "errlogs": call(
                "aggregate_logs",
                {
                    "query": "status:error",
                    "from": iso(t0),
                    "to": iso(t1),
                    "group_by": ["service"],
                    "interval": 60,
                    "limit": 500,
                },
                "errlogs",
            ),
            "services": call("list_services", {"limit": 500}, "services"),
        }

    def _deps(self, service: str) -> dict[str, Any]:
        args = {"service": service, "direction": "both", "depth": 1}
        return call("get_service_dependencies", args, f"deps.{service}")

    def _logs(self, conv: Transcript, service: str, which: str, errors: bool) -> dict[str, Any]:
        t0, t1 = self._span(conv, which)
        q = f"service:{service} status:error" if errors else f"service:{service}"
        args = {"query": q, "from": iso(t0), "to": iso(t1), "limit": 200}
        return call("search_logs", args, f"{'err' if errors else 'logs'}.{which}.{service}")

    def _events_of(self, conv: Transcript, service: str) -> dict[str, Any]:
        t0, t1 = self._span(conv, "all")
        args = {"query": f"service:{service}", "from": iso(t0), "to": iso(t1), "limit": 200}
        return call("get_events", args, f"events.{service}")

    def _list_metrics(self, service: str) -> dict[str, Any]:
        return call(
            "list_metrics", {"query": f"service:{service}", "limit": 200}, f"metrics.{service}"
        )

    def _query(self, conv: Transcript, key: str, q: str, owner: str) -> dict[str, Any]:
        t0, t1 = self._span(conv, "all")
        return call(
            "query_metrics", {"query": q, "from": iso(t0), "to": iso(t1)}, f"q.{owner}.{key}"
        )

    # ------------------------------------------------------------------ what is known

    def symptom(self, conv: Transcript) -> str | None:
        svc = monitor_service(conv.monitor)
        if svc:
            return svc
        monitors = as_list(
            as_dict(conv.content(self._orient(conv)["monitors"]["id"])).get("monitors")
        )
        svc = monitor_service(paging_monitor(conv, monitors))
        if svc:
            return svc
        # no usable monitor: the service whose error logs departed most from their baseline
        best = None
        for s, a in self._errlog_anomalies(conv).items():
            if best is None or a.peak > best[1]:
                best = (s, a.peak)
        return best[0] if best else None

    def catalog(self, conv: Transcript) -> dict[str, Peer]:
        if "catalog" not in conv.memo:
            content = as_dict(conv.content(self._orient(conv)["services"]["id"]))
            out = {}
            for s in map(as_dict, as_list(content.get("services"))):
                if s.get("name"):
                    name = str(s["name"])
                    out[name] = Peer(
                        name, str(s.get("kind") or "service"), str(s.get("description") or "")
                    )
            conv.memo["catalog"] = out
        return conv.memo["catalog"]

    def kind(self, conv: Transcript, service: str) -> str:
        p = self.catalog(conv).get(service)
        return p.kind if p else "service"

    def neighbours(self, conv: Transcript, service: str, direction: str) -> list[str] | None:
        """Direct dependencies (``downstream``) or callers (``upstream``); None until known."""
        c = self._deps(service)
        if c["id"] not in conv.results:
            return None
        content = as_dict(conv.content(c["id"]))
        return sorted(
            {
                str(d["service"])
                for d in map(as_dict, as_list(content.get(direction)))
                if d.get("service")
            }
        )

    def window(
        self, conv: Transcript, service: str, which: str, errors: bool
    ) -> LogWindow | None:
        c = self._logs(conv, service, which, errors)
        if c["id"] not in conv.results:
            return None
        t0, t1 = self._span(conv, which)
        return LogWindow.of(conv.content(c["id"]), t0, t1)

    def _errlog_series(self, conv: Transcript) -> dict[str, Any]:
        if "errlog_series" not in conv.memo:
            content = as_dict(conv.content(self._orient(conv)["errlogs"]["id"]))
            conv.memo["errlog_series"] = {
                str(as_dict(b.get("by")).get("service")): b.get("series")
                for b in map(as_dict, as_list(content.get("buckets")))
                if b.get("series")
            }
        return conv.memo["errlog_series"]

    def _errlog_anomalies(self, conv: Transcript) -> dict[str, Any]:
        """Services whose error logs rose above their own baseline and were still up at the page."""
        if "errlog_anomalies" not in conv.memo:
            f = self.frame(conv)
            out = {}
            for svc, series in self._errlog_series(conv).items():
                a = detect_anomaly(series, f.fired - 3600, min_abs=2, active_after=f.fired - 900)
                if a and a.direction > 0:
                    out[svc] = a
            conv.memo["errlog_anomalies"] = out
        return conv.memo["errlog_anomalies"]

    def events(self, conv: Transcript) -> list[dict[str, Any]]:
        content = as_dict(conv.content(self._orient(conv)["events"]["id"]))
        return [e for e in map(as_dict, as_list(content.get("events"))) if e]

    def events_of(self, conv: Transcript, service: str) -> list[dict[str, Any]]:
        """Events tagged with the service, from its own query and the global stream."""
        seen: dict[str, dict[str, Any]] = {}
        own = as_dict(conv.content(self._events_of(conv, service)["id"]))
        for e in [*map(as_dict, as_list(own.get("events"))), *self.events(conv)]:
            if e and event_service(e) == service:
                seen.setdefault(str(e.get("id") or (e.get("title"), event_ts(e))), e)
        return sorted(seen.values(), key=event_ts)

    def metric_plan(self, conv: Transcript, service: str, kind: str) -> dict[str, str]:
        """Metric queries worth reading for one entity, given the metrics it has."""
        if not self.use_metrics:
            return {}
        content = as_dict(conv.content(self._list_metrics(service)["id"]))
        names: dict[str, dict[str, Any]] = {}
        for m in map(as_dict, as_list(content.get("metrics"))):
            if m.get("metric"):
                names[str(m["metric"])] = as_dict(m.get("tags"))
        scope = f"{{service:{service}}}"
        plan: dict[str, str] = {}

        def want(key: str, agg: str, metric: str, sc: str = scope) -> None:
            if metric in names:
                plan[key] = f"{agg}:{metric}{sc}"

        ops = sorted(
            n[len("trace.") : -len(".hits")]
            for n in names
            if n.startswith("trace.") and n.endswith(".hits")
        )
        if ops:
            op = ops[0]
            want("hits", "sum", f"trace.{op}.hits")
            want("errors", "sum", f"trace.{op}.errors")
            want("duration", "avg", f"trace.{op}.duration")
        if kind in ("service", "gateway", "job"):
            want("mem", "max", "kubernetes.memory.usage")
            want("mem_limit", "max", "kubernetes.memory.limits")
            want("replicas", "sum", "kubernetes_state.deployment.replicas_available")
            want("cpu", "avg", "kubernetes.cpu.usage.total")
            want("cpu_limit", "avg", "kubernetes.cpu.limits")
            want("throttled", "sum", "kubernetes.cpu.cfs.throttled.seconds")
            want("lag", "max", "kafka.consumer_lag")
            want("artifact", "max", "artifact.published.size_kb")
        elif kind == "database":
            want("conn_pct", "max", "postgresql.percent_usage_connections")
            want("locks", "sum", "postgresql.locks")
            hosts = []
            for tags in names.values():
                hosts += [str(h) for h in as_list(as_dict(tags).get("host"))]
            if hosts:
                plan["disk"] = f"max:system.disk.in_use{{host:{sorted(set(hosts))[0]}}}"
        elif kind == "cache":
            want("hit", "sum", "redis.stats.keyspace_hits")
            want("miss", "sum", "redis.stats.keyspace_misses")
            want("evicted", "sum", "redis.keys.evicted")
            want("mem", "max", "redis.mem.used")
        return plan
