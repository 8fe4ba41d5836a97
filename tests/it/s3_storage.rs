//! The s3 kind's storage layer against a real S3 server (SeaweedFS): range reads that fetch a
//! small share of a large object, and several `Storage`s on one bucket — the replicas of a
//! deployment — committing through write-once entries without losing or tearing anything.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{Array, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::record_batch::RecordBatch;
use featurestore::config::Config;
use featurestore::model::{GroupName, TableName};
use featurestore::storage::object::BlockingTree;
use featurestore::storage::{Declaration, Storage, StorageBackend};

use crate::common::TestResult;
use crate::common::s3::{S3Bucket, s3_bucket};

/// A `Storage` of the s3 kind on `bucket`, with its own (empty) local data root.
fn replica(bucket: &S3Bucket) -> TestResult<(Storage, tempfile::TempDir)> {
    let local = tempfile::tempdir()?;
    let mut config = Config::defaults()?.storage;
    config.data_dir = local.path().to_path_buf();
    config.backend = StorageBackend::S3;
    config.s3 = bucket.config.clone();
    let storage = Storage::open_on(config, BlockingTree::new(bucket.tree()?))?;
    Ok((storage, local))
}

fn names(group: &str, name: &str) -> (GroupName, TableName) {
    (
        group.parse().expect("valid group"),
        name.parse().expect("valid name"),
    )
}

/// Rows `ids` with a `writer` tag, an entity key and a few payload columns.
fn rows(ids: std::ops::Range<i64>, writer: &str) -> RecordBatch {
    let n = ids.end - ids.start;
    let id: Vec<i64> = ids.clone().collect();
    let value: Vec<i64> = ids.clone().map(|i| i * 7 % 1000).collect();
    let label: Vec<String> = ids.map(|i| format!("label-{}", i % 97)).collect();
    let tag: Vec<&str> = (0..n).map(|_| writer).collect();
    RecordBatch::try_from_iter([
        (
            "entity_id",
            Arc::new(Int64Array::from(id)) as Arc<dyn Array>,
        ),
        ("value", Arc::new(Int64Array::from(value)) as Arc<dyn Array>),
        (
            "label",
            Arc::new(StringArray::from(label)) as Arc<dyn Array>,
        ),
        ("writer", Arc::new(StringArray::from(tag)) as Arc<dyn Array>),
    ])
    .expect("a valid batch")
}

/// `count` interaction-like rows: entity ids that repeat (as users do across events), a
/// category, and a distinct event time per row (`row i` at second `i`).
fn events(count: i64) -> RecordBatch {
    let user: Vec<i64> = (0..count).map(|i| i * 7919 % 100_000).collect();
    let rating: Vec<i64> = (0..count).map(|i| i % 5 + 1).collect();
    let kind: Vec<&str> = (0..count)
        .map(|i| ["view", "like", "skip"][(i % 3) as usize])
        .collect();
    let at: Vec<i64> = (0..count)
        .map(|i| 1_700_000_000_000_000 + i * 1_000_000)
        .collect();
    RecordBatch::try_from_iter([
        (
            "entity_id",
            Arc::new(Int64Array::from(user)) as Arc<dyn Array>,
        ),
        (
            "rating",
            Arc::new(Int64Array::from(rating)) as Arc<dyn Array>,
        ),
        ("kind", Arc::new(StringArray::from(kind)) as Arc<dyn Array>),
        (
            "event_timestamp",
            Arc::new(TimestampMicrosecondArray::from(at).with_timezone("UTC")) as Arc<dyn Array>,
        ),
    ])
    .expect("a valid batch")
}

fn declaration() -> Declaration {
    Declaration {
        entity_key: Some(vec!["entity_id".into()]),
        ..Declaration::default()
    }
}

/// Every `entity_id` of the table, as `storage` serves it now.
fn ids(storage: &Storage, name: &TableName) -> TestResult<Vec<i64>> {
    let handle = storage.get(name)?;
    let index = handle.file.column_indices(&["entity_id".to_owned()])?;
    let batch = handle.file.read_all(&index)?;
    let column = batch
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or("entity_id is not int64")?;
    Ok(column.values().to_vec())
}

#[test]
fn a_cold_page_deep_in_a_large_table_fetches_a_small_share_of_the_object() -> TestResult {
    let Some(bucket) = s3_bucket() else {
        return Ok(());
    };
    let (group, name) = names("interaction", "deep_pages");
    let (writer, _w) = replica(&bucket)?;
    writer.save_batch(&group, &name, &events(1_000_000), declaration())?;
    let file_size = writer.get(&name)?.file.file_size();

    // A fresh replica knows nothing of the table: its footer and the page are fetched now.
    let (reader, _r) = replica(&bucket)?;
    let before = reader.object_tree().ok_or("no tree")?.counters();
    let table = reader.get(&name)?;
    let page = table
        .file
        .read_range(&table.file.all_columns(), 500_000, 100)?;
    let fetched = reader.object_tree().ok_or("no tree")?.counters().bytes_read - before.bytes_read;

    println!(
        "cold 100-row page at offset 500000: fetched {fetched} of {file_size} bytes ({:.1} %)",
        fetched as f64 * 100.0 / file_size as f64
    );
    assert_eq!(page.num_rows(), 100);
    let first = page
        .column(3)
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .ok_or("event_timestamp is not a timestamp")?
        .value(0);
    assert_eq!(
        first,
        1_700_000_000_000_000 + 500_000 * 1_000_000,
        "the page starts at its offset"
    );
    assert!(
        fetched * 10 < file_size,
        "a 100-row page fetched {fetched} of the object's {file_size} bytes (want < 10 %)"
    );
    Ok(())
}

#[test]
fn replicas_on_one_bucket_see_creates_appends_replaces_and_deletes() -> TestResult {
    let Some(bucket) = s3_bucket() else {
        return Ok(());
    };
    let (group, name) = names("user", "shared_table");
    let (a, _a) = replica(&bucket)?;
    let (b, _b) = replica(&bucket)?;

    let created = a.save_batch(&group, &name, &rows(0..10, "a"), declaration())?;
    assert!(
        b.rescan().contains(&name.to_string()),
        "B sees the new table"
    );
    assert_eq!(b.get(&name)?.version, created.version);
    assert_eq!(ids(&b, &name)?, (0..10).collect::<Vec<_>>());

    let appended = a.append_batch(&group, &name, &rows(10..15, "a"), declaration())?;
    b.rescan();
    assert_eq!(b.get(&name)?.version, appended.version);
    assert_eq!(ids(&b, &name)?.len(), 15, "B reads the appended part");

    // B writes on top of what A committed, and A follows.
    let replaced = b.save_batch(&group, &name, &rows(100..103, "b"), declaration())?;
    assert!(replaced.version > appended.version);
    a.rescan();
    assert_eq!(ids(&a, &name)?, vec![100, 101, 102]);

    let last = a.delete(&group, &name, None)?;
    b.rescan();
    assert!(b.peek(&name).is_none(), "B drops the deleted table");
    let again = b.save_batch(&group, &name, &rows(0..1, "b"), declaration())?;
    assert!(
        again.version > last,
        "a re-created table continues its versions"
    );

    // The plain copy follows the latest base, for tools that read the tree.
    let plain = BlockingTree::new(bucket.tree()?).head(&object_store::path::Path::from(
        "features/user/shared_table.parquet",
    ))?;
    assert_eq!(plain.size, b.get(&name)?.file.file_size());
    Ok(())
}

#[test]
fn racing_appends_and_folds_from_two_replicas_keep_every_acknowledged_row() -> TestResult {
    let Some(bucket) = s3_bucket() else {
        return Ok(());
    };
    let (group, name) = names("interaction", "raced_appends");
    let (a, _a) = replica(&bucket)?;
    let (b, _b) = replica(&bucket)?;
    a.save_batch(&group, &name, &rows(0..5, "seed"), declaration())?;
    b.rescan();
    let (a, b) = (Arc::new(a), Arc::new(b));
    let mut workers = Vec::new();
    for (index, storage) in [Arc::clone(&a), Arc::clone(&b)].into_iter().enumerate() {
        let (group, name) = (group.clone(), name.clone());
        workers.push(std::thread::spawn(move || -> Result<Vec<i64>, String> {
            let mut acknowledged = Vec::new();
            for round in 0..12i64 {
                let start = 1_000 * (index as i64 + 1) + round * 10;
                let batch = rows(start..start + 3, if index == 0 { "a" } else { "b" });
                storage
                    .append_batch(&group, &name, &batch, declaration())
                    .map_err(|e| e.to_string())?;
                acknowledged.extend(start..start + 3);
                if round % 4 == 3 {
                    storage
                        .fold(Some(&group), &name)
                        .map_err(|e| e.to_string())?;
                }
            }
            Ok(acknowledged)
        }));
    }
    let mut expected: BTreeSet<i64> = (0..5).collect();
    for worker in workers {
        let acknowledged = worker.join().map_err(|_| "a writer panicked")??;
        expected.extend(acknowledged);
    }
    for storage in [&a, &b] {
        storage.rescan();
        let served: BTreeSet<i64> = ids(storage, &name)?.into_iter().collect();
        assert_eq!(served, expected, "every acknowledged row is in the table");
        assert_eq!(ids(storage, &name)?.len(), expected.len(), "and only once");
    }
    Ok(())
}

#[test]
fn racing_replaces_from_two_replicas_give_strictly_increasing_whole_versions() -> TestResult {
    let Some(bucket) = s3_bucket() else {
        return Ok(());
    };
    let (group, name) = names("content", "raced_replaces");
    let (a, _a) = replica(&bucket)?;
    let (b, _b) = replica(&bucket)?;
    let (a, b) = (Arc::new(a), Arc::new(b));
    let mut workers = Vec::new();
    for (tag, storage) in [("a", Arc::clone(&a)), ("b", Arc::clone(&b))] {
        let (group, name) = (group.clone(), name.clone());
        workers.push(std::thread::spawn(move || -> Result<Vec<u64>, String> {
            let mut versions = Vec::new();
            for round in 0..8i64 {
                let saved = storage
                    .save_batch(
                        &group,
                        &name,
                        &rows(round * 10..round * 10 + 10, tag),
                        declaration(),
                    )
                    .map_err(|e| e.to_string())?;
                versions.push(saved.version);
                // Every read is one whole write: ten consecutive ids of one writer.
                storage.rescan();
                let served = ids(&storage, &name).map_err(|e| e.to_string())?;
                if served.len() != 10 || served.windows(2).any(|w| w[1] != w[0] + 1) {
                    return Err(format!("a torn read: {served:?}"));
                }
            }
            Ok(versions)
        }));
    }
    let mut all = Vec::new();
    for worker in workers {
        let versions = worker.join().map_err(|_| "a writer panicked")??;
        assert!(
            versions.windows(2).all(|w| w[0] < w[1]),
            "one writer's versions increase: {versions:?}"
        );
        all.extend(versions);
    }
    let distinct: BTreeSet<u64> = all.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        all.len(),
        "no version was published twice: {all:?}"
    );
    Ok(())
}

#[test]
fn the_sweep_removes_replaced_objects_and_keeps_every_named_one() -> TestResult {
    let Some(bucket) = s3_bucket() else {
        return Ok(());
    };
    let (group, name) = names("misc", "swept_table");
    let (a, _a) = replica(&bucket)?;
    a.save_batch(&group, &name, &rows(0..10, "a"), declaration())?;
    a.append_batch(&group, &name, &rows(10..12, "a"), declaration())?;
    a.fold(Some(&group), &name)?;
    a.save_batch(&group, &name, &rows(20..25, "a"), declaration())?;
    let tree = BlockingTree::new(bucket.tree()?);
    let data = object_store::path::Path::from("tables/swept_table/data");
    let before = tree.list(&data)?.len();
    assert_eq!(before, 4, "two bases, one part, one folded base");

    // Retention (7 days by default) keeps every version: nothing goes.
    assert_eq!(a.sweep_history()?.files_deleted, 0);
    // With no history kept and the clock two hours on (past the sweep's hour of grace),
    // only the current base stays, and the table reads as before.
    let mut config = Config::defaults()?.storage;
    config.data_dir = _a.path().join("other");
    config.backend = StorageBackend::S3;
    config.s3 = bucket.config.clone();
    config.history.keep_days = 0.0;
    config.history.keep_min = 1;
    let sweeper = Storage::open_on(config, BlockingTree::new(bucket.tree()?))?;
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(7200);
    sweeper.set_clock(featurestore::storage::Clock::from_fn(move || later));
    let swept = sweeper.sweep_history()?;
    assert_eq!(
        tree.list(&data)?.len(),
        1,
        "{swept:?}; the current base stays"
    );
    let (b, _b) = replica(&bucket)?;
    assert_eq!(ids(&b, &name)?, (20..25).collect::<Vec<_>>());
    assert_eq!(ids(&a, &name)?, (20..25).collect::<Vec<_>>());
    Ok(())
}

#[test]
fn racing_writers_on_two_replicas_of_a_bucket_keep_a_consistent_history() -> TestResult {
    let Some(bucket) = s3_bucket() else {
        return Ok(());
    };
    crate::history_s3::racing_writers_keep_a_consistent_history(&BlockingTree::new(bucket.tree()?))
}

/// A Parquet file as another tool (pandas, Spark) writes it: no featurestore footer.
fn foreign_parquet(batch: &RecordBatch) -> TestResult<bytes::Bytes> {
    let mut writer = parquet::arrow::ArrowWriter::try_new(Vec::new(), batch.schema(), None)?;
    writer.write(batch)?;
    Ok(bytes::Bytes::from(writer.into_inner()?))
}

#[test]
fn a_table_file_another_tool_puts_in_the_bucket_is_adopted_and_versioned() -> TestResult {
    let Some(bucket) = s3_bucket() else {
        return Ok(());
    };
    let (group, name) = names("user", "from_a_tool");
    let (a, _a) = replica(&bucket)?;
    let tree = BlockingTree::new(bucket.tree()?);
    let key = object_store::path::Path::from("features/user/from_a_tool.parquet");

    tree.put(&key, foreign_parquet(&rows(0..4, "tool"))?)?;
    assert!(
        a.rescan().contains(&name.to_string()),
        "the new file is adopted"
    );
    let first = a.get(&name)?;
    assert_eq!(first.group, group);
    assert_eq!(
        first.entity_key,
        vec!["entity_id".to_owned()],
        "inferred as for local files"
    );
    assert_eq!(ids(&a, &name)?, vec![0, 1, 2, 3]);

    // Rounds with nothing new change nothing; featurestore's own copy is not re-adopted.
    a.rescan();
    assert_eq!(a.get(&name)?.version, first.version);

    tree.put(&key, foreign_parquet(&rows(10..12, "tool"))?)?;
    a.rescan();
    let second = a.get(&name)?;
    assert!(
        second.version > first.version,
        "a replaced file is a new version"
    );
    assert_eq!(ids(&a, &name)?, vec![10, 11]);

    // Another replica follows through the commit, not the file.
    let (b, _b) = replica(&bucket)?;
    assert_eq!(b.get(&name)?.version, second.version);
    Ok(())
}

/// Runs `featurestore info` on the s3 kind with `env` on top of the bucket's, returning the
/// exit status and stderr.
fn info_on_s3(
    bucket: &S3Bucket,
    env: &[(&str, &str)],
) -> TestResult<(std::process::ExitStatus, String)> {
    let local = tempfile::tempdir()?;
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_featurestore"));
    command
        .args(["info", "--data-dir"])
        .arg(local.path())
        .env("RUST_LOG", "error")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .env("FEATURESTORE__STORAGE__BACKEND", "s3")
        .env("FEATURESTORE__STORAGE__S3__BUCKET", bucket.name())
        .env(
            "FEATURESTORE__STORAGE__S3__ENDPOINT",
            bucket.config.endpoint.clone().unwrap_or_default(),
        )
        .env("FEATURESTORE__STORAGE__S3__ALLOW_HTTP", "true");
    for (key, value) in bucket.env() {
        command.env(key, value);
    }
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output()?;
    Ok((output.status, String::from_utf8(output.stderr)?))
}

#[test]
fn wrong_credentials_or_a_missing_bucket_stop_the_cli_with_the_setting_named() -> TestResult {
    let Some(bucket) = s3_bucket() else {
        return Ok(());
    };
    let (status, stderr) = info_on_s3(&bucket, &[])?;
    assert!(status.success(), "the right settings work: {stderr}");

    let secret = "not-the-secret-at-all";
    let (status, stderr) = info_on_s3(&bucket, &[("AWS_SECRET_ACCESS_KEY", secret)])?;
    assert!(!status.success());
    assert!(stderr.contains("AWS_SECRET_ACCESS_KEY"), "{stderr}");
    assert!(
        !stderr.contains(secret),
        "a credential never reaches the output"
    );
    assert!(
        !stderr.contains("<Error>"),
        "no raw XML from the store: {stderr}"
    );

    let (status, stderr) = info_on_s3(
        &bucket,
        &[("FEATURESTORE__STORAGE__S3__BUCKET", "no-such-bucket-here")],
    )?;
    assert!(!status.success());
    assert!(stderr.contains("storage.s3.bucket"), "{stderr}");
    Ok(())
}
