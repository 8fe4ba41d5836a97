//! Resolving a Feast-style online request into index lookups.
//!
//! Feature references (or a service) → views → the join keys those views need → one lookup
//! per feature over every entity row. All unknown names are reported together; a missing join
//! key or entity columns of different lengths are request errors.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::error::{NameKind, Result, StoreError};
use crate::model::{FeatureRef, FeatureView, RegistryDocument, TableName};
use crate::online::durable::OnlineDb;
use crate::online::shared_rows::SharedRows;
use crate::online::{FeatureColumn, ViewIndex, lookup};
use crate::storage::Storage;

/// What a client asks `/get-online-features`.
#[derive(Debug, Clone)]
pub struct OnlineQuery {
    /// `view:feature` references (exclusive with `feature_service`).
    pub features: Option<Vec<String>>,
    /// A feature service name.
    pub feature_service: Option<String>,
    /// Join key → one value per entity row, in the order the client sent them.
    pub entities: Vec<(String, Vec<Value>)>,
    /// Name features `view__feature` instead of `feature`.
    pub full_feature_names: bool,
}

/// The answer: entity columns (echoed) then one column per feature.
#[derive(Debug)]
pub struct OnlineAnswer {
    /// Join key columns, as sent.
    pub entities: Vec<(String, Vec<Value>)>,
    /// One per requested feature, in request order.
    pub features: Vec<FeatureColumn>,
}

/// The online indexes, and the per-view locks that make each build single-flight.
#[derive(Debug, Default)]
pub(super) struct IndexCache {
    ready: Mutex<HashMap<String, Arc<ViewIndex>>>,
    builds: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl IndexCache {
    /// The lock serialising builds and updates of one view's index. Single flight: concurrent
    /// requests for a cold view wait for one build instead of each starting their own (eight
    /// parallel builds of a 1M-row view exhausted memory and CPU).
    fn view_lock(&self, view: &str) -> Arc<Mutex<()>> {
        let mut builds = self.builds.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(builds.entry(view.to_owned()).or_default())
    }
}

/// A resolved request: which views, which features, which join keys.
#[derive(Debug)]
pub(super) struct Plan<'r> {
    views: Vec<&'r FeatureView>,
    refs: Vec<FeatureRef>,
    join_keys: HashMap<&'r str, Vec<String>>,
}

impl<'r> Plan<'r> {
    /// Views to index.
    pub(super) fn views(&self) -> &[&'r FeatureView] {
        &self.views
    }

    /// Requested features, in request order.
    pub(super) fn refs(&self) -> &[FeatureRef] {
        &self.refs
    }
}

fn invalid(field: &str, message: String) -> StoreError {
    StoreError::InvalidRequest {
        field: field.to_owned(),
        message,
    }
}

/// Views and references a request names: `features` or a `feature_service` (whose whole-view
/// entries expand to the view's features). Every unknown name is reported at once; a feature
/// name found in two views is an error unless `full_feature_names` tells them apart.
pub(super) fn resolve<'r>(
    registry: &'r RegistryDocument,
    features: &Option<Vec<String>>,
    feature_service: &Option<String>,
    full_feature_names: bool,
) -> Result<(Vec<&'r FeatureView>, Vec<FeatureRef>)> {
    // The request's own references are read in place; only a service's are built.
    let raw: std::borrow::Cow<'_, [String]> = match (features, feature_service) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "features",
                "give either features or feature_service, not both".into(),
            ));
        }
        (None, None) => {
            return Err(invalid(
                "features",
                "give features (\"view:feature\" references) or a feature_service".into(),
            ));
        }
        (Some(features), None) => {
            if features.is_empty() {
                return Err(invalid("features", "must name at least one feature".into()));
            }
            std::borrow::Cow::Borrowed(features.as_slice())
        }
        (None, Some(name)) => {
            let service = registry
                .feature_services
                .iter()
                .find(|s| &s.name == name)
                .ok_or_else(|| StoreError::UnknownNames {
                    kind: NameKind::FeatureService,
                    field: "feature_service",
                    names: vec![name.clone()],
                })?;
            // A service may name a whole view: expand it to the view's features.
            let mut expanded = Vec::new();
            for reference in &service.features {
                if reference.contains(':') {
                    expanded.push(reference.clone());
                } else if let Some(view) =
                    registry.feature_views.iter().find(|v| &v.name == reference)
                {
                    expanded.extend(
                        view.features
                            .iter()
                            .map(|f| format!("{}:{}", view.name, f.name)),
                    );
                } else {
                    expanded.push(reference.clone());
                }
            }
            std::borrow::Cow::Owned(expanded)
        }
    };
    let mut refs = Vec::with_capacity(raw.len());
    for (i, text) in raw.iter().enumerate() {
        refs.push(
            text.parse::<FeatureRef>()
                .map_err(|e| invalid(&format!("features[{i}]"), e.to_string()))?,
        );
    }
    let mut views: Vec<&FeatureView> = Vec::new();
    let mut unknown = Vec::new();
    let mut any_unknown_view = false;
    for r in &refs {
        match registry.feature_views.iter().find(|v| v.name == r.view) {
            None => {
                any_unknown_view = true;
                unknown.push(r.to_string());
            }
            Some(view) => {
                if !view.features.iter().any(|f| f.name == r.feature) {
                    unknown.push(r.to_string());
                }
                if !views.iter().any(|v| v.name == view.name) {
                    views.push(view);
                }
            }
        }
    }
    if !unknown.is_empty() {
        // Every unknown reference at once; the kind says whether a whole view is missing.
        let kind = if any_unknown_view {
            NameKind::FeatureView
        } else {
            NameKind::Feature
        };
        return Err(StoreError::UnknownNames {
            kind,
            field: "features",
            names: unknown,
        });
    }
    for (i, r) in refs.iter().enumerate() {
        if refs[..i].contains(r) {
            return Err(invalid(
                &format!("features[{i}]"),
                format!("{r} is requested twice"),
            ));
        }
    }
    if !full_feature_names {
        let mut seen: HashMap<&str, &str> = HashMap::new();
        for r in &refs {
            if let Some(other) = seen.insert(r.feature.as_str(), r.view.as_str())
                && other != r.view
            {
                return Err(invalid(
                    "full_feature_names",
                    format!(
                        "feature {:?} is requested from views {other:?} and {:?}; set full_feature_names to true to tell them apart",
                        r.feature, r.view
                    ),
                ));
            }
        }
    }
    Ok((views, refs))
}

/// Resolves references against the registry, checking every name.
pub(super) fn plan<'r>(registry: &'r RegistryDocument, query: &OnlineQuery) -> Result<Plan<'r>> {
    let (views, refs) = resolve(
        registry,
        &query.features,
        &query.feature_service,
        query.full_feature_names,
    )?;
    let mut join_keys = HashMap::new();
    for view in &views {
        let mut keys = Vec::with_capacity(view.entities.len());
        for entity in &view.entities {
            let join_key = registry
                .entities
                .iter()
                .find(|e| &e.name == entity)
                .map(|e| e.join_key().to_owned())
                .unwrap_or_else(|| entity.clone());
            keys.push(join_key);
        }
        join_keys.insert(view.name.as_str(), keys);
    }
    let rows = query.entities.first().map_or(0, |(_, v)| v.len());
    for (i, (name, values)) in query.entities.iter().enumerate() {
        if query.entities[..i].iter().any(|(other, _)| other == name) {
            return Err(invalid(
                &format!("entities.{name}"),
                "is given twice".into(),
            ));
        }
        // Keys are integers or strings; anything else can never match and would be echoed
        // back as a PRESENT entity value.
        if let Some(row) = values
            .iter()
            .position(|v| !(v.is_i64() || v.is_u64() || v.is_string()))
        {
            return Err(invalid(
                &format!("entities.{name}[{row}]"),
                format!(
                    "entity key values must be integers or strings, got {}",
                    values[row]
                ),
            ));
        }
        if values.len() != rows {
            return Err(invalid(
                &format!("entities.{name}"),
                format!(
                    "has {} values but the first entity column has {rows}; every entity column needs one value per row",
                    values.len()
                ),
            ));
        }
    }
    for keys in join_keys.values() {
        for key in keys {
            if !query.entities.iter().any(|(name, _)| name == key) {
                return Err(invalid(
                    &format!("entities.{key}"),
                    format!("join key {key:?} is required by the requested features"),
                ));
            }
        }
    }
    Ok(Plan {
        views,
        refs,
        join_keys,
    })
}

/// The index of `view`, reusing a fresh one; `None` when it must be (re)built.
pub(super) fn fresh_index(
    storage: &Storage,
    indexes: &IndexCache,
    view: &FeatureView,
    now_micros: i64,
) -> Option<Arc<ViewIndex>> {
    let name: TableName = view.name.parse().ok()?;
    let table = storage.peek(&name)?;
    let cached = indexes
        .ready
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&view.name)
        .cloned()?;
    (cached.version == table.version
        && cached.snapshot == table.file.snapshot_id()
        && now_micros < cached.valid_until
        && cached.view == *view)
        .then_some(cached)
}

/// Builds (blocking) the index of `view` and keeps it: from the durable online store when it
/// holds a materialization of this very table snapshot and view definition (no Parquet is
/// read then), else from the table; rows pushed online are merged on top either way.
pub(super) fn build_index(
    storage: &Storage,
    indexes: &IndexCache,
    durable: Option<&OnlineDb>,
    view: &FeatureView,
    join_keys: Vec<String>,
    now_micros: i64,
) -> Result<Arc<ViewIndex>> {
    let lock = indexes.view_lock(&view.name);
    let _building = lock.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(index) = fresh_index(storage, indexes, view, now_micros) {
        return Ok(index);
    }
    let name: TableName = view
        .name
        .parse()
        .map_err(|e: crate::model::NameError| invalid("features", e.to_string()))?;
    let table = storage.get(&name)?;
    let started = std::time::Instant::now();
    let snapshot = table.file.snapshot_id();
    let usable = |record: &crate::online::durable::Materialized| {
        record.view == *view
            && record.join_keys == join_keys
            && record.table_version == table.version
            && record.table_snapshot == snapshot
            && now_micros < record.valid_until
    };
    let materialized = durable.and_then(|db| match db.load(&view.name, usable) {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(view = %view.name, error = %e, "could not read the materialized online rows; rebuilding from the table");
            None
        }
    });
    let (mut index, source) = match materialized {
        Some((record, rows)) => {
            let mut index =
                ViewIndex::from_rows(view, join_keys, &rows, table.version, snapshot, now_micros)?;
            index.valid_until = index.valid_until.min(record.valid_until);
            (index, "materialized")
        }
        None => (
            ViewIndex::build(
                view,
                join_keys,
                &table.file,
                table.version,
                snapshot,
                now_micros,
            )?,
            "table",
        ),
    };
    if let Some(db) = durable {
        match db.pushed(&view.name) {
            Ok(batches) => {
                for rows in batches {
                    match index.with_rows(&rows, table.version, snapshot, now_micros) {
                        Ok(merged) => index = merged,
                        Err(e) => {
                            tracing::warn!(view = %view.name, error = %e, "rows pushed online no longer fit the view; skipped")
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(view = %view.name, error = %e, "could not read the rows pushed online")
            }
        }
    }
    let index = Arc::new(index);
    tracing::info!(view = %view.name, entities = index.len(), source, millis = started.elapsed().as_millis() as u64, "online index built");
    indexes
        .ready
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(view.name.clone(), Arc::clone(&index));
    Ok(index)
}

/// Merges pushed `rows` into the kept index of `view`, if there is one. `previous` is the
/// table snapshot (version, id) the rows were appended to, and `current` the one the append
/// produced (both the same for an online-only push): an index of `previous` plus the rows is
/// exactly an index of `current`. An index of any other snapshot is dropped instead, so the
/// next lookup rebuilds it.
pub(super) fn merge_pushed(
    indexes: &IndexCache,
    view: &str,
    rows: &arrow::record_batch::RecordBatch,
    previous: (u64, u64),
    current: (u64, u64),
    now_micros: i64,
) {
    let lock = indexes.view_lock(view);
    let _updating = lock.lock().unwrap_or_else(|p| p.into_inner());
    let mut ready = indexes.ready.lock().unwrap_or_else(|p| p.into_inner());
    let Some(index) = ready.get(view).cloned() else {
        return;
    };
    let merged = ((index.version, index.snapshot) == previous)
        .then(|| index.with_rows(rows, current.0, current.1, now_micros))
        .and_then(|r| {
            r.map_err(|e| tracing::warn!(view, error = %e, "could not merge pushed rows into the online index; it will be rebuilt"))
                .ok()
        });
    match merged {
        Some(index) => {
            ready.insert(view.to_owned(), Arc::new(index));
        }
        None => {
            ready.remove(view);
        }
    }
}

/// Carries the kept index of `view` over a fold: built from the snapshot `before`, it holds
/// exactly the rows of `after`. An index of any other snapshot is left alone.
pub(super) fn retag(indexes: &IndexCache, view: &str, before: (u64, u64), after: (u64, u64)) {
    let lock = indexes.view_lock(view);
    let _updating = lock.lock().unwrap_or_else(|p| p.into_inner());
    let mut ready = indexes.ready.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(index) = ready.get(view).cloned()
        && (index.version, index.snapshot) == before
    {
        ready.insert(view.to_owned(), Arc::new(index.retagged(after.0, after.1)));
    }
}

/// The views an index is kept for.
pub(super) fn kept_views(indexes: &IndexCache) -> Vec<String> {
    let mut views: Vec<String> = indexes
        .ready
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .keys()
        .cloned()
        .collect();
    views.sort();
    views
}

/// Drops the kept index of `view`, so the next lookup rebuilds it.
pub(super) fn forget_index(indexes: &IndexCache, view: &str) {
    indexes
        .ready
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(view);
}

/// The join keys of `view`: each entity's join key, in the view's entity order.
pub(super) fn view_join_keys(registry: &RegistryDocument, view: &FeatureView) -> Vec<String> {
    view.entities
        .iter()
        .map(|name| {
            registry
                .entities
                .iter()
                .find(|e| &e.name == name)
                .map_or_else(|| name.clone(), |e| e.join_key().to_owned())
        })
        .collect()
}

/// Join keys of a planned view.
pub(super) fn join_keys(plan: &Plan<'_>, view: &str) -> Vec<String> {
    plan.join_keys.get(view).cloned().unwrap_or_default()
}

/// Runs the lookups of `plan` over fresh local indexes and, for views the shared online
/// tier has rows for, the indexes of the rows read from it (merged by event time; a view
/// only the shared tier answers has no local index).
pub(super) fn answer(
    plan: &Plan<'_>,
    query: OnlineQuery,
    indexes: &HashMap<String, Arc<ViewIndex>>,
    shared: &HashMap<String, SharedRows<'_>>,
    now_micros: i64,
) -> Result<OnlineAnswer> {
    for view in &plan.views {
        let requested = plan
            .refs
            .iter()
            .filter(|r| r.view == view.name)
            .map(|r| r.feature.as_str());
        let missing = match (indexes.get(&view.name), shared.get(&view.name)) {
            (Some(index), _) => index.missing_features(requested),
            (None, Some(rows)) => rows.missing_features(requested),
            (None, None) => continue,
        };
        if !missing.is_empty() {
            return Err(StoreError::ViewTableMismatch {
                view: view.name.clone(),
                columns: missing,
            });
        }
    }
    let rows = query.entities.first().map_or(0, |(_, v)| v.len());
    // The key parts of every entity row, flattened (row-major, one slot per join key), built
    // once per view rather than once per feature.
    let mut entity_parts: HashMap<&str, (usize, Vec<&Value>)> = HashMap::new();
    for view in &plan.views {
        if !indexes.contains_key(&view.name) && !shared.contains_key(&view.name) {
            continue;
        }
        let Some(join_keys) = plan.join_keys.get(view.name.as_str()) else {
            continue;
        };
        let columns: Vec<&Vec<Value>> = join_keys
            .iter()
            .filter_map(|k| {
                query
                    .entities
                    .iter()
                    .find(|(name, _)| name == k)
                    .map(|(_, v)| v)
            })
            .collect();
        let mut parts = Vec::with_capacity(rows * columns.len());
        for row in 0..rows {
            parts.extend(columns.iter().map(|c| &c[row]));
        }
        entity_parts.insert(view.name.as_str(), (columns.len().max(1), parts));
    }
    let mut features = Vec::with_capacity(plan.refs.len());
    for r in &plan.refs {
        let Some((width, parts)) = entity_parts.get(r.view.as_str()) else {
            continue;
        };
        let name = if query.full_feature_names {
            format!("{}__{}", r.view, r.feature)
        } else {
            r.feature.clone()
        };
        let shared_index = shared.get(&r.view);
        // The name is cloned only when two answers are merged: the local path stays as lean
        // as it was.
        let (local_name, shared_name) = match shared_index {
            Some(_) => (name.clone(), Some(name)),
            None => (name, None),
        };
        let local = indexes.get(&r.view).and_then(|index| {
            lookup(
                index,
                &r.feature,
                local_name,
                parts.chunks(*width),
                now_micros,
            )
        });
        let remote = shared_index
            .zip(shared_name)
            .and_then(|(rows, name)| rows.lookup(&r.feature, name, now_micros));
        if let Some(column) = crate::online::merge::merge_columns(local, remote) {
            features.push(column);
        }
    }
    drop(entity_parts);
    let used: Vec<&String> = plan.join_keys.values().flatten().collect();
    let entities = query
        .entities
        .into_iter()
        .filter(|(k, _)| used.contains(&k))
        .collect();
    Ok(OnlineAnswer { entities, features })
}

/// The entity columns an answer echoes: those some requested view joins on, as sent.
pub(super) fn echoed_entities(
    plan: &Plan<'_>,
    entities: Vec<(String, Vec<Value>)>,
) -> Vec<(String, Vec<Value>)> {
    let used: Vec<&String> = plan.join_keys.values().flatten().collect();
    entities
        .into_iter()
        .filter(|(k, _)| used.contains(&k))
        .collect()
}
