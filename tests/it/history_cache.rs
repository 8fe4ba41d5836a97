//! Kept view histories (`cache.history_max_mb`) as a client sees them: a second training-data
//! request on the same table version is answered from the history the first one built
//! (`/performance` and `/metrics` count the hit), concurrent cold requests build it once, a
//! write is answered from the new version while a pinned request still gets its own version's
//! rows, the history sweep drops histories of versions it forgot, a history larger than the
//! bound answers but is not kept, the window mode reads the kept history, and with the cache
//! off every answer is the same as with it on.

use serde_json::{Value, json};

use crate::common::instants::*;
use crate::common::{TestResult, TestServer, assert_problem};

const HISTORICAL: &str = "/get-historical-features";

fn registry_document() -> Value {
    json!({
        "entities": [{"name": "user_id", "value_type": "int64"}],
        "feature_views": [
            {"name": "user_profile", "group": "user", "entities": ["user_id"],
             "timestamp_field": "event_timestamp", "ttl_seconds": 3 * 86_400},
        ],
    })
}

/// `user_profile` with `ages` for users 1, 2 and 3 (two days before T0; user 1 also an hour
/// before T0 with age + 1), then the registry.
async fn populate(server: &TestServer, ages: [i64; 3]) -> TestResult {
    write_profile(server, ages).await?;
    server.apply(&registry_document()).await?;
    Ok(())
}

async fn write_profile(server: &TestServer, ages: [i64; 3]) -> TestResult {
    server
        .save(
            "user",
            "user_profile",
            json!({"entity_key": ["user_id"], "records": [
                {"user_id": 1, "age": ages[0], "avg_rating": 3.5, "event_timestamp": T0_MINUS_2D},
                {"user_id": 2, "age": ages[1], "avg_rating": 4.0, "event_timestamp": T0_MINUS_2D},
                {"user_id": 3, "age": ages[2], "avg_rating": 2.5, "event_timestamp": T0_MINUS_2D},
                {"user_id": 1, "age": ages[0] + 1, "avg_rating": 3.6, "event_timestamp": T0_MINUS_1H},
            ]}),
        )
        .await?;
    Ok(())
}

fn request(features: &[&str], extra: Value) -> Value {
    let mut body = json!({
        "features": features,
        "entities": {"user_id": [1, 2, 3, 4, 1], "event_timestamp": [T0, T0, T0, T0, T0_MINUS_1D]},
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    body
}

async fn answer(server: &TestServer, body: &Value) -> TestResult<Value> {
    let (status, answer) = server.post(HISTORICAL, body).await?;
    if status != 200 {
        return Err(format!("{body} answered {status}: {answer}").into());
    }
    Ok(answer)
}

/// The `age` column of an answer, row by row.
fn ages(answer: &Value) -> Vec<Value> {
    answer["rows"]
        .as_array()
        .map(|rows| rows.iter().map(|r| r["age"].clone()).collect())
        .unwrap_or_default()
}

/// `/performance`'s `history_cache_stats`.
async fn history_stats(server: &TestServer) -> TestResult<Value> {
    let (status, report) = server.get("/performance").await?;
    assert_eq!(status, 200, "{report}");
    Ok(report["history_cache_stats"].clone())
}

#[tokio::test]
async fn a_second_request_on_the_same_version_is_answered_from_the_kept_history() -> TestResult {
    let server = TestServer::start()?;
    populate(&server, [30, 25, 50]).await?;
    let first = answer(&server, &request(&["user_profile:age"], json!({}))).await?;
    assert_eq!(
        ages(&first),
        vec![json!(31), json!(25), json!(50), Value::Null, json!(30)]
    );
    let stats = history_stats(&server).await?;
    assert_eq!(stats["enabled"], true, "{stats}");
    assert_eq!(
        (stats["misses"].clone(), stats["hits"].clone()),
        (json!(1), json!(0))
    );
    assert_eq!(stats["items"], 1, "{stats}");
    assert!(stats["bytes"].as_u64().is_some_and(|b| b > 0), "{stats}");
    assert_eq!(stats["max_bytes"], 512 * 1024 * 1024, "{stats}");

    // Another feature of the same view, other entity rows: the same history serves it.
    let second = answer(
        &server,
        &json!({"features": ["user_profile:avg_rating"],
                "entities": {"user_id": [3], "event_timestamp": [T0]}}),
    )
    .await?;
    assert_eq!(
        second["rows"],
        json!([{"user_id": 3, "event_timestamp": T0, "avg_rating": 2.5}])
    );
    let stats = history_stats(&server).await?;
    assert_eq!(
        (stats["misses"].clone(), stats["hits"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(stats["items"], 1, "{stats}");
    Ok(())
}

#[tokio::test]
async fn concurrent_cold_requests_build_the_history_once() -> TestResult {
    let server = TestServer::start()?;
    populate(&server, [30, 25, 50]).await?;
    let body = request(&["user_profile:age", "user_profile:avg_rating"], json!({}));
    let requests: Vec<_> = (0..8)
        .map(|_| {
            let (client, url, body) = (server.client.clone(), server.url(HISTORICAL), body.clone());
            tokio::spawn(async move {
                let response = client.post(url).json(&body).send().await?;
                assert_eq!(response.status(), 200);
                response.json::<Value>().await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for request in requests {
        answers.push(request.await??);
    }
    assert!(answers.iter().all(|a| a == &answers[0]), "answers differ");
    let stats = history_stats(&server).await?;
    assert_eq!(
        (stats["misses"].clone(), stats["hits"].clone()),
        (json!(1), json!(7)),
        "{stats}"
    );
    assert_eq!(stats["items"], 1, "{stats}");
    Ok(())
}

#[tokio::test]
async fn a_write_is_answered_from_the_new_version_and_a_pin_from_its_own() -> TestResult {
    let server = TestServer::start()?;
    populate(&server, [30, 25, 50]).await?;
    let before = answer(&server, &request(&["user_profile:age"], json!({}))).await?;
    assert_eq!(
        before["metadata"]["table_versions"],
        json!({"user_profile": 1})
    );
    write_profile(&server, [60, 65, 70]).await?;

    let after = answer(&server, &request(&["user_profile:age"], json!({}))).await?;
    assert_eq!(
        after["metadata"]["table_versions"],
        json!({"user_profile": 2})
    );
    assert_eq!(
        ages(&after),
        vec![json!(61), json!(65), json!(70), Value::Null, json!(60)]
    );
    let pinned = answer(
        &server,
        &request(
            &["user_profile:age"],
            json!({"table_versions": {"user_profile": 1}}),
        ),
    )
    .await?;
    assert_eq!(ages(&pinned), ages(&before));
    // Version 1 is still retained (a week by default), so its history was still kept and
    // answered the pinned request; both are kept.
    let stats = history_stats(&server).await?;
    assert_eq!(stats["items"], 2, "{stats}");
    assert_eq!(
        (stats["misses"].clone(), stats["hits"].clone()),
        (json!(2), json!(1)),
        "{stats}"
    );
    Ok(())
}

#[tokio::test]
async fn the_history_sweep_drops_histories_of_versions_it_forgot() -> TestResult {
    let server = TestServer::start_with(|c| {
        c.storage.fold_delay_ms = 60_000;
        c.storage.history.keep_days = 0.0;
        c.storage.history.keep_min = 1;
    })?;
    populate(&server, [30, 25, 50]).await?;
    answer(&server, &request(&["user_profile:age"], json!({}))).await?;
    write_profile(&server, [60, 65, 70]).await?;
    let after = answer(&server, &request(&["user_profile:age"], json!({}))).await?;
    assert_eq!(ages(&after)[1], json!(65));

    server.store.sweep_history().await?;
    let stats = history_stats(&server).await?;
    assert_eq!(
        stats["items"], 1,
        "only the current version's history stays: {stats}"
    );
    let (status, body) = server
        .post(
            HISTORICAL,
            &request(
                &["user_profile:age"],
                json!({"table_versions": {"user_profile": 1}}),
            ),
        )
        .await?;
    assert_problem(status, &body, 410, "table_version_expired");
    let again = answer(&server, &request(&["user_profile:age"], json!({}))).await?;
    assert_eq!(again, after);
    assert_eq!(history_stats(&server).await?["hits"], 1);
    Ok(())
}

#[tokio::test]
async fn with_history_max_mb_0_nothing_is_kept_and_every_answer_is_the_same() -> TestResult {
    let kept = TestServer::start()?;
    let off = TestServer::start_with(|c| c.cache.history_max_mb = 0)?;
    let window = json!({"features": ["user_profile:age", "user_profile:avg_rating"],
                        "start": T0_MINUS_3D, "end": T0});
    let bodies = [
        request(&["user_profile:age", "user_profile:avg_rating"], json!({})),
        request(
            &["user_profile:avg_rating"],
            json!({"full_feature_names": true}),
        ),
        window,
    ];
    for server in [&kept, &off] {
        populate(server, [30, 25, 50]).await?;
    }
    for body in &bodies {
        assert_eq!(
            answer(&kept, body).await?,
            answer(&off, body).await?,
            "{body}"
        );
    }
    let stats = history_stats(&off).await?;
    assert_eq!(stats["enabled"], false, "{stats}");
    assert_eq!(stats["items"], 0, "{stats}");
    assert_eq!(stats["hits"], 0, "{stats}");
    let stats = history_stats(&kept).await?;
    assert_eq!(
        (stats["misses"].clone(), stats["hits"].clone()),
        (json!(1), json!(2)),
        "{stats}"
    );
    Ok(())
}

#[tokio::test]
async fn a_window_request_is_answered_from_the_kept_history() -> TestResult {
    let server = TestServer::start()?;
    populate(&server, [30, 25, 50]).await?;
    answer(&server, &request(&["user_profile:age"], json!({}))).await?;
    let window = answer(
        &server,
        &json!({"features": ["user_profile:age"], "start": T0_MINUS_1D, "end": T0}),
    )
    .await?;
    assert_eq!(
        window["rows"],
        json!([{"user_id": 1, "event_timestamp": T0_MINUS_1H, "age": 31}])
    );
    let stats = history_stats(&server).await?;
    assert_eq!(
        (stats["misses"].clone(), stats["hits"].clone()),
        (json!(1), json!(1)),
        "{stats}"
    );
    Ok(())
}

#[tokio::test]
async fn a_history_larger_than_the_bound_is_answered_but_not_kept() -> TestResult {
    let server = TestServer::start_with(|c| c.cache.history_max_mb = 1)?;
    // 60 000 rows of four 8-byte columns: about 2 MiB decoded, twice the bound.
    let records: Vec<Value> = (0..60_000)
        .map(|i| {
            json!({"user_id": i % 1000, "age": i, "avg_rating": 1.5,
                   "event_timestamp": format!("2025-05-{:02}T10:00:00Z", 1 + i / 1000 % 28)})
        })
        .collect();
    server
        .save(
            "user",
            "user_profile",
            json!({"entity_key": ["user_id"], "records": records}),
        )
        .await?;
    server.apply(&registry_document()).await?;
    let body = json!({"features": ["user_profile:age"],
                      "entities": {"user_id": [7, 999],
                                   "event_timestamp": ["2025-05-28T10:00:00Z", "2025-05-01T10:00:00Z"]}});
    for _ in 0..2 {
        let got = answer(&server, &body).await?;
        // User 7 has two rows on May 28 (i = 27 007 and 55 007) and user 999 three on May 1
        // (i = 999, 28 999 and 56 999): equal event times go to the later row.
        assert_eq!(ages(&got), vec![json!(55_007), json!(56_999)], "{got}");
    }
    let stats = history_stats(&server).await?;
    assert_eq!(stats["items"], 0, "{stats}");
    assert_eq!(stats["bytes"], 0, "{stats}");
    assert_eq!(stats["misses"], 2, "{stats}");
    Ok(())
}

#[tokio::test]
async fn metrics_report_the_kept_histories_as_the_history_tier() -> TestResult {
    let server = TestServer::start()?;
    populate(&server, [30, 25, 50]).await?;
    for _ in 0..2 {
        answer(&server, &request(&["user_profile:age"], json!({}))).await?;
    }
    let response = server.client.get(server.url("/metrics")).send().await?;
    let text = response.text().await?;
    for line in [
        "featurestore_cache_hits_total{tier=\"history\"} 1",
        "featurestore_cache_misses_total{tier=\"history\"} 1",
        "featurestore_cache_items{tier=\"history\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    Ok(())
}

/// `user/profile`, keyed by `user_id` with an event timestamp, one row with a null key.
async fn save_profile_table(server: &TestServer) -> TestResult {
    server
        .save(
            "user",
            "profile",
            json!({"entity_key": ["user_id"], "records": [
                {"user_id": 1, "age": 30, "event_timestamp": "2025-06-01T00:00:00Z"},
                {"user_id": 2, "age": 40, "event_timestamp": "2025-06-01T00:00:00Z"},
                {"user_id": 1, "age": 31, "event_timestamp": "2025-06-05T00:00:00Z"},
                {"user_id": 1, "age": 33, "event_timestamp": "2025-06-05T00:00:00Z"},
                {"user_id": 2, "age": 41, "event_timestamp": "2025-06-10T00:00:00Z"},
                {"user_id": 3, "age": 50, "event_timestamp": "2025-06-10T00:00:00Z"},
                {"user_id": null, "age": 99, "event_timestamp": "2025-06-02T00:00:00Z"},
            ]}),
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn batch_timestamp_lookups_are_answered_from_the_tables_kept_history() -> TestResult {
    let kept = TestServer::start()?;
    let off = TestServer::start_with(|c| c.cache.history_max_mb = 0)?;
    for server in [&kept, &off] {
        save_profile_table(server).await?;
    }
    let lookups = [
        json!({"feature_names": ["profile"], "entity_ids": [1], "timestamp": "2025-06-07T00:00:00Z"}),
        json!({"feature_names": ["profile"], "entity_ids": ["2", 3, "03", 9], "timestamp": "2025-06-10T00:00:00Z"}),
        json!({"feature_names": ["profile"], "entity_ids": [{"user_id": 1}, {"user_id": 2}], "timestamp": "2025-06-04T00:00:00Z"}),
        json!({"feature_names": ["profile"], "entity_ids": [], "timestamp": "2025-06-10T00:00:00Z"}),
    ];
    for body in &lookups {
        let (status, from_history) = kept.post("/features/batch", body).await?;
        assert_eq!(status, 200, "{from_history}");
        let (_, scanned) = off.post("/features/batch", body).await?;
        assert_eq!(from_history["features"], scanned["features"], "{body}");
    }
    // Equal event times go to the later row, as the scan does.
    let (_, first) = kept.post("/features/batch", &lookups[0]).await?;
    assert_eq!(
        first["features"]["profile"],
        json!([{"user_id": 1, "age": 33, "event_timestamp": "2025-06-05T00:00:00Z"}])
    );
    let stats = history_stats(&kept).await?;
    assert_eq!(
        (stats["misses"].clone(), stats["hits"].clone()),
        (json!(1), json!(3)),
        "{stats}"
    );
    assert_eq!(stats["items"], 1, "{stats}");

    // Every entity as of an instant: the null key's row is kept, as the scan keeps it.
    let everyone = json!({"feature_names": ["profile"], "timestamp": "2025-06-10T00:00:00Z"});
    let (status, all) = kept.post("/features/batch", &everyone).await?;
    assert_eq!(status, 200, "{all}");
    let (_, scanned) = off.post("/features/batch", &everyone).await?;
    assert_eq!(all["features"], scanned["features"]);
    assert_eq!(
        all["features"]["profile"].as_array().map(Vec::len),
        Some(4),
        "{all}"
    );
    Ok(())
}
