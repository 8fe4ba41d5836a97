//! Reproducible training data: `POST /get-historical-features` and `featurestore historical`
//! pinned to table versions (`table_versions`, `--table-version`) or to an instant
//! (`snapshot_time`, `--snapshot-time`). A pinned request gives the same Parquet bytes after
//! pushes, folds and a replace; every answer states the versions it read (JSON
//! `metadata.table_versions`, the `featurestore.table_versions` metadata key of Arrow and
//! Parquet answers, the CLI's summary); pins of views the request does not read, versions
//! never written and versions past retention are refused with their problem.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;
use std::time::Duration;

use arrow::ipc::reader::StreamReader;
use chrono::{SecondsFormat, Utc};
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde_json::{Value, json};

use crate::common::instants::*;
use crate::common::{
    TestResult, TestServer, assert_problem, featurestore_command, featurestore_ok, read,
    restart_with,
};

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
    // No registry version is stated until the registry records versions.
    assert!(answer["metadata"].get("registry_version").is_none());

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

#[tokio::test]
async fn pinning_a_view_the_request_does_not_read_is_400_naming_it() -> TestResult {
    let server = start()?;
    populate(&server).await?;
    let (status, problem) = server
        .post(
            HISTORICAL,
            &profile_request(json!({"table_versions": {"movie_metadata": 1, "user_profile": 1, "user_profiles": 1}})),
        )
        .await?;
    assert_problem(status, &problem, 400, "unknown_pinned_views");
    assert_eq!(
        problem["detail"],
        "table_versions names movie_metadata, user_profiles, which this request does not read; it reads user_profile"
    );
    assert_eq!(
        problem["errors"],
        json!([
            {"field": "table_versions.movie_metadata",
             "message": "\"movie_metadata\" is not a view this request reads (it reads user_profile)"},
            {"field": "table_versions.user_profiles",
             "message": "\"user_profiles\" is not a view this request reads (it reads user_profile)"},
        ])
    );
    Ok(())
}

#[tokio::test]
async fn a_version_never_written_or_a_snapshot_before_the_table_existed_is_404() -> TestResult {
    let server = start()?;
    let before_any_table = instant_between_writes().await?;
    populate(&server).await?;
    let v1 = current_version(&server, PROFILE).await?;
    let (status, problem) = server
        .post(
            HISTORICAL,
            &profile_request(json!({"table_versions": {"user_profile": v1 + 5}})),
        )
        .await?;
    assert_problem(status, &problem, 404, "table_version_not_found");
    assert_eq!(
        problem["detail"],
        format!(
            "table \"user_profile\" has no version {}; the only retained version is {v1}",
            v1 + 5
        )
    );
    let (status, problem) = server
        .post(
            HISTORICAL,
            &profile_request(json!({"snapshot_time": before_any_table})),
        )
        .await?;
    assert_problem(status, &problem, 404, "table_version_not_found");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("the table was created at"), "{detail}");
    Ok(())
}

#[tokio::test]
async fn a_version_past_retention_is_410_naming_what_is_retained() -> TestResult {
    let no_history = |c: &mut featurestore::config::Config| {
        c.storage.history.keep_days = 0.0;
        c.storage.history.keep_min = 1;
    };
    let server = TestServer::start_with(no_history)?;
    populate(&server).await?;
    let v1 = current_version(&server, PROFILE).await?;
    server
        .save(
            "user",
            "user_profile",
            json!({"entity_key": ["user_id"], "records": [
                {"user_id": 1, "age": 99, "avg_rating": 1.0, "event_timestamp": T0_MINUS_1D},
            ]}),
        )
        .await?;
    let v2 = current_version(&server, PROFILE).await?;
    // The sweep at start-up removes what retention does not keep.
    let server = restart_with(server, no_history).await?;
    let (status, problem) = server
        .post(
            HISTORICAL,
            &profile_request(json!({"table_versions": {"user_profile": v1}})),
        )
        .await?;
    assert_problem(status, &problem, 410, "table_version_expired");
    assert_eq!(
        problem["detail"],
        format!(
            "version {v1} of table \"user_profile\" is no longer retained; the only retained version is {v2}"
        )
    );
    let answer = json_ok(
        &server,
        &profile_request(json!({"table_versions": {"user_profile": v2}})),
    )
    .await?;
    assert_eq!(answer["rows"][0]["age"], 99);
    Ok(())
}

#[tokio::test]
async fn malformed_pins_are_refused_before_anything_is_read() -> TestResult {
    let server = start()?;
    populate(&server).await?;
    let (status, problem) = server
        .post(
            HISTORICAL,
            &profile_request(json!({"snapshot_time": "last tuesday"})),
        )
        .await?;
    assert_problem(status, &problem, 422, "invalid_body");
    assert_eq!(problem["errors"][0]["field"], "snapshot_time");
    for pins in [json!({"user_profile": -1}), json!({"user_profile": "7"})] {
        let (status, problem) = server
            .post(
                HISTORICAL,
                &profile_request(json!({"table_versions": pins})),
            )
            .await?;
        assert_problem(status, &problem, 422, "invalid_body");
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains("u64") || d.contains("integer")),
            "{problem}"
        );
    }
    Ok(())
}

/// `user_id`, `movie_id` and `event_timestamp` of [`entities`] as a Parquet upload.
fn entity_upload() -> TestResult<Vec<u8>> {
    use arrow::array::{ArrayRef, Int64Array, TimestampMicrosecondArray};
    use std::sync::Arc;
    let t0 = crate::common::micros(T0)?;
    let batch = arrow::record_batch::RecordBatch::try_from_iter([
        (
            "user_id",
            Arc::new(Int64Array::from(vec![1, 2, 3, 4])) as ArrayRef,
        ),
        (
            "movie_id",
            Arc::new(Int64Array::from(vec![10, 11, 10, 11])) as ArrayRef,
        ),
        (
            "event_timestamp",
            Arc::new(TimestampMicrosecondArray::from(vec![t0; 4]).with_timezone("UTC")) as ArrayRef,
        ),
    ])?;
    crate::common::parquet_bytes(&batch)
}

#[tokio::test]
async fn an_uploaded_entity_file_takes_its_pins_in_the_query_string() -> TestResult {
    let server = start()?;
    populate(&server).await?;
    let v1 = current_version(&server, PROFILE).await?;
    let snapshot = instant_between_writes().await?;
    push_offline(
        &server,
        json!({"user_id": [1], "age": [31], "avg_rating": [3.75], "event_timestamp": [T0_MINUS_1H]}),
    )
    .await?;
    let upload = entity_upload()?;
    let pinned_json = binary_ok(
        &server,
        &profile_request(json!({"table_versions": {"user_profile": v1}})),
        PARQUET,
    )
    .await?;
    for query in [
        format!("table_versions=user_profile:{v1}"),
        format!("snapshot_time={}", snapshot.replace('+', "%2B")),
    ] {
        let response = server
            .client
            .post(server.url(&format!(
                "{HISTORICAL}?features=user_profile:age,user_profile:avg_rating&{query}"
            )))
            .header("content-type", PARQUET)
            .header("accept", PARQUET)
            .body(upload.clone())
            .send()
            .await?;
        assert_eq!(response.status().as_u16(), 200, "{query}");
        let bytes = response.bytes().await?.to_vec();
        assert_eq!(parquet_versions(&bytes)?, json!({"user_profile": v1}));
        assert_eq!(
            parquet_rows(&bytes)?,
            parquet_rows(&pinned_json)?,
            "{query}"
        );
    }
    for (query, message) in [
        ("table_versions=user_profile", "is not view:version"),
        (
            "table_versions=user_profile:latest",
            "must be a positive integer",
        ),
        (
            "table_versions=user_profile:1,user_profile:2",
            "pinned twice",
        ),
        ("snapshot_time=yesterday", "is not an RFC 3339 timestamp"),
    ] {
        let response = server
            .client
            .post(server.url(&format!("{HISTORICAL}?features=user_profile:age&{query}")))
            .header("content-type", PARQUET)
            .body(upload.clone())
            .send()
            .await?;
        let (status, problem) = read(response).await?;
        assert_problem(status, &problem, 400, "invalid_parameter");
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains(message)),
            "{query}: {problem}"
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The CLI
// ---------------------------------------------------------------------------------------------

fn utf8(path: &Path) -> TestResult<&str> {
    Ok(path.to_str().ok_or("a UTF-8 temporary path")?)
}

/// The summary line naming the versions read.
fn versions_line(stdout: &str) -> TestResult<&str> {
    Ok(stdout
        .lines()
        .find(|l| l.starts_with("table versions read: "))
        .ok_or_else(|| format!("no versions in {stdout:?}"))?)
}

#[tokio::test]
async fn the_cli_pins_versions_prints_them_and_writes_the_file_the_api_answers() -> TestResult {
    let server = start()?;
    populate(&server).await?;
    let v1 = current_version(&server, PROFILE).await?;
    let snapshot = instant_between_writes().await?;
    push_offline(
        &server,
        json!({"user_id": [1], "age": [31], "avg_rating": [3.75], "event_timestamp": [T0_MINUS_1H]}),
    )
    .await?;
    compact(&server).await?;
    let v2 = current_version(&server, PROFILE).await?;
    let api_pinned = binary_ok(
        &server,
        &profile_request(json!({"table_versions": {"user_profile": v1}})),
        PARQUET,
    )
    .await?;
    let data = server.stop();
    let root = utf8(data.path())?;
    let work = tempfile::tempdir()?;
    let entities = work.path().join("entities.csv");
    // The columns in the order the JSON request's keys go out in (serde_json sorts them), so
    // that the file and the answer have one schema.
    std::fs::write(
        &entities,
        format!("event_timestamp,movie_id,user_id\n{T0},10,1\n{T0},11,2\n{T0},10,3\n{T0},11,4\n"),
    )?;
    let out = work.path().join("training.parquet");
    let run = |extra: &[&str]| -> TestResult<String> {
        let mut args = vec![
            "historical",
            "--data-dir",
            root,
            "--entities",
            utf8(&entities)?,
            "--features",
            "user_profile:age,user_profile:avg_rating",
            "--out",
            utf8(&out)?,
        ];
        args.extend_from_slice(extra);
        featurestore_ok(&args)
    };

    let pin = format!("user_profile={v1}");
    let stdout = run(&["--table-version", &pin])?;
    assert_eq!(
        versions_line(&stdout)?,
        format!("table versions read: --table-version user_profile={v1}")
    );
    let written = std::fs::read(&out)?;
    assert!(
        written == api_pinned,
        "the CLI's file differs from the API's answer: {:?} vs {:?}",
        parquet_rows(&written)?,
        parquet_rows(&api_pinned)?
    );

    let stdout = run(&["--snapshot-time", &snapshot])?;
    assert_eq!(
        versions_line(&stdout)?,
        format!("table versions read: --table-version user_profile={v1}")
    );
    assert!(std::fs::read(&out)? == api_pinned);

    // Unpinned: the current version, named.
    let stdout = run(&[])?;
    assert_eq!(
        versions_line(&stdout)?,
        format!("table versions read: --table-version user_profile={v2}")
    );
    assert_eq!(
        parquet_versions(&std::fs::read(&out)?)?,
        json!({"user_profile": v2})
    );
    Ok(())
}

#[tokio::test]
async fn the_cli_refuses_malformed_and_unrequested_pins_naming_them() -> TestResult {
    let server = start()?;
    populate(&server).await?;
    let data = server.stop();
    let root = utf8(data.path())?;
    let work = tempfile::tempdir()?;
    let entities = work.path().join("entities.csv");
    std::fs::write(&entities, format!("user_id,event_timestamp\n1,{T0}\n"))?;
    let out = work.path().join("training.parquet");
    let cases: BTreeMap<&str, Vec<&str>> = BTreeMap::from([
        ("is not view=N", vec!["--table-version", "user_profile"]),
        (
            "pins user_profile twice",
            vec![
                "--table-version",
                "user_profile=1",
                "--table-version",
                "user_profile=2",
            ],
        ),
        (
            "table_versions names movie_metadata, which this request does not read",
            vec!["--table-version", "movie_metadata=1"],
        ),
        (
            "has no version 9",
            vec!["--table-version", "user_profile=9"],
        ),
        ("--snapshot-time", vec!["--snapshot-time", "yesterday"]),
    ]);
    for (message, extra) in cases {
        let mut args = vec![
            "historical",
            "--data-dir",
            root,
            "--entities",
            utf8(&entities)?,
            "--features",
            "user_profile:age",
            "--out",
            utf8(&out)?,
        ];
        args.extend(extra.iter().copied());
        let output = featurestore_command(&args)?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{extra:?} succeeded");
        assert!(stderr.contains(message), "{extra:?}: {stderr}");
        assert!(!out.exists(), "{extra:?} wrote a file");
    }
    Ok(())
}

// The same tests on the s3 kind, for what it keeps today. The tests that read an older
// version's content (the byte-identical pins, the 404 of an instant before the table, the
// uploads and the CLI pinned to an old version) join this list once the s3 kind keeps history
// (`src/storage/remote/history.rs`, being built beside this): until then every version but the
// current one is answered 410 there.
crate::on_s3_too!(
    unpinned_answers_state_the_current_version_of_every_view_in_each_format,
    pinning_a_view_the_request_does_not_read_is_400_naming_it,
    a_version_past_retention_is_410_naming_what_is_retained,
    malformed_pins_are_refused_before_anything_is_read,
    the_cli_refuses_malformed_and_unrequested_pins_naming_them,
);
