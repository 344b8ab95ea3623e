"""Rollups (docs/rollups.md): definitions over HTTP and in the configuration file,
the default rollup of trace datasets, backfill with visible progress, and
persistence across kill -9.
"""

from __future__ import annotations

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
    import json

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
    server.config_path.write_text("\n".join(lines) + "\n")
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
