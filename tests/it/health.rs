//! `GET /health`, and what unknown routes and wrong methods answer.

use std::time::Duration;

use serde_json::{Value, json};

use crate::common::health::health_when;
use crate::common::{TestResult, TestServer, assert_problem};

#[tokio::test]
async fn health_reports_version_uptime_writability_and_table_count() -> TestResult {
    let server = TestServer::start()?;
    let (status, body) = server.get("/health").await?;
    assert_eq!(status, 200, "body: {body}");
    let fields: Vec<&String> = body
        .as_object()
        .ok_or("health is an object")?
        .keys()
        .collect();
    assert_eq!(
        fields,
        [
            "backend",
            "bucket",
            "change_bus",
            "check_age_seconds",
            "check_interval_seconds",
            "checked_at",
            "checks_stale_reason",
            "data_root_writable",
            "disk_cache_disabled_reason",
            "disk_cache_enabled",
            "online_backend",
            "online_store_unavailable_reason",
            "prefix",
            "status",
            "storage_unavailable_reason",
            "table_count",
            "tables_duplicated",
            "tables_unreadable",
            "timestamp",
            "uptime_seconds",
            "version"
        ]
    );
    assert_eq!(body["tables_unreadable"], json!([]));
    assert_eq!(body["tables_duplicated"], json!([]));
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["online_backend"], "local");
    assert_eq!(body["online_store_unavailable_reason"], json!(null));
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["data_root_writable"], true);
    assert_eq!(body["table_count"], 0);
    let uptime = body["uptime_seconds"]
        .as_f64()
        .ok_or("uptime is a number")?;
    assert!((0.0..60.0).contains(&uptime), "uptime {uptime}");
    let timestamp = body["timestamp"].as_str().ok_or("timestamp is a string")?;
    assert!(
        chrono::DateTime::parse_from_rfc3339(timestamp).is_ok() && timestamp.ends_with('Z'),
        "timestamp {timestamp:?} is not RFC 3339 UTC"
    );
    Ok(())
}

#[tokio::test]
async fn health_and_performance_name_the_local_backend_without_store_fields() -> TestResult {
    let server = TestServer::start()?;
    let (_, health) = server.get("/health").await?;
    assert_eq!(health["backend"], "local", "health: {health}");
    assert_eq!(health["bucket"], json!(null));
    assert_eq!(health["prefix"], json!(null));
    assert_eq!(health["storage_unavailable_reason"], json!(null));
    let (status, performance) = server.get("/performance").await?;
    assert_eq!(status, 200, "body: {performance}");
    // No object store with the local kind: the counters are null, not zeros that would read
    // as "an idle store".
    assert_eq!(performance["object_store"], json!(null), "{performance}");
    Ok(())
}

#[tokio::test]
async fn health_table_count_follows_saves_and_deletes() -> TestResult {
    let server = TestServer::start()?;
    let records = json!({"records": [{"entity_id": 1, "x": 1.5}]});
    server.save("user", "first", records.clone()).await?;
    assert_eq!(server.get("/health").await?.1["table_count"], 1);
    server.save("content", "second", records.clone()).await?;
    assert_eq!(server.get("/health").await?.1["table_count"], 2);
    // Replacing a table does not add one.
    server.save("user", "first", records).await?;
    assert_eq!(server.get("/health").await?.1["table_count"], 2);
    let (status, body) = server.delete("/features/user/first").await?;
    assert_eq!(status, 200, "body: {body}");
    assert_eq!(server.get("/health").await?.1["table_count"], 1);
    Ok(())
}

/// `checked_at` of an answer, as an instant.
fn checked_at(health: &Value) -> TestResult<chrono::DateTime<chrono::FixedOffset>> {
    let text = health["checked_at"]
        .as_str()
        .ok_or_else(|| format!("checked_at is a string: {health}"))?;
    Ok(chrono::DateTime::parse_from_rfc3339(text)?)
}

#[tokio::test]
async fn health_reports_its_last_background_check_with_time_age_and_interval() -> TestResult {
    let server = TestServer::start_with(|c| c.health.check_interval_seconds = 7)?;
    let (status, health) = server.get("/health").await?;
    assert_eq!(status, 200, "body: {health}");
    // The first round runs before the first request is accepted: never an answer without.
    let checked = checked_at(&health)?;
    let answered =
        chrono::DateTime::parse_from_rfc3339(health["timestamp"].as_str().unwrap_or(""))?;
    assert!(
        checked <= answered + chrono::Duration::seconds(1),
        "{health}"
    );
    assert!(
        health["checked_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{health}"
    );
    let age = health["check_age_seconds"]
        .as_f64()
        .ok_or("age is a number")?;
    assert!((0.0..=7.0 * 3.0).contains(&age), "age {age}: {health}");
    assert_eq!(health["check_interval_seconds"], 7);
    assert_eq!(health["checks_stale_reason"], json!(null));
    assert_eq!(health["status"], "healthy");
    Ok(())
}

#[tokio::test]
async fn health_answers_from_the_last_check_and_a_damaged_table_shows_at_the_next() -> TestResult {
    let server = TestServer::start()?;
    let records = json!({"records": [{"entity_id": 1, "x": 1.5}]});
    server.save("user", "kept", records).await?;
    // Wait for a round after the save, then stop further rounds.
    let before = health_when(&server, "a round after the save", |h| {
        h["status"] == "healthy" && h["table_count"] == 1
    })
    .await?;
    server.store.pause_health_checks_for_test(true);
    let paused_at = checked_at(&server.get("/health").await?.1)?;
    // Another tool damaged the table a while ago (settled, so the checks report it).
    let damaged = server.root().join("features/user/kept.parquet");
    std::fs::write(&damaged, b"not parquet at all")?;
    std::fs::File::options()
        .write(true)
        .open(&damaged)?
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(60))?;
    // A request reads no file: it says what the last round found, and how old that is.
    for _ in 0..5 {
        let (status, health) = server.get("/health").await?;
        assert_eq!(status, 200, "{health}");
        assert_eq!(health["tables_unreadable"], json!([]), "{health}");
        assert_eq!(checked_at(&health)?, paused_at, "{health}");
    }
    assert!(checked_at(&before)? <= paused_at);

    server.store.pause_health_checks_for_test(false);
    let health = health_when(&server, "the damaged table", |h| h["status"] == "degraded").await?;
    assert!(checked_at(&health)? > paused_at, "{health}");
    assert_eq!(
        health["tables_unreadable"][0]["file"],
        "features/user/kept.parquet"
    );
    assert_eq!(health["checks_stale_reason"], json!(null));
    Ok(())
}

#[tokio::test]
async fn health_is_degraded_with_a_reason_once_the_background_checks_go_stale() -> TestResult {
    let server = TestServer::start()?;
    // A checker stuck on a hung file system never finishes a round.
    server.store.pause_health_checks_for_test(true);
    let health = health_when(&server, "stale checks", |h| h["status"] == "degraded").await?;
    let reason = health["checks_stale_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("last completed"), "{health}");
    let age = health["check_age_seconds"]
        .as_f64()
        .ok_or("age is a number")?;
    assert!(age > 3.0, "stale only past 3 intervals (and 5 s): {health}");
    // Nothing else is wrong: the other findings are the last round's.
    assert_eq!(health["data_root_writable"], true);
    assert_eq!(health["tables_unreadable"], json!([]));
    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await?
        .text()
        .await?;
    assert!(
        metrics.contains("\nfeaturestore_health_degraded 1\n"),
        "/metrics follows /health: {metrics}"
    );

    // Once a round completes again, healthy.
    server.store.pause_health_checks_for_test(false);
    let health = health_when(&server, "fresh checks", |h| h["status"] == "healthy").await?;
    assert_eq!(health["checks_stale_reason"], json!(null));
    Ok(())
}

#[tokio::test]
async fn health_check_interval_outside_1_to_86400_is_refused_at_start_up() -> TestResult {
    for bad in ["0", "86401"] {
        let error = featurestore::config::Config::load(
            None,
            [(
                "FEATURESTORE__HEALTH__CHECK_INTERVAL_SECONDS".to_owned(),
                bad.to_owned(),
            )],
        )
        .err()
        .ok_or(format!("{bad} was accepted"))?;
        assert!(
            error.to_string().contains("health.check_interval_seconds"),
            "{error}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn unknown_route_is_404_route_not_found() -> TestResult {
    let server = TestServer::start()?;
    for path in ["/nope", "/features/user/x/y/z", "/health/extra"] {
        let (status, body) = server.get(path).await?;
        assert_problem(status, &body, 404, "route_not_found");
        assert_eq!(body["detail"], format!("no route matches GET {path}"));
        assert!(body.get("errors").is_none(), "body: {body}");
    }
    Ok(())
}

#[tokio::test]
async fn wrong_method_is_405_method_not_allowed() -> TestResult {
    let server = TestServer::start()?;
    let cases = [
        (reqwest::Method::PUT, "/features/user/x"),
        (reqwest::Method::GET, "/features/batch"),
        (reqwest::Method::POST, "/health"),
        (reqwest::Method::DELETE, "/features"),
        (reqwest::Method::POST, "/features/user/x/info"),
    ];
    for (method, path) in cases {
        let response = server
            .client
            .request(method.clone(), server.url(path))
            .send()
            .await?;
        let (status, body) = crate::common::read(response).await?;
        assert_problem(status, &body, 405, "method_not_allowed");
        assert_eq!(body["detail"], format!("{method} is not allowed on {path}"));
    }
    Ok(())
}
