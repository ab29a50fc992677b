"""The walk of the ``methodical`` agent: from the paged service to where attribution stops.

Starting at the paged service, read its error lines of the last half hour against its own
baseline and find the dependency they name far more often than usual
(:func:`mock_agents.methodical_evidence.attribute`); go there and do the same. The walk stops
at a service whose errors are its own, at a dependency that cannot speak for itself (a
database, a cache, a partner API, a queue), or after ``max_hops``. When errors point nowhere
but the service got slow, it follows the latency instead: a direct dependency whose own
latency rose far more than the service's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .methodical_diagnosis import Facts
from .methodical_evidence import Attribution, Peer, attribute, series_points
from .methodical_reads import MethodicalReads
from .transcript import Transcript

MAX_HOPS = 7
LEAF_KINDS = {"database", "cache", "external", "queue"}
#: error lines per minute naming a dependency, above its baseline, to follow the errors there
FOLLOW_RATE = 0.25
#: ... and the share of the service's current error lines they must make up
FOLLOW_SHARE = 0.15
#: ... or this trickle, when it is most of what the service logs (slow dependencies time out rarely)
FOLLOW_TRICKLE = 0.08


@dataclass
class Step:
    """One hop of the walk: ``service``'s errors named ``peer`` (reported as ``style``)."""

    service: str
    peer: str
    style: str
    rate: float


class MethodicalWalk(MethodicalReads):
    """The walk down the dependencies, memoised per turn (``conv.memo["walk"]``)."""

    #: a knob the weaker variants turn: the longest walk
    max_hops = MAX_HOPS

    def attribution(self, conv: Transcript, service: str) -> Attribution | None:
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

    def walk(self, conv: Transcript) -> tuple[list[str], list[Step], bool]:
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
        self, conv: Transcript, service: str
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
        self, conv: Transcript, service: str
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

