"""The leakage learner: can a classifier that never investigates name the mechanism and the culprit?

A target sees a world only through the tools. The learner reads the same fields straight from
the snapshot (for speed), never a field no tool exposes, and turns each world into features:

==========================  ==========================================================================
world (mechanism model)     page title tokens (numbers and service names masked), monitor type and
                            the metric its query watches; event sources, and each source with where
                            its service sits relative to the paged service (paged / 1 hop / 2 hops /
                            further); Kubernetes event reasons; metric names (service names masked);
                            log templates (numbers, hex ids, durations and service names masked) and
                            log statuses of warn and worse; the share of events per source that sit
                            on whole seconds; minutes between the latest change event and the page
service (culprit model)     kind and hops below the paged service; metric names it carries; its own
                            log templates and statuses; templates of other services' lines that name
                            it; its event sources (and which sit on whole seconds), Kubernetes
                            reasons, and minutes from its latest change to the page
==========================  ==========================================================================

Which features are judged: the issue's list of what a target can see without investigating --
page title tokens, event sources and the services they are on, metric names per service, log
templates per service, timestamps. Three per-service features above are derived by following
the dependency graph or the errors (a service's hops below the paged one, its kind, and the
lines of *other* services that name it): they are how an investigation starts, not artifacts of
the generator, so the gated learner leaves them out and the report shows, for information, what
the same learner does with them (``extended``).

Two predictions, each by a regularised logistic regression and by a random forest (the better
of the two is reported): the mechanism (multiclass over worlds) and the culprit (a binary
"is this the culprit" model over the services of each world; the world's prediction is its
service with the highest probability, top-1 and top-3). Trained on one set of labels, tested on
another: by default a fresh set generated in memory from the same recipe file with shifted
seeds (``environments/recipes/<set>.json``), or another label set. Reported beside the
majority-class baseline (mechanism) and a random pick among the world's services (culprit). A
learner far above its baseline means the worlds give the answer away in some artifact.

scikit-learn is an optional dependency (``pip install 'incident-proctor[audit]'``), imported
only when a model is fitted.
"""

from __future__ import annotations

import math
import re
from collections import Counter, deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SEED_SHIFT = 7_919_000
CHANGE_SOURCES = frozenset(
    {"deploy", "deployment", "config", "feature_flag", "flag", "terraform", "migration",
     "database", "rollout", "statuspage", "marketing"}
)  # fmt: skip
TEMPLATE_CHARS = 120
LOG_STATUSES = frozenset({"warn", "error", "critical"})
GAP_BUCKETS = (5, 10, 20, 40, 80)

_HEX = re.compile(r"\b(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{4,}\b", re.IGNORECASE)
_NUM = re.compile(r"\d+(?:\.\d+)?(?:ms|s|m|h|%|kb|mb|gb)?", re.IGNORECASE)
_WORD = re.compile(r"[a-z<>][a-z<>_-]+")
_METRIC_IN_QUERY = re.compile(r"(?:avg|sum|min|max|count):([A-Za-z0-9_.]+)")


class LearnerUnavailable(RuntimeError):
    """scikit-learn is not installed."""


def _sklearn() -> Any:
    try:
        import sklearn  # noqa: F401
        from sklearn.ensemble import RandomForestClassifier
        from sklearn.feature_extraction import DictVectorizer
        from sklearn.linear_model import LogisticRegression
    except ImportError as e:  # pragma: no cover - depends on the optional extra
        raise LearnerUnavailable(
            "the leakage learner needs scikit-learn: pip install 'incident-proctor[audit]' "
            "(or run the audit with --no-learner)"
        ) from e
    return DictVectorizer, LogisticRegression, RandomForestClassifier


# --------------------------------------------------------------------------- features


@dataclass
class Case:
    """One world as the learner sees it, with the truth it is scored against."""

    label_id: str
    mechanism: str
    world: dict[str, float]
    services: list[str]
    service_features: list[dict[str, float]]
    culprit: list[bool]  # per service: is it a root cause (entity or alias)?

    @property
    def has_culprit(self) -> bool:
        return any(self.culprit)


class _Masker:
    """Masks the service names of one world (and their underscore forms) in free text."""

    def __init__(self, names: list[str]):
        forms = sorted({f for n in names for f in (n, n.replace("-", "_"))}, key=len, reverse=True)
        self.names = names
        self.rx = re.compile(
            # a name inside a hyphenated token is masked too (consumer-<svc>-1), the longest
            # name first (orders-db before orders)
            r"(?<![A-Za-z0-9_])(" + "|".join(map(re.escape, forms)) + r")(?![A-Za-z0-9_])"
        ) if forms else None  # fmt: skip
        self.canon = {f: n for n in names for f in (n, n.replace("-", "_"))}

    def named(self, text: str) -> list[str]:
        return [self.canon[m] for m in self.rx.findall(text)] if self.rx else []

    def mask(self, text: str, own: str | None = None) -> str:
        def sub(m: re.Match[str]) -> str:
            return "<self>" if own is not None and self.canon[m.group(1)] == own else "<svc>"

        out = self.rx.sub(sub, text) if self.rx else text
        return out


def template(message: str, masker: _Masker, own: str | None = None) -> str:
    """A log line with service names, hex ids, numbers and durations masked."""
    text = masker.mask(message.split("\n", 1)[0], own)
    text = _HEX.sub("<hex>", text)
    text = _NUM.sub("<n>", text)
    return re.sub(r"\s+", " ", text).strip()[:TEMPLATE_CHARS]


def _gap_bucket(minutes: float) -> str:
    for b in GAP_BUCKETS:
        if minutes < b:
            return f"<{b}m"
    return f">={GAP_BUCKETS[-1]}m"


def _hops(world: dict[str, Any], paged: str | None) -> dict[str, int]:
    adj: dict[str, list[str]] = {}
    for d in world.get("topology", {}).get("dependencies", []):
        adj.setdefault(d["source"], []).append(d["target"])
    if not paged:
        return {}
    depth, queue = {paged: 0}, deque([paged])
    while queue:
        x = queue.popleft()
        for y in adj.get(x, ()):
            if y not in depth:
                depth[y] = depth[x] + 1
                queue.append(y)
    return depth


def _rel(depth: dict[str, int], svc: str | None) -> str:
    if svc is None or svc not in depth:
        return "far"
    return {0: "paged", 1: "hop1", 2: "hop2"}.get(depth[svc], "far")


def _add(feats: dict[str, float], key: str, n: float = 1.0) -> None:
    feats[key] = feats.get(key, 0.0) + n


def _log1p(feats: dict[str, float]) -> dict[str, float]:
    return {k: math.log1p(v) if v > 0 else v for k, v in feats.items()}


def world_case(
    world: dict[str, Any],
    *,
    label_id: str,
    mechanism: str,
    culprits: set[str],
    monitor_id: int | None,
    title: str,
    fired_at: float,
) -> Case:
    """Features of one world snapshot (``world.py`` format) for its paging monitor and time.

    ``culprits`` are the normalised root-cause names (entity and aliases); the truth never
    enters a feature.
    """
    from evaluator_agent.engine.scoring import normalize_entity

    services = [s["name"] for s in world.get("topology", {}).get("services", [])]
    kinds = {s["name"]: s.get("kind", "service") for s in world.get("topology", {}).get("services", [])}
    masker = _Masker(services)
    monitors = {m["id"]: m for m in world.get("monitors", [])}
    monitor = monitors.get(monitor_id) if monitor_id is not None else None
    paged = (monitor or {}).get("tags", {}).get("service")
    depth = _hops(world, paged)
    end = float(world.get("end", fired_at))

    wf: dict[str, float] = {}
    sf: dict[str, dict[str, float]] = {s: {} for s in services}

    # the page
    for tok in _WORD.findall(masker.mask(_NUM.sub(" ", title)).lower()):
        _add(wf, f"title:{tok}")
    if monitor:
        _add(wf, f"montype:{monitor.get('type', '')}")
        for metric in _METRIC_IN_QUERY.findall(str(monitor.get("query") or "")):
            _add(wf, f"monmetric:{masker.mask(metric)}")

    # events
    latest_change: float | None = None
    latest_own: dict[str, float] = {}
    per_source: Counter[str] = Counter()
    whole_source: Counter[str] = Counter()
    for e in world.get("events", []):
        ts = float(e["ts"])
        if ts > end:
            continue
        src = str(e.get("source") or "")
        svc = (e.get("tags") or {}).get("service")
        reason = (e.get("tags") or {}).get("reason")
        whole = float(ts).is_integer()
        per_source[src] += 1
        whole_source[src] += whole
        _add(wf, f"evsrc:{src}")
        _add(wf, f"evsrc_rel:{src}:{_rel(depth, svc)}")
        if reason:
            _add(wf, f"kreason:{reason}")
        if svc in sf:
            _add(sf[svc], f"evsrc:{src}")
            if whole:
                _add(sf[svc], f"evsrc_whole:{src}")
            if reason:
                _add(sf[svc], f"kreason:{reason}")
        if src in CHANGE_SOURCES and ts <= fired_at:
            for tok in set(_WORD.findall(masker.mask(f"{e.get('title', '')} {e.get('text', '')}").lower())):
                _add(wf, f"evword:{tok}")
            latest_change = ts if latest_change is None else max(latest_change, ts)
            if svc in sf:
                latest_own[svc] = max(latest_own.get(svc, ts), ts)
    shares = {f"whole_share:{src}": whole_source[src] / n for src, n in per_source.items()}
    if latest_change is not None:
        _add(wf, f"change_gap:{_gap_bucket((fired_at - latest_change) / 60)}")
    for svc, ts in latest_own.items():
        _add(sf[svc], f"change_gap:{_gap_bucket((fired_at - ts) / 60)}")

    # metrics
    for s in world.get("metrics", []):
        name = masker.mask(str(s.get("metric") or ""))
        wf[f"metric:{name}"] = 1.0
        svc = (s.get("tags") or {}).get("service")
        if svc in sf:
            sf[svc][f"metric:{name}"] = 1.0

    # logs
    seen_templates: set[str] = set()
    for r in world.get("logs", []):
        status = str(r.get("status") or "")
        if status not in LOG_STATUSES or float(r["ts"]) > end:
            continue
        svc, msg = r.get("service"), str(r.get("message") or "")
        _add(wf, f"status:{status}")
        tmpl = template(msg, masker)
        if tmpl not in seen_templates:  # words of each distinct line once: what it says, not how often
            seen_templates.add(tmpl)
            for tok in set(_WORD.findall(tmpl.lower())):
                _add(wf, f"logword:{tok}")
        _add(wf, f"tmpl:{tmpl}")
        if svc in sf:
            _add(sf[svc], f"status:{status}")
            _add(sf[svc], f"tmpl:{template(msg, masker, own=svc)}")
        for other in set(masker.named(msg.split("\n", 1)[0])) - {svc}:
            if other in sf:
                _add(sf[other], f"named_by:{template(msg, masker, own=other)}")

    service_features = []
    for svc in services:
        f = _log1p(sf[svc])
        f[f"kind:{kinds.get(svc, 'service')}"] = 1.0
        f[f"hops:{min(depth[svc], 4) if svc in depth else 'none'}"] = 1.0
        service_features.append(f)
    truth = {normalize_entity(c) for c in culprits}
    return Case(
        label_id=label_id,
        mechanism=mechanism,
        world=_log1p(wf) | shares,
        services=services,
        service_features=service_features,
        culprit=[normalize_entity(s) in truth for s in services],
    )


def label_case(world: dict[str, Any], label: Any) -> Case:
    """:func:`world_case` for a :class:`~evaluator_agent.core.labels.Label` and its world."""
    gt = label.ground_truth
    names: set[str] = set()
    for rc in gt.root_causes:
        names.add(rc.entity)
        names.update(rc.aliases)
    trig = label.task.trigger
    return world_case(
        world,
        label_id=label.id,
        mechanism=gt.mechanism,
        culprits=set() if gt.no_fault else names,
        monitor_id=trig.monitor_id,
        title=trig.title,
        fired_at=trig.fired_at.timestamp(),
    )


# --------------------------------------------------------------------------- data sets


def _case_from_recipe(recipe: dict[str, Any]) -> Case | str:
    """The case of one recipe, or why it could not be generated."""
    from evaluator_agent.worldgen import generate
    from evaluator_agent.worldgen.recipe import Recipe

    try:
        world, label = generate(Recipe.model_validate(recipe))
    except Exception as e:  # noqa: BLE001 - one recipe the generator refuses must not end the audit
        return f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
    return label_case(world, label)


def _case_from_label(args: tuple[str, str | None, str]) -> Case:
    from evaluator_agent.core.labels import load_labelset, snapshots_dir
    from evaluator_agent.telemetry.world import load_snapshot_dict

    set_name, root, label_id = args
    label = load_labelset(set_name, Path(root) if root else None).get(label_id)
    return label_case(load_snapshot_dict(label.world.snapshot, snapshots_dir()), label)


def _map(fn: Any, items: list[Any], jobs: int) -> list[Any]:
    if jobs <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    with ProcessPoolExecutor(max_workers=jobs) as ex:
        return list(ex.map(fn, items, chunksize=max(1, len(items) // (4 * jobs))))


def cases_from_labelset(
    set_name: str, label_ids: list[str] | None = None, root: str | None = None, jobs: int = 2
) -> list[Case]:
    from evaluator_agent.core.labels import load_labelset

    ids = label_ids or [lb.id for lb in load_labelset(set_name, Path(root) if root else None).labels]
    return _map(_case_from_label, [(set_name, root, i) for i in ids], jobs)


def recipes_path(set_name: str) -> Path:
    from evaluator_agent.core.labels import project_root

    return project_root() / "environments" / "recipes" / f"{set_name}.json"


def cases_from_recipes(
    set_name: str, *, seed_shift: int = SEED_SHIFT, size: int | None = None, jobs: int = 2
) -> tuple[list[Case], list[str]]:
    """A fresh training set: every recipe of ``environments/recipes/<set>.json`` with its seed
    shifted (new topology, names, timings and noise; the same mix of mechanisms and knobs),
    generated in memory in ``jobs`` worker processes; ``size`` takes that many recipes spread
    evenly over the file (all by default). Returns the cases and, for recipes the generator
    refused, why."""
    import json

    path = recipes_path(set_name)
    if not path.is_file():
        raise FileNotFoundError(f"no recipe file {path}: give the training set with --train SET")
    recipes = json.loads(path.read_text())["recipes"]
    if size is not None and 0 < size < len(recipes):
        recipes = [recipes[i * len(recipes) // size] for i in range(size)]
    shifted = [{**r, "seed": int(r["seed"]) + seed_shift} for r in recipes]
    out = _map(_case_from_recipe, shifted, jobs)
    return [c for c in out if isinstance(c, Case)], [c for c in out if isinstance(c, str)]


# --------------------------------------------------------------------------- models


@dataclass
class ModelScores:
    model: str
    mechanism_accuracy: float
    culprit_top1: float
    culprit_top3: float


#: per-service features derived by investigating (topology, error attribution), not judged
INVESTIGATIVE = ("hops:", "kind:", "named_by:")


def artifacts_only(cases: list[Case]) -> list[Case]:
    """The cases with the per-service features an investigation derives left out."""
    out = []
    for c in cases:
        feats = [{k: v for k, v in f.items() if not k.startswith(INVESTIGATIVE)} for f in c.service_features]
        out.append(Case(c.label_id, c.mechanism, c.world, c.services, feats, c.culprit))
    return out


@dataclass
class LearnerReport:
    """What the learner managed on the test set, beside the baselines."""

    train: str
    test: str
    n_train: int
    n_test: int
    n_test_with_culprit: int
    mechanism_majority: str
    mechanism_baseline: float  # accuracy of always answering the training set's majority class
    culprit_random_top1: float  # a random service of the world
    culprit_random_top3: float
    models: list[ModelScores] = field(default_factory=list)
    best_mechanism_model: str = ""
    mechanism_accuracy: float = 0.0
    best_culprit_model: str = ""
    culprit_top1: float = 0.0
    culprit_top3: float = 0.0
    top_mechanism_features: list[tuple[str, float]] = field(default_factory=list)
    top_culprit_features: list[tuple[str, float]] = field(default_factory=list)
    wall_s: float = 0.0
    #: the same learner with the investigative features too (informational, not judged)
    extended: dict[str, float] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


FOREST_TREES = 200
#: weak regularisation: thousands of sparse features, a few worlds per mechanism
LOGISTIC_C = 10.0


def _models(seed: int, jobs: int, trees: int = FOREST_TREES) -> dict[str, Any]:
    _, LogisticRegression, RandomForestClassifier = _sklearn()
    return {
        "logistic": lambda balanced: LogisticRegression(
            C=LOGISTIC_C, max_iter=3000, class_weight="balanced" if balanced else None
        ),
        "forest": lambda balanced: RandomForestClassifier(
            n_estimators=trees, min_samples_leaf=1, random_state=seed, n_jobs=max(1, jobs),
            class_weight="balanced_subsample" if balanced else None,
        ),
    }  # fmt: skip


def _top_features(model: Any, vec: Any, k: int = 8) -> list[tuple[str, float]]:
    names = vec.get_feature_names_out()
    if hasattr(model, "feature_importances_"):
        weights = model.feature_importances_
    elif hasattr(model, "coef_"):
        import numpy as np

        weights = np.abs(model.coef_).max(axis=0)
    else:
        return []
    order = sorted(range(len(names)), key=lambda i: -float(weights[i]))[:k]
    return [(str(names[i]), round(float(weights[i]), 4)) for i in order]


def evaluate(train: list[Case], test: list[Case], *, seed: int = 0, jobs: int = 1,
             trees: int = FOREST_TREES, train_name: str = "train", test_name: str = "test",
             ) -> LearnerReport:  # fmt: skip
    """Fit both models on ``train``, score them on ``test``; the better of each is reported."""
    import time

    t0 = time.monotonic()
    DictVectorizer, _, _ = _sklearn()
    import numpy as np

    majority = Counter(c.mechanism for c in train).most_common(1)[0][0]
    with_culprit = [c for c in test if c.has_culprit]
    rep = LearnerReport(
        train=train_name,
        test=test_name,
        n_train=len(train),
        n_test=len(test),
        n_test_with_culprit=len(with_culprit),
        mechanism_majority=majority,
        mechanism_baseline=sum(c.mechanism == majority for c in test) / max(1, len(test)),
        culprit_random_top1=sum(1 / len(c.services) for c in with_culprit) / max(1, len(with_culprit)),
        culprit_random_top3=sum(min(3, len(c.services)) / len(c.services) for c in with_culprit)
        / max(1, len(with_culprit)),
    )
    # mechanism: one row per world
    mvec = DictVectorizer()
    xm_train = mvec.fit_transform([c.world for c in train])
    xm_test = mvec.transform([c.world for c in test])
    ym_train = [c.mechanism for c in train]
    # culprit: one row per service of every world that has one
    train_c = [c for c in train if c.has_culprit]
    cvec = DictVectorizer()
    xc_train = cvec.fit_transform([f for c in train_c for f in c.service_features])
    yc_train = np.array([y for c in train_c for y in c.culprit])
    xc_test = cvec.transform([f for c in with_culprit for f in c.service_features]) if with_culprit else None
    best_m = best_c = -1.0
    for name, make in _models(seed, jobs, trees).items():
        m_model = make(False).fit(xm_train, ym_train)
        acc = float(np.mean(m_model.predict(xm_test) == np.array([c.mechanism for c in test])))
        top1 = top3 = 0.0
        c_model = None
        if with_culprit and yc_train.any():
            c_model = make(True).fit(xc_train, yc_train)
            proba = c_model.predict_proba(xc_test)[:, list(c_model.classes_).index(True)]
            i = 0
            for c in with_culprit:
                p = proba[i : i + len(c.services)]
                i += len(c.services)
                order = sorted(range(len(p)), key=lambda j: (-float(p[j]), c.services[j]))
                top1 += c.culprit[order[0]]
                top3 += any(c.culprit[j] for j in order[:3])
            top1 /= len(with_culprit)
            top3 /= len(with_culprit)
        rep.models.append(ModelScores(name, round(acc, 4), round(top1, 4), round(top3, 4)))
        if acc > best_m:
            best_m, rep.best_mechanism_model, rep.mechanism_accuracy = acc, name, acc
            rep.top_mechanism_features = _top_features(m_model, mvec)
        if top1 > best_c or (top1 == best_c and top3 > rep.culprit_top3):
            best_c, rep.best_culprit_model = top1, name
            rep.culprit_top1, rep.culprit_top3 = top1, top3
            rep.top_culprit_features = _top_features(c_model, cvec) if c_model is not None else []
    rep.wall_s = round(time.monotonic() - t0, 2)
    return rep


def run_learner(
    set_name: str,
    *,
    train: str | None = None,
    label_ids: list[str] | None = None,
    jobs: int = 2,
    seed_shift: int = SEED_SHIFT,
    train_size: int | None = None,
    root: str | None = None,
) -> tuple[LearnerReport, dict[str, float]]:
    """Train on ``train`` (a label set) or on a fresh set generated from ``set_name``'s recipe
    file with shifted seeds (``train_size`` recipes of it, default all); test on ``set_name``
    (or its ``label_ids``). Returns the report and the wall time of each phase."""
    import time

    times: dict[str, float] = {}
    t0 = time.monotonic()
    if train:
        train_cases = cases_from_labelset(train, root=root, jobs=jobs)
        train_name = f"label set {train}"
    else:
        train_cases, refused = cases_from_recipes(
            set_name, seed_shift=seed_shift, size=train_size, jobs=jobs
        )
        if not train_cases:
            raise RuntimeError(
                f"the generator refused every recipe of recipes/{set_name}.json"
                + (f" (first: {refused[0]})" if refused else "")
            )
        train_name = f"{len(train_cases)} fresh worlds from recipes/{set_name}.json (seeds +{seed_shift})"
        if refused:
            train_name += f", {len(refused)} recipes refused (first: {refused[0]})"
    times["learner_train_set_s"] = round(time.monotonic() - t0, 1)
    t1 = time.monotonic()
    test_cases = cases_from_labelset(set_name, label_ids, root=root, jobs=jobs)
    times["learner_test_set_s"] = round(time.monotonic() - t1, 1)
    rep = evaluate(
        artifacts_only(train_cases), artifacts_only(test_cases), jobs=jobs,
        train_name=train_name, test_name=f"label set {set_name}",
    )
    ext = evaluate(train_cases, test_cases, jobs=jobs)
    rep.extended = {
        "mechanism_accuracy": ext.mechanism_accuracy,
        "culprit_top1": ext.culprit_top1,
        "culprit_top3": ext.culprit_top3,
    }
    times["learner_fit_s"] = round(rep.wall_s + ext.wall_s, 2)
    return rep, times
