"""The recipe file of the ``core`` label set, written by code so it can be reviewed and re-derived.

``python -m evaluator_agent.worldgen build-core`` builds ``labelsets/core`` from
``environments/recipes/core.json``; ``write_core_recipes()`` regenerates that JSON (it is
deterministic: same code, same file). Layout:

- every fault mechanism the generator implements, in three difficulty bands. Easy: a short
  chain, few decoys. Medium: a longer chain, more decoys. Hard: long chains plus at least one
  real difficulty lever -- a decoy that changed and degraded *before* the incident
  (``early_herrings``), the culprit's logs sampled away (``quiet_culprit``), long time offsets,
  big worlds, high noise. Medium and hard worlds also carry a resolved error burst in the hour
  before the page (``transient_bursts``: a node drain), the kind of noise a "largest error
  growth" heuristic falls for;
- no-fault controls (benign, explained traffic spikes) in every band, about 11%;
- hard recreations of public postmortems, two per story of ``postmortems.py`` (the story
  shapes the world; its title goes to the label's provenance).

The tier of each label is still computed from what the world ended up containing
(``labeling.tier``), not asserted by the recipe.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from evaluator_agent.core.labels import project_root
from evaluator_agent.worldgen.postmortems import STORIES

FAULTS = (
    "oom_killed",
    "crashloop_bad_config",
    "cpu_throttling",
    "consumer_lag",
    "rebalance_storm",
    "bad_release",
    "latency_regression",
    "feature_flag",
    "connection_pool_exhaustion",
    "slow_query_migration",
    "lock_contention",
    "certificate_expiry",
    "dns_failure",
    "cache_stampede",
    "third_party_outage",
    "retry_storm",
    "disk_full",
    "memory_leak",
    "bad_data",
)

COMMON = ("bad_release", "connection_pool_exhaustion", "lock_contention", "rebalance_storm", "oom_killed")

# (story id, knobs): two recreations of each postmortem story (worldgen/postmortems.py).
POSTMORTEMS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("aws-dynamodb-dns-2025", {"chain_length": 4, "red_herrings": 3, "early_herrings": 1, "n_services": 70}),
    ("aws-dynamodb-dns-2025", {"chain_length": 3, "red_herrings": 2, "quiet_culprit": True}),
    ("cloudflare-waf-2019", {"chain_length": 1, "red_herrings": 3, "early_herrings": 1, "n_services": 60}),
    ("cloudflare-waf-2019", {"chain_length": 1, "red_herrings": 2, "noise": "high"}),
    ("cloudflare-bot-management-2025", {"chain_length": 4, "red_herrings": 3, "early_herrings": 1, "n_services": 66}),
    ("cloudflare-bot-management-2025", {"chain_length": 3, "red_herrings": 2, "quiet_culprit": True}),
    ("crowdstrike-2024", {"chain_length": 3, "red_herrings": 2, "quiet_culprit": True, "time_offset_s": 2400}),
    ("crowdstrike-2024", {"chain_length": 4, "red_herrings": 2, "n_services": 58}),
    ("knight-capital-2012", {"chain_length": 3, "red_herrings": 3, "early_herrings": 1, "n_services": 55}),
    ("knight-capital-2012", {"chain_length": 4, "red_herrings": 2, "noise": "high"}),
)

BANDS: dict[str, list[dict[str, Any]]] = {
    "easy": [
        {"chain_length": 1, "red_herrings": 0},
        {"chain_length": 1, "red_herrings": 1},
    ],
    "medium": [
        {"chain_length": 2, "red_herrings": 1},
        {"chain_length": 3, "red_herrings": 0},
        {"chain_length": 2, "red_herrings": 0, "noise": "high"},
    ],
    "hard": [
        {"chain_length": 4, "red_herrings": 2, "early_herrings": 1},
        {"chain_length": 3, "red_herrings": 2, "quiet_culprit": True, "early_herrings": 1},
        {"chain_length": 5, "red_herrings": 3, "noise": "high"},
    ],
}
# mechanisms whose culprit is always a dependency of the paged service (chain >= 2): the easy
# band is a quiet world
DEEP_ONLY = (
    "certificate_expiry",
    "dns_failure",
    "cache_stampede",
    "third_party_outage",
    "retry_storm",
    "disk_full",
    "slow_query_migration",
    "bad_data",
)
DEEP: dict[str, list[dict[str, Any]]] = {
    **BANDS,
    "easy": [
        {"chain_length": 2, "red_herrings": 0},
        {"chain_length": 2, "red_herrings": 1},
    ],
}
# chain-1-only mechanisms reach the upper bands through decoys and size instead of depth
FLAT: dict[str, list[dict[str, Any]]] = {
    "easy": [{"red_herrings": 0}, {"red_herrings": 1}],
    "medium": [{"red_herrings": 3, "n_services": 62}, {"red_herrings": 2, "early_herrings": 1}],
    "hard": [
        {"red_herrings": 3, "early_herrings": 2, "n_services": 64},
        {"red_herrings": 3, "early_herrings": 1, "quiet_culprit": True, "n_services": 60},
        {"red_herrings": 4, "early_herrings": 2, "noise": "high"},
    ],
}
NO_FAULT: list[dict[str, Any]] = [
    {"red_herrings": 0},
    {"red_herrings": 1},
    {"red_herrings": 1},
    {"red_herrings": 2},
    {"red_herrings": 3},
    {"red_herrings": 3, "n_services": 62},
    {"red_herrings": 4, "n_services": 64},
    {"red_herrings": 4, "noise": "high"},
    {"red_herrings": 5, "noise": "high", "n_services": 66},
    {"red_herrings": 2, "n_services": 58},
]


def core_recipes() -> list[dict[str, Any]]:
    rng = random.Random("core-recipes-v1")
    out: list[dict[str, Any]] = []
    base = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)

    def add(mechanism: str, knobs: dict[str, Any], band: str) -> None:
        seed = 10_000 + 37 * len(out) + rng.randint(0, 30)
        fired = base + timedelta(days=rng.randint(0, 80), minutes=rng.randint(0, 24 * 60 - 1))
        r: dict[str, Any] = {
            "mechanism": mechanism,
            "seed": seed,
            "n_services": rng.randint(36, 52),
            "window_hours": 2.5,
            "fired_at": fired.strftime("%Y-%m-%dT%H:%M:00Z"),
        }
        r.update(knobs)
        if r.get("time_offset_s", 0) >= 1800:
            r["window_hours"] = 3.0
        out.append(r)

    for m in FAULTS:
        flat = m in ("consumer_lag", "rebalance_storm")
        for band in ("easy", "medium", "hard"):
            bands = FLAT if flat else DEEP if m in DEEP_ONLY else BANDS
            for knobs in bands[band]:
                if band != "easy":
                    knobs = {"transient_bursts": 2, **knobs}
                add(m, dict(knobs), band)
        # the most common real incidents get more medium worlds
    for m in COMMON:
        for knobs in (
            {"chain_length": 2, "red_herrings": 1},
            {"chain_length": 2, "noise": "high"},
            {"chain_length": 3, "red_herrings": 1, "transient_bursts": 2},
            {"chain_length": 2, "transient_bursts": 2},
        ):
            add(m, {"red_herrings": 0, **knobs}, "medium")
    for i, knobs in enumerate(NO_FAULT * 2):
        add(
            "no_fault",
            {**knobs, "chain_length": 1, "segment": "auto"},
            ["easy", "medium", "hard"][min(2, i % 10 // 3)],
        )
    for pm, knobs in POSTMORTEMS:
        add(STORIES[pm].mechanism, {"transient_bursts": 2, **knobs, "postmortem": pm}, "hard")
    return out


def write_core_recipes(path: Path | None = None) -> Path:
    path = path or project_root() / "environments" / "recipes" / "core.json"
    doc = {
        "name": "core",
        "description": "The core synthetic label set: every implemented mechanism at three difficulty "
        "bands over 36-70 service worlds, ~11% no-fault controls, and hard recreations of public "
        "postmortems that follow their causal stories (AWS DynamoDB DNS 2025, Cloudflare WAF 2019, "
        "Cloudflare bot-management file 2025, CrowdStrike 2024, Knight Capital 2012).",
        "version": "1",
        "recipes": core_recipes(),
    }
    lines = ",\n".join("    " + json.dumps(r, separators=(", ", ": ")) for r in doc["recipes"])
    head = {k: v for k, v in doc.items() if k != "recipes"}
    text = json.dumps(head, indent=2)[:-2] + ',\n  "recipes": [\n' + lines + "\n  ]\n}\n"
    path.write_text(text)
    return path
