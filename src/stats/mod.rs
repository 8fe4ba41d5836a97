//! Per-column statistics of a table version, computed in the pass that writes it, merged for
//! appends, and compared between versions (drift).

mod column;
mod distinct;
mod drift;
mod figures;
mod frequent;
mod merge;
mod numeric;
mod quantile;
#[cfg(test)]
mod tests;

pub use drift::SHARE_FLOOR;
pub use figures::{
    ColumnDrift, ColumnKind, ColumnStats, DriftStatus, HistogramBin, NumericStats, Percentiles,
    TimestampStats, TopValues, ValueCount,
};

use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use column::ColumnState;

/// The statistics of one table version: the figures users read plus the state that merges
/// them with an appended part's. Stored beside the version, so reading them never decodes
/// the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionStats {
    rows: u64,
    columns: Vec<ColumnStats>,
    /// One per column, in the same order: what merges the figures with an appended part's.
    #[serde(default)]
    state: Vec<ColumnState>,
}

impl VersionStats {
    /// The statistics of `batches` (one table's rows, in logical types), in one pass per
    /// column. Batches must share the first one's schema; columns are matched by position.
    pub fn compute(batches: &[RecordBatch]) -> Self {
        let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
        let Some(first) = batches.first() else {
            return Self {
                rows,
                columns: Vec::new(),
                state: Vec::new(),
            };
        };
        let schema = first.schema();
        let (columns, state) = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, field)| {
                let arrays: Vec<_> = batches.iter().filter_map(|b| b.columns().get(i)).collect();
                column::compute(field.name(), field.data_type(), &arrays)
            })
            .unzip();
        Self {
            rows,
            columns,
            state,
        }
    }

    /// The statistics of this version followed by `appended`'s rows (an append): columns in
    /// only one side count as null in the other.
    pub fn merge(&self, appended: &VersionStats) -> Self {
        let mut names: Vec<&str> = self.columns.iter().map(|c| c.name.as_str()).collect();
        for c in &appended.columns {
            if !names.contains(&c.name.as_str()) {
                names.push(&c.name);
            }
        }
        let (columns, state) = names
            .into_iter()
            .map(|name| {
                let (mut stats, state) = merge::merge_column(
                    self.column(name),
                    self.rows,
                    appended.column(name),
                    appended.rows,
                );
                stats.name = name.to_owned();
                (stats, state)
            })
            .unzip();
        Self {
            rows: self.rows + appended.rows,
            columns,
            state,
        }
    }

    /// The figures and state of the column called `name`.
    fn column(&self, name: &str) -> merge::Side<'_> {
        let i = self.columns.iter().position(|c| c.name == name)?;
        Some((&self.columns[i], self.state_of(i)))
    }

    /// Column `i`'s state; statistics stored before the state existed merge as if empty.
    fn state_of(&self, i: usize) -> &ColumnState {
        static EMPTY: ColumnState = ColumnState {
            distinct: None,
            moments: None,
            quantiles: None,
            frequent: None,
            instants: None,
        };
        self.state.get(i).unwrap_or(&EMPTY)
    }

    /// Rows in the version.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The figures, one entry per column in table order.
    pub fn columns(&self) -> &[ColumnStats] {
        &self.columns
    }
}

/// How each column moved from `from` to `to` (population stability index, null rate and mean;
/// see the `drift` module for how PSI is binned); `threshold` is the PSI at which a column is
/// flagged (`over_threshold`).
pub fn drift(from: &VersionStats, to: &VersionStats, threshold: f64) -> Vec<ColumnDrift> {
    drift::drift(from, to, threshold)
}
