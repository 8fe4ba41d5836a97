//! The batch route's `timestamp` lookups (each entity's row as of an instant) answered from
//! the table's kept history: a probe and a binary search per entity instead of decoding and
//! grouping the table per request.
//!
//! The history of a table for batch lookups holds all its columns (the route answers whole
//! rows), keyed by its declared entity key and timestamp field, so it is a different entry
//! from a view's history over the same table. Its first lookup reads the whole table once;
//! later ones on the same version read nothing. The rule is the one of `batch::latest_as_of`:
//! the latest row at or before the instant per key, ties to the later row of the file, rows
//! out in file order. Whatever the history cannot answer identically (no entity key or
//! timestamp field, a whole-table lookup over null keys, a column it cannot read) goes the
//! old way, errors included.

use std::collections::BTreeSet;

use arrow::array::{RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use serde_json::Value;

use super::batch::{EntityId, KeyValue, key_tuples};
use super::error::Result;
use crate::history::{HistoryCache, HistoryKey, HistorySource, ViewHistory};
use crate::storage::{StorageError, TableHandle};

/// The latest row per entity at or before `at` (µs), from the table's history; `None` when
/// the history cannot answer exactly as the table scan would.
pub(super) fn latest_from_history(
    table: &TableHandle,
    histories: &HistoryCache,
    ids: Option<&[EntityId]>,
    at: i64,
) -> Result<Option<RecordBatch>> {
    let Some(timestamp_field) = table.timestamp_field.clone() else {
        return Ok(None);
    };
    if !histories.enabled() || table.entity_key.is_empty() {
        return Ok(None);
    }
    let file = &table.file;
    let key = HistoryKey {
        table: table.name.to_string(),
        version: table.version,
        snapshot: file.snapshot_id(),
        definition: format!(
            "batch keys={:?} ts={timestamp_field:?} all columns",
            table.entity_key
        ),
    };
    let built = histories.get_or_build(&key, || -> std::result::Result<_, BuildFailed> {
        let rows = file
            .read_all(&file.all_columns())
            .map_err(|_| BuildFailed)?;
        ViewHistory::build(HistorySource {
            view: table.name.to_string(),
            rows,
            join_keys: table.entity_key.clone(),
            timestamp_field: timestamp_field.clone(),
            created_timestamp_field: None,
        })
        .map_err(|_| BuildFailed)
    });
    let Ok(history) = built else {
        return Ok(None);
    };
    let groups: BTreeSet<u32> = match ids {
        Some(ids) => {
            let indices = file.column_indices(&table.entity_key)?;
            let schema = file.schema();
            let integer_columns: Vec<bool> = indices
                .iter()
                .map(|i| schema.field(*i).data_type().is_integer())
                .collect();
            let tuples = key_tuples(table, &table.entity_key, &integer_columns, ids)?;
            tuples
                .iter()
                .filter_map(|tuple| {
                    let parts: Vec<Value> = tuple.iter().map(KeyValue::to_json).collect();
                    let refs: Vec<&Value> = parts.iter().collect();
                    history.group_of_json(&refs)
                })
                .collect()
        }
        None => {
            // The table scan keeps a row per null key too; the history has no group for it.
            let rows = history.rows();
            let null_keys = table.entity_key.iter().any(|k| {
                rows.column_by_name(k)
                    .is_none_or(|c| arrow::array::Array::null_count(c.as_ref()) > 0)
            });
            if null_keys {
                return Ok(None);
            }
            (0..history.group_count() as u32).collect()
        }
    };
    let mut rows: Vec<u32> = groups
        .into_iter()
        .filter_map(|g| history.latest_at(g, at, None, false))
        .collect();
    rows.sort_unstable();
    Ok(Some(
        take_record_batch(history.rows(), &UInt32Array::from(rows)).map_err(StorageError::from)?,
    ))
}

/// A history that could not be built: the table scan answers instead (with its own error, if
/// it has one).
struct BuildFailed;
