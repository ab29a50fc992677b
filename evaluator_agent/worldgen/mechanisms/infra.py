"""Mechanisms that start below the application: an expired certificate, a cache that lost its
keys, a configuration that crash-loops a service's pods, an endpoint whose DNS record went
empty, and a container throttled at its CPU limit.

In the DNS failure the culprit looks healthy (nobody reaches it, so it logs nothing wrong) and
only its callers' logs name it."""

from __future__ import annotations

import random

from evaluator_agent.worldgen import events, messages
from evaluator_agent.worldgen.catalog import AUTHORS, db_table
from evaluator_agent.worldgen.mechanisms.base import (
    Mechanism,
    Plan,
    monitor_delay,
    propagate,
    register,
    trigger_lead,
)
from evaluator_agent.worldgen.mechanisms.infra_signatures import (
    X509_EXPECT,
    redis_restart_lines,
    slow_query_line,
    tls_server_error,
    x509_error,
)
from evaluator_agent.worldgen.mechanisms.signatures import (
    no_healthy_upstream,
    overload_error,
    slow_request,
    startup_failure,
)
from evaluator_agent.worldgen.telemetry import MIN, Profile, World, add, iso, shift
from evaluator_agent.worldgen.topology import CHAIN_ROLES, Topo

messages.STYLE_HOOKS["tls"] = lambda p, child, style, rng: x509_error(
    p, child, float(style.split(":", 1)[1]), rng
)
X509_QUERY = {
    "go": "x509",
    "envoy": "x509",
    "java": "validity check failed",
    "python": "certificate has expired",
    "node": "CERT_HAS_EXPIRED",
}


@register
class CertificateExpiry(Mechanism):
    name = "certificate_expiry"
    system_level = "network"
    culprit_roles = ("api", "external")
    min_chain = 2

    def accept(self, topo: Topo, name: str) -> bool:
        return not name.endswith("-bff") and any(
            topo.role(c) in CHAIN_ROLES for c in topo.callers.get(name, [])
        )

    def schedule(self, plan: Plan, rng: random.Random) -> None:
        plan.hop_delays = [0] + [rng.randint(*self.hop_range) for _ in plan.chain[2:]]
        plan.symptom_start = plan.fired_at - monitor_delay(rng)
        plan.onset = plan.symptom_start - sum(plan.hop_delays)
        plan.onset_tolerance_s = 120

    def apply(self, w: World, plan: Plan, rng: random.Random) -> None:
        c, caller = plan.chain[0], plan.chain[1]
        p, clock = w.p[c], w.clock
        onset = plan.onset or plan.fired_at
        step = clock.ramp(onset - 30, onset - 29, 1.0)
        host = messages.dns(p)
        if p.role == "external":
            p.err_own = list(step)
            plan.trigger = {
                "kind": "external",
                "entity": c,
                "at": onset,
                "description": f"The TLS certificate served by {host} expired at {iso(onset)}",
            }
        else:
            p.traffic = [1 - 0.97 * s for s in step]
            p.res["unreachable"] = list(step)
            w.stream(c, onset, plan.end, 3.0, tls_server_error(p))
            plan.trigger = {
                "kind": "none",
                "entity": c,
                "at": onset,
                "description": f"Certificate {c}-tls (CN={host}) expired at {iso(onset)}; its renewal had failed",
            }
            lead = max(plan.recipe.time_offset_s, rng.randint(40, 150) * MIN)
            if onset - lead > clock.start:
                events.certificate(w, onset - lead, c, False, rng)
                plan.evidence_for(
                    "get_events",
                    {"query": f"{c}-tls", **plan.window(lead + 900)},
                    "Failed",
                    "cert-manager could not renew the certificate",
                )
        plan.aliases += [f"{c}-tls", host]
        err = list(step)
        propagate(w, plan, rng, err, clock.zeros(), f"tls:{onset}")
        q = w.p[caller]
        lang = "envoy" if q.role == "gateway" else q.language
        phrase = X509_QUERY.get(lang, "x509")
        plan.evidence_for(
            "search_logs",
            {"query": f'service:{caller} status:error "{phrase}"', **plan.window(900)},
            X509_EXPECT.get(lang, "certificate"),
            f"{caller} rejects the expired certificate of {c}",
        )
        plan.signals |= {"logs"}
        plan.technologies += ["tls", q.language]


@register
class CacheStampede(Mechanism):
    name = "cache_stampede"
    system_level = "data"
    culprit_roles = ("redis",)
    min_chain = 2

    @staticmethod
    def _dbs(topo: Topo, svc: str) -> list[str]:
        return [
            d for d in topo.calls.get(svc, []) if topo.entries[d].language in ("postgres", "mysql")
        ]

    def accept(self, topo: Topo, name: str) -> bool:
        return any(self._dbs(topo, c) for c in topo.callers.get(name, []))

    def chains(self, topo: Topo, length: int) -> list[list[str]]:
        return [ch for ch in super().chains(topo, length) if len(ch) > 1 and self._dbs(topo, ch[1])]

    def apply(self, w: World, plan: Plan, rng: random.Random) -> None:
        c, x = plan.chain[0], plan.chain[1]
        r, clock = w.p[c], w.clock
        db = rng.choice(self._dbs(w.topo, x))
        q = w.p[db]
        onset = plan.onset or plan.fired_at
        base_hit = rng.uniform(0.92, 0.96)
        recover = rng.randint(35, 60) * MIN
        pod = f"{c}-0"
        if rng.random() < 0.6:
            host = r.hosts[0] if r.hosts else "node"
            other = rng.choice(
                [h["name"] for h in w.topo.hosts if h["cluster"] == r.cluster and h["name"] != host]
                or [host]
            )
            events.node_upgrade(w, onset - 45, host, r.cluster)
            w.k8s_event(
                onset - 20,
                c,
                "Killing",
                "Stopping container redis",
                pod,
                extra={"kube_stateful_set": c},
            )
            w.k8s_event(
                onset + 12,
                c,
                "Scheduled",
                f"Successfully assigned {r.namespace}/{pod} to {other}",
                pod,
            )
            w.k8s_event(onset + 31, c, "Started", "Started container redis", pod)
            before, after = redis_restart_lines(rng)
            for k, (st, line) in enumerate(before):
                w.log(onset - 19 + k, c, st, line, {"pod_name": pod}, rng=rng)
            for k, (st, line) in enumerate(after):
                w.log(onset + 33 + k, c, st, line, {"pod_name": pod}, rng=rng)
            hit = [
                base_hit
                if clock.ts(i) + 30 < onset
                else 0.02 + (base_hit - 0.02) * min(1.0, (clock.ts(i) + 30 - onset) / recover) ** 2
                for i in range(clock.n)
            ]
            r.res["mem"] = [
                r.mem_base
                if clock.ts(i) + 30 < onset
                else r.mem_base * min(1.0, 0.01 + (clock.ts(i) + 30 - onset) / recover)
                for i in range(clock.n)
            ]
            r.res["clients"] = [
                1.0
                if clock.ts(i) + 30 < onset
                else (0.0 if clock.ts(i) + 30 < onset + 60 else 1.35)
                for i in range(clock.n)
            ]
            blip = clock.ramp(onset - 20, onset - 19, 1.0, until=onset + 40)
            r.err_own, r.res["unreachable"] = list(blip), list(blip)
            plan.trigger = {
                "kind": "infrastructure",
                "entity": c,
                "at": onset - 20,
                "description": f"{pod} restarted during a node upgrade of {host} and came back empty",
            }
            plan.evidence_for(
                "get_events",
                {"query": f"source:kubernetes service:{c}", **plan.window()},
                "Killing",
                f"{pod} was stopped and rescheduled",
            )
            plan.evidence_for(
                "search_logs",
                {"query": f"service:{c}", **plan.window()},
                "Ready to accept connections",
                "redis restarted with an empty dataset",
            )
        else:
            old, new = rng.choice((("8gb", "2gb"), ("4gb", "1gb"), ("6gb", "1536mb")))
            events.configmap(
                w,
                onset - rng.randint(20, 60),
                c,
                f"maxmemory: {old} -> {new}\nmaxmemory-policy: allkeys-lru",
                rng=rng,
                restart=False,
                how=f"terraform apply, run-{rng.getrandbits(40):010x}",
            )
            low = rng.uniform(0.3, 0.5)
            hit = [base_hit if clock.ts(i) + 30 < onset else low for i in range(clock.n)]
            r.res["evicted"] = [
                0.0
                if clock.ts(i) + 30 < onset
                else (
                    rng.uniform(3000, 9000) if clock.ts(i) < onset + 120 else rng.uniform(200, 900)
                )
                for i in range(clock.n)
            ]
            r.res["mem"] = [
                r.mem_base if clock.ts(i) + 30 < onset else 0.25 for i in range(clock.n)
            ]
            plan.trigger = {
                "kind": "config",
                "entity": c,
                "at": onset,
                "description": f"{c} maxmemory lowered from {old} to {new}; hot keys evicted",
            }
            plan.evidence_for(
                "get_events",
                {"query": f"service:{c}", **plan.window()},
                "maxmemory",
                "maxmemory lowered just before the onset",
            )
            plan.evidence_for(
                "query_metrics",
                {"query": f"sum:redis.keys.evicted{{service:{c}}}", **plan.window(3600)},
                "redis.keys.evicted",
                "evictions spike at the onset",
            )
        r.res["hit"] = hit
        miss = [(1 - h) / (1 - base_hit) for h in hit]
        load = shift([min(6.0, 1 + (m - 1) * 0.3) for m in miss], 1)
        load = [v if v > 0 else 1.0 for v in load]
        q.traffic = load
        q.lat_add = [(v - 1) * q.base_lat * rng.uniform(8, 20) for v in load]
        q.res["conn"] = [min(0.97, rng.uniform(0.25, 0.35) + 0.13 * (v - 1)) for v in load]
        for h in q.hosts[:1]:
            w.host_res.setdefault(h, {})["cpu"] = [
                min(97.0, rng.uniform(20, 30) + 16 * (v - 1)) for v in load
            ]
        w.stream(
            db,
            onset + 60,
            onset + recover,
            2.5,
            slow_query_line(db_table(db)),
        )
        err = [min(0.35, 0.04 * (v - 1)) for v in load]
        lat = [(v - 1) * rng.uniform(0.15, 0.35) for v in load]
        propagate(w, plan, rng, err, lat, "refused")
        if (
            plan.trigger["kind"] == "config"
        ):  # evictions do not break connections: callers only see the database
            w.p[x].upstream = [u for u in w.p[x].upstream if u[1] != c]
        w.p[x].upstream.append((clock.idx(onset) + 1, db, "timeout"))
        plan.aliases += [pod, f"statefulset/{c}"]
        plan.partial.append(
            {
                "entity": db,
                "credit": 0.3,
                "why": f"{db} was overloaded by the cache misses (a victim that looks like the cause)",
            }
        )
        plan.protect.add(db)
        plan.signals |= {"metrics", "events", "logs"}
        plan.technologies += ["redis", q.language, "kubernetes"]


@register
class CrashloopBadConfig(Mechanism):
    name = "crashloop_bad_config"
    system_level = "platform"
    culprit_roles = ("api",)

    excludes_bff = True

    def apply(self, w: World, plan: Plan, rng: random.Random) -> None:
        c = plan.chain[0]
        p, clock = w.p[c], w.clock
        onset = plan.onset or plan.fired_at
        key, old, bad, make = startup_failure(p)
        t_cfg = onset - rng.randint(30, 90)
        events.configmap(w, t_cfg, c, f'{key}: "{old}" -> "{bad}"', rng=rng)
        pods = list(p.pods.get(p.version, []))
        n = len(pods)
        keep = max(1, round(n * rng.uniform(0.35, 0.6)))
        capacity = [1.0] * clock.n
        restarts = clock.zeros()
        count = 0
        for j, pod in enumerate(pods[: n - keep]):
            t = onset + j * 25
            w.k8s_event(t - 5, c, "Killing", f"Stopping container {c}", pod)
            backoff = 10
            while t < clock.end:
                status, msg, attrs = make(rng, t)
                w.log(t + 2, c, status, msg, {**attrs, "pod_name": pod}, rng=rng)
                count += 1
                for i in range(clock.idx(t), clock.n):
                    restarts[i] += 1
                if count <= 10:
                    w.backoff(t + 3, c, pod)
                t += backoff + 5
                backoff = min(300, backoff * 2)
        for i in range(clock.n):
            down = sum(1 for j in range(n - keep) if clock.ts(i) + 30 >= onset + j * 25)
            capacity[i] = (n - down) / n
        p.res["replicas"] = [n * x for x in capacity]
        p.res["restarts"] = restarts
        err = [min(0.9, (1 - x) * rng.uniform(0.6, 0.9)) for x in capacity]
        lat = [(1 - x) * p.base_lat * 4 for x in capacity]
        p.err_own, p.lat_add = list(err), list(lat)
        p.own_error = no_healthy_upstream
        propagate(w, plan, rng, err, lat, "5xx")
        plan.trigger = {
            "kind": "config",
            "entity": f"{c}-config",
            "at": int(t_cfg),
            "description": f"{key} set to an invalid value in {c}-config; restarted pods crash on boot",
        }
        plan.aliases += [f"{c}-config", f"deployment/{c}", key]
        plan.evidence_for(
            "get_events",
            {"query": f"source:config service:{c}", **plan.window()},
            key,
            "the ConfigMap change",
        )
        plan.evidence_for(
            "get_events",
            {"query": f"source:kubernetes service:{c}", **plan.window()},
            "BackOff",
            "pods crash-looping",
        )
        plan.evidence_for(
            "search_logs",
            {"query": f"service:{c} status:error", **plan.window()},
            key,
            "startup fails on the bad value",
        )
        plan.signals |= {"events", "logs", "metrics"}
        plan.technologies += ["kubernetes", p.language]


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
                messages.probe_timeout(rng),
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
