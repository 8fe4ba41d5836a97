//! The registry's history: the versions every registry write recorded, newest first, and the
//! whole document of any version still retained ("which definitions did this model train
//! with").

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::ApiError;
use super::query::{KnownParams, StrictQuery};
use super::registry::REGISTRY_VERSION_HEADER;
use crate::model::{RegistryChange, RegistryDocument, RegistryOperation, RegistryVersion};

/// Versions per page when `limit` is not given.
pub const DEFAULT_HISTORY_LIMIT: u64 = 100;
/// Most versions one page may ask for: each is one file (or object) read.
pub const MAX_HISTORY_LIMIT: u64 = 1000;

/// Query parameters of `GET /registry/history`. Taken as strings so that a bad value is
/// reported naming the parameter.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Versions to return, newest first. Default 100, at most 1000.
    #[param(value_type = Option<u64>, minimum = 0, example = 20)]
    limit: Option<String>,
    /// Versions to skip from the newest. Default 0.
    #[param(value_type = Option<u64>, minimum = 0, example = 0)]
    offset: Option<String>,
}

impl KnownParams for HistoryQuery {
    const NAMES: &'static [&'static str] = &["limit", "offset"];
}

/// `GET /registry/history`: a page of versions, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "current_version": 5, "oldest_version": 1, "total_versions": 5,
    "offset": 0, "limit": 2, "next_offset": 2,
    "versions": [
        {"version": 5, "at": "2026-12-06T16:45:12.482113Z", "operation": "delete_feature_service",
         "changes": [{"kind": "feature_service", "name": "example_service", "change": "deleted"}],
         "written_by": "ci-writer"},
        {"version": 4, "at": "2026-12-06T16:44:58.120406Z", "operation": "apply",
         "changes": [{"kind": "feature_service", "name": "example_service", "change": "created"}],
         "written_by": "ci-writer"}
    ]
}))]
pub struct RegistryHistoryResponse {
    /// The registry version served now (0: nothing was ever written).
    pub current_version: u64,
    /// The oldest version still retained; null when there is none.
    pub oldest_version: Option<u64>,
    /// Versions retained.
    pub total_versions: u64,
    /// Versions skipped from the newest.
    pub offset: u64,
    /// Most versions asked for.
    pub limit: u64,
    /// The `offset` of the next page; null on the last one.
    pub next_offset: Option<u64>,
    /// The versions of this page, newest first.
    pub versions: Vec<RegistryVersion>,
}

/// `GET /registry/history/{version}`: one version and its whole document.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "version": 4, "at": "2026-12-06T16:44:58.120406Z", "operation": "apply",
    "changes": [{"kind": "feature_service", "name": "example_service", "change": "created"}],
    "written_by": "ci-writer",
    "document": {
        "entities": [{"name": "user_id", "join_key": "user_id", "value_type": "int64", "description": "A user of the service"}],
        "feature_views": [{"name": "user_profile", "group": "user", "entities": ["user_id"],
            "timestamp_field": "event_timestamp", "created_timestamp_field": null, "ttl_seconds": 604800,
            "features": [{"name": "age", "dtype": "int64"}], "description": "", "owner": "", "tags": {}}],
        "feature_services": [{"name": "example_service", "features": ["user_profile:age"], "description": ""}]
    }
}))]
pub struct RegistryVersionResponse {
    /// The version number.
    pub version: u64,
    /// When it became current (RFC 3339, UTC).
    pub at: String,
    /// The write that made it.
    pub operation: RegistryOperation,
    /// The objects it created, updated or deleted.
    pub changes: Vec<RegistryChange>,
    /// The token that made it, with `[auth]` enabled.
    pub written_by: Option<String>,
    /// Every definition as it was at this version: the document `POST /registry/apply`
    /// takes, so applying it restores these definitions.
    pub document: RegistryDocument,
}

/// The registry's history.
///
/// Every registry write that changed a definition (`POST /registry/apply`,
/// `featurestore apply`, the three deletes, a table save that registered or updated its view)
/// recorded a version: its number (1, 2, 3, ... never reused), when, the operation, what it
/// changed and, with `[auth]` enabled, the token that wrote it. Newest first. Versions stay
/// retained for 7 days after they stopped being current, and the latest 10 always.
#[utoipa::path(get, path = "/registry/history", tag = "registry",
    params(HistoryQuery),
    responses(
        (status = 200, description = "A page of versions, newest first", body = RegistryHistoryResponse, headers(("X-Registry-Version" = u64, description = "The registry version served now"))),
        (status = 400, description = "A bad `limit` or `offset`, or a query parameter the route does not take (`invalid_parameter`, `unknown_query_parameter`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 500, description = "A version file cannot be read (`registry_unreadable`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 503, description = "On the s3 kind: the object store cannot be reached (`storage_unavailable`); retry after `Retry-After` seconds", body = super::Problem, content_type = "application/problem+json"),
    ))]
pub async fn history(
    state: web::Data<AppState>,
    query: StrictQuery<HistoryQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let limit =
        super::features::parse_count("limit", query.limit.as_deref(), DEFAULT_HISTORY_LIMIT)?;
    if limit > MAX_HISTORY_LIMIT {
        return Err(ApiError::InvalidParameter {
            parameter: "limit".into(),
            message: format!("must be at most {MAX_HISTORY_LIMIT}, got {limit}"),
        });
    }
    let offset = super::features::parse_count("offset", query.offset.as_deref(), 0)?;
    let page = state.store.registry_history(offset, limit).await?;
    let end = offset.saturating_add(page.versions.len() as u64);
    let next_offset = (end < page.total && !page.versions.is_empty()).then_some(end);
    Ok(HttpResponse::Ok()
        .insert_header((REGISTRY_VERSION_HEADER, page.current.to_string()))
        .json(RegistryHistoryResponse {
            current_version: page.current,
            oldest_version: page.oldest,
            total_versions: page.total,
            offset,
            limit,
            next_offset,
            versions: page.versions,
        }))
}

/// One version of the registry with its whole document.
///
/// The definitions exactly as they were at that version, in the document `POST
/// /registry/apply` takes: what a model trained at that version was defined by.
#[utoipa::path(get, path = "/registry/history/{version}", tag = "registry",
    params(("version" = u64, Path, description = "A registry version, as `GET /registry/history` lists it", example = 1)),
    responses(
        (status = 200, description = "The version and its document", body = RegistryVersionResponse),
        (status = 400, description = "The version is not a non-negative integer (`invalid_parameter`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such version was ever recorded (`registry_version_not_found`); the detail says which versions are retained", body = super::Problem, content_type = "application/problem+json"),
        (status = 410, description = "The version was recorded but is no longer retained (`registry_version_expired`); the detail says which versions are", body = super::Problem, content_type = "application/problem+json"),
        (status = 500, description = "The version's file cannot be read (`registry_unreadable`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 503, description = "On the s3 kind: the object store cannot be reached (`storage_unavailable`); retry after `Retry-After` seconds", body = super::Problem, content_type = "application/problem+json"),
    ))]
pub async fn version(
    state: web::Data<AppState>,
    version: web::Path<u64>,
) -> Result<HttpResponse, ApiError> {
    let found = state
        .store
        .registry_version_document(version.into_inner())
        .await?;
    let record = found.record;
    Ok(HttpResponse::Ok().json(RegistryVersionResponse {
        version: record.version,
        at: record.at,
        operation: record.operation,
        changes: record.changes,
        written_by: record.written_by,
        document: found.document,
    }))
}
