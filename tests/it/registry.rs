//! The registry as a user sees it: `POST /registry/apply` (created, updated and unchanged
//! objects; features filled in from the table; every invalid definition listed and nothing
//! applied), the `GET /registry/...` listings and look-ups, views registered when a table is
//! saved, the registry across a restart, and `featurestore apply FILE`.

use std::path::Path;

use serde_json::{Value, json};

use crate::common::instants::*;
use crate::common::{TestResult, TestServer, assert_problem, featurestore_command};

/// Saves `user/user_profile` without declaring an entity key, so that it is not registered
/// on its own and `apply` starts from an empty registry.
async fn save_profiles(server: &TestServer) -> TestResult {
    server
        .save(
            "user",
            "user_profile",
            json!({"records": [
                {"user_id": 1, "age": 30, "avg_rating": 4.5, "favorite_genre": "Drama",
                 "active": true, "event_timestamp": T0},
            ]}),
        )
        .await?;
    Ok(())
}

/// The entity `user_id`, the view `user_profile` (one day TTL, features left to the table)
/// and the service `profile_service` (one feature and the whole view).
fn document() -> Value {
    json!({
        "entities": [{"name": "user_id", "value_type": "int64", "description": "A user"}],
        "feature_views": [{"name": "user_profile", "group": "user", "entities": ["user_id"],
                           "timestamp_field": "event_timestamp", "ttl_seconds": 86_400}],
        "feature_services": [{"name": "profile_service",
                              "features": ["user_profile:age", "user_profile"]}],
    })
}

/// `user_profile` as the registry serves it after [`document`] was applied.
fn registered_view(ttl_seconds: u64) -> Value {
    json!({
        "name": "user_profile",
        "group": "user",
        "entities": ["user_id"],
        "timestamp_field": "event_timestamp",
        "created_timestamp_field": null,
        "ttl_seconds": ttl_seconds,
        // In the table's column order (`json!` sent the record's keys sorted).
        "features": [
            {"name": "active", "dtype": "bool"},
            {"name": "age", "dtype": "int64"},
            {"name": "avg_rating", "dtype": "float64"},
            {"name": "favorite_genre", "dtype": "string"},
        ],
        "description": "",
        "owner": "",
        "tags": {},
    })
}

/// GET `path`, checked to be a 200; returns the body.
async fn get_ok(server: &TestServer, path: &str) -> TestResult<Value> {
    let (status, body) = server.get(path).await?;
    if status != 200 {
        return Err(format!("GET {path} answered {status}: {body}").into());
    }
    Ok(body)
}

/// The three listings, in one value, to compare whole registry states.
async fn registry_state(server: &TestServer) -> TestResult<Value> {
    Ok(json!({
        "entities": get_ok(server, "/registry/entities").await?,
        "feature_views": get_ok(server, "/registry/feature-views").await?,
        "feature_services": get_ok(server, "/registry/feature-services").await?,
    }))
}

/// The fields of each entry of `errors` of a problem, sorted.
fn sorted_error_fields(problem: &Value) -> Vec<String> {
    let mut fields: Vec<String> = problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .filter_map(|e| e["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    fields.sort();
    fields
}

#[tokio::test]
async fn apply_reports_created_then_unchanged_then_updated_objects() -> TestResult {
    let server = TestServer::start()?;
    save_profiles(&server).await?;

    let report = server.apply(&document()).await?;
    assert_eq!(
        report,
        json!({
            "created": ["entity user_id", "feature view user_profile",
                        "feature service profile_service"],
            "updated": [],
            "unchanged": [],
        })
    );

    let report = server.apply(&document()).await?;
    assert_eq!(
        report,
        json!({
            "created": [],
            "updated": [],
            "unchanged": ["entity user_id", "feature view user_profile",
                          "feature service profile_service"],
        })
    );

    // Upsert by name: only the view is in this document; the others are kept.
    let mut longer = document();
    longer["feature_views"][0]["ttl_seconds"] = json!(172_800);
    let report = server
        .apply(&json!({"feature_views": longer["feature_views"]}))
        .await?;
    assert_eq!(
        report,
        json!({"created": [], "updated": ["feature view user_profile"], "unchanged": []})
    );
    assert_eq!(
        get_ok(&server, "/registry/feature-views/user_profile").await?,
        registered_view(172_800)
    );
    let entities = get_ok(&server, "/registry/entities").await?;
    assert_eq!(entities["entities"].as_array().map(Vec::len), Some(1));
    let services = get_ok(&server, "/registry/feature-services").await?;
    assert_eq!(
        services["feature_services"].as_array().map(Vec::len),
        Some(1)
    );
    Ok(())
}

#[tokio::test]
async fn a_view_without_features_gets_every_non_key_non_timestamp_column_with_its_dtype()
-> TestResult {
    let server = TestServer::start()?;
    save_profiles(&server).await?;
    server.apply(&document()).await?;
    assert_eq!(
        get_ok(&server, "/registry/feature-views/user_profile").await?,
        registered_view(86_400)
    );
    Ok(())
}

#[tokio::test]
async fn declared_features_get_their_dtype_from_the_table() -> TestResult {
    let server = TestServer::start()?;
    save_profiles(&server).await?;
    let mut doc = document();
    doc["feature_views"][0]["features"] =
        json!([{"name": "favorite_genre"}, {"name": "age", "dtype": "int64"}]);
    server.apply(&doc).await?;
    let view = get_ok(&server, "/registry/feature-views/user_profile").await?;
    assert_eq!(
        view["features"],
        json!([{"name": "favorite_genre", "dtype": "string"}, {"name": "age", "dtype": "int64"}])
    );
    Ok(())
}

#[tokio::test]
async fn listings_and_lookups_by_name_show_what_was_applied() -> TestResult {
    let server = TestServer::start()?;
    assert_eq!(
        registry_state(&server).await?,
        json!({
            "entities": {"entities": []},
            "feature_views": {"feature_views": []},
            "feature_services": {"feature_services": []},
        })
    );
    save_profiles(&server).await?;
    server.apply(&document()).await?;

    assert_eq!(
        get_ok(&server, "/registry/entities").await?,
        json!({"entities": [
            {"name": "user_id", "join_key": null, "value_type": "int64", "description": "A user"},
        ]})
    );
    assert_eq!(
        get_ok(&server, "/registry/feature-views").await?,
        json!({"feature_views": [registered_view(86_400)]})
    );
    let service = json!({
        "name": "profile_service",
        "features": ["user_profile:age", "user_profile"],
        "description": "",
    });
    assert_eq!(
        get_ok(&server, "/registry/feature-services").await?,
        json!({"feature_services": [service.clone()]})
    );
    assert_eq!(
        get_ok(&server, "/registry/feature-services/profile_service").await?,
        service
    );
    Ok(())
}

#[tokio::test]
async fn an_unregistered_view_or_service_is_404_registry_object_not_found() -> TestResult {
    let server = TestServer::start()?;
    save_profiles(&server).await?;
    server.apply(&document()).await?;
    for path in [
        "/registry/feature-views/nope",
        "/registry/feature-services/nope",
    ] {
        let (status, body) = server.get(path).await?;
        assert_problem(status, &body, 404, "registry_object_not_found");
        assert!(
            body["detail"].as_str().is_some_and(|d| d.contains("nope")),
            "{path}: {body}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn invalid_definitions_are_422_listing_every_failure_and_nothing_is_applied() -> TestResult {
    let server = TestServer::start()?;
    save_profiles(&server).await?;
    server.apply(&document()).await?;
    let before = registry_state(&server).await?;

    let (status, body) = server
        .post(
            "/registry/apply",
            &json!({
                "entities": [{"name": "movie id", "value_type": "int64"}],
                "feature_views": [
                    {"name": "user_profile", "group": "user", "entities": ["user_id", "ghost"],
                     "timestamp_field": "age", "ttl_seconds": 60,
                     "features": [{"name": "age", "dtype": "string"}, {"name": "missing"}]},
                    {"name": "nowhere", "group": "user", "entities": ["user_id"],
                     "timestamp_field": "event_timestamp"},
                ],
                "feature_services": [
                    {"name": "svc", "features": ["user_profile:nope", "ghost_view"]},
                    {"name": "empty", "features": []},
                ],
            }),
        )
        .await?;
    assert_problem(status, &body, 422, "invalid_definitions");
    assert_eq!(
        sorted_error_fields(&body),
        [
            "entities[0].name",
            "feature_services[0].features[0]",
            "feature_services[0].features[1]",
            "feature_services[1].features",
            "feature_views[0].entities[1]",
            "feature_views[0].features[0]",
            "feature_views[0].features[0].dtype",
            "feature_views[0].features[1]",
            "feature_views[0].timestamp_field",
            "feature_views[1].name",
        ],
        "body: {body}"
    );
    assert_eq!(registry_state(&server).await?, before);
    Ok(())
}

#[tokio::test]
async fn a_view_of_a_table_that_does_not_exist_is_422() -> TestResult {
    let server = TestServer::start()?;
    let mut doc = document();
    doc["feature_services"] = json!([]);
    let (status, body) = server.post("/registry/apply", &doc).await?;
    assert_problem(status, &body, 422, "invalid_definitions");
    assert_eq!(sorted_error_fields(&body), ["feature_views[0].name"]);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("user/user_profile")),
        "body: {body}"
    );
    // The entity of the same document was not applied either.
    let entities = get_ok(&server, "/registry/entities").await?;
    assert_eq!(entities, json!({"entities": []}));
    Ok(())
}

#[tokio::test]
async fn an_unknown_field_in_the_document_is_422_invalid_body() -> TestResult {
    let server = TestServer::start()?;
    save_profiles(&server).await?;
    for doc in [
        json!({"entities": [], "views": []}),
        json!({"feature_views": [{"name": "user_profile", "group": "user",
                                  "entities": ["user_id"], "timestamp_field": "event_timestamp",
                                  "ttl": 60}]}),
    ] {
        let (status, body) = server.post("/registry/apply", &doc).await?;
        assert_problem(status, &body, 422, "invalid_body");
    }
    assert_eq!(
        get_ok(&server, "/registry/feature-views").await?,
        json!({"feature_views": []})
    );
    Ok(())
}

#[tokio::test]
async fn an_int64_entity_over_a_string_key_column_is_422() -> TestResult {
    let server = TestServer::start()?;
    server
        .save(
            "user",
            "user_profile",
            json!({"records": [{"user_id": "u1", "age": 30, "event_timestamp": T0}]}),
        )
        .await?;
    let mut doc = document();
    doc["feature_services"] = json!([]);
    let (status, body) = server.post("/registry/apply", &doc).await?;
    assert_problem(status, &body, 422, "invalid_definitions");
    assert_eq!(sorted_error_fields(&body), ["feature_views[0].entities[0]"]);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("string")),
        "body: {body}"
    );
    Ok(())
}

#[tokio::test]
async fn a_table_saved_with_an_entity_key_and_a_timestamp_is_registered() -> TestResult {
    let server = TestServer::start()?;
    server
        .save(
            "content",
            "movie_metadata",
            json!({"entity_key": ["movie_id"], "records": [
                {"movie_id": "m10", "genre": "Sci-Fi", "event_timestamp": T0},
            ]}),
        )
        .await?;
    assert_eq!(
        get_ok(&server, "/registry/feature-views/movie_metadata").await?,
        json!({
            "name": "movie_metadata",
            "group": "content",
            "entities": ["movie_id"],
            "timestamp_field": "event_timestamp",
            "created_timestamp_field": null,
            "ttl_seconds": null,
            "features": [{"name": "genre", "dtype": "string"}],
            "description": "registered when the table was first saved",
            "owner": "",
            "tags": {},
            "inferred": true,
        })
    );
    assert_eq!(
        get_ok(&server, "/registry/entities").await?,
        json!({"entities": [
            {"name": "movie_id", "join_key": null, "value_type": "string", "description": ""},
        ]})
    );
    // And it is served at once.
    let (status, answer) = server
        .post(
            "/get-online-features",
            &json!({"features": ["movie_metadata:genre"], "entities": {"movie_id": ["m10"]}}),
        )
        .await?;
    assert_eq!(status, 200, "body: {answer}");
    assert_eq!(answer["results"][1]["values"], json!(["Sci-Fi"]));
    assert_eq!(answer["results"][1]["statuses"], json!(["PRESENT"]));
    Ok(())
}

#[tokio::test]
async fn a_table_saved_without_a_timestamp_or_entity_key_is_not_registered() -> TestResult {
    let server = TestServer::start()?;
    server
        .save(
            "content",
            "no_time",
            json!({"entity_key": ["movie_id"], "records": [{"movie_id": 10, "genre": "Drama"}]}),
        )
        .await?;
    server
        .save(
            "content",
            "no_key",
            json!({"records": [{"movie_id": 10, "genre": "Drama", "event_timestamp": T0}]}),
        )
        .await?;
    for name in ["no_time", "no_key"] {
        let (status, body) = server
            .get(&format!("/registry/feature-views/{name}"))
            .await?;
        assert_problem(status, &body, 404, "registry_object_not_found");
    }
    assert_eq!(
        registry_state(&server).await?,
        json!({
            "entities": {"entities": []},
            "feature_views": {"feature_views": []},
            "feature_services": {"feature_services": []},
        })
    );
    Ok(())
}

#[tokio::test]
async fn the_registry_survives_a_restart() -> TestResult {
    let server = TestServer::start()?;
    save_profiles(&server).await?;
    server.apply(&document()).await?;
    let before = registry_state(&server).await?;

    let server = TestServer::start_on(server.stop(), |_| {})?;
    assert_eq!(registry_state(&server).await?, before);
    let report = server.apply(&document()).await?;
    assert_eq!(report["unchanged"].as_array().map(Vec::len), Some(3));
    Ok(())
}

/// Writes `doc` to `definitions.json` in `dir`; returns its path as a string.
fn write_definitions(dir: &Path, doc: &Value) -> TestResult<String> {
    let path = dir.join("definitions.json");
    std::fs::write(&path, serde_json::to_vec_pretty(doc)?)?;
    Ok(path.to_str().ok_or("a UTF-8 temporary path")?.to_owned())
}

#[tokio::test]
async fn the_apply_command_prints_what_it_created_and_the_server_serves_it() -> TestResult {
    let server = TestServer::start()?;
    save_profiles(&server).await?;
    let data = server.stop();
    let files = tempfile::tempdir()?;
    let file = write_definitions(files.path(), &document())?;
    let dir = data.path().to_str().ok_or("a UTF-8 temporary path")?;

    let output = featurestore_command(&["apply", &file, "--data-dir", dir])?;
    let stdout = String::from_utf8(output.stdout)?;
    assert!(
        output.status.success(),
        "{}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
    assert_eq!(
        lines,
        [
            "created   entity user_id",
            "created   feature view user_profile",
            "created   feature service profile_service",
            "registry version 1",
        ],
        "stdout: {stdout}"
    );

    let again = featurestore_command(&["apply", &file, "--data-dir", dir])?;
    assert!(again.status.success());
    let again = String::from_utf8(again.stdout)?;
    let (objects, version) = again
        .trim_end()
        .rsplit_once('\n')
        .ok_or("two lines at least")?;
    assert!(
        objects.lines().all(|l| l.trim().starts_with("unchanged")),
        "{again}"
    );
    assert_eq!(
        version, "registry version 1",
        "an unchanged apply makes no version"
    );

    let server = TestServer::start_on(data, |_| {})?;
    assert_eq!(
        get_ok(&server, "/registry/feature-views/user_profile").await?,
        registered_view(86_400)
    );
    Ok(())
}

#[tokio::test]
async fn the_apply_command_fails_naming_every_invalid_field_and_applies_nothing() -> TestResult {
    let server = TestServer::start()?;
    save_profiles(&server).await?;
    let data = server.stop();
    let files = tempfile::tempdir()?;
    let mut doc = document();
    doc["feature_views"][0]["timestamp_field"] = json!("nope");
    doc["feature_services"][0]["features"] = json!(["user_profile:missing"]);
    let file = write_definitions(files.path(), &doc)?;
    let dir = data.path().to_str().ok_or("a UTF-8 temporary path")?;

    let output = featurestore_command(&["apply", &file, "--data-dir", dir])?;
    assert!(!output.status.success(), "it succeeded");
    let stderr = String::from_utf8_lossy(&output.stderr);
    for field in [
        "feature_views[0].timestamp_field",
        "feature_services[0].features[0]",
    ] {
        assert!(stderr.contains(field), "{field} not in stderr: {stderr}");
    }

    // A file that is not a registry document fails too.
    let typo = write_definitions(files.path(), &json!({"entities": [], "views": []}))?;
    let output = featurestore_command(&["apply", &typo, "--data-dir", dir])?;
    assert!(!output.status.success(), "it succeeded");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("views"),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    let server = TestServer::start_on(data, |_| {})?;
    assert_eq!(
        get_ok(&server, "/registry/feature-views").await?,
        json!({"feature_views": []})
    );
    Ok(())
}

#[tokio::test]
async fn a_view_listing_an_entity_twice_or_serving_its_key_as_a_feature_is_422() -> TestResult {
    let server = TestServer::start()?;
    save_profiles(&server).await?;
    server.apply(&document()).await?;
    let before = registry_state(&server).await?;
    let (status, body) = server
        .post(
            "/registry/apply",
            &json!({"feature_views": [
                {"name": "user_profile", "group": "user", "entities": ["user_id", "user_id"],
                 "timestamp_field": "event_timestamp",
                 "features": [{"name": "user_id"}, {"name": "event_timestamp"}]},
            ]}),
        )
        .await?;
    assert_problem(status, &body, 422, "invalid_definitions");
    let fields = sorted_error_fields(&body);
    for expected in [
        "feature_views[0].entities[1]",
        "feature_views[0].features[0]",
        "feature_views[0].features[1]",
    ] {
        assert!(
            fields.iter().any(|f| f == expected),
            "{expected} missing from {fields:?}"
        );
    }
    assert_eq!(
        registry_state(&server).await?,
        before,
        "nothing was applied"
    );
    Ok(())
}
