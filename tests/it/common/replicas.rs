//! Several `featurestore serve` processes on one bucket, as replicas behind a load balancer
//! would run: each its own data dir (its caches) and port, the tables in the shared bucket.
//!
//! Also the waiting the two-replica tests need: one replica only sees another's commit after
//! its next poll, so checks retry until a deadline and report how long it took.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use featurestore::storage::object::S3Config;
use serde_json::{Value, json};

use super::TestResult;
use super::child::ChildServer;

/// Longest a request may take: a server stuck retrying an unreachable store must fail the
/// test, not hang it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Held by each [`Replicas`]: one multi-process test at a time. Each starts two debug
/// binaries beside a SeaweedFS on a 2-core machine; several at once starve the rest of the
/// suite (timeouts in unrelated tests) more than they save in wall time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// `count` replicas on the bucket of `config`, with `credentials` (see `S3Bucket::env`).
pub struct Replicas {
    /// The running replicas, by index; a killed one is `None` until restarted.
    pub nodes: Vec<Option<ChildServer>>,
    env: Vec<(String, String)>,
    dirs: tempfile::TempDir,
    _turn: MutexGuard<'static, ()>,
}

impl Replicas {
    /// Starts `count` replicas on the bucket, one after the other.
    pub fn start(
        config: &S3Config,
        credentials: &[(&'static str, String)],
        count: usize,
    ) -> TestResult<Self> {
        Self::start_with_env(config, credentials, count, &[])
    }

    /// [`Self::start`] with `extra` variables set on every replica (a shared Redis, a poll
    /// interval).
    pub fn start_with_env(
        config: &S3Config,
        credentials: &[(&'static str, String)],
        count: usize,
        extra: &[(String, String)],
    ) -> TestResult<Self> {
        let mut env: Vec<(String, String)> = vec![
            ("FEATURESTORE__STORAGE__BACKEND".into(), "s3".into()),
            (
                "FEATURESTORE__STORAGE__S3__BUCKET".into(),
                config.bucket.clone(),
            ),
            (
                "FEATURESTORE__STORAGE__S3__ALLOW_HTTP".into(),
                config.allow_http.to_string(),
            ),
        ];
        if let Some(endpoint) = &config.endpoint {
            env.push((
                "FEATURESTORE__STORAGE__S3__ENDPOINT".into(),
                endpoint.clone(),
            ));
        }
        if !config.prefix.is_empty() {
            env.push((
                "FEATURESTORE__STORAGE__S3__PREFIX".into(),
                config.prefix.clone(),
            ));
        }
        env.extend(
            credentials
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone())),
        );
        env.extend(extra.iter().cloned());
        // A test that failed while holding the turn poisons it; the turn itself is still fine.
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
        let mut replicas = Self {
            nodes: Vec::new(),
            env,
            dirs: tempfile::tempdir()?,
            _turn: turn,
        };
        for index in 0..count {
            std::fs::create_dir_all(replicas.root(index))?;
            let node = replicas.launch(index)?;
            replicas.nodes.push(Some(node));
        }
        Ok(replicas)
    }

    /// Replica `index`'s data dir (what is local to it: caches, online store).
    fn root(&self, index: usize) -> PathBuf {
        self.dirs.path().join(format!("replica-{index}"))
    }

    fn launch(&self, index: usize) -> TestResult<ChildServer> {
        let log = self.dirs.path().join(format!("replica-{index}.log"));
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        ChildServer::start(&self.root(index), &log, &env)
    }

    /// Replica `index`, which must be running.
    pub fn node(&self, index: usize) -> TestResult<&ChildServer> {
        self.nodes
            .get(index)
            .and_then(Option::as_ref)
            .ok_or_else(|| format!("replica {index} is not running").into())
    }

    /// SIGKILLs replica `index` (a crash, the OOM killer, a lost machine).
    pub fn kill(&mut self, index: usize) -> TestResult {
        match self.nodes.get_mut(index).and_then(Option::take) {
            Some(node) => node.kill(),
            None => Err(format!("replica {index} is not running").into()),
        }
    }

    /// Starts replica `index` again (after [`Self::kill`]) on its data dir, on a new port.
    pub fn restart(&mut self, index: usize) -> TestResult {
        if self.nodes.get(index).is_some_and(Option::is_some) {
            return Err(format!("replica {index} is still running").into());
        }
        let node = self.launch(index)?;
        match self.nodes.get_mut(index) {
            Some(slot) => *slot = Some(node),
            None => return Err(format!("no replica {index}").into()),
        }
        Ok(())
    }

    /// The logs of every replica, for a failure message.
    pub fn logs(&self) -> String {
        (0..self.nodes.len())
            .map(|i| {
                let log = self.dirs.path().join(format!("replica-{i}.log"));
                format!("--- replica {i}:\n{}", super::child::tail(&log))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Calls `check` until it answers `Some`, at most until `limit` has passed; returns the
/// answer and how long it took. A check that fails (an HTTP error) is retried like one that
/// answers `None`; past the deadline the last failure or `what` is reported.
pub async fn wait_for<T, F, Fut>(
    limit: Duration,
    what: &str,
    mut check: F,
) -> TestResult<(T, Duration)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = TestResult<Option<T>>>,
{
    let started = Instant::now();
    loop {
        let last = match check().await {
            Ok(Some(value)) => return Ok((value, started.elapsed())),
            Ok(None) => String::from("not yet"),
            Err(e) => e.to_string(),
        };
        if started.elapsed() > limit {
            return Err(format!("{what}: still not the case after {limit:?} ({last})").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// GETs `path` on `node`: status, `Retry-After` header and JSON body (`null` when not JSON).
pub async fn get(
    node: &ChildServer,
    path: &str,
) -> TestResult<(u16, Option<String>, serde_json::Value)> {
    let response = node
        .client
        .get(node.url(path))
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await?;
    answer(response).await
}

/// DELETEs `path` on `node`: status, `Retry-After` header and JSON body.
pub async fn delete(
    node: &ChildServer,
    path: &str,
) -> TestResult<(u16, Option<String>, serde_json::Value)> {
    let response = node
        .client
        .delete(node.url(path))
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await?;
    answer(response).await
}

/// POSTs `body` to `path` on `node`: status, `Retry-After` header and JSON body.
pub async fn post(
    node: &ChildServer,
    path: &str,
    body: &serde_json::Value,
) -> TestResult<(u16, Option<String>, serde_json::Value)> {
    let response = node
        .client
        .post(node.url(path))
        .json(body)
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await?;
    answer(response).await
}

async fn answer(
    response: reqwest::Response,
) -> TestResult<(u16, Option<String>, serde_json::Value)> {
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    let status = response.status().as_u16();
    let bytes = response.bytes().await?;
    let body = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    Ok((status, retry_after, body))
}

/// The group of the tables these tests write.
pub const GROUP: &str = "user";
/// The event time of every row written.
pub const AT: &str = "2026-01-01T00:00:00Z";

/// The rows of write `w`: `rows` rows, entity ids `0..rows`, each naming `w`.
pub fn write_rows(w: &str, rows: usize) -> Value {
    let records: Vec<Value> = (0..rows)
        .map(|id| json!({"entity_id": id, "w": w, "event_timestamp": AT}))
        .collect();
    json!({"records": records, "entity_key": ["entity_id"]})
}

/// Saves (creates or replaces) `name` on `node` with the rows of write `w`; the answer.
pub async fn save(
    node: &ChildServer,
    name: &str,
    w: &str,
    rows: usize,
) -> TestResult<(u16, Value)> {
    let (status, _, body) = post(node, &table(name), &write_rows(w, rows)).await?;
    Ok((status, body))
}

/// The path of table `name` of [`GROUP`].
pub fn table(name: &str) -> String {
    format!("/features/{GROUP}/{name}")
}

/// The whole table as `node` serves it in one page: (version, rows).
pub async fn read_all(node: &ChildServer, name: &str) -> TestResult<Option<(u64, Vec<Value>)>> {
    let (status, _, body) = get(node, &format!("{}?limit=10000", table(name))).await?;
    if status != 200 {
        return Ok(None);
    }
    let version = body["metadata"]["version"].as_u64().ok_or("a version")?;
    let rows = body["data"].as_array().ok_or("data")?.clone();
    Ok(Some((version, rows)))
}

/// The one write id all `rows` carry; an error naming the ids when they mix writes.
pub fn single_write(rows: &[Value]) -> TestResult<String> {
    let writes: BTreeSet<&str> = rows.iter().filter_map(|r| r["w"].as_str()).collect();
    match writes.len() {
        1 => Ok(writes.into_iter().next().unwrap_or_default().to_owned()),
        _ => Err(format!("a read is not one write: it carries writes {writes:?}").into()),
    }
}
