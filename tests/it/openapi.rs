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
        ("/features/{group}/{name}/versions", &["get"]),
        ("/features/{group}/{name}/restore", &["post"]),
        ("/features/{group}/{name}/diff", &["get"]),
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

/// Every word of `value` that sits inside an `example`/`examples` member (table and column
/// names of the examples), and every property, parameter name and problem code: the words
/// the document may legitimately share with a Rust function name.
fn api_vocabulary(value: &serde_json::Value, in_example: bool, out: &mut Vec<String>) {
    use serde_json::Value;
    let words = |text: &str, out: &mut Vec<String>| {
        out.extend(
            text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map(str::to_owned),
        );
    };
    match value {
        Value::Object(members) => {
            for (key, member) in members {
                if in_example {
                    words(key, out);
                }
                if key == "properties"
                    && let Some(properties) = member.as_object()
                {
                    out.extend(properties.keys().cloned());
                }
                if (key == "name" || key == "code")
                    && let Some(text) = member.as_str()
                {
                    out.push(text.to_owned());
                }
                // The values of an enumeration are words of the API (`delete_entity`, an
                // operation a registry version records), whatever a handler is called.
                if key == "enum"
                    && let Some(values) = member.as_array()
                {
                    out.extend(values.iter().filter_map(|v| v.as_str()).map(str::to_owned));
                }
                let example = in_example || key == "example" || key == "examples";
                api_vocabulary(member, example, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                api_vocabulary(item, in_example, out);
            }
        }
        Value::String(text) if in_example => words(text, out),
        _ => {}
    }
}

#[test]
fn the_document_names_no_internal_functions_or_types() -> TestResult {
    let text = openapi_json();
    let doc: serde_json::Value = serde_json::from_str(&text)?;
    for marker in ["::", "fn ", "[`", "Documentation only", "crate", "impl "] {
        assert!(!text.contains(marker), "the document contains {marker:?}");
    }
    // Schema names are the API's names, not Rust's helper types.
    for name in doc["components"]["schemas"]
        .as_object()
        .ok_or("schemas")?
        .keys()
    {
        assert!(
            !name.ends_with("Dto") && !name.ends_with("Doc"),
            "schema {name} is named after a Rust type"
        );
    }
    // No snake_case function of the crate appears, unless it is also a field, parameter,
    // problem code or example value of the API.
    let mut allowed = Vec::new();
    api_vocabulary(&doc, false, &mut allowed);
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut functions = Vec::new();
    let mut dirs = vec![src];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let code = std::fs::read_to_string(&path)?;
                for rest in code.split("fn ").skip(1) {
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if name.contains('_') && !allowed.contains(&name) {
                        functions.push(name);
                    }
                }
            }
        }
    }
    let words: std::collections::HashSet<&str> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .collect();
    let named: Vec<&String> = functions
        .iter()
        .filter(|f| words.contains(f.as_str()))
        .collect();
    assert!(named.is_empty(), "the document names functions {named:?}");
    Ok(())
}

#[test]
fn entity_ids_are_documented_as_the_bare_values_the_wire_carries() -> TestResult {
    let doc: serde_json::Value = serde_json::from_str(&openapi_json())?;
    let kinds = |name: &str| -> Vec<String> {
        doc["components"]["schemas"][name]["oneOf"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| s["type"].as_str().unwrap_or("?").to_owned())
            .collect()
    };
    // A tagged enum (`{"Int": 1}`) would make generated clients send what the server refuses.
    assert_eq!(kinds("EntityId"), ["integer", "string"]);
    assert_eq!(kinds("BatchEntityId"), ["integer", "string", "object"]);
    Ok(())
}
