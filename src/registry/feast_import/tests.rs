use serde_json::{Value, json};

use super::*;
use crate::model::ValueType;

const FIXTURE: &str = include_str!("../../../tests/fixtures/feast/registry-dump.json");

fn fixture() -> Value {
    serde_json::from_str(FIXTURE).unwrap_or(Value::Null)
}

fn plan_of(dump: Value) -> Result<FeastPlan, FeastImportError> {
    Ok(plan(parse(dump)?, &|_| None))
}

fn kinds(plan: &FeastPlan) -> Vec<(String, String)> {
    plan.unmappable
        .iter()
        .map(|u| (u.kind.clone(), u.name.clone()))
        .collect()
}

#[test]
fn the_fixture_maps_its_entities_batch_views_and_services() -> Result<(), FeastImportError> {
    let plan = plan_of(fixture())?;
    assert_eq!(plan.project, "rides");
    let doc = &plan.document;
    let entities: Vec<(&str, &str, ValueType)> = doc
        .entities
        .iter()
        .map(|e| (e.name.as_str(), e.join_key(), e.value_type))
        .collect();
    assert_eq!(
        entities,
        [
            ("customer", "customer_id", ValueType::String),
            ("driver", "driver_id", ValueType::Int64),
        ]
    );
    let stats = doc
        .feature_views
        .iter()
        .find(|v| v.name == "driver_stats")
        .ok_or_else(|| FeastImportError::Malformed("no driver_stats".into()))?;
    assert_eq!(stats.group, "misc");
    assert_eq!(stats.entities, ["driver"]);
    assert_eq!(stats.timestamp_field, "event_timestamp");
    assert_eq!(stats.created_timestamp_field.as_deref(), Some("created"));
    assert_eq!(stats.ttl_seconds, Some(3650 * 86_400));
    assert_eq!(stats.owner, "rides-team@example.com");
    assert_eq!(stats.tags.get("team").map(String::as_str), Some("rides"));
    let features: Vec<(&str, Option<&str>)> = stats
        .features
        .iter()
        .map(|f| (f.name.as_str(), f.dtype.as_deref()))
        .collect();
    assert_eq!(
        features,
        [
            ("conv_rate", Some("float64")),
            ("acc_rate", Some("float64")),
            ("avg_daily_trips", Some("int64")),
            ("rating_label", Some("string")),
        ]
    );
    let profile = doc
        .feature_views
        .iter()
        .find(|v| v.name == "customer_profile");
    assert_eq!(profile.map(|v| v.ttl_seconds), Some(None), "0s is forever");
    let location = doc
        .feature_views
        .iter()
        .find(|v| v.name == "driver_location");
    assert_eq!(
        location.and_then(|v| v.push_source.as_deref()),
        Some("driver_location_push")
    );
    let risk = doc
        .feature_services
        .iter()
        .find(|s| s.name == "customer_risk");
    assert_eq!(
        risk.map(|s| s.features.clone()),
        Some(vec![
            "customer_profile:current_balance".to_owned(),
            "customer_profile:tier".to_owned(),
            "driver_stats:conv_rate".to_owned(),
        ])
    );
    assert_eq!(
        plan.tables
            .iter()
            .map(|t| (t.view.as_str(), t.source.clone()))
            .collect::<Vec<_>>(),
        [
            (
                "customer_profile",
                DataSource::LocalParquet("data/customer_profile.parquet".into())
            ),
            (
                "driver_location",
                DataSource::LocalParquet("data/driver_location.parquet".into())
            ),
            (
                "driver_stats",
                DataSource::LocalParquet("data/driver_stats.parquet".into())
            ),
        ]
    );
    Ok(())
}

#[test]
fn the_fixture_lists_stream_and_on_demand_views_and_their_service() -> Result<(), FeastImportError>
{
    let plan = plan_of(fixture())?;
    let listed = kinds(&plan);
    for expected in [
        ("stream feature view", "driver_trips_stream"),
        ("on-demand feature view", "trip_fare"),
        ("feature service", "fare_estimate"),
    ] {
        assert!(
            listed.contains(&(expected.0.to_owned(), expected.1.to_owned())),
            "{expected:?} not in {listed:?}"
        );
    }
    assert!(plan.unmappable.iter().all(|u| !u.reason.is_empty()));
    Ok(())
}

fn small_dump() -> Value {
    json!({
        "project": "p",
        "entities": [{"spec": {"name": "user", "joinKey": "user_id", "valueType": "INT64"}}],
        "featureViews": [{"spec": {
            "name": "user_stats", "entities": ["user"], "online": true,
            "features": [{"name": "score", "valueType": "DOUBLE"}, {"name": "embedding", "valueType": "FLOAT_LIST"}],
            "batchSource": {"name": "src", "type": "BATCH_FILE", "timestampField": "ts",
                "fileOptions": {"uri": "s3://bucket/user_stats.parquet"}}
        }}],
        "featureServices": [{"spec": {"name": "aliased", "features": [
            {"featureViewName": "user_stats", "featureViewNameAlias": "u", "featureColumns": [{"name": "score", "valueType": "DOUBLE"}]}
        ]}}]
    })
}

#[test]
fn a_list_feature_is_listed_and_its_view_kept_without_it() -> Result<(), FeastImportError> {
    let plan = plan_of(small_dump())?;
    let view = &plan.document.feature_views[0];
    assert_eq!(view.features.len(), 1);
    assert!(kinds(&plan).contains(&("feature".into(), "user_stats:embedding".into())));
    assert!(matches!(plan.tables[0].source, DataSource::Elsewhere(_)));
    Ok(())
}

#[test]
fn a_service_aliasing_a_view_is_listed_not_applied() -> Result<(), FeastImportError> {
    let plan = plan_of(small_dump())?;
    assert!(plan.document.feature_services.is_empty());
    assert!(kinds(&plan).contains(&("feature service".into(), "aliased".into())));
    Ok(())
}

#[test]
fn a_source_renaming_columns_makes_its_view_unmappable() -> Result<(), FeastImportError> {
    let mut dump = small_dump();
    dump["featureViews"][0]["spec"]["batchSource"]["fieldMapping"] = json!({"s": "score"});
    let plan = plan_of(dump)?;
    assert!(plan.document.feature_views.is_empty());
    assert!(kinds(&plan).contains(&("feature view".into(), "user_stats".into())));
    Ok(())
}

#[test]
fn an_existing_table_keeps_its_group() -> Result<(), FeastImportError> {
    let plan = plan(parse(small_dump())?, &|t| {
        (t == "user_stats").then(|| "scores".into())
    });
    assert_eq!(plan.document.feature_views[0].group, "scores");
    Ok(())
}

#[test]
fn json_that_is_not_a_dump_is_malformed() {
    for bad in [
        json!([1, 2]),
        json!({"entities": []}),
        json!({"project": "p", "entities": [{"spec": {}}]}),
    ] {
        assert!(matches!(plan_of(bad), Err(FeastImportError::Malformed(_))));
    }
}
