"""What pandas, pyarrow and DuckDB see of one featurestore table, as JSON on stdout.

Run by tests/it/readers.rs (with PYTHONPATH pointing at the packages it installed):

    python3 tests/python/readers.py FEATURES_DIR GROUP NAME

It reads the table file alone (pandas.read_parquet, pyarrow.parquet.read_table, DuckDB) and
the table file plus its pushed parts with the README's recipe (pyarrow.dataset, DuckDB), and
reports rows, column types and the `age` column where there is one.
"""

import glob
import json
import os
import sys

import duckdb
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq


def table_and_parts(features, group, name):
    """The README's recipe: the table file and the parts appended to this very file."""
    base = os.path.join(features, group, f"{name}.parquet")
    meta = json.loads(pq.ParquetFile(base).metadata.metadata[b"featurestore.meta"])
    parts = sorted(
        glob.glob(
            os.path.join(features, group, "_appends", name, f"v{meta['version']}", "part-*.parquet")
        )
    )
    return base, parts


def arrow_report(table):
    report = {
        "rows": table.num_rows,
        "types": {f.name: str(f.type) for f in table.schema},
    }
    if "age" in table.column_names:
        report["ages"] = table.column("age").to_pylist()
    return report


def main():
    features, group, name = sys.argv[1:4]
    base, parts = table_and_parts(features, group, name)
    out = {"parts": len(parts)}

    df = pd.read_parquet(base)
    pandas = {"rows": len(df), "dtypes": {c: str(t) for c, t in df.dtypes.items()}}
    if "age" in df.columns:
        pandas["ages"] = [int(a) for a in df["age"]]
        # What issue 13 found wrong with unsigned types: uint8 - 40 wrapped around.
        pandas["age_minus_40_mean"] = float((df["age"] - 40).mean())
        pandas["age_minus_40_mean_int64"] = float((df["age"].astype("int64") - 40).mean())
    out["pandas"] = pandas
    out["read_table"] = arrow_report(pq.read_table(base))
    out["dataset"] = arrow_report(ds.dataset([base, *parts], format="parquet").to_table())

    con = duckdb.connect()
    files = [base, *parts]
    rows = con.execute("SELECT count(*) FROM read_parquet(?)", [files]).fetchone()[0]
    duck = {"rows": rows, "base_rows": con.execute("SELECT count(*) FROM read_parquet(?)", [base]).fetchone()[0]}
    described = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [files]).fetchall()
    duck["types"] = {row[0]: row[1] for row in described}
    if "age" in duck["types"]:
        duck["ages"] = [
            r[0] for r in con.execute("SELECT age FROM read_parquet(?)", [files]).fetchall()
        ]
        duck["age_minus_40_mean"] = con.execute(
            "SELECT avg(age - 40) FROM read_parquet(?)", [base]
        ).fetchone()[0]
    out["duckdb"] = duck
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
