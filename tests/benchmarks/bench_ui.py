"""The web interface's run and investigation pages on a big run: server-side rendering time.

    .venv/bin/python tests/benchmarks/bench_ui.py [--investigations 10000] [--labels 200] [--repeats 7]

Builds a temporary results database with one completed run of N synthetic investigations
(plausible, varied values: outcomes with a few infra errors, end reasons, scores, ~3 tool calls
each over a few turns, a diagnosis and score details shaped like the scorer's; label ids cycling
over ``--labels`` ids with a frozen ``manifest.label_meta``; the summary computed by the store),
then renders through ``starlette.testclient.TestClient`` (in process: the time is the server's,
not a network's) the run page (first page, a filtered page, a sorted page, the last page) and an
investigation page, each ``--repeats`` times, and prints median and max milliseconds per variant.
The first request (which builds the browsing index) is timed apart. Prints figures; asserts
nothing.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from evaluator_agent.core.records import InvestigationResult, RunStatus, ToolCallRecord, TurnRecord  # noqa: E402
from evaluator_agent.core.vocab import MECHANISM_INFO  # noqa: E402
from evaluator_agent.results.store import Store  # noqa: E402

TOOLS = ("get_monitors", "search_logs", "query_metrics", "aggregate_logs", "search_spans", "get_events", "get_service_map")
TIERS = ("easy", "medium", "hard")
SERVICES = ("checkout", "payments", "catalog", "catalog-redis", "orders-db", "web-bff", "api-gateway", "inventory")


def label_meta_for(n_labels: int, rng: random.Random) -> dict[str, dict[str, Any]]:
    """Frozen label metadata shaped like ``results.runs.frozen_label_meta``."""
    mechanisms = [m for m in MECHANISM_INFO if m != "no_fault"]
    meta = {}
    for i in range(n_labels):
        mech = mechanisms[i % len(mechanisms)] if i % 17 else "no_fault"
        segment, category = MECHANISM_INFO[mech]
        meta[f"lbl_{i:06d}{rng.getrandbits(16):04x}"] = {
            "family": f"synthetic/{mech}", "segment": segment, "technologies": ["kubernetes", rng.choice(["postgres", "kafka", "redis"])],
            "problem_category": category, "monitor_type": rng.choice(["metric alert", "query alert", "log alert"]),
            "mechanism": mech, "tier": TIERS[i % 3],
        }
    return meta


def fake_investigation(k: int, label_id: str, attempt: int, meta: dict[str, Any], rng: random.Random) -> InvestigationResult:
    t0 = 1_760_000_000.0 + k * 3.7
    roll = rng.random()
    tier_skill = {"easy": 0.8, "medium": 0.55, "hard": 0.3}[meta["tier"]]
    infra = roll < 0.03
    if infra:
        kind = rng.choice(["network", "harness"])
        end_reason, score, passed = ("target_unreachable" if kind == "network" else "harness_error"), 0.0, False
    else:
        kind = None
        end_reason = "diagnosis" if rng.random() < 0.85 else rng.choice(["max_turns", "timeout", "malformed_replies", "turn_timeout"])
        score = round(min(1.0, max(0.0, rng.gauss(tier_skill, 0.25))), 4) if end_reason == "diagnosis" else round(rng.random() * 0.3, 4)
        passed = end_reason == "diagnosis" and score >= 0.7
    n_turns = 0 if infra else rng.randint(2, 4)
    n_calls = 0 if infra else rng.randint(2, 4)
    entity = rng.choice(SERVICES)
    r = InvestigationResult(
        investigation_id=f"inv_{k:016x}", label_id=label_id, attempt=attempt, context_id=f"ctx-{k}", started_at=t0,
        world=f"{k:064x}"[-64:], finished_at=t0 + rng.uniform(2, 90), end_reason=end_reason, error_kind=kind,
        error=("connection refused by the target" if kind == "network" else "harness failure") if infra else None,
        score=score, passed=passed,
        subscores={} if infra else {d: round(rng.random(), 3) for d in ("root_cause", "mechanism", "causal_chain", "onset", "evidence")},
        explanation="" if infra else (f"Top candidate {entity} vs root cause {rng.choice(SERVICES)}. Mechanism {meta['mechanism']} "
                                      f"{'correct' if passed else 'wrong'}. Causal chain F1 {rng.random():.2f}. Score {score:.2f}."),
        score_details={} if infra else {
            "weights": {"root_cause": 0.45, "mechanism": 0.35, "causal_chain": 0.1, "evidence": 0.05, "onset": 0.05},
            "pass_threshold": 0.7, "matched_rank": 1 if passed else None, "root_cause_ranks": {entity: 1},
            "truth_path": [entity, "catalog", "web-bff"], "predicted_path": [entity, "web-bff"],
            "accuracy": {"ac_at_1": passed, "ac_at_3": passed or rng.random() < 0.3, "mechanism": passed},
            "evidence": [{"tool": "query_metrics", "expect": "errors", "found": "viewed"}], "onset_error_s": rng.uniform(0, 600),
        },
        diagnosis=None if infra or end_reason != "diagnosis" else {
            "no_fault": False,
            "root_causes": [{"entity": entity, "mechanism": meta["mechanism"], "confidence": round(rng.random(), 2)},
                            {"entity": rng.choice(SERVICES), "mechanism": "bad_release", "confidence": 0.2}],
            "causal_chain": [{"source": entity, "target": "web-bff"}], "onset": "2026-02-24T19:42:00Z",
            "evidence": [{"tool_call_id": f"c{k}.0", "description": f"{entity} errors 5x their baseline"}],
            "summary": f"{entity} is the root cause ({meta['mechanism']}); " + "its errors climb since the onset. " * 6,
        },
        turns=n_turns + (0 if infra else 1), tool_calls=n_calls, invalid_calls=int(rng.random() < 0.05),
        red_herrings_chased=int(rng.random() < 0.2), calls_by_surface={"a2a": n_calls} if n_calls else {},
    )
    r.turn_records = [TurnRecord(t, "tool_calls", rng.randint(200, 1500), rng.uniform(0.1, 4), n_calls=0) for t in range(1, n_turns + 1)]
    r.call_records = []
    for c in range(n_calls):
        turn = 1 + c % max(1, n_turns)
        tool = TOOLS[(k + c) % len(TOOLS)]
        r.call_records.append(ToolCallRecord(
            turn, f"c{k}.{c}", tool, {"query": f"service:{rng.choice(SERVICES)} status:error", "from": "now-2h", "limit": 100},
            rng.random() > 0.04, None, rng.randint(300, 60_000), rng.uniform(0.2, 30),
            '{"series":[{"metric":"trace.http.request.errors","points":[[1771961360,0.0578],' + "[1771961420,0.06]," * 20 + "]}]}"))
    for t in r.turn_records:
        t.n_calls = sum(1 for c in r.call_records if c.turn == t.idx)
    if not infra:
        r.turn_records.append(TurnRecord(n_turns + 1, "diagnosis" if end_reason == "diagnosis" else "invalid",
                                         rng.randint(800, 3000), rng.uniform(0.5, 6),
                                         error=None if end_reason == "diagnosis" else f"the reply ended the investigation: {end_reason}"))
    return r


def synth_run(store: Store, n: int = 10_000, n_labels: int = 200, *, seed: int = 7, run_id: str = "run_bench_ui",
              owner: str | None = None, target: str = "bench-agent") -> dict[str, Any]:
    """Record one completed run of ``n`` synthetic investigations; returns its run id and label metadata."""
    rng = random.Random(seed)
    meta = label_meta_for(n_labels, rng)
    ids = list(meta)
    attempts = -(-n // n_labels)
    manifest = {
        "run_id": run_id, "target": {"name": target, "version": "1.2.3", "url": "http://127.0.0.1:9/bench"},
        "labelset": {"name": "bench", "hash": "b" * 64, "version": "1", "private": False},
        "proctor_version": "bench", "git_rev": "bench", "options": {"attempts": attempts},
        "label_ids": ids, "owner": owner, "label_meta": meta,
    }
    store.create_run(run_id, manifest)
    for k in range(n):
        lid = ids[k % n_labels]
        store.record_investigation(run_id, fake_investigation(k, lid, 1 + k // n_labels, meta[lid], rng))
    run = store.get_run(run_id)
    assert run is not None
    store.finish_run(run_id, RunStatus.COMPLETED, store.run_summary(run, store.investigations(run_id)))
    return {"run_id": run_id, "label_meta": meta, "label_ids": ids}


def _time(client: Any, url: str, repeats: int) -> tuple[list[float], int, int]:
    times, status, size = [], 0, 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        r = client.get(url)
        times.append((time.perf_counter() - t0) * 1000)
        status, size = r.status_code, len(r.content)
    return times, status, size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--investigations", type=int, default=10_000)
    ap.add_argument("--labels", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()

    from starlette.testclient import TestClient

    from evaluator_agent.web.app import UIConfig, ui_app

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "results.db"
        t0 = time.perf_counter()
        store = Store(path)
        made = synth_run(store, args.investigations, args.labels)
        store.close()
        print(f"built {args.investigations} investigations over {args.labels} labels in {time.perf_counter() - t0:.1f} s "
              f"({path.stat().st_size / 1e6:.1f} MB)")
        run_id, ids, meta = made["run_id"], made["label_ids"], made["label_meta"]
        client = TestClient(ui_app(path, config=UIConfig(disclosure="full")), base_url="http://testserver")
        pages = -(-args.investigations // 50)
        segment = meta[ids[0]]["segment"]
        first, status, size = _time(client, f"/runs/{run_id}", 1)
        print(f"first request (creates the browsing index): {first[0]:.0f} ms, status {status}")
        variants = {
            "run page, first page": f"/runs/{run_id}",
            "run page, filtered (segment, tier, outcome)": f"/runs/{run_id}?segment={segment}&tier=hard&outcome=fail",
            "run page, filtered (end reason)": f"/runs/{run_id}?end_reason=timeout",
            "run page, sorted (score desc)": f"/runs/{run_id}?sort=score&dir=desc",
            "run page, sorted (duration), page 100": f"/runs/{run_id}?sort=duration&page=100",
            "run page, last page": f"/runs/{run_id}?page={pages}",
            "investigation page": f"/runs/{run_id}/investigations/{ids[3]}/2",
        }
        print(f"{'variant':45} {'median ms':>10} {'max ms':>8} {'status':>6} {'KB':>6}")
        for name, url in variants.items():
            times, status, size = _time(client, url, args.repeats)
            print(f"{name:45} {statistics.median(times):10.1f} {max(times):8.1f} {status:6d} {size / 1024:6.1f}")


if __name__ == "__main__":
    main()
