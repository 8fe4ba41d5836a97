use std::sync::Arc;

use arrow::array::{
    ArrayRef, AsArray, BooleanArray, DictionaryArray, Float64Array, Int32Array, Int64Array,
    RecordBatch, StringArray, TimestampMicrosecondArray, TimestampNanosecondArray,
    TimestampSecondArray,
};
use arrow::datatypes::{DataType, Int32Type, Int64Type};
use proptest::prelude::*;

use super::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const SECOND: i64 = 1_000_000;

fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    // Test fixtures are built from columns of equal length, so assembling them cannot fail.
    RecordBatch::try_from_iter(columns).expect("test columns have equal lengths")
}

fn ts(values: &[Option<i64>]) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(values.to_vec()).with_timezone("UTC"))
}

fn ints(values: &[Option<i64>]) -> ArrayRef {
    Arc::new(Int64Array::from(values.to_vec()))
}

fn strs(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

/// A view keyed by `user_id` with one feature, `value`, and no created column.
fn view(
    name: &str,
    keys: &[Option<i64>],
    events: &[Option<i64>],
    values: &[Option<i64>],
) -> JoinView {
    JoinView {
        name: name.to_owned(),
        rows: batch(vec![
            ("user_id", ints(keys)),
            ("event_timestamp", ts(events)),
            ("value", ints(values)),
        ]),
        join_keys: vec!["user_id".into()],
        timestamp_field: "event_timestamp".into(),
        created_timestamp_field: None,
        features: vec!["value".into()],
        ttl_seconds: None,
    }
}

fn entities(keys: &[Option<i64>], times: &[Option<i64>]) -> RecordBatch {
    batch(vec![
        ("user_id", ints(keys)),
        ("event_timestamp", ts(times)),
    ])
}

fn join(entities: &RecordBatch, views: &[JoinView]) -> Result<JoinOutput, OfflineError> {
    point_in_time_join(entities, "event_timestamp", views, &JoinOptions::default())
}

fn int_column(output: &JoinOutput, name: &str) -> Vec<Option<i64>> {
    let column = output.batch.column_by_name(name).expect("output column");
    column.as_primitive::<Int64Type>().iter().collect()
}

#[test]
fn a_feature_row_at_exactly_the_entity_timestamp_matches() -> TestResult {
    let v = view(
        "v",
        &[Some(1), Some(1)],
        &[Some(10), Some(20)],
        &[Some(100), Some(200)],
    );
    let out = join(
        &entities(&[Some(1), Some(1), Some(1)], &[Some(20), Some(19), Some(9)]),
        &[v],
    )?;
    assert_eq!(int_column(&out, "value"), [Some(200), Some(100), None]);
    assert_eq!(out.matched_rows, 2);
    assert_eq!(out.view_matched_rows, [2]);
    Ok(())
}

#[test]
fn ttl_window_includes_its_lower_bound_and_not_a_microsecond_more() -> TestResult {
    let mut v = view("v", &[Some(1)], &[Some(100 * SECOND)], &[Some(7)]);
    v.ttl_seconds = Some(10);
    let e = entities(
        &[Some(1); 3],
        &[
            Some(110 * SECOND),
            Some(110 * SECOND + 1),
            Some(100 * SECOND),
        ],
    );
    let out = join(&e, std::slice::from_ref(&v))?;
    assert_eq!(int_column(&out, "value"), [Some(7), None, Some(7)]);
    // A TTL of zero means unbounded, as in Feast.
    v.ttl_seconds = Some(0);
    assert_eq!(int_column(&join(&e, &[v])?, "value"), [Some(7); 3]);
    Ok(())
}

#[test]
fn an_older_row_inside_the_ttl_is_not_used_when_the_latest_is_outside_it() -> TestResult {
    // The latest row at or before t is the only candidate; when it is too old, so is the
    // rest.
    let mut v = view(
        "v",
        &[Some(1), Some(1)],
        &[Some(SECOND), Some(5 * SECOND)],
        &[Some(1), Some(5)],
    );
    v.ttl_seconds = Some(2);
    let out = join(
        &entities(&[Some(1), Some(1)], &[Some(6 * SECOND), Some(8 * SECOND)]),
        &[v],
    )?;
    assert_eq!(int_column(&out, "value"), [Some(5), None]);
    Ok(())
}

fn created_view(created: &[Option<i64>]) -> JoinView {
    let n = created.len();
    JoinView {
        name: "v".into(),
        rows: batch(vec![
            ("user_id", ints(&vec![Some(1); n])),
            ("event_timestamp", ts(&vec![Some(10); n])),
            ("created", ts(created)),
            ("value", ints(&(0..n as i64).map(Some).collect::<Vec<_>>())),
        ]),
        join_keys: vec!["user_id".into()],
        timestamp_field: "event_timestamp".into(),
        created_timestamp_field: Some("created".into()),
        features: vec!["value".into()],
        ttl_seconds: None,
    }
}

#[test]
fn equal_event_times_go_to_the_latest_created_timestamp() -> TestResult {
    // Rows 0..4 share the event time; row 1 has the largest created time, null sorts lowest.
    let v = created_view(&[Some(12), Some(30), None, Some(15)]);
    let out = join(&entities(&[Some(1)], &[Some(50)]), &[v])?;
    assert_eq!(int_column(&out, "value"), [Some(1)]);
    Ok(())
}

#[test]
fn equal_event_and_created_times_go_to_the_later_row() -> TestResult {
    let v = created_view(&[Some(12), Some(12), Some(11)]);
    assert_eq!(
        int_column(&join(&entities(&[Some(1)], &[Some(50)]), &[v])?, "value"),
        [Some(1)]
    );
    let no_created = view(
        "v",
        &[Some(1), Some(1), Some(1)],
        &[Some(10), Some(10), Some(9)],
        &[Some(0), Some(1), Some(2)],
    );
    assert_eq!(
        int_column(
            &join(&entities(&[Some(1)], &[Some(50)]), &[no_created])?,
            "value"
        ),
        [Some(1)]
    );
    Ok(())
}

#[test]
fn the_cutoff_skips_rows_created_after_the_entity_timestamp() -> TestResult {
    // Event time 10 for all; created 12, 30, null, 15. At t = 20: without the cutoff row 1
    // (created 30) wins; with it, row 3 (15); at t = 13 row 0 (12); at t = 11 only the row with
    // a null created time qualifies.
    let v = created_view(&[Some(12), Some(30), None, Some(15)]);
    let e = entities(&[Some(1); 3], &[Some(20), Some(13), Some(11)]);
    let plain = point_in_time_join(
        &e,
        "event_timestamp",
        std::slice::from_ref(&v),
        &JoinOptions::default(),
    )?;
    assert_eq!(int_column(&plain, "value"), [Some(1); 3]);
    let options = JoinOptions {
        created_timestamp_cutoff: true,
        ..JoinOptions::default()
    };
    let cut = point_in_time_join(&e, "event_timestamp", &[v], &options)?;
    assert_eq!(int_column(&cut, "value"), [Some(3), Some(0), Some(2)]);
    Ok(())
}

#[test]
fn the_cutoff_falls_back_to_an_older_event_inside_the_ttl() -> TestResult {
    let mut v = created_view(&[Some(100), Some(5)]);
    // Row 0: event 10 created late; row 1: event 8.
    v.rows = batch(vec![
        ("user_id", ints(&[Some(1), Some(1)])),
        (
            "event_timestamp",
            ts(&[Some(10 * SECOND), Some(8 * SECOND)]),
        ),
        ("created", ts(&[Some(100 * SECOND), Some(8 * SECOND)])),
        ("value", ints(&[Some(0), Some(1)])),
    ]);
    v.ttl_seconds = Some(3);
    let options = JoinOptions {
        created_timestamp_cutoff: true,
        ..JoinOptions::default()
    };
    let e = entities(&[Some(1), Some(1)], &[Some(11 * SECOND), Some(12 * SECOND)]);
    let out = point_in_time_join(&e, "event_timestamp", &[v], &options)?;
    // At 12 s the fallback row (8 s) is outside the 3 s window.
    assert_eq!(int_column(&out, "value"), [Some(1), None]);
    Ok(())
}

#[test]
fn duplicate_entity_rows_are_all_kept_in_input_order() -> TestResult {
    let v = view(
        "v",
        &[Some(1), Some(2)],
        &[Some(10), Some(10)],
        &[Some(1), Some(2)],
    );
    let e = entities(
        &[Some(2), Some(1), Some(2), Some(2), Some(1)],
        &[Some(10); 5],
    );
    let out = join(&e, &[v])?;
    assert_eq!(out.batch.num_rows(), 5);
    assert_eq!(
        int_column(&out, "user_id"),
        [Some(2), Some(1), Some(2), Some(2), Some(1)]
    );
    assert_eq!(
        int_column(&out, "value"),
        [Some(2), Some(1), Some(2), Some(2), Some(1)]
    );
    Ok(())
}

#[test]
fn entity_columns_come_first_unchanged_then_features_in_view_order() -> TestResult {
    let e = batch(vec![
        (
            "label",
            Arc::new(BooleanArray::from(vec![true, false])) as ArrayRef,
        ),
        ("event_timestamp", ts(&[Some(10), Some(10)])),
        ("user_id", ints(&[Some(1), Some(9)])),
    ]);
    let mut a = view("a", &[Some(1)], &[Some(1)], &[Some(5)]);
    a.rows = batch(vec![
        ("user_id", ints(&[Some(1)])),
        ("event_timestamp", ts(&[Some(1)])),
        ("value", ints(&[Some(5)])),
        ("score", Arc::new(Float64Array::from(vec![0.5])) as ArrayRef),
    ]);
    a.features = vec!["score".into(), "value".into()];
    let out = join(&e, &[a])?;
    let names: Vec<String> = out
        .batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        ["label", "event_timestamp", "user_id", "score", "value"]
    );
    for i in 0..3 {
        assert_eq!(out.batch.column(i).as_ref(), e.column(i).as_ref());
    }
    assert_eq!(out.batch.schema().field(3).data_type(), &DataType::Float64);
    assert_eq!(
        out.batch
            .column(3)
            .as_primitive::<arrow::datatypes::Float64Type>()
            .iter()
            .collect::<Vec<_>>(),
        [Some(0.5), None]
    );
    Ok(())
}

#[test]
fn unmatched_keys_get_nulls() -> TestResult {
    let v = view("v", &[Some(1)], &[Some(10)], &[Some(1)]);
    let out = join(&entities(&[Some(3), Some(1)], &[Some(20), Some(20)]), &[v])?;
    assert_eq!(int_column(&out, "value"), [None, Some(1)]);
    assert_eq!(out.matched_rows, 1);
    Ok(())
}

#[test]
fn a_key_present_in_one_view_only_matches_in_that_view() -> TestResult {
    let a = view("a", &[Some(1)], &[Some(10)], &[Some(1)]);
    let mut b = view("b", &[Some(2)], &[Some(10)], &[Some(2)]);
    b.rows = batch(vec![
        ("user_id", ints(&[Some(2)])),
        ("event_timestamp", ts(&[Some(10)])),
        ("other", ints(&[Some(2)])),
    ]);
    b.features = vec!["other".into()];
    let out = join(
        &entities(&[Some(1), Some(2), Some(3)], &[Some(20); 3]),
        &[a, b],
    )?;
    assert_eq!(int_column(&out, "value"), [Some(1), None, None]);
    assert_eq!(int_column(&out, "other"), [None, Some(2), None]);
    assert_eq!(out.matched_rows, 2);
    assert_eq!(out.view_matched_rows, [1, 1]);
    Ok(())
}

#[test]
fn a_null_feature_value_is_a_match_with_a_null_value() -> TestResult {
    // The newer row's value is null: it still wins, and the older value is not used.
    let v = view(
        "v",
        &[Some(1), Some(1)],
        &[Some(10), Some(20)],
        &[Some(1), None],
    );
    let out = join(&entities(&[Some(1)], &[Some(30)]), &[v])?;
    assert_eq!(int_column(&out, "value"), [None]);
    assert_eq!(out.matched_rows, 1);
    Ok(())
}

#[test]
fn null_keys_and_null_timestamps_never_match() -> TestResult {
    let v = view(
        "v",
        &[None, Some(1), Some(2)],
        &[Some(10), None, Some(10)],
        &[Some(0), Some(1), Some(2)],
    );
    let e = entities(
        &[None, Some(1), Some(2), Some(2)],
        &[Some(20), Some(20), None, Some(20)],
    );
    let out = join(&e, &[v])?;
    assert_eq!(int_column(&out, "value"), [None, None, None, Some(2)]);
    Ok(())
}

#[test]
fn timestamps_of_other_units_and_zones_compare_as_instants() -> TestResult {
    // 2024-01-01T12:00:00Z as seconds in UTC, and the entity times as nanoseconds labelled
    // +02:00: the stored values are UTC whatever the label.
    let noon = 1_704_110_400i64;
    let v = JoinView {
        name: "v".into(),
        rows: batch(vec![
            ("user_id", ints(&[Some(1)])),
            (
                "event_timestamp",
                Arc::new(TimestampSecondArray::from(vec![noon]).with_timezone("UTC")) as ArrayRef,
            ),
            ("value", ints(&[Some(1)])),
        ]),
        join_keys: vec!["user_id".into()],
        timestamp_field: "event_timestamp".into(),
        created_timestamp_field: None,
        features: vec!["value".into()],
        ttl_seconds: Some(60),
    };
    let nanos = |s: i64| s * 1_000_000_000;
    let e = batch(vec![
        ("user_id", ints(&[Some(1); 4])),
        (
            "event_timestamp",
            Arc::new(
                TimestampNanosecondArray::from(vec![
                    nanos(noon),
                    nanos(noon) - 1_000,
                    nanos(noon + 60),
                    nanos(noon + 60) + 1_000,
                ])
                .with_timezone("+02:00"),
            ) as ArrayRef,
        ),
    ]);
    let out = join(&e, &[v])?;
    assert_eq!(int_column(&out, "value"), [Some(1), None, Some(1), None]);
    Ok(())
}

#[test]
fn composite_keys_match_on_every_part() -> TestResult {
    // Two integer keys (the packed pair map) and an integer + string pair (the general map).
    let rows = batch(vec![
        ("user_id", ints(&[Some(1), Some(1), Some(2), Some(1)])),
        ("movie_id", ints(&[Some(10), Some(20), Some(10), None])),
        (
            "country",
            strs(&[Some("fr"), Some("de"), Some("fr"), Some("fr")]),
        ),
        ("event_timestamp", ts(&[Some(1); 4])),
        ("value", ints(&[Some(0), Some(1), Some(2), Some(3)])),
    ]);
    let pair = JoinView {
        name: "pair".into(),
        rows: rows.clone(),
        join_keys: vec!["user_id".into(), "movie_id".into()],
        timestamp_field: "event_timestamp".into(),
        created_timestamp_field: None,
        features: vec!["value".into()],
        ttl_seconds: None,
    };
    let mixed = JoinView {
        name: "mixed".into(),
        join_keys: vec!["user_id".into(), "country".into()],
        ..pair.clone()
    };
    let e = batch(vec![
        (
            "user_id",
            ints(&[Some(1), Some(1), Some(2), Some(2), Some(1)]),
        ),
        (
            "movie_id",
            ints(&[Some(20), Some(10), Some(20), Some(10), None]),
        ),
        (
            "country",
            strs(&[Some("de"), Some("fr"), Some("fr"), Some("de"), Some("fr")]),
        ),
        ("event_timestamp", ts(&[Some(5); 5])),
    ]);
    let options = JoinOptions {
        full_feature_names: true,
        ..JoinOptions::default()
    };
    let out = point_in_time_join(&e, "event_timestamp", &[pair, mixed], &options)?;
    assert_eq!(
        int_column(&out, "pair__value"),
        [Some(1), Some(0), None, Some(2), None]
    );
    // (1, "fr") has rows 0 and 3 at the same time: the later row wins.
    assert_eq!(
        int_column(&out, "mixed__value"),
        [Some(1), Some(3), Some(2), None, Some(3)]
    );
    Ok(())
}

#[test]
fn full_feature_names_prefix_the_view_and_plain_names_must_not_collide() -> TestResult {
    let a = view("a", &[Some(1)], &[Some(1)], &[Some(1)]);
    let b = view("b", &[Some(1)], &[Some(1)], &[Some(2)]);
    let e = entities(&[Some(1)], &[Some(5)]);
    let options = JoinOptions {
        full_feature_names: true,
        ..JoinOptions::default()
    };
    let out = point_in_time_join(&e, "event_timestamp", &[a.clone(), b.clone()], &options)?;
    assert_eq!(int_column(&out, "a__value"), [Some(1)]);
    assert_eq!(int_column(&out, "b__value"), [Some(2)]);
    let err = join(&e, &[a, b]).expect_err("two columns named value");
    assert!(matches!(err, OfflineError::DuplicateColumn { ref column } if column == "value"));
    assert!(err.to_string().contains("full_feature_names"));
    Ok(())
}

#[test]
fn keys_of_other_types_are_compared_as_integers_or_text() -> TestResult {
    // Int32 entity keys against Int64 view keys; an integer entity key against a string
    // view key (decimal text); a dictionary-encoded string key.
    let e32 = batch(vec![
        (
            "user_id",
            Arc::new(Int32Array::from(vec![1, 2])) as ArrayRef,
        ),
        ("event_timestamp", ts(&[Some(5), Some(5)])),
    ]);
    let v = view(
        "v",
        &[Some(1), Some(2)],
        &[Some(1), Some(1)],
        &[Some(1), Some(2)],
    );
    assert_eq!(
        int_column(&join(&e32, std::slice::from_ref(&v))?, "value"),
        [Some(1), Some(2)]
    );

    let mut text = v.clone();
    text.rows = batch(vec![
        ("user_id", strs(&[Some("2"), Some("01")])),
        ("event_timestamp", ts(&[Some(1), Some(1)])),
        ("value", ints(&[Some(2), Some(1)])),
    ]);
    assert_eq!(int_column(&join(&e32, &[text])?, "value"), [None, Some(2)]);

    let mut dict = v;
    let keys: DictionaryArray<Int32Type> = vec!["a", "b", "a"].into_iter().collect();
    dict.rows = batch(vec![
        ("user_id", Arc::new(keys) as ArrayRef),
        ("event_timestamp", ts(&[Some(1), Some(1), Some(2)])),
        ("value", ints(&[Some(0), Some(1), Some(2)])),
    ]);
    let e = batch(vec![
        ("user_id", strs(&[Some("a"), Some("b"), Some("c")])),
        ("event_timestamp", ts(&[Some(5); 3])),
    ]);
    assert_eq!(
        int_column(&join(&e, &[dict])?, "value"),
        [Some(2), Some(1), None]
    );
    Ok(())
}

#[test]
fn sparse_integer_keys_use_the_hash_map_and_match_the_same() -> TestResult {
    let big = 1_000_000_000_000i64;
    let v = view(
        "v",
        &[Some(-big), Some(big), Some(3)],
        &[Some(1); 3],
        &[Some(0), Some(1), Some(2)],
    );
    let out = join(
        &entities(&[Some(big), Some(-big), Some(4), Some(3)], &[Some(5); 4]),
        &[v],
    )?;
    assert_eq!(int_column(&out, "value"), [Some(1), Some(0), None, Some(2)]);
    Ok(())
}

#[test]
fn a_view_without_join_keys_gives_every_row_its_latest_value() -> TestResult {
    let mut v = view(
        "v",
        &[Some(1), Some(2)],
        &[Some(10), Some(20)],
        &[Some(1), Some(2)],
    );
    v.join_keys.clear();
    let out = join(
        &entities(&[Some(7), Some(8), Some(9)], &[Some(15), Some(25), Some(5)]),
        &[v],
    )?;
    assert_eq!(int_column(&out, "value"), [Some(1), Some(2), None]);
    Ok(())
}

#[test]
fn empty_inputs_give_empty_or_null_output() -> TestResult {
    let v = view("v", &[], &[], &[]);
    let out = join(&entities(&[Some(1)], &[Some(1)]), std::slice::from_ref(&v))?;
    assert_eq!(int_column(&out, "value"), [None]);
    let out = join(&entities(&[], &[]), &[v])?;
    assert_eq!(out.batch.num_rows(), 0);
    assert_eq!(out.batch.num_columns(), 3);
    let out = join(&entities(&[Some(1)], &[Some(1)]), &[])?;
    assert_eq!(out.batch.num_columns(), 2);
    Ok(())
}

#[test]
fn missing_and_mistyped_columns_are_reported_by_name() -> TestResult {
    let v = view("user_profile", &[Some(1)], &[Some(1)], &[Some(1)]);
    let e = entities(&[Some(1)], &[Some(1)]);

    let err = point_in_time_join(&e, "ts", std::slice::from_ref(&v), &JoinOptions::default())
        .expect_err("no ts");
    assert!(
        matches!(err, OfflineError::MissingEntityTimestamp { ref column, .. } if column == "ts")
    );

    let no_key = batch(vec![
        ("driver_id", ints(&[Some(1)])),
        ("event_timestamp", ts(&[Some(1)])),
    ]);
    let err = join(&no_key, std::slice::from_ref(&v)).expect_err("no key");
    assert!(
        matches!(err, OfflineError::MissingEntityKey { ref column, ref view, .. } if column == "user_id" && view == "user_profile")
    );
    assert!(
        err.to_string().contains("driver_id"),
        "lists the columns there are: {err}"
    );

    let mut missing_feature = v.clone();
    missing_feature.features.push("age".into());
    let err = join(&e, &[missing_feature]).expect_err("no feature");
    assert!(
        matches!(err, OfflineError::MissingViewColumn { ref column, role: "feature", .. } if column == "age")
    );

    let mut missing_created = v.clone();
    missing_created.created_timestamp_field = Some("created".into());
    let err = join(&e, &[missing_created]).expect_err("no created");
    assert!(
        matches!(err, OfflineError::MissingViewColumn { ref column, .. } if column == "created")
    );

    let mut wrong_type = v.clone();
    wrong_type.timestamp_field = "value".into();
    let err = join(&e, &[wrong_type]).expect_err("not a timestamp");
    assert!(
        matches!(err, OfflineError::NotATimestamp { ref column, found: DataType::Int64, .. } if column == "value")
    );

    let strings = batch(vec![
        ("user_id", ints(&[Some(1)])),
        ("event_timestamp", strs(&[Some("2024-01-01")])),
    ]);
    let err = join(&strings, &[v]).expect_err("entity times are strings");
    assert!(
        matches!(err, OfflineError::NotATimestamp { ref owner, .. } if owner == "the entity rows")
    );
    Ok(())
}

// ---- Property test against a brute-force reference ----

#[derive(Debug, Clone)]
struct FeatureRow {
    key: Option<u8>,
    key2: Option<u8>,
    event: Option<i64>,
    created: Option<i64>,
}

#[derive(Debug, Clone)]
struct EntityRow {
    key: Option<u8>,
    key2: Option<u8>,
    time: Option<i64>,
}

/// How the case's keys are laid out: which key index path it exercises.
#[derive(Debug, Clone, Copy)]
enum KeyMode {
    /// One integer key from a small range: the direct-offset path.
    Dense,
    /// One integer key spread far apart: the integer hash map.
    Sparse,
    /// Integer entity key against a string view key: the string map, via decimal text.
    Text,
    /// Two integer keys: the packed pair map.
    Pair,
    /// Integer + string: the general composite map.
    Mixed,
    /// No join keys at all.
    None,
}

const SPARSE: i64 = 1_000_000_007_000;

fn key_arrays(
    mode: KeyMode,
    keys: &[Option<u8>],
    keys2: &[Option<u8>],
    view_side: bool,
) -> Vec<(&'static str, ArrayRef)> {
    let int = |k: &[Option<u8>], scale: i64| -> ArrayRef {
        ints(
            &k.iter()
                .map(|k| k.map(|k| i64::from(k) * scale))
                .collect::<Vec<_>>(),
        )
    };
    let text = |k: &[Option<u8>]| -> ArrayRef {
        let owned: Vec<Option<String>> = k.iter().map(|k| k.map(|k| k.to_string())).collect();
        Arc::new(StringArray::from(owned))
    };
    match mode {
        KeyMode::Dense => vec![("k", int(keys, 1))],
        KeyMode::Sparse => vec![("k", int(keys, SPARSE))],
        KeyMode::Text if view_side => vec![("k", text(keys))],
        KeyMode::Text => vec![("k", int(keys, 1))],
        KeyMode::Pair => vec![("k", int(keys, 1)), ("k2", int(keys2, 1))],
        KeyMode::Mixed => vec![("k", int(keys, 1)), ("k2", text(keys2))],
        KeyMode::None => vec![],
    }
}

fn key_names(mode: KeyMode) -> Vec<String> {
    match mode {
        KeyMode::Pair | KeyMode::Mixed => vec!["k".into(), "k2".into()],
        KeyMode::None => vec![],
        _ => vec!["k".into()],
    }
}

/// The rule, straight from its statement: every feature row against every entity row.
fn reference(
    mode: KeyMode,
    features: &[FeatureRow],
    entities: &[EntityRow],
    ttl: Option<u64>,
    has_created: bool,
    cutoff: bool,
) -> Vec<Option<i64>> {
    entities
        .iter()
        .map(|entity| {
            let t = entity.time?;
            let mut best: Option<(i64, Option<i64>, usize)> = None;
            for (row, f) in features.iter().enumerate() {
                let same_key = match mode {
                    KeyMode::None => true,
                    KeyMode::Pair | KeyMode::Mixed => {
                        f.key.is_some()
                            && f.key2.is_some()
                            && f.key == entity.key
                            && f.key2 == entity.key2
                    }
                    _ => f.key.is_some() && f.key == entity.key,
                };
                let Some(e) = f.event else { continue };
                if !same_key || e > t {
                    continue;
                }
                if let Some(ttl) = ttl.filter(|&s| s > 0)
                    && e < t - ttl as i64 * SECOND
                {
                    continue;
                }
                let created = if has_created { f.created } else { None };
                if cutoff && has_created && created.is_some_and(|c| c > t) {
                    continue;
                }
                // Option orders None below every Some: null created sorts lowest.
                let candidate = (e, created, row);
                if best.is_none_or(|b| candidate > b) {
                    best = Some(candidate);
                }
            }
            best.map(|(_, _, row)| row as i64)
        })
        .collect()
}

fn feature_row() -> impl Strategy<Value = FeatureRow> {
    (
        proptest::option::weighted(0.9, 0u8..5),
        proptest::option::weighted(0.9, 0u8..3),
        proptest::option::weighted(0.95, 0i64..12),
        proptest::option::weighted(0.8, 0i64..14),
    )
        .prop_map(|(key, key2, event, created)| FeatureRow {
            key,
            key2,
            event: event.map(|s| s * SECOND),
            created: created.map(|s| s * SECOND),
        })
}

fn entity_row() -> impl Strategy<Value = EntityRow> {
    (
        proptest::option::weighted(0.9, 0u8..6),
        proptest::option::weighted(0.9, 0u8..3),
        proptest::option::weighted(0.95, (0i64..14, -1i64..=1)),
    )
        .prop_map(|(key, key2, time)| EntityRow {
            key,
            key2,
            // Times on whole seconds and one microsecond either side, to hit every boundary.
            time: time.map(|(s, d)| s * SECOND + d),
        })
}

fn key_mode() -> impl Strategy<Value = KeyMode> {
    prop_oneof![
        Just(KeyMode::Dense),
        Just(KeyMode::Sparse),
        Just(KeyMode::Text),
        Just(KeyMode::Pair),
        Just(KeyMode::Mixed),
        Just(KeyMode::None),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn the_join_agrees_with_a_brute_force_reference(
        mode in key_mode(),
        features in proptest::collection::vec(feature_row(), 0..40),
        entities in proptest::collection::vec(entity_row(), 0..30),
        ttl in proptest::option::of(0u64..6),
        has_created: bool,
        cutoff: bool,
    ) {
        let fk: Vec<_> = features.iter().map(|f| f.key).collect();
        let fk2: Vec<_> = features.iter().map(|f| f.key2).collect();
        let mut view_columns = key_arrays(mode, &fk, &fk2, true);
        view_columns.push(("event_timestamp", ts(&features.iter().map(|f| f.event).collect::<Vec<_>>())));
        view_columns.push(("created", ts(&features.iter().map(|f| f.created).collect::<Vec<_>>())));
        view_columns.push(("row", ints(&(0..features.len() as i64).map(Some).collect::<Vec<_>>())));
        let view = JoinView {
            name: "v".into(),
            rows: batch(view_columns),
            join_keys: key_names(mode),
            timestamp_field: "event_timestamp".into(),
            created_timestamp_field: has_created.then(|| "created".into()),
            features: vec!["row".into()],
            ttl_seconds: ttl,
        };
        let ek: Vec<_> = entities.iter().map(|e| e.key).collect();
        let ek2: Vec<_> = entities.iter().map(|e| e.key2).collect();
        let mut entity_columns = key_arrays(mode, &ek, &ek2, false);
        entity_columns.push(("t", ts(&entities.iter().map(|e| e.time).collect::<Vec<_>>())));
        let entity_batch = batch(entity_columns);
        let options = JoinOptions { created_timestamp_cutoff: cutoff, full_feature_names: false };

        let out = point_in_time_join(&entity_batch, "t", &[view], &options)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let expected = reference(mode, &features, &entities, ttl, has_created, cutoff);
        prop_assert_eq!(int_column(&out, "row"), expected.clone());
        prop_assert_eq!(out.matched_rows, expected.iter().filter(|r| r.is_some()).count());
        prop_assert_eq!(out.batch.num_rows(), entities.len());
    }
}
