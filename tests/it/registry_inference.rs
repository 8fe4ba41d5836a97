//! Entity keys inferred from the registered entities: a save that declares no `entity_key`
//! takes the columns that are join keys of registered entities (several: a composite key, in
//! column order), registers the view and says so in its answer, or says why it could not and
//! how to fix it. `ttl_seconds` and `created_timestamp_field` make one save a servable view.

use chrono::{Duration, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::common::instants::*;
use crate::common::{TestResult, TestServer, assert_problem};

async fn with_entities(entities: Value) -> TestResult<TestServer> {
    let server = TestServer::start()?;
    server.apply(&json!({"entities": entities})).await?;
    Ok(server)
}

fn ago(hours: i64) -> String {
    (Utc::now() - Duration::hours(hours)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[tokio::test]
async fn a_save_without_entity_key_takes_a_registered_entitys_join_key_and_registers_the_view()
-> TestResult {
    let server = with_entities(json!([{"name": "user_id", "value_type": "int64"}])).await?;
    let saved = server
        .save(
            "user",
            "user_segments",
            json!({"records": [
                {"user_id": 7, "segment": "night_owl", "event_timestamp": T0},
            ]}),
        )
        .await?;
    assert_eq!(saved["entity_key"], json!(["user_id"]), "{saved}");
    assert_eq!(saved["entity_key_source"], "registered_entities", "{saved}");
    assert_eq!(saved["registry"]["status"], "registered", "{saved}");
    assert_eq!(saved["registry"]["feature_view"], "user_segments");
    let message = saved["registry"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("registered feature view user_segments") && message.contains("segment"),
        "{message}"
    );

    let (status, view) = server.get("/registry/feature-views/user_segments").await?;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["entities"], json!(["user_id"]));
    let (status, answer) = server
        .post(
            "/get-online-features",
            &json!({"features": ["user_segments:segment"], "entities": {"user_id": [7]}}),
        )
        .await?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["results"][1]["values"], json!(["night_owl"]));
    Ok(())
}

#[tokio::test]
async fn several_registered_join_keys_make_a_composite_key_in_column_order() -> TestResult {
    let server = with_entities(json!([
        {"name": "user_id", "value_type": "int64"},
        {"name": "movie_id", "value_type": "int64"},
    ]))
    .await?;
    // `json!` sends the keys sorted, so the table's columns are in this order.
    let saved = server
        .save(
            "interaction",
            "ratings",
            json!({"records": [
                {"event_timestamp": T0, "movie_id": 10, "rating": 4.5, "user_id": 1},
            ]}),
        )
        .await?;
    assert_eq!(
        saved["entity_key"],
        json!(["movie_id", "user_id"]),
        "{saved}"
    );
    assert_eq!(saved["registry"]["status"], "registered", "{saved}");
    let (status, view) = server.get("/registry/feature-views/ratings").await?;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["entities"], json!(["movie_id", "user_id"]));
    Ok(())
}

#[tokio::test]
async fn a_key_typed_unlike_its_entity_is_saved_but_not_registered_and_the_answer_says_how_to_fix()
-> TestResult {
    let server = with_entities(json!([{"name": "user_id", "value_type": "int64"}])).await?;
    let saved = server
        .save(
            "user",
            "user_segments",
            json!({"records": [
                {"user_id": "u-7", "segment": "night_owl", "event_timestamp": T0},
            ]}),
        )
        .await?;
    assert_eq!(saved["rows_saved"], 1, "{saved}");
    assert_eq!(saved["entity_key"], json!(["user_id"]), "{saved}");
    let registry = &saved["registry"];
    assert_eq!(registry["status"], "not_registered", "{saved}");
    let message = registry["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("string in the table")
            && message.contains("Int64")
            && message.contains("POST /registry/apply"),
        "{message}"
    );
    assert_eq!(registry["mismatches"][0]["field"], "entities[0]", "{saved}");
    let (status, problem) = server.get("/registry/feature-views/user_segments").await?;
    assert_problem(status, &problem, 404, "registry_object_not_found");
    Ok(())
}

#[tokio::test]
async fn a_table_with_no_key_to_infer_says_how_to_get_one_registered() -> TestResult {
    let server = TestServer::start()?;
    let saved = server
        .save(
            "user",
            "user_segments",
            json!({"records": [{"user_id": 7, "segment": "night_owl", "event_timestamp": T0}]}),
        )
        .await?;
    assert_eq!(saved["entity_key"], json!([]), "{saved}");
    assert_eq!(saved["entity_key_source"], "none", "{saved}");
    assert_eq!(saved["registry"]["status"], "not_registered", "{saved}");
    let message = saved["registry"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("entity_key") && message.contains("register an entity"),
        "{message}"
    );
    Ok(())
}

#[tokio::test]
async fn one_save_with_ttl_and_created_timestamp_makes_a_servable_view() -> TestResult {
    let server = with_entities(json!([{"name": "user_id", "value_type": "int64"}])).await?;
    let saved = server
        .save(
            "user",
            "user_segments",
            json!({
                "ttl_seconds": 3600,
                "created_timestamp_field": "created",
                "records": [
                    {"user_id": 1, "segment": "fresh", "event_timestamp": ago(0), "created": ago(0)},
                    {"user_id": 2, "segment": "stale", "event_timestamp": ago(5), "created": ago(5)},
                ],
            }),
        )
        .await?;
    assert_eq!(saved["registry"]["status"], "registered", "{saved}");
    let (status, view) = server.get("/registry/feature-views/user_segments").await?;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["ttl_seconds"], 3600);
    assert_eq!(view["created_timestamp_field"], "created");
    assert_eq!(
        view["features"],
        json!([{"name": "segment", "dtype": "string"}])
    );
    let (status, answer) = server
        .post(
            "/get-online-features",
            &json!({"features": ["user_segments:segment"], "entities": {"user_id": [1, 2]}}),
        )
        .await?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["results"][1]["values"], json!(["fresh", null]));
    assert_eq!(
        answer["results"][1]["statuses"],
        json!(["PRESENT", "OUTSIDE_MAX_AGE"])
    );

    // A later save that does not repeat them keeps both.
    let saved = server
        .save(
            "user",
            "user_segments",
            json!({"records": [
                {"user_id": 1, "segment": "later", "event_timestamp": ago(0), "created": ago(0)},
            ]}),
        )
        .await?;
    assert_eq!(saved["registry"]["status"], "unchanged", "{saved}");

    // The created-timestamp column must exist.
    let (status, problem) = server
        .post(
            "/features/user/other_segments",
            &json!({"created_timestamp_field": "nope", "records": [
                {"user_id": 1, "segment": "x", "event_timestamp": T0},
            ]}),
        )
        .await?;
    assert_problem(status, &problem, 422, "invalid_records");
    Ok(())
}
