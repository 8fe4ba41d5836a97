//! `POST /materialize`, `POST /materialize-incremental` and the `materialize` commands as an
//! operator sees them: the report per view (window, rows in it with both ends included,
//! entities stored online), windows of incremental runs (end − TTL the first time, the
//! beginning without a TTL, then the previous end, per view and across restarts), materialized
//! and pushed values served the same after a restart (and never stale after a table changed),
//! every error, and the commands on a data root with and without a server holding it.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use featurestore::cache::ManualClock;
use serde_json::{Value, json};

use crate::common::instants::*;
use crate::common::{
    TestResult, TestServer, assert_problem, featurestore_command, featurestore_ok, micros,
    online_slots, restart, slot, write_parquet,
};

const MATERIALIZE: &str = "/materialize";
const INCREMENTAL: &str = "/materialize-incremental";
const ONLINE: &str = "/get-online-features";
/// `user_profile`'s TTL; `movie_metadata` has none.
const DAY_SECS: u64 = 86_400;

/// `user/user_profile`: user 1 at T0 − 2 d (age 28) and T0 − 1 h (age 30), user 2 at
/// T0 − 2 h (age 25), user 3 at T0 − 3 d (age 50): four rows, three entities.
fn profile_records() -> Value {
    json!([
        {"user_id": 1, "age": 28, "event_timestamp": T0_MINUS_2D},
        {"user_id": 1, "age": 30, "event_timestamp": T0_MINUS_1H},
        {"user_id": 2, "age": 25, "event_timestamp": T0_MINUS_2H},
        {"user_id": 3, "age": 50, "event_timestamp": T0_MINUS_3D},
    ])
}

/// `content/movie_metadata`: movie 10 at T0 − 30 min, movie 11 at T0 − 10 d.
fn movie_records() -> Value {
    json!([
        {"movie_id": 10, "genre": "Sci-Fi", "event_timestamp": T0_MINUS_30M},
        {"movie_id": 11, "genre": "Comedy", "event_timestamp": T0_MINUS_10D},
    ])
}

/// `user_profile` with a TTL of `profile_ttl` (none when `None`) and `movie_metadata`
/// without one.
fn registry_document(profile_ttl: Option<u64>) -> Value {
    json!({
        "entities": [
            {"name": "user_id", "value_type": "int64"},
            {"name": "movie_id", "value_type": "int64"},
        ],
        "feature_views": [
            {"name": "user_profile", "group": "user", "entities": ["user_id"],
             "timestamp_field": "event_timestamp", "ttl_seconds": profile_ttl},
            {"name": "movie_metadata", "group": "content", "entities": ["movie_id"],
             "timestamp_field": "event_timestamp"},
        ],
    })
}

/// Saves both tables on `server` and registers them.
async fn populate(server: &TestServer, profile_ttl: Option<u64>) -> TestResult {
    server
        .save(
            "user",
            "user_profile",
            json!({"records": profile_records(), "entity_key": ["user_id"]}),
        )
        .await?;
    server
        .save(
            "content",
            "movie_metadata",
            json!({"records": movie_records(), "entity_key": ["movie_id"]}),
        )
        .await?;
    server.apply(&registry_document(profile_ttl)).await?;
    Ok(())
}

/// A server whose clock stands at T0, `user_profile`'s TTL one day.
async fn fixture() -> TestResult<(TestServer, Arc<ManualClock>)> {
    let clock = Arc::new(ManualClock::starting_at(micros(T0)?));
    let server = TestServer::start_with_clock(clock.clone(), |_| {})?;
    populate(&server, Some(DAY_SECS)).await?;
    Ok((server, clock))
}

/// A server on the system clock (restarts cannot keep a manual one); no view has a TTL, so the
/// 2025 rows stay PRESENT whatever the date the suite runs on.
async fn fixture_on_system_clock() -> TestResult<TestServer> {
    let server = TestServer::start()?;
    populate(&server, None).await?;
    Ok(server)
}

/// POST `body` to `path`, checked to be a 200; returns the views of the report with `millis`
/// checked to be a number and removed, so reports compare exactly.
async fn materialize_ok(server: &TestServer, path: &str, body: Value) -> TestResult<Vec<Value>> {
    let (status, answer) = server.post(path, &body).await?;
    if status != 200 {
        return Err(format!("{path} {body} answered {status}: {answer}").into());
    }
    let views = answer["views"]
        .as_array()
        .ok_or_else(|| format!("no views in {answer}"))?;
    views
        .iter()
        .map(|view| {
            let mut view = view.clone();
            let object = view
                .as_object_mut()
                .ok_or_else(|| format!("a view that is not an object: {answer}"))?;
            let millis = object.remove("millis");
            if !millis.as_ref().is_some_and(Value::is_u64) {
                return Err(format!("millis missing or not a count in {answer}").into());
            }
            Ok(view)
        })
        .collect()
}

/// One view of a report, without `millis`.
fn report(view: &str, start: Option<&str>, end: &str, rows: u64, entities: u64) -> Value {
    json!({"feature_view": view, "start_ts": start, "end_ts": end,
           "rows_in_window": rows, "entities": entities})
}

/// `POST /get-online-features`, checked to be a 200.
async fn online_ok(server: &TestServer, body: Value) -> TestResult<Value> {
    let (status, answer) = server.post(ONLINE, &body).await?;
    if status != 200 {
        return Err(format!("{body} answered {status}: {answer}").into());
    }
    Ok(answer)
}

/// The lookup every restart test compares: users 1, 2, 3, 9 and movies 10, 11, 12.
async fn everything(server: &TestServer) -> TestResult<Value> {
    online_ok(
        server,
        json!({"features": ["user_profile:age", "movie_metadata:genre"],
               "entities": {"user_id": [1, 2, 3, 9], "movie_id": [10, 11, 12, 12]}}),
    )
    .await
}

/// The `age` slot of each user, online.
async fn ages(server: &TestServer, users: &[i64]) -> TestResult<Vec<(Value, String, String)>> {
    let answer = online_ok(
        server,
        json!({"features": ["user_profile:age"], "entities": {"user_id": users}}),
    )
    .await?;
    online_slots(&answer, "age")
}

/// The messages of `errors` of a problem.
fn error_messages(problem: &Value) -> Vec<&str> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["message"].as_str())
                .collect()
        })
        .unwrap_or_default()
}

/// The fields of `errors` of a problem.
fn error_fields(problem: &Value) -> Vec<&str> {
    problem["errors"]
        .as_array()
        .map(|errors| errors.iter().filter_map(|e| e["field"].as_str()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn materialize_reports_each_registered_views_window_rows_and_entities() -> TestResult {
    let (server, _clock) = fixture().await?;
    let mut views = materialize_ok(
        &server,
        MATERIALIZE,
        json!({"start_ts": T0_MINUS_1D, "end_ts": T0}),
    )
    .await?;
    views.sort_by_key(|v| v["feature_view"].as_str().map(str::to_owned));
    assert_eq!(
        views,
        [
            // Movie 10 is in the window; both movies are online.
            report("movie_metadata", Some(T0_MINUS_1D), T0, 1, 2),
            // User 1's newer row and user 2's; three users online.
            report("user_profile", Some(T0_MINUS_1D), T0, 2, 3),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn the_window_includes_both_ends_and_names_only_the_views_asked_for() -> TestResult {
    let (server, _clock) = fixture().await?;
    // The window's ends are exactly the times of user 2's and user 1's latest rows, the end
    // given with an offset.
    let views = materialize_ok(
        &server,
        MATERIALIZE,
        json!({"start_ts": T0_MINUS_2H, "end_ts": "2025-06-01T11:00:00+02:00",
               "feature_views": ["user_profile"]}),
    )
    .await?;
    assert_eq!(
        views,
        [report("user_profile", Some(T0_MINUS_2H), T0_MINUS_1H, 2, 3)]
    );

    // One microsecond narrower at either end leaves one row out.
    for (start, end) in [
        ("2025-06-01T08:00:00.000001Z", T0_MINUS_1H),
        (T0_MINUS_2H, "2025-06-01T08:59:59.999999Z"),
    ] {
        let views = materialize_ok(
            &server,
            MATERIALIZE,
            json!({"start_ts": start, "end_ts": end, "feature_views": ["user_profile"]}),
        )
        .await?;
        assert_eq!(views.len(), 1);
        assert_eq!(views[0]["rows_in_window"], 1, "{start} .. {end}");
    }

    // An empty list materializes nothing.
    let views = materialize_ok(
        &server,
        MATERIALIZE,
        json!({"start_ts": T0_MINUS_2H, "end_ts": T0, "feature_views": []}),
    )
    .await?;
    assert_eq!(views, Vec::<Value>::new());
    Ok(())
}

#[tokio::test]
async fn a_window_without_rows_still_stores_every_latest_row_and_serves_them() -> TestResult {
    let (server, _clock) = fixture().await?;
    let views = materialize_ok(
        &server,
        MATERIALIZE,
        json!({"start_ts": "2024-01-01T00:00:00Z", "end_ts": "2024-01-02T00:00:00Z"}),
    )
    .await?;
    for view in &views {
        assert_eq!(view["rows_in_window"], 0, "{view}");
    }
    // Online serving follows the tables, not the window.
    assert_eq!(
        ages(&server, &[1, 2, 3]).await?,
        [
            slot(json!(30), "PRESENT", T0_MINUS_1H),
            slot(json!(25), "PRESENT", T0_MINUS_2H),
            slot(Value::Null, "OUTSIDE_MAX_AGE", T0_MINUS_3D),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn rows_pushed_online_count_as_entities() -> TestResult {
    let (server, _clock) = fixture().await?;
    let (status, body) = server
        .post(
            "/push",
            &json!({"push_source_name": "user_profile", "to": "online",
                    "df": {"user_id": [9], "age": [19], "event_timestamp": [T0_MINUS_1M]}}),
        )
        .await?;
    assert_eq!(status, 200, "body: {body}");
    let views = materialize_ok(
        &server,
        MATERIALIZE,
        json!({"start_ts": T0_MINUS_1D, "end_ts": T0, "feature_views": ["user_profile"]}),
    )
    .await?;
    // The pushed row is online, not in the table: an entity, not a row of the window.
    assert_eq!(views, [report("user_profile", Some(T0_MINUS_1D), T0, 2, 4)]);
    Ok(())
}

#[tokio::test]
async fn incremental_runs_start_at_end_minus_ttl_then_where_each_view_last_ended() -> TestResult {
    let (server, _clock) = fixture().await?;
    let mut first = materialize_ok(&server, INCREMENTAL, json!({"end_ts": T0})).await?;
    first.sort_by_key(|v| v["feature_view"].as_str().map(str::to_owned));
    assert_eq!(
        first,
        [
            // No TTL: from the beginning.
            report("movie_metadata", None, T0, 2, 2),
            report("user_profile", Some(T0_MINUS_1D), T0, 2, 3),
        ]
    );

    // A row appended at T0 is in the next window of the profiles as well (both ends count).
    let (status, body) = server
        .post(
            "/push",
            &json!({"feature_view": "user_profile", "to": "offline",
                    "df": {"user_id": [4], "age": [44], "event_timestamp": [T0]}}),
        )
        .await?;
    assert_eq!(status, 200, "body: {body}");
    let second = materialize_ok(
        &server,
        INCREMENTAL,
        json!({"end_ts": T0_PLUS_1H, "feature_views": ["user_profile"]}),
    )
    .await?;
    assert_eq!(second, [report("user_profile", Some(T0), T0_PLUS_1H, 1, 4)]);

    // Each view resumes from its own last end.
    let mut third = materialize_ok(
        &server,
        INCREMENTAL,
        json!({"end_ts": T0_PLUS_2H, "feature_views": null}),
    )
    .await?;
    third.sort_by_key(|v| v["feature_view"].as_str().map(str::to_owned));
    assert_eq!(
        third,
        [
            report("movie_metadata", Some(T0), T0_PLUS_2H, 0, 2),
            report("user_profile", Some(T0_PLUS_1H), T0_PLUS_2H, 0, 4),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn a_full_materialization_sets_where_the_next_incremental_run_starts() -> TestResult {
    let (server, _clock) = fixture().await?;
    materialize_ok(
        &server,
        MATERIALIZE,
        json!({"start_ts": T0_MINUS_3D, "end_ts": T0_MINUS_1H, "feature_views": ["user_profile"]}),
    )
    .await?;
    let views = materialize_ok(
        &server,
        INCREMENTAL,
        json!({"end_ts": T0, "feature_views": ["user_profile"]}),
    )
    .await?;
    assert_eq!(views, [report("user_profile", Some(T0_MINUS_1H), T0, 1, 3)]);
    Ok(())
}

#[tokio::test]
async fn materialized_and_pushed_values_are_served_the_same_after_a_restart() -> TestResult {
    let server = fixture_on_system_clock().await?;
    let (status, body) = server
        .post(
            "/push",
            &json!({"push_source_name": "user_profile", "to": "online",
                    "df": {"user_id": [9], "age": [19], "event_timestamp": [T0_MINUS_1M]}}),
        )
        .await?;
    assert_eq!(status, 200, "body: {body}");
    let mut views = materialize_ok(
        &server,
        MATERIALIZE,
        json!({"start_ts": T0_MINUS_1D, "end_ts": T0}),
    )
    .await?;
    views.sort_by_key(|v| v["feature_view"].as_str().map(str::to_owned));
    assert_eq!(
        views,
        [
            report("movie_metadata", Some(T0_MINUS_1D), T0, 1, 2),
            report("user_profile", Some(T0_MINUS_1D), T0, 2, 4),
        ]
    );
    let before = everything(&server).await?;
    assert_eq!(
        online_slots(&before, "age")?,
        [
            slot(json!(30), "PRESENT", T0_MINUS_1H),
            slot(json!(25), "PRESENT", T0_MINUS_2H),
            slot(json!(50), "PRESENT", T0_MINUS_3D),
            slot(json!(19), "PRESENT", T0_MINUS_1M),
        ]
    );
    assert_eq!(
        online_slots(&before, "genre")?,
        [
            slot(json!("Sci-Fi"), "PRESENT", T0_MINUS_30M),
            slot(json!("Comedy"), "PRESENT", T0_MINUS_10D),
            slot(Value::Null, "NOT_FOUND", EPOCH),
            slot(Value::Null, "NOT_FOUND", EPOCH),
        ]
    );

    let server = restart(server).await?;
    assert_eq!(everything(&server).await?, before);
    // The watermark was kept: the next incremental run starts at T0.
    let views = materialize_ok(
        &server,
        INCREMENTAL,
        json!({"end_ts": T0_PLUS_1H, "feature_views": ["user_profile"]}),
    )
    .await?;
    assert_eq!(views, [report("user_profile", Some(T0), T0_PLUS_1H, 0, 4)]);
    Ok(())
}

#[tokio::test]
async fn writes_after_materializing_are_served_after_a_restart() -> TestResult {
    let server = fixture_on_system_clock().await?;
    materialize_ok(
        &server,
        MATERIALIZE,
        json!({"start_ts": T0_MINUS_1D, "end_ts": T0}),
    )
    .await?;
    // A newer row for user 1 pushed online, one for user 2 appended to the table, and a
    // replaced movie table.
    for body in [
        json!({"push_source_name": "user_profile", "to": "online",
               "df": {"user_id": [1], "age": [31], "event_timestamp": [T0_MINUS_1M]}}),
        json!({"push_source_name": "user_profile", "to": "offline",
               "df": {"user_id": [2], "age": [26], "event_timestamp": [T0_MINUS_30M]}}),
    ] {
        let (status, answer) = server.post("/push", &body).await?;
        assert_eq!(status, 200, "{body}: {answer}");
    }
    server
        .save(
            "content",
            "movie_metadata",
            json!({"records": [
                {"movie_id": 10, "genre": "Drama", "event_timestamp": T0_MINUS_1M},
            ]}),
        )
        .await?;

    let server = restart(server).await?;
    let answer = everything(&server).await?;
    assert_eq!(
        online_slots(&answer, "age")?,
        [
            slot(json!(31), "PRESENT", T0_MINUS_1M),
            slot(json!(26), "PRESENT", T0_MINUS_30M),
            slot(json!(50), "PRESENT", T0_MINUS_3D),
            slot(Value::Null, "NOT_FOUND", EPOCH),
        ]
    );
    assert_eq!(
        online_slots(&answer, "genre")?,
        [
            slot(json!("Drama"), "PRESENT", T0_MINUS_1M),
            slot(Value::Null, "NOT_FOUND", EPOCH),
            slot(Value::Null, "NOT_FOUND", EPOCH),
            slot(Value::Null, "NOT_FOUND", EPOCH),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn unknown_views_are_404_naming_every_one() -> TestResult {
    let (server, _clock) = fixture().await?;
    for (path, body) in [
        (
            MATERIALIZE,
            json!({"start_ts": T0_MINUS_1D, "end_ts": T0,
                   "feature_views": ["ghost", "user_profile", "phantom"]}),
        ),
        (
            INCREMENTAL,
            json!({"end_ts": T0, "feature_views": ["ghost", "user_profile", "phantom"]}),
        ),
    ] {
        let (status, problem) = server.post(path, &body).await?;
        assert_problem(status, &problem, 404, "unknown_feature_views");
        let messages = error_messages(&problem);
        assert_eq!(messages.len(), 2, "{path}: {problem}");
        assert!(messages[0].contains("ghost"), "{path}: {problem}");
        assert!(messages[1].contains("phantom"), "{path}: {problem}");
        let detail = problem["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains("ghost") && detail.contains("phantom"),
            "{path}: {problem}"
        );
        assert!(!detail.contains("user_profile"), "{path}: {problem}");
    }
    // Nothing was materialized: the first incremental run still starts at end − TTL.
    let views = materialize_ok(
        &server,
        INCREMENTAL,
        json!({"end_ts": T0, "feature_views": ["user_profile"]}),
    )
    .await?;
    assert_eq!(views[0]["start_ts"], T0_MINUS_1D);
    Ok(())
}

#[tokio::test]
async fn unknown_views_are_reported_on_the_feature_views_field() -> TestResult {
    let (server, _clock) = fixture().await?;
    let (status, problem) = server
        .post(
            MATERIALIZE,
            &json!({"start_ts": T0_MINUS_1D, "end_ts": T0, "feature_views": ["ghost"]}),
        )
        .await?;
    assert_problem(status, &problem, 404, "unknown_feature_views");
    assert_eq!(error_fields(&problem), ["feature_views"], "{problem}");
    Ok(())
}

#[tokio::test]
async fn timestamps_that_are_not_rfc3339_are_422_naming_the_field() -> TestResult {
    let (server, _clock) = fixture().await?;
    for (path, body, field) in [
        (
            MATERIALIZE,
            json!({"start_ts": "yesterday", "end_ts": T0}),
            "start_ts",
        ),
        (
            MATERIALIZE,
            json!({"start_ts": T0_MINUS_1D, "end_ts": "2025-06-01"}),
            "end_ts",
        ),
        (
            MATERIALIZE,
            json!({"start_ts": T0_MINUS_1D, "end_ts": "2025-06-01T10:00"}),
            "end_ts",
        ),
        (INCREMENTAL, json!({"end_ts": "now"}), "end_ts"),
    ] {
        let (status, problem) = server.post(path, &body).await?;
        assert_problem(status, &problem, 422, "invalid_body");
        assert_eq!(error_fields(&problem), [field], "{path} {body}: {problem}");
    }
    Ok(())
}

#[tokio::test]
async fn a_start_after_the_end_is_422_and_materializes_nothing() -> TestResult {
    let (server, _clock) = fixture().await?;
    let (status, problem) = server
        .post(
            MATERIALIZE,
            &json!({"start_ts": T0, "end_ts": T0_MINUS_1H, "feature_views": ["user_profile"]}),
        )
        .await?;
    assert_problem(status, &problem, 422, "invalid_body");
    assert_eq!(error_fields(&problem), ["start_ts"], "{problem}");
    let views = materialize_ok(
        &server,
        INCREMENTAL,
        json!({"end_ts": T0, "feature_views": ["user_profile"]}),
    )
    .await?;
    assert_eq!(views[0]["start_ts"], T0_MINUS_1D);
    Ok(())
}

#[tokio::test]
async fn a_missing_timestamp_is_422() -> TestResult {
    let (server, _clock) = fixture().await?;
    for (path, body) in [
        (MATERIALIZE, json!({"start_ts": T0_MINUS_1D})),
        (MATERIALIZE, json!({"end_ts": T0})),
        (INCREMENTAL, json!({"feature_views": ["user_profile"]})),
        (INCREMENTAL, json!({})),
    ] {
        let (status, problem) = server.post(path, &body).await?;
        assert_problem(status, &problem, 422, "invalid_body");
    }
    Ok(())
}

#[tokio::test]
async fn a_registered_view_without_its_table_is_404() -> TestResult {
    let (server, _clock) = fixture().await?;
    let (status, body) = server.delete("/features/content/movie_metadata").await?;
    assert_eq!(status, 200, "body: {body}");
    let (status, problem) = server
        .post(
            MATERIALIZE,
            &json!({"start_ts": T0_MINUS_1D, "end_ts": T0, "feature_views": ["movie_metadata"]}),
        )
        .await?;
    assert_problem(status, &problem, 404, "table_not_found");
    Ok(())
}

/// `batch` with `columns`, every field nullable.
fn batch(columns: Vec<(&str, ArrayRef)>) -> TestResult<RecordBatch> {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, array)| Field::new(*name, array.data_type().clone(), true))
        .collect();
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns.into_iter().map(|(_, array)| array).collect(),
    )?)
}

/// A UTC timestamp column of `instants`.
fn timestamps(instants: &[&str]) -> TestResult<ArrayRef> {
    let micros = instants
        .iter()
        .map(|t| micros(t))
        .collect::<TestResult<Vec<_>>>()?;
    Ok(Arc::new(
        TimestampMicrosecondArray::from(micros).with_timezone("UTC"),
    ))
}

/// A data root written without any server, as a pipeline would: both tables as Parquet files
/// from the parquet crate, registered with `featurestore apply` (`user_profile`'s TTL one
/// day).
fn offline_data_root() -> TestResult<tempfile::TempDir> {
    let data = tempfile::tempdir()?;
    let root = data.path();
    std::fs::create_dir_all(root.join("features/user"))?;
    std::fs::create_dir_all(root.join("features/content"))?;
    write_parquet(
        &root.join("features/user/user_profile.parquet"),
        &batch(vec![
            ("user_id", Arc::new(Int64Array::from(vec![1, 1, 2, 3]))),
            ("age", Arc::new(Int64Array::from(vec![28, 30, 25, 50]))),
            (
                "event_timestamp",
                timestamps(&[T0_MINUS_2D, T0_MINUS_1H, T0_MINUS_2H, T0_MINUS_3D])?,
            ),
        ])?,
    )?;
    write_parquet(
        &root.join("features/content/movie_metadata.parquet"),
        &batch(vec![
            ("movie_id", Arc::new(Int64Array::from(vec![10, 11]))),
            (
                "genre",
                Arc::new(StringArray::from(vec!["Sci-Fi", "Comedy"])),
            ),
            (
                "event_timestamp",
                timestamps(&[T0_MINUS_30M, T0_MINUS_10D])?,
            ),
        ])?,
    )?;
    let definitions = tempfile::tempdir()?;
    let file = definitions.path().join("definitions.json");
    std::fs::write(
        &file,
        serde_json::to_vec(&registry_document(Some(DAY_SECS)))?,
    )?;
    featurestore_ok(&["apply", utf8(&file)?, "--data-dir", utf8(root)?])?;
    Ok(data)
}

fn utf8(path: &Path) -> TestResult<&str> {
    Ok(path.to_str().ok_or("a UTF-8 temporary path")?)
}

/// The report lines of a `materialize` command: `(view, window and counts)` with the
/// timing left out.
fn report_lines(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter(|line| line.contains("rows in the window"))
        .filter_map(|line| {
            let line = line.trim();
            let (view, rest) = line.split_once(' ')?;
            let rest = rest.trim_start();
            let rest = rest.rsplit_once(" (").map_or(rest, |(counts, _)| counts);
            Some((view.to_owned(), rest.to_owned()))
        })
        .collect()
}

/// One expected [`report_lines`] entry.
fn line(view: &str, text: &str) -> (String, String) {
    (view.to_owned(), text.to_owned())
}

#[tokio::test]
async fn the_materialize_command_fills_the_online_store_a_server_then_serves() -> TestResult {
    let data = offline_data_root()?;
    let dir = utf8(data.path())?.to_owned();
    let stdout = featurestore_ok(&[
        "materialize",
        "--data-dir",
        &dir,
        "--start",
        T0_MINUS_1D,
        "--end",
        T0,
        "--views",
        "user_profile",
        "movie_metadata",
    ])?;
    let mut lines = report_lines(&stdout);
    lines.sort();
    assert_eq!(
        lines,
        [
            line(
                "movie_metadata",
                "2025-05-31T10:00:00Z .. 2025-06-01T10:00:00Z: 1 rows in the window, 2 entities online",
            ),
            line(
                "user_profile",
                "2025-05-31T10:00:00Z .. 2025-06-01T10:00:00Z: 2 rows in the window, 3 entities online",
            ),
        ],
        "stdout: {stdout}"
    );
    assert!(
        stdout.contains("2 view(s) materialized"),
        "stdout: {stdout}"
    );

    // The server sees the command's watermark and serves the tables' latest values.
    let server = TestServer::start_on(data, |_| {})?;
    let views = materialize_ok(
        &server,
        INCREMENTAL,
        json!({"end_ts": T0_PLUS_1H, "feature_views": ["user_profile"]}),
    )
    .await?;
    assert_eq!(views[0]["start_ts"], T0, "{views:?}");
    let answer = online_ok(
        &server,
        json!({"features": ["movie_metadata:genre"], "entities": {"movie_id": [10, 11, 12]}}),
    )
    .await?;
    assert_eq!(
        online_slots(&answer, "genre")?,
        [
            slot(json!("Sci-Fi"), "PRESENT", T0_MINUS_30M),
            slot(json!("Comedy"), "PRESENT", T0_MINUS_10D),
            slot(Value::Null, "NOT_FOUND", EPOCH),
        ]
    );
    let answer = online_ok(
        &server,
        json!({"features": ["user_profile:age"], "entities": {"user_id": [1, 2, 4]}}),
    )
    .await?;
    // The profiles' one-day TTL has long passed on the system clock.
    assert_eq!(
        online_slots(&answer, "age")?,
        [
            slot(Value::Null, "OUTSIDE_MAX_AGE", T0_MINUS_1H),
            slot(Value::Null, "OUTSIDE_MAX_AGE", T0_MINUS_2H),
            slot(Value::Null, "NOT_FOUND", EPOCH),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn the_materialize_command_defaults_to_every_view_from_the_beginning_until_now() -> TestResult
{
    let data = offline_data_root()?;
    let dir = utf8(data.path())?.to_owned();
    let stdout = featurestore_ok(&["materialize", "--data-dir", &dir])?;
    let mut lines = report_lines(&stdout);
    lines.sort();
    assert_eq!(lines.len(), 2, "stdout: {stdout}");
    for ((view, text), (expected_view, counts)) in lines.iter().zip([
        ("movie_metadata", "2 rows in the window, 2 entities online"),
        ("user_profile", "4 rows in the window, 3 entities online"),
    ]) {
        assert_eq!(view, expected_view, "stdout: {stdout}");
        assert!(text.starts_with("the beginning .. "), "stdout: {stdout}");
        assert!(text.ends_with(counts), "stdout: {stdout}");
    }
    Ok(())
}

#[tokio::test]
async fn the_incremental_command_resumes_where_the_previous_run_ended() -> TestResult {
    let data = offline_data_root()?;
    let dir = utf8(data.path())?.to_owned();
    let first = featurestore_ok(&["materialize-incremental", "--data-dir", &dir, "--end", T0])?;
    let mut lines = report_lines(&first);
    lines.sort();
    assert_eq!(
        lines,
        [
            line(
                "movie_metadata",
                "the beginning .. 2025-06-01T10:00:00Z: 2 rows in the window, 2 entities online",
            ),
            line(
                "user_profile",
                "2025-05-31T10:00:00Z .. 2025-06-01T10:00:00Z: 2 rows in the window, 3 entities online",
            ),
        ],
        "stdout: {first}"
    );

    let second = featurestore_ok(&[
        "materialize-incremental",
        "--data-dir",
        &dir,
        "--end",
        T0_PLUS_1H,
        "--views",
        "user_profile",
    ])?;
    assert_eq!(
        report_lines(&second),
        [line(
            "user_profile",
            "2025-06-01T10:00:00Z .. 2025-06-01T11:00:00Z: 0 rows in the window, 3 entities online",
        )],
        "stdout: {second}"
    );
    Ok(())
}

#[tokio::test]
async fn the_commands_fail_while_a_server_holds_the_online_store() -> TestResult {
    let server = TestServer::start_on(offline_data_root()?, |_| {})?;
    let dir = utf8(server.root())?.to_owned();
    for args in [
        vec!["materialize", "--data-dir", &dir, "--end", T0],
        vec!["materialize-incremental", "--data-dir", &dir, "--end", T0],
    ] {
        let output = featurestore_command(&args)?;
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(output.status.code().is_some_and(|c| c != 0), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.trim().is_empty(), "{args:?}: empty stderr");
        assert!(stderr.contains("online store"), "{args:?}: {stderr}");
    }
    // The server's own materialization still works.
    let views = materialize_ok(
        &server,
        MATERIALIZE,
        json!({"start_ts": T0_MINUS_1D, "end_ts": T0, "feature_views": ["user_profile"]}),
    )
    .await?;
    assert_eq!(views[0]["rows_in_window"], 2);
    Ok(())
}

#[tokio::test]
async fn the_commands_fail_on_unknown_views_naming_them() -> TestResult {
    let data = offline_data_root()?;
    let dir = utf8(data.path())?.to_owned();
    for args in [
        vec![
            "materialize",
            "--data-dir",
            &dir,
            "--views",
            "ghost",
            "user_profile",
        ],
        vec![
            "materialize-incremental",
            "--data-dir",
            &dir,
            "--end",
            T0,
            "--views",
            "ghost",
        ],
    ] {
        let output = featurestore_command(&args)?;
        assert!(!output.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("ghost"), "{args:?}: {stderr}");
    }
    // Nothing was materialized: the first incremental run starts at end − TTL.
    let stdout = featurestore_ok(&[
        "materialize-incremental",
        "--data-dir",
        &dir,
        "--end",
        T0,
        "--views",
        "user_profile",
    ])?;
    assert_eq!(
        report_lines(&stdout),
        [line(
            "user_profile",
            "2025-05-31T10:00:00Z .. 2025-06-01T10:00:00Z: 2 rows in the window, 3 entities online",
        )],
        "stdout: {stdout}"
    );
    Ok(())
}
