//! The table history routes: the versions of a table, restore, diff, and the `version` /
//! `as_of` parameters that pin a read (`GET /features/{group}/{name}` and `/info`) to one
//! version.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::ApiError;
use super::features::table_path;
use super::query::{KnownParams, StrictQuery};
use crate::model::TableName;
use crate::store::{VersionOp, VersionPins, VersionRecord, VersionSelector, dtype_name};

/// `version` and `as_of`: which version of a table a read wants (the current one when
/// neither is given).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VersionQuery {
    /// Read this version (see `GET .../versions`). Not with `as_of`.
    #[param(value_type = Option<u64>, minimum = 1, example = 1)]
    pub version: Option<String>,
    /// Read the version that was current at this instant, RFC 3339 (such as
    /// `2026-12-01T00:00:00Z`). Not with `version`.
    #[param(value_type = Option<String>)]
    pub as_of: Option<String>,
}

impl KnownParams for VersionQuery {
    const NAMES: &'static [&'static str] = &["version", "as_of"];
}

impl VersionQuery {
    /// The version asked for.
    pub fn selector(&self) -> Result<VersionSelector, ApiError> {
        selector(self.version.as_deref(), self.as_of.as_deref())
    }
}

/// Reads `version` / `as_of` query parameters; both at once are refused, since they could
/// name two different versions.
pub fn selector(version: Option<&str>, as_of: Option<&str>) -> Result<VersionSelector, ApiError> {
    match (version, as_of) {
        (Some(_), Some(_)) => Err(ApiError::ConflictingParameters {
            names: &["version", "as_of"],
        }),
        (Some(text), None) => Ok(VersionSelector::Number(version_number("version", text)?)),
        (None, Some(text)) => Ok(VersionSelector::AsOf(instant("as_of", text)?)),
        (None, None) => Ok(VersionSelector::Current),
    }
}

/// A version number parameter: 1 or more.
pub(super) fn version_number(parameter: &str, text: &str) -> Result<u64, ApiError> {
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::InvalidParameter {
            parameter: parameter.to_owned(),
            message: format!("must be a version number (1 or more), got {text:?}"),
        })
}

fn instant(parameter: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ApiError::InvalidParameter {
            parameter: parameter.to_owned(),
            message: format!(
                "must be an RFC 3339 instant such as 2026-12-01T00:00:00Z, got {text:?}"
            ),
        })
}

/// The versions a batch lookup of `tables` reads: `table_versions` (each must name one of
/// the tables) and `as_of` for the others.
pub fn batch_pins(
    tables: &[TableName],
    table_versions: Option<BTreeMap<String, u64>>,
    as_of: Option<String>,
) -> Result<VersionPins, ApiError> {
    let mut pins = VersionPins::default();
    for (raw, version) in table_versions.unwrap_or_default() {
        let field = format!("table_versions.{raw}");
        let name: TableName = raw.parse().map_err(|source| ApiError::InvalidName {
            field: field.clone(),
            source,
        })?;
        if !tables.contains(&name) {
            return Err(ApiError::invalid_body_field(
                field,
                "names a table that is not in feature_names",
            ));
        }
        if version == 0 {
            return Err(ApiError::invalid_body_field(
                field,
                "must be a version number (1 or more)",
            ));
        }
        pins.tables.insert(name, version);
    }
    if let Some(text) = as_of {
        let at = DateTime::parse_from_rfc3339(text.trim()).map_err(|_| {
            ApiError::invalid_body_field("as_of", format!("{text:?} is not an RFC 3339 timestamp"))
        })?;
        pins.as_of = Some(at.with_timezone(&Utc));
    }
    Ok(pins)
}

/// `limit` and `offset` of `GET .../versions`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VersionsPageQuery {
    /// Versions to return, newest first. Default `api.default_page_limit` (1000), at most
    /// `api.max_page_limit`.
    #[param(value_type = Option<u64>, minimum = 0, example = 20)]
    limit: Option<String>,
    /// Versions to skip (0-based, newest first). Default 0.
    #[param(value_type = Option<u64>, minimum = 0, example = 0)]
    offset: Option<String>,
}

impl KnownParams for VersionsPageQuery {
    const NAMES: &'static [&'static str] = &["limit", "offset"];
}

fn count(parameter: &str, value: Option<&str>, default: u64) -> Result<u64, ApiError> {
    value.map_or(Ok(default), |text| {
        text.trim()
            .parse::<u64>()
            .map_err(|_| ApiError::InvalidParameter {
                parameter: parameter.to_owned(),
                message: format!("must be a non-negative integer, got {text:?}"),
            })
    })
}

/// One column of a version.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionColumn {
    /// Column name.
    #[schema(example = "age")]
    pub name: String,
    /// Its logical type, as `/info` names it.
    #[schema(example = "int64")]
    pub logical_type: String,
}

/// A column whose logical type changed.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ColumnRetype)]
pub struct ColumnRetypeDto {
    /// Column name.
    #[schema(example = "score")]
    pub name: String,
    /// Its type before.
    #[schema(example = "int64")]
    pub from: String,
    /// Its type after.
    #[schema(example = "float64")]
    pub to: String,
}

/// One version of a table.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TableVersion)]
pub struct VersionDto {
    /// The version number (strictly increasing along the table's history).
    #[schema(example = 3)]
    pub version: u64,
    /// Whether this is the version reads get without `version` / `as_of`.
    pub current: bool,
    /// The write that made it: `create`, `replace`, `append` (an offline push), `restore`,
    /// `delete` (the table's deletion: no content) or `external` (written by another tool).
    /// A fold of pushed parts makes no version: it changes the layout, not the content.
    #[schema(example = "append")]
    pub op: String,
    /// When it became current (RFC 3339, UTC, milliseconds).
    #[schema(example = "2026-12-01T09:30:00.000Z")]
    pub became_current: String,
    /// Rows in the table at this version.
    #[schema(example = 300001)]
    pub rows: u64,
    /// Rows the write added (all of them for a create, replace or restore).
    #[schema(example = 1)]
    pub rows_written: u64,
    /// Bytes the write stored (the pushed part, or the new table file).
    #[schema(example = 2048)]
    pub bytes_written: u64,
    /// Its columns and their logical types.
    pub columns: Vec<VersionColumn>,
    /// Columns the previous version did not have.
    pub columns_added: Vec<String>,
    /// Columns of the previous version this one does not have.
    pub columns_removed: Vec<String>,
    /// Columns whose logical type changed from the previous version.
    pub columns_retyped: Vec<ColumnRetypeDto>,
    /// The name of the token that wrote it, when auth is on.
    #[schema(example = "ci-writer")]
    pub written_by: Option<String>,
    /// For a restore, the version whose content it has.
    pub restored_from: Option<u64>,
    /// Entity key columns in effect.
    pub entity_key: Vec<String>,
    /// Timestamp field in effect.
    pub timestamp_field: Option<String>,
}

fn op_name(op: VersionOp) -> &'static str {
    match op {
        VersionOp::Create => "create",
        VersionOp::Replace => "replace",
        VersionOp::Append => "append",
        VersionOp::Restore => "restore",
        VersionOp::Delete => "delete",
        VersionOp::External => "external",
    }
}

impl VersionDto {
    fn of(record: VersionRecord, current: Option<u64>) -> Self {
        let type_name = |t: crate::store::LogicalType| dtype_name(&t.arrow_type());
        Self {
            version: record.version,
            current: current == Some(record.version),
            op: op_name(record.op).to_owned(),
            became_current: rfc3339_ms(record.became_current()),
            rows: record.rows,
            rows_written: record.rows_written,
            bytes_written: record.bytes_written,
            columns: record
                .columns
                .into_iter()
                .map(|c| VersionColumn {
                    name: c.name,
                    logical_type: type_name(c.logical_type),
                })
                .collect(),
            columns_added: record.columns_added,
            columns_removed: record.columns_removed,
            columns_retyped: retypes(record.columns_retyped),
            written_by: record.written_by,
            restored_from: record.restored_from,
            entity_key: record.entity_key,
            timestamp_field: record.timestamp_field,
        }
    }
}

fn retypes(retyped: Vec<crate::store::ColumnRetype>) -> Vec<ColumnRetypeDto> {
    retyped
        .into_iter()
        .map(|r| ColumnRetypeDto {
            name: r.name,
            from: dtype_name(&r.from.arrow_type()),
            to: dtype_name(&r.to.arrow_type()),
        })
        .collect()
}

fn rfc3339_ms(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `GET /features/{group}/{name}/versions`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "feature_group": "user", "feature_name": "user_profile", "current_version": 4,
    "history_bytes": 5242880, "total_versions": 4, "returned_versions": 1, "offset": 0,
    "limit": 1, "next_offset": 1,
    "versions": [{"version": 4, "current": true, "op": "append",
        "became_current": "2026-12-01T09:30:00.000Z", "rows": 300001, "rows_written": 1,
        "bytes_written": 2048, "columns": [{"name": "user_id", "logical_type": "int64"}],
        "columns_added": [], "columns_removed": [], "columns_retyped": [],
        "written_by": "ci-writer", "restored_from": null, "entity_key": ["user_id"],
        "timestamp_field": "event_timestamp"}]
}))]
pub struct VersionListResponse {
    /// Group.
    pub feature_group: String,
    /// Table.
    pub feature_name: String,
    /// The current version; null while the table is deleted (its versions stay listed, and
    /// restorable, while retained).
    pub current_version: Option<u64>,
    /// Bytes kept only for versions other than the current one.
    pub history_bytes: u64,
    /// Versions retained in all.
    pub total_versions: u64,
    /// Versions in this answer.
    pub returned_versions: u64,
    /// Versions skipped (newest first).
    pub offset: u64,
    /// The `limit` applied.
    pub limit: u64,
    /// The `offset` of the next page; null on the last.
    pub next_offset: Option<u64>,
    /// The versions, newest first.
    pub versions: Vec<VersionDto>,
}

/// List a table's retained versions, newest first.
///
/// Every write that changes the table records a version: a save (create or replace), an
/// offline push (append), a restore and a delete. A deleted table's versions stay listed
/// (and restorable) while `[storage.history]` retains them.
#[utoipa::path(
    get, path = "/features/{group}/{name}/versions", tag = "features",
    params(
        ("group" = String, Path, description = "Feature group", example = "user"),
        ("name" = String, Path, description = "Table name", example = "user_profile"),
        VersionsPageQuery,
    ),
    responses(
        (status = 200, description = "The versions, newest first", body = VersionListResponse),
        (status = 400, description = "Invalid name or parameter (`invalid_name`, `invalid_parameter`, `unknown_query_parameter`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 404, description = "The table has no history in this group (`table_not_found`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is in two groups on disk and this is the location not served (`duplicate_table`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 500, description = "The history could not be read (`storage_io_error`, `table_metadata_unreadable`, `internal_error`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 503, description = "On the s3 kind, when the object store cannot be reached (`storage_unavailable`); retry after `Retry-After` seconds.", body = super::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_versions(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: StrictQuery<VersionsPageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (group, name) = table_path(path.into_inner())?;
    let query = query.into_inner();
    let (default_limit, max_limit) = (state.config.default_page_limit, state.config.max_page_limit);
    let limit = count("limit", query.limit.as_deref(), default_limit)?;
    if limit > max_limit {
        return Err(ApiError::InvalidParameter {
            parameter: "limit".into(),
            message: format!("must be at most {max_limit} (api.max_page_limit), got {limit}"),
        });
    }
    let offset = count("offset", query.offset.as_deref(), 0)?;
    let page = state.store.versions(group, name, offset, limit).await?;
    let returned = page.versions.len() as u64;
    let end = offset.saturating_add(returned);
    Ok(HttpResponse::Ok().json(VersionListResponse {
        feature_group: page.group.to_string(),
        feature_name: page.name.to_string(),
        current_version: page.current_version,
        history_bytes: page.history_bytes,
        total_versions: page.total,
        returned_versions: returned,
        offset,
        limit,
        next_offset: (end < page.total && returned > 0).then_some(end),
        versions: page
            .versions
            .into_iter()
            .map(|r| VersionDto::of(r, page.current_version))
            .collect(),
    }))
}

/// `POST /features/{group}/{name}/restore`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"version": 1}))]
pub struct RestoreRequest {
    /// The version whose content becomes the table's newest version.
    #[schema(minimum = 1)]
    pub version: u64,
}

/// The 201 answer of a restore.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "message": "table misc/example_table restored to the content of version 1 as version 4",
    "feature_group": "misc", "feature_name": "example_table", "version": 4,
    "restored_from": 1, "rows": 2,
    "registry": {"status": "unchanged", "feature_view": "example_table",
        "message": "the feature view matches the table", "entities_registered": [],
        "mismatches": [], "broken_feature_services": []}
}))]
pub struct RestoreResponse {
    /// What happened.
    pub message: String,
    /// Group.
    pub feature_group: String,
    /// Table.
    pub feature_name: String,
    /// The new version (restoring makes a version; restore the one before it to undo).
    pub version: u64,
    /// The version whose content it has.
    pub restored_from: u64,
    /// Rows in the table now.
    pub rows: u64,
    /// What the restore did to the table's feature view (as a save reports it).
    pub registry: super::registry::ViewSyncDto,
}

/// Restore a table to the content of an earlier version.
///
/// Writes the content of `version` again as the table's newest version: a rollback that is
/// itself a version (undo it by restoring the version before it). A deleted table is
/// re-created in its group. Caches, the online index and the table's feature view follow as
/// after a save, and other replicas are told.
#[utoipa::path(
    post, path = "/features/{group}/{name}/restore", tag = "features",
    params(
        ("group" = String, Path, description = "Feature group", example = "misc"),
        ("name" = String, Path, description = "Table name", example = "example_table"),
    ),
    request_body = RestoreRequest,
    responses(
        (status = 201, description = "Restored as a new version", body = RestoreResponse),
        (status = 400, description = "Invalid name or malformed JSON (`invalid_name`, `malformed_json`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 404, description = "The table has no history in this group, or the version was never written or is the table's deletion (`table_not_found`, `table_version_not_found`); the detail says which versions exist", body = super::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is in two groups on disk (`duplicate_table`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 410, description = "The version is no longer retained (`table_version_expired`); the detail says which versions are", body = super::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json (`unsupported_media_type`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 422, description = "The body has no version number (`invalid_body`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 500, description = "The version could not be read or written (`table_unreadable`, `storage_io_error`, `internal_error`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The data root is read-only (`data_root_not_writable`). On the s3 kind also when the object store cannot be reached (`storage_unavailable`) or other replicas kept committing to the table first (`storage_contended`); retry after `Retry-After` seconds.", body = super::Problem, content_type = "application/problem+json"),
        (status = 507, description = "The disk is full (`storage_full`)", body = super::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn restore_table(
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Json<RestoreRequest>,
) -> Result<HttpResponse, ApiError> {
    let (group, name) = table_path(path.into_inner())?;
    let version = body.into_inner().version;
    let restored = state
        .store
        .restore(
            group.clone(),
            name.clone(),
            version,
            super::auth::token_name(&req),
        )
        .await?;
    let new_version = restored.table.version;
    Ok(HttpResponse::Created().json(RestoreResponse {
        message: format!(
            "table {group}/{name} restored to the content of version {version} as version {new_version}"
        ),
        feature_group: group.to_string(),
        feature_name: name.to_string(),
        version: new_version,
        restored_from: restored.restored_from,
        rows: restored.table.rows,
        registry: restored.registry.into(),
    }))
}

/// `from` and `to` of the routes that compare two versions (`GET .../diff`, `GET .../drift`).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VersionPairQuery {
    /// The older version. Default: the readable version retained just before `to`.
    #[param(value_type = Option<u64>, minimum = 1, example = 1)]
    from: Option<String>,
    /// The newer version. Default: the current one. (The example compares the demo's only
    /// version with itself; after a write, leave both out to see what it changed.)
    #[param(value_type = Option<u64>, minimum = 1, example = 1)]
    to: Option<String>,
}

impl KnownParams for VersionPairQuery {
    const NAMES: &'static [&'static str] = &["from", "to"];
}

impl VersionPairQuery {
    /// `from` and `to` as version numbers (each `None` when left out).
    pub(super) fn versions(&self) -> Result<(Option<u64>, Option<u64>), ApiError> {
        let number = |parameter, text: &Option<String>| {
            text.as_deref()
                .map(|t| version_number(parameter, t))
                .transpose()
        };
        Ok((number("from", &self.from)?, number("to", &self.to)?))
    }
}

/// Keys of `to` against `from`, matched on the entity key.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = KeyChanges)]
pub struct KeyChangesDto {
    /// Keys only `to` has.
    #[schema(example = 1)]
    pub added: u64,
    /// Keys only `from` has.
    #[schema(example = 0)]
    pub removed: u64,
    /// Keys both have whose rows differ (over the columns both have; row order aside).
    #[schema(example = 2)]
    pub changed: u64,
    /// Keys both have with the same rows.
    #[schema(example = 299998)]
    pub unchanged: u64,
}

/// `GET /features/{group}/{name}/diff`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "feature_group": "user", "feature_name": "user_profile", "from": 3, "to": 4,
    "from_rows": 300000, "to_rows": 300001, "columns_added": ["segment"],
    "columns_removed": [], "columns_retyped": [{"name": "score", "from": "int64", "to": "float64"}],
    "entity_key": ["user_id"],
    "keys": {"added": 1, "removed": 0, "changed": 2, "unchanged": 299998}
}))]
pub struct DiffResponse {
    /// Group.
    pub feature_group: String,
    /// Table.
    pub feature_name: String,
    /// The older version compared.
    pub from: u64,
    /// The newer version compared.
    pub to: u64,
    /// Rows at `from`.
    pub from_rows: u64,
    /// Rows at `to`.
    pub to_rows: u64,
    /// Columns `to` has that `from` has not.
    pub columns_added: Vec<String>,
    /// Columns `from` has that `to` has not.
    pub columns_removed: Vec<String>,
    /// Columns whose logical type changed.
    pub columns_retyped: Vec<ColumnRetypeDto>,
    /// The entity key keys were matched on (`to`'s); empty when the table has none.
    pub entity_key: Vec<String>,
    /// Keys added, removed, changed and unchanged; null when the table has no entity key
    /// (or `from` lacks a key column).
    pub keys: Option<KeyChangesDto>,
}

/// What changed between two versions of a table.
///
/// Schema changes, row counts and, for a table with an entity key, how many keys were added,
/// removed, changed (the multiset of the key's rows differs over the columns both versions
/// have) or left unchanged. Reads both versions whole.
#[utoipa::path(
    get, path = "/features/{group}/{name}/diff", tag = "features",
    params(
        ("group" = String, Path, description = "Feature group", example = "user"),
        ("name" = String, Path, description = "Table name", example = "user_profile"),
        VersionPairQuery,
    ),
    responses(
        (status = 200, description = "The changes", body = DiffResponse),
        (status = 400, description = "Invalid name or parameter (`invalid_name`, `invalid_parameter`, `unknown_query_parameter`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 404, description = "The table has no history in this group, or a version was never written or is a deletion, or there is no earlier version to compare with (`table_not_found`, `table_version_not_found`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is in two groups on disk (`duplicate_table`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 410, description = "A version is no longer retained (`table_version_expired`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 500, description = "A version could not be read (`table_unreadable`, `storage_io_error`, `internal_error`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 503, description = "On the s3 kind, when the object store cannot be reached (`storage_unavailable`); retry after `Retry-After` seconds.", body = super::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn diff_versions(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: StrictQuery<VersionPairQuery>,
) -> Result<HttpResponse, ApiError> {
    let (group, name) = table_path(path.into_inner())?;
    let (from, to) = query.into_inner().versions()?;
    let diff = state
        .store
        .diff(group.clone(), name.clone(), from, to)
        .await?;
    Ok(HttpResponse::Ok().json(DiffResponse {
        feature_group: group.to_string(),
        feature_name: name.to_string(),
        from: diff.from,
        to: diff.to,
        from_rows: diff.from_rows,
        to_rows: diff.to_rows,
        columns_added: diff.columns_added,
        columns_removed: diff.columns_removed,
        columns_retyped: retypes(diff.columns_retyped),
        entity_key: diff.entity_key,
        keys: diff.keys.map(|k| KeyChangesDto {
            added: k.added,
            removed: k.removed,
            changed: k.changed,
            unchanged: k.unchanged,
        }),
    }))
}
