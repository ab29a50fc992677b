"""The durable copy of a results database on machines with throwaway disks (Cloud Run).

Give the :class:`~evaluator_agent.results.store.Store` a ``checkpoint`` path on durable storage
(a Cloud Storage volume). The database stays local and fast; a consistent copy (SQLite online
backup) is written to the checkpoint at most every ``interval_s`` seconds after a write, and
always when a run finishes and on close. A fresh instance whose local database lacks what the
checkpoint holds imports it on open, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class Checkpoint:
    """The checkpoint of one store: when to copy, the copy itself (in a thread), the import of
    what another instance wrote."""

    def __init__(self, store: Any, path: str, interval_s: float = 15.0):
        self.store = store
        self.path = path
        self.interval_s = interval_s
        self.last = 0.0
        self.dirty = False
        self.thread: threading.Thread | None = None
        self.error: str | None = None
        self.seen: int | None = None  # mtime of the checkpoint as we last wrote or read it

    def close(self) -> None:
        """Wait for a copy in flight; copy once more when a write came after it."""
        if self.thread is not None:
            self.thread.join()
        if self.dirty:
            self.now(wait=True)

    def wrote(self, force: bool = False) -> None:
        """After a write: copy now when forced or when the interval has passed since the last copy."""
        self.dirty = True
        if force or time.monotonic() - self.last >= self.interval_s:
            self.now(wait=False)

    def now(self, wait: bool = True) -> None:
        """Copy a consistent snapshot to the checkpoint path: SQLite online backup from a connection
        of its own (WAL: writers go on meanwhile) into a local temporary file, then a copy to the
        durable path and an atomic rename; in a background thread unless ``wait``. One copy at a
        time; a write during a copy leaves the store dirty, so a later write or ``close`` copies again."""
        if self.thread is not None and self.thread.is_alive():
            if not wait:
                return
            self.thread.join()
        self.last = time.monotonic()
        self.dirty = False
        if wait:
            self._snapshot_and_publish()
        else:
            self.thread = threading.Thread(target=self._snapshot_and_publish, name="proctor-checkpoint", daemon=True)
            self.thread.start()

    def _snapshot_and_publish(self) -> None:
        try:
            self.absorb()
        except (sqlite3.Error, ValueError) as e:  # an unreadable checkpoint is replaced by ours
            log.warning("checkpoint %s unreadable, replacing it: %s", self.path, e)
        local = self.store.path != ":memory:"
        tmp = f"{self.store.path}.ckpt-{os.getpid()}" if local else f"/tmp/proctor-ckpt-{os.getpid()}.db"
        try:
            dst = sqlite3.connect(tmp)
            try:
                if local:
                    src = sqlite3.connect(self.store.path, timeout=10.0)
                    try:
                        src.backup(dst)
                    finally:
                        src.close()
                else:
                    with self.store._lock:
                        self.store.db.conn.backup(dst)
                dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, readable anywhere
            finally:
                dst.close()
        except sqlite3.Error as e:
            log.warning("checkpoint snapshot of %s failed: %s", self.store.path, e)
            self.dirty = True
            return
        self._publish(tmp)

    def _publish(self, tmp: str) -> None:
        dest = Path(self.path)
        part = dest.with_name(dest.name + f".part-{os.getpid()}")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tmp, part)
            os.replace(part, dest)
            self.seen = dest.stat().st_mtime_ns
            self.error = None
        except OSError as e:  # durable storage unavailable: keep running, say so once per error
            if self.error != str(e):
                log.warning("checkpoint to %s failed: %s", dest, e)
            self.error = str(e)
            self.dirty = True
        finally:
            for f in (tmp, part):
                try:
                    os.unlink(f)
                except OSError:
                    pass

    def absorb(self) -> None:
        """Import what the checkpoint holds and this database lacks, when someone else wrote it
        since we last did (a restart, or an old and a new instance overlapping during a rollout):
        the checkpoint is the union, never one instance's view overwriting another's."""
        try:
            mtime = Path(self.path).stat().st_mtime_ns
        except OSError:
            return
        if mtime != self.seen:
            self.store.import_from(self.path, missing_only=True)
            self.seen = mtime

