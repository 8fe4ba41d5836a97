//! Historical retrieval: the point-in-time (ASOF) join of entity rows against the history of
//! feature views, as a pure function over Arrow batches (no I/O, no registry).
//!
//! # The rule
//! For each entity row with timestamp `t` and each view, among the view's rows with the same
//! values in all of the view's join keys (a null key never matches) and an event timestamp `e`
//! with `e <= t` (and `e >= t - ttl` when the view has a TTL above zero, inclusive), the row
//! with the largest `e` wins; ties go to the largest created timestamp (null lowest), then to
//! the later row of the view's table. With [`JoinOptions::created_timestamp_cutoff`], rows
//! created after `t` are not candidates (a null created timestamp is). Rows with a null event
//! timestamp, and entity rows with a null timestamp, match nothing. Every entity row yields
//! exactly one output row, in input order, duplicates kept (Feast's file store drops rows
//! sharing key and timestamp); an entity row without a match gets nulls.
//!
//! Timestamps of any unit and time zone compare as instants: each is converted to UTC
//! microseconds (nanoseconds are floored). Key columns compare as `i64` when both sides are
//! integers of any width (dictionary-encoded or not), otherwise as text.
//!
//! # How (per view)
//! Feast's local store builds this as key join, filter, sort and dedup, which materialises
//! keys × versions rows (101 s for one entity row against 14 M feature rows, feast #1954;
//! 50 GB for 17 k rows × 1,000 features, feast #3003). Here nothing proportional to that
//! product is ever built:
//! 1. **Group ids from the entity side** (`keys.rs`): each distinct entity key gets a dense
//!    id: a direct offset for a compact integer range, otherwise a hash map over values
//!    borrowed from the Arrow buffers (`i64`, `&str`, an `(i64, i64)` pair, or a vector of
//!    parts for other composite keys).
//! 2. **Feature rows to groups**: one probe per feature row, counting rows per group. Rows
//!    whose key no entity row has, whose event timestamp is null, later than every entity
//!    timestamp or older than every entity row's TTL window are dropped here, before any
//!    sorting.
//! 3. **Counting sort** of the kept rows by group (`timeline.rs`): prefix sums give each
//!    group's slot range; rows are placed in table order (so the sort is stable) as 12-byte
//!    `(event, row)` pairs; then each group, a key's handful of versions, is sorted by
//!    `(event, created, row)`, skipped when already in order (the common case for
//!    append-only history). Created times are not copied: they are read from the view's
//!    column only to break ties of equal events and for the cutoff.
//! 4. **Probe**: per entity row, its group's slice, a binary search for the last event
//!    `<= t`, then a backward scan that stops at the first candidate inside the TTL window
//!    (with the cutoff it skips rows created after `t`; without it the scan takes one step).
//!    Rows are probed in blocks of 16 so that their cache misses overlap.
//! 5. **Gather**: each requested feature column is `take`n with one nullable `UInt32` index
//!    array, so output columns have exactly the view's types.
//!
//! Steps 2 to 5 are split across scoped threads (one per core, none for fewer than 64 Ki rows
//! each): step 2 by row chunks with per-thread counts, step 3 by group ranges of about equal
//! row counts (each thread writes only its own part), step 4 by entity row chunks, step 5 by
//! column. Outputs do not depend on the number of threads.
//!
//! Time is O(E + F + Σ gᵢ log gᵢ) for E entity rows, F feature rows and gᵢ kept versions of
//! key i, plus O(E log g) for the probes; the hot loops do not allocate. Extra memory per
//! view, beyond the inputs and the output: 4 bytes per feature row (its group), 12 bytes per
//! kept feature row, 4 bytes per group per thread for the counts, 8 bytes per entity row
//! (its group and its gather index) and the key map, O(distinct entity keys). Microsecond
//! timestamp columns are read in place, not copied. For 1 M entity rows against 10 M feature
//! rows that is about 180 MB at the peak, against the 0.65 GB of the view's own columns.
//!
//! # Hazards
//! - Row indices are `u32`: a view holds at most [`MAX_VIEW_ROWS`] rows per join.
//! - An unsigned 64-bit key above `i64::MAX` converts to null and so never matches.
//! - A tz-aware timestamp must not be cast to a naive one before the join: Arrow's cast then
//!   shifts the value to local wall-clock time. This module reads the raw UTC values.

pub(crate) mod keys;
mod timeline;

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, RecordBatchOptions, UInt32Array};
use arrow::buffer::{BooleanBuffer, NullBuffer, ScalarBuffer};
use arrow::compute::take;
use arrow::datatypes::{
    DataType, Field, Schema, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use arrow::error::ArrowError;

use keys::{Groups, key_columns};
pub(crate) use timeline::NO_ROW;
use timeline::{Timeline, ViewTimes};

/// The most rows one view may hold in a join: row indices are gathered as `u32`.
pub const MAX_VIEW_ROWS: usize = u32::MAX as usize - 1;

/// One feature view's history, as the join reads it.
#[derive(Debug, Clone)]
pub struct JoinView {
    /// The view's name: it prefixes feature columns with `full_feature_names` and names the
    /// view in errors.
    pub name: String,
    /// The view's table rows: join key columns, the event timestamp column, the optional
    /// created timestamp column and the feature columns; other columns are ignored.
    pub rows: RecordBatch,
    /// Columns that must match between the entity rows and `rows`; empty for a view without
    /// entities, whose latest row applies to every entity row.
    pub join_keys: Vec<String>,
    /// The event timestamp column of `rows`.
    pub timestamp_field: String,
    /// The created timestamp column of `rows`, which breaks ties between equal event times.
    pub created_timestamp_field: Option<String>,
    /// Feature columns to return, in this order.
    pub features: Vec<String>,
    /// How old a feature row may be relative to the entity row; `None` or `Some(0)` means
    /// unbounded, as in Feast.
    pub ttl_seconds: Option<u64>,
}

/// Switches of the join that are not properties of a view.
#[derive(Debug, Clone, Copy, Default)]
pub struct JoinOptions {
    /// Also exclude feature rows whose created timestamp is after the entity row's timestamp:
    /// values that were not yet known at that point in time, even if their event time was.
    pub created_timestamp_cutoff: bool,
    /// Name output columns `view__feature` instead of `feature`, as Feast's
    /// `full_feature_names`; needed when two views share a feature name.
    pub full_feature_names: bool,
}

/// The joined rows and how many of them found values.
#[derive(Debug, Clone)]
pub struct JoinOutput {
    /// The entity columns as given, then one column per requested feature per view, in view
    /// order; one row per entity row, in input order.
    pub batch: RecordBatch,
    /// Entity rows for which at least one view had a matching feature row.
    pub matched_rows: usize,
    /// Per view, in view order, the entity rows that view had a matching feature row for.
    pub view_matched_rows: Vec<usize>,
}

/// Why a point-in-time join could not run; each message names the column and what to do.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    /// The entity rows lack a join key of some view.
    #[error(
        "the entity rows have no column `{column}`, a join key of feature view `{view}`; add \
         it to the entity rows (their columns: {available})"
    )]
    MissingEntityKey {
        /// The view that joins on the column.
        view: String,
        /// The missing join key.
        column: String,
        /// The entity rows' columns, comma-separated.
        available: String,
    },
    /// The entity rows lack the timestamp column the join was told to use.
    #[error(
        "the entity rows have no timestamp column `{column}`; name the column holding each \
         row's point in time (their columns: {available})"
    )]
    MissingEntityTimestamp {
        /// The missing column.
        column: String,
        /// The entity rows' columns, comma-separated.
        available: String,
    },
    /// A view's rows lack a column its definition names.
    #[error(
        "feature view `{view}` has no column `{column}` (its {role}); its rows have: {available}"
    )]
    MissingViewColumn {
        /// The view.
        view: String,
        /// The missing column.
        column: String,
        /// What the column was needed as: "join key", "timestamp field", ...
        role: &'static str,
        /// The view rows' columns, comma-separated.
        available: String,
    },
    /// A timestamp column holds something else.
    #[error(
        "column `{column}` of {owner} is {found}, not a timestamp; the join needs an Arrow \
         Timestamp column (any unit or time zone): convert it first"
    )]
    NotATimestamp {
        /// "the entity rows" or "feature view `name`".
        owner: String,
        /// The column.
        column: String,
        /// Its type.
        found: DataType,
    },
    /// A join key's two columns cannot be brought to a comparable type.
    #[error(
        "join key `{column}` of feature view `{view}` cannot be compared: the entity rows \
         hold {entity_type}, the view holds {view_type}; use integer or string keys"
    )]
    KeyType {
        /// The view.
        view: String,
        /// The join key.
        column: String,
        /// The entity column's type.
        entity_type: DataType,
        /// The view column's type.
        view_type: DataType,
        /// Arrow's reason.
        source: Box<ArrowError>,
    },
    /// Two output columns would have the same name.
    #[error(
        "two output columns would be named `{column}`; set full_feature_names to name \
         features `view__feature`, or request the feature from one view only"
    )]
    DuplicateColumn {
        /// The name.
        column: String,
    },
    /// A view has more rows than `u32` indices can address.
    #[error(
        "feature view `{view}` has {rows} rows, more than the {max} one join can read; join \
         its history in time slices"
    )]
    TooManyRows {
        /// The view.
        view: String,
        /// Its row count.
        rows: usize,
        /// [`MAX_VIEW_ROWS`].
        max: usize,
    },
    /// Arrow failed to gather or assemble the output.
    #[error("assembling the joined rows failed: {0}")]
    Arrow(#[from] ArrowError),
}

/// A timestamp column as UTC microseconds; microsecond columns share the Arrow buffer.
/// `history` reads view columns through it too, so both sides convert instants alike.
pub(crate) struct Instants {
    pub(crate) values: ScalarBuffer<i64>,
    pub(crate) nulls: Option<NullBuffer>,
}

impl Instants {
    pub(crate) fn read(
        array: &ArrayRef,
        owner: impl FnOnce() -> String,
        column: &str,
    ) -> Result<Self, OfflineError> {
        let DataType::Timestamp(unit, _) = array.data_type() else {
            return Err(OfflineError::NotATimestamp {
                owner: owner(),
                column: column.to_owned(),
                found: array.data_type().clone(),
            });
        };
        // The stored value of a timestamp is UTC whatever the column's zone, so only the unit
        // needs converting.
        let values = match unit {
            TimeUnit::Microsecond => array
                .as_primitive::<TimestampMicrosecondType>()
                .values()
                .clone(),
            TimeUnit::Second => scaled(array.as_primitive::<TimestampSecondType>().values(), |v| {
                v.saturating_mul(1_000_000)
            }),
            TimeUnit::Millisecond => scaled(
                array.as_primitive::<TimestampMillisecondType>().values(),
                |v| v.saturating_mul(1_000),
            ),
            TimeUnit::Nanosecond => scaled(
                array.as_primitive::<TimestampNanosecondType>().values(),
                |v| v.div_euclid(1_000),
            ),
        };
        Ok(Instants {
            values,
            nulls: array.logical_nulls(),
        })
    }

    #[inline]
    pub(crate) fn is_valid(&self, row: usize) -> bool {
        self.nulls.as_ref().is_none_or(|n| n.is_valid(row))
    }
}

fn scaled(values: &[i64], convert: impl Fn(i64) -> i64) -> ScalarBuffer<i64> {
    values
        .iter()
        .map(|&v| convert(v))
        .collect::<Vec<_>>()
        .into()
}

pub(crate) fn column_list(batch: &RecordBatch) -> String {
    let names: Vec<&str> = batch
        .schema_ref()
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    names.join(", ")
}

fn view_column<'b>(
    view: &'b JoinView,
    column: &str,
    role: &'static str,
) -> Result<&'b ArrayRef, OfflineError> {
    view.rows
        .column_by_name(column)
        .ok_or_else(|| OfflineError::MissingViewColumn {
            view: view.name.clone(),
            column: column.to_owned(),
            role,
            available: column_list(&view.rows),
        })
}

/// Joins each entity row with, per view, the latest feature row at or before its timestamp
/// (see the module doc for the exact rule).
///
/// `entity_timestamp` names the entity rows' timestamp column. Errors name the missing or
/// mistyped column; no partial output is returned.
pub fn point_in_time_join(
    entities: &RecordBatch,
    entity_timestamp: &str,
    views: &[JoinView],
    options: &JoinOptions,
) -> Result<JoinOutput, OfflineError> {
    join_with(
        entities,
        entity_timestamp,
        views,
        options,
        |_, view, times| match_view(entities, times, view, options),
    )
}

/// The join with the matching step supplied: `matcher(i, view, times)` answers, per entity
/// row, the row of `views[i]` it joins with ([`NO_ROW`] for none). Validation, output naming
/// and the gather are shared, so `history`'s joins against prebuilt histories answer exactly
/// what [`point_in_time_join`] answers, column types, names and errors included.
pub(crate) fn join_with(
    entities: &RecordBatch,
    entity_timestamp: &str,
    views: &[JoinView],
    options: &JoinOptions,
    mut matcher: impl FnMut(usize, &JoinView, &Instants) -> Result<Vec<u32>, OfflineError>,
) -> Result<JoinOutput, OfflineError> {
    let times = entities.column_by_name(entity_timestamp).ok_or_else(|| {
        OfflineError::MissingEntityTimestamp {
            column: entity_timestamp.to_owned(),
            available: column_list(entities),
        }
    })?;
    let times = Instants::read(times, || "the entity rows".to_owned(), entity_timestamp)?;
    let fields = output_fields(entities, views, options)?;
    // Everything a view could fail on is checked before any view's work starts.
    for view in views {
        check_view(entities, view)?;
    }

    let rows = entities.num_rows();
    let mut matched = vec![false; rows];
    let mut view_matched_rows = Vec::with_capacity(views.len());
    let mut columns: Vec<ArrayRef> = entities.columns().to_vec();
    for (i, view) in views.iter().enumerate() {
        let mut rows_of = matcher(i, view, &times)?;
        let mut count = 0;
        for (row, &index) in rows_of.iter().enumerate() {
            if index != NO_ROW {
                matched[row] = true;
                count += 1;
            }
        }
        view_matched_rows.push(count);
        let nulls = (count < rows).then(|| {
            NullBuffer::new(BooleanBuffer::collect_bool(rows, |row| {
                rows_of[row] != NO_ROW
            }))
        });
        // A null index's value is never read, but keep it in bounds for every `take` kernel.
        rows_of
            .iter_mut()
            .filter(|i| **i == NO_ROW)
            .for_each(|i| *i = 0);
        let indices = UInt32Array::new(rows_of.into(), nulls);
        let sources: Vec<&ArrayRef> = view
            .features
            .iter()
            .map(|feature| view_column(view, feature, "feature"))
            .collect::<Result<_, _>>()?;
        // Gathers are independent per column: one thread per column, up to the cores.
        let per_thread = sources
            .len()
            .div_ceil(threads_for(rows.saturating_mul(sources.len())))
            .max(1);
        let gathered = in_parallel(sources.chunks(per_thread).collect(), |chunk| {
            chunk
                .iter()
                .map(|column| take(column.as_ref(), &indices, None))
                .collect::<Result<Vec<_>, _>>()
        });
        for chunk in gathered {
            columns.extend(chunk?);
        }
    }
    let schema = Arc::new(Schema::new_with_metadata(
        fields,
        entities.schema_ref().metadata().clone(),
    ));
    // The row count is explicit so that a request with no columns at all keeps its rows.
    let batch = RecordBatch::try_new_with_options(
        schema,
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )?;
    Ok(JoinOutput {
        batch,
        matched_rows: matched.iter().filter(|&&m| m).count(),
        view_matched_rows,
    })
}

fn output_fields(
    entities: &RecordBatch,
    views: &[JoinView],
    options: &JoinOptions,
) -> Result<Vec<Arc<Field>>, OfflineError> {
    let mut fields: Vec<Arc<Field>> = entities.schema_ref().fields().iter().cloned().collect();
    let mut seen: std::collections::HashSet<String> =
        fields.iter().map(|f| f.name().clone()).collect();
    for view in views {
        for feature in &view.features {
            let source = view
                .rows
                .schema_ref()
                .field_with_name(feature)
                .map_err(|_| OfflineError::MissingViewColumn {
                    view: view.name.clone(),
                    column: feature.clone(),
                    role: "feature",
                    available: column_list(&view.rows),
                })?;
            let name = if options.full_feature_names {
                format!("{}__{}", view.name, feature)
            } else {
                feature.clone()
            };
            if !seen.insert(name.clone()) {
                return Err(OfflineError::DuplicateColumn { column: name });
            }
            // Unmatched entity rows are null whatever the source column allows.
            fields.push(Arc::new(source.clone().with_name(name).with_nullable(true)));
        }
    }
    Ok(fields)
}

fn check_view(entities: &RecordBatch, view: &JoinView) -> Result<(), OfflineError> {
    for key in &view.join_keys {
        if entities.column_by_name(key).is_none() {
            return Err(OfflineError::MissingEntityKey {
                view: view.name.clone(),
                column: key.clone(),
                available: column_list(entities),
            });
        }
        view_column(view, key, "join key")?;
    }
    let owner = || format!("feature view `{}`", view.name);
    let event = view_column(view, &view.timestamp_field, "timestamp field")?;
    if !matches!(event.data_type(), DataType::Timestamp(..)) {
        return Err(OfflineError::NotATimestamp {
            owner: owner(),
            column: view.timestamp_field.clone(),
            found: event.data_type().clone(),
        });
    }
    if let Some(created) = &view.created_timestamp_field {
        let column = view_column(view, created, "created timestamp field")?;
        if !matches!(column.data_type(), DataType::Timestamp(..)) {
            return Err(OfflineError::NotATimestamp {
                owner: owner(),
                column: created.clone(),
                found: column.data_type().clone(),
            });
        }
    }
    if view.rows.num_rows() > MAX_VIEW_ROWS {
        return Err(OfflineError::TooManyRows {
            view: view.name.clone(),
            rows: view.rows.num_rows(),
            max: MAX_VIEW_ROWS,
        });
    }
    Ok(())
}

/// The row of `view` each entity row joins with ([`NO_ROW`] for none).
fn match_view(
    entities: &RecordBatch,
    times: &Instants,
    view: &JoinView,
    options: &JoinOptions,
) -> Result<Vec<u32>, OfflineError> {
    let owner = || format!("feature view `{}`", view.name);
    let events = Instants::read(
        view_column(view, &view.timestamp_field, "timestamp field")?,
        owner,
        &view.timestamp_field,
    )?;
    let created = match &view.created_timestamp_field {
        Some(name) => Some(Instants::read(
            view_column(view, name, "created timestamp field")?,
            owner,
            name,
        )?),
        None => None,
    };
    let mut entity_keys = Vec::with_capacity(view.join_keys.len());
    let mut view_keys = Vec::with_capacity(view.join_keys.len());
    for key in &view.join_keys {
        let entity =
            entities
                .column_by_name(key)
                .ok_or_else(|| OfflineError::MissingEntityKey {
                    view: view.name.clone(),
                    column: key.clone(),
                    available: column_list(entities),
                })?;
        let (e, v) = key_columns(&view.name, key, entity, view_column(view, key, "join key")?)?;
        entity_keys.push(e);
        view_keys.push(v);
    }
    let ttl = match view.ttl_seconds {
        Some(seconds) if seconds > 0 => i64::try_from(seconds)
            .unwrap_or(i64::MAX)
            .saturating_mul(1_000_000),
        _ => i64::MAX,
    };
    // Feature rows outside every entity row's window can never match: they are dropped
    // before they cost a hash probe.
    let (mut earliest, mut latest) = (i64::MAX, i64::MIN);
    for (row, &t) in times.values.iter().enumerate() {
        if times.is_valid(row) {
            earliest = earliest.min(t);
            latest = latest.max(t);
        }
    }
    let groups = Groups::of_entities(&entity_keys, entities.num_rows());
    let view_times = ViewTimes {
        events: &events,
        created: created.as_ref(),
    };
    let timeline = Timeline::build(
        &groups,
        &view_keys,
        &view_times,
        earliest.saturating_sub(ttl),
        latest,
    );
    Ok(timeline.probe(
        &groups.entity,
        times,
        &view_times,
        ttl,
        options.created_timestamp_cutoff,
    ))
}

/// The number of threads for `rows` rows of work: one per core (at most [`MAX_THREADS`]),
/// but none for less than [`ROWS_PER_THREAD`] rows each, where starting a thread costs more
/// than it saves.
pub(crate) fn threads_for(rows: usize) -> usize {
    // Tests use three "cores" whatever the machine, so the split paths always run.
    let cores = if cfg!(test) {
        3
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    };
    (rows / ROWS_PER_THREAD).clamp(1, cores.clamp(1, MAX_THREADS))
}

/// Fewer rows than this per thread are done on one thread.
#[cfg(not(test))]
const ROWS_PER_THREAD: usize = 1 << 16;
/// Tests split even a handful of rows, so the brute-force comparison covers the split paths.
#[cfg(test)]
const ROWS_PER_THREAD: usize = 3;
/// The join spreads over at most this many cores.
const MAX_THREADS: usize = 8;

/// Runs `work` on each part, each on its own scoped thread (the last on the caller's), and
/// returns the results in the parts' order. A panic in a worker is resumed on the caller.
pub(crate) fn in_parallel<P: Send, R: Send>(
    mut parts: Vec<P>,
    work: impl Fn(P) -> R + Sync,
) -> Vec<R> {
    let Some(last) = parts.pop() else {
        return Vec::new();
    };
    if parts.is_empty() {
        return vec![work(last)];
    }
    let work = &work;
    std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|part| scope.spawn(move || work(part)))
            .collect();
        let last = work(last);
        let mut results: Vec<R> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect();
        results.push(last);
        results
    })
}

#[cfg(test)]
mod tests;
