//! JSON records → a logical Arrow batch, with the type rules of ARCHITECTURE.md "Types".
//!
//! Integers → Int64, numbers → Float64 (a column mixing integers and fractions is Float64, as
//! long as every integer is exactly representable), strings → Utf8, booleans → Boolean, and the
//! timestamp field's RFC 3339 strings → Timestamp(µs, UTC). Anything else that disagrees within
//! a column is rejected with the column and the first offending row.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, NullArray, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use chrono::DateTime;

use super::error::{Result, StorageError};
use super::records::{JsonScalar, RecordColumns};

/// Largest integer magnitude a Float64 column can hold exactly (2^53).
const MAX_EXACT_FLOAT_INT: i64 = 1 << 53;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Int,
    Float,
    Str,
}

impl Kind {
    fn of(value: &JsonScalar) -> Option<Kind> {
        match value {
            JsonScalar::Bool(_) => Some(Kind::Bool),
            JsonScalar::Int(_) | JsonScalar::BigUint(_) => Some(Kind::Int),
            JsonScalar::Float(_) => Some(Kind::Float),
            JsonScalar::Str(_) => Some(Kind::Str),
            JsonScalar::Null | JsonScalar::Nested => None,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Kind::Bool => "a boolean",
            Kind::Int => "an integer",
            Kind::Float => "a number",
            Kind::Str => "a string",
        }
    }
}

/// Converts records to a batch with logical types. `timestamp_field` names the column whose
/// strings are parsed as RFC 3339 instants.
pub fn records_to_batch(
    records: &RecordColumns,
    timestamp_field: Option<&str>,
) -> Result<RecordBatch> {
    records_to_batch_with(records, timestamp_field.as_slice())
}

/// [`records_to_batch`] with several timestamp columns (an event and a created timestamp).
pub fn records_to_batch_with(
    records: &RecordColumns,
    timestamp_fields: &[&str],
) -> Result<RecordBatch> {
    let mut fields = Vec::with_capacity(records.column_count());
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(records.column_count());
    for (name, values) in records.columns() {
        let array = if timestamp_fields.contains(&name) {
            timestamp_column(name, values)?
        } else {
            column(name, values)?
        };
        fields.push(Field::new(name, array.data_type().clone(), true));
        arrays.push(array);
    }
    let options = RecordBatchOptions::new().with_row_count(Some(records.row_count()));
    Ok(RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        arrays,
        &options,
    )?)
}

fn column(name: &str, values: &[JsonScalar]) -> Result<ArrayRef> {
    let mut kind: Option<Kind> = None;
    for (row, value) in values.iter().enumerate() {
        if *value == JsonScalar::Nested {
            return Err(StorageError::invalid(
                name,
                Some(row),
                format!(
                    "column {name:?}, row {row}: nested objects and arrays are not supported; \
                     flatten them or encode them as strings"
                ),
            ));
        }
        let Some(this) = Kind::of(value) else {
            continue;
        };
        kind = match (kind, this) {
            (None, k) => Some(k),
            (Some(a), b) if a == b => Some(a),
            (Some(Kind::Int), Kind::Float) | (Some(Kind::Float), Kind::Int) => Some(Kind::Float),
            (Some(a), b) => {
                return Err(StorageError::invalid(
                    name,
                    Some(row),
                    format!(
                        "column {name:?}, row {row}: expected {} like the rows before it, found {}",
                        a.describe(),
                        b.describe()
                    ),
                ));
            }
        };
    }
    Ok(match kind {
        None => Arc::new(NullArray::new(values.len())),
        Some(Kind::Bool) => Arc::new(
            values
                .iter()
                .map(|v| match v {
                    JsonScalar::Bool(b) => Some(*b),
                    _ => None,
                })
                .collect::<BooleanArray>(),
        ),
        Some(Kind::Str) => Arc::new(
            values
                .iter()
                .map(|v| match v {
                    JsonScalar::Str(s) => Some(s.as_str()),
                    _ => None,
                })
                .collect::<StringArray>(),
        ),
        Some(Kind::Int) => {
            let mut out = Vec::with_capacity(values.len());
            for (row, v) in values.iter().enumerate() {
                out.push(match v {
                    JsonScalar::Int(i) => Some(*i),
                    JsonScalar::BigUint(u) => {
                        return Err(StorageError::invalid(
                            name,
                            Some(row),
                            format!(
                                "column {name:?}, row {row}: {u} does not fit in a 64-bit \
                                 signed integer"
                            ),
                        ));
                    }
                    _ => None,
                });
            }
            Arc::new(Int64Array::from(out))
        }
        Some(Kind::Float) => {
            let mut out = Vec::with_capacity(values.len());
            for (row, v) in values.iter().enumerate() {
                out.push(match v {
                    JsonScalar::Float(f) => Some(*f),
                    JsonScalar::Int(i) if i.unsigned_abs() <= MAX_EXACT_FLOAT_INT as u64 => {
                        Some(*i as f64)
                    }
                    JsonScalar::Int(_) | JsonScalar::BigUint(_) => {
                        return Err(StorageError::invalid(
                            name,
                            Some(row),
                            format!(
                                "column {name:?}, row {row}: this integer cannot be stored \
                                 exactly in a column of fractional numbers (limit ±2^53)"
                            ),
                        ));
                    }
                    _ => None,
                });
            }
            Arc::new(Float64Array::from(out))
        }
    })
}

fn timestamp_column(name: &str, values: &[JsonScalar]) -> Result<ArrayRef> {
    let mut out = Vec::with_capacity(values.len());
    for (row, value) in values.iter().enumerate() {
        out.push(match value {
            // As in a push: a row without its event time can never be served or joined.
            JsonScalar::Null => {
                return Err(StorageError::invalid(
                    name,
                    Some(row),
                    format!(
                        "column {name:?}, row {row}: the timestamp field may not be null; \
                         every row needs its event time"
                    ),
                ));
            }
            JsonScalar::Str(s) => Some(parse_timestamp_micros(s).ok_or_else(|| {
                StorageError::invalid(
                    name,
                    Some(row),
                    format!(
                        "column {name:?}, row {row}: {s:?} is not an RFC 3339 timestamp \
                         (e.g. 2025-06-01T10:00:00Z)"
                    ),
                )
            })?),
            _ => {
                return Err(StorageError::invalid(
                    name,
                    Some(row),
                    format!(
                        "column {name:?}, row {row}: the timestamp field must hold RFC 3339 \
                         strings"
                    ),
                ));
            }
        });
    }
    Ok(Arc::new(
        TimestampMicrosecondArray::from(out).with_timezone("UTC"),
    ))
}

/// Parses a timestamp to microseconds since the epoch, UTC: RFC 3339 with any offset, or a
/// naive date and time without one (`2025-06-01T10:00:00`, also with a space for the `T`, as
/// pandas writes CSV), which is taken as UTC. Naive instants mean UTC everywhere — JSON, CSV
/// and Parquet or Arrow uploads (whose zone-less timestamp columns are read as UTC) — so the
/// same file gives the same instants whatever its format. Digits beyond the microsecond are
/// truncated (toward the past), as storage keeps microseconds.
pub fn parse_timestamp_micros(text: &str) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_micros());
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|format| chrono::NaiveDateTime::parse_from_str(text, format).ok())
        .map(|t| t.and_utc().timestamp_micros())
}

#[cfg(test)]
mod tests {
    use arrow::array::Array;
    use arrow::datatypes::DataType;

    use super::*;
    use crate::storage::meta::timestamp_type;

    fn records(json: &str) -> RecordColumns {
        serde_json::from_str(json).expect("test records are valid JSON")
    }

    #[test]
    fn json_kinds_map_to_logical_arrow_types() -> Result<()> {
        let batch = records_to_batch(
            &records(
                r#"[{"i": 1, "f": 1.5, "s": "a", "b": true, "n": null, "t": "2025-06-01T10:00:00Z"}]"#,
            ),
            Some("t"),
        )?;
        let types: Vec<_> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        assert_eq!(
            types,
            vec![
                DataType::Int64,
                DataType::Float64,
                DataType::Utf8,
                DataType::Boolean,
                DataType::Null,
                timestamp_type()
            ]
        );
        Ok(())
    }

    #[test]
    fn integers_and_fractions_mix_into_float64() -> Result<()> {
        let batch = records_to_batch(&records(r#"[{"x": 1}, {"x": 2.5}, {"x": null}]"#), None)?;
        assert_eq!(batch.column(0).data_type(), &DataType::Float64);
        assert_eq!(batch.column(0).null_count(), 1);
        Ok(())
    }

    #[test]
    fn mixed_string_and_integer_names_column_and_first_offending_row() {
        let err = records_to_batch(&records(r#"[{"x": 1}, {"x": 2}, {"x": "three"}]"#), None)
            .expect_err("mixed column");
        match err {
            StorageError::InvalidRecords { column, row, .. } => {
                assert_eq!(column.as_deref(), Some("x"));
                assert_eq!(row, Some(2));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn timestamps_with_offsets_are_normalised_to_utc() -> Result<()> {
        let batch = records_to_batch(
            &records(r#"[{"t": "2025-06-01T12:00:00+02:00"}, {"t": "2025-06-01T10:00:00Z"}]"#),
            Some("t"),
        )?;
        let t = batch
            .column(0)
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .expect("timestamp column");
        assert_eq!(t.value(0), t.value(1));
        Ok(())
    }

    #[test]
    fn bad_timestamp_is_rejected_with_its_row() {
        let err = records_to_batch(&records(r#"[{"t": "yesterday"}]"#), Some("t"))
            .expect_err("bad timestamp");
        assert!(matches!(
            err,
            StorageError::InvalidRecords { row: Some(0), .. }
        ));
    }

    #[test]
    fn nested_values_and_huge_integers_are_rejected() {
        assert!(records_to_batch(&records(r#"[{"x": {"a": 1}}]"#), None).is_err());
        assert!(records_to_batch(&records(r#"[{"x": 18446744073709551615}]"#), None).is_err());
    }
}
