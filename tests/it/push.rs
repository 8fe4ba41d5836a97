//! `POST /push` as a producer sees it: the view a push source names, rows served by the next
//! online lookup whichever store they went to (latest event wins, TTL and future rows as for
//! any row), online rows durable across a restart and forgotten with their table, offline rows
//! appended as standalone Parquet part files that pages, info and restarts see and that are
//! folded into the table file once `storage.compact_after_parts` wait or dropped by a full
//! replace, composite keys, and every validation error with nothing written.
//!
//! The background fold after a quiet moment is held off here ([`hold_folds`]) so that each
//! test sees the parts its pushes wrote; `fold.rs` tests folding itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use featurestore::cache::ManualClock;
use featurestore::config::Config;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value, json};

use crate::common::instants::*;
use crate::common::{
    TestResult, TestServer, assert_problem, featurestore_ok, micros, online_slots, restart_with,
    slot,
};

const PUSH: &str = "/push";
const ONLINE: &str = "/get-online-features";
const PROFILE_PAGE: &str = "/features/user/user_profile?limit=1000";
const PROFILE_INFO: &str = "/features/user/user_profile/info";
/// `user_profile`'s TTL.
const DAY_SECS: u64 = 86_400;

/// `user/user_profile`: user 1 at T0 − 1 h (age 30), user 2 at T0 − 2 h (age 25).
pub(crate) fn profile_records() -> Value {
    json!([
        {"user_id": 1, "age": 30, "avg_rating": 4.0, "favorite_genre": "Drama", "event_timestamp": T0_MINUS_1H},
        {"user_id": 2, "age": 25, "avg_rating": 3.5, "favorite_genre": "Comedy", "event_timestamp": T0_MINUS_2H},
    ])
}

/// Entities `user_id` and `movie_id`; `user_profile` (TTL one day, push source
/// `profile_push`) and `user_movie` (keyed by both, push source `user_movie_push`).
pub(crate) fn registry_document() -> Value {
    json!({
        "entities": [
            {"name": "user_id", "value_type": "int64"},
            {"name": "movie_id", "value_type": "int64"},
        ],
        "feature_views": [
            {"name": "user_profile", "group": "user", "entities": ["user_id"],
             "timestamp_field": "event_timestamp", "ttl_seconds": DAY_SECS,
             "push_source": "profile_push"},
            {"name": "user_movie", "group": "interaction", "entities": ["user_id", "movie_id"],
             "timestamp_field": "event_timestamp", "ttl_seconds": DAY_SECS,
             "push_source": "user_movie_push"},
        ],
    })
}

/// Saves the two tables on `server` and applies [`registry_document`].
pub(crate) async fn populate(server: &TestServer) -> TestResult {
    server
        .save(
            "user",
            "user_profile",
            json!({"records": profile_records(), "entity_key": ["user_id"]}),
        )
        .await?;
    server
        .save(
            "interaction",
            "user_movie",
            json!({"entity_key": ["user_id", "movie_id"], "records": [
                {"user_id": 1, "movie_id": 10, "rating": 3, "event_timestamp": T0_MINUS_1H},
                {"user_id": 1, "movie_id": 11, "rating": 4, "event_timestamp": T0_MINUS_1H},
            ]}),
        )
        .await?;
    server.apply(&registry_document()).await?;
    Ok(())
}

/// A server whose clock stands at T0, with the tables and registry of [`populate`].
/// Holds off the background fold that follows a quiet moment (not the one that follows
/// `compact_after_parts` parts).
pub(crate) fn hold_folds(config: &mut Config) {
    config.storage.fold_delay_ms = 60_000;
}

async fn fixture() -> TestResult<(TestServer, Arc<ManualClock>)> {
    let clock = Arc::new(ManualClock::starting_at(micros(T0)?));
    let server = TestServer::start_with_clock(clock.clone(), hold_folds)?;
    populate(&server).await?;
    Ok((server, clock))
}

/// A server on the system clock (a restarted server cannot keep a manual one) with the
/// tables and registry of [`populate`], `user_profile` without a TTL so that its 2025 rows are
/// PRESENT whatever the date the suite runs on.
pub(crate) async fn fixture_on_system_clock(
    tweak: impl FnOnce(&mut Config),
) -> TestResult<TestServer> {
    let server = TestServer::start_with(|c| {
        hold_folds(c);
        tweak(c)
    })?;
    populate(&server).await?;
    server
        .apply(&json!({"feature_views": [
            {"name": "user_profile", "group": "user", "entities": ["user_id"],
             "timestamp_field": "event_timestamp", "push_source": "profile_push"},
        ]}))
        .await?;
    Ok(server)
}

/// A `user_profile` df of one row.
pub(crate) fn profile_row(user_id: i64, age: i64, rating: f64, genre: &str, at: &str) -> Value {
    json!({
        "user_id": [user_id], "age": [age], "avg_rating": [rating],
        "favorite_genre": [genre], "event_timestamp": [at],
    })
}

/// `POST /push`, checked to be a 200; returns the body.
pub(crate) async fn push_ok(server: &TestServer, body: Value) -> TestResult<Value> {
    let (status, answer) = server.post(PUSH, &body).await?;
    if status != 200 {
        return Err(format!("push {body} answered {status}: {answer}").into());
    }
    Ok(answer)
}

/// Pushes `df` to `user_profile` by its push source.
pub(crate) async fn push_profile(server: &TestServer, df: Value, to: &str) -> TestResult<Value> {
    push_ok(
        server,
        json!({"push_source_name": "profile_push", "df": df, "to": to}),
    )
    .await
}

/// `POST /get-online-features`, checked to be a 200.
pub(crate) async fn online_ok(server: &TestServer, body: Value) -> TestResult<Value> {
    let (status, answer) = server.post(ONLINE, &body).await?;
    if status != 200 {
        return Err(format!("{body} answered {status}: {answer}").into());
    }
    Ok(answer)
}

/// The `age` slot of each user, online.
pub(crate) async fn ages(
    server: &TestServer,
    users: &[i64],
) -> TestResult<Vec<(Value, String, String)>> {
    let answer = online_ok(
        server,
        json!({"features": ["user_profile:age"], "entities": {"user_id": users}}),
    )
    .await?;
    online_slots(&answer, "age")
}

/// GET `path`, checked to be a 200.
pub(crate) async fn get_ok(server: &TestServer, path: &str) -> TestResult<Value> {
    let (status, body) = server.get(path).await?;
    if status != 200 {
        return Err(format!("GET {path} answered {status}: {body}").into());
    }
    Ok(body)
}

/// `(user_id, age, event_timestamp)` of every row of a `user_profile` page, in page order.
fn page_rows(page: &Value) -> TestResult<Vec<(i64, i64, String)>> {
    page["data"]
        .as_array()
        .ok_or_else(|| format!("a page without data: {page}"))?
        .iter()
        .map(|row| {
            Ok((
                row["user_id"].as_i64().ok_or("user_id")?,
                row["age"].as_i64().ok_or("age")?,
                row["event_timestamp"]
                    .as_str()
                    .ok_or("event_timestamp")?
                    .to_owned(),
            ))
        })
        .collect()
}

/// The appended part files of `group/name`, relative to the data root, sorted.
/// The part files the current table file of `group/name` reads (those of older table files
/// stay on disk for the table's history until retention lets them go).
pub(crate) fn part_files(server: &TestServer, group: &str, name: &str) -> Vec<PathBuf> {
    let Some(base_version) = footer_version(
        &server
            .root()
            .join(format!("features/{group}/{name}.parquet")),
    ) else {
        return Vec::new();
    };
    let prefix = Path::new("features")
        .join(group)
        .join("_appends")
        .join(name)
        .join(format!("v{base_version}"));
    server
        .files()
        .into_iter()
        .filter(|p| p.starts_with(&prefix) && p.extension().is_some_and(|e| e == "parquet"))
        .collect()
}

/// The version featurestore wrote into a table file's footer.
fn footer_version(path: &Path) -> Option<u64> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let reader = SerializedFileReader::new(std::fs::File::open(path).ok()?).ok()?;
    let meta = reader.metadata().file_metadata().key_value_metadata()?;
    let json = meta
        .iter()
        .find(|kv| kv.key == "featurestore.meta")?
        .value
        .clone()?;
    serde_json::from_str::<Value>(&json).ok()?["version"].as_u64()
}

/// What a user can see of `user_profile` without looking up keys: its page (rows and
/// metadata), its info's row count and version, and its files on disk.
async fn profile_state(server: &TestServer) -> TestResult<Value> {
    let page = get_ok(server, PROFILE_PAGE).await?;
    let info = get_ok(server, PROFILE_INFO).await?;
    let files: Vec<String> = server
        .files()
        .iter()
        .filter(|p| p.starts_with("features"))
        .map(|p| p.display().to_string())
        .collect();
    Ok(json!({
        "data": page["data"],
        "total_rows": page["metadata"]["total_rows"],
        "version": page["metadata"]["version"],
        "row_count": info["storage_info"]["row_count"],
        "info_version": info["storage_info"]["version"],
        "files": files,
    }))
}

/// The fields of each entry of `errors` of a problem.
fn error_fields(problem: &Value) -> Vec<&str> {
    problem["errors"]
        .as_array()
        .map(|errors| errors.iter().filter_map(|e| e["field"].as_str()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn an_online_push_is_served_at_once_without_touching_the_table() -> TestResult {
    let (server, _clock) = fixture().await?;
    let before = profile_state(&server).await?;

    // `to` left out: Feast's default, online.
    let answer = push_ok(
        &server,
        json!({"push_source_name": "profile_push", "df": {
            "user_id": [1, 7], "age": [31, 44], "avg_rating": [4.5, 2.0],
            "favorite_genre": ["Action", "Horror"], "event_timestamp": [T0_MINUS_1M, T0_MINUS_30M],
        }}),
    )
    .await?;
    assert_eq!(
        answer,
        json!({"feature_view": "user_profile", "rows": 2, "to": "online"})
    );

    let lookup = online_ok(
        &server,
        json!({"features": ["user_profile:age", "user_profile:favorite_genre"],
               "entities": {"user_id": [1, 2, 7]}}),
    )
    .await?;
    assert_eq!(
        online_slots(&lookup, "age")?,
        [
            slot(json!(31), "PRESENT", T0_MINUS_1M),
            slot(json!(25), "PRESENT", T0_MINUS_2H),
            slot(json!(44), "PRESENT", T0_MINUS_30M),
        ]
    );
    assert_eq!(
        online_slots(&lookup, "favorite_genre")?,
        [
            slot(json!("Action"), "PRESENT", T0_MINUS_1M),
            slot(json!("Comedy"), "PRESENT", T0_MINUS_2H),
            slot(json!("Horror"), "PRESENT", T0_MINUS_30M),
        ]
    );
    // The table (rows, version, files) is as it was; the rows live in the online store.
    assert_eq!(profile_state(&server).await?, before);
    assert!(server.root().join("online").is_dir());
    Ok(())
}

#[tokio::test]
async fn a_push_source_a_view_name_or_feature_view_all_reach_the_view() -> TestResult {
    let (server, _clock) = fixture().await?;
    for (user, target) in [
        (11, json!({"push_source_name": "profile_push"})),
        (12, json!({"push_source_name": "user_profile"})),
        (13, json!({"feature_view": "user_profile"})),
    ] {
        let mut body = target.clone();
        body["df"] = profile_row(user, user, 1.0, "Drama", T0_MINUS_1M);
        body["to"] = json!("online");
        let answer = push_ok(&server, body).await?;
        assert_eq!(answer["feature_view"], "user_profile", "{target}");
        assert_eq!(answer["rows"], 1, "{target}");
    }
    assert_eq!(
        ages(&server, &[11, 12, 13]).await?,
        [
            slot(json!(11), "PRESENT", T0_MINUS_1M),
            slot(json!(12), "PRESENT", T0_MINUS_1M),
            slot(json!(13), "PRESENT", T0_MINUS_1M),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn a_push_source_name_matches_a_push_source_before_a_view_of_that_name() -> TestResult {
    let (server, _clock) = fixture().await?;
    server
        .save(
            "misc",
            "scores",
            json!({"entity_key": ["user_id"], "records": [
                {"user_id": 1, "score": 0.5, "event_timestamp": T0_MINUS_1H},
            ]}),
        )
        .await?;
    // `scores` is fed by the push source named like the other view.
    server
        .apply(&json!({"feature_views": [
            {"name": "scores", "group": "misc", "entities": ["user_id"],
             "timestamp_field": "event_timestamp", "push_source": "user_profile"},
        ]}))
        .await?;
    let answer = push_ok(
        &server,
        json!({"push_source_name": "user_profile",
               "df": {"user_id": [1], "score": [0.75], "event_timestamp": [T0_MINUS_1M]}}),
    )
    .await?;
    assert_eq!(answer["feature_view"], "scores");
    let lookup = online_ok(
        &server,
        json!({"features": ["scores:score"], "entities": {"user_id": [1]}}),
    )
    .await?;
    assert_eq!(
        online_slots(&lookup, "score")?,
        [slot(json!(0.75), "PRESENT", T0_MINUS_1M)]
    );
    Ok(())
}

#[tokio::test]
async fn the_latest_event_wins_between_pushed_and_table_rows_whatever_the_push_order() -> TestResult
{
    let (server, _clock) = fixture().await?;
    // User 1's table row is at T0 − 1 h: an older push, online or offline, does not replace it.
    push_profile(
        &server,
        profile_row(1, 90, 1.0, "Old", T0_MINUS_2H),
        "online",
    )
    .await?;
    push_profile(
        &server,
        profile_row(1, 91, 1.0, "Old", T0_MINUS_3H),
        "offline",
    )
    .await?;
    // User 2's table row is at T0 − 2 h: a newer push replaces it, and an older one pushed
    // after it does not undo that.
    push_profile(
        &server,
        profile_row(2, 26, 3.5, "Drama", T0_MINUS_30M),
        "online",
    )
    .await?;
    push_profile(
        &server,
        profile_row(2, 92, 1.0, "Old", T0_MINUS_1H),
        "online",
    )
    .await?;
    assert_eq!(
        ages(&server, &[1, 2]).await?,
        [
            slot(json!(30), "PRESENT", T0_MINUS_1H),
            slot(json!(26), "PRESENT", T0_MINUS_30M),
        ]
    );
    // A newer table row (written offline) beats the online push of user 2.
    push_profile(
        &server,
        profile_row(2, 27, 3.5, "Drama", T0_MINUS_1M),
        "offline",
    )
    .await?;
    assert_eq!(
        ages(&server, &[2]).await?,
        [slot(json!(27), "PRESENT", T0_MINUS_1M)]
    );
    Ok(())
}

#[tokio::test]
async fn online_pushes_survive_a_restart() -> TestResult {
    let server = fixture_on_system_clock(hold_folds).await?;
    push_profile(&server, profile_row(1, 31, 4.5, "Action", T0), "online").await?;
    push_profile(
        &server,
        profile_row(8, 18, 2.5, "Anime", T0_MINUS_1M),
        "online",
    )
    .await?;
    let expected = [
        slot(json!(31), "PRESENT", T0),
        slot(json!(25), "PRESENT", T0_MINUS_2H),
        slot(json!(18), "PRESENT", T0_MINUS_1M),
    ];
    assert_eq!(ages(&server, &[1, 2, 8]).await?, expected);

    let server = restart_with(server, hold_folds).await?;
    assert_eq!(ages(&server, &[1, 2, 8]).await?, expected);
    // Still only the two saved rows in the table.
    let page = get_ok(&server, PROFILE_PAGE).await?;
    assert_eq!(page["metadata"]["total_rows"], 2);
    Ok(())
}

#[tokio::test]
async fn an_offline_push_appends_a_part_file_that_pages_info_and_lookups_see() -> TestResult {
    let (server, _clock) = fixture().await?;
    let base = server.root().join("features/user/user_profile.parquet");
    let base_bytes = std::fs::read(&base)?;

    let answer = push_profile(
        &server,
        json!({"user_id": [1, 9], "age": [31, 50], "avg_rating": [4.5, 1.5],
               "favorite_genre": ["Action", "Noir"], "event_timestamp": [T0_MINUS_1M, T0_MINUS_30M]}),
        "offline",
    )
    .await?;
    assert_eq!(
        answer,
        json!({"feature_view": "user_profile", "rows": 2, "to": "offline",
               "offline": {"version": 2, "total_rows": 4, "parts": 1, "compacted": false}})
    );

    // One part file under the base file's id; the base file is untouched.
    let parts = part_files(&server, "user", "user_profile");
    assert_eq!(parts.len(), 1, "{parts:?}");
    assert_eq!(
        parts[0].file_name().and_then(|n| n.to_str()),
        Some("part-000001.parquet")
    );
    assert_eq!(
        parts[0].parent().and_then(Path::parent),
        Some(Path::new("features/user/_appends/user_profile"))
    );
    assert_eq!(std::fs::read(&base)?, base_bytes);

    // Pages end with the appended rows; info counts them; the version moved.
    let page = get_ok(&server, PROFILE_PAGE).await?;
    assert_eq!(
        page_rows(&page)?,
        [
            (1, 30, T0_MINUS_1H.to_owned()),
            (2, 25, T0_MINUS_2H.to_owned()),
            (1, 31, T0_MINUS_1M.to_owned()),
            (9, 50, T0_MINUS_30M.to_owned()),
        ]
    );
    assert_eq!(page["data"][3]["favorite_genre"], "Noir");
    assert_eq!(page["data"][3]["avg_rating"], 1.5);
    assert_eq!(page["metadata"]["total_rows"], 4);
    assert_eq!(page["metadata"]["version"], 2);
    let tail = get_ok(&server, "/features/user/user_profile?offset=3&limit=5").await?;
    assert_eq!(page_rows(&tail)?, [(9, 50, T0_MINUS_30M.to_owned())]);
    let info = get_ok(&server, PROFILE_INFO).await?;
    assert_eq!(info["storage_info"]["row_count"], 4);
    assert_eq!(info["storage_info"]["version"], 2);

    assert_eq!(
        ages(&server, &[1, 2, 9]).await?,
        [
            slot(json!(31), "PRESENT", T0_MINUS_1M),
            slot(json!(25), "PRESENT", T0_MINUS_2H),
            slot(json!(50), "PRESENT", T0_MINUS_30M),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn an_online_and_offline_push_is_in_the_table_and_served() -> TestResult {
    let (server, _clock) = fixture().await?;
    let answer = push_profile(
        &server,
        profile_row(3, 33, 3.0, "Western", T0_MINUS_1M),
        "online_and_offline",
    )
    .await?;
    assert_eq!(
        answer,
        json!({"feature_view": "user_profile", "rows": 1, "to": "online_and_offline",
               "offline": {"version": 2, "total_rows": 3, "parts": 1, "compacted": false}})
    );
    let page = get_ok(&server, PROFILE_PAGE).await?;
    assert_eq!(
        page_rows(&page)?.last(),
        Some(&(3, 33, T0_MINUS_1M.to_owned()))
    );
    assert_eq!(
        ages(&server, &[3]).await?,
        [slot(json!(33), "PRESENT", T0_MINUS_1M)]
    );
    Ok(())
}

/// Every row of a Parquet file, read with the parquet crate alone.
pub(crate) fn read_parquet(path: &Path) -> TestResult<RecordBatch> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path)?)?.build()?;
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    let schema = batches.first().ok_or("a file without batches")?.schema();
    Ok(arrow::compute::concat_batches(&schema, &batches)?)
}

/// Column `name` of `batch` cast to `to` (the store may keep narrower types on disk).
fn cast_column(
    batch: &RecordBatch,
    name: &str,
    to: &DataType,
) -> TestResult<arrow::array::ArrayRef> {
    let column = batch
        .column_by_name(name)
        .ok_or_else(|| format!("no column {name} in {:?}", batch.schema()))?;
    Ok(arrow::compute::cast(column, to)?)
}

#[tokio::test]
async fn an_appended_part_is_a_parquet_file_of_its_own() -> TestResult {
    let (server, _clock) = fixture().await?;
    push_profile(
        &server,
        profile_row(4, 44, 2.25, "Musical", "2025-06-01T11:59:00+02:00"),
        "offline",
    )
    .await?;
    let parts = part_files(&server, "user", "user_profile");
    assert_eq!(parts.len(), 1, "{parts:?}");
    let batch = read_parquet(&server.root().join(&parts[0]))?;
    assert_eq!(batch.num_rows(), 1);
    let mut names: Vec<&str> = batch
        .schema_ref()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "age",
            "avg_rating",
            "event_timestamp",
            "favorite_genre",
            "user_id"
        ]
    );
    let user = cast_column(&batch, "user_id", &DataType::Int64)?;
    assert_eq!(user.as_primitive::<Int64Type>().value(0), 4);
    let age = cast_column(&batch, "age", &DataType::Int64)?;
    assert_eq!(age.as_primitive::<Int64Type>().value(0), 44);
    let rating = cast_column(&batch, "avg_rating", &DataType::Float64)?;
    assert_eq!(rating.as_primitive::<Float64Type>().value(0), 2.25);
    let genre = cast_column(&batch, "favorite_genre", &DataType::Utf8)?;
    assert_eq!(genre.as_string::<i32>().value(0), "Musical");
    let at = cast_column(
        &batch,
        "event_timestamp",
        &DataType::Timestamp(TimeUnit::Microsecond, None),
    )?;
    let at = at.as_primitive::<TimestampMicrosecondType>();
    assert!(at.is_valid(0));
    assert_eq!(at.value(0), micros(T0_MINUS_1M)?);
    Ok(())
}

#[tokio::test]
async fn appended_values_outside_the_base_files_narrow_types_read_back_exactly() -> TestResult {
    let (server, _clock) = fixture().await?;
    // The base holds small positive integers and quarter-step floats, which the store may keep
    // in narrow types; the part needs wide ones.
    push_profile(
        &server,
        profile_row(5_000_000_000, -7, 0.1, "Épopée", T0_MINUS_1M),
        "offline",
    )
    .await?;
    let page = get_ok(&server, PROFILE_PAGE).await?;
    assert_eq!(
        page["data"][2],
        json!({"user_id": 5_000_000_000_i64, "age": -7, "avg_rating": 0.1,
               "favorite_genre": "Épopée", "event_timestamp": T0_MINUS_1M})
    );
    assert_eq!(page["metadata"]["dtypes"]["user_id"], "int64");
    assert_eq!(page["metadata"]["dtypes"]["avg_rating"], "float64");
    assert_eq!(
        ages(&server, &[5_000_000_000]).await?,
        [slot(json!(-7), "PRESENT", T0_MINUS_1M)]
    );
    Ok(())
}

#[tokio::test]
async fn a_float_column_takes_integers_and_timestamps_take_any_offset() -> TestResult {
    let (server, _clock) = fixture().await?;
    push_profile(
        &server,
        json!({"user_id": [6], "age": [60], "avg_rating": [4], "favorite_genre": ["Drama"],
               "event_timestamp": ["2025-06-01T04:30:00-05:00"]}),
        "online_and_offline",
    )
    .await?;
    let lookup = online_ok(
        &server,
        json!({"features": ["user_profile:avg_rating"], "entities": {"user_id": [6]}}),
    )
    .await?;
    let slots = online_slots(&lookup, "avg_rating")?;
    assert_eq!(slots.len(), 1);
    assert_eq!(slots[0].0.as_f64(), Some(4.0), "{lookup}");
    assert_eq!(
        (slots[0].1.as_str(), slots[0].2.as_str()),
        ("PRESENT", T0_MINUS_30M)
    );
    let page = get_ok(&server, PROFILE_PAGE).await?;
    assert_eq!(page["data"][2]["avg_rating"].as_f64(), Some(4.0));
    assert_eq!(page["data"][2]["event_timestamp"], T0_MINUS_30M);
    Ok(())
}

/// Waits (at most 10 s) until `group/name` has no part files left.
pub(crate) async fn parts_folded(server: &TestServer, group: &str, name: &str) -> TestResult {
    for _ in 0..200 {
        if part_files(server, group, name).is_empty() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(format!("the parts of {group}/{name} were not folded within 10 s").into())
}

#[tokio::test]
async fn the_sixteenth_part_is_folded_into_the_table_file_without_waiting_for_quiet() -> TestResult
{
    let (server, _clock) = fixture().await?;
    let base = server.root().join("features/user/user_profile.parquet");
    let base_bytes = std::fs::read(&base)?;
    for i in 1..=16_i64 {
        let answer = push_profile(
            &server,
            profile_row(100 + i, i, 1.0, "Drama", T0_MINUS_1M),
            "offline",
        )
        .await?;
        // Each append is a version, and none rewrites the table file.
        assert_eq!(
            answer["offline"],
            json!({"version": 1 + i, "total_rows": 2 + i, "parts": i, "compacted": false}),
            "push {i}"
        );
    }
    // The fold runs in the background, at once: sixteen parts wait, quiet or not.
    parts_folded(&server, "user", "user_profile").await?;
    assert_ne!(
        std::fs::read(&base)?,
        base_bytes,
        "the table file was not rewritten"
    );
    assert_eq!(read_parquet(&base)?.num_rows(), 18);

    let page = get_ok(&server, PROFILE_PAGE).await?;
    let rows = page_rows(&page)?;
    assert_eq!(rows.len(), 18);
    assert_eq!(rows[0], (1, 30, T0_MINUS_1H.to_owned()));
    assert_eq!(rows[1], (2, 25, T0_MINUS_2H.to_owned()));
    for (i, row) in rows[2..].iter().enumerate() {
        let i = i as i64 + 1;
        assert_eq!(row, &(100 + i, i, T0_MINUS_1M.to_owned()));
    }
    // The fold changes no row, so it keeps the version.
    assert_eq!(page["metadata"]["version"], 17);
    assert_eq!(
        get_ok(&server, PROFILE_INFO).await?["storage_info"]["row_count"],
        18
    );
    assert_eq!(
        ages(&server, &[101, 116]).await?,
        [
            slot(json!(1), "PRESENT", T0_MINUS_1M),
            slot(json!(16), "PRESENT", T0_MINUS_1M),
        ]
    );

    // The next append starts a new series of parts.
    let answer = push_profile(
        &server,
        profile_row(120, 2, 1.0, "Drama", T0_MINUS_1M),
        "offline",
    )
    .await?;
    assert_eq!(
        answer["offline"],
        json!({"version": 18, "total_rows": 19, "parts": 1, "compacted": false})
    );
    Ok(())
}

#[tokio::test]
async fn compact_after_parts_sets_how_many_parts_wait_before_a_fold() -> TestResult {
    let compact = |c: &mut Config| c.storage.compact_after_parts = 2;
    let server = fixture_on_system_clock(compact).await?;
    // A row pushed online only is not in the table and outlives its rewrites.
    push_profile(&server, profile_row(7, 70, 1.0, "Drama", T0), "online").await?;
    let answer = push_profile(
        &server,
        profile_row(11, 41, 1.0, "Drama", T0_MINUS_1M),
        "online_and_offline",
    )
    .await?;
    assert_eq!(answer["offline"]["parts"], 1);
    // One part waits for quiet (held off here); the second is folded with it at once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(part_files(&server, "user", "user_profile").len(), 1);
    for i in 2..=5_i64 {
        push_profile(
            &server,
            profile_row(10 + i, 40 + i, 1.0, "Drama", T0_MINUS_1M),
            "online_and_offline",
        )
        .await?;
    }
    // Five parts, folded two at a time: one may still wait.
    for _ in 0..100 {
        if part_files(&server, "user", "user_profile").len() <= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(part_files(&server, "user", "user_profile").len() <= 1);
    let before = get_ok(&server, PROFILE_PAGE).await?;
    assert_eq!(before["metadata"]["total_rows"], 7);
    assert_eq!(ages(&server, &[7]).await?, [slot(json!(70), "PRESENT", T0)]);

    // A folded table with a pending part reads the same after a restart.
    let server = restart_with(server, |c| {
        hold_folds(c);
        compact(c)
    })
    .await?;
    let after = get_ok(&server, PROFILE_PAGE).await?;
    assert_eq!(after["data"], before["data"]);
    assert_eq!(
        after["metadata"]["total_rows"],
        before["metadata"]["total_rows"]
    );
    assert_eq!(
        ages(&server, &[11, 15, 7]).await?,
        [
            slot(json!(41), "PRESENT", T0_MINUS_1M),
            slot(json!(45), "PRESENT", T0_MINUS_1M),
            slot(json!(70), "PRESENT", T0),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn appended_rows_survive_a_restart() -> TestResult {
    let server = fixture_on_system_clock(hold_folds).await?;
    push_profile(&server, profile_row(1, 31, 4.5, "Action", T0), "offline").await?;
    push_profile(
        &server,
        profile_row(9, 19, 2.0, "Noir", T0_MINUS_1M),
        "online_and_offline",
    )
    .await?;
    let before = profile_state(&server).await?;
    assert_eq!(before["total_rows"], 4);
    assert_eq!(before["version"], 3);

    let server = restart_with(server, hold_folds).await?;
    assert_eq!(profile_state(&server).await?, before);
    assert_eq!(
        ages(&server, &[1, 9]).await?,
        [
            slot(json!(31), "PRESENT", T0),
            slot(json!(19), "PRESENT", T0_MINUS_1M),
        ]
    );
    // Appending after the restart continues the series.
    let answer = push_profile(
        &server,
        profile_row(10, 20, 2.0, "Noir", T0_MINUS_1M),
        "offline",
    )
    .await?;
    assert_eq!(
        answer["offline"],
        json!({"version": 4, "total_rows": 5, "parts": 3, "compacted": false})
    );
    Ok(())
}

#[tokio::test]
async fn a_full_replace_drops_the_appended_rows_and_their_files() -> TestResult {
    let (server, _clock) = fixture().await?;
    push_profile(
        &server,
        profile_row(9, 19, 2.0, "Noir", T0_MINUS_1M),
        "offline",
    )
    .await?;
    push_profile(
        &server,
        profile_row(1, 31, 4.5, "Action", T0_MINUS_1M),
        "online_and_offline",
    )
    .await?;
    assert_eq!(part_files(&server, "user", "user_profile").len(), 2);

    server
        .save(
            "user",
            "user_profile",
            json!({"records": [
                {"user_id": 1, "age": 35, "avg_rating": 4.0, "favorite_genre": "Drama", "event_timestamp": T0_MINUS_30M},
            ]}),
        )
        .await?;
    let page = get_ok(&server, PROFILE_PAGE).await?;
    assert_eq!(page_rows(&page)?, [(1, 35, T0_MINUS_30M.to_owned())]);
    assert_eq!(page["metadata"]["version"], 4);
    assert_eq!(
        get_ok(&server, PROFILE_INFO).await?["storage_info"]["row_count"],
        1
    );
    assert_eq!(
        part_files(&server, "user", "user_profile"),
        Vec::<PathBuf>::new()
    );
    // User 1's pushed row (newer than the replacement's) was part of the old table.
    assert_eq!(
        ages(&server, &[1, 9]).await?,
        [
            slot(json!(35), "PRESENT", T0_MINUS_30M),
            slot(Value::Null, "NOT_FOUND", EPOCH),
        ]
    );

    // Appends to the new table start a new series.
    let answer = push_profile(
        &server,
        profile_row(2, 26, 1.0, "Drama", T0_MINUS_1M),
        "offline",
    )
    .await?;
    assert_eq!(
        answer["offline"],
        json!({"version": 5, "total_rows": 2, "parts": 1, "compacted": false})
    );
    Ok(())
}

#[tokio::test]
async fn pushed_rows_obey_the_views_ttl_and_the_clock() -> TestResult {
    let (server, clock) = fixture().await?;
    // User 3: older than the one-day TTL. User 4: an hour old. User 5: an hour ahead.
    push_profile(
        &server,
        profile_row(3, 33, 1.0, "Drama", T0_MINUS_2D),
        "online",
    )
    .await?;
    push_profile(
        &server,
        profile_row(4, 44, 1.0, "Drama", T0_MINUS_1H),
        "offline",
    )
    .await?;
    push_profile(
        &server,
        profile_row(5, 55, 1.0, "Drama", T0_PLUS_1H),
        "online",
    )
    .await?;
    push_profile(
        &server,
        profile_row(6, 66, 1.0, "Drama", T0_PLUS_1H),
        "offline",
    )
    .await?;
    assert_eq!(
        ages(&server, &[3, 4, 5, 6]).await?,
        [
            slot(Value::Null, "OUTSIDE_MAX_AGE", T0_MINUS_2D),
            slot(json!(44), "PRESENT", T0_MINUS_1H),
            slot(Value::Null, "NOT_FOUND", EPOCH),
            slot(Value::Null, "NOT_FOUND", EPOCH),
        ]
    );

    // Two hours later, users 5 and 6 are served.
    clock.advance(Duration::from_secs(2 * 3600));
    assert_eq!(
        ages(&server, &[3, 4, 5, 6]).await?,
        [
            slot(Value::Null, "OUTSIDE_MAX_AGE", T0_MINUS_2D),
            slot(json!(44), "PRESENT", T0_MINUS_1H),
            slot(json!(55), "PRESENT", T0_PLUS_1H),
            slot(json!(66), "PRESENT", T0_PLUS_1H),
        ]
    );
    // A day after user 4's row and one microsecond, it has expired; 5 and 6 have not.
    clock.advance(Duration::from_secs(DAY_SECS - 3 * 3600));
    clock.advance(Duration::from_micros(1));
    assert_eq!(
        ages(&server, &[3, 4, 5, 6]).await?,
        [
            slot(Value::Null, "OUTSIDE_MAX_AGE", T0_MINUS_2D),
            slot(Value::Null, "OUTSIDE_MAX_AGE", T0_MINUS_1H),
            slot(json!(55), "PRESENT", T0_PLUS_1H),
            slot(json!(66), "PRESENT", T0_PLUS_1H),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn a_view_keyed_by_two_entities_takes_pushes_by_the_key_pair() -> TestResult {
    let (server, _clock) = fixture().await?;
    push_ok(
        &server,
        json!({"push_source_name": "user_movie_push", "to": "online", "df": {
            "user_id": [1, 2], "movie_id": [10, 10], "rating": [5, 2],
            "event_timestamp": [T0_MINUS_1M, T0_MINUS_1M]}}),
    )
    .await?;
    let answer = push_ok(
        &server,
        json!({"feature_view": "user_movie", "to": "offline", "df": {
            "user_id": [2], "movie_id": [11], "rating": [1], "event_timestamp": [T0_MINUS_30M]}}),
    )
    .await?;
    assert_eq!(answer["offline"]["total_rows"], 3);
    let lookup = online_ok(
        &server,
        json!({"features": ["user_movie:rating"],
               "entities": {"user_id": [1, 1, 2, 2, 1], "movie_id": [10, 11, 10, 11, 12]}}),
    )
    .await?;
    assert_eq!(
        online_slots(&lookup, "rating")?,
        [
            slot(json!(5), "PRESENT", T0_MINUS_1M),
            slot(json!(4), "PRESENT", T0_MINUS_1H),
            slot(json!(2), "PRESENT", T0_MINUS_1M),
            slot(json!(1), "PRESENT", T0_MINUS_30M),
            slot(Value::Null, "NOT_FOUND", EPOCH),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn the_demos_interactions_take_pushes_by_their_push_source() -> TestResult {
    let data = tempfile::tempdir()?;
    let now = chrono::Utc::now();
    let as_of =
        (now - chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let pushed_at =
        (now - chrono::Duration::minutes(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let dir = data.path().to_str().ok_or("a UTF-8 temporary path")?;
    featurestore_ok(&[
        "demo",
        "--data-dir",
        dir,
        "--users",
        "20",
        "--movies",
        "10",
        "--interactions",
        "100",
        "--seed",
        "3",
        "--as-of",
        &as_of,
    ])?;
    let server = TestServer::start_on(data, hold_folds)?;
    let answer = push_ok(
        &server,
        json!({"push_source_name": "user_movie_interactions_push", "to": "online_and_offline",
               "df": {"user_id": [1, 2], "movie_id": [3, 3], "rating": [5, 1],
                      "watch_minutes": [120, 7], "completed": [true, false],
                      "interaction_type": ["watch", "click"],
                      "event_timestamp": [pushed_at, pushed_at]}}),
    )
    .await?;
    assert_eq!(answer["feature_view"], "user_movie_interactions");
    assert_eq!(answer["offline"]["total_rows"], 102);
    let lookup = online_ok(
        &server,
        json!({"features": ["user_movie_interactions:rating", "user_movie_interactions:completed"],
               "entities": {"user_id": [1, 2], "movie_id": [3, 3]}}),
    )
    .await?;
    let pushed_at = pushed_at.as_str();
    assert_eq!(
        online_slots(&lookup, "rating")?,
        [
            slot(json!(5), "PRESENT", pushed_at),
            slot(json!(1), "PRESENT", pushed_at),
        ]
    );
    assert_eq!(
        online_slots(&lookup, "completed")?,
        [
            slot(json!(true), "PRESENT", pushed_at),
            slot(json!(false), "PRESENT", pushed_at),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn deleting_a_table_forgets_what_was_pushed_to_it() -> TestResult {
    let (server, _clock) = fixture().await?;
    push_profile(
        &server,
        profile_row(7, 70, 1.0, "Drama", T0_MINUS_1M),
        "online",
    )
    .await?;
    push_profile(
        &server,
        profile_row(8, 80, 1.0, "Drama", T0_MINUS_1M),
        "offline",
    )
    .await?;
    assert_eq!(
        ages(&server, &[7, 8]).await?,
        [
            slot(json!(70), "PRESENT", T0_MINUS_1M),
            slot(json!(80), "PRESENT", T0_MINUS_1M),
        ]
    );

    let (status, body) = server.delete("/features/user/user_profile").await?;
    assert_eq!(status, 200, "body: {body}");
    assert_eq!(
        part_files(&server, "user", "user_profile"),
        Vec::<PathBuf>::new()
    );
    server
        .save(
            "user",
            "user_profile",
            json!({"records": profile_records(), "entity_key": ["user_id"]}),
        )
        .await?;
    server.apply(&registry_document()).await?;
    let page = get_ok(&server, PROFILE_PAGE).await?;
    assert_eq!(page["metadata"]["total_rows"], 2);
    assert_eq!(
        ages(&server, &[1, 7, 8]).await?,
        [
            slot(json!(30), "PRESENT", T0_MINUS_1H),
            slot(Value::Null, "NOT_FOUND", EPOCH),
            slot(Value::Null, "NOT_FOUND", EPOCH),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn a_deleted_tables_online_pushes_stay_forgotten_after_a_restart() -> TestResult {
    let server = fixture_on_system_clock(hold_folds).await?;
    push_profile(
        &server,
        profile_row(7, 70, 1.0, "Drama", T0_MINUS_1M),
        "online",
    )
    .await?;
    let (status, body) = server.delete("/features/user/user_profile").await?;
    assert_eq!(status, 200, "body: {body}");
    server
        .save(
            "user",
            "user_profile",
            json!({"records": profile_records(), "entity_key": ["user_id"]}),
        )
        .await?;
    let server = restart_with(server, hold_folds).await?;
    assert_eq!(
        ages(&server, &[1, 7]).await?,
        [
            slot(json!(30), "PRESENT", T0_MINUS_1H),
            slot(Value::Null, "NOT_FOUND", EPOCH),
        ]
    );
    Ok(())
}

/// A valid `user_profile` df of two rows (users 1 and 9).
fn two_rows() -> Value {
    json!({"user_id": [1, 9], "age": [31, 50], "avg_rating": [4.5, 1.5],
           "favorite_genre": ["Action", "Noir"], "event_timestamp": [T0_MINUS_1M, T0_MINUS_1M]})
}

#[tokio::test]
async fn an_invalid_df_is_422_naming_the_column_and_writes_nothing() -> TestResult {
    let (server, _clock) = fixture().await?;
    let state = profile_state(&server).await?;
    let online = ages(&server, &[1, 9]).await?;

    let with = |column: &str, values: Value| {
        let mut df = two_rows();
        df[column] = values;
        df
    };
    let without = |column: &str| {
        let mut df = two_rows();
        df.as_object_mut().map(|o| o.remove(column));
        df
    };
    let cases = [
        (
            "unknown column",
            with("zip_code", json!([1, 2])),
            "df.zip_code",
        ),
        (
            "missing column",
            without("favorite_genre"),
            "df.favorite_genre",
        ),
        ("missing join key", without("user_id"), "df.user_id"),
        (
            "missing timestamp",
            without("event_timestamp"),
            "df.event_timestamp",
        ),
        (
            "short column",
            with("favorite_genre", json!(["Action"])),
            "df.favorite_genre",
        ),
        (
            "long column",
            with("avg_rating", json!([4.5, 1.5, 2.5])),
            "df.avg_rating",
        ),
        (
            "fraction in an int column",
            with("age", json!([31, 2.5])),
            "df.age",
        ),
        (
            "text in an int column",
            with("age", json!([31, "x"])),
            "df.age",
        ),
        (
            "text in a float column",
            with("avg_rating", json!(["high", 1.5])),
            "df.avg_rating",
        ),
        (
            "number in a string column",
            with("favorite_genre", json!(["Action", 5])),
            "df.favorite_genre",
        ),
        (
            "null join key",
            with("user_id", json!([1, null])),
            "df.user_id",
        ),
        (
            "text join key",
            with("user_id", json!([1, "nine"])),
            "df.user_id",
        ),
        (
            "null event timestamp",
            with("event_timestamp", json!([T0_MINUS_1M, null])),
            "df.event_timestamp",
        ),
        (
            "bad event timestamp",
            with("event_timestamp", json!([T0_MINUS_1M, "yesterday"])),
            "df.event_timestamp",
        ),
        // (A timestamp without offset is UTC, as in every other input: accepted.)
        (
            "date without time",
            with("event_timestamp", json!([T0_MINUS_1M, "2025-06-01"])),
            "df.event_timestamp",
        ),
    ];
    for (case, df, field) in cases {
        for to in ["online", "offline", "online_and_offline"] {
            let (status, body) = server
                .post(
                    PUSH,
                    &json!({"push_source_name": "profile_push", "df": df, "to": to}),
                )
                .await?;
            assert_problem(status, &body, 422, "invalid_body");
            assert_eq!(body["errors"][0]["field"], field, "{case} ({to}): {body}");
        }
    }
    assert_eq!(profile_state(&server).await?, state);
    assert_eq!(ages(&server, &[1, 9]).await?, online);
    assert_eq!(online[1].1, "NOT_FOUND");
    Ok(())
}

#[tokio::test]
async fn a_null_feature_value_is_pushed_as_null() -> TestResult {
    let (server, _clock) = fixture().await?;
    push_profile(
        &server,
        json!({"user_id": [1], "age": [null], "avg_rating": [null], "favorite_genre": [null],
               "event_timestamp": [T0_MINUS_1M]}),
        "online",
    )
    .await?;
    assert_eq!(
        ages(&server, &[1]).await?,
        [slot(Value::Null, "NULL_VALUE", T0_MINUS_1M)]
    );
    Ok(())
}

#[tokio::test]
async fn a_column_given_twice_is_422_and_writes_nothing() -> TestResult {
    let (server, _clock) = fixture().await?;
    let state = profile_state(&server).await?;
    // `json!` cannot repeat a key: the body is sent as written.
    let response = server
        .client
        .post(server.url(PUSH))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(format!(
            r#"{{"push_source_name": "profile_push", "to": "online_and_offline", "df": {{
                "user_id": [1], "age": [31], "age": [99], "avg_rating": [4.5],
                "favorite_genre": ["Action"], "event_timestamp": ["{T0_MINUS_1M}"]}}}}"#
        ))
        .send()
        .await?;
    let (status, body) = crate::common::read(response).await?;
    assert_problem(status, &body, 422, "invalid_body");
    assert_eq!(body["errors"][0]["field"], "df.age", "body: {body}");
    assert_eq!(profile_state(&server).await?, state);
    assert_eq!(
        ages(&server, &[1]).await?,
        [slot(json!(30), "PRESENT", T0_MINUS_1H)]
    );
    Ok(())
}

#[tokio::test]
async fn both_or_neither_of_push_source_name_and_feature_view_is_422() -> TestResult {
    let (server, _clock) = fixture().await?;
    let state = profile_state(&server).await?;
    for target in [
        json!({"push_source_name": "profile_push", "feature_view": "user_profile"}),
        json!({}),
    ] {
        let mut body = target.clone();
        body["df"] = two_rows();
        body["to"] = json!("online_and_offline");
        let (status, problem) = server.post(PUSH, &body).await?;
        assert_problem(status, &problem, 422, "invalid_body");
        assert_eq!(
            error_fields(&problem),
            ["push_source_name"],
            "{target}: {problem}"
        );
    }
    assert_eq!(profile_state(&server).await?, state);
    assert_eq!(
        ages(&server, &[9]).await?,
        [slot(Value::Null, "NOT_FOUND", EPOCH)]
    );
    Ok(())
}

#[tokio::test]
async fn an_unknown_push_source_is_404_naming_it() -> TestResult {
    let (server, _clock) = fixture().await?;
    let (status, body) = server
        .post(
            PUSH,
            &json!({"push_source_name": "ghost_push", "df": two_rows()}),
        )
        .await?;
    assert_problem(status, &body, 404, "unknown_push_source");
    assert_eq!(error_fields(&body), ["push_source_name"], "body: {body}");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("ghost_push")),
        "body: {body}"
    );
    Ok(())
}

#[tokio::test]
async fn an_unknown_feature_view_is_404_naming_it() -> TestResult {
    let (server, _clock) = fixture().await?;
    // A push source is not a view name.
    for name in ["ghost", "profile_push"] {
        let (status, body) = server
            .post(PUSH, &json!({"feature_view": name, "df": two_rows()}))
            .await?;
        assert_problem(status, &body, 404, "unknown_feature_views");
        let messages: Vec<&str> = body["errors"]
            .as_array()
            .map(|e| e.iter().filter_map(|e| e["message"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(messages.len(), 1, "body: {body}");
        assert!(messages[0].contains(name), "body: {body}");
    }
    Ok(())
}

#[tokio::test]
async fn an_unknown_feature_view_is_reported_on_the_feature_view_field() -> TestResult {
    let (server, _clock) = fixture().await?;
    let (status, body) = server
        .post(PUSH, &json!({"feature_view": "ghost", "df": two_rows()}))
        .await?;
    assert_problem(status, &body, 404, "unknown_feature_views");
    assert_eq!(error_fields(&body), ["feature_view"], "body: {body}");
    Ok(())
}

#[tokio::test]
async fn a_target_other_than_the_three_is_422() -> TestResult {
    let (server, _clock) = fixture().await?;
    let state = profile_state(&server).await?;
    for to in ["both", "ONLINE", "offline_and_online", ""] {
        let (status, body) = server
            .post(
                PUSH,
                &json!({"push_source_name": "profile_push", "df": two_rows(), "to": to}),
            )
            .await?;
        assert_problem(status, &body, 422, "invalid_body");
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("online_and_offline")),
            "{to}: {body}"
        );
        assert_eq!(error_fields(&body), ["to"], "{to}: {body}");
    }
    // A df that is not an object of columns is refused the same way.
    for df in [json!([1, 2]), json!({"user_id": 1})] {
        let (status, body) = server
            .post(PUSH, &json!({"push_source_name": "profile_push", "df": df}))
            .await?;
        assert_problem(status, &body, 422, "invalid_body");
    }
    assert_eq!(profile_state(&server).await?, state);
    Ok(())
}

#[tokio::test]
async fn a_target_that_is_not_a_string_is_422_not_malformed_json() -> TestResult {
    let (server, _clock) = fixture().await?;
    let state = profile_state(&server).await?;
    for to in [
        json!(1),
        json!(true),
        json!(["online"]),
        json!({"online": true}),
    ] {
        let (status, body) = server
            .post(
                PUSH,
                &json!({"push_source_name": "profile_push", "df": two_rows(), "to": to}),
            )
            .await?;
        assert_problem(status, &body, 422, "invalid_body");
        assert_eq!(error_fields(&body), ["to"], "{to}: {body}");
    }
    assert_eq!(profile_state(&server).await?, state);
    assert_eq!(
        ages(&server, &[9]).await?,
        [slot(Value::Null, "NOT_FOUND", EPOCH)]
    );
    Ok(())
}

#[tokio::test]
async fn two_views_with_one_push_source_are_refused_by_apply() -> TestResult {
    let (server, _clock) = fixture().await?;
    let before = get_ok(&server, "/registry/feature-views").await?;
    // Against a view already registered, and between two views of one document.
    for doc in [
        json!({"feature_views": [
            {"name": "user_movie", "group": "interaction", "entities": ["user_id", "movie_id"],
             "timestamp_field": "event_timestamp", "push_source": "profile_push"},
        ]}),
        json!({"feature_views": [
            {"name": "user_profile", "group": "user", "entities": ["user_id"],
             "timestamp_field": "event_timestamp", "push_source": "shared_push"},
            {"name": "user_movie", "group": "interaction", "entities": ["user_id", "movie_id"],
             "timestamp_field": "event_timestamp", "push_source": "shared_push"},
        ]}),
    ] {
        let (status, body) = server.post("/registry/apply", &doc).await?;
        assert_problem(status, &body, 422, "invalid_definitions");
        let fields = error_fields(&body);
        assert!(
            fields.iter().any(|f| f.ends_with("push_source")),
            "{doc}: {body}"
        );
    }
    assert_eq!(get_ok(&server, "/registry/feature-views").await?, before);
    // `profile_push` still reaches `user_profile`.
    let answer = push_profile(
        &server,
        profile_row(3, 33, 1.0, "Drama", T0_MINUS_1M),
        "online",
    )
    .await?;
    assert_eq!(answer["feature_view"], "user_profile");
    Ok(())
}

// The same tests on the s3 kind (those that look at files under the data root have none).
crate::on_s3_too!(
    an_online_push_is_served_at_once_without_touching_the_table,
    a_push_source_a_view_name_or_feature_view_all_reach_the_view,
    a_push_source_name_matches_a_push_source_before_a_view_of_that_name,
    the_latest_event_wins_between_pushed_and_table_rows_whatever_the_push_order,
    online_pushes_survive_a_restart,
    an_online_and_offline_push_is_in_the_table_and_served,
    appended_values_outside_the_base_files_narrow_types_read_back_exactly,
    a_float_column_takes_integers_and_timestamps_take_any_offset,
    appended_rows_survive_a_restart,
    pushed_rows_obey_the_views_ttl_and_the_clock,
    a_view_keyed_by_two_entities_takes_pushes_by_the_key_pair,
    the_demos_interactions_take_pushes_by_their_push_source,
    deleting_a_table_forgets_what_was_pushed_to_it,
    a_deleted_tables_online_pushes_stay_forgotten_after_a_restart,
    an_invalid_df_is_422_naming_the_column_and_writes_nothing,
    a_null_feature_value_is_pushed_as_null,
    a_column_given_twice_is_422_and_writes_nothing,
    both_or_neither_of_push_source_name_and_feature_view_is_422,
    an_unknown_push_source_is_404_naming_it,
    an_unknown_feature_view_is_404_naming_it,
    an_unknown_feature_view_is_reported_on_the_feature_view_field,
    a_target_other_than_the_three_is_422,
    a_target_that_is_not_a_string_is_422_not_malformed_json,
    two_views_with_one_push_source_are_refused_by_apply,
);
