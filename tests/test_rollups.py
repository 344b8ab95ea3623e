"""Rollups (docs/rollups.md): definitions over HTTP and in the configuration file,
the default rollup of trace datasets, backfill with visible progress, and
persistence across kill -9.
"""

from __future__ import annotations

import json
import random
import time

from harness import Quarry, error_message, to_toml

DATASET = "rollup-ds"
# Seconds maintenance may take to roll up what was sealed (it is woken by the seal).
MAINTENANCE_TIMEOUT_S = 60.0
# 2023-11-14T22:00:00Z, an hour boundary.
START_S = 1_699_999_200

GOOD = {
    "name": "by_service",
    "granularity": 60,
    "dimensions": ["service", "status"],
    "measures": [
        {"op": "COUNT"},
        {"op": "SUM", "column": "ms"},
        {"op": "MIN", "column": "ms"},
        {"op": "MAX", "column": "ms"},
    ],
}


def send_rows(server: Quarry, dataset: str, hours: int, per_hour: int) -> None:
    """Events spread over `hours` hours from START_S, a few services and statuses."""
    items = []
    for h in range(hours):
        for i in range(per_hour):
            t = START_S + h * 3600 + (i * 37) % 3600
            items.append(
                {
                    "time": t,
                    "samplerate": 1 + i % 3,
                    "data": {
                        "service": ["api", "db", "web"][i % 3],
                        "status": [200, 500][i % 2],
                        "ms": (i * 13) % 1000 / 10,
                    },
                }
            )
    for start in range(0, len(items), 500):
        server.send_batch_ok(dataset, items[start : start + 500])


def create(server: Quarry, dataset: str, definition: dict):
    return server.post(f"/api/v1/rollups/{dataset}", json.dumps(definition))


def wait_complete(server: Quarry, dataset: str, name: str) -> dict:
    """Polls the rollup's status until every sealed segment is rolled up."""
    deadline = time.monotonic() + MAINTENANCE_TIMEOUT_S
    status = None
    while time.monotonic() < deadline:
        resp = server.get(f"/api/v1/rollups/{dataset}/{name}")
        if resp.status_code == 200:
            status = resp.json()
            if status["complete"] and status["segments_total"] > 0:
                return status
        time.sleep(0.1)
    raise AssertionError(f"rollup {name} not complete: {status}\n{server.log_tail()}")


def test_definitions_are_validated_with_the_field_named(server):
    send_rows(server, DATASET, 1, 10)
    assert create(server, "no-such-dataset", GOOD).status_code == 404
    cases = [
        ({**GOOD, "name": "has space"}, "name"),
        ({**GOOD, "granularity": 0}, "granularity"),
        ({**GOOD, "dimensions": ["service", "service"]}, "dimensions[1]"),
        ({**GOOD, "measures": [{"op": "SUM", "column": "service"}]}, "measures[0].column"),
        ({**GOOD, "measures": [{"op": "SUM"}]}, "measures[0].column"),
        ({**GOOD, "measures": [{"op": "MEDIAN", "column": "ms"}]}, "op"),
        ({**GOOD, "filters": [{"column": "service", "op": "like", "value": "a"}]}, "filters[0].op"),
        ({**GOOD, "colour": "red"}, "colour"),
    ]
    for definition, field in cases:
        resp = create(server, DATASET, definition)
        assert resp.status_code == 400, (definition, resp.status_code, resp.text)
        assert field in error_message(resp), (field, resp.text)

    resp = create(server, DATASET, GOOD)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["name"] == "by_service" and body["definition"]["granularity"] == 60
    assert create(server, DATASET, GOOD).status_code == 409

    listed = server.get(f"/api/v1/rollups/{DATASET}").json()["rollups"]
    assert [r["name"] for r in listed] == ["by_service"]
    assert server.get(f"/api/v1/rollups/{DATASET}/nope").status_code == 404
    resp = server.post(f"/api/v1/rollups/{DATASET}", b"", headers={})
    assert resp.status_code == 400
    deleted = __import__("requests").delete(
        f"{server.base}/api/v1/rollups/{DATASET}/by_service", headers=server.headers(), timeout=30
    )
    assert deleted.status_code == 204
    assert server.get(f"/api/v1/rollups/{DATASET}/by_service").status_code == 404
    assert server.get(f"/api/v1/rollups/{DATASET}").json() == {"rollups": []}


def test_a_later_rollup_is_backfilled_and_survives_kill_9(quarry):
    server = quarry()
    send_rows(server, DATASET, 4, 200)
    server.seal()
    resp = create(server, DATASET, GOOD)
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created["segments_total"] == 4, created
    done = wait_complete(server, DATASET, "by_service")
    assert done["segments_done"] == done["segments_total"] == 4
    assert done["id"] == created["id"]

    server.restart()  # kill -9, then start on the same data
    after = server.get(f"/api/v1/rollups/{DATASET}/by_service").json()
    assert after["id"] == created["id"] and after["complete"], after
    # New data after the restart is rolled up too.
    send_rows(server, DATASET, 1, 50)
    server.seal()
    again = wait_complete(server, DATASET, "by_service")
    assert again["segments_total"] >= 5


def test_the_default_trace_rollup_and_configured_rollups(quarry):
    server = quarry(start=False)
    configured = {
        "env": "default",
        "dataset": "configured",
        "name": "cfg",
        "granularity": 300,
        "dimensions": ["service"],
        "measures": [{"op": "COUNT"}, {"op": "MAX", "column": "ms"}],
    }
    # [[rollups]] is an array of tables, written by hand (the harness writes tables).
    lines = ["[[rollups]]"]
    for key, value in configured.items():
        if key == "measures":
            inner = ", ".join(
                "{ " + ", ".join(f'{k} = "{v}"' for k, v in m.items()) + " }" for m in value
            )
            lines.append(f"measures = [{inner}]")
        else:
            lines.append(to_toml({"x": {key: value}}).splitlines()[1])
    server.write_config({}, extra="\n".join(lines))
    server.start()

    spans = [
        {
            "time": START_S + i,
            "data": {
                "trace.trace_id": f"t{i}",
                "trace.span_id": f"s{i}",
                "service.name": "checkout",
                "name": "GET /cart",
                "duration_ms": float(i),
                "error": i % 5 == 0,
                "http.route": "/cart",
            },
        }
        for i in range(50)
    ]
    server.send_batch_ok("traces", spans)
    send_rows(server, "configured", 1, 30)
    server.seal()
    default = wait_complete(server, "traces", "requests")
    assert default["definition"]["dimensions"] == ["service.name", "name", "error", "http.route"]
    assert default["definition"]["granularity"] == 60
    cfg = wait_complete(server, "configured", "cfg")
    assert cfg["definition"]["granularity"] == 300

    # Deleting the default is permanent, also across restarts.
    import requests

    resp = requests.delete(
        f"{server.base}/api/v1/rollups/traces/requests", headers=server.headers(), timeout=30
    )
    assert resp.status_code == 204
    server.restart()
    server.send_batch_ok("traces", spans[:5])
    server.seal()
    time.sleep(1.0)
    assert server.get("/api/v1/rollups/traces").json() == {"rollups": []}
    # A configured rollup is kept (and would be re-created from the file).
    assert server.get("/api/v1/rollups/configured/cfg").status_code == 200


# ----------------------------------------------------------------- rollup == raw

EQ_DATASET = "rollup-eq"
SERVICES = ["api", "db", "web", None]


def generated_events(seed: int, count: int, start_s: int, span_s: int) -> list[dict]:
    """Events with a few services (or none), statuses, float and int measures (some
    missing) and sample rates 1-4, spread over `span_s` seconds from `start_s`."""
    rng = random.Random(seed)
    items = []
    for _ in range(count):
        data = {"status": rng.choice([200, 404, 500])}
        service = rng.choice(SERVICES)
        if service is not None:
            data["service"] = service
        if rng.random() < 0.9:
            data["ms"] = rng.randrange(100_000) / 7.0
        if rng.random() < 0.8:
            data["bytes"] = rng.randrange(10_000) - 100
        items.append(
            {
                "time": start_s + rng.random() * span_s,
                "samplerate": rng.randint(1, 4),
                "data": data,
            }
        )
    return items


def generated_specs(seed: int, count: int) -> list[dict]:
    """Specs the rollup below can answer: filters and breakdowns on its dimensions,
    its measures, bucket-aligned ranges and granularities that are multiples of 60."""
    rng = random.Random(seed)
    ops = [
        {"op": "COUNT"},
        {"op": "SUM", "column": "ms"},
        {"op": "AVG", "column": "ms"},
        {"op": "MIN", "column": "ms"},
        {"op": "MAX", "column": "ms"},
        {"op": "SUM", "column": "bytes"},
        {"op": "AVG", "column": "bytes"},
        {"op": "MAX", "column": "bytes"},
    ]
    service_filters = [
        {"column": "service", "op": "=", "value": "api"},
        {"column": "service", "op": "!=", "value": "db"},
        {"column": "service", "op": "exists"},
        {"column": "service", "op": "does-not-exist"},
        {"column": "service", "op": "starts-with", "value": "w"},
        {"column": "service", "op": "in", "value": ["api", "web"]},
    ]
    status_filters = [
        {"column": "status", "op": ">=", "value": 400},
        {"column": "status", "op": "not-in", "value": [404]},
        {"column": "status", "op": "=", "value": 200},
    ]
    specs = []
    for _ in range(count):
        calculations = []
        for op in rng.sample(ops, rng.randint(1, 4)):
            calculations.append(op)
        filters = []
        if rng.random() < 0.5:
            filters.append(rng.choice(service_filters))
        if rng.random() < 0.5:
            filters.append(rng.choice(status_filters))
        start = START_S + 60 * rng.randrange(120)
        spec = {
            "calculations": calculations,
            "filters": filters,
            "filter_combination": rng.choice(["AND", "AND", "OR"]),
            "breakdowns": rng.choice([[], ["service"], ["status"], ["service", "status"]]),
            "start_time": start,
            "end_time": start + 60 * rng.randint(1, 240),
            "granularity": rng.choice([60, 300, 600, 3600]),
        }
        if rng.random() < 0.3:
            spec["orders"] = [{"op": calculations[0]["op"], "column": calculations[0].get("column"),
                               "order": "descending"}]
            spec["limit"] = 2
        specs.append(spec)
    return specs


def query(server: Quarry, dataset: str, spec: dict) -> dict:
    resp = server.post(f"/api/v1/query/{dataset}", json.dumps(spec))
    assert resp.status_code == 200, (spec, resp.status_code, resp.text[:500])
    return resp.json()


def close(a, b) -> bool:
    """Same value: numbers within 1e-9 relative (float sums depend on the order of
    addition), everything else equal."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(a - b) <= 1e-9 * max(abs(a), 1.0)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    return a == b


def assert_same_answer(raw: dict, rolled: dict, spec: dict) -> None:
    assert close(raw["totals"], rolled["totals"]), (spec, raw["totals"], rolled["totals"])
    raw_groups = {json.dumps(g["key"], sort_keys=True): g["values"] for g in raw["groups"]}
    groups = {json.dumps(g["key"], sort_keys=True): g["values"] for g in rolled["groups"]}
    if "limit" not in spec:
        assert raw_groups.keys() == groups.keys(), (spec, raw_groups.keys(), groups.keys())
    else:
        # Top-N: the same values in order (ties may pick different keys).
        assert len(raw["groups"]) == len(rolled["groups"]), spec
        for a, b in zip(raw["groups"], rolled["groups"]):
            first = spec["calculations"][0]
            name = first["op"] if first["op"] == "COUNT" else f"{first['op']}({first['column']})"
            assert close(a["values"][name], b["values"][name]), (spec, a, b)
    for key in raw_groups.keys() & groups.keys():
        assert close(raw_groups[key], groups[key]), (spec, key, raw_groups[key], groups[key])
    if "limit" not in spec:
        points = lambda r: {(p["time"], json.dumps(p["key"], sort_keys=True)): p["values"]
                            for p in r["series"]}
        raw_points, rolled_points = points(raw), points(rolled)
        assert raw_points.keys() == rolled_points.keys(), spec
        for key, values in raw_points.items():
            assert close(values, rolled_points[key]), (spec, key, values, rolled_points[key])


def assert_specs_agree(server: Quarry, dataset: str, specs: list[dict], source: str) -> None:
    for spec in specs:
        rolled = query(server, dataset, spec)
        raw = query(server, dataset, {**spec, "source": "raw"})
        assert raw["source"] == "raw"
        assert rolled["source"] == source, (spec, rolled["source"])
        assert_same_answer(raw, rolled, spec)


EQ_ROLLUP = {
    **GOOD,
    "measures": GOOD["measures"] + [{"op": "SUM", "column": "bytes"}, {"op": "MAX", "column": "bytes"}],
}


def test_generated_specs_answer_the_same_from_rollups_and_raw_rows(quarry):
    server = quarry()
    # Four sealed hours, then a rollup created later (backfilled).
    for hour in range(4):
        server.send_batch_ok(EQ_DATASET, generated_events(hour, 400, START_S + hour * 3600, 3600))
        server.seal()
    assert create(server, EQ_DATASET, EQ_ROLLUP).status_code == 201
    wait_complete(server, EQ_DATASET, "by_service")
    # Buffered rows (not sealed) are added at query time.
    server.send_batch_ok(EQ_DATASET, generated_events(99, 300, START_S, 4 * 3600))
    specs = generated_specs(7, 40)
    assert_specs_agree(server, EQ_DATASET, specs, "rollup:by_service")

    # A spec the rollup cannot answer says so.
    other = query(server, EQ_DATASET, {**specs[0], "breakdowns": ["ms"]})
    assert other["source"] == "raw"

    # kill -9 and restart: rollups come back from the manifest, buffered rows from
    # the log; a new seal is rolled up once; answers still agree.
    server.restart()
    server.send_batch_ok(EQ_DATASET, generated_events(5, 200, START_S + 3600, 3600))
    server.seal()
    status = wait_complete(server, EQ_DATASET, "by_service")
    assert status["segments_done"] == status["segments_total"]
    assert_specs_agree(server, EQ_DATASET, specs[:20], "rollup:by_service")


PCT_ROLLUP = {
    "name": "latency",
    "granularity": 60,
    "dimensions": ["service", "status"],
    "measures": [{"op": "COUNT"}, {"op": "PERCENTILES", "column": "ms"}],
}
PERCENTILE_OPS = ["P01", "P10", "P50", "P90", "P95", "P99", "P999"]
# Raw percentiles and rollup sketches each land within 1% of a true value at the
# rank (docs/functions.md); the oracle test holds the raw side to that bound, so
# the two may differ by at most about 2%.
SKETCH_AGREEMENT = 0.0201


def within_sketch_bound(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= SKETCH_AGREEMENT * max(abs(a), abs(b)) + 1e-12


def test_percentiles_from_rollup_sketches_stay_within_the_stated_bound(quarry):
    server = quarry(config={"rollup_defaults": {"traces": False}})
    dataset = "rollup-pct"
    for hour in range(3):
        server.send_batch_ok(dataset, generated_events(50 + hour, 600, START_S + hour * 3600, 3600))
        server.seal()
    assert create(server, dataset, PCT_ROLLUP).status_code == 201
    wait_complete(server, dataset, "latency")
    server.send_batch_ok(dataset, generated_events(77, 200, START_S, 3 * 3600))  # buffered
    rng = random.Random(11)
    compared = 0
    for _ in range(30):
        ops = rng.sample(PERCENTILE_OPS, rng.randint(1, 3))
        start = START_S + 60 * rng.randrange(60)
        spec = {
            "calculations": [{"op": "COUNT"}] + [{"op": op, "column": "ms"} for op in ops],
            "breakdowns": rng.choice([[], ["service"], ["status"]]),
            "filters": rng.choice([[], [{"column": "status", "op": "!=", "value": 404}]]),
            "start_time": start,
            "end_time": start + 60 * rng.randint(30, 120),
            "granularity": rng.choice([60, 600]),
        }
        rolled = query(server, dataset, spec)
        raw = query(server, dataset, {**spec, "source": "raw"})
        assert rolled["source"] == "rollup:latency", spec
        raw_groups = {json.dumps(g["key"], sort_keys=True): g["values"] for g in raw["groups"]}
        groups = {json.dumps(g["key"], sort_keys=True): g["values"] for g in rolled["groups"]}
        assert raw_groups.keys() == groups.keys(), spec
        for key, values in raw_groups.items():
            assert values["COUNT"] == groups[key]["COUNT"], (spec, key)
            for op in ops:
                name = f"{op}(ms)"
                assert within_sketch_bound(values[name], groups[key][name]), (spec, key, name, values[name], groups[key][name])
                compared += 1
        for op in ops:
            name = f"{op}(ms)"
            assert within_sketch_bound(raw["totals"][name], rolled["totals"][name]), (spec, name)
    assert compared > 100


def test_all_datasets_answer_from_their_rollups_when_every_one_can(quarry):
    """`__all__` is answered from the union of every dataset's rollup (the same
    answers as raw rows), and from raw rows as soon as one dataset has no rollup."""
    server = quarry(config={"rollup_defaults": {"traces": False}})
    for index, dataset in enumerate(["all-a", "all-b"]):
        for hour in range(2):
            server.send_batch_ok(dataset, generated_events(10 * index + hour, 300, START_S + hour * 3600, 3600))
            server.seal()
        assert create(server, dataset, EQ_ROLLUP).status_code == 201
        wait_complete(server, dataset, "by_service")
    server.send_batch_ok("all-b", generated_events(42, 100, START_S, 2 * 3600))  # buffered
    specs = [{**spec, "end_time": min(spec["end_time"], START_S + 2 * 3600)}
             for spec in generated_specs(21, 20) if spec["start_time"] < START_S + 2 * 3600]
    assert len(specs) >= 5
    assert_specs_agree(server, "__all__", specs, "rollup:by_service")

    server.send_batch_ok("all-c", generated_events(43, 50, START_S, 3600))
    assert query(server, "__all__", specs[0])["source"] == "raw"
