//! The shared online tier: rows pushed online and materialized rows in Redis (or Valkey), so
//! every replica answers a lookup the same.
//!
//! Layout, under `key_prefix` (`featurestore:` by default):
//! - `v:<view>:<entity>`: one hash per entity and view, the entity's latest row: `_event`
//!   (event time, µs), `_created` (created time, when the view has one) and `c:<column>` per
//!   non-null column (see [`codec`]). A write replaces the whole row, and only when its event
//!   time is not older than the stored one (ties: the later created time, else the later
//!   write), checked and applied atomically by a Lua script, so two replicas pushing out of
//!   order still leave the newest row.
//! - `pushed`: view → `1` for every view that has rows here, so a lookup of a view with
//!   none stays a local probe.
//! - `materialized`: view → the JSON record of its last materialization (the record the local
//!   tier keeps in sled, [`Materialized`]).
//!
//! A server worker (an actix worker, a single-thread runtime of its own) talks to Redis over its
//! own multiplexed connection, so a lookup's round trip never leaves its thread; every other
//! caller (the blocking pool, the CLI, background tasks) uses a pool of connections living on
//! one process-wide runtime. Every call is bounded by `response_timeout_ms` (plus
//! `connect_timeout_ms` when it must connect) and retried once on a pooled connection. After a
//! failure, lookups skip Redis for a short while and answer from the local index; a background
//! ping notices the server is back.

pub mod codec;
pub mod config;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant, SystemTime};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use codec::EncodedRow;
pub use config::{OnlineBackend, OnlineConfig, RedisConfig};

use crate::online::durable::Materialized;

/// The write script: replace the row at `KEYS[1]` unless it holds a later event.
/// `ARGV`: event µs, created µs (or empty), expiry seconds (0: none), then field/value pairs.
const WRITE_SCRIPT: &str = r"
local current = redis.call('HMGET', KEYS[1], '_event', '_created')
if current[1] then
  local event, stored = tonumber(ARGV[1]), tonumber(current[1])
  if event < stored then return 0 end
  if event == stored and ARGV[2] ~= '' and current[2] and tonumber(ARGV[2]) < tonumber(current[2]) then
    return 0
  end
end
redis.call('DEL', KEYS[1])
local fields = {'_event', ARGV[1]}
if ARGV[2] ~= '' then
  fields[#fields + 1] = '_created'
  fields[#fields + 1] = ARGV[2]
end
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
if tonumber(ARGV[3]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return 1
";

/// Rows per pipeline of writes: large enough to amortise the round trip, small enough that
/// one pipeline stays well inside the response timeout.
const WRITE_CHUNK: usize = 512;

/// How often each replica re-reads which views have rows in Redis: the safety net under the
/// change bus's notices (a lost notice delays a first push's visibility by at most this).
const VIEWS_REFRESH: Duration = Duration::from_secs(1);

/// How long lookups skip Redis after a failure before trying it again.
const BACKOFF: Duration = Duration::from_millis(200);

thread_local! {
    /// Each server worker thread's own connection per tier (see [`RedisOnline::query`]).
    static WORKER_CONNECTIONS: std::cell::RefCell<HashMap<u64, ConnectionManager>> =
        std::cell::RefCell::new(HashMap::new());
}

/// The one runtime Redis connections live on.
fn redis_runtime() -> Option<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("redis-io")
                .enable_all()
                .build()
                .map_err(|e| tracing::error!(error = %e, "cannot start the Redis I/O runtime"))
                .ok()
        })
        .as_ref()
}

/// Why a Redis call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RedisOnlineError {
    /// The server did not answer, refused, or answered with an error.
    #[error("redis at {url}: {reason}")]
    Unavailable {
        /// The server, without its password.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The configuration cannot be used (bad URL).
    #[error("{0}")]
    Config(String),
}

/// What Redis holds for one view, as this replica last learned it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ViewState {
    /// Rows were pushed or materialized into Redis for the view: lookups must read it.
    pub has_rows: bool,
    /// The last materialization, if any (shared: every lookup of the view reads it).
    pub materialized: Option<Arc<Materialized>>,
}

/// Whether Redis answered lately, for `/health` and `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisStatus {
    /// The server, without its password.
    pub url: String,
    /// Why it is considered down, while it is.
    pub unavailable: Option<String>,
}

/// A command or a pipeline, sent as one round trip.
#[derive(Clone)]
enum Request {
    Cmd(redis::Cmd),
    Pipe(redis::Pipeline),
}

/// One entity row to read: which view's hash, which fields.
#[derive(Debug, Clone)]
pub struct RowRead {
    /// The view.
    pub view: String,
    /// The entity part of the key.
    pub entity: String,
}

/// The Redis online tier.
pub struct RedisOnline {
    config: RedisConfig,
    url: String,
    /// Tells this tier's connections apart in each worker thread's own set.
    id: u64,
    client: redis::Client,
    manager_config: ConnectionManagerConfig,
    /// The pool on the Redis runtime, for callers that are not on a worker's own runtime.
    connections: Vec<ConnectionManager>,
    next: AtomicUsize,
    script_hash: String,
    views: RwLock<HashMap<String, ViewState>>,
    /// Lookups skip Redis until this instant (µs of [`Self::clock`]) after a failure.
    skip_until: AtomicI64,
    down: Mutex<Option<(SystemTime, String)>>,
    pinging: AtomicBool,
    clock: Instant,
}

impl std::fmt::Debug for RedisOnline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisOnline")
            .field("url", &self.url)
            .field("key_prefix", &self.config.key_prefix)
            .finish_non_exhaustive()
    }
}

impl RedisOnline {
    /// Prepares connections to the server of `config` without waiting for it: a replica
    /// starts (and serves from its local index) while Redis is down, and connects when it
    /// comes back.
    pub fn open(config: &RedisConfig) -> Result<Arc<Self>, RedisOnlineError> {
        config.validate().map_err(RedisOnlineError::Config)?;
        let url = config.display_url();
        let bad =
            |e: redis::RedisError| RedisOnlineError::Config(format!("online.redis.url {url}: {e}"));
        let mut info =
            redis::IntoConnectionInfo::into_connection_info(config.url.as_str()).map_err(bad)?;
        if info.redis_settings().password().is_none()
            && let Ok(password) = std::env::var("REDIS_PASSWORD")
            && !password.is_empty()
        {
            let settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(settings);
        }
        let client = redis::Client::open(info).map_err(bad)?;
        let runtime = redis_runtime()
            .ok_or_else(|| RedisOnlineError::Config("cannot start the Redis I/O runtime".into()))?;
        let _inside = runtime.enter();
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout()))
            .set_response_timeout(Some(config.response_timeout()))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let connections = (0..config.pool_size)
            .map(|_| {
                ConnectionManager::new_lazy_with_config(client.clone(), manager_config.clone())
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?;
        static IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let online = Arc::new(Self {
            config: config.clone(),
            url,
            id: IDS.fetch_add(1, Ordering::Relaxed),
            client: client.clone(),
            manager_config: manager_config.clone(),
            connections,
            next: AtomicUsize::new(0),
            script_hash: redis::Script::new(WRITE_SCRIPT).get_hash().to_owned(),
            views: RwLock::new(HashMap::new()),
            skip_until: AtomicI64::new(0),
            down: Mutex::new(None),
            pinging: AtomicBool::new(false),
            clock: Instant::now(),
        });
        let weak = Arc::downgrade(&online);
        online.spawn(async move {
            loop {
                tokio::time::sleep(VIEWS_REFRESH).await;
                // Ends with the last handle to the tier (a store closed, a test finished).
                let Some(online) = weak.upgrade() else {
                    return;
                };
                if online.worth_trying() {
                    // A failure is recorded by the call itself (health, back-off).
                    let _ = online.refresh_views().await;
                }
            }
        });
        Ok(online)
    }

    /// The configuration.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// A client for the server (for subscriptions, which need their own connection).
    pub fn client(&self) -> Result<redis::Client, RedisOnlineError> {
        Ok(self.client.clone())
    }

    /// The channel every replica's change notices go through.
    pub fn events_channel(&self) -> String {
        format!("{}events", self.config.key_prefix)
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.config.key_prefix)
    }

    /// The hash key of one entity's row of `view`.
    pub fn row_key(&self, view: &str, entity: &str) -> String {
        format!("{}v:{view}:{entity}", self.config.key_prefix)
    }

    fn connection(&self) -> ConnectionManager {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len().max(1);
        self.connections[i].clone()
    }

    /// This worker thread's own connection, when the caller runs on a single-thread runtime
    /// (an actix worker's), created on first use there so its I/O task lives on that runtime.
    fn worker_connection(&self) -> Option<ConnectionManager> {
        let handle = tokio::runtime::Handle::try_current().ok()?;
        if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::CurrentThread {
            return None;
        }
        WORKER_CONNECTIONS.with(|connections| {
            let mut connections = connections.borrow_mut();
            if let Some(connection) = connections.get(&self.id) {
                return Some(connection.clone());
            }
            let connection = ConnectionManager::new_lazy_with_config(
                self.client.clone(),
                self.manager_config.clone(),
            )
            .ok()?;
            connections.insert(self.id, connection.clone());
            Some(connection)
        })
    }

    fn unavailable(&self, e: impl std::fmt::Display) -> RedisOnlineError {
        RedisOnlineError::Unavailable {
            url: self.url.clone(),
            reason: e.to_string(),
        }
    }

    fn now_micros(&self) -> i64 {
        i64::try_from(self.clock.elapsed().as_micros()).unwrap_or(i64::MAX)
    }

    /// Whether lookups should try Redis now (not within the back-off after a failure).
    pub fn worth_trying(&self) -> bool {
        self.now_micros() >= self.skip_until.load(Ordering::Relaxed)
    }

    /// Whether Redis answered lately, and why not if not.
    pub fn status(&self) -> RedisStatus {
        RedisStatus {
            url: self.url.clone(),
            unavailable: self
                .down
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .map(|(_, reason)| reason.clone()),
        }
    }

    fn succeeded(self: &Arc<Self>) {
        self.skip_until.store(0, Ordering::Relaxed);
        let was_down = self
            .down
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .is_some();
        if was_down {
            tracing::info!(url = %self.url, "redis answers again; online rows are served from it");
            // Pushes may have been marked while this replica could not hear of them.
            let me = Arc::clone(self);
            self.spawn(async move {
                if let Err(e) = me.refresh_views().await {
                    tracing::warn!(error = %e, "could not re-read the online views from redis");
                }
            });
        }
    }

    fn failed(self: &Arc<Self>, error: &RedisOnlineError) {
        self.skip_until.store(
            self.now_micros()
                .saturating_add(i64::try_from(BACKOFF.as_micros()).unwrap_or(i64::MAX)),
            Ordering::Relaxed,
        );
        let reason = error.to_string();
        let mut down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        if down.is_none() {
            tracing::warn!(error = %reason, "redis is unavailable: lookups answer from the local index, pushes online fail with 503");
        }
        *down = Some((SystemTime::now(), reason));
        drop(down);
        if !self.pinging.swap(true, Ordering::AcqRel) {
            let me = Arc::clone(self);
            self.spawn(async move { me.ping_until_up().await });
        }
    }

    async fn ping_until_up(self: Arc<Self>) {
        loop {
            tokio::time::sleep(BACKOFF).await;
            let mut connection = self.connection();
            let answer = tokio::time::timeout(
                self.config.response_timeout() + self.config.connect_timeout(),
                redis::cmd("PING").query_async::<String>(&mut connection),
            )
            .await;
            if matches!(answer, Ok(Ok(_))) {
                // A connection reconnects only after a call on it failed: wake every one
                // now, so the first lookups after the outage do not each find a dead one.
                for connection in &self.connections {
                    // The first call on a dead connection fails and starts its reconnect.
                    for _ in 0..2 {
                        let mut connection = connection.clone();
                        let pinged = tokio::time::timeout(
                            self.config.response_timeout() + self.config.connect_timeout(),
                            redis::cmd("PING").query_async::<String>(&mut connection),
                        )
                        .await;
                        if matches!(pinged, Ok(Ok(_))) {
                            break;
                        }
                    }
                }
                self.pinging.store(false, Ordering::Release);
                self.succeeded();
                return;
            }
        }
    }

    /// Runs `future` on the Redis runtime without waiting for it (fire and forget).
    pub fn spawn(&self, future: impl std::future::Future<Output = ()> + Send + 'static) {
        if let Some(runtime) = redis_runtime() {
            runtime.spawn(future);
        }
    }

    /// Sends `request` (on the worker's own connection when called from a server worker, else
    /// on the pool's runtime), bounded by the response timeout (plus the connect timeout when
    /// a connection must be made first), and records the outcome. A request that fails is
    /// sent once more on the next connection of the pool: after an outage a connection only
    /// notices it is dead, and starts reconnecting, on its first call. Every request here may
    /// be repeated (reads, guarded writes, publishes).
    async fn query<T: redis::FromRedisValue + Send + 'static>(
        self: &Arc<Self>,
        request: Request,
    ) -> Result<T, RedisOnlineError> {
        let runtime = redis_runtime()
            .ok_or_else(|| self.unavailable("the Redis I/O runtime is not running"))?;
        let limit = self.config.response_timeout() + self.config.connect_timeout();
        let mut outcome = Err(self.unavailable("not sent"));
        // On a server worker (a single-thread runtime of its own), the worker's own
        // connection: the request is written, and its answer read, by this very thread, with
        // no hop to the Redis runtime and back (that hop was most of a lookup's CPU).
        let mut attempts_left = 2;
        if let Some(mut connection) = self.worker_connection() {
            attempts_left = 1;
            // Awaited right here, so the request is borrowed, not copied.
            let request = &request;
            outcome = match tokio::time::timeout(limit, async move {
                match request {
                    Request::Cmd(cmd) => cmd.query_async::<T>(&mut connection).await,
                    Request::Pipe(pipe) => pipe.query_async::<T>(&mut connection).await,
                }
            })
            .await
            {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(e)) => Err(self.unavailable(e)),
                Err(_) => {
                    Err(self.unavailable(format!("no answer within {} ms", limit.as_millis())))
                }
            };
        }
        for _attempt in 0..attempts_left {
            if outcome.is_ok() {
                break;
            }
            let mut connection = self.connection();
            let request = request.clone();
            let call = async move {
                match &request {
                    Request::Cmd(cmd) => cmd.query_async::<T>(&mut connection).await,
                    Request::Pipe(pipe) => pipe.query_async::<T>(&mut connection).await,
                }
            };
            outcome = match runtime
                .spawn(async move { tokio::time::timeout(limit, call).await })
                .await
            {
                Ok(Ok(Ok(value))) => Ok(value),
                Ok(Ok(Err(e))) => Err(self.unavailable(e)),
                Ok(Err(_)) => {
                    Err(self.unavailable(format!("no answer within {} ms", limit.as_millis())))
                }
                Err(e) => Err(self.unavailable(e)),
            };
        }
        match &outcome {
            Ok(_) => self.succeeded(),
            Err(e) => self.failed(e),
        }
        outcome
    }

    /// Runs `call` from a synchronous caller (the blocking pool, the CLI): on the Redis
    /// runtime, waiting on a channel, which works from any thread but the runtime's own.
    pub fn wait<T: Send + 'static>(
        self: &Arc<Self>,
        call: impl std::future::Future<Output = Result<T, RedisOnlineError>> + Send + 'static,
    ) -> Result<T, RedisOnlineError> {
        let runtime = redis_runtime()
            .ok_or_else(|| self.unavailable("the Redis I/O runtime is not running"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        runtime.spawn(async move {
            let _ = tx.send(call.await);
        });
        rx.recv()
            .map_err(|_| self.unavailable("the Redis call was dropped"))?
    }

    /// What Redis holds for `view`, as last learned (no I/O).
    pub fn view_state(&self, view: &str) -> Option<ViewState> {
        self.views
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(view)
            .cloned()
    }

    /// Re-reads which views have rows in Redis and their materializations.
    pub async fn refresh_views(self: &Arc<Self>) -> Result<(), RedisOnlineError> {
        let mut pipe = redis::pipe();
        pipe.cmd("HGETALL")
            .arg(self.key("pushed"))
            .cmd("HGETALL")
            .arg(self.key("materialized"));
        let (pushed, materialized): (HashMap<String, String>, HashMap<String, String>) =
            self.query(Request::Pipe(pipe)).await?;
        let mut views: HashMap<String, ViewState> = pushed
            .into_keys()
            .map(|view| {
                (
                    view,
                    ViewState {
                        has_rows: true,
                        materialized: None,
                    },
                )
            })
            .collect();
        for (view, record) in materialized {
            match serde_json::from_str::<Materialized>(&record) {
                Ok(record) => views.entry(view).or_default().materialized = Some(Arc::new(record)),
                Err(e) => {
                    tracing::warn!(view, error = %e, "unreadable materialization record in redis; ignored")
                }
            }
        }
        *self.views.write().unwrap_or_else(|p| p.into_inner()) = views;
        Ok(())
    }

    /// Reads the rows of `reads` (fields `fields[view]` of each), in one round trip. Each
    /// answer is `None` when the entity has no row, else its event time (µs) and one value
    /// per field.
    pub async fn read_rows(
        self: &Arc<Self>,
        reads: &[RowRead],
        fields: &HashMap<String, Vec<String>>,
    ) -> Result<Vec<Option<(i64, Vec<Option<String>>)>>, RedisOnlineError> {
        let mut pipe = redis::pipe();
        for read in reads {
            let names = fields.get(&read.view).map(Vec::as_slice).unwrap_or(&[]);
            pipe.cmd("HMGET")
                .arg(self.row_key(&read.view, &read.entity))
                .arg("_event")
                .arg(names);
        }
        let answers: Vec<Vec<Option<String>>> = self.query(Request::Pipe(pipe)).await?;
        Ok(answers
            .into_iter()
            .map(|mut values| {
                // `_event` is set on every stored row: without it there is no row.
                let event = values.first().cloned().flatten()?.parse().ok()?;
                values.remove(0);
                Some((event, values))
            })
            .collect())
    }

    /// Writes `rows` into `view` (newer events only), marks the view as having rows and
    /// tells the other replicas. Returns how many rows replaced what was stored.
    pub async fn write_rows(
        self: &Arc<Self>,
        view: &str,
        rows: Vec<EncodedRow>,
    ) -> Result<u64, RedisOnlineError> {
        let mut applied = 0;
        let ttl = self.config.key_ttl_seconds;
        let newly_marked = self.view_state(view).is_none_or(|s| !s.has_rows);
        let mut first = true;
        for chunk in rows.chunks(WRITE_CHUNK) {
            let mut pipe = redis::pipe();
            if first {
                // Marked before the rows land, so a replica that sees a row also reads it.
                pipe.cmd("HSET")
                    .arg(self.key("pushed"))
                    .arg(view)
                    .arg(1)
                    .ignore();
                pipe.cmd("SCRIPT").arg("LOAD").arg(WRITE_SCRIPT).ignore();
            }
            for row in chunk {
                pipe.cmd("EVALSHA")
                    .arg(&self.script_hash)
                    .arg(1)
                    .arg(self.row_key(view, &row.entity))
                    .arg(row.event_micros)
                    .arg(
                        row.created_micros
                            .map(|c| c.to_string())
                            .unwrap_or_default(),
                    )
                    .arg(ttl);
                for (field, value) in &row.fields {
                    pipe.arg(field).arg(value);
                }
            }
            if first && newly_marked {
                pipe.cmd("PUBLISH")
                    .arg(self.events_channel())
                    .arg(r#"{"kind":"online_views"}"#)
                    .ignore();
            }
            first = false;
            let replaced: Vec<i64> = self.query(Request::Pipe(pipe)).await?;
            applied += replaced.iter().filter(|r| **r == 1).count() as u64;
        }
        self.views
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(view.to_owned())
            .or_default()
            .has_rows = true;
        Ok(applied)
    }

    /// Records a materialization of `view` (after its rows were written).
    pub async fn save_materialized(
        self: &Arc<Self>,
        view: &str,
        record: &Materialized,
    ) -> Result<(), RedisOnlineError> {
        let json = serde_json::to_string(record).map_err(|e| self.unavailable(e))?;
        let mut pipe = redis::pipe();
        pipe.cmd("HSET")
            .arg(self.key("materialized"))
            .arg(view)
            .arg(json)
            .ignore()
            .cmd("PUBLISH")
            .arg(self.events_channel())
            .arg(r#"{"kind":"online_views"}"#)
            .ignore();
        self.query::<()>(Request::Pipe(pipe)).await?;
        let mut views = self.views.write().unwrap_or_else(|p| p.into_inner());
        let state = views.entry(view.to_owned()).or_default();
        state.has_rows = true;
        state.materialized = Some(Arc::new(record.clone()));
        Ok(())
    }

    /// The materialization record of `view` as Redis has it now (for the incremental
    /// watermark, which must not come from a stale copy).
    pub async fn materialized(
        self: &Arc<Self>,
        view: &str,
    ) -> Result<Option<Materialized>, RedisOnlineError> {
        let mut cmd = redis::cmd("HGET");
        cmd.arg(self.key("materialized")).arg(view);
        let json: Option<String> = self.query(Request::Cmd(cmd)).await?;
        Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
    }

    /// Removes every row of `view` and its marks (its table was deleted).
    pub async fn forget_view(self: &Arc<Self>, view: &str) -> Result<u64, RedisOnlineError> {
        let mut pipe = redis::pipe();
        pipe.cmd("HDEL")
            .arg(self.key("pushed"))
            .arg(view)
            .ignore()
            .cmd("HDEL")
            .arg(self.key("materialized"))
            .arg(view)
            .ignore();
        self.query::<()>(Request::Pipe(pipe)).await?;
        self.views
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(view);
        let pattern = format!("{}v:{}:*", self.config.key_prefix, escape_glob(view));
        let mut removed = 0u64;
        let mut cursor = 0u64;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000);
            let (next, keys): (u64, Vec<String>) = self.query(Request::Cmd(scan)).await?;
            if !keys.is_empty() {
                let count = keys.len() as u64;
                let mut unlink = redis::cmd("UNLINK");
                unlink.arg(keys);
                self.query::<i64>(Request::Cmd(unlink)).await?;
                removed += count;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        self.publish(r#"{"kind":"online_views"}"#).await?;
        Ok(removed)
    }

    /// Asks the server whether it answers (for `/health`), recording the outcome.
    pub async fn ping(self: &Arc<Self>) -> Result<(), RedisOnlineError> {
        self.query::<String>(Request::Cmd(redis::cmd("PING")))
            .await
            .map(|_| ())
    }

    /// Publishes `message` on the events channel.
    pub async fn publish(self: &Arc<Self>, message: &str) -> Result<(), RedisOnlineError> {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(self.events_channel()).arg(message);
        self.query::<i64>(Request::Cmd(cmd)).await.map(|_| ())
    }
}

/// `text` with the glob characters of `SCAN MATCH` escaped.
fn escape_glob(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
