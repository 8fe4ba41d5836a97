//! The gauges of `GET /metrics` that alerting rules are written against
//! (`config/prometheus-alerts.yml`): whether `/health` would say `degraded`, whether the
//! object store answers, each feature view's freshness beside its TTL, the space table
//! history takes, and each table's null rates and drift (from stored statistics).
//!
//! Everything here comes from the store facade's read-only reports (`health`,
//! `object_store_status`, `catalog`, `registry`), so a scrape costs a listing of each table's
//! history folders (health comes from the background checks' last result) and never reads
//! table data.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::SystemTime;

use super::AppState;
use super::health::is_healthy;
use super::metrics::escape;

/// Appends the health, object-store and feature-view gauges in the Prometheus text format.
pub async fn render(state: &AppState, out: &mut String) {
    render_health(state, out);
    render_object_store(state, out);
    render_feature_views(state, out);
    render_history(state, out).await;
    render_stats(state, out).await;
}

/// Per table, from its current version's stored statistics (a scrape decodes no table):
/// `featurestore_column_null_rate` of each column, `featurestore_table_drift_psi` of each
/// column compared with the previous version, and `featurestore_table_drift_psi_max`, the
/// largest of them, which the drift alert watches. A table whose current version has no
/// statistics yet (computed within a second or two) has no series; one with no previous
/// version (or none with statistics) has no drift series.
async fn render_stats(state: &AppState, out: &mut String) {
    let tables = match state.store.stats_gauges().await {
        Ok(tables) => tables,
        Err(e) => {
            tracing::warn!(error = %e, "metrics: cannot read the tables' statistics");
            return;
        }
    };
    out.push_str(
        "# HELP featurestore_column_null_rate Share of null values in each column of each \
         table's current version.\n# TYPE featurestore_column_null_rate gauge\n",
    );
    let labels = |group: &str, table: &str| {
        format!("group=\"{}\",table=\"{}\"", escape(group), escape(table))
    };
    for t in &tables {
        for (column, rate) in &t.null_rates {
            let _ = writeln!(
                out,
                "featurestore_column_null_rate{{{},column=\"{}\"}} {rate}",
                labels(&t.group, &t.table),
                escape(column)
            );
        }
    }
    out.push_str(
        "# HELP featurestore_table_drift_psi Population stability index of each column of each \
         table's current version against its previous version.\n\
         # TYPE featurestore_table_drift_psi gauge\n",
    );
    for t in &tables {
        for (column, psi) in &t.drift_psi {
            let _ = writeln!(
                out,
                "featurestore_table_drift_psi{{{},column=\"{}\"}} {psi}",
                labels(&t.group, &t.table),
                escape(column)
            );
        }
    }
    out.push_str(
        "# HELP featurestore_table_drift_psi_max The largest featurestore_table_drift_psi of \
         each table: at or over stats.psi_threshold, a column drifted.\n\
         # TYPE featurestore_table_drift_psi_max gauge\n",
    );
    for t in &tables {
        if let Some(max) = t.drift_psi.iter().map(|(_, psi)| *psi).reduce(f64::max) {
            let _ = writeln!(
                out,
                "featurestore_table_drift_psi_max{{{}}} {max}",
                labels(&t.group, &t.table)
            );
        }
    }
}

/// `featurestore_history_bytes` (every table's history, deleted tables' included) and, per
/// table in the catalog, `featurestore_table_history_bytes`: space kept for versions other
/// than the current ones, which retention (`[storage.history]`) bounds.
async fn render_history(state: &AppState, out: &mut String) {
    let usage = match state.store.history_usage().await {
        Ok(usage) => usage,
        Err(e) => {
            // No series rather than a wrong zero.
            tracing::warn!(error = %e, "metrics: cannot measure table history");
            return;
        }
    };
    let _ = writeln!(
        out,
        "# HELP featurestore_history_bytes Bytes kept for table history: versions other than \
         the current ones, within [storage.history] retention.\n\
         # TYPE featurestore_history_bytes gauge\nfeaturestore_history_bytes {}",
        usage.total_bytes
    );
    out.push_str(
        "# HELP featurestore_table_history_bytes Bytes kept for each table's versions other than \
         its current one.\n# TYPE featurestore_table_history_bytes gauge\n",
    );
    for (group, table, bytes) in &usage.tables {
        let _ = writeln!(
            out,
            "featurestore_table_history_bytes{{group=\"{}\",table=\"{}\"}} {bytes}",
            escape(group),
            escape(table)
        );
    }
}

/// `featurestore_health_degraded`: 1 exactly when `/health` answers `status: degraded`.
fn render_health(state: &AppState, out: &mut String) {
    // The same facts `/health` reads (the last background check and what memory says now),
    // so a scrape touches neither the disk nor Redis.
    let report = state.store.health();
    let online = state.store.online_status().unavailable;
    let outage = state.store.object_store_status().and_then(|s| s.outage);
    let degraded = !is_healthy(&report, outage.as_deref(), online.as_deref());
    out.push_str(
        "# HELP featurestore_health_degraded 1 when /health answers status \"degraded\" \
         (see its fields for why), else 0.\n# TYPE featurestore_health_degraded gauge\n",
    );
    let _ = writeln!(out, "featurestore_health_degraded {}", u8::from(degraded));
}

/// The object store's reachability and traffic; nothing on the local kind, which has none.
fn render_object_store(state: &AppState, out: &mut String) {
    let Some(status) = state.store.object_store_status() else {
        return;
    };
    let up = u8::from(status.outage.is_none());
    for (name, help, kind, value) in [
        (
            "featurestore_object_store_up",
            "1 while the object store answers, 0 from a call that found it unreachable (or \
             answering 5xx) until the next call that succeeds.",
            "gauge",
            u64::from(up),
        ),
        (
            "featurestore_object_store_requests_total",
            "Calls this replica made to the object store.",
            "counter",
            status.requests,
        ),
        (
            "featurestore_object_store_failures_total",
            "Calls to the object store that failed because it was unreachable or answered 5xx.",
            "counter",
            status.failures,
        ),
        (
            "featurestore_object_store_read_bytes_total",
            "Bytes of object data this replica fetched from the object store.",
            "counter",
            status.bytes_read,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
}

/// Per registered feature view: its TTL (views without one are never stale, and have no
/// series) and the seconds since its table was last written (base file or appended part).
/// An alert compares the two: past the TTL, every lookup of the view answers
/// `OUTSIDE_MAX_AGE` unless rows were pushed to the online tier only.
fn render_feature_views(state: &AppState, out: &mut String) {
    let registry = state.store.registry();
    let modified: HashMap<String, SystemTime> = state
        .store
        .catalog()
        .into_iter()
        .map(|t| (t.name, t.modified))
        .collect();
    let mut views: Vec<_> = registry.feature_views.iter().collect();
    views.sort_by(|a, b| a.name.cmp(&b.name));
    let labels =
        |group: &str, view: &str| format!("group=\"{}\",view=\"{}\"", escape(group), escape(view));
    out.push_str(
        "# HELP featurestore_feature_view_ttl_seconds Each feature view's TTL: older values are \
         served as OUTSIDE_MAX_AGE. Views without a TTL have no series.\n\
         # TYPE featurestore_feature_view_ttl_seconds gauge\n",
    );
    for view in &views {
        if let Some(ttl) = view.ttl_seconds {
            let _ = writeln!(
                out,
                "featurestore_feature_view_ttl_seconds{{{}}} {ttl}",
                labels(&view.group, &view.name)
            );
        }
    }
    out.push_str(
        "# HELP featurestore_feature_view_last_write_age_seconds Seconds since each feature \
         view's table was last written (a save, an offline push, a fold); no series while the \
         table does not exist.\n\
         # TYPE featurestore_feature_view_last_write_age_seconds gauge\n",
    );
    let now = SystemTime::now();
    for view in &views {
        if let Some(modified) = modified.get(&view.name) {
            let age = now
                .duration_since(*modified)
                .map_or(0.0, |d| d.as_secs_f64().round());
            let _ = writeln!(
                out,
                "featurestore_feature_view_last_write_age_seconds{{{}}} {age}",
                labels(&view.group, &view.name)
            );
        }
    }
}
