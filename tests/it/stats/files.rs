//! Where statistics live and what happens around them: a file per version under
//! `metadata/`, removed with its version by the history sweep; files other tools wrote get
//! theirs in the background or on demand; a save stands when its statistics cannot be
//! stored; `/metrics` has each table's null rates and drift.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use serde_json::json;

use super::{K, column, known};
use crate::common::{TestResult, TestServer, write_parquet};
use crate::versions::get_ok;

fn stats_files(server: &TestServer, group: &str, name: &str) -> Vec<String> {
    let dir: PathBuf = server
        .root()
        .join("metadata")
        .join(group)
        .join(format!("{name}.stats"));
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .collect();
    files.sort();
    files
}

/// A table as pandas would write it: `id`, a float `x` with a NaN-free null, a string.
fn foreign_batch() -> TestResult<RecordBatch> {
    let schema = Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("x", DataType::Float64, true),
        Field::new("label", DataType::Utf8, true),
    ]);
    Ok(RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3, 4])) as ArrayRef,
            Arc::new(Float64Array::from(vec![
                Some(0.5),
                None,
                Some(1.5),
                Some(2.5),
            ])),
            Arc::new(StringArray::from(vec!["p", "q", "p", "p"])),
        ],
    )?)
}

#[tokio::test]
async fn statistics_are_a_file_per_version_and_the_sweep_removes_those_of_dropped_versions()
-> TestResult {
    let server = crate::versions::no_history()?;
    server.save("user", "known", known()).await?;
    server.save("user", "known", known()).await?;
    assert_eq!(stats_files(&server, "user", "known"), ["1.json", "2.json"]);
    server.store.sweep_history().await?;
    assert_eq!(
        stats_files(&server, "user", "known"),
        ["2.json"],
        "version 1 was swept, and its statistics with it"
    );
    let stats = get_ok(&server, &format!("{K}/stats")).await?;
    assert_eq!(stats["version"], 2);
    // A deleted table keeps nothing once its history is swept.
    server.delete(K).await?;
    server.store.sweep_history().await?;
    assert!(stats_files(&server, "user", "known").is_empty());
    Ok(())
}

#[tokio::test]
async fn a_parquet_file_another_tool_wrote_gets_statistics_in_the_background_and_on_demand()
-> TestResult {
    let server = TestServer::start()?;
    let group = server.root().join("features").join("misc");
    write_parquet(&group.join("dropped.parquet"), &foreign_batch()?)?;
    // Seen by the watcher, then given statistics by the background pass, unasked.
    let deadline = Instant::now() + Duration::from_secs(20);
    while stats_files(&server, "misc", "dropped").is_empty() {
        assert!(
            Instant::now() < deadline,
            "no statistics were computed for the dropped file"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = get_ok(&server, "/features/misc/dropped/stats").await?;
    assert_eq!(stats["rows"], 4, "{stats}");
    let x = column(&stats, "x")?;
    assert_eq!(
        (&x["null_count"], &x["numeric"]["mean"]),
        (&json!(1), &json!(1.5))
    );
    let label = column(&stats, "label")?;
    assert_eq!(label["top_values"]["values"][0]["value"], "p");

    // Asked for before anything else saw it: computed on demand.
    write_parquet(&group.join("asked.parquet"), &foreign_batch()?)?;
    let stats = get_ok(&server, "/features/misc/asked/stats").await?;
    assert_eq!(stats["rows"], 4, "{stats}");
    assert_eq!(stats_files(&server, "misc", "asked").len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_save_stands_when_its_statistics_cannot_be_stored() -> TestResult {
    let server = TestServer::start()?;
    // A file where the statistics folder should be: storing them fails.
    let blocker = server.root().join("metadata").join("user");
    std::fs::create_dir_all(&blocker)?;
    std::fs::write(blocker.join("known.stats"), b"not a folder")?;
    let saved = server.save("user", "known", known()).await?;
    assert_eq!(saved["version"], 1, "{saved}");
    let page = get_ok(&server, K).await?;
    assert_eq!(page["data"].as_array().map(Vec::len), Some(10));
    let stats = get_ok(&server, &format!("{K}/stats")).await?;
    assert_eq!(stats["rows"], 10, "{stats}");
    Ok(())
}

/// The value of the sample `series` (name and labels exactly as exposed) in a scrape.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}

async fn scrape(server: &TestServer) -> TestResult<String> {
    Ok(server
        .client
        .get(server.url("/metrics"))
        .send()
        .await?
        .text()
        .await?)
}

#[tokio::test]
async fn metrics_have_each_columns_null_rate_and_the_drift_of_the_latest_write() -> TestResult {
    let server = TestServer::start()?;
    server.save("user", "known", known()).await?;
    let text = scrape(&server).await?;
    let labels = |column: &str| format!("{{group=\"user\",table=\"known\",column=\"{column}\"}}");
    assert_eq!(
        sample(
            &text,
            &format!("featurestore_column_null_rate{}", labels("score"))
        ),
        Some(0.1),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!("featurestore_column_null_rate{}", labels("city"))
        ),
        Some(0.0)
    );
    assert!(
        !text.contains("featurestore_table_drift_psi_max{group=\"user\",table=\"known\"}"),
        "one version: no drift yet"
    );

    let shifted: Vec<serde_json::Value> = (1..=10)
        .map(|i: i64| {
            json!({"user_id": i, "score": 1000 + i, "city": "a",
                "event_timestamp": format!("2026-11-{i:02}T00:00:00Z")})
        })
        .collect();
    server
        .save("user", "known", json!({"records": shifted}))
        .await?;
    let text = scrape(&server).await?;
    let psi = sample(
        &text,
        &format!("featurestore_table_drift_psi{}", labels("score")),
    )
    .ok_or_else(|| format!("no score drift in\n{text}"))?;
    assert!(psi >= 0.2, "{psi}");
    let max = sample(
        &text,
        "featurestore_table_drift_psi_max{group=\"user\",table=\"known\"}",
    )
    .ok_or("no drift max")?;
    assert!(max >= psi, "{max} < {psi}");
    assert_eq!(
        sample(
            &text,
            &format!("featurestore_column_null_rate{}", labels("score"))
        ),
        Some(0.0),
        "the current version's null rate"
    );
    Ok(())
}

crate::on_s3_too!(metrics_have_each_columns_null_rate_and_the_drift_of_the_latest_write);
