"""Alerts that page (docs/alerts.md): triggers, SLOs with burn alerts, markers and
notifications, against the real binary and a real HTTP receiver started here.

Alert time is a manual clock (`[alerts] manual_clock = true`): each
`POST /api/v1/admin/alerts/evaluate {"now": t}` moves it to `t`, runs one
evaluation pass and one delivery pass. Events carry explicit times, so no test
depends on the wall clock's speed; waits for retried deliveries are bounded.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import duckdb
import pytest
import requests

from harness import HTTP_TIMEOUT_S, error_message

# Seconds a retried notification may take to arrive (backoff 1 s, 2 s, ...).
DELIVERY_WAIT_S = 20.0
# Seconds between looks at the receiver while waiting.
POLL_S = 0.1
ALERTS = {"alerts": {"manual_clock": True}}


class Receiver:
    """A real HTTP server on a free loopback port recording every POST; the first
    `fail_first` requests are answered 503 (to exercise retries)."""

    def __init__(self, fail_first: int = 0):
        self.requests: list[dict] = []
        self.failures_left = fail_first
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with receiver.lock:
                    failing = receiver.failures_left > 0
                    if failing:
                        receiver.failures_left -= 1
                    receiver.requests.append(
                        {
                            "path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": json.loads(body),
                            "accepted": not failing,
                        }
                    )
                self.send_response(503 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def accepted(self, path: str | None = None) -> list[dict]:
        with self.lock:
            return [
                r for r in self.requests if r["accepted"] and (path is None or r["path"] == path)
            ]

    def wait_for(self, count: int, path: str | None = None) -> list[dict]:
        """Waits (bounded) until `count` notifications were accepted."""
        deadline = time.monotonic() + DELIVERY_WAIT_S
        while time.monotonic() < deadline:
            got = self.accepted(path)
            if len(got) >= count:
                return got
            time.sleep(POLL_S)
        raise AssertionError(f"expected {count} notifications, got {self.accepted(path)}")

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


def iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).isoformat().replace("+00:00", "Z")


def rfc3339_ns(seconds: int) -> str:
    """Whole seconds as the alerting API writes times (RFC 3339, nanoseconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + ".000000000Z"


def base_time() -> int:
    """A whole hour, a day ago: every event is in the past of any real clock."""
    return (int(time.time()) // 3600 - 24) * 3600


def post_json(server, path: str, body) -> dict:
    resp = server.post(path, json.dumps(body))
    assert resp.status_code in (200, 201), f"POST {path} -> {resp.status_code}: {resp.text[:800]}"
    return resp.json()


def evaluate(server, now: float) -> dict:
    return post_json(server, "/api/v1/admin/alerts/evaluate", {"now": now})


def wait_outbox_empty(server, now: float) -> None:
    """Waits (bounded) until nothing waits for delivery; `now` must be a time at
    which nothing is due, so the evaluations this makes change nothing."""
    deadline = time.monotonic() + DELIVERY_WAIT_S
    while evaluate(server, now)["outbox"] != 0:
        assert time.monotonic() < deadline, "the outbox did not empty"
        time.sleep(POLL_S)


def send_events(server, dataset: str, events: list[tuple[float, dict, int]]) -> None:
    """(unix seconds, data, sample rate) events, in batches."""
    items = [{"time": iso(t), "data": data, "samplerate": rate} for t, data, rate in events]
    for start in range(0, len(items), 1000):
        server.send_batch_ok(dataset, items[start : start + 1000])


def delete(server, path: str) -> requests.Response:
    return requests.delete(server.base + path, headers=server.headers(), timeout=HTTP_TIMEOUT_S)


def webhook(server, receiver, path: str = "/hook") -> str:
    body = {"type": "webhook", "details": {"webhook_name": "test", "webhook_url": receiver.url + path}}
    return post_json(server, "/1/recipients", body)["id"]


# ----------------------------------------------------------------- triggers


def error_spike(t0: int, spike_minutes: range) -> list[tuple[float, dict, int]]:
    """Two routes, 40 minutes: /home never fails; /pay fails 20 times a minute
    in `spike_minutes`. Every event has a trace id (for exemplars)."""
    events = []
    for minute in range(40):
        for i in range(5):
            for route in ("/home", "/pay"):
                events.append(
                    (t0 + minute * 60 + i * 10, {"http.route": route, "error": False,
                                                 "trace.trace_id": f"ok-{minute}-{i}-{route}"}, 1)
                )
        if minute in spike_minutes:
            for i in range(20):
                events.append(
                    (t0 + minute * 60 + i * 2 + 1, {"http.route": "/pay", "error": True,
                                                    "trace.trace_id": f"bad-{minute}-{i}"}, 1)
                )
    return events


def error_trigger(recipient: str) -> dict:
    return {
        "name": "payment errors",
        "query": {
            "calculations": [{"op": "COUNT"}],
            "filters": [{"column": "error", "op": "=", "value": True}],
            "breakdowns": ["http.route"],
            "time_range": 300,
        },
        "frequency": 300,
        "threshold": {"op": ">", "value": 50},
        "alert_type": "on_change",
        "recipients": [{"id": recipient}],
    }


def test_an_error_spike_pages_once_and_resolves_once(quarry, receiver):
    server = quarry(config=ALERTS)
    t0 = base_time()
    send_events(server, "api", error_spike(t0, range(10, 15)))
    recipient = webhook(server, receiver)
    trigger = post_json(server, "/1/triggers/api", error_trigger(recipient))
    assert trigger["triggered"] is False

    assert evaluate(server, t0 + 300)["notifications"] == 0  # [0, 5 min): no errors
    opened = evaluate(server, t0 + 900)  # [10, 15 min): 100 errors on /pay
    assert opened["notifications"] == 1, opened
    receiver.wait_for(1)
    state = server.get(f"/1/triggers/api/{trigger['id']}").json()
    assert state["triggered"] is True
    # Not due again before its frequency: nothing happens.
    assert evaluate(server, t0 + 1000)["triggers_evaluated"] == 0
    closed = evaluate(server, t0 + 1200)  # [15, 20 min): none
    assert closed["notifications"] == 1, closed
    assert evaluate(server, t0 + 1500)["notifications"] == 0

    got = receiver.wait_for(2, "/hook")
    assert len(got) == 2
    assert [n["body"]["status"] for n in got] == ["triggered", "resolved"]
    opened, closed = got[0]["body"], got[1]["body"]
    assert opened["value"] == 100
    assert opened["threshold"] == {"op": ">", "value": 50.0}
    assert opened["group"] == {"http.route": "/pay"}
    assert opened["name"] == "payment errors"
    assert opened["id"] == trigger["id"]
    assert opened["exemplar_trace_ids"] and all(
        t.startswith("bad-1") for t in opened["exemplar_trace_ids"]
    ), opened["exemplar_trace_ids"]
    link = urlparse(opened["query_url"])
    assert link.netloc == f"127.0.0.1:{server.port}"
    assert parse_qs(link.query)["dataset"] == ["api"]
    assert json.loads(parse_qs(link.query)["query"][0])["breakdowns"] == ["http.route"]
    assert closed["group"] == {"http.route": "/pay"} and closed["value"] is None
    assert opened["dedup_key"] == closed["dedup_key"]
    assert got[0]["headers"]["x-quarry-dedup-key"] == opened["dedup_key"]
    state = server.get(f"/1/triggers/api/{trigger['id']}").json()["state"]
    history = state["history"]
    assert [h["triggered_groups"] for h in history] == [0, 1, 0, 0]
    # Each evaluation's value (no errors: no group, no value) and each transition.
    assert [h["value"] for h in history] == [None, 100, None, None]
    assert state["transitions"] == [
        {"time": rfc3339_ns(t0 + 900), "status": "triggered", "group": {"http.route": "/pay"}, "value": 100},
        {"time": rfc3339_ns(t0 + 1200), "status": "resolved", "group": {"http.route": "/pay"}, "value": None},
    ]
    assert state["last_evaluated"] == rfc3339_ns(t0 + 1500)
    assert state["last_value"] is None


def test_every_wire_format_gets_triggered_and_resolved(quarry, receiver):
    server = quarry(config=ALERTS)
    t0 = base_time()
    send_events(server, "api", error_spike(t0, range(10, 15)))
    ids = [
        webhook(server, receiver),
        post_json(server, "/1/recipients", {"type": "slack", "details": {"slack_webhook_url": receiver.url + "/slack"}})["id"],
        post_json(server, "/1/recipients", {"type": "pagerduty", "details": {
            "pagerduty_integration_key": "routing-key", "pagerduty_url": receiver.url + "/v2/enqueue"}})["id"],
        post_json(server, "/1/recipients", {"type": "alertmanager", "details": {"alertmanager_url": receiver.url}})["id"],
    ]
    body = error_trigger(ids[0])
    body["recipients"] = [{"id": i} for i in ids]
    post_json(server, "/1/triggers/api", body)
    evaluate(server, t0 + 900)
    evaluate(server, t0 + 1200)
    receiver.wait_for(8)
    by_path = {p: [r["body"] for r in receiver.accepted(p)] for p in ("/hook", "/slack", "/v2/enqueue", "/api/v2/alerts")}
    assert all(len(v) == 2 for v in by_path.values()), by_path
    slack = by_path["/slack"]
    assert "Triggered" in slack[0]["text"] and "Resolved" in slack[1]["text"]
    pd = by_path["/v2/enqueue"]
    assert [e["event_action"] for e in pd] == ["trigger", "resolve"]
    assert pd[0]["routing_key"] == "routing-key" and pd[0]["dedup_key"] == pd[1]["dedup_key"]
    assert pd[0]["payload"]["severity"] == "critical" and pd[0]["payload"]["source"] == "quarry"
    am = by_path["/api/v2/alerts"]
    assert am[0][0]["labels"]["alertname"] == "payment errors"
    assert am[0][0]["labels"]["http_route"] == "/pay"
    assert "endsAt" not in am[0][0] and "endsAt" in am[1][0]


def test_kill_9_with_an_alert_open_neither_repages_nor_loses_the_resolve(quarry, receiver):
    server = quarry(config=ALERTS)
    t0 = base_time()
    send_events(server, "api", error_spike(t0, range(10, 25)))
    recipient = webhook(server, receiver)
    trigger = post_json(server, "/1/triggers/api", error_trigger(recipient))
    assert evaluate(server, t0 + 900)["notifications"] == 1
    receiver.wait_for(1)
    # Killed once the delivery is recorded: a kill between a receiver's 2xx and
    # that write resends (at least once, docs/alerts.md), which is not this test.
    wait_outbox_empty(server, t0 + 900)
    server.restart()  # kill -9, then start on the same data
    state = server.get(f"/1/triggers/api/{trigger['id']}").json()
    assert state["triggered"] is True, state
    still = evaluate(server, t0 + 1200)  # [15, 20 min): still spiking
    assert still["triggers_evaluated"] == 1 and still["notifications"] == 0, still
    evaluate(server, t0 + 1500)  # [20, 25 min): still spiking
    closed = evaluate(server, t0 + 1800)  # [25, 30 min): over
    assert closed["notifications"] == 1, closed
    got = receiver.wait_for(2, "/hook")
    assert [n["body"]["status"] for n in got] == ["triggered", "resolved"]
    assert len(receiver.accepted()) == 2


def test_a_notification_refused_for_a_while_is_retried_with_backoff(quarry):
    receiver = Receiver(fail_first=2)
    try:
        server = quarry(config=ALERTS)
        t0 = base_time()
        send_events(server, "api", error_spike(t0, range(10, 15)))
        post_json(server, "/1/triggers/api", error_trigger(webhook(server, receiver)))
        first = evaluate(server, t0 + 900)
        assert first["notifications"] == 1 and first["delivered"] == 0 and first["outbox"] == 1
        got = receiver.wait_for(1)
        assert got[0]["body"]["status"] == "triggered"
        assert len(receiver.requests) == 3  # two 503s, then delivered
        assert len({r["headers"]["x-quarry-notification-id"] for r in receiver.requests}) == 1
        wait_outbox_empty(server, t0 + 900)  # delivered means gone from the outbox
    finally:
        receiver.stop()


def test_trigger_validation_follows_honeycomb_and_names_the_field(quarry, receiver):
    server = quarry(config=ALERTS)
    server.send_batch_ok("api", [{"data": {"error": False}}])
    recipient = webhook(server, receiver)
    good = error_trigger(recipient)

    def bad(change, field):
        body = json.loads(json.dumps(good))
        change(body)
        resp = server.post("/1/triggers/api", json.dumps(body))
        assert resp.status_code == 400, (field, resp.status_code, resp.text)
        assert error_message(resp).startswith(field + ":"), (field, error_message(resp))

    bad(lambda b: b["query"].update(calculations=[{"op": "HEATMAP", "column": "ms"}]), "query.calculations[0].op")
    bad(lambda b: b["query"].update(calculations=[{"op": "CONCURRENCY"}]), "query.calculations[0].op")
    bad(lambda b: b["query"].update(calculations=[{"op": "COUNT"}, {"op": "MAX", "column": "x"}]), "query.calculations")
    bad(lambda b: b.update(frequency=30), "frequency")
    bad(lambda b: b.update(frequency=86460), "frequency")
    bad(lambda b: b.update(frequency=90), "frequency")
    bad(lambda b: b["query"].update(time_range=7200), "query.time_range")
    bad(lambda b: b["query"].update(start_time=1), "query.start_time")
    bad(lambda b: b["threshold"].update(op="=="), "threshold.op")
    bad(lambda b: b["threshold"].update(exceeded_limit=6), "threshold.exceeded_limit")
    bad(lambda b: b.update(alert_type="sometimes"), "alert_type")
    bad(lambda b: b.update(recipients=[{"id": "nobody"}]), "recipients[0].id")
    bad(lambda b: b.pop("query"), "query")
    bad(lambda b: (b.pop("query"), b.update(query_id="nope")), "query_id")
    resp = server.post("/1/recipients", json.dumps({"type": "webhook", "details": {"webhook_url": "nope"}}))
    assert resp.status_code == 400 and error_message(resp).startswith("details.webhook_url:")

    # A saved query's id works as the trigger's query.
    saved = post_json(server, "/1/queries/api", {"calculations": [{"op": "COUNT"}], "time_range": 600})
    body = dict(good)
    body.pop("query")
    body["query_id"] = saved["id"]
    created = post_json(server, "/1/triggers/api", body)
    assert created["query"]["time_range"] == 600 and created["query_id"] == saved["id"]
    assert server.get(f"/1/triggers/api/{created['id']}").status_code == 200
    assert len(server.get("/1/triggers/api").json()) == 1
    assert delete(server, f"/1/triggers/api/{created['id']}").status_code == 204
    assert server.get(f"/1/triggers/api/{created['id']}").status_code == 404


# --------------------------------------------------------------------- SLOs


def traffic(t0: int, minutes: int, per_minute: int, bad) -> list[tuple[float, dict, int]]:
    """`per_minute` events a minute; `bad(minute, i)` says which fail."""
    return [
        (t0 + m * 60 + i * (60 / per_minute), {"error": bool(bad(m, i))}, 1)
        for m in range(minutes)
        for i in range(per_minute)
    ]


def test_the_multiwindow_policy_pages_on_a_fast_burn_but_not_on_a_blip(quarry, receiver):
    server = quarry(config=ALERTS)
    t0 = base_time() - 4 * 3600
    minutes = 240
    end = t0 + minutes * 60
    # Fast: three healthy hours, then an hour at 30 % errors (30x a 99 % budget).
    send_events(server, "fast", traffic(t0, minutes, 10, lambda m, i: m >= 180 and i < 3))
    # Blip: four healthy hours but three minutes of nothing but errors.
    send_events(server, "blip", traffic(t0, minutes, 10, lambda m, i: m >= minutes - 3))
    recipient = webhook(server, receiver)
    alerts = {}
    for dataset in ("fast", "blip"):
        slo = post_json(server, f"/1/slos/{dataset}", {
            "name": f"{dataset} availability",
            "sli": {"alias": "ok", "expression": "NOT($error)"},
            "target_per_million": 990000,
            "time_period_days": 30,
        })
        alerts[dataset] = post_json(server, f"/1/burn_alerts/{dataset}", {
            "slo": {"id": slo["id"]}, "recipients": [{"id": recipient}],
        })
        assert alerts[dataset]["alert_type"] == "multiwindow"
    evaluate(server, end)
    pages = [r["body"] for r in receiver.accepted() if r["body"]["severity"] == "page"]
    assert [p["id"] for p in pages] == [alerts["fast"]["id"]], receiver.accepted()
    assert pages[0]["status"] == "triggered" and pages[0]["value"] >= 14.4
    fast = server.get(f"/1/burn_alerts/fast/{alerts['fast']['id']}").json()
    assert fast["triggered"] is True and fast["severity"] == "page"
    blip = server.get(f"/1/burn_alerts/blip/{alerts['blip']['id']}").json()
    assert blip["severity"] != "page"


def test_burn_alert_validation_names_the_field(quarry):
    server = quarry(config=ALERTS)
    server.send_batch_ok("api", [{"data": {"error": False}}])
    slo = post_json(server, "/1/slos/api", {"name": "a", "sli": {"expression": "NOT($error)"},
                                            "target_per_million": 999000, "time_period_days": 7})
    cases = [
        ({"slo": {"id": slo["id"]}, "alert_type": "exhaustion_time", "exhaustion_minutes": -5}, "exhaustion_minutes"),
        ({"slo": {"id": slo["id"]}, "alert_type": "budget_rate", "budget_rate_window_minutes": 10,
          "budget_rate_decrease_threshold_per_million": 10}, "budget_rate_window_minutes"),
        ({"slo": {"id": slo["id"]}, "alert_type": "often"}, "alert_type"),
        ({"slo": {"id": "nope"}}, "slo.id"),
        ({"slo": {"id": slo["id"]}, "windows": [{"long_minutes": 60, "short_minutes": 90, "burn_rate": 2, "severity": "page"}]},
         "windows[0].short_minutes"),
    ]
    for body, field in cases:
        resp = server.post("/1/burn_alerts/api", json.dumps(body))
        assert resp.status_code == 400 and error_message(resp).startswith(field + ":"), (field, resp.text)
    for body, field in [
        ({"name": "x", "sli": {"expression": "NOT($error)"}, "target_per_million": 1000000, "time_period_days": 7}, "target_per_million"),
        ({"name": "x", "sli": {"expression": "NOT($error)"}, "target_per_million": 999000, "time_period_days": 0}, "time_period_days"),
        ({"name": "x", "sli": {"expression": "NOT($error"}, "target_per_million": 999000, "time_period_days": 7}, "sli.expression"),
        ({"name": "x", "target_per_million": 999000, "time_period_days": 7}, "sli"),
    ]:
        resp = server.post("/1/slos/api", json.dumps(body))
        assert resp.status_code == 400 and error_message(resp).startswith(field + ":"), (field, resp.text)


def test_slo_compliance_and_budget_equal_duckdb_and_the_raw_answer(quarry, tmp_path):
    server = quarry(config=ALERTS)
    rng = random.Random(18)
    now = base_time()
    days = 3
    events = []
    for _ in range(4000):
        t = now - rng.uniform(0, (days + 1) * 86400)  # some fall before the window
        data = {"duration_ms": round(rng.expovariate(1 / 200), 3)}
        if rng.random() < 0.9:  # the rest have no status: a null SLI, not counted
            data["status"] = rng.choice([200, 200, 200, 201, 404, 500, 503])
        events.append((t, data, rng.choice([1, 1, 2, 5])))
    send_events(server, "shop", events)
    server.seal()  # most events from segments, the rest from the buffer
    send_events(server, "shop", [(now - 30, {"status": 500, "duration_ms": 1.0}, 3)])
    events.append((now - 30, {"status": 500, "duration_ms": 1.0}, 3))
    expression = "IF(EXISTS($status), AND(LT($status, 500), LT($duration_ms, 400)))"
    slo = post_json(server, "/1/slos/shop", {
        "name": "checkout", "sli": {"alias": "good_checkout", "expression": expression},
        "target_per_million": 950000, "time_period_days": days,
    })
    evaluate(server, now)
    got = server.get(f"/1/slos/shop/{slo['id']}").json()
    raw = server.get(f"/1/slos/shop/{slo['id']}?source=raw").json()
    assert got["source"] == "rollup" and raw["source"] == "raw"

    db = duckdb.connect()
    db.execute("CREATE TABLE e (t DOUBLE, status INTEGER, duration_ms DOUBLE, rate INTEGER)")
    db.executemany("INSERT INTO e VALUES (?, ?, ?, ?)",
                   [(t, d.get("status"), d["duration_ms"], r) for t, d, r in events])

    def counts(start, end):
        return db.execute(
            """SELECT
                 coalesce(sum(rate) FILTER (WHERE status IS NOT NULL AND status < 500 AND duration_ms < 400), 0),
                 coalesce(sum(rate) FILTER (WHERE status IS NOT NULL AND NOT (status < 500 AND duration_ms < 400)), 0)
               FROM e WHERE t >= ? AND t < ?""", [start, end]).fetchone()

    good, bad = counts(got["window_start"], got["window_end"])
    assert got["window_end"] - got["window_start"] == days * 86400
    assert bad > 0 and good > 0
    allowed = 1 - 950000 / 1e6
    compliance = 100 * good / (good + bad)
    budget = 100 * (1 - (bad / (good + bad)) / allowed)
    for answer in (got, raw):
        assert answer["good"] == good and answer["bad"] == bad, (answer["good"], answer["bad"], good, bad)
        assert answer["compliance"] == pytest.approx(compliance, rel=1e-9)
        assert answer["budget_remaining"] == pytest.approx(budget, rel=1e-9)
    for name, minutes in [("5m", 5), ("1h", 60), ("24h", 1440), ("72h", 4320)]:
        g, b = counts(got["window_end"] - minutes * 60, got["window_end"])
        want = (b / (g + b)) / allowed if g + b else 0.0
        assert got["burn_rates"][name] == pytest.approx(want, rel=1e-9, abs=1e-12), name
        assert raw["burn_rates"][name] == pytest.approx(want, rel=1e-9, abs=1e-12), name
    history = got["history"]
    assert sum(p["good"] for p in history) == good and sum(p["bad"] for p in history) == bad
    assert history[-1]["budget_remaining"] == pytest.approx(budget, rel=1e-9)

    # The kept counts survive a restart (kill -9) and still agree.
    server.restart()
    evaluate(server, now)  # the manual clock starts at the wall clock again
    again = server.get(f"/1/slos/shop/{slo['id']}").json()
    assert (again["good"], again["bad"]) == (good, bad)


# ------------------------------------------------------------------ markers


def test_markers_are_kept_coloured_and_returned_with_query_results(quarry):
    server = quarry()
    t0 = base_time()
    send_events(server, "api", [(t0 + i * 60, {"ms": i}, 1) for i in range(60)])
    post_json(server, "/1/marker_settings/api", {"type": "deploy", "color": "#00ff00"})
    deploy = post_json(server, "/1/markers/api", {"start_time": t0 + 600, "message": "v1.2.3", "type": "deploy",
                                                 "url": "https://ci/builds/7"})
    assert deploy["color"] == "#00ff00" and deploy["id"]
    post_json(server, "/1/markers/__all__", {"start_time": t0 + 1200, "end_time": t0 + 1500, "message": "maintenance"})
    post_json(server, "/1/markers/api", {"start_time": t0 + 7200, "message": "later"})
    resp = server.post("/1/markers/api", json.dumps({"start_time": "yesterday"}))
    assert resp.status_code == 400 and error_message(resp).startswith("start_time:")
    resp = server.post("/1/marker_settings/api", json.dumps({"type": "deploy", "color": "green"}))
    assert resp.status_code == 400 and error_message(resp).startswith("color:")

    server.restart()  # kill -9: markers are persisted
    listed = server.get("/1/markers/api").json()
    assert sorted(m["message"] for m in listed) == ["later", "v1.2.3"]
    spec = {"calculations": [{"op": "COUNT"}], "start_time": t0, "end_time": t0 + 3600}
    result = post_json(server, "/api/v1/query/api", spec)
    assert [(m["message"], m["dataset"]) for m in result["markers"]] == [("v1.2.3", "api"), ("maintenance", "__all__")]
    assert result["markers"][0]["color"] == "#00ff00" and result["markers"][0]["url"] == "https://ci/builds/7"
    resp = requests.put(server.base + f"/1/markers/api/{deploy['id']}", json={"message": "v1.2.4"},
                        headers=server.headers(), timeout=HTTP_TIMEOUT_S)
    assert resp.status_code == 200 and resp.json()["message"] == "v1.2.4"
    assert delete(server, f"/1/markers/api/{deploy['id']}").status_code == 200
    assert [m["message"] for m in server.get("/1/markers/api").json()] == ["later"]
