//! The JSON that `feast registry-dump` prints (Feast's registry protobufs as proto3 JSON:
//! camelCase names, default values left out), read leniently: Feast adds fields from release
//! to release, and only the ones the mapping needs are named here. A field proto3 JSON leaves
//! out (a zero TTL, an unset value type) reads as its default.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole dump.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dump {
    /// The Feast project.
    pub project: String,
    /// Entities.
    #[serde(default)]
    pub entities: Vec<Object<EntitySpec>>,
    /// Batch (and push-fed) feature views.
    #[serde(default)]
    pub feature_views: Vec<Object<ViewSpec>>,
    /// Stream feature views (Kafka, Kinesis): listed as not mappable.
    #[serde(default)]
    pub stream_feature_views: Vec<Object<ViewSpec>>,
    /// On-demand feature views: listed as not mappable.
    #[serde(default)]
    pub on_demand_feature_views: Vec<Object<NamedSpec>>,
    /// Feature services.
    #[serde(default)]
    pub feature_services: Vec<Object<ServiceSpec>>,
}

/// Every registry object is `{"meta": {...}, "spec": {...}}`; only the spec matters here.
#[derive(Debug, Deserialize)]
pub struct Object<T> {
    /// The definition.
    pub spec: T,
}

/// An object of which only the name is read.
#[derive(Debug, Deserialize)]
pub struct NamedSpec {
    /// Its name.
    pub name: String,
}

/// An entity.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EntitySpec {
    /// Entity name.
    pub name: String,
    /// The column holding it.
    #[serde(default)]
    pub join_key: Option<String>,
    /// Feast's `ValueType` name (`INT64`, `STRING`, ...); absent when unset.
    #[serde(default)]
    pub value_type: Option<String>,
    /// What it is.
    #[serde(default)]
    pub description: String,
    /// Free-form labels.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Who owns it.
    #[serde(default)]
    pub owner: String,
}

/// A column of a view's schema, or of a projection.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Column {
    /// Column name.
    pub name: String,
    /// Feast's `ValueType` name; absent when unset.
    #[serde(default)]
    pub value_type: Option<String>,
}

/// A feature view (batch or stream).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ViewSpec {
    /// View name.
    pub name: String,
    /// Entity names.
    #[serde(default)]
    pub entities: Vec<String>,
    /// Features.
    #[serde(default)]
    pub features: Vec<Column>,
    /// A protobuf `Duration` (`"86400s"`, `"1.5s"`); absent or zero means forever.
    #[serde(default)]
    pub ttl: Option<String>,
    /// Where its rows come from offline.
    #[serde(default)]
    pub batch_source: Option<Source>,
    /// A push or stream source feeding it, if any.
    #[serde(default)]
    pub stream_source: Option<Source>,
    /// What it holds.
    #[serde(default)]
    pub description: String,
    /// Free-form labels.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Who owns it.
    #[serde(default)]
    pub owner: String,
    /// False for a view Feast serves offline only; absent is false in proto3 JSON.
    #[serde(default)]
    pub online: bool,
}

/// A data source.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    /// Source name.
    #[serde(default)]
    pub name: String,
    /// `BATCH_FILE`, `BATCH_BIGQUERY`, `PUSH_SOURCE`, `STREAM_KAFKA`, ...
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Set on file sources.
    #[serde(default)]
    pub file_options: Option<FileOptions>,
    /// The event-time column.
    #[serde(default)]
    pub timestamp_field: String,
    /// The created-time column; empty when none.
    #[serde(default)]
    pub created_timestamp_column: String,
    /// Column renames from the source's names to the view's.
    #[serde(default)]
    pub field_mapping: BTreeMap<String, String>,
}

/// Where a file source's data is.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileOptions {
    /// A path (relative to the Feast repository) or a URL (`s3://`, `gs://`, ...).
    #[serde(default)]
    pub uri: String,
    /// Set for formats other than Parquet (Delta); absent for Parquet.
    #[serde(default)]
    pub file_format: Option<serde_json::Value>,
}

/// A feature service.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Service name.
    pub name: String,
    /// One projection per view it reads.
    #[serde(default)]
    pub features: Vec<Projection>,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// Free-form labels.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Who owns it.
    #[serde(default)]
    pub owner: String,
}

/// The features a service takes from one view.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Projection {
    /// The view.
    pub feature_view_name: String,
    /// A name the service gives the view (`view.with_name(...)`); empty when none.
    #[serde(default)]
    pub feature_view_name_alias: String,
    /// The features taken, in order.
    #[serde(default)]
    pub feature_columns: Vec<Column>,
    /// Join keys renamed for this service (`view.with_join_key_map(...)`).
    #[serde(default)]
    pub join_key_map: BTreeMap<String, String>,
}
