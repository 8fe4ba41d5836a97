//! What must never happen: escaping the data tree, half-applied writes, a 500 on a table
//! another tool wrote, a half-written file taking the server down, data lost on restart.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    ArrayRef, Float64Array, Int32Array, Int64Array, StringArray, TimestampNanosecondArray,
};
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use serde_json::{Value, json};

use crate::common::{
    TestResult, TestServer, assert_problem, list_files, parquet_bytes, write_parquet,
};

/// A raw HTTP/1.1 exchange, so that the request target reaches the server exactly as written
/// (reqwest would normalise `..`). Returns status, content type and body.
fn raw_http(
    server: &TestServer,
    request_line: &str,
    body: &str,
) -> TestResult<(u16, String, String)> {
    let address = server.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut request =
        format!("{request_line} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    if !body.is_empty() {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8(response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no end of headers in {response:?}"))?;
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .ok_or_else(|| format!("no status line in {head:?}"))?
        .parse()?;
    let content_type = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        .map(|(_, value)| value.trim().to_owned())
        .unwrap_or_default();
    Ok((status, content_type, body.to_owned()))
}

fn batch_of(columns: Vec<(&str, ArrayRef)>) -> TestResult<RecordBatch> {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, array)| Field::new(*name, array.data_type().clone(), true))
        .collect();
    let arrays = columns.into_iter().map(|(_, array)| array).collect();
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
}

#[tokio::test]
async fn path_traversal_never_reads_or_creates_files_outside_the_tree() -> TestResult {
    // The data root sits in a folder of its own, so "outside the tree" can be checked whole.
    let outer = tempfile::tempdir()?;
    let server = TestServer::start_on(tempfile::tempdir_in(outer.path())?, |_| {})?;
    server
        .save("user", "victim", json!({"records": [{"entity_id": 1}]}))
        .await?;
    // A valid table just outside the data root that a traversal could serve.
    let secret = batch_of(vec![(
        "secret",
        Arc::new(StringArray::from(vec!["TOP-SECRET-MARKER"])) as ArrayRef,
    )])?;
    write_parquet(&outer.path().join("secret.parquet"), &secret)?;
    let inside_before = server.files();
    let outside_before = list_files(outer.path());

    let body = r#"{"records": [{"entity_id": 1, "x": "pwned"}]}"#;
    let requests = [
        ("GET /features/..%2F..%2Fetc/passwd", ""),
        ("GET /features/%2E%2E/passwd", ""),
        ("GET /features/%2E%2E/%2E%2E", ""),
        ("GET /features/user/..%2F..%2F..%2Fsecret", ""),
        ("GET /features/user/..%2F..%2F..%2Fsecret/info", ""),
        ("GET /features/..%2F../secret", ""),
        ("GET /features/user/%FF%FE", ""),
        ("GET /features/user/victim%00..%2F..%2Fsecret", ""),
        ("DELETE /features/user/..%2Fuser%2Fvictim", ""),
        ("DELETE /features/..%2F..%2Ffeatures%2Fuser/victim", ""),
        ("POST /features/../x", body),
        ("POST /features/user/..%2F..%2Fescape", body),
        ("POST /features/user/..%2F..%2F..%2Fescape", body),
        ("POST /features/%2E%2E/escape", body),
        ("POST /features/user%2F..%2F..%2F../escape", body),
        (
            "POST /features/batch",
            r#"{"feature_names": ["../../../secret"]}"#,
        ),
    ];
    for (request_line, body) in requests {
        let (status, content_type, response) = raw_http(&server, request_line, body)?;
        assert!(
            (400..500).contains(&status),
            "{request_line} answered {status}: {response}"
        );
        assert_eq!(
            content_type, "application/problem+json",
            "{request_line}: {response}"
        );
        let problem: Value = serde_json::from_str(&response)?;
        assert_eq!(problem["status"], status, "{request_line}: {response}");
        assert!(
            !response.contains("TOP-SECRET-MARKER") && !response.contains("root:"),
            "{request_line} leaked: {response}"
        );
    }
    assert_eq!(server.files(), inside_before, "files inside the data root");
    assert_eq!(list_files(outer.path()), outside_before, "files beside it");
    let (status, page) = server.get("/features/user/victim").await?;
    assert_eq!(status, 200, "the victim table survives: {page}");
    assert_eq!(page["data"], json!([{"entity_id": 1}]));
    Ok(())
}

#[tokio::test]
async fn a_rejected_replace_leaves_the_previous_table_and_no_temp_files() -> TestResult {
    let server = TestServer::start()?;
    let records = json!([{"entity_id": 1, "x": 1}, {"entity_id": 2, "x": 2}]);
    server
        .save("user", "stable", json!({"records": records}))
        .await?;
    let files_before = server.files();

    let rejected = [
        json!({"records": [{"entity_id": 1, "x": 1}, {"entity_id": 2, "x": "two"}]}),
        json!({"records": [{"entity_id": 3, "x": 3}], "entity_key": ["missing"]}),
        json!({"records": [{"entity_id": 3, "x": 3}], "timestamp_field": "x"}),
        json!({"records": [{"entity_id": 1.5, "x": 3}]}),
    ];
    for body in rejected {
        let (status, problem) = server.post("/features/user/stable", &body).await?;
        assert_problem(status, &problem, 422, "invalid_records");
        let (status, page) = server.get("/features/user/stable").await?;
        assert_eq!(status, 200, "body: {page}");
        assert_eq!(page["data"], records, "after {body}");
        assert_eq!(page["metadata"]["version"], 1, "after {body}");
    }
    let files = server.files();
    assert_eq!(files, files_before);
    let temps: Vec<_> = files
        .iter()
        .filter(|p| p.to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(temps.is_empty(), "temporary files left: {temps:?}");

    // The next good write continues from the version that was kept.
    let (status, body) = server
        .post(
            "/features/user/stable",
            &json!({"records": [{"entity_id": 9, "x": 9}]}),
        )
        .await?;
    assert_eq!(status, 200, "body: {body}");
    assert_eq!(body["version"], 2);
    Ok(())
}

#[tokio::test]
async fn a_table_written_by_another_tool_is_served_with_nan_and_infinities_as_null() -> TestResult {
    let server = TestServer::start()?;
    let external = batch_of(vec![
        (
            "score",
            Arc::new(Float64Array::from(vec![
                Some(f64::NAN),
                Some(f64::INFINITY),
                Some(f64::NEG_INFINITY),
                Some(1.5),
                None,
            ])) as ArrayRef,
        ),
        (
            "count",
            Arc::new(Int32Array::from(vec![
                Some(1),
                Some(-2),
                None,
                Some(4),
                Some(5),
            ])),
        ),
    ])?;
    write_parquet(
        &server.root().join("features/misc/external.parquet"),
        &external,
    )?;
    let expected = json!([
        {"score": null, "count": 1},
        {"score": null, "count": -2},
        {"score": null, "count": null},
        {"score": 1.5, "count": 4},
        {"score": null, "count": 5},
    ]);

    let (status, body) = server.get("/features/misc/external").await?;
    assert_eq!(status, 200, "body: {body}");
    assert_eq!(body["feature_group"], "misc");
    assert_eq!(body["feature_name"], "external");
    assert_eq!(body["data"], expected);
    let meta = &body["metadata"];
    assert_eq!(meta["total_rows"], 5);
    assert_eq!(meta["returned_rows"], 5);
    assert_eq!(meta["next_offset"], Value::Null);
    assert_eq!(meta["columns"], json!(["score", "count"]));
    assert_eq!(
        meta["dtypes"],
        json!({"score": "float64", "count": "int32"})
    );
    assert!(meta["version"].is_u64(), "body: {body}");

    let (status, listing) = server.get("/features").await?;
    assert_eq!(status, 200, "body: {listing}");
    assert_eq!(listing["table_count"], 1);
    let tables = &listing["groups"]["misc"];
    assert_eq!(tables[0]["name"], "external", "listing: {listing}");
    assert_eq!(tables[0]["rows"], 5);
    assert_eq!(tables[0]["columns"], 2);

    let (status, info) = server.get("/features/misc/external/info").await?;
    assert_eq!(status, 200, "body: {info}");
    assert_eq!(
        info["storage_info"]["columns"],
        json!([
            {"name": "score", "logical_type": "float64", "stored_type": "float64"},
            {"name": "count", "logical_type": "int32", "stored_type": "int32"},
        ])
    );

    let (status, batch) = server
        .post("/features/batch", &json!({"feature_names": ["external"]}))
        .await?;
    assert_eq!(status, 200, "body: {batch}");
    assert_eq!(batch["features"]["external"], expected);
    assert_eq!(batch["metadata"]["entity_key"], json!({"external": null}));
    Ok(())
}

#[tokio::test]
async fn a_half_written_file_is_not_served_and_every_other_table_still_is() -> TestResult {
    let server = TestServer::start()?;
    server
        .save(
            "user",
            "healthy_table",
            json!({"records": [{"entity_id": 1, "v": 2}]}),
        )
        .await?;
    let ids: Vec<i64> = (0..2000).collect();
    let whole = parquet_bytes(&batch_of(vec![(
        "entity_id",
        Arc::new(Int64Array::from(ids)) as ArrayRef,
    )])?)?;
    assert!(whole.len() > 1000, "{} bytes", whole.len());
    std::fs::write(
        server.root().join("features/misc/partial.parquet"),
        &whole[..400],
    )?;

    for path in ["/features/misc/partial", "/features/misc/partial/info"] {
        let (status, body) = server.get(path).await?;
        assert!(
            status == 404 || status == 500,
            "{path} answered {status}: {body}"
        );
        assert_eq!(body["status"], status, "{path}: {body}");
    }
    let (status, body) = server
        .post("/features/batch", &json!({"feature_names": ["partial"]}))
        .await?;
    assert!(
        status == 404 || status == 500,
        "batch answered {status}: {body}"
    );

    let (status, listing) = server.get("/features").await?;
    assert_eq!(status, 200, "body: {listing}");
    assert_eq!(listing["table_count"], 1, "listing: {listing}");
    assert_eq!(listing["groups"]["user"][0]["name"], "healthy_table");
    let (status, page) = server.get("/features/user/healthy_table").await?;
    assert_eq!(status, 200, "body: {page}");
    assert_eq!(page["data"], json!([{"entity_id": 1, "v": 2}]));
    let (status, batch) = server
        .post(
            "/features/batch",
            &json!({"feature_names": ["healthy_table"], "entity_ids": [1]}),
        )
        .await?;
    assert_eq!(status, 200, "body: {batch}");
    assert_eq!(
        batch["features"]["healthy_table"],
        json!([{"entity_id": 1, "v": 2}])
    );
    let (status, health) = server.get("/health").await?;
    assert_eq!(status, 200, "body: {health}");
    assert_eq!(health["status"], "healthy");

    // Once the copy completes, the table is served.
    std::fs::write(server.root().join("features/misc/partial.parquet"), &whole)?;
    let (status, page) = server.get("/features/misc/partial?limit=2").await?;
    assert_eq!(status, 200, "body: {page}");
    assert_eq!(page["data"], json!([{"entity_id": 0}, {"entity_id": 1}]));
    assert_eq!(page["metadata"]["total_rows"], 2000);
    Ok(())
}

#[tokio::test]
async fn a_restarted_server_serves_the_same_rows_and_version() -> TestResult {
    let server = TestServer::start()?;
    let records = json!([
        {"user_id": 1, "age": 30, "event_timestamp": "2025-06-01T10:00:00Z"},
        {"user_id": 2, "age": 40, "event_timestamp": "2025-06-02T10:00:00Z"},
    ]);
    server
        .save(
            "user",
            "kept",
            json!({"records": [{"user_id": 0}], "entity_key": ["user_id"]}),
        )
        .await?;
    server
        .save("user", "kept", json!({"records": records}))
        .await?;
    let (_, page_before) = server.get("/features/user/kept").await?;
    let (_, listing_before) = server.get("/features").await?;
    let files_before = server.files();

    let data = server.stop();
    let server = TestServer::start_on(data, |_| {})?;
    assert_eq!(server.files(), files_before);
    let (status, page) = server.get("/features/user/kept").await?;
    assert_eq!(status, 200, "body: {page}");
    assert_eq!(page, page_before);
    assert_eq!(page["data"], records);
    assert_eq!(page["metadata"]["version"], 2);
    let (_, listing) = server.get("/features").await?;
    assert_eq!(listing, listing_before);
    let (_, health) = server.get("/health").await?;
    assert_eq!(health["table_count"], 1);

    // The declared key survived the restart, and the version keeps counting.
    let (status, batch) = server
        .post(
            "/features/batch",
            &json!({"feature_names": ["kept"], "entity_ids": [2], "timestamp": "2025-06-03T00:00:00Z"}),
        )
        .await?;
    assert_eq!(status, 200, "body: {batch}");
    assert_eq!(
        batch["features"]["kept"],
        json!([{"user_id": 2, "age": 40, "event_timestamp": "2025-06-02T10:00:00Z"}])
    );
    let (status, saved) = server
        .post("/features/user/kept", &json!({"records": records}))
        .await?;
    assert_eq!(status, 200, "body: {saved}");
    assert_eq!(saved["version"], 3);
    assert_eq!(saved["entity_key"], json!(["user_id"]));
    Ok(())
}

#[tokio::test]
async fn concurrent_readers_see_whole_versions_while_the_table_is_replaced() -> TestResult {
    let server = TestServer::start()?;
    // Every row of generation `g` holds `g`, and generation `g` is version `g`.
    let generation = |g: u64| {
        let records: Vec<Value> = (0..300)
            .map(|i| json!({"entity_id": i, "gen": g}))
            .collect();
        json!({ "records": records })
    };
    server.save("user", "churn", generation(1)).await?;
    let writes = async {
        for g in 2..=8 {
            let (status, body) = server.post("/features/user/churn", &generation(g)).await?;
            if status != 200 || body["version"] != g {
                return Err(format!("write {g} answered {status}: {body}").into());
            }
        }
        TestResult::Ok(())
    };
    let reads = async {
        let mut seen = Vec::new();
        for _ in 0..40 {
            let (status, page) = server.get("/features/user/churn?limit=300").await?;
            if status != 200 {
                return Err(format!("read answered {status}: {page}").into());
            }
            let version = page["metadata"]["version"].as_u64().ok_or("version")?;
            let rows = page["data"].as_array().ok_or("data")?;
            if rows.len() != 300 || rows.iter().any(|r| r["gen"] != version) {
                return Err(format!("version {version} mixed generations: {page}").into());
            }
            seen.push(version);
        }
        TestResult::Ok(seen)
    };
    let (written, seen) = tokio::join!(writes, reads);
    written?;
    let seen = seen?;
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "versions went back: {seen:?}"
    );
    let (_, page) = server.get("/features/user/churn?limit=1").await?;
    assert_eq!(page["metadata"]["version"], 8);
    Ok(())
}

#[tokio::test]

async fn a_table_replaced_by_another_tool_is_served_under_a_new_version() -> TestResult {
    let server = TestServer::start()?;
    server
        .save(
            "misc",
            "shared",
            json!({"records": [{"entity_id": 1, "v": 1}]}),
        )
        .await?;
    server
        .save(
            "misc",
            "shared",
            json!({"records": [{"entity_id": 1, "v": 2}]}),
        )
        .await?;
    // Another tool replaces the file the careful way: a temporary file, then a rename.
    let replacement = batch_of(vec![
        (
            "entity_id",
            Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef,
        ),
        ("v", Arc::new(Int64Array::from(vec![30, 40])) as ArrayRef),
    ])?;
    let target = server.root().join("features/misc/shared.parquet");
    let temp = server.root().join("features/misc/incoming.tmp");
    write_parquet(&temp, &replacement)?;
    std::fs::rename(&temp, &target)?;
    // Listing rescans the tree, so the replacement is picked up without waiting for a watcher.
    let (status, _) = server.get("/features").await?;
    assert_eq!(status, 200);

    let (status, page) = server.get("/features/misc/shared").await?;
    assert_eq!(status, 200, "body: {page}");
    assert_eq!(
        page["data"],
        json!([{"entity_id": 1, "v": 30}, {"entity_id": 2, "v": 40}])
    );
    let version = page["metadata"]["version"].as_u64().ok_or("version")?;
    assert!(version > 2, "new data served under old version {version}");
    Ok(())
}

#[tokio::test]
async fn a_table_written_by_another_tool_is_keyed_by_entity_id_and_event_timestamp() -> TestResult {
    let server = TestServer::start()?;
    // As pandas writes them: narrow integer ids and nanosecond timestamps.
    let day = 86_400_000_000_000_i64;
    let start = 1_748_736_000_000_000_000_i64; // 2025-06-01T00:00:00Z
    let external = batch_of(vec![
        (
            "entity_id",
            Arc::new(Int32Array::from(vec![1, 2, 1, 2])) as ArrayRef,
        ),
        (
            "event_timestamp",
            Arc::new(
                TimestampNanosecondArray::from(vec![start, start, start + day, start + 2 * day])
                    .with_timezone("UTC"),
            ),
        ),
        (
            "value",
            Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0, 4.0])),
        ),
    ])?;
    write_parquet(
        &server.root().join("features/misc/pandas_made.parquet"),
        &external,
    )?;

    let (status, body) = server
        .post(
            "/features/batch",
            &json!({"feature_names": ["pandas_made"], "entity_ids": ["2", 1], "timestamp": "2025-06-02T12:00:00Z"}),
        )
        .await?;
    assert_eq!(status, 200, "body: {body}");
    assert_eq!(
        body["features"]["pandas_made"],
        json!([
            {"entity_id": 2, "event_timestamp": "2025-06-01T00:00:00Z", "value": 2.0},
            {"entity_id": 1, "event_timestamp": "2025-06-02T00:00:00Z", "value": 3.0},
        ])
    );
    assert_eq!(
        body["metadata"]["entity_key"],
        json!({"pandas_made": "entity_id"})
    );
    let (status, info) = server.get("/features/misc/pandas_made/info").await?;
    assert_eq!(status, 200, "body: {info}");
    assert_eq!(info["storage_info"]["entity_key"], json!(["entity_id"]));
    assert_eq!(info["storage_info"]["timestamp_field"], "event_timestamp");
    Ok(())
}
