//! The registry, "Try it" and server pages load quietly and offline at both sizes, and show
//! what the API has: every entity, feature view and feature service, and the server's figures.

use serde_json::{Value, json};

use super::{demo_console, visit_at_both_sizes};
use crate::common::{TestResult, TestServer};

/// The names of the `key` list of the API's answer to `path`, in order.
async fn api_names(server: &TestServer, path: &str, key: &str) -> TestResult<Value> {
    let (status, answer) = server.get(path).await?;
    assert_eq!(status, 200, "{answer}");
    let names: Vec<Value> = answer[key]
        .as_array()
        .ok_or_else(|| format!("no {key} in {answer}"))?
        .iter()
        .map(|item| item["name"].clone())
        .collect();
    Ok(json!(names))
}

#[tokio::test]
async fn the_registry_try_and_server_pages_load_quietly_offline_at_both_sizes() -> TestResult {
    let Some((server, browser)) = demo_console().await? else {
        return Ok(());
    };

    visit_at_both_sizes(&browser, &server, "registry", "registry", "registry").await?;
    for (attribute, path, key) in [
        ("entity", "/registry/entities", "entities"),
        ("feature-view", "/registry/feature-views", "feature_views"),
        (
            "feature-service",
            "/registry/feature-services",
            "feature_services",
        ),
    ] {
        let shown = browser
            .eval(&format!(
                "return [...document.querySelectorAll('tr[data-{attribute}]')]
                     .map((tr) => tr.getAttribute('data-{attribute}'));"
            ))
            .await?;
        assert_eq!(shown, api_names(&server, path, key).await?, "{attribute}");
    }

    visit_at_both_sizes(&browser, &server, "try", "try", "try").await?;
    let services = browser
        .eval("return [...document.querySelectorAll('select#lookup-service option')].map((o) => o.value);")
        .await?;
    assert_eq!(services, json!(["", "movie_recommendation_service"]));

    visit_at_both_sizes(&browser, &server, "server", "server", "server").await?;
    let metrics = browser
        .eval(
            "return Object.fromEntries([...document.querySelectorAll('[data-metric]')]
                 .map((m) => [m.dataset.metric, m.dataset.value]));",
        )
        .await?;
    for metric in ["requests", "errors", "latency_p50_ms", "latency_p99_ms"] {
        let value = metrics[metric].as_str().unwrap_or_default();
        assert!(
            value.parse::<f64>().is_ok_and(|v| v >= 0.0),
            "{metric}: {value:?} in {metrics}"
        );
    }
    for rate in ["memory_cache_hit_rate", "disk_cache_hit_rate"] {
        assert!(metrics.get(rate).is_some(), "{rate} in {metrics}");
    }
    // The pages above asked the server for data: the figures count those requests.
    assert!(
        metrics["requests"]
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .is_some_and(|v| v > 0.0),
        "{metrics}"
    );
    browser.close().await
}
