//! The point-in-time join against prebuilt histories: `offline`'s join with its matching
//! step replaced by a probe per entity row, so validation, output names and types, and the
//! gather are the join's own, and the answers are identical.

use arrow::array::RecordBatch;

use super::ViewHistory;
use crate::offline::{JoinOptions, JoinOutput, JoinView, OfflineError, join_with};

/// One view of a join against histories: the history and what to take from it.
#[derive(Debug, Clone)]
pub struct HistoryJoinView<'h> {
    /// The view's history (its name names the view in the output and errors).
    pub history: &'h ViewHistory,
    /// Feature columns to return, in this order.
    pub features: Vec<String>,
    /// How old a feature row may be relative to the entity row; `None` or `Some(0)` means
    /// unbounded.
    pub ttl_seconds: Option<u64>,
}

/// Joins each entity row with, per view, the latest version at or before its timestamp:
/// exactly [`crate::offline::point_in_time_join`] over the histories' rows.
pub fn join(
    entities: &RecordBatch,
    entity_timestamp: &str,
    views: &[HistoryJoinView<'_>],
    options: &JoinOptions,
) -> Result<JoinOutput, OfflineError> {
    let join_views: Vec<JoinView> = views
        .iter()
        .map(|v| JoinView {
            name: v.history.view.clone(),
            rows: v.history.rows.clone(),
            join_keys: v.history.join_keys.clone(),
            timestamp_field: v.history.timestamp_field.clone(),
            created_timestamp_field: v.history.created_timestamp_field.clone(),
            features: v.features.clone(),
            ttl_seconds: v.ttl_seconds,
        })
        .collect();
    join_with(
        entities,
        entity_timestamp,
        &join_views,
        options,
        |i, view, times| {
            views[i].history.probe(
                entities,
                times,
                view.ttl_seconds,
                options.created_timestamp_cutoff,
            )
        },
    )
}
