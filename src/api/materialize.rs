//! `POST /materialize` and `POST /materialize-incremental` (Feast's bodies).

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use crate::store::{MaterializeRequest, MaterializedView, parse_timestamp_micros};

/// `POST /materialize`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"start_ts": "2026-11-01T00:00:00Z", "end_ts": "2026-11-21T00:00:00Z", "feature_views": ["user_profile"]}))]
pub struct MaterializeBody {
    /// Start of the window (RFC 3339).
    pub start_ts: String,
    /// End of the window (RFC 3339): the views' new watermark.
    pub end_ts: String,
    /// Views to materialize; absent or null for every registered view.
    #[serde(default)]
    pub feature_views: Option<Vec<String>>,
}

/// `POST /materialize-incremental`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"end_ts": "2026-11-21T00:00:00Z", "feature_views": ["user_profile"]}))]
pub struct MaterializeIncrementalBody {
    /// End of the window (RFC 3339); each view's window starts at its previous end, or at
    /// `end_ts - ttl` the first time.
    pub end_ts: String,
    /// Views to materialize; absent or null for every registered view.
    #[serde(default)]
    pub feature_views: Option<Vec<String>>,
}

/// What materializing one view did.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = MaterializedView)]
pub struct MaterializedViewDto {
    /// The view.
    pub feature_view: String,
    /// Start of its window (RFC 3339); null means from the beginning.
    pub start_ts: Option<String>,
    /// End of its window (RFC 3339): its new watermark.
    pub end_ts: String,
    /// Table rows whose event time falls in the window.
    pub rows_in_window: u64,
    /// Entity keys now stored in the online store for the view.
    pub entities: u64,
    /// Time taken, in milliseconds.
    pub millis: u64,
    /// Present when the view was left out: why (its table is missing) and what to do. Only a
    /// request for every view skips; a view named in `feature_views` without a table is a 404.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(
        example = "no table content/movie_metadata: write the table again, or unregister the view with DELETE /registry/feature-views/movie_metadata"
    )]
    pub skipped: Option<String>,
}

/// The 200 answer of the materialize routes.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"views": [{"feature_view": "user_profile", "start_ts": "2026-11-01T00:00:00Z", "end_ts": "2026-11-21T00:00:00Z", "rows_in_window": 100000, "entities": 100000, "millis": 180}]}))]
pub struct MaterializeResponse {
    /// One entry per view, in registry order.
    pub views: Vec<MaterializedViewDto>,
}

fn timestamp(field: &str, text: &str) -> Result<i64, ApiError> {
    parse_timestamp_micros(text).ok_or_else(|| {
        ApiError::invalid_body_field(
            field,
            format!("{text:?} is not an RFC 3339 timestamp (e.g. 2026-11-21T00:00:00Z)"),
        )
    })
}

fn rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_default()
}

fn response(views: Vec<MaterializedView>) -> HttpResponse {
    HttpResponse::Ok().json(MaterializeResponse {
        views: views
            .into_iter()
            .map(|v| MaterializedViewDto {
                feature_view: v.feature_view,
                start_ts: v.start_micros.map(rfc3339),
                end_ts: rfc3339(v.end_micros),
                rows_in_window: v.rows_in_window,
                entities: v.entities,
                millis: v.millis,
                skipped: v.skipped,
            })
            .collect(),
    })
}

/// Persist the online state of feature views (Feast-compatible).
///
/// Online serving always follows the tables; materializing stores each view's latest rows
/// (pushed rows included) in the durable online store, so a restart serves them without
/// reading Parquet, and sets the view's watermark to `end_ts`.
#[utoipa::path(
    post, path = "/materialize", tag = "serving",
    request_body = MaterializeBody,
    responses(
        (status = 200, description = "Views materialized", body = MaterializeResponse),
        (status = 400, description = "Malformed JSON (`malformed_json`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown feature views, all named, or the table of a view named in `feature_views` is missing (`unknown_feature_views`, `table_not_found`); without `feature_views`, views without a table are reported as `skipped`", body = super::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json (`unsupported_media_type`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A timestamp is missing or not RFC 3339, or start_ts is after end_ts (`invalid_body`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 500, description = "A view's table is unreadable (`table_unreadable`, `internal_error`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The online store is unavailable (`online_store_unavailable`). On the s3 kind also when the object store cannot be reached (`storage_unavailable`); retry after `Retry-After` seconds.", body = super::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn materialize(
    state: web::Data<AppState>,
    body: web::Json<MaterializeBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let request = MaterializeRequest {
        feature_views: body.feature_views,
        start_micros: Some(timestamp("start_ts", &body.start_ts)?),
        end_micros: timestamp("end_ts", &body.end_ts)?,
        incremental: false,
    };
    Ok(response(state.store.materialize(request, |_| {}).await?))
}

/// Persist the online state of feature views from where the previous run ended.
///
/// Like `/materialize`, with each view's window starting at its watermark (or at
/// `end_ts - ttl` the first time, or the beginning for a view without TTL).
#[utoipa::path(
    post, path = "/materialize-incremental", tag = "serving",
    request_body = MaterializeIncrementalBody,
    responses(
        (status = 200, description = "Views materialized", body = MaterializeResponse),
        (status = 400, description = "Malformed JSON (`malformed_json`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown feature views, all named, or the table of a view named in `feature_views` is missing (`unknown_feature_views`, `table_not_found`); without `feature_views`, views without a table are reported as `skipped`", body = super::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json (`unsupported_media_type`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 422, description = "end_ts is missing or not RFC 3339 (`invalid_body`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 500, description = "A view's table is unreadable (`table_unreadable`, `internal_error`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The online store is unavailable (`online_store_unavailable`). On the s3 kind also when the object store cannot be reached (`storage_unavailable`); retry after `Retry-After` seconds.", body = super::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn materialize_incremental(
    state: web::Data<AppState>,
    body: web::Json<MaterializeIncrementalBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let request = MaterializeRequest {
        feature_views: body.feature_views,
        start_micros: None,
        end_micros: timestamp("end_ts", &body.end_ts)?,
        incremental: true,
    };
    Ok(response(state.store.materialize(request, |_| {}).await?))
}
