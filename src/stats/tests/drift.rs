//! Drift: identical versions do not move, shifted ones do.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};

use super::{Rng, batch};
use crate::stats::*;

fn normal(seed: u64, shift: f64) -> VersionStats {
    let mut rng = Rng::new(seed);
    let values: Vec<f64> = (0..20_000)
        .map(|_| rng.normal() * 10.0 + 100.0 + shift)
        .collect();
    VersionStats::compute(&[batch(vec![(
        "x",
        Arc::new(Float64Array::from(values)) as ArrayRef,
    )])])
}

fn mix(seed: u64, share_of_a: f64) -> VersionStats {
    let mut rng = Rng::new(seed);
    let words: Vec<&str> = (0..10_000)
        .map(|_| if rng.unit() < share_of_a { "a" } else { "b" })
        .collect();
    VersionStats::compute(&[batch(vec![(
        "kind",
        Arc::new(StringArray::from(words)) as ArrayRef,
    )])])
}

fn only(drift: &[ColumnDrift]) -> &ColumnDrift {
    assert_eq!(drift.len(), 1);
    &drift[0]
}

#[test]
fn identical_versions_have_zero_psi() {
    for stats in [normal(1, 0.0), mix(1, 0.7)] {
        let d = only(&drift(&stats, &stats, 0.2)).clone();
        assert_eq!(d.status, DriftStatus::Compared);
        assert!(d.psi.expect("a psi") < 1e-9);
        assert!(!d.over_threshold);
        assert_eq!(d.null_rate_change, Some(0.0));
    }
}

#[test]
fn a_resample_of_the_same_distribution_stays_under_the_threshold() {
    let d = only(&drift(&normal(1, 0.0), &normal(2, 0.0), 0.2)).clone();
    assert!(d.psi.expect("a psi") < 0.05, "{d:?}");
    let d = only(&drift(&mix(1, 0.7), &mix(2, 0.7), 0.2)).clone();
    assert!(d.psi.expect("a psi") < 0.01, "{d:?}");
}

#[test]
fn a_shifted_numeric_column_is_over_the_threshold_both_ways() {
    let (before, after) = (normal(1, 0.0), normal(2, 10.0));
    let forward = only(&drift(&before, &after, 0.2)).clone();
    let backward = only(&drift(&after, &before, 0.2)).clone();
    let (f, b) = (forward.psi.expect("a psi"), backward.psi.expect("a psi"));
    assert!(f > 0.5 && b > 0.5, "{f} {b}");
    assert!(forward.over_threshold && backward.over_threshold);
    // PSI is symmetric in the shares; the bins differ by direction, so roughly.
    assert!(f / b < 2.0 && b / f < 2.0, "{f} {b}");
    assert!((forward.mean_change.expect("a mean change") - 10.0).abs() < 0.5);
}

#[test]
fn a_changed_category_mix_is_over_the_threshold() {
    let d = only(&drift(&mix(1, 0.8), &mix(2, 0.2), 0.2)).clone();
    assert!(d.psi.expect("a psi") > 1.0, "{d:?}");
    assert!(d.over_threshold);
}

#[test]
fn a_merged_version_is_compared_through_its_sketch() {
    let mut rng = Rng::new(4);
    let values: Vec<f64> = (0..20_000).map(|_| rng.normal() * 10.0 + 100.0).collect();
    let part = |r: std::ops::Range<usize>| {
        VersionStats::compute(&[batch(vec![(
            "x",
            Arc::new(Float64Array::from(values[r].to_vec())) as ArrayRef,
        )])])
    };
    let merged = part(0..15_000).merge(&part(15_000..20_000));
    let d = only(&drift(&normal(1, 0.0), &merged, 0.2)).clone();
    assert!(d.psi.expect("a psi") < 0.05, "{d:?}");
}

#[test]
fn added_removed_and_retyped_columns_are_not_compared() {
    let from = VersionStats::compute(&[batch(vec![
        ("kept", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef),
        ("dropped", Arc::new(Int64Array::from(vec![1, 2]))),
        ("retyped", Arc::new(Int64Array::from(vec![1, 2]))),
    ])]);
    let to = VersionStats::compute(&[batch(vec![
        ("kept", Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef),
        ("retyped", Arc::new(StringArray::from(vec!["1", "2"]))),
        ("added", Arc::new(StringArray::from(vec!["x", "y"]))),
    ])]);
    let d = drift(&from, &to, 0.2);
    let statuses: Vec<(&str, DriftStatus)> =
        d.iter().map(|c| (c.name.as_str(), c.status)).collect();
    assert_eq!(
        statuses,
        [
            ("kept", DriftStatus::Compared),
            ("dropped", DriftStatus::Removed),
            ("retyped", DriftStatus::Incomparable),
            ("added", DriftStatus::Added),
        ]
    );
    assert!(d[1..].iter().all(|c| c.psi.is_none() && !c.over_threshold));
    assert_eq!((d[3].null_rate_from, d[3].null_rate_to), (None, Some(0.0)));
}
