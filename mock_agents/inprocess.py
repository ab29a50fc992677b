"""The mock policies as in-process targets of the proctor's real investigation loop.

:func:`policy_target` wraps a policy (``mock_agents.policies.get_policy``) in an
:class:`evaluator_agent.engine.local.LocalTarget`; :data:`ROSTER` names the reference agents,
the shortcut policies and the pool that calibration, the shortcut battery and tier fitting run.
"""

from __future__ import annotations

from typing import Any

from evaluator_agent.engine.local import LocalTarget, Message, ReplyFn, Roster

from .policies import get_policy, pool_names
from .policy import safe_reply
from .shortcuts import COMBINATION, SHORTCUT_NAMES
from .transcript import Transcript

REFERENCE_POLICIES: tuple[str, ...] = ("random_guess", "alert_blamer", "greedy_anomaly", "methodical")


def policy_reply(name: str) -> ReplyFn:
    """The reply function of a mock policy, read through :meth:`Transcript.from_messages`.
    Like the ADK model, a policy whose own logic trips answers with an empty diagnosis
    (:func:`~mock_agents.policy.safe_reply`) instead of failing the turn."""
    policy = get_policy(name)

    def reply(messages: list[Message]) -> dict[str, Any]:
        return safe_reply(policy, Transcript.from_messages(messages))

    return reply


def policy_target(name: str, *, floats: bool = True) -> LocalTarget:
    """A mock policy as an in-process target, named after the policy."""
    return LocalTarget(policy_reply(name), name, version="policy", floats=floats)


ROSTER = Roster(
    make_target=policy_target,
    references=REFERENCE_POLICIES,
    shortcuts=tuple(SHORTCUT_NAMES),
    combination=COMBINATION,
    pool=tuple(pool_names()),
)
