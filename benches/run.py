#!/usr/bin/env python3
"""Quarry's benchmark suite: one command, one Markdown and one JSON report.

    benches/run --events 1M          # quick
    benches/run                      # 10M, the default
    benches/run --events 100M

`benches/run` builds `quarry` and `quarry-load` (release) and the Python venv, then
runs this file. Steps: start Quarry on a temporary data dir; load the generator's
events through POST /1/batch/{dataset} with concurrent clients and durable acks
(events/s, server CPU seconds per million events); seal; measure bytes on disk per
event and the raw-JSON-to-disk ratio; ask the questions of issue 5 of Quarry, DuckDB
and chDB (same threads, over Quarry's own Parquet segments), check that every
engine's answers agree, and time them (cold first run + median of warm runs); then
ask the same questions through the query-spec API (issue 14, `POST
/api/v1/query/__all__`) next to each engine's SQL for the same groups and series
(suite/spec.py), checked and timed the same way.
"""

import argparse
import datetime
import hashlib
import json
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from suite import engines, facts, load, questions, report, rollups, spec  # noqa: E402
from suite.server import QuarryServer  # noqa: E402

DEFAULT_TARGET_DIR = Path.home() / ".cache" / "quarry" / "target"


def parse_count(text: str) -> int:
    t = text.strip().replace("_", "")
    factor = {"k": 10**3, "m": 10**6, "g": 10**9}.get(t[-1].lower(), 1)
    return int(float(t[:-1] if factor != 1 else t) * factor)


def parse_args() -> argparse.Namespace:
    target_dir = Path(os.environ.get("CARGO_TARGET_DIR", DEFAULT_TARGET_DIR))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=parse_count, default=10_000_000, help="1M quick, 10M default, 100M")
    p.add_argument("--otlp-events", type=parse_count, default=None,
                   help="events of the OTLP ingest step (default: --events)")
    p.add_argument("--concurrency", type=int, default=4, help="concurrent quarry-load clients")
    p.add_argument("--batch-size", type=int, default=1000, help="events per batch request")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--window", default="4h", help="time span of the data, ending now")
    p.add_argument("--runs", type=int, default=5, help="warm runs per question (median reported)")
    p.add_argument("--gzip", action="store_true", help="gzip request bodies")
    p.add_argument("--pregenerate", choices=["auto", "yes", "no"], default="auto",
                   help="build bodies before timing the load (auto: up to 2M events)")
    p.add_argument("--durability", choices=["fsync", "relaxed"], default="fsync")
    p.add_argument("--profile", default="release", help="cargo profile the binaries come from")
    p.add_argument("--quarry-bin", type=Path, help="default: $CARGO_TARGET_DIR/<profile>/quarry")
    p.add_argument("--load-bin", type=Path, help="default: $CARGO_TARGET_DIR/<profile>/quarry-load")
    p.add_argument("--engines", default="quarry,duckdb,chdb")
    p.add_argument("--work-dir", type=Path, help="where the temporary data dir goes")
    p.add_argument("--keep-data", action="store_true", help="keep the data dir afterwards")
    p.add_argument("--out-dir", type=Path, default=HERE / "results")
    p.add_argument("--note", action="append", default=[], help="a line for the report's notes")
    args = p.parse_args()
    args.quarry_bin = args.quarry_bin or target_dir / args.profile / "quarry"
    args.load_bin = args.load_bin or target_dir / args.profile / "quarry-load"
    args.pregenerate = args.pregenerate == "yes" or (args.pregenerate == "auto" and args.events <= 2_000_000)
    return args


def dir_bytes(path: Path, suffix: str = "") -> tuple[int, int]:
    total = files = 0
    for p in path.rglob("*"):
        if p.is_file() and p.name.endswith(suffix):
            total += p.stat().st_size
            files += 1
    return total, files


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def ingest(args, server: QuarryServer, end_time_s: int, work: Path) -> dict:
    cpu_before = server.cpu_seconds()
    summary = load.run_quarry_load(args.load_bin, server.url, args, end_time_s, work / "load.json")
    cpu = server.cpu_seconds() - cpu_before
    return {
        "events": summary["events"],
        "accepted": summary["accepted"],
        "rejected": summary["rejected"],
        "retries": summary["retries"],
        "seconds": summary["seconds"],
        "events_per_second": summary["events_per_second"],
        "server_cpu_seconds": cpu,
        "cpu_seconds_per_million": cpu / (summary["accepted"] / 1e6),
        "events_per_server_cpu_second": summary["accepted"] / cpu if cpu > 0 else 0.0,
        "server_rss_mib": server.rss_bytes() / 2**20,
        "data_bytes": summary["data_bytes"],
        "body_bytes": summary["body_bytes"],
        "wire_bytes": summary["wire_bytes"],
        "traces": summary["traces"],
        "sample_trace_id": summary["sample_trace_id"],
        "anomaly": summary["anomaly"],
        "start_time_ns": summary["start_time_ns"],
        "end_time_ns": summary["end_time_ns"],
        "command": summary["command"],
    }


def measure_storage(server: QuarryServer, data_dir: Path, ing: dict) -> dict:
    started = time.monotonic()
    server.seal()
    seal_seconds = time.monotonic() - started
    seg_bytes, seg_files = dir_bytes(data_dir / "objects" / "segments", ".parquet")
    objects_bytes, _ = dir_bytes(data_dir / "objects")
    wal_bytes, _ = dir_bytes(data_dir / "wal")
    # Then the steady state queries meet: small segments of a partition merged
    # (the background task would within a minute; asked now so that it cannot run
    # while questions are timed). Measured before it: replaced files stay on disk
    # for a grace period.
    started = time.monotonic()
    compaction = server.compact()
    compaction["seconds"] = time.monotonic() - started
    # The peers read every file under segments/: wait for the replaced inputs to go
    # (the benchmark server deletes them at once, see suite/server.py).
    time.sleep(2)
    events = ing["accepted"]
    return {
        "seal_seconds": seal_seconds,
        "compaction": compaction,
        "segment_files": seg_files,
        "segment_bytes": seg_bytes,
        "objects_bytes": objects_bytes,
        "wal_bytes_after_seal": wal_bytes,
        "bytes_per_event": seg_bytes / events,
        "raw_json_bytes_per_event": ing["data_bytes"] / events,
        "raw_json_to_disk_ratio": ing["data_bytes"] / seg_bytes if seg_bytes else 0.0,
    }


def time_question(engine, question, runs: int) -> dict:
    sql = question.sql[engine.name]
    columns = question.columns
    started = time.perf_counter()
    try:
        rows = engine.query(sql, columns)
    except Exception as error:  # noqa: BLE001 - any engine failure is reported, not fatal
        return {"error": str(error)[:2000], "valid": False, "sql": sql}
    cold_ms = (time.perf_counter() - started) * 1000
    warm = []
    for _ in range(runs):
        started = time.perf_counter()
        engine.query(sql, columns)
        warm.append((time.perf_counter() - started) * 1000)
    return {
        "cold_ms": cold_ms,
        "warm_ms": warm,
        "warm_median_ms": statistics.median(warm),
        "answer": questions.normalize(rows),
        "answer_rows": len(rows),
        "sql": " ".join(sql.split()),
    }


def check_answers(question, per_engine: dict) -> str:
    """Marks each engine valid when its answer agrees with another engine's; returns a summary."""
    answered = {n: r for n, r in per_engine.items() if "answer" in r}
    for name, result in answered.items():
        others = [o for o in answered if o != name]
        result["valid"] = any(questions.agree(question, result["answer"], answered[o]["answer"]) for o in others)
        if not others:
            result["valid"] = False
    valid = [n for n, r in per_engine.items() if r.get("valid")]
    if len(valid) == len(per_engine):
        return "all agree"
    wrong = [n for n in per_engine if n not in valid]
    return "DIFFER: " + ", ".join(wrong)


def ask_questions(args, server: QuarryServer, data_dir: Path, ing: dict, datasets: list[str]) -> tuple[dict, dict]:
    glob = str(data_dir / "objects" / "segments" / "default" / "*" / "*" / "*.parquet")
    sources = questions.Sources(datasets, glob)
    qs = questions.build(sources, ing["start_time_ns"] // 10**9, ing["end_time_ns"] // 10**9,
                         ing["sample_trace_id"])
    threads = os.cpu_count() or 1
    wanted = args.engines.split(",")
    results = {q.key: {"title": q.title, "engines": {}} for q in qs}
    versions = ask_engines(qs, results, wanted, engine_factories(server, threads), time_question,
                           args.runs, "questions")
    return results, versions


def engine_factories(server: QuarryServer, threads: int) -> dict:
    """Engine name -> a function starting that engine."""
    return {"spec": lambda: spec.SpecEngine(server.url),
            "quarry": lambda: engines.QuarryEngine(server.url),
            "duckdb": lambda: engines.DuckDBEngine(threads),
            "chdb": lambda: engines.ChdbEngine(threads)}


def ask_engines(qs, results: dict, wanted: list[str], factories: dict, time_one, runs: int,
                label: str) -> dict:
    """Times every question `qs` on every engine of `wanted` with `time_one`, into
    `results[key]["engines"]`; then checks that the answers agree. Returns each
    engine's version."""
    versions = {}
    for name in wanted:
        log(f"{label} on {name}")
        engine = factories[name]()
        versions[name] = engine.version()
        for q in qs:
            r = time_one(engine, q, runs)
            results[q.key]["engines"][name] = r
            shown = f"{r['cold_ms']:.1f} ms cold, {r['warm_median_ms']:.1f} ms warm" if "cold_ms" in r else r["error"][:200]
            log(f"  {name} {q.key}: {shown}")
        engine.close()
    for q in qs:
        results[q.key]["agreement"] = check_answers(q, results[q.key]["engines"])
        log(f"{q.key}: {results[q.key]['agreement']}")
    return versions


def _timed(call, runs: int) -> tuple:
    """(first result, cold ms, warm ms of each run, each warm run's result)."""
    started = time.perf_counter()
    first = call()
    cold_ms = (time.perf_counter() - started) * 1000
    warm, outputs = [], []
    for _ in range(runs):
        started = time.perf_counter()
        outputs.append(call())
        warm.append((time.perf_counter() - started) * 1000)
    return first, cold_ms, warm, outputs


def time_spec_question(engine, question, runs: int) -> dict:
    """One spec question of one engine: the spec itself (engine "spec") or the SQL for
    the same groups and series; the answer in the question's canonical form."""
    try:
        if engine.name == "spec":
            raw, cold_ms, warm, outputs = _timed(lambda: engine.query_raw(question.body), runs)
            answer = json.loads(raw)
            extra = {
                "spec": question.body,
                "source": answer.get("source"),
                "server_elapsed_ms": statistics.median(json.loads(o)["stats"]["elapsed_ms"] for o in outputs)
                if outputs else None,
                "response_bytes": len(raw),
            }
            canonical = question.from_spec(answer)
            rows = len(answer.get("groups", [])) + len(answer.get("series", []))
        else:
            sql = question.sql[engine.name]
            rows_, cold_ms, warm, _ = _timed(lambda: engine.query(sql, question.columns), runs)
            extra = {"sql": " ".join(sql.split())}
            canonical = question.from_sql(rows_)
            rows = len(rows_)
    except Exception as error:  # noqa: BLE001 - any engine failure is reported, not fatal
        shown = {"spec": question.body} if engine.name == "spec" else {"sql": question.sql[engine.name]}
        return {"error": str(error)[:2000], "valid": False, **shown}
    return {
        "cold_ms": cold_ms,
        "warm_ms": warm,
        "warm_median_ms": statistics.median(warm) if warm else cold_ms,
        "answer": canonical,
        "answer_rows": rows,
        **extra,
    }


def ask_spec_questions(args, server: QuarryServer, data_dir: Path, ing: dict,
                       datasets: list[str]) -> tuple[dict, dict]:
    """The comparison questions through the query spec, and each engine's SQL for the
    same groups and series (issue 14)."""
    glob = str(data_dir / "objects" / "segments" / "default" / "*" / "*" / "*.parquet")
    sources = questions.Sources(datasets, glob)
    qs = spec.build(sources, ing["start_time_ns"] // 10**9, ing["end_time_ns"] // 10**9)
    threads = os.cpu_count() or 1
    wanted = ["spec"] + [n for n in args.engines.split(",") if n in ("quarry", "duckdb", "chdb")]
    results = {q.key: {"title": q.title, "base": q.base, "granularity": q.body["granularity"],
                       "range_s": q.body["end_time"] - q.body["start_time"], "engines": {}} for q in qs}
    # Every SQL weighs counts by meta.sample_rate, as the spec does; percentiles of the
    # peers are unweighted, which is the same only when every rate is 1 (the generator's).
    probe = engines.QuarryEngine(server.url)
    try:
        rate = probe.query(f'SELECT min("meta.sample_rate") AS lo, max("meta.sample_rate") AS hi '
                           f'FROM {sources.quarry(["meta.sample_rate"])}', ["lo", "hi"])[0]
    finally:
        probe.close()
    info = {"dataset": spec.SPEC_DATASET, "sample_rate_min": rate[0], "sample_rate_max": rate[1]}
    ask_engines(qs, results, wanted, engine_factories(server, threads), time_spec_question,
                args.runs, "spec questions")
    return results, info


# Rows of each answer kept in the JSON report (a heatmap has thousands).
ANSWER_HEAD_ROWS = 20


def trim_answers(queries: dict) -> None:
    """Keeps the first rows of every answer and a digest of the whole (answers were
    already compared across engines)."""
    for question in queries.values():
        for result in question["engines"].values():
            if "answer" in result:
                answer = result.pop("answer")
                result["answer_sha256"] = hashlib.sha256(json.dumps(answer, default=str).encode()).hexdigest()
                result["answer_head"] = answer[:ANSWER_HEAD_ROWS]


def main() -> int:
    args = parse_args()
    for binary in (args.quarry_bin, args.load_bin):
        if not binary.is_file():
            sys.exit(f"missing {binary}: build it first (benches/run does)")
    command = "benches/run " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    started_at = datetime.datetime.now(datetime.timezone.utc)
    machine = facts.machine()
    end_time_s = int(time.time())
    work = Path(tempfile.mkdtemp(prefix="quarry-bench-", dir=args.work_dir))
    data_dir = work / "data"
    log(f"data dir {data_dir}; {args.events:,} events; quarry {args.quarry_bin}")
    server = QuarryServer(args.quarry_bin, data_dir, work / "quarry.log", args.durability).start()
    notes = list(args.note)
    rollup = None
    try:
        scenario = load.describe(args.load_bin, args, end_time_s)
        datasets = [s["name"] for s in scenario["services"]]
        log(f"loading through {server.url}/1/batch/{{dataset}} with {args.concurrency} clients")
        ing = ingest(args, server, end_time_s, work)
        log(f"ingest: {ing['events_per_second']:,.0f} events/s, {ing['cpu_seconds_per_million']:.2f} "
            f"server CPU s per 1M events")
        storage = measure_storage(server, data_dir, ing)
        log(f"storage: {storage['bytes_per_event']:.1f} bytes per event, "
            f"raw JSON / disk {storage['raw_json_to_disk_ratio']:.1f}x")
        queries, versions = ask_questions(args, server, data_dir, ing, datasets)
        spec_queries, spec_info = {}, None
        if "quarry" in args.engines.split(","):
            spec_queries, spec_info = ask_spec_questions(args, server, data_dir, ing, datasets)
            if (spec_info["sample_rate_min"], spec_info["sample_rate_max"]) != (1, 1):
                notes.append(f"meta.sample_rate ranges from {spec_info['sample_rate_min']} to "
                             f"{spec_info['sample_rate_max']}: the peers' P99s in the spec section are unweighted")
        if "quarry" in args.engines.split(","):
            log("waiting for the default trace rollups to cover every sealed segment")
            waited = rollups.wait_rollups(server.url, datasets)
            log(f"rollups cover every segment (waited {waited:.1f} s after the questions); timing rollup vs raw")
            rollup = rollups.measure(server.url, datasets, end_time_s, args.runs)
            rollup["wait_seconds"] = waited
            log(f"rollup {rollup['rollup']['warm_median_ms']:.1f} ms, raw {rollup['raw']['warm_median_ms']:.1f} ms "
                f"({rollup['speedup']:.1f}x), {rollup['agreement']}")
        total = sum(row[1] for row in queries["count_p99_by_service"]["engines"]
                    .get("quarry", {}).get("answer", []))
        if total != ing["accepted"]:
            notes.append(f"Quarry counts {total:,} events but {ing['accepted']:,} were acknowledged")
    finally:
        server.stop()
    otlp = None
    if load.otlp_hook_available():
        log("OTLP ingest through benches/otlp-load/run on a fresh server")
        otlp_server = QuarryServer(args.quarry_bin, work / "otlp-data", work / "quarry-otlp.log",
                                   args.durability).start()
        try:
            cpu_before = otlp_server.cpu_seconds()
            otlp = load.run_otlp_load(otlp_server.url, args, work / "otlp.json")
            cpu = otlp_server.cpu_seconds() - cpu_before
            otlp["server_cpu_seconds"] = cpu
            otlp["events_per_server_cpu_second"] = otlp["events"] / cpu if cpu > 0 else 0.0
        finally:
            otlp_server.stop()
    else:
        notes.append("OTLP ingest not measured: benches/otlp-load/run does not exist yet.")

    result = {
        "date": started_at.strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "build_profile": args.profile,
        "git": facts.git(ROOT),
        "machine": machine,
        "versions": versions,
        "config": {
            "events": args.events, "otlp_events": args.otlp_events or args.events, "concurrency": args.concurrency, "batch_size": args.batch_size,
            "seed": args.seed, "window": args.window, "runs": args.runs, "gzip": args.gzip,
            "pregenerate": args.pregenerate, "durability": args.durability,
            "threads": os.cpu_count(), "datasets": datasets,
        },
        "data": {
            "end_time": datetime.datetime.fromtimestamp(end_time_s, datetime.timezone.utc).isoformat(),
            "anomaly": ing["anomaly"],
            "sample_trace_id": ing["sample_trace_id"],
        },
        "ingest": ing,
        "otlp_ingest": otlp,
        "storage": storage,
        "queries": queries,
        "spec_queries": spec_queries,
        "spec": spec_info,
        "rollup": rollup,
        "notes": notes,
    }
    result["ratios"] = report.ratios(queries)
    result["spec_ratios"] = report.spec_ratios(spec_queries)
    trim_answers(queries)
    trim_answers(spec_queries)
    result["targets"] = report.judge(result)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.profile == "release" else f"-{args.profile}"
    stem = f"{started_at.strftime('%Y-%m-%d')}-{report.size_label(args.events)}{suffix}"
    (args.out_dir / f"{stem}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    (args.out_dir / f"{stem}.md").write_text(report.markdown(result))
    log(f"wrote {args.out_dir / stem}.md and .json")
    for key, r in result["spec_ratios"].items():
        log(f"spec {key}: {report.spec_line(r)}")
    for t in result["targets"]:
        log(f"target {t['status']:>12}: {t['target']} -> {t['value']}")
    if args.keep_data:
        log(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
