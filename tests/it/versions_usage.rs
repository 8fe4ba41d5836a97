//! Table history as its costs and uses show: `POST /features/batch` pinned with
//! `table_versions` and `as_of`, the bytes history takes (`/info`, `/performance`,
//! `/metrics`), a version swept past retention (410), the background sweep, and the token
//! each write records. The helpers and the rest are in `versions.rs`.

use std::time::Duration;

use chrono::Utc;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common::{TestResult, assert_problem};
use crate::versions::{
    T, get_ok, held_folds, no_history, post_ok, rfc3339, rows_at, scores, versions,
};

#[tokio::test]
async fn batch_reads_each_table_at_its_pinned_version_and_states_the_versions_read() -> TestResult {
    let server = held_folds()?;
    server.save("user", "scores", scores(&[(1, 10)])).await?;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let between = rfc3339(Utc::now());
    tokio::time::sleep(Duration::from_millis(20)).await;
    server.save("user", "scores", scores(&[(1, 11)])).await?;
    server
        .save(
            "misc",
            "other",
            json!({"entity_key": ["user_id"], "records": [{"user_id": 1, "x": 5}]}),
        )
        .await?;
    let score = |answer: &Value| answer["features"]["scores"][0]["score"].clone();

    let pinned = post_ok(
        &server,
        "/features/batch",
        json!({"feature_names": ["scores", "other"], "table_versions": {"scores": 1}}),
        200,
    )
    .await?;
    assert_eq!(score(&pinned), 10);
    assert_eq!(
        pinned["metadata"]["table_versions"],
        json!({"scores": 1, "other": 1})
    );
    let current = post_ok(
        &server,
        "/features/batch",
        json!({"feature_names": ["scores"]}),
        200,
    )
    .await?;
    assert_eq!(score(&current), 11);
    assert_eq!(current["metadata"]["table_versions"], json!({"scores": 2}));
    let as_of = post_ok(
        &server,
        "/features/batch",
        json!({"feature_names": ["scores"], "as_of": between}),
        200,
    )
    .await?;
    assert_eq!(score(&as_of), 10);

    let (status, body) = server
        .post(
            "/features/batch",
            &json!({"feature_names": ["scores"], "table_versions": {"other": 1}}),
        )
        .await?;
    assert_problem(status, &body, 422, "invalid_body");
    assert_eq!(body["errors"][0]["field"], "table_versions.other");
    let (status, body) = server
        .post(
            "/features/batch",
            &json!({"feature_names": ["scores"], "table_versions": {"scores": 9}}),
        )
        .await?;
    assert_problem(status, &body, 404, "table_version_not_found");
    let (status, body) = server
        .post(
            "/features/batch",
            &json!({"feature_names": ["scores"], "as_of": "soon"}),
        )
        .await?;
    assert_problem(status, &body, 422, "invalid_body");
    Ok(())
}

#[tokio::test]
async fn a_swept_version_is_410_history_bytes_fall_and_new_writes_keep_working() -> TestResult {
    let server = no_history()?;
    server
        .save("user", "scores", scores(&[(1, 10), (2, 20)]))
        .await?;
    server.save("user", "scores", scores(&[(1, 11)])).await?;
    let info = get_ok(&server, &format!("{T}/info")).await?;
    let kept = info["storage_info"]["history_bytes"]
        .as_u64()
        .ok_or("history_bytes")?;
    assert!(
        kept > 200,
        "the replaced file is kept until the sweep: {info}"
    );
    let performance = get_ok(&server, "/performance").await?;
    assert!(performance["storage_info"]["history_bytes"].as_u64() >= Some(kept));
    let metrics = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let total = gauge(&metrics, "featurestore_history_bytes ")?;
    assert!(total >= kept as f64, "{total} < {kept}");
    let per_table = gauge(
        &metrics,
        "featurestore_table_history_bytes{group=\"user\",table=\"scores\"} ",
    )?;
    assert_eq!(per_table, kept as f64);

    server.store.sweep_history().await?;
    let (status, body) = server.get(&format!("{T}?version=1")).await?;
    assert_problem(status, &body, 410, "table_version_expired");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("the only retained version is 2")),
        "{body}"
    );
    let (status, body) = server
        .post(&format!("{T}/restore"), &json!({"version": 1}))
        .await?;
    assert_problem(status, &body, 410, "table_version_expired");
    let (status, body) = server.get(&format!("{T}/diff")).await?;
    assert_problem(status, &body, 404, "table_version_not_found");
    let info = get_ok(&server, &format!("{T}/info")).await?;
    let left = info["storage_info"]["history_bytes"]
        .as_u64()
        .ok_or("history_bytes")?;
    // What is left is the one-line version log of the current version (see the report).
    assert!(
        left < 1024 && left < kept,
        "{left} bytes left of {kept}: {info}"
    );

    server.save("user", "scores", scores(&[(1, 12)])).await?;
    assert_eq!(rows_at(&server, "version=2").await?, [(1, 11)]);
    assert_eq!(rows_at(&server, "").await?, [(1, 12)]);
    let (listed, _) = versions(&server).await?;
    assert_eq!(
        listed.iter().map(|(v, _, _)| *v).collect::<Vec<_>>(),
        [3, 2]
    );
    Ok(())
}

/// The value of the metric line starting with `prefix`.
fn gauge(metrics: &str, prefix: &str) -> TestResult<f64> {
    let line = metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .ok_or_else(|| format!("no {prefix:?} in\n{metrics}"))?;
    Ok(line[prefix.len()..].trim().parse()?)
}

#[tokio::test]
async fn the_background_sweep_frees_history_past_retention() -> TestResult {
    let server = no_history()?;
    server.save("user", "scores", scores(&[(1, 10)])).await?;
    server.save("user", "scores", scores(&[(1, 11)])).await?;
    let _sweep = server
        .store
        .start_history_sweep(Duration::from_millis(50))
        .ok_or("the sweep thread")?;
    let started = std::time::Instant::now();
    loop {
        let (status, body) = server.get(&format!("{T}?version=1")).await?;
        if status == 410 {
            assert_problem(status, &body, 410, "table_version_expired");
            break;
        }
        assert_eq!(status, 200, "{body}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "not swept within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[tokio::test]
async fn writes_record_the_token_that_made_them() -> TestResult {
    let (server, writer) = crate::auth::secured_server().await?;
    let call = |method: Method, path: &'static str, body: Option<Value>| {
        crate::auth::call(&server, method, path, Some(writer), body)
    };
    let (status, body) = call(
        Method::POST,
        "/push",
        Some(
            json!({"push_source_name": "profile_push", "to": "offline", "df": {
            "user_id": [3], "age": [40], "event_timestamp": ["2026-11-02T00:00:00Z"]}}),
        ),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(Method::GET, "/features/user/user_profile/versions", None).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["versions"][0]["op"], "append");
    assert_eq!(body["versions"][0]["written_by"], "loader");
    assert_eq!(body["versions"][1]["op"], "create");
    assert_eq!(body["versions"][1]["written_by"], "loader");
    let (status, body) = call(
        Method::POST,
        "/features/user/user_profile/restore",
        Some(json!({"version": 1})),
    )
    .await?;
    assert_eq!(status, 201, "{body}");
    let (_, body) = call(Method::GET, "/features/user/user_profile/versions", None).await?;
    assert_eq!(body["versions"][0]["written_by"], "loader");
    Ok(())
}

// The tests above, on the s3 kind too.
// The two sweep tests have no twin here: the s3 kind keeps an expired version's
// objects for an hour of grace (a replica may be reading them), so they would wait an
// hour; `history_s3` crosses that boundary with an injected clock instead.
crate::on_s3_too!(
    batch_reads_each_table_at_its_pinned_version_and_states_the_versions_read,
    writes_record_the_token_that_made_them,
);
