//! The store's side of `history`: reading a view's table into a [`ViewHistory`], keeping it
//! in the [`HistoryCache`] by (view definition, table version, snapshot), and dropping kept
//! histories whose version is neither current nor retained any more.
//!
//! A history holds every column the view declares (all non-key, non-timestamp columns when
//! it declares none), not only those one request asks for, so one history serves every
//! request on the view.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::error::{NameKind, Result, StoreError};
use super::online;
use crate::history::{HistoryCache, HistoryKey, HistorySource, ViewHistory};
use crate::model::{FeatureView, RegistryDocument, TableName};
use crate::storage::{Storage, TableHandle, VersionSelector};

/// The history of `view` at `selector`, from the cache or built (single flight). The current
/// version is looked up as every read does; any other through the table's history (404 / 410
/// for versions that do not exist or expired). For callers already on the blocking pool.
pub(super) fn view_history_blocking(
    storage: &Storage,
    histories: &HistoryCache,
    registry: &RegistryDocument,
    view: &str,
    selector: VersionSelector,
) -> Result<(Arc<ViewHistory>, Arc<TableHandle>)> {
    let definition = registry
        .feature_views
        .iter()
        .find(|v| v.name == view)
        .ok_or_else(|| StoreError::UnknownNames {
            kind: NameKind::FeatureView,
            field: "feature_view",
            names: vec![view.to_owned()],
        })?;
    let table = view_table(storage, definition, selector)?;
    let history = history_of_table(storage, histories, registry, definition, &table)?;
    Ok((history, table))
}

/// The table of `view` at `selector`.
pub(super) fn view_table(
    storage: &Storage,
    view: &FeatureView,
    selector: VersionSelector,
) -> Result<Arc<TableHandle>> {
    let name: TableName =
        view.name
            .parse()
            .map_err(|e: crate::model::NameError| StoreError::InvalidRequest {
                field: "features".to_owned(),
                message: e.to_string(),
            })?;
    Ok(match selector {
        VersionSelector::Current => storage.get(&name)?,
        pinned => storage.table_at(&name, pinned)?,
    })
}

/// The history of `view` read from `table` (one version of the view's table).
pub(super) fn history_of_table(
    storage: &Storage,
    histories: &HistoryCache,
    registry: &RegistryDocument,
    view: &FeatureView,
    table: &TableHandle,
) -> Result<Arc<ViewHistory>> {
    let join_keys = online::view_join_keys(registry, view);
    let columns = history_columns(view, &join_keys, table);
    let key = HistoryKey {
        table: table.name.to_string(),
        version: table.version,
        snapshot: table.file.snapshot_id(),
        definition: format!(
            "keys={join_keys:?} ts={:?} created={:?} columns={columns:?}",
            view.timestamp_field, view.created_timestamp_field
        ),
    };
    let mut built = false;
    let history = histories.get_or_build(&key, || -> Result<ViewHistory> {
        built = true;
        let started = std::time::Instant::now();
        let projection = table.file.column_indices(&columns)?;
        let rows = table.file.read_all(&projection)?;
        let history = ViewHistory::build(HistorySource {
            view: view.name.clone(),
            rows,
            join_keys,
            timestamp_field: view.timestamp_field.clone(),
            created_timestamp_field: view.created_timestamp_field.clone(),
        })
        .map_err(|e| StoreError::InvalidRequest {
            field: "entities".to_owned(),
            message: e.to_string(),
        })?;
        tracing::debug!(
            view = %view.name,
            version = table.version,
            rows = history.rows().num_rows(),
            groups = history.group_count(),
            bytes = history.memory_bytes(),
            ms = started.elapsed().as_secs_f64() * 1e3,
            "history built"
        );
        Ok(history)
    })?;
    if built {
        // A newer version's history usually means an older one is no longer wanted.
        prune(storage, histories);
    }
    Ok(history)
}

/// The columns a view's history holds: join keys, timestamps, then its declared features
/// (every other column of the table when it declares none), as far as the table has them.
fn history_columns(view: &FeatureView, join_keys: &[String], table: &TableHandle) -> Vec<String> {
    let schema = table.file.schema();
    let mut columns: Vec<String> = join_keys.to_vec();
    columns.push(view.timestamp_field.clone());
    columns.extend(view.created_timestamp_field.clone());
    let features: Vec<String> = if view.features.is_empty() {
        schema.fields().iter().map(|f| f.name().clone()).collect()
    } else {
        view.features.iter().map(|f| f.name.clone()).collect()
    };
    for feature in features {
        if !columns.contains(&feature) && schema.index_of(&feature).is_ok() {
            columns.push(feature);
        }
    }
    columns.retain(|c| schema.index_of(c).is_ok());
    columns
}

/// Drops the kept histories whose table version is neither current nor retained (swept,
/// replaced past retention, or the table deleted); returns how many.
pub(super) fn prune(storage: &Storage, histories: &HistoryCache) -> usize {
    let mut wanted: BTreeMap<(String, u64), bool> = BTreeMap::new();
    let mut retained: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (table, version) in histories.versions() {
        let keep = match table.parse::<TableName>() {
            Ok(name) => {
                let current = storage.peek(&name).map(|h| h.version);
                current == Some(version)
                    || retained
                        .entry(table.clone())
                        .or_insert_with(|| {
                            storage
                                .history(&name)
                                .map(|h| h.versions.iter().map(|v| v.version).collect())
                                .unwrap_or_default()
                        })
                        .contains(&version)
            }
            Err(_) => false,
        };
        wanted.insert((table, version), keep);
    }
    let dropped = histories.retain(|key| {
        wanted
            .get(&(key.table.clone(), key.version))
            .copied()
            .unwrap_or(true)
    });
    if dropped > 0 {
        tracing::debug!(dropped, "histories of versions no longer kept dropped");
    }
    dropped
}
