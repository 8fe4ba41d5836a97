//! `POST /features/batch`: several tables at once, by entity key and as of a time.

use serde_json::{Value, json};

use crate::common::{TestResult, TestServer, assert_problem};

async fn batch(server: &TestServer, body: Value) -> TestResult<(u16, Value)> {
    server.post("/features/batch", &body).await
}

/// Checks the parts of a batch answer that do not depend on the clock.
fn assert_batch(body: &Value, features: Value, entity_key: Value, timestamp: Value) {
    assert_eq!(body["features"], features, "body: {body}");
    let count = features.as_object().map_or(0, |f| f.len());
    assert_eq!(body["metadata"]["feature_count"], count, "body: {body}");
    assert_eq!(body["metadata"]["entity_key"], entity_key, "body: {body}");
    assert_eq!(body["timestamp"], timestamp, "body: {body}");
    let requested = body["metadata"]["request_timestamp"]
        .as_str()
        .unwrap_or_default();
    assert!(
        chrono::DateTime::parse_from_rfc3339(requested).is_ok() && requested.ends_with('Z'),
        "request_timestamp {requested:?}"
    );
    let keys: Vec<&String> = body
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    assert_eq!(keys, ["features", "metadata", "timestamp"], "body: {body}");
}

/// `clicks`, keyed by an inferred integer `entity_id`.
async fn save_clicks(server: &TestServer) -> TestResult {
    let saved = server
        .save(
            "misc",
            "clicks",
            json!({"records": [
                {"entity_id": 1, "clicks": 10},
                {"entity_id": 2, "clicks": 20},
                {"entity_id": 3, "clicks": 30},
                {"entity_id": 2, "clicks": 21},
            ]}),
        )
        .await?;
    assert_eq!(saved["entity_key"], json!(["entity_id"]), "inferred key");
    Ok(())
}

#[tokio::test]
async fn entity_ids_as_numbers_and_strings_both_match_an_integer_key() -> TestResult {
    let server = TestServer::start()?;
    save_clicks(&server).await?;
    let (status, body) = batch(
        &server,
        json!({"feature_names": ["clicks"], "entity_ids": [1, "2", "not-a-number", 99]}),
    )
    .await?;
    assert_eq!(status, 200, "body: {body}");
    assert_batch(
        &body,
        json!({"clicks": [
            {"entity_id": 1, "clicks": 10},
            {"entity_id": 2, "clicks": 20},
            {"entity_id": 2, "clicks": 21},
        ]}),
        json!({"clicks": "entity_id"}),
        Value::Null,
    );
    Ok(())
}

#[tokio::test]
async fn entity_ids_as_numbers_and_strings_both_match_a_string_key() -> TestResult {
    let server = TestServer::start()?;
    server
        .save(
            "misc",
            "labels",
            json!({"records": [
                {"entity_id": "u1", "label": "a"},
                {"entity_id": "7", "label": "b"},
                {"entity_id": "u3", "label": "c"},
            ]}),
        )
        .await?;
    let (status, body) = batch(
        &server,
        json!({"feature_names": ["labels"], "entity_ids": ["u1", 7]}),
    )
    .await?;
    assert_eq!(status, 200, "body: {body}");
    assert_batch(
        &body,
        json!({"labels": [
            {"entity_id": "u1", "label": "a"},
            {"entity_id": "7", "label": "b"},
        ]}),
        json!({"labels": "entity_id"}),
        Value::Null,
    );
    Ok(())
}

#[tokio::test]
async fn a_declared_key_other_than_entity_id_filters_the_rows() -> TestResult {
    let server = TestServer::start()?;
    let saved = server
        .save(
            "user",
            "user_stats",
            json!({
                "records": [
                    {"user_id": 10, "entity_id": 20, "score": 1.5},
                    {"user_id": 20, "entity_id": 10, "score": 2.5},
                    {"user_id": 30, "entity_id": 20, "score": 3.5},
                ],
                "entity_key": ["user_id"],
            }),
        )
        .await?;
    assert_eq!(saved["entity_key"], json!(["user_id"]));
    let (status, body) = batch(
        &server,
        json!({"feature_names": ["user_stats"], "entity_ids": [20]}),
    )
    .await?;
    assert_eq!(status, 200, "body: {body}");
    // Filtered on user_id, not on the column that happens to be called entity_id.
    assert_batch(
        &body,
        json!({"user_stats": [{"user_id": 20, "entity_id": 10, "score": 2.5}]}),
        json!({"user_stats": "user_id"}),
        Value::Null,
    );
    Ok(())
}

#[tokio::test]
async fn empty_entity_ids_return_empty_lists_never_the_whole_table() -> TestResult {
    let server = TestServer::start()?;
    save_clicks(&server).await?;
    let (status, body) = batch(
        &server,
        json!({"feature_names": ["clicks"], "entity_ids": []}),
    )
    .await?;
    assert_eq!(status, 200, "body: {body}");
    assert_batch(
        &body,
        json!({"clicks": []}),
        json!({"clicks": "entity_id"}),
        Value::Null,
    );
    Ok(())
}

#[tokio::test]
async fn no_entity_ids_return_every_row_of_every_table() -> TestResult {
    let server = TestServer::start()?;
    save_clicks(&server).await?;
    server
        .save("misc", "unkeyed", json!({"records": [{"x": 1}, {"x": 2}]}))
        .await?;
    let (status, body) = batch(
        &server,
        json!({"feature_names": ["clicks", "unkeyed", "clicks"]}),
    )
    .await?;
    assert_eq!(status, 200, "body: {body}");
    assert_batch(
        &body,
        json!({
            "clicks": [
                {"entity_id": 1, "clicks": 10},
                {"entity_id": 2, "clicks": 20},
                {"entity_id": 3, "clicks": 30},
                {"entity_id": 2, "clicks": 21},
            ],
            "unkeyed": [{"x": 1}, {"x": 2}],
        }),
        json!({"clicks": "entity_id", "unkeyed": null}),
        Value::Null,
    );
    Ok(())
}

#[tokio::test]
async fn unknown_names_are_one_404_listing_all_of_them() -> TestResult {
    let server = TestServer::start()?;
    save_clicks(&server).await?;
    let (status, body) = batch(
        &server,
        json!({"feature_names": ["nope_one", "clicks", "nope_two"], "entity_ids": [1]}),
    )
    .await?;
    assert_problem(status, &body, 404, "unknown_feature_tables");
    assert_eq!(
        body["detail"],
        "unknown feature table(s): nope_one, nope_two"
    );
    assert_eq!(
        body["errors"],
        json!([
            {"field": "feature_names", "message": "unknown table \"nope_one\""},
            {"field": "feature_names", "message": "unknown table \"nope_two\""},
        ])
    );
    Ok(())
}

#[tokio::test]
async fn entity_ids_on_a_table_without_entity_key_is_422_no_entity_key() -> TestResult {
    let server = TestServer::start()?;
    save_clicks(&server).await?;
    server
        .save("misc", "unkeyed", json!({"records": [{"x": 1}, {"x": 2}]}))
        .await?;
    let (status, body) = batch(
        &server,
        json!({"feature_names": ["clicks", "unkeyed"], "entity_ids": [1]}),
    )
    .await?;
    assert_problem(status, &body, 422, "no_entity_key");
    assert_eq!(
        body["detail"],
        "table \"unkeyed\" has no entity key, so it cannot be filtered by entity_ids; \
         declare one with `entity_key` when saving it, or omit entity_ids"
    );
    // Even an empty id list asks for a filter the table cannot answer.
    let (status, body) = batch(
        &server,
        json!({"feature_names": ["unkeyed"], "entity_ids": []}),
    )
    .await?;
    assert_problem(status, &body, 422, "no_entity_key");
    Ok(())
}

#[tokio::test]
async fn plain_entity_ids_on_a_composite_key_is_422_saying_to_send_objects() -> TestResult {
    let server = TestServer::start()?;
    server
        .save(
            "interaction",
            "ratings",
            json!({
                "records": [
                    {"user_id": 1, "movie_id": 5, "rating": 4},
                    {"user_id": 2, "movie_id": 5, "rating": 3},
                ],
                "entity_key": ["user_id", "movie_id"],
            }),
        )
        .await?;
    let (status, body) = batch(
        &server,
        json!({"feature_names": ["ratings"], "entity_ids": [1]}),
    )
    .await?;
    assert_problem(status, &body, 422, "composite_entity_key");
    assert_eq!(
        body["detail"],
        "table \"ratings\" is keyed by several columns (user_id, movie_id); send each of \
         entity_ids as an object naming every key column, e.g. {\"user_id\": 1, \"movie_id\": 1}"
    );
    // Without ids the table is readable, and its key is reported joined.
    let (status, body) = batch(&server, json!({"feature_names": ["ratings"]})).await?;
    assert_eq!(status, 200, "body: {body}");
    assert_batch(
        &body,
        json!({"ratings": [
            {"user_id": 1, "movie_id": 5, "rating": 4},
            {"user_id": 2, "movie_id": 5, "rating": 3},
        ]}),
        json!({"ratings": "user_id,movie_id"}),
        Value::Null,
    );
    Ok(())
}

#[tokio::test]
async fn a_name_is_found_in_whatever_group_holds_it() -> TestResult {
    let server = TestServer::start()?;
    server
        .save(
            "interaction",
            "user_movie_interactions",
            json!({
                "records": [{"user_id": 1, "movie_id": 2}, {"user_id": 3, "movie_id": 4}],
                "entity_key": ["user_id"],
            }),
        )
        .await?;
    // "user_..." would be guessed to live in `user`; it is in `content`.
    server
        .save(
            "content",
            "user_ratings",
            json!({"records": [{"entity_id": 3, "rating": 5}]}),
        )
        .await?;
    let (status, body) = batch(
        &server,
        json!({"feature_names": ["user_movie_interactions", "user_ratings"], "entity_ids": [3]}),
    )
    .await?;
    assert_eq!(status, 200, "body: {body}");
    assert_batch(
        &body,
        json!({
            "user_movie_interactions": [{"user_id": 3, "movie_id": 4}],
            "user_ratings": [{"entity_id": 3, "rating": 5}],
        }),
        json!({"user_movie_interactions": "user_id", "user_ratings": "entity_id"}),
        Value::Null,
    );
    Ok(())
}

#[tokio::test]
async fn empty_or_invalid_feature_names_are_rejected() -> TestResult {
    let server = TestServer::start()?;
    let (status, body) = batch(&server, json!({"feature_names": []})).await?;
    assert_problem(status, &body, 422, "invalid_body");
    assert_eq!(
        body["errors"],
        json!([{"field": "feature_names", "message": "must name at least one table"}])
    );
    let (status, body) = batch(&server, json!({"feature_names": ["ok", "../etc"]})).await?;
    assert_problem(status, &body, 400, "invalid_name");
    assert_eq!(body["errors"][0]["field"], "feature_names[1]");
    let (status, body) = batch(&server, json!({"entity_ids": [1]})).await?;
    assert_problem(status, &body, 422, "invalid_body");
    let (status, body) = batch(
        &server,
        json!({"feature_names": ["x"], "entity_ids": [1.5]}),
    )
    .await?;
    assert_problem(status, &body, 422, "invalid_body");
    Ok(())
}

/// `profile`: user 1 at t1 < t2 < t3, user 2 at t1 and t3, user 3 at t3 only.
async fn save_history(server: &TestServer) -> TestResult {
    server
        .save(
            "user",
            "profile",
            json!({
                "records": [
                    {"user_id": 1, "age": 30, "event_timestamp": "2025-06-01T00:00:00Z"},
                    {"user_id": 2, "age": 40, "event_timestamp": "2025-06-01T00:00:00Z"},
                    {"user_id": 1, "age": 31, "event_timestamp": "2025-06-05T00:00:00Z"},
                    {"user_id": 1, "age": 32, "event_timestamp": "2025-06-10T00:00:00Z"},
                    {"user_id": 2, "age": 41, "event_timestamp": "2025-06-10T00:00:00Z"},
                    {"user_id": 3, "age": 50, "event_timestamp": "2025-06-10T00:00:00Z"},
                ],
                "entity_key": ["user_id"],
            }),
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn as_of_returns_the_latest_row_at_or_before_the_instant() -> TestResult {
    let server = TestServer::start()?;
    save_history(&server).await?;
    // Between t2 and t3, written with an offset: 2025-06-07T00:00:00Z.
    let (status, body) = batch(
        &server,
        json!({"feature_names": ["profile"], "entity_ids": [1], "timestamp": "2025-06-07T02:00:00+02:00"}),
    )
    .await?;
    assert_eq!(status, 200, "body: {body}");
    assert_batch(
        &body,
        json!({"profile": [{"user_id": 1, "age": 31, "event_timestamp": "2025-06-05T00:00:00Z"}]}),
        json!({"profile": "user_id"}),
        json!("2025-06-07T00:00:00Z"),
    );

    // Every entity, each as of the instant; one with no row by then is absent.
    let (status, body) = batch(
        &server,
        json!({"feature_names": ["profile"], "timestamp": "2025-06-07T00:00:00Z"}),
    )
    .await?;
    assert_eq!(status, 200, "body: {body}");
    assert_eq!(
        body["features"]["profile"],
        json!([
            {"user_id": 2, "age": 40, "event_timestamp": "2025-06-01T00:00:00Z"},
            {"user_id": 1, "age": 31, "event_timestamp": "2025-06-05T00:00:00Z"},
        ])
    );

    // The bound is inclusive.
    let (status, body) = batch(
        &server,
        json!({"feature_names": ["profile"], "entity_ids": [1, 3], "timestamp": "2025-06-10T00:00:00Z"}),
    )
    .await?;
    assert_eq!(status, 200, "body: {body}");
    assert_eq!(
        body["features"]["profile"],
        json!([
            {"user_id": 1, "age": 32, "event_timestamp": "2025-06-10T00:00:00Z"},
            {"user_id": 3, "age": 50, "event_timestamp": "2025-06-10T00:00:00Z"},
        ])
    );
    assert_eq!(body["timestamp"], "2025-06-10T00:00:00Z");

    // Before any row: nothing.
    let (status, body) = batch(
        &server,
        json!({"feature_names": ["profile"], "entity_ids": [1], "timestamp": "2025-05-01T00:00:00Z"}),
    )
    .await?;
    assert_eq!(status, 200, "body: {body}");
    assert_eq!(body["features"]["profile"], json!([]));
    Ok(())
}

#[tokio::test]
async fn as_of_on_a_table_without_timestamp_field_is_422_no_timestamp_field() -> TestResult {
    let server = TestServer::start()?;
    save_clicks(&server).await?;
    let (status, body) = batch(
        &server,
        json!({"feature_names": ["clicks"], "entity_ids": [1], "timestamp": "2025-06-07T00:00:00Z"}),
    )
    .await?;
    assert_problem(status, &body, 422, "no_timestamp_field");
    assert_eq!(
        body["detail"],
        "table \"clicks\" has no timestamp field, so it cannot be read as of a timestamp"
    );
    Ok(())
}

#[tokio::test]
async fn invalid_timestamp_is_422_invalid_body_on_timestamp() -> TestResult {
    let server = TestServer::start()?;
    save_history(&server).await?;
    // (A date and time without offset is UTC: accepted, as everywhere.)
    for text in ["yesterday", "2025-06-07", "2025-06-07T00:00"] {
        let (status, body) = batch(
            &server,
            json!({"feature_names": ["profile"], "timestamp": text}),
        )
        .await?;
        assert_problem(status, &body, 422, "invalid_body");
        let message = format!("{text:?} is not an RFC 3339 timestamp");
        assert_eq!(
            body["errors"],
            json!([{"field": "timestamp", "message": message}])
        );
        assert_eq!(
            body["detail"],
            format!("invalid field \"timestamp\": {message}")
        );
    }
    Ok(())
}

#[tokio::test]
async fn result_over_max_batch_rows_is_413_result_too_large() -> TestResult {
    let server = TestServer::start_with(|c| c.api.max_batch_rows = 5)?;
    let records: Vec<Value> = (0..10)
        .map(|i| json!({"entity_id": i % 7, "n": i}))
        .collect();
    server
        .save("misc", "ten", json!({ "records": records }))
        .await?;

    let (status, body) = batch(&server, json!({"feature_names": ["ten"]})).await?;
    assert_problem(status, &body, 413, "result_too_large");
    assert_eq!(
        body["detail"],
        "table \"ten\" would return 10 rows, more than the limit of 5; filter with entity_ids \
         or page through GET /features/{group}/{name}"
    );

    // A filtered result over the limit is refused too.
    let (status, body) = batch(
        &server,
        json!({"feature_names": ["ten"], "entity_ids": [0, 1, 2, 3, 4]}),
    )
    .await?;
    assert_problem(status, &body, 413, "result_too_large");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("table \"ten\" would return 8 rows")),
        "body: {body}"
    );

    // Within the limit (exactly at it) is served.
    let (status, body) = batch(
        &server,
        json!({"feature_names": ["ten"], "entity_ids": [0, 1, 3]}),
    )
    .await?;
    assert_eq!(status, 200, "body: {body}");
    assert_eq!(
        body["features"]["ten"],
        json!([
            {"entity_id": 0, "n": 0},
            {"entity_id": 1, "n": 1},
            {"entity_id": 3, "n": 3},
            {"entity_id": 0, "n": 7},
            {"entity_id": 1, "n": 8},
        ])
    );
    Ok(())
}

#[tokio::test]
async fn as_of_on_a_composite_key_keeps_the_latest_row_per_key_pair() -> TestResult {
    let server = TestServer::start()?;
    server
        .save(
            "interaction",
            "watches",
            json!({
                "records": [
                    {"user_id": 1, "movie_id": 1, "minutes": 10, "event_timestamp": "2025-06-01T00:00:00Z"},
                    {"user_id": 1, "movie_id": 2, "minutes": 20, "event_timestamp": "2025-06-02T00:00:00Z"},
                    {"user_id": 1, "movie_id": 1, "minutes": 11, "event_timestamp": "2025-06-03T00:00:00Z"},
                    {"user_id": 2, "movie_id": 1, "minutes": 30, "event_timestamp": "2025-06-04T00:00:00Z"},
                    {"user_id": 1, "movie_id": 1, "minutes": 12, "event_timestamp": "2025-06-09T00:00:00Z"},
                ],
                "entity_key": ["user_id", "movie_id"],
            }),
        )
        .await?;
    let (status, body) = batch(
        &server,
        json!({"feature_names": ["watches"], "timestamp": "2025-06-05T00:00:00Z"}),
    )
    .await?;
    assert_eq!(status, 200, "body: {body}");
    assert_batch(
        &body,
        json!({"watches": [
            {"user_id": 1, "movie_id": 2, "minutes": 20, "event_timestamp": "2025-06-02T00:00:00Z"},
            {"user_id": 1, "movie_id": 1, "minutes": 11, "event_timestamp": "2025-06-03T00:00:00Z"},
            {"user_id": 2, "movie_id": 1, "minutes": 30, "event_timestamp": "2025-06-04T00:00:00Z"},
        ]}),
        json!({"watches": "user_id,movie_id"}),
        json!("2025-06-05T00:00:00Z"),
    );
    Ok(())
}

#[tokio::test]
async fn entity_ids_filter_across_row_groups_and_a_declared_timestamp_field() -> TestResult {
    let server = TestServer::start_with(|c| {
        c.storage.row_group_rows = 50;
        c.storage.page_rows = 10;
    })?;
    let records: Vec<Value> = (0..500)
        .map(|i| {
            json!({
                "account": format!("acct-{}", i % 25),
                "seq": i,
                "at": format!("2025-06-01T00:{:02}:{:02}Z", i / 60, i % 60),
            })
        })
        .collect();
    let saved = server
        .save(
            "misc",
            "ledger",
            json!({"records": records, "entity_key": ["account"], "timestamp_field": "at"}),
        )
        .await?;
    assert_eq!(saved["timestamp_field"], "at");
    let (status, body) = batch(
        &server,
        json!({"feature_names": ["ledger"], "entity_ids": ["acct-3", "acct-24"]}),
    )
    .await?;
    assert_eq!(status, 200, "body: {body}");
    let seqs: Vec<i64> = body["features"]["ledger"]
        .as_array()
        .ok_or("ledger rows")?
        .iter()
        .filter_map(|r| r["seq"].as_i64())
        .collect();
    let expected: Vec<i64> = (0..500).filter(|i| i % 25 == 3 || i % 25 == 24).collect();
    assert_eq!(seqs, expected);

    // As of 00:05:00Z (row 300), each account's latest row at or before it, in file order.
    let (status, body) = batch(
        &server,
        json!({"feature_names": ["ledger"], "entity_ids": ["acct-3", "acct-24"], "timestamp": "2025-06-01T00:05:00Z"}),
    )
    .await?;
    assert_eq!(status, 200, "body: {body}");
    assert_eq!(
        body["features"]["ledger"],
        json!([
            {"account": "acct-3", "seq": 278, "at": "2025-06-01T00:04:38Z"},
            {"account": "acct-24", "seq": 299, "at": "2025-06-01T00:04:59Z"},
        ])
    );
    Ok(())
}

/// `ratings` keyed by (`user_id`, `movie_id`) and `profiles` keyed by `user_id`, both integer.
async fn save_composite(server: &TestServer) -> TestResult {
    server
        .save(
            "interaction",
            "ratings",
            json!({
                "records": [
                    {"user_id": 1, "movie_id": 5, "rating": 4},
                    {"user_id": 1, "movie_id": 6, "rating": 2},
                    {"user_id": 2, "movie_id": 5, "rating": 3},
                ],
                "entity_key": ["user_id", "movie_id"],
            }),
        )
        .await?;
    server
        .save(
            "user",
            "profiles",
            json!({"records": [{"user_id": 1, "age": 30}, {"user_id": 2, "age": 40}],
                   "entity_key": ["user_id"]}),
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn entity_rows_as_objects_filter_composite_keys_and_single_keys_alike() -> TestResult {
    let server = TestServer::start()?;
    save_composite(&server).await?;
    let (status, body) = batch(
        &server,
        json!({"feature_names": ["ratings", "profiles"],
               "entity_ids": [{"user_id": 1, "movie_id": 6}, {"movie_id": 5, "user_id": "2"},
                              {"user_id": 2, "movie_id": 99}]}),
    )
    .await?;
    assert_eq!(status, 200, "body: {body}");
    assert_batch(
        &body,
        json!({
            "ratings": [
                {"user_id": 1, "movie_id": 6, "rating": 2},
                {"user_id": 2, "movie_id": 5, "rating": 3},
            ],
            // Keyed by user_id alone: the rows' other members are ignored.
            "profiles": [{"user_id": 1, "age": 30}, {"user_id": 2, "age": 40}],
        }),
        json!({"ratings": "user_id,movie_id", "profiles": "user_id"}),
        Value::Null,
    );
    Ok(())
}

#[tokio::test]
async fn entity_row_missing_a_key_column_is_422_naming_it() -> TestResult {
    let server = TestServer::start()?;
    save_composite(&server).await?;
    let (status, body) = batch(
        &server,
        json!({"feature_names": ["ratings"], "entity_ids": [{"user_id": 1, "movie_id": 5}, {"user_id": 1}]}),
    )
    .await?;
    assert_problem(status, &body, 422, "invalid_body");
    assert_eq!(
        body["errors"],
        json!([{"field": "entity_ids[1]",
                "message": "has no \"movie_id\"; table \"ratings\" is keyed by user_id, movie_id"}])
    );
    Ok(())
}

#[tokio::test]
async fn non_canonical_integer_strings_match_no_integer_key() -> TestResult {
    let server = TestServer::start()?;
    save_clicks(&server).await?;
    save_composite(&server).await?;
    let (status, body) = batch(
        &server,
        json!({"feature_names": ["clicks"], "entity_ids": ["01", " 1", "+1", "1.0", "3"]}),
    )
    .await?;
    assert_eq!(status, 200, "body: {body}");
    assert_eq!(
        body["features"]["clicks"],
        json!([{"entity_id": 3, "clicks": 30}])
    );
    let (status, body) = batch(
        &server,
        json!({"feature_names": ["ratings"], "entity_ids": [{"user_id": "01", "movie_id": 5}, {"user_id": " 2", "movie_id": "5"}]}),
    )
    .await?;
    assert_eq!(status, 200, "body: {body}");
    assert_eq!(body["features"]["ratings"], json!([]));
    Ok(())
}

#[tokio::test]
async fn invalid_entity_ids_are_422_naming_the_id_never_an_internal_type() -> TestResult {
    let server = TestServer::start()?;
    save_composite(&server).await?;
    for (ids, field, got) in [
        (json!([1, 1.5]), "entity_ids[1]", "1.5"),
        (json!([true]), "entity_ids[0]", "true"),
        (json!([[1, 5]]), "entity_ids[0]", "[1,5]"),
        (
            json!([{"user_id": 1, "movie_id": null}]),
            "entity_ids[0].movie_id",
            "null",
        ),
        (
            json!([{"user_id": {"id": 1}}]),
            "entity_ids[0].user_id",
            "{\"id\":1}",
        ),
    ] {
        let (status, body) = batch(
            &server,
            json!({"feature_names": ["ratings"], "entity_ids": ids}),
        )
        .await?;
        assert_problem(status, &body, 422, "invalid_body");
        assert_eq!(body["errors"][0]["field"], field, "body: {body}");
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("entity key values must be integers or strings")
                && message.ends_with(&format!("got {got}")),
            "{message}"
        );
        assert!(!body.to_string().contains("Dto"), "body: {body}");
    }
    let (status, body) = batch(
        &server,
        json!({"feature_names": ["ratings"], "entity_ids": [{}]}),
    )
    .await?;
    assert_problem(status, &body, 422, "invalid_body");
    assert_eq!(body["errors"][0]["field"], "entity_ids[0]");
    Ok(())
}

// The same tests on the s3 kind (those that look at files under the data root have none).
crate::on_s3_too!(
    entity_ids_as_numbers_and_strings_both_match_an_integer_key,
    entity_ids_as_numbers_and_strings_both_match_a_string_key,
    a_declared_key_other_than_entity_id_filters_the_rows,
    empty_entity_ids_return_empty_lists_never_the_whole_table,
    no_entity_ids_return_every_row_of_every_table,
    unknown_names_are_one_404_listing_all_of_them,
    entity_ids_on_a_table_without_entity_key_is_422_no_entity_key,
    plain_entity_ids_on_a_composite_key_is_422_saying_to_send_objects,
    a_name_is_found_in_whatever_group_holds_it,
    empty_or_invalid_feature_names_are_rejected,
    as_of_returns_the_latest_row_at_or_before_the_instant,
    as_of_on_a_table_without_timestamp_field_is_422_no_timestamp_field,
    invalid_timestamp_is_422_invalid_body_on_timestamp,
    result_over_max_batch_rows_is_413_result_too_large,
    as_of_on_a_composite_key_keeps_the_latest_row_per_key_pair,
    entity_ids_filter_across_row_groups_and_a_declared_timestamp_field,
    entity_rows_as_objects_filter_composite_keys_and_single_keys_alike,
    entity_row_missing_a_key_column_is_422_naming_it,
    non_canonical_integer_strings_match_no_integer_key,
    invalid_entity_ids_are_422_naming_the_id_never_an_internal_type,
);
