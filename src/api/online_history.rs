//! `as_of` and `last_n` on `POST /get-online-features`: parsing the two fields, and writing
//! the list-valued answer of `last_n` in both layouts.
//!
//! `as_of` alone answers in exactly the shapes of a plain lookup (one value per entity row and
//! feature). `last_n` turns each feature's value, status and event time into a list, newest
//! first: in the columns layout `results[i].values[row]`, `.statuses[row]` and
//! `.event_timestamps[row]` are lists (entity key columns stay scalars); in the rows layout
//! `rows[r][feature]` and `statuses[r][feature]` are lists and a third array,
//! `event_timestamps[r][feature]`, holds the event times. An entity without values gets empty
//! lists: a list's length is the number of values there are, never padded with `NOT_FOUND`.
//! A `last_n` answer also carries `"last_n": N` at its top level: the only field a plain
//! answer never has, so a client (a generated one tries the shapes in the spec's order) can
//! tell the list-valued shapes from the plain ones.

use std::collections::BTreeMap;

use actix_web::HttpResponse;
use actix_web::http::header::CONTENT_TYPE;
use chrono::DateTime;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiError;
use super::online::{
    Layout, OnlineMetadata, OnlineResult, columns_body, rows_body, write_columns_head,
    write_status, write_timestamp,
};
use super::records::{JsonObject, cell_writer, normalise, write_json_str};
use crate::store::{
    FeatureSeries, OnlineHistoryAnswer, OnlineQuery, OnlineSeriesAnswer, OnlineWhen,
};

/// Reads `as_of` (RFC 3339) and `last_n` (1 to `max_last_n`) from the request; null or absent
/// is "not asked". A bad value is a 422 naming its field.
pub(super) fn when(
    as_of: Option<Value>,
    last_n: Option<Value>,
    max_last_n: usize,
) -> Result<OnlineWhen, ApiError> {
    let as_of_micros = match as_of {
        None | Some(Value::Null) => None,
        Some(value) => {
            let parsed = value
                .as_str()
                .and_then(|text| DateTime::parse_from_rfc3339(text.trim()).ok());
            match parsed {
                Some(instant) => Some(instant.timestamp_micros()),
                None => {
                    return Err(ApiError::invalid_body_field(
                        "as_of",
                        format!(
                            "must be an RFC 3339 instant such as 2026-12-01T00:00:00Z, got {value}"
                        ),
                    ));
                }
            }
        }
    };
    let last_n = match last_n {
        None | Some(Value::Null) => None,
        Some(value) => {
            let n = value
                .as_u64()
                .filter(|n| *n >= 1 && *n <= max_last_n as u64)
                .ok_or_else(|| {
                    ApiError::invalid_body_field(
                        "last_n",
                        format!(
                            "must be an integer from 1 to api.max_last_n ({max_last_n}), got {value}"
                        ),
                    )
                })?;
            // At most `max_last_n`, a usize: the conversion cannot fail.
            Some(usize::try_from(n).unwrap_or(max_last_n))
        }
    };
    Ok(OnlineWhen {
        as_of_micros,
        last_n,
    })
}

/// Answers a request with `as_of` and/or `last_n` in the asked layout.
pub(super) async fn respond(
    state: &AppState,
    query: OnlineQuery,
    when: OnlineWhen,
    layout: Layout,
) -> Result<HttpResponse, ApiError> {
    let last_n = when.last_n.unwrap_or(1);
    let answer = state.store.online_history(query, when).await?;
    let out = match (&answer, layout) {
        (OnlineHistoryAnswer::Latest(latest), Layout::Columns) => columns_body(latest),
        (OnlineHistoryAnswer::Latest(latest), Layout::Rows) => rows_body(latest),
        (OnlineHistoryAnswer::Series(series), Layout::Columns) => {
            series_columns_body(series, last_n)
        }
        (OnlineHistoryAnswer::Series(series), Layout::Rows) => series_rows_body(series, last_n),
    };
    Ok(HttpResponse::Ok()
        .insert_header((CONTENT_TYPE, "application/json"))
        .body(out))
}

/// Writes each entity row's list of one feature: `item` writes entry `i`.
fn write_lists(
    out: &mut Vec<u8>,
    feature: &FeatureSeries,
    rows: usize,
    mut item: impl FnMut(&mut Vec<u8>, usize),
) {
    out.push(b'[');
    for row in 0..rows {
        if row > 0 {
            out.push(b',');
        }
        write_entries(out, feature, row, &mut item);
    }
    out.push(b']');
}

/// Writes the list of entity row `row` of one feature.
fn write_entries(
    out: &mut Vec<u8>,
    feature: &FeatureSeries,
    row: usize,
    item: &mut impl FnMut(&mut Vec<u8>, usize),
) {
    out.push(b'[');
    for (i, entry) in feature.entries(row).enumerate() {
        if i > 0 {
            out.push(b',');
        }
        item(out, entry);
    }
    out.push(b']');
}

/// The column-major `last_n` answer: entity columns as in a plain lookup, feature columns
/// with a list per entity row.
fn series_columns_body(answer: &OnlineSeriesAnswer, last_n: usize) -> Vec<u8> {
    let rows = answer.entities.first().map_or(0, |(_, v)| v.len());
    let entries: usize = answer.features.iter().map(|f| f.statuses.len()).sum();
    let mut out = Vec::with_capacity(64 + rows * 96 + entries * 64);
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
        write_lists(&mut out, feature, rows, |o, entry| {
            match feature.rows[entry] {
                Some(r) => write_cell(o, r as usize),
                None => o.extend_from_slice(b"null"),
            }
        });
        out.extend_from_slice(b",\"statuses\":");
        write_lists(&mut out, feature, rows, |o, entry| {
            write_status(o, feature.statuses[entry])
        });
        out.extend_from_slice(b",\"event_timestamps\":");
        write_lists(&mut out, feature, rows, |o, entry| {
            write_timestamp(o, feature.timestamps[entry])
        });
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"last_n\":");
    out.extend_from_slice(last_n.to_string().as_bytes());
    out.push(b'}');
    out
}

/// The row-major `last_n` answer: `rows`, `statuses` and `event_timestamps`, one object per
/// entity row, each feature a list.
fn series_rows_body(answer: &OnlineSeriesAnswer, last_n: usize) -> Vec<u8> {
    let rows = answer.entities.first().map_or(0, |(_, v)| v.len());
    let columns: Vec<_> = answer
        .features
        .iter()
        .map(|f| normalise(&f.column))
        .collect();
    let writers: Vec<_> = columns.iter().map(|c| cell_writer(c.as_ref())).collect();
    let entries: usize = answer.features.iter().map(|f| f.statuses.len()).sum();
    let mut body = JsonObject::with_capacity(64 + rows * 64 + entries * 64);
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
                object.raw_field(&feature.name, |o| {
                    write_entries(o, feature, row, &mut |o, entry| match feature.rows[entry] {
                        Some(r) => write(o, r as usize),
                        None => o.extend_from_slice(b"null"),
                    })
                });
            }
            out.extend_from_slice(&object.finish());
        }
        out.push(b']');
    });
    let per_feature = |out: &mut Vec<u8>, item: &dyn Fn(&mut Vec<u8>, &FeatureSeries, usize)| {
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
                write_entries(out, feature, row, &mut |o, entry| item(o, feature, entry));
            }
            out.push(b'}');
        }
        out.push(b']');
    };
    body.raw_field("statuses", |out| {
        per_feature(out, &|o, feature, entry| {
            write_status(o, feature.statuses[entry])
        })
    });
    body.raw_field("event_timestamps", |out| {
        per_feature(out, &|o, feature, entry| {
            write_timestamp(o, feature.timestamps[entry])
        })
    });
    body.field("last_n", &Value::from(last_n));
    body.finish()
}

/// One feature column of a `last_n` answer: per entity row, lists of the N latest values,
/// their statuses and event times, newest first (empty lists when the entity has none).
#[derive(Debug, Serialize, ToSchema)]
pub struct OnlineSeriesResult {
    /// Per entity row, the values, newest first (null unless PRESENT).
    #[schema(value_type = Vec<Vec<super::dto::Scalar>>)]
    pub values: Vec<Value>,
    /// Per entity row, each value's `PRESENT`, `NULL_VALUE` or `OUTSIDE_MAX_AGE`.
    pub statuses: Vec<Vec<String>>,
    /// Per entity row, each value's RFC 3339 event time.
    pub event_timestamps: Vec<Vec<String>>,
}

/// One entry of `results` in a `last_n` answer: an entity key column (scalars, as in a plain
/// lookup) or a feature column (lists).
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum OnlineSeriesColumn {
    /// A feature: lists per entity row.
    Feature(OnlineSeriesResult),
    /// An entity key: one value per entity row.
    EntityKey(OnlineResult),
}

/// Column-major answer with `last_n`: `results[i]` belongs to `metadata.feature_names[i]`;
/// entity key columns hold one value per entity row, feature columns a list per entity row.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "metadata": {"feature_names": ["user_id", "age"]},
    "results": [
        {"values": [1, 999], "statuses": ["PRESENT", "PRESENT"], "event_timestamps": ["1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"]},
        {"values": [[34, 33], []], "statuses": [["PRESENT", "PRESENT"], []], "event_timestamps": [["2026-11-20T10:00:00Z", "2026-10-20T10:00:00Z"], []]}
    ],
    "last_n": 2
}))]
pub struct OnlineSeriesResponse {
    /// Names of the result columns.
    pub metadata: OnlineMetadata,
    /// One entry per name.
    pub results: Vec<OnlineSeriesColumn>,
    /// The `last_n` asked: each list holds at most this many values. Only `last_n` answers
    /// have this field.
    #[schema(minimum = 1)]
    pub last_n: u32,
}

/// Row-major answer with `last_n` (`"layout": "rows"`): per entity row, each feature's values,
/// statuses and event times as lists, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "rows": [{"user_id": 1, "age": [34, 33]}, {"user_id": 999, "age": []}],
    "statuses": [{"age": ["PRESENT", "PRESENT"]}, {"age": []}],
    "event_timestamps": [{"age": ["2026-11-20T10:00:00Z", "2026-10-20T10:00:00Z"]}, {"age": []}],
    "last_n": 2
}))]
pub struct OnlineSeriesRowsResponse {
    /// One object per entity row: join keys (scalars), then each feature's list of values.
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<Value>,
    /// One object per entity row: feature → each value's status.
    pub statuses: Vec<BTreeMap<String, Vec<String>>>,
    /// One object per entity row: feature → each value's RFC 3339 event time.
    pub event_timestamps: Vec<BTreeMap<String, Vec<String>>>,
    /// The `last_n` asked: each list holds at most this many values. Only `last_n` answers
    /// have this field.
    #[schema(minimum = 1)]
    pub last_n: u32,
}
