"""The real Honeycomb Python SDK (libhoney) sends to Quarry unmodified."""

from __future__ import annotations

import datetime as dt
import json

import libhoney
import pyarrow as pa
import pytest
from libhoney.transmission import Transmission

from harness import ns_of, rfc3339_to_ns

DATASET = "libhoney-ds"
EVENTS = 50
# Events with i % SAMPLED_EVERY == 0 are sent pre-sampled at SAMPLE_RATE.
SAMPLED_EVERY = 5
SAMPLE_RATE = 10
ENDPOINTS = ["/api/cart", "/api/pay", "/healthz"]


def event_fields(i: int) -> dict:
    """Varied fields of event i: ints, floats, bools, strings, nested, arrays, sparse."""
    fields = {
        "id": f"lh-{i:03d}",
        "seq": i,
        "duration_ms": i * 0.5 + 0.25,
        "endpoint": ENDPOINTS[i % len(ENDPOINTS)],
        "ok": i % 7 != 0,
        "user": {"name": f"user-{i % 5}", "plan": "pro" if i % 2 else "free"},
    }
    if i % 4 == 0:
        fields["retries"] = i // 4
    if i % 10 == 3:
        fields["tags"] = ["checkout", f"v{i}"]
    return fields


def event_time(base: dt.datetime, i: int) -> dt.datetime:
    """The time libhoney stamps on event i (naive UTC, as libhoney's own created_at)."""
    return base + dt.timedelta(seconds=i, microseconds=1000 * i + 7)


def test_libhoney_events_arrive_with_fields_types_and_sample_rates(server):
    # Recent event times, to microseconds (libhoney's precision), fixed per event.
    base = dt.datetime.now(dt.timezone.utc).replace(microsecond=0, tzinfo=None) - dt.timedelta(
        minutes=10
    )
    libhoney.init(
        writekey="libhoney-test-key",
        dataset=DATASET,
        api_host=server.base,
        block_on_send=True,
        block_on_response=True,
    )
    try:
        responses = libhoney.responses()
        libhoney.add_field("service.name", "libhoney-svc")
        for i in range(EVENTS):
            ev = libhoney.new_event()
            ev.add(event_fields(i))
            ev.created_at = event_time(base, i)
            ev.add_metadata(f"lh-{i:03d}")
            if i % SAMPLED_EVERY == 0:
                ev.sample_rate = SAMPLE_RATE
                # send() would drop most of these client-side; send_presampled() keeps
                # each one and tells the server the rate.
                ev.send_presampled()
            else:
                ev.send()
    finally:
        libhoney.close()

    results = []
    while True:
        item = responses.get(timeout=30)
        if item is None:
            break
        results.append(item)
    assert sorted(r["metadata"] for r in results) == [f"lh-{i:03d}" for i in range(EVENTS)]
    bad = [r for r in results if r["status_code"] != 202 or r["error"]]
    assert not bad, f"libhoney saw failures: {bad[:5]}"

    rows = server.rows(f'SELECT * FROM "{DATASET}" ORDER BY seq')
    assert len(rows) == EVENTS
    for i, row in enumerate(rows):
        want = event_fields(i)
        expected = {
            "id": want["id"],
            "seq": i,
            "duration_ms": want["duration_ms"],
            "endpoint": want["endpoint"],
            "ok": want["ok"],
            "user.name": want["user"]["name"],
            "user.plan": want["user"]["plan"],
            "service.name": "libhoney-svc",
            "meta.sample_rate": SAMPLE_RATE if i % SAMPLED_EVERY == 0 else 1,
        }
        if "retries" in want:
            expected["retries"] = want["retries"]
        got = {k: v for k, v in row.items() if k not in ("timestamp", "tags")}
        assert got == expected, f"event {i}"
        assert ns_of(event_time(base, i).replace(tzinfo=dt.timezone.utc)) == server_ns(row)
        if "tags" in want:
            assert json.loads(row["tags"]) == want["tags"], f"event {i} tags: {row['tags']!r}"
        else:
            assert "tags" not in row, f"event {i} has tags {row.get('tags')!r}"

    assert server.scalar(f'SELECT sum("meta.sample_rate") AS w FROM "{DATASET}"') == (
        SAMPLE_RATE * (EVENTS // SAMPLED_EVERY) + (EVENTS - EVENTS // SAMPLED_EVERY)
    )

    # Column types, exactly as Arrow reports them and as the columns API names them.
    resp = server.sql(f'SELECT * FROM "{DATASET}"', "arrow")
    assert resp.status_code == 200, resp.text[:500]
    schema = pa.ipc.open_stream(resp.content).schema
    assert schema.field("seq").type == pa.int64()
    assert schema.field("retries").type == pa.int64()
    assert schema.field("meta.sample_rate").type == pa.int64()
    assert schema.field("duration_ms").type == pa.float64()
    assert schema.field("ok").type == pa.bool_()
    for name in ("id", "endpoint", "user.name", "tags", "service.name"):
        t = schema.field(name).type
        assert pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t), (
            name,
            t,
        )
    ts = schema.field("timestamp").type
    assert pa.types.is_timestamp(ts) and ts.unit == "ns" and ts.tz in ("UTC", "+00:00"), ts

    columns = server.columns(DATASET)
    assert {k: columns.get(k) for k in ("seq", "duration_ms", "ok", "endpoint", "user.name", "tags")} == {
        "seq": "integer",
        "duration_ms": "float",
        "ok": "boolean",
        "endpoint": "string",
        "user.name": "string",
        "tags": "string",
    }
    assert DATASET in server.datasets()


def server_ns(row: dict) -> int:
    """The row's timestamp in nanoseconds."""
    assert isinstance(row.get("timestamp"), str), row
    return rfc3339_to_ns(row["timestamp"])


@pytest.mark.parametrize("gzip_enabled", [True, False])
def test_libhoney_with_and_without_gzip(server, gzip_enabled):
    """libhoney gzips batches by default; plain bodies must work too."""
    client = libhoney.Client(
        writekey="k",
        dataset="libhoney-gzip",
        api_host=server.base,
        block_on_send=True,
        block_on_response=True,
        transmission_impl=Transmission(
            block_on_send=True, block_on_response=True, gzip_enabled=gzip_enabled
        ),
    )
    try:
        responses = client.responses()
        for i in range(20):
            ev = client.new_event({"n": i, "gz": gzip_enabled})
            ev.send()
    finally:
        client.close()
    statuses = []
    while (item := responses.get(timeout=30)) is not None:
        statuses.append(item["status_code"])
    assert statuses == [202] * 20
    assert server.scalar(
        f'SELECT sum(n) AS s FROM "libhoney-gzip" WHERE gz = {str(gzip_enabled).lower()}'
    ) == sum(range(20))
