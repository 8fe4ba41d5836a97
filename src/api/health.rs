//! `GET /health`.

use actix_web::{HttpResponse, web};
use chrono::{SecondsFormat, Utc};

use super::AppState;
use super::dto::{ChangeBusDto, DuplicateTableDto, HealthResponse, UnreadableTableDto};
use super::error::ApiError;
use crate::store::HealthReport;

/// Liveness and readiness: version, uptime, the backend (kind, bucket, prefix) and whether its
/// store answers, whether the data root is writable, table count, and the table files that
/// cannot be opened. Answered from memory alone (microseconds, no I/O): the checks that touch
/// the disk or Redis run in the background every `health.check_interval_seconds`, and this
/// reports their last result with its time and age.
#[utoipa::path(
    get, path = "/health", tag = "health",
    responses(
        (status = 200, description = "The server is up; `status` is `degraded` when the data root is not writable, a table file is unreadable (listed in `tables_unreadable`), a table name is in two groups (listed in `tables_duplicated`) the object store is unreachable (`storage_unavailable_reason`), the Redis online tier is (`online_store_unavailable_reason`) or the background checks are stale (`checks_stale_reason`); every other table, every cached read and every lookup from the local index is still served", body = HealthResponse),
        (status = 500, description = "Internal error", body = super::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn health(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let report = state.store.health();
    let online = state.store.online_status();
    let backend = state.store.backend();
    let outage = state
        .store
        .object_store_status()
        .and_then(|status| status.outage);
    let checks_stale_reason = report.checks_stale_reason();
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
        data_root_writable: report.data_root_writable(),
        table_count: report.table_count,
        disk_cache_enabled: report.disk_cache_disabled.is_none(),
        disk_cache_disabled_reason: report.disk_cache_disabled.clone(),
        timestamp: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        checked_at: report.last_check.as_ref().map(|check| {
            chrono::DateTime::<Utc>::from(check.checked_at)
                .to_rfc3339_opts(SecondsFormat::Millis, true)
        }),
        check_age_seconds: report
            .check_age()
            .map(|age| (age.as_secs_f64() * 1000.0).round() / 1000.0),
        check_interval_seconds: report.check_interval.as_secs(),
        checks_stale_reason,
        tables_unreadable: report
            .unreadable_tables()
            .iter()
            .map(|t| UnreadableTableDto {
                group: t.group.clone(),
                name: t.name.clone(),
                file: t.file.clone(),
                error: t.error.clone(),
            })
            .collect(),
        tables_duplicated: report
            .duplicate_tables()
            .iter()
            .map(|t| DuplicateTableDto {
                name: t.name.clone(),
                served: t.served.clone(),
                ignored: t.ignored.clone(),
            })
            .collect(),
        change_bus: state.store.change_bus_status().map(|bus| ChangeBusDto {
            connected: bus.connected,
            reason: bus.reason,
            replica_id: bus.replica_id,
            since: chrono::DateTime::<Utc>::from(bus.since)
                .to_rfc3339_opts(SecondsFormat::Secs, true),
        }),
    }))
}

/// Whether `/health` says `healthy` rather than `degraded`, given the store's report (its last
/// deep check, which must be fresh), the object store's outage and the Redis online tier's
/// (if any); `featurestore_health_degraded`
/// in `/metrics` uses the same rule, so an alert on it fires exactly when a load balancer
/// would see `degraded`.
pub(super) fn is_healthy(
    report: &HealthReport,
    object_store_outage: Option<&str>,
    online_store_outage: Option<&str>,
) -> bool {
    report.checks_stale_reason().is_none()
        && report.data_root_writable()
        && report.unreadable_tables().is_empty()
        && report.duplicate_tables().is_empty()
        && object_store_outage.is_none()
        && online_store_outage.is_none()
}
