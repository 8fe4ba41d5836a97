//! `POST /get-online-features`: Feast's online request and column-major response.
//!
//! Feast clients (including Feast's own SDK with a `remote` online store) send this request
//! unchanged; fields we do not use (`include_feature_view_version_metadata`, ...) are
//! accepted. Unlike Feast, a value older than its view's TTL is `OUTSIDE_MAX_AGE` with a null
//! value, and client errors are 4xx problems, never a 500 with a string body.

use std::collections::BTreeMap;
use std::fmt;

use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpResponse, web};

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use super::records::{JsonObject, cell_writer, normalise, write_json_str, write_rfc3339_utc};
use crate::store::{FieldStatus, OnlineAnswer, OnlineQuery};

const EPOCH: &str = "1970-01-01T00:00:00Z";

/// Join key → values, in the order the client sent the keys (a JSON object keeps its order
/// on the wire; `serde_json::Map` would sort it).
#[derive(Debug, Default, Clone)]
pub struct OrderedEntities(pub Vec<(String, Vec<Value>)>);

impl<'de> Deserialize<'de> for OrderedEntities {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Columns;
        impl<'de> Visitor<'de> for Columns {
            type Value = OrderedEntities;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object mapping each join key to a list of values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedEntities, A::Error> {
                let mut out = Vec::new();
                while let Some((key, values)) = map.next_entry::<String, Vec<Value>>()? {
                    out.push((key, values));
                }
                Ok(OrderedEntities(out))
            }
        }
        deserializer.deserialize_map(Columns)
    }
}

/// Response layout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// Feast's column-major `results` (default).
    #[default]
    Columns,
    /// One object per entity row, with each feature's status beside it:
    /// `{"rows": [{"user_id": 1, "age": 34}], "statuses": [{"age": "PRESENT"}]}`.
    Rows,
}

/// `POST /get-online-features`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({
    "features": ["user_profile:age", "user_profile:avg_rating", "movie_metadata:genre"],
    "entities": {"user_id": [1, 2], "movie_id": [10, 11]},
    "full_feature_names": false
}))]
pub struct OnlineFeaturesRequest {
    /// Feature references `view:feature` (or give `feature_service`).
    #[serde(default)]
    pub features: Option<Vec<String>>,
    /// A registered feature service (instead of `features`).
    #[serde(default)]
    pub feature_service: Option<String>,
    /// Columnar entity rows: join key → one value per row; every requested view's join keys
    /// must be present, all lists of the same length.
    #[schema(value_type = std::collections::BTreeMap<String, Vec<super::dto::EntityIdDto>>)]
    pub entities: OrderedEntities,
    /// Name features `view__feature`.
    #[serde(default)]
    pub full_feature_names: bool,
    /// `columns` (Feast's shape, default) or `rows`.
    #[serde(default)]
    pub layout: Layout,
    /// Answer as of this RFC 3339 instant instead of now: each entity's row at or before it
    /// (the point-in-time rule of historical retrieval), TTL measured from it. Read from the
    /// history of each view's current table version: rows pushed only online are not seen.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime, example = "2026-11-20T10:00:00Z")]
    pub as_of: Option<Value>,
    /// Answer each feature's N latest values per entity row (at or before `as_of` when given),
    /// newest first, 1 to `api.max_last_n` (default 100): feature values, statuses and event
    /// times become lists (see `OnlineSeriesResponse` and `OnlineSeriesRowsResponse`); an
    /// entity without values gets empty lists.
    #[serde(default)]
    #[schema(value_type = Option<u32>, minimum = 1, example = 10)]
    pub last_n: Option<Value>,
}

/// Feature names of the answer, entity keys first.
#[derive(Debug, Serialize, ToSchema)]
pub struct OnlineMetadata {
    /// Names in the order of `results`.
    pub feature_names: Vec<String>,
}

/// One column of the answer: its value, status and event time per entity row.
#[derive(Debug, Serialize, ToSchema)]
pub struct OnlineResult {
    /// One value per entity row (null unless PRESENT).
    #[schema(value_type = Vec<super::dto::Scalar>)]
    pub values: Vec<Value>,
    /// `PRESENT`, `NULL_VALUE`, `NOT_FOUND` or `OUTSIDE_MAX_AGE`, per row.
    pub statuses: Vec<String>,
    /// RFC 3339 event time of the value, per row (the epoch when not found).
    pub event_timestamps: Vec<String>,
}

/// Column-major answer (Feast's shape): `results[i]` belongs to `metadata.feature_names[i]`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "metadata": {"feature_names": ["user_id", "age", "avg_rating"]},
    "results": [
        {"values": [1, 999], "statuses": ["PRESENT", "PRESENT"], "event_timestamps": ["1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"]},
        {"values": [34, null], "statuses": ["PRESENT", "NOT_FOUND"], "event_timestamps": ["2026-11-20T10:00:00Z", "1970-01-01T00:00:00Z"]},
        {"values": [4.2, null], "statuses": ["PRESENT", "NOT_FOUND"], "event_timestamps": ["2026-11-20T10:00:00Z", "1970-01-01T00:00:00Z"]}
    ]
}))]
pub struct OnlineFeaturesResponse {
    /// Names of the result columns.
    pub metadata: OnlineMetadata,
    /// One entry per name.
    pub results: Vec<OnlineResult>,
}

/// Row-major answer (`"layout": "rows"`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "rows": [{"user_id": 1, "age": 34, "favorite_genre": null}, {"user_id": 2, "age": null, "favorite_genre": null}, {"user_id": 999, "age": null, "favorite_genre": null}],
    "statuses": [{"age": "PRESENT", "favorite_genre": "NULL_VALUE"}, {"age": "OUTSIDE_MAX_AGE", "favorite_genre": "OUTSIDE_MAX_AGE"}, {"age": "NOT_FOUND", "favorite_genre": "NOT_FOUND"}]
}))]
pub struct OnlineRowsResponse {
    /// One object per entity row: join keys, then features (null unless PRESENT).
    #[schema(value_type = Vec<super::dto::Record>)]
    pub rows: Vec<Value>,
    /// One object per entity row, in the order of `rows`: feature → its status (`PRESENT`,
    /// `NULL_VALUE`, `NOT_FOUND` or `OUTSIDE_MAX_AGE`), so a stored null, a missing entity and
    /// an expired value stay distinguishable although all three are null in `rows`.
    pub statuses: Vec<BTreeMap<String, String>>,
}

// Documentation only: the body is written by `columns_body` / `rows_body`. (A `//` comment,
// so that the function names stay out of the OpenAPI text.)
/// The 200 answer of `/get-online-features`: column-major (default) or rows.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
#[schema(as = OnlineAnswer)]
pub enum OnlineAnswerDoc {
    // The list-valued shapes first: they require `last_n`, which the plain ones never have, so
    // a client trying the shapes in this order (as generated ones do) reads each answer as the
    // shape it is; the plain shapes would accept a list-valued answer too.
    /// With `last_n`, `"layout": "columns"`: feature columns hold a list per entity row.
    Series(super::online_history::OnlineSeriesResponse),
    /// With `last_n`, `"layout": "rows"`: each feature a list, event times beside.
    SeriesRows(super::online_history::OnlineSeriesRowsResponse),
    /// `"layout": "columns"` (Feast's shape).
    Columns(OnlineFeaturesResponse),
    /// `"layout": "rows"`.
    Rows(OnlineRowsResponse),
}

/// Latest feature values per entity, with TTL enforced (Feast-compatible).
///
/// For each entity row, the latest value of each feature at or before now. A value older than
/// its view's TTL is `OUTSIDE_MAX_AGE` and null; a missing key is `NOT_FOUND`; a null value is
/// `NULL_VALUE`. Views keyed by several entities take every join key.
///
/// `as_of` answers as of that instant instead of now (TTL measured from it); `last_n` answers
/// each feature's N latest values per entity row, newest first, as lists. Both read the history
/// of each view's current table version (rows pushed only online are not in it). Without them
/// the answer is exactly the plain lookup's.
#[utoipa::path(
    post, path = "/get-online-features", tag = "serving",
    request_body = OnlineFeaturesRequest,
    responses(
        (status = 200, description = "Column-major answer, or `{rows: [...], statuses: [...]}` with `\"layout\": \"rows\"`; with `last_n`, feature values, statuses and event times are lists and the answer carries `last_n` (`OnlineSeriesResponse`, or `OnlineSeriesRowsResponse` with `event_timestamps` beside `rows`)", body = OnlineAnswerDoc),
        (status = 400, description = "Malformed JSON (`malformed_json`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown feature views, features or service, all named (`unknown_feature_views`, `unknown_features`, `unknown_feature_service`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 409, description = "A requested feature is declared by its view but missing from the table (`view_table_mismatch`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large (`payload_too_large`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not application/json (`unsupported_media_type`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A join key is missing, entity columns differ in length, too many entity rows, both or neither of features and feature_service, one feature name from two views without full_feature_names, an `as_of` that is not RFC 3339, or a `last_n` that is not an integer from 1 to `api.max_last_n` (`invalid_body`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 500, description = "A view's table is unreadable (`table_unreadable`, `internal_error`)", body = super::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The table's file is being rewritten in place by another tool; retry (`table_file_changing`). On the s3 kind also when the object store cannot be reached (`storage_unavailable`); retry after `Retry-After` seconds.", body = super::Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_online_features(
    state: web::Data<AppState>,
    // Not `web::Json`: it reserves an 8 KiB buffer for every body, and that large
    // allocation made glibc consolidate the small chunks a lookup frees (1-2 % of a lookup's
    // CPU); this extractor reads the ~200-byte body into a buffer of its size.
    body: super::body::BlockingJson<OnlineFeaturesRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let rows = body.entities.0.first().map_or(0, |(_, v)| v.len());
    if rows > state.config.max_online_entity_rows {
        return Err(ApiError::invalid_body_field(
            "entities",
            format!(
                "{rows} entity rows is more than api.max_online_entity_rows ({})",
                state.config.max_online_entity_rows
            ),
        ));
    }
    let layout = body.layout;
    let when = super::online_history::when(body.as_of, body.last_n, state.config.max_last_n)?;
    let query = OnlineQuery {
        features: body.features,
        feature_service: body.feature_service,
        entities: body.entities.0,
        full_feature_names: body.full_feature_names,
    };
    if when.is_set() {
        // Boxed: its state would otherwise be inlined into this handler's future, which actix
        // allocates on every request (a large allocation costs the plain lookup's hot path).
        return Box::pin(super::online_history::respond(&state, query, when, layout)).await;
    }
    let answer = state.store.online_features(query).await?;
    let out = match layout {
        Layout::Columns => columns_body(&answer),
        Layout::Rows => rows_body(&answer),
    };
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "application/json"))
        .body(out))
}

/// Writes an event time, or the epoch for "no value" (Feast's convention).
pub(super) fn write_timestamp(out: &mut Vec<u8>, micros: i64) {
    if micros == 0 {
        write_json_str(out, EPOCH);
    } else {
        write_rfc3339_utc(out, micros);
    }
}

pub(super) fn write_list<T>(
    out: &mut Vec<u8>,
    items: &[T],
    mut write: impl FnMut(&mut Vec<u8>, &T),
) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write(out, item);
    }
    out.push(b']');
}

/// Writes the column-major answer into one buffer. Every piece is appended in place (no
/// per-result buffers): on a 1-entity lookup, the answer's allocations and copies were the
/// largest cost of the handler.
pub(super) fn columns_body(answer: &OnlineAnswer) -> Vec<u8> {
    let rows = answer.entities.first().map_or(0, |(_, v)| v.len());
    let results = answer.entities.len() + answer.features.len();
    let mut out = Vec::with_capacity(64 + results * (96 + rows * 48));
    let mut timestamps = TimestampMemo::default();
    write_columns_head(
        &mut out,
        &answer.entities,
        answer.features.iter().map(|f| f.name.as_str()),
    );
    let mut first = answer.entities.is_empty();
    for feature in &answer.features {
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        let column = normalise(&feature.column);
        let write_cell = cell_writer(column.as_ref());
        out.extend_from_slice(b"{\"values\":");
        write_list(&mut out, &feature.rows, |o, row| match row {
            Some(r) => write_cell(o, *r as usize),
            None => o.extend_from_slice(b"null"),
        });
        out.extend_from_slice(b",\"statuses\":");
        write_list(&mut out, &feature.statuses, |o, s| write_status(o, *s));
        out.extend_from_slice(b",\"event_timestamps\":");
        write_list(&mut out, &feature.timestamps, |o, t| {
            timestamps.write(o, *t)
        });
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    out
}

/// Writes what every column-major answer starts with: `metadata.feature_names` (the entity
/// keys, then `features`) and the entity key columns, each value `PRESENT` at the epoch as
/// Feast answers them. The caller appends the feature columns (each after a comma when any
/// column precedes it) and the closing `]}`.
pub(super) fn write_columns_head<'a>(
    out: &mut Vec<u8>,
    entities: &'a [(String, Vec<Value>)],
    features: impl Iterator<Item = &'a str>,
) {
    out.extend_from_slice(b"{\"metadata\":{\"feature_names\":[");
    let names = entities.iter().map(|(k, _)| k.as_str()).chain(features);
    for (i, name) in names.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_str(out, name);
    }
    out.extend_from_slice(b"]},\"results\":[");
    for (i, (_, values)) in entities.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"values\":");
        if serde_json::to_writer(&mut *out, values).is_err() {
            out.extend_from_slice(b"null");
        }
        out.extend_from_slice(b",\"statuses\":");
        write_list(out, values, |o, _| o.extend_from_slice(b"\"PRESENT\""));
        out.extend_from_slice(b",\"event_timestamps\":");
        write_list(out, values, |o, _| write_json_str(o, EPOCH));
        out.push(b'}');
    }
}

/// Remembers the last event time written: the features of one view share each entity row's
/// event time, so most timestamps of an answer repeat the previous one and are copied, not
/// formatted again.
#[derive(Default)]
struct TimestampMemo {
    micros: Option<i64>,
    text: Vec<u8>,
}

impl TimestampMemo {
    fn write(&mut self, out: &mut Vec<u8>, micros: i64) {
        if self.micros != Some(micros) {
            self.text.clear();
            write_timestamp(&mut self.text, micros);
            self.micros = Some(micros);
        }
        out.extend_from_slice(&self.text);
    }
}

pub(super) fn write_status(out: &mut Vec<u8>, status: FieldStatus) {
    out.push(b'"');
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b'"');
}

pub(super) fn rows_body(answer: &OnlineAnswer) -> Vec<u8> {
    let rows = answer.entities.first().map_or(0, |(_, v)| v.len());
    let columns: Vec<_> = answer
        .features
        .iter()
        .map(|f| normalise(&f.column))
        .collect();
    let writers: Vec<_> = columns.iter().map(|c| cell_writer(c.as_ref())).collect();
    let mut body = JsonObject::with_capacity(64 + rows * 64);
    body.raw_field("rows", |out| {
        out.push(b'[');
        for row in 0..rows {
            if row > 0 {
                out.push(b',');
            }
            let mut object = JsonObject::with_capacity(128);
            for (key, values) in &answer.entities {
                object.field(key, &values[row]);
            }
            for (feature, write) in answer.features.iter().zip(&writers) {
                object.raw_field(&feature.name, |o| match feature.rows[row] {
                    Some(r) => write(o, r as usize),
                    None => o.extend_from_slice(b"null"),
                });
            }
            out.extend_from_slice(&object.finish());
        }
        out.push(b']');
    });
    body.raw_field("statuses", |out| {
        out.push(b'[');
        for row in 0..rows {
            if row > 0 {
                out.push(b',');
            }
            out.push(b'{');
            for (i, feature) in answer.features.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json_str(out, &feature.name);
                out.push(b':');
                write_status(out, feature.statuses[row]);
            }
            out.push(b'}');
        }
        out.push(b']');
    });
    body.finish()
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, SecondsFormat};

    use super::*;

    fn formatted(micros: i64) -> String {
        let mut out = Vec::new();
        write_timestamp(&mut out, micros);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn timestamps_match_rfc3339_with_fractions_only_when_present() {
        for micros in [
            1_764_000_000_000_000i64,
            1_764_000_000_123_456,
            1_764_000_000_120_000,
            1_764_000_000_000_001,
            5,
        ] {
            let expected = DateTime::from_timestamp_micros(micros)
                .map(|t| format!("\"{}\"", t.to_rfc3339_opts(SecondsFormat::AutoSi, true)))
                .unwrap_or_default();
            assert_eq!(formatted(micros), expected);
        }
        assert_eq!(formatted(0), "\"1970-01-01T00:00:00Z\"");
        assert_eq!(formatted(1_764_000_000_000_000), "\"2025-11-24T16:00:00Z\"");
        assert_eq!(
            formatted(1_764_000_000_500_000),
            "\"2025-11-24T16:00:00.500Z\""
        );
    }
}
