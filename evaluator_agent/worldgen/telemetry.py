"""Telemetry primitives: the clock, curves, per-service state, and the world under construction.

A world is built in two passes. Mechanisms and noise edit *state*: per-service curves
(traffic multiplier, intrinsic and propagated error ratio, added latency, resource curves
such as memory or cache hit ratio), deploys, log streams, events and monitors. Rendering
(``emit.py``, ``traces.py``) then turns that state into Datadog-shaped series, logs and
spans. Keeping the two apart is what lets ``noise="off"`` replay the very same incident.

Curves are lists of floats, one per minute of the window (index ``i`` is ``start + 60*i``).
Every random draw comes from a ``random.Random`` seeded with a string derived from the
recipe seed, so a world never depends on process state, set order or ``hash()``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from evaluator_agent.core.clock import iso_s as iso  # noqa: F401 - generated telemetry's format
from evaluator_agent.worldgen.topology import Topo

MIN = 60
# Files a service publishes for others to load (feature files, rule sets ...): ``artifact`` tag.
ARTIFACTS = ("features", "rules", "fields", "columns", "entries")
LogMaker = Callable[
    [random.Random, float], tuple[str, str, dict[str, Any]]
]  # -> (status, message, attrs)


def sig(
    x: float,
    n: int = 3,
    _isfinite: Any = math.isfinite,
    _log10: Any = math.log10,
    _floor: Any = math.floor,
) -> float | int:
    """Round to n significant digits; integral results become ints (smaller JSON).
    (The math functions are bound once: this runs some 40,000 times per world.)"""
    if x == 0 or not _isfinite(x):
        return 0
    r = round(x, n - 1 - _floor(_log10(abs(x))))
    return int(r) if r == int(r) and abs(r) >= 1 else r


def hexid(rng: random.Random, k: int) -> str:
    return f"{rng.getrandbits(4 * k):0{k}x}"


class Clock:
    """The minute grid of a world: ``n`` points from ``start``; nothing at or after ``end``."""

    def __init__(self, start: int, end: int):
        self.start, self.end = start, end
        self.n = (end - start) // MIN

    def ts(self, i: int) -> int:
        return self.start + MIN * i

    def idx(self, ts: float) -> int:
        return max(0, min(self.n, int((ts - self.start) // MIN)))

    def zeros(self) -> list[float]:
        return [0.0] * self.n

    def ramp(
        self, t0: float, t1: float, level: float, until: float | None = None, decay_s: float = 0
    ) -> list[float]:
        """0 before t0, linear to ``level`` at t1, held; after ``until`` back to 0 over ``decay_s``."""
        out = self.zeros()
        for i in range(self.n):
            t = self.ts(i) + 30
            if t < t0:
                continue
            v = level if t >= t1 else level * (t - t0) / max(1.0, t1 - t0)
            if until is not None and t >= until:
                v *= max(0.0, 1 - (t - until) / decay_s) if decay_s > 0 else 0.0
            out[i] = v
        return out


def shift(curve: list[float], k: int) -> list[float]:
    if k <= 0:
        return list(curve)
    return [0.0] * k + curve[: len(curve) - k]


def add(dst: list[float], src: list[float], f: float = 1.0) -> None:
    for i, v in enumerate(src):
        dst[i] += f * v


def diurnal(ts: float) -> float:
    """Traffic shape of a US shop: peak mid-afternoon US Eastern, trough before dawn."""
    hour = (ts / 3600.0 - 5) % 24
    return 1.0 + 0.3 * math.sin(2 * math.pi * (hour - 9) / 24)


@dataclass
class Deploy:
    ts: float
    version: str
    rollout_s: float = 180
    final: float = 1.0  # share of traffic the new version ends with (< 1: a rollout that stalled)


@dataclass
class LogStream:
    """Log lines a mechanism or noise wants on a service: ``per_min`` lines per minute in [start, end)."""

    service: str
    start: float
    end: float
    per_min: float
    make: LogMaker
    ramp_s: float = 0


@dataclass
class Profile:
    """Everything the renderers need to know about one entity."""

    name: str
    role: str
    kind: str
    language: str
    team: str
    namespace: str
    cluster: str
    hosts: list[str]
    op: str  # APM operation: http.request, kafka.consume, postgres.query, redis.command ...
    rps: float
    base_err: float
    base_lat: float
    resources: list[tuple[str, float]]
    deploys: list[Deploy]
    pods: dict[str, list[str]]
    traffic: list[float]
    err_own: list[float]
    err_prop: list[float]
    lat_add: list[float]
    mem_limit: float = 0
    mem_base: float = 0.5
    cpu_limit: float = 1
    err_version: str | None = None
    err_resource: str | None = None
    lat_resource: str | None = None  # added latency only on this resource (e.g. one slow query)
    own_error: LogMaker | None = None  # message of intrinsic (incident) errors
    upstream: list[tuple[int, str, str]] = field(
        default_factory=list
    )  # (from minute, failing callee, style)
    res: dict[str, list[float]] = field(default_factory=dict)
    # (start, end, maker): what this service's own errors look like while something passing
    # (a background blip) makes it fail; outside every episode, ``own_error``
    episodes: list[tuple[float, float, LogMaker]] = field(default_factory=list)
    world_seed: int = 0

    @property
    def version(self) -> str:
        return self.deploys[-1].version

    def versions(self) -> list[str]:
        return [d.version for d in self.deploys]

    def share(self, ts: float) -> dict[str, float]:
        """Fraction of traffic served by each version at ts (rolling deploys overlap)."""
        shares = {self.deploys[0].version: 1.0}
        for d in self.deploys[1:]:
            # f = min(d.final, max(0.0, (ts - d.ts) / d.rollout_s)), without the calls (hot)
            f = (ts - d.ts) / d.rollout_s
            if not f > 0.0:
                continue  # not started: f would be min(d.final, 0.0) <= 0
            if not f < d.final:
                f = d.final
                if f <= 0:
                    continue
            rest = 1 - f
            shares = {v: s * rest for v, s in shares.items() if s * rest > 0}
            shares[d.version] = shares.get(d.version, 0.0) + f
        return shares

    def version_at(self, ts: float, rng: random.Random | None = None) -> str:
        return self.pick_version(self.share(ts), rng)

    @staticmethod
    def pick_version(shares: dict[str, float], rng: random.Random | None = None) -> str:
        """The version serving one request, given the shares at its time (:meth:`share`): drawn
        by share with ``rng``, else the version serving most."""
        if len(shares) == 1:  # one version serves everything (most of the time)
            return next(iter(shares))
        if rng is None:
            return max(shares, key=lambda v: shares[v])
        x, acc = rng.random(), 0.0
        for v in sorted(shares):
            acc += shares[v]
            if x < acc:
                return v
        return sorted(shares)[-1]

    def pod(self, rng: random.Random, ts: float, shares: dict[str, float] | None = None) -> str:
        """The pod serving a request at ``ts`` (``shares``: :meth:`share` at ``ts``, when known)."""
        pods = (
            self.pods.get(self.pick_version(self.share(ts) if shares is None else shares, rng))
            if self.deploys
            else None
        ) or next(iter(self.pods.values()), [self.name])
        return rng.choice(pods)

    def error_maker(self, ts: float) -> LogMaker | None:
        """The line maker of this service's own errors at ``ts``."""
        for t0, t1, make in reversed(self.episodes):
            if t0 <= ts < t1:
                return make
        return self.own_error

    def err_total(self, i: int) -> float:
        return self.base_err + self.err_own[i] + self.err_prop[i]


class World:
    """The snapshot under construction, plus the state mechanisms and noise edit."""

    def __init__(self, seed: int, world_id: str, clock: Clock, topo: Topo, noise: str):
        self.seed, self.world_id, self.clock, self.topo, self.noise = (
            seed,
            world_id,
            clock,
            topo,
            noise,
        )
        self.p: dict[str, Profile] = {}
        self.host_res: dict[str, dict[str, list[float]]] = {}
        self.streams: list[LogStream] = []
        self.logs: list[dict] = []
        self.spans: list[dict] = []
        self.events: list[dict] = []
        self.monitors: list[dict] = []
        self.metrics: dict[tuple[str, str], dict] = {}
        self._ids = random.Random(f"{seed}|ids")
        # Noise bookkeeping the monitors read: chronic error services, burst starts, warning starts.
        self.chronic: list[str] = []
        self.burst: dict[str, float] = {}
        self.warned: dict[str, float] = {}
        # service -> (artifact it publishes, typical size in KB)
        self.publishers: dict[str, tuple[str, float]] = {}
        # while set, background blips land only on these services (ambient.placement.focused)
        self.blip_focus: set[str] | None = None

    def rng(self, *parts: object) -> random.Random:
        return random.Random("|".join([str(self.seed), *map(str, parts)]))

    def deployed_in_window(self, service: str) -> bool:
        """Whether ``service`` has a deploy inside the window (one at most: versions stay monotonic)."""
        return any(d.ts >= self.clock.start for d in self.p[service].deploys)

    # -- records ---------------------------------------------------------------------------
    def series(
        self, metric: str, tags: dict[str, str], values: list[Any], type_: str = "gauge"
    ) -> None:
        key = (metric, "|".join(f"{k}:{tags[k]}" for k in sorted(tags)))
        self.metrics[key] = {
            "metric": metric,
            "tags": dict(sorted(tags.items())),
            "type": type_,
            "start": self.clock.start,
            "interval": MIN,
            "values": values,
        }

    def log(
        self,
        ts: float,
        service: str,
        status: str,
        message: str,
        attrs: dict[str, Any] | None = None,
        trace_id: str | None = None,
        host: str | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not self.clock.start <= ts < self.clock.end:
            return
        p = self.p.get(service)
        r = rng or self._ids
        a: dict[str, Any] = {"env": "prod"}
        if p is not None:
            shares = p.share(ts) if p.deploys else None  # once for the version and the pod
            if shares is not None:
                a["version"] = p.pick_version(shares, r)
            if p.namespace:
                a["kube_namespace"] = p.namespace
                if p.pods:
                    a["pod_name"] = p.pod(r, ts, shares)
            if host is None and p.hosts:
                host = r.choice(p.hosts)
        a.update(attrs or {})
        # One timestamp precision for every line: a sub-second part drawn the same way whatever
        # produced the line (a scripted "t + 2" would otherwise sit on whole seconds).
        ts = min(ts + r.random() * 0.999, self.clock.end - 0.001)
        self.logs.append(
            {
                "ts": round(ts, 3),
                "service": service,
                "host": host or "",
                "status": status,
                "message": message,
                "attrs": a,
                "trace_id": trace_id,
            }
        )

    def event(
        self, ts: float, source: str, title: str, text: str = "", tags: dict[str, str] | None = None
    ) -> dict:
        ev = {
            "id": str(self._ids.getrandbits(62)),
            # sub-second part for every event alike (see ``log``)
            "ts": round(min(ts + self._ids.random() * 0.999, self.clock.end - 0.001), 3),
            "source": source,
            "title": title,
            "text": text,
            "tags": dict(sorted({"env": "prod", **(tags or {})}.items())),
        }
        if self.clock.start <= ts < self.clock.end:
            self.events.append(ev)
        return ev

    def monitor_id(self) -> int:
        return 10_000_000 + self._ids.randrange(90_000_000)

    def stream(
        self,
        service: str,
        start: float,
        end: float,
        per_min: float,
        make: LogMaker,
        ramp_s: float = 0,
    ) -> None:
        self.streams.append(LogStream(service, start, end, per_min, make, ramp_s))

    # -- changes ---------------------------------------------------------------------------
    def k8s_event(
        self,
        ts: float,
        service: str,
        reason: str,
        message: str,
        pod: str | None = None,
        kind: str = "Pod",
        extra: dict[str, str] | None = None,
    ) -> dict:
        p = self.p[service]
        obj = pod or service
        tags = {
            "service": service,
            "kube_namespace": p.namespace,
            "kube_cluster_name": p.cluster,
            "kube_deployment": service,
            "reason": reason,
            "kube_kind": kind,
            **(extra or {}),
        }
        if kind == "Pod":
            tags["pod_name"] = obj
        title = f"Events from the {kind} {p.namespace}/{obj}"
        return self.event(ts, "kubernetes", title, f"{reason}: {message}", tags)

    def backoff(self, ts: float, service: str, pod: str) -> dict:
        """The kubelet backing off the restarts of ``service``'s crashing container in ``pod``."""
        return self.k8s_event(
            ts,
            service,
            "BackOff",
            f"Back-off restarting failed container {service} in pod {pod}_{self.p[service].namespace}",
            pod,
        )

    def deploy(
        self,
        service: str,
        ts: float,
        version: str,
        author: str,
        commit_msg: str,
        rollout_s: float = 180,
        pipeline: str = "argo-cd",
        left_behind: int = 0,
    ) -> dict:
        """Record a rolling deploy: new pods, the deploy event, and the usual kubelet chatter.

        ``left_behind`` pods stay on the previous version (a rollout that stalled on them)."""
        p = self.p[service]
        rng = self.rng("deploy", service, int(ts))
        prev = p.version
        n_pods = len(next(iter(p.pods.values()), [])) or 3
        left_behind = min(left_behind, n_pods - 1)
        final = 1.0 - left_behind / n_pods
        p.deploys.append(Deploy(ts, version, rollout_s, final))
        p.deploys.sort(key=lambda d: d.ts)
        rs = hexid(rng, 10)[:9] if p.role != "gateway" else hexid(rng, 9)
        n_pods -= left_behind
        p.pods[version] = [
            f"{service}-{rs}-{''.join(rng.choice('bcdfghjklmnpqrstvwxz2456789') for _ in range(5))}"
            for _ in range(n_pods)
        ]
        commit = hexid(rng, 40)
        text = (
            f"{service} {prev} -> {version} by {author} (commit {commit[:7]}, {pipeline} #{rng.randint(1000, 9999)})\n"
            f"{commit_msg}\nRolling update of deployment/{service} in {p.namespace} on {p.cluster}"
        )
        ev = self.event(
            ts,
            "deploy",
            f"Deployed {service} {version} to prod",
            text,
            {
                "service": service,
                "version": version,
                "previous_version": prev,
                "author": author,
                "commit": commit[:12],
                "pipeline": pipeline,
                "kube_cluster_name": p.cluster,
            },
        )
        if p.namespace:
            old_pods = p.pods.get(prev, [])
            for k, pod in enumerate(p.pods[version]):
                t_k = ts + 20 + k * rollout_s / max(1, n_pods)
                node = rng.choice(p.hosts) if p.hosts else "node"
                self.k8s_event(
                    t_k - 12, service, "Scheduled", f"Successfully assigned {p.namespace}/{pod} to {node}", pod
                )
                self.k8s_event(t_k, service, "Started", f"Started container {service}", pod)
                if k < len(old_pods) - left_behind:  # a rolling update stops an old pod per new one
                    self.k8s_event(
                        t_k + 15, service, "Killing", f"Stopping container {service}", old_pods[k]
                    )
        return ev
