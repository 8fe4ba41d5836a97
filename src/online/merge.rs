//! Two answers for one feature, merged: the local index's (table rows) and the shared online
//! tier's (rows pushed or materialized into Redis). Per entity row the later event wins; on
//! equal event times the shared tier's row wins, as a pushed row wins over a table row in the
//! local index (it was written last).

use std::sync::Arc;

use arrow::array::Array;

use super::{FeatureColumn, FieldStatus};

/// Merges `local` and `shared`, the answers of one feature for the same entity rows.
pub fn merge_columns(
    local: Option<FeatureColumn>,
    shared: Option<FeatureColumn>,
) -> Option<FeatureColumn> {
    let (local, shared) = match (local, shared) {
        (Some(local), Some(shared)) => (local, shared),
        (local, shared) => return local.or(shared),
    };
    // Gathered as one column below, so the shared rows take the local column's type (the
    // table's, which the shared rows were decoded to already unless it changed since).
    let shared_column = if shared.column.data_type() == local.column.data_type() {
        Arc::clone(&shared.column)
    } else {
        match arrow::compute::cast(&shared.column, local.column.data_type()) {
            Ok(cast) => cast,
            Err(e) => {
                tracing::warn!(feature = %local.name, error = %e, "rows from the shared online tier no longer fit the table's type; answered from the table");
                return Some(local);
            }
        }
    };
    let n = local.statuses.len();
    let mut picks = Vec::with_capacity(n);
    let (mut rows, mut statuses, mut timestamps) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for i in 0..n {
        let take_shared = match (local.statuses[i], shared.statuses[i]) {
            (_, FieldStatus::NotFound) => false,
            (FieldStatus::NotFound, _) => true,
            _ => shared.timestamps[i] >= local.timestamps[i],
        };
        let (source, row) = if take_shared {
            (1usize, shared.rows[i])
        } else {
            (0usize, local.rows[i])
        };
        let status = if take_shared {
            shared.statuses[i]
        } else {
            local.statuses[i]
        };
        let timestamp = if take_shared {
            shared.timestamps[i]
        } else {
            local.timestamps[i]
        };
        rows.push(row.map(|r| {
            picks.push((source, r as usize));
            (picks.len() - 1) as u32
        }));
        statuses.push(status);
        timestamps.push(timestamp);
    }
    let sources: [&dyn Array; 2] = [local.column.as_ref(), shared_column.as_ref()];
    let column = match arrow::compute::interleave(&sources, &picks) {
        Ok(column) => column,
        Err(e) => {
            tracing::warn!(feature = %local.name, error = %e, "could not merge the shared online tier's rows; answered from the table");
            return Some(local);
        }
    };
    Some(FeatureColumn {
        name: local.name,
        column,
        rows,
        statuses,
        timestamps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Int64Array};

    fn answer(
        values: Vec<Option<i64>>,
        statuses: Vec<FieldStatus>,
        timestamps: Vec<i64>,
    ) -> FeatureColumn {
        let rows = statuses
            .iter()
            .enumerate()
            .map(|(i, s)| (*s == FieldStatus::Present).then_some(i as u32))
            .collect();
        FeatureColumn {
            name: "f".into(),
            column: Arc::new(Int64Array::from(values)) as ArrayRef,
            rows,
            statuses,
            timestamps,
        }
    }

    #[test]
    fn the_later_event_wins_and_ties_go_to_the_shared_tier() {
        use FieldStatus::*;
        let local = answer(
            vec![Some(1), Some(2), Some(3), None],
            vec![Present, Present, Present, NotFound],
            vec![10, 20, 30, 0],
        );
        let shared = answer(
            vec![Some(11), Some(12), None, Some(14)],
            vec![Present, Present, NotFound, Present],
            vec![5, 20, 0, 40],
        );
        let Some(merged) = merge_columns(Some(local), Some(shared)) else {
            panic!("merged answer");
        };
        assert_eq!(merged.timestamps, vec![10, 20, 30, 40]);
        let values: Vec<Option<i64>> = merged
            .rows
            .iter()
            .map(|r| {
                r.map(|r| {
                    merged
                        .column
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .map_or(-1, |a| a.value(r as usize))
                })
            })
            .collect();
        assert_eq!(values, vec![Some(1), Some(12), Some(3), Some(14)]);
    }
}
