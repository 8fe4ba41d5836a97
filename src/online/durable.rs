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
//!   They exist nowhere else, so they are kept until the view is deleted.
//!
//! A materialization replaces the view's `r` and `m` entries in one sled batch, so a crash
//! leaves the previous materialization or the new one, and it is flushed before it returns.
//! This store is separate from the disk cache: the cache may be wiped or evicted at any time,
//! this may not.

use std::io::Cursor;
use std::path::Path;

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

/// The durable online store.
#[derive(Debug, Clone)]
pub struct OnlineDb {
    db: sled::Db,
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
        Ok(Self { db })
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

    /// Records rows pushed online to `view`, durably, after those pushed before.
    pub fn push(&self, view: &str, rows: &RecordBatch) -> Result<(), DurableError> {
        let seq = self.db.generate_id()?;
        let mut push_key = range_prefix(b'p', view);
        push_key.extend_from_slice(&seq.to_be_bytes());
        self.db.insert(push_key, encode(rows)?)?;
        self.db.flush()?;
        Ok(())
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
        let mut batch = sled::Batch::default();
        batch.remove(key(b'm', view));
        for prefix in [b'r', b'p'] {
            for entry in self.db.scan_prefix(range_prefix(prefix, view)).keys() {
                batch.remove(entry?);
            }
        }
        self.db.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    /// Flushes to disk (at shutdown).
    pub fn flush(&self) -> Result<(), DurableError> {
        self.db.flush()?;
        Ok(())
    }
}
