"""Results store at batch scale: recording, checkpointing, restoring and merging shards.

    .venv/bin/python tests/benchmarks/bench_store.py [--investigations 10000] [--shards 10] [--calls 24]

Synthetic investigations shaped like real ones (turns, tool calls with arguments and 500-byte
result previews, a diagnosis, score details) are recorded into N shard databases as
`proctor run --shard I/N` would, one checkpointed as it goes; then the shards are merged into
one run as `proctor merge` does. Prints throughput, database sizes, the time a checkpoint
blocks the recorder (it should not: the copy runs on its own connection in a thread), restore
time on a fresh disk and merge time.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from evaluator_agent.core.records import InvestigationResult, ToolCallRecord, TurnRecord  # noqa: E402
from evaluator_agent.results.merge import merge  # noqa: E402
from evaluator_agent.results.store import Store  # noqa: E402

TOOLS = ["get_monitors", "search_logs", "query_metrics", "aggregate_logs", "search_spans", "get_events"]


def fake(i: int, label: str, attempt: int, calls: int, rng: random.Random) -> InvestigationResult:
    t0 = 1_700_000_000.0 + i
    turns = max(2, calls // 3)
    r = InvestigationResult(
        investigation_id=f"inv_{i:08x}", label_id=label, attempt=attempt, context_id=f"ctx_{i}", started_at=t0,
        world="ab" * 32, finished_at=t0 + rng.uniform(5, 60), end_reason="diagnosis", score=rng.random(),
        passed=rng.random() < 0.5, subscores={d: rng.random() for d in ("root_cause", "mechanism", "chain", "onset", "evidence")},
        explanation="root cause matched at rank 1; mechanism wrong; chain F1 0.50 " * 3,
        score_details={"matched": ["svc-a", "svc-b"], "chain": [["svc-a", "svc-b"], ["svc-b", "svc-c"]], "notes": "x" * 300},
        diagnosis={"root_causes": [{"service": "svc-a", "mechanism": "bad_deploy", "confidence": 0.7}], "summary": "y" * 400},
        turns=turns, tool_calls=calls,
    )
    r.turn_records = [TurnRecord(k, "tool_calls", 900, 0.5, 3) for k in range(1, turns + 1)]
    r.call_records = [ToolCallRecord(1 + k // 3, f"c{k}", TOOLS[k % len(TOOLS)],
                                     {"query": "service:checkout status:error", "from": "now-1h", "limit": 50},
                                     True, None, 12_000, rng.uniform(0.2, 5), "z" * 500) for k in range(calls)]
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--investigations", type=int, default=10_000)
    ap.add_argument("--shards", type=int, default=10)
    ap.add_argument("--calls", type=int, default=24, help="tool calls per investigation")
    a = ap.parse_args()
    rng = random.Random(7)
    tmp = Path(tempfile.mkdtemp(prefix="bench-store-"))
    labels = [f"lbl_{k:010x}" for k in range(a.investigations // 5)]
    pairs = [(lb, att) for att in range(1, 6) for lb in labels][: a.investigations]
    manifest = {"run_id": "run_bench", "target": {"url": "http://agent/card", "name": "bench", "version": "1"},
                "labelset": {"name": "bench", "hash": "h" * 16}, "options": {"attempts": 5},
                "label_ids": labels}

    per_shard = [pairs[i:: a.shards] for i in range(a.shards)]
    shard_paths = []
    t_record = 0.0
    worst_block = 0.0
    ckpt_copies = 0
    for i, work in enumerate(per_shard):
        path = tmp / f"shard{i}.db"
        shard_paths.append(str(path))
        checkpoint = tmp / "bucket" / f"run_bench.shard-{i}-of-{a.shards}.db" if i == 0 else None
        store = Store(path, checkpoint=checkpoint, checkpoint_interval_s=0.0)
        if checkpoint is not None:
            original = store._ckpt._snapshot_and_publish

            def counted(original=original) -> None:
                nonlocal ckpt_copies
                ckpt_copies += 1
                original()

            store._ckpt._snapshot_and_publish = counted  # type: ignore[method-assign]
        store.create_run("run_bench", manifest | {"shard": {"index": i, "count": a.shards}})
        t0 = time.perf_counter()
        for n, (lb, att) in enumerate(work):
            inv = fake(i * 10**6 + n, lb, att, a.calls, rng)
            t = time.perf_counter()
            store.record_investigation("run_bench", inv)
            if checkpoint is not None:
                worst_block = max(worst_block, time.perf_counter() - t)
        t_record += time.perf_counter() - t0
        store.finish_run("run_bench", "completed", {"n": len(work)})
        store.close()
    sizes = [Path(p).stat().st_size for p in shard_paths]
    ckpt = tmp / "bucket" / f"run_bench.shard-0-of-{a.shards}.db"

    t0 = time.perf_counter()
    fresh = Store(tmp / "fresh" / "p.db", checkpoint=ckpt)
    t_restore = time.perf_counter() - t0
    restored = fresh.counts("run_bench")["investigations"]
    fresh.close()

    into = Store(tmp / "merged.db")
    t0 = time.perf_counter()
    facts = merge(into, shard_paths)
    t_merge = time.perf_counter() - t0
    counts = into.counts("run_bench")
    into.close()
    t0 = time.perf_counter()
    into = Store(tmp / "merged.db")
    merge(into, shard_paths)
    t_remerge = time.perf_counter() - t0
    into.close()

    n = len(pairs)
    print(f"store: {n} investigations x {a.calls} tool calls in {a.shards} shards ({tmp})")
    print(f"  record              {n / t_record:.0f} investigations/s ({t_record / n * 1000:.2f} ms each, turns and calls included)")
    print(f"  shard database      {sum(sizes) / len(sizes) / 2**20:.1f} MiB each ({sum(sizes) / n / 1024:.1f} KiB per investigation)")
    print(f"  checkpointing       shard 0 at interval 0 (a copy whenever none is under way): {ckpt_copies} copies "
          f"for {len(per_shard[0])} investigations; worst record() call meanwhile {worst_block * 1000:.1f} ms")
    print(f"  restore             {restored} investigations from the checkpoint on a fresh disk in {t_restore:.2f} s")
    print(f"  merge               {a.shards} shards -> {counts['investigations']} investigations, {counts['tool_calls']} tool calls "
          f"in {t_merge:.1f} s ({counts['investigations'] / t_merge:.0f}/s); status {facts[0]['status']}")
    print(f"  merge again         {t_remerge:.1f} s (idempotent: the same rows again)")


if __name__ == "__main__":
    main()
