"""Reading evidence the way the ``methodical`` agent does: what kind of line a log line is, which
dependency an error names, what kind of change or platform event an event is, and whether a
metric departed from its own baseline.

Everything here is a pure function of tool results the agent received (already parsed JSON).
Tool results come from a proctor the agent does not control: a missing key, a null point or a
string where a number belongs must never raise.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from statistics import median
from typing import Any

from .signals import as_dict, as_list, tag_value
from .transcript import parse_time

# --------------------------------------------------------------------------- log lines by kind

#: What a line says, as an engineer skimming logs would label it. A line may carry several
#: kinds (a flagged request's stack trace is both ``crash`` and ``flag``). The first group is
#: what a *caller* logs about a dependency, the rest what a service logs about itself.
LOG_KINDS: tuple[tuple[str, str], ...] = (
    # a client's view of a failing dependency
    (
        "dns",
        r"UnknownHostException|Name or service not known|ENOTFOUND|DNS resolution failed"
        r"|no such host|could not resolve host|NXDOMAIN",
    ),
    (
        "x509",
        r"x509:|certificate has expired|CERT_HAS_EXPIRED|CertificateExpiredException"
        r"|CERTIFICATE_VERIFY_FAILED|PKIX path validation failed",
    ),
    ("rate_limited", r"\b429\b|Too Many Requests"),
    ("unavailable", r"\b50[234]\b|Service Unavailable|Bad Gateway"),
    (
        "parse",
        r"has \d+ \w+, limit is \d+|expected at most \d+ \w+, got \d+"
        r"|exceeds \d+ \w+ \(got \d+\)|too many \w+: \d+ > \d+",
    ),
    ("nospace", r"No space left on device"),
    ("stmt_timeout", r"canceling statement due to statement timeout"),
    ("lock_timeout", r"lock timeout|LockNotAvailable"),
    ("refused", r"[Cc]onnection refused|ECONNREFUSED|Unable to connect"),
    ("timeout", r"[Tt]imed out|[Tt]imeout|deadline exceeded"),
    ("retry", r"Retrying request to"),
    # a service about itself
    ("oom", r"OutOfMemoryError|out of memory|heap out of memory|Perhaps out of memory"),
    (
        "startup",
        r"APPLICATION FAILED TO START|validation error for Settings|Config validation error"
        r"|panic: invalid value|Failed to bind properties",
    ),
    ("pool", r"Connection is not available|HikariPool-\d+ - Connection"),
    ("pool_leak", r"[Ll]eak detection triggered"),
    (
        "overload",
        r"Work queue full|WORKER TIMEOUT|[Oo]verloaded|too many concurrent requests"
        r"|shedding",
    ),
    ("slow", r"[Ss]low request: \d+ms"),
    ("n_plus_one", r"\d+ database queries|executing \d+ JDBC statements"),
    (
        "crash",
        r"NullPointerException|IllegalStateException|nil pointer dereference"
        r"|Traceback \(most recent call last\)|Cannot read properties of undefined",
    ),
    ("flag", r"\[feature flag [^\]]+ enabled"),
    ("heartbeat", r"[Hh]eartbeat failed|group is rebalancing"),
    ("rebalance", r"[Rr]evoking previously assigned|rebalance: revoking"),
    ("commit_failed", r"CommitFailedException|[Oo]ffset commit failed"),
    ("poll_timeout", r"poll timeout has expired"),
    ("slow_batch", r"Processed \d+ records from \S+ partition \d+ in \d{5,} ms"),
    ("gc", r"Pause Full|GC overhead"),
    ("no_upstream", r"no healthy upstream"),
    ("tls_server", r"TLS handshake error|certificate_expired|CERTIFICATE_EXPIRED"),
    ("slow_query", r"duration: [\d.]+ ms\s+execute"),
    ("conn_slots", r"remaining connection slots|too many clients"),
    ("lock_wait", r"still waiting for \w*Lock"),
    ("archive", r"archive command failed"),
    ("redis_restart", r"Received SIGTERM|Ready to accept connections|just started"),
    ("chaos", r"fault filter abort"),
    ("loadtest", r"loadtest-k6"),
    ("crawler", r"Bytespider|[Ss]pider|[Cc]rawler|Googlebot|bingbot"),
)
_KIND_RX = tuple((k, re.compile(rx)) for k, rx in LOG_KINDS)

#: kinds a caller logs about a dependency, most specific first (the style of a hop)
CLIENT_KINDS = (
    "dns", "x509", "parse", "nospace", "rate_limited", "lock_timeout", "stmt_timeout",
    "refused", "timeout", "unavailable",
)  # fmt: skip


def line_kinds(message: str, attrs: dict[str, Any] | None = None) -> set[str]:
    """Kinds of one log line, from its message and the attributes a pipeline indexes."""
    text = message
    a = attrs or {}
    extra = " ".join(str(a.get(k) or "") for k in ("http.useragent", "usr.id", "error.kind"))
    if extra.strip():
        text = f"{message} {extra}"
    return {k for k, rx in _KIND_RX if rx.search(text)}


@dataclass
class LogLine:
    ts: float
    status: str
    message: str
    attrs: dict[str, Any]
    kinds: set[str]


def log_lines(content: Any) -> list[LogLine]:
    """The lines of a ``search_logs`` answer, newest first as the tool sorts them."""
    out = []
    for entry in map(as_dict, as_list(as_dict(content).get("logs"))):
        t = entry.get("ts")
        try:
            ts = float(t) if t is not None else None
        except (TypeError, ValueError):
            ts = None
        if ts is None:
            dt = parse_time(entry.get("timestamp"))
            ts = dt.timestamp() if dt else None
        if ts is None:
            continue
        msg = str(entry.get("message") or "")
        attrs = as_dict(entry.get("attributes"))
        out.append(
            LogLine(
                ts, str(entry.get("status") or "info").lower(), msg, attrs, line_kinds(msg, attrs)
            )
        )
    return out


@dataclass
class LogWindow:
    """A sample of one service's lines over ``[t0, t1]``: the newest ``len(lines)`` of
    ``total`` matching lines. Rates scale the sample up to the total, per minute."""

    lines: list[LogLine]
    total: int
    t0: float
    t1: float

    @classmethod
    def of(cls, content: Any, t0: float, t1: float) -> LogWindow:
        lines = [x for x in log_lines(content) if t0 - 1 <= x.ts <= t1 + 1]
        try:
            total = int(float(as_dict(content).get("total_matched") or len(lines)))
        except (TypeError, ValueError):
            total = len(lines)
        return cls(lines, max(total, len(lines)), t0, t1)

    @property
    def minutes(self) -> float:
        return max(1.0, (self.t1 - self.t0) / 60)

    def scale(self) -> float:
        return self.total / len(self.lines) if self.lines else 0.0

    def count(self, kind: str) -> int:
        return sum(1 for x in self.lines if kind in x.kinds)

    def rate(self, kind: str | None = None) -> float:
        """Lines (of one kind) per minute over the window, estimated from the sample."""
        n = len(self.lines) if kind is None else self.count(kind)
        return n * self.scale() / self.minutes

    def first(self, kind: str) -> float | None:
        ts = [x.ts for x in self.lines if kind in x.kinds]
        return min(ts) if ts else None

    def last(self, kind: str) -> float | None:
        ts = [x.ts for x in self.lines if kind in x.kinds]
        return max(ts) if ts else None


#: a stream that stopped this long before the end of the window is over (it did not page)
STILL_GOING_S = 20 * 60.0


def new_kinds(recent: LogWindow, base: LogWindow, min_count: int = 2) -> dict[str, float]:
    """Kinds of line that started with the incident: logged now at a rate well above the
    service's own baseline, and still logged lately. Value: the excess rate per minute."""
    out = {}
    for kind, _ in LOG_KINDS:
        n = recent.count(kind)
        if n < min_count or (recent.last(kind) or 0.0) < recent.t1 - STILL_GOING_S:
            continue
        now, before = recent.rate(kind), base.rate(kind)
        if now >= max(0.15, 3 * before):
            out[kind] = now - before
    return out


# --------------------------------------------------------------------------- who an error names


@dataclass
class Peer:
    """A dependency as a caller can name it: by service name or by the host it dials."""

    name: str
    kind: str  # catalog kind: service, database, cache, queue, external, job, gateway
    description: str = ""

    def tokens(self) -> list[str]:
        """Words a hostname of this dependency plausibly contains (externals: the vendor)."""
        toks = {self.name.lower()}
        stem = re.sub(r"-(api|db|redis|svc|service)$", "", self.name.lower())
        if self.kind == "external" and len(stem) >= 3:
            toks.add(stem)
            words = [w.lower() for w in re.findall(r"[A-Za-z]+", self.description)]
            toks.update(w for w in words if len(w) >= 4)
            if words:
                toks.add("".join(words))
        return sorted(toks, key=len, reverse=True)


_HOST_RX = re.compile(r"(?:https?://|host=')([A-Za-z0-9.-]+)")


def hosts_in(line: LogLine) -> list[str]:
    hosts = [str(line.attrs.get("peer.hostname") or "")]
    hosts += _HOST_RX.findall(line.message)
    return [h.lower() for h in hosts if h]


def named_peer(line: LogLine, peers: dict[str, Peer], self_name: str) -> str | None:
    """The dependency an error line names: its ``peer.service``, else the host it dialled
    (a cluster DNS name, a vendor's API host), else the dependency's name in the message.
    Only dependencies in ``peers`` count, never the service itself."""
    ps = str(line.attrs.get("peer.service") or "")
    if ps and ps != self_name and ps in peers:
        return ps
    for host in hosts_in(line):
        first = host.split(".")[0]
        if first in peers and first != self_name:
            return first
        flat = re.sub(r"[^a-z0-9]", "", host)
        best = None
        for p in peers.values():
            if p.kind != "external":
                continue
            for tok in p.tokens():
                t = re.sub(r"[^a-z0-9]", "", tok)
                if len(t) >= 3 and t in flat and (best is None or len(t) > best[1]):
                    best = (p.name, len(t))
        if best:
            return best[0]
    low = line.message.lower()
    for name in sorted(peers, key=len, reverse=True):
        if name != self_name and re.search(
            rf"(?<![a-z0-9_-]){re.escape(name.lower())}(?![a-z0-9_-])", low
        ):
            return name
    return None


def client_kind(line: LogLine) -> str:
    """How a caller's error line reports its dependency (``CLIENT_KINDS``), else ``error``."""
    for k in CLIENT_KINDS:
        if k in line.kinds:
            return k
    return "error"


@dataclass
class Attribution:
    """What one service's errors say about its dependencies, now against its baseline."""

    service: str
    excess: dict[str, float]  # dependency -> extra error lines per minute naming it
    styles: dict[str, Counter[str]]  # dependency -> client kinds of the lines naming it
    own_rate: float  # error lines per minute naming no dependency (now)
    own_base: float  # ... before
    total_rate: float

    def top(self) -> tuple[str | None, float]:
        if not self.excess:
            return None, 0.0
        name = max(sorted(self.excess), key=lambda n: self.excess[n])
        return name, self.excess[name]

    def style(self, peer: str) -> str:
        c = self.styles.get(peer)
        if not c:
            return "error"
        # the most specific kind that a fair share of the lines carry
        n = sum(c.values())
        for k in CLIENT_KINDS:
            if c.get(k, 0) >= max(2, 0.25 * n):
                return k
        return c.most_common(1)[0][0]


def attribute(
    service: str, recent: LogWindow, base: LogWindow, peers: dict[str, Peer]
) -> Attribution:
    """Which dependencies a service's error lines name, how much more than usual, and
    still at the end of the window (errors that died down before the page did not page)."""

    last: dict[str, float] = {}

    def rates(win: LogWindow) -> tuple[Counter[str], dict[str, Counter[str]], int]:
        named: Counter[str] = Counter()
        styles: dict[str, Counter[str]] = {}
        own = 0
        for line in win.lines:
            peer = named_peer(line, peers, service)
            if peer is None:
                own += 1
                continue
            named[peer] += 1
            styles.setdefault(peer, Counter())[client_kind(line)] += 1
            last[peer] = max(last.get(peer, line.ts), line.ts)
        return named, styles, own

    n_now, styles, own_now = rates(recent)
    still = {p for p, t in last.items() if t >= recent.t1 - STILL_GOING_S}
    n_before, _, own_before = rates(base)
    k_now, k_before = recent.scale() / recent.minutes, base.scale() / base.minutes
    excess = {
        p: n * k_now - n_before.get(p, 0) * k_before
        for p, n in n_now.items()
        if n >= 2 and p in still
    }
    return Attribution(
        service,
        {p: v for p, v in excess.items() if v > 0},
        styles,
        own_now * k_now,
        own_before * k_before,
        recent.rate(),
    )


# --------------------------------------------------------------------------- events


def event_ts(event: dict[str, Any]) -> float:
    t = event.get("ts")
    try:
        if t is not None:
            return float(t)
    except (TypeError, ValueError):
        pass
    dt = parse_time(event.get("timestamp"))
    return dt.timestamp() if dt else 0.0


def event_service(event: dict[str, Any]) -> str | None:
    return tag_value(event.get("tags"), "service")


def event_kind(event: dict[str, Any]) -> str:
    """What an event is: a change (deploy, config, flag, migration, grant, dns_change,
    terraform), a platform signal (oom, backoff, killing, unhealthy, started, scheduled,
    node, cert_failed, cert_ok, scale), or context (statuspage, campaign, loadtest, chaos,
    backfill, cron). ``other`` when nothing fits."""
    source = str(event.get("source") or "").lower()
    title = str(event.get("title") or "")
    text = str(event.get("text") or "")
    reason = (tag_value(event.get("tags"), "reason") or text.split(":", 1)[0]).strip()
    if source in ("deploy", "deployment"):
        return "deploy"
    if source == "config":
        return "config"
    if source in ("feature_flag", "flag"):
        return "flag"
    if source == "database":
        return "migration" if "migration" in title.lower() else "grant"
    if source == "terraform":
        return "dns_change" if "dns" in f"{title} {text}".lower() else "terraform"
    if source == "statuspage":
        return "statuspage"
    if source == "marketing":
        return "campaign"
    if source == "loadtest":
        return "loadtest"
    if source == "chaos":
        return "chaos"
    if source == "cron":
        return "backfill" if "backfill" in f"{title} {text}".lower() else "cron"
    if source == "autoscaling":
        return "scale"
    if source == "kubernetes":
        r = reason.lower()
        kinds = {
            "oomkilling": "oom", "oomkilled": "oom", "backoff": "backoff", "killing": "killing",
            "unhealthy": "unhealthy", "started": "started", "scheduled": "scheduled",
            "failed": "cert_failed" if "certificate" in title.lower() else "failed",
            "issuing": "cert_ok", "nodenotschedulable": "node",
        }  # fmt: skip
        if r in kinds:
            return kinds[r]
        if "drain" in f"{title} {text}".lower() or "cordon" in text.lower():
            return "node"
    return "other"


def dns_records(event: dict[str, Any]) -> int | None:
    """Records left in a DNS automation change (0: the record set was emptied)."""
    m = re.search(r"updated, (\d+) records?", str(event.get("text") or ""))
    return int(m.group(1)) if m else None


# --------------------------------------------------------------------------- metrics


def series_points(content: Any, merge: str = "sum") -> list[tuple[float, float]]:
    """All series of a ``query_metrics`` answer merged into one (sum or max per timestamp)."""
    acc: dict[float, float] = {}
    for s in map(as_dict, as_list(as_dict(content).get("series"))):
        for p in as_list(s.get("pointlist")):
            if not isinstance(p, list | tuple) or len(p) < 2 or p[0] is None or p[1] is None:
                continue
            try:
                t, v = float(p[0]), float(p[1])
            except (TypeError, ValueError):
                continue
            if t in acc:
                acc[t] = acc[t] + v if merge == "sum" else max(acc[t], v)
            else:
                acc[t] = v
    return sorted(acc.items())


def window(points: list[tuple[float, float]], t0: float, t1: float) -> list[float]:
    return [v for t, v in points if t0 <= t <= t1]


def med(points: list[tuple[float, float]], t0: float, t1: float) -> float | None:
    xs = window(points, t0, t1)
    return median(xs) if xs else None


def peak(points: list[tuple[float, float]], t0: float, t1: float) -> float | None:
    xs = window(points, t0, t1)
    return max(xs) if xs else None


def ratio(now: float | None, before: float | None, floor: float = 1e-9) -> float:
    """now / before, 1 when either is unknown."""
    if now is None or before is None:
        return 1.0
    return now / max(before, floor)


def rise_start(
    points: list[tuple[float, float]], base_end: float, factor: float = 1.5
) -> float | None:
    """When a series last crossed above ``factor`` x its baseline median (points before
    ``base_end``) and stayed above: the start of the rise still going on at the end."""
    base = [v for t, v in points if t < base_end]
    if len(base) < 3:
        return None
    m = median(base)
    thr = m * factor if m > 0 else max(abs(v) for v in base) + 1e-9
    start = None
    for t, v in points:
        if t < base_end:
            continue
        if v > thr:
            start = t if start is None else start
        else:
            start = None
    return start
