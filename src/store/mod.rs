//! `FeatureStore`: the one facade the HTTP API and the CLI call.
//!
//! It owns the policy around storage: name resolution, batch lookups, limits, and running
//! every blocking file or Parquet operation on the blocking thread pool so request handlers
//! never block the event loop (the 2.5 sketch served one data request at a time because it
//! did). Types the API needs are re-exported from here so `api` never reaches into `storage`.

mod batch;
mod error;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;

pub use crate::storage::{
    ColumnInfo, Declaration, RecordColumns, SaveOutcome, StorageError, TableInfo, dtype_name,
    parse_timestamp_micros,
};
pub use batch::EntityId;
pub use error::{Result, StoreError};

use crate::model::{GroupName, TableName};
use crate::storage::{Storage, StorageConfig, TableHandle};

/// A page of a table, as asked for.
#[derive(Debug, Clone)]
pub struct PageRequest {
    /// Columns to return, in this order; `None` for all, in table order.
    pub columns: Option<Vec<String>>,
    /// First row (0-based).
    pub offset: u64,
    /// Rows at most.
    pub limit: u64,
}

/// A page of a table.
#[derive(Debug, Clone)]
pub struct Page {
    /// The rows, with logical types, columns in the order asked.
    pub batch: RecordBatch,
    /// Rows in the whole table.
    pub total_rows: u64,
    /// Version the page was read from.
    pub version: u64,
}

/// One table in the listing.
#[derive(Debug, Clone)]
pub struct TableSummary {
    /// Group.
    pub group: String,
    /// Name.
    pub name: String,
    /// Rows.
    pub rows: u64,
    /// File size in bytes.
    pub file_size_bytes: u64,
    /// Version.
    pub version: u64,
    /// Column count.
    pub columns: usize,
}

/// A batch lookup over several tables.
#[derive(Debug, Clone)]
pub struct BatchQuery {
    /// Tables to read.
    pub tables: Vec<TableName>,
    /// Keep only rows whose entity key is one of these.
    pub entity_ids: Option<Vec<EntityId>>,
    /// Return, per entity, the row as of this instant (µs since the epoch, UTC).
    pub as_of_micros: Option<i64>,
}

/// One table's part of a batch result.
#[derive(Debug, Clone)]
pub struct BatchTable {
    /// The table.
    pub name: String,
    /// Its entity key columns.
    pub entity_key: Vec<String>,
    /// The rows.
    pub batch: RecordBatch,
}

/// The server's state as `/health` reports it.
#[derive(Debug, Clone)]
pub struct HealthReport {
    /// Time since the store was opened.
    pub uptime: Duration,
    /// Whether a file can be created in the data root.
    pub data_root_writable: bool,
    /// Tables in the catalog.
    pub table_count: usize,
}

/// The feature store.
#[derive(Debug, Clone)]
pub struct FeatureStore {
    storage: Arc<Storage>,
    started: Instant,
    max_batch_rows: u64,
}

impl FeatureStore {
    /// Opens the store on the tree of `storage`. `max_batch_rows` bounds what one table of a
    /// batch lookup may return.
    pub fn open(storage: StorageConfig, max_batch_rows: u64) -> Result<Self> {
        Ok(Self {
            storage: Arc::new(Storage::open(storage)?),
            started: Instant::now(),
            max_batch_rows,
        })
    }

    /// Runs a blocking closure on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Storage) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let storage = Arc::clone(&self.storage);
        tokio::task::spawn_blocking(move || f(&storage))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Every table, by group then name.
    pub async fn list(&self) -> Result<Vec<TableSummary>> {
        self.blocking(|s| Ok(s.list().iter().map(|h| summary(h)).collect()))
            .await
    }

    /// A page of `group/name`.
    pub async fn page(
        &self,
        group: GroupName,
        name: TableName,
        request: PageRequest,
    ) -> Result<Page> {
        self.blocking(move |s| {
            let table = s.get_in_group(&group, &name)?;
            let file = &table.file;
            let projection = match &request.columns {
                Some(columns) => file.column_indices(columns)?,
                None => file.all_columns(),
            };
            let batch = file.read_range(&projection, request.offset, request.limit)?;
            Ok(Page {
                batch,
                total_rows: file.row_count(),
                version: table.version,
            })
        })
        .await
    }

    /// Replaces (or creates) `group/name` from JSON records.
    pub async fn save_records(
        &self,
        group: GroupName,
        name: TableName,
        records: RecordColumns,
        declaration: Declaration,
    ) -> Result<SaveOutcome> {
        self.blocking(move |s| Ok(s.save_records(&group, &name, &records, declaration)?))
            .await
    }

    /// Replaces (or creates) `group/name` from an Arrow batch with logical types.
    pub async fn save_batch(
        &self,
        group: GroupName,
        name: TableName,
        batch: RecordBatch,
        declaration: Declaration,
    ) -> Result<SaveOutcome> {
        self.blocking(move |s| Ok(s.save_batch(&group, &name, &batch, declaration)?))
            .await
    }

    /// Storage facts of `group/name`.
    pub async fn info(&self, group: GroupName, name: TableName) -> Result<TableInfo> {
        self.blocking(move |s| Ok(s.info(&*s.get_in_group(&group, &name)?)))
            .await
    }

    /// Deletes `group/name`; returns the version it had.
    pub async fn delete(&self, group: GroupName, name: TableName) -> Result<u64> {
        self.blocking(move |s| Ok(s.delete(&group, &name)?)).await
    }

    /// Reads several tables, each resolved wherever it is. All unknown names are reported
    /// together.
    pub async fn batch(&self, query: BatchQuery) -> Result<Vec<BatchTable>> {
        let max_rows = self.max_batch_rows;
        self.blocking(move |s| {
            let mut handles = Vec::with_capacity(query.tables.len());
            let mut unknown = Vec::new();
            for name in &query.tables {
                match s.get(name) {
                    Ok(h) => handles.push(h),
                    Err(StorageError::TableNotFound { .. }) => unknown.push(name.to_string()),
                    Err(e) => return Err(e.into()),
                }
            }
            if !unknown.is_empty() {
                return Err(StoreError::UnknownTables(unknown));
            }
            handles
                .iter()
                .map(|h| {
                    let batch = batch::lookup(
                        h,
                        query.entity_ids.as_deref(),
                        query.as_of_micros,
                        max_rows,
                    )?;
                    Ok(BatchTable {
                        name: h.name.to_string(),
                        entity_key: h.entity_key.clone(),
                        batch,
                    })
                })
                .collect()
        })
        .await
    }

    /// Health facts.
    pub async fn health(&self) -> Result<HealthReport> {
        let uptime = self.started.elapsed();
        self.blocking(move |s| {
            Ok(HealthReport {
                uptime,
                data_root_writable: s.is_writable(),
                table_count: s.table_count(),
            })
        })
        .await
    }

    /// Whether the tree has no tables at all (used by `serve --demo`).
    pub async fn is_empty(&self) -> Result<bool> {
        self.blocking(|s| Ok(s.list().is_empty())).await
    }
}

fn summary(handle: &TableHandle) -> TableSummary {
    TableSummary {
        group: handle.group.to_string(),
        name: handle.name.to_string(),
        rows: handle.file.row_count(),
        file_size_bytes: handle.file.file_size(),
        version: handle.version,
        columns: handle.file.schema().fields().len(),
    }
}
