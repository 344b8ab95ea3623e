"""Tail-based sampling (docs/pipeline.md): traces generated with the real
OpenTelemetry Python SDK and exported over OTLP/gRPC; Quarry buffers each trace
until its root arrives, then its rules keep every error trace and every slow one
whole, and 1 in 5 of the rest, chosen by a hash of the trace id. Kept spans carry
`meta.sample_rate`, so the engine's weighted COUNT estimates the true count. And
after kill -9, no trace is left half kept."""

from __future__ import annotations

import hashlib
import json
import random
import re
import time

import requests
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode

from harness import DEFAULT_KEY, HTTP_TIMEOUT_S

SERVICE = "checkout"
# The rest is kept 1 in REST_RATE.
REST_RATE = 5
SLOW_MS = 1000.0
ERROR_SHARE = 0.01
SLOW_SHARE = 0.01
# Bounded waits (the test never depends on speed, only on these upper limits).
DECISIONS_TIMEOUT_S = 600.0
POLL_S = 0.5


def rules(decision_wait_ms: int, trace_timeout_ms: int) -> dict:
    return {
        "sampling": {
            "decision_wait_ms": decision_wait_ms,
            "trace_timeout_ms": trace_timeout_ms,
            "rules": [
                {"name": "errors", "error": True, "sample_rate": 1},
                {"name": "slow", "min_duration_ms": SLOW_MS, "sample_rate": 1},
                {"name": "rest", "sample_rate": REST_RATE},
            ],
        }
    }


def put_rules(server, body: dict) -> requests.Response:
    return requests.put(
        f"{server.base}/api/v1/admin/pipeline/default",
        data=json.dumps(body),
        headers=server.headers(extra={"Content-Type": "application/json"}),
        timeout=HTTP_TIMEOUT_S,
    )


def kept_by_hash(trace_id: str, rate: int) -> bool:
    """Quarry's deterministic choice: the first 8 bytes of SHA-256(trace id) as a
    big-endian fraction of 2^64, below 1/rate."""
    position = int.from_bytes(hashlib.sha256(trace_id.encode()).digest()[:8], "big")
    return (position * rate) >> 64 == 0


class Sent:
    """What the test sent: per trace, its span ids and kind."""

    def __init__(self):
        self.spans: dict[str, set[str]] = {}
        self.kind: dict[str, str] = {}

    def expected_rate(self, trace_id: str) -> int | None:
        """The rate Quarry must keep the trace at, or None if it must drop it."""
        if self.kind[trace_id] in ("error", "slow"):
            return 1
        return REST_RATE if kept_by_hash(trace_id, REST_RATE) else None


def send_traces(server, count: int, seed: int) -> Sent:
    """`count` traces of 1 to 3 spans, ERROR_SHARE with an error (on their last
    span, a child when there is one), SLOW_SHARE slow; exported over OTLP/gRPC by
    the SDK's batch processor, flushed (acknowledged) before this returns."""
    rng = random.Random(seed)
    exporter = OTLPSpanExporter(
        endpoint=server.otlp_grpc_endpoint,
        insecure=True,
        headers={"x-honeycomb-team": DEFAULT_KEY},
    )
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE}))
    # A queue large enough that the SDK never drops a span.
    provider.add_span_processor(
        BatchSpanProcessor(
            exporter,
            max_queue_size=4 * count + 10_000,
            max_export_batch_size=2048,
            schedule_delay_millis=100,
        )
    )
    tracer = provider.get_tracer("test_sampling")
    sent = Sent()
    now_ns = time.time_ns()
    for _ in range(count):
        roll = rng.random()
        kind = "error" if roll < ERROR_SHARE else "slow" if roll < ERROR_SHARE + SLOW_SHARE else "fast"
        children = rng.randint(0, 2)
        duration_ns = int((SLOW_MS * 2 if kind == "slow" else rng.uniform(1, 50)) * 1e6)
        root = tracer.start_span("GET /cart", start_time=now_ns)
        trace_id = format(root.get_span_context().trace_id, "032x")
        span_ids = {format(root.get_span_context().span_id, "016x")}
        context = trace.set_span_in_context(root)
        last = root
        ended = []
        for i in range(children):
            child = tracer.start_span(f"db {i}", context=context, start_time=now_ns + 1000)
            span_ids.add(format(child.get_span_context().span_id, "016x"))
            last = child
            ended.append(child)
        if kind == "error":
            last.set_status(Status(StatusCode.ERROR, "boom"))
        # Children end first: the root arrives last, as in real services.
        for child in ended:
            child.end(end_time=now_ns + 2000)
        root.end(end_time=now_ns + duration_ns)
        sent.spans[trace_id] = span_ids
        sent.kind[trace_id] = kind
    assert provider.force_flush(timeout_millis=600_000), "the SDK could not export every span"
    provider.shutdown()
    return sent


def metric_lines(server, name: str) -> list[tuple[dict[str, str], float]]:
    """Every series of `name` on /metrics: (labels, value)."""
    resp = requests.get(server.base + "/metrics", timeout=HTTP_TIMEOUT_S)
    assert resp.status_code == 200, resp.text[:500]
    series = []
    for line in resp.text.splitlines():
        if not (line.startswith(name + "{") or line.startswith(name + " ")):
            continue
        head, value = line.rsplit(" ", 1)
        labels = dict(re.findall(r'(\w+)="([^"]*)"', head))
        series.append((labels, float(value)))
    return series


def sampling_totals(server) -> tuple[float, float]:
    """(traces decided in the default environment, spans still buffered)."""
    decided = sum(
        value
        for labels, value in metric_lines(server, "quarry_sampling_traces_total")
        if labels.get("environment") == "default"
    )
    buffered = sum(value for _, value in metric_lines(server, "quarry_sampling_buffered_spans"))
    return decided, buffered


def wait_for_decisions(server, traces: int) -> None:
    deadline = time.monotonic() + DECISIONS_TIMEOUT_S
    while True:
        decided, buffered = sampling_totals(server)
        if decided >= traces and buffered == 0:
            return
        assert time.monotonic() < deadline, f"{decided} of {traces} traces decided, {buffered} spans buffered"
        time.sleep(POLL_S)


def stored_spans(server) -> dict[str, list[tuple[str, int]]]:
    """trace id -> [(span id, sample rate)] of every stored span."""
    if SERVICE not in server.datasets():
        return {}
    rows = server.rows(
        f'SELECT "trace.trace_id" AS t, "trace.span_id" AS s, "meta.sample_rate" AS r FROM "{SERVICE}"'
    )
    stored: dict[str, list[tuple[str, int]]] = {}
    for row in rows:
        stored.setdefault(row["t"], []).append((row["s"], row["r"]))
    return stored


def wait_for_rows(server, expected_rows: int) -> dict[str, list[tuple[str, int]]]:
    """The stored spans once at least `expected_rows` are visible (kept rows are
    written just after their decision is counted)."""
    deadline = time.monotonic() + DECISIONS_TIMEOUT_S
    while True:
        stored = stored_spans(server)
        if sum(len(spans) for spans in stored.values()) >= expected_rows:
            return stored
        assert time.monotonic() < deadline, f"{sum(map(len, stored.values()))} of {expected_rows} rows stored"
        time.sleep(POLL_S)


def assert_whole_or_absent(sent: Sent, stored: dict[str, list[tuple[str, int]]]) -> dict[str, int]:
    """Every stored trace has all its spans (duplicates after a crash are
    tolerated, never a missing span), at the rate its rule says; answers the
    kept traces' rates."""
    kept = {}
    for trace_id, spans in stored.items():
        assert trace_id in sent.spans, f"unknown trace {trace_id}"
        span_ids = {span for span, _ in spans}
        assert span_ids == sent.spans[trace_id], f"trace {trace_id} is partial: {span_ids} of {sent.spans[trace_id]}"
        rates = {rate for _, rate in spans}
        assert len(rates) == 1, f"trace {trace_id} has several rates {rates}"
        kept[trace_id] = rates.pop()
    return kept


def test_errors_and_slow_traces_are_kept_whole_and_the_rest_at_its_rate(quarry):
    server = quarry()
    resp = put_rules(server, rules(decision_wait_ms=1000, trace_timeout_ms=30_000))
    assert resp.status_code == 200, resp.text
    traces = 100_000
    sent = send_traces(server, traces, seed=19)
    wait_for_decisions(server, traces)
    expected = {t: rate for t in sent.spans if (rate := sent.expected_rate(t)) is not None}
    expected_rows = sum(len(sent.spans[t]) for t in expected)
    stored = wait_for_rows(server, expected_rows)
    kept = assert_whole_or_absent(sent, stored)
    # Exactly the traces the rules keep, each at its rule's rate.
    assert kept == expected
    assert sum(len(spans) for spans in stored.values()) == expected_rows

    errors = [t for t, kind in sent.kind.items() if kind == "error"]
    slow = [t for t, kind in sent.kind.items() if kind == "slow"]
    assert len(errors) > 800 and len(slow) > 800
    assert all(kept.get(t) == 1 for t in errors + slow)
    # The rest at 1 in REST_RATE: binomial, within 5 sigma.
    rest = [t for t, kind in sent.kind.items() if kind == "fast"]
    kept_rest = sum(1 for t in rest if t in kept)
    p = 1 / REST_RATE
    mean, sigma = len(rest) * p, (len(rest) * p * (1 - p)) ** 0.5
    assert abs(kept_rest - mean) <= 5 * sigma, (kept_rest, mean, sigma)

    # The engine's weighted COUNT (by meta.sample_rate) estimates the true count.
    true_count = sum(len(spans) for spans in sent.spans.values())
    resp = server.post(
        f"/api/v1/query/{SERVICE}",
        json.dumps({"time_range": 7200, "calculations": [{"op": "COUNT"}]}),
    )
    assert resp.status_code == 200, resp.text
    weighted = resp.json()["totals"]["COUNT"]
    assert abs(weighted - true_count) <= 0.03 * true_count, (weighted, true_count)

    by_rule = {"errors": 0.0, "slow": 0.0, "rest": 0.0}
    for labels, value in metric_lines(server, "quarry_sampling_traces_total"):
        if labels["decision"] == "kept" and labels["dataset"] == SERVICE:
            by_rule[labels["rule"]] = by_rule.get(labels["rule"], 0.0) + value
    assert by_rule == {"errors": len(errors), "slow": len(slow), "rest": kept_rest}


def test_after_kill_9_no_trace_is_left_half_kept(quarry):
    server = quarry()
    # Long waits: every span is still buffered (only in the journal) at the kill.
    resp = put_rules(server, rules(decision_wait_ms=600_000, trace_timeout_ms=600_000))
    assert resp.status_code == 200, resp.text
    first = send_traces(server, 2_000, seed=1)
    assert stored_spans(server) == {}
    decided, buffered = sampling_totals(server)
    assert (decided, buffered) == (0, sum(len(s) for s in first.spans.values()))
    server.restart()

    # Short waits now: the recovered traces are decided at once; a second batch
    # is killed in the middle of its decisions.
    resp = put_rules(server, rules(decision_wait_ms=200, trace_timeout_ms=400))
    assert resp.status_code == 200, resp.text
    second = send_traces(server, 2_000, seed=2)
    server.restart()

    both = Sent()
    for sent in (first, second):
        both.spans.update(sent.spans)
        both.kind.update(sent.kind)
    deadline = time.monotonic() + DECISIONS_TIMEOUT_S
    expected = {t: rate for t in both.spans if (rate := both.expected_rate(t)) is not None}
    while True:
        _, buffered = sampling_totals(server)
        stored = stored_spans(server)
        if buffered == 0 and set(stored) >= set(expected) and all(
            {s for s, _ in stored[t]} >= both.spans[t] for t in expected
        ):
            break
        assert time.monotonic() < deadline, f"{len(stored)} of {len(expected)} traces stored"
        time.sleep(POLL_S)
    kept = assert_whole_or_absent(both, stored)
    assert kept == expected


def test_sampling_rules_are_validated_and_survive_a_restart(quarry):
    server = quarry()
    bad = [
        ({"rules": [{"name": "a"}]}, "sampling.rules[0].sample_rate"),
        ({"rules": [{"name": "a", "sample_rate": 0}]}, "sampling.rules[0].sample_rate"),
        ({"decision_wait_ms": 5000, "trace_timeout_ms": 10, "rules": []}, "sampling.trace_timeout_ms"),
        (
            {"rules": [{"name": "a", "drop": True, "conditions": [{"field": "x", "op": "<", "value": "y"}]}]},
            "sampling.rules[0].conditions[0].value",
        ),
        (
            {"rules": [{"name": "d", "dynamic": {"key_fields": ["service.name"], "target_per_second": -1}}]},
            "sampling.rules[0].dynamic.target_per_second",
        ),
        ({"rules": [{"name": "a", "sample_rate": 2, "colour": "red"}]}, "sampling.rules[0]"),
    ]
    for sampling, field in bad:
        resp = put_rules(server, {"sampling": sampling})
        assert resp.status_code == 400, (sampling, resp.text)
        assert resp.json()["error"].startswith(field), (field, resp.text)
    good = {
        "sampling": {
            "decision_wait_ms": 1500,
            "trace_timeout_ms": 20_000,
            "datasets": ["checkout"],
            "rules": [
                {"name": "errors", "error": True, "sample_rate": 1},
                {
                    "name": "by-route",
                    "dynamic": {
                        "key_fields": ["service.name", "http.route", "status_code"],
                        "target_per_second": 25,
                        "adjust_interval_ms": 15000,
                        "ema_weight": 0.5,
                    },
                },
                {"name": "health", "conditions": [{"field": "http.route", "op": "=", "value": "/health"}], "drop": True},
            ],
        }
    }
    resp = put_rules(server, good)
    assert resp.status_code == 200, resp.text
    assert resp.json()["sampling"] == good["sampling"]
    server.restart()
    resp = server.get("/api/v1/admin/pipeline/default")
    assert resp.status_code == 200, resp.text
    assert resp.json()["sampling"] == good["sampling"]


def test_head_sampled_input_multiplies_the_rule_rate(quarry):
    """A span head-sampled upstream (a `sampleRate` attribute, or a tracestate
    threshold `ot=th:c`, i.e. kept with probability 1/4) is stored with its rate
    times the rule's."""
    server = quarry()
    resp = put_rules(
        server,
        {"sampling": {"decision_wait_ms": 100, "trace_timeout_ms": 200,
                      "rules": [{"name": "rest", "sample_rate": 3}]}},
    )
    assert resp.status_code == 200, resp.text
    # Trace ids the rate-3 rule keeps.
    ids = [t for t in (f"{n:032x}" for n in range(1, 200)) if kept_by_hash(t, 3)][:3]
    now = time.time_ns()

    def span(trace_id: str, span_id: str, **extra) -> dict:
        return {"traceId": trace_id, "spanId": span_id, "name": "op", "kind": 2,
                "startTimeUnixNano": str(now), "endTimeUnixNano": str(now + 1_000_000), **extra}

    body = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": SERVICE}}]},
        "scopeSpans": [{"spans": [
            span(ids[0], "00000000000000a1", traceState="ot=th:c"),
            span(ids[1], "00000000000000a2",
                 attributes=[{"key": "sampleRate", "value": {"intValue": "5"}}]),
            span(ids[2], "00000000000000a3"),
        ]}],
    }]}
    resp = server.post("/v1/traces", json.dumps(body))
    assert resp.status_code == 200, resp.text
    deadline = time.monotonic() + DECISIONS_TIMEOUT_S
    while len(stored := stored_spans(server)) < 3:
        assert time.monotonic() < deadline, stored
        time.sleep(POLL_S)
    assert {t: spans[0][1] for t, spans in stored.items()} == {ids[0]: 12, ids[1]: 15, ids[2]: 3}
