"""The Markdown and JSON reports, with the targets of issue 5 judged plainly."""

import math

# Targets from issue 5 (2 cores, this machine).
INGEST_JSON_PER_CORE = 200_000
INGEST_OTLP_PER_CORE = 150_000
MAX_BYTES_PER_EVENT = 45
HEATMAP_10M_MS = 100
HEATMAP_100M_MS = 1000
TRACE_LOOKUP_10M_MS = 10
MAX_GEOMEAN_RATIO = 0.5
# Issue 7: the 7-day COUNT + P99 by service from rollups.
ROLLUP_MIN_SPEEDUP = 50
ROLLUP_MAX_MS = 100
ROLLUP_EVENTS = 100_000_000

MET, MISSED, NOT_ASSESSED = "met", "MISSED", "not assessed"


def size_label(events: int) -> str:
    for unit, name in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if events >= unit and events % unit == 0:
            return f"{events // unit}{name}"
    return str(events)


def geomean(values: list[float]) -> float | None:
    values = [v for v in values if v and v > 0]
    if not values:
        return None
    return math.exp(sum(math.log(v) for v in values) / len(values))


def ratios(queries: dict) -> dict:
    """Quarry/peer per question (warm medians and cold runs) and their geometric means."""
    out = {"per_question": {}, "geomean": {}}
    for peer in ("duckdb", "chdb"):
        warm, cold = [], []
        for key, q in queries.items():
            mine, theirs = q["engines"].get("quarry"), q["engines"].get(peer)
            if not mine or not theirs or not mine.get("valid") or not theirs.get("valid"):
                continue
            r_warm = mine["warm_median_ms"] / theirs["warm_median_ms"]
            r_cold = mine["cold_ms"] / theirs["cold_ms"]
            out["per_question"].setdefault(key, {})[peer] = {"warm": r_warm, "cold": r_cold}
            warm.append(r_warm)
            cold.append(r_cold)
        out["geomean"][peer] = {"warm": geomean(warm), "cold": geomean(cold)}
    return out


def judge(result: dict) -> list[dict]:
    """Every target with its measured value and met / MISSED / not assessed."""
    events = result["config"]["events"]
    targets = []

    def add(name, value, status, note=""):
        targets.append({"target": name, "value": value, "status": status, "note": note})

    ingest = result["ingest"]
    per_core = ingest["events_per_server_cpu_second"]
    add(f"JSON ingest >= {INGEST_JSON_PER_CORE:,} events/s per core, durable",
        f"{per_core:,.0f} events per server CPU-second ({ingest['events_per_second']:,.0f} events/s wall)",
        MET if per_core >= INGEST_JSON_PER_CORE else MISSED,
        "per core = events / server CPU seconds during the load")
    otlp = result.get("otlp_ingest")
    if otlp and otlp.get("events_per_server_cpu_second"):
        v = otlp["events_per_server_cpu_second"]
        add(f"OTLP ingest >= {INGEST_OTLP_PER_CORE:,} spans/s per core, durable",
            f"{v:,.0f} spans per server CPU-second", MET if v >= INGEST_OTLP_PER_CORE else MISSED)
    else:
        add(f"OTLP ingest >= {INGEST_OTLP_PER_CORE:,} spans/s per core, durable", "-", NOT_ASSESSED,
            "no OTLP load tool yet (hook: benches/otlp-load/run)")
    bpe = result["storage"]["bytes_per_event"]
    add(f"<= {MAX_BYTES_PER_EVENT} bytes per event on disk", f"{bpe:.1f} bytes",
        MET if bpe <= MAX_BYTES_PER_EVENT else MISSED)

    q = result["queries"]

    def warm(key):
        e = q.get(key, {}).get("engines", {}).get("quarry")
        return e["warm_median_ms"] if e and e.get("valid") else None

    for name, key, limit, size in (
        (f"heatmap < {HEATMAP_10M_MS} ms at 10M events", "heatmap", HEATMAP_10M_MS, 10_000_000),
        (f"heatmap < {HEATMAP_100M_MS} ms at 100M events", "heatmap", HEATMAP_100M_MS, 100_000_000),
        (f"trace lookup < {TRACE_LOOKUP_10M_MS} ms at 10M events", "trace_hit", TRACE_LOOKUP_10M_MS, 10_000_000),
    ):
        value = warm(key)
        shown = f"{value:.1f} ms at {size_label(events)}" if value is not None else "-"
        if value is None:
            add(name, shown, MISSED, "no valid answer")
        elif events == size:
            add(name, shown, MET if value < limit else MISSED)
        elif events > size:
            add(name, shown, NOT_ASSESSED, f"target is for {size_label(size)}; see that run's report")
        elif value >= limit:
            add(name, shown, MISSED, f"already over the limit at {size_label(events)}, a smaller size")
        else:
            add(name, shown, NOT_ASSESSED, f"target is for {size_label(size)}; run with --events {size_label(size)}")

    rollup = result.get("rollup")
    if rollup:
        ms, speedup = rollup["rollup"]["warm_median_ms"], rollup["speedup"]
        shown = f"{ms:.1f} ms, {speedup:.1f}x faster than raw at {size_label(events)}"
        name = (f"7-day COUNT + P99 by service from rollups: >= {ROLLUP_MIN_SPEEDUP}x faster than raw "
                f"and < {ROLLUP_MAX_MS} ms at {size_label(ROLLUP_EVENTS)}")
        met = speedup >= ROLLUP_MIN_SPEEDUP and ms < ROLLUP_MAX_MS and rollup["agreement"] != "DIFFER"
        if events >= ROLLUP_EVENTS or not met and ms >= ROLLUP_MAX_MS:
            add(name, shown, MET if met else MISSED)
        else:
            add(name, shown, NOT_ASSESSED,
                f"target is for {size_label(ROLLUP_EVENTS)}; the raw path's cost grows with the events, "
                "the rollup's with the buckets")

    r = result["ratios"]
    gms = {p: g["warm"] for p, g in r["geomean"].items() if g["warm"]}
    if gms:
        worst = max(gms.values())
        shown = ", ".join(f"Quarry/{p} {v:.2f}" for p, v in gms.items())
        add(f"geometric mean of Quarry/peer (warm) <= {MAX_GEOMEAN_RATIO} against the faster peer",
            shown, MET if worst <= MAX_GEOMEAN_RATIO else MISSED)
    slower = [f"{k} (vs {p} {v['warm']:.2f}x)" for k, per in r["per_question"].items()
              for p, v in per.items() if v["warm"] > 1.0]
    add("no question slower than DuckDB or chDB (warm)",
        f"{len(slower)} slower" if slower else "none slower",
        MISSED if slower else MET, "; ".join(slower))
    return targets


def fmt_ms(value) -> str:
    return "-" if value is None else f"{value:,.1f}"


def fmt_ratio(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def markdown(result: dict) -> str:
    c, m, ing, st = result["config"], result["machine"], result["ingest"], result["storage"]
    lines = [
        f"# Quarry benchmark: {size_label(c['events'])} events, {result['date']}",
        "",
        f"Command: `{result['command']}`",
        "",
        f"- Quarry build: **{result['build_profile']}** (commit {result['git']['commit'][:12]}"
        f"{', dirty tree' if result['git']['dirty'] else ''})",
        f"- Machine: {m['cpu_model']}, {m['cpus']} CPUs, {m['memory_gib']} GiB, kernel {m['kernel']}; "
        f"load average at start {', '.join(f'{x:.2f}' for x in m['load_average_at_start'])} "
        "(the machine is shared; other work may have run during the measurement)",
        f"- Peers: DuckDB {result['versions'].get('duckdb', '?')}, chDB {result['versions'].get('chdb', '?')}; "
        f"each limited to {c['threads']} threads, as Quarry's DataFusion session",
        f"- Data: seed {c['seed']}, {c['events']:,} events (spans and logs of 8 services, one dataset each) "
        f"over {c['window']} ending {result['data']['end_time']}; "
        f"{ing['traces']:,} traces",
        f"- Anomaly: {result['data']['anomaly']['description']}",
        "- Quarry is asked the comparison questions through `POST /api/v1/sql` (the same SQL for "
        "every engine), the rollup question through `POST /api/v1/query/{dataset}`; "
        "DuckDB and chDB read Quarry's sealed Parquet segments in process.",
        "",
        "## Targets (issue 5)",
        "",
        "| target | measured | status | note |",
        "|---|---|---|---|",
    ]
    for t in result["targets"]:
        status = f"**{t['status']}**" if t["status"] == MISSED else t["status"]
        lines.append(f"| {t['target']} | {t['value']} | {status} | {t['note']} |")
    lines += [
        "",
        "## Ingest (Events API batch path, durable acknowledgements)",
        "",
        "| events | clients | batch | gzip | seconds | events/s | server CPU s | CPU s per 1M events | events per CPU-s | retries (429) | server RSS after |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {ing['events']:,} | {c['concurrency']} | {c['batch_size']} | {c['gzip']} | {ing['seconds']:.2f} "
        f"| {ing['events_per_second']:,.0f} | {ing['server_cpu_seconds']:.2f} | {ing['cpu_seconds_per_million']:.2f} "
        f"| {ing['events_per_server_cpu_second']:,.0f} | {ing['retries']} | {ing['server_rss_mib']:.0f} MiB |",
        "",
        f"The client (`quarry-load`, {'bodies built before the clock started' if c['pregenerate'] else 'generating while sending'}) "
        "runs on the same machine and competes with the server for its cores.",
    ]
    otlp = result.get("otlp_ingest")
    if otlp:
        per_million = otlp["server_cpu_seconds"] / (otlp["events"] / 1e6) if otlp.get("events") else 0.0
        lines += [
            "",
            "OTLP/HTTP protobuf trace exports on the API port (batches of 512 spans of about 20 "
            "attributes, durable acknowledgements, a fresh server):",
            "",
            "| spans | clients | seconds | spans/s | server CPU s | CPU s per 1M spans | spans per CPU-s |",
            "|---|---|---|---|---|---|---|",
            f"| {otlp['events']:,} | {c['concurrency']} | {otlp['seconds']:.2f} | {otlp['events'] / otlp['seconds']:,.0f} "
            f"| {otlp['server_cpu_seconds']:.2f} | {per_million:.2f} | {otlp['events_per_server_cpu_second']:,.0f} |",
        ]
    lines += [
        "",
        "## Storage after sealing",
        "",
        "| segment files | segment bytes | bytes per event | raw JSON bytes per event | raw JSON / disk | seal seconds |",
        "|---|---|---|---|---|---|",
        f"| {st['segment_files']} | {st['segment_bytes']:,} | {st['bytes_per_event']:.1f} "
        f"| {st['raw_json_bytes_per_event']:.1f} | {st['raw_json_to_disk_ratio']:.1f}x | {st['seal_seconds']:.2f} |",
        "",
        "Raw JSON is each event's `data` object as sent; disk is the Parquet segments under `objects/segments/` "
        "after sealing; then one compaction pass ran before the questions"
        + (f" ({st['compaction']['merges']} merges of {st['compaction']['segments_in']} segments into "
           f"{st['compaction']['segments_out']}, {st['compaction']['seconds']:.1f} s)." if st.get("compaction") else "."),
        "",
        f"## Queries (ms; warm = median of {c['runs']} runs after the cold first run)",
        "",
        "| question | Quarry cold | Quarry warm | DuckDB cold | DuckDB warm | chDB cold | chDB warm | Quarry/DuckDB | Quarry/chDB | answers |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    r = result["ratios"]
    for key, q in result["queries"].items():
        e = q["engines"]

        def cell(name, field):
            x = e.get(name)
            if not x:
                return "-"
            if not x.get("valid"):
                return "wrong" if x.get("answer_rows") is not None else "error"
            return fmt_ms(x[field])

        per = r["per_question"].get(key, {})
        lines.append(
            f"| {q['title']} | {cell('quarry', 'cold_ms')} | {cell('quarry', 'warm_median_ms')} "
            f"| {cell('duckdb', 'cold_ms')} | {cell('duckdb', 'warm_median_ms')} "
            f"| {cell('chdb', 'cold_ms')} | {cell('chdb', 'warm_median_ms')} "
            f"| {fmt_ratio(per.get('duckdb', {}).get('warm'))} | {fmt_ratio(per.get('chdb', {}).get('warm'))} "
            f"| {q['agreement']} |")
    g = r["geomean"]
    lines.append(
        f"| **geometric mean** (warm / cold) | | | | | | | "
        f"{fmt_ratio(g['duckdb']['warm'])} / {fmt_ratio(g['duckdb']['cold'])} "
        f"| {fmt_ratio(g['chdb']['warm'])} / {fmt_ratio(g['chdb']['cold'])} | |")
    lines += [
        "",
        "Ratios below 1 mean Quarry is faster. Quarry's times include the HTTP round trip and JSON "
        "encoding of the answer; the peers run in the benchmark's own process. Cold = the first run "
        "of the question in a fresh engine (the OS page cache is not dropped).",
        "",
    ]
    rollup = result.get("rollup")
    if rollup:
        lines += [
            "## Rollups against raw rows (issue 7)",
            "",
            f"{rollup['question']}; {rollup['events']:,} events in {rollup['datasets']} datasets. "
            "Timed after the comparison questions, once every dataset's default trace rollup "
            f"covered every segment (waited {rollup['wait_seconds']:.1f} s more).",
            "",
            "| source | cold ms | warm ms | answered by |",
            "|---|---|---|---|",
            f"| raw rows | {fmt_ms(rollup['raw']['cold_ms'])} | {fmt_ms(rollup['raw']['warm_median_ms'])} "
            f"| {', '.join(rollup['raw']['sources'])} |",
            f"| rollup | {fmt_ms(rollup['rollup']['cold_ms'])} | {fmt_ms(rollup['rollup']['warm_median_ms'])} "
            f"| {', '.join(rollup['rollup']['sources'])} |",
            "",
            f"Speed-up {rollup['speedup']:.1f}x; answers: {rollup['agreement']}.",
            "",
        ]
    if result.get("notes"):
        lines += ["## Notes", ""] + [f"- {n}" for n in result["notes"]] + [""]
    return "\n".join(lines)
