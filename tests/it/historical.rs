//! Training data as a client sees it: `POST /get-historical-features` and `featurestore
//! historical`. The point-in-time rule field by field (a feature row at exactly the entity
//! timestamp, the TTL boundary to the microsecond, a zero TTL, ties by created timestamp, the
//! created-timestamp cutoff, offsets and other timestamp units compared as instants), every
//! entity row kept in order (duplicates, unmatched and null keys, keys one view has and another
//! lacks, composite, sparse and string keys, pass-through label columns), output naming
//! (feature services, full feature names, the order of views), the `start`/`end` window, the
//! three answer formats read back and compared, Parquet and Arrow uploads, the JSON row cap and
//! the body limit, every error with its problem body, the CLI on Parquet and CSV entity files,
//! and seeded comparisons against a brute-force reference (small, and large enough for the
//! join's multi-threaded paths and a multi-message Arrow answer).

use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, StringArray, TimestampMicrosecondArray,
    TimestampNanosecondArray,
};
use arrow::datatypes::{
    DataType, Field, Float64Type, Int64Type, Schema, TimeUnit, TimestampMicrosecondType,
};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value, json};

use crate::common::instants::*;
use crate::common::{
    TestResult, TestServer, assert_problem, featurestore_command, featurestore_ok, micros,
    parquet_bytes, read, write_parquet,
};

const HISTORICAL: &str = "/get-historical-features";
const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";
const PARQUET: &str = "application/vnd.apache.parquet";

const T0_PLUS_1US: &str = "2025-06-01T10:00:00.000001Z";
const T0_MINUS_1US: &str = "2025-06-01T09:59:59.999999Z";
const T0_MINUS_1H_MINUS_1US: &str = "2025-06-01T08:59:59.999999Z";
const T0_MINUS_2D_MINUS_1US: &str = "2025-05-30T09:59:59.999999Z";

/// `user_profile`'s TTL: three days, so user 1's row of two days ago is still valid at T0 and
/// user 4's row of five days ago is not.
const PROFILE_TTL_SECS: u64 = 3 * 86_400;
/// `session`'s TTL: one hour, for the boundary tests.
const SESSION_TTL_SECS: u64 = 3_600;

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

/// `user/user_profile` (TTL three days), rows deliberately not in time order:
/// - user 1: age 30 at T0 − 2 d, 31 at T0 − 1 h, 32 at T0;
/// - user 2: age 25 at T0 − 10 min, `favorite_genre` null;
/// - user 3: age 50 at T0 − 2 h;
/// - user 4: age 70 at T0 − 5 d, outside the TTL of any entity row at T0.
fn profile_records() -> Value {
    json!([
        {"user_id": 1, "age": 30, "avg_rating": 3.5, "favorite_genre": "Comedy", "event_timestamp": T0_MINUS_2D},
        {"user_id": 3, "age": 50, "avg_rating": 2.5, "favorite_genre": "Horror", "event_timestamp": T0_MINUS_2H},
        {"user_id": 1, "age": 32, "avg_rating": 4.5, "favorite_genre": "Action", "event_timestamp": T0},
        {"user_id": 2, "age": 25, "avg_rating": 3.0, "favorite_genre": null, "event_timestamp": T0_MINUS_10M},
        {"user_id": 1, "age": 31, "avg_rating": 4.0, "favorite_genre": "Drama", "event_timestamp": T0_MINUS_1H},
        {"user_id": 4, "age": 70, "avg_rating": 1.0, "favorite_genre": "Western", "event_timestamp": T0_MINUS_5D},
    ])
}

/// Entities `user_id` and `movie_id`; views `user_profile`, `movie_metadata` (no TTL),
/// `user_movie` (keyed by both, TTL one day) and `session` (TTL one hour); services
/// `recommender` (a feature and a whole view) and `ranker` (features of three views).
fn registry_document() -> Value {
    json!({
        "entities": [
            {"name": "user_id", "value_type": "int64"},
            {"name": "movie_id", "value_type": "int64"},
        ],
        "feature_views": [
            {"name": "user_profile", "group": "user", "entities": ["user_id"],
             "timestamp_field": "event_timestamp", "ttl_seconds": PROFILE_TTL_SECS},
            {"name": "movie_metadata", "group": "content", "entities": ["movie_id"],
             "timestamp_field": "event_timestamp",
             "features": [{"name": "genre"}, {"name": "avg_rating"}]},
            {"name": "user_movie", "group": "interaction", "entities": ["user_id", "movie_id"],
             "timestamp_field": "event_timestamp", "ttl_seconds": 86_400},
            {"name": "session", "group": "user", "entities": ["user_id"],
             "timestamp_field": "event_timestamp", "ttl_seconds": SESSION_TTL_SECS},
        ],
        "feature_services": [
            {"name": "recommender", "features": ["user_profile:age", "movie_metadata"]},
            {"name": "ranker", "features": ["movie_metadata:genre", "user_profile:age", "user_movie:rating"]},
        ],
    })
}

/// Writes the four tables of [`registry_document`] through the API and applies it:
/// - `movie_metadata`: movie 10 "Documentary" (4.1) at T0 − 5 d and "Sci-Fi" (4.3) at
///   T0 − 30 min; movie 11 "Comedy" (3.2) at T0 − 30 min;
/// - `user_movie`: (1, 10) rating 2 at T0 − 3 h and 5 at T0 − 1 h; (1, 11) 3 and (2, 10) 4 at
///   T0 − 1 h;
/// - `session`: user 1 clicks 7 at T0 − 1 h; user 2 clicks 9 one microsecond earlier.
async fn populate(server: &TestServer) -> TestResult {
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
            json!({"entity_key": ["movie_id"], "records": [
                {"movie_id": 10, "genre": "Documentary", "avg_rating": 4.1, "event_timestamp": T0_MINUS_5D},
                {"movie_id": 11, "genre": "Comedy", "avg_rating": 3.2, "event_timestamp": T0_MINUS_30M},
                {"movie_id": 10, "genre": "Sci-Fi", "avg_rating": 4.3, "event_timestamp": T0_MINUS_30M},
            ]}),
        )
        .await?;
    server
        .save(
            "interaction",
            "user_movie",
            json!({"entity_key": ["user_id", "movie_id"], "records": [
                {"user_id": 1, "movie_id": 10, "rating": 5, "event_timestamp": T0_MINUS_1H},
                {"user_id": 1, "movie_id": 10, "rating": 2, "event_timestamp": T0_MINUS_3H},
                {"user_id": 1, "movie_id": 11, "rating": 3, "event_timestamp": T0_MINUS_1H},
                {"user_id": 2, "movie_id": 10, "rating": 4, "event_timestamp": T0_MINUS_1H},
            ]}),
        )
        .await?;
    server
        .save(
            "user",
            "session",
            json!({"entity_key": ["user_id"], "records": [
                {"user_id": 1, "clicks": 7, "event_timestamp": T0_MINUS_1H},
                {"user_id": 2, "clicks": 9, "event_timestamp": T0_MINUS_1H_MINUS_1US},
            ]}),
        )
        .await?;
    server.apply(&registry_document()).await?;
    Ok(())
}

/// A server over the tables and registry of [`populate`].
async fn fixture() -> TestResult<TestServer> {
    let server = TestServer::start()?;
    populate(&server).await?;
    Ok(server)
}

/// A timestamp column (µs, UTC) of RFC 3339 instants, `None` for null.
fn timestamps(instants: &[Option<&str>]) -> TestResult<ArrayRef> {
    let values = instants
        .iter()
        .map(|t| t.map(micros).transpose())
        .collect::<TestResult<Vec<_>>>()?;
    Ok(Arc::new(
        TimestampMicrosecondArray::from(values).with_timezone("UTC"),
    ))
}

/// A batch of named columns, every field nullable.
fn batch(columns: Vec<(&str, ArrayRef)>) -> TestResult<RecordBatch> {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, array)| Field::new(*name, array.data_type().clone(), true))
        .collect();
    let arrays = columns.into_iter().map(|(_, array)| array).collect();
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
}

/// A server over `shop/prices`, written as Parquet by another tool, whose view has a created
/// timestamp (`created_at`) and no TTL. Rows, in table order (the later-created of item 1's
/// tied pair comes first, item 2's comes last, so neither table order wins by accident):
///
/// | row | item | event     | created    | price |
/// |-----|------|-----------|------------|-------|
/// | 0   | 1    | T0 − 1 h  | T0 − 40 min| 11    |
/// | 1   | 1    | T0 − 1 h  | T0 − 50 min| 10    |
/// | 2   | 1    | T0 − 2 h  | T0 − 2 h   | 9     |
/// | 3   | 2    | T0 − 1 h  | T0 − 35 min| 20    |
/// | 4   | 2    | T0 − 1 h  | T0 − 30 min| 21    |
async fn prices_fixture() -> TestResult<TestServer> {
    let data = tempfile::tempdir()?;
    std::fs::create_dir_all(data.path().join("features/shop"))?;
    write_parquet(
        &data.path().join("features/shop/prices.parquet"),
        &batch(vec![
            ("item_id", Arc::new(Int64Array::from(vec![1, 1, 1, 2, 2]))),
            (
                "event_timestamp",
                timestamps(&[
                    Some(T0_MINUS_1H),
                    Some(T0_MINUS_1H),
                    Some(T0_MINUS_2H),
                    Some(T0_MINUS_1H),
                    Some(T0_MINUS_1H),
                ])?,
            ),
            (
                "created_at",
                timestamps(&[
                    Some("2025-06-01T09:20:00Z"),
                    Some("2025-06-01T09:10:00Z"),
                    Some(T0_MINUS_2H),
                    Some("2025-06-01T09:25:00Z"),
                    Some(T0_MINUS_30M),
                ])?,
            ),
            ("price", Arc::new(Int64Array::from(vec![11, 10, 9, 20, 21]))),
        ])?,
    )?;
    let server = TestServer::start_on(data, |_| {})?;
    server
        .apply(&json!({
            "entities": [{"name": "item_id", "value_type": "int64"}],
            "feature_views": [
                {"name": "prices", "group": "shop", "entities": ["item_id"],
                 "timestamp_field": "event_timestamp", "created_timestamp_field": "created_at"},
            ],
        }))
        .await?;
    Ok(server)
}

// ---------------------------------------------------------------------------------------------
// Requests and answers
// ---------------------------------------------------------------------------------------------

/// A request body with its entity columns in the order given (`json!` would sort them, and
/// the order of entity columns is part of what these tests check): `features` (unless null),
/// `entities`, then the members of `options`.
fn request(features: Value, entities: &[(&str, Value)], options: Value) -> String {
    let mut members = Vec::new();
    if !features.is_null() {
        members.push(format!("\"features\":{features}"));
    }
    let columns: Vec<String> = entities
        .iter()
        .map(|(name, values)| format!("{}:{values}", Value::from(*name)))
        .collect();
    members.push(format!("\"entities\":{{{}}}", columns.join(",")));
    if let Some(options) = options.as_object() {
        members.extend(
            options
                .iter()
                .map(|(k, v)| format!("{}:{v}", Value::from(k.as_str()))),
        );
    }
    format!("{{{}}}", members.join(","))
}

/// Sends `body` with `content_type` to `path_and_query`, asking for `accept` when given.
async fn send(
    server: &TestServer,
    path_and_query: &str,
    content_type: &str,
    accept: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> TestResult<reqwest::Response> {
    let mut builder = server
        .client
        .post(server.url(path_and_query))
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(body);
    if let Some(accept) = accept {
        builder = builder.header(reqwest::header::ACCEPT, accept);
    }
    Ok(builder.send().await?)
}

/// `POST /get-historical-features` with `body` sent as written; status and JSON body.
async fn historical_text(server: &TestServer, body: &str) -> TestResult<(u16, Value)> {
    read(
        send(
            server,
            HISTORICAL,
            "application/json",
            None,
            body.to_owned(),
        )
        .await?,
    )
    .await
}

/// [`historical_text`], checked to be a well-formed 200; returns the body.
async fn historical_text_ok(server: &TestServer, body: &str) -> TestResult<Value> {
    let (status, answer) = historical_text(server, body).await?;
    if status != 200 {
        return Err(format!("{body} answered {status}: {answer}").into());
    }
    check_shape(&answer)?;
    Ok(answer)
}

/// `POST /get-historical-features` with a JSON body; status and JSON body.
async fn historical(server: &TestServer, body: &Value) -> TestResult<(u16, Value)> {
    server.post(HISTORICAL, body).await
}

/// [`historical`], checked to be a well-formed 200; returns the body.
async fn historical_ok(server: &TestServer, body: &Value) -> TestResult<Value> {
    let (status, answer) = historical(server, body).await?;
    if status != 200 {
        return Err(format!("{body} answered {status}: {answer}").into());
    }
    check_shape(&answer)?;
    Ok(answer)
}

/// A JSON answer's invariants: `metadata.rows` counts `rows`, `matched_rows` is at most that,
/// and every row has exactly the members `feature_names` lists.
fn check_shape(answer: &Value) -> TestResult {
    let rows = answer["rows"]
        .as_array()
        .ok_or_else(|| format!("no rows in {answer}"))?;
    let names = feature_names(answer)?;
    if answer["metadata"]["rows"] != rows.len() {
        return Err(format!("metadata.rows disagrees with the rows: {answer}").into());
    }
    let matched = answer["metadata"]["matched_rows"]
        .as_u64()
        .ok_or_else(|| format!("no matched_rows in {answer}"))?;
    if matched as usize > rows.len() {
        return Err(format!("more matched rows than rows: {answer}").into());
    }
    for row in rows {
        let mut keys: Vec<&str> = row
            .as_object()
            .ok_or_else(|| format!("a row that is not an object: {row}"))?
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        let mut expected: Vec<&str> = names.iter().map(String::as_str).collect();
        expected.sort_unstable();
        if keys != expected {
            return Err(format!("row {row} does not have the columns {names:?}").into());
        }
    }
    Ok(())
}

/// `metadata.feature_names` of a JSON answer.
fn feature_names(answer: &Value) -> TestResult<Vec<String>> {
    answer["metadata"]["feature_names"]
        .as_array()
        .ok_or_else(|| format!("no feature_names in {answer}"))?
        .iter()
        .map(|n| {
            n.as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("a feature name that is not a string: {n}").into())
        })
        .collect()
}

/// The values of column `name`, one per row of a JSON answer.
fn column(answer: &Value, name: &str) -> Vec<Value> {
    answer["rows"]
        .as_array()
        .map(|rows| rows.iter().map(|row| row[name].clone()).collect())
        .unwrap_or_default()
}

/// `metadata.matched_rows` of a JSON answer.
fn matched(answer: &Value) -> Value {
    answer["metadata"]["matched_rows"].clone()
}

/// The fields of each entry of `errors` of a problem.
fn error_fields(problem: &Value) -> Vec<&str> {
    problem["errors"]
        .as_array()
        .map(|errors| errors.iter().filter_map(|e| e["field"].as_str()).collect())
        .unwrap_or_default()
}

/// The problem's `detail`.
fn detail(problem: &Value) -> &str {
    problem["detail"].as_str().unwrap_or_default()
}

/// Sends a JSON `body` asking for `accept`; checks a 200 of that content type and returns
/// the bytes.
async fn binary_answer(server: &TestServer, body: &str, accept: &str) -> TestResult<Vec<u8>> {
    let response = send(
        server,
        HISTORICAL,
        "application/json",
        Some(accept),
        body.to_owned(),
    )
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
    assert_eq!(content_type, accept, "the answer's content type");
    Ok(bytes)
}

/// An Arrow IPC stream's batches, concatenated.
fn decode_arrow(bytes: Vec<u8>) -> TestResult<RecordBatch> {
    let reader = StreamReader::try_new(Cursor::new(bytes), None)?;
    let schema = reader.schema();
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    Ok(arrow::compute::concat_batches(&schema, &batches)?)
}

/// A Parquet file's rows as one batch.
fn decode_parquet(bytes: Vec<u8>) -> TestResult<RecordBatch> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))?;
    let schema = Arc::clone(builder.schema());
    let batches = builder.build()?.collect::<Result<Vec<_>, _>>()?;
    Ok(arrow::compute::concat_batches(&schema, &batches)?)
}

/// The bytes of an Arrow IPC stream holding `batch`.
fn arrow_stream_bytes(batch: &RecordBatch) -> TestResult<Vec<u8>> {
    let mut writer = StreamWriter::try_new(Vec::new(), &batch.schema())?;
    writer.write(batch)?;
    writer.finish()?;
    Ok(writer.into_inner()?)
}

/// RFC 3339 UTC text of an instant, as the JSON answers write it.
fn rfc3339(micros: i64) -> TestResult<String> {
    Ok(chrono::DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| format!("{micros} µs is out of range"))?
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
}

/// One cell of a decoded answer as the JSON answer would write it.
fn cell(array: &ArrayRef, row: usize) -> TestResult<Value> {
    if array.logical_nulls().is_some_and(|n| n.is_null(row)) {
        return Ok(Value::Null);
    }
    Ok(match array.data_type() {
        DataType::Int64 => json!(array.as_primitive::<Int64Type>().value(row)),
        DataType::Float64 => json!(array.as_primitive::<Float64Type>().value(row)),
        DataType::Utf8 => json!(array.as_string::<i32>().value(row)),
        DataType::Boolean => json!(array.as_boolean().value(row)),
        DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => json!(rfc3339(
            array.as_primitive::<TimestampMicrosecondType>().value(row)
        )?),
        other => return Err(format!("no JSON form for {other} in these tests").into()),
    })
}

/// The rows of a decoded answer as JSON objects.
fn batch_rows(batch: &RecordBatch) -> TestResult<Vec<Value>> {
    let schema = batch.schema();
    (0..batch.num_rows())
        .map(|row| {
            let mut object = serde_json::Map::new();
            for (field, array) in schema.fields().iter().zip(batch.columns()) {
                object.insert(field.name().clone(), cell(array, row)?);
            }
            Ok(Value::Object(object))
        })
        .collect()
}

/// Column names of a decoded answer.
fn batch_names(batch: &RecordBatch) -> Vec<String> {
    batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The point-in-time rule
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_feature_row_at_exactly_the_entity_timestamp_matches_and_a_later_one_does_not()
-> TestResult {
    let server = fixture().await?;
    let answer = historical_text_ok(
        &server,
        &request(
            json!(["user_profile:age"]),
            &[
                ("user_id", json!([1, 1, 1, 1, 1, 1])),
                (
                    "event_timestamp",
                    json!([
                        T0,
                        T0_MINUS_1US,
                        T0_MINUS_1H,
                        T0_MINUS_1H_MINUS_1US,
                        T0_MINUS_2D,
                        T0_MINUS_2D_MINUS_1US
                    ]),
                ),
            ],
            json!({}),
        ),
    )
    .await?;
    assert_eq!(
        answer,
        json!({
            "metadata": {"feature_names": ["user_id", "event_timestamp", "age"], "rows": 6, "matched_rows": 5,
                         "table_versions": {"user_profile": 1}, "registry_version": 5},
            "rows": [
                {"user_id": 1, "event_timestamp": T0, "age": 32},
                {"user_id": 1, "event_timestamp": T0_MINUS_1US, "age": 31},
                {"user_id": 1, "event_timestamp": T0_MINUS_1H, "age": 31},
                {"user_id": 1, "event_timestamp": T0_MINUS_1H_MINUS_1US, "age": 30},
                {"user_id": 1, "event_timestamp": T0_MINUS_2D, "age": 30},
                {"user_id": 1, "event_timestamp": T0_MINUS_2D_MINUS_1US, "age": null},
            ],
        })
    );
    Ok(())
}

#[tokio::test]
async fn the_ttl_window_includes_t_minus_ttl_and_excludes_one_microsecond_older() -> TestResult {
    let server = fixture().await?;
    // session: user 1 at T0 − 1 h, user 2 at T0 − 1 h − 1 µs; TTL one hour.
    let answer = historical_text_ok(
        &server,
        &request(
            json!(["session:clicks"]),
            &[
                ("user_id", json!([1, 1, 2, 2, 1, 1])),
                (
                    "event_timestamp",
                    json!([
                        T0,
                        T0_PLUS_1US,
                        T0,
                        T0_MINUS_1US,
                        T0_MINUS_1H,
                        T0_MINUS_1H_MINUS_1US
                    ]),
                ),
            ],
            json!({}),
        ),
    )
    .await?;
    assert_eq!(
        column(&answer, "clicks"),
        [
            json!(7),    // e = t − ttl exactly
            Value::Null, // e = t − ttl − 1 µs
            Value::Null, // e = t − ttl − 1 µs
            json!(9),    // e = t − ttl exactly
            json!(7),    // e = t
            Value::Null, // e = t + 1 µs: not yet
        ]
    );
    assert_eq!(matched(&answer), 3);

    // user_profile's three-day TTL: user 4's only row is five days old at T0, two days old
    // at T0 − 3 d.
    let answer = historical_ok(
        &server,
        &json!({"features": ["user_profile:age"],
                "entities": {"user_id": [4, 4], "event_timestamp": [T0, "2025-05-29T10:00:00Z"]}}),
    )
    .await?;
    assert_eq!(column(&answer, "age"), [Value::Null, json!(70)]);
    Ok(())
}

#[tokio::test]
async fn equal_event_times_go_to_the_latest_created_timestamp_whatever_the_table_order()
-> TestResult {
    let server = prices_fixture().await?;
    let answer = historical_text_ok(
        &server,
        &request(
            json!(["prices:price"]),
            &[
                ("item_id", json!([1, 2, 1, 2, 3])),
                (
                    "event_timestamp",
                    json!([T0, T0, T0_MINUS_1H, T0_MINUS_1US, T0]),
                ),
            ],
            json!({}),
        ),
    )
    .await?;
    assert_eq!(
        feature_names(&answer)?,
        ["item_id", "event_timestamp", "price"]
    );
    assert_eq!(
        column(&answer, "price"),
        [json!(11), json!(21), json!(11), json!(21), Value::Null]
    );
    // Before the tied pair, the older row.
    let answer = historical_ok(
        &server,
        &json!({"features": ["prices:price"],
                "entities": {"item_id": [1], "event_timestamp": [T0_MINUS_1H_MINUS_1US]}}),
    )
    .await?;
    assert_eq!(column(&answer, "price"), [json!(9)]);
    Ok(())
}

#[tokio::test]
async fn the_created_timestamp_cutoff_skips_rows_created_after_the_entity_row() -> TestResult {
    let server = prices_fixture().await?;
    let entities = [
        ("item_id", json!([1, 1, 1, 1, 2, 2, 2])),
        (
            "event_timestamp",
            json!([
                T0,
                "2025-06-01T09:15:00Z", // after row 1's creation, before row 0's
                "2025-06-01T09:20:00Z", // exactly row 0's creation: not after, so it counts
                "2025-06-01T09:05:00Z", // before both tied rows were created: row 2
                T0,
                "2025-06-01T09:28:00Z", // after row 3's creation, before row 4's
                "2025-06-01T09:20:00Z", // before either of item 2's rows was created
            ]),
        ),
    ];
    let without = historical_text_ok(
        &server,
        &request(json!(["prices:price"]), &entities, json!({})),
    )
    .await?;
    assert_eq!(
        column(&without, "price"),
        [11, 11, 11, 11, 21, 21, 21].map(|p| json!(p))
    );
    let explicit_false = historical_text_ok(
        &server,
        &request(
            json!(["prices:price"]),
            &entities,
            json!({"created_timestamp_cutoff": false}),
        ),
    )
    .await?;
    assert_eq!(explicit_false, without);

    let with = historical_text_ok(
        &server,
        &request(
            json!(["prices:price"]),
            &entities,
            json!({"created_timestamp_cutoff": true}),
        ),
    )
    .await?;
    assert_eq!(
        column(&with, "price"),
        [
            json!(11),
            json!(10),
            json!(11),
            json!(9),
            json!(21),
            json!(20),
            Value::Null
        ]
    );
    assert_eq!(matched(&with), 6);
    Ok(())
}

#[tokio::test]
async fn the_cutoff_changes_nothing_for_a_view_without_a_created_timestamp() -> TestResult {
    let server = fixture().await?;
    let body = |cutoff: bool| {
        json!({"features": ["user_profile:age"], "created_timestamp_cutoff": cutoff,
               "entities": {"user_id": [1, 1, 2], "event_timestamp": [T0, T0_MINUS_1H, T0]}})
    };
    let with = historical_ok(&server, &body(true)).await?;
    assert_eq!(column(&with, "age"), [json!(32), json!(31), json!(25)]);
    assert_eq!(with, historical_ok(&server, &body(false)).await?);
    Ok(())
}

#[tokio::test]
async fn duplicate_entity_rows_are_all_kept_in_input_order() -> TestResult {
    let server = fixture().await?;
    let answer = historical_text_ok(
        &server,
        &request(
            json!(["user_profile:age"]),
            &[
                ("user_id", json!([2, 1, 2, 1, 2, 1])),
                ("event_timestamp", json!([T0, T0, T0, T0_MINUS_1H, T0, T0])),
            ],
            json!({}),
        ),
    )
    .await?;
    assert_eq!(
        answer["rows"],
        json!([
            {"user_id": 2, "event_timestamp": T0, "age": 25},
            {"user_id": 1, "event_timestamp": T0, "age": 32},
            {"user_id": 2, "event_timestamp": T0, "age": 25},
            {"user_id": 1, "event_timestamp": T0_MINUS_1H, "age": 31},
            {"user_id": 2, "event_timestamp": T0, "age": 25},
            {"user_id": 1, "event_timestamp": T0, "age": 32},
        ])
    );
    assert_eq!(answer["metadata"]["rows"], 6);
    assert_eq!(matched(&answer), 6);
    Ok(())
}

#[tokio::test]
async fn unmatched_and_null_keys_get_null_features_and_keep_their_place() -> TestResult {
    let server = fixture().await?;
    let answer = historical_text_ok(
        &server,
        &request(
            json!(["user_profile:age", "user_profile:favorite_genre"]),
            &[
                ("user_id", json!([1, 99, null, 4, 3, 1])),
                (
                    "event_timestamp",
                    json!([T0, T0, T0, T0, T0_MINUS_3H, T0_MINUS_5D]),
                ),
            ],
            json!({}),
        ),
    )
    .await?;
    assert_eq!(
        answer["rows"],
        json!([
            {"user_id": 1, "event_timestamp": T0, "age": 32, "favorite_genre": "Action"},
            // no such user
            {"user_id": 99, "event_timestamp": T0, "age": null, "favorite_genre": null},
            // a null key matches nothing
            {"user_id": null, "event_timestamp": T0, "age": null, "favorite_genre": null},
            // only a row older than the TTL
            {"user_id": 4, "event_timestamp": T0, "age": null, "favorite_genre": null},
            // only a row after the entity row
            {"user_id": 3, "event_timestamp": T0_MINUS_3H, "age": null, "favorite_genre": null},
            // before every row of the user
            {"user_id": 1, "event_timestamp": T0_MINUS_5D, "age": null, "favorite_genre": null},
        ])
    );
    assert_eq!(matched(&answer), 1);
    Ok(())
}

#[tokio::test]
async fn null_feature_values_are_null_in_a_matched_row() -> TestResult {
    let server = fixture().await?;
    let answer = historical_ok(
        &server,
        &json!({"features": ["user_profile:favorite_genre", "user_profile:avg_rating"],
                "entities": {"user_id": [2, 1], "event_timestamp": [T0, T0]}}),
    )
    .await?;
    assert_eq!(
        column(&answer, "favorite_genre"),
        [Value::Null, json!("Action")]
    );
    assert_eq!(column(&answer, "avg_rating"), [json!(3.0), json!(4.5)]);
    // A row whose only requested value is null still matched a feature row.
    let answer = historical_ok(
        &server,
        &json!({"features": ["user_profile:favorite_genre"],
                "entities": {"user_id": [2, 99], "event_timestamp": [T0, T0]}}),
    )
    .await?;
    assert_eq!(
        column(&answer, "favorite_genre"),
        [Value::Null, Value::Null]
    );
    assert_eq!(matched(&answer), 1);
    Ok(())
}

#[tokio::test]
async fn timestamps_with_offsets_compare_as_instants_and_come_back_in_utc() -> TestResult {
    let server = fixture().await?;
    let answer = historical_text_ok(
        &server,
        &request(
            json!(["user_profile:age"]),
            &[
                ("user_id", json!([1, 1, 1, 1])),
                (
                    "event_timestamp",
                    json!([
                        // 09:30Z: read as 11:30 local it would see age 32
                        "2025-06-01T11:30:00+02:00",
                        // 09:59:59.999999Z: read as 04:59 it would see age 30
                        "2025-06-01T04:59:59.999999-05:00",
                        // 10:00Z exactly
                        "2025-06-01T05:00:00-05:00",
                        // 09:00Z exactly, written with a half-hour offset
                        "2025-06-01T14:30:00+05:30",
                    ]),
                ),
            ],
            json!({}),
        ),
    )
    .await?;
    assert_eq!(
        column(&answer, "event_timestamp"),
        ["2025-06-01T09:30:00Z", T0_MINUS_1US, T0, T0_MINUS_1H].map(|t| json!(t))
    );
    assert_eq!(
        column(&answer, "age"),
        [json!(31), json!(31), json!(32), json!(31)]
    );
    Ok(())
}

#[tokio::test]
async fn composite_keys_match_on_every_part_and_a_key_one_view_lacks_nulls_only_that_view()
-> TestResult {
    let server = fixture().await?;
    // Entity columns in another order than the view's join keys: the join goes by name.
    let answer = historical_text_ok(
        &server,
        &request(
            json!([
                "user_profile:age",
                "movie_metadata:genre",
                "user_movie:rating"
            ]),
            &[
                ("movie_id", json!([10, 10, 11, 11, 10, 12, 10])),
                ("user_id", json!([1, 1, 1, 2, 9, 1, 2])),
                (
                    "event_timestamp",
                    json!([T0, T0_MINUS_2H, T0, T0, T0, T0, T0_MINUS_30M]),
                ),
            ],
            json!({}),
        ),
    )
    .await?;
    assert_eq!(
        feature_names(&answer)?,
        [
            "movie_id",
            "user_id",
            "event_timestamp",
            "age",
            "genre",
            "rating"
        ]
    );
    assert_eq!(
        answer["rows"],
        json!([
            {"movie_id": 10, "user_id": 1, "event_timestamp": T0, "age": 32, "genre": "Sci-Fi", "rating": 5},
            {"movie_id": 10, "user_id": 1, "event_timestamp": T0_MINUS_2H, "age": 30, "genre": "Documentary", "rating": 2},
            {"movie_id": 11, "user_id": 1, "event_timestamp": T0, "age": 32, "genre": "Comedy", "rating": 3},
            // user 2 and movie 11 each have rows, the pair has none
            {"movie_id": 11, "user_id": 2, "event_timestamp": T0, "age": 25, "genre": "Comedy", "rating": null},
            // an unknown user: only the movie's view has a value
            {"movie_id": 10, "user_id": 9, "event_timestamp": T0, "age": null, "genre": "Sci-Fi", "rating": null},
            // an unknown movie: only the user's view has a value
            {"movie_id": 12, "user_id": 1, "event_timestamp": T0, "age": 32, "genre": null, "rating": null},
            // the movie's row at exactly t; the user's only row is later
            {"movie_id": 10, "user_id": 2, "event_timestamp": T0_MINUS_30M, "age": null, "genre": "Sci-Fi", "rating": 4},
        ])
    );
    assert_eq!(matched(&answer), 7);
    Ok(())
}

#[tokio::test]
async fn label_and_other_entity_columns_come_back_unchanged_in_the_order_sent() -> TestResult {
    let server = fixture().await?;
    let answer = historical_text_ok(
        &server,
        &request(
            json!(["user_profile:age"]),
            &[
                ("label", json!([1, 0, null])),
                ("user_id", json!([1, 2, 3])),
                ("note", json!(["first", null, "th\"ird, with ünïcode"])),
                ("event_timestamp", json!([T0, T0, T0])),
                ("weight", json!([0.5, 1.25, null])),
                ("clicked", json!([true, false, null])),
            ],
            json!({}),
        ),
    )
    .await?;
    assert_eq!(
        feature_names(&answer)?,
        [
            "label",
            "user_id",
            "note",
            "event_timestamp",
            "weight",
            "clicked",
            "age"
        ]
    );
    assert_eq!(
        answer["rows"],
        json!([
            {"label": 1, "user_id": 1, "note": "first", "event_timestamp": T0, "weight": 0.5, "clicked": true, "age": 32},
            {"label": 0, "user_id": 2, "note": null, "event_timestamp": T0, "weight": 1.25, "clicked": false, "age": 25},
            {"label": null, "user_id": 3, "note": "th\"ird, with ünïcode", "event_timestamp": T0, "weight": null, "clicked": null, "age": 50},
        ])
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Naming and order of the output columns
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn views_come_in_the_order_of_their_first_requested_feature() -> TestResult {
    let server = fixture().await?;
    // movie_metadata is named first, so both its features come before user_profile's,
    // each view's features in the order requested.
    let answer = historical_text_ok(
        &server,
        &request(
            json!([
                "movie_metadata:avg_rating",
                "user_profile:age",
                "movie_metadata:genre"
            ]),
            &[
                ("user_id", json!([1])),
                ("movie_id", json!([11])),
                ("event_timestamp", json!([T0])),
            ],
            json!({}),
        ),
    )
    .await?;
    assert_eq!(
        feature_names(&answer)?,
        [
            "user_id",
            "movie_id",
            "event_timestamp",
            "avg_rating",
            "genre",
            "age"
        ]
    );
    assert_eq!(
        answer["rows"],
        json!([{"user_id": 1, "movie_id": 11, "event_timestamp": T0,
                "avg_rating": 3.2, "genre": "Comedy", "age": 32}])
    );
    Ok(())
}

#[tokio::test]
async fn a_feature_service_names_the_features_and_their_order() -> TestResult {
    let server = fixture().await?;
    let entities = [
        ("user_id", json!([1, 2])),
        ("movie_id", json!([10, 11])),
        ("event_timestamp", json!([T0, T0_MINUS_1H])),
    ];
    let answer = historical_text_ok(
        &server,
        &request(
            Value::Null,
            &entities,
            json!({"feature_service": "recommender"}),
        ),
    )
    .await?;
    // `movie_metadata` as a whole view expands to its declared features.
    assert_eq!(
        feature_names(&answer)?,
        [
            "user_id",
            "movie_id",
            "event_timestamp",
            "age",
            "genre",
            "avg_rating"
        ]
    );
    assert_eq!(
        answer["rows"],
        json!([
            {"user_id": 1, "movie_id": 10, "event_timestamp": T0, "age": 32, "genre": "Sci-Fi", "avg_rating": 4.3},
            {"user_id": 2, "movie_id": 11, "event_timestamp": T0_MINUS_1H, "age": null, "genre": null, "avg_rating": null},
        ])
    );
    assert_eq!(matched(&answer), 1);

    let answer = historical_text_ok(
        &server,
        &request(
            Value::Null,
            &entities,
            json!({"feature_service": "ranker", "full_feature_names": true}),
        ),
    )
    .await?;
    assert_eq!(
        feature_names(&answer)?,
        [
            "user_id",
            "movie_id",
            "event_timestamp",
            "movie_metadata__genre",
            "user_profile__age",
            "user_movie__rating"
        ]
    );
    assert_eq!(
        answer["rows"],
        json!([
            {"user_id": 1, "movie_id": 10, "event_timestamp": T0,
             "movie_metadata__genre": "Sci-Fi", "user_profile__age": 32, "user_movie__rating": 5},
            {"user_id": 2, "movie_id": 11, "event_timestamp": T0_MINUS_1H,
             "movie_metadata__genre": null, "user_profile__age": null, "user_movie__rating": null},
        ])
    );
    Ok(())
}

#[tokio::test]
async fn full_feature_names_tell_apart_features_two_views_share() -> TestResult {
    let server = fixture().await?;
    let entities = [
        ("user_id", json!([1, 3])),
        ("movie_id", json!([10, 11])),
        ("event_timestamp", json!([T0, T0])),
    ];
    let features = json!(["user_profile:avg_rating", "movie_metadata:avg_rating"]);
    let answer = historical_text_ok(
        &server,
        &request(
            features.clone(),
            &entities,
            json!({"full_feature_names": true}),
        ),
    )
    .await?;
    assert_eq!(
        feature_names(&answer)?,
        [
            "user_id",
            "movie_id",
            "event_timestamp",
            "user_profile__avg_rating",
            "movie_metadata__avg_rating"
        ]
    );
    assert_eq!(
        column(&answer, "user_profile__avg_rating"),
        [json!(4.5), json!(2.5)]
    );
    assert_eq!(
        column(&answer, "movie_metadata__avg_rating"),
        [json!(4.3), json!(3.2)]
    );

    // Without full names the two would collide.
    let (status, body) = historical_text(
        &server,
        &request(features, &entities, json!({"full_feature_names": false})),
    )
    .await?;
    assert_problem(status, &body, 422, "invalid_body");
    assert_eq!(error_fields(&body), ["full_feature_names"], "body: {body}");
    assert!(detail(&body).contains("avg_rating"), "body: {body}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The window mode
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_window_makes_an_entity_row_of_every_key_and_event_time_inside_it() -> TestResult {
    let server = fixture().await?;
    let answer = historical_ok(
        &server,
        &json!({"features": ["user_profile:age", "user_profile:favorite_genre"],
                "start": T0_MINUS_1D, "end": T0}),
    )
    .await?;
    assert_eq!(
        answer,
        json!({
            "metadata": {"feature_names": ["user_id", "event_timestamp", "age", "favorite_genre"],
                         "rows": 4, "matched_rows": 4, "table_versions": {"user_profile": 1}, "registry_version": 5},
            // by key then time; the row of two days ago and user 4's are outside
            "rows": [
                {"user_id": 1, "event_timestamp": T0_MINUS_1H, "age": 31, "favorite_genre": "Drama"},
                {"user_id": 1, "event_timestamp": T0, "age": 32, "favorite_genre": "Action"},
                {"user_id": 2, "event_timestamp": T0_MINUS_10M, "age": 25, "favorite_genre": null},
                {"user_id": 3, "event_timestamp": T0_MINUS_2H, "age": 50, "favorite_genre": "Horror"},
            ],
        })
    );

    // Both ends are inclusive, to the microsecond; offsets are instants.
    let answer = historical_ok(
        &server,
        &json!({"features": ["user_profile:age"],
                "start": "2025-06-01T10:00:00+02:00", "end": T0_MINUS_1US}),
    )
    .await?;
    assert_eq!(
        answer["rows"],
        json!([
            {"user_id": 1, "event_timestamp": T0_MINUS_1H, "age": 31},
            {"user_id": 2, "event_timestamp": T0_MINUS_10M, "age": 25},
            {"user_id": 3, "event_timestamp": T0_MINUS_2H, "age": 50},
        ])
    );

    // A window holding nothing answers no rows.
    let answer = historical_ok(
        &server,
        &json!({"features": ["user_profile:age"],
                "start": "2020-01-01T00:00:00Z", "end": "2020-01-02T00:00:00Z"}),
    )
    .await?;
    assert_eq!(answer["rows"], json!([]));
    assert_eq!(answer["metadata"]["rows"], 0);
    Ok(())
}

#[tokio::test]
async fn a_window_over_several_views_merges_their_rows_without_duplicates() -> TestResult {
    let server = fixture().await?;
    // user_profile and session both have a row of user 1 at T0 − 1 h: one entity row.
    let answer = historical_ok(
        &server,
        &json!({"features": ["session:clicks", "user_profile:age"],
                "start": T0_MINUS_1D, "end": T0}),
    )
    .await?;
    assert_eq!(
        feature_names(&answer)?,
        ["user_id", "event_timestamp", "clicks", "age"]
    );
    assert_eq!(
        answer["rows"],
        json!([
            {"user_id": 1, "event_timestamp": T0_MINUS_1H, "clicks": 7, "age": 31},
            // session's TTL (one hour) includes its row at exactly t − ttl
            {"user_id": 1, "event_timestamp": T0, "clicks": 7, "age": 32},
            {"user_id": 2, "event_timestamp": T0_MINUS_1H_MINUS_1US, "clicks": 9, "age": null},
            {"user_id": 2, "event_timestamp": T0_MINUS_10M, "clicks": 9, "age": 25},
            {"user_id": 3, "event_timestamp": T0_MINUS_2H, "clicks": null, "age": 50},
        ])
    );
    assert_eq!(matched(&answer), 5);

    // A composite-key view: both keys become entity columns.
    let answer = historical_ok(
        &server,
        &json!({"features": ["user_movie:rating"], "start": T0_MINUS_1D, "end": T0}),
    )
    .await?;
    assert_eq!(
        feature_names(&answer)?,
        ["user_id", "movie_id", "event_timestamp", "rating"]
    );
    assert_eq!(
        answer["rows"],
        json!([
            {"user_id": 1, "movie_id": 10, "event_timestamp": T0_MINUS_3H, "rating": 2},
            {"user_id": 1, "movie_id": 10, "event_timestamp": T0_MINUS_1H, "rating": 5},
            {"user_id": 1, "movie_id": 11, "event_timestamp": T0_MINUS_1H, "rating": 3},
            {"user_id": 2, "movie_id": 10, "event_timestamp": T0_MINUS_1H, "rating": 4},
        ])
    );
    Ok(())
}

#[tokio::test]
async fn a_window_over_views_with_different_join_keys_is_422() -> TestResult {
    let server = fixture().await?;
    for features in [
        json!(["user_profile:age", "movie_metadata:genre"]),
        json!(["user_profile:age", "user_movie:rating"]),
    ] {
        let (status, body) = historical(
            &server,
            &json!({"features": features, "start": T0_MINUS_1D, "end": T0}),
        )
        .await?;
        assert_problem(status, &body, 422, "invalid_body");
        assert_eq!(error_fields(&body), ["features"], "body: {body}");
        assert!(detail(&body).contains("join keys"), "body: {body}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Formats
// ---------------------------------------------------------------------------------------------

/// A request touching integers, floats, strings, nulls and timestamps.
fn formats_request() -> String {
    request(
        json!([
            "user_profile:age",
            "user_profile:favorite_genre",
            "movie_metadata:avg_rating"
        ]),
        &[
            ("user_id", json!([1, 2, 99, 1])),
            ("movie_id", json!([10, 11, 10, 12])),
            (
                "event_timestamp",
                json!([T0, "2025-06-01T11:00:00+01:00", T0_MINUS_1H, T0_MINUS_1US]),
            ),
            ("label", json!([1, 0, 1, null])),
        ],
        json!({}),
    )
}

#[tokio::test]
async fn json_arrow_and_parquet_answers_hold_the_same_rows() -> TestResult {
    let server = fixture().await?;
    let body = formats_request();
    let json_answer = historical_text_ok(&server, &body).await?;
    assert_eq!(
        json_answer["rows"],
        json!([
            {"user_id": 1, "movie_id": 10, "event_timestamp": T0, "label": 1,
             "age": 32, "favorite_genre": "Action", "avg_rating": 4.3},
            {"user_id": 2, "movie_id": 11, "event_timestamp": T0, "label": 0,
             "age": 25, "favorite_genre": null, "avg_rating": 3.2},
            {"user_id": 99, "movie_id": 10, "event_timestamp": T0_MINUS_1H, "label": 1,
             "age": null, "favorite_genre": null, "avg_rating": 4.1},
            {"user_id": 1, "movie_id": 12, "event_timestamp": T0_MINUS_1US, "label": null,
             "age": 31, "favorite_genre": "Drama", "avg_rating": null},
        ])
    );
    // Asking for JSON explicitly changes nothing.
    let explicit = read(
        send(
            &server,
            HISTORICAL,
            "application/json",
            Some("application/json"),
            body.clone(),
        )
        .await?,
    )
    .await?;
    assert_eq!(explicit, (200, json_answer.clone()));

    let arrow = decode_arrow(binary_answer(&server, &body, ARROW_STREAM).await?)?;
    let parquet = decode_parquet(binary_answer(&server, &body, PARQUET).await?)?;
    let names = feature_names(&json_answer)?;
    assert_eq!(batch_names(&arrow), names);
    assert_eq!(batch_names(&parquet), names);
    assert_eq!(
        batch_rows(&arrow)?,
        json_answer["rows"].as_array().cloned().unwrap_or_default()
    );
    assert_eq!(batch_rows(&parquet)?, batch_rows(&arrow)?);
    // The same Arrow types both ways: keys and labels int64, time µs UTC, features as stored.
    let types = |b: &RecordBatch| -> Vec<DataType> {
        b.schema()
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect()
    };
    let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    assert_eq!(
        types(&arrow),
        [
            DataType::Int64,
            DataType::Int64,
            utc.clone(),
            DataType::Int64,
            DataType::Int64,
            DataType::Utf8,
            DataType::Float64
        ]
    );
    assert_eq!(types(&parquet), types(&arrow));
    Ok(())
}

#[tokio::test]
async fn an_empty_answer_has_its_columns_in_every_format() -> TestResult {
    let server = fixture().await?;
    let body = request(
        json!(["user_profile:age"]),
        &[("user_id", json!([])), ("event_timestamp", json!([]))],
        json!({}),
    );
    let answer = historical_text_ok(&server, &body).await?;
    assert_eq!(
        answer,
        json!({"metadata": {"feature_names": ["user_id", "event_timestamp", "age"],
                            "rows": 0, "matched_rows": 0,
                            "table_versions": {"user_profile": 1}, "registry_version": 5}, "rows": []})
    );
    let arrow = decode_arrow(binary_answer(&server, &body, ARROW_STREAM).await?)?;
    assert_eq!(arrow.num_rows(), 0);
    assert_eq!(batch_names(&arrow), ["user_id", "event_timestamp", "age"]);
    let parquet = decode_parquet(binary_answer(&server, &body, PARQUET).await?)?;
    assert_eq!(parquet.num_rows(), 0);
    assert_eq!(batch_names(&parquet), ["user_id", "event_timestamp", "age"]);
    Ok(())
}

/// The entity rows of [`formats_request`] as an Arrow batch, with `times` as its
/// `event_timestamp` column.
fn formats_entities(times: ArrayRef) -> TestResult<RecordBatch> {
    batch(vec![
        ("user_id", Arc::new(Int64Array::from(vec![1, 2, 99, 1]))),
        ("movie_id", Arc::new(Int64Array::from(vec![10, 11, 10, 12]))),
        ("event_timestamp", times),
        (
            "label",
            Arc::new(Int64Array::from(vec![Some(1), Some(0), Some(1), None])),
        ),
    ])
}

/// The query string of [`formats_request`]'s features.
const FORMATS_QUERY: &str =
    "?features=user_profile:age,user_profile:favorite_genre,movie_metadata:avg_rating";

#[tokio::test]
async fn parquet_and_arrow_uploads_answer_as_the_json_request_does() -> TestResult {
    let server = fixture().await?;
    let expected = historical_text_ok(&server, &formats_request()).await?;
    let as_timestamps = formats_entities(timestamps(&[
        Some(T0),
        Some(T0),
        Some(T0_MINUS_1H),
        Some(T0_MINUS_1US),
    ])?)?;
    let as_text = formats_entities(Arc::new(StringArray::from(vec![
        T0,
        "2025-06-01T11:00:00+01:00",
        T0_MINUS_1H,
        T0_MINUS_1US,
    ])))?;
    let path = format!("{HISTORICAL}{FORMATS_QUERY}");
    for (what, entities) in [("timestamps", &as_timestamps), ("RFC 3339 text", &as_text)] {
        for (content_type, bytes) in [
            (PARQUET, parquet_bytes(entities)?),
            (ARROW_STREAM, arrow_stream_bytes(entities)?),
        ] {
            let (status, answer) =
                read(send(&server, &path, content_type, None, bytes.clone()).await?).await?;
            assert_eq!(status, 200, "{content_type} of {what}: {answer}");
            assert_eq!(answer, expected, "{content_type} upload of {what}");
            // A content type with parameters is the same upload.
            let (status, answer) = read(
                send(
                    &server,
                    &path,
                    &format!("{content_type}; charset=binary"),
                    None,
                    bytes,
                )
                .await?,
            )
            .await?;
            assert_eq!(
                (status, answer),
                (200, expected.clone()),
                "{content_type} with parameters"
            );
        }
    }

    // Upload and answer both binary: the Arrow answer of an upload equals the JSON one.
    let arrow = decode_arrow({
        let response = send(
            &server,
            &path,
            PARQUET,
            Some(ARROW_STREAM),
            parquet_bytes(&as_timestamps)?,
        )
        .await?;
        assert_eq!(response.status().as_u16(), 200);
        response.bytes().await?.to_vec()
    })?;
    assert_eq!(
        batch_rows(&arrow)?,
        expected["rows"].as_array().cloned().unwrap_or_default()
    );
    Ok(())
}

#[tokio::test]
async fn uploaded_timestamps_of_any_unit_and_zone_compare_as_instants() -> TestResult {
    let server = fixture().await?;
    let expected = historical_text_ok(&server, &formats_request()).await?;
    // Nanoseconds in a +02:00 column: the stored values are UTC instants.
    let nanos = [T0, T0, T0_MINUS_1H, T0_MINUS_1US]
        .iter()
        .map(|t| Ok(micros(t)? * 1_000))
        .collect::<TestResult<Vec<i64>>>()?;
    let entities = formats_entities(Arc::new(
        TimestampNanosecondArray::from(nanos).with_timezone("+02:00"),
    ))?;
    let (status, answer) = read(
        send(
            &server,
            &format!("{HISTORICAL}{FORMATS_QUERY}"),
            PARQUET,
            None,
            parquet_bytes(&entities)?,
        )
        .await?,
    )
    .await?;
    assert_eq!(status, 200, "{answer}");
    for name in ["age", "favorite_genre", "avg_rating", "user_id", "label"] {
        assert_eq!(
            column(&answer, name),
            column(&expected, name),
            "column {name}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn upload_query_parameters_carry_the_service_and_the_switches() -> TestResult {
    let server = prices_fixture().await?;
    let entities = batch(vec![
        ("item_id", Arc::new(Int64Array::from(vec![1, 2]))),
        (
            "event_timestamp",
            timestamps(&[Some("2025-06-01T09:15:00Z"), Some("2025-06-01T09:28:00Z")])?,
        ),
    ])?;
    let upload = |query: &'static str| {
        let server = &server;
        let bytes = parquet_bytes(&entities);
        async move {
            let response = send(
                server,
                &format!("{HISTORICAL}{query}"),
                PARQUET,
                None,
                bytes?,
            )
            .await?;
            read(response).await
        }
    };
    let (status, answer) = upload("?features=prices:price").await?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(column(&answer, "price"), [json!(11), json!(21)]);
    let (status, answer) =
        upload("?features=prices:price&created_timestamp_cutoff=true&full_feature_names=true")
            .await?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(column(&answer, "prices__price"), [json!(10), json!(20)]);

    let server = fixture().await?;
    let entities = formats_entities(timestamps(&[
        Some(T0),
        Some(T0),
        Some(T0_MINUS_1H),
        Some(T0_MINUS_1US),
    ])?)?;
    let response = send(
        &server,
        &format!("{HISTORICAL}?feature_service=recommender"),
        ARROW_STREAM,
        None,
        arrow_stream_bytes(&entities)?,
    )
    .await?;
    let (status, answer) = read(response).await?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        feature_names(&answer)?,
        [
            "user_id",
            "movie_id",
            "event_timestamp",
            "label",
            "age",
            "genre",
            "avg_rating"
        ]
    );
    assert_eq!(
        column(&answer, "genre"),
        [
            json!("Sci-Fi"),
            json!("Comedy"),
            json!("Documentary"),
            Value::Null
        ]
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The JSON row cap
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn json_answers_above_the_row_cap_are_413_and_binary_ones_are_not_capped() -> TestResult {
    let server = TestServer::start_with(|c| c.api.max_historical_json_rows = 3)?;
    populate(&server).await?;
    let rows = |n: usize| {
        request(
            json!(["user_profile:age"]),
            &[
                ("user_id", json!(vec![1; n])),
                ("event_timestamp", json!(vec![T0; n])),
            ],
            json!({}),
        )
    };
    let at_cap = historical_text_ok(&server, &rows(3)).await?;
    assert_eq!(column(&at_cap, "age"), [json!(32), json!(32), json!(32)]);

    let (status, body) = historical_text(&server, &rows(4)).await?;
    assert_problem(status, &body, 413, "result_too_large");
    for word in ["Arrow", "Parquet", "max_historical_json_rows", "4"] {
        assert!(detail(&body).contains(word), "no {word:?} in {body}");
    }
    // The window mode is capped too: four rows of user_profile in the last day.
    let (status, body) = historical(
        &server,
        &json!({"features": ["user_profile:age"], "start": T0_MINUS_1D, "end": T0}),
    )
    .await?;
    assert_problem(status, &body, 413, "result_too_large");

    let arrow = decode_arrow(binary_answer(&server, &rows(4), ARROW_STREAM).await?)?;
    assert_eq!(arrow.num_rows(), 4);
    let parquet = decode_parquet(binary_answer(&server, &rows(4), PARQUET).await?)?;
    assert_eq!(batch_rows(&parquet)?, batch_rows(&arrow)?);
    assert_eq!(
        batch_rows(&parquet)?,
        vec![json!({"user_id": 1, "event_timestamp": T0, "age": 32}); 4]
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_views_features_and_services_are_404_naming_them() -> TestResult {
    let server = fixture().await?;
    let entities = json!({"user_id": [1], "event_timestamp": [T0]});
    let (status, body) = historical(
        &server,
        &json!({"features": ["user_profile:age", "nope:x", "gone:y"], "entities": entities}),
    )
    .await?;
    assert_problem(status, &body, 404, "unknown_feature_views");
    assert_eq!(
        error_fields(&body),
        ["features", "features"],
        "body: {body}"
    );
    for name in ["nope:x", "gone:y"] {
        assert!(body.to_string().contains(name), "no {name} in {body}");
    }

    let (status, body) = historical(
        &server,
        &json!({"features": ["user_profile:age", "user_profile:height"], "entities": entities}),
    )
    .await?;
    assert_problem(status, &body, 404, "unknown_features");
    assert_eq!(error_fields(&body), ["features"], "body: {body}");
    assert!(
        body.to_string().contains("user_profile:height"),
        "body: {body}"
    );

    let (status, body) = historical(
        &server,
        &json!({"feature_service": "no_such_service", "entities": entities}),
    )
    .await?;
    assert_problem(status, &body, 404, "unknown_feature_service");
    assert_eq!(error_fields(&body), ["feature_service"], "body: {body}");
    assert!(body.to_string().contains("no_such_service"), "body: {body}");

    // The same through an upload's query string.
    let upload = parquet_bytes(&batch(vec![
        ("user_id", Arc::new(Int64Array::from(vec![1]))),
        ("event_timestamp", timestamps(&[Some(T0)])?),
    ])?)?;
    let (status, body) = read(
        send(
            &server,
            &format!("{HISTORICAL}?features=nope:x"),
            PARQUET,
            None,
            upload.clone(),
        )
        .await?,
    )
    .await?;
    assert_problem(status, &body, 404, "unknown_feature_views");
    let (status, body) = read(
        send(
            &server,
            &format!("{HISTORICAL}?feature_service=no_such_service"),
            PARQUET,
            None,
            upload,
        )
        .await?,
    )
    .await?;
    assert_problem(status, &body, 404, "unknown_feature_service");
    Ok(())
}

#[tokio::test]
async fn entity_rows_without_a_timestamp_or_a_join_key_are_422() -> TestResult {
    let server = fixture().await?;
    let (status, body) = historical(
        &server,
        &json!({"features": ["user_profile:age"], "entities": {"user_id": [1, 2]}}),
    )
    .await?;
    assert_problem(status, &body, 422, "invalid_body");
    assert_eq!(
        error_fields(&body),
        ["entities.event_timestamp"],
        "body: {body}"
    );

    let (status, body) = historical(
        &server,
        &json!({"features": ["user_profile:age", "movie_metadata:genre"],
                "entities": {"movie_id": [10], "event_timestamp": [T0]}}),
    )
    .await?;
    assert_problem(status, &body, 422, "invalid_body");
    assert_eq!(error_fields(&body), ["entities"], "body: {body}");
    assert!(detail(&body).contains("user_id"), "body: {body}");

    // A composite view needs both of its keys.
    let (status, body) = historical(
        &server,
        &json!({"features": ["user_movie:rating"],
                "entities": {"user_id": [1], "event_timestamp": [T0]}}),
    )
    .await?;
    assert_problem(status, &body, 422, "invalid_body");
    assert!(detail(&body).contains("movie_id"), "body: {body}");

    // An upload without event_timestamp.
    let upload = parquet_bytes(&batch(vec![
        ("user_id", Arc::new(Int64Array::from(vec![1]))),
        ("ts", timestamps(&[Some(T0)])?),
    ])?)?;
    let (status, body) = read(
        send(
            &server,
            &format!("{HISTORICAL}?features=user_profile:age"),
            PARQUET,
            None,
            upload,
        )
        .await?,
    )
    .await?;
    assert_problem(status, &body, 422, "invalid_body");
    assert_eq!(
        error_fields(&body),
        ["entities.event_timestamp"],
        "body: {body}"
    );
    assert!(
        detail(&body).contains("ts"),
        "the upload's columns are listed: {body}"
    );
    Ok(())
}

#[tokio::test]
async fn bad_timestamps_and_ragged_entity_columns_are_422() -> TestResult {
    let server = fixture().await?;
    for (times, row, what) in [
        (json!([T0, "yesterday"]), "row 1", "yesterday"),
        // A date alone is not an instant (a naive date and time is: UTC).
        (json!(["2025-06-01", T0]), "row 0", "2025-06-01"),
        (json!([T0, 1_748_772_000]), "row 1", "1748772000"),
    ] {
        let (status, body) = historical(
            &server,
            &json!({"features": ["user_profile:age"],
                    "entities": {"user_id": [1, 2], "event_timestamp": times}}),
        )
        .await?;
        assert_problem(status, &body, 422, "invalid_body");
        assert_eq!(
            error_fields(&body),
            ["entities.event_timestamp"],
            "body: {body}"
        );
        assert!(detail(&body).contains(row), "no {row:?} in {body}");
        assert!(detail(&body).contains(what), "no {what:?} in {body}");
    }

    // Text that is not a timestamp in an upload.
    let upload = parquet_bytes(&batch(vec![
        ("user_id", Arc::new(Int64Array::from(vec![1]))),
        ("event_timestamp", Arc::new(StringArray::from(vec!["soon"]))),
    ])?)?;
    let (status, body) = read(
        send(
            &server,
            &format!("{HISTORICAL}?features=user_profile:age"),
            PARQUET,
            None,
            upload,
        )
        .await?,
    )
    .await?;
    assert_problem(status, &body, 422, "invalid_body");
    assert!(detail(&body).contains("soon"), "body: {body}");

    // Columns of different lengths, whichever is longer.
    for entities in [
        json!({"user_id": [1, 2], "event_timestamp": [T0]}),
        json!({"user_id": [1], "event_timestamp": [T0, T0]}),
        json!({"user_id": [1], "event_timestamp": [T0], "label": [1, 0, 1]}),
    ] {
        let (status, body) = historical(
            &server,
            &json!({"features": ["user_profile:age"], "entities": entities}),
        )
        .await?;
        assert_problem(status, &body, 422, "invalid_body");
        assert_eq!(error_fields(&body).len(), 1, "body: {body}");
        assert!(
            error_fields(&body)[0].starts_with("entities."),
            "the ragged column is named: {body}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn entity_rows_and_a_window_are_exclusive_and_one_of_them_is_needed() -> TestResult {
    let server = fixture().await?;
    let entities = json!({"user_id": [1], "event_timestamp": [T0]});
    for (body, field) in [
        (json!({"features": ["user_profile:age"]}), "entities"),
        (
            json!({"features": ["user_profile:age"], "start": T0_MINUS_1D}),
            "entities",
        ),
        (
            json!({"features": ["user_profile:age"], "end": T0}),
            "entities",
        ),
        (
            json!({"features": ["user_profile:age"], "entities": entities,
                   "start": T0_MINUS_1D, "end": T0}),
            "start",
        ),
        (
            json!({"features": ["user_profile:age"], "start": T0, "end": T0_MINUS_1D}),
            "start",
        ),
        (
            json!({"features": ["user_profile:age"], "start": "last week", "end": T0}),
            "start",
        ),
        (
            json!({"features": ["user_profile:age"], "start": T0_MINUS_1D, "end": "2025-13-01T00:00:00Z"}),
            "end",
        ),
    ] {
        let (status, problem) = historical(&server, &body).await?;
        assert_problem(status, &problem, 422, "invalid_body");
        assert_eq!(error_fields(&problem), [field], "{body} answered {problem}");
    }
    Ok(())
}

#[tokio::test]
async fn features_and_a_service_are_exclusive_and_one_of_them_is_needed() -> TestResult {
    let server = fixture().await?;
    let entities = json!({"user_id": [1], "event_timestamp": [T0]});
    for body in [
        json!({"entities": entities}),
        json!({"features": [], "entities": entities}),
        json!({"features": ["user_profile:age"], "feature_service": "recommender", "entities": entities}),
        json!({"features": ["user_profile"], "entities": entities}),
        json!({"features": ["user_profile:age", "user_profile:age"], "entities": entities}),
        json!({"features": "user_profile:age", "entities": entities}),
        json!({"features": ["user_profile:age"], "entities": {"user_id": [{"a": 1}], "event_timestamp": [T0]}}),
    ] {
        let (status, problem) = historical(&server, &body).await?;
        assert_problem(status, &problem, 422, "invalid_body");
    }
    Ok(())
}

#[tokio::test]
async fn unreadable_uploads_are_422_and_other_content_types_415() -> TestResult {
    let server = fixture().await?;
    let path = format!("{HISTORICAL}?features=user_profile:age");
    for content_type in [PARQUET, ARROW_STREAM] {
        for bytes in [b"not a file at all".to_vec(), Vec::new()] {
            let (status, body) =
                read(send(&server, &path, content_type, None, bytes).await?).await?;
            assert_problem(status, &body, 422, "invalid_body");
            assert_eq!(error_fields(&body), ["body"], "{content_type}: {body}");
        }
    }
    // A truncated Parquet file (no footer).
    let whole = parquet_bytes(&batch(vec![
        ("user_id", Arc::new(Int64Array::from(vec![1]))),
        ("event_timestamp", timestamps(&[Some(T0)])?),
    ])?)?;
    let (status, body) = read(
        send(
            &server,
            &path,
            PARQUET,
            None,
            whole[..whole.len() / 2].to_vec(),
        )
        .await?,
    )
    .await?;
    assert_problem(status, &body, 422, "invalid_body");
    // Parquet bytes declared as an Arrow stream.
    let (status, body) = read(send(&server, &path, ARROW_STREAM, None, whole).await?).await?;
    assert_problem(status, &body, 422, "invalid_body");

    for content_type in [
        "text/csv",
        "text/plain",
        "application/x-www-form-urlencoded",
    ] {
        let (status, body) = read(
            send(
                &server,
                HISTORICAL,
                content_type,
                None,
                format!("user_id,event_timestamp\n1,{T0}\n"),
            )
            .await?,
        )
        .await?;
        assert_problem(status, &body, 415, "unsupported_media_type");
        assert!(detail(&body).contains(content_type), "{body}");
    }
    Ok(())
}

#[tokio::test]
async fn malformed_json_is_400() -> TestResult {
    let server = fixture().await?;
    for text in [
        "{\"features\": [\"user_profile:age\"], \"entities\": ",
        "not json",
        "{\"features\": [\"user_profile:age\"],}",
    ] {
        let (status, body) = historical_text(&server, text).await?;
        assert_problem(status, &body, 400, "malformed_json");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The CLI
// ---------------------------------------------------------------------------------------------

fn utf8(path: &Path) -> TestResult<&str> {
    Ok(path.to_str().ok_or("a UTF-8 temporary path")?)
}

/// Checks `featurestore historical`'s summary line: "N rows x C columns
/// written to OUT (… MB); M rows (P %) matched at least one view; T s".
fn check_summary(
    stdout: &str,
    rows: usize,
    columns: usize,
    out: &Path,
    matched: usize,
) -> TestResult {
    let line = stdout
        .lines()
        .find(|l| l.contains("written to"))
        .ok_or_else(|| format!("no summary in {stdout:?}"))?;
    let prefix = format!(
        "{rows} rows x {columns} columns written to {} (",
        out.display()
    );
    assert!(
        line.starts_with(&prefix),
        "{line:?} does not start with {prefix:?}"
    );
    let percent = matched as f64 * 100.0 / rows as f64;
    let middle = format!(" MB); {matched} rows ({percent:.1} %) matched at least one view; ");
    assert!(
        line.contains(&middle),
        "{line:?} does not contain {middle:?}"
    );
    assert!(line.ends_with(" s"), "{line:?}");
    let size = line[prefix.len()..]
        .split_once(' ')
        .map(|(mb, _)| mb)
        .ok_or("no size")?;
    let size: f64 = size.parse()?;
    let actual = std::fs::metadata(out)?.len() as f64 / 1_048_576.0;
    assert!(
        (size - actual).abs() < 0.06,
        "{size} MB reported, file is {actual} MB"
    );
    Ok(())
}

/// A data root written by a server that is then stopped, and the Parquet answer that server
/// gave to `body` before it stopped.
async fn offline_root(body: &str) -> TestResult<(tempfile::TempDir, RecordBatch)> {
    let server = fixture().await?;
    let answer = decode_parquet(binary_answer(&server, body, PARQUET).await?)?;
    Ok((server.stop(), answer))
}

#[tokio::test]
async fn the_cli_joins_a_parquet_entity_file_as_the_api_does() -> TestResult {
    let (data, served) = offline_root(&formats_request()).await?;
    let work = tempfile::tempdir()?;
    let entities = work.path().join("entities.parquet");
    write_parquet(
        &entities,
        &formats_entities(timestamps(&[
            Some(T0),
            Some(T0),
            Some(T0_MINUS_1H),
            Some(T0_MINUS_1US),
        ])?)?,
    )?;
    let out = work.path().join("training.parquet");
    let stdout = featurestore_ok(&[
        "historical",
        "--data-dir",
        utf8(data.path())?,
        "--entities",
        utf8(&entities)?,
        "--features",
        "user_profile:age,user_profile:favorite_genre,movie_metadata:avg_rating",
        "--out",
        utf8(&out)?,
    ])?;
    check_summary(&stdout, 4, 7, &out, 4)?;
    let written = decode_parquet(std::fs::read(&out)?)?;
    assert_eq!(batch_rows(&written)?, batch_rows(&served)?);
    assert_eq!(
        batch_rows(&written)?,
        [
            json!({"user_id": 1, "movie_id": 10, "event_timestamp": T0, "label": 1,
                   "age": 32, "favorite_genre": "Action", "avg_rating": 4.3}),
            json!({"user_id": 2, "movie_id": 11, "event_timestamp": T0, "label": 0,
                   "age": 25, "favorite_genre": null, "avg_rating": 3.2}),
            json!({"user_id": 99, "movie_id": 10, "event_timestamp": T0_MINUS_1H, "label": 1,
                   "age": null, "favorite_genre": null, "avg_rating": 4.1}),
            json!({"user_id": 1, "movie_id": 12, "event_timestamp": T0_MINUS_1US, "label": null,
                   "age": 31, "favorite_genre": "Drama", "avg_rating": null}),
        ]
    );
    assert_eq!(
        batch_names(&written),
        [
            "user_id",
            "movie_id",
            "event_timestamp",
            "label",
            "age",
            "favorite_genre",
            "avg_rating"
        ]
    );
    // No temporary file is left beside the output.
    let mut left: Vec<String> = std::fs::read_dir(work.path())?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    left.sort();
    assert_eq!(left, ["entities.parquet", "training.parquet"]);
    Ok(())
}

#[tokio::test]
async fn the_cli_reads_csv_entity_files_with_quotes_and_empty_cells() -> TestResult {
    let (data, _) = offline_root(&formats_request()).await?;
    let work = tempfile::tempdir()?;
    let entities = work.path().join("entities.csv");
    std::fs::write(
        &entities,
        format!(
            "user_id,movie_id,event_timestamp,label,note\n\
             1,10,{T0},1,\"hello, world\"\n\
             2,11,2025-06-01T11:00:00+01:00,,\"say \"\"hi\"\"\"\n\
             \n\
             9,12,{T0_MINUS_1H},0.5,plain\r\n\
             1,11,{T0_MINUS_2D},1,\n"
        ),
    )?;
    let out = work.path().join("training.parquet");
    let stdout = featurestore_ok(&[
        "historical",
        "--data-dir",
        utf8(data.path())?,
        "--entities",
        utf8(&entities)?,
        "--service",
        "recommender",
        "--full-feature-names",
        "--out",
        utf8(&out)?,
    ])?;
    check_summary(&stdout, 4, 8, &out, 3)?;
    let written = decode_parquet(std::fs::read(&out)?)?;
    assert_eq!(
        batch_names(&written),
        [
            "user_id",
            "movie_id",
            "event_timestamp",
            "label",
            "note",
            "user_profile__age",
            "movie_metadata__genre",
            "movie_metadata__avg_rating"
        ]
    );
    assert_eq!(
        batch_rows(&written)?,
        [
            json!({"user_id": 1, "movie_id": 10, "event_timestamp": T0, "label": 1.0,
                   "note": "hello, world", "user_profile__age": 32,
                   "movie_metadata__genre": "Sci-Fi", "movie_metadata__avg_rating": 4.3}),
            json!({"user_id": 2, "movie_id": 11, "event_timestamp": T0, "label": null,
                   "note": "say \"hi\"", "user_profile__age": 25,
                   "movie_metadata__genre": "Comedy", "movie_metadata__avg_rating": 3.2}),
            json!({"user_id": 9, "movie_id": 12, "event_timestamp": T0_MINUS_1H, "label": 0.5,
                   "note": "plain", "user_profile__age": null,
                   "movie_metadata__genre": null, "movie_metadata__avg_rating": null}),
            json!({"user_id": 1, "movie_id": 11, "event_timestamp": T0_MINUS_2D, "label": 1.0,
                   "note": null, "user_profile__age": 30,
                   "movie_metadata__genre": null, "movie_metadata__avg_rating": null}),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn the_cli_applies_the_cutoff_and_fails_clearly_on_unknown_features() -> TestResult {
    let server = prices_fixture().await?;
    let data = server.stop();
    let work = tempfile::tempdir()?;
    let entities = work.path().join("entities.csv");
    std::fs::write(
        &entities,
        "item_id,event_timestamp\n1,2025-06-01T09:15:00Z\n2,2025-06-01T09:20:00Z\n",
    )?;
    let out = work.path().join("out.parquet");
    let args = |cutoff: bool| {
        let mut args = vec![
            "historical".to_owned(),
            "--data-dir".to_owned(),
            data.path().display().to_string(),
            "--entities".to_owned(),
            entities.display().to_string(),
            "--features".to_owned(),
            "prices:price".to_owned(),
            "--out".to_owned(),
            out.display().to_string(),
        ];
        if cutoff {
            args.push("--created-timestamp-cutoff".to_owned());
        }
        args
    };
    let run = |args: Vec<String>| -> TestResult<Vec<Value>> {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        featurestore_ok(&args)?;
        let written = decode_parquet(std::fs::read(&out)?)?;
        column_of(&written, "price")
    };
    assert_eq!(run(args(false))?, [json!(11), json!(21)]);
    assert_eq!(run(args(true))?, [json!(10), Value::Null]);

    let output = featurestore_command(&[
        "historical",
        "--data-dir",
        utf8(data.path())?,
        "--entities",
        utf8(&entities)?,
        "--features",
        "prices:price,prices:discount",
        "--out",
        utf8(&work.path().join("never.parquet"))?,
    ])?;
    assert!(!output.status.success(), "an unknown feature must fail");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("prices:discount"), "stderr: {stderr}");
    assert!(!work.path().join("never.parquet").exists());
    Ok(())
}

/// The values of column `name` of a decoded answer.
fn column_of(batch: &RecordBatch, name: &str) -> TestResult<Vec<Value>> {
    let array = batch
        .column_by_name(name)
        .ok_or_else(|| format!("no column {name}"))?;
    (0..batch.num_rows()).map(|row| cell(array, row)).collect()
}

// ---------------------------------------------------------------------------------------------
// Against a brute-force reference
// ---------------------------------------------------------------------------------------------

/// SplitMix64: a small seeded generator, so a failure reproduces from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One feature row of a random view.
#[derive(Debug, Clone)]
struct VersionRow {
    key: i64,
    event: i64,
    created: i64,
    /// The row's number in its table: the `value` feature, so the winner is identifiable.
    id: i64,
    tag: Option<String>,
}

/// A random view: 30 keys with 0–6 versions each on a coarse time grid (so equal event
/// times happen), distinct created timestamps up to half an hour after the event, rows
/// shuffled.
fn random_view(rng: &mut Rng, base: i64) -> Vec<VersionRow> {
    let mut rows = Vec::new();
    for key in 0..30 {
        for _ in 0..rng.below(7) {
            let event = base + rng.below(40) as i64 * 60_000_000;
            rows.push((key, event));
        }
    }
    // Fisher–Yates, then number the rows in table order.
    for i in (1..rows.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        rows.swap(i, j);
    }
    rows.into_iter()
        .enumerate()
        .map(|(id, (key, event))| {
            let created = event + rng.below(30) as i64 * 60_000_000 + id as i64;
            let tag = (rng.below(5) != 0).then(|| format!("k{key}-r{id}"));
            VersionRow {
                key,
                event,
                created,
                id: id as i64,
                tag,
            }
        })
        .collect()
}

fn view_batch(rows: &[VersionRow]) -> TestResult<RecordBatch> {
    keyed_view_batch(rows, KeyKind::Dense)
}

/// How a random view spells its keys: the join has a separate path for each.
#[derive(Debug, Clone, Copy)]
enum KeyKind {
    /// Small integers: addressed directly.
    Dense,
    /// Integers too far apart for that: hashed.
    Sparse,
    /// Strings.
    Text,
}

impl KeyKind {
    /// The key `key` as the table and the entity rows hold it.
    fn spell(self, key: i64) -> Value {
        match self {
            KeyKind::Dense => json!(key),
            KeyKind::Sparse => json!(key * 1_000_000_007 - 5_000_000_000),
            KeyKind::Text => json!(format!("item-{key}")),
        }
    }

    fn value_type(self) -> &'static str {
        match self {
            KeyKind::Text => "string",
            _ => "int64",
        }
    }
}

fn keyed_view_batch(rows: &[VersionRow], kind: KeyKind) -> TestResult<RecordBatch> {
    let keys: ArrayRef = match kind {
        KeyKind::Text => Arc::new(StringArray::from(
            rows.iter()
                .map(|r| format!("item-{}", r.key))
                .collect::<Vec<_>>(),
        )),
        _ => Arc::new(Int64Array::from(
            rows.iter()
                .map(|r| kind.spell(r.key).as_i64().unwrap_or_default())
                .collect::<Vec<_>>(),
        )),
    };
    batch(vec![
        ("item_id", keys),
        (
            "event_timestamp",
            Arc::new(
                TimestampMicrosecondArray::from(rows.iter().map(|r| r.event).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ),
        ),
        (
            "created_at",
            Arc::new(
                TimestampMicrosecondArray::from(rows.iter().map(|r| r.created).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ),
        ),
        (
            "value",
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.id).collect::<Vec<_>>(),
            )),
        ),
        (
            "tag",
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.tag.as_deref()).collect::<Vec<_>>(),
            )),
        ),
    ])
}

/// The winning row for an entity row at `t`, by the rule written out plainly.
fn reference(
    rows: &[VersionRow],
    key: i64,
    t: i64,
    ttl_seconds: Option<u64>,
    cutoff: bool,
) -> Option<&VersionRow> {
    rows.iter()
        .filter(|r| r.key == key && r.event <= t)
        .filter(|r| ttl_seconds.is_none_or(|ttl| r.event >= t - ttl as i64 * 1_000_000))
        .filter(|r| !cutoff || r.created <= t)
        .max_by_key(|r| (r.event, r.created))
}

/// Three seeded servers (small integer, sparse integer and string keys), each with four random
/// views (no TTL and three random ones, every view with created timestamps), and 200 entity
/// rows aimed at the rule's boundaries; every value, with and without the cutoff, equals the
/// brute-force [`reference`].
#[tokio::test]
async fn random_histories_match_a_brute_force_reference() -> TestResult {
    let base = micros(T0)?;
    for (seed, kind) in [
        (7_u64, KeyKind::Dense),
        (2024, KeyKind::Sparse),
        (99_991, KeyKind::Text),
    ] {
        let mut rng = Rng(seed);
        let data = tempfile::tempdir()?;
        std::fs::create_dir_all(data.path().join("features/prop"))?;
        // v0 keeps values forever; the others have TTLs of whole minutes (aligned with the
        // time grid, so boundaries are hit) or of odd seconds.
        let ttls = [
            None,
            Some((1 + rng.below(40)) * 60),
            Some((1 + rng.below(40)) * 60 + 1 + rng.below(58)),
            Some((1 + rng.below(5)) * 60),
        ];
        let mut views = Vec::new();
        for (i, _) in ttls.iter().enumerate() {
            let rows = random_view(&mut rng, base);
            write_parquet(
                &data.path().join(format!("features/prop/v{i}.parquet")),
                &keyed_view_batch(&rows, kind)?,
            )?;
            views.push(rows);
        }
        let server = TestServer::start_on(data, |_| {})?;
        let feature_views: Vec<Value> = ttls
            .iter()
            .enumerate()
            .map(|(i, ttl)| {
                json!({"name": format!("v{i}"), "group": "prop", "entities": ["item_id"],
                       "timestamp_field": "event_timestamp", "created_timestamp_field": "created_at",
                       "ttl_seconds": ttl})
            })
            .collect();
        server
            .apply(&json!({
                "entities": [{"name": "item_id", "value_type": kind.value_type()}],
                "feature_views": feature_views,
            }))
            .await?;

        // 200 entity rows: keys 0–34 (30–34 unknown) at times on and around the grid, and
        // at the boundaries the rule has: a row's own event time, its created time, its
        // event time plus a view's TTL, each give or take a microsecond.
        let mut keys = Vec::new();
        let mut times = Vec::new();
        for _ in 0..200 {
            let jitter = rng.below(3) as i64 - 1;
            let (key, t) = match rng.below(4) {
                0 => (
                    rng.below(35) as i64,
                    base + rng.below(80) as i64 * 60_000_000 - 10 * 60_000_000,
                ),
                choice => {
                    let view = &views[rng.below(views.len() as u64) as usize];
                    if view.is_empty() {
                        (0, base)
                    } else {
                        let row = &view[rng.below(view.len() as u64) as usize];
                        let ttl = ttls[rng.below(ttls.len() as u64) as usize].unwrap_or(0);
                        let t = match choice {
                            1 => row.event,
                            2 => row.created,
                            _ => row.event + ttl as i64 * 1_000_000,
                        };
                        (row.key, t + jitter)
                    }
                }
            };
            keys.push(key);
            times.push(rfc3339(t)?);
        }
        let features: Vec<String> = (0..views.len())
            .flat_map(|i| [format!("v{i}:value"), format!("v{i}:tag")])
            .collect();
        let spelled: Vec<Value> = keys.iter().map(|&k| kind.spell(k)).collect();
        for cutoff in [false, true] {
            let answer = historical_ok(
                &server,
                &json!({"features": features, "full_feature_names": true,
                        "created_timestamp_cutoff": cutoff,
                        "entities": {"item_id": spelled, "event_timestamp": times}}),
            )
            .await?;
            let rows = answer["rows"].as_array().ok_or("rows")?;
            assert_eq!(rows.len(), 200);
            let mut expected_matched = 0;
            for (i, row) in rows.iter().enumerate() {
                assert_eq!(row["item_id"], spelled[i], "seed {seed} row {i}");
                assert_eq!(row["event_timestamp"], times[i], "seed {seed} row {i}");
                let t = micros(&times[i])?;
                let mut any = false;
                for (v, view) in views.iter().enumerate() {
                    let winner = reference(view, keys[i], t, ttls[v], cutoff);
                    any |= winner.is_some();
                    let (value, tag) =
                        winner.map_or((Value::Null, Value::Null), |w| (json!(w.id), json!(w.tag)));
                    let context = format!(
                        "seed {seed} ({kind:?} keys), cutoff {cutoff}, entity row {i} (key {}, t {}), view v{v} (ttl {:?}); candidates: {:?}",
                        keys[i],
                        times[i],
                        ttls[v],
                        view.iter().filter(|r| r.key == keys[i]).collect::<Vec<_>>()
                    );
                    assert_eq!(row[format!("v{v}__value")], value, "{context}");
                    assert_eq!(row[format!("v{v}__tag")], tag, "{context}");
                }
                expected_matched += usize::from(any);
            }
            assert_eq!(
                matched(&answer),
                expected_matched,
                "seed {seed}, cutoff {cutoff}"
            );
        }
    }
    Ok(())
}

/// Integer keys sent as JSON strings (as some clients do) meet an integer view column through
/// their decimal text, and come back as sent.
#[tokio::test]
async fn integer_keys_sent_as_strings_still_match() -> TestResult {
    let server = fixture().await?;
    let answer = historical_ok(
        &server,
        &json!({"features": ["user_profile:age"],
                "entities": {"user_id": ["1", "2", "x"], "event_timestamp": [T0, T0, T0]}}),
    )
    .await?;
    assert_eq!(
        column(&answer, "user_id"),
        [json!("1"), json!("2"), json!("x")]
    );
    assert_eq!(column(&answer, "age"), [json!(32), json!(25), Value::Null]);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Key representations, sizes and further edge cases
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn sparse_integer_string_and_mixed_composite_keys_all_match() -> TestResult {
    let server = TestServer::start()?;
    // Ids too far apart for the join's direct-offset table, so it hashes them.
    server
        .save(
            "bank",
            "accounts",
            json!({"entity_key": ["account_id"], "records": [
                {"account_id": 7, "balance": 10.5, "event_timestamp": T0_MINUS_1H},
                {"account_id": 9_000_000_000_000_i64, "balance": 99.0, "event_timestamp": T0_MINUS_1H},
                {"account_id": -3, "balance": -1.0, "event_timestamp": T0_MINUS_1H},
            ]}),
        )
        .await?;
    server
        .save(
            "geo",
            "regions",
            json!({"entity_key": ["region"], "records": [
                {"region": "eu-west", "tax": 20, "event_timestamp": T0_MINUS_2H},
                {"region": "eu-west", "tax": 21, "event_timestamp": T0_MINUS_1H},
                {"region": "us", "tax": 7, "event_timestamp": T0_MINUS_1H},
            ]}),
        )
        .await?;
    server
        .save(
            "geo",
            "user_region",
            json!({"entity_key": ["user_id", "region"], "records": [
                {"user_id": 1, "region": "eu-west", "visits": 3, "event_timestamp": T0_MINUS_1H},
                {"user_id": 1, "region": "us", "visits": 5, "event_timestamp": T0_MINUS_1H},
                {"user_id": 2, "region": "us", "visits": 8, "event_timestamp": T0_MINUS_1H},
            ]}),
        )
        .await?;
    server
        .apply(&json!({
            "entities": [
                {"name": "account_id", "value_type": "int64"},
                {"name": "region", "value_type": "string"},
                {"name": "user_id", "value_type": "int64"},
            ],
            "feature_views": [
                {"name": "accounts", "group": "bank", "entities": ["account_id"],
                 "timestamp_field": "event_timestamp"},
                {"name": "regions", "group": "geo", "entities": ["region"],
                 "timestamp_field": "event_timestamp"},
                {"name": "user_region", "group": "geo", "entities": ["user_id", "region"],
                 "timestamp_field": "event_timestamp"},
            ],
        }))
        .await?;
    let answer = historical_text_ok(
        &server,
        &request(
            json!(["accounts:balance", "regions:tax", "user_region:visits"]),
            &[
                ("account_id", json!([9_000_000_000_000_i64, 7, -3, 8, 7])),
                (
                    "region",
                    json!(["eu-west", "us", "eu-west", "asia", "eu-west"]),
                ),
                ("user_id", json!([1, 2, 2, 1, 1])),
                (
                    "event_timestamp",
                    json!([T0, T0, T0, T0, "2025-06-01T08:30:00Z"]),
                ),
            ],
            json!({}),
        ),
    )
    .await?;
    assert_eq!(
        column(&answer, "balance"),
        [
            json!(99.0),
            json!(10.5),
            json!(-1.0),
            Value::Null,
            Value::Null
        ]
    );
    assert_eq!(
        column(&answer, "tax"),
        [json!(21), json!(7), json!(21), Value::Null, json!(20)]
    );
    assert_eq!(
        column(&answer, "visits"),
        [json!(3), json!(8), Value::Null, Value::Null, Value::Null]
    );
    assert_eq!(matched(&answer), 4);

    // The window mode over the string-keyed view.
    let answer = historical_ok(
        &server,
        &json!({"features": ["regions:tax"], "start": T0_MINUS_1D, "end": T0}),
    )
    .await?;
    assert_eq!(
        answer["rows"],
        json!([
            {"region": "eu-west", "event_timestamp": T0_MINUS_2H, "tax": 20},
            {"region": "eu-west", "event_timestamp": T0_MINUS_1H, "tax": 21},
            {"region": "us", "event_timestamp": T0_MINUS_1H, "tax": 7},
        ])
    );
    Ok(())
}

#[tokio::test]
async fn a_zero_ttl_means_no_limit_as_in_feast() -> TestResult {
    let server = TestServer::start()?;
    server
        .save(
            "user",
            "forever",
            json!({"entity_key": ["user_id"], "records": [
                {"user_id": 1, "score": 5, "event_timestamp": "2020-01-01T00:00:00Z"},
            ]}),
        )
        .await?;
    server
        .apply(&json!({
            "entities": [{"name": "user_id", "value_type": "int64"}],
            "feature_views": [{"name": "forever", "group": "user", "entities": ["user_id"],
                               "timestamp_field": "event_timestamp", "ttl_seconds": 0}],
        }))
        .await?;
    let answer = historical_ok(
        &server,
        &json!({"features": ["forever:score"],
                "entities": {"user_id": [1, 1], "event_timestamp": [T0, "2019-12-31T23:59:59Z"]}}),
    )
    .await?;
    assert_eq!(column(&answer, "score"), [json!(5), Value::Null]);
    Ok(())
}

#[tokio::test]
async fn null_timestamps_and_all_null_keys_match_nothing_without_failing() -> TestResult {
    let server = fixture().await?;
    let answer = historical_ok(
        &server,
        &json!({"features": ["user_profile:age"],
                "entities": {"user_id": [1, 1], "event_timestamp": [null, T0]}}),
    )
    .await?;
    assert_eq!(column(&answer, "event_timestamp"), [Value::Null, json!(T0)]);
    assert_eq!(column(&answer, "age"), [Value::Null, json!(32)]);

    let answer = historical_ok(
        &server,
        &json!({"features": ["user_profile:age"],
                "entities": {"user_id": [null, null], "event_timestamp": [T0, T0]}}),
    )
    .await?;
    assert_eq!(column(&answer, "age"), [Value::Null, Value::Null]);
    assert_eq!(matched(&answer), 0);
    Ok(())
}

#[tokio::test]
async fn more_entity_error_cases_are_422_naming_the_column() -> TestResult {
    let server = fixture().await?;
    // An entity column named like a requested feature would give two columns one name.
    let (status, body) = historical(
        &server,
        &json!({"features": ["user_profile:age"],
                "entities": {"user_id": [1], "event_timestamp": [T0], "age": [40]}}),
    )
    .await?;
    assert_problem(status, &body, 422, "invalid_body");
    assert!(detail(&body).contains("age"), "body: {body}");

    // A column given twice.
    let (status, body) = historical_text(
        &server,
        &request(
            json!(["user_profile:age"]),
            &[
                ("user_id", json!([1])),
                ("event_timestamp", json!([T0])),
                ("user_id", json!([2])),
            ],
            json!({}),
        ),
    )
    .await?;
    assert_problem(status, &body, 422, "invalid_body");
    assert!(detail(&body).contains("user_id"), "body: {body}");

    // Values of different kinds in one column.
    let (status, body) = historical(
        &server,
        &json!({"features": ["user_profile:age"],
                "entities": {"user_id": [1, "two"], "event_timestamp": [T0, T0]}}),
    )
    .await?;
    assert_problem(status, &body, 422, "invalid_body");
    assert_eq!(error_fields(&body), ["entities.user_id"], "body: {body}");

    // An uploaded event_timestamp of integers.
    let upload = parquet_bytes(&batch(vec![
        ("user_id", Arc::new(Int64Array::from(vec![1]))),
        (
            "event_timestamp",
            Arc::new(Int64Array::from(vec![1_748_772_000])),
        ),
    ])?)?;
    let (status, body) = read(
        send(
            &server,
            &format!("{HISTORICAL}?features=user_profile:age"),
            ARROW_STREAM,
            None,
            arrow_stream_bytes(&batch(vec![
                ("user_id", Arc::new(Int64Array::from(vec![1]))),
                (
                    "event_timestamp",
                    Arc::new(Int64Array::from(vec![1_748_772_000])),
                ),
            ])?)?,
        )
        .await?,
    )
    .await?;
    assert_problem(status, &body, 422, "invalid_body");
    assert_eq!(
        error_fields(&body),
        ["entities.event_timestamp"],
        "body: {body}"
    );
    let (status, body) = read(
        send(
            &server,
            &format!("{HISTORICAL}?features=user_profile:age"),
            PARQUET,
            None,
            upload,
        )
        .await?,
    )
    .await?;
    assert_problem(status, &body, 422, "invalid_body");
    assert_eq!(
        error_fields(&body),
        ["entities.event_timestamp"],
        "body: {body}"
    );
    Ok(())
}

#[tokio::test]
async fn bodies_above_the_size_limit_are_413() -> TestResult {
    let server = TestServer::start_with(|c| c.api.max_body_mb = 1)?;
    populate(&server).await?;
    let n = 80_000;
    let body = request(
        json!(["user_profile:age"]),
        &[
            ("user_id", json!(vec![1; n])),
            ("event_timestamp", json!(vec![T0; n])),
        ],
        json!({}),
    );
    assert!(body.len() > 1024 * 1024);
    let (status, problem) = historical_text(&server, &body).await?;
    assert_problem(status, &problem, 413, "payload_too_large");
    let (status, problem) = read(
        send(
            &server,
            &format!("{HISTORICAL}?features=user_profile:age"),
            ARROW_STREAM,
            None,
            vec![0_u8; 1024 * 1024 + 1],
        )
        .await?,
    )
    .await?;
    assert_problem(status, &problem, 413, "payload_too_large");
    Ok(())
}

#[tokio::test]
async fn an_arrow_upload_of_several_batches_is_read_whole() -> TestResult {
    let server = fixture().await?;
    let first = formats_entities(timestamps(&[
        Some(T0),
        Some(T0),
        Some(T0_MINUS_1H),
        Some(T0_MINUS_1US),
    ])?)?;
    let second = first.slice(0, 2);
    let mut writer = StreamWriter::try_new(Vec::new(), &first.schema())?;
    writer.write(&first)?;
    writer.write(&second)?;
    writer.finish()?;
    let (status, answer) = read(
        send(
            &server,
            &format!("{HISTORICAL}{FORMATS_QUERY}"),
            ARROW_STREAM,
            None,
            writer.into_inner()?,
        )
        .await?,
    )
    .await?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        column(&answer, "age"),
        [
            json!(32),
            json!(25),
            Value::Null,
            json!(31),
            json!(32),
            json!(25)
        ]
    );
    Ok(())
}

/// More rows than one thread joins and one Arrow message holds (65,536): the split paths of
/// the join (per-thread timelines, chunked probes) and of the streamed answer.
#[tokio::test]
async fn a_large_join_matches_the_reference_and_streams_in_several_messages() -> TestResult {
    let base = micros(T0)?;
    let mut rng = Rng(4242);
    let hour = 3_600_000_000_i64;
    let mut rows = Vec::new();
    for key in 0..20_000_i64 {
        for _ in 0..rng.below(20) {
            rows.push((key, base - rng.below(48 * 3600) as i64 * 1_000_000));
        }
    }
    for i in (1..rows.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        rows.swap(i, j);
    }
    let versions: Vec<VersionRow> = rows
        .into_iter()
        .enumerate()
        .map(|(id, (key, event))| VersionRow {
            key,
            event,
            created: event + id as i64,
            id: id as i64,
            tag: (id % 7 != 0).then(|| format!("r{id}")),
        })
        .collect();
    assert!(versions.len() > 150_000, "{} rows", versions.len());
    let data = tempfile::tempdir()?;
    std::fs::create_dir_all(data.path().join("features/prop"))?;
    write_parquet(
        &data.path().join("features/prop/big.parquet"),
        &view_batch(&versions)?,
    )?;
    let server = TestServer::start_on(data, |_| {})?;
    server
        .apply(&json!({
            "entities": [{"name": "item_id", "value_type": "int64"}],
            "feature_views": [{"name": "big", "group": "prop", "entities": ["item_id"],
                               "timestamp_field": "event_timestamp",
                               "created_timestamp_field": "created_at", "ttl_seconds": 3600}],
        }))
        .await?;

    let n = 140_000;
    let keys: Vec<i64> = (0..n).map(|_| rng.below(21_000) as i64).collect();
    let times: Vec<i64> = (0..n)
        .map(|_| base - rng.below(24 * 3600) as i64 * 1_000_000)
        .collect();
    let entities = batch(vec![
        ("item_id", Arc::new(Int64Array::from(keys.clone()))),
        (
            "event_timestamp",
            Arc::new(TimestampMicrosecondArray::from(times.clone()).with_timezone("UTC")),
        ),
    ])?;
    let path = format!("{HISTORICAL}?features=big:value,big:tag");
    let response = send(
        &server,
        &path,
        PARQUET,
        Some(ARROW_STREAM),
        parquet_bytes(&entities)?,
    )
    .await?;
    assert_eq!(response.status().as_u16(), 200);
    let bytes = response.bytes().await?.to_vec();
    let messages =
        StreamReader::try_new(Cursor::new(bytes.clone()), None)?.collect::<Result<Vec<_>, _>>()?;
    assert!(messages.len() >= 2, "{} messages", messages.len());
    let arrow = decode_arrow(bytes)?;
    assert_eq!(arrow.num_rows(), n);

    let mut by_key: std::collections::HashMap<i64, Vec<&VersionRow>> =
        std::collections::HashMap::new();
    for row in &versions {
        by_key.entry(row.key).or_default().push(row);
    }
    let values = arrow
        .column_by_name("value")
        .ok_or("no value column")?
        .as_primitive::<Int64Type>();
    let tags = arrow
        .column_by_name("tag")
        .ok_or("no tag column")?
        .as_string::<i32>();
    let echoed = arrow
        .column_by_name("item_id")
        .ok_or("no item_id column")?
        .as_primitive::<Int64Type>();
    let mut mismatches = Vec::new();
    for i in 0..n {
        let (key, t) = (keys[i], times[i]);
        let winner = by_key.get(&key).and_then(|rows| {
            rows.iter()
                .filter(|r| r.event <= t && r.event >= t - hour)
                .max_by_key(|r| (r.event, r.created))
        });
        let got = values.is_valid(i).then(|| values.value(i));
        let got_tag = tags.is_valid(i).then(|| tags.value(i));
        if echoed.value(i) != key
            || got != winner.map(|w| w.id)
            || got_tag != winner.and_then(|w| w.tag.as_deref())
        {
            mismatches.push((i, key, t, got, winner.map(|w| w.id)));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {n} rows differ, first: {:?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(5)]
    );

    let parquet = decode_parquet({
        let response = send(
            &server,
            &path,
            PARQUET,
            Some(PARQUET),
            parquet_bytes(&entities)?,
        )
        .await?;
        assert_eq!(response.status().as_u16(), 200);
        response.bytes().await?.to_vec()
    })?;
    assert_eq!(parquet, arrow);
    Ok(())
}

/// Tables written by other tools keep their timestamp unit and zone: nanoseconds in a
/// `+02:00` column and milliseconds in a `-05:00` one hold the same instants as the API's
/// microseconds in UTC, and join and window as such.
#[tokio::test]
async fn feature_tables_with_other_timestamp_units_and_zones_compare_as_instants() -> TestResult {
    let data = tempfile::tempdir()?;
    std::fs::create_dir_all(data.path().join("features/ext"))?;
    let instants = [T0_MINUS_1H, T0, T0_MINUS_2H];
    let nanos = instants
        .iter()
        .map(|t| Ok(micros(t)? * 1_000))
        .collect::<TestResult<Vec<i64>>>()?;
    let millis = instants
        .iter()
        .map(|t| Ok(micros(t)? / 1_000))
        .collect::<TestResult<Vec<i64>>>()?;
    write_parquet(
        &data.path().join("features/ext/nano_scores.parquet"),
        &batch(vec![
            ("user_id", Arc::new(Int64Array::from(vec![1, 1, 2]))),
            ("score", Arc::new(Int64Array::from(vec![10, 11, 20]))),
            (
                "event_timestamp",
                Arc::new(TimestampNanosecondArray::from(nanos).with_timezone("+02:00")),
            ),
        ])?,
    )?;
    write_parquet(
        &data.path().join("features/ext/milli_scores.parquet"),
        &batch(vec![
            ("user_id", Arc::new(Int64Array::from(vec![1, 1, 2]))),
            ("points", Arc::new(Int64Array::from(vec![100, 110, 200]))),
            (
                "event_timestamp",
                Arc::new(
                    arrow::array::TimestampMillisecondArray::from(millis).with_timezone("-05:00"),
                ),
            ),
        ])?,
    )?;
    let server = TestServer::start_on(data, |_| {})?;
    server
        .apply(&json!({
            "entities": [{"name": "user_id", "value_type": "int64"}],
            "feature_views": [
                {"name": "nano_scores", "group": "ext", "entities": ["user_id"],
                 "timestamp_field": "event_timestamp", "ttl_seconds": 3600},
                {"name": "milli_scores", "group": "ext", "entities": ["user_id"],
                 "timestamp_field": "event_timestamp", "ttl_seconds": 3600},
            ],
        }))
        .await?;
    let answer = historical_ok(
        &server,
        &json!({"features": ["nano_scores:score", "milli_scores:points"],
                "entities": {"user_id": [1, 1, 1, 2, 2],
                             "event_timestamp": [T0_MINUS_1US, T0, T0_PLUS_1US, T0_MINUS_1H, T0_MINUS_1H_MINUS_1US]}}),
    )
    .await?;
    assert_eq!(
        column(&answer, "score"),
        [json!(10), json!(11), json!(11), json!(20), json!(20)]
    );
    assert_eq!(
        column(&answer, "points"),
        [json!(100), json!(110), json!(110), json!(200), json!(200)]
    );
    let answer = historical_ok(
        &server,
        &json!({"features": ["nano_scores:score", "milli_scores:points"],
                "start": T0_MINUS_1H, "end": T0}),
    )
    .await?;
    assert_eq!(
        answer["rows"],
        json!([
            {"user_id": 1, "event_timestamp": T0_MINUS_1H, "score": 10, "points": 100},
            {"user_id": 1, "event_timestamp": T0, "score": 11, "points": 110},
        ])
    );
    Ok(())
}

// The same tests on the s3 kind (those that look at files under the data root have none).
crate::on_s3_too!(
    a_feature_row_at_exactly_the_entity_timestamp_matches_and_a_later_one_does_not,
    the_ttl_window_includes_t_minus_ttl_and_excludes_one_microsecond_older,
    the_cutoff_changes_nothing_for_a_view_without_a_created_timestamp,
    duplicate_entity_rows_are_all_kept_in_input_order,
    unmatched_and_null_keys_get_null_features_and_keep_their_place,
    null_feature_values_are_null_in_a_matched_row,
    timestamps_with_offsets_compare_as_instants_and_come_back_in_utc,
    composite_keys_match_on_every_part_and_a_key_one_view_lacks_nulls_only_that_view,
    label_and_other_entity_columns_come_back_unchanged_in_the_order_sent,
    views_come_in_the_order_of_their_first_requested_feature,
    a_feature_service_names_the_features_and_their_order,
    full_feature_names_tell_apart_features_two_views_share,
    a_window_makes_an_entity_row_of_every_key_and_event_time_inside_it,
    a_window_over_several_views_merges_their_rows_without_duplicates,
    a_window_over_views_with_different_join_keys_is_422,
    json_arrow_and_parquet_answers_hold_the_same_rows,
    an_empty_answer_has_its_columns_in_every_format,
    parquet_and_arrow_uploads_answer_as_the_json_request_does,
    uploaded_timestamps_of_any_unit_and_zone_compare_as_instants,
    json_answers_above_the_row_cap_are_413_and_binary_ones_are_not_capped,
    unknown_views_features_and_services_are_404_naming_them,
    entity_rows_without_a_timestamp_or_a_join_key_are_422,
    bad_timestamps_and_ragged_entity_columns_are_422,
    entity_rows_and_a_window_are_exclusive_and_one_of_them_is_needed,
    features_and_a_service_are_exclusive_and_one_of_them_is_needed,
    unreadable_uploads_are_422_and_other_content_types_415,
    malformed_json_is_400,
    the_cli_joins_a_parquet_entity_file_as_the_api_does,
    the_cli_reads_csv_entity_files_with_quotes_and_empty_cells,
    integer_keys_sent_as_strings_still_match,
    sparse_integer_string_and_mixed_composite_keys_all_match,
    a_zero_ttl_means_no_limit_as_in_feast,
    null_timestamps_and_all_null_keys_match_nothing_without_failing,
    more_entity_error_cases_are_422_naming_the_column,
    bodies_above_the_size_limit_are_413,
    an_arrow_upload_of_several_batches_is_read_whole,
);
