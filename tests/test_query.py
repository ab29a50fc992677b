"""Parsers of the tool query languages: times, metric queries, search queries."""

from __future__ import annotations

from typing import Any

import pytest

from evaluator_agent.telemetry.query import (
    And,
    FieldTerm,
    MatchAll,
    Not,
    Or,
    QueryError,
    TextTerm,
    compile_predicate,
    field_value_matches,
    parse_metric_query,
    parse_search_query,
    parse_time,
)

NOW = 1_700_000_000.0

# --------------------------------------------------------------------------- times


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("now", NOW),
        ("now-30s", NOW - 30),
        ("now-15m", NOW - 900),
        ("now-2h", NOW - 7200),
        ("now-1d", NOW - 86400),
        ("now - 1h", NOW - 3600),
        ("NOW-1H", NOW - 3600),
        ("now+5m", NOW + 300),
        ("2023-11-14T22:13:20Z", 1_700_000_000.0),
        ("2023-11-14T22:13:20.5Z", 1_700_000_000.5),
        ("2023-11-14T23:13:20+01:00", 1_700_000_000.0),
        ("2023-11-14T22:13:20", 1_700_000_000.0),  # no offset: UTC
        (1_699_999_000, 1_699_999_000.0),
        (1_699_999_000.25, 1_699_999_000.25),
        ("1699999000", 1_699_999_000.0),
        (1_699_999_000_000, 1_699_999_000.0),  # milliseconds
    ],
)
def test_parse_time_accepts(value: Any, expected: float) -> None:
    assert parse_time(value, NOW) == pytest.approx(expected)


@pytest.mark.parametrize("value", ["yesterday", "now-15x", "now-", "", "2023-13-45T00:00:00Z", True, None, -5, [1]])
def test_parse_time_rejects(value: Any) -> None:
    with pytest.raises(QueryError) as e:
        parse_time(value, NOW)
    assert "time" in str(e.value)


@pytest.mark.parametrize("value", [1e20, "now+100000000d", "1850-01-01T00:00:00Z"])
def test_parse_time_range(value: Any) -> None:
    with pytest.raises(QueryError, match="out of range"):
        parse_time(value, NOW)


def test_parse_time_error_names_the_accepted_forms() -> None:
    with pytest.raises(QueryError, match="ISO 8601.*epoch seconds.*now-"):
        parse_time("last tuesday", NOW)


# --------------------------------------------------------------------------- metric queries


def test_metric_query_full_form() -> None:
    q = parse_metric_query("avg:trace.http.request.duration{service:checkout,env:prod} by {version}.rollup(max, 300)")
    assert q.aggregation == "avg"
    assert q.metric == "trace.http.request.duration"
    assert [(f.key, f.patterns, f.negate) for f in q.filters] == [
        ("service", ("checkout",), False),
        ("env", ("prod",), False),
    ]
    assert q.group_by == ("version",)
    assert (q.rollup, q.rollup_seconds) == ("max", 300)


@pytest.mark.parametrize(
    "text",
    [
        "sum:x.y{a:b} by {c,d}",
        "sum:x.y{a:b} by{c,d}",
        "sum:x.y{a:b}by {c, d}",
        "sum:x.y{a:b} BY { c , d }",
        "sum:x.y{ a:b } by {c,d}",
    ],
)
def test_metric_query_group_by_spacing(text: str) -> None:
    q = parse_metric_query(text)
    assert q.group_by == ("c", "d")
    assert q.filters[0].key == "a"


def test_metric_query_defaults_and_modifiers() -> None:
    q = parse_metric_query("system.cpu.user")
    assert (q.aggregation, q.filters, q.group_by, q.rollup) == ("avg", (), (), None)
    q = parse_metric_query("sum:trace.http.request.hits{*} by {service}.as_count()")
    assert q.modifiers == ("as_count",) and q.filters == ()
    q = parse_metric_query("sum:trace.http.request.hits{}.rollup(sum)")
    assert (q.rollup, q.rollup_seconds) == ("sum", None)
    q = parse_metric_query("max:m{a:b}.rollup(120)")
    assert (q.rollup, q.rollup_seconds) == (None, 120)


def test_metric_filters_semantics() -> None:
    q = parse_metric_query("avg:m{service:pay*,!env:staging,-version:1.0,host IN (a, b),zone NOT IN (z1)}")
    assert q.matches({"service": "payments", "env": "prod", "version": "2.0", "host": "a", "zone": "z2"})
    assert not q.matches({"service": "checkout", "env": "prod", "version": "2.0", "host": "a"})
    assert not q.matches({"service": "payments", "env": "staging", "version": "2.0", "host": "a"})
    assert not q.matches({"service": "payments", "env": "prod", "version": "1.0", "host": "a"})
    assert not q.matches({"service": "payments", "env": "prod", "version": "2.0", "host": "c"})
    assert not q.matches({"service": "payments", "host": "b", "zone": "z1"})
    # filters are case-insensitive
    assert parse_metric_query("avg:m{service:Checkout}").matches({"service": "checkout"})


def test_metric_same_key_filters_are_alternatives() -> None:
    q = parse_metric_query("avg:m{service:a,service:b}")
    assert q.matches({"service": "a"}) and q.matches({"service": "b"}) and not q.matches({"service": "c"})
    q = parse_metric_query("avg:m{service:a OR service:b}")
    assert q.matches({"service": "b"})
    q = parse_metric_query("avg:m{service:a AND env:prod}")
    assert q.matches({"service": "a", "env": "prod"}) and not q.matches({"service": "a"})


def test_metric_bare_tag_means_present() -> None:
    q = parse_metric_query("avg:m{host}")
    assert q.matches({"host": "x"}) and not q.matches({"service": "x"})


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "empty metric query"),
        ("median:m{*}", "unknown aggregation 'median' at position 0"),
        ("avg:m{service:x", "not closed"),
        ("avg:m{a:b} by {c", "not closed"),
        ("avg:m{a:b}.top(5)", "not supported"),
        ("avg:m{a:b} / avg:n{a:b}", "arithmetic"),
        ("avg:m{a:b}.rollup(median, 60)", "invalid rollup argument 'median'"),
        ("avg:m{a:b}.rollup()", "empty .rollup()"),
        ("avg:m{a:b} by {}", "invalid group-by tag"),
        ("avg:m{service:a OR env:b}", "OR between different tags"),
        ("avg:m{service:}", "empty value"),
        ("avg:m{a:b}{c:d}", "unexpected '{'"),
        ("avg:m{a:b} garbage", "unexpected 'garbage'"),
        ("avg:{a:b}", "expected a metric name at position 4"),
    ],
)
def test_metric_query_errors(text: str, fragment: str) -> None:
    with pytest.raises(QueryError) as e:
        parse_metric_query(text)
    assert fragment in str(e.value)


def test_metric_scope_text() -> None:
    assert parse_metric_query("avg:m{service:a,!env:dev}").scope() == "service:a,!env:dev"
    assert parse_metric_query("avg:m{*}").scope() == "*"


# --------------------------------------------------------------------------- search parser


def test_search_empty_and_star_match_all() -> None:
    assert parse_search_query("") == MatchAll()
    assert parse_search_query("   ") == MatchAll()
    assert parse_search_query("*") == MatchAll()
    assert parse_search_query(None) == MatchAll()


def test_search_terms_and_implicit_and() -> None:
    node = parse_search_query('service:checkout status:error "timed out" -host:web-1 @http.status_code:503')
    assert isinstance(node, And)
    a, b, c, d, e = node.items
    assert a == FieldTerm("service", False, "eq", "checkout")
    assert b == FieldTerm("status", False, "eq", "error")
    assert c == TextTerm("timed out")
    assert isinstance(d, Not) and d.item == FieldTerm("host", False, "eq", "web-1")
    assert isinstance(e, FieldTerm) and e.attr and e.key == "http.status_code" and e.num == 503


def test_search_precedence_and_parentheses() -> None:
    node = parse_search_query("a OR b c")
    assert isinstance(node, Or) and isinstance(node.items[1], And)
    node = parse_search_query("(a OR b) c")
    assert isinstance(node, And) and isinstance(node.items[0], Or)
    node = parse_search_query("NOT (service:a OR service:b) AND status:error")
    assert isinstance(node, And) and isinstance(node.items[0], Not)


def test_search_value_forms() -> None:
    assert parse_search_query("@duration:>0.5") == FieldTerm("duration", True, "cmp", num=0.5, cmp=">")
    assert parse_search_query("@duration:>=500ms") == FieldTerm("duration", True, "cmp", num=0.5, cmp=">=")
    r = parse_search_query("@http.status_code:[400 TO 499]")
    assert isinstance(r, FieldTerm) and (r.op, r.lo, r.hi, r.lo_incl, r.hi_incl) == ("range", 400, 499, True, True)
    r = parse_search_query("@x:{1 TO *}")
    assert isinstance(r, FieldTerm) and (r.lo, r.hi, r.lo_incl) == (1, None, False)
    assert parse_search_query("host:*") == FieldTerm("host", False, "exists")
    g = parse_search_query("service:pay*")
    assert isinstance(g, FieldTerm) and g.op == "glob"
    q = parse_search_query('resource_name:"POST /pay"')
    assert q == FieldTerm("resource_name", False, "eq", "post /pay")
    grp = parse_search_query("status:(error OR warn)")
    assert grp == Or((FieldTerm("status", False, "eq", "error"), FieldTerm("status", False, "eq", "warn")))


def test_search_text_terms() -> None:
    assert parse_search_query("Timeout") == TextTerm("timeout")
    assert parse_search_query("pay*") == TextTerm("pay")  # outer wildcards change nothing
    t = parse_search_query("conn*refused")
    assert isinstance(t, TextTerm) and t.regex is not None and t.pieces == ("conn", "refused")
    # 'x509:' followed by words is text, not an empty field value
    assert parse_search_query("x509: expired") == And((TextTerm("x509:"), TextTerm("expired")))
    # lower-case operators are words
    assert parse_search_query("a or b") == And((TextTerm("a"), TextTerm("or"), TextTerm("b")))
    # escapes make special characters literal
    assert parse_search_query(r"path\:x") == TextTerm("path:x")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("(service:a", "parenthesis opened at position 0 is not closed"),
        ("service:a)", "unexpected ')' at position 9"),
        ("a OR", "OR at position 2 needs a term on its right"),
        ("OR a", "OR at position 0 needs a term on its left"),
        ("a AND", "AND at position 2 needs a term on its right"),
        ('"open quote', "unterminated quote starting at position 0"),
        ("@x:[1 TO", "range starting at position 3 is not closed"),
        ("@x:[a TO b]", "expected a number"),
        ("@x:[5 TO 1]", "low end above its high end"),
        ("@duration:>", "needs a number"),
        ("@duration:>fast", "expected a number at position 11"),
        ("()", "empty parentheses"),
        ("NOT", "needs a term on its right"),
        ("*", None),
    ],
)
def test_search_errors(text: str, fragment: str | None) -> None:
    if fragment is None:
        parse_search_query(text)
        return
    with pytest.raises(QueryError) as e:
        parse_search_query(text)
    assert fragment in str(e.value)


# --------------------------------------------------------------------------- predicates

RECORDS: list[dict[str, Any]] = [
    {"service": "checkout", "status": "error", "message": "HikariPool-1 - Connection is not available, request timed out after 30000ms",
     "attrs": {"http": {"status_code": 500}, "duration": 30.0, "version": "2.3.1", "tags": ["a", "b"]}},
    {"service": "payments", "status": "info", "message": "GET /api/v1/pay 200 12ms",
     "attrs": {"http": {"status_code": 200}, "duration": 0.012, "version": "1.0.0", "flag": True}},
    {"service": "payments-worker", "status": "warn", "message": "dial tcp 10.0.0.1:5432: connect: connection refused",
     "attrs": {"http.status_code": "503", "duration": 0.5}},
    {"service": "Checkout", "status": "critical", "message": "OOMKilled", "attrs": {}},
]


def _get(rec: dict[str, Any], key: str, attr: bool) -> Any:
    if not attr and key in rec and key != "attrs":
        return rec[key]
    attrs = rec["attrs"]
    if key in attrs:
        return attrs[key]
    cur: Any = attrs
    for part in key.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def _match(q: str) -> list[int]:
    pred = compile_predicate(parse_search_query(q), _get, lambda r: r["message"].lower())
    return [i for i, r in enumerate(RECORDS) if pred(r)]


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("", [0, 1, 2, 3]),
        ("service:checkout", [0, 3]),  # case-insensitive values
        ("service:payments*", [1, 2]),
        ("service:*worker", [2]),
        ("service:pay?ents", [1]),
        ("-service:checkout", [1, 2]),
        ("NOT service:checkout", [1, 2]),
        ("status:error", [0]),  # exact: not critical
        ("status:(error OR critical)", [0, 3]),
        ("@http.status_code:500", [0]),
        ("@http.status_code:503", [2]),  # a flat dotted key and a string value
        ("@http.status_code:>=500", [0, 2]),
        ("@http.status_code:[200 TO 499]", [1]),
        ("@http.status_code:{200 TO 500]", [0]),
        ("@duration:>0.5", [0]),
        ("@duration:>=500ms", [0, 2]),
        ("@duration:<1", [1, 2]),
        ("@version:*", [0, 1]),
        ("@flag:true", [1]),
        ("@tags:b", [0]),  # a list matches when any item does
        ("timed out", [0]),  # two words, both anywhere
        ('"timed out"', [0]),
        ('"out timed"', []),
        ("hikaripool", [0]),
        ("CONNECTION", [0, 2]),
        ("conn*ion", [0, 2]),  # an inner wildcard stays within one word
        ("conn*refused", []),
        ("*refused", [2]),
        ("service:payments* AND (refused OR pay)", [1, 2]),
        ("service:payments* -refused", [1]),
        ("@missing:x", []),
        ("-@missing:x", [0, 1, 2, 3]),
    ],
)
def test_predicates(q: str, expected: list[int]) -> None:
    assert _match(q) == expected


def test_wildcards_stay_linear() -> None:
    import time

    t0 = time.perf_counter()
    glob = parse_search_query("@k:" + "*a" * 12 + "*b")
    assert isinstance(glob, FieldTerm) and not field_value_matches(glob, "a" * 5000)
    text = parse_search_query("a*a*a*a*a*a*a*b")
    assert isinstance(text, TextTerm) and text.regex is not None and text.regex.search("a" * 5000) is None
    assert time.perf_counter() - t0 < 30  # a hang detector: exponential backtracking would take hours
    with pytest.raises(QueryError, match="too many wildcards"):
        parse_search_query("a*b*c*d*e*f*g*h*i*j")


def test_field_value_normalisation() -> None:
    t = parse_search_query("@x:500")
    assert isinstance(t, FieldTerm)
    assert field_value_matches(t, 500) and field_value_matches(t, "500") and field_value_matches(t, 500.0)
    assert not field_value_matches(t, 5000) and not field_value_matches(t, None)
    half = parse_search_query("@x:0.50")
    assert isinstance(half, FieldTerm) and field_value_matches(half, 0.5)
    yes = parse_search_query("@x:true")
    assert isinstance(yes, FieldTerm) and field_value_matches(yes, True) and not field_value_matches(yes, 1)
