"""Recreations of public postmortems: the causal story of each, not just its name.

A recipe's ``postmortem`` names one of :data:`STORIES`. The story constrains where the
incident can start (the culprit's role, the chain) and the mechanism reads ``plan.story`` to
follow the postmortem's sequence of events. What each recreation keeps from its postmortem
(facts adapted, not copied; see ``shared/INCIDENTS.md``) is listed in its ``elements`` and
asserted by ``tests/test_postmortems.py`` on the generated world:

- ``aws-dynamodb-dns-2025``: two DNS automation workers race; a delayed one applies an older
  plan over a newer one, and the cleanup of old plans then deletes the record set of a
  database endpoint. Every client of that database fails to resolve it; consumers that depend
  on it build a backlog that takes long to drain.
- ``cloudflare-waf-2019``: a new WAF rule whose regular expression backtracks catastrophically
  is pushed to the edge proxy; its CPU goes to the limit on every pod and the edge answers
  errors and timeouts for everything behind it, so the backends see their traffic fall.
- ``cloudflare-bot-management-2025``: a database permissions change makes the query that
  builds a feature file return every row twice; the file the generator publishes every five
  minutes doubles past its consumer's limit and the consumer panics loading it. While the
  change rolls across database nodes, good and bad files alternate, so errors come and go in
  five-minute waves before they stay.
- ``crowdstrike-2024``: a content update ships a template with 21 input fields to consumers
  whose interpreter expects 20; they crash loading it, and crash again on every restart.
- ``knight-capital-2012``: a deploy reaches every instance but one; a feature flag whose name
  an old, retired code path still reads is reused for new code and switched on; only the
  instance still running the old version executes the dead code and fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from evaluator_agent.worldgen.topology import Topo


@dataclass(frozen=True)
class Story:
    id: str
    title: str
    mechanism: str
    elements: tuple[str, ...]
    culprit: Callable[[Topo, str], bool] | None = None
    chain: tuple[int, int] | None = None  # (min, max) entities on the causal chain
    knobs: dict[str, object] = field(default_factory=dict)


def _gateway(topo: Topo, name: str) -> bool:
    return topo.role(name) == "gateway"


def _database(topo: Topo, name: str) -> bool:
    """A database some consumer depends on (its backlog is part of the story)."""
    return topo.role(name) == "db" and any(
        topo.role(c) == "worker" for c in topo.callers.get(name, [])
    )


STORIES: dict[str, Story] = {
    s.id: s
    for s in (
        Story(
            "aws-dynamodb-dns-2025",
            "AWS us-east-1 DynamoDB DNS race leaves an empty record, Oct 2025",
            "dns_failure",
            (
                "an older DNS plan is applied after a newer one",
                "the cleanup of old plans empties a database endpoint's record set",
                "every direct client of the database fails to resolve it",
                "consumers that depend on it build a backlog",
            ),
            culprit=_database,
        ),
        Story(
            "cloudflare-waf-2019",
            "Cloudflare WAF rule with catastrophic backtracking exhausts edge CPU, Jul 2019",
            "cpu_throttling",
            (
                "a WAF rule with a backtracking regular expression is pushed to the edge proxy",
                "the edge proxy's CPU reaches its limit",
                "the edge answers errors and timeouts for everything behind it",
                "backends see their traffic fall",
            ),
            culprit=_gateway,
            chain=(1, 1),
        ),
        Story(
            "cloudflare-bot-management-2025",
            "Cloudflare bot-management feature file doubles after a permissions change, Nov 2025",
            "bad_data",
            (
                "a database permissions change precedes the failure",
                "the published feature file doubles in size",
                "the consumer fails loading it in five-minute waves before the failure stays",
            ),
        ),
        Story(
            "crowdstrike-2024",
            "CrowdStrike content update with a field-count mismatch crashes its consumers, Jul 2024",
            "bad_data",
            (
                "a content update is released by the producer",
                "consumers expect 20 input fields and get 21",
                "consumers crash and restart over and over",
            ),
        ),
        Story(
            "knight-capital-2012",
            "Knight Capital partial deploy and a reused flag that wakes dead code, Aug 2012",
            "feature_flag",
            (
                "a deploy leaves one instance on the old version",
                "a reused feature flag is switched on after the deploy",
                "errors come only from the instance still on the old version",
            ),
        ),
    )
}


def story(story_id: str | None) -> Story | None:
    if story_id is None:
        return None
    try:
        return STORIES[story_id]
    except KeyError:
        raise ValueError(
            f"unknown postmortem {story_id!r}; known: {', '.join(sorted(STORIES))}"
        ) from None
