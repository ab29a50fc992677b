"""The policies of known skill, by name: offline SRE agents for ADK ``BaseLlm`` models.

The reference agents, from weakest to strongest:

* ``random_guess``   - lists the services, blames one at random (seeded by the incident).
* ``alert_blamer``   - blames the service of the monitor that paged.
* ``greedy_anomaly`` - blames the service whose errors grew most (falls for noisy neighbours).
* ``methodical``     - follows dependencies from the symptom to the earliest anomaly.

The first three are :mod:`mock_agents.baselines`, the last :mod:`mock_agents.methodical`
(with its weaker variants); the shortcut battery is :mod:`mock_agents.shortcuts`. All of them
build on :mod:`mock_agents.policy`; this module only names them. The memorisers
(:mod:`mock_agents.memoriser`, adversaries of fresh instances) are known by name only.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from .baselines import AlertBlamer, GreedyAnomaly, RandomGuess
from .methodical import VARIANTS, Methodical
from .policy import Policy, empty_diagnosis, safe_reply
from .shortcuts import SHORTCUTS
from .transcript import Transcript

__all__ = ["POLICY_NAMES", "Policy", "decide", "empty_diagnosis", "get_policy", "pool_names"]


@lru_cache(maxsize=1)
def _policies() -> dict[str, Policy]:
    reference = (RandomGuess(), AlertBlamer(), GreedyAnomaly(), Methodical())
    return {p.name: p for p in (*reference, *VARIANTS, *SHORTCUTS.values())}


#: the reference agents (served by ``python -m mock_agents serve``); the shortcut battery's
#: policies (:mod:`mock_agents.shortcuts`) and methodical's weaker variants
#: (:data:`mock_agents.methodical.VARIANTS`) are known to :func:`get_policy` as well
POLICY_NAMES: tuple[str, ...] = ("random_guess", "alert_blamer", "greedy_anomaly", "methodical")


def pool_names() -> tuple[str, ...]:
    """Every policy of known skill: the reference agents, methodical's variants and the
    shortcut battery (the agent pool difficulty tiers are fitted on)."""
    return tuple(_policies())


@lru_cache(maxsize=1)
def _by_name_only() -> dict[str, Policy]:
    """Adversaries known to :func:`get_policy` by name only: in no roster list (not the
    battery, not the pool). The memorisers (:mod:`mock_agents.memoriser`) know the stored
    labels by heart: in the battery they would make the audit report a leak of the label set."""
    from .memoriser import Memoriser, RecipeMemoriser

    return {p.name: p for p in (Memoriser(), RecipeMemoriser())}


def get_policy(name: str) -> Policy:
    policy = _policies().get(name) or _by_name_only().get(name)
    if policy is None:
        raise ValueError(
            f"unknown policy {name!r}; expected one of {', '.join([*_policies(), *_by_name_only()])}"
        )
    return policy


def decide(policy: Policy, contents: list[Any]) -> dict[str, Any]:
    """One reply of a policy to the conversation so far; never raises."""
    return safe_reply(policy, Transcript.from_contents(contents))
