//! The statistics routes: a version's per-column statistics and the drift between two
//! versions (issue 17). Both read only stored statistics (computed once for a version that
//! has none), never the table's rows on a repeated read.

use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, web};

use super::AppState;
use super::error::ApiError;
use super::features::table_path;
use super::query::StrictQuery;
use super::versions::{VersionPairQuery, VersionQuery};

/// Per-column statistics of a table version.
///
/// Row count; per column null count and rate, distinct count, and by kind: for numbers min,
/// max, mean, standard deviation, percentiles and a 20-bin histogram; for strings and
/// booleans the 10 most frequent values and the share of the rest; for timestamps the range
/// and the age of the newest value (measured when the answer is sent). Computed when the
/// version was written and stored beside it; `approximate` names a column's figures that
/// are estimates (see the README's "Statistics and drift"). Of the current version, or of
/// the one `version` or `as_of` selects.
#[utoipa::path(
    get, path = "/features/{group}/{name}/stats", tag = "features",
    params(
        ("group" = String, Path, description = "Feature group", example = "user"),
        ("name" = String, Path, description = "Table name", example = "user_profile"),
        VersionQuery,
    ),
    responses(
        (status = 200, description = "The version's statistics", body = crate::store::TableStats),
        (status = 400, description = "Invalid name or parameter, or both `version` and `as_of` (`invalid_name`, `invalid_parameter`, `unknown_query_parameter`, `conflicting_parameters`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such table in this group, or no such version, or statistics are turned off (`table_not_found`, `table_version_not_found`, `stats_disabled`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is in two groups on disk and this is the location not served (`duplicate_table`; see `/health`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 410, description = "The version asked for is no longer retained (`table_version_expired`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 500, description = "A version without stored statistics could not be read to compute them (`table_unreadable`, `table_metadata_unreadable`, `storage_io_error`, `internal_error`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 503, description = "On the s3 kind, when the object store cannot be reached (`storage_unavailable`); retry after `Retry-After` seconds.", body = super::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn table_stats(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: StrictQuery<VersionQuery>,
) -> Result<HttpResponse, ApiError> {
    let (group, name) = table_path(path.into_inner())?;
    let at = query.into_inner().selector()?;
    let body = state.store.table_stats(group, name, at).await?;
    Ok(HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(body))
}

/// How each column of a table moved between two versions.
///
/// Per column: the population stability index (PSI) of `to` against `from`, over `from`'s
/// histogram bins for numbers and over the value shares (the frequent values and the rest)
/// for strings and booleans; the change of null rate and of mean; and whether the PSI is at
/// or over `stats.psi_threshold` (listed in `over_threshold`). Columns in only one version
/// are `added` or `removed`. Reads the two versions' stored statistics, never their rows.
/// By default the current version against the one before it; a table with a single
/// retained version answers 409 `no_previous_version`.
#[utoipa::path(
    get, path = "/features/{group}/{name}/drift", tag = "features",
    params(
        ("group" = String, Path, description = "Feature group", example = "user"),
        ("name" = String, Path, description = "Table name", example = "user_profile"),
        VersionPairQuery,
    ),
    responses(
        (status = 200, description = "The drift of every column", body = crate::store::DriftReport),
        (status = 400, description = "Invalid name or parameter (`invalid_name`, `invalid_parameter`, `unknown_query_parameter`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 404, description = "The table has no history in this group, or a version was never written or is a deletion, or statistics are turned off (`table_not_found`, `table_version_not_found`, `stats_disabled`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 409, description = "No `from` was given and the table has no retained version before `to` (`no_previous_version`), or the name is in two groups on disk (`duplicate_table`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 410, description = "A version is no longer retained (`table_version_expired`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 500, description = "A version without stored statistics could not be read to compute them (`table_unreadable`, `storage_io_error`, `internal_error`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 503, description = "On the s3 kind, when the object store cannot be reached (`storage_unavailable`); retry after `Retry-After` seconds.", body = super::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn table_drift(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: StrictQuery<VersionPairQuery>,
) -> Result<HttpResponse, ApiError> {
    let (group, name) = table_path(path.into_inner())?;
    let (from, to) = query.into_inner().versions()?;
    let report = state.store.drift(group, name, from, to).await?;
    Ok(HttpResponse::Ok().json(report))
}
