//! Rows ↔ Redis hash fields, and entity keys ↔ the key of their hash.
//!
//! Values are stored as plain text, one hash field per column (`c:<column>`), so a row reads
//! well in `redis-cli` and decodes without a schema message: integers and timestamps (in
//! microseconds) as decimals, floats in Rust's shortest round-trip form, booleans as `1`/`0`,
//! strings as they are. A null is a missing field. Decoding rebuilds each column with the type
//! the table has now, so a pushed row and a table row of one key compare and gather as one.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, StringArray,
    TimestampMicrosecondArray, UInt64Array,
};
use arrow::compute::cast;
use arrow::datatypes::{
    DataType, Field, Float64Type, Int64Type, Schema, SchemaRef, TimestampMicrosecondType,
    UInt64Type,
};
use arrow::record_batch::RecordBatch;
use serde_json::Value;

use crate::storage::{StorageError, micros_type};

/// Prefix of the hash fields holding column values (so no column name can collide with the
/// row's own fields, `_event` and `_created`).
pub const COLUMN_FIELD_PREFIX: &str = "c:";

/// How a column's values are written as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextKind {
    Signed,
    Unsigned,
    Float,
    Bool,
    Text,
    Micros,
}

fn text_kind(data_type: &DataType) -> Option<TextKind> {
    Some(match data_type {
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => TextKind::Signed,
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => {
            TextKind::Unsigned
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 => TextKind::Float,
        DataType::Boolean => TextKind::Bool,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => TextKind::Text,
        DataType::Dictionary(_, inner) if text_kind(inner) == Some(TextKind::Text) => {
            TextKind::Text
        }
        DataType::Timestamp(_, _) => TextKind::Micros,
        DataType::Null => TextKind::Text,
        _ => return None,
    })
}

/// Why a column cannot be kept in Redis.
fn unsupported(column: &str, data_type: &DataType) -> StorageError {
    StorageError::invalid(
        column,
        None,
        format!(
            "column {column:?} of type {data_type} cannot be kept in the Redis online store \
             (integers, floats, booleans, strings and timestamps can)"
        ),
    )
}

/// A column cast to the one type its text is written from.
fn canonical(column: &str, array: &ArrayRef) -> Result<(TextKind, ArrayRef), StorageError> {
    let kind =
        text_kind(array.data_type()).ok_or_else(|| unsupported(column, array.data_type()))?;
    let target = match kind {
        TextKind::Signed => DataType::Int64,
        TextKind::Unsigned => DataType::UInt64,
        TextKind::Float => DataType::Float64,
        TextKind::Bool => DataType::Boolean,
        TextKind::Text => DataType::Utf8,
        TextKind::Micros => micros_type(array.data_type()),
    };
    Ok((kind, cast(array, &target)?))
}

fn text_of(kind: TextKind, array: &ArrayRef, row: usize) -> Option<String> {
    if array.is_null(row) || array.data_type() == &DataType::Null {
        return None;
    }
    Some(match kind {
        TextKind::Signed => array.as_primitive::<Int64Type>().value(row).to_string(),
        TextKind::Unsigned => array.as_primitive::<UInt64Type>().value(row).to_string(),
        TextKind::Float => array.as_primitive::<Float64Type>().value(row).to_string(),
        TextKind::Bool => if array.as_boolean().value(row) {
            "1"
        } else {
            "0"
        }
        .to_owned(),
        TextKind::Text => array.as_string::<i32>().value(row).to_owned(),
        TextKind::Micros => array
            .as_primitive::<TimestampMicrosecondType>()
            .value(row)
            .to_string(),
    })
}

/// One row ready for the write script.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedRow {
    /// The entity part of the row's hash key (see [`entity_key`]).
    pub entity: String,
    /// Event time (µs): a row never replaces one with a later event.
    pub event_micros: i64,
    /// Created time (µs), the tie-breaker of equal event times, when the view has one.
    pub created_micros: Option<i64>,
    /// `c:<column>` → value text, nulls left out.
    pub fields: Vec<(String, String)>,
}

/// Encodes every row of `rows` (which hold at least the join keys and the event timestamp,
/// named as the view names them) for the write script. Rows without a key or event time are
/// errors: they could never be looked up.
pub fn encode_rows(
    rows: &RecordBatch,
    join_keys: &[String],
    timestamp_field: &str,
    created_field: Option<&str>,
) -> Result<Vec<EncodedRow>, StorageError> {
    let schema = rows.schema();
    let mut columns = Vec::with_capacity(rows.num_columns());
    for (field, array) in schema.fields().iter().zip(rows.columns()) {
        let (kind, array) = canonical(field.name(), array)?;
        columns.push((
            format!("{COLUMN_FIELD_PREFIX}{}", field.name()),
            kind,
            array,
        ));
    }
    let required = |name: &str| {
        rows.column_by_name(name)
            .cloned()
            .ok_or_else(|| StorageError::invalid(name, None, format!("column {name:?} is missing")))
    };
    let keys: Vec<ArrayRef> = join_keys
        .iter()
        .map(|k| required(k).and_then(|a| key_array(&a)))
        .collect::<Result<_, _>>()?;
    let event = cast(
        &required(timestamp_field)?,
        &micros_type(&DataType::Timestamp(
            arrow::datatypes::TimeUnit::Microsecond,
            None,
        )),
    )?;
    let created = match created_field {
        Some(name) => Some(cast(
            &required(name)?,
            &DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
        )?),
        None => None,
    };
    let mut out = Vec::with_capacity(rows.num_rows());
    for row in 0..rows.num_rows() {
        let Some(entity) = key_of_row(&keys, row) else {
            return Err(StorageError::invalid(
                &join_keys.join(","),
                Some(row),
                format!("row {row} has no entity key"),
            ));
        };
        if event.is_null(row) {
            return Err(StorageError::invalid(
                timestamp_field,
                Some(row),
                format!("row {row} has no {timestamp_field}"),
            ));
        }
        let event_micros = event.as_primitive::<TimestampMicrosecondType>().value(row);
        let created_micros = created.as_ref().and_then(|c| {
            c.is_valid(row)
                .then(|| c.as_primitive::<TimestampMicrosecondType>().value(row))
        });
        let fields = columns
            .iter()
            .filter_map(|(name, kind, array)| text_of(*kind, array, row).map(|v| (name.clone(), v)))
            .collect();
        out.push(EncodedRow {
            entity,
            event_micros,
            created_micros,
            fields,
        });
    }
    Ok(out)
}

/// A join key column as Int64 (integer keys) or Utf8 (every other kind), the two kinds the
/// online index distinguishes.
fn key_array(array: &ArrayRef) -> Result<ArrayRef, StorageError> {
    if array.data_type().is_integer() {
        Ok(cast(array, &DataType::Int64)?)
    } else {
        Ok(cast(array, &DataType::Utf8)?)
    }
}

fn push_int_part(out: &mut String, value: i64) {
    out.push('i');
    out.push_str(itoa::Buffer::new().format(value));
}

fn push_str_part(out: &mut String, value: &str) {
    // Length-prefixed, so no string can pass for another key's parts.
    out.push('s');
    out.push_str(itoa::Buffer::new().format(value.len()));
    out.push(':');
    out.push_str(value);
}

fn key_of_row(keys: &[ArrayRef], row: usize) -> Option<String> {
    let mut out = String::new();
    for key in keys {
        if key.is_null(row) {
            return None;
        }
        match key.data_type() {
            DataType::Int64 => push_int_part(&mut out, key.as_primitive::<Int64Type>().value(row)),
            _ => push_str_part(&mut out, key.as_string::<i32>().value(row)),
        }
    }
    Some(out)
}

/// The entity part of the hash key of the entity whose join key values (as a request sends
/// them) are `parts`; `key_is_int` says which join keys are integer columns. `None` when a
/// value cannot match any stored key (as the local index's probe decides: `"01"` is no
/// integer key, a boolean no key at all).
pub fn entity_key(parts: &[&Value], key_is_int: &[bool]) -> Option<String> {
    let mut out = String::new();
    for (value, is_int) in parts.iter().zip(key_is_int) {
        if *is_int {
            push_int_part(&mut out, crate::online::int_part(value)?);
        } else {
            push_str_part(&mut out, &crate::online::str_part(value)?);
        }
    }
    Some(out)
}

/// The hash field names of `columns`, in order: what a read asks `HMGET` for.
pub fn column_fields(columns: &[String]) -> Vec<String> {
    columns
        .iter()
        .map(|c| format!("{COLUMN_FIELD_PREFIX}{c}"))
        .collect()
}

/// Rebuilds rows read back with `HMGET` (one value per field of `schema`, in its order;
/// `None` for a missing field) as a batch of `schema`. Values that no longer parse as their
/// column's type (the table was retyped since the push) become nulls rather than failing the
/// lookup.
pub fn decode_rows(
    schema: &SchemaRef,
    rows: &[Vec<Option<String>>],
) -> Result<RecordBatch, StorageError> {
    let mut arrays = Vec::with_capacity(schema.fields().len());
    let mut fields = Vec::with_capacity(schema.fields().len());
    for (i, field) in schema.fields().iter().enumerate() {
        let texts = rows.iter().map(|r| r.get(i).and_then(|v| v.as_deref()));
        let kind = text_kind(field.data_type())
            .ok_or_else(|| unsupported(field.name(), field.data_type()))?;
        let parsed: ArrayRef = match kind {
            TextKind::Signed => Arc::new(
                texts
                    .map(|t| t.and_then(|t| t.parse().ok()))
                    .collect::<Int64Array>(),
            ),
            TextKind::Unsigned => Arc::new(
                texts
                    .map(|t| t.and_then(|t| t.parse().ok()))
                    .collect::<UInt64Array>(),
            ),
            TextKind::Float => Arc::new(
                texts
                    .map(|t| t.and_then(|t| t.parse().ok()))
                    .collect::<Float64Array>(),
            ),
            TextKind::Bool => Arc::new(
                texts
                    .map(|t| {
                        t.and_then(|t| match t {
                            "1" => Some(true),
                            "0" => Some(false),
                            _ => None,
                        })
                    })
                    .collect::<BooleanArray>(),
            ),
            TextKind::Text => Arc::new(texts.collect::<StringArray>()),
            TextKind::Micros => {
                let micros: TimestampMicrosecondArray =
                    texts.map(|t| t.and_then(|t| t.parse().ok())).collect();
                let zone = match micros_type(field.data_type()) {
                    DataType::Timestamp(_, zone) => zone,
                    _ => None,
                };
                Arc::new(micros.with_timezone_opt(zone))
            }
        };
        let array = if field.data_type() == &DataType::Null {
            arrow::array::new_null_array(&DataType::Null, rows.len())
        } else {
            cast(&parsed, field.data_type())?
        };
        fields.push(Field::new(field.name(), array.data_type().clone(), true));
        arrays.push(array);
    }
    let options = arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows.len()));
    Ok(RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        arrays,
        &options,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Float32Array;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Int32, true),
            Field::new(
                "event_timestamp",
                DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new("score", DataType::Float32, true),
            Field::new("active", DataType::Boolean, true),
            Field::new("city", DataType::Utf8, true),
        ]))
    }

    #[test]
    fn rows_survive_the_trip_with_their_types_and_nulls() -> Result<(), StorageError> {
        let schema = schema();
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(arrow::array::Int32Array::from(vec![7, -3])),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![1_700_000_000_123_456, -5])
                        .with_timezone("UTC"),
                ),
                Arc::new(Float32Array::from(vec![Some(0.1), None])),
                Arc::new(BooleanArray::from(vec![Some(true), Some(false)])),
                Arc::new(StringArray::from(vec![Some("Zürich:1"), None])),
            ],
        )?;
        let encoded = encode_rows(&batch, &["user_id".into()], "event_timestamp", None)?;
        assert_eq!(encoded[0].entity, "i7");
        assert_eq!(encoded[1].entity, "i-3");
        assert_eq!(encoded[0].event_micros, 1_700_000_000_123_456);
        let fields: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let names = column_fields(&fields);
        let read: Vec<Vec<Option<String>>> = encoded
            .iter()
            .map(|row| {
                names
                    .iter()
                    .map(|n| {
                        row.fields
                            .iter()
                            .find(|(f, _)| f == n)
                            .map(|(_, v)| v.clone())
                    })
                    .collect()
            })
            .collect();
        let back = decode_rows(&schema, &read)?;
        assert_eq!(back.columns(), batch.columns());
        Ok(())
    }

    #[test]
    fn entity_keys_match_what_a_request_sends() {
        let int = Value::from(42);
        let text = Value::from("42");
        assert_eq!(entity_key(&[&int], &[true]).as_deref(), Some("i42"));
        assert_eq!(entity_key(&[&text], &[true]).as_deref(), Some("i42"));
        assert_eq!(entity_key(&[&Value::from("042")], &[true]), None);
        assert_eq!(entity_key(&[&text], &[false]).as_deref(), Some("s2:42"));
        // Length prefixes keep composite keys apart.
        let (a, b) = (Value::from("a:s1"), Value::from("b"));
        assert_ne!(
            entity_key(&[&a, &b], &[false, false]),
            entity_key(&[&Value::from("a"), &Value::from("s1:b")], &[false, false])
        );
    }
}
