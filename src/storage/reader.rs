//! Reading tables: an open file snapshot, column projection in the order asked, limit/offset
//! pushed down to row groups and pages, and filters evaluated on one column before the others
//! are decoded.
//!
//! A [`ParquetFile`] holds its file descriptor open and reads it with positional reads. That
//! matters twice: parquet's own `File` reader clones the descriptor and seeks, and clones share
//! one offset, so concurrent readers would race; and an open descriptor keeps reading the inode
//! it was opened on, so a reader that started before an atomic replace finishes on the version
//! it started with instead of mixing two.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use arrow::array::{ArrayRef, BooleanArray, new_empty_array};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatchReader;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection,
    RowSelector,
};
use parquet::file::metadata::PageIndexPolicy;
use parquet::file::reader::Length;

use super::error::{Result, StorageError};
use super::meta::{FOOTER_KEY, FileFingerprint, TableMeta};
use super::object::{BlockingTree, ObjectError};
use super::source::{ObjectSource, PreadFile, ReadFailure, Source};

/// How long after an in-place change a file counts as "being rewritten" (a retryable 503)
/// rather than damaged.
pub(super) const REWRITE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

fn fingerprint(len: u64, modified: SystemTime) -> FileFingerprint {
    FileFingerprint {
        len,
        modified_nanos: modified
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    }
}

/// The first 8 bytes of sha256(size, mtime): a snapshot's identity in cache keys.
fn digest(fingerprint: FileFingerprint) -> u64 {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(fingerprint.len.to_be_bytes());
    hasher.update(fingerprint.modified_nanos.to_be_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The first 8 bytes of sha256 of `bytes`.
fn digest_of(bytes: &[u8]) -> u64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(bytes);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// A store failure while opening or reading an object: retryable, never "unreadable"; or,
/// for a data object that is gone, the version being read has expired.
fn unavailable(error: ObjectError) -> StorageError {
    read_failure(ReadFailure::from(&error))
}

/// A failure [`ObjectSource`] saw, as the storage layer reports it. Only the history sweep
/// removes data objects, and only those of versions past retention (and their grace): a
/// read holding such a version is told it expired (410), not that the store is down.
fn read_failure(failure: ReadFailure) -> StorageError {
    match failure {
        ReadFailure::Missing { key } => match key
            .strip_prefix("tables/")
            .and_then(|rest| rest.split_once("/data/"))
        {
            Some((table, _)) => StorageError::VersionExpired {
                name: table.to_owned(),
                asked: "the version being read".to_owned(),
                available: "its data was removed by the history sweep; GET /features/{group}/{name}/versions lists the retained versions".to_owned(),
            },
            None => StorageError::Unavailable {
                reason: format!("object {key:?} not found"),
            },
        },
        ReadFailure::Store { reason } => StorageError::Unavailable { reason },
    }
}

/// Largest batch the reader decodes at once.
const READ_BATCH_ROWS: usize = 64 * 1024;

/// The id of a base file featurestore wrote with `version` in its footer: the name of the
/// folder its parts live in.
pub(super) fn base_id_of(version: u64) -> String {
    format!("v{version}")
}

/// One Parquet file (a table's base file or one of its appended parts), open for reading.
#[derive(Debug, Clone)]
pub struct ParquetFile {
    path: PathBuf,
    file: Source,
    reader_meta: ArrowReaderMetadata,
    meta: Option<TableMeta>,
    served_schema: SchemaRef,
    modified: SystemTime,
    /// Size and mtime of a local file, size and key digest of an object.
    identity: FileFingerprint,
    /// Digest of size and mtime, computed once: it is part of every cache key and online
    /// freshness check, so it must not cost a hash per request.
    snapshot_id: u64,
}

impl ParquetFile {
    /// Opens `path` and reads its footer and page index. Fails on anything that is not a
    /// complete Parquet file, which is how half-copied files are kept out.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| StorageError::io(path, e))?;
        let stat = file.metadata().map_err(|e| StorageError::io(path, e))?;
        let modified = stat.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let source = Source::File(PreadFile {
            file: Arc::new(file),
            len: stat.len(),
        });
        Self::from_source(
            path.to_owned(),
            source,
            modified,
            fingerprint(stat.len(), modified),
        )
    }

    /// Opens the immutable object `key` of `len` bytes (written at `modified`), reading its
    /// footer and page index with one ranged request, or from `written` when the caller has
    /// just written those bytes.
    pub(super) fn open_object(
        tree: &BlockingTree,
        key: &object_store::path::Path,
        len: u64,
        modified: SystemTime,
        written: Option<&[u8]>,
    ) -> Result<Self> {
        let source = ObjectSource::open(tree, key, len, written).map_err(unavailable)?;
        // Keys are never reused, so the key names the content: it is the identity.
        let identity = FileFingerprint {
            len,
            modified_nanos: u128::from(digest_of(key.as_ref().as_bytes())),
        };
        Self::from_source(
            PathBuf::from(key.as_ref()),
            Source::Object(source),
            modified,
            identity,
        )
    }

    fn from_source(
        path: PathBuf,
        file: Source,
        modified: SystemTime,
        identity: FileFingerprint,
    ) -> Result<Self> {
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        let reader_meta = ArrowReaderMetadata::load(&file, options).map_err(|e| match &file {
            Source::Object(object) => match object.take_failure() {
                Some(failure) => read_failure(failure),
                None => StorageError::parquet(&path, e),
            },
            Source::File(_) => StorageError::parquet(&path, e),
        })?;
        let meta = reader_meta
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .and_then(|kvs| kvs.iter().find(|kv| kv.key == FOOTER_KEY))
            .and_then(|kv| kv.value.as_deref())
            .map(serde_json::from_str::<TableMeta>)
            .transpose()
            .map_err(|source| StorageError::Metadata {
                path: path.clone(),
                source,
            })?;
        let served_schema = match &meta {
            Some(m) if m.columns.len() == reader_meta.schema().fields().len() => m.logical_schema(),
            _ => Arc::clone(reader_meta.schema()),
        };
        Ok(Self {
            path,
            file,
            reader_meta,
            meta,
            served_schema,
            modified,
            identity,
            snapshot_id: digest(identity),
        })
    }

    /// The object this file was opened from and its size, for the s3 kind's commit entries;
    /// `None` for a local file.
    pub(super) fn object_key(&self) -> Option<&object_store::path::Path> {
        match &self.file {
            Source::Object(object) => Some(object.key()),
            Source::File(_) => None,
        }
    }

    /// Identifies this base file for its appended parts: the footer's version for files
    /// featurestore wrote (versions never repeat, and touching the file keeps it), else the
    /// digest of size and mtime (a file replaced by another tool gets a new one, which leaves
    /// the previous file's parts behind, as a replace must).
    pub fn base_id(&self) -> String {
        match &self.meta {
            Some(meta) => base_id_of(meta.version),
            None => format!("f{:016x}", self.snapshot_id),
        }
    }

    /// The file this snapshot was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Footer metadata written by featurestore; `None` for files written by other tools.
    pub fn meta(&self) -> Option<&TableMeta> {
        self.meta.as_ref()
    }

    /// The schema values are returned with (logical types).
    pub fn schema(&self) -> &SchemaRef {
        &self.served_schema
    }

    /// The schema as stored in the file (narrowed types, dictionaries).
    pub fn stored_schema(&self) -> &SchemaRef {
        self.reader_meta.schema()
    }

    /// Rows in the whole table, from the footer.
    pub fn row_count(&self) -> u64 {
        u64::try_from(self.reader_meta.metadata().file_metadata().num_rows()).unwrap_or(0)
    }

    /// File size in bytes.
    pub fn file_size(&self) -> u64 {
        self.file.len()
    }

    /// Last modification time of the file.
    pub fn modified(&self) -> SystemTime {
        self.modified
    }

    /// Size and modification time of the file this snapshot was opened from.
    pub fn fingerprint(&self) -> FileFingerprint {
        self.identity
    }

    /// A digest of [`Self::fingerprint`]: identifies this file snapshot in cache keys.
    pub fn snapshot_id(&self) -> u64 {
        self.snapshot_id
    }

    /// Fails when the open file is no longer the one this snapshot was opened as: another
    /// tool is rewriting it in place (as `pandas.to_parquet` does), so offsets from the old
    /// footer would read the new bytes. Checked before and after every read, like a seqlock:
    /// any write in between changes the modification time.
    fn verify_unchanged(&self) -> Result<()> {
        // Objects are never rewritten under a key: nothing to check.
        let Source::File(file) = &self.file else {
            return Ok(());
        };
        let stat = file
            .file
            .metadata()
            .map_err(|e| StorageError::io(&self.path, e))?;
        let now = fingerprint(
            stat.len(),
            stat.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        );
        if now == self.fingerprint() {
            return Ok(());
        }
        // Changed long enough ago that a finished write would have been reloaded by now: the
        // new bytes are not a readable table (damaged, or truncated for good).
        let age = stat
            .modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok());
        if age.is_some_and(|a| a > REWRITE_GRACE) {
            return Err(StorageError::parquet(
                &self.path,
                parquet::errors::ParquetError::General(
                    "the file changed on disk and is not a readable Parquet file".into(),
                ),
            ));
        }
        Err(StorageError::FileChanged {
            path: self.path.clone(),
        })
    }

    /// Row groups in the file.
    pub fn row_group_count(&self) -> usize {
        self.reader_meta.metadata().num_row_groups()
    }

    /// Indices of `names` in the table, in the order given; unknown names are an error that
    /// lists them and the available columns.
    pub fn column_indices(&self, names: &[String]) -> Result<Vec<usize>> {
        let schema = self.schema();
        let mut unknown = Vec::new();
        let indices: Vec<usize> = names
            .iter()
            .filter_map(|n| {
                let found = schema.index_of(n).ok();
                if found.is_none() {
                    unknown.push(n.clone());
                }
                found
            })
            .collect();
        if unknown.is_empty() {
            Ok(indices)
        } else {
            Err(StorageError::UnknownColumns {
                unknown,
                available: schema.fields().iter().map(|f| f.name().clone()).collect(),
            })
        }
    }

    /// Every column index, in table order.
    pub fn all_columns(&self) -> Vec<usize> {
        (0..self.schema().fields().len()).collect()
    }

    /// Rows `[offset, offset + limit)` of the projected columns (in the order of
    /// `projection`). Only the row groups overlapping the range are opened, and inside them
    /// only the pages the range touches are decoded.
    pub fn read_range(&self, projection: &[usize], offset: u64, limit: u64) -> Result<RecordBatch> {
        let total = self.row_count();
        let end = offset.saturating_add(limit).min(total);
        if offset >= end {
            return self.empty(projection);
        }
        let metadata = self.reader_meta.metadata();
        let mut groups = Vec::new();
        let mut selectors = Vec::new();
        let mut group_start = 0u64;
        for (i, group) in metadata.row_groups().iter().enumerate() {
            let rows = u64::try_from(group.num_rows()).unwrap_or(0);
            let group_end = group_start + rows;
            if group_end > offset && group_start < end {
                let take_from = offset.max(group_start) - group_start;
                let take_to = end.min(group_end) - group_start;
                groups.push(i);
                selectors.push(RowSelector::skip(take_from as usize));
                selectors.push(RowSelector::select((take_to - take_from) as usize));
                selectors.push(RowSelector::skip((rows - take_to) as usize));
            }
            group_start = group_end;
        }
        self.read(
            projection,
            Some(groups),
            Some(RowSelection::from(selectors)),
            (end - offset) as usize,
        )
    }

    /// All rows of the projected columns.
    pub fn read_all(&self, projection: &[usize]) -> Result<RecordBatch> {
        self.read(projection, None, None, READ_BATCH_ROWS)
    }

    /// The rows whose `filter_column` values satisfy `keep`, projected. Only the filter column
    /// is decoded for every row; the others are decoded for the selected rows' pages.
    pub fn read_where(
        &self,
        projection: &[usize],
        filter_column: usize,
        keep: impl Fn(&ArrayRef) -> Result<BooleanArray>,
    ) -> Result<RecordBatch> {
        let keys = self.read(&[filter_column], None, None, READ_BATCH_ROWS)?;
        let mask = keep(keys.column(0))?;
        if mask.true_count() == 0 {
            return self.empty(projection);
        }
        let selection = RowSelection::from_filters(&[mask]);
        self.read(projection, None, Some(selection), READ_BATCH_ROWS)
    }

    fn read(
        &self,
        projection: &[usize],
        row_groups: Option<Vec<usize>>,
        selection: Option<RowSelection>,
        batch_rows: usize,
    ) -> Result<RecordBatch> {
        let parquet_err = |e| StorageError::parquet(&self.path, e);
        // The reader returns columns in file order; remember where each asked column lands.
        let mut sorted: Vec<usize> = projection.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mask = ProjectionMask::roots(
            self.reader_meta.metadata().file_metadata().schema_descr(),
            sorted.iter().copied(),
        );
        let whole_columns = row_groups.is_none() && selection.is_none();
        let source = match &self.file {
            // Reading whole columns page by page would cost one request per page: fetch
            // the column chunks at once instead.
            Source::Object(object) if whole_columns => Source::Object(
                object
                    .prefetched(self.chunk_ranges(&sorted))
                    .map_err(unavailable)?,
            ),
            other => other.clone(),
        };
        let store_failure = |e: StorageError| match &source {
            Source::Object(object) => match object.take_failure() {
                Some(failure) => read_failure(failure),
                None => e,
            },
            Source::File(_) => e,
        };
        let mut builder = ParquetRecordBatchReaderBuilder::new_with_metadata(
            source.clone(),
            self.reader_meta.clone(),
        )
        .with_projection(mask)
        .with_batch_size(batch_rows.clamp(1, READ_BATCH_ROWS));
        if let Some(groups) = row_groups {
            builder = builder.with_row_groups(groups);
        }
        if let Some(selection) = selection {
            builder = builder.with_row_selection(selection);
        }
        self.verify_unchanged()?;
        let reader = builder
            .build()
            .map_err(parquet_err)
            .map_err(store_failure)?;
        let file_schema = reader.schema();
        // A decoding failure here means the file's bytes are bad (overwritten in place,
        // damaged on disk): report it as that table's file, not as an internal error.
        let batches = reader
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                StorageError::parquet(
                    &self.path,
                    parquet::errors::ParquetError::ArrowError(e.to_string()),
                )
            })
            .map_err(store_failure)?;
        self.verify_unchanged()?;
        let decoded = concat_batches(&file_schema, &batches)?;
        let mut fields = Vec::with_capacity(projection.len());
        let mut columns = Vec::with_capacity(projection.len());
        for &index in projection {
            // `sorted` holds every index of `projection`, so the search always succeeds.
            let position = sorted.binary_search(&index).unwrap_or_default();
            let field = self.served_schema.field(index);
            columns.push(to_served(decoded.column(position), field.data_type())?);
            fields.push(field.clone());
        }
        let options = RecordBatchOptions::new().with_row_count(Some(decoded.num_rows()));
        Ok(RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            columns,
            &options,
        )?)
    }

    /// Byte ranges of the column chunks of `columns` (sorted root indices) in every row group.
    fn chunk_ranges(&self, columns: &[usize]) -> Vec<std::ops::Range<u64>> {
        let metadata = self.reader_meta.metadata();
        let descr = metadata.file_metadata().schema_descr();
        let mut ranges = Vec::new();
        for group in metadata.row_groups() {
            for (leaf, chunk) in group.columns().iter().enumerate() {
                if columns
                    .binary_search(&descr.get_column_root_idx(leaf))
                    .is_ok()
                {
                    let (start, len) = chunk.byte_range();
                    ranges.push(start..start + len);
                }
            }
        }
        ranges
    }

    /// No rows of the projected columns, with their served types.
    pub(super) fn empty(&self, projection: &[usize]) -> Result<RecordBatch> {
        let schema = Arc::new(self.served_schema.project(projection)?);
        let columns = schema
            .fields()
            .iter()
            .map(|f| new_empty_array(f.data_type()))
            .collect();
        let options = RecordBatchOptions::new().with_row_count(Some(0));
        Ok(RecordBatch::try_new_with_options(
            schema, columns, &options,
        )?)
    }
}

/// Casts a stored column back to the type it is served as (a no-op when they agree).
pub(super) fn to_served(
    column: &ArrayRef,
    served: &arrow::datatypes::DataType,
) -> Result<ArrayRef> {
    if column.data_type() == served {
        Ok(Arc::clone(column))
    } else {
        Ok(cast(column, served)?)
    }
}

impl ParquetFile {
    /// Uncompressed size of the data from the footer: the in-memory estimate for files
    /// written by other tools.
    pub fn uncompressed_size(&self) -> u64 {
        self.reader_meta
            .metadata()
            .row_groups()
            .iter()
            .map(|g| u64::try_from(g.total_byte_size()).unwrap_or(0))
            .sum()
    }
}
