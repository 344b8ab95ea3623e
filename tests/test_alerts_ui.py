"""The SLO and trigger pages of the web UI (docs/web-ui.md), in real headless
Chromium (Debian's /usr/bin/chromium driven by Playwright, as tests/test_ui.py).

Each test creates its SLO or trigger through the API, writes events with explicit
times, moves the manual alert clock with `POST /api/v1/admin/alerts/evaluate`, and
then checks that the pages show exactly the API's numbers; the SLO page's BubbleUp
link must open BubbleUp of the SLI's bad events against its good ones. Also the
API the link relies on: a BubbleUp group may name a calculated field.
"""

from __future__ import annotations

import json
import random
import re
from urllib.parse import parse_qs, urlparse

import pytest

from test_alerts import ALERTS, base_time, error_spike, evaluate, post_json, send_events
# The browser and a page per test, with its console watched, as in the other UI tests.
from test_ui import browser, page, shot  # noqa: F401 (fixtures)

SLI_ALIAS = "ok"
SLI_EXPRESSION = "IF(EXISTS($status), LT($status, 500))"
# The SLO page draws a 1-day period in 5-minute history buckets (at most 500 points).
HISTORY_STEP_1_DAY = 300
BURN_WINDOWS = ["5m", "30m", "1h", "2h", "6h", "24h", "72h"]


def shop_events(t0: int) -> tuple[list[tuple[float, dict, int]], float, float]:
    """An hour of checkout events from `t0`: build b2 fails (status 500) about a
    third of the time, b1 never; a tenth have no status (a null SLI, not counted).
    Sample rates 1 and 2. Returns the events and their weighted good and bad."""
    rng = random.Random(18)
    events, good, bad = [], 0.0, 0.0
    for minute in range(60):
        for i in range(12):
            t = t0 + minute * 60 + i * 5
            rate = rng.choice([1, 2])
            data = {"build": rng.choice(["b1", "b2"]), "region": rng.choice(["eu", "us"])}
            if rng.random() >= 0.1:
                failing = data["build"] == "b2" and rng.random() < 0.35
                data["status"] = 500 if failing else 200
                if failing:
                    bad += rate
                else:
                    good += rate
            events.append((t, data, rate))
    return events, good, bad


def create_slo(server, dataset: str) -> dict:
    slo = post_json(server, f"/1/slos/{dataset}", {
        "name": "checkout availability",
        "sli": {"alias": SLI_ALIAS, "expression": SLI_EXPRESSION},
        "target_per_million": 990000,
        "time_period_days": 1,
    })
    post_json(server, f"/1/burn_alerts/{dataset}", {"slo": {"id": slo["id"]}})
    return slo


def data_value(locator) -> float:
    return float(locator.get_attribute("data-value"))


def test_bubbleup_group_may_name_a_calculated_field(quarry):
    """The API the SLO page's link uses: the SLI as a calculated field, its null
    (not counted) events filtered out, its false group the selection."""
    server = quarry(config=ALERTS)
    t0 = base_time()
    events, good, bad = shop_events(t0)
    send_events(server, "shop", events)
    body = {
        "query": {
            "calculated_fields": [{"name": SLI_ALIAS, "expression": SLI_EXPRESSION}],
            "filters": [{"column": SLI_ALIAS, "op": "exists"}],
            "start_time": t0, "end_time": t0 + 3600,
        },
        "selection": {"group": {SLI_ALIAS: False}},
    }
    resp = server.post("/api/v1/bubbleup/shop", json.dumps(body))
    assert resp.status_code == 200, resp.text
    result = resp.json()
    assert result["selection"]["weight"] == bad
    assert result["baseline"]["weight"] == good
    assert result["columns"][0]["column"] == "build", [c["column"] for c in result["columns"]]
    # `status` defines the selection (through the SLI): ranked last, flagged.
    status = next(c for c in result["columns"] if c["column"] == "status")
    assert status["selection_column"] is True


def test_the_slo_page_shows_the_apis_numbers_and_links_to_bubbleup(quarry, page):
    server = quarry(config=ALERTS)
    t0 = base_time()
    events, good, bad = shop_events(t0)
    send_events(server, "shop", events)
    slo = create_slo(server, "shop")
    now = t0 + 3600 + 150
    evaluate(server, now)
    api = server.get(f"/1/slos/shop/{slo['id']}?history_step={HISTORY_STEP_1_DAY}").json()
    assert (api["good"], api["bad"]) == (good, bad)
    alerts = server.get(f"/1/burn_alerts/shop?slo_id={slo['id']}").json()
    assert len(alerts) == 1

    # The list: reached from the navigation bar, the dataset in the URL.
    page.goto(server.base + "/")
    page.get_by_role("link", name="SLOs").click()
    page.wait_for_url(re.compile(r"/slos\?dataset=shop$"))
    page.get_by_test_id("dataset").select_option("shop")
    row = page.get_by_test_id("slo-row").filter(has_text="checkout availability")
    assert data_value(row.get_by_test_id("compliance")) == pytest.approx(api["compliance"], rel=1e-12)
    assert data_value(row.get_by_test_id("budget")) == pytest.approx(api["budget_remaining"], rel=1e-12)

    # The detail page.
    row.get_by_test_id("slo-link").click()
    page.wait_for_url(f"**/slos/shop/{slo['id']}")
    page.get_by_test_id("burn-down").wait_for()
    shot(page, "slo-detail")

    def check_detail():
        assert page.get_by_test_id("slo-name").inner_text() == "checkout availability"
        assert page.get_by_test_id("target").inner_text() == "99%"
        compliance = page.get_by_test_id("compliance")
        assert data_value(compliance) == api["compliance"]
        assert compliance.inner_text() == f"{api['compliance']:.3f}%"
        assert data_value(page.get_by_test_id("budget")) == api["budget_remaining"]
        assert data_value(page.get_by_test_id("good")) == api["good"]
        assert data_value(page.get_by_test_id("bad")) == api["bad"]
        for window in BURN_WINDOWS:
            shown = page.get_by_test_id(f"burn-{window}")
            assert data_value(shown) == pytest.approx(api["burn_rates"][window], rel=1e-12, abs=1e-15), window
        line = page.get_by_test_id("burn-down-line")
        assert int(line.get_attribute("data-points")) == len(api["history"]) == 86400 // HISTORY_STEP_1_DAY
        alert_row = page.get_by_test_id("burn-alert")
        assert alert_row.count() == 1
        state = alert_row.get_by_test_id("state").inner_text()
        assert state == ("triggered" if alerts[0]["triggered"] else "ok")
        assert data_value(alert_row.get_by_test_id("burn-value")) == pytest.approx(alerts[0]["value"], rel=1e-12)
        assert alert_row.get_by_test_id("severity").inner_text() == (
            alerts[0]["severity"] if alerts[0]["triggered"] else "")

    check_detail()
    # A third of b2 failing is far past a 99 % target over every window: it pages.
    assert alerts[0]["triggered"] is True and alerts[0]["severity"] == "page"
    # A reload shows the same page.
    page.reload()
    page.get_by_test_id("burn-down").wait_for()
    check_detail()

    # BubbleUp of bad events against good, from the SLO's window.
    page.get_by_test_id("bubbleup-link").click()
    page.wait_for_url(re.compile(r"/\?dataset=shop&"))
    params = parse_qs(urlparse(page.url).query)
    assert json.loads(params["bubbleup"][0]) == {"group": {SLI_ALIAS: False}}
    query = json.loads(params["query"][0])
    assert query["calculated_fields"] == [{"name": SLI_ALIAS, "expression": SLI_EXPRESSION}]
    assert (query["start_time"], query["end_time"]) == (api["window_start"], api["window_end"])
    panel = page.get_by_test_id("panel")
    panel.get_by_test_id("bubbleup").wait_for()
    shot(page, "slo-bubbleup")
    assert f"{SLI_ALIAS} = false" in panel.locator("h2").inner_text()
    summary = panel.get_by_test_id("bubbleup").locator("p").first.inner_text()
    assert f"selection: {int(bad):,} events" in summary, summary
    assert f"baseline: {int(good):,} events" in summary, summary
    first = panel.get_by_test_id("bubbleup-column").first
    assert first.get_attribute("data-column") == "build"
    # The URL holds the selection: a reload opens the same BubbleUp.
    page.reload()
    page.get_by_test_id("panel").get_by_test_id("bubbleup").wait_for()
    assert page.get_by_test_id("bubbleup-column").first.get_attribute("data-column") == "build"
    page.console.assert_clean()


def error_trigger_body(name: str, frequency: int, breakdowns: list[str], threshold: float) -> dict:
    return {
        "name": name,
        "query": {
            "calculations": [{"op": "COUNT"}],
            "filters": [{"column": "error", "op": "=", "value": True}] if breakdowns else [],
            "breakdowns": breakdowns,
            "time_range": frequency,
        },
        "frequency": frequency,
        "threshold": {"op": ">", "value": threshold},
    }


def test_the_triggers_page_shows_state_and_history(quarry, page):
    server = quarry(config=ALERTS)
    t0 = base_time()
    send_events(server, "api", error_spike(t0, range(10, 15)))
    errors = post_json(server, "/1/triggers/api", error_trigger_body("payment errors", 300, ["http.route"], 50))
    volume = post_json(server, "/1/triggers/api", error_trigger_body("traffic", 600, [], 1000))

    def check_list():
        page.get_by_test_id("trigger-list").wait_for()
        for trigger in (errors, volume):
            api = server.get(f"/1/triggers/api/{trigger['id']}").json()
            row = page.locator(f"[data-testid=trigger-row][data-id='{trigger['id']}']")
            assert row.get_by_test_id("state").inner_text() == ("triggered" if api["triggered"] else "ok")
            assert row.get_by_test_id("threshold").inner_text() == f"COUNT > {int(api['threshold']['value'])}"
            assert row.get_by_test_id("frequency").inner_text() == f"{api['frequency'] // 60}m"
            assert row.get_by_test_id("last-evaluated").get_attribute("data-time") == api["state"]["last_evaluated"]
            shown = row.get_by_test_id("last-value")
            if api["state"]["last_value"] is None:
                assert shown.inner_text() == "–"
            else:
                assert data_value(shown) == api["state"]["last_value"]

    evaluate(server, t0 + 300)
    evaluate(server, t0 + 900)  # /pay: 100 errors in [10, 15 min): triggered
    page.goto(server.base + "/")
    page.get_by_role("link", name="Triggers").click()
    page.wait_for_url(re.compile(r"/triggers\?dataset=api$"))
    check_list()
    row = page.locator(f"[data-testid=trigger-row][data-id='{errors['id']}']")
    assert row.get_by_test_id("state").inner_text() == "triggered"
    assert data_value(row.get_by_test_id("last-value")) == 100
    volume_row = page.locator(f"[data-testid=trigger-row][data-id='{volume['id']}']")
    assert volume_row.get_by_test_id("state").inner_text() == "ok"
    # [5, 15 min): 10 events a minute on two routes' 5 each, plus 100 errors.
    assert data_value(volume_row.get_by_test_id("last-value")) == 200

    evaluate(server, t0 + 1200)  # [15, 20 min): no errors: resolved
    page.reload()
    check_list()
    assert row.get_by_test_id("state").inner_text() == "ok"
    shot(page, "triggers")

    row.get_by_test_id("trigger-link").click()
    page.wait_for_url(f"**/triggers/api/{errors['id']}")
    page.get_by_test_id("transitions").wait_for()
    shot(page, "trigger-detail")
    api = server.get(f"/1/triggers/api/{errors['id']}").json()
    transitions = api["state"]["transitions"]
    assert [t["status"] for t in transitions] == ["triggered", "resolved"]

    def check_detail():
        assert page.get_by_test_id("trigger-name").inner_text() == "payment errors"
        shown = page.get_by_test_id("transition")
        assert shown.count() == len(transitions)
        for i, transition in enumerate(reversed(transitions)):  # newest first
            shown_row = shown.nth(i)
            assert shown_row.get_by_test_id("time").get_attribute("data-time") == transition["time"]
            assert shown_row.get_by_test_id("state").inner_text() == (
                "triggered" if transition["status"] == "triggered" else "ok")
            assert shown_row.get_by_test_id("group").inner_text() == "http.route = /pay"
            value = shown_row.get_by_test_id("value")
            if transition["value"] is None:
                assert value.inner_text() == "–"
            else:
                assert data_value(value) == transition["value"]
        evaluations = page.get_by_test_id("evaluation")
        assert evaluations.count() == len(api["state"]["history"]) == 3
        for i, entry in enumerate(reversed(api["state"]["history"])):
            assert evaluations.nth(i).get_by_test_id("time").get_attribute("data-time") == entry["time"]
            assert evaluations.nth(i).get_by_test_id("triggered-groups").inner_text() == str(entry["triggered_groups"])

    check_detail()
    assert data_value(page.get_by_test_id("transition").nth(1).get_by_test_id("value")) == 100
    page.reload()
    page.get_by_test_id("transitions").wait_for()
    check_detail()
    # The trigger's query opens in the query builder.
    link = urlparse(page.get_by_test_id("query-link").get_attribute("href"))
    assert parse_qs(link.query)["dataset"] == ["api"]
    assert json.loads(parse_qs(link.query)["query"][0])["breakdowns"] == ["http.route"]
    page.console.assert_clean()
