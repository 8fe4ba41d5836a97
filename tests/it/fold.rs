//! Pushed rows in the plain table file: the background fold a short time after the last push,
//! `POST /features/{group}/{name}/compact`, one stored schema for a table file and its parts
//! (widened by a push whose values need it, kept otherwise), and columns that held only nulls.
//! `readers.rs` checks the same files with pandas, pyarrow and DuckDB.

use std::path::Path;
use std::time::{Duration, Instant};

use arrow::datatypes::Fields;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value, json};

use crate::common::instants::*;
use crate::common::{TestResult, TestServer, assert_problem, online_slots, slot};
use crate::push::{
    ages, fixture_on_system_clock, get_ok, hold_folds, online_ok, part_files, profile_row, push_ok,
    push_profile, read_parquet,
};

const PROFILE_FILE: &str = "features/user/user_profile.parquet";
const COMPACT: &str = "/features/user/user_profile/compact";

/// The Arrow fields stored in a Parquet file (the footer metadata, which names each file's
/// version, left out).
fn stored_schema(path: &Path) -> TestResult<Fields> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path)?)?;
    Ok(builder.schema().fields().clone())
}

/// `(name, stored_type)` of each column, as `/info` reports them.
async fn stored_types(server: &TestServer, path: &str) -> TestResult<Vec<(String, String)>> {
    let info = get_ok(server, path).await?;
    Ok(info["storage_info"]["columns"]
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

fn stored_type_of(types: &[(String, String)], column: &str) -> String {
    types
        .iter()
        .find(|(name, _)| name == column)
        .map(|(_, t)| t.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn pushed_rows_reach_the_plain_table_file_within_two_seconds_of_the_last_push() -> TestResult
{
    // The default configuration: no tweak.
    let server = fixture_on_system_clock(|c| c.storage.fold_delay_ms = 1_000).await?;
    let base = server.root().join(PROFILE_FILE);
    push_profile(&server, profile_row(3, 33, 3.0, "Noir", T0), "offline").await?;
    push_profile(&server, profile_row(4, 44, 4.0, "Noir", T0), "offline").await?;
    let last_push = Instant::now();
    // The table file is renamed into place first, then the folded parts are removed.
    while read_parquet(&base)?.num_rows() < 4
        || !part_files(&server, "user", "user_profile").is_empty()
    {
        assert!(
            last_push.elapsed() < Duration::from_millis(2_500),
            "the pushed rows were not in {PROFILE_FILE} 2.5 s after the last push"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let batch = read_parquet(&base)?;
    assert_eq!(batch.num_rows(), 4);
    let page = get_ok(&server, "/features/user/user_profile").await?;
    assert_eq!(page["metadata"]["total_rows"], 4);
    assert_eq!(page["data"][3]["age"], 44);
    assert_eq!(
        ages(&server, &[3, 4]).await?,
        [
            slot(json!(33), "PRESENT", T0),
            slot(json!(44), "PRESENT", T0)
        ]
    );
    Ok(())
}

#[tokio::test]
async fn compact_folds_the_parts_now_and_says_what_it_did() -> TestResult {
    let server = fixture_on_system_clock(hold_folds).await?;
    push_profile(&server, profile_row(3, 33, 3.0, "Noir", T0), "offline").await?;
    push_profile(
        &server,
        profile_row(4, 44, 4.0, "Noir", T0),
        "online_and_offline",
    )
    .await?;
    assert_eq!(part_files(&server, "user", "user_profile").len(), 2);
    let before = get_ok(&server, "/features/user/user_profile").await?;

    let (status, body) = server.post(COMPACT, &json!({})).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"feature_group": "user", "feature_name": "user_profile",
               "version": 3, "rows": 4, "parts_folded": 2})
    );
    assert!(part_files(&server, "user", "user_profile").is_empty());
    assert_eq!(
        read_parquet(&server.root().join(PROFILE_FILE))?.num_rows(),
        4
    );
    let after = get_ok(&server, "/features/user/user_profile").await?;
    assert_eq!(after["data"], before["data"]);
    // A fold changes no row: the version stays.
    assert_eq!(after["metadata"]["version"], 3);
    assert_eq!(
        ages(&server, &[3, 4]).await?,
        [
            slot(json!(33), "PRESENT", T0),
            slot(json!(44), "PRESENT", T0)
        ]
    );

    // Nothing left to fold: the same version, no part.
    let (status, again) = server.post(COMPACT, &json!({})).await?;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["version"], 3);
    assert_eq!(again["parts_folded"], 0);
    assert_eq!(again["rows"], 4);

    let (status, body) = server
        .post("/features/user/nope/compact", &json!({}))
        .await?;
    assert_problem(status, &body, 404, "table_not_found");
    let (status, body) = server
        .post("/features/misc/user_profile/compact", &json!({}))
        .await?;
    assert_problem(status, &body, 404, "table_not_found");
    let (status, body) = server
        .post("/features/user/bad.name/compact", &json!({}))
        .await?;
    assert_problem(status, &body, 400, "invalid_name");
    Ok(())
}

#[tokio::test]
async fn parts_share_the_table_files_stored_schema_and_a_wider_value_widens_the_table() -> TestResult
{
    let server = fixture_on_system_clock(hold_folds).await?;
    let base = server.root().join(PROFILE_FILE);
    let types = stored_types(&server, "/features/user/user_profile/info").await?;
    assert_eq!(stored_type_of(&types, "age"), "int8");
    assert_eq!(stored_type_of(&types, "user_id"), "int8");

    // Values an int8 holds: a part with exactly the table file's schema.
    let answer = push_profile(&server, profile_row(100, 5, 1.0, "Drama", T0), "offline").await?;
    assert_eq!(answer["offline"]["compacted"], false);
    let parts = part_files(&server, "user", "user_profile");
    assert_eq!(parts.len(), 1);
    assert_eq!(
        stored_schema(&server.root().join(&parts[0]))?,
        stored_schema(&base)?
    );

    // An age of 300 does not fit int8: the push widens the table instead of writing a part.
    let answer = push_profile(&server, profile_row(5, 300, 1.0, "Drama", T0), "offline").await?;
    assert_eq!(
        answer["offline"],
        json!({"version": 3, "total_rows": 4, "parts": 0, "compacted": true})
    );
    assert!(part_files(&server, "user", "user_profile").is_empty());
    let types = stored_types(&server, "/features/user/user_profile/info").await?;
    assert_eq!(stored_type_of(&types, "age"), "int16");
    assert_eq!(stored_type_of(&types, "user_id"), "int8");
    let batch = read_parquet(&base)?;
    assert_eq!(batch.num_rows(), 4);

    // The next small value goes into a part of the widened schema.
    push_profile(&server, profile_row(6, 6, 1.0, "Drama", T0), "offline").await?;
    let parts = part_files(&server, "user", "user_profile");
    assert_eq!(parts.len(), 1);
    assert_eq!(
        stored_schema(&server.root().join(&parts[0]))?,
        stored_schema(&base)?
    );
    let page = get_ok(&server, "/features/user/user_profile").await?;
    let served: Vec<Value> = page["data"]
        .as_array()
        .ok_or("data")?
        .iter()
        .map(|r| r["age"].clone())
        .collect();
    assert_eq!(
        served,
        [json!(30), json!(25), json!(5), json!(300), json!(6)]
    );
    assert_eq!(
        ages(&server, &[5, 6]).await?,
        [
            slot(json!(300), "PRESENT", T0),
            slot(json!(6), "PRESENT", T0)
        ]
    );
    Ok(())
}

#[tokio::test]
async fn a_fold_keeps_the_tables_stored_types() -> TestResult {
    let server = fixture_on_system_clock(hold_folds).await?;
    // 200 users: user_id is int16, though the pushed ids alone would fit int8.
    let records: Vec<Value> = (1..=200)
        .map(|i| {
            json!({"user_id": i, "age": 20 + i % 50, "avg_rating": 3.5,
                        "favorite_genre": "Drama", "event_timestamp": T0_MINUS_1H})
        })
        .collect();
    server
        .save(
            "user",
            "user_profile",
            json!({"records": records, "entity_key": ["user_id"]}),
        )
        .await?;
    let before = stored_types(&server, "/features/user/user_profile/info").await?;
    assert_eq!(stored_type_of(&before, "user_id"), "int16");
    for id in [3, 4] {
        push_profile(&server, profile_row(id, 33, 3.0, "Noir", T0), "offline").await?;
    }
    let parts = part_files(&server, "user", "user_profile");
    let base = server.root().join(PROFILE_FILE);
    for part in &parts {
        assert_eq!(
            stored_schema(&server.root().join(part))?,
            stored_schema(&base)?
        );
    }
    let (status, body) = server.post(COMPACT, &json!({})).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["parts_folded"], 2);
    let after = stored_types(&server, "/features/user/user_profile/info").await?;
    assert_eq!(after, before);
    Ok(())
}

/// `misc`-free fixture for null columns: entity `user_id` and `user_scores`, whose `score`
/// holds only nulls.
async fn null_score_table(server: &TestServer) -> TestResult {
    server
        .save(
            "user",
            "user_scores",
            json!({"entity_key": ["user_id"], "records": [
                {"user_id": 1, "score": null, "event_timestamp": T0_MINUS_1H},
                {"user_id": 2, "score": null, "event_timestamp": T0_MINUS_1H},
            ]}),
        )
        .await?;
    server
        .apply(&json!({
            "entities": [{"name": "user_id", "value_type": "int64"}],
            "feature_views": [{"name": "user_scores", "group": "user", "entities": ["user_id"],
                               "timestamp_field": "event_timestamp"}],
        }))
        .await?;
    Ok(())
}

async fn score_slots(server: &TestServer) -> TestResult<Vec<(Value, String, String)>> {
    let answer = online_ok(
        server,
        json!({"features": ["user_scores:score"], "entities": {"user_id": [1, 2]}}),
    )
    .await?;
    online_slots(&answer, "score")
}

#[tokio::test]
async fn an_all_null_column_is_null_value_online_until_a_push_gives_it_a_type() -> TestResult {
    let server = TestServer::start_with(hold_folds)?;
    null_score_table(&server).await?;
    assert_eq!(
        score_slots(&server).await?,
        [
            slot(Value::Null, "NULL_VALUE", T0_MINUS_1H),
            slot(Value::Null, "NULL_VALUE", T0_MINUS_1H),
        ]
    );
    // The first values pushed give the column its type.
    let answer = push_ok(
        &server,
        json!({"feature_view": "user_scores", "to": "offline",
               "df": {"user_id": [1], "score": [4.5], "event_timestamp": [T0]}}),
    )
    .await?;
    assert_eq!(answer["offline"]["compacted"], true, "{answer}");
    assert_eq!(
        score_slots(&server).await?,
        [
            slot(json!(4.5), "PRESENT", T0),
            slot(Value::Null, "NULL_VALUE", T0_MINUS_1H),
        ]
    );
    let info = get_ok(&server, "/features/user/user_scores/info").await?;
    let score = &info["storage_info"]["columns"][1];
    assert_eq!(score["name"], "score");
    assert_eq!(score["logical_type"], "float64");
    // And later values of that type are appended as parts.
    let answer = push_ok(
        &server,
        json!({"feature_view": "user_scores", "to": "offline",
               "df": {"user_id": [2], "score": [1.25], "event_timestamp": [T0]}}),
    )
    .await?;
    assert_eq!(answer["offline"]["compacted"], false, "{answer}");
    assert_eq!(
        score_slots(&server).await?,
        [
            slot(json!(4.5), "PRESENT", T0),
            slot(json!(1.25), "PRESENT", T0)
        ]
    );
    Ok(())
}

#[tokio::test]
async fn an_all_null_join_key_column_takes_its_entitys_type() -> TestResult {
    let server = TestServer::start_with(hold_folds)?;
    null_score_table(&server).await?;
    server
        .apply(&json!({"entities": [{"name": "movie_id", "value_type": "string"}]}))
        .await?;
    // `movie_id` holds only nulls: typed string, as its entity says, not null.
    server
        .save(
            "user",
            "user_scores",
            json!({"entity_key": ["user_id"], "records": [
                {"user_id": 1, "movie_id": null, "score": 1.5, "event_timestamp": T0_MINUS_1H},
            ]}),
        )
        .await?;
    let info = get_ok(&server, "/features/user/user_scores/info").await?;
    let movie = &info["storage_info"]["columns"][1];
    assert_eq!(movie["name"], "movie_id");
    assert_eq!(movie["logical_type"], "string");
    let (status, body) = server
        .post(
            "/push",
            &json!({"feature_view": "user_scores", "to": "offline",
                    "df": {"user_id": [1], "movie_id": [5], "score": [2.5],
                           "event_timestamp": [T0]}}),
        )
        .await?;
    assert_eq!(status, 422, "{body}");
    let answer = push_ok(
        &server,
        json!({"feature_view": "user_scores", "to": "offline",
               "df": {"user_id": [1], "movie_id": ["m5"], "score": [2.5], "event_timestamp": [T0]}}),
    )
    .await?;
    assert_eq!(answer["offline"]["compacted"], false, "{answer}");
    Ok(())
}

/// Copies every file under `from` into `to`, keeping relative paths.
fn copy_tree(from: &Path, to: &Path) -> TestResult {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        std::fs::copy(entry.path(), to.join(entry.file_name()))?;
    }
    Ok(())
}

#[tokio::test]
async fn a_fold_cut_short_after_its_rename_serves_each_row_once_after_a_restart() -> TestResult {
    let server = fixture_on_system_clock(hold_folds).await?;
    push_profile(&server, profile_row(3, 33, 3.0, "Noir", T0), "offline").await?;
    push_profile(&server, profile_row(4, 44, 4.0, "Noir", T0), "offline").await?;
    let parts_dir = server.root().join("features/user/_appends/user_profile/v1");
    let saved = tempfile::tempdir()?;
    copy_tree(&parts_dir, saved.path())?;
    let (status, body) = server.post(COMPACT, &json!({})).await?;
    assert_eq!(status, 200, "{body}");
    let before = get_ok(&server, "/features/user/user_profile").await?;
    // As if the process died between the rename of the folded file and the removal of the
    // parts it folded: they are back on disk beside the new file.
    copy_tree(saved.path(), &parts_dir)?;
    let server = crate::common::restart_with(server, hold_folds).await?;
    let after = get_ok(&server, "/features/user/user_profile").await?;
    assert_eq!(after["metadata"]["total_rows"], 4);
    assert_eq!(after["data"], before["data"]);
    assert!(!parts_dir.exists(), "the folded parts were not swept");
    assert!(part_files(&server, "user", "user_profile").is_empty());
    Ok(())
}

#[tokio::test]
async fn a_fold_cut_short_before_its_rename_leaves_the_table_and_its_parts() -> TestResult {
    let server = fixture_on_system_clock(hold_folds).await?;
    push_profile(&server, profile_row(3, 33, 3.0, "Noir", T0), "offline").await?;
    let before = get_ok(&server, "/features/user/user_profile").await?;
    let data = server.stop();
    // The staged file of a fold that never reached its rename.
    let staged = data.path().join(format!(
        "features/user/.user_profile.parquet.tmp-{}-0",
        u32::MAX
    ));
    std::fs::write(&staged, b"PAR1 half a fold")?;
    let server = TestServer::start_on(data, hold_folds)?;
    let after = get_ok(&server, "/features/user/user_profile").await?;
    assert_eq!(after["data"], before["data"]);
    assert_eq!(after["metadata"]["version"], before["metadata"]["version"]);
    assert_eq!(part_files(&server, "user", "user_profile").len(), 1);
    assert!(!staged.exists(), "the staged file was not swept");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pushes_racing_a_fold_are_all_kept_in_the_table_file() -> TestResult {
    let server = fixture_on_system_clock(hold_folds).await?;
    // A table large enough that its fold takes a while, so pushes land during it.
    let records: Vec<Value> = (1..=60_000)
        .map(|i| {
            json!({"user_id": i, "age": 20 + i % 50, "avg_rating": 3.5,
                        "favorite_genre": "Drama", "event_timestamp": T0_MINUS_1H})
        })
        .collect();
    server
        .save(
            "user",
            "user_profile",
            json!({"records": records, "entity_key": ["user_id"]}),
        )
        .await?;
    push_profile(&server, profile_row(1, 21, 3.0, "Noir", T0), "offline").await?;
    let url = server.url(COMPACT);
    let folding = tokio::spawn(async move {
        // Every answer is kept: a failure below shows the folds that raced the pushes.
        let mut answers = Vec::new();
        for _ in 0..3 {
            let answer = reqwest::Client::new().post(&url).send().await?;
            let status = answer.status();
            let body: Value = answer.json().await?;
            if body["parts_folded"].as_u64().is_none() {
                return Err(
                    format!("compact answered {status}: {body} (before: {answers:?})").into(),
                );
            }
            answers.push(body);
        }
        TestResult::Ok(answers)
    });
    let pushed: Vec<i64> = (100_001..100_031).collect();
    for id in &pushed {
        push_profile(&server, profile_row(*id, 40, 3.0, "Noir", T0), "offline").await?;
    }
    let answers = folding.await??;
    let (status, body) = server.post(COMPACT, &json!({})).await?;
    assert_eq!(
        status, 200,
        "final compact: {body}; racing compacts: {answers:?}"
    );
    let parts = part_files(&server, "user", "user_profile");
    let file = read_parquet(&server.root().join(PROFILE_FILE))?;
    let seen = format!(
        "final compact: {body}; racing compacts: {answers:?}; part files beside the table file: \
         {parts:?}; every file under the data root: {:?}",
        server.files()
    );
    assert!(parts.is_empty(), "parts left after the compact: {seen}");
    assert_eq!(file.num_rows(), 60_000 + 1 + pushed.len(), "{seen}");
    let page = get_ok(
        &server,
        "/features/user/user_profile?offset=60001&limit=1000&columns=user_id",
    )
    .await?;
    let ids: Vec<i64> = page["data"]
        .as_array()
        .ok_or("data")?
        .iter()
        .filter_map(|r| r["user_id"].as_i64())
        .collect();
    assert_eq!(ids, pushed, "user_id from row 60001 on; {seen}");
    Ok(())
}

#[tokio::test]
async fn an_all_null_column_takes_the_type_its_view_declares() -> TestResult {
    let server = TestServer::start_with(hold_folds)?;
    let scores = |score: Value| {
        json!({"entity_key": ["user_id"], "records": [
            {"user_id": 1, "score": score, "event_timestamp": T0_MINUS_1H},
        ]})
    };
    server.save("user", "user_scores", scores(json!(3))).await?;
    server
        .apply(&json!({
            "entities": [{"name": "user_id", "value_type": "int64"}],
            "feature_views": [{"name": "user_scores", "group": "user", "entities": ["user_id"],
                               "timestamp_field": "event_timestamp",
                               "features": [{"name": "score", "dtype": "int64"}]}],
        }))
        .await?;
    // Deleted and saved again with only nulls: the view still says int64.
    let (status, body) = server.delete("/features/user/user_scores").await?;
    assert_eq!(status, 200, "{body}");
    server
        .save("user", "user_scores", scores(Value::Null))
        .await?;
    let info = get_ok(&server, "/features/user/user_scores/info").await?;
    let score = &info["storage_info"]["columns"][1];
    assert_eq!(score["name"], "score");
    assert_eq!(score["logical_type"], "int64");
    Ok(())
}

// The same tests on the s3 kind (those that look at files under the data root have none).
crate::on_s3_too!(
    a_fold_keeps_the_tables_stored_types,
    an_all_null_column_is_null_value_online_until_a_push_gives_it_a_type,
    an_all_null_join_key_column_takes_its_entitys_type,
    an_all_null_column_takes_the_type_its_view_declares,
);
