//! Merging a version's column statistics with an appended part's.
//!
//! Exact after a merge: rows, nulls, min, max, mean and std (Chan's parallel formula), the
//! timestamp range; distinct while both sides kept their keys; top values while both sides
//! kept every value's count. Estimated (and named in `approximate`): percentiles (from the
//! quantile sketch, within 0.78 % relative), the histogram when the two sides' bins differ
//! (re-binned, see [`rebin`]), distinct above the stored keys (HyperLogLog, within 5 %), top
//! values above the stored counts (Misra-Gries lower bounds).

use super::column::{ColumnState, rate, saturate, saturated, timestamp_stats};
use super::figures::{ColumnKind, ColumnStats, HistogramBin, NumericStats, Percentiles};
use super::numeric::{BINS, Binning, Moments, QUANTILES};
use super::quantile::QuantileSketch;

/// One side of a merge: a column's figures and state, or `None` when the side lacks it.
pub(crate) type Side<'a> = Option<(&'a ColumnStats, &'a ColumnState)>;

/// The merged column of `earlier` (with `earlier_rows` rows) followed by `appended` (with
/// `appended_rows`): a side without the column, or with only nulls of no type, counts as null
/// rows. A column whose type changed restarts from the appended side: the earlier rows count as
/// null and every figure that applies is flagged approximate.
pub(crate) fn merge_column(
    earlier: Side<'_>,
    earlier_rows: u64,
    appended: Side<'_>,
    appended_rows: u64,
) -> (ColumnStats, ColumnState) {
    let rows = earlier_rows + appended_rows;
    match (typed(earlier), typed(appended)) {
        (Some(a), Some(b)) if a.0.dtype == b.0.dtype && a.0.kind == b.0.kind => both(a, b),
        (Some(_), Some(b)) => {
            let (mut stats, state) = padded(b, rows);
            stats.approximate = flagged_all(stats.kind);
            (stats, state)
        }
        (Some(only), None) | (None, Some(only)) => padded(only, rows),
        // Nulls on both sides (or a column neither side has, which callers never ask for).
        (None, None) => match earlier.or(appended) {
            Some(only) => padded(only, rows),
            None => (untyped(rows), ColumnState::default()),
        },
    }
}

/// The side, unless its column is nulls of no type.
fn typed(side: Side<'_>) -> Side<'_> {
    side.filter(|(s, _)| !all_null_untyped(s))
}

fn untyped(rows: u64) -> ColumnStats {
    ColumnStats {
        name: String::new(),
        dtype: "null".into(),
        kind: ColumnKind::Other,
        rows,
        null_count: rows,
        null_rate: rate(rows, rows),
        distinct: 0,
        numeric: None,
        top_values: None,
        timestamps: None,
        approximate: Vec::new(),
    }
}

/// A column of no kind holding only nulls (an all-null column typed Null): merging it is
/// merging nulls.
pub(crate) fn all_null_untyped(stats: &ColumnStats) -> bool {
    stats.kind == ColumnKind::Other && stats.null_count == stats.rows
}

fn flagged_all(kind: ColumnKind) -> Vec<String> {
    let names: &[&str] = match kind {
        ColumnKind::Numeric => &["distinct", "percentiles", "histogram"],
        ColumnKind::String | ColumnKind::Boolean => &["distinct", "top_values"],
        ColumnKind::Timestamp => &["distinct"],
        ColumnKind::Other => &[],
    };
    names.iter().map(|n| (*n).to_owned()).collect()
}

/// One side's column with `rows` rows in all, the others null.
fn padded((stats, state): (&ColumnStats, &ColumnState), rows: u64) -> (ColumnStats, ColumnState) {
    let mut stats = stats.clone();
    stats.null_count += rows.saturating_sub(stats.rows);
    stats.rows = rows;
    // Top-value shares are over non-null values, which did not change.
    stats.null_rate = rate(stats.null_count, rows);
    (stats, state.clone())
}

fn both(
    (a, sa): (&ColumnStats, &ColumnState),
    (b, sb): (&ColumnStats, &ColumnState),
) -> (ColumnStats, ColumnState) {
    let rows = a.rows + b.rows;
    let null_count = a.null_count + b.null_count;
    let mut approximate: Vec<String> = Vec::new();
    let mut state = ColumnState::default();
    let mut stats = ColumnStats {
        name: a.name.clone(),
        dtype: a.dtype.clone(),
        kind: a.kind,
        rows,
        null_count,
        null_rate: rate(null_count, rows),
        distinct: 0,
        numeric: None,
        top_values: None,
        timestamps: None,
        approximate: Vec::new(),
    };
    // Flags a side carried stay: an estimate merged with anything is an estimate.
    let carried = |name: &str| {
        a.approximate
            .iter()
            .chain(&b.approximate)
            .any(|n| n == name)
    };

    match (&sa.distinct, &sb.distinct) {
        (Some(da), Some(db)) => {
            let (merged, count, exact) = da.merge(db);
            stats.distinct = count;
            if !exact || carried("distinct") {
                approximate.push("distinct".into());
            }
            state.distinct = Some(merged);
        }
        _ => stats.distinct = a.distinct.max(b.distinct),
    }

    match a.kind {
        ColumnKind::Numeric => {
            let (numeric, approx) = merge_numeric(a, sa, b, sb, &mut state);
            stats.numeric = numeric.map(saturated);
            approximate.extend(approx.iter().map(|s| (*s).to_owned()));
            for flag in ["percentiles", "histogram"] {
                if carried(flag) && !approximate.iter().any(|n| n == flag) {
                    approximate.push(flag.into());
                }
            }
        }
        ColumnKind::String | ColumnKind::Boolean => {
            if let (Some(fa), Some(fb)) = (&sa.frequent, &sb.frequent) {
                let merged = fa.merge(fb);
                stats.top_values = Some(merged.top(rows - null_count));
                if !merged.is_complete() || carried("top_values") {
                    approximate.push("top_values".into());
                }
                state.frequent = Some(merged);
            }
        }
        ColumnKind::Timestamp => {
            let range = match (sa.instants, sb.instants) {
                (Some((a0, a1)), Some((b0, b1))) => Some((a0.min(b0), a1.max(b1))),
                (one, other) => one.or(other),
            };
            stats.timestamps = range.map(|(lo, hi)| timestamp_stats(lo, hi));
            state.instants = range;
        }
        ColumnKind::Other => {}
    }
    // Stable order: the order figures are listed in `ColumnStats`' documentation.
    approximate.sort_by_key(|n| {
        ["distinct", "percentiles", "histogram", "top_values"]
            .iter()
            .position(|k| k == n)
    });
    approximate.dedup();
    stats.approximate = approximate;
    (stats, state)
}

/// Numeric figures of both sides, and the names of those that became estimates.
fn merge_numeric(
    a: &ColumnStats,
    sa: &ColumnState,
    b: &ColumnStats,
    sb: &ColumnState,
    state: &mut ColumnState,
) -> (Option<NumericStats>, Vec<&'static str>) {
    let (ma, mb) = (moments_of(a, sa), moments_of(b, sb));
    let merged = ma.merge(&mb);
    let moments = Moments {
        mean: saturate(merged.mean),
        m2: saturate(merged.m2),
        ..merged
    };
    state.moments = Some(moments);
    state.quantiles = match (&sa.quantiles, &sb.quantiles) {
        (Some(qa), Some(qb)) => Some(qa.merge(qb)),
        (one, other) => one.clone().or_else(|| other.clone()),
    };
    let (na, nb) = match (&a.numeric, &b.numeric) {
        (Some(na), None) => return (Some(na.clone()), Vec::new()),
        (None, Some(nb)) => return (Some(nb.clone()), Vec::new()),
        (None, None) => return (None, Vec::new()),
        (Some(na), Some(nb)) => (na, nb),
    };
    let (min, max) = (na.min.min(nb.min), na.max.max(nb.max));
    let sketch = state.quantiles.clone().unwrap_or_default();
    let (histogram, histogram_exact) = merge_histograms(&na.histogram, &nb.histogram, min, max);
    let mut approx = vec!["percentiles"];
    if !histogram_exact {
        approx.push("histogram");
    }
    let stats = NumericStats {
        min,
        max,
        mean: moments.mean,
        std: moments.std(),
        percentiles: sketched_percentiles(&sketch, min, max),
        histogram,
    };
    (Some(stats), approx)
}

/// A side's moments: stored, or (statistics stored without state) recovered from its
/// figures, exact to rounding.
fn moments_of(stats: &ColumnStats, state: &ColumnState) -> Moments {
    state.moments.unwrap_or_else(|| {
        let n = stats.rows - stats.null_count;
        match &stats.numeric {
            Some(numeric) => Moments {
                n,
                mean: numeric.mean,
                m2: numeric.std * numeric.std * n.saturating_sub(1) as f64,
            },
            None => Moments {
                n: 0,
                mean: 0.0,
                m2: 0.0,
            },
        }
    })
}

fn sketched_percentiles(sketch: &QuantileSketch, min: f64, max: f64) -> Percentiles {
    let q = |i: usize| sketch.quantile(QUANTILES[i], min, max);
    Percentiles {
        p1: q(0),
        p5: q(1),
        p25: q(2),
        p50: q(3),
        p75: q(4),
        p95: q(5),
        p99: q(6),
    }
}

/// Both histograms over the merged range `min..=max`: counts added bin by bin when both sides
/// have the same edges (exact), else re-binned (see [`rebin`]).
fn merge_histograms(
    a: &[HistogramBin],
    b: &[HistogramBin],
    min: f64,
    max: f64,
) -> (Vec<HistogramBin>, bool) {
    let same_edges = a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.lower == y.lower && x.upper == y.upper);
    if same_edges {
        let bins = a
            .iter()
            .zip(b)
            .map(|(x, y)| HistogramBin {
                lower: x.lower,
                upper: x.upper,
                count: x.count + y.count,
            })
            .collect();
        return (bins, true);
    }
    let Some(binning) = Binning::new(min, max) else {
        let count = a.iter().chain(b).map(|bin| bin.count).sum();
        let bins = vec![HistogramBin {
            lower: min,
            upper: max,
            count,
        }];
        return (bins, true);
    };
    let mut counts = [0u64; BINS];
    for bin in a.iter().chain(b) {
        rebin(bin, &binning, &mut counts);
    }
    (binning.bins(&counts), false)
}

/// Spreads one source bin's count over the target bins it overlaps, in proportion to the
/// overlap (values assumed uniform within a bin), rounding by largest remainder so the total
/// is kept. A zero-width bin (all values equal) goes whole to the bin holding its value.
pub(crate) fn rebin(bin: &HistogramBin, target: &Binning, counts: &mut [u64; BINS]) {
    if bin.count == 0 {
        return;
    }
    let width = bin.upper - bin.lower;
    if width.is_nan() || width <= 0.0 {
        let x = bin.lower;
        counts[target.bin(x, x - target.edge(0))] += bin.count;
        return;
    }
    let mut shares = [0f64; BINS];
    for (i, share) in shares.iter_mut().enumerate() {
        let overlap = bin.upper.min(target.edge(i + 1)) - bin.lower.max(target.edge(i));
        if overlap > 0.0 {
            *share = overlap / width * bin.count as f64;
        }
    }
    let mut given = 0u64;
    let mut remainders: Vec<(usize, f64)> = Vec::new();
    for (i, &share) in shares.iter().enumerate() {
        let whole = share.floor() as u64;
        counts[i] += whole;
        given += whole;
        if share > 0.0 {
            remainders.push((i, share - share.floor()));
        }
    }
    remainders.sort_by(|x, y| y.1.total_cmp(&x.1));
    for (i, _) in remainders.iter().cycle().take((bin.count - given) as usize) {
        counts[*i] += 1;
    }
}
