"""The memorisers: adversaries that learnt the stored worlds of a label set by heart.

``memoriser`` is the test of issue 16's promise that fresh instances cannot be memorised. It reads the page of
the briefing, lists the services (one cheap call) and looks the incident up in a table built from
the stored labels of ``core`` (:data:`MEMORISED_SET`): found, it answers the stored diagnosis
(root causes, mechanism, causal chain, onset; "no fault" on a control), which passes nearly
every stored label without investigating anything; not found, it answers blind, exactly as
``random_guess`` would (same call, same seeded choice), so on a world it never saw it is worth
what chance is worth.

Fingerprints. Each stored world is known by four keys, and any one of them recognises it:

==============  ==============================================================================
``page``         the page's title and the time it fired
``monitor``      the id of the monitor that paged
``fired_at``     the time the page fired
``catalog``      the sorted names of the services ``list_services`` shows
==============  ==============================================================================

Only values that name one stored world are kept (a title shared by two worlds recognises
neither), and a match on any key counts: a fresh instance that shared *any* of these with a
stored world would be answered from memory, so "no hit on a fresh draw" is the strong claim.
What a fresh instance keeps of its recipe on purpose (the weekday and the time of day of the
page, the size of the catalog, the mechanism) is no key of ``memoriser``: it names a recipe, not a
world, and the stored answer of a recipe (its culprit, chain and onset) is wrong on another world
of it.

``recipe_memoriser`` uses exactly that: the ``recipe`` key (weekday, time of day, number of
services) names one stored label of core, so on a fresh instance it knows the recipe's mechanism,
whether it is a no-fault control and how long its chain is, without investigating. A control
gets "no fault"; a one-service chain the paged service (``alert_blamer``'s answer); a longer chain
``metric_jump``'s culprit; each with the remembered mechanism. It measures what recognising the
recipe is worth on a fresh draw (``tests/benchmarks/bench_fresh_calibration.py``).

The table is built from the label files and the ``topology`` of each stored snapshot (the rest
of a snapshot is skipped), once per process, and kept as JSON in the temporary directory, keyed
by the label set's content hash (:func:`memory`): building it reads 200 snapshots (about 2 s),
reading it back takes milliseconds.

Both are known to :func:`mock_agents.policies.get_policy` by name only: neither is one of the
reference agents, in the shortcut battery (``memoriser`` passes every stored label and would make
``proctor labels audit`` report a leak that is no property of the label set) or in the pool
difficulty tiers are fitted on.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from evaluator_agent.core.labels import Label, load_labelset, snapshots_dir
from evaluator_agent.telemetry.world import read_snapshot_bytes

from .baselines import AlertBlamer, RandomGuess
from .policy import Policy, cite, fault_diagnosis, no_fault_diagnosis, root_cause
from .shortcuts import SHORTCUTS
from .signals import monitor_service, service_names
from .transcript import Transcript, iso

#: the label set the memoriser learnt
MEMORISED_SET = "core"
#: the fingerprint keys of a world, in the order they are tried
KEYS: tuple[str, ...] = ("page", "monitor", "fired_at", "catalog")
#: the key of a recipe: what a fresh instance keeps of it (``recipe_memoriser`` only)
RECIPE_KEY = "recipe"
#: bumped when the table's layout or keys change (old files are then ignored)
TABLE_VERSION = 2
_TOPOLOGY = b'"topology":'


# --------------------------------------------------------------------------- fingerprints


def catalog_key(names: list[str]) -> str:
    """The key of a service catalog: a hash of its sorted, distinct names."""
    return hashlib.sha256("\n".join(sorted(set(names))).encode()).hexdigest()[:32]


def fingerprints(title: str | None, fired_at: Any, monitor_id: Any, services: list[str] | None) -> dict[str, str]:
    """The keys an incident shows (a key it cannot show is left out)."""
    out: dict[str, str] = {}
    if fired_at is not None:
        out["fired_at"] = iso(fired_at)
        if title:
            out["page"] = f"{title}\0{out['fired_at']}"
    if monitor_id is not None:
        with contextlib.suppress(TypeError, ValueError):
            out["monitor"] = str(int(float(monitor_id)))  # in-process numbers arrive as floats
    if services:
        out["catalog"] = catalog_key(services)
    return out


def recipe_key(fired_at: Any, services: list[str]) -> str:
    """The key of a recipe: the page's weekday and time of day, and the number of services
    (what a fresh instance kept of its recipe before instances moved their page to any minute
    and jittered their size: worldgen/fresh.instance_recipe)."""
    t = iso(fired_at)  # 2026-03-02T14:05:00Z
    weekday = datetime.fromisoformat(t[:10]).weekday()
    return f"{weekday}|{t[11:16]}|{len(set(services))}"


def snapshot_services(digest: str, directory: Path | None = None) -> list[str]:
    """The service names of a stored snapshot's topology, parsing only the topology (snapshots
    are canonical JSON with sorted keys: it is the last object but ``world_id``)."""
    raw = read_snapshot_bytes(digest, directory or snapshots_dir(), verify=False)
    at = raw.rfind(_TOPOLOGY)
    try:
        topology, _ = json.JSONDecoder().raw_decode(raw[at + len(_TOPOLOGY):].decode())
    except (ValueError, UnicodeDecodeError):
        topology = json.loads(raw)["topology"]
    return sorted(str(s["name"]) for s in topology["services"])


def stored_answer(label: Label) -> dict[str, Any]:
    """What the memoriser remembers of a label: its ground truth, as a diagnosis needs it."""
    gt = label.ground_truth
    return {
        "no_fault": gt.no_fault,
        "root_causes": [rc.entity for rc in gt.root_causes],
        "mechanism": gt.mechanism,
        "causal_chain": list(gt.causal_chain),
        "onset": iso(gt.onset) if gt.onset else None,
        "chain_length": len(gt.causal_chain),
    }


def build_table(set_name: str = MEMORISED_SET, root: Path | None = None) -> dict[str, Any]:
    """The memory of a label set: ``keys`` {key: {value: label id}} (:data:`KEYS` and
    :data:`RECIPE_KEY`; values unique in the set only) and ``answers`` {label id: :func:`stored_answer`}."""
    ls = load_labelset(set_name, root)
    seen: dict[str, dict[str, list[str]]] = {k: {} for k in (*KEYS, RECIPE_KEY)}
    answers = {}
    for lb in ls.labels:
        trig = lb.task.trigger
        services = snapshot_services(lb.world.snapshot)
        fps = fingerprints(trig.title, trig.fired_at, trig.monitor_id, services)
        fps[RECIPE_KEY] = recipe_key(trig.fired_at, services)
        for k, v in fps.items():
            seen[k].setdefault(v, []).append(lb.id)
        answers[lb.id] = stored_answer(lb)
    keys = {k: {v: ids[0] for v, ids in by.items() if len(ids) == 1} for k, by in seen.items()}
    return {"version": TABLE_VERSION, "set": set_name, "hash": ls.content_hash, "keys": keys, "answers": answers}


def table_path(set_name: str, content_hash: str) -> Path:
    return Path(tempfile.gettempdir()) / "incident-proctor" / f"memoriser-{set_name}-{content_hash[:16]}-v{TABLE_VERSION}.json"


@lru_cache(maxsize=4)
def memory(set_name: str = MEMORISED_SET) -> dict[str, Any]:
    """The table of ``set_name``: from the temporary directory when a process built it before
    (same content hash), else built and written there (atomically; a failed write is harmless)."""
    content_hash = load_labelset(set_name).content_hash
    path = table_path(set_name, content_hash)
    with contextlib.suppress(OSError, ValueError, AttributeError):
        table = json.loads(path.read_bytes())
        if table.get("version") == TABLE_VERSION and table.get("hash") == content_hash:
            return table
    table = build_table(set_name)
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(table, sort_keys=True))
        os.replace(tmp, path)
    return table


# --------------------------------------------------------------------------- the policy


class Memoriser(Policy):
    """Answers the stored diagnosis of the stored world the page and the catalog recognise;
    answers as ``random_guess`` (blind) when none does."""

    name = "memoriser"
    description = "Recognises stored core worlds by their page and service catalog and answers their stored diagnosis; blind otherwise."

    def __init__(self, set_name: str = MEMORISED_SET):
        self.set_name = set_name
        self.blind = RandomGuess()

    def wanted(self, conv: Transcript) -> list[dict[str, Any]]:
        return self.blind.wanted(conv)  # list_services: the catalog is one of the keys

    def services(self, conv: Transcript) -> list[str]:
        return [n for c in self.blind.wanted(conv) for n in service_names(conv.content(c["id"]))]

    def shown(self, conv: Transcript) -> dict[str, str]:
        """The fingerprints this conversation shows."""
        names = self.services(conv)
        p = conv.problem
        return fingerprints(p.get("title"), conv.fired_at if p.get("fired_at") else None,
                            (conv.monitor or {}).get("id"), names)

    def recall(self, conv: Transcript) -> tuple[str, str] | None:
        """(label id, the key that recognised it), or None on a miss."""
        table = memory(self.set_name)
        shown = self.shown(conv)
        for k in KEYS:
            lid = table["keys"].get(k, {}).get(shown.get(k, ""))
            if lid:
                return lid, k
        return None

    def diagnose(self, conv: Transcript) -> dict[str, Any]:
        hit = self.recall(conv)
        if hit is None:
            d = self.blind.diagnose(conv)
            d["summary"] = f"No memorised world matches this page. {d['summary']}"
            return d
        lid, key = hit
        a = memory(self.set_name)["answers"][lid]
        evidence = [cite(c["id"], f"the service catalog, one key of {lid}") for c in self.blind.wanted(conv) if c["id"] in conv.results]
        why = f"Memorised {lid} of {self.set_name} (recognised by its {key})"
        if a["no_fault"]:
            return no_fault_diagnosis(evidence, f"No fault: {why}.")
        return fault_diagnosis(
            [root_cause(e, a["mechanism"], 0.95) for e in a["root_causes"]],
            a["causal_chain"],
            a["onset"] or iso(conv.fired_at),
            evidence,
            f"{why}: {a['root_causes'][0]} ({a['mechanism']}).",
        )


class RecipeMemoriser(Memoriser):
    """Recognises the *recipe* of a world (weekday and time of day of the page, number of
    services) among the stored labels and answers with what the recipe fixes: "no fault" on a
    control; else the paged service (chain of one) or ``metric_jump``'s culprit, with the
    remembered mechanism. Blind (``random_guess``) when no recipe matches."""

    name = "recipe_memoriser"
    description = "Recognises a world's recipe by its page's time of week and catalog size; answers the recipe's mechanism on a cheap culprit."

    def __init__(self, set_name: str = MEMORISED_SET):
        super().__init__(set_name)
        self.paged = AlertBlamer()
        self.ranked = SHORTCUTS["metric_jump"]

    def recipe(self, conv: Transcript) -> tuple[str, dict[str, Any]] | None:
        """(label id, its remembered answer) of the recipe this world was drawn from, or None."""
        names = self.services(conv)
        if not names or not conv.problem.get("fired_at"):
            return None
        table = memory(self.set_name)
        lid = table["keys"].get(RECIPE_KEY, {}).get(recipe_key(conv.fired_at, names))
        return (lid, table["answers"][lid]) if lid else None

    def helper(self, answer: dict[str, Any]) -> Policy:
        return self.paged if answer["chain_length"] <= 1 else self.ranked

    def wanted(self, conv: Transcript) -> list[dict[str, Any]]:
        first = self.blind.wanted(conv)
        found = self.recipe(conv) if all(c["id"] in conv.results for c in first) else None
        if found is None or found[1]["no_fault"]:
            return first
        return first + self.helper(found[1]).wanted(conv)

    def diagnose(self, conv: Transcript) -> dict[str, Any]:
        found = self.recipe(conv)
        if found is None:
            return super().diagnose(conv)  # a world it remembers, else blind
        lid, a = found
        why = f"recipe of {lid} of {self.set_name} (by the page's time of week and the catalog size)"
        if a["no_fault"]:
            return no_fault_diagnosis([], f"No fault: the {why} is a no-fault control.")
        d = self.helper(a).diagnose(conv)
        if d.get("no_fault") or not d.get("root_causes"):
            paged = monitor_service(conv.monitor) or self.services(conv)[0]
            d = fault_diagnosis([root_cause(paged, a["mechanism"], 0.6)], [], iso(conv.fired_at), [], "")
        d["root_causes"][0]["mechanism"] = a["mechanism"]
        d["summary"] = f"The {why}: {a['mechanism']}. {d.get('summary') or ''}".strip()
        return d
