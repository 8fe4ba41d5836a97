//! The README's curl examples, run as written (with bash and curl) against a server on freshly
//! written demo data: every one answers 2xx, and those that ask about an instant find values,
//! since the demo ends at the moment it was written and the examples ask about `$NOW`.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, TimestampMicrosecondArray};
use serde_json::Value;

use crate::common::{TestResult, small_demo_server, write_parquet};

const README: &str = include_str!("../../README.md");

/// The prelude (shell variables) and the curl commands of the README's endpoint tour, each
/// with its continuation lines joined.
fn tour() -> TestResult<(String, Vec<String>)> {
    sh_block_after("Every endpoint, with curl")
}

/// The prelude and the curl commands of the first `sh` block after `marker`.
fn sh_block_after(marker: &str) -> TestResult<(String, Vec<String>)> {
    let start = README
        .find(marker)
        .ok_or_else(|| format!("no {marker:?} in the README"))?;
    let block = README[start..]
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .ok_or_else(|| format!("no sh block after {marker:?}"))?;
    let mut prelude = String::new();
    let mut commands = Vec::new();
    let mut current = String::new();
    for line in block.lines() {
        if current.is_empty() && (line.starts_with('#') || line.trim().is_empty()) {
            continue;
        }
        // Kept verbatim: the shell joins `\`-continued lines itself.
        current.push_str(line);
        current.push('\n');
        // A line ending in `\` continues, and so does one inside an open single quote.
        if line.ends_with('\\') || current.matches('\'').count() % 2 == 1 {
            continue;
        }
        let command = std::mem::take(&mut current);
        if command.starts_with("curl ") {
            commands.push(command);
        } else {
            prelude.push_str(&command);
        }
    }
    Ok((prelude, commands))
}

/// Entity rows for the README's upload example, at the present.
fn entities_file(dir: &Path) -> TestResult {
    let now = chrono::Utc::now().timestamp_micros();
    let rows = RecordBatch::try_from_iter([
        (
            "user_id",
            Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef,
        ),
        ("movie_id", Arc::new(Int64Array::from(vec![10, 11]))),
        (
            "event_timestamp",
            Arc::new(TimestampMicrosecondArray::from(vec![now, now]).with_timezone("UTC")),
        ),
    ])?;
    write_parquet(&dir.join("entities.parquet"), &rows)
}

/// Runs `command` (a curl of the README) against `host` with `prelude` first, in `dir`;
/// returns the status and the body.
fn run_curl(prelude: &str, command: &str, host: &str, dir: &Path) -> TestResult<(u16, String)> {
    let script = format!(
        "set -eu\n{prelude}{} -w '\\n%{{http_code}}'",
        command.replace("localhost:8001", host).trim_end()
    );
    // Blocking is fine here: the server runs on its own thread.
    let output = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir)
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = stdout.rsplit_once('\n').unwrap_or(("", stdout.as_str()));
    Ok((status.trim().parse().unwrap_or(0), body.to_owned()))
}

#[tokio::test]
async fn the_readme_pinned_training_data_examples_run_as_written_and_name_their_versions()
-> TestResult {
    let server = small_demo_server()?;
    let host = server.base.trim_start_matches("http://").to_owned();
    let work = tempfile::tempdir()?;
    entities_file(work.path())?;
    let (prelude, commands) = sh_block_after("## Versions and reproducible training data")?;
    let training: Vec<&String> = commands
        .iter()
        .filter(|c| c.contains("get-historical-features"))
        .collect();
    assert_eq!(training.len(), 3, "{commands:?}");
    // `$NOW` has whole seconds: the demo must have been written in an earlier one for the
    // snapshot at `$NOW` to find it.
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    for command in training {
        let (status, body) = run_curl(&prelude, command, &host, work.path())?;
        assert_eq!(status, 200, "{command}{body}");
        if !command.contains("-o ") {
            let answer: Value = serde_json::from_str(&body)?;
            assert_eq!(
                answer["metadata"]["table_versions"]["user_profile"], 1,
                "{answer}"
            );
        }
    }
    for file in ["training.parquet", "pinned.parquet"] {
        let bytes = std::fs::read(work.path().join(file))?;
        assert!(bytes.starts_with(b"PAR1"), "{file} is not a Parquet file");
    }
    Ok(())
}

#[tokio::test]
async fn the_readme_examples_succeed_and_find_values_on_fresh_demo_data() -> TestResult {
    let server = small_demo_server()?;
    let host = server.base.trim_start_matches("http://").to_owned();
    let work = tempfile::tempdir()?;
    entities_file(work.path())?;
    let (prelude, commands) = tour()?;
    assert!(commands.len() >= 25, "{} commands", commands.len());

    let mut answers: Vec<(String, u16, String)> = Vec::new();
    for command in &commands {
        let (status, body) = run_curl(&prelude, command, &host, work.path())?;
        answers.push((command.clone(), status, body));
    }
    let failed: Vec<String> = answers
        .iter()
        .filter(|(_, status, _)| !(200..300).contains(status))
        .map(|(command, status, body)| format!("{status} for {command}{body}"))
        .collect();
    assert!(
        failed.is_empty(),
        "README examples failed:\n{}",
        failed.join("\n")
    );

    // The examples that ask about an instant find values on the fresh demo.
    let json = |needle: &str| -> TestResult<Value> {
        let (_, _, body) = answers
            .iter()
            .find(|(command, _, _)| command.contains(needle))
            .ok_or_else(|| format!("no README example contains {needle:?}"))?;
        Ok(serde_json::from_str(body)?)
    };
    let as_of = json("\"entity_ids\": [1], \"timestamp\"")?;
    assert_eq!(
        as_of["features"]["user_profile"].as_array().map(Vec::len),
        Some(1),
        "{as_of}"
    );
    let training = json("\"label\": [1, 0]")?;
    for row in training["rows"].as_array().ok_or("no rows")? {
        assert!(!row["age"].is_null(), "{training}");
        assert!(!row["genre"].is_null(), "{training}");
    }
    let online = json("\"movie_id\": [10, 11]}}'")?;
    assert!(
        online["results"][2]["statuses"]
            .as_array()
            .is_some_and(|s| s.iter().all(|s| s == "PRESENT")),
        "{online}"
    );
    Ok(())
}
