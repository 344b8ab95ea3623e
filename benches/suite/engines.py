"""The engines under test, each answering SQL with rows as tuples.

Quarry answers over HTTP (`POST /api/v1/sql`; its query-spec endpoint is in spec.py); DuckDB
and chDB run in this process over Quarry's own sealed Parquet segment files, limited
to the same number of threads as Quarry's DataFusion session.
"""

import json

import requests

QUERY_TIMEOUT_S = 600


class QuarryEngine:
    """Quarry over its SQL endpoint (JSON rows; null columns are left out of a row)."""

    name = "quarry"

    def __init__(self, url: str):
        self.url = url
        self.session = requests.Session()

    def query(self, sql: str, columns: list[str]) -> list[tuple]:
        response = self.session.post(
            f"{self.url}/api/v1/sql", json={"sql": sql, "format": "json"}, timeout=QUERY_TIMEOUT_S
        )
        if response.status_code != 200:
            raise RuntimeError(f"quarry {response.status_code}: {response.text[:500]}")
        return [tuple(row.get(c) for c in columns) for row in response.json()]

    def version(self) -> str:
        return "(this build)"

    def close(self) -> None:
        self.session.close()


class DuckDBEngine:
    """DuckDB (Python package), in process."""

    name = "duckdb"

    def __init__(self, threads: int):
        import duckdb

        self.module = duckdb
        self.con = duckdb.connect(config={"threads": threads})

    def query(self, sql: str, columns: list[str]) -> list[tuple]:
        return [tuple(row) for row in self.con.execute(sql).fetchall()]

    def version(self) -> str:
        return self.module.__version__

    def close(self) -> None:
        self.con.close()


class ChdbEngine:
    """chDB (ClickHouse in process, Python package)."""

    name = "chdb"

    def __init__(self, threads: int):
        import chdb
        from chdb import session

        self.module = chdb
        self.threads = threads
        self.session = session.Session()

    def query(self, sql: str, columns: list[str]) -> list[tuple]:
        result = self.session.query(f"{sql} SETTINGS max_threads = {self.threads}", "JSONCompact")
        text = result.bytes() if hasattr(result, "bytes") else bytes(str(result), "utf-8")
        if not text:
            return []
        return [tuple(row) for row in json.loads(text)["data"]]

    def version(self) -> str:
        return getattr(self.module, "__version__", "?")

    def close(self) -> None:
        close = getattr(self.session, "close", None)
        if close:
            close()
