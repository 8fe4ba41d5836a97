//! Importing a Feast repository through the store: the registry dump's plan
//! (`registry::feast_import`) applied, and the rows of views on local Parquet files copied
//! into the tree through the normal save path (atomic, versioned, with statistics).
//!
//! Every data file is opened and its columns checked before anything is written, so a
//! missing or mistyped file changes nothing. The tables are then saved one by one and the
//! definitions applied last, because an apply checks views against their tables' columns:
//! a failure after the first save leaves the tables written so far as new versions (the
//! previous versions stay restorable) and the registry as it was.
//!
//! Without a data folder (the HTTP route) no file is read: a request body naming paths on
//! the server must not make it read them. Views whose table already exists are applied on
//! it; the others are listed as skipped, with how to fill them.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::compute::{CastOptions, can_cast_types, cast_with_options, concat_batches};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::registration::table_columns;
use super::{FeatureStore, Result, StoreError, reload_registry};
use crate::model::{GroupName, TableName};
use crate::registry::feast_import::{self, DataSource, FeastImportError, TableSource};
use crate::registry::{ApplyReport, Committed, Writer};
use crate::storage::{Declaration, LogicalType};

pub use crate::registry::feast_import::Unmappable;

/// Rows read per Parquet batch while copying, and so how often progress is reported.
const COPY_BATCH_ROWS: usize = 64 * 1024;

/// How an import runs.
#[derive(Debug, Clone, Default)]
pub struct FeastImportOptions {
    /// The Feast repository's folder: relative file-source paths resolve against it, and the
    /// rows of views on local Parquet files are copied. `None` copies no data.
    pub data_dir: Option<PathBuf>,
    /// Plan and validate only; write nothing.
    pub dry_run: bool,
    /// Who writes (the token's name, when auth is on).
    pub writer: Writer,
}

/// Progress of a copy: the view, rows read so far, rows in its file.
pub type CopyProgress = Arc<dyn Fn(&str, u64, u64) + Send + Sync>;

/// What happened to one view's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyStatus {
    /// Copied into the table (a new version).
    Copied,
    /// Would be copied (dry run).
    WouldCopy,
    /// Not copied; the table already there is used.
    NotCopied,
}

/// One view's table and its data.
#[derive(Debug, Clone)]
pub struct TableCopy {
    /// The view.
    pub feature_view: String,
    /// `group/name`.
    pub table: String,
    /// The data file, as resolved (when one is copied).
    pub source: Option<String>,
    /// Rows copied (or that would be).
    pub rows: Option<u64>,
    /// What happened.
    pub status: CopyStatus,
    /// Why, in words.
    pub message: String,
}

/// What an import did (or, on a dry run, would do).
#[derive(Debug, Clone)]
pub struct FeastImport {
    /// The Feast project.
    pub project: String,
    /// True when nothing was written.
    pub dry_run: bool,
    /// `kind name` of every definition applied (or to apply).
    pub objects: Vec<String>,
    /// The apply's report; on a dry run, what it would report.
    pub report: ApplyReport,
    /// The registry version the import left; `None` on a dry run.
    pub committed: Option<Committed>,
    /// Each applied view's table.
    pub tables: Vec<TableCopy>,
    /// Mapped objects not applied because their table does not exist.
    pub skipped: Vec<Unmappable>,
    /// Objects that cannot be mapped.
    pub unmappable: Vec<Unmappable>,
    /// What is imported with a loss.
    pub notes: Vec<String>,
}

/// A table to fill from a checked file.
struct Planned {
    table: TableSource,
    path: PathBuf,
    rows: u64,
}

impl FeatureStore {
    /// Imports the JSON `feast registry-dump` printed (see the module doc).
    pub async fn import_feast(
        &self,
        dump: serde_json::Value,
        options: FeastImportOptions,
        progress: CopyProgress,
    ) -> Result<FeastImport> {
        let input = feast_import::parse(dump)?;
        let groups: BTreeMap<String, String> = self
            .list()
            .await?
            .into_iter()
            .map(|t| (t.name, t.group))
            .collect();
        let mut plan = feast_import::plan(input, &|name| groups.get(name).cloned());

        let mut copies = Vec::new();
        let mut tables = Vec::new();
        let mut dropped = BTreeMap::new();
        for table in &plan.tables {
            let name = format!("{}/{}", table.group, table.view);
            match (&options.data_dir, &table.source) {
                (Some(dir), DataSource::LocalParquet(uri)) => {
                    let path = resolve(dir, uri);
                    let checked = (path.clone(), table.clone());
                    let rows = self
                        .blocking(move |_, _| Ok(check_file(&checked.0, &checked.1)?))
                        .await?;
                    copies.push(Planned {
                        table: table.clone(),
                        path,
                        rows,
                    });
                }
                (_, source) if groups.contains_key(&table.view) => tables.push(TableCopy {
                    feature_view: table.view.clone(),
                    table: name,
                    source: None,
                    rows: None,
                    status: CopyStatus::NotCopied,
                    message: match source {
                        DataSource::Elsewhere(why) => {
                            format!("{why}; the table already there is used")
                        }
                        // Only reached without a data folder: the HTTP route.
                        DataSource::LocalParquet(_) => {
                            "the HTTP import reads no files; the table already there is used".into()
                        }
                    },
                }),
                (_, source) => {
                    let why = match source {
                        DataSource::Elsewhere(why) => format!(
                            "no table {name}, and {why}: save the table (POST /features/{name}), then import again"
                        ),
                        DataSource::LocalParquet(uri) => format!(
                            "no table {name}: the HTTP import reads no files; copy {uri} with `featurestore import-feast --data <repo>` or save the table (POST /features/{name}), then import again"
                        ),
                    };
                    dropped.insert(table.view.clone(), why);
                }
            }
        }
        let dropped_names: BTreeSet<String> = dropped.keys().cloned().collect();
        let skipped = plan.without_views(&dropped_names, |view| {
            dropped.get(view).cloned().unwrap_or_default()
        });
        for copy in &copies {
            tables.push(TableCopy {
                feature_view: copy.table.view.clone(),
                table: format!("{}/{}", copy.table.group, copy.table.view),
                source: Some(copy.path.display().to_string()),
                rows: Some(copy.rows),
                status: if options.dry_run {
                    CopyStatus::WouldCopy
                } else {
                    CopyStatus::Copied
                },
                message: if options.dry_run {
                    "would be copied into a new version of the table".into()
                } else {
                    "copied into a new version of the table".into()
                },
            });
        }
        tables.sort_by(|a, b| a.feature_view.cmp(&b.feature_view));

        let objects = plan.objects();
        let (report, committed) = if options.dry_run {
            let registry = Arc::clone(&self.registry);
            let document = plan.document.clone();
            let incoming: BTreeMap<String, Vec<(String, String)>> = copies
                .iter()
                .map(|c| (c.table.view.clone(), c.table.columns.clone()))
                .collect();
            let report = self
                .blocking(move |s, _| {
                    reload_registry(&registry);
                    Ok(registry.check(document, &|group, name| {
                        incoming
                            .get(name.as_str())
                            .cloned()
                            .or_else(|| table_columns(s, group, name))
                    })?)
                })
                .await?;
            (report, None)
        } else {
            for copy in copies {
                self.copy_table(copy, &options.writer, &progress).await?;
            }
            let (report, committed) = self
                .apply_if(plan.document.clone(), None, options.writer.clone())
                .await?;
            (report, Some(committed))
        };
        Ok(FeastImport {
            project: plan.project,
            dry_run: options.dry_run,
            objects,
            report,
            committed,
            tables,
            skipped,
            unmappable: plan.unmappable,
            notes: plan.notes,
        })
    }

    /// Reads a checked file and saves its columns as the view's table.
    async fn copy_table(
        &self,
        copy: Planned,
        writer: &Writer,
        progress: &CopyProgress,
    ) -> Result<()> {
        let Planned { table, path, .. } = copy;
        let group: GroupName = table
            .group
            .parse()
            .map_err(|e| invalid_name(&table.view, e))?;
        let name: TableName = table
            .view
            .parse()
            .map_err(|e| invalid_name(&table.view, e))?;
        let declaration = Declaration {
            entity_key: Some(table.entity_key.clone()),
            timestamp_field: Some(table.timestamp_field.clone()),
            created_timestamp_field: table.created_timestamp_field.clone(),
            written_by: writer.token.clone(),
        };
        let progress = Arc::clone(progress);
        let batch = self
            .blocking(move |_, _| Ok(read_file(&path, &table, &progress)?))
            .await?;
        self.save_batch(group, name, batch, declaration).await?;
        Ok(())
    }
}

fn invalid_name(view: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::FeastImport(FeastImportError::Malformed(format!(
        "feature view {view:?}: {e}"
    )))
}

/// `uri` against the Feast repository's folder, unless absolute.
fn resolve(dir: &Path, uri: &str) -> PathBuf {
    let path = Path::new(uri);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        dir.join(path)
    }
}

fn file_error(table: &TableSource, path: &Path, message: impl Into<String>) -> FeastImportError {
    FeastImportError::DataFile {
        view: table.view.clone(),
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// The Arrow type a mapped column is stored as.
fn target_type(
    table: &TableSource,
    path: &Path,
    dtype: &str,
) -> Result<DataType, FeastImportError> {
    LogicalType::from_dtype(dtype)
        .map(LogicalType::arrow_type)
        .ok_or_else(|| file_error(table, path, format!("no stored type for dtype {dtype}")))
}

/// Opens `path` and checks it has every column the view needs, in a type that converts to
/// the view's; returns its row count.
fn check_file(path: &Path, table: &TableSource) -> Result<u64, FeastImportError> {
    let builder = open(path, table)?;
    let schema = builder.schema();
    for (column, dtype) in &table.columns {
        let field = schema
            .field_with_name(column)
            .map_err(|_| file_error(table, path, format!("it has no column {column:?}")))?;
        let target = target_type(table, path, dtype)?;
        if !can_cast_types(field.data_type(), &target) {
            return Err(file_error(
                table,
                path,
                format!(
                    "column {column:?} is {}, which cannot become {dtype}",
                    field.data_type()
                ),
            ));
        }
    }
    Ok(u64::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0))
}

fn open(
    path: &Path,
    table: &TableSource,
) -> Result<ParquetRecordBatchReaderBuilder<File>, FeastImportError> {
    let file = File::open(path).map_err(|e| file_error(table, path, e.to_string()))?;
    ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| file_error(table, path, format!("not a readable Parquet file: {e}")))
}

/// The view's columns of `path`, in the view's order and types.
fn read_file(
    path: &Path,
    table: &TableSource,
    progress: &CopyProgress,
) -> Result<RecordBatch, FeastImportError> {
    let builder = open(path, table)?;
    let total = u64::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
    let wanted: Vec<usize> = {
        let schema = builder.schema();
        table
            .columns
            .iter()
            .filter_map(|(c, _)| schema.index_of(c).ok())
            .collect()
    };
    let mask = ProjectionMask::roots(builder.parquet_schema(), wanted);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(COPY_BATCH_ROWS)
        .build()
        .map_err(|e| file_error(table, path, e.to_string()))?;
    let schema = arrow::record_batch::RecordBatchReader::schema(&reader);
    let mut batches = Vec::new();
    let mut read = 0u64;
    progress(&table.view, 0, total);
    for batch in reader {
        let batch = batch.map_err(|e| file_error(table, path, e.to_string()))?;
        read += batch.num_rows() as u64;
        progress(&table.view, read, total);
        batches.push(batch);
    }
    let whole =
        concat_batches(&schema, &batches).map_err(|e| file_error(table, path, e.to_string()))?;
    let strict = CastOptions {
        safe: false,
        ..Default::default()
    };
    let mut fields = Vec::with_capacity(table.columns.len());
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(table.columns.len());
    for (column, dtype) in &table.columns {
        let array = whole
            .column_by_name(column)
            .ok_or_else(|| file_error(table, path, format!("it has no column {column:?}")))?;
        let target = target_type(table, path, dtype)?;
        let array = cast_with_options(array, &target, &strict).map_err(|e| {
            file_error(
                table,
                path,
                format!("column {column:?} cannot become {dtype}: {e}"),
            )
        })?;
        fields.push(Field::new(column, target, true));
        arrays.push(array);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| file_error(table, path, e.to_string()))
}
