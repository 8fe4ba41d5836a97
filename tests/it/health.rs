//! `GET /health`, and what unknown routes and wrong methods answer.

use serde_json::json;

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
