//! `as_of` and `last_n` on `POST /get-online-features` as a client sees them: each entity's row
//! at or before an instant (ties by created timestamp, then table order), TTL measured from
//! that instant at its boundary, the N latest values newest first as lists in both layouts,
//! shorter and empty lists, both fields together, composite keys, what the reads see of pushes
//! and rewrites, every bad value of either field, the configurable maximum, the spec, and the
//! unchanged bytes of a request without them.

use std::sync::Arc;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use featurestore::cache::ManualClock;
use featurestore::config::Config;
use serde_json::{Value, json};

use crate::common::instants::*;
use crate::common::{TestResult, TestServer, assert_problem, micros, online_slots, slot};
use crate::online::save_user_movie;

const ONLINE: &str = "/get-online-features";

/// T0 shifted by `seconds`, as RFC 3339.
fn t0(seconds: i64) -> String {
    let base = DateTime::parse_from_rfc3339(T0)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default();
    (base + Duration::seconds(seconds)).to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

/// Entities `user_id` and `movie_id`; views:
/// - `user_profile` (TTL 10 days): user 1 has three versions (T0 − 2 d, T0 − 1 d, T0), written
///   out of order; user 2 one version with a null genre; user 4 one version now and one in
///   the future; user 5 only a future one; user 7 two versions at the same instant (the later
///   table row wins the tie);
/// - `user_activity` (TTL one hour): user 1 clicked at T0 − 2 h and T0 − 30 min;
/// - `user_scores` (no TTL, created timestamps): three versions of user 1 at the same event
///   time, created at different instants (the latest created wins);
/// - `user_movie` (keyed by both entities).
async fn fixture_with(tweak: impl FnOnce(&mut Config)) -> TestResult<TestServer> {
    let clock = Arc::new(ManualClock::starting_at(micros(T0)?));
    let server = TestServer::start_with_clock(clock, tweak)?;
    server
        .save(
            "user",
            "user_profile",
            json!({"entity_key": ["user_id"], "records": [
                {"user_id": 1, "age": 31, "favorite_genre": "Drama", "event_timestamp": T0_MINUS_1D},
                {"user_id": 1, "age": 32, "favorite_genre": "Action", "event_timestamp": T0},
                {"user_id": 2, "age": 25, "favorite_genre": null, "event_timestamp": T0_MINUS_10M},
                {"user_id": 1, "age": 30, "favorite_genre": "Comedy", "event_timestamp": T0_MINUS_2D},
                {"user_id": 4, "age": 40, "favorite_genre": "Crime", "event_timestamp": T0_MINUS_5M},
                {"user_id": 4, "age": 41, "favorite_genre": "Crime", "event_timestamp": T0_PLUS_1H},
                {"user_id": 5, "age": 60, "favorite_genre": "Drama", "event_timestamp": T0_PLUS_1H},
                {"user_id": 7, "age": 70, "favorite_genre": "Jazz", "event_timestamp": T0_MINUS_3H},
                {"user_id": 7, "age": 71, "favorite_genre": "Soul", "event_timestamp": T0_MINUS_3H},
            ]}),
        )
        .await?;
    server
        .save(
            "user",
            "user_activity",
            json!({"entity_key": ["user_id"], "records": [
                {"user_id": 1, "clicks": 5, "event_timestamp": T0_MINUS_2H},
                {"user_id": 1, "clicks": 6, "event_timestamp": T0_MINUS_30M},
            ]}),
        )
        .await?;
    server
        .save(
            "user",
            "user_scores",
            json!({"entity_key": ["user_id"], "created_timestamp_field": "created", "records": [
                {"user_id": 1, "score": 1, "event_timestamp": T0_MINUS_1H, "created": T0_MINUS_1H},
                {"user_id": 1, "score": 2, "event_timestamp": T0_MINUS_1H, "created": T0_MINUS_10M},
                {"user_id": 1, "score": 3, "event_timestamp": T0_MINUS_1H, "created": T0_MINUS_30M},
            ]}),
        )
        .await?;
    save_user_movie(&server).await?;
    server
        .apply(&json!({
            "entities": [
                {"name": "user_id", "value_type": "int64"},
                {"name": "movie_id", "value_type": "int64"},
            ],
            "feature_views": [
                {"name": "user_profile", "group": "user", "entities": ["user_id"],
                 "timestamp_field": "event_timestamp", "ttl_seconds": 10 * DAY},
                {"name": "user_activity", "group": "user", "entities": ["user_id"],
                 "timestamp_field": "event_timestamp", "ttl_seconds": HOUR},
                {"name": "user_scores", "group": "user", "entities": ["user_id"],
                 "timestamp_field": "event_timestamp", "created_timestamp_field": "created"},
                {"name": "user_movie", "group": "interaction", "entities": ["user_id", "movie_id"],
                 "timestamp_field": "event_timestamp", "ttl_seconds": DAY},
            ],
        }))
        .await?;
    Ok(server)
}

async fn fixture() -> TestResult<TestServer> {
    fixture_with(|_| {}).await
}

/// `POST /get-online-features`, checked to be a 200; returns the body.
async fn online_ok(server: &TestServer, body: Value) -> TestResult<Value> {
    let (status, answer) = server.post(ONLINE, &body).await?;
    if status != 200 {
        return Err(format!("{body} answered {status}: {answer}").into());
    }
    Ok(answer)
}

/// Per entity row, the `(value, status, event time)` list of the result named `name` of a
/// column-major `last_n` answer.
fn series(answer: &Value, name: &str) -> TestResult<Vec<Vec<(Value, String, String)>>> {
    let names = answer["metadata"]["feature_names"]
        .as_array()
        .ok_or_else(|| format!("no feature_names in {answer}"))?;
    let i = names
        .iter()
        .position(|n| n == name)
        .ok_or_else(|| format!("no result named {name} in {answer}"))?;
    let result = &answer["results"][i];
    let lists = |field: &str| {
        result[field]
            .as_array()
            .cloned()
            .ok_or_else(|| format!("result {name} has no {field} in {answer}"))
    };
    let (values, statuses, times) = (
        lists("values")?,
        lists("statuses")?,
        lists("event_timestamps")?,
    );
    let mut out = Vec::new();
    for ((v, s), t) in values.iter().zip(&statuses).zip(&times) {
        let (Some(v), Some(s), Some(t)) = (v.as_array(), s.as_array(), t.as_array()) else {
            return Err(format!("result {name} is not a list per entity row in {answer}").into());
        };
        if v.len() != s.len() || v.len() != t.len() {
            return Err(format!("lists of {name} differ in length in {answer}").into());
        }
        out.push(
            v.iter()
                .zip(s)
                .zip(t)
                .map(|((v, s), t)| {
                    let text = |x: &Value| x.as_str().unwrap_or_default().to_owned();
                    (v.clone(), text(s), text(t))
                })
                .collect(),
        );
    }
    Ok(out)
}

fn bad_field(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn as_of_answers_each_entity_row_at_or_before_the_instant() -> TestResult {
    let server = fixture().await?;
    // Ten minutes after user 1's second version: that one, not the newest.
    let answer = online_ok(
        &server,
        json!({"features": ["user_profile:age", "user_profile:favorite_genre"],
               "entities": {"user_id": [1, 2, 7, 999]}, "as_of": t0(-DAY + 600)}),
    )
    .await?;
    assert_eq!(
        online_slots(&answer, "age")?,
        [
            slot(json!(31), "PRESENT", T0_MINUS_1D),
            // User 2's only row is later than as_of.
            slot(Value::Null, "NOT_FOUND", EPOCH),
            slot(Value::Null, "NOT_FOUND", EPOCH),
            slot(Value::Null, "NOT_FOUND", EPOCH),
        ]
    );
    assert_eq!(online_slots(&answer, "user_id")?.len(), 4);
    // The same instant with another offset is the same answer.
    let offset = online_ok(
        &server,
        json!({"features": ["user_profile:age", "user_profile:favorite_genre"],
               "entities": {"user_id": [1, 2, 7, 999]}, "as_of": "2025-05-31T12:10:00+02:00"}),
    )
    .await?;
    assert_eq!(t0(-DAY + 600), "2025-05-31T10:10:00Z");
    assert_eq!(offset, answer);
    // Exactly at an event: that row is in (at *or before*).
    let exact = online_ok(
        &server,
        json!({"features": ["user_profile:favorite_genre"], "entities": {"user_id": [1, 7, 2]},
               "as_of": T0_MINUS_2D}),
    )
    .await?;
    assert_eq!(
        online_slots(&exact, "favorite_genre")?,
        [
            slot(json!("Comedy"), "PRESENT", T0_MINUS_2D),
            slot(Value::Null, "NOT_FOUND", EPOCH),
            slot(Value::Null, "NOT_FOUND", EPOCH),
        ]
    );
    // Later: the two rows of user 7 share an event time; the later table row wins, and
    // user 2's null genre is NULL_VALUE.
    let later = online_ok(
        &server,
        json!({"features": ["user_profile:favorite_genre"], "entities": {"user_id": [7, 2]},
               "as_of": T0_MINUS_1M}),
    )
    .await?;
    assert_eq!(
        online_slots(&later, "favorite_genre")?,
        [
            slot(json!("Soul"), "PRESENT", T0_MINUS_3H),
            slot(Value::Null, "NULL_VALUE", T0_MINUS_10M),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn as_of_ties_go_to_the_latest_created_timestamp() -> TestResult {
    let server = fixture().await?;
    let answer = online_ok(
        &server,
        json!({"features": ["user_scores:score"], "entities": {"user_id": [1]}, "as_of": T0_MINUS_5M}),
    )
    .await?;
    assert_eq!(
        online_slots(&answer, "score")?,
        [slot(json!(2), "PRESENT", T0_MINUS_1H)]
    );
    Ok(())
}

#[tokio::test]
async fn as_of_measures_ttl_from_the_instant_inclusive_at_the_boundary() -> TestResult {
    let server = fixture().await?;
    let at = |as_of: String| json!({"features": ["user_activity:clicks"], "entities": {"user_id": [1]}, "as_of": as_of});
    // One hour after the click of T0 − 2 h: exactly at the TTL, still PRESENT.
    let edge = online_ok(&server, at(T0_MINUS_1H.to_owned())).await?;
    assert_eq!(
        online_slots(&edge, "clicks")?,
        [slot(json!(5), "PRESENT", T0_MINUS_2H)]
    );
    // A second later it is older than as_of − ttl: null, with its event time.
    let past = online_ok(&server, at(t0(-HOUR + 1))).await?;
    assert_eq!(
        online_slots(&past, "clicks")?,
        [slot(Value::Null, "OUTSIDE_MAX_AGE", T0_MINUS_2H)]
    );
    // Now (T0) that value is outside the TTL too, but the later click is not.
    let now = online_ok(&server, at(T0_MINUS_1M.to_owned())).await?;
    assert_eq!(
        online_slots(&now, "clicks")?,
        [slot(json!(6), "PRESENT", T0_MINUS_30M)]
    );
    Ok(())
}

#[tokio::test]
async fn as_of_now_answers_exactly_what_the_plain_lookup_answers() -> TestResult {
    let server = fixture().await?;
    let plain = json!({
        "features": ["user_profile:age", "user_profile:favorite_genre", "user_activity:clicks",
                     "user_movie:rating"],
        "entities": {"user_id": [1, 2, 4, 5, 7, 999], "movie_id": [10, 10, 10, 11, 10, 10]},
    });
    for layout in ["columns", "rows"] {
        let mut body = plain.clone();
        body["layout"] = json!(layout);
        let expected = online_ok(&server, body.clone()).await?;
        body["as_of"] = json!(T0);
        assert_eq!(online_ok(&server, body).await?, expected, "{layout}");
    }
    Ok(())
}

#[tokio::test]
async fn as_of_in_the_future_sees_rows_dated_up_to_it() -> TestResult {
    let server = fixture().await?;
    let answer = online_ok(
        &server,
        json!({"features": ["user_profile:age"], "entities": {"user_id": [4, 5]}, "as_of": T0_PLUS_2H}),
    )
    .await?;
    assert_eq!(
        online_slots(&answer, "age")?,
        [
            slot(json!(41), "PRESENT", T0_PLUS_1H),
            slot(json!(60), "PRESENT", T0_PLUS_1H),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn as_of_with_rows_layout_keeps_the_plain_rows_shape() -> TestResult {
    let server = fixture().await?;
    let answer = online_ok(
        &server,
        json!({"features": ["user_profile:age"], "entities": {"user_id": [1, 999]},
               "as_of": t0(-DAY), "layout": "rows"}),
    )
    .await?;
    assert_eq!(
        answer,
        json!({
            "rows": [{"user_id": 1, "age": 31}, {"user_id": 999, "age": null}],
            "statuses": [{"age": "PRESENT"}, {"age": "NOT_FOUND"}],
        })
    );
    Ok(())
}

#[tokio::test]
async fn last_n_lists_the_latest_values_newest_first_with_statuses_and_event_times() -> TestResult {
    let server = fixture().await?;
    let answer = online_ok(
        &server,
        json!({"features": ["user_profile:age", "user_profile:favorite_genre"],
               "entities": {"user_id": [1, 2, 4, 5, 999]}, "last_n": 2}),
    )
    .await?;
    // Entity key columns stay scalars.
    assert_eq!(
        online_slots(&answer, "user_id")?,
        [1, 2, 4, 5, 999].map(|u| slot(json!(u), "PRESENT", EPOCH))
    );
    assert_eq!(
        series(&answer, "age")?,
        [
            vec![
                slot(json!(32), "PRESENT", T0),
                slot(json!(31), "PRESENT", T0_MINUS_1D)
            ],
            // Fewer versions than asked: a shorter list.
            vec![slot(json!(25), "PRESENT", T0_MINUS_10M)],
            // The future row is not served before its time.
            vec![slot(json!(40), "PRESENT", T0_MINUS_5M)],
            // Only a future row, or no row at all: empty lists.
            vec![],
            vec![],
        ]
    );
    assert_eq!(
        series(&answer, "favorite_genre")?[..2],
        [
            vec![
                slot(json!("Action"), "PRESENT", T0),
                slot(json!("Drama"), "PRESENT", T0_MINUS_1D)
            ],
            vec![slot(Value::Null, "NULL_VALUE", T0_MINUS_10M)],
        ]
    );
    assert_eq!(
        answer["metadata"]["feature_names"],
        json!(["user_id", "age", "favorite_genre"])
    );
    // The field that tells a list-valued answer from a plain one; a plain answer lacks it.
    assert_eq!(answer["last_n"], 2, "{answer}");
    let plain = online_ok(
        &server,
        json!({"features": ["user_profile:age"], "entities": {"user_id": [1]}, "as_of": T0}),
    )
    .await?;
    assert!(plain.get("last_n").is_none(), "{plain}");
    Ok(())
}

#[tokio::test]
async fn last_n_marks_values_older_than_the_ttl_outside_max_age() -> TestResult {
    let server = fixture().await?;
    let answer = online_ok(
        &server,
        json!({"features": ["user_activity:clicks"], "entities": {"user_id": [1]}, "last_n": 5}),
    )
    .await?;
    assert_eq!(
        series(&answer, "clicks")?,
        [vec![
            slot(json!(6), "PRESENT", T0_MINUS_30M),
            slot(Value::Null, "OUTSIDE_MAX_AGE", T0_MINUS_2H),
        ]]
    );
    Ok(())
}

#[tokio::test]
async fn last_n_with_as_of_lists_the_latest_values_at_or_before_it() -> TestResult {
    let server = fixture().await?;
    let answer = online_ok(
        &server,
        json!({"features": ["user_profile:age", "user_scores:score", "user_activity:clicks"],
               "entities": {"user_id": [1]}, "last_n": 3, "as_of": T0_MINUS_1H}),
    )
    .await?;
    assert_eq!(
        series(&answer, "age")?,
        [vec![
            slot(json!(31), "PRESENT", T0_MINUS_1D),
            slot(json!(30), "PRESENT", T0_MINUS_2D),
        ]]
    );
    // Equal event times: the latest created first, then the earlier ones.
    assert_eq!(
        series(&answer, "score")?,
        [vec![
            slot(json!(2), "PRESENT", T0_MINUS_1H),
            slot(json!(3), "PRESENT", T0_MINUS_1H),
            slot(json!(1), "PRESENT", T0_MINUS_1H),
        ]]
    );
    // TTL from as_of: the click of T0 − 2 h is exactly one hour before it.
    assert_eq!(
        series(&answer, "clicks")?,
        [vec![slot(json!(5), "PRESENT", T0_MINUS_2H)]]
    );
    Ok(())
}

#[tokio::test]
async fn last_n_rows_layout_lists_values_statuses_and_event_timestamps() -> TestResult {
    let server = fixture().await?;
    let answer = online_ok(
        &server,
        json!({"features": ["user_profile:age", "user_activity:clicks"],
               "entities": {"user_id": [1, 999]}, "last_n": 2, "layout": "rows"}),
    )
    .await?;
    assert_eq!(
        answer,
        json!({
            "rows": [
                {"user_id": 1, "age": [32, 31], "clicks": [6, null]},
                {"user_id": 999, "age": [], "clicks": []},
            ],
            "statuses": [
                {"age": ["PRESENT", "PRESENT"], "clicks": ["PRESENT", "OUTSIDE_MAX_AGE"]},
                {"age": [], "clicks": []},
            ],
            "event_timestamps": [
                {"age": [T0, T0_MINUS_1D], "clicks": [T0_MINUS_30M, T0_MINUS_2H]},
                {"age": [], "clicks": []},
            ],
            "last_n": 2,
        })
    );
    Ok(())
}

#[tokio::test]
async fn last_n_on_a_composite_key_with_full_feature_names() -> TestResult {
    let server = fixture().await?;
    let answer = online_ok(
        &server,
        json!({"features": ["user_movie:rating"], "full_feature_names": true,
               "entities": {"user_id": [1, 1, 2, 2], "movie_id": [10, "11", 10, 11]}, "last_n": 10}),
    )
    .await?;
    assert_eq!(
        series(&answer, "user_movie__rating")?,
        [
            vec![
                slot(json!(5), "PRESENT", T0_MINUS_1H),
                slot(json!(2), "PRESENT", T0_MINUS_3H)
            ],
            // An integer key sent as a string matches, as in a plain lookup.
            vec![slot(json!(3), "PRESENT", T0_MINUS_1H)],
            vec![slot(json!(4), "PRESENT", T0_MINUS_1H)],
            vec![],
        ]
    );
    Ok(())
}

#[tokio::test]
async fn as_of_and_last_n_read_the_current_table_version_and_not_online_only_pushes() -> TestResult
{
    let server = fixture().await?;
    // A backfill rewrites the table: user 1's value of two days ago is corrected.
    server
        .save(
            "user",
            "user_activity",
            json!({"entity_key": ["user_id"], "records": [
                {"user_id": 1, "clicks": 50, "event_timestamp": T0_MINUS_2H},
                {"user_id": 1, "clicks": 6, "event_timestamp": T0_MINUS_30M},
            ]}),
        )
        .await?;
    let body = json!({"features": ["user_activity:clicks"], "entities": {"user_id": [1, 8]},
                      "as_of": T0_MINUS_1H});
    let answer = online_ok(&server, body.clone()).await?;
    // An instant before the rewrite is answered from the current version's rows.
    assert_eq!(
        online_slots(&answer, "clicks")?,
        [
            slot(json!(50), "PRESENT", T0_MINUS_2H),
            slot(Value::Null, "NOT_FOUND", EPOCH)
        ]
    );
    // Rows pushed only online are served by the plain lookup but are not in the table's
    // history; rows pushed offline are.
    for (user, to) in [(8, "online"), (9, "offline")] {
        let (status, pushed) = server
            .post(
                "/push",
                &json!({"feature_view": "user_activity", "to": to, "df": {
                    "user_id": [user], "clicks": [user], "event_timestamp": [T0_MINUS_1M]}}),
            )
            .await?;
        assert_eq!(status, 200, "{pushed}");
    }
    let plain = online_ok(
        &server,
        json!({"features": ["user_activity:clicks"], "entities": {"user_id": [8, 9]}}),
    )
    .await?;
    assert_eq!(
        online_slots(&plain, "clicks")?,
        [
            slot(json!(8), "PRESENT", T0_MINUS_1M),
            slot(json!(9), "PRESENT", T0_MINUS_1M)
        ]
    );
    let last = online_ok(
        &server,
        json!({"features": ["user_activity:clicks"], "entities": {"user_id": [8, 9]}, "last_n": 3}),
    )
    .await?;
    assert_eq!(
        series(&last, "clicks")?,
        [vec![], vec![slot(json!(9), "PRESENT", T0_MINUS_1M)]]
    );
    Ok(())
}

#[tokio::test]
async fn a_request_without_as_of_and_last_n_answers_the_same_bytes_as_with_them_null() -> TestResult
{
    let server = fixture().await?;
    for layout in ["columns", "rows"] {
        let plain = json!({"features": ["user_profile:age", "user_movie:rating"],
                           "entities": {"user_id": [1, 2, 999], "movie_id": [10, 10, 11]},
                           "layout": layout});
        let mut nulls = plain.clone();
        nulls["as_of"] = Value::Null;
        nulls["last_n"] = Value::Null;
        let (status, without) = server.post_text(ONLINE, &plain).await?;
        assert_eq!(status, 200, "{without}");
        let (status, with_nulls) = server.post_text(ONLINE, &nulls).await?;
        assert_eq!(status, 200, "{with_nulls}");
        assert_eq!(without, with_nulls, "{layout}");
        assert!(!without.contains("[["), "{without}");
    }
    Ok(())
}

#[tokio::test]
async fn a_bad_as_of_or_last_n_is_422_naming_the_field() -> TestResult {
    let server = fixture().await?;
    let base = json!({"features": ["user_profile:age"], "entities": {"user_id": [1]}});
    for (field, value) in [
        ("as_of", json!("yesterday")),
        ("as_of", json!("2025-06-01")),
        ("as_of", json!(1_748_772_000)),
        ("as_of", json!(["2025-06-01T10:00:00Z"])),
        ("last_n", json!(0)),
        ("last_n", json!(-1)),
        ("last_n", json!(2.5)),
        ("last_n", json!("3")),
        ("last_n", json!(101)),
    ] {
        let mut body = base.clone();
        body[field] = value.clone();
        let (status, problem) = server.post(ONLINE, &body).await?;
        assert_problem(status, &problem, 422, "invalid_body");
        assert_eq!(bad_field(&problem), [field], "{field}={value}: {problem}");
    }
    let mut body = base.clone();
    body["last_n"] = json!(101);
    let (_, problem) = server.post(ONLINE, &body).await?;
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("api.max_last_n (100)"), "{problem}");
    // The default maximum itself is accepted.
    body["last_n"] = json!(100);
    online_ok(&server, body).await?;
    Ok(())
}

#[tokio::test]
async fn the_last_n_maximum_is_configurable() -> TestResult {
    let server = fixture_with(|c| c.api.max_last_n = 3).await?;
    let body = |n: u64| json!({"features": ["user_profile:age"], "entities": {"user_id": [1]}, "last_n": n});
    let answer = online_ok(&server, body(3)).await?;
    assert_eq!(series(&answer, "age")?[0].len(), 3);
    let (status, problem) = server.post(ONLINE, &body(4)).await?;
    assert_problem(status, &problem, 422, "invalid_body");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("api.max_last_n (3)")),
        "{problem}"
    );
    Ok(())
}

#[test]
fn the_last_n_maximum_defaults_to_100_and_zero_is_refused_at_start_up() -> TestResult {
    assert_eq!(Config::defaults()?.api.max_last_n, 100);
    let env = [("FEATURESTORE__API__MAX_LAST_N".to_owned(), "0".to_owned())];
    match Config::load(None, env) {
        Ok(_) => Err("api.max_last_n = 0 was accepted".into()),
        Err(e) => {
            assert!(e.to_string().contains("api.max_last_n"), "{e}");
            Ok(())
        }
    }
}

#[tokio::test]
async fn the_spec_documents_as_of_last_n_and_the_list_shapes() -> TestResult {
    let server = TestServer::start()?;
    let (status, spec) = server.get("/openapi.json").await?;
    assert_eq!(status, 200);
    let schemas = &spec["components"]["schemas"];
    let request = &schemas["OnlineFeaturesRequest"]["properties"];
    assert!(request["as_of"].is_object(), "{request}");
    assert_eq!(request["last_n"]["minimum"], 1, "{request}");
    for name in [
        "OnlineSeriesResponse",
        "OnlineSeriesRowsResponse",
        "OnlineSeriesResult",
    ] {
        assert!(schemas[name].is_object(), "{name} is not in the spec");
    }
    // Generated clients try the shapes in order and keep the first that reads: the
    // list-valued ones come first and require `last_n`, which plain answers never have.
    let shapes: Vec<String> = spec["components"]["schemas"]["OnlineAnswer"]["oneOf"]
        .as_array()
        .ok_or("OnlineAnswer is not a oneOf")?
        .iter()
        .map(|s| s["$ref"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        shapes,
        [
            "OnlineSeriesResponse",
            "OnlineSeriesRowsResponse",
            "OnlineFeaturesResponse",
            "OnlineRowsResponse"
        ]
        .map(|name| format!("#/components/schemas/{name}")),
    );
    for name in ["OnlineSeriesResponse", "OnlineSeriesRowsResponse"] {
        let required = schemas[name]["required"].to_string();
        assert!(required.contains("\"last_n\""), "{name}: {required}");
    }
    for name in ["OnlineFeaturesResponse", "OnlineRowsResponse"] {
        assert!(schemas[name]["properties"]["last_n"].is_null(), "{name}");
    }
    Ok(())
}
