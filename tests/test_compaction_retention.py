"""Compaction and retention (docs/storage.md) with the real binary: merging the
segments of a partition keeps every answer, rollup answers stay equal to raw answers
through compaction, kill -9 and retention, and expired data and unreferenced files
really leave the disk.

Event times are fixed in 2023 and the work is triggered through the admin endpoints
(background passes are configured a day apart), so nothing depends on timing.
"""

from __future__ import annotations

import time

import requests

from harness import LocalObjects, Quarry, metric_delta, rfc3339_to_ns
from test_rollups import (
    EQ_ROLLUP,
    START_S,
    assert_same_answer,
    assert_specs_agree,
    create,
    generated_events,
    generated_specs,
    query,
    wait_complete,
)

DATASET = "compact-ds"
HOURS = 4
SEALS_PER_HOUR = 3
EVENTS_PER_SEAL_AND_HOUR = 200
ROLLUP = EQ_ROLLUP["name"]
ROLLUP_SOURCE = f"rollup:{ROLLUP}"
DAY_S = 86400
# Background compaction and retention a day apart: only the admin triggers act.
QUIET = {
    "storage": {"seal_max_age_secs": 3600},
    # Removed files go at once (no query runs concurrently here), so the test sees them go.
    "compaction": {"interval_secs": DAY_S, "deletion_delay_secs": 0},
    "retention": {"interval_secs": DAY_S},
}


def data_files(server: Quarry, kind: str) -> list[str]:
    """Keys of the Parquet files under `kind` (`segments` or `rollups`), wherever the
    server keeps its objects, orphans planted by the test excluded."""
    return [
        key for key in server.objects.keys(kind)
        if key.endswith(".parquet") and not key.rsplit("/", 1)[-1].startswith("planted-")
    ]


def admin(server: Quarry, what: str) -> dict:
    resp = server.post(f"/api/v1/admin/{what}", b"")
    assert resp.status_code == 200, f"{what} -> {resp.status_code}: {resp.text[:500]}"
    return resp.json()


def raw_answers(server: Quarry, specs: list[dict]) -> list[dict]:
    return [query(server, DATASET, {**spec, "source": "raw"}) for spec in specs]


def assert_raw_unchanged(before: list[dict], after: list[dict], specs: list[dict]) -> None:
    for old, new, spec in zip(before, after, specs):
        assert_same_answer(old, new, spec)


def row_count(server: Quarry) -> int:
    return server.scalar(f'SELECT count(*) AS n FROM "{DATASET}"')


def plant_orphan(server: Quarry, name: str, age_s: int) -> str:
    """A data file no manifest entry names (as a crash between upload and commit
    leaves), last modified `age_s` seconds ago; returns its key."""
    key = f"segments/default/{DATASET}/0/{name}"
    server.objects.put(key, b"not a committed segment", age_s)
    return key


def test_compaction_and_retention_keep_rollup_answers_equal_to_raw_answers(quarry):
    server = quarry(config=QUIET)
    # Several seals, each into every hour: SEALS_PER_HOUR small segments per partition.
    for seal in range(SEALS_PER_HOUR):
        for hour in range(HOURS):
            events = generated_events(
                100 * seal + hour, EVENTS_PER_SEAL_AND_HOUR, START_S + hour * 3600, 3600
            )
            server.send_batch_ok(DATASET, events)
        server.seal()
    segments_before = HOURS * SEALS_PER_HOUR
    total_rows = HOURS * SEALS_PER_HOUR * EVENTS_PER_SEAL_AND_HOUR
    assert len(data_files(server, "segments")) == segments_before
    assert create(server, DATASET, EQ_ROLLUP).status_code == 201
    status = wait_complete(server, DATASET, ROLLUP)
    assert status["segments_total"] == segments_before
    assert len(data_files(server, "rollups")) == segments_before
    specs = generated_specs(11, 40)
    raw_before = raw_answers(server, specs)
    assert row_count(server) == total_rows
    metrics_before = server.metrics()

    # Compaction: one merge per partition; the inputs and their rollup files go.
    report = admin(server, "compact")
    assert (report["merges"], report["segments_in"], report["segments_out"], report["rows"]) == (
        HOURS,
        segments_before,
        HOURS,
        total_rows,
    ), report
    assert len(data_files(server, "segments")) == HOURS
    # At once (merged segments pending, read raw) and once rolled up again.
    assert_specs_agree(server, DATASET, specs, ROLLUP_SOURCE)
    status = wait_complete(server, DATASET, ROLLUP)
    assert status["segments_done"] == status["segments_total"] == HOURS, status
    assert len(data_files(server, "rollups")) == HOURS
    assert_specs_agree(server, DATASET, specs, ROLLUP_SOURCE)
    assert_raw_unchanged(raw_before, raw_answers(server, specs), specs)
    assert row_count(server) == total_rows
    metrics_after = server.metrics()
    assert metric_delta(metrics_before, metrics_after, "quarry_store_compactions_total") == HOURS
    assert (
        metric_delta(metrics_before, metrics_after, "quarry_store_segments_compacted_total")
        == segments_before
    )
    assert metric_delta(metrics_before, metrics_after, "quarry_store_compaction_bytes_read_total") > 0
    assert (
        metric_delta(metrics_before, metrics_after, "quarry_store_rollup_segments_removed_total")
        == segments_before
    )
    # Nothing left to merge.
    assert admin(server, "compact")["merges"] == 0

    # kill -9 and restart: the manifest replays to the compacted state.
    server.restart()
    status = server.get(f"/api/v1/rollups/{DATASET}/{ROLLUP}").json()
    assert status["segments_total"] == HOURS and status["complete"], status
    assert_specs_agree(server, DATASET, specs, ROLLUP_SOURCE)
    assert_raw_unchanged(raw_before, raw_answers(server, specs), specs)
    assert row_count(server) == total_rows

    # Orphans: an old unreferenced file is swept, a young one is left alone (its
    # commit could still be on its way). Only a local file can be back-dated (S3
    # sets modification times itself); the sweep is object-store generic and its
    # age rule is unit-tested on an in-memory store.
    if isinstance(server.objects, LocalObjects):
        old_orphan = plant_orphan(server, "planted-old.parquet", 2 * DAY_S)
        young_orphan = plant_orphan(server, "planted-young.parquet", 0)
        report = admin(server, "compact")
        assert report["orphan_files_deleted"] == 1 and report["merges"] == 0, report
        assert not server.objects.exists(old_orphan)
        assert server.objects.exists(young_orphan)
        assert len(data_files(server, "segments")) == HOURS
        assert row_count(server) == total_rows

    # Retention: a maximum age reaching back to the middle of hour 2 drops hours 0
    # and 1 (their newest events are older); the margin is half an hour.
    cutoff_s = START_S + 2 * 3600 + 1800
    max_age_s = int(time.time()) - cutoff_s
    config = {**QUIET, "retention": {"interval_secs": DAY_S, "max_age": f"{max_age_s}s"}}
    server.write_config(config)
    server.restart()
    metrics_before = server.metrics()
    report = admin(server, "retention")
    kept_rows = total_rows // 2
    assert report == {
        "segments_dropped": 2,
        "rows_dropped": total_rows - kept_rows,
        "bytes_dropped": report["bytes_dropped"],
        "rollup_files_dropped": 2,
    }, report
    assert report["bytes_dropped"] > 0
    assert len(data_files(server, "segments")) == 2
    assert len(data_files(server, "rollups")) == 2
    assert row_count(server) == kept_rows
    oldest = server.scalar(f'SELECT min("timestamp") AS t FROM "{DATASET}"')
    assert rfc3339_to_ns(oldest) >= (START_S + 2 * 3600) * 1_000_000_000, oldest
    assert (
        metric_delta(metrics_before, server.metrics(), "quarry_store_segments_expired_total") == 2
    )
    status = server.get(f"/api/v1/rollups/{DATASET}/{ROLLUP}").json()
    assert (status["segments_done"], status["segments_total"]) == (2, 2), status
    assert_specs_agree(server, DATASET, specs, ROLLUP_SOURCE)
    # Idempotent, and the dropped state survives kill -9.
    assert admin(server, "retention")["segments_dropped"] == 0
    server.restart()
    assert row_count(server) == kept_rows
    assert_specs_agree(server, DATASET, specs[:20], ROLLUP_SOURCE)


FAULT = "QUARRY_FAULT_CRASH_IN_COMPACTION"
# Seconds the server may take to abort after the fault point.
CRASH_TIMEOUT_S = 30.0


def test_a_crash_before_or_after_a_compaction_commit_loses_and_duplicates_nothing(quarry):
    # Orphaned files after the crash: before the commit, the merged output; after
    # it, the three inputs and the rollup files computed from them.
    cases = [("before-commit", 3, 1, 0), ("after-commit", 1, 3, 3)]
    for point, segments_after_crash, orphans, rollup_orphans in cases:
        server = quarry(config=QUIET)
        for seal in range(3):
            server.send_batch_ok(DATASET, generated_events(seal, 300, START_S, 3600))
            server.seal()
        assert create(server, DATASET, EQ_ROLLUP).status_code == 201
        wait_complete(server, DATASET, ROLLUP)
        specs = generated_specs(5, 20)
        raw_before = raw_answers(server, specs)

        server.restart(env={FAULT: point})
        try:
            resp = server.post("/api/v1/admin/compact", b"")
            raise AssertionError(f"{point}: compaction answered {resp.status_code}: {resp.text}")
        except requests.RequestException:
            pass  # the process aborted mid-request, as intended
        assert server.wait_exit(CRASH_TIMEOUT_S) is not None, f"{point}: no crash"

        server.start()
        # Before the commit: the old segments, plus an output file nobody reads.
        # After it: the merged segment, plus inputs nobody reads any more.
        status = wait_complete(server, DATASET, ROLLUP)
        assert status["segments_total"] == segments_after_crash, (point, status)
        assert len(data_files(server, "segments")) == segments_after_crash + orphans, point
        assert row_count(server) == 900, point
        assert_specs_agree(server, DATASET, specs, ROLLUP_SOURCE)
        assert_raw_unchanged(raw_before, raw_answers(server, specs), specs)

        # Once past the grace period (here none), the sweep deletes exactly the
        # unread files: the one at start-up or the admin pass, whichever comes
        # first. (Restarting with no grace works wherever the objects are: S3
        # objects cannot be back-dated.)
        server.write_config({**QUIET, "compaction": {**QUIET["compaction"], "orphan_grace_secs": 0}})
        server.restart()
        admin(server, "compact")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            deleted = server.metrics()["quarry_store_orphan_files_deleted_total"]
            if deleted >= orphans + rollup_orphans:
                break
            time.sleep(0.1)
        assert deleted == orphans + rollup_orphans, point
        assert len(data_files(server, "segments")) == 1, point
        assert row_count(server) == 900, point
        assert_raw_unchanged(raw_before, raw_answers(server, specs), specs)
        server.stop()
