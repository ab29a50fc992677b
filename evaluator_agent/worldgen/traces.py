"""Sampled APM traces through the call graph, with error logs that carry their trace ids.

A trace starts at an entry point (the gateway, a BFF, a partner API or a Kafka consumer) and
walks down ``calls`` towards a service drawn uniformly from the catalog, calling other
dependencies on the way as real requests do. Sampling is the tracer's, not the story's: a
fixed share of requests is kept, and a request that ended in an error is kept far more
often (the error sampler). Nothing about the incident steers which requests are traced; an
incident shows in traces because its requests fail, and so does any other failure.
"""

from __future__ import annotations

import random
from itertools import accumulate
from typing import Any

from evaluator_agent.worldgen import messages
from evaluator_agent.worldgen.telemetry import Profile, World, hexid

MAX_SPANS = 16


def _roots(w: World) -> list[str]:
    out = []
    for name in sorted(w.p):
        p = w.p[name]
        if (
            p.role == "gateway"
            or p.role == "worker"
            or (p.role == "api" and not w.topo.callers.get(name))
        ):
            out.append(name)
    return out


def _path_to_root(w: World, top: str, rng: random.Random) -> list[str]:
    path = [top]
    while len(path) < 6:
        ups = [
            u
            for u in w.topo.callers.get(path[0], [])
            if w.p[u].role in ("api", "gateway", "worker") and u not in path
        ]
        if not ups:
            break
        path.insert(0, rng.choice(ups))
    return path


class _Shape:
    """What a span of one service draws from, worked out once per world (profiles and topology
    no longer change while traces are rendered): its resources with their cumulative weights
    (``rng.choices`` with ``cum_weights`` draws exactly as with the weights), and its callees
    with the chance that a request calls each."""

    __slots__ = ("resources", "cum_weights", "kids")

    def __init__(self, w: World, svc: str):
        p = w.p[svc]
        self.resources = [r for r, _ in p.resources]
        self.cum_weights = list(accumulate([wt for _, wt in p.resources]))
        self.kids = [
            (c, 0.8 if w.p[c].role in ("db", "redis") else 0.3)
            for c in w.topo.calls.get(svc, [])
            if w.p[c].role not in ("topic", "cron")
        ]


class _Trace:
    def __init__(self, w: World, rng: random.Random, shapes: dict[str, _Shape] | None = None):
        self.w, self.rng = w, rng
        self.shapes = shapes if shapes is not None else {}
        self.trace_id = hexid(rng, 32)
        self.spans: list[dict[str, Any]] = []
        self.logs: list[tuple[float, str, tuple[str, str, dict], str]] = []

    def span(
        self, svc: str, parent: str | None, start: float, forced: list[str], depth: int
    ) -> tuple[float, bool, str]:
        """Emit the span of ``svc`` and its children; returns (duration, error, error style for the caller)."""
        w, rng = self.w, self.rng
        p = w.p[svc]
        shape = self.shapes.get(svc)
        if shape is None:
            shape = self.shapes[svc] = _Shape(w, svc)
        i = min(w.clock.n - 1, w.clock.idx(start))
        span_id = hexid(rng, 16)
        version = p.version_at(start, rng) if p.deploys else ""
        resource = (
            (
                p.err_resource
                if p.err_resource and rng.random() < 0.5
                else rng.choices(shape.resources, cum_weights=shape.cum_weights)[0]
            )
            if p.resources
            else svc
        )
        record: dict[str, Any] = {
            "trace_id": self.trace_id,
            "span_id": span_id,
            "parent_id": parent,
            "service": svc,
            "name": p.op or "http.request",
            "resource": resource,
            "start": round(start, 4),
        }
        self.spans.append(record)
        own = p.base_lat * rng.lognormvariate(0, 0.35) * 0.5
        t = start + own * 0.3
        child_err: tuple[str, str] | None = None
        kids = shape.kids
        nxt = forced[0] if forced and any(c == forced[0] for c, _ in kids) else None
        picked = [c for c, chance in kids if c == nxt or rng.random() < chance][:4]
        for c in picked:
            if len(self.spans) >= MAX_SPANS or depth >= 6:
                break
            cp = w.p[c]
            unreachable = cp.res.get("unreachable")
            if unreachable and rng.random() < unreachable[i]:
                child_err = child_err or (c, _style(p, c, "refused"))
                t += 0.003
                continue
            d, err, _ = self.span(c, span_id, t, forced[1:] if c == nxt else [], depth + 1)
            t += d
            if err and child_err is None and rng.random() < 0.9:
                child_err = (c, _style(p, c, "5xx"))
        total = (t - start) + own * 0.7
        total = max(total, (p.base_lat + p.lat_add[i]) * rng.uniform(0.7, 1.3))
        own_p = p.base_err + (
            p.err_own[i]
            if p.err_version in (None, version) and p.err_resource in (None, resource)
            else 0
        )
        error, line = False, None
        if rng.random() < own_p:
            error = True
            make = p.error_maker(start + total)
            line = (
                make(rng, start + total)
                if make and own_p > p.base_err
                else messages.background_error(p, rng)
            )
        elif child_err is not None:
            error = True
            line = messages.upstream_error(p, w.p[child_err[0]], child_err[1], rng)
        tags = {
            "env": "prod",
            "span.kind": "server" if p.role in ("api", "gateway", "worker") else "client",
        }
        if version:
            tags["version"] = version
        if p.op == "http.request":
            tags["http.status_code"] = "200"
        if p.role == "db":
            tags["db.system"] = {"postgres": "postgresql"}.get(p.language, p.language)
        if error and line is not None:
            status, msg, attrs = line
            tags["error.type"] = str(attrs.get("error.kind") or "Error")
            tags["error.message"] = msg[:300]
            if p.op == "http.request":
                tags["http.status_code"] = str(
                    attrs.get(
                        "http.status_code", 504 if "timed out" in msg or "deadline" in msg else 500
                    )
                )
            if p.role in ("api", "gateway", "worker") and rng.random() < 0.7:
                self.logs.append((start + total, svc, line, version))
        record.update(
            {"duration": round(total, 5), "error": error, "tags": dict(sorted(tags.items()))}
        )
        return total, error, ""


def _style(p: Profile, child: str, default: str) -> str:
    for _, c, style in reversed(p.upstream):
        if c == child:
            return style
    return default


KEEP_OK = 0.16  # share of successful requests whose trace is kept
KEEP_ERROR = 0.9  # share of failed requests whose trace is kept (error sampler)


def render_traces(w: World) -> None:
    """Sample traces at a steady rate over the whole window; errors are kept more often."""
    rng = w.rng("traces", w.noise)
    roots = _roots(w)
    weights = [
        5.0 if w.p[r].role == "gateway" else 2.0 if r.endswith("-bff") else 1.0 for r in roots
    ]
    reachable = sorted(
        n for n in w.p if w.p[n].role not in ("topic", "cron") and (w.topo.callers.get(n) or n in roots)
    )
    clock = w.clock
    shapes: dict[str, _Shape] = {}
    t = clock.start + rng.uniform(0, 20)
    while t < clock.end - 1:
        dest = rng.choice(reachable)
        path = _path_to_root(w, dest, rng)
        if path[0] not in roots:
            root, forced = rng.choices(roots, weights)[0], []
        else:
            root, forced = path[0], path[1:]
        tr = _Trace(w, rng, shapes)
        dur, err, _ = tr.span(root, None, t, forced, 0)
        t += rng.uniform(12, 26)
        if tr.spans[0]["start"] + dur > clock.end:
            continue  # a request still in flight at "now" has no span yet
        if rng.random() >= (KEEP_ERROR if any(s["error"] for s in tr.spans) else KEEP_OK):
            continue
        w.spans.extend(tr.spans)
        for ts, svc, (status, msg, attrs), version in tr.logs:
            w.log(
                ts,
                svc,
                status,
                msg,
                {**attrs, **({"version": version} if version else {})},
                trace_id=tr.trace_id,
                rng=rng,
            )
