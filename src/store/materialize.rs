//! `materialize`: make the online store of some views current and durable.
//!
//! featurestore keeps online serving in step with the tables (a table write is visible to the
//! next lookup), so materializing does not decide *what* is online; it persists the online
//! index (the latest row per key, pushed rows included) into the durable online store (this
//! process's sled, or Redis shared by replicas), so a restart (or another replica) serves those
//! views at once instead of rebuilding them from Parquet, and it records
//! the window's end as the view's watermark for the next incremental run. The window is
//! reported (rows whose event time falls in it) and validated like Feast's, but rows outside
//! it are not withheld from lookups: the online value of a key is always its latest row at or
//! before now.

use std::sync::Arc;

use super::FeatureStore;
use super::error::{NameKind, Result, StoreError};
use super::online::{self, IndexCache};
use crate::model::{FeatureView, TableName};
use crate::online::durable::{Materialized, OnlineDb};
use crate::online::redis::RedisOnline;
use crate::storage::{Storage, StorageError};

/// Where materialized rows go: this process's sled store, or Redis shared by replicas.
#[derive(Debug, Clone)]
pub(super) enum OnlineSink {
    /// The local tier.
    Local(Arc<OnlineDb>),
    /// The shared tier.
    Shared(Arc<RedisOnline>),
}

impl OnlineSink {
    /// The watermark the previous materialization of `view` left, if any.
    fn previous_watermark(&self, view: &str) -> Result<Option<i64>> {
        match self {
            OnlineSink::Local(db) => Ok(db
                .record(view)
                .map_err(|e| StoreError::OnlineStoreUnavailable(e.to_string()))?
                .map(|r| r.watermark_micros)),
            OnlineSink::Shared(redis) => {
                let (reader, name) = (Arc::clone(redis), view.to_owned());
                Ok(redis
                    .wait(async move { reader.materialized(&name).await })
                    .map_err(|e| StoreError::OnlineStoreUnavailable(e.to_string()))?
                    .map(|r| r.watermark_micros))
            }
        }
    }

    /// Stores the latest rows of a view and the record of their materialization.
    fn save(
        &self,
        view: &FeatureView,
        record: Materialized,
        latest: &arrow::record_batch::RecordBatch,
    ) -> Result<()> {
        let unavailable = |e: String| StoreError::OnlineStoreUnavailable(e);
        match self {
            OnlineSink::Local(db) => db
                .save(&view.name, &record, latest)
                .map_err(|e| unavailable(e.to_string())),
            OnlineSink::Shared(redis) => {
                let rows = super::shared::encode(view, &record.join_keys, latest)?;
                let (writer, name) = (Arc::clone(redis), view.name.clone());
                redis
                    .wait(async move {
                        writer.write_rows(&name, rows).await?;
                        writer.save_materialized(&name, &record).await
                    })
                    .map_err(|e| unavailable(e.to_string()))
            }
        }
    }

    /// The local store to build indexes from (none with Redis: its rows are read per lookup).
    fn local(&self) -> Option<&OnlineDb> {
        match self {
            OnlineSink::Local(db) => Some(db),
            OnlineSink::Shared(_) => None,
        }
    }
}

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
    sink: &OnlineSink,
    view: &FeatureView,
    join_keys: Vec<String>,
    request: &MaterializeRequest,
    now_micros: i64,
) -> Result<MaterializedView> {
    let started = std::time::Instant::now();
    let start_micros = if request.incremental {
        match sink.previous_watermark(&view.name)? {
            Some(watermark) => Some(watermark),
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
            sink.local(),
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
    let entities = record.rows;
    sink.save(view, record, &latest)?;
    Ok(MaterializedView {
        feature_view: view.name.clone(),
        start_micros,
        end_micros: request.end_micros,
        rows_in_window,
        entities,
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

/// The materialize route's entry point, beside the steps it runs.
impl FeatureStore {
    /// Persists the online state of `request.feature_views` (all views when `None`) into the
    /// durable online store and advances their watermarks; `progress` is called after each
    /// view.
    pub async fn materialize(
        &self,
        request: MaterializeRequest,
        progress: impl Fn(&MaterializedView) + Send + 'static,
    ) -> Result<Vec<MaterializedView>> {
        if let Some(start) = request.start_micros
            && !request.incremental
            && start > request.end_micros
        {
            return Err(StoreError::InvalidRequest {
                field: "start_ts".into(),
                message: "start_ts is after end_ts".into(),
            });
        }
        let registry = self.registry.snapshot();
        let all_views = request.feature_views.is_none();
        let views: Vec<FeatureView> = match &request.feature_views {
            None => registry.feature_views.clone(),
            Some(names) => {
                let unknown: Vec<String> = names
                    .iter()
                    .filter(|n| !registry.feature_views.iter().any(|v| &v.name == *n))
                    .cloned()
                    .collect();
                if !unknown.is_empty() {
                    return Err(StoreError::UnknownNames {
                        kind: NameKind::FeatureView,
                        field: "feature_views",
                        names: unknown,
                    });
                }
                registry
                    .feature_views
                    .iter()
                    .filter(|v| names.contains(&v.name))
                    .cloned()
                    .collect()
            }
        };
        let sink = match (&self.redis, &self.durable) {
            (Some(redis), _) => OnlineSink::Shared(Arc::clone(redis)),
            (None, Some(db)) => OnlineSink::Local(Arc::clone(db)),
            (None, None) => {
                return Err(StoreError::OnlineStoreUnavailable(
                    self.durable_error
                        .clone()
                        .unwrap_or_else(|| "not open".into()),
                ));
            }
        };
        let now = self.clock.wall_micros();
        let indexes = Arc::clone(&self.indexes);
        self.blocking(move |s, _| {
            views
                .iter()
                .map(|view| {
                    let keys = online::view_join_keys(&registry, view);
                    let done = materialize_view(s, &indexes, &sink, view, keys, &request, now);
                    // Asked for every view, one whose table is gone is reported, not fatal
                    // to the others; a view named in the request must exist.
                    let done = match done {
                        Err(StoreError::Storage(StorageError::TableNotFound { .. }))
                            if all_views =>
                        {
                            skipped(view, &request)
                        }
                        other => other?,
                    };
                    progress(&done);
                    Ok(done)
                })
                .collect()
        })
        .await
    }
}
