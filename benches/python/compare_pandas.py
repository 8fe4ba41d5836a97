"""File size and write time of featurestore's Parquet tables against pandas + pyarrow.

Usage (after `featurestore demo --data-dir DIR`):
    pip install pandas pyarrow
    python3 benches/python/compare_pandas.py DIR

For each table, the data is read back with its logical types (int64, float64, strings,
UTC timestamps: what a pandas user would hold before saving) and written with pandas'
defaults plus snappy, as the 2.5 guide does; sizes and the best of three write times are
printed beside featurestore's file.
"""

import pathlib
import sys
import tempfile
import time

import pandas as pd
import pyarrow.parquet as pq


def logical_frame(path: pathlib.Path) -> pd.DataFrame:
    frame = pq.read_table(path).to_pandas()
    for column in frame.columns:
        kind = frame[column].dtype
        if str(kind).startswith(("uint", "int")):
            frame[column] = frame[column].astype("int64")
        elif str(kind) == "float32":
            frame[column] = frame[column].astype("float64")
        elif str(kind) == "category":
            frame[column] = frame[column].astype("object")
    return frame


def main(root: str) -> None:
    features = pathlib.Path(root) / "features"
    print(f"{'table':<28} {'rows':>9} {'featurestore MB':>16} {'pandas MB':>10} {'ratio':>7} {'pandas write s':>15}")
    for path in sorted(features.glob("*/*.parquet")):
        frame = logical_frame(path)
        with tempfile.TemporaryDirectory() as tmp:
            out = pathlib.Path(tmp) / "pandas.parquet"
            best = float("inf")
            for _ in range(3):
                started = time.perf_counter()
                frame.to_parquet(out, engine="pyarrow", compression="snappy", index=False)
                best = min(best, time.perf_counter() - started)
            ours, theirs = path.stat().st_size, out.stat().st_size
        print(f"{path.stem:<28} {len(frame):>9} {ours / 2**20:>16.2f} {theirs / 2**20:>10.2f} {ours / theirs:>7.2f} {best:>15.3f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "feature_store")
