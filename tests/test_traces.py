"""Trace assembly: GET /api/v1/traces/{trace_id} over several datasets.

Spans, span events, links and logs of one trace are sent through /1/batch to four
datasets with explicit timestamps; part is sealed into Parquet segments, the rest
stays buffered. The tree (parents, depths, self times, orphans) must come back exact,
and the lookup must skip segments by bloom filter (counted on /metrics).
"""

from __future__ import annotations

from harness import metric_delta

TRACE = "7" * 32
BROKEN = "5" * 32
# Ids at both ends of the id space sit in every sealed segment, so min/max
# statistics never exclude TRACE: only bloom filters can.
LOW = "0" * 32
HIGH = "f" * 32
BASE = "2024-05-01T10:00:00"

METRIC_BLOOM = "quarry_query_segments_pruned_by_bloom_total"
METRIC_SCANNED = "quarry_query_segments_scanned_total"


def at(ms: float) -> str:
    """RFC 3339 time `ms` milliseconds after BASE."""
    seconds = int(ms // 1000)
    millis = ms - seconds * 1000
    return f"{BASE[:-2]}{seconds:02d}.{int(millis * 1000):06d}Z"


def span(trace, span_id, parent, start_ms, duration_ms, name, service, **extra):
    data = {
        "trace.trace_id": trace,
        "trace.span_id": span_id,
        "name": name,
        "service.name": service,
        "duration_ms": duration_ms,
        **extra,
    }
    if parent is not None:
        data["trace.parent_id"] = parent
    return {"time": at(start_ms), "data": data}


def fillers(service: str) -> list[dict]:
    return [
        span(LOW, f"{service}-low", None, 1, 1.0, "filler", service),
        span(HIGH, f"{service}-high", None, 2, 1.0, "filler", service),
    ]


def send_sealed_part(q) -> None:
    q.send_batch_ok(
        "frontend",
        fillers("frontend")
        + [span(TRACE, "root", None, 0, 100.0, "GET /checkout", "frontend")],
    )
    q.send_batch_ok(
        "backend",
        fillers("backend")
        + [
            span(TRACE, "auth", "root", 10, 20.0, "auth", "backend"),
            span(TRACE, "pay", "root", 25, 50.0, "pay", "backend", error=True),
        ],
    )
    q.send_batch_ok("noise", fillers("noise"))


def send_buffered_part(q) -> None:
    q.send_batch_ok(
        "backend",
        [
            span(TRACE, "db1", "pay", 30, 10.0, "SELECT", "backend"),
            span(TRACE, "db2", "pay", 35, 15.0, "UPDATE", "backend"),
            # A Beeline-style span event and link (meta.annotation_type is kept as
            # meta.annotation_type#user by the Events API).
            {
                "time": at(32),
                "data": {
                    "trace.trace_id": TRACE,
                    "trace.parent_id": "db1",
                    "meta.annotation_type": "span_event",
                    "name": "retry",
                },
            },
            {
                "time": at(25),
                "data": {
                    "trace.trace_id": TRACE,
                    "trace.parent_id": "pay",
                    "meta.annotation_type": "link",
                    "trace.link.trace_id": LOW,
                    "trace.link.span_id": "backend-low",
                },
            },
            # Its parent never arrived: an orphan root with a child of its own.
            span(TRACE, "late", "lost-span", 120, 8.0, "callback", "backend"),
            span(TRACE, "late-child", "late", 121, 2.0, "write", "backend"),
        ],
    )
    q.send_batch_ok(
        "app-logs",
        [
            {
                "time": at(40),
                "data": {
                    "trace.trace_id": TRACE,
                    "trace.parent_id": "db2",
                    "meta.signal_type": "log",
                    "body": "slow update",
                    "severity": "warn",
                },
            },
            {
                "time": at(130),
                "data": {
                    "trace.trace_id": TRACE,
                    "meta.signal_type": "log",
                    "body": "no span",
                },
            },
        ],
    )
    # A trace whose root is missing entirely.
    q.send_batch_ok(
        "frontend",
        [
            span(BROKEN, "a", "gone", 0, 30.0, "a", "frontend"),
            span(BROKEN, "b", "a", 5, 10.0, "b", "frontend"),
            span(BROKEN, "c", "gone", 50, 5.0, "c", "frontend"),
        ],
    )


def by_id(trace: dict) -> dict:
    return {s["span_id"]: s for s in trace["spans"]}


# These tests count the query engine's segment metrics, which the background
# maintenance of the default trace rollup also moves when it reads new segments.
NO_DEFAULT_ROLLUP = {"rollup_defaults": {"traces": False}}


def test_a_trace_across_datasets_buffer_and_segments_is_one_exact_tree(quarry):
    q = quarry(config=NO_DEFAULT_ROLLUP)
    send_sealed_part(q)
    q.seal()
    send_buffered_part(q)

    before = q.metrics()
    resp = q.get(f"/api/v1/traces/{TRACE}")
    after = q.metrics()
    assert resp.status_code == 200, resp.text
    trace = resp.json()

    # Sealed: frontend, backend and noise each one segment; only noise lacks TRACE.
    assert metric_delta(before, after, METRIC_BLOOM) == 1
    assert metric_delta(before, after, METRIC_SCANNED) == 2

    assert trace["trace_id"] == TRACE
    assert trace["row_count"] == 11
    assert trace["truncated"] is False
    assert trace["start_time"] == "2024-05-01T10:00:00Z"
    assert trace["roots"] == ["root", "late"]
    order = [(s["span_id"], s["depth"]) for s in trace["spans"]]
    assert order == [
        ("root", 0),
        ("auth", 1),
        ("pay", 1),
        ("db1", 2),
        ("db2", 2),
        ("late", 0),
        ("late-child", 1),
    ]
    spans = by_id(trace)
    assert spans["root"]["children"] == ["auth", "pay"]
    assert spans["pay"]["children"] == ["db1", "db2"]
    assert spans["db1"]["children"] == []
    # root [0,100] minus auth [10,30] and pay [25,75] = 100 - 65.
    assert spans["root"]["self_time_ms"] == 35.0
    # pay [25,75] minus db1 [30,40] and db2 [35,50] = 50 - 20.
    assert spans["pay"]["self_time_ms"] == 30.0
    assert spans["late"]["self_time_ms"] == 6.0
    assert spans["db2"]["self_time_ms"] == 15.0
    assert spans["root"]["duration_ms"] == 100.0
    assert spans["db1"]["start_offset_ms"] == 30.0
    assert trace["duration_ms"] == 128.0

    assert spans["late"]["orphan"] is True
    assert spans["late"]["parent_id"] == "lost-span"
    assert [s["span_id"] for s in trace["spans"] if s["orphan"]] == ["late"]
    assert spans["pay"]["error"] is True and spans["auth"]["error"] is False

    assert spans["root"]["dataset"] == "frontend"
    assert spans["pay"]["dataset"] == "backend"
    assert spans["root"]["service_name"] == "frontend"
    assert spans["db1"]["name"] == "SELECT"

    assert [e["fields"]["name"] for e in spans["db1"]["events"]] == ["retry"]
    assert spans["db1"]["events"][0]["timestamp"] == "2024-05-01T10:00:00.032Z"
    assert [l["fields"]["trace.link.span_id"] for l in spans["pay"]["links"]] == ["backend-low"]
    assert [l["fields"]["body"] for l in spans["db2"]["logs"]] == ["slow update"]
    assert spans["db2"]["logs"][0]["fields"]["meta.dataset"] == "app-logs"
    assert [u["fields"]["body"] for u in trace["unattached"]] == ["no span"]


def test_a_trace_without_its_root_is_a_forest_of_orphans(quarry):
    q = quarry(config=NO_DEFAULT_ROLLUP)
    send_sealed_part(q)
    q.seal()
    send_buffered_part(q)

    before = q.metrics()
    trace = q.get(f"/api/v1/traces/{BROKEN}").json()
    after = q.metrics()
    # BROKEN is only buffered: every sealed segment is ruled out by its bloom filter.
    assert metric_delta(before, after, METRIC_BLOOM) == 3
    assert metric_delta(before, after, METRIC_SCANNED) == 0

    assert trace["roots"] == ["a", "c"]
    spans = by_id(trace)
    assert spans["a"]["orphan"] is True and spans["c"]["orphan"] is True
    assert spans["b"]["orphan"] is False
    assert [(s["span_id"], s["depth"]) for s in trace["spans"]] == [("a", 0), ("b", 1), ("c", 0)]
    assert spans["a"]["self_time_ms"] == 20.0


def test_an_unknown_trace_is_a_json_404_and_sql_sees_all_datasets(quarry):
    q = quarry()
    send_sealed_part(q)
    q.seal()
    resp = q.get("/api/v1/traces/" + "9" * 32)
    assert resp.status_code == 404
    assert resp.json() == {"error": f"trace not found: {'9' * 32}"}

    rows = q.rows(
        'SELECT "meta.dataset" AS d, count(*) AS n FROM "__all__" '
        'GROUP BY "meta.dataset" ORDER BY d'
    )
    assert rows == [
        {"d": "backend", "n": 4},
        {"d": "frontend", "n": 3},
        {"d": "noise", "n": 2},
    ]
