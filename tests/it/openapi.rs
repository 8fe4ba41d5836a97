//! The committed OpenAPI document is the one the code generates, and the server serves it.

use featurestore::api::openapi::openapi_json;

use crate::common::{TestResult, TestServer};

const COMMITTED: &str = include_str!("../../openapi/openapi.json");

#[test]
fn committed_openapi_json_matches_the_code() {
    // Regenerate with: cargo run -- openapi > openapi/openapi.json
    assert!(
        COMMITTED == openapi_json(),
        "openapi/openapi.json is stale: run `cargo run -- openapi > openapi/openapi.json`"
    );
}

#[tokio::test]
async fn server_serves_the_same_document_and_swagger_ui_offline() -> TestResult {
    let server = TestServer::start()?;
    let (status, served) = server.get("/openapi.json").await?;
    assert_eq!(status, 200);
    let committed: serde_json::Value = serde_json::from_str(COMMITTED)?;
    assert_eq!(served, committed);
    assert_eq!(served["openapi"], "3.1.0");

    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let redirect = no_redirect.get(server.url("/docs")).send().await?;
    assert_eq!(redirect.status().as_u16(), 307);
    assert_eq!(
        redirect
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok()),
        Some("/docs/")
    );

    let page = server.client.get(server.url("/docs/")).send().await?;
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await?.contains("swagger"));
    // The UI's assets are compiled in (vendored), so Swagger UI works with no network.
    for asset in [
        "/docs/swagger-ui.css",
        "/docs/swagger-ui-bundle.js",
        "/docs/swagger-initializer.js",
    ] {
        let response = server.client.get(server.url(asset)).send().await?;
        assert_eq!(response.status().as_u16(), 200, "{asset}");
        let body = response.text().await?;
        assert!(!body.is_empty(), "{asset} is empty");
        if asset.ends_with("initializer.js") {
            assert!(
                body.contains("/openapi.json"),
                "the UI must load our document"
            );
            // No call-out to validator.swagger.io with our document.
            assert!(
                body.contains("\"validatorUrl\": \"none\""),
                "the UI must not use the public validator: {body}"
            );
        }
    }
    Ok(())
}

#[test]
fn every_route_and_every_error_response_is_documented() -> TestResult {
    let doc: serde_json::Value = serde_json::from_str(&openapi_json())?;
    let paths = doc["paths"].as_object().ok_or("paths")?;
    for (path, methods) in [
        ("/health", &["get"][..]),
        ("/features", &["get"]),
        ("/features/batch", &["post"]),
        ("/features/{group}/{name}", &["get", "post", "delete"]),
        ("/features/{group}/{name}/info", &["get"]),
    ] {
        for method in methods {
            let op = &paths[path][method];
            assert!(op.is_object(), "{method} {path} is not documented");
            let responses = op["responses"].as_object().ok_or("responses")?;
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    let problem = &response["content"]["application/problem+json"];
                    assert!(
                        problem["schema"].is_object(),
                        "{method} {path} {status} has no problem schema"
                    );
                    assert!(
                        problem["examples"]
                            .as_object()
                            .is_some_and(|e| !e.is_empty()),
                        "{method} {path} {status} has no example"
                    );
                }
            }
        }
    }
    Ok(())
}
