//! A registry that stays true to its tables: views a save registered follow the table's
//! columns on every write (also after a delete and re-create), views declared with apply are
//! checked and the save's answer names what no longer matches and which services break; a
//! table delete names what still references it; materializing every view reports views
//! without a table; and registry objects can be deleted (409 while still referenced).

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use serde_json::{Value, json};

use crate::common::instants::*;
use crate::common::{TestResult, TestServer, assert_problem, micros, replace_externally};

async fn get_ok(server: &TestServer, path: &str) -> TestResult<Value> {
    let (status, body) = server.get(path).await?;
    if status != 200 {
        return Err(format!("GET {path} answered {status}: {body}").into());
    }
    Ok(body)
}

/// `(name, dtype)` of each feature of view `name`.
async fn features_of(server: &TestServer, name: &str) -> TestResult<Vec<(String, String)>> {
    let view = get_ok(server, &format!("/registry/feature-views/{name}")).await?;
    Ok(view["features"]
        .as_array()
        .ok_or_else(|| format!("no features in {view}"))?
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap_or_default().to_owned(),
                f["dtype"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect())
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

/// `user/user_profile` keyed by user_id, with age and avg_rating; a view declared over it
/// with apply, and services using one feature each.
async fn declared_profile(server: &TestServer) -> TestResult {
    server
        .save(
            "user",
            "user_profile",
            json!({"entity_key": ["user_id"], "records": [
                {"user_id": 1, "age": 30, "avg_rating": 4.5, "event_timestamp": T0},
            ]}),
        )
        .await?;
    server
        .apply(&json!({
            "entities": [{"name": "user_id", "value_type": "int64"}],
            "feature_views": [{"name": "user_profile", "group": "user", "entities": ["user_id"],
                               "timestamp_field": "event_timestamp"}],
            "feature_services": [
                {"name": "age_service", "features": ["user_profile:age"]},
                {"name": "rating_service", "features": ["user_profile:avg_rating"]},
            ],
        }))
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_view_a_save_registered_follows_the_tables_new_columns_and_types() -> TestResult {
    let server = TestServer::start()?;
    let saved = server
        .save(
            "misc",
            "mixed_t",
            json!({"entity_key": ["id"], "records": [{"id": 1, "n": 1.5, "event_timestamp": T0}]}),
        )
        .await?;
    assert_eq!(saved["registry"]["status"], "registered", "{saved}");
    assert_eq!(
        features_of(&server, "mixed_t").await?,
        pairs(&[("n", "float64")])
    );

    let saved = server
        .save(
            "misc",
            "mixed_t",
            json!({"records": [{"id": 1, "n": "high", "m": 7, "event_timestamp": T0}]}),
        )
        .await?;
    assert_eq!(saved["registry"]["status"], "updated", "{saved}");
    assert_eq!(saved["entity_key"], json!(["id"]), "{saved}");
    // In the table's column order (`json!` sends keys sorted).
    assert_eq!(
        features_of(&server, "mixed_t").await?,
        pairs(&[("m", "int64"), ("n", "string")])
    );
    let (status, answer) = server
        .post(
            "/get-online-features",
            &json!({"features": ["mixed_t:m", "mixed_t:n"], "entities": {"id": [1]}}),
        )
        .await?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["results"][1]["values"], json!([7]));
    assert_eq!(answer["results"][2]["values"], json!(["high"]));

    // The same columns again change nothing.
    let saved = server
        .save(
            "misc",
            "mixed_t",
            json!({"records": [{"id": 2, "n": "low", "m": 8, "event_timestamp": T0}]}),
        )
        .await?;
    assert_eq!(saved["registry"]["status"], "unchanged", "{saved}");
    Ok(())
}

#[tokio::test]
async fn a_view_a_save_registered_follows_a_table_another_tool_rewrote() -> TestResult {
    let server = TestServer::start()?;
    server
        .save(
            "misc",
            "external",
            json!({"entity_key": ["sku"], "records": [{"sku": "a", "stock": 1, "event_timestamp": T0}]}),
        )
        .await?;
    // pandas or Spark replaces the file: no featurestore metadata, another column.
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("sku", Arc::new(StringArray::from(vec!["a"]))),
        ("stock", Arc::new(Int64Array::from(vec![2]))),
        ("shelf", Arc::new(StringArray::from(vec!["B3"]))),
        (
            "event_timestamp",
            Arc::new(TimestampMicrosecondArray::from(vec![micros(T0)?]).with_timezone("UTC")),
        ),
    ];
    let schema = Schema::new(
        columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    );
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        columns.into_iter().map(|(_, a)| a).collect(),
    )?;
    replace_externally(
        &server.root().join("features/misc/external.parquet"),
        &batch,
    )?;
    let want = pairs(&[("stock", "int64"), ("shelf", "string")]);
    let started = Instant::now();
    while features_of(&server, "external").await? != want {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the view did not follow: {:?}",
            features_of(&server, "external").await?
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let view = get_ok(&server, "/registry/feature-views/external").await?;
    assert_eq!(view["entities"], json!(["sku"]));
    Ok(())
}

#[tokio::test]
async fn a_table_deleted_and_created_again_with_other_columns_gets_the_new_view() -> TestResult {
    let server = TestServer::start()?;
    server
        .save(
            "misc",
            "reborn",
            json!({"entity_key": ["id"], "records": [{"id": 1, "old": 1, "event_timestamp": T0}]}),
        )
        .await?;
    let (status, deleted) = server.delete("/features/misc/reborn").await?;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["feature_views"], json!(["reborn"]), "{deleted}");
    assert_eq!(deleted["feature_services"], json!([]), "{deleted}");

    let saved = server
        .save(
            "misc",
            "reborn",
            json!({"entity_key": ["id"], "records": [{"id": 1, "fresh": "yes", "event_timestamp": T0}]}),
        )
        .await?;
    assert_eq!(saved["registry"]["status"], "updated", "{saved}");
    assert_eq!(
        features_of(&server, "reborn").await?,
        pairs(&[("fresh", "string")])
    );
    Ok(())
}

#[tokio::test]
async fn a_save_that_breaks_a_declared_view_answers_what_no_longer_matches_and_which_services_break()
-> TestResult {
    let server = TestServer::start()?;
    declared_profile(&server).await?;
    let before = get_ok(&server, "/registry/feature-views/user_profile").await?;

    // Same columns, a new one besides: still matches.
    let saved = server
        .save(
            "user",
            "user_profile",
            json!({"records": [
                {"user_id": 1, "age": 31, "avg_rating": 4.0, "extra": true, "event_timestamp": T0},
            ]}),
        )
        .await?;
    assert_eq!(saved["registry"]["status"], "unchanged", "{saved}");

    // `age` gone, `avg_rating` now a string.
    let saved = server
        .save(
            "user",
            "user_profile",
            json!({"records": [{"user_id": 1, "avg_rating": "good", "event_timestamp": T0}]}),
        )
        .await?;
    let registry = &saved["registry"];
    assert_eq!(registry["status"], "mismatch", "{saved}");
    assert_eq!(registry["feature_view"], "user_profile");
    let mut fields: Vec<&str> = registry["mismatches"]
        .as_array()
        .ok_or("mismatches")?
        .iter()
        .filter_map(|m| m["field"].as_str())
        .collect();
    fields.sort_unstable();
    assert_eq!(fields, ["features[0]", "features[1].dtype"], "{saved}");
    assert_eq!(
        registry["broken_feature_services"],
        json!(["age_service", "rating_service"]),
        "{saved}"
    );
    let message = registry["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("POST /registry/apply") && message.contains("age_service"),
        "{message}"
    );
    // A declared view is the user's: the save did not change it.
    assert_eq!(
        get_ok(&server, "/registry/feature-views/user_profile").await?,
        before
    );
    Ok(())
}

#[tokio::test]
async fn deleting_a_table_names_the_views_and_services_that_still_reference_it() -> TestResult {
    let server = TestServer::start()?;
    declared_profile(&server).await?;
    let (status, deleted) = server.delete("/features/user/user_profile").await?;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["feature_views"], json!(["user_profile"]));
    assert_eq!(
        deleted["feature_services"],
        json!(["age_service", "rating_service"])
    );
    let message = deleted["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("user_profile") && message.contains("age_service"),
        "{message}"
    );

    // A table no view names says nothing more.
    server
        .save("misc", "plain", json!({"records": [{"x": 1}]}))
        .await?;
    let (status, deleted) = server.delete("/features/misc/plain").await?;
    assert_eq!(status, 200, "{deleted}");
    assert_eq!(deleted["feature_views"], json!([]));
    assert_eq!(deleted["message"], "table misc/plain deleted");
    Ok(())
}

#[tokio::test]
async fn materializing_every_view_reports_a_view_without_its_table_and_does_the_others()
-> TestResult {
    let server = TestServer::start()?;
    declared_profile(&server).await?;
    server
        .save(
            "content",
            "movie_metadata",
            json!({"entity_key": ["movie_id"], "records": [
                {"movie_id": 10, "genre": "Drama", "event_timestamp": T0},
            ]}),
        )
        .await?;
    let (status, _) = server.delete("/features/user/user_profile").await?;
    assert_eq!(status, 200);

    let (status, answer) = server
        .post(
            "/materialize",
            &json!({"start_ts": T0_MINUS_1D, "end_ts": T0}),
        )
        .await?;
    assert_eq!(status, 200, "{answer}");
    let views = answer["views"].as_array().ok_or("views")?;
    let movie = views
        .iter()
        .find(|v| v["feature_view"] == "movie_metadata")
        .ok_or("movie_metadata")?;
    assert_eq!(movie["entities"], 1, "{answer}");
    assert!(movie.get("skipped").is_none(), "{answer}");
    let profile = views
        .iter()
        .find(|v| v["feature_view"] == "user_profile")
        .ok_or("user_profile")?;
    let skipped = profile["skipped"].as_str().unwrap_or_default();
    assert!(
        skipped.contains("no table user/user_profile")
            && skipped.contains("DELETE /registry/feature-views/user_profile"),
        "{answer}"
    );
    // Named explicitly, the missing table is still an error.
    let (status, problem) = server
        .post(
            "/materialize",
            &json!({"start_ts": T0_MINUS_1D, "end_ts": T0, "feature_views": ["user_profile"]}),
        )
        .await?;
    assert_problem(status, &problem, 404, "table_not_found");
    Ok(())
}

#[tokio::test]
async fn registry_objects_are_deleted_last_referrer_first_and_409_while_referenced() -> TestResult {
    let server = TestServer::start()?;
    declared_profile(&server).await?;

    let (status, problem) = server.delete("/registry/entities/user_id").await?;
    assert_problem(status, &problem, 409, "referenced_by_feature_views");
    assert_eq!(problem["errors"][0]["field"], "feature_views", "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("user_profile")),
        "{problem}"
    );
    let (status, problem) = server
        .delete("/registry/feature-views/user_profile")
        .await?;
    assert_problem(status, &problem, 409, "referenced_by_feature_services");
    let mut referrers: Vec<&str> = problem["errors"]
        .as_array()
        .ok_or("errors")?
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    referrers.sort_unstable();
    assert_eq!(
        referrers,
        [
            "age_service uses feature view user_profile",
            "rating_service uses feature view user_profile"
        ]
    );

    for path in [
        "/registry/feature-services/age_service",
        "/registry/feature-services/rating_service",
        "/registry/feature-views/user_profile",
        "/registry/entities/user_id",
    ] {
        let (status, body) = server.delete(path).await?;
        assert_eq!(status, 200, "DELETE {path}: {body}");
        assert!(body["deleted"]["name"].is_string(), "{body}");
        let (status, problem) = server.delete(path).await?;
        assert_problem(status, &problem, 404, "registry_object_not_found");
    }
    let (status, problem) = server.get("/registry/feature-views/user_profile").await?;
    assert_problem(status, &problem, 404, "registry_object_not_found");
    assert_eq!(
        get_ok(&server, "/registry/entities").await?,
        json!({"entities": []})
    );
    // The table itself is untouched.
    let (status, _) = server.get("/features/user/user_profile").await?;
    assert_eq!(status, 200);
    // Gone from the file too: a restart does not bring them back.
    let server = TestServer::start_on(server.stop(), |_| {})?;
    assert_eq!(
        get_ok(&server, "/registry/feature-views").await?,
        json!({"feature_views": []})
    );
    Ok(())
}
