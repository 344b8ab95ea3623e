"""The Honeycomb Events API as a plain HTTP client sees it: event time, sample rate,
flattening, arrays, datasets and columns."""

from __future__ import annotations

import concurrent.futures
import json
import time

from harness import rfc3339_to_ns


def test_startup_log_health_and_metrics(server):
    assert f"listening on http://127.0.0.1:{server.port}" in server.log_text()
    assert server.get("/healthz").status_code == 200
    assert server.get("/readyz").status_code == 200
    metrics = server.metrics()
    for name in (
        "quarry_query_segments_scanned_total",
        "quarry_query_segments_pruned_by_bloom_total",
        "quarry_query_segments_pruned_by_time_or_stats_total",
        "quarry_query_segments_considered_total",
        "quarry_store_segments_written_total",
        "quarry_store_manifest_commits_total",
        "quarry_store_replayed_rows_total",
    ):
        assert metrics.get(name) == 0, (name, metrics.get(name))


def test_event_time_and_sample_rate_headers(server):
    cases = [
        ("rfc3339-ns", {"X-Honeycomb-Event-Time": "2024-06-01T10:20:30.123456789Z"}, "2024-06-01T10:20:30.123456789Z"),
        ("rfc3339-offset", {"X-Honeycomb-Event-Time": "2024-06-01T12:20:30.5+02:00"}, "2024-06-01T10:20:30.5Z"),
        ("epoch", {"X-Honeycomb-Event-Time": "1717237230"}, "2024-06-01T10:20:30Z"),
        ("epoch-frac", {"X-Honeycomb-Event-Time": "1717237230.25"}, "2024-06-01T10:20:30.25Z"),
    ]
    for name, headers, _ in cases:
        resp = server.send_event("times", {"case": name}, headers=headers)
        assert resp.status_code == 200, (name, resp.status_code, resp.text)
    resp = server.send_event("times", {"case": "rated"}, headers={"X-Honeycomb-Samplerate": "7"})
    assert resp.status_code == 200, resp.text
    before_ns = time.time_ns()
    assert server.send_event("times", {"case": "now"}).status_code == 200
    after_ns = time.time_ns()

    rows = {r["case"]: r for r in server.rows('SELECT * FROM "times"')}
    assert len(rows) == len(cases) + 2
    for name, _, want in cases:
        assert rfc3339_to_ns(rows[name]["timestamp"]) == rfc3339_to_ns(want), (name, rows[name])
        assert rows[name]["meta.sample_rate"] == 1
    assert rows["rated"]["meta.sample_rate"] == 7
    # An event without a time gets the time it arrived.
    now_ns = rfc3339_to_ns(rows["now"]["timestamp"])
    assert before_ns - 1_000_000_000 <= now_ns <= after_ns + 1_000_000_000, (before_ns, now_ns, after_ns)


def test_batch_time_and_samplerate(server):
    server.send_batch_ok(
        "batch-times",
        [
            {"data": {"k": 1}, "time": "2024-06-01T10:20:30.000000001Z", "samplerate": 3},
            {"data": {"k": 2}, "time": "2024-06-01T10:20:31Z"},
            {"data": {"k": 3}, "samplerate": 1},
        ],
    )
    rows = server.rows('SELECT k, "timestamp", "meta.sample_rate" AS r FROM "batch-times" ORDER BY k')
    assert [(r["k"], r["r"]) for r in rows] == [(1, 3), (2, 1), (3, 1)]
    assert rfc3339_to_ns(rows[0]["timestamp"]) == rfc3339_to_ns("2024-06-01T10:20:30Z") + 1
    assert rfc3339_to_ns(rows[1]["timestamp"]) == rfc3339_to_ns("2024-06-01T10:20:31Z")


def test_flattening_arrays_and_deep_nesting(server):
    event = {
        "http": {"method": "GET", "status": 200, "req": {"path": "/a", "bytes": 12.5}},
        "tags": ["x", "y"],
        "nums": [1, 2, 3],
        "objs": [{"a": 1}],
        "deep": {"l2": {"l3": {"l4": {"l5": {"l6": {"l7": "bottom"}}}}}},
        "flag": False,
        "empty": {},
    }
    assert server.send_event("flat", event).status_code == 200
    row = server.rows('SELECT * FROM "flat"')[0]
    assert row["http.method"] == "GET"
    assert row["http.status"] == 200
    assert row["http.req.path"] == "/a"
    assert row["http.req.bytes"] == 12.5
    assert row["flag"] is False
    assert json.loads(row["tags"]) == ["x", "y"]
    assert json.loads(row["nums"]) == [1, 2, 3]
    assert json.loads(row["objs"]) == [{"a": 1}]
    # Beyond depth 5 the rest of the object is kept as a JSON string under the
    # deepest flattened name: whatever the exact cut, "bottom" is not lost.
    deep_cols = [k for k in row if k.startswith("deep.")]
    assert len(deep_cols) == 1, deep_cols
    assert deep_cols[0].startswith("deep.l2.l3"), deep_cols
    assert "bottom" in row[deep_cols[0]] and json.loads(row[deep_cols[0]]), row[deep_cols[0]]
    columns = server.columns("flat")
    assert columns["http.status"] == "integer"
    assert columns["http.req.bytes"] == "float"
    assert columns["flag"] == "boolean"
    assert columns["tags"] == "string"
    assert columns[deep_cols[0]] == "string"


def test_datasets_and_columns_api(server):
    server.send_batch_ok("ds-one", [{"data": {"a": 1, "b": "x"}}])
    assert server.send_event("ds-two", {"c": 1.5, "d": True}).status_code == 200
    resp = server.get("/1/datasets")
    assert resp.status_code == 200
    datasets = {d["name"]: d for d in resp.json()}
    assert set(datasets) == {"ds-one", "ds-two"}
    assert all(isinstance(d.get("slug"), str) and d["slug"] for d in datasets.values())
    one = server.columns("ds-one")
    two = server.columns("ds-two")
    assert (one.get("a"), one.get("b")) == ("integer", "string")
    assert (two.get("c"), two.get("d")) == ("float", "boolean")
    assert "c" not in one and "a" not in two


def test_many_datasets_and_concurrent_writers_do_not_mix(server):
    def write(n: int) -> int:
        items = [{"data": {"writer": n, "i": i}} for i in range(50)]
        server.send_batch_ok(f"multi-{n % 3}", items)
        return n

    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        assert sorted(pool.map(write, range(12))) == list(range(12))
    for d in range(3):
        rows = server.rows(f'SELECT writer, count(*) AS c, sum(i) AS s FROM "multi-{d}" GROUP BY writer ORDER BY writer')
        assert rows == [{"writer": n, "c": 50, "s": sum(range(50))} for n in range(12) if n % 3 == d]
