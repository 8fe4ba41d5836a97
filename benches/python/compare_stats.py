"""featurestore's served statistics against pandas' and numpy's, table by table.

Usage (a server running over DATA_DIR, e.g. `featurestore serve --demo`):
    bash benches/python/compare_stats.sh [--url URL] [--data-dir DATA_DIR] [--token TOKEN]

For every table in `GET /features`, the rows are read the way the README shows (the table file
plus the parts pushed to that very file), in their logical types, and every figure of
`GET /features/{group}/{name}/stats` is recomputed:

- exact figures (rows, nulls, distinct, min, max, mean, std, the seven percentiles,
  histogram edges and counts, top values and the rest's count, timestamp range) must match
  within 1e-9 relative: pandas' `count`/`isna`/`nunique`/`mean`/`std`/`quantile`,
  `numpy.histogram(values, bins=20)`, `value_counts`;
- figures the server names in a column's `approximate` must be within their documented
  bound: distinct 5 % (HyperLogLog, 2^12 registers), percentiles 0.78 % relative (log-linear
  sketch), top values within the summary's undercount (only totals are checked), a re-binned
  histogram only by its total.

A table of results is printed, one line per column; the exit status is 1 on any mismatch.
"""

import argparse
import glob
import json
import math
import pathlib
import sys
import urllib.request

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

RELATIVE = 1e-9
DISTINCT_BOUND = 0.05
PERCENTILE_BOUND = 0.0078
QUANTILES = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99]
PERCENTILE_NAMES = ["p1", "p5", "p25", "p50", "p75", "p95", "p99"]


def get(url: str, token: str | None) -> dict:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def logical(frame: pd.DataFrame) -> pd.DataFrame:
    """The stored types (narrowed ints, dictionaries, float32) as the logical ones."""
    for column in frame.columns:
        kind = str(frame[column].dtype)
        if kind.startswith(("uint", "int")):
            frame[column] = frame[column].astype("int64")
        elif kind == "float32":
            frame[column] = frame[column].astype("float64")
        elif kind == "category":
            frame[column] = frame[column].astype("object")
    return frame


def read_table(root: pathlib.Path, group: str, name: str) -> pd.DataFrame:
    base = root / "features" / group / f"{name}.parquet"
    meta = pq.ParquetFile(base).metadata.metadata or {}
    version = json.loads(meta.get(b"featurestore.meta", b"{}")).get("version")
    parts = glob.glob(str(root / "features" / group / "_appends" / name / f"v{version}" / "part-*.parquet"))
    parts.sort(key=lambda p: int(pathlib.Path(p).stem.split("-")[-1]))
    frames = [logical(pq.read_table(p).to_pandas()) for p in [base, *parts]]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def close(a, b, relative=RELATIVE) -> bool:
    if a is None or b is None:
        return a is b
    a, b = float(a), float(b)
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= relative * max(abs(a), abs(b), 1e-300) or a == b


class Column:
    """The checks of one column; `fail` records a mismatch with what was expected."""

    def __init__(self, table: str, stats: dict):
        self.table, self.stats, self.checked, self.failures = table, stats, 0, []

    def check(self, figure: str, ours, theirs, ok: bool) -> None:
        self.checked += 1
        if not ok:
            self.failures.append(f"{figure}: featurestore {ours!r}, pandas {theirs!r}")

    def exact(self, figure: str, ours, theirs) -> None:
        self.check(figure, ours, theirs, close(ours, theirs))


def compare_numeric(c: Column, series: pd.Series) -> None:
    values = series.dropna().to_numpy(dtype="float64")
    numeric = c.stats.get("numeric")
    if len(values) == 0:
        c.check("numeric", numeric, None, numeric is None)
        return
    approximate = c.stats["approximate"]
    c.exact("min", numeric["min"], series.min())
    c.exact("max", numeric["max"], series.max())
    c.exact("mean", numeric["mean"], series.mean())
    std = series.std() if len(values) > 1 else 0.0
    c.exact("std", numeric["std"], std)
    expected = series.dropna().quantile(QUANTILES).to_list()
    scale = max(abs(values.min()), abs(values.max()))
    for name, theirs in zip(PERCENTILE_NAMES, expected):
        ours = numeric["percentiles"][name]
        if "percentiles" in approximate:
            bound = PERCENTILE_BOUND * (abs(theirs) if values.min() >= 0 else scale)
            c.check(name, ours, theirs, abs(ours - theirs) <= bound + 1e-12)
        else:
            c.exact(name, ours, theirs)
    bins = numeric["histogram"]
    c.check("histogram total", sum(b["count"] for b in bins), len(values), sum(b["count"] for b in bins) == len(values))
    if "histogram" in approximate:
        return
    if values.min() == values.max():
        c.check("histogram bins", len(bins), 1, len(bins) == 1 and bins[0]["lower"] == values.min())
        return
    counts, edges = np.histogram(values, bins=20)
    c.check("histogram counts", [b["count"] for b in bins], counts.tolist(), [b["count"] for b in bins] == counts.tolist())
    ours_edges = [b["lower"] for b in bins] + [bins[-1]["upper"]]
    c.check("histogram edges", ours_edges[:3], edges[:3].tolist(), all(close(a, b) for a, b in zip(ours_edges, edges)))


def compare_top(c: Column, series: pd.Series, boolean: bool) -> None:
    non_null = series.dropna()
    if boolean:
        non_null = non_null.map(lambda v: "true" if v else "false")
    counts = non_null.astype(str).value_counts()
    top = c.stats["top_values"]
    listed = sum(v["count"] for v in top["values"])
    c.check("top values total", listed + top["other_count"], len(non_null), listed + top["other_count"] == len(non_null))
    if "top_values" in c.stats["approximate"]:
        return
    for v in top["values"]:
        theirs = int(counts.get(v["value"], 0))
        c.check(f"count of {v['value']!r}", v["count"], theirs, v["count"] == theirs)
        c.exact(f"share of {v['value']!r}", v["share"], theirs / len(non_null))
    # The listed values are the most frequent ones (ties at the cut may pick either).
    expected = counts.iloc[: len(top["values"])].to_list()
    c.check("top counts", [v["count"] for v in top["values"]], expected, [v["count"] for v in top["values"]] == expected)
    rest = len(non_null) - sum(expected)
    c.check("other_count", top["other_count"], rest, top["other_count"] == rest)


def rfc3339(ts: pd.Timestamp) -> str:
    return ts.tz_convert("UTC").floor("s").strftime("%Y-%m-%dT%H:%M:%SZ")


def compare_column(table: str, stats: dict, series: pd.Series) -> Column:
    c = Column(table, stats)
    kind = stats["kind"]
    c.check("rows", stats["rows"], len(series), stats["rows"] == len(series))
    nulls = int(series.isna().sum())
    c.check("null_count", stats["null_count"], nulls, stats["null_count"] == nulls)
    c.exact("null_rate", stats["null_rate"], nulls / len(series) if len(series) else 0.0)
    if kind != "other":
        theirs = int(series.nunique())
        if "distinct" in stats["approximate"]:
            ok = abs(stats["distinct"] - theirs) <= DISTINCT_BOUND * theirs
            c.check("distinct (approximate)", stats["distinct"], theirs, ok)
        else:
            c.check("distinct", stats["distinct"], theirs, stats["distinct"] == theirs)
    if kind == "numeric":
        compare_numeric(c, series)
    elif kind in ("string", "boolean"):
        compare_top(c, series, kind == "boolean")
    elif kind == "timestamp":
        present = series.dropna()
        if len(present):
            ours = stats["timestamps"]
            c.check("timestamp min", ours["min"], rfc3339(present.min()), ours["min"] == rfc3339(present.min()))
            c.check("timestamp max", ours["max"], rfc3339(present.max()), ours["max"] == rfc3339(present.max()))
    return c


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--data-dir", default="feature_store")
    parser.add_argument("--token")
    args = parser.parse_args()
    root, url = pathlib.Path(args.data_dir), args.url.rstrip("/")

    listing = get(f"{url}/features", args.token)
    results = []
    for group, tables in sorted(listing["groups"].items()):
        for table in tables:
            name = table["name"]
            served = get(f"{url}/features/{group}/{name}/stats", args.token)
            frame = read_table(root, group, name)
            for stats in served["columns"]:
                if stats["name"] not in frame.columns:
                    c = Column(f"{group}/{name}", stats)
                    c.check("column present in the file", stats["name"], None, False)
                else:
                    c = compare_column(f"{group}/{name}", stats, frame[stats["name"]])
                results.append(c)

    print(f"{'table':<36} {'column':<24} {'kind':<10} {'approximate':<28} {'checked':>7}  result")
    for c in results:
        approx = ",".join(c.stats["approximate"]) or "-"
        verdict = "ok" if not c.failures else f"{len(c.failures)} MISMATCH"
        print(f"{c.table:<36} {c.stats['name']:<24} {c.stats['kind']:<10} {approx:<28} {c.checked:>7}  {verdict}")
        for failure in c.failures:
            print(f"    {failure}")
    failed = sum(1 for c in results if c.failures)
    checked = sum(c.checked for c in results)
    print(f"\n{len(results)} columns, {checked} figures checked, {failed} columns with a mismatch")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
