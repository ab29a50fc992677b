"""The healthy steady state of every entity: traffic, latency, versions, pods, endpoints, limits."""

from __future__ import annotations

import random

from evaluator_agent.worldgen.catalog import db_table
from evaluator_agent.worldgen.telemetry import Deploy, Profile, World

GI = 1024**3
OP = {
    "gateway": "http.request",
    "api": "http.request",
    "worker": "kafka.consume",
    "external": "http.request",
    "redis": "redis.command",
    "cron": "",
}
DB_OP = {
    "postgres": "postgres.query",
    "mysql": "mysql.query",
    "elasticsearch": "elasticsearch.query",
}

ENDPOINTS: dict[str, list[str]] = {
    "api-gateway": ["POST /api/*", "GET /api/*"],
    "web-bff": ["POST /graphql", "GET /api/v1/home"],
    "mobile-bff": ["POST /graphql", "GET /m/v2/feed"],
    "checkout": ["POST /v1/checkout", "GET /v1/checkout/{id}"],
    "cart": ["GET /v1/carts/{id}", "POST /v1/carts/{id}/items"],
    "payments-api": ["POST /v1/payment_intents", "POST /v1/payment_intents/{id}/capture"],
    "payment-processor": ["POST /v1/authorize", "POST /v1/capture"],
    "ledger": ["POST /v1/entries", "GET /v1/accounts/{id}/balance"],
    "orders": ["POST /v1/orders", "GET /v1/orders/{id}"],
    "catalog": ["GET /v1/products/{id}", "GET /v1/products"],
    "search": ["GET /v1/search", "GET /v1/search/facets"],
    "inventory": ["GET /v1/stock/{sku}", "POST /v1/stock/reserve"],
    "pricing": ["GET /v1/prices/{sku}", "POST /v1/prices/batch"],
    "auth": ["POST /oauth/token", "GET /v1/sessions/{id}"],
    "recommendations": ["GET /v1/recommendations", "GET /v1/recommendations/similar/{id}"],
    "shipping": ["POST /v1/quotes", "POST /v1/labels"],
    "tax-calculator": ["POST /v1/tax/quote"],
    "fraud-detection": ["POST /v1/score"],
}
EXTERNAL_ENDPOINT = {
    "stripe-api": "POST /v1/payment_intents",
    "adyen-api": "POST /v71/payments",
    "sendgrid-api": "POST /v3/mail/send",
    "twilio-api": "POST /2010-04-01/Accounts/{sid}/Messages.json",
    "fcm-api": "POST /v1/projects/shop/messages:send",
    "avalara-api": "POST /api/v2/transactions/create",
    "maxmind-api": "POST /minfraud/v2.0/score",
    "shippo-api": "POST /shipments/",
    "fedex-api": "POST /rate/v1/rates/quotes",
    "smarty-api": "GET /street-address",
}
MEM_LIMIT = {
    "java": 2 * GI,
    "go": GI // 2,
    "python": GI,
    "node": GI,
    "envoy": GI // 2,
    "redis": 4 * GI,
}


def endpoints(name: str, role: str, language: str) -> list[tuple[str, float]]:
    if role == "api" or role == "gateway":
        eps = ENDPOINTS.get(name)
        if eps is None:
            noun = name.removesuffix("-api").removesuffix("-service")
            eps = [f"GET /v1/{noun}/{{id}}", f"POST /v1/{noun}"]
        return [(e, 0.7 if i == 0 else 0.3 / (len(eps) - 1)) for i, e in enumerate(eps)]
    if role == "worker":
        return [("Consume Topic", 1.0)]
    if role == "db":
        if language == "elasticsearch":
            return [("POST /products/_search", 1.0)]
        table = db_table(name)
        return [(f"SELECT * FROM {table} WHERE id = ?", 1.0)]
    if role == "redis":
        return [("GET", 1.0)]
    if role == "external":
        return [(EXTERNAL_ENDPOINT.get(name, "POST /v1/requests"), 1.0)]
    return []


def new_version(rng: random.Random) -> str:
    return f"{rng.randint(1, 4)}.{rng.randint(0, 40)}.{rng.randint(0, 9)}"


def bump(version: str, rng: random.Random) -> str:
    major, minor, patch = (int(x) for x in version.split("."))
    return f"{major}.{minor + 1}.0" if rng.random() < 0.6 else f"{major}.{minor}.{patch + 1}"


def init_profiles(w: World) -> None:
    """Create the steady state of every entity; ``noise='off'`` zeroes the background error rates."""
    topo = w.topo
    for name in sorted(topo.services):
        svc, entry = topo.services[name], topo.entries[name]
        rng = w.rng("profile", name)
        role, lang = entry.role, entry.language
        depth = len(topo.ancestors(name))
        if role == "gateway":
            rps, lat = rng.uniform(350, 600), rng.uniform(0.06, 0.12)
        elif role == "api":
            rps = rng.uniform(120, 260) if name.endswith("-bff") else rng.uniform(15, 140)
            lat = rng.uniform(0.02, 0.09) * (1.4 if lang in ("java", "python") else 1.0)
        elif role == "worker":
            rps, lat = rng.uniform(20, 90), rng.uniform(0.006, 0.03)
        elif role == "db":
            rps, lat = rng.uniform(150, 700), rng.uniform(0.0015, 0.006)
        elif role == "redis":
            rps, lat = rng.uniform(400, 2500), rng.uniform(0.0004, 0.0012)
        elif role == "external":
            rps, lat = rng.uniform(4, 40), rng.uniform(0.12, 0.35)
        else:
            rps, lat = 0.0, 0.0
        base_err = {
            "external": rng.uniform(0.001, 0.006),
            "db": rng.uniform(0.00002, 0.0002),
            "redis": 0.0,
        }.get(role, rng.uniform(0.0003, 0.0025))
        if w.noise == "off":
            base_err = 0.0
        version = new_version(rng)
        deploys = (
            [Deploy(w.clock.start - rng.randint(2, 20) * 86400, version)]
            if role in ("api", "gateway", "worker")
            else []
        )
        pods: dict[str, list[str]] = {}
        if role in ("api", "gateway", "worker"):
            rs = f"{rng.getrandbits(36):09x}"
            n = rng.randint(2, 6) + (3 if role == "gateway" else 0)
            pods[version] = [
                f"{name}-{rs}-{''.join(rng.choice('bcdfghjklmnpqrstvwxz2456789') for _ in range(5))}"
                for _ in range(n)
            ]
        elif role == "redis":
            pods["7.2.4"] = [f"{name}-0"]
        op = DB_OP.get(lang, "") if role == "db" else OP.get(role, "")
        n = w.clock.n
        w.p[name] = Profile(
            name=name,
            role=role,
            kind=svc["kind"],
            language=lang,
            team=svc["team"],
            namespace=svc["namespace"],
            cluster=svc["cluster"],
            hosts=list(svc["hosts"]),
            op=op,
            rps=rps / (1 + 0.05 * depth),
            base_err=base_err,
            base_lat=lat,
            resources=endpoints(name, role, lang),
            deploys=deploys,
            pods=pods,
            traffic=[1.0] * n,
            err_own=[0.0] * n,
            err_prop=[0.0] * n,
            lat_add=[0.0] * n,
            mem_limit=float(MEM_LIMIT.get(lang, GI)) * (2 if rng.random() < 0.3 else 1),
            mem_base=rng.uniform(0.35, 0.62),
            cpu_limit=float(rng.choice((1, 2, 2, 4))),
            world_seed=w.seed,
        )
