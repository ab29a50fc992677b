"""Store checkpoints: a durable copy that is the union of what every writer recorded, survives
an unavailable volume, and refuses to start from a file that is not a results database."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from evaluator_agent.core.records import InvestigationResult
from evaluator_agent.results.store import Store

MANIFEST = {"target": {"url": "http://t/card", "name": "t"}, "labelset": {"name": "smoke", "hash": "h"}}


def _inv(label: str, attempt: int = 1) -> InvestigationResult:
    return InvestigationResult(investigation_id=f"inv_{label}_{attempt}", label_id=label, attempt=attempt,
                               context_id="c", started_at=time.time(), finished_at=time.time(), end_reason="diagnosis",
                               score=0.5, passed=False)


def test_overlapping_instances_checkpoint_the_union(tmp_path: Path) -> None:
    """During a rollout an old and a new instance run at once, both checkpointing to one file."""
    ckpt = tmp_path / "bucket" / "proctor-service.db"
    old = Store(tmp_path / "old.db", checkpoint=ckpt, checkpoint_interval_s=0)
    old.create_run("run_a", MANIFEST)
    old.record_investigation("run_a", _inv("l1"))
    old.checkpoint_now()
    new = Store(tmp_path / "new.db", checkpoint=ckpt, checkpoint_interval_s=0)  # restores run_a
    assert new.counts("run_a")["investigations"] == 1
    new.create_run("run_b", MANIFEST)
    new.record_investigation("run_b", _inv("l9"))
    new.checkpoint_now()
    old.record_investigation("run_a", _inv("l2"))  # the old one drains its last investigation
    old.close()
    new.record_investigation("run_b", _inv("l8"))
    new.close()  # written last: must not drop what the old instance wrote meanwhile
    final = Store(ckpt)
    assert final.counts("run_a")["investigations"] == 2 and final.counts("run_b")["investigations"] == 2
    final.close()


def test_an_unavailable_volume_does_not_stop_recording(tmp_path: Path, caplog) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the bucket directory should be")
    store = Store(tmp_path / "p.db", checkpoint=blocker / "c.db", checkpoint_interval_s=0)
    store.create_run("run_x", MANIFEST)
    for k in range(3):
        store.record_investigation("run_x", _inv(f"l{k}"))
    store.checkpoint_now()
    assert store.counts("run_x")["investigations"] == 3
    assert "checkpoint to" in caplog.text and "failed" in caplog.text
    blocker.unlink()  # the volume comes back
    store.record_investigation("run_x", _inv("l3"))
    store.close()
    assert Store(blocker / "c.db").counts("run_x")["investigations"] == 4
    assert not [p for p in tmp_path.rglob("*") if ".part-" in p.name or ".ckpt-" in p.name]


def test_a_checkpoint_that_is_not_a_results_database_is_refused(tmp_path: Path) -> None:
    ckpt = tmp_path / "c.db"
    ckpt.write_bytes(os.urandom(4096))
    with pytest.raises(Exception, match="not a database|not a proctor results database|file is not"):
        Store(tmp_path / "p.db", checkpoint=ckpt)
