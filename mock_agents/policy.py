"""What every policy builds on: the :class:`Policy` base, the diagnosis it writes, the page.

A policy is stateless. Each turn it rebuilds the investigation from ``llm_request.contents``
(:mod:`mock_agents.transcript`), works out which tool calls it still wants given what it
knows, and either asks for them or writes its diagnosis. Tool call ids are derived from the
call itself, so the answer to any earlier call can be found again in the history.

The concrete policies (:mod:`mock_agents.baselines`, :mod:`mock_agents.methodical`,
:mod:`mock_agents.shortcuts`) import this module; :mod:`mock_agents.policies` names them all.
"""

from __future__ import annotations

import logging
from typing import Any

from .signals import as_list, monitor_service
from .transcript import Transcript, parse_time

logger = logging.getLogger(__name__)


class Policy:
    """Wanted calls given what is known; a diagnosis once nothing more is wanted or affordable."""

    name = "policy"
    description = ""
    #: replies kept in hand: at ``remaining <= reserve`` the policy answers with what it has
    reserve = 1

    def wanted(self, conv: Transcript) -> list[dict[str, Any]]:
        raise NotImplementedError

    def diagnose(self, conv: Transcript) -> dict[str, Any]:
        raise NotImplementedError

    def reply(self, conv: Transcript) -> dict[str, Any]:
        if not conv.briefing:
            return {
                "diagnosis": empty_diagnosis(
                    "No incident-proctor briefing found in this conversation."
                )
            }
        if conv.remaining > self.reserve:
            offered = conv.tool_names
            pending = [
                c
                for c in self.wanted(conv)
                if not conv.issued(c["id"]) and (not offered or c["name"] in offered)
            ]
            if pending:
                return {"tool_calls": pending[: conv.max_calls]}
        return {"diagnosis": self.diagnose(conv)}


def safe_reply(policy: Policy, conv: Transcript) -> dict[str, Any]:
    """``policy``'s reply to the conversation; a policy whose own logic trips answers with an
    empty diagnosis instead of failing the turn (a mock agent must answer)."""
    try:
        return policy.reply(conv)
    except Exception as e:  # a mock agent must answer, even when its own logic trips
        logger.exception("policy %s failed", policy.name)
        return {
            "diagnosis": empty_diagnosis(f"policy {policy.name} failed: {type(e).__name__}: {e}")
        }


# --------------------------------------------------------------------------- the diagnosis


def empty_diagnosis(summary: str) -> dict[str, Any]:
    return {
        "no_fault": False,
        "root_causes": [],
        "causal_chain": [],
        "evidence": [],
        "summary": summary,
    }


def no_fault_diagnosis(evidence: list[dict[str, Any]], summary: str) -> dict[str, Any]:
    """The answer "nothing failed", with the calls that show it."""
    return {
        "no_fault": True,
        "root_causes": [],
        "causal_chain": [],
        "evidence": evidence,
        "summary": summary,
    }


def fault_diagnosis(
    root_causes: list[dict[str, Any]],
    causal_chain: list[Any],
    onset: str,
    evidence: list[dict[str, Any]],
    summary: str,
) -> dict[str, Any]:
    """A fault: the candidates (best first), how it spread, when it started, what shows it."""
    return {
        "no_fault": False,
        "root_causes": root_causes,
        "causal_chain": causal_chain,
        "onset": onset,
        "evidence": evidence,
        "summary": summary,
    }


def root_cause(entity: str, mechanism: str | None, confidence: float) -> dict[str, Any]:
    """One candidate of a diagnosis's ``root_causes``."""
    return {"entity": entity, "mechanism": mechanism, "confidence": confidence}


def cite(call_id: str, description: str) -> dict[str, Any]:
    """One item of a diagnosis's evidence: the tool call and what its answer showed."""
    return {"tool_call_id": call_id, "description": description}


def allowed_mechanism(conv: Transcript, mechanism: str | None) -> str | None:
    allowed = conv.mechanisms
    if mechanism and allowed and mechanism not in allowed:
        return None
    return mechanism


# --------------------------------------------------------------------------- the page


def paging_monitor(conv: Transcript, monitors: list[Any]) -> dict[str, Any] | None:
    """The monitor that paged: the briefing's, else the alerting one that fired closest to the page."""
    if conv.monitor and monitor_service(conv.monitor):
        return conv.monitor
    alerting = [
        m for m in monitors if isinstance(m, dict) and str(m.get("state", "")).lower() == "alert"
    ]
    if not alerting:
        return conv.monitor
    title = str(conv.problem.get("title") or "").lower()
    fired = conv.fired_at.timestamp()

    def key(m: dict[str, Any]) -> tuple[int, float, str]:
        named = 0 if m.get("name") and str(m["name"]).lower() in title else 1
        times = [
            abs(t.timestamp() - fired)
            for tr in as_list(m.get("transitions"))
            if isinstance(tr, dict)
            and str(tr.get("to", "")).lower() == "alert"
            and (t := parse_time(tr.get("ts") or tr.get("timestamp"))) is not None
        ]
        return named, min(times, default=float("inf")), str(m.get("id"))

    return min(alerting, key=key)
