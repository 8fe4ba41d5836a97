//! The engine's figures against pandas' and numpy's (expected values computed with pandas 3.1
//! and numpy 2.4, hard-coded).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, Int64Array, NullArray, StringArray,
    TimestampMicrosecondArray,
};

use arrow::record_batch::RecordBatch;

use super::{batch, close, column};
use crate::stats::*;

fn percentiles(p: &Percentiles) -> [f64; 7] {
    [p.p1, p.p5, p.p25, p.p50, p.p75, p.p95, p.p99]
}

#[test]
fn percentiles_of_one_to_a_hundred_match_pandas() {
    // pandas: pd.Series(range(1, 101)).quantile([.01, .05, .25, .5, .75, .95, .99])
    let pandas = [1.99, 5.95, 25.75, 50.5, 75.25, 95.05, 99.01];
    for values in [
        Arc::new(Int64Array::from_iter_values(1..=100)) as ArrayRef,
        Arc::new(Int32Array::from_iter_values(1..=100)),
        Arc::new(Float64Array::from_iter_values((1..=100).map(f64::from))),
        // Wide range: the selection path rather than the dense counts.
        Arc::new(Int64Array::from_iter_values(
            (1..=100).map(|x| x * 1_000_000_000),
        )),
    ] {
        let scale = if column(
            &VersionStats::compute(&[batch(vec![("x", values.clone())])]),
            "x",
        )
        .numeric
        .as_ref()
        .map(|n| n.max)
            == Some(1e11)
        {
            1e9
        } else {
            1.0
        };
        let stats = VersionStats::compute(&[batch(vec![("x", values)])]);
        let x = column(&stats, "x");
        let n = x.numeric.as_ref().expect("numeric figures");
        for (got, want) in percentiles(&n.percentiles).iter().zip(pandas) {
            assert!(close(*got, want * scale), "{got} vs {}", want * scale);
        }
        assert!(close(n.mean, 50.5 * scale));
        assert!(close(n.std, 29.011491975882016 * scale));
        assert_eq!(x.distinct, 100);
        assert_eq!(n.histogram.len(), 20);
        assert!(n.histogram.iter().all(|b| b.count == 5));
        assert!(x.approximate.is_empty());
    }
}

#[test]
fn float_figures_match_pandas_and_numpy_with_nan_as_null() {
    let mut values: Vec<Option<f64>> = (0..37).map(|i| Some(0.1 * (i * i) as f64 - 3.7)).collect();
    values.push(Some(f64::NAN));
    values.push(None);
    let stats = VersionStats::compute(&[batch(vec![(
        "x",
        Arc::new(Float64Array::from(values)) as ArrayRef,
    )])]);
    let x = column(&stats, "x");
    assert_eq!((x.rows, x.null_count, x.distinct), (39, 2, 37));
    let n = x.numeric.as_ref().expect("numeric figures");
    let pandas = [
        -3.664,
        -3.3600000000000003,
        4.3999999999999995,
        28.7,
        69.2,
        113.27999999999997,
        123.344,
    ];
    for (got, want) in percentiles(&n.percentiles).iter().zip(pandas) {
        assert!(close(*got, want), "{got} vs {want}");
    }
    assert!(close(n.mean, 40.10000000000001));
    assert!(close(n.std, 40.31254974157138));
    let numpy = [9, 3, 2, 3, 1, 2, 2, 1, 2, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1];
    let counts: Vec<u64> = n.histogram.iter().map(|b| b.count).collect();
    assert_eq!(counts, numpy);
}

#[test]
fn a_column_of_one_value_has_one_bin_and_zero_std() {
    let stats = VersionStats::compute(&[batch(vec![(
        "x",
        Arc::new(Int64Array::from(vec![7, 7, 7])) as ArrayRef,
    )])]);
    let n = column(&stats, "x")
        .numeric
        .clone()
        .expect("numeric figures");
    assert_eq!(n.histogram.len(), 1);
    assert_eq!(
        (
            n.histogram[0].lower,
            n.histogram[0].upper,
            n.histogram[0].count
        ),
        (7.0, 7.0, 3)
    );
    assert_eq!((n.std, n.percentiles.p50), (0.0, 7.0));
}

#[test]
fn strings_booleans_timestamps_and_nulls_get_their_figures() {
    let words: Vec<Option<&str>> = ["b", "a", "b", "c", "b", "a"]
        .into_iter()
        .map(Some)
        .chain([None])
        .collect();
    let stats = VersionStats::compute(&[batch(vec![
        ("word", Arc::new(StringArray::from(words)) as ArrayRef),
        (
            "flag",
            Arc::new(BooleanArray::from(vec![
                Some(true),
                Some(false),
                Some(true),
                None,
                Some(true),
                Some(true),
                Some(false),
            ])),
        ),
        (
            "at",
            Arc::new(
                TimestampMicrosecondArray::from(vec![
                    Some(1_790_000_000_000_000),
                    None,
                    Some(1_700_000_000_500_000),
                    None,
                    None,
                    None,
                    None,
                ])
                .with_timezone("UTC"),
            ),
        ),
        ("nothing", Arc::new(NullArray::new(7))),
    ])]);
    assert_eq!(stats.rows(), 7);
    let word = column(&stats, "word");
    assert_eq!(
        (word.kind, word.null_count, word.distinct),
        (ColumnKind::String, 1, 3)
    );
    let top = word.top_values.as_ref().expect("top values");
    let listed: Vec<(&str, u64)> = top
        .values
        .iter()
        .map(|v| (v.value.as_str(), v.count))
        .collect();
    assert_eq!(listed, [("b", 3), ("a", 2), ("c", 1)]);
    assert!(close(top.values[0].share, 0.5));
    assert_eq!(top.other_count, 0);
    let flag = column(&stats, "flag");
    assert_eq!((flag.kind, flag.distinct), (ColumnKind::Boolean, 2));
    let top = flag.top_values.as_ref().expect("top values");
    assert_eq!(
        (top.values[0].value.as_str(), top.values[0].count),
        ("true", 4)
    );
    let at = column(&stats, "at");
    let range = at.timestamps.as_ref().expect("a range");
    assert_eq!(
        (range.min.as_str(), range.max.as_str()),
        ("2023-11-14T22:13:20Z", "2026-09-21T14:13:20Z")
    );
    assert_eq!(
        (at.kind, at.null_count, at.distinct),
        (ColumnKind::Timestamp, 5, 2)
    );
    let nothing = column(&stats, "nothing");
    assert_eq!(
        (nothing.kind, nothing.null_count, nothing.null_rate),
        (ColumnKind::Other, 7, 1.0)
    );
}

#[test]
fn more_than_ten_values_report_the_rest_as_other() {
    let words: Vec<String> = (0..1000).map(|i| format!("w{}", i % 25)).collect();
    let stats = VersionStats::compute(&[batch(vec![(
        "w",
        Arc::new(StringArray::from_iter_values(words)) as ArrayRef,
    )])]);
    let top = column(&stats, "w").top_values.clone().expect("top values");
    assert_eq!(top.values.len(), 10);
    assert_eq!(top.other_count, 600);
    assert!(close(top.other_share, 0.6));
    assert_eq!(column(&stats, "w").distinct, 25);
}

#[test]
fn infinities_count_as_null_and_extreme_ranges_stay_finite() {
    let values = vec![
        Some(f64::INFINITY),
        Some(-1e308),
        Some(1e308),
        Some(f64::NEG_INFINITY),
        None,
    ];
    let stats = VersionStats::compute(&[batch(vec![(
        "x",
        Arc::new(Float64Array::from(values)) as ArrayRef,
    )])]);
    let x = column(&stats, "x");
    assert_eq!((x.null_count, x.distinct), (3, 2));
    let n = x.numeric.as_ref().expect("numeric figures");
    assert_eq!(n.histogram.len(), 1);
    assert_eq!(
        (n.histogram[0].lower, n.histogram[0].upper),
        (-1e308, 1e308)
    );
    // Everything stored survives JSON, which has no infinities.
    let json = serde_json::to_string(&stats).expect("serialises");
    assert_eq!(
        serde_json::from_str::<VersionStats>(&json).expect("parses"),
        stats
    );
}

#[test]
fn no_batches_and_empty_batches_give_empty_statistics() {
    assert_eq!(VersionStats::compute(&[]).rows(), 0);
    let empty = VersionStats::compute(&[batch(vec![(
        "x",
        Arc::new(Int64Array::from(Vec::<i64>::new())) as ArrayRef,
    )])]);
    let x = column(&empty, "x");
    assert_eq!((x.rows, x.null_rate, x.distinct), (0, 0.0, 0));
    assert!(x.numeric.is_none());
}

#[test]
fn dictionary_strings_and_millisecond_timestamps_read_as_their_logical_values() {
    use arrow::array::{DictionaryArray, TimestampMillisecondArray};
    use arrow::datatypes::Int8Type;
    let words: DictionaryArray<Int8Type> = vec!["x", "y", "x"].into_iter().collect();
    let stats = VersionStats::compute(&[batch(vec![
        ("w", Arc::new(words) as ArrayRef),
        (
            "t",
            Arc::new(
                TimestampMillisecondArray::from(vec![1_000, 3_000, 2_000]).with_timezone("UTC"),
            ),
        ),
    ])]);
    let w = column(&stats, "w");
    assert_eq!((w.kind, w.distinct), (ColumnKind::String, 2));
    assert_eq!(
        w.top_values.as_ref().expect("top values").values[0].count,
        2
    );
    let t = column(&stats, "t").timestamps.clone().expect("a range");
    assert_eq!(
        (t.min.as_str(), t.max.as_str()),
        ("1970-01-01T00:00:01Z", "1970-01-01T00:00:03Z")
    );
}

#[test]
fn batches_are_one_table() {
    let parts: Vec<RecordBatch> = [1..=40, 41..=100]
        .into_iter()
        .map(|r| {
            batch(vec![(
                "x",
                Arc::new(Int64Array::from_iter_values(r)) as ArrayRef,
            )])
        })
        .collect();
    let whole = batch(vec![(
        "x",
        Arc::new(Int64Array::from_iter_values(1..=100)) as ArrayRef,
    )]);
    assert_eq!(
        VersionStats::compute(&parts),
        VersionStats::compute(&[whole])
    );
}
