//! Arrow batches → JSON, written straight into a byte buffer.
//!
//! Going through `serde_json::Value` would allocate a map per row; this writes each row as an
//! object directly. NaN and ±infinity have no JSON form and are written as `null` (the 2.5
//! sketch failed with a plain-text 500 on them). Float32 values are printed with Float32's
//! shortest representation, so a lossy-downcast 2.4 reads back as 2.4, not
//! 2.4000000953674316.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Float16Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, TimeUnit, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use chrono::{DateTime, Datelike, SecondsFormat, Timelike};
use serde::Serialize;

/// Appends the JSON of one non-null cell of a column to a buffer.
pub(crate) type CellWriter<'a> = Box<dyn Fn(&mut Vec<u8>, usize) + 'a>;

/// Appends `batch` as a JSON array of row objects to `out`.
pub fn write_records(batch: &RecordBatch, out: &mut Vec<u8>) {
    let schema = batch.schema();
    let keys: Vec<Vec<u8>> = schema
        .fields()
        .iter()
        .map(|f| {
            let mut key = serde_json::to_vec(f.name()).unwrap_or_else(|_| b"\"\"".to_vec());
            key.push(b':');
            key
        })
        .collect();
    let normalised: Vec<ArrayRef> = batch.columns().iter().map(normalise).collect();
    let writers: Vec<CellWriter<'_>> = normalised.iter().map(|c| cell_writer(c.as_ref())).collect();
    out.push(b'[');
    for row in 0..batch.num_rows() {
        if row > 0 {
            out.push(b',');
        }
        out.push(b'{');
        for (i, (key, write)) in keys.iter().zip(&writers).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(key);
            if normalised[i].is_null(row) {
                out.extend_from_slice(b"null");
            } else {
                write(out, row);
            }
        }
        out.push(b'}');
    }
    out.push(b']');
}

/// Dictionaries are unpacked to their values so one writer handles them.
pub(crate) fn normalise(column: &ArrayRef) -> ArrayRef {
    match column.data_type() {
        DataType::Dictionary(_, value) => {
            arrow::compute::cast(column, value).unwrap_or_else(|_| column.clone())
        }
        _ => column.clone(),
    }
}

macro_rules! integer_writer {
    ($array:expr, $ty:ty) => {{
        let values = $array.as_primitive::<$ty>();
        Box::new(move |out: &mut Vec<u8>, row: usize| {
            out.extend_from_slice(itoa::Buffer::new().format(values.value(row)).as_bytes())
        })
    }};
}

fn write_f64(out: &mut Vec<u8>, v: f64) {
    if v.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

fn write_f32(out: &mut Vec<u8>, v: f32) {
    if v.is_finite() {
        out.extend_from_slice(ryu::Buffer::new().format_finite(v).as_bytes());
    } else {
        out.extend_from_slice(b"null");
    }
}

/// Writes a JSON string with escaping.
pub fn write_json_str(out: &mut Vec<u8>, s: &str) {
    // Serializing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// The writer of one column's cells (the caller writes `null` for null cells).
pub(crate) fn cell_writer(array: &dyn Array) -> CellWriter<'_> {
    match array.data_type() {
        DataType::Int8 => integer_writer!(array, Int8Type),
        DataType::Int16 => integer_writer!(array, Int16Type),
        DataType::Int32 => integer_writer!(array, Int32Type),
        DataType::Int64 => integer_writer!(array, Int64Type),
        DataType::UInt8 => integer_writer!(array, UInt8Type),
        DataType::UInt16 => integer_writer!(array, UInt16Type),
        DataType::UInt32 => integer_writer!(array, UInt32Type),
        DataType::UInt64 => integer_writer!(array, UInt64Type),
        DataType::Float16 => {
            let values = array.as_primitive::<Float16Type>();
            Box::new(move |out, row| write_f32(out, values.value(row).to_f32()))
        }
        DataType::Float32 => {
            let values = array.as_primitive::<Float32Type>();
            Box::new(move |out, row| write_f32(out, values.value(row)))
        }
        DataType::Float64 => {
            let values = array.as_primitive::<Float64Type>();
            Box::new(move |out, row| write_f64(out, values.value(row)))
        }
        DataType::Boolean => {
            let values = array.as_boolean();
            Box::new(move |out, row| {
                out.extend_from_slice(if values.value(row) { b"true" } else { b"false" })
            })
        }
        DataType::Utf8 => {
            let values = array.as_string::<i32>();
            Box::new(move |out, row| write_json_str(out, values.value(row)))
        }
        DataType::LargeUtf8 => {
            let values = array.as_string::<i64>();
            Box::new(move |out, row| write_json_str(out, values.value(row)))
        }
        DataType::Null => Box::new(|out, _| out.extend_from_slice(b"null")),
        DataType::Timestamp(unit, tz) => {
            let micros = arrow::compute::cast(
                array,
                &DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
            );
            match micros {
                Ok(micros) => Box::new(move |out, row| {
                    let v = micros
                        .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                        .value(row);
                    write_timestamp(out, v)
                }),
                Err(_) => fallback(array, *unit),
            }
        }
        DataType::Date32 => {
            let values = array.as_primitive::<Date32Type>();
            Box::new(move |out, row| {
                let day = DateTime::from_timestamp(i64::from(values.value(row)) * 86_400, 0);
                match day {
                    Some(d) => write_json_str(out, &d.date_naive().to_string()),
                    None => out.extend_from_slice(b"null"),
                }
            })
        }
        _ => fallback(array, TimeUnit::Microsecond),
    }
}

/// Writes an instant as RFC 3339 UTC (`2025-06-01T10:00:00Z`, fractional seconds only when
/// present). Naive timestamps (a column without a zone, as another tool may write) are UTC,
/// as everywhere they are read, and are written with their offset like any other.
pub fn write_timestamp(out: &mut Vec<u8>, micros: i64) {
    write_rfc3339_utc(out, micros)
}

/// Types with no natural JSON form (binary, decimals, nested) are written as their display
/// string, so a table written by another tool still reads instead of failing.
fn fallback(array: &dyn Array, _unit: TimeUnit) -> CellWriter<'_> {
    match ArrayFormatter::try_new(array, &FormatOptions::default()) {
        Ok(formatter) => {
            Box::new(move |out, row| write_json_str(out, &formatter.value(row).to_string()))
        }
        Err(_) => Box::new(|out, _| out.extend_from_slice(b"null")),
    }
}

/// Writes an instant as an RFC 3339 UTC string (`2026-11-20T10:00:00Z`, `.250Z` or
/// `.250123Z`: the same text as chrono's `SecondsFormat::AutoSi`). Written field by field: the generic chrono
/// formatter was the largest cost of a 100-row online answer, which carries one timestamp per
/// value.
pub fn write_rfc3339_utc(out: &mut Vec<u8>, micros: i64) {
    let Some(t) = DateTime::from_timestamp_micros(micros) else {
        out.extend_from_slice(b"null");
        return;
    };
    let year = t.year();
    if !(0..=9999).contains(&year) {
        write_json_str(out, &t.to_rfc3339_opts(SecondsFormat::AutoSi, true));
        return;
    }
    let two = |out: &mut Vec<u8>, v: u32| {
        out.push(b'0' + (v / 10) as u8);
        out.push(b'0' + (v % 10) as u8);
    };
    out.push(b'"');
    two(out, year as u32 / 100);
    two(out, year as u32 % 100);
    out.push(b'-');
    two(out, t.month());
    out.push(b'-');
    two(out, t.day());
    out.push(b'T');
    two(out, t.hour());
    out.push(b':');
    two(out, t.minute());
    out.push(b':');
    two(out, t.second());
    // Like chrono's AutoSi: no fraction, milliseconds (3 digits) or microseconds (6).
    let fraction = micros.rem_euclid(1_000_000) as u32;
    let (value, digits) = match fraction {
        0 => (0, 0),
        f if f % 1000 == 0 => (f / 1000, 3),
        f => (f, 6),
    };
    if digits > 0 {
        out.push(b'.');
        let mut divisor = 10u32.pow(digits - 1);
        while divisor > 0 {
            out.push(b'0' + (value / divisor % 10) as u8);
            divisor /= 10;
        }
    }
    out.extend_from_slice(b"Z\"");
}

/// Builds a JSON object field by field, so large parts (records) can be written in place.
pub struct JsonObject {
    buf: Vec<u8>,
    empty: bool,
}

impl JsonObject {
    /// An object with an initial capacity in bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity);
        buf.push(b'{');
        Self { buf, empty: true }
    }

    fn key(&mut self, key: &str) {
        if !self.empty {
            self.buf.push(b',');
        }
        self.empty = false;
        write_json_str(&mut self.buf, key);
        self.buf.push(b':');
    }

    /// Adds a field serialized with serde.
    pub fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> &mut Self {
        self.key(key);
        if serde_json::to_writer(&mut self.buf, value).is_err() {
            self.buf.extend_from_slice(b"null");
        }
        self
    }

    /// Adds a field whose value `write` appends as raw JSON.
    pub fn raw_field(&mut self, key: &str, write: impl FnOnce(&mut Vec<u8>)) -> &mut Self {
        self.key(key);
        write(&mut self.buf);
        self
    }

    /// The finished object's bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(b'}');
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float32Array, Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};

    use super::*;

    fn json(batch: &RecordBatch) -> serde_json::Value {
        let mut out = Vec::new();
        write_records(batch, &mut out);
        serde_json::from_slice(&out).expect("writer emits valid JSON")
    }

    #[test]
    fn nan_and_infinities_become_null() -> Result<(), arrow::error::ArrowError> {
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("x", DataType::Float64, true)])),
            vec![Arc::new(Float64Array::from(vec![
                f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
                1.5,
            ]))],
        )?;
        assert_eq!(
            json(&batch),
            serde_json::json!([{"x": null}, {"x": null}, {"x": null}, {"x": 1.5}])
        );
        Ok(())
    }

    #[test]
    fn float32_prints_its_shortest_form_and_strings_are_escaped()
    -> Result<(), arrow::error::ArrowError> {
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("f", DataType::Float32, true),
                Field::new("s", DataType::Utf8, true),
                Field::new("i", DataType::Int64, true),
            ])),
            vec![
                Arc::new(Float32Array::from(vec![2.4f32])),
                Arc::new(StringArray::from(vec![Some("a\"b\n")])),
                Arc::new(Int64Array::from(vec![None::<i64>])),
            ],
        )?;
        let mut out = Vec::new();
        write_records(&batch, &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            r#"[{"f":2.4,"s":"a\"b\n","i":null}]"#
        );
        Ok(())
    }
}
