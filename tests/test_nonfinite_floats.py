"""Infinite and NaN floats are stored as sent and never make the store unstartable.

An infinite float that reached a sealed segment used to be written into the
manifest's statistics as JSON `null`, and every start after that failed. Each way
in is driven here (msgpack events, an OTLP/HTTP protobuf gauge and log attribute,
OTLP/JSON `"Infinity"`), sealed by age, followed by `kill -9` and a start; the rows
must come back with their values, spelled `"Infinity"` / `"-Infinity"` / `"NaN"` in
SQL's JSON output. A data directory whose manifest was written the old way (a
`null` bound) must start too, and an unreadable manifest record is set aside
instead of stopping the start.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import msgpack
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    Gauge,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

# Buffers are sealed once they are this old, so no admin call is involved.
SEAL_AGE_S = 2
CONFIG = {"storage": {"seal_max_age_secs": SEAL_AGE_S}}
# Seconds to wait for the age-based seal to reach the manifest.
SEAL_WAIT_S = 30.0
INF = float("inf")
T0_NS = time.time_ns() - 60 * 1_000_000_000


def service(name: str) -> Resource:
    return Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=name))])


def gauge_request(values: list[float]) -> bytes:
    points = [
        NumberDataPoint(as_double=value, time_unix_nano=T0_NS + i) for i, value in enumerate(values)
    ]
    metric = Metric(name="temperature", gauge=Gauge(data_points=points))
    request = ExportMetricsServiceRequest(
        resource_metrics=[
            ResourceMetrics(
                resource=service("gauges"), scope_metrics=[ScopeMetrics(metrics=[metric])]
            )
        ]
    )
    return request.SerializeToString()


def log_request(values: list[float]) -> bytes:
    records = [
        LogRecord(
            time_unix_nano=T0_NS + i,
            body=AnyValue(string_value=f"reading {i}"),
            attributes=[KeyValue(key="reading", value=AnyValue(double_value=value))],
        )
        for i, value in enumerate(values)
    ]
    request = ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(resource=service("logs"), scope_logs=[ScopeLogs(log_records=records)])
        ]
    )
    return request.SerializeToString()


def gauge_json(values: list[str | float]) -> str:
    points = [
        {"asDouble": value, "timeUnixNano": str(T0_NS + i)} for i, value in enumerate(values)
    ]
    document = {
        "resourceMetrics": [{
            "resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": "json-gauges"}}]},
            "scopeMetrics": [{"metrics": [{"name": "pressure", "gauge": {"dataPoints": points}}]}],
        }]
    }
    return json.dumps(document)


def wait_until_sealed(server, datasets: int) -> None:
    """Waits until every buffer was sealed by age (no admin call)."""
    deadline = time.monotonic() + SEAL_WAIT_S
    while time.monotonic() < deadline:
        metrics = server.metrics()
        if (
            metrics.get("quarry_store_segments_written_total", 0) >= datasets
            and metrics.get("quarry_store_buffered_bytes", 1) == 0
        ):
            return
        time.sleep(0.2)
    raise AssertionError(f"buffers not sealed within {SEAL_WAIT_S}s: {server.metrics()}")


def values_of(server, query: str) -> list:
    return [row.get("v") for row in server.rows(query)]


def test_every_way_in_survives_seal_kill_and_start(quarry):
    server = quarry(config=CONFIG)

    batch = [
        {"data": {"k": 1, "f": INF}},
        {"data": {"k": 2, "f": -INF}},
        {"data": {"k": 3, "f": 1.5}},
        {"data": {"k": 4, "f": math.nan}},
    ]
    resp = server.post(
        "/1/batch/packed", msgpack.packb(batch), headers={"Content-Type": "application/msgpack"}
    )
    assert resp.status_code == 200, resp.text
    assert [item["status"] for item in resp.json()] == [202] * 4
    resp = server.post(
        "/1/events/packed",
        msgpack.packb({"k": 5, "f": INF}),
        headers={"Content-Type": "application/msgpack"},
    )
    assert resp.status_code == 200, resp.text

    protobuf = {"Content-Type": "application/x-protobuf"}
    resp = server.post("/v1/metrics", gauge_request([INF, -INF, 20.5]), headers=protobuf)
    assert resp.status_code == 200, resp.text
    resp = server.post("/v1/logs", log_request([-INF, 3.25]), headers=protobuf)
    assert resp.status_code == 200, resp.text
    resp = server.post("/v1/metrics", gauge_json(["Infinity", "-Infinity", "NaN", 1.0]))
    assert resp.status_code == 200, resp.text

    wait_until_sealed(server, datasets=4)
    server.kill()
    server.start()

    assert values_of(server, 'SELECT f AS v FROM packed ORDER BY k') == [
        "Infinity", "-Infinity", 1.5, "NaN", "Infinity"]
    assert values_of(server, 'SELECT value AS v FROM gauges ORDER BY "timestamp"') == [
        "Infinity", "-Infinity", 20.5]
    assert values_of(server, 'SELECT reading AS v FROM logs ORDER BY "timestamp"') == [
        "-Infinity", 3.25]
    assert values_of(server, 'SELECT value AS v FROM "json-gauges" ORDER BY "timestamp"') == [
        "Infinity", "-Infinity", "NaN", 1.0]

    # The rows came back from segments, and their bounds still prune correctly.
    assert server.metrics()["quarry_store_buffered_bytes"] == 0
    # NaN sorts above every number (DataFusion, like PostgreSQL): two inf and one NaN.
    assert server.scalar("SELECT count(*) FROM packed WHERE f > 1e308") == 3
    assert server.scalar("SELECT count(*) FROM packed WHERE f > 1e308 AND NOT isnan(f)") == 2
    assert server.scalar("SELECT count(*) FROM packed WHERE f < -1e308") == 1
    assert server.scalar("SELECT count(*) FROM gauges WHERE value = 20.5") == 1
    csv = server.sql("SELECT f FROM packed WHERE k <= 2 ORDER BY k", fmt="csv")
    assert csv.text.split() == ["f", "inf", "-inf"]
    assert server.metrics()["quarry_manifest_quarantined_records"] == 0


def manifest_log(server) -> list[Path]:
    return sorted((server.data_dir / "objects" / "_manifest" / "log").glob("*.json"))


def test_a_manifest_written_with_null_float_bounds_starts(quarry):
    """What builds with the bug wrote: `{"float": null}` bounds of an infinite column."""
    server = quarry(config={"storage": {"seal_max_age_secs": 3600}})
    server.send_batch_ok("old", [{"data": {"f": 2.0}}, {"data": {"f": 8.0}}])
    server.seal()
    server.kill()
    entries = manifest_log(server)
    assert entries, "the seal wrote a manifest entry"
    text = entries[-1].read_text()
    assert '{"float":2.0}' in text and '{"float":8.0}' in text, text[:2000]
    entries[-1].write_text(
        text.replace('{"float":2.0}', '{"float":null}').replace('{"float":8.0}', '{"float":null}')
    )

    server.start()
    assert server.scalar("SELECT sum(f) FROM old") == 10.0
    assert server.scalar("SELECT count(*) FROM old WHERE f > 5") == 1
    assert server.metrics()["quarry_manifest_quarantined_records"] == 0


def test_an_unreadable_segment_record_is_quarantined_and_the_rest_served(quarry):
    # No grace period: the sweep at start would take any file no record protects.
    server = quarry(
        config={"storage": {"seal_max_age_secs": 3600}, "compaction": {"orphan_grace_secs": 0}}
    )
    server.send_batch_ok("kept", [{"data": {"n": 1}}])
    server.send_batch_ok("damaged", [{"data": {"n": 2}}])
    server.seal()
    server.kill()
    damaged_paths = []
    for entry in manifest_log(server):
        document = json.loads(entry.read_text())
        for action in document["actions"]:
            seal = action.get("seal_segments")
            if seal and seal["dataset"] == "damaged":
                for segment in seal["segments"]:
                    segment["rows"] = "not a number"
                    damaged_paths.append(segment["path"])
        entry.write_text(json.dumps(document))
    assert damaged_paths, "found the damaged dataset's seal"

    server.start()
    assert server.scalar("SELECT n FROM kept") == 1
    assert server.metrics()["quarry_manifest_quarantined_records"] == len(damaged_paths)
    assert "set aside (quarantined)" in server.log_text()
    # Its file is kept for repair: the orphan sweep at start does not take it.
    for path in damaged_paths:
        assert (server.data_dir / "objects" / path).is_file(), path
    # New events still go in and come out.
    server.send_batch_ok("kept", [{"data": {"n": 3}}])
    server.seal()
    assert server.scalar("SELECT sum(n) FROM kept") == 4
