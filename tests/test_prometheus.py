"""Prometheus remote write and the Prometheus query API (docs/prometheus.md),
against a real Prometheus (Debian's `prometheus`, with its `promtool`).

Prometheus scrapes Quarry's `/metrics` and itself every second and remote-writes
every sample to Quarry. The same PromQL, instant and range, is then asked of
both, at times both have all samples for, and the answers must agree: same
series, same label sets, values within float tolerance.
"""

from __future__ import annotations

import math
import subprocess
import time

import pytest
import requests

from prometheus_server import Prometheus, prometheus_binary, promtool_binary

pytestmark = pytest.mark.skipif(
    prometheus_binary() is None,
    reason="prometheus is not installed (scripts/test installs Debian's prometheus package)",
)

# Seconds of scraping before the answers are compared.
SCRAPE_S = 25.0
# Seconds a condition may take to come true before the test fails.
WAIT_S = 60.0
POLL_S = 0.25
# Relative tolerance of two floats computed by two engines.
TOLERANCE = 1e-9

INSTANT_QUERIES = [
    "up",
    "quarry_http_requests_total",
    'quarry_http_requests_total{status="2xx"}',
    'quarry_http_requests_total{route=~"/api/v1/.*"}',
    'quarry_http_requests_total{route!="/metrics"}',
    "rate(quarry_http_requests_total[10s])",
    "irate(prometheus_http_requests_total[10s])",
    "increase(quarry_http_requests_total[15s])",
    "delta(scrape_duration_seconds[10s])",
    "sum by (route) (rate(quarry_http_requests_total[10s]))",
    "sum without (instance) (rate(prometheus_http_requests_total[10s]))",
    "avg(scrape_duration_seconds)",
    "max by (job) (scrape_samples_scraped)",
    "min(up)",
    "count(up)",
    "topk(3, scrape_samples_scraped)",
    "bottomk(1, scrape_duration_seconds)",
    "histogram_quantile(0.9, sum by (le) (rate(quarry_http_request_duration_seconds_bucket[15s])))",
    "histogram_quantile(0.5, rate(prometheus_http_request_duration_seconds_bucket[15s]))",
    "up * 2 + 1",
    "-up",
    "scrape_samples_scraped > 10",
    "scrape_samples_scraped > bool 10",
    "scrape_samples_post_metric_relabeling / scrape_samples_scraped",
    "scrape_samples_scraped / ignoring(instance) scrape_series_added",
    "up and on(job) scrape_duration_seconds > 0",
    "quarry_http_requests_total offset 5s",
    "1 + 2 * 3",
]

RANGE_QUERIES = [
    "up",
    "rate(quarry_http_requests_total[10s])",
    "sum by (route) (rate(quarry_http_requests_total[10s]))",
    "histogram_quantile(0.9, sum by (le) (rate(quarry_http_request_duration_seconds_bucket[15s])))",
    "scrape_samples_scraped > 10",
]


def wait_for(condition, what: str):
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(POLL_S)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def setup(module_quarry, tmp_path_factory):
    """Quarry, and a Prometheus scraping it and itself, remote-writing to Quarry;
    `at` is a time (seconds) both have every sample up to."""
    quarry = module_quarry()
    prometheus = Prometheus(
        tmp_path_factory.mktemp("prometheus"),
        {"quarry": f"127.0.0.1:{quarry.port}"},
        f"{quarry.base}/api/v1/write",
    )
    prometheus.targets["prometheus"] = f"127.0.0.1:{prometheus.port}"
    prometheus.start()
    try:
        started = time.time()
        time.sleep(SCRAPE_S)
        at = math.floor(time.time()) - 5.0
        # Every job's scrapes of a few seconds after `at` have arrived, so the
        # samples up to `at` have too (remote write flushes every 500 ms).
        for job in ("quarry", "prometheus"):
            wait_for(
                lambda: quarry.sql(
                    f"""SELECT count(*) AS n FROM "{job}" WHERE "metric.name" = 'up'
                        AND timestamp >= to_timestamp_millis({int((at + 3) * 1000)})"""
                ).json()[0]["n"]
                > 0,
                f"remote-written samples of job {job}",
            )
        time.sleep(2)
        assert at - started > 15, "too little data scraped"
        yield quarry, prometheus, at
    finally:
        prometheus.stop()


def api(base: str, path: str, **params) -> dict:
    response = requests.get(f"{base}{path}", params=params, timeout=30)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", (path, params, body)
    return body["data"]


def close(a: str, b: str) -> bool:
    x, y = float(a), float(b)
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    if math.isinf(x) or math.isinf(y):
        return x == y
    return abs(x - y) <= TOLERANCE * max(1.0, abs(x), abs(y))


def by_labels(result: list[dict], key: str) -> dict:
    return {frozenset(item["metric"].items()): item[key] for item in result}


@pytest.mark.parametrize("query", INSTANT_QUERIES)
def test_instant_queries_agree_with_prometheus(setup, query):
    quarry, prometheus, at = setup
    want = api(prometheus.url, "/api/v1/query", query=query, time=at)
    got = api(quarry.base, "/api/v1/query", query=query, time=at)
    assert got["resultType"] == want["resultType"], (got, want)
    if want["resultType"] == "scalar":
        assert got["result"][0] == want["result"][0]
        assert close(got["result"][1], want["result"][1]), (got, want)
        return
    assert want["result"], f"Prometheus has no answer to {query}: pick another query"
    expected, actual = by_labels(want["result"], "value"), by_labels(got["result"], "value")
    assert set(actual) == set(expected), (query, sorted(actual), sorted(expected))
    for labels, (time_, value) in expected.items():
        assert actual[labels][0] == time_
        assert close(actual[labels][1], value), (query, dict(labels), actual[labels], value)


@pytest.mark.parametrize("query", RANGE_QUERIES)
def test_range_queries_agree_with_prometheus(setup, query):
    quarry, prometheus, at = setup
    window = dict(query=query, start=at - 14, end=at, step=2)
    want = api(prometheus.url, "/api/v1/query_range", **window)
    got = api(quarry.base, "/api/v1/query_range", **window)
    assert got["resultType"] == want["resultType"] == "matrix"
    expected, actual = by_labels(want["result"], "values"), by_labels(got["result"], "values")
    assert expected, f"Prometheus has no answer to {query}"
    assert set(actual) == set(expected), (query, sorted(actual), sorted(expected))
    for labels, points in expected.items():
        assert [t for t, _ in actual[labels]] == [t for t, _ in points], (query, dict(labels))
        for (_, value), (_, want_value) in zip(actual[labels], points):
            assert close(value, want_value), (query, dict(labels), value, want_value)


def test_series_and_labels_agree_with_prometheus(setup):
    quarry, prometheus, at = setup
    window = {"start": at - 10, "end": at}
    for selector in ["up", 'quarry_http_requests_total{status="2xx"}']:
        params = {"match[]": selector, **window}
        want = api(prometheus.url, "/api/v1/series", **params)
        got = api(quarry.base, "/api/v1/series", **params)
        assert {frozenset(s.items()) for s in got} == {frozenset(s.items()) for s in want}
        assert api(quarry.base, "/api/v1/labels", **params) == api(
            prometheus.url, "/api/v1/labels", **params
        )
    assert api(quarry.base, "/api/v1/label/job/values", **window) == ["prometheus", "quarry"]
    assert api(quarry.base, "/api/v1/status/buildinfo")["version"]


@pytest.mark.skipif(promtool_binary() is None, reason="promtool is not installed")
def test_promtool_queries_quarry(setup):
    quarry, _, at = setup
    instant = subprocess.run(
        [promtool_binary(), "query", "instant", f"--time={int(at)}", quarry.base, "count by (job) (up)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert instant.returncode == 0, instant.stderr
    assert '{job="quarry"} => 1' in instant.stdout, instant.stdout
    assert '{job="prometheus"} => 1' in instant.stdout, instant.stdout
    ranged = subprocess.run(
        [
            promtool_binary(),
            "query",
            "range",
            f"--start={int(at) - 4}",
            f"--end={int(at)}",
            "--step=2s",
            quarry.base,
            'up{job="quarry"}',
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ranged.returncode == 0, ranged.stderr
    assert ranged.stdout.count("1 @[") == 3, ranged.stdout


def test_bad_input_gets_prometheus_shaped_errors_and_the_server_keeps_serving(setup):
    quarry, _, at = setup
    write = f"{quarry.base}/api/v1/write"
    headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy"}
    bad_snappy = requests.post(write, data=b"\xff\xff\xff\xff\xff", headers=headers, timeout=10)
    assert bad_snappy.status_code == 400
    assert "snappy" in bad_snappy.json()["error"]
    # A valid snappy frame (one literal) around bytes that are no WriteRequest.
    not_protobuf = bytes([4, 12]) + b"\x0a\xff\xff\xff"
    wrong = requests.post(write, data=not_protobuf, headers=headers, timeout=10)
    assert wrong.status_code == 400
    assert "WriteRequest" in wrong.json()["error"]
    v2 = requests.post(
        write,
        data=b"",
        headers={**headers, "Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"},
        timeout=10,
    )
    assert v2.status_code == 415 and "2.0" in v2.json()["error"]

    for query, named in [
        ("quantile(0.5, up)", "quantile"),
        ("max_over_time(up[1m])", "max_over_time"),
        ("up[1m:10s]", "subqueries"),
        ("sum(", None),
    ]:
        response = requests.get(f"{quarry.base}/api/v1/query", params={"query": query, "time": at}, timeout=10)
        body = response.json()
        assert response.status_code == 400, (query, body)
        assert body["status"] == "error" and body["errorType"] == "bad_data", body
        if named:
            assert "unsupported" in body["error"] and named in body["error"], body
    missing = requests.get(f"{quarry.base}/api/v1/query_range", params={"query": "up"}, timeout=10)
    assert missing.status_code == 400 and "start" in missing.json()["error"]

    assert requests.get(f"{quarry.base}/healthz", timeout=10).status_code == 200
    assert api(quarry.base, "/api/v1/query", query="count(up)", time=at)["result"][0]["value"][1] == "2"


def test_metrics_carry_trace_exemplars_that_prometheus_scrapes(setup):
    quarry, prometheus, _ = setup
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    traceparent = f"00-{trace_id}-00f067aa0ba902b7-01"
    assert requests.get(f"{quarry.base}/healthz", headers={"traceparent": traceparent}, timeout=10).ok
    metrics = requests.get(f"{quarry.base}/metrics", timeout=10)
    assert metrics.headers["content-type"].startswith("application/openmetrics-text")
    exemplar_lines = [
        line
        for line in metrics.text.splitlines()
        if line.startswith("quarry_http_request_duration_seconds_bucket")
        and 'route="/healthz"' in line
        and f'# {{trace_id="{trace_id}"}}' in line
    ]
    assert len(exemplar_lines) == 1, metrics.text[-3000:]

    def scraped() -> bool:
        now = time.time()
        found = api(
            prometheus.url,
            "/api/v1/query_exemplars",
            query='quarry_http_request_duration_seconds_bucket{route="/healthz"}',
            start=now - 60,
            end=now,
        )
        return any(
            exemplar["labels"].get("trace_id") == trace_id
            for series in found
            for exemplar in series["exemplars"]
        )

    wait_for(scraped, "Prometheus to scrape the exemplar")
