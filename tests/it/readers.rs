//! The tree as other tools read it: pandas, pyarrow (`read_table`, `dataset`) and DuckDB, the
//! real packages from PyPI, over tables after pushes, widenings and folds. The checks run in
//! `tests/python/readers.py`; this side makes the data and asserts on what the script saw.
//!
//! The packages are installed once, without root, into `target/pydeps`
//! (`python3 -m pip install --target target/pydeps pandas pyarrow duckdb`) and reused. Without
//! python3 or pip, the tests print a `skipped: ...` line and pass, except under CI (env `CI`
//! set), where they fail: CI must run them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use serde_json::{Value, json};

use crate::common::instants::*;
use crate::common::{TestResult, featurestore_ok};
use crate::push::{fixture_on_system_clock, hold_folds, profile_row, push_profile};

const PACKAGES: [&str; 3] = ["pandas", "pyarrow", "duckdb"];

/// Serialises installs between the tests of this binary.
static INSTALL: Mutex<()> = Mutex::new(());

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/readers.py")
}

fn imports_work(deps: &Path) -> bool {
    Command::new("python3")
        .args(["-c", "import pandas, pyarrow, pyarrow.dataset, duckdb"])
        .env("PYTHONPATH", deps)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The folder holding pandas, pyarrow and DuckDB, installing them the first time; `None`
/// (after printing why) when they cannot be had outside CI.
fn python_deps() -> TestResult<Option<PathBuf>> {
    let deps = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pydeps");
    let _installing = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let unavailable = |why: String| -> TestResult<Option<PathBuf>> {
        if std::env::var_os("CI").is_some() {
            Err(format!("CI is set, so the external-reader tests must run, but {why}").into())
        } else {
            println!("skipped: {why}");
            Ok(None)
        }
    };
    match Command::new("python3").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => return unavailable("python3 is not installed".into()),
    }
    if imports_work(&deps) {
        return Ok(Some(deps));
    }
    let installed = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .arg("--target")
        .arg(&deps)
        .args(PACKAGES)
        .output();
    match installed {
        Ok(o) if o.status.success() && imports_work(&deps) => Ok(Some(deps)),
        Ok(o) => unavailable(format!(
            "pip could not install {PACKAGES:?} into {}: {}",
            deps.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => unavailable(format!("python3 -m pip could not run: {e}")),
    }
}

/// What the readers see of `group/name` under `features`.
fn read_with_python(deps: &Path, features: &Path, group: &str, name: &str) -> TestResult<Value> {
    let output = Command::new("python3")
        .arg(script())
        .arg(features)
        .args([group, name])
        .env("PYTHONPATH", deps)
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "readers.py failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

#[tokio::test]
async fn pandas_pyarrow_and_duckdb_read_pushed_rows_with_one_schema_and_signed_types() -> TestResult
{
    let Some(deps) = python_deps()? else {
        return Ok(());
    };
    let server = fixture_on_system_clock(hold_folds).await?;
    // 300 does not fit the table's int8 ages: the push widens the table file to int16.
    let answer = push_profile(&server, profile_row(3, 300, 3.0, "Noir", T0), "offline").await?;
    assert_eq!(answer["offline"]["compacted"], true);
    // Two parts, stored with the widened schema.
    push_profile(&server, profile_row(4, 29, 4.0, "Noir", T0), "offline").await?;
    push_profile(&server, profile_row(5, 41, 4.5, "Drama", T0), "offline").await?;
    let features = server.root().join("features");

    let seen = read_with_python(&deps, &features, "user", "user_profile")?;
    assert_eq!(seen["parts"], 2, "{seen}");
    // The table file alone holds what was there before the parts.
    assert_eq!(seen["pandas"]["rows"], 3, "{seen}");
    assert_eq!(seen["pandas"]["dtypes"]["age"], "int16", "{seen}");
    assert_eq!(seen["pandas"]["dtypes"]["user_id"], "int8", "{seen}");
    assert_eq!(seen["duckdb"]["base_rows"], 3, "{seen}");
    // The table file and its parts read as one table, with one schema.
    let all_ages = json!([30, 25, 300, 29, 41]);
    assert_eq!(seen["dataset"]["rows"], 5, "{seen}");
    assert_eq!(seen["dataset"]["ages"], all_ages, "{seen}");
    assert_eq!(seen["dataset"]["types"]["age"], "int16", "{seen}");
    assert_eq!(seen["dataset"]["types"]["user_id"], "int8", "{seen}");
    assert_eq!(seen["dataset"]["types"]["avg_rating"], "float", "{seen}");
    assert_eq!(
        seen["dataset"]["types"]["event_timestamp"], "timestamp[us, tz=UTC]",
        "{seen}"
    );
    assert_eq!(seen["duckdb"]["rows"], 5, "{seen}");
    assert_eq!(seen["duckdb"]["ages"], all_ages, "{seen}");
    assert_eq!(seen["duckdb"]["types"]["age"], "SMALLINT", "{seen}");

    // After a fold the table file alone holds every row, with the same types.
    let (status, body) = server
        .post("/features/user/user_profile/compact", &json!({}))
        .await?;
    assert_eq!(status, 200, "{body}");
    let seen = read_with_python(&deps, &features, "user", "user_profile")?;
    assert_eq!(seen["parts"], 0, "{seen}");
    assert_eq!(seen["pandas"]["rows"], 5, "{seen}");
    assert_eq!(seen["pandas"]["ages"], all_ages, "{seen}");
    assert_eq!(seen["pandas"]["dtypes"]["age"], "int16", "{seen}");
    assert_eq!(seen["pandas"]["age_minus_40_mean"], 45.0, "{seen}");
    assert_eq!(seen["read_table"]["rows"], 5, "{seen}");
    assert_eq!(seen["read_table"]["types"]["age"], "int16", "{seen}");
    assert_eq!(seen["read_table"]["ages"], all_ages, "{seen}");
    assert_eq!(seen["duckdb"]["base_rows"], 5, "{seen}");
    assert_eq!(seen["duckdb"]["age_minus_40_mean"], 45.0, "{seen}");
    Ok(())
}

#[tokio::test]
async fn the_demos_ages_give_the_right_numbers_in_pandas_and_duckdb() -> TestResult {
    let Some(deps) = python_deps()? else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let root = dir.path().to_str().ok_or("a UTF-8 temporary path")?;
    featurestore_ok(&[
        "demo",
        "--data-dir",
        root,
        "--users",
        "500",
        "--movies",
        "20",
        "--interactions",
        "1000",
        "--seed",
        "3",
    ])?;
    let seen = read_with_python(&deps, &dir.path().join("features"), "user", "user_profile")?;
    let pandas = &seen["pandas"];
    assert_eq!(pandas["rows"], seen["duckdb"]["base_rows"]);
    assert_eq!(pandas["dtypes"]["age"], "int8", "{}", pandas["dtypes"]);
    let ages = pandas["ages"].as_array().ok_or("ages")?;
    assert!(ages.len() >= 500);
    assert!(
        ages.iter().any(|a| a.as_i64() < Some(40)),
        "no age below 40 to wrap around"
    );
    let mean = seen["pandas"]["age_minus_40_mean"].as_f64().ok_or("mean")?;
    let exact = seen["pandas"]["age_minus_40_mean_int64"]
        .as_f64()
        .ok_or("mean")?;
    assert!((mean - exact).abs() < 1e-9, "{mean} vs {exact}");
    let duck = seen["duckdb"]["age_minus_40_mean"]
        .as_f64()
        .ok_or("duckdb mean")?;
    assert!((duck - exact).abs() < 1e-9, "{duck} vs {exact}");
    Ok(())
}
