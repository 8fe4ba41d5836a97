//! As-of and last-N online reads: `/get-online-features` with `as_of` or `last_n`, answered
//! from the decoded history of each view's current table version (`crate::history`), never
//! from the online index and never by reading Parquet once the history is warm.
//!
//! # The rule
//! For each entity row and view, the history's versions of that entity key are sorted by
//! (event, created, table row); those with an event at or before the reference instant (`as_of`,
//! else now) are candidates, and the last one wins: the point-in-time rule of `offline`, ties
//! going to the later created timestamp, then to the later row of the table. `last_n` takes the
//! N last candidates instead of one, newest first. Each value's status is that of an online
//! lookup with TTL measured from the reference instant: older than `reference - ttl` is
//! `OUTSIDE_MAX_AGE` (value null, event time kept), a null value `NULL_VALUE`, else `PRESENT`.
//!
//! # What the history holds
//! Every row of the view's *current* table version (rows written or pushed offline are in it
//! once appended), whatever version was current at `as_of`: the table keeps every event, so
//! the current version is the most complete account of the past. Rows pushed with
//! `"to": "online"` live only in the online store, not in the table, so these reads do not see
//! them; nor do they read the shared Redis tier.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, Weak};

use arrow::array::{Array, ArrayRef, UInt32Array};
use arrow::compute::take;
use serde_json::Value;

use super::FeatureStore;
use super::error::{Result, StoreError};
use super::online::{self, OnlineAnswer, OnlineQuery, Plan};
use crate::history::ViewHistory;
use crate::model::{FeatureView, TableName};
use crate::online::{FeatureColumn, FieldStatus};
use crate::storage::{Storage, VersionSelector};

/// Where in time an online read looks; both `None` is today's latest-value lookup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OnlineWhen {
    /// Answer as of this instant (µs since the epoch, UTC) instead of now; TTL is measured
    /// from it.
    pub as_of_micros: Option<i64>,
    /// Answer each feature's N latest values per entity row, newest first.
    pub last_n: Option<usize>,
}

impl OnlineWhen {
    /// Whether the request asks for anything but today's lookup.
    pub fn is_set(&self) -> bool {
        self.as_of_micros.is_some() || self.last_n.is_some()
    }
}

/// One requested feature's latest values per entity row, as lists: the entries of entity row
/// `r` are `entries(r)` of `rows`, `statuses` and `timestamps`, newest first.
#[derive(Debug)]
pub struct FeatureSeries {
    /// The name shown to the client (`feature` or `view__feature`).
    pub name: String,
    /// The served values, gathered from the view's history (only those: a request never
    /// carries a column of the whole table to the writer).
    pub column: ArrayRef,
    /// Per entity row, where its entries start; one more element than there are rows.
    pub offsets: Vec<u32>,
    /// Per entry: the row in `column` when the value is served (PRESENT).
    pub rows: Vec<Option<u32>>,
    /// Per entry: the status.
    pub statuses: Vec<FieldStatus>,
    /// Per entry: the event time in µs.
    pub timestamps: Vec<i64>,
}

impl FeatureSeries {
    /// The entries of entity row `row` (empty when the entity has no value at or before the
    /// reference instant).
    pub fn entries(&self, row: usize) -> Range<usize> {
        let at = |i: usize| self.offsets.get(i).map_or(0, |o| *o as usize);
        at(row)..at(row + 1).max(at(row))
    }
}

/// The answer of a `last_n` read: entity columns (echoed) then one series per feature.
#[derive(Debug)]
pub struct OnlineSeriesAnswer {
    /// Join key columns, as sent.
    pub entities: Vec<(String, Vec<Value>)>,
    /// One per requested feature, in request order.
    pub features: Vec<FeatureSeries>,
}

/// What an as-of or last-N read answers.
#[derive(Debug)]
pub enum OnlineHistoryAnswer {
    /// `as_of` alone: one value per entity row and feature, in the shape of today's lookup.
    Latest(OnlineAnswer),
    /// `last_n` (with or without `as_of`): lists.
    Series(OnlineSeriesAnswer),
}

impl FeatureStore {
    /// `/get-online-features` with `as_of` and/or `last_n` (see the module doc for the rule):
    /// each requested view's history of its current table version, built once and shared, then
    /// per entity row a hash probe, a binary search and a gather.
    pub async fn online_history(
        &self,
        query: OnlineQuery,
        when: OnlineWhen,
    ) -> Result<OnlineHistoryAnswer> {
        let registry = self.registry.snapshot();
        let plan = online::plan(&registry, &query)?;
        let reference = when
            .as_of_micros
            .unwrap_or_else(|| self.clock.wall_micros());
        let mut histories = HashMap::with_capacity(plan.views().len());
        let mut missing = Vec::new();
        for view in plan.views() {
            let join_keys = online::join_keys(&plan, &view.name);
            match self.recent_histories.fresh(&self.storage, view, &join_keys) {
                Some(history) => {
                    histories.insert(view.name.clone(), history);
                }
                None => missing.push((view.name.clone(), (*view).clone(), join_keys)),
            }
        }
        if !missing.is_empty() {
            // One trip to the blocking pool for every view not seen warm: a history may have
            // to be read from Parquet.
            let (cache, recent) = (
                Arc::clone(&self.histories),
                Arc::clone(&self.recent_histories),
            );
            let registry = Arc::clone(&registry);
            let found = self
                .blocking(move |s, _| {
                    let mut found = Vec::with_capacity(missing.len());
                    for (name, view, join_keys) in missing {
                        let (history, table) = super::history::view_history_blocking(
                            s,
                            &cache,
                            &registry,
                            &name,
                            VersionSelector::Current,
                        )?;
                        recent.remember(view, join_keys, &table, &history);
                        found.push((name, history));
                    }
                    Ok(found)
                })
                .await?;
            histories.extend(found);
        }
        let series = series(
            &plan,
            &query,
            &histories,
            reference,
            when.last_n.unwrap_or(1),
        )?;
        let entities = online::echoed_entities(&plan, query.entities);
        Ok(match when.last_n {
            Some(_) => OnlineHistoryAnswer::Series(OnlineSeriesAnswer {
                entities,
                features: series,
            }),
            None => OnlineHistoryAnswer::Latest(OnlineAnswer {
                entities,
                features: series.into_iter().map(latest).collect(),
            }),
        })
    }
}

/// The history each view's last as-of read used, held weakly, so that a warm read finds it
/// without a trip to the blocking pool (that trip was most of the cost of a 1-entity read)
/// while the history cache alone decides what stays in memory: once it drops a history, the
/// weak reference no longer upgrades and the next read asks the cache again.
#[derive(Debug, Default)]
pub(super) struct RecentHistories(Mutex<HashMap<String, Recent>>);

/// What a remembered history was built for.
#[derive(Debug)]
struct Recent {
    view: FeatureView,
    join_keys: Vec<String>,
    version: u64,
    snapshot: u64,
    history: Weak<ViewHistory>,
}

impl RecentHistories {
    /// The remembered history of `view` if it is still kept and still describes the table's
    /// current version and snapshot under the same definition; never touches the disk.
    fn fresh(
        &self,
        storage: &Storage,
        view: &FeatureView,
        join_keys: &[String],
    ) -> Option<Arc<ViewHistory>> {
        let name: TableName = view.name.parse().ok()?;
        let table = storage.peek(&name)?;
        let recent = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let entry = recent.get(&view.name)?;
        (entry.version == table.version
            && entry.snapshot == table.file.snapshot_id()
            && entry.join_keys == join_keys
            && entry.view == *view)
            .then(|| entry.history.upgrade())
            .flatten()
    }

    /// Remembers the history `view` was just answered from.
    fn remember(
        &self,
        view: FeatureView,
        join_keys: Vec<String>,
        table: &crate::storage::TableHandle,
        history: &Arc<ViewHistory>,
    ) {
        let entry = Recent {
            view,
            join_keys,
            version: table.version,
            snapshot: table.file.snapshot_id(),
            history: Arc::downgrade(history),
        };
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(entry.view.name.clone(), entry);
    }
}

/// A series of at most one entry per row as a column of today's lookup: no entry is
/// `NOT_FOUND` with the epoch as event time.
fn latest(series: FeatureSeries) -> FeatureColumn {
    let rows = series.offsets.len().saturating_sub(1);
    let mut column = FeatureColumn {
        name: String::new(),
        column: Arc::clone(&series.column),
        rows: Vec::with_capacity(rows),
        statuses: Vec::with_capacity(rows),
        timestamps: Vec::with_capacity(rows),
    };
    for row in 0..rows {
        match series.entries(row).next() {
            Some(entry) => {
                column.rows.push(series.rows[entry]);
                column.statuses.push(series.statuses[entry]);
                column.timestamps.push(series.timestamps[entry]);
            }
            None => {
                column.rows.push(None);
                column.statuses.push(FieldStatus::NotFound);
                column.timestamps.push(0);
            }
        }
    }
    column.name = series.name;
    column
}

/// The TTL of `view` in µs, `None` when unbounded (absent or 0, as in Feast).
fn ttl_micros(view: &FeatureView) -> Option<i64> {
    view.ttl_seconds.filter(|t| *t > 0).map(|t| {
        i64::try_from(t)
            .unwrap_or(i64::MAX / 1_000_000)
            .saturating_mul(1_000_000)
    })
}

/// Each entity row's group in `history`, for the join keys of one view.
fn groups(history: &ViewHistory, join_keys: &[String], query: &OnlineQuery) -> Vec<Option<u32>> {
    let rows = query.entities.first().map_or(0, |(_, v)| v.len());
    let columns: Vec<&Vec<Value>> = join_keys
        .iter()
        .filter_map(|k| query.entities.iter().find(|(name, _)| name == k))
        .map(|(_, values)| values)
        .collect();
    let mut parts: Vec<&Value> = Vec::with_capacity(columns.len());
    (0..rows)
        .map(|row| {
            parts.clear();
            parts.extend(columns.iter().filter_map(|c| c.get(row)));
            history.group_of_json(&parts)
        })
        .collect()
}

/// The N last versions at or before `reference` of every requested feature for every entity
/// row, in request order.
fn series(
    plan: &Plan<'_>,
    query: &OnlineQuery,
    histories: &HashMap<String, Arc<ViewHistory>>,
    reference: i64,
    n: usize,
) -> Result<Vec<FeatureSeries>> {
    // Every missing column of every view at once, as the index path reports them.
    for view in plan.views() {
        let Some(history) = histories.get(&view.name) else {
            continue;
        };
        let missing: Vec<String> = plan
            .refs()
            .iter()
            .filter(|r| r.view == view.name && history.rows().column_by_name(&r.feature).is_none())
            .map(|r| r.feature.clone())
            .collect();
        if !missing.is_empty() {
            return Err(StoreError::ViewTableMismatch {
                view: view.name.clone(),
                columns: missing,
            });
        }
    }
    let mut groups_of: HashMap<&str, Vec<Option<u32>>> = HashMap::new();
    for view in plan.views() {
        if let Some(history) = histories.get(&view.name) {
            let keys = online::join_keys(plan, &view.name);
            groups_of.insert(view.name.as_str(), groups(history, &keys, query));
        }
    }
    let mut out = Vec::with_capacity(plan.refs().len());
    for r in plan.refs() {
        let (Some(view), Some(history), Some(groups)) = (
            plan.views().iter().find(|v| v.name == r.view),
            histories.get(&r.view),
            groups_of.get(r.view.as_str()),
        ) else {
            continue;
        };
        let Some(source) = history.rows().column_by_name(&r.feature) else {
            continue;
        };
        let name = if query.full_feature_names {
            format!("{}__{}", r.view, r.feature)
        } else {
            r.feature.clone()
        };
        out.push(feature_series(
            name,
            source,
            history,
            groups,
            reference,
            ttl_micros(view),
            n,
        )?);
    }
    Ok(out)
}

/// One feature's series: per entity row, the last `n` versions of its group with an event at
/// or before `reference`, newest first; served values gathered into one compact column.
fn feature_series(
    name: String,
    source: &ArrayRef,
    history: &ViewHistory,
    groups: &[Option<u32>],
    reference: i64,
    ttl: Option<i64>,
    n: usize,
) -> Result<FeatureSeries> {
    let oldest = ttl.map(|ttl| reference.saturating_sub(ttl));
    let capacity = groups.len().saturating_mul(n.min(16));
    let mut offsets = Vec::with_capacity(groups.len() + 1);
    let (mut rows, mut statuses, mut timestamps) = (
        Vec::with_capacity(capacity),
        Vec::with_capacity(capacity),
        Vec::with_capacity(capacity),
    );
    let mut picks: Vec<u32> = Vec::new();
    offsets.push(0);
    for group in groups {
        if let Some(group) = *group {
            let events = history.events(group);
            let table_rows = history.table_rows(group);
            let end = events.partition_point(|e| *e <= reference);
            let start = end.saturating_sub(n);
            for i in (start..end).rev() {
                let (Some(&event), Some(&row)) = (events.get(i), table_rows.get(i)) else {
                    continue;
                };
                let status = if oldest.is_some_and(|oldest| event < oldest) {
                    FieldStatus::OutsideMaxAge
                } else if source.is_null(row as usize)
                    // A column typed null has no validity buffer: `is_null` says false.
                    || source.data_type() == &arrow::datatypes::DataType::Null
                {
                    FieldStatus::NullValue
                } else {
                    FieldStatus::Present
                };
                rows.push((status == FieldStatus::Present).then(|| {
                    picks.push(row);
                    picks.len() as u32 - 1
                }));
                statuses.push(status);
                timestamps.push(event);
            }
        }
        offsets.push(u32::try_from(rows.len()).unwrap_or(u32::MAX));
    }
    let column = take(source.as_ref(), &UInt32Array::from(picks), None)
        .map_err(|e| StoreError::Storage(e.into()))?;
    Ok(FeatureSeries {
        name,
        column,
        offsets,
        rows,
        statuses,
        timestamps,
    })
}
