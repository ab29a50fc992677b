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

The investigation is built in layers: the calls and the readers of their answers
(:mod:`mock_agents.methodical_reads`), the walk of step 2 (:mod:`mock_agents.methodical_walk`),
and here the examination of step 3, the plan of calls and the verdict. Weaker variants of the
same agent (four replies, no metrics, a two-hop walk, a signature count for the mechanism) are
at the end of the module, for the agent pool the difficulty tiers are fitted on.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .methodical_diagnosis import (
    BENIGN_KINDS,
    Facts,
    Frame,
    Hypothesis,
    benign_causes,
    hypotheses,
)
from .methodical_evidence import (
    LogWindow,
    Peer,
    event_kind,
    event_service,
    event_ts,
    named_peer,
    new_kinds,
    series_points,
)
from .methodical_walk import LEAF_KINDS, MethodicalWalk, Step
from .policy import allowed_mechanism, cite, fault_diagnosis, no_fault_diagnosis, root_cause
from .transcript import Transcript, iso

#: a hypothesis this well supported is a fault whatever else is going on
STRONG = 4.0
#: below this, nothing proves a fault
WEAK = 2.0
#: events worth citing about the culprit
EVIDENT_EVENTS = {"deploy", "config", "flag", "migration", "grant", "oom", "backoff", "dns_change"}


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


class Methodical(MethodicalWalk):
    name = "methodical"
    description = (
        "Follows the errors from the paged service to the dependency where attribution stops, "
        "then proves the mechanism by differential diagnosis against each signal's baseline; "
        "answers 'no fault' when nothing failed and a benign cause explains the page."
    )
    reserve = 2
    #: knobs the weaker variants turn (with ``use_metrics`` of the reads and ``max_hops`` of
    #: the walk): the budget of replies
    max_replies: int | None = None

    # ------------------------------------------------------------------ the evidence of one entity

    def entity_calls(
        self, conv: Transcript, service: str, logs: bool = True
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

    def facts(self, conv: Transcript, service: str, logs: bool = True) -> Facts:
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

    def related(self, conv: Transcript, service: str, caller: str | None) -> list[str]:
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
        self, conv: Transcript, path: list[str], steps: list[Step]
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

    def benign_calls(self, conv: Transcript, symptom: str) -> list[dict[str, Any]]:
        """For a page that stays on its own service: its datastores' state and callers
        (a batch job making its database busy)."""
        calls = []
        for d in self.neighbours(conv, symptom, "downstream") or []:
            if self.kind(conv, d) == "database":
                calls.append(self._deps(d))
                calls += self.entity_calls(conv, d, logs=True)
        return calls

    # ------------------------------------------------------------------ the plan

    def wanted(self, conv: Transcript) -> list[dict[str, Any]]:
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

    def examine(self, conv: Transcript) -> Examination:
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

    def caller_retries(self, conv: Transcript, caller: str, service: str) -> bool:
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

    def rank(self, conv: Transcript, f: Facts, frame: Frame) -> list[Hypothesis]:
        """Hypotheses about the entity where attribution stopped, best supported first."""
        return hypotheses(f, frame)

    def benign(self, conv: Transcript, f: Facts, frame: Frame) -> list[str]:
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

    def diagnose(self, conv: Transcript) -> dict[str, Any]:
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

    def _no_fault(self, conv: Transcript, benign: list[str], why: str) -> dict[str, Any]:
        orient = self._orient(conv)
        evidence = [cite(orient["errlogs"]["id"], f"{why}; nothing failed")]
        if benign:
            evidence.append(cite(orient["events"]["id"], f"benign cause: {benign[0]}"))
        cause = f" The page is explained by {benign[0]}." if benign else ""
        return no_fault_diagnosis(evidence, f"No fault: {why}.{cause}")

    def _fault(self, conv: Transcript, ex: Examination) -> dict[str, Any]:
        f, frame = ex.facts, ex.frame
        if f is None or not ex.hypotheses:
            return self._no_fault(conv, [], "nothing could be examined")
        best = ex.hypotheses[0]
        entity = best.entity or f.name
        # culprit first; a busy database beside the chain gives way to the cache behind it
        chain = [entity, *reversed(ex.path[:-1])] if entity != f.name else list(reversed(ex.path))

        def candidate(name: str, mechanism: str, confidence: float) -> dict[str, Any]:
            return root_cause(name, allowed_mechanism(conv, mechanism), confidence)

        root_causes = [candidate(entity, best.mechanism, 0.8)]
        for name, conf in ((f.name, 0.3), (ex.path[-2] if len(ex.path) > 1 else None, 0.1)):
            if name and name not in {r["entity"] for r in root_causes}:
                root_causes.append(candidate(name, best.mechanism, conf))
        onset = f.onset if f.onset is not None else frame.fired - 600
        evidence = [
            cite(
                self._logs(conv, s.service, "recent", errors=True)["id"],
                f"{s.service}'s errors name {s.peer} ({s.style}), "
                f"{s.rate:.2g}/min above its baseline"
                if s.style != "slow"
                else f"{s.service}'s dependency {s.peer} got {s.rate:.2g}x slower",
            )
            for s in ex.steps
        ]
        for k in sorted(f.new, key=lambda k: -f.new[k])[:3]:
            evidence.append(
                cite(
                    self._logs(conv, f.name, "recent", errors=False)["id"],
                    f"{f.name} logs {k} lines since the onset "
                    f"({f.new[k]:.2g}/min above its baseline)",
                )
            )
        changes = [e for e in f.events if event_kind(e) in EVIDENT_EVENTS]
        for e in changes[-5:]:
            evidence.append(
                cite(self._events_of(conv, f.name)["id"], f"{iso(event_ts(e))} {e.get('title')}")
            )
        plan = self.metric_plan(conv, f.name, f.kind)
        for key in f.metrics:
            evidence.append(
                cite(
                    self._query(conv, key, plan[key], f.name)["id"],
                    f"{f.name} {key}: {f.change(key, frame):.2g}x its baseline",
                )
            )
        why = "; ".join(best.reasons) or "the errors stop there"
        summary = (
            f"{entity} is the root cause ({best.mechanism}): {why}. Its failure starts at "
            f"{iso(onset)}. Propagation, as each caller's errors name its dependency: "
            f"{' -> '.join(chain)}."
        )
        return fault_diagnosis(
            root_causes,
            [{"source": a, "target": b} for a, b in zip(chain, chain[1:], strict=False)],
            iso(onset),
            evidence[:16],
            summary,
        )


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

    def rank(self, conv: Transcript, f: Facts, frame: Frame) -> list[Hypothesis]:
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
