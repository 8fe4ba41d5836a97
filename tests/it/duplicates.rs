//! A table name in two groups: another tool writes `misc/dup.parquet` while `user/dup` exists.
//! The server keeps serving the file it had, reports the duplicate once in its log and in
//! `/health`, and answers requests naming the other location with 409 `duplicate_table`.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::child::ChildServer;
use crate::common::{TestResult, TestServer, assert_problem};

const WARNING: &str = "table name found in two groups";

/// Copies the served table file to another group the way an external job would: a complete
/// file under a temporary name, then a rename.
fn copy_into_group(root: &Path, from: &str, to_group: &str, name: &str) -> TestResult {
    let dir = root.join("features").join(to_group);
    std::fs::create_dir_all(&dir)?;
    let temp = dir.join(format!("{name}.incoming"));
    std::fs::copy(root.join(from), &temp)?;
    std::fs::rename(&temp, dir.join(format!("{name}.parquet")))?;
    Ok(())
}

/// Polls `/health` (through `get`) until `done` holds on its body; the watcher sees external
/// writes within about a second.
async fn health_until<F, Fut>(get: F, done: impl Fn(&Value) -> bool) -> TestResult<Value>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = TestResult<Value>>,
{
    let started = Instant::now();
    loop {
        let body = get().await?;
        if done(&body) {
            return Ok(body);
        }
        if started.elapsed() > Duration::from_secs(20) {
            return Err(format!("/health never reached the expected state: {body}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn table_name_written_into_a_second_group_keeps_the_first_served_and_degrades_health()
-> TestResult {
    let server = TestServer::start()?;
    let rows = json!({"records": [{"entity_id": 1, "x": 1.5}, {"entity_id": 2, "x": 2.5}]});
    server.save("user", "dup", rows).await?;
    // `misc` sorts before `user`: a rescan walking groups in order would pick it up first.
    copy_into_group(server.root(), "features/user/dup.parquet", "misc", "dup")?;

    let health = health_until(
        || async { Ok(server.get("/health").await?.1) },
        |h| h["status"] == "degraded",
    )
    .await?;
    assert_eq!(
        health["tables_duplicated"],
        json!([{"name": "dup", "served": "features/user/dup.parquet",
                "ignored": ["features/misc/dup.parquet"]}])
    );
    assert_eq!(health["table_count"], 1);

    // The served location answers as before, page and info alike.
    let (status, page) = server.get("/features/user/dup").await?;
    assert_eq!(status, 200, "body: {page}");
    assert_eq!(page["metadata"]["total_rows"], 2);
    assert_eq!(server.get("/features/user/dup/info").await?.0, 200);
    let (_, listing) = server.get("/features").await?;
    assert_eq!(listing["table_count"], 1, "listing: {listing}");
    assert_eq!(listing["groups"]["user"][0]["name"], "dup");

    // The other location: a conflict naming both files, for reads and writes alike.
    for (method, path) in [
        ("GET", "/features/misc/dup"),
        ("GET", "/features/misc/dup/info"),
        ("POST", "/features/misc/dup"),
        ("DELETE", "/features/misc/dup"),
        ("DELETE", "/cache/misc/dup"),
    ] {
        let (status, body) = match method {
            "GET" => server.get(path).await?,
            "POST" => {
                server
                    .post(path, &json!({"records": [{"entity_id": 9}]}))
                    .await?
            }
            _ => server.delete(path).await?,
        };
        assert_problem(status, &body, 409, "duplicate_table");
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("features/user/dup.parquet")
                && detail.contains("features/misc/dup.parquet"),
            "{method} {path}: {detail}"
        );
    }
    // Nothing was written or removed by the refused requests.
    assert!(server.root().join("features/misc/dup.parquet").is_file());
    assert_eq!(
        server.get("/features/user/dup").await?.1["metadata"]["total_rows"],
        2
    );

    // Removing the second file ends the duplicate.
    std::fs::remove_file(server.root().join("features/misc/dup.parquet"))?;
    let health = health_until(
        || async { Ok(server.get("/health").await?.1) },
        |h| h["status"] == "healthy",
    )
    .await?;
    assert_eq!(health["tables_duplicated"], json!([]));
    Ok(())
}

#[tokio::test]
async fn duplicate_table_is_logged_once_not_on_every_rescan() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("data");
    std::fs::create_dir_all(&root)?;
    let log = dir.path().join("serve.log");
    let server = ChildServer::start(&root, &log, &[])?;
    server
        .post_ok(
            "/features/user/dup",
            &json!({"records": [{"entity_id": 1, "x": 1.5}]}),
        )
        .await?;
    copy_into_group(&root, "features/user/dup.parquet", "misc", "dup")?;
    let health = || async {
        let response = server.client.get(server.url("/health")).send().await?;
        Ok(response.json::<Value>().await?)
    };
    health_until(health, |h| h["status"] == "degraded").await?;
    // Every listing and health check rescans the tree; none may repeat the warning.
    for _ in 0..20 {
        server.client.get(server.url("/features")).send().await?;
        server.client.get(server.url("/health")).send().await?;
        server
            .client
            .get(server.url("/features/user/dup"))
            .send()
            .await?;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let text = std::fs::read_to_string(&log)?;
    let warnings = text.lines().filter(|l| l.contains(WARNING)).count();
    assert_eq!(warnings, 1, "log:\n{}", server.log_tail());
    let line = text
        .lines()
        .find(|l| l.contains(WARNING))
        .unwrap_or_default();
    assert!(
        line.contains("features/user/dup.parquet") && line.contains("features/misc/dup.parquet"),
        "{line}"
    );
    Ok(())
}
