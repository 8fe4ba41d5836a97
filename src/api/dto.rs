//! Request and response bodies as clients see them, documented for the OpenAPI spec.
//!
//! Record arrays (`data`, batch `features`) are written by [`super::records`] straight into
//! the response; the types here still describe them so the spec is complete.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::store::RecordColumns;

/// `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    /// `healthy`, or `degraded` when the data root is not writable or a table file is
    /// unreadable (the answer is still a 200: every other table is served).
    #[schema(example = "healthy")]
    pub status: String,
    /// Server version.
    #[schema(example = "0.1.0")]
    pub version: String,
    /// Seconds since the server started.
    #[schema(example = 12.5)]
    pub uptime_seconds: f64,
    /// Whether new tables can be written.
    pub data_root_writable: bool,
    /// Tables being served.
    #[schema(example = 3)]
    pub table_count: usize,
    /// Whether the disk cache tier is in use.
    pub disk_cache_enabled: bool,
    /// Why the disk cache tier is off (another process holds its lock, its files are
    /// damaged, or it is configured off); null when it is on.
    pub disk_cache_disabled_reason: Option<String>,
    /// Time of this answer (RFC 3339, UTC).
    #[schema(example = "2026-11-21T10:00:00Z")]
    pub timestamp: String,
    /// Table files that cannot be opened (damaged, truncated, not Parquet); empty when all
    /// are readable. Reads of these tables answer 500 `table_unreadable` naming the file.
    pub tables_unreadable: Vec<UnreadableTableDto>,
}

/// A table file `/health` reports as unreadable.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"group": "user", "name": "user_profile",
    "file": "features/user/user_profile.parquet",
    "error": "Parquet error on feature_store/features/user/user_profile.parquet: Parquet error: Invalid Parquet file. Corrupt footer"}))]
pub struct UnreadableTableDto {
    /// Its group.
    pub group: String,
    /// Its name.
    pub name: String,
    /// The file, relative to the data root.
    pub file: String,
    /// Why it cannot be opened.
    pub error: String,
}

/// One table in the listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct TableSummaryDto {
    /// Table name.
    #[schema(example = "user_profile")]
    pub name: String,
    /// Rows.
    #[schema(example = 300000)]
    pub rows: u64,
    /// Columns.
    #[schema(example = 7)]
    pub columns: usize,
    /// File size in bytes.
    pub file_size_bytes: u64,
    /// File size in MiB.
    #[schema(example = 3.2)]
    pub file_size_mb: f64,
    /// Version (bumped on every write).
    #[schema(example = 1)]
    pub version: u64,
}

/// `GET /features`: every table by group.
#[derive(Debug, Serialize, ToSchema)]
pub struct TableListResponse {
    /// Group name → its tables, sorted by name.
    pub groups: BTreeMap<String, Vec<TableSummaryDto>>,
    /// Tables in all groups.
    #[schema(example = 3)]
    pub table_count: usize,
}

/// Page metadata of `GET /features/{group}/{name}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PageMetadata {
    /// Rows in the whole table.
    #[schema(example = 300000)]
    pub total_rows: u64,
    /// Rows in this page.
    #[schema(example = 2)]
    pub returned_rows: u64,
    /// First row of this page.
    #[schema(example = 0)]
    pub offset: u64,
    /// Page size asked for.
    #[schema(example = 2)]
    pub limit: u64,
    /// Offset of the next page, or null at the end of the table.
    #[schema(example = 2)]
    pub next_offset: Option<u64>,
    /// Returned columns, in order.
    pub columns: Vec<String>,
    /// Column → type as served (`int64`, `float64`, `string`, `bool`, `timestamp[us, UTC]`).
    #[schema(value_type = BTreeMap<String, String>, example = json!({"user_id": "int64", "avg_rating": "float64"}))]
    pub dtypes: OrderedMap,
    /// Version the page was read from.
    #[schema(example = 1)]
    pub version: u64,
}

/// A string map serialized in insertion order (column order), unlike `BTreeMap`.
#[derive(Debug, Default, Clone)]
pub struct OrderedMap(pub Vec<(String, String)>);

impl Serialize for OrderedMap {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// The schema of one record (a row) in request and response bodies: a JSON object whose
/// values are scalars. Documentation only; records are read into [`RecordColumns`] and
/// written by [`super::records`].
pub struct Record;

impl utoipa::PartialSchema for Record {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
        let scalar = ObjectBuilder::new().schema_type(SchemaType::from_iter([
            Type::Integer,
            Type::Number,
            Type::String,
            Type::Boolean,
            Type::Null,
        ]));
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "One record: column name → value. Values are scalars: integers, numbers, \
                 strings (timestamps as RFC 3339), booleans or null.",
            ))
            .additional_properties(Some(scalar))
            .examples([serde_json::json!({
                "user_id": 1, "age": 34, "avg_rating": 4.2, "favorite_genre": "Drama",
                "event_timestamp": "2026-11-20T10:00:00Z"
            })])
            .into()
    }
}

impl ToSchema for Record {}

/// One feature value: an integer, number, string (timestamps as RFC 3339), boolean or null.
/// Documentation only, like [`Record`]: values are written straight into the response.
pub struct Scalar;

impl utoipa::PartialSchema for Scalar {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([
                Type::Integer,
                Type::Number,
                Type::String,
                Type::Boolean,
                Type::Null,
            ]))
            .description(Some(
                "A feature value: integer, number, string, boolean or null.",
            ))
            .into()
    }
}

impl ToSchema for Scalar {}

/// `GET /features/{group}/{name}`: a page of records.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "feature_group": "user",
    "feature_name": "user_profile",
    "data": [
        {"user_id": 1, "age": 34, "avg_rating": 3.9, "favorite_genre": "Drama", "event_timestamp": "2026-11-19T08:12:00Z"},
        {"user_id": 1, "age": 34, "avg_rating": 4.0, "favorite_genre": "Drama", "event_timestamp": "2026-10-02T17:40:00Z"}
    ],
    "metadata": {"total_rows": 300000, "returned_rows": 2, "offset": 0, "limit": 2, "next_offset": 2,
        "columns": ["user_id", "age", "avg_rating", "favorite_genre", "event_timestamp"],
        "dtypes": {"user_id": "int64", "age": "int64", "avg_rating": "float64", "favorite_genre": "string", "event_timestamp": "timestamp[us, UTC]"},
        "version": 1}
}))]
pub struct FeaturePageResponse {
    /// The table's group.
    pub feature_group: String,
    /// The table.
    pub feature_name: String,
    /// The rows, one object per record; NaN and infinities are null.
    #[schema(value_type = Vec<Record>)]
    pub data: Vec<serde_json::Value>,
    /// Paging and type information.
    pub metadata: PageMetadata,
}

/// `POST /features/{group}/{name}`: the records that replace the table.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "records": [
        {"user_id": 1, "age": 34, "avg_rating": 4.2, "event_timestamp": "2026-11-20T10:00:00Z"},
        {"user_id": 2, "age": 27, "avg_rating": 3.1, "event_timestamp": "2026-11-20T10:00:00Z"}
    ],
    "entity_key": ["user_id"],
    "timestamp_field": "event_timestamp"
}))]
pub struct SaveFeaturesRequest {
    /// The rows: JSON objects of scalars (integers, numbers, strings, booleans, null). A key
    /// missing from a record is null there.
    #[schema(value_type = Vec<Record>)]
    pub records: RecordColumns,
    /// Entity key columns. Default: the previous declaration, else `entity_id` if present.
    #[serde(default)]
    pub entity_key: Option<Vec<String>>,
    /// The event timestamp column, whose values must be RFC 3339 strings. Default: the
    /// previous declaration, else `event_timestamp` if present.
    #[serde(default)]
    pub timestamp_field: Option<String>,
}

/// Answer to a save.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "message": "table user/user_profile created with 2 rows",
    "file_path": "features/user/user_profile.parquet",
    "rows_saved": 2, "version": 1, "entity_key": ["user_id"], "timestamp_field": "event_timestamp"
}))]
pub struct SaveFeaturesResponse {
    /// What happened.
    pub message: String,
    /// The file, relative to the data root.
    pub file_path: String,
    /// Rows written.
    pub rows_saved: u64,
    /// The table's new version.
    pub version: u64,
    /// Entity key columns in effect.
    pub entity_key: Vec<String>,
    /// Timestamp field in effect.
    pub timestamp_field: Option<String>,
}

/// Answer to a delete.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeleteResponse {
    /// What happened.
    #[schema(example = "table user/user_profile deleted")]
    pub message: String,
    /// The version the table had.
    #[schema(example = 3)]
    pub deleted_version: u64,
}

/// One column's types.
#[derive(Debug, Serialize, ToSchema)]
pub struct ColumnStorageInfo {
    /// Column name.
    #[schema(example = "age")]
    pub name: String,
    /// Type values are served as.
    #[schema(example = "int64")]
    pub logical_type: String,
    /// Type in the Parquet file after downcasting.
    #[schema(example = "int8")]
    pub stored_type: String,
}

/// Storage facts of a table.
#[derive(Debug, Serialize, ToSchema)]
pub struct StorageInfo {
    /// Group.
    pub feature_group: String,
    /// Table.
    pub feature_name: String,
    /// Always true (a missing table is a 404).
    pub exists: bool,
    /// File, relative to the data root.
    pub file_path: String,
    /// File size in bytes.
    pub file_size_bytes: u64,
    /// File size in MiB.
    pub file_size_mb: f64,
    /// Rows.
    pub row_count: u64,
    /// Columns.
    pub column_count: usize,
    /// Parquet row groups.
    pub row_group_count: usize,
    /// Logical and stored type per column.
    pub columns: Vec<ColumnStorageInfo>,
    /// Size of the data as in-memory Arrow arrays with logical types.
    pub in_memory_bytes: u64,
    /// File size / in-memory size (lower is better).
    #[schema(example = 0.21)]
    pub compression_ratio: f64,
    /// Compression codec.
    #[schema(example = "snappy")]
    pub compression: String,
    /// Last modification (RFC 3339, UTC).
    pub modified: String,
    /// Version.
    pub version: u64,
    /// Entity key columns.
    pub entity_key: Vec<String>,
    /// Timestamp field.
    pub timestamp_field: Option<String>,
}

/// `GET /features/{group}/{name}/info`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StorageInfoResponse {
    /// The facts.
    pub storage_info: StorageInfo,
}

/// An entity id: a number or a string; `42` and `"42"` match the same integer key.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EntityIdDto {
    /// Integer id.
    Int(i64),
    /// String id.
    Str(String),
}

/// `POST /features/batch`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"feature_names": ["user_profile", "user_movie_interactions"], "entity_ids": [1, "2"]}))]
pub struct BatchRequest {
    /// Tables to read; each is found in whatever group it is in.
    pub feature_names: Vec<String>,
    /// Keep only rows whose entity key is one of these. Omitted: every row (up to
    /// `api.max_batch_rows`). Empty: no rows.
    #[serde(default)]
    pub entity_ids: Option<Vec<EntityIdDto>>,
    /// RFC 3339 instant: return, per entity, the latest row at or before it.
    #[serde(default)]
    pub timestamp: Option<String>,
}

/// Metadata of a batch answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchMetadata {
    /// When the request was answered (RFC 3339, UTC).
    pub request_timestamp: String,
    /// Tables returned.
    pub feature_count: usize,
    /// Table → its entity key column (several columns joined by ","), or null when it has
    /// none.
    #[schema(value_type = BTreeMap<String, Option<String>>)]
    pub entity_key: BTreeMap<String, Option<String>>,
}

/// Answer to a batch lookup.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "features": {"user_profile": [{"user_id": 1, "age": 34, "avg_rating": 4.2, "event_timestamp": "2026-11-20T10:00:00Z"}]},
    "metadata": {"request_timestamp": "2026-11-21T10:00:00Z", "feature_count": 1, "entity_key": {"user_profile": "user_id"}},
    "timestamp": null
}))]
pub struct BatchResponse {
    /// Table → its rows.
    #[schema(value_type = BTreeMap<String, Vec<Record>>)]
    pub features: BTreeMap<String, Vec<serde_json::Value>>,
    /// Request facts.
    pub metadata: BatchMetadata,
    /// The `timestamp` of the request, normalised to UTC, or null.
    pub timestamp: Option<String>,
}
