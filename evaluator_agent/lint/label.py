"""The checks of one schema-valid label against its world (``LabelCheck``): label-only
consistency, the noise-free twin, the world's ids, names and keys, trigger and time ranges,
the answer leaking into the briefing, ground-truth entities, red herrings, key evidence.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from evaluator_agent.core.clock import iso_s
from evaluator_agent.core.labels import Label
from evaluator_agent.core.vocab import MECHANISM_INFO
from evaluator_agent.lint.words import entity_re, mechanism_re, norm, truth_word
from evaluator_agent.lint.worlds import TAG_VALUES, World, iter_keys

FIRED_AT_TOLERANCE_S = 300  # fired_at vs the paging monitor's transition to Alert

_WORLD_ID_RE = re.compile(r"^w_[0-9a-f]{8,64}$")


def _ts(dt: datetime) -> float:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()





class LabelCheck:
    """All checks of one schema-valid label."""

    def __init__(self, linter: Any, label: Label, fname: str):
        self.L = linter
        self.label = label
        self.fname = fname
        self.gt = label.ground_truth

    def add(self, check: str, message: str, severity: str = "error") -> None:
        self.L.add(self.label.id, self.fname, check, message, severity)

    def run(self) -> None:
        lb = self.label
        self._static_checks()
        world, probs = self.L.snaps.get(lb.world.snapshot)
        for check, msg in probs:
            self.add(check, msg)
        nf_world = None
        if lb.world.snapshot_noise_free:
            nf_world, nf_probs = self.L.snaps.get(lb.world.snapshot_noise_free)
            for check, msg in nf_probs:
                self.add(check, "noise-free " + msg)
        if world is None:
            return
        if nf_world is not None:
            self._noise_free(world, nf_world)
        self._world_checks(world)
        self._trigger_and_time(world)
        self._briefing_leaks(world)
        self._entities(world)
        self._herrings(world)
        self._evidence(world)
        if lb.difficulty.factors.services != len(world.services):
            self.add("difficulty.factors",
                     f"factors.services is {lb.difficulty.factors.services} but the world has {len(world.services)} services")

    # ---------------------------------------------------------------- label-only

    def _static_checks(self) -> None:
        lb, gt = self.label, self.gt
        f = lb.difficulty.factors
        want_chain = 0 if gt.no_fault else len(gt.causal_chain)
        if f.chain_length != want_chain:
            self.add("difficulty.factors",
                     f"factors.chain_length is {f.chain_length} but the causal chain has {len(gt.causal_chain)} "
                     f"entities (expected {want_chain})")
        if f.red_herrings != len(gt.must_not_blame):
            self.add("difficulty.factors",
                     f"factors.red_herrings is {f.red_herrings} but must_not_blame lists {len(gt.must_not_blame)}")
        try:
            from evaluator_agent.engine.scoring import resolve_weights

            resolve_weights(lb)
        except ValueError as e:
            self.add("weights.invalid", str(e))
        if gt.no_fault:
            bad = []
            if gt.causal_chain:
                bad.append(f"causal_chain {gt.causal_chain}")
            if gt.partial_credit:
                bad.append("partial_credit entries")
            if gt.triggering_change and gt.triggering_change.kind != "none" and gt.triggering_change.entity:
                bad.append(f"a triggering change on {gt.triggering_change.entity}")
            if lb.taxonomy.problem_category != MECHANISM_INFO["no_fault"][1]:
                bad.append(f"problem_category {lb.taxonomy.problem_category!r} (expected 'none')")
            if bad:
                self.add("truth.no_fault", "a no-fault label has " + ", ".join(bad))
        else:
            if lb.taxonomy.problem_category == "none":
                self.add("truth.no_fault", "a fault label has problem_category 'none'")
            if not gt.causal_chain:
                self.add("truth.no_fault", "a fault label has an empty causal_chain")
            elif gt.root_causes and not any(
                norm(gt.causal_chain[0]) in {norm(x) for x in [rc.entity, *rc.aliases]} for rc in gt.root_causes
            ):
                self.add("truth.no_fault",
                         f"the causal chain starts at {gt.causal_chain[0]!r}, not at a root cause")
            seg, cat = MECHANISM_INFO[gt.mechanism]
            if lb.taxonomy.segment != seg or lb.taxonomy.problem_category != cat:
                self.add("truth.taxonomy",
                         f"mechanism {gt.mechanism} belongs to segment {seg!r} / category {cat!r}, label says "
                         f"{lb.taxonomy.segment!r} / {lb.taxonomy.problem_category!r}")

    # ---------------------------------------------------------------- world

    def _noise_free(self, w: World, nf: World) -> None:
        diffs = []
        if (w.start, w.end) != (nf.start, nf.end):
            diffs.append(f"time range {iso_s(nf.start)}..{iso_s(nf.end)} vs {iso_s(w.start)}..{iso_s(w.end)}")
        if w.services != nf.services:
            diffs.append(f"services differ ({len(w.services ^ nf.services)} names)")
        mid = self.label.task.trigger.monitor_id
        if mid is not None and mid in w.monitors and mid not in nf.monitors:
            diffs.append(f"paging monitor {mid} missing")
        if diffs:
            self.add("snapshot.noise_free", "the noise-free world differs: " + "; ".join(diffs))

    def _world_checks(self, w: World) -> None:
        lb = self.label
        wid = str(w.data.get("world_id", ""))
        if not _WORLD_ID_RE.match(wid):
            self.add("world.id_opaque", f"world_id {wid!r} is not opaque ('w_' followed by hex digits)")
        for name, kind, mech, hit in w.spelled_names():
            if mech == lb.ground_truth.mechanism:
                self.add("world.entity_name", f"{kind} name {name!r} spells the label's mechanism {mech} ({hit!r})")
            else:
                self.add("world.entity_name",
                         f"{kind} name {name!r} spells mechanism {mech} ({hit!r}); misleading, not the answer",
                         "warning")
        if lb.id.lower() in w.raw_lower:
            self.add("leak.label_id", f"the label id {lb.id} appears in the world snapshot data")
        mech_rx = mechanism_re(lb.ground_truth.mechanism, False)
        for key in sorted(w.keys()):
            self._check_key(key, "world data key", mech_rx)

    def _check_key(self, key: str, where: str, mech_rx: re.Pattern[str], data_key: bool = True) -> None:
        """Ground-truth words or the label id in a key: error; the mechanism's spelling: warning
        for a key of the world's data, error for a key the tools themselves add.

        A data key spelled like the mechanism (a log attribute ``feature_flag``) is realistic
        telemetry, but when it is the only thing an agent needs to read, the label is easier
        than it should be; so it is reported, as a warning.
        """
        if self.label.id.lower() in key.lower():
            self.add("leak.tool_metadata", f"{where} {key!r} contains the label id")
        elif (word := truth_word(key)) is not None:
            self.add("leak.tool_metadata", f"{where} {key!r} names ground truth ({word})")
        elif mech_rx.search(key) and not data_key:
            self.add("leak.tool_metadata", f"{where} {key!r} (added by the tools) spells the mechanism {self.gt.mechanism}")
        elif mech_rx.search(key):
            self.add("leak.tool_metadata",
                     f"{where} {key!r} spells the mechanism {self.gt.mechanism}; realistic attribute names are fine, "
                     "but make sure it also appears outside the incident", "warning")

    def _trigger_and_time(self, w: World) -> None:
        lb, gt = self.label, self.gt
        trig = lb.task.trigger
        rng = f"world range {iso_s(w.start)}..{iso_s(w.end)}"
        if trig.monitor_id is not None:
            m = w.monitors.get(trig.monitor_id)
            if m is None:
                self.add("trigger.monitor_missing",
                         f"trigger.monitor_id {trig.monitor_id} is not a monitor of the world "
                         f"({len(w.monitors)} monitors: {', '.join(map(str, sorted(w.monitors)[:8]))}…)")
            else:
                state = w.monitor_state(m)
                if state != "Alert":
                    self.add("trigger.monitor_state",
                             f"paging monitor {trig.monitor_id} ({m['name']!r}) is {state!r} at the world's end, not 'Alert'")
                fired_at = _ts(trig.fired_at)
                alerts = [t["ts"] for t in m.get("transitions") or [] if t.get("to") == "Alert"]
                if alerts and min(abs(t - fired_at) for t in alerts) > FIRED_AT_TOLERANCE_S:
                    near = min(alerts, key=lambda t: abs(t - fired_at))
                    self.add("trigger.fired_at",
                             f"fired_at {iso_s(fired_at)} but the paging monitor went to Alert at {iso_s(near)} "
                             f"({abs(near - fired_at):.0f}s apart)")
        fired = _ts(trig.fired_at)
        if not (w.start <= fired <= w.end):
            self.add("trigger.fired_at", f"fired_at {iso_s(fired)} is outside the {rng}")
        if gt.onset is not None and not (w.start <= _ts(gt.onset) <= w.end):
            self.add("time.onset", f"onset {iso_s(_ts(gt.onset))} is outside the {rng}")
        tc = gt.triggering_change
        if tc is not None and tc.at is not None and not (w.start <= _ts(tc.at) <= w.end):
            self.add("time.triggering_change", f"triggering change at {iso_s(_ts(tc.at))} is outside the {rng}")
        for check, name, win in (
            ("time.incident_window", "incident", lb.world.incident_window),
            ("time.baseline_window", "baseline", lb.world.baseline_window),
        ):
            a, b = _ts(win.start), _ts(win.end)
            if a < w.start or b > w.end:
                self.add(check, f"{name} window {iso_s(a)}..{iso_s(b)} is outside the {rng}")
        if gt.onset is not None:
            a, b = _ts(lb.world.incident_window.start), _ts(lb.world.incident_window.end)
            if not (a <= _ts(gt.onset) <= b):
                self.add("time.onset", f"onset {iso_s(_ts(gt.onset))} is outside the incident window {iso_s(a)}..{iso_s(b)}")

    # ---------------------------------------------------------------- leaks

    def _briefing_leaks(self, w: World) -> None:
        from evaluator_agent.core.protocol import Budget
        from evaluator_agent.engine.briefing import build_briefing

        lb, gt = self.label, self.gt
        header = {"start": w.data["start"], "end": w.data["end"], "monitors": w.monitors}
        br = build_briefing(lb, header, Budget(), "inv_lint")
        title, prompt, mon = br.problem.title, br.problem.prompt, br.problem.monitor
        mon_name = (mon or {}).get("name", "") or ""

        def author(text: str) -> str:  # the text minus quotations of the monitor's own name
            return text.replace(mon_name, " ") if mon_name else text

        mech = gt.mechanism
        loose = mechanism_re(mech, True)
        for where, text in (("title", author(title)), ("prompt", author(prompt))):
            m = loose.search(text)
            if m:
                self.add("leak.mechanism", f"the {where} names the mechanism {mech} ({_snip(text, m)})")
        if mon:
            strict = mechanism_re(mech, False)
            fields = {
                "name": mon.get("name", ""),
                "message": mon.get("message", ""),
                "tags": " ".join(mon.get("tags", [])),
                "query": mon.get("query", ""),
            }
            measured = bool(strict.search(fields["query"]))
            hits = []
            for where, text in fields.items():
                m = strict.search(text) or (loose.search(text) if where != "query" else None)
                if m:
                    hits.append(f"{where}: {_snip(text, m)}")
            if hits and measured:
                self.add("leak.monitor_mechanism",
                         f"the paging monitor names the mechanism {mech} ({'; '.join(hits)}); its query measures "
                         "it, which is realistic but makes the label easier", "warning")
            elif hits:
                self.add("leak.monitor_mechanism",
                         f"the paging monitor names the mechanism {mech} ({'; '.join(hits)}) though its query "
                         "does not measure it")
        # Root-cause entities the briefing should not name.
        watched = set()
        if mon:
            for tag in mon.get("tags", []):
                watched.add(tag.split(":", 1)[-1].lower())
        watched_norm = {norm(x) for x in watched}
        for rc in gt.root_causes:
            spellings = [rc.entity, *rc.aliases]
            if any(s.lower() in watched or norm(s) in watched_norm for s in spellings):
                continue  # the monitor watches the culprit itself: naming it is not a leak
            rx = entity_re(spellings)
            if rx is None:
                continue
            texts = [("title", author(title)), ("prompt", author(prompt))]
            if mon:
                texts += [("monitor name", mon.get("name", "")), ("monitor message", mon.get("message", ""))]
            for where, text in texts:
                m = rx.search(text)
                if m:
                    self.add("leak.entity", f"the {where} names root cause {rc.entity!r} ({_snip(text, m)})")
        blob = "\n".join([title, prompt, json.dumps(mon or {})]).lower()
        if lb.id.lower() in blob:
            self.add("leak.label_id", f"the briefing shows the label id {lb.id}")

    # ---------------------------------------------------------------- entities

    def _entities(self, w: World) -> None:
        gt = self.gt
        for rc in gt.root_causes:
            spellings = [rc.entity, *rc.aliases]
            found = any(w.has_entity(s) for s in spellings)
            if not found and rc.kind in ("change", "external"):
                ids = w.event_ids()
                found = any(s.lower() in ids for s in spellings) or any(w.visible(s) for s in spellings)
            if not found:
                what = "topology" + (" or events" if rc.kind in ("change", "external") else "")
                self.add("truth.unknown_entity",
                         f"root cause {rc.entity!r} (kind {rc.kind}, aliases {rc.aliases}) is not in the world's {what}")
        aliases = {norm(s) for rc in gt.root_causes for s in [rc.entity, *rc.aliases]}
        for what, names in (
            ("causal_chain entity", gt.causal_chain),
            ("first_symptom", [gt.first_symptom] if gt.first_symptom else []),
            ("partial_credit entity", [p.entity for p in gt.partial_credit]),
        ):
            for n in names:
                if not w.has_entity(n) and norm(n) not in aliases:
                    self.add("truth.unknown_entity", f"{what} {n!r} is not in the world's topology")

    def _herrings(self, w: World) -> None:
        culprits = {norm(s) for rc in self.gt.root_causes for s in [rc.entity, *rc.aliases]}
        for rh in self.gt.must_not_blame:
            if norm(rh.entity) in culprits:
                self.add("herring.is_root_cause", f"red herring {rh.entity!r} is also a root cause (or its alias)")
            if not w.has_entity(rh.entity):
                self.add("herring.unknown", f"red herring {rh.entity!r} is not in the world's topology")
            elif not w.visible(rh.entity):
                self.add("herring.invisible",
                         f"red herring {rh.entity!r} has no log, span, event, metric series or monitor in the world")

    # ---------------------------------------------------------------- evidence

    def _evidence(self, w: World) -> None:
        if not self.gt.key_evidence:
            return
        from evaluator_agent.engine.scoring import Seen, ViewedResult, squash

        tb = w.toolbox()
        world_keys = w.keys()  # already judged by _world_checks
        mech_rx = mechanism_re(self.gt.mechanism, False)
        for i, ke in enumerate(self.gt.key_evidence, start=1):
            self.L.checked["key_evidence"] += 1
            self.L.checked["tool_calls"] += 1
            what = f"key_evidence[{i}] {ke.tool}({json.dumps(ke.arguments, sort_keys=True)})"
            out = tb.call(ke.tool, dict(ke.arguments))
            if not out.ok:
                self.add("evidence.error", f"{what} fails: {out.error}")
                continue
            body = json.dumps(out.content, default=str, separators=(",", ":"))
            needle = squash(ke.expect)
            if not needle or not Seen(ViewedResult(tool=ke.tool, arguments=ke.arguments, ok=True, text=body)).contains(needle):
                n = _result_size(out.content)
                self.add("evidence.missing",
                         f"{what} returns {n} but not {ke.expect!r}")
            for key in sorted(set(iter_keys(out.content)) - world_keys):
                self._check_key(key, f"{what} result key", mech_rx, data_key=False)
        self._evidence_listing(w)

    def _evidence_listing(self, w: World) -> None:
        """Key evidence whose ``expect`` any listing call shows proves nothing was looked at.

        An ``expect`` that is an entity name of the world (``invoices-db``) is found in any
        result of the evidence's tool that mentions the entity; an evidence item of a listing
        tool (list_services, get_service_dependencies, list_metrics) whose ``expect`` that
        listing returns (metric names, tag keys and any tag value, which a filtered
        list_metrics reveals) is earned by listing. Scoring credits only results of the
        evidence's own tool, so another tool's listing showing the string earns nothing.
        """
        from evaluator_agent.engine.scoring import squash

        listing = None
        for i, ke in enumerate(self.gt.key_evidence, start=1):
            needle = squash(ke.expect)
            if not needle:
                continue
            what = f"key_evidence[{i}] ({ke.tool}) expects {ke.expect!r}"
            kind = w.names.get(needle)
            if kind is not None:
                self.add("evidence.listing_satisfies",
                         f"{what}, a bare {kind} name of the world: any listing call returns it, so finding it "
                         "proves nothing was looked at; expect what only this query shows")
                continue
            listing = listing if listing is not None else w.listing()
            tools = [tool for tool, seen in listing if seen.contains(needle)]
            if "list_metrics" in tools and TAG_VALUES in tools:  # shown unfiltered already
                tools.remove(TAG_VALUES)
            # scoring credits only results of the evidence's own tool: a listing of another
            # tool that shows the string earns nothing
            tools = [t for t in tools if t == ke.tool or (t == TAG_VALUES and ke.tool == "list_metrics")]
            if tools:
                self.add("evidence.listing_satisfies",
                         f"{what}, which {' and '.join(tools)} also return: a target earns it without running "
                         "the query; expect what only this query shows")


def _result_size(content: Any) -> str:
    if isinstance(content, dict):
        for k in ("logs", "spans", "events", "monitors", "services", "metrics", "series", "buckets", "groups"):
            if isinstance(content.get(k), list):
                return f"{len(content[k])} {k}"
    return f"{len(json.dumps(content, default=str))} bytes"


def _snip(text: str, m: re.Match[str], pad: int = 30) -> str:
    a, b = max(0, m.start() - pad), min(len(text), m.end() + pad)
    s = text[a:b].replace("\n", " ")
    return ("…" if a else "") + repr(s)[1:-1] + ("…" if b < len(text) else "")

