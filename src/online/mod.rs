//! Online serving: per feature view, an in-memory index from entity key to the row of its
//! latest values, so a lookup is hash probes plus a gather, never a Parquet scan.
//!
//! An index is built once per table snapshot (version + file) from every row: for each key,
//! the row with the latest event timestamp at or before the build time wins (ties: the later
//! created timestamp when the view has one, else the later row). Those rows are gathered into
//! one compact batch, and the map points into it. Single-column integer and string keys get
//! typed maps (a string probe borrows the request's `&str`, no allocation); composite keys map
//! a vector of key parts.
//!
//! TTL is enforced on read, not at build time: a value whose event timestamp is older than
//! `now - ttl` is reported `OUTSIDE_MAX_AGE` with a null value (Feast reports it `PRESENT`).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, UInt32Array};
use arrow::compute::{cast, take};
use arrow::datatypes::{DataType, Int64Type, TimeUnit, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use serde_json::Value;

use crate::model::FeatureView;
use crate::storage::{StorageError, TableFile};

/// The status of one value, as Feast names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldStatus {
    /// A value within its TTL.
    Present,
    /// The row exists but the value is null.
    NullValue,
    /// No row for this key.
    NotFound,
    /// The latest value is older than the view's TTL.
    OutsideMaxAge,
}

impl FieldStatus {
    /// Feast's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldStatus::Present => "PRESENT",
            FieldStatus::NullValue => "NULL_VALUE",
            FieldStatus::NotFound => "NOT_FOUND",
            FieldStatus::OutsideMaxAge => "OUTSIDE_MAX_AGE",
        }
    }
}

/// One part of a composite key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum KeyPart {
    Int(i64),
    Str(String),
}

#[derive(Debug)]
enum KeyMap {
    Int(HashMap<i64, u32>),
    Str(HashMap<String, u32>),
    /// Two integer join keys (user × movie): packed, a third of the general map's memory.
    IntPair(HashMap<(i64, i64), u32>),
    Composite(HashMap<Vec<KeyPart>, u32>),
}

/// The latest row per entity key of one view, for one table snapshot.
#[derive(Debug)]
pub struct ViewIndex {
    /// The view definition the index was built for.
    pub view: FeatureView,
    /// Table version built from.
    pub version: u64,
    /// Table file snapshot built from.
    pub snapshot: u64,
    /// Join key columns, in the view's entity order.
    pub join_keys: Vec<String>,
    /// The earliest event time (µs) of a row left out because it was in the future when the
    /// index was built: from then on the index is stale.
    pub valid_until: i64,
    key_is_int: Vec<bool>,
    latest: RecordBatch,
    event_micros: arrow::array::PrimitiveArray<TimestampMicrosecondType>,
    map: KeyMap,
}

/// Integer key values as they come in JSON: numbers, or strings of digits.
fn int_part(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn str_part(value: &Value) -> Option<std::borrow::Cow<'_, str>> {
    match value {
        Value::String(s) => Some(std::borrow::Cow::Borrowed(s)),
        Value::Number(n) => Some(std::borrow::Cow::Owned(n.to_string())),
        _ => None,
    }
}

fn key_column(column: &ArrayRef) -> Result<(ArrayRef, bool), StorageError> {
    if column.data_type().is_integer() {
        Ok((cast(column, &DataType::Int64)?, true))
    } else {
        Ok((cast(column, &DataType::Utf8)?, false))
    }
}

impl ViewIndex {
    /// Builds the index of `view` (whose join keys are `join_keys`) from `file`; rows with an
    /// event timestamp after `now_micros` are left out.
    pub fn build(
        view: &FeatureView,
        join_keys: Vec<String>,
        file: &TableFile,
        version: u64,
        snapshot: u64,
        now_micros: i64,
    ) -> Result<Self, StorageError> {
        let mut names: Vec<String> = join_keys.clone();
        names.push(view.timestamp_field.clone());
        if let Some(created) = &view.created_timestamp_field {
            names.push(created.clone());
        }
        // Features the table no longer has are left out of the index; asking for them is an
        // error of that request only (see `missing_features`), not of every request.
        let available: Vec<String> = view
            .features
            .iter()
            .map(|f| f.name.clone())
            .filter(|f| file.schema().index_of(f).is_ok())
            .collect();
        names.extend(available);
        let projection = file.column_indices(&names)?;
        let batch = file.read_all(&projection)?;
        let n_keys = join_keys.len();
        let micros = |array: &ArrayRef| -> Result<Vec<Option<i64>>, StorageError> {
            let cast = cast(array, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
            Ok(cast
                .as_primitive::<TimestampMicrosecondType>()
                .iter()
                .collect())
        };
        let event = micros(batch.column(n_keys))?;
        let created = match view.created_timestamp_field {
            Some(_) => Some(micros(batch.column(n_keys + 1))?),
            None => None,
        };
        let keys: Vec<(ArrayRef, bool)> = (0..n_keys)
            .map(|i| key_column(batch.column(i)))
            .collect::<Result<_, _>>()?;
        // Winner per key: (event ts, created ts, row).
        let better = |a: (i64, i64, usize), b: (i64, i64, usize)| (b.0, b.1, b.2) > (a.0, a.1, a.2);
        let mut winners: HashMap<Vec<KeyPart>, (i64, i64, usize)> = HashMap::new();
        let mut valid_until = i64::MAX;
        for row in 0..batch.num_rows() {
            let Some(ts) = event[row] else { continue };
            if ts > now_micros {
                // Not yet valid: the index must be rebuilt once the clock reaches it.
                valid_until = valid_until.min(ts);
                continue;
            }
            let mut key = Vec::with_capacity(n_keys);
            for (column, is_int) in &keys {
                if column.is_null(row) {
                    break;
                }
                key.push(if *is_int {
                    KeyPart::Int(column.as_primitive::<Int64Type>().value(row))
                } else {
                    KeyPart::Str(column.as_string::<i32>().value(row).to_owned())
                });
            }
            if key.len() != n_keys {
                continue;
            }
            let candidate = (
                ts,
                created.as_ref().and_then(|c| c[row]).unwrap_or(i64::MIN),
                row,
            );
            winners
                .entry(key)
                .and_modify(|w| {
                    if better(*w, candidate) {
                        *w = candidate;
                    }
                })
                .or_insert(candidate);
        }
        let mut chosen: Vec<(Vec<KeyPart>, usize)> = winners
            .into_iter()
            .map(|(k, (_, _, row))| (k, row))
            .collect();
        chosen.sort_unstable_by_key(|(_, row)| *row);
        let indices = UInt32Array::from_iter_values(chosen.iter().map(|(_, row)| *row as u32));
        let latest_columns: Vec<ArrayRef> = batch
            .columns()
            .iter()
            .map(|c| take(c.as_ref(), &indices, None))
            .collect::<Result<_, _>>()?;
        let latest = RecordBatch::try_new(batch.schema(), latest_columns)?;
        // Event times are read from the latest rows' own column (sharing its buffer), not
        // copied beside it; only a file with another time unit needs a converted copy.
        let event_column = latest.column(n_keys);
        let event_micros = match event_column.as_primitive_opt::<TimestampMicrosecondType>() {
            Some(micros) => micros.clone(),
            None => cast(
                event_column,
                &DataType::Timestamp(TimeUnit::Microsecond, None),
            )?
            .as_primitive::<TimestampMicrosecondType>()
            .clone(),
        };
        let key_is_int: Vec<bool> = keys.iter().map(|(_, is_int)| *is_int).collect();
        let map = match (n_keys, key_is_int.first()) {
            (1, Some(true)) => KeyMap::Int(
                chosen
                    .iter()
                    .enumerate()
                    .filter_map(|(i, (k, _))| match k.first() {
                        Some(KeyPart::Int(v)) => Some((*v, i as u32)),
                        _ => None,
                    })
                    .collect(),
            ),
            (1, Some(false)) => KeyMap::Str(
                chosen
                    .into_iter()
                    .enumerate()
                    .filter_map(|(i, (mut k, _))| match k.pop() {
                        Some(KeyPart::Str(v)) => Some((v, i as u32)),
                        _ => None,
                    })
                    .collect(),
            ),
            (2, _) if key_is_int.iter().all(|i| *i) => KeyMap::IntPair(
                chosen
                    .iter()
                    .enumerate()
                    .filter_map(|(i, (k, _))| match k.as_slice() {
                        [KeyPart::Int(a), KeyPart::Int(b)] => Some(((*a, *b), i as u32)),
                        _ => None,
                    })
                    .collect(),
            ),
            _ => KeyMap::Composite(
                chosen
                    .into_iter()
                    .enumerate()
                    .map(|(i, (k, _))| (k, i as u32))
                    .collect(),
            ),
        };
        Ok(Self {
            view: view.clone(),
            version,
            snapshot,
            join_keys,
            valid_until,
            key_is_int,
            latest,
            event_micros,
            map,
        })
    }

    /// Requested features of this view that its table does not have (any more).
    pub fn missing_features<'f>(&self, features: impl Iterator<Item = &'f str>) -> Vec<String> {
        features
            .filter(|f| self.latest.column_by_name(f).is_none())
            .map(str::to_owned)
            .collect()
    }

    /// Entities indexed.
    pub fn len(&self) -> usize {
        self.event_micros.len()
    }

    /// Whether no entity is indexed.
    pub fn is_empty(&self) -> bool {
        self.event_micros.is_empty()
    }

    /// The latest row of the key formed by `parts` (one JSON value per join key), if any.
    pub fn probe(&self, parts: &[&Value]) -> Option<u32> {
        match &self.map {
            KeyMap::Int(map) => parts
                .first()
                .and_then(|v| int_part(v))
                .and_then(|k| map.get(&k).copied()),
            KeyMap::Str(map) => parts
                .first()
                .and_then(|v| str_part(v))
                .and_then(|k| map.get(k.as_ref()).copied()),
            KeyMap::IntPair(map) => match parts {
                [a, b] => int_part(a)
                    .zip(int_part(b))
                    .and_then(|k| map.get(&k).copied()),
                _ => None,
            },
            KeyMap::Composite(map) => {
                let key: Option<Vec<KeyPart>> = parts
                    .iter()
                    .zip(&self.key_is_int)
                    .map(|(v, is_int)| {
                        if *is_int {
                            int_part(v).map(KeyPart::Int)
                        } else {
                            str_part(v).map(|s| KeyPart::Str(s.into_owned()))
                        }
                    })
                    .collect();
                key.and_then(|k| map.get(&k).copied())
            }
        }
    }

    /// The event timestamp (µs) of an indexed row.
    pub fn timestamp(&self, row: u32) -> i64 {
        let row = row as usize;
        if row < self.event_micros.len() {
            self.event_micros.value(row)
        } else {
            0
        }
    }

    /// The column of feature `name`, if the view serves it.
    pub fn feature_column(&self, name: &str) -> Option<&ArrayRef> {
        self.view
            .features
            .iter()
            .any(|f| f.name == name)
            .then(|| self.latest.column_by_name(name))
            .flatten()
    }

    /// Estimated memory of the whole index: the key map (by capacity, with the heap of string
    /// keys) and the latest rows (whose event-time column the index reads in place).
    pub fn memory_bytes(&self) -> usize {
        use std::mem::size_of;
        // hashbrown keeps one control byte per bucket beside each (key, value) slot.
        let map = match &self.map {
            KeyMap::Int(m) => m.capacity() * (size_of::<(i64, u32)>() + 1),
            KeyMap::Str(m) => {
                m.capacity() * (size_of::<(String, u32)>() + 1)
                    + m.keys().map(String::capacity).sum::<usize>()
            }
            KeyMap::IntPair(m) => m.capacity() * (size_of::<((i64, i64), u32)>() + 1),
            KeyMap::Composite(m) => {
                m.capacity() * (size_of::<(Vec<KeyPart>, u32)>() + 1)
                    + m.keys()
                        .map(|k| {
                            k.capacity() * size_of::<KeyPart>()
                                + k.iter()
                                    .map(|p| match p {
                                        KeyPart::Str(s) => s.capacity(),
                                        KeyPart::Int(_) => 0,
                                    })
                                    .sum::<usize>()
                        })
                        .sum::<usize>()
            }
        };
        map + self.latest.get_array_memory_size()
    }

    /// Arrow memory of the index's latest rows.
    pub fn latest_bytes(&self) -> usize {
        self.latest.get_array_memory_size()
    }
}

/// One requested feature's answer for every entity row.
#[derive(Debug)]
pub struct FeatureColumn {
    /// The name shown to the client (`feature` or `view__feature`).
    pub name: String,
    /// The source column (latest rows of the view); `rows` index into it.
    pub column: ArrayRef,
    /// Per entity row: the row in `column`, when its value is served.
    pub rows: Vec<Option<u32>>,
    /// Per entity row: the status.
    pub statuses: Vec<FieldStatus>,
    /// Per entity row: the event timestamp in µs (0 when not found).
    pub timestamps: Vec<i64>,
}

/// Answers one feature of one view for every entity row.
pub fn lookup<'v, 'p>(
    index: &Arc<ViewIndex>,
    feature: &str,
    name: String,
    entity_rows: impl ExactSizeIterator<Item = &'p [&'v Value]>,
    now_micros: i64,
) -> Option<FeatureColumn>
where
    'v: 'p,
{
    let column = Arc::clone(index.feature_column(feature)?);
    let ttl_micros = index.view.ttl_seconds.filter(|t| *t > 0).map(|t| {
        i64::try_from(t)
            .unwrap_or(i64::MAX / 1_000_000)
            .saturating_mul(1_000_000)
    });
    let n = entity_rows.len();
    let (mut rows, mut statuses, mut timestamps) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for parts in entity_rows {
        match index.probe(parts) {
            None => {
                rows.push(None);
                statuses.push(FieldStatus::NotFound);
                timestamps.push(0);
            }
            Some(row) => {
                let ts = index.timestamp(row);
                let status = if ttl_micros.is_some_and(|ttl| ts < now_micros.saturating_sub(ttl)) {
                    FieldStatus::OutsideMaxAge
                } else if column.is_null(row as usize) {
                    FieldStatus::NullValue
                } else {
                    FieldStatus::Present
                };
                rows.push((status == FieldStatus::Present).then_some(row));
                statuses.push(status);
                timestamps.push(ts);
            }
        }
    }
    Some(FeatureColumn {
        name,
        column,
        rows,
        statuses,
        timestamps,
    })
}
