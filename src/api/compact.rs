//! `POST /features/{group}/{name}/compact`: fold a table's pushed parts into its file now.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use super::features::table_path;

/// The 200 answer of a compaction.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"feature_group": "user", "feature_name": "user_profile", "version": 6, "rows": 300002, "parts_folded": 2}))]
pub struct CompactResponse {
    /// The table's group.
    pub feature_group: String,
    /// The table.
    pub feature_name: String,
    /// The table's version: a fold changes no row, so the version stays the one of the last
    /// write (cached pages of it stay true).
    pub version: u64,
    /// Rows in the table file now: every acknowledged row.
    pub rows: u64,
    /// Pushed parts folded into the file; 0 when it already held every row.
    pub parts_folded: usize,
}

/// Fold the rows pushed to a table into its file now.
///
/// Rows pushed offline are appended as part files under
/// `features/<group>/_appends/<name>/` and folded into `<name>.parquet` in the background
/// within `storage.fold_delay_ms` of the last push. This folds them at once, so tools that read
/// only the table file see every acknowledged row when it returns. Readers in flight keep the
/// snapshot they started on; the table's stored types are kept.
#[utoipa::path(
    post, path = "/features/{group}/{name}/compact", tag = "features",
    params(
        ("group" = String, Path, description = "Feature group", example = "user"),
        ("name" = String, Path, description = "Table name", example = "user_profile"),
    ),
    responses(
        (status = 200, description = "Folded (or nothing to fold)", body = CompactResponse),
        (status = 400, description = "Invalid name (`invalid_name`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such table in this group (`table_not_found`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 500, description = "The table or a part is unreadable, or an internal failure (`table_unreadable`, `table_metadata_unreadable`, `storage_io_error`, `internal_error`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The data root is read-only, or the table file is being rewritten by another tool (`data_root_not_writable`, `table_file_changing`). On the s3 kind also when the object store cannot be reached (`storage_unavailable`) or other replicas kept committing to the table first (`storage_contended`); retry after `Retry-After` seconds.", body = super::Problem, content_type = "application/problem+json"),
        (status = 507, description = "The disk is full (`storage_full`); the table and its parts are unchanged", body = super::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn compact_table(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (group, name) = table_path(path.into_inner())?;
    let folded = state.store.compact(group.clone(), name.clone()).await?;
    Ok(HttpResponse::Ok().json(CompactResponse {
        feature_group: group.to_string(),
        feature_name: name.to_string(),
        version: folded.version,
        rows: folded.rows,
        parts_folded: folded.parts_folded,
    }))
}
