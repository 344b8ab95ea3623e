"""OTLP metrics queried as metrics users expect (issue 7, item 4).

Hand-written OTLP/JSON requests (as a collector would send them, with exact
timestamps) carry counters of several series, one of them reset twice (once by a
drop, once by a new start time), a delta counter, an up-down counter and gauges.
RATE_SUM / RATE_AVG / RATE_MAX, LAST and AVG must match the values computed by hand
in the comments below.
"""

from __future__ import annotations

import datetime as dt
import json
import math

import pytest

T0 = 1_700_000_040  # a whole minute, seconds
SEC = 1_000_000_000
JSON = {"Content-Type": "application/json"}
DATASET = "metrics"


def point(at_s: float, value: float, start_s: float | None = None, **attributes) -> dict:
    out = {"timeUnixNano": str(int((T0 + at_s) * SEC)), "asDouble": value,
           "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attributes.items()]}
    if start_s is not None:
        out["startTimeUnixNano"] = str(int((T0 + start_s) * SEC))
    return out


def resource(host: str) -> dict:
    return {"attributes": [{"key": "service.name", "value": {"stringValue": "shop"}},
                           {"key": "host.name", "value": {"stringValue": host}}]}


def counter(name: str, points: list[dict], temporality: int = 2, monotonic: bool = True) -> dict:
    return {"name": name, "sum": {"aggregationTemporality": temporality, "isMonotonic": monotonic,
                                  "dataPoints": points}}


def gauge(name: str, points: list[dict]) -> dict:
    return {"name": name, "gauge": {"dataPoints": points}}


def request(host: str, metrics: list[dict]) -> dict:
    return {"resourceMetrics": [{"resource": resource(host),
                                 "scopeMetrics": [{"scope": {"name": "meter"}, "metrics": metrics}]}]}


# Host a, cumulative `requests`: 100 130 190 | drop to 10 (reset) 40 100, every 10 s.
#   rates: 3, 6, 10/10 = 1 (reset: the increase is the new value), 3, 6 -> sum 19, max 6
# Host b, cumulative `requests`, 5 s later each time: 1000 1050 1100 1150 1200
#   rates: 5, 5, 5, 5 -> sum 20. Interleaved in time with host a: without series
#   identity the rates would jump between 100s and 1000s.
# Host c, cumulative `requests`: 50 80 | 90 with a later start time (restarted) -> 3, 9
REQUESTS = {
    "a": [point(0, 100, -300), point(10, 130, -300), point(20, 190, -300),
          point(30, 10, 25), point(40, 40, 25), point(50, 100, 25)],
    "b": [point(5, 1000, -300), point(15, 1050, -300), point(25, 1100, -300),
          point(35, 1150, -300), point(45, 1200, -300)],
    "c": [point(0, 50, -100), point(10, 80, -100), point(20, 90, 15)],
}
# Host a, delta `bytes`: 50 over [0, 10), 100 over [10, 20) -> 5, 10 per second.
BYTES = [point(10, 50, 0), point(20, 100, 10)]
# Host a, up-down counter `queue` (not monotonic): 10 then 5 is a change, not a reset.
QUEUE = [point(0, 10, -300), point(10, 5, -300)]
# Gauges `temperature`: a 20 22 21 (last 21, avg 21); b 30 34 (last 34, avg 32).
TEMPERATURE = {"a": [point(0, 20), point(10, 22), point(20, 21)],
               "b": [point(5, 30), point(15, 34)]}


def histogram_point(at_s: float, counts: list[int], start_s: float) -> dict:
    return {"timeUnixNano": str(int((T0 + at_s) * SEC)), "startTimeUnixNano": str(int((T0 + start_s) * SEC)),
            "count": str(sum(counts)), "bucketCounts": [str(c) for c in counts], "explicitBounds": [10.0, 100.0]}


def histogram(name: str, points: list[dict], temporality: int) -> dict:
    return {"name": name, "histogram": {"aggregationTemporality": temporality, "dataPoints": points}}


# `latency` histograms with buckets (-inf, 10], (10, 100], (100, +inf):
#   host a, cumulative: [10, 0, 0] then [30, 0, 20] -> 20 values <= 10, 20 above 100
#   host b, delta: [0, 10, 0] -> 10 values in (10, 100]
LATENCY_A = [histogram_point(0, [10, 0, 0], -300), histogram_point(10, [30, 0, 20], -300)]
LATENCY_B = [histogram_point(5, [0, 10, 0], 0)]


@pytest.fixture(scope="module")
def loaded(module_quarry):
    server = module_quarry()
    documents = [
        request("a", [counter("requests", REQUESTS["a"]), counter("bytes", BYTES, temporality=1),
                      counter("queue", QUEUE, monotonic=False), gauge("temperature", TEMPERATURE["a"]),
                      histogram("latency", LATENCY_A, temporality=2)]),
        request("b", [counter("requests", REQUESTS["b"]), gauge("temperature", TEMPERATURE["b"]),
                      histogram("latency", LATENCY_B, temporality=1)]),
        request("c", [counter("requests", REQUESTS["c"])]),
    ]
    for document in documents:
        resp = server.post("/v1/metrics", json.dumps(document),
                           headers={**JSON, "x-honeycomb-dataset": DATASET})
        assert resp.status_code == 200, resp.text
    return server


def query(server, spec: dict) -> dict:
    body = {"start_time": T0, "end_time": T0 + 60, "granularity": 30, **spec}
    resp = server.post(f"/api/v1/query/{DATASET}", json.dumps(body))
    assert resp.status_code == 200, resp.text
    return resp.json()


def by_host(result: dict) -> dict:
    return {g["key"]["host.name"]: g["values"] for g in result["groups"]}


def close(got: dict, want: dict) -> None:
    assert set(got) == set(want), (got, want)
    for key, value in want.items():
        assert got[key] is not None and math.isclose(got[key], value, rel_tol=1e-9), (key, got[key], value)


RATES = [{"op": "RATE_SUM", "column": "value"}, {"op": "RATE_MAX", "column": "value"},
         {"op": "RATE_AVG", "column": "value"}]
NAMES = ["RATE_SUM(value)", "RATE_MAX(value)", "RATE_AVG(value)"]


def only(metric: str) -> list[dict]:
    return [{"column": "metric.name", "op": "=", "value": metric}]


def test_every_row_names_its_series(loaded):
    rows = loaded.rows(f'SELECT "host.name" AS host, "metric.name" AS name, '
                       f'COUNT(DISTINCT "metric.series_id") AS n FROM {DATASET} GROUP BY 1, 2 ORDER BY 1, 2')
    assert rows == [{"host": "a", "name": "bytes", "n": 1}, {"host": "a", "name": "latency", "n": 1},
                    {"host": "a", "name": "queue", "n": 1},
                    {"host": "a", "name": "requests", "n": 1}, {"host": "a", "name": "temperature", "n": 1},
                    {"host": "b", "name": "latency", "n": 1}, {"host": "b", "name": "requests", "n": 1},
                    {"host": "b", "name": "temperature", "n": 1},
                    {"host": "c", "name": "requests", "n": 1}]
    assert loaded.scalar(f'SELECT COUNT(DISTINCT "metric.series_id") FROM {DATASET}') == 9


def test_counter_rates_across_resets_by_host(loaded):
    result = query(loaded, {"calculations": RATES, "breakdowns": ["host.name"], "filters": only("requests")})
    groups = by_host(result)
    close(groups["a"], dict(zip(NAMES, [19.0, 6.0, 19.0 / 5])))
    close(groups["b"], dict(zip(NAMES, [20.0, 5.0, 5.0])))
    close(groups["c"], dict(zip(NAMES, [12.0, 9.0, 6.0])))


def test_counter_rates_over_all_series_and_per_bucket(loaded):
    """Without a breakdown, rates are still per series, then summed: 19 + 20 + 12."""
    result = query(loaded, {"calculations": RATES, "filters": only("requests")})
    close(result["groups"][0]["values"], dict(zip(NAMES, [51.0, 9.0, 51.0 / 11])))
    close(result["totals"], dict(zip(NAMES, [51.0, 9.0, 51.0 / 11])))
    # A rate belongs to the bucket of its later point. [T0, T0+30): a 3+6, b 5+5, c 3+9;
    # [T0+30, T0+60): a 1+3+6, b 5+5.
    sums = {p["time"]: p["values"]["RATE_SUM(value)"] for p in result["series"]}
    assert sums == {T0: pytest.approx(31.0), T0 + 30: pytest.approx(20.0)}


def test_delta_counters_and_up_down_counters(loaded):
    delta = query(loaded, {"calculations": RATES, "filters": only("bytes")})
    close(delta["groups"][0]["values"], dict(zip(NAMES, [15.0, 10.0, 7.5])))
    queue = query(loaded, {"calculations": RATES, "filters": only("queue")})
    close(queue["groups"][0]["values"], dict(zip(NAMES, [-0.5, -0.5, -0.5])))


def test_gauges_last_and_average(loaded):
    spec = {"calculations": [{"op": "LAST", "column": "value"}, {"op": "AVG", "column": "value"},
                             {"op": "MAX", "column": "value"}],
            "breakdowns": ["host.name"], "filters": only("temperature")}
    groups = by_host(query(loaded, spec))
    close(groups["a"], {"LAST(value)": 21.0, "AVG(value)": 21.0, "MAX(value)": 22.0})
    close(groups["b"], {"LAST(value)": 34.0, "AVG(value)": 32.0, "MAX(value)": 34.0})
    series = query(loaded, {**spec, "breakdowns": [], "granularity": 10})["series"]
    last = {p["time"] - T0: p["values"]["LAST(value)"] for p in series}
    assert last == {0: 30.0, 10: 34.0, 20: 21.0}


def test_rates_on_plain_events_keep_their_meaning(loaded):
    """Events without metric columns: the plain difference, per group, negative allowed."""
    items = [{"time": dt.datetime.fromtimestamp(T0 + i * 10, tz=dt.timezone.utc).isoformat(),
              "data": {"route": "/a", "sent": v}} for i, v in enumerate([100, 300, 200])]
    resp = loaded.post("/1/batch/plain", json.dumps(items))
    assert resp.status_code == 200, resp.text
    # 100 -> 300 in 10 s: 20/s; 300 -> 200: -10/s.
    body = {"start_time": T0, "end_time": T0 + 60,
            "calculations": [{**c, "column": "sent"} for c in RATES]}
    result = loaded.post("/api/v1/query/plain", json.dumps(body)).json()
    close(result["groups"][0]["values"],
          {"RATE_SUM(sent)": 10.0, "RATE_MAX(sent)": 20.0, "RATE_AVG(sent)": 5.0})


def test_percentiles_of_histogram_buckets(loaded):
    """Counts over the window [20, 10, 20]; linear interpolation inside a bucket."""
    ops = ["P10", "P50", "P99"]
    spec = {"calculations": [{"op": op, "column": "metric.bucket_counts"} for op in ops],
            "filters": only("latency")}
    values = query(loaded, spec)["groups"][0]["values"]
    # P10: rank 5 of 50 in (0, 10] holding 20 -> 2.5; P50: rank 25, 5 of the 10 in
    # (10, 100] -> 55; P99: the overflow bucket -> its lower bound, 100.
    close(values, {"P10(metric.bucket_counts)": 2.5, "P50(metric.bucket_counts)": 55.0,
                   "P99(metric.bucket_counts)": 100.0})
    groups = by_host(query(loaded, {**spec, "breakdowns": ["host.name"]}))
    # a: [20, 0, 20], rank 20 -> the top of the first bucket; b: [0, 10, 0] -> 55.
    assert groups["a"]["P50(metric.bucket_counts)"] == pytest.approx(10.0)
    assert groups["b"]["P50(metric.bucket_counts)"] == pytest.approx(55.0)
