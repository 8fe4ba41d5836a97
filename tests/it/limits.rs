//! The request limits of `[api]`, each at its boundary on every route it applies to: the limit
//! itself passes, one more is the documented 4xx, and a rejected write leaves the data root
//! as it was. (Page `limit`, `max_batch_rows`, `max_historical_json_rows` and the name length
//! are tested at their boundaries beside their routes, in `tables.rs`, `batch.rs`,
//! `historical.rs`.)

use serde_json::{Value, json};

use crate::common::{TestResult, TestServer, assert_problem, read};

const MIB: usize = 1024 * 1024;

/// A table with a view over it (`misc/limited`: `user_id`, `event_timestamp`, `x`).
async fn limited_server(
    tweak: impl FnOnce(&mut featurestore::config::Config),
) -> TestResult<TestServer> {
    let server = TestServer::start_with(tweak)?;
    server
        .save(
            "misc",
            "limited",
            json!({"entity_key": ["user_id"], "records": [
                {"user_id": 1, "x": 1.5, "event_timestamp": "2025-06-01T09:00:00Z"},
            ]}),
        )
        .await?;
    Ok(server)
}

/// POSTs `body` followed by spaces up to exactly `size` bytes (JSON allows trailing
/// whitespace, so the document means the same at any size).
async fn post_padded(
    server: &TestServer,
    path: &str,
    body: &Value,
    size: usize,
) -> TestResult<(u16, Value)> {
    let mut bytes = serde_json::to_vec(body)?;
    assert!(bytes.len() <= size);
    bytes.resize(size, b' ');
    let response = server
        .client
        .post(server.url(path))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(bytes)
        .send()
        .await?;
    read(response).await
}

#[tokio::test]
async fn a_body_of_exactly_max_body_mb_passes_and_one_byte_more_is_413_on_every_route() -> TestResult
{
    let server = limited_server(|c| c.api.max_body_mb = 1).await?;
    let push = json!({"push_source_name": "limited", "to": "offline",
        "df": {"user_id": [2], "x": [2.5], "event_timestamp": ["2025-06-01T09:30:00Z"]}});
    let routes = [
        (
            "/features/misc/other",
            json!({"records": [{"entity_id": 1, "y": 2}]}),
        ),
        (
            "/features/batch",
            json!({"feature_names": ["limited"], "entity_ids": [1]}),
        ),
        (
            "/get-online-features",
            json!({"features": ["limited:x"], "entities": {"user_id": [1]}}),
        ),
        (
            "/get-historical-features",
            json!({"features": ["limited:x"], "entities": {"user_id": [1],
                   "event_timestamp": ["2025-06-01T10:00:00Z"]}}),
        ),
        ("/push", push),
        ("/registry/apply", json!({"entities": []})),
        (
            "/materialize",
            json!({"start_ts": "2025-06-01T00:00:00Z", "end_ts": "2025-06-01T10:00:00Z"}),
        ),
    ];
    for (path, body) in &routes {
        let before = server.files();
        let (status, problem) = post_padded(&server, path, body, MIB + 1).await?;
        assert_problem(status, &problem, 413, "payload_too_large");
        assert_eq!(
            problem["detail"],
            "the request body exceeds the limit of 1048576 bytes (api.max_body_mb)",
            "POST {path}"
        );
        assert_eq!(server.files(), before, "POST {path} wrote nothing");

        let (status, answer) = post_padded(&server, path, body, MIB).await?;
        assert!(
            (200..300).contains(&status),
            "POST {path} at the limit answered {status}: {answer}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_push_of_max_records_per_write_rows_passes_and_one_more_is_422() -> TestResult {
    let server = limited_server(|c| c.api.max_records_per_write = 3).await?;
    let push = |rows: usize| {
        json!({"push_source_name": "limited", "to": "online_and_offline", "df": {
            "user_id": (0..rows).map(|i| i as i64 + 10).collect::<Vec<_>>(),
            "x": vec![0.5; rows],
            "event_timestamp": vec!["2025-06-01T09:30:00Z"; rows],
        }})
    };
    let before = server.files();
    let (status, problem) = server.post("/push", &push(4)).await?;
    assert_problem(status, &problem, 422, "invalid_body");
    assert_eq!(
        problem["errors"],
        json!([{"field": "df", "message": "4 rows is more than api.max_records_per_write (3)"}])
    );
    assert_eq!(server.files(), before, "the rejected push wrote nothing");

    let (status, answer) = server.post("/push", &push(3)).await?;
    assert_eq!(status, 200, "at the limit: {answer}");
    assert_eq!(answer["rows"], 3);
    Ok(())
}

#[tokio::test]
async fn a_push_of_max_columns_columns_passes_and_one_more_is_422() -> TestResult {
    let server = limited_server(|c| c.api.max_columns = 3).await?;
    let mut df = json!({"user_id": [5], "x": [0.5], "event_timestamp": ["2025-06-01T09:30:00Z"]});
    let (status, answer) = server
        .post(
            "/push",
            &json!({"push_source_name": "limited", "df": df.clone()}),
        )
        .await?;
    assert_eq!(status, 200, "at the limit: {answer}");

    df["extra"] = json!([1]);
    let before = server.files();
    let (status, problem) = server
        .post(
            "/push",
            &json!({"push_source_name": "limited", "to": "offline", "df": df}),
        )
        .await?;
    assert_problem(status, &problem, 422, "invalid_body");
    assert_eq!(
        problem["errors"],
        json!([{"field": "df", "message": "4 columns is more than api.max_columns (3)"}])
    );
    assert_eq!(server.files(), before, "the rejected push wrote nothing");
    Ok(())
}

#[tokio::test]
async fn the_default_online_limit_is_10000_entity_rows() -> TestResult {
    let server = limited_server(|_| {}).await?;
    let lookup = |rows: i64| json!({"features": ["limited:x"], "entities": {"user_id": (0..rows).collect::<Vec<_>>()}});
    let (status, answer) = server.post("/get-online-features", &lookup(10_000)).await?;
    assert_eq!(status, 200, "at the limit: {answer}");
    assert_eq!(
        answer["results"][0]["values"].as_array().map(Vec::len),
        Some(10_000)
    );

    let (status, problem) = server.post("/get-online-features", &lookup(10_001)).await?;
    assert_problem(status, &problem, 422, "invalid_body");
    assert_eq!(
        problem["errors"],
        json!([{"field": "entities", "message": "10001 entity rows is more than api.max_online_entity_rows (10000)"}])
    );
    Ok(())
}
