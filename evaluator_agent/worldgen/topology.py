"""Topology: which services a world has, who calls whom, where they run.

The world takes whole catalog domains (edge first, the rest in a seeded order) until it has
``n`` entities. Edges whose ends are both present are kept; an API nobody calls is hung under
a backend-for-frontend so every service is reachable from the edge. Graph helpers find the
candidate causal chains: paths that climb from a culprit through its callers to the service
whose monitor pages.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from evaluator_agent.worldgen.catalog import DOMAINS, EDGE, Domain, Entry

ROLE_KIND = {
    "api": "service",
    "worker": "service",
    "gateway": "gateway",
    "db": "database",
    "redis": "cache",
    "topic": "queue",
    "external": "external",
    "cron": "job",
}
INFRA_ROLES = ("db", "redis", "topic", "external")
# Roles that serve traffic with APM metrics and can sit on a causal chain above a culprit.
CHAIN_ROLES = ("api", "gateway", "worker")
TIER1_TEAMS = ("edge", "checkout", "payments", "orders", "identity")
TIER3_TEAMS = ("support", "data", "ads", "i18n")


@dataclass
class Topo:
    services: dict[str, dict] = field(default_factory=dict)  # name -> world Service dict
    entries: dict[str, Entry] = field(default_factory=dict)
    calls: dict[str, list[str]] = field(default_factory=dict)
    callers: dict[str, list[str]] = field(default_factory=dict)
    dependencies: list[dict] = field(default_factory=list)
    teams: list[dict] = field(default_factory=list)
    clusters: list[dict] = field(default_factory=list)
    hosts: list[dict] = field(default_factory=list)

    def role(self, name: str) -> str:
        return self.entries[name].role

    def names(self, *roles: str) -> list[str]:
        return [n for n in self.services if not roles or self.entries[n].role in roles]

    def consumed_topic(self, worker: str) -> str:
        """The topic a worker consumes, not whatever it happens to call first (an external API, say)."""
        calls = self.calls[worker]
        return next((t for t in calls if self.role(t) == "topic"), calls[0])

    def descendants(self, name: str) -> set[str]:
        return _reach(self.calls, name)

    def ancestors(self, name: str) -> set[str]:
        return _reach(self.callers, name)

    def chains(self, culprit: str, length: int, limit: int = 400) -> list[list[str]]:
        """Paths [culprit, caller, caller's caller, ...] of exactly ``length`` entities."""
        out: list[list[str]] = []

        def walk(path: list[str]) -> None:
            if len(out) >= limit:
                return
            if len(path) == length:
                out.append(list(path))
                return
            for up in self.callers.get(path[-1], []):
                if up not in path and self.entries[up].role in CHAIN_ROLES:
                    path.append(up)
                    walk(path)
                    path.pop()

        walk([culprit])
        return out

    def to_dict(self) -> dict:
        return {
            "services": [self.services[n] for n in sorted(self.services)],
            "dependencies": sorted(self.dependencies, key=lambda d: (d["source"], d["target"])),
            "teams": sorted(self.teams, key=lambda t: t["name"]),
            "clusters": sorted(self.clusters, key=lambda c: c["name"]),
            "hosts": sorted(self.hosts, key=lambda h: h["name"]),
        }


def _reach(edges: dict[str, list[str]], name: str) -> set[str]:
    """Every entity reachable from ``name`` along ``edges`` (``name`` itself only through a cycle)."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        for c in edges.get(todo.pop(), []):
            if c not in seen:
                seen.add(c)
                todo.append(c)
    return seen


def _protocol(src: Entry, dst: Entry) -> str:
    if dst.role == "db":
        return {"postgres": "postgresql", "mysql": "mysql"}.get(dst.language, "http")
    if dst.role == "redis":
        return "redis"
    if dst.role == "topic":
        return "kafka"
    if dst.role == "external":
        return "https"
    if src.language == "go" and dst.language == "go":
        return "grpc"
    return "http"


def _select(rng: random.Random, n: int) -> tuple[list[tuple[Domain, Entry]], list[Domain]]:
    others = list(DOMAINS)
    rng.shuffle(others)
    order = [EDGE, *others]
    chosen: list[tuple[Domain, Entry]] = []
    present: set[str] = set()
    callers_of: dict[str, set[str]] = {}
    for d in order:
        for e in d.entries:
            for c in e.calls:
                callers_of.setdefault(c, set()).add(e.name)
    for d in order:
        for e in d.entries:
            if len(chosen) >= n:
                break
            if e.role in INFRA_ROLES and not (callers_of.get(e.name, set()) & present):
                continue
            if e.role == "worker" and e.calls and e.calls[0] not in present:
                continue
            chosen.append((d, e))
            present.add(e.name)
    return chosen, order


def _hexs(rng: random.Random, k: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(k))


def _alnum(rng: random.Random, k: int) -> str:
    return "".join(rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(k))


def build_topology(rng: random.Random, n: int) -> Topo:
    chosen, _ = _select(rng, n)
    topo = Topo()
    present = {e.name for _, e in chosen}
    cluster_names = ["prod-us-east1-a", "prod-us-east1-b"] + (
        ["prod-us-central1-a"] if n > 80 else []
    )
    zones = {
        "prod-us-east1-a": ["us-east1-b", "us-east1-c"],
        "prod-us-east1-b": ["us-east1-c", "us-east1-d"],
        "prod-us-central1-a": ["us-central1-a", "us-central1-f"],
    }
    for c in cluster_names:
        topo.clusters.append(
            {"name": c, "platform": "kubernetes", "region": c[5:-2], "zones": zones[c]}
        )
    team_cluster: dict[str, str] = {}
    teams_seen: list[str] = []
    for d, _ in chosen:
        if d.team not in team_cluster:
            team_cluster[d.team] = (
                cluster_names[len(team_cluster) % len(cluster_names)]
                if d.team != "edge"
                else cluster_names[0]
            )
            teams_seen.append(d.team)
    for t in teams_seen:
        topo.teams.append({"name": t, "slack": f"#team-{t}", "oncall": f"{t}-primary"})

    # Kubernetes nodes per cluster, sized to the services scheduled there.
    k8s_count: dict[str, int] = {c: 0 for c in cluster_names}
    for d, e in chosen:
        if e.role in ("api", "worker", "gateway", "redis", "cron"):
            k8s_count[team_cluster[d.team]] += 1
    nodes: dict[str, list[str]] = {}
    for c in cluster_names:
        pool = f"{c}-pool-{rng.randint(1, 3)}"
        nodes[c] = []
        for i in range(max(3, k8s_count[c] // 4 + 2)):
            name = f"gke-{pool}-{_hexs(rng, 8)}-{_alnum(rng, 4)}"
            nodes[c].append(name)
            topo.hosts.append(
                {
                    "name": name,
                    "cluster": c,
                    "zone": zones[c][i % 2],
                    "instance_type": "n2-standard-8",
                }
            )
    brokers: list[str] = []

    for d, e in chosen:
        cluster = team_cluster[d.team]
        tier = 1 if d.team in TIER1_TEAMS else 3 if d.team in TIER3_TEAMS else 2
        platform, hosts = "kubernetes", []
        if e.role in ("api", "worker", "gateway", "redis", "cron"):
            hosts = sorted(
                rng.sample(
                    nodes[cluster], 1 if e.role in ("redis", "cron") else min(3, rng.randint(2, 3))
                )
            )
        elif e.role == "db":
            platform = "compute-engine"
            stem = e.name.removesuffix("-db").removesuffix("-es")
            prefix = {"postgres": "pg", "mysql": "mysql", "elasticsearch": "es"}[e.language]
            count = 3 if e.language == "elasticsearch" else 1
            hosts = [f"{prefix}-{stem}-{i + 1:02d}" for i in range(count)]
            for i, h in enumerate(hosts):
                topo.hosts.append(
                    {
                        "name": h,
                        "cluster": "",
                        "zone": zones[cluster][i % 2],
                        "instance_type": "n2-highmem-8",
                    }
                )
        elif e.role == "topic":
            platform = "kafka"
            if not brokers:
                brokers = [f"kafka-broker-{i}" for i in (1, 2, 3)]
                for i, h in enumerate(brokers):
                    topo.hosts.append(
                        {
                            "name": h,
                            "cluster": "",
                            "zone": zones[cluster_names[0]][i % 2],
                            "instance_type": "n2-standard-16",
                        }
                    )
            hosts = list(brokers)
            cluster = ""
        elif e.role == "external":
            platform, cluster = "saas", ""
        topo.services[e.name] = {
            "name": e.name,
            "kind": ROLE_KIND[e.role],
            "team": d.team,
            "platform": platform,
            "language": e.language,
            "cluster": cluster,
            "namespace": d.namespace if platform == "kubernetes" else "",
            "tier": tier,
            "hosts": hosts,
            "description": e.description,
        }
        topo.entries[e.name] = e

    for _, e in chosen:
        for c in e.calls:
            if c in present and c != e.name:
                topo.calls.setdefault(e.name, []).append(c)
    # Every API must be reachable from the edge: hang orphans under a BFF.
    has_caller = {c for cs in topo.calls.values() for c in cs}
    for _, e in chosen:
        if e.role == "api" and e.name not in has_caller and e.name not in ("web-bff", "mobile-bff"):
            parent = rng.choice(
                [p for p in ("web-bff", "mobile-bff") if p in present] or ["api-gateway"]
            )
            topo.calls.setdefault(parent, []).append(e.name)
    for src in sorted(topo.calls):
        topo.calls[src] = sorted(set(topo.calls[src]))
        for dst in topo.calls[src]:
            topo.callers.setdefault(dst, []).append(src)
            topo.dependencies.append(
                {
                    "source": src,
                    "target": dst,
                    "protocol": _protocol(topo.entries[src], topo.entries[dst]),
                }
            )
    for k in topo.callers:
        topo.callers[k] = sorted(topo.callers[k])
    return topo
