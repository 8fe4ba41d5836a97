//! Statistics and drift over HTTP, as a user sees them: `GET .../stats` after a save (a
//! fixture with known answers), after a push (merged, with `approximate` naming the
//! estimates), pinned with `?version=`/`?as_of=`, after a restore; `GET .../drift`; every
//! error code; statistics of files other tools wrote; `/metrics`; the files kept per version.
//!
//! Each test of this file runs on the local kind; its twin in `on_s3` runs it on the s3 kind.

mod drift;
mod errors;
mod files;

use serde_json::{Value, json};

use crate::common::{TestResult, TestServer};
use crate::versions::{get_ok, post_ok};

/// The fixture table.
pub(crate) const K: &str = "/features/user/known";

/// Ten rows with known statistics: `score` 1..=9 and a null; `city` a×5, b×3, c×2;
/// `event_timestamp` from 2026-11-01 to 2026-11-10 (midnight UTC).
pub(crate) fn known() -> Value {
    let cities = ["a", "a", "a", "a", "a", "b", "b", "b", "c", "c"];
    let records: Vec<Value> = (1..=10)
        .map(|i: i64| {
            json!({
                "user_id": i,
                "score": if i == 10 { Value::Null } else { json!(i) },
                "city": cities[(i - 1) as usize],
                "event_timestamp": format!("2026-11-{i:02}T00:00:00Z"),
            })
        })
        .collect();
    json!({"entity_key": ["user_id"], "records": records})
}

/// The entry of column `name` in a stats answer.
pub(crate) fn column<'a>(stats: &'a Value, name: &str) -> TestResult<&'a Value> {
    stats["columns"]
        .as_array()
        .ok_or("columns")?
        .iter()
        .find(|c| c["name"] == name)
        .ok_or_else(|| format!("no column {name:?} in {stats}").into())
}

/// The columns of a stats answer without the ages, which are measured at each answer.
pub(crate) fn without_ages(stats: &Value) -> Value {
    let mut columns = stats["columns"].clone();
    for column in columns.as_array_mut().into_iter().flatten() {
        if let Some(times) = column["timestamps"].as_object_mut() {
            times.remove("newest_age_seconds");
        }
    }
    columns
}

fn close(actual: &Value, expected: f64) -> bool {
    actual
        .as_f64()
        .is_some_and(|a| (a - expected).abs() < 1e-9 * expected.abs().max(1.0))
}

fn instant_ms(value: &Value) -> TestResult<i64> {
    let text = value.as_str().ok_or("an instant")?;
    Ok(chrono::DateTime::parse_from_rfc3339(text)?.timestamp_millis())
}

/// Registers `known`'s view with a push source, so rows can be pushed to it.
async fn push_source(server: &TestServer) -> TestResult {
    server
        .apply(&json!({
            "entities": [{"name": "user_id", "value_type": "int64"}],
            "feature_views": [{"name": "known", "group": "user", "entities": ["user_id"],
                "timestamp_field": "event_timestamp", "push_source": "known_push"}],
        }))
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_save_answers_its_statistics_with_known_figures() -> TestResult {
    let server = TestServer::start()?;
    server.save("user", "known", known()).await?;
    let stats = get_ok(&server, &format!("{K}/stats")).await?;
    assert_eq!(
        (
            &stats["group"],
            &stats["table"],
            &stats["version"],
            &stats["rows"]
        ),
        (&json!("user"), &json!("known"), &json!(1), &json!(10)),
        "{stats}"
    );
    // One entry per column, in the table's order (a JSON save orders them by name).
    let names: Vec<&str> = stats["columns"]
        .as_array()
        .ok_or("columns")?
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["city", "event_timestamp", "score", "user_id"]);

    let score = column(&stats, "score")?;
    assert_eq!(score["kind"], "numeric", "{score}");
    assert_eq!(
        (&score["rows"], &score["null_count"]),
        (&json!(10), &json!(1))
    );
    assert!(close(&score["null_rate"], 0.1), "{score}");
    assert_eq!(score["distinct"], 9);
    let numeric = &score["numeric"];
    assert!(
        close(&numeric["min"], 1.0) && close(&numeric["max"], 9.0),
        "{score}"
    );
    assert!(close(&numeric["mean"], 5.0), "{score}");
    // pandas: Series(range(1, 10)).std() = sqrt(7.5).
    assert!(close(&numeric["std"], 7.5f64.sqrt()), "{score}");
    assert!(close(&numeric["percentiles"]["p50"], 5.0), "{score}");
    assert!(close(&numeric["percentiles"]["p25"], 3.0), "{score}");
    assert!(close(&numeric["percentiles"]["p75"], 7.0), "{score}");
    let bins = numeric["histogram"].as_array().ok_or("histogram")?;
    assert_eq!(bins.len(), 20, "{score}");
    let counted: u64 = bins.iter().filter_map(|b| b["count"].as_u64()).sum();
    assert_eq!(counted, 9, "the bins hold every non-null value: {score}");
    assert!(close(&bins[0]["lower"], 1.0) && close(&bins[19]["upper"], 9.0));
    assert_eq!(
        score["approximate"],
        json!([]),
        "a save's figures are exact"
    );

    let city = column(&stats, "city")?;
    assert_eq!(city["kind"], "string");
    let top = &city["top_values"];
    let values: Vec<(&str, u64)> = top["values"]
        .as_array()
        .ok_or("values")?
        .iter()
        .filter_map(|v| Some((v["value"].as_str()?, v["count"].as_u64()?)))
        .collect();
    assert_eq!(values, [("a", 5), ("b", 3), ("c", 2)], "{city}");
    assert!(close(&top["values"][0]["share"], 0.5), "{city}");
    assert_eq!(top["other_count"], 0);

    let times = column(&stats, "event_timestamp")?;
    assert_eq!(times["kind"], "timestamp");
    let range = &times["timestamps"];
    assert_eq!(instant_ms(&range["min"])?, 1_793_491_200_000, "{times}");
    assert_eq!(instant_ms(&range["max"])?, 1_794_268_800_000, "{times}");
    // Measured when answered: the newest row is from the past, so at least its distance.
    let now_ms = chrono::Utc::now().timestamp_millis();
    let age = range["newest_age_seconds"]
        .as_f64()
        .ok_or("newest_age_seconds")?;
    let expected = (now_ms - 1_794_268_800_000) as f64 / 1000.0;
    assert!(
        (age - expected).abs() < 60.0,
        "age {age}, expected about {expected}"
    );

    // A repeated read (from the rendered answer) says the same, with a fresh age.
    let again = get_ok(&server, &format!("{K}/stats")).await?;
    assert_eq!(without_ages(&again), without_ages(&stats));
    Ok(())
}

#[tokio::test]
async fn a_push_merges_its_rows_into_the_previous_versions_statistics() -> TestResult {
    let server = TestServer::start()?;
    server.save("user", "known", known()).await?;
    push_source(&server).await?;
    post_ok(
        &server,
        "/push",
        json!({"push_source_name": "known_push", "to": "offline", "df": {
            "user_id": [11, 12], "score": [100, null], "city": ["d", "a"],
            "event_timestamp": ["2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z"]}}),
        200,
    )
    .await?;
    let stats = get_ok(&server, &format!("{K}/stats")).await?;
    assert_eq!(
        (&stats["version"], &stats["rows"]),
        (&json!(2), &json!(12)),
        "{stats}"
    );
    let score = column(&stats, "score")?;
    assert_eq!(
        (&score["rows"], &score["null_count"]),
        (&json!(12), &json!(2))
    );
    let numeric = &score["numeric"];
    assert!(close(&numeric["max"], 100.0), "{score}");
    assert!(
        close(&numeric["mean"], 14.5),
        "exact after a merge: {score}"
    );
    let bins = numeric["histogram"].as_array().ok_or("histogram")?;
    let counted: u64 = bins.iter().filter_map(|b| b["count"].as_u64()).sum();
    assert_eq!(counted, 10, "{score}");
    let approximate: Vec<&str> = score["approximate"]
        .as_array()
        .ok_or("approximate")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        approximate.contains(&"percentiles"),
        "merged percentiles come from the sketch: {score}"
    );
    for figure in &approximate {
        assert!(
            ["distinct", "percentiles", "histogram", "top_values"].contains(figure),
            "{score}"
        );
    }
    let city = column(&stats, "city")?;
    assert_eq!(city["top_values"]["values"][0]["value"], "a");
    assert_eq!(city["top_values"]["values"][0]["count"], 6, "{city}");
    let times = &column(&stats, "event_timestamp")?["timestamps"];
    assert_eq!(instant_ms(&times["max"])?, 1_795_219_200_000, "{times}");
    Ok(())
}

#[tokio::test]
async fn a_pinned_read_answers_that_versions_statistics_and_a_restore_copies_them() -> TestResult {
    let server = TestServer::start()?;
    server.save("user", "known", known()).await?;
    let first = get_ok(&server, &format!("{K}/stats")).await?;
    server
        .save(
            "user",
            "known",
            json!({"records": [{"user_id": 1, "score": 50, "city": "z",
                "event_timestamp": "2026-12-01T00:00:00Z"}]}),
        )
        .await?;
    let second = get_ok(&server, &format!("{K}/stats")).await?;
    assert_eq!(
        (&second["version"], &second["rows"]),
        (&json!(2), &json!(1))
    );

    let pinned = get_ok(&server, &format!("{K}/stats?version=1")).await?;
    assert_eq!(pinned["version"], 1);
    assert_eq!(pinned["rows"], 10);
    assert_eq!(without_ages(&pinned), without_ages(&first), "{pinned}");
    let versions = get_ok(&server, &format!("{K}/versions")).await?;
    let became = versions["versions"][1]["became_current"]
        .as_str()
        .ok_or("became_current")?;
    let as_of = get_ok(&server, &format!("{K}/stats?as_of={became}")).await?;
    assert_eq!(as_of["version"], 1, "{as_of}");

    post_ok(&server, &format!("{K}/restore"), json!({"version": 1}), 201).await?;
    let restored = get_ok(&server, &format!("{K}/stats")).await?;
    assert_eq!(
        (&restored["version"], &restored["rows"]),
        (&json!(3), &json!(10))
    );
    assert_eq!(
        without_ages(&restored),
        without_ages(&first),
        "the restored version's statistics: {restored}"
    );
    Ok(())
}

crate::on_s3_too!(
    a_save_answers_its_statistics_with_known_figures,
    a_push_merges_its_rows_into_the_previous_versions_statistics,
    a_pinned_read_answers_that_versions_statistics_and_a_restore_copies_them,
);
