//! `materialize`: make the online store of some views current and durable.
//!
//! featurestore keeps online serving in step with the tables (a table write is visible to the
//! next lookup), so materializing does not decide *what* is online; it persists the online
//! index (the latest row per key, pushed rows included) into the durable online store, so a
//! restart serves those views at once instead of rebuilding them from Parquet, and it records
//! the window's end as the view's watermark for the next incremental run. The window is
//! reported (rows whose event time falls in it) and validated like Feast's, but rows outside
//! it are not withheld from lookups: the online value of a key is always its latest row at or
//! before now.

use super::error::{Result, StoreError};
use super::online::{self, IndexCache};
use crate::model::{FeatureView, TableName};
use crate::online::durable::{Materialized, OnlineDb};
use crate::storage::Storage;

/// A materialization request (Feast's `materialize` / `materialize-incremental`).
#[derive(Debug, Clone)]
pub struct MaterializeRequest {
    /// Views to materialize; `None` for every registered view.
    pub feature_views: Option<Vec<String>>,
    /// Start of the window (µs since the epoch); ignored when `incremental`.
    pub start_micros: Option<i64>,
    /// End of the window (µs since the epoch).
    pub end_micros: i64,
    /// Start where the previous run of each view ended (or at `end - ttl` the first time).
    pub incremental: bool,
}

/// What materializing one view did.
#[derive(Debug, Clone)]
pub struct MaterializedView {
    /// The view.
    pub feature_view: String,
    /// Start of its window (µs); `None` means from the beginning.
    pub start_micros: Option<i64>,
    /// End of its window (µs): the new watermark.
    pub end_micros: i64,
    /// Table rows whose event time falls in the window.
    pub rows_in_window: u64,
    /// Entity keys now stored online for the view.
    pub entities: u64,
    /// Time taken, in milliseconds.
    pub millis: u64,
    /// Why the view was not materialized (its table is missing); `None` when it was.
    pub skipped: Option<String>,
}

/// The entry of a view that a materialization of every view left out because its table is
/// missing; its watermark does not move.
pub(super) fn skipped(view: &FeatureView, request: &MaterializeRequest) -> MaterializedView {
    MaterializedView {
        feature_view: view.name.clone(),
        start_micros: request.start_micros,
        end_micros: request.end_micros,
        rows_in_window: 0,
        entities: 0,
        millis: 0,
        skipped: Some(format!(
            "no table {}/{}: write the table again, or unregister the view with DELETE \
             /registry/feature-views/{}",
            view.group, view.name, view.name
        )),
    }
}

/// Materializes one view (blocking).
#[allow(clippy::too_many_arguments)]
pub(super) fn materialize_view(
    storage: &Storage,
    indexes: &IndexCache,
    db: &OnlineDb,
    view: &FeatureView,
    join_keys: Vec<String>,
    request: &MaterializeRequest,
    now_micros: i64,
) -> Result<MaterializedView> {
    let started = std::time::Instant::now();
    let unavailable =
        |e: crate::online::durable::DurableError| StoreError::OnlineStoreUnavailable(e.to_string());
    let start_micros = if request.incremental {
        match db.record(&view.name).map_err(unavailable)? {
            Some(previous) => Some(previous.watermark_micros),
            None => view.ttl_seconds.filter(|t| *t > 0).map(|ttl| {
                request.end_micros.saturating_sub(
                    i64::try_from(ttl)
                        .unwrap_or(i64::MAX / 1_000_000)
                        .saturating_mul(1_000_000),
                )
            }),
        }
    } else {
        request.start_micros
    };
    let name: TableName =
        view.name
            .parse()
            .map_err(|e: crate::model::NameError| StoreError::InvalidRequest {
                field: "feature_views".into(),
                message: e.to_string(),
            })?;
    let table = storage.get(&name)?;
    let rows_in_window = {
        let file = &table.file;
        let ts = file.column_indices(std::slice::from_ref(&view.timestamp_field))?;
        let column = file.read_all(&ts)?;
        count_in_window(column.column(0), start_micros, request.end_micros)?
    };
    let index = match online::fresh_index(storage, indexes, view, now_micros) {
        Some(index) => index,
        None => online::build_index(
            storage,
            indexes,
            Some(db),
            view,
            join_keys.clone(),
            now_micros,
        )?,
    };
    let latest = index.latest_rows(now_micros)?;
    let record = Materialized {
        view: view.clone(),
        join_keys,
        table_version: index.version,
        table_snapshot: index.snapshot,
        valid_until: index.valid_until,
        materialized_at_micros: now_micros,
        watermark_micros: request.end_micros,
        rows: latest.num_rows() as u64,
    };
    db.save(&view.name, &record, &latest).map_err(unavailable)?;
    Ok(MaterializedView {
        feature_view: view.name.clone(),
        start_micros,
        end_micros: request.end_micros,
        rows_in_window,
        entities: record.rows,
        millis: started.elapsed().as_millis() as u64,
        skipped: None,
    })
}

fn count_in_window(column: &arrow::array::ArrayRef, start: Option<i64>, end: i64) -> Result<u64> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::TimestampMicrosecondType;
    let micros = arrow::compute::cast(column, &crate::storage::micros_type(column.data_type()))
        .map_err(crate::storage::StorageError::from)?;
    let micros = micros.as_primitive::<TimestampMicrosecondType>();
    let start = start.unwrap_or(i64::MIN);
    Ok((0..micros.len())
        .filter(|&i| micros.is_valid(i) && (start..=end).contains(&micros.value(i)))
        .count() as u64)
}
