"""DuckDB's ASOF LEFT JOIN on the fixtures of `benches/historical.rs`, for the ratio to ours.

Usage:
    pip install duckdb pyarrow numpy
    python3 benches/python/compare_duckdb.py DIR          # writes DIR/<case>/*.parquet if absent, times DuckDB
    FEATURESTORE_ASOF_FIXTURES=DIR cargo bench --bench historical -- historical_parquet

The cargo filter runs three groups on these files: `historical_parquet` (ours cold, as before
issue 18: both files read, then joined), `historical_parquet_warm` (the entity file read and
joined against a history of the feature file kept from an earlier request: what a server
answers once the version's history is built) and `historical_parquet_cold` (both files read,
the history built and joined, all in the timed loop: a server's first request on a version).

Each case is a directory with entities.parquet (user_id int64, event_timestamp
timestamp[us, UTC]) and features.parquet (user_id, event_timestamp, created, age,
avg_rating, total_movies_watched, favorite_genre, account_created_days), the shapes of the
Rust bench: users x versions feature rows in append order (version by version), versions a
day apart, entity users uniform with 1 % unknown, entity times from a day before the first
version to the end of the last, TTL two days. Values come from numpy with a fixed seed; they
differ from the in-memory Rust fixtures but not in shape.

The query keeps every entity row (LEFT), takes the latest feature row at or before the
entity's time (ASOF ... >=) and nulls it when older than the TTL: the same rule as ours
(the latest row at or before t is the only candidate; when it is too old, so is every older
one). Event times are distinct per user, so the created tie-break is not exercised. DuckDB
reads the Parquet files inside the query, as ours reads them before the join; the result
is materialised as an Arrow table (ours returns an Arrow batch). Best of N runs, seconds;
"ordered" adds ORDER BY the entity row number, since ours keeps input order.
"""

import pathlib
import sys
import time

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

SECOND = 1_000_000
DAY = 86_400 * SECOND
BASE = 1_704_067_200 * SECOND  # 2024-01-01T00:00:00Z
TTL_DAYS = 2
GENRES = ["action", "comedy", "drama", "horror", "romance", "sci-fi", "thriller", "documentary"]
CASES = [("100k_300k", 100_000, 100_000, 3), ("1m_10m", 1_000_000, 1_000_000, 10)]
RUNS = 5


def utc(values: np.ndarray) -> pa.Array:
    return pa.array(values, type=pa.timestamp("us", tz="UTC"))


def write_case(directory: pathlib.Path, entity_rows: int, users: int, versions: int) -> None:
    rng = np.random.default_rng(42)
    rows = users * versions
    user_id = np.tile(np.arange(1, users + 1, dtype=np.int64), versions)
    version = np.repeat(np.arange(versions, dtype=np.int64), users)
    event = BASE + version * DAY + rng.integers(0, DAY, rows)
    features = pa.table(
        {
            "user_id": user_id,
            "event_timestamp": utc(event),
            "created": utc(event + rng.integers(0, 3_600 * SECOND, rows)),
            "age": rng.integers(18, 80, rows),
            "avg_rating": 1.0 + rng.integers(0, 4_000, rows) / 1_000.0,
            "total_movies_watched": rng.integers(0, 2_000, rows),
            "favorite_genre": pa.array(np.array(GENRES)[rng.integers(0, len(GENRES), rows)]),
            "account_created_days": rng.integers(0, 3_650, rows),
        }
    )
    unknown = users // 100
    entities = pa.table(
        {
            "user_id": rng.integers(1, users + unknown + 1, entity_rows),
            "event_timestamp": utc(BASE - DAY + rng.integers(0, (versions + 1) * DAY, entity_rows)),
        }
    )
    directory.mkdir(parents=True, exist_ok=True)
    pq.write_table(features, directory / "features.parquet", compression="snappy")
    pq.write_table(entities, directory / "entities.parquet", compression="snappy")


def query(directory: pathlib.Path, ordered: bool) -> str:
    window = f"e.event_timestamp - INTERVAL {TTL_DAYS} DAY"
    columns = ", ".join(
        f"CASE WHEN f.event_timestamp >= {window} THEN f.{name} END AS {name}"
        for name in ["age", "avg_rating", "total_movies_watched", "favorite_genre", "account_created_days"]
    )
    order = "ORDER BY e.file_row_number" if ordered else ""
    return f"""
        SELECT e.user_id, e.event_timestamp, {columns}
        FROM read_parquet('{directory / "entities.parquet"}', file_row_number = true) e
        ASOF LEFT JOIN read_parquet('{directory / "features.parquet"}') f
          ON e.user_id = f.user_id AND e.event_timestamp >= f.event_timestamp
        {order}
    """


def best_of(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[float, pa.Table]:
    best, result = float("inf"), None
    for _ in range(RUNS):
        started = time.perf_counter()
        relation = con.sql(sql)
        # DuckDB 2 renamed the relation's arrow() to to_arrow_table().
        result = relation.to_arrow_table() if hasattr(relation, "to_arrow_table") else relation.arrow()
        best = min(best, time.perf_counter() - started)
    return best, result


def main(root: str) -> None:
    con = duckdb.connect()
    threads = con.execute("SELECT current_setting('threads')").fetchall()[0][0]
    print(f"duckdb {duckdb.__version__}, threads {threads}")
    print(f"{'case':<10} {'entity rows':>11} {'feature rows':>12} {'matched':>9} {'sum of age':>12} {'asof s':>8} {'ordered s':>10}")
    for name, entity_rows, users, versions in CASES:
        directory = pathlib.Path(root) / name
        if not (directory / "features.parquet").exists():
            write_case(directory, entity_rows, users, versions)
        unordered, _ = best_of(con, query(directory, ordered=False))
        ordered, result = best_of(con, query(directory, ordered=True))
        # Matched rows and the sum of the joined ages, to compare with the Rust bench's.
        matched = result.num_rows - result.column("age").null_count
        age_sum = pc.sum(result.column("age")).as_py()
        print(
            f"{name:<10} {entity_rows:>11} {users * versions:>12} {matched:>9} {age_sum:>12} "
            f"{unordered:>8.3f} {ordered:>10.3f}"
        )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "asof_fixtures")
