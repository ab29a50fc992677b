"""Runs an evaluation: labels x attempts against one target, bounded concurrency, every result stored.

The same code path serves ``proctor run`` and the A2A server (through
:mod:`evaluator_agent.engine.lifecycle`), so both produce the same result for the same
deterministic target. The result (A2A ``result`` artifact, ``proctor run --json``, ``proctor
show --json``) is always read back from the store: :meth:`RunResult.from_store`.

A request for instances of a family (``instances`` "fresh" or a draw seed, engine/instances.py)
runs labels generated for the run: the shard's own only, ahead of the investigations that need
them; the manifest records the draw (``instances``) and, once they exist, the labels' metadata.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import httpx

from evaluator_agent import __version__
from evaluator_agent.core.labels import LabelError, LabelSet, load_labelset
from evaluator_agent.core.records import InvestigationResult, RequestError, RunManifest, RunStatus
from evaluator_agent.datadog import observability
from evaluator_agent.engine.conversation import TargetError
from evaluator_agent.engine.fairshare import FairLimiter
from evaluator_agent.engine.instances import DrawnSet, InstanceSource, select_instances
from evaluator_agent.engine.investigation import RunContact, investigate
from evaluator_agent.engine.request import EvaluationRequest
from evaluator_agent.engine.surfaces import A2A, SurfaceConfig, SurfaceError
from evaluator_agent.engine.target import Target
from evaluator_agent.engine.transport import make_http_client
from evaluator_agent.engine.workloop import WorkLoop
from evaluator_agent.engine.worlds import WorldCache
from evaluator_agent.results import disclosure
from evaluator_agent.results.runs import frozen_label_meta, summarize
from evaluator_agent.results.store import Store

log = logging.getLogger(__name__)

INFRA_RETRIES = 1

ProgressFn = Callable[[int, int, int, InvestigationResult], Awaitable[None] | None]


@lru_cache(maxsize=1)
def git_revision() -> str:
    env = os.environ.get("PROCTOR_GIT_REV")
    if env:
        return env
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=Path(__file__).resolve().parent,
            capture_output=True, text=True, timeout=2, check=False,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@dataclass
class Prepared:
    """A validated request with its labels loaded and its target resolved."""

    request: EvaluationRequest
    labelset: LabelSet
    labels: list[Any]
    target: Target
    run_id: str  # the request's, or a new one: the one place a run id is made

    def work(self, shard: tuple[int, int] | None = None) -> list[tuple[Any, int]]:
        """The (label, attempt) pairs this request asks for, or one shard's slice of them."""
        return shard_slice([(lb, a) for a in range(1, self.request.attempts + 1) for lb in self.labels], shard)


def select_labels(request: EvaluationRequest, instances: InstanceSource | None = None) -> tuple[LabelSet, list[Any]]:
    """The labels a request asks for; RequestError when they cannot be had. Local and cheap:
    the server checks this before admitting an evaluation. Instances of a family come from
    ``instances`` (else the process's, instances.install): a :class:`DrawnSet` of labels yet to generate."""
    if request.instances != "stored":
        drawn = select_instances(request.labelset, request.instances, request.run_id, request.labels, instances)
        return drawn, drawn.labels
    try:
        labelset = load_labelset(request.labelset)
        labels = labelset.select(request.labels)
    except LabelError as e:
        raise RequestError(str(e)) from None
    if not labels:
        raise RequestError(f"label set {request.labelset!r} has no active labels")
    if request.noise == "off":
        missing = [lb.id for lb in labels if not lb.world.snapshot_noise_free]
        if missing:
            raise RequestError(f"--noise off: {len(missing)} label(s) have no noise-free world, e.g. {missing[0]}")
    return labelset, labels


async def prepare(
    request: EvaluationRequest, http: httpx.AsyncClient, selection: tuple[LabelSet, list[Any]] | None = None,
    instances: InstanceSource | None = None,
) -> Prepared:
    """Everything that can make a request bad is checked here, before a run exists.
    ``selection``: the request's labels when the caller has selected them already."""
    labelset, labels = selection or select_labels(request, instances)
    try:
        target = await Target.connect(request.target, http)
    except TargetError as e:
        raise RequestError(f"cannot evaluate target: {e}") from None
    return Prepared(request, labelset, labels, target, request.run_id or new_run_id())


def offered_surfaces(req: EvaluationRequest, surfaces: SurfaceConfig | None) -> SurfaceConfig | None:
    """The surfaces a run offers: the process's, restricted by the request; RequestError when the
    request asks for one this process does not serve."""
    asked = set(req.surfaces) if req.surfaces is not None else None
    served = set(surfaces.offered) if surfaces is not None else {A2A}
    if req.surface_key and (surfaces is None or not (served - {A2A})):
        raise RequestError("surface_key asks for stable MCP/REST surfaces, which this proctor does not serve here")
    if asked is not None and not asked <= served:
        missing = ", ".join(sorted(asked - served))
        raise RequestError(f"this proctor does not serve the {missing} surface here (it serves {', '.join(sorted(served))}); "
                           "proctor serve offers mcp and rest, proctor run offers them with --surfaces")
    if surfaces is None:
        return None
    return surfaces.restricted(asked).stable(req.surface_key)


def new_run_id() -> str:
    return "run_" + uuid.uuid4().hex[:12]


class RunInterrupted(Exception):
    """``execute`` was asked to stop: what finished is recorded, the run is marked interrupted."""

    def __init__(self, run_id: str, done: int, total: int):
        super().__init__(f"run {run_id} interrupted after {done}/{total} investigations")
        self.run_id, self.done, self.total = run_id, done, total


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"I/N"`` (0 <= I < N) as a tuple; None or "" for no sharding."""
    if not text:
        return None
    try:
        i, n = (int(x) for x in str(text).split("/"))
    except ValueError:
        raise RequestError(f"shard {text!r}: expected I/N, e.g. 0/4") from None
    if n < 1 or not 0 <= i < n:
        raise RequestError(f"shard {text!r}: need 0 <= I < N")
    return i, n


def shard_slice(pairs: list[tuple[Any, int]], shard: tuple[int, int] | None) -> list[tuple[Any, int]]:
    """One deterministic slice of labels x attempts: sorted by (label id, attempt), every N-th from I.
    Round-robin over the sorted list spreads tiers and segments evenly across shards."""
    if shard is None:
        return pairs
    i, n = shard
    ordered = sorted(pairs, key=lambda p: (p[0].id, p[1]))
    return ordered[i::n]


async def execute(
    prep: Prepared,
    store: Store,
    *,
    worlds: WorldCache | None = None,
    on_progress: ProgressFn | None = None,
    shard: tuple[int, int] | None = None,
    stop: asyncio.Event | None = None,
    disclosure_policy: str = disclosure.FULL,
    limiter: FairLimiter | None = None,
    owner: str | None = None,
    work_loop: WorkLoop | None = None,
    surfaces: SurfaceConfig | None = None,
) -> dict[str, Any]:
    """Run every investigation of a prepared request (or of one ``shard`` I/N of it); returns the result dict.

    When ``stop`` is set no new investigation starts; those in flight finish and are recorded, then
    the run is marked interrupted and :class:`RunInterrupted` is raised (resume with the same run id).
    The result returned is everything stored; callers pass it through :func:`disclosure.disclose_result`
    before it leaves the process. ``disclosure_policy`` decides what the Datadog spans carry. For a
    private label set nothing truth-derived is stored: the explanation is withheld and score details
    are cut down to numbers (:func:`disclosure.scrub_details`).
    ``limiter`` bounds investigations in flight across all evaluations of a process (the server's),
    each evaluation getting a fair share of its slots. ``owner`` is the caller's principal: a run
    id belongs to it (:class:`~evaluator_agent.results.store.RunConflict` for anyone else). With ``work_loop``
    the investigations run on that loop (the server's: its own loop stays free for clients); the
    target must then have been prepared there, and ``worlds`` is used there only. ``surfaces``: where
    this process serves the tools out of band (MCP, REST); the request may restrict them."""
    req = prep.request
    offered = offered_surfaces(req, surfaces)
    with _stable_key(offered):
        return await _execute(prep, store, offered, worlds, on_progress, shard, stop, disclosure_policy, limiter, owner, work_loop)


@contextlib.contextmanager
def _stable_key(offered: SurfaceConfig | None) -> Iterator[None]:
    """A run's stable surface key is claimed for the run (RequestError when another run holds
    it) and released however the run ends; nothing to do without one."""
    if offered is None or offered.key is None:
        yield
        return
    try:
        offered.registry.claim(offered.key)
    except SurfaceError as e:
        raise RequestError(str(e)) from None
    try:
        yield
    finally:
        offered.registry.release(offered.key)


async def _execute(
    prep: Prepared, store: Store, offered: SurfaceConfig | None, worlds: WorldCache | None, on_progress: ProgressFn | None,
    shard: tuple[int, int] | None, stop: asyncio.Event | None, disclosure_policy: str, limiter: FairLimiter | None,
    owner: str | None, work_loop: WorkLoop | None,
) -> dict[str, Any]:
    req = prep.request
    run_id = prep.run_id
    worlds = worlds or WorldCache()
    limits = req.budget
    private = prep.labelset.info.private
    draw = prep.labelset.draw if isinstance(prep.labelset, DrawnSet) else None
    if draw is not None:  # instances: their metadata once generated (what an earlier execution of the run kept)
        before = await asyncio.to_thread(store.get_run, run_id)
        label_meta = dict(((before or {}).get("manifest") or {}).get("label_meta") or {})
    else:
        label_meta = frozen_label_meta(prep.labels, private)
    manifest = RunManifest(
        run_id=run_id,
        target=prep.target.info.as_dict() | {"card": prep.target.info.card},
        labelset={"name": prep.labelset.name, "hash": prep.labelset.content_hash, "version": prep.labelset.info.version,
                  "private": prep.labelset.info.private},
        proctor_version=__version__,
        git_rev=git_revision(),
        # instances: the draw's seed, so the same request (a shard, a resume) draws the same again
        options=req.model_dump(mode="json", exclude={"target", "run_id"} | ({"instances"} if req.instances == "stored" else set()))
        | ({"instances": draw.seed} if draw is not None else {}),
        label_ids=[lb.id for lb in prep.labels],
        owner=owner,  # see store.create_run
        # each label's tier and taxonomy as they are now: the run's figures never depend on label
        # files edited or deleted later (results.runs.run_label_meta)
        label_meta=label_meta,
        shard={"index": shard[0], "count": shard[1]} if shard is not None else None,
        **({"instances": draw.manifest()} if draw is not None else {}),
    ).as_dict()
    meta = manifest["label_meta"]
    # SQLite work runs in a thread: the caller's loop (the server's) stays free for its clients.
    await asyncio.to_thread(store.create_run, run_id, manifest)
    every = prep.work(shard)
    # Idempotent and resumable: what this run already recorded is not run again.
    recorded = await asyncio.to_thread(store.recorded, run_id)
    work = [(lb, a) for lb, a in every if (lb.id, a) not in recorded]
    prior = [r for r in await asyncio.to_thread(store.investigations, run_id) if (r["label_id"], r["attempt"]) in recorded]
    total, done, passed = len(every), len(every) - len(work), sum(1 for r in prior if r["passed"])
    # a stable surface key points at one world at a time: its investigations run one by one
    sem = asyncio.Semaphore(1 if req.surface_key else req.concurrency)
    lock = asyncio.Lock()
    obs_policy = disclosure.effective(disclosure_policy, private)
    # Has the target replied yet (in this execution of the run)? Until it has, an unreachable
    # target is an infra error; after, it is the investigation's failure (investigation.py).
    contact = RunContact()

    def attempt_once(label: Any, attempt: int) -> Awaitable[InvestigationResult]:
        inv = investigate(label, attempt, prep.target, worlds, limits, noise=req.noise, contact=contact, surfaces=offered)
        return work_loop.run(inv) if work_loop is not None else inv

    # instances: the shard's own, generated in the order investigations start, a few ahead; those
    # whose investigations are all recorded only for their metadata (when it was not kept)
    feed, later = None, []
    if draw is not None:
        if draw.family.directory is not None:
            worlds.search(draw.family.directory)
        uses = Counter(lb.id for lb, _ in work)
        later = list(dict.fromkeys(lb.id for lb, _ in every if lb.id not in meta and lb.id not in uses))
        pending = {lb.id: lb for lb, _ in every}
        feed = draw.source.feed(draw.family, draw.seed, [pending[i] for i in [*uses, *later]],
                                noise_free=req.noise == "off", uses={**uses, **dict.fromkeys(later, 1)}, ahead=req.concurrency)

    async def instance(label_id: str) -> Any:
        label = await feed.label(label_id)
        meta.setdefault(label_id, frozen_label_meta([label], private)[label_id])
        return label

    async def meta_only(label_id: str) -> None:
        async with sem:
            await instance(label_id)
            feed.done(label_id)

    def keep_meta() -> None:
        if draw is not None:
            store.put_run_row({"run_id": run_id, "manifest": manifest})

    async def one(label: Any, attempt: int) -> None:
        nonlocal done, passed
        async with sem:
            if feed is not None:  # an instance: wait for its world, holding the run's slot
                if stop is not None and stop.is_set():
                    return
                label = await instance(label.id)
            try:
                async with limiter.slot(run_id) if limiter is not None else contextlib.nullcontext():
                    if stop is not None and stop.is_set():
                        return
                    res = await attempt_once(label, attempt)
                    for _ in range(INFRA_RETRIES):
                        if res.error_kind not in ("network",):
                            break
                        await asyncio.sleep(0.5)
                        res = await attempt_once(label, attempt)
            finally:
                if feed is not None:
                    feed.done(label.id)
        if private:  # its truth lives in the label files only, not in the results database
            res.explanation = disclosure.withheld(disclosure.SCORES)
            res.score_details = disclosure.scrub_details(res.score_details)
        async with lock:
            await asyncio.to_thread(store.record_investigation, run_id, res)
            done += 1
            passed += int(res.passed)
            if on_progress is not None:
                maybe = on_progress(done, total, passed, res)
                if asyncio.iscoroutine(maybe):
                    await maybe

    async with observability.get().run(run_id, manifest | {"disclosure": obs_policy}, meta) as obs_run:
        try:
            try:
                await asyncio.gather(*(one(lb, a) for lb, a in work), *(meta_only(i) for i in later))
            finally:
                if feed is not None:
                    await feed.aclose()
        except BaseException as e:
            keep_meta()
            store.finish_run(run_id, RunStatus.INTERRUPTED if isinstance(e, asyncio.CancelledError | KeyboardInterrupt) else RunStatus.FAILED,
                             summarize(store.investigations(run_id), meta), error=f"{type(e).__name__}: {e}"[:500])
            raise
        if stop is not None and stop.is_set() and done < total:
            keep_meta()
            store.finish_run(run_id, RunStatus.INTERRUPTED, summarize(store.investigations(run_id), meta),
                             error=f"stopped after {done}/{total} investigations")
            raise RunInterrupted(run_id, done, total)
        def complete() -> dict[str, Any]:
            keep_meta()
            store.finish_run(run_id, RunStatus.COMPLETED, summarize(store.investigations(run_id), meta))
            return store.result(run_id).as_dict()

        result = await asyncio.to_thread(complete)
        if shard is None:  # a shard's partial figures would mislead: run metrics come from `proctor merge`
            obs_run.done(result, store)
    return result


async def run_request(
    request: EvaluationRequest,
    store: Store,
    *,
    http: httpx.AsyncClient | None = None,
    worlds: WorldCache | None = None,
    on_progress: ProgressFn | None = None,
    instances: InstanceSource | None = None,
) -> dict[str, Any]:
    """prepare + execute with a client of our own when none is given."""
    own = http is None
    http = http or make_http_client()
    try:
        prep = await prepare(request, http, instances=instances)
        return await execute(prep, store, worlds=worlds, on_progress=on_progress)
    finally:
        if own:
            await http.aclose()
