//! Feast-compatible online serving as a client sees it: `POST /get-online-features`'s
//! column-major answer field by field, the latest row per key (rows dated after now are not
//! served until the clock reaches them), every status (TTL enforced on read, at its boundary,
//! on a manual clock), integer keys sent as strings, multi-entity views, features of several
//! views, feature services, every error (colliding short names and a view whose table lost a
//! column included), the `rows` layout, read-after-write, the entity-row limit, Feast's own
//! client body, and the demo data.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use featurestore::cache::ManualClock;
use featurestore::config::Config;
use serde_json::{Value, json};

use crate::common::instants::*;
use crate::common::{
    TestResult, TestServer, assert_problem, featurestore_ok, micros, read, replace_externally,
};

const ONLINE: &str = "/get-online-features";
/// `user_profile`'s TTL: user 3's latest row (two hours old) is outside it.
const PROFILE_TTL_SECS: u64 = 3600;

/// `user/user_profile`, rows deliberately not in time order:
/// - user 1: three snapshots, the newest (age 32, "Action") at T0;
/// - user 2: one row at T0 − 10 min whose `favorite_genre` is null;
/// - user 3: one row at T0 − 2 h, older than the view's one-hour TTL;
/// - user 4: a row at T0 − 5 min and one at T0 + 1 h, in the future of the clock;
/// - user 5: only a row in the future.
fn profile_records() -> Value {
    json!([
        {"user_id": 1, "age": 31, "avg_rating": 4.0, "favorite_genre": "Drama", "event_timestamp": T0_MINUS_1D},
        {"user_id": 3, "age": 50, "avg_rating": 2.5, "favorite_genre": "Horror", "event_timestamp": T0_MINUS_2H},
        {"user_id": 1, "age": 32, "avg_rating": 4.5, "favorite_genre": "Action", "event_timestamp": T0},
        {"user_id": 4, "age": 41, "avg_rating": 3.9, "favorite_genre": "Crime", "event_timestamp": T0_PLUS_1H},
        {"user_id": 2, "age": 25, "avg_rating": 3.0, "favorite_genre": null, "event_timestamp": T0_MINUS_10M},
        {"user_id": 1, "age": 30, "avg_rating": 3.5, "favorite_genre": "Comedy", "event_timestamp": T0_MINUS_2D},
        {"user_id": 4, "age": 40, "avg_rating": 3.8, "favorite_genre": "Crime", "event_timestamp": T0_MINUS_5M},
        {"user_id": 5, "age": 60, "avg_rating": 4.9, "favorite_genre": "Drama", "event_timestamp": T0_PLUS_1H},
    ])
}

/// Entities `user_id` and `movie_id`; views `user_profile` (TTL one hour), `movie_metadata`
/// and `user_movie` (keyed by both); the service `recommender` names one feature and a whole
/// view.
fn registry_document() -> Value {
    json!({
        "entities": [
            {"name": "user_id", "value_type": "int64", "description": "A user"},
            {"name": "movie_id", "value_type": "int64", "description": "A movie"},
        ],
        "feature_views": [
            {"name": "user_profile", "group": "user", "entities": ["user_id"],
             "timestamp_field": "event_timestamp", "ttl_seconds": PROFILE_TTL_SECS},
            {"name": "movie_metadata", "group": "content", "entities": ["movie_id"],
             "timestamp_field": "event_timestamp", "ttl_seconds": 86_400},
            {"name": "user_movie", "group": "interaction", "entities": ["user_id", "movie_id"],
             "timestamp_field": "event_timestamp", "ttl_seconds": 86_400},
        ],
        "feature_services": [
            {"name": "recommender", "features": ["user_profile:age", "movie_metadata"]},
        ],
    })
}

/// Saves `interaction/user_movie`, keyed by user and movie: user 1's movie 10 rated twice
/// (2 at T0 − 3 h, 5 at T0 − 1 h), movie 11 once, user 2's movie 10 once.
pub(crate) async fn save_user_movie(server: &TestServer) -> TestResult {
    server
        .save(
            "interaction",
            "user_movie",
            json!({"entity_key": ["user_id", "movie_id"], "records": [
                {"user_id": 1, "movie_id": 10, "rating": 2, "event_timestamp": T0_MINUS_3H},
                {"user_id": 1, "movie_id": 10, "rating": 5, "event_timestamp": T0_MINUS_1H},
                {"user_id": 1, "movie_id": 11, "rating": 3, "event_timestamp": T0_MINUS_1H},
                {"user_id": 2, "movie_id": 10, "rating": 4, "event_timestamp": T0_MINUS_1H},
            ]}),
        )
        .await?;
    Ok(())
}

/// A server whose wall clock stands at T0, with the three tables written through the API and
/// the registry applied.
async fn fixture() -> TestResult<(TestServer, Arc<ManualClock>)> {
    fixture_with(|_| {}).await
}

/// [`fixture`] with a configuration tweak.
async fn fixture_with(
    tweak: impl FnOnce(&mut Config),
) -> TestResult<(TestServer, Arc<ManualClock>)> {
    let clock = Arc::new(ManualClock::starting_at(micros(T0)?));
    let server = TestServer::start_with_clock(clock.clone(), tweak)?;
    server
        .save(
            "user",
            "user_profile",
            json!({"records": profile_records(), "entity_key": ["user_id"]}),
        )
        .await?;
    server
        .save(
            "content",
            "movie_metadata",
            json!({"entity_key": ["movie_id"], "records": [
                {"movie_id": 10, "genre": "Sci-Fi", "avg_rating": 4.1, "event_timestamp": T0_MINUS_30M},
                {"movie_id": 11, "genre": "Comedy", "avg_rating": 3.2, "event_timestamp": T0_MINUS_30M},
            ]}),
        )
        .await?;
    save_user_movie(&server).await?;
    server.apply(&registry_document()).await?;
    Ok((server, clock))
}

/// `POST /get-online-features`.
async fn online(server: &TestServer, body: Value) -> TestResult<(u16, Value)> {
    server.post(ONLINE, &body).await
}

/// `POST /get-online-features`, checked to be a 200; returns the body.
async fn online_ok(server: &TestServer, body: Value) -> TestResult<Value> {
    let (status, answer) = online(server, body.clone()).await?;
    if status != 200 {
        return Err(format!("{body} answered {status}: {answer}").into());
    }
    Ok(answer)
}

/// `POST /get-online-features` with `body` sent as written: `json!` sorts object keys, and the
/// order of the entity columns is part of what these tests check.
async fn online_as_written(server: &TestServer, body: &str) -> TestResult<(u16, Value)> {
    let response = server
        .client
        .post(server.url(ONLINE))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_owned())
        .send()
        .await?;
    read(response).await
}

/// [`online_as_written`], checked to be a 200; returns the body.
async fn online_as_written_ok(server: &TestServer, body: &str) -> TestResult<Value> {
    let (status, answer) = online_as_written(server, body).await?;
    if status != 200 {
        return Err(format!("{body} answered {status}: {answer}").into());
    }
    Ok(answer)
}

/// The `(value, status, event timestamp)` of each entity row of the result named `name`.
fn column(answer: &Value, name: &str) -> TestResult<Vec<(Value, String, String)>> {
    let names = answer["metadata"]["feature_names"]
        .as_array()
        .ok_or_else(|| format!("no feature_names in {answer}"))?;
    let i = names
        .iter()
        .position(|n| n == name)
        .ok_or_else(|| format!("no result named {name} in {answer}"))?;
    let result = &answer["results"][i];
    let (values, statuses, timestamps) = (
        result["values"].as_array(),
        result["statuses"].as_array(),
        result["event_timestamps"].as_array(),
    );
    let (Some(values), Some(statuses), Some(timestamps)) = (values, statuses, timestamps) else {
        return Err(format!("result {name} is incomplete in {answer}").into());
    };
    Ok(values
        .iter()
        .zip(statuses)
        .zip(timestamps)
        .map(|((v, s), t)| {
            (
                v.clone(),
                s.as_str().unwrap_or_default().to_owned(),
                t.as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect())
}

/// One slot of [`column`], for comparisons.
fn slot(value: Value, status: &str, timestamp: &str) -> (Value, String, String) {
    (value, status.to_owned(), timestamp.to_owned())
}

/// The fields of each entry of `errors` of a problem.
fn error_fields(problem: &Value) -> Vec<&str> {
    problem["errors"]
        .as_array()
        .map(|errors| errors.iter().filter_map(|e| e["field"].as_str()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_answer_is_column_major_with_entity_keys_first_and_a_slot_per_entity_row() -> TestResult
{
    let (server, _clock) = fixture().await?;
    let answer = online_ok(
        &server,
        json!({
            "features": ["user_profile:age", "user_profile:favorite_genre"],
            "entities": {"user_id": [1, 999]},
        }),
    )
    .await?;
    assert_eq!(
        answer,
        json!({
            "metadata": {"feature_names": ["user_id", "age", "favorite_genre"]},
            "results": [
                {"values": [1, 999], "statuses": ["PRESENT", "PRESENT"],
                 "event_timestamps": [EPOCH, EPOCH]},
                {"values": [32, null], "statuses": ["PRESENT", "NOT_FOUND"],
                 "event_timestamps": [T0, EPOCH]},
                {"values": ["Action", null], "statuses": ["PRESENT", "NOT_FOUND"],
                 "event_timestamps": [T0, EPOCH]},
            ],
        })
    );
    Ok(())
}

#[tokio::test]
async fn the_latest_snapshot_of_a_key_wins_whatever_the_row_order() -> TestResult {
    let (server, _clock) = fixture().await?;
    let answer = online_ok(
        &server,
        json!({
            "features": ["user_profile:age", "user_profile:avg_rating", "user_profile:favorite_genre"],
            "entities": {"user_id": [1]},
        }),
    )
    .await?;
    assert_eq!(column(&answer, "age")?, [slot(json!(32), "PRESENT", T0)]);
    assert_eq!(
        column(&answer, "avg_rating")?,
        [slot(json!(4.5), "PRESENT", T0)]
    );
    assert_eq!(
        column(&answer, "favorite_genre")?,
        [slot(json!("Action"), "PRESENT", T0)]
    );
    Ok(())
}

#[tokio::test]
async fn a_row_dated_after_now_is_not_served() -> TestResult {
    let (server, _clock) = fixture().await?;
    let answer = online_ok(
        &server,
        json!({"features": ["user_profile:age"], "entities": {"user_id": [4, 5]}}),
    )
    .await?;
    assert_eq!(
        column(&answer, "age")?,
        [
            slot(json!(40), "PRESENT", T0_MINUS_5M),
            slot(Value::Null, "NOT_FOUND", EPOCH),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn a_row_dated_after_now_is_served_once_the_clock_passes_it() -> TestResult {
    let (server, clock) = fixture().await?;
    let request = json!({"features": ["user_profile:age"], "entities": {"user_id": [4, 5]}});
    let before = online_ok(&server, request.clone()).await?;
    assert_eq!(
        column(&before, "age")?[0],
        slot(json!(40), "PRESENT", T0_MINUS_5M)
    );

    // Now T0 + 90 min: the rows of T0 + 1 h are in the past and within the one-hour TTL.
    clock.advance(Duration::from_secs(90 * 60));
    let after = online_ok(&server, request).await?;
    assert_eq!(
        column(&after, "age")?,
        [
            slot(json!(41), "PRESENT", T0_PLUS_1H),
            slot(json!(60), "PRESENT", T0_PLUS_1H),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn each_status_with_its_value_and_timestamp() -> TestResult {
    let (server, _clock) = fixture().await?;
    // Users: present; null genre; older than the TTL; unknown.
    let answer = online_ok(
        &server,
        json!({
            "features": ["user_profile:favorite_genre", "user_profile:age"],
            "entities": {"user_id": [1, 2, 3, 999]},
        }),
    )
    .await?;
    assert_eq!(
        column(&answer, "favorite_genre")?,
        [
            slot(json!("Action"), "PRESENT", T0),
            slot(Value::Null, "NULL_VALUE", T0_MINUS_10M),
            slot(Value::Null, "OUTSIDE_MAX_AGE", T0_MINUS_2H),
            slot(Value::Null, "NOT_FOUND", EPOCH),
        ]
    );
    assert_eq!(
        column(&answer, "age")?,
        [
            slot(json!(32), "PRESENT", T0),
            slot(json!(25), "PRESENT", T0_MINUS_10M),
            slot(Value::Null, "OUTSIDE_MAX_AGE", T0_MINUS_2H),
            slot(Value::Null, "NOT_FOUND", EPOCH),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn ttl_includes_its_boundary_and_expires_one_microsecond_later() -> TestResult {
    // The clock stands exactly one TTL after the row.
    let clock = Arc::new(ManualClock::starting_at(micros(T0)? + 3600 * 1_000_000));
    let server = TestServer::start_with_clock(clock.clone(), |_| {})?;
    server
        .save(
            "user",
            "sessions",
            json!({"entity_key": ["user_id"], "records": [
                {"user_id": 1, "clicks": 7, "event_timestamp": T0},
            ]}),
        )
        .await?;
    server
        .apply(&json!({
            "entities": [{"name": "user_id", "value_type": "int64"}],
            "feature_views": [{"name": "sessions", "group": "user", "entities": ["user_id"],
                               "timestamp_field": "event_timestamp", "ttl_seconds": 3600}],
        }))
        .await?;
    let request = json!({"features": ["sessions:clicks"], "entities": {"user_id": [1]}});

    let at_boundary = online_ok(&server, request.clone()).await?;
    assert_eq!(
        column(&at_boundary, "clicks")?,
        [slot(json!(7), "PRESENT", T0)]
    );

    clock.advance(Duration::from_micros(1));
    let past_it = online_ok(&server, request).await?;
    assert_eq!(
        column(&past_it, "clicks")?,
        [slot(Value::Null, "OUTSIDE_MAX_AGE", T0)]
    );
    Ok(())
}

#[tokio::test]
async fn integer_keys_match_ids_sent_as_numbers_or_numeric_strings() -> TestResult {
    let (server, _clock) = fixture().await?;
    let answer = online_ok(
        &server,
        json!({"features": ["user_profile:age"], "entities": {"user_id": [1, "1", "2"]}}),
    )
    .await?;
    // The entity column echoes what was sent.
    assert_eq!(
        column(&answer, "user_id")?,
        [
            slot(json!(1), "PRESENT", EPOCH),
            slot(json!("1"), "PRESENT", EPOCH),
            slot(json!("2"), "PRESENT", EPOCH),
        ]
    );
    assert_eq!(
        column(&answer, "age")?,
        [
            slot(json!(32), "PRESENT", T0),
            slot(json!(32), "PRESENT", T0),
            slot(json!(25), "PRESENT", T0_MINUS_10M),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn integer_keys_do_not_match_non_canonical_numeric_strings() -> TestResult {
    let (server, _clock) = fixture().await?;
    let answer = online_ok(
        &server,
        json!({"features": ["user_profile:age"], "entities": {"user_id": ["01", " 1", "1 ", "+1", "1"]}}),
    )
    .await?;
    let statuses: Vec<String> = column(&answer, "age")?
        .into_iter()
        .map(|(_, status, _)| status)
        .collect();
    assert_eq!(
        statuses,
        [
            "NOT_FOUND",
            "NOT_FOUND",
            "NOT_FOUND",
            "NOT_FOUND",
            "PRESENT"
        ]
    );
    Ok(())
}

#[tokio::test]
async fn a_multi_entity_view_looks_up_each_key_pair() -> TestResult {
    let (server, _clock) = fixture().await?;
    let answer = online_as_written_ok(
        &server,
        r#"{"features": ["user_movie:rating"],
            "entities": {"user_id": [1, 1, 2, 2], "movie_id": [10, 11, 10, 11]}}"#,
    )
    .await?;
    assert_eq!(
        answer["metadata"]["feature_names"],
        json!(["user_id", "movie_id", "rating"])
    );
    assert_eq!(answer["results"][0]["values"], json!([1, 1, 2, 2]));
    assert_eq!(answer["results"][1]["values"], json!([10, 11, 10, 11]));
    assert_eq!(
        column(&answer, "rating")?,
        [
            slot(json!(5), "PRESENT", T0_MINUS_1H),
            slot(json!(3), "PRESENT", T0_MINUS_1H),
            slot(json!(4), "PRESENT", T0_MINUS_1H),
            slot(Value::Null, "NOT_FOUND", EPOCH),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn an_entity_is_looked_up_by_its_join_key_when_that_differs_from_its_name() -> TestResult {
    let (server, _clock) = fixture().await?;
    server
        .apply(&json!({
            "entities": [{"name": "customer", "join_key": "user_id", "value_type": "int64"}],
            "feature_views": [{"name": "user_profile", "group": "user", "entities": ["customer"],
                               "timestamp_field": "event_timestamp"}],
        }))
        .await?;
    let answer = online_ok(
        &server,
        json!({"features": ["user_profile:age"], "entities": {"user_id": [1]}}),
    )
    .await?;
    assert_eq!(
        answer["metadata"]["feature_names"],
        json!(["user_id", "age"])
    );
    assert_eq!(column(&answer, "age")?, [slot(json!(32), "PRESENT", T0)]);
    Ok(())
}

#[tokio::test]
async fn a_missing_join_key_is_422_naming_it() -> TestResult {
    let (server, _clock) = fixture().await?;
    let (status, body) = online(
        &server,
        json!({"features": ["user_movie:rating"], "entities": {"user_id": [1]}}),
    )
    .await?;
    assert_problem(status, &body, 422, "invalid_body");
    assert_eq!(error_fields(&body), ["entities.movie_id"], "body: {body}");
    Ok(())
}

#[tokio::test]
async fn entity_columns_of_different_lengths_are_422() -> TestResult {
    let (server, _clock) = fixture().await?;
    let (status, body) = online_as_written(
        &server,
        r#"{"features": ["user_movie:rating"], "entities": {"user_id": [1, 2], "movie_id": [10]}}"#,
    )
    .await?;
    assert_problem(status, &body, 422, "invalid_body");
    assert_eq!(error_fields(&body), ["entities.movie_id"], "body: {body}");
    Ok(())
}

#[tokio::test]
async fn features_of_two_views_come_after_the_entity_keys_in_request_order() -> TestResult {
    let (server, _clock) = fixture().await?;
    let answer = online_as_written_ok(
        &server,
        r#"{"features": ["user_profile:age", "movie_metadata:genre"],
            "entities": {"movie_id": [10, 11], "user_id": [1, 999]}}"#,
    )
    .await?;
    assert_eq!(
        answer["metadata"]["feature_names"],
        json!(["movie_id", "user_id", "age", "genre"])
    );
    assert_eq!(answer["results"][0]["values"], json!([10, 11]));
    assert_eq!(answer["results"][1]["values"], json!([1, 999]));
    assert_eq!(
        column(&answer, "age")?,
        [
            slot(json!(32), "PRESENT", T0),
            slot(Value::Null, "NOT_FOUND", EPOCH),
        ]
    );
    assert_eq!(
        column(&answer, "genre")?,
        [
            slot(json!("Sci-Fi"), "PRESENT", T0_MINUS_30M),
            slot(json!("Comedy"), "PRESENT", T0_MINUS_30M),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn full_feature_names_prefix_each_feature_with_its_view() -> TestResult {
    let (server, _clock) = fixture().await?;
    let answer = online_as_written_ok(
        &server,
        r#"{"features": ["user_profile:avg_rating", "movie_metadata:avg_rating"],
            "entities": {"user_id": [1], "movie_id": [10]},
            "full_feature_names": true}"#,
    )
    .await?;
    assert_eq!(
        answer["metadata"]["feature_names"],
        json!([
            "user_id",
            "movie_id",
            "user_profile__avg_rating",
            "movie_metadata__avg_rating"
        ])
    );
    assert_eq!(
        column(&answer, "user_profile__avg_rating")?,
        [slot(json!(4.5), "PRESENT", T0)]
    );
    assert_eq!(
        column(&answer, "movie_metadata__avg_rating")?,
        [slot(json!(4.1), "PRESENT", T0_MINUS_30M)]
    );
    Ok(())
}

#[tokio::test]
async fn a_feature_service_answers_its_features_and_every_feature_of_a_named_view() -> TestResult {
    let (server, _clock) = fixture().await?;
    let answer = online_as_written_ok(
        &server,
        r#"{"feature_service": "recommender", "entities": {"user_id": [1], "movie_id": [11]}}"#,
    )
    .await?;
    assert_eq!(
        answer["metadata"]["feature_names"],
        // The view's features in its table's column order (`json!` sent the keys sorted).
        json!(["user_id", "movie_id", "age", "avg_rating", "genre"])
    );
    assert_eq!(column(&answer, "age")?, [slot(json!(32), "PRESENT", T0)]);
    assert_eq!(
        column(&answer, "genre")?,
        [slot(json!("Comedy"), "PRESENT", T0_MINUS_30M)]
    );
    assert_eq!(
        column(&answer, "avg_rating")?,
        [slot(json!(3.2), "PRESENT", T0_MINUS_30M)]
    );

    let full = online_as_written_ok(
        &server,
        r#"{"feature_service": "recommender", "entities": {"user_id": [1], "movie_id": [11]},
            "full_feature_names": true}"#,
    )
    .await?;
    assert_eq!(
        full["metadata"]["feature_names"],
        json!([
            "user_id",
            "movie_id",
            "user_profile__age",
            "movie_metadata__avg_rating",
            "movie_metadata__genre"
        ])
    );
    Ok(())
}

#[tokio::test]
async fn both_or_neither_of_features_and_feature_service_is_422() -> TestResult {
    let (server, _clock) = fixture().await?;
    for body in [
        json!({"features": ["user_profile:age"], "feature_service": "recommender",
               "entities": {"user_id": [1]}}),
        json!({"entities": {"user_id": [1]}}),
        json!({"features": [], "entities": {"user_id": [1]}}),
    ] {
        let (status, problem) = online(&server, body.clone()).await?;
        assert_problem(status, &problem, 422, "invalid_body");
        assert_eq!(error_fields(&problem), ["features"], "request: {body}");
    }
    Ok(())
}

#[tokio::test]
async fn unknown_views_are_404_naming_every_unknown_reference() -> TestResult {
    let (server, _clock) = fixture().await?;
    let (status, body) = online(
        &server,
        json!({
            "features": ["ghost:a", "user_profile:age", "phantom:b", "user_profile:nope"],
            "entities": {"user_id": [1]},
        }),
    )
    .await?;
    assert_problem(status, &body, 404, "unknown_feature_views");
    assert_eq!(
        error_fields(&body),
        ["features", "features", "features"],
        "body: {body}"
    );
    let messages: Vec<&str> = body["errors"]
        .as_array()
        .map(|e| e.iter().filter_map(|e| e["message"].as_str()).collect())
        .unwrap_or_default();
    for (message, reference) in messages
        .iter()
        .zip(["ghost:a", "phantom:b", "user_profile:nope"])
    {
        assert!(
            message.contains(reference),
            "{message:?} should name {reference}"
        );
    }
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(!detail.contains("user_profile:age"), "detail: {detail}");
    Ok(())
}

#[tokio::test]
async fn unknown_features_of_a_known_view_are_404_naming_each() -> TestResult {
    let (server, _clock) = fixture().await?;
    let (status, body) = online(
        &server,
        json!({
            "features": ["user_profile:age", "user_profile:nope", "user_profile:zip"],
            "entities": {"user_id": [1]},
        }),
    )
    .await?;
    assert_problem(status, &body, 404, "unknown_features");
    assert_eq!(
        error_fields(&body),
        ["features", "features"],
        "body: {body}"
    );
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("user_profile:nope") && detail.contains("user_profile:zip"),
        "detail: {detail}"
    );
    Ok(())
}

#[tokio::test]
async fn an_unknown_feature_service_is_404() -> TestResult {
    let (server, _clock) = fixture().await?;
    let (status, body) = online(
        &server,
        json!({"feature_service": "nope", "entities": {"user_id": [1]}}),
    )
    .await?;
    assert_problem(status, &body, 404, "unknown_feature_service");
    assert_eq!(error_fields(&body), ["feature_service"], "body: {body}");
    Ok(())
}

#[tokio::test]
async fn a_reference_without_view_and_feature_is_422_naming_its_position() -> TestResult {
    let (server, _clock) = fixture().await?;
    let (status, body) = online(
        &server,
        json!({"features": ["user_profile:age", "user_profile"], "entities": {"user_id": [1]}}),
    )
    .await?;
    assert_problem(status, &body, 422, "invalid_body");
    assert_eq!(error_fields(&body), ["features[1]"], "body: {body}");
    Ok(())
}

#[tokio::test]
async fn the_rows_layout_gives_one_ordered_object_per_entity_row_and_keeps_the_statuses()
-> TestResult {
    let (server, _clock) = fixture().await?;
    let (status, text) = server
        .post_text(
            ONLINE,
            &json!({
                "features": ["user_profile:age", "user_profile:favorite_genre"],
                "entities": {"user_id": [1, 2, 3, 999]},
                "layout": "rows",
            }),
        )
        .await?;
    assert_eq!(status, 200, "body: {text}");
    assert_eq!(
        text,
        concat!(
            r#"{"rows":["#,
            r#"{"user_id":1,"age":32,"favorite_genre":"Action"},"#,
            r#"{"user_id":2,"age":25,"favorite_genre":null},"#,
            r#"{"user_id":3,"age":null,"favorite_genre":null},"#,
            r#"{"user_id":999,"age":null,"favorite_genre":null}"#,
            r#"],"statuses":["#,
            r#"{"age":"PRESENT","favorite_genre":"PRESENT"},"#,
            r#"{"age":"PRESENT","favorite_genre":"NULL_VALUE"},"#,
            r#"{"age":"OUTSIDE_MAX_AGE","favorite_genre":"OUTSIDE_MAX_AGE"},"#,
            r#"{"age":"NOT_FOUND","favorite_genre":"NOT_FOUND"}"#,
            r#"]}"#
        )
    );
    Ok(())
}

#[tokio::test]
async fn one_feature_name_from_two_views_without_full_feature_names_is_422() -> TestResult {
    let (server, _clock) = fixture().await?;
    // Two `avg_rating` columns would be told apart only by position, and in the rows layout
    // one would be lost to a repeated key: refused, as Feast refuses such collisions.
    for layout in ["columns", "rows"] {
        let (status, body) = online(
            &server,
            json!({
                "features": ["user_profile:avg_rating", "movie_metadata:avg_rating"],
                "entities": {"user_id": [1], "movie_id": [10]},
                "layout": layout,
            }),
        )
        .await?;
        assert_problem(status, &body, 422, "invalid_body");
        assert_eq!(error_fields(&body), ["full_feature_names"], "body: {body}");
    }
    Ok(())
}

/// A replacement `user_profile` where user 1 is `age` years old at T0.
fn replacement(age: i64) -> Value {
    json!({"records": [
        {"user_id": 1, "age": age, "avg_rating": 4.6, "favorite_genre": "Action", "event_timestamp": T0},
    ]})
}

#[tokio::test]
async fn a_table_replaced_through_the_api_is_served_at_once() -> TestResult {
    let (server, _clock) = fixture().await?;
    let request = json!({"features": ["user_profile:age"], "entities": {"user_id": [1, 2]}});
    let before = online_ok(&server, request.clone()).await?;
    assert_eq!(column(&before, "age")?[0], slot(json!(32), "PRESENT", T0));

    server.save("user", "user_profile", replacement(33)).await?;
    let after = online_ok(&server, request).await?;
    assert_eq!(
        column(&after, "age")?,
        [
            slot(json!(33), "PRESENT", T0),
            slot(Value::Null, "NOT_FOUND", EPOCH),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn a_view_whose_table_lost_a_feature_column_still_serves_the_features_it_kept() -> TestResult
{
    let (server, _clock) = fixture().await?;
    // The replacement drops `avg_rating` and `favorite_genre`; the view still lists them.
    server
        .save(
            "user",
            "user_profile",
            json!({"records": [{"user_id": 1, "age": 33, "event_timestamp": T0}]}),
        )
        .await?;
    let answer = online_ok(
        &server,
        json!({"features": ["user_profile:age"], "entities": {"user_id": [1]}}),
    )
    .await?;
    assert_eq!(column(&answer, "age")?, [slot(json!(33), "PRESENT", T0)]);

    // Asking for a feature the table lost is a conflict between view and table, naming it.
    let (status, body) = online(
        &server,
        json!({"features": ["user_profile:age", "user_profile:favorite_genre"],
               "entities": {"user_id": [1]}}),
    )
    .await?;
    assert_problem(status, &body, 409, "view_table_mismatch");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("user_profile") && detail.contains("favorite_genre"),
        "detail: {detail}"
    );
    assert!(!detail.contains("\"age\""), "detail: {detail}");
    Ok(())
}

/// `user_profile`'s columns with one row for user 1 (`age` at T0), as another tool writes it.
fn profile_batch(age: i64) -> TestResult<RecordBatch> {
    let timestamps = TimestampMicrosecondArray::from(vec![micros(T0)?]).with_timezone("UTC");
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("user_id", Arc::new(Int64Array::from(vec![1]))),
        ("age", Arc::new(Int64Array::from(vec![age]))),
        ("avg_rating", Arc::new(Float64Array::from(vec![4.7]))),
        (
            "favorite_genre",
            Arc::new(StringArray::from(vec!["Action"])),
        ),
        ("event_timestamp", Arc::new(timestamps)),
    ];
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, array)| Field::new(*name, array.data_type().clone(), true))
        .collect();
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns.into_iter().map(|(_, array)| array).collect(),
    )?)
}

#[tokio::test]
async fn a_table_replaced_by_another_tool_is_served_once_the_catalog_sees_it() -> TestResult {
    let (server, _clock) = fixture().await?;
    let request = json!({"features": ["user_profile:age"], "entities": {"user_id": [1]}});
    let before = online_ok(&server, request.clone()).await?;
    assert_eq!(column(&before, "age")?, [slot(json!(32), "PRESENT", T0)]);

    replace_externally(
        &server.root().join("features/user/user_profile.parquet"),
        &profile_batch(34)?,
    )?;
    // A listing rescans the tree, as the watcher does within about a second (cache.rs tests
    // the watcher); this keeps the test free of waiting.
    let (status, listing) = server.get("/features").await?;
    assert_eq!(status, 200, "body: {listing}");
    let after = online_ok(&server, request).await?;
    assert_eq!(column(&after, "age")?, [slot(json!(34), "PRESENT", T0)]);
    Ok(())
}

#[tokio::test]
async fn more_entity_rows_than_the_limit_are_422() -> TestResult {
    let (server, _clock) = fixture_with(|c| c.api.max_online_entity_rows = 2).await?;
    let at_limit = online_ok(
        &server,
        json!({"features": ["user_profile:age"], "entities": {"user_id": [1, 2]}}),
    )
    .await?;
    assert_eq!(at_limit["results"][1]["values"], json!([32, 25]));

    let (status, body) = online(
        &server,
        json!({"features": ["user_profile:age"], "entities": {"user_id": [1, 2, 3]}}),
    )
    .await?;
    assert_problem(status, &body, 422, "invalid_body");
    assert_eq!(error_fields(&body), ["entities"], "body: {body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("api.max_online_entity_rows")),
        "body: {body}"
    );
    Ok(())
}

#[tokio::test]
async fn a_feast_clients_exact_body_is_accepted() -> TestResult {
    let (server, _clock) = fixture().await?;
    // What Feast's `remote` online store sends, byte for byte.
    let response = server
        .client
        .post(server.url(ONLINE))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(
            r#"{"entities": {"user_id": [1, 2]}, "full_feature_names": false, "include_feature_view_version_metadata": false, "features": ["user_profile:age"]}"#,
        )
        .send()
        .await?;
    let (status, answer) = read(response).await?;
    assert_eq!(status, 200, "body: {answer}");
    assert_eq!(
        answer,
        json!({
            "metadata": {"feature_names": ["user_id", "age"]},
            "results": [
                {"values": [1, 2], "statuses": ["PRESENT", "PRESENT"],
                 "event_timestamps": [EPOCH, EPOCH]},
                {"values": [32, 25], "statuses": ["PRESENT", "PRESENT"],
                 "event_timestamps": [T0, T0_MINUS_10M]},
            ],
        })
    );
    Ok(())
}

/// `featurestore demo` with small tables ending an hour ago into `dir`.
fn write_demo(dir: &Path) -> TestResult {
    let as_of = (chrono::Utc::now() - chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let dir = dir.to_str().ok_or("a UTF-8 temporary path")?;
    featurestore_ok(&[
        "demo",
        "--data-dir",
        dir,
        "--users",
        "30",
        "--movies",
        "10",
        "--interactions",
        "300",
        "--seed",
        "7",
        "--as-of",
        &as_of,
    ])?;
    Ok(())
}

/// The value of `feature` in the row of `key` = `id` with the latest `event_timestamp`, and
/// that timestamp in µs, from a page of a demo table.
fn latest_value(page: &Value, key: &str, feature: &str, id: i64) -> TestResult<(Value, i64)> {
    let rows = page["data"].as_array().ok_or("a page without data")?;
    let mut best: Option<(Value, i64)> = None;
    for row in rows.iter().filter(|r| r[key] == id) {
        let ts = micros(
            row["event_timestamp"]
                .as_str()
                .ok_or("no event_timestamp")?,
        )?;
        if best.as_ref().is_none_or(|(_, t)| ts > *t) {
            best = Some((row[feature].clone(), ts));
        }
    }
    best.ok_or_else(|| format!("no row with {key} = {id}").into())
}

#[tokio::test]
async fn the_demo_answers_its_feature_service_with_the_latest_profile_and_movie_values()
-> TestResult {
    let data = tempfile::tempdir()?;
    write_demo(data.path())?;
    let server = TestServer::start_on(data, |_| {})?;
    let (status, service) = server
        .get("/registry/feature-services/movie_recommendation_service")
        .await?;
    assert_eq!(status, 200, "body: {service}");
    let references: Vec<(String, String)> = service["features"]
        .as_array()
        .ok_or("a service without features")?
        .iter()
        .filter_map(|r| r.as_str()?.split_once(':'))
        .map(|(view, feature)| (view.to_owned(), feature.to_owned()))
        .collect();

    let answer = online_as_written_ok(
        &server,
        r#"{"feature_service": "movie_recommendation_service",
            "entities": {"user_id": [1, 2, 3], "movie_id": [1, 2, 3]},
            "full_feature_names": true}"#,
    )
    .await?;
    let mut expected_names = vec!["user_id".to_owned(), "movie_id".to_owned()];
    expected_names.extend(references.iter().map(|(v, f)| format!("{v}__{f}")));
    assert_eq!(answer["metadata"]["feature_names"], json!(expected_names));

    let mut checked = Vec::new();
    for (view, feature) in &references {
        let served = column(&answer, &format!("{view}__{feature}"))?;
        let (path, key) = match view.as_str() {
            "user_profile" => ("/features/user/user_profile?limit=1000", "user_id"),
            "movie_metadata" => ("/features/content/movie_metadata?limit=1000", "movie_id"),
            _ => {
                // Interactions have a one-day TTL over 90 days of history: whatever the
                // status, a value is given exactly when it is PRESENT.
                for (value, status, _) in served {
                    assert!(
                        ["PRESENT", "NOT_FOUND", "OUTSIDE_MAX_AGE"].contains(&status.as_str()),
                        "{view}:{feature}: {status}"
                    );
                    assert_eq!(value.is_null(), status != "PRESENT", "{value} {status}");
                }
                continue;
            }
        };
        // Profiles are at most 3 days old (TTL 7 days) and movies at most 30 days old plus the
        // hour since the demo's as-of (TTL 30 days; seed 7 puts none of these three that
        // close to the edge): every value is PRESENT and the latest of its key.
        let (status, page) = server.get(path).await?;
        assert_eq!(status, 200, "body: {page}");
        for ((value, status, timestamp), id) in served.iter().zip([1, 2, 3]) {
            let (latest, latest_ts) = latest_value(&page, key, feature, id)?;
            assert_eq!(status, "PRESENT", "{view}:{feature} of {key} {id}");
            assert_eq!(value, &latest, "{view}:{feature} of {key} {id}");
            assert_eq!(
                micros(timestamp)?,
                latest_ts,
                "{view}:{feature} of {key} {id}"
            );
        }
        checked.push(view.as_str());
    }
    assert!(
        checked.contains(&"user_profile") && checked.contains(&"movie_metadata"),
        "the service should serve profile and movie features: {service}"
    );
    Ok(())
}

#[tokio::test]
async fn a_feature_requested_twice_is_422_naming_the_second() -> TestResult {
    let (server, _) = fixture().await?;
    let (status, body) = online(
        &server,
        json!({"features": ["user_profile:age", "user_profile:age"], "entities": {"user_id": [1]}}),
    )
    .await?;
    assert_problem(status, &body, 422, "invalid_body");
    assert_eq!(error_fields(&body), ["features[1]"]);
    Ok(())
}

#[tokio::test]
async fn entity_values_other_than_integers_or_strings_are_422_naming_the_row() -> TestResult {
    let (server, _) = fixture().await?;
    for bad in [
        json!({"id": 1}),
        json!(true),
        json!(null),
        json!(1.5),
        json!([1]),
    ] {
        let (status, body) = online(
            &server,
            json!({"features": ["user_profile:age"], "entities": {"user_id": [1, bad]}}),
        )
        .await?;
        assert_problem(status, &body, 422, "invalid_body");
        assert_eq!(error_fields(&body), ["entities.user_id[1]"], "{bad}");
    }
    Ok(())
}

#[tokio::test]
async fn a_join_key_given_twice_is_422() -> TestResult {
    let (server, _) = fixture().await?;
    let (status, body) = online_as_written(
        &server,
        r#"{"features": ["user_profile:age"], "entities": {"user_id": [1], "user_id": [2]}}"#,
    )
    .await?;
    assert_problem(status, &body, 422, "invalid_body");
    assert_eq!(error_fields(&body), ["entities.user_id"]);
    Ok(())
}

/// A table another tool wrote with event times in a non-UTC zone (nanoseconds, `+02:00`): the
/// instants must be served as they are, never shifted by the zone's offset, both online and in
/// pages.
#[tokio::test]
async fn event_times_stored_in_another_time_zone_are_served_as_the_same_instants() -> TestResult {
    use arrow::array::TimestampNanosecondArray;
    let data = tempfile::tempdir()?;
    std::fs::create_dir_all(data.path().join("features/user"))?;
    let nanos = micros("2025-06-01T09:00:00Z")? * 1000;
    let times = TimestampNanosecondArray::from(vec![nanos]).with_timezone("+02:00");
    let batch = RecordBatch::try_from_iter(vec![
        ("user_id", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
        ("event_timestamp", Arc::new(times) as ArrayRef),
        ("score", Arc::new(Float64Array::from(vec![0.5])) as ArrayRef),
    ])?;
    crate::common::write_parquet(&data.path().join("features/user/zoned.parquet"), &batch)?;
    let server = TestServer::start_on(data, |_| {})?;
    server
        .apply(&json!({
            "entities": [{"name": "user_id", "value_type": "int64"}],
            "feature_views": [{"name": "zoned", "group": "user", "entities": ["user_id"],
                               "timestamp_field": "event_timestamp"}],
        }))
        .await?;
    let answer = online_ok(
        &server,
        json!({"features": ["zoned:score"], "entities": {"user_id": [1]}}),
    )
    .await?;
    assert_eq!(answer["results"][1]["values"], json!([0.5]));
    assert_eq!(
        answer["results"][1]["event_timestamps"],
        json!(["2025-06-01T09:00:00Z"])
    );
    let (status, page) = server.get("/features/user/zoned").await?;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        page["data"][0]["event_timestamp"],
        json!("2025-06-01T09:00:00Z")
    );
    Ok(())
}

// The same tests on the s3 kind (those that look at files under the data root have none).
crate::on_s3_too!(
    the_answer_is_column_major_with_entity_keys_first_and_a_slot_per_entity_row,
    the_latest_snapshot_of_a_key_wins_whatever_the_row_order,
    a_row_dated_after_now_is_not_served,
    a_row_dated_after_now_is_served_once_the_clock_passes_it,
    each_status_with_its_value_and_timestamp,
    ttl_includes_its_boundary_and_expires_one_microsecond_later,
    integer_keys_match_ids_sent_as_numbers_or_numeric_strings,
    integer_keys_do_not_match_non_canonical_numeric_strings,
    a_multi_entity_view_looks_up_each_key_pair,
    an_entity_is_looked_up_by_its_join_key_when_that_differs_from_its_name,
    a_missing_join_key_is_422_naming_it,
    entity_columns_of_different_lengths_are_422,
    features_of_two_views_come_after_the_entity_keys_in_request_order,
    full_feature_names_prefix_each_feature_with_its_view,
    a_feature_service_answers_its_features_and_every_feature_of_a_named_view,
    both_or_neither_of_features_and_feature_service_is_422,
    unknown_views_are_404_naming_every_unknown_reference,
    unknown_features_of_a_known_view_are_404_naming_each,
    an_unknown_feature_service_is_404,
    a_reference_without_view_and_feature_is_422_naming_its_position,
    the_rows_layout_gives_one_ordered_object_per_entity_row_and_keeps_the_statuses,
    one_feature_name_from_two_views_without_full_feature_names_is_422,
    a_table_replaced_through_the_api_is_served_at_once,
    a_view_whose_table_lost_a_feature_column_still_serves_the_features_it_kept,
    more_entity_rows_than_the_limit_are_422,
    a_feast_clients_exact_body_is_accepted,
    the_demo_answers_its_feature_service_with_the_latest_profile_and_movie_values,
    a_feature_requested_twice_is_422_naming_the_second,
    entity_values_other_than_integers_or_strings_are_422_naming_the_row,
    a_join_key_given_twice_is_422,
);
