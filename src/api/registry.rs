//! The registry routes: list, get and delete entities, feature views and services; apply
//! definitions; and the registry part of a table save's answer.

use actix_web::http::header::{ETAG, IF_MATCH};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use crate::model::{Entity, FeatureService, FeatureView, RegistryDocument};
use crate::store::{Committed, RegistryError, StoreError, SyncStatus, ViewSync, Writer};

/// `GET /registry/entities`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntityList {
    /// Every entity, by name.
    pub entities: Vec<Entity>,
}

/// `GET /registry/feature-views`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeatureViewList {
    /// Every feature view, by name.
    pub feature_views: Vec<FeatureView>,
}

/// `GET /registry/feature-services`.
#[derive(Debug, Serialize, ToSchema)]
pub struct FeatureServiceList {
    /// Every feature service, by name.
    pub feature_services: Vec<FeatureService>,
}

/// What an apply changed.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"created": ["entity user_id", "feature view user_profile"], "updated": [], "unchanged": []}))]
pub struct ApplyResponse {
    /// Objects created (`kind name`).
    pub created: Vec<String>,
    /// Objects whose definition changed.
    pub updated: Vec<String>,
    /// Objects applied again unchanged.
    pub unchanged: Vec<String>,
}

/// What a table save did to the table's feature view, in one word.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ViewSyncStatus {
    /// The save registered the view (and the entities in `entities_registered`).
    Registered,
    /// The view an earlier save registered now follows the table's new columns.
    Updated,
    /// The view matches the table.
    Unchanged,
    /// The view no longer matches the table (see `mismatches`); a view declared with apply is
    /// never changed by a save.
    Mismatch,
    /// The table has no view and the save could not register one; `message` says why and
    /// how to fix it.
    NotRegistered,
}

/// One way a view and its table disagree.
#[derive(Debug, Serialize, ToSchema)]
pub struct ViewMismatch {
    /// The view's field at fault (`features[1].dtype`, `entities[0]`, `entity_key`).
    #[schema(example = "features[1].dtype")]
    pub field: String,
    /// What is wrong.
    #[schema(example = "column \"n\" is string, not float64")]
    pub message: String,
}

/// What a table save did to the table's feature view.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ViewSync)]
pub struct ViewSyncDto {
    /// What happened.
    pub status: ViewSyncStatus,
    /// The view (named after the table).
    pub feature_view: String,
    /// What happened in words, and how to fix what is wrong.
    pub message: String,
    /// Entities the save registered (typed from the table's key columns).
    pub entities_registered: Vec<String>,
    /// How the view and the table disagree, or why the view could not be registered.
    pub mismatches: Vec<ViewMismatch>,
    /// Feature services that use what no longer matches.
    pub broken_feature_services: Vec<String>,
}

impl From<ViewSync> for ViewSyncDto {
    fn from(sync: ViewSync) -> Self {
        Self {
            status: match sync.status {
                SyncStatus::Registered => ViewSyncStatus::Registered,
                SyncStatus::Updated => ViewSyncStatus::Updated,
                SyncStatus::Unchanged => ViewSyncStatus::Unchanged,
                SyncStatus::Mismatch => ViewSyncStatus::Mismatch,
                SyncStatus::NotRegistered => ViewSyncStatus::NotRegistered,
            },
            feature_view: sync.feature_view,
            message: sync.message,
            entities_registered: sync.entities_registered,
            mismatches: sync
                .mismatches
                .into_iter()
                .map(|m| ViewMismatch {
                    field: m.field,
                    message: m.message,
                })
                .collect(),
            broken_feature_services: sync.broken_feature_services,
        }
    }
}

/// Answer to a registry delete: the definition that was removed.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"message": "feature service example_service deleted", "deleted": {"name": "example_service", "features": ["user_profile:age"], "description": ""}}))]
pub struct RegistryDeleteResponse {
    /// What happened.
    pub message: String,
    /// The definition as it was.
    #[schema(value_type = Object)]
    pub deleted: serde_json::Value,
}

/// The header carrying the registry version number of the definitions an answer shows or a
/// write left. A header rather than a body field: the list and object bodies are Feast-shaped
/// definitions that clients read as they are.
pub const REGISTRY_VERSION_HEADER: &str = "X-Registry-Version";

/// A 200 carrying the registry's version tag as its `ETag` and its version number.
pub(super) fn ok_tagged(tag: &str, version: u64) -> HttpResponseBuilder {
    let mut response = HttpResponse::Ok();
    response.insert_header((ETAG, format!("\"{tag}\"")));
    response.insert_header((REGISTRY_VERSION_HEADER, version.to_string()));
    response
}

/// A 200 for a read of `registry` at registry version `version`.
fn ok_read(registry: &RegistryDocument, version: u64) -> HttpResponseBuilder {
    ok_tagged(&crate::registry::version_tag(registry), version)
}

/// Who makes a write: the token the request carried, when auth is on.
pub(super) fn writer(request: &HttpRequest) -> Writer {
    Writer::new(super::auth::token_name(request))
}

/// The version named by `If-Match` (`"tag"`, `W/"tag"` or `*`), if any: a write with it
/// succeeds only if the registry is still at that version, so two clients that read the same
/// version cannot both write over it unseen.
fn if_match(request: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = request.headers().get(IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| ApiError::InvalidParameter {
        parameter: "If-Match".into(),
        message: "must be an entity tag such as \"3f2a9c0d1b7e4a55\"".into(),
    })?;
    let tag = text.split(',').next().unwrap_or_default().trim();
    let tag = tag.strip_prefix("W/").unwrap_or(tag).trim_matches('"');
    if tag.is_empty() {
        return Err(ApiError::InvalidParameter {
            parameter: "If-Match".into(),
            message: "must be an entity tag such as \"3f2a9c0d1b7e4a55\"".into(),
        });
    }
    Ok(Some(tag.to_owned()))
}

fn deleted(
    kind: &str,
    name: &str,
    (definition, committed): (impl Serialize, Committed),
) -> Result<HttpResponse, ApiError> {
    Ok(
        ok_tagged(&committed.tag, committed.version).json(RegistryDeleteResponse {
            message: format!("{kind} {name} deleted"),
            deleted: serde_json::to_value(definition)
                .map_err(|e| ApiError::Encoding(e.to_string()))?,
        }),
    )
}

/// Unregister a feature view.
///
/// Its table is not touched. Refused while a feature service uses the view: delete or change
/// those services first.
#[utoipa::path(delete, path = "/registry/feature-views/{name}", tag = "registry",
    params(("name" = String, Path, description = "Feature view (the example is the scratch view the save example registers)", example = "example_table"), ("If-Match" = Option<String>, Header, description = "Write only if the registry is still at this version (the `ETag` of a registry read or write); otherwise 409 `registry_changed` and nothing is written")),
    responses(
        (status = 200, description = "Unregistered; the definition it had", body = RegistryDeleteResponse, headers(("ETag" = String, description = "The registry's version, for `If-Match` on a later write"), ("X-Registry-Version" = u64, description = "The registry version number these definitions are (0 before the first write), as `GET /registry/history` lists it"))),
        (status = 404, description = "Not registered (`registry_object_not_found`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Feature services still use it, each listed in `errors` (`referenced_by_feature_services`), or the registry is no longer at the `If-Match` version (`registry_changed`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 500, description = "The registry file cannot be read or written (`registry_unreadable`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 503, description = "On the s3 kind: the object store cannot be reached (`storage_unavailable`), or other replicas kept committing registry changes first for 5 s (`registry_contended`); nothing was written; retry after `Retry-After` seconds", body = super::Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_feature_view(
    state: web::Data<AppState>,
    request: HttpRequest,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    let expected = if_match(&request)?;
    let view = state
        .store
        .delete_feature_view(name.clone(), expected, writer(&request))
        .await?;
    deleted("feature view", &name, view)
}

/// Unregister a feature service.
#[utoipa::path(delete, path = "/registry/feature-services/{name}", tag = "registry",
    params(("name" = String, Path, description = "Feature service (the example is the scratch service the apply example adds)", example = "example_service"), ("If-Match" = Option<String>, Header, description = "Write only if the registry is still at this version (the `ETag` of a registry read or write); otherwise 409 `registry_changed` and nothing is written")),
    responses(
        (status = 200, description = "Unregistered; the definition it had", body = RegistryDeleteResponse, headers(("ETag" = String, description = "The registry's version, for `If-Match` on a later write"), ("X-Registry-Version" = u64, description = "The registry version number these definitions are (0 before the first write), as `GET /registry/history` lists it"))),
        (status = 404, description = "Not registered (`registry_object_not_found`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The registry is no longer at the `If-Match` version (`registry_changed`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 500, description = "The registry file cannot be read or written (`registry_unreadable`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 503, description = "On the s3 kind: the object store cannot be reached (`storage_unavailable`), or other replicas kept committing registry changes first for 5 s (`registry_contended`); nothing was written; retry after `Retry-After` seconds", body = super::Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_feature_service(
    state: web::Data<AppState>,
    request: HttpRequest,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    let expected = if_match(&request)?;
    let service = state
        .store
        .delete_feature_service(name.clone(), expected, writer(&request))
        .await?;
    deleted("feature service", &name, service)
}

/// Unregister an entity.
///
/// Refused while a feature view uses it: delete or change those views first.
#[utoipa::path(delete, path = "/registry/entities/{name}", tag = "registry",
    params(("name" = String, Path, description = "Entity (the example is the scratch entity the save example registers)", example = "example_id"), ("If-Match" = Option<String>, Header, description = "Write only if the registry is still at this version (the `ETag` of a registry read or write); otherwise 409 `registry_changed` and nothing is written")),
    responses(
        (status = 200, description = "Unregistered; the definition it had", body = RegistryDeleteResponse, headers(("ETag" = String, description = "The registry's version, for `If-Match` on a later write"), ("X-Registry-Version" = u64, description = "The registry version number these definitions are (0 before the first write), as `GET /registry/history` lists it"))),
        (status = 404, description = "Not registered (`registry_object_not_found`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Feature views still use it, each listed in `errors` (`referenced_by_feature_views`), or the registry is no longer at the `If-Match` version (`registry_changed`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 500, description = "The registry file cannot be read or written (`registry_unreadable`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 503, description = "On the s3 kind: the object store cannot be reached (`storage_unavailable`), or other replicas kept committing registry changes first for 5 s (`registry_contended`); nothing was written; retry after `Retry-After` seconds", body = super::Problem, content_type = "application/problem+json"),
    ))]
pub async fn delete_entity(
    state: web::Data<AppState>,
    request: HttpRequest,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    let expected = if_match(&request)?;
    let entity = state
        .store
        .delete_entity(name.clone(), expected, writer(&request))
        .await?;
    deleted("entity", &name, entity)
}

fn not_found(kind: &'static str, name: String) -> ApiError {
    ApiError::Store(StoreError::Registry(RegistryError::NotFound { kind, name }))
}

/// Every registered entity.
#[utoipa::path(get, path = "/registry/entities", tag = "registry",
    responses((status = 200, description = "Entities", body = EntityList, headers(("ETag" = String, description = "The registry's version, for `If-Match` on a later write"), ("X-Registry-Version" = u64, description = "The registry version number these definitions are (0 before the first write), as `GET /registry/history` lists it")))))]
pub async fn entities(state: web::Data<AppState>) -> HttpResponse {
    let (registry, version) = state.store.registry_with_version();
    ok_read(&registry, version).json(EntityList {
        entities: registry.entities.clone(),
    })
}

/// Every registered feature view.
#[utoipa::path(get, path = "/registry/feature-views", tag = "registry",
    responses((status = 200, description = "Feature views", body = FeatureViewList, headers(("ETag" = String, description = "The registry's version, for `If-Match` on a later write"), ("X-Registry-Version" = u64, description = "The registry version number these definitions are (0 before the first write), as `GET /registry/history` lists it")))))]
pub async fn feature_views(state: web::Data<AppState>) -> HttpResponse {
    let (registry, version) = state.store.registry_with_version();
    ok_read(&registry, version).json(FeatureViewList {
        feature_views: registry.feature_views.clone(),
    })
}

/// One feature view.
#[utoipa::path(get, path = "/registry/feature-views/{name}", tag = "registry",
    params(("name" = String, Path, description = "Feature view", example = "user_profile")),
    responses(
        (status = 200, description = "The feature view", body = FeatureView, headers(("ETag" = String, description = "The registry's version, for `If-Match` on a later write"), ("X-Registry-Version" = u64, description = "The registry version number these definitions are (0 before the first write), as `GET /registry/history` lists it"))),
        (status = 404, description = "Not registered (`registry_object_not_found`)", body = super::Problem, content_type = "application/problem+json"),
    ))]
pub async fn feature_view(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    let (registry, version) = state.store.registry_with_version();
    let view = registry
        .feature_views
        .iter()
        .find(|v| v.name == name)
        .ok_or_else(|| not_found("feature view", name.clone()))?;
    Ok(ok_read(&registry, version).json(view))
}

/// Every registered feature service.
#[utoipa::path(get, path = "/registry/feature-services", tag = "registry",
    responses((status = 200, description = "Feature services", body = FeatureServiceList, headers(("ETag" = String, description = "The registry's version, for `If-Match` on a later write"), ("X-Registry-Version" = u64, description = "The registry version number these definitions are (0 before the first write), as `GET /registry/history` lists it")))))]
pub async fn feature_services(state: web::Data<AppState>) -> HttpResponse {
    let (registry, version) = state.store.registry_with_version();
    ok_read(&registry, version).json(FeatureServiceList {
        feature_services: registry.feature_services.clone(),
    })
}

/// One feature service.
#[utoipa::path(get, path = "/registry/feature-services/{name}", tag = "registry",
    params(("name" = String, Path, description = "Feature service", example = "movie_recommendation_service")),
    responses(
        (status = 200, description = "The feature service", body = FeatureService, headers(("ETag" = String, description = "The registry's version, for `If-Match` on a later write"), ("X-Registry-Version" = u64, description = "The registry version number these definitions are (0 before the first write), as `GET /registry/history` lists it"))),
        (status = 404, description = "Not registered (`registry_object_not_found`)", body = super::Problem, content_type = "application/problem+json"),
    ))]
pub async fn feature_service(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    let (registry, version) = state.store.registry_with_version();
    let service = registry
        .feature_services
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| not_found("feature service", name.clone()))?;
    Ok(ok_read(&registry, version).json(service))
}

/// Create or update entities, feature views and services (upsert by name).
///
/// Every definition is validated against the registry and the tables' real columns and types
/// first; when any is invalid, nothing is applied and every failure is listed. Concurrent
/// writers never lose each other's objects; send `If-Match` with the `ETag` of what you read
/// to also refuse (409) when anything changed in between.
#[utoipa::path(post, path = "/registry/apply", tag = "registry",
    // Definitions the demo already has, plus a scratch service, so "Try it out" on the demo
    // changes nothing of the demo's.
    request_body(content = RegistryDocument, example = json!({
        "entities": [{"name": "user_id", "value_type": "int64", "description": "A user of the service"}],
        "feature_services": [{"name": "movie_recommendation_service",
            "features": ["user_profile:age", "user_profile:avg_rating", "user_profile:total_movies_watched",
                "user_profile:favorite_genre", "movie_metadata:genre", "movie_metadata:rating_count",
                "movie_metadata:popularity_score", "user_movie_interactions:rating",
                "user_movie_interactions:watch_minutes"],
            "description": "Features of the movie recommender"},
            {"name": "example_service", "features": ["user_profile:age", "user_profile:avg_rating"],
            "description": "A scratch service, removed by the feature-service delete example"}]
    })),
    params(("If-Match" = Option<String>, Header, description = "Write only if the registry is still at this version (the `ETag` of a registry read or write); otherwise 409 `registry_changed` and nothing is written")),
    responses(
        (status = 200, description = "Applied", body = ApplyResponse, headers(("ETag" = String, description = "The registry's version, for `If-Match` on a later write"), ("X-Registry-Version" = u64, description = "The registry version number these definitions are (0 before the first write), as `GET /registry/history` lists it"))),
        (status = 409, description = "The registry is no longer at the `If-Match` version (`registry_changed`), or, on the s3 kind, another replica committed a different definition of an object of this document while this apply was being committed (`registry_conflict`, naming it); nothing was written", body = super::Problem, content_type = "application/problem+json"),
        (status = 400, description = "Malformed JSON (`malformed_json`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json (`unsupported_media_type`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid definitions, all listed in `errors` (`invalid_definitions`), or an unknown field (`invalid_body`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 500, description = "The registry file cannot be written (`registry_unreadable`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 503, description = "On the s3 kind: the object store cannot be reached (`storage_unavailable`), or other replicas kept committing registry changes first for 5 s (`registry_contended`); nothing was written; retry after `Retry-After` seconds", body = super::Problem, content_type = "application/problem+json"),
    ))]
pub async fn apply(
    state: web::Data<AppState>,
    request: HttpRequest,
    body: web::Json<RegistryDocument>,
) -> Result<HttpResponse, ApiError> {
    let expected = if_match(&request)?;
    let (report, committed) = state
        .store
        .apply_if(body.into_inner(), expected, writer(&request))
        .await?;
    Ok(
        ok_tagged(&committed.tag, committed.version).json(ApplyResponse {
            created: report.created,
            updated: report.updated,
            unchanged: report.unchanged,
        }),
    )
}
