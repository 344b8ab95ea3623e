"""The whole query oracle (test_query_oracle.py) once more against a cluster:
two ingest nodes and three query nodes on one bucket of a real S3-compatible
server (SeaweedFS `weed mini`, started here on loopback). The oracle's hours are
sealed by alternating ingest nodes and its buffered rows stay unsealed on both;
every question goes to a query node that distributes it over all three and
reads both ingest nodes' buffers. Every answer must equal DuckDB's over the
same rows, as the single node's does.
"""

from __future__ import annotations

import random

import pytest

from harness import free_port
from s3_server import SeaweedS3
from test_query_oracle import *  # noqa: F403 (the oracle's tests, collected here too)
from test_query_oracle import (
    BUFFERED_EVENTS,
    DATASET,
    EVENTS_PER_HOUR,
    SEALED_HOURS,
    as_batch,
    make_events,
    oracle_db,
)


@pytest.fixture(scope="module")
def s3_cluster_bucket(tmp_path_factory):
    server = SeaweedS3(tmp_path_factory.mktemp("weed")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def loaded(module_quarry, s3_cluster_bucket):
    """(a query node of the cluster, duckdb connection) over the same rows."""
    s3 = s3_cluster_bucket
    shared = {"storage": s3.storage_config("oracle"), "objects": s3.objects("oracle")}
    config = {
        "storage": {"seal_max_rows": EVENTS_PER_HOUR, "seal_max_age_secs": 3600,
                    "partition_width_secs": 3600},
        "rollup_defaults": {"traces": False},
    }
    ingest = [
        module_quarry(config=config, **shared, args=[
            "--role", "ingest", "--node-id", f"ingest-{n}", "--worker", f"127.0.0.1:{free_port()}"])
        for n in range(2)
    ]
    ingest_peers = ",".join(
        "http://" + node.args[node.args.index("--worker") + 1] for node in ingest)
    ports = [free_port() for _ in range(3)]
    peers = ",".join(f"http://127.0.0.1:{port}" for port in ports)
    cluster = [
        module_quarry(config={**config, "cluster": {"scan_bytes_per_task": 1}}, **shared, args=[
            "--role", "query", "--worker", f"127.0.0.1:{port}", "--peers", peers,
            "--ingest-peers", ingest_peers])
        for port in ports
    ]

    rng = random.Random(20240301)
    events = []
    for hour in range(SEALED_HOURS):
        hour_events = make_events(hour, EVENTS_PER_HOUR, rng)
        node = ingest[hour % 2]
        node.send_batch_ok(DATASET, as_batch(hour_events))
        node.seal()
        events += hour_events
    buffered = make_events(SEALED_HOURS, BUFFERED_EVENTS, rng)
    half = len(buffered) // 2
    ingest[0].send_batch_ok(DATASET, as_batch(buffered[:half]))
    ingest[1].send_batch_ok(DATASET, as_batch(buffered[half:]))
    events += buffered
    # The coordinator hands stages only to peers that answered its last check.
    coordinator = cluster[0]
    assert coordinator.scalar(f'SELECT count(*) AS n FROM "{DATASET}"') == len(events)
    return coordinator, oracle_db(events)
