"""The simulated weekly run (issue 16): N fresh investigations of the ``core`` family, each on a
world generated for it, sharded across K local processes as Cloud Run Job tasks would be, then
merged with ``proctor merge``, against a fast scripted A2A target on loopback.

    .venv/bin/python tests/benchmarks/bench_weekly.py [--investigations 10000] [--shards 2] [--quick] [--keep DIR]

What "N fresh investigations" means here: N investigations, each on its own freshly generated
world. One run draws one seed (``--instances SEED``: 200 instances of the 200 core recipes), so the
weekly run is N/200 runs, ``weekly-<d>`` with draw seed ``<d>``, each sharded ``--shard i/K``; every
shard process generates only its own slice of its run's worlds (in its own generation workers,
``$PROCTOR_FRESH_JOBS``) and writes its own results database. The K process slots are kept busy
across runs (a slot takes the next run's shard as soon as it is free), as a queue of job tasks would.
Each run's shards are then joined with ``proctor merge --into weekly.db`` (timed one run at a time).

Each shard is ``proctor run`` (the CLI's ``main``, as ``python -m evaluator_agent run`` calls it)
inside this file's ``--as-shard`` wrapper, which adds only the process's resource usage at exit:
its own CPU and peak RSS, and those of its reaped children, which are its generation workers (the
pool is shut down, and so joined, before ``main`` returns). The generation share is the workers'
CPU over the CPU of the shard processes and their workers. It is checked against generation alone
(``_generate`` on a sample of the same draws, in this process, scaled to N).

The target is a raw JSON-RPC route (orjson, no a2a-sdk per message) served by uvicorn in a thread
of this process: its first reply asks for ``get_monitors``, its second names the first service a
``service:`` tag of the results shows, as the root cause. Its CPU is this process's.

Storage: the results databases (shards, merged) in bytes per 1,000 investigations; the fresh-world
cache's bytes written per 1,000 (every world and label file seen, by a poller, before eviction) and
its size at the end (bounded by $PROCTOR_FRESH_CACHE_MAX_BYTES, default 2 GiB, at each run's end).

The machine's load is shown: ``uptime`` before and after, and the CPU that other processes used
during the run (from /proc/stat, less ours). No assertions: the figures are printed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ADK_SUPPRESS_A2A_EXPERIMENTAL_FEATURE_WARNINGS", "1")
os.environ.setdefault("DD_TRACE_ENABLED", "false")

FAMILY = "core"
SERVICE = re.compile(rb"service:([a-z0-9][a-z0-9_.-]*)")


# --------------------------------------------------------------------------- the shard wrapper


def as_shard(out: str, argv: list[str]) -> int:
    """Run ``proctor`` with ``argv`` in this process; write its exit code and resource usage to ``out``."""
    from evaluator_agent.cli.main import main

    t0 = time.perf_counter()
    code = main(argv)
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    Path(out).write_text(json.dumps({
        "code": code, "wall_s": time.perf_counter() - t0,
        "cpu_s": me.ru_utime + me.ru_stime, "maxrss_kb": me.ru_maxrss,
        "workers_cpu_s": kids.ru_utime + kids.ru_stime, "workers_maxrss_kb": kids.ru_maxrss,
    }))
    return code


# --------------------------------------------------------------------------- the target


def target_app() -> Any:
    """The scripted target (module docstring): its card (naming the address it is asked at) and a
    JSON-RPC SendMessage route."""
    import uuid

    import orjson
    from google.protobuf.json_format import MessageToDict
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from tests.targets import card_for

    cards: dict[str, bytes] = {}
    ask = {"tool_calls": [{"id": "m", "name": "get_monitors", "arguments": {}}]}
    started: set[str] = set()

    async def card_route(request: Request) -> Response:
        base = str(request.base_url)
        if base not in cards:
            cards[base] = orjson.dumps(MessageToDict(card_for("weekly", base)))
        return Response(cards[base], media_type="application/json")

    async def rpc(request: Request) -> Response:
        body = await request.body()
        req = orjson.loads(body)
        ctx = req["params"]["message"]["contextId"]
        if ctx not in started:
            started.add(ctx)
            reply: dict[str, Any] = ask
        else:
            started.discard(ctx)
            found = SERVICE.search(body)
            reply = ({"diagnosis": {"root_causes": [{"entity": found.group(1).decode(), "mechanism": "bad_release",
                                                     "confidence": 0.6}], "summary": "alerts first"}}
                     if found else {"diagnosis": {"no_fault": True}})
        msg = {"messageId": uuid.uuid4().hex, "contextId": ctx, "role": "ROLE_AGENT", "parts": [{"data": reply}]}
        return Response(orjson.dumps({"jsonrpc": "2.0", "id": req.get("id"), "result": {"message": msg}}),
                        media_type="application/json")

    return Starlette(routes=[Route("/weekly/.well-known/agent-card.json", card_route),
                             Route("/weekly", rpc, methods=["POST"])])


# --------------------------------------------------------------------------- measuring helpers


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine."""
    parts = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = parts[3] + parts[4]
    return sum(parts) - idle, sum(parts)


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


class CachePoller:
    """Bytes of every world and label file that appears in the fresh-world cache (before
    eviction), and the machine's 1-minute load average, once a second."""

    def __init__(self, directory: Path, every_s: float = 1.0):
        self.directory, self.every_s = directory, every_s
        self.seen: dict[str, int] = {}
        self.peak = 0
        self.loads: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="cache-poller", daemon=True)

    def _scan(self) -> None:
        now = 0
        for sub in (self.directory, self.directory / "labels"):
            try:
                entries = list(os.scandir(sub))
            except FileNotFoundError:
                continue
            for e in entries:
                if e.name.startswith(".") or not e.name.endswith((".json.gz", ".json")):
                    continue
                try:
                    size = e.stat().st_size
                except FileNotFoundError:
                    continue
                now += size
                self.seen[f"{sub.name}/{e.name}"] = size
        self.peak = max(self.peak, now)

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self._scan()
            self.loads.append(float(Path("/proc/loadavg").read_text().split()[0]))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._scan()

    def written(self) -> tuple[int, int, int]:
        """(world bytes, label bytes, worlds) seen."""
        worlds = [v for k, v in self.seen.items() if k.endswith(".json.gz")]
        return sum(worlds), sum(v for k, v in self.seen.items() if not k.endswith(".json.gz")), len(worlds)


def dir_bytes(d: Path) -> int:
    return sum(p.stat().st_size for p in d.rglob("*") if p.is_file())


def generation_alone(draws: list[int], sample: int, directory: Path) -> tuple[float, int]:
    """CPU seconds of generating ``sample`` instances of the weekly draws here (as a worker does:
    ``fresh._generate``, into a scratch cache), spread over the draws; and how many."""
    from evaluator_agent.worldgen.fresh import FreshInstances, _generate

    source = FreshInstances(directory, jobs=0)
    family = source.family(FAMILY)
    assert family is not None
    plans = {d: source.plan(family, d) for d in draws}
    picks = [(draws[k % len(draws)], (k * 37) % family.size) for k in range(sample)]
    jobs = [source.job(family, d, plans[d][i], False, "bench") for d, i in picks]
    _generate(jobs[0])  # imports and first-call costs out of the figure
    t0 = time.process_time()
    for j in jobs:
        _generate(j)
    return time.process_time() - t0, len(jobs)


# --------------------------------------------------------------------------- the weekly run


def run_week(a: argparse.Namespace, work: Path) -> dict[str, Any]:
    from tests.conftest import serving_in_thread

    cache = work / "fresh-cache"
    dbs = work / "dbs"
    logs = work / "logs"
    for d in (cache, dbs, logs):
        d.mkdir(parents=True, exist_ok=True)
    size = 200
    draws = [a.seed + d for d in range(math.ceil(a.investigations / size))]
    env = {**os.environ, "PROCTOR_FRESH_CACHE": str(cache), "PROCTOR_FRESH_JOBS": str(a.gen_jobs),
           "DD_TRACE_ENABLED": "false", "PYTHONPATH": str(ROOT)}
    for k in [k for k in env if k.startswith(("DD_API_KEY", "DATADOG_", "CLOUD_RUN_"))]:
        env.pop(k)
    tasks = [(d, i) for d in draws for i in range(a.shards)]
    stats: dict[tuple[int, int], dict[str, Any]] = {}
    poller = CachePoller(cache)
    load_before = uptime()
    with serving_in_thread(target_app()) as base:
        card = f"{base}/weekly/.well-known/agent-card.json"
        poller.start()
        busy0, total0 = cpu_ticks()
        me0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        running: dict[tuple[int, int], subprocess.Popen[bytes]] = {}
        spans: dict[tuple[int, int], list[float]] = {}  # (start, end) of each shard process
        queue = list(tasks)
        while queue or running:
            while queue and len(running) < a.shards:
                d, i = queue.pop(0)
                spans[(d, i)] = [time.perf_counter() - t0]
                out = logs / f"weekly-{d}.shard-{i}.json"
                argv = ["run", "--target", card, "--labelset", FAMILY, "--instances", str(d),
                        "--shard", f"{i}/{a.shards}", "--run-id", f"weekly-{d}", "--db", str(dbs / f"weekly-{d}.shard-{i}.db"),
                        "--concurrency", str(a.concurrency), "--quiet", "--brief"]
                with open(logs / f"weekly-{d}.shard-{i}.log", "wb") as log:
                    running[(d, i)] = subprocess.Popen([sys.executable, __file__, "--as-shard", str(out), "--", *argv],
                                                       stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
            time.sleep(0.05)
            for key, p in list(running.items()):
                if p.poll() is not None:
                    del running[key]
                    spans[key].append(time.perf_counter() - t0)
                    out = logs / f"weekly-{key[0]}.shard-{key[1]}.json"
                    stats[key] = json.loads(out.read_text()) if out.is_file() else {"code": p.returncode}
                    if stats[key].get("code") not in (0, None):
                        print(f"shard {key} exited {stats[key]['code']}: see {logs}", file=sys.stderr)
        wall = time.perf_counter() - t0
        busy1, total1 = cpu_ticks()
        me1 = resource.getrusage(resource.RUSAGE_SELF)
        poller.stop()
    load_after = uptime()
    shard_dbs = sorted(dbs.glob("weekly-*.shard-*.db"))
    shard_db_bytes = sum(p.stat().st_size for p in shard_dbs)

    # merge: one run at a time, as `proctor merge` would be called for each
    weekly = work / "weekly.db"
    merges: list[float] = []
    for d in draws:
        parts = [str(dbs / f"weekly-{d}.shard-{i}.db") for i in range(a.shards)]
        m0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "evaluator_agent", "merge", "--into", str(weekly), *parts],
                       check=False, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        merges.append(time.perf_counter() - m0)
    # the same merges in-process (no interpreter start): what merging itself costs
    from evaluator_agent.results.merge import merge as merge_runs
    from evaluator_agent.results.store import Store

    inproc = work / "weekly-inproc.db"
    store = Store(str(inproc))
    m0 = time.perf_counter()
    for d in draws:
        merge_runs(store, [str(dbs / f"weekly-{d}.shard-{i}.db") for i in range(a.shards)])
    merge_inproc = time.perf_counter() - m0
    store.close()

    con = sqlite3.connect(weekly)
    rows = con.execute("select run_id, count(*), sum(passed), sum(error_kind is not null and error_kind != ''), "
                       "sum(turns) from investigations group by run_id").fetchall()
    con.close()
    per_run = {r[0]: {"n": r[1], "passed": r[2], "errors": r[3], "turns": r[4]} for r in rows}
    counted = {"n": sum(r["n"] for r in per_run.values()), "passed": sum(r["passed"] for r in per_run.values()),
               "errors": sum(r["errors"] for r in per_run.values()), "turns": sum(r["turns"] for r in per_run.values())}
    for d, m in zip(draws, merges, strict=True):
        run = per_run.setdefault(f"weekly-{d}", {"n": 0, "passed": 0, "errors": 0, "turns": 0})
        run["merge_s"] = m
        mine = [spans[(d, i)] for i in range(a.shards) if len(spans.get((d, i), ())) == 2]
        run["wall_s"] = max(e for _, e in mine) - min(b for b, _ in mine) if mine else 0.0
        run["cpu_s"] = sum(stats[(d, i)].get("cpu_s", 0) + stats[(d, i)].get("workers_cpu_s", 0)
                           for i in range(a.shards) if (d, i) in stats)

    gen_cpu, gen_n = generation_alone(draws, a.sample, work / "scratch-cache")
    world_b, label_b, n_worlds = poller.written()
    return {
        "draws": draws, "stats": stats, "wall_s": wall, "merges": merges, "merge_inproc_s": merge_inproc,
        "busy_s": (busy1 - busy0) / os.sysconf("SC_CLK_TCK"), "machine_s": (total1 - total0) / os.sysconf("SC_CLK_TCK"),
        "target_cpu_s": (me1.ru_utime + me1.ru_stime) - (me0.ru_utime + me0.ru_stime),
        "load_before": load_before, "load_after": load_after, "counted": counted, "per_run": per_run,
        "loads": poller.loads,
        "shard_db_bytes": shard_db_bytes, "weekly_db_bytes": weekly.stat().st_size if weekly.exists() else 0,
        "cache_world_bytes": world_b, "cache_label_bytes": label_b, "cache_worlds": n_worlds,
        "cache_peak_bytes": poller.peak, "cache_end_bytes": dir_bytes(cache),
        "gen_alone_cpu_s": gen_cpu, "gen_alone_n": gen_n,
    }


def report(a: argparse.Namespace, r: dict[str, Any]) -> None:
    stats = list(r["stats"].values())
    n = r["counted"].get("n") or len(r["draws"]) * 200
    cores = os.cpu_count() or 1
    shard_cpu = sum(s.get("cpu_s", 0.0) for s in stats)
    worker_cpu = sum(s.get("workers_cpu_s", 0.0) for s in stats)
    ours = shard_cpu + worker_cpu + r["target_cpu_s"]
    per_h = n / r["wall_s"] * 3600
    gen_alone = r["gen_alone_cpu_s"] / max(1, r["gen_alone_n"])
    per_k = 1000 / n
    other = max(0.0, r["busy_s"] - ours)
    loads = r["loads"] or [0.0]
    rows = [
        ("command", f"bench_weekly.py --investigations {a.investigations} --shards {a.shards} "
                    f"--concurrency {a.concurrency} --gen-jobs {a.gen_jobs}"),
        ("investigations", f"{n} ({len(r['draws'])} runs x 200 fresh worlds; draw seeds {r['draws'][0]}..{r['draws'][-1]}); "
                           f"passed {r['counted'].get('passed')}, errors {r['counted'].get('errors')}, turns {r['counted'].get('turns')}"),
        ("shards", f"{a.shards} per run ({len(stats)} shard processes, {a.gen_jobs} generation worker(s) each)"),
        ("wall", f"{r['wall_s']:.1f} s (shards; merge not included)"),
        ("investigations/hour", f"{per_h:,.0f}"),
        ("investigations/hour/core", f"{per_h / cores:,.0f} ({cores} cores)"),
        ("if the cores were ours", f"{cores * 3600 / (ours / n):,.0f} investigations/hour ({cores} cores / CPU per investigation)"),
        ("CPU used", f"shards {shard_cpu:.0f} s + generation workers {worker_cpu:.0f} s + target {r['target_cpu_s']:.0f} s "
                     f"= {ours:.0f} s = {ours / n * 1000:.0f} ms/investigation; machine capacity {r['machine_s']:.0f} s"),
        ("other work meanwhile", f"{other:.0f} CPU s ({other / r['wall_s']:.2f} cores) besides ours"),
        ("generation share", f"{worker_cpu / max(1e-9, shard_cpu + worker_cpu):.0%} of the shard processes' CPU "
                             f"({worker_cpu / n * 1000:.0f} ms/world in the workers); generation alone: {gen_alone * 1000:.0f} ms/world "
                             f"x {n} = {gen_alone * n:.0f} s ({r['gen_alone_n']} sampled)"),
        ("results DB per 1,000", f"shards {r['shard_db_bytes'] * per_k / 1e6:.2f} MB, merged {r['weekly_db_bytes'] * per_k / 1e6:.2f} MB"),
        ("fresh cache per 1,000", f"{(r['cache_world_bytes'] + r['cache_label_bytes']) * per_k / 1e6:.0f} MB written "
                                  f"({r['cache_worlds']} worlds, {r['cache_world_bytes'] / max(1, r['cache_worlds']) / 1e3:.0f} kB each; "
                                  f"labels {r['cache_label_bytes'] * per_k / 1e6:.1f} MB); peak on disk {r['cache_peak_bytes'] / 1e6:.0f} MB, "
                                  f"at the end {r['cache_end_bytes'] / 1e6:.0f} MB (bound {os.environ.get('PROCTOR_FRESH_CACHE_MAX_BYTES', '2 GiB')})"),
        ("merge", f"{sum(r['merges']):.1f} s for {len(r['merges'])} runs with `proctor merge` "
                  f"({sum(r['merges']) / len(r['merges']):.2f} s each, interpreter start included); "
                  f"{r['merge_inproc_s']:.1f} s in process"),
        ("peak RSS", f"shard process {max(s.get('maxrss_kb', 0) for s in stats) / 1024:.0f} MB, "
                     f"generation worker {max(s.get('workers_maxrss_kb', 0) for s in stats) / 1024:.0f} MB"),
        ("shard wall", f"{min(s.get('wall_s', 0) for s in stats):.1f}..{max(s.get('wall_s', 0) for s in stats):.1f} s"),
        ("load during", f"1-minute load average {min(loads):.2f}..{max(loads):.2f}, mean {sum(loads) / len(loads):.2f}"),
        ("load before", r["load_before"]),
        ("load after", r["load_after"]),
    ]
    width = max(len(k) for k, _ in rows)
    print()
    print(f"{'run':<14} {'n':>4} {'passed':>6} {'errors':>6} {'turns':>5} {'wall s':>7} {'CPU s':>6} {'merge s':>7}")
    for run_id, x in sorted(r["per_run"].items()):
        print(f"{run_id:<14} {x['n']:>4} {x['passed']:>6} {x['errors']:>6} {x['turns']:>5} {x.get('wall_s', 0):>7.1f} "
              f"{x.get('cpu_s', 0):>6.1f} {x.get('merge_s', 0):>7.2f}")
    print()
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--as-shard":
        sys.exit(as_shard(sys.argv[2], sys.argv[4:] if sys.argv[3] == "--" else sys.argv[3:]))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--investigations", type=int, default=10_000, help="rounded up to whole runs of 200")
    ap.add_argument("--shards", type=int, default=os.cpu_count() or 2, help="shard processes per run (run at once)")
    ap.add_argument("--quick", action="store_true", help="600 investigations, for a first look")
    ap.add_argument("--keep", help="work in DIR and keep it (databases, logs, cache)")
    ap.add_argument("--concurrency", type=int, default=4, help="investigations at once per shard")
    ap.add_argument("--gen-jobs", type=int, default=1, help="generation workers per shard ($PROCTOR_FRESH_JOBS)")
    ap.add_argument("--seed", type=int, default=1_000, help="the first run's draw seed")
    ap.add_argument("--sample", type=int, default=20, help="instances generated alone to check the generation share")
    a = ap.parse_args()
    if a.quick:
        a.investigations = 600
    if a.keep:
        work = Path(a.keep)
        if work.exists() and any(work.iterdir()):
            sys.exit(f"--keep {work}: not empty; give a new or empty directory")
        work.mkdir(parents=True, exist_ok=True)
        report(a, run_week(a, work))
    else:
        with tempfile.TemporaryDirectory(prefix="bench-weekly-") as tmp:
            report(a, run_week(a, Path(tmp)))


if __name__ == "__main__":
    main()
