"""The SQL fuzzer (tests/fuzz_sql.py) as a test, in the long mode only.

    QUARRY_LONG_TESTS=1 scripts/test -k fuzz_sql            # default 180 s
    QUARRY_LONG_TESTS=1 QUARRY_FUZZ_SECONDS=600 QUARRY_FUZZ_SEED=7 scripts/test -k fuzz_sql
"""

from __future__ import annotations

import os
import random

import pytest

from fuzz_sql import DEFAULT_MAX_STATEMENTS, DEFAULT_SECONDS, load_rows, report, run_fuzz

pytestmark = pytest.mark.skipif(
    os.environ.get("QUARRY_LONG_TESTS") != "1",
    reason="long test: set QUARRY_LONG_TESTS=1 to fuzz the SQL endpoint",
)


def test_random_sql_never_drops_a_connection_or_the_server(server):
    seconds = float(os.environ.get("QUARRY_FUZZ_SECONDS", DEFAULT_SECONDS))
    seed = int(os.environ.get("QUARRY_FUZZ_SEED", random.randrange(1 << 32)))
    headers = server.headers(extra={"Content-Type": "application/json"})
    load_rows(server.base, headers)
    outcome = run_fuzz(
        server.base,
        headers,
        seconds,
        DEFAULT_MAX_STATEMENTS,
        seed,
        alive=server.alive,
        log=server.log_text,
    )
    assert report(outcome, seed, strict=False), outcome.failures
