//! Atomic writes: a temporary file in the target's folder, fsync, rename, fsync of the folder.
//!
//! A crash at any point leaves either the previous file or the new complete one under the
//! final name; never a prefix. Leftover temporaries are swept at start-up
//! ([`super::Storage::open`]).

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::errors::ParquetError;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use super::error::{Result, StorageError};
use super::layout::Layout;
use super::meta::{FOOTER_KEY, TableMeta};

/// Row-group and page sizing for written tables.
#[derive(Debug, Clone, Copy)]
pub struct WriteSettings {
    /// Rows per row group: the unit a page read skips to.
    pub row_group_rows: usize,
    /// Rows per data page: the unit a page read decodes inside a row group.
    pub page_rows: usize,
}

/// Writes `path` atomically with whatever `fill` writes into the temporary file.
pub fn write_atomic(path: &Path, fill: impl FnOnce(&File) -> Result<()>) -> Result<()> {
    stage(path, fill)?.commit()
}

/// A complete, synced temporary file waiting to be renamed onto its target. Dropping it
/// without [`Staged::commit`] removes it, so a write that lost a race leaves nothing behind.
#[derive(Debug)]
pub struct Staged {
    temp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl Staged {
    /// Renames the file onto its target and makes the rename durable.
    pub fn commit(mut self) -> Result<()> {
        let dir = self.target.parent().unwrap_or_else(|| Path::new("."));
        fs::rename(&self.temp, &self.target).map_err(|e| StorageError::io(&self.target, e))?;
        self.committed = true;
        sync_dir(dir)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            // Best effort: start-up sweeps temporary files a failed removal leaves.
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// Writes whatever `fill` writes into a synced temporary file beside `path`, not yet renamed.
pub fn stage(path: &Path, fill: impl FnOnce(&File) -> Result<()>) -> Result<Staged> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
    let staged = Staged {
        temp: Layout::temp_path_for(path),
        target: path.to_owned(),
        committed: false,
    };
    let file = File::create(&staged.temp).map_err(|e| StorageError::io(&staged.temp, e))?;
    fill(&file)?;
    file.sync_all()
        .map_err(|e| StorageError::io(&staged.temp, e))?;
    Ok(staged)
}

/// Makes a rename or unlink in `dir` durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StorageError::io(dir, e))
}

/// Writes a stored (already downcast) batch as a snappy Parquet file with `meta` in its footer.
pub fn write_table(
    path: &Path,
    batch: &RecordBatch,
    meta: &TableMeta,
    settings: WriteSettings,
) -> Result<()> {
    stage_table(path, batch, meta, settings)?.commit()
}

/// Like [`write_table`], but leaves the file staged for the caller to commit.
pub fn stage_table(
    path: &Path,
    batch: &RecordBatch,
    meta: &TableMeta,
    settings: WriteSettings,
) -> Result<Staged> {
    let props = writer_properties(path, &batch.schema(), meta, settings)?;
    stage(path, |file| {
        let mut buffered = encode_into(path, BufWriter::new(file), batch, props)?;
        buffered.flush().map_err(|e| StorageError::io(path, e))
    })
}

/// The bytes of the Parquet file [`write_table`] would write, for stores that take a whole
/// object at once; `name` only labels errors.
pub fn encode_table(
    name: &Path,
    batch: &RecordBatch,
    meta: &TableMeta,
    settings: WriteSettings,
) -> Result<Vec<u8>> {
    let props = writer_properties(name, &batch.schema(), meta, settings)?;
    encode_into(name, Vec::new(), batch, props)
}

fn writer_properties(
    path: &Path,
    schema: &arrow::datatypes::Schema,
    meta: &TableMeta,
    settings: WriteSettings,
) -> Result<WriterProperties> {
    let meta_json = serde_json::to_string(meta).map_err(|source| StorageError::Metadata {
        path: path.to_owned(),
        source,
    })?;
    let mut builder = WriterProperties::builder();
    // Event times rarely repeat: their dictionary fills up (to its 1 MiB limit) before the
    // writer falls back to plain encoding, and it must be read before any page of the column
    // can be decoded — from S3, a 100-row page would fetch that megabyte. Without it the
    // files are smaller. Other types keep theirs: ids, categories and rounded values repeat.
    for field in schema.fields() {
        if matches!(field.data_type(), DataType::Timestamp(..)) {
            builder = builder
                .set_column_dictionary_enabled(ColumnPath::from(field.name().as_str()), false);
        }
    }
    Ok(builder
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(settings.row_group_rows.max(1)))
        .set_data_page_row_count_limit(settings.page_rows.max(1))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_key_value_metadata(Some(vec![KeyValue::new(FOOTER_KEY.to_owned(), meta_json)]))
        .build())
}

fn encode_into<W: std::io::Write + Send>(
    path: &Path,
    sink: W,
    batch: &RecordBatch,
    props: WriterProperties,
) -> Result<W> {
    let parquet_err = |e| write_error(path, e);
    let mut writer =
        ArrowWriter::try_new(sink, batch.schema(), Some(props)).map_err(parquet_err)?;
    writer.write(batch).map_err(parquet_err)?;
    // `into_inner` writes the footer; without it the bytes are not a Parquet file.
    writer.into_inner().map_err(parquet_err)
}

/// A failure of the Parquet writer: the I/O error underneath when there is one, so that a
/// full disk or a read-only data root is reported as what it is (507, 503) rather than as an
/// unreadable table.
fn write_error(path: &Path, e: ParquetError) -> StorageError {
    match e {
        ParquetError::External(inner) => match inner.downcast::<std::io::Error>() {
            Ok(io) => StorageError::io(path, *io),
            Err(inner) => StorageError::parquet(path, ParquetError::External(inner)),
        },
        other => StorageError::parquet(path, other),
    }
}

/// Writes a JSON document atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| StorageError::Metadata {
        path: path.to_owned(),
        source,
    })?;
    write_atomic(path, |mut file| {
        file.write_all(&bytes)
            .map_err(|e| StorageError::io(path, e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_error_inside_the_parquet_writer_stays_an_io_error() {
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        match write_error(Path::new("t.parquet"), ParquetError::from(full)) {
            StorageError::Io { source, .. } => {
                assert_eq!(source.kind(), std::io::ErrorKind::StorageFull)
            }
            other => panic!("{other:?}"),
        }
        let corrupt = ParquetError::General("bad footer".into());
        assert!(matches!(
            write_error(Path::new("t.parquet"), corrupt),
            StorageError::Parquet { .. }
        ));
    }
}
