"""Per-environment quotas and usage (docs/pipeline.md): one environment flooding at
ten times its limit is refused (429 with Retry-After over HTTP, RESOURCE_EXHAUSTED
with RetryInfo over gRPC) while the other is never refused; every event the flooder
had acknowledged is stored; a storage quota refuses writes; usage is reported by the
API and written to the `quarry-usage` dataset."""

from __future__ import annotations

import json
import threading
import time

import grpc
import requests
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from harness import HTTP_TIMEOUT_S

QUIET_KEY = "key-of-quiet"
NOISY_KEY = "key-of-noisy"
CONFIG = {
    "auth": {"api_keys": {QUIET_KEY: "quiet", NOISY_KEY: "noisy"}},
    "pipeline": {"usage_interval": "1s"},
}
EVENTS_PER_SECOND = 200
BATCH = 50
# The flooder's pace: ten times its limit, for FLOOD_SECONDS.
FLOOD_BATCHES_PER_SECOND = 10 * EVENTS_PER_SECOND // BATCH
FLOOD_SECONDS = 3
TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
# Bound of every polling loop.
POLL_ATTEMPTS = 300


def put_quota(server, environment: str, quota: dict) -> None:
    resp = requests.put(
        f"{server.base}/api/v1/admin/pipeline/{environment}",
        data=json.dumps({"quota": quota}),
        headers=server.headers(extra={"Content-Type": "application/json"}),
        timeout=HTTP_TIMEOUT_S,
    )
    assert resp.status_code == 200, resp.text


def batch_of(prefix: str, start: int) -> list[dict]:
    return [{"data": {"id": f"{prefix}-{start + i}", "n": start + i}} for i in range(BATCH)]


def flood(server, acknowledged: list[str], refusals: list[requests.Response]) -> None:
    """Sends batches to `noisy` at ten times its limit; records what was acknowledged."""
    sent = 0
    started = time.monotonic()
    for index in range(FLOOD_BATCHES_PER_SECOND * FLOOD_SECONDS):
        # Paced, not timed: the pace only makes the flood ten times the limit.
        due = started + index / FLOOD_BATCHES_PER_SECOND
        time.sleep(max(0.0, due - time.monotonic()))
        items = batch_of("noisy", sent)
        sent += BATCH
        resp = server.send_batch("flood", items, key=NOISY_KEY)
        if resp.status_code == 200:
            statuses = [item["status"] for item in resp.json()]
            assert statuses == [202] * BATCH, statuses
            acknowledged.extend(item["data"]["id"] for item in items)
        else:
            assert resp.status_code == 429, (resp.status_code, resp.text)
            refusals.append(resp)


def spans_request(count: int) -> bytes:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    service = resource_spans.resource.attributes.add(key="service.name")
    service.value.string_value = "noisy-svc"
    spans = resource_spans.scope_spans.add()
    now = time.time_ns()
    for i in range(count):
        spans.spans.add(
            trace_id=(i + 1).to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"), name="s",
            start_time_unix_nano=now, end_time_unix_nano=now + 1000,
        )
    return request.SerializeToString()


def grpc_export(server, body: bytes, key: str) -> None:
    with grpc.insecure_channel(server.otlp_grpc_endpoint) as channel:
        export = channel.unary_unary(
            TRACE_EXPORT, request_serializer=lambda raw: raw, response_deserializer=lambda raw: raw
        )
        export(body, metadata=[("x-honeycomb-team", key)], timeout=30)


def test_a_flooding_environment_is_refused_and_the_other_is_not(quarry):
    server = quarry(config=CONFIG, key=QUIET_KEY)
    put_quota(server, "noisy", {"events_per_second": EVENTS_PER_SECOND, "events_burst": EVENTS_PER_SECOND})

    acknowledged: list[str] = []
    refusals: list[requests.Response] = []
    flooder = threading.Thread(target=flood, args=(server, acknowledged, refusals))
    flooder.start()
    quiet_sent = 0
    quiet_statuses = []
    while flooder.is_alive() and quiet_sent < 100 * BATCH:
        resp = server.send_batch("calm", batch_of("quiet", quiet_sent), key=QUIET_KEY)
        quiet_statuses.append(resp.status_code)
        if resp.status_code == 200:
            quiet_sent += BATCH
        query = server.sql("SELECT count(*) AS n FROM calm", key=QUIET_KEY)
        quiet_statuses.append(query.status_code)
    flooder.join(timeout=120)
    assert not flooder.is_alive()

    # The quiet environment was never refused, for writes or queries.
    assert quiet_statuses and set(quiet_statuses) == {200}, sorted(set(quiet_statuses))
    assert server.scalar("SELECT count(*) FROM calm", key=QUIET_KEY) == quiet_sent

    # The flooder was refused, with a Retry-After and an error naming its quota.
    assert refusals, "no 429 at ten times the limit"
    for resp in refusals:
        retry_after = int(resp.headers["Retry-After"])
        assert 1 <= retry_after <= 60, retry_after
        assert "noisy" in resp.json()["error"] and "events" in resp.json()["error"], resp.text
    assert len(acknowledged) < FLOOD_BATCHES_PER_SECOND * FLOOD_SECONDS * BATCH

    # Every acknowledged event is stored, and nothing of a refused request.
    stored = [row["id"] for row in server.rows("SELECT id FROM flood", key=NOISY_KEY)]
    assert sorted(stored) == sorted(acknowledged)

    # gRPC: RESOURCE_EXHAUSTED with RetryInfo (a request beyond the burst needs a
    # full bucket, which the flood left empty or in debt).
    exhausted = None
    for _ in range(20):
        try:
            grpc_export(server, spans_request(2 * EVENTS_PER_SECOND), NOISY_KEY)
        except grpc.RpcError as exc:
            exhausted = exc
            break
    assert exhausted is not None, "no RESOURCE_EXHAUSTED over gRPC"
    assert exhausted.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    details = dict(exhausted.trailing_metadata() or ())["grpc-status-details-bin"]
    rich = status_pb2.Status.FromString(details)
    retry = error_details_pb2.RetryInfo()
    assert any(d.Unpack(retry) for d in rich.details), rich
    assert retry.retry_delay.seconds + retry.retry_delay.nanos > 0
    # The quiet environment's gRPC is unaffected.
    grpc_export(server, spans_request(2 * EVENTS_PER_SECOND), QUIET_KEY)

    assert _refusals_in_text(server), "no refusal counted on /metrics"


def _refusals_in_text(server) -> bool:
    text = requests.get(server.base + "/metrics", timeout=HTTP_TIMEOUT_S).text
    return any(
        line.startswith("quarry_pipeline_quota_refusals_total{") and 'environment="noisy"' in line
        and float(line.rsplit(" ", 1)[1]) > 0
        for line in text.splitlines()
    )


def test_a_byte_rate_and_a_storage_quota_refuse_only_their_environment(quarry):
    server = quarry(config=CONFIG, key=QUIET_KEY)
    put_quota(server, "noisy", {"bytes_per_second": 1000, "bytes_burst": 1000})
    refused = None
    for index in range(50):
        resp = server.send_batch("bytes", batch_of(f"b{index}", 0), key=NOISY_KEY)
        if resp.status_code == 429:
            refused = resp
            break
        assert resp.status_code == 200, resp.text
    assert refused is not None and "bytes" in refused.json()["error"], refused
    assert int(refused.headers["Retry-After"]) >= 1

    put_quota(server, "noisy", {"storage_bytes": 20_000})
    refused = None
    for index in range(200):
        resp = server.send_batch("stored", batch_of(f"s{index}", 0), key=NOISY_KEY)
        if resp.status_code == 429:
            refused = resp
            break
        assert resp.status_code == 200, resp.text
    assert refused is not None, "the storage quota never refused"
    assert refused.headers["Retry-After"] == "60"
    assert "quota is 20000 bytes" in refused.json()["error"], refused.text
    # The other environment still writes.
    server.send_batch_ok("stored", batch_of("quiet", 0), key=QUIET_KEY)


def test_usage_is_reported_and_queryable(quarry):
    server = quarry(config=CONFIG, key=QUIET_KEY)
    for start in range(0, 4 * BATCH, BATCH):
        server.send_batch_ok("orders", batch_of("u", start), key=QUIET_KEY)
    server.send_batch_ok("other", batch_of("n", 0), key=NOISY_KEY)

    usage = server.get("/api/v1/usage", key=QUIET_KEY).json()
    assert usage["environment"] == "quiet"
    rows = [row for row in usage["usage"] if row["dataset"] == "orders"]
    assert sum(row["events"] for row in rows) == 4 * BATCH
    assert sum(row["bytes_in"] for row in rows) > 0
    assert all(row["hour"].endswith(":00:00Z") for row in rows)
    assert not any(row["dataset"] == "other" for row in usage["usage"])

    # The usage dataset, written every usage interval (1s here): polled, bounded.
    total = None
    for _ in range(POLL_ATTEMPTS):
        if "quarry-usage" in server.datasets(key=QUIET_KEY):
            total = server.scalar(
                "SELECT SUM(events) FROM \"quarry-usage\" WHERE dataset = 'orders'", key=QUIET_KEY
            )
            stored = server.scalar(
                "SELECT MAX(bytes_stored) FROM \"quarry-usage\" WHERE dataset = 'orders'", key=QUIET_KEY
            )
            if total == 4 * BATCH and stored and stored > 0:
                break
        time.sleep(0.1)
    assert total == 4 * BATCH, total
    assert server.scalar('SELECT count(*) FROM "quarry-usage" WHERE dataset = \'other\'', key=QUIET_KEY) == 0
