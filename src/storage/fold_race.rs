//! Folds and pushes interleaved on purpose: [`Storage::fold_snapshot`] is given a snapshot
//! taken before a push, as a fold running outside the table's lock sees it, so the orders CI
//! hit once under load happen here every time.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, Int64Array};
use arrow::record_batch::RecordBatch;

use super::layout::Layout;
use super::{Declaration, Storage};
use crate::model::{GroupName, TableName};

type TestResult<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn open(dir: &Path) -> TestResult<Storage> {
    let mut config = crate::config::Config::defaults()?.storage;
    config.data_dir = dir.to_path_buf();
    Ok(Storage::open(config)?)
}

fn names() -> (GroupName, TableName) {
    (
        "user".parse().expect("group"),
        "scores".parse().expect("name"),
    )
}

fn rows(ids: Range<i64>) -> RecordBatch {
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

fn push(storage: &Storage, ids: Range<i64>) -> TestResult {
    let (group, name) = names();
    storage.append_batch(&group, &name, &rows(ids), Declaration::default())?;
    Ok(())
}

/// The ids of the current table, in file order.
fn ids(storage: &Storage) -> TestResult<Vec<i64>> {
    let (_, name) = names();
    let handle = storage.get(&name)?;
    let batch = handle
        .file
        .read_all(&handle.file.column_indices(&["entity_id".to_owned()])?)?;
    let column = batch
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or("entity_id is not int64")?;
    Ok(column.values().to_vec())
}

/// The part files on disk beside the current table file (those a restart would read).
fn parts_on_disk(storage: &Storage) -> TestResult<Vec<String>> {
    let (group, name) = names();
    let base_id = storage.get(&name)?.file.base().base_id();
    let dir = storage.layout.parts_dir(&group, &name, &base_id);
    let mut parts: Vec<String> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|f| Layout::is_part_file(f))
        .map(|f| format!("{base_id}/{f}"))
        .collect();
    parts.sort();
    Ok(parts)
}

#[test]
fn a_push_during_a_fold_leaves_no_parts_beside_the_next_fold_and_no_row_twice_after_a_restart()
-> TestResult {
    let dir = tempfile::tempdir()?;
    let (group, name) = names();
    let storage = open(dir.path())?;
    storage.save_batch(
        &group,
        &name,
        &rows(0..10),
        Declaration {
            entity_key: Some(vec!["entity_id".into()]),
            ..Declaration::default()
        },
    )?;
    push(&storage, 10..11)?;
    push(&storage, 11..12)?;
    // The fold starts on the table as it is now, then a push lands before the fold reads
    // the sidecar's version and takes its lock: that part is carried over.
    let snapshot = storage.get(&name)?;
    push(&storage, 12..13)?;
    let first = storage.fold_snapshot(&snapshot)?;
    assert_eq!(first.parts_folded, 2, "{first:?}");
    // One more push, folded alone: the new file must not be named like the current one.
    push(&storage, 13..14)?;
    let second = storage.fold(None, &name)?;
    assert_eq!(second.rows, 14, "{second:?}");
    let expected: Vec<i64> = (0..14).collect();
    assert_eq!(ids(&storage)?, expected);
    let parts = parts_on_disk(&storage)?;
    assert!(
        parts.is_empty(),
        "folded parts left beside the table file: {parts:?}"
    );
    drop(storage);
    let reopened = open(dir.path())?;
    assert_eq!(
        ids(&reopened)?,
        expected,
        "after a restart (parts on disk: {:?})",
        parts_on_disk(&reopened)?
    );
    Ok(())
}
