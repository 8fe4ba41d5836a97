//! The history join against `offline`'s join, the oracle, on random views: every key shape,
//! ties of event and created times, null keys and timestamps, TTL edges and the cutoff.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    TimestampMillisecondArray,
};
use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::offline::{JoinOptions, JoinView, point_in_time_join};

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

/// Which key representation a case exercises, on the view side and the entity side.
#[derive(Debug, Clone, Copy)]
enum KeyMode {
    /// Integers on both sides.
    Int,
    /// 32-bit integers in the view, 64-bit in the entity rows.
    NarrowInt,
    /// Integers spread far apart.
    Sparse,
    /// Text in the view, integers in the entity rows.
    TextView,
    /// Integers in the view, text in the entity rows (some not in canonical form).
    TextEntity,
    /// Text on both sides.
    Text,
    /// Two integer keys.
    Pair,
    /// Integer + text.
    Mixed,
    /// Three integer keys.
    Triple,
    /// No join keys.
    None,
}

const SPARSE: i64 = 1_000_000_007_000;

fn key_arrays(
    mode: KeyMode,
    keys: &[(Option<u8>, Option<u8>)],
    view_side: bool,
) -> Vec<(&'static str, ArrayRef)> {
    let first: Vec<Option<u8>> = keys.iter().map(|k| k.0).collect();
    let second: Vec<Option<u8>> = keys.iter().map(|k| k.1).collect();
    let int = |k: &[Option<u8>], scale: i64| -> ArrayRef {
        ints(
            &k.iter()
                .map(|k| k.map(|k| i64::from(k) * scale))
                .collect::<Vec<_>>(),
        )
    };
    let text = |k: &[Option<u8>]| -> ArrayRef {
        // Key 4 is spelled "04" on the entity side: text that is no canonical integer.
        let owned: Vec<Option<String>> = k
            .iter()
            .map(|k| {
                k.map(|k| {
                    if k == 4 && !view_side {
                        "04".to_owned()
                    } else {
                        k.to_string()
                    }
                })
            })
            .collect();
        Arc::new(StringArray::from(owned))
    };
    match mode {
        KeyMode::Int => vec![("k", int(&first, 1))],
        KeyMode::NarrowInt if view_side => {
            let narrow: Int32Array = first.iter().map(|k| k.map(i32::from)).collect();
            vec![("k", Arc::new(narrow) as ArrayRef)]
        }
        KeyMode::NarrowInt => vec![("k", int(&first, 1))],
        KeyMode::Sparse => vec![("k", int(&first, SPARSE))],
        KeyMode::TextView if view_side => vec![("k", text(&first))],
        KeyMode::TextView => vec![("k", int(&first, 1))],
        KeyMode::TextEntity if view_side => vec![("k", int(&first, 1))],
        KeyMode::TextEntity => vec![("k", text(&first))],
        KeyMode::Text => vec![("k", text(&first))],
        KeyMode::Pair => vec![("k", int(&first, 1)), ("k2", int(&second, 1))],
        KeyMode::Mixed => vec![("k", int(&first, 1)), ("k2", text(&second))],
        KeyMode::Triple => vec![
            ("k", int(&first, 1)),
            ("k2", int(&second, 1)),
            ("k3", int(&first, 7)),
        ],
        KeyMode::None => vec![],
    }
}

fn key_names(mode: KeyMode) -> Vec<String> {
    match mode {
        KeyMode::Pair | KeyMode::Mixed => vec!["k".into(), "k2".into()],
        KeyMode::Triple => vec!["k".into(), "k2".into(), "k3".into()],
        KeyMode::None => vec![],
        _ => vec!["k".into()],
    }
}

#[derive(Debug, Clone)]
struct Row {
    key: (Option<u8>, Option<u8>),
    time: Option<i64>,
    created: Option<i64>,
}

fn feature_row() -> impl Strategy<Value = Row> {
    (
        proptest::option::weighted(0.9, 0u8..6),
        proptest::option::weighted(0.9, 0u8..3),
        proptest::option::weighted(0.95, 0i64..12),
        proptest::option::weighted(0.8, 0i64..14),
    )
        .prop_map(|(a, b, event, created)| Row {
            key: (a, b),
            time: event.map(|s| s * SECOND),
            created: created.map(|s| s * SECOND),
        })
}

fn entity_row() -> impl Strategy<Value = Row> {
    (
        proptest::option::weighted(0.9, 0u8..7),
        proptest::option::weighted(0.9, 0u8..3),
        proptest::option::weighted(0.95, (0i64..14, -1i64..=1)),
    )
        .prop_map(|(a, b, time)| Row {
            key: (a, b),
            // Whole seconds and one microsecond either side: every TTL and tie boundary.
            time: time.map(|(s, d)| s * SECOND + d),
            created: None,
        })
}

fn key_mode() -> impl Strategy<Value = KeyMode> {
    prop_oneof![
        Just(KeyMode::Int),
        Just(KeyMode::NarrowInt),
        Just(KeyMode::Sparse),
        Just(KeyMode::TextView),
        Just(KeyMode::TextEntity),
        Just(KeyMode::Text),
        Just(KeyMode::Pair),
        Just(KeyMode::Mixed),
        Just(KeyMode::Triple),
        Just(KeyMode::None),
    ]
}

fn view_rows(mode: KeyMode, features: &[Row], millis: bool) -> RecordBatch {
    let keys: Vec<_> = features.iter().map(|f| f.key).collect();
    let mut columns = key_arrays(mode, &keys, true);
    let events: Vec<Option<i64>> = features.iter().map(|f| f.time).collect();
    // Millisecond events exercise the converted (not shared) instants; the values are whole
    // seconds, so nothing is lost.
    let events: ArrayRef = if millis {
        Arc::new(TimestampMillisecondArray::from(
            events
                .iter()
                .map(|e| e.map(|e| e / 1_000))
                .collect::<Vec<_>>(),
        ))
    } else {
        ts(&events)
    };
    columns.push(("event_timestamp", events));
    columns.push((
        "created",
        ts(&features.iter().map(|f| f.created).collect::<Vec<_>>()),
    ));
    columns.push((
        "row",
        ints(&(0..features.len() as i64).map(Some).collect::<Vec<_>>()),
    ));
    columns.push((
        "other",
        ints(
            &(0..features.len() as i64)
                .map(|r| Some(r * 10))
                .collect::<Vec<_>>(),
        ),
    ));
    batch(columns)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn the_history_join_answers_exactly_what_the_join_answers(
        mode in key_mode(),
        features in proptest::collection::vec(feature_row(), 0..40),
        entities in proptest::collection::vec(entity_row(), 0..30),
        ttl in proptest::option::of(0u64..6),
        has_created: bool,
        cutoff: bool,
        full_feature_names: bool,
        millis: bool,
    ) {
        let rows = view_rows(mode, &features, millis);
        let created = has_created.then(|| "created".to_owned());
        let join_view = JoinView {
            name: "v".into(),
            rows: rows.clone(),
            join_keys: key_names(mode),
            timestamp_field: "event_timestamp".into(),
            created_timestamp_field: created.clone(),
            features: vec!["row".into(), "other".into()],
            ttl_seconds: ttl,
        };
        let history = ViewHistory::build(HistorySource {
            view: "v".into(),
            rows,
            join_keys: key_names(mode),
            timestamp_field: "event_timestamp".into(),
            created_timestamp_field: created,
        }).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let keys: Vec<_> = entities.iter().map(|e| e.key).collect();
        let mut entity_columns = key_arrays(mode, &keys, false);
        entity_columns.push(("t", ts(&entities.iter().map(|e| e.time).collect::<Vec<_>>())));
        let entity_batch = batch(entity_columns);
        let options = JoinOptions { created_timestamp_cutoff: cutoff, full_feature_names };

        let expected = point_in_time_join(&entity_batch, "t", &[join_view], &options)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let history_view = HistoryJoinView {
            history: &history,
            features: vec!["row".into(), "other".into()],
            ttl_seconds: ttl,
        };
        let got = join(&entity_batch, "t", &[history_view], &options)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&got.batch, &expected.batch);
        prop_assert_eq!(got.matched_rows, expected.matched_rows);
        prop_assert_eq!(got.view_matched_rows, expected.view_matched_rows);
    }
}

fn simple_history() -> ViewHistory {
    let rows = batch(vec![
        ("user_id", ints(&[Some(7), Some(7), Some(8), None, Some(7)])),
        (
            "event_timestamp",
            ts(&[
                Some(3 * SECOND),
                Some(SECOND),
                Some(2 * SECOND),
                Some(SECOND),
                None,
            ]),
        ),
        (
            "value",
            ints(&[Some(30), Some(10), Some(20), Some(99), Some(98)]),
        ),
    ]);
    ViewHistory::build(HistorySource {
        view: "v".into(),
        rows,
        join_keys: vec!["user_id".into()],
        timestamp_field: "event_timestamp".into(),
        created_timestamp_field: None,
    })
    .expect("the history builds")
}

#[test]
fn groups_hold_their_versions_in_time_order_without_null_keys_or_events() {
    let history = simple_history();
    assert_eq!(history.group_count(), 2);
    let seven = history.group_of_json(&[&json!(7)]).expect("key 7 is known");
    assert_eq!(history.events(seven), &[SECOND, 3 * SECOND]);
    assert_eq!(history.table_rows(seven), &[1, 0]);
    assert_eq!(history.latest_at(seven, 2 * SECOND, None, false), Some(1));
    assert_eq!(
        history.latest_at(seven, 3 * SECOND, Some(1), false),
        Some(0)
    );
    assert_eq!(history.latest_at(seven, 5 * SECOND, Some(1), false), None);
    assert_eq!(history.latest_at(seven, 0, None, false), None);
    assert!(history.memory_bytes() > history.index_bytes());
    assert!(history.index_bytes() >= 3 * 12);
}

#[test]
fn json_keys_match_as_the_online_route_matches_them() {
    let history = simple_history();
    let seven = history.group_of_json(&[&json!(7)]);
    assert!(seven.is_some());
    assert_eq!(history.group_of_json(&[&json!("7")]), seven);
    assert_eq!(history.group_of_json(&[&json!("07")]), None);
    assert_eq!(history.group_of_json(&[&json!(7.5)]), None);
    assert_eq!(history.group_of_json(&[&json!(9)]), None);
    assert_eq!(history.group_of_json(&[]), None);
    assert!(history.events(u32::MAX).is_empty());
}

#[test]
fn a_missing_view_column_is_named() {
    let rows = batch(vec![("user_id", ints(&[Some(1)]))]);
    let err = ViewHistory::build(HistorySource {
        view: "v".into(),
        rows,
        join_keys: vec!["user_id".into()],
        timestamp_field: "event_timestamp".into(),
        created_timestamp_field: None,
    })
    .expect_err("no timestamp column");
    assert!(err.to_string().contains("event_timestamp"), "{err}");
}

fn key(table: &str, version: u64) -> HistoryKey {
    HistoryKey {
        table: table.into(),
        version,
        snapshot: 0,
        definition: String::new(),
    }
}

/// A history of `rows` rows of one key column and timestamps; keys far apart, so that it is
/// held in a hash map, the larger index.
fn history_of(rows: i64) -> ViewHistory {
    let keys: Vec<Option<i64>> = (0..rows).map(|k| Some(k * 1_000)).collect();
    let rows = batch(vec![("k", ints(&keys)), ("event_timestamp", ts(&keys))]);
    ViewHistory::build(HistorySource {
        view: "v".into(),
        rows,
        join_keys: vec!["k".into()],
        timestamp_field: "event_timestamp".into(),
        created_timestamp_field: None,
    })
    .expect("the history builds")
}

#[test]
fn the_least_recently_used_history_goes_first_when_over_the_bound() {
    let one = history_of(8_000).memory_bytes() as u64;
    // Room for two, not three.
    let cache = HistoryCache::new(1);
    let fits = cache.stats().max_bytes / one;
    assert_eq!(fits, 2, "{one} bytes per history");
    let build = || Ok::<_, OfflineError>(history_of(8_000));
    cache.get_or_build(&key("a", 1), build).expect("a");
    cache.get_or_build(&key("b", 1), build).expect("b");
    cache.get_or_build(&key("a", 1), build).expect("a again");
    cache.get_or_build(&key("c", 1), build).expect("c");
    let stats = cache.stats();
    assert_eq!(
        (stats.items, stats.evictions, stats.hits, stats.misses),
        (2, 1, 1, 3)
    );
    let kept: Vec<String> = cache.versions().into_iter().map(|(t, _)| t).collect();
    assert_eq!(kept, ["a", "c"], "b was the least recently used");
}

#[test]
fn a_history_larger_than_the_bound_is_returned_not_kept_and_builds_without_queueing() {
    let cache = HistoryCache::new(1);
    let big = || Ok::<_, OfflineError>(history_of(200_000));
    for _ in 0..2 {
        let history = cache.get_or_build(&key("big", 1), big).expect("built");
        assert_eq!(history.group_count(), 200_000);
    }
    let stats = cache.stats();
    assert_eq!((stats.items, stats.bytes, stats.misses), (0, 0, 2));
    assert_eq!(cache.retain(|k| k.table != "big"), 0);
    assert!(cache.versions().is_empty());
}

#[test]
fn concurrent_callers_of_a_cold_key_share_one_build() {
    let cache = HistoryCache::new(64);
    let builds = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..6 {
            s.spawn(|| {
                cache
                    .get_or_build(&key("a", 1), || {
                        builds.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(50));
                        Ok::<_, OfflineError>(history_of(100))
                    })
                    .expect("built")
            });
        }
    });
    assert_eq!(builds.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!((cache.stats().misses, cache.stats().hits), (1, 5));
}

#[test]
fn with_no_bound_nothing_is_kept() {
    let cache = HistoryCache::new(0);
    assert!(!cache.enabled());
    cache
        .get_or_build(&key("a", 1), || Ok::<_, OfflineError>(history_of(10)))
        .expect("built");
    let stats = cache.stats();
    assert_eq!((stats.enabled, stats.items, stats.misses), (false, 0, 1));
    assert!(stats.disabled_reason.is_some());
}

#[test]
fn dense_integer_keys_find_every_key_and_nothing_outside_or_between_them() {
    let view_keys = [Some(-5), Some(3), Some(10), None, Some(3)];
    let column = ints(&view_keys);
    let (index, groups) =
        keys::KeyIndex::build("v", &["k".into()], &[&column], 5, |_| true).expect("builds");
    assert_eq!(groups, [0, 1, 2, keys::NO_GROUP, 1]);
    assert_eq!(index.count(), 3);
    // An array of the 16 slots, not a map.
    assert_eq!(index.memory_bytes(), 16 * 4);
    let probes = [-5, 3, 10, 4, -6, 11, i64::MIN, i64::MAX];
    let expected = [
        0,
        1,
        2,
        keys::NO_GROUP,
        keys::NO_GROUP,
        keys::NO_GROUP,
        keys::NO_GROUP,
        keys::NO_GROUP,
    ];
    let probe_column = ints(&probes.map(Some));
    let found = index
        .entity_groups("v", &["k".into()], &[&probe_column], probes.len())
        .expect("probes");
    assert_eq!(found, expected);
    for (probe, want) in probes.iter().zip(expected) {
        let json = serde_json::Value::from(*probe);
        assert_eq!(
            index.group_of_json(&[&json]),
            (want != keys::NO_GROUP).then_some(want),
            "{probe}"
        );
    }
}

#[test]
fn few_integer_keys_over_a_wide_range_are_held_in_a_map_and_still_found() {
    // A span of 4 001 slots (under the dense limit) for two keys: the map is smaller.
    let column = ints(&[Some(0), Some(4_000)]);
    let (index, groups) =
        keys::KeyIndex::build("v", &["k".into()], &[&column], 2, |_| true).expect("builds");
    assert_eq!(groups, [0, 1]);
    assert!(index.memory_bytes() < 4_001 * 4, "{}", index.memory_bytes());
    assert_eq!(index.group_of_json(&[&json!(4_000)]), Some(1));
    assert_eq!(index.group_of_json(&[&json!(2_000)]), None);
}
