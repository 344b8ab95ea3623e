"""Batches mixing good, malformed and type-conflicting events.

Per-item statuses come back in order; a bad item never costs its neighbours; a value
whose type conflicts with its column lands in the documented sibling column
`<name>#<type>` (or is coerced losslessly), and user fields with reserved names land
in `<name>#user`.
"""

from __future__ import annotations

import pyarrow as pa

DATASET = "batch-conflicts"
T0 = "2024-05-01T12:00:00Z"

# The first event fixes the column types: status int, n int, d float, s string, b bool.
FIRST = {"data": {"id": "e0", "status": 200, "n": 1, "d": 1.5, "s": "x", "b": True}, "time": T0}

# (item, expected status) in the order they are sent.
MIXED = [
    ({"data": {"id": "e1", "status": 201, "n": 2, "d": 2.5, "s": "y", "b": False}}, 202),
    (5, 400),  # not an object
    ({"data": {"id": "e2", "status": "ok"}}, 202),  # string into int -> status#string
    ({"data": [1, 2, 3]}, 400),  # data not an object
    ({"data": {"id": "e3", "n": 1.5}}, 202),  # float into int -> n#float
    ({"data": {"id": "bad-time"}, "time": "yesterday at noon"}, 400),
    ({"data": {"id": "e4", "d": 3}}, 202),  # int into float -> 3.0 in d
    ({"data": {"id": "bad-rate-0"}, "samplerate": 0}, 400),
    ({"data": {"id": "e5", "s": 42}}, 202),  # number into string -> "42"
    ("just a string", 400),  # not an object
    ({"data": {"id": "e6", "s": True}}, 202),  # bool into string -> "true"
    ({"data": {"id": "e7", "status": True}}, 202),  # bool into int -> status#bool
    ({"data": "not an object either"}, 400),
    ({"data": {"id": "e8", "b": "yes"}}, 202),  # string into bool -> b#string
    (
        {
            "data": {
                "id": "e9",
                "timestamp": "user-supplied",
                "meta.sample_rate": "user-meta",
                "meta": {"note": "nested"},
            },
            "samplerate": 4,
        },
        202,
    ),
    ({"data": {"id": "bad-rate-neg"}, "samplerate": -3}, 400),
    ({"data": {"id": "e10", "n": 2.25, "status": 204}}, 202),  # n#float exists already
    (None, 400),
    ({"data": {"id": "e11", "d": -7, "s": 1.5}}, 202),  # int -> float, float -> "1.5"
]

# What each good event must look like when read back (null columns omitted).
EXPECTED = {
    "e0": {"status": 200, "n": 1, "d": 1.5, "s": "x", "b": True},
    "e1": {"status": 201, "n": 2, "d": 2.5, "s": "y", "b": False},
    "e2": {"status#string": "ok"},
    "e3": {"n#float": 1.5},
    "e4": {"d": 3.0},
    "e5": {"s": "42"},
    "e6": {"s": "true"},
    "e7": {"status#bool": True},
    "e8": {"b#string": "yes"},
    "e9": {
        "timestamp#user": "user-supplied",
        "meta.sample_rate#user": "user-meta",
        "meta.note#user": "nested",
    },
    "e10": {"n#float": 2.25, "status": 204},
    "e11": {"d": -7.0, "s": "1.5"},
}

# Columns the sibling rule creates, with the type the columns API must report.
EXPECTED_COLUMNS = {
    "id": "string",
    "status": "integer",
    "status#string": "string",
    "status#bool": "boolean",
    "n": "integer",
    "n#float": "float",
    "d": "float",
    "s": "string",
    "b": "boolean",
    "b#string": "string",
    "timestamp#user": "string",
    "meta.sample_rate#user": "string",
    "meta.note#user": "string",
}

USER_COLUMNS = sorted({k for fields in EXPECTED.values() for k in fields})


def test_mixed_batch_statuses_siblings_and_neighbours(server):
    server.send_batch_ok(DATASET, [FIRST])

    resp = server.send_batch(DATASET, [item for item, _ in MIXED])
    assert resp.status_code == 200, resp.text[:500]
    results = resp.json()
    assert [r.get("status") for r in results] == [status for _, status in MIXED], results
    for (item, status), result in zip(MIXED, results):
        if status == 400:
            assert isinstance(result.get("error"), str) and result["error"].strip(), (item, result)

    cols = ", ".join(f'"{c}"' for c in ["id", "meta.sample_rate", *USER_COLUMNS])
    rows = server.rows(f'SELECT {cols} FROM "{DATASET}" ORDER BY id')
    by_id = {row["id"]: row for row in rows}
    assert len(rows) == len(by_id) == len(EXPECTED), sorted(by_id)
    for event_id, fields in EXPECTED.items():
        row = dict(by_id[event_id])
        rate = row.pop("meta.sample_rate")
        assert rate == (4 if event_id == "e9" else 1), (event_id, rate)
        row.pop("id")
        assert row == fields, event_id

    # Floats stay floats (e4's 3 was coerced to 3.0 in the float column d).
    d_values = {r["id"]: r["d"] for r in rows if "d" in r}
    assert all(isinstance(v, float) for v in d_values.values()), d_values

    columns = server.columns(DATASET)
    assert {k: columns.get(k) for k in EXPECTED_COLUMNS} == EXPECTED_COLUMNS

    resp = server.sql(f'SELECT * FROM "{DATASET}"', "arrow")
    assert resp.status_code == 200, resp.text[:500]
    schema = pa.ipc.open_stream(resp.content).schema
    assert schema.field("status").type == pa.int64()
    assert schema.field("n#float").type == pa.float64()
    assert schema.field("d").type == pa.float64()
    assert schema.field("status#bool").type == pa.bool_()
    assert schema.field("meta.sample_rate").type == pa.int64()


def test_first_value_in_one_batch_decides_the_type(server):
    resp = server.send_batch(
        "inline-types",
        [
            {"data": {"k": 1, "v": 10}},
            {"data": {"k": 2, "v": "ten"}},
            {"data": {"k": 3, "v": 10.5}},
            {"data": {"k": 4, "v": False}},
            {"data": {"k": 5, "v": 11}},
        ],
    )
    assert resp.status_code == 200, resp.text
    assert [r["status"] for r in resp.json()] == [202] * 5
    # A single event conflicting with the now-established int column.
    assert server.send_event("inline-types", {"k": 6, "v": "eleven"}).status_code == 200

    rows = server.rows('SELECT k, v, "v#string", "v#float", "v#bool" FROM "inline-types" ORDER BY k')
    assert rows == [
        {"k": 1, "v": 10},
        {"k": 2, "v#string": "ten"},
        {"k": 3, "v#float": 10.5},
        {"k": 4, "v#bool": False},
        {"k": 5, "v": 11},
        {"k": 6, "v#string": "eleven"},
    ]
    columns = server.columns("inline-types")
    assert {c: columns.get(c) for c in ("v", "v#string", "v#float", "v#bool")} == {
        "v": "integer",
        "v#string": "string",
        "v#float": "float",
        "v#bool": "boolean",
    }


def test_conflicts_survive_sealing(quarry):
    """Sealed segments keep the sibling columns; a later query unions buffer and
    segments with the same names and types."""
    server = quarry()
    server.send_batch_ok("sealed-conflicts", [{"data": {"k": 1, "x": 5}}, {"data": {"k": 2, "x": "five"}}])
    server.seal()
    server.send_batch_ok("sealed-conflicts", [{"data": {"k": 3, "x": 6.5}}, {"data": {"k": 4, "x": 7}}])
    rows = server.rows('SELECT k, x, "x#string", "x#float" FROM "sealed-conflicts" ORDER BY k')
    assert rows == [
        {"k": 1, "x": 5},
        {"k": 2, "x#string": "five"},
        {"k": 3, "x#float": 6.5},
        {"k": 4, "x": 7},
    ]
    assert server.scalar('SELECT sum(x) AS s FROM "sealed-conflicts"') == 12
