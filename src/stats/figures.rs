//! The statistics and drift figures as users read them (`GET .../stats`, `GET .../drift`, the
//! console). They are the public face of a version's statistics; the mergeable state behind
//! them (sketches, exact sets) is the engine's own and never leaves the server.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a column's values are, for the figures that make sense for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    /// Integers and floats: moments, percentiles and a histogram.
    Numeric,
    /// Strings: the most frequent values.
    String,
    /// Booleans: the share of each value.
    Boolean,
    /// Timestamps: the range and the age of the newest.
    Timestamp,
    /// Anything else (lists, binary): counts only.
    Other,
}

/// The percentiles every numeric column reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Percentiles {
    /// 1st percentile.
    pub p1: f64,
    /// 5th percentile.
    pub p5: f64,
    /// 25th percentile (lower quartile).
    pub p25: f64,
    /// Median.
    pub p50: f64,
    /// 75th percentile (upper quartile).
    pub p75: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// One histogram bin: `[lower, upper)`, the last one closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct HistogramBin {
    /// Lower edge.
    pub lower: f64,
    /// Upper edge.
    pub upper: f64,
    /// Non-null values in the bin.
    pub count: u64,
}

/// Figures of a numeric column, over its non-null values (NaN counts as null).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct NumericStats {
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (n - 1 in the denominator, as pandas' `std()`); 0 for one value.
    pub std: f64,
    /// Percentiles, linearly interpolated between the closest ranks (pandas' default).
    pub percentiles: Percentiles,
    /// Equal-width bins from `min` to `max` (20 unless all values are equal: then one).
    pub histogram: Vec<HistogramBin>,
}

/// One frequent value and how often it occurs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ValueCount {
    /// The value as text (`"true"`/`"false"` for booleans).
    pub value: String,
    /// Rows holding it.
    pub count: u64,
    /// `count` over the column's non-null values.
    pub share: f64,
}

/// The most frequent values of a string or boolean column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TopValues {
    /// Up to 10 values, most frequent first (ties: smallest value first).
    pub values: Vec<ValueCount>,
    /// Non-null rows holding any other value.
    pub other_count: u64,
    /// `other_count` over the column's non-null values.
    pub other_share: f64,
}

/// Figures of a timestamp column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TimestampStats {
    /// Oldest value, RFC 3339.
    pub min: String,
    /// Newest value, RFC 3339.
    pub max: String,
    /// Seconds from `max` to the moment of the answer (filled when served, not stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_age_seconds: Option<f64>,
}

/// The statistics of one column in one version of a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ColumnStats {
    /// Column name.
    pub name: String,
    /// Logical type, as in the table's schema (`int64`, `float64`, `string`, ...).
    pub dtype: String,
    /// Which figures apply.
    pub kind: ColumnKind,
    /// Rows (null or not).
    pub rows: u64,
    /// Null rows.
    pub null_count: u64,
    /// `null_count / rows` (0 for an empty table).
    pub null_rate: f64,
    /// Distinct non-null values: exact up to a bound, estimated above it (see `approximate`).
    pub distinct: u64,
    /// Numeric figures (numeric columns with at least one value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numeric: Option<NumericStats>,
    /// Frequent values (string and boolean columns).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_values: Option<TopValues>,
    /// Range (timestamp columns with at least one value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamps: Option<TimestampStats>,
    /// The figures of this column that are estimates, by name: any of `distinct`,
    /// `percentiles`, `histogram`, `top_values`. Empty when every figure is exact.
    pub approximate: Vec<String>,
}

/// How one column moved between two versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ColumnDrift {
    /// Column name.
    pub name: String,
    /// `compared`, or `added` / `removed` when the column is in only one version, or
    /// `incomparable` when its kind changed.
    pub status: DriftStatus,
    /// Population stability index of `to` against `from`: over `from`'s histogram bins for
    /// numbers, over the value shares (the frequent values and "other") for strings and
    /// booleans. `None` when not compared or not applicable (timestamps, other kinds).
    pub psi: Option<f64>,
    /// True when `psi` is at or over the threshold.
    pub over_threshold: bool,
    /// Null rate in `from`.
    pub null_rate_from: Option<f64>,
    /// Null rate in `to`.
    pub null_rate_to: Option<f64>,
    /// `null_rate_to - null_rate_from`.
    pub null_rate_change: Option<f64>,
    /// Mean in `from` (numeric columns).
    pub mean_from: Option<f64>,
    /// Mean in `to` (numeric columns).
    pub mean_to: Option<f64>,
    /// `mean_to - mean_from`.
    pub mean_change: Option<f64>,
}

/// Whether a column could be compared between two versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DriftStatus {
    /// In both versions, same kind.
    Compared,
    /// Only in `to`.
    Added,
    /// Only in `from`.
    Removed,
    /// In both, but of different kinds.
    Incomparable,
}
