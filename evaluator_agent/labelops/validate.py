"""``proctor labels validate``: a deterministic, offline validator of pending candidates.

For each pending candidate whose draft names a world snapshot, the world is loaded and the
candidate grounded in it through the same ten tools an agent has (``grounding.World``):

1. the paged service: the trigger monitor's ``service:`` tag (else the title, else the draft's
   first symptom);
2. the claimed root cause: the draft's root-cause entity resolved against the catalog (exact,
   then fragments, then kind words); without one, the claim text (the user's words) resolved
   the same way, and the root cause searched downstream of it (or of the paged service): the
   deepest anomalous service, preferring one whose changes match a hint of the claim ("after
   the deploy"). A root cause found by search, not named, lowers specificity and says so;
3. the causal chain: the shortest path of downstream edges from the paged service to the root
   cause, written root cause first;
4. key evidence: tool queries that returned it (rising error logs, a change event, a metric
   that moved), recorded in the draft in the ``KeyEvidence`` shape;
5. the onset when missing: the earliest change event, else the first error log, else the first
   moved metric point of the root cause in the window;
6. scores: thoroughness (independent evidence kinds found), specificity (entity and mechanism
   named exactly vs guessed), accuracy (the claim agrees with the world: evidence on the
   claimed entity, on a path from the page, no stronger culprit elsewhere; contradicting flags
   of the draft lower it). Confidence is their weighted mean, capped by accuracy when accuracy
   is low. At or above the threshold the candidate is marked validated (still pending a human's
   acceptance: never accepted here); below it, it stays for review with the reasons.

No LLM is needed; none is used.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from evaluator_agent.core.clock import iso, parse_utc
from evaluator_agent.core.labels import Label, snapshots_dir
from evaluator_agent.engine.worlds import WorldCache
from evaluator_agent.labelops.candidate import Candidate, Score, Validation, ValidationScores
from evaluator_agent.labelops.checks import CheckFinding, lint_candidate, shortcut_audit
from evaluator_agent.labelops.drafting import derive, mechanism_of, problems
from evaluator_agent.labelops.grounding import World, hint_of
from evaluator_agent.labelops.investigator import Finding, Investigator, run_async
from evaluator_agent.labelops.queue import Queue, QueueError
from evaluator_agent.telemetry.index import WorldIndex
from evaluator_agent.telemetry.tools import Toolbox

VALIDATOR = "proctor-grounding 1 (deterministic)"
DEFAULT_THRESHOLD = 0.7
#: draft flags that mean the input contradicts itself
_CONTRA = frozenset({"right_with_correction", "wrong_but_correction_matches", "partly_but_correction_matches",
                     "no_fault_with_root_cause", "right_without_diagnosis", "comment_disagrees"})


#: mechanisms that need a change of the root cause, and the words that name it
_MECH_CHANGE: dict[str, tuple[str, ...]] = {
    "bad_release": ("deploy", "release", "rollout"), "feature_flag": ("flag",),
    "crashloop_bad_config": ("config",), "slow_query_migration": ("migration",),
}




#: the most confidence a root cause found by the second investigation alone can get: the
#: investigator can be wrong (the reference policy misses ~2-5% of core worlds), and a claim
#: that names nothing cannot contradict it; with a service or a change of the claim matching, a
#: little more. High confidence (above these) needs the user's own words to name the culprit.
CAP_CLAIMLESS = 0.8
CAP_HINTED = 0.85
#: a named claim the second investigation contradicts: below any sensible threshold, for a reviewer
CAP_DISAGREE = 0.6


@dataclass
class Outcome:
    candidate_id: str
    status: str  # validated | review | skipped | error
    confidence: float | None = None
    root_cause: str | None = None
    reasons: list[str] = field(default_factory=list)
    seconds: float = 0.0


class Validator:
    def __init__(self, snapshots: Path | None = None, threshold: float = DEFAULT_THRESHOLD,
                 investigator: Investigator | None = None, shortcuts: Any = None, lint: bool = True):
        """``investigator`` investigates each world a second time (``investigator.py``);
        ``shortcuts`` (a ``Roster``) runs the shortcut battery on each grounded label and
        ``lint`` the per-label lint checks (``checks.py``)."""
        self.snapshots = snapshots or snapshots_dir()
        self.threshold = threshold
        self.investigator = investigator
        self.shortcuts = shortcuts
        self.lint = lint
        # one LRU-bounded cache of loaded worlds for the grounding and the shortcut battery (a queue
        # may span thousands of worlds: keeping every one loaded would grow without bound)
        self._cache = WorldCache(self.snapshots, capacity=4)

    def _index(self, snapshot: str) -> tuple[WorldIndex, float]:
        index, header = run_async(lambda: self._cache.get(snapshot))
        return index, float(header["end"])

    # ------------------------------------------------------------------ one candidate

    def ground(self, c: Candidate) -> tuple[Validation, dict[str, Any], str | None]:
        """The validation of one candidate, its grounded draft and the root cause found."""
        t_start = time.perf_counter()
        basis, assumed = c.claim_draft()
        draft = _copy(basis)
        world_ref = draft.get("world") or {}
        idx, end = self._index(world_ref["snapshot"])
        trig = (draft.get("task") or {}).get("trigger") or {}
        page = parse_utc(trig.get("fired_at"))
        if page is None:
            raise ValueError("the draft has no page time (task.trigger.fired_at)")
        win = world_ref.get("incident_window") or {}
        base = world_ref.get("baseline_window") or {}
        t0 = (parse_utc(win.get("start")) or page - timedelta(minutes=30)).timestamp()
        t1 = (parse_utc(win.get("end")) or page + timedelta(minutes=10)).timestamp()
        b0 = (parse_utc(base.get("start")) or datetime.fromtimestamp(t0, UTC) - timedelta(hours=3)).timestamp()
        b1 = (parse_utc(base.get("end")) or datetime.fromtimestamp(t0, UTC) - timedelta(minutes=10)).timestamp()
        w = World(Toolbox(idx, now=end), (t0, t1), (b0, b1))
        gt = draft.setdefault("ground_truth", {})
        thor: list[str] = []
        spec: list[str] = []
        acc: list[str] = []
        s_spec, s_acc = 1.0, 0.9
        resolved: list[str] = []
        cap = 1.0
        codes = {f.code for f in c.flags}

        paged, why = w.paged_service(trig.get("monitor_id"), str(trig.get("title") or ""), gt.get("first_symptom"))
        spec.append(f"paged service: {paged or 'unknown'} ({why})")
        if paged is None:
            s_spec -= 0.3

        rcs = gt.get("root_causes") if isinstance(gt.get("root_causes"), list) else []
        claimed = rcs[0].get("entity") if rcs and isinstance(rcs[0], dict) else None
        root: str | None = None
        hint = hint_of(c.claim)
        contra = codes & _CONTRA
        if contra:
            s_acc -= 0.35
            acc.append(f"the input contradicts itself ({', '.join(sorted(contra))})")

        finding = self._second_opinion(draft)
        if finding is not None:
            thor.append(f"second investigation {finding.describe()}; {finding.turns} turns, {finding.tool_calls} tool "
                        f"calls, {finding.seconds:.2f} s")
        if gt.get("no_fault"):
            return self._no_fault(c, w, paged, draft, thor, spec, acc, s_acc, t_start, finding)

        if claimed:
            root, how = w.resolve(claimed, near=paged)
            if root is None:
                s_spec -= 0.5
                s_acc -= 0.4
                spec.append(f"the claimed root cause {claimed[:80]!r} names no service of the world")
            elif how in ("exact", "named"):
                spec.append(f"root cause {root}: named {'exactly' if how == 'exact' else 'in full'}")
            else:
                s_spec -= 0.2
                spec.append(f"root cause {claimed[:80]!r} resolved to {root} by {how}")
            if root is not None and finding is not None and finding.answered:
                s_acc, agrees = self._compare(finding, root, w, paged, gt, acc, spec, s_acc)
                if not agrees:
                    cap = CAP_DISAGREE
        if root is None:
            start, how = (w.resolve(c.claim, near=paged) if c.claim else (None, "none"))
            if start is not None:
                spec.append(f"the claim names {start} ({how})")
            found_root, d_spec, d_acc = self._resolve_by_investigation(c, finding, w, paged, start, hint, gt, spec, acc)
            if found_root is not None:
                root = found_root
                cap = CAP_HINTED if (start is not None or hint is not None) else CAP_CLAIMLESS
                s_spec -= d_spec
                s_acc -= d_acc
                resolved += sorted(codes & {"wrong_without_correction", "claim_to_resolve", "correction_without_entity"})
            start = start or paged
            if root is None and start is not None:
                found, why2 = w.suspect(start, hint)
                if found is not None:
                    root = found
                    s_spec -= 0.4 if not hint else 0.25
                    spec.append(f"root cause not named: found by search ({'; '.join(why2)})"
                                + (f", matching the claim's {hint!r}" if hint else ""))
                    resolved += sorted(codes & {"wrong_without_correction", "claim_to_resolve", "correction_without_entity"})
                else:
                    spec.extend(why2)
            if root is None:
                s_spec = min(s_spec, 0.2)
                s_acc = min(s_acc, 0.3)
                acc.append("no root cause could be resolved from the claim or the world")

        # the claim against the evidence
        n_kinds = 0
        if root is not None:
            ev = w.evidence(root)
            n_kinds = ev.score
            chain = self._their_chain(finding, w, paged, root) or (w.path(paged, root) if paged else None)
            if chain is None:
                s_acc -= 0.4
                acc.append(f"{root} is not downstream of the paged service {paged}: no causal path")
                chain = [root] + ([paged] if paged and paged != root else [])
            else:
                acc.append(f"causal path {' -> '.join(chain)} along downstream edges")
                quiet = [x for x in chain[1:-1] if w.evidence(x).score == 0]
                if quiet:
                    s_acc -= min(0.45, 0.15 * len(quiet))
                    acc.append(f"no anomaly on the way: {', '.join(quiet)} show nothing between the page and {root}")
            if paged is not None and paged != root and w.evidence(paged).score == 0:
                s_acc -= 0.15
                acc.append(f"the paged service {paged} shows no anomaly of its own in the window")
            if ev.score == 0:
                s_acc -= 0.45
                acc.append(f"{root} shows no rising errors, no change and no moved metric in the incident window")
            else:
                acc.append(f"{root} has its own evidence ({ev.score} kind(s))")
            if paged is not None:
                other, _ = w.suspect(paged, hint)
                if other is not None and other != root and other not in chain and w.evidence(other).score > ev.score:
                    s_acc -= 0.1  # the search is a heuristic: a hint for the reviewer more than a verdict
                    acc.append(f"{other}, downstream of the page, shows more evidence than {root}")
            if claimed and root.lower() != claimed.strip().lower() and w.resolve(claimed)[0] != root:
                s_acc -= 0.2
            old_chain = [str(x) for x in gt.get("causal_chain") or []]
            new_chain = chain[::-1]
            if old_chain and [x.lower() for x in old_chain] != [x.lower() for x in new_chain]:
                acc.append(f"causal chain corrected from {' -> '.join(old_chain)} to {' -> '.join(new_chain)}")
            keep = rcs[0] if rcs and isinstance(rcs[0], dict) and rcs[0].get("entity") == root else {}
            aliases = [a for a in (keep.get("aliases") or []) if a != root]
            if claimed and claimed != root and claimed not in aliases and w.resolve(claimed)[0] == root:
                aliases.append(claimed)
            gt["root_causes"] = [{"entity": root, "aliases": aliases, "kind": keep.get("kind", "service")}]
            gt["causal_chain"] = new_chain
            gt["first_symptom"] = new_chain[-1]
            ke = [k for k in gt.get("key_evidence") or [] if isinstance(k, dict)]
            have = {(k.get("tool"), str(k.get("arguments"))) for k in ke}
            for q in ev.queries:
                if (q["tool"], str(q["arguments"])) not in have:
                    ke.append(q)
            gt["key_evidence"] = ke
            if not gt.get("onset"):
                cands = [t for t in (ev.first_change, ev.first_error, (ev.metric or {}).get("at")) if t]
                if cands:
                    gt["onset"] = iso(min(cands))
                    thor.append(f"onset set to {gt['onset']} (earliest change/error/metric move of {root})")
                else:
                    s_acc -= 0.2
                    acc.append("no onset: nothing of the root cause moved in the window")
            else:
                onset = parse_utc(gt["onset"])
                first = min((t for t in (ev.first_change, ev.first_error, (ev.metric or {}).get("at")) if t), default=None)
                if onset and first and abs(onset.timestamp() - first) > 900:
                    s_acc -= 0.25
                    acc.append(f"the onset is {abs(onset.timestamp() - first) / 60:.0f} min from the first signal of {root}")
        if root is not None and finding is not None and finding.mechanism and not gt.get("mechanism") \
                and finding.root_cause and w.resolve(finding.root_cause, near=paged)[0] == root:
            gt["mechanism"] = finding.mechanism
            spec.append(f"mechanism {finding.mechanism} from the second investigation (a reviewer may correct it)")
        mech = mechanism_of(gt.get("mechanism")) if isinstance(gt.get("mechanism"), str) else None
        need = _MECH_CHANGE.get(mech or "")
        if root is not None and need:
            kinds = {str(ch["source"]).lower() for ch in w.evidence(root).changes}
            titles = " ".join(ch["title"].lower() for ch in w.evidence(root).changes)
            if not any(n in k or n in titles for n in need for k in kinds | {""}):
                s_acc -= 0.25
                acc.append(f"mechanism {mech} needs a {need[0]} change of {root}; none in the incident window")
            else:
                acc.append(f"a {need[0]} change of {root} backs the mechanism {mech}")
        if mech is None:
            s_spec -= 0.3
            spec.append("mechanism missing or unmapped: a reviewer must name it")
        else:
            spec.append(f"mechanism {mech}")
        s_thor = min(1.0, 0.2 + 0.3 * n_kinds)
        thor.insert(0, f"{n_kinds} independent kind(s) of evidence on the root cause; {w.calls} tool calls")
        factors = draft.setdefault("difficulty", {}).setdefault("factors", {})
        factors["services"] = len(w.services)  # the world is known now
        derive(draft, assumed)
        if problems(draft):
            acc.append("the draft is not a valid label yet: " + "; ".join(
                f"{p['loc']}: {p['msg']}" for p in problems(draft)[:3]))
            s_acc = min(s_acc, 0.5)
        return self._finish(thor, spec, acc, s_thor, s_spec, s_acc, resolved, t_start, cap), draft, root

    def _checks(self, draft: dict[str, Any]) -> list[CheckFinding]:
        """Lint and the shortcut battery on the grounded draft, once it is a label."""
        if (not self.lint and self.shortcuts is None) or problems(draft):
            return []
        label = Label.model_validate(draft)
        found = lint_candidate(label, self.snapshots) if self.lint else []
        if self.shortcuts is not None and not any(f.severity == "error" for f in found):
            found += shortcut_audit(label, self.snapshots, self.shortcuts, self._cache)
        return found

    # ------------------------------------------------------------------ the second investigation

    def _second_opinion(self, draft: dict[str, Any]) -> Finding | None:
        """The investigator's finding on the draft's world (None without an investigator)."""
        if self.investigator is None:
            return None
        try:
            return self.investigator.investigate(draft, self.snapshots, self._cache)
        except (ValueError, OSError, RuntimeError) as e:
            return Finding(investigator=self.investigator.name, end_reason=f"failed: {type(e).__name__}: {e}"[:300])

    @staticmethod
    def _their_chain(f: Finding | None, w: World, paged: str | None, root: str) -> list[str] | None:
        """The second investigation's causal chain, page first, if it is a real path: from the
        paged service to this root cause, every hop a downstream edge that shows something. Of
        several routes through the topology, the one an investigation followed by the errors
        beats the grounding's shortest."""
        if f is None or not f.chain or paged is None:
            return None
        hops = [w.resolve(x, near=paged)[0] for x in reversed(f.chain)]
        if None in hops or hops[0] != paged or hops[-1] != root or len(set(hops)) != len(hops):
            return None
        ok = all(b in w.downstream(a) for a, b in zip(hops, hops[1:], strict=False))
        quiet = any(w.evidence(x).score == 0 for x in hops[1:-1])
        return hops if ok and not quiet else None  # type: ignore[return-value]

    @staticmethod
    def _compare(f: Finding, root: str, w: World, paged: str | None, gt: dict[str, Any], acc: list[str],
                 spec: list[str], s_acc: float) -> tuple[float, bool]:
        """A named root cause against the second investigation's: agreement backs the claim a
        little; disagreement sends the candidate to a reviewer (CAP_DISAGREE: two accounts of the
        incident disagree, and the investigator can be wrong too). Returns (accuracy, agrees)."""
        if f.no_fault:
            acc.append(f"the second investigation ({f.investigator}) found nothing broken")
            return s_acc - 0.2, False
        theirs = w.resolve(f.root_cause or "", near=paged)[0]
        if theirs == root:
            acc.append(f"a second investigation ({f.investigator}) independently blames {root}")
            mech = gt.get("mechanism")
            if isinstance(mech, str) and f.mechanism and mechanism_of(mech) not in (None, f.mechanism):
                spec.append(f"the second investigation names the mechanism {f.mechanism}, the claim {mech}")
            return min(1.0, s_acc + 0.05), True
        acc.append(f"a second investigation disagrees: {f.describe()}")
        return s_acc - 0.2, False

    def _resolve_by_investigation(self, c: Candidate, f: Finding | None, w: World, paged: str | None,
                                  named: str | None, hint: str | None, gt: dict[str, Any], spec: list[str],
                                  acc: list[str]) -> tuple[str | None, float, float]:
        """A claim that names no root cause ("checkout was slow after the deploy", "it was slow")
        resolved by the second investigation, if its answer is consistent with the claim: the
        service the claim names lies on the chain from the page to the root cause, the change the
        claim hints at is there, and the user's "wrong" does not fall on the investigation's answer.
        Returns (root cause, specificity lost, accuracy lost)."""
        if f is None:
            return None, 0.0, 0.0
        if not f.answered:
            spec.append(f"the second investigation gave no answer ({f.end_reason or 'none'})")
            return None, 0.0, 0.0
        if f.no_fault:
            acc.append(f"the second investigation ({f.investigator}) found nothing broken; the claim says otherwise")
            return None, 0.0, 0.0
        root, how = w.resolve(f.root_cause or "", near=paged)
        if root is None or how not in ("exact", "named"):
            spec.append(f"the second investigation blames {str(f.root_cause)[:80]!r}, which is no service of the world")
            return None, 0.0, 0.0
        d_spec = 0.1 if f.mechanism else 0.3
        d_acc = 0.0
        spec.append(f"root cause not named by the claim: resolved by a second investigation ({f.describe()})")
        chain = self._their_chain(f, w, paged, root) or (w.path(paged, root) if paged else None)
        if named is not None and named != root:
            if chain is None or named not in chain:
                d_acc += 0.35
                acc.append(f"the claim names {named}, which is not on the chain from the page to {root}")
            else:
                acc.append(f"the claim's {named} is on the chain from the page to {root}")
        if hint is not None:
            on = [s for s in (chain or [root]) if any(hint in str(ch["source"]).lower() or hint in ch["title"].lower()
                                                      for ch in w.evidence(s).changes)]
            if root in on:
                acc.append(f"the claim's {hint!r} matches a {hint} change of {root} in the incident window")
            elif on:  # a change of another service on the way: the claim may point at it instead
                d_acc += 0.15
                acc.append(f"the claim's {hint!r} matches a {hint} change of {on[-1]}, not of the root cause {root}")
            else:
                d_acc += 0.3
                acc.append(f"the claim speaks of a {hint}, but no {hint} change is on the chain to {root}")
        blamed = _blamed_by_agent(c)
        if blamed is not None:
            if w.resolve(blamed, near=paged)[0] == root:
                if c.verdict == "wrong":
                    d_acc += 0.45
                    acc.append(f"the user said the diagnosis blaming {blamed} was wrong; the second investigation "
                               "blames it too")
            elif c.verdict == "wrong" and (chain is None or blamed not in chain):
                gt["must_not_blame"] = [{"entity": blamed, "why": "the agent blamed it; the user said the diagnosis "
                                                                 "was wrong"}]
        if named is None and hint is None:
            d_spec += 0.05
            acc.append("the claim itself names no service and no change: the root cause rests on the investigation "
                       "and the world's evidence")
        return root, d_spec, d_acc

    def _no_fault(self, c: Candidate, w: World, paged: str | None, draft: dict[str, Any], thor: list[str],
                  spec: list[str], acc: list[str], s_acc: float, t_start: float,
                  finding: Finding | None = None) -> tuple[Validation, dict[str, Any], None]:
        """A no-fault claim: accurate when nothing downstream of the page shows rising errors (and
        the second investigation, if any, finds nothing broken either)."""
        agrees = finding is not None and finding.no_fault
        if agrees:
            # the investigation weighed the anomalies below and judged them noise: they count less
            acc.append(f"the second investigation ({finding.investigator}) also found nothing broken")
            s_acc = min(1.0, s_acc + 0.05)
        elif finding is not None and finding.root_cause:
            s_acc -= 0.35
            acc.append(f"the second investigation blames something: {finding.describe()}")
        reach = w.reachable(paged) if paged else {}
        rising = [s for s in reach if w.evidence(s).rising]
        changed = [s for s in reach if w.evidence(s).changes and str(w.evidence(s).changes[0]["source"]) in
                   ("deploy", "config", "feature_flag", "migration")]
        if rising:
            s_acc -= 0.15 if agrees else 0.5
            acc.append(f"errors rise downstream of the page ({', '.join(sorted(rising)[:5])}): something may be broken")
        else:
            acc.append(f"no service downstream of {paged} shows rising errors")
        if changed:
            s_acc -= 0.05 if agrees else 0.2
            acc.append(f"changes downstream of the page: {', '.join(sorted(changed)[:5])}")
        moved = [s for s in reach if w.evidence(s).metric]
        thor.append(f"{len(reach)} service(s) downstream of the page checked, {len(moved)} with a moved metric; "
                    f"{w.calls} tool calls")
        s_thor = 0.5 + (0.3 if not rising else 0) + (0.2 if moved else 0)
        spec.append("no-fault: nothing to name")
        draft.setdefault("difficulty", {}).setdefault("factors", {})["services"] = len(w.services)
        derive(draft, list(c.claim_draft()[1]))
        return self._finish(thor, spec, acc, s_thor, 0.8, s_acc, [], t_start), draft, None

    def _finish(self, thor: list[str], spec: list[str], acc: list[str], s_thor: float, s_spec: float, s_acc: float,
                resolved: list[str], t_start: float, cap: float = 1.0) -> Validation:
        """Confidence from the three scores; ``cap`` bounds it when the root cause rests on the
        second investigation more than on the claim (CAP_CLAIMLESS, CAP_HINTED)."""
        def cl(x: float) -> float:
            return round(max(0.0, min(1.0, x)), 3)

        st, ss, sa = cl(s_thor), cl(s_spec), cl(s_acc)
        conf = 0.25 * st + 0.25 * ss + 0.5 * sa
        conf = min(conf, sa + 0.05, cap)  # never much surer than the claim agrees with the world
        if ss < 0.6:
            conf = min(conf, ss + 0.1)
        return Validation(
            scores=ValidationScores(thoroughness=Score(score=st, reasons=thor[:50]),
                                    specificity=Score(score=ss, reasons=spec[:50]),
                                    accuracy=Score(score=sa, reasons=acc[:50])),
            confidence=cl(conf), validator=VALIDATOR + (f" + {self.investigator.name}" if self.investigator else ""),
            validated_at=datetime.now(UTC),
            seconds=round(time.perf_counter() - t_start, 4), resolved=resolved)

    # ------------------------------------------------------------------ a queue

    def run(self, queue: Queue, ids: list[str] | None = None, actor: str = "validator") -> list[Outcome]:
        """Validate the pending candidates of ``queue`` (or those of ``ids``)."""
        out: list[Outcome] = []
        for cid in ids or queue.ids(status="pending"):  # every pending one: a queue may hold thousands
            c = queue.get(cid)
            if c.status != "pending":
                out.append(Outcome(c.id, "skipped", reasons=[f"{c.status}, not pending"]))
                continue
            if not (c.claim_draft()[0].get("world") or {}).get("snapshot"):
                out.append(Outcome(c.id, "skipped", reasons=["no world snapshot: capture it first"]))
                continue
            t = time.perf_counter()
            try:
                v, draft, root = self.ground(c)
            except (ValueError, OSError, KeyError) as e:
                out.append(Outcome(c.id, "error", reasons=[f"{type(e).__name__}: {str(e)[:300]}"],
                                   seconds=time.perf_counter() - t))
                continue
            found = self._checks(draft)
            blocking = [f for f in found if f.severity == "error"]
            verdict = "validated" if v.confidence >= self.threshold and not blocking else "review"
            note = f"{verdict} at threshold {self.threshold}"
            if blocking and v.confidence >= self.threshold:
                note += f", held for review by {len(blocking)} lint error(s)"
            v = v.model_copy(update={"notes": [note], "checks": [f.as_dict() for f in found][:500],
                                     "seconds": round(time.perf_counter() - t, 4),
                                     "basis": c.claim_draft()[0], "basis_assumed": c.claim_draft()[1],
                                     "basis_edits": c.edits})
            try:
                queue.record_validation(c.id, v, actor=actor, draft=draft)
            except QueueError as e:
                out.append(Outcome(c.id, "error", reasons=[str(e)], seconds=time.perf_counter() - t))
                continue
            reasons = [f.line() for f in found] + [r for s in (v.scores.accuracy, v.scores.specificity,
                                                              v.scores.thoroughness) for r in s.reasons]
            out.append(Outcome(c.id, verdict, v.confidence, root, reasons, round(time.perf_counter() - t, 4)))
        return out


def _blamed_by_agent(c: Candidate) -> str | None:
    """The root cause the investigated agent named, from the feedback record."""
    inv = (c.record or {}).get("investigation") if isinstance(c.record, dict) else None
    diag = inv.get("diagnosis") if isinstance(inv, dict) else None
    rcs = diag.get("root_causes") if isinstance(diag, dict) else None
    if isinstance(rcs, list) and rcs and isinstance(rcs[0], dict) and isinstance(rcs[0].get("entity"), str):
        return rcs[0]["entity"]
    return None


def _copy(d: dict[str, Any]) -> dict[str, Any]:
    import copy

    return copy.deepcopy(d)
