//! Request metrics: counts per route, method and status, a latency histogram per route, and
//! a window of recent latencies for the percentiles of `/performance`.
//!
//! Errors are timed like any other request (the 2.5 sketch counted failures as zero-time
//! requests, which flattered its average). One short lock per request; no allocation once a
//! route has been seen.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

/// The change bus's gauge and counters (only with Redis configured): whether the
/// subscription is up, and the messages sent and received.
pub fn render_change_bus(out: &mut String, bus: Option<&crate::store::ChangeBusStatus>) {
    let Some(bus) = bus else {
        return;
    };
    let _ = writeln!(
        out,
        "# HELP featurestore_change_bus_up Whether this replica is subscribed to the change bus (1) or not (0).\n\
         # TYPE featurestore_change_bus_up gauge\n\
         featurestore_change_bus_up {}\n\
         # HELP featurestore_change_bus_messages_total Change-bus messages this replica published (sent) and applied from other replicas (received).\n\
         # TYPE featurestore_change_bus_messages_total counter\n\
         featurestore_change_bus_messages_total{{direction=\"sent\"}} {}\n\
         featurestore_change_bus_messages_total{{direction=\"received\"}} {}",
        u8::from(bus.connected),
        bus.sent,
        bus.received
    );
}

/// Upper bounds of the latency histogram, in seconds.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Latencies kept for percentiles.
const RECENT_WINDOW: usize = 16_384;

#[derive(Debug, Default)]
struct RouteStats {
    by_status: BTreeMap<u16, u64>,
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum_seconds: f64,
}

#[derive(Debug, Default)]
struct Inner {
    routes: HashMap<String, HashMap<String, RouteStats>>,
    recent_micros: VecDeque<u64>,
    total: u64,
    errors: u64,
    sum_micros: u128,
}

/// Request counters and latencies of the server.
#[derive(Debug, Default)]
pub struct RequestMetrics {
    inner: Mutex<Inner>,
}

/// The request part of `/performance`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestSummary {
    /// Requests answered.
    pub total: u64,
    /// Requests answered with a 4xx or 5xx status.
    pub errors: u64,
    /// Mean latency in ms (all requests, errors included with their real time).
    pub mean_ms: f64,
    /// Median latency in ms over the recent window.
    pub p50_ms: f64,
    /// 99th percentile latency in ms over the recent window.
    pub p99_ms: f64,
}

impl RequestMetrics {
    /// Records one answered request. `route` is the matched pattern (`/features/{group}/{name}`)
    /// so that label values stay few.
    pub fn record(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let micros = elapsed.as_micros() as u64;
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.total += 1;
        if status >= 400 {
            inner.errors += 1;
        }
        inner.sum_micros += u128::from(micros);
        if inner.recent_micros.len() == RECENT_WINDOW {
            inner.recent_micros.pop_front();
        }
        inner.recent_micros.push_back(micros);
        if !inner.routes.contains_key(route) {
            inner.routes.insert(route.to_owned(), HashMap::new());
        }
        let Some(methods) = inner.routes.get_mut(route) else {
            return;
        };
        if !methods.contains_key(method) {
            methods.insert(method.to_owned(), RouteStats::default());
        }
        let Some(stats) = methods.get_mut(method) else {
            return;
        };
        *stats.by_status.entry(status).or_default() += 1;
        stats.count += 1;
        stats.sum_seconds += seconds;
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| seconds <= *b) {
            stats.buckets[i] += 1;
        }
    }

    /// Totals and latency percentiles.
    pub fn summary(&self) -> RequestSummary {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut recent: Vec<u64> = inner.recent_micros.iter().copied().collect();
        let (total, errors, sum) = (inner.total, inner.errors, inner.sum_micros);
        drop(inner);
        recent.sort_unstable();
        let percentile = |q: f64| -> f64 {
            if recent.is_empty() {
                return 0.0;
            }
            let rank = ((q * recent.len() as f64).ceil() as usize).clamp(1, recent.len()) - 1;
            recent[rank] as f64 / 1000.0
        };
        RequestSummary {
            total,
            errors,
            mean_ms: if total == 0 {
                0.0
            } else {
                sum as f64 / total as f64 / 1000.0
            },
            p50_ms: percentile(0.50),
            p99_ms: percentile(0.99),
        }
    }

    /// Appends the request metrics in the Prometheus text format.
    pub fn render_prometheus(&self, out: &mut String) {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut routes: Vec<(&String, &HashMap<String, RouteStats>)> =
            inner.routes.iter().collect();
        routes.sort_by_key(|(r, _)| r.as_str());
        out.push_str("# HELP featurestore_http_requests_total HTTP requests answered, by route, method and status.\n");
        out.push_str("# TYPE featurestore_http_requests_total counter\n");
        for (route, methods) in &routes {
            let mut methods: Vec<_> = methods.iter().collect();
            methods.sort_by_key(|(m, _)| m.as_str());
            for (method, stats) in &methods {
                for (status, count) in &stats.by_status {
                    let _ = writeln!(
                        out,
                        "featurestore_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {count}",
                        escape(route),
                        escape(method)
                    );
                }
            }
        }
        out.push_str("# HELP featurestore_http_request_duration_seconds HTTP request latency, by route and method.\n");
        out.push_str("# TYPE featurestore_http_request_duration_seconds histogram\n");
        for (route, methods) in &routes {
            let mut methods: Vec<_> = methods.iter().collect();
            methods.sort_by_key(|(m, _)| m.as_str());
            for (method, stats) in &methods {
                let labels = format!("route=\"{}\",method=\"{}\"", escape(route), escape(method));
                let mut cumulative = 0;
                for (bound, count) in LATENCY_BUCKETS.iter().zip(stats.buckets) {
                    cumulative += count;
                    let _ = writeln!(
                        out,
                        "featurestore_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                    );
                }
                let _ = writeln!(
                    out,
                    "featurestore_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                    stats.count
                );
                let _ = writeln!(
                    out,
                    "featurestore_http_request_duration_seconds_sum{{{labels}}} {}",
                    stats.sum_seconds
                );
                let _ = writeln!(
                    out,
                    "featurestore_http_request_duration_seconds_count{{{labels}}} {}",
                    stats.count
                );
            }
        }
    }
}

/// Escapes a Prometheus label value.
pub fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_timed_not_counted_as_zero() {
        let metrics = RequestMetrics::default();
        metrics.record("/health", "GET", 200, Duration::from_millis(2));
        metrics.record("/features", "GET", 500, Duration::from_millis(4));
        let summary = metrics.summary();
        assert_eq!((summary.total, summary.errors), (2, 1));
        assert!((summary.mean_ms - 3.0).abs() < 1e-9);
        assert!((summary.p99_ms - 4.0).abs() < 1e-9);
        assert!((summary.p50_ms - 2.0).abs() < 1e-9);
    }

    #[test]
    fn prometheus_text_has_counts_and_cumulative_buckets() {
        let metrics = RequestMetrics::default();
        metrics.record(
            "/features/{group}/{name}",
            "GET",
            200,
            Duration::from_micros(300),
        );
        metrics.record(
            "/features/{group}/{name}",
            "GET",
            404,
            Duration::from_millis(3),
        );
        let mut out = String::new();
        metrics.render_prometheus(&mut out);
        assert!(out.contains("featurestore_http_requests_total{route=\"/features/{group}/{name}\",method=\"GET\",status=\"404\"} 1"));
        assert!(out.contains("le=\"0.0005\"} 1"));
        assert!(out.contains("le=\"0.005\"} 2"));
        assert!(out.contains("featurestore_http_request_duration_seconds_count{route=\"/features/{group}/{name}\",method=\"GET\"} 2"));
    }
}
