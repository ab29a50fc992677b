"""Routine changes: the fleet's churn over the whole window, with no quiet period around the
incident (deploys, ConfigMap edits, flags, terraform and DNS automation, migrations, grants,
vendor notices, certificate renewals, cron runs, autoscaling), and the publishers of files
their callers load.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from evaluator_agent.worldgen import events, messages
from evaluator_agent.worldgen.ambient.dependency_blips import blip_migration
from evaluator_agent.worldgen.ambient.placement import (
    anchor_of,
)
from evaluator_agent.worldgen.ambient.service_blips import blip_benign_load, rebalance
from evaluator_agent.worldgen.catalog import AUTHORS, DOMAINS, vendor_of
from evaluator_agent.worldgen.commits import deploy_next
from evaluator_agent.worldgen.mechanisms.base import Plan
from evaluator_agent.worldgen.telemetry import ARTIFACTS, MIN, World

CONFIG_CHANGES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "java": (
        ("SPRING_DATASOURCE_HIKARI_MAXIMUM_POOL_SIZE", "20", "30"),
        ("LOGGING_LEVEL_ROOT", "INFO", "WARN"),
        ("JAVA_OPTS", "-Xmx1536m", "-Xmx1792m"),
        ("HTTP_CLIENT_READ_TIMEOUT_MS", "2000", "3000"),
    ),
    "go": (
        ("HTTP_READ_TIMEOUT", "5s", "8s"),
        ("LOG_LEVEL", "info", "debug"),
        ("GOMAXPROCS", "2", "4"),
        ("UPSTREAM_RETRIES", "2", "1"),
    ),
    "python": (
        ("GUNICORN_WORKERS", "4", "6"),
        ("LOG_LEVEL", "INFO", "WARNING"),
        ("REQUESTS_TIMEOUT_S", "5", "8"),
    ),
    "node": (
        ("UPSTREAM_TIMEOUT_MS", "3000", "5000"),
        ("NODE_OPTIONS", "--max-old-space-size=768", "--max-old-space-size=896"),
        ("LOG_LEVEL", "info", "warn"),
    ),
}


K8S_CHANGES = (
    ("resources.limits.cpu", "1", "2"),
    ("resources.limits.cpu", "500m", "1"),
    ("resources.limits.memory", "1Gi", "2Gi"),
    ("resources.requests.cpu", "250m", "400m"),
    ("replicas", "3", "4"),
    ("kafka.consumer.session.timeout.ms", "30000", "45000"),
    ("kafka.consumer.max.poll.records", "500", "250"),
)


TERRAFORM = (
    (
        "gke-node-pools",
        "Terraform apply: infra/gke/node-pools",
        "~ google_container_node_pool.{x}\n    autoscaling.max_node_count: 12 -> 16\n"
        "Plan: 0 to add, 1 to change, 0 to destroy.",
    ),
    (
        "cloudsql",
        "Terraform apply: infra/gcp/cloudsql",
        "~ google_sql_database_instance.{x}\n    settings.backup_configuration.start_time: "
        '"03:00" -> "04:00"\nPlan: 0 to add, 1 to change, 0 to destroy.',
    ),
    (
        "monitoring",
        "Terraform apply: infra/datadog/monitors",
        "+ datadog_monitor.{x}_latency\nPlan: 1 to add, 0 to change, 0 to destroy.",
    ),
    (
        "pubsub",
        "Terraform apply: infra/gcp/pubsub",
        "~ google_pubsub_subscription.{x}\n    ack_deadline_seconds: 20 -> 30\n"
        "Plan: 0 to add, 1 to change, 0 to destroy.",
    ),
)


VENDOR_NOTICES = (
    ("Scheduled maintenance", "Scheduled - We will be performing maintenance on the dashboard. The API is not affected."),
    ("Degraded performance in EU region", "Investigating - Some requests in eu-west are slower than usual. US regions are not affected."),
    ("Resolved: delayed webhooks", "Resolved - Webhook deliveries were delayed for some accounts. All queued events have been delivered."),
    ("Elevated error rates", "Investigating - We are seeing elevated error rates for a small number of legacy API versions."),
)


def routine_changes(w: World, plan: Plan, rng: random.Random, high: bool) -> None:
    """The fleet's churn, uniformly over the window: no quiet period around the incident."""
    clock = w.clock
    culprit = plan.chain[0] if plan.chain else None
    anchor = anchor_of(plan)

    def when() -> float:
        # pages come in busy hours, and busy hours are when people ship
        if rng.random() < 0.4:
            return rng.uniform(max(clock.start + 5 * MIN, plan.fired_at - 3600), clock.end - 2 * MIN)
        return rng.uniform(clock.start + 5 * MIN, clock.end - 2 * MIN)

    def free(n: str, t: float) -> bool:
        # the culprit's own story has one change; another near it would be a second story
        return not (n == culprit and anchor - 45 * MIN <= t)

    # deploys: at most one per service in the window, so versions stay monotonic
    in_window = {n for n in w.p if w.deployed_in_window(n)}
    deployable = [n for n in sorted(w.p) if w.p[n].role in ("api", "worker", "gateway") and n not in in_window]
    # a shop that ships continuously: a deploy every few minutes somewhere
    k = rng.randint(16, 22) if high else rng.randint(12, 18)
    for name in rng.sample(deployable, k=min(len(deployable), k)):
        t = when()
        if not free(name, t):
            continue
        routine_deploy(w, name, t, rng)
    # config edits of every service kind
    for _ in range(rng.randint(6, 9) if high else rng.randint(4, 7)):
        t = when()
        cands = [n for n in sorted(w.p) if w.p[n].role in ("api", "worker", "redis") and free(n, t)]
        if not cands:
            continue
        config_change(w, rng.choice(cands), t, rng)
    _routine_rest(w, plan, rng, high, when, free)


def config_change(w: World, name: str, t: float, rng: random.Random) -> None:
    """A routine ConfigMap edit of ``name`` (a cache's maxmemory, a timeout, a limit ...)."""
    p = w.p[name]
    if p.role not in ("api", "worker", "redis"):
        return
    if p.role == "redis":
        old, new = rng.choice((("2gb", "4gb"), ("4gb", "6gb"), ("1gb", "2gb")))
        events.configmap(
            w, t, name, f"maxmemory: {old} -> {new}\nmaxmemory-policy: allkeys-lru", rng=rng,
            restart=False, how=f"terraform apply, run-{rng.getrandbits(40):010x}",
        )
        return
    opts = list(CONFIG_CHANGES.get(p.language, CONFIG_CHANGES["go"])) + list(K8S_CHANGES)
    if p.role != "worker":
        opts = [o for o in opts if not o[0].startswith("kafka.")]
    elif rng.random() < 0.6:  # consumers' configs are mostly consumer settings
        opts = [o for o in opts if o[0].startswith("kafka.")]
    roll = rng.random()
    if roll < 0.15:  # right-sizing, up or down a notch
        old, new = rng.choice((("2", "1500m"), ("1", "2"), ("500m", "1"), ("4", "3"), ("1500m", "2")))
        text = f"resources.limits.cpu: {old} -> {new} (right-sizing, ticket OPS-{rng.randint(1000, 9999)})"
    elif roll < 0.25 and p.role == "api":
        text = events.inspection_rule(rng, benign=True)
    else:
        key, old, new = rng.choice(opts)
        if key.startswith(("resources.", "kafka.")) or key == "replicas":
            text = f"{key}: {old} -> {new}"
        else:
            text = f'{key}: "{old}" -> "{new}"'
    events.configmap(w, t, name, text, rng=rng, restart=rng.random() < 0.7)


def _routine_rest(
    w: World,
    plan: Plan,
    rng: random.Random,
    high: bool,
    when: Callable[[], float],
    free: Callable[[str, float], bool],
) -> None:
    """Flags, terraform, migrations, grants, vendor notices, renewals, benign load, cron."""
    for _ in range(rng.randint(2, 4)):
        t = when()
        cands = [n for n in sorted(w.p) if w.p[n].role == "api" and free(n, t)]
        if cands:
            name = rng.choice(cands)
            pct = rng.choice((10, 25, 50, 100))
            was = {10: 0, 25: 10, 50: 25, 100: 50}[pct]
            events.feature_flag(w, t, name, events.flag_name(name, rng), pct, was, rng.choice(AUTHORS))
    for _ in range(rng.randint(3, 6)):
        t = when()
        roll = rng.random()
        if roll < 0.45:
            cands = [n for n in sorted(w.p) if w.p[n].role in ("db", "redis", "api") and free(n, t)]
            if cands:
                name = rng.choice(cands)
                events.dns_plan(w, t, name, messages.dns(w.p[name]), rng.randint(100000, 999999), rng.randint(1, 4))
        elif roll < 0.5:
            # the cleanup of a record set nobody resolves any more: a retired endpoint
            retired = [
                e.name
                for d in DOMAINS
                for e in d.entries
                if e.role == "db" and e.language == "postgres" and e.name not in w.p
            ]
            if retired:
                name = rng.choice(retired)
                stem = name.removesuffix("-db")
                events.dns_plan(w, t, name, f"pg-{stem}-01", rng.randint(100000, 999999), 0)
        elif roll < 0.7:
            events.storage_iam(w, t, rng)
        else:
            ws, title, diff = rng.choice(TERRAFORM)
            events.terraform(w, t, ws, title, diff.replace("{x}", rng.choice(sorted(w.p)).replace("-", "_")), rng.choice(AUTHORS))
    for _ in range(rng.randint(1, 3)):
        blip_migration(w, plan, rng, when())
    if rng.random() < 0.5:
        t = when()
        cands = [n for n in sorted(w.p) if w.p[n].role == "api" and free(n, t)]
        if cands:
            name = rng.choice(cands)
            events.grant(w, t, name, rng.choice(AUTHORS), rng.choice(("reporting", "analytics", "r1")), "Read access for the reporting replica.")
    externals = [n for n in sorted(w.p) if w.p[n].role == "external"]
    for _ in range(rng.randint(0, 2)):
        if externals:
            e = rng.choice(externals)
            title, text = rng.choice(VENDOR_NOTICES)
            events.statuspage(w, when(), e, vendor_of(e), title, text)
    for _ in range(rng.randint(1, 2)):
        svc = rng.choice([n for n in sorted(w.p) if w.p[n].role in ("api", "gateway")])
        events.certificate(w, when(), svc, True, rng)
    if rng.random() < 0.4:
        blip_benign_load(w, plan, rng, when())
    cron_and_scaling(w, rng)


def routine_deploy(w: World, name: str, t: float, rng: random.Random) -> None:
    """A deploy with nothing wrong in it (a worker's consumers rebalance as pods roll)."""
    deploy_next(w, name, t, rng, longest=300, pipelines=("argo-cd", "github-actions", "spinnaker"))
    if w.p[name].role == "worker":
        rebalance(w, name, t + rng.uniform(20, 60), rng, rounds=rng.randint(1, 2))


def cron_and_scaling(w: World, rng: random.Random) -> None:
    clock = w.clock
    for name in sorted(n for n in w.p if w.p[n].role == "cron"):
        for t in range(clock.start + rng.randint(5, 55) * MIN, clock.end - 5 * MIN, 3600):
            took = rng.randint(40, 900)
            w.event(
                t,
                "cron",
                f"Job {name} started",
                f"CronJob {w.p[name].namespace}/{name} started job {name}-{t // 60}",
                {"service": name, "kube_namespace": w.p[name].namespace},
            )
            w.log(t + 2, name, "info", f"Job {name} started", rng=rng)
            w.log(
                t + took,
                name,
                "info",
                f"Job {name} finished in {took}s; processed {rng.randint(1000, 90000)} rows",
                rng=rng,
            )
    for _ in range(rng.randint(2, 5)):
        name = rng.choice([n for n in sorted(w.p) if w.p[n].role in ("api", "gateway")])
        n0 = len(next(iter(w.p[name].pods.values()), [1, 1]))
        t = rng.uniform(clock.start, clock.end - MIN)
        w.event(
            t,
            "autoscaling",
            f"HorizontalPodAutoscaler {w.p[name].namespace}/{name} scaled",
            f"New size: {max(2, n0 + rng.choice((-1, 1, 2)))}; reason: cpu resource utilization (percentage of request) "
            f"{rng.choice(('above', 'below'))} target",
            {"service": name, "kube_namespace": w.p[name].namespace},
        )


def publishers(w: World, rng: random.Random) -> None:
    """Services that publish a file their callers load (feature files, rule sets ...)."""
    cands = [n for n in sorted(w.p) if w.p[n].role == "api" and w.topo.callers.get(n)]
    for name in rng.sample(cands, k=min(len(cands), rng.randint(3, 6))):
        w.publishers.setdefault(name, (rng.choice(ARTIFACTS), rng.choice((60, 128, 200, 256)) * rng.uniform(0.5, 1.2)))
