//! chromedriver as a child process on a loopback port it picks itself.
//!
//! chromedriver is started with `--port=0`, so two tests never race for a port, and its port is
//! read back from the line it prints once it listens. It runs in a process group of its own and
//! Chromium (which it launches) stays in that group, so dropping the [`Driver`] — also while a
//! failed test unwinds — kills the driver and every browser process with one signal: a failed
//! test never leaves a Chromium behind on a shared 2-core machine.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::TestResult;

/// Where Debian's `chromium-driver` package installs the driver.
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Where Debian's `chromium` package installs the browser (a launcher script).
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// How long chromedriver may take to listen (it starts no browser until a session is asked).
const LISTEN_TIMEOUT: Duration = Duration::from_secs(30);

/// What the driver prints once it listens; the port follows.
const LISTENING: &str = "was started successfully on port ";

/// A running chromedriver, killed with its browsers on drop.
pub struct Driver {
    child: Child,
    /// `http://127.0.0.1:PORT/`, for the WebDriver client.
    pub url: String,
    /// chromedriver's own log (`--log-path`), shown when a session cannot be had.
    pub log: PathBuf,
}

/// The binaries a browser test needs that are missing here, by path.
pub fn missing_binaries() -> Vec<&'static str> {
    [CHROMEDRIVER, CHROMIUM]
        .into_iter()
        .filter(|path| !Path::new(path).exists())
        .collect()
}

impl Driver {
    /// Starts chromedriver logging to `dir/chromedriver.log` and waits until it listens.
    pub fn start(dir: &Path) -> TestResult<Self> {
        let log = dir.join("chromedriver.log");
        let mut child = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            // A group of its own, led by the driver: see the module doc.
            .process_group(0)
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or("chromedriver's stdout is piped")?;
        let (port_tx, port_rx) = mpsc::channel::<u16>();
        // The reader keeps draining stdout after the port line, so the driver never blocks on
        // a full pipe; it ends with the driver.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line
                    .split(LISTENING)
                    .nth(1)
                    .and_then(|rest| rest.trim_end_matches('.').trim().parse().ok())
                {
                    let _ = port_tx.send(port);
                }
            }
        });
        let mut driver = Self {
            child,
            url: String::new(),
            log,
        };
        match port_rx.recv_timeout(LISTEN_TIMEOUT) {
            Ok(port) => {
                driver.url = format!("http://127.0.0.1:{port}/");
                Ok(driver)
            }
            Err(_) => Err(format!(
                "chromedriver did not listen within {LISTEN_TIMEOUT:?}; its log:\n{}",
                driver.log_tail()
            )
            .into()),
        }
    }

    /// The end of the driver's log, for failure messages.
    pub fn log_tail(&self) -> String {
        crate::common::child::tail(&self.log)
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group: the driver and the Chromium processes it started. A session closed
        // normally has already ended its browser, and then this only ends the driver.
        // `kill -KILL -- -PID` signals the group the driver leads (process_group(0) above);
        // the driver is not reaped yet, so its id cannot have been reused.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}
