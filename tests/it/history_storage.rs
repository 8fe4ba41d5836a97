//! Table history at the storage layer, on the local kind: every write is a version that
//! reads back the rows it had, through folds, replaces, deletes, restores and restarts; the
//! sweep keeps what retention says and nothing else.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arrow::array::{Array, Int64Array};
use arrow::record_batch::RecordBatch;
use featurestore::config::Config;
use featurestore::model::{GroupName, TableName};
use featurestore::storage::{
    Clock, Declaration, Storage, StorageError, VersionOp, VersionSelector,
};

use crate::common::TestResult;

fn open(dir: &std::path::Path, keep_days: f64, keep_min: usize) -> TestResult<Storage> {
    let mut config = Config::defaults()?.storage;
    config.data_dir = dir.to_path_buf();
    config.history.keep_days = keep_days;
    config.history.keep_min = keep_min;
    Ok(Storage::open(config)?)
}

fn names() -> (GroupName, TableName) {
    (
        "user".parse().expect("group"),
        "scores".parse().expect("name"),
    )
}

fn rows(ids: std::ops::Range<i64>) -> RecordBatch {
    let id: Vec<i64> = ids.clone().collect();
    let score: Vec<i64> = ids.map(|i| i * 3).collect();
    RecordBatch::try_from_iter([
        (
            "entity_id",
            Arc::new(Int64Array::from(id)) as Arc<dyn Array>,
        ),
        ("score", Arc::new(Int64Array::from(score)) as Arc<dyn Array>),
    ])
    .expect("a valid batch")
}

fn declaration() -> Declaration {
    Declaration {
        entity_key: Some(vec!["entity_id".into()]),
        ..Declaration::default()
    }
}

fn ids_at(storage: &Storage, at: VersionSelector) -> TestResult<Vec<i64>> {
    let (_, name) = names();
    let handle = storage.table_at(&name, at)?;
    let index = handle.file.column_indices(&["entity_id".to_owned()])?;
    let batch = handle.file.read_all(&index)?;
    let column = batch
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or("entity_id is not int64")?;
    Ok(column.values().to_vec())
}

fn range(r: std::ops::Range<i64>) -> Vec<i64> {
    r.collect()
}

#[test]
fn every_write_is_a_version_that_reads_back_its_rows_through_folds_replaces_deletes_and_restarts()
-> TestResult {
    let dir = tempfile::tempdir()?;
    let (group, name) = names();
    let storage = open(dir.path(), 7.0, 10)?;
    storage.save_batch(&group, &name, &rows(0..10), declaration())?; // v1
    storage.append_batch(&group, &name, &rows(10..12), Declaration::default())?; // v2
    storage.append_batch(&group, &name, &rows(12..15), Declaration::default())?; // v3
    let folded = storage.fold(Some(&group), &name)?;
    assert_eq!(folded.version, 3, "a fold changes no row, so no version");
    // Versions 1 to 3 now read prefixes of the folded file: what they read before goes at once.
    let table_dir = dir.path().join("features/user");
    assert!(!table_dir.join("_history/scores/v1.parquet").exists());
    assert!(!table_dir.join("_appends/scores/v1").exists());
    assert_eq!(
        storage.history(&name)?.history_bytes,
        0,
        "a push-fed table keeps no copy"
    );
    storage.append_batch(&group, &name, &rows(15..16), Declaration::default())?; // v4
    storage.save_batch(&group, &name, &rows(100..105), declaration())?; // v5
    storage.delete(&group, &name, Some("ops".into()))?; // v6

    let expected = [
        (1, range(0..10)),
        (2, range(0..12)),
        (3, range(0..15)),
        (4, range(0..16)),
        (5, range(100..105)),
    ];
    for (version, ids) in &expected {
        assert_eq!(
            &ids_at(&storage, VersionSelector::Number(*version))?,
            ids,
            "version {version}"
        );
    }
    let err = storage.table_at(&name, VersionSelector::Number(6)).err();
    assert!(
        matches!(err, Some(StorageError::VersionNotFound { .. })),
        "{err:?}"
    );

    let restored = storage.restore(&group, &name, 2, Some("alice".into()))?; // v7
    assert_eq!(restored.version, 7);
    assert_eq!(ids_at(&storage, VersionSelector::Current)?, range(0..12));

    let history = storage.history(&name)?;
    let listed: Vec<(u64, VersionOp)> =
        history.versions.iter().map(|v| (v.version, v.op)).collect();
    assert_eq!(
        listed,
        vec![
            (7, VersionOp::Restore),
            (6, VersionOp::Delete),
            (5, VersionOp::Replace),
            (4, VersionOp::Append),
            (3, VersionOp::Append),
            (2, VersionOp::Append),
            (1, VersionOp::Create),
        ]
    );
    assert_eq!(history.versions[0].restored_from, Some(2));
    assert_eq!(history.versions[0].written_by.as_deref(), Some("alice"));
    assert_eq!(history.versions[1].written_by.as_deref(), Some("ops"));
    assert_eq!(history.versions[3].rows, 16);
    assert_eq!(history.versions[3].rows_written, 1);
    assert!(history.history_bytes > 0);
    drop(storage);

    let reopened = open(dir.path(), 7.0, 10)?;
    for (version, ids) in &expected {
        assert_eq!(
            &ids_at(&reopened, VersionSelector::Number(*version))?,
            ids,
            "after a restart, version {version}"
        );
    }
    let at_v4 = reopened.history(&name)?.versions[3].became_current();
    assert_eq!(
        ids_at(&reopened, VersionSelector::AsOf(at_v4))?,
        range(0..16)
    );
    Ok(())
}

#[test]
fn the_sweep_keeps_what_retention_says_and_old_versions_then_answer_expired() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (group, name) = names();
    let storage = open(dir.path(), 1.0, 1)?;
    let now = Arc::new(std::sync::Mutex::new(SystemTime::now()));
    let clock = Arc::clone(&now);
    storage.set_clock(Clock::from_fn(move || {
        *clock.lock().unwrap_or_else(|p| p.into_inner())
    }));
    storage.save_batch(&group, &name, &rows(0..10), declaration())?; // v1
    storage.save_batch(&group, &name, &rows(10..20), declaration())?; // v2
    storage.append_batch(&group, &name, &rows(20..21), Declaration::default())?; // v3
    storage.fold(Some(&group), &name)?;
    let swept = storage.sweep_history()?;
    assert_eq!(swept.versions_expired, 0, "everything is within a day");
    assert_eq!(ids_at(&storage, VersionSelector::Number(1))?, range(0..10));
    assert_eq!(ids_at(&storage, VersionSelector::Number(2))?, range(10..20));

    // A day and a bit later: v1 and v2 stopped being current more than a day ago.
    *now.lock().unwrap_or_else(|p| p.into_inner()) += Duration::from_secs(86_400 + 60);
    let pinned_before = storage.table_at(&name, VersionSelector::Number(2))?;
    let swept = storage.sweep_history()?;
    assert_eq!(swept.versions_expired, 2);
    assert!(swept.files_deleted > 0);
    let err = storage.table_at(&name, VersionSelector::Number(1)).err();
    assert!(
        matches!(err, Some(StorageError::VersionExpired { .. })),
        "{err:?}"
    );
    assert_eq!(ids_at(&storage, VersionSelector::Current)?, range(10..21));
    // A reader that opened version 2 before the sweep finishes reading it.
    let index = pinned_before
        .file
        .column_indices(&["entity_id".to_owned()])?;
    assert_eq!(pinned_before.file.read_all(&index)?.num_rows(), 10);
    assert_eq!(
        storage.history(&name)?.history_bytes,
        storage.history(&name)?.history_bytes
    );
    Ok(())
}
