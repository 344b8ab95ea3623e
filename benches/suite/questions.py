"""The questions of the benchmark, written once per engine's SQL dialect.

Each question names the columns of its answer and how answers are compared, so no
engine is timed on a wrong answer: counts must be equal, approximate percentiles
within a tolerance.
"""

from dataclasses import dataclass, field

# Time buckets of the heatmap: the window in this many columns.
HEATMAP_TIME_BUCKETS = 60
# Heatmap rows: quarter-octaves of duration_ms (floor(log2(ms) * 4)).
HEATMAP_STEPS_PER_OCTAVE = 4
# Approximate P99s (t-digest in every engine) agree within this relative error.
P99_TOLERANCE = 0.10
# A trace id the generator never makes (its ids come from a bijective mix of a counter).
MISSING_TRACE_ID = "00000000000000000000000000000000"


@dataclass
class Question:
    key: str
    title: str
    columns: list[str]
    sql: dict[str, str]
    approx_columns: dict[int, float] = field(default_factory=dict)


class Sources:
    """`FROM` clauses for 'every event of every dataset' in each engine."""

    def __init__(self, datasets: list[str], segments_glob: str):
        self.datasets = datasets
        self.glob = segments_glob

    def quarry(self, columns: list[str], where: str = "") -> str:
        cols = ", ".join(f'"{c}"' for c in columns)
        cond = f" WHERE {where}" if where else ""
        parts = [f'SELECT {cols} FROM "{d}"{cond}' for d in self.datasets]
        return "(" + " UNION ALL ".join(parts) + ") AS e"

    def duckdb(self) -> str:
        return f"read_parquet('{self.glob}', union_by_name = true) AS e"

    def chdb(self) -> str:
        return f"file('{self.glob}', 'Parquet') AS e"


def build(sources: Sources, start_s: int, end_s: int, trace_id: str) -> list[Question]:
    """Every question for data spanning [start_s, end_s] (Unix seconds)."""
    bucket_s = max(1, (end_s - start_s) // HEATMAP_TIME_BUCKETS)
    steps = HEATMAP_STEPS_PER_OCTAVE
    hour_ago_s = end_s - 3600
    q = sources
    questions = []

    questions.append(Question(
        "heatmap", "HEATMAP(duration_ms) over all events", ["t", "b", "n"], {
            "quarry": f"""
                SELECT to_unixtime("timestamp") / {bucket_s} * {bucket_s} AS t,
                       CAST(floor(log2(duration_ms) * {steps}) AS BIGINT) AS b, count(*) AS n
                FROM {q.quarry(["timestamp", "duration_ms"], "duration_ms > 0")}
                GROUP BY 1, 2 ORDER BY 1, 2""",
            "duckdb": f"""
                SELECT epoch_ms("timestamp") // {bucket_s * 1000} * {bucket_s} AS t,
                       CAST(floor(log2(duration_ms) * {steps}) AS BIGINT) AS b, count(*) AS n
                FROM {q.duckdb()} WHERE duration_ms > 0
                GROUP BY 1, 2 ORDER BY 1, 2""",
            "chdb": f"""
                SELECT intDiv(toUnixTimestamp("timestamp"), {bucket_s}) * {bucket_s} AS t,
                       toInt64(floor(log2(duration_ms) * {steps})) AS b, count() AS n
                FROM {q.chdb()} WHERE duration_ms > 0
                GROUP BY t, b ORDER BY t, b""",
        }))

    questions.append(Question(
        "count_p99_by_service", "COUNT, P99(duration_ms) by service.name", ["s", "n", "p99"], {
            "quarry": f"""
                SELECT "service.name" AS s, count(*) AS n,
                       approx_percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms) AS p99
                FROM {q.quarry(["service.name", "duration_ms"])}
                GROUP BY 1 ORDER BY 1""",
            "duckdb": f"""
                SELECT "service.name" AS s, count(*) AS n, approx_quantile(duration_ms, 0.99) AS p99
                FROM {q.duckdb()} GROUP BY 1 ORDER BY 1""",
            "chdb": f"""
                SELECT "service.name" AS s, count() AS n, quantileTDigest(0.99)(duration_ms) AS p99
                FROM {q.chdb()} GROUP BY s ORDER BY s""",
        }, approx_columns={2: P99_TOLERANCE}))

    questions.append(Question(
        "errors_by_route_last_hour", "COUNT where error by http.route, last hour", ["r", "n"], {
            "quarry": f"""
                SELECT "http.route" AS r, count(*) AS n
                FROM {q.quarry(["http.route", "error", "timestamp"],
                               f'"timestamp" >= to_timestamp_seconds({hour_ago_s}) AND error = true')}
                GROUP BY 1 ORDER BY 2 DESC, 1""",
            "duckdb": f"""
                SELECT "http.route" AS r, count(*) AS n FROM {q.duckdb()}
                WHERE "timestamp" >= to_timestamp({hour_ago_s}) AND error = true
                GROUP BY 1 ORDER BY 2 DESC, 1""",
            "chdb": f"""
                SELECT "http.route" AS r, count() AS n FROM {q.chdb()}
                WHERE "timestamp" >= toDateTime64({hour_ago_s}, 9, 'UTC') AND error = true
                GROUP BY r ORDER BY n DESC, r""",
        }))

    questions.append(Question(
        "top10_customer", "top 10 customer_id by COUNT (100,000 values)", ["c", "n"], {
            "quarry": f"""
                SELECT customer_id AS c, count(*) AS n FROM {q.quarry(["customer_id"])}
                GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10""",
            "duckdb": f"""
                SELECT customer_id AS c, count(*) AS n FROM {q.duckdb()}
                GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 10""",
            "chdb": f"""
                SELECT customer_id AS c, count() AS n FROM {q.chdb()}
                GROUP BY c ORDER BY n DESC, c LIMIT 10""",
        }))

    questions.append(Question(
        "count_distinct_customer", "COUNT_DISTINCT(customer_id)", ["n"], {
            "quarry": f"SELECT count(DISTINCT customer_id) AS n FROM {q.quarry(['customer_id'])}",
            "duckdb": f"SELECT count(DISTINCT customer_id) AS n FROM {q.duckdb()}",
            "chdb": f"SELECT uniqExact(customer_id) AS n FROM {q.chdb()}",
        }))

    for key, title, tid in (("trace_hit", "trace lookup (hit)", trace_id),
                            ("trace_miss", "trace lookup (miss)", MISSING_TRACE_ID)):
        cols = ["trace.trace_id", "service.name", "timestamp"]
        questions.append(Question(
            key, title, ["s", "n"], {
                "quarry": f"""
                    SELECT "service.name" AS s, count(*) AS n
                    FROM {q.quarry(cols, f'"trace.trace_id" = {sql_str(tid)}')}
                    GROUP BY 1 ORDER BY 1""",
                "duckdb": f"""
                    SELECT "service.name" AS s, count(*) AS n FROM {q.duckdb()}
                    WHERE "trace.trace_id" = {sql_str(tid)} GROUP BY 1 ORDER BY 1""",
                "chdb": f"""
                    SELECT "service.name" AS s, count() AS n FROM {q.chdb()}
                    WHERE "trace.trace_id" = {sql_str(tid)} GROUP BY s ORDER BY s""",
            }))
    return questions


def sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def normalize(rows: list[tuple]) -> list[tuple]:
    """Numbers as int or float, everything else as str, so engines compare equal."""
    out = []
    for row in rows:
        norm = []
        for v in row:
            if isinstance(v, bool) or v is None:
                norm.append(v)
            elif isinstance(v, int):
                norm.append(v)
            elif isinstance(v, float):
                norm.append(int(v) if v.is_integer() and abs(v) < 2**53 else v)
            elif isinstance(v, str) and _is_int(v):
                norm.append(int(v))
            else:
                norm.append(str(v))
        out.append(tuple(norm))
    return out


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()


def agree(question: Question, a: list[tuple], b: list[tuple]) -> bool:
    """Whether two normalized answers are the same (approximate columns within tolerance)."""
    if len(a) != len(b):
        return False
    for ra, rb in zip(a, b):
        if len(ra) != len(rb):
            return False
        for i, (va, vb) in enumerate(zip(ra, rb)):
            tolerance = question.approx_columns.get(i)
            if tolerance is not None and va is not None and vb is not None:
                va, vb = float(va), float(vb)
                if abs(va - vb) > tolerance * max(abs(va), abs(vb), 1e-9):
                    return False
            elif va != vb:
                return False
    return True
