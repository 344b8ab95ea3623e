"""OTLP ingest driven by the real OpenTelemetry Python SDK and its OTLP exporters
(gRPC and HTTP/protobuf), plus OTLP/JSON over plain HTTP and every kind of bad
request. Every mapped field is checked by SQL with its value and its column type."""

from __future__ import annotations

import base64
import copy
import json

import grpc
import pytest
import requests
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2
from opentelemetry import propagate
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetricExporter,
)
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GrpcSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HttpSpanExporter,
)
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from harness import DEFAULT_KEY, HTTP_TIMEOUT_S, error_message, rfc3339_to_ns

# Long enough that the metric reader exports only when flushed by the test.
NEVER_MS = 3_600_000
# gRPC method paths of the three OTLP services.
TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
# A time for hand-written requests: 2024-05-01T12:00:00Z.
T0 = 1_714_564_800_000_000_000
PROTOBUF = {"Content-Type": "application/x-protobuf"}
JSON = {"Content-Type": "application/json"}

SPAN_ATTRIBUTES = {
    "attr.str": "hello",
    "attr.bool": True,
    "attr.int": 42,
    "attr.float": 3.25,
    "attr.bytes": b"\x01\x02\xff",
    "attr.strs": ["a", "b"],
    "attr.ints": [1, 2, 3],
    "attr.floats": [1.5, 2.5],
    "attr.bools": [True, False],
}


def hex_id(number: int, digits: int) -> str:
    return f"{number:0{digits}x}"


def one(rows: list[dict]) -> dict:
    assert len(rows) == 1, rows
    return rows[0]


# ------------------------------------------------------------------ the SDK


def test_sdk_trace_logs_and_metrics_across_two_services(server):
    team = {"x-honeycomb-team": DEFAULT_KEY}
    frontend_resource = Resource.create({"service.name": "frontend", "deployment.environment": "test"})
    backend_resource = Resource.create({"service.name": "backend"})

    # frontend: spans over gRPC.
    frontend = TracerProvider(resource=frontend_resource)
    frontend.add_span_processor(
        SimpleSpanProcessor(
            GrpcSpanExporter(endpoint=server.otlp_grpc_endpoint, insecure=True, headers=team)
        )
    )
    # backend: spans and logs over HTTP/protobuf (gzip, to the OTLP/HTTP port), metrics over gRPC.
    backend = TracerProvider(resource=backend_resource)
    backend.add_span_processor(
        SimpleSpanProcessor(
            HttpSpanExporter(
                endpoint=f"{server.otlp_http_base}/v1/traces",
                headers=team,
                compression=Compression.Gzip,
            )
        )
    )
    logs = LoggerProvider(resource=backend_resource)
    logs.add_log_record_processor(
        SimpleLogRecordProcessor(
            HttpLogExporter(endpoint=f"{server.otlp_http_base}/v1/logs", headers=team)
        )
    )
    reader = PeriodicExportingMetricReader(
        GrpcMetricExporter(endpoint=server.otlp_grpc_endpoint, insecure=True, headers=team),
        export_interval_millis=NEVER_MS,
    )
    meters = MeterProvider(resource=backend_resource, metric_readers=[reader])

    front = frontend.get_tracer("shop.frontend", "1.2.3")
    back = backend.get_tracer("shop.backend", "0.9")
    log = logs.get_logger("shop.backend.log")
    meter = meters.get_meter("shop.backend.metrics")

    with front.start_as_current_span("warmup") as warmup:
        pass
    link = Link(warmup.get_span_context(), {"link.reason": "follows warmup"})
    with front.start_as_current_span(
        "GET /checkout", kind=SpanKind.SERVER, links=[link], attributes=SPAN_ATTRIBUTES
    ) as root:
        root.add_event("cache.miss", {"cache.key": "cart:42", "attempt": 2})
        try:
            raise ValueError("card declined")
        except ValueError as exc:
            root.record_exception(exc, attributes={"payment.provider": "acme"})
        root.set_status(Status(StatusCode.ERROR, "payment failed"))
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        # The "other service" continues the trace from the propagated headers.
        with back.start_as_current_span(
            "charge card", context=propagate.extract(carrier), kind=SpanKind.SERVER
        ) as child:
            child.set_attribute("amount", 12.5)
            child.set_attribute("SampleRate", 10)
            log.emit(
                severity_number=SeverityNumber.WARN,
                severity_text="WARN",
                body={"msg": "retrying", "card": {"last4": "4242", "attempts": 3}},
                attributes={"gateway": "acme"},
            )
            log.emit(severity_number=SeverityNumber.INFO, body="charged")
    requests_total = meter.create_counter("checkout.requests", unit="1", description="requests")
    requests_total.add(5, {"route": "/checkout"})
    requests_total.add(2, {"route": "/checkout"})
    meter.create_gauge("cpu.temperature", unit="Cel").set(37.5, {"cpu": "0"})
    latency = meter.create_histogram("checkout.latency", unit="ms")
    latency.record(12, {"route": "/checkout"})
    latency.record(250, {"route": "/checkout"})
    assert meters.force_flush(timeout_millis=30_000)
    for provider in (frontend, backend, logs, meters):
        provider.shutdown()

    trace_id = hex_id(root.get_span_context().trace_id, 32)
    root_id = hex_id(root.get_span_context().span_id, 16)
    child_id = hex_id(child.get_span_context().span_id, 16)

    # The root span, with attributes of every type and the exception copied onto it.
    span = one(
        server.rows(
            'SELECT * FROM "frontend" WHERE name = \'GET /checkout\' '
            'AND "meta.annotation_type" IS NULL'
        )
    )
    assert span["trace.trace_id"] == trace_id
    assert span["trace.span_id"] == root_id
    assert "trace.parent_id" not in span
    assert span["span.kind"] == "server"
    assert span["status_code"] == 2
    assert span["status_message"] == "payment failed"
    assert span["error"] is True
    assert span["duration_ms"] == pytest.approx((root.end_time - root.start_time) / 1e6)
    assert rfc3339_to_ns(span["timestamp"]) == root.start_time
    assert span["service.name"] == "frontend"
    assert span["deployment.environment"] == "test"
    assert span["telemetry.sdk.language"] == "python"
    assert span["library.name"] == "shop.frontend"
    assert span["library.version"] == "1.2.3"
    assert span["span.num_events"] == 2
    assert span["span.num_links"] == 1
    assert span["meta.signal_type"] == "trace"
    assert span["meta.sample_rate"] == 1
    assert span["attr.str"] == "hello"
    assert span["attr.bool"] is True
    assert span["attr.int"] == 42
    assert span["attr.float"] == 3.25
    assert span["attr.bytes"] == base64.b64encode(b"\x01\x02\xff").decode()
    assert json.loads(span["attr.strs"]) == ["a", "b"]
    assert json.loads(span["attr.ints"]) == [1, 2, 3]
    assert json.loads(span["attr.floats"]) == [1.5, 2.5]
    assert json.loads(span["attr.bools"]) == [True, False]
    assert span["exception.type"] == "ValueError"
    assert span["exception.message"] == "card declined"
    assert "ValueError: card declined" in span["exception.stacktrace"]
    assert span["payment.provider"] == "acme"

    columns = server.columns("frontend")
    expected_types = {
        "attr.str": "string",
        "attr.bool": "boolean",
        "attr.int": "integer",
        "attr.float": "float",
        "attr.bytes": "string",
        "attr.ints": "string",
        "duration_ms": "float",
        "status_code": "integer",
        "error": "boolean",
        "span.num_events": "integer",
        "meta.time_since_span_start_ms": "float",
        "trace.trace_id": "string",
    }
    assert {k: columns.get(k) for k in expected_types} == expected_types

    # Span events and the link are rows of their own.
    events = server.rows(
        'SELECT * FROM "frontend" WHERE "meta.annotation_type" = \'span_event\' ORDER BY timestamp'
    )
    assert [e["name"] for e in events] == ["cache.miss", "exception"]
    for event in events:
        assert event["trace.trace_id"] == trace_id
        assert event["trace.parent_id"] == root_id
        assert event["parent_name"] == "GET /checkout"
        assert event["meta.signal_type"] == "trace"
        assert event["meta.time_since_span_start_ms"] >= 0
    assert events[0]["cache.key"] == "cart:42"
    assert events[0]["attempt"] == 2
    assert events[1]["exception.type"] == "ValueError"
    link_row = one(server.rows('SELECT * FROM "frontend" WHERE "meta.annotation_type" = \'link\''))
    assert link_row["trace.parent_id"] == root_id
    assert link_row["trace.link.trace_id"] == hex_id(warmup.get_span_context().trace_id, 32)
    assert link_row["trace.link.span_id"] == hex_id(warmup.get_span_context().span_id, 16)
    assert link_row["link.reason"] == "follows warmup"

    # The other service's span landed in its own dataset, with its sample rate.
    child_row = one(server.rows('SELECT * FROM "backend" WHERE "meta.signal_type" = \'trace\''))
    assert child_row["trace.trace_id"] == trace_id
    assert child_row["trace.span_id"] == child_id
    assert child_row["trace.parent_id"] == root_id
    assert child_row["amount"] == 12.5
    assert child_row["meta.sample_rate"] == 10
    assert child_row["library.name"] == "shop.backend"
    assert "SampleRate" not in server.columns("backend")

    # Logs carry the trace id and span of the span they were written in.
    log_rows = server.rows(
        'SELECT * FROM "backend" WHERE "meta.signal_type" = \'log\' ORDER BY severity_code'
    )
    assert [r["severity"] for r in log_rows] == ["info", "warn"]
    info, warn = log_rows
    assert info["body"] == "charged"
    assert info["severity_code"] == 9
    assert warn["severity_code"] == 13
    assert warn["severity_text"] == "WARN"
    assert warn["body.msg"] == "retrying"
    assert warn["body.card.last4"] == "4242"
    assert warn["body.card.attempts"] == 3
    assert warn["gateway"] == "acme"
    for row in log_rows:
        assert row["trace.trace_id"] == trace_id
        assert row["trace.parent_id"] == child_id
        assert row["service.name"] == "backend"
    assert server.columns("backend")["body.card.attempts"] == "integer"

    # The whole trace, found by its id across both datasets.
    resp = server.get(f"/api/v1/traces/{trace_id}")
    assert resp.status_code == 200, resp.text[:500]
    whole = resp.json()
    assert whole["roots"] == [root_id]
    assert whole["row_count"] == 7  # 2 spans, 2 span events, 1 link, 2 logs
    by_id = {s["span_id"]: s for s in whole["spans"]}
    assert by_id[root_id]["dataset"] == "frontend"
    assert by_id[child_id]["dataset"] == "backend"
    assert by_id[root_id]["children"] == [child_id]
    assert len(by_id[root_id]["events"]) == 2
    assert len(by_id[root_id]["links"]) == 1
    assert len(by_id[child_id]["logs"]) == 2
    datasets = server.rows(
        f'SELECT DISTINCT "meta.dataset" AS d FROM "__all__" '
        f"WHERE \"trace.trace_id\" = '{trace_id}' ORDER BY d"
    )
    assert [r["d"] for r in datasets] == ["backend", "frontend"]

    # Metrics: one row per data point, kind, temporality and monotonicity kept.
    points = {
        r["metric.name"]: r
        for r in server.rows('SELECT * FROM "backend" WHERE "meta.signal_type" = \'metric\'')
    }
    assert set(points) == {"checkout.requests", "cpu.temperature", "checkout.latency"}
    counter = points["checkout.requests"]
    assert counter["metric.kind"] == "sum"
    assert counter["metric.monotonic"] is True
    assert counter["metric.temporality"] == "cumulative"
    assert counter["value"] == 7.0
    assert counter["route"] == "/checkout"
    assert counter["metric.unit"] == "1"
    assert counter["metric.description"] == "requests"
    gauge = points["cpu.temperature"]
    assert gauge["metric.kind"] == "gauge"
    assert gauge["value"] == 37.5
    assert gauge["cpu"] == "0"
    histogram = points["checkout.latency"]
    assert histogram["metric.kind"] == "histogram"
    assert histogram["metric.temporality"] == "cumulative"
    assert histogram["metric.count"] == 2
    assert histogram["metric.sum"] == 262.0
    assert histogram["metric.min"] == 12.0
    assert histogram["metric.max"] == 250.0
    assert sum(json.loads(histogram["metric.bucket_counts"])) == 2
    assert len(json.loads(histogram["metric.explicit_bounds"])) == len(
        json.loads(histogram["metric.bucket_counts"])
    ) - 1
    assert server.columns("backend")["value"] == "float"


# ------------------------------------------------------------------ OTLP/JSON

RESOURCE = {
    "attributes": [
        {"key": "service.name", "value": {"stringValue": "json-svc"}},
        {"key": "host.cores", "value": {"intValue": "8"}},
    ]
}
SCOPE = {"name": "hand.written", "version": "2.0"}


def every_value_type() -> list[dict]:
    return [
        {"key": "s", "value": {"stringValue": "text"}},
        {"key": "b", "value": {"boolValue": True}},
        {"key": "i", "value": {"intValue": "-42"}},
        {"key": "d", "value": {"doubleValue": 0.5}},
        {"key": "raw", "value": {"bytesValue": "3q2+7w=="}},
        {"key": "arr", "value": {"arrayValue": {"values": [{"intValue": "1"}, {"stringValue": "x"}]}}},
        {
            "key": "map",
            "value": {
                "kvlistValue": {
                    "values": [
                        {"key": "n", "value": {"intValue": "7"}},
                        {"key": "deep", "value": {"kvlistValue": {"values": [
                            {"key": "ok", "value": {"boolValue": False}}]}}},
                    ]
                }
            },
        },
    ]


def traces_json() -> dict:
    trace_id = "5b8efff798038103d269b633813fc60c"
    return {
        "resourceSpans": [{
            "resource": RESOURCE,
            "scopeSpans": [{
                "scope": SCOPE,
                "spans": [
                    {
                        "traceId": trace_id,
                        "spanId": "eee19b7ec3c1b174",
                        "name": "root",
                        "kind": 2,
                        "startTimeUnixNano": str(T0),
                        "endTimeUnixNano": str(T0 + 25_000_000),
                        "attributes": every_value_type(),
                        "events": [{
                            "timeUnixNano": str(T0 + 5_000_000),
                            "name": "exception",
                            "attributes": [
                                {"key": "exception.type", "value": {"stringValue": "KeyError"}},
                            ],
                        }],
                        "links": [{"traceId": "0af7651916cd43dd8448eb211c80319c",
                                   "spanId": "b7ad6b7169203331"}],
                        "status": {"code": 2, "message": "broken"},
                    },
                    {
                        "traceId": trace_id,
                        "spanId": "eee19b7ec3c1b175",
                        "parentSpanId": "eee19b7ec3c1b174",
                        "name": "child",
                        "kind": 3,
                        "startTimeUnixNano": str(T0 + 1_000_000),
                        "endTimeUnixNano": str(T0 + 2_000_000),
                    },
                ],
            }],
        }]
    }


def logs_json() -> dict:
    return {
        "resourceLogs": [{
            "resource": RESOURCE,
            "scopeLogs": [{
                "scope": SCOPE,
                "logRecords": [
                    {
                        "timeUnixNano": str(T0),
                        "severityNumber": 17,
                        "severityText": "ERROR",
                        "traceId": "5b8efff798038103d269b633813fc60c",
                        "spanId": "eee19b7ec3c1b174",
                        "body": {"kvlistValue": {"values": [
                            {"key": "msg", "value": {"stringValue": "failed"}}]}},
                        "attributes": every_value_type(),
                    },
                    {"observedTimeUnixNano": str(T0 + 1), "body": {"stringValue": "plain"}},
                ],
            }],
        }]
    }


def metrics_json() -> dict:
    return {
        "resourceMetrics": [{
            "resource": RESOURCE,
            "scopeMetrics": [{
                "scope": SCOPE,
                "metrics": [
                    {"name": "hits", "unit": "1", "sum": {
                        "aggregationTemporality": 1, "isMonotonic": True,
                        "dataPoints": [{"asInt": "12", "timeUnixNano": str(T0),
                                        "attributes": every_value_type()}]}},
                    {"name": "load", "gauge": {"dataPoints": [
                        {"asDouble": 0.75, "timeUnixNano": str(T0)}]}},
                    {"name": "latency", "histogram": {
                        "aggregationTemporality": 2,
                        "dataPoints": [{"timeUnixNano": str(T0), "count": "3", "sum": 7.5,
                                        "bucketCounts": ["1", "2"], "explicitBounds": [5.0],
                                        "min": 1.0, "max": 4.0}]}},
                    {"name": "sizes", "exponentialHistogram": {
                        "aggregationTemporality": 2,
                        "dataPoints": [{"timeUnixNano": str(T0), "count": "2", "scale": 1,
                                        "zeroCount": "1",
                                        "positive": {"offset": 2, "bucketCounts": ["1"]}}]}},
                    {"name": "rpc", "summary": {"dataPoints": [
                        {"timeUnixNano": str(T0), "count": "4", "sum": 10.0,
                         "quantileValues": [{"quantile": 0.5, "value": 2.0}]}]}},
                ],
            }],
        }]
    }


ID_KEYS = {"traceId", "spanId", "parentSpanId"}


def to_protobuf(message, otlp_json: dict) -> bytes:
    """The protobuf encoding of an OTLP/JSON document (ids hex -> base64, the
    standard protobuf JSON mapping otherwise)."""

    def fix(node):
        if isinstance(node, dict):
            return {
                k: (base64.b64encode(bytes.fromhex(v)).decode() if k in ID_KEYS else fix(v))
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [fix(x) for x in node]
        return node

    return json_format.ParseDict(fix(copy.deepcopy(otlp_json)), message()).SerializeToString()


@pytest.mark.parametrize(
    "path,document,message,rows,order",
    [
        ("/v1/traces", traces_json, ExportTraceServiceRequest, 4,
         '"trace.span_id", "meta.annotation_type", timestamp'),
        ("/v1/logs", logs_json, ExportLogsServiceRequest, 2, "timestamp"),
        ("/v1/metrics", metrics_json, ExportMetricsServiceRequest, 5, '"metric.name"'),
    ],
)
def test_otlp_json_maps_like_protobuf(server, path, document, message, rows, order):
    """The same request as OTLP/JSON (to the OTLP/HTTP port) and as protobuf (to the
    API port) gives identical rows."""
    resp = server.post(
        path, json.dumps(document()), headers={**JSON, "x-honeycomb-dataset": "from-json"}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json() == {}
    assert resp.headers["content-type"].startswith("application/json")
    resp = requests.post(
        server.otlp_http_base + path,
        data=to_protobuf(message, document()),
        headers={**PROTOBUF, "x-honeycomb-dataset": "from-protobuf", "X-Honeycomb-Team": DEFAULT_KEY},
        timeout=HTTP_TIMEOUT_S,
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/x-protobuf"
    assert resp.content == b""  # an empty export response: everything accepted

    from_json = server.rows(f'SELECT * FROM "from-json" ORDER BY {order}')
    from_protobuf = server.rows(f'SELECT * FROM "from-protobuf" ORDER BY {order}')
    assert len(from_json) == rows
    assert from_json == from_protobuf
    assert server.columns("from-json") == server.columns("from-protobuf")

    first = from_json[0]
    assert first["service.name"] == "json-svc"
    assert first["host.cores"] == 8
    assert first["library.name"] == "hand.written"
    columns = server.columns("from-json")
    typed = {"s": "string", "b": "boolean", "i": "integer", "d": "float",
             "raw": "string", "arr": "string", "map.n": "integer", "map.deep.ok": "boolean"}
    assert {k: columns.get(k) for k in typed} == typed
    row = next(r for r in from_json if "s" in r)
    assert (row["s"], row["b"], row["i"], row["d"]) == ("text", True, -42, 0.5)
    assert row["raw"] == "3q2+7w=="
    assert json.loads(row["arr"]) == [1, "x"]
    assert (row["map.n"], row["map.deep.ok"]) == (7, False)

    if path == "/v1/traces":
        spans = [r for r in from_json if "meta.annotation_type" not in r]
        root = next(r for r in spans if r["name"] == "root")
        assert root["trace.trace_id"] == "5b8efff798038103d269b633813fc60c"
        assert root["span.kind"] == "server"
        assert root["duration_ms"] == 25.0
        assert root["error"] is True and root["status_message"] == "broken"
        assert root["exception.type"] == "KeyError"
        child = next(r for r in spans if r["name"] == "child")
        assert child["trace.parent_id"] == "eee19b7ec3c1b174"
        assert child["span.kind"] == "client"
        link = next(r for r in from_json if r.get("meta.annotation_type") == "link")
        assert link["trace.link.span_id"] == "b7ad6b7169203331"
    elif path == "/v1/logs":
        error = next(r for r in from_json if r.get("severity") == "error")
        assert error["body.msg"] == "failed"
        assert error["trace.parent_id"] == "eee19b7ec3c1b174"
        plain = next(r for r in from_json if r.get("body") == "plain")
        assert rfc3339_to_ns(plain["timestamp"]) == T0 + 1
    else:
        by_name = {r["metric.name"]: r for r in from_json}
        assert by_name["hits"]["value"] == 12.0
        assert by_name["hits"]["metric.temporality"] == "delta"
        assert by_name["load"]["value"] == 0.75
        assert by_name["latency"]["metric.count"] == 3
        assert by_name["latency"]["metric.bucket_counts"] == "[1,2]"
        assert by_name["sizes"]["metric.kind"] == "exponential_histogram"
        assert by_name["sizes"]["metric.positive.offset"] == 2
        assert json.loads(by_name["rpc"]["metric.quantiles"]) == {"0.5": 2.0}


def test_partial_success_and_dataset_from_service(server):
    document = traces_json()
    document["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["traceId"] = "abcd"
    resp = server.post("/v1/traces", json.dumps(document), headers=JSON)
    assert resp.status_code == 200, resp.text
    partial = resp.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1"
    assert "trace_id" in partial["errorMessage"]
    # Without the override the dataset is the service name; the good span is stored.
    names = [r["name"] for r in server.rows('SELECT name FROM "json-svc" WHERE "meta.annotation_type" IS NULL')]
    assert names == ["root"]

    # The same partial success over protobuf.
    resp = server.post(
        "/v1/traces", to_protobuf(ExportTraceServiceRequest, document), headers=PROTOBUF
    )
    assert resp.status_code == 200
    answer = ExportTraceServiceResponse.FromString(resp.content)
    assert answer.partial_success.rejected_spans == 1


# ------------------------------------------------------------------ errors


def grpc_export(server, body: bytes, metadata=None):
    """Calls TraceService/Export with a raw (possibly invalid) protobuf body."""
    with grpc.insecure_channel(server.otlp_grpc_endpoint) as channel:
        export = channel.unary_unary(
            TRACE_EXPORT,
            request_serializer=lambda raw: raw,
            response_deserializer=lambda raw: raw,
        )
        return export(body, metadata=metadata or [("x-honeycomb-team", DEFAULT_KEY)], timeout=30)


def valid_traces() -> bytes:
    return to_protobuf(ExportTraceServiceRequest, traces_json())


def assert_still_serving(server):
    assert server.alive()
    assert server.post("/v1/traces", valid_traces(), headers=PROTOBUF).status_code == 200
    assert grpc_export(server, valid_traces()) == b""


def test_bad_requests_get_the_right_error_and_the_server_keeps_serving(quarry):
    server = quarry(config={"limits": {"max_body_bytes": 4096}})
    malformed = b"\x0a\xff\xff\xff\xff\x0f"

    resp = server.post("/v1/traces", malformed, headers=PROTOBUF)
    assert resp.status_code == 400
    status = status_pb2.Status.FromString(resp.content)
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "protobuf" in status.message

    resp = server.post("/v1/logs", b'{"resourceLogs": [', headers=JSON)
    assert resp.status_code == 400
    assert "OTLP/JSON" in error_message(resp)
    assert resp.json()["code"] == 3

    resp = server.post("/v1/metrics", b"{}", headers={"Content-Type": "text/plain"})
    assert resp.status_code == 415
    assert "application/x-protobuf" in error_message(resp)

    resp = server.post("/v1/traces", valid_traces(), headers={**PROTOBUF, "Content-Encoding": "br"})
    assert resp.status_code == 415

    resp = server.post("/v1/traces", b"not gzip", headers={**PROTOBUF, "Content-Encoding": "gzip"})
    assert resp.status_code == 400

    big = ExportTraceServiceRequest()
    big.resource_spans.add().scope_spans.add().spans.add(name="x" * 5000)
    resp = server.post("/v1/traces", big.SerializeToString(), headers=PROTOBUF)
    assert resp.status_code == 413
    assert status_pb2.Status.FromString(resp.content).message

    resp = server.post("/v1/traces", valid_traces(), headers={**PROTOBUF, "x-honeycomb-dataset": "a/b"})
    assert resp.status_code == 400

    with pytest.raises(grpc.RpcError) as failure:
        grpc_export(server, malformed)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as failure:
        grpc_export(server, big.SerializeToString())
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    assert_still_serving(server)
    spans = server.scalar('SELECT count(*) FROM "json-svc" WHERE "meta.annotation_type" IS NULL')
    assert spans == 4  # two valid requests of two spans; nothing from the bad ones


def test_api_keys_guard_both_receivers(quarry):
    server = quarry(config={"auth": {"api_keys": {"k1": "prod"}}}, key="k1")
    body = valid_traces()
    resp = server.post("/v1/traces", body, key="", headers=PROTOBUF)
    assert resp.status_code == 401
    resp = requests.post(server.otlp_http_base + "/v1/traces", data=body, headers=PROTOBUF,
                         timeout=HTTP_TIMEOUT_S)
    assert resp.status_code == 401
    with pytest.raises(grpc.RpcError) as failure:
        grpc_export(server, body, metadata=[("x-honeycomb-team", "wrong")])
    assert failure.value.code() == grpc.StatusCode.UNAUTHENTICATED

    assert server.post("/v1/traces", body, headers=PROTOBUF).status_code == 200
    assert grpc_export(server, body, metadata=[("x-honeycomb-team", "k1")]) == b""
    assert server.scalar('SELECT count(*) FROM "json-svc"', key="k1") == 2 * 4


def test_overload_answers_429_and_resource_exhausted_with_retry_info(quarry):
    server = quarry(
        config={
            "storage": {
                "max_buffered_bytes": 64 * 1024,
                "seal_max_rows": 1_000_000,
                "seal_max_age_secs": 3600,
            }
        }
    )
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    service = resource_spans.resource.attributes.add(key="service.name")
    service.value.string_value = "load"
    spans = resource_spans.scope_spans.add()
    for i in range(200):
        spans.spans.add(
            trace_id=i.to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"), name="s" * 64,
            start_time_unix_nano=T0, end_time_unix_nano=T0 + 1000,
        )
    body = request.SerializeToString()

    refused = None
    for _ in range(400):
        resp = server.post("/v1/traces", body, headers=PROTOBUF)
        if resp.status_code == 429:
            refused = resp
            break
        assert resp.status_code == 200, resp.text[:300]
    assert refused is not None, "no 429 with a 64 KiB buffer budget"
    assert refused.headers.get("Retry-After") == "1"
    assert status_pb2.Status.FromString(refused.content).code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]

    exhausted = None
    for _ in range(400):
        try:
            grpc_export(server, body)
        except grpc.RpcError as exc:
            exhausted = exc
            break
    assert exhausted is not None, "no RESOURCE_EXHAUSTED over gRPC"
    assert exhausted.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = dict(exhausted.trailing_metadata() or ())["grpc-status-details-bin"]
    rich = status_pb2.Status.FromString(details)
    retry = error_details_pb2.RetryInfo()
    assert any(d.Unpack(retry) for d in rich.details), rich
    assert retry.retry_delay.seconds == 1
    assert server.alive()
