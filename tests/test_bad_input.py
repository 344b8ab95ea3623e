"""Bad input gets the right 4xx with a JSON {"error": ...}, and costs nothing else.

One server takes every kind of bad request in turn; before and after, good events are
written and read back, so a bad request that hurt the server or its data fails here.
"""

from __future__ import annotations

import gzip
import json

import pytest
import zstandard

from harness import Quarry, error_message

DATASET = "bad-input"
MAX_BODY_BYTES = 8192
MAX_FIELDS = 10
MAX_STRING_BYTES = 32
MAX_EVENT_BYTES = 1024
MAX_COLUMNS = 12

CONFIG = {
    "limits": {
        "max_body_bytes": MAX_BODY_BYTES,
        "max_fields_per_event": MAX_FIELDS,
        "max_string_bytes": MAX_STRING_BYTES,
        "max_event_bytes": MAX_EVENT_BYTES,
    }
}


@pytest.fixture
def limited(quarry) -> Quarry:
    """A server with small limits, holding three good events."""
    server = quarry(config=CONFIG)
    server.send_batch_ok(DATASET, [{"data": {"id": f"good-{i}", "v": i}} for i in range(3)])
    return server


def assert_intact(server: Quarry, extra_ids: set[str] = frozenset()) -> None:
    """The server still serves, and holds the good events and nothing else."""
    assert server.alive(), server.log_tail()
    assert server.get("/readyz").status_code == 200
    ids = {r["id"] for r in server.rows(f'SELECT id FROM "{DATASET}"')}
    assert ids == {"good-0", "good-1", "good-2"} | set(extra_ids)


def assert_error(resp, status: int, *hints: str) -> str:
    """`resp` is `status` with a JSON error that mentions one of `hints` (if any)."""
    assert resp.status_code == status, f"expected {status}, got {resp.status_code}: {resp.text[:300]}"
    message = error_message(resp)
    if hints:
        assert any(h.lower() in message.lower() for h in hints), (
            f"error {message!r} mentions none of {hints}"
        )
    return message


def test_malformed_json_empty_body_and_wrong_shapes(limited):
    s = limited
    assert_error(s.post(f"/1/events/{DATASET}", '{"id": "x", '), 400, "json", "parse", "EOF")
    assert_error(s.post(f"/1/batch/{DATASET}", '[{"data": {"id": "x"}'), 400, "json", "parse", "EOF")
    assert_error(s.post(f"/1/events/{DATASET}", b""), 400, "empty", "body")
    assert_error(s.post(f"/1/batch/{DATASET}", b""), 400, "empty", "body")
    assert_error(s.send_batch(DATASET, {"data": {"id": "x"}}), 400, "array")
    assert_error(s.send_event(DATASET, [{"id": "x"}]), 400, "object")
    assert_error(s.send_event(DATASET, "a string"), 400, "object")
    assert_error(s.post(f"/1/events/{DATASET}", b"\xff\xfe not utf-8"), 400)
    assert_intact(s)


def test_content_encodings(limited):
    s = limited
    good = s.post(
        f"/1/events/{DATASET}",
        gzip.compress(json.dumps({"id": "gz-1", "v": 10}).encode()),
        headers={"Content-Encoding": "gzip"},
    )
    assert good.status_code == 200, good.text
    good = s.post(
        f"/1/batch/{DATASET}",
        zstandard.ZstdCompressor().compress(json.dumps([{"data": {"id": "zst-1", "v": 11}}]).encode()),
        headers={"Content-Encoding": "zstd"},
    )
    assert good.status_code == 200, good.text
    assert [r["status"] for r in good.json()] == [202]

    assert_error(
        s.post(f"/1/events/{DATASET}", b'{"id": "x"}', headers={"Content-Encoding": "snappy"}),
        415,
        "snappy",
        "encoding",
    )
    assert_error(
        s.post(f"/1/events/{DATASET}", b"this is not gzip", headers={"Content-Encoding": "gzip"}),
        400,
        "gzip",
        "decompress",
        "decod",
    )
    assert_error(
        s.post(f"/1/batch/{DATASET}", b"this is not zstd", headers={"Content-Encoding": "zstd"}),
        400,
        "zstd",
        "decompress",
        "decod",
    )
    # Valid gzip of invalid JSON is a JSON error, not an encoding one.
    assert_error(
        s.post(f"/1/events/{DATASET}", gzip.compress(b"{nope"), headers={"Content-Encoding": "gzip"}),
        400,
        "json",
        "parse",
    )
    assert_intact(s, {"gz-1", "zst-1"})
    assert s.rows(f"SELECT id, v FROM \"{DATASET}\" WHERE id IN ('gz-1', 'zst-1') ORDER BY id") == [
        {"id": "gz-1", "v": 10},
        {"id": "zst-1", "v": 11},
    ]


def test_bodies_over_the_limit(limited):
    s = limited
    big = json.dumps({"id": "big", "pad": "x" * MAX_BODY_BYTES})
    assert_error(s.post(f"/1/events/{DATASET}", big), 413, "large", "limit", "bytes", "size")
    big_batch = json.dumps([{"data": {"id": f"b{i}", "pad": "y" * 20}} for i in range(400)])
    assert len(big_batch) > MAX_BODY_BYTES
    assert_error(s.post(f"/1/batch/{DATASET}", big_batch), 413, "large", "limit", "bytes", "size")
    # A small gzip body that inflates past the limit (a zip bomb) is refused too.
    bomb = gzip.compress(json.dumps({"id": "bomb", "pad": "z" * (64 * MAX_BODY_BYTES)}).encode())
    assert len(bomb) < MAX_BODY_BYTES
    resp = s.post(f"/1/events/{DATASET}", bomb, headers={"Content-Encoding": "gzip"})
    assert resp.status_code in (400, 413), resp.text[:300]
    error_message(resp)
    assert_intact(s)


def test_too_many_fields(limited):
    s = limited
    at_limit = {"id": "at-limit", **{f"f{i}": i for i in range(MAX_FIELDS - 1)}}
    assert len(at_limit) == MAX_FIELDS
    assert s.send_event(DATASET, at_limit).status_code == 200
    over = {"id": "over", **{f"f{i}": i for i in range(MAX_FIELDS)}}
    assert_error(s.send_event(DATASET, over), 400, "field")
    # Nested fields count after flattening.
    nested_over = {"id": "nested-over", "n": {f"f{i}": i for i in range(MAX_FIELDS)}}
    assert_error(s.send_event(DATASET, nested_over), 400, "field")
    # In a batch only the offending item fails.
    resp = s.send_batch(DATASET, [{"data": {"id": "nb-1"}}, {"data": over}, {"data": {"id": "nb-2"}}])
    assert resp.status_code == 200, resp.text
    statuses = resp.json()
    assert [r["status"] for r in statuses] == [202, 400, 202]
    assert "field" in statuses[1]["error"].lower(), statuses[1]
    assert_intact(s, {"at-limit", "nb-1", "nb-2"})


def test_long_strings_are_truncated_and_marked(limited):
    s = limited
    long_text = "abcdefghij" * 10
    assert s.send_event(DATASET, {"id": "long", "msg": long_text, "short": "ok"}).status_code == 200
    row = s.rows(f'SELECT msg, short, "meta.truncated_fields" AS t FROM "{DATASET}" WHERE id = \'long\'')
    assert len(row) == 1
    msg = row[0]["msg"]
    assert 0 < len(msg.encode()) <= MAX_STRING_BYTES and long_text.startswith(msg), msg
    assert row[0]["short"] == "ok"
    assert "msg" in row[0]["t"].split(","), row[0]
    assert "short" not in row[0]["t"].split(",")
    assert_intact(s, {"long"})


def test_bad_samplerate_header(limited):
    s = limited
    assert_error(
        s.send_event(DATASET, {"id": "x"}, headers={"X-Honeycomb-Samplerate": "abc"}),
        400,
        "samplerate",
        "sample rate",
        "sample_rate",
    )
    assert s.send_event(DATASET, {"id": "rated"}, headers={"X-Honeycomb-Samplerate": "5"}).status_code == 200
    assert s.rows(f'SELECT "meta.sample_rate" AS r FROM "{DATASET}" WHERE id = \'rated\'') == [{"r": 5}]
    assert_intact(s, {"rated"})


def test_bad_sql_and_unknown_datasets(limited):
    s = limited
    assert_error(s.sql("SELEC nonsense FROM"), 400)
    assert_error(s.sql(f'SELECT no_such_column FROM "{DATASET}"'), 400, "no_such_column")
    assert_error(s.sql('SELECT count(*) FROM "no-such-dataset"'), 404, "no-such-dataset")
    assert_error(s.post("/api/v1/sql", "{}"), 400)
    assert_error(s.post("/api/v1/sql", "not json"), 400)
    assert_error(s.post("/api/v1/sql", json.dumps({"sql": "SELECT 1", "format": "xml"})), 400, "xml", "format")
    assert_error(s.get("/1/columns/no-such-dataset"), 404, "no-such-dataset")
    assert_intact(s)


def test_mistakes_in_sql_are_the_callers_and_say_what_is_wrong(limited):
    """A bad argument, an index out of range or a missing placeholder value is a
    400 naming the problem, not a 500 (which is kept for Quarry's own faults)."""
    s = limited
    assert_error(s.sql("SELECT $1"), 400, "placeholder", "$1")
    assert_error(s.sql("SELECT sqrt(-1)"), 400, "square root")
    assert_error(s.sql("SELECT arrow_cast(1, 'Nope')"), 400, "nope")
    assert_error(s.sql("SELECT date_trunc('fortnight', now())"), 400, "fortnight")
    assert_error(s.sql("SELECT make_array(1, 2)[9999999999]"), 400, "index")
    assert_error(s.sql("SELECT regexp_like('a', '(')"), 400, "regex")
    assert_error(s.sql("SELECT CAST(300 AS TINYINT)"), 400, "cast")
    assert_intact(s)


def test_events_over_the_event_size_limit(limited):
    s = limited
    # Few fields and short strings (no other limit applies), but over 1 KiB.
    big_event = {"id": "big-event", "a": "x" * 30, "nested": {"deep": ["y" * 30] * 40}}
    assert len(json_bytes(big_event)) > MAX_EVENT_BYTES
    assert_error(s.send_event(DATASET, big_event), 413, "event", "large", "bytes", "limit")
    resp = s.send_batch(DATASET, [{"data": {"id": "ev-1"}}, {"data": big_event}, {"data": {"id": "ev-2"}}])
    assert resp.status_code == 200, resp.text
    statuses = resp.json()
    assert [r["status"] for r in statuses] == [202, 400, 202]
    assert statuses[1]["error"].strip()
    assert_intact(s, {"ev-1", "ev-2"})


def test_column_budget_per_dataset(quarry):
    s = quarry(config={"limits": {"max_columns_per_dataset": MAX_COLUMNS}})
    ds = "column-budget"
    refused_at = None
    for i in range(3 * MAX_COLUMNS):
        resp = s.send_event(ds, {"id": f"c{i}", f"col{i}": i})
        if resp.status_code != 200:
            assert_error(resp, 400, "column")
            refused_at = i
            break
    assert refused_at is not None, f"{3 * MAX_COLUMNS} columns accepted with a budget of {MAX_COLUMNS}"
    assert refused_at < MAX_COLUMNS, refused_at
    # Events that fit the existing columns are still welcome; the refused one is absent.
    assert s.send_event(ds, {"id": "fits", "col0": 100}).status_code == 200
    ids = sorted(r["id"] for r in s.rows(f'SELECT id FROM "{ds}"'))
    assert ids == sorted([f"c{i}" for i in range(refused_at)] + ["fits"])
    assert len(s.columns(ds)) <= MAX_COLUMNS
    # The budget is per dataset: another dataset starts afresh.
    assert s.send_event("other-dataset", {"id": "o", "col0": 1, "col1": 2}).status_code == 200


def json_bytes(value) -> bytes:
    """The JSON encoding the harness sends."""
    return json.dumps(value).encode()
