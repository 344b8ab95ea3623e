"""Under overload the server sheds load with 429 instead of growing, loses nothing it
acknowledged, and recovers once sealing catches up."""

from __future__ import annotations

import time

from harness import error_message

DATASET = "overload-ds"
# A memory budget of all buffers small enough to fill within a few batches.
MAX_BUFFERED_BYTES = 64 * 1024
EVENTS_PER_BATCH = 100
# Bounds of the load loop (count and time), so the test always stops by itself.
MAX_BATCHES = 400
LOAD_TIMEOUT_S = 30.0
RECOVERY_TIMEOUT_S = 30.0


def batch(j: int) -> list[dict]:
    """Batch j: EVENTS_PER_BATCH events with ids unique across batches."""
    return [
        {"data": {"id": f"b{j}-{k}", "payload": "p" * 64, "k": k}} for k in range(EVENTS_PER_BATCH)
    ]


def test_full_buffers_give_429_then_recover(quarry):
    server = quarry(
        config={
            "storage": {
                "max_buffered_bytes": MAX_BUFFERED_BYTES,
                "seal_max_rows": 1_000_000,
                "seal_max_age_secs": 3600,
            }
        }
    )
    acked: set[str] = set()
    refused = None
    deadline = time.monotonic() + LOAD_TIMEOUT_S
    j = 0
    while j < MAX_BATCHES and time.monotonic() < deadline:
        items = batch(j)
        resp = server.send_batch(DATASET, items)
        j += 1
        if resp.status_code == 429:
            refused = resp
            break
        assert resp.status_code == 200, resp.text[:300]
        for item, status in zip(items, resp.json()):
            if status["status"] == 202:
                acked.add(item["data"]["id"])
            else:
                assert status["status"] == 429, status
                refused = resp
        if refused is not None:
            break
    assert refused is not None, f"no 429 after {j} batches with a {MAX_BUFFERED_BYTES}-byte budget"
    if refused.status_code == 429:
        error_message(refused)
        assert refused.headers.get("Retry-After"), dict(refused.headers)
    assert server.alive()

    # Sealing frees the buffers; writes are accepted again.
    deadline = time.monotonic() + RECOVERY_TIMEOUT_S
    while True:
        items = batch(j)
        j += 1
        resp = server.send_batch(DATASET, items)
        if resp.status_code == 200 and all(s["status"] == 202 for s in resp.json()):
            acked.update(item["data"]["id"] for item in items)
            break
        assert resp.status_code in (200, 429), resp.text[:300]
        assert time.monotonic() < deadline, "still refusing writes after the budget should have freed"
        time.sleep(0.2)

    ids = [r["id"] for r in server.rows(f'SELECT id FROM "{DATASET}"')]
    assert len(ids) == len(set(ids)), "duplicated rows"
    assert set(ids) == acked, (len(set(ids)), len(acked))
