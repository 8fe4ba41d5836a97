//! `POST /registry/import-feast`: a Feast repository's definitions (the JSON `feast
//! registry-dump` prints) applied, with what cannot be mapped listed.
//!
//! The route copies no data: the dump names files by paths on the machine of whoever ran
//! Feast, and a request body must not make the server read files of its own choosing. Views
//! whose table already exists are applied on it; the others are listed under `skipped` with
//! how to fill them (save the table, or `featurestore import-feast --data` on the server).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::ApiError;
use super::query::{KnownParams, StrictQuery};
use super::registry::{ok_tagged, writer};
use crate::store::{CopyStatus, FeastImport, FeastImportOptions, TableCopy, Unmappable};

/// Query parameters of an import.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportFeastParams {
    /// Answer the plan (what would be applied, what cannot be mapped) and write nothing.
    #[param(example = true)]
    pub dry_run: Option<bool>,
}

impl KnownParams for ImportFeastParams {
    const NAMES: &'static [&'static str] = &["dry_run"];
}

/// What happened to a view's table.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TableImportStatus {
    /// Its rows were copied into a new version (the command line only).
    Copied,
    /// Its rows would be copied (a dry run of the command line).
    WouldCopy,
    /// The table already there is used as it is.
    Kept,
}

/// A view's table.
#[derive(Debug, Serialize, ToSchema)]
pub struct TableImport {
    /// The view.
    pub feature_view: String,
    /// `group/name`.
    pub table: String,
    /// What happened.
    pub status: TableImportStatus,
    /// Why, in words.
    pub message: String,
}

impl From<TableCopy> for TableImport {
    fn from(copy: TableCopy) -> Self {
        Self {
            feature_view: copy.feature_view,
            table: copy.table,
            status: match copy.status {
                CopyStatus::Copied => TableImportStatus::Copied,
                CopyStatus::WouldCopy => TableImportStatus::WouldCopy,
                CopyStatus::NotCopied => TableImportStatus::Kept,
            },
            message: copy.message,
        }
    }
}

/// What an import applied (or, with `dry_run`, would apply), and what it did not.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "project": "rides", "dry_run": false,
    "objects": ["entity driver", "feature view driver_stats", "feature service driver_activity"],
    "created": ["entity driver", "feature view driver_stats", "feature service driver_activity"],
    "updated": [], "unchanged": [],
    "tables": [{"feature_view": "driver_stats", "table": "misc/driver_stats", "status": "kept", "message": "the HTTP import reads no files; the table already there is used"}],
    "skipped": [],
    "unmappable": [{"kind": "on-demand feature view", "name": "trip_fare", "reason": "computed per request by a Python transformation, which featurestore does not run"}],
    "notes": ["entity __dummy: Feast's placeholder for entity-less views, not imported"]
}))]
pub struct ImportFeastResponse {
    /// The Feast project.
    pub project: String,
    /// True when nothing was written.
    pub dry_run: bool,
    /// Every definition applied (or to apply), `kind name`.
    pub objects: Vec<String>,
    /// Objects created (on a dry run: that would be).
    pub created: Vec<String>,
    /// Objects whose definition changed (or would).
    pub updated: Vec<String>,
    /// Objects applied again unchanged.
    pub unchanged: Vec<String>,
    /// Each applied view's table; this route reads no data files, so each is `kept`.
    pub tables: Vec<TableImport>,
    /// Views (and the services reading them) not applied because their table does not
    /// exist, each with how to fill it.
    pub skipped: Vec<Unmappable>,
    /// Feast objects featurestore cannot map (stream and on-demand views, unsupported types,
    /// aliased projections, ...), each with the reason.
    pub unmappable: Vec<Unmappable>,
    /// What is imported with a loss (tags an object type does not keep, ...).
    pub notes: Vec<String>,
}

impl From<FeastImport> for ImportFeastResponse {
    fn from(outcome: FeastImport) -> Self {
        Self {
            project: outcome.project,
            dry_run: outcome.dry_run,
            objects: outcome.objects,
            created: outcome.report.created,
            updated: outcome.report.updated,
            unchanged: outcome.report.unchanged,
            tables: outcome.tables.into_iter().map(TableImport::from).collect(),
            skipped: outcome.skipped,
            unmappable: outcome.unmappable,
            notes: outcome.notes,
        }
    }
}

/// Import a Feast repository's definitions.
///
/// The body is the JSON `feast registry-dump` prints. Entities, batch feature views and
/// feature services are mapped onto registry definitions and applied (an upsert, as
/// `POST /registry/apply`); stream and on-demand views and whatever else cannot be mapped are
/// listed in `unmappable` with the reason. This route reads no data files (paths in a request
/// must not make the server read its own files): a view is applied only when its table
/// already exists, otherwise it is listed in `skipped`. To copy the views' Parquet data too,
/// run `featurestore import-feast DUMP --data REPO` where the files are.
#[utoipa::path(post, path = "/registry/import-feast", tag = "registry",
    params(ImportFeastParams),
    // A dump naming the demo's user_profile table, with the on-demand view and the stream view
    // every real repository has one of; the parameter's example makes it a dry run, so "Try it
    // out" changes nothing.
    request_body(content = Object, description = "The JSON `feast registry-dump` prints", example = json!({
        "project": "movies",
        "entities": [{"spec": {"name": "user_id", "joinKey": "user_id", "valueType": "INT64", "description": "A user of the service"}}],
        "featureViews": [{"spec": {"name": "user_profile", "entities": ["user_id"], "online": true, "ttl": "7776000s",
            "features": [{"name": "age", "valueType": "INT64"}, {"name": "avg_rating", "valueType": "DOUBLE"}],
            "batchSource": {"name": "user_profile_source", "type": "BATCH_FILE", "timestampField": "event_timestamp",
                "fileOptions": {"uri": "data/user_profile.parquet"}}}}],
        "onDemandFeatureViews": [{"spec": {"name": "rating_bucket"}}],
        "featureServices": [{"spec": {"name": "profile_service", "features": [
            {"featureViewName": "user_profile", "featureColumns": [{"name": "age", "valueType": "INT64"}]}]}}]
    })),
    responses(
        (status = 200, description = "Imported (or, with `dry_run`, planned)", body = ImportFeastResponse, headers(("ETag" = String, description = "The registry's version after the import (absent on a dry run)"), ("X-Registry-Version" = u64, description = "The registry version number the import left (absent on a dry run)"))),
        (status = 400, description = "Malformed JSON (`malformed_json`), or an unknown query parameter (`unknown_query_parameter`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json (`unsupported_media_type`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Not a Feast registry dump (`invalid_feast_registry`), or mapped definitions that do not fit the tables, all listed in `errors` (`invalid_definitions`); nothing was written", body = super::Problem, content_type = "application/problem+json"),
        (status = 500, description = "The registry file cannot be written (`registry_unreadable`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 503, description = "On the s3 kind: the object store cannot be reached (`storage_unavailable`), or other replicas kept committing registry changes first for 5 s (`registry_contended`); nothing was written", body = super::Problem, content_type = "application/problem+json"),
    ))]
pub async fn import_feast(
    state: web::Data<AppState>,
    request: HttpRequest,
    params: StrictQuery<ImportFeastParams>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let options = FeastImportOptions {
        data_dir: None,
        dry_run: params.into_inner().dry_run.unwrap_or(false),
        writer: writer(&request),
    };
    let outcome = state
        .store
        .import_feast(
            body.into_inner(),
            options,
            std::sync::Arc::new(|_: &str, _, _| {}),
        )
        .await?;
    let mut response = match &outcome.committed {
        Some(committed) => ok_tagged(&committed.tag, committed.version),
        None => HttpResponse::Ok(),
    };
    Ok(response.json(ImportFeastResponse::from(outcome)))
}
