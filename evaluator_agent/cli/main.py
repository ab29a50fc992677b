"""``proctor`` command line. Exit codes: 0 ok, 1 error, 2 usage, 3 regression (``--fail-on regression``),
4 degraded run (``proctor run`` with any ``--fail-on``: more than ``PROCTOR_DEGRADED_INFRA_RATE`` of its
investigations were infra errors, so its figures are not the target's result)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from evaluator_agent.core.envvars import env_float as _env_float
from evaluator_agent.core.untrusted import clean
from evaluator_agent.results.merge import checkpoint_path

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_REGRESSION, EXIT_DEGRADED = 0, 1, 2, 3, 4

FAIL_ON_CONDITIONS = ("regression", "degraded")


def _fail_on(text: str) -> frozenset[str]:
    """``--fail-on`` value: one condition or several, comma-separated (``regression,degraded``)."""
    items = frozenset(x.strip() for x in text.split(",") if x.strip())
    unknown = sorted(items - set(FAIL_ON_CONDITIONS))
    if not items or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown condition {', '.join(map(repr, unknown)) or repr(text)}; choose from {', '.join(FAIL_ON_CONDITIONS)}")
    return items


def _fail_on_compare(text: str) -> frozenset[str]:
    items = _fail_on(text)
    if items - {"regression"}:
        raise argparse.ArgumentTypeError("compare gates on regression only (degraded is a condition of proctor run)")
    return items


def _warn_degraded(prog: str, result: dict[str, Any]) -> bool:
    """Say loudly (stderr) that a run is degraded; True when it is."""
    from evaluator_agent.core.records import RunSummary

    summary = RunSummary.model_validate(result.get("summary") or {})
    if not summary.degraded:
        return False
    s = summary.model_dump()
    n, errors = summary.n, summary.errors
    kinds = ", ".join(f"{k} {v}" for k, v in summary.errors_by_kind.items())
    bar = "!" * 78
    print(f"{bar}\n{prog}: DEGRADED RUN {result.get('run_id', '')}: {errors} of {n} investigations "
          f"({100 * errors / max(1, n):.1f}%) were infra errors ({kinds or 'unknown'}); more than "
          f"{100 * float(s.get('degraded_threshold') or 0):g}% allowed.\n"
          f"{prog}: its pass rate covers only the {s.get('scored', 0)} scored investigations: it is NOT this "
          f"target's result. Fix the cause and retry them with: proctor run --resume {result.get('run_id', 'RUN_ID')}\n{bar}",
          file=sys.stderr, flush=True)
    return True


def default_db() -> str:
    return os.environ.get("PROCTOR_DB", "proctor.db")


def _port_default() -> int:
    try:
        return int(os.environ.get("PORT", "8080"))
    except ValueError:
        return 8080


class Progress:
    """A one-line progress bar on a terminal; periodic lines otherwise."""

    def __init__(self, total: int, quiet: bool = False):
        self.total, self.quiet = total, quiet
        self.tty = sys.stderr.isatty()
        self.t0 = time.monotonic()
        self.last_line = 0.0

    def update(self, done: int, passed: int) -> None:
        if self.quiet:
            return
        width = 30
        fill = int(width * done / max(1, self.total))
        rate = done / max(1e-9, time.monotonic() - self.t0)
        line = f"[{'#' * fill}{'.' * (width - fill)}] {done}/{self.total}  passed {passed}  {rate:.1f}/s"
        if self.tty:
            sys.stderr.write("\r" + line)
            if done == self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()
        elif done == self.total or time.monotonic() - self.last_line > 2:
            self.last_line = time.monotonic()
            print(line, file=sys.stderr, flush=True)


def _disclosure(a: argparse.Namespace, default: str | None = None) -> str:
    """The disclosure policy of a command: --disclosure, else $PROCTOR_DISCLOSURE, else ``default``
    (full for local commands; see disclosure.py). DisclosureError (exit 2) when unknown."""
    from evaluator_agent.results import disclosure

    return disclosure.resolve(getattr(a, "disclosure", None), default=default or disclosure.CLI_DEFAULT)


DISCLOSURE_HELP = ("full | scores: what the output reveals (default $PROCTOR_DISCLOSURE, else full); scores "
                   "withholds everything derived from the ground truth; a private label set is always scores")
DISCLOSURE_HELP_SERVE = ("full | scores: what results served to clients reveal (default $PROCTOR_DISCLOSURE, else "
                         "scores); a private label set is always scores")


def _write_json(path: str, obj: Any) -> None:
    text = json.dumps(obj, indent=2, default=str)
    if path == "-":
        print(text)
    else:
        Path(path).write_text(text + "\n")


# ----------------------------------------------------------------------------- commands


def cmd_serve(a: argparse.Namespace) -> int:
    from evaluator_agent.datadog import observability
    from evaluator_agent.service.server import create_app, run_server

    observability.configure(dry_run=a.datadog_dry_run)
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
    return req


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

    life = Lifecycle()

    async def main() -> dict[str, Any]:
        http = make_http_client()
        try:
            with life.admit():
                prep = await prepare(req, http)
                bar = Progress(len(prep.work(shard)), quiet=a.quiet)
                life.on_sigterm(_env_float("PROCTOR_DRAIN_S", 8.0), say=lambda text: print(f"proctor run: {text}", file=sys.stderr, flush=True))
                return await life.execute(prep, store, shard=shard, disclosure_policy=policy,
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


def _gate(db: str, base: str, new: str, fail_on: frozenset[str] | None, margin: float, as_json: bool) -> int:
    from evaluator_agent.results.analysis import AnalysisError, compare_stored
    from evaluator_agent.results.html import render_compare_markdown
    from evaluator_agent.results.store import Store

    store = Store(db)
    try:
        cmp = _disclose_compare(store, compare_stored(store, base, new, margin=margin), _disclosure(argparse.Namespace()))
    except AnalysisError as e:
        print(f"proctor compare: {e}", file=sys.stderr)
        return EXIT_ERROR
    if as_json:
        _write_json("-", cmp)
    else:
        print(render_compare_markdown(cmp))
    if fail_on and "regression" in fail_on and cmp["verdict"] == "regression":
        return EXIT_REGRESSION
    return EXIT_OK


def _disclose_compare(store: Any, cmp: dict[str, Any], policy: str) -> dict[str, Any]:
    from evaluator_agent.results import disclosure

    private = any(disclosure.run_private(store.find_run(cmp[side]["run_id"])) for side in ("base", "new"))
    return disclosure.disclose_compare(cmp, disclosure.effective(policy, private))


def cmd_compare(a: argparse.Namespace) -> int:
    return _gate(a.db, a.base, a.new, a.fail_on, a.margin, as_json=a.json)


def cmd_difficulty(a: argparse.Namespace) -> int:
    from evaluator_agent.results.analysis import AnalysisError, fit_difficulty
    from evaluator_agent.results.store import Store
    from evaluator_agent.results.text import table

    try:
        fit = fit_difficulty(Store(a.db))
    except AnalysisError as e:
        print(f"proctor difficulty: {e}", file=sys.stderr)
        return EXIT_ERROR
    if a.json:
        _write_json("-", fit["labels"])
        return EXIT_OK
    print(table(["label", "difficulty", "se", "n", "passed", "tier", "flag"],
                [[x["label_id"], f"{x['difficulty']:+.2f}", f"{x['se']:.2f}", x["n"], x["passed"], x["tier"] or "",
                  f"{x['flag']} (suggest {x['suggested_tier']})" if x["flag"] else ""] for x in fit["labels"]]))
    print()
    print(table(["target", "ability", "se"], [[t["target"], f"{t['ability']:+.2f}", f"{t['se']:.2f}"] for t in fit["targets"]]))
    print(f"\n{fit['observations']} observations; {len(fit['flagged'])} label(s) disagree with their tier")
    return EXIT_OK


def cmd_report(a: argparse.Namespace) -> int:
    from evaluator_agent.engine.scoring import PASS_THRESHOLD
    from evaluator_agent.results.analysis import AnalysisError, compare_stored, report_inputs
    from evaluator_agent.results.html import (
        render_compare_html,
        render_compare_markdown,
        render_html,
        render_markdown,
    )
    from evaluator_agent.results.store import Store

    store = Store(a.db)
    try:
        if a.compare:
            cmp = _disclose_compare(store, compare_stored(store, a.run, a.compare), _disclosure(a))
            if a.html:
                Path(a.html).write_text(render_compare_html(cmp))
            if a.markdown or not a.html:
                print(render_compare_markdown(cmp))
            return EXIT_OK
        result, stats, details, labels, difficulty = report_inputs(store, a.run, policy=_disclosure(a))
    except AnalysisError as e:
        print(f"proctor report: {e}", file=sys.stderr)
        return EXIT_ERROR
    if a.html:
        Path(a.html).write_text(render_html(result, stats, details, labels, difficulty or None, PASS_THRESHOLD))
        print(f"wrote {a.html}", file=sys.stderr)
    if a.markdown or not a.html:
        print(render_markdown(result, stats))
    return EXIT_OK


def cmd_runs(a: argparse.Namespace) -> int:
    from evaluator_agent.results.store import Store
    from evaluator_agent.results.text import table

    store = Store(a.db)
    runs = store.list_runs(a.limit)
    if a.json:
        from evaluator_agent.results import disclosure

        policy = _disclosure(a)
        _write_json("-", [{k: r[k] for k in ("run_id", "status", "created_at", "target_name", "target_version", "labelset")}
                          | {"summary": disclosure.disclose_summary(r["summary"], disclosure.effective(policy, disclosure.run_private(r)))}
                          for r in runs])
        return EXIT_OK
    rows = []
    for r in runs:
        s = r["summary"] or {}
        rows.append([
            r["run_id"], time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created_at"])), r["status"],
            clean(f"{r['target_name']} {r['target_version']}", 60), r["labelset"], s.get("n", ""),
            f"{s['pass_rate']:.1%}" if "pass_rate" in s else "",
            *(f"{s[k]:.1%}" if k in s else "" for k in ("ac_at_1", "mechanism_accuracy")), s.get("mean_score", ""),
        ])
    print(table(["run", "created", "status", "target", "labelset", "n", "pass", "AC@1", "mech", "score"], rows)
          if rows else "no runs yet")
    return EXIT_OK


def cmd_show(a: argparse.Namespace) -> int:
    from evaluator_agent.results.disclosure import disclose_result
    from evaluator_agent.results.store import Store
    from evaluator_agent.results.text import result_text

    policy = _disclosure(a)
    store = Store(a.db)
    run = store.find_run(a.run)
    if run is None:
        print(f"proctor show: no run {a.run!r} in {a.db}", file=sys.stderr)
        return EXIT_ERROR
    result = disclose_result(store.result(run["run_id"]).as_dict(), policy)
    if a.json:
        _write_json("-", result)
    else:
        print(result_text(result))
    _warn_degraded("proctor show", result)
    return EXIT_OK


def cmd_history(a: argparse.Namespace) -> int:
    from evaluator_agent.results.store import Store
    from evaluator_agent.results.text import table

    rows = Store(a.db).label_history(a.label)
    if a.json:
        _write_json("-", rows)
        return EXIT_OK
    if not rows:
        print(f"no investigations of {a.label} in {a.db}")
        return EXIT_OK
    print(table(["run", "created", "target", "try", "result", "score", "end", "turns"],
                [[r["run_id"], time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created_at"])),
                  clean(f"{r['target_name']} {r['target_version']}", 60), r["attempt"], "PASS" if r["passed"] else "fail",
                  f"{r['score']:.2f}", r["end_reason"], r["turns"]] for r in rows]))
    return EXIT_OK


def cmd_labels(a: argparse.Namespace) -> int:
    from evaluator_agent.core.labels import LabelError, label_json_schema, load_labelset

    if a.labels_cmd == "schema":
        _write_json("-", label_json_schema())
        return EXIT_OK
    if a.labels_cmd == "lint":
        from evaluator_agent.lint.checks import lint_labelset

        report = lint_labelset(a.set, jobs=a.jobs)
        if a.json:
            _write_json("-", report.to_dict())
        else:
            print(report.render())
        return EXIT_OK if report.ok else EXIT_ERROR
    try:
        ls = load_labelset(a.set)
    except LabelError as e:
        print(f"proctor labels: {e}", file=sys.stderr)
        return EXIT_ERROR
    items = [
        {"id": lb.id, "segment": lb.taxonomy.segment, "difficulty": lb.difficulty.tier, "no_fault": lb.ground_truth.no_fault,
         "mechanism": lb.taxonomy.mechanism, "status": lb.status, "title": lb.task.trigger.title}
        for lb in ls.labels
    ]
    if a.json:
        _write_json("-", items)
    else:
        from evaluator_agent.results.text import table

        print(table(["id", "segment", "tier", "no_fault", "mechanism", "title"],
                    [[i["id"], i["segment"], i["difficulty"], i["no_fault"], i["mechanism"], i["title"]] for i in items]))
    return EXIT_OK


def cmd_labels_audit(a: argparse.Namespace) -> int:
    """Shortcut battery and leakage learner on a label set; exit 1 when it leaks (see audit.report)."""
    from evaluator_agent.audit import Thresholds, render, run_audit
    from evaluator_agent.cli.demo import reference_roster
    from evaluator_agent.core.labels import LabelError

    policies = [p for p in (a.policies or "").split(",") if p] or None
    thresholds = Thresholds(a.threshold, a.combination_threshold, a.learner_culprit_threshold,
                            a.learner_mechanism_margin)  # fmt: skip
    progress = None if a.json else Progress(0, quiet=False)

    def tick(done: int, total: int) -> None:
        if progress is not None:
            progress.total = total
            progress.update(done, 0)

    try:
        report = run_audit(a.set, reference_roster(), sample=a.sample, jobs=a.jobs, policies=policies, learner=not a.no_learner,
                           train=a.train, train_size=a.train_size, thresholds=thresholds, progress=tick)  # fmt: skip
    except (LabelError, ValueError) as e:
        print(f"proctor labels audit: {e}", file=sys.stderr)
        return EXIT_ERROR
    if a.json:
        _write_json("-", report.as_dict())
    else:
        print(render(report))
    return EXIT_OK if report.ok else EXIT_ERROR


def cmd_env(a: argparse.Namespace) -> int:
    """World generation: a whole label set from a recipe file, or one world from flags."""
    from pydantic import ValidationError

    from evaluator_agent.core.labels import dump_label, snapshots_dir
    from evaluator_agent.telemetry.world import write_snapshot
    from evaluator_agent.worldgen.build import build_from_file, generate_pair
    from evaluator_agent.worldgen.recipe import Recipe

    if a.recipes:
        try:
            labels = build_from_file(Path(a.recipes))
        except (OSError, ValidationError, ValueError) as e:
            print(f"proctor env generate: {a.recipes}: {e}", file=sys.stderr)
            return EXIT_ERROR
        for lb in labels:
            print(f"{lb.id}  {lb.taxonomy.segment:15s} {lb.difficulty.tier:6s} {lb.ground_truth.mechanism:28s} {lb.world.snapshot}")
        return EXIT_OK
    if not a.mechanism:
        print("proctor env generate: give --recipes FILE, or --mechanism and --seed", file=sys.stderr)
        return EXIT_USAGE
    try:
        recipe = Recipe(mechanism=a.mechanism, seed=a.seed, n_services=a.services, noise=a.noise,
                        chain_length=a.chain, red_herrings=a.herrings, time_offset_s=a.offset)
    except ValidationError as e:
        print(f"proctor env generate: {e}", file=sys.stderr)
        return EXIT_USAGE
    world, quiet_world, label = generate_pair(recipe)
    out = Path(a.out) if a.out else snapshots_dir()
    digest, quiet = write_snapshot(world, out), write_snapshot(quiet_world, out)
    if a.label:
        Path(a.label).write_text(dump_label(label))
    print(json.dumps({"label_id": label.id, "snapshot": digest, "snapshot_noise_free": quiet, "directory": str(out),
                      "tier": label.difficulty.tier, "services": len(world["topology"]["services"]),
                      "logs": len(world["logs"]), "metric_series": len(world["metrics"]), "spans": len(world["spans"])}, indent=2))
    return EXIT_OK


def cmd_protocol(a: argparse.Namespace) -> int:
    from evaluator_agent.core.protocol import protocol_schema

    _write_json("-", protocol_schema())
    return EXIT_OK


def cmd_datadog(a: argparse.Namespace) -> int:
    from evaluator_agent.datadog.setup import SetupError, setup

    try:
        out = setup(dry_run=a.dry_run, directory=Path(a.dir) if a.dir else None)
    except SetupError as e:
        print(f"proctor datadog setup: {e}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as e:  # noqa: BLE001 - an API error: say what, no traceback
        print(f"proctor datadog setup: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", file=sys.stderr)
        return EXIT_ERROR
    for kind in ("dashboards", "monitors"):
        for x in out[kind]:
            print(f"{x['action']:8s} {kind[:-1]:9s} {x['id'] or '-':>14}  {x['name']}")
    return EXIT_OK


def cmd_demo(a: argparse.Namespace) -> int:
    from evaluator_agent.cli.demo import run_demo

    return run_demo(agents=a.agents.split(","), labelset=a.labelset, db=a.db, attempts=a.attempts)


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="proctor", description="Evaluate autonomous SRE agents on replayed incidents over A2A.")
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("serve", help="run the proctor as an A2A server")
    s.add_argument("--host", default=os.environ.get("PROCTOR_HOST", "127.0.0.1"))
    s.add_argument("--port", type=int, default=_port_default(), help="default $PORT or 8080")
    s.add_argument("--db", default=default_db())
    s.add_argument("--public-url", default=None, help="URL the agent card advertises (default $PROCTOR_PUBLIC_URL or http://HOST:PORT)")
    s.add_argument("--log-level", default="warning")
    s.add_argument("--datadog-dry-run", metavar="FILE", help="write every Datadog payload to FILE (JSON lines) instead of sending")
    s.add_argument("--checkpoint-dir", default=os.environ.get("PROCTOR_CHECKPOINT_DIR") or None, metavar="DIR",
                   help="durable directory (a Cloud Storage volume on Cloud Run): the results database is copied to "
                   "DIR/proctor-service.db as results come in and restored from it on start (default $PROCTOR_CHECKPOINT_DIR)")
    s.add_argument("--disclosure", choices=["full", "scores"], default=None, help=DISCLOSURE_HELP_SERVE)
    s.set_defaults(fn=cmd_serve)

    r = sub.add_parser("run", help="evaluate a target without a server")
    r.add_argument("--target", default=os.environ.get("PROCTOR_TARGET") or None,
                   help="agent card URL (or the agent's base URL); default $PROCTOR_TARGET")
    r.add_argument("--resume", metavar="RUN_ID", help="finish a stored run: only investigations not yet recorded are run")
    r.add_argument("--labelset", default="smoke")
    r.add_argument("--labels", nargs="*", help="only these label ids")
    r.add_argument("--attempts", type=int, default=1)
    r.add_argument("--concurrency", type=int, default=4)
    r.add_argument("--max-turns", type=int, default=30)
    r.add_argument("--timeout", type=float, default=300.0, help="wall time per investigation, seconds")
    r.add_argument("--turn-timeout", type=float, default=60.0, help="time per target reply, seconds")
    r.add_argument("--noise", choices=["on", "off"], default="on", help="off: noise-free worlds, for ablations")
    r.add_argument("--run-id", default=os.environ.get("CLOUD_RUN_EXECUTION") or None,
                   help="name the run; running the same request again adds nothing already recorded (default $CLOUD_RUN_EXECUTION)")
    r.add_argument("--shard", default=None, metavar="I/N",
                   help="evaluate one deterministic slice of labels x attempts (default from CLOUD_RUN_TASK_INDEX/CLOUD_RUN_TASK_COUNT); "
                   "join the shards with proctor merge")
    r.add_argument("--checkpoint-dir", default=os.environ.get("PROCTOR_CHECKPOINT_DIR") or None, metavar="DIR",
                   help="durable directory (e.g. a Cloud Storage volume): the results database is copied to DIR/RUN[.shard-I-of-N].db "
                   "as the run goes, and restored from there on a fresh machine (default $PROCTOR_CHECKPOINT_DIR)")
    r.add_argument("--db", default=default_db())
    r.add_argument("--json", metavar="FILE", help="write the result (same shape as the A2A result artifact); - for stdout")
    r.add_argument("--quiet", action="store_true")
    r.add_argument("--brief", action="store_true", help="summary only, no per-investigation table")
    r.add_argument("--baseline", metavar="RUN", help="compare with this stored run when done")
    r.add_argument("--fail-on", type=_fail_on, metavar="COND[,COND]",
                   help="regression: with --baseline, exit 3 on a regression verdict; degraded: exit 4 when more than "
                   "PROCTOR_DEGRADED_INFRA_RATE (default 5%%) of the investigations were infra errors. "
                   "A degraded run exits 4 under any --fail-on")
    r.add_argument("--margin", type=float, default=0.05, help="practical margin of the verdict (pass-rate points)")
    r.add_argument("--datadog-dry-run", metavar="FILE", help="write every Datadog payload to FILE (JSON lines) instead of sending")
    r.add_argument("--disclosure", choices=["full", "scores"], default=None, help=DISCLOSURE_HELP)
    r.set_defaults(fn=cmd_run)

    c = sub.add_parser("compare", help="paired comparison of two stored runs")
    c.add_argument("base")
    c.add_argument("new")
    c.add_argument("--db", default=default_db())
    c.add_argument("--json", action="store_true")
    c.add_argument("--fail-on", type=_fail_on_compare, metavar="regression", help="exit 3 on a regression verdict")
    c.add_argument("--margin", type=float, default=0.05)
    c.set_defaults(fn=cmd_compare)

    df = sub.add_parser("difficulty", help="empirical label difficulty and target ability (Rasch IRT over stored runs)")
    df.add_argument("--db", default=default_db())
    df.add_argument("--json", action="store_true")
    df.set_defaults(fn=cmd_difficulty)

    rp = sub.add_parser("report", help="HTML or Markdown report of a run, or of a comparison")
    rp.add_argument("run")
    rp.add_argument("--db", default=default_db())
    rp.add_argument("--html", metavar="FILE", help="write one self-contained HTML page")
    rp.add_argument("--markdown", action="store_true", help="print a Markdown summary (default without --html)")
    rp.add_argument("--compare", metavar="NEW", help="report the comparison of RUN (base) with NEW")
    rp.add_argument("--disclosure", choices=["full", "scores"], default=None, help=DISCLOSURE_HELP)
    rp.set_defaults(fn=cmd_report)

    rs = sub.add_parser("runs", help="list stored runs")
    rs.add_argument("--db", default=default_db())
    rs.add_argument("--limit", type=int, default=50)
    rs.add_argument("--json", action="store_true")
    rs.add_argument("--disclosure", choices=["full", "scores"], default=None, help=DISCLOSURE_HELP)
    rs.set_defaults(fn=cmd_runs)

    sh = sub.add_parser("show", help="show one stored run")
    sh.add_argument("run", help="run id (or a unique prefix)")
    sh.add_argument("--db", default=default_db())
    sh.add_argument("--json", action="store_true")
    sh.add_argument("--disclosure", choices=["full", "scores"], default=None, help=DISCLOSURE_HELP)
    sh.set_defaults(fn=cmd_show)

    mg = sub.add_parser("merge", help="join the shard databases of sharded runs into one run")
    mg.add_argument("--into", required=True, metavar="DB", help="destination database (created if missing)")
    mg.add_argument("shards", nargs="+", metavar="SHARD_DB")
    mg.add_argument("--json", action="store_true")
    mg.add_argument("--datadog-dry-run", metavar="FILE", help="write the Datadog payloads to FILE instead of sending")
    mg.set_defaults(fn=cmd_merge)

    hi = sub.add_parser("history", help="outcomes of one label across runs and targets")
    hi.add_argument("label")
    hi.add_argument("--db", default=default_db())
    hi.add_argument("--json", action="store_true")
    hi.set_defaults(fn=cmd_history)

    lb = sub.add_parser("labels", help="label sets: list, schema")
    lsub = lb.add_subparsers(dest="labels_cmd", required=True)
    ll = lsub.add_parser("list", help="labels of a set")
    ll.add_argument("set")
    ll.add_argument("--json", action="store_true")
    lsub.add_parser("schema", help="label JSON Schema")
    lt = lsub.add_parser("lint", help="check a label set: schema, leaks, hashes, entities, key evidence, red herrings")
    lt.add_argument("set", help="label set name, or a path to its folder")
    lt.add_argument("--json", action="store_true")
    lt.add_argument("--jobs", type=int, default=2, help="worker processes for large sets (default 2)")
    au = lsub.add_parser("audit", help="leak audit: shortcut battery and leakage learner; exit 1 when the set leaks")
    au.add_argument("set", help="label set name")
    au.add_argument("--sample", type=int, help="a deterministic sample of N labels")
    au.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    au.add_argument("--policies", help="comma-separated policies (default: every shortcut and the reference agents)")
    au.add_argument("--no-learner", action="store_true", help="skip the leakage learner")
    au.add_argument("--train", help="train the learner on this label set (default: fresh worlds from the set's recipes)")
    au.add_argument("--train-size", type=int, help="recipes to generate for the learner's training set")
    au.add_argument("--threshold", type=float, default=0.15, help="max pass rate of one shortcut (0.15)")
    au.add_argument("--combination-threshold", type=float, default=0.20, help="max pass rate of the combination (0.20)")
    au.add_argument("--learner-culprit-threshold", type=float, default=0.15, help="max learner culprit top-1 (0.15)")
    au.add_argument("--learner-mechanism-margin", type=float, default=0.15,
                    help="max learner mechanism accuracy above the majority baseline (0.15)")
    au.add_argument("--json", action="store_true")
    au.set_defaults(fn=cmd_labels_audit)
    lb.set_defaults(fn=cmd_labels)

    env = sub.add_parser("env", help="world snapshots: generate synthetic incident worlds")
    esub = env.add_subparsers(dest="env_cmd", required=True)
    g = esub.add_parser("generate", help="same recipe and seed, same bytes")
    g.add_argument("--recipes", help="recipe file (environments/recipes/*.json): build its whole label set")
    g.add_argument("--mechanism", help="one world: failure mechanism from the closed vocabulary")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--services", type=int, default=40)
    g.add_argument("--noise", choices=["off", "normal", "high"], default="normal")
    g.add_argument("--chain", type=int, default=2, help="entities from culprit to the paged service")
    g.add_argument("--herrings", type=int, default=1, help="deliberate red herrings")
    g.add_argument("--offset", type=int, default=0, help="seconds the change precedes the first failure")
    g.add_argument("--out", help="snapshot directory (default environments/snapshots)")
    g.add_argument("--label", help="also write the label JSON here")
    env.set_defaults(fn=cmd_env)

    pr = sub.add_parser("protocol", help="print the investigation protocol as JSON Schema")
    pr.add_argument("what", choices=["schema"])
    pr.set_defaults(fn=cmd_protocol)

    dd = sub.add_parser("datadog", help="Datadog: create or update dashboards and monitors")
    ddsub = dd.add_subparsers(dest="datadog_cmd", required=True)
    dds = ddsub.add_parser("setup", help="create or update the dashboards and monitors in evaluator_agent/datadog/assets/ (idempotent)")
    dds.add_argument("--dry-run", metavar="FILE", help="write the payloads to FILE (JSON lines) instead of calling the API")
    dds.add_argument("--dir", help="folder with dashboards/*.json and monitors/*.json (default: the packaged evaluator_agent/datadog/assets/)")
    dd.set_defaults(fn=cmd_datadog)

    d = sub.add_parser("demo", help="start mock agents and the proctor on loopback, evaluate over A2A, print results")
    d.add_argument("--agents", default="methodical,random_guess", help="comma-separated mock agents to evaluate")
    d.add_argument("--labelset", default="smoke")
    d.add_argument("--attempts", type=int, default=1)
    d.add_argument("--db", default=default_db())
    d.set_defaults(fn=cmd_demo)

    from evaluator_agent.cli import traffic

    tr = sub.add_parser("traffic", help="send evaluation requests to a proctor and report throughput, latency and errors")
    traffic.add_arguments(tr)
    tr.set_defaults(fn=traffic.main)
    return p


def _version() -> str:
    from evaluator_agent import __version__

    return f"proctor {__version__}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from evaluator_agent.results.disclosure import DisclosureError

    try:
        return int(args.fn(args) or 0)
    except DisclosureError as e:  # $PROCTOR_DISCLOSURE names no policy
        print(f"proctor {args.cmd}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # `proctor ... | head`: the reader left; that is not an error of ours.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
