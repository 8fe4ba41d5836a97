//! `GET /health`.

use actix_web::{HttpResponse, web};
use chrono::{SecondsFormat, Utc};

use super::AppState;
use super::dto::{DuplicateTableDto, HealthResponse, UnreadableTableDto};
use super::error::ApiError;
use crate::store::HealthReport;

/// Liveness and readiness: version, uptime, the backend (kind, bucket, prefix) and whether its
/// store answers, whether the data root is writable, table count, and the table files that
/// cannot be opened.
#[utoipa::path(
    get, path = "/health", tag = "health",
    responses(
        (status = 200, description = "The server is up; `status` is `degraded` when the data root is not writable, a table file is unreadable (listed in `tables_unreadable`), a table name is in two groups (listed in `tables_duplicated`) the object store is unreachable (`storage_unavailable_reason`) or the Redis online tier is (`online_store_unavailable_reason`); every other table, every cached read and every lookup from the local index is still served", body = HealthResponse),
        (status = 500, description = "Internal error", body = super::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn health(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let report = state.store.health().await?;
    state.store.check_online_store().await;
    let online = state.store.online_status();
    let backend = state.store.backend();
    // Read after the health probe above, so an outage it ran into (or a recovery it saw)
    // is what this answer says.
    let outage = state
        .store
        .object_store_status()
        .and_then(|status| status.outage);
    // Degraded, not down: a 200 keeps load balancers sending traffic to a server that still
    // serves every other table (and, during an object store outage, every cached read).
    let healthy = is_healthy(&report, outage.as_deref(), online.unavailable.as_deref());
    Ok(HttpResponse::Ok().json(HealthResponse {
        status: if healthy { "healthy" } else { "degraded" }.into(),
        backend: backend.kind.into(),
        bucket: backend.bucket.clone(),
        prefix: backend.prefix.clone(),
        storage_unavailable_reason: outage,
        online_backend: online.backend.into(),
        online_store_unavailable_reason: online.unavailable,
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_seconds: (report.uptime.as_secs_f64() * 1000.0).round() / 1000.0,
        data_root_writable: report.data_root_writable,
        table_count: report.table_count,
        disk_cache_enabled: report.disk_cache_disabled.is_none(),
        disk_cache_disabled_reason: report.disk_cache_disabled,
        timestamp: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        tables_unreadable: report
            .unreadable_tables
            .into_iter()
            .map(|t| UnreadableTableDto {
                group: t.group,
                name: t.name,
                file: t.file,
                error: t.error,
            })
            .collect(),
        tables_duplicated: report
            .duplicate_tables
            .into_iter()
            .map(|t| DuplicateTableDto {
                name: t.name,
                served: t.served,
                ignored: t.ignored,
            })
            .collect(),
    }))
}

/// Whether `/health` says `healthy` rather than `degraded`, given the store's report, the
/// object store's outage and the Redis online tier's (if any); `featurestore_health_degraded`
/// in `/metrics` uses the same rule, so an alert on it fires exactly when a load balancer
/// would see `degraded`.
pub(super) fn is_healthy(
    report: &HealthReport,
    object_store_outage: Option<&str>,
    online_store_outage: Option<&str>,
) -> bool {
    report.data_root_writable
        && report.unreadable_tables.is_empty()
        && report.duplicate_tables.is_empty()
        && object_store_outage.is_none()
        && online_store_outage.is_none()
}
