//! The load harness's HTTP floor: `serve --bench-floor-bytes N` adds `/_bench/floor`, which
//! answers N bytes of fixed JSON to any request; without the flag the route does not exist.

use serde_json::{Value, json};

use crate::common::child::ChildServer;
use crate::common::{TestResult, assert_problem};

/// A server over an empty data root with `args` added to `serve`; the directory holds the
/// data root and the log, and must outlive the server.
fn serve(args: &[&str]) -> TestResult<(tempfile::TempDir, ChildServer)> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("data");
    std::fs::create_dir(&root)?;
    let server = ChildServer::start_with_args(&root, &dir.path().join("serve.log"), &[], args)?;
    Ok((dir, server))
}

#[tokio::test]
async fn the_floor_answers_fixed_json_of_the_asked_size_to_any_request() -> TestResult {
    let (_dir, server) = serve(&["--bench-floor-bytes", "373"])?;
    let url = server.url("/_bench/floor");
    let online_body = json!({"features": ["user_profile:age"], "entities": {"user_id": [1]}});
    for response in [
        server.client.post(&url).json(&online_body).send().await?,
        server.client.get(&url).send().await?,
    ] {
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(crate::common::content_type(&response), "application/json");
        let bytes = response.bytes().await?;
        assert_eq!(bytes.len(), 373);
        let body: Value = serde_json::from_slice(&bytes)?;
        assert!(body["floor"].is_string(), "{body}");
    }
    Ok(())
}

#[tokio::test]
async fn without_the_flag_there_is_no_floor_route() -> TestResult {
    let (_dir, server) = serve(&[])?;
    let response = server
        .client
        .post(server.url("/_bench/floor"))
        .json(&json!({}))
        .send()
        .await?;
    let status = response.status().as_u16();
    let body: Value = response.json().await?;
    assert_problem(status, &body, 404, "route_not_found");
    Ok(())
}
