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
    /// `healthy`, or `degraded` when the data root is not writable, a table file is
    /// unreadable, a table name is in two groups, the object store is unreachable, the
    /// Redis online tier is, or the background checks are stale (the answer is still a 200:
    /// every other table, every cached read and every lookup from the local index is served).
    #[schema(example = "healthy")]
    pub status: String,
    /// Where the tables live: `local` (files under the data root) or `s3` (a bucket).
    #[schema(example = "local")]
    pub backend: String,
    /// The bucket holding the tables, with the s3 backend; null with the local one.
    #[schema(example = json!(null))]
    pub bucket: Option<String>,
    /// The key prefix inside the bucket (empty for its root), with the s3 backend; null with
    /// the local one.
    #[schema(example = json!(null))]
    pub prefix: Option<String>,
    /// Why the object store is considered unreachable (s3 backend), while it is: uncached
    /// reads and writes answer 503 `storage_unavailable` meanwhile. Null when it answers, and
    /// with the local backend. Cleared by the next call that succeeds.
    #[schema(example = json!(null))]
    pub storage_unavailable_reason: Option<String>,
    /// Where rows pushed online and materialized rows live: `local` (this process) or
    /// `redis` (shared by every replica).
    #[schema(example = "local")]
    pub online_backend: String,
    /// Why the Redis online tier is considered unavailable, while it is: lookups answer from
    /// this replica's index of the tables (the best it knows, without rows pushed online
    /// through other replicas), and pushes online answer 503 `online_store_unavailable`.
    /// Null when it answers, and with the local online tier.
    #[schema(example = json!(null))]
    pub online_store_unavailable_reason: Option<String>,
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
    /// When the last round of background checks (data root writability, unreadable and
    /// duplicated table files, Redis) finished (RFC 3339, UTC, milliseconds);
    /// `data_root_writable`, `tables_unreadable` and `tables_duplicated` are its findings.
    /// Null before the first round, which runs before the server accepts requests.
    #[schema(example = "2026-11-21T09:59:57.412Z")]
    pub checked_at: Option<String>,
    /// Seconds since `checked_at`.
    #[schema(example = 2.588)]
    pub check_age_seconds: Option<f64>,
    /// Seconds between rounds of background checks (`health.check_interval_seconds`).
    #[schema(example = 10)]
    pub check_interval_seconds: u64,
    /// Why the background checks' result is not trusted, when it is not: no round has
    /// finished, or the last one is older than 3 intervals (and 5 s), as behind a checker
    /// stuck on a hung file system; `status` is then `degraded`. Null while they are fresh.
    #[schema(example = json!(null))]
    pub checks_stale_reason: Option<String>,
    /// Table files that cannot be opened (damaged, truncated, not Parquet); empty when all
    /// are readable. Reads of these tables answer 500 `table_unreadable` naming the file.
    pub tables_unreadable: Vec<UnreadableTableDto>,
    /// Table names found in two or more groups (another tool wrote a second file); empty
    /// when none. The file listed as `served` is served; reads or writes naming an ignored
    /// file's location answer 409 `duplicate_table` naming both files, until one is removed
    /// or renamed.
    pub tables_duplicated: Vec<DuplicateTableDto>,
    /// The change bus through Redis (`online.backend = "redis"`), over which replicas tell
    /// each other what they changed; null without Redis. While it is disconnected, other
    /// replicas' changes are seen at the next poll of the bucket instead of at once.
    pub change_bus: Option<ChangeBusDto>,
}

/// The change bus as `/health` reports it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ChangeBus, example = json!({"connected": true, "reason": null,
    "replica_id": "5f0c1a9e3b7d2c41", "since": "2026-11-21T10:00:00Z"}))]
pub struct ChangeBusDto {
    /// Whether this replica is subscribed: other replicas' changes are applied at once.
    pub connected: bool,
    /// Why it is not subscribed (Redis unreachable, the connection lost), while it is not;
    /// it reconnects by itself, then re-checks what it missed.
    pub reason: Option<String>,
    /// This replica's id on the bus, random at each start.
    pub replica_id: String,
    /// Since when it is connected, or disconnected (RFC 3339, UTC).
    pub since: String,
}

/// A table name `/health` reports in more than one group.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = DuplicateTable, example = json!({"name": "user_profile",
    "served": "features/user/user_profile.parquet",
    "ignored": ["features/misc/user_profile.parquet"]}))]
pub struct DuplicateTableDto {
    /// The table name.
    pub name: String,
    /// The file served, relative to the data root.
    pub served: String,
    /// The other files of that name, not served.
    pub ignored: Vec<String>,
}

/// A table file `/health` reports as unreadable.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = UnreadableTable, example = json!({"group": "user", "name": "user_profile",
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
#[schema(as = TableSummary)]
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
// A scratch table, so executing the example (Swagger's "Try it out") replaces no demo table;
// it registers the scratch entity `example_id` and view `example_table`, which the registry's
// delete examples then remove.
#[schema(example = json!({
    "records": [
        {"example_id": 1, "score": 0.5, "label": "a", "event_timestamp": "2026-01-01T00:00:00Z"},
        {"example_id": 2, "score": 0.75, "label": "b", "event_timestamp": "2026-01-01T00:00:00Z"}
    ],
    "entity_key": ["example_id"],
    "ttl_seconds": 86400
}))]
pub struct SaveFeaturesRequest {
    /// The rows: JSON objects of scalars (integers, numbers, strings, booleans, null). A key
    /// missing from a record is null there.
    #[schema(value_type = Vec<Record>)]
    pub records: RecordColumns,
    /// Entity key columns. Default: the previous declaration, else `entity_id` if present,
    /// else the columns that are join keys of registered entities (several: a composite key,
    /// in column order).
    #[serde(default)]
    pub entity_key: Option<Vec<String>>,
    /// The event timestamp column, whose values must be RFC 3339 strings. Default: the
    /// previous declaration, else `event_timestamp` if present.
    #[serde(default)]
    pub timestamp_field: Option<String>,
    /// TTL in seconds of the feature view the save registers (or registered before); values
    /// older than this are served as expired. Default: the view's, else none (forever).
    #[serde(default)]
    #[schema(example = 604800)]
    pub ttl_seconds: Option<u64>,
    /// A column of RFC 3339 strings stored as timestamps and used by the view as its created
    /// (ingestion) timestamp, to break ties between rows of the same event time.
    #[serde(default)]
    pub created_timestamp_field: Option<String>,
}

/// Answer to a save.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "message": "table user/user_profile created with 2 rows",
    "file_path": "features/user/user_profile.parquet",
    "rows_saved": 2, "version": 1, "entity_key": ["user_id"], "timestamp_field": "event_timestamp",
    "entity_key_source": "declared",
    "registry": {"status": "registered", "feature_view": "user_profile",
                 "message": "registered feature view user_profile (entities user_id, timestamp event_timestamp, features age, avg_rating)",
                 "entities_registered": [], "mismatches": [], "broken_feature_services": []}
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
    /// Where the entity key came from: `declared`, `previous` (the table's earlier
    /// declaration), `entity_id` (the column of that name), `registered_entities` (the columns
    /// that are join keys of registered entities) or `none`.
    #[schema(example = "declared")]
    pub entity_key_source: String,
    /// What the save did to the table's feature view.
    pub registry: super::registry::ViewSyncDto,
}

/// Answer to a delete.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeleteResponse {
    /// What happened.
    #[schema(example = "table misc/example_table deleted")]
    pub message: String,
    /// The version the table had.
    #[schema(example = 3)]
    pub deleted_version: u64,
    /// Registered feature views over the table, kept registered (they serve again if the
    /// table is written again; unregister with `DELETE /registry/feature-views/{name}`).
    #[schema(example = json!(["user_profile"]))]
    pub feature_views: Vec<String>,
    /// Feature services that use those views.
    #[schema(example = json!(["movie_recommendation_service"]))]
    pub feature_services: Vec<String>,
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
    /// Bytes kept only for the table's versions other than the current one (replaced files,
    /// pushed parts a fold has not re-pointed, the version log); see `GET .../versions`.
    #[schema(example = 5242880)]
    pub history_bytes: u64,
}

/// `GET /features/{group}/{name}/info`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StorageInfoResponse {
    /// The facts.
    pub storage_info: StorageInfo,
}

// Documentation only: ids are read by hand so that a bad one is reported by position.
/// An entity id: a number or a string; `42` and `"42"` match the same integer key (a string
/// matches an integer key only in canonical decimal form: `"01"` and `" 1"` match nothing).
// The schema must say what the wire carries: a bare number or string, not a tagged object.
#[derive(Debug, Clone, ToSchema)]
#[serde(untagged)]
#[schema(as = EntityId)]
pub enum EntityIdDto {
    /// Integer id.
    Int(i64),
    /// String id.
    Str(String),
}

/// One of a batch lookup's `entity_ids`: an id (for tables keyed by one column), or an entity
/// row naming key columns (`{"user_id": 1, "movie_id": 10}`), which filters every table
/// whose key columns it names, composite keys included; members a table is not keyed by are
/// ignored.
// Documentation only, like `EntityIdDto`.
#[derive(Debug, Clone, ToSchema)]
#[serde(untagged)]
#[schema(as = BatchEntityId)]
pub enum BatchEntityIdDto {
    /// Integer id.
    Int(i64),
    /// String id.
    Str(String),
    /// Entity row: key column → id.
    Row(BTreeMap<String, EntityIdDto>),
}

/// `POST /features/batch`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
// Succeeds on the demo data: entity rows filter the composite-keyed interactions and, by
// their `user_id`, the profiles.
#[schema(example = json!({"feature_names": ["user_profile", "user_movie_interactions"],
    "entity_ids": [{"user_id": 1, "movie_id": 1}, {"user_id": 2, "movie_id": 3}]}))]
pub struct BatchRequest {
    /// Tables to read; each is found in whatever group it is in.
    pub feature_names: Vec<String>,
    /// Keep only rows whose entity key is one of these: ids (integers or strings) for tables
    /// keyed by one column, or entity rows as objects (required for composite keys).
    /// Omitted: every row (up to `api.max_batch_rows`). Empty: no rows.
    #[serde(default)]
    #[schema(value_type = Option<Vec<BatchEntityIdDto>>)]
    pub entity_ids: Option<Vec<serde_json::Value>>,
    /// RFC 3339 instant: return, per entity, the latest row at or before it.
    #[serde(default)]
    pub timestamp: Option<String>,
    /// Table → the version to read it at (see `GET /features/{group}/{name}/versions`);
    /// each must be one of `feature_names`. Wins over `as_of` for the tables it names.
    #[serde(default)]
    #[schema(example = json!({"user_profile": 7}))]
    pub table_versions: Option<BTreeMap<String, u64>>,
    /// RFC 3339 instant: read every table (not in `table_versions`) at the version that was
    /// current then. Unlike `timestamp`, which picks rows by their event time within one
    /// version, this picks the version.
    #[serde(default)]
    #[schema(example = "2026-12-01T00:00:00Z")]
    pub as_of: Option<String>,
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
    /// Table → the version its rows were read from.
    #[schema(example = json!({"user_profile": 7}))]
    pub table_versions: BTreeMap<String, u64>,
}

/// Answer to a batch lookup.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "features": {"user_profile": [{"user_id": 1, "age": 34, "avg_rating": 4.2, "event_timestamp": "2026-11-20T10:00:00Z"}]},
    "metadata": {"request_timestamp": "2026-11-21T10:00:00Z", "feature_count": 1, "entity_key": {"user_profile": "user_id"}, "table_versions": {"user_profile": 7}},
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
