"""Several nodes in roles on one bucket of a real S3-compatible server (SeaweedFS
`weed mini`, started here on loopback): two ingest nodes writing one manifest, a
query node that takes no writes and follows the manifest, and a compactor.
"""

from __future__ import annotations

import re
import threading
import time

import pytest

from harness import Quarry, error_message, free_port
from s3_server import SeaweedS3
from test_rollups import assert_same_answer, query

DATASET = "shared"
START_S = 1_700_000_000
# Seconds a query node may take to see a commit (it reads the manifest every 250 ms).
FOLLOW_DEADLINE_S = 10.0


@pytest.fixture
def s3(tmp_path):
    server = SeaweedS3(tmp_path / "weed").start()
    yield server
    server.stop()


def events(prefix: str, count: int) -> list[dict]:
    return [
        {
            "time": START_S + i,
            "data": {"id": f"{prefix}-{i}", "node": prefix, "duration_ms": float(i % 50)},
        }
        for i in range(count)
    ]


def node(quarry, s3: SeaweedS3, role: str, node_id: str | None = None, **storage) -> Quarry:
    keys = {**s3.storage_config("cluster"), **storage}
    args = ["--role", role] + (["--node-id", node_id] if node_id else [])
    return quarry(storage=keys, objects=s3.objects("cluster"), args=args)


def wait_for_count(server: Quarry, expected: int) -> int:
    deadline = time.monotonic() + FOLLOW_DEADLINE_S
    count: object = None
    while time.monotonic() < deadline:
        resp = server.sql(f'SELECT count(*) AS n FROM "{DATASET}"')
        # Until the node has read the first seal, the dataset does not exist there.
        count = resp.json()[0]["n"] if resp.status_code == 200 else resp.text
        if count == expected:
            return count
        time.sleep(0.1)
    return count


def test_two_ingest_nodes_one_manifest_and_a_query_node_that_follows(s3, quarry):
    ingest_a = node(quarry, s3, "ingest", "ingest-a")
    ingest_b = node(quarry, s3, "ingest", "ingest-b")
    query = node(quarry, s3, "query")

    # A query node takes no writes, and says which node does.
    resp = query.send_batch(DATASET, events("q", 1))
    assert resp.status_code == 421, resp.text
    assert "--role query" in error_message(resp)

    # Both ingest nodes seal into one manifest: each commit after the other's.
    for round_ in range(3):
        ingest_a.send_batch_ok(DATASET, events(f"a{round_}", 100))
        ingest_a.seal()
        ingest_b.send_batch_ok(DATASET, events(f"b{round_}", 150))
        ingest_b.seal()
    assert wait_for_count(query, 750) == 750
    by_node = query.rows(
        f'SELECT node, count(*) AS n FROM "{DATASET}" GROUP BY node ORDER BY node'
    )
    assert [row["n"] for row in by_node] == [100, 100, 100, 150, 150, 150], by_node
    # Each ingest node learned the other's segments when it committed after them.
    assert wait_for_count(ingest_a, 750) == 750

    # kill -9 of an ingest node with unsealed rows: its WAL brings them back, and
    # the other node's seals (which moved the manifest on) do not hide them.
    ingest_a.send_batch_ok(DATASET, events("unsealed", 40))
    ingest_b.send_batch_ok(DATASET, events("b-more", 10))
    ingest_b.seal()
    ingest_a.restart()
    assert ingest_a.scalar(f"SELECT count(*) AS n FROM \"{DATASET}\" WHERE node = 'unsealed'") == 40
    ingest_a.seal()
    assert wait_for_count(query, 800) == 800
    ids = query.rows(f'SELECT count(DISTINCT id) AS n FROM "{DATASET}"')
    assert ids == [{"n": 800}], "no row counted twice"

    # The node id was generated once for a node without --node-id and kept.
    assert (query.data_dir / "node-id").read_text().startswith("node-")


def test_the_compactor_merges_what_ingest_nodes_sealed_and_query_nodes_follow(s3, quarry):
    # Compaction only when asked; replaced files stay readable for the default
    # delay, so a query node that has not yet read the commit still finds them.
    quiet = {"compaction": {"interval_secs": 86400}}
    ingest = node(quarry, s3, "ingest", "ingest-1")
    query = node(quarry, s3, "query")
    compactor = quarry(
        config=quiet,
        storage=s3.storage_config("cluster"),
        objects=s3.objects("cluster"),
        args=["--role", "compactor"],
    )
    for seal in range(4):
        ingest.send_batch_ok(DATASET, events(f"s{seal}", 50))
        ingest.seal()
    assert wait_for_count(query, 200) == 200
    segments = lambda: [k for k in query.objects.keys("segments") if k.endswith(".parquet")]
    assert len(segments()) == 4

    deadline = time.monotonic() + FOLLOW_DEADLINE_S
    while time.monotonic() < deadline and wait_for_count(compactor, 200) != 200:
        time.sleep(0.1)
    report = compactor.post("/api/v1/admin/compact", b"").json()
    assert (report["merges"], report["segments_in"], report["segments_out"]) == (1, 4, 1), report
    # The query node and the ingest node follow the replacement: same answer,
    # read from the merged segment only.
    deadline = time.monotonic() + FOLLOW_DEADLINE_S
    while time.monotonic() < deadline:
        before = query.metrics()
        count = query.scalar(f'SELECT count(*) AS n FROM "{DATASET}"')
        considered = query.metrics()["quarry_query_segments_considered_total"] - before[
            "quarry_query_segments_considered_total"
        ]
        if count == 200 and considered == 1:
            break
        time.sleep(0.1)
    assert (count, considered) == (200, 1)
    ingest.send_batch_ok(DATASET, events("after", 5))
    ingest.seal()
    assert wait_for_count(query, 205) == 205


def test_the_maintenance_lease_moves_when_its_holder_is_killed(s3, quarry):
    # Background compaction a day apart: only admin passes merge, so the test
    # decides what is compacted; the lease is taken and renewed in the background.
    config = {"compaction": {"interval_secs": 86400, "lease_ttl_secs": 3}}

    def compactor(node_id: str) -> Quarry:
        return quarry(
            config=config,
            storage=s3.storage_config("cluster"),
            objects=s3.objects("cluster"),
            args=["--role", "compactor", "--node-id", node_id],
        )

    def compact(server: Quarry):
        return server.post("/api/v1/admin/compact", b"")

    def until_compacts(server: Quarry, deadline_s: float) -> dict:
        deadline = time.monotonic() + deadline_s
        while True:
            resp = compact(server)
            if resp.status_code == 200 or time.monotonic() > deadline:
                assert resp.status_code == 200, resp.text
                return resp.json()
            time.sleep(0.2)

    ingest = node(quarry, s3, "ingest", "ingest-1")
    first = compactor("compactor-1")
    until_compacts(first, 10)
    second = compactor("compactor-2")
    resp = compact(second)
    assert resp.status_code == 409, resp.text
    assert "maintenance lease" in error_message(resp)

    for seal in range(4):
        ingest.send_batch_ok(DATASET, events(f"s{seal}", 50))
        ingest.seal()
    report = until_compacts(first, 10)
    assert (report["merges"], report["segments_in"]) == (1, 4), report

    # The holder dies: once its lease expires (3 s), the standby takes it over.
    first.kill()
    for seal in range(4, 7):
        ingest.send_batch_ok(DATASET, events(f"s{seal}", 50))
        ingest.seal()
    report = until_compacts(second, 20)
    assert (report["merges"], report["segments_in"]) == (1, 4), report
    lease = s3.client().get_object(Bucket="quarry", Key="cluster/_leases/maintenance.json")
    assert b'"compactor-2"' in lease["Body"].read()

    # Every row once: nothing was compacted twice.
    assert wait_for_count(ingest, 350) == 350
    assert ingest.scalar(f'SELECT count(DISTINCT id) AS n FROM "{DATASET}"') == 350


def hourly_events(prefix: str, hour: int, count: int) -> list[dict]:
    return [
        {
            "time": START_S + hour * 3600 + i,
            "data": {
                "id": f"{prefix}-{i}",
                "node": prefix,
                "service": f"svc-{i % 7}",
                "duration_ms": float((i * 37) % 1000) / 10,
            },
        }
        for i in range(count)
    ]


# Questions whose answers a distributed plan must give exactly as one node does:
# plain and grouped aggregates, a Quarry UDAF (weighted quantile), an ordered
# cut through groups.
DISTRIBUTED_QUESTIONS = [
    f'SELECT count(*) AS n, sum(duration_ms) AS s, min(duration_ms) AS lo FROM "{DATASET}"',
    f'SELECT service, count(*) AS n, max(duration_ms) AS m FROM "{DATASET}" '
    "GROUP BY service ORDER BY service",
    f'SELECT service, quarry_quantile(duration_ms, 1, 0.99) AS p99 FROM "{DATASET}" '
    "GROUP BY service ORDER BY service",
    f'SELECT node, count(DISTINCT id) AS ids FROM "{DATASET}" GROUP BY node '
    "ORDER BY ids DESC, node LIMIT 5",
]


WINDOW = {"start_time": START_S, "end_time": START_S + 12 * 3600, "granularity": 3600}
DISTRIBUTED_SPECS = [
    {"calculations": [{"op": "COUNT"}, {"op": "P99", "column": "duration_ms"}],
     "breakdowns": ["service"], **WINDOW},
    {"calculations": [{"op": "HEATMAP", "column": "duration_ms"}, {"op": "AVG", "column": "duration_ms"}],
     "filters": [{"column": "service", "op": "!=", "value": "svc-3"}], **WINDOW},
    {"calculations": [{"op": "COUNT_DISTINCT", "column": "id"}, {"op": "MAX", "column": "duration_ms"}],
     "breakdowns": ["node"], "orders": [{"op": "MAX", "column": "duration_ms", "order": "descending"}],
     "limit": 3, **WINDOW},
]


def read_bytes(server: Quarry) -> float:
    metrics = server.metrics()
    return metrics["quarry_read_cache_hit_bytes_total"] + metrics["quarry_read_cache_miss_bytes_total"]


def query_cluster(quarry, s3: SeaweedS3, size: int = 3) -> list[Quarry]:
    """`size` query nodes on the bucket, each a worker and each distributing its
    queries over all of them, a scan task per byte (every segment file its own task)."""
    ports = [free_port() for _ in range(size)]
    peers = ",".join(f"http://127.0.0.1:{port}" for port in ports)
    return [
        quarry(
            config={"cluster": {"scan_bytes_per_task": 1}},
            storage=s3.storage_config("cluster"),
            objects=s3.objects("cluster"),
            args=["--role", "query", "--worker", f"127.0.0.1:{port}", "--peers", peers],
        )
        for port in ports
    ]


def test_three_query_nodes_split_a_query_and_answer_as_one_node_does(s3, quarry):
    ingest = node(quarry, s3, "ingest", "ingest-1")
    # Twelve segments (one per hour), so the scan has work for three nodes.
    for hour in range(12):
        ingest.send_batch_ok(DATASET, hourly_events(f"h{hour}", hour, 300))
        ingest.seal()
    total = 12 * 300

    single = node(quarry, s3, "query")
    cluster = query_cluster(quarry, s3)
    for server in [single, *cluster]:
        assert wait_for_count(server, total) == total

    for coordinator in cluster:
        # A coordinator hands stages to the peers that answered its last check
        # (twice a second): wait until it has seen all three.
        deadline = time.monotonic() + FOLLOW_DEADLINE_S
        while True:
            before = [read_bytes(server) for server in cluster]
            coordinator.rows(DISTRIBUTED_QUESTIONS[0])
            read = [read_bytes(server) - b for server, b in zip(cluster, before)]
            if all(r > 0 for r in read) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        before = [read_bytes(server) for server in cluster]
        for sql in DISTRIBUTED_QUESTIONS:
            assert coordinator.rows(sql) == single.rows(sql), sql
        read = [read_bytes(server) - b for server, b in zip(cluster, before)]
        # Every node read its share of the segments (through its own cache).
        assert all(r > 0 for r in read), read

    # EXPLAIN ANALYZE shows the split: one stage of three tasks, each scanning
    # its own stretch of the segment files.
    plan = "\n".join(row["plan"] for row in cluster[0].rows(
        f'EXPLAIN ANALYZE SELECT service, count(*) AS n FROM "{DATASET}" GROUP BY service')
        if row.get("plan"))
    assert "tasks=3" in plan, plan
    stretches = [line for line in plan.splitlines() if ": DataSourceExec: file_groups=" in line]
    tasks = [re.search(r"\b(t\d+): DataSourceExec", line).group(1) for line in stretches]
    assert tasks == ["t0", "t1", "t2"], plan
    files = [set(re.findall(r"segments/[^ ,\]]+\.parquet", line)) for line in stretches]
    assert all(files) and sum(map(len, files)) == len(set().union(*files)) == 12, files

    # The UI's path, the query spec, plans through the same sessions.
    for spec in DISTRIBUTED_SPECS:
        distributed = query(cluster[0], DATASET, spec)
        assert_same_answer(query(single, DATASET, spec), distributed, spec)


def test_a_killed_query_node_gives_a_clear_error_never_a_wrong_answer(s3, quarry):
    ingest = node(quarry, s3, "ingest", "ingest-1")
    for hour in range(6):
        ingest.send_batch_ok(DATASET, hourly_events(f"h{hour}", hour, 200))
        ingest.seal()
    cluster = query_cluster(quarry, s3)
    for server in cluster:
        assert wait_for_count(server, 1200) == 1200
    cluster[2].kill()
    sql = DISTRIBUTED_QUESTIONS[1]
    expected = [
        {"service": f"svc-{k}", "n": n, "m": m}
        for k, (n, m) in sorted(
            {
                k: (sum(1 for i in range(200) if i % 7 == k) * 6, max(
                    float((i * 37) % 1000) / 10 for i in range(200) if i % 7 == k))
                for k in range(7)
            }.items()
        )
    ]
    # Until the coordinator notices (it checks its peers twice a second), a query
    # with stages on the dead node is a clear 503; then the live nodes answer.
    deadline = time.monotonic() + FOLLOW_DEADLINE_S
    answered = 0
    while time.monotonic() < deadline and answered < 3:
        resp = cluster[0].sql(sql)
        if resp.status_code == 200:
            assert resp.json() == expected, "an answer without the dead node is the right one"
            answered += 1
        else:
            assert resp.status_code == 503, resp.text
            assert resp.headers.get("Retry-After"), resp.headers
            message = error_message(resp)
            assert "worker" in message and "unreachable" in message, message
        time.sleep(0.1)
    assert answered == 3, "the live nodes answer once the dead one is left out"


# Buffers are sealed only when a test asks (or after an hour).
UNSEALED = {"storage": {"seal_max_age_secs": 3600}}


def ingest_node(quarry, s3: SeaweedS3, node_id: str) -> Quarry:
    """An ingest node with its cluster port, which serves its unsealed events."""
    return quarry(
        config=UNSEALED,
        storage=s3.storage_config("cluster"),
        objects=s3.objects("cluster"),
        args=["--role", "ingest", "--node-id", node_id, "--worker", f"127.0.0.1:{free_port()}"],
    )


def cluster_port(server: Quarry) -> str:
    worker = server.args[server.args.index("--worker") + 1]
    return f"http://{worker}"


def fresh_query_cluster(quarry, s3: SeaweedS3, ingest: list[Quarry], size: int) -> list[Quarry]:
    """`size` query nodes distributing over each other (when more than one) and
    reading the unsealed events of the `ingest` nodes."""
    ports = [free_port() for _ in range(size)]
    peers = ",".join(f"http://127.0.0.1:{port}" for port in ports)
    ingest_peers = ",".join(cluster_port(server) for server in ingest)
    return [
        quarry(
            config={"cluster": {"scan_bytes_per_task": 1}},
            storage=s3.storage_config("cluster"),
            objects=s3.objects("cluster"),
            args=["--role", "query", "--ingest-peers", ingest_peers]
            + (["--worker", f"127.0.0.1:{port}", "--peers", peers] if size > 1 else []),
        )
        for port in ports
    ]


def trace_span(span_id: str, parent: str | None, node: str, at_s: int) -> dict:
    data = {"trace.trace_id": "t-fresh", "trace.span_id": span_id, "name": span_id,
            "service.name": node, "duration_ms": 5.0, "node": node}
    if parent:
        data["trace.parent_id"] = parent
    return {"time": START_S + at_s, "data": data}


def test_every_query_node_sees_every_ingest_nodes_unsealed_events_once(s3, quarry):
    ingest_a = ingest_node(quarry, s3, "ingest-a")
    ingest_b = ingest_node(quarry, s3, "ingest-b")
    cluster = fresh_query_cluster(quarry, s3, [ingest_a, ingest_b], 3)
    single = fresh_query_cluster(quarry, s3, [ingest_a, ingest_b], 1)[0]

    # Part sealed, part buffered on each ingest node; a dataset and a trace
    # spread over both nodes, one dataset only in a buffer.
    for hour in range(0, 6):
        ingest_a.send_batch_ok(DATASET, hourly_events(f"a{hour}", hour, 100))
    ingest_a.seal()
    for hour in range(6, 12):
        ingest_b.send_batch_ok(DATASET, hourly_events(f"b{hour}", hour, 100))
    ingest_b.seal()
    for hour in range(0, 12):
        ingest_a.send_batch_ok(DATASET, hourly_events(f"fa{hour}", hour, 20))
        ingest_b.send_batch_ok(DATASET, hourly_events(f"fb{hour}", hour, 30))
    ingest_a.send_batch_ok("only-buffered", events("x", 7))
    ingest_a.send_batch_ok("spans", [trace_span("root", None, "a", 0), trace_span("a1", "root", "a", 1)])
    ingest_b.send_batch_ok("spans", [trace_span("b1", "root", "b", 2), trace_span("b2", "b1", "b", 3)])
    total = 1200 + 12 * 50

    # Acknowledged is visible: the first query after the writes counts them all.
    for server in [single, *cluster]:
        # Not one wait: a query node that has not read the seals yet reads them first.
        assert server.scalar(f'SELECT count(*) AS n FROM "{DATASET}"') == total
        assert server.scalar('SELECT count(*) AS n FROM "only-buffered"') == 7
        by_dataset = server.rows(
            'SELECT "meta.dataset" AS d, count(*) AS n FROM __all__ GROUP BY 1 ORDER BY 1')
        assert by_dataset == [{"d": "only-buffered", "n": 7}, {"d": DATASET, "n": total},
                              {"d": "spans", "n": 4}], by_dataset
        resp = server.get("/api/v1/traces/t-fresh")
        assert resp.status_code == 200, resp.text
        order = [(s["span_id"], s["depth"]) for s in resp.json()["spans"]]
        assert order == [("root", 0), ("a1", 1), ("b1", 1), ("b2", 2)], order

    # The oracle: three distributing nodes answer as one node does, SQL and specs.
    for sql in DISTRIBUTED_QUESTIONS:
        assert cluster[1].rows(sql) == single.rows(sql), sql
    for spec in DISTRIBUTED_SPECS:
        assert_same_answer(query(single, DATASET, spec), query(cluster[2], DATASET, spec), spec)
    # EXPLAIN ANALYZE shows the distributed plan: the scan's stage in three
    # tasks, each with its own stretch of segment files, the buffers in one.
    plan = "\n".join(row["plan"] for row in cluster[0].rows(
        f'EXPLAIN ANALYZE SELECT service, count(*) AS n FROM "{DATASET}" GROUP BY service') if row.get("plan"))
    assert "DistributedExec" in plan and "tasks=3" in plan, plan
    assert "t0: DataSourceExec" in plan and "t1: DataSourceExec" in plan, plan

    # While both nodes seal their buffers, every answer counts each row once.
    sealing = threading.Thread(target=lambda: (ingest_a.seal(), ingest_b.seal()))
    sealing.start()
    counts = []
    while sealing.is_alive() or len(counts) < 5:
        counts.append(cluster[len(counts) % 3].scalar(f'SELECT count(*) AS n FROM "{DATASET}"'))
    sealing.join()
    assert set(counts) == {total}, counts
    assert cluster[0].scalar(f'SELECT count(DISTINCT id) AS n FROM "{DATASET}"') == total

    # kill -9 of an ingest node holding unsealed events: queries say so (503)
    # rather than answer without them; restarted, its WAL brings them back.
    ingest_b.send_batch_ok(DATASET, events("late", 25))
    ingest_b.kill()
    resp = cluster[0].sql(f'SELECT count(*) AS n FROM "{DATASET}"')
    assert resp.status_code == 503, resp.text
    assert "ingest node" in error_message(resp), error_message(resp)
    ingest_b.start()
    assert cluster[0].scalar(f'SELECT count(*) AS n FROM "{DATASET}"') == total + 25
