//! The load harness's HTTP floor: `serve --bench-floor-bytes N` adds `/_bench/floor`, which
//! answers N bytes of fixed JSON to any request; without the flag the route does not exist.

use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use crate::common::{TestResult, assert_problem};

/// A `featurestore serve` child process on a free loopback port; killed on drop.
struct ServeProcess {
    child: Child,
    base: String,
    _data: tempfile::TempDir,
}

impl ServeProcess {
    async fn start(extra: &[&str]) -> TestResult<Self> {
        let data = tempfile::tempdir()?;
        let dir = data.path().to_str().ok_or("a UTF-8 temporary path")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port()
            .to_string();
        let child = Command::new(env!("CARGO_BIN_EXE_featurestore"))
            .args(["serve", "--data-dir", dir, "--port", &port])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _data: data,
        };
        for _ in 0..200 {
            if let Ok(response) = reqwest::get(format!("{}/health", server.base)).await
                && response.status().is_success()
            {
                return Ok(server);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        Err("the server did not answer /health within 10 s".into())
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_floor_answers_fixed_json_of_the_asked_size_to_any_request() -> TestResult {
    let server = ServeProcess::start(&["--bench-floor-bytes", "373"]).await?;
    let client = reqwest::Client::new();
    let url = format!("{}/_bench/floor", server.base);
    let online_body = json!({"features": ["user_profile:age"], "entities": {"user_id": [1]}});
    for response in [
        client.post(&url).json(&online_body).send().await?,
        client.get(&url).send().await?,
    ] {
        assert_eq!(response.status().as_u16(), 200);
        let content_type = crate::common::content_type(&response);
        assert_eq!(content_type, "application/json");
        let bytes = response.bytes().await?;
        assert_eq!(bytes.len(), 373);
        let body: Value = serde_json::from_slice(&bytes)?;
        assert!(body["floor"].is_string(), "{body}");
    }
    Ok(())
}

#[tokio::test]
async fn without_the_flag_there_is_no_floor_route() -> TestResult {
    let server = ServeProcess::start(&[]).await?;
    let response = reqwest::Client::new()
        .post(format!("{}/_bench/floor", server.base))
        .json(&json!({}))
        .send()
        .await?;
    let status = response.status().as_u16();
    let body: Value = response.json().await?;
    assert_problem(status, &body, 404, "route_not_found");
    Ok(())
}
