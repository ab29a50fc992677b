"""The package layout holds: who may import whom, and no module grows past its seams.

Imports are read from the source (every ``import`` and ``from ... import``, also those inside
functions), so a lazy import cannot slip past a rule. See the README's architecture section.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = "evaluator_agent"
MAX_LINES = 600

# package -> packages of ours it may import (besides itself and the top-level package face)
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "telemetry": {"core"},
    "datadog": {"core"},
    "results": {"core", "telemetry"},
    "engine": {"core", "telemetry", "datadog", "results"},
    "lint": {"core", "telemetry", "engine"},
    "worldgen": {"core", "telemetry", "engine", "results", "lint", "cli"},  # cli: its __main__ asks the demo for the roster
    "audit": {"core", "telemetry", "engine", "results", "lint", "worldgen"},
    "service": {"core", "telemetry", "engine", "results", "datadog", "web"},
    "labelops": {"core", "telemetry", "results", "engine", "lint"},  # engine: the validator's second investigation; lint: its checks
    "capture": {"core", "telemetry"},
    "web": {"core", "telemetry", "results", "labelops"},
    "cli": {"core", "telemetry", "engine", "results", "datadog", "service", "lint", "worldgen", "audit", "labelops", "capture", "web"},
}
# the one module of the product allowed to import the reference agents
MOCK_DOOR = "evaluator_agent/cli/demo.py"


def _modules(pkg: str) -> list[Path]:
    return sorted(p for p in (ROOT / pkg).rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path, root: Path = ROOT) -> list[str]:
    """Absolute module names imported by a file (relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    parts = list(path.relative_to(root).with_suffix("").parts)
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[: len(parts) - node.level]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.append(mod)
            out += [f"{mod}.{a.name}" for a in node.names]
    return out


def _package_of(module: str) -> str | None:
    bits = module.split(".")
    if bits[0] != PRODUCT or len(bits) < 2:
        return None
    return bits[1]


def _subpackages() -> set[str]:
    return {p.name for p in (ROOT / PRODUCT).iterdir() if p.is_dir() and (p / "__init__.py").exists()}


def test_every_subpackage_has_a_rule() -> None:
    assert _subpackages() == set(ALLOWED), "a new package needs its line in ALLOWED (and in the README)"


def test_the_product_has_no_loose_modules() -> None:
    loose = {p.name for p in (ROOT / PRODUCT).glob("*.py")} - {"__init__.py", "__main__.py"}
    assert not loose, f"every module belongs to a package: {sorted(loose)}"


@pytest.mark.parametrize("pkg", sorted(ALLOWED))
def test_import_rules(pkg: str) -> None:
    bad = []
    for path in _modules(f"{PRODUCT}/{pkg}"):
        rel = str(path.relative_to(ROOT))
        for mod in _imports(path):
            if mod.split(".")[0] == "mock_agents" and rel != MOCK_DOOR:
                bad.append(f"{rel} imports {mod} (only {MOCK_DOOR} may)")
            other = _package_of(mod)
            if other is None or other == pkg or other not in _subpackages():
                continue
            if other not in ALLOWED[pkg]:
                bad.append(f"{rel} imports {mod}")
    assert not bad, "\n".join(bad)


def test_core_imports_nothing_of_ours() -> None:
    for path in _modules(f"{PRODUCT}/core"):
        ours = [m for m in _imports(path) if m.split(".")[0] in (PRODUCT, "mock_agents")
                and not m.startswith(f"{PRODUCT}.core")]
        assert not ours, f"{path.name}: {ours}"


def test_results_never_import_the_engine() -> None:
    for path in _modules(f"{PRODUCT}/results"):
        assert not [m for m in _imports(path) if m.startswith(f"{PRODUCT}.engine")], path.name


def test_the_rule_reader_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    # the checker itself: an import inside a function and a relative one are both seen
    probe = tmp_path / PRODUCT / "core" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text("def f():\n    from ..engine import target\n    import mock_agents.policies\n")
    mods = _imports(probe, tmp_path)
    assert f"{PRODUCT}.engine.target" in mods and "mock_agents.policies" in mods


@pytest.mark.parametrize("pkg", [PRODUCT, "mock_agents"])
def test_no_module_over_the_limit(pkg: str) -> None:
    long = {str(p.relative_to(ROOT)): n for p in _modules(pkg) if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split along their seams (limit {MAX_LINES} lines): {long}"
