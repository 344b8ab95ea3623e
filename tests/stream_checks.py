"""Checks shared by the stream-source tests (test_kafka.py, test_mqtt.py): row
counts of a dataset, bounded waits for a condition, the stored message ids, and
OTLP messages as the Collector writes them."""

from __future__ import annotations

import time

# Seconds a condition may take to come true before the test fails.
WAIT_S = 90.0
# Seconds between two looks.
POLL_S = 0.2
# The dead-letter dataset when a source names none.
DEAD = "stream_dead_letters"


def count(server, dataset: str) -> int:
    """Rows of `dataset` (0 while it does not exist)."""
    resp = server.sql(f'SELECT COUNT(*) AS n FROM "{dataset}"')
    if resp.status_code != 200:
        return 0
    return resp.json()[0]["n"]


def wait_for(what, predicate, server=None, timeout=WAIT_S):
    """Polls `predicate` until it is truthy (returned) or `timeout` passes (fails,
    with the server's log tail)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(POLL_S)
    tail = f"\n{server.log_tail()}" if server else ""
    raise AssertionError(f"timed out waiting for {what} (last: {last!r}){tail}")


def wait_for_count(server, dataset: str, expected: int) -> None:
    """Waits for `expected` rows in `dataset`, then checks no more arrive."""
    wait_for(f"{expected} rows in {dataset}", lambda: count(server, dataset) >= expected, server)
    time.sleep(1.0)
    assert count(server, dataset) == expected


def stored_ids(server, dataset: str) -> list[str]:
    """The `msg_id` of every row of `dataset`, sorted."""
    return [r["msg_id"] for r in server.rows(f'SELECT msg_id FROM "{dataset}" ORDER BY msg_id')]


def otlp_spans(service: str, names: list[str], trace: int) -> bytes:
    """An ExportTraceServiceRequest in protobuf, as the Collector's kafka exporter
    writes one (encoding `otlp_proto`, one request per message)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    attribute = resource_spans.resource.attributes.add()
    attribute.key = "service.name"
    attribute.value.string_value = service
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "io.opentelemetry.test"
    start = time.time_ns()
    for n, name in enumerate(names):
        span = scope_spans.spans.add()
        span.trace_id = trace.to_bytes(16, "big")
        span.span_id = (trace * 100 + n + 1).to_bytes(8, "big")
        span.name = name
        span.start_time_unix_nano = start + n
        span.end_time_unix_nano = start + n + 5_000_000
        attr = span.attributes.add()
        attr.key = "span.n"
        attr.value.int_value = n
    return request.SerializeToString()
