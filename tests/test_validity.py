"""The shipped core set means investigation skill: the audit on a deterministic sample.

``proctor labels audit core`` on the whole set is what the README reports (every shortcut at
most 15%, their combination at most 20%, the leakage learner near its baselines). This runs the
same command on a sample, so that a change to the generator, the labels or the scoring that lets
a shortcut through fails CI. A sample is noisier than the set, hence the looser bounds here.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from evaluator_agent.cli.main import main as cli_main

SAMPLE = 16


@pytest.mark.filterwarnings("ignore:The number of unique classes:UserWarning")  # a small training set
def test_core_sample_resists_the_shortcut_battery_and_the_learner(capsys: Any) -> None:
    pytest.importorskip("sklearn")
    capsys.readouterr()
    rc = cli_main(
        ["labels", "audit", "core", "--sample", str(SAMPLE), "--train-size", "30", "--jobs", "2", "--json"]
    )
    rep = json.loads(capsys.readouterr().out)
    assert rep["n_labels"] == SAMPLE
    rates = {s["policy"]: s for s in rep["battery"]}
    shortcuts = {p: s["pass_rate"] for p, s in rates.items() if s["kind"] in ("shortcut", "combination")}
    assert len(shortcuts) >= 11, shortcuts
    best = max(shortcuts.values())
    assert best <= 0.3, shortcuts
    assert rates["methodical"]["pass_rate"] >= best + 0.25
    ref = [rates[p]["pass_rate"] for p in ("random_guess", "alert_blamer", "greedy_anomaly", "methodical")]
    assert ref[0] <= ref[1] <= ref[2] < ref[3], ref
    lr = rep["learner"]
    assert lr["culprit_top1"] <= 0.3 and lr["mechanism_accuracy"] <= lr["mechanism_baseline"] + 0.3, lr
    assert rc in (0, 1) and rc == (1 if rep["failures"] else 0)
