//! The REST API: actix-web handlers documented with utoipa.
//!
//! Handlers extract, parse into model types, make one `store` call and map the result; they
//! never touch storage directly. Every failure, including malformed JSON, wrong content types,
//! oversized bodies, unknown routes and wrong methods, leaves through [`error::ApiError`] as
//! problem+json.

pub mod auth;
mod body;
mod compact;
pub mod console;
pub mod dto;
pub mod error;
mod feast_import;
mod features;
pub mod floor;
mod gauges;
mod health;
pub mod historical;
pub mod materialize;
pub mod metrics;
pub mod online;
pub mod online_history;
pub mod openapi;
mod ops;
pub mod push;
mod query;
pub mod records;
mod registry;
mod registry_history;
mod stats;
pub mod versions;

use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

pub use error::{ApiError, FieldError, Problem};

use crate::store::FeatureStore;

/// `[api]` configuration: request limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Page size when `limit` is not given.
    pub default_page_limit: u64,
    /// Largest accepted `limit`.
    pub max_page_limit: u64,
    /// Most rows one table may return in a batch lookup.
    pub max_batch_rows: u64,
    /// Most records in one save.
    pub max_records_per_write: usize,
    /// Most columns in one table.
    pub max_columns: usize,
    /// Largest request body, in MiB.
    pub max_body_mb: usize,
    /// Most entity rows in one `/get-online-features` request.
    pub max_online_entity_rows: usize,
    /// Most rows `/get-historical-features` answers as JSON (Arrow and Parquet have no
    /// limit).
    pub max_historical_json_rows: usize,
    /// Largest `last_n` of one `/get-online-features` request: it bounds the values per
    /// entity row and feature that one answer holds.
    pub max_last_n: usize,
}

impl ApiConfig {
    /// Checks ranges once at start-up; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_page_limit == 0 {
            return Err("api.max_page_limit must be at least 1".into());
        }
        if self.default_page_limit > self.max_page_limit {
            return Err("api.default_page_limit must not exceed api.max_page_limit".into());
        }
        if self.max_body_mb == 0 {
            return Err("api.max_body_mb must be at least 1".into());
        }
        if self.max_last_n == 0 {
            return Err("api.max_last_n must be at least 1".into());
        }
        Ok(())
    }

    /// The body limit in bytes.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_mb.saturating_mul(1024 * 1024)
    }
}

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The store.
    pub store: FeatureStore,
    /// Limits.
    pub config: ApiConfig,
    /// Request counters and latencies.
    pub metrics: std::sync::Arc<metrics::RequestMetrics>,
    /// When the server started.
    pub started: std::time::Instant,
    /// The fixed answer of the load harness's floor route, when `serve --bench-floor-bytes`
    /// asked for it; `None` (the default) leaves the route out.
    pub floor: Option<floor::FloorBody>,
    /// The token check, when `[auth]` is enabled.
    pub auth: Option<std::sync::Arc<crate::auth::Authenticator>>,
}

impl AppState {
    /// State for a server starting now.
    pub fn new(store: FeatureStore, config: ApiConfig) -> Self {
        Self {
            store,
            config,
            metrics: Default::default(),
            started: std::time::Instant::now(),
            floor: None,
            auth: None,
        }
    }

    /// Adds the benchmark-only floor route answering `bytes` bytes of JSON (see [`floor`]).
    pub fn with_bench_floor(mut self, bytes: usize) -> Self {
        self.floor = Some(floor::FloorBody(floor::floor_body(bytes)));
        self
    }

    /// The same state requiring tokens when `auth` is given (`AuthConfig::authenticator`).
    pub fn with_auth(mut self, auth: Option<crate::auth::Authenticator>) -> Self {
        self.auth = auth.map(std::sync::Arc::new);
        self
    }
}

/// Registers every API route, the extractor error handlers and the fallbacks.
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<AppState>) {
    let body_limit = state.config.max_body_bytes();
    if let Some(body) = state.floor.clone() {
        cfg.app_data(web::Data::new(body))
            .service(web::resource(floor::FLOOR_PATH).to(floor::floor));
    }
    cfg.app_data(state)
        .app_data(
            web::JsonConfig::default()
                .limit(body_limit)
                .error_handler(move |err, _req| json_error(err, body_limit).into()),
        )
        .app_data(web::PathConfig::default().error_handler(|err, _req| path_error(err).into()))
        .app_data(web::QueryConfig::default().error_handler(|err, _req| query_error(err).into()))
        // The hot paths first: actix tries resources in registration order, so the online
        // lookup and the health probe match before the console's and the tables' patterns
        // (regular expressions) are tried. No other route can match these paths.
        .service(
            resource("/get-online-features").route(web::post().to(online::get_online_features)),
        )
        .service(resource("/health").route(web::get().to(health::health)))
        // The console's pages: `/`, `/ui` and `/ui/...`, none of which an API route matches.
        .configure(console::configure)
        .service(resource("/features").route(web::get().to(features::list_tables)))
        .service(resource("/features/batch").route(web::post().to(features::batch)))
        .service(
            resource("/features/{group}/{name}")
                .route(web::get().to(features::get_page))
                .route(web::post().to(features::save_table))
                .route(web::delete().to(features::delete_table)),
        )
        .service(resource("/push").route(web::post().to(push::push)))
        .service(
            resource("/get-historical-features")
                .route(web::post().to(historical::get_historical_features)),
        )
        .service(resource("/materialize").route(web::post().to(materialize::materialize)))
        .service(
            resource("/materialize-incremental")
                .route(web::post().to(materialize::materialize_incremental)),
        )
        .service(resource("/registry/entities").route(web::get().to(registry::entities)))
        .service(resource("/registry/feature-views").route(web::get().to(registry::feature_views)))
        .service(
            resource("/registry/entities/{name}").route(web::delete().to(registry::delete_entity)),
        )
        .service(
            resource("/registry/feature-views/{name}")
                .route(web::get().to(registry::feature_view))
                .route(web::delete().to(registry::delete_feature_view)),
        )
        .service(
            resource("/registry/feature-services").route(web::get().to(registry::feature_services)),
        )
        .service(
            resource("/registry/feature-services/{name}")
                .route(web::get().to(registry::feature_service))
                .route(web::delete().to(registry::delete_feature_service)),
        )
        .service(resource("/registry/apply").route(web::post().to(registry::apply)))
        .service(
            resource("/registry/import-feast").route(web::post().to(feast_import::import_feast)),
        )
        .service(resource("/registry/history").route(web::get().to(registry_history::history)))
        .service(
            resource("/registry/history/{version}").route(web::get().to(registry_history::version)),
        )
        .service(resource("/cache/stats").route(web::get().to(ops::cache_stats)))
        .service(resource("/cache").route(web::delete().to(ops::clear_cache)))
        .service(resource("/cache/{group}/{name}").route(web::delete().to(ops::clear_table_cache)))
        .service(resource("/performance").route(web::get().to(ops::performance)))
        .service(resource("/metrics").route(web::get().to(ops::metrics)))
        .service(
            resource("/features/{group}/{name}/info").route(web::get().to(features::table_info)),
        )
        .service(
            resource("/features/{group}/{name}/compact")
                .route(web::post().to(compact::compact_table)),
        )
        .service(
            resource("/features/{group}/{name}/versions")
                .route(web::get().to(versions::list_versions)),
        )
        .service(
            resource("/features/{group}/{name}/restore")
                .route(web::post().to(versions::restore_table)),
        )
        .service(
            resource("/features/{group}/{name}/diff").route(web::get().to(versions::diff_versions)),
        )
        .service(
            resource("/features/{group}/{name}/stats").route(web::get().to(stats::table_stats)),
        )
        .service(
            resource("/features/{group}/{name}/drift").route(web::get().to(stats::table_drift)),
        );
}

/// A resource whose unsupported methods answer 405 problem+json instead of an empty body.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

/// Rounds to three decimals, for figures shown to people.
pub(crate) fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

/// Bytes as MiB, to three decimals.
pub(crate) fn mib(bytes: u64) -> f64 {
    round3(bytes as f64 / (1024.0 * 1024.0))
}

fn json_error(err: JsonPayloadError, limit_bytes: usize) -> ApiError {
    match err {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            ApiError::PayloadTooLarge { limit_bytes }
        }
        JsonPayloadError::ContentType => {
            ApiError::UnsupportedMediaType("(missing or not JSON)".into())
        }
        JsonPayloadError::Deserialize(e) => deserialize_error(e),
        other => ApiError::MalformedJson(other.to_string()),
    }
}

/// A body that is JSON but of the wrong shape is a 422; one that is not JSON at all a 400.
pub(crate) fn deserialize_error(e: serde_json::Error) -> ApiError {
    if e.is_data() {
        ApiError::InvalidBody {
            detail: e.to_string(),
            errors: Vec::new(),
        }
    } else {
        ApiError::MalformedJson(e.to_string())
    }
}

fn path_error(err: PathError) -> ApiError {
    ApiError::InvalidParameter {
        parameter: "path".into(),
        message: err.to_string(),
    }
}

pub(crate) fn query_error(err: QueryPayloadError) -> ApiError {
    ApiError::InvalidParameter {
        parameter: "query".into(),
        message: err.to_string(),
    }
}

/// Fallback for resources reached with a method they do not serve.
async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed {
        method: req.method().to_string(),
        path: req.path().to_owned(),
    })
}

/// Fallback for paths no route matches.
pub async fn route_not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::RouteNotFound {
        method: req.method().to_string(),
        path: req.path().to_owned(),
    })
}
