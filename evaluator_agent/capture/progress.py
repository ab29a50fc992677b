"""Progress of a capture on stderr: the phase, pieces fetched / resumed, rate-limit waits."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Progress lines on stderr: the phase, pieces fetched / resumed, waits; at most one line a
    second (and one per phase)."""

    def __init__(self, stream: TextIO | None = sys.stderr, interval_s: float = 1.0):
        self.stream = stream
        self.interval_s = interval_s
        self.phase = ""
        self.fetched = 0
        self.resumed = 0
        self._last = 0.0
        self._t0 = time.monotonic()
        self._lock = threading.Lock()

    def say(self, text: str) -> None:
        if self.stream is not None:
            print(f"capture: {text}", file=self.stream, flush=True)

    def enter(self, phase: str) -> None:
        with self._lock:
            self.phase = phase
        self._line(force=True)

    def piece(self, kind: str, resumed: bool) -> None:
        with self._lock:
            if resumed:
                self.resumed += 1
            else:
                self.fetched += 1
        self._line()

    def wait(self, what: str, seconds: float, status: int) -> None:
        why = "rate limited (429)" if status == 429 else f"transient error ({status or 'no answer'})"
        self.say(f"{why} on {what}: waiting {seconds:.1f} s")

    def _line(self, force: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            if not force and now - self._last < self.interval_s:
                return
            self._last = now
            text = (f"[{self.phase}] {self.fetched} pieces fetched, {self.resumed} resumed, "
                    f"{now - self._t0:.1f} s")
        self.say(text)
