"""``proctor capture`` against the local Datadog REST facade: the core world with the most
services (over 60), 60 of them captured from its page, the whole world's window.

    .venv/bin/python tests/benchmarks/bench_capture.py [--repeat 2]

The facade serves the world from a thread of this process, so this is the capture's own cost
plus the facade's; real Datadog adds network latency (``--workers`` then matters). Goal: a
60-service incident in under 60 s.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def main() -> int:
    from tests.test_capture import big_options, big_world, run, serve_world

    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    lb, data = big_world()
    print(f"capture benchmark: {lb.id}, a world of {len(data['topology']['services'])} services, 60 captured")
    with serve_world(data) as served:
        for i in range(a.repeat):
            with tempfile.TemporaryDirectory(prefix="bench-capture-") as tmp:
                t0 = time.perf_counter()
                r = run(served, big_options(lb, data), Path(tmp), f"run{i}")
                seconds = time.perf_counter() - t0
            print(f"  run {i + 1}: {seconds:.2f} s (goal < 60), {r.requests} requests ({r.requests / seconds:.0f}/s), {r.counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
