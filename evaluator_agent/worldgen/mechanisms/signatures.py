"""Signature log lines of application-level mechanisms, worded as the real runtime or library prints them.

Each ``*_`` factory returns a LogMaker: ``(rng, ts) -> (status, message, attrs)``.
"""

from __future__ import annotations

import random
from typing import Any

from evaluator_agent.worldgen.telemetry import LogMaker, Profile

Line = tuple[str, str, dict[str, Any]]


def _cls(name: str) -> str:
    return "".join(part.capitalize() for part in name.replace("-api", "").split("-"))


def _pkg(name: str) -> str:
    return name.replace("-api", "").replace("-", "")


def stack_trace(p: Profile, rng: random.Random, resource: str) -> tuple[LogMaker, str]:
    cls, pkg = _cls(p.name), _pkg(p.name)
    ln = rng.randint(40, 400)
    field = rng.choice(("currency", "shippingAddress", "locale", "unitPrice", "taxRegion"))
    if p.language == "java":
        exc = rng.choice(("java.lang.NullPointerException", "java.lang.IllegalStateException"))
        if exc.endswith("NullPointerException"):
            head = (
                f'{exc}: Cannot invoke "com.shop.{pkg}.model.{field[0].upper() + field[1:]}.getCode()" '
                f'because the return value of "com.shop.{pkg}.model.LineItem.get{field[0].upper() + field[1:]}()" is null'
            )
        else:
            head = f"{exc}: {field} must be resolved before pricing (state=PENDING)"
        msg = (
            f"{head}\n\tat com.shop.{pkg}.service.{cls}Service.build({cls}Service.java:{ln})\n"
            f"\tat com.shop.{pkg}.web.{cls}Controller.handle({cls}Controller.java:{ln // 2 + 11})\n"
            "\tat java.base/jdk.internal.reflect.DirectMethodHandleAccessor.invoke(DirectMethodHandleAccessor.java:103)\n"
            "\t... 87 common frames omitted"
        )
        kind = exc
    elif p.language == "go":
        kind = "runtime.Error"
        msg = (
            f"panic: runtime error: invalid memory address or nil pointer dereference [recovered]\n"
            f"[signal SIGSEGV: segmentation violation code=0x1 addr=0x18 pc=0x{rng.getrandbits(24):x}]\n\n"
            f"goroutine {rng.randint(1000, 90000)} [running]:\n"
            f"github.com/shop/{p.name}/internal/handler.(*Handler).{cls}(0xc000{rng.getrandbits(20):05x}, ...)\n"
            f"\t/src/internal/handler/{pkg}.go:{ln} +0x1c4"
        )
        exc = "nil pointer dereference"
    elif p.language == "python":
        exc = rng.choice(("KeyError", "TypeError"))
        tail = (
            f"KeyError: '{field}'"
            if exc == "KeyError"
            else "TypeError: unsupported operand type(s) for *: 'NoneType' and 'float'"
        )
        msg = (
            f'Traceback (most recent call last):\n  File "/app/{pkg}/views.py", line {ln}, in handle\n'
            f'    payload = build_{pkg}(request.json)\n  File "/app/{pkg}/builders.py", line {ln // 3 + 7}, in build_{pkg}\n'
            f"    total = item['{field}'] * rate\n{tail}"
        )
        kind = exc
    else:
        exc = "TypeError"
        msg = (
            f"TypeError: Cannot read properties of undefined (reading '{field}')\n"
            f"    at build{cls} (/app/dist/{pkg}/builders.js:{ln}:23)\n    at async Promise.all (index 0)\n"
            f"    at async {cls}Resolver.resolve (/app/dist/resolvers/{pkg}.js:{ln // 4 + 3}:19)"
        )
        kind = exc
    method, _, path = resource.partition(" ")

    def make(r: random.Random, ts: float) -> Line:
        return (
            "error",
            msg,
            {
                "error.kind": kind,
                "http.method": method,
                "http.url_details.path": path,
                "http.status_code": 500,
            },
        )

    return make, exc


def startup_lines(p: Profile, rng: random.Random, version: str) -> list[str]:
    if p.language == "java":
        app = _cls(p.name) + "Application"
        return [
            f"Starting {app} v{version} using Java 17.0.10 with PID 1",
            f"Started {app} in {rng.uniform(9, 22):.3f} seconds (process running for {rng.uniform(10, 24):.3f})",
        ]
    if p.language == "python":
        return [
            "Starting gunicorn 21.2.0",
            "Listening at: http://0.0.0.0:8000 (1)",
            f"Booting worker with pid: {rng.randint(7, 40)}",
        ]
    if p.language == "node":
        return [f"{p.name}@{version} listening on port 8080"]
    return [f"starting {p.name} version={version} addr=:8080"]


def crash_after_kill(p: Profile, rng: random.Random) -> Line | None:
    if p.language == "python":
        return (
            "error",
            f"Worker (pid:{rng.randint(8, 60)}) was sent SIGKILL! Perhaps out of memory?",
            {},
        )
    if p.language == "node":
        return (
            "error",
            (
                "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory\n"
                " 1: 0xb7d6f0 node::Abort() [node]"
            ),
            {"error.kind": "FatalError"},
        )
    return None


def oom_own_error(p: Profile) -> LogMaker:
    def make(rng: random.Random, ts: float) -> Line:
        if p.language == "java":
            return (
                "error",
                (
                    'Exception in thread "http-nio-8080-exec-'
                    + str(rng.randint(1, 200))
                    + '" java.lang.OutOfMemoryError: Java heap space'
                ),
                {"error.kind": "java.lang.OutOfMemoryError"},
            )
        if p.language == "go":
            return (
                "error",
                (
                    f"runtime: out of memory: cannot allocate {rng.choice((4194304, 8388608))}-byte block "
                    f"({rng.randint(400, 480) * 1048576} in use)\nfatal error: out of memory"
                ),
                {"error.kind": "runtime"},
            )
        if p.language == "python":
            return (
                "error",
                f"Worker (pid:{rng.randint(8, 60)}) was sent SIGKILL! Perhaps out of memory?",
                {},
            )
        return (
            "error",
            "FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory",
            {},
        )

    return make


def gc_pause_line(p: Profile) -> LogMaker:
    limit_m = int(p.mem_limit * 0.75 / 1048576)

    def make(rng: random.Random, ts: float) -> Line:
        used = int(limit_m * rng.uniform(0.9, 0.995))
        return (
            "warn",
            (
                f"[gc] GC({rng.randint(900, 9000)}) Pause Full (G1 Compaction Pause) {used}M->{used - rng.randint(1, 12)}M"
                f"({limit_m}M) {rng.uniform(600, 2400):.3f}ms"
            ),
            {"logger.name": "gc"},
        )

    return make


def hikari_timeout(total: int, pending: int) -> LogMaker:
    def make(rng: random.Random, ts: float) -> Line:
        wait = pending + rng.randint(-5, 25)
        core = (
            f"HikariPool-1 - Connection is not available, request timed out after 30000ms "
            f"(total={total}, active={total}, idle=0, waiting={max(1, wait)})"
        )
        if rng.random() < 0.5:
            return (
                "error",
                f"java.sql.SQLTransientConnectionException: {core}",
                {
                    "error.kind": "java.sql.SQLTransientConnectionException",
                    "logger.name": "com.zaxxer.hikari.pool.HikariPool",
                },
            )
        return (
            "error",
            (
                "org.springframework.transaction.CannotCreateTransactionException: Could not open JPA EntityManager "
                f"for transaction\nCaused by: java.sql.SQLTransientConnectionException: {core}"
            ),
            {"error.kind": "org.springframework.transaction.CannotCreateTransactionException"},
        )

    return make


def hikari_leak_warning() -> LogMaker:
    def make(rng: random.Random, ts: float) -> Line:
        return (
            "warn",
            (
                f"Connection leak detection triggered for org.postgresql.jdbc.PgConnection@{rng.getrandbits(28):x} "
                f"on thread http-nio-8080-exec-{rng.randint(1, 200)}, stack trace follows"
            ),
            {"logger.name": "com.zaxxer.hikari.pool.ProxyLeakTask"},
        )

    return make


def kafka_revoke(p: Profile, group: str, topic: str) -> list[str]:
    parts = ", ".join(f"{topic}-{k}" for k in range(6))
    if p.language == "java":
        return [
            f"[Consumer clientId=consumer-{group}-1, groupId={group}] Revoking previously assigned partitions [{parts}]",
            f"[Consumer clientId=consumer-{group}-1, groupId={group}] Adding newly assigned partitions: {parts}",
        ]
    return [
        f"rebalance: revoking partitions [{parts}] group={group}",
        f"rebalance: assigned partitions [{parts}] group={group}",
    ]


def kafka_poll_timeout(group: str, topic: str) -> LogMaker:
    def make(rng: random.Random, ts: float) -> Line:
        return (
            "error",
            (
                f"[Consumer clientId=consumer-{group}-1, groupId={group}] consumer poll timeout has expired. This means "
                "the time between subsequent calls to poll() was longer than the configured max.poll.interval.ms, "
                "which typically implies that the poll loop is spending too much time processing messages."
            ),
            {"topic": topic},
        )

    return make


def slow_batch_line(topic: str) -> LogMaker:
    def make(rng: random.Random, ts: float) -> Line:
        n = rng.choice((250, 500))
        return (
            "info",
            f"Processed {n} records from {topic} partition {rng.randint(0, 11)} in {rng.randint(25000, 60000)} ms",
            {"topic": topic},
        )

    return make


def overload_error(p: Profile) -> LogMaker:
    def make(rng: random.Random, ts: float) -> Line:
        if p.language == "java":
            return (
                "error",
                (
                    "org.apache.tomcat.util.threads.ThreadPoolExecutor$RejectedExecutionException: Work queue "
                    "full (maxThreads=200, queue=100)"
                ),
                {"error.kind": "RejectedExecutionException"},
            )
        if p.language == "python":
            return (
                "error",
                f"[CRITICAL] WORKER TIMEOUT (pid:{rng.randint(8, 90)})",
                {"logger.name": "gunicorn.error"},
            )
        if p.language == "node":
            return (
                "error",
                "Error: Server overloaded: event loop lag 2314ms exceeds 1000ms, shedding request",
                {},
            )
        return (
            "error",
            "http: Accept error: too many concurrent requests (limit 512); shedding load",
            {},
        )

    return make


def n_plus_one(p: Profile) -> LogMaker:
    def make(rng: random.Random, ts: float) -> Line:
        n = rng.randint(150, 900)
        if p.language == "java":
            a, b, c = (
                rng.randint(900, 9000),
                rng.randint(10**6, 9 * 10**6),
                rng.randint(10**8, 9 * 10**8),
            )
            return (
                "info",
                (
                    f"Session Metrics {{\n    {a} nanoseconds spent acquiring 1 JDBC connections;\n    "
                    f"{b} nanoseconds spent preparing {n} JDBC statements;\n    {c} nanoseconds spent "
                    f"executing {n} JDBC statements;\n}}"
                ),
                {"logger.name": "o.h.e.i.StatisticalLoggingSessionEventListener"},
            )
        return (
            "warn",
            f"slow request: {rng.randint(900, 4000)}ms, {n} database queries",
            {"db.query_count": n},
        )

    return make


CONFIG_KEYS = {
    "java": ("SPRING_DATASOURCE_HIKARI_MAXIMUM_POOL_SIZE", "20", "${DB_POOL_SIZE}"),
    "go": ("HTTP_READ_TIMEOUT", "5s", "5000"),
    "python": ("GUNICORN_WORKERS", "4", "four"),
    "node": ("UPSTREAM_TIMEOUT_MS", "3000", "3s"),
}


def startup_failure(p: Profile) -> tuple[str, str, str, LogMaker]:
    key, old, bad = CONFIG_KEYS.get(p.language, CONFIG_KEYS["go"])

    def make(rng: random.Random, ts: float) -> Line:
        if p.language == "java":
            return (
                "error",
                (
                    "\n***************************\nAPPLICATION FAILED TO START\n***************************\n\n"
                    "Description:\n\nFailed to bind properties under 'spring.datasource.hikari.maximum-pool-size'"
                    f' to int:\n\n    Property: spring.datasource.hikari.maximum-pool-size\n    Value: "{bad}"\n'
                    '    Origin: System Environment Property "SPRING_DATASOURCE_HIKARI_MAXIMUM_POOL_SIZE"\n'
                    "    Reason: failed to convert java.lang.String to int"
                ),
                {"error.kind": "BindException"},
            )
        if p.language == "python":
            return (
                "error",
                (
                    f"1 validation error for Settings\ngunicorn_workers\n  Input should be a valid integer, unable "
                    f"to parse string as an integer [type=int_parsing, input_value='{bad}', input_type=str]"
                ),
                {"error.kind": "pydantic_core.ValidationError"},
            )
        if p.language == "node":
            return (
                "error",
                f'Error: Config validation error: "{key}" must be a number (got "{bad}")',
                {"error.kind": "ValidationError"},
            )
        return (
            "error",
            (
                f'panic: invalid value "{bad}" for {key}: time: missing unit in duration "{bad}"\n\n'
                "goroutine 1 [running]:\nmain.mustLoadConfig(...)\n\t/src/cmd/server/config.go:48 +0x2a5"
            ),
            {"error.kind": "panic"},
        )

    return key, old, bad, make


def heartbeat_failed(group: str, topic: str) -> LogMaker:
    def make(rng: random.Random, ts: float) -> Line:
        return (
            "warn",
            f"[Consumer clientId=consumer-{group}-1, groupId={group}] Attempt to heartbeat failed since "
            "group is rebalancing",
            {"topic": topic},
        )

    return make


def commit_failed(group: str, topic: str, since: float) -> LogMaker:
    def make(rng: random.Random, ts: float) -> Line:
        gen = 40 + int(max(0.0, ts - since) // 20)
        return (
            "error",
            f"[Consumer clientId=consumer-{group}-1, groupId={group}] Offset commit failed on partition "
            f"{topic}-{rng.randint(0, 5)}: CommitFailedException: Commit cannot be completed since the "
            f"group has already rebalanced and assigned the partitions to another member "
            f"(generation {gen})",
            {"topic": topic},
        )

    return make


LOCK_TIMEOUT = {
    "java": "org.postgresql.util.PSQLException: ERROR: canceling statement due to lock timeout",
    "python": "psycopg2.errors.LockNotAvailable: canceling statement due to lock timeout",
    "node": "error: canceling statement due to lock timeout",
    "go": "pq: canceling statement due to lock timeout",
}
TABLES = ("orders", "inventory_items", "accounts", "carts", "payments", "invoices")


def lock_timeout(p: Profile, db: str, table: str) -> LogMaker:
    msg = LOCK_TIMEOUT.get(p.language, LOCK_TIMEOUT["go"])

    def make(rng: random.Random, ts: float) -> Line:
        return (
            "error",
            f"{msg} (UPDATE {table} SET ... WHERE id = {rng.randint(10000, 999999)})",
            {"db.instance": db},
        )

    return make


def lock_wait(db: str) -> LogMaker:
    def make(rng: random.Random, ts: float) -> Line:
        return (
            "warn",
            f"process {rng.randint(1000, 60000)} still waiting for RowExclusiveLock on relation "
            f"{rng.randint(16000, 40000)} of database {db.replace('-', '_')} after 1000.0 ms",
            {},
        )

    return make


def slow_request(p: Profile) -> LogMaker:
    """What a starved or slow handler logs about itself (any runtime, any cause)."""

    def make(rng: random.Random, ts: float) -> Line:
        return (
            "warn",
            f"Slow request: {rng.randint(1200, 6000)}ms exceeds threshold of 1000ms",
            {},
        )

    return make


def no_healthy_upstream(rng: random.Random, ts: float) -> tuple[str, str, dict]:
    return "error", "no healthy upstream", {"http.status_code": 503}


def remaining_slots(rng: random.Random, ts: float) -> tuple[str, str, dict]:
    return (
        "critical",
        "FATAL:  remaining connection slots are reserved for non-replication superuser connections",
        {},
    )
