//! Two writers of one local table in two `Storage`s on one data root — what a server and a
//! `featurestore demo` (or two CLIs) are: each has its own in-process lock, so only the lock
//! across processes (`storage::table_lock`) keeps them from giving one version number to two
//! writes or appending the same part twice.

use std::sync::Arc;

use arrow::array::{Array, Int64Array};
use arrow::record_batch::RecordBatch;
use featurestore::config::Config;
use featurestore::model::{GroupName, TableName};
use featurestore::storage::{Declaration, Storage};

use crate::common::TestResult;
use crate::common::history::check_history;

fn open(root: &std::path::Path) -> TestResult<Storage> {
    let mut config = Config::defaults()?.storage;
    config.data_dir = root.to_path_buf();
    Ok(Storage::open(config)?)
}

fn rows(ids: std::ops::Range<i64>) -> RecordBatch {
    let ids: Vec<i64> = ids.collect();
    RecordBatch::try_from_iter([
        (
            "entity_id",
            Arc::new(Int64Array::from(ids.clone())) as Arc<dyn Array>,
        ),
        ("value", Arc::new(Int64Array::from(ids)) as Arc<dyn Array>),
    ])
    .expect("two columns of one length")
}

fn declaration() -> Declaration {
    Declaration {
        entity_key: Some(vec!["entity_id".into()]),
        ..Declaration::default()
    }
}

#[test]
fn two_processes_writing_one_local_table_never_share_a_version_and_keep_every_row() -> TestResult {
    let data = tempfile::tempdir()?;
    let (group, name): (GroupName, TableName) = ("user".parse()?, "shared".parse()?);
    let first = open(data.path())?;
    let created = first.save_batch(&group, &name, &rows(0..3), declaration())?;
    let second = open(data.path())?;
    let mut workers = Vec::new();
    for (index, storage) in [first, second].into_iter().enumerate() {
        let (group, name) = (group.clone(), name.clone());
        workers.push(std::thread::spawn(
            move || -> Result<(Vec<u64>, Vec<i64>), String> {
                let (mut versions, mut appended) = (Vec::new(), Vec::new());
                for round in 0..15i64 {
                    let start = 1000 * (index as i64 + 1) + 10 * round;
                    let outcome = storage
                        .append_batch(&group, &name, &rows(start..start + 2), declaration())
                        .map_err(|e| e.to_string())?;
                    versions.push(outcome.version);
                    appended.extend(start..start + 2);
                }
                Ok((versions, appended))
            },
        ));
    }
    let mut versions = vec![created.version];
    let mut appended: Vec<i64> = (0..3).collect();
    for worker in workers {
        let (mine, rows) = worker.join().map_err(|_| "a writer panicked")??;
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "{mine:?}");
        versions.extend(mine);
        appended.extend(rows);
    }
    versions.sort_unstable();
    let count = versions.len();
    versions.dedup();
    assert_eq!(
        versions.len(),
        count,
        "two appends were acknowledged with one version"
    );

    // A third process sees every acknowledged row once, and every version in the history.
    let reader = open(data.path())?;
    let table = reader.get(&name)?;
    let ids = table
        .file
        .read_all(&table.file.column_indices(&["entity_id".into()])?)?;
    let mut served: Vec<i64> = ids
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or("entity_id is not int64")?
        .values()
        .to_vec();
    served.sort_unstable();
    appended.sort_unstable();
    assert_eq!(served, appended, "every appended row, once");
    let history = check_history(&reader, "shared", &versions)?;
    assert_eq!(history.len(), versions.len(), "{history:#?}");
    Ok(())
}
