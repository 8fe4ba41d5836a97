//! Rows read from the shared online tier for one request: at most one row per entity (Redis
//! keeps each entity's latest), so answering a feature is a gather, with no index to build.

use arrow::array::{Array, ArrayRef};
use arrow::record_batch::RecordBatch;

use super::{FeatureColumn, FieldStatus};
use crate::model::FeatureView;

/// One view's rows from the shared tier, for the entity rows of one request.
#[derive(Debug)]
pub struct SharedRows<'v> {
    view: &'v FeatureView,
    /// The rows found, in the view's layout, typed as its table.
    rows: RecordBatch,
    /// Each found row's event time (µs).
    event_micros: Vec<i64>,
    /// Per entity row of the request: its row in `rows`, if the tier has one.
    found: Vec<Option<u32>>,
}

impl<'v> SharedRows<'v> {
    /// Rows `rows` (with their event times), found for the request's entity rows as `found`
    /// says.
    pub fn new(
        view: &'v FeatureView,
        rows: RecordBatch,
        event_micros: Vec<i64>,
        found: Vec<Option<u32>>,
    ) -> Self {
        Self {
            view,
            rows,
            event_micros,
            found,
        }
    }

    /// Requested features of this view that its table does not have (any more).
    pub fn missing_features<'f>(&self, features: impl Iterator<Item = &'f str>) -> Vec<String> {
        features
            .filter(|f| self.rows.column_by_name(f).is_none())
            .map(str::to_owned)
            .collect()
    }

    /// Answers one feature for every entity row, with the statuses the local index gives: a
    /// row with a future event is not served yet (not found here; the merge then keeps the
    /// table's row), one older than the view's TTL is `OUTSIDE_MAX_AGE`, a null value is
    /// `NULL_VALUE`.
    pub fn lookup(&self, feature: &str, name: String, now_micros: i64) -> Option<FeatureColumn> {
        if !self.view.features.iter().any(|f| f.name == feature) {
            return None;
        }
        let column: &ArrayRef = self.rows.column_by_name(feature)?;
        let oldest = self.view.ttl_seconds.filter(|t| *t > 0).map(|t| {
            now_micros.saturating_sub(
                i64::try_from(t)
                    .unwrap_or(i64::MAX / 1_000_000)
                    .saturating_mul(1_000_000),
            )
        });
        let n = self.found.len();
        let (mut rows, mut statuses, mut timestamps) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for found in &self.found {
            let Some(row) = *found else {
                rows.push(None);
                statuses.push(FieldStatus::NotFound);
                timestamps.push(0);
                continue;
            };
            let event = self.event_micros[row as usize];
            let status = if event > now_micros {
                FieldStatus::NotFound
            } else if oldest.is_some_and(|oldest| event < oldest) {
                FieldStatus::OutsideMaxAge
            } else if column.is_null(row as usize)
                || column.data_type() == &arrow::datatypes::DataType::Null
            {
                FieldStatus::NullValue
            } else {
                FieldStatus::Present
            };
            rows.push((status == FieldStatus::Present).then_some(row));
            timestamps.push(if status == FieldStatus::NotFound {
                0
            } else {
                event
            });
            statuses.push(status);
        }
        Some(FeatureColumn {
            name,
            column: std::sync::Arc::clone(column),
            rows,
            statuses,
            timestamps,
        })
    }
}
