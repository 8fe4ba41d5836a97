//! Merges of parts against computing the concatenation: every exact figure equal, every
//! estimate flagged and within its documented bound.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, NullArray, StringArray,
    TimestampMicrosecondArray,
};
use arrow::record_batch::RecordBatch;

use super::{Rng, batch, close, column};
use crate::stats::*;

/// Relative error documented for sketched percentiles.
const PERCENTILE_ERROR: f64 = 0.0078;

/// Relative error documented for sketched distinct counts.
const DISTINCT_ERROR: f64 = 0.05;

/// A table with every kind of column, nulls and NaN included; `wide` ints have more distinct
/// values than the stored state keeps.
fn table(rows: usize, seed: u64) -> RecordBatch {
    let mut rng = Rng::new(seed);
    let mut ints = Vec::new();
    let mut wide = Vec::new();
    let mut floats = Vec::new();
    let mut words = Vec::new();
    let mut flags = Vec::new();
    let mut times = Vec::new();
    for _ in 0..rows {
        ints.push((rng.unit() > 0.1).then(|| rng.range(1, 300)));
        wide.push(rng.range(1, 1 << 40));
        floats.push(match rng.range(0, 20) {
            0 => None,
            1 => Some(f64::NAN),
            _ => Some(rng.normal() * 50.0 + 10.0),
        });
        words.push((rng.unit() > 0.05).then(|| format!("w{}", rng.range(0, 40))));
        flags.push((rng.unit() > 0.2).then(|| rng.unit() > 0.3));
        times.push(Some(1_700_000_000_000_000 + rng.range(0, 1 << 36)));
    }
    batch(vec![
        ("ints", Arc::new(Int64Array::from(ints)) as ArrayRef),
        ("wide", Arc::new(Int64Array::from(wide))),
        ("floats", Arc::new(Float64Array::from(floats))),
        ("words", Arc::new(StringArray::from(words))),
        ("flags", Arc::new(BooleanArray::from(flags))),
        (
            "times",
            Arc::new(TimestampMicrosecondArray::from(times).with_timezone("UTC")),
        ),
    ])
}

fn assert_merge_matches(whole: &VersionStats, merged: &VersionStats) {
    assert_eq!(merged.rows(), whole.rows());
    assert_eq!(merged.columns().len(), whole.columns().len());
    for (m, w) in merged.columns().iter().zip(whole.columns()) {
        let what = &w.name;
        assert_eq!((&m.name, &m.dtype, m.kind), (&w.name, &w.dtype, w.kind));
        assert_eq!((m.rows, m.null_count), (w.rows, w.null_count), "{what}");
        assert!(close(m.null_rate, w.null_rate), "{what}");
        if m.approximate.iter().any(|a| a == "distinct") {
            let error = (m.distinct as f64 - w.distinct as f64).abs() / w.distinct as f64;
            assert!(
                error <= DISTINCT_ERROR,
                "{what}: {} vs {}",
                m.distinct,
                w.distinct
            );
        } else {
            assert_eq!(m.distinct, w.distinct, "{what}");
        }
        assert_eq!(m.timestamps, w.timestamps, "{what}");
        if m.approximate.iter().any(|a| a == "top_values") {
            let total =
                |t: &TopValues| t.values.iter().map(|v| v.count).sum::<u64>() + t.other_count;
            assert_eq!(
                total(m.top_values.as_ref().expect("top")),
                total(w.top_values.as_ref().expect("top"))
            );
        } else {
            assert_eq!(m.top_values, w.top_values, "{what}");
        }
        let (Some(mn), Some(wn)) = (&m.numeric, &w.numeric) else {
            assert_eq!(m.numeric, w.numeric, "{what}");
            continue;
        };
        assert_eq!((mn.min, mn.max), (wn.min, wn.max), "{what}");
        assert!(
            (mn.mean - wn.mean).abs() <= 1e-9 * wn.mean.abs().max(1.0),
            "{what} mean"
        );
        assert!(
            (mn.std - wn.std).abs() <= 1e-9 * wn.std.max(1.0),
            "{what} std"
        );
        let pm = [
            mn.percentiles.p1,
            mn.percentiles.p5,
            mn.percentiles.p25,
            mn.percentiles.p50,
            mn.percentiles.p75,
            mn.percentiles.p95,
            mn.percentiles.p99,
        ];
        let pw = [
            wn.percentiles.p1,
            wn.percentiles.p5,
            wn.percentiles.p25,
            wn.percentiles.p50,
            wn.percentiles.p75,
            wn.percentiles.p95,
            wn.percentiles.p99,
        ];
        if m.approximate.iter().any(|a| a == "percentiles") {
            // The bound holds per rank; a percentile interpolates between two neighbouring
            // ranks, so it is within the bound of the larger of them in magnitude.
            let scale = wn.min.abs().max(wn.max.abs());
            for (a, b) in pm.iter().zip(pw) {
                let tolerance = if wn.min >= 0.0 {
                    PERCENTILE_ERROR * b.abs()
                } else {
                    PERCENTILE_ERROR * scale
                };
                assert!((a - b).abs() <= tolerance + 1e-9, "{what}: {a} vs {b}");
            }
        } else {
            assert_eq!(pm, pw, "{what}");
        }
        let total = |h: &[HistogramBin]| h.iter().map(|b| b.count).sum::<u64>();
        assert_eq!(total(&mn.histogram), total(&wn.histogram), "{what}");
        assert_eq!(mn.histogram.len(), wn.histogram.len(), "{what}");
        if !m.approximate.iter().any(|a| a == "histogram") {
            assert_eq!(mn.histogram, wn.histogram, "{what}");
        }
    }
}

#[test]
fn merging_parts_gives_the_figures_of_the_whole_at_random_splits() {
    let rows = 4_000;
    let whole_batch = table(rows, 7);
    let whole = VersionStats::compute(std::slice::from_ref(&whole_batch));
    let mut rng = Rng::new(99);
    let mut splits = vec![0, 1, rows - 1, rows];
    splits.extend((0..6).map(|_| rng.range(0, rows as i64) as usize));
    for split in splits {
        let head = VersionStats::compute(&[whole_batch.slice(0, split)]);
        let tail = VersionStats::compute(&[whole_batch.slice(split, rows - split)]);
        assert_merge_matches(&whole, &head.merge(&tail));
    }
    // Three parts, merged left to right, through a stored (JSON) round trip each time.
    let (a, b) = (
        rng.range(1, 2_000) as usize,
        rng.range(2_001, 3_999) as usize,
    );
    let mut merged = VersionStats::compute(&[whole_batch.slice(0, a)]);
    for (start, end) in [(a, b), (b, rows)] {
        let stored = serde_json::to_string(&merged).expect("serialises");
        merged = serde_json::from_str::<VersionStats>(&stored).expect("deserialises");
        merged = merged.merge(&VersionStats::compute(&[
            whole_batch.slice(start, end - start)
        ]));
    }
    assert_merge_matches(&whole, &merged);
}

#[test]
fn merged_figures_that_are_estimates_say_so() {
    let whole_batch = table(4_000, 3);
    let merged = VersionStats::compute(&[whole_batch.slice(0, 1_000)])
        .merge(&VersionStats::compute(&[whole_batch.slice(1_000, 3_000)]));
    // Small integers: distinct keys kept, so exact; percentiles sketched; both parts span
    // 1..=300, so their bins coincide and add up exactly.
    assert_eq!(column(&merged, "ints").approximate, ["percentiles"]);
    // Floats: thousands of distinct values, and each part has its own range, so the
    // histogram is re-binned.
    assert_eq!(
        column(&merged, "floats").approximate,
        ["distinct", "percentiles", "histogram"]
    );
    // 4 000 distinct values: more keys than the state keeps.
    assert!(
        column(&merged, "wide")
            .approximate
            .contains(&"distinct".to_owned())
    );
    // 41 words and two booleans: every count kept, exact.
    assert!(column(&merged, "words").approximate.is_empty());
    assert!(column(&merged, "flags").approximate.is_empty());
    assert!(
        column(&merged, "times")
            .approximate
            .contains(&"distinct".to_owned())
    );
}

#[test]
fn a_column_on_one_side_only_counts_as_nulls_on_the_other() {
    let first = VersionStats::compute(&[batch(vec![
        ("a", Arc::new(Int64Array::from(vec![1, 2, 3])) as ArrayRef),
        ("gone", Arc::new(NullArray::new(3))),
    ])]);
    let second = VersionStats::compute(&[batch(vec![
        ("a", Arc::new(Int64Array::from(vec![4, 5])) as ArrayRef),
        ("gone", Arc::new(Int64Array::from(vec![10, 20]))),
        ("new", Arc::new(StringArray::from(vec!["x", "y"]))),
    ])]);
    let merged = first.merge(&second);
    assert_eq!(merged.rows(), 5);
    let names: Vec<&str> = merged.columns().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["a", "gone", "new"]);
    let gone = column(&merged, "gone");
    assert_eq!(
        (gone.kind, gone.rows, gone.null_count, gone.distinct),
        (ColumnKind::Numeric, 5, 3, 2)
    );
    assert!(close(gone.numeric.as_ref().expect("numbers").mean, 15.0));
    let new = column(&merged, "new");
    assert_eq!((new.rows, new.null_count), (5, 3));
    assert!(close(new.null_rate, 0.6));
    let a = column(&merged, "a");
    assert!(close(
        a.numeric.as_ref().expect("numbers").std,
        1.5811388300841898
    ));
}

#[test]
fn a_column_whose_type_changed_restarts_from_the_appended_side_flagged() {
    let first = VersionStats::compute(&[batch(vec![(
        "a",
        Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef,
    )])]);
    let second = VersionStats::compute(&[batch(vec![(
        "a",
        Arc::new(StringArray::from(vec!["x"])) as ArrayRef,
    )])]);
    let merged = first.merge(&second);
    let a = column(&merged, "a");
    assert_eq!(
        (a.kind, a.dtype.as_str(), a.rows, a.null_count),
        (ColumnKind::String, "string", 3, 2)
    );
    assert_eq!(a.approximate, ["distinct", "top_values"]);
}

#[test]
fn a_thousand_rows_appended_to_a_large_version_keep_its_state_small() {
    let big = table(50_000, 5);
    let stats = VersionStats::compute(&[big]);
    let json = serde_json::to_string(&stats).expect("serialises");
    // Six columns, the figures plus the state: tens of KB, whatever the row count.
    assert!(json.len() < 6 * 40_000, "{} bytes", json.len());
    let merged = stats.merge(&VersionStats::compute(&[table(1_000, 6)]));
    assert_eq!(merged.rows(), 51_000);
}
