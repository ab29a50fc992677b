"""Log lines as the real libraries print them: access logs, upstream failures, background errors.

Every function returns ``(status, message, attrs)``. Mechanism signatures (HikariCP, x509,
OOM ...) live with their mechanism; this module holds what every world has in common.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from evaluator_agent.worldgen.telemetry import Profile

Line = tuple[str, str, dict[str, Any]]
UA = (
    "okhttp/4.12.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X)",
    "python-requests/2.31.0",
    "Go-http-client/1.1",
    "axios/1.6.8",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/123.0",
)


def dns(p: Profile) -> str:
    if p.role == "external":
        from evaluator_agent.worldgen.catalog import DOMAINS

        for d in DOMAINS:
            for e in d.entries:
                if e.name == p.name and e.host:
                    return e.host
        return f"{p.name}.example.com"
    if p.role == "db":
        return p.hosts[0] if p.hosts else p.name
    return f"{p.name}.{p.namespace or 'default'}.svc.cluster.local"


def path_of(p: Profile, rng: random.Random) -> tuple[str, str]:
    res = p.resources[0][0] if p.resources else "GET /"
    method, _, path = res.partition(" ")
    path = path.replace("{id}", str(rng.randint(100000, 9999999))).replace(
        "{sku}", f"SKU-{rng.randint(10000, 99999)}"
    )
    return method or "GET", path.replace("{sid}", f"AC{rng.getrandbits(120):030x}") or "/"


def url(p: Profile, rng: random.Random) -> str:
    _, path = path_of(p, rng)
    if p.role == "external":
        return f"https://{dns(p)}{path}"
    return f"http://{dns(p)}:8080{path}"


def ip(rng: random.Random) -> str:
    return f"10.{rng.randint(4, 15)}.{rng.randint(0, 255)}.{rng.randint(2, 254)}"


def probe_timeout(rng: random.Random) -> str:
    """A readiness probe that timed out (the kubelet's wording)."""
    return (
        f'Readiness probe failed: Get "http://{ip(rng)}:8080/healthz": context deadline '
        "exceeded (Client.Timeout exceeded while awaiting headers)"
    )


def access(
    p: Profile, rng: random.Random, ts: float, status: int = 200, dur_s: float | None = None
) -> Line:
    method, path = path_of(p, rng)
    ms = (dur_s if dur_s is not None else p.base_lat * rng.uniform(0.5, 1.6)) * 1000
    a: dict[str, Any] = {
        "http.method": method,
        "http.url_details.path": path,
        "http.status_code": status,
    }
    lvl = "info" if status < 500 else "error"
    if p.role == "gateway":
        stamp = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        msg = (
            f'[{stamp}] "{method} {path} HTTP/2" {status} - 0 {rng.randint(200, 9000)} {int(ms)} '
            f'{max(1, int(ms) - 2)} "{ip(rng)}" "{rng.choice(UA)}" "{rng.getrandbits(128):032x}" '
            f'"api.shop.example.com" "{ip(rng)}:8080"'
        )
        return lvl, msg, a
    if p.role == "worker":
        n = rng.randint(50, 500)
        return (
            "info",
            f"Processed {n} records from partition {rng.randint(0, 11)} in {int(ms * n / 10)} ms",
            {},
        )
    if p.language == "python":
        stamp = datetime.fromtimestamp(ts, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")
        return (
            lvl,
            (
                f'{ip(rng)} - - [{stamp}] "{method} {path} HTTP/1.1" {status} {rng.randint(90, 6000)} "-" '
                f'"{rng.choice(UA)}"'
            ),
            {**a, "logger.name": "gunicorn.access"},
        )
    if p.language == "node":
        return lvl, f"{method} {path} {status} {ms:.3f} ms - {rng.randint(90, 6000)}", a
    if p.language == "go":
        return lvl, "request completed", {**a, "duration_ms": round(ms, 1), "logger.name": "http"}
    return (
        lvl,
        f"Completed {status} {'OK' if status < 400 else 'Service Unavailable'} in {int(ms)}ms",
        {**a, "logger.name": "o.s.web.servlet.DispatcherServlet"},
    )


# Mechanisms with their own caller-side wording register it here (style -> line maker).
STYLE_HOOKS: dict[str, Callable[[Profile, Profile, str, random.Random], Line]] = {}


def upstream_error(p: Profile, child: Profile, style: str, rng: random.Random) -> Line:
    """How ``p`` reports a failing callee ``child``: timeouts, 503s, refused connections."""
    hook = STYLE_HOOKS.get(style.split(":", 1)[0])
    if hook is not None:
        return hook(p, child, style, rng)
    u = url(child, rng)
    host = dns(child)
    lang = "envoy" if p.role == "gateway" else p.language
    err: dict[str, Any] = {"error.kind": "", "peer.service": child.name}
    if child.role == "db":
        msgs = {
            "java": (
                "org.postgresql.util.PSQLException",
                "ERROR: canceling statement due to statement timeout",
            ),
            "go": ("pq.Error", "pq: canceling statement due to statement timeout"),
            "python": (
                "psycopg2.errors.QueryCanceled",
                "canceling statement due to statement timeout",
            ),
            "node": ("DatabaseError", "error: canceling statement due to statement timeout"),
        }
        kind, msg = msgs.get(lang, msgs["go"])
        if style == "refused":
            msg = f'could not connect to server: Connection refused. Is the server running on host "{host}" and accepting TCP/IP connections on port 5432?'
        return "error", f"{kind}: {msg}" if lang != "go" else msg, {**err, "error.kind": kind}
    if child.role == "redis":
        if style in ("refused", "5xx"):
            msgs = {
                "java": (
                    "org.springframework.data.redis.RedisConnectionFailureException",
                    f"Unable to connect to Redis; nested exception is io.lettuce.core.RedisConnectionException: Unable to connect to {child.name}:6379",
                ),
                "python": (
                    "redis.exceptions.ConnectionError",
                    f"Error 111 connecting to {child.name}:6379. Connection refused.",
                ),
                "node": ("Error", f"connect ECONNREFUSED {ip(rng)}:6379"),
                "go": ("*net.OpError", f"dial tcp {ip(rng)}:6379: connect: connection refused"),
            }
        else:
            msgs = {
                "java": (
                    "io.lettuce.core.RedisCommandTimeoutException",
                    "Command timed out after 1 second(s)",
                ),
                "python": ("redis.exceptions.TimeoutError", "Timeout reading from socket"),
                "node": ("Error", "Command timed out"),
                "go": ("*net.OpError", f"read tcp {ip(rng)}:41532->{ip(rng)}:6379: i/o timeout"),
            }
        kind, msg = msgs.get(lang, msgs["go"])
        return "error", msg if lang == "go" else f"{kind}: {msg}", {**err, "error.kind": kind}
    if lang == "envoy":
        flag, code = {"timeout": ("UT", 504), "refused": ("UF", 503)}.get(style, ("UC", 503))
        method, path = path_of(child, rng)
        msg = (
            f'"{method} {path} HTTP/2" {code} {flag} 0 95 {rng.randint(1, 30000)} - "{ip(rng)}" "{rng.choice(UA)}" '
            f'"{rng.getrandbits(128):032x}" "api.shop.example.com" "{host}:8080"'
        )
        if style != "timeout":
            msg += " upstream connect error or disconnect/reset before headers. reset reason: connection termination"
        return (
            "error",
            msg,
            {**err, "http.status_code": code, "upstream_cluster": f"outbound|8080||{host}"},
        )
    if style == "timeout":
        msgs = {
            "java": ("feign.RetryableException", f"Read timed out executing POST {u}"),
            "go": (
                "*url.Error",
                f'Post "{u}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)',
            ),
            "python": (
                "requests.exceptions.ReadTimeout",
                f"HTTPConnectionPool(host='{host}', port=8080): Read timed out. (read timeout=5.0)",
            ),
            "node": ("AxiosError", f"timeout of 5000ms exceeded calling {u}"),
        }
    elif style == "refused":
        msgs = {
            "java": (
                "org.springframework.web.client.ResourceAccessException",
                f'I/O error on POST request for "{u}": Connection refused',
            ),
            "go": (
                "*url.Error",
                f'Post "{u}": dial tcp {ip(rng)}:8080: connect: connection refused',
            ),
            "python": (
                "requests.exceptions.ConnectionError",
                f"HTTPConnectionPool(host='{host}', port=8080): Max retries exceeded with url: / "
                "(Caused by NewConnectionError('Failed to establish a new connection: [Errno 111] Connection refused'))",
            ),
            "node": ("Error", f"connect ECONNREFUSED {ip(rng)}:8080 ({host})"),
        }
    else:
        msgs = {
            "java": (
                "org.springframework.web.client.HttpServerErrorException$ServiceUnavailable",
                f'503 Service Unavailable: "upstream connect error or disconnect/reset before headers" from POST {u}',
            ),
            "go": (
                "*errors.errorString",
                f"call {child.name}: unexpected status 503 Service Unavailable",
            ),
            "python": (
                "requests.exceptions.HTTPError",
                f"503 Server Error: Service Unavailable for url: {u}",
            ),
            "node": ("AxiosError", f"Request failed with status code 503 ({u})"),
        }
    kind, msg = msgs.get(lang, msgs["go"])
    return "error", msg if lang == "go" else f"{kind}: {msg}", {**err, "error.kind": kind}


# Errors every service throws now and then, for its own domain reasons (bad input, missing
# rows, client disconnects). A service draws a few of its language's templates, filled with its
# own nouns, so two services rarely share a background error and none is the incident's.
BACKGROUND: dict[str, list[tuple[str, str]]] = {
    "java": [
        ("org.apache.catalina.connector.ClientAbortException", "java.io.IOException: Broken pipe"),
        ("jakarta.validation.ConstraintViolationException", "{field}: must not be null"),
        (
            "org.springframework.dao.DataIntegrityViolationException",
            'duplicate key value violates unique constraint "uq_{table}_idempotency_key"',
        ),
        ("com.shop.{pkg}.{Cls}NotFoundException", "{Noun} {id} not found"),
        ("java.lang.IllegalArgumentException", "Unsupported currency 'XTS' for {noun} {id}"),
        (
            "org.springframework.web.HttpMediaTypeNotSupportedException",
            "Content type 'text/plain;charset=UTF-8' not supported",
        ),
        ("com.fasterxml.jackson.databind.exc.InvalidFormatException", "Cannot deserialize value of type `java.time.Instant` from String \"{id}\""),
        ("org.springframework.orm.ObjectOptimisticLockingFailureException", "Row was updated or deleted by another transaction: {Noun}#{id}"),
    ],
    "go": [
        ("context.Canceled", "context canceled"),
        ("*json.SyntaxError", "invalid character '<' looking for beginning of value"),
        ("*errors.errorString", "client disconnected before response"),
        ("*errors.errorString", "{noun} {id}: not found"),
        ("*errors.errorString", "validate {noun}: {field} is required"),
        ("*strconv.NumError", 'strconv.Atoi: parsing "{id}x": invalid syntax'),
        ("*errors.errorString", "{noun} {id}: version conflict"),
    ],
    "python": [
        ("ValueError", "invalid literal for int() with base 10: 'undefined'"),
        ("KeyError", "'{field}'"),
        ("marshmallow.exceptions.ValidationError", "{{'{field}': ['Not a valid value.']}}"),
        ("{Cls}DoesNotExist", "{Noun} matching query does not exist (id={id})"),
        ("django.db.utils.IntegrityError", 'duplicate key value violates unique constraint "{table}_pkey"'),
        ("TypeError", "'NoneType' object is not subscriptable"),
    ],
    "node": [
        ("TypeError", "Cannot read properties of undefined (reading '{field}')"),
        ("Error", "socket hang up"),
        ("GraphQLError", 'Variable "$first" got invalid value -1'),
        ("NotFoundError", "{Noun} {id} not found"),
        ("ValidationError", '"{field}" is required'),
        ("SyntaxError", "Unexpected token < in JSON at position 0"),
    ],
}
FIELDS = ("currency", "email", "quantity", "locale", "postal_code", "tenant_id", "sku", "channel")


NOUNS = (
    "order", "cart", "payment", "invoice", "account", "session", "product", "price", "stock",
    "shipment", "refund", "coupon", "review", "profile", "address", "subscription", "ticket",
    "merchant", "payout", "ledger", "notification", "campaign", "report", "store",
)  # fmt: skip


def _domain_words(p: Profile, rng: random.Random) -> dict[str, str]:
    # a noun of the shop's domain, not the service's own name: a line must not say which
    # service threw it (nothing of ``p`` is read: background_pool keeps its draws by seed,
    # service name and language only)
    stem = rng.choice(NOUNS)
    noun = f"{stem}-{rng.choice(('service', 'api', 'core', 'store'))}"
    cls = "".join(x.capitalize() for x in noun.split("-"))
    return {
        "noun": stem,
        "Noun": stem.capitalize(),
        "Cls": cls,
        "pkg": noun.replace("-", ""),
        "table": noun.replace("-", "_"),
    }


# background_pool by (world seed, service, language): what it depends on (every background error
# line asks for it; drawing it again each time was a good part of a world's generation)
_POOLS: dict[tuple[int, str, str], tuple[tuple[str, str], ...]] = {}


def background_pool(p: Profile, world_seed: int = 0) -> list[tuple[str, str]]:
    """The few background errors one service throws in one world. Which of its language's
    templates it throws varies from world to world, so no line identifies a service across
    worlds (and with it which services tend to be culprits)."""
    key = (world_seed, p.name, p.language)
    made = _POOLS.get(key)
    if made is None:
        rng = random.Random(f"background|{world_seed}|{p.name}|{p.language}")
        pool = BACKGROUND.get(p.language, BACKGROUND["go"])
        words = _domain_words(p, rng)
        words["field"] = rng.choice(FIELDS)
        chosen = rng.sample(pool, k=min(len(pool), rng.randint(3, 4)))
        made = tuple(
            (k.format(**words), m.replace("{id}", "{{id}}").format(**words)) for k, m in chosen
        )
        if len(_POOLS) >= 4096:
            _POOLS.clear()
        _POOLS[key] = made
    return list(made)


def background_error(p: Profile, rng: random.Random) -> Line:
    if p.role == "gateway":
        method, path = path_of(p, rng)
        return (
            "error",
            (
                f'"{method} {path} HTTP/2" 503 URX 0 91 {rng.randint(1, 400)} - "{ip(rng)}" '
                f'"{rng.choice(UA)}" "-" "api.shop.example.com" "-"'
            ),
            {"http.status_code": 503},
        )
    if p.role == "external":
        return "error", f"{p.name}: 500 Internal Server Error", {}
    kind, msg = rng.choice(background_pool(p, p.world_seed))
    msg = msg.replace("{id}", str(rng.randint(1000, 9999999)))
    return "error", msg if p.language == "go" else f"{kind}: {msg}", {"error.kind": kind}


def infra_info(p: Profile, rng: random.Random) -> Line | None:
    """Routine chatter of datastores and jobs (no services)."""
    if p.role == "db" and p.language == "postgres":
        b = rng.randint(300, 9000)
        return (
            "info",
            (
                f"checkpoint complete: wrote {b} buffers ({b / 163.84:.1f}%); 0 WAL file(s) added, 0 removed, "
                f"{rng.randint(0, 3)} recycled; write={rng.uniform(20, 270):.3f} s, sync=0.{rng.randint(1, 99):03d} s"
            ),
            {},
        )
    if p.role == "db" and p.language == "mysql":
        return (
            "info",
            f"[Note] InnoDB: page_cleaner: 1000ms intended loop took {rng.randint(1001, 4000)}ms.",
            {},
        )
    if p.role == "db":
        return (
            "info",
            f"[gc][young][{rng.randint(1000, 99999)}] duration [{rng.randint(100, 900)}ms], collections [1]/[1.2s]",
            {},
        )
    if p.role == "redis":
        return (
            "info",
            rng.choice(
                [
                    "Background saving started by pid 1873",
                    "DB saved on disk",
                    "10000 changes in 60 seconds. Saving...",
                    "Background saving terminated with success",
                ]
            ),
            {},
        )
    return None
