//! Fuzzing the HTTP surface with proptest: arbitrary JSON, arbitrary bytes, and arbitrary
//! names and query parameters sent to the real application in process
//! (`featurestore::server::app` under `actix_web::test`, no socket), so thousands of cases
//! cost seconds.
//!
//! Every property checks the same three things of each answer:
//! - no panic: a panic in a handler either unwinds out of the call (caught here) or, on the
//!   blocking pool, becomes a 500; both fail the case;
//! - every non-2xx answer is `application/problem+json` whose `status` is the HTTP status and
//!   whose `code` is a non-empty string, and it is a 4xx: 500 is reserved for damaged files
//!   and failing disks (see `faults.rs`), which these inputs never cause;
//! - a rejected request changed nothing on disk: every file under the data root (except the
//!   sled files of the disk cache and the online store, which change on their own schedule)
//!   has the same bytes before and after it.
//!
//! Cases per property: [`DEFAULT_CASES`], about a second each in a debug build.
//! `FEATURESTORE_FUZZ_CASES=N` sets the count of every property, for long runs:
//! `FEATURESTORE_FUZZ_CASES=200000 cargo test --release --test it fuzz:: -- --nocapture`
//! (five properties, 1 M inputs; the README records the run). A failing input is shrunk by
//! proptest and printed with the failure; nothing is persisted.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::header::CONTENT_TYPE;
use actix_web::test::TestRequest;
use actix_web::web;
use arrow::array::{Int64Array, StringArray};
use arrow::record_batch::RecordBatch;
use featurestore::api::AppState;
use featurestore::config::Config;
use featurestore::store::FeatureStore;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use serde_json::{Value, json};

use crate::common::{TestResult, list_files, parquet_bytes};

/// Cases per property when `FEATURESTORE_FUZZ_CASES` is not set.
const DEFAULT_CASES: u32 = 300;

fn cases() -> u32 {
    std::env::var("FEATURESTORE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

// ---------------------------------------------------------------------------------------------
// The properties
// ---------------------------------------------------------------------------------------------

#[test]
fn arbitrary_json_bodies_are_answered_or_rejected_as_problems() -> TestResult {
    fuzz(
        "arbitrary JSON bodies",
        (select(JSON_ROUTES), json_value()),
        |(route, body)| Some(json_request(route, body)),
    )
}

#[test]
fn request_shaped_bodies_with_arbitrary_values_are_answered_or_rejected_as_problems() -> TestResult
{
    fuzz("request-shaped bodies", shaped_body(), |(route, body)| {
        Some(json_request(route, body))
    })
}

#[test]
fn arbitrary_bytes_under_any_content_type_are_answered_or_rejected_as_problems() -> TestResult {
    fuzz(
        "arbitrary bytes",
        (select(JSON_ROUTES), select(CONTENT_TYPES), bytes()),
        |(route, content_type, body)| {
            let mut request = TestRequest::post().uri(route.uri);
            if !content_type.is_empty() {
                request = request.insert_header((CONTENT_TYPE, *content_type));
            }
            Some(request.set_payload(body.0.clone()))
        },
    )
}

#[test]
fn damaged_entity_uploads_are_answered_or_rejected_as_problems() -> TestResult {
    fuzz(
        "damaged uploads",
        upload(),
        |(content_type, query, body)| {
            Some(
                TestRequest::post()
                    .uri(&format!("/get-historical-features?{query}"))
                    .insert_header((CONTENT_TYPE, *content_type))
                    .set_payload(body.0.clone()),
            )
        },
    )
}

#[test]
fn arbitrary_names_and_query_parameters_are_answered_or_rejected_as_problems() -> TestResult {
    fuzz("names and query parameters", named_request(), |request| {
        request.to_test_request()
    })
}

// ---------------------------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------------------------

/// What one request answered.
struct Outcome {
    status: u16,
    content_type: String,
    body: web::Bytes,
}

/// Runs `cases()` inputs of `strategy` through a fresh application over a populated data root
/// and checks every answer (see the module doc).
fn fuzz<T: Debug>(
    name: &str,
    strategy: impl Strategy<Value = T>,
    request: impl Fn(&T) -> Option<TestRequest>,
) -> TestResult {
    let data = tempfile::tempdir()?;
    let mut config = Config::defaults()?;
    config.storage.data_dir = data.path().to_path_buf();
    let store = FeatureStore::open(config.store_options())?;
    let state = web::Data::new(AppState::new(store, config.api.clone()));
    let system = actix_web::rt::System::new();
    let app = system.block_on(actix_web::test::init_service(featurestore::server::app(
        state,
    )));
    for request in fixture() {
        let outcome = system.block_on(call(&app, request.to_request()))?;
        if !(200..300).contains(&outcome.status) {
            return Err(format!(
                "the fixture failed with {}: {}",
                outcome.status,
                String::from_utf8_lossy(&outcome.body)
            )
            .into());
        }
    }
    let root = data.path();
    let files = RefCell::new(snapshot(root));
    let statuses: RefCell<BTreeMap<u16, u32>> = RefCell::default();
    let cases = cases();
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let started = Instant::now();
    let result = runner.run(&strategy, |input| {
        let Some(request) = request(&input) else {
            return Ok(());
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            system.block_on(call(&app, request.to_request()))
        }))
        .map_err(|_| TestCaseError::fail("the request panicked"))?
        .map_err(TestCaseError::fail)?;
        *statuses.borrow_mut().entry(outcome.status).or_default() += 1;
        check(&outcome).map_err(TestCaseError::fail)?;
        let now = snapshot(root);
        let mut before = files.borrow_mut();
        if (200..300).contains(&outcome.status) {
            *before = now;
        } else if now != *before {
            return Err(TestCaseError::fail(format!(
                "a rejected request ({}) changed files: {:?}",
                outcome.status,
                changed(&before, &now)
            )));
        }
        Ok(())
    });
    // The statuses show how deep the inputs reach (a property whose every answer is the same
    // 400 tests little); printed with `--nocapture`.
    eprintln!(
        "fuzz: {name}: {cases} cases in {:.1} s; answers by status: {:?}",
        started.elapsed().as_secs_f64(),
        statuses.borrow()
    );
    result.map_err(|e| format!("{name}: {e}").into())
}

/// Sends one request; an error the service returns instead of a response is rendered the way
/// the server would render it.
async fn call<S, R, B>(app: &S, request: R) -> Result<Outcome, String>
where
    S: Service<R, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    let response = match app.call(request).await {
        Ok(response) => response.map_into_boxed_body().into_parts().1,
        Err(e) => e.as_response_error().error_response(),
    };
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = actix_web::body::to_bytes(response.into_body())
        .await
        .map_err(|e| format!("the body of a {status} could not be read: {e}"))?;
    Ok(Outcome {
        status,
        content_type,
        body,
    })
}

/// The answer is a success, or a 4xx problem+json with a code.
fn check(outcome: &Outcome) -> Result<(), String> {
    let status = outcome.status;
    if (200..300).contains(&status) {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&outcome.body);
    if outcome.content_type != "application/problem+json" {
        return Err(format!(
            "{status} with content type {:?}: {text}",
            outcome.content_type
        ));
    }
    let problem: Value = serde_json::from_slice(&outcome.body)
        .map_err(|e| format!("{status} problem is not JSON ({e}): {text}"))?;
    if problem["status"] != status {
        return Err(format!("{status} problem says another status: {text}"));
    }
    if problem["code"].as_str().is_none_or(str::is_empty) {
        return Err(format!("{status} problem has no code: {text}"));
    }
    if !(400..500).contains(&status) {
        return Err(format!("{status} is not a 4xx: {text}"));
    }
    Ok(())
}

/// Every file under `root` with its bytes, except the sled trees of the disk cache and the
/// online store, and the lock files (empty: a write takes its table's lock across processes
/// before it knows whether the request is valid; they hold no data).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    list_files(root)
        .into_iter()
        .filter(|p| !p.starts_with("cache") && !p.starts_with("online"))
        .filter(|p| p.extension().is_none_or(|e| e != "lock"))
        .map(|p| {
            let bytes = std::fs::read(root.join(&p)).unwrap_or_default();
            (p, bytes)
        })
        .collect()
}

fn changed(
    before: &BTreeMap<PathBuf, Vec<u8>>,
    after: &BTreeMap<PathBuf, Vec<u8>>,
) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = before
        .keys()
        .chain(after.keys())
        .filter(|p| before.get(*p) != after.get(*p))
        .cloned()
        .collect();
    paths.dedup();
    paths
}

/// Two tables with views over them, a feature service and a push source, as the requests
/// that write them through the API.
fn fixture() -> Vec<TestRequest> {
    let profiles: Vec<Value> = (1..=4)
        .map(|i| {
            json!({"user_id": i, "age": 20 + i, "avg_rating": 3.5, "genre": "Drama",
                   "event_timestamp": "2025-06-01T09:00:00Z"})
        })
        .collect();
    let movies: Vec<Value> = (10..=12)
        .map(|i| json!({"movie_id": i, "title": format!("m{i}"), "event_timestamp": "2025-06-01T09:00:00Z"}))
        .collect();
    let registry = json!({
        "entities": [
            {"name": "user_id", "value_type": "int64"},
            {"name": "movie_id", "value_type": "int64"},
        ],
        "feature_views": [
            {"name": "user_profile", "group": "user", "entities": ["user_id"],
             "timestamp_field": "event_timestamp", "ttl_seconds": 86_400,
             "push_source": "user_push"},
            {"name": "movie_metadata", "group": "content", "entities": ["movie_id"],
             "timestamp_field": "event_timestamp"},
        ],
        "feature_services": [
            {"name": "recommender", "features": ["user_profile:age", "movie_metadata"]},
        ],
    });
    vec![
        TestRequest::post()
            .uri("/features/user/user_profile")
            .set_json(json!({"records": profiles, "entity_key": ["user_id"]})),
        TestRequest::post()
            .uri("/features/content/movie_metadata")
            .set_json(json!({"records": movies, "entity_key": ["movie_id"]})),
        TestRequest::post()
            .uri("/registry/apply")
            .set_json(registry),
    ]
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// What a POST route's body means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Save,
    Batch,
    Online,
    Historical,
    Push,
    Apply,
    Materialize,
    MaterializeIncremental,
}

/// A POST route that takes a JSON body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Route {
    uri: &'static str,
    kind: Kind,
}

const JSON_ROUTES: &[Route] = &[
    Route {
        uri: "/features/misc/fuzz_table",
        kind: Kind::Save,
    },
    Route {
        uri: "/features/batch",
        kind: Kind::Batch,
    },
    Route {
        uri: "/get-online-features",
        kind: Kind::Online,
    },
    Route {
        uri: "/get-historical-features",
        kind: Kind::Historical,
    },
    Route {
        uri: "/push",
        kind: Kind::Push,
    },
    Route {
        uri: "/registry/apply",
        kind: Kind::Apply,
    },
    Route {
        uri: "/materialize",
        kind: Kind::Materialize,
    },
    Route {
        uri: "/materialize-incremental",
        kind: Kind::MaterializeIncremental,
    },
];

const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "",
    "text/plain",
    "application/json; charset=utf-8",
    "application/problem+json",
    "application/vnd.apache.parquet",
    "application/vnd.apache.arrow.stream",
    "application/octet-stream",
    "multipart/form-data; boundary=x",
];

/// Strings that mean something to some route, so that arbitrary documents reach past the
/// first check often enough.
const WORDS: &[&str] = &[
    "user_profile",
    "movie_metadata",
    "fuzz_table",
    "user_profile:age",
    "user_profile:genre",
    "movie_metadata:title",
    "user_profile:nope",
    "nope:age",
    "user_profile:",
    ":age",
    "a:b:c",
    "recommender",
    "user_push",
    "user_id",
    "movie_id",
    "entity_id",
    "event_timestamp",
    "age",
    "genre",
    "2025-06-01T09:30:00Z",
    "2025-06-01T09:30:00+02:00",
    "1970-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "2025-13-01T00:00:00Z",
    "2025-06-01",
    "online",
    "offline",
    "online_and_offline",
    "rows",
    "columns",
    "int64",
    "string",
    "float64",
    "bool",
    "user",
    "content",
    "misc",
    "..",
    "a/b",
    "",
    " ",
    "\u{0}",
    "é",
];

/// Body keys of every route.
const KEYS: &[&str] = &[
    "records",
    "entity_key",
    "timestamp_field",
    "feature_names",
    "entity_ids",
    "timestamp",
    "features",
    "feature_service",
    "entities",
    "full_feature_names",
    "layout",
    "start",
    "end",
    "created_timestamp_cutoff",
    "push_source_name",
    "feature_view",
    "df",
    "to",
    "feature_views",
    "feature_services",
    "name",
    "group",
    "join_key",
    "value_type",
    "ttl_seconds",
    "push_source",
    "dtype",
    "start_ts",
    "end_ts",
];

/// Column names: the fixture's, the defaults and a few others.
const COLUMNS: &[&str] = &[
    "user_id",
    "movie_id",
    "entity_id",
    "event_timestamp",
    "age",
    "avg_rating",
    "genre",
    "title",
    "x",
    "",
];

fn text() -> BoxedStrategy<String> {
    prop_oneof![
        4 => select(WORDS).prop_map(str::to_owned),
        1 => "\\PC{0,12}",
        1 => "(?s).{0,8}",
    ]
    .boxed()
}

fn key() -> BoxedStrategy<String> {
    prop_oneof![
        3 => select(KEYS).prop_map(str::to_owned),
        2 => select(COLUMNS).prop_map(str::to_owned),
        1 => text(),
    ]
    .boxed()
}

fn scalar() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        select(
            &[
                0_i64,
                1,
                -1,
                2,
                10,
                255,
                256,
                65_536,
                1 << 31,
                1 << 53,
                i64::MIN,
                i64::MAX
            ][..]
        )
        .prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        text().prop_map(Value::String),
    ]
    .boxed()
}

/// Any JSON document, nested a few levels.
fn json_value() -> BoxedStrategy<Value> {
    scalar()
        .prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((key(), inner), 0..6)
                    .prop_map(|fields| Value::Object(fields.into_iter().collect())),
            ]
        })
        .boxed()
}

/// A cell of a column: mostly values a fixture column could hold.
fn cell() -> BoxedStrategy<Value> {
    prop_oneof![
        2 => (0_i64..14).prop_map(Value::from),
        1 => select(WORDS).prop_map(Value::from),
        2 => scalar(),
        1 => json_value(),
    ]
    .boxed()
}

/// Columnar rows (`entities`, `df`): column → values, mostly of one length.
fn columns() -> BoxedStrategy<Value> {
    (0_usize..4)
        .prop_flat_map(|rows| {
            prop::collection::vec(
                (
                    select(COLUMNS).prop_map(str::to_owned),
                    prop_oneof![
                        4 => prop::collection::vec(cell(), rows..=rows),
                        1 => prop::collection::vec(cell(), 0..5),
                    ]
                    .prop_map(Value::Array),
                ),
                0..5,
            )
        })
        .prop_map(|cols| Value::Object(cols.into_iter().collect()))
        .boxed()
}

/// Row-major records.
fn records() -> BoxedStrategy<Value> {
    prop::collection::vec(
        prop::collection::vec((select(COLUMNS).prop_map(str::to_owned), cell()), 0..5)
            .prop_map(|cells| Value::Object(cells.into_iter().collect())),
        0..4,
    )
    .prop_map(Value::Array)
    .boxed()
}

fn list_of(item: BoxedStrategy<Value>) -> BoxedStrategy<Value> {
    prop_oneof![
        4 => prop::collection::vec(item, 0..4).prop_map(Value::Array),
        1 => json_value(),
    ]
    .boxed()
}

fn word() -> BoxedStrategy<Value> {
    prop_oneof![4 => text().prop_map(Value::String), 1 => scalar()].boxed()
}

/// An object made of some of `fields` (each with its plausible value) and now and then an
/// arbitrary member.
fn object(fields: Vec<(&'static str, BoxedStrategy<Value>)>) -> BoxedStrategy<Value> {
    let mut members: Vec<(u32, BoxedStrategy<(String, Value)>)> = fields
        .into_iter()
        .map(|(name, value)| (4, value.prop_map(move |v| (name.to_owned(), v)).boxed()))
        .collect();
    members.push((1, (key(), json_value()).boxed()));
    prop::collection::vec(prop::strategy::Union::new_weighted(members), 0..6)
        .prop_map(|members| Value::Object(members.into_iter().collect()))
        .boxed()
}

fn registry_document() -> BoxedStrategy<Value> {
    let entity = object(vec![
        ("name", word()),
        ("join_key", word()),
        ("value_type", word()),
        ("description", word()),
    ]);
    let feature = object(vec![("name", word()), ("dtype", word())]);
    let view = object(vec![
        ("name", word()),
        ("group", word()),
        ("entities", list_of(word())),
        ("timestamp_field", word()),
        ("created_timestamp_field", word()),
        ("ttl_seconds", scalar()),
        ("features", list_of(feature)),
        ("push_source", word()),
        ("tags", json_value()),
    ]);
    let service = object(vec![("name", word()), ("features", list_of(word()))]);
    object(vec![
        ("entities", list_of(entity)),
        ("feature_views", list_of(view)),
        ("feature_services", list_of(service)),
    ])
}

/// A body with the members of its route, each with arbitrary but plausible values.
fn shaped(kind: Kind) -> BoxedStrategy<Value> {
    match kind {
        Kind::Save => object(vec![
            ("records", records()),
            ("entity_key", list_of(word())),
            ("timestamp_field", word()),
        ]),
        Kind::Batch => object(vec![
            ("feature_names", list_of(word())),
            ("entity_ids", list_of(cell())),
            ("timestamp", word()),
        ]),
        Kind::Online => object(vec![
            ("features", list_of(word())),
            ("feature_service", word()),
            ("entities", columns()),
            ("full_feature_names", scalar()),
            ("layout", word()),
        ]),
        Kind::Historical => object(vec![
            ("features", list_of(word())),
            ("feature_service", word()),
            ("entities", columns()),
            ("start", word()),
            ("end", word()),
            ("full_feature_names", scalar()),
            ("created_timestamp_cutoff", scalar()),
        ]),
        Kind::Push => object(vec![
            ("push_source_name", word()),
            ("feature_view", word()),
            ("df", columns()),
            ("to", word()),
        ]),
        Kind::Apply => registry_document(),
        Kind::Materialize => object(vec![
            ("start_ts", word()),
            ("end_ts", word()),
            ("feature_views", list_of(word())),
        ]),
        Kind::MaterializeIncremental => {
            object(vec![("end_ts", word()), ("feature_views", list_of(word()))])
        }
    }
}

/// A body this route accepts on the fixture.
fn valid(kind: Kind) -> Value {
    match kind {
        Kind::Save => json!({"records": [
            {"entity_id": 1, "x": 1.5, "event_timestamp": "2025-06-01T09:00:00Z"},
            {"entity_id": 2, "x": null, "event_timestamp": "2025-06-01T09:10:00Z"},
        ]}),
        Kind::Batch => json!({"feature_names": ["user_profile"], "entity_ids": [1, 2]}),
        Kind::Online => {
            json!({"features": ["user_profile:age"], "entities": {"user_id": [1, 2, 9]}})
        }
        Kind::Historical => json!({
            "features": ["user_profile:age", "movie_metadata:title"],
            "entities": {"user_id": [1, 2], "movie_id": [10, 10],
                         "event_timestamp": ["2025-06-01T09:30:00Z", "2025-06-01T08:00:00Z"]},
        }),
        Kind::Push => json!({
            "push_source_name": "user_push", "to": "online",
            "df": {"user_id": [3], "age": [40], "avg_rating": [4.0], "genre": ["Comedy"],
                   "event_timestamp": ["2025-06-01T09:40:00Z"]},
        }),
        Kind::Apply => json!({"feature_services": [
            {"name": "recommender", "features": ["user_profile:age", "movie_metadata"]},
        ]}),
        Kind::Materialize => json!({
            "start_ts": "2025-06-01T00:00:00Z", "end_ts": "2025-06-01T10:00:00Z",
            "feature_views": ["user_profile"],
        }),
        Kind::MaterializeIncremental => {
            json!({"end_ts": "2025-06-01T10:00:00Z", "feature_views": ["movie_metadata"]})
        }
    }
}

/// A valid body with one or two members replaced by request-shaped values and maybe one
/// removed: inputs that get past most checks and fail (or pass) deep inside.
fn near_valid(kind: Kind) -> BoxedStrategy<Value> {
    let base = valid(kind);
    let replacements = shaped(kind).prop_filter_map("an object", |v| match v {
        Value::Object(members) => Some(members),
        _ => None,
    });
    (replacements, proptest::option::of(select(KEYS)))
        .prop_map(move |(replacements, removed)| {
            let mut body = base.clone();
            if let Value::Object(members) = &mut body {
                for (key, value) in replacements.into_iter().take(2) {
                    members.insert(key, value);
                }
                if let Some(key) = removed {
                    members.remove(key);
                }
            }
            body
        })
        .boxed()
}

fn shaped_body() -> BoxedStrategy<(Route, Value)> {
    select(JSON_ROUTES)
        .prop_flat_map(|route| {
            prop_oneof![shaped(route.kind), near_valid(route.kind)]
                .prop_map(move |body| (route, body))
        })
        .boxed()
}

fn json_request(route: &Route, body: &Value) -> TestRequest {
    TestRequest::post().uri(route.uri).set_json(body)
}

/// A body, printed compactly when a case fails (proptest prints inputs with `{:#?}`, one line
/// per byte for a `Vec<u8>`).
#[derive(Clone)]
struct Blob(Vec<u8>);

impl Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes: ", self.0.len())?;
        for byte in &self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// Bytes with a few of them replaced and maybe cut short.
fn mutate(
    mut bytes: Vec<u8>,
    edits: &[(prop::sample::Index, u8)],
    cut: Option<prop::sample::Index>,
) -> Vec<u8> {
    if bytes.is_empty() {
        return bytes;
    }
    for (at, byte) in edits {
        let i = at.index(bytes.len());
        bytes[i] = *byte;
    }
    if let Some(cut) = cut {
        bytes.truncate(cut.index(bytes.len()));
    }
    bytes
}

fn edits() -> impl Strategy<Value = (Vec<(prop::sample::Index, u8)>, Option<prop::sample::Index>)> {
    (
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        proptest::option::of(any::<prop::sample::Index>()),
    )
}

/// Arbitrary bytes, or a request-shaped JSON document with a few bytes changed.
fn bytes() -> BoxedStrategy<Blob> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        (shaped_body(), edits()).prop_map(|((_, body), (edits, cut))| {
            mutate(serde_json::to_vec(&body).unwrap_or_default(), &edits, cut)
        }),
    ]
    .prop_map(Blob)
    .boxed()
}

/// A valid entity upload (Parquet, Arrow stream): user ids and RFC 3339 times.
fn valid_uploads() -> &'static (Vec<u8>, Vec<u8>) {
    static UPLOADS: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    UPLOADS.get_or_init(|| {
        let batch = RecordBatch::try_from_iter([
            (
                "user_id",
                Arc::new(Int64Array::from(vec![1, 2, 9])) as arrow::array::ArrayRef,
            ),
            (
                "event_timestamp",
                Arc::new(StringArray::from(vec![
                    "2025-06-01T09:30:00Z",
                    "2025-06-01T08:00:00Z",
                    "2025-06-01T09:30:00Z",
                ])),
            ),
        ])
        .expect("a valid batch");
        let parquet = parquet_bytes(&batch).expect("a Parquet file");
        let mut arrow = Vec::new();
        {
            let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut arrow, &batch.schema())
                .expect("an Arrow writer");
            writer.write(&batch).expect("an Arrow batch");
            writer.finish().expect("an Arrow stream");
        }
        (parquet, arrow)
    })
}

const UPLOAD_TYPES: &[&str] = &[
    "application/vnd.apache.parquet",
    "application/vnd.apache.arrow.stream",
    "application/octet-stream",
];

const UPLOAD_QUERIES: &[&str] = &[
    "features=user_profile:age",
    "features=user_profile:age,movie_metadata:title&full_feature_names=true",
    "feature_service=recommender",
    "features=user_profile:age&created_timestamp_cutoff=true",
    "",
    "features=nope:x",
    "features=user_profile:age&feature_service=recommender",
    "full_feature_names=maybe",
];

/// An entity upload: valid, damaged, cut short, or noise.
fn upload() -> BoxedStrategy<(&'static str, &'static str, Blob)> {
    let body = prop_oneof![
        (any::<bool>(), edits()).prop_map(|(arrow, (edits, cut))| {
            let (parquet, stream) = valid_uploads();
            let bytes = if arrow { stream } else { parquet };
            mutate(bytes.clone(), &edits, cut)
        }),
        prop::collection::vec(any::<u8>(), 0..128).prop_map(|tail| {
            let mut bytes = b"PAR1".to_vec();
            bytes.extend(tail);
            bytes.extend(b"PAR1");
            bytes
        }),
        prop::collection::vec(any::<u8>(), 0..256),
    ];
    (
        select(UPLOAD_TYPES),
        select(UPLOAD_QUERIES),
        body.prop_map(Blob),
    )
        .boxed()
}

/// A request whose path segments and query string are arbitrary.
#[derive(Debug, Clone)]
struct NamedRequest {
    template: Template,
    first: String,
    second: String,
    query: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Template {
    Page,
    Info,
    Save,
    Delete,
    View,
    Service,
    ClearCache,
    Historical,
}

const TEMPLATES: &[Template] = &[
    Template::Page,
    Template::Info,
    Template::Save,
    Template::Delete,
    Template::View,
    Template::Service,
    Template::ClearCache,
    Template::Historical,
];

/// Names of the fixture's tables, views and service (never deleted: later cases need them).
const NAMES: &[&str] = &[
    "user",
    "content",
    "misc",
    "user_profile",
    "movie_metadata",
    "recommender",
    "user_push",
];

/// The fixture's tables, as `(group, name)`.
const TABLE_PATHS: &[(&str, &str)] = &[
    ("user", "user_profile"),
    ("content", "movie_metadata"),
    ("user_profile", "age"),
];

const QUERY_KEYS: &[&str] = &[
    "limit",
    "offset",
    "columns",
    "features",
    "feature_service",
    "full_feature_names",
    "created_timestamp_cutoff",
];

const QUERY_VALUES: &[&str] = &[
    "-1",
    "0",
    "1",
    "3",
    "10000",
    "10001",
    "18446744073709551615",
    "18446744073709551616",
    "1e3",
    " 1",
    "",
    "true",
    "false",
    "user_id,age",
    "age,age",
    "age,,genre",
    "nope",
    "user_profile:age",
    "recommender",
];

fn segment() -> BoxedStrategy<String> {
    prop_oneof![
        3 => select(NAMES).prop_map(str::to_owned),
        1 => "[A-Za-z0-9_-]{1,12}",
        1 => "[a-z]{126,130}",
        2 => "\\PC{0,10}",
        1 => "(?s).{0,6}",
    ]
    .boxed()
}

fn named_request() -> BoxedStrategy<NamedRequest> {
    let value = prop_oneof![
        3 => select(QUERY_VALUES).prop_map(str::to_owned),
        1 => "\\PC{0,10}",
        1 => "(?s).{0,6}",
    ];
    let name = prop_oneof![4 => select(QUERY_KEYS).prop_map(str::to_owned), 1 => text()];
    let names = prop_oneof![
        1 => select(TABLE_PATHS).prop_map(|(g, n)| (g.to_owned(), n.to_owned())),
        2 => (segment(), segment()),
    ];
    (
        select(TEMPLATES),
        names,
        prop::collection::vec((name, value), 0..4),
    )
        .prop_map(|(template, (first, second), query)| NamedRequest {
            template,
            first,
            second,
            query,
        })
        .boxed()
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

impl NamedRequest {
    fn to_test_request(&self) -> Option<TestRequest> {
        let (a, b) = (encode(&self.first), encode(&self.second));
        let query: Vec<String> = self
            .query
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        let query = query.join("&");
        let with_query = |path: String| format!("{path}?{query}");
        let request = match self.template {
            Template::Page => TestRequest::get().uri(&with_query(format!("/features/{a}/{b}"))),
            Template::Info => {
                TestRequest::get().uri(&with_query(format!("/features/{a}/{b}/info")))
            }
            // Valid names reach the empty-records check (422), so nothing is ever written.
            Template::Save => TestRequest::post()
                .uri(&format!("/features/{a}/{b}"))
                .set_json(json!({"records": []})),
            Template::Delete => {
                if NAMES.contains(&self.second.as_str()) {
                    return None;
                }
                TestRequest::delete().uri(&format!("/features/{a}/{b}"))
            }
            Template::View => TestRequest::get().uri(&format!("/registry/feature-views/{a}")),
            Template::Service => TestRequest::get().uri(&format!("/registry/feature-services/{a}")),
            Template::ClearCache => TestRequest::delete().uri(&format!("/cache/{a}/{b}")),
            Template::Historical => TestRequest::post()
                .uri(&with_query("/get-historical-features".to_owned()))
                .insert_header((CONTENT_TYPE, "application/vnd.apache.parquet"))
                .set_payload(valid_uploads().0.clone()),
        };
        Some(request)
    }
}
