"""The query spec API checked against DuckDB over the same rows.

Rows go in over the Events API with sample rates; most are sealed into Parquet
segments (one per hour, forced small), the rest stay in the in-memory buffer. The
same rows are loaded into DuckDB, and every answer of POST /api/v1/query/{dataset}
is compared with DuckDB's SQL for the same question: weighted COUNT / SUM / AVG,
MIN / MAX, COUNT_DISTINCT (unweighted), percentiles (within the documented 1%
relative bound), with breakdowns, every filter op, havings, orders and limits.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time

import duckdb
import pytest

from harness import Quarry, rfc3339_to_ns

DATASET = "oracle"
SEALED_HOURS = 3
EVENTS_PER_HOUR = 400
BUFFERED_EVENTS = 150
BASE_NS = rfc3339_to_ns("2024-03-01T00:00:00Z")
BASE_S = BASE_NS // 1_000_000_000
HOUR_S = 3600
END_S = BASE_S + (SEALED_HOURS + 1) * HOUR_S
SERVICES = ["api", "web", "db", "cache", "auth-svc"]
ROUTES = [f"/r/{i}" for i in range(12)]
STATUSES = [200, 200, 200, 201, 404, 500, 503]
SAMPLE_RATES = [1, 1, 2, 5, 10]
# Relative error bound of percentiles (docs/query.md).
PERCENTILE_REL_ERROR = 0.01
FLOAT_REL = 1e-9
SEAL_WAIT_S = 20.0


def trace_ids(hour: int, i: int) -> dict:
    """`trace.trace_id` / `trace.span_id` of event `i` of `hour`, derived from its
    position (not from the shared generator, so the other fields stay as they were).
    Most events have both ids; some only one of them, some neither, so exemplars
    meet every case. Every id is unique."""
    digest = hashlib.sha256(f"oracle-ids:{hour}:{i}".encode()).hexdigest()
    kind = int(digest[:2], 16) % 20
    ids = {}
    if kind < 18:
        ids["trace.trace_id"] = digest[2:34]
    if kind < 16 or kind == 18:
        ids["trace.span_id"] = digest[34:50]
    return ids


def make_events(hour: int, count: int, rng: random.Random) -> list[dict]:
    events = []
    for i in range(count):
        data = {
            "route": rng.choice(ROUTES),
            "status": rng.choice(STATUSES),
            "duration_ms": round(rng.lognormvariate(3.0, 1.2), 3),
            "user": f"user-{rng.randrange(150)}",
            "flag": rng.random() < 0.3,
        }
        if rng.random() < 0.92:
            data["service"] = rng.choice(SERVICES)
        if rng.random() < 0.1:
            del data["duration_ms"]
        data.update(trace_ids(hour, i))
        ts_ns = BASE_NS + hour * HOUR_S * 1_000_000_000 + i * 8_000_000_000 + rng.randrange(1_000_000_000)
        events.append({"data": data, "ts_ns": ts_ns, "samplerate": rng.choice(SAMPLE_RATES)})
    return events


def as_batch(events: list[dict]) -> list[dict]:
    items = []
    for ev in events:
        secs, nanos = divmod(ev["ts_ns"], 1_000_000_000)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{nanos:09d}Z"
        items.append({"data": ev["data"], "time": stamp, "samplerate": ev["samplerate"]})
    return items


def wait_for_segments(server: Quarry, at_least: int) -> None:
    deadline = time.monotonic() + SEAL_WAIT_S
    while server.metrics().get("quarry_store_segments_written_total", 0) < at_least:
        assert time.monotonic() < deadline, "segments were not written"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def loaded(module_quarry):
    """(server, duckdb connection) over the same rows."""
    return load_oracle(module_quarry)


def load_oracle(module_quarry, query: dict | None = None):
    """A server (with `query` as its `[query]` settings) and DuckDB over the same rows."""
    config = {
        "storage": {
            "seal_max_rows": EVENTS_PER_HOUR,
            "seal_max_age_secs": 3600,
            "partition_width_secs": 3600,
        },
        # The rows carry span ids and durations, which would give the dataset the
        # default `requests` rollup: these tests check the raw path.
        "rollup_defaults": {"traces": False},
    }
    if query:
        config["query"] = query
    server = module_quarry(config=config)
    rng = random.Random(20240301)
    events = []
    for hour in range(SEALED_HOURS):
        hour_events = make_events(hour, EVENTS_PER_HOUR, rng)
        server.send_batch_ok(DATASET, as_batch(hour_events))
        server.seal()
        events += hour_events
    wait_for_segments(server, SEALED_HOURS)
    buffered = make_events(SEALED_HOURS, BUFFERED_EVENTS, rng)
    server.send_batch_ok(DATASET, as_batch(buffered))
    events += buffered

    return server, oracle_db(events)


def oracle_db(events: list[dict]):
    """DuckDB over `events`: the oracle's answers."""
    db = duckdb.connect()
    db.execute(
        """CREATE TABLE oracle (ts_ns BIGINT, sample_rate BIGINT, service VARCHAR,
           route VARCHAR, status BIGINT, duration_ms DOUBLE, "user" VARCHAR, flag BOOLEAN,
           trace_id VARCHAR, span_id VARCHAR)"""
    )
    db.executemany(
        "INSERT INTO oracle VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                ev["ts_ns"],
                ev["samplerate"],
                ev["data"].get("service"),
                ev["data"]["route"],
                ev["data"]["status"],
                ev["data"].get("duration_ms"),
                ev["data"]["user"],
                ev["data"]["flag"],
                ev["data"].get("trace.trace_id"),
                ev["data"].get("trace.span_id"),
            )
            for ev in events
        ],
    )
    return db


def query(server: Quarry, spec: dict, dataset: str = DATASET) -> dict:
    body = {"start_time": BASE_S, "end_time": END_S, **spec}
    resp = server.post(f"/api/v1/query/{dataset}", json.dumps(body))
    assert resp.status_code == 200, f"{spec} -> {resp.status_code}: {resp.text[:1000]}"
    return resp.json()


def sql_literal(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def sql_column(name: str) -> str:
    return '"user"' if name == "user" else name


def filter_sql(f: dict) -> str:
    """A Honeycomb filter as DuckDB SQL (negative ops also match missing values)."""
    c, op, v = sql_column(f["column"]), f["op"], f.get("value")
    text = f"CAST({c} AS VARCHAR)"
    positive = {
        "=": lambda: f"{c} = {sql_literal(v)}",
        "!=": lambda: f"{c} = {sql_literal(v)}",
        ">": lambda: f"{c} > {sql_literal(v)}",
        ">=": lambda: f"{c} >= {sql_literal(v)}",
        "<": lambda: f"{c} < {sql_literal(v)}",
        "<=": lambda: f"{c} <= {sql_literal(v)}",
        "starts-with": lambda: f"starts_with({text}, {sql_literal(v)})",
        "does-not-start-with": lambda: f"starts_with({text}, {sql_literal(v)})",
        "ends-with": lambda: f"suffix({text}, {sql_literal(v)})",
        "does-not-end-with": lambda: f"suffix({text}, {sql_literal(v)})",
        "contains": lambda: f"contains({text}, {sql_literal(v)})",
        "does-not-contain": lambda: f"contains({text}, {sql_literal(v)})",
        "in": lambda: f"{c} IN ({', '.join(map(sql_literal, v or []))})",
        "not-in": lambda: f"{c} IN ({', '.join(map(sql_literal, v or []))})",
        "exists": lambda: f"{c} IS NOT NULL",
        "does-not-exist": lambda: f"{c} IS NULL",
    }[op]()
    if op in ("!=", "does-not-start-with", "does-not-end-with", "does-not-contain", "not-in"):
        return f"({c} IS NULL OR NOT ({positive}))"
    return f"({positive})"


AGGREGATES = {
    "COUNT": lambda c: "SUM(sample_rate)",
    "SUM": lambda c: f"SUM({c} * sample_rate)",
    "AVG": lambda c: f"SUM({c} * sample_rate) / SUM(CASE WHEN {c} IS NOT NULL THEN sample_rate END)",
    "MIN": lambda c: f"MIN({c})",
    "MAX": lambda c: f"MAX({c})",
    "COUNT_DISTINCT": lambda c: f"COUNT(DISTINCT {c})",
}


def calc_name(calc: dict) -> str:
    return calc["op"] if calc["op"] == "COUNT" else f"{calc['op']}({calc['column']})"


def oracle_groups(db, spec: dict) -> list[tuple[tuple, dict]]:
    """(key, values) per group, from DuckDB, unordered."""
    calcs = spec.get("calculations", [{"op": "COUNT"}])
    breakdowns = spec.get("breakdowns", [])
    joiner = " OR " if spec.get("filter_combination") == "OR" else " AND "
    where = joiner.join(filter_sql(f) for f in spec.get("filters", [])) or "true"
    keys = [sql_column(b) for b in breakdowns]
    selects = keys + [AGGREGATES[c["op"]](sql_column(c.get("column", ""))) for c in calcs]
    sql = f"SELECT {', '.join(selects)} FROM oracle WHERE {where}"
    if keys:
        sql += f" GROUP BY {', '.join(keys)}"
    rows = db.execute(sql).fetchall()
    out = []
    for row in rows:
        key = tuple(row[: len(keys)])
        values = {calc_name(c): row[len(keys) + i] for i, c in enumerate(calcs)}
        if not keys and values.get("COUNT") is None:
            values["COUNT"] = 0
        out.append((key, values))
    return out


def close(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    return math.isclose(float(a), float(b), rel_tol=FLOAT_REL, abs_tol=1e-9)


def assert_same_groups(result: dict, expected: list[tuple[tuple, dict]], breakdowns: list[str]) -> None:
    got = {tuple(g["key"][b] for b in breakdowns): g["values"] for g in result["groups"]}
    want = dict(expected)
    assert set(got) == set(want), f"groups differ: {sorted(map(str, set(got) ^ set(want)))}"
    for key, values in want.items():
        for name, value in values.items():
            assert close(got[key][name], value), f"{key} {name}: quarry {got[key][name]} duckdb {value}"


ALL_CALCS = [
    {"op": "COUNT"},
    {"op": "SUM", "column": "duration_ms"},
    {"op": "AVG", "column": "duration_ms"},
    {"op": "MIN", "column": "duration_ms"},
    {"op": "MAX", "column": "status"},
    {"op": "COUNT_DISTINCT", "column": "user"},
]


def test_sealed_and_buffered_rows_are_all_counted(loaded):
    server, db = loaded
    result = query(server, {"calculations": ALL_CALCS})
    [(_, want)] = oracle_groups(db, {"calculations": ALL_CALCS})
    assert len(result["groups"]) == 1 and result["groups"][0]["key"] == {}
    for name, value in want.items():
        assert close(result["groups"][0]["values"][name], value), name
        assert close(result["totals"][name], value), name
    rows = db.execute("SELECT count(*) FROM oracle").fetchone()[0]
    assert result["stats"]["rows_matched"] == rows == SEALED_HOURS * EVENTS_PER_HOUR + BUFFERED_EVENTS


@pytest.mark.parametrize("breakdowns", [["service"], ["service", "route"], ["flag", "status"]])
def test_every_calculation_by_breakdowns(loaded, breakdowns):
    server, db = loaded
    spec = {"calculations": ALL_CALCS, "breakdowns": breakdowns}
    result = query(server, spec)
    assert_same_groups(result, oracle_groups(db, spec), breakdowns)


FILTERS = [
    {"column": "service", "op": "=", "value": "api"},
    {"column": "service", "op": "!=", "value": "api"},
    {"column": "status", "op": ">", "value": 201},
    {"column": "status", "op": ">=", "value": "404"},
    {"column": "duration_ms", "op": "<", "value": 10},
    {"column": "duration_ms", "op": "<=", "value": 20.5},
    {"column": "route", "op": "starts-with", "value": "/r/1"},
    {"column": "route", "op": "does-not-start-with", "value": "/r/1"},
    {"column": "service", "op": "ends-with", "value": "svc"},
    {"column": "service", "op": "does-not-end-with", "value": "i"},
    {"column": "duration_ms", "op": "exists"},
    {"column": "service", "op": "does-not-exist"},
    {"column": "user", "op": "contains", "value": "-1"},
    {"column": "service", "op": "does-not-contain", "value": "a"},
    {"column": "status", "op": "in", "value": [500, 503]},
    {"column": "service", "op": "not-in", "value": ["api", "web"]},
    {"column": "flag", "op": "=", "value": True},
]


@pytest.mark.parametrize("flt", FILTERS, ids=lambda f: f["op"])
def test_every_filter_op(loaded, flt):
    server, db = loaded
    spec = {
        "calculations": [{"op": "COUNT"}, {"op": "SUM", "column": "duration_ms"}],
        "breakdowns": ["service"],
        "filters": [flt],
    }
    result = query(server, spec)
    expected = oracle_groups(db, spec)
    assert expected, "the oracle matched nothing: the filter tests nothing"
    assert_same_groups(result, expected, ["service"])


@pytest.mark.parametrize("combination", ["AND", "OR"])
def test_filter_combinations(loaded, combination):
    server, db = loaded
    spec = {
        "breakdowns": ["route"],
        "filters": [
            {"column": "status", "op": "=", "value": 500},
            {"column": "service", "op": "in", "value": ["db", "cache"]},
        ],
        "filter_combination": combination,
    }
    assert_same_groups(query(server, spec), oracle_groups(db, spec), ["route"])


def test_orders_havings_and_limits(loaded):
    server, db = loaded
    spec = {
        "calculations": [{"op": "COUNT"}, {"op": "AVG", "column": "duration_ms"}],
        "breakdowns": ["service", "route"],
        "havings": [{"calculate_op": "COUNT", "op": ">", "value": 40}],
        "orders": [{"op": "AVG", "column": "duration_ms", "order": "descending"}],
        "limit": 7,
    }
    result = query(server, spec)
    expected = [
        (k, v) for k, v in oracle_groups(db, spec) if v["COUNT"] > 40 and v["AVG(duration_ms)"] is not None
    ]
    expected.sort(key=lambda kv: -kv[1]["AVG(duration_ms)"])
    assert len(expected) > 7, "the having must leave more groups than the limit"
    got = [(tuple(g["key"].values()), g["values"]) for g in result["groups"]]
    assert [k for k, _ in got] == [k for k, _ in expected[:7]]
    for (_, g), (_, w) in zip(got, expected):
        assert close(g["AVG(duration_ms)"], w["AVG(duration_ms)"])
    # The series holds only the top groups, and sums back to their counts.
    top = {k for k, _ in got}
    series_keys = {tuple(p["key"].values()) for p in result["series"]}
    assert series_keys == top
    for key, values in got:
        total = sum(p["values"]["COUNT"] for p in result["series"] if tuple(p["key"].values()) == key)
        assert total == values["COUNT"]

    ascending = query(server, {"breakdowns": ["service"], "orders": [{"column": "service", "order": "ascending"}], "limit": 2})
    assert [g["key"]["service"] for g in ascending["groups"]] == ["api", "auth-svc"]
    by_count = query(server, {"breakdowns": ["route"], "orders": [{"op": "COUNT", "order": "ascending"}]})
    counts = [g["values"]["COUNT"] for g in by_count["groups"]]
    assert counts == sorted(counts) and len(counts) == len(ROUTES)


def test_time_series_match_duckdb_buckets(loaded):
    server, db = loaded
    granularity = 600
    result = query(server, {"breakdowns": ["service"], "granularity": granularity, "calculations": [{"op": "COUNT"}, {"op": "MAX", "column": "duration_ms"}]})
    assert result["granularity"] == granularity
    g_ns = granularity * 1_000_000_000
    rows = db.execute(
        f"""SELECT (ts_ns // {g_ns}) * {granularity} AS t, service, SUM(sample_rate), MAX(duration_ms)
            FROM oracle GROUP BY t, service"""
    ).fetchall()
    want = {(t, s): (c, m) for t, s, c, m in rows}
    got = {(p["time"], p["key"]["service"]): (p["values"]["COUNT"], p["values"]["MAX(duration_ms)"]) for p in result["series"]}
    assert set(got) == set(want)
    for key, (count, mx) in want.items():
        assert got[key][0] == count and close(got[key][1], mx), key
    times = [p["time"] for p in result["series"]]
    assert times == sorted(times)


def test_usage_mode_is_unweighted(loaded):
    server, db = loaded
    result = query(server, {"usage_mode": True, "calculations": [{"op": "COUNT"}, {"op": "AVG", "column": "duration_ms"}]})
    count, avg = db.execute("SELECT count(*), avg(duration_ms) FROM oracle").fetchone()
    assert result["groups"][0]["values"]["COUNT"] == count
    assert close(result["groups"][0]["values"]["AVG(duration_ms)"], avg)


def test_all_datasets_includes_this_one(loaded):
    server, db = loaded
    result = query(server, {"breakdowns": ["meta.dataset"], "filters": [{"column": "meta.dataset", "op": "=", "value": DATASET}]}, dataset="__all__")
    total = db.execute("SELECT SUM(sample_rate) FROM oracle").fetchone()[0]
    [group] = result["groups"]
    assert group["key"] == {"meta.dataset": DATASET}
    assert group["values"] == {"COUNT": total}
    # Exemplars are real rows of this dataset.
    assert 1 <= len(group["exemplars"]) <= 3
    assert {e["dataset"] for e in group["exemplars"]} == {DATASET}


@pytest.mark.parametrize(
    "spec,field",
    [
        ({"calculations": [{"op": "COUNT"}, {"op": "P99", "column": "service"}]}, "calculations[1].column"),
        ({"calculations": [{"op": "NOPE"}]}, "calculations[0].op"),
        ({"filters": [{"column": "status", "op": "~", "value": 1}]}, "filters[0].op"),
        ({"filters": [{"column": "status", "op": "=", "value": "x"}]}, "filters[0].value"),
        ({"breakdowns": ["missing"]}, "breakdowns[0]"),
        ({"orders": [{"op": "MAX", "column": "status"}]}, "orders[0]"),
        ({"havings": [{"calculate_op": "COUNT", "op": ">", "value": "x"}]}, "havings[0].value"),
        ({"granularity": 1}, "granularity"),
        ({"limit": 0}, "limit"),
    ],
)
def test_bad_specs_are_400_naming_the_field(loaded, spec, field):
    server, _ = loaded
    body = {"start_time": BASE_S, "end_time": END_S, **spec}
    resp = server.post(f"/api/v1/query/{DATASET}", json.dumps(body))
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"].startswith(field + ":"), resp.json()


def test_unknown_dataset_is_404(loaded):
    server, _ = loaded
    assert server.post("/api/v1/query/nope", "{}").status_code == 404


PERCENTILES = {"P001": 0.001, "P01": 0.01, "P05": 0.05, "P10": 0.1, "P20": 0.2, "P25": 0.25, "P50": 0.5,
               "P75": 0.75, "P80": 0.8, "P90": 0.9, "P95": 0.95, "P99": 0.99, "P999": 0.999}


def weighted_rank_bounds(values: list[tuple[float, int]], q: float) -> tuple[float, float]:
    """The values at the ranks a q-quantile of the weighted data may take: every event
    counts sample_rate times; any rank between floor(q*(n-1)) and ceil(q*n) is allowed
    (the usual definitions differ within that span)."""
    expanded = sorted(v for v, w in values for _ in range(w))
    n = len(expanded)
    lo = max(0, min(n - 1, math.floor(q * (n - 1))))
    hi = max(0, min(n - 1, math.ceil(q * n)))
    return expanded[lo], expanded[hi]


# quarry_quantile's documented bound: within 1% relative error of a true quantile.
@pytest.mark.parametrize("name", list(PERCENTILES))
def test_percentiles_within_the_documented_bound(loaded, name):
    server, db = loaded
    q = PERCENTILES[name]
    calc = {"op": name, "column": "duration_ms"}
    result = query(server, {"calculations": [calc], "breakdowns": ["service"]})
    rows = db.execute(
        "SELECT service, duration_ms, sample_rate FROM oracle WHERE duration_ms IS NOT NULL"
    ).fetchall()
    by_service: dict = {}
    for service, value, rate in rows:
        by_service.setdefault(service, []).append((value, rate))
    got = {g["key"]["service"]: g["values"][f"{name}(duration_ms)"] for g in result["groups"]}
    assert set(got) == set(by_service)
    for service, values in by_service.items():
        lo, hi = weighted_rank_bounds(values, q)
        value = got[service]
        assert lo * (1 - PERCENTILE_REL_ERROR) <= value <= hi * (1 + PERCENTILE_REL_ERROR), (
            f"{service} {name}: quarry {value}, true value between {lo} and {hi}"
        )


def test_rates_between_consecutive_events(loaded):
    server, db = loaded
    spec = {"calculations": [{"op": "RATE_SUM", "column": "status"}, {"op": "RATE_MAX", "column": "status"},
                             {"op": "RATE_AVG", "column": "status"}], "breakdowns": ["route"]}
    result = query(server, spec)
    rows = db.execute(
        """SELECT route, SUM(r), MAX(r), AVG(r) FROM (
             SELECT route, (status - lag(status) OVER w) / ((ts_ns - lag(ts_ns) OVER w) / 1e9) AS r
             FROM oracle WINDOW w AS (PARTITION BY route ORDER BY ts_ns)) GROUP BY route"""
    ).fetchall()
    want = {(r,): {"RATE_SUM(status)": s, "RATE_MAX(status)": m, "RATE_AVG(status)": a} for r, s, m, a in rows}
    got = {(g["key"]["route"],): g["values"] for g in result["groups"]}
    assert set(got) == set(want)
    for key, values in want.items():
        for name, value in values.items():
            assert math.isclose(got[key][name], value, rel_tol=1e-6), (key, name, got[key][name], value)


def test_drill_down_pages_through_a_group_newest_first(loaded):
    server, db = loaded
    spec = {"start_time": BASE_S, "end_time": END_S, "filters": [{"column": "status", "op": "=", "value": 500}]}
    want = [
        r[0]
        for r in db.execute(
            "SELECT ts_ns FROM oracle WHERE status = 500 AND service = 'db' ORDER BY ts_ns DESC"
        ).fetchall()
    ]
    assert len(want) > 25
    seen, cursor, pages = [], None, 0
    while True:
        body = {"query": spec, "group": {"service": "db"}, "limit": 10, "cursor": cursor}
        resp = server.post(f"/api/v1/query/{DATASET}/events", json.dumps(body))
        assert resp.status_code == 200, resp.text
        page = resp.json()
        pages += 1
        for event in page["events"]:
            assert event["fields"]["service"] == "db" and event["fields"]["status"] == 500
            seen.append(rfc3339_to_ns(event["timestamp"]))
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert len(page["events"]) == 10
    assert seen == want
    assert pages == math.ceil(len(want) / 10)

    # A null group value selects the events without the column; a cell narrows values and time.
    body = {"query": spec, "group": {"service": None}, "cell": {"column": "duration_ms", "min": 5, "max": 50,
            "start_time": BASE_S, "end_time": BASE_S + HOUR_S}, "limit": 1000}
    page = server.post(f"/api/v1/query/{DATASET}/events", json.dumps(body)).json()
    count = db.execute(
        f"""SELECT count(*) FROM oracle WHERE status = 500 AND service IS NULL AND duration_ms BETWEEN 5 AND 50
            AND ts_ns < {(BASE_S + HOUR_S) * 1_000_000_000}"""
    ).fetchone()[0]
    assert count > 0 and len(page["events"]) == count and page["next_cursor"] is None
    assert all("service" not in e["fields"] for e in page["events"])

    bad = server.post(f"/api/v1/query/{DATASET}/events", json.dumps({"query": {"filters": [{"column": "x", "op": "="}]}}))
    assert bad.status_code == 400 and bad.json()["error"].startswith("query.filters[0].value:"), bad.text
    bad = server.post(f"/api/v1/query/{DATASET}/events", json.dumps({"query": {}, "cursor": "zzz"}))
    assert bad.status_code == 400 and bad.json()["error"].startswith("cursor:"), bad.text


def test_query_data_api_shapes(loaded):
    server, db = loaded
    spec = {"start_time": BASE_S, "end_time": END_S, "granularity": 3600, "breakdowns": ["service"],
            "calculations": [{"op": "COUNT"}, {"op": "MAX", "column": "status"}], "orders": [{"column": "service"}]}
    saved = server.post(f"/1/queries/{DATASET}", json.dumps(spec))
    assert saved.status_code == 200, saved.text
    saved = saved.json()
    assert saved["breakdowns"] == ["service"] and isinstance(saved["id"], str)
    created = server.post(f"/1/query_results/{DATASET}", json.dumps({"query_id": saved["id"]}))
    assert created.status_code == 201, created.text
    created = created.json()
    assert created["complete"] is True
    results = created["data"]["results"]
    counts = dict(db.execute("SELECT service, SUM(sample_rate) FROM oracle GROUP BY service").fetchall())
    assert [r["data"]["service"] for r in results] == ["api", "auth-svc", "cache", "db", "web", None]
    assert {r["data"]["service"]: r["data"]["COUNT"] for r in results} == counts
    series = created["data"]["series"]
    assert {s["time"] for s in series} == {f"2024-03-01T0{h}:00:00Z" for h in range(SEALED_HOURS + 1)}
    assert sum(s["data"]["COUNT"] for s in series) == sum(counts.values())
    again = server.get(f"/1/query_results/{DATASET}/{created['id']}")
    assert again.status_code == 200 and again.json() == created
    assert server.get(f"/1/query_results/{DATASET}/nope").status_code == 404
    assert server.post(f"/1/query_results/{DATASET}", json.dumps({"query_id": "nope"})).status_code == 404


@pytest.mark.parametrize("column", ["duration_ms", "status"])
def test_heatmap_bucket_counts(loaded, column):
    server, db = loaded
    granularity = 1800
    spec = {"calculations": [{"op": "HEATMAP", "column": column}], "granularity": granularity,
            "filters": [{"column": "service", "op": "!=", "value": "web"}]}
    result = query(server, spec)
    [heatmap] = result["heatmaps"]
    assert heatmap["name"] == f"HEATMAP({column})"
    buckets = heatmap["buckets"]
    assert [b["index"] for b in buckets] == list(range(len(buckets)))
    assert all(a["upper"] == b["lower"] for a, b in zip(buckets, buckets[1:]))
    where = f"{column} IS NOT NULL AND (service IS NULL OR service != 'web')"
    lo, hi = db.execute(f"SELECT min({column}), max({column}) FROM oracle WHERE {where}").fetchone()
    assert buckets[0]["lower"] <= lo and hi <= buckets[-1]["upper"]
    g_ns = granularity * 1_000_000_000
    want_cells: dict = {}
    want_totals: dict = {}
    for b in buckets:
        upper_op = "<=" if b["index"] == len(buckets) - 1 else "<"
        rows = db.execute(
            f"""SELECT (ts_ns // {g_ns}) * {granularity} AS t, SUM(sample_rate) FROM oracle
                WHERE {where} AND {column} >= {b['lower']!r} AND {column} {upper_op} {b['upper']!r}
                GROUP BY t"""
        ).fetchall()
        for t, count in rows:
            want_cells[(t, b["index"])] = count
            want_totals[b["index"]] = want_totals.get(b["index"], 0) + count
    got_cells = {(c["time"], c["bucket"]): c["count"] for c in heatmap["cells"]}
    assert got_cells == want_cells
    assert {t["bucket"]: t["count"] for t in heatmap["totals"]} == want_totals
    assert heatmap["times"] == list(range(BASE_S, END_S, granularity))


def test_a_breakdown_over_no_matching_rows_is_an_empty_answer(loaded):
    server, _ = loaded
    spec = {
        "calculations": [{"op": "COUNT"}],
        "breakdowns": ["service"],
        "filters": [{"column": "service", "op": "=", "value": "no-such-service"}],
    }
    result = query(server, spec)
    assert result["groups"] == []
    assert result["series"] == []
