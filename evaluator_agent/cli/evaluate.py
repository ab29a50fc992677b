"""``proctor serve``, ``proctor run`` (shards, checkpoints, resume) and ``proctor merge``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

from evaluator_agent.cli.common import (
    EXIT_DEGRADED,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_REGRESSION,
    EXIT_USAGE,
    Progress,
    _disclosure,
    _warn_degraded,
    _write_json,
)
from evaluator_agent.core.envvars import env_float as _env_float
from evaluator_agent.results.merge import checkpoint_path


def _install_instances() -> Any:
    """The process's instance source: fresh instances of families, generated here (engine/instances.py)."""
    from evaluator_agent.engine.instances import install
    from evaluator_agent.worldgen.fresh import FreshInstances

    source = FreshInstances()
    install(source)
    return source


def cmd_serve(a: argparse.Namespace) -> int:
    from evaluator_agent.datadog import observability
    from evaluator_agent.service.server import create_app, run_server

    observability.configure(dry_run=a.datadog_dry_run)
    _install_instances()  # requests may ask for fresh instances of a family
    public = a.public_url or os.environ.get("PROCTOR_PUBLIC_URL") or f"http://{'127.0.0.1' if a.host in ('0.0.0.0', '::') else a.host}:{a.port}"
    # The service's results: the local database, copied to DIR/proctor-service.db when a durable
    # directory is given (Cloud Run: a Cloud Storage volume), and restored from there on start.
    checkpoint = str(Path(a.checkpoint_dir) / "proctor-service.db") if a.checkpoint_dir else None
    try:
        app = create_app(a.db, public_url=public, checkpoint=checkpoint, disclosure_policy=a.disclosure)
    except (OSError, ValueError, sqlite3.DatabaseError) as e:
        print(f"proctor serve: {e}", file=sys.stderr)
        return EXIT_USAGE
    run_server(app, a.host, a.port, log_level=a.log_level, drain_s=_env_float("PROCTOR_DRAIN_S", 8.0))
    return EXIT_OK


def _request_from_args(a: argparse.Namespace) -> dict[str, Any]:
    req: dict[str, Any] = {
        "target": a.target, "labelset": a.labelset, "attempts": a.attempts, "concurrency": a.concurrency,
        "noise": a.noise,
        "budget": {"max_turns": a.max_turns, "timeout_s": a.timeout, "turn_timeout_s": a.turn_timeout},
    }
    if a.labels:
        req["labels"] = [x for s in a.labels for x in s.split(",") if x]
    if a.run_id:
        req["run_id"] = a.run_id
    if getattr(a, "surfaces", None):
        req["surfaces"] = [x.strip() for x in a.surfaces.split(",") if x.strip()]
    if getattr(a, "instances", "stored") != "stored":
        req["instances"] = a.instances
    return req


def parse_instances(text: str) -> str | int:
    """``--instances``: stored, fresh, or a draw seed (an integer)."""
    if text in ("stored", "fresh"):
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected stored, fresh or a draw seed (an integer)") from None


def _env_shard() -> str | None:
    """I/N from Cloud Run Jobs' CLOUD_RUN_TASK_INDEX / CLOUD_RUN_TASK_COUNT, when both are set."""
    i, n = os.environ.get("CLOUD_RUN_TASK_INDEX"), os.environ.get("CLOUD_RUN_TASK_COUNT")
    return f"{i}/{n}" if i is not None and n is not None else None


def _checkpoint_interval() -> float:
    """Seconds between checkpoint copies while a run goes ($PROCTOR_CHECKPOINT_INTERVAL, default 15)."""
    return _env_float("PROCTOR_CHECKPOINT_INTERVAL", 15.0)


def cmd_run(a: argparse.Namespace) -> int:
    from evaluator_agent.core.records import RequestError
    from evaluator_agent.datadog import observability
    from evaluator_agent.engine.lifecycle import Lifecycle, RunInterrupted, resume_request
    from evaluator_agent.engine.orchestrator import new_run_id, parse_shard, prepare
    from evaluator_agent.engine.request import parse_request
    from evaluator_agent.engine.transport import make_http_client
    from evaluator_agent.results.disclosure import disclose_result
    from evaluator_agent.results.store import Store
    from evaluator_agent.results.text import result_text

    policy = _disclosure(a)
    try:
        shard = parse_shard(a.shard if a.shard is not None else _env_shard())
    except RequestError as e:
        print(f"proctor run: {e}", file=sys.stderr)
        return EXIT_USAGE
    if shard is not None and not a.resume and not a.run_id:
        print("proctor run: --shard needs --run-id (every shard of a run records the same run id; "
              "on Cloud Run Jobs it is $CLOUD_RUN_EXECUTION)", file=sys.stderr)
        return EXIT_USAGE
    if not a.resume and not a.run_id and a.checkpoint_dir:
        a.run_id = new_run_id()  # the checkpoint is named after the run: name it before it starts
    run_name = a.resume or a.run_id
    checkpoint = checkpoint_path(a.checkpoint_dir, run_name, shard) if a.checkpoint_dir and run_name else None
    observability.configure(dry_run=a.datadog_dry_run)
    try:
        store = Store(a.db, checkpoint=checkpoint, checkpoint_interval_s=_checkpoint_interval())
    except (OSError, ValueError, sqlite3.DatabaseError) as e:
        print(f"proctor run: cannot open results ({a.db}, checkpoint {checkpoint}): {e}", file=sys.stderr)
        return EXIT_ERROR
    try:
        if a.resume:
            req = resume_request(store, a.resume)
            stored_shard = (store.find_run(a.resume)["manifest"] or {}).get("shard")
            if a.shard is None and stored_shard:
                shard = (int(stored_shard["index"]), int(stored_shard["count"]))
        elif not a.target:
            raise RequestError("give --target URL or set PROCTOR_TARGET (or --resume RUN_ID)")
        else:
            req = parse_request(_request_from_args(a))
    except RequestError as e:
        print(f"proctor run: {e}", file=sys.stderr)
        store.close()
        return EXIT_USAGE

    if a.surfaces_listen.rpartition(":")[2] and not a.surfaces_listen.rpartition(":")[2].isdigit():
        print(f"proctor run: --surfaces-listen {a.surfaces_listen!r}: expected HOST:PORT", file=sys.stderr)
        store.close()
        return EXIT_USAGE
    life = Lifecycle()
    source = _install_instances() if req.instances != "stored" else None

    async def main() -> dict[str, Any]:
        http = make_http_client()
        try:
            async with contextlib.AsyncExitStack() as stack:
                surfaces = None
                if set(req.surfaces or ()) - {"a2a"}:  # a CLI run has no server: serve MCP and REST for it
                    from evaluator_agent.service.surfaces_app import serve_surfaces

                    host, _, port = a.surfaces_listen.rpartition(":")
                    surfaces = await stack.enter_async_context(serve_surfaces(host or "127.0.0.1", int(port or 0), a.surfaces_url))
                    print(f"proctor run: surfaces at {surfaces.mcp_url} (MCP) and {surfaces.rest_url} (REST)", file=sys.stderr)
                with life.admit():
                    prep = await prepare(req, http)
                    bar = Progress(len(prep.work(shard)), quiet=a.quiet)
                    life.on_sigterm(_env_float("PROCTOR_DRAIN_S", 8.0), say=lambda text: print(f"proctor run: {text}", file=sys.stderr, flush=True))
                    return await life.execute(prep, store, shard=shard, disclosure_policy=policy, surfaces=surfaces,
                                              on_progress=lambda d, t, p, _r: bar.update(d, p))
        finally:
            await http.aclose()

    finished = False
    try:
        result = disclose_result(asyncio.run(main()), policy)
        finished = True
    except RequestError as e:
        print(f"proctor run: {e}", file=sys.stderr)
        return EXIT_ERROR
    except (KeyboardInterrupt, RunInterrupted, asyncio.CancelledError):
        print(f"\nproctor run: interrupted; finished investigations are stored. Finish with: proctor run --resume {req.run_id or run_name or 'RUN_ID'}",
              file=sys.stderr)
        return EXIT_ERROR
    finally:
        store.close()
        if source is not None:
            source.close()
        if finished and shard is not None and checkpoint is not None:
            _merge_when_complete(a.checkpoint_dir, run_name, shard[1])
        observability.shutdown()
    if a.json:
        _write_json(a.json, result)
    if not a.quiet or not a.json:
        print(result_text(result, per_investigation=not a.brief))
    degraded = _warn_degraded("proctor run", result)
    code = EXIT_OK
    if a.baseline:
        from evaluator_agent.cli.results import _gate

        code = _gate(a.db, a.baseline, result["run_id"], a.fail_on, a.margin, as_json=False)
    # A degraded run fails under any --fail-on: its figures (and any verdict built on them) are
    # not the target's result.
    if degraded and a.fail_on and code in (EXIT_OK, EXIT_REGRESSION):
        return EXIT_DEGRADED
    return code


def _merge_when_complete(directory: str, run_id: str, count: int) -> None:
    """The last shard of a run to finish merges all of them into DIR/RUN.db (see merge.merge_when_complete)."""
    from evaluator_agent.results.merge import merge_when_complete

    try:
        from evaluator_agent.datadog import observability

        merged = merge_when_complete(directory, run_id, count, observability.get())
    except Exception as e:  # noqa: BLE001 - the shard itself is done and safe; `proctor merge` can still join them
        print(f"proctor run: shard done; merging the shards failed ({type(e).__name__}: {e}); "
              f"join them with proctor merge", file=sys.stderr)
        return
    if merged is not None:
        print(f"proctor run: all {count} shards of {run_id} are done; merged into "
              f"{checkpoint_path(directory, run_id, None)} ({merged['investigations']} investigations, {merged['status']})",
              file=sys.stderr)


def cmd_merge(a: argparse.Namespace) -> int:
    from evaluator_agent.datadog import observability
    from evaluator_agent.results.merge import MergeError, merge, report
    from evaluator_agent.results.store import Store
    from evaluator_agent.results.text import table

    observability.configure(dry_run=a.datadog_dry_run)
    store = Store(a.into)
    try:
        merged = merge(store, a.shards)
    except MergeError as e:
        print(f"proctor merge: {e}; nothing written", file=sys.stderr)
        store.close()
        return EXIT_ERROR

    try:
        asyncio.run(report(store, merged, observability.get()))  # run-level metrics of sharded runs are sent once, here
    finally:
        store.close()
        observability.shutdown()
    if a.json:
        _write_json("-", merged)
    else:
        print(table(["run", "status", "shards", "investigations", "expected"],
                    [[m["run_id"], m["status"], m["shards"], m["investigations"], m["expected"]] for m in merged]))
        for m in merged:
            if m["missing_shards"]:
                print(f"{m['run_id']}: missing shard(s) {', '.join(map(str, m['missing_shards']))}", file=sys.stderr)
    return EXIT_OK if all(m["status"] == "completed" for m in merged) else EXIT_ERROR
