//! Training data: entity rows (or a time window) → the point-in-time join of `offline`.
//!
//! The store resolves the request against the registry (features or a service, as for online
//! serving), reads from each view's table only the columns the join needs, and runs the join
//! on the blocking pool. Entity rows come as JSON columns, an uploaded Parquet file or an Arrow
//! IPC stream; with a window instead, the entity rows are every (key, event time) at which a
//! requested view has a row inside it, so a client gets every entity's values in the window
//! without listing the entities.

use std::io::Cursor;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::compute::{cast, concat, filter_record_batch};
use arrow::datatypes::{DataType, Field, Schema};
use bytes::Bytes;
use serde_json::Value;

use super::error::{Result, StoreError};
use super::online;
use crate::model::{FeatureRef, FeatureView, RegistryDocument, TableName};
use crate::offline::{JoinOptions, JoinView, point_in_time_join};
use crate::storage::{Storage, parse_timestamp_micros, timestamp_type};

/// The entity rows' timestamp column, as Feast names it.
pub const ENTITY_TIMESTAMP: &str = "event_timestamp";

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
}

/// Training data: the entity rows with their features as of each row's timestamp.
#[derive(Debug, Clone)]
pub struct HistoricalAnswer {
    /// Entity columns, then one column per feature.
    pub batch: RecordBatch,
    /// Entity rows for which some view had a value.
    pub matched_rows: usize,
}

fn invalid(field: &str, message: impl Into<String>) -> StoreError {
    StoreError::InvalidRequest {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// Runs a historical request (blocking).
pub(super) fn historical(
    storage: &Storage,
    registry: &RegistryDocument,
    query: HistoricalQuery,
) -> Result<HistoricalAnswer> {
    let (views, refs) = online::resolve(
        registry,
        &query.features,
        &query.feature_service,
        query.full_feature_names,
    )?;
    let mut join_views = Vec::with_capacity(views.len());
    for view in &views {
        join_views.push(join_view(storage, registry, view, &refs)?);
    }
    let entities = match query.entities {
        HistoricalEntities::Columns(columns) => json_entities(columns)?,
        HistoricalEntities::Parquet(bytes) => parquet_entities(bytes)?,
        HistoricalEntities::ArrowStream(bytes) => arrow_entities(bytes)?,
        HistoricalEntities::Window {
            start_micros,
            end_micros,
        } => window_entities(&join_views, start_micros, end_micros)?,
    };
    let options = JoinOptions {
        created_timestamp_cutoff: query.created_timestamp_cutoff,
        full_feature_names: query.full_feature_names,
    };
    let joined = point_in_time_join(&entities, ENTITY_TIMESTAMP, &join_views, &options)
        .map_err(|e| invalid("entities", e.to_string()))?;
    Ok(HistoricalAnswer {
        batch: joined.batch,
        matched_rows: joined.matched_rows,
    })
}

/// The columns of `view`'s table the join needs: join keys, timestamps and the requested
/// features, in request order.
fn join_view(
    storage: &Storage,
    registry: &RegistryDocument,
    view: &FeatureView,
    refs: &[FeatureRef],
) -> Result<JoinView> {
    let name: TableName = view
        .name
        .parse()
        .map_err(|e: crate::model::NameError| invalid("features", e.to_string()))?;
    let table = storage.get(&name)?;
    let join_keys = online::view_join_keys(registry, view);
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

/// Entity rows from JSON columns: integers, numbers, strings or booleans per column, and
/// `event_timestamp` as RFC 3339 strings with any offset.
fn json_entities(columns: Vec<(String, Vec<Value>)>) -> Result<RecordBatch> {
    let rows = columns.first().map_or(0, |(_, v)| v.len());
    let mut fields = Vec::with_capacity(columns.len());
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
    for (i, (name, values)) in columns.iter().enumerate() {
        let field = format!("entities.{name}");
        if columns[..i].iter().any(|(other, _)| other == name) {
            return Err(invalid(&field, "is given twice"));
        }
        if values.len() != rows {
            return Err(invalid(
                &field,
                format!(
                    "has {} values but the first entity column has {rows}; every column needs one value per row",
                    values.len()
                ),
            ));
        }
        let array: ArrayRef = if name == ENTITY_TIMESTAMP {
            let mut micros = Vec::with_capacity(rows);
            for (row, value) in values.iter().enumerate() {
                micros.push(match value {
                    Value::Null => None,
                    Value::String(text) => Some(parse_timestamp_micros(text).ok_or_else(|| {
                        invalid(
                            &field,
                            format!("row {row}: {text:?} is not an RFC 3339 timestamp"),
                        )
                    })?),
                    other => {
                        return Err(invalid(
                            &field,
                            format!("row {row}: expected an RFC 3339 timestamp, got {other}"),
                        ));
                    }
                });
            }
            Arc::new(TimestampMicrosecondArray::from(micros).with_timezone("UTC"))
        } else {
            json_column(&field, values)?
        };
        fields.push(Field::new(name, array.data_type().clone(), true));
        arrays.push(array);
    }
    if !columns.iter().any(|(name, _)| name == ENTITY_TIMESTAMP) {
        return Err(invalid(
            &format!("entities.{ENTITY_TIMESTAMP}"),
            "every entity row needs an event_timestamp (RFC 3339): the instant its features are taken as of",
        ));
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(crate::storage::StorageError::from)?)
}

fn json_column(field: &str, values: &[Value]) -> Result<ArrayRef> {
    let kind = values.iter().find(|v| !v.is_null());
    let mixed = |row: usize| {
        invalid(
            field,
            format!(
                "row {row}: {} does not match the column's first value {}",
                values[row],
                kind.map(Value::to_string).unwrap_or_default()
            ),
        )
    };
    Ok(match kind {
        None => Arc::new(arrow::array::NullArray::new(values.len())),
        Some(Value::String(_)) => {
            let mut out = Vec::with_capacity(values.len());
            for (row, v) in values.iter().enumerate() {
                out.push(match v {
                    Value::Null => None,
                    Value::String(s) => Some(s.as_str()),
                    _ => return Err(mixed(row)),
                });
            }
            Arc::new(StringArray::from(out))
        }
        Some(Value::Bool(_)) => {
            let mut out = Vec::with_capacity(values.len());
            for (row, v) in values.iter().enumerate() {
                out.push(match v {
                    Value::Null => None,
                    Value::Bool(b) => Some(*b),
                    _ => return Err(mixed(row)),
                });
            }
            Arc::new(BooleanArray::from(out))
        }
        Some(Value::Number(_)) if values.iter().all(|v| v.is_null() || v.is_i64()) => Arc::new(
            Int64Array::from(values.iter().map(Value::as_i64).collect::<Vec<_>>()),
        ),
        Some(Value::Number(_)) => {
            let mut out = Vec::with_capacity(values.len());
            for (row, v) in values.iter().enumerate() {
                out.push(match v {
                    Value::Null => None,
                    Value::Number(n) => n.as_f64(),
                    _ => return Err(mixed(row)),
                });
            }
            Arc::new(Float64Array::from(out))
        }
        Some(other) => {
            return Err(invalid(
                field,
                format!("entity values must be numbers, strings or booleans, got {other}"),
            ));
        }
    })
}

/// Entity rows of an upload, with `event_timestamp` as timestamps (RFC 3339 strings are
/// parsed).
fn normalise_upload(batch: RecordBatch) -> Result<RecordBatch> {
    let schema = batch.schema();
    let Ok(index) = schema.index_of(ENTITY_TIMESTAMP) else {
        return Err(invalid(
            &format!("entities.{ENTITY_TIMESTAMP}"),
            format!(
                "the uploaded entity rows have no {ENTITY_TIMESTAMP} column (their columns: {})",
                schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    };
    let column = batch.column(index);
    let converted: ArrayRef = match column.data_type() {
        DataType::Timestamp(_, Some(_)) => return Ok(batch),
        // A zone-less column holds UTC instants, as naive strings do everywhere; it takes the
        // zone (values unchanged) so that the answer writes the entity rows' times back with
        // their offset.
        DataType::Timestamp(unit, None) => with_utc_zone(column, *unit),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let text = cast(column, &DataType::Utf8).map_err(crate::storage::StorageError::from)?;
            let text = text.as_any().downcast_ref::<StringArray>();
            let mut micros = Vec::with_capacity(column.len());
            for row in 0..column.len() {
                micros.push(match text {
                    Some(t) if t.is_valid(row) => {
                        Some(parse_timestamp_micros(t.value(row)).ok_or_else(|| {
                            invalid(
                                &format!("entities.{ENTITY_TIMESTAMP}"),
                                format!(
                                    "row {row}: {:?} is not an RFC 3339 timestamp",
                                    t.value(row)
                                ),
                            )
                        })?)
                    }
                    _ => None,
                });
            }
            Arc::new(TimestampMicrosecondArray::from(micros).with_timezone("UTC"))
        }
        other => {
            return Err(invalid(
                &format!("entities.{ENTITY_TIMESTAMP}"),
                format!("must hold timestamps or RFC 3339 strings, not {other}"),
            ));
        }
    };
    let mut columns = batch.columns().to_vec();
    columns[index] = converted;
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .zip(&columns)
        .map(|(f, c)| Field::new(f.name(), c.data_type().clone(), true))
        .collect();
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(crate::storage::StorageError::from)?)
}

/// A zone-less timestamp column as the same instants in UTC.
fn with_utc_zone(column: &ArrayRef, unit: arrow::datatypes::TimeUnit) -> ArrayRef {
    use arrow::array::AsArray;
    use arrow::datatypes::{
        TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
        TimestampSecondType,
    };
    match unit {
        TimeUnit::Second => Arc::new(
            column
                .as_primitive::<TimestampSecondType>()
                .clone()
                .with_timezone("UTC"),
        ),
        TimeUnit::Millisecond => Arc::new(
            column
                .as_primitive::<TimestampMillisecondType>()
                .clone()
                .with_timezone("UTC"),
        ),
        TimeUnit::Microsecond => Arc::new(
            column
                .as_primitive::<TimestampMicrosecondType>()
                .clone()
                .with_timezone("UTC"),
        ),
        TimeUnit::Nanosecond => Arc::new(
            column
                .as_primitive::<TimestampNanosecondType>()
                .clone()
                .with_timezone("UTC"),
        ),
    }
}

/// Runs a decoder over uploaded bytes. The Parquet and Arrow readers validate what they
/// decode, but some malformed inputs still make them panic (an out-of-range buffer slice in the
/// Arrow IPC reader, found by `tests/it/fuzz.rs`); such an upload is the client's fault, so the
/// panic becomes the same 422 as any other unreadable upload instead of an internal error.
fn decode_upload(
    format: &str,
    decode: impl FnOnce() -> Result<RecordBatch>,
) -> Result<RecordBatch> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)).unwrap_or_else(|_| {
        Err(invalid(
            "body",
            format!("the body is not a readable {format}: its contents are inconsistent"),
        ))
    })
}

fn parquet_entities(bytes: Bytes) -> Result<RecordBatch> {
    decode_upload("Parquet file", || parquet_entities_unchecked(bytes))
}

fn arrow_entities(bytes: Bytes) -> Result<RecordBatch> {
    decode_upload("Arrow IPC stream", || arrow_entities_unchecked(bytes))
}

fn parquet_entities_unchecked(bytes: Bytes) -> Result<RecordBatch> {
    let unreadable = |e: String| {
        invalid(
            "body",
            format!("the body is not a readable Parquet file: {e}"),
        )
    };
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|e| unreadable(e.to_string()))?;
    let schema = Arc::clone(builder.schema());
    let reader = builder.build().map_err(|e| unreadable(e.to_string()))?;
    let batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| unreadable(e.to_string()))?;
    let batch =
        arrow::compute::concat_batches(&schema, &batches).map_err(|e| unreadable(e.to_string()))?;
    normalise_upload(batch)
}

fn arrow_entities_unchecked(bytes: Bytes) -> Result<RecordBatch> {
    let unreadable = |e: String| {
        invalid(
            "body",
            format!("the body is not a readable Arrow IPC stream: {e}"),
        )
    };
    let reader = arrow::ipc::reader::StreamReader::try_new(Cursor::new(bytes), None)
        .map_err(|e| unreadable(e.to_string()))?;
    let schema = reader.schema();
    let batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| unreadable(e.to_string()))?;
    let batch =
        arrow::compute::concat_batches(&schema, &batches).map_err(|e| unreadable(e.to_string()))?;
    normalise_upload(batch)
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
/// CLI's output file.
pub fn to_parquet_bytes(
    batch: &RecordBatch,
) -> std::result::Result<Vec<u8>, parquet::errors::ParquetError> {
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let mut writer = parquet::arrow::ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props))?;
    writer.write(batch)?;
    writer.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid two-column upload of three entity rows, as an Arrow IPC stream.
    fn arrow_upload() -> Vec<u8> {
        let batch = RecordBatch::try_from_iter([
            (
                "user_id",
                Arc::new(arrow::array::Int64Array::from(vec![1, 2, 9])) as ArrayRef,
            ),
            (
                ENTITY_TIMESTAMP,
                Arc::new(StringArray::from(vec!["2025-06-01T09:30:00Z"; 3])) as ArrayRef,
            ),
        ])
        .unwrap();
        let mut out = Vec::new();
        let mut writer =
            arrow::ipc::writer::StreamWriter::try_new(&mut out, &batch.schema()).unwrap();
        writer.write(&batch).unwrap();
        writer.finish().unwrap();
        drop(writer);
        out
    }

    #[test]
    fn a_damaged_arrow_upload_is_invalid_never_a_panic() {
        let valid = arrow_upload();
        assert!(arrow_entities(Bytes::from(valid.clone())).is_ok());
        let mut rejected = 0;
        // Every byte of the stream in turn set to a few values: some of these make a buffer
        // offset or length point past the end, which panics inside the Arrow reader (byte 214
        // set to 0 does, with arrow 60).
        for (i, value) in (0..valid.len()).flat_map(|i| [(i, 0x00), (i, 0x01), (i, 0xff)]) {
            let mut damaged = valid.clone();
            damaged[i] = value;
            match arrow_entities(Bytes::from(damaged)) {
                Ok(_) => {}
                // A damaged column name or type is reported on that column.
                Err(StoreError::InvalidRequest { .. }) => rejected += 1,
                Err(other) => panic!("byte {i}: unexpected error {other}"),
            }
        }
        assert!(rejected > 0);
    }
}
