"""Rollups against the raw path (issue 7): a 7-day COUNT + P99(duration_ms) by
service.name over `__all__` (the generator writes one dataset per service) through
the query-spec endpoint, once answered by the datasets' default trace rollups
(`requests`) and once with `"source": "raw"`. Both answers are checked against each
other: counts equal, P99 within the sketches' stated bound (each within 1% of a
true value, so 2.01% apart).
"""

import statistics
import time

import requests

WEEK_S = 7 * 86_400
ROLLUP = "requests"
MAINTENANCE_TIMEOUT_S = 3600
P99_AGREEMENT = 0.0201


def wait_rollups(url: str, datasets: list[str]) -> float:
    """Waits until the default rollup of every dataset covers every sealed segment;
    returns the seconds waited."""
    started = time.monotonic()
    pending = set(datasets)
    while pending and time.monotonic() - started < MAINTENANCE_TIMEOUT_S:
        for dataset in sorted(pending):
            response = requests.get(f"{url}/api/v1/rollups/{dataset}/{ROLLUP}", timeout=60)
            if response.status_code == 200 and response.json().get("complete"):
                pending.discard(dataset)
        if pending:
            time.sleep(0.5)
    if pending:
        raise RuntimeError(f"rollups not complete after {MAINTENANCE_TIMEOUT_S} s: {sorted(pending)}")
    return time.monotonic() - started


def spec(end_s: int, source: str | None) -> dict:
    body = {
        "start_time": end_s - WEEK_S,
        "end_time": end_s,
        "granularity": 3600,
        "calculations": [{"op": "COUNT"}, {"op": "P99", "column": "duration_ms"}],
        "breakdowns": ["service.name"],
    }
    if source:
        body["source"] = source
    return body


def ask(session: requests.Session, url: str, datasets: list[str], body: dict) -> tuple[float, dict, set]:
    """Asks every dataset; returns (milliseconds, {service: (count, p99)}, sources)."""
    answers, sources = {}, set()
    started = time.perf_counter()
    for dataset in datasets:
        response = session.post(f"{url}/api/v1/query/{dataset}", json=body, timeout=600)
        response.raise_for_status()
        result = response.json()
        sources.add(result["source"])
        for group in result["groups"]:
            values = group["values"]
            answers[group["key"].get("service.name")] = (values["COUNT"], values["P99(duration_ms)"])
    return (time.perf_counter() - started) * 1000, answers, sources


def measure(url: str, datasets: list[str], end_s: int, runs: int) -> dict:
    """Times both sources (cold first run, median of `runs` warm runs)."""
    # Rollup buckets are whole minutes: the range must start and end on one.
    end_s = (end_s // 60 + 1) * 60
    session = requests.Session()
    out = {"question": "COUNT, P99(duration_ms) by service.name over 7 days (query spec over `__all__`)",
           "datasets": len(datasets)}
    targets = ["__all__"]
    answers = {}
    for name, source in (("raw", "raw"), ("rollup", None)):
        cold_ms, answer, sources = ask(session, url, targets, spec(end_s, source))
        warm = [ask(session, url, targets, spec(end_s, source))[0] for _ in range(runs)]
        answers[name] = answer
        out[name] = {"cold_ms": cold_ms, "warm_ms": warm, "warm_median_ms": statistics.median(warm),
                     "sources": sorted(sources)}
    raw, rolled = answers["raw"], answers["rollup"]
    agree = raw.keys() == rolled.keys() and all(
        raw[k][0] == rolled[k][0]
        and abs(raw[k][1] - rolled[k][1]) <= P99_AGREEMENT * max(abs(raw[k][1]), abs(rolled[k][1]))
        for k in raw
    )
    out["agreement"] = "counts equal, P99 within 2.01%" if agree else "DIFFER"
    out["events"] = sum(v[0] for v in raw.values())
    out["speedup"] = out["raw"]["warm_median_ms"] / out["rollup"]["warm_median_ms"]
    return out
