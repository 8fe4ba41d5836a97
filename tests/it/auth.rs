//! Optional bearer-token authentication as a client sees it: with `[auth]` enabled from a
//! config file, 401 without a known token (with its `WWW-Authenticate` challenge), reads with
//! a `read` token (the read-only POSTs included), 403 and nothing written for its writes,
//! everything with a `write` token, `/health` and the docs open; the bearer scheme in the
//! OpenAPI document; everything open with auth off; `featurestore token create` end to end
//! through the binary; and the start-up warning for a non-loopback bind without auth.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use featurestore::config::{Config, ConfigError};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::instants::*;
use crate::common::{TestResult, TestServer, assert_problem, featurestore_ok, read};

/// A token and the challenge a server without auth never sends.
const READER: &str = "fs_reader_token_for_tests";
const WRITER: &str = "fs_writer_token_for_tests";
const CHALLENGE: &str = "Bearer realm=\"featurestore\"";

/// sha256 as lowercase hex, computed here rather than by the code under test.
fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `[auth]` enabled with [`READER`] (scope read) and [`WRITER`] (scope write).
fn auth_toml() -> String {
    format!(
        "[auth]\nenabled = true\n\n\
         [[auth.tokens]]\nname = \"ci-reader\"\nsha256 = \"{}\"\nscope = \"read\"\n\n\
         [[auth.tokens]]\nname = \"loader\"\nsha256 = \"{}\"\nscope = \"write\"\n",
        sha256_hex(READER),
        sha256_hex(WRITER)
    )
}

/// The configuration `text` gives when loaded from a file, as `--config` loads it.
fn config_from_file(text: &str) -> TestResult<Result<Config, ConfigError>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("featurestore.toml");
    std::fs::write(&path, text)?;
    Ok(Config::load(Some(&path), std::iter::empty()))
}

/// A server with [`auth_toml`], a `user/user_profile` table, and a view with a push source,
/// written with the write token.
async fn secured() -> TestResult<TestServer> {
    let auth = config_from_file(&auth_toml())??.auth;
    let server = TestServer::start_with(|config| config.auth = auth)?;
    let (status, body) = call(
        &server,
        Method::POST,
        "/features/user/user_profile",
        Some(WRITER),
        Some(json!({"entity_key": ["user_id"], "records": [
            {"user_id": 1, "age": 31, "event_timestamp": T0_MINUS_1H},
            {"user_id": 2, "age": 25, "event_timestamp": T0_MINUS_1H},
        ]})),
    )
    .await?;
    assert_eq!(status, 201, "{body}");
    let (status, body) = call(
        &server,
        Method::POST,
        "/registry/apply",
        Some(WRITER),
        Some(registry_document()),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    Ok(server)
}

/// [`secured`], with the name-`loader` write token that wrote it (for tests elsewhere of
/// what a write records about its token).
pub(crate) async fn secured_server() -> TestResult<(TestServer, &'static str)> {
    Ok((secured().await?, WRITER))
}

fn registry_document() -> Value {
    json!({
        "entities": [{"name": "user_id", "value_type": "int64"}],
        "feature_views": [{"name": "user_profile", "group": "user", "entities": ["user_id"],
                           "timestamp_field": "event_timestamp", "push_source": "profile_push"}],
    })
}

/// One request with an optional bearer token: status, JSON body and `WWW-Authenticate`.
async fn call_with_challenge(
    server: &TestServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> TestResult<(u16, Value, Option<String>)> {
    let mut request = server.client.request(method, server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (status, body) = read(response).await?;
    Ok((status, body, challenge))
}

/// [`call_with_challenge`] without the challenge.
pub(crate) async fn call(
    server: &TestServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> TestResult<(u16, Value)> {
    let (status, body, _) = call_with_challenge(server, method, path, token, body).await?;
    Ok((status, body))
}

/// Status of a GET whose body may not be JSON (`/metrics`, Swagger UI).
async fn get_status(server: &TestServer, path: &str, token: Option<&str>) -> TestResult<u16> {
    let mut request = server.client.get(server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    Ok(request.send().await?.status().as_u16())
}

/// The reads a `read` token may make, the three read-only POSTs among them.
fn reads() -> Vec<(Method, &'static str, Option<Value>)> {
    vec![
        (Method::GET, "/features", None),
        (Method::GET, "/features/user/user_profile", None),
        (Method::GET, "/features/user/user_profile/info", None),
        (Method::GET, "/registry/feature-views", None),
        (Method::GET, "/cache/stats", None),
        (Method::GET, "/performance", None),
        (
            Method::POST,
            "/features/batch",
            Some(json!({"feature_names": ["user_profile"], "entity_ids": [1]})),
        ),
        (
            Method::POST,
            "/get-online-features",
            Some(json!({"features": ["user_profile:age"], "entities": {"user_id": [1]}})),
        ),
        (
            Method::POST,
            "/get-historical-features",
            Some(json!({"features": ["user_profile:age"],
                        "entities": {"user_id": [1], "event_timestamp": [T0]}})),
        ),
    ]
}

/// The writes only a `write` token may make, in an order in which each succeeds.
fn writes() -> Vec<(Method, &'static str, Option<Value>)> {
    vec![
        (
            Method::POST,
            "/features/user/other",
            Some(json!({"records": [{"user_id": 9, "age": 1}]})),
        ),
        (
            Method::POST,
            "/push",
            Some(
                json!({"push_source_name": "profile_push", "to": "online_and_offline",
                        "df": {"user_id": [1], "age": [99], "event_timestamp": [T0]}}),
            ),
        ),
        (
            Method::POST,
            "/registry/apply",
            Some(
                json!({"feature_views": [{"name": "user_profile", "group": "user",
                        "entities": ["user_id"], "timestamp_field": "event_timestamp",
                        "push_source": "profile_push", "ttl_seconds": 86_400}]}),
            ),
        ),
        (
            Method::POST,
            "/materialize",
            Some(json!({"start_ts": T0_MINUS_1D, "end_ts": T0})),
        ),
        (Method::POST, "/features/user/user_profile/compact", None),
        (Method::DELETE, "/cache/user/user_profile", None),
        (Method::DELETE, "/cache", None),
        (Method::DELETE, "/features/user/user_profile", None),
    ]
}

#[tokio::test]
async fn without_a_token_every_route_but_health_and_the_docs_is_401() -> TestResult {
    let server = secured().await?;
    let mut attempts = reads();
    attempts.extend(writes());
    attempts.push((Method::GET, "/metrics", None));
    attempts.push((Method::GET, "/no/such/route", None));
    for (method, path, body) in attempts {
        let (status, problem, challenge) =
            call_with_challenge(&server, method.clone(), path, None, body).await?;
        assert_problem(status, &problem, 401, "unauthorized");
        assert_eq!(challenge.as_deref(), Some(CHALLENGE), "{method} {path}");
    }
    for path in ["/health", "/openapi.json", "/docs/", "/docs/swagger-ui.css"] {
        assert_eq!(get_status(&server, path, None).await?, 200, "{path}");
    }
    // The table is still there: the refused DELETE reached nothing.
    let (status, _) = call(
        &server,
        Method::GET,
        "/features/user/user_profile",
        Some(READER),
        None,
    )
    .await?;
    assert_eq!(status, 200);
    Ok(())
}

#[tokio::test]
async fn malformed_headers_and_unknown_tokens_are_401_with_the_rfc_6750_error() -> TestResult {
    let server = secured().await?;
    let url = server.url("/features");
    for (header, error) in [
        ("Basic dXNlcjpwYXNz", "invalid_request"),
        ("Bearer", "invalid_request"),
        (READER, "invalid_request"),
        ("Bearer fs_not_a_configured_token", "invalid_token"),
        // The configured hash is not a credential.
        (&format!("Bearer {}", sha256_hex(READER)), "invalid_token"),
    ] {
        let response = server
            .client
            .get(&url)
            .header("authorization", header)
            .send()
            .await?;
        let challenge = response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let (status, problem) = read(response).await?;
        assert_problem(status, &problem, 401, "unauthorized");
        assert_eq!(
            challenge,
            Some(format!("{CHALLENGE}, error=\"{error}\"")),
            "{header}"
        );
    }
    // The scheme is case-insensitive.
    let response = server
        .client
        .get(&url)
        .header("authorization", format!("bearer {READER}"))
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 200);
    Ok(())
}

#[tokio::test]
async fn a_read_token_reads_including_the_read_only_posts() -> TestResult {
    let server = secured().await?;
    for (method, path, body) in reads() {
        let (status, answer) = call(&server, method.clone(), path, Some(READER), body).await?;
        assert_eq!(status, 200, "{method} {path}: {answer}");
    }
    let (_, online) = call(
        &server,
        Method::POST,
        "/get-online-features",
        Some(READER),
        Some(json!({"features": ["user_profile:age"], "entities": {"user_id": [1]}})),
    )
    .await?;
    assert_eq!(online["results"][1]["values"], json!([31]), "{online}");
    assert_eq!(get_status(&server, "/metrics", Some(READER)).await?, 200);
    Ok(())
}

/// What the writes would change: the files, the online value, the registry and the number
/// of cached entries.
async fn snapshot(
    server: &TestServer,
) -> TestResult<(Vec<std::path::PathBuf>, Value, Value, Value)> {
    let files = server.files();
    let (_, online) = call(
        server,
        Method::POST,
        "/get-online-features",
        Some(READER),
        Some(json!({"features": ["user_profile:age"], "entities": {"user_id": [1]}})),
    )
    .await?;
    let (_, views) = call(
        server,
        Method::GET,
        "/registry/feature-views",
        Some(READER),
        None,
    )
    .await?;
    let (_, stats) = call(server, Method::GET, "/cache/stats", Some(READER), None).await?;
    Ok((files, online, views, stats["memory"]["items"].clone()))
}

#[tokio::test]
async fn a_read_token_cannot_write_and_nothing_is_written() -> TestResult {
    let server = secured().await?;
    let (status, _) = call(
        &server,
        Method::GET,
        "/features/user/user_profile",
        Some(READER),
        None,
    )
    .await?;
    assert_eq!(status, 200);
    let before = snapshot(&server).await?;
    assert!(
        before.3.as_u64().is_some_and(|n| n > 0),
        "the reads must have cached something: {:?}",
        before.3
    );
    for (method, path, body) in writes() {
        let (status, problem, challenge) =
            call_with_challenge(&server, method.clone(), path, Some(READER), body).await?;
        assert_problem(status, &problem, 403, "forbidden");
        assert_eq!(
            problem["detail"],
            format!("token \"ci-reader\" has scope read; {method} {path} needs scope write")
        );
        assert_eq!(
            challenge,
            Some(format!(
                "{CHALLENGE}, error=\"insufficient_scope\", scope=\"write\""
            ))
        );
    }
    assert_eq!(snapshot(&server).await?, before);
    Ok(())
}

#[tokio::test]
async fn a_write_token_reads_and_writes() -> TestResult {
    let server = secured().await?;
    for (method, path, body) in reads() {
        let (status, answer) = call(&server, method.clone(), path, Some(WRITER), body).await?;
        assert_eq!(status, 200, "{method} {path}: {answer}");
    }
    for (method, path, body) in writes() {
        let (status, answer) = call(&server, method.clone(), path, Some(WRITER), body).await?;
        assert!(
            status == 200 || status == 201,
            "{method} {path} answered {status}: {answer}"
        );
    }
    // The DELETE among the writes removed the table.
    let (status, _) = call(
        &server,
        Method::GET,
        "/features/user/user_profile",
        Some(WRITER),
        None,
    )
    .await?;
    assert_eq!(status, 404);
    Ok(())
}

#[tokio::test]
async fn with_auth_off_every_route_is_open_and_a_header_is_ignored() -> TestResult {
    let server = TestServer::start()?;
    let (status, body) = call(
        &server,
        Method::POST,
        "/features/user/user_profile",
        None,
        Some(json!({"records": [{"user_id": 1, "age": 31}]})),
    )
    .await?;
    assert_eq!(status, 201, "{body}");
    for token in [None, Some("fs_anything")] {
        let (status, body, challenge) =
            call_with_challenge(&server, Method::GET, "/features", token, None).await?;
        assert_eq!((status, challenge), (200, None), "{body}");
    }
    assert_eq!(get_status(&server, "/metrics", None).await?, 200);
    let (status, _) = call(&server, Method::DELETE, "/cache", None, None).await?;
    assert_eq!(status, 200);
    Ok(())
}

#[tokio::test]
async fn the_openapi_document_declares_the_bearer_scheme_and_each_operation_s_scope() -> TestResult
{
    let server = secured().await?;
    let (status, doc) = call(&server, Method::GET, "/openapi.json", None, None).await?;
    assert_eq!(status, 200);
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http", "{scheme}");
    assert_eq!(scheme["scheme"], "bearer", "{scheme}");
    let paths = &doc["paths"];
    assert!(paths["/health"]["get"].get("security").is_none());
    assert!(paths["/health"]["get"]["responses"].get("401").is_none());
    for (path, method, scope) in [
        ("/features", "get", "read"),
        ("/metrics", "get", "read"),
        ("/features/batch", "post", "read"),
        ("/get-online-features", "post", "read"),
        ("/get-historical-features", "post", "read"),
        ("/features/{group}/{name}", "post", "write"),
        ("/features/{group}/{name}", "delete", "write"),
        ("/push", "post", "write"),
        ("/registry/apply", "post", "write"),
        ("/cache", "delete", "write"),
    ] {
        let op = &paths[path][method];
        assert_eq!(
            op["security"],
            json!([{"bearer": [scope]}]),
            "{method} {path}"
        );
        let unauthorized = &op["responses"]["401"]["content"]["application/problem+json"];
        assert!(
            unauthorized["examples"]["unauthorized"].is_object(),
            "{method} {path}: {unauthorized}"
        );
        let forbidden = &op["responses"]["403"]["content"]["application/problem+json"];
        assert_eq!(
            forbidden["examples"]["forbidden"].is_object(),
            scope == "write",
            "{method} {path}: {forbidden}"
        );
        let description = op["description"].as_str().unwrap_or_default();
        assert!(
            description.contains(&format!("scope `{scope}`")),
            "{method} {path}: {description}"
        );
    }
    Ok(())
}

#[test]
fn auth_misconfigurations_stop_start_up_naming_the_key() -> TestResult {
    let no_tokens = config_from_file("[auth]\nenabled = true\n")?;
    assert!(
        matches!(&no_tokens, Err(ConfigError::Invalid(m)) if m.contains("auth.tokens")),
        "{no_tokens:?}"
    );
    let bad_hex = config_from_file(
        "[auth]\nenabled = true\n[[auth.tokens]]\nname = \"a\"\nsha256 = \"abc\"\nscope = \"read\"\n",
    )?;
    assert!(
        matches!(&bad_hex, Err(ConfigError::Invalid(m)) if m.contains("auth.tokens[0].sha256")),
        "{bad_hex:?}"
    );
    let hash = sha256_hex(READER);
    let twice = config_from_file(&format!(
        "[auth]\nenabled = true\n\
         [[auth.tokens]]\nname = \"a\"\nsha256 = \"{hash}\"\nscope = \"read\"\n\
         [[auth.tokens]]\nname = \"b\"\nsha256 = \"{hash}\"\nscope = \"write\"\n"
    ))?;
    assert!(
        matches!(&twice, Err(ConfigError::Invalid(m)) if m.contains("auth.tokens[1].sha256")),
        "{twice:?}"
    );
    let bad_scope = config_from_file(&format!(
        "[[auth.tokens]]\nname = \"a\"\nsha256 = \"{hash}\"\nscope = \"admin\"\n"
    ))?;
    assert!(
        matches!(&bad_scope, Err(ConfigError::Invalid(m)) if m.contains("admin")),
        "{bad_scope:?}"
    );
    // The whole section also comes from the environment: the token list as a TOML array of
    // inline tables.
    let env = [
        ("FEATURESTORE__AUTH__ENABLED".to_owned(), "true".to_owned()),
        (
            "FEATURESTORE__AUTH__TOKENS".to_owned(),
            format!("[{{name = \"ci\", sha256 = \"{hash}\", scope = \"read\"}}]"),
        ),
    ];
    let config = Config::load(None, env)?;
    assert!(config.auth.enabled);
    assert_eq!(config.auth.tokens.len(), 1);
    assert_eq!(config.auth.tokens[0].sha256, hash);
    Ok(())
}

/// A `featurestore serve` child process, killed on drop.
struct ServeProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`, whatever address it bound.
    base: String,
    /// Its log up to the "listening" line.
    log: String,
}

impl ServeProcess {
    /// Starts `featurestore serve --port 0 ARGS` at info level and waits until it listens.
    fn start(args: &[&str]) -> TestResult<Self> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_featurestore"));
        command
            .arg("serve")
            .args(["--port", "0"])
            .args(args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, _) in std::env::vars() {
            if name.starts_with("FEATURESTORE__") {
                command.env_remove(name);
            }
        }
        let mut child = command.spawn()?;
        let stderr = child.stderr.take().ok_or("no stderr pipe")?;
        let (lines_tx, lines) = mpsc::channel::<String>();
        // Drains stderr for the child's whole life, so its logging never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = lines_tx.send(line);
            }
        });
        let mut process = Self {
            child,
            base: String::new(),
            log: String::new(),
        };
        loop {
            let line = lines
                .recv_timeout(Duration::from_secs(30))
                .map_err(|_| format!("serve never listened; log:\n{}", process.log))?;
            process.log.push_str(&line);
            process.log.push('\n');
            if let Some(rest) = line.split("Swagger UI at http://").nth(1) {
                let address = rest.split("/docs/").next().unwrap_or_default();
                let port = address.rsplit(':').next().unwrap_or_default();
                process.base = format!("http://127.0.0.1:{port}");
                return Ok(process);
            }
        }
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_created_token_works_once_its_lines_are_in_the_config() -> TestResult {
    let reader = featurestore_ok(&["token", "create", "--scope", "read", "--name", "ci-reader"])?;
    let writer = featurestore_ok(&["token", "create", "--scope", "write"])?;
    let mut config = "[auth]\nenabled = true\n".to_owned();
    let mut tokens = Vec::new();
    for (output, scope) in [(&reader, "read"), (&writer, "write")] {
        let (token, lines) = output.split_once('\n').ok_or("no token line")?;
        assert!(
            token.starts_with("fs_") && token.len() >= 3 + 64,
            "{token:?}"
        );
        let toml: toml::Table = lines.parse()?;
        let entry = &toml["auth"]["tokens"][0];
        assert_eq!(entry["scope"].as_str(), Some(scope), "{lines}");
        assert_eq!(entry["sha256"].as_str(), Some(sha256_hex(token).as_str()));
        assert!(
            !lines.contains(token),
            "the token is printed once: {output}"
        );
        config.push_str(lines);
        tokens.push(token.to_owned());
    }
    assert!(reader.contains("name = \"ci-reader\""), "{reader}");
    assert!(writer.contains("name = \"write-"), "{writer}");

    let dir = tempfile::tempdir()?;
    let file = dir.path().join("auth.toml");
    std::fs::write(&file, &config)?;
    let data = dir.path().join("data");
    std::fs::create_dir(&data)?;
    let served = ServeProcess::start(&[
        "--config",
        file.to_str().ok_or("a UTF-8 path")?,
        "--data-dir",
        data.to_str().ok_or("a UTF-8 path")?,
    ])?;
    let client = reqwest::Client::new();
    let features = format!("{}/features", served.base);
    let save = format!("{}/features/user/user_profile", served.base);
    let body = json!({"records": [{"user_id": 1, "age": 31}]});
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(status(client.get(&features).send().await?), 401);
    let read_token = &tokens[0];
    let write_token = &tokens[1];
    assert_eq!(
        status(client.get(&features).bearer_auth(read_token).send().await?),
        200
    );
    let refused = client.post(&save).bearer_auth(read_token).json(&body);
    assert_eq!(status(refused.send().await?), 403);
    let saved = client.post(&save).bearer_auth(write_token).json(&body);
    assert_eq!(status(saved.send().await?), 201);
    Ok(())
}

#[test]
fn a_non_loopback_bind_warns_only_without_auth() -> TestResult {
    let dir = tempfile::tempdir()?;
    // Each server its own data root: two processes cannot share the sled stores.
    let data = |name: &str| {
        let root = dir.path().join(name);
        // `serve` without --demo refuses a missing data root.
        let _ = std::fs::create_dir(&root);
        root.to_string_lossy().into_owned()
    };
    let open = ServeProcess::start(&["--host", "0.0.0.0", "--data-dir", &data("open")])?;
    assert!(
        open.log.contains("WARN") && open.log.contains("non-loopback address without auth"),
        "{}",
        open.log
    );

    let file = dir.path().join("auth.toml");
    std::fs::write(&file, auth_toml())?;
    let file = file.to_str().ok_or("a UTF-8 path")?;
    let secured = ServeProcess::start(&[
        "--host",
        "0.0.0.0",
        "--data-dir",
        &data("secured"),
        "--config",
        file,
    ])?;
    assert!(!secured.log.contains("WARN"), "{}", secured.log);
    assert!(
        secured.log.contains("bearer tokens required"),
        "{}",
        secured.log
    );
    let loopback = ServeProcess::start(&["--host", "127.0.0.1", "--data-dir", &data("loopback")])?;
    assert!(!loopback.log.contains("WARN"), "{}", loopback.log);
    Ok(())
}
