//! One column's figures and mergeable state, computed in one pass over its arrays.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit, TimestampMicrosecondType};
use serde::{Deserialize, Serialize};

use super::distinct::{DistinctCounter, DistinctState, string_key};
use super::figures::{ColumnKind, ColumnStats, NumericStats, TimestampStats};
use super::frequent::{Counter, FrequentState};
use super::numeric::{self, Moments, Values};
use super::quantile::QuantileSketch;

/// What merges a column's figures with another part's: kept beside the figures, never served.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub(crate) struct ColumnState {
    /// Distinct values (exact keys or a sketch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) distinct: Option<DistinctState>,
    /// Count, mean, squared deviations (numeric columns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) moments: Option<Moments>,
    /// Percentile sketch (numeric columns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) quantiles: Option<QuantileSketch>,
    /// Value counts (string and boolean columns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) frequent: Option<FrequentState>,
    /// Oldest and newest instants, microseconds since the epoch (timestamp columns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) instants: Option<(i64, i64)>,
}

/// The kind of figures a column of `data_type` gets.
pub(crate) fn kind_of(data_type: &DataType) -> ColumnKind {
    match data_type {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64
        | DataType::Float16
        | DataType::Float32
        | DataType::Float64 => ColumnKind::Numeric,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ColumnKind::String,
        DataType::Boolean => ColumnKind::Boolean,
        DataType::Timestamp(_, _) => ColumnKind::Timestamp,
        DataType::Dictionary(_, value) => kind_of(value),
        _ => ColumnKind::Other,
    }
}

/// The arrays as `to`, or `None` when a cast fails (the column then gets counts only).
fn cast_all(arrays: &[&ArrayRef], to: &DataType) -> Option<Vec<ArrayRef>> {
    arrays
        .iter()
        .map(|a| {
            if a.data_type() == to {
                Some((*a).clone())
            } else {
                cast(a, to).ok()
            }
        })
        .collect()
}

/// Figures and state of one column whose arrays (one per batch) are `arrays`.
pub(crate) fn compute(
    name: &str,
    data_type: &DataType,
    arrays: &[&ArrayRef],
) -> (ColumnStats, ColumnState) {
    let rows: u64 = arrays.iter().map(|a| a.len() as u64).sum();
    let nulls: u64 = arrays.iter().map(|a| a.logical_null_count() as u64).sum();
    let mut stats = ColumnStats {
        name: name.to_owned(),
        dtype: crate::storage::dtype_name(data_type),
        kind: kind_of(data_type),
        rows,
        null_count: nulls,
        null_rate: 0.0,
        distinct: 0,
        numeric: None,
        top_values: None,
        timestamps: None,
        approximate: Vec::new(),
    };
    let mut state = ColumnState::default();
    let done = match stats.kind {
        ColumnKind::Numeric => numeric_column(data_type, arrays, &mut stats, &mut state),
        ColumnKind::String => string_column(arrays, &mut stats, &mut state),
        ColumnKind::Boolean => boolean_column(arrays, &mut stats, &mut state),
        ColumnKind::Timestamp => timestamp_column(arrays, &mut stats, &mut state),
        ColumnKind::Other => Some(()),
    };
    if done.is_none() {
        // A type the kernels could not read as its kind: counts only, never a failed write.
        stats.kind = ColumnKind::Other;
        stats.null_count = nulls;
        state = ColumnState::default();
    }
    stats.null_rate = rate(stats.null_count, rows);
    (stats, state)
}

/// `part / whole`, 0 for an empty whole.
pub(crate) fn rate(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn numeric_column(
    data_type: &DataType,
    arrays: &[&ArrayRef],
    stats: &mut ColumnStats,
    state: &mut ColumnState,
) -> Option<()> {
    let integer = matches!(
        data_type,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
    ) || matches!(data_type, DataType::Dictionary(_, v) if matches!(**v, DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64));
    let mut values = if integer {
        let arrays = cast_all(arrays, &DataType::Int64)?;
        let mut v = Vec::with_capacity(arrays.iter().map(|a| a.len() - a.null_count()).sum());
        for a in &arrays {
            let a = a.as_primitive::<Int64Type>();
            if a.null_count() == 0 {
                v.extend_from_slice(a.values());
            } else {
                v.extend(a.iter().flatten());
            }
        }
        Values::Ints(v)
    } else {
        let arrays = cast_all(arrays, &DataType::Float64)?;
        let mut v = Vec::with_capacity(arrays.iter().map(|a| a.len()).sum());
        for a in &arrays {
            let a = a.as_primitive::<Float64Type>();
            // NaN counts as null, as in pandas; so do infinities, which no figure (nor JSON)
            // can carry.
            if a.null_count() == 0 {
                v.extend(a.values().iter().copied().filter(|x| x.is_finite()));
            } else {
                v.extend(a.iter().flatten().filter(|x| x.is_finite()));
            }
        }
        Values::Floats(v)
    };
    stats.null_count = stats.rows - values.len() as u64;
    if values.len() == 0 {
        state.moments = Some(Moments {
            n: 0,
            mean: 0.0,
            m2: 0.0,
        });
        state.quantiles = Some(QuantileSketch::default());
        state.distinct = Some(DistinctState::Exact(Vec::new()));
        return Some(());
    }
    let exact = numeric::exact(&mut values);
    stats.numeric = Some(saturated(exact.stats));
    stats.distinct = exact.distinct;
    if !exact.distinct_exact {
        stats.approximate.push("distinct".into());
    }
    state.moments = Some(Moments {
        mean: saturate(exact.moments.mean),
        m2: saturate(exact.moments.m2),
        ..exact.moments
    });
    state.quantiles = Some(exact.sketch);
    state.distinct = Some(exact.distinct_state);
    Some(())
}

/// A figure JSON can carry: values near the float range's ends can overflow on the way (a
/// squared deviation, a difference), and then saturate at the largest float.
pub(crate) fn saturate(x: f64) -> f64 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(f64::MIN, f64::MAX)
    }
}

/// `numeric` with every figure saturated.
pub(crate) fn saturated(mut numeric: NumericStats) -> NumericStats {
    let p = &mut numeric.percentiles;
    for x in [
        &mut numeric.mean,
        &mut numeric.std,
        &mut p.p1,
        &mut p.p5,
        &mut p.p25,
        &mut p.p50,
        &mut p.p75,
        &mut p.p95,
        &mut p.p99,
    ] {
        *x = saturate(*x);
    }
    numeric
}

fn string_column(
    arrays: &[&ArrayRef],
    stats: &mut ColumnStats,
    state: &mut ColumnState,
) -> Option<()> {
    let arrays = cast_all(arrays, &DataType::Utf8)?;
    let mut counter = Counter::new();
    for a in &arrays {
        let a = a.as_string::<i32>();
        if a.null_count() == 0 {
            (0..a.len()).for_each(|i| counter.add(a.value(i)));
        } else {
            a.iter().flatten().for_each(|v| counter.add(v));
        }
    }
    let finished = counter.finish();
    let non_null = stats.rows - stats.null_count;
    stats.top_values = Some(finished.frequencies.top(non_null));
    stats.distinct = finished.distinct;
    if !finished.exact {
        stats.approximate.push("distinct".into());
        stats.approximate.push("top_values".into());
    }
    state.distinct = Some(finished.distinct_state);
    state.frequent = Some(finished.frequencies.stored());
    Some(())
}

fn boolean_column(
    arrays: &[&ArrayRef],
    stats: &mut ColumnStats,
    state: &mut ColumnState,
) -> Option<()> {
    let (mut trues, mut falses) = (0u64, 0u64);
    for a in arrays {
        let a = a.as_boolean_opt()?;
        let t = a.true_count() as u64;
        trues += t;
        falses += (a.len() - a.null_count()) as u64 - t;
    }
    let mut counts = Vec::new();
    if trues > 0 {
        counts.push(("true".to_owned(), trues));
    }
    if falses > 0 {
        counts.push(("false".to_owned(), falses));
    }
    let frequent = FrequentState::complete(counts);
    stats.distinct = frequent.values().len() as u64;
    stats.top_values = Some(frequent.top(trues + falses));
    state.distinct = Some(DistinctState::from_keys(
        frequent
            .values()
            .iter()
            .map(|(v, _)| string_key(v))
            .collect::<Vec<_>>()
            .into_iter(),
    ));
    state.frequent = Some(frequent);
    Some(())
}

fn timestamp_column(
    arrays: &[&ArrayRef],
    stats: &mut ColumnStats,
    state: &mut ColumnState,
) -> Option<()> {
    let arrays: Vec<ArrayRef> = arrays
        .iter()
        .map(|a| match a.data_type() {
            DataType::Timestamp(TimeUnit::Microsecond, _) => Some((*a).clone()),
            // The same instants in microseconds: the zone is kept, so nothing shifts.
            DataType::Timestamp(_, tz) => {
                cast(a, &DataType::Timestamp(TimeUnit::Microsecond, tz.clone())).ok()
            }
            _ => None,
        })
        .collect::<Option<_>>()?;
    let mut distinct = DistinctCounter::new();
    let (mut min, mut max) = (i64::MAX, i64::MIN);
    for a in &arrays {
        let a = a.as_primitive_opt::<TimestampMicrosecondType>()?;
        let mut add = |v: i64| {
            min = min.min(v);
            max = max.max(v);
            distinct.add(v as u64);
        };
        if a.null_count() == 0 {
            a.values().iter().for_each(|&v| add(v));
        } else {
            a.iter().flatten().for_each(add);
        }
    }
    let (count, exact, distinct_state) = distinct.finish();
    stats.distinct = count;
    if !exact {
        stats.approximate.push("distinct".into());
    }
    state.distinct = Some(distinct_state);
    if min <= max {
        stats.timestamps = Some(timestamp_stats(min, max));
        state.instants = Some((min, max));
    }
    Some(())
}

/// The served range of instants `min..=max` (microseconds since the epoch).
pub(crate) fn timestamp_stats(min: i64, max: i64) -> TimestampStats {
    TimestampStats {
        min: instant(min),
        max: instant(max),
        newest_age_seconds: None,
    }
}

fn instant(micros: i64) -> String {
    use std::time::{Duration, UNIX_EPOCH};
    let offset = Duration::from_micros(micros.unsigned_abs());
    let time = if micros >= 0 {
        UNIX_EPOCH.checked_add(offset)
    } else {
        UNIX_EPOCH.checked_sub(offset)
    };
    time.map(crate::storage::rfc3339).unwrap_or_default()
}
