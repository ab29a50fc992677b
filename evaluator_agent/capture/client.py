"""Reading a Datadog organisation through the official ``datadog-api-client``, politely.

:class:`DatadogReader` builds one ``Configuration`` (keys from the arguments or DD_API_KEY /
DD_APP_KEY, the site from DD_SITE, ``api_url`` overriding the host for proxies and tests)
and calls the client's API classes with ``preload_content`` off, so each answer is the JSON
Datadog sent, read as plain dicts (the typed models would refuse a field or enum value the
pinned client does not know yet, and cost time on large pages).

Every call goes through :meth:`DatadogReader.call`:

- HTTP 429: wait what Datadog's ``X-RateLimit-Reset`` header says (seconds until the window
  resets; ``Retry-After`` as a fallback, else the backoff), at most ``max_wait`` seconds, then
  try again;
- 5xx, connection errors and timeouts: exponential backoff (``backoff`` x 2^n, at most 30 s);
- anything else (400, 401, 403, 404): raised at once as :class:`DatadogError`;
- at most ``max_attempts`` attempts per call, then :class:`DatadogError` says why.

Endpoints used (see ``capture/steps.py`` for what each is asked):

=====  ===========================================  ===========================================
GET    /api/v2/services/definitions                 ServiceDefinitionApi.list_service_definitions
GET    /api/v2/catalog/relation                     SoftwareCatalogApi.list_catalog_relation
GET    /api/v1/metrics                              MetricsApi(v1).list_active_metrics
GET    /api/v1/metrics/{metric_name}                MetricsApi(v1).get_metric_metadata (type)
GET    /api/v2/metrics/{metric_name}/all-tags       MetricsApi(v2).list_tags_by_metric_name
GET    /api/v1/query                                MetricsApi(v1).query_metrics
POST   /api/v2/logs/events/search                   LogsApi.list_logs
POST   /api/v2/spans/events/search                  SpansApi.list_spans
GET    /api/v2/events                               EventsApi(v2).list_events
GET    /api/v1/monitor                              MonitorsApi.list_monitors (by monitor tag or name)
GET    /api/v1/monitor/{monitor_id}                 MonitorsApi.get_monitor
GET    /api/v2/incidents/{incident_id}              IncidentsApi.get_incident (an unstable operation
                                                    of the client, enabled here)
=====  ===========================================  ===========================================
"""

from __future__ import annotations

import json
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import urllib3
from datadog_api_client import ApiClient, Configuration
from datadog_api_client.exceptions import ApiException
from datadog_api_client.v1.api.metrics_api import MetricsApi as MetricsV1Api
from datadog_api_client.v1.api.monitors_api import MonitorsApi
from datadog_api_client.v2.api.events_api import EventsApi
from datadog_api_client.v2.api.incidents_api import IncidentsApi
from datadog_api_client.v2.api.logs_api import LogsApi
from datadog_api_client.v2.api.metrics_api import MetricsApi as MetricsV2Api
from datadog_api_client.v2.api.service_definition_api import ServiceDefinitionApi
from datadog_api_client.v2.api.software_catalog_api import SoftwareCatalogApi
from datadog_api_client.v2.api.spans_api import SpansApi
from datadog_api_client.v2.model.logs_list_request import LogsListRequest
from datadog_api_client.v2.model.logs_list_request_page import LogsListRequestPage
from datadog_api_client.v2.model.logs_query_filter import LogsQueryFilter
from datadog_api_client.v2.model.logs_sort import LogsSort
from datadog_api_client.v2.model.spans_list_request import SpansListRequest
from datadog_api_client.v2.model.spans_list_request_attributes import SpansListRequestAttributes
from datadog_api_client.v2.model.spans_list_request_data import SpansListRequestData
from datadog_api_client.v2.model.spans_list_request_page import SpansListRequestPage
from datadog_api_client.v2.model.spans_list_request_type import SpansListRequestType
from datadog_api_client.v2.model.spans_query_filter import SpansQueryFilter

__all__ = ["DatadogError", "DatadogReader", "ReaderStats"]

MAX_BACKOFF_S = 30.0


class DatadogError(RuntimeError):
    """A call Datadog refused, or that kept failing; ``status`` is HTTP's (0: no answer)."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status


@dataclass
class ReaderStats:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    waited_s: float = 0.0
    waits: list[tuple[str, float, int]] = field(default_factory=list)  # (what, seconds, status)


def _header(headers: dict[str, Any] | None, name: str) -> str | None:
    for k, v in (headers or {}).items():
        if k.lower() == name.lower():
            return str(v)
    return None


def _seconds(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and value >= 0 else None


def _ms(t: float) -> str:
    """Epoch seconds as the epoch-milliseconds string the v2 search APIs take."""
    return str(int(round(float(t) * 1000)))


def _body_text(e: ApiException) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict) and body.get("errors"):
        return "; ".join(str(x) for x in body["errors"])[:300]
    return str(body or e.reason or "")[:300]


class DatadogReader:
    """The Datadog API calls a capture makes; thread-safe (one urllib3 pool)."""

    def __init__(self, *, api_url: str | None = None, api_key: str | None = None, app_key: str | None = None,
                 site: str | None = None, max_attempts: int = 6, max_wait_s: float = 120.0,
                 backoff_s: float = 0.5, timeout_s: float = 60.0,
                 sleep: Callable[[float], None] = time.sleep,
                 on_wait: Callable[[str, float, int], None] | None = None):
        keys = {k: v for k, v in (("apiKeyAuth", api_key), ("appKeyAuth", app_key)) if v}
        cfg = Configuration(host=api_url.rstrip("/") if api_url else None, api_key=keys or None)
        if site and not api_url:
            cfg.server_variables["site"] = site
        if not cfg.api_key.get("apiKeyAuth") or not cfg.api_key.get("appKeyAuth"):
            raise DatadogError("Datadog keys missing: set DD_API_KEY and DD_APP_KEY (or pass them)", 401)
        cfg.preload_content = False  # raw JSON answers: see the module docstring
        cfg.request_timeout = timeout_s
        cfg.unstable_operations["get_incident"] = True
        # Our loop retries (with Datadog's headers in mind); urllib3 must not retry on its own.
        cfg.retry_policy = urllib3.util.Retry(total=0, redirect=0, raise_on_status=False)
        self.configuration = cfg
        self.client = ApiClient(cfg)
        self.max_attempts = max(1, max_attempts)
        self.max_wait_s = max_wait_s
        self.backoff_s = backoff_s
        self.sleep = sleep
        self.on_wait = on_wait
        self.stats = ReaderStats()
        self._lock = threading.Lock()
        self._metrics1 = MetricsV1Api(self.client)
        self._metrics2 = MetricsV2Api(self.client)
        self._defs = ServiceDefinitionApi(self.client)
        self._catalog = SoftwareCatalogApi(self.client)
        self._logs = LogsApi(self.client)
        self._spans = SpansApi(self.client)
        self._events = EventsApi(self.client)
        self._monitors = MonitorsApi(self.client)
        self._incidents = IncidentsApi(self.client)

    def close(self) -> None:
        self.client.close()

    # ------------------------------------------------------------------ the retry loop

    def call(self, what: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        """``fn(**kwargs)`` (a client API method) as parsed JSON, with the retry rules above."""
        last = ""
        for attempt in range(1, self.max_attempts + 1):
            with self._lock:
                self.stats.requests += 1
            try:
                response = fn(**kwargs)
                try:
                    raw = response.data
                finally:
                    response.release_conn()
                return json.loads(raw) if raw else {}
            except ApiException as e:
                status = int(e.status or 0)
                if status == 429:
                    reset = _seconds(_header(e.headers, "X-RateLimit-Reset"))
                    if reset is None:
                        reset = _seconds(_header(e.headers, "Retry-After"))
                    wait = self._backoff(attempt) if reset is None else reset
                    last = f"429 rate limited ({_body_text(e) or 'Too many requests'})"
                    self._wait(what, min(wait, self.max_wait_s), status, attempt, rate_limited=True)
                    continue
                if status >= 500 or status == 0:
                    last = f"{status or 'no answer'} {_body_text(e)}".strip()
                    self._wait(what, self._backoff(attempt), status, attempt)
                    continue
                raise DatadogError(f"{what}: HTTP {status}: {_body_text(e)}", status) from None
            except (urllib3.exceptions.HTTPError, OSError) as e:
                last = f"{type(e).__name__}: {str(e)[:200]}"
                self._wait(what, self._backoff(attempt), 0, attempt)
                continue
            except ValueError as e:  # a body that is not JSON
                raise DatadogError(f"{what}: the answer is not JSON: {str(e)[:200]}", 502) from None
        raise DatadogError(f"{what}: gave up after {self.max_attempts} attempts: {last}", 503)

    def _backoff(self, attempt: int) -> float:
        return min(MAX_BACKOFF_S, self.backoff_s * 2 ** (attempt - 1))

    def _wait(self, what: str, seconds: float, status: int, attempt: int, rate_limited: bool = False) -> None:
        if attempt >= self.max_attempts:
            return  # no retry follows: do not wait for nothing
        with self._lock:
            self.stats.retries += 1
            self.stats.rate_limited += int(rate_limited)
            self.stats.waited_s += seconds
            self.stats.waits.append((what, seconds, status))
        if self.on_wait is not None:
            self.on_wait(what, seconds, status)
        if seconds > 0:
            self.sleep(seconds)

    # ------------------------------------------------------------------ endpoints

    def service_definitions(self, page_number: int, page_size: int) -> Any:
        return self.call("service definitions", self._defs.list_service_definitions,
                         page_size=page_size, page_number=page_number)

    def relations(self, service: str, offset: int, limit: int) -> Any:
        return self.call(f"relations of {service}", self._catalog.list_catalog_relation,
                         filter_from_ref=f"service:{service}", page_offset=offset, page_limit=limit)

    def active_metrics(self, since: int, *, tag_filter: str | None = None, host: str | None = None) -> Any:
        kwargs: dict[str, Any] = {"_from": int(since)}
        if tag_filter:
            kwargs["tag_filter"] = tag_filter
        if host:
            kwargs["host"] = host
        return self.call(f"active metrics ({tag_filter or host})", self._metrics1.list_active_metrics, **kwargs)

    def metric_metadata(self, name: str) -> Any:
        return self.call(f"metadata of {name}", self._metrics1.get_metric_metadata, metric_name=name)

    def metric_tags(self, name: str) -> Any:
        return self.call(f"tags of {name}", self._metrics2.list_tags_by_metric_name, metric_name=name)

    def query(self, frm: int, to: int, query: str) -> Any:
        return self.call(f"query {query[:80]}", self._metrics1.query_metrics, _from=int(frm), to=int(to), query=query)

    def logs(self, query: str, frm: float, to: float, limit: int, cursor: str | None) -> Any:
        page = LogsListRequestPage(limit=limit, cursor=cursor) if cursor else LogsListRequestPage(limit=limit)
        body = LogsListRequest(filter=LogsQueryFilter(query=query, _from=_ms(frm), to=_ms(to)),
                               page=page, sort=LogsSort.TIMESTAMP_DESCENDING)
        return self.call(f"logs {query[:80]}", self._logs.list_logs, body=body)

    def spans(self, query: str, frm: float, to: float, limit: int, cursor: str | None) -> Any:
        page = SpansListRequestPage(limit=limit, cursor=cursor) if cursor else SpansListRequestPage(limit=limit)
        attrs = SpansListRequestAttributes(
            filter=SpansQueryFilter(query=query, _from=_ms(frm), to=_ms(to)), page=page)
        body = SpansListRequest(data=SpansListRequestData(attributes=attrs, type=SpansListRequestType.SEARCH_REQUEST))
        return self.call(f"spans {query[:80]}", self._spans.list_spans, body=body)

    def events(self, query: str, frm: float, to: float, limit: int, cursor: str | None) -> Any:
        kwargs: dict[str, Any] = {"filter_query": query, "filter_from": _ms(frm),
                                  "filter_to": _ms(to), "page_limit": limit}
        if cursor:
            kwargs["page_cursor"] = cursor
        return self.call(f"events {query[:80]}", self._events.list_events, **kwargs)

    def monitors(self, page: int, page_size: int, *, monitor_tags: str | None = None, name: str | None = None) -> Any:
        """Monitors with their group states: by monitor tag and / or by a part of their name."""
        filters = {k: v for k, v in (("monitor_tags", monitor_tags), ("name", name)) if v}
        return self.call(f"monitors {' '.join(filters.values())}", self._monitors.list_monitors, group_states="all",
                         page=page, page_size=page_size, **filters)

    def monitor(self, monitor_id: int) -> Any:
        return self.call(f"monitor {monitor_id}", self._monitors.get_monitor, monitor_id=int(monitor_id),
                         group_states="all")

    def incident(self, incident_id: str) -> Any:
        with warnings.catch_warnings():  # the client warns on every call of an unstable operation
            warnings.filterwarnings("ignore", message="Using unstable operation")
            return self.call(f"incident {incident_id}", self._incidents.get_incident, incident_id=str(incident_id))
