"""Query languages of the telemetry tools: times, Datadog metric queries, Datadog search.

This module is their reference and their public face: it documents the syntax and
re-exports the names. The parsers live beside it, hand-written, with errors that name the
offending token and its position (the reader of an error is an agent that has to fix its
own query): ``times.py``, ``metric_query.py``, ``search_parser.py`` (to the AST and the
matching of ``search_query.py``), and ``query_values.py`` (QueryError, value forms, globs).

Times (``from`` / ``to``)
    ``2026-03-02T14:05:00Z`` or any ISO 8601 with an offset (no offset means UTC);
    epoch seconds as a number or numeric string (values above 1e11 are taken as
    milliseconds); ``now``; ``now-30s``, ``now-15m``, ``now-2h``, ``now-1d``, ``now-1w``
    (``now+N`` too, though nothing after ``now`` exists).

Metric queries (``query_metrics``)
    ``<agg>:<metric>{<filters>} [by {<tag>,...}] [.rollup(<method>[, <seconds>])]``

    - ``agg`` and rollup ``method``: avg, sum, min, max, count. Without ``agg:`` the
      aggregation is avg. Time aggregation (rollup, default avg) happens per series
      first, then space aggregation across the series of each group.
    - filters: comma separated (``AND`` works too). ``tag:value``; ``*`` and ``?``
      wildcards in values (``service:pay*``); ``!tag:value`` or ``-tag:value`` negation;
      ``tag IN (a, b)`` / ``tag NOT IN (a, b)``; a bare ``tag`` means the tag is present;
      ``*`` or ``{}`` means every series. Series carry one value per tag, so filters
      on the same tag are alternatives (``{service:a,service:b}`` is a OR b);
      ``a:x OR a:y`` works, OR between different tags does not.
    - ``by {a,b}`` groups (``by{a, b}`` spacing variants are fine); series without a
      group tag fall in group ``N/A``.
    - ``.as_count()``, ``.as_rate()`` and ``.fill(...)`` are accepted and ignored: the
      stored values are already what the metric type means.
    - Not supported: arithmetic between queries, functions such as ``top()``.

Search queries (``search_logs``, ``aggregate_logs``, ``search_spans``, ``get_events``,
``get_monitors``, ``list_services``)
    - ``key:value`` matches a field (``service:checkout``, ``status:error``) or a tag;
      ``@attr:value`` matches an attribute, nested paths with dots
      (``@http.status_code:503``). Values are compared case-insensitively.
    - wildcards ``*`` and ``?`` in values: ``service:pay*``; ``key:*`` means the key exists.
    - ``key:"quoted value"`` for values with spaces (no wildcards inside quotes).
    - numeric comparisons ``@duration:>0.5``, ``@http.status_code:>=500``, ``<``, ``<=``;
      ranges ``@http.status_code:[500 TO 599]`` (inclusive) or ``{500 TO 599}``
      (exclusive), ``*`` for an open end. Numbers may carry a duration unit
      (``ns us ms s m h``), converted to seconds: ``@duration:>500ms``.
    - ``key:(a OR b)`` is ``key:a OR key:b``.
    - bare words and ``"quoted phrases"`` search the text (log message; span resource and
      name; event title and text; monitor and service name) case-insensitively as a
      substring: ``timeout`` also matches ``SocketTimeoutException``. Leading and
      trailing ``*`` change nothing; an inner ``*`` matches up to 100 non-space
      characters, so the term stays within one word (``conn*ion``; at most 8 ``*``).
    - ``AND`` (also implicit between terms), ``OR``, ``NOT`` / ``-term``, parentheses.
      ``AND`` binds tighter than ``OR``. Operators are upper case; lower-case
      ``and``/``or`` are words. Backslash escapes a special character (``\\:``, ``\\*``).
    - ``status`` of logs is the level exactly as logged (debug, info, warn, error,
      critical): ``status:error`` does not include ``critical``; use
      ``status:(error OR critical)``.
    - An empty query or ``*`` matches everything.
    - At most 4000 characters, and at most 32 levels of nested parentheses and ``NOT``.
"""

from __future__ import annotations

from evaluator_agent.telemetry.metric_query import (
    AGGREGATIONS,
    MetricQuery,
    TagFilter,
    parse_metric_query,
    parse_tag_filters,
)
from evaluator_agent.telemetry.query_values import QueryError, glob_regex, norm_value, num_value
from evaluator_agent.telemetry.search_parser import MAX_QUERY_DEPTH, parse_search_query
from evaluator_agent.telemetry.search_query import (
    And,
    FieldTerm,
    MatchAll,
    Node,
    Not,
    Or,
    TextTerm,
    compile_predicate,
    field_value_matches,
    norm_matches,
    text_matches,
)
from evaluator_agent.telemetry.times import parse_time

__all__ = [
    "AGGREGATIONS",
    "And",
    "FieldTerm",
    "MatchAll",
    "MetricQuery",
    "Node",
    "Not",
    "Or",
    "MAX_QUERY_DEPTH",
    "QueryError",
    "TagFilter",
    "TextTerm",
    "compile_predicate",
    "field_value_matches",
    "glob_regex",
    "norm_matches",
    "norm_value",
    "num_value",
    "parse_metric_query",
    "parse_search_query",
    "parse_tag_filters",
    "parse_time",
    "text_matches",
]

