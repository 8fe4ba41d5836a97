//! Timestamps: a naive instant (no offset) means UTC in JSON, CSV and Parquet or Arrow
//! uploads alike and is written back with its offset; the timestamp field of a save may not
//! be null; digits beyond the microsecond are truncated.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value, json};

use crate::common::{
    TestResult, TestServer, assert_problem, featurestore_ok, micros, parquet_bytes, read,
    write_parquet,
};

const HISTORICAL: &str = "/get-historical-features";

/// `misc/prices`, keyed by `item_id`: price 10 from 09:00 UTC, 11 from 09:10 UTC, per item.
async fn prices(server: &TestServer) -> TestResult {
    server
        .save(
            "misc",
            "prices",
            json!({"entity_key": ["item_id"], "records": [
                {"item_id": 1, "price": 10, "event_timestamp": "2025-06-01T09:00:00Z"},
                {"item_id": 1, "price": 11, "event_timestamp": "2025-06-01T09:10:00Z"},
                {"item_id": 2, "price": 20, "event_timestamp": "2025-06-01T09:00:00Z"},
            ]}),
        )
        .await?;
    Ok(())
}

/// A historical request for item 1 at 09:05 and item 2 at 09:15, with the times as given.
fn entities(times: [&str; 2]) -> Value {
    json!({"features": ["prices:price"],
           "entities": {"item_id": [1, 2], "event_timestamp": times}})
}

/// The entity rows of [`entities`] as Arrow, with a zone-less microsecond timestamp column.
fn naive_upload() -> TestResult<RecordBatch> {
    let times = vec![
        micros("2025-06-01T09:05:00Z")?,
        micros("2025-06-01T09:15:00Z")?,
    ];
    Ok(RecordBatch::try_from_iter([
        (
            "item_id",
            Arc::new(Int64Array::from(vec![1, 2])) as ArrayRef,
        ),
        (
            "event_timestamp",
            Arc::new(TimestampMicrosecondArray::from(times)),
        ),
    ])?)
}

#[tokio::test]
async fn naive_timestamps_mean_utc_in_json_csv_and_parquet_uploads_alike() -> TestResult {
    let server = TestServer::start()?;
    prices(&server).await?;
    let (status, expected) = server
        .post(
            HISTORICAL,
            &entities(["2025-06-01T09:05:00Z", "2025-06-01T11:15:00+02:00"]),
        )
        .await?;
    assert_eq!(status, 200, "{expected}");
    assert_eq!(
        expected["rows"],
        json!([
            {"item_id": 1, "event_timestamp": "2025-06-01T09:05:00Z", "price": 10},
            {"item_id": 2, "event_timestamp": "2025-06-01T09:15:00Z", "price": 20},
        ])
    );

    // JSON: with a `T` or a space, as pandas writes them.
    let (status, answer) = server
        .post(
            HISTORICAL,
            &entities(["2025-06-01T09:05:00", "2025-06-01 09:15:00.000"]),
        )
        .await?;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["rows"], expected["rows"]);

    // Parquet and Arrow uploads with a zone-less column: the same rows, written back with
    // their offset.
    let upload = naive_upload()?;
    let mut stream = arrow::ipc::writer::StreamWriter::try_new(Vec::new(), &upload.schema())?;
    stream.write(&upload)?;
    stream.finish()?;
    for (content_type, bytes) in [
        ("application/vnd.apache.parquet", parquet_bytes(&upload)?),
        ("application/vnd.apache.arrow.stream", stream.into_inner()?),
    ] {
        let response = server
            .client
            .post(server.url(&format!("{HISTORICAL}?features=prices:price")))
            .header("content-type", content_type)
            .body(bytes)
            .send()
            .await?;
        let (status, answer) = read(response).await?;
        assert_eq!(status, 200, "{content_type}: {answer}");
        assert_eq!(answer["rows"], expected["rows"], "{content_type}");
    }

    // CSV through the CLI, into a Parquet answer whose entity times carry the UTC zone.
    let data = server.stop();
    let work = tempfile::tempdir()?;
    let csv = work.path().join("entities.csv");
    std::fs::write(
        &csv,
        "item_id,event_timestamp\n1,2025-06-01 09:05:00\n2,2025-06-01T09:15:00\n",
    )?;
    let out = work.path().join("out.parquet");
    let path = |p: &std::path::Path| p.to_str().map(str::to_owned).ok_or("a UTF-8 path");
    featurestore_ok(&[
        "historical",
        "--data-dir",
        &path(data.path())?,
        "--entities",
        &path(&csv)?,
        "--features",
        "prices:price",
        "--out",
        &path(&out)?,
    ])?;
    let reader =
        ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(std::fs::read(&out)?))?
            .build()?;
    let batches = reader.collect::<Result<Vec<_>, _>>()?;
    let written = batches.first().ok_or("an empty answer")?;
    let times = written
        .column_by_name("event_timestamp")
        .ok_or("no event_timestamp")?;
    assert_eq!(
        times.data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    let times = times.as_primitive::<TimestampMicrosecondType>();
    assert_eq!(
        times.values().to_vec(),
        [
            micros("2025-06-01T09:05:00Z")?,
            micros("2025-06-01T09:15:00Z")?
        ]
    );
    let prices = written.column_by_name("price").ok_or("no price")?;
    let prices = arrow::compute::cast(prices, &DataType::Int64)?;
    assert_eq!(
        prices
            .as_primitive::<arrow::datatypes::Int64Type>()
            .values()
            .to_vec(),
        [10, 20]
    );
    Ok(())
}

#[tokio::test]
async fn naive_timestamps_in_a_save_are_utc_and_read_back_with_their_offset() -> TestResult {
    let server = TestServer::start()?;
    server
        .save(
            "misc",
            "events",
            json!({"records": [
                {"entity_id": 1, "event_timestamp": "2025-06-01T10:00:00"},
                {"entity_id": 2, "event_timestamp": "2025-06-01 10:00:00.25"},
                // Nanoseconds: truncated to the microsecond.
                {"entity_id": 3, "event_timestamp": "2025-06-01T10:00:00.123456789Z"},
            ]}),
        )
        .await?;
    let (status, page) = server.get("/features/misc/events").await?;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        page["data"],
        json!([
            {"entity_id": 1, "event_timestamp": "2025-06-01T10:00:00Z"},
            {"entity_id": 2, "event_timestamp": "2025-06-01T10:00:00.250Z"},
            {"entity_id": 3, "event_timestamp": "2025-06-01T10:00:00.123456Z"},
        ])
    );

    // A table another tool wrote with a zone-less column reads back in UTC too.
    let external = RecordBatch::try_from_iter([
        ("entity_id", Arc::new(Int64Array::from(vec![1])) as ArrayRef),
        (
            "event_timestamp",
            Arc::new(TimestampMicrosecondArray::from(vec![micros(
                "2025-06-01T10:00:00Z",
            )?])),
        ),
    ])?;
    write_parquet(
        &server.root().join("features/misc/naive.parquet"),
        &external,
    )?;
    let (status, page) = server.get("/features/misc/naive").await?;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        page["data"],
        json!([{"entity_id": 1, "event_timestamp": "2025-06-01T10:00:00Z"}])
    );
    Ok(())
}

#[tokio::test]
async fn a_save_with_a_null_event_timestamp_is_422_and_keeps_the_table() -> TestResult {
    let server = TestServer::start()?;
    prices(&server).await?;
    for body in [
        json!({"records": [
            {"item_id": 1, "price": 12, "event_timestamp": "2025-06-01T09:20:00Z"},
            {"item_id": 2, "price": 22, "event_timestamp": null},
        ]}),
        // Declared under another name, and missing from a record (null there).
        json!({"timestamp_field": "at", "records": [
            {"item_id": 1, "price": 12, "at": "2025-06-01T09:20:00Z"},
            {"item_id": 2, "price": 22},
        ]}),
    ] {
        let (status, problem) = server.post("/features/misc/prices", &body).await?;
        assert_problem(status, &problem, 422, "invalid_records");
        let field = problem["errors"][0]["field"].as_str().unwrap_or_default();
        assert!(
            field == "records[1].event_timestamp" || field == "records[1].at",
            "{problem}"
        );
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains("may not be null")),
            "{problem}"
        );
    }
    let (_, page) = server.get("/features/misc/prices").await?;
    assert_eq!(page["metadata"]["total_rows"], 3, "{page}");
    Ok(())
}
