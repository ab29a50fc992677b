"""Shortcut policies: the cheapest tricks an adversary would try, with no causal reasoning.

The shortcut battery (``proctor labels audit``) runs these through the real investigation loop
and scorer to measure how much of a label set's pass rate is available *without*
investigating. Each policy sees only the briefing and its tool results, like any target; none
follows dependencies to explain a symptom, compares hypotheses or times a propagation. Each is
written as an adversary who wants the highest pass rate for the least work, so they encode
what one learns by looking at a few generated worlds: which event sources, metric names, log
phrases, page titles and timestamp habits give the answer away. A label set on which one of
them scores well leaks its answers through that artifact.

Every policy answers a full diagnosis: an entity, a mechanism from the briefing's vocabulary,
a causal chain (the shortest dependency path from the entity up to the paged service, from the
graph the tools show), an onset (the generator's habit: ``fired_at - 240 s - 105 s`` per hop)
and the calls it used as evidence.

==================  ===================================================================
``lookup_table``     cheat sheet of artifacts: page title words, event sources and texts,
                     Kubernetes event reasons, metric names seen on one service, log phrases
                     -> mechanism; the artifact's service -> culprit (a handful of calls)
``keyword_grep``     searches the logs for each mechanism's signature phrases; blames the
                     earliest emitter, or the peer the line names (host, record, vendor)
``last_change``      the latest change event (deploy, config, flag, terraform, migration ...)
                     before the page on the paged service or below it; mechanism from its text
``metric_jump``      the (metric, service) series with the largest relative change against
                     its own baseline, over every metric; mechanism from the metric's name
``deepest_errors``   the erroring service deepest below the paged service
``trace_share``      the deepest service whose share of sampled spans jumped after the page
``loudest``          the service with the most error logs around the page
``first_alert``      the service of the earliest monitor to leave OK before the page
``rarest_artifact``  the service carrying a metric name, event source or Kubernetes event
                     reason that no other service has
``always_no_fault``  answers "no fault" every time
``paged_title``      blames the paged service with the mechanism its title suggests
``timestamp_tell``   the latest change event whose timestamp has a different precision from
                     most events (whole seconds among milliseconds)
``combo``            a cascade over the above, ordered by how often each trick is right
==================  ===================================================================

The cheat sheet is :mod:`mock_agents.shortcuts_rules`, the :class:`Shortcut` base (shared
calls, the chain, the diagnosis) :mod:`mock_agents.shortcuts_base`, the tricks
:mod:`mock_agents.shortcuts_artifacts` (one artifact) and :mod:`mock_agents.shortcuts_rankings`
(one signal ranked over the services); here are the cascade and the battery by name.
"""

from __future__ import annotations

from typing import Any

from .shortcuts_artifacts import (
    AlwaysNoFault,
    KeywordGrep,
    LastChange,
    LookupTable,
    PagedTitle,
    RarestArtifact,
    TimestampTell,
)
from .shortcuts_base import Shortcut, Verdict
from .shortcuts_rankings import DeepestErrors, FirstAlert, Loudest, MetricJump, TraceShare
from .transcript import Transcript


class Combo(Shortcut):
    """A cascade: each member's verdict in a fixed order of how often it is right; the first
    that names a culprit wins, and the mechanism is taken from the first member that has one
    for that culprit."""

    name = "combo"
    description = "A cascade over the other shortcuts, built to maximise the pass rate."
    #: most often right first (measured on core); metric_jump is left out: it costs forty
    #: queries and is right less often than the tricks before it
    order = ("lookup_table", "keyword_grep", "last_change", "timestamp_tell", "rarest_artifact",
             "trace_share", "deepest_errors", "paged_title")  # fmt: skip

    def members(self) -> list[Shortcut]:
        return [SHORTCUTS[n] for n in self.order]

    def calls(self, conv: Transcript) -> list[dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for m in self.members():
            for c in m.base_calls(conv) + m.calls(conv):
                out.setdefault(c["id"], c)
        return list(out.values())

    def verdict(self, conv: Transcript) -> Verdict | None:
        verdicts = []
        for m in self.members():
            try:
                v = m.verdict(conv)
            except Exception:  # noqa: BLE001 - one trick failing must not sink the cascade
                v = None
            verdicts.append(v)
        first = next((v for v in verdicts if v and (v.entity or v.no_fault)), None)
        if first is None or first.no_fault:
            return first
        if not first.mechanism:
            first.mechanism = next((v.mechanism for v in verdicts if v and v.entity == first.entity and v.mechanism), None)
        return first


SHORTCUT_CLASSES: tuple[type[Shortcut], ...] = (
    LookupTable, KeywordGrep, LastChange, MetricJump, DeepestErrors, TraceShare, Loudest,
    FirstAlert, RarestArtifact, AlwaysNoFault, PagedTitle, TimestampTell, Combo,
)  # fmt: skip
SHORTCUTS: dict[str, Shortcut] = {cls.name: cls() for cls in SHORTCUT_CLASSES}
SHORTCUT_NAMES: tuple[str, ...] = tuple(SHORTCUTS)
COMBINATION = "combo"
