//! Reproducible training data: `POST /get-historical-features` and `featurestore historical`
//! pinned to table versions (`table_versions`, `--table-version`) or to an instant
//! (`snapshot_time`, `--snapshot-time`). A pinned request gives the same Parquet bytes after
//! pushes, folds and a replace; every answer states the versions it read (JSON
//! `metadata.table_versions`, the `featurestore.table_versions` metadata key of Arrow and
//! Parquet answers, the CLI's summary); pins of views the request does not read, versions
//! never written and versions past retention are refused with their problem.

use std::io::Cursor;
use std::time::Duration;

use arrow::ipc::reader::StreamReader;
use chrono::{SecondsFormat, Utc};
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde_json::{Value, json};

mod cli;
mod refusals;
mod service_pins;

use crate::common::instants::*;
use crate::common::{TestResult, TestServer};

const HISTORICAL: &str = "/get-historical-features";
const PARQUET: &str = "application/vnd.apache.parquet";
const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";
const VERSIONS_KEY: &str = "featurestore.table_versions";
const PROFILE: &str = "/features/user/user_profile";
const COMPACT: &str = "/features/user/user_profile/compact";

/// Entities `user_id` and `movie_id`; views `user_profile` (pushed to by `profile_push`) and
/// `movie_metadata`, neither with a TTL.
fn registry_document() -> Value {
    json!({
        "entities": [
            {"name": "user_id", "value_type": "int64"},
            {"name": "movie_id", "value_type": "int64"},
        ],
        "feature_views": [
            {"name": "user_profile", "group": "user", "entities": ["user_id"],
             "timestamp_field": "event_timestamp", "push_source": "profile_push"},
            {"name": "movie_metadata", "group": "content", "entities": ["movie_id"],
             "timestamp_field": "event_timestamp"},
        ],
    })
}

/// A server whose background folds wait a minute, so the tests decide when a fold happens.
fn start() -> TestResult<TestServer> {
    TestServer::start_with(|c| c.storage.fold_delay_ms = 60_000)
}

/// `user_profile` (users 1 to 3, small ages) and `movie_metadata` (movies 10 and 11), then the
/// registry.
async fn populate(server: &TestServer) -> TestResult {
    server
        .save(
            "user",
            "user_profile",
            json!({"entity_key": ["user_id"], "records": [
                {"user_id": 1, "age": 30, "avg_rating": 3.5, "event_timestamp": T0_MINUS_2D},
                {"user_id": 2, "age": 25, "avg_rating": 4.0, "event_timestamp": T0_MINUS_2D},
                {"user_id": 3, "age": 50, "avg_rating": 2.5, "event_timestamp": T0_MINUS_1D},
            ]}),
        )
        .await?;
    server
        .save(
            "content",
            "movie_metadata",
            json!({"entity_key": ["movie_id"], "records": [
                {"movie_id": 10, "genre": "Drama", "event_timestamp": T0_MINUS_5D},
                {"movie_id": 11, "genre": "Comedy", "event_timestamp": T0_MINUS_5D},
            ]}),
        )
        .await?;
    server.apply(&registry_document()).await?;
    Ok(())
}

/// Users 1 to 4 at T0: every later write below lands before T0, so it changes the answer of
/// an unpinned request.
fn entities() -> Value {
    json!({"user_id": [1, 2, 3, 4], "movie_id": [10, 11, 10, 11],
           "event_timestamp": [T0, T0, T0, T0]})
}

/// A request for the two features of `user_profile`, with `extra` members added.
fn profile_request(extra: Value) -> Value {
    let mut body = json!({
        "features": ["user_profile:age", "user_profile:avg_rating"],
        "entities": entities(),
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    body
}

/// A request for one feature of each view, with `extra` members added.
fn two_view_request(extra: Value) -> Value {
    let mut body = json!({
        "features": ["user_profile:age", "movie_metadata:genre"],
        "entities": entities(),
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    body
}

/// The JSON answer to `body`, checked to be a 200.
async fn json_ok(server: &TestServer, body: &Value) -> TestResult<Value> {
    let (status, answer) = server.post(HISTORICAL, body).await?;
    if status != 200 {
        return Err(format!("{body} answered {status}: {answer}").into());
    }
    Ok(answer)
}

/// The answer to `body` in the format `accept`, checked to be a 200 of that content type.
async fn binary_ok(server: &TestServer, body: &Value, accept: &str) -> TestResult<Vec<u8>> {
    let response = server
        .client
        .post(server.url(HISTORICAL))
        .header("accept", accept)
        .json(body)
        .send()
        .await?;
    let status = response.status().as_u16();
    let content_type = crate::common::content_type(&response);
    let bytes = response.bytes().await?.to_vec();
    if status != 200 {
        return Err(format!(
            "{body} as {accept} answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        )
        .into());
    }
    assert_eq!(content_type, accept);
    Ok(bytes)
}

/// The `featurestore.table_versions` entry of a Parquet file's key-value metadata, parsed.
fn parquet_versions(bytes: &[u8]) -> TestResult<Value> {
    let reader = SerializedFileReader::new(bytes::Bytes::from(bytes.to_vec()))?;
    let entries = reader
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .ok_or("the Parquet answer has no key-value metadata")?;
    let entry = entries
        .iter()
        .find(|kv| kv.key == VERSIONS_KEY)
        .and_then(|kv| kv.value.clone())
        .ok_or_else(|| format!("no {VERSIONS_KEY} in the Parquet answer's metadata"))?;
    Ok(serde_json::from_str(&entry)?)
}

/// The rows of a Parquet answer as JSON objects (through the crate's own reader): integers
/// and floats as numbers, timestamps as RFC 3339, nulls left out.
fn parquet_rows(bytes: &[u8]) -> TestResult<Vec<Value>> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{DataType, Float64Type, Int64Type, TimestampMicrosecondType};
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::from(bytes.to_vec()),
    )?;
    let mut rows = Vec::new();
    for batch in builder.build()? {
        let batch = batch?;
        for row in 0..batch.num_rows() {
            let mut object = serde_json::Map::new();
            for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
                if column.is_null(row) {
                    continue;
                }
                let value = match column.data_type() {
                    t if t.is_integer() => {
                        let cast = arrow::compute::cast(column, &DataType::Int64)?;
                        json!(cast.as_primitive::<Int64Type>().value(row))
                    }
                    t if t.is_floating() => {
                        let cast = arrow::compute::cast(column, &DataType::Float64)?;
                        json!(cast.as_primitive::<Float64Type>().value(row))
                    }
                    DataType::Timestamp(_, _) => {
                        let micros = column.as_primitive::<TimestampMicrosecondType>().value(row);
                        let instant = chrono::DateTime::from_timestamp_micros(micros)
                            .ok_or("a timestamp out of range")?;
                        json!(instant.to_rfc3339_opts(SecondsFormat::AutoSi, true))
                    }
                    _ => json!(arrow::util::display::array_value_to_string(column, row)?),
                };
                object.insert(field.name().clone(), value);
            }
            rows.push(Value::Object(object));
        }
    }
    Ok(rows)
}

/// The table's current version, as its first page states it.
async fn current_version(server: &TestServer, path: &str) -> TestResult<u64> {
    let (status, page) = server.get(path).await?;
    if status != 200 {
        return Err(format!("GET {path} answered {status}: {page}").into());
    }
    page["metadata"]["version"]
        .as_u64()
        .ok_or_else(|| format!("no version in {page}").into())
}

/// `POST /push` of `df` to `user_profile`'s offline table, checked to be a 200.
async fn push_offline(server: &TestServer, df: Value) -> TestResult {
    let body = json!({"push_source_name": "profile_push", "df": df, "to": "offline"});
    let (status, answer) = server.post("/push", &body).await?;
    if status != 200 {
        return Err(format!("push {body} answered {status}: {answer}").into());
    }
    Ok(())
}

/// Folds `user_profile`'s pushed parts now; checks something was folded.
async fn compact(server: &TestServer) -> TestResult {
    let (status, answer) = server.post(COMPACT, &json!({})).await?;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["parts_folded"].as_u64().is_some_and(|n| n > 0),
        "nothing was folded: {answer}"
    );
    Ok(())
}

/// Now, as RFC 3339, after making sure the next write is recorded at a later millisecond
/// (versions record the instant they became current to the millisecond).
async fn instant_between_writes() -> TestResult<String> {
    let now = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    tokio::time::sleep(Duration::from_millis(5)).await;
    Ok(now)
}

#[tokio::test]
async fn a_pinned_training_set_is_byte_identical_after_pushes_folds_and_a_replace() -> TestResult {
    let server = start()?;
    populate(&server).await?;
    let v1 = current_version(&server, PROFILE).await?;
    let snapshot = instant_between_writes().await?;
    let by_version = profile_request(json!({"table_versions": {"user_profile": v1}}));
    let by_time = profile_request(json!({"snapshot_time": snapshot}));
    let before = binary_ok(&server, &by_version, PARQUET).await?;
    assert_eq!(parquet_versions(&before)?, json!({"user_profile": v1}));
    let expected_rows = [
        json!({"user_id": 1, "movie_id": 10, "event_timestamp": "2025-06-01T10:00:00Z", "age": 30, "avg_rating": 3.5}),
        json!({"user_id": 2, "movie_id": 11, "event_timestamp": "2025-06-01T10:00:00Z", "age": 25, "avg_rating": 4.0}),
        json!({"user_id": 3, "movie_id": 10, "event_timestamp": "2025-06-01T10:00:00Z", "age": 50, "avg_rating": 2.5}),
        json!({"user_id": 4, "movie_id": 11, "event_timestamp": "2025-06-01T10:00:00Z"}),
    ];
    assert_eq!(parquet_rows(&before)?, expected_rows);
    // The instant selects the same version, so the answer is the same file.
    assert_eq!(binary_ok(&server, &by_time, PARQUET).await?, before);

    // Pushes offline: one with an age that needs a wider stored type (the table file is
    // rewritten wider), one of a new user appended as a part and folded, one left unfolded.
    push_offline(
        &server,
        json!({"user_id": [1], "age": [300], "avg_rating": [1.5], "event_timestamp": [T0_MINUS_1H]}),
    )
    .await?;
    push_offline(
        &server,
        json!({"user_id": [4], "age": [41], "avg_rating": [3.0], "event_timestamp": [T0_MINUS_1H]}),
    )
    .await?;
    compact(&server).await?;
    push_offline(
        &server,
        json!({"user_id": [2], "age": [26], "avg_rating": [4.5], "event_timestamp": [T0_MINUS_30M]}),
    )
    .await?;
    assert_eq!(binary_ok(&server, &by_version, PARQUET).await?, before);
    assert_eq!(binary_ok(&server, &by_time, PARQUET).await?, before);

    // A replace with other rows and another column, then a push to it and a fold of that.
    server
        .save(
            "user",
            "user_profile",
            json!({"entity_key": ["user_id"], "records": [
                {"user_id": 1, "age": 99, "avg_rating": 1.0, "country": "NL", "event_timestamp": T0_MINUS_1D},
                {"user_id": 3, "age": 98, "avg_rating": 1.0, "country": "FR", "event_timestamp": T0_MINUS_1D},
            ]}),
        )
        .await?;
    push_offline(
        &server,
        json!({"user_id": [3], "age": [97], "avg_rating": [2.0], "country": ["DE"],
               "event_timestamp": [T0_MINUS_10M]}),
    )
    .await?;
    compact(&server).await?;

    let after_version = binary_ok(&server, &by_version, PARQUET).await?;
    let after_time = binary_ok(&server, &by_time, PARQUET).await?;
    assert!(
        after_version == before,
        "the answer pinned to version {v1} changed: {:?} became {:?}",
        parquet_rows(&before)?,
        parquet_rows(&after_version)?
    );
    assert!(
        after_time == before,
        "the answer pinned to {snapshot} changed: {:?} became {:?}",
        parquet_rows(&before)?,
        parquet_rows(&after_time)?
    );

    // Unpinned, the same request sees the writes, and says which version it read.
    let latest = current_version(&server, PROFILE).await?;
    assert!(latest > v1, "the writes made no new version ({latest})");
    let current = json_ok(&server, &profile_request(json!({}))).await?;
    assert_eq!(
        current["metadata"]["table_versions"],
        json!({"user_profile": latest})
    );
    assert_eq!(
        current["rows"],
        json!([
            {"user_id": 1, "movie_id": 10, "event_timestamp": "2025-06-01T10:00:00Z", "age": 99, "avg_rating": 1.0},
            {"user_id": 2, "movie_id": 11, "event_timestamp": "2025-06-01T10:00:00Z", "age": null, "avg_rating": null},
            {"user_id": 3, "movie_id": 10, "event_timestamp": "2025-06-01T10:00:00Z", "age": 97, "avg_rating": 2.0},
            {"user_id": 4, "movie_id": 11, "event_timestamp": "2025-06-01T10:00:00Z", "age": null, "avg_rating": null},
        ])
    );
    Ok(())
}

#[tokio::test]
async fn a_version_between_a_push_and_its_fold_reads_the_rows_it_had() -> TestResult {
    let server = start()?;
    populate(&server).await?;
    push_offline(
        &server,
        json!({"user_id": [1], "age": [31], "avg_rating": [3.75], "event_timestamp": [T0_MINUS_1H]}),
    )
    .await?;
    let pushed = current_version(&server, PROFILE).await?;
    let pinned = profile_request(json!({"table_versions": {"user_profile": pushed}}));
    let before = binary_ok(&server, &pinned, PARQUET).await?;
    push_offline(
        &server,
        json!({"user_id": [1], "age": [32], "avg_rating": [3.625], "event_timestamp": [T0_MINUS_30M]}),
    )
    .await?;
    compact(&server).await?;
    let after = binary_ok(&server, &pinned, PARQUET).await?;
    assert_eq!(parquet_rows(&after)?[0]["age"], 31);
    assert!(after == before, "the pinned answer changed with the fold");
    Ok(())
}

#[tokio::test]
async fn unpinned_answers_state_the_current_version_of_every_view_in_each_format() -> TestResult {
    let server = start()?;
    populate(&server).await?;
    let profile = current_version(&server, PROFILE).await?;
    let movies = current_version(&server, "/features/content/movie_metadata").await?;
    let body = two_view_request(json!({}));
    let answer = json_ok(&server, &body).await?;
    assert_eq!(
        answer["metadata"]["table_versions"],
        json!({"user_profile": profile, "movie_metadata": movies})
    );
    // The registry version the request was resolved against: the one the last apply left.
    let (_, history) = server.get("/registry/history?limit=1").await?;
    assert_eq!(
        answer["metadata"]["registry_version"],
        history["current_version"]
    );
    assert!(
        answer["metadata"]["registry_version"]
            .as_u64()
            .is_some_and(|v| v > 0)
    );

    push_offline(
        &server,
        json!({"user_id": [1], "age": [31], "avg_rating": [3.75], "event_timestamp": [T0_MINUS_1H]}),
    )
    .await?;
    let pushed = current_version(&server, PROFILE).await?;
    assert_eq!(pushed, profile + 1);
    let expected = json!({"user_profile": pushed, "movie_metadata": movies});
    let answer = json_ok(&server, &body).await?;
    assert_eq!(answer["metadata"]["table_versions"], expected);
    assert_eq!(answer["rows"][0]["age"], 31);

    let parquet = binary_ok(&server, &body, PARQUET).await?;
    assert_eq!(parquet_versions(&parquet)?, expected);
    let arrow = binary_ok(&server, &body, ARROW_STREAM).await?;
    let reader = StreamReader::try_new(Cursor::new(arrow), None)?;
    let metadata = reader.schema().metadata().clone();
    let versions: Value = serde_json::from_str(
        metadata
            .get(VERSIONS_KEY)
            .ok_or_else(|| format!("no {VERSIONS_KEY} in the Arrow schema: {metadata:?}"))?,
    )?;
    assert_eq!(versions, expected);
    Ok(())
}

#[tokio::test]
async fn table_versions_win_over_snapshot_time_for_the_views_they_name() -> TestResult {
    let server = start()?;
    populate(&server).await?;
    let profile_v1 = current_version(&server, PROFILE).await?;
    let movies_v1 = current_version(&server, "/features/content/movie_metadata").await?;
    let snapshot = instant_between_writes().await?;
    push_offline(
        &server,
        json!({"user_id": [1], "age": [31], "avg_rating": [3.75], "event_timestamp": [T0_MINUS_1H]}),
    )
    .await?;
    server
        .save(
            "content",
            "movie_metadata",
            json!({"entity_key": ["movie_id"], "records": [
                {"movie_id": 10, "genre": "Horror", "event_timestamp": T0_MINUS_1D},
            ]}),
        )
        .await?;
    let profile_v2 = current_version(&server, PROFILE).await?;
    let answer = json_ok(
        &server,
        &two_view_request(json!({"snapshot_time": snapshot,
                                 "table_versions": {"user_profile": profile_v2}})),
    )
    .await?;
    assert_eq!(
        answer["metadata"]["table_versions"],
        json!({"user_profile": profile_v2, "movie_metadata": movies_v1})
    );
    let ages: Vec<&Value> = answer["rows"]
        .as_array()
        .ok_or("rows")?
        .iter()
        .map(|r| &r["age"])
        .collect();
    assert_eq!(ages, [&json!(31), &json!(25), &json!(50), &Value::Null]);
    let genres: Vec<&Value> = answer["rows"]
        .as_array()
        .ok_or("rows")?
        .iter()
        .map(|r| &r["genre"])
        .collect();
    assert_eq!(
        genres,
        [
            &json!("Drama"),
            &json!("Comedy"),
            &json!("Drama"),
            &json!("Comedy")
        ]
    );
    // And with the snapshot alone, both views are read as they were.
    let answer = json_ok(
        &server,
        &two_view_request(json!({"snapshot_time": snapshot})),
    )
    .await?;
    assert_eq!(
        answer["metadata"]["table_versions"],
        json!({"user_profile": profile_v1, "movie_metadata": movies_v1})
    );
    Ok(())
}

// The same tests on the s3 kind, for what it keeps today. The tests that read an older
// version's content (the byte-identical pins, the 404 of an instant before the table, the
// uploads and the CLI pinned to an old version) join this list once the s3 kind keeps history
// (`src/storage/remote/history.rs`, being built beside this): until then every version but the
// current one is answered 410 there.
crate::on_s3_too!(unpinned_answers_state_the_current_version_of_every_view_in_each_format,);
