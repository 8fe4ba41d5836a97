//! Columnar JSON (`{"column": [values...]}`, the shape of Feast's push `df`) → a batch with the
//! types of an existing table, strictly.
//!
//! Unlike records saved as a new table, pushed rows must fit a schema that already exists:
//! every value is checked against its column's type and the first one that does not fit is an
//! error naming the column and the row, before anything is written. Integers fit integer
//! columns of any width when in range and float columns when exactly representable; strings
//! fit string columns, and timestamp columns as RFC 3339 with any offset; `null` fits anything.
//! Nothing is coerced silently (a fraction never becomes an integer, a number never a string).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray,
    new_null_array,
};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use serde_json::Value;

use super::convert::parse_timestamp_micros;
use super::error::{Result, StorageError};

/// Largest integer magnitude a float column holds exactly (2^53).
const MAX_EXACT_FLOAT_INT: i64 = 1 << 53;

/// Builds a batch with exactly `schema`'s columns, in its order, from named JSON columns.
/// Missing or unknown columns and columns of different lengths are errors.
pub fn json_columns_to_batch(
    columns: &[(String, Vec<Value>)],
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let unknown: Vec<&str> = columns
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| schema.index_of(name).is_err())
        .collect();
    if let Some(first) = unknown.first() {
        return Err(StorageError::invalid(
            first,
            None,
            format!(
                "unknown column(s) {unknown:?}; the table has {:?}",
                schema.fields().iter().map(|f| f.name()).collect::<Vec<_>>()
            ),
        ));
    }
    if let Some((_, (name, _))) = columns
        .iter()
        .enumerate()
        .find(|(i, (name, _))| columns[..*i].iter().any(|(other, _)| other == name))
    {
        return Err(StorageError::invalid(
            name,
            None,
            format!("column {name:?} is given twice"),
        ));
    }
    let rows = columns.first().map_or(0, |(_, v)| v.len());
    let mut arrays = Vec::with_capacity(schema.fields().len());
    let mut fields = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let Some((name, values)) = columns.iter().find(|(name, _)| name == field.name()) else {
            return Err(StorageError::invalid(
                field.name(),
                None,
                format!(
                    "column {:?} is missing; every column of the table is required",
                    field.name()
                ),
            ));
        };
        if values.len() != rows {
            return Err(StorageError::invalid(
                name,
                None,
                format!(
                    "column {name:?} has {} values but the first column has {rows}; every column needs one value per row",
                    values.len()
                ),
            ));
        }
        let array = column(name, values, field.data_type())?;
        fields.push(Field::new(field.name(), array.data_type().clone(), true));
        arrays.push(array);
    }
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        arrays,
        &options,
    )?)
}

fn mismatch(name: &str, row: usize, value: &Value, wanted: &str) -> StorageError {
    StorageError::invalid(
        name,
        Some(row),
        format!("column {name:?} row {row}: expected {wanted}, got {value}"),
    )
}

fn column(name: &str, values: &[Value], target: &DataType) -> Result<ArrayRef> {
    let strict = CastOptions {
        safe: false,
        ..Default::default()
    };
    let narrow = |array: ArrayRef| -> Result<ArrayRef> {
        if array.data_type() == target {
            return Ok(array);
        }
        cast_with_options(&array, target, &strict).map_err(|e| {
            StorageError::invalid(
                name,
                None,
                format!("column {name:?} does not fit the table's type {target}: {e}"),
            )
        })
    };
    match target {
        // A column that held only nulls has no type yet: the first values pushed give it one
        // (the table is widened to it when the rows are written).
        DataType::Null => match values.iter().find(|v| !v.is_null()) {
            None => Ok(new_null_array(target, values.len())),
            Some(Value::Bool(_)) => column(name, values, &DataType::Boolean),
            Some(Value::String(_)) => column(name, values, &DataType::Utf8),
            Some(Value::Number(_)) if values.iter().all(|v| v.is_null() || v.is_i64()) => {
                column(name, values, &DataType::Int64)
            }
            Some(Value::Number(_)) => column(name, values, &DataType::Float64),
            Some(other) => Err(mismatch(
                name,
                values.iter().position(|v| !v.is_null()).unwrap_or(0),
                other,
                "a number, a string or a boolean",
            )),
        },
        t if t.is_integer() => {
            let mut out = Vec::with_capacity(values.len());
            for (row, value) in values.iter().enumerate() {
                out.push(match value {
                    Value::Null => None,
                    Value::Number(n) => Some(
                        n.as_i64()
                            .ok_or_else(|| mismatch(name, row, value, "an integer"))?,
                    ),
                    _ => return Err(mismatch(name, row, value, "an integer")),
                });
            }
            narrow(Arc::new(Int64Array::from(out)))
        }
        DataType::Float16 | DataType::Float32 | DataType::Float64 => {
            let mut out = Vec::with_capacity(values.len());
            for (row, value) in values.iter().enumerate() {
                out.push(match value {
                    Value::Null => None,
                    Value::Number(n) => match n.as_i64() {
                        Some(i) if i.abs() > MAX_EXACT_FLOAT_INT => {
                            return Err(mismatch(
                                name,
                                row,
                                value,
                                "a number a float holds exactly",
                            ));
                        }
                        Some(i) => Some(i as f64),
                        None => Some(
                            n.as_f64()
                                .ok_or_else(|| mismatch(name, row, value, "a number"))?,
                        ),
                    },
                    _ => return Err(mismatch(name, row, value, "a number")),
                });
            }
            narrow(Arc::new(Float64Array::from(out)))
        }
        DataType::Boolean => {
            let mut out = Vec::with_capacity(values.len());
            for (row, value) in values.iter().enumerate() {
                out.push(match value {
                    Value::Null => None,
                    Value::Bool(b) => Some(*b),
                    _ => return Err(mismatch(name, row, value, "a boolean")),
                });
            }
            Ok(Arc::new(BooleanArray::from(out)))
        }
        DataType::Timestamp(_, _) => {
            let mut out = Vec::with_capacity(values.len());
            for (row, value) in values.iter().enumerate() {
                out.push(match value {
                    Value::Null => None,
                    Value::String(s) => Some(
                        parse_timestamp_micros(s)
                            .ok_or_else(|| mismatch(name, row, value, "an RFC 3339 timestamp"))?,
                    ),
                    _ => return Err(mismatch(name, row, value, "an RFC 3339 timestamp")),
                });
            }
            let micros: ArrayRef =
                Arc::new(TimestampMicrosecondArray::from(out).with_timezone("UTC"));
            match target {
                DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) if tz.as_ref() == "UTC" => {
                    Ok(micros)
                }
                _ => narrow(micros),
            }
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _) => {
            if let DataType::Dictionary(_, inner) = target
                && !matches!(inner.as_ref(), DataType::Utf8 | DataType::LargeUtf8)
            {
                return Err(unsupported(name, target));
            }
            let mut out = Vec::with_capacity(values.len());
            for (row, value) in values.iter().enumerate() {
                out.push(match value {
                    Value::Null => None,
                    Value::String(s) => Some(s.as_str()),
                    _ => return Err(mismatch(name, row, value, "a string")),
                });
            }
            narrow(Arc::new(StringArray::from(out)))
        }
        _ => Err(unsupported(name, target)),
    }
}

fn unsupported(name: &str, target: &DataType) -> StorageError {
    StorageError::invalid(
        name,
        None,
        format!(
            "column {name:?} has type {target}, which featurestore cannot append JSON values to"
        ),
    )
}

/// The logical type values of a stored or served type are handled in: integers as Int64,
/// strings as Utf8, timestamps as µs UTC.
fn logical_type(data_type: &DataType) -> DataType {
    match data_type {
        t if t.is_integer() => DataType::Int64,
        DataType::Float16 => DataType::Float32,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _) => {
            DataType::Utf8
        }
        DataType::Timestamp(_, _) => super::meta::timestamp_type(),
        other => other.clone(),
    }
}

/// `schema` with logical types: what pushed values are checked against, so that a value the
/// table's narrower stored type cannot hold widens the table instead of being refused.
pub fn logical_schema(schema: &SchemaRef) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| Field::new(f.name(), logical_type(f.data_type()), true))
            .collect::<Vec<_>>(),
    ))
}

/// The batch with each column in its logical type (the types featurestore writes): integers
/// as Int64, strings as Utf8, timestamps as µs UTC. Used before writing rows of a table
/// another tool created, whose served types may be narrower.
pub fn to_logical(batch: &RecordBatch) -> Result<RecordBatch> {
    let strict = CastOptions {
        safe: false,
        ..Default::default()
    };
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut arrays = Vec::with_capacity(batch.num_columns());
    for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
        let logical = logical_type(array.data_type());
        let array = if array.data_type() == &logical {
            Arc::clone(array)
        } else {
            cast_with_options(array, &logical, &strict)?
        };
        fields.push(Field::new(field.name(), logical, true));
        arrays.push(array);
    }
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        arrays,
        &options,
    )?)
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int64Type;
    use serde_json::json;

    use super::*;
    use crate::storage::meta::timestamp_type;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("user_id", DataType::Int64, true),
            Field::new("event_timestamp", timestamp_type(), true),
            Field::new("avg_rating", DataType::Float64, true),
            Field::new("genre", DataType::Utf8, true),
        ]))
    }

    fn cols(value: Value) -> Vec<(String, Vec<Value>)> {
        value
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_array().cloned().unwrap_or_default()))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn values_take_the_tables_types_in_its_column_order() -> Result<()> {
        let batch = json_columns_to_batch(
            &cols(
                json!({"genre": ["a", null], "avg_rating": [4, 4.5], "event_timestamp": ["2025-06-01T12:00:00+02:00", null], "user_id": [1, 2]}),
            ),
            &schema(),
        )?;
        let names: Vec<_> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, ["user_id", "event_timestamp", "avg_rating", "genre"]);
        assert_eq!(batch.column(0).as_primitive::<Int64Type>().value(1), 2);
        let ts = batch
            .column(1)
            .as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        assert_eq!(
            ts.value(0),
            parse_timestamp_micros("2025-06-01T10:00:00Z").unwrap_or_default()
        );
        assert!(ts.is_null(1));
        Ok(())
    }

    #[test]
    fn a_value_of_the_wrong_type_names_column_and_row() {
        let err = json_columns_to_batch(
            &cols(json!({"user_id": [1, 2.5], "event_timestamp": [null, null], "avg_rating": [1, 2], "genre": ["a", "b"]})),
            &schema(),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains("\"user_id\" row 1"), "{err}");
    }

    #[test]
    fn missing_unknown_and_ragged_columns_are_rejected() {
        let base =
            json!({"user_id": [1], "event_timestamp": [null], "avg_rating": [1], "genre": ["a"]});
        let mut missing = base.clone();
        missing.as_object_mut().map(|o| o.remove("genre"));
        let mut unknown = base.clone();
        unknown
            .as_object_mut()
            .map(|o| o.insert("extra".into(), json!([1])));
        let mut ragged = base;
        ragged
            .as_object_mut()
            .map(|o| o.insert("genre".into(), json!(["a", "b"])));
        for (case, needle) in [
            (missing, "missing"),
            (unknown, "unknown column"),
            (ragged, "one value per row"),
        ] {
            let err = json_columns_to_batch(&cols(case), &schema())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn narrow_integer_columns_reject_values_out_of_range() {
        let narrow: SchemaRef = Arc::new(Schema::new(vec![Field::new("x", DataType::Int8, true)]));
        assert!(json_columns_to_batch(&cols(json!({"x": [127]})), &narrow).is_ok());
        assert!(json_columns_to_batch(&cols(json!({"x": [128]})), &narrow).is_err());
    }
}
