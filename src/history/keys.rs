//! A history's join keys: the view's key values interned once, at build, to dense group ids;
//! and the probes that map a request's keys (Arrow entity columns or JSON values) to them.
//!
//! Keys compare exactly as `offline`'s join compares them: as `i64` when both the view's
//! column and the request's are integers (any width, dictionary-encoded or not), otherwise as
//! text. An integer view column meeting a text request value is therefore still held as
//! `i64`: the text matches when it is the canonical decimal spelling of the integer, which is
//! what comparing the two decimal spellings amounts to, without re-casting the view per
//! request.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};
use serde_json::Value;

use crate::offline::OfflineError;
use crate::offline::keys::{Fast, is_integer};

/// The group of a row whose key is null or unknown.
pub(crate) const NO_GROUP: u32 = u32::MAX;

/// How one key column's values are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Str,
}

/// One part of a composite key of more than two integers or of mixed kinds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Part {
    Int(i64),
    Str(Box<str>),
}

/// The map from key values to groups, specialised for the common key shapes so that single
/// and paired keys hash without allocating.
#[derive(Debug)]
enum Index {
    /// No join keys: every row is in the one group.
    Unit,
    Int(HashMap<i64, u32, Fast>),
    /// A single integer key whose values span a range not much wider than the table: the
    /// group of `key` at `groups[key - min]`. Building a 10 M-row history spent most of its
    /// time in the hash map's cache misses; an array a quarter of the map's size is probed
    /// with no hashing and far fewer misses.
    Dense {
        min: i64,
        groups: Vec<u32>,
        count: usize,
    },
    Str(HashMap<Box<str>, u32, Fast>),
    IntPair(HashMap<(i64, i64), u32, Fast>),
    General(HashMap<Vec<Part>, u32, Fast>),
}

/// One key column converted to its kind's representation.
enum Column {
    Int(Int64Array),
    Str(StringArray),
}

impl Column {
    fn part(&self, row: usize) -> Option<Part> {
        match self {
            Column::Int(a) => a.is_valid(row).then(|| Part::Int(a.value(row))),
            Column::Str(a) => a.is_valid(row).then(|| Part::Str(a.value(row).into())),
        }
    }
}

/// The interned keys of one history.
#[derive(Debug)]
pub(crate) struct KeyIndex {
    kinds: Vec<Kind>,
    /// The view columns' own types, for error messages.
    view_types: Vec<DataType>,
    index: Index,
    /// Heap bytes of interned text keys (the maps' own tables are counted from capacity).
    text_bytes: usize,
}

/// How much wider than the table's row count an integer key's range may be for
/// [`Index::Dense`]: 4 bytes per value in the range, so at most 8 bytes per row.
const DENSE_SPAN_PER_ROW: u64 = 2;

/// Below this many slots, a dense index is taken whatever the rows (a few KiB).
const DENSE_MIN_SPAN: u64 = 4096;

/// The smallest value and the span (`max - min + 1`) of `ints`' valid values, when the span
/// is small enough for [`Index::Dense`] over `rows` rows.
fn dense_span(ints: &Int64Array, rows: usize) -> Option<(i64, usize)> {
    let (mut min, mut max) = (i64::MAX, i64::MIN);
    for (row, &v) in ints.values().iter().enumerate() {
        if ints.is_valid(row) {
            min = min.min(v);
            max = max.max(v);
        }
    }
    if min > max {
        return None;
    }
    let span = (max as i128 - min as i128 + 1) as u128;
    let limit = (rows as u64)
        .saturating_mul(DENSE_SPAN_PER_ROW)
        .max(DENSE_MIN_SPAN);
    (span <= limit as u128).then_some((min, span as usize))
}

/// The dense slot of `value` in an index starting at `min` with `len` slots.
fn dense_slot(value: i64, min: i64, len: usize) -> Option<usize> {
    let offset = value.checked_sub(min)?;
    usize::try_from(offset).ok().filter(|&o| o < len)
}

fn intern<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u32, Fast>, key: K) -> u32 {
    let next = map.len() as u32;
    *map.entry(key).or_insert(next)
}

fn key_error(
    view: &str,
    column: &str,
    entity: &DataType,
    feature: &DataType,
    source: arrow::error::ArrowError,
) -> OfflineError {
    OfflineError::KeyType {
        view: view.to_owned(),
        column: column.to_owned(),
        entity_type: entity.clone(),
        view_type: feature.clone(),
        source: Box::new(source),
    }
}

impl KeyIndex {
    /// Interns the keys of the view's rows (`columns`, in join key order) and returns each
    /// row's group, [`NO_GROUP`] for rows with a null key part or rejected by `keep`.
    pub(crate) fn build(
        view: &str,
        names: &[String],
        columns: &[&ArrayRef],
        rows: usize,
        keep: impl Fn(usize) -> bool,
    ) -> Result<(KeyIndex, Vec<u32>), OfflineError> {
        let kinds: Vec<Kind> = columns
            .iter()
            .map(|c| {
                if is_integer(c.data_type()) {
                    Kind::Int
                } else {
                    Kind::Str
                }
            })
            .collect();
        let view_types: Vec<DataType> = columns.iter().map(|c| c.data_type().clone()).collect();
        let converted: Vec<Column> = columns
            .iter()
            .zip(&kinds)
            .zip(names)
            .map(|((column, kind), name)| {
                let (target, wrap): (DataType, fn(&ArrayRef) -> Column) = match kind {
                    Kind::Int => (DataType::Int64, |a| {
                        Column::Int(a.as_primitive::<Int64Type>().clone())
                    }),
                    Kind::Str => (DataType::Utf8, |a| {
                        Column::Str(a.as_string::<i32>().clone())
                    }),
                };
                cast(column, &target)
                    .map(|a| wrap(&a))
                    .map_err(|e| key_error(view, name, &target, column.data_type(), e))
            })
            .collect::<Result<_, _>>()?;
        let mut groups = vec![NO_GROUP; rows];
        let mut text_bytes = 0;
        let index = match converted.as_slice() {
            [] => {
                for (row, g) in groups.iter_mut().enumerate() {
                    if keep(row) {
                        *g = 0;
                    }
                }
                Index::Unit
            }
            [Column::Int(ints)] if let Some((min, span)) = dense_span(ints, rows) => {
                let mut slots = vec![NO_GROUP; span];
                let mut count = 0u32;
                let values = ints.values();
                for (row, g) in groups.iter_mut().enumerate() {
                    if ints.is_valid(row) && keep(row) {
                        // In range: the span was taken over these very values.
                        let slot = &mut slots[(values[row] - min) as usize];
                        if *slot == NO_GROUP {
                            *slot = count;
                            count += 1;
                        }
                        *g = *slot;
                    }
                }
                if (count as usize) * 8 < span {
                    // Few keys over a wide range: the map is the smaller index.
                    let map = slots
                        .iter()
                        .enumerate()
                        .filter(|&(_, &g)| g != NO_GROUP)
                        .map(|(offset, &g)| (min + offset as i64, g))
                        .collect();
                    Index::Int(map)
                } else {
                    Index::Dense {
                        min,
                        groups: slots,
                        count: count as usize,
                    }
                }
            }
            [Column::Int(ints)] => {
                let mut map = HashMap::with_hasher(Fast::default());
                let values = ints.values();
                for (row, g) in groups.iter_mut().enumerate() {
                    if ints.is_valid(row) && keep(row) {
                        *g = intern(&mut map, values[row]);
                    }
                }
                Index::Int(map)
            }
            [Column::Str(strings)] => {
                let mut map: HashMap<Box<str>, u32, Fast> = HashMap::with_hasher(Fast::default());
                for (row, g) in groups.iter_mut().enumerate() {
                    if strings.is_valid(row) && keep(row) {
                        let key = strings.value(row);
                        *g = match map.get(key) {
                            Some(&g) => g,
                            None => {
                                let next = map.len() as u32;
                                text_bytes += key.len();
                                map.insert(key.into(), next);
                                next
                            }
                        };
                    }
                }
                Index::Str(map)
            }
            [Column::Int(first), Column::Int(second)] => {
                let mut map = HashMap::with_hasher(Fast::default());
                let (a, b) = (first.values(), second.values());
                for (row, g) in groups.iter_mut().enumerate() {
                    if first.is_valid(row) && second.is_valid(row) && keep(row) {
                        *g = intern(&mut map, (a[row], b[row]));
                    }
                }
                Index::IntPair(map)
            }
            parts => {
                let mut map: HashMap<Vec<Part>, u32, Fast> = HashMap::with_hasher(Fast::default());
                for (row, g) in groups.iter_mut().enumerate() {
                    if !keep(row) {
                        continue;
                    }
                    let key: Option<Vec<Part>> = parts.iter().map(|c| c.part(row)).collect();
                    if let Some(key) = key {
                        if let Some(&found) = map.get(&key) {
                            *g = found;
                        } else {
                            text_bytes += key.len() * std::mem::size_of::<Part>()
                                + key
                                    .iter()
                                    .map(|p| match p {
                                        Part::Str(s) => s.len(),
                                        Part::Int(_) => 0,
                                    })
                                    .sum::<usize>();
                            *g = intern(&mut map, key);
                        }
                    }
                }
                Index::General(map)
            }
        };
        Ok((
            KeyIndex {
                kinds,
                view_types,
                index,
                text_bytes,
            },
            groups,
        ))
    }

    /// The number of groups (ids are `0..count`).
    pub(crate) fn count(&self) -> usize {
        match &self.index {
            Index::Unit => 1,
            Index::Int(m) => m.len(),
            Index::Dense { count, .. } => *count,
            Index::Str(m) => m.len(),
            Index::IntPair(m) => m.len(),
            Index::General(m) => m.len(),
        }
    }

    /// Bytes held: the maps' tables by capacity (key, group id and one control byte per
    /// bucket) and the interned text.
    pub(crate) fn memory_bytes(&self) -> usize {
        fn table<K, V>(map: &HashMap<K, V, Fast>) -> usize {
            map.capacity() * (std::mem::size_of::<K>() + std::mem::size_of::<V>() + 1)
        }
        self.text_bytes
            + match &self.index {
                Index::Unit => 0,
                Index::Int(m) => table(m),
                Index::Dense { groups, .. } => groups.capacity() * std::mem::size_of::<u32>(),
                Index::Str(m) => table(m),
                Index::IntPair(m) => table(m),
                Index::General(m) => table(m),
            }
    }

    /// The group of each of `rows` entity rows whose key parts are `columns` (in join key
    /// order), [`NO_GROUP`] where a part is null or the view has no such key.
    pub(crate) fn entity_groups(
        &self,
        view: &str,
        names: &[String],
        columns: &[&ArrayRef],
        rows: usize,
    ) -> Result<Vec<u32>, OfflineError> {
        let converted: Vec<Column> = columns
            .iter()
            .zip(&self.kinds)
            .zip(names.iter().zip(&self.view_types))
            .map(|((column, kind), (name, view_type))| {
                entity_column(column, *kind)
                    .map_err(|e| key_error(view, name, column.data_type(), view_type, e))
            })
            .collect::<Result<_, _>>()?;
        Ok(match (&self.index, converted.as_slice()) {
            (Index::Unit, _) => vec![0; rows],
            (Index::Int(map), [Column::Int(ints)]) => (0..rows)
                .map(|row| {
                    ints.is_valid(row)
                        .then(|| map.get(&ints.value(row)).copied())
                        .flatten()
                        .unwrap_or(NO_GROUP)
                })
                .collect(),
            (Index::Dense { min, groups, .. }, [Column::Int(ints)]) => (0..rows)
                .map(|row| {
                    ints.is_valid(row)
                        .then(|| dense_slot(ints.value(row), *min, groups.len()))
                        .flatten()
                        .map_or(NO_GROUP, |slot| groups[slot])
                })
                .collect(),
            (Index::Str(map), [Column::Str(strings)]) => (0..rows)
                .map(|row| {
                    strings
                        .is_valid(row)
                        .then(|| map.get(strings.value(row)).copied())
                        .flatten()
                        .unwrap_or(NO_GROUP)
                })
                .collect(),
            (Index::IntPair(map), [Column::Int(a), Column::Int(b)]) => (0..rows)
                .map(|row| {
                    (a.is_valid(row) && b.is_valid(row))
                        .then(|| map.get(&(a.value(row), b.value(row))).copied())
                        .flatten()
                        .unwrap_or(NO_GROUP)
                })
                .collect(),
            (Index::General(map), parts) => (0..rows)
                .map(|row| {
                    let key: Option<Vec<Part>> = parts.iter().map(|c| c.part(row)).collect();
                    key.and_then(|k| map.get(&k).copied()).unwrap_or(NO_GROUP)
                })
                .collect(),
            // Entity columns are converted to the kinds the view's were, in the same order,
            // so the shapes always agree.
            _ => vec![NO_GROUP; rows],
        })
    }

    /// The group of one entity given as JSON values in join key order, as the online route
    /// accepts them: integers, or strings in canonical decimal form, for integer keys; strings,
    /// or integers as decimal text, for text keys.
    pub(crate) fn group_of_json(&self, key: &[&Value]) -> Option<u32> {
        if key.len() != self.kinds.len() {
            return None;
        }
        let int = |i: usize| crate::online::int_part(key[i]);
        let text = |i: usize| crate::online::str_part(key[i]);
        match &self.index {
            Index::Unit => Some(0),
            Index::Int(map) => map.get(&int(0)?).copied(),
            Index::Dense { min, groups, .. } => {
                let slot = dense_slot(int(0)?, *min, groups.len())?;
                Some(groups[slot]).filter(|&g| g != NO_GROUP)
            }
            Index::Str(map) => map.get(text(0)?.as_ref()).copied(),
            Index::IntPair(map) => map.get(&(int(0)?, int(1)?)).copied(),
            Index::General(map) => {
                let parts: Option<Vec<Part>> = self
                    .kinds
                    .iter()
                    .enumerate()
                    .map(|(i, kind)| match kind {
                        Kind::Int => int(i).map(Part::Int),
                        Kind::Str => text(i).map(|s| Part::Str(s.as_ref().into())),
                    })
                    .collect();
                map.get(&parts?).copied()
            }
        }
    }
}

/// An entity key column in the representation of the view's column of `kind`.
fn entity_column(column: &ArrayRef, kind: Kind) -> Result<Column, arrow::error::ArrowError> {
    Ok(match kind {
        Kind::Int if is_integer(column.data_type()) => Column::Int(
            cast(column, &DataType::Int64)?
                .as_primitive::<Int64Type>()
                .clone(),
        ),
        // Text against integers: equal spellings are exactly the canonical decimal ones.
        Kind::Int => {
            let text = cast(column, &DataType::Utf8)?;
            let text = text.as_string::<i32>();
            Column::Int(
                text.iter()
                    .map(|v| v.and_then(crate::model::canonical_i64))
                    .collect(),
            )
        }
        Kind::Str => Column::Str(cast(column, &DataType::Utf8)?.as_string::<i32>().clone()),
    })
}
