"""The query spec's one-pass answer checked against DuckDB (issue 14).

A spec answer (totals, top-N groups, the top groups' series, exemplars, heatmaps)
comes from one aggregation over (time bucket, breakdown keys) whose partial states
are merged by coarser keys, or, for breakdowns of many values, from two: groups by
keys alone, then the top groups' rows by (time bucket, keys). Every test runs
against both (a second server whose threshold sends most breakdowns here to two
passes). These tests cover what that changes: top-N selection
where the limit cuts through a tie, series of groups present in only some buckets,
exemplars per group and per heatmap cell, heatmap cells and weights. They run on
the `loaded` data of test_query_oracle.py (three sealed segments, one per hour,
plus rows still in the buffer), every answer compared with DuckDB over the same rows.

The documented rules tested (docs/query.md, docs/functions.md):
- groups rank by their order, ties broken on the breakdown values ascending, then
  the first `limit` are kept, and the series holds exactly those groups;
- a series has one point per (time bucket, group) with rows, no other;
- each group / heatmap cell carries up to three real events of it, with their
  trace and span ids: first the slowest (largest value of the first numeric
  calculation's column, the heatmap column for a cell), then the two with the
  smallest FNV-1a hash of their timestamp and value;
- heatmap buckets are at most 50 contiguous `[lower, upper)` covering the column's
  [min, max] over the matching rows (all rows, not only the top groups), whatever
  the scheme; cells and per-bucket totals are weighted counts of rows with the
  column, cell exemplars events of the cell.
"""

from __future__ import annotations

import math
import struct

import pytest

from harness import rfc3339_to_ns
from test_query_oracle import query as spec_query
from test_query_oracle import (
    AGGREGATES,
    BASE_S,
    DATASET,
    END_S,
    PERCENTILE_REL_ERROR,
    calc_name,
    close,
    filter_sql,
    load_oracle,
    oracle_groups,
    sql_column,
    weighted_rank_bounds,
)

# Breakdown values among a spec's first rows at which it answers in two passes
# (`[query] spec_many_groups`): low enough here that breakdowns by user (150
# values) and by (service, route) take two passes, by service or route one.
TWO_PASSES_AT = 16


@pytest.fixture(scope="module", params=["one-pass", "two-passes"])
def loaded(module_quarry, request):
    """The oracle's rows on a server answering every breakdown in one pass (the
    default threshold is far above these few hundred values), and on one that
    answers breakdowns of many values in two."""
    if request.param == "two-passes":
        return load_oracle(module_quarry, {"spec_many_groups": TWO_PASSES_AT})
    return load_oracle(module_quarry)


NS = 1_000_000_000
# Most exemplars per group or cell (docs/query.md, *Exemplars*).
MAX_EXEMPLARS = 3
ROW_COLUMNS = ["ts_ns", "sample_rate", "service", "route", "status", "duration_ms", '"user"', "flag",
               "trace_id", "span_id"]


def query(server, spec: dict) -> dict:
    """The answer of `spec`, from the raw rows (the one pass), not a rollup."""
    result = spec_query(server, spec)
    assert result["source"] == "raw", result["source"]
    return result


# --- DuckDB side --------------------------------------------------------------------------


def where_sql(spec: dict) -> str:
    joiner = " OR " if spec.get("filter_combination") == "OR" else " AND "
    return joiner.join(filter_sql(f) for f in spec.get("filters", [])) or "true"


def matching_rows(db, spec: dict) -> list[dict]:
    """Every row the spec's filters match, as dicts (column `user` as "user")."""
    rows = db.execute(f"SELECT {', '.join(ROW_COLUMNS)} FROM oracle WHERE {where_sql(spec)}").fetchall()
    names = [c.strip('"') for c in ROW_COLUMNS]
    return [dict(zip(names, row)) for row in rows]


def oracle_series(db, spec: dict) -> dict[tuple, dict]:
    """(bucket start s, key) -> {calculation name: value} for every (time bucket,
    group) with rows, from DuckDB. Percentiles are left out (see percentile_bounds)."""
    g = spec["granularity"]
    breakdowns = spec.get("breakdowns", [])
    calcs = [c for c in spec.get("calculations", [{"op": "COUNT"}]) if c["op"] in AGGREGATES]
    keys = [sql_column(b) for b in breakdowns]
    selects = [f"(ts_ns // {g * NS}) * {g} AS t", *keys]
    selects += [AGGREGATES[c["op"]](sql_column(c.get("column", ""))) for c in calcs]
    sql = f"SELECT {', '.join(selects)} FROM oracle WHERE {where_sql(spec)} GROUP BY {', '.join(['t', *keys])}"
    out = {}
    for row in db.execute(sql).fetchall():
        key = tuple(row[1 : 1 + len(keys)])
        out[(row[0], key)] = {calc_name(c): row[1 + len(keys) + i] for i, c in enumerate(calcs)}
    return out


def percentile_bounds(rows: list[dict], column: str, q: float, point_of) -> dict:
    """point_of(row) -> bounds (lo, hi) of the weighted q-quantile of `column` over
    the rows of that point, or None when none of them has the column."""
    values: dict = {}
    for row in rows:
        values.setdefault(point_of(row), [])
        if row[column] is not None:
            values[point_of(row)].append((row[column], row["sample_rate"]))
    return {b: (weighted_rank_bounds(v, q) if v else None) for b, v in values.items()}


def within_percentile(value, bounds) -> bool:
    if bounds is None:
        return value is None
    lo, hi = bounds
    return value is not None and lo * (1 - PERCENTILE_REL_ERROR) <= value <= hi * (1 + PERCENTILE_REL_ERROR)


def group_key(row: dict, breakdowns: list[str]) -> tuple:
    return tuple(row[b] for b in breakdowns)


def result_key(item: dict, breakdowns: list[str]) -> tuple:
    return tuple(item["key"][b] for b in breakdowns)


# --- exemplars ----------------------------------------------------------------------------


def exemplar_value(row: dict, value_column: str | None) -> float | None:
    value = row[value_column] if value_column else None
    return None if value is None or math.isnan(float(value)) else float(value)


MASK64 = 0xFFFFFFFFFFFFFFFF


def mix64(z: int) -> int:
    """splitmix64's finalizer."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def typical_hash(row: dict, value_column: str | None) -> int:
    """The hash a typical pick is chosen by: mix64(timestamp_ns ^ mix64(value bits)),
    the value 0.0 when missing (docs/query.md, *Exemplars*)."""
    value = exemplar_value(row, value_column)
    bits = struct.unpack("<Q", struct.pack("<d", 0.0 if value is None else value))[0]
    return mix64((row["ts_ns"] & MASK64) ^ mix64(bits))


def exemplar_column(spec: dict) -> str | None:
    """The column whose value an exemplar carries: the first calculation's column
    (the first calculation with a numeric column; COUNT has none)."""
    return next((c["column"] for c in spec.get("calculations", [])
                 if c["op"] not in ("COUNT", "COUNT_DISTINCT", "CONCURRENCY")), None)


def check_exemplars(exemplars: list[dict], candidates: list[dict], value_column: str | None, where: str) -> None:
    """`exemplars` are the documented picks among `candidates` (the rows of one group
    or cell): real events (same timestamp, ids and value), distinct, min(3, rows) of
    them, with the event's ids; the first is a slowest row (the smallest hash
    among equals), the others the smallest hashes."""
    by_ts = {row["ts_ns"]: row for row in candidates}
    assert len(by_ts) == len(candidates), "timestamps identify events"
    assert len(exemplars) == min(MAX_EXEMPLARS, len(candidates)), (
        f"{where}: {len(exemplars)} exemplars of {len(candidates)} rows: {exemplars}")
    picked = []
    for ex in exemplars:
        ts = rfc3339_to_ns(ex["timestamp"])
        assert ts in by_ts, f"{where}: exemplar {ex} is not an event of it"
        row = by_ts[ts]
        assert ex["dataset"] == DATASET, (where, ex)
        assert (ex["trace_id"], ex["span_id"]) == (row["trace_id"], row["span_id"]), (where, ex, row)
        want_value = row[value_column] if value_column else None
        assert close(ex["value"], want_value), f"{where}: exemplar value {ex['value']}, event has {want_value}"
        picked.append(row)
    assert len({row["ts_ns"] for row in picked}) == len(picked), f"{where}: an event picked twice: {exemplars}"

    # First the slowest: the largest value (a missing one last), then the hash.
    first = min(candidates, key=lambda row: (
        exemplar_value(row, value_column) is None,
        -(exemplar_value(row, value_column) or 0.0),
        typical_hash(row, value_column)))
    assert picked[0] is first, (
        f"{where}: first exemplar {picked[0]['ts_ns']}, the slowest row is {first['ts_ns']}")
    # Then the smallest hashes, the first pick aside.
    rest = sorted((row for row in candidates if row is not first),
                  key=lambda row: typical_hash(row, value_column))
    want = [row["ts_ns"] for row in rest[: len(picked) - 1]]
    assert [row["ts_ns"] for row in picked[1:]] == want, (
        f"{where}: typical picks {[r['ts_ns'] for r in picked[1:]]}, smallest hashes {want}")


# --- top N with ties ----------------------------------------------------------------------


def ranked(expected: list[tuple[tuple, dict]], name: str, descending: bool) -> list[tuple[tuple, dict]]:
    """Groups in the documented order: by `name` (descending or ascending), ties by
    the breakdown values ascending (a null key, which no tie here involves, last)."""
    def rank(kv):
        value = kv[1][name]
        return (-value if descending else value), tuple((v is None, v) for v in kv[0])
    return sorted(expected, key=rank)


def tie_cut(order: list[tuple[tuple, dict]], name: str, other_order=None) -> int:
    """A limit that cuts through a tie, keeping some of its groups and dropping
    others, past the first two groups. Preferred: a cut where breaking the tie by
    `other_order` (a key of the group key) would keep other groups; then one
    through a tie of three or more groups; else any."""
    def tied(limit):
        value = order[limit][1][name]
        return [k for k, v in order if v[name] == value], sum(v[name] == value for _, v in order[:limit])

    cuts = [limit for limit in range(2, len(order)) if order[limit - 1][1][name] == order[limit][1][name]]
    assert cuts, f"no tie to cut in {[(k, v[name]) for k, v in order]}"
    wide = [limit for limit in cuts if len(tied(limit)[0]) >= 3]
    telling = []
    if other_order is not None:
        for limit in wide:
            keys, kept = tied(limit)
            if set(sorted(keys)[:kept]) != set(sorted(keys, key=other_order)[:kept]):
                telling.append(limit)
    return (telling or wide or cuts)[0]


def user_number(key: tuple) -> int:
    """The number of a `user-N` key: the order bytes do not give."""
    return int(key[0].removeprefix("user-"))


TIE_SPECS = {
    # 150 users, about 9 events each: weighted counts tie often. String keys, where
    # ascending is by bytes ("user-100" < "user-12").
    "user": {"breakdowns": ["user"], "filters": [{"column": "route", "op": "in", "value": ["/r/1", "/r/2", "/r/3", "/r/4"]}]},
    # Two keys, an int then a string: ties break on status, then service.
    "status-service": {"breakdowns": ["status", "service"], "filters": [
        {"column": "route", "op": "=", "value": "/r/3"}, {"column": "service", "op": "exists"}]},
}


@pytest.mark.parametrize("order", ["default", "descending", "ascending"])
@pytest.mark.parametrize("case", list(TIE_SPECS))
def test_top_n_cuts_through_a_tie_by_breakdown_values(loaded, case, order):
    server, db = loaded
    base = dict(TIE_SPECS[case])
    base["calculations"] = [{"op": "COUNT"}, {"op": "AVG", "column": "duration_ms"}]
    base["granularity"] = 900
    if order != "default":
        base["orders"] = [{"op": "COUNT", "order": order}]
    breakdowns = base["breakdowns"]
    expected = ranked(oracle_groups(db, base), "COUNT", descending=order != "ascending")
    limit = tie_cut(expected, "COUNT", user_number if breakdowns == ["user"] else None)
    spec = {**base, "limit": limit}
    result = query(server, spec)

    got = [(result_key(g, breakdowns), g["values"]) for g in result["groups"]]
    assert [k for k, _ in got] == [k for k, _ in expected[:limit]], (
        f"limit {limit} through the tie at COUNT {expected[limit][1]['COUNT']}: "
        f"quarry {[(k, v['COUNT']) for k, v in got]}, "
        f"documented {[(k, v['COUNT']) for k, v in expected[:limit + 3]]}")
    for (key, values), (_, want) in zip(got, expected):
        assert values["COUNT"] == want["COUNT"], key
        assert close(values["AVG(duration_ms)"], want["AVG(duration_ms)"]), key

    # Totals are over every group, not only the kept ones.
    assert result["totals"]["COUNT"] == sum(v["COUNT"] for _, v in expected)
    assert close(result["totals"]["AVG(duration_ms)"], oracle_groups(db, {**base, "breakdowns": []})[0][1]["AVG(duration_ms)"])

    # The limit also cuts the series: exactly the kept groups' points, DuckDB's values.
    top = {k for k, _ in got}
    want_series = {tk: v for tk, v in oracle_series(db, spec).items() if tk[1] in top}
    got_series = {(p["time"], result_key(p, breakdowns)): p["values"] for p in result["series"]}
    assert {k for _, k in got_series} == top
    assert set(got_series) == set(want_series), sorted(map(str, set(got_series) ^ set(want_series)))
    for tk, want in want_series.items():
        assert got_series[tk]["COUNT"] == want["COUNT"], tk
        assert close(got_series[tk]["AVG(duration_ms)"], want["AVG(duration_ms)"]), tk


def test_top_n_tie_break_is_deterministic_across_limits(loaded):
    """Each limit keeps a prefix of the same ranking: growing the limit through a tie
    adds the tied groups one by one in key order."""
    server, db = loaded
    base = {**TIE_SPECS["user"], "calculations": [{"op": "COUNT"}]}
    expected = ranked(oracle_groups(db, base), "COUNT", descending=True)
    limit = tie_cut(expected, "COUNT", user_number)
    full = [result_key(g, ["user"]) for g in query(server, {**base, "limit": limit + 3})["groups"]]
    assert full == [k for k, _ in expected[: limit + 3]]
    for n in range(limit - 1, limit + 3):
        assert [result_key(g, ["user"]) for g in query(server, {**base, "limit": n})["groups"]] == full[:n], n


# --- sparse series --------------------------------------------------------------------------

SPARSE_SPECS = {
    # Routes of 5xx events at 5 minutes: most routes have no event in most buckets.
    "route-5xx-5m": {"breakdowns": ["route"], "granularity": 300,
                     "filters": [{"column": "status", "op": "in", "value": [500, 503]}]},
    # Every (service, route) at 1 minute: about one event per group in 10 buckets;
    # the group without a service (null) among them.
    "service-route-1m": {"breakdowns": ["service", "route"], "granularity": 60},
    # Users of one route by hour: each user in some of the three segments and the
    # buffer, not all.
    "user-hourly": {"breakdowns": ["user"], "granularity": 3600,
                    "filters": [{"column": "route", "op": "=", "value": "/r/5"}]},
}


@pytest.mark.parametrize("case", list(SPARSE_SPECS))
def test_sparse_series_have_exactly_the_buckets_with_rows(loaded, case):
    server, db = loaded
    spec = {**SPARSE_SPECS[case], "calculations": [
        {"op": "COUNT"}, {"op": "AVG", "column": "duration_ms"}, {"op": "P50", "column": "duration_ms"},
        {"op": "MAX", "column": "duration_ms"}, {"op": "COUNT_DISTINCT", "column": "user"}]}
    breakdowns, g = spec["breakdowns"], spec["granularity"]
    result = query(server, spec)
    want = oracle_series(db, spec)
    groups = {k for _, k in want}
    assert len(groups) <= 1000, "every group is in the answer"
    # The data is sparse: some group lacks rows in some bucket that has rows.
    times = {t for t, _ in want}
    assert len(want) < 0.8 * len(times) * len(groups), "the case is not sparse"

    got = {}
    for point in result["series"]:
        tk = (point["time"], result_key(point, breakdowns))
        assert tk not in got, f"two points for {tk}"
        got[tk] = point["values"]
    missing, extra = set(want) - set(got), set(got) - set(want)
    assert not missing and not extra, f"missing points {sorted(map(str, missing))[:5]}, extra {sorted(map(str, extra))[:5]}"
    assert all(v["COUNT"] > 0 for v in got.values()), "a zero point"
    point_times = [p["time"] for p in result["series"]]
    assert point_times == sorted(point_times)

    rows = matching_rows(db, spec)
    p50 = percentile_bounds(rows, "duration_ms", 0.5,
                            lambda r: ((r["ts_ns"] // (g * NS)) * g, group_key(r, breakdowns)))
    nulls = 0
    for tk, values in want.items():
        assert got[tk]["COUNT"] == values["COUNT"], tk
        assert got[tk]["COUNT_DISTINCT(user)"] == values["COUNT_DISTINCT(user)"], tk
        for name in ("AVG(duration_ms)", "MAX(duration_ms)"):
            assert close(got[tk][name], values[name]), (tk, name, got[tk][name], values[name])
        assert within_percentile(got[tk]["P50(duration_ms)"], p50[tk]), (tk, got[tk]["P50(duration_ms)"], p50[tk])
        nulls += values["AVG(duration_ms)"] is None
    if case == "service-route-1m":
        # Points whose rows all lack duration_ms: COUNT > 0, AVG/P50/MAX null.
        assert nulls > 0, "no point without durations"

    # The groups over the whole range agree with the series summed per group.
    by_group: dict = {}
    for (_, key), values in want.items():
        by_group[key] = by_group.get(key, 0) + values["COUNT"]
    assert {result_key(grp, breakdowns): grp["values"]["COUNT"] for grp in result["groups"]} == by_group


# --- exemplars per group ------------------------------------------------------------------

EXEMPLAR_SPECS = {
    # Exemplar value: duration_ms (AVG, the first calculation with a numeric column).
    "service-status": {"calculations": [{"op": "COUNT"}, {"op": "AVG", "column": "duration_ms"}],
                       "breakdowns": ["service", "status"], "granularity": 600,
                       "filters": [{"column": "route", "op": "does-not-start-with", "value": "/r/1"}]},
    # Small groups (a few rows each, some with fewer than three traced rows), top 60.
    "user-status-p99": {"calculations": [{"op": "P99", "column": "duration_ms"}, {"op": "COUNT"}],
                        "breakdowns": ["user", "status"], "limit": 60, "granularity": 1800},
    # Without a numeric calculation the exemplars carry no value.
    "route-count": {"calculations": [{"op": "COUNT"}], "breakdowns": ["route"],
                    "filters": [{"column": "status", "op": ">=", "value": 404}]},
    # Without breakdowns: one group of every row.
    "all-max": {"calculations": [{"op": "MAX", "column": "duration_ms"}]},
}


@pytest.mark.parametrize("case", list(EXEMPLAR_SPECS))
def test_exemplars_per_group_are_the_documented_events_of_it(loaded, case):
    server, db = loaded
    spec = EXEMPLAR_SPECS[case]
    breakdowns = spec.get("breakdowns", [])
    value_column = exemplar_column(spec)
    result = query(server, spec)
    rows = matching_rows(db, spec)
    by_group: dict = {}
    for row in rows:
        by_group.setdefault(group_key(row, breakdowns), []).append(row)
    assert result["groups"], "no group"
    assert len(result["groups"]) == min(spec.get("limit", 1000), len(by_group))
    few = 0
    for group in result["groups"]:
        key = result_key(group, breakdowns)
        candidates = by_group[key]
        few += sum(r["trace_id"] is not None for r in candidates) < MAX_EXEMPLARS
        check_exemplars(group["exemplars"], candidates, value_column, f"group {key}")
    if case == "user-status-p99":
        assert few > 0, "no group with fewer traced rows than exemplars"


# --- heatmaps -------------------------------------------------------------------------------

HEATMAP_CASES = {
    # With a breakdown (the cells a pass of their own). Rows without duration_ms
    # match and are not counted in the heatmap.
    "duration-by-service": (["duration_ms"], ["service"], [{"column": "status", "op": "!=", "value": 404}]),
    # Every matching row has the column: the heatmap sums to the COUNT total.
    "duration-exists-by-service": (["duration_ms"], ["service"], [
        {"column": "status", "op": "!=", "value": 404}, {"column": "duration_ms", "op": "exists"}]),
    # An int column with few values (ties for the slowest exemplar).
    "status-by-service": (["status"], ["service"], [{"column": "route", "op": "starts-with", "value": "/r/1"}]),
    # Without breakdowns (the cells counted in the one pass, by fine value bin).
    "duration": (["duration_ms"], [], [{"column": "status", "op": "!=", "value": 404}]),
    "status": (["status"], [], [{"column": "service", "op": "!=", "value": "web"}]),
    # Two heatmaps: at most one rides in the pass.
    "both": (["duration_ms", "status"], [], [{"column": "flag", "op": "=", "value": False}]),
}


def bucket_of(value, buckets: list[dict]) -> int | None:
    """The bucket `lower <= value < upper` holding `value` (the maximum may also be
    the last bucket's upper edge, when that bucket is closed)."""
    for b in buckets:
        if b["lower"] <= value < b["upper"]:
            return b["index"]
    if value == buckets[-1]["upper"]:
        return buckets[-1]["index"]
    return None


@pytest.mark.parametrize("heatmap_first", [True, False], ids=["heatmap-first", "heatmap-last"])
@pytest.mark.parametrize("case", list(HEATMAP_CASES))
def test_heatmap_cells_weights_and_exemplars(loaded, case, heatmap_first):
    server, db = loaded
    columns, breakdowns, filters = HEATMAP_CASES[case]
    granularity = 900
    heatmaps = [{"op": "HEATMAP", "column": c} for c in columns]
    calcs = [{"op": "COUNT"}, {"op": "AVG", "column": "duration_ms"}]
    # Heatmap first: group and cell exemplars carry the heatmap column; last: the
    # groups' carry duration_ms (AVG's), the cells' the heatmap column.
    spec = {"calculations": heatmaps + calcs if heatmap_first else calcs + heatmaps,
            "breakdowns": breakdowns, "filters": filters, "granularity": granularity,
            # The heatmap is over every matching row, not only the top groups.
            "limit": 2}
    result = query(server, spec)
    rows = matching_rows(db, spec)

    # The groups, totals and series beside the heatmap.
    no_heatmap = {**spec, "calculations": calcs}
    expected = ranked(oracle_groups(db, no_heatmap), "COUNT", True)
    got_groups = [(result_key(g, breakdowns), g["values"]) for g in result["groups"]]
    assert [k for k, _ in got_groups] == [k for k, _ in expected[:2]]
    for (key, values), (_, want) in zip(got_groups, expected):
        assert set(values) == {"COUNT", "AVG(duration_ms)"}, values
        assert values["COUNT"] == want["COUNT"], key
        assert close(values["AVG(duration_ms)"], want["AVG(duration_ms)"]), key
    [(_, overall)] = oracle_groups(db, {**no_heatmap, "breakdowns": []})
    assert result["totals"]["COUNT"] == overall["COUNT"]
    assert close(result["totals"]["AVG(duration_ms)"], overall["AVG(duration_ms)"])
    top = {k for k, _ in got_groups}
    want_series = {tk: v for tk, v in oracle_series(db, no_heatmap).items() if tk[1] in top}
    got_series = {(p["time"], result_key(p, breakdowns)): p["values"] for p in result["series"]}
    assert set(got_series) == set(want_series)
    for tk, want in want_series.items():
        assert got_series[tk]["COUNT"] == want["COUNT"], tk
        assert close(got_series[tk]["AVG(duration_ms)"], want["AVG(duration_ms)"]), tk
    by_group: dict = {}
    for row in rows:
        by_group.setdefault(group_key(row, breakdowns), []).append(row)
    for group in result["groups"]:
        key = result_key(group, breakdowns)
        check_exemplars(group["exemplars"], by_group[key], exemplar_column(spec), f"group {key}")

    assert [h["name"] for h in result["heatmaps"]] == [f"HEATMAP({c})" for c in columns]
    for column, heatmap in zip(columns, result["heatmaps"]):
        check_heatmap(db, spec, result, column, heatmap, [r for r in rows if r[column] is not None])


def check_heatmap(db, spec: dict, result: dict, column: str, heatmap: dict, rows: list[dict]) -> None:
    granularity = spec["granularity"]
    assert heatmap["column"] == column
    assert heatmap["times"] == list(range(BASE_S, END_S, granularity))
    # Buckets: contiguous, ascending, at most 50, covering [min, max] of the
    # matching rows.
    buckets = heatmap["buckets"]
    assert 0 < len(buckets) <= 50, len(buckets)
    assert [b["index"] for b in buckets] == list(range(len(buckets)))
    assert all(b["lower"] < b["upper"] for b in buckets), buckets
    assert all(a["upper"] == b["lower"] for a, b in zip(buckets, buckets[1:])), buckets
    lo, hi = min(r[column] for r in rows), max(r[column] for r in rows)
    assert buckets[0]["lower"] <= lo and hi <= buckets[-1]["upper"], (lo, hi, buckets[0], buckets[-1])

    # Cells: DuckDB's weighted count of rows in [lower, upper) per time bucket; no
    # empty cell listed, none twice, sorted.
    cell_rows: dict = {}
    for row in rows:
        index = bucket_of(row[column], buckets)
        assert index is not None, f"{row[column]} is in no bucket"
        cell_rows.setdefault(((row["ts_ns"] // (granularity * NS)) * granularity, index), []).append(row)
    want_cells = {cell: sum(r["sample_rate"] for r in rs) for cell, rs in cell_rows.items()}
    got_cells = {}
    for cell in heatmap["cells"]:
        where = (cell["time"], cell["bucket"])
        assert where not in got_cells, f"cell {where} twice"
        got_cells[where] = cell["count"]
    assert got_cells == want_cells, sorted(
        (k, got_cells.get(k), want_cells.get(k)) for k in set(got_cells) | set(want_cells)
        if got_cells.get(k) != want_cells.get(k))[:10]
    order = [(c["time"], c["bucket"]) for c in heatmap["cells"]]
    assert order == sorted(order)

    # Per-bucket totals: the cells summed over time; all of them, the weighted count
    # of the rows with the column (the COUNT total when every matching row has it).
    want_totals: dict = {}
    for (_, index), count in want_cells.items():
        want_totals[index] = want_totals.get(index, 0) + count
    assert {t["bucket"]: t["count"] for t in heatmap["totals"]} == want_totals
    weighted = db.execute(
        f"SELECT SUM(sample_rate) FROM oracle WHERE ({where_sql(spec)}) AND {column} IS NOT NULL").fetchone()[0]
    assert sum(t["count"] for t in heatmap["totals"]) == weighted
    every_row_has_it = db.execute(
        f"SELECT bool_and({column} IS NOT NULL) FROM oracle WHERE {where_sql(spec)}").fetchone()[0]
    if every_row_has_it:
        assert weighted == result["totals"]["COUNT"]
    else:
        assert weighted < result["totals"]["COUNT"]

    # Cell exemplars: the documented events of the cell, value the heatmap column.
    for cell in heatmap["cells"]:
        where = (cell["time"], cell["bucket"])
        check_exemplars(cell["exemplars"], cell_rows[where], column, f"{heatmap['name']} cell {where}")
