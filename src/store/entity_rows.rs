//! Entity rows of a historical request, from what the client sent: columnar JSON, an
//! uploaded Parquet file or an Arrow IPC stream. Each becomes one batch whose
//! `event_timestamp` is a UTC timestamp column, the shape the point-in-time join reads.

use std::io::Cursor;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema};
use bytes::Bytes;
use serde_json::Value;

use super::error::{Result, StoreError};
use super::historical::ENTITY_TIMESTAMP;
use crate::storage::parse_timestamp_micros;

fn invalid(field: &str, message: impl Into<String>) -> StoreError {
    StoreError::InvalidRequest {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// Entity rows from JSON columns: integers, numbers, strings or booleans per column, and
/// `event_timestamp` as RFC 3339 strings with any offset.
pub(super) fn json_entities(columns: Vec<(String, Vec<Value>)>) -> Result<RecordBatch> {
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

pub(super) fn parquet_entities(bytes: Bytes) -> Result<RecordBatch> {
    decode_upload("Parquet file", || parquet_entities_unchecked(bytes))
}

pub(super) fn arrow_entities(bytes: Bytes) -> Result<RecordBatch> {
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
