//! What a pinned training-data request is refused for, with its problem: a pin of a view the
//! request does not read (400), a version never written or an instant before the table (404),
//! a version past retention (410), malformed pins in the body (422) or in the query string of
//! an upload (400); and the pins an upload takes in its query string.

use serde_json::json;

use super::*;
use crate::common::{assert_problem, read, restart_with};

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

// The retention test has no s3 twin: the s3 kind keeps an expired version's objects for an
// hour of grace (a replica may be reading them); `history_s3` crosses it with a moved clock.
crate::on_s3_too!(
    pinning_a_view_the_request_does_not_read_is_400_naming_it,
    malformed_pins_are_refused_before_anything_is_read,
);
