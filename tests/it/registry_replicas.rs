//! The registry of the s3 kind as users of two replicas see it: two `featurestore serve`
//! processes (and the `apply` command) on one SeaweedFS bucket. What is applied on one is
//! served by the other within a second; concurrent applies of different objects all survive;
//! an `If-Match` read on one replica and made stale on the other is 409 `registry_changed`.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::TestResult;
use crate::common::child::ChildServer;
use crate::common::s3::{S3Bucket, s3_bucket};
use crate::common::{assert_problem, read};

/// How often the replicas poll the bucket in these tests: short enough that "within a
/// second" holds with room to spare on a loaded machine.
const POLL_MS: &str = "250";

/// The environment of a replica on `bucket`: the s3 kind, its settings and credentials.
fn replica_env(bucket: &S3Bucket) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("FEATURESTORE__STORAGE__BACKEND", "s3"),
        ("FEATURESTORE__STORAGE__POLL_INTERVAL_MS", POLL_MS),
        ("FEATURESTORE__STORAGE__S3__BUCKET", bucket.name()),
        ("FEATURESTORE__STORAGE__S3__ALLOW_HTTP", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    env.push((
        "FEATURESTORE__STORAGE__S3__ENDPOINT".to_owned(),
        bucket.server.endpoint.clone(),
    ));
    env.extend(bucket.env().into_iter().map(|(k, v)| (k.to_owned(), v)));
    env
}

fn start_replica(bucket: &S3Bucket, dir: &Path, name: &str) -> TestResult<ChildServer> {
    let root = dir.join(name);
    std::fs::create_dir_all(&root)?;
    let env = replica_env(bucket);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    ChildServer::start(&root, &dir.join(format!("{name}.log")), &env)
}

fn entity(name: &str) -> Value {
    json!({"entities": [{"name": name, "value_type": "int64"}]})
}

async fn entity_names(server: &ChildServer) -> TestResult<(Vec<String>, String)> {
    let response = server
        .client
        .get(server.url("/registry/entities"))
        .send()
        .await?;
    let tag = response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim_matches('"')
        .to_owned();
    let (status, body) = read(response).await?;
    if status != 200 {
        return Err(format!("GET /registry/entities answered {status}: {body}").into());
    }
    let mut names: Vec<String> = body["entities"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    Ok((names, tag))
}

/// Polls `server` until it serves exactly `expected` entities; returns how long that took.
async fn until_served(server: &ChildServer, expected: &[String]) -> TestResult<Duration> {
    let started = Instant::now();
    loop {
        let (names, _) = entity_names(server).await?;
        if names == expected {
            return Ok(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(10) {
            return Err(format!(
                "still serving {names:?}, not {expected:?}; log:\n{}",
                server.log_tail()
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn apply(
    server: &ChildServer,
    doc: &Value,
    if_match: Option<&str>,
) -> TestResult<(u16, Value)> {
    let mut request = server.client.post(server.url("/registry/apply")).json(doc);
    if let Some(tag) = if_match {
        request = request.header("if-match", format!("\"{tag}\""));
    }
    read(request.send().await?).await
}

#[tokio::test]
async fn an_apply_on_one_replica_is_served_by_the_other_within_a_second() -> TestResult {
    let Some(bucket) = s3_bucket() else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let a = start_replica(&bucket, dir.path(), "a")?;
    let b = start_replica(&bucket, dir.path(), "b")?;
    let (status, body) = apply(&a, &entity("user_id"), None).await?;
    assert_eq!(status, 200, "{body}");
    let seen_after = until_served(&b, &["user_id".to_owned()]).await?;
    assert!(
        seen_after < Duration::from_secs(1),
        "B served the apply after {seen_after:?}"
    );
    assert_eq!(
        entity_names(&a).await?.1,
        entity_names(&b).await?.1,
        "both replicas answer the same ETag for the same definitions"
    );
    Ok(())
}

#[tokio::test]
async fn a_version_read_on_one_replica_and_changed_on_the_other_is_409_registry_changed()
-> TestResult {
    let Some(bucket) = s3_bucket() else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let a = start_replica(&bucket, dir.path(), "a")?;
    let b = start_replica(&bucket, dir.path(), "b")?;
    let (_, read_on_b) = entity_names(&b).await?;
    let (status, body) = apply(&a, &entity("from_a"), Some(&read_on_b)).await?;
    assert_eq!(status, 200, "{body}");
    // B may not have polled yet: its write still checks the version against the bucket.
    let (status, problem) = apply(&b, &entity("from_b"), Some(&read_on_b)).await?;
    assert_problem(status, &problem, 409, "registry_changed");
    until_served(&b, &["from_a".to_owned()]).await?;
    let (_, current) = entity_names(&b).await?;
    let (status, body) = apply(&b, &entity("from_b"), Some(&current)).await?;
    assert_eq!(status, 200, "{body}");
    until_served(&a, &["from_a".to_owned(), "from_b".to_owned()]).await?;
    Ok(())
}

#[tokio::test]
async fn concurrent_applies_of_different_objects_on_two_replicas_all_survive() -> TestResult {
    let Some(bucket) = s3_bucket() else {
        return Ok(());
    };
    const EACH: usize = 8;
    let dir = tempfile::tempdir()?;
    let replicas = [
        start_replica(&bucket, dir.path(), "a")?,
        start_replica(&bucket, dir.path(), "b")?,
    ];
    let requests = (0..2 * EACH).map(|i| {
        let server = &replicas[i % 2];
        let name = format!("e{i:02}");
        async move { (name.clone(), apply(server, &entity(&name), None).await) }
    });
    let mut expected = Vec::new();
    for (name, outcome) in futures_util::future::join_all(requests).await {
        let (status, body) = outcome?;
        assert_eq!(status, 200, "{name}: {body}");
        expected.push(name);
    }
    expected.sort();
    for replica in &replicas {
        until_served(replica, &expected).await?;
    }
    Ok(())
}

#[tokio::test]
async fn the_apply_command_on_the_s3_kind_is_served_by_a_running_replica() -> TestResult {
    let Some(bucket) = s3_bucket() else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let server = start_replica(&bucket, dir.path(), "server")?;
    let file = dir.path().join("definitions.json");
    std::fs::write(&file, serde_json::to_vec(&entity("from_cli"))?)?;
    let cli_root = dir.path().join("cli");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_featurestore"));
    command
        .arg("apply")
        .arg(&file)
        .arg("--data-dir")
        .arg(&cli_root);
    for (name, _) in std::env::vars() {
        if name.starts_with("FEATURESTORE__") {
            command.env_remove(name);
        }
    }
    command.envs(replica_env(&bucket));
    let output = command.output()?;
    assert!(
        output.status.success(),
        "apply failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen_after = until_served(&server, &["from_cli".to_owned()]).await?;
    assert!(seen_after < Duration::from_secs(1), "{seen_after:?}");
    assert!(
        !cli_root.join("registry").join("registry.json").exists(),
        "the s3 kind writes no local registry file"
    );
    Ok(())
}
