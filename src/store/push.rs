//! `push`: rows written straight into a view, online, offline or both (Feast's push API).
//!
//! The rows are checked against the view's table schema before anything is written: every
//! column of the table, values of its types, and non-null join keys and event timestamps (a
//! row without them could never be looked up). Then:
//! - offline: appended to the table as a new part file (see `storage`), durable on return;
//! - online: recorded in the durable online store, durable on return: this process's sled
//!   store, whose rows the kept online index absorbs in place (an overlay, not a rebuild), or,
//!   with `online.backend = "redis"`, Redis, written first so that a push Redis refuses
//!   stores nothing (see `shared`).
//!
//! Offline rows are absorbed by the kept online index in place too, so the next lookup sees
//! them. Because featurestore keeps online serving in step with the
//! tables, rows pushed offline are served online as well: the latest row per key is the same
//! whichever store it reached.

use std::sync::Arc;

use arrow::array::Array;
use serde_json::Value;

use super::error::{NameKind, Result, StoreError};
use super::online::{self, IndexCache};
use super::{FeatureStore, folding, shared};
use crate::model::{FeatureView, GroupName, RegistryDocument, TableName};
use crate::online::durable::OnlineDb;
use crate::online::redis::RedisOnline;
use crate::storage::{AppendOutcome, Declaration, Storage, json_columns_to_batch, logical_schema};

/// Where pushed rows go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushTarget {
    /// The online store only.
    Online,
    /// The table only.
    Offline,
    /// Both.
    OnlineAndOffline,
}

/// A push, as the client sent it.
#[derive(Debug, Clone)]
pub struct PushRequest {
    /// A push source name (a view's `push_source`, or a view name).
    pub push_source_name: Option<String>,
    /// A view name (instead of a push source).
    pub feature_view: Option<String>,
    /// Column name → one value per row.
    pub df: Vec<(String, Vec<Value>)>,
    /// Where the rows go.
    pub to: PushTarget,
    /// The token pushing, when auth is on: an offline push records it in the table's
    /// history as the version's writer.
    pub written_by: Option<String>,
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct PushOutcome {
    /// The view written.
    pub feature_view: String,
    /// Rows pushed.
    pub rows: u64,
    /// The append to the table, when the push went offline.
    pub offline: Option<AppendOutcome>,
}

fn invalid(field: &str, message: String) -> StoreError {
    StoreError::InvalidRequest {
        field: field.to_owned(),
        message,
    }
}

/// The view a push names.
pub(super) fn resolve<'r>(
    registry: &'r RegistryDocument,
    request: &PushRequest,
) -> Result<&'r FeatureView> {
    match (&request.push_source_name, &request.feature_view) {
        (Some(_), Some(_)) => Err(invalid(
            "push_source_name",
            "give either push_source_name or feature_view, not both".into(),
        )),
        (None, None) => Err(invalid(
            "push_source_name",
            "give push_source_name (or feature_view) to say where the rows go".into(),
        )),
        (Some(source), None) => registry
            .feature_views
            .iter()
            .find(|v| v.push_source.as_ref() == Some(source))
            .or_else(|| registry.feature_views.iter().find(|v| &v.name == source))
            .ok_or_else(|| StoreError::UnknownNames {
                kind: NameKind::PushSource,
                field: "push_source_name",
                names: vec![source.clone()],
            }),
        (None, Some(name)) => registry
            .feature_views
            .iter()
            .find(|v| &v.name == name)
            .ok_or_else(|| StoreError::UnknownNames {
                kind: NameKind::FeatureView,
                field: "feature_view",
                names: vec![name.clone()],
            }),
    }
}

/// A push's rows, checked against the view's table and converted to its types.
pub(super) struct Prepared {
    /// The view's table.
    pub(super) group: GroupName,
    /// Its name.
    pub(super) name: TableName,
    /// The rows, with every column of the table.
    pub(super) rows: arrow::record_batch::RecordBatch,
    /// The table snapshot the rows were checked against.
    pub(super) snapshot: (u64, u64),
    /// The pushing token, for the table's history.
    pub(super) written_by: Option<String>,
}

/// Checks and converts a push's rows (blocking): every column of the view's table, values of
/// its types, non-null join keys and event timestamps. Nothing is written.
pub(super) fn prepare(
    storage: &Storage,
    view: &FeatureView,
    join_keys: &[String],
    request: &PushRequest,
) -> Result<Prepared> {
    let name: TableName = view
        .name
        .parse()
        .map_err(|e: crate::model::NameError| invalid("feature_view", e.to_string()))?;
    let group: GroupName = view
        .group
        .parse()
        .map_err(|e: crate::model::NameError| invalid("feature_view", e.to_string()))?;
    let table = storage.get_in_group(&group, &name)?;
    let schema = logical_schema(table.file.schema());
    let rows = json_columns_to_batch(&request.df, &schema).map_err(|e| match e {
        crate::storage::StorageError::InvalidRecords {
            column: Some(column),
            message,
            ..
        } => invalid(&format!("df.{column}"), message),
        other => other.into(),
    })?;
    for required in join_keys.iter().chain([&view.timestamp_field]) {
        if let Some(column) = rows.column_by_name(required)
            && let Some(row) = (0..column.len()).find(|&i| column.is_null(i))
        {
            return Err(invalid(
                &format!("df.{required}"),
                format!(
                    "row {row} has no {required}; join keys and the event timestamp are required in every row"
                ),
            ));
        }
    }
    Ok(Prepared {
        group,
        name,
        rows,
        snapshot: (table.version, table.file.snapshot_id()),
        written_by: request.written_by.clone(),
    })
}

/// Runs a push (blocking) with the local online tier.
#[allow(clippy::too_many_arguments)]
pub(super) fn push(
    storage: &Storage,
    indexes: &IndexCache,
    durable: Option<&OnlineDb>,
    durable_error: Option<&str>,
    view: &FeatureView,
    join_keys: &[String],
    request: &PushRequest,
    now_micros: i64,
) -> Result<PushOutcome> {
    let prepared = prepare(storage, view, join_keys, request)?;
    let pushed = prepared.rows.num_rows() as u64;
    if pushed == 0 {
        // Nothing to write: no empty part file, no new version.
        return Ok(PushOutcome {
            feature_view: view.name.clone(),
            rows: 0,
            offline: None,
        });
    }
    if request.to == PushTarget::Online {
        let db = durable.ok_or_else(|| {
            StoreError::OnlineStoreUnavailable(durable_error.unwrap_or("not open").to_owned())
        })?;
        let compaction_due = db
            .push(&view.name, &prepared.rows)
            .map_err(|e| StoreError::OnlineStoreUnavailable(e.to_string()))?;
        let same = prepared.snapshot;
        online::merge_pushed(indexes, &view.name, &prepared.rows, same, same, now_micros);
        if compaction_due {
            compact_push_log(db, view, join_keys, now_micros);
        }
        return Ok(PushOutcome {
            feature_view: view.name.clone(),
            rows: pushed,
            offline: None,
        });
    }
    let appended = append_offline(storage, indexes, view, &prepared, now_micros)?;
    Ok(PushOutcome {
        feature_view: view.name.clone(),
        rows: pushed,
        offline: Some(appended),
    })
}

/// Compacts the durable push log of `view` to the rows that can still decide an answer. The
/// push it follows is already durable and acknowledged either way, so a failure is logged, not
/// returned: the log stays as it was and the next due push tries again.
fn compact_push_log(db: &OnlineDb, view: &FeatureView, join_keys: &[String], now_micros: i64) {
    let started = std::time::Instant::now();
    let compacted = db.compact_pushed(&view.name, |rows| {
        match crate::online::push_log::survivors(rows, view, join_keys, now_micros) {
            Ok(kept) => kept,
            Err(e) => {
                tracing::warn!(view = %view.name, error = %e, "could not compact rows pushed online; kept as they are");
                None
            }
        }
    });
    match compacted {
        Ok(done) => tracing::info!(
            view = %view.name,
            entries_before = done.entries_before,
            entries_after = done.entries_after,
            rows_before = done.rows_before,
            rows_after = done.rows_after,
            millis = started.elapsed().as_millis() as u64,
            "online push log compacted"
        ),
        Err(e) => {
            tracing::warn!(view = %view.name, error = %e, "could not compact the online push log; it keeps growing until the next try")
        }
    }
}

/// Appends a push's rows to the view's table (blocking) and lets the kept index absorb them.
pub(super) fn append_offline(
    storage: &Storage,
    indexes: &IndexCache,
    view: &FeatureView,
    prepared: &Prepared,
    now_micros: i64,
) -> Result<AppendOutcome> {
    let (group, name, rows) = (&prepared.group, &prepared.name, &prepared.rows);
    let declaration = Declaration {
        written_by: prepared.written_by.clone(),
        ..Declaration::default()
    };
    let appended = storage.append_batch(group, name, rows, declaration)?;
    // The snapshot the rows went onto is the one the append saw under the table's write lock,
    // not the one the rows were checked against: a replace landing in between would otherwise
    // have the rows merged into an index of the replaced table, served as current until the
    // next write.
    match (appended.appended_to, storage.peek(name)) {
        // The push widened the table's types: the index's columns may have changed type too.
        _ if appended.compacted => online::forget_index(indexes, &view.name),
        // Nobody wrote since: the new snapshot is the one appended to plus these rows.
        (Some(previous), Some(now)) if now.version == appended.version => online::merge_pushed(
            indexes,
            &view.name,
            rows,
            previous,
            (now.version, now.file.snapshot_id()),
            now_micros,
        ),
        _ => online::forget_index(indexes, &view.name),
    }
    Ok(appended)
}

/// The push route's entry points (`FeatureStore::push`), beside the steps they run.
impl FeatureStore {
    /// Feast's push: validates the rows against the view's table, writes them online, offline
    /// or both, and lets the next lookup see them.
    pub async fn push(&self, request: PushRequest) -> Result<PushOutcome> {
        let outcome = self.push_rows(request).await;
        if let Ok(PushOutcome {
            feature_view,
            offline: Some(_),
            ..
        }) = &outcome
        {
            self.announce_table(None, feature_view);
        }
        outcome
    }

    async fn push_rows(&self, request: PushRequest) -> Result<PushOutcome> {
        let registry = self.registry.snapshot();
        let view = resolve(&registry, &request)?.clone();
        let keys = online::view_join_keys(&registry, &view);
        let now = self.clock.wall_micros();
        if let Some(redis) = self.redis.clone() {
            return self.push_shared(redis, view, keys, request, now).await;
        }
        let indexes = Arc::clone(&self.indexes);
        let durable = self.durable.clone();
        let durable_error = self.durable_error.clone();
        let folds = Arc::clone(&self.folds);
        self.blocking(move |s, c| {
            let outcome = push(
                s,
                &indexes,
                durable.as_deref(),
                durable_error.as_deref(),
                &view,
                &keys,
                &request,
                now,
            );
            if request.to != PushTarget::Online {
                c.invalidate_table(&view.name);
            }
            if let Ok(PushOutcome {
                offline: Some(appended),
                ..
            }) = &outcome
            {
                folding::after_push(&folds, s, c, &indexes, &view.name, appended.parts);
            }
            outcome
        })
        .await
    }

    /// A push with the shared online tier: online rows go to Redis first (nothing is stored
    /// when it cannot take them), then offline rows to the table.
    async fn push_shared(
        &self,
        redis: Arc<RedisOnline>,
        view: FeatureView,
        keys: Vec<String>,
        request: PushRequest,
        now: i64,
    ) -> Result<PushOutcome> {
        let to = request.to;
        let (checked_view, checked_keys) = (view.clone(), keys.clone());
        let (prepared, encoded) = self
            .blocking(move |s, _| {
                let prepared = prepare(s, &checked_view, &checked_keys, &request)?;
                let encoded = match to {
                    PushTarget::Offline => Vec::new(),
                    _ => shared::encode(&checked_view, &checked_keys, &prepared.rows)?,
                };
                Ok((prepared, encoded))
            })
            .await?;
        let pushed = prepared.rows.num_rows() as u64;
        if pushed == 0 {
            return Ok(PushOutcome {
                feature_view: view.name,
                rows: 0,
                offline: None,
            });
        }
        if to != PushTarget::Offline {
            redis
                .write_rows(&view.name, encoded)
                .await
                .map_err(|e| StoreError::OnlineStoreUnavailable(e.to_string()))?;
        }
        if to == PushTarget::Online {
            return Ok(PushOutcome {
                feature_view: view.name,
                rows: pushed,
                offline: None,
            });
        }
        let indexes = Arc::clone(&self.indexes);
        let folds = Arc::clone(&self.folds);
        self.blocking(move |s, c| {
            let appended = append_offline(s, &indexes, &view, &prepared, now);
            c.invalidate_table(&view.name);
            let appended = appended?;
            folding::after_push(&folds, s, c, &indexes, &view.name, appended.parts);
            Ok(PushOutcome {
                feature_view: view.name.clone(),
                rows: pushed,
                offline: Some(appended),
            })
        })
        .await
    }
}
