//! Unit tests of the registry facade on the local kind (the object-store kind's are in
//! `object_tests`).

use super::*;
use crate::model::{RegistryOperation, ValueType};
use history::LocalHistory;

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
    let (_, tag) = first.delete_entity("a", None, &Writer::default())?;
    assert_eq!(tag.tag, version_tag(&first.snapshot()));
    assert!(matches!(
        second.delete_entity("b", Some("stale"), &Writer::default()),
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

fn entity_doc(name: &str) -> RegistryDocument {
    serde_json::from_value(serde_json::json!({
        "entities": [{"name": name, "value_type": "int64"}]
    }))
    .expect("valid document")
}

#[test]
fn every_change_records_the_next_version_and_no_change_records_none()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let registry = Registry::open(dir.path())?;
    assert_eq!(registry.version(), 0);
    registry.apply(entity_doc("a"), &columns)?;
    registry.apply(entity_doc("a"), &columns)?;
    let writer = Writer::new(Some("ci".into()));
    let (_, committed) = registry.delete_entity("a", None, &writer)?;
    assert_eq!(committed.version, 2);
    let page = registry.history_page(0, 10)?;
    let listed: Vec<(u64, RegistryOperation, Option<String>)> = page
        .versions
        .iter()
        .map(|v| (v.version, v.operation, v.written_by.clone()))
        .collect();
    assert_eq!(
        listed,
        [
            (2, RegistryOperation::DeleteEntity, Some("ci".into())),
            (1, RegistryOperation::Apply, None),
        ]
    );
    assert_eq!(registry.version_document(1)?.document, entity_doc("a"));
    assert_eq!(Registry::open(dir.path())?.version(), 2);
    Ok(())
}

#[test]
fn a_document_no_version_records_is_recorded_as_the_next_version_never_reusing_one()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let registry = Registry::open(dir.path())?;
    registry.apply(entity_doc("a"), &columns)?;
    drop(registry);
    // What a crash between replacing the document and recording its version leaves (and
    // what an edit by hand looks like).
    crate::storage::write_json_atomic(&dir.path().join(REGISTRY_FILE), &entity_doc("b"))?;
    let reopened = Registry::open(dir.path())?;
    assert_eq!(reopened.version(), 2);
    let recorded = reopened.version_document(2)?;
    assert_eq!(recorded.record.operation, RegistryOperation::Unrecorded);
    assert_eq!(recorded.document, entity_doc("b"));
    reopened.apply(entity_doc("c"), &columns)?;
    assert_eq!(reopened.version(), 3);
    assert!(matches!(
        reopened.version_document(4),
        Err(RegistryError::VersionNotFound {
            version: 4,
            oldest: Some(1),
            latest: 3
        })
    ));
    Ok(())
}

#[test]
fn the_local_sweep_keeps_the_latest_keep_min_once_versions_are_old()
-> Result<(), Box<dyn std::error::Error>> {
    use std::sync::atomic::{AtomicI64, Ordering};
    const DAY: i64 = 24 * 3600 * 1_000_000;
    let dir = tempfile::tempdir()?;
    let now = Arc::new(AtomicI64::new(1_800_000_000_000_000));
    let clock = Arc::clone(&now);
    let registry = Registry::open_with(
        dir.path(),
        HistoryOptions {
            clock: Arc::new(move || clock.load(Ordering::SeqCst)),
            retention: Retention::default(),
        },
    )?;
    for i in 0..15 {
        registry.apply(entity_doc(&format!("e{i}")), &columns)?;
    }
    assert_eq!(registry.history_page(0, 100)?.total, 15);
    now.fetch_add(8 * DAY, Ordering::SeqCst);
    registry.apply(entity_doc("later"), &columns)?;
    let page = registry.history_page(0, 100)?;
    assert_eq!((page.total, page.oldest, page.current), (10, Some(7), 16));
    assert!(matches!(
        registry.version_document(6),
        Err(RegistryError::VersionExpired {
            version: 6,
            oldest: Some(7),
            latest: 16
        })
    ));
    Ok(())
}

#[test]
fn a_version_prepared_before_a_crash_is_committed_only_if_its_document_was_written()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let registry = Registry::open(dir.path())?;
    registry.apply(entity_doc("a"), &columns)?;
    drop(registry);
    let history = LocalHistory::new(dir.path());
    let prepared = |name: &str| {
        history::record(
            2,
            0,
            RegistryOperation::Apply,
            &Writer::new(Some("loader".into())),
            &entity_doc("a"),
            &entity_doc(name),
        )
    };
    // Killed after preparing, before replacing the document: the version is discarded.
    {
        let lock = file::lock(dir.path())?;
        history.prepare(&lock, &entity_doc("lost"), &prepared("lost"))?;
    }
    let reopened = Registry::open(dir.path())?;
    reopened.apply(entity_doc("b"), &columns)?;
    assert_eq!(reopened.version_document(2)?.document, *reopened.snapshot());
    assert_eq!(reopened.version_document(2)?.record.written_by, None);
    drop(reopened);
    // Killed after replacing the document, before committing: committed as prepared.
    {
        let lock = file::lock(dir.path())?;
        let mut record = prepared("c");
        record.version = 3;
        history.prepare(&lock, &entity_doc("c"), &record)?;
        crate::storage::write_json_atomic(&dir.path().join(REGISTRY_FILE), &entity_doc("c"))?;
    }
    let reopened = Registry::open(dir.path())?;
    assert_eq!(reopened.version(), 3);
    let committed = reopened.version_document(3)?;
    assert_eq!(
        (committed.record.operation, committed.record.written_by),
        (RegistryOperation::Apply, Some("loader".to_owned()))
    );
    assert!(history.pending().is_none());
    Ok(())
}

#[test]
fn concurrent_writers_on_one_folder_never_record_two_versions_with_one_number()
-> Result<(), Box<dyn std::error::Error>> {
    const WRITERS: usize = 4;
    const EACH: usize = 10;
    let dir = tempfile::tempdir()?;
    // One registry per writer, as separate processes have: they meet only at the file lock.
    let registries: Vec<Registry> = (0..WRITERS)
        .map(|_| Registry::open(dir.path()))
        .collect::<Result<_, _>>()?;
    std::thread::scope(|scope| {
        for (w, registry) in registries.iter().enumerate() {
            scope.spawn(move || {
                for i in 0..EACH {
                    let _ = registry.apply(entity_doc(&format!("w{w}_{i}")), &columns);
                }
            });
        }
    });
    let registry = Registry::open(dir.path())?;
    let page = registry.history_page(0, 1000)?;
    let numbers: Vec<u64> = page.versions.iter().map(|v| v.version).collect();
    let expected: Vec<u64> = (1..=(WRITERS * EACH) as u64).rev().collect();
    assert_eq!(numbers, expected);
    // Each version adds exactly the one entity its apply created.
    for version in &page.versions {
        assert_eq!(version.changes.len(), 1, "{version:?}");
    }
    assert_eq!(registry.snapshot().entities.len(), WRITERS * EACH);
    Ok(())
}
