//! The HTTP server: the API, the web console, Swagger UI and the OpenAPI document on one
//! listener.
//!
//! [`run`] takes its listener and a shutdown future from the caller, so tests bind port 0 and
//! stop the server when they are done, and `main` wires the shutdown to SIGTERM/SIGINT.

use std::future::Future;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::{Condition, Next, from_fn};
use actix_web::{App, HttpServer, web};
use serde::Deserialize;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

use crate::api::{self, AppState, openapi::ApiDoc};

/// `[server]` configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to bind.
    pub host: String,
    /// Port to bind.
    pub port: u16,
    /// Worker threads; 0 for one per core.
    pub workers: usize,
    /// Grace period for in-flight requests at shutdown.
    pub shutdown_timeout_secs: u64,
}

impl ServerConfig {
    /// Checks ranges once at start-up; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.host.trim().is_empty() {
            return Err("server.host must not be empty".into());
        }
        Ok(())
    }

    /// Whether the configured host is a loopback address (`localhost`, `127.x.y.z`, `::1`,
    /// also bracketed); `0.0.0.0`, `::` and every other name or address are not.
    pub fn is_loopback(&self) -> bool {
        let host = self.host.trim();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

/// Keeps the catalog in line with tables written by others: by watching the local tree (other
/// tools' files show up within about a second; without a watcher — inotify limits,
/// unsupported filesystems — they still appear on the next `GET /features`), or, on the s3
/// kind, by polling the bucket every `storage.poll_interval_ms`.
fn follow_tables(store: &crate::store::FeatureStore) -> Option<Box<dyn std::any::Any>> {
    let follower = store.clone();
    let round = move || {
        let changed = follower.refresh_tree();
        if !changed.is_empty() {
            tracing::info!(tables = ?changed, "tables changed in the store; reloaded");
        }
    };
    if let Some(interval) = store.poll_interval() {
        return match crate::poll::poll("follow-tables", interval, round) {
            Ok(guard) => Some(Box::new(guard)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start polling the bucket; other replicas' tables are seen on this replica's next write of each");
                None
            }
        };
    }
    let watch_dir = store.features_dir();
    match crate::watch::watch(&watch_dir, WATCH_DEBOUNCE, round) {
        Ok(guard) => Some(Box::new(guard)),
        Err(e) => {
            tracing::warn!(dir = %watch_dir.display(), error = %e, "cannot watch the feature tree; external changes are seen on the next listing");
            None
        }
    }
}

/// Runs `/health`'s deep checks once before the first request is accepted, so no answer goes
/// out without a result, then every `health.check_interval_seconds` on the server's runtime.
/// A round that outlasts the interval delays the next one (they never overlap); one that
/// never ends leaves the last result to age into `degraded`.
async fn start_health_checks(
    store: &crate::store::FeatureStore,
) -> actix_web::rt::task::JoinHandle<()> {
    store.run_health_checks().await;
    let checker = store.clone();
    actix_web::rt::spawn(async move {
        let every = checker.health_check_interval();
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            checker.run_health_checks().await;
        }
    })
}

/// Stops the health checks' task when the server stops.
struct HealthChecksTask(actix_web::rt::task::JoinHandle<()>);

impl Drop for HealthChecksTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Serves the API on `listener` until `shutdown` completes, then stops accepting and lets
/// in-flight requests finish (bounded by `shutdown_timeout_secs`).
pub async fn run(
    listener: TcpListener,
    state: AppState,
    config: &ServerConfig,
    shutdown: impl Future<Output = ()> + 'static,
) -> std::io::Result<()> {
    let store = state.store.clone();
    let _follow = follow_tables(&store);
    let _registry_updates = follow_registry(&store);
    // With Redis, other replicas' writes are applied as they announce them; polling stays.
    let _change_bus = store.start_change_bus();
    // Pushed rows reach the plain table files within `storage.fold_delay_ms` of the last push.
    let _fold = match store.start_folding() {
        Ok(guard) => Some(guard),
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the background folder; pushed parts are folded every storage.compact_after_parts pushes");
            None
        }
    };
    // Versions past `[storage.history]` retention give their space back within ten minutes
    // (the tree is also swept at start-up when no other process has it open).
    let _history_sweep = store.start_history_sweep(crate::store::HISTORY_SWEEP_INTERVAL);
    // Current versions written without statistics (other tools' files, older versions) get
    // them in the background, off the request path.
    let _stats_backfill = store.start_stats_backfill();
    let _health_checks = HealthChecksTask(start_health_checks(&store).await);
    // Freed pages go back to the system every few seconds, so RSS follows the live heap
    // instead of ratcheting up with fragmentation (see `memory`).
    let _trim = crate::memory::start_trimming(crate::memory::TRIM_INTERVAL);
    let data = web::Data::new(state);
    let workers = if config.workers == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        config.workers
    };
    let server = HttpServer::new(move || app(data.clone()))
        .listen(listener)?
        .workers(workers)
        .shutdown_timeout(config.shutdown_timeout_secs)
        .disable_signals()
        .run();
    let handle = server.handle();
    actix_web::rt::spawn(async move {
        shutdown.await;
        tracing::info!("shutting down: finishing in-flight requests");
        handle.stop(true).await;
    });
    let served = server.await;
    store.flush();
    served
}

/// The whole application over `data`: the API, the console at `/ui/` (and `/`), Swagger UI at
/// `/docs/`, `/openapi.json`, the request metrics and the problem+json answer for unknown
/// routes. [`run`] builds one per worker; tests drive it in-process
/// (`actix_web::test::init_service`), without a socket, when they need many thousands of
/// requests.
pub fn app(
    data: web::Data<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let requires_tokens = data.auth.is_some();
    App::new()
        // Inside the metrics, so refused requests are counted too.
        .wrap(Condition::new(
            requires_tokens,
            from_fn(api::auth::authenticate),
        ))
        .wrap(from_fn(observe_request))
        .configure(|cfg| api::configure(cfg, data))
        .service(web::redirect("/docs", "/docs/"))
        .service(
            SwaggerUi::new("/docs/{_:.*}")
                .url("/openapi.json", ApiDoc::openapi())
                // The UI would otherwise send the whole document to the public validator at
                // validator.swagger.io on every page load: a call-out a local server must not make.
                .config(utoipa_swagger_ui::Config::default().validator_url("none")),
        )
        .default_service(web::to(api::route_not_found))
}

/// Quiet time the watcher waits for before rescanning.
const WATCH_DEBOUNCE: Duration = Duration::from_millis(100);

/// Definitions another process applied (the `apply` command, another replica) are served
/// within about a second; every registry write re-reads the registry anyway. The local kind
/// watches the registry folder; the s3 kind has no folder to watch, so it asks the bucket every
/// `storage.poll_interval_ms` for entries newer than the one it serves (one LIST when nothing
/// changed).
fn follow_registry(store: &crate::store::FeatureStore) -> Option<Box<dyn std::any::Any>> {
    let follower = store.clone();
    if let Some(interval) = store.poll_interval() {
        let round = move || {
            if follower.reload_registry() {
                tracing::info!("the registry changed in the bucket; reloaded");
            }
        };
        return match crate::poll::poll("follow-registry", interval, round) {
            Ok(guard) => Some(Box::new(guard)),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start polling the registry; definitions applied by other replicas are seen on this replica's next registry write");
                None
            }
        };
    }
    let registry_dir = store.registry_dir();
    match crate::watch::watch(&registry_dir, WATCH_DEBOUNCE, move || {
        if follower.reload_registry() {
            tracing::info!("the registry changed on disk; reloaded");
        }
    }) {
        Ok(guard) => Some(Box::new(guard)),
        Err(e) => {
            tracing::warn!(dir = %registry_dir.display(), error = %e, "cannot watch the registry; definitions applied by other processes are seen on this server's next registry write");
            None
        }
    }
}

/// Records each request in the metrics (by matched route pattern, so label values stay few)
/// and logs it at debug level.
async fn observe_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let metrics = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.metrics.clone());
    let method = req.method().clone();
    let response = next.call(req).await?;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let route = response.request().match_pattern();
    let route = route.as_deref().unwrap_or("unmatched");
    if let Some(metrics) = metrics {
        metrics.record(route, method.as_str(), status, elapsed);
    }
    tracing::debug!(%method, route, status, micros = elapsed.as_micros() as u64, "request");
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_count_as_loopback() {
        let config = |host: &str| ServerConfig {
            host: host.into(),
            port: 0,
            workers: 1,
            shutdown_timeout_secs: 1,
        };
        for host in [
            "127.0.0.1",
            "127.1.2.3",
            "localhost",
            "LocalHost",
            "::1",
            "[::1]",
        ] {
            assert!(config(host).is_loopback(), "{host}");
        }
        for host in [
            "0.0.0.0",
            "::",
            "[::]",
            "10.0.0.1",
            "example.com",
            "127.example.com",
        ] {
            assert!(!config(host).is_loopback(), "{host}");
        }
    }
}
