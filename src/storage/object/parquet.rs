//! Reading Parquet objects by range: the footer with one ranged GET (the size is known from
//! the commit entry or a listing, so no suffix probe), then only the column chunks of the row
//! groups a projection and a row window need, fetched with `get_ranges` (which merges ranges
//! that lie close together).
//!
//! This replaces parquet's deprecated `ParquetObjectReader`; it is the pattern of parquet's
//! own `examples/` over `ObjectStore::get_range(s)`.

use std::ops::Range;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::errors::ParquetError;
use parquet::file::metadata::PageIndexPolicy;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use super::error::{ObjectError, ObjectResult};
use super::tree::ObjectTree;

/// Bytes read from the end of an object to get the footer in one GET. Footers of our tables
/// (a few columns, row groups of tens of thousands of rows) fit well within it; a larger one
/// costs a second GET for the rest, never a wrong read.
pub const FOOTER_HINT_BYTES: usize = 64 * 1024;

/// A Parquet object read by ranges; parquet's async reader drives it.
#[derive(Debug, Clone)]
pub struct ObjectParquetReader {
    store: Arc<dyn ObjectStore>,
    key: ObjectPath,
    size: u64,
    footer_hint: usize,
}

impl ObjectParquetReader {
    /// A reader of the object at `key`, whose size in bytes is `size`.
    pub fn new(store: Arc<dyn ObjectStore>, key: ObjectPath, size: u64) -> Self {
        Self {
            store,
            key,
            size,
            footer_hint: FOOTER_HINT_BYTES,
        }
    }

    /// Reads `bytes` from the end for the footer instead of [`FOOTER_HINT_BYTES`].
    pub fn with_footer_hint(mut self, bytes: usize) -> Self {
        self.footer_hint = bytes.max(8);
        self
    }
}

fn external(error: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(error))
}

impl AsyncFileReader for ObjectParquetReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            self.store
                .get_range(&self.key, range)
                .await
                .map_err(external)
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            self.store
                .get_ranges(&self.key, &ranges)
                .await
                .map_err(external)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let mut reader =
                ParquetMetaDataReader::new().with_prefetch_hint(Some(self.footer_hint));
            if let Some(options) = options {
                reader = reader
                    .with_metadata_options(Some(options.metadata_options().clone()))
                    .with_column_index_policy(options.column_index_policy())
                    .with_offset_index_policy(options.offset_index_policy());
            }
            let size = self.size;
            let metadata = reader.load_and_finish(self, size).await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

/// What to read from a Parquet object: some columns, some rows.
#[derive(Debug, Clone, Default)]
pub struct ParquetRead {
    /// Top-level columns to decode, in the file's order; `None` for all.
    pub columns: Option<Vec<String>>,
    /// Rows `start..end` (0-based over the whole file); `None` for all. Only the row groups
    /// that overlap it are fetched, and within them only the pages that do when the file has
    /// an offset index.
    pub rows: Option<Range<usize>>,
}

impl ObjectTree {
    /// Reads `what` from the Parquet object at `key` of `size` bytes, fetching the footer, the
    /// page index, and then only the pages of the columns and rows asked for.
    pub async fn read_parquet(
        &self,
        key: &ObjectPath,
        size: u64,
        what: &ParquetRead,
    ) -> ObjectResult<Vec<RecordBatch>> {
        let decode = |source| ObjectError::Parquet {
            key: key.to_string(),
            source,
        };
        let reader = ObjectParquetReader::new(Arc::clone(self.store()), key.clone(), size);
        // The offset index (where each page starts) lets a row window fetch only its pages
        // even inside a row group of a million rows, as our tables are written; files
        // without one are still read, a row group at a time.
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        let mut builder = ParquetRecordBatchStreamBuilder::new_with_options(reader, options)
            .await
            .map_err(|error| self.unwrap_store_error(key, error))?;
        if let Some(columns) = &what.columns {
            let schema = Arc::clone(builder.schema());
            let unknown: Vec<String> = columns
                .iter()
                .filter(|name| schema.index_of(name).is_err())
                .cloned()
                .collect();
            if !unknown.is_empty() {
                return Err(ObjectError::UnknownColumns {
                    key: key.to_string(),
                    unknown,
                });
            }
            let mask = ProjectionMask::columns(
                builder.parquet_schema(),
                columns.iter().map(String::as_str),
            );
            builder = builder.with_projection(mask);
        }
        if let Some(rows) = &what.rows {
            let (groups, skip) = row_groups_for(builder.metadata(), rows);
            builder = builder
                .with_row_groups(groups)
                .with_offset(skip)
                .with_limit(rows.end.saturating_sub(rows.start));
        }
        let stream = builder.build().map_err(decode)?;
        stream
            .try_collect()
            .await
            .map_err(|error| self.unwrap_store_error(key, error))
    }

    /// A store failure surfaces from parquet wrapped as `External`: give it back its kind, so a
    /// 403 or an unreachable server is not reported as a corrupt file.
    fn unwrap_store_error(&self, key: &ObjectPath, error: ParquetError) -> ObjectError {
        match error {
            ParquetError::External(inner) => match inner.downcast::<object_store::Error>() {
                Ok(store_error) => ObjectError::from_store(key.as_ref(), *store_error),
                Err(other) => ObjectError::Parquet {
                    key: key.to_string(),
                    source: ParquetError::External(other),
                },
            },
            other => ObjectError::Parquet {
                key: key.to_string(),
                source: other,
            },
        }
    }
}

/// The row groups overlapping `rows`, and how many rows of the first of them to skip.
fn row_groups_for(metadata: &ParquetMetaData, rows: &Range<usize>) -> (Vec<usize>, usize) {
    let mut groups = Vec::new();
    let mut skip = 0;
    let mut start = 0usize;
    for (index, group) in metadata.row_groups().iter().enumerate() {
        let end = start + usize::try_from(group.num_rows()).unwrap_or(0);
        if end > rows.start && start < rows.end {
            if groups.is_empty() {
                skip = rows.start.saturating_sub(start);
            }
            groups.push(index);
        }
        start = end;
    }
    (groups, skip)
}
