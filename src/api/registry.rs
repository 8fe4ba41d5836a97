//! The registry routes: list and get entities, feature views and services; apply definitions.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use crate::model::{Entity, FeatureService, FeatureView, RegistryDocument};
use crate::store::{RegistryError, StoreError};

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

fn not_found(kind: &'static str, name: String) -> ApiError {
    ApiError::Store(StoreError::Registry(RegistryError::NotFound { kind, name }))
}

/// Every registered entity.
#[utoipa::path(get, path = "/registry/entities", tag = "registry",
    responses((status = 200, description = "Entities", body = EntityList)))]
pub async fn entities(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(EntityList {
        entities: state.store.registry().entities.clone(),
    })
}

/// Every registered feature view.
#[utoipa::path(get, path = "/registry/feature-views", tag = "registry",
    responses((status = 200, description = "Feature views", body = FeatureViewList)))]
pub async fn feature_views(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(FeatureViewList {
        feature_views: state.store.registry().feature_views.clone(),
    })
}

/// One feature view.
#[utoipa::path(get, path = "/registry/feature-views/{name}", tag = "registry",
    params(("name" = String, Path, description = "Feature view", example = "user_profile")),
    responses(
        (status = 200, description = "The feature view", body = FeatureView),
        (status = 404, description = "Not registered (`registry_object_not_found`)", body = super::Problem, content_type = "application/problem+json"),
    ))]
pub async fn feature_view(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    let registry = state.store.registry();
    let view = registry
        .feature_views
        .iter()
        .find(|v| v.name == name)
        .ok_or_else(|| not_found("feature view", name.clone()))?;
    Ok(HttpResponse::Ok().json(view))
}

/// Every registered feature service.
#[utoipa::path(get, path = "/registry/feature-services", tag = "registry",
    responses((status = 200, description = "Feature services", body = FeatureServiceList)))]
pub async fn feature_services(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(FeatureServiceList {
        feature_services: state.store.registry().feature_services.clone(),
    })
}

/// One feature service.
#[utoipa::path(get, path = "/registry/feature-services/{name}", tag = "registry",
    params(("name" = String, Path, description = "Feature service", example = "movie_recommendation_service")),
    responses(
        (status = 200, description = "The feature service", body = FeatureService),
        (status = 404, description = "Not registered (`registry_object_not_found`)", body = super::Problem, content_type = "application/problem+json"),
    ))]
pub async fn feature_service(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let name = name.into_inner();
    let registry = state.store.registry();
    let service = registry
        .feature_services
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| not_found("feature service", name.clone()))?;
    Ok(HttpResponse::Ok().json(service))
}

/// Create or update entities, feature views and services (upsert by name).
///
/// Every definition is validated against the registry and the tables' real columns and types
/// first; when any is invalid, nothing is applied and every failure is listed.
#[utoipa::path(post, path = "/registry/apply", tag = "registry",
    // Definitions the demo already has, so "Try it out" on the demo changes nothing.
    request_body(content = RegistryDocument, example = json!({
        "entities": [{"name": "user_id", "value_type": "int64", "description": "A user of the service"}],
        "feature_services": [{"name": "movie_recommendation_service",
            "features": ["user_profile:age", "user_profile:avg_rating", "user_profile:total_movies_watched",
                "user_profile:favorite_genre", "movie_metadata:genre", "movie_metadata:rating_count",
                "movie_metadata:popularity_score", "user_movie_interactions:rating",
                "user_movie_interactions:watch_minutes"],
            "description": "Features of the movie recommender"}]
    })),
    responses(
        (status = 200, description = "Applied", body = ApplyResponse),
        (status = 400, description = "Malformed JSON (`malformed_json`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json (`unsupported_media_type`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid definitions, all listed in `errors` (`invalid_definitions`), or an unknown field (`invalid_body`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 500, description = "The registry file cannot be written (`registry_unreadable`)", body = super::Problem, content_type = "application/problem+json"),
    ))]
pub async fn apply(
    state: web::Data<AppState>,
    body: web::Json<RegistryDocument>,
) -> Result<HttpResponse, ApiError> {
    let report = state.store.apply(body.into_inner()).await?;
    Ok(HttpResponse::Ok().json(ApplyResponse {
        created: report.created,
        updated: report.updated,
        unchanged: report.unchanged,
    }))
}
