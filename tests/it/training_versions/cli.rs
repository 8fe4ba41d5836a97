//! `featurestore historical` pinned: `--table-version` and `--snapshot-time` write the file
//! the API answers for the same pins, the last line names the versions read, and malformed or
//! unrequested pins are refused naming them, before any file is written.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;

use super::*;
use crate::common::{featurestore_command, featurestore_ok};

// ---------------------------------------------------------------------------------------------

fn utf8(path: &Path) -> TestResult<&str> {
    Ok(path.to_str().ok_or("a UTF-8 temporary path")?)
}

/// The summary line naming the versions read.
fn versions_line(stdout: &str) -> TestResult<&str> {
    Ok(stdout
        .lines()
        .find(|l| l.starts_with("table versions read: "))
        .ok_or_else(|| format!("no versions in {stdout:?}"))?)
}

#[tokio::test]
async fn the_cli_pins_versions_prints_them_and_writes_the_file_the_api_answers() -> TestResult {
    let server = start()?;
    populate(&server).await?;
    let v1 = current_version(&server, PROFILE).await?;
    let snapshot = instant_between_writes().await?;
    push_offline(
        &server,
        json!({"user_id": [1], "age": [31], "avg_rating": [3.75], "event_timestamp": [T0_MINUS_1H]}),
    )
    .await?;
    compact(&server).await?;
    let v2 = current_version(&server, PROFILE).await?;
    let api_pinned = binary_ok(
        &server,
        &profile_request(json!({"table_versions": {"user_profile": v1}})),
        PARQUET,
    )
    .await?;
    let data = server.stop();
    let root = utf8(data.path())?;
    let work = tempfile::tempdir()?;
    let entities = work.path().join("entities.csv");
    // The columns in the order the JSON request's keys go out in (serde_json sorts them), so
    // that the file and the answer have one schema.
    std::fs::write(
        &entities,
        format!("event_timestamp,movie_id,user_id\n{T0},10,1\n{T0},11,2\n{T0},10,3\n{T0},11,4\n"),
    )?;
    let out = work.path().join("training.parquet");
    let run = |extra: &[&str]| -> TestResult<String> {
        let mut args = vec![
            "historical",
            "--data-dir",
            root,
            "--entities",
            utf8(&entities)?,
            "--features",
            "user_profile:age,user_profile:avg_rating",
            "--out",
            utf8(&out)?,
        ];
        args.extend_from_slice(extra);
        featurestore_ok(&args)
    };

    let pin = format!("user_profile={v1}");
    let stdout = run(&["--table-version", &pin])?;
    assert_eq!(
        versions_line(&stdout)?,
        format!("table versions read: --table-version user_profile={v1}")
    );
    let written = std::fs::read(&out)?;
    assert!(
        written == api_pinned,
        "the CLI's file differs from the API's answer: {:?} vs {:?}",
        parquet_rows(&written)?,
        parquet_rows(&api_pinned)?
    );

    let stdout = run(&["--snapshot-time", &snapshot])?;
    assert_eq!(
        versions_line(&stdout)?,
        format!("table versions read: --table-version user_profile={v1}")
    );
    assert!(std::fs::read(&out)? == api_pinned);

    // Unpinned: the current version, named.
    let stdout = run(&[])?;
    assert_eq!(
        versions_line(&stdout)?,
        format!("table versions read: --table-version user_profile={v2}")
    );
    assert_eq!(
        parquet_versions(&std::fs::read(&out)?)?,
        json!({"user_profile": v2})
    );
    Ok(())
}

#[tokio::test]
async fn the_cli_refuses_malformed_and_unrequested_pins_naming_them() -> TestResult {
    let server = start()?;
    populate(&server).await?;
    let data = server.stop();
    let root = utf8(data.path())?;
    let work = tempfile::tempdir()?;
    let entities = work.path().join("entities.csv");
    std::fs::write(&entities, format!("user_id,event_timestamp\n1,{T0}\n"))?;
    let out = work.path().join("training.parquet");
    let cases: BTreeMap<&str, Vec<&str>> = BTreeMap::from([
        ("is not view=N", vec!["--table-version", "user_profile"]),
        (
            "pins user_profile twice",
            vec![
                "--table-version",
                "user_profile=1",
                "--table-version",
                "user_profile=2",
            ],
        ),
        (
            "table_versions names movie_metadata, which this request does not read",
            vec!["--table-version", "movie_metadata=1"],
        ),
        (
            "has no version 9",
            vec!["--table-version", "user_profile=9"],
        ),
        ("--snapshot-time", vec!["--snapshot-time", "yesterday"]),
    ]);
    for (message, extra) in cases {
        let mut args = vec![
            "historical",
            "--data-dir",
            root,
            "--entities",
            utf8(&entities)?,
            "--features",
            "user_profile:age",
            "--out",
            utf8(&out)?,
        ];
        args.extend(extra.iter().copied());
        let output = featurestore_command(&args)?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{extra:?} succeeded");
        assert!(stderr.contains(message), "{extra:?}: {stderr}");
        assert!(!out.exists(), "{extra:?} wrote a file");
    }
    Ok(())
}

crate::on_s3_too!(the_cli_refuses_malformed_and_unrequested_pins_naming_them);
