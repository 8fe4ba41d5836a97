//! Table history on the s3 kind, over a folder through the object-store interface (the same
//! commit protocol as a bucket, fast): writes go through HTTP to a server of the s3 kind, and
//! a second `Storage` on the same objects — another replica, with nothing cached — lists the
//! versions and opens them (the REST routes for versions are another branch's).
//!
//! Covered: every write is a version with numbers in order; an old version (before a replace,
//! before a fold) reads the rows it had when it was current; restore; retention at its
//! boundaries with an injected clock; a pinned read racing the sweep; two replicas writing
//! at once never give one number to two versions.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arrow::array::{Array, Int64Array};
use featurestore::config::Config;
use featurestore::model::{GroupName, TableName};
use featurestore::storage::object::{BlockingTree, ObjectTree, local_store};
use featurestore::storage::{
    Clock, HistoryConfig, Storage, StorageBackend, StorageError, VersionOp, VersionSelector,
};
use serde_json::{Value, json};

use crate::common::history::check_history;
use crate::common::{TestResult, TestServer};

const GROUP: &str = "user";
const NAME: &str = "profile";
const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;

/// A folder standing for a bucket, and the tree over it.
fn bucket() -> TestResult<(tempfile::TempDir, BlockingTree)> {
    let dir = tempfile::tempdir()?;
    let tree = BlockingTree::new(ObjectTree::new(local_store(dir.path())?));
    Ok((dir, tree))
}

/// Another replica on the objects of `tree`, with `history` retention.
fn replica(
    tree: &BlockingTree,
    history: HistoryConfig,
) -> TestResult<(Storage, tempfile::TempDir)> {
    let local = tempfile::tempdir()?;
    let mut config = Config::defaults()?.storage;
    config.data_dir = local.path().to_path_buf();
    config.backend = StorageBackend::S3;
    config.history = history;
    Ok((Storage::open_on(config, tree.clone())?, local))
}

fn table() -> TableName {
    NAME.parse().expect("a valid name")
}

fn group() -> GroupName {
    GROUP.parse().expect("a valid group")
}

/// A clock reading `ms` after the epoch.
fn at(ms: u64) -> Clock {
    Clock::from_fn(move || SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
}

/// Now, in milliseconds since the epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Records `(entity_id, value)` as a save body.
fn records(rows: &[(i64, i64)]) -> Value {
    let records: Vec<Value> = rows
        .iter()
        .map(|(id, v)| json!({"entity_id": id, "value": v, "event_timestamp": "2026-01-01T00:00:00Z"}))
        .collect();
    json!({"records": records, "entity_key": ["entity_id"], "timestamp_field": "event_timestamp"})
}

/// The `(entity_id, value)` rows of the table as the server serves it now, and its version.
async fn served(server: &TestServer) -> TestResult<(u64, Vec<(i64, i64)>)> {
    let (status, page) = server
        .get(&format!("/features/{GROUP}/{NAME}?limit=1000"))
        .await?;
    assert_eq!(status, 200, "{page}");
    let rows = page["data"]
        .as_array()
        .ok_or("no data")?
        .iter()
        .map(|r| {
            (
                r["entity_id"].as_i64().unwrap_or(-1),
                r["value"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    Ok((
        page["metadata"]["version"].as_u64().ok_or("no version")?,
        rows,
    ))
}

/// The `(entity_id, value)` rows of version `version` as `storage` opens it.
fn rows_of(storage: &Storage, version: u64) -> Result<Vec<(i64, i64)>, StorageError> {
    let handle = storage.table_at(&table(), VersionSelector::Number(version))?;
    let columns = handle
        .file
        .column_indices(&["entity_id".to_owned(), "value".to_owned()])?;
    let batch = handle.file.read_all(&columns)?;
    let column = |i: usize| -> Vec<i64> {
        batch
            .column(i)
            .as_any()
            .downcast_ref::<Int64Array>()
            .map(|a| a.values().to_vec())
            .unwrap_or_default()
    };
    Ok(column(0).into_iter().zip(column(1)).collect())
}

/// `(entity_id, value)` rows as a batch of logical types.
fn batch(rows: &[(i64, i64)]) -> arrow::record_batch::RecordBatch {
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let values: Vec<i64> = rows.iter().map(|r| r.1).collect();
    arrow::record_batch::RecordBatch::try_from_iter([
        (
            "entity_id",
            Arc::new(Int64Array::from(ids)) as Arc<dyn Array>,
        ),
        (
            "value",
            Arc::new(Int64Array::from(values)) as Arc<dyn Array>,
        ),
    ])
    .expect("two columns of one length")
}

fn declaration() -> featurestore::storage::Declaration {
    featurestore::storage::Declaration {
        entity_key: Some(vec!["entity_id".into()]),
        ..Default::default()
    }
}

/// Registers the table as a view, so `/push` takes rows for it.
async fn register(server: &TestServer) -> TestResult {
    server
        .apply(&json!({
            "entities": [{"name": "entity_id", "value_type": "int64"}],
            "feature_views": [{"name": NAME, "group": GROUP, "entities": ["entity_id"],
                               "timestamp_field": "event_timestamp"}],
        }))
        .await?;
    Ok(())
}

/// Pushes `rows` offline; the table's new version.
async fn push(server: &TestServer, rows: &[(i64, i64)]) -> TestResult<u64> {
    let ids: Vec<i64> = rows.iter().map(|r| r.0).collect();
    let values: Vec<i64> = rows.iter().map(|r| r.1).collect();
    let (status, answer) = server
        .post(
            "/push",
            &json!({"feature_view": NAME, "to": "offline", "df": {
                "entity_id": ids, "value": values,
                "event_timestamp": vec!["2026-01-02T00:00:00Z"; rows.len()]}}),
        )
        .await?;
    assert_eq!(status, 200, "{answer}");
    Ok(answer["offline"]["version"].as_u64().ok_or("no version")?)
}

/// Saves `rows`; the new version.
async fn save(server: &TestServer, rows: &[(i64, i64)]) -> TestResult<u64> {
    let answer = server.save(GROUP, NAME, records(rows)).await?;
    Ok(answer["version"].as_u64().ok_or("no version")?)
}

#[tokio::test]
async fn every_write_on_s3_is_a_version_in_order_and_old_versions_read_as_they_were() -> TestResult
{
    let (_bucket, tree) = bucket()?;
    let server = TestServer::start_on_objects(tree.clone(), |_| {})?;
    // (version, rows served while it was current), for every write.
    let mut seen: Vec<(u64, Vec<(i64, i64)>)> = Vec::new();
    save(&server, &[(1, 10), (2, 20), (3, 30)]).await?;
    seen.push(served(&server).await?);
    register(&server).await?;
    save(&server, &[(1, 11), (4, 40)]).await?;
    seen.push(served(&server).await?);
    push(&server, &[(5, 50)]).await?;
    seen.push(served(&server).await?);
    push(&server, &[(6, 60), (7, 70)]).await?;
    seen.push(served(&server).await?);
    // The fold makes no version: the two pushed versions now read from prefixes of its file.
    let (status, folded) = server
        .post(&format!("/features/{GROUP}/{NAME}/compact"), &json!({}))
        .await?;
    assert_eq!(status, 200, "{folded}");
    push(&server, &[(8, 80)]).await?;
    seen.push(served(&server).await?);
    let (status, deleted) = server.delete(&format!("/features/{GROUP}/{NAME}")).await?;
    assert!(status == 200 || status == 204, "{status} {deleted}");
    save(&server, &[(9, 90)]).await?;
    seen.push(served(&server).await?);

    let (other, _local) = replica(&tree, HistoryConfig::default())?;
    let versions = check_history(&other, NAME, &seen.iter().map(|s| s.0).collect::<Vec<_>>())?;
    let ops: Vec<VersionOp> = versions.iter().map(|v| v.op).collect();
    use VersionOp::*;
    assert_eq!(
        ops,
        vec![Create, Replace, Append, Append, Append, Delete, Create],
        "{versions:#?}"
    );
    let times: Vec<i64> = versions.iter().map(|v| v.became_current_ms).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert!(times[0] > 0, "every version says when it became current");
    let replace = &versions[1];
    assert_eq!(replace.rows, 2);
    assert_eq!(replace.rows_written, 2);
    assert!(replace.bytes_written > 0);
    let delete = &versions[5];
    assert_eq!(
        delete.version,
        versions[4].version + 1,
        "a delete is a version"
    );
    assert_eq!(
        versions[6].version,
        delete.version + 1,
        "re-created after it"
    );
    assert_eq!(delete.columns_removed.len(), 3, "{delete:?}");

    let history = other.history(&table())?;
    assert!(
        history.history_bytes > 0,
        "the replaced bases are history: {history:?}"
    );

    // Every version reads, on a replica that never saw it current, the rows it had then.
    for (version, rows) in &seen {
        assert_eq!(&rows_of(&other, *version)?, rows, "version {version}");
    }
    Ok(())
}

#[tokio::test]
async fn restoring_a_version_on_s3_writes_its_rows_again_as_a_new_version() -> TestResult {
    let (_bucket, tree) = bucket()?;
    let server = TestServer::start_on_objects(tree.clone(), |_| {})?;
    let first = save(&server, &[(1, 10), (2, 20)]).await?;
    let (_, first_rows) = served(&server).await?;
    let second = save(&server, &[(3, 30)]).await?;
    let (writer, _local) = replica(&tree, HistoryConfig::default())?;
    let restored = writer.restore(&group(), &table(), first, Some("ops".into()))?;
    assert!(restored.version > second, "{restored:?}");
    // The server sees the restore at its next poll, like any write of another replica.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (version, rows) = served(&server).await?;
        if version == restored.version {
            assert_eq!(rows, first_rows, "the restored rows are version {first}'s");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the server never saw the restore"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (reader, _l) = replica(&tree, HistoryConfig::default())?;
    let versions = check_history(&reader, NAME, &[first, second, restored.version])?;
    let last = versions.last().ok_or("no version")?;
    assert_eq!(last.op, VersionOp::Restore);
    assert_eq!(last.restored_from, Some(first));
    assert_eq!(last.written_by.as_deref(), Some("ops"));
    // A restore is undone the same way.
    let undone = writer.restore(&group(), &table(), second, None)?;
    assert_eq!(rows_of(&reader, undone.version)?, vec![(3, 30)]);
    Ok(())
}

/// Writes versions 1, 2 and 3 at `t0`, `t0 + 1 h` and `t0 + 2 h` by the writer's clock.
fn three_versions(tree: &BlockingTree, t0: u64) -> TestResult<Vec<Vec<(i64, i64)>>> {
    let (writer, _local) = replica(tree, HistoryConfig::default())?;
    let mut contents = Vec::new();
    for k in 0..3u64 {
        writer.set_clock(at(t0 + k * HOUR_MS));
        let rows: Vec<(i64, i64)> = (0..=k as i64).map(|i| (i, i * 100 + k as i64)).collect();
        writer.save_batch(&group(), &table(), &batch(&rows), declaration())?;
        contents.push(rows);
    }
    Ok(contents)
}

#[test]
fn retention_on_s3_keeps_a_version_until_its_window_and_grace_have_passed() -> TestResult {
    let (_bucket, tree) = bucket()?;
    let t0 = now_ms();
    let contents = three_versions(&tree, t0)?;
    let keep = HistoryConfig {
        keep_days: 1.0,
        keep_min: 1,
    };
    // Version 1 stopped being current at t0 + 1 h: it is kept for a day, then an hour of
    // grace for reads that resolved it just before (the sweep's GRACE).
    let expires = t0 + HOUR_MS + DAY_MS + HOUR_MS;
    let (sweeper, _l) = replica(&tree, keep)?;
    sweeper.set_clock(at(expires - 1));
    let swept = sweeper.sweep_history()?;
    assert_eq!(swept.versions_expired, 0, "{swept:?}");
    let (reader, _r) = replica(&tree, keep)?;
    assert_eq!(
        rows_of(&reader, 1)?,
        contents[0],
        "one millisecond before: readable"
    );

    sweeper.set_clock(at(expires));
    let swept = sweeper.sweep_history()?;
    assert_eq!(swept.versions_expired, 1, "{swept:?}");
    assert!(
        swept.bytes_freed > 0,
        "version 1's base object went: {swept:?}"
    );
    let (reader, _r) = replica(&tree, keep)?;
    match rows_of(&reader, 1) {
        Err(StorageError::VersionExpired { available, .. }) => {
            assert!(
                available.contains('2') && available.contains('3'),
                "{available}"
            )
        }
        other => panic!("version 1 after its expiry: {other:?}"),
    }
    assert_eq!(rows_of(&reader, 2)?, contents[1]);
    assert_eq!(rows_of(&reader, 3)?, contents[2]);
    let versions = check_history(&reader, NAME, &[2, 3])?;
    assert_eq!(versions.len(), 2, "{versions:?}");
    Ok(())
}

#[test]
fn no_history_on_s3_keeps_only_the_current_version_and_its_objects() -> TestResult {
    let (bucket_dir, tree) = bucket()?;
    let t0 = now_ms();
    let contents = three_versions(&tree, t0)?;
    let none = HistoryConfig {
        keep_days: 0.0,
        keep_min: 1,
    };
    let (sweeper, _l) = replica(&tree, none)?;
    // Version 2 was replaced less than the grace hour ago: a read may hold it, it stays.
    // Version 1 was replaced two hours ago: it goes.
    sweeper.set_clock(at(t0 + 2 * HOUR_MS + 10));
    let swept = sweeper.sweep_history()?;
    assert_eq!(swept.versions_expired, 1, "{swept:?}");
    let (reader, _r) = replica(&tree, none)?;
    assert_eq!(rows_of(&reader, 2)?, contents[1]);
    sweeper.set_clock(at(t0 + 4 * HOUR_MS));
    let swept = sweeper.sweep_history()?;
    assert_eq!(swept.versions_expired, 1, "{swept:?}");
    let (reader, _r) = replica(&tree, none)?;
    let versions = check_history(&reader, NAME, &[3])?;
    assert_eq!(versions.len(), 1, "{versions:?}");
    assert_eq!(rows_of(&reader, 3)?, contents[2]);
    assert!(matches!(
        rows_of(&reader, 2),
        Err(StorageError::VersionExpired { .. })
    ));
    assert!(matches!(
        rows_of(&reader, 1),
        Err(StorageError::VersionExpired { .. })
    ));
    let data = bucket_dir.path().join("tables").join(NAME).join("data");
    assert_eq!(
        std::fs::read_dir(&data)?.count(),
        1,
        "only the current base is left"
    );
    let history = reader.history(&table())?;
    assert_eq!(history.history_bytes, 0, "{history:?}");
    // Each version's statistics object went with its version.
    let stats = bucket_dir.path().join("tables").join(NAME).join("stats");
    let mut left: Vec<String> = std::fs::read_dir(&stats)?
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["00000000000000000003.json"],
        "only the current version's statistics"
    );
    Ok(())
}

#[test]
fn a_pinned_read_racing_the_sweep_on_s3_reads_the_same_rows_or_says_expired() -> TestResult {
    let (_bucket, tree) = bucket()?;
    let t0 = now_ms();
    let contents = three_versions(&tree, t0)?;
    let none = HistoryConfig {
        keep_days: 0.0,
        keep_min: 1,
    };
    let (reader, _r) = replica(&tree, none)?;
    let (sweeper, _s) = replica(&tree, none)?;
    let reader = Arc::new(reader);
    // Pinned reads of version 1 in a loop, while the sweep runs past its grace.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let worker = {
        let (reader, stop) = (Arc::clone(&reader), Arc::clone(&stop));
        std::thread::spawn(move || -> Result<(usize, usize), String> {
            let (mut same, mut expired) = (0, 0);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || same + expired == 0 {
                match rows_of(&reader, 1) {
                    Ok(rows) if rows == vec![(0, 0)] => same += 1,
                    Ok(rows) => return Err(format!("version 1 read as {rows:?}")),
                    Err(StorageError::VersionExpired { .. }) => expired += 1,
                    Err(e) => return Err(format!("a pinned read failed with: {e}")),
                }
            }
            Ok((same, expired))
        })
    };
    // A handle opened before the sweep, read after it.
    let held = reader.table_at(&table(), VersionSelector::Number(1))?;
    sweeper.set_clock(at(t0 + 5 * HOUR_MS));
    let swept = sweeper.sweep_history()?;
    assert_eq!(swept.versions_expired, 2);
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (same, expired) = worker.join().map_err(|_| "the reader panicked")??;
    println!(
        "pinned reads racing the sweep: {same} read version 1, {expired} were told it expired"
    );
    match held.file.read_all(&held.file.all_columns()) {
        Ok(batch) => assert_eq!(batch.num_rows(), contents[0].len()),
        Err(StorageError::VersionExpired { .. }) => {}
        Err(e) => panic!("a held version read after the sweep failed with: {e}"),
    }
    // The sweep dropped it from the reader's cache too: it is now told it expired.
    let (fresh, _f) = replica(&tree, none)?;
    assert!(matches!(
        rows_of(&fresh, 1),
        Err(StorageError::VersionExpired { .. })
    ));
    Ok(())
}

/// Two replicas on `tree` pushing and replacing one table at once; checks every
/// acknowledged version is listed once and reads. Shared with the SeaweedFS variant.
pub fn racing_writers_keep_a_consistent_history(tree: &BlockingTree) -> TestResult {
    let (a, _a) = replica(tree, HistoryConfig::default())?;
    let (b, _b) = replica(tree, HistoryConfig::default())?;
    let rows = |ids: std::ops::Range<i64>| batch(&ids.map(|i| (i, i)).collect::<Vec<_>>());
    let first = a.save_batch(&group(), &table(), &rows(0..3), declaration())?;
    let (a, b) = (Arc::new(a), Arc::new(b));
    let mut workers = Vec::new();
    for (index, storage) in [Arc::clone(&a), Arc::clone(&b)].into_iter().enumerate() {
        workers.push(std::thread::spawn(move || -> Result<Vec<u64>, String> {
            let mut acked = Vec::new();
            for round in 0..10i64 {
                let start = 1000 * (index as i64 + 1) + 10 * round;
                let rows = rows(start..start + 2);
                let version = if round % 3 == 2 {
                    storage
                        .save_batch(&group(), &table(), &rows, declaration())
                        .map_err(|e| e.to_string())?
                        .version
                } else {
                    storage
                        .append_batch(&group(), &table(), &rows, declaration())
                        .map_err(|e| e.to_string())?
                        .version
                };
                acked.push(version);
                if round == 6 {
                    storage
                        .fold(Some(&group()), &table())
                        .map_err(|e| e.to_string())?;
                }
            }
            Ok(acked)
        }));
    }
    let mut acked = vec![first.version];
    for worker in workers {
        let mine = worker.join().map_err(|_| "a writer panicked")??;
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "{mine:?}");
        acked.extend(mine);
    }
    acked.sort_unstable();
    let before = acked.len();
    acked.dedup();
    assert_eq!(
        acked.len(),
        before,
        "two writes were acknowledged with one number"
    );
    let (reader, _r) = replica(tree, HistoryConfig::default())?;
    let versions = check_history(&reader, NAME, &acked)?;
    assert_eq!(
        versions.len(),
        acked.len(),
        "every version is a write that was acknowledged"
    );
    Ok(())
}

#[test]
fn racing_writers_on_two_replicas_never_share_a_version_number() -> TestResult {
    let (_bucket, tree) = bucket()?;
    racing_writers_keep_a_consistent_history(&tree)
}
