//! Table history over HTTP, as a user sees it: `GET .../versions` after every kind of write
//! (a fold makes none, and the versions it folds keep reading the same rows), pages and
//! `/info` pinned with `?version=` and `?as_of=` (404 before the table existed and after its
//! deletion), `POST .../restore` (content equal to the version
//! restored, undoable, re-creating a deleted table, caches and online serving following),
//! and `GET .../diff` key counts. `versions_usage.rs` has batch lookups pinned to versions,
//! the bytes history takes, retention's 410, the background sweep and the writer's token.
//!
//! Each test runs on the local kind; its twin in `on_s3` runs it on the s3 kind.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

use crate::common::{TestResult, TestServer, assert_problem};

pub(crate) const T: &str = "/features/user/scores";

/// `user/scores` keyed by `user_id`, one row per `(user_id, score)`.
pub(crate) fn scores(rows: &[(i64, i64)]) -> Value {
    let records: Vec<Value> = rows
        .iter()
        .map(|(id, score)| json!({"user_id": id, "score": score, "event_timestamp": "2026-11-01T00:00:00Z"}))
        .collect();
    json!({"entity_key": ["user_id"], "records": records})
}

pub(crate) async fn get_ok(server: &TestServer, path: &str) -> TestResult<Value> {
    let (status, body) = server.get(path).await?;
    if status != 200 {
        return Err(format!("GET {path} answered {status}: {body}").into());
    }
    Ok(body)
}

pub(crate) async fn post_ok(
    server: &TestServer,
    path: &str,
    body: Value,
    expected: u16,
) -> TestResult<Value> {
    let (status, answer) = server.post(path, &body).await?;
    if status != expected {
        return Err(format!("POST {path} {body} answered {status}: {answer}").into());
    }
    Ok(answer)
}

/// The page's rows as `(user_id, score)`, in page order.
pub(crate) fn rows(page: &Value) -> TestResult<Vec<(i64, i64)>> {
    page["data"]
        .as_array()
        .ok_or("data")?
        .iter()
        .map(|r| {
            Ok((
                r["user_id"].as_i64().ok_or("user_id")?,
                r["score"].as_i64().ok_or("score")?,
            ))
        })
        .collect()
}

/// Rows of `user/scores` at `query` (`version=1`, `as_of=...`, or empty for the current).
pub(crate) async fn rows_at(server: &TestServer, query: &str) -> TestResult<Vec<(i64, i64)>> {
    rows(&get_ok(server, &format!("{T}?{query}")).await?)
}

/// The versions list: `(version, op, current)` newest first, and the whole body.
pub(crate) async fn versions(server: &TestServer) -> TestResult<(Vec<(u64, String, bool)>, Value)> {
    let body = get_ok(server, &format!("{T}/versions")).await?;
    let listed = body["versions"]
        .as_array()
        .ok_or("versions")?
        .iter()
        .map(|v| {
            Ok((
                v["version"].as_u64().ok_or("version")?,
                v["op"].as_str().ok_or("op")?.to_owned(),
                v["current"].as_bool().ok_or("current")?,
            ))
        })
        .collect::<TestResult<Vec<_>>>()?;
    Ok((listed, body))
}

/// A server whose history keeps nothing but the current version once swept, with the
/// background fold held off (the tests compact on request).
pub(crate) fn no_history() -> TestResult<TestServer> {
    TestServer::start_with(|c| {
        c.storage.fold_delay_ms = 60_000;
        c.storage.history.keep_days = 0.0;
        c.storage.history.keep_min = 1;
    })
}

pub(crate) fn held_folds() -> TestResult<TestServer> {
    TestServer::start_with(|c| c.storage.fold_delay_ms = 60_000)
}

/// Registers `scores`' view with a push source, so rows can be pushed to it.
pub(crate) async fn push_source(server: &TestServer) -> TestResult {
    server
        .apply(&json!({
            "entities": [{"name": "user_id", "value_type": "int64"}],
            "feature_views": [{"name": "scores", "group": "user", "entities": ["user_id"],
                "timestamp_field": "event_timestamp", "push_source": "scores_push"}],
        }))
        .await?;
    Ok(())
}

pub(crate) async fn push(server: &TestServer, user_id: i64, score: i64) -> TestResult<Value> {
    post_ok(
        server,
        "/push",
        json!({"push_source_name": "scores_push", "to": "offline", "df": {
            "user_id": [user_id], "score": [score], "event_timestamp": ["2026-11-02T00:00:00Z"]}}),
        200,
    )
    .await
}

pub(crate) fn instant(text: &Value) -> TestResult<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(text.as_str().ok_or("an instant")?)?.with_timezone(&Utc))
}

pub(crate) fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[tokio::test]
async fn every_write_is_listed_newest_first_with_its_operation_and_a_fold_adds_none() -> TestResult
{
    let server = held_folds()?;
    server
        .save("user", "scores", scores(&[(1, 10), (2, 20)]))
        .await?;
    let mut wider = scores(&[(1, 11), (2, 21)]);
    wider["records"][0]["segment"] = json!("gold");
    server.save("user", "scores", wider).await?;
    push_source(&server).await?;
    post_ok(
        &server,
        "/push",
        json!({"push_source_name": "scores_push", "to": "offline", "df": {
            "user_id": [3], "score": [30], "segment": [null],
            "event_timestamp": ["2026-11-02T00:00:00Z"]}}),
        200,
    )
    .await?;
    post_ok(&server, &format!("{T}/compact"), json!({}), 200).await?;
    server.delete(T).await?;
    post_ok(&server, &format!("{T}/restore"), json!({"version": 3}), 201).await?;

    let (listed, body) = versions(&server).await?;
    let ops: Vec<&str> = listed.iter().map(|(_, op, _)| op.as_str()).collect();
    assert_eq!(
        ops,
        ["restore", "delete", "append", "replace", "create"],
        "{body}"
    );
    let numbers: Vec<u64> = listed.iter().map(|(v, _, _)| *v).collect();
    assert!(numbers.windows(2).all(|w| w[0] > w[1]), "{numbers:?}");
    assert_eq!(listed.iter().filter(|(_, _, c)| *c).count(), 1);
    assert!(listed[0].2, "the restore is current: {body}");
    assert_eq!(body["current_version"], numbers[0]);
    assert_eq!(body["total_versions"], 5);
    assert_eq!(body["next_offset"], Value::Null);
    let version = |op: &str| -> TestResult<&Value> {
        body["versions"]
            .as_array()
            .ok_or("versions")?
            .iter()
            .find(|v| v["op"] == op)
            .ok_or_else(|| format!("no {op} in {body}").into())
    };
    assert_eq!(version("replace")?["columns_added"], json!(["segment"]));
    assert_eq!(version("append")?["rows"], 3);
    assert_eq!(version("append")?["rows_written"], 1);
    assert!(version("append")?["bytes_written"].as_u64() > Some(0));
    assert_eq!(version("delete")?["rows"], 0);
    assert_eq!(version("restore")?["restored_from"], 3);
    assert_eq!(version("restore")?["rows"], 3);
    assert_eq!(version("create")?["entity_key"], json!(["user_id"]));
    assert!(instant(&version("create")?["became_current"])? <= Utc::now());

    let paged = get_ok(&server, &format!("{T}/versions?limit=2&offset=1")).await?;
    assert_eq!(paged["returned_versions"], 2);
    assert_eq!(paged["next_offset"], 3);
    assert_eq!(paged["versions"][0]["op"], "delete");
    Ok(())
}

#[tokio::test]
async fn versions_before_a_replace_and_a_fold_read_the_same_rows_afterwards() -> TestResult {
    let server = held_folds()?;
    server
        .save("user", "scores", scores(&[(1, 10), (2, 20)]))
        .await?;
    push_source(&server).await?;
    let first = push(&server, 3, 30).await?["offline"]["version"]
        .as_u64()
        .ok_or("v")?;
    let second = push(&server, 4, 40).await?["offline"]["version"]
        .as_u64()
        .ok_or("v")?;
    let before: Vec<Vec<(i64, i64)>> = vec![
        rows_at(&server, "version=1").await?,
        rows_at(&server, &format!("version={first}")).await?,
        rows_at(&server, &format!("version={second}")).await?,
    ];
    assert_eq!(before[1], [(1, 10), (2, 20), (3, 30)]);
    post_ok(&server, &format!("{T}/compact"), json!({}), 200).await?;
    server.save("user", "scores", scores(&[(9, 90)])).await?;
    let after = vec![
        rows_at(&server, "version=1").await?,
        rows_at(&server, &format!("version={first}")).await?,
        rows_at(&server, &format!("version={second}")).await?,
    ];
    assert_eq!(before, after);
    assert_eq!(rows_at(&server, "").await?, [(9, 90)]);
    // A page deep into a folded version, too.
    let page = get_ok(&server, &format!("{T}?version={second}&offset=3&limit=5")).await?;
    assert_eq!(rows(&page)?, [(4, 40)]);
    assert_eq!(page["metadata"]["version"], second);
    assert_eq!(page["metadata"]["total_rows"], 4);
    Ok(())
}

#[tokio::test]
async fn version_and_as_of_pin_pages_and_info_and_say_when_there_is_no_such_version() -> TestResult
{
    let server = held_folds()?;
    server.save("user", "scores", scores(&[(1, 10)])).await?;
    tokio::time::sleep(Duration::from_millis(20)).await;
    server
        .save("user", "scores", scores(&[(1, 11), (2, 21)]))
        .await?;
    let (_, body) = versions(&server).await?;
    let created = instant(&body["versions"][1]["became_current"])?;
    let replaced = instant(&body["versions"][0]["became_current"])?;
    assert!(created < replaced, "{body}");

    assert_eq!(rows_at(&server, "version=1").await?, [(1, 10)]);
    let between = rfc3339(replaced - chrono::Duration::milliseconds(1));
    let page = get_ok(&server, &format!("{T}?as_of={between}")).await?;
    assert_eq!(
        (rows(&page)?, &page["metadata"]["version"]),
        (vec![(1, 10)], &json!(1))
    );
    let now = rfc3339(Utc::now());
    assert_eq!(
        rows_at(&server, &format!("as_of={now}")).await?,
        [(1, 11), (2, 21)]
    );
    let info = get_ok(&server, &format!("{T}/info?version=1")).await?;
    assert_eq!(info["storage_info"]["version"], 1);
    assert_eq!(info["storage_info"]["row_count"], 1);
    let info = get_ok(&server, &format!("{T}/info?as_of={between}")).await?;
    assert_eq!(info["storage_info"]["version"], 1);

    let (status, body) = server.get(&format!("{T}?version=1&as_of={now}")).await?;
    assert_problem(status, &body, 400, "conflicting_parameters");
    let (status, body) = server
        .get(&format!("{T}/info?version=1&as_of={now}"))
        .await?;
    assert_problem(status, &body, 400, "conflicting_parameters");
    let (status, body) = server.get(&format!("{T}?version=x")).await?;
    assert_problem(status, &body, 400, "invalid_parameter");
    let (status, body) = server.get(&format!("{T}?as_of=yesterday")).await?;
    assert_problem(status, &body, 400, "invalid_parameter");
    let (status, body) = server.get(&format!("{T}?version=99")).await?;
    assert_problem(status, &body, 404, "table_version_not_found");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("between 1 and 2")),
        "{body}"
    );
    let before = rfc3339(created - chrono::Duration::seconds(1));
    let (status, body) = server.get(&format!("{T}?as_of={before}")).await?;
    assert_problem(status, &body, 404, "table_version_not_found");

    server.delete(T).await?;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let after_delete = rfc3339(Utc::now());
    let (status, body) = server.get(&format!("{T}?as_of={after_delete}")).await?;
    assert_problem(status, &body, 404, "table_version_not_found");
    // The deleted table's earlier versions still read, in its group only.
    assert_eq!(rows_at(&server, "version=2").await?, [(1, 11), (2, 21)]);
    let (status, body) = server.get("/features/misc/scores?version=2").await?;
    assert_problem(status, &body, 404, "table_not_found");
    Ok(())
}

#[tokio::test]
async fn a_pinned_read_after_a_newer_write_returns_the_old_rows_twice_the_second_from_cache()
-> TestResult {
    let server = held_folds()?;
    server.save("user", "scores", scores(&[(1, 10)])).await?;
    server.save("user", "scores", scores(&[(1, 11)])).await?;
    assert_eq!(rows_at(&server, "").await?, [(1, 11)]);
    let hits = |stats: &Value| stats["memory"]["hits"].as_u64().unwrap_or(0);
    let before = hits(&get_ok(&server, "/cache/stats").await?);
    assert_eq!(rows_at(&server, "version=1").await?, [(1, 10)]);
    assert_eq!(rows_at(&server, "version=1").await?, [(1, 10)]);
    let after = hits(&get_ok(&server, "/cache/stats").await?);
    assert_eq!(after, before + 1, "the second pinned read is a memory hit");
    // And the current version is not served the pinned one's cached page.
    assert_eq!(rows_at(&server, "").await?, [(1, 11)]);
    Ok(())
}

#[tokio::test]
async fn restore_writes_a_versions_rows_as_a_new_version_that_can_be_undone() -> TestResult {
    let server = held_folds()?;
    server
        .save("user", "scores", scores(&[(1, 10), (2, 20)]))
        .await?;
    server
        .save("user", "scores", scores(&[(1, 11), (3, 31)]))
        .await?;
    let v1 = rows_at(&server, "version=1").await?;
    let v2 = rows_at(&server, "").await?;
    let online = json!({"features": ["scores:score"], "entities": {"user_id": [1]}});
    let served = |answer: &Value| answer["results"][1]["values"][0].clone();
    let (status, before) = server.post("/get-online-features", &online).await?;
    assert_eq!((status, served(&before)), (200, json!(11)), "{before}");

    let restored = post_ok(&server, &format!("{T}/restore"), json!({"version": 1}), 201).await?;
    assert_eq!(restored["version"], 3);
    assert_eq!(restored["restored_from"], 1);
    assert_eq!(restored["rows"], 2);
    assert_eq!(
        rows_at(&server, "").await?,
        v1,
        "the cached current page was not served"
    );
    assert_eq!(rows_at(&server, "version=3").await?, v1);
    let (status, after) = server.post("/get-online-features", &online).await?;
    assert_eq!((status, served(&after)), (200, json!(10)), "{after}");
    let (listed, _) = versions(&server).await?;
    assert_eq!(listed[0], (3, "restore".to_owned(), true));

    // Undo: restore the version before the restore.
    let undone = post_ok(&server, &format!("{T}/restore"), json!({"version": 2}), 201).await?;
    assert_eq!(undone["version"], 4);
    assert_eq!(rows_at(&server, "").await?, v2);
    Ok(())
}

#[tokio::test]
async fn restoring_a_deleted_table_recreates_it_and_bad_restores_are_refused() -> TestResult {
    let server = held_folds()?;
    server.save("user", "scores", scores(&[(1, 10)])).await?;
    server.delete(T).await?;
    let (listed, body) = versions(&server).await?;
    assert_eq!(body["current_version"], Value::Null);
    assert_eq!(listed[0].1, "delete");
    let (status, body) = server
        .post(&format!("{T}/restore"), &json!({"version": 2}))
        .await?;
    assert_problem(status, &body, 404, "table_version_not_found");
    let (status, body) = server
        .post(&format!("{T}/restore"), &json!({"version": 9}))
        .await?;
    assert_problem(status, &body, 404, "table_version_not_found");
    let (status, body) = server
        .post(&format!("{T}/restore"), &json!({"version": "one"}))
        .await?;
    assert_problem(status, &body, 422, "invalid_body");
    let (status, body) = server
        .post("/features/user/nope/restore", &json!({"version": 1}))
        .await?;
    assert_problem(status, &body, 404, "table_not_found");
    let (status, body) = server
        .post("/features/misc/scores/restore", &json!({"version": 1}))
        .await?;
    assert_problem(status, &body, 404, "table_not_found");

    let restored = post_ok(&server, &format!("{T}/restore"), json!({"version": 1}), 201).await?;
    assert_eq!(restored["version"], 3);
    assert_eq!(rows_at(&server, "").await?, [(1, 10)]);
    let listing = get_ok(&server, "/features").await?;
    assert!(listing.to_string().contains("\"scores\""), "{listing}");
    Ok(())
}

#[tokio::test]
async fn diff_counts_keys_added_removed_changed_and_unchanged() -> TestResult {
    let server = held_folds()?;
    server
        .save("user", "scores", scores(&[(1, 10), (2, 20), (3, 30)]))
        .await?;
    let mut next = scores(&[(2, 20), (3, 33), (4, 40)]);
    for record in next["records"].as_array_mut().ok_or("records")? {
        record["segment"] = json!("gold");
    }
    server.save("user", "scores", next).await?;

    let diff = get_ok(&server, &format!("{T}/diff?from=1&to=2")).await?;
    assert_eq!(
        diff["keys"],
        json!({"added": 1, "removed": 1, "changed": 1, "unchanged": 1})
    );
    assert_eq!(
        (&diff["from_rows"], &diff["to_rows"]),
        (&json!(3), &json!(3))
    );
    assert_eq!(diff["columns_added"], json!(["segment"]));
    assert_eq!(diff["entity_key"], json!(["user_id"]));
    // Defaults: the previous version against the current one.
    let default = get_ok(&server, &format!("{T}/diff")).await?;
    assert_eq!((&default["from"], &default["to"]), (&json!(1), &json!(2)));
    assert_eq!(default["keys"], diff["keys"]);
    let reverse = get_ok(&server, &format!("{T}/diff?from=2&to=1")).await?;
    assert_eq!(
        reverse["keys"],
        json!({"added": 1, "removed": 1, "changed": 1, "unchanged": 1})
    );
    assert_eq!(reverse["columns_removed"], json!(["segment"]));

    server
        .save("misc", "unkeyed", json!({"records": [{"a": 1}, {"a": 2}]}))
        .await?;
    server
        .save("misc", "unkeyed", json!({"records": [{"a": 1}]}))
        .await?;
    let unkeyed = get_ok(&server, "/features/misc/unkeyed/diff").await?;
    assert_eq!(unkeyed["keys"], Value::Null);
    assert_eq!(
        (&unkeyed["from_rows"], &unkeyed["to_rows"]),
        (&json!(2), &json!(1))
    );
    let (status, body) = server.get(&format!("{T}/diff?from=0")).await?;
    assert_problem(status, &body, 400, "invalid_parameter");
    let (status, body) = server.get(&format!("{T}/diff?from=7")).await?;
    assert_problem(status, &body, 404, "table_version_not_found");
    let (status, body) = server.get("/features/misc/unkeyed/diff?to=1").await?;
    assert_problem(status, &body, 404, "table_version_not_found");
    Ok(())
}

// The tests above, on the s3 kind too.
crate::on_s3_too!(
    every_write_is_listed_newest_first_with_its_operation_and_a_fold_adds_none,
    versions_before_a_replace_and_a_fold_read_the_same_rows_afterwards,
    version_and_as_of_pin_pages_and_info_and_say_when_there_is_no_such_version,
    a_pinned_read_after_a_newer_write_returns_the_old_rows_twice_the_second_from_cache,
    restore_writes_a_versions_rows_as_a_new_version_that_can_be_undone,
    restoring_a_deleted_table_recreates_it_and_bad_restores_are_refused,
    diff_counts_keys_added_removed_changed_and_unchanged,
);
