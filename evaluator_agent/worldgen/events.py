"""Change and platform events, one format each, shared by incidents and background.

An incident's trigger and the fleet's routine churn must look alike: a ConfigMap edit that
breaks a service and one that does nothing are the same kind of event with the same title,
text layout and tags. Every writer of such an event -- a mechanism, a deliberate decoy, the
background -- goes through these functions, so no format exists only when it is the answer.
"""

from __future__ import annotations

import random
import zlib

from evaluator_agent.worldgen.catalog import AUTHORS, db_table
from evaluator_agent.worldgen.telemetry import Profile, World


def configmap(
    w: World,
    ts: float,
    service: str,
    changes: str,
    author: str | None = None,
    rng: random.Random | None = None,
    restart: bool = True,
    how: str = "argo-cd sync",
) -> dict:
    """``ConfigMap ns/<svc>-config updated``: ``changes`` is one or more ``key: old -> new`` lines."""
    p = w.p[service]
    r = rng or w.rng("configmap", service, int(ts))
    author = author or r.choice(AUTHORS)
    tail = "; pods restarted by the checksum/config annotation" if restart else ""
    return w.event(
        ts,
        "config",
        f"ConfigMap {p.namespace or 'default'}/{service}-config updated",
        f"{changes}\nApplied by {author} ({how}, app {service}){tail}",
        {
            "service": service,
            "author": author,
            "config": f"{service}-config",
            "kube_namespace": p.namespace or "default",
        },
    )


def feature_flag(w: World, ts: float, service: str, flag: str, pct: int, was: int, author: str) -> dict:
    return w.event(
        ts,
        "feature_flag",
        f"Feature flag {flag} updated",
        f"Targeting changed by {author}: serve 'on' to {pct}% of users (was {was}%). "
        "Environment: production",
        {"service": service, "flag": flag, "author": author},
    )


def flag_name(service: str, rng: random.Random) -> str:
    return f"{service.removesuffix('-api')}.{rng.choice(FLAGS)}"


FLAGS = (
    "new-pricing-engine",
    "v2-rounding",
    "async-confirmation",
    "address-normalizer",
    "bulk-lookup",
    "new-checkout-flow",
    "search-reranker",
    "lazy-images",
    "split-shipments",
    "one-click-reorder",
)


def terraform(w: World, ts: float, workspace: str, title: str, diff: str, author: str, tags: dict[str, str] | None = None) -> dict:
    return w.event(
        ts,
        "terraform",
        title,
        f"{diff}\nApplied by {author}.",
        {"author": author, "workspace": workspace, **(tags or {})},
    )


def dns_plan(
    w: World,
    ts: float,
    service: str,
    record: str,
    plan_id: int,
    n_records: int,
    actor: str = "dns-enactor",
    note: str | None = None,
) -> dict:
    """The DNS automation's apply of one record set (0 records: the record was emptied)."""
    note = note or ("(stale plan cleanup)" if n_records == 0 else "(endpoint refresh)")
    return w.event(
        ts,
        "terraform",
        f"DNS automation applied plan {plan_id} to zone internal",
        f"{actor} applied plan {plan_id}: record set {record} (A) updated, {n_records} records {note}",
        {"service": service, "record": record, "author": "dns-automation", "workspace": "dns-internal"},
    )


def migration(w: World, ts: float, db: str, num: int, name: str, sql: str, app: str, version: str) -> dict:
    table = db_table(db)
    return w.event(
        ts,
        "database",
        f"Schema migration V{num}__{name} applied to {db}",
        f'Flyway: Migrating schema "public" to version "{num} - {name.replace("_", " ")}"\n'
        f"{sql}\nRun by {app} {version}",
        {"service": db, "migration": f"V{num}", "app": app, "table": table},
    )


def grant(w: World, ts: float, service: str, author: str, schema: str, note: str) -> dict:
    return w.event(
        ts,
        "database",
        f"Permissions change on {service} metadata database",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA {schema} TO {service.replace('-', '_')}_ro; applied by "
        f"{author}. {note}",
        {"service": service, "author": author},
    )


def statuspage(w: World, ts: float, service: str, vendor: str, title: str, text: str) -> dict:
    return w.event(
        ts, "statuspage", f"{vendor} status: {title}", text, {"service": service, "vendor": vendor}
    )


def campaign(w: World, ts: float, name: str, service: str, millions: float) -> dict:
    return w.event(
        ts,
        "marketing",
        f'Campaign "{name}" sent',
        f"Email and push notification to {millions:.1f}M subscribers; landing pages hit "
        f"{service} and the product pages. Scheduled by the growth team.",
        {
            "campaign": name.lower().replace("'", "").replace(" ", "-"),
            "team": "growth",
            "channel": "email",
            "service": service,
        },
    )


CAMPAIGNS = (
    "Spring Flash Sale",
    "Members Early Access",
    "Weekend Free Shipping",
    "Back to School Preview",
    "Mother's Day Gift Guide",
    "Summer Clearance",
    "Loyalty Double Points",
    "New Arrivals Digest",
)


def load_test(w: World, ts: float, service: str, rps: int, minutes: int, author: str) -> dict:
    return w.event(
        ts,
        "loadtest",
        f"k6 load test started against {service}",
        f"Scenario ramp-{minutes}m: {rps} requests/s for {minutes} minutes from client loadtest-k6 "
        f"(perf team run by {author}); results in Grafana",
        {"service": service, "author": author, "client": "loadtest-k6"},
    )


def certificate(w: World, ts: float, service: str, ok: bool, rng: random.Random) -> dict:
    """A cert-manager event on ``<svc>-tls``: a renewal that succeeded, or one that failed and
    will be retried (renewals start weeks before expiry, so a failure is usually harmless)."""
    p = w.p[service]
    ns = p.namespace or "default"
    if ok:
        reason, text = "Issuing", "The certificate has been successfully issued"
    else:
        reason = "Failed"
        text = (
            "The certificate request has failed to complete and will be retried: Failed to wait for "
            f'order resource "{service}-tls-{rng.getrandbits(20):05x}-{rng.randint(1000, 9999)}" to become '
            'ready: order is in "errored" state: Failed to finalize Order: 429 '
            "urn:ietf:params:acme:error:rateLimited"
        )
    return w.event(
        ts,
        "kubernetes",
        f"Events from the Certificate {ns}/{service}-tls",
        f"{reason}: {text}",
        {
            "service": service,
            "kube_namespace": ns,
            "kube_kind": "Certificate",
            "reason": reason,
            "kube_cluster_name": p.cluster,
            "certificate": f"{service}-tls",
        },
    )


def oom_kill(w: World, ts: float, p: Profile, pod: str, host: str, rng: random.Random) -> dict:
    """The kernel's OOM kill of one container, as the node reports it."""
    rss = int(p.mem_limit / 1024 * rng.uniform(0.985, 0.999))
    proc = {"java": "java", "python": "gunicorn", "node": "node"}.get(p.language, p.name)
    return w.event(
        ts,
        "kubernetes",
        f"Events from the Node {host}",
        f"OOMKilling: Memory cgroup out of memory: Killed process {rng.randint(1800, 40000)} ({proc}) "
        f"total-vm:{int(rss * 1.6)}kB, anon-rss:{rss}kB, file-rss:{rng.randint(9000, 40000)}kB, "
        f"shmem-rss:0kB, UID:1000 pgtables:{rng.randint(4000, 9000)}kB oom_score_adj:{rng.choice((936, 999))}",
        {
            "service": p.name,
            "kube_namespace": p.namespace,
            "kube_cluster_name": p.cluster,
            "pod_name": pod,
            "kube_deployment": p.name,
            "reason": "OOMKilling",
            "kube_kind": "Node",
            "host": host,
        },
    )


def node_upgrade(w: World, ts: float, host: str, cluster: str) -> dict:
    return w.event(
        ts,
        "kubernetes",
        f"Events from the Node {host}",
        f"NodeNotSchedulable: Node {host} status is now: NodeNotSchedulable (GKE node auto-upgrade "
        "to 1.29.4-gke.1043002)",
        {"kube_kind": "Node", "reason": "NodeNotSchedulable", "host": host, "kube_cluster_name": cluster},
    )


def backfill(w: World, ts: float, topic: str, job: str, events_n: int, author: str) -> dict:
    """A batch producer replaying history into a topic (a data fix): consumers fall behind for a while."""
    return w.event(
        ts,
        "cron",
        f"Job {job} started",
        f"Backfill {job}: replaying {events_n:,} historical events into topic {topic} "
        f"(data fix DATA-{zlib.crc32(f'{job}|{ts}'.encode()) % 9000 + 1000}, run by {author})",
        {"service": topic, "job": job, "author": author},
    )


def chaos(w: World, ts: float, service: str, name: str, what: str, minutes: int, author: str) -> dict:
    """A planned fault-injection experiment (game day): announced, bounded, expected to page."""
    return w.event(
        ts,
        "chaos",
        f"Chaos experiment {name} started",
        f"Game day: injecting {what} into {service} for {minutes} minutes. Run by {author} (SRE); "
        "halt with `chaos halt` if customer impact exceeds the budget.",
        {"service": service, "experiment": name, "team": "sre", "author": author},
    )


# Request-inspection (WAF) rules: routine ones, and the 2019 one whose nested quantifiers
# around ".*" backtrack catastrophically on long inputs. The pattern is quoted as written.
WAF_PATTERNS = (
    r"(?i)(?:union\s+select|select\s+.+\s+from)",
    r"\.\./(?:\.\./)+",
    r"(?i)<script[^>]*>",
    r"(?i)\b(?:sleep|benchmark)\s*\(",
    r"(?:^|[=:,])\s*(?:nan|infinity|true|false|null|undefined|symbol|math)\s*[;)]",
)
BACKTRACKING = (
    r"(?:(?:\x22|'|\]|\}|\\|\d|(?:nan|infinity|true|false|null|undefined|symbol|math)|`|\-|\+)+[)]*;?"
    r"((?:\s|-|~|!|{}|\|\||\+)*.*(?:.*=.*)))"
)


def inspection_rule(rng: random.Random, benign: bool) -> str:
    pattern = rng.choice(WAF_PATTERNS) if benign else BACKTRACKING
    return f'rules/{rng.randint(100000, 999999)}.yaml: new request-inspection rule with pattern "{pattern}"'


BUCKETS = (
    ("pg_wal_archive", "pg-archiver"),
    ("order_exports", "exporter"),
    ("media_uploads", "media-sync"),
    ("ml_features", "feature-builder"),
)
ROLES = ("roles/storage.objectViewer", "roles/storage.objectAdmin", "roles/storage.objectCreator")


def storage_iam(
    w: World,
    t: float,
    rng: random.Random,
    bucket: str | None = None,
    old: str | None = None,
    new: str | None = None,
    author: str | None = None,
) -> dict:
    """A storage IAM binding changed by terraform (routine, or the one that breaks archiving)."""
    b, sa = next(((x, s) for x, s in BUCKETS if x == bucket), None) or rng.choice(BUCKETS)
    old = old or rng.choice(ROLES)
    new = new or rng.choice([r for r in ROLES if r != old])
    return terraform(
        w,
        t,
        "gcp-storage-iam",
        "Terraform apply: infra/gcp/storage-iam",
        f'~ google_storage_bucket_iam_member.{b}\n    role: "{old}" -> "{new}"\n'
        f"    member: serviceAccount:{sa}@shop-prod.iam.gserviceaccount.com\n"
        "Plan: 0 to add, 1 to change, 0 to destroy.",
        author or rng.choice(AUTHORS),
    )
