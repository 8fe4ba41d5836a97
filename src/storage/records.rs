//! JSON records (`[{"col": value, ...}, ...]`) deserialized straight into columns.
//!
//! A 100 k-record POST must cost well under a second, so the body is never turned into a
//! `serde_json::Value` per record: a custom visitor appends each scalar to its column as it is
//! parsed. Columns keep the order in which they first appear; a record that lacks a column gets
//! a null there, and a column first seen late is back-filled with nulls.

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// One JSON value as ingested. Nested objects and arrays are kept only as a marker so that the
/// type check can reject them with the column and row at fault.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonScalar {
    /// `null` (or a missing key).
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer that fits in `i64`.
    Int(i64),
    /// An integer above `i64::MAX`: kept apart so the error can say so.
    BigUint(u64),
    /// Any other number.
    Float(f64),
    /// A string.
    Str(String),
    /// An object or array.
    Nested,
}

/// Records held column by column, in first-appearance order.
#[derive(Debug, Default, Clone)]
pub struct RecordColumns {
    names: Vec<String>,
    index: HashMap<String, usize>,
    columns: Vec<Vec<JsonScalar>>,
    rows: usize,
}

impl RecordColumns {
    /// Number of records.
    pub fn row_count(&self) -> usize {
        self.rows
    }

    /// Number of distinct columns seen.
    pub fn column_count(&self) -> usize {
        self.names.len()
    }

    /// Column names in first-appearance order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// `(name, values)` pairs in column order; every column has `row_count()` values.
    pub fn columns(&self) -> impl Iterator<Item = (&str, &[JsonScalar])> {
        self.names
            .iter()
            .map(String::as_str)
            .zip(self.columns.iter().map(Vec::as_slice))
    }

    /// Builds records from `(column, value)` rows; used by tests and the CLI.
    pub fn from_rows<'a>(
        rows: impl IntoIterator<Item = Vec<(&'a str, JsonScalar)>>,
    ) -> RecordColumns {
        let mut out = RecordColumns::default();
        for row in rows {
            for (name, value) in row {
                out.push(name, value);
            }
            out.finish_row();
        }
        out
    }

    fn push(&mut self, name: &str, value: JsonScalar) {
        let idx = match self.index.get(name) {
            Some(&idx) => idx,
            None => {
                let idx = self.names.len();
                self.names.push(name.to_owned());
                self.index.insert(name.to_owned(), idx);
                self.columns.push(vec![JsonScalar::Null; self.rows]);
                idx
            }
        };
        let column = &mut self.columns[idx];
        if column.len() > self.rows {
            // A key repeated inside one record: the last value wins, as in serde_json::Map.
            column[self.rows] = value;
        } else {
            column.push(value);
        }
    }

    fn finish_row(&mut self) {
        self.rows += 1;
        for column in &mut self.columns {
            if column.len() < self.rows {
                column.push(JsonScalar::Null);
            }
        }
    }
}

impl<'de> serde::Deserialize<'de> for JsonScalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = JsonScalar;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<JsonScalar, E> {
        Ok(JsonScalar::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<JsonScalar, E> {
        Ok(JsonScalar::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<JsonScalar, E> {
        Ok(i64::try_from(v).map_or(JsonScalar::BigUint(v), JsonScalar::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<JsonScalar, E> {
        Ok(JsonScalar::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<JsonScalar, E> {
        Ok(JsonScalar::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<JsonScalar, E> {
        Ok(JsonScalar::Str(v))
    }
    fn visit_unit<E>(self) -> Result<JsonScalar, E> {
        Ok(JsonScalar::Null)
    }
    fn visit_none<E>(self) -> Result<JsonScalar, E> {
        Ok(JsonScalar::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonScalar, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(JsonScalar::Nested)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonScalar, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(JsonScalar::Nested)
    }
}

impl<'de> serde::Deserialize<'de> for RecordColumns {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(RecordsVisitor)
    }
}

struct RecordsVisitor;

impl<'de> Visitor<'de> for RecordsVisitor {
    type Value = RecordColumns;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of records (JSON objects)")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RecordColumns, A::Error> {
        let mut out = RecordColumns::default();
        while seq.next_element_seed(RowSeed { out: &mut out })?.is_some() {
            out.finish_row();
        }
        Ok(out)
    }
}

struct RowSeed<'a> {
    out: &'a mut RecordColumns,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "record {} to be a JSON object", self.out.rows)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let value: JsonScalar = map.next_value()?;
            self.out.push(&key, value);
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _seq: A) -> Result<(), A::Error> {
        Err(de::Error::invalid_type(de::Unexpected::Seq, &self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_keep_first_appearance_order_and_fill_gaps_with_null() -> serde_json::Result<()> {
        let cols: RecordColumns =
            serde_json::from_str(r#"[{"b": 1, "a": "x"}, {"c": true}, {"a": "y", "b": 2.5}]"#)?;
        assert_eq!(cols.names(), ["b", "a", "c"]);
        assert_eq!(cols.row_count(), 3);
        let c: Vec<_> = cols.columns().map(|(_, v)| v.to_vec()).collect();
        assert_eq!(
            c[0],
            vec![JsonScalar::Int(1), JsonScalar::Null, JsonScalar::Float(2.5)]
        );
        assert_eq!(
            c[2],
            vec![JsonScalar::Null, JsonScalar::Bool(true), JsonScalar::Null]
        );
        Ok(())
    }

    #[test]
    fn nested_values_are_marked_and_non_objects_rejected() {
        let cols: RecordColumns =
            serde_json::from_str(r#"[{"a": [1, 2]}, {"a": {"x": 1}}]"#).expect("valid records");
        assert!(
            cols.columns()
                .all(|(_, v)| v.iter().all(|s| *s == JsonScalar::Nested))
        );
        assert!(serde_json::from_str::<RecordColumns>(r#"[{"a": 1}, 3]"#).is_err());
    }

    #[test]
    fn duplicate_keys_keep_the_last_value() -> serde_json::Result<()> {
        let cols: RecordColumns = serde_json::from_str(r#"[{"a": 1, "a": 2}]"#)?;
        let values: Vec<_> = cols.columns().map(|(_, v)| v.to_vec()).collect();
        assert_eq!(values, vec![vec![JsonScalar::Int(2)]]);
        Ok(())
    }
}
