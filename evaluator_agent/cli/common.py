"""What the ``proctor`` commands share: exit codes, options, progress, output."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

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
