//! Unit tests of the registry facade on the local kind (the object-store kind's are in
//! `object_tests`).

use super::*;
use crate::model::ValueType;

fn columns(_: &GroupName, name: &TableName) -> Option<Columns> {
    (name.as_str() == "user_profile").then(|| {
        vec![
            ("user_id".into(), "int64".into()),
            ("age".into(), "int64".into()),
            ("favorite_genre".into(), "string".into()),
            ("event_timestamp".into(), "timestamp[us, UTC]".into()),
        ]
    })
}

fn doc() -> RegistryDocument {
    serde_json::from_value(serde_json::json!({
        "entities": [{"name": "user_id", "value_type": "int64"}],
        "feature_views": [{"name": "user_profile", "group": "user", "entities": ["user_id"],
                           "timestamp_field": "event_timestamp", "ttl_seconds": 604800}],
        "feature_services": [{"name": "svc", "features": ["user_profile:age", "user_profile"]}]
    }))
    .expect("valid document")
}

#[test]
fn apply_fills_features_persists_and_reports_changes() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let registry = Registry::open(dir.path())?;
    let report = registry.apply(doc(), &columns)?;
    assert_eq!(report.created.len(), 3);
    let view = registry.view("user_profile")?;
    let names: Vec<&str> = view.features.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["age", "favorite_genre"]);
    let again = registry.apply(doc(), &columns)?;
    assert_eq!(again.unchanged.len(), 3);
    let reopened = Registry::open(dir.path())?;
    assert_eq!(reopened.snapshot(), registry.snapshot());
    Ok(())
}

#[test]
fn two_registries_on_one_folder_keep_each_others_writes() -> Result<(), Box<dyn std::error::Error>>
{
    let dir = tempfile::tempdir()?;
    let first = Registry::open(dir.path())?;
    let second = Registry::open(dir.path())?;
    let entity = |name: &str| RegistryDocument {
        entities: vec![crate::model::Entity {
            name: name.into(),
            join_key: None,
            value_type: ValueType::Int64,
            description: String::new(),
        }],
        ..RegistryDocument::default()
    };
    first.apply(entity("a"), &columns)?;
    // `second` loaded the empty registry; its write must merge into the file, not
    // replace it with what it had in memory.
    second.apply(entity("b"), &columns)?;
    let names = |r: &Registry| -> Vec<String> {
        r.snapshot()
            .entities
            .iter()
            .map(|e| e.name.clone())
            .collect()
    };
    assert_eq!(names(&second), ["a", "b"]);
    assert_eq!(names(&first), ["a"]);
    assert!(first.reload()?);
    assert_eq!(names(&first), ["a", "b"]);
    assert!(!first.reload()?);
    let (_, tag) = first.delete_entity("a", None)?;
    assert_eq!(tag, version_tag(&first.snapshot()));
    assert!(matches!(
        second.delete_entity("b", Some("stale")),
        Err(RegistryError::Changed { .. })
    ));
    second.reload()?;
    assert_eq!(names(&second), ["b"]);
    Ok(())
}

#[test]
fn invalid_definitions_are_all_reported_and_nothing_is_applied()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let registry = Registry::open(dir.path())?;
    let mut bad = doc();
    bad.feature_views[0].timestamp_field = "nope".into();
    bad.feature_views[0].entities.push("movie_id".into());
    bad.feature_services[0]
        .features
        .push("user_profile:missing".into());
    match registry.apply(bad, &columns) {
        Err(RegistryError::Invalid(errors)) => {
            let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
            assert!(
                fields.contains(&"feature_views[0].timestamp_field"),
                "{fields:?}"
            );
            assert!(
                fields.contains(&"feature_views[0].entities[1]"),
                "{fields:?}"
            );
            assert!(
                fields.contains(&"feature_services[0].features[2]"),
                "{fields:?}"
            );
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    assert_eq!(*registry.snapshot(), RegistryDocument::default());
    Ok(())
}
