//! What featurestore knows about a table beyond its data: logical types, entity key,
//! timestamp field and version.
//!
//! It is written into the Parquet footer (key `featurestore.meta`) in the same atomic rename
//! as the data, so the two can never disagree. The sidecar under `metadata/` is a readable copy
//! that also keeps the version counter after a delete, so a re-created table never reuses a
//! version number (cache keys depend on that).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde::{Deserialize, Serialize};

/// Key of the footer entry holding [`TableMeta`] as JSON.
pub const FOOTER_KEY: &str = "featurestore.meta";

/// The type a column has for users, whatever narrower type stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogicalType {
    /// 64-bit signed integer.
    Int64,
    /// 64-bit float.
    Float64,
    /// 32-bit float: only when the lossy `float_downcast = "always"` rule chose it.
    Float32,
    /// UTF-8 string.
    String,
    /// Boolean.
    Bool,
    /// Instant, microseconds since the epoch, UTC.
    Timestamp,
    /// A column that held only nulls.
    Null,
}

impl LogicalType {
    /// The Arrow type values of this logical type are served as.
    pub fn arrow_type(self) -> DataType {
        match self {
            LogicalType::Int64 => DataType::Int64,
            LogicalType::Float64 => DataType::Float64,
            LogicalType::Float32 => DataType::Float32,
            LogicalType::String => DataType::Utf8,
            LogicalType::Bool => DataType::Boolean,
            LogicalType::Timestamp => timestamp_type(),
            LogicalType::Null => DataType::Null,
        }
    }

    /// The logical type a registry `dtype` names (`int64`, `float64`, `float32`, `string`,
    /// `bool`, `timestamp[us, UTC]`), as `dtype_name` spells them.
    pub fn from_dtype(dtype: &str) -> Option<Self> {
        [
            LogicalType::Int64,
            LogicalType::Float64,
            LogicalType::Float32,
            LogicalType::String,
            LogicalType::Bool,
            LogicalType::Timestamp,
        ]
        .into_iter()
        .find(|t| dtype_name(&t.arrow_type()).eq_ignore_ascii_case(dtype.trim()))
    }

    /// The logical type for an Arrow type, if it is one featurestore writes.
    pub fn from_arrow(data_type: &DataType) -> Option<Self> {
        Some(match data_type {
            DataType::Int64 => LogicalType::Int64,
            DataType::Float64 => LogicalType::Float64,
            DataType::Float32 => LogicalType::Float32,
            DataType::Utf8 => LogicalType::String,
            DataType::Boolean => LogicalType::Bool,
            DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) if tz.as_ref() == "UTC" => {
                LogicalType::Timestamp
            }
            DataType::Null => LogicalType::Null,
            _ => return None,
        })
    }
}

/// Microseconds in the time zone of `data_type` (a timestamp type). Keeping the zone makes
/// the cast a pure unit change, so the values stay microseconds since the epoch in UTC; a cast
/// from a zone to a naive type is allowed by Arrow to mean local wall-clock time instead.
pub fn micros_type(data_type: &DataType) -> DataType {
    let zone = match data_type {
        DataType::Timestamp(_, zone) => zone.clone(),
        _ => None,
    };
    DataType::Timestamp(TimeUnit::Microsecond, zone)
}

/// The Arrow type of timestamp columns: microseconds, UTC.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// One column's logical description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnMeta {
    /// Column name.
    pub name: String,
    /// Its logical type.
    pub logical_type: LogicalType,
}

/// Metadata written into every table featurestore writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableMeta {
    /// Generation number, bumped on every write; part of every cache key.
    pub version: u64,
    /// Entity key columns (empty when the table has none).
    pub entity_key: Vec<String>,
    /// The event timestamp column, if any.
    pub timestamp_field: Option<String>,
    /// Logical column types, in column order.
    pub columns: Vec<ColumnMeta>,
    /// In-memory Arrow size of the logical data, for the compression ratio.
    pub arrow_bytes: u64,
    /// When the table was written (RFC 3339, UTC).
    pub written_at: String,
}

impl TableMeta {
    /// The schema values are served with.
    pub fn logical_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|c| Field::new(&c.name, c.logical_type.arrow_type(), true))
                .collect::<Vec<_>>(),
        ))
    }
}

/// The sidecar file: a readable copy of the footer metadata plus what must outlive the table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sidecar {
    /// Latest version written, even when the table has since been deleted.
    pub version: u64,
    /// True after a delete: only the version counter is meaningful then.
    pub deleted: bool,
    /// Rows in the table when last written.
    pub row_count: u64,
    /// File size when last written.
    pub file_size_bytes: u64,
    /// The footer metadata of the last write.
    pub table: Option<TableMeta>,
    /// Size and modification time of the file this sidecar describes: a table file that no
    /// longer matches was changed by another tool and gets a new version.
    #[serde(default)]
    pub fingerprint: Option<FileFingerprint>,
}

/// What identifies one version of a table file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileFingerprint {
    /// File size in bytes.
    pub len: u64,
    /// Modification time, nanoseconds since the epoch.
    pub modified_nanos: u128,
}

/// A name for an Arrow type as shown in `dtypes` and `info` (`int64`, `uint8`, `string`,
/// `dictionary<int8, string>`, `timestamp[us, UTC]`, ...).
pub fn dtype_name(data_type: &DataType) -> String {
    match data_type {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Boolean => "bool".into(),
        DataType::Timestamp(unit, tz) => {
            let unit = match unit {
                TimeUnit::Second => "s",
                TimeUnit::Millisecond => "ms",
                TimeUnit::Microsecond => "us",
                TimeUnit::Nanosecond => "ns",
            };
            match tz {
                Some(tz) => format!("timestamp[{unit}, {tz}]"),
                None => format!("timestamp[{unit}]"),
            }
        }
        DataType::Dictionary(key, value) => {
            format!("dictionary<{}, {}>", dtype_name(key), dtype_name(value))
        }
        other => other.to_string().to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_names_are_short_and_stable() {
        assert_eq!(dtype_name(&DataType::UInt8), "uint8");
        assert_eq!(dtype_name(&timestamp_type()), "timestamp[us, UTC]");
        let dict = DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Utf8));
        assert_eq!(dtype_name(&dict), "dictionary<int8, string>");
    }

    #[test]
    fn logical_types_round_trip_through_arrow() {
        for t in [
            LogicalType::Int64,
            LogicalType::Float64,
            LogicalType::Float32,
            LogicalType::String,
            LogicalType::Bool,
            LogicalType::Timestamp,
            LogicalType::Null,
        ] {
            assert_eq!(LogicalType::from_arrow(&t.arrow_type()), Some(t));
        }
    }
}
