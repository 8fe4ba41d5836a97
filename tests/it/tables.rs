//! The table routes: save, list, page, info and delete, with their errors.

use serde_json::{Value, json};

use crate::common::{TestResult, TestServer, assert_problem, read};

const MIB: f64 = 1024.0 * 1024.0;

/// GET `path`; returns status and the raw body, for checks on key order.
async fn get_text(server: &TestServer, path: &str) -> TestResult<(u16, String)> {
    let response = server.client.get(server.url(path)).send().await?;
    Ok((response.status().as_u16(), response.text().await?))
}

/// POST a raw body with a content type; returns status and JSON body.
async fn post_raw(
    server: &TestServer,
    path: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> TestResult<(u16, Value)> {
    let response = server
        .client
        .post(server.url(path))
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(body)
        .send()
        .await?;
    read(response).await
}

/// The size of a table file as the API reports it in MiB.
fn mib(bytes: u64) -> f64 {
    (bytes as f64 / MIB * 1000.0).round() / 1000.0
}

fn file_size(server: &TestServer, relative: &str) -> TestResult<u64> {
    Ok(std::fs::metadata(server.root().join(relative))?.len())
}

/// `n` rows of `entity_id` = i and `score` = i + 0.5.
fn numbered(n: usize) -> Value {
    let records: Vec<Value> = (0..n)
        .map(|i| json!({"entity_id": i, "score": i as f64 + 0.5}))
        .collect();
    json!({ "records": records })
}

#[tokio::test]
async fn save_creates_with_201_then_replaces_with_200_and_a_new_version() -> TestResult {
    let server = TestServer::start()?;
    let (status, body) = server
        .post(
            "/features/user/x",
            &json!({
                "records": [{"user_id": 1, "age": 30, "event_timestamp": "2025-06-01T10:00:00Z"}],
                "entity_key": ["user_id"],
            }),
        )
        .await?;
    assert_eq!(status, 201, "body: {body}");
    assert_eq!(
        body,
        json!({
            "message": "table user/x created with 1 rows",
            "file_path": "features/user/x.parquet",
            "rows_saved": 1,
            "version": 1,
            "entity_key": ["user_id"],
            "timestamp_field": "event_timestamp",
            "entity_key_source": "declared",
            "registry": {
                "status": "registered",
                "feature_view": "x",
                "message": "registered feature view x (entities user_id, timestamp event_timestamp, features age); registered entity user_id typed from the table",
                "entities_registered": ["user_id"],
                "mismatches": [],
                "broken_feature_services": [],
            },
        })
    );
    assert!(server.root().join("features/user/x.parquet").is_file());

    // The replacement keeps the declared key without repeating it.
    let (status, body) = server
        .post(
            "/features/user/x",
            &json!({"records": [
                {"user_id": 1, "age": 31, "event_timestamp": "2025-06-02T10:00:00Z"},
                {"user_id": 2, "age": 40, "event_timestamp": "2025-06-02T10:00:00Z"},
            ]}),
        )
        .await?;
    assert_eq!(status, 200, "body: {body}");
    assert_eq!(
        body,
        json!({
            "message": "table user/x replaced with 2 rows",
            "file_path": "features/user/x.parquet",
            "rows_saved": 2,
            "version": 2,
            "entity_key": ["user_id"],
            "timestamp_field": "event_timestamp",
            "entity_key_source": "previous",
            "registry": {
                "status": "unchanged",
                "feature_view": "x",
                "message": "feature view x matches the table",
                "entities_registered": [],
                "mismatches": [],
                "broken_feature_services": [],
            },
        })
    );
    let (status, page) = server.get("/features/user/x").await?;
    assert_eq!(status, 200, "body: {page}");
    assert_eq!(page["metadata"]["version"], 2);
    assert_eq!(page["metadata"]["total_rows"], 2);
    Ok(())
}

#[tokio::test]
async fn save_without_entity_or_timestamp_columns_declares_none() -> TestResult {
    let server = TestServer::start()?;
    let (status, body) = server
        .post("/features/misc/plain", &json!({"records": [{"a": 1}]}))
        .await?;
    assert_eq!(status, 201, "body: {body}");
    assert_eq!(body["entity_key"], json!([]));
    assert_eq!(body["timestamp_field"], Value::Null);
    Ok(())
}

#[tokio::test]
async fn listing_shows_every_table_by_group_with_rows_size_and_version() -> TestResult {
    let server = TestServer::start()?;
    let (status, body) = server.get("/features").await?;
    assert_eq!(status, 200, "body: {body}");
    assert_eq!(body, json!({"groups": {}, "table_count": 0}));

    server.save("user", "b_table", numbered(3)).await?;
    server.save("user", "a_table", numbered(2)).await?;
    server.save("content", "c_table", numbered(1)).await?;
    server.save("content", "c_table", numbered(4)).await?;

    let summary = |group: &str, name: &str, rows: u64, version: u64| -> TestResult<Value> {
        let bytes = file_size(&server, &format!("features/{group}/{name}.parquet"))?;
        Ok(json!({
            "name": name,
            "rows": rows,
            "columns": 2,
            "file_size_bytes": bytes,
            "file_size_mb": mib(bytes),
            "version": version,
        }))
    };
    let expected = json!({
        "groups": {
            "content": [summary("content", "c_table", 4, 2)?],
            "user": [summary("user", "a_table", 2, 1)?, summary("user", "b_table", 3, 1)?],
        },
        "table_count": 3,
    });
    let (status, body) = server.get("/features").await?;
    assert_eq!(status, 200, "body: {body}");
    assert_eq!(body, expected);
    Ok(())
}

#[tokio::test]
async fn page_defaults_to_1000_rows_and_pages_with_limit_and_offset() -> TestResult {
    let server = TestServer::start()?;
    server.save("misc", "big", numbered(1500)).await?;

    let (status, body) = server.get("/features/misc/big").await?;
    assert_eq!(status, 200, "body: {body}");
    assert_eq!(body["feature_group"], "misc");
    assert_eq!(body["feature_name"], "big");
    let data = body["data"].as_array().ok_or("data is an array")?;
    assert_eq!(data.len(), 1000);
    assert_eq!(data[0], json!({"entity_id": 0, "score": 0.5}));
    assert_eq!(data[999], json!({"entity_id": 999, "score": 999.5}));
    assert_eq!(
        body["metadata"],
        json!({
            "total_rows": 1500, "returned_rows": 1000, "offset": 0, "limit": 1000,
            "next_offset": 1000, "columns": ["entity_id", "score"],
            "dtypes": {"entity_id": "int64", "score": "float64"}, "version": 1,
        })
    );

    let (status, body) = server.get("/features/misc/big?limit=3&offset=10").await?;
    assert_eq!(status, 200, "body: {body}");
    assert_eq!(
        body["data"],
        json!([
            {"entity_id": 10, "score": 10.5},
            {"entity_id": 11, "score": 11.5},
            {"entity_id": 12, "score": 12.5},
        ])
    );
    assert_eq!(body["metadata"]["next_offset"], 13);
    assert_eq!(body["metadata"]["returned_rows"], 3);

    // The last page: fewer rows than asked and no next page.
    let (status, body) = server
        .get("/features/misc/big?limit=200&offset=1400")
        .await?;
    assert_eq!(status, 200, "body: {body}");
    let data = body["data"].as_array().ok_or("data is an array")?;
    assert_eq!(data.len(), 100);
    assert_eq!(data[0]["entity_id"], 1400);
    assert_eq!(data[99]["entity_id"], 1499);
    assert_eq!(
        body["metadata"],
        json!({
            "total_rows": 1500, "returned_rows": 100, "offset": 1400, "limit": 200,
            "next_offset": null, "columns": ["entity_id", "score"],
            "dtypes": {"entity_id": "int64", "score": "float64"}, "version": 1,
        })
    );

    // An offset exactly at or past the end is an empty page, not an error.
    for offset in [1500, 5000] {
        let (status, body) = server
            .get(&format!("/features/misc/big?offset={offset}"))
            .await?;
        assert_eq!(status, 200, "body: {body}");
        assert_eq!(body["data"], json!([]));
        assert_eq!(body["metadata"]["total_rows"], 1500);
        assert_eq!(body["metadata"]["next_offset"], Value::Null);
    }
    Ok(())
}

#[tokio::test]
async fn limit_zero_returns_no_rows_but_the_total() -> TestResult {
    let server = TestServer::start()?;
    server.save("misc", "some", numbered(7)).await?;
    let (status, body) = server.get("/features/misc/some?limit=0").await?;
    assert_eq!(status, 200, "body: {body}");
    assert_eq!(
        body,
        json!({
            "feature_group": "misc",
            "feature_name": "some",
            "data": [],
            "metadata": {
                "total_rows": 7, "returned_rows": 0, "offset": 0, "limit": 0,
                "next_offset": null, "columns": ["entity_id", "score"],
                "dtypes": {"entity_id": "int64", "score": "float64"}, "version": 1,
            },
        })
    );
    Ok(())
}

#[tokio::test]
async fn columns_are_returned_in_the_order_asked() -> TestResult {
    let server = TestServer::start()?;
    server
        .save(
            "misc",
            "ordered",
            json!({"records": [{"a": 1, "b": "x", "c": true}, {"a": 2, "b": "y", "c": false}]}),
        )
        .await?;
    let (status, text) = get_text(&server, "/features/misc/ordered?columns=b,a").await?;
    assert_eq!(status, 200, "body: {text}");
    // serde_json's map sorts keys, so key order is checked on the raw body.
    assert!(
        text.contains(r#""data":[{"b":"x","a":1},{"b":"y","a":2}]"#),
        "body: {text}"
    );
    assert!(
        text.contains(r#""dtypes":{"b":"string","a":"int64"}"#),
        "body: {text}"
    );
    let body: Value = serde_json::from_str(&text)?;
    assert_eq!(body["metadata"]["columns"], json!(["b", "a"]));

    // Without `columns`, the table's own order.
    let (status, text) = get_text(&server, "/features/misc/ordered").await?;
    assert_eq!(status, 200, "body: {text}");
    assert!(
        text.contains(r#""data":[{"a":1,"b":"x","c":true},{"a":2,"b":"y","c":false}]"#),
        "body: {text}"
    );
    Ok(())
}

/// A table whose columns are all stored narrower than they are served.
fn narrowed_table() -> Value {
    let genres = ["Drama", "Comedy", "Action"];
    let records: Vec<Value> = (0..=200)
        .map(|i| {
            json!({
                "id": i,
                "quarter": f64::from(i) / 4.0,
                "tenth": f64::from(i) / 10.0 + 0.1,
                "genre": genres[i as usize % 3],
                "active": i % 2 == 0,
                "event_timestamp": format!("2025-06-01T10:{:02}:{:02}Z", i / 60, i % 60),
            })
        })
        .collect();
    json!({"records": records, "entity_key": ["id"]})
}

#[tokio::test]
async fn dtypes_are_logical_even_when_stored_narrower() -> TestResult {
    let server = TestServer::start()?;
    server.save("misc", "narrow", narrowed_table()).await?;
    let (status, body) = server.get("/features/misc/narrow?limit=2").await?;
    assert_eq!(status, 200, "body: {body}");
    assert_eq!(
        body["metadata"]["dtypes"],
        json!({
            "id": "int64",
            "quarter": "float64",
            "tenth": "float64",
            "genre": "string",
            "active": "bool",
            "event_timestamp": "timestamp[us, UTC]",
        })
    );
    assert_eq!(
        body["data"],
        json!([
            {"id": 0, "quarter": 0.0, "tenth": 0.1, "genre": "Drama", "active": true,
             "event_timestamp": "2025-06-01T10:00:00Z"},
            {"id": 1, "quarter": 0.25, "tenth": 0.2, "genre": "Comedy", "active": false,
             "event_timestamp": "2025-06-01T10:00:01Z"},
        ])
    );
    Ok(())
}

#[tokio::test]
async fn info_reports_logical_and_stored_types_size_and_version() -> TestResult {
    let server = TestServer::start()?;
    server.save("misc", "narrow", narrowed_table()).await?;
    let (status, body) = server.get("/features/misc/narrow/info").await?;
    assert_eq!(status, 200, "body: {body}");
    let info = &body["storage_info"];
    let bytes = file_size(&server, "features/misc/narrow.parquet")?;
    assert_eq!(info["feature_group"], "misc");
    assert_eq!(info["feature_name"], "narrow");
    assert_eq!(info["exists"], true);
    assert_eq!(info["file_path"], "features/misc/narrow.parquet");
    assert_eq!(info["file_size_bytes"], bytes);
    assert_eq!(info["file_size_mb"], mib(bytes));
    assert_eq!(info["row_count"], 201);
    assert_eq!(info["column_count"], 6);
    assert_eq!(info["row_group_count"], 1);
    assert_eq!(
        info["columns"],
        // In the order the records were sent (`json!` sorts keys).
        json!([
            {"name": "active", "logical_type": "bool", "stored_type": "bool"},
            {"name": "event_timestamp", "logical_type": "timestamp[us, UTC]",
             "stored_type": "timestamp[us, UTC]"},
            {"name": "genre", "logical_type": "string", "stored_type": "dictionary<int8, string>"},
            {"name": "id", "logical_type": "int64", "stored_type": "int16"},
            {"name": "quarter", "logical_type": "float64", "stored_type": "float32"},
            {"name": "tenth", "logical_type": "float64", "stored_type": "float64"},
        ])
    );
    let in_memory = info["in_memory_bytes"].as_u64().ok_or("in_memory_bytes")?;
    assert!(in_memory > 0, "info: {info}");
    let ratio = info["compression_ratio"]
        .as_f64()
        .ok_or("compression_ratio")?;
    assert!(ratio > 0.0, "info: {info}");
    let expected_ratio = (bytes as f64 / in_memory as f64 * 1000.0).round() / 1000.0;
    assert_eq!(ratio, expected_ratio);
    assert_eq!(info["compression"], "snappy");
    let modified = info["modified"].as_str().ok_or("modified")?;
    assert!(chrono::DateTime::parse_from_rfc3339(modified).is_ok());
    assert_eq!(info["version"], 1);
    assert_eq!(info["entity_key"], json!(["id"]));
    assert_eq!(info["timestamp_field"], "event_timestamp");

    server.save("misc", "narrow", narrowed_table()).await?;
    let (_, body) = server.get("/features/misc/narrow/info").await?;
    assert_eq!(body["storage_info"]["version"], 2);
    Ok(())
}

/// Columns named after the type the boundaries below choose: each holds that type's minimum
/// and maximum (or, for `u*`, 0 and the unsigned maximum).
fn boundary_records() -> Value {
    json!({"records": [
        {"u8": 0, "u16": 0, "i8": -128, "i16": -1, "i32": 0, "big": -1},
        {"u8": 255, "u16": 256, "i8": 127, "i16": 128, "i32": 32_768, "big": 4_294_967_296_i64},
    ]})
}

async fn stored_types(server: &TestServer, path: &str) -> TestResult<Vec<(String, String)>> {
    let (status, body) = server.get(path).await?;
    assert_eq!(status, 200, "body: {body}");
    Ok(body["storage_info"]["columns"]
        .as_array()
        .ok_or("columns")?
        .iter()
        .filter_map(|c| {
            Some((
                c["name"].as_str()?.into(),
                c["stored_type"].as_str()?.into(),
            ))
        })
        .collect())
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test]
async fn integers_are_stored_in_the_smallest_signed_type_that_holds_them() -> TestResult {
    let server = TestServer::start()?;
    server.save("misc", "bounds", boundary_records()).await?;
    assert_eq!(
        stored_types(&server, "/features/misc/bounds/info").await?,
        pairs(&[
            ("big", "int64"),
            ("i16", "int16"),
            ("i32", "int32"),
            ("i8", "int8"),
            ("u16", "int16"),
            ("u8", "int16"),
        ])
    );
    let (_, page) = server.get("/features/misc/bounds").await?;
    assert_eq!(
        page["data"][1],
        json!({"u8": 255, "u16": 256, "i8": 127, "i16": 128, "i32": 32_768, "big": 4_294_967_296_i64})
    );
    Ok(())
}

#[tokio::test]
async fn integer_downcast_unsigned_keeps_the_unsigned_rule_and_never_keeps_int64() -> TestResult {
    let server = TestServer::start_with(|c| {
        c.storage.integer_downcast = featurestore::storage::IntegerDowncast::Unsigned
    })?;
    server.save("misc", "bounds", boundary_records()).await?;
    assert_eq!(
        stored_types(&server, "/features/misc/bounds/info").await?,
        pairs(&[
            ("big", "int64"),
            ("i16", "int16"),
            ("i32", "uint16"),
            ("i8", "int8"),
            ("u16", "uint16"),
            ("u8", "uint8"),
        ])
    );
    let (_, page) = server.get("/features/misc/bounds").await?;
    assert_eq!(page["data"][1]["u8"], 255);
    let root = server.stop();
    // A table written under the unsigned rule reads back the same under the default one.
    let server = TestServer::start_on(root, |_| {})?;
    let (_, again) = server.get("/features/misc/bounds").await?;
    assert_eq!(again["data"], page["data"]);
    assert_eq!(
        stored_types(&server, "/features/misc/bounds/info").await?[5],
        ("u8".to_string(), "uint8".to_string())
    );
    let server = TestServer::start_with(|c| {
        c.storage.integer_downcast = featurestore::storage::IntegerDowncast::Never
    })?;
    server.save("misc", "bounds", boundary_records()).await?;
    let types = stored_types(&server, "/features/misc/bounds/info").await?;
    assert!(types.iter().all(|(_, t)| t == "int64"), "{types:?}");
    Ok(())
}

#[tokio::test]
async fn floats_read_back_exactly_as_posted_whether_or_not_f32_holds_them() -> TestResult {
    let server = TestServer::start()?;
    let records = json!([
        {"exact": 0.5, "inexact": 2.4},
        {"exact": -1.25, "inexact": 0.1},
        {"exact": 1024.0, "inexact": 1e-7},
    ]);
    server
        .save("misc", "floats", json!({"records": records}))
        .await?;
    let (status, body) = server.get("/features/misc/floats").await?;
    assert_eq!(status, 200, "body: {body}");
    assert_eq!(body["data"], records);
    let (_, info) = server.get("/features/misc/floats/info").await?;
    assert_eq!(
        info["storage_info"]["columns"],
        json!([
            {"name": "exact", "logical_type": "float64", "stored_type": "float32"},
            {"name": "inexact", "logical_type": "float64", "stored_type": "float64"},
        ])
    );
    Ok(())
}

#[tokio::test]
async fn timestamps_with_offsets_read_back_in_utc() -> TestResult {
    let server = TestServer::start()?;
    server
        .save(
            "misc",
            "times",
            json!({"records": [
                {"event_timestamp": "2025-06-01T12:00:00+02:00"},
                {"event_timestamp": "2025-06-01T10:00:00.250-01:00"},
            ]}),
        )
        .await?;
    let (status, body) = server.get("/features/misc/times").await?;
    assert_eq!(status, 200, "body: {body}");
    assert_eq!(
        body["data"],
        json!([
            {"event_timestamp": "2025-06-01T10:00:00Z"},
            {"event_timestamp": "2025-06-01T11:00:00.250Z"},
        ])
    );
    assert_eq!(
        body["metadata"]["dtypes"],
        json!({"event_timestamp": "timestamp[us, UTC]"})
    );
    Ok(())
}

#[tokio::test]
async fn nulls_in_integer_columns_read_back_as_null() -> TestResult {
    let server = TestServer::start()?;
    server
        .save(
            "misc",
            "holes",
            json!({"records": [{"n": 1, "s": "a"}, {"n": null, "s": null}, {"s": "c"}, {"n": 4}]}),
        )
        .await?;
    let (status, body) = server.get("/features/misc/holes").await?;
    assert_eq!(status, 200, "body: {body}");
    assert_eq!(
        body["data"],
        json!([
            {"n": 1, "s": "a"},
            {"n": null, "s": null},
            {"n": null, "s": "c"},
            {"n": 4, "s": null},
        ])
    );
    assert_eq!(
        body["metadata"]["dtypes"],
        json!({"n": "int64", "s": "string"})
    );
    Ok(())
}

#[tokio::test]
async fn bad_limit_or_offset_is_400_invalid_parameter_naming_it() -> TestResult {
    let server = TestServer::start()?;
    server.save("misc", "some", numbered(3)).await?;
    let cases = [
        (
            "limit=-1",
            "limit",
            "must be a non-negative integer, got \"-1\"",
        ),
        (
            "limit=abc",
            "limit",
            "must be a non-negative integer, got \"abc\"",
        ),
        (
            "offset=-5",
            "offset",
            "must be a non-negative integer, got \"-5\"",
        ),
        (
            "limit=10001",
            "limit",
            "must be at most 10000 (api.max_page_limit), got 10001",
        ),
        ("columns=", "columns", "must name at least one column"),
        ("columns=a,a", "columns", "names column \"a\" twice"),
    ];
    for (query, field, message) in cases {
        let (status, body) = server.get(&format!("/features/misc/some?{query}")).await?;
        assert_problem(status, &body, 400, "invalid_parameter");
        assert_eq!(
            body["detail"],
            format!("invalid query parameter {field:?}: {message}"),
            "{query}"
        );
        assert_eq!(
            body["errors"],
            json!([{"field": field, "message": message}]),
            "{query}"
        );
    }
    // The largest allowed limit is accepted.
    let (status, body) = server.get("/features/misc/some?limit=10000").await?;
    assert_eq!(status, 200, "body: {body}");
    assert_eq!(body["metadata"]["limit"], 10000);
    Ok(())
}

#[tokio::test]
async fn unknown_column_is_400_unknown_column() -> TestResult {
    let server = TestServer::start()?;
    server.save("misc", "some", numbered(3)).await?;
    let (status, body) = server
        .get("/features/misc/some?columns=score,nope,missing")
        .await?;
    assert_problem(status, &body, 400, "unknown_column");
    assert_eq!(
        body["detail"],
        r#"unknown column(s) ["nope", "missing"]; the table has ["entity_id", "score"]"#
    );
    assert_eq!(
        body["errors"],
        json!([{"field": "columns", "message": "unknown column(s): nope, missing"}])
    );
    Ok(())
}

#[tokio::test]
async fn missing_table_is_404_table_not_found() -> TestResult {
    let server = TestServer::start()?;
    for path in [
        "/features/user/ghost",
        "/features/user/ghost/info",
        "/features/misc/ghost?limit=0",
    ] {
        let (status, body) = server.get(path).await?;
        assert_problem(status, &body, 404, "table_not_found");
        assert_eq!(body["detail"], r#"table "ghost" not found"#, "{path}");
    }
    let (status, body) = server.delete("/features/user/ghost").await?;
    assert_problem(status, &body, 404, "table_not_found");
    Ok(())
}

#[tokio::test]
async fn table_fetched_under_the_wrong_group_is_404_saying_where_it_is() -> TestResult {
    let server = TestServer::start()?;
    server.save("user", "profile", numbered(2)).await?;
    for path in [
        "/features/content/profile",
        "/features/content/profile/info",
    ] {
        let (status, body) = server.get(path).await?;
        assert_problem(status, &body, 404, "table_not_found");
        assert_eq!(
            body["detail"], r#"table "profile" not found; it is in group "user""#,
            "{path}"
        );
    }
    let (status, body) = server.delete("/features/misc/profile").await?;
    assert_problem(status, &body, 404, "table_not_found");
    // And the table is still there.
    let (status, _) = server.get("/features/user/profile").await?;
    assert_eq!(status, 200);
    Ok(())
}

#[tokio::test]
async fn same_name_in_another_group_is_409_table_name_conflict() -> TestResult {
    let server = TestServer::start()?;
    server.save("user", "profile", numbered(2)).await?;
    let (status, body) = server
        .post("/features/content/profile", &numbered(5))
        .await?;
    assert_problem(status, &body, 409, "table_name_conflict");
    assert_eq!(
        body["detail"],
        r#"table "profile" already exists in group "user"; table names are unique across groups"#
    );
    assert!(
        !server
            .root()
            .join("features/content/profile.parquet")
            .exists()
    );
    let (status, page) = server.get("/features/user/profile").await?;
    assert_eq!(status, 200);
    assert_eq!(page["metadata"]["total_rows"], 2);
    assert_eq!(page["metadata"]["version"], 1);
    Ok(())
}

#[tokio::test]
async fn empty_records_is_422_invalid_body_on_records() -> TestResult {
    let server = TestServer::start()?;
    let (status, body) = server
        .post("/features/user/x", &json!({"records": []}))
        .await?;
    assert_problem(status, &body, 422, "invalid_body");
    assert_eq!(
        body["errors"],
        json!([{"field": "records", "message": "must contain at least one record"}])
    );
    assert!(!server.root().join("features/user/x.parquet").exists());
    Ok(())
}

#[tokio::test]
async fn body_without_records_or_with_unknown_fields_is_422_invalid_body() -> TestResult {
    let server = TestServer::start()?;
    for (body, mentions) in [
        (json!({}), "records"),
        (json!({"entity_key": ["id"]}), "records"),
        (json!({"records": [{"a": 1}], "extra": 1}), "extra"),
        (json!({"records": {"a": 1}}), "records"),
        (json!({"records": [{"a": 1}, 3]}), "record 1"),
        (json!(3), "SaveFeaturesRequest"),
    ] {
        let (status, problem) = server.post("/features/user/x", &body).await?;
        assert_problem(status, &problem, 422, "invalid_body");
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(mentions),
            "{body}: detail {detail:?} should mention {mentions:?}"
        );
    }
    assert!(!server.root().join("features/user/x.parquet").exists());
    Ok(())
}

#[tokio::test]
async fn mixed_types_in_a_column_is_422_naming_the_first_offending_row() -> TestResult {
    let server = TestServer::start()?;
    let (status, body) = server
        .post(
            "/features/user/x",
            &json!({"records": [
                {"id": 1, "x": 1},
                {"id": 2, "x": 2.5},
                {"id": 3, "x": "three"},
                {"id": 4, "x": "four"},
            ]}),
        )
        .await?;
    assert_problem(status, &body, 422, "invalid_records");
    let message = r#"column "x", row 2: expected a number like the rows before it, found a string"#;
    assert_eq!(body["detail"], message);
    assert_eq!(
        body["errors"],
        json!([{"field": "records[2].x", "message": message}])
    );

    let (status, body) = server
        .post(
            "/features/user/x",
            &json!({"records": [{"flag": true}, {"flag": null}, {"flag": 0}]}),
        )
        .await?;
    assert_problem(status, &body, 422, "invalid_records");
    assert_eq!(body["errors"][0]["field"], "records[2].flag");

    let (status, body) = server
        .post(
            "/features/user/x",
            &json!({"records": [{"nested": 1}, {"nested": {"a": 1}}]}),
        )
        .await?;
    assert_problem(status, &body, 422, "invalid_records");
    assert_eq!(body["errors"][0]["field"], "records[1].nested");
    assert!(!server.root().join("features/user/x.parquet").exists());
    Ok(())
}

#[tokio::test]
async fn bad_timestamp_in_the_timestamp_field_is_422_naming_its_row() -> TestResult {
    let server = TestServer::start()?;
    let (status, body) = server
        .post(
            "/features/user/x",
            &json!({"records": [
                {"event_timestamp": "2025-06-01T10:00:00Z"},
                {"event_timestamp": "yesterday"},
            ]}),
        )
        .await?;
    assert_problem(status, &body, 422, "invalid_records");
    assert_eq!(body["errors"][0]["field"], "records[1].event_timestamp");
    Ok(())
}

#[tokio::test]
async fn malformed_json_is_400_malformed_json() -> TestResult {
    let server = TestServer::start()?;
    for raw in [r#"{"records": [{"a": 1}"#, r#"{"records": [}"#, "not json"] {
        let (status, body) = post_raw(&server, "/features/user/x", "application/json", raw).await?;
        assert_problem(status, &body, 400, "malformed_json");
        let detail = body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.starts_with("the request body is not valid JSON: "),
            "{raw}: {detail}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn wrong_content_type_is_415_unsupported_media_type() -> TestResult {
    let server = TestServer::start()?;
    let json_text = r#"{"records": [{"a": 1}]}"#;
    let (status, body) = post_raw(&server, "/features/user/x", "text/plain", json_text).await?;
    assert_problem(status, &body, 415, "unsupported_media_type");
    let (status, body) = post_raw(&server, "/features/batch", "text/plain", "{}").await?;
    assert_problem(status, &body, 415, "unsupported_media_type");
    assert!(!server.root().join("features/user/x.parquet").exists());
    Ok(())
}

#[tokio::test]
async fn body_over_the_limit_is_413_payload_too_large() -> TestResult {
    let server = TestServer::start_with(|c| c.api.max_body_mb = 1)?;
    let records: Vec<Value> = (0..40_000)
        .map(|i| json!({"entity_id": i, "padding": "0123456789012345678901234567890123456789"}))
        .collect();
    let body = serde_json::to_vec(&json!({ "records": records }))?;
    assert!(body.len() > 2 * 1024 * 1024, "{} bytes", body.len());
    let (status, problem) = post_raw(&server, "/features/user/x", "application/json", body).await?;
    assert_problem(status, &problem, 413, "payload_too_large");
    assert_eq!(
        problem["detail"],
        "the request body exceeds the limit of 1048576 bytes (api.max_body_mb)"
    );
    assert!(!server.root().join("features/user/x.parquet").exists());

    // A body under the limit still goes through.
    let (status, body) = server.post("/features/user/x", &numbered(10)).await?;
    assert_eq!(status, 201, "body: {body}");
    Ok(())
}

#[tokio::test]
async fn invalid_group_or_name_is_400_invalid_name() -> TestResult {
    let server = TestServer::start()?;
    let long = "a".repeat(129);
    let cases = [
        (
            "/features/user/bad.name".to_owned(),
            "name",
            r#"table name "bad.name" contains '.'; only ASCII letters, digits, '_' and '-' are allowed"#.to_owned(),
        ),
        (
            format!("/features/user/{long}"),
            "name",
            "table name is 129 bytes long; the limit is 128".to_owned(),
        ),
        (
            "/features/bad.group/x".to_owned(),
            "group",
            r#"group name "bad.group" contains '.'; only ASCII letters, digits, '_' and '-' are allowed"#.to_owned(),
        ),
        (
            "/features/user/a%20b".to_owned(),
            "name",
            r#"table name "a b" contains ' '; only ASCII letters, digits, '_' and '-' are allowed"#.to_owned(),
        ),
    ];
    for (path, field, message) in &cases {
        let (status, body) = server.post(path, &numbered(1)).await?;
        assert_problem(status, &body, 400, "invalid_name");
        assert_eq!(body["detail"], *message, "POST {path}");
        assert_eq!(
            body["errors"],
            json!([{"field": field, "message": message}]),
            "POST {path}"
        );
        for read_path in [path.clone(), format!("{path}/info")] {
            let (status, body) = server.get(&read_path).await?;
            assert_problem(status, &body, 400, "invalid_name");
            assert_eq!(body["errors"][0]["field"], *field, "GET {read_path}");
        }
        let (status, body) = server.delete(path).await?;
        assert_problem(status, &body, 400, "invalid_name");
    }
    assert_eq!(
        server.files(),
        Vec::<std::path::PathBuf>::new(),
        "nothing was written"
    );

    // 128 characters is the limit, inclusive.
    let longest = "b".repeat(128);
    let (status, body) = server
        .post(&format!("/features/user/{longest}"), &numbered(1))
        .await?;
    assert_eq!(status, 201, "body: {body}");
    Ok(())
}

#[tokio::test]
async fn delete_removes_the_table_and_recreating_continues_the_version() -> TestResult {
    let server = TestServer::start()?;
    server.save("user", "x", numbered(2)).await?;
    server.save("user", "x", numbered(3)).await?;
    let (status, body) = server.delete("/features/user/x").await?;
    assert_eq!(status, 200, "body: {body}");
    assert_eq!(
        body,
        json!({"message": "table user/x deleted", "deleted_version": 2,
               "feature_views": [], "feature_services": []})
    );
    assert!(!server.root().join("features/user/x.parquet").exists());

    let (status, body) = server.get("/features/user/x").await?;
    assert_problem(status, &body, 404, "table_not_found");
    let (status, body) = server.get("/features/user/x/info").await?;
    assert_problem(status, &body, 404, "table_not_found");
    let (status, body) = server.delete("/features/user/x").await?;
    assert_problem(status, &body, 404, "table_not_found");
    let (_, listing) = server.get("/features").await?;
    assert_eq!(listing["table_count"], 0);

    // The deletion is version 3 of the table's history, so the new table starts at 4.
    let (status, body) = server.post("/features/user/x", &numbered(4)).await?;
    assert_eq!(status, 201, "body: {body}");
    assert_eq!(body["version"], 4);
    assert_eq!(body["message"], "table user/x created with 4 rows");
    let (_, page) = server.get("/features/user/x").await?;
    assert_eq!(page["metadata"]["version"], 4);
    assert_eq!(page["metadata"]["total_rows"], 4);
    Ok(())
}

#[tokio::test]
async fn pages_that_span_row_groups_and_data_pages_return_the_right_rows() -> TestResult {
    let server = TestServer::start_with(|c| {
        c.storage.row_group_rows = 100;
        c.storage.page_rows = 10;
    })?;
    server.save("misc", "grouped", numbered(1000)).await?;
    let (_, info) = server.get("/features/misc/grouped/info").await?;
    assert_eq!(info["storage_info"]["row_group_count"], 10);
    for (offset, limit) in [
        (0, 1000),
        (95, 10),
        (100, 100),
        (250, 300),
        (399, 2),
        (995, 10),
        (999, 1),
    ] {
        let (status, body) = server
            .get(&format!(
                "/features/misc/grouped?offset={offset}&limit={limit}&columns=score,entity_id"
            ))
            .await?;
        assert_eq!(status, 200, "body: {body}");
        let end = (offset + limit).min(1000);
        let expected: Vec<Value> = (offset..end)
            .map(|i| json!({"score": i as f64 + 0.5, "entity_id": i}))
            .collect();
        assert_eq!(
            body["data"],
            json!(expected),
            "offset {offset} limit {limit}"
        );
        let next = if end < 1000 { json!(end) } else { Value::Null };
        assert_eq!(body["metadata"]["next_offset"], next);
        assert_eq!(body["metadata"]["columns"], json!(["score", "entity_id"]));
    }
    Ok(())
}

#[tokio::test]
async fn too_many_records_or_columns_is_422_invalid_body() -> TestResult {
    let server = TestServer::start_with(|c| {
        c.api.max_records_per_write = 3;
        c.api.max_columns = 2;
    })?;
    let (status, body) = server.post("/features/misc/t", &numbered(4)).await?;
    assert_problem(status, &body, 422, "invalid_body");
    assert_eq!(
        body["errors"],
        json!([{"field": "records", "message": "4 records is more than api.max_records_per_write (3)"}])
    );
    let (status, body) = server
        .post(
            "/features/misc/t",
            &json!({"records": [{"a": 1, "b": 2}, {"c": 3}]}),
        )
        .await?;
    assert_problem(status, &body, 422, "invalid_body");
    assert_eq!(
        body["errors"],
        json!([{"field": "records", "message": "3 columns is more than api.max_columns (2)"}])
    );
    let (status, body) = server.post("/features/misc/t", &numbered(3)).await?;
    assert_eq!(status, 201, "at the limits: {body}");
    Ok(())
}

#[tokio::test]
async fn records_without_any_field_are_422_and_write_nothing() -> TestResult {
    let server = TestServer::start()?;
    for body in [json!({"records": [{}]}), json!({"records": [{}, {}]})] {
        let (status, problem) = server.post("/features/misc/t", &body).await?;
        assert_problem(status, &problem, 422, "invalid_body");
        assert_eq!(
            problem["errors"],
            json!([{"field": "records", "message": "the records have no fields; a table needs at least one column"}])
        );
    }
    assert_eq!(server.files(), Vec::<std::path::PathBuf>::new());
    Ok(())
}

#[tokio::test]
async fn integers_that_cannot_be_stored_exactly_are_422() -> TestResult {
    let server = TestServer::start()?;
    let (status, body) = server
        .post(
            "/features/misc/t",
            &json!({"records": [{"x": 1}, {"x": u64::MAX}]}),
        )
        .await?;
    assert_problem(status, &body, 422, "invalid_records");
    assert_eq!(body["errors"][0]["field"], "records[1].x");
    let (status, body) = server
        .post(
            "/features/misc/t",
            &json!({"records": [{"x": 0.5}, {"x": 1}, {"x": 9_007_199_254_740_993_i64}]}),
        )
        .await?;
    assert_problem(status, &body, 422, "invalid_records");
    assert_eq!(body["errors"][0]["field"], "records[2].x");
    // The extremes of i64 are fine.
    let records = json!([{"x": i64::MIN}, {"x": i64::MAX}]);
    server
        .save("misc", "t", json!({"records": records}))
        .await?;
    let (_, page) = server.get("/features/misc/t").await?;
    assert_eq!(page["data"], records);
    Ok(())
}

#[tokio::test]
async fn a_column_of_only_nulls_reads_back_as_nulls() -> TestResult {
    let server = TestServer::start()?;
    server
        .save(
            "misc",
            "empty_col",
            json!({"records": [{"a": 1, "nothing": null}, {"a": 2}]}),
        )
        .await?;
    let (status, body) = server.get("/features/misc/empty_col").await?;
    assert_eq!(status, 200, "body: {body}");
    assert_eq!(
        body["data"],
        json!([{"a": 1, "nothing": null}, {"a": 2, "nothing": null}])
    );
    assert_eq!(
        body["metadata"]["dtypes"],
        json!({"a": "int64", "nothing": "null"})
    );
    Ok(())
}

#[tokio::test]
async fn a_group_other_than_the_defaults_is_created_on_first_save() -> TestResult {
    let server = TestServer::start()?;
    let (status, body) = server
        .post("/features/experiments/exp_1", &numbered(2))
        .await?;
    assert_eq!(status, 201, "body: {body}");
    assert_eq!(body["file_path"], "features/experiments/exp_1.parquet");
    let (_, listing) = server.get("/features").await?;
    assert_eq!(listing["groups"]["experiments"][0]["name"], "exp_1");
    let (status, page) = server.get("/features/experiments/exp_1").await?;
    assert_eq!(status, 200, "body: {page}");
    assert_eq!(page["metadata"]["total_rows"], 2);
    Ok(())
}

#[tokio::test]

async fn recreating_a_deleted_table_in_another_group_continues_the_version() -> TestResult {
    let server = TestServer::start()?;
    server.save("user", "moving", numbered(1)).await?;
    server.save("user", "moving", numbered(2)).await?;
    let (status, body) = server.delete("/features/user/moving").await?;
    assert_eq!(status, 200, "body: {body}");
    let (status, body) = server
        .post("/features/content/moving", &numbered(3))
        .await?;
    assert_eq!(status, 201, "body: {body}");
    // Versions 1 and 2 were written, 3 was the deletion.
    assert_eq!(body["version"], 4, "a name's versions never repeat: {body}");
    Ok(())
}

#[tokio::test]
async fn the_demos_ages_and_ids_are_stored_as_signed_integers() -> TestResult {
    let dir = tempfile::tempdir()?;
    let root = dir.path().to_str().ok_or("a UTF-8 temporary path")?;
    crate::common::featurestore_ok(&[
        "demo",
        "--data-dir",
        root,
        "--users",
        "300",
        "--movies",
        "10",
        "--interactions",
        "100",
        "--seed",
        "5",
    ])?;
    let server = TestServer::start_on(dir, |_| {})?;
    let types = stored_types(&server, "/features/user/user_profile/info").await?;
    let of = |column: &str| {
        types
            .iter()
            .find(|(name, _)| name == column)
            .map(|(_, t)| t.as_str())
    };
    // Ages 18 to 75: int8, so `age - 40` in pandas or NumPy cannot wrap around.
    assert_eq!(of("age"), Some("int8"), "{types:?}");
    assert_eq!(of("user_id"), Some("int16"), "{types:?}");
    assert!(
        types.iter().all(|(_, t)| !t.starts_with("uint")),
        "{types:?}"
    );
    Ok(())
}

// The same tests on the s3 kind (those that look at files under the data root have none).
crate::on_s3_too!(
    save_without_entity_or_timestamp_columns_declares_none,
    page_defaults_to_1000_rows_and_pages_with_limit_and_offset,
    limit_zero_returns_no_rows_but_the_total,
    columns_are_returned_in_the_order_asked,
    dtypes_are_logical_even_when_stored_narrower,
    integers_are_stored_in_the_smallest_signed_type_that_holds_them,
    integer_downcast_unsigned_keeps_the_unsigned_rule_and_never_keeps_int64,
    floats_read_back_exactly_as_posted_whether_or_not_f32_holds_them,
    timestamps_with_offsets_read_back_in_utc,
    nulls_in_integer_columns_read_back_as_null,
    bad_limit_or_offset_is_400_invalid_parameter_naming_it,
    unknown_column_is_400_unknown_column,
    missing_table_is_404_table_not_found,
    table_fetched_under_the_wrong_group_is_404_saying_where_it_is,
    same_name_in_another_group_is_409_table_name_conflict,
    empty_records_is_422_invalid_body_on_records,
    body_without_records_or_with_unknown_fields_is_422_invalid_body,
    mixed_types_in_a_column_is_422_naming_the_first_offending_row,
    bad_timestamp_in_the_timestamp_field_is_422_naming_its_row,
    malformed_json_is_400_malformed_json,
    wrong_content_type_is_415_unsupported_media_type,
    body_over_the_limit_is_413_payload_too_large,
    invalid_group_or_name_is_400_invalid_name,
    delete_removes_the_table_and_recreating_continues_the_version,
    pages_that_span_row_groups_and_data_pages_return_the_right_rows,
    too_many_records_or_columns_is_422_invalid_body,
    records_without_any_field_are_422_and_write_nothing,
    integers_that_cannot_be_stored_exactly_are_422,
    a_column_of_only_nulls_reads_back_as_nulls,
    a_group_other_than_the_defaults_is_created_on_first_save,
    recreating_a_deleted_table_in_another_group_continues_the_version,
    the_demos_ages_and_ids_are_stored_as_signed_integers,
);
