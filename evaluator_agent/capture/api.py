"""``capture()``: one incident's world from a Datadog organisation to a snapshot and a draft label.

    from evaluator_agent.capture import CaptureOptions, capture
    result = capture(CaptureOptions(monitor_id=123), directory=Path("captures/inc-1"),
                     api_url="http://127.0.0.1:8080/datadog")      # else DD_SITE's API
    result.snapshot       # sha256 of the snapshot written under snapshots_dir
    result.label          # the draft label (dict)

``resume(directory)`` finishes an interrupted capture with the options stored in its manifest:
only the pieces not yet on disk are fetched, and the snapshot is the one an uninterrupted
capture would have written.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from evaluator_agent.capture.build import build_world, draft_label
from evaluator_agent.capture.client import DatadogReader
from evaluator_agent.capture.options import CaptureOptions
from evaluator_agent.capture.redact import Redactor
from evaluator_agent.capture.steps import Progress, run_capture
from evaluator_agent.capture.store import CaptureStore
from evaluator_agent.core.labels import snapshots_dir as default_snapshots_dir
from evaluator_agent.telemetry.world import write_snapshot

__all__ = ["CaptureResult", "capture", "resume"]


@dataclass
class CaptureResult:
    snapshot: str  # content hash
    path: Path  # the snapshot file
    directory: Path  # the capture directory
    label: dict[str, Any]
    counts: dict[str, int]
    dropped: dict[str, int]
    notes: list[str]
    seconds: float
    requests: int
    retries: int
    rate_limited: int
    waited_s: float
    fetched: int  # pieces fetched from Datadog by this process
    resumed: int  # pieces read back from the capture directory
    redactions: dict[str, int] = field(default_factory=dict)
    scope: list[str] = field(default_factory=list)
    reasons: dict[str, list[str]] = field(default_factory=dict)  # why each scoped service is in
    scope_reasons: dict[str, int] = field(default_factory=dict)  # scoped services by deciding reason ("depends" for all hops)
    scope_cut: dict[str, int] = field(default_factory=dict)  # services cut by max_services, by reason

    def summary(self) -> dict[str, Any]:
        return {"snapshot": self.snapshot, "path": str(self.path), "directory": str(self.directory),
                "label_id": self.label["id"], "counts": self.counts, "dropped": self.dropped,
                "scope": self.scope, "reasons": self.reasons, "scope_reasons": self.scope_reasons,
                "scope_cut": self.scope_cut, "notes": self.notes, "seconds": round(self.seconds, 2),
                "requests": self.requests, "retries": self.retries, "rate_limited": self.rate_limited,
                "waited_s": round(self.waited_s, 2), "fetched": self.fetched, "resumed": self.resumed,
                "redactions": self.redactions}


def capture(opts: CaptureOptions, *, directory: Path, snapshots_dir: Path | None = None,
            api_url: str | None = None, api_key: str | None = None, app_key: str | None = None,
            site: str | None = None, redactor: Redactor | None = None, workers: int = 4,
            max_steps: int | None = None, progress: TextIO | None = sys.stderr, max_attempts: int = 6,
            backoff_s: float = 0.5, max_wait_s: float = 120.0, reader: DatadogReader | None = None,
            _resuming: bool = False) -> CaptureResult:
    """Capture (or, with a directory that holds this same request, continue) one incident.
    Raises ``OptionsError``, ``StoreError``, ``DatadogError``, ``CaptureInterrupted``."""
    t_start = time.monotonic()
    opts.validate()
    redactor = redactor or Redactor()
    prog = Progress(progress)
    store = CaptureStore(Path(directory), redactor, max_steps=max_steps, on_piece=prog.piece)
    if not _resuming:
        store.start(opts.request())
    own_reader = reader is None
    if reader is None:
        reader = DatadogReader(api_url=api_url, api_key=api_key, app_key=app_key, site=site,
                               max_attempts=max_attempts, backoff_s=backoff_s, max_wait_s=max_wait_s,
                               on_wait=prog.wait)
    try:
        captured = run_capture(opts, reader, store, prog, workers)
    finally:
        if own_reader:
            reader.close()
    prog.enter("snapshot")
    world, dropped = build_world(captured)
    target = Path(snapshots_dir) if snapshots_dir is not None else default_snapshots_dir()
    digest = write_snapshot(world, target)
    label = draft_label(world, digest, captured)
    counts = {"services": len(world.topology.services), "scoped_services": len(captured.scope),
              "dependencies": len(world.topology.dependencies), "series": len(world.metrics),
              "logs": len(world.logs), "spans": len(world.spans), "events": len(world.events),
              "monitors": len(world.monitors)}
    stats = reader.stats
    result = CaptureResult(
        snapshot=digest, path=target / f"{digest}.json.gz", directory=store.root, label=label, counts=counts,
        dropped=dropped, notes=captured.notes, seconds=time.monotonic() - t_start, requests=stats.requests,
        retries=stats.retries, rate_limited=stats.rate_limited, waited_s=stats.waited_s, fetched=store.fetched,
        resumed=store.resumed, redactions=dict(redactor.hits), scope=list(captured.scope),
        reasons=dict(captured.scope_info.get("reasons") or {}), scope_reasons=dict(captured.scope_info.get("kept") or {}),
        scope_cut=dict(captured.scope_info.get("cut") or {}))
    store.write_result({**result.summary(), "label": label})
    prog.say(f"done: snapshot {digest[:12]}… ({', '.join(f'{k} {v}' for k, v in counts.items())}) "
             f"in {result.seconds:.1f} s, {stats.requests} requests, {store.resumed} pieces resumed")
    return result


def resume(directory: Path, **kwargs: Any) -> CaptureResult:
    """Finish the capture in ``directory`` with the options and the redaction rules of its
    manifest (the keyword arguments are those of :func:`capture`: where to reach Datadog,
    workers, attempts...; a ``redactor`` given here is ignored)."""
    manifest = CaptureStore(Path(directory), Redactor()).read_manifest()
    opts = CaptureOptions.from_request(manifest["request"])
    kwargs["redactor"] = Redactor.from_description(manifest["redaction"])
    return capture(opts, directory=Path(directory), _resuming=True, **kwargs)
