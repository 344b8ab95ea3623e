"""The web UI end to end, in real headless Chromium (Debian's /usr/bin/chromium driven
by Playwright; Playwright's own browser builds are never downloaded).

One server runs in demo mode (`quarry serve --demo`): two hours of generated shop
telemetry with the generator's injected anomaly (one build of `payment` ten times
slower in one region). Through the browser: build a heatmap query, drag a box around
the slow cells and see BubbleUp rank the anomaly's field first, click a cell's
exemplar and see the trace's waterfall with every span, run SQL, reload a permalink.
No test may leave an error in the browser console. Screenshots are written to
tests/artifacts/ui/ for people to look at.
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).parent / "artifacts" / "ui"
# Events the demo writes for the last two hours: enough for hundreds of slow spans.
DEMO_EVENTS = 40_000
# Seconds the demo backfill may take on a slow machine.
BACKFILL_TIMEOUT_S = 180.0
# Milliseconds a UI step may take (queries run on a debug build).
STEP_TIMEOUT_MS = 60_000
# A laptop screen.
VIEWPORT = {"width": 1366, "height": 900}

ANOMALY = re.compile(r"build (\S+) of service (\S+) is [\d.]+x slower in region (\S+)")


@pytest.fixture(scope="module")
def demo(module_quarry):
    """A server in demo mode whose backfill is complete, and the anomaly it injected."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/test installs Debian's chromium", pytrace=False)
    server = module_quarry(args=["--demo", "--demo-events", str(DEMO_EVENTS)])
    deadline = time.monotonic() + BACKFILL_TIMEOUT_S
    match = None
    while time.monotonic() < deadline:
        match = re.search(r"demo: backfill done.*", server.log_text())
        if match:
            break
        time.sleep(0.2)
    assert match, f"demo backfill did not finish:\n{server.log_tail()}"
    anomaly = ANOMALY.search(match.group(0))
    assert anomaly, match.group(0)
    build_id, service, region = anomaly.groups()
    rows = server.scalar('SELECT count(*) FROM "__all__"')
    assert rows >= DEMO_EVENTS, rows
    return server, {"build_id": build_id, "service": service, "region": region}


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Console:
    """Every console error and uncaught exception of a page."""

    def __init__(self, page):
        self.errors: list[str] = []
        page.on("console", lambda msg: msg.type == "error" and self.errors.append(msg.text))
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))

    def assert_clean(self):
        assert self.errors == [], f"browser console errors: {self.errors}"


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(STEP_TIMEOUT_MS)
    page.console = Console(page)
    yield page
    context.close()


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def has_query_api(server) -> bool:
    resp = server.post("/api/v1/query/__all__", json.dumps({"calculations": [{"op": "COUNT"}]}))
    return not (resp.status_code == 404 and "no such route" in resp.text)


def require_query_api(server) -> None:
    if not has_query_api(server):
        pytest.skip("this build has no POST /api/v1/query (the query-spec API is not merged yet)")


def heatmap_point(geometry: dict, time_s: float, value: float) -> tuple[float, float]:
    """Canvas pixel of (time, value), by the geometry the heatmap publishes."""
    x = geometry["left"] + (time_s - geometry["start"]) / (geometry["end"] - geometry["start"]) * geometry["width"]
    lo, hi = geometry["lo"], geometry["hi"]
    if geometry["log"]:
        f = (math.log(max(value, lo)) - math.log(lo)) / (math.log(hi) - math.log(lo))
    else:
        f = (value - lo) / (hi - lo)
    y = geometry["top"] + geometry["height"] - f * geometry["height"]
    return x, min(max(y, geometry["top"] + 1), geometry["top"] + geometry["height"] - 1)


def run_heatmap_query(page, base: str, dataset: str) -> None:
    page.goto(base + "/")
    page.get_by_test_id("builder").wait_for()
    page.get_by_test_id("dataset").select_option(dataset)
    page.get_by_role("button", name="+ calculation").click()
    calc = page.get_by_test_id("calculation").nth(1)
    assert calc.locator("select").input_value() == "HEATMAP"
    assert calc.locator("input").input_value() == "duration_ms"
    page.get_by_test_id("run-query").click()
    page.get_by_test_id("heatmap").wait_for()


def test_heatmap_box_runs_bubbleup_and_an_exemplar_opens_its_trace(demo, page):
    server, anomaly = demo
    require_query_api(server)
    service, region, build = anomaly["service"], anomaly["region"], anomaly["build_id"]
    # Where the slow cells are: after the bad build's first span, between the medians
    # of the normal and of the slowed-down spans.
    start_s, slow_ms, normal_ms = server.rows(
        f"""SELECT min(to_unixtime("timestamp")) AS start_s,
                   approx_percentile_cont(duration_ms, 0.5) AS slow_ms,
                   (SELECT approx_percentile_cont(duration_ms, 0.5) FROM "{service}"
                     WHERE NOT (build_id = '{build}' AND "cloud.region" = '{region}')) AS normal_ms
            FROM "{service}" WHERE build_id = '{build}' AND "cloud.region" = '{region}'"""
    )[0].values()
    assert slow_ms > 3 * normal_ms, (slow_ms, normal_ms)

    run_heatmap_query(page, server.base, service)
    heatmap = page.get_by_test_id("heatmap")
    page.get_by_test_id("time-chart").first.wait_for()
    shot(page, "1-heatmap")

    geometry = json.loads(heatmap.get_attribute("data-geometry"))
    box = heatmap.bounding_box()
    x0, y0 = heatmap_point(geometry, start_s + 60, geometry["hi"])
    x1, y1 = heatmap_point(geometry, geometry["end"], math.sqrt(slow_ms * normal_ms))
    page.mouse.move(box["x"] + x0, box["y"] + y0)
    page.mouse.down()
    page.mouse.move(box["x"] + (x0 + x1) / 2, box["y"] + (y0 + y1) / 2, steps=5)
    page.mouse.move(box["x"] + x1 - 2, box["y"] + y1, steps=5)
    page.mouse.up()
    page.get_by_test_id("heatmap-box").wait_for()
    first = page.get_by_test_id("bubbleup-column").first
    first.wait_for()
    shot(page, "2-bubbleup")
    top = first.get_attribute("data-column")
    assert top in ("cloud.region", "build_id"), (
        f"BubbleUp ranked {top!r} first; columns: "
        f"{page.get_by_test_id('bubbleup-column').evaluate_all('els => els.map(e => e.dataset.column)')}"
    )
    expected_value = region if top == "cloud.region" else build
    assert first.locator(".bu-label").first.inner_text() == expected_value

    # "group by this" re-runs the query broken down by the column, in the URL too.
    first.get_by_role("button", name="group by this").click()
    page.wait_for_url(re.compile(r"breakdowns"))
    query = json.loads(parse_qs(urlparse(page.url).query)["query"][0])
    assert query["breakdowns"] == [top]
    # The new result has a column for the breakdown.
    page.get_by_test_id("group-table").locator("thead th", has_text=top).wait_for()
    groups = page.get_by_test_id("group-table").locator("tbody tr").count()
    assert groups >= 2

    # A slow cell's exemplar opens its trace.
    heatmap.wait_for()
    geometry = json.loads(heatmap.get_attribute("data-geometry"))
    box = heatmap.bounding_box()
    exemplar_link = None
    span = geometry["end"] - start_s
    for fraction in (0.5, 0.7, 0.3, 0.9, 0.6, 0.4, 0.8):
        for factor in (1.0, 1.3, 0.8, 1.7, 0.6):
            x, y = heatmap_point(geometry, start_s + span * fraction, slow_ms * factor)
            page.mouse.click(box["x"] + x, box["y"] + y)
            heading = page.get_by_test_id("panel").locator("h2")
            if heading.count() and heading.inner_text().startswith("Exemplars"):
                exemplar_link = page.get_by_test_id("panel").get_by_test_id("trace-link").first
                exemplar_link.wait_for()
                break
        if exemplar_link is not None:
            break
    assert exemplar_link is not None, "no click in the slow band hit a heatmap cell"
    shot(page, "3-exemplars")
    exemplar_link.click()
    page.wait_for_url(re.compile(r"/trace/"))
    trace_id = urlparse(page.url).path.split("/trace/")[1]
    rows = page.get_by_test_id("span-row")
    rows.first.wait_for()
    spans = server.scalar(
        f"""SELECT count(*) FROM "__all__"
            WHERE "trace.trace_id" = '{trace_id}' AND "trace.span_id" IS NOT NULL"""
    )
    assert spans >= 2
    assert rows.count() == spans
    assert page.get_by_test_id("trace-span-count").inner_text() == f"{spans} spans"
    assert page.get_by_test_id("span-panel").is_visible()
    shot(page, "4-trace")
    # Collapsing the root hides every other span; expanding brings them back.
    rows.first.get_by_role("button", name="Collapse").click()
    assert rows.count() == 1
    rows.first.get_by_role("button", name="Expand").click()
    assert rows.count() == spans
    page.console.assert_clean()


def test_a_permalink_reloads_the_same_query_and_back_restores_the_previous(demo, page):
    server, anomaly = demo
    require_query_api(server)
    page.goto(server.base + "/")
    page.get_by_test_id("builder").wait_for()
    page.get_by_test_id("dataset").select_option(anomaly["service"])
    # VISUALIZE P99(duration_ms) WHERE cloud.region in (...) OR error exists
    # GROUP BY cloud.region ORDER BY P99 desc HAVING P99 > 0 LIMIT 3, last hour, 5 min.
    calc = page.get_by_test_id("calculation").first
    calc.locator("select").select_option("P99")
    calc.locator("input").fill("duration_ms")
    page.get_by_role("button", name="+ filter").click()
    page.get_by_label("Filter 1 column").fill("cloud.region")
    page.get_by_label("Filter 1 operator").select_option("in")
    page.get_by_label("Filter 1 value").fill(f"{anomaly['region']}, us-east-1")
    page.get_by_label("Filter 1 value").press("Tab")
    page.get_by_role("button", name="+ filter").click()
    page.get_by_label("Filter 2 column").fill("error")
    page.get_by_label("Filter 2 operator").select_option("exists")
    page.get_by_label("Filter combination").select_option("OR")
    page.get_by_role("button", name="+ group by").click()
    page.get_by_label("Group by column 1").fill("cloud.region")
    page.get_by_role("button", name="+ order").click()
    page.get_by_role("button", name="+ having").click()
    page.get_by_label("Having 1 operator").select_option(">")
    page.get_by_label("Limit").fill("3")
    page.get_by_label("Limit").press("Tab")
    page.get_by_test_id("time-range").select_option("3600")
    page.get_by_test_id("granularity").select_option("300")
    page.get_by_test_id("run-query").click()
    page.get_by_test_id("group-table").wait_for()
    shot(page, "5-query")
    url = page.url
    expected = {
        "calculations": [{"op": "P99", "column": "duration_ms"}],
        "filters": [
            {"column": "cloud.region", "op": "in", "value": [anomaly["region"], "us-east-1"]},
            {"column": "error", "op": "exists"},
        ],
        "filter_combination": "OR",
        "breakdowns": ["cloud.region"],
        "orders": [{"op": "P99", "column": "duration_ms", "order": "descending"}],
        "havings": [{"calculate_op": "P99", "column": "duration_ms", "op": ">", "value": 0}],
        "limit": 3,
        "time_range": 3600,
        "granularity": 300,
    }
    params = parse_qs(urlparse(url).query)
    assert params["dataset"] == [anomaly["service"]]
    assert json.loads(params["query"][0]) == expected
    # Every span has `error`, so the OR matches all four regions; LIMIT keeps three.
    assert page.get_by_test_id("group-table").locator("tbody tr").count() == 3

    def builder_state():
        return {
            "dataset": page.get_by_test_id("dataset").input_value(),
            "calc": page.get_by_test_id("calculation").first.locator("select").input_value(),
            "filter1": page.get_by_label("Filter 1 value").input_value(),
            "filter2_op": page.get_by_label("Filter 2 operator").input_value(),
            "combination": page.get_by_label("Filter combination").input_value(),
            "group": page.get_by_label("Group by column 1").input_value(),
            "limit": page.get_by_label("Limit").input_value(),
            "granularity": page.get_by_test_id("granularity").input_value(),
        }

    before = builder_state()
    page.reload()
    page.get_by_test_id("group-table").wait_for()
    assert page.url == url
    assert builder_state() == before
    assert before["filter1"] == f"{anomaly['region']}, us-east-1"

    # A second query, then Back: the first one is back in the builder and the URL.
    page.get_by_role("button", name="Remove group by").click()
    page.get_by_test_id("run-query").click()
    page.wait_for_url(lambda u: u != url)
    page.go_back()
    page.wait_for_url(url)
    page.get_by_label("Group by column 1").wait_for()
    assert builder_state() == before
    page.console.assert_clean()


def test_sql_console_runs_and_shows_rows(demo, page):
    server, _ = demo
    sql = (
        'SELECT "service.name" AS service, count(*) AS spans FROM "__all__" '
        'WHERE "trace.span_id" IS NOT NULL GROUP BY 1 ORDER BY 1'
    )
    expected = [row["service"] for row in server.rows(sql)]
    assert len(expected) == 8
    page.goto(server.base + "/sql")
    editor = page.get_by_test_id("sql-editor")
    editor.fill(sql)
    editor.press("Control+Enter")
    table = page.get_by_test_id("sql-result")
    table.wait_for()
    headers = table.locator("thead th").all_inner_texts()
    assert headers == ["service", "spans"]
    services = table.locator("tbody tr td:first-child").all_inner_texts()
    assert services == expected
    # The SQL is in the URL: a reload runs it again.
    assert "sql=" in page.url
    page.reload()
    page.get_by_test_id("sql-result").wait_for()
    assert page.get_by_test_id("sql-result").locator("tbody tr td:first-child").all_inner_texts() == expected
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    csv_text = Path(download.value.path()).read_text()
    assert csv_text.splitlines()[0] == "service,spans"
    assert [line.split(",")[0] for line in csv_text.splitlines()[1:]] == expected
    shot(page, "6-sql")

    # A bad query is explained in words, not in the console.
    editor = page.get_by_test_id("sql-editor")
    editor.fill("SELEC 1")
    page.get_by_test_id("sql-run").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert alert.inner_text().startswith("Quarry could not run this SQL: "), alert.inner_text()
    editor.fill('SELECT * FROM "nowhere"')
    page.get_by_test_id("sql-run").click()
    page.get_by_text("Dataset not found: nowhere").wait_for()
    # The browser itself logs every failed response; those two are expected.
    page.console.errors = [e for e in page.console.errors if not re.search(r"status of (400|404)", e)]
    page.console.assert_clean()


def test_a_trace_opens_from_its_url(demo, page):
    server, anomaly = demo
    trace_id = server.scalar(
        f"""SELECT "trace.trace_id" FROM "{anomaly['service']}"
            WHERE build_id = '{anomaly['build_id']}' AND "cloud.region" = '{anomaly['region']}'
            ORDER BY duration_ms DESC LIMIT 1"""
    )
    trace = server.get(f"/api/v1/traces/{trace_id}").json()
    page.goto(f"{server.base}/trace/{trace_id}")
    rows = page.get_by_test_id("span-row")
    rows.first.wait_for()
    assert rows.count() == len(trace["spans"])
    services = {s["service_name"] for s in trace["spans"]}
    assert anomaly["service"] in services
    # Selecting a span shows its fields in the side panel; arrows move the selection.
    rows.nth(1).click()
    panel = page.get_by_test_id("span-panel")
    assert trace["spans"][1]["span_id"] in panel.inner_text()
    page.get_by_test_id("waterfall").press("ArrowDown")
    assert trace["spans"][2]["span_id"] in panel.inner_text()
    logs = page.get_by_test_id("trace-logs")
    log_rows = sum(len(s["logs"]) for s in trace["spans"]) + len(trace["unattached"])
    if log_rows:
        assert f"({log_rows})" in logs.inner_text()
    shot(page, "7-trace-url")
    page.console.assert_clean()


def test_markers_are_drawn_on_time_charts(demo, page):
    server, anomaly = demo
    require_query_api(server)
    dataset = anomaly["service"]
    now = int(time.time())
    resp = server.post(f"/1/markers/{dataset}", json.dumps(
        {"start_time": now - 1800, "message": "deploy v42", "type": "deploy"}))
    assert resp.status_code == 201, resp.text
    resp = server.post("/1/markers/__all__", json.dumps(
        {"start_time": now - 3000, "end_time": now - 2400, "message": "maintenance"}))
    assert resp.status_code == 201, resp.text
    query = json.dumps({"calculations": [{"op": "COUNT"}], "time_range": 3600})
    page.goto(f"{server.base}/?dataset={dataset}&query={query}")
    page.get_by_test_id("time-chart").first.wait_for()
    markers = page.get_by_test_id("time-chart").first.get_by_test_id("chart-marker")
    markers.first.wait_for()
    titles = sorted(markers.nth(i).locator("title").text_content() for i in range(markers.count()))
    assert titles == ["deploy: deploy v42", "maintenance"]
    shot(page, "7-markers")
    page.console.assert_clean()
