//! The shared online tier (Redis) beside the local index: which views a lookup must read
//! from Redis, the read itself (one pipelined round trip per request), and the writes of
//! pushes and materializations.
//!
//! The decision (ARCHITECTURE.md, "Online tiers"): each replica's in-memory index serves
//! table rows as on one machine; Redis holds the rows pushed online and materialized. A
//! lookup of a view with no rows in Redis is the local probe alone. Otherwise both answers
//! are merged by event time, and when Redis holds a materialization of the table snapshot
//! this replica serves, Redis alone answers (no index is built, no Parquet read).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use serde_json::Value;

use super::online::{OnlineQuery, Plan};
use crate::model::{FeatureView, TableName};
use crate::online::ViewIndex;
use crate::online::durable::Materialized;
use crate::online::redis::{RedisConfig, RedisOnline, RedisOnlineError, RowRead, codec};
use crate::online::shared_rows::SharedRows;
use crate::storage::Storage;

/// Opens the shared tier and learns which views have rows there. A server that cannot reach
/// Redis starts anyway, serving from its local index and reporting `degraded` until Redis
/// answers; only a configuration that can never work is an error.
pub(super) fn open(config: &RedisConfig) -> crate::store::error::Result<Arc<RedisOnline>> {
    let redis = RedisOnline::open(config)
        .map_err(|e| crate::store::error::StoreError::OnlineStoreUnavailable(e.to_string()))?;
    let first = Arc::clone(&redis);
    match redis.wait(async move { first.refresh_views().await }) {
        Ok(()) => {
            tracing::info!(url = %config.display_url(), "online rows are shared through redis")
        }
        Err(e) => {
            tracing::warn!(error = %e, "redis is not answering; serving from the local index until it does")
        }
    }
    Ok(redis)
}

/// A view a lookup must read from Redis.
#[derive(Debug)]
pub(super) struct SharedView<'r> {
    /// The view.
    pub(super) view: &'r FeatureView,
    /// Its join keys.
    pub(super) join_keys: Vec<String>,
    /// Whether Redis alone answers (it holds a materialization of the current table).
    pub(super) alone: bool,
    /// The index layout's columns, typed as the table has them.
    schema: SchemaRef,
    /// Which join keys are integer columns.
    key_is_int: Vec<bool>,
}

/// The layout columns of `view` that `schema` (the table's) has, typed as there.
fn layout_schema(view: &FeatureView, join_keys: &[String], schema: &Schema) -> Option<SchemaRef> {
    let names = ViewIndex::layout(view, join_keys, |f| schema.index_of(f).is_ok());
    let fields: Option<Vec<_>> = names
        .iter()
        .map(|n| {
            schema
                .field_with_name(n)
                .ok()
                .map(|f| f.clone().with_nullable(true))
        })
        .collect();
    fields.map(|f| Arc::new(Schema::new(f)))
}

/// Whether `record` (a materialization into Redis) holds every row the local index of `view`
/// would: the same definition and keys, the very table snapshot served now, no future row
/// due yet.
fn covers(
    record: &Materialized,
    view: &FeatureView,
    join_keys: &[String],
    table: &crate::storage::TableHandle,
    now_micros: i64,
) -> bool {
    record.view == *view
        && record.join_keys == join_keys
        && record.table_version == table.version
        && record.table_snapshot == table.file.snapshot_id()
        && now_micros < record.valid_until
}

/// Whether Redis alone answers lookups of `view` (see [`covers`]), as this replica last heard.
pub(super) fn answers_alone(
    redis: &RedisOnline,
    storage: &Storage,
    view: &FeatureView,
    join_keys: &[String],
    now_micros: i64,
) -> bool {
    let Ok(name) = view.name.parse::<TableName>() else {
        return false;
    };
    let (Some(state), Some(table)) = (redis.view_state(&view.name), storage.peek(&name)) else {
        return false;
    };
    state
        .materialized
        .as_ref()
        .is_some_and(|record| covers(record, view, join_keys, &table, now_micros))
}

/// The views of `plan` that Redis has rows for, as this replica last heard.
pub(super) fn shared_views<'r>(
    redis: &RedisOnline,
    storage: &Storage,
    plan: &Plan<'r>,
    now_micros: i64,
) -> Vec<SharedView<'r>> {
    if !redis.worth_trying() {
        return Vec::new();
    }
    plan.views()
        .iter()
        .filter_map(|view| {
            let state = redis.view_state(&view.name)?;
            if !state.has_rows {
                return None;
            }
            let view: &'r FeatureView = view;
            let name: TableName = view.name.parse().ok()?;
            // No table: the local path reports it as today.
            let table = storage.peek(&name)?;
            let join_keys = super::online::join_keys(plan, &view.name);
            let schema = layout_schema(view, &join_keys, table.file.schema())?;
            let key_is_int = join_keys
                .iter()
                .map(|k| {
                    schema
                        .field_with_name(k)
                        .is_ok_and(|f| f.data_type().is_integer())
                })
                .collect();
            let alone = state
                .materialized
                .as_ref()
                .is_some_and(|record| covers(record, view, &join_keys, &table, now_micros));
            Some(SharedView {
                view,
                join_keys,
                alone,
                schema,
                key_is_int,
            })
        })
        .collect()
}

/// Reads the rows of every entity of `query` for `views` in one round trip.
pub(super) async fn fetch<'r>(
    redis: &Arc<RedisOnline>,
    query: &OnlineQuery,
    views: &[SharedView<'r>],
) -> Result<HashMap<String, SharedRows<'r>>, RedisOnlineError> {
    let rows = query.entities.first().map_or(0, |(_, v)| v.len());
    let mut reads = Vec::with_capacity(rows * views.len());
    let mut fields = HashMap::with_capacity(views.len());
    // Per view, per entity row: which read asked for it (none for a key no row can have).
    let mut asked: Vec<Vec<Option<usize>>> = Vec::with_capacity(views.len());
    for shared in views {
        let columns: Vec<&Vec<Value>> = shared
            .join_keys
            .iter()
            .filter_map(|k| query.entities.iter().find(|(n, _)| n == k).map(|(_, v)| v))
            .collect();
        let mut per_row = Vec::with_capacity(rows);
        let mut parts = Vec::with_capacity(columns.len());
        for row in 0..rows {
            parts.clear();
            parts.extend(columns.iter().map(|c| &c[row]));
            per_row.push(codec::entity_key(&parts, &shared.key_is_int).map(|entity| {
                reads.push(RowRead {
                    view: shared.view.name.clone(),
                    entity,
                });
                reads.len() - 1
            }));
        }
        asked.push(per_row);
        let names: Vec<String> = shared
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        fields.insert(shared.view.name.clone(), codec::column_fields(&names));
    }
    let mut answers = if reads.is_empty() {
        Vec::new()
    } else {
        redis.read_rows(&reads, &fields).await?
    };
    let mut found_rows = HashMap::with_capacity(views.len());
    for (shared, per_row) in views.iter().zip(asked) {
        let mut texts = Vec::new();
        let mut events = Vec::new();
        let found: Vec<Option<u32>> = per_row
            .into_iter()
            .map(|read| {
                let (event, values) = read.and_then(|i| answers.get_mut(i)?.take())?;
                texts.push(values);
                events.push(event);
                Some((texts.len() - 1) as u32)
            })
            .collect();
        match codec::decode_rows(&shared.schema, &texts) {
            Ok(batch) => {
                found_rows.insert(
                    shared.view.name.clone(),
                    SharedRows::new(shared.view, batch, events, found),
                );
            }
            Err(e) => {
                // Unreadable rows must not fail the lookup: the local index still answers.
                tracing::warn!(view = %shared.view.name, error = %e, "rows in redis do not fit the view's table; answered from the local index");
            }
        }
    }
    Ok(found_rows)
}

/// The rows of a push or materialization, encoded for Redis: the view's layout columns only.
pub(super) fn encode(
    view: &FeatureView,
    join_keys: &[String],
    rows: &arrow::record_batch::RecordBatch,
) -> crate::store::error::Result<Vec<codec::EncodedRow>> {
    let schema = rows.schema();
    let layout = ViewIndex::layout(view, join_keys, |f| schema.index_of(f).is_ok());
    let indices: Vec<usize> = layout
        .iter()
        .filter_map(|n| schema.index_of(n).ok())
        .collect();
    let projected = rows
        .project(&indices)
        .map_err(crate::storage::StorageError::from)?;
    Ok(codec::encode_rows(
        &projected,
        join_keys,
        &view.timestamp_field,
        view.created_timestamp_field.as_deref(),
    )?)
}
