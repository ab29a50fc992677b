"""Metric submission: points (``proctor.*`` gauges and counts), their v2 series payload, and
the :class:`Flusher` that buffers them and sends them from a daemon thread, in batches, with
short timeouts and bounded retries (an outage is logged, never raised).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from evaluator_agent.datadog.config import Settings

log = logging.getLogger(__name__)

MAX_SERIES_PER_PAYLOAD = 500
MAX_BUFFERED_POINTS = 100_000


@dataclass
class Point:
    metric: str
    value: float
    tags: tuple[str, ...]
    kind: str = "gauge"  # gauge | count
    ts: int = field(default_factory=lambda: int(time.time()))
    unit: str | None = None


def series_payload(points: list[Point]) -> Any:
    """A v2 MetricPayload (datadog_api_client model) of these points, one series per metric+tags."""
    from datadog_api_client.v2.model.metric_intake_type import MetricIntakeType
    from datadog_api_client.v2.model.metric_payload import MetricPayload
    from datadog_api_client.v2.model.metric_point import MetricPoint
    from datadog_api_client.v2.model.metric_series import MetricSeries

    grouped: dict[tuple[str, str, tuple[str, ...], str | None], list[Point]] = {}
    for p in points:
        grouped.setdefault((p.metric, p.kind, tuple(sorted(set(p.tags))), p.unit), []).append(p)
    series = []
    for (metric, kind, tags, unit), pts in grouped.items():
        pts.sort(key=lambda p: p.ts)
        kw: dict[str, Any] = {"unit": unit} if unit else {}
        series.append(MetricSeries(
            metric=metric, type=MetricIntakeType.COUNT if kind == "count" else MetricIntakeType.GAUGE,
            points=[MetricPoint(timestamp=p.ts, value=float(p.value)) for p in pts], tags=list(tags), **kw,
        ))
    return MetricPayload(series=series)


class Flusher:
    """Buffers metric points; a daemon thread sends them every ``interval`` seconds and on request.

    ``send(points)`` is called in the thread, in batches; it is retried ``max_attempts`` times
    with exponential backoff; a batch that still fails is logged and dropped. ``after`` (e.g.
    LLMObs.flush) runs after each flush.
    """

    def __init__(self, send: Callable[[list[Point]], None], settings: Settings, after: Callable[[], None] | None = None):
        self._send, self._after, self.s = send, after, settings
        self._buf: list[Point] = []
        self._cv = threading.Condition()
        self._requested = self._completed = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self.dropped = 0
        self.failures = 0

    def add(self, points: list[Point]) -> None:
        with self._cv:
            room = MAX_BUFFERED_POINTS - len(self._buf)
            if room < len(points):
                self.dropped += len(points) - max(0, room)
                points = points[: max(0, room)]
            self._buf.extend(points)
            self._ensure_thread()

    def _ensure_thread(self) -> None:
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(target=self._loop, name="proctor-datadog-flush", daemon=True)
            self._thread.start()

    def request(self) -> int:
        with self._cv:
            self._requested += 1
            self._ensure_thread()
            self._cv.notify_all()
            return self._requested

    def done(self, target: int) -> bool:
        with self._cv:
            return self._completed >= target or self._thread is None

    def flush(self, timeout: float) -> bool:
        """Ask for a flush and wait for it at most ``timeout`` seconds (blocking)."""
        target = self.request()
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._completed < target and self._thread is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
        return True

    async def aflush(self, timeout: float) -> bool:
        """Same, without blocking the event loop (polls; never uses the default executor)."""
        target = self.request()
        deadline = time.monotonic() + timeout
        while not self.done(target):
            if time.monotonic() >= deadline:
                log.warning("Datadog flush still running after %.1fs; continuing without waiting", timeout)
                return False
            await asyncio.sleep(0.02)
        return True

    def close(self, timeout: float) -> None:
        if self._thread is not None:
            self.flush(timeout)
        with self._cv:
            self._closed = True
            self._cv.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cv:
                if self._requested == self._completed and not self._closed:
                    self._cv.wait(self.s.flush_interval)
                if self._closed:
                    self._thread = None
                    self._cv.notify_all()
                    return
                target = self._requested
                batch, self._buf = self._buf, []
            self._send_all(batch)
            if self._after is not None:
                try:
                    self._after()
                except Exception:  # noqa: BLE001
                    log.warning("Datadog: flushing LLM Observability failed", exc_info=True)
            with self._cv:
                self._completed = max(self._completed, target)
                self._cv.notify_all()

    def _send_all(self, points: list[Point]) -> None:
        if not points:
            return
        # Batch by series count: group first so one metric's points stay together.
        keys: dict[tuple[Any, ...], list[Point]] = {}
        for p in points:
            keys.setdefault((p.metric, p.kind, p.tags), []).append(p)
        groups = list(keys.values())
        for i in range(0, len(groups), MAX_SERIES_PER_PAYLOAD):
            batch = [p for g in groups[i : i + MAX_SERIES_PER_PAYLOAD] for p in g]
            self._send_with_retry(batch)

    def _send_with_retry(self, batch: list[Point]) -> None:
        for attempt in range(1, self.s.max_attempts + 1):
            try:
                self._send(batch)
                return
            except Exception as e:  # noqa: BLE001 - an outage is logged, never raised
                status = getattr(e, "status", None)
                retryable = status is None or status in (408, 429) or status >= 500
                if attempt >= self.s.max_attempts or not retryable:
                    self.failures += 1
                    log.warning("Datadog: dropped %d metric point(s) after %d attempt(s): %s",
                                len(batch), attempt, str(e).splitlines()[0][:200] if str(e) else type(e).__name__)
                    return
                time.sleep(self.s.backoff_s * 2 ** (attempt - 1))
