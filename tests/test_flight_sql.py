"""Arrow Flight SQL on the gRPC port, driven by ADBC's Flight SQL driver from PyPI:
the same rows as SQL over HTTP, the key in the authorization header, each key
seeing its own environment, and the guardrails' refusals as gRPC errors."""

from __future__ import annotations

import adbc_driver_flightsql.dbapi as flight_sql
import adbc_driver_manager
import pytest

from harness import Quarry

KEY_A = "flight-key-env-a"
KEY_B = "flight-key-env-b"
CONFIG = {"auth": {"api_keys": {KEY_A: "env-a", KEY_B: "env-b"}}}
# `query_limits::MAX_EXPRESSION_DEPTH` (crates/engine): one more level is refused.
MAX_EXPRESSION_DEPTH = 1000
# Rows of the streamed result: several Arrow batches' worth.
MANY_ROWS = 5000


@pytest.fixture(scope="module")
def flight(module_quarry) -> Quarry:
    s = module_quarry(config=CONFIG, key=KEY_A)
    s.send_batch_ok(
        "events",
        [
            {"data": {"n": i, "ratio": i / 8, "even": i % 2 == 0, "name": f"e{i % 7}"}}
            for i in range(MANY_ROWS)
        ],
        key=KEY_A,
    )
    s.send_batch_ok("hidden", [{"data": {"x": 1}}], key=KEY_B)
    return s


def connect(s: Quarry, key: str):
    return flight_sql.connect(
        f"grpc://{s.otlp_grpc_endpoint}",
        db_kwargs={"adbc.flight.sql.authorization_header": f"Bearer {key}"},
        # Quarry has no transactions: every statement stands alone.
        autocommit=True,
    )


def test_adbc_returns_the_rows_of_sql_over_http(flight):
    sql = (
        "SELECT name, count(*) AS n, sum(ratio) AS total, bool_and(even) AS all_even "
        "FROM events GROUP BY name ORDER BY name"
    )
    with connect(flight, KEY_A) as conn, conn.cursor() as cur:
        cur.execute(sql)
        table = cur.fetch_arrow_table()
    assert table.to_pylist() == flight.rows(sql)
    assert table.num_rows == 7

    everything = "SELECT n, ratio, even, name, \"timestamp\" FROM events ORDER BY n"
    with connect(flight, KEY_A) as conn, conn.cursor() as cur:
        cur.execute(everything)
        table = cur.fetch_arrow_table()
    assert table.num_rows == MANY_ROWS
    assert table.column("n").to_pylist() == list(range(MANY_ROWS))
    assert str(table.schema.field("timestamp").type).startswith("timestamp[ns")
    http = flight.rows("SELECT n, ratio, even, name FROM events ORDER BY n")
    assert table.select(["n", "ratio", "even", "name"]).to_pylist() == http


def test_the_key_chooses_the_environment(flight):
    with connect(flight, KEY_B) as conn, conn.cursor() as cur:
        cur.execute("SELECT x FROM hidden")
        assert cur.fetchall() == [(1,)]
        with pytest.raises(adbc_driver_manager.Error, match="events"):
            cur.execute("SELECT count(*) FROM events")
    with pytest.raises(adbc_driver_manager.Error, match="(?i)unauthenticated|API key"):
        with connect(flight, "not-a-key") as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")


def test_guardrails_refuse_with_a_grpc_error_and_serving_goes_on(flight):
    deep = "SELECT " + "+".join(["1"] * (MAX_EXPRESSION_DEPTH + 1))
    with connect(flight, KEY_A) as conn, conn.cursor() as cur:
        with pytest.raises(adbc_driver_manager.Error, match="query too complex"):
            cur.execute(deep)
        with pytest.raises(adbc_driver_manager.Error, match="(?i)not allowed|unsupported|DDL"):
            cur.execute("CREATE TABLE copied AS SELECT * FROM events")
        cur.execute("SELECT count(*) AS n FROM events")
        assert cur.fetchall() == [(MANY_ROWS,)]


def test_catalog_commands_list_only_the_keys_datasets(flight):
    with connect(flight, KEY_A) as conn:
        schema = conn.adbc_get_table_schema("events")
        assert {"n", "ratio", "even", "name", "timestamp"} <= set(schema.names), schema
        assert str(schema.field("n").type) == "int64"
        objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
    tables = sorted(
        table["table_name"]
        for catalog in objects
        for db_schema in catalog["catalog_db_schemas"] or []
        for table in db_schema["db_schema_tables"] or []
    )
    assert tables == ["events"], objects
    with connect(flight, KEY_B) as conn:
        with pytest.raises(adbc_driver_manager.Error):
            conn.adbc_get_table_schema("events")
