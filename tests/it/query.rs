//! Query parameters a route does not take are refused with 400 `unknown_query_parameter`
//! naming them, instead of being ignored (`?user_id=5` used to return the whole table).

use serde_json::{Value, json};

use crate::common::{TestResult, TestServer, assert_problem};

/// The query parameters the OpenAPI document lists for `method path`.
fn documented(path: &str, method: &str) -> TestResult<Vec<String>> {
    let doc: Value = serde_json::from_str(&featurestore::api::openapi::openapi_json())?;
    Ok(doc["paths"][path][method]["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == "query")
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect())
}

#[tokio::test]
async fn a_page_with_an_unknown_query_parameter_is_400_naming_it() -> TestResult {
    let server = TestServer::start()?;
    server
        .save(
            "user",
            "profiles",
            json!({"records": [{"user_id": 1, "age": 30}, {"user_id": 5, "age": 40}]}),
        )
        .await?;
    let (status, body) = server.get("/features/user/profiles?user_id=5").await?;
    assert_problem(status, &body, 400, "unknown_query_parameter");
    assert_eq!(
        body["detail"],
        "unknown query parameter(s) \"user_id\"; this route takes \"columns\", \"limit\", \"offset\", \"version\", \"as_of\""
    );
    assert_eq!(
        body["errors"],
        json!([{"field": "user_id", "message": "unknown query parameter"}])
    );
    // Every unknown name, once each, in request order; known ones do not hide them.
    let (status, body) = server
        .get("/features/user/profiles?limit=1&Limit=2&filter=x&Limit=3")
        .await?;
    assert_problem(status, &body, 400, "unknown_query_parameter");
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, ["Limit", "filter"]);
    // The documented parameters are the accepted ones.
    assert_eq!(
        documented("/features/{group}/{name}", "get")?,
        ["columns", "limit", "offset", "version", "as_of"]
    );
    let (status, body) = server
        .get("/features/user/profiles?columns=age&limit=1&offset=1")
        .await?;
    assert_eq!(status, 200, "body: {body}");
    assert_eq!(body["data"], json!([{"age": 40}]));
    Ok(())
}

#[tokio::test]
async fn historical_with_an_unknown_query_parameter_is_400_naming_it() -> TestResult {
    let server = TestServer::start()?;
    let (status, body) = server
        .post(
            "/get-historical-features?feature=user_profile:age",
            &json!({"features": ["user_profile:age"], "entities": {"user_id": [1],
                    "event_timestamp": ["2026-01-01T00:00:00Z"]}}),
        )
        .await?;
    assert_problem(status, &body, 400, "unknown_query_parameter");
    assert_eq!(
        body["errors"],
        json!([{"field": "feature", "message": "unknown query parameter"}])
    );
    let detail = body["detail"].as_str().unwrap_or_default();
    for name in documented("/get-historical-features", "post")? {
        assert!(
            detail.contains(&format!("{name:?}")),
            "{detail} lacks {name}"
        );
    }
    Ok(())
}
