"""Entity names as scoring compares them: ``normalize_entity`` (one canonical spelling of a
name written in any style), ``normalize_mechanism``, and ``Names``, a label's entities after
normalisation (alias groups, partial credit, red herrings).
"""

from __future__ import annotations

import re

from evaluator_agent.core.labels import Label

_KIND_PREFIXES = frozenset(
    """
    service svc kube_service host hostname node kube_node cluster kube_cluster_name
    cluster_name zone availability_zone az region external dependency change deploy
    deployment kube_deployment statefulset sts kube_stateful_set daemonset ds
    kube_daemon_set replicaset rs pod pod_name container container_name
    kube_container_name database db db_instance db_name cache queue topic kafka_topic
    consumer_group flag feature_flag config configmap cm job cronjob entity component
    peer_service peer_hostname out_host
    """.split()
)
_PREFIX_RE = re.compile(r"^@?([a-z][a-z0-9_.\- ]*?)\s*[:/]\s*(\S.*)$")
_SCHEME_RE = re.compile(r"^[a-z][a-z0-9+.\-]*://")
_PAREN_SUFFIX_RE = re.compile(r"\s*[(\[][^()\[\]]*[)\]]\s*$")
_K8S_DNS_RE = re.compile(r"(?:\.[a-z0-9-]+)?\.svc(?:\.cluster\.local)?\.?$")
_PORT_RE = re.compile(r":\d{1,5}$")
_SEP_RE = re.compile(r"[\s_.\-]+")


def fold(s: str) -> str:
    """Lower case; runs of space, ``_``, ``.`` and ``-`` folded into one ``-``."""
    return _SEP_RE.sub("-", s.lower()).strip("-")


def normalize_entity(name: str) -> str:
    """Canonical form of an entity name, for comparing names written in different styles."""
    s = str(name).strip().lower().strip("`'\" ")
    s = _SCHEME_RE.sub("", s).rstrip("/")
    for _ in range(4):  # "service:deployment/x (primary)" peels in a few steps
        stripped = _PAREN_SUFFIX_RE.sub("", s)
        if stripped and stripped != s:
            s = stripped
            continue
        m = _PREFIX_RE.match(s)
        if m and fold(m.group(1)).replace("-", "_") in _KIND_PREFIXES:
            s = m.group(2).strip()
            continue
        break
    s = _PORT_RE.sub("", s)
    s = _K8S_DNS_RE.sub("", s)
    return fold(s).strip("`'\"")


def normalize_mechanism(m: str | None) -> str | None:
    """A mechanism as written by a target, in the vocabulary's spelling (lower case, ``_``)."""
    if m is None:
        return None
    return re.sub(r"[\s\-]+", "_", m.strip().lower())


class Names:
    """The label's entities after normalisation: alias groups, partial credit, red herrings."""

    def __init__(self, label: Label):
        gt = label.ground_truth
        self.groups: list[tuple[str, set[str]]] = []  # (canonical, members)
        self.canonical: dict[str, str] = {}
        self.display: dict[str, str] = {}  # canonical -> label spelling
        for rc in gt.root_causes:
            canon = normalize_entity(rc.entity)
            members = {normalize_entity(x) for x in [rc.entity, *rc.aliases]} - {""}
            self.groups.append((canon, members))
            self.display[canon] = rc.entity
            for mbr in members:
                self.canonical.setdefault(mbr, canon)
        self.partial: dict[str, tuple[float, str]] = {}
        for pc in gt.partial_credit:
            n = normalize_entity(pc.entity)
            if n and n not in self.canonical:
                self.partial[n] = (pc.credit, pc.entity)
        self.red: dict[str, str] = {}
        for rh in gt.must_not_blame:
            n = normalize_entity(rh.entity)
            if n and n not in self.canonical:
                self.red[n] = rh.entity

    def group_of(self, name: str) -> int | None:
        n = normalize_entity(name)
        for i, (_, members) in enumerate(self.groups):
            if n in members:
                return i
        return None

    def node(self, name: str) -> str:
        n = normalize_entity(name)
        return self.canonical.get(n, n)

