//! A view's decoded history, kept in memory: its rows for one table version, grouped by
//! entity key and ordered in time, so that a point-in-time lookup costs a hash probe, a
//! binary search and a gather instead of decoding and grouping the whole table again.
//!
//! Pure (no I/O): `store` reads the table and keeps the histories ([`HistoryCache`]).
//!
//! # What is kept
//! [`ViewHistory::build`] takes the view's rows as read (join keys, event and created
//! timestamps, and every declared feature, so one history serves every request on the view)
//! and groups them *from the feature side*, once, where `offline`'s join groups them from
//! each request's entity side:
//! 1. each row's key is interned to a dense group id (`keys.rs`; the same key rules as the
//!    join: integers as `i64`, anything else as text); rows with a null key part or a null
//!    event time belong to no group, since they can match nothing;
//! 2. a counting sort places the rows of each group together, in table order, as two parallel
//!    arrays: event times (UTC µs) and table row indices;
//! 3. each group is sorted by `(event, created, row)` unless already in order (the common case
//!    for append-only history).
//!
//! A lookup at time `t` for a group is then the join's rule exactly (see `offline`): the last
//! version with `event <= t`, scanning back past rows outside the TTL window (stop) and, with
//! the created-timestamp cutoff, past rows created after `t` (skip).
//!
//! # Memory
//! Beyond the decoded columns themselves (`rows`), a history holds 12 bytes per row with a
//! key and an event time (8 for the event, 4 for the row index), 4 bytes per group for the
//! group starts, the key index, and, when the
//! created timestamp column is not in microseconds, 8 bytes per row for its converted copy.
//! The key index is, for a single integer key whose values span at most twice the row count
//! (ids 1..N, the common case), an array of 4 bytes per value of the span; otherwise a hash
//! map (key, 4-byte id and a control byte per bucket, buckets ≈ 8/7 of the groups rounded up
//! to a power of two, plus the text of string keys).
//! [`ViewHistory::memory_bytes`] adds these up; the cache bounds histories by it.
//!
//! # Hazards
//! - Row indices are `u32`: a history holds at most [`crate::offline::MAX_VIEW_ROWS`] rows.
//! - An unsigned 64-bit key above `i64::MAX` belongs to no group (as in the join).

mod cache;
mod join;
mod keys;

use std::fmt;

use arrow::array::{ArrayRef, RecordBatch};
use serde_json::Value;

pub use cache::{HistoryCache, HistoryKey};
pub use join::{HistoryJoinView, join};

use crate::offline::{
    Instants, MAX_VIEW_ROWS, NO_ROW, OfflineError, column_list, in_parallel, threads_for,
};
use keys::{KeyIndex, NO_GROUP};

/// What a history is built from: one view's rows at one table version.
#[derive(Debug, Clone)]
pub struct HistorySource {
    /// The view's name (for error messages).
    pub view: String,
    /// The view's columns as read from its table: join keys, the event timestamp, the
    /// optional created timestamp and the features; other columns are kept but not used.
    pub rows: RecordBatch,
    /// The view's join key columns, in entity order; empty for a view without entities.
    pub join_keys: Vec<String>,
    /// The event timestamp column.
    pub timestamp_field: String,
    /// The created timestamp column, which breaks ties between equal event times.
    pub created_timestamp_field: Option<String>,
}

/// A view's rows for one table version, grouped by entity key and sorted by (event, created,
/// table row); see the module doc.
pub struct ViewHistory {
    view: String,
    rows: RecordBatch,
    join_keys: Vec<String>,
    timestamp_field: String,
    created_timestamp_field: Option<String>,
    keys: KeyIndex,
    /// Group `g` occupies positions `starts[g]..starts[g + 1]` of `events` and `table_rows`.
    starts: Vec<u32>,
    events: Vec<i64>,
    table_rows: Vec<u32>,
    /// Created times by table row, when the view has them (shares the column's buffer when
    /// it is in microseconds).
    created: Option<Instants>,
    /// Bytes of `created` not shared with `rows`.
    created_copy_bytes: usize,
}

impl fmt::Debug for ViewHistory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ViewHistory")
            .field("view", &self.view)
            .field("rows", &self.rows.num_rows())
            .field("groups", &self.group_count())
            .field("versions", &self.events.len())
            .field("memory_bytes", &self.memory_bytes())
            .finish()
    }
}

impl ViewHistory {
    /// Groups and orders `source`'s rows. Fails, naming the column, when a column the view
    /// declares is missing or mistyped, or when the view has more rows than `u32` indices
    /// address.
    pub fn build(source: HistorySource) -> Result<ViewHistory, OfflineError> {
        let HistorySource {
            view,
            rows,
            join_keys,
            timestamp_field,
            created_timestamp_field,
        } = source;
        let row_count = rows.num_rows();
        if row_count > MAX_VIEW_ROWS {
            return Err(OfflineError::TooManyRows {
                view,
                rows: row_count,
                max: MAX_VIEW_ROWS,
            });
        }
        let column = |name: &str, role: &'static str| -> Result<ArrayRef, OfflineError> {
            rows.column_by_name(name)
                .cloned()
                .ok_or_else(|| OfflineError::MissingViewColumn {
                    view: view.clone(),
                    column: name.to_owned(),
                    role,
                    available: column_list(&rows),
                })
        };
        let owner = || format!("feature view `{view}`");
        let events = Instants::read(
            &column(&timestamp_field, "timestamp field")?,
            owner,
            &timestamp_field,
        )?;
        let created = match &created_timestamp_field {
            Some(name) => Some(Instants::read(
                &column(name, "created timestamp field")?,
                owner,
                name,
            )?),
            None => None,
        };
        let key_columns: Vec<ArrayRef> = join_keys
            .iter()
            .map(|k| column(k, "join key"))
            .collect::<Result<_, _>>()?;
        let key_refs: Vec<&ArrayRef> = key_columns.iter().collect();
        let (keys, group_of) = KeyIndex::build(&view, &join_keys, &key_refs, row_count, |row| {
            events.is_valid(row)
        })?;

        // Counting sort by group, in table order.
        let groups = keys.count();
        let mut starts = vec![0u32; groups + 1];
        for &g in &group_of {
            if g != NO_GROUP {
                starts[g as usize + 1] += 1;
            }
        }
        for g in 0..groups {
            starts[g + 1] += starts[g];
        }
        let total = starts[groups] as usize;
        let mut next: Vec<u32> = starts[..groups].to_vec();
        let mut sorted_events = vec![0i64; total];
        let mut table_rows = vec![0u32; total];
        for (row, &g) in group_of.iter().enumerate() {
            if g == NO_GROUP {
                continue;
            }
            let slot = &mut next[g as usize];
            sorted_events[*slot as usize] = events.values[row];
            table_rows[*slot as usize] = row as u32;
            *slot += 1;
        }
        drop(next);
        drop(group_of);
        let created_of = |row: u32| created_at(created.as_ref(), row);
        sort_groups(&starts, &mut sorted_events, &mut table_rows, &created_of);

        let created_copy_bytes = match (&created, &created_timestamp_field) {
            (Some(c), Some(name)) => {
                let shared = rows.column_by_name(name).is_some_and(|a| {
                    matches!(
                        a.data_type(),
                        arrow::datatypes::DataType::Timestamp(
                            arrow::datatypes::TimeUnit::Microsecond,
                            _
                        )
                    )
                });
                if shared { 0 } else { c.values.len() * 8 }
            }
            _ => 0,
        };
        Ok(ViewHistory {
            view,
            rows,
            join_keys,
            timestamp_field,
            created_timestamp_field,
            keys,
            starts,
            events: sorted_events,
            table_rows,
            created,
            created_copy_bytes,
        })
    }

    /// The view's columns as given, in table order: what lookups' row indices point into.
    pub fn rows(&self) -> &RecordBatch {
        &self.rows
    }

    /// The view's name.
    pub fn view(&self) -> &str {
        &self.view
    }

    /// The view's join key columns, in entity order.
    pub fn join_keys(&self) -> &[String] {
        &self.join_keys
    }

    /// The event timestamp column.
    pub fn timestamp_field(&self) -> &str {
        &self.timestamp_field
    }

    /// The created timestamp column, if the view has one.
    pub fn created_timestamp_field(&self) -> Option<&str> {
        self.created_timestamp_field.as_deref()
    }

    /// The number of distinct entity keys (group ids are `0..group_count()`).
    pub fn group_count(&self) -> usize {
        self.keys.count()
    }

    /// Bytes held: the decoded columns plus the grouping (see the module doc's "Memory").
    pub fn memory_bytes(&self) -> usize {
        self.rows.get_array_memory_size() + self.index_bytes()
    }

    /// Bytes of the grouping alone, beyond the decoded columns: what keeping a history costs
    /// over keeping the rows.
    pub fn index_bytes(&self) -> usize {
        self.events.capacity() * 8
            + self.table_rows.capacity() * 4
            + self.starts.capacity() * 4
            + self.keys.memory_bytes()
            + self.created_copy_bytes
    }

    /// The group of one entity, key parts in join key order, as the online route accepts
    /// them (JSON integers or strings; `"7"` matches an integer key 7, as online does today).
    pub fn group_of_json(&self, key: &[&Value]) -> Option<u32> {
        self.keys.group_of_json(key)
    }

    /// A group's versions' event times (UTC µs), ascending by (event, created, row); parallel
    /// to [`ViewHistory::table_rows`]. Empty for an unknown group.
    pub fn events(&self, group: u32) -> &[i64] {
        let (lo, hi) = self.span(group);
        &self.events[lo..hi]
    }

    /// A group's versions' row indices into [`ViewHistory::rows`], in the order of
    /// [`ViewHistory::events`].
    pub fn table_rows(&self, group: u32) -> &[u32] {
        let (lo, hi) = self.span(group);
        &self.table_rows[lo..hi]
    }

    /// The created time (UTC µs) of a table row; `None` when null or the view has none.
    pub fn created(&self, row: u32) -> Option<i64> {
        let c = self.created.as_ref()?;
        c.is_valid(row as usize).then(|| c.values[row as usize])
    }

    /// The row a lookup at `at` (UTC µs) answers for `group`, by the join's rule: the last
    /// version with `at - ttl <= event <= at` (an absent or zero TTL is unbounded) and, with
    /// `created_cutoff`, created at or before `at`.
    pub fn latest_at(
        &self,
        group: u32,
        at: i64,
        ttl_seconds: Option<u64>,
        created_cutoff: bool,
    ) -> Option<u32> {
        let row = self.find(group, at, ttl_micros(ttl_seconds), created_cutoff);
        (row != NO_ROW).then_some(row)
    }

    fn span(&self, group: u32) -> (usize, usize) {
        let g = group as usize;
        if g + 1 >= self.starts.len() {
            return (0, 0);
        }
        (self.starts[g] as usize, self.starts[g + 1] as usize)
    }

    /// The winning row of `group` at `t`, or [`NO_ROW`].
    #[inline]
    fn find(&self, group: u32, t: i64, ttl: i64, cutoff: bool) -> u32 {
        let (lo, hi) = self.span(group);
        let events = &self.events[lo..hi];
        let oldest = t.saturating_sub(ttl);
        let cutoff = cutoff && self.created.is_some();
        let mut at = events.partition_point(|&e| e <= t);
        while at > 0 {
            at -= 1;
            if events[at] < oldest {
                return NO_ROW;
            }
            let row = self.table_rows[lo + at];
            if cutoff && created_at(self.created.as_ref(), row) > t {
                continue;
            }
            return row;
        }
        NO_ROW
    }

    /// The row of this history each entity row joins with ([`NO_ROW`] for none); the entity
    /// rows must have the view's join keys (checked by the join). Large inputs are probed in
    /// row chunks side by side (`offline`'s thread policy); outputs do not depend on it.
    pub(crate) fn probe(
        &self,
        entities: &RecordBatch,
        times: &Instants,
        ttl_seconds: Option<u64>,
        cutoff: bool,
    ) -> Result<Vec<u32>, OfflineError> {
        let columns: Vec<&ArrayRef> = self
            .join_keys
            .iter()
            .map(|k| {
                entities
                    .column_by_name(k)
                    .ok_or_else(|| OfflineError::MissingEntityKey {
                        view: self.view.clone(),
                        column: k.clone(),
                        available: column_list(entities),
                    })
            })
            .collect::<Result<_, _>>()?;
        let ttl = ttl_micros(ttl_seconds);
        let rows = entities.num_rows();
        let chunk = rows.div_ceil(threads_for(rows)).max(1);
        // No rows still makes one (empty) part, so key types are checked as the join checks them.
        let chunks: Vec<usize> = (0..rows.max(1)).step_by(chunk).collect();
        let parts = in_parallel(chunks, |first| -> Result<Vec<u32>, OfflineError> {
            let len = chunk.min(rows.saturating_sub(first));
            let slices: Vec<ArrayRef> = columns.iter().map(|c| c.slice(first, len)).collect();
            let slice_refs: Vec<&ArrayRef> = slices.iter().collect();
            let groups = self
                .keys
                .entity_groups(&self.view, &self.join_keys, &slice_refs, len)?;
            Ok(groups
                .iter()
                .enumerate()
                .map(|(i, &g)| {
                    let row = first + i;
                    if g == NO_GROUP || !times.is_valid(row) {
                        NO_ROW
                    } else {
                        self.find(g, times.values[row], ttl, cutoff)
                    }
                })
                .collect())
        });
        let mut out = Vec::with_capacity(rows);
        for part in parts {
            out.extend(part?);
        }
        Ok(out)
    }
}

/// A TTL in µs, `i64::MAX` for none (absent or zero, as in Feast).
fn ttl_micros(ttl_seconds: Option<u64>) -> i64 {
    match ttl_seconds {
        Some(seconds) if seconds > 0 => i64::try_from(seconds)
            .unwrap_or(i64::MAX)
            .saturating_mul(1_000_000),
        _ => i64::MAX,
    }
}

/// The created time of `row`, null (or no created column) lowest.
#[inline]
fn created_at(created: Option<&Instants>, row: u32) -> i64 {
    match created {
        Some(c) if c.is_valid(row as usize) => c.values[row as usize],
        _ => i64::MIN,
    }
}

/// Orders each group's versions by `(event, created, row)`; groups arrive in table order, so
/// one already ordered by `(event, created)` is left as it is.
fn sort_groups(
    starts: &[u32],
    events: &mut [i64],
    rows: &mut [u32],
    created: &impl Fn(u32) -> i64,
) {
    let mut scratch: Vec<(i64, i64, u32)> = Vec::new();
    for bounds in starts.windows(2) {
        let (lo, hi) = (bounds[0] as usize, bounds[1] as usize);
        if hi - lo < 2 {
            continue;
        }
        let (ev, rw) = (&mut events[lo..hi], &mut rows[lo..hi]);
        let in_order = (1..ev.len()).all(|i| {
            ev[i - 1] < ev[i] || (ev[i - 1] == ev[i] && created(rw[i - 1]) <= created(rw[i]))
        });
        if in_order {
            continue;
        }
        scratch.clear();
        scratch.extend(ev.iter().zip(rw.iter()).map(|(&e, &r)| (e, created(r), r)));
        scratch.sort_unstable();
        for (i, &(e, _, r)) in scratch.iter().enumerate() {
            ev[i] = e;
            rw[i] = r;
        }
    }
}

#[cfg(test)]
mod tests;
