"""Black-box fuzzing of `POST /api/v1/sql`: random and mutated SQL must never take the
server down or drop a connection.

    QUARRY_BIN=$CARGO_TARGET_DIR/debug/quarry ~/.cache/quarry/venv/bin/python tests/fuzz_sql.py
    ... tests/fuzz_sql.py --seconds 600 --seed 7          # longer, reproducible
    ... tests/fuzz_sql.py --url http://127.0.0.1:8080     # a server already running

It starts a `quarry serve` on a free loopback port (or talks to `--url`, which must be
a loopback address), loads a small dataset, and for a bounded time (`--seconds`,
default 180) and number of statements (`--max-statements`, default 20,000) sends
statements from the generators below: long operator chains, deep nesting, token soup,
huge literals, odd function calls, recursive CTEs, and mutations of valid queries.
Any status is an answer (most are 400); the run fails when a connection is dropped
or reset, when the server dies, or when it stops answering a simple query
correctly. 5xx answers and panics in the server log are listed (a panic caught
in a query is a 500), and fail the run with `--strict`. Failing statements are written to
`tests/artifacts/fuzz_sql/` with the server log.

The same run is a pytest test when `QUARRY_LONG_TESTS=1` (tests/test_fuzz_sql.py);
it is not part of the default suite.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import requests

sys.path.insert(0, str(Path(__file__).parent))
from harness import Quarry, default_binary  # noqa: E402

# Default length of a run, seconds.
DEFAULT_SECONDS = 180.0
# Default most statements in a run.
DEFAULT_MAX_STATEMENTS = 20_000
# Seconds one statement may take before the client gives up on it (a timeout is
# counted, not a failure: the server cancels the query when the client leaves).
STATEMENT_TIMEOUT_S = 60.0
# Longest chain a generator builds: well past every limit (docs/query.md).
MAX_CHAIN_TERMS = 30_000
# Deepest parenthesis / subquery nesting generated (the parser refuses past 50).
MAX_NESTING = 400
# Largest literal generated, bytes (the request body limit is 2 MB).
MAX_LITERAL_BYTES = 1_500_000
# Largest `repeat` count generated: big enough to allocate, small enough not to
# exhaust a test machine's memory.
MAX_REPEAT = 50_000_000
# Dataset the statements read.
DATASET = "fuzz"
# Rows in it.
ROWS = 50
# Hosts `--url` may name: the fuzzer never talks to another machine.
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
# Where failing statements and server logs go.
ARTIFACTS = Path(__file__).parent / "artifacts" / "fuzz_sql"

COLUMNS = ["n", "x", "s", "flag", '"timestamp"', '"nested.key"', "missing"]
LITERALS = ["1", "0", "-1", "2.5", "1e308", "'a'", "''", "NULL", "true", "false", "9223372036854775807"]
BINARY_OPS = ["+", "-", "*", "/", "%", "||", "=", "<>", "<", ">=", "AND", "OR", "&", "|", "^", "<<", "LIKE", "IS DISTINCT FROM"]
FUNCTIONS = [
    "abs", "sqrt", "ln", "length", "upper", "lower", "concat", "coalesce", "nullif", "repeat",
    "lpad", "rpad", "substr", "replace", "regexp_replace", "regexp_like", "md5", "sha256",
    "to_timestamp", "date_trunc", "date_bin", "array_agg", "string_agg", "count", "sum", "avg",
    "min", "max", "stddev", "approx_distinct", "approx_percentile_cont", "median", "make_array",
    "array_length", "unnest", "generate_series", "range", "arrow_typeof", "arrow_cast", "struct",
    "named_struct", "get_field", "quarry_quantile", "quarry_sketch", "quarry_sketch_merge",
    "quarry_sketch_quantile", "quarry_heatmap_bucket", "quarry_exemplars", "no_such_function",
]
TYPES = ["bigint", "int", "double", "varchar", "boolean", "timestamp", "date", "decimal(38,10)", "bytea", "interval"]
KEYWORDS = [
    "SELECT", "FROM", "WHERE", "GROUP", "BY", "ORDER", "HAVING", "LIMIT", "OFFSET", "UNION", "ALL",
    "INTERSECT", "EXCEPT", "JOIN", "ON", "USING", "LEFT", "CROSS", "WITH", "RECURSIVE", "AS", "CASE",
    "WHEN", "THEN", "ELSE", "END", "NOT", "IN", "EXISTS", "BETWEEN", "DISTINCT", "OVER", "PARTITION",
    "VALUES", "CAST", "TRY_CAST", "INTERVAL", "EXPLAIN", "ANALYZE", "COPY", "CREATE", "DROP", "SET",
]
PUNCTUATION = ["(", ")", ",", ".", ";", "::", "[", "]", "{", "}", "*", "->", "->>", "@>", "=>", "$1", "?", "'", '"']
VALID = [
    f'SELECT n, x, s FROM "{DATASET}" ORDER BY n LIMIT 5',
    f'SELECT s, count(*), avg(x) FROM "{DATASET}" GROUP BY s ORDER BY s',
    f'SELECT n FROM "{DATASET}" WHERE x > 1.5 AND s LIKE \'s%\'',
    f'SELECT date_trunc(\'minute\', "timestamp") AS t, sum(n) FROM "{DATASET}" GROUP BY 1',
    f'SELECT quarry_quantile(x, 1, 0.99) FROM "{DATASET}"',
    f'SELECT n, row_number() OVER (PARTITION BY s ORDER BY n) FROM "{DATASET}"',
    f'WITH t AS (SELECT n FROM "{DATASET}") SELECT count(*) FROM t a JOIN t b ON a.n = b.n',
    "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 10) SELECT sum(i) FROM r",
]


def rand_atom(rng: random.Random) -> str:
    return rng.choice(COLUMNS + LITERALS)


def gen_chain(rng: random.Random) -> str:
    """A long flat chain of one or mixed operators, in SELECT, WHERE or ORDER BY."""
    terms = int(rng.choice([10, 100, 1_000, 2_000, 5_000, 10_000, MAX_CHAIN_TERMS]) * rng.random()) + 2
    ops = [rng.choice(BINARY_OPS)] if rng.random() < 0.7 else BINARY_OPS
    parts = [rand_atom(rng)]
    for _ in range(terms - 1):
        parts.append(rng.choice(ops))
        parts.append(rand_atom(rng))
    expr = " ".join(parts)
    place = rng.choice(["select", "where", "order", "case"])
    if place == "select":
        return f'SELECT {expr} FROM "{DATASET}"'
    if place == "where":
        return f'SELECT n FROM "{DATASET}" WHERE {expr}'
    if place == "order":
        return f'SELECT n FROM "{DATASET}" ORDER BY {expr}'
    return f'SELECT CASE WHEN {expr} THEN 1 ELSE 0 END FROM "{DATASET}"'


def gen_set_operations(rng: random.Random) -> str:
    count = int(rng.choice([5, 50, 500, 2_000, 6_000]) * rng.random()) + 2
    op = rng.choice(["UNION ALL", "UNION", "INTERSECT", "EXCEPT"])
    return f" {op} ".join(f"SELECT {i} AS v" for i in range(count))


def gen_nesting(rng: random.Random) -> str:
    depth = rng.randint(1, MAX_NESTING)
    kind = rng.choice(
        ["paren", "subquery", "call", "case", "cast", "not", "neg", "explain", "in", "type", "type_string"]
    )
    if kind == "type":
        nest = depth * rng.choice([1, 10, 30])
        inner = rng.choice(["INT" + "[]" * nest, "STRUCT<a " * nest + "INT" + ">" * nest, "ARRAY<" * nest + "INT" + ">" * nest])
        return f"SELECT CAST(NULL AS {inner})"
    if kind == "type_string":
        nest = depth * rng.choice([1, 10, 300])
        return f"SELECT arrow_cast(NULL, '{'List(' * nest}Int64{')' * nest}')"
    if kind == "explain":
        return "EXPLAIN " * (depth * rng.choice([1, 10, 100])) + "SELECT 1"
    if kind == "in":
        return "SELECT 1 WHERE 1 IN " + "(SELECT 1 WHERE 1 IN " * depth + "(SELECT 1)" + ")" * depth
    if kind == "paren":
        return "SELECT " + "(" * depth + "1" + ")" * depth
    if kind == "subquery":
        return "SELECT " + "(SELECT " * depth + "1" + ")" * depth
    if kind == "call":
        fn = rng.choice(["abs", "coalesce", "upper", "length", "sqrt"])
        return "SELECT " + f"{fn}(" * depth + "1" + ")" * depth
    if kind == "case":
        return "SELECT " + "CASE WHEN true THEN " * depth + "1" + " END" * depth
    if kind == "cast":
        return "SELECT 1" + "".join(f"::{rng.choice(TYPES)}" for _ in range(depth * 20))
    if kind == "not":
        return "SELECT " + "NOT " * depth + "true"
    return "SELECT " + "- " * depth + "1"


def gen_token_soup(rng: random.Random) -> str:
    vocab = KEYWORDS + PUNCTUATION + BINARY_OPS + FUNCTIONS + COLUMNS + LITERALS
    return " ".join(rng.choice(vocab) for _ in range(rng.randint(1, 300)))


def gen_literal(rng: random.Random) -> str:
    size = rng.randint(1, MAX_LITERAL_BYTES)
    kind = rng.choice(["string", "number", "identifier", "decimal", "escape"])
    if kind == "string":
        return f"SELECT length('{'x' * size}')"
    if kind == "number":
        return "SELECT " + "9" * min(size, 100_000)
    if kind == "identifier":
        return f'SELECT "{"c" * min(size, 100_000)}" FROM "{DATASET}"'
    if kind == "decimal":
        return "SELECT 0." + "1" * min(size, 100_000)
    return "SELECT E'" + "\\x41" * (size // 4) + "'"


def gen_function(rng: random.Random) -> str:
    fn = rng.choice(FUNCTIONS)
    args = [rand_atom(rng) for _ in range(rng.choice([0, 1, 2, 3, 5, 100, 2_000]))]
    if fn == "repeat":
        args = ["'ab'", str(rng.randint(-5, MAX_REPEAT))]
    if fn in ("generate_series", "range"):
        return f"SELECT count(*) FROM {fn}(1, {rng.randint(-10, 2_000_000)})"
    cast = rng.random() < 0.2
    call = f"{fn}({', '.join(args)})"
    if cast:
        call = f"CAST({call} AS {rng.choice(TYPES)})"
    return f'SELECT {call} FROM "{DATASET}"'


def gen_recursive_cte(rng: random.Random) -> str:
    steps = rng.choice([5, 20, 30, 100, 1_000, 100_000])
    body = rng.choice(["s || s", "s || 'x'", "upper(s)", "concat(s, s)", "repeat(s, 2)"])
    start = rng.choice(["'ab'", "'x'", "repeat('y', 1000)"])
    return (
        f"WITH RECURSIVE t(s, n) AS (SELECT {start}, 1 UNION ALL "
        f"SELECT {body}, n + 1 FROM t WHERE n < {steps}) SELECT max(length(s)), count(*) FROM t"
    )


def gen_mutation(rng: random.Random) -> str:
    tokens = rng.choice(VALID).split(" ")
    for _ in range(rng.randint(1, 8)):
        action = rng.choice(["drop", "dup", "swap", "insert", "repeat"])
        i = rng.randrange(len(tokens))
        if action == "drop" and len(tokens) > 1:
            tokens.pop(i)
        elif action == "dup":
            tokens.insert(i, tokens[i])
        elif action == "swap":
            j = rng.randrange(len(tokens))
            tokens[i], tokens[j] = tokens[j], tokens[i]
        elif action == "insert":
            tokens.insert(i, rng.choice(KEYWORDS + PUNCTUATION + BINARY_OPS + FUNCTIONS))
        else:
            tokens[i] = " ".join([tokens[i]] * rng.randint(2, 2_000))
    return " ".join(tokens)


GENERATORS = {
    "chain": gen_chain,
    "set_operations": gen_set_operations,
    "nesting": gen_nesting,
    "token_soup": gen_token_soup,
    "literal": gen_literal,
    "function": gen_function,
    "recursive_cte": gen_recursive_cte,
    "mutation": gen_mutation,
}


@dataclass
class Outcome:
    """What a run saw."""

    statements: int = 0
    statuses: Counter = field(default_factory=Counter)
    by_generator: Counter = field(default_factory=Counter)
    timeouts: Counter = field(default_factory=Counter)
    server_errors: list[tuple[str, int, str]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def check_loopback(url: str) -> str:
    host = urlparse(url).hostname or ""
    if host not in LOOPBACK_HOSTS:
        raise SystemExit(f"--url must be a loopback address (one of {sorted(LOOPBACK_HOSTS)}), not {host!r}")
    return url.rstrip("/")


def load_rows(base: str, headers: dict) -> None:
    events = [
        {"data": {"n": i, "x": i / 3, "s": f"s{i % 7}", "flag": i % 2 == 0, "nested": {"key": str(i)}}}
        for i in range(ROWS)
    ]
    resp = requests.post(f"{base}/1/batch/{DATASET}", data=json.dumps(events), headers=headers, timeout=30)
    resp.raise_for_status()


def healthy(base: str, headers: dict) -> str | None:
    """None when the server answers a simple query correctly; else what is wrong."""
    try:
        resp = requests.post(
            f"{base}/api/v1/sql",
            data=json.dumps({"sql": f'SELECT count(*) AS c FROM "{DATASET}"'}),
            headers=headers,
            timeout=STATEMENT_TIMEOUT_S,
        )
    except requests.RequestException as exc:
        return f"health query failed: {exc}"
    if resp.status_code != 200 or resp.json() != [{"c": ROWS}]:
        return f"health query answered {resp.status_code}: {resp.text[:200]}"
    return None


def save(name: str, sql: str, note: str, log: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.sql"
    path.write_text(sql)
    (ARTIFACTS / f"{name}.txt").write_text(note + "\n\n" + log)
    return path


def run_fuzz(
    base: str,
    headers: dict,
    seconds: float,
    max_statements: int,
    seed: int,
    alive=lambda: True,
    log=lambda: "",
    verbose: bool = False,
) -> Outcome:
    """Sends generated statements to `base` until the time or count is used up, or
    the server fails; the outcome lists what happened."""
    rng = random.Random(seed)
    outcome = Outcome()
    deadline = time.monotonic() + seconds
    names = list(GENERATORS)
    while time.monotonic() < deadline and outcome.statements < max_statements:
        name = rng.choice(names)
        sql = GENERATORS[name](rng)
        outcome.statements += 1
        outcome.by_generator[name] += 1
        try:
            resp = requests.post(
                f"{base}/api/v1/sql",
                data=json.dumps({"sql": sql}),
                headers=headers,
                timeout=STATEMENT_TIMEOUT_S,
            )
        except requests.Timeout:
            outcome.timeouts[name] += 1
            if verbose:
                print(f"{outcome.statements:6d} {name:15s} timeout {len(sql):8d}B {sql[:200]!r}", flush=True)
            continue
        except requests.ConnectionError as exc:
            path = save(f"dropped-{seed}-{outcome.statements}", sql, f"{name}: {exc}", log())
            outcome.failures.append(f"connection dropped on a {name} statement ({exc}); saved to {path}")
            break
        outcome.statuses[resp.status_code] += 1
        if resp.status_code >= 500:
            outcome.server_errors.append((name, resp.status_code, sql[:300]))
        if verbose:
            print(f"{outcome.statements:6d} {name:15s} {resp.status_code} {len(sql):8d}B", flush=True)
        if not alive():
            path = save(f"died-{seed}-{outcome.statements}", sql, f"{name}: server died", log())
            outcome.failures.append(f"server died after a {name} statement; saved to {path}")
            break
    if not outcome.failures:
        problem = healthy(base, headers) if alive() else "server died"
        if problem:
            outcome.failures.append(problem)
    return outcome


def report(outcome: Outcome, seed: int, strict: bool) -> bool:
    """Prints the outcome; whether the run passed."""
    print(f"seed {seed}: {outcome.statements} statements, statuses {dict(sorted(outcome.statuses.items()))}, "
          f"timeouts {dict(outcome.timeouts)}")
    print(f"generators: {dict(sorted(outcome.by_generator.items()))}")
    for name, status, sql in outcome.server_errors[:20]:
        print(f"  {status} from a {name} statement: {sql!r}")
    for failure in outcome.failures:
        print(f"FAILED: {failure}")
    return not outcome.failures and not (strict and outcome.server_errors)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("QUARRY_FUZZ_SECONDS", DEFAULT_SECONDS)))
    parser.add_argument("--max-statements", type=int, default=DEFAULT_MAX_STATEMENTS)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--url", help="a running server on a loopback address (default: start one)")
    parser.add_argument("--key", default="fuzz-key", help="X-Honeycomb-Team of the requests")
    parser.add_argument("--strict", action="store_true", help="fail on any 5xx answer too")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    headers = {"X-Honeycomb-Team": args.key, "Content-Type": "application/json"}
    server = None
    if args.url:
        base = check_loopback(args.url)
        alive, log = (lambda: True), (lambda: "")
    else:
        server = Quarry(default_binary(), Path(tempfile.mkdtemp(prefix="quarry-fuzz-")), key=args.key).start()
        base, alive, log = server.base, server.alive, server.log_text
    try:
        load_rows(base, headers)
        outcome = run_fuzz(base, headers, args.seconds, args.max_statements, seed, alive, log, args.verbose)
    finally:
        if server is not None:
            server.stop()
    passed = report(outcome, seed, args.strict)
    if server is not None:
        # A panic caught inside one query is an answer (500), but still a defect.
        panics = server.log_text().count("panicked at")
        if panics:
            print(f"{'FAILED' if args.strict else 'warning'}: {panics} panics in the server log")
            passed = passed and not args.strict
        if not passed:
            print(server.log_tail())
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
