//! Operations routes: cache statistics and clearing, the performance report, Prometheus
//! metrics.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::SystemTime;

use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::error::ApiError;
use super::features::table_path;
use super::metrics::escape;
use super::{AppState, mib, round3};
use crate::store::{CacheStats, TierStats};

/// One cache tier's statistics.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TierStats)]
pub struct TierStatsDto {
    /// Whether the tier is in use.
    pub enabled: bool,
    /// Why it is off, when it is.
    pub disabled_reason: Option<String>,
    /// Entries held.
    pub items: u64,
    /// Bytes held.
    pub bytes: u64,
    /// Entry bound (0: bounded by bytes only).
    pub max_items: u64,
    /// Byte bound.
    pub max_bytes: u64,
    /// Larger of items/max_items and bytes/max_bytes.
    pub usage_ratio: f64,
    /// Lookups answered by this tier.
    pub hits: u64,
    /// Lookups this tier could not answer.
    pub misses: u64,
    /// hits / (hits + misses).
    pub hit_rate: f64,
    /// Entries dropped to make room.
    pub evictions: u64,
    /// Entries dropped because their TTL passed.
    pub expired_items: u64,
    /// Mean age of the entries held, in seconds.
    pub average_age_seconds: f64,
}

impl From<TierStats> for TierStatsDto {
    fn from(s: TierStats) -> Self {
        Self {
            enabled: s.enabled,
            usage_ratio: round3(s.usage_ratio()),
            hit_rate: round3(s.hit_rate()),
            disabled_reason: s.disabled_reason,
            items: s.items,
            bytes: s.bytes,
            max_items: s.max_items,
            max_bytes: s.max_bytes,
            hits: s.hits,
            misses: s.misses,
            evictions: s.evictions,
            expired_items: s.expired,
            average_age_seconds: round3(s.average_age_seconds),
        }
    }
}

/// `GET /cache/stats`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CacheStatsResponse {
    /// The memory tier (LRU + TTL), asked first.
    pub memory: TierStatsDto,
    /// The disk tier (sled), asked on a memory miss.
    pub disk: TierStatsDto,
}

impl From<CacheStats> for CacheStatsResponse {
    fn from(s: CacheStats) -> Self {
        Self {
            memory: s.memory.into(),
            disk: s.disk.into(),
        }
    }
}

/// Answer to a cache clear.
#[derive(Debug, Serialize, ToSchema)]
pub struct CacheClearedResponse {
    /// What was cleared.
    #[schema(example = "cache entries of user_profile cleared")]
    pub message: String,
    /// Entries removed from both tiers (an entry held in both counts twice).
    #[schema(example = 4)]
    pub entries_removed: usize,
}

/// Request totals and latency.
#[derive(Debug, Serialize, ToSchema)]
pub struct PerformanceMetrics {
    /// Requests answered since start.
    pub total_requests: u64,
    /// Requests answered with a 4xx or 5xx status.
    pub error_count: u64,
    /// Mean latency in ms, errors included with their real duration.
    pub latency_mean_ms: f64,
    /// Median latency in ms over the most recent requests.
    pub latency_p50_ms: f64,
    /// 99th percentile latency in ms over the most recent requests.
    pub latency_p99_ms: f64,
    /// Seconds since start.
    pub uptime_seconds: f64,
}

/// Storage totals.
#[derive(Debug, Serialize, ToSchema)]
pub struct StorageSummary {
    /// Groups holding at least one table.
    pub total_feature_groups: usize,
    /// Tables.
    pub tables: usize,
    /// Size of all table files in MiB.
    pub total_size_mb: f64,
    /// Bytes kept for table history (versions other than the current ones, deleted tables'
    /// retained versions included); see `GET /features/{group}/{name}/versions`.
    #[schema(example = 5242880)]
    pub history_bytes: u64,
}

/// This server's traffic with the object store (s3 backend), since it started.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ObjectStoreStats)]
pub struct ObjectStoreStatsDto {
    /// Bytes of object data fetched (footers, column chunks, commit entries).
    #[schema(example = 1048576)]
    pub bytes_read: u64,
    /// Calls made to the store.
    #[schema(example = 420)]
    pub requests: u64,
    /// Calls that failed because the store was unreachable or answered 5xx.
    #[schema(example = 0)]
    pub failures: u64,
}

/// `GET /performance`: the 2.5 guide's performance report, with units in every name.
#[derive(Debug, Serialize, ToSchema)]
pub struct PerformanceReport {
    /// Request totals and latency.
    pub performance_metrics: PerformanceMetrics,
    /// The memory tier.
    pub memory_cache_stats: TierStatsDto,
    /// The disk tier.
    pub disk_cache_stats: TierStatsDto,
    /// The decoded view histories kept for training-data requests (`cache.history_max_mb`):
    /// a hit is a request answered from a kept history, a miss one that built it.
    pub history_cache_stats: TierStatsDto,
    /// Bytes held by the disk tier, in MiB.
    pub disk_cache_size_mb: f64,
    /// Storage totals.
    pub storage_info: StorageSummary,
    /// Traffic with the object store, with the s3 backend; null with the local one.
    pub object_store: Option<ObjectStoreStatsDto>,
}

/// Statistics of both cache tiers.
#[utoipa::path(
    get, path = "/cache/stats", tag = "operations",
    responses((status = 200, description = "Per-tier items, bytes, bounds, hits, misses, hit rate, evictions, expirations and age", body = CacheStatsResponse))
)]
pub async fn cache_stats(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(CacheStatsResponse::from(state.store.cache_stats()))
}

/// Empty both cache tiers.
#[utoipa::path(
    delete, path = "/cache", tag = "operations",
    responses(
        (status = 200, description = "Both tiers emptied", body = CacheClearedResponse),
        (status = 500, description = "Internal error (`internal_error`)", body = super::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn clear_cache(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let removed = state.store.clear_cache().await?;
    Ok(HttpResponse::Ok().json(CacheClearedResponse {
        message: format!("cache cleared: {removed} entries removed"),
        entries_removed: removed,
    }))
}

/// Drop the cached reads of one table from both tiers.
#[utoipa::path(
    delete, path = "/cache/{group}/{name}", tag = "operations",
    params(
        ("group" = String, Path, description = "Feature group", example = "user"),
        ("name" = String, Path, description = "Table name", example = "user_profile"),
    ),
    responses(
        (status = 200, description = "The table's entries dropped", body = CacheClearedResponse),
        (status = 400, description = "Invalid name (`invalid_name`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such table in this group (`table_not_found`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The name is in two groups on disk and this is the location not served (`duplicate_table`; see `/health`)", body = super::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn clear_table_cache(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (group, name) = table_path(path.into_inner())?;
    let removed = state.store.clear_table_cache(group, name.clone()).await?;
    Ok(HttpResponse::Ok().json(CacheClearedResponse {
        message: format!("cache entries of {name} cleared"),
        entries_removed: removed,
    }))
}

/// Request totals and latency, cache statistics and storage totals (with the bytes table
/// history keeps).
#[utoipa::path(
    get, path = "/performance", tag = "operations",
    responses((status = 200, description = "The performance report (with the s3 backend, `object_store` counts the bytes and calls this server made to the store)", body = PerformanceReport))
)]
pub async fn performance(state: web::Data<AppState>) -> HttpResponse {
    let requests = state.metrics.summary();
    let cache = state.store.cache_stats();
    let tables = state.store.catalog();
    let groups: BTreeSet<&str> = tables.iter().map(|t| t.group.as_str()).collect();
    let total_bytes: u64 = tables.iter().map(|t| t.file_size_bytes).sum();
    // A report that cannot measure history still reports the rest.
    let history_bytes = match state.store.history_usage().await {
        Ok(usage) => usage.total_bytes,
        Err(e) => {
            tracing::warn!(error = %e, "performance: cannot measure table history");
            0
        }
    };
    HttpResponse::Ok().json(PerformanceReport {
        performance_metrics: PerformanceMetrics {
            total_requests: requests.total,
            error_count: requests.errors,
            latency_mean_ms: round3(requests.mean_ms),
            latency_p50_ms: round3(requests.p50_ms),
            latency_p99_ms: round3(requests.p99_ms),
            uptime_seconds: round3(state.started.elapsed().as_secs_f64()),
        },
        disk_cache_size_mb: mib(cache.disk.bytes),
        memory_cache_stats: cache.memory.into(),
        disk_cache_stats: cache.disk.into(),
        history_cache_stats: state.store.history_stats().into(),
        storage_info: StorageSummary {
            total_feature_groups: groups.len(),
            tables: tables.len(),
            total_size_mb: mib(total_bytes),
            history_bytes,
        },
        object_store: state
            .store
            .object_store_status()
            .map(|s| ObjectStoreStatsDto {
                bytes_read: s.bytes_read,
                requests: s.requests,
                failures: s.failures,
            }),
    })
}

/// Prometheus metrics (text exposition format 0.0.4): requests and latency per route, cache
/// hits, misses and evictions per tier (the kept view histories as tier `history`), table rows and bytes, seconds since each table's
/// last write, each feature view's TTL and last write age (feature freshness), whether
/// `/health` is degraded, whether the online tier answers, the object store's reachability
/// and traffic (s3 kind), the bytes table history keeps (in all and per table), and the
/// change bus (with Redis).
#[utoipa::path(
    get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain; version=0.0.4"))
)]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let mut out = String::with_capacity(8192);
    state.metrics.render_prometheus(&mut out);
    super::gauges::render(&state, &mut out).await;
    super::metrics::render_change_bus(&mut out, state.store.change_bus_status().as_ref());
    let cache = state.store.cache_stats();
    let history = state.store.history_stats();
    // The kept histories report as a third tier, "history", beside the two read tiers.
    let tiers = [
        ("memory", &cache.memory),
        ("disk", &cache.disk),
        ("history", &history),
    ];
    for (name, help, kind, value) in [
        (
            "featurestore_cache_hits_total",
            "Cache lookups answered, by tier.",
            "counter",
            (|s: &TierStats| s.hits) as fn(&TierStats) -> u64,
        ),
        (
            "featurestore_cache_misses_total",
            "Cache lookups not answered, by tier.",
            "counter",
            |s| s.misses,
        ),
        (
            "featurestore_cache_evictions_total",
            "Cache entries dropped to make room, by tier.",
            "counter",
            |s| s.evictions,
        ),
        (
            "featurestore_cache_expired_total",
            "Cache entries dropped because their TTL passed, by tier.",
            "counter",
            |s| s.expired,
        ),
        (
            "featurestore_cache_items",
            "Cache entries held, by tier.",
            "gauge",
            |s| s.items,
        ),
        (
            "featurestore_cache_bytes",
            "Cache bytes held, by tier.",
            "gauge",
            |s| s.bytes,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (tier, stats) in tiers {
            let _ = writeln!(out, "{name}{{tier=\"{tier}\"}} {}", value(stats));
        }
    }
    let tables = state.store.catalog();
    let now = SystemTime::now();
    for (name, help) in [
        ("featurestore_table_rows", "Rows per table."),
        ("featurestore_table_bytes", "File size per table in bytes."),
        (
            "featurestore_table_last_write_age_seconds",
            "Seconds since each table's file was last written (feature freshness).",
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for t in &tables {
            let value = match name {
                "featurestore_table_rows" => t.rows as f64,
                "featurestore_table_bytes" => t.file_size_bytes as f64,
                _ => now
                    .duration_since(t.modified)
                    .map_or(0.0, |d| d.as_secs_f64().round()),
            };
            let _ = writeln!(
                out,
                "{name}{{group=\"{}\",table=\"{}\"}} {value}",
                escape(&t.group),
                escape(&t.name)
            );
        }
    }
    let online = state.store.online_status();
    let _ = writeln!(
        out,
        "# HELP featurestore_online_store_up Whether the online tier answered its last call (1) or not (0).\n\
         # TYPE featurestore_online_store_up gauge\n\
         featurestore_online_store_up{{backend=\"{}\"}} {}",
        online.backend,
        u8::from(online.unavailable.is_none())
    );
    HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8"))
        .body(out)
}
