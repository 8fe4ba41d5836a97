//! `POST /get-historical-features`: training data, point-in-time correct.
//!
//! The request is Feast's `get_historical_features` over HTTP: features (or a service) and
//! entity rows, as columnar JSON like the online call, or as an uploaded Parquet file or Arrow
//! IPC stream (then the other fields are query parameters), or a `start`/`end` window instead
//! of entity rows. The answer's format follows `Accept`: JSON records (capped by
//! `api.max_historical_json_rows`), an Arrow IPC stream (sent in chunks as it is encoded) or a
//! Parquet file.
//!
//! `table_versions` and `snapshot_time` pin the version each view's table is read at; every
//! answer states the versions it read (`metadata.table_versions` in JSON, the
//! `featurestore.table_versions` metadata key in Arrow and Parquet), so sending them back
//! rebuilds the same training set after any later write.

use std::collections::BTreeMap;

use actix_web::http::header::{ACCEPT, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, web};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::ApiError;
use super::online::OrderedEntities;
use super::query::{KnownParams, StrictQuery};
use super::records::{JsonObject, write_records};
use crate::store::{HistoricalEntities, HistoricalQuery, parse_timestamp_micros, to_parquet_bytes};

/// Media type of an Arrow IPC stream.
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";
/// Media type of a Parquet file.
pub const PARQUET: &str = "application/vnd.apache.parquet";

/// Rows per Arrow IPC message when streaming an answer.
const STREAM_CHUNK_ROWS: usize = 64 * 1024;

/// `POST /get-historical-features` with a JSON body.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({
    "features": ["user_profile:age", "user_profile:avg_rating", "movie_metadata:genre"],
    "entities": {"user_id": [1, 1, 2], "movie_id": [10, 11, 10], "event_timestamp": ["2026-11-01T10:00:00Z", "2026-11-15T10:00:00Z", "2026-11-20T08:30:00+02:00"], "label": [1, 0, 1]},
    "full_feature_names": false,
    "table_versions": {"user_profile": 1}
}))]
pub struct HistoricalRequest {
    /// Feature references `view:feature` (or give `feature_service`).
    #[serde(default)]
    pub features: Option<Vec<String>>,
    /// A registered feature service (instead of `features`).
    #[serde(default)]
    pub feature_service: Option<String>,
    /// Columnar entity rows: the join keys, `event_timestamp` (RFC 3339, any offset) and any
    /// other columns (labels), which come back unchanged. Give this or `start` and `end`.
    #[serde(default)]
    #[schema(value_type = Option<std::collections::BTreeMap<String, Vec<super::dto::Scalar>>>)]
    pub entities: Option<OrderedEntities>,
    /// Without `entities`: every entity's rows with an event time at or after this (RFC 3339).
    #[serde(default)]
    pub start: Option<String>,
    /// Without `entities`: ... and at or before this (RFC 3339).
    #[serde(default)]
    pub end: Option<String>,
    /// Name features `view__feature`.
    #[serde(default)]
    pub full_feature_names: bool,
    /// Also exclude feature rows whose created timestamp is after the entity row's timestamp
    /// (values not yet known then, such as backfills).
    #[serde(default)]
    pub created_timestamp_cutoff: bool,
    /// Read these views' tables at these versions (view name → version number, as
    /// `GET /features/{group}/{name}/versions` lists them and every answer's
    /// `metadata.table_versions` states them). Each must be a view the request reads. Wins
    /// over `snapshot_time` for the views it names.
    #[serde(default)]
    #[schema(example = json!({"user_profile": 1}))]
    pub table_versions: Option<BTreeMap<String, u64>>,
    /// Read every view not in `table_versions` as the version of its table that was current
    /// at this instant (RFC 3339). Unrelated to the entity rows' `event_timestamp`: that
    /// chooses rows inside a version, this chooses the version.
    #[serde(default)]
    #[schema(example = "2026-11-30T00:00:00Z")]
    pub snapshot_time: Option<String>,
}

/// Query parameters of an upload (`Content-Type: application/vnd.apache.parquet`,
/// `application/vnd.apache.arrow.stream`, or `application/octet-stream` with either inside);
/// with a JSON body they are ignored. Any other parameter is a 400 `unknown_query_parameter`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoricalParams {
    /// Comma-separated feature references `view:feature`.
    pub features: Option<String>,
    /// A registered feature service (instead of `features`).
    pub feature_service: Option<String>,
    /// Name features `view__feature`.
    pub full_feature_names: Option<bool>,
    /// Also exclude feature rows created after the entity row's timestamp.
    pub created_timestamp_cutoff: Option<bool>,
    /// Comma-separated `view:version` pins, as `table_versions` of the JSON body.
    #[param(example = "user_profile:1,movie_metadata:1")]
    pub table_versions: Option<String>,
    /// Read every view not pinned as the version current at this instant (RFC 3339).
    #[param(example = "2026-11-30T00:00:00Z")]
    pub snapshot_time: Option<String>,
}

impl KnownParams for HistoricalParams {
    const NAMES: &'static [&'static str] = &[
        "features",
        "feature_service",
        "full_feature_names",
        "created_timestamp_cutoff",
        "table_versions",
        "snapshot_time",
    ];
}

/// A file in the body: a Parquet file or an Arrow IPC stream.
#[derive(Debug, ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct BinaryFile(pub Vec<u8>);

/// Facts about a JSON answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoricalMetadata {
    /// Column names, entity columns first.
    pub feature_names: Vec<String>,
    /// Rows returned (one per entity row).
    pub rows: usize,
    /// Entity rows for which at least one view had a value.
    pub matched_rows: usize,
    /// The version of each requested view's table the answer was read from (pinned or
    /// current): send it back as `table_versions` to get the same rows again. Arrow and
    /// Parquet answers carry the same object, as JSON text, under the schema metadata key
    /// `featurestore.table_versions`.
    #[schema(example = json!({"user_profile": 7, "movie_metadata": 3}))]
    pub table_versions: BTreeMap<String, u64>,
    /// The registry version the request was resolved against (metadata key
    /// `featurestore.registry_version` in Arrow and Parquet; `GET /registry/history/{version}`
    /// answers its definitions); absent while nothing was ever applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registry_version: Option<u64>,
}

/// The JSON answer (with `Accept: application/json`, the default).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "metadata": {"feature_names": ["user_id", "movie_id", "event_timestamp", "label", "age", "avg_rating", "genre"], "rows": 1, "matched_rows": 1, "table_versions": {"user_profile": 7, "movie_metadata": 3}},
    "rows": [{"user_id": 1, "movie_id": 10, "event_timestamp": "2026-11-01T10:00:00Z", "label": 1, "age": 34, "avg_rating": 4.2, "genre": "Drama"}]
}))]
pub struct HistoricalResponse {
    /// Facts about the answer.
    pub metadata: HistoricalMetadata,
    /// One object per entity row, in the order sent.
    #[schema(value_type = Vec<super::dto::Record>)]
    pub rows: Vec<serde_json::Value>,
}

/// Point-in-time correct training data (Feast's historical retrieval over HTTP).
///
/// Uploads may also be sent as `application/vnd.apache.parquet` or
/// `application/vnd.apache.arrow.stream`.
///
/// For each entity row and each requested view: the view's row with the same key whose event
/// time is the latest at or before the row's `event_timestamp`, and not older than the view's
/// TTL; ties go to the later created timestamp. Every entity row comes back, in order,
/// duplicates included; without a match its features are null. Send entity rows as JSON
/// columns, or upload them as Parquet or an Arrow IPC stream (features then go in the query
/// string); or send `start` and `end` instead to get every entity's rows in that window. The
/// answer follows `Accept`: JSON (default, capped by `api.max_historical_json_rows`), Arrow IPC
/// stream or Parquet.
///
/// Pin the data: `table_versions` reads the named views at those versions, `snapshot_time`
/// reads every other view as it was at that instant. Every answer states the versions it read
/// (`metadata.table_versions`; in Arrow and Parquet the schema metadata key
/// `featurestore.table_versions`), and the same pins give the same rows, byte for byte as
/// Parquet, after any later push, replace or compaction, while retention
/// (`storage.history`) keeps those versions.
#[utoipa::path(
    post, path = "/get-historical-features", tag = "training",
    params(HistoricalParams),
    request_body(content(
        (HistoricalRequest = "application/json"),
        (BinaryFile = "application/octet-stream"),
    )),
    responses(
        (status = 200, description = "Training data", content(
            (HistoricalResponse = "application/json"),
            (BinaryFile = "application/vnd.apache.arrow.stream"),
            (BinaryFile = "application/vnd.apache.parquet"),
        )),
        (status = 400, description = "Malformed JSON or query parameters, or a query parameter the route does not take (`malformed_json`, `invalid_parameter`, `unknown_query_parameter`); `table_versions` names a view the request does not read (`unknown_pinned_views`, each in `errors`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown feature views, features or service, all named, or a view's table is missing (`unknown_feature_views`, `unknown_features`, `unknown_feature_service`, `table_not_found`); a pinned version was never written, or the table did not exist at `snapshot_time` (`table_version_not_found`: the detail says which versions exist)", body = super::Problem, content_type = "application/problem+json"),
        (status = 409, description = "A requested feature is declared by its view but missing from the table (`view_table_mismatch`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 410, description = "A pinned version, or the one current at `snapshot_time`, is no longer retained (`table_version_expired`: the detail says which versions are)", body = super::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large, or more rows than `api.max_historical_json_rows` asked as JSON: ask for Arrow or Parquet (`payload_too_large`, `result_too_large`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON, Parquet or an Arrow stream (`unsupported_media_type`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 422, description = "No entity rows and no window, an entity column missing or mistyped, a timestamp not RFC 3339, an unreadable upload, both or neither of features and feature_service, a `snapshot_time` that is not RFC 3339 or a `table_versions` value that is not a version number (`invalid_body`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 500, description = "A view's table is unreadable (`table_unreadable`, `internal_error`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 503, description = "A view's table file is being rewritten by another tool; retry (`table_file_changing`). On the s3 kind also when the object store cannot be reached (`storage_unavailable`); retry after `Retry-After` seconds.", body = super::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_historical_features(
    state: web::Data<AppState>,
    req: HttpRequest,
    params: StrictQuery<HistoricalParams>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let limit = state.config.max_body_bytes();
    let body = payload
        .to_bytes_limited(limit)
        .await
        .map_err(|_| ApiError::PayloadTooLarge { limit_bytes: limit })?
        .map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    let content_type = header(&req, CONTENT_TYPE);
    let upload = if content_type.starts_with(PARQUET) {
        Some(HistoricalEntities::Parquet(body.clone()))
    } else if content_type.starts_with(ARROW_STREAM) {
        Some(HistoricalEntities::ArrowStream(body.clone()))
    } else if content_type.starts_with("application/octet-stream") {
        // Generic clients send files as octet-stream: tell the two formats by their magic.
        Some(if body.starts_with(b"PAR1") {
            HistoricalEntities::Parquet(body.clone())
        } else {
            HistoricalEntities::ArrowStream(body.clone())
        })
    } else {
        None
    };
    let query = if let Some(entities) = upload {
        let params = params.into_inner();
        HistoricalQuery {
            features: params
                .features
                .map(|f| f.split(',').map(|s| s.trim().to_owned()).collect()),
            feature_service: params.feature_service,
            entities,
            full_feature_names: params.full_feature_names.unwrap_or(false),
            created_timestamp_cutoff: params.created_timestamp_cutoff.unwrap_or(false),
            table_versions: params
                .table_versions
                .as_deref()
                .map(parse_pins)
                .transpose()?
                .unwrap_or_default(),
            snapshot_time: params
                .snapshot_time
                .as_deref()
                .map(|t| {
                    instant_of(t).ok_or_else(|| ApiError::InvalidParameter {
                        parameter: "snapshot_time".into(),
                        message: format!(
                            "{t:?} is not an RFC 3339 timestamp (e.g. 2026-11-21T00:00:00Z)"
                        ),
                    })
                })
                .transpose()?,
        }
    } else if content_type.is_empty() || content_type.starts_with("application/json") {
        // A large entity list is parsed on the blocking pool, not on the event loop.
        super::body::parse_off_loop(body, json_query).await?
    } else {
        return Err(ApiError::UnsupportedUpload(format!("{content_type:?}")));
    };
    let accept = header(&req, ACCEPT);
    let answer = state.store.historical(query).await?;
    let batch = answer.batch;
    if accept.contains(ARROW_STREAM) {
        return arrow_stream(batch);
    }
    if accept.contains(PARQUET) {
        return parquet_file(&batch);
    }
    let max = state.config.max_historical_json_rows;
    if batch.num_rows() > max {
        return Err(ApiError::ResultTooLarge {
            detail: format!(
                "{} rows is more than api.max_historical_json_rows ({max}) as JSON; ask for Arrow (Accept: {ARROW_STREAM}) or Parquet (Accept: {PARQUET}), which have no limit",
                batch.num_rows()
            ),
        });
    }
    let names: Vec<String> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut out = JsonObject::with_capacity(64 + batch.num_rows() * 96);
    out.field(
        "metadata",
        &HistoricalMetadata {
            feature_names: names,
            rows: batch.num_rows(),
            matched_rows: answer.matched_rows,
            table_versions: answer.table_versions,
            registry_version: answer.registry_version,
        },
    );
    out.raw_field("rows", |o| write_records(&batch, o));
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "application/json"))
        .body(out.finish()))
}

fn header(req: &HttpRequest, name: actix_web::http::header::HeaderName) -> String {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase()
}

fn json_query(body: &[u8]) -> Result<HistoricalQuery, ApiError> {
    let request: HistoricalRequest =
        serde_json::from_slice(body).map_err(super::deserialize_error)?;
    let instant = |field: &str, text: &Option<String>| -> Result<Option<i64>, ApiError> {
        text.as_deref()
            .map(|t| {
                parse_timestamp_micros(t).ok_or_else(|| {
                    ApiError::invalid_body_field(
                        field,
                        format!("{t:?} is not an RFC 3339 timestamp (e.g. 2026-11-21T00:00:00Z)"),
                    )
                })
            })
            .transpose()
    };
    let start = instant("start", &request.start)?;
    let end = instant("end", &request.end)?;
    let snapshot_time = request
        .snapshot_time
        .as_deref()
        .map(|t| {
            instant_of(t).ok_or_else(|| {
                ApiError::invalid_body_field(
                    "snapshot_time",
                    format!("{t:?} is not an RFC 3339 timestamp (e.g. 2026-11-21T00:00:00Z)"),
                )
            })
        })
        .transpose()?;
    let entities = match (request.entities, start, end) {
        (Some(entities), None, None) => HistoricalEntities::Columns(entities.0),
        (None, Some(start_micros), Some(end_micros)) => HistoricalEntities::Window {
            start_micros,
            end_micros,
        },
        (Some(_), _, _) => {
            return Err(ApiError::invalid_body_field(
                "start",
                "give either entities or start and end, not both",
            ));
        }
        (None, _, _) => {
            return Err(ApiError::invalid_body_field(
                "entities",
                "give entity rows (join keys and event_timestamp), or start and end for every entity in that window",
            ));
        }
    };
    Ok(HistoricalQuery {
        features: request.features,
        feature_service: request.feature_service,
        entities,
        full_feature_names: request.full_feature_names,
        created_timestamp_cutoff: request.created_timestamp_cutoff,
        table_versions: request.table_versions.unwrap_or_default(),
        snapshot_time,
    })
}

/// An RFC 3339 instant (any offset) as UTC.
fn instant_of(text: &str) -> Option<DateTime<Utc>> {
    let micros = parse_timestamp_micros(text)?;
    DateTime::from_timestamp_micros(micros)
}

/// The `table_versions` query parameter: `view:version` pairs, comma-separated.
fn parse_pins(text: &str) -> Result<BTreeMap<String, u64>, ApiError> {
    let invalid = |message: String| ApiError::InvalidParameter {
        parameter: "table_versions".into(),
        message,
    };
    let mut pins = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((view, version)) = pair.rsplit_once(':') else {
            return Err(invalid(format!(
                "{pair:?} is not view:version (e.g. user_profile:7)"
            )));
        };
        let version: u64 = version.trim().parse().map_err(|_| {
            invalid(format!(
                "{pair:?}: the version must be a positive integer, got {version:?}"
            ))
        })?;
        if pins.insert(view.trim().to_owned(), version).is_some() {
            return Err(invalid(format!("view {view:?} is pinned twice")));
        }
    }
    Ok(pins)
}

/// The answer as an Arrow IPC stream, encoded chunk by chunk as the client reads it.
fn arrow_stream(batch: RecordBatch) -> Result<HttpResponse, ApiError> {
    let encode_failed = |e: arrow::error::ArrowError| ApiError::Encoding(e.to_string());
    let mut writer = arrow::ipc::writer::StreamWriter::try_new(Vec::new(), &batch.schema())
        .map_err(encode_failed)?;
    let header = Bytes::from(std::mem::take(writer.get_mut()));
    let rows = batch.num_rows();
    let mut offset = 0;
    let mut finished = false;
    let chunks =
        std::iter::once(Ok::<_, std::io::Error>(header)).chain(std::iter::from_fn(move || {
            if finished {
                return None;
            }
            let step = if offset < rows {
                let len = STREAM_CHUNK_ROWS.min(rows - offset);
                let written = writer.write(&batch.slice(offset, len));
                offset += len;
                written
            } else {
                finished = true;
                writer.finish()
            };
            Some(
                step.map(|()| Bytes::from(std::mem::take(writer.get_mut())))
                    .map_err(std::io::Error::other),
            )
        }));
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, ARROW_STREAM))
        .streaming(futures_util::stream::iter(chunks)))
}

/// The answer as one snappy Parquet file.
fn parquet_file(batch: &RecordBatch) -> Result<HttpResponse, ApiError> {
    let bytes = to_parquet_bytes(batch).map_err(|e| ApiError::Encoding(e.to_string()))?;
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, PARQUET))
        .body(bytes))
}
