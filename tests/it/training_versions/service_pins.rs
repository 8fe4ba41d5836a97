//! A feature service that pins its views' versions for training: historical requests through
//! it read the pinned versions (a request's own pin wins), online serving reads the current
//! ones, and every answer names the registry version it was resolved against.

use serde_json::{Value, json};

use super::{PROFILE, current_version, entities, json_ok, populate, push_offline, start};
use crate::common::TestResult;
use crate::common::instants::*;

/// `registry_document()` plus a service reading `user_profile:age`, pinned at `version`.
fn with_pinned_service(version: u64) -> Value {
    let mut doc = super::registry_document();
    doc["feature_services"] = json!([
        {"name": "profile_training", "features": ["user_profile:age"],
         "table_versions": {"user_profile": version}},
    ]);
    doc
}

fn ages(answer: &Value) -> TestResult<Vec<Value>> {
    Ok(answer["rows"]
        .as_array()
        .ok_or_else(|| format!("no rows in {answer}"))?
        .iter()
        .map(|r| r["age"].clone())
        .collect())
}

#[tokio::test]
async fn a_services_version_pins_hold_for_training_but_not_for_online_serving() -> TestResult {
    let server = start()?;
    populate(&server).await?;
    let pinned = current_version(&server, PROFILE).await?;
    server.apply(&with_pinned_service(pinned)).await?;
    let (_, history) = server.get("/registry/history?limit=1").await?;
    let registry_version = history["current_version"].clone();
    assert!(
        registry_version.as_u64().is_some_and(|v| v >= 2),
        "{history}"
    );
    push_offline(
        &server,
        json!({"user_id": [1], "age": [31], "avg_rating": [3.75], "event_timestamp": [T0_MINUS_1H]}),
    )
    .await?;
    let newest = current_version(&server, PROFILE).await?;
    assert!(newest > pinned);

    let through_service = json!({"feature_service": "profile_training", "entities": entities()});
    let answer = json_ok(&server, &through_service).await?;
    assert_eq!(
        ages(&answer)?,
        [json!(30), json!(25), json!(50), Value::Null]
    );
    assert_eq!(
        answer["metadata"]["table_versions"],
        json!({"user_profile": pinned})
    );
    assert_eq!(answer["metadata"]["registry_version"], registry_version);

    let mut overridden = through_service.clone();
    overridden["table_versions"] = json!({"user_profile": newest});
    let answer = json_ok(&server, &overridden).await?;
    assert_eq!(
        ages(&answer)?,
        [json!(31), json!(25), json!(50), Value::Null]
    );
    assert_eq!(
        answer["metadata"]["table_versions"],
        json!({"user_profile": newest})
    );

    let (status, online) = server
        .post(
            "/get-online-features",
            &json!({"feature_service": "profile_training", "entities": {"user_id": [1]}}),
        )
        .await?;
    assert_eq!(status, 200, "{online}");
    let names = online["metadata"]["feature_names"]
        .as_array()
        .ok_or("feature_names")?;
    let at = names.iter().position(|n| n == "age").ok_or("no age")?;
    assert_eq!(
        online["results"][at]["values"],
        json!([31]),
        "online serving reads the current version"
    );
    Ok(())
}
