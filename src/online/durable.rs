//! The durable online store: a sled database under `<root>/online/` holding, per feature view,
//! the latest rows last materialized and the rows pushed online since.
//!
//! Layout of the keys (one tree, prefixes per view so a view's entries are one range scan):
//! - `m\0<view>`: a JSON [`Materialized`] record (which table snapshot and view definition the
//!   rows came from, the watermark of incremental materialization);
//! - `r\0<view>\0<chunk: u32 BE>`: the materialized latest rows, as Arrow IPC streams of at
//!   most [`CHUNK_ROWS`] rows (sled handles many mid-sized values far better than one huge
//!   one);
//! - `p\0<view>\0<seq: u64 BE>`: rows pushed with `"to": "online"`, as Arrow IPC, in push order.
//!   They exist nowhere else, so they are kept until the view is deleted; once a view's log
//!   has taken as many rows as it held after its last compaction (and at least
//!   [`COMPACT_AFTER_ROWS`]), [`OnlineDb::push`] says so and the caller compacts it to the
//!   rows that can still decide an answer (`push_log.rs`), so the log, and sled's memory,
//!   stay proportional to the entities pushed, not to the pushes.
//!
//! A materialization replaces the view's `r` and `m` entries in one sled batch, so a crash
//! leaves the previous materialization or the new one, and it is flushed before it returns.
//! This store is separate from the disk cache: the cache may be wiped or evicted at any time,
//! this may not.

use std::collections::HashMap;
use std::io::Cursor;
use std::path::Path;
use std::sync::{Arc, Mutex};

use arrow::compute::concat_batches;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use crate::model::FeatureView;

/// Rows per stored chunk of materialized rows.
pub const CHUNK_ROWS: usize = 64 * 1024;

/// What a materialization of one view recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Materialized {
    /// The view definition the rows were indexed for.
    pub view: FeatureView,
    /// Its join keys.
    pub join_keys: Vec<String>,
    /// Table version the rows came from.
    pub table_version: u64,
    /// Table snapshot the rows came from.
    pub table_snapshot: u64,
    /// Earliest future event left out (µs); the rows are stale from then on.
    pub valid_until: i64,
    /// When it ran (µs since the epoch).
    pub materialized_at_micros: i64,
    /// End of the last materialized window (µs): where the next incremental run starts.
    pub watermark_micros: i64,
    /// Rows stored (one per entity key).
    pub rows: u64,
}

/// Why the online store failed.
#[derive(Debug, thiserror::Error)]
pub enum DurableError {
    /// sled failed (I/O, lock held by another process, corruption).
    #[error("online store: {0}")]
    Sled(#[from] sled::Error),
    /// Stored rows could not be encoded or decoded.
    #[error("online store rows: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// A stored record could not be decoded.
    #[error("online store record: {0}")]
    Record(#[from] serde_json::Error),
}

/// Rows a view's push log takes before a compaction is worth its cost; past that, a
/// compaction is due once the log has grown by as many rows as it kept, so each row pushed is
/// rewritten a bounded number of times on average.
pub const COMPACT_AFTER_ROWS: u64 = 1024;

/// How much of a view's push log is new since its last compaction.
#[derive(Debug, Clone, Copy, Default)]
struct LogGrowth {
    /// Rows pushed since the last compaction (entries, for a log found at start-up).
    rows_since: u64,
    /// Rows the last compaction kept.
    rows_kept: u64,
}

/// What one compaction of a push log did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compaction {
    /// Entries (pushes) before.
    pub entries_before: usize,
    /// Entries after.
    pub entries_after: usize,
    /// Rows before.
    pub rows_before: usize,
    /// Rows after.
    pub rows_after: usize,
}

/// The durable online store.
#[derive(Debug, Clone)]
pub struct OnlineDb {
    db: sled::Db,
    /// Growth per view of the push log; also serializes compactions, so two cannot rewrite
    /// the same entries.
    logs: Arc<Mutex<HashMap<String, LogGrowth>>>,
}

fn key(prefix: u8, view: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(view.len() + 3);
    key.push(prefix);
    key.push(0);
    key.extend_from_slice(view.as_bytes());
    key
}

fn range_prefix(prefix: u8, view: &str) -> Vec<u8> {
    let mut key = key(prefix, view);
    key.push(0);
    key
}

fn encode(batch: &RecordBatch) -> Result<Vec<u8>, DurableError> {
    let mut out = Vec::new();
    let mut writer = StreamWriter::try_new(&mut out, &batch.schema())?;
    writer.write(batch)?;
    writer.finish()?;
    drop(writer);
    Ok(out)
}

fn decode(bytes: &[u8]) -> Result<RecordBatch, DurableError> {
    let reader = StreamReader::try_new(Cursor::new(bytes), None)?;
    let schema = reader.schema();
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    Ok(concat_batches(&schema, &batches)?)
}

fn concat_all(batches: Vec<RecordBatch>) -> Result<Option<RecordBatch>, DurableError> {
    match batches.first() {
        None => Ok(None),
        Some(first) => Ok(Some(concat_batches(&first.schema(), &batches)?)),
    }
}

/// sled's in-memory page cache for the online store. sled's default is 1 GiB per database;
/// the served rows live in the online index, so sled is only read at start-up and written by
/// pushes and materializations.
const SLED_PAGE_CACHE_BYTES: u64 = 32 * 1024 * 1024;

impl OnlineDb {
    /// Opens (creating) the store in `dir`. Fails when another process holds it.
    pub fn open(dir: &Path) -> Result<Self, DurableError> {
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::HighThroughput)
            .cache_capacity(SLED_PAGE_CACHE_BYTES)
            .open()?;
        Ok(Self {
            db,
            logs: Arc::default(),
        })
    }

    /// The materialization record of `view`, if it was ever materialized.
    pub fn record(&self, view: &str) -> Result<Option<Materialized>, DurableError> {
        match self.db.get(key(b'm', view))? {
            None => Ok(None),
            Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
        }
    }

    /// The materialized rows of `view` with their record, when `usable` accepts the record.
    /// The record is checked before any row is read: a rebuild after every table write must
    /// not decode a stale materialization only to throw it away.
    pub fn load(
        &self,
        view: &str,
        usable: impl FnOnce(&Materialized) -> bool,
    ) -> Result<Option<(Materialized, RecordBatch)>, DurableError> {
        let Some(record) = self.record(view)?.filter(|r| usable(r)) else {
            return Ok(None);
        };
        let chunks = self
            .db
            .scan_prefix(range_prefix(b'r', view))
            .map(|entry| decode(&entry?.1))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(concat_all(chunks)?.map(|rows| (record, rows)))
    }

    /// Replaces the materialized rows of `view` and its record, atomically and durably.
    pub fn save(
        &self,
        view: &str,
        record: &Materialized,
        rows: &RecordBatch,
    ) -> Result<(), DurableError> {
        let mut batch = sled::Batch::default();
        for entry in self.db.scan_prefix(range_prefix(b'r', view)).keys() {
            batch.remove(entry?);
        }
        let mut offset = 0;
        let mut chunk = 0u32;
        // An empty view still gets one (empty) chunk so that it loads as materialized.
        loop {
            let len = CHUNK_ROWS.min(rows.num_rows() - offset);
            let mut chunk_key = range_prefix(b'r', view);
            chunk_key.extend_from_slice(&chunk.to_be_bytes());
            batch.insert(chunk_key, encode(&rows.slice(offset, len))?);
            offset += len;
            chunk += 1;
            if offset >= rows.num_rows() {
                break;
            }
        }
        batch.insert(key(b'm', view), serde_json::to_vec(record)?);
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    /// Records rows pushed online to `view`, durably, after those pushed before. Returns
    /// whether the view's log is due for [`Self::compact_pushed`].
    pub fn push(&self, view: &str, rows: &RecordBatch) -> Result<bool, DurableError> {
        let seq = self.db.generate_id()?;
        let mut push_key = range_prefix(b'p', view);
        push_key.extend_from_slice(&seq.to_be_bytes());
        self.db.insert(push_key, encode(rows)?)?;
        self.db.flush()?;
        let mut logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        let growth = match logs.get_mut(view) {
            Some(growth) => growth,
            None => {
                // First push since start-up: what the log already holds counts as new, by
                // entries (at least a row each), without decoding it here.
                let entries = self.db.scan_prefix(range_prefix(b'p', view)).keys().count();
                logs.entry(view.to_owned()).or_insert(LogGrowth {
                    rows_since: entries.saturating_sub(1) as u64,
                    rows_kept: 0,
                })
            }
        };
        growth.rows_since += rows.num_rows() as u64;
        Ok(growth.rows_since >= COMPACT_AFTER_ROWS.max(growth.rows_kept))
    }

    /// Replaces each run of same-schema entries in `view`'s push log by one entry holding the
    /// rows `survivors` keeps of them (in push order), atomically and durably. A run
    /// `survivors` declines (`None`: it cannot judge those rows) stays as it is. Pushes
    /// landing meanwhile get later keys and are left alone.
    pub fn compact_pushed(
        &self,
        view: &str,
        mut survivors: impl FnMut(&RecordBatch) -> Option<RecordBatch>,
    ) -> Result<Compaction, DurableError> {
        let mut logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        let entries = self
            .db
            .scan_prefix(range_prefix(b'p', view))
            .map(|entry| {
                let (key, value) = entry?;
                Ok((key, decode(&value)?))
            })
            .collect::<Result<Vec<_>, DurableError>>()?;
        let mut outcome = Compaction {
            entries_before: entries.len(),
            entries_after: 0,
            rows_before: entries.iter().map(|(_, rows)| rows.num_rows()).sum(),
            rows_after: 0,
        };
        let mut batch = sled::Batch::default();
        for run in entries.chunk_by(|(_, a), (_, b)| a.schema() == b.schema()) {
            let Some((last_key, last)) = run.last() else {
                continue;
            };
            let all = concat_batches(&last.schema(), run.iter().map(|(_, rows)| rows))?;
            match survivors(&all) {
                Some(kept) => {
                    for (key, _) in run {
                        batch.remove(key.clone());
                    }
                    if kept.num_rows() > 0 {
                        batch.insert(last_key.clone(), encode(&kept)?);
                        outcome.entries_after += 1;
                        outcome.rows_after += kept.num_rows();
                    }
                }
                None => {
                    outcome.entries_after += run.len();
                    outcome.rows_after += all.num_rows();
                }
            }
        }
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        logs.insert(
            view.to_owned(),
            LogGrowth {
                rows_since: 0,
                rows_kept: outcome.rows_after as u64,
            },
        );
        Ok(outcome)
    }

    /// Every row pushed online to `view`, in push order; batches of different schemas (the
    /// table changed between pushes) are returned separately.
    pub fn pushed(&self, view: &str) -> Result<Vec<RecordBatch>, DurableError> {
        self.db
            .scan_prefix(range_prefix(b'p', view))
            .map(|entry| decode(&entry?.1))
            .collect()
    }

    /// Forgets everything about `view` (its table was deleted).
    pub fn forget(&self, view: &str) -> Result<(), DurableError> {
        // Held throughout: a compaction in flight would otherwise write its entry back after
        // this removed the log, and a table created again under the name would serve it.
        let mut logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        let mut batch = sled::Batch::default();
        batch.remove(key(b'm', view));
        for prefix in [b'r', b'p'] {
            for entry in self.db.scan_prefix(range_prefix(prefix, view)).keys() {
                batch.remove(entry?);
            }
        }
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        logs.remove(view);
        Ok(())
    }

    /// Flushes to disk (at shutdown).
    pub fn flush(&self) -> Result<(), DurableError> {
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn ints(values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))])
            .expect("a valid batch")
    }

    fn strings(values: &[&str]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, true)]));
        RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(values.to_vec()))])
            .expect("a valid batch")
    }

    /// Each batch's values, comma-separated (the test batches have one column).
    fn rows(batches: &[RecordBatch]) -> Vec<String> {
        batches
            .iter()
            .map(|b| {
                let column = b.column(0);
                (0..b.num_rows())
                    .map(|i| {
                        arrow::util::display::array_value_to_string(column, i).expect("printable")
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect()
    }

    #[test]
    fn a_compaction_replaces_each_same_schema_run_by_its_survivors_in_push_order() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let db = OnlineDb::open(dir.path()).expect("opens");
        for batch in [ints(&[1, 2]), ints(&[3]), strings(&["a"]), ints(&[4, 5])] {
            db.push("view", &batch).expect("pushed");
        }
        db.push("other", &ints(&[9])).expect("pushed");
        // Keeps the last row of each run; declines the string run.
        let done = db
            .compact_pushed("view", |batch| {
                (batch.schema().field(0).name() == "v")
                    .then(|| batch.slice(batch.num_rows() - 1, 1))
            })
            .expect("compacts");
        assert_eq!(
            done,
            Compaction {
                entries_before: 4,
                entries_after: 3,
                rows_before: 6,
                rows_after: 3,
            }
        );
        assert_eq!(rows(&db.pushed("view").expect("reads")), ["3", "a", "5"]);
        assert_eq!(rows(&db.pushed("other").expect("reads")), ["9"]);
        // A push after the compaction lands after the compacted rows.
        db.push("view", &ints(&[6])).expect("pushed");
        assert_eq!(
            rows(&db.pushed("view").expect("reads")),
            ["3", "a", "5", "6"]
        );
        drop(db);
        let reopened = OnlineDb::open(dir.path()).expect("reopens");
        assert_eq!(
            rows(&reopened.pushed("view").expect("reads")),
            ["3", "a", "5", "6"]
        );
    }

    #[test]
    fn a_compaction_is_due_once_the_log_grew_by_what_it_kept() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let db = OnlineDb::open(dir.path()).expect("opens");
        let big = ints(&vec![1; COMPACT_AFTER_ROWS as usize - 1]);
        assert!(!db.push("view", &big).expect("pushed"));
        assert!(db.push("view", &ints(&[2])).expect("pushed"));
        // Keeps everything: the next compaction waits for as many new rows as were kept.
        let kept = db
            .compact_pushed("view", |b| Some(b.clone()))
            .expect("compacts");
        assert_eq!(kept.rows_after, COMPACT_AFTER_ROWS as usize);
        assert!(!db.push("view", &big).expect("pushed"));
        assert!(db.push("view", &ints(&[3])).expect("pushed"));
        // Forgetting the view starts its count again.
        db.forget("view").expect("forgets");
        assert!(!db.push("view", &ints(&[4])).expect("pushed"));
    }

    #[test]
    fn a_log_found_at_start_up_counts_its_entries_as_new() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let db = OnlineDb::open(dir.path()).expect("opens");
        for i in 0..COMPACT_AFTER_ROWS as i64 - 1 {
            db.db
                .insert(
                    {
                        let mut key = range_prefix(b'p', "view");
                        // Far from the ids `push` draws, which start at 0.
                        key.extend_from_slice(&((1u64 << 40) + i as u64).to_be_bytes());
                        key
                    },
                    encode(&ints(&[i])).expect("encodes"),
                )
                .expect("inserted");
        }
        assert!(db.push("view", &ints(&[0])).expect("pushed"));
    }
}
