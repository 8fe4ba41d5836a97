//! Training data: entity rows (or a time window) → the point-in-time join of `offline`.
//!
//! The store resolves the request against the registry (features or a service, as for online
//! serving), reads from each view's table only the columns the join needs, and runs the join
//! on the blocking pool. Entity rows come as JSON columns, an uploaded Parquet file or an Arrow
//! IPC stream (`entity_rows`); with a window instead, the entity rows are every (key, event
//! time) at which a requested view has a row inside it, so a client gets every entity's values
//! in the window without listing the entities.
//!
//! # Reproducible answers
//! Each view's table is read at a version: the one `table_versions` names, else the one
//! current at `snapshot_time`, else the current one; the answer states every version it read
//! ([`HistoricalAnswer::table_versions`]), so a training set can be rebuilt byte for byte by
//! sending those versions back. Old versions are opened by `Storage::table_at`, which serves
//! the same rows whatever was written or folded since; nothing here caches by table name, so a
//! pinned read cannot be answered from the current version's data.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, TimestampMicrosecondArray};
use arrow::compute::{cast, concat, filter_record_batch};
use arrow::datatypes::{DataType, Field, Schema};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::entity_rows::{arrow_entities, json_entities, parquet_entities};
use super::error::{Result, StoreError};
use super::history::{history_of_table, view_table};
use super::online;
use crate::history::{self, HistoryCache, HistoryJoinView};
use crate::model::{FeatureRef, FeatureView, RegistryDocument};
use crate::offline::{JoinOptions, JoinView, point_in_time_join};
use crate::storage::{Storage, TableHandle, VersionSelector, timestamp_type};

/// The entity rows' timestamp column, as Feast names it.
pub const ENTITY_TIMESTAMP: &str = "event_timestamp";

/// Key of the schema metadata (Arrow IPC) and of the file key-value metadata (Parquet) that
/// holds the version of each view's table an answer was read from, as a JSON object.
pub const TABLE_VERSIONS_KEY: &str = "featurestore.table_versions";

/// Key of the metadata that holds the registry version an answer was resolved against.
pub const REGISTRY_VERSION_KEY: &str = "featurestore.registry_version";

/// Where the entity rows of a historical request come from.
#[derive(Debug, Clone)]
pub enum HistoricalEntities {
    /// Columnar JSON: column → one value per row (join keys, `event_timestamp`, and any other
    /// columns, such as labels, which are passed through).
    Columns(Vec<(String, Vec<Value>)>),
    /// An uploaded Parquet file of entity rows.
    Parquet(Bytes),
    /// An uploaded Arrow IPC stream of entity rows.
    ArrowStream(Bytes),
    /// No entity rows: every row of the requested views with an event time in
    /// `[start, end]` (µs, inclusive) becomes one.
    Window {
        /// Start (µs since the epoch).
        start_micros: i64,
        /// End (µs since the epoch).
        end_micros: i64,
    },
}

/// A request for training data.
#[derive(Debug, Clone)]
pub struct HistoricalQuery {
    /// `view:feature` references (exclusive with `feature_service`).
    pub features: Option<Vec<String>>,
    /// A feature service name.
    pub feature_service: Option<String>,
    /// The entity rows.
    pub entities: HistoricalEntities,
    /// Name features `view__feature`.
    pub full_feature_names: bool,
    /// Also exclude feature rows created after the entity row's timestamp.
    pub created_timestamp_cutoff: bool,
    /// The version to read each named view's table at; every name must be a view the request
    /// reads. Wins over `snapshot_time` for the views it names.
    pub table_versions: BTreeMap<String, u64>,
    /// Read every view not in `table_versions` as the version current at this instant
    /// (`None`: the current version).
    pub snapshot_time: Option<DateTime<Utc>>,
}

/// Training data: the entity rows with their features as of each row's timestamp.
#[derive(Debug, Clone)]
pub struct HistoricalAnswer {
    /// Entity columns, then one column per feature. Its schema metadata holds
    /// [`TABLE_VERSIONS_KEY`] (and [`REGISTRY_VERSION_KEY`] when known), so Arrow and Parquet
    /// answers carry them.
    pub batch: RecordBatch,
    /// Entity rows for which some view had a value.
    pub matched_rows: usize,
    /// The version of each requested view's table the answer was read from, by view name.
    pub table_versions: BTreeMap<String, u64>,
    /// The registry version the request was resolved against; `None` while nothing was ever
    /// applied.
    pub registry_version: Option<u64>,
}

fn invalid(field: &str, message: impl Into<String>) -> StoreError {
    StoreError::InvalidRequest {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// Runs a historical request (blocking). With histories kept (`cache.history_max_mb` above
/// 0), each view is joined against its history of the version read, from the cache or built
/// once for every request on that version; with them off, each request reads the columns it
/// needs and joins them, as before histories existed. Both give the same answer.
pub(super) fn historical(
    storage: &Storage,
    histories: &HistoryCache,
    registry: &RegistryDocument,
    registry_version: u64,
    query: HistoricalQuery,
) -> Result<HistoricalAnswer> {
    let (views, refs) = online::resolve(
        registry,
        &query.features,
        &query.feature_service,
        query.full_feature_names,
    )?;
    check_pins(&query.table_versions, &views)?;
    let service_pins = service_pins(registry, query.feature_service.as_deref());
    let mut tables = Vec::with_capacity(views.len());
    let mut table_versions = BTreeMap::new();
    for view in &views {
        // The most specific pin wins: the request's own, then the service's definition, then
        // the request's instant.
        let pinned = query
            .table_versions
            .get(&view.name)
            .or_else(|| service_pins.get(&view.name));
        let selector = match (pinned, query.snapshot_time) {
            (Some(version), _) => VersionSelector::Number(*version),
            (None, Some(instant)) => VersionSelector::AsOf(instant),
            (None, None) => VersionSelector::Current,
        };
        let table = view_table(storage, view, selector)?;
        table_versions.insert(view.name.clone(), table.version);
        let features = requested_features(&table, view, &refs)?;
        tables.push((table, features));
    }
    let options = JoinOptions {
        created_timestamp_cutoff: query.created_timestamp_cutoff,
        full_feature_names: query.full_feature_names,
    };
    let joined = if histories.enabled() {
        let mut kept = Vec::with_capacity(views.len());
        for (view, (table, _)) in views.iter().zip(&tables) {
            kept.push(history_of_table(storage, histories, registry, view, table)?);
        }
        let join_views: Vec<HistoryJoinView<'_>> = views
            .iter()
            .zip(&tables)
            .zip(&kept)
            .map(|((view, (_, features)), history)| HistoryJoinView {
                history,
                features: features.clone(),
                ttl_seconds: view.ttl_seconds,
            })
            .collect();
        let entities = match query.entities {
            HistoricalEntities::Window {
                start_micros,
                end_micros,
            } => {
                let windows: Vec<JoinView> = join_views
                    .iter()
                    .map(|v| JoinView {
                        name: v.history.view().to_owned(),
                        rows: v.history.rows().clone(),
                        join_keys: v.history.join_keys().to_vec(),
                        timestamp_field: v.history.timestamp_field().to_owned(),
                        created_timestamp_field: None,
                        features: Vec::new(),
                        ttl_seconds: None,
                    })
                    .collect();
                window_entities(&windows, start_micros, end_micros)?
            }
            other => entity_rows(other)?,
        };
        history::join(&entities, ENTITY_TIMESTAMP, &join_views, &options)
    } else {
        let mut join_views = Vec::with_capacity(views.len());
        for (view, (table, features)) in views.iter().zip(&tables) {
            join_views.push(join_view(table, registry, view, features.clone())?);
        }
        let entities = match query.entities {
            HistoricalEntities::Window {
                start_micros,
                end_micros,
            } => window_entities(&join_views, start_micros, end_micros)?,
            other => entity_rows(other)?,
        };
        point_in_time_join(&entities, ENTITY_TIMESTAMP, &join_views, &options)
    }
    .map_err(|e| invalid("entities", e.to_string()))?;
    // 0: nothing was ever applied, so there is no registry version to name.
    let registry_version = (registry_version > 0).then_some(registry_version);
    Ok(HistoricalAnswer {
        batch: with_versions(joined.batch, &table_versions, registry_version),
        matched_rows: joined.matched_rows,
        table_versions,
        registry_version,
    })
}

/// Entity rows given with the request (not a window).
fn entity_rows(entities: HistoricalEntities) -> Result<RecordBatch> {
    match entities {
        HistoricalEntities::Columns(columns) => json_entities(columns),
        HistoricalEntities::Parquet(bytes) => parquet_entities(bytes),
        HistoricalEntities::ArrowStream(bytes) => arrow_entities(bytes),
        HistoricalEntities::Window { .. } => {
            Err(invalid("entities", "a window has no entity rows"))
        }
    }
}

/// The versions a feature service's definition pins its views at for training (none when the
/// request names features, or the service pins nothing).
fn service_pins(registry: &RegistryDocument, service: Option<&str>) -> BTreeMap<String, u64> {
    service
        .and_then(|name| registry.feature_services.iter().find(|s| s.name == name))
        .map(|s| s.table_versions.clone())
        .unwrap_or_default()
}

/// Every view `table_versions` names must be one the request reads: a pin of anything else
/// would be silently ignored, and a training set believed pinned would not be.
fn check_pins(pins: &BTreeMap<String, u64>, views: &[&FeatureView]) -> Result<()> {
    let unknown: Vec<String> = pins
        .keys()
        .filter(|name| !views.iter().any(|v| &v.name == *name))
        .cloned()
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(StoreError::UnrequestedPins {
        views: unknown,
        requested: views.iter().map(|v| v.name.clone()).collect(),
    })
}

/// `batch` with the versions it was read from in its schema metadata. The values are JSON
/// with sorted keys, so equal versions always give equal bytes.
fn with_versions(
    batch: RecordBatch,
    table_versions: &BTreeMap<String, u64>,
    registry_version: Option<u64>,
) -> RecordBatch {
    let mut metadata = batch.schema().metadata().clone();
    metadata.insert(
        TABLE_VERSIONS_KEY.to_owned(),
        serde_json::to_string(table_versions).unwrap_or_default(),
    );
    if let Some(version) = registry_version {
        metadata.insert(REGISTRY_VERSION_KEY.to_owned(), version.to_string());
    }
    let schema = Arc::new(batch.schema().as_ref().clone().with_metadata(metadata));
    // The schema differs from the batch's only by its metadata, which `with_schema` accepts.
    batch.clone().with_schema(schema).unwrap_or(batch)
}

/// The features of `view` the request asks for, in request order; every one must be a column
/// of the view's table.
fn requested_features(
    table: &TableHandle,
    view: &FeatureView,
    refs: &[FeatureRef],
) -> Result<Vec<String>> {
    let features: Vec<String> = refs
        .iter()
        .filter(|r| r.view == view.name)
        .map(|r| r.feature.clone())
        .collect();
    let missing: Vec<String> = features
        .iter()
        .filter(|f| table.file.schema().index_of(f).is_err())
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(StoreError::ViewTableMismatch {
            view: view.name.clone(),
            columns: missing,
        });
    }
    Ok(features)
}

/// The columns of `view`'s table the join needs: join keys, timestamps and the requested
/// features, in request order.
fn join_view(
    table: &TableHandle,
    registry: &RegistryDocument,
    view: &FeatureView,
    features: Vec<String>,
) -> Result<JoinView> {
    let join_keys = online::view_join_keys(registry, view);
    let mut columns = join_keys.clone();
    columns.push(view.timestamp_field.clone());
    columns.extend(view.created_timestamp_field.clone());
    columns.extend(features.iter().cloned());
    let projection = table.file.column_indices(&columns)?;
    let rows = table.file.read_all(&projection)?;
    Ok(JoinView {
        name: view.name.clone(),
        rows,
        join_keys,
        timestamp_field: view.timestamp_field.clone(),
        created_timestamp_field: view.created_timestamp_field.clone(),
        features,
        ttl_seconds: view.ttl_seconds,
    })
}

/// Entity rows for a window: the distinct (join keys, event time) of every requested view's
/// rows with an event time in `[start, end]`, ordered by key then time. The views must share
/// their join keys, or a row of one would have no key for another.
fn window_entities(views: &[JoinView], start: i64, end: i64) -> Result<RecordBatch> {
    if start > end {
        return Err(invalid("start", "start is after end"));
    }
    let Some(first) = views.first() else {
        return Err(invalid("features", "no feature requested"));
    };
    let mut keys = first.join_keys.clone();
    keys.sort();
    for view in views {
        let mut other = view.join_keys.clone();
        other.sort();
        if other != keys {
            return Err(invalid(
                "features",
                format!(
                    "with start/end instead of entity rows, every view must have the same join keys; {} has {:?} and {} has {:?}",
                    first.name, first.join_keys, view.name, view.join_keys
                ),
            ));
        }
    }
    let mut columns: Vec<Vec<ArrayRef>> = vec![Vec::new(); first.join_keys.len() + 1];
    for view in views {
        let times = cast(
            view.rows
                .column_by_name(&view.timestamp_field)
                .ok_or_else(|| invalid("features", "the view's table has no timestamp column"))?,
            &timestamp_type(),
        )
        .map_err(crate::storage::StorageError::from)?;
        let micros = times
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .ok_or_else(|| invalid("features", "the view's timestamp column is not a timestamp"))?;
        let keep: BooleanArray = micros
            .iter()
            .map(|t| Some(t.is_some_and(|t| (start..=end).contains(&t))))
            .collect();
        for (i, key) in first.join_keys.iter().enumerate() {
            let column = view
                .rows
                .column_by_name(key)
                .ok_or_else(|| invalid("features", format!("the view's table has no {key}")))?;
            let typed = if column.data_type().is_integer() {
                cast(column, &DataType::Int64)
            } else {
                cast(column, &DataType::Utf8)
            }
            .map_err(crate::storage::StorageError::from)?;
            columns[i].push(
                arrow::compute::filter(&typed, &keep)
                    .map_err(crate::storage::StorageError::from)?,
            );
        }
        let last = columns.len() - 1;
        columns[last].push(
            arrow::compute::filter(&times, &keep).map_err(crate::storage::StorageError::from)?,
        );
    }
    let mut fields: Vec<Field> = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (i, parts) in columns.iter().enumerate() {
        let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
        let merged = concat(&refs).map_err(crate::storage::StorageError::from)?;
        let name = first
            .join_keys
            .get(i)
            .map_or(ENTITY_TIMESTAMP, String::as_str);
        fields.push(Field::new(name, merged.data_type().clone(), true));
        arrays.push(merged);
    }
    let all = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(crate::storage::StorageError::from)?;
    // Sort by (keys, time) and keep the first of each run of equal rows.
    let sort_columns: Vec<arrow::compute::SortColumn> = all
        .columns()
        .iter()
        .map(|c| arrow::compute::SortColumn {
            values: Arc::clone(c),
            options: None,
        })
        .collect();
    let order = arrow::compute::lexsort_to_indices(&sort_columns, None)
        .map_err(crate::storage::StorageError::from)?;
    let sorted = arrow::compute::take_record_batch(&all, &order)
        .map_err(crate::storage::StorageError::from)?;
    let converter = arrow::row::RowConverter::new(
        sorted
            .schema()
            .fields()
            .iter()
            .map(|f| arrow::row::SortField::new(f.data_type().clone()))
            .collect(),
    )
    .map_err(crate::storage::StorageError::from)?;
    let rows = converter
        .convert_columns(sorted.columns())
        .map_err(crate::storage::StorageError::from)?;
    let distinct: BooleanArray = (0..rows.num_rows())
        .map(|i| Some(i == 0 || rows.row(i) != rows.row(i - 1)))
        .collect();
    Ok(filter_record_batch(&sorted, &distinct).map_err(crate::storage::StorageError::from)?)
}

/// Training data as one snappy-compressed Parquet file, for the API's Parquet answers and the
/// CLI's output file. The batch's schema metadata (the versions it was read from) becomes the
/// file's key-value metadata, sorted by key; it is left out of the embedded Arrow schema,
/// whose metadata map has no fixed order, so that equal answers are equal bytes. Arrow and
/// pandas readers show file key-value metadata as the schema's metadata.
pub fn to_parquet_bytes(
    batch: &RecordBatch,
) -> std::result::Result<Vec<u8>, parquet::errors::ParquetError> {
    let metadata: BTreeMap<&String, &String> = batch.schema_ref().metadata().iter().collect();
    let key_values: Vec<parquet::file::metadata::KeyValue> = metadata
        .into_iter()
        .map(|(key, value)| parquet::file::metadata::KeyValue::new(key.clone(), value.clone()))
        .collect();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .set_key_value_metadata((!key_values.is_empty()).then_some(key_values))
        .build();
    let schema = Arc::new(Schema::new(batch.schema_ref().fields().clone()));
    let bare = RecordBatch::try_new_with_options(
        Arc::clone(&schema),
        batch.columns().to_vec(),
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )?;
    let mut writer = parquet::arrow::ArrowWriter::try_new(Vec::new(), schema, Some(props))?;
    writer.write(&bare)?;
    writer.into_inner()
}
