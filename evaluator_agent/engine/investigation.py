"""One investigation: one label, one attempt, one A2A conversation with the target.

The loop: briefing -> (tool_calls -> tool_results)* -> diagnosis, bounded by the label's
budget. Whatever the target does, :func:`investigate` returns an
:class:`InvestigationResult` with an ``end_reason``; it never raises for the target's sake.

End reasons and whose fault they are (``error_kind``):

    diagnosis            agent answered                         None (scored)
    max_turns            budget of replies used up              None (scored as no answer)
    timeout              wall-time cap reached                  None
    turn_timeout         one reply took longer than allowed     None
    malformed_replies    3 unusable replies in a row            None
    reply_too_large      a reply over the size cap              None
    target_error         target task failed / protocol broken   None
    target_unreachable   connection refused, DNS, reset ...     "network" before the target's first
                                                                reply of the run, else None
    unscorable_diagnosis the scorer failed on this diagnosis    None       (logged as our bug)
    harness_error        a bug or missing data on our side      "harness"  (not the agent's fault)

Infra errors (network, harness) are counted apart and never as agent failures. Only the
proctor's own faults and a target that has not answered anything yet in this run are infra
errors: whatever the target does once it has replied at least once in the run (a connection
dropped mid-reply, a reset, a timeout, garbage, a body over a cap, a diagnosis the scorer
chokes on) is a failure of that investigation, scored 0 and counted in the pass rate, with
its end reason kept. Otherwise a target could take the labels it cannot solve out of the
pass-rate denominator by hanging up on them. Whether the target has replied yet is shared
by the investigations of one run through a :class:`RunContact`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from evaluator_agent.core.labels import Label
from evaluator_agent.core.protocol import (
    Briefing,
    Budget,
    Diagnosis,
    DiagnosisReply,
    ReplyError,
    ToolCallsReply,
    ToolResult,
    ToolResultsMessage,
    briefing_text,
    parse_reply,
    tool_results_text,
)
from evaluator_agent.core.records import (
    InvestigationResult,
    ToolCallRecord,
    TurnRecord,
)
from evaluator_agent.datadog import observability
from evaluator_agent.engine.briefing import build_briefing
from evaluator_agent.engine.conversation import (
    Conversation,
    ConversationTarget,
    TargetError,
    TargetUnavailable,
)
from evaluator_agent.engine.surfaces import A2A, SurfaceConfig, SurfaceSession
from evaluator_agent.engine.worlds import WorldCache

log = logging.getLogger(__name__)

MAX_CONSECUTIVE_MALFORMED = 3
RESULT_PREVIEW_CHARS = 2000


@dataclass
class RunContact:
    """Whether the target has sent any reply yet in this run; shared by the run's investigations.

    A target that cannot be reached before its first reply of the run may be down, or the
    network between us may be: that is an infra error. Once it has replied, losing it is
    the target's failure (see the module docstring)."""

    replied: bool = False


async def investigate(
    label: Label,
    attempt: int,
    target: ConversationTarget,
    worlds: WorldCache,
    limits: Budget,
    *,
    noise: str = "on",
    contact: RunContact | None = None,
    surfaces: SurfaceConfig | None = None,
) -> InvestigationResult:
    """Run one investigation to its end; returns the scored result.

    ``contact`` is the run's :class:`RunContact` (one per run, shared by its investigations);
    without it the investigation is its own run: a target unreachable on its first turn is an
    infra error, one lost after a reply is a failure.

    ``target`` is anything with the :class:`~evaluator_agent.engine.conversation.ConversationTarget` shape: an A2A
    :class:`~evaluator_agent.engine.target.Target`, or an in-process
    :class:`~evaluator_agent.engine.local.LocalTarget` (the shortcut battery and calibration);
    both get the same briefing, limits, tools, scoring and records.

    ``surfaces`` offers the tools out of band too (MCP, the Datadog REST facade; surfaces.py):
    the briefing then carries a credential for this investigation only, closed when it ends.
    """
    inv_id = f"inv_{uuid.uuid4().hex[:16]}"
    conv = target.conversation()
    res = InvestigationResult(
        investigation_id=inv_id, label_id=label.id, attempt=attempt, context_id=conv.context_id, started_at=time.time()
    )
    trace = observability.get().investigation(label, attempt, target.info, res)
    session: SurfaceSession | None = None
    try:
        digest = label.world.snapshot
        if noise == "off":
            if not label.world.snapshot_noise_free:
                raise LookupError(f"label {label.id} has no noise-free world")
            digest = label.world.snapshot_noise_free
        res.world = digest
        index, header = await worlds.get(digest)
        from evaluator_agent.telemetry.tools import Toolbox

        toolbox = Toolbox(index, now=float(header["end"]))
        budget = limits.effective(label.task.budget)
        calls = CallLog(res)
        offered = surfaces.offered if surfaces is not None else frozenset((A2A,))
        if offered - {A2A}:
            session = surfaces.registry.open(toolbox, offered=offered, max_calls=budget.max_turns * budget.max_calls_per_turn,
                                             record=calls.record, now=float(header["end"]), key=surfaces.key)
        briefing = build_briefing(label, header, budget, inv_id)
        if session is not None:
            briefing.surfaces = surfaces.briefing(session)
            briefing.in_band_tools = A2A in offered
        trace.briefing(briefing)
        diagnosis = await _converse(conv, briefing, toolbox, budget, res, calls, contact or RunContact(), session)
        if session is not None:
            surfaces.registry.close(session)  # before scoring: no call can land after the diagnosis is judged
        with trace.scoring():
            _score_or_fail(label, diagnosis, res, calls.viewed)
    except asyncio.CancelledError:
        raise
    except Exception as e:  # noqa: BLE001 - our own failure must end only this investigation
        log.exception("harness error in %s (label %s)", inv_id, label.id)
        res.end_reason = "harness_error"
        res.error_kind = "harness"
        res.error = f"{type(e).__name__}: {e}"[:1000]
    finally:
        if session is not None and surfaces is not None:
            surfaces.registry.close(session)
    res.finished_at = time.time()
    trace.finish()
    return res


async def _converse(
    conv: Conversation, briefing: Briefing, toolbox: Any, budget: Budget, res: InvestigationResult, calls: CallLog,
    contact: RunContact, session: SurfaceSession | None,
) -> Diagnosis | None:
    deadline = time.monotonic() + budget.timeout_s
    data: dict[str, Any] = briefing.model_dump(mode="json")
    text = briefing_text(briefing)
    malformed = 0
    for turn in range(1, budget.max_turns + 1):
        calls.turn = turn  # out-of-band calls made while the target works on this reply count to it
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            res.end_reason = "timeout"
            return None
        t0 = time.monotonic()
        wall_bound = remaining < budget.turn_timeout_s
        try:
            reply = await conv.send(data, text, min(budget.turn_timeout_s, remaining))
        except TargetError as e:
            res.turns = turn
            res.turn_records.append(TurnRecord(turn, "error", 0, time.monotonic() - t0, error=str(e)[:500]))
            res.error = str(e)[:1000]
            if isinstance(e, TargetUnavailable):
                # Infra only while the target has never answered in this run; after a reply,
                # hanging up (or resetting, or vanishing) is the target's failure.
                res.end_reason = "target_unreachable"
                res.error_kind = None if contact.replied else "network"
            elif e.kind == "timeout":
                res.end_reason = "timeout" if wall_bound else "turn_timeout"
            elif e.kind == "too_large":
                res.end_reason = "reply_too_large"
            else:
                res.end_reason = "target_error"
            return None
        contact.replied = True
        res.turns = turn
        elapsed = time.monotonic() - t0
        _add_usage(res, reply.obj)
        try:
            if reply.obj is None:
                raise ReplyError('no JSON object with "tool_calls" or "diagnosis" found in the reply')
            parsed = parse_reply(reply.obj)
        except ReplyError as e:
            malformed += 1
            res.turn_records.append(TurnRecord(turn, "invalid", reply.size, elapsed, error=str(e)[:500]))
            if malformed >= MAX_CONSECUTIVE_MALFORMED:
                res.end_reason = "malformed_replies"
                res.error = str(e)[:1000]
                return None
            msg = ToolResultsMessage(
                tool_results=[], turn=turn, remaining_turns=budget.max_turns - turn,
                notice=f"Your reply could not be used: {e}. Reply with tool_calls or a diagnosis as JSON.",
            )
            data, text = msg.model_dump(mode="json", exclude_none=True), tool_results_text(msg)
            continue
        malformed = 0
        if isinstance(parsed, DiagnosisReply):
            res.turn_records.append(TurnRecord(turn, "diagnosis", reply.size, elapsed))
            res.end_reason = "diagnosis"
            res.diagnosis = parsed.diagnosis.model_dump(mode="json")
            return parsed.diagnosis
        assert isinstance(parsed, ToolCallsReply)
        results = _run_tools(parsed, toolbox, budget, turn, res, calls, session, briefing.in_band_tools)
        res.turn_records.append(TurnRecord(turn, "tool_calls", reply.size, elapsed, n_calls=len(parsed.tool_calls)))
        left = budget.max_turns - turn
        msg = ToolResultsMessage(
            tool_results=results, turn=turn, remaining_turns=left,
            notice="Last reply: send your diagnosis now." if left == 1 else None,
        )
        data, text = msg.model_dump(mode="json", exclude_none=True), tool_results_text(msg)
    res.end_reason = "max_turns"
    return None


_USAGE_KEYS = ("input_tokens", "output_tokens", "total_tokens")


def _add_usage(res: InvestigationResult, obj: dict[str, Any] | None) -> None:
    """Accumulate the optional ``usage`` a target may report beside its reply:
    ``{"usage": {"input_tokens": 812, "output_tokens": 95, "cost_usd": 0.0031}}``."""
    usage = obj.get("usage") if isinstance(obj, dict) else None
    if not isinstance(usage, dict):
        return
    acc = res.tokens if res.tokens is not None else {}
    for key in (*_USAGE_KEYS, "cost_usd"):
        v = usage.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v < 1e12:
            acc[key] = acc.get(key, 0) + (float(v) if key == "cost_usd" else int(v))
    if acc:
        res.tokens = acc


class CallLog:
    """The tool calls of one investigation, whatever their surface: each becomes a
    :class:`ToolCallRecord`, a Datadog span, and evidence the scorer sees (``viewed``)."""

    def __init__(self, res: InvestigationResult):
        self.res = res
        self.viewed: list[tuple[str, dict[str, Any], bool, str]] = []
        self.turn = 0
        self._n = 0

    def record(self, surface: str, tool: str, arguments: Any, outcome: Any, dt_ms: float, call_id: str | None = None) -> None:
        from evaluator_agent.telemetry.tools import stored_arguments

        res = self.res
        self._n += 1
        body = json.dumps(outcome.content, default=str, separators=(",", ":")) if outcome.ok else (outcome.error or "")
        res.tool_calls += 1
        res.calls_by_surface[surface] = res.calls_by_surface.get(surface, 0) + 1
        if not outcome.ok:
            res.invalid_calls += 1
        kept = stored_arguments(arguments if isinstance(arguments, dict) else {})  # oversized: size, hash, prefix
        record = ToolCallRecord(self.turn, call_id or f"{surface}_{self._n}", tool, kept, outcome.ok, outcome.error,
                                len(body), round(dt_ms, 3), body[:RESULT_PREVIEW_CHARS], surface)
        res.call_records.append(record)
        observability.get().tool_call(record)
        self.viewed.append((tool, kept, outcome.ok, body))


def _run_tools(
    reply: ToolCallsReply, toolbox: Any, budget: Budget, turn: int, res: InvestigationResult, calls: CallLog,
    session: SurfaceSession | None, in_band: bool,
) -> list[ToolResult]:
    out: list[ToolResult] = []
    for i, call in enumerate(reply.tool_calls):
        call_id = call.id or f"call_{turn}_{i + 1}"
        refused = None
        if not in_band:
            refused = "in-band tool calls are not offered in this evaluation; use the surfaces in the briefing"
        elif i >= budget.max_calls_per_turn:
            refused = f"more than {budget.max_calls_per_turn} calls in one reply; call skipped"
        elif session is not None and not session.count():
            refused = f"the investigation's budget of {session.max_calls} tool calls is used up"
        if refused is not None:
            out.append(ToolResult(id=call_id, ok=False, error=refused))
            res.invalid_calls += 1
            continue
        t0 = time.perf_counter()
        outcome = toolbox.call(call.name, call.arguments)
        dt = (time.perf_counter() - t0) * 1000
        with session.recording() if session is not None else contextlib.nullcontext():
            calls.record(A2A, call.name, call.arguments, outcome, dt, call_id)
        if outcome.ok:
            out.append(ToolResult(id=call_id, ok=True, content=outcome.content))
        else:
            out.append(ToolResult(id=call_id, ok=False, error=outcome.error))
    return out


def _score_or_fail(label: Label, diagnosis: Diagnosis | None, res: InvestigationResult, raw_viewed: list[Any]) -> None:
    """Score; a scorer failure on the target's diagnosis is that investigation's failure.

    The scorer is total (tests/test_scoring_total.py); should it still raise on some
    diagnosis, the target must not gain from it: the label is scored as if no diagnosis came
    (that path raising means the fault is ours: a harness error), the investigation fails
    with ``unscorable_diagnosis``, and the exception is logged as the bug it is."""
    try:
        _score(label, diagnosis, res, raw_viewed)
        return
    except Exception as e:  # noqa: BLE001
        if diagnosis is None:
            raise
        failure = e
    log.error("scorer failed on the diagnosis of %s (label %s)", res.investigation_id, label.id, exc_info=failure)
    _score(label, None, res, raw_viewed)  # raises (a harness error) when the label itself cannot be scored
    res.end_reason = "unscorable_diagnosis"
    res.error = f"scorer failed on the diagnosis: {type(failure).__name__}: {failure}"[:1000]
    res.explanation = f"The diagnosis could not be scored ({type(failure).__name__}); counted as a failure. " + res.explanation


def _score(label: Label, diagnosis: Diagnosis | None, res: InvestigationResult, raw_viewed: list[Any]) -> None:
    from evaluator_agent.engine.scoring import (
        ViewedResult,
        red_herrings_chased,
        score_investigation,
    )

    viewed = [ViewedResult(tool=n, arguments=a, ok=ok, text=t) for n, a, ok, t in raw_viewed]
    sr = score_investigation(label, diagnosis, viewed)
    res.score, res.passed, res.subscores = sr.score, sr.passed, dict(sr.subscores)
    res.explanation, res.score_details = sr.explanation, dict(sr.details)
    res.red_herrings_chased = red_herrings_chased(label, viewed)
