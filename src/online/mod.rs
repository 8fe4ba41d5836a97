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

pub mod durable;
pub mod merge;
pub mod push_log;
pub mod redis;
pub mod shared_rows;

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, UInt32Array};
use arrow::compute::{cast, take};
use arrow::datatypes::{DataType, Int64Type, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use serde_json::Value;

use crate::model::FeatureView;
use crate::storage::{StorageError, TableFile, micros_type};

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

/// The latest row per key of a set of rows: the rows gathered into one compact batch (laid out
/// as join keys, event timestamp, created timestamp if any, features) and a map into it.
#[derive(Debug)]
struct IndexPart {
    latest: RecordBatch,
    event_micros: arrow::array::PrimitiveArray<TimestampMicrosecondType>,
    map: KeyMap,
}

/// The latest row per entity key of one view, for one table snapshot, plus the rows pushed
/// since (the overlay).
///
/// Pushed rows go into a small overlay instead of rebuilding the whole index, so a push costs
/// the overlay's size; when the overlay outgrows an eighth of the base it is folded in. A probe
/// looks in both and keeps the later event (the overlay on ties: it was written last).
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
    has_created: bool,
    base: Arc<IndexPart>,
    overlay: Option<Arc<IndexPart>>,
}

/// Where a probe found a key: the base part or the overlay, and the row there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    overlay: bool,
    row: u32,
}

/// Integer key values as they come in JSON: numbers, or strings in canonical decimal form
/// (`"01"` and `" 1"` match no key, as in batch lookups).
pub(crate) fn int_part(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => crate::model::canonical_i64(s),
        _ => None,
    }
}

pub(crate) fn str_part(value: &Value) -> Option<std::borrow::Cow<'_, str>> {
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

/// Smallest overlay that is folded into the base; below it, folding would cost more than the
/// probes it saves.
const MIN_FOLD_ROWS: usize = 4096;

fn micros_of(array: &ArrayRef) -> Result<Vec<Option<i64>>, StorageError> {
    let cast = cast(array, &micros_type(array.data_type()))?;
    Ok(cast
        .as_primitive::<TimestampMicrosecondType>()
        .iter()
        .collect())
}

impl IndexPart {
    /// Keeps, per key, the row with the latest event at or before `now_micros` (ties: the
    /// later created timestamp, then the later row). Returns the part and the earliest event
    /// left out for being in the future (`i64::MAX` when none).
    fn from_rows(
        batch: &RecordBatch,
        n_keys: usize,
        has_created: bool,
        now_micros: i64,
    ) -> Result<(Self, Vec<bool>), StorageError> {
        let (part, key_is_int, _) = Self::from_rows_until(batch, n_keys, has_created, now_micros)?;
        Ok((part, key_is_int))
    }

    fn from_rows_until(
        batch: &RecordBatch,
        n_keys: usize,
        has_created: bool,
        now_micros: i64,
    ) -> Result<(Self, Vec<bool>, i64), StorageError> {
        let event = micros_of(batch.column(n_keys))?;
        let created = if has_created {
            Some(micros_of(batch.column(n_keys + 1))?)
        } else {
            None
        };
        let keys: Vec<(ArrayRef, bool)> = (0..n_keys)
            .map(|i| key_column(batch.column(i)))
            .collect::<Result<_, _>>()?;
        let key_is_int: Vec<bool> = keys.iter().map(|(_, is_int)| *is_int).collect();
        let mut valid_until = i64::MAX;
        let timing = Timing {
            event: &event,
            created: created.as_deref(),
            now_micros,
        };
        let rows = batch.num_rows();
        let ints = |i: usize| keys[i].0.as_primitive::<Int64Type>();
        // Typed maps for the common key shapes: no allocation per row (a 1M-row build spent
        // most of its time allocating composite keys).
        let (indices, map) = match (n_keys, key_is_int.as_slice()) {
            (1, [true]) => {
                let column = ints(0);
                let chosen = timing.winners(rows, &mut valid_until, |row| {
                    column.is_valid(row).then(|| column.value(row))
                });
                let indices = rows_of(&chosen);
                (indices, KeyMap::Int(numbered(chosen)))
            }
            (1, [false]) => {
                let column = keys[0].0.as_string::<i32>();
                let chosen = timing.winners(rows, &mut valid_until, |row| {
                    column.is_valid(row).then(|| column.value(row))
                });
                let indices = rows_of(&chosen);
                let owned = chosen.into_iter().map(|(k, row)| (k.to_owned(), row));
                (indices, KeyMap::Str(numbered(owned.collect())))
            }
            (2, [true, true]) => {
                let (a, b) = (ints(0), ints(1));
                let chosen = timing.winners(rows, &mut valid_until, |row| {
                    (a.is_valid(row) && b.is_valid(row)).then(|| (a.value(row), b.value(row)))
                });
                let indices = rows_of(&chosen);
                (indices, KeyMap::IntPair(numbered(chosen)))
            }
            _ => {
                let chosen = timing.winners(rows, &mut valid_until, |row| {
                    keys.iter()
                        .map(|(column, is_int)| {
                            if column.is_null(row) {
                                None
                            } else if *is_int {
                                Some(KeyPart::Int(column.as_primitive::<Int64Type>().value(row)))
                            } else {
                                Some(KeyPart::Str(
                                    column.as_string::<i32>().value(row).to_owned(),
                                ))
                            }
                        })
                        .collect::<Option<Vec<_>>>()
                });
                let indices = rows_of(&chosen);
                (indices, KeyMap::Composite(numbered(chosen)))
            }
        };
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
            None => cast(event_column, &micros_type(event_column.data_type()))?
                .as_primitive::<TimestampMicrosecondType>()
                .clone(),
        };
        Ok((
            Self {
                latest,
                event_micros,
                map,
            },
            key_is_int,
            valid_until,
        ))
    }

    fn len(&self) -> usize {
        self.event_micros.len()
    }

    fn probe(&self, parts: &[&Value], key_is_int: &[bool]) -> Option<u32> {
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
                    .zip(key_is_int)
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

    fn timestamp(&self, row: u32) -> i64 {
        let row = row as usize;
        if row < self.event_micros.len() {
            self.event_micros.value(row)
        } else {
            0
        }
    }

    fn memory_bytes(&self) -> usize {
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
}

/// Event and created times of the rows an index part is built from, and the build time.
struct Timing<'t> {
    event: &'t [Option<i64>],
    created: Option<&'t [Option<i64>]>,
    now_micros: i64,
}

impl Timing<'_> {
    /// Per key (`key_of` gives `None` for rows with a null key part), the row with the latest
    /// event at or before now; ties go to the later created time, then the later row. Returns
    /// `(key, row)` sorted by row, and lowers `valid_until` to the earliest future event.
    fn winners<K: std::hash::Hash + Eq>(
        &self,
        rows: usize,
        valid_until: &mut i64,
        key_of: impl Fn(usize) -> Option<K>,
    ) -> Vec<(K, u32)> {
        let mut best: HashMap<K, (i64, i64, u32)> = HashMap::new();
        for row in 0..rows {
            let Some(ts) = self.event[row] else { continue };
            if ts > self.now_micros {
                // Not yet valid: the index must be rebuilt once the clock reaches it.
                *valid_until = (*valid_until).min(ts);
                continue;
            }
            let Some(key) = key_of(row) else { continue };
            let created = self.created.and_then(|c| c[row]).unwrap_or(i64::MIN);
            let candidate = (ts, created, row as u32);
            best.entry(key)
                .and_modify(|w| {
                    if candidate > *w {
                        *w = candidate;
                    }
                })
                .or_insert(candidate);
        }
        let mut chosen: Vec<(K, u32)> = best.into_iter().map(|(k, (_, _, row))| (k, row)).collect();
        chosen.sort_unstable_by_key(|(_, row)| *row);
        chosen
    }
}

fn rows_of<K>(chosen: &[(K, u32)]) -> UInt32Array {
    UInt32Array::from_iter_values(chosen.iter().map(|(_, row)| *row))
}

/// Key → position among the chosen rows (the row of the gathered batch).
fn numbered<K: std::hash::Hash + Eq>(chosen: Vec<(K, u32)>) -> HashMap<K, u32> {
    chosen
        .into_iter()
        .enumerate()
        .map(|(i, (k, _))| (k, i as u32))
        .collect()
}

/// `batch` with exactly `schema` (same column names and order; types cast where they differ).
fn align(
    batch: &RecordBatch,
    schema: &arrow::datatypes::SchemaRef,
) -> Result<RecordBatch, StorageError> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            let column =
                batch
                    .column_by_name(field.name())
                    .ok_or_else(|| StorageError::InvalidRecords {
                        column: Some(field.name().clone()),
                        row: None,
                        message: format!("column {:?} is missing", field.name()),
                    })?;
            if column.data_type() == field.data_type() {
                Ok(Arc::clone(column))
            } else {
                Ok(cast(column, field.data_type())?)
            }
        })
        .collect::<Result<Vec<_>, StorageError>>()?;
    let options =
        arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &options,
    )?)
}

fn nullable(schema: &arrow::datatypes::Schema) -> arrow::datatypes::SchemaRef {
    Arc::new(arrow::datatypes::Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ))
}

impl ViewIndex {
    /// The columns an index of `view` holds, in its layout: join keys, event timestamp,
    /// created timestamp (if the view has one), then the features `has_column` says exist.
    pub fn layout(
        view: &FeatureView,
        join_keys: &[String],
        has_column: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let mut names: Vec<String> = join_keys.to_vec();
        names.push(view.timestamp_field.clone());
        if let Some(created) = &view.created_timestamp_field {
            names.push(created.clone());
        }
        // Features the table no longer has are left out of the index; asking for them is an
        // error of that request only (see `missing_features`), not of every request.
        names.extend(
            view.features
                .iter()
                .map(|f| f.name.clone())
                .filter(|f| has_column(f)),
        );
        names
    }

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
        let names = Self::layout(view, &join_keys, |f| file.schema().index_of(f).is_ok());
        let projection = file.column_indices(&names)?;
        let batch = file.read_all(&projection)?;
        Self::from_rows(view, join_keys, &batch, version, snapshot, now_micros)
    }

    /// Builds the index from rows already in the index layout (see [`Self::layout`]).
    pub fn from_rows(
        view: &FeatureView,
        join_keys: Vec<String>,
        rows: &RecordBatch,
        version: u64,
        snapshot: u64,
        now_micros: i64,
    ) -> Result<Self, StorageError> {
        let has_created = view.created_timestamp_field.is_some();
        let rows = align(rows, &nullable(&rows.schema()))?;
        let (base, key_is_int, valid_until) =
            IndexPart::from_rows_until(&rows, join_keys.len(), has_created, now_micros)?;
        Ok(Self {
            view: view.clone(),
            version,
            snapshot,
            join_keys,
            valid_until,
            key_is_int,
            has_created,
            base: Arc::new(base),
            overlay: None,
        })
    }

    /// The schema of the index layout, which rows given to [`Self::with_rows`] must match.
    pub fn layout_schema(&self) -> arrow::datatypes::SchemaRef {
        self.base.latest.schema()
    }

    /// This index with `rows` (any columns of the layout present, by name) merged in, now
    /// describing the table snapshot `version`/`snapshot`. Costs the overlay's size, or a fold
    /// of the overlay into the base once it outgrows an eighth of it.
    pub fn with_rows(
        &self,
        rows: &RecordBatch,
        version: u64,
        snapshot: u64,
        now_micros: i64,
    ) -> Result<Self, StorageError> {
        let schema = self.layout_schema();
        let rows = align(rows, &schema)?;
        let pending = match &self.overlay {
            Some(overlay) => arrow::compute::concat_batches(&schema, [&overlay.latest, &rows])?,
            None => rows,
        };
        let n_keys = self.join_keys.len();
        let (overlay, _, future) =
            IndexPart::from_rows_until(&pending, n_keys, self.has_created, now_micros)?;
        let valid_until = self.valid_until.min(future);
        let (base, overlay) = if overlay.len() > MIN_FOLD_ROWS.max(self.base.len() / 8) {
            let all =
                arrow::compute::concat_batches(&schema, [&self.base.latest, &overlay.latest])?;
            let (base, _) = IndexPart::from_rows(&all, n_keys, self.has_created, now_micros)?;
            (Arc::new(base), None)
        } else {
            (Arc::clone(&self.base), Some(Arc::new(overlay)))
        };
        Ok(Self {
            view: self.view.clone(),
            version,
            snapshot,
            join_keys: self.join_keys.clone(),
            valid_until,
            key_is_int: self.key_is_int.clone(),
            has_created: self.has_created,
            base,
            overlay,
        })
    }

    /// The same index, marked as built from another snapshot of the same rows: a fold
    /// rewrites a table's parts into its file without changing a row, and an index rebuilt
    /// for it would only cost a full scan.
    pub fn retagged(&self, version: u64, snapshot: u64) -> Self {
        Self {
            view: self.view.clone(),
            version,
            snapshot,
            join_keys: self.join_keys.clone(),
            valid_until: self.valid_until,
            key_is_int: self.key_is_int.clone(),
            has_created: self.has_created,
            base: Arc::clone(&self.base),
            overlay: self.overlay.clone(),
        }
    }

    /// Every indexed row (the latest per key), base and overlay merged, in the index layout:
    /// what materialization persists.
    pub fn latest_rows(&self, now_micros: i64) -> Result<RecordBatch, StorageError> {
        match &self.overlay {
            None => Ok(self.base.latest.clone()),
            Some(overlay) => {
                let schema = self.layout_schema();
                let all =
                    arrow::compute::concat_batches(&schema, [&self.base.latest, &overlay.latest])?;
                let (merged, _) =
                    IndexPart::from_rows(&all, self.join_keys.len(), self.has_created, now_micros)?;
                Ok(merged.latest)
            }
        }
    }

    /// Requested features of this view that its table does not have (any more).
    pub fn missing_features<'f>(&self, features: impl Iterator<Item = &'f str>) -> Vec<String> {
        features
            .filter(|f| self.base.latest.column_by_name(f).is_none())
            .map(str::to_owned)
            .collect()
    }

    /// Entities indexed (an entity both in the base and the overlay counts twice).
    pub fn len(&self) -> usize {
        self.base.len() + self.overlay.as_ref().map_or(0, |o| o.len())
    }

    /// Whether no entity is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The latest row of the key formed by `parts` (one JSON value per join key), if any.
    pub fn probe(&self, parts: &[&Value]) -> Option<Hit> {
        let base = self.base.probe(parts, &self.key_is_int);
        let Some(overlay) = &self.overlay else {
            return base.map(|row| Hit {
                overlay: false,
                row,
            });
        };
        match (base, overlay.probe(parts, &self.key_is_int)) {
            (Some(b), Some(o)) if self.base.timestamp(b) > overlay.timestamp(o) => Some(Hit {
                overlay: false,
                row: b,
            }),
            (_, Some(o)) => Some(Hit {
                overlay: true,
                row: o,
            }),
            (Some(b), None) => Some(Hit {
                overlay: false,
                row: b,
            }),
            (None, None) => None,
        }
    }

    fn part(&self, hit: Hit) -> &IndexPart {
        match (&self.overlay, hit.overlay) {
            (Some(overlay), true) => overlay,
            _ => &self.base,
        }
    }

    /// The event timestamp (µs) of a hit.
    pub fn timestamp(&self, hit: Hit) -> i64 {
        self.part(hit).timestamp(hit.row)
    }

    /// The column of feature `name` in the base part, if the view serves it.
    pub fn feature_column(&self, name: &str) -> Option<&ArrayRef> {
        self.feature_column_of(false, name)
    }

    fn feature_column_of(&self, overlay: bool, name: &str) -> Option<&ArrayRef> {
        let part = match (&self.overlay, overlay) {
            (Some(o), true) => o.as_ref(),
            _ => self.base.as_ref(),
        };
        self.view
            .features
            .iter()
            .any(|f| f.name == name)
            .then(|| part.latest.column_by_name(name))
            .flatten()
    }

    /// Estimated memory of the whole index: the key maps (by capacity, with the heap of
    /// string keys) and the latest rows (whose event-time column the index reads in place).
    pub fn memory_bytes(&self) -> usize {
        self.base.memory_bytes() + self.overlay.as_ref().map_or(0, |o| o.memory_bytes())
    }

    /// Arrow memory of the index's latest rows.
    pub fn latest_bytes(&self) -> usize {
        self.base.latest.get_array_memory_size()
            + self
                .overlay
                .as_ref()
                .map_or(0, |o| o.latest.get_array_memory_size())
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
    let base_column = index.feature_column(feature)?;
    let overlay_column = index.feature_column_of(true, feature);
    let ttl_micros = index.view.ttl_seconds.filter(|t| *t > 0).map(|t| {
        i64::try_from(t)
            .unwrap_or(i64::MAX / 1_000_000)
            .saturating_mul(1_000_000)
    });
    let n = entity_rows.len();
    let (mut hits, mut statuses, mut timestamps) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let mut any_overlay = false;
    for parts in entity_rows {
        match index.probe(parts) {
            None => {
                hits.push(None);
                statuses.push(FieldStatus::NotFound);
                timestamps.push(0);
            }
            Some(hit) => {
                let ts = index.timestamp(hit);
                let column = if hit.overlay {
                    overlay_column.unwrap_or(base_column)
                } else {
                    base_column
                };
                let status = if ttl_micros.is_some_and(|ttl| ts < now_micros.saturating_sub(ttl)) {
                    FieldStatus::OutsideMaxAge
                } else if column.is_null(hit.row as usize)
                    // A column typed null has no validity buffer: `is_null` says false.
                    || column.data_type() == &arrow::datatypes::DataType::Null
                {
                    FieldStatus::NullValue
                } else {
                    FieldStatus::Present
                };
                any_overlay |= hit.overlay && status == FieldStatus::Present;
                hits.push((status == FieldStatus::Present).then_some(hit));
                statuses.push(status);
                timestamps.push(ts);
            }
        }
    }
    let (column, rows) = match overlay_column {
        // Values come from both parts: gather them into one column for this request.
        Some(overlay) if any_overlay => {
            let sources: [&dyn Array; 2] = [base_column.as_ref(), overlay.as_ref()];
            let picks: Vec<(usize, usize)> = hits
                .iter()
                .flatten()
                .map(|h| (usize::from(h.overlay), h.row as usize))
                .collect();
            let gathered = arrow::compute::interleave(&sources, &picks).ok()?;
            let mut next = 0u32;
            let rows = hits
                .iter()
                .map(|h| {
                    h.map(|_| {
                        next += 1;
                        next - 1
                    })
                })
                .collect();
            (gathered, rows)
        }
        _ => (
            Arc::clone(base_column),
            hits.iter().map(|h| h.map(|h| h.row)).collect(),
        ),
    };
    Some(FeatureColumn {
        name,
        column,
        rows,
        statuses,
        timestamps,
    })
}
