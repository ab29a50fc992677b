"""``proctor capture``: one real incident's world from a Datadog organisation, as a snapshot and a draft label.

    proctor capture --monitor 12345678                       # the window around its last alert
    proctor capture --incident 8f2c...                        # a Datadog incident's impact window and services
    proctor capture --service checkout --service payments --from 2026-03-02T13:00:00Z --to 2026-03-02T15:00:00Z
    proctor capture --resume captures/20260302T150000Z-checkout   # finish an interrupted capture

Datadog is reached with DD_API_KEY, DD_APP_KEY and DD_SITE (``--api-url`` overrides the host,
for proxies and tests). The scope is the seeds, then dependency hops (``--depth``), then the
services of the paged monitors, the seeds' team, platform and similar names (each can be
turned off), at most ``--max-services`` in that order; the capture directory's manifest says
why each service is in. Progress goes to stderr; the draft label JSON to stdout (or
``--label-out``); the snapshot is written content-addressed under the snapshots directory.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

from evaluator_agent.cli.common import EXIT_ERROR, EXIT_OK, EXIT_USAGE

__all__ = ["add_arguments", "cmd_capture", "main"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration(text: str) -> int:
    """``90``, ``90s``, ``30m``, ``2h``, ``1d`` -> seconds."""
    m = _DURATION.match(text)
    if m is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 7200, 30m, 2h)")
    return int(float(m.group(1)) * _UNIT[m.group(2).lower()])


def moment(text: str) -> int:
    """ISO 8601, epoch seconds or ``now-2h`` (wall clock) -> epoch seconds."""
    from evaluator_agent.telemetry.query_values import QueryError
    from evaluator_agent.telemetry.times import parse_time

    try:
        return int(parse_time(text, time.time()))
    except QueryError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return n


def add_arguments(p: argparse.ArgumentParser) -> None:
    seed = p.add_argument_group("what to capture")
    seed.add_argument("--monitor", type=int, metavar="ID", help="start from this monitor: the window around its last "
                      "alert, its service tag as the seed")
    seed.add_argument("--incident", metavar="ID", help="start from this Datadog incident: its impact window "
                      "and the services of its fields")
    seed.add_argument("--service", action="append", default=[], metavar="NAME", help="a seed service (repeat)")
    seed.add_argument("--from", dest="start", type=moment, metavar="TIME",
                      help="incident window start: ISO 8601, epoch seconds or now-2h")
    seed.add_argument("--to", dest="end", type=moment, metavar="TIME", help="incident window end")
    seed.add_argument("--before", type=duration, default=1800, metavar="DUR",
                      help="with --monitor / --incident: the window starts this long before the alert / impact (default 30m)")
    seed.add_argument("--after", type=duration, default=600, metavar="DUR",
                      help="... and ends this long after the alert / the resolution (default 10m)")
    seed.add_argument("--baseline", type=duration, default=7200, metavar="DUR",
                      help="also capture this long before the window (default 2h)")
    seed.add_argument("--env", default=None, help="only this env (env:<ENV> on every query)")
    scope = p.add_argument_group("scope and caps")
    scope.add_argument("--depth", type=_positive, default=2, help="dependency hops from the seeds (default 2)")
    scope.add_argument("--max-services", type=_positive, default=60, help="default 60")
    scope.add_argument("--no-monitor-scope", action="store_true", help="do not add the services the paged "
                       "monitors name, nor those of monitors named after the same template")
    scope.add_argument("--no-team", action="store_true", help="do not add the seeds' team's services")
    scope.add_argument("--no-platform", action="store_true", help="do not add the services of the seeds' "
                       "application / system / platform grouping")
    scope.add_argument("--no-similar-names", action="store_true", help="do not add services whose name shares "
                       "a token with a seed's (checkout -> checkout-worker, checkout-db)")
    scope.add_argument("--rollup", type=_positive, default=60, metavar="SECONDS", help="metric rollup (default 60)")
    for flag, default, what in (("--max-series", 20000, "metric series"),
                                ("--max-error-logs", 1000, "error logs per service, newest first"),
                                ("--max-other-logs", 300, "other logs per service, sampled"),
                                ("--max-error-spans", 300, "error spans per service"),
                                ("--max-other-spans", 200, "other spans per service, sampled"),
                                ("--max-traces", 200, "whole traces of error spans"),
                                ("--max-spans", 50000, "spans in all"),
                                ("--max-events", 500, "events per service"),
                                ("--max-hosts", 100, "hosts whose own metrics are captured")):
        scope.add_argument(flag, type=_positive, default=default, metavar="N", help=f"{what} (default {default})")
    scope.add_argument("--no-host-metrics", action="store_true", help="skip metrics of hosts without a service tag")
    red = p.add_argument_group("redaction (applied before anything is written; --resume keeps the capture's rules)")
    red.add_argument("--redact-rules", metavar="FILE", help="JSON rules file (see evaluator_agent/capture/redact.py)")
    red.add_argument("--redact", action="append", default=[], metavar="REGEX", help="one more pattern to redact (repeat)")
    red.add_argument("--no-default-redaction", action="store_true", help="drop the default rules")
    out = p.add_argument_group("where")
    out.add_argument("--dir", metavar="DIR", help="capture directory (default captures/<time>-<seed>)")
    out.add_argument("--resume", metavar="DIR", help="finish the capture in DIR: fetch only what is missing")
    out.add_argument("--snapshots", metavar="DIR", help="where the snapshot goes (default environments/snapshots)")
    out.add_argument("--label-out", metavar="FILE", help="write the draft label here (default: stdout)")
    out.add_argument("--api-url", default=None, metavar="URL", help="Datadog API host (default from DD_SITE)")
    run = p.add_argument_group("running")
    run.add_argument("--workers", type=_positive, default=4, help="requests in flight (default 4)")
    run.add_argument("--max-attempts", type=_positive, default=6, help="attempts per request (default 6)")
    run.add_argument("--max-wait", type=float, default=120.0, metavar="S", help="longest rate-limit wait (default 120)")
    run.add_argument("--max-steps", type=_positive, default=None, metavar="N",
                     help="stop after fetching N pieces (resume later with --resume)")
    run.add_argument("--quiet", action="store_true", help="no progress on stderr")


def cmd_capture(a: argparse.Namespace) -> int:
    from evaluator_agent.capture import (
        CaptureInterrupted,
        CaptureOptions,
        DatadogError,
        OptionsError,
        RedactionError,
        Redactor,
        StoreError,
        capture,
        resume,
    )

    prog = "proctor capture"
    where: Path | None = Path(a.resume) if a.resume else None
    try:
        redactor = Redactor.from_config(a.redact_rules, a.redact, defaults=not a.no_default_redaction)
        common = {"snapshots_dir": Path(a.snapshots) if a.snapshots else None, "api_url": a.api_url,
                  "redactor": redactor, "workers": max(1, a.workers), "max_steps": a.max_steps,
                  "progress": None if a.quiet else sys.stderr, "max_attempts": max(1, a.max_attempts),
                  "max_wait_s": a.max_wait}
        if a.resume:
            result = resume(Path(a.resume), **common)
        else:
            opts = CaptureOptions(
                services=list(a.service), start=a.start, end=a.end, monitor_id=a.monitor, incident_id=a.incident,
                before_s=a.before,
                after_s=a.after, baseline_s=a.baseline, env=a.env, depth=a.depth, max_services=a.max_services,
                same_monitor=not a.no_monitor_scope, same_team=not a.no_team, same_platform=not a.no_platform,
                similar_names=not a.no_similar_names, rollup_s=a.rollup, max_series=a.max_series,
                max_error_logs=a.max_error_logs, max_other_logs=a.max_other_logs, max_error_spans=a.max_error_spans,
                max_other_spans=a.max_other_spans, max_traces=a.max_traces, max_spans=a.max_spans,
                max_events=a.max_events, max_hosts=a.max_hosts, host_metrics=not a.no_host_metrics)
            opts.validate()
            seed = (f"monitor-{a.monitor}" if a.monitor is not None else f"incident-{a.incident}" if a.incident
                    else a.service[0])
            seed = re.sub(r"[^A-Za-z0-9_.-]+", "_", seed)[:60]
            where = Path(a.dir) if a.dir else Path("captures") / f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{seed}"
            result = capture(opts, directory=where, **common)
    except (OptionsError, RedactionError) as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except CaptureInterrupted as e:
        print(f"{prog}: interrupted: {e}; continue with: proctor capture --resume {where}", file=sys.stderr)
        return EXIT_ERROR
    except (StoreError, DatadogError) as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return EXIT_ERROR
    label = json.dumps(result.label, indent=2, ensure_ascii=False)
    if a.label_out:
        Path(a.label_out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.label_out).write_text(label + "\n")
    else:
        print(label)
    if not a.quiet:
        print(f"{prog}: snapshot {result.snapshot} -> {result.path}", file=sys.stderr)
        print(f"{prog}: capture directory {result.directory}; draft label {result.label['id']}"
              + (f" -> {a.label_out}" if a.label_out else " (stdout)"), file=sys.stderr)
        for note in result.notes[:20]:
            print(f"{prog}: note: {note}", file=sys.stderr)
        if len(result.notes) > 20:
            print(f"{prog}: ... {len(result.notes) - 20} more notes in {result.directory / 'result.json'}", file=sys.stderr)
    return EXIT_OK


main = cmd_capture
