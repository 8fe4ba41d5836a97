//! Batch lookup: several tables at once, filtered by entity ids and optionally as of a time.
//!
//! Unlike the 2.5 sketch, which filtered a column literally named `entity_id` as strings and
//! returned whole tables otherwise, each table is filtered on its own declared entity key, ids
//! match whether sent as numbers or strings (a string matches an integer key only in canonical
//! decimal form), entity rows sent as objects filter composite keys, and a table that cannot
//! be filtered is an error.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, StringArray, UInt32Array};
use arrow::compute::{cast, filter_record_batch, take_record_batch};
use arrow::datatypes::{DataType, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;

use super::FeatureStore;
use super::error::{Result, StoreError};
use super::versions::VersionPins;
use crate::cache::{CacheKey, ReadKind};
use crate::model::{TableName, canonical_i64};
use crate::storage::{StorageError, TableHandle, VersionSelector};

/// A batch lookup over several tables.
#[derive(Debug, Clone)]
pub struct BatchQuery {
    /// Tables to read.
    pub tables: Vec<TableName>,
    /// Keep only rows whose entity key is one of these.
    pub entity_ids: Option<Vec<EntityId>>,
    /// Return, per entity, the row as of this instant (µs since the epoch, UTC).
    pub as_of_micros: Option<i64>,
    /// Which version of each table to read (the current one unless pinned).
    pub versions: VersionPins,
}

/// One table's part of a batch result.
#[derive(Debug, Clone)]
pub struct BatchTable {
    /// The table.
    pub name: String,
    /// Its entity key columns.
    pub entity_key: Vec<String>,
    /// The version the rows were read from.
    pub version: u64,
    /// The rows.
    pub batch: RecordBatch,
}

impl FeatureStore {
    /// Reads several tables, each resolved wherever it is, each at the version `query` pins
    /// (else the current one), each through the cache. All unknown names are reported
    /// together; a pinned version that does not exist (or is no longer retained) fails the
    /// request with that version's error.
    pub async fn batch(&self, query: BatchQuery) -> Result<Vec<BatchTable>> {
        let max_rows = self.max_batch_rows;
        let histories = Arc::clone(&self.histories);
        self.blocking(move |s, cache| {
            let mut handles = Vec::with_capacity(query.tables.len());
            let mut unknown = Vec::new();
            for name in &query.tables {
                let found = match query.versions.selector(name) {
                    VersionSelector::Current => s.get(name),
                    pinned => s.table_at(name, pinned),
                };
                match found {
                    Ok(h) => handles.push(h),
                    Err(StorageError::TableNotFound { .. }) => unknown.push(name.to_string()),
                    Err(e) => return Err(e.into()),
                }
            }
            if !unknown.is_empty() {
                return Err(StoreError::UnknownTables(unknown));
            }
            let ids = query.entity_ids.as_deref().map(canonical_ids);
            handles
                .iter()
                .map(|h| {
                    // The snapshot id in the key keeps a pinned version's rows apart from the
                    // current version's.
                    let key = CacheKey {
                        table: h.name.to_string(),
                        version: h.version,
                        snapshot: h.file.snapshot_id(),
                        kind: ReadKind::Batch {
                            ids: ids.clone(),
                            as_of_micros: query.as_of_micros,
                        },
                    };
                    let batch = match cache.get(&key) {
                        Some((batch, _)) => batch,
                        None => {
                            let batch = lookup_with(
                                h,
                                &histories,
                                query.entity_ids.as_deref(),
                                query.as_of_micros,
                                max_rows,
                            )?;
                            cache.put(key, &batch);
                            batch
                        }
                    };
                    Ok(BatchTable {
                        name: h.name.to_string(),
                        entity_key: h.entity_key.clone(),
                        version: h.version,
                        batch,
                    })
                })
                .collect()
        })
        .await
    }
}

/// An entity id as a client sends it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EntityId {
    /// A number.
    Int(i64),
    /// A string.
    Str(String),
    /// An entity row: key column → its id (an `Int` or `Str`). It filters every table whose
    /// key columns it names, single or composite; members a table is not keyed by are
    /// ignored, so one list of rows can serve tables keyed by different columns.
    Row(BTreeMap<String, EntityId>),
}

/// One id in the form a key column holds: integer columns match integers and strings in
/// canonical decimal form; string columns match strings and integers as decimal text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum KeyValue {
    Int(i64),
    Str(String),
}

impl KeyValue {
    /// The id as JSON, in the form a history's key lookup takes (`history::ViewHistory::group_of_json`).
    pub(super) fn to_json(&self) -> serde_json::Value {
        match self {
            KeyValue::Int(i) => serde_json::Value::from(*i),
            KeyValue::Str(s) => serde_json::Value::from(s.as_str()),
        }
    }

    fn of(id: &EntityId, integer_column: bool) -> Option<Self> {
        match (id, integer_column) {
            (EntityId::Int(i), true) => Some(KeyValue::Int(*i)),
            (EntityId::Str(s), true) => canonical_i64(s).map(KeyValue::Int),
            (EntityId::Int(i), false) => Some(KeyValue::Str(i.to_string())),
            (EntityId::Str(s), false) => Some(KeyValue::Str(s.clone())),
            (EntityId::Row(_), _) => None,
        }
    }
}

/// A key column's values as [`KeyValue`]s (null for a null key, which matches nothing).
fn key_values(keys: &ArrayRef) -> Result<Vec<Option<KeyValue>>, StorageError> {
    if keys.data_type().is_integer() {
        let keys = cast(keys, &DataType::Int64)?;
        Ok(keys
            .as_any()
            .downcast_ref::<Int64Array>()
            .map(|a| a.iter().map(|k| k.map(KeyValue::Int)).collect())
            .unwrap_or_default())
    } else {
        let keys = cast(keys, &DataType::Utf8)?;
        Ok(keys
            .as_any()
            .downcast_ref::<StringArray>()
            .map(|a| {
                a.iter()
                    .map(|k| k.map(|k| KeyValue::Str(k.to_owned())))
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// Keeps the rows whose key is in `set`.
fn mask(set: &HashSet<KeyValue>, keys: &ArrayRef) -> Result<BooleanArray, StorageError> {
    Ok(key_values(keys)?
        .into_iter()
        .map(|k| Some(k.is_some_and(|k| set.contains(&k))))
        .collect())
}

/// The ids of `ids`, one tuple per entity row, in the order of the table's key columns and in
/// the form each column holds; rows that can match nothing (`"01"` for an integer key) are
/// left out.
pub(super) fn key_tuples(
    table: &TableHandle,
    keys: &[String],
    integer_columns: &[bool],
    ids: &[EntityId],
) -> Result<HashSet<Vec<KeyValue>>> {
    let mut tuples = HashSet::with_capacity(ids.len());
    for (i, id) in ids.iter().enumerate() {
        let parts: Vec<&EntityId> = match id {
            EntityId::Row(row) => keys
                .iter()
                .map(|k| {
                    row.get(k).ok_or_else(|| StoreError::InvalidRequest {
                        field: format!("entity_ids[{i}]"),
                        message: format!(
                            "has no {k:?}; table {:?} is keyed by {}",
                            table.name.as_str(),
                            keys.join(", ")
                        ),
                    })
                })
                .collect::<Result<_>>()?,
            scalar if keys.len() == 1 => vec![scalar],
            _ => {
                return Err(StoreError::CompositeEntityKey {
                    table: table.name.to_string(),
                    key: keys.to_vec(),
                });
            }
        };
        let tuple: Option<Vec<KeyValue>> = parts
            .into_iter()
            .zip(integer_columns)
            .map(|(id, integer)| KeyValue::of(id, *integer))
            .collect();
        tuples.extend(tuple);
    }
    Ok(tuples)
}

/// The rows of `table` whose entity key is one of `ids`: the first key column is filtered
/// while reading (row groups without a match are skipped), the rest of a composite key after.
fn read_matching(table: &TableHandle, ids: &[EntityId]) -> Result<RecordBatch> {
    let file = &table.file;
    let keys = table.entity_key.as_slice();
    if keys.is_empty() {
        return Err(StoreError::NoEntityKey {
            table: table.name.to_string(),
        });
    }
    let indices = file.column_indices(keys)?;
    let schema = file.schema();
    let integer_columns: Vec<bool> = indices
        .iter()
        .map(|i| schema.field(*i).data_type().is_integer())
        .collect();
    let tuples = key_tuples(table, keys, &integer_columns, ids)?;
    let first: HashSet<KeyValue> = tuples.iter().map(|t| t[0].clone()).collect();
    let batch = file.read_where(&file.all_columns(), indices[0], |k| mask(&first, k))?;
    if keys.len() == 1 {
        return Ok(batch);
    }
    let columns = indices
        .iter()
        .map(|i| key_values(batch.column(*i)))
        .collect::<Result<Vec<_>, StorageError>>()?;
    let keep: BooleanArray = (0..batch.num_rows())
        .map(|row| {
            let tuple: Option<Vec<KeyValue>> = columns.iter().map(|c| c[row].clone()).collect();
            Some(tuple.is_some_and(|t| tuples.contains(&t)))
        })
        .collect();
    Ok(filter_record_batch(&batch, &keep).map_err(StorageError::from)?)
}

/// Reads one table for a batch request, answering `timestamp` lookups from the table's kept
/// history when it can (see `batch_history`).
fn lookup_with(
    table: &TableHandle,
    histories: &crate::history::HistoryCache,
    entity_ids: Option<&[EntityId]>,
    as_of_micros: Option<i64>,
    max_rows: u64,
) -> Result<RecordBatch> {
    if let Some(at) = as_of_micros
        && let Some(batch) =
            super::batch_history::latest_from_history(table, histories, entity_ids, at)?
    {
        if batch.num_rows() as u64 > max_rows {
            return Err(too_large(table, batch.num_rows() as u64, max_rows));
        }
        return Ok(batch);
    }
    lookup(table, entity_ids, as_of_micros, max_rows)
}

/// Reads one table for a batch request.
pub fn lookup(
    table: &TableHandle,
    entity_ids: Option<&[EntityId]>,
    as_of_micros: Option<i64>,
    max_rows: u64,
) -> Result<RecordBatch> {
    let file = &table.file;
    let projection = file.all_columns();
    let batch = match entity_ids {
        None => {
            if as_of_micros.is_none() && file.row_count() > max_rows {
                return Err(too_large(table, file.row_count(), max_rows));
            }
            file.read_all(&projection)?
        }
        Some(ids) => read_matching(table, ids)?,
    };
    let batch = match as_of_micros {
        Some(at) => latest_as_of(table, &batch, at)?,
        None => batch,
    };
    if batch.num_rows() as u64 > max_rows {
        return Err(too_large(table, batch.num_rows() as u64, max_rows));
    }
    Ok(batch)
}

fn too_large(table: &TableHandle, rows: u64, limit: u64) -> StoreError {
    StoreError::ResultTooLarge {
        table: table.name.to_string(),
        rows,
        limit,
    }
}

/// For each entity key, the row with the latest timestamp at or before `at` (ties: the later
/// row in the file wins, as the later write). Rows come out in file order.
fn latest_as_of(table: &TableHandle, batch: &RecordBatch, at: i64) -> Result<RecordBatch> {
    let no_ts = || StoreError::NoTimestampField {
        table: table.name.to_string(),
    };
    let ts_name = table.timestamp_field.as_deref().ok_or_else(no_ts)?;
    if table.entity_key.is_empty() {
        return Err(StoreError::NoEntityKey {
            table: table.name.to_string(),
        });
    }
    let ts = batch.column_by_name(ts_name).ok_or_else(no_ts)?;
    let ts = cast(ts, &crate::storage::micros_type(ts.data_type())).map_err(StorageError::from)?;
    let ts = ts
        .as_any()
        .downcast_ref::<arrow::array::PrimitiveArray<TimestampMicrosecondType>>();
    let Some(ts) = ts else { return Err(no_ts()) };
    let keys: Vec<ArrayRef> = table
        .entity_key
        .iter()
        .filter_map(|k| batch.column_by_name(k).map(Arc::clone))
        .collect();
    let converter = arrow::row::RowConverter::new(
        keys.iter()
            .map(|k| arrow::row::SortField::new(k.data_type().clone()))
            .collect(),
    )
    .map_err(StorageError::from)?;
    let rows = converter
        .convert_columns(&keys)
        .map_err(StorageError::from)?;
    let mut best: std::collections::HashMap<arrow::row::Row<'_>, (i64, u32)> =
        std::collections::HashMap::new();
    for i in 0..batch.num_rows() {
        if ts.is_null(i) || ts.value(i) > at {
            continue;
        }
        let t = ts.value(i);
        let entry = best.entry(rows.row(i)).or_insert((t, i as u32));
        if t >= entry.0 {
            *entry = (t, i as u32);
        }
    }
    let mut indices: Vec<u32> = best.into_values().map(|(_, i)| i).collect();
    indices.sort_unstable();
    Ok(take_record_batch(batch, &UInt32Array::from(indices)).map_err(StorageError::from)?)
}

/// Ids in a canonical form for the cache key: typed, sorted, deduplicated.
fn canonical_ids(ids: &[EntityId]) -> Vec<String> {
    fn one(id: &EntityId) -> String {
        match id {
            EntityId::Int(i) => format!("i:{i}"),
            EntityId::Str(s) => format!("s:{s:?}"),
            // Members are in key order (a `BTreeMap`); quoting keeps the parts unambiguous.
            EntityId::Row(row) => {
                let members: Vec<String> = row
                    .iter()
                    .map(|(k, v)| format!("{k:?}={}", one(v)))
                    .collect();
                format!("r:{{{}}}", members.join(","))
            }
        }
    }
    let mut out: Vec<String> = ids.iter().map(one).collect();
    out.sort_unstable();
    out.dedup();
    out
}
