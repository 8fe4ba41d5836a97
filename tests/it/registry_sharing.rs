//! One registry, several processes: the CLI beside a running `featurestore serve` (the real
//! binary). Whatever either writes survives the other's next write, the server serves what
//! the CLI applied within about a second, and the commands that cannot work beside a server
//! say so. A writer that names the version it read (`If-Match`) is refused with 409 when the
//! registry changed in between.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::child::ChildServer;
use crate::common::{
    TestResult, TestServer, assert_problem, featurestore_command, featurestore_ok, read,
};

/// How soon the server must serve what another process applied ("within about a second"),
/// with room for a debug build on a loaded 2-core machine.
const VISIBLE_WITHIN: Duration = Duration::from_millis(1500);

fn utf8(path: &Path) -> TestResult<&str> {
    Ok(path.to_str().ok_or("a UTF-8 temporary path")?)
}

/// A small demo data root (tables and their registry) written by `featurestore demo`.
fn demo_root(root: &Path) -> TestResult<String> {
    featurestore_ok(&[
        "demo",
        "--data-dir",
        utf8(root)?,
        "--users",
        "30",
        "--movies",
        "10",
        "--interactions",
        "200",
        "--as-of",
        "2026-01-01T00:00:00Z",
    ])
}

/// Writes `doc` to `name` in `dir`; returns the path.
fn definitions(dir: &Path, name: &str, doc: &Value) -> TestResult<String> {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(doc)?)?;
    Ok(utf8(&path)?.to_owned())
}

async fn get(server: &ChildServer, path: &str) -> TestResult<(u16, Value)> {
    read(server.client.get(server.url(path)).send().await?).await
}

async fn post(server: &ChildServer, path: &str, body: &Value) -> TestResult<(u16, Value)> {
    read(
        server
            .client
            .post(server.url(path))
            .json(body)
            .send()
            .await?,
    )
    .await
}

/// Polls `GET path` until it answers 200; returns how long that took, or fails after
/// [`VISIBLE_WITHIN`].
async fn served_within(server: &ChildServer, path: &str) -> TestResult<Duration> {
    let started = Instant::now();
    loop {
        let (status, body) = get(server, path).await?;
        if status == 200 {
            return Ok(started.elapsed());
        }
        if started.elapsed() > VISIBLE_WITHIN {
            return Err(format!(
                "GET {path} still answers {status} {} after the write: {body}\nlog:\n{}",
                VISIBLE_WITHIN.as_millis(),
                server.log_tail()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The names of `kind` (`feature_services`, `feature_views`, `entities`) in the registry file.
fn names_on_disk(root: &Path, kind: &str) -> TestResult<Vec<String>> {
    let doc: Value = serde_json::from_slice(&std::fs::read(root.join("registry/registry.json"))?)?;
    Ok(doc[kind]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

#[tokio::test]
async fn a_cli_apply_beside_the_server_is_served_and_survives_the_servers_next_registration()
-> TestResult {
    let data = tempfile::tempdir()?;
    let logs = tempfile::tempdir()?;
    demo_root(data.path())?;
    let server = ChildServer::start(data.path(), &logs.path().join("serve.log"), &[])?;
    let (status, _) = get(&server, "/registry/feature-services/qa_service").await?;
    assert_eq!(status, 404);

    let file = definitions(
        logs.path(),
        "qa.json",
        &json!({"feature_services": [{"name": "qa_service", "features": ["user_profile:age"]}]}),
    )?;
    let stdout = featurestore_ok(&["apply", &file, "--data-dir", utf8(data.path())?])?;
    assert!(
        stdout.contains("created   feature service qa_service"),
        "{stdout}"
    );
    served_within(&server, "/registry/feature-services/qa_service").await?;
    let (status, answer) = post(
        &server,
        "/get-online-features",
        &json!({"feature_service": "qa_service", "entities": {"user_id": [1]}}),
    )
    .await?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["metadata"]["feature_names"],
        json!(["user_id", "age"])
    );

    // A registration on the server side: a save that registers a view (its key inferred
    // from the registered entity user_id). It must not write the registry the server loaded
    // at start-up over the CLI's service.
    let (status, saved) = post(
        &server,
        "/features/user/user_segments",
        &json!({"records": [
            {"user_id": 1, "segment": "night_owl", "event_timestamp": "2025-12-31T00:00:00Z"},
        ]}),
    )
    .await?;
    assert_eq!(status, 201, "{saved}");
    assert_eq!(saved["registry"]["status"], "registered", "{saved}");

    for path in [
        "/registry/feature-services/qa_service",
        "/registry/feature-services/movie_recommendation_service",
        "/registry/feature-views/user_segments",
    ] {
        let (status, body) = get(&server, path).await?;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let services = names_on_disk(data.path(), "feature_services")?;
    assert!(services.contains(&"qa_service".to_owned()), "{services:?}");
    let views = names_on_disk(data.path(), "feature_views")?;
    assert!(views.contains(&"user_segments".to_owned()), "{views:?}");
    let (status, answer) = post(
        &server,
        "/get-online-features",
        &json!({"features": ["user_segments:segment"], "entities": {"user_id": [1]}}),
    )
    .await?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["results"][1]["values"], json!(["night_owl"]));

    // And a restart serves both.
    server.kill()?;
    let server = ChildServer::start(data.path(), &logs.path().join("serve.log"), &[])?;
    for path in [
        "/registry/feature-services/qa_service",
        "/registry/feature-views/user_segments",
    ] {
        let (status, body) = get(&server, path).await?;
        assert_eq!(status, 200, "{path}: {body}");
    }
    Ok(())
}

#[tokio::test]
async fn concurrent_cli_applies_and_server_registrations_all_survive() -> TestResult {
    let data = tempfile::tempdir()?;
    let logs = tempfile::tempdir()?;
    demo_root(data.path())?;
    let server = ChildServer::start(data.path(), &logs.path().join("serve.log"), &[])?;
    let root = utf8(data.path())?.to_owned();

    let mut applies = Vec::new();
    for i in 0..4 {
        let file = definitions(
            logs.path(),
            &format!("svc_{i}.json"),
            &json!({"feature_services": [{"name": format!("svc_{i}"), "features": ["movie_metadata:genre"]}]}),
        )?;
        let root = root.clone();
        applies.push(std::thread::spawn(move || {
            featurestore_ok(&["apply", &file, "--data-dir", &root]).map_err(|e| e.to_string())
        }));
    }
    for i in 0..4 {
        let (status, saved) = post(
            &server,
            &format!("/features/misc/side_{i}"),
            &json!({"entity_key": ["movie_id"], "records": [
                {"movie_id": i, "score": 0.5, "event_timestamp": "2025-12-31T00:00:00Z"},
            ]}),
        )
        .await?;
        assert_eq!(status, 201, "{saved}");
        assert_eq!(saved["registry"]["status"], "registered", "{saved}");
    }
    for apply in applies {
        apply.join().map_err(|_| "an apply thread panicked")??;
    }

    for i in 0..4 {
        served_within(&server, &format!("/registry/feature-services/svc_{i}")).await?;
        let (status, body) = get(&server, &format!("/registry/feature-views/side_{i}")).await?;
        assert_eq!(status, 200, "side_{i}: {body}");
    }
    let services = names_on_disk(data.path(), "feature_services")?;
    let views = names_on_disk(data.path(), "feature_views")?;
    for i in 0..4 {
        assert!(services.contains(&format!("svc_{i}")), "{services:?}");
        assert!(views.contains(&format!("side_{i}")), "{views:?}");
    }
    Ok(())
}

#[tokio::test]
async fn the_demo_command_beside_the_server_keeps_what_the_server_registered() -> TestResult {
    let data = tempfile::tempdir()?;
    let logs = tempfile::tempdir()?;
    let server = ChildServer::start(data.path(), &logs.path().join("serve.log"), &[])?;
    let (status, saved) = post(
        &server,
        "/features/misc/side_table",
        &json!({"entity_key": ["sku"], "records": [
            {"sku": "a-1", "stock": 3, "event_timestamp": "2025-12-31T00:00:00Z"},
        ]}),
    )
    .await?;
    assert_eq!(status, 201, "{saved}");

    let stdout = demo_root(data.path())?;
    assert!(
        stdout.contains("created   feature view user_profile"),
        "{stdout}"
    );
    served_within(&server, "/registry/feature-views/user_profile").await?;
    let (status, body) = get(&server, "/registry/feature-views/side_table").await?;
    assert_eq!(status, 200, "{body}");
    let (status, page) = get(&server, "/features/user/user_profile?limit=1").await?;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["metadata"]["total_rows"], 90);
    Ok(())
}

#[tokio::test]
async fn materialize_beside_the_server_refuses_naming_the_server_route() -> TestResult {
    let data = tempfile::tempdir()?;
    let logs = tempfile::tempdir()?;
    demo_root(data.path())?;
    let _server = ChildServer::start(data.path(), &logs.path().join("serve.log"), &[])?;
    for args in [
        vec!["materialize", "--data-dir", utf8(data.path())?],
        vec![
            "materialize-incremental",
            "--end",
            "2026-01-01T00:00:00Z",
            "--data-dir",
            utf8(data.path())?,
        ],
    ] {
        let output = featurestore_command(&args)?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded: {stderr}");
        assert!(
            stderr.contains("featurestore serve") && stderr.contains("POST /materialize"),
            "{args:?}: {stderr}"
        );
        // One clear error, not a log warning before it.
        assert!(!stderr.contains("WARN"), "{args:?}: {stderr}");
    }
    Ok(())
}

#[tokio::test]
async fn commands_beside_the_server_print_no_lock_warnings() -> TestResult {
    let data = tempfile::tempdir()?;
    let logs = tempfile::tempdir()?;
    demo_root(data.path())?;
    let _server = ChildServer::start(data.path(), &logs.path().join("serve.log"), &[])?;
    let file = definitions(
        logs.path(),
        "empty.json",
        &json!({"entities": [{"name": "user_id", "value_type": "int64", "description": "A user of the service"}]}),
    )?;
    for args in [
        vec!["apply", &file, "--data-dir", utf8(data.path())?],
        vec!["info", "--data-dir", utf8(data.path())?],
    ] {
        let output = featurestore_command(&args)?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{args:?}: {stderr}");
        assert!(!stderr.contains("lock"), "{args:?}: {stderr}");
    }
    Ok(())
}

/// `path`'s `ETag` (the registry's version), unquoted.
async fn version_of(server: &TestServer, path: &str) -> TestResult<String> {
    let response = server.client.get(server.url(path)).send().await?;
    let tag = response
        .headers()
        .get("etag")
        .ok_or_else(|| format!("GET {path} has no ETag"))?
        .to_str()?
        .trim_matches('"')
        .to_owned();
    Ok(tag)
}

async fn apply_if_match(server: &TestServer, tag: &str, doc: &Value) -> TestResult<(u16, Value)> {
    let response = server
        .client
        .post(server.url("/registry/apply"))
        .header("if-match", format!("\"{tag}\""))
        .json(doc)
        .send()
        .await?;
    read(response).await
}

#[tokio::test]
async fn a_write_made_on_a_stale_version_is_409_registry_changed_and_writes_nothing() -> TestResult
{
    let server = TestServer::start()?;
    server
        .save(
            "content",
            "movie_metadata",
            json!({"entity_key": ["movie_id"], "records": [
                {"movie_id": 10, "genre": "Drama", "event_timestamp": "2025-12-31T00:00:00Z"},
            ]}),
        )
        .await?;
    let read_version = version_of(&server, "/registry/feature-services").await?;
    assert_eq!(
        version_of(&server, "/registry/feature-views/movie_metadata").await?,
        read_version
    );
    let service = |name: &str| json!({"feature_services": [{"name": name, "features": ["movie_metadata:genre"]}]});

    // Two clients read the same version; the first write wins, the second is refused.
    let (status, body) = apply_if_match(&server, &read_version, &service("first")).await?;
    assert_eq!(status, 200, "{body}");
    let (status, problem) = apply_if_match(&server, &read_version, &service("second")).await?;
    assert_problem(status, &problem, 409, "registry_changed");
    let (status, _) = server.get("/registry/feature-services/second").await?;
    assert_eq!(status, 404, "a refused apply wrote nothing");
    let response = server
        .client
        .delete(server.url("/registry/feature-services/first"))
        .header("if-match", format!("\"{read_version}\""))
        .send()
        .await?;
    let (status, problem) = read(response).await?;
    assert_problem(status, &problem, 409, "registry_changed");

    // Read again, write again: accepted, and the answer carries the new version.
    let current = version_of(&server, "/registry/feature-services").await?;
    assert_ne!(current, read_version);
    let response = server
        .client
        .post(server.url("/registry/apply"))
        .header("if-match", format!("\"{current}\""))
        .json(&service("second"))
        .send()
        .await?;
    let after = response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim_matches('"').to_owned());
    let (status, body) = read(response).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        after,
        Some(version_of(&server, "/registry/feature-services").await?)
    );
    // Without If-Match, an apply is an upsert on whatever the registry is now.
    server.apply(&service("third")).await?;
    Ok(())
}
