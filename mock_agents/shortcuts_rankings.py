"""The shortcut tricks that rank services by one signal and blame the top one.

``metric_jump`` (the series that moved most against its baseline), ``loudest`` (most error
logs), ``deepest_errors`` (the erroring service deepest below the page), ``trace_share`` (the
service whose share of spans jumped) and ``first_alert`` (the earliest monitor to trip). None
follows a dependency or times a propagation; the mechanism comes from the metric's name or
the error logs' signature phrases.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from statistics import median
from typing import Any

from .shortcuts_base import LOOKBACK, RECENT, Shortcut, Verdict, record_ts
from .shortcuts_rules import metric_mechanism, title_mechanism
from .signals import as_dict, as_list, call, monitor_service, scope_service, tag_value
from .transcript import Transcript, iso


class MetricJump(Shortcut):
    name = "metric_jump"
    description = (
        "Blames the service, at or below the paged one, of the series whose level moved by the "
        "largest factor against its own baseline, over every metric."
    )
    max_metrics = 48
    #: metric names that say nothing about a mechanism: then the logs are asked
    GENERIC = ("errors", "hits", "duration", "requests")

    def names(self, conv: Transcript) -> list[str]:
        items = as_list(self.content(conv, self.c_metric_names()).get("metrics"))
        out = []
        for m in map(as_dict, items):
            if m.get("metric") and "service" in as_dict(m.get("tags")):
                out.append(str(m["metric"]))
        return sorted(out)[: self.max_metrics]

    def c_series(self, conv: Transcript, metric: str) -> dict[str, Any]:
        start, end = self.window(conv)
        q = f"avg:{metric}{{*}} by {{service}}.rollup(avg, 300)"  # 5-minute points are plenty
        args = {"query": q, "from": start, "to": end}
        return call("query_metrics", args, f"m.{metric}")

    def calls(self, conv: Transcript) -> list[dict[str, Any]]:
        first = [self.c_metric_names(), self.c_error_logs(conv)]
        if not self.answered(conv, first):
            return first
        return first + [self.c_series(conv, n) for n in self.names(conv)]

    def jumps(self, conv: Transcript) -> list[tuple[float, str, str, str]]:
        """(factor, service, metric, call id) at or below the paged service, largest first.
        The factor is the recent level (the quarter hour before the page) over the baseline
        median (before the last hour), or its inverse for a drop."""
        fired = conv.fired_at.timestamp()
        below = self.below_paged(conv)
        out = []
        for metric in self.names(conv):
            c = self.c_series(conv, metric)
            for s in map(as_dict, as_list(self.content(conv, c).get("series"))):
                svc = tag_value(s.get("tags"), "service") or scope_service(s.get("scope"))
                if not svc or (below and svc not in below):
                    continue
                pts = [(float(p[0]), float(p[1])) for p in as_list(s.get("pointlist"))
                       if isinstance(p, list) and len(p) >= 2 and p[0] is not None and p[1] is not None]  # fmt: skip
                base = [v for t, v in pts if t < fired - 3600]
                post = [v for t, v in pts if fired - RECENT.total_seconds() <= t <= fired]
                if len(base) < 5 or not post:
                    continue
                b, p = median(base), sum(post) / len(post)
                factor = (p + 1e-3) / (b + 1e-3) if p >= b else (b + 1e-3) / (p + 1e-3)
                out.append((factor, str(svc), metric, c["id"]))
        return sorted(out, key=lambda x: (-x[0], x[1], x[2]))

    def verdict(self, conv: Transcript) -> Verdict | None:
        jumps = self.jumps(conv)
        if not jumps:
            return None
        factor, svc, metric, cid = jumps[0]
        generic = any(w in metric for w in self.GENERIC)
        mech = (None if generic else metric_mechanism(metric)) or self.log_mechanism(conv, svc)
        mech = mech or metric_mechanism(metric)
        return Verdict(svc, mech, f"{metric} on {svc} moved {factor:.1f}x from its baseline", [cid])


class ErrorCounts(Shortcut):
    """Shared by the policies that rank services by their error logs: counts in the quarter
    hour around the page against the baseline rate (before the last hour)."""

    def c_recent(self, conv: Transcript) -> dict[str, Any]:
        return self.c_error_counts(conv, RECENT)

    def c_baseline(self, conv: Transcript) -> dict[str, Any]:
        return self.c_error_counts(conv, LOOKBACK, until=timedelta(hours=1))

    def calls(self, conv: Transcript) -> list[dict[str, Any]]:
        return [self.c_recent(conv), self.c_baseline(conv), self.c_error_logs(conv)]

    def counts(self, conv: Transcript) -> tuple[Counter[str], Counter[str]]:
        recent: Counter[str] = Counter()
        base: Counter[str] = Counter()
        for key, c in ((recent, self.c_recent(conv)), (base, self.c_baseline(conv))):
            for b in map(as_dict, as_list(self.content(conv, c).get("buckets"))):
                svc = as_dict(b.get("by")).get("service")
                if svc:
                    key[str(svc)] += int(float(b.get("count") or 0))
        return recent, base

    def rising(self, conv: Transcript) -> dict[str, float]:
        """Services whose error rate (per minute) more than doubled, with their recent rate."""
        recent, base = self.counts(conv)
        end = max(conv.now, conv.fired_at)
        recent_min = max(1.0, (end - (conv.fired_at - RECENT)).total_seconds() / 60)
        base_min = (LOOKBACK - timedelta(hours=1)).total_seconds() / 60
        out = {}
        for s, n in recent.items():
            rate = n / recent_min
            if rate > 2 * base.get(s, 0) / base_min + 0.3:
                out[s] = rate
        return out


class Loudest(ErrorCounts):
    name = "loudest"
    description = "Blames the service with the most error logs around the page."

    def verdict(self, conv: Transcript) -> Verdict | None:
        recent, _ = self.counts(conv)
        if not recent:
            return None
        svc = max(sorted(recent), key=lambda s: recent[s])
        return Verdict(svc, self.log_mechanism(conv, svc), f"{svc} logged {recent[svc]} errors, the most",
                       [self.calls(conv)[0]["id"]])


class DeepestErrors(ErrorCounts):
    name = "deepest_errors"
    description = "Blames the service deepest below the paged one whose error rate rose."

    def verdict(self, conv: Transcript) -> Verdict | None:
        rising = self.rising(conv)
        below = self.below_paged(conv)
        erroring = [s for s in rising if s in below]
        if not erroring:
            return None
        svc = max(sorted(erroring), key=lambda s: (below[s], rising[s]))
        why = f"{svc} is erroring {below[svc]} hops below the paged service"
        return Verdict(svc, self.log_mechanism(conv, svc), why, [self.c_recent(conv)["id"]])


class TraceShare(Shortcut):
    name = "trace_share"
    description = (
        "Blames the service, at or below the paged one, whose share of sampled spans rose most "
        "after the page (the deeper one on a tie)."
    )
    slice_s = 1200

    def c_spans(self, t0: float, t1: float) -> dict[str, Any]:
        return call("search_spans", {"from": iso(t0), "to": iso(t1), "limit": 200}, f"spans.{int(t0)}")

    def slices(self, conv: Transcript) -> list[tuple[float, dict[str, Any]]]:
        """(slice start, call): every span of the window, a slice of 20 minutes per call."""
        end = max(conv.now, conv.fired_at).timestamp()
        t, out = end, []
        while t > (conv.fired_at - LOOKBACK).timestamp():
            out.append((t - self.slice_s, self.c_spans(t - self.slice_s, t)))
            t -= self.slice_s
        return out

    def calls(self, conv: Transcript) -> list[dict[str, Any]]:
        return [c for _, c in self.slices(conv)] + [self.c_error_logs(conv)]

    def verdict(self, conv: Transcript) -> Verdict | None:
        fired = conv.fired_at.timestamp()
        pre: Counter[str] = Counter()
        post: Counter[str] = Counter()
        for _, c in self.slices(conv):
            for sp in map(as_dict, as_list(self.content(conv, c).get("spans"))):
                t, svc = record_ts(sp), sp.get("service")
                if not svc:
                    continue
                if t < fired - 1800:
                    pre[str(svc)] += 1
                elif t >= fired - 600:
                    post[str(svc)] += 1
        n_pre, n_post = max(1, sum(pre.values())), max(1, sum(post.values()))
        below = self.below_paged(conv)
        jump = {s: post[s] / n_post - pre[s] / n_pre for s in post if not below or s in below}
        if not jump:
            return None
        svc = max(sorted(jump), key=lambda s: (round(jump[s], 3), below.get(s, 0)))
        why = f"{svc}'s share of spans rose from {pre[svc] / n_pre:.0%} to {post[svc] / n_post:.0%}"
        return Verdict(svc, self.log_mechanism(conv, svc), why, [self.slices(conv)[0][1]["id"]])


class FirstAlert(Shortcut):
    name = "first_alert"
    description = "Blames the service of the earliest monitor to leave OK before the page."

    def calls(self, conv: Transcript) -> list[dict[str, Any]]:
        return [self.c_monitors(), self.c_error_logs(conv)]

    def verdict(self, conv: Transcript) -> Verdict | None:
        fired = conv.fired_at.timestamp()
        first: list[tuple[float, str, dict[str, Any]]] = []
        for m in map(as_dict, as_list(self.content(conv, self.c_monitors()).get("monitors"))):
            for tr in map(as_dict, as_list(m.get("transitions"))):
                t = record_ts(tr)
                if str(tr.get("to", "")).lower() in ("alert", "warn") and fired - 5400 <= t <= fired + 60:
                    svc = monitor_service(m)
                    if svc:
                        first.append((t, svc, m))
                    break
        if not first:
            return None
        t, svc, m = min(first, key=lambda x: (x[0], x[1]))
        text = f"{m.get('name')} {m.get('query')}"
        mech = self.log_mechanism(conv, svc) or metric_mechanism(text) or title_mechanism(text)
        return Verdict(svc, mech, f"{m.get('name')!r} was the first monitor to trip ({iso(t)})", [self.c_monitors()["id"]])
