//! Join keys: each distinct entity key gets a dense group id, and each feature row is mapped
//! to the group of its key (or to none, when no entity row asks for that key).
//!
//! The map is built from the entity side, so its size is bounded by the distinct entity keys
//! and feature rows of keys nobody asked for are dropped before any sorting. A single integer
//! key over a compact range needs no map at all: the group is the key's offset from the
//! smallest entity key. String keys hash borrowed `&str`s of the Arrow buffers, so neither
//! side allocates per row; only the general composite map allocates, once per distinct key.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};

use super::OfflineError;

/// The group of a row whose key matches no entity row (or is null).
pub(super) const NO_GROUP: u32 = u32::MAX;

/// A single integer key whose entity values span at most this many times the entity rows
/// (plus a constant) is addressed directly: the counts array then costs no more than the
/// entity rows' own key column.
const DENSE_SPAN_PER_ROW: u64 = 2;
const DENSE_SPAN_SLACK: u64 = 1024;

/// One join key column, converted to the representation both sides compare.
pub(super) enum KeyColumn {
    /// Both sides hold integers (any width): compared as `i64`.
    Int(Int64Array),
    /// Anything else: compared as text, so an integer entity key meets a string feature key
    /// through its decimal spelling.
    Str(StringArray),
}

/// Whether a key column compares as an integer (any width, dictionary-encoded or not).
pub(crate) fn is_integer(data_type: &DataType) -> bool {
    match data_type {
        DataType::Dictionary(_, values) => values.is_integer(),
        other => other.is_integer(),
    }
}

/// Converts the entity's and the view's column of one join key to a common representation.
pub(super) fn key_columns(
    view: &str,
    column: &str,
    entity: &ArrayRef,
    feature: &ArrayRef,
) -> Result<(KeyColumn, KeyColumn), OfflineError> {
    let as_ints = is_integer(entity.data_type()) && is_integer(feature.data_type());
    let target = if as_ints {
        DataType::Int64
    } else {
        DataType::Utf8
    };
    let convert = |array: &ArrayRef| -> Result<KeyColumn, OfflineError> {
        let converted = cast(array, &target).map_err(|source| OfflineError::KeyType {
            view: view.to_owned(),
            column: column.to_owned(),
            entity_type: entity.data_type().clone(),
            view_type: feature.data_type().clone(),
            source: Box::new(source),
        })?;
        Ok(if as_ints {
            KeyColumn::Int(converted.as_primitive::<Int64Type>().clone())
        } else {
            KeyColumn::Str(converted.as_string::<i32>().clone())
        })
    };
    Ok((convert(entity)?, convert(feature)?))
}

/// A 64-bit multiply-fold hasher: several times faster than SipHash on integer keys. Join
/// keys come from the caller's own tables, so resistance to crafted collisions is not needed
/// (a collision only costs time; equality is still checked).
#[derive(Clone, Copy)]
pub(crate) struct FoldHasher {
    state: u64,
}

impl Default for FoldHasher {
    fn default() -> Self {
        FoldHasher {
            state: 0x243F_6A88_85A3_08D3,
        }
    }
}

const MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;
const FINISH: u64 = 0xD6E8_FEB8_6659_FD93;

#[inline]
fn fold_multiply(a: u64, b: u64) -> u64 {
    let full = (a as u128) * (b as u128);
    (full as u64) ^ ((full >> 64) as u64)
}

impl FoldHasher {
    #[inline]
    fn mix(&mut self, value: u64) {
        self.state = fold_multiply(self.state ^ value, MULTIPLIER);
    }
}

impl Hasher for FoldHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.mix(bytes.len() as u64);
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, value: u8) {
        self.mix(u64::from(value));
    }

    #[inline]
    fn write_u32(&mut self, value: u32) {
        self.mix(u64::from(value));
    }

    #[inline]
    fn write_u64(&mut self, value: u64) {
        self.mix(value);
    }

    #[inline]
    fn write_i64(&mut self, value: i64) {
        self.mix(value as u64);
    }

    #[inline]
    fn write_usize(&mut self, value: usize) {
        self.mix(value as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // hashbrown takes the bucket from the low bits and the tag from the top seven: one
        // more fold spreads every input bit into both.
        fold_multiply(self.state, FINISH)
    }
}

/// Hash maps keyed by join key values use this (`history` too).
pub(crate) type Fast = BuildHasherDefault<FoldHasher>;

/// One part of a general composite key, borrowed from the Arrow buffers.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Part<'a> {
    Int(i64),
    Str(&'a str),
}

fn part<'a>(column: &'a KeyColumn, row: usize) -> Option<Part<'a>> {
    match column {
        KeyColumn::Int(ints) => ints.is_valid(row).then(|| Part::Int(ints.value(row))),
        KeyColumn::Str(strings) => strings.is_valid(row).then(|| Part::Str(strings.value(row))),
    }
}

enum Index<'a> {
    /// No join keys: every row belongs to the one group.
    Unit,
    /// A single integer key over a compact range: the group is `key - min`.
    Dense {
        min: i64,
        len: u64,
    },
    Int(HashMap<i64, u32, Fast>),
    Str(HashMap<&'a str, u32, Fast>),
    IntPair(HashMap<(i64, i64), u32, Fast>),
    General(HashMap<Vec<Part<'a>>, u32, Fast>),
}

/// Group ids for the entity rows of one view, and the index that maps feature rows into them.
pub(super) struct Groups<'a> {
    index: Index<'a>,
    /// The group of each entity row, [`NO_GROUP`] where a key part is null.
    pub entity: Vec<u32>,
    /// The number of groups (ids are `0..count`).
    pub count: usize,
}

fn intern<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u32, Fast>, key: K) -> u32 {
    let next = map.len() as u32;
    *map.entry(key).or_insert(next)
}

impl<'a> Groups<'a> {
    /// Assigns a group to each of `rows` entity rows whose key parts are `columns`.
    pub fn of_entities(columns: &'a [KeyColumn], rows: usize) -> Groups<'a> {
        match columns {
            [] => Groups {
                index: Index::Unit,
                entity: vec![0; rows],
                count: 1,
            },
            [KeyColumn::Int(ints)] => Self::of_int_entities(ints),
            [KeyColumn::Str(strings)] => {
                let mut map = HashMap::with_capacity_and_hasher(rows, Fast::default());
                let entity = (0..rows)
                    .map(|row| {
                        if strings.is_valid(row) {
                            intern(&mut map, strings.value(row))
                        } else {
                            NO_GROUP
                        }
                    })
                    .collect();
                Groups {
                    count: map.len(),
                    index: Index::Str(map),
                    entity,
                }
            }
            [KeyColumn::Int(first), KeyColumn::Int(second)] => {
                let mut map = HashMap::with_capacity_and_hasher(rows, Fast::default());
                let entity = (0..rows)
                    .map(|row| {
                        if first.is_valid(row) && second.is_valid(row) {
                            intern(&mut map, (first.value(row), second.value(row)))
                        } else {
                            NO_GROUP
                        }
                    })
                    .collect();
                Groups {
                    count: map.len(),
                    index: Index::IntPair(map),
                    entity,
                }
            }
            _ => {
                let mut map: HashMap<Vec<Part<'a>>, u32, Fast> =
                    HashMap::with_capacity_and_hasher(rows, Fast::default());
                let mut scratch = Vec::with_capacity(columns.len());
                let entity = (0..rows)
                    .map(|row| {
                        scratch.clear();
                        scratch.extend(columns.iter().map_while(|c| part(c, row)));
                        if scratch.len() != columns.len() {
                            return NO_GROUP;
                        }
                        if let Some(&group) = map.get(scratch.as_slice()) {
                            return group;
                        }
                        let group = map.len() as u32;
                        map.insert(scratch.clone(), group);
                        group
                    })
                    .collect();
                Groups {
                    count: map.len(),
                    index: Index::General(map),
                    entity,
                }
            }
        }
    }

    fn of_int_entities(ints: &Int64Array) -> Groups<'a> {
        let rows = ints.len();
        let (mut min, mut max, mut any) = (i64::MAX, i64::MIN, false);
        for value in ints.iter().flatten() {
            min = min.min(value);
            max = max.max(value);
            any = true;
        }
        let limit = (rows as u64)
            .saturating_mul(DENSE_SPAN_PER_ROW)
            .saturating_add(DENSE_SPAN_SLACK)
            .min(u64::from(NO_GROUP));
        let span = (i128::from(max) - i128::from(min) + 1) as u128;
        if !any || span <= u128::from(limit) {
            let len = if any { span as u64 } else { 0 };
            let values = ints.values();
            let entity = (0..rows)
                .map(|row| {
                    if ints.is_valid(row) {
                        (values[row] - min) as u32
                    } else {
                        NO_GROUP
                    }
                })
                .collect();
            return Groups {
                index: Index::Dense { min, len },
                entity,
                count: len as usize,
            };
        }
        let mut map = HashMap::with_capacity_and_hasher(rows, Fast::default());
        let entity = ints
            .iter()
            .map(|key| key.map_or(NO_GROUP, |key| intern(&mut map, key)))
            .collect();
        Groups {
            count: map.len(),
            index: Index::Int(map),
            entity,
        }
    }

    /// Writes the group of feature rows `first_row..first_row + out.len()` (key parts in
    /// `columns`) into `out`, [`NO_GROUP`] where `keep` is false or no entity row has the key,
    /// and counts the rows of each group into `counts`. `keep` is checked first, so rows it
    /// rejects cost no hashing.
    pub fn of_rows(
        &self,
        columns: &[KeyColumn],
        first_row: usize,
        out: &mut [u32],
        counts: &mut [u32],
        keep: impl Fn(usize) -> bool,
    ) {
        match (&self.index, columns) {
            (Index::Unit, _) => fill(out, first_row, counts, &keep, |_| Some(0)),
            (Index::Dense { min, len }, [KeyColumn::Int(ints)]) => {
                let (min, len, values) = (*min, *len, ints.values());
                fill(out, first_row, counts, &keep, |row| {
                    let offset = values[row].checked_sub(min)? as u64;
                    (offset < len && ints.is_valid(row)).then_some(offset as u32)
                })
            }
            (Index::Int(map), [KeyColumn::Int(ints)]) => {
                let values = ints.values();
                fill(out, first_row, counts, &keep, |row| {
                    if ints.is_valid(row) {
                        map.get(&values[row]).copied()
                    } else {
                        None
                    }
                })
            }
            (Index::Str(map), [KeyColumn::Str(strings)]) => {
                fill(out, first_row, counts, &keep, |row| {
                    if strings.is_valid(row) {
                        map.get(strings.value(row)).copied()
                    } else {
                        None
                    }
                })
            }
            (Index::IntPair(map), [KeyColumn::Int(first), KeyColumn::Int(second)]) => {
                let (a, b) = (first.values(), second.values());
                fill(out, first_row, counts, &keep, |row| {
                    if first.is_valid(row) && second.is_valid(row) {
                        map.get(&(a[row], b[row])).copied()
                    } else {
                        None
                    }
                })
            }
            (Index::General(map), _) => {
                // One scratch key for all rows: the probe borrows it, no allocation per row.
                let scratch = std::cell::RefCell::new(Vec::with_capacity(columns.len()));
                fill(out, first_row, counts, &keep, |row| {
                    let mut scratch = scratch.borrow_mut();
                    scratch.clear();
                    scratch.extend(columns.iter().map_while(|c| part(c, row)));
                    if scratch.len() == columns.len() {
                        lookup(map, &scratch).copied()
                    } else {
                        None
                    }
                })
            }
            // Both sides' key columns are converted by `key_columns`, in the same order and
            // to the same representation, so the index always fits the feature columns.
            _ => unreachable!("key columns of the two sides differ in shape"),
        }
    }
}

/// A map built from the entity's buffers, probed with a key borrowed from the view's: the
/// shorter of the two lifetimes is enough for a lookup.
fn lookup<'m, 's>(map: &'m HashMap<Vec<Part<'s>>, u32, Fast>, key: &[Part<'s>]) -> Option<&'m u32> {
    map.get(key)
}

#[inline]
fn fill(
    out: &mut [u32],
    first_row: usize,
    counts: &mut [u32],
    keep: &impl Fn(usize) -> bool,
    group: impl Fn(usize) -> Option<u32>,
) {
    for (row, slot) in (first_row..).zip(out.iter_mut()) {
        *slot = match keep(row).then(|| group(row)).flatten() {
            Some(g) => {
                counts[g as usize] += 1;
                g
            }
            None => NO_GROUP,
        };
    }
}
