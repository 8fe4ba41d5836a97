//! The gauges of `GET /metrics` that the shipped alerting rules (`config/prometheus-alerts.yml`)
//! are written against: `/health`'s degraded state, the object store's reachability, and each
//! feature view's last write beside its TTL.

use std::time::Duration;

use serde_json::json;

use featurestore::online::redis::OnlineBackend;

use crate::common::child::ChildServer;
use crate::common::health::health_when;
use crate::common::redis::{dedicated_redis, unique_prefix};
use crate::common::replicas::{Replicas, save, wait_for};
use crate::common::s3::dedicated_s3;
use crate::common::{TestResult, TestServer};

/// The value of the sample `series` (name and labels exactly as exposed) in a scrape.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}

/// A scrape of `/metrics`.
async fn scrape(server: &TestServer) -> TestResult<String> {
    let response = server.client.get(server.url("/metrics")).send().await?;
    assert_eq!(response.status().as_u16(), 200);
    Ok(response.text().await?)
}

/// A scrape of `/metrics` on a replica.
async fn node_metrics(node: &ChildServer) -> TestResult<String> {
    let response = node.client.get(node.url("/metrics")).send().await?;
    assert_eq!(response.status().as_u16(), 200);
    Ok(response.text().await?)
}

/// One row keyed by `key`, as a save body.
fn rows(key: &str) -> serde_json::Value {
    json!({"records": [{key: 1, "score": 0.5, "event_timestamp": "2026-01-01T00:00:00Z"}],
           "entity_key": [key]})
}

#[tokio::test]
async fn metrics_report_each_feature_views_ttl_and_the_age_of_its_last_write() -> TestResult {
    let server = TestServer::start()?;
    server.save("user", "user_stats", rows("user_id")).await?;
    server
        .save("content", "item_stats", rows("item_id"))
        .await?;
    server
        .apply(&json!({
            "entities": [{"name": "user_id", "value_type": "int64"},
                         {"name": "item_id", "value_type": "int64"}],
            "feature_views": [
                {"name": "user_stats", "group": "user", "entities": ["user_id"],
                 "timestamp_field": "event_timestamp", "ttl_seconds": 3600},
                {"name": "item_stats", "group": "content", "entities": ["item_id"],
                 "timestamp_field": "event_timestamp"},
            ],
        }))
        .await?;
    let text = scrape(&server).await?;
    let user = r#"{group="user",view="user_stats"}"#;
    let item = r#"{group="content",view="item_stats"}"#;
    assert_eq!(
        sample(
            &text,
            &format!("featurestore_feature_view_ttl_seconds{user}")
        ),
        Some(3600.0),
        "{text}"
    );
    // A view without a TTL is never stale: no TTL series to compare against.
    assert!(
        !text.contains(&format!("featurestore_feature_view_ttl_seconds{item}")),
        "{text}"
    );
    for labels in [user, item] {
        let series = format!("featurestore_feature_view_last_write_age_seconds{labels}");
        let age = sample(&text, &series).ok_or_else(|| format!("no {series} in\n{text}"))?;
        assert!((0.0..60.0).contains(&age), "{series} = {age}");
    }
    for name in [
        "featurestore_feature_view_ttl_seconds",
        "featurestore_feature_view_last_write_age_seconds",
    ] {
        assert!(text.contains(&format!("# TYPE {name} gauge\n")), "{text}");
    }
    Ok(())
}

#[tokio::test]
async fn metrics_health_degraded_is_1_exactly_when_health_says_degraded() -> TestResult {
    let server = TestServer::start()?;
    server.save("user", "user_stats", rows("user_id")).await?;
    let (_, health) = server.get("/health").await?;
    assert_eq!(health["status"], "healthy", "{health}");
    let text = scrape(&server).await?;
    assert_eq!(
        sample(&text, "featurestore_health_degraded"),
        Some(0.0),
        "{text}"
    );
    // The local kind has no object store to report on.
    assert!(!text.contains("featurestore_object_store_up"), "{text}");

    // Another tool left a damaged file in place of the table a while ago (a file changed in
    // the last few seconds may still be being copied in: /health waits for it to settle).
    let damaged = server.root().join("features/user/user_stats.parquet");
    std::fs::write(&damaged, b"not parquet at all")?;
    std::fs::File::options()
        .write(true)
        .open(&damaged)?
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(60))?;
    // Found by the next round of background checks, which both answers read.
    health_when(&server, "the damaged file", |h| h["status"] == "degraded").await?;
    let text = scrape(&server).await?;
    assert_eq!(
        sample(&text, "featurestore_health_degraded"),
        Some(1.0),
        "{text}"
    );
    Ok(())
}

#[tokio::test]
async fn metrics_object_store_up_drops_to_0_while_s3_is_down_and_returns_to_1() -> TestResult {
    let Some(mut s3) = dedicated_s3() else {
        return Ok(());
    };
    let replicas = Replicas::start(&s3.config, &s3.env(), 1)?;
    let a = replicas.node(0)?;
    let (status, body) = save(a, "before_outage", "w1", 3).await?;
    assert_eq!(status, 201, "{body}\n{}", replicas.logs());
    let text = node_metrics(a).await?;
    assert_eq!(
        sample(&text, "featurestore_object_store_up"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "featurestore_health_degraded"),
        Some(0.0),
        "{text}"
    );
    let requests = sample(&text, "featurestore_object_store_requests_total").unwrap_or(0.0);
    assert!(requests > 0.0, "{text}");
    for name in S3_ONLY {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "no {name} in\n{text}"
        );
    }

    s3.stop();
    // A write finds the store down.
    let (status, body) = save(a, "during_outage", "w2", 3).await?;
    assert_eq!(status, 503, "{body}");
    let text = wait_for(Duration::from_secs(10), "object_store_up 0", || async {
        let text = node_metrics(a).await?;
        Ok((sample(&text, "featurestore_object_store_up") == Some(0.0)).then_some(text))
    })
    .await?
    .0;
    assert_eq!(
        sample(&text, "featurestore_health_degraded"),
        Some(1.0),
        "{text}"
    );
    let failures = sample(&text, "featurestore_object_store_failures_total").unwrap_or(0.0);
    assert!(failures > 0.0, "{text}");

    s3.restart()?;
    wait_for(Duration::from_secs(30), "object_store_up 1", || async {
        // Reachability is learnt from calls: a write makes one.
        let _ = save(a, "after_outage", "w3", 3).await?;
        let text = node_metrics(a).await?;
        Ok((sample(&text, "featurestore_object_store_up") == Some(1.0)
            && sample(&text, "featurestore_health_degraded") == Some(0.0))
        .then_some(()))
    })
    .await?;
    Ok(())
}

/// Series only a server with the Redis online tier exposes (the change bus's), checked on
/// one such server below.
const REDIS_ONLY: [&str; 2] = [
    "featurestore_change_bus_up",
    "featurestore_change_bus_messages_total",
];

/// Series only a server on the s3 kind exposes (checked by the S3 outage test above).
const S3_ONLY: [&str; 4] = [
    "featurestore_object_store_up",
    "featurestore_object_store_requests_total",
    "featurestore_object_store_failures_total",
    "featurestore_object_store_read_bytes_total",
];

/// Every `featurestore_*` word in `text`.
fn metric_names(text: &str) -> std::collections::BTreeSet<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("featurestore_"))
        .collect()
}

#[tokio::test]
async fn every_series_the_alert_rules_and_the_operations_guide_name_is_exposed() -> TestResult {
    let server = TestServer::start()?;
    server.save("user", "user_stats", rows("user_id")).await?;
    server
        .apply(&json!({
            "entities": [{"name": "user_id", "value_type": "int64"}],
            "feature_views": [{"name": "user_stats", "group": "user", "entities": ["user_id"],
                               "timestamp_field": "event_timestamp", "ttl_seconds": 60}],
        }))
        .await?;
    // A request first, so the per-route series have samples.
    server.get("/health").await?;
    let scraped = scrape(&server).await?;
    let exposed = metric_names(&scraped);
    for (file, text) in [
        (
            "config/prometheus-alerts.yml",
            include_str!("../../config/prometheus-alerts.yml"),
        ),
        (
            "config/prometheus-alerts.test.yml",
            include_str!("../../config/prometheus-alerts.test.yml"),
        ),
        (
            "docs/OPERATIONS.md",
            include_str!("../../docs/OPERATIONS.md"),
        ),
    ] {
        let named = metric_names(text);
        assert!(!named.is_empty(), "{file} names no series");
        for name in named {
            assert!(
                exposed.contains(name) || S3_ONLY.contains(&name) || REDIS_ONLY.contains(&name),
                "{file} names {name}, which /metrics does not expose:\n{scraped}"
            );
        }
    }
    // The change bus's series, on a server that has one.
    let Some(redis) = crate::common::redis::shared_redis() else {
        return Ok(());
    };
    let (url, prefix) = (redis.url(), unique_prefix("metrics-series"));
    let with_bus = TestServer::start_with(|config| {
        config.online.backend = OnlineBackend::Redis;
        config.online.redis.url = url.clone();
        config.online.redis.key_prefix = prefix.clone();
    })?;
    let with_bus_scrape = scrape(&with_bus).await?;
    let exposed = metric_names(&with_bus_scrape);
    for name in REDIS_ONLY {
        assert!(
            exposed.contains(name),
            "{name} is not exposed with Redis:\n{with_bus_scrape}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn metrics_health_degraded_is_1_while_redis_is_down_and_0_once_it_is_back() -> TestResult {
    let Some(redis) = dedicated_redis() else {
        return Ok(());
    };
    let (url, prefix) = (redis.url(), unique_prefix("metrics-degraded"));
    let server = TestServer::start_with(|config| {
        config.online.backend = OnlineBackend::Redis;
        config.online.redis.url = url;
        config.online.redis.key_prefix = prefix;
    })?;
    let text = scrape(&server).await?;
    assert_eq!(
        sample(&text, "featurestore_health_degraded"),
        Some(0.0),
        "{text}"
    );

    redis.stop();
    // The background checks ask Redis every round: no request has to fail first.
    health_when(&server, "Redis down", |h| h["status"] == "degraded").await?;
    let text = scrape(&server).await?;
    assert_eq!(
        sample(&text, "featurestore_health_degraded"),
        Some(1.0),
        "{text}"
    );

    redis.start()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let text = scrape(&server).await?;
        if sample(&text, "featurestore_health_degraded") == Some(0.0) {
            break;
        }
        if std::time::Instant::now() > deadline {
            return Err(format!("still degraded 15 s after Redis came back:\n{text}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, health) = server.get("/health").await?;
    assert_eq!(health["status"], "healthy", "{health}");
    Ok(())
}
