//! A table snapshot: its base file plus the parts appended to it since, read as one table.
//!
//! Pushes to the offline store append a small Parquet file (a *part*) instead of rewriting the
//! table, so a push costs the size of the push, not of the table. A snapshot is the base file
//! and the parts that belong to it, in the order they were appended; every read presents them
//! as one table with the base file's served schema. Parts belong to exactly one base file (they
//! live in a folder named after the base's snapshot id, see `layout`), so an atomic replace of
//! the base makes every older part invisible in the same rename.

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use arrow::array::{ArrayRef, BooleanArray};
use arrow::compute::concat_batches;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};

use super::error::Result;
use super::meta::{FileFingerprint, TableMeta};
use super::reader::{ParquetFile, to_served};

/// One version of a table (base file and appended parts), open for reading.
#[derive(Debug, Clone)]
pub struct TableFile {
    base: ParquetFile,
    parts: Vec<ParquetFile>,
    /// When set, only this many leading rows of the base (an old version folded into a newer
    /// base file: see `history`); the snapshot then has no parts.
    prefix_rows: Option<u64>,
    /// Identity of the whole snapshot, computed once: part of every cache key and online
    /// freshness check.
    snapshot_id: u64,
}

impl TableFile {
    /// Opens a table that has no appended parts.
    pub fn open(path: &Path) -> Result<Self> {
        Ok(Self::from_segments(ParquetFile::open(path)?, Vec::new()))
    }

    /// A snapshot of `base` followed by `parts`, in append order.
    pub(super) fn from_segments(base: ParquetFile, parts: Vec<ParquetFile>) -> Self {
        // Each part changes the identity: a cache key of the snapshot before an append must
        // never match the snapshot after it.
        let snapshot_id = parts.iter().fold(base.snapshot_id(), |id, part| {
            id.rotate_left(17) ^ part.snapshot_id().wrapping_mul(0x9E37_79B9_7F4A_7C15)
        });
        Self {
            base,
            parts,
            prefix_rows: None,
            snapshot_id,
        }
    }

    /// The first `rows` rows of `base`: an old version whose rows a fold wrote at the start of
    /// a newer base file.
    pub(super) fn prefix(base: ParquetFile, rows: u64) -> Self {
        let rows = rows.min(base.row_count());
        let mut file = Self::from_segments(base, Vec::new());
        if rows < file.base.row_count() {
            // A prefix is another content than the whole file: caches must not mix them.
            file.snapshot_id =
                file.snapshot_id.rotate_left(29) ^ rows.wrapping_mul(0xA24B_AED4_963E_E407);
            file.prefix_rows = Some(rows);
        }
        file
    }
    /// This snapshot with one more part.
    pub(super) fn with_part(&self, part: ParquetFile) -> Self {
        let mut parts = self.parts.clone();
        parts.push(part);
        Self::from_segments(self.base.clone(), parts)
    }

    /// The base file.
    pub(super) fn base(&self) -> &ParquetFile {
        &self.base
    }

    /// The appended parts, in append order.
    pub(super) fn parts(&self) -> &[ParquetFile] {
        &self.parts
    }

    /// The base file's path.
    pub fn path(&self) -> &Path {
        self.base.path()
    }

    /// Appended parts not yet compacted into the base file.
    pub fn part_count(&self) -> usize {
        self.parts.len()
    }

    /// Rows in the appended parts.
    pub fn part_rows(&self) -> u64 {
        self.parts.iter().map(ParquetFile::row_count).sum()
    }

    /// Footer metadata of the base file, written by featurestore; `None` for files written by
    /// other tools.
    pub fn meta(&self) -> Option<&TableMeta> {
        self.base.meta()
    }

    /// The newest version in the footers of the base file and its parts (featurestore
    /// writes one in each): the table's version when the sidecar update that should have
    /// followed the last write was lost.
    pub fn footer_version(&self) -> Option<u64> {
        self.segments()
            .filter_map(|s| s.meta().map(|m| m.version))
            .max()
    }

    /// The schema values are returned with (logical types).
    pub fn schema(&self) -> &SchemaRef {
        self.base.schema()
    }

    /// The schema as stored in the base file (narrowed types, dictionaries).
    pub fn stored_schema(&self) -> &SchemaRef {
        self.base.stored_schema()
    }

    fn segments(&self) -> impl Iterator<Item = &ParquetFile> {
        std::iter::once(&self.base).chain(&self.parts)
    }

    /// Rows in the whole table.
    pub fn row_count(&self) -> u64 {
        if let Some(rows) = self.prefix_rows {
            return rows;
        }
        self.segments().map(ParquetFile::row_count).sum()
    }

    /// Bytes on disk, parts included.
    pub fn file_size(&self) -> u64 {
        self.segments().map(ParquetFile::file_size).sum()
    }

    /// Latest modification of the base file or a part.
    pub fn modified(&self) -> SystemTime {
        self.segments()
            .map(ParquetFile::modified)
            .max()
            .unwrap_or(SystemTime::UNIX_EPOCH)
    }

    /// Size and modification time of the base file: how a replace by another tool is noticed.
    pub fn fingerprint(&self) -> FileFingerprint {
        self.base.fingerprint()
    }

    /// Identifies this snapshot (base and parts) in cache keys.
    pub fn snapshot_id(&self) -> u64 {
        self.snapshot_id
    }

    /// Row groups in the base file and the parts.
    pub fn row_group_count(&self) -> usize {
        self.segments().map(ParquetFile::row_group_count).sum()
    }

    /// Uncompressed size of the data from the footers: the in-memory estimate for files
    /// written by other tools.
    pub fn uncompressed_size(&self) -> u64 {
        self.segments().map(ParquetFile::uncompressed_size).sum()
    }

    /// Indices of `names` in the table, in the order given; unknown names are an error that
    /// lists them and the available columns.
    pub fn column_indices(&self, names: &[String]) -> Result<Vec<usize>> {
        self.base.column_indices(names)
    }

    /// Every column index, in table order.
    pub fn all_columns(&self) -> Vec<usize> {
        self.base.all_columns()
    }

    /// Rows `[offset, offset + limit)` of the projected columns, across the base file and the
    /// parts; only the segments (and inside them the row groups and pages) the range touches
    /// are read.
    pub fn read_range(&self, projection: &[usize], offset: u64, limit: u64) -> Result<RecordBatch> {
        if let Some(rows) = self.prefix_rows {
            let limit = limit.min(rows.saturating_sub(offset));
            return self.base.read_range(projection, offset.min(rows), limit);
        }
        if self.parts.is_empty() {
            return self.base.read_range(projection, offset, limit);
        }
        let end = offset.saturating_add(limit);
        let mut pieces = Vec::new();
        let mut start = 0u64;
        for segment in self.segments() {
            let rows = segment.row_count();
            let segment_end = start + rows;
            if segment_end > offset && start < end {
                let from = offset.max(start) - start;
                let to = end.min(segment_end) - start;
                pieces.push(segment.read_range(projection, from, to - from)?);
            }
            start = segment_end;
        }
        self.concat(projection, pieces)
    }

    /// All rows of the projected columns.
    pub fn read_all(&self, projection: &[usize]) -> Result<RecordBatch> {
        if let Some(rows) = self.prefix_rows {
            return self.base.read_range(projection, 0, rows);
        }
        if self.parts.is_empty() {
            return self.base.read_all(projection);
        }
        let pieces = self
            .segments()
            .map(|segment| segment.read_all(projection))
            .collect::<Result<Vec<_>>>()?;
        self.concat(projection, pieces)
    }

    /// The rows whose `filter_column` values satisfy `keep`, projected.
    pub fn read_where(
        &self,
        projection: &[usize],
        filter_column: usize,
        keep: impl Fn(&ArrayRef) -> Result<BooleanArray>,
    ) -> Result<RecordBatch> {
        if let Some(rows) = self.prefix_rows {
            // Predicates cannot stop at a row count: read the prefix, then filter it.
            let mut columns = projection.to_vec();
            let filter_at = match columns.iter().position(|c| *c == filter_column) {
                Some(at) => at,
                None => {
                    columns.push(filter_column);
                    columns.len() - 1
                }
            };
            let batch = self.base.read_range(&columns, 0, rows)?;
            let mask = keep(batch.column(filter_at))?;
            let kept = arrow::compute::filter_record_batch(&batch, &mask)?;
            let indices: Vec<usize> = (0..projection.len()).collect();
            return Ok(kept.project(&indices)?);
        }
        if self.parts.is_empty() {
            return self.base.read_where(projection, filter_column, keep);
        }
        let pieces = self
            .segments()
            .map(|segment| segment.read_where(projection, filter_column, &keep))
            .collect::<Result<Vec<_>>>()?;
        self.concat(projection, pieces)
    }

    /// Joins the segments' rows under the base file's served types (a part written from a
    /// push has them already; casting keeps a snapshot consistent whatever a part holds).
    fn concat(&self, projection: &[usize], pieces: Vec<RecordBatch>) -> Result<RecordBatch> {
        let base = self.base.schema().project(projection)?;
        let schema = Arc::new(Schema::new(
            base.fields()
                .iter()
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect::<Vec<_>>(),
        ));
        let mut aligned = Vec::with_capacity(pieces.len());
        for piece in pieces {
            let columns = piece
                .columns()
                .iter()
                .zip(schema.fields())
                .map(|(column, field)| to_served(column, field.data_type()))
                .collect::<Result<Vec<_>>>()?;
            let options = RecordBatchOptions::new().with_row_count(Some(piece.num_rows()));
            aligned.push(RecordBatch::try_new_with_options(
                Arc::clone(&schema),
                columns,
                &options,
            )?);
        }
        Ok(concat_batches(&schema, &aligned)?)
    }
}
