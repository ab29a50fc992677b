"""How lint finds the answer spelled in names and text: the mechanism in any spelling (and a
few unmistakable synonyms), entity names that spell a mechanism, keys that name ground truth,
and entity names compared the way scoring compares them (``norm``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

# A few unmistakable synonyms per mechanism (regex fragments), looked for in author text.
MECHANISM_SYNONYMS: dict[str, tuple[str, ...]] = {
    "oom_killed": (r"oom\b", r"out[\s_-]*of[\s_-]*memory"),
    "crashloop_bad_config": (r"crash[\s_-]*loop",),
    "cpu_throttling": (r"throttl",),
    "node_pressure_eviction": (r"evict", r"node[\s_-]*pressure"),
    "rebalance_storm": (r"rebalanc",),
    "bad_release": (r"bad[\s_-]*(?:deploy|release|build|version)",),
    "latency_regression": (r"regression",),
    "feature_flag": (r"feature[\s_-]*(?:flag|toggle)",),
    "connection_pool_exhaustion": (r"(?:connection|conn|db)[\s_-]*pool", r"pool[\s_-]*exhaust"),
    "slow_query_migration": (r"slow[\s_-]*quer", r"migration"),
    "lock_contention": (r"lock[\s_-]*(?:contention|wait)", r"deadlock"),
    "replica_lag": (r"replica(?:tion)?[\s_-]*lag",),
    "certificate_expiry": (r"(?:certificate|cert|tls|ssl)[\s_-]*expir", r"expired[\s_-]*(?:certificate|cert|tls|ssl)"),
    "dns_failure": (r"dns[\s_-]*(?:fail|resolution|error)", r"nxdomain"),
    "zone_outage": (r"(?:zone|zonal|az)[\s_-]*outage",),
    "cache_stampede": (r"stampede", r"thundering[\s_-]*herd", r"cold[\s_-]*cache"),
    "third_party_outage": (r"(?:third[\s_-]*party|vendor|provider)[\s_-]*outage",),
    "retry_storm": (r"retry[\s_-]*storm",),
    "disk_full": (r"disk[\s_-]*full", r"no[\s_-]*space[\s_-]*left", r"out[\s_-]*of[\s_-]*disk"),
    "memory_leak": (r"memory[\s_-]*leak", r"leak(?:s|ing|ed)?\b"),
    "gc_pauses": (r"gc[\s_-]*pause", r"garbage[\s_-]*collection[\s_-]*pause"),
    "bad_data": (r"bad[\s_-]*data", r"corrupt"),
    "no_fault": (r"false[\s_-]*alarm",),
}

# Entity-name check: words distinctive enough to count alone (prefix match on a name token).
# Left out on purpose, because real systems use them for unrelated components: "throttl"
# (rate-limit throttlers), "rebalanc" (shard rebalancers), "storm" (Apache Storm), "expir"
# (session expiry), "leaky" (leaky-bucket limiters).
_DISTINCTIVE_STEMS: dict[str, tuple[str, ...]] = {
    "crashloop_bad_config": ("crashloop",),
    "node_pressure_eviction": ("evict",),
    "latency_regression": ("regression",),
    "connection_pool_exhaustion": ("exhaust",),
    "lock_contention": ("contention",),
    "zone_outage": ("outage",),
    "third_party_outage": ("outage",),
    "cache_stampede": ("stampede",),
}
_EXACT_TOKENS: dict[str, tuple[str, ...]] = {
    "oom_killed": ("oom", "oomkilled", "oomkiller", "oomkill"),
    "memory_leak": ("leak", "leaks", "leaking", "memleak"),
}
# Two-token phrases (each token a prefix) besides the mechanism's own words.
_NAME_PHRASES: dict[str, tuple[tuple[str, str], ...]] = {
    "certificate_expiry": (("cert", "expir"), ("tls", "expir"), ("ssl", "expir")),
    "cpu_throttling": (("cpu", "throttl"),),
    "oom_killed": (("oom", "kill"),),
}

# Keys no result or world record should carry: they name the ground truth.
_TRUTH_KEY_WORDS = ("ground_truth", "groundtruth", "root_cause", "rootcause", "culprit", "red_herring",
                    "must_not_blame", "mechanism", "label_id", "injected", "scenario")

_SEP = r"[\s_\-./]*"


def mech_words(mech: str) -> list[str]:
    """The words of a mechanism id (``connection_pool_exhaustion``: three)."""
    return mech.split("_")


@lru_cache(maxsize=64)
def mechanism_re(mech: str, synonyms: bool) -> re.Pattern[str]:
    """The mechanism in any spelling (words joined by nothing or separators), optionally synonyms."""
    alts = [_SEP.join(map(re.escape, mech_words(mech)))]
    if synonyms:
        alts += list(MECHANISM_SYNONYMS.get(mech, ()))
    return re.compile(r"(?<![a-z0-9])(?:" + "|".join(alts) + ")", re.IGNORECASE)


def entity_re(names: Iterable[str]) -> re.Pattern[str] | None:
    """Any of ``names`` as a whole name in text (case-insensitive), or None when none is usable."""
    names = sorted({n.lower() for n in names if n and len(n) >= 2}, key=len, reverse=True)
    if not names:
        return None
    alts = "|".join(re.escape(n) for n in names)
    return re.compile(rf"(?<![a-z0-9_\-./@])(?:{alts})(?![a-z0-9_]|[-.@][a-z0-9])", re.IGNORECASE)


def _name_tokens(name: str) -> list[str]:
    return [t for t in re.split(r"[^a-z0-9]+", name.lower()) if t]


@lru_cache(maxsize=65536)
def name_spells(name: str, mech: str) -> str | None:
    """The word(s) of ``name`` that spell ``mech``, or None."""
    toks = _name_tokens(name)
    squashed = "".join(toks)
    phrase = "".join(mech_words(mech))
    if len(phrase) >= 6 and phrase in squashed:
        return "-".join(mech_words(mech))
    words = mech_words(mech)
    n = len(words)
    for i in range(len(toks) - n + 1):  # the whole phrase as tokens, the last one as a prefix
        if toks[i : i + n - 1] == words[:-1] and toks[i + n - 1].startswith(words[-1]):
            return "-".join(toks[i : i + n])
    for first, second in _NAME_PHRASES.get(mech, ()):
        for i in range(len(toks) - 1):
            if toks[i].startswith(first) and toks[i + 1].startswith(second):
                return f"{toks[i]}-{toks[i + 1]}"
    for t in toks:
        if t in _EXACT_TOKENS.get(mech, ()):
            return t
        for stem in _DISTINCTIVE_STEMS.get(mech, ()):
            if t.startswith(stem):
                return t
    return None


def truth_word(key: str) -> str | None:
    """The ground-truth word (``root_cause``, ``culprit`` ...) a key names, or None."""
    k = key.lower().replace("-", "_").replace(".", "_")
    for w in _TRUTH_KEY_WORDS:
        if w in k or w.replace("_", "") in k.replace("_", ""):
            return w
    return None


@lru_cache(maxsize=8192)
def norm(name: str) -> str:
    """``scoring.normalize_entity`` of a name (cached: lint and the census ask often)."""
    from evaluator_agent.engine.scoring import normalize_entity

    return normalize_entity(name)
