"""API keys: unknown keys are refused; each key routes to its own environment."""

from __future__ import annotations

import pytest

from harness import Quarry, error_message

KEY_A = "key-for-env-a"
KEY_B = "key-for-env-b"
CONFIG = {"auth": {"api_keys": {KEY_A: "env-a", KEY_B: "env-b"}}}


@pytest.fixture
def keyed(quarry) -> Quarry:
    """A server with two API keys in two environments."""
    return quarry(config=CONFIG, key=KEY_A)


def test_unknown_or_missing_key_is_401(keyed):
    s = keyed
    for key in ("wrong-key", ""):
        for resp in (
            s.send_event("orders", {"id": 1}, key=key),
            s.send_batch("orders", [{"data": {"id": 1}}], key=key),
            s.sql("SELECT 1 AS one", key=key),
            s.get("/1/datasets", key=key),
            s.get("/1/columns/orders", key=key),
        ):
            assert resp.status_code == 401, (key, resp.request.url, resp.status_code, resp.text[:200])
            error_message(resp)
    # Nothing was written by the refused requests.
    assert s.datasets(key=KEY_A) == []
    assert s.datasets(key=KEY_B) == []
    # Operations endpoints need no key.
    assert s.get("/readyz", key="").status_code == 200
    assert s.get("/healthz", key="").status_code == 200


def test_keys_route_to_separate_environments(keyed):
    s = keyed
    s.send_batch_ok("orders", [{"data": {"id": i, "amount": 10 * i, "env": "a"}} for i in range(3)], key=KEY_A)
    s.send_batch_ok("orders", [{"data": {"id": i, "amount": "free", "env": "b"}} for i in range(2)], key=KEY_B)
    assert s.send_event("only-b", {"id": 99}, key=KEY_B).status_code == 200

    assert s.rows('SELECT id, amount, env FROM "orders" ORDER BY id', key=KEY_A) == [
        {"id": 0, "amount": 0, "env": "a"},
        {"id": 1, "amount": 10, "env": "a"},
        {"id": 2, "amount": 20, "env": "a"},
    ]
    # In env-b `amount` is a string column: env-a's int column did not type it.
    assert s.rows('SELECT id, amount, env FROM "orders" ORDER BY id', key=KEY_B) == [
        {"id": 0, "amount": "free", "env": "b"},
        {"id": 1, "amount": "free", "env": "b"},
    ]
    assert s.columns("orders", key=KEY_A)["amount"] == "integer"
    assert s.columns("orders", key=KEY_B)["amount"] == "string"

    resp = s.sql('SELECT count(*) FROM "only-b"', key=KEY_A)
    assert resp.status_code == 404, resp.text[:300]
    assert "only-b" in error_message(resp)
    assert s.get("/1/columns/only-b", key=KEY_A).status_code == 404
    assert s.scalar('SELECT count(*) AS c FROM "only-b"', key=KEY_B) == 1

    assert sorted(s.datasets(key=KEY_A)) == ["orders"]
    assert sorted(s.datasets(key=KEY_B)) == ["only-b", "orders"]

    # Environments survive a restart separately.
    s.restart()
    assert s.scalar('SELECT sum(amount) AS t FROM "orders"', key=KEY_A) == 30
    assert s.scalar('SELECT count(*) AS c FROM "orders"', key=KEY_B) == 2
    assert sorted(s.datasets(key=KEY_B)) == ["only-b", "orders"]
