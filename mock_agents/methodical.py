"""The ``methodical`` policy: an investigation done the way a careful on-call engineer does it.

1. Orient: the alerting monitors, the event stream, error logs per service as a timeseries and
   the service catalog.
2. Follow the errors. Starting at the paged service, read its error lines of the last half
   hour against its own baseline and find the dependency they name (``peer.service``, the host
   a client dialled, the dependency named in the message) far more often than usual. Go there
   and do the same. Attribution stops where a service's errors are its own (stack traces, OOM
   kills, pool timeouts ...), or at a dependency that cannot speak for itself (a database, a
   cache, a partner API) named by its caller's client errors; how that caller reports it
   (a DNS lookup failure, an expired certificate, a partner's 429s, a full disk) is evidence.
   When errors point nowhere but the service got slow, follow the latency instead: a direct
   dependency whose latency rose far more than the service's own.
3. Examine the entity where attribution stopped: its events, the kinds of log line that
   started with the incident (never the ones it logs all day), its metrics now against
   before, and what its caller and its datastores show. Then differential diagnosis
   (:mod:`mock_agents.methodical_diagnosis`): each mechanism is proved by a combination of
   signals, never by one artifact, because every artifact also occurs as background.
4. No fault: no error on the way names a failing dependency, nothing proves a fault of its
   own, and a benign cause explains the page (a chaos experiment, a load test, a campaign, a
   crawler, a backfill, a batch job making its database busy).

Budget: at most ``max_calls_per_turn`` calls per reply; the diagnosis goes out when two
replies remain, with whatever has been gathered by then.

Weaker variants of the same agent (four replies, no metrics, a two-hop walk, a signature count
for the mechanism) are at the end of the module, for the agent pool the difficulty tiers are
fitted on.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from .conversation import Conversation, iso
from .methodical_diagnosis import (
    BENIGN_KINDS,
    Facts,
    Frame,
    Hypothesis,
    benign_causes,
    hypotheses,
)
from .methodical_evidence import (
    Attribution,
    LogWindow,
    Peer,
    attribute,
    event_kind,
    event_service,
    event_ts,
    named_peer,
    new_kinds,
    series_points,
)
from .policies import Policy, allowed_mechanism, paging_monitor
from .signals import as_dict, as_list, call, detect_anomaly, monitor_service

LOOKBACK = timedelta(hours=3)
MAX_HOPS = 7
LEAF_KINDS = {"database", "cache", "external", "queue"}
#: error lines per minute naming a dependency, above its baseline, to follow the errors there
FOLLOW_RATE = 0.25
#: ... and the share of the service's current error lines they must make up
FOLLOW_SHARE = 0.15
#: ... or this trickle, when it is most of what the service logs (slow dependencies time out rarely)
FOLLOW_TRICKLE = 0.08
#: a hypothesis this well supported is a fault whatever else is going on
STRONG = 4.0
#: below this, nothing proves a fault
WEAK = 2.0
#: events worth citing about the culprit
EVIDENT_EVENTS = {"deploy", "config", "flag", "migration", "grant", "oom", "backoff", "dns_change"}


@dataclass
class Step:
    """One hop of the walk: ``service``'s errors named ``peer`` (reported as ``style``)."""

    service: str
    peer: str
    style: str
    rate: float


@dataclass
class Examination:
    """What the verdict rests on: the walk, the facts of the entity where it stopped, the
    hypotheses about it (best first) and, when no error led anywhere, the benign causes."""

    frame: Frame
    path: list[str]
    steps: list[Step]
    facts: Facts | None = None
    hypotheses: list[Hypothesis] = field(default_factory=list)
    benign: list[str] = field(default_factory=list)

    @property
    def errors_followed(self) -> bool:
        """Some service on the way named a failing dependency in its errors."""
        return any(s.style != "slow" for s in self.steps)


class Methodical(Policy):
    name = "methodical"
    description = (
        "Follows the errors from the paged service to the dependency where attribution stops, "
        "then proves the mechanism by differential diagnosis against each signal's baseline; "
        "answers 'no fault' when nothing failed and a benign cause explains the page."
    )
    reserve = 2
    #: knobs the weaker variants turn
    use_metrics = True
    max_hops = MAX_HOPS
    max_replies: int | None = None

    # ------------------------------------------------------------------ time

    def frame(self, conv: Conversation) -> Frame:
        fired = conv.fired_at.timestamp()
        end = max(conv.now.timestamp(), fired)
        return Frame(fired=fired, end=end, start=fired - LOOKBACK.total_seconds())

    def _span(self, conv: Conversation, which: str) -> tuple[float, float]:
        f = self.frame(conv)
        if which == "recent":
            return f.recent
        if which == "base":
            return f.base
        return f.start, f.end

    # ------------------------------------------------------------------ calls (ids from arguments)

    def _orient(self, conv: Conversation) -> dict[str, dict[str, Any]]:
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

    def _logs(self, conv: Conversation, service: str, which: str, errors: bool) -> dict[str, Any]:
        t0, t1 = self._span(conv, which)
        q = f"service:{service} status:error" if errors else f"service:{service}"
        args = {"query": q, "from": iso(t0), "to": iso(t1), "limit": 200}
        return call("search_logs", args, f"{'err' if errors else 'logs'}.{which}.{service}")

    def _events_of(self, conv: Conversation, service: str) -> dict[str, Any]:
        t0, t1 = self._span(conv, "all")
        args = {"query": f"service:{service}", "from": iso(t0), "to": iso(t1), "limit": 200}
        return call("get_events", args, f"events.{service}")

    def _list_metrics(self, service: str) -> dict[str, Any]:
        return call(
            "list_metrics", {"query": f"service:{service}", "limit": 200}, f"metrics.{service}"
        )

    def _query(self, conv: Conversation, key: str, q: str, owner: str) -> dict[str, Any]:
        t0, t1 = self._span(conv, "all")
        return call(
            "query_metrics", {"query": q, "from": iso(t0), "to": iso(t1)}, f"q.{owner}.{key}"
        )

    # ------------------------------------------------------------------ what is known

    def symptom(self, conv: Conversation) -> str | None:
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

    def catalog(self, conv: Conversation) -> dict[str, Peer]:
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

    def kind(self, conv: Conversation, service: str) -> str:
        p = self.catalog(conv).get(service)
        return p.kind if p else "service"

    def neighbours(self, conv: Conversation, service: str, direction: str) -> list[str] | None:
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
        self, conv: Conversation, service: str, which: str, errors: bool
    ) -> LogWindow | None:
        c = self._logs(conv, service, which, errors)
        if c["id"] not in conv.results:
            return None
        t0, t1 = self._span(conv, which)
        return LogWindow.of(conv.content(c["id"]), t0, t1)

    def _errlog_series(self, conv: Conversation) -> dict[str, Any]:
        if "errlog_series" not in conv.memo:
            content = as_dict(conv.content(self._orient(conv)["errlogs"]["id"]))
            conv.memo["errlog_series"] = {
                str(as_dict(b.get("by")).get("service")): b.get("series")
                for b in map(as_dict, as_list(content.get("buckets")))
                if b.get("series")
            }
        return conv.memo["errlog_series"]

    def _errlog_anomalies(self, conv: Conversation) -> dict[str, Any]:
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

    def events(self, conv: Conversation) -> list[dict[str, Any]]:
        content = as_dict(conv.content(self._orient(conv)["events"]["id"]))
        return [e for e in map(as_dict, as_list(content.get("events"))) if e]

    def events_of(self, conv: Conversation, service: str) -> list[dict[str, Any]]:
        """Events tagged with the service, from its own query and the global stream."""
        seen: dict[str, dict[str, Any]] = {}
        own = as_dict(conv.content(self._events_of(conv, service)["id"]))
        for e in [*map(as_dict, as_list(own.get("events"))), *self.events(conv)]:
            if e and event_service(e) == service:
                seen.setdefault(str(e.get("id") or (e.get("title"), event_ts(e))), e)
        return sorted(seen.values(), key=event_ts)

    # ------------------------------------------------------------------ the walk

    def attribution(self, conv: Conversation, service: str) -> Attribution | None:
        memo = conv.memo.setdefault("attribution", {})
        if service in memo:
            return memo[service]
        recent = self.window(conv, service, "recent", errors=True)
        base = self.window(conv, service, "base", errors=True)
        deps = self.neighbours(conv, service, "downstream")
        out = None
        if recent is not None and base is not None and deps is not None:
            cat = self.catalog(conv)
            peers = {d: cat.get(d) or Peer(d, "service") for d in deps}
            out = attribute(service, recent, base, peers)
        memo[service] = out
        return out

    def walk(self, conv: Conversation) -> tuple[list[str], list[Step], bool]:
        """(services from the symptom to where attribution stops, the hops, finished?).

        Errors first: go where the current service's errors point. When they point nowhere
        but the service got slow, follow the latency: a direct dependency whose own latency
        rose far more than the service's is where the slowness comes from (a slow dependency
        causes timeouts only once it is very slow)."""
        if "walk" in conv.memo:
            return conv.memo["walk"]
        symptom = self.symptom(conv)
        path: list[str] = [symptom] if symptom else []
        steps: list[Step] = []
        needs: list[dict[str, Any]] = []
        done = not path
        while path and not done:
            node = path[-1]
            if self.kind(conv, node) in LEAF_KINDS and len(path) > 1:
                done = True
                break
            att = self.attribution(conv, node)
            if att is None:
                break  # its calls are pending
            peer, rate = att.top()
            share = rate / max(att.total_rate, 1e-9)
            # a steady stream naming one dependency, or a trickle that is all the service
            # logs now (slow dependencies cause few errors, but nothing else explains them)
            follow = (rate >= FOLLOW_RATE and share >= FOLLOW_SHARE) or (
                rate >= FOLLOW_TRICKLE and share >= 0.5
            )
            if len(steps) >= self.max_hops:
                done = True
                break
            if peer is not None and peer not in path and follow:
                steps.append(Step(node, peer, att.style(peer), rate))
                path.append(peer)
                continue
            slow, needs = self.slower_dependency(conv, node)
            if needs:
                break
            if slow is None or slow[0] in path:
                done = True
                break
            steps.append(Step(node, slow[0], "slow", slow[1]))
            path.append(slow[0])
        conv.memo["walk"] = (path, steps, done)
        conv.memo["walk_needs"] = needs
        return path, steps, done

    def latency(
        self, conv: Conversation, service: str
    ) -> tuple[tuple[float, float] | None, list[dict[str, Any]]]:
        """((latency now, its baseline) in seconds, calls still needed to know it)."""
        lm = self._list_metrics(service)
        if lm["id"] not in conv.results:
            return None, [lm]
        q = self.metric_plan(conv, service, self.kind(conv, service)).get("duration")
        if q is None:
            return None, []
        c = self._query(conv, "duration", q, service)
        if c["id"] not in conv.results:
            return None, [c]
        frame = self.frame(conv)
        f = Facts(service, self.kind(conv, service))
        f.metrics["duration"] = series_points(conv.content(c["id"]))
        now = f.level("duration", frame.fired - 600, frame.end)
        before = f.level("duration", *frame.base)
        return ((now, before) if now is not None and before is not None else None), []

    def slower_dependency(
        self, conv: Conversation, service: str
    ) -> tuple[tuple[str, float] | None, list[dict[str, Any]]]:
        """If ``service`` got slower: the direct dependency whose own added latency accounts
        for much of it (and the calls still needed to tell). Added seconds, not ratios: a
        consumer that waits two seconds more on an API that got two seconds slower spends
        its time there, whatever either's usual latency was."""
        if not self.use_metrics:
            return None, []
        own, needs = self.latency(conv, service)
        if needs or own is None or own[0] < 1.8 * own[1]:
            return None, needs
        added = own[0] - own[1]
        best = None
        for d in self.neighbours(conv, service, "downstream") or []:
            if self.kind(conv, d) == "queue":
                continue
            lat, more = self.latency(conv, d)
            needs += more
            if lat is None or lat[0] < 2.5 * max(lat[1], 1e-9):
                continue
            extra = lat[0] - lat[1]
            if extra >= 0.4 * added and (best is None or extra > best[1]):
                best = (d, lat[0] / max(lat[1], 1e-9))
        return (None, needs) if needs else (best, [])

    # ------------------------------------------------------------------ the evidence of one entity

    def metric_plan(self, conv: Conversation, service: str, kind: str) -> dict[str, str]:
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

    def entity_calls(
        self, conv: Conversation, service: str, logs: bool = True
    ) -> list[dict[str, Any]]:
        """What to read about one entity: its events, its logs now and before, its metrics."""
        kind = self.kind(conv, service)
        calls = [self._events_of(conv, service)]
        if logs:
            calls.append(self._logs(conv, service, "recent", errors=False))
            calls.append(self._logs(conv, service, "base", errors=False))
        if self.use_metrics:
            calls.append(self._list_metrics(service))
            if conv.issued(self._list_metrics(service)["id"]):
                calls += [
                    self._query(conv, k, q, service)
                    for k, q in self.metric_plan(conv, service, kind).items()
                ]
        return calls

    def facts(self, conv: Conversation, service: str, logs: bool = True) -> Facts:
        kind = self.kind(conv, service)
        f = Facts(service, kind, events=self.events_of(conv, service))
        if logs:
            f.recent = self.window(conv, service, "recent", errors=False)
            f.base = self.window(conv, service, "base", errors=False)
            if f.recent is not None:
                base = f.base or LogWindow([], 0, *self._span(conv, "base"))
                f.new = new_kinds(f.recent, base)
        for key, q in self.metric_plan(conv, service, kind).items():
            content = conv.content(self._query(conv, key, q, service)["id"])
            if content is not None:
                f.metrics[key] = series_points(
                    content, merge="max" if q.startswith("max:") else "sum"
                )
        a = self._errlog_anomalies(conv).get(service)
        if a is not None:
            f.onset = a.onset
        return f

    def related(self, conv: Conversation, service: str, caller: str | None) -> list[str]:
        """Entities whose state tells the mechanism apart: an application's databases; the
        caches beside a database (those its caller uses)."""
        kind = self.kind(conv, service)
        if kind in ("service", "gateway", "job"):
            return [
                d
                for d in self.neighbours(conv, service, "downstream") or []
                if self.kind(conv, d) == "database"
            ]
        if kind == "database":
            callers = [caller] if caller else []
            callers += [c for c in self.neighbours(conv, service, "upstream") or [] if c != caller][
                :4
            ]
            out = []
            for c in callers:
                out += [
                    d
                    for d in self.neighbours(conv, c, "downstream") or []
                    if self.kind(conv, d) == "cache"
                ]
            return list(dict.fromkeys(out))
        return []

    def terminal_calls(
        self, conv: Conversation, path: list[str], steps: list[Step]
    ) -> list[dict[str, Any]]:
        t = path[-1]
        caller = steps[-1].service if steps else None
        calls = [self._deps(t)] + self.entity_calls(conv, t)
        if caller:
            calls.append(self._logs(conv, caller, "recent", errors=False))
            calls.append(self._logs(conv, caller, "base", errors=False))
        if self.kind(conv, t) == "database":
            calls += [
                self._deps(c)
                for c in ([caller] if caller else [])
                + (self.neighbours(conv, t, "upstream") or [])[:4]
            ]
        for r in self.related(conv, t, caller):
            calls += self.entity_calls(conv, r, logs=self.kind(conv, r) == "cache")
        if not any(s.style != "slow" for s in steps):  # nothing failed on the way down
            if len(path) > 1:
                calls += self.entity_calls(conv, path[0])
            calls += self.benign_calls(conv, path[0])
        return calls

    def benign_calls(self, conv: Conversation, symptom: str) -> list[dict[str, Any]]:
        """For a page that stays on its own service: its datastores' state and callers
        (a batch job making its database busy)."""
        calls = []
        for d in self.neighbours(conv, symptom, "downstream") or []:
            if self.kind(conv, d) == "database":
                calls.append(self._deps(d))
                calls += self.entity_calls(conv, d, logs=True)
        return calls

    # ------------------------------------------------------------------ the plan

    def wanted(self, conv: Conversation) -> list[dict[str, Any]]:
        if self.max_replies is not None and conv.n_replies >= self.max_replies:
            return []
        calls = list(self._orient(conv).values())
        symptom = self.symptom(conv)
        if not symptom:
            return calls
        path, steps, done = self.walk(conv)
        for node in path:
            if self.kind(conv, node) in LEAF_KINDS and node != path[0]:
                continue
            calls.append(self._deps(node))
            calls.append(self._logs(conv, node, "recent", errors=True))
            calls.append(self._logs(conv, node, "base", errors=True))
        calls += conv.memo.get("walk_needs") or []
        if done:
            calls += self.terminal_calls(conv, path, steps)
        return calls

    # ------------------------------------------------------------------ the verdict

    def examine(self, conv: Conversation) -> Examination:
        """Everything the verdict rests on (memoised per turn)."""
        if "examined" in conv.memo:
            return conv.memo["examined"]
        frame = self.frame(conv)
        path, steps, _ = self.walk(conv)
        ex = Examination(frame, path, steps)
        if path:
            t = path[-1]
            caller = steps[-1].service if steps else None
            f = self.facts(conv, t)
            f.caller = caller
            f.via = steps[-1].style if steps else None
            if caller:
                f.caller_retries = self.caller_retries(conv, caller, t)
                if f.onset is None:  # a dependency that cannot speak: when its caller failed
                    a = self._errlog_anomalies(conv).get(caller)
                    f.onset = a.onset if a else None
            if f.onset is None and f.recent is not None and f.new:
                f.onset = min(
                    (x for k in f.new if (x := f.recent.first(k)) is not None), default=None
                )
            for r in self.related(conv, t, caller):
                f.related[r] = self.facts(conv, r, logs=self.kind(conv, r) == "cache")
            ex.facts = f
            ex.hypotheses = self.rank(conv, f, frame)
            if not ex.errors_followed:
                sym = f if len(path) == 1 else self.facts(conv, path[0])
                ex.benign = self.benign(conv, sym, frame)
        conv.memo["examined"] = ex
        return ex

    def caller_retries(self, conv: Conversation, caller: str, service: str) -> bool:
        """The caller started retrying its calls to ``service`` (warnings, not errors)."""
        recent = self.window(conv, caller, "recent", errors=False)
        base = self.window(conv, caller, "base", errors=False)
        if recent is None or base is None:
            return False
        peers = {service: self.catalog(conv).get(service) or Peer(service, "service")}

        def rate(win: LogWindow) -> tuple[int, float]:
            n = sum(
                1
                for x in win.lines
                if "retry" in x.kinds and named_peer(x, peers, caller) == service
            )
            return n, n * win.scale() / win.minutes

        n_now, now = rate(recent)
        _, before = rate(base)
        return n_now >= 2 and now >= 3 * before + 0.1

    def rank(self, conv: Conversation, f: Facts, frame: Frame) -> list[Hypothesis]:
        """Hypotheses about the entity where attribution stopped, best supported first."""
        return hypotheses(f, frame)

    def benign(self, conv: Conversation, f: Facts, frame: Frame) -> list[str]:
        """Benign causes of a page on ``f`` when nothing failed below it: an event on it or
        naming it or its datastores and topics (campaign, load test, chaos, backfill), a
        load generator or crawler in its logs, a batch job that made its database busy."""
        words = {f.name} | {
            d
            for d in self.neighbours(conv, f.name, "downstream") or []
            if self.kind(conv, d) in ("queue", "database")
        }
        mentions = [
            e
            for e in self.events(conv)
            if event_kind(e) in BENIGN_KINDS
            and event_ts(e) >= frame.fired - 75 * 60
            and (
                event_service(e) in words
                or any(w in f"{e.get('title') or ''} {e.get('text') or ''}" for w in words)
            )
        ]
        out = benign_causes(f, frame, mentions)
        for d in sorted(words - {f.name}):
            if self.kind(conv, d) != "database":
                continue
            db = self.facts(conv, d)
            if not (db.grew("duration", frame, 2.0) or "slow_query" in db.new):
                continue
            jobs = {
                c for c in self.neighbours(conv, d, "upstream") or [] if self.kind(conv, c) == "job"
            }
            runs = [
                e
                for e in self.events(conv)
                if event_kind(e) == "cron"
                and frame.fired - 3600 <= event_ts(e) <= frame.fired
                and (event_service(e) in jobs or event_service(e) == d)
            ]
            if runs:
                out.append(f"{runs[-1].get('title')} making {d} busy")
        return out

    def diagnose(self, conv: Conversation) -> dict[str, Any]:
        ex = self.examine(conv)
        if not ex.path:
            return self._no_fault(conv, [], "no paged service could be identified")
        best = ex.hypotheses[0] if ex.hypotheses else None
        score = best.score if best else 0.0
        if not ex.errors_followed:
            # nothing failed on the way down: a fault needs its own proof, a benign cause wins
            if (ex.benign and score < STRONG) or (len(ex.path) == 1 and score < WEAK):
                why = f"{ex.path[0]}'s errors name no failing dependency"
                return self._no_fault(conv, ex.benign, why)
        return self._fault(conv, ex)

    # ------------------------------------------------------------------ writing it up

    def _no_fault(self, conv: Conversation, benign: list[str], why: str) -> dict[str, Any]:
        orient = self._orient(conv)
        evidence = [
            {"tool_call_id": orient["errlogs"]["id"], "description": f"{why}; nothing failed"}
        ]
        if benign:
            evidence.append(
                {
                    "tool_call_id": orient["events"]["id"],
                    "description": f"benign cause: {benign[0]}",
                }
            )
        cause = f" The page is explained by {benign[0]}." if benign else ""
        return {
            "no_fault": True,
            "root_causes": [],
            "causal_chain": [],
            "evidence": evidence,
            "summary": f"No fault: {why}.{cause}",
        }

    def _fault(self, conv: Conversation, ex: Examination) -> dict[str, Any]:
        f, frame = ex.facts, ex.frame
        if f is None or not ex.hypotheses:
            return self._no_fault(conv, [], "nothing could be examined")
        best = ex.hypotheses[0]
        entity = best.entity or f.name
        # culprit first; a busy database beside the chain gives way to the cache behind it
        chain = [entity, *reversed(ex.path[:-1])] if entity != f.name else list(reversed(ex.path))

        def candidate(name: str, mechanism: str, confidence: float) -> dict[str, Any]:
            return {
                "entity": name,
                "mechanism": allowed_mechanism(conv, mechanism),
                "confidence": confidence,
            }

        root_causes = [candidate(entity, best.mechanism, 0.8)]
        for name, conf in ((f.name, 0.3), (ex.path[-2] if len(ex.path) > 1 else None, 0.1)):
            if name and name not in {r["entity"] for r in root_causes}:
                root_causes.append(candidate(name, best.mechanism, conf))
        onset = f.onset if f.onset is not None else frame.fired - 600
        evidence = [
            {
                "tool_call_id": self._logs(conv, s.service, "recent", errors=True)["id"],
                "description": f"{s.service}'s errors name {s.peer} ({s.style}), "
                f"{s.rate:.2g}/min above its baseline"
                if s.style != "slow"
                else f"{s.service}'s dependency {s.peer} got {s.rate:.2g}x slower",
            }
            for s in ex.steps
        ]
        for k in sorted(f.new, key=lambda k: -f.new[k])[:3]:
            evidence.append(
                {
                    "tool_call_id": self._logs(conv, f.name, "recent", errors=False)["id"],
                    "description": f"{f.name} logs {k} lines since the onset "
                    f"({f.new[k]:.2g}/min above its baseline)",
                }
            )
        changes = [e for e in f.events if event_kind(e) in EVIDENT_EVENTS]
        for e in changes[-5:]:
            evidence.append(
                {
                    "tool_call_id": self._events_of(conv, f.name)["id"],
                    "description": f"{iso(event_ts(e))} {e.get('title')}",
                }
            )
        plan = self.metric_plan(conv, f.name, f.kind)
        for key in f.metrics:
            evidence.append(
                {
                    "tool_call_id": self._query(conv, key, plan[key], f.name)["id"],
                    "description": f"{f.name} {key}: {f.change(key, frame):.2g}x its baseline",
                }
            )
        why = "; ".join(best.reasons) or "the errors stop there"
        summary = (
            f"{entity} is the root cause ({best.mechanism}): {why}. Its failure starts at "
            f"{iso(onset)}. Propagation, as each caller's errors name its dependency: "
            f"{' -> '.join(chain)}."
        )
        return {
            "no_fault": False,
            "root_causes": root_causes,
            "causal_chain": [
                {"source": a, "target": b} for a, b in zip(chain, chain[1:], strict=False)
            ],
            "onset": iso(onset),
            "evidence": evidence[:16],
            "summary": summary,
        }


# --------------------------------------------------------------------------- weaker variants


class MethodicalHasty(Methodical):
    """Answers after four replies with whatever it has: a long chain is cut short and the
    mechanism rests on the evidence gathered by then."""

    name = "methodical_hasty"
    description = "The methodical investigation on a budget of four replies."
    max_replies = 4


class MethodicalLogsOnly(Methodical):
    """Never reads a metric: the walk follows errors only (not latency), and the mechanism
    rests on logs and events (no memory, CPU, lag, hit ratio or disk to tell them apart)."""

    name = "methodical_logs_only"
    description = "The methodical investigation from logs and events alone, no metrics."
    use_metrics = False


class MethodicalShallow(Methodical):
    """Walks at most two hops down from the paged service and blames where it stops: a
    longer chain ends in a victim."""

    name = "methodical_shallow"
    description = "The methodical investigation with a dependency walk of two hops at most."
    max_hops = 2


#: the mechanism each kind of line or event is the signature of, for the keyword counter
SIGNATURES: dict[str, str] = {
    "dns": "dns_failure", "dns_change": "dns_failure", "x509": "certificate_expiry",
    "tls_server": "certificate_expiry", "parse": "bad_data", "nospace": "disk_full",
    "archive": "disk_full", "rate_limited": "third_party_outage",
    "statuspage": "third_party_outage", "oom": "oom_killed", "gc": "memory_leak",
    "startup": "crashloop_bad_config", "backoff": "crashloop_bad_config",
    "config": "crashloop_bad_config", "pool": "connection_pool_exhaustion",
    "pool_leak": "connection_pool_exhaustion", "conn_slots": "connection_pool_exhaustion",
    "lock_timeout": "lock_contention", "lock_wait": "lock_contention",
    "overload": "retry_storm", "retry": "retry_storm", "n_plus_one": "latency_regression",
    "slow": "cpu_throttling", "unhealthy": "cpu_throttling", "crash": "bad_release",
    "deploy": "bad_release", "flag": "feature_flag", "heartbeat": "rebalance_storm",
    "rebalance": "rebalance_storm", "commit_failed": "rebalance_storm",
    "poll_timeout": "consumer_lag", "slow_batch": "consumer_lag",
    "slow_query": "slow_query_migration", "migration": "slow_query_migration",
    "stmt_timeout": "slow_query_migration", "redis_restart": "cache_stampede",
}  # fmt: skip


class MethodicalKeywords(Methodical):
    """Finds the culprit like ``methodical`` but names the mechanism by counting signatures:
    each of its recent log lines, each of its caller's errors about it and each of its
    events of the last hour votes for the mechanism its kind is the signature of. No
    baseline, no metric, no timing, no combination of signals: a chronic stream, a stray
    signature line or a routine change outvotes the evidence."""

    name = "methodical_keywords"
    description = "The methodical walk with a signature count for the mechanism."

    def rank(self, conv: Conversation, f: Facts, frame: Frame) -> list[Hypothesis]:
        votes: Counter[str] = Counter()
        lines = list(f.recent.lines) if f.recent else []
        recent = self.window(conv, f.caller, "recent", errors=True) if f.caller else None
        if f.caller and recent:
            peers = {f.name: self.catalog(conv).get(f.name) or Peer(f.name, f.kind)}
            lines += [x for x in recent.lines if named_peer(x, peers, f.caller) == f.name]
        for x in lines:
            votes.update(SIGNATURES[k] for k in x.kinds if k in SIGNATURES)
        for e in f.events:
            k = event_kind(e)
            if event_ts(e) >= frame.fired - 3600 and k in SIGNATURES:
                votes[SIGNATURES[k]] += 1
        allowed = conv.mechanisms
        ranked = sorted(
            (m for m in votes if not allowed or m in allowed), key=lambda m: (-votes[m], m)
        )
        if not ranked:
            return [Hypothesis("bad_release", 0.0, ["no signature found"])]
        why = ["signatures in its logs, its caller's errors and its events"]
        return [Hypothesis(m, float(votes[m]), why) for m in ranked]


def _ladder(name: str, replies: int | None = None, hops: int | None = None) -> Methodical:
    """A rung of the skill ladder: the methodical investigation with a smaller budget of
    replies or a shorter dependency walk. Rungs fail the labels that need more of what they
    lack (long chains, many suspects), so together they grade the labels' difficulty."""
    what = []
    if replies is not None:
        what.append(f"{replies} replies")
    if hops is not None:
        what.append(f"a walk of {hops} hop{'s' if hops > 1 else ''}")
    cls = type(
        f"Methodical_{name}",
        (Methodical,),
        {
            "name": f"methodical_{name}",
            "description": "The methodical investigation with " + " and ".join(what) + ".",
            "max_replies": replies if replies is not None else Methodical.max_replies,
            "max_hops": hops if hops is not None else Methodical.max_hops,
        },
    )
    return cls()


#: the methodical variants of weaker skill (the agent pool the difficulty tiers are fitted on)
VARIANTS: tuple[Methodical, ...] = (
    MethodicalHasty(),
    MethodicalLogsOnly(),
    MethodicalShallow(),
    MethodicalKeywords(),
    _ladder("budget3", replies=3),
    _ladder("budget5", replies=5),
    _ladder("budget6", replies=6),
    _ladder("hops1", hops=1),
    _ladder("hops3", hops=3),
    _ladder("hops2_budget5", replies=5, hops=2),
)
