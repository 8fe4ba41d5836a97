//! The registry's history as a user sees it: every registry write (apply over HTTP and from
//! the command line, the three deletes, a save that registers its view) records the next
//! version with what it changed and which token wrote it; `GET /registry/history` pages them
//! newest first; `GET /registry/history/{v}` answers the whole document of a version; 404 and
//! 410 for versions never written or no longer retained; numbers survive restarts and a
//! document written without its version (a crash in between) is recorded, not lost. Also a
//! feature service's `table_versions` pins, validated at apply. Most tests have an s3 twin.

use std::sync::Arc;
use std::time::Duration;

use featurestore::cache::ManualClock;
use serde_json::{Value, json};

use crate::common::instants::*;
use crate::common::{
    TestResult, TestServer, assert_problem, featurestore_ok, micros, read, restart,
};
use crate::on_s3_too;

/// Saves `user/user_profile` without an entity key, so that the save registers nothing and
/// the registry's history starts with the test's own writes.
async fn save_profiles(server: &TestServer) -> TestResult {
    server
        .save(
            "user",
            "user_profile",
            json!({"records": [
                {"user_id": 1, "age": 30, "favorite_genre": "Drama", "event_timestamp": T0},
            ]}),
        )
        .await?;
    Ok(())
}

/// The entity `user_id`, the view `user_profile` and the service `profile_service`.
fn document(ttl_seconds: u64) -> Value {
    json!({
        "entities": [{"name": "user_id", "value_type": "int64"}],
        "feature_views": [{"name": "user_profile", "group": "user", "entities": ["user_id"],
                           "timestamp_field": "event_timestamp", "ttl_seconds": ttl_seconds}],
        "feature_services": [{"name": "profile_service", "features": ["user_profile:age"]}],
    })
}

/// An entity-only document (no table needed).
fn entity(name: &str) -> Value {
    json!({"entities": [{"name": name, "value_type": "int64"}]})
}

/// GET `path`: status, JSON body and the `X-Registry-Version` header, if any.
async fn get_versioned(server: &TestServer, path: &str) -> TestResult<(u16, Value, Option<u64>)> {
    let response = server.client.get(server.url(path)).send().await?;
    let version = registry_version_header(&response);
    let (status, body) = read(response).await?;
    Ok((status, body, version))
}

fn registry_version_header(response: &reqwest::Response) -> Option<u64> {
    response
        .headers()
        .get("x-registry-version")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// `GET /registry/history` with `query`, checked to be a 200.
async fn history(server: &TestServer, query: &str) -> TestResult<Value> {
    let (status, body) = server.get(&format!("/registry/history{query}")).await?;
    if status != 200 {
        return Err(format!("GET /registry/history{query} answered {status}: {body}").into());
    }
    Ok(body)
}

/// The version numbers and operations of a history page.
fn listed(page: &Value) -> Vec<(u64, String)> {
    page["versions"]
        .as_array()
        .map(|versions| {
            versions
                .iter()
                .map(|v| {
                    (
                        v["version"].as_u64().unwrap_or_default(),
                        v["operation"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn change(kind: &str, name: &str, change: &str) -> Value {
    json!({"kind": kind, "name": name, "change": change})
}

/// The three registry listings as one document, shaped like `POST /registry/apply`'s body.
async fn current_document(server: &TestServer) -> TestResult<Value> {
    let (_, entities) = server.get("/registry/entities").await?;
    let (_, views) = server.get("/registry/feature-views").await?;
    let (_, services) = server.get("/registry/feature-services").await?;
    Ok(json!({
        "entities": entities["entities"],
        "feature_views": views["feature_views"],
        "feature_services": services["feature_services"],
    }))
}

#[actix_web::test]
async fn every_registry_write_records_the_next_version_with_what_it_changed() -> TestResult {
    let server = TestServer::start()?;
    save_profiles(&server).await?;
    let (_, _, version) = get_versioned(&server, "/registry/entities").await?;
    assert_eq!(version, Some(0), "nothing was ever written");
    let empty = history(&server, "").await?;
    assert_eq!(
        (
            &empty["current_version"],
            &empty["total_versions"],
            &empty["versions"]
        ),
        (&json!(0), &json!(0), &json!([]))
    );

    let response = server
        .client
        .post(server.url("/registry/apply"))
        .json(&document(86_400))
        .send()
        .await?;
    assert_eq!(registry_version_header(&response), Some(1));
    assert_eq!(response.status().as_u16(), 200);
    server.apply(&document(86_400)).await?; // unchanged: no version
    server.apply(&document(3_600)).await?;
    for path in [
        "/registry/feature-services/profile_service",
        "/registry/feature-views/user_profile",
        "/registry/entities/user_id",
    ] {
        let (status, body) = server.delete(path).await?;
        assert_eq!(status, 200, "{path}: {body}");
    }

    let page = history(&server, "").await?;
    assert_eq!(
        listed(&page),
        [
            (5, "delete_entity".to_owned()),
            (4, "delete_feature_view".to_owned()),
            (3, "delete_feature_service".to_owned()),
            (2, "apply".to_owned()),
            (1, "apply".to_owned()),
        ]
    );
    let versions = &page["versions"];
    assert_eq!(
        versions[4]["changes"],
        json!([
            change("entity", "user_id", "created"),
            change("feature_view", "user_profile", "created"),
            change("feature_service", "profile_service", "created"),
        ])
    );
    assert_eq!(
        versions[3]["changes"],
        json!([change("feature_view", "user_profile", "updated")])
    );
    assert_eq!(
        versions[0]["changes"],
        json!([change("entity", "user_id", "deleted")])
    );
    let mut previous = 0;
    for version in versions.as_array().ok_or("versions")?.iter().rev() {
        assert_eq!(version["written_by"], Value::Null, "auth is off");
        let at = micros(version["at"].as_str().ok_or("at")?)?;
        assert!(at >= previous, "instants grow with the number: {page}");
        previous = at;
    }
    assert_eq!(
        (
            &page["current_version"],
            &page["oldest_version"],
            &page["total_versions"]
        ),
        (&json!(5), &json!(1), &json!(5))
    );
    let (_, _, version) = get_versioned(&server, "/registry/feature-views").await?;
    assert_eq!(version, Some(5));
    Ok(())
}

#[actix_web::test]
async fn a_save_that_registers_its_view_records_a_table_sync_version() -> TestResult {
    let server = TestServer::start()?;
    server
        .save(
            "user",
            "user_profile",
            json!({"entity_key": ["user_id"], "records": [
                {"user_id": 1, "age": 30, "event_timestamp": T0},
            ]}),
        )
        .await?;
    let page = history(&server, "").await?;
    assert_eq!(listed(&page), [(1, "table_sync".to_owned())]);
    assert_eq!(
        page["versions"][0]["changes"],
        json!([
            change("entity", "user_id", "created"),
            change("feature_view", "user_profile", "created"),
        ])
    );
    // The same rows again change no definition, so no version.
    server
        .save(
            "user",
            "user_profile",
            json!({"entity_key": ["user_id"], "records": [
                {"user_id": 1, "age": 31, "event_timestamp": T0},
            ]}),
        )
        .await?;
    assert_eq!(history(&server, "").await?["current_version"], 1);
    Ok(())
}

#[actix_web::test]
async fn history_pages_run_newest_first_with_the_next_offset() -> TestResult {
    let server = TestServer::start()?;
    for name in ["a", "b", "c", "d", "e"] {
        server.apply(&entity(name)).await?;
    }
    let first = history(&server, "?limit=2").await?;
    assert_eq!(
        listed(&first).iter().map(|(v, _)| *v).collect::<Vec<_>>(),
        [5, 4]
    );
    assert_eq!(
        (&first["offset"], &first["limit"], &first["next_offset"]),
        (&json!(0), &json!(2), &json!(2))
    );
    let second = history(&server, "?limit=2&offset=2").await?;
    assert_eq!(
        listed(&second).iter().map(|(v, _)| *v).collect::<Vec<_>>(),
        [3, 2]
    );
    let last = history(&server, "?limit=2&offset=4").await?;
    assert_eq!(
        listed(&last).iter().map(|(v, _)| *v).collect::<Vec<_>>(),
        [1]
    );
    assert_eq!(last["next_offset"], Value::Null);
    let beyond = history(&server, "?offset=9").await?;
    assert_eq!(
        (&beyond["versions"], &beyond["total_versions"]),
        (&json!([]), &json!(5))
    );

    let (status, problem) = server.get("/registry/history?limit=1001").await?;
    assert_problem(status, &problem, 400, "invalid_parameter");
    let (status, problem) = server.get("/registry/history?offset=-1").await?;
    assert_problem(status, &problem, 400, "invalid_parameter");
    let (status, problem) = server.get("/registry/history?page=2").await?;
    assert_problem(status, &problem, 400, "unknown_query_parameter");
    Ok(())
}

#[actix_web::test]
async fn each_version_answers_the_whole_document_it_had() -> TestResult {
    let server = TestServer::start()?;
    save_profiles(&server).await?;
    let mut documents = Vec::new();
    server.apply(&document(86_400)).await?;
    documents.push(current_document(&server).await?);
    server
        .apply(&json!({"entities": [{"name": "movie_id", "value_type": "string"}]}))
        .await?;
    documents.push(current_document(&server).await?);
    server
        .delete("/registry/feature-services/profile_service")
        .await?;
    documents.push(current_document(&server).await?);
    for (i, expected) in documents.iter().enumerate() {
        let version = i + 1;
        let (status, body) = server.get(&format!("/registry/history/{version}")).await?;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["version"], version);
        assert_eq!(&body["document"], expected, "version {version}");
    }
    // The document of a version is what apply takes: applying version 1's restores it.
    let (_, first) = server.get("/registry/history/1").await?;
    server.apply(&first["document"]).await?;
    let restored = current_document(&server).await?;
    assert_eq!(
        restored["feature_services"],
        documents[0]["feature_services"]
    );
    Ok(())
}

#[actix_web::test]
async fn versions_never_written_are_404_and_expired_ones_410_naming_those_retained() -> TestResult {
    let clock = Arc::new(ManualClock::starting_at(micros(T0)?));
    let server = TestServer::start_with_clock(clock.clone(), |_| {})?;
    let (status, problem) = server.get("/registry/history/1").await?;
    assert_problem(status, &problem, 404, "registry_version_not_found");
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("no registry version was recorded yet")),
        "{problem}"
    );
    // 16 versions: the s3 kind sweeps on every 16th write, the local kind on every write.
    for i in 1..16 {
        server.apply(&entity(&format!("e{i:02}"))).await?;
    }
    clock.advance(Duration::from_secs(8 * 24 * 3600));
    server.apply(&entity("e16")).await?;
    // Versions 1 to 6 stopped being current 8 days ago and are more than 10 behind.
    let page = history(&server, "").await?;
    assert_eq!(
        (
            &page["oldest_version"],
            &page["current_version"],
            &page["total_versions"]
        ),
        (&json!(7), &json!(16), &json!(10))
    );
    for (path, status, code) in [
        ("/registry/history/0", 404, "registry_version_not_found"),
        ("/registry/history/17", 404, "registry_version_not_found"),
        ("/registry/history/3", 410, "registry_version_expired"),
        ("/registry/history/6", 410, "registry_version_expired"),
    ] {
        let (got, problem) = server.get(path).await?;
        assert_problem(got, &problem, status, code);
        assert!(
            problem["detail"]
                .as_str()
                .is_some_and(|d| d.contains("versions 7 to 16 are retained")),
            "{path}: {problem}"
        );
    }
    let (status, body) = server.get("/registry/history/7").await?;
    assert_eq!(status, 200, "{body}");
    let (status, problem) = server.get("/registry/history/seven").await?;
    assert_problem(status, &problem, 400, "invalid_parameter");
    Ok(())
}

#[actix_web::test]
async fn a_restart_keeps_the_version_numbers() -> TestResult {
    let server = TestServer::start()?;
    server.apply(&entity("a")).await?;
    server.apply(&entity("b")).await?;
    let server = restart(server).await?;
    let (_, _, version) = get_versioned(&server, "/registry/entities").await?;
    assert_eq!(version, Some(2));
    server.apply(&entity("c")).await?;
    let page = history(&server, "").await?;
    assert_eq!(
        listed(&page).iter().map(|(v, _)| *v).collect::<Vec<_>>(),
        [3, 2, 1]
    );
    Ok(())
}

on_s3_too!(
    every_registry_write_records_the_next_version_with_what_it_changed,
    a_save_that_registers_its_view_records_a_table_sync_version,
    history_pages_run_newest_first_with_the_next_offset,
    each_version_answers_the_whole_document_it_had,
    versions_never_written_are_404_and_expired_ones_410_naming_those_retained,
    a_restart_keeps_the_version_numbers,
);

#[actix_web::test]
async fn a_document_written_without_its_version_is_recorded_as_the_next_one() -> TestResult {
    let server = TestServer::start()?;
    server.apply(&entity("a")).await?;
    let data = server.stop();
    // What a crash between replacing the document and recording its version leaves; an
    // edit by hand looks the same.
    let registry = data.path().join("registry").join("registry.json");
    std::fs::write(
        &registry,
        serde_json::to_vec(&json!({"entities": [
            {"name": "a", "join_key": null, "value_type": "int64", "description": ""},
            {"name": "b", "join_key": null, "value_type": "int64", "description": ""},
        ]}))?,
    )?;
    let server = TestServer::start_on(data, |_| {})?;
    let page = history(&server, "").await?;
    assert_eq!(
        listed(&page),
        [(2, "unrecorded".to_owned()), (1, "apply".to_owned())]
    );
    assert_eq!(
        page["versions"][0]["changes"],
        json!([change("entity", "b", "created")])
    );
    server.apply(&entity("c")).await?;
    assert_eq!(history(&server, "").await?["current_version"], 3);
    Ok(())
}

#[actix_web::test]
async fn the_command_line_apply_records_a_version_the_server_lists() -> TestResult {
    let data = tempfile::tempdir()?;
    let file = tempfile::NamedTempFile::new()?;
    std::fs::write(file.path(), serde_json::to_vec(&entity("from_cli"))?)?;
    let printed = featurestore_ok(&[
        "apply",
        file.path().to_str().ok_or("a UTF-8 path")?,
        "--data-dir",
        data.path().to_str().ok_or("a UTF-8 path")?,
    ])?;
    assert!(printed.contains("registry version 1"), "{printed}");
    let server = TestServer::start_on(data, |_| {})?;
    let page = history(&server, "").await?;
    assert_eq!(listed(&page), [(1, "apply".to_owned())]);
    assert_eq!(page["versions"][0]["written_by"], Value::Null);
    assert_eq!(
        page["versions"][0]["changes"],
        json!([change("entity", "from_cli", "created")])
    );
    Ok(())
}

/// sha256 as lowercase hex, computed here rather than by the code under test.
fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[actix_web::test]
async fn with_auth_on_each_version_names_the_token_that_wrote_it() -> TestResult {
    const LOADER: &str = "fs_loader_token_for_history";
    const DEPLOYER: &str = "fs_deployer_token_for_history";
    const READER: &str = "fs_reader_token_for_history";
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("featurestore.toml");
    std::fs::write(
        &path,
        format!(
            "[auth]\nenabled = true\n\n\
             [[auth.tokens]]\nname = \"loader\"\nsha256 = \"{}\"\nscope = \"write\"\n\n\
             [[auth.tokens]]\nname = \"deployer\"\nsha256 = \"{}\"\nscope = \"write\"\n\n\
             [[auth.tokens]]\nname = \"reader\"\nsha256 = \"{}\"\nscope = \"read\"\n",
            sha256_hex(LOADER),
            sha256_hex(DEPLOYER),
            sha256_hex(READER)
        ),
    )?;
    let auth = featurestore::config::Config::load(Some(&path), std::iter::empty())?.auth;
    let server = TestServer::start_with(|config| config.auth = auth)?;
    let send = |request: reqwest::RequestBuilder, token: &str| {
        request
            .header("authorization", format!("Bearer {token}"))
            .send()
    };
    let applied = send(
        server
            .client
            .post(server.url("/registry/apply"))
            .json(&entity("a")),
        LOADER,
    )
    .await?;
    assert_eq!(applied.status().as_u16(), 200);
    let deleted = send(
        server.client.delete(server.url("/registry/entities/a")),
        DEPLOYER,
    )
    .await?;
    assert_eq!(deleted.status().as_u16(), 200);
    // Reading the history needs a read token, like every registry read.
    let unauthorized = server
        .client
        .get(server.url("/registry/history"))
        .send()
        .await?;
    assert_eq!(unauthorized.status().as_u16(), 401);
    let (status, page) =
        read(send(server.client.get(server.url("/registry/history")), READER).await?).await?;
    assert_eq!(status, 200, "{page}");
    let writers: Vec<(&Value, &Value)> = page["versions"]
        .as_array()
        .ok_or("versions")?
        .iter()
        .map(|v| (&v["operation"], &v["written_by"]))
        .collect();
    assert_eq!(
        writers,
        [
            (&json!("delete_entity"), &json!("deployer")),
            (&json!("apply"), &json!("loader")),
        ]
    );
    Ok(())
}

#[actix_web::test]
async fn feature_service_pins_are_validated_at_apply_and_kept_in_its_definition() -> TestResult {
    let server = TestServer::start()?;
    save_profiles(&server).await?;
    let mut doc = document(86_400);
    doc["feature_services"][0]["table_versions"] = json!({"user_profile": 3});
    server.apply(&doc).await?;
    let (status, service) = server
        .get("/registry/feature-services/profile_service")
        .await?;
    assert_eq!(status, 200, "{service}");
    assert_eq!(service["table_versions"], json!({"user_profile": 3}));
    let (_, version) = server.get("/registry/history/1").await?;
    assert_eq!(
        version["document"]["feature_services"][0]["table_versions"],
        json!({"user_profile": 3})
    );

    let bad = |pins: Value| {
        json!({"feature_services": [{"name": "profile_service",
            "features": ["user_profile:age"], "table_versions": pins}]})
    };
    let (status, problem) = server
        .post(
            "/registry/apply",
            &bad(json!({"movie_metadata": 1, "user_profile": 0})),
        )
        .await?;
    assert_problem(status, &problem, 422, "invalid_definitions");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .ok_or("errors")?
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(
        fields,
        [
            "feature_services[0].table_versions.movie_metadata",
            "feature_services[0].table_versions.user_profile",
        ],
        "{problem}"
    );
    let (status, problem) = server
        .post("/registry/apply", &bad(json!({"user_profile": -1})))
        .await?;
    assert_problem(status, &problem, 422, "invalid_body");
    let (_, service) = server
        .get("/registry/feature-services/profile_service")
        .await?;
    assert_eq!(
        service["table_versions"],
        json!({"user_profile": 3}),
        "nothing applied"
    );
    assert_eq!(history(&server, "").await?["current_version"], 1);

    // A service without pins has no table_versions member at all.
    server
        .apply(&json!({"feature_services": [{"name": "plain", "features": ["user_profile"]}]}))
        .await?;
    let (_, plain) = server.get("/registry/feature-services/plain").await?;
    assert!(plain.get("table_versions").is_none(), "{plain}");
    Ok(())
}
