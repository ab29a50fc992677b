"""Keeping Python's cyclic garbage collector from pausing the server.

A loaded world index is some 12,000 container objects that live as long as the world stays in
the cache; with the modules the server imports, a full collection of the oldest generation walks
hundreds of thousands of objects and holds the GIL for 100-500 ms. Investigations allocate fast
(tool results, tokens of queries, protobuf round trips), so full collections came every second or
so under load, and every one of them froze both event loops: ``/health`` answered in 200 ms+.

After a world is loaded (and once at server start), :func:`settle` moves every live object into
the permanent generation (``gc.freeze``), where the collector never looks. Refcounting still
frees them: an evicted world goes away as soon as nothing references it. What the collector can
no longer reach is cyclic garbage that happened to exist at a freeze; to keep that bounded, every
``FULL_EVERY`` settles the permanent generation is handed back and collected once.
"""

from __future__ import annotations

import gc
import threading

FULL_EVERY = 16  # settles between full collections (which also reclaim what a freeze kept)

_lock = threading.Lock()
_settles = 0


def settle() -> None:
    """Freeze what is alive now (after a young-generation collection, so little garbage is kept)."""
    global _settles
    with _lock:
        _settles += 1
        if _settles % FULL_EVERY == 0:
            gc.unfreeze()
            gc.collect()
        else:
            gc.collect(1)
        gc.freeze()


def frozen() -> int:
    """Objects in the permanent generation (for tests and diagnostics)."""
    return gc.get_freeze_count()
