"""The Markdown and JSON reports, with the targets of issues 5, 7 and 14 judged plainly."""

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

# Issue 14: each spec question against the same groups and series in SQL (warm medians).
SPEC_MAX_SQL_RATIO = 1.5
SPEC_MAX_PEER_RATIO = 1.0

MET, MISSED, NOT_ASSESSED = "met", "MISSED", "not assessed"


def size_label(events: int) -> str:
    for unit, name in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if events >= unit and events % unit == 0:
            return f"{events // unit}{name}"
    return str(events)


def timing_cell(engines: dict, name: str, field: str) -> str:
    """A report cell: the engine's timing, or why there is none."""
    x = engines.get(name)
    if not x:
        return "-"
    if not x.get("valid"):
        return "wrong" if x.get("answer_rows") is not None else "error"
    return fmt_ms(x.get(field))


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


def _valid_warm(engines: dict, name: str):
    e = engines.get(name)
    return e["warm_median_ms"] if e and e.get("valid") else None


def spec_ratios(spec_queries: dict) -> dict:
    """Per spec question: spec, Quarry SQL and peer warm medians (valid answers only),
    spec/SQL and spec/faster-peer, and the two targets of issue 14 judged."""
    out = {}
    for key, q in (spec_queries or {}).items():
        e = q["engines"]
        mine, sql = _valid_warm(e, "spec"), _valid_warm(e, "quarry")
        peers = {p: _valid_warm(e, p) for p in ("duckdb", "chdb")}
        valid_peers = {p: v for p, v in peers.items() if v is not None}
        best = min(valid_peers, key=valid_peers.get) if valid_peers else None
        r = {"title": q["title"], "spec_ms": mine, "sql_ms": sql, "duckdb_ms": peers["duckdb"],
             "chdb_ms": peers["chdb"], "best_peer": best,
             "spec_over_sql": mine / sql if mine is not None and sql else None,
             "spec_over_best_peer": mine / valid_peers[best] if mine is not None and best else None}

        def status(ratio, limit):
            if "spec" not in e:
                return NOT_ASSESSED
            if mine is None:
                return MISSED  # a wrong or failed spec answer meets no target
            if ratio is None:
                return NOT_ASSESSED  # no valid answer to compare against
            return MET if ratio <= limit else MISSED

        r["sql_target"] = status(r["spec_over_sql"], SPEC_MAX_SQL_RATIO)
        r["peer_target"] = status(r["spec_over_best_peer"], SPEC_MAX_PEER_RATIO)
        out[key] = r
    return out


def spec_line(r: dict) -> str:
    """One spec question's timings and verdicts, for the log."""
    best = r["best_peer"]
    return (f"spec {fmt_ms(r['spec_ms'])} ms, Quarry SQL {fmt_ms(r['sql_ms'])} ms "
            f"(spec/SQL {fmt_ratio(r['spec_over_sql'])}, <= {SPEC_MAX_SQL_RATIO}x: {r['sql_target']}), "
            f"DuckDB {fmt_ms(r['duckdb_ms'])} ms, chDB {fmt_ms(r['chdb_ms'])} ms "
            f"(spec/{best or 'peer'} {fmt_ratio(r['spec_over_best_peer'])}, "
            f"<= {SPEC_MAX_PEER_RATIO}x: {r['peer_target']})")


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

    sr = result.get("spec_ratios") or {}
    for name, ratio_key, target_key, limit, against in (
        (f"every spec question <= {SPEC_MAX_SQL_RATIO}x Quarry's SQL for the same groups and series (warm)",
         "spec_over_sql", "sql_target", SPEC_MAX_SQL_RATIO, "SQL"),
        (f"every spec question <= {SPEC_MAX_PEER_RATIO}x the faster of DuckDB and chDB for the same groups "
         "and series (warm)", "spec_over_best_peer", "peer_target", SPEC_MAX_PEER_RATIO, "peer"),
    ):
        if not sr:
            add(name, "-", NOT_ASSESSED, "spec questions not asked (Quarry not among --engines)")
            continue
        statuses = [r[target_key] for r in sr.values()]
        missed = [f"{k} ({fmt_ratio(r[ratio_key])}x)" for k, r in sr.items() if r[target_key] == MISSED]
        ratios_ = [r[ratio_key] for r in sr.values() if r[ratio_key] is not None]
        shown = (f"{statuses.count(MET)} of {len(statuses)} met; worst spec/{against} "
                 f"{fmt_ratio(max(ratios_) if ratios_ else None)}")
        status = MISSED if MISSED in statuses else MET if all(x == MET for x in statuses) else NOT_ASSESSED
        add(name, shown, status, "; ".join(missed))
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
        "every engine), and again through the query spec, `POST /api/v1/query/__all__` (next to every "
        "engine's SQL for the same groups and series), the rollup question through "
        "`POST /api/v1/query/{dataset}`; DuckDB and chDB read Quarry's sealed Parquet segments in process.",
        "",
        "## Targets (issues 5, 7 and 14)",
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
            return timing_cell(e, name, field)

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
    lines += spec_markdown(result)
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


def spec_markdown(result: dict) -> list[str]:
    """The section of the spec questions (issue 14), empty when they were not asked."""
    sq, sr, info = result.get("spec_queries") or {}, result.get("spec_ratios") or {}, result.get("spec") or {}
    if not sq:
        return []
    c = result["config"]
    rate = (f"every event's `meta.sample_rate` is 1 (checked: min {info.get('sample_rate_min')}, "
            f"max {info.get('sample_rate_max')})"
            if (info.get("sample_rate_min"), info.get("sample_rate_max")) == (1, 1)
            else f"`meta.sample_rate` ranges from {info.get('sample_rate_min')} to {info.get('sample_rate_max')}, "
                 "so the peers' unweighted P99s may differ from the spec's weighted ones")
    lines = [
        f"## Query specs against the same groups and series (issue 14; ms, warm = median of {c['runs']} runs)",
        "",
        "Each comparison question a spec can ask, through `POST /api/v1/query/__all__` with an explicit "
        "time range, granularity and `\"source\": \"raw\"`, and through each engine's SQL for the same "
        "groups and series: GROUP BY the breakdown keys and the spec's time bucket, with "
        "`GROUPING SETS` where a group's value is not the sum of its series (P99, COUNT_DISTINCT), and the "
        "top 10 keys' series for the top-10 spec. Counts are sums of `meta.sample_rate` in every engine, "
        f"as the spec weighs them; {rate}. Spec times run to the last byte of the response (the server's "
        "JSON encoding included, the client's decoding not); *server* is the spec's own "
        "`stats.elapsed_ms`. Answers are compared as groups and series (heatmap: weight per time bucket, "
        "since the spec chooses its own value buckets); spec/peer is against the faster valid peer. "
        "The spec bodies and every engine's SQL are in the JSON report (`spec_queries`).",
        "",
        "| question | bucket s | spec cold | spec warm | spec server | Quarry SQL warm | DuckDB warm | chDB warm "
        f"| spec/SQL | spec/peer | <= {SPEC_MAX_SQL_RATIO}x SQL | <= {SPEC_MAX_PEER_RATIO}x peer | answers |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, q in sq.items():
        e, r = q["engines"], sr.get(key, {})

        def cell(name, field):
            return timing_cell(e, name, field)

        def verdict(status):
            return f"**{status}**" if status == MISSED else (status or "-")

        peer = r.get("best_peer")
        lines.append(
            f"| {q['title']} | {q['granularity']} | {cell('spec', 'cold_ms')} | {cell('spec', 'warm_median_ms')} "
            f"| {cell('spec', 'server_elapsed_ms')} | {cell('quarry', 'warm_median_ms')} "
            f"| {cell('duckdb', 'warm_median_ms')} | {cell('chdb', 'warm_median_ms')} "
            f"| {fmt_ratio(r.get('spec_over_sql'))} "
            f"| {fmt_ratio(r.get('spec_over_best_peer'))}{f' ({peer})' if peer else ''} "
            f"| {verdict(r.get('sql_target'))} | {verdict(r.get('peer_target'))} | {q['agreement']} |")
    lines += [
        "",
        "Cold runs of the SQL (same groups and series): "
        + "; ".join(f"{q['title']}: " + ", ".join(
            f"{label} {fmt_ms(q['engines'][n]['cold_ms'])}" for n, label in
            (("quarry", "Quarry"), ("duckdb", "DuckDB"), ("chdb", "chDB")) if "cold_ms" in q["engines"].get(n, {}))
            for q in sq.values()) + ".",
        "",
    ]
    return lines
