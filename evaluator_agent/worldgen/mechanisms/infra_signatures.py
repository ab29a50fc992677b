"""Signature log lines of infrastructure-level mechanisms: TLS, caches and databases, partner
APIs and retries, disks and migrations. Worded as the real software prints them.

Each factory returns a LogMaker: ``(rng, ts) -> (status, message, attrs)``, or a line.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

from evaluator_agent.worldgen.messages import dns, ip, path_of
from evaluator_agent.worldgen.telemetry import LogMaker, Profile

Line = tuple[str, str, dict[str, Any]]


def tls_server_error(p: Profile) -> LogMaker:
    def make(rng: random.Random, ts: float) -> Line:
        if p.language == "go":
            return (
                "warn",
                f"http: TLS handshake error from {ip(rng)}:{rng.randint(30000, 60000)}: remote error: tls: bad certificate",
                {},
            )
        if p.language == "java":
            return (
                "warn",
                "javax.net.ssl.SSLHandshakeException: Received fatal alert: certificate_expired",
                {"error.kind": "javax.net.ssl.SSLHandshakeException"},
            )
        return (
            "warn",
            (
                "TLS error: 268436502:SSL routines:OPENSSL_internal:SSLV3_ALERT_CERTIFICATE_EXPIRED "
                f"downstream_remote_address={ip(rng)}:{rng.randint(30000, 60000)}"
            ),
            {"logger.name": "envoy.connection"},
        )

    return make


def x509_error(caller: Profile, culprit: Profile, not_after: float, rng: random.Random) -> Line:
    host = dns(culprit)
    port = 443 if culprit.role == "external" else 8443
    url = f"https://{host}:{port}/" if port != 443 else f"https://{host}/"
    now = datetime.fromtimestamp(not_after + rng.randint(1, 3000), UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    na = datetime.fromtimestamp(not_after, UTC)
    if caller.language == "go" or caller.role == "gateway":
        return (
            "error",
            (
                f'Post "{url}": tls: failed to verify certificate: x509: certificate has expired or is not yet valid: '
                f"current time {now} is after {na.strftime('%Y-%m-%dT%H:%M:%SZ')}"
            ),
            {"error.kind": "*tls.CertificateVerificationError", "peer.hostname": host},
        )
    if caller.language == "java":
        return (
            "error",
            (
                f'org.springframework.web.client.ResourceAccessException: I/O error on POST request for "{url}": '
                "PKIX path validation failed: java.security.cert.CertPathValidatorException: validity check failed\n"
                f"Caused by: java.security.cert.CertificateExpiredException: NotAfter: "
                f"{na.strftime('%a %b %d %H:%M:%S UTC %Y')}"
            ),
            {"error.kind": "javax.net.ssl.SSLHandshakeException", "peer.hostname": host},
        )
    if caller.language == "python":
        return (
            "error",
            (
                f"requests.exceptions.SSLError: HTTPSConnectionPool(host='{host}', port={port}): Max retries exceeded "
                "with url: / (Caused by SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] "
                "certificate verify failed: certificate has expired (_ssl.c:1006)')))"
            ),
            {"error.kind": "requests.exceptions.SSLError", "peer.hostname": host},
        )
    return (
        "error",
        f"Error: certificate has expired (code CERT_HAS_EXPIRED) calling {url}",
        {"error.kind": "CERT_HAS_EXPIRED", "peer.hostname": host},
    )


X509_EXPECT = {
    "go": "x509: certificate has expired",
    "envoy": "x509: certificate has expired",
    "java": "CertificateExpiredException",
    "python": "certificate has expired",
    "node": "certificate has expired",
}


def redis_restart_lines(rng: random.Random) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    before = [
        ("warn", "Received SIGTERM scheduling shutdown..."),
        ("warn", "User requested shutdown..."),
        ("info", "Redis is now ready to exit, bye bye..."),
    ]
    after = [
        ("info", "Redis version=7.2.4, bits=64, commit=00000000, modified=0, pid=1, just started"),
        (
            "warn",
            "WARNING Memory overcommit must be enabled! Without it, a background save or replication may fail.",
        ),
        ("info", "Server initialized"),
        ("info", "Ready to accept connections tcp"),
    ]
    return before, after


def slow_query_line(table: str) -> LogMaker:
    def make(rng: random.Random, ts: float) -> Line:
        if rng.random() < 0.35:
            return (
                "error",
                "ERROR:  canceling statement due to statement timeout",
                {"db.table": table},
            )
        return (
            "warn",
            (
                f"duration: {rng.uniform(1200, 9000):.3f} ms  execute <unnamed>: SELECT * FROM {table} "
                "WHERE id = $1"
            ),
            {"db.table": table},
        )

    return make


def partner_error(caller: Profile, partner: Profile, code: int, rng: random.Random) -> Line:
    host = dns(partner)
    method, path = (
        (partner.resources[0][0].split(" ", 1) + ["/"])[:2] if partner.resources else ("POST", "/")
    )
    url = f"https://{host}{path}"
    reason = "Too Many Requests" if code == 429 else "Service Unavailable"
    if caller.language == "java":
        kind = (
            "HttpClientErrorException$TooManyRequests"
            if code == 429
            else "HttpServerErrorException$ServiceUnavailable"
        )
        return (
            "error",
            (
                f'org.springframework.web.client.{kind}: {code} {reason} on {method} request for "{url}": '
                '"{\\"error\\":{\\"type\\":\\"api_error\\"}}"'
            ),
            {"error.kind": kind, "peer.hostname": host, "http.status_code": code},
        )
    if caller.language == "python":
        kind = "requests.exceptions.HTTPError"
        side = "Client" if code < 500 else "Server"
        return (
            "error",
            f"{kind}: {code} {side} Error: {reason} for url: {url}",
            {"error.kind": kind, "peer.hostname": host, "http.status_code": code},
        )
    if caller.language == "node":
        return (
            "error",
            f"AxiosError: Request failed with status code {code} ({method} {url})",
            {"error.kind": "AxiosError", "peer.hostname": host, "http.status_code": code},
        )
    return (
        "error",
        f"{method} {url}: unexpected status {code} {reason}",
        {"error.kind": "*errors.errorString", "peer.hostname": host, "http.status_code": code},
    )


def retry_warning(child: str, host: str) -> LogMaker:
    def make(rng: random.Random, ts: float) -> Line:
        n = rng.randint(1, 3)
        return (
            "warn",
            (
                f"Retrying request to {child} (attempt {n}/3) after error: timeout awaiting response "
                f"headers from {host}"
            ),
            {"peer.service": child, "retry.attempt": n},
        )

    return make


def archive_failure(db: str, rng: random.Random) -> LogMaker:
    seg = rng.getrandbits(16)

    def make(r: random.Random, ts: float) -> Line:
        wal = f"00000001{seg:08X}000000{r.randint(16, 255):02X}"
        return (
            "warn",
            (
                f"archive command failed with exit code 1\nDETAIL:  The failed archive command was: gsutil -q cp "
                f"pg_wal/{wal} gs://shop-prod-pg-wal/{db}/{wal}\nAccessDeniedException: 403 "
                "pg-archiver@shop-prod.iam.gserviceaccount.com does not have storage.objects.create access"
            ),
            {"logger.name": "postgres"},
        )

    return make


def disk_full_error() -> LogMaker:
    def make(rng: random.Random, ts: float) -> Line:
        if rng.random() < 0.3:
            return (
                "critical",
                (
                    f'PANIC:  could not write to file "pg_wal/xlogtemp.{rng.randint(1000, 60000)}": '
                    "No space left on device"
                ),
                {},
            )
        return (
            "error",
            (
                f'ERROR:  could not extend file "base/16384/{rng.randint(16000, 99999)}": No space left on '
                "device\nHINT:  Check free disk space."
            ),
            {},
        )

    return make


def nospace_upstream(caller: Profile, db: Profile, rng: random.Random) -> Line:
    core = f'ERROR: could not extend file "base/16384/{rng.randint(16000, 99999)}": No space left on device'
    kinds = {
        "java": "org.postgresql.util.PSQLException",
        "python": "psycopg2.errors.DiskFull",
        "node": "DatabaseError",
    }
    kind = kinds.get(caller.language, "pq.Error")
    msg = f"pq: {core[7:]}" if kind == "pq.Error" else f"{kind}: {core}"
    return "error", msg, {"error.kind": kind, "peer.service": db.name}


def slow_query(table: str, column: str) -> LogMaker:
    def make(rng: random.Random, ts: float) -> Line:
        if rng.random() < 0.3:
            return (
                "error",
                "ERROR:  canceling statement due to statement timeout",
                {"db.table": table},
            )
        return (
            "warn",
            (
                f"duration: {rng.uniform(1500, 12000):.3f} ms  execute <unnamed>: SELECT * FROM {table} "
                f"WHERE {column} = $1 ORDER BY created_at DESC LIMIT 50"
            ),
            {"db.table": table},
        )

    return make


CRAWLER_UA = "Mozilla/5.0 (compatible; Bytespider; spider-feedback@bytedance.com)"


def rate_limited(p: Profile) -> LogMaker:
    def make(rng: random.Random, ts: float) -> tuple[str, str, dict]:
        method, path = path_of(p, rng)
        return (
            "warn",
            f"429 Too Many Requests: rate limit exceeded for client loadtest-k6 ({method} {path})",
            {"http.status_code": 429, "usr.id": "loadtest-k6"},
        )

    return make


def crawler_line(p: Profile) -> LogMaker:
    def make(rng: random.Random, ts: float) -> tuple[str, str, dict]:
        _, path = path_of(p, rng)
        return (
            "info",
            f'GET {path}?page={rng.randint(40, 900)} 200 "{CRAWLER_UA}"',
            {"http.status_code": 200, "http.useragent": CRAWLER_UA},
        )

    return make
