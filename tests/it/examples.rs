//! Swagger UI's "Try it out" sends each operation's examples as they are in the OpenAPI
//! document. On the demo data every one of them must succeed and leave the demo intact: the
//! save, apply and delete examples add and remove scratch objects (`misc/example_table`, its
//! view and entity, `example_service`), the rest read or re-apply what the demo has.

use serde_json::{Value, json};

use crate::common::{TestResult, small_demo_server};

/// The request an operation's examples make: method, path with its query, JSON body.
struct ExampleRequest {
    method: String,
    path: String,
    body: Option<Value>,
}

/// Resolves a `$ref` into `components/schemas`.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => reference
            .strip_prefix("#/components/schemas/")
            .map_or(&Value::Null, |name| &doc["components"]["schemas"][name]),
        None => schema,
    }
}

/// The value a parameter's example puts in a URL.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Every operation of `doc` as "Try it out" would send it with the examples filled in.
fn example_requests(doc: &Value) -> TestResult<Vec<ExampleRequest>> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().ok_or("no paths")? {
        for (method, operation) in item.as_object().ok_or("path item")? {
            let mut url = path.clone();
            let mut query = Vec::new();
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().unwrap_or_default();
                let example = &parameter["example"];
                match parameter["in"].as_str() {
                    Some("path") => {
                        if example.is_null() {
                            return Err(format!(
                                "{method} {path}: path parameter {name} has no example"
                            )
                            .into());
                        }
                        url = url.replace(&format!("{{{name}}}"), &text(example));
                    }
                    Some("query") if !example.is_null() => {
                        query.push(format!("{name}={}", text(example)));
                    }
                    _ => {}
                }
            }
            if !query.is_empty() {
                url = format!("{url}?{}", query.join("&"));
            }
            let body = match operation["requestBody"]["content"].get("application/json") {
                None => None,
                Some(content) => {
                    let example = match &content["example"] {
                        Value::Null => &resolve(doc, &content["schema"])["example"],
                        example => example,
                    };
                    if example.is_null() {
                        return Err(format!("{method} {path}: the JSON body has no example").into());
                    }
                    Some(example.clone())
                }
            };
            out.push(ExampleRequest {
                method: method.to_uppercase(),
                path: url,
                body,
            });
        }
    }
    // Deletes last, so they find what the save and apply examples wrote, and in the order
    // references allow: services, then views, then entities, then tables.
    out.sort_by_key(|r| match r.method.as_str() {
        "DELETE" => [
            "/registry/feature-services/",
            "/registry/feature-views/",
            "/registry/entities/",
        ]
        .iter()
        .position(|prefix| r.path.starts_with(prefix))
        .map_or(4, |at| at + 1),
        _ => 0,
    });
    Ok(out)
}

#[tokio::test]
async fn every_request_example_succeeds_on_the_demo_and_leaves_it_serving() -> TestResult {
    let server = small_demo_server()?;
    let doc: Value = serde_json::from_str(&featurestore::api::openapi::openapi_json())?;
    let requests = example_requests(&doc)?;
    assert!(requests.len() >= 20, "{} operations", requests.len());
    let mut failures = Vec::new();
    for request in &requests {
        let method = reqwest::Method::from_bytes(request.method.as_bytes())?;
        let mut call = server.client.request(method, server.url(&request.path));
        if let Some(body) = &request.body {
            call = call.json(body);
        }
        let response = call.send().await?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let answer = response.text().await?;
            failures.push(format!(
                "{} {} answered {status}: {answer}",
                request.method, request.path
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "failed examples:\n{}",
        failures.join("\n")
    );

    // The demo is intact: its three tables, and its feature service still served.
    let (_, listing) = server.get("/features").await?;
    assert_eq!(listing["table_count"], 3, "listing: {listing}");
    assert_eq!(server.get("/features/misc/example_table").await?.0, 404);
    assert_eq!(
        server.get("/registry/feature-views/example_table").await?.0,
        404
    );
    assert_eq!(
        server
            .get("/registry/feature-services/example_service")
            .await?
            .0,
        404
    );
    let (_, entities) = server.get("/registry/entities").await?;
    assert!(
        !entities.to_string().contains("example_id"),
        "entities: {entities}"
    );
    let (status, answer) = server
        .post(
            "/get-online-features",
            &json!({"feature_service": "movie_recommendation_service",
                    "entities": {"user_id": [1], "movie_id": [1]}}),
        )
        .await?;
    assert_eq!(status, 200, "answer: {answer}");
    Ok(())
}
