//! The OpenAPI 3.1 document, generated from the handlers and DTOs.
//!
//! `openapi/openapi.json` in the repository is this document; a test fails when the two
//! differ, and `featurestore openapi` prints it.

use utoipa::OpenApi;
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::{Object, RefOr, Response, Type};

use super::auth::docs::SecurityDocs;
use super::compact;
use super::dto;
use super::error::{FieldError, PROBLEM_JSON, Problem, RETRY_AFTER_SECONDS, RETRYABLE_CODES};
use super::feast_import;
use super::features;
use super::health;
use super::historical;
use super::materialize;
use super::online;
use super::ops;
use super::push;
use super::registry;
use super::registry_history;
use super::stats;
use super::versions;

/// The API document.
#[derive(OpenApi)]
#[openapi(
    info(title = "featurestore", description = "A lightweight, file-system feature store: Parquet tables served over REST. Every error is `application/problem+json` (RFC 9457) with a stable `code`."),
    paths(
        health::health,
        features::list_tables,
        features::get_page,
        features::save_table,
        features::table_info,
        features::delete_table,
        versions::list_versions,
        versions::restore_table,
        versions::diff_versions,
        stats::table_stats,
        stats::table_drift,
        compact::compact_table,
        features::batch,
        online::get_online_features,
        push::push,
        historical::get_historical_features,
        materialize::materialize,
        materialize::materialize_incremental,
        registry::entities,
        registry::feature_views,
        registry::feature_view,
        registry::feature_services,
        registry::feature_service,
        registry::apply,
        feast_import::import_feast,
        registry::delete_feature_view,
        registry::delete_feature_service,
        registry::delete_entity,
        registry_history::history,
        registry_history::version,
        ops::cache_stats,
        ops::clear_cache,
        ops::clear_table_cache,
        ops::performance,
        ops::metrics,
    ),
    components(schemas(Problem, FieldError, dto::EntityIdDto, dto::BatchEntityIdDto, online::OnlineRowsResponse)),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "features", description = "Feature tables: pages, writes, storage info, batch lookup, and their versions (history, pinned reads, restore, diff)"),
        (name = "serving", description = "Feast-compatible online serving, push and materialization"),
        (name = "training", description = "Point-in-time correct training data"),
        (name = "registry", description = "Entities, feature views and feature services"),
        (name = "operations", description = "Cache statistics and control, the performance report, Prometheus metrics"),
    ),
    modifiers(&SecurityDocs, &ProblemExamples, &OperationIds),
)]
pub struct ApiDoc;

/// The document as pretty JSON with a trailing newline, exactly as committed.
pub fn openapi_json() -> String {
    let mut json = ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": {:?}}}", e.to_string()));
    json.push('\n');
    json
}

/// Every problem code the API emits, by status, with an example body. The modifier attaches
/// the examples of a status to every problem response of that status, so each error response
/// in the spec shows what its body looks like.
const PROBLEM_CATALOGUE: &[(u16, &str, &str, &str)] = &[
    (
        400,
        "invalid_name",
        "Invalid name",
        "table name \"../etc\" contains '.'; only ASCII letters, digits, '_' and '-' are allowed",
    ),
    (
        400,
        "invalid_parameter",
        "Invalid query parameter",
        "invalid query parameter \"limit\": must be a non-negative integer, got \"-1\"",
    ),
    (
        400,
        "unknown_query_parameter",
        "Unknown query parameter",
        "unknown query parameter(s) \"user_id\"; this route takes \"columns\", \"limit\", \"offset\", \"version\", \"as_of\"",
    ),
    (
        400,
        "conflicting_parameters",
        "Conflicting query parameters",
        "give only one of \"version\", \"as_of\"",
    ),
    (
        400,
        "unknown_column",
        "Unknown column",
        "unknown column(s) [\"nope\"]; the table has [\"user_id\", \"age\"]",
    ),
    (
        400,
        "malformed_json",
        "Malformed JSON",
        "the request body is not valid JSON: EOF while parsing an object at line 1 column 12",
    ),
    (
        400,
        "unknown_pinned_views",
        "Pinned view not requested",
        "table_versions names movie_metadata, which this request does not read; it reads user_profile",
    ),
    (
        401,
        "unauthorized",
        "Authentication required",
        "this route needs a bearer token: send the header `Authorization: Bearer <token>`",
    ),
    (
        403,
        "forbidden",
        "Insufficient scope",
        "token \"ci-reader\" has scope read; POST /push needs scope write",
    ),
    (
        404,
        "table_not_found",
        "Table not found",
        "table \"user_profiles\" not found",
    ),
    (
        404,
        "table_version_not_found",
        "Table version not found",
        "table \"user_profile\" has no version 9; retained versions: 4 between 1 and 5 (GET .../versions lists them)",
    ),
    (
        404,
        "unknown_feature_tables",
        "Unknown feature tables",
        "unknown feature table(s): nope, missing",
    ),
    (
        404,
        "unknown_push_source",
        "Unknown push source",
        "unknown push source: clicks_push",
    ),
    (
        404,
        "route_not_found",
        "Route not found",
        "no route matches GET /nope",
    ),
    (
        404,
        "registry_version_not_found",
        "Registry version not found",
        "registry version 13 does not exist: versions 3 to 12 are retained",
    ),
    (
        404,
        "stats_disabled",
        "Statistics turned off",
        "statistics are turned off on this server (stats.enabled = false); set it to true (or FEATURESTORE__STATS__ENABLED=true) to compute them with every write",
    ),
    (
        405,
        "method_not_allowed",
        "Method not allowed",
        "PUT is not allowed on /features/user/user_profile",
    ),
    (
        409,
        "view_table_mismatch",
        "Feature view and table disagree",
        "feature view \"user_profile\" declares [\"age\"], but its table has no such column; re-apply the view or restore the column",
    ),
    (
        409,
        "referenced_by_feature_services",
        "Still used by feature services",
        "feature view \"user_profile\" is still used by feature service(s) movie_recommendation_service: delete or change those first",
    ),
    (
        409,
        "referenced_by_feature_views",
        "Still used by feature views",
        "entity \"user_id\" is still used by feature view(s) user_profile, user_movie_interactions: delete or change those first",
    ),
    (
        409,
        "registry_changed",
        "Registry changed since it was read",
        "the registry changed since it was read (expected version 3f2a9c0d1b7e4a55, it is 8b01e6f2c9d4a317 now): read it again and retry",
    ),
    (
        409,
        "registry_conflict",
        "Registry object defined concurrently",
        "entity \"user_id\" was defined differently by another writer while this apply was being committed; nothing was applied: read it again and re-apply if yours should win",
    ),
    (
        409,
        "table_name_conflict",
        "Table name used in another group",
        "table \"user_profile\" already exists in group \"user\"; table names are unique across groups",
    ),
    (
        409,
        "no_previous_version",
        "No earlier version to compare with",
        "table \"user_profile\" has no retained version before version 1 to compare it with; write it again (or name both with ?from=&to=) to see its drift",
    ),
    (
        409,
        "duplicate_table",
        "Table name found in two groups",
        "table \"dup\" exists twice: features/user/dup.parquet is served and features/misc/dup.parquet is ignored (table names are unique across groups); remove or rename one of the files",
    ),
    (
        410,
        "registry_version_expired",
        "Registry version no longer retained",
        "registry version 2 is no longer retained: versions 3 to 12 are retained",
    ),
    (
        410,
        "table_version_expired",
        "Table version no longer retained",
        "version 2 of table \"user_profile\" is no longer retained; retained versions: 10 between 31 and 40 (GET .../versions lists them)",
    ),
    (
        413,
        "payload_too_large",
        "Request body too large",
        "the request body exceeds the limit of 67108864 bytes (api.max_body_mb)",
    ),
    (
        413,
        "result_too_large",
        "Result too large",
        "table \"user_movie_interactions\" would return 1000000 rows, more than the limit of 100000",
    ),
    (
        415,
        "unsupported_media_type",
        "Unsupported media type",
        "unsupported content type (missing or not JSON); send application/json",
    ),
    (
        422,
        "invalid_body",
        "Invalid request body",
        "invalid field \"records\": must contain at least one record",
    ),
    (
        422,
        "invalid_records",
        "Records cannot form a table",
        "column \"age\", row 2: expected an integer like the rows before it, found a string",
    ),
    (
        422,
        "no_entity_key",
        "Table has no entity key",
        "table \"weather\" has no entity key, so it cannot be filtered by entity_ids",
    ),
    (
        422,
        "composite_entity_key",
        "Table has a composite entity key",
        "table \"user_movie_interactions\" is keyed by several columns (user_id, movie_id); send each of entity_ids as an object naming every key column, e.g. {\"user_id\": 1, \"movie_id\": 1}",
    ),
    (
        422,
        "invalid_feast_registry",
        "Not a Feast registry dump",
        "not a Feast registry dump (the JSON `feast registry-dump` prints): missing field `project`",
    ),
    (
        422,
        "feast_data_file_unreadable",
        "Feast data file unreadable",
        "feature view \"driver_stats\": cannot read its data file repo/data/driver_stats.parquet: No such file or directory (os error 2)",
    ),
    (
        422,
        "no_timestamp_field",
        "Table has no timestamp field",
        "table \"weather\" has no timestamp field, so it cannot be read as of a timestamp",
    ),
    (
        500,
        "table_unreadable",
        "Table file unreadable",
        "Parquet error on feature_store/features/user/user_profile.parquet: EOF",
    ),
    (
        500,
        "table_metadata_unreadable",
        "Table metadata unreadable",
        "table metadata error on feature_store/metadata/user/user_profile.json: expected value at line 1 column 1",
    ),
    (
        500,
        "storage_io_error",
        "Storage I/O error",
        "I/O error on feature_store/features/user: ...",
    ),
    (
        500,
        "internal_error",
        "Internal error",
        "internal task failure",
    ),
    (
        503,
        "table_file_changing",
        "Table file being rewritten",
        "the file feature_store/features/misc/shared.parquet is being rewritten by another tool; retry shortly",
    ),
    (
        503,
        "online_store_unavailable",
        "Online store unavailable",
        "the online store is unavailable: could not acquire lock on \"feature_store/online/db\"",
    ),
    (
        503,
        "storage_unavailable",
        "Object store unavailable",
        "the object store is unavailable: connection refused reading tables/user_profile/log",
    ),
    (
        503,
        "storage_contended",
        "Table busy with other writers",
        "table \"user_profile\" is being written by other replicas; retry the write",
    ),
    (
        503,
        "data_root_not_writable",
        "Data root not writable",
        "I/O error on feature_store/features/user: Read-only file system",
    ),
    (
        507,
        "storage_full",
        "No space left for the data",
        "I/O error on feature_store/features/user: No space left on device",
    ),
];

struct ProblemExamples;

impl utoipa::Modify for ProblemExamples {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                for (status, response) in operation.responses.responses.iter_mut() {
                    let RefOr::T(Response {
                        content, headers, ..
                    }) = response
                    else {
                        continue;
                    };
                    if status == "503" {
                        headers.insert("Retry-After".to_owned(), RefOr::T(retry_after_header()));
                    }
                    let Some(RefOr::T(problem)) = content.get_mut(PROBLEM_JSON) else {
                        continue;
                    };
                    for (code_status, code, title, detail) in PROBLEM_CATALOGUE {
                        if status != &code_status.to_string() {
                            continue;
                        }
                        let value = serde_json::json!({
                            "type": format!("/problems/{}", code.replace('_', "-")),
                            "title": title, "status": code_status, "detail": detail, "code": code,
                        });
                        let example = ExampleBuilder::new()
                            .summary(*title)
                            .value(Some(value))
                            .build();
                        problem
                            .examples
                            .insert((*code).to_owned(), RefOr::T(example));
                    }
                }
            }
        }
    }
}

/// The `Retry-After` header of the 503 answers (`ApiError::error_response` sends it).
fn retry_after_header() -> utoipa::openapi::header::Header {
    let codes: Vec<String> = RETRYABLE_CODES.iter().map(|c| format!("`{c}`")).collect();
    HeaderBuilder::new()
        .schema(Some(Object::with_type(Type::Integer)))
        .description(Some(format!(
            "Seconds to wait before retrying; sent with {} (conditions that pass by themselves), not with the 503s that need an operator",
            codes.join(", ")
        )))
        .example(Some(serde_json::json!(RETRY_AFTER_SECONDS)))
        .build()
}

/// Names each operation after its method and path (`getFeaturesByGroupByName`) instead of the
/// handler function utoipa would name it after: the document describes the HTTP API, and a
/// renamed handler must not rename an operation that clients generate code from.
struct OperationIds;

impl utoipa::Modify for OperationIds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                ("get", &mut item.get),
                ("post", &mut item.post),
                ("put", &mut item.put),
                ("delete", &mut item.delete),
                ("patch", &mut item.patch),
            ];
            for (method, operation) in operations {
                if let Some(operation) = operation {
                    operation.operation_id = Some(operation_id(method, path));
                }
            }
        }
    }
}

/// `get` + `/features/{group}/{name}` → `getFeaturesByGroupByName`.
fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_owned();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        let (prefix, word) = match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(parameter) => ("By", parameter),
            None => ("", segment),
        };
        id.push_str(prefix);
        for part in word.split(['-', '_']).filter(|p| !p.is_empty()) {
            let mut chars = part.chars();
            if let Some(first) = chars.next() {
                id.extend(first.to_uppercase());
                id.push_str(chars.as_str());
            }
        }
    }
    id
}

#[cfg(test)]
mod tests {
    use super::operation_id;

    #[test]
    fn operation_ids_follow_method_and_path() {
        assert_eq!(
            operation_id("get", "/features/{group}/{name}"),
            "getFeaturesByGroupByName"
        );
        assert_eq!(
            operation_id("post", "/get-online-features"),
            "postGetOnlineFeatures"
        );
        assert_eq!(
            operation_id("delete", "/registry/feature-views/{name}"),
            "deleteRegistryFeatureViewsByName"
        );
    }
}
