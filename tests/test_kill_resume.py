"""Nothing is lost when an instance is recycled: `proctor run` is SIGKILLed mid-run on a machine
whose disk then disappears; the same command on a fresh disk restores from the durable checkpoint
and finishes the run, without losing or duplicating an investigation. This is what a Cloud Run
Jobs task retry does (same args, same CLOUD_RUN_EXECUTION and task index, new container)."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from evaluator_agent.core.labels import load_labelset
from evaluator_agent.results.merge import checkpoint_path
from evaluator_agent.results.store import Store
from tests.conftest import ROOT, serve_app
from tests.targets import build_targets_app, recording_fn

pytestmark = pytest.mark.anyio

STARTED: list[str] = []
_slow = recording_fn(STARTED, 0.1)


def _count(db: Path, run_id: str) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
            return c.execute("SELECT COUNT(*) FROM investigations WHERE run_id = ?", [run_id]).fetchone()[0]
    except sqlite3.DatabaseError:
        return 0


async def test_killed_run_finishes_on_a_fresh_machine_from_its_checkpoint(tmp_path: Path) -> None:
    run_id, shard = "exec-7f3a", (1, 2)
    ckpt_dir = tmp_path / "bucket"  # stands for the Cloud Storage volume
    ckpt = Path(checkpoint_path(str(ckpt_dir), run_id, shard))
    n_labels = len(load_labelset("smoke").labels)
    total = n_labels * 2 // 2  # two attempts, half of them in shard 1 of 2
    async with serve_app(lambda base: build_targets_app(base, {"slow": (_slow, False)})) as base:
        env = {**os.environ, "CLOUD_RUN_EXECUTION": run_id, "CLOUD_RUN_TASK_INDEX": str(shard[0]),
               "CLOUD_RUN_TASK_COUNT": str(shard[1]), "PROCTOR_CHECKPOINT_DIR": str(ckpt_dir),
               "PROCTOR_CHECKPOINT_INTERVAL": "0", "PROCTOR_TARGET": f"{base}/slow/.well-known/agent-card.json",
               "PYTHONPATH": str(ROOT)}

        def start(disk: Path) -> subprocess.Popen:
            return subprocess.Popen(
                [sys.executable, "-m", "evaluator_agent.cli.main", "run", "--labelset", "smoke", "--attempts", "2",
                 "--concurrency", "2", "--quiet", "--brief", "--db", str(disk / "proctor.db")],
                env=env, cwd=disk, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )

        first_disk = tmp_path / "instance1"
        first_disk.mkdir()
        proc = start(first_disk)
        try:
            for _ in range(600):
                if _count(ckpt, run_id) >= 3 or proc.poll() is not None:
                    break
                await asyncio.sleep(0.05)
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            proc.send_signal(signal.SIGKILL)  # no handler runs, no cleanup
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
        started_first = len(STARTED)
        saved = _count(ckpt, run_id)
        assert 3 <= saved < total, "killed mid-run, with part of the work checkpointed"
        with sqlite3.connect(ckpt) as c:
            before = dict(c.execute("SELECT id, investigation_id FROM investigations WHERE run_id = ?", [run_id]).fetchall())
        # The instance is recycled: its disk is gone; only the checkpoint remains.
        for f in first_disk.iterdir():
            f.unlink()
        first_disk.rmdir()

        second_disk = tmp_path / "instance2"
        second_disk.mkdir()
        STARTED.clear()
        proc2 = start(second_disk)
        out, err = await asyncio.to_thread(proc2.communicate, timeout=120)
        assert proc2.returncode == 0, err.decode()
    assert started_first >= saved
    final = dict(sqlite3.connect(ckpt).execute("SELECT id, investigation_id FROM investigations WHERE run_id = ?", [run_id]).fetchall())
    assert {k: final[k] for k in before} == before, "what the checkpoint held was kept, not run again"
    rerun = set(final.values()) - set(before.values())
    # (STARTED may also hold a request the killed process had already sent: it has no row anywhere.)
    assert len(rerun) == total - saved and rerun <= set(STARTED), "only what the checkpoint did not hold ran again"
    for db in (second_disk / "proctor.db", ckpt):
        store = Store(db)
        rows = store.investigations(run_id)
        keys = [(r["label_id"], r["attempt"]) for r in rows]
        assert len(keys) == len(set(keys)) == total, f"{db}: every investigation of the shard, once"
        assert store.get_run(run_id)["status"] == "completed"
        assert store.get_run(run_id)["manifest"]["shard"] == {"index": 1, "count": 2}
        store.close()
    assert not list(ckpt_dir.glob("*.part-*")), "no half-written checkpoint left behind"


async def test_sigterm_drains_checkpoints_and_resume_finishes(tmp_path: Path) -> None:
    """Cloud Run stops a task with SIGTERM: investigations in flight finish and are recorded, the run
    is marked interrupted and checkpointed; `proctor run --resume` on another machine finishes it."""
    ckpt_dir = tmp_path / "bucket"
    total = len(load_labelset("smoke").labels)
    async with serve_app(lambda base: build_targets_app(base, {"slow": (_slow, False)})) as base:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PROCTOR_CHECKPOINT_INTERVAL": "60", "PROCTOR_DRAIN_S": "5"}
        for k in ("CLOUD_RUN_EXECUTION", "CLOUD_RUN_TASK_INDEX", "CLOUD_RUN_TASK_COUNT"):
            env.pop(k, None)
        cmd = [sys.executable, "-m", "evaluator_agent.cli.main", "run", "--quiet", "--brief", "--concurrency", "2",
               "--checkpoint-dir", str(ckpt_dir)]
        disk1 = tmp_path / "one"
        disk1.mkdir()
        proc = subprocess.Popen([*cmd, "--target", f"{base}/slow/.well-known/agent-card.json", "--run-id", "run_term",
                                 "--db", str(disk1 / "p.db")], env=env, cwd=disk1, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            for _ in range(600):
                if _count(disk1 / "p.db", "run_term") >= 2 or proc.poll() is not None:
                    break
                await asyncio.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            _, err = await asyncio.to_thread(proc.communicate, timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 1 and b"--resume run_term" in err, err.decode()
        ckpt = Path(checkpoint_path(str(ckpt_dir), "run_term", None))
        saved = Store(ckpt)
        assert saved.get_run("run_term")["status"] == "interrupted"
        n_saved = saved.counts("run_term")["investigations"]
        assert n_saved == _count(disk1 / "p.db", "run_term"), "the checkpoint holds all that was recorded"
        assert 2 <= n_saved < total
        saved.close()
        STARTED.clear()
        disk2 = tmp_path / "two"
        disk2.mkdir()
        proc2 = subprocess.Popen([*cmd, "--resume", "run_term", "--db", str(disk2 / "p.db")], env=env, cwd=disk2,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _, err2 = await asyncio.to_thread(proc2.communicate, timeout=120)
        assert proc2.returncode == 0, err2.decode()
    store = Store(disk2 / "p.db")
    assert len({r["investigation_id"] for r in store.investigations("run_term")} & set(STARTED)) == total - n_saved
    assert store.get_run("run_term")["status"] == "completed"
    assert len(store.recorded("run_term")) == store.counts("run_term")["investigations"] == total


async def test_service_results_survive_instance_recycling(tmp_path: Path) -> None:
    """`proctor serve --checkpoint-dir`: an evaluation's results outlive the instance that ran it;
    a new instance on an empty disk restores them and serves `get_run`."""
    import httpx

    from evaluator_agent.service.client import call_proctor
    from tests.conftest import bound_socket

    bucket = tmp_path / "bucket"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PROCTOR_DRAIN_S": "2"}

    async def start(disk: Path) -> tuple[subprocess.Popen, str]:
        disk.mkdir()
        sock = bound_socket()
        port = sock.getsockname()[1]
        sock.close()
        proc = subprocess.Popen([sys.executable, "-m", "evaluator_agent.cli.main", "serve", "--port", str(port),
                                 "--db", str(disk / "p.db"), "--checkpoint-dir", str(bucket)],
                                env=env, cwd=disk, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient() as c:
            for _ in range(200):
                try:
                    if (await c.get(url + "/health")).status_code == 200:
                        return proc, url
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
        proc.kill()
        raise AssertionError(proc.stderr.read().decode() if proc.stderr else "serve did not start")

    async with serve_app(lambda base: build_targets_app(base, {"slow": (_slow, False)})) as base:
        proc, url = await start(tmp_path / "a")
        try:
            labels = [lb.id for lb in load_labelset("smoke").labels[:3]]
            result = await call_proctor(url, {"target": f"{base}/slow/.well-known/agent-card.json", "labelset": "smoke",
                                              "labels": labels, "run_id": "run_svc"})
            assert result["summary"]["n"] == 3
        finally:
            proc.terminate()
            await asyncio.to_thread(proc.wait, 20)
    assert (bucket / "proctor-service.db").exists()
    proc2, url2 = await start(tmp_path / "b")
    try:
        again = await call_proctor(url2, {"action": "get_run", "run_id": "run_svc"})
    finally:
        proc2.terminate()
        await asyncio.to_thread(proc2.wait, 20)
    assert again["run_id"] == "run_svc" and again["summary"]["n"] == 3
    assert [i["label_id"] for i in again["investigations"]] == sorted(labels)
