"""The fresh-world cache: worlds and labels of instances drawn from recipes, bounded on disk,
shared by the processes of one machine (or of a shared volume).

Layout of the directory ($PROCTOR_FRESH_CACHE, default ``environments/fresh-cache/``)::

    <sha256>.json.gz         a world, named and encoded as in environments/snapshots/ (WorldCache reads both)
    labels/<key>.json        the label of one instance (key: set, draw seed, recipe index and recipe)
    pins/<sha256>~<holder>   the world is in use by that holder (a process's run); never evicted meanwhile
    .lock                    flock: writing and pinning take it shared, eviction exclusive

Writes are atomic (a temp file of a name of its own, then a rename), so readers never see half a
file and two processes writing the same world leave one good copy (same content, same bytes).
Worlds are compressed fast (gzip level 1): the name is the hash of the uncompressed bytes, so they
read exactly like the stored snapshots.

Eviction (:meth:`FreshCache.evict`): a world or label not used (written, reused: its mtime) for
``max_age_s`` goes; then the least recently used until the total is at most ``max_bytes``. Pinned
worlds are never evicted; a pin whose holder is gone (a process of this host that no longer runs,
or any pin older than ``max_age_s``) is stale and removed. Files vanishing under a scan are skipped.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from evaluator_agent.core.envvars import env_int
from evaluator_agent.core.labels import Label
from evaluator_agent.engine.worlds import fresh_cache_dir
from evaluator_agent.telemetry.world import canonical_bytes, content_hash

DEFAULT_MAX_BYTES = 2 * 1024**3  # $PROCTOR_FRESH_CACHE_MAX_BYTES
DEFAULT_MAX_AGE_S = 7 * 24 * 3600  # $PROCTOR_FRESH_CACHE_MAX_AGE_S
TEMP_GRACE_S = 3600  # a temp file this old is a writer's leftover
_SUFFIX = ".json.gz"


def _host() -> str:
    return "".join(c if c.isalnum() else "_" for c in socket.gethostname())[:40] or "host"


def new_holder() -> str:
    """A pin holder's name: ``<pid>-<nonce>-<host>`` (so a pin of a dead process can be told)."""
    return f"{os.getpid()}-{secrets.token_hex(4)}-{_host()}"


def _alive(holder: str, now: float, mtime: float, max_age_s: float) -> bool:
    pid, _, rest = holder.partition("-")
    host = rest.partition("-")[2]
    if now - mtime > max_age_s:
        return False
    if host != _host() or not pid.isdigit():
        return True  # another machine's: only its age tells
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.parent / f".tmp-{path.name}-{secrets.token_hex(6)}"
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


class FreshCache:
    """One fresh-world cache directory (module docstring). ``holder`` names this object's pins;
    they are counted in memory and held on disk while the count is above zero."""

    def __init__(self, directory: Path | str | None = None, *, max_bytes: int | None = None,
                 max_age_s: float | None = None, holder: str | None = None):
        self.directory = Path(directory) if directory is not None else fresh_cache_dir()
        self.max_bytes = max_bytes if max_bytes is not None else env_int("PROCTOR_FRESH_CACHE_MAX_BYTES", DEFAULT_MAX_BYTES)
        self.max_age_s = max_age_s if max_age_s is not None else env_int("PROCTOR_FRESH_CACHE_MAX_AGE_S", DEFAULT_MAX_AGE_S)
        self.holder = holder or new_holder()
        self._pins: dict[str, int] = {}
        self._mutex = threading.Lock()  # the counts (pins are taken from threads)

    # ------------------------------------------------------------------ paths and locks

    def path(self, digest: str) -> Path:
        return self.directory / f"{digest}{_SUFFIX}"

    def _label_path(self, key: str) -> Path:
        return self.directory / "labels" / f"{key}.json"

    def _pin_path(self, digest: str, holder: str) -> Path:
        return self.directory / "pins" / f"{digest}~{holder}"

    @contextlib.contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        for sub in ("labels", "pins"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        with open(self.directory / ".lock", "a+b") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            except OSError:  # a volume without locks: writes stay atomic, pins are checked once more by readers
                pass
            try:
                yield
            finally:
                with contextlib.suppress(OSError):
                    fcntl.flock(f, fcntl.LOCK_UN)

    # ------------------------------------------------------------------ worlds and labels

    def put_world(self, world: dict[str, Any], *, holder: str | None = None) -> str:
        """Write a world under its content hash (atomic; a copy already there is only touched);
        pinned for ``holder`` (on disk only: that holder's object counts it when it adopts it)."""
        raw = canonical_bytes(world)
        digest = content_hash(raw)
        with self._locked(exclusive=False):
            path = self.path(digest)
            try:
                os.utime(path)
            except FileNotFoundError:
                _atomic_write(path, gzip.compress(raw, compresslevel=1, mtime=0))
            if holder is not None:
                self._pin_path(digest, holder).touch()
        return digest

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def get_label(self, key: str) -> Label | None:
        try:
            raw = self._label_path(key).read_bytes()
        except FileNotFoundError:
            return None
        try:
            return Label.model_validate_json(raw)
        except ValueError:  # a damaged record is a miss: the instance is generated again
            return None

    def label_by_id(self, label_id: str) -> Label | None:
        """An instance's label by its id (``lbl_`` + the first 10 hex digits of its key), for
        readers that have only the id (a stored run's rows)."""
        if not label_id.startswith("lbl_") or not label_id[4:].isalnum():
            return None
        for p in sorted((self.directory / "labels").glob(f"{label_id[4:]}*.json")):
            label = self.get_label(p.stem)
            if label is not None and label.id == label_id:
                return label
        return None

    def put_label(self, key: str, label: Label) -> None:
        self._label_path(key).parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(self._label_path(key), label.model_dump_json().encode())

    # ------------------------------------------------------------------ pins

    def pin_existing(self, digests: Iterable[str]) -> bool:
        """Pin the worlds if every one is still here (touching them: they are used); False, and
        nothing pinned, when one is gone."""
        digests = list(digests)
        with self._locked(exclusive=False):
            if not all(self.has(d) for d in digests):
                return False
            for d in digests:
                with contextlib.suppress(FileNotFoundError):
                    os.utime(self.path(d))
                self._pin(d)
        return True

    def adopt(self, digests: Iterable[str]) -> None:
        """Count pins a worker made for this holder (:meth:`put_world` with ``holder``)."""
        for d in digests:
            self._pin(d)

    def _pin(self, digest: str) -> None:
        with self._mutex:
            if self._pins.get(digest, 0) == 0:
                self._pin_path(digest, self.holder).touch()
            self._pins[digest] = self._pins.get(digest, 0) + 1

    def unpin(self, digests: Iterable[str]) -> None:
        for d in digests:
            with self._mutex:
                n = self._pins.get(d, 0) - 1
                if n > 0:
                    self._pins[d] = n
                    continue
                self._pins.pop(d, None)
                with contextlib.suppress(FileNotFoundError):
                    self._pin_path(d, self.holder).unlink()

    def release(self) -> None:
        """Drop every pin of this holder."""
        with self._mutex:
            held = [d for d, n in self._pins.items() for _ in range(n)]
        self.unpin(held)

    def pinned(self) -> set[str]:
        """Worlds pinned by a live holder (stale pins are removed on the way)."""
        now, out = time.time(), set()
        pins = self.directory / "pins"
        for p in pins.iterdir() if pins.is_dir() else ():
            digest, _, holder = p.name.partition("~")
            try:
                mtime = p.stat().st_mtime
            except FileNotFoundError:
                continue
            if holder == self.holder or _alive(holder, now, mtime, self.max_age_s):
                out.add(digest)
            else:
                with contextlib.suppress(FileNotFoundError):
                    p.unlink()
        return out

    # ------------------------------------------------------------------ eviction

    def evict(self, now: float | None = None) -> list[Path]:
        """Bound the cache (module docstring); returns the files removed."""
        if not self.directory.is_dir():
            return []
        now = time.time() if now is None else now
        removed: list[Path] = []
        with self._locked(exclusive=True):
            keep = self.pinned()
            candidates: list[tuple[float, int, Path]] = []  # (last use, size, file) of what may go
            total = 0
            for p in [*self.directory.iterdir(), *(self.directory / "labels").iterdir()]:
                world = p.name.endswith(_SUFFIX) and p.parent == self.directory
                label = p.name.endswith(".json") and p.parent.name == "labels" and p.parent.parent == self.directory
                if not (world or label or p.name.startswith(".tmp-")):
                    continue
                try:
                    st = p.stat()
                except FileNotFoundError:
                    continue
                if p.name.startswith(".tmp-"):  # a writer's leftover once old; a write in progress else
                    if now - st.st_mtime > TEMP_GRACE_S:
                        removed += _remove(p)
                    continue
                total += st.st_size
                if not (world and p.name[: -len(_SUFFIX)] in keep):
                    candidates.append((st.st_mtime, st.st_size, p))
            for mtime, size, p in sorted(candidates, key=lambda c: c[0]):
                if now - mtime <= self.max_age_s and total <= self.max_bytes:
                    break
                removed += _remove(p)
                total -= size  # gone, by us or by another process
        return removed


def _remove(p: Path) -> list[Path]:
    try:
        p.unlink()
    except FileNotFoundError:
        return []
    return [p]
