//! Importing a Feast repository (`featurestore import-feast`, `POST /registry/import-feast`)
//! from the fixture a real Feast wrote (tests/fixtures/feast/), and Feast's own SDK reading
//! the imported feature services back through its remote online store.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::common::feast::feast_python;
use crate::common::{
    TestResult, TestServer, assert_problem, featurestore_command, featurestore_ok, list_files,
};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/feast")
}

fn dump_path() -> PathBuf {
    fixture().join("registry-dump.json")
}

fn dump() -> TestResult<Value> {
    Ok(serde_json::from_str(
        &std::fs::read_to_string(dump_path())?,
    )?)
}

fn text(path: &Path) -> TestResult<&str> {
    path.to_str().ok_or_else(|| "a UTF-8 path".into())
}

/// `featurestore import-feast` of the fixture into `root`, with its data; returns stdout.
fn import(root: &Path, extra: &[&str]) -> TestResult<String> {
    let dump = dump_path();
    let repo = fixture().join("repo");
    let mut args = vec![
        "import-feast",
        text(&dump)?,
        "--data",
        text(&repo)?,
        "--data-dir",
        text(root)?,
    ];
    args.extend_from_slice(extra);
    featurestore_ok(&args)
}

fn parquet_files(root: &Path) -> Vec<PathBuf> {
    list_files(root)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect()
}

/// The latest row of each key in the fixture's data (generate_data.py): driver 1001's last
/// row is corrected by a later-created row with conv_rate 0.99; driver 1003 has no location.
fn expected_driver_activity() -> Value {
    json!({
        "driver_id": [1001, 1002, 1003],
        "conv_rate": [0.99, 0.23, 0.33],
        "acc_rate": [0.875, 0.875, 0.875],
        "avg_daily_trips": [13, 23, 33],
        "rating_label": ["platinum", "bronze", "silver"],
        "lat": [52.502, 52.512, null],
        "lon": [13.398, 13.388, null],
    })
}

#[tokio::test]
async fn import_feast_copies_local_parquet_views_and_serves_their_latest_rows() -> TestResult {
    let root = tempfile::tempdir()?;
    let stdout = import(root.path(), &[])?;
    for line in [
        "copied     misc/driver_stats <- ",
        "(13 rows)",
        "created   feature view driver_stats",
        "created   feature service customer_risk",
        "stream feature view driver_trips_stream: ",
        "on-demand feature view trip_fare: ",
        "feature service fare_estimate: it reads trip_fare, which is not imported",
        "registry version 1",
    ] {
        assert!(stdout.contains(line), "{line:?} not in:\n{stdout}");
    }
    let server = TestServer::start_on(root, |_| {})?;
    let (status, view) = server.get("/registry/feature-views/driver_stats").await?;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["group"], "misc");
    assert_eq!(view["entities"], json!(["driver"]));
    assert_eq!(view["created_timestamp_field"], "created");
    assert_eq!(view["ttl_seconds"], 3650 * 86_400);
    assert_eq!(view["owner"], "rides-team@example.com");
    let (_, location) = server
        .get("/registry/feature-views/driver_location")
        .await?;
    assert_eq!(location["push_source"], "driver_location_push");
    let (status, service) = server
        .get("/registry/feature-services/customer_risk")
        .await?;
    assert_eq!(status, 200, "{service}");
    assert_eq!(
        service["features"],
        json!([
            "customer_profile:current_balance",
            "customer_profile:tier",
            "driver_stats:conv_rate"
        ])
    );
    let (status, answer) = server
        .post(
            "/get-online-features",
            &json!({"feature_service": "customer_risk",
                "entities": {"customer_id": ["C-ALPHA", "C-DELTA"], "driver_id": [1001, 1003]}}),
        )
        .await?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["metadata"]["feature_names"],
        json!([
            "customer_id",
            "driver_id",
            "current_balance",
            "tier",
            "conv_rate"
        ])
    );
    let values: Vec<Value> = answer["results"]
        .as_array()
        .ok_or("results")?
        .iter()
        .map(|r| r["values"].clone())
        .collect();
    assert_eq!(
        values,
        [
            json!(["C-ALPHA", "C-DELTA"]),
            json!([1001, 1003]),
            json!([75.0, 375.0]),
            json!(["premium", "premium"]),
            json!([0.99, 0.33])
        ]
    );
    Ok(())
}

#[tokio::test]
async fn feast_sdk_reads_imported_feature_services_through_its_remote_online_store() -> TestResult {
    let Some(python) = feast_python() else {
        return Ok(());
    };
    let root = tempfile::tempdir()?;
    import(root.path(), &[])?;
    let server = TestServer::start_on(root, |_| {})?;
    let script = fixture().join("sdk_check.py");
    let registry = fixture().join("repo/data/registry.db");
    for (service, rows, projection, values) in [
        (
            "driver_activity",
            json!([{"driver_id": 1001}, {"driver_id": 1002}, {"driver_id": 1003}]),
            json!([
                "driver_stats:conv_rate",
                "driver_stats:acc_rate",
                "driver_stats:avg_daily_trips",
                "driver_stats:rating_label",
                "driver_location:lat",
                "driver_location:lon"
            ]),
            expected_driver_activity(),
        ),
        (
            "customer_risk",
            json!([{"customer_id": "C-ALPHA", "driver_id": 1001}, {"customer_id": "C-DELTA", "driver_id": 1003}]),
            json!([
                "customer_profile:current_balance",
                "customer_profile:tier",
                "driver_stats:conv_rate"
            ]),
            json!({"customer_id": ["C-ALPHA", "C-DELTA"], "driver_id": [1001, 1003],
                "current_balance": [75.0, 375.0], "tier": ["premium", "premium"], "conv_rate": [0.99, 0.33]}),
        ),
    ] {
        let output = python
            .command(&script)
            .arg(&registry)
            .arg(&server.base)
            .arg(service)
            .arg(rows.to_string())
            .output()?;
        if !output.status.success() {
            return Err(format!(
                "Feast's SDK failed on {service}: {}",
                String::from_utf8_lossy(&output.stderr)
            )
            .into());
        }
        let stdout = String::from_utf8(output.stdout)?;
        let answer: Value = serde_json::from_str(stdout.lines().last().ok_or("no output")?)?;
        assert_eq!(answer["projection"], projection, "{service}");
        // Feast's columns: the join keys, then each projected feature by its name.
        let keys: Vec<&str> = values
            .as_object()
            .ok_or("values")?
            .keys()
            .map(String::as_str)
            .filter(|k| k.ends_with("_id"))
            .collect();
        let mut columns: Vec<Value> = keys.iter().map(|k| json!(k)).collect();
        for reference in projection.as_array().ok_or("projection")? {
            let feature = reference.as_str().and_then(|r| r.split(':').nth(1));
            columns.push(json!(feature.ok_or("view:feature")?));
        }
        assert_eq!(answer["columns"], Value::Array(columns), "{service}");
        assert_eq!(answer["values"], values, "{service}");
    }
    Ok(())
}

#[tokio::test]
async fn import_feast_dry_run_prints_the_plan_and_writes_nothing() -> TestResult {
    let root = tempfile::tempdir()?;
    let stdout = import(root.path(), &["--dry-run"])?;
    for line in [
        "(dry run: nothing is written)",
        "would copy misc/customer_profile <- ",
        "would apply:",
        "created   feature service driver_activity",
        "on-demand feature view trip_fare: ",
    ] {
        assert!(stdout.contains(line), "{line:?} not in:\n{stdout}");
    }
    assert!(!stdout.contains("registry version"), "{stdout}");
    assert_eq!(parquet_files(root.path()), Vec::<PathBuf>::new());
    let server = TestServer::start_on(root, |_| {})?;
    let (_, entities) = server.get("/registry/entities").await?;
    assert_eq!(entities["entities"], json!([]));
    Ok(())
}

#[test]
fn import_feast_fails_clearly_on_a_missing_dump_a_non_dump_and_a_missing_data_file() -> TestResult {
    let root = tempfile::tempdir()?;
    let root_text = text(root.path())?;
    let scratch = tempfile::tempdir()?;

    let missing = scratch.path().join("nope.json");
    let output = featurestore_command(&["import-feast", text(&missing)?, "--data-dir", root_text])?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot read") && stderr.contains("nope.json"),
        "{stderr}"
    );

    let not_dump = scratch.path().join("apply.json");
    std::fs::write(
        &not_dump,
        r#"{"entities": [{"name": "user_id", "value_type": "int64"}]}"#,
    )?;
    let output =
        featurestore_command(&["import-feast", text(&not_dump)?, "--data-dir", root_text])?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a Feast registry dump"), "{stderr}");

    // The fixture's repository with one data file gone: nothing at all is written.
    let repo = scratch.path().join("repo");
    std::fs::create_dir_all(repo.join("data"))?;
    for file in ["customer_profile.parquet", "driver_location.parquet"] {
        std::fs::copy(
            fixture().join("repo/data").join(file),
            repo.join("data").join(file),
        )?;
    }
    let dump = dump_path();
    let output = featurestore_command(&[
        "import-feast",
        text(&dump)?,
        "--data",
        text(&repo)?,
        "--data-dir",
        root_text,
    ])?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("feature view \"driver_stats\"") && stderr.contains("driver_stats.parquet"),
        "{stderr}"
    );
    assert_eq!(parquet_files(root.path()), Vec::<PathBuf>::new());
    Ok(())
}

#[tokio::test]
async fn import_feast_route_applies_views_whose_tables_exist_and_lists_the_rest() -> TestResult {
    let server = TestServer::start()?;
    server
        .save(
            "misc",
            "driver_location",
            json!({"records": [
                {"driver_id": 1001, "event_timestamp": "2025-01-01T00:20:00Z", "lat": 52.5, "lon": 13.4}
            ]}),
        )
        .await?;
    let (status, answer) = server.post("/registry/import-feast", &dump()?).await?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["dry_run"], false);
    assert_eq!(
        answer["tables"],
        json!([{"feature_view": "driver_location", "table": "misc/driver_location", "status": "kept",
            "message": "the HTTP import reads no files; the table already there is used"}])
    );
    let skipped: Vec<(&str, &str)> = answer["skipped"]
        .as_array()
        .ok_or("skipped")?
        .iter()
        .filter_map(|s| Some((s["kind"].as_str()?, s["name"].as_str()?)))
        .collect();
    assert_eq!(
        skipped,
        [
            ("feature view", "customer_profile"),
            ("feature view", "driver_stats"),
            ("feature service", "customer_risk"),
            ("feature service", "driver_activity"),
        ]
    );
    assert!(
        answer["skipped"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("the HTTP import reads no files")),
        "{answer}"
    );
    let unmappable: Vec<&str> = answer["unmappable"]
        .as_array()
        .ok_or("unmappable")?
        .iter()
        .filter_map(|u| u["name"].as_str())
        .collect();
    assert_eq!(
        unmappable,
        ["driver_trips_stream", "trip_fare", "fare_estimate"]
    );
    let (_, view) = server
        .get("/registry/feature-views/driver_location")
        .await?;
    assert_eq!(view["entities"], json!(["driver"]));
    assert_eq!(view["push_source"], "driver_location_push");
    let (status, _) = server.get("/registry/feature-views/driver_stats").await?;
    assert_eq!(status, 404);
    Ok(())
}

#[tokio::test]
async fn import_feast_route_dry_run_answers_the_plan_and_writes_nothing() -> TestResult {
    let server = TestServer::start()?;
    let response = server
        .client
        .post(server.url("/registry/import-feast?dry_run=true"))
        .json(&dump()?)
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers().get("x-registry-version").is_none());
    let answer: Value = response.json().await?;
    assert_eq!(answer["dry_run"], true);
    assert_eq!(
        answer["created"],
        json!(["entity customer", "entity driver"])
    );
    let (_, entities) = server.get("/registry/entities").await?;
    assert_eq!(entities["entities"], json!([]));
    Ok(())
}

#[tokio::test]
async fn import_feast_route_refuses_json_that_is_not_a_dump_with_422() -> TestResult {
    let server = TestServer::start()?;
    for body in [
        json!({"entities": [{"name": "user_id", "value_type": "int64"}]}),
        json!([1, 2, 3]),
        json!({"project": "p", "featureViews": [{"spec": {"features": "nope"}}]}),
    ] {
        let (status, problem) = server.post("/registry/import-feast", &body).await?;
        assert_problem(status, &problem, 422, "invalid_feast_registry");
    }
    let (status, problem) = server
        .post("/registry/import-feast?dryrun=1", &dump()?)
        .await?;
    assert_problem(status, &problem, 400, "unknown_query_parameter");
    Ok(())
}
