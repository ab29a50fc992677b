"""Estimators and intervals behind the run statistics (stats.py), pure Python (math,
statistics; no numpy/scipy): unbiased pass@k and pass^k, the regularised incomplete beta
and Student's t, the exact binomial (McNemar) test, the Wilson score interval and the
cluster-robust (CR1) mean.

pass@1 interval
    Point estimate: the mean over labels of each label's pass rate. Standard error: the
    cluster-robust (CR1) standard error of that mean, clusters = families. Interval: a
    Wilson score interval on the *effective sample size* ``n_eff = p(1-p) / SE^2`` (the
    design-effect correction of Korn & Graubard, 1998), with the normal quantile replaced
    by Student's t on ``G - 1`` degrees of freedom (G = number of clusters). The Wilson form
    keeps the interval inside [0, 1] and keeps coverage near nominal for proportions close
    to 0 or 1, where the plain "estimate +- 1.96 SE" interval collapses. ``n_eff`` is capped
    at the number of scored attempts; when the estimate is exactly 0 or 1 the data hold no
    variance information and ``n_eff`` is the number of clusters (conservative: one trial
    per family). With a single cluster the normal quantile and the attempt count are used.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

_normal = statistics.NormalDist()


# --------------------------------------------------------------------------- pass@k, pass^k


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of P(at least one of k attempts passes) from n attempts, c passed.

    Chen et al. (2021), "Evaluating Large Language Models Trained on Code":
    ``1 - C(n-c, k) / C(n, k)``, computed as a running product to stay stable for big n.
    """
    _check_nck(n, c, k)
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def pass_hat_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of P(all k of k attempts pass) ("pass^k"): ``C(c, k) / C(n, k)``.

    The fraction of k-subsets of the n attempts in which every attempt passed.
    """
    _check_nck(n, c, k)
    if c < k:
        return 0.0
    prod = 1.0
    for i in range(k):
        prod *= (c - i) / (n - i)
    return prod


def _check_nck(n: int, c: int, k: int) -> None:
    if not (0 <= c <= n) or not (1 <= k <= n):
        raise ValueError(f"need 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")


# --------------------------------------------------------------------------- distributions


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the regularised incomplete beta (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbeta = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(lbeta)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """CDF of Student's t with ``df`` degrees of freedom."""
    if math.isinf(df):
        return _normal.cdf(t)
    tail = 0.5 * betainc(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


@lru_cache(maxsize=1024)
def t_ppf(q: float, df: float) -> float:
    """Quantile of Student's t (bisection on :func:`t_cdf`; exact to ~1e-10)."""
    if not 0.0 < q < 1.0:
        raise ValueError("q must be in (0, 1)")
    if df is None or math.isinf(df) or df > 1e6:
        return _normal.inv_cdf(q)
    if q < 0.5:
        return -t_ppf(1.0 - q, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < q:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < q:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return 0.5 * (lo + hi)


def critical_value(confidence: float = 0.95, df: float | None = None) -> float:
    """Two-sided critical value: normal when ``df`` is None, else Student's t."""
    q = 0.5 + confidence / 2.0
    return _normal.inv_cdf(q) if df is None else t_ppf(q, df)


def binom_two_sided_p(b: int, c: int) -> float:
    """Exact two-sided binomial test of b successes in b + c trials against p = 1/2
    (the exact McNemar test on discordant pairs): ``min(1, 2 * P(X <= min(b, c)))``."""
    n = b + c
    if n == 0:
        return 1.0
    lo = min(b, c)
    tail = sum(math.comb(n, i) for i in range(lo + 1)) / (2**n)
    return min(1.0, 2.0 * tail)


# --------------------------------------------------------------------------- intervals


def proportion_ci(successes: float, n: float, *, confidence: float = 0.95, df: float | None = None) -> list[float]:
    """Wilson score interval for a proportion ``successes / n``.

    ``successes`` and ``n`` may be fractional (an effective sample size). With ``df`` the
    normal quantile is replaced by Student's t on ``df`` degrees of freedom. ``n <= 0``
    gives the uninformative [0, 1].
    """
    if n <= 0:
        return [0.0, 1.0]
    p = min(1.0, max(0.0, successes / n))
    z = critical_value(confidence, df)
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2.0 * n)) / denom
    half = z / denom * math.sqrt(max(0.0, p * (1.0 - p) / n + z2 / (4.0 * n * n)))
    return [max(0.0, centre - half), min(1.0, centre + half)]


def clustered_mean(values: Sequence[float], clusters: Sequence[Any]) -> tuple[float, float, int]:
    """Mean of ``values`` and its cluster-robust (CR1) standard error.

    ``SE^2 = G/(G-1) * sum_g (sum_{i in g} (x_i - mean))^2 / L^2`` with L values in G
    clusters. With one value per cluster this is the usual ``s / sqrt(L)``. Returns
    (mean, se, G); se is 0.0 when G < 2 (no variance information).
    """
    if len(values) != len(clusters):
        raise ValueError("values and clusters differ in length")
    n = len(values)
    if n == 0:
        return 0.0, 0.0, 0
    mean = math.fsum(values) / n
    sums: dict[Any, float] = defaultdict(float)
    for x, g in zip(values, clusters, strict=True):
        sums[g] += x - mean
    g_count = len(sums)
    if g_count < 2:
        return mean, 0.0, g_count
    var = g_count / (g_count - 1) * math.fsum(s * s for s in sums.values()) / (n * n)
    return mean, math.sqrt(max(0.0, var)), g_count


def clustered_proportion(
    values: Sequence[float], clusters: Sequence[Any], attempts: int, *, confidence: float = 0.95
) -> dict[str, Any]:
    """Estimate, clustered SE and Wilson/t interval for a mean of per-label pass rates.

    ``attempts`` is the number of scored attempts behind ``values`` (caps n_eff). See the
    module docstring for the method.
    """
    p, se, g = clustered_mean(values, clusters)
    if not values:
        return {"value": 0.0, "stderr": 0.0, "ci95": [0.0, 1.0], "n_labels": 0, "n_clusters": 0, "n_eff": 0.0}
    cap = float(max(attempts, len(values)))
    if g < 2:
        n_eff, df = cap, None
    elif p <= 0.0 or p >= 1.0:
        n_eff, df = float(g), g - 1
    elif se <= 0.0:
        n_eff, df = cap, g - 1
    else:
        n_eff, df = min(cap, p * (1.0 - p) / (se * se)), g - 1
    ci = proportion_ci(p * n_eff, n_eff, confidence=confidence, df=df)
    return {
        "value": round(p, 6),
        "stderr": round(se, 6),
        "ci95": [round(ci[0], 6), round(ci[1], 6)],
        "n_labels": len(values),
        "n_clusters": g,
        "n_eff": round(n_eff, 3),
    }
