//! Feast's Python SDK for the end-to-end import test, pinned, installed with pip into
//! `target/test-servers/` on first use (36 s of CPU and 560 MB; minutes of wall time on a
//! loaded machine, see BENCHMARKS.md) and reused afterwards. `FEATURESTORE_TEST_FEAST_PYTHON`
//! names an interpreter that already has Feast (a venv's `bin/python`) and skips the install.
//!
//! Where Feast cannot be had (no python3 3.10+, no network for the first install, ...), the
//! test fails with the reason when the `CI` variable is set, and otherwise prints one
//! `skipped: ...` line and passes, as the S3 and Redis tests do.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use super::pip;

/// The Feast release the fixture was made with (tests/fixtures/feast/README.md).
pub const FEAST: &str = "feast==0.67.0";
/// Where it is installed under `target/`.
const INSTALL_DIR: &str = "test-servers/feast-0.67.0";

/// A Python that imports Feast: the command to run a script with.
#[derive(Debug, Clone)]
pub struct FeastPython {
    python: String,
    path: Option<PathBuf>,
}

impl FeastPython {
    /// `python script args...`, with Feast on its path.
    pub fn command(&self, script: &std::path::Path) -> Command {
        let mut command = Command::new(&self.python);
        command.arg(script);
        if let Some(path) = &self.path {
            command.env("PYTHONPATH", path);
        }
        command
    }
}

static INSTALLED: Mutex<Option<Result<FeastPython, String>>> = Mutex::new(None);

/// Feast, installed once per test binary, or `None` after a `skipped:` line (outside CI).
pub fn feast_python() -> Option<FeastPython> {
    // Held across the install, so concurrent tests of this binary install once.
    let mut cached = INSTALLED.lock().unwrap_or_else(|p| p.into_inner());
    let found = cached.get_or_insert_with(find_or_install).clone();
    match found {
        Ok(python) => Some(python),
        Err(reason) => {
            if std::env::var_os("CI").is_some() {
                panic!("Feast's SDK ({FEAST}) is required in CI but unavailable: {reason}");
            }
            // Straight to the process's stderr: libtest captures `eprintln!`, and this line
            // must be seen in a passing run.
            let _ = writeln!(
                std::io::stderr(),
                "skipped: no Feast SDK ({FEAST}) here: {reason}"
            );
            None
        }
    }
}

fn find_or_install() -> Result<FeastPython, String> {
    if let Ok(python) = std::env::var("FEATURESTORE_TEST_FEAST_PYTHON") {
        return Ok(FeastPython { python, path: None });
    }
    let dir = pip::install_target(FEAST, INSTALL_DIR, "feast/__init__.py")?;
    Ok(FeastPython {
        python: pip::python(),
        path: Some(dir),
    })
}
