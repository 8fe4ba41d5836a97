//! The table routes: listing, pages, save, info, delete and batch lookup.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpResponse, web};
use chrono::{SecondsFormat, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

use super::dto::{
    BatchRequest, ColumnStorageInfo, DeleteResponse, OrderedMap, SaveFeaturesRequest,
    SaveFeaturesResponse, StorageInfo, StorageInfoResponse, TableListResponse, TableSummaryDto,
};
use super::error::ApiError;
use super::query::{KnownParams, StrictQuery};
use super::records::{JsonObject, write_records};
use super::{AppState, mib};
use crate::model::{GroupName, TableName};
use crate::store::{
    BatchQuery, Declaration, EntityId, Page, PageRequest, VersionSelector, ViewOptions, dtype_name,
    parse_timestamp_micros,
};

/// Query parameters of `GET /features/{group}/{name}`. Taken as strings so that a bad value
/// is reported naming the parameter instead of as a generic parse failure.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Comma-separated columns to return, in this order. Default: all, in table order.
    #[param(example = "user_id,avg_rating")]
    columns: Option<String>,
    /// Rows to return (0 returns only metadata). Default `api.default_page_limit` (1000),
    /// at most `api.max_page_limit` (10000).
    #[param(value_type = Option<u64>, minimum = 0, example = 100)]
    limit: Option<String>,
    /// First row to return (0-based). Default 0.
    #[param(value_type = Option<u64>, minimum = 0, example = 0)]
    offset: Option<String>,
    /// Read this version of the table (see `GET .../versions`). Not with `as_of`.
    #[param(value_type = Option<u64>, minimum = 1, example = 1)]
    version: Option<String>,
    /// Read the version that was current at this instant, RFC 3339 (such as
    /// `2026-12-01T00:00:00Z`). Not with `version`.
    #[param(value_type = Option<String>)]
    as_of: Option<String>,
}

impl KnownParams for PageQuery {
    const NAMES: &'static [&'static str] = &["columns", "limit", "offset", "version", "as_of"];
}

/// A `limit` / `offset` query value (absent: `default`); shared by every paged route.
pub(super) fn parse_count(
    parameter: &str,
    value: Option<&str>,
    default: u64,
) -> Result<u64, ApiError> {
    match value {
        None => Ok(default),
        Some(text) => text
            .trim()
            .parse::<u64>()
            .map_err(|_| ApiError::InvalidParameter {
                parameter: parameter.to_owned(),
                message: format!("must be a non-negative integer, got {text:?}"),
            }),
    }
}

impl PageQuery {
    fn into_request(
        self,
        default_limit: u64,
        max_limit: u64,
    ) -> Result<(PageRequest, VersionSelector), ApiError> {
        let at = super::versions::selector(self.version.as_deref(), self.as_of.as_deref())?;
        let limit = parse_count("limit", self.limit.as_deref(), default_limit)?;
        if limit > max_limit {
            return Err(ApiError::InvalidParameter {
                parameter: "limit".into(),
                message: format!("must be at most {max_limit} (api.max_page_limit), got {limit}"),
            });
        }
        let offset = parse_count("offset", self.offset.as_deref(), 0)?;
        let columns = match self.columns {
            None => None,
            Some(text) => {
                let names: Vec<String> = text
                    .split(',')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect();
                if names.is_empty() {
                    return Err(ApiError::InvalidParameter {
                        parameter: "columns".into(),
                        message: "must name at least one column".into(),
                    });
                }
                if let Some(dup) = names
                    .iter()
                    .enumerate()
                    .find(|(i, n)| names[..*i].contains(n))
                {
                    return Err(ApiError::InvalidParameter {
                        parameter: "columns".into(),
                        message: format!("names column {:?} twice", dup.1),
                    });
                }
                Some(names)
            }
        };
        let request = PageRequest {
            columns,
            offset,
            limit,
        };
        Ok((request, at))
    }
}

/// Parses the `{group}/{name}` path segments.
pub fn table_path(path: (String, String)) -> Result<(GroupName, TableName), ApiError> {
    let group = path.0.parse().map_err(|source| ApiError::InvalidName {
        field: "group".into(),
        source,
    })?;
    let name = path.1.parse().map_err(|source| ApiError::InvalidName {
        field: "name".into(),
        source,
    })?;
    Ok((group, name))
}

fn json_bytes(status: StatusCode, body: Vec<u8>) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((CONTENT_TYPE, "application/json"))
        .body(body)
}

/// List every table by group.
#[utoipa::path(
    get, path = "/features", tag = "features",
    responses(
        (status = 200, description = "Every table, by group", body = TableListResponse),
        (status = 500, description = "Internal error", body = super::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_tables(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let tables = state.store.list().await?;
    let mut groups: BTreeMap<String, Vec<TableSummaryDto>> = BTreeMap::new();
    let table_count = tables.len();
    for t in tables {
        groups.entry(t.group).or_default().push(TableSummaryDto {
            name: t.name,
            rows: t.rows,
            columns: t.columns,
            file_size_bytes: t.file_size_bytes,
            file_size_mb: mib(t.file_size_bytes),
            version: t.version,
        });
    }
    Ok(HttpResponse::Ok().json(TableListResponse {
        groups,
        table_count,
    }))
}

/// Read a page of a table, of its current version or of an earlier one.
///
/// Only the row groups and pages that hold the requested rows are decoded, so a page deep
/// into a large table costs about as much as the first one. With `version` or `as_of`, the
/// page is read from that version while it is retained (a deleted table's versions too);
/// `metadata.version` always says which version was read.
#[utoipa::path(
    get, path = "/features/{group}/{name}", tag = "features",
    params(
        ("group" = String, Path, description = "Feature group", example = "user"),
        ("name" = String, Path, description = "Table name", example = "user_profile"),
        PageQuery,
    ),
    responses(
        (status = 200, description = "A page of records", body = super::dto::FeaturePageResponse),
        (status = 400, description = "Invalid name, parameter or column, a query parameter the route does not take, or both `version` and `as_of` (`invalid_name`, `invalid_parameter`, `unknown_column`, `unknown_query_parameter`, `conflicting_parameters`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such table in this group, or no such version: never written, the table's deletion, or before the table existed at `as_of` (`table_not_found`, `table_version_not_found`); the detail says which versions exist", body = super::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is in two groups on disk and this is the location not served (`duplicate_table`; see `/health`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 410, description = "The version asked for is no longer retained (`table_version_expired`); the detail says which versions are", body = super::Problem, content_type = "application/problem+json"),
        (status = 500, description = "The table or its metadata is unreadable, or an internal failure (`table_unreadable`, `table_metadata_unreadable`, `storage_io_error`, `internal_error`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The table's file is being rewritten in place by another tool; retry (`table_file_changing`). On the s3 kind also when the object store cannot be reached (`storage_unavailable`); retry after `Retry-After` seconds.", body = super::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_page(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: StrictQuery<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (group, name) = table_path(path.into_inner())?;
    let (request, at) = query
        .into_inner()
        .into_request(state.config.default_page_limit, state.config.max_page_limit)?;
    let (offset, limit) = (request.offset, request.limit);
    let page = state
        .store
        .page_at(group.clone(), name.clone(), request, at)
        .await?;
    Ok(json_bytes(
        StatusCode::OK,
        page_body(&group, &name, offset, limit, &page),
    ))
}

fn page_body(group: &GroupName, name: &TableName, offset: u64, limit: u64, page: &Page) -> Vec<u8> {
    let schema = page.batch.schema();
    let returned = page.batch.num_rows() as u64;
    let end = offset + returned;
    let next_offset = (end < page.total_rows && returned > 0).then_some(end);
    let columns: Vec<&String> = schema.fields().iter().map(|f| f.name()).collect();
    let dtypes = OrderedMap(
        schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), dtype_name(f.data_type())))
            .collect(),
    );
    let mut body = JsonObject::with_capacity(256 + page.batch.get_array_memory_size());
    body.field("feature_group", group.as_str())
        .field("feature_name", name.as_str())
        .raw_field("data", |out| write_records(&page.batch, out))
        .raw_field("metadata", |out| {
            let mut meta = JsonObject::with_capacity(256);
            meta.field("total_rows", &page.total_rows)
                .field("returned_rows", &returned)
                .field("offset", &offset)
                .field("limit", &limit)
                .field("next_offset", &next_offset)
                .field("columns", &columns)
                .field("dtypes", &dtypes)
                .field("version", &page.version);
            out.extend_from_slice(&meta.finish());
        });
    body.finish()
}

/// Create or replace a table from JSON records.
///
/// The write is atomic: readers see the previous table or the new one, never a mix, and a
/// failed write leaves the previous table as it was. Column types follow the JSON values and
/// are narrowed on disk (see `/info`).
#[utoipa::path(
    post, path = "/features/{group}/{name}", tag = "features",
    // A scratch table, so "Try it out" on the demo never replaces a demo table.
    params(
        ("group" = String, Path, description = "Feature group", example = "misc"),
        ("name" = String, Path, description = "Table name, unique across groups", example = "example_table"),
    ),
    request_body = SaveFeaturesRequest,
    responses(
        (status = 201, description = "Table created", body = SaveFeaturesResponse),
        (status = 200, description = "Table replaced", body = SaveFeaturesResponse),
        (status = 400, description = "Invalid name or malformed JSON (`invalid_name`, `malformed_json`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is used in another group (`table_name_conflict`), or is in two groups on disk and this is the location not served (`duplicate_table`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over `api.max_body_mb` (`payload_too_large`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json (`unsupported_media_type`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Empty or invalid records, or too many (`invalid_body`, `invalid_records`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 500, description = "The previous table is unreadable, the write failed, or an internal failure (`table_unreadable`, `table_metadata_unreadable`, `storage_io_error`, `internal_error`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The data root is read-only (`data_root_not_writable`). On the s3 kind also when the object store cannot be reached (`storage_unavailable`) or other replicas kept committing to the table first (`storage_contended`); retry after `Retry-After` seconds.", body = super::Problem, content_type = "application/problem+json"),
        (status = 507, description = "The disk is full (`storage_full`)", body = super::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn save_table(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: super::body::BlockingJson<SaveFeaturesRequest>,
) -> Result<HttpResponse, ApiError> {
    let (group, name) = table_path(path.into_inner())?;
    let body = body.into_inner();
    let records = &body.records;
    if records.row_count() == 0 {
        return Err(ApiError::invalid_body_field(
            "records",
            "must contain at least one record",
        ));
    }
    if records.column_count() == 0 {
        return Err(ApiError::invalid_body_field(
            "records",
            "the records have no fields; a table needs at least one column",
        ));
    }
    if records.row_count() > state.config.max_records_per_write {
        return Err(ApiError::invalid_body_field(
            "records",
            format!(
                "{} records is more than api.max_records_per_write ({})",
                records.row_count(),
                state.config.max_records_per_write
            ),
        ));
    }
    if records.column_count() > state.config.max_columns {
        return Err(ApiError::invalid_body_field(
            "records",
            format!(
                "{} columns is more than api.max_columns ({})",
                records.column_count(),
                state.config.max_columns
            ),
        ));
    }
    let declaration = Declaration {
        entity_key: body.entity_key,
        timestamp_field: body.timestamp_field,
        created_timestamp_field: body.created_timestamp_field,
        written_by: super::auth::token_name(&req),
    };
    let view = ViewOptions {
        ttl_seconds: body.ttl_seconds,
    };
    let saved = state
        .store
        .save_records(group.clone(), name.clone(), body.records, declaration, view)
        .await?;
    let outcome = saved.table;
    let (status, verb) = if outcome.created {
        (StatusCode::CREATED, "created")
    } else {
        (StatusCode::OK, "replaced")
    };
    Ok(HttpResponse::build(status).json(SaveFeaturesResponse {
        message: format!("table {group}/{name} {verb} with {} rows", outcome.rows),
        file_path: outcome.relative_path,
        rows_saved: outcome.rows,
        version: outcome.version,
        entity_key: outcome.entity_key,
        timestamp_field: outcome.timestamp_field,
        entity_key_source: saved.entity_key_source.as_str().to_owned(),
        registry: saved.registry.into(),
    }))
}

/// Storage facts of a table: size, rows, logical and stored type per column, compression,
/// and the space its history takes; of the current version, or of the one `version` or
/// `as_of` selects.
#[utoipa::path(
    get, path = "/features/{group}/{name}/info", tag = "features",
    params(
        ("group" = String, Path, description = "Feature group", example = "user"),
        ("name" = String, Path, description = "Table name", example = "user_profile"),
        super::versions::VersionQuery,
    ),
    responses(
        (status = 200, description = "Storage facts", body = StorageInfoResponse),
        (status = 400, description = "Invalid name or parameter, or both `version` and `as_of` (`invalid_name`, `invalid_parameter`, `unknown_query_parameter`, `conflicting_parameters`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such table in this group, or no such version (`table_not_found`, `table_version_not_found`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is in two groups on disk and this is the location not served (`duplicate_table`; see `/health`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 410, description = "The version asked for is no longer retained (`table_version_expired`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 500, description = "The table or its metadata is unreadable, or an internal failure (`table_unreadable`, `table_metadata_unreadable`, `storage_io_error`, `internal_error`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 503, description = "On the s3 kind, when the object store cannot be reached (`storage_unavailable`); retry after `Retry-After` seconds.", body = super::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn table_info(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: StrictQuery<super::versions::VersionQuery>,
) -> Result<HttpResponse, ApiError> {
    let (group, name) = table_path(path.into_inner())?;
    let at = query.into_inner().selector()?;
    let versioned = state.store.info_at(group, name, at).await?;
    let info = versioned.info;
    let ratio = if info.arrow_bytes == 0 {
        0.0
    } else {
        info.file_size_bytes as f64 / info.arrow_bytes as f64
    };
    Ok(HttpResponse::Ok().json(StorageInfoResponse {
        storage_info: StorageInfo {
            feature_group: info.group,
            feature_name: info.name,
            exists: true,
            file_path: info.relative_path,
            file_size_bytes: info.file_size_bytes,
            file_size_mb: mib(info.file_size_bytes),
            row_count: info.row_count,
            column_count: info.columns.len(),
            row_group_count: info.row_group_count,
            columns: info
                .columns
                .into_iter()
                .map(|c| ColumnStorageInfo {
                    name: c.name,
                    logical_type: c.logical_type,
                    stored_type: c.stored_type,
                })
                .collect(),
            in_memory_bytes: info.arrow_bytes,
            compression_ratio: (ratio * 1000.0).round() / 1000.0,
            compression: "snappy".into(),
            modified: info.modified,
            version: info.version,
            entity_key: info.entity_key,
            timestamp_field: info.timestamp_field,
            history_bytes: versioned.history_bytes,
        },
    }))
}

/// Delete a table.
#[utoipa::path(
    delete, path = "/features/{group}/{name}", tag = "features",
    // The scratch table of the save example, so "Try it out" never deletes a demo table.
    params(
        ("group" = String, Path, description = "Feature group", example = "misc"),
        ("name" = String, Path, description = "Table name", example = "example_table"),
    ),
    responses(
        (status = 200, description = "Deleted", body = DeleteResponse),
        (status = 400, description = "Invalid name (`invalid_name`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such table in this group (`table_not_found`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is in two groups on disk and this is the location not served (`duplicate_table`; see `/health`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 500, description = "The file could not be removed, or an internal failure (`storage_io_error`, `table_unreadable`, `table_metadata_unreadable`, `internal_error`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The data root is read-only (`data_root_not_writable`). On the s3 kind also when the object store cannot be reached (`storage_unavailable`) or other replicas kept committing to the table first (`storage_contended`); retry after `Retry-After` seconds.", body = super::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn delete_table(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (group, name) = table_path(path.into_inner())?;
    let deleted = state
        .store
        .delete(group.clone(), name.clone(), super::auth::token_name(&req))
        .await?;
    let references = deleted.references;
    let mut message = format!("table {group}/{name} deleted");
    if !references.feature_views.is_empty() {
        message.push_str(&format!(
            "; still registered: feature view(s) {}",
            references.feature_views.join(", ")
        ));
        if !references.feature_services.is_empty() {
            message.push_str(&format!(
                ", used by feature service(s) {}",
                references.feature_services.join(", ")
            ));
        }
        message.push_str(
            " (they serve again when the table is written again; unregister them with DELETE /registry/...)",
        );
    }
    Ok(HttpResponse::Ok().json(DeleteResponse {
        message,
        deleted_version: deleted.version,
        feature_views: references.feature_views,
        feature_services: references.feature_services,
    }))
}

/// Read several tables at once, filtered by entity ids, optionally as of a time.
///
/// Each name is found in whatever group holds it. Rows are kept when the table's entity key
/// equals one of `entity_ids`: plain ids for tables keyed by one column (numbers and strings
/// match alike, a string matching an integer key only in canonical form: `"01"` and `" 1"`
/// match nothing), or entity rows as objects (`{"user_id": 1, "movie_id": 10}`), which filter
/// every table whose key columns they name, composite keys included. With `timestamp`, each
/// table returns, per entity, its latest row at or before that instant.
#[utoipa::path(
    post, path = "/features/batch", tag = "features",
    request_body = BatchRequest,
    responses(
        (status = 200, description = "Rows per table", body = super::dto::BatchResponse),
        (status = 400, description = "Invalid table name or malformed JSON (`invalid_name`, `malformed_json`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown tables, all listed (`unknown_feature_tables`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 413, description = "A table would return more than `api.max_batch_rows` rows (`result_too_large`), or the body is too large (`payload_too_large`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json (`unsupported_media_type`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A table cannot be filtered as asked (`no_entity_key`, `no_timestamp_field`; `composite_entity_key` for plain ids on a composite key: send entity rows as objects) or the body is invalid: a bad id, or an entity row missing a key column of a table (`invalid_body`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 500, description = "A table or its metadata is unreadable, or an internal failure (`table_unreadable`, `table_metadata_unreadable`, `storage_io_error`, `internal_error`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The table's file is being rewritten in place by another tool; retry (`table_file_changing`). On the s3 kind also when the object store cannot be reached (`storage_unavailable`); retry after `Retry-After` seconds.", body = super::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn batch(
    state: web::Data<AppState>,
    body: web::Json<BatchRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    if body.feature_names.is_empty() {
        return Err(ApiError::invalid_body_field(
            "feature_names",
            "must name at least one table",
        ));
    }
    let mut tables: Vec<TableName> = Vec::with_capacity(body.feature_names.len());
    for (i, raw) in body.feature_names.iter().enumerate() {
        let name: TableName = raw.parse().map_err(|source| ApiError::InvalidName {
            field: format!("feature_names[{i}]"),
            source,
        })?;
        if !tables.contains(&name) {
            tables.push(name);
        }
    }
    let as_of = match &body.timestamp {
        None => None,
        Some(text) => Some(parse_timestamp_micros(text).ok_or_else(|| {
            ApiError::invalid_body_field(
                "timestamp",
                format!("{text:?} is not an RFC 3339 timestamp"),
            )
        })?),
    };
    let versions = super::versions::batch_pins(&tables, body.table_versions, body.as_of)?;
    let entity_ids = body.entity_ids.map(entity_ids).transpose()?;
    let results = state
        .store
        .batch(BatchQuery {
            tables,
            entity_ids,
            as_of_micros: as_of,
            versions,
        })
        .await?;
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
    let timestamp = as_of
        .and_then(chrono::DateTime::from_timestamp_micros)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true));
    let entity_key: BTreeMap<&str, Option<String>> = results
        .iter()
        .map(|t| {
            (
                t.name.as_str(),
                (!t.entity_key.is_empty()).then(|| t.entity_key.join(",")),
            )
        })
        .collect();
    let table_versions: BTreeMap<&str, u64> = results
        .iter()
        .map(|t| (t.name.as_str(), t.version))
        .collect();
    let mut out = JsonObject::with_capacity(4096);
    out.raw_field("features", |buf| {
        let mut features = JsonObject::with_capacity(4096);
        for table in &results {
            features.raw_field(&table.name, |b| write_records(&table.batch, b));
        }
        buf.extend_from_slice(&features.finish());
    })
    .raw_field("metadata", |buf| {
        let mut meta = JsonObject::with_capacity(256);
        meta.field("request_timestamp", &now)
            .field("feature_count", &results.len())
            .field("entity_key", &entity_key)
            .field("table_versions", &table_versions);
        buf.extend_from_slice(&meta.finish());
    })
    .field("timestamp", &timestamp);
    Ok(json_bytes(StatusCode::OK, out.finish()))
}

/// Reads `entity_ids`: integers, strings, or objects of key column → integer or string. A bad
/// one is named by position, with the online route's message for bad key values.
fn entity_ids(values: Vec<serde_json::Value>) -> Result<Vec<EntityId>, ApiError> {
    use serde_json::Value;
    fn scalar(value: &Value) -> Option<EntityId> {
        match value {
            Value::Number(n) => n.as_i64().map(EntityId::Int),
            Value::String(s) => Some(EntityId::Str(s.clone())),
            _ => None,
        }
    }
    let mut out = Vec::with_capacity(values.len());
    for (i, value) in values.iter().enumerate() {
        let id = match value {
            Value::Object(members) if members.is_empty() => {
                return Err(ApiError::invalid_body_field(
                    format!("entity_ids[{i}]"),
                    "an entity row must name at least one key column",
                ));
            }
            Value::Object(members) => {
                let mut row = BTreeMap::new();
                for (key, v) in members {
                    let id = scalar(v).ok_or_else(|| {
                        ApiError::invalid_body_field(
                            format!("entity_ids[{i}].{key}"),
                            format!("entity key values must be integers or strings, got {v}"),
                        )
                    })?;
                    row.insert(key.clone(), id);
                }
                EntityId::Row(row)
            }
            other => scalar(other).ok_or_else(|| {
                ApiError::invalid_body_field(
                    format!("entity_ids[{i}]"),
                    format!(
                        "entity key values must be integers or strings (or, for an entity row, an object of key column to value), got {other}"
                    ),
                )
            })?,
        };
        out.push(id);
    }
    Ok(out)
}
