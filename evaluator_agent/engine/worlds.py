"""Loaded world indexes, shared by every investigation and every event loop of a process.

Worlds are read from the snapshots directory (the stored label sets') and then from the
fresh-world cache (instances drawn from a family's recipes, ``worldgen/cache.py``). A fresh world
is drawn for one run and mostly serves one investigation: few of them stay loaded
(``fresh_capacity``), since every loaded index is some 10 MB and lengthens the collector's full
passes (heap.py) for as long as it is kept."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from evaluator_agent.core.labels import project_root, snapshots_dir
from evaluator_agent.engine import heap


def fresh_cache_dir() -> Path:
    """Where instances drawn fresh from recipes keep their worlds: $PROCTOR_FRESH_CACHE, else
    ``environments/fresh-cache`` of the project."""
    return Path(os.environ.get("PROCTOR_FRESH_CACHE") or project_root() / "environments" / "fresh-cache")


class WorldCache:
    """Loaded world indexes by snapshot hash (attempts and labels share them), LRU-bounded.

    Shared by every event loop of the process (the server runs one per client, workloop.py):
    a world is loaded once, in a thread, however many loops ask for it at the same time."""

    def __init__(self, directory: Path | None = None, capacity: int = 64, fresh: Path | None = None,
                 fresh_capacity: int = 8):
        self.directory = directory or snapshots_dir()
        # searched after ``directory``, in order: the fresh-world cache, and any a run adds (``search``)
        self.more: list[Path] = [fresh or fresh_cache_dir()]
        self.capacity = capacity
        self.fresh_capacity = fresh_capacity  # of the worlds found in ``more``, at most this many are kept
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._fresh: OrderedDict[str, None] = OrderedDict()  # the cached worlds found in ``more``, LRU first
        self._loading: dict[str, concurrent.futures.Future[Any]] = {}
        self._lock = threading.Lock()

    def search(self, directory: Path) -> None:
        """Also look for worlds in ``directory`` (a draw's fresh-world cache), after the others."""
        with self._lock:
            if directory != self.directory and directory not in self.more:
                self.more.append(directory)

    def _where(self, digest: str) -> Path:
        """The first directory holding the snapshot; the snapshots directory when none does (its
        error names the file that is missing, as always)."""
        for d in [self.directory, *self.more]:
            if (d / f"{digest}.json.gz").is_file():
                return d
        return self.directory

    async def get(self, digest: str) -> tuple[Any, dict[str, Any]]:
        """(WorldIndex, header) for a snapshot; loads it off the event loop once."""
        with self._lock:
            item = self._items.get(digest)
            if item is not None:
                self._items.move_to_end(digest)
                if digest in self._fresh:
                    self._fresh.move_to_end(digest)
                return item
            fut = self._loading.get(digest)
            first = fut is None
            if fut is None:
                fut = self._loading[digest] = concurrent.futures.Future()
        if first:
            threading.Thread(target=self._load_into, args=(digest, fut), name="proctor-world-load", daemon=True).start()
        # shielded: a waiter that is cancelled must not cancel the load the others wait for
        return await asyncio.shield(asyncio.wrap_future(fut))

    def _load_into(self, digest: str, fut: concurrent.futures.Future[Any]) -> None:
        try:
            item = self._load(digest)
            fresh = self._where(digest) != self.directory
        except BaseException as e:  # noqa: BLE001 - handed to every waiter
            with self._lock:
                self._loading.pop(digest, None)
            fut.set_exception(e)
            return
        with self._lock:
            self._items[digest] = item
            if fresh:
                self._fresh[digest] = None
                while len(self._fresh) > self.fresh_capacity:
                    self._items.pop(self._fresh.popitem(last=False)[0], None)
            while len(self._items) > self.capacity:
                self._fresh.pop(self._items.popitem(last=False)[0], None)
            self._loading.pop(digest, None)
        fut.set_result(item)

    def _load(self, digest: str) -> tuple[Any, dict[str, Any]]:
        from evaluator_agent.telemetry.index import WorldIndex
        from evaluator_agent.telemetry.world import load_snapshot_dict

        data = load_snapshot_dict(digest, self._where(digest))
        header = {
            "start": data["start"],
            "end": data["end"],
            "monitors": {m["id"]: m for m in data.get("monitors", [])},
        }
        item = WorldIndex.from_dict(data), header
        heap.settle()  # the index lives as long as it is cached: out of the collector's sight (heap.py)
        return item
