"""The comparison questions asked through the query-spec API (issue 14), the path
behind the web UI: `POST /api/v1/query/__all__` with a spec, next to the SQL that
yields the same groups and series in every engine.

A spec answer holds groups (whole range) and a series per group (one point per time
bucket of `granularity` seconds). "Same groups and series" SQL therefore groups by
the breakdown keys *and* the time bucket; where a group's value cannot be derived
from its series (P99, COUNT_DISTINCT), the SQL asks for the groups as well through
`GROUPING SETS ((keys), (keys, t))`; where it can (COUNT), the groups are the sums
of the series. A top-N spec keeps the series of its top N groups only, so its SQL
ranks the (key, bucket) aggregates by the key's total and keeps the top N keys'.

Every spec sets `granularity` explicitly (the window in HEATMAP_TIME_BUCKETS
buckets, as the heatmap question) so that all engines use the same, epoch-aligned
bucket edges, and `"source": "raw"`: the spec path over raw rows is what issue 14
measures (rollups are timed in their own section; a rollup finishing between two
runs would otherwise change which path a run takes).

Weights: the spec's COUNT (and HEATMAP counts, and percentiles) are weighted by
`meta.sample_rate`. Every SQL below sums `meta.sample_rate` for its counts, so all
engines weigh the same way. The generator (crates/datagen) sends no sample rate
(no `samplerate` in its batch items, no X-Honeycomb-Samplerate header), so every
row's rate is 1 and the SQL's unweighted percentiles equal the weighted ones;
`run.py` checks that (min and max of `meta.sample_rate`) and says so in the report.

Answers are compared in one canonical form per question (the `canon_*` functions):
group rows ("g", None, key..., values...) and series rows ("s", t, key..., values...),
sorted; counts must be equal, P99s within questions.P99_TOLERANCE. The heatmap's
value buckets are Quarry's own (chosen per query from the column's range), so
heatmap answers are compared by their total weight per time bucket.
"""

import json
from dataclasses import dataclass, field
from typing import Callable

import requests

from . import questions
from .questions import HEATMAP_STEPS_PER_OCTAVE, HEATMAP_TIME_BUCKETS, P99_TOLERANCE, Sources

QUERY_TIMEOUT_S = 600
# A series point's P99 is compared only when the point holds at least this much
# weight: below it the tail is a handful of events, and the engines' estimators
# (t-digest interpolation; the spec's "a value with at least 99 % at or below it")
# legitimately pick values far apart. Group P99s (whole range) are always compared.
MIN_SERIES_P99_WEIGHT = 1000
# Buckets of the spec's series: the range in this many (as the heatmap question).
SERIES_BUCKETS = HEATMAP_TIME_BUCKETS
SPEC_DATASET = "__all__"


@dataclass
class SpecQuestion:
    key: str                # e.g. "spec_top10_customer"
    base: str               # the SQL question it mirrors (questions.build's key)
    title: str
    body: dict              # the query spec
    columns: list[str]      # the SQL answer's columns
    sql: dict[str, str]     # "same groups and series" SQL per engine
    from_sql: Callable[[list[tuple]], list[tuple]]
    from_spec: Callable[[dict], list[tuple]]
    approx_columns: dict[int, float] = field(default_factory=dict)


class SpecEngine:
    """Quarry over its query-spec endpoint; answers are the response JSON."""

    name = "spec"

    def __init__(self, url: str, dataset: str = SPEC_DATASET):
        self.endpoint = f"{url}/api/v1/query/{dataset}"
        self.session = requests.Session()

    def query_raw(self, body: dict) -> bytes:
        """The response body, read to its last byte (what is timed: the server's work
        and JSON encoding and the transfer, not this client's JSON decoding)."""
        response = self.session.post(self.endpoint, json=body, timeout=QUERY_TIMEOUT_S)
        if response.status_code != 200:
            raise RuntimeError(f"quarry spec {response.status_code}: {response.text[:500]}")
        return response.content

    def query(self, body: dict) -> dict:
        return json.loads(self.query_raw(body))

    def version(self) -> str:
        return "(this build)"

    def close(self) -> None:
        self.session.close()


# --- SQL pieces per engine -------------------------------------------------------

def _bucket(engine: str, g: int) -> str:
    """The epoch-aligned time bucket start (Unix seconds) of `timestamp`, as the
    heatmap question computes it."""
    return {
        "quarry": f'to_unixtime("timestamp") / {g} * {g}',
        "duckdb": f'epoch_ms("timestamp") // {g * 1000} * {g}',
        "chdb": f'intDiv(toUnixTimestamp("timestamp"), {g}) * {g}',
    }[engine]


def _range(engine: str, start_s: int, end_s: int) -> str:
    """`start_s <= timestamp < end_s`, as the spec's start_time / end_time."""
    return {
        "quarry": f'"timestamp" >= to_timestamp_seconds({start_s}) AND "timestamp" < to_timestamp_seconds({end_s})',
        "duckdb": f'"timestamp" >= to_timestamp({start_s}) AND "timestamp" < to_timestamp({end_s})',
        "chdb": f'"timestamp" >= toDateTime64({start_s}, 9, \'UTC\') AND "timestamp" < toDateTime64({end_s}, 9, \'UTC\')',
    }[engine]


def _p99(engine: str) -> str:
    return {
        "quarry": "approx_percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms)",
        "duckdb": "approx_quantile(duration_ms, 0.99)",
        "chdb": "quantileTDigest(0.99)(duration_ms)",
    }[engine]


def _distinct(engine: str, column: str) -> str:
    return f"uniqExact({column})" if engine == "chdb" else f"count(DISTINCT {column})"


WEIGHT = 'sum("meta.sample_rate")'
ENGINES = ("quarry", "duckdb", "chdb")


def _from(sources: Sources, engine: str, columns: list[str], where: str) -> str:
    """The FROM clause and WHERE of every event of every dataset."""
    if engine == "quarry":
        return sources.quarry(columns, where)
    return (sources.duckdb() if engine == "duckdb" else sources.chdb()) + f" WHERE {where}"


# --- canonical answers -----------------------------------------------------------

def _sort_key(row: tuple) -> tuple:
    """Rows with None and mixed types in a stable order (None first)."""
    return tuple((v is not None, str(type(v).__name__) if v is not None else "", v if v is not None else 0)
                 for v in row)


def _canon(rows: list[tuple]) -> list[tuple]:
    return sorted(questions.normalize(rows), key=_sort_key)


def _is_group_row(t) -> bool:
    # GROUPING SETS rows without the time bucket: NULL (DataFusion, DuckDB, ClickHouse
    # over Nullable columns) or the type's default 0 (ClickHouse otherwise).
    return t is None or t == 0


def _spec_groups_and_series(answer: dict, keys: list[str], values: list[str]) -> list[tuple]:
    rows = [("g", None, *(g["key"].get(k) for k in keys), *(g["values"].get(v) for v in values))
            for g in answer["groups"]]
    rows += [("s", p["time"], *(p["key"].get(k) for k in keys), *(p["values"].get(v) for v in values))
             for p in answer["series"]]
    return _canon(rows)


def _mask_small_series_p99(rows: list[tuple]) -> list[tuple]:
    """Rows ("g"|"s", t, key, n, p99) with the P99 of light series points left out
    of the comparison (see MIN_SERIES_P99_WEIGHT)."""
    return _canon([(kind, t, key, n, None if kind == "s" and (n or 0) < MIN_SERIES_P99_WEIGHT else p)
                   for kind, t, key, n, p in questions.normalize(rows)])


def _sql_series_with_summed_groups(rows: list[tuple]) -> list[tuple]:
    """SQL rows (key..., t, n) of a COUNT: the series, and each group as the sum of its series."""
    series, groups = [], {}
    for *key, t, n in questions.normalize(rows):
        series.append(("s", t, *key, n))
        groups[tuple(key)] = groups.get(tuple(key), 0) + (n or 0)
    return _canon(series + [("g", None, *k, n) for k, n in groups.items()])


def build(sources: Sources, start_s: int, end_s: int) -> list[SpecQuestion]:
    """The spec questions for data spanning [start_s, end_s] (Unix seconds), the same
    range as questions.build's."""
    # The spec's end_time is exclusive; the last event lies within end_s's second.
    begin, end = start_s, end_s + 1
    g = max(1, (end_s - start_s) // SERIES_BUCKETS)
    hour_begin = end_s - 3600
    hour_g = max(1, 3600 // SERIES_BUCKETS)
    base = {"start_time": begin, "end_time": end, "granularity": g, "source": "raw"}
    out = []

    # Heatmap: time bucket x value bucket. The spec's value buckets are its own, so
    # answers are compared by weight per time bucket.
    steps = HEATMAP_STEPS_PER_OCTAVE
    value_bucket = {
        "quarry": f"CAST(floor(log2(greatest(duration_ms, 0.001)) * {steps}) AS BIGINT)",
        "duckdb": f"CAST(floor(log2(greatest(duration_ms, 0.001)) * {steps}) AS BIGINT)",
        "chdb": f"toInt64(floor(log2(greatest(duration_ms, 0.001)) * {steps}))",
    }
    sql = {}
    for e in ENGINES:
        where = f"{_range(e, begin, end)} AND duration_ms IS NOT NULL"
        sql[e] = f"""
            SELECT {_bucket(e, g)} AS t, {value_bucket[e]} AS b, {WEIGHT} AS n
            FROM {_from(sources, e, ["timestamp", "duration_ms", "meta.sample_rate"], where)}
            GROUP BY t, b ORDER BY t, b"""

    def heatmap_from_sql(rows):
        per_t = {}
        for t, _b, n in questions.normalize(rows):
            per_t[t] = per_t.get(t, 0) + n
        return _canon(list(per_t.items()))

    def heatmap_from_spec(answer):
        per_t = {}
        for cell in answer["heatmaps"][0]["cells"]:
            per_t[cell["time"]] = per_t.get(cell["time"], 0) + cell["count"]
        return _canon(list(per_t.items()))

    out.append(SpecQuestion(
        "spec_heatmap", "heatmap", "HEATMAP(duration_ms) over all events",
        dict(base, calculations=[{"op": "HEATMAP", "column": "duration_ms"}]),
        ["t", "b", "n"], sql, heatmap_from_sql, heatmap_from_spec))

    # COUNT, P99 by service.name: groups and series both carry a P99, so the SQL asks
    # for both grouping sets.
    sql = {}
    for e in ENGINES:
        src = _from(sources, e, ["service.name", "timestamp", "duration_ms", "meta.sample_rate"], _range(e, begin, end))
        sql[e] = f"""
            SELECT "service.name" AS s, {_bucket(e, g)} AS t, {WEIGHT} AS n, {_p99(e)} AS p99
            FROM {src}
            GROUP BY GROUPING SETS ((s), (s, t)) ORDER BY s, t"""

    def by_service_from_sql(rows):
        return _mask_small_series_p99(
            [("g", None, s, n, p) if _is_group_row(t) else ("s", t, s, n, p)
             for s, t, n, p in questions.normalize(rows)])

    out.append(SpecQuestion(
        "spec_count_p99_by_service", "count_p99_by_service", "COUNT, P99(duration_ms) by service.name",
        dict(base, calculations=[{"op": "COUNT"}, {"op": "P99", "column": "duration_ms"}],
             breakdowns=["service.name"]),
        ["s", "t", "n", "p99"], sql, by_service_from_sql,
        lambda a: _mask_small_series_p99(_spec_groups_and_series(a, ["service.name"], ["COUNT", "P99(duration_ms)"])),
        approx_columns={4: P99_TOLERANCE}))

    # COUNT where error by http.route, last hour: COUNT only, groups = sums of series.
    sql = {}
    for e in ENGINES:
        cond = f"{_range(e, hour_begin, end)} AND error = true"
        src = _from(sources, e, ["http.route", "error", "timestamp", "meta.sample_rate"], cond)
        sql[e] = f"""
            SELECT "http.route" AS r, {_bucket(e, hour_g)} AS t, {WEIGHT} AS n
            FROM {src} GROUP BY r, t ORDER BY r, t"""
    out.append(SpecQuestion(
        "spec_errors_by_route_last_hour", "errors_by_route_last_hour", "COUNT where error by http.route, last hour",
        {"start_time": hour_begin, "end_time": end, "granularity": hour_g, "source": "raw",
         "calculations": [{"op": "COUNT"}], "breakdowns": ["http.route"],
         "filters": [{"column": "error", "op": "=", "value": True}]},
        ["r", "t", "n"], sql, _sql_series_with_summed_groups,
        lambda a: _spec_groups_and_series(a, ["http.route"], ["COUNT"])))

    # Top 10 customer_id by COUNT: the (key, bucket) counts once, each key's total
    # over its buckets, the top 10 keys (ties by key ascending, as the spec) and their
    # series. One aggregation over the data in every engine.
    sql = {}
    for e in ENGINES:
        src = _from(sources, e, ["customer_id", "timestamp", "meta.sample_rate"], _range(e, begin, end))
        sql[e] = f"""
            SELECT c, t, n FROM (
                SELECT c, t, n, dense_rank() OVER (ORDER BY total DESC, c) AS r FROM (
                    SELECT c, t, n, sum(n) OVER (PARTITION BY c) AS total FROM (
                        SELECT customer_id AS c, {_bucket(e, g)} AS t, {WEIGHT} AS n
                        FROM {src} GROUP BY c, t
                    ) AS buckets
                ) AS totals
            ) AS ranked
            WHERE r <= 10 ORDER BY c, t"""
    out.append(SpecQuestion(
        "spec_top10_customer", "top10_customer", "top 10 customer_id by COUNT (100,000 values)",
        dict(base, calculations=[{"op": "COUNT"}], breakdowns=["customer_id"],
             orders=[{"op": "COUNT", "order": "descending"}], limit=10),
        ["c", "t", "n"], sql, _sql_series_with_summed_groups,
        lambda a: _spec_groups_and_series(a, ["customer_id"], ["COUNT"])))

    # COUNT_DISTINCT(customer_id): the whole range's count is not the sum of the
    # buckets', so the SQL asks for both grouping sets.
    sql = {}
    for e in ENGINES:
        src = _from(sources, e, ["customer_id", "timestamp"], _range(e, begin, end))
        sql[e] = f"""
            SELECT {_bucket(e, g)} AS t, {_distinct(e, "customer_id")} AS n
            FROM {src} GROUP BY GROUPING SETS ((), (t)) ORDER BY t"""

    def distinct_from_sql(rows):
        return _canon([("g", None, n) if _is_group_row(t) else ("s", t, n) for t, n in questions.normalize(rows)])

    out.append(SpecQuestion(
        "spec_count_distinct_customer", "count_distinct_customer", "COUNT_DISTINCT(customer_id)",
        dict(base, calculations=[{"op": "COUNT_DISTINCT", "column": "customer_id"}]),
        ["t", "n"], sql, distinct_from_sql,
        lambda a: _spec_groups_and_series(a, [], ["COUNT_DISTINCT(customer_id)"])))
    return out


def body_text(body: dict) -> str:
    return json.dumps(body, separators=(",", ":"))
