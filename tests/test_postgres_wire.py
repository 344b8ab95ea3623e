"""The Postgres wire protocol (`--pg`), driven by real clients: Debian's psql,
psycopg, and pandas.read_sql through SQLAlchemy. The API key is the password and
each environment's datasets are the only tables its key sees; what the
guardrails of SQL over HTTP stop gets a Postgres error and the server serves on."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import threading

import pandas as pd
import psycopg
import pytest
import sqlalchemy

from harness import Quarry

KEY_A = "pg-key-env-a"
KEY_B = "pg-key-env-b"
CONFIG = {"auth": {"api_keys": {KEY_A: "env-a", KEY_B: "env-b"}}}
# Seconds any one client call may take before the test fails (none should come near).
CLIENT_TIMEOUT_S = 60
# `query_limits::MAX_EXPRESSION_DEPTH` (crates/engine): one more level is refused.
MAX_EXPRESSION_DEPTH = 1000
# Rows of a query that runs far longer than any test: cancelled, never finished.
ENDLESS_ROWS = 10**13

T0 = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
ORDERS = [
    {"id": 1, "price": 9.5, "paid": True, "customer": "ann"},
    {"id": 2, "price": 20.25, "paid": False, "customer": "bob"},
    {"id": 3, "price": 0.75, "paid": True, "customer": "ann"},
]


def order_time(i: int) -> dt.datetime:
    return T0 + dt.timedelta(seconds=i)


@pytest.fixture(scope="module")
def pg(module_quarry) -> Quarry:
    """A server with two keys; env-a holds `orders`, env-b holds `secrets`."""
    s = module_quarry(config=CONFIG, key=KEY_A)
    assert s.pg_port, f"no Postgres port in the log:\n{s.log_tail()}"
    s.send_batch_ok(
        "orders",
        [{"data": row, "time": order_time(row["id"]).isoformat()} for row in ORDERS],
        key=KEY_A,
    )
    s.send_batch_ok("secrets", [{"data": {"token": "only-b"}}], key=KEY_B)
    return s


def connect(s: Quarry, key: str = KEY_A, **kw) -> psycopg.Connection:
    return psycopg.connect(
        host="127.0.0.1",
        port=s.pg_port,
        user="analyst",
        password=key,
        dbname="quarry",
        connect_timeout=10,
        autocommit=True,
        **kw,
    )


def psql(s: Quarry, command: str, key: str = KEY_A) -> str:
    """psql's output of one command (unaligned, tuples only for SELECTs)."""
    binary = shutil.which("psql")
    if binary is None:
        pytest.skip("psql is not installed (scripts/test installs Debian's postgresql-client)")
    done = subprocess.run(
        [binary, "-h", "127.0.0.1", "-p", str(s.pg_port), "-U", "analyst", "-d", "quarry",
         "-X", "-A", "-v", "ON_ERROR_STOP=1", "-c", command],
        env={**os.environ, "PGPASSWORD": key, "PGCONNECT_TIMEOUT": "10"},
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT_S,
    )
    assert done.returncode == 0, f"psql {command!r} -> {done.returncode}: {done.stderr}"
    return done.stdout


def test_psql_lists_describes_and_selects(pg):
    tables = psql(pg, r"\dt")
    assert "public|orders|table|" in tables, tables
    assert "secrets" not in tables, tables

    described = psql(pg, r"\d orders")
    columns = {
        line.split("|")[0]: line.split("|")[1]
        for line in described.splitlines()
        if line.count("|") >= 2
    }
    assert columns["id"] == "bigint", described
    assert columns["price"] == "double precision", described
    assert columns["paid"] == "boolean", described
    assert columns["customer"] == "text", described
    assert columns["timestamp"].startswith("timestamp"), described

    rows = psql(pg, "SELECT id, price, paid, customer FROM orders ORDER BY id")
    assert rows.splitlines()[1:4] == ["1|9.5|t|ann", "2|20.25|f|bob", "3|0.75|t|ann"], rows


def test_psycopg_returns_typed_values(pg):
    with connect(pg) as conn:
        got = conn.execute(
            'SELECT id, price, paid, customer, "timestamp" FROM orders ORDER BY id'
        ).fetchall()
    assert [row[:4] for row in got] == [
        (o["id"], o["price"], o["paid"], o["customer"]) for o in ORDERS
    ]
    for row, order in zip(got, ORDERS):
        assert type(row[0]) is int and type(row[1]) is float and type(row[2]) is bool
        when = row[4]
        assert isinstance(when, dt.datetime), repr(when)
        # Quarry's timestamps are UTC instants; a naive value is read as UTC.
        when = when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)
        assert when == order_time(order["id"]), (when, order)


def test_prepared_statement_with_parameters(pg):
    sql = "SELECT id, price FROM orders WHERE id >= %s AND customer = %s ORDER BY id"
    with connect(pg) as conn:
        for _ in range(3):  # the third run uses the server-side prepared statement
            rows = conn.execute(sql, (2, "ann"), prepare=True).fetchall()
            assert rows == [(3, 0.75)]
        assert conn.execute(sql, (1, "bob"), prepare=True).fetchall() == [(2, 20.25)]


def test_a_long_query_is_cancelled_and_the_connection_serves_on(pg):
    # A sum, not count(*): a count could be answered from the row count alone.
    endless = f"SELECT sum(value % 7) FROM generate_series(1, {ENDLESS_ROWS})"
    with connect(pg) as conn:
        outcome: dict[str, BaseException | object] = {}
        started = threading.Event()

        def run() -> None:
            started.set()
            try:
                outcome["rows"] = conn.execute(endless).fetchall()
            except BaseException as exc:  # noqa: BLE001 - handed to the test thread
                outcome["error"] = exc

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        started.wait(CLIENT_TIMEOUT_S)
        # Cancel until the query is gone: a cancel that lands before the query
        # started on the server finds nothing to cancel.
        for _ in range(200):
            worker.join(0.25)
            if not worker.is_alive():
                break
            conn.cancel_safe(timeout=10)
        worker.join(CLIENT_TIMEOUT_S)
        assert not worker.is_alive(), "the query was not cancelled"
        error = outcome.get("error")
        assert isinstance(error, psycopg.errors.QueryCanceled), repr(outcome)
        assert conn.execute("SELECT 41 + 1").fetchone() == (42,)


def test_pandas_read_sql_through_sqlalchemy(pg):
    engine = sqlalchemy.create_engine(
        f"postgresql+psycopg://analyst:{KEY_A}@127.0.0.1:{pg.pg_port}/quarry",
        poolclass=sqlalchemy.pool.NullPool,
    )
    try:
        with engine.connect() as conn:
            frame = pd.read_sql(
                sqlalchemy.text(
                    "SELECT id, price, paid, customer FROM orders WHERE price > :low ORDER BY id"
                ),
                conn,
                params={"low": 1.0},
            )
    finally:
        engine.dispose()
    assert frame.to_dict("records") == [ORDERS[0], ORDERS[1]]
    assert str(frame["price"].dtype) == "float64"
    assert str(frame["id"].dtype) == "int64"


def test_each_key_sees_only_its_environment(pg):
    with connect(pg, key=KEY_B) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchall()
        assert tables == [("secrets",)]
        assert conn.execute("SELECT token FROM secrets").fetchall() == [("only-b",)]
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("SELECT * FROM orders")
    b_tables = psql(pg, r"\dt", key=KEY_B)
    assert "secrets" in b_tables and "orders" not in b_tables, b_tables
    with pytest.raises(psycopg.OperationalError, match="(?i)password authentication failed"):
        connect(pg, key="not-a-key")


def test_what_the_guardrails_stop_is_a_postgres_error_and_serving_goes_on(pg):
    deep = "SELECT " + "+".join(["1"] * (MAX_EXPRESSION_DEPTH + 1))
    with connect(pg) as conn:
        with pytest.raises(psycopg.errors.StatementTooComplex, match="query too complex"):
            conn.execute(deep)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="CREATE TABLE"):
            conn.execute("CREATE TABLE copied AS SELECT * FROM orders")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="memory_limit"):
            conn.execute("SET datafusion.runtime.memory_limit = '1T'")
        with pytest.raises(psycopg.errors.SyntaxError):
            conn.execute("SELEC 1")
        assert conn.execute("SELECT count(*) FROM orders").fetchone() == (len(ORDERS),)
    # The same refusal through the extended protocol with parameters.
    with connect(pg) as conn:
        with pytest.raises(psycopg.errors.StatementTooComplex):
            conn.execute(deep + " + %s", (1,))
    assert pg.get("/readyz").status_code == 200
    assert pg.rows("SELECT count(*) AS n FROM orders") == [{"n": len(ORDERS)}]
