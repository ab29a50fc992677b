"""Commit messages: one vocabulary for every deploy in a world, the culprit's included.

A real fleet's history is full of commits that sound alarming ("raise pool size", "retry
idempotent GETs") and most of them are harmless, while the change that breaks production often
reads like routine work. So every deploy -- routine, decoy or the incident's trigger -- draws
its message from the same pool: the wording of a commit says nothing about whether it caused
anything, and nothing about which mechanism it would cause. ``{noun}`` becomes the service's
domain noun.
"""

from __future__ import annotations

import random

from evaluator_agent.worldgen.baseline import bump
from evaluator_agent.worldgen.catalog import AUTHORS
from evaluator_agent.worldgen.telemetry import World

COMMITS: tuple[str, ...] = (
    # housekeeping
    "Bump jackson-databind to 2.17.1",
    "Add request id to access log",
    "Tune readiness probe thresholds",
    "Refactor pagination helper",
    "Update translations",
    "Remove unused feature toggle",
    "Add metrics for cache hit ratio",
    "Upgrade base image to distroless 2024-05",
    "Fix typo in error message",
    "Increase default page size to 50",
    "Add index hint for admin listing",
    "Split integration tests",
    "Upgrade grpc-go to 1.64",
    "Log slow handler warnings",
    "Move config to ConfigMap",
    "Bump urllib3",
    "Retry idempotent GETs once",
    "Clean up dead code in handlers",
    "Update OpenAPI spec",
    "Pin node to 20.12",
    # sounds risky, usually is not
    "Tune HTTP client timeouts",
    "Bump base image to distroless 2024-06",
    "Upgrade driver to 42.7.3",
    "Raise worker concurrency to 16",
    "Refactor retry helper",
    "Switch JSON library to orjson",
    "Fix pool size for the {noun} client",
    "Raise timeout for {noun} lookups",
    # feature work
    "Cache rendered documents in memory for reuse",
    "Increase bulk import batch size to 5000",
    "Keep per-tenant LRU of product documents",
    "Load the full category tree at startup",
    "Buffer export rows before upload",
    "Refactor currency formatting in PriceFormatter",
    "Support multiple shipping addresses per order",
    "Migrate to address schema v2",
    "Add locale-aware rounding for totals",
    "Rewrite line-item merge logic",
    "Validate stock inside the {noun} transaction",
    "Call fraud scoring before committing the {noun} update",
    "Wrap the {noun} refund flow in a single transaction",
    "Write audit rows inside the {noun} transaction",
    "Enrich each event with the customer profile",
    "Validate the address of every event",
    "Fetch the template per message instead of per batch",
    "Look up geo data for each event",
    "Register a listener per request for audit hooks",
    "Memoize tenant settings by request id",
    "Keep a per-session cache of rendered fragments",
    "Add in-memory idempotency key store",
    "Load line items lazily in the order view",
    "Show per-item availability in listings",
    "Resolve seller names per row in search results",
    "Fetch the price of each variant separately",
    "Fetch the customer tier synchronously on every request",
    "Validate addresses against the slow path",
    "Recompute recommendations inline instead of from cache",
    "Add a per-request audit write",
    "Wrap nightly {noun} re-pricing in a single transaction",
    "Take SELECT ... FOR UPDATE on the {noun} row before validation",
    "Backfill {noun} status inside the request transaction",
    "Enable synchronous audit logging on the write path",
    "Switch session store client to the new SDK",
    "Add request body validation middleware",
    "Move feature evaluation to the request path",
    "Upgrade ORM to 6.2 (lazy loading defaults changed)",
    "Add new {noun} template type to the content update",
    "Ship content update with extra input field",
    "Generate {noun} export from the new query",
)


def noun(service: str) -> str:
    return service.removesuffix("-api").removesuffix("-service").replace("-", " ")


def commit_message(rng: random.Random, service: str) -> str:
    """A commit message for a deploy of ``service``, from the one shared vocabulary."""
    return rng.choice(COMMITS).replace("{noun}", noun(service))


def deploy_next(
    w: World, service: str, ts: float, rng: random.Random, longest: int = 240, pipelines: tuple[str, ...] = ()
) -> None:
    """A deploy of ``service``'s next version by anyone, its message from the shared vocabulary,
    rolled out in 90 s to ``longest`` s (through one of ``pipelines``, if given)."""
    version, author, message = bump(w.p[service].version, rng), rng.choice(AUTHORS), commit_message(rng, service)
    rollout_s = rng.randint(90, longest)
    if pipelines:
        w.deploy(service, ts, version, author, message, rollout_s=rollout_s, pipeline=rng.choice(pipelines))
    else:
        w.deploy(service, ts, version, author, message, rollout_s=rollout_s)
