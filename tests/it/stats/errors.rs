//! Every refusal of the stats and drift routes: status and stable `code`.

use serde_json::json;

use super::{K, known};
use crate::common::{TestResult, TestServer, assert_problem};

#[tokio::test]
async fn stats_and_drift_refusals_have_stable_codes() -> TestResult {
    let server = TestServer::start()?;
    server.save("user", "known", known()).await?;
    for (path, status, code) in [
        ("/features/user/nope/stats", 404, "table_not_found"),
        ("/features/misc/known/stats", 404, "table_not_found"),
        ("/features/user/nope/drift", 404, "table_not_found"),
        (
            "/features/user/known/stats?version=9",
            404,
            "table_version_not_found",
        ),
        (
            "/features/user/known/stats?as_of=2000-01-01T00:00:00Z",
            404,
            "table_version_not_found",
        ),
        (
            "/features/user/known/drift?from=9",
            404,
            "table_version_not_found",
        ),
        (
            "/features/user/known/drift?from=1&to=9",
            404,
            "table_version_not_found",
        ),
        (
            "/features/user/known/stats?version=1&as_of=2026-01-01T00:00:00Z",
            400,
            "conflicting_parameters",
        ),
        (
            "/features/user/known/stats?version=abc",
            400,
            "invalid_parameter",
        ),
        (
            "/features/user/known/stats?as_of=yesterday",
            400,
            "invalid_parameter",
        ),
        ("/features/user/known/drift?to=0", 400, "invalid_parameter"),
        (
            "/features/user/known/stats?columns=a",
            400,
            "unknown_query_parameter",
        ),
        (
            "/features/user/known/drift?version=1",
            400,
            "unknown_query_parameter",
        ),
        ("/features/user/bad.name/stats", 400, "invalid_name"),
        // One version: nothing to compare it with.
        ("/features/user/known/drift", 409, "no_previous_version"),
    ] {
        let (got, body) = server.get(path).await?;
        assert_problem(got, &body, status, code);
    }
    let (status, body) = server.post(&format!("{K}/stats"), &json!({})).await?;
    assert_problem(status, &body, 405, "method_not_allowed");
    Ok(())
}

#[tokio::test]
async fn a_version_past_retention_is_410_on_both_routes() -> TestResult {
    let server = crate::versions::no_history()?;
    server.save("user", "known", known()).await?;
    server.save("user", "known", known()).await?;
    server.store.sweep_history().await?;
    let (status, body) = server.get(&format!("{K}/stats?version=1")).await?;
    assert_problem(status, &body, 410, "table_version_expired");
    let (status, body) = server.get(&format!("{K}/drift?from=1")).await?;
    assert_problem(status, &body, 410, "table_version_expired");
    // With version 1 gone, version 2 has no retained predecessor.
    let (status, body) = server.get(&format!("{K}/drift")).await?;
    assert_problem(status, &body, 409, "no_previous_version");
    Ok(())
}

#[tokio::test]
async fn with_statistics_off_both_routes_answer_404_stats_disabled_and_writes_still_work()
-> TestResult {
    let server = TestServer::start_with(|c| c.stats.enabled = false)?;
    server.save("user", "known", known()).await?;
    server.save("user", "known", known()).await?;
    for route in ["stats", "drift"] {
        let (status, body) = server.get(&format!("{K}/{route}")).await?;
        assert_problem(status, &body, 404, "stats_disabled");
    }
    let (status, _) = server.get(K).await?;
    assert_eq!(status, 200);
    Ok(())
}

crate::on_s3_too!(
    stats_and_drift_refusals_have_stable_codes,
    with_statistics_off_both_routes_answer_404_stats_disabled_and_writes_still_work,
);
