//! Batch lookup: several tables at once, filtered by entity ids and optionally as of a time.
//!
//! Unlike the 2.5 sketch, which filtered a column literally named `entity_id` as strings and
//! returned whole tables otherwise, each table is filtered on its own declared entity key, ids
//! match whether sent as numbers or strings, and a table that cannot be filtered is an error.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, StringArray, UInt32Array};
use arrow::compute::{cast, take_record_batch};
use arrow::datatypes::{DataType, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;

use super::error::{Result, StoreError};
use crate::storage::{StorageError, TableHandle};

/// An entity id as a client sends it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EntityId {
    /// A number.
    Int(i64),
    /// A string.
    Str(String),
}

/// The ids to keep, in the form the key column needs.
enum IdSet {
    Ints(HashSet<i64>),
    Strs(HashSet<String>),
}

impl IdSet {
    fn for_column(column: &DataType, ids: &[EntityId]) -> Self {
        if column.is_integer() {
            IdSet::Ints(
                ids.iter()
                    .filter_map(|id| match id {
                        EntityId::Int(i) => Some(*i),
                        EntityId::Str(s) => s.trim().parse().ok(),
                    })
                    .collect(),
            )
        } else {
            IdSet::Strs(
                ids.iter()
                    .map(|id| match id {
                        EntityId::Int(i) => i.to_string(),
                        EntityId::Str(s) => s.clone(),
                    })
                    .collect(),
            )
        }
    }

    fn mask(&self, keys: &ArrayRef) -> Result<BooleanArray, StorageError> {
        Ok(match self {
            IdSet::Ints(set) => {
                let keys = cast(keys, &DataType::Int64)?;
                let keys = keys.as_any().downcast_ref::<Int64Array>().map(|a| a.iter());
                keys.into_iter()
                    .flatten()
                    .map(|k| Some(k.is_some_and(|k| set.contains(&k))))
                    .collect()
            }
            IdSet::Strs(set) => {
                let keys = cast(keys, &DataType::Utf8)?;
                let keys = keys
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .map(|a| a.iter());
                keys.into_iter()
                    .flatten()
                    .map(|k| Some(k.is_some_and(|k| set.contains(k))))
                    .collect()
            }
        })
    }
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
        Some(ids) => {
            let key = single_key(table)?;
            let key_index = file.column_indices(std::slice::from_ref(&key.to_owned()))?[0];
            let set = IdSet::for_column(file.schema().field(key_index).data_type(), ids);
            file.read_where(&projection, key_index, |keys| set.mask(keys))?
        }
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

fn single_key(table: &TableHandle) -> Result<&str> {
    match table.entity_key.as_slice() {
        [] => Err(StoreError::NoEntityKey {
            table: table.name.to_string(),
        }),
        [key] => Ok(key),
        keys => Err(StoreError::CompositeEntityKey {
            table: table.name.to_string(),
            key: keys.to_vec(),
        }),
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
