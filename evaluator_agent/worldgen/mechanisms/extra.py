"""Mechanisms added for the core set: an endpoint whose DNS record went empty, malformed data
that a healthy producer hands to its consumers, a container throttled at its CPU limit, a
Kafka consumer group stuck rebalancing, and row-lock contention from a long transaction.

Each is modelled on what the public postmortems describe: the culprit itself often looks
healthy (the DNS target answers nobody because nobody reaches it; the producer of bad data
serves 200s), and only the callers' logs name it.
"""

from __future__ import annotations

import random

from evaluator_agent.worldgen import events, messages
from evaluator_agent.worldgen.catalog import AUTHORS
from evaluator_agent.worldgen.mechanisms.base import (
    Mechanism,
    Plan,
    lag_curve,
    propagate,
    register,
    release,
    trigger_lead,
)
from evaluator_agent.worldgen.mechanisms.signatures import (
    TABLES,
    commit_failed,
    heartbeat_failed,
    kafka_revoke,
    lock_timeout,
    lock_wait,
    overload_error,
    slow_request,
)
from evaluator_agent.worldgen.telemetry import ARTIFACTS, MIN, Profile, World, add
from evaluator_agent.worldgen.topology import CHAIN_ROLES, Topo

# -- DNS ---------------------------------------------------------------------------------------

_RESOLVER = "10.96.0.10:53"


def _dns_error(p: Profile, child: Profile, style: str, rng: random.Random):  # noqa: ANN202
    host = messages.dns(child)
    lang = "envoy" if p.role == "gateway" else p.language
    attrs = {"error.kind": "dns", "peer.service": child.name, "peer.hostname": host}
    if lang == "java":
        msg = f"java.net.UnknownHostException: {host}: Name or service not known"
    elif lang == "python":
        msg = f"socket.gaierror: [Errno -2] Name or service not known ({host})"
    elif lang == "node":
        msg = f"Error: getaddrinfo ENOTFOUND {host}"
    elif lang == "envoy":
        msg = f"upstream connect error or disconnect/reset before headers. reset reason: connection failure ({host}: DNS resolution failed)"
    else:
        msg = f"dial tcp: lookup {host} on {_RESOLVER}: no such host"
    return "error", msg, attrs


messages.STYLE_HOOKS["dns"] = _dns_error
DNS_EXPECT = {
    "java": "UnknownHostException",
    "python": "Name or service not known",
    "node": "ENOTFOUND",
    "envoy": "DNS resolution failed",
    "go": "no such host",
}


@register
class DnsFailure(Mechanism):
    """An endpoint's DNS record is emptied by automation; every client fails to resolve it."""

    name = "dns_failure"
    system_level = "network"
    culprit_roles = ("db", "redis")  # records of our own internal zone
    min_chain = 2

    def accept(self, topo: Topo, name: str) -> bool:
        return any(topo.role(c) in CHAIN_ROLES for c in topo.callers.get(name, []))

    def apply(self, w: World, plan: Plan, rng: random.Random) -> None:
        c = plan.chain[0]
        p, clock = w.p[c], w.clock
        onset = plan.onset or plan.fired_at
        host = messages.dns(p)
        t_change = onset - rng.randint(20, 60)
        level = rng.uniform(0.55, 0.95)
        err = clock.ramp(onset, onset + 60, level)
        # Nobody reaches the endpoint any more: its own request rate collapses, it logs nothing wrong.
        p.traffic = [max(0.05, t * (1 - e)) for t, e in zip(p.traffic, err, strict=True)]
        propagate(w, plan, rng, err, clock.zeros(), "dns")
        if plan.story == "aws-dynamodb-dns-2025":
            # a consumer must write every message to the database: it fails on all of them and
            # its backlog grows for as long as the record stays empty
            for q in w.topo.callers.get(c, []):
                if w.p[q].role == "worker" and q not in plan.chain:
                    add(w.p[q].err_prop, err, rng.uniform(0.7, 0.9))
                    plan.protect.add(q)  # its backlog is part of the story
        plan_id = rng.randint(100000, 999999)
        if plan.story == "aws-dynamodb-dns-2025":
            # two enactors race: the delayed one applies an older plan over the newest, and the
            # cleanup of plans older than the newest deletes the record set it now points at
            newest, stale = plan_id + rng.randint(20, 90), plan_id
            n = rng.randint(2, 4)
            events.dns_plan(w, t_change - rng.randint(150, 400), c, host, newest, n, "dns-enactor-1")
            events.dns_plan(
                w, t_change - rng.randint(20, 90), c, host, stale, n, "dns-enactor-2",
                "(delayed apply of an older plan)",
            )
            events.dns_plan(
                w, t_change, c, host, stale, 0, "dns-cleanup",
                f"(plans older than {newest} deleted)",
            )
        else:
            events.dns_plan(w, t_change, c, host, plan_id, 0)
        plan.trigger = {
            "kind": "infrastructure",
            "entity": host,
            "at": int(t_change),
            "description": f"DNS automation left an empty record set for {host}; clients cannot resolve it",
        }
        plan.aliases += [host, f"dns:{host}"]
        caller = plan.chain[1]
        q = w.p[caller]
        phrase = DNS_EXPECT["envoy" if q.role == "gateway" else q.language]
        plan.evidence_for(
            "search_logs",
            {"query": f'service:{caller} status:error "{phrase}"', **plan.window(600)},
            phrase,
            f"{caller} cannot resolve {host}",
        )
        plan.evidence_for(
            "get_events",
            {"query": "source:terraform", **plan.window()},
            f"record set {host} (A) updated, 0 records",
            "the DNS automation change that emptied the record",
        )
        plan.signals |= {"logs", "events", "metrics"}
        plan.technologies += ["dns", w.p[caller].language]
        plan.onset_tolerance_s = 300


# -- bad data ----------------------------------------------------------------------------------

_FIELDS = ARTIFACTS


def _parse_error(p: Profile, child: Profile, style: str, rng: random.Random):  # noqa: ANN202
    _, field_name, limit, got = style.split(":")
    attrs = {"error.kind": "parse", "peer.service": child.name}
    lang = p.language
    what = f"{child.name} {field_name} file"
    if lang == "java":
        msg = f"java.lang.IllegalStateException: {what} has {got} {field_name}, limit is {limit}"
    elif lang == "python":
        msg = f"ValueError: {what}: expected at most {limit} {field_name}, got {got}"
    elif lang == "node":
        msg = f"RangeError: {what} exceeds {limit} {field_name} (got {got})"
    else:
        msg = f"panic: load {what}: too many {field_name}: {got} > {limit}"
    return "error", msg, attrs


messages.STYLE_HOOKS["baddata"] = _parse_error


@register
class BadData(Mechanism):
    """A healthy producer publishes a malformed file/record set; its consumers crash parsing it."""

    name = "bad_data"
    system_level = "data"
    culprit_roles = ("api",)
    min_chain = 2

    excludes_bff = True

    def apply(self, w: World, plan: Plan, rng: random.Random) -> None:
        c = plan.chain[0]
        p, clock = w.p[c], w.clock
        onset = plan.onset or plan.fired_at
        field_name = rng.choice(_FIELDS)
        limit = rng.choice((60, 128, 200, 256))
        got = limit * 2 + rng.randint(2, 40)
        lead = min(trigger_lead(plan, rng, 60, 240), int(onset - clock.start - 10 * MIN))
        t_change = onset - lead
        cloudflare, crowdstrike = plan.story == "cloudflare-bot-management-2025", plan.story == "crowdstrike-2024"
        if cloudflare:
            field_name, limit = "features", 200
            got = limit * 2 + rng.randint(2, 40)
        if crowdstrike:
            field_name, limit, got = "fields", 20, 21
        grant = (rng.random() < 0.5 or cloudflare) and not crowdstrike
        if grant:
            author = rng.choice(AUTHORS)
            events.grant(
                w,
                t_change,
                c,
                author,
                "r0",
                f"The {field_name} generator query now also sees the r0 schema.",
            )
            plan.trigger = {
                "kind": "config",
                "entity": c,
                "at": int(t_change),
                "description": f"a database permission change made {c} emit every {field_name[:-1]} twice",
            }
        else:
            release(
                w, plan, rng, c, t_change, rng.randint(60, 180),
                f"Content update: add {field_name[:-1]} template instance with {got} input fields"
                if crowdstrike else None,
            )
        # The producer stays healthy; consumers reload the data every few minutes and fail.
        err = clock.ramp(onset, onset + 120, rng.uniform(0.5, 0.9))
        bad = [1.0 if clock.ts(i) >= t_change + 60 else 0.0 for i in range(clock.n)]
        if cloudflare:
            # the file is rebuilt every five minutes while the change reaches database nodes one
            # by one: good and bad files alternate until every node returns duplicates
            settle = onset + rng.randint(3, 5) * 10 * MIN
            for i in range(clock.n):
                t = clock.ts(i) + 30
                if onset <= t < settle and int((t - onset) // 300) % 2 == 1:
                    err[i], bad[i] = 0.0, 0.0
        propagate(w, plan, rng, err, clock.zeros(), f"baddata:{field_name}:{limit}:{got}")
        # the only sign on the producer: the file it publishes doubled at the change
        w.publishers[c] = (field_name, limit * 1.3)
        p.res["+artifact"] = [(got / limit - 1) * b for b in bad]
        if crowdstrike:
            # the consumers load the content at start-up too: they crash, restart and crash again
            for s in plan.chain[1:2]:
                q = w.p[s]
                restarts = clock.zeros()
                t = onset + rng.randint(20, 60)
                n_back = 0
                while t < clock.end:
                    for j in range(clock.idx(t), clock.n):
                        restarts[j] += 1
                    if n_back < 10 and q.pods:
                        pod = q.pod(rng, t)
                        w.k8s_event(
                            t + 2, s, "BackOff",
                            f"Back-off restarting failed container {s} in pod {pod}_{q.namespace}", pod,
                        )
                        n_back += 1
                    t += rng.randint(40, 160)
                q.res["restarts"] = restarts
        plan.aliases += [f"{c}:{field_name}-file", f"deployment/{c}"]
        caller = plan.chain[1]
        plan.evidence_for(
            "search_logs",
            {"query": f"service:{caller} status:error", **plan.window(600)},
            f"{c} {field_name} file",
            f"{caller} fails to load {c}'s {field_name} file ({got} > {limit})",
        )
        plan.evidence_for(
            "query_metrics",
            {"query": f"max:artifact.published.size_kb{{service:{c}}}", **plan.window(3600)},
            "artifact.published.size_kb",
            f"the {field_name} file {c} publishes doubled in size at the change",
        )
        if plan.trigger and plan.trigger["kind"] == "config":
            plan.evidence_for(
                "get_events",
                {"query": f"source:database service:{c}", **plan.window(lead + 900)},
                "SCHEMA r0",
                "the permission change that doubled the generated rows",
            )
        plan.signals |= {"logs", "events", "metrics"}
        plan.technologies += [p.language, w.p[caller].language]


# -- CPU throttling ----------------------------------------------------------------------------


@register
class CpuThrottling(Mechanism):
    """CPU demand exceeds the container limit (a lowered limit or an expensive new rule);
    CFS throttles it and latency climbs without errors at first."""

    name = "cpu_throttling"
    system_level = "platform"
    culprit_roles = ("api",)
    monitor_kind = "latency"

    excludes_bff = True

    def apply(self, w: World, plan: Plan, rng: random.Random) -> None:
        c = plan.chain[0]
        p, clock = w.p[c], w.clock
        onset = plan.onset or plan.fired_at
        t_cfg = max(clock.start + 10 * MIN, onset - trigger_lead(plan, rng, 40, 150))
        author = rng.choice(AUTHORS)
        waf = plan.story == "cloudflare-waf-2019"
        if rng.random() < 0.5 and not waf:
            old, new = rng.choice((("2", "500m"), ("1500m", "400m"), ("4", "1")))
            marker = f"resources.limits.cpu: {old} -> {new}"
            text = f"{marker} (right-sizing, ticket OPS-{rng.randint(1000, 9999)})"
            desc = f"CPU limit of {c} lowered {old} -> {new}"
        else:
            text = events.inspection_rule(rng, benign=False)
            marker = text.split(":", 1)[0]
            rule = marker.removeprefix("rules/").removesuffix(".yaml")
            desc = f"new inspection rule {rule} with a backtracking regex made {c} CPU bound"
        events.configmap(w, t_cfg, c, text, author, rng)
        sat = clock.ramp(onset, onset + 180, 1.0)
        p.res["cpu"] = [0.25 + 0.73 * s + rng.uniform(-0.01, 0.01) * s for s in sat]
        p.res["+throttled"] = [s * rng.uniform(18, 40) for s in sat]
        lat = [s * p.base_lat * rng.uniform(4, 9) for s in sat]
        p.lat_add = list(lat)
        err = [s * rng.uniform(0.02, 0.06) for s in sat]
        p.err_own = list(err)
        # a starved handler logs that it is slow and times requests out, like any overloaded one
        p.own_error = overload_error(p)
        w.stream(c, onset + 60, plan.end, 1.0, slow_request(p))
        for _ in range(rng.randint(2, 5)):
            w.k8s_event(
                onset + rng.randint(90, 900),
                c,
                "Unhealthy",
                f'Readiness probe failed: Get "http://{messages.ip(rng)}:8080/healthz": context deadline '
                "exceeded (Client.Timeout exceeded while awaiting headers)",
                p.pod(rng, onset),
            )
        propagate(w, plan, rng, [e * 6 for e in err], lat, "timeout")
        if waf:
            # the edge cannot keep up: it times requests out and sheds them, and what does not
            # get through never reaches the backends
            p.err_own = [s * rng.uniform(0.35, 0.6) for s in sat]
            for b in sorted(w.topo.calls.get(c, [])):
                plan.protect.add(b)  # their traffic drop is part of the story
                drop = rng.uniform(0.4, 0.7)
                w.p[b].traffic = [t * (1 - drop * s) for t, s in zip(w.p[b].traffic, sat, strict=True)]
        plan.trigger = {
            "kind": "config",
            "entity": f"{c}-config",
            "at": int(t_cfg),
            "description": desc,
        }
        plan.aliases += [f"{c}-config", f"deployment/{c}"]
        plan.evidence_for(
            "query_metrics",
            {
                "query": f"sum:kubernetes.cpu.cfs.throttled.seconds{{service:{c}}}",
                **plan.window(3600),
            },
            "kubernetes.cpu.cfs.throttled.seconds",
            "CFS throttling climbs from the config change",
        )
        plan.evidence_for(
            "get_events",
            {"query": f"source:config service:{c}", **plan.window()},
            marker,
            "the config change",
        )
        plan.signals |= {"metrics", "events"}
        plan.technologies += ["kubernetes", p.language]


# -- Kafka rebalance storm ---------------------------------------------------------------------


@register
class RebalanceStorm(Mechanism):
    """A consumer group that cannot stay stable: a session timeout set below the poll loop's
    pauses makes members drop out and rejoin; every rebalance stops consumption and lag grows."""

    name = "rebalance_storm"
    system_level = "application"
    culprit_roles = ("worker",)
    max_chain = 1
    monitor_kind = "lag"

    def schedule(self, plan: Plan, rng: random.Random) -> None:
        plan.hop_delays = []
        plan.symptom_start = plan.fired_at - rng.randint(60, 180)
        plan.onset = plan.symptom_start - max(plan.recipe.time_offset_s, rng.randint(12, 25) * MIN)

    def apply(self, w: World, plan: Plan, rng: random.Random) -> None:
        c = plan.chain[0]
        p, clock = w.p[c], w.clock
        onset = plan.onset or plan.fired_at
        topic = w.topo.consumed_topic(c)
        t_cfg = onset - rng.randint(40, 120)
        author = rng.choice(AUTHORS)
        old_to, new_to = rng.choice(((45000, 6000), (30000, 3000), (45000, 8000)))
        events.configmap(
            w, t_cfg, c, f"kafka.consumer.session.timeout.ms: {old_to} -> {new_to}", author, rng
        )
        cap = rng.uniform(0.15, 0.4)
        stall = clock.ramp(onset, onset + 120, 1.0)
        p.traffic = [1 - (1 - cap) * s for s in stall]
        p.err_own = [s * rng.uniform(0.01, 0.03) for s in stall]
        p.own_error = commit_failed(c, topic, onset)
        p.res["lag"] = lag_curve(w, p, onset, cap, rng)
        w.stream(c, onset, plan.end, 3.0, heartbeat_failed(c, topic))
        t = onset
        k = 0
        while t < plan.end and k < 40:
            for j, line in enumerate(kafka_revoke(p, c, topic)):
                w.log(t + j, c, "info", line, {}, rng=rng)
            t += rng.randint(25, 70)
            k += 1
        plan.trigger = {
            "kind": "config",
            "entity": f"{c}-config",
            "at": int(t_cfg),
            "description": f"session.timeout.ms of consumer group {c} lowered {old_to} -> {new_to}",
        }
        plan.aliases += [f"{c}-config", f"deployment/{c}", f"consumer_group:{c}"]
        plan.evidence_for(
            "search_logs",
            {"query": f"service:{c} rebalancing", **plan.window(600)},
            "rebalancing",
            "members keep leaving and rejoining the group",
        )
        plan.evidence_for(
            "query_metrics",
            {
                "query": f"max:kafka.consumer_lag{{consumer_group:{c}}} by {{topic}}",
                **plan.window(3600),
            },
            "kafka.consumer_lag",
            "lag grows on this group",
        )
        plan.onset_tolerance_s = 420
        plan.signals |= {"events", "metrics", "logs"}
        plan.technologies += ["kafka", p.language]


# -- lock contention ---------------------------------------------------------------------------



@register
class LockContention(Mechanism):
    """A release holds row locks for seconds (long transaction); writers queue and time out."""

    name = "lock_contention"
    system_level = "data"
    culprit_roles = ("api",)

    def accept(self, topo: Topo, name: str) -> bool:
        return not name.endswith("-bff") and bool(self._dbs(topo, name))

    @staticmethod
    def _dbs(topo: Topo, name: str) -> list[str]:
        return [d for d in topo.calls.get(name, []) if topo.entries[d].language == "postgres"]

    def apply(self, w: World, plan: Plan, rng: random.Random) -> None:
        c = plan.chain[0]
        p, clock = w.p[c], w.clock
        db = rng.choice(self._dbs(w.topo, c))
        onset = plan.onset or plan.fired_at
        t_dep = max(clock.start + 10 * MIN, onset - trigger_lead(plan, rng, 60, 240))
        release(w, plan, rng, c, t_dep, rng.randint(90, 200))
        level = rng.uniform(0.2, 0.45)
        err = clock.ramp(onset, onset + rng.randint(120, 300), level)
        lat = clock.ramp(onset, onset + 180, rng.uniform(2.5, 6.0))
        p.err_own, p.lat_add = list(err), list(lat)
        table = rng.choice(TABLES)
        p.own_error = lock_timeout(p, db, table)
        q = w.p[db]
        locks = clock.ramp(onset - 60, onset + 180, 1.0)
        q.res["+locks"] = [s * rng.uniform(140, 220) for s in locks]
        w.stream(db, onset, plan.end, 2.0, lock_wait(db))
        propagate(w, plan, rng, err, lat, "5xx")
        plan.aliases += [f"{db}:{table}"]
        plan.evidence_for(
            "search_logs",
            {"query": f"service:{c} status:error", **plan.window(600)},
            "lock timeout",
            "statements cancelled by the lock timeout",
        )
        plan.evidence_for(
            "query_metrics",
            {"query": f"max:postgresql.locks{{service:{db}}}", **plan.window(3600)},
            "postgresql.locks",
            "ungranted locks pile up on the database",
        )
        plan.partial.append(
            {"entity": db, "credit": 0.3, "why": "the database where the locks pile up (symptom)"}
        )
        plan.signals |= {"events", "metrics", "logs"}
        plan.technologies += ["postgresql", p.language, q.language]
