//! `GET .../drift`: by default the current version against the one before it; a shifted
//! column over the threshold, an unchanged one not; added and removed columns.

use serde_json::{Value, json};

use crate::common::TestResult;
use crate::common::TestServer;
use crate::versions::get_ok;

const D: &str = "/features/user/moves";

/// 100 rows: `score` from `first` on, `city` cycling through a, b, c, d, and `extra` named
/// `extra_name` (the column that comes and goes).
fn moves(first: i64, extra_name: &str) -> Value {
    let records: Vec<Value> = (0..100)
        .map(|i: i64| {
            let city = ["a", "b", "c", "d"][(i % 4) as usize];
            json!({
                "user_id": i + 1,
                "score": first + i,
                "city": city,
                extra_name: i % 7,
            })
        })
        .collect();
    json!({"entity_key": ["user_id"], "records": records})
}

fn entry<'a>(report: &'a Value, name: &str) -> TestResult<&'a Value> {
    report["columns"]
        .as_array()
        .ok_or("columns")?
        .iter()
        .find(|c| c["name"] == name)
        .ok_or_else(|| format!("no column {name:?} in {report}").into())
}

#[tokio::test]
async fn drift_compares_the_current_version_with_the_previous_and_flags_the_shifted_column()
-> TestResult {
    let server = TestServer::start()?;
    server.save("user", "moves", moves(1, "old")).await?;
    server.save("user", "moves", moves(51, "new")).await?;
    let report = get_ok(&server, &format!("{D}/drift")).await?;
    assert_eq!(
        (
            &report["group"],
            &report["table"],
            &report["from_version"],
            &report["to_version"]
        ),
        (&json!("user"), &json!("moves"), &json!(1), &json!(2)),
        "{report}"
    );
    assert_eq!(report["threshold"], 0.2);
    assert_eq!(report["over_threshold"], json!(["score"]), "{report}");

    let score = entry(&report, "score")?;
    assert_eq!(score["status"], "compared");
    assert!(score["psi"].as_f64() > Some(0.2), "{score}");
    assert_eq!(score["over_threshold"], true);
    assert_eq!(score["mean_from"], 50.5);
    assert_eq!(score["mean_to"], 100.5);
    assert_eq!(score["mean_change"], 50.0);
    assert_eq!(score["null_rate_change"], 0.0);

    let city = entry(&report, "city")?;
    assert_eq!(city["status"], "compared");
    assert!(city["psi"].as_f64() < Some(0.01), "the same shares: {city}");
    assert_eq!(city["over_threshold"], false);

    assert_eq!(entry(&report, "new")?["status"], "added", "{report}");
    assert_eq!(entry(&report, "old")?["status"], "removed", "{report}");
    assert_eq!(entry(&report, "new")?["over_threshold"], false);

    // Both named: a version against itself has not moved.
    let same = get_ok(&server, &format!("{D}/drift?from=2&to=2")).await?;
    assert_eq!(same["over_threshold"], json!([]), "{same}");
    assert!(
        entry(&same, "score")?["psi"].as_f64() < Some(1e-9),
        "{same}"
    );
    // `from` alone: against the current version.
    let named = get_ok(&server, &format!("{D}/drift?from=1")).await?;
    assert_eq!(
        (&named["from_version"], &named["to_version"]),
        (&json!(1), &json!(2))
    );
    Ok(())
}

#[tokio::test]
async fn the_threshold_is_the_configured_one() -> TestResult {
    let server = TestServer::start_with(|c| c.stats.psi_threshold = 1000.0)?;
    server.save("user", "moves", moves(1, "old")).await?;
    server.save("user", "moves", moves(51, "old")).await?;
    let report = get_ok(&server, &format!("{D}/drift")).await?;
    assert_eq!(report["threshold"], 1000.0);
    assert_eq!(report["over_threshold"], json!([]), "{report}");
    Ok(())
}

crate::on_s3_too!(
    drift_compares_the_current_version_with_the_previous_and_flags_the_shifted_column,
);
