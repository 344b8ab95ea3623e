"""Data spread over several sealed Parquet segments plus the in-memory buffer.

SQL aggregates must be exact (checked against Python's own arithmetic); a trace-id
lookup must scan only the segment whose bloom filter holds the id; a time range must
skip the segments outside it; the four output formats must agree.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import time
from collections import Counter, defaultdict

import pyarrow as pa
import pytest

from harness import Quarry, metric_delta, rfc3339_to_ns

DATASET = "spans-ds"
# One sealed segment per hour: hours 0..SEALED_HOURS-1 are sealed, the next is buffered.
SEALED_HOURS = 5
EVENTS_PER_HOUR = 100
BUFFERED_EVENTS = 37
DAY = "2024-03-01"
HOUR_NS = 3600 * 1_000_000_000
BASE_NS = rfc3339_to_ns(f"{DAY}T00:00:00Z")
# Trace ids present in every segment and in the buffer, at both ends of the id
# space: a segment's min/max statistics on trace.trace_id can then never exclude a
# real id, so only the bloom filter can prune a trace lookup.
LOW_TRACE = "0" * 32
HIGH_TRACE = "f" * 32
SERVICES = ["api", "web", "db"]
STATUSES = [200, 200, 200, 404, 500]

METRIC_SCANNED = "quarry_query_segments_scanned_total"
METRIC_BLOOM = "quarry_query_segments_pruned_by_bloom_total"
METRIC_STATS = "quarry_query_segments_pruned_by_time_or_stats_total"
METRIC_CONSIDERED = "quarry_query_segments_considered_total"
METRIC_WRITTEN = "quarry_store_segments_written_total"
# Seconds to wait for background sealing to finish.
SEAL_WAIT_S = 20.0


def trace_id(hour: int, t: int) -> str:
    """A deterministic 32-hex-digit trace id (deterministic, so bloom filter results
    are reproducible run after run)."""
    return hashlib.sha256(f"trace-{hour}-{t}".encode()).hexdigest()[:32]


def make_events(hour: int, count: int) -> list[dict]:
    """`count` span events in `hour` (one second apart), 10 spans per trace, the
    last 10 on LOW_TRACE and HIGH_TRACE."""
    events = []
    for i in range(count):
        if i < count - 10:
            trace = trace_id(hour, i // 10)
        else:
            trace = LOW_TRACE if i % 2 else HIGH_TRACE
        status = STATUSES[i % len(STATUSES)]
        data = {
            "trace.trace_id": trace,
            "trace.span_id": f"{hour:02d}{i:04d}",
            "service": SERVICES[(i + hour) % len(SERVICES)],
            "status": status,
            # Multiples of 0.25 sum exactly in float64, whatever the order.
            "duration_ms": (i * 7 % 40) * 0.25 + hour,
            "user_id": f"u{(i * 13 + hour) % 37}",
            "error": status == 500,
            # Unique per event; a configured bloom filter column.
            "request_id": hashlib.sha256(f"req-{hour}-{i}".encode()).hexdigest()[:16],
        }
        if i % 6 == 0:
            data["retry"] = i % 4
        ts_ns = BASE_NS + hour * HOUR_NS + i * 1_000_000_000 + 123_456_789
        events.append({"data": data, "ts_ns": ts_ns, "samplerate": 4 if i % 4 == 0 else 1})
    return events


def as_batch(events: list[dict]) -> list[dict]:
    """Events API batch items (time as RFC 3339 with nanoseconds)."""
    items = []
    for ev in events:
        secs, nanos = divmod(ev["ts_ns"], 1_000_000_000)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{nanos:09d}Z"
        items.append({"data": ev["data"], "time": stamp, "samplerate": ev["samplerate"]})
    return items


def wait_for_metric(server: Quarry, name: str, at_least: float) -> float:
    """Polls /metrics until counter `name` reaches `at_least`."""
    deadline = time.monotonic() + SEAL_WAIT_S
    while True:
        value = server.metrics().get(name, 0.0)
        if value >= at_least or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


@pytest.fixture(scope="module")
def loaded(module_quarry):
    """A server holding SEALED_HOURS sealed segments plus BUFFERED_EVENTS buffered
    rows, and the events it was sent."""
    server = module_quarry(
        config={
            "storage": {
                "seal_max_rows": EVENTS_PER_HOUR,
                "seal_max_age_secs": 3600,
                "partition_width_secs": 3600,
                "bloom_filter_columns": ["request_id"],
            }
        }
    )
    events = []
    for hour in range(SEALED_HOURS):
        hour_events = make_events(hour, EVENTS_PER_HOUR)
        # Two requests per hour, so a segment is built from several appends.
        half = EVENTS_PER_HOUR // 2
        server.send_batch_ok(DATASET, as_batch(hour_events[:half]))
        server.send_batch_ok(DATASET, as_batch(hour_events[half:]))
        server.seal()
        events += hour_events
    written = wait_for_metric(server, METRIC_WRITTEN, SEALED_HOURS)
    assert written == SEALED_HOURS, f"{written} segments written for {SEALED_HOURS} hours"
    buffered = make_events(SEALED_HOURS, BUFFERED_EVENTS)
    server.send_batch_ok(DATASET, as_batch(buffered))
    events += buffered
    return server, events


def measured(server: Quarry, query: str) -> tuple[list[dict], dict[str, int]]:
    """Runs `query` and returns its rows and the segment counters' deltas."""
    before = server.metrics()
    rows = server.rows(query)
    after = server.metrics()
    names = (METRIC_SCANNED, METRIC_BLOOM, METRIC_STATS, METRIC_CONSIDERED)
    return rows, {n: metric_delta(before, after, n) for n in names}


def test_segment_layout(loaded):
    server, events = loaded
    rows, delta = measured(server, f'SELECT count(*) AS c FROM "{DATASET}"')
    assert rows == [{"c": len(events)}]
    assert delta[METRIC_CONSIDERED] == SEALED_HOURS, delta
    segments = list((server.data_dir / "objects" / "segments").rglob("*.parquet"))
    assert len(segments) == SEALED_HOURS, segments


def test_aggregates_are_exact(loaded):
    server, events = loaded
    data = [ev["data"] for ev in events]
    rates = [ev["samplerate"] for ev in events]

    row = server.rows(
        f"""SELECT count(*) AS n, sum(status) AS status_sum, min(duration_ms) AS dmin,
                   max(duration_ms) AS dmax, sum(duration_ms) AS dsum,
                   count(DISTINCT "trace.trace_id") AS traces, count(DISTINCT user_id) AS users,
                   sum("meta.sample_rate") AS weighted, count(retry) AS with_retry,
                   sum(retry) AS retry_sum, min("timestamp") AS first, max("timestamp") AS last
            FROM "{DATASET}" """
    )[0]
    durations = [d["duration_ms"] for d in data]
    assert row["n"] == len(data)
    assert row["status_sum"] == sum(d["status"] for d in data)
    assert row["dmin"] == min(durations)
    assert row["dmax"] == max(durations)
    assert row["dsum"] == sum(durations)
    assert row["traces"] == len({d["trace.trace_id"] for d in data})
    assert row["users"] == len({d["user_id"] for d in data})
    assert row["weighted"] == sum(rates)
    assert row["with_retry"] == sum(1 for d in data if "retry" in d)
    assert row["retry_sum"] == sum(d.get("retry", 0) for d in data)
    assert rfc3339_to_ns(row["first"]) == min(ev["ts_ns"] for ev in events)
    assert rfc3339_to_ns(row["last"]) == max(ev["ts_ns"] for ev in events)

    groups = server.rows(
        f"""SELECT service, count(*) AS n, sum(duration_ms) AS dsum, max(status) AS smax,
                   sum("meta.sample_rate") AS weighted
            FROM "{DATASET}" GROUP BY service ORDER BY service"""
    )
    expected = defaultdict(lambda: {"n": 0, "dsum": 0.0, "smax": 0, "weighted": 0})
    for d, rate in zip(data, rates):
        g = expected[d["service"]]
        g["n"] += 1
        g["dsum"] += d["duration_ms"]
        g["smax"] = max(g["smax"], d["status"])
        g["weighted"] += rate
    assert groups == [{"service": s, **expected[s]} for s in sorted(expected)]

    by_status = server.rows(
        f'SELECT status, count(*) AS n FROM "{DATASET}" WHERE error = false GROUP BY status ORDER BY status'
    )
    counts = Counter(d["status"] for d in data if not d["error"])
    assert by_status == [{"status": s, "n": counts[s]} for s in sorted(counts)]

    errors = server.scalar(f'SELECT count(*) AS n FROM "{DATASET}" WHERE error')
    assert errors == sum(1 for d in data if d["error"])


def test_trace_lookup_scans_only_the_segment_with_the_id(loaded):
    server, events = loaded
    wanted = trace_id(2, 3)
    rows, delta = measured(
        server,
        f"""SELECT "trace.span_id" AS span FROM "{DATASET}"
            WHERE "trace.trace_id" = '{wanted}' ORDER BY span""",
    )
    expected = sorted(ev["data"]["trace.span_id"] for ev in events if ev["data"]["trace.trace_id"] == wanted)
    assert len(expected) == 10
    assert [r["span"] for r in rows] == expected
    assert delta[METRIC_CONSIDERED] == SEALED_HOURS, delta
    assert delta[METRIC_SCANNED] == 1, delta
    # LOW_TRACE and HIGH_TRACE are in every segment, so min/max cannot prune: the
    # bloom filter must have excluded every other segment.
    assert delta[METRIC_BLOOM] == SEALED_HOURS - 1, delta
    assert delta[METRIC_BLOOM] + delta[METRIC_STATS] == SEALED_HOURS - delta[METRIC_SCANNED]


def test_configured_bloom_column_prunes_point_lookups(loaded):
    server, events = loaded
    target = next(ev for ev in events if ev["data"]["trace.span_id"] == "030042")
    wanted = target["data"]["request_id"]
    rows, delta = measured(
        server, f"""SELECT "trace.span_id" AS span FROM "{DATASET}" WHERE request_id = '{wanted}'"""
    )
    assert rows == [{"span": "030042"}]
    assert delta[METRIC_SCANNED] == 1, delta
    assert delta[METRIC_BLOOM] + delta[METRIC_STATS] == SEALED_HOURS - 1, delta
    assert delta[METRIC_BLOOM] >= 1, delta


def test_trace_lookup_of_an_absent_id_scans_nothing(loaded):
    server, _ = loaded
    absent = hashlib.sha256(b"no such trace").hexdigest()[:32]
    rows, delta = measured(server, f"""SELECT * FROM "{DATASET}" WHERE "trace.trace_id" = '{absent}'""")
    assert rows == []
    assert delta[METRIC_SCANNED] == 0, delta
    assert delta[METRIC_BLOOM] + delta[METRIC_STATS] == SEALED_HOURS, delta


def test_trace_only_in_the_buffer_is_found_without_scanning_segments(loaded):
    server, events = loaded
    wanted = trace_id(SEALED_HOURS, 1)
    rows, delta = measured(
        server, f"""SELECT count(*) AS c FROM "{DATASET}" WHERE "trace.trace_id" = '{wanted}'"""
    )
    assert rows == [{"c": sum(1 for ev in events if ev["data"]["trace.trace_id"] == wanted)}]
    assert rows[0]["c"] == 10
    assert delta[METRIC_SCANNED] == 0, delta


def test_trace_in_every_segment_scans_them_all(loaded):
    server, events = loaded
    rows, delta = measured(
        server, f"""SELECT count(*) AS c FROM "{DATASET}" WHERE "trace.trace_id" = '{LOW_TRACE}'"""
    )
    assert rows == [{"c": sum(1 for ev in events if ev["data"]["trace.trace_id"] == LOW_TRACE)}]
    assert delta[METRIC_SCANNED] == SEALED_HOURS, delta


def test_time_range_prunes_segments(loaded):
    server, events = loaded
    lo, hi = BASE_NS + 2 * HOUR_NS, BASE_NS + 3 * HOUR_NS
    rows, delta = measured(
        server,
        f"""SELECT count(*) AS c, sum(status) AS s FROM "{DATASET}"
            WHERE "timestamp" >= TIMESTAMP '{DAY}T02:00:00Z' AND "timestamp" < TIMESTAMP '{DAY}T03:00:00Z'""",
    )
    inside = [ev for ev in events if lo <= ev["ts_ns"] < hi]
    assert len(inside) == EVENTS_PER_HOUR
    assert rows == [{"c": len(inside), "s": sum(ev["data"]["status"] for ev in inside)}]
    assert delta[METRIC_SCANNED] == 1, delta
    assert delta[METRIC_STATS] == SEALED_HOURS - 1, delta

    # A range after every sealed hour touches only the buffer.
    rows, delta = measured(
        server,
        f"""SELECT count(*) AS c FROM "{DATASET}" WHERE "timestamp" >= TIMESTAMP '{DAY}T{SEALED_HOURS:02d}:00:00Z'""",
    )
    assert rows == [{"c": BUFFERED_EVENTS}]
    assert delta[METRIC_SCANNED] == 0, delta


def normalize(value):
    """A comparable form of a cell: timestamps to ns, numbers as they are."""
    if isinstance(value, str) and value[:4].isdigit() and "T" in value and value[4:5] == "-":
        return rfc3339_to_ns(value)
    return value


def test_output_formats_agree(loaded):
    server, events = loaded
    cols = ["timestamp", "trace.trace_id", "service", "status", "duration_ms", "error", "retry", "meta.sample_rate"]
    query = (
        f'SELECT {", ".join(repr_col(c) for c in cols)} FROM "{DATASET}" '
        f"WHERE service = 'api' ORDER BY \"timestamp\", \"trace.span_id\" LIMIT 60"
    )
    # JSON: an array of objects, null columns omitted.
    json_rows = [tuple(normalize(r.get(c)) for c in cols) for r in server.rows(query)]
    assert len(json_rows) == 60
    api = sorted((ev for ev in events if ev["data"]["service"] == "api"), key=lambda ev: ev["ts_ns"])[:60]
    expected = [
        (
            ev["ts_ns"],
            ev["data"]["trace.trace_id"],
            "api",
            ev["data"]["status"],
            ev["data"]["duration_ms"],
            ev["data"]["error"],
            ev["data"].get("retry"),
            ev["samplerate"],
        )
        for ev in api
    ]
    assert json_rows == expected

    # NDJSON: one object per line.
    resp = server.sql(query, "ndjson")
    assert resp.status_code == 200, resp.text[:500]
    lines = [line for line in resp.text.splitlines() if line.strip()]
    ndjson_rows = [tuple(normalize(json.loads(line).get(c)) for c in cols) for line in lines]
    assert ndjson_rows == expected

    # CSV: a header, then text cells; an empty cell is null.
    resp = server.sql(query, "csv")
    assert resp.status_code == 200, resp.text[:500]
    reader = list(csv.reader(io.StringIO(resp.text)))
    assert reader[0] == cols
    parsers = [rfc3339_to_ns, str, str, int, float, parse_bool, int, int]
    csv_rows = [
        tuple(parse(cell) if cell != "" else None for parse, cell in zip(parsers, line))
        for line in reader[1:]
    ]
    assert csv_rows == expected

    # Arrow IPC stream.
    resp = server.sql(query, "arrow")
    assert resp.status_code == 200, resp.text[:500]
    table = pa.ipc.open_stream(resp.content).read_all()
    assert table.column_names == cols
    ts = table.column("timestamp").cast(pa.int64()).to_pylist()
    arrow_rows = [
        (t, *rest)
        for t, *rest in zip(ts, *(table.column(c).to_pylist() for c in cols[1:]))
    ]
    assert arrow_rows == expected


def repr_col(name: str) -> str:
    """A quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def parse_bool(text: str) -> bool:
    """CSV booleans."""
    assert text in ("true", "false"), text
    return text == "true"


def test_threshold_sealing_and_one_segment_per_partition(quarry):
    server = quarry(
        config={
            "storage": {"seal_max_rows": 100, "seal_max_age_secs": 3600, "partition_width_secs": 3600},
            # Rollup maintenance reads new segments and would move the counted metrics.
            "rollup_defaults": {"traces": False},
        }
    )
    # 3 x 120 rows in one hour: the row threshold seals each without being asked.
    for j in range(3):
        server.send_batch_ok("threshold-ds", as_batch(make_events(0, 120)))
        written = wait_for_metric(server, METRIC_WRITTEN, j + 1)
        assert written == j + 1, f"{written} segments sealed by the 100-row threshold after {j + 1} x 120 rows"
    assert server.scalar('SELECT count(*) AS c FROM "threshold-ds"') == 360

    # 30 rows over 3 hours sealed at once make one segment per hour.
    events = []
    for hour in range(3):
        events += make_events(10 + hour, 10)
    before = server.metrics()[METRIC_WRITTEN]
    server.send_batch_ok("partition-ds", as_batch(events))
    server.seal()
    written = wait_for_metric(server, METRIC_WRITTEN, before + 3)
    assert written - before == 3, f"{written - before} segments for 3 time partitions"
    rows, delta = measured(server, 'SELECT count(*) AS c FROM "partition-ds"')
    assert rows == [{"c": 30}]
    assert delta[METRIC_CONSIDERED] == 3, delta
