"""``proctor traffic``: load a proctor with evaluation requests over A2A.

Sends ``--requests`` evaluation requests to a proctor, ``--concurrency`` at a time, round-robin
over the target agent cards, and prints what came back: requests ok/failed, wall time,
throughput (requests/s and investigations/s), latency percentiles of whole requests, errors
grouped by kind with an example message. ``--json FILE`` writes the same figures as JSON.

Modes:

normal   every request must come back with a result; any failure makes the exit code 1.
         A "busy" answer (the proctor's concurrent-evaluation cap) is retried a few times
         with a short backoff before it counts as a failure; the summary reports the retries.
failure  a seeded, deterministic mix of good requests and requests that must fail cleanly:
         broken targets (an unreachable card URL, a URL that answers but is not an agent card)
         and bad requests (unknown label set, negative attempts, missing target, wrong types,
         garbage text instead of JSON). A bad request answered with a failed task is an
         *expected failure answered cleanly*; anything else (timeouts, transport errors,
         HTTP 5xx, a bad request that was accepted, a good request that failed) is
         *unexpected* and makes the exit code 1. So does a proctor that stops answering.

Each request is isolated: errors are recorded, never raised, and each has its own timeout.
Latency percentiles use the nearest-rank method over every request (retries included in
the request's time).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from evaluator_agent.cli.traffic_report import (
    Case,
    Outcome,
    Report,
    render,
    summarise,
)

MODES = ("normal", "failure")
BUSY_RETRIES = 8
BUSY_BACKOFF_S = 0.25
BUSY_BACKOFF_MAX_S = 4.0  # 8 retries wait up to ~20 s in all: an evaluation's length
DEFAULT_FAIL_RATIO = 0.5
# Failure kinds that are a fault of the proctor or the network, never an answer.
def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def failure_cases(
    targets: list[str], labelset: str, labels: list[str] | None
) -> list[tuple[str, dict[str, Any] | str]]:
    """The requests that must fail cleanly: (case name, payload)."""
    base: dict[str, Any] = {"labelset": labelset}
    if labels:
        base["labels"] = labels
    target = targets[0]
    return [
        (
            "unreachable_target",
            {**base, "target": "http://127.0.0.1:1/nobody/.well-known/agent-card.json"},
        ),
        # an HTTP server answering JSON that is not an agent card
        ("not_a_card", {**base, "target": _origin(target) + "/health"}),
        ("unknown_labelset", {**base, "target": target, "labelset": "no_such_labelset_xyz"}),
        ("negative_attempts", {**base, "target": target, "attempts": -1}),
        ("missing_target", dict(base)),
        ("wrong_types", {**base, "target": target, "attempts": "many", "labels": "all of them"}),
        ("target_not_a_string", {**base, "target": 12345}),
        ("garbage_text", "pls evaluate my agent ))) {not json"),
    ]


def plan(
    n: int,
    targets: list[str],
    labelset: str,
    *,
    mode: str = "normal",
    labels: list[str] | None = None,
    attempts: int = 1,
    seed: int = 0,
    fail_ratio: float = DEFAULT_FAIL_RATIO,
) -> list[Case]:
    """The ``n`` requests, in order. Good requests go round-robin over ``targets``; in failure
    mode a seeded choice of positions carries failure cases (every case before any repeats)."""
    good: dict[str, Any] = {"labelset": labelset, "attempts": attempts}
    if labels:
        good["labels"] = labels
    rng = random.Random(seed)
    bad_at: set[int] = set()
    failures: list[tuple[str, dict[str, Any] | str]] = []
    if mode == "failure" and n > 0:
        n_bad = min(n, max(1, round(n * fail_ratio)))
        bad_at = set(rng.sample(range(n), n_bad))
        catalogue = failure_cases(targets, labelset, labels)
        while len(failures) < n_bad:
            batch = list(catalogue)
            rng.shuffle(batch)
            failures += batch
    cases, next_target = [], 0
    for i in range(n):
        if i in bad_at:
            name, payload = failures.pop(0)
            target = payload.get("target") if isinstance(payload, dict) else None
            cases.append(Case(i, name, payload, True, target if isinstance(target, str) else None))
        else:
            target = targets[next_target % len(targets)]
            next_target += 1
            cases.append(Case(i, "evaluate", {**good, "target": target}, False, target))
    return cases


# --------------------------------------------------------------------------- sending


async def send_text(proctor_url: str, text: str, http: httpx.AsyncClient) -> dict[str, Any]:
    """Send raw text (no DataPart) to the proctor; like ``call_proctor`` for a non-JSON message."""
    from a2a.client import ClientConfig, ClientFactory
    from a2a.helpers import new_message, new_text_part
    from a2a.types import Role, SendMessageRequest, TaskState

    from evaluator_agent.core.protocol import data_object
    from evaluator_agent.service.client import ProctorTaskFailed

    client = await ClientFactory(ClientConfig(streaming=False, httpx_client=http)).create_from_url(
        proctor_url.rstrip("/")
    )
    msg = new_message([new_text_part(text)], role=Role.ROLE_USER)
    task = None
    async for ev in client.send_message(SendMessageRequest(message=msg)):
        if ev.HasField("task"):
            task = ev.task
    if task is None:
        raise ProctorTaskFailed("no task in the answer")
    if task.status.state == TaskState.TASK_STATE_FAILED:
        texts = (
            [p.text for p in task.status.message.parts if p.HasField("text")]
            if task.status.HasField("message")
            else []
        )
        raise ProctorTaskFailed(" ".join(texts) or "the proctor reported a failed task")
    for art in reversed(task.artifacts):
        result = data_object(art.parts)
        if result is not None:
            return result
    raise ProctorTaskFailed(f"no result artifact (state {TaskState.Name(task.status.state)})")


def classify(exc: BaseException) -> str:
    """The error kind of an exception raised while sending one request."""
    from evaluator_agent.service.client import ProctorTaskFailed

    if isinstance(exc, ProctorTaskFailed):
        return "busy" if is_busy(str(exc)) else "task_failed"
    if isinstance(exc, TimeoutError | asyncio.TimeoutError | httpx.TimeoutException):
        return "timeout"
    status = _status_code(exc)
    if status is not None:
        return "http_5xx" if status >= 500 else "http_error"
    if isinstance(exc, httpx.TransportError | ConnectionError | OSError):
        return "transport"
    # a2a client errors wrap the transport's: look at the cause chain
    cause = exc.__cause__ or exc.__context__
    if cause is not None and cause is not exc:
        inner = classify(cause)
        if inner != "client_error":
            return inner
    name = type(exc).__name__.lower()
    if "timeout" in name:
        return "timeout"
    return "client_error"


def _status_code(exc: BaseException) -> int | None:
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code
    for attr in ("status_code", "status"):
        v = getattr(exc, attr, None)
        if isinstance(v, int) and 100 <= v < 600:
            return v
    return None


def is_busy(message: str) -> bool:
    return "busy" in message.lower()


async def run_case(
    case: Case,
    proctor_url: str,
    http: httpx.AsyncClient,
    *,
    timeout_s: float,
    busy_retries: int = BUSY_RETRIES,
    busy_backoff_s: float = BUSY_BACKOFF_S,
) -> Outcome:
    """Send one request (retrying "busy" answers); never raises."""
    from evaluator_agent.service.client import call_proctor

    t0 = time.perf_counter()
    retries = 0
    while True:
        try:
            if isinstance(case.payload, str):
                coro = send_text(proctor_url, case.payload, http)
            else:
                coro = call_proctor(proctor_url, dict(case.payload), http=http)
            result = await asyncio.wait_for(coro, timeout_s)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - each request is isolated
            kind = classify(e)
            if kind == "busy" and retries < busy_retries:
                retries += 1
                await asyncio.sleep(min(BUSY_BACKOFF_MAX_S, busy_backoff_s * 2 ** (retries - 1)))
                continue
            message = str(e) or type(e).__name__
            if kind == "timeout":
                message = f"no answer within {timeout_s:g} s ({type(e).__name__})"
            out = Outcome(
                case.index,
                case.kind,
                case.expect_failure,
                False,
                time.perf_counter() - t0,
                error_kind=kind,
                error=message[:300],
                busy_retries=retries,
                target=case.target,
            )
            out.clean = case.expect_failure and kind == "task_failed"
            return out
        n = _investigations(result)
        out = Outcome(
            case.index,
            case.kind,
            case.expect_failure,
            True,
            time.perf_counter() - t0,
            investigations=n,
            passed=_passed(result),
            busy_retries=retries,
            target=case.target,
        )
        if case.expect_failure:
            out.error_kind = "accepted_bad_request"
            out.error = f"{case.kind}: the proctor returned a result ({str(result)[:120]})"
        else:
            out.clean = True
        return out


def _passed(result: dict[str, Any]) -> int:
    summary = result.get("summary") if isinstance(result, dict) else None
    v = summary.get("passed") if isinstance(summary, dict) else None
    return int(v) if isinstance(v, int | float) else 0


def _investigations(result: dict[str, Any]) -> int:
    summary = result.get("summary") if isinstance(result, dict) else None
    if isinstance(summary, dict) and isinstance(summary.get("n"), int | float):
        return int(summary["n"])
    invs = result.get("investigations") if isinstance(result, dict) else None
    return len(invs) if isinstance(invs, list) else 0


async def proctor_alive(
    proctor_url: str, http: httpx.AsyncClient, timeout_s: float = 10.0
) -> str | None:
    """None if the proctor still serves its agent card, else why not."""
    try:
        r = await asyncio.wait_for(
            http.get(proctor_url.rstrip("/") + "/.well-known/agent-card.json"), timeout_s
        )
    except Exception as e:  # noqa: BLE001
        return f"{type(e).__name__}: {e}"
    if r.status_code != 200:
        return f"agent card answered HTTP {r.status_code}"
    return None


# --------------------------------------------------------------------------- the run


async def run_traffic(
    proctor: str,
    targets: list[str],
    labelset: str = "smoke",
    *,
    requests: int = 10,
    concurrency: int = 4,
    mode: str = "normal",
    labels: list[str] | None = None,
    attempts: int = 1,
    api_key: str | None = None,
    timeout_s: float = 300.0,
    seed: int = 0,
    fail_ratio: float = DEFAULT_FAIL_RATIO,
    busy_retries: int = BUSY_RETRIES,
    busy_backoff_s: float = BUSY_BACKOFF_S,
    on_outcome: Any = None,
) -> Report:
    """Run the traffic and return the report (never raises for a failed request)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    if not targets:
        raise ValueError("at least one target card URL is needed")
    if requests < 0 or concurrency < 1:
        raise ValueError("requests must be >= 0 and concurrency >= 1")
    cases = plan(
        requests,
        targets,
        labelset,
        mode=mode,
        labels=labels,
        attempts=attempts,
        seed=seed,
        fail_ratio=fail_ratio,
    )
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(
        max_connections=concurrency * 2 + 4, max_keepalive_connections=concurrency * 2 + 4
    )
    timeout = httpx.Timeout(min(30.0, timeout_s), read=timeout_s)
    sem = asyncio.Semaphore(concurrency)
    outcomes: list[Outcome] = []

    async with httpx.AsyncClient(headers=headers, timeout=timeout, limits=limits) as http:

        async def one(case: Case) -> None:
            async with sem:
                out = await run_case(
                    case,
                    proctor,
                    http,
                    timeout_s=timeout_s,
                    busy_retries=busy_retries,
                    busy_backoff_s=busy_backoff_s,
                )
            outcomes.append(out)
            if on_outcome is not None:
                on_outcome(out)

        t0 = time.perf_counter()
        await asyncio.gather(*(one(c) for c in cases))
        wall = time.perf_counter() - t0
        problem = await proctor_alive(proctor, http, min(10.0, timeout_s))
    outcomes.sort(key=lambda o: o.index)
    return summarise(
        outcomes,
        mode=mode,
        proctor=proctor,
        targets=targets,
        labelset=labelset,
        concurrency=concurrency,
        wall_s=wall,
        alive_problem=problem,
    )


# --------------------------------------------------------------------------- CLI


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--proctor", required=True, help="the proctor's base URL (its A2A endpoint)")
    p.add_argument(
        "--targets",
        required=True,
        nargs="+",
        metavar="CARD_URL",
        help="agent card URLs, used round-robin",
    )
    p.add_argument("--labelset", default="smoke")
    p.add_argument(
        "--requests", type=int, default=10, help="evaluation requests to send (default 10)"
    )
    p.add_argument(
        "--concurrency", type=int, default=4, help="requests in flight at once (default 4)"
    )
    p.add_argument("--mode", choices=MODES, default="normal")
    p.add_argument(
        "--labels", default="", help="comma-separated label ids (default: the whole label set)"
    )
    p.add_argument("--attempts", type=int, default=1)
    p.add_argument(
        "--api-key", default=None, help="bearer token for the proctor (default $PROCTOR_API_KEY)"
    )
    p.add_argument(
        "--json",
        dest="json_path",
        default=None,
        metavar="FILE",
        help="also write the figures as JSON",
    )
    p.add_argument(
        "--timeout", type=float, default=300.0, help="per-request timeout in seconds (default 300)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed for failure mode's mix (default 0)")
    p.add_argument(
        "--fail-ratio",
        type=float,
        default=DEFAULT_FAIL_RATIO,
        help="share of failure-mode requests that must fail (default 0.5)",
    )
    p.add_argument(
        "--busy-retries",
        type=int,
        default=BUSY_RETRIES,
        help="retries of a 'busy' answer, backoff doubling from 0.25 s to at most 4 s (default 8)",
    )
    p.add_argument("--quiet", action="store_true", help="no per-request progress on stderr")


def main(args: argparse.Namespace) -> int:
    """Run from parsed arguments; prints the summary, returns the exit code."""
    from evaluator_agent.core.logs import quiet_logs

    quiet_logs()
    labels = [x.strip() for x in args.labels.split(",") if x.strip()] or None
    api_key = (
        args.api_key if args.api_key is not None else os.environ.get("PROCTOR_API_KEY") or None
    )
    if (
        args.requests < 0
        or args.concurrency < 1
        or args.timeout <= 0
        or not 0 <= args.fail_ratio <= 1
    ):
        print(
            "error: need --requests >= 0, --concurrency >= 1, --timeout > 0, 0 <= --fail-ratio <= 1",
            file=sys.stderr,
        )
        return 2
    done = [0]

    def progress(o: Outcome) -> None:
        done[0] += 1
        if args.quiet:
            return
        status = "ok" if o.ok else o.error_kind
        print(
            f"  [{done[0]}/{args.requests}] #{o.index} {o.kind}: {status} in {o.latency_s:.2f} s",
            file=sys.stderr,
        )

    try:
        rep = asyncio.run(
            run_traffic(
                args.proctor,
                args.targets,
                args.labelset,
                requests=args.requests,
                concurrency=args.concurrency,
                mode=args.mode,
                labels=labels,
                attempts=args.attempts,
                api_key=api_key,
                timeout_s=args.timeout,
                seed=args.seed,
                fail_ratio=args.fail_ratio,
                busy_retries=max(0, args.busy_retries),
                on_outcome=progress,
            )
        )
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print(render(rep), flush=True)
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump(rep.as_dict(), f, indent=2)
            f.write("\n")
    return rep.exit_code
