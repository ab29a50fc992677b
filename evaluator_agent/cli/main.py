"""``proctor`` command line. Exit codes: 0 ok, 1 error, 2 usage, 3 regression (``--fail-on regression``),
4 degraded run (``proctor run`` with any ``--fail-on``: more than ``PROCTOR_DEGRADED_INFRA_RATE`` of its
investigations were infra errors, so its figures are not the target's result)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from evaluator_agent.cli.common import (
    DISCLOSURE_HELP,
    DISCLOSURE_HELP_SERVE,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    _fail_on,
    _fail_on_compare,
    _port_default,
    _write_json,
    default_db,
)
from evaluator_agent.cli.evaluate import cmd_merge, cmd_run, cmd_serve, parse_instances
from evaluator_agent.cli.labelsets import cmd_env, cmd_labels, cmd_labels_audit
from evaluator_agent.cli.results import (
    cmd_compare,
    cmd_difficulty,
    cmd_history,
    cmd_report,
    cmd_runs,
    cmd_show,
)


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
    r.add_argument("--instances", type=parse_instances, default="stored", metavar="stored|fresh|SEED",
                   help="stored: the label set's labels (default); fresh: new worlds drawn from its recipes (a family's); "
                   "SEED: the draw of that seed again (a run's manifest records it); worlds go to $PROCTOR_FRESH_CACHE")
    r.add_argument("--surfaces", default=None, metavar="S[,S]",
                   help="where the target may call the tools: a2a (in-band), mcp, rest (default a2a); with mcp or rest "
                        "the MCP server and the Datadog REST facade are served on --surfaces-listen for the run")
    r.add_argument("--surfaces-listen", default="127.0.0.1:0", metavar="HOST:PORT",
                   help="where to serve them (default a free loopback port)")
    r.add_argument("--surfaces-url", default=None, metavar="URL",
                   help="the base URL briefings name for them (default http://HOST:PORT as bound)")
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

    lb = sub.add_parser("labels", help="label sets: list, schema, lint, audit; feedback: draft, review")
    lsub = lb.add_subparsers(dest="labels_cmd", required=True)
    ll = lsub.add_parser("list", help="labels of a set")
    ll.add_argument("set")
    ll.add_argument("--json", action="store_true")
    from evaluator_agent.cli.labelops import (
        add_labelops_parsers,
        add_schema_arguments,
        cmd_labels_schema,
    )

    sc = lsub.add_parser("schema", help="label JSON Schema (--feedback: a feedback record's)")
    add_schema_arguments(sc)
    sc.set_defaults(fn=cmd_labels_schema)
    add_labelops_parsers(lsub)  # draft, review
    from evaluator_agent.cli.validate import add_arguments as add_validate_arguments
    from evaluator_agent.cli.validate import cmd_labels_validate

    va = lsub.add_parser("validate", help="ground pending candidates in their worlds; confidence scores with reasons")
    add_validate_arguments(va)
    va.set_defaults(fn=cmd_labels_validate)
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

    from evaluator_agent.cli import ui as ui_cli

    ui = sub.add_parser("ui", help="the web interface on a local results database (what proctor serve shows at /ui)")
    ui_cli.add_arguments(ui)
    ui.set_defaults(fn=ui_cli.cmd_ui)

    from evaluator_agent.cli import capture as capture_cli

    cp = sub.add_parser("capture", help="capture a real incident's world from Datadog: a snapshot and a draft label")
    capture_cli.add_arguments(cp)
    cp.set_defaults(fn=capture_cli.cmd_capture)

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
