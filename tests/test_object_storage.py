"""Segments and the manifest on a real S3-compatible server (SeaweedFS `weed mini`,
started here on loopback): what lands in the bucket, the local read cache, kill -9
recovery from the bucket, and an S3 outage during ingest that loses no
acknowledged event.

These tests start their own S3 server (the outage test stops it), whatever
`QUARRY_TEST_STORAGE` says; the rest of the suite runs on S3 with that variable.
"""

from __future__ import annotations

import time

import pytest
import requests

from harness import Quarry, error_message
from s3_server import SeaweedS3

DATASET = "s3-events"
START_S = 1_700_000_000


@pytest.fixture
def s3(tmp_path):
    server = SeaweedS3(tmp_path / "weed").start()
    yield server
    server.stop()


def events(first: int, count: int) -> list[dict]:
    return [
        {
            "time": START_S + (i % 3600),
            "data": {"id": f"e{i}", "service": f"svc-{i % 5}", "duration_ms": float(i % 97)},
        }
        for i in range(first, first + count)
    ]


def on_s3(quarry, s3: SeaweedS3, prefix: str, storage: dict | None = None, **kw) -> Quarry:
    keys = {**s3.storage_config(prefix), **(storage or {})}
    return quarry(storage=keys, objects=s3.objects(prefix), **kw)


def test_objects_live_in_the_bucket_and_repeated_queries_are_read_from_the_cache(s3, quarry):
    server = on_s3(quarry, s3, "cache-test")
    server.send_batch_ok(DATASET, events(0, 3000))
    server.seal()
    segments = [key for key in server.objects.keys("segments") if key.endswith(".parquet")]
    assert segments, server.objects.keys("")
    assert server.objects.keys("_manifest/log"), "the manifest is in the bucket"
    assert not (server.data_dir / "objects").exists(), "nothing is stored locally"

    count = f'SELECT count(*) AS n, sum(duration_ms) AS s FROM "{DATASET}"'
    before = server.metrics()
    first = server.rows(count)
    assert first == [{"n": 3000, "s": float(sum(i % 97 for i in range(3000)))}]
    middle = server.metrics()
    assert middle["quarry_read_cache_misses_total"] > before["quarry_read_cache_misses_total"]
    assert middle["quarry_read_cache_miss_bytes_total"] > 0
    assert middle["quarry_read_cache_bytes"] == middle["quarry_read_cache_miss_bytes_total"]

    assert server.rows(count) == first
    after = server.metrics()
    assert after["quarry_read_cache_misses_total"] == middle["quarry_read_cache_misses_total"], (
        "a repeated query downloads nothing"
    )
    assert after["quarry_read_cache_hits_total"] > middle["quarry_read_cache_hits_total"]
    assert after["quarry_read_cache_hit_bytes_total"] > 0

    # kill -9: the manifest and segments come back from the bucket (the cache
    # directory is emptied at start, so the first query downloads again).
    server.restart()
    assert server.rows(count) == first
    assert server.metrics()["quarry_read_cache_misses_total"] > 0


def test_a_bad_object_store_url_is_a_clear_startup_error(quarry):
    server = quarry(storage={"object_store": "gs://bucket"}, start=False)
    with pytest.raises(Exception):
        server.start()
    assert "expected s3://bucket" in server.log_text(), server.log_tail()


def test_an_s3_outage_during_ingest_loses_no_acknowledged_event(s3, quarry):
    """S3 is stopped for 30 s while clients keep sending: acknowledgements come from
    the local WAL, sealing fails with clear errors and retries, queries over the
    buffered (and cached) data keep answering, and once S3 is back every
    acknowledged event is sealed into the bucket."""
    server = on_s3(
        quarry,
        s3,
        "outage",
        storage={
            "seal_max_age_secs": 1,
            "seal_max_rows": 2000,
            "s3": {**s3.storage_config("outage")["s3"], "max_retries": 1, "retry_timeout_secs": 3,
                   "request_timeout_secs": 3},
        },
    )
    acked: list[str] = []
    refused = 0

    def send(first: int, count: int) -> None:
        nonlocal refused
        batch = events(first, count)
        try:
            resp = server.send_batch(DATASET, batch)
        except requests.RequestException as exc:
            raise AssertionError(f"the server stopped answering: {exc}") from exc
        if resp.status_code == 429:
            refused += 1
            error_message(resp)
            return
        assert resp.status_code == 200, resp.text[:500]
        for item, status in zip(batch, resp.json()):
            if status.get("status") == 202:
                acked.append(item["data"]["id"])

    next_id = 0
    for _ in range(10):
        send(next_id, 200)
        next_id += 200
    server.seal()
    warm = server.scalar(f'SELECT count(*) AS n FROM "{DATASET}"')
    assert warm == len(acked) == 2000

    s3.stop()
    outage_ends = time.monotonic() + 30
    sent_during_outage = 0
    while time.monotonic() < outage_ends and sent_during_outage < 200:
        send(next_id, 100)
        next_id += 100
        sent_during_outage += 1
        time.sleep(0.1)
    # Queries over cached segments and buffered rows keep answering.
    during = server.scalar(f'SELECT count(*) AS n FROM "{DATASET}"')
    assert during == len(acked), (during, len(acked))
    # Sealing failed meanwhile, with a clear error and no panic.
    log = server.log_text()
    assert "sealing failed; rows stay buffered and will be retried" in log, server.log_tail()
    time.sleep(max(0.0, outage_ends - time.monotonic()))

    s3.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.metrics()["quarry_store_buffered_bytes"] == 0:
            break
        time.sleep(0.5)
    assert server.metrics()["quarry_store_buffered_bytes"] == 0, "sealing did not catch up"
    ids = {row["id"] for row in server.rows(f'SELECT id FROM "{DATASET}"')}
    assert ids == set(acked), (len(ids), len(acked))
    assert len(acked) > 2000 and refused < sent_during_outage

    # And they are in the bucket: a fresh start from the bucket alone (the WAL
    # holds nothing unsealed) answers the same.
    server.restart()
    assert server.scalar(f'SELECT count(DISTINCT id) AS n FROM "{DATASET}"') == len(acked)
    assert server.scalar(f'SELECT count(*) AS n FROM "{DATASET}"') == len(acked)
