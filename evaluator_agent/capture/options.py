"""What a capture is asked for: the seed, the window, the scope rules and the caps.

A capture starts from a window plus services (``start``/``end``/``services``), from a monitor
(``monitor_id``: the incident window is ``before_s`` before to ``after_s`` after its last
alert, its ``service`` tag the seed) or from a Datadog incident (``incident_id``: ``before_s``
before its customer impact started, else when it was detected, declared or created, to
``after_s`` after it was resolved, else after that start; the services of its fields are the
seeds). Explicit ``start``/``end``/``services`` override what a monitor or incident gives. The world covers the incident window plus ``baseline_s``
before it. The scope is the seeds, widened along dependencies (both directions, ``depth``
hops), to the services the paged monitors and their name family name (``same_monitor``),
to the seeds' teams (``same_team``), to the seeds' application / system / platform grouping
(``same_platform``) and to services whose names share a token with a seed's
(``similar_names``); at most ``max_services``, in this order of precedence when the cap
bites: seeds, dependency hops nearest first, monitor, team, platform, similar names (see
``scope.py``; the manifest records why each service is in). Every kind of record has a cap;
caps per service keep one chatty service from crowding out the others.

The options are stored in the capture directory's manifest (:meth:`CaptureOptions.request`),
and a resumed capture reads them back from there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["CaptureOptions", "OptionsError"]


_LATER_WIDENINGS = ("same_monitor", "same_platform", "similar_names")


class OptionsError(ValueError):
    """Options that cannot describe a capture."""


@dataclass
class CaptureOptions:
    # seed
    services: list[str] = field(default_factory=list)
    start: int | None = None  # incident window, epoch seconds
    end: int | None = None
    monitor_id: int | None = None
    incident_id: str | None = None  # a Datadog incident: its impact window and services
    before_s: int = 1800  # monitor seed: incident window before / after its last alert
    after_s: int = 600
    baseline_s: int = 7200  # captured before the incident window
    env: str | None = None  # env:<env> on every query when set
    # scope
    depth: int = 2
    max_services: int = 60
    same_monitor: bool = True  # services the paged monitors name, and their name family's
    same_team: bool = True
    same_platform: bool = True  # the seeds' application / system / platform grouping
    similar_names: bool = True  # services whose name shares a token with a seed's
    # data
    rollup_s: int = 60
    max_series: int = 20000
    max_points: int = 300  # per series per query: longer windows are queried in chunks
    max_error_logs: int = 1000  # per service, newest first
    max_other_logs: int = 300  # per service, sampled over the window
    max_error_spans: int = 300  # per service
    max_other_spans: int = 200  # per service, sampled
    max_traces: int = 200  # whole traces of error spans
    max_spans: int = 50000
    max_events: int = 500  # per service (and for events without a service)
    max_total_events: int = 10000
    max_monitors: int = 500
    max_hosts: int = 100
    host_metrics: bool = True
    sample_slices: int = 6
    page_size: int = 200  # logs, spans and events per request (the API's most is 1000; the facade's 200)

    def validate(self) -> None:
        if self.monitor_id is not None and self.incident_id is not None:
            raise OptionsError("start from a monitor or from an incident, not both")
        if self.monitor_id is None and self.incident_id is None:
            if not self.services:
                raise OptionsError("give --service (one or more) with --from/--to, or --monitor, or --incident")
            if self.start is None or self.end is None:
                raise OptionsError("a capture from services needs --from and --to (or start from --monitor)")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise OptionsError("--to must be after --from")
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, int) and not isinstance(v, bool) and f.name not in ("start", "end", "monitor_id") and v < 0:
                raise OptionsError(f"{f.name} must be >= 0")
        if self.rollup_s < 1:
            raise OptionsError("the rollup must be at least 1 second")
        if self.baseline_s < 60:
            raise OptionsError("the baseline must be at least 60 seconds")
        if self.max_points < 10:
            raise OptionsError("max_points must be at least 10")
        if not 1 <= self.page_size <= 1000:
            raise OptionsError("page_size must be 1 to 1000")
        if self.max_services < 1:
            raise OptionsError("max_services must be at least 1")
        if self.sample_slices < 1:
            raise OptionsError("sample_slices must be at least 1")

    def request(self) -> dict[str, Any]:
        """The options as stored in the manifest (JSON)."""
        return asdict(self)

    @classmethod
    def from_request(cls, data: dict[str, Any]) -> CaptureOptions:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise OptionsError(f"unknown capture options in the manifest: {', '.join(unknown)}")
        # a manifest written before these widenings existed asked for none of them
        return cls(**{**dict.fromkeys(_LATER_WIDENINGS, False), **data})
