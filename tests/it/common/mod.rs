//! The harness: a real server on an ephemeral loopback port over a temporary data root.
//!
//! Each [`TestServer`] runs the same `server::run` as the binary, in its own thread with its
//! own actix system, and stops it on drop, so tests talk real HTTP and never share state.

#![allow(dead_code)]

pub mod browser;
pub mod child;
pub mod counting;
pub mod feast;
pub mod health;
pub mod history;
pub mod instants;
pub mod kind;
pub mod pip;
pub mod redis;
pub mod replicas;
pub mod rng;
pub mod s3;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use featurestore::api::AppState;
use featurestore::cache::Clock;
use featurestore::config::Config;
use featurestore::store::FeatureStore;
use serde_json::Value;
use tokio::sync::oneshot;

/// Result type of tests: any error fails the test with its message.
pub type TestResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A running server and its data root.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The data root (removed on drop).
    pub data: tempfile::TempDir,
    /// A client for the server.
    pub client: reqwest::Client,
    /// The server's store (a clone sharing its catalog and caches), for tests that must reach
    /// behind the API, such as corrupting a disk cache entry.
    pub store: FeatureStore,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// The bucket of a server of the s3 kind (see [`kind`]), kept alive with it.
    bucket: Option<Arc<s3::S3Bucket>>,
}

impl TestServer {
    /// A server with the default configuration over an empty data root.
    pub fn start() -> TestResult<Self> {
        Self::start_with(|_| {})
    }

    /// A server whose configuration `tweak` may change (the data root is set afterwards).
    pub fn start_with(tweak: impl FnOnce(&mut Config)) -> TestResult<Self> {
        let data = tempfile::tempdir()?;
        Self::start_on(data, tweak)
    }

    /// A server over an existing data root.
    pub fn start_on(data: tempfile::TempDir, tweak: impl FnOnce(&mut Config)) -> TestResult<Self> {
        Self::launch(data, tweak, None, None)
    }

    /// A server of the s3 kind whose bucket is `objects` (a folder through `local_store`
    /// makes it fast, with the same commit protocol), over an empty data root for its caches.
    pub fn start_on_objects(
        objects: featurestore::storage::object::BlockingTree,
        tweak: impl FnOnce(&mut Config),
    ) -> TestResult<Self> {
        Self::launch(tempfile::tempdir()?, tweak, None, Some(objects))
    }

    /// A server whose caches tell time by `clock` (a `ManualClock` lets TTL tests advance
    /// time instead of sleeping), over an empty data root.
    pub fn start_with_clock(
        clock: Arc<dyn Clock>,
        tweak: impl FnOnce(&mut Config),
    ) -> TestResult<Self> {
        Self::launch(tempfile::tempdir()?, tweak, Some(clock), None)
    }

    fn launch(
        data: tempfile::TempDir,
        tweak: impl FnOnce(&mut Config),
        clock: Option<Arc<dyn Clock>>,
        objects: Option<featurestore::storage::object::BlockingTree>,
    ) -> TestResult<Self> {
        let mut config = Config::defaults()?;
        config.server.workers = 1;
        config.server.shutdown_timeout_secs = 5;
        // /health's background checks every second, so tests waiting for one wait little.
        config.health.check_interval_seconds = 1;
        tweak(&mut config);
        config.storage.data_dir = data.path().to_path_buf();
        let bucket = kind::s3_bucket_of_this_test();
        if let Some(bucket) = &bucket {
            config.storage.backend = featurestore::storage::StorageBackend::S3;
            config.storage.s3 = bucket.config.clone();
        }
        let auth = config.auth.authenticator()?;
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let base = format!("http://{}", listener.local_addr()?);
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<FeatureStore, String>>();
        let mut options = config.store_options();
        if let Some(clock) = clock {
            options.clock = clock;
        }
        if let Some(bucket) = &bucket {
            options.object_store = Some(featurestore::storage::object::BlockingTree::new(
                bucket.tree()?,
            ));
        }
        if let Some(objects) = objects {
            options.storage.backend = featurestore::storage::StorageBackend::S3;
            options.object_store = Some(objects);
        }
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let store = match FeatureStore::open(options) {
                    Ok(store) => store,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(store.clone()));
                let state = AppState::new(store, config.api.clone()).with_auth(auth);
                let shutdown = async move {
                    let _ = shutdown_rx.await;
                };
                if let Err(e) =
                    featurestore::server::run(listener, state, &config.server, shutdown).await
                {
                    eprintln!("test server failed: {e}");
                }
            });
        });
        let store = ready_rx.recv()??;
        Ok(Self {
            base,
            data,
            client: reqwest::Client::new(),
            store,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
            bucket,
        })
    }

    /// Stops the server and returns its data root, to restart another server on it.
    pub fn stop(self) -> tempfile::TempDir {
        let data = self.release();
        wait_until_closed(data.path());
        data
    }

    /// Stops the server and drops this handle (with its store clone), keeping the data root.
    fn release(mut self) -> tempfile::TempDir {
        self.halt();
        let placeholder = tempfile::TempDir::new().expect("a temporary directory");
        std::mem::replace(&mut self.data, placeholder)
    }

    fn halt(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// The data root.
    pub fn root(&self) -> &Path {
        self.data.path()
    }

    /// Absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET `path`; returns status and JSON body.
    pub async fn get(&self, path: &str) -> TestResult<(u16, Value)> {
        let response = self.client.get(self.url(path)).send().await?;
        read(response).await
    }

    /// POST `body` as JSON to `path`; returns status and JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> TestResult<(u16, Value)> {
        let response = self.client.post(self.url(path)).json(body).send().await?;
        read(response).await
    }

    /// DELETE `path`; returns status and JSON body.
    pub async fn delete(&self, path: &str) -> TestResult<(u16, Value)> {
        let response = self.client.delete(self.url(path)).send().await?;
        read(response).await
    }

    /// Saves `records` as `group/name` and checks it succeeded.
    pub async fn save(&self, group: &str, name: &str, body: Value) -> TestResult<Value> {
        let (status, json) = self
            .post(&format!("/features/{group}/{name}"), &body)
            .await?;
        if status != 200 && status != 201 {
            return Err(format!("saving {group}/{name} failed with {status}: {json}").into());
        }
        Ok(json)
    }

    /// POST `body` as JSON to `path`; returns status and the raw body, for checks on key
    /// order and on what a JSON parser would lose (repeated keys).
    pub async fn post_text(&self, path: &str, body: &Value) -> TestResult<(u16, String)> {
        let response = self.client.post(self.url(path)).json(body).send().await?;
        Ok((response.status().as_u16(), response.text().await?))
    }

    /// Applies registry definitions through `POST /registry/apply` and checks it succeeded;
    /// returns the report (`created`, `updated`, `unchanged`).
    pub async fn apply(&self, doc: &Value) -> TestResult<Value> {
        let (status, report) = self.post("/registry/apply", doc).await?;
        if status != 200 {
            return Err(format!("applying {doc} failed with {status}: {report}").into());
        }
        Ok(report)
    }

    /// Every file under the data root, relative, sorted; sled's own files and the lock files
    /// are left out.
    pub fn files(&self) -> Vec<PathBuf> {
        list_files(self.root())
            .into_iter()
            // sled's own files (the disk cache, the online store) change on their own schedule;
            // the lock files (`metadata/open.lock`, `registry/registry.lock`) hold no data and
            // exist from the moment the tree is opened.
            .filter(|p| !p.starts_with("cache") && !p.starts_with("online"))
            .filter(|p| p.extension().is_none_or(|e| e != "lock"))
            .collect()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Waits (up to 10 s) until no store has the tree at `root` open. A stopped process lets go of
/// everything when it exits; an in-process server's worker threads may still be dropping their
/// store clones after its thread has joined, and a server restarted on the root meanwhile would
/// see itself not alone and skip its start-up sweep (CI saw exactly that once).
fn wait_until_closed(root: &Path) {
    let path = root
        .join("metadata")
        .join(featurestore::storage::PRESENCE_FILE);
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
    else {
        return;
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while file.try_lock().is_err() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Status and JSON body of a response; error bodies must be problem+json.
pub async fn read(response: reqwest::Response) -> TestResult<(u16, Value)> {
    let status = response.status().as_u16();
    let content_type = content_type(&response);
    let bytes = response.bytes().await?;
    if status >= 400 && content_type != "application/problem+json" {
        return Err(format!("error {status} has content type {content_type:?}").into());
    }
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)?
    };
    Ok((status, json))
}

/// Every file below `root`, relative to it, sorted.
pub fn list_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(root) {
                out.push(rel.to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// Asserts a problem+json body: status, code, and that the standard members are present.
pub fn assert_problem(status: u16, body: &Value, expected_status: u16, expected_code: &str) {
    assert_eq!(status, expected_status, "unexpected status; body: {body}");
    assert_eq!(body["status"], expected_status, "body: {body}");
    assert_eq!(body["code"], expected_code, "body: {body}");
    assert_eq!(
        body["type"],
        format!("/problems/{}", expected_code.replace('_', "-")),
        "body: {body}"
    );
    assert!(
        body["title"].as_str().is_some_and(|t| !t.is_empty()),
        "body: {body}"
    );
    assert!(
        body["detail"].as_str().is_some_and(|t| !t.is_empty()),
        "body: {body}"
    );
}

/// Runs the `featurestore` binary with `args`, isolated from any configuration in the
/// environment.
pub fn featurestore_command(args: &[&str]) -> TestResult<std::process::Output> {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_featurestore"));
    command.args(args).env("RUST_LOG", "warn");
    for (name, _) in std::env::vars() {
        if name.starts_with("FEATURESTORE__") {
            command.env_remove(name);
        }
    }
    for (name, value) in kind::s3_env_of_this_test() {
        command.env(name, value);
    }
    Ok(command.output()?)
}

/// A server over a small demo written by the `demo` command, relative to now as
/// `serve --demo` writes it (30 users, 12 movies, 300 interactions).
pub fn small_demo_server() -> TestResult<TestServer> {
    TestServer::start_on(small_demo_dir()?, |_| {})
}

/// A data root holding the small demo of [`small_demo_server`], written by the `demo` command.
pub fn small_demo_dir() -> TestResult<tempfile::TempDir> {
    let data = tempfile::tempdir()?;
    let root = data.path().to_str().ok_or("a UTF-8 temporary path")?;
    featurestore_ok(&[
        "demo",
        "--data-dir",
        root,
        "--users",
        "30",
        "--movies",
        "12",
        "--interactions",
        "300",
    ])?;
    Ok(data)
}

/// Runs the binary and checks that it succeeded; returns its stdout.
pub fn featurestore_ok(args: &[&str]) -> TestResult<String> {
    let output = featurestore_command(args)?;
    if !output.status.success() {
        return Err(format!(
            "featurestore {args:?} failed with {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(output.stdout)?)
}

/// The `content-type` of a response, or "" when it has none.
pub fn content_type(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The bytes of a complete Parquet file holding `batch` (closing the writer writes the footer).
pub fn parquet_bytes(batch: &arrow::record_batch::RecordBatch) -> TestResult<Vec<u8>> {
    let mut writer = parquet::arrow::ArrowWriter::try_new(Vec::new(), batch.schema(), None)?;
    writer.write(batch)?;
    Ok(writer.into_inner()?)
}

/// Writes `batch` as a complete Parquet file with the parquet crate, as another tool would.
pub fn write_parquet(path: &Path, batch: &arrow::record_batch::RecordBatch) -> TestResult {
    std::fs::write(path, parquet_bytes(batch)?)?;
    Ok(())
}

/// Replaces `target` the way pandas or Spark jobs do: a complete file under another name in
/// the same folder, then a rename over the table.
pub fn replace_externally(target: &Path, batch: &arrow::record_batch::RecordBatch) -> TestResult {
    let temp = target.with_extension("incoming");
    write_parquet(&temp, batch)?;
    std::fs::rename(&temp, target)?;
    Ok(())
}

/// Microseconds since the epoch of an RFC 3339 instant.
pub fn micros(rfc3339: &str) -> TestResult<i64> {
    featurestore::store::parse_timestamp_micros(rfc3339)
        .ok_or_else(|| format!("{rfc3339:?} is not an RFC 3339 instant").into())
}

/// Whether the server's durable online store is open: `POST /materialize` of no view touches
/// nothing, yet answers 503 `online_store_unavailable` when the store could not be opened.
pub async fn online_store_open(server: &TestServer) -> TestResult<bool> {
    let (status, body) = server
        .post(
            "/materialize",
            &serde_json::json!({"start_ts": "1970-01-01T00:00:00Z",
                                "end_ts": "1970-01-01T00:00:00Z", "feature_views": []}),
        )
        .await?;
    match status {
        200 => Ok(true),
        503 => Ok(false),
        _ => Err(format!("probing the online store answered {status}: {body}").into()),
    }
}

/// Stops `server` and starts another on its data root with `tweak`, with its durable online
/// store open. sled 0.34 sometimes cannot take its lock again right after the previous handle
/// in this same process dropped (a separate process, as in production, never sees this);
/// such a start is retried after a short pause (the pause is not a timing assertion).
pub async fn restart_with(
    server: TestServer,
    tweak: impl Fn(&mut Config),
) -> TestResult<TestServer> {
    start_again_on(server.stop(), tweak).await
}

/// Starts a server on the data root of a stopped one, as [`restart_with`] does.
pub async fn start_again_on(
    mut data: tempfile::TempDir,
    tweak: impl Fn(&mut Config),
) -> TestResult<TestServer> {
    for _ in 0..20 {
        let server = TestServer::start_on(data, &tweak)?;
        if online_store_open(&server).await? {
            return Ok(server);
        }
        data = server.stop();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Err("the online store stayed unavailable after 20 restarts".into())
}

/// [`restart_with`] the default configuration.
pub async fn restart(server: TestServer) -> TestResult<TestServer> {
    restart_with(server, |_| {}).await
}

/// The `(value, status, event timestamp)` of each entity row of the result named `name` of a
/// column-major `/get-online-features` answer.
pub fn online_slots(answer: &Value, name: &str) -> TestResult<Vec<(Value, String, String)>> {
    let names = answer["metadata"]["feature_names"]
        .as_array()
        .ok_or_else(|| format!("no feature_names in {answer}"))?;
    let i = names
        .iter()
        .position(|n| n == name)
        .ok_or_else(|| format!("no result named {name} in {answer}"))?;
    let result = &answer["results"][i];
    let (Some(values), Some(statuses), Some(timestamps)) = (
        result["values"].as_array(),
        result["statuses"].as_array(),
        result["event_timestamps"].as_array(),
    ) else {
        return Err(format!("result {name} is incomplete in {answer}").into());
    };
    Ok(values
        .iter()
        .zip(statuses)
        .zip(timestamps)
        .map(|((v, s), t)| {
            (
                v.clone(),
                s.as_str().unwrap_or_default().to_owned(),
                t.as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect())
}

/// One slot of [`online_slots`], for comparisons.
pub fn slot(value: Value, status: &str, timestamp: &str) -> (Value, String, String) {
    (value, status.to_owned(), timestamp.to_owned())
}
