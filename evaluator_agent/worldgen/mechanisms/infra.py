"""Mechanisms that start below the application: an expired certificate, a cache that lost its
keys, and the control case where nothing is broken (a benign, explained traffic spike)."""

from __future__ import annotations

import random

from .. import messages
from ..catalog import AUTHORS
from ..telemetry import MIN, World, add, iso, shift
from ..topology import CHAIN_ROLES, Topo
from .base import Mechanism, Plan, propagate, register
from .infra_signatures import (
    X509_EXPECT,
    redis_restart_lines,
    slow_query_line,
    tls_server_error,
    x509_error,
)
from .signatures import startup_failure

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
        plan.symptom_start = plan.fired_at - rng.randint(150, 330)
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
                w.event(
                    onset - lead,
                    "kubernetes",
                    f"Events from the Certificate {p.namespace}/{c}-tls",
                    f"Failed: The certificate request has failed to complete and will be retried: Failed to wait for "
                    f'order resource "{c}-tls-{rng.getrandbits(20):05x}-{rng.randint(1000, 9999)}" to become ready: '
                    'order is in "errored" state: Failed to finalize Order: 429 urn:ietf:params:acme:error:rateLimited',
                    {
                        "service": c,
                        "kube_namespace": p.namespace,
                        "kube_kind": "Certificate",
                        "reason": "Failed",
                        "kube_cluster_name": p.cluster,
                        "certificate": f"{c}-tls",
                    },
                )
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
            w.event(
                onset - 45,
                "kubernetes",
                f"Events from the Node {host}",
                f"NodeNotSchedulable: Node {host} status is now: NodeNotSchedulable (GKE node auto-upgrade to 1.29.4-gke.1043002)",
                {
                    "kube_kind": "Node",
                    "reason": "NodeNotSchedulable",
                    "host": host,
                    "kube_cluster_name": r.cluster,
                },
            )
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
            author = rng.choice(AUTHORS)
            w.event(
                onset - rng.randint(20, 60),
                "config",
                f"ConfigMap {r.namespace}/{c}-config updated",
                f"maxmemory: {old} -> {new}\nmaxmemory-policy: allkeys-lru\nApplied by {author} "
                f"(terraform apply, run-{rng.getrandbits(40):010x})",
                {
                    "service": c,
                    "author": author,
                    "kube_namespace": r.namespace,
                    "config": f"{c}-config",
                },
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
                c,
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
            slow_query_line(db.removesuffix("-db").replace("-", "_")),
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


CAMPAIGNS = (
    "Spring Flash Sale",
    "Members Early Access",
    "Weekend Free Shipping",
    "Back to School Preview",
    "Mother's Day Gift Guide",
    "Summer Clearance",
)


@register
class NoFault(Mechanism):
    name = "no_fault"
    culprit_roles = ("api", "gateway")
    max_chain = 1
    monitor_kind = "hits"

    def accept(self, topo: Topo, name: str) -> bool:
        # A customer-facing service: a campaign lands on it. Ingest and partner APIs do not see shoppers.
        edge = {"api-gateway", "web-bff", "mobile-bff"}
        shopper = name in edge or bool(set(topo.callers.get(name, [])) & edge)
        return shopper and name not in ("partner-api", "clickstream-ingest", "analytics-ingest")

    def chains(self, topo: Topo, length: int) -> list[list[str]]:
        return [[n] for n in self.candidates(topo)]

    def schedule(self, plan: Plan, rng: random.Random) -> None:
        plan.hop_delays = []
        plan.symptom_start = plan.fired_at - rng.randint(240, 480)
        plan.onset = None

    def apply(self, w: World, plan: Plan, rng: random.Random) -> None:
        s = plan.chain[0]
        plan.monitor_service, plan.chain = s, []
        clock = w.clock
        name = rng.choice(CAMPAIGNS)
        t_c = plan.symptom_start - rng.randint(60, 240)
        mult = rng.uniform(1.8, 2.6)
        curve = clock.ramp(t_c, t_c + 300, mult - 1)
        w.event(
            t_c,
            "marketing",
            f'Campaign "{name}" sent',
            f"Email and push notification to {rng.uniform(1.2, 3.5):.1f}M subscribers; landing pages hit "
            f"{s} and the product pages. Scheduled by the growth team.",
            {
                "campaign": name.lower().replace("'", "").replace(" ", "-"),
                "team": "growth",
                "channel": "email",
            },
        )
        touched = [s, *sorted(w.topo.ancestors(s))]
        for k, name_ in enumerate(touched):
            f = 1.0 if k == 0 else rng.uniform(0.5, 0.9)
            add(w.p[name_].traffic, curve, f)
        moved = sorted(d for d in w.topo.descendants(s) if w.p[d].role in ("api", "db", "redis"))
        for d in moved:
            add(w.p[d].traffic, curve, 0.5)
        w.p[s].lat_add = [v * w.p[s].base_lat * 0.12 for v in curve]
        p = w.p[s]
        if p.namespace:
            n0 = len(next(iter(p.pods.values())))
            w.event(
                t_c + rng.randint(200, 320),
                "autoscaling",
                f"HorizontalPodAutoscaler {p.namespace}/{s} scaled",
                f"New size: {n0 * 2}; reason: cpu resource utilization (percentage of request) above target",
                {"service": s, "kube_namespace": p.namespace, "kube_cluster_name": p.cluster},
            )
        plan.trigger = {
            "kind": "none",
            "entity": None,
            "at": t_c,
            "description": f'Marketing campaign "{name}" drove expected extra traffic; nothing failed',
        }
        plan.herrings.append(
            {"entity": s, "why": "paged only because its traffic rose with the campaign"}
        )
        if moved:
            d = rng.choice(moved)
            plan.herrings.append(
                {"entity": d, "why": "its load rose with the campaign traffic; no errors"}
            )
        plan.evidence_for(
            "get_events",
            {"query": "source:marketing", **plan.window(1800, at=t_c)},
            name,
            "the campaign that explains the traffic",
        )
        plan.evidence_for(
            "query_metrics",
            {"query": f"sum:trace.{p.op}.hits{{service:{s}}}", **plan.window(3600, at=t_c)},
            s,
            "traffic rose with the campaign while errors stayed flat",
        )
        plan.signals |= {"events", "metrics"}
        plan.technologies += [p.language]


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
        author = rng.choice(AUTHORS)
        t_cfg = onset - rng.randint(30, 90)
        w.event(
            t_cfg,
            "config",
            f"ConfigMap {p.namespace}/{c}-config updated",
            f'{key}: "{old}" -> "{bad}"\nApplied by {author} (argo-cd sync, app {c}); pods restarted by the '
            "checksum/config annotation",
            {
                "service": c,
                "author": author,
                "config": f"{c}-config",
                "kube_namespace": p.namespace,
            },
        )
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
                    w.k8s_event(
                        t + 3,
                        c,
                        "BackOff",
                        f"Back-off restarting failed container {c} in pod {pod}_{p.namespace}",
                        pod,
                    )
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
        p.own_error = lambda r, ts: ("error", "no healthy upstream", {"http.status_code": 503})
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
