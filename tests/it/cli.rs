//! The `featurestore` binary: `demo`, `info` and `openapi`, and serving what `demo` wrote.

use std::path::Path;

use serde_json::{Value, json};

use crate::common::{
    TestResult, TestServer, assert_problem, featurestore_command, featurestore_ok,
};

const COMMITTED_OPENAPI: &str = include_str!("../../openapi/openapi.json");

const DEMO_TABLES: [&str; 3] = [
    "features/content/movie_metadata.parquet",
    "features/interaction/user_movie_interactions.parquet",
    "features/user/user_profile.parquet",
];

/// `featurestore demo` with small tables into `dir`; returns its stdout.
fn demo(dir: &Path, seed: u64) -> TestResult<String> {
    let dir = dir.to_str().ok_or("a UTF-8 temporary path")?;
    let seed = seed.to_string();
    featurestore_ok(&[
        "demo",
        "--data-dir",
        dir,
        "--users",
        "30",
        "--movies",
        "10",
        "--interactions",
        "200",
        "--seed",
        &seed,
        "--as-of",
        "2026-01-01T00:00:00Z",
    ])
}

/// Every row of every demo table, with its page metadata, as the API serves them.
async fn demo_pages(server: &TestServer) -> TestResult<Vec<Value>> {
    let mut pages = Vec::new();
    for path in [
        "/features/content/movie_metadata",
        "/features/user/user_profile",
        "/features/interaction/user_movie_interactions",
    ] {
        let (status, page) = server.get(&format!("{path}?limit=10000")).await?;
        if status != 200 {
            return Err(format!("{path} answered {status}: {page}").into());
        }
        pages.push(page);
    }
    Ok(pages)
}

/// `(group, table, rows, version)` of each table row of `featurestore info`.
fn info_rows(stdout: &str) -> Vec<(String, String, u64, u64)> {
    stdout
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                [group, table, rows, _size, version] => Some((
                    group.to_string(),
                    table.to_string(),
                    rows.parse().ok()?,
                    version.parse().ok()?,
                )),
                _ => None,
            }
        })
        .collect()
}

#[test]
fn demo_writes_the_three_tables() -> TestResult {
    let dir = tempfile::tempdir()?;
    let stdout = demo(dir.path(), 7)?;
    assert!(
        stdout.contains("writing demo data: 30 users, 10 movies, 200 interactions (seed 7"),
        "stdout: {stdout}"
    );
    for table in DEMO_TABLES {
        assert!(dir.path().join(table).is_file(), "{table} missing");
    }
    let parquet: Vec<_> = crate::common::list_files(dir.path())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .filter(|p| !p.components().any(|c| c.as_os_str() == "_history"))
        .collect();
    assert_eq!(parquet.len(), 3, "{parquet:?}");
    Ok(())
}

#[test]

fn demo_reports_each_table_it_wrote() -> TestResult {
    let dir = tempfile::tempdir()?;
    let stdout = demo(dir.path(), 7)?;
    for line in [
        "features/content/movie_metadata.parquet (10 rows, version 1)",
        "features/user/user_profile.parquet (90 rows, version 1)",
        "features/interaction/user_movie_interactions.parquet (200 rows, version 1)",
    ] {
        assert!(
            stdout.contains(line),
            "{line:?} missing from stdout: {stdout}"
        );
    }
    Ok(())
}

#[test]
fn info_lists_the_demo_tables_with_their_row_counts() -> TestResult {
    let dir = tempfile::tempdir()?;
    demo(dir.path(), 7)?;
    let data_dir = dir.path().to_str().ok_or("a UTF-8 temporary path")?;
    let stdout = featurestore_ok(&["info", "--data-dir", data_dir])?;
    assert!(
        stdout.starts_with(&format!("data root: {data_dir}\n")),
        "stdout: {stdout}"
    );
    let expected = [
        ("content", "movie_metadata", 10, 1),
        ("interaction", "user_movie_interactions", 200, 1),
        ("user", "user_profile", 90, 1),
    ]
    .map(|(g, t, r, v)| (g.to_owned(), t.to_owned(), r, v));
    assert_eq!(info_rows(&stdout), expected, "stdout: {stdout}");
    assert!(stdout.contains("3 table(s)"), "stdout: {stdout}");
    Ok(())
}

#[test]
fn info_on_an_empty_data_root_lists_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let data_dir = dir.path().to_str().ok_or("a UTF-8 temporary path")?;
    let stdout = featurestore_ok(&["info", "--data-dir", data_dir])?;
    assert_eq!(info_rows(&stdout), Vec::new(), "stdout: {stdout}");
    assert!(stdout.contains("0 table(s), 0.000 MB"), "stdout: {stdout}");
    Ok(())
}

#[tokio::test]
async fn demo_with_the_same_seed_and_as_of_gives_identical_data() -> TestResult {
    let (first, second, other) = (
        tempfile::tempdir()?,
        tempfile::tempdir()?,
        tempfile::tempdir()?,
    );
    demo(first.path(), 7)?;
    demo(second.path(), 7)?;
    demo(other.path(), 8)?;
    let first = TestServer::start_on(first, |_| {})?;
    let second = TestServer::start_on(second, |_| {})?;
    let other = TestServer::start_on(other, |_| {})?;
    let pages = demo_pages(&first).await?;
    assert_eq!(pages, demo_pages(&second).await?);
    let row_counts: Vec<&Value> = pages.iter().map(|p| &p["metadata"]["total_rows"]).collect();
    assert_eq!(row_counts, [&json!(10), &json!(90), &json!(200)]);
    // The comparison can tell data apart: another seed gives other rows.
    let other_pages = demo_pages(&other).await?;
    assert_ne!(pages[1]["data"], other_pages[1]["data"]);
    Ok(())
}

#[test]
fn openapi_prints_the_committed_document() -> TestResult {
    let stdout = featurestore_ok(&["openapi"])?;
    assert!(
        stdout == COMMITTED_OPENAPI,
        "`featurestore openapi` differs from openapi/openapi.json"
    );
    Ok(())
}

#[test]
fn bad_arguments_fail_with_a_message() -> TestResult {
    let output = featurestore_command(&["demo", "--as-of", "yesterday"])?;
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr)?;
    assert!(stderr.contains("--as-of"), "stderr: {stderr}");
    let output = featurestore_command(&["no-such-command"])?;
    assert!(!output.status.success());
    Ok(())
}

#[tokio::test]
async fn a_server_over_demo_data_answers_batch_lookups() -> TestResult {
    let dir = tempfile::tempdir()?;
    demo(dir.path(), 7)?;
    let server = TestServer::start_on(dir, |_| {})?;

    let (status, body) = server
        .post(
            "/features/batch",
            &json!({"feature_names": ["user_profile", "movie_metadata"], "entity_ids": [3, "4"]}),
        )
        .await?;
    assert_eq!(status, 200, "body: {body}");
    assert_eq!(
        body["metadata"]["entity_key"],
        json!({"user_profile": "user_id", "movie_metadata": "movie_id"})
    );
    let profiles = body["features"]["user_profile"]
        .as_array()
        .ok_or("user_profile rows")?;
    assert_eq!(profiles.len(), 6, "three snapshots per user: {body}");
    for row in profiles {
        assert!(row["user_id"] == 3 || row["user_id"] == 4, "row {row}");
        let keys: Vec<&String> = row.as_object().ok_or("a record")?.keys().collect();
        assert_eq!(
            keys,
            [
                "account_created_days",
                "age",
                "avg_rating",
                "event_timestamp",
                "favorite_genre",
                "total_movies_watched",
                "user_id"
            ]
        );
    }
    let movies: Vec<&Value> = body["features"]["movie_metadata"]
        .as_array()
        .ok_or("movie_metadata rows")?
        .iter()
        .map(|m| &m["movie_id"])
        .collect();
    assert_eq!(movies, [&json!(3), &json!(4)]);

    // As of the demo's end, one row per user: the latest snapshot.
    let (status, body) = server
        .post(
            "/features/batch",
            &json!({"feature_names": ["user_profile"], "entity_ids": [3], "timestamp": "2026-01-01T00:00:00Z"}),
        )
        .await?;
    assert_eq!(status, 200, "body: {body}");
    let latest = body["features"]["user_profile"]
        .as_array()
        .ok_or("user_profile rows")?;
    assert_eq!(latest.len(), 1, "body: {body}");
    let newest = profiles
        .iter()
        .filter(|r| r["user_id"] == 3)
        .filter_map(|r| r["event_timestamp"].as_str())
        .filter_map(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .max()
        .ok_or("user 3 has snapshots")?;
    let served = latest[0]["event_timestamp"].as_str().unwrap_or_default();
    assert_eq!(chrono::DateTime::parse_from_rfc3339(served)?, newest);

    let (status, body) = server
        .post(
            "/features/batch",
            &json!({"feature_names": ["user_movie_interactions"], "entity_ids": [3]}),
        )
        .await?;
    assert_problem(status, &body, 422, "composite_entity_key");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("(user_id, movie_id)")),
        "body: {body}"
    );
    Ok(())
}

/// Runs the binary and waits at most a minute (a `serve` that did not fail would run
/// forever); returns the exit status and stderr.
fn run_briefly(args: &[&str]) -> TestResult<(std::process::ExitStatus, String)> {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_featurestore"));
    command
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn()?;
    let started = std::time::Instant::now();
    while child.try_wait()?.is_none() {
        if started.elapsed() > std::time::Duration::from_secs(60) {
            child.kill()?;
            child.wait()?;
            return Err(format!("featurestore {args:?} was still running after a minute").into());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let output = child.wait_with_output()?;
    Ok((output.status, String::from_utf8(output.stderr)?))
}

#[test]
fn a_missing_data_root_is_one_clear_error_not_a_panic() -> TestResult {
    let dir = tempfile::tempdir()?;
    let missing = dir.path().join("nonexistent/x");
    let missing = missing.to_str().ok_or("a UTF-8 temporary path")?;
    for args in [
        vec!["serve", "--data-dir", missing, "--port", "0"],
        vec!["info", "--data-dir", missing],
    ] {
        let (status, stderr) = run_briefly(&args)?;
        assert!(!status.success(), "{args:?} succeeded");
        assert_eq!(
            stderr.trim_end(),
            format!(
                "Error: the data root {missing} does not exist; create it (mkdir -p {missing}) or run `featurestore serve --demo --data-dir {missing}` to create it with the demo tables"
            ),
            "{args:?}"
        );
    }
    assert!(!Path::new(missing).exists(), "nothing was created");
    Ok(())
}

#[test]
fn a_data_root_that_is_a_file_is_one_clear_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("file");
    std::fs::write(&file, b"not a directory")?;
    let file = file.to_str().ok_or("a UTF-8 temporary path")?;
    for args in [
        vec!["serve", "--data-dir", file, "--port", "0"],
        vec!["serve", "--demo", "--data-dir", file, "--port", "0"],
        vec!["demo", "--data-dir", file],
    ] {
        let (status, stderr) = run_briefly(&args)?;
        assert!(!status.success(), "{args:?} succeeded");
        assert_eq!(
            stderr.trim_end(),
            format!(
                "Error: the data root {file} is not a directory; point --data-dir (or storage.data_dir) at a directory"
            ),
            "{args:?}"
        );
    }
    Ok(())
}

#[test]
fn demo_creates_a_missing_data_root() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("new/data");
    demo(&root, 7)?;
    for table in DEMO_TABLES {
        assert!(root.join(table).is_file(), "{table}");
    }
    Ok(())
}
