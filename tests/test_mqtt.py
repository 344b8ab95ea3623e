"""MQTT sources (`[[sources.mqtt]]`, docs/streams.md) against a real broker
(Debian's mosquitto) and a real client (paho-mqtt) publishing with QoS 1.

Every message is stored exactly once in count and content, including messages
published while Quarry is stopped and messages redelivered after `kill -9`
(deduplicated by their message id, as the docs say); undecodable and oversized
messages go to the dead-letter dataset; a broker that goes away is reconnected to.
"""

from __future__ import annotations

import base64
import json
import subprocess
import uuid

import paho.mqtt.client as mqtt
import pytest
import requests

from harness import default_binary, to_toml
from mqtt_broker import Mosquitto, mosquitto_binary
from stream_checks import DEAD, WAIT_S, count, otlp_spans, stored_ids, wait_for, wait_for_count

pytestmark = pytest.mark.skipif(
    mosquitto_binary() is None,
    reason="mosquitto is not installed (scripts/test installs Debian's mosquitto package)",
)



@pytest.fixture
def broker(tmp_path):
    broker = Mosquitto(tmp_path / "mosquitto").start()
    yield broker
    broker.stop()


def source_toml(broker: Mosquitto, **keys) -> str:
    """A `[[sources.mqtt]]` table for `broker` (a key set to None is left out)."""
    keys = {
        "broker": broker.url,
        "client_id": f"quarry-{uuid.uuid4().hex[:8]}",
        "topics": ["devices/+/telemetry"],
        "format": "json_lines",
        "dataset_topic_level": 1,
        "message_id_field": "msg_id",
        **keys,
    }
    keys = {key: value for key, value in keys.items() if value is not None}
    return "[[sources.mqtt]]\n" + to_toml({"x": keys}).split("\n", 1)[1]


def start_quarry(quarry, broker, config=None, **keys):
    server = quarry(config=config or {}, start=False)
    server.write_config(config or {}, extra=source_toml(broker, **keys))
    return server.start()


def publish(broker: Mosquitto, messages: list[tuple[str, bytes]]) -> None:
    """Publishes (topic, payload) pairs with QoS 1 and waits for every PUBACK."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
        for info in infos:
            info.wait_for_publish(timeout=WAIT_S)
            assert info.is_published(), "the broker did not acknowledge a publish"
    finally:
        client.disconnect()
        client.loop_stop()


def telemetry(device: str, n: int) -> tuple[str, bytes]:
    body = {"msg_id": f"{device}-{n}", "device": device, "seq": n, "temperature": 20.0 + n / 10}
    return f"devices/{device}/telemetry", json.dumps(body).encode()










def wait_subscribed(server) -> None:
    wait_for("the subscription", lambda: "subscribed" in server.log_text(), server)


def source_status(server) -> dict:
    resp = requests.get(server.base + "/api/v1/sources", timeout=10)
    assert resp.status_code == 200, resp.text
    (status,) = resp.json()["sources"]
    return status


def test_every_message_is_stored_once_in_the_dataset_of_its_topic(quarry, broker):
    server = start_quarry(quarry, broker)
    wait_subscribed(server)
    messages = [telemetry(device, n) for n in range(150) for device in ("pump-1", "pump-2")]
    # A topic the filter does not match is not consumed.
    messages.append(("other/pump-1/telemetry", b'{"msg_id":"stray"}'))
    publish(broker, messages)
    for device in ("pump-1", "pump-2"):
        wait_for_count(server, device, 150)
        assert stored_ids(server, device) == sorted(f"{device}-{n}" for n in range(150))
        rows = server.rows(f'SELECT seq, temperature, device FROM "{device}" ORDER BY seq')
        assert [(r["seq"], r["temperature"], r["device"]) for r in rows] == [
            (n, 20.0 + n / 10, device) for n in range(150)
        ]
    assert DEAD not in server.datasets()
    status = source_status(server)
    assert (status["transport"], status["connected"], status["messages"], status["rows"]) == (
        "mqtt",
        True,
        300,
        300,
    )
    metrics = server.metrics()
    assert metrics["quarry_stream_messages_total"] == 300
    assert metrics["quarry_stream_rows_total"] == 300
    assert metrics["quarry_stream_connected"] == 1


def test_messages_published_while_quarry_is_stopped_arrive_after_restart(quarry, broker):
    server = start_quarry(quarry, broker)
    wait_subscribed(server)
    publish(broker, [telemetry("pump-1", n) for n in range(50)])
    wait_for_count(server, "pump-1", 50)
    server.stop()
    # The broker keeps the session: these wait for Quarry.
    publish(broker, [telemetry("pump-1", n) for n in range(50, 200)])
    server.start()
    wait_for_count(server, "pump-1", 200)
    assert stored_ids(server, "pump-1") == sorted(f"pump-1-{n}" for n in range(200))


def test_kill_9_during_consumption_keeps_every_message_once(quarry, broker):
    # Small seals keep the sealed-and-replayed paths both in play.
    config = {"storage": {"seal_max_rows": 300}}
    server = start_quarry(quarry, broker, config=config)
    wait_subscribed(server)
    total = 2000
    publish(broker, [telemetry("pump-1", n) for n in range(total)])
    # Kill it mid-way, with messages written but not yet acknowledged.
    wait_for("some rows", lambda: count(server, "pump-1") >= 200, server)
    server.kill()
    assert server.proc.returncode == -9
    server.start()
    wait_for_count(server, "pump-1", total)
    ids = stored_ids(server, "pump-1")
    assert len(ids) == len(set(ids)) == total


def test_undecodable_and_oversized_messages_go_to_the_dead_letter_dataset(quarry, broker):
    config = {"limits": {"max_body_bytes": 4096}}
    server = start_quarry(quarry, broker, config=config)
    wait_subscribed(server)
    not_json = b"this is not json"
    bad_line = b'{"msg_id":"ok-line"}\n{broken'
    oversized = json.dumps({"msg_id": "big", "blob": "x" * 10_000}).encode()
    publish(
        broker,
        [telemetry("pump-1", 0), ("devices/pump-1/telemetry", not_json)]
        + [("devices/pump-1/telemetry", bad_line), ("devices/pump-1/telemetry", oversized)]
        + [telemetry("pump-1", 1)],
    )
    wait_for_count(server, DEAD, 3)
    wait_for_count(server, "pump-1", 2)
    rows = server.rows(
        f'SELECT source, transport, topic, error, raw_base64, raw_bytes, raw_truncated FROM "{DEAD}" ORDER BY raw_bytes'
    )
    assert [r["raw_bytes"] for r in rows] == [len(not_json), len(bad_line), len(oversized)]
    assert {r["topic"] for r in rows} == {"devices/pump-1/telemetry"}
    assert {r["transport"] for r in rows} == {"mqtt"}
    assert {r["source"] for r in rows} == {"mqtt-0"}
    assert base64.b64decode(rows[0]["raw_base64"]) == not_json
    assert base64.b64decode(rows[1]["raw_base64"]) == bad_line
    assert "line 1" in rows[0]["error"] and "line 2" in rows[1]["error"], rows
    assert "limits.max_body_bytes" in rows[2]["error"]
    # The copy is capped at a quarter of the body limit, so the row fits in it.
    assert base64.b64decode(rows[2]["raw_base64"]) == oversized[:1024]
    assert rows[2]["raw_truncated"] and not rows[0]["raw_truncated"]
    log = server.log_text()
    assert "dead-letter dataset" in log
    metrics = server.metrics()
    assert metrics["quarry_stream_dead_letters_total"] == 3
    assert metrics["quarry_stream_errors_total"] >= 3
    status = source_status(server)
    assert status["dead_letters"] == 3
    assert "oversize" in status["last_error"]


def test_a_broker_that_goes_away_is_reconnected_to_with_its_session(quarry, broker):
    server = start_quarry(quarry, broker)
    wait_subscribed(server)
    publish(broker, [telemetry("pump-1", n) for n in range(20)])
    wait_for_count(server, "pump-1", 20)
    broker.stop()
    wait_for("a connection error in the log", lambda: "MQTT connection failed" in server.log_text(), server)
    metrics = server.metrics()
    assert metrics["quarry_stream_connected"] == 0
    assert metrics["quarry_stream_errors_total"] >= 1
    assert source_status(server)["connected"] is False
    broker.start()
    wait_for("the reconnection", lambda: source_status(server)["connected"], server)
    publish(broker, [telemetry("pump-1", n) for n in range(20, 60)])
    wait_for_count(server, "pump-1", 60)
    assert stored_ids(server, "pump-1") == sorted(f"pump-1-{n}" for n in range(60))


def test_a_source_without_a_dataset_rule_is_a_config_error(quarry, broker):
    server = quarry(start=False)
    server.write_config(
        {},
        extra="[[sources.mqtt]]\n"
        + f'broker = "{broker.url}"\nclient_id = "c"\ntopics = ["a/#"]\nformat = "json_lines"\n',
    )
    with pytest.raises(Exception):
        server.start()
    assert "needs a dataset" in server.log_text()


def test_quarry_load_drives_the_mqtt_path(quarry, broker):
    """`quarry-load --to mqtt` publishes Events API batches to `quarry-load/<dataset>`;
    an MQTT source with `honeycomb_events` stores them in the same datasets, with the
    same counts, as the Events API path would."""
    server = start_quarry(
        quarry,
        broker,
        topics=["quarry-load/+"],
        format="honeycomb_events",
    )
    wait_subscribed(server)
    load = default_binary().parent / "quarry-load"
    assert load.is_file(), f"quarry-load not found at {load} (scripts/test builds it)"
    done = subprocess.run(
        [
            str(load),
            "--to",
            "mqtt",
            "--mqtt-broker",
            broker.url,
            "--url",
            server.base,
            "--events",
            "3000",
            "--batch-size",
            "200",
            "--seed",
            "7",
            "--end-time",
            "1700000000",
            "--wait-secs",
            "120",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("mqtt: sent 3000 events"), done.stdout
    datasets = [d for d in server.datasets() if d != DEAD]
    assert datasets, server.log_tail()
    total = sum(count(server, d) for d in datasets)
    assert total == 3000
    assert DEAD not in server.datasets()



def test_otlp_messages_take_their_service_dataset_and_a_wrong_format_is_dead_lettered(
    quarry, broker
):
    server = start_quarry(
        quarry,
        broker,
        topics=["otel/spans"],
        format="otlp_proto",
        signal="traces",
        dataset_topic_level=None,
    )
    wait_subscribed(server)
    wrong_format = json.dumps({"resourceSpans": "not protobuf"}).encode()
    publish(
        broker,
        [
            ("otel/spans", otlp_spans("checkout", ["GET /cart", "SELECT"], 1)),
            ("otel/spans", wrong_format),
            ("otel/spans", otlp_spans("payments", ["charge"], 2)),
        ],
    )
    wait_for_count(server, "checkout", 2)
    wait_for_count(server, "payments", 1)
    wait_for_count(server, DEAD, 1)
    names = [r["name"] for r in server.rows('SELECT name FROM "checkout" ORDER BY name')]
    assert names == ["GET /cart", "SELECT"]
    (dead,) = server.rows(f'SELECT error, raw_base64 FROM "{DEAD}"')
    assert base64.b64decode(dead["raw_base64"]) == wrong_format
    assert dead["error"], dead
