//! `POST /push`: Feast's push, rows written straight into a feature view.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::error::ApiError;
use super::online::OrderedEntities;
use super::{ApiConfig, AppState};
use crate::store::{PushOutcome, PushRequest, PushTarget};

/// Where pushed rows go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PushTo {
    /// The online store only: served by the next lookup, kept across restarts, not in the
    /// table.
    #[default]
    Online,
    /// The table only (appended; served online too, since online serving follows the
    /// tables).
    Offline,
    /// Both.
    OnlineAndOffline,
}

/// `POST /push` (Feast's body; fields Feast sends that we do not use are accepted).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({
    "push_source_name": "user_profile_push",
    "to": "online_and_offline",
    "df": {"user_id": [1001], "age": [34], "avg_rating": [4.5], "total_movies_watched": [120], "favorite_genre": ["Drama"], "account_created_days": [400], "event_timestamp": ["2026-11-20T10:59:42Z"]}
}))]
pub struct PushBody {
    /// A view's `push_source` name, or a view name (or give `feature_view`).
    #[serde(default)]
    pub push_source_name: Option<String>,
    /// The view to push to (instead of `push_source_name`).
    #[serde(default)]
    pub feature_view: Option<String>,
    /// Columnar rows: column → one value per row. Every column of the view's table is
    /// required, with values of its types; join keys and the event timestamp may not be null.
    #[schema(value_type = std::collections::BTreeMap<String, Vec<super::dto::Scalar>>)]
    pub df: OrderedEntities,
    /// `online` (default, as in Feast), `offline` or `online_and_offline`.
    #[serde(default)]
    #[schema(value_type = PushTo)]
    pub to: Option<Value>,
}

/// Reads `to` by hand: serde reports a non-string enum value as a JSON syntax error, which
/// would make a well-formed body a 400 `malformed_json`.
fn target(to: Option<Value>) -> Result<PushTo, ApiError> {
    match to {
        None => Ok(PushTo::default()),
        Some(value) => serde_json::from_value(value.clone()).map_err(|_| {
            ApiError::invalid_body_field(
                "to",
                format!("must be \"online\", \"offline\" or \"online_and_offline\", got {value}"),
            )
        }),
    }
}

/// A push writes records like a save does, so the same limits apply to it.
fn check_limits(df: &[(String, Vec<Value>)], config: &ApiConfig) -> Result<(), ApiError> {
    let rows = df.iter().map(|(_, values)| values.len()).max().unwrap_or(0);
    if rows > config.max_records_per_write {
        return Err(ApiError::invalid_body_field(
            "df",
            format!(
                "{rows} rows is more than api.max_records_per_write ({})",
                config.max_records_per_write
            ),
        ));
    }
    if df.len() > config.max_columns {
        return Err(ApiError::invalid_body_field(
            "df",
            format!(
                "{} columns is more than api.max_columns ({})",
                df.len(),
                config.max_columns
            ),
        ));
    }
    Ok(())
}

/// What the push did to the table, when it went offline.
#[derive(Debug, Serialize, ToSchema)]
pub struct OfflineWrite {
    /// The table's new version.
    pub version: u64,
    /// Rows in the table now.
    pub total_rows: u64,
    /// Appended part files not yet folded into the table file (the server folds them in the
    /// background, `storage.fold_delay_ms` after the table's last push).
    pub parts: usize,
    /// Whether this push rewrote the table file instead of appending a part: a value needed a
    /// wider stored type than the table had (or a column that held only nulls got its first
    /// values), and parts always share the table file's stored types.
    pub compacted: bool,
}

/// The 200 answer of `/push`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"feature_view": "user_profile", "rows": 1, "to": "online_and_offline", "offline": {"version": 5, "total_rows": 300001, "parts": 1, "compacted": false}}))]
pub struct PushResponse {
    /// The view written.
    pub feature_view: String,
    /// Rows pushed.
    pub rows: u64,
    /// Where they went.
    pub to: PushTo,
    /// The append to the table (absent for `online`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offline: Option<OfflineWrite>,
}

/// Push rows to a feature view (Feast-compatible).
///
/// The rows are validated against the view's table first; on any error nothing is written.
/// Offline rows are appended as a part file (no rewrite of the table) and folded into the
/// table file in the background, `storage.fold_delay_ms` after the table's last push (or at
/// once with `POST /features/{group}/{name}/compact`); online rows are stored durably in the
/// online store. Either way the next `/get-online-features` sees them. A value that needs a
/// wider type than the table stores, or the first values of a column that held only nulls,
/// widen the table's stored type.
#[utoipa::path(
    post, path = "/push", tag = "serving",
    request_body = PushBody,
    responses(
        (status = 200, description = "Rows written", body = PushResponse),
        (status = 400, description = "Malformed JSON (`malformed_json`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown push source or feature view, or its table is missing (`unknown_push_source`, `unknown_feature_views`, `table_not_found`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large (`payload_too_large`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json (`unsupported_media_type`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A column is missing or unknown, a value does not fit its column's type, columns differ in length, a join key or event timestamp is null, more rows than `api.max_records_per_write` or columns than `api.max_columns`, or `to` is not one of the three targets (`invalid_body`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 500, description = "The table is unreadable (`table_unreadable`, `internal_error`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The online store is unavailable, or the table file is being rewritten by another tool (`online_store_unavailable`, `table_file_changing`). On the s3 kind also when the object store cannot be reached (`storage_unavailable`) or other replicas kept committing to the table first (`storage_contended`); retry after `Retry-After` seconds.", body = super::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn push(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
    body: super::body::BlockingJson<PushBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    check_limits(&body.df.0, &state.config)?;
    let to = target(body.to)?;
    let request = PushRequest {
        push_source_name: body.push_source_name,
        feature_view: body.feature_view,
        df: body.df.0,
        to: match to {
            PushTo::Online => PushTarget::Online,
            PushTo::Offline => PushTarget::Offline,
            PushTo::OnlineAndOffline => PushTarget::OnlineAndOffline,
        },
        written_by: super::auth::token_name(&req),
    };
    let PushOutcome {
        feature_view,
        rows,
        offline,
    } = state.store.push(request).await?;
    Ok(HttpResponse::Ok().json(PushResponse {
        feature_view,
        rows,
        to,
        offline: offline.map(|o| OfflineWrite {
            version: o.version,
            total_rows: o.total_rows,
            parts: o.parts,
            compacted: o.compacted,
        }),
    }))
}
