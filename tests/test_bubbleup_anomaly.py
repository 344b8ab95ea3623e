"""BubbleUp finds the injected anomaly in generated telemetry.

`quarry-load` (crates/datagen) sends a shop's traces, one dataset per service. One
build of `payment`, deployed 60% into the window, is 10x slower in one region
(`--describe` names the build, region and start). A heatmap box around the slow
`payment` spans after that deploy is handed to BubbleUp, which must rank the
anomaly's fields (`build_id`, `cloud.region`) above every other column — only
`host.name`, whose hosts live in one region each and so refine `cloud.region`, may
sit among them.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from harness import default_binary

# Events generated: enough that the anomalous spans number in the hundreds.
EVENTS = 60_000
SEED = 42
# The generator's window (4h) ends at this epoch second, so the test does not
# depend on the clock.
END_TIME_S = 1_764_000_000
WINDOW_S = 4 * 3600
# Lower edge of the box, as a multiple of the payment spans' median before the
# bad deploy: well above normal, well below 10x slower.
BOX_FLOOR_OVER_MEDIAN = 5.0
# Fields of the injected anomaly, and the one column that may rank among them.
ANOMALY_FIELDS = {"build_id", "cloud.region"}
REGION_REFINEMENTS = {"host.name"}


def quarry_load_bin() -> Path:
    """`quarry-load`: `$QUARRY_LOAD_BIN`, else next to the `quarry` binary."""
    if os.environ.get("QUARRY_LOAD_BIN"):
        return Path(os.environ["QUARRY_LOAD_BIN"])
    return default_binary().parent / "quarry-load"


def load(args: list[str]) -> str:
    path = quarry_load_bin()
    if not path.is_file():
        pytest.fail(
            f"quarry-load not found at {path}: `cargo build -p quarry-datagen` "
            "(scripts/test does) or set QUARRY_LOAD_BIN",
            pytrace=False,
        )
    common = ["--seed", str(SEED), "--events", str(EVENTS), "--end-time", str(END_TIME_S)]
    done = subprocess.run(
        [str(path), *common, *args], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"quarry-load {args}: {done.stderr[-2000:]}"
    return done.stdout


def test_bubbleup_ranks_the_anomalous_build_and_region_first(quarry):
    q = quarry()
    scenario = json.loads(load(["--describe"]))
    anomaly = scenario["anomaly"]
    load(["--url", q.base, "--api-key", q.key or "any", "--concurrency", "2"])
    # Half sealed into segments, the rest of the load has been acknowledged too:
    # BubbleUp reads both.
    q.seal()

    start = anomaly["starts_at_ns"] / 1e9
    count = q.scalar('SELECT count(*) FROM "payment"')
    assert count > 1000, count
    # The box's floor, from the payment spans' median before the bad deploy —
    # computed with Quarry's own quantile function over SQL.
    median = q.scalar(
        'SELECT quarry_quantile(duration_ms, "meta.sample_rate", 0.5) FROM "payment" '
        f"WHERE \"timestamp\" < to_timestamp({start})"
    )
    floor = BOX_FLOOR_OVER_MEDIAN * median
    slow = q.rows(
        'SELECT build_id, "cloud.region", count(*) AS n FROM "payment" '
        f"WHERE \"timestamp\" >= to_timestamp({start}) AND duration_ms >= {floor} "
        "GROUP BY 1, 2 ORDER BY n DESC"
    )
    # The box mostly holds the anomaly's spans: the data is what the test says.
    assert slow[0]["build_id"] == anomaly["build_id"], slow
    assert slow[0]["cloud.region"] == anomaly["region"], slow

    body = {
        "query": {"start_time": END_TIME_S - WINDOW_S, "end_time": END_TIME_S + 60},
        "selection": {
            "column": "duration_ms",
            "min": floor,
            "max": 1e12,
            "start_time": start,
            "end_time": END_TIME_S + 60,
        },
    }
    began = time.monotonic()
    resp = q.post("/api/v1/bubbleup/payment", json.dumps(body))
    assert resp.status_code == 200, resp.text[:2000]
    result = resp.json()
    ranked = [c["column"] for c in result["columns"] if not c["selection_column"]]
    scores = {c["column"]: round(c["score"], 3) for c in result["columns"]}
    leading = ranked[: len(ANOMALY_FIELDS | REGION_REFINEMENTS)]
    took = time.monotonic() - began
    detail = f"ranked {[(c, scores[c]) for c in ranked[:8]]} in {took:.1f}s"
    # Every anomalous field ranks above every unrelated column.
    assert ANOMALY_FIELDS <= set(leading), detail
    assert set(leading) <= ANOMALY_FIELDS | REGION_REFINEMENTS, detail
    assert ranked[0] in ANOMALY_FIELDS | REGION_REFINEMENTS, detail
    # The leading values say what the anomaly is.
    by_name = {c["column"]: c for c in result["columns"]}
    top_build = max(by_name["build_id"]["values"], key=lambda v: v["selection"])
    assert top_build["value"] == anomaly["build_id"], by_name["build_id"]["values"]
    top_region = max(by_name["cloud.region"]["values"], key=lambda v: v["selection"])
    assert top_region["value"] == anomaly["region"], by_name["cloud.region"]["values"]
    # The selection column itself is reported but ranked after everything.
    assert result["columns"][-1]["column"] == "duration_ms"
