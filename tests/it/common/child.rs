//! The built `featurestore serve` as a child process, for tests that kill or signal it.
//!
//! An in-process [`super::TestServer`] cannot be SIGKILLed without killing the test, and its
//! shutdown is a channel, not a signal; these tests need the real binary. The child binds port
//! 0 and its address is read back from its log, which goes to a file outside the data root (so
//! the log never shows up among the data root's files) and is printed when a check fails.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::TestResult;

/// How long a child may take to bind its port (a debug build on a loaded 2-core machine).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A `featurestore serve` child process over a data root the caller owns.
pub struct ChildServer {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// `127.0.0.1:PORT`.
    pub addr: std::net::SocketAddr,
    /// Where its stderr (the log) goes.
    pub log: PathBuf,
    /// A client for it.
    pub client: reqwest::Client,
}

impl ChildServer {
    /// Starts `featurestore serve` on `root`, logging to `log` (appended to, so the log of
    /// every restart of one test stays in one file), with `env` set on top of a configuration
    /// environment cleared of `FEATURESTORE__` variables.
    pub fn start(root: &Path, log: &Path, env: &[(&str, &str)]) -> TestResult<Self> {
        Self::start_with_args(root, log, env, &[])
    }

    /// [`Self::start`] with extra `serve` arguments.
    pub fn start_with_args(
        root: &Path,
        log: &Path,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> TestResult<Self> {
        let log_file = File::options().create(true).append(true).open(log)?;
        let offset = log_file.metadata()?.len();
        let mut command = Command::new(env!("CARGO_BIN_EXE_featurestore"));
        command
            .args(["serve", "--host", "127.0.0.1", "--port", "0", "--data-dir"])
            .arg(root)
            .args(args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file));
        for (name, _) in std::env::vars() {
            if name.starts_with("FEATURESTORE__") {
                command.env_remove(name);
            }
        }
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn()?;
        let started = Instant::now();
        let addr = loop {
            if let Some(addr) = listening_addr(log, offset)? {
                break addr;
            }
            if let Some(status) = child.try_wait()? {
                return Err(format!(
                    "featurestore serve exited with {status} before listening; log:\n{}",
                    tail(log)
                )
                .into());
            }
            if started.elapsed() > START_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                return Err(
                    format!("featurestore serve did not listen; log:\n{}", tail(log)).into(),
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Ok(Self {
            child,
            base: format!("http://{addr}"),
            addr,
            log: log.to_path_buf(),
            client: reqwest::Client::new(),
        })
    }

    /// POSTs `body` to `path` and checks the answer is a 2xx; returns its JSON body.
    pub async fn post_ok(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> TestResult<serde_json::Value> {
        let response = self.client.post(self.url(path)).json(body).send().await?;
        let (status, answer) = super::read(response).await?;
        if !(200..300).contains(&status) {
            return Err(format!("POST {path} answered {status}: {answer}").into());
        }
        Ok(answer)
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Kills the child with SIGKILL, as a power cut or the OOM killer would, and reaps it.
    pub fn kill(mut self) -> TestResult {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// Sends `signal` (`TERM`, `INT`) to the child.
    pub fn signal(&self, signal: &str) -> TestResult {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()?;
        if !status.success() {
            return Err(format!("kill -{signal} {} failed: {status}", self.pid()).into());
        }
        Ok(())
    }

    /// Waits up to `timeout` for the child to exit; `None` if it is still running then.
    pub fn wait_timeout(&mut self, timeout: Duration) -> TestResult<Option<ExitStatus>> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(Some(status));
            }
            if started.elapsed() > timeout {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The end of the log, for failure messages.
    pub fn log_tail(&self) -> String {
        tail(&self.log)
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        // A failed test must not leave a server behind.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The address in the "featurestore listening" line written after `offset`, if there is one.
fn listening_addr(log: &Path, offset: u64) -> TestResult<Option<std::net::SocketAddr>> {
    let text = std::fs::read(log)?;
    let text = String::from_utf8_lossy(&text[(offset as usize).min(text.len())..]).into_owned();
    for line in text.lines() {
        if !line.contains("featurestore listening") {
            continue;
        }
        // "... Swagger UI at http://127.0.0.1:PORT/docs/ ..."
        if let Some(rest) = line.split("http://").nth(1)
            && let Some(addr) = rest.split('/').next()
        {
            return Ok(Some(addr.parse()?));
        }
    }
    Ok(None)
}

/// The last 40 lines of a log file.
pub fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
