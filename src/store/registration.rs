//! Between a table write and the registry: which entity key a save infers from the registered
//! entities, and keeping the table's feature view in step after the write (blocking helpers
//! the facade runs on the blocking pool).

use std::sync::Arc;

use super::{ApplyReport, FeatureStore, Result, SaveOutcome, TableReferences, reload_registry};
use crate::cache::TieredCache;
use crate::model::{Entity, FeatureService, FeatureView, GroupName, RegistryDocument, TableName};
use crate::registry::{
    Committed, HistoryOptions, HistoryPage, Registry, SyncOptions, SyncStatus, TableFacts,
    VersionDocument, ViewSync, Writer,
};
use crate::storage::{
    DEFAULT_ENTITY_KEY, Declaration, JsonScalar, RecordColumns, Storage, StorageError, dtype_name,
};

/// What a JSON save did: the table, where its entity key came from, and its feature view.
#[derive(Debug, Clone)]
pub struct Saved {
    /// The table write.
    pub table: SaveOutcome,
    /// Where the entity key in effect came from.
    pub entity_key_source: KeySource,
    /// What the save did to the table's feature view.
    pub registry: ViewSync,
}

/// What a save asks of the table's feature view besides the table itself.
#[derive(Debug, Clone, Default)]
pub struct ViewOptions {
    /// TTL of the view the save registers (or of the view it registered before).
    pub ttl_seconds: Option<u64>,
}

/// What a table delete did: the version the table had and what still names it.
#[derive(Debug, Clone)]
pub struct Deleted {
    /// The version the table had.
    pub version: u64,
    /// The registered views over it and the services using them, kept registered (a table
    /// created again under the name serves them again).
    pub references: TableReferences,
}

/// The registry side of the facade.
impl FeatureStore {
    /// The registry's current definitions.
    pub fn registry(&self) -> Arc<RegistryDocument> {
        self.registry.snapshot()
    }

    /// Validates `doc` against the registry as it is on disk now and the tables' schemas, and
    /// applies it (as the command line does: no token names the writer).
    pub async fn apply(&self, doc: RegistryDocument) -> Result<ApplyReport> {
        Ok(self.apply_if(doc, None, Writer::default()).await?.0)
    }

    /// [`Self::apply`] by `writer`, only if the registry is still at version `expected` (an
    /// `If-Match`); also returns the version it left.
    pub async fn apply_if(
        &self,
        doc: RegistryDocument,
        expected: Option<String>,
        writer: Writer,
    ) -> Result<(ApplyReport, Committed)> {
        let registry = Arc::clone(&self.registry);
        self.blocking(move |s, _| {
            Ok(
                registry.apply_if(doc, expected.as_deref(), &writer, &|group, name| {
                    table_columns(s, group, name)
                })?,
            )
        })
        .await
        .inspect(|_| self.announce(crate::bus::Change::Registry))
    }

    /// Unregisters a feature view (409 while a feature service uses it), if the registry is
    /// still at version `expected`; also returns the version it left.
    pub async fn delete_feature_view(
        &self,
        name: String,
        expected: Option<String>,
        writer: Writer,
    ) -> Result<(FeatureView, Committed)> {
        let registry = Arc::clone(&self.registry);
        self.blocking(move |_, _| Ok(registry.delete_view(&name, expected.as_deref(), &writer)?))
            .await
            .inspect(|_| self.announce(crate::bus::Change::Registry))
    }

    /// Unregisters a feature service, if the registry is still at version `expected`.
    pub async fn delete_feature_service(
        &self,
        name: String,
        expected: Option<String>,
        writer: Writer,
    ) -> Result<(FeatureService, Committed)> {
        let registry = Arc::clone(&self.registry);
        self.blocking(move |_, _| {
            Ok(registry.delete_service(&name, expected.as_deref(), &writer)?)
        })
        .await
        .inspect(|_| self.announce(crate::bus::Change::Registry))
    }

    /// Unregisters an entity (409 while a feature view uses it), if the registry is still at
    /// version `expected`.
    pub async fn delete_entity(
        &self,
        name: String,
        expected: Option<String>,
        writer: Writer,
    ) -> Result<(Entity, Committed)> {
        let registry = Arc::clone(&self.registry);
        self.blocking(move |_, _| {
            Ok(registry.delete_entity(&name, expected.as_deref(), &writer)?)
        })
        .await
        .inspect(|_| self.announce(crate::bus::Change::Registry))
    }

    /// The version tag of the definitions served now (the registry routes' `ETag`).
    pub fn registry_tag(&self) -> String {
        crate::registry::version_tag(&self.registry.snapshot())
    }

    /// The registry version of the definitions served now: the number of the latest registry
    /// write (0 when nothing was ever applied), as `GET /registry/history` lists it. Historical
    /// answers state it so a training set names the definitions it was built with.
    pub fn registry_version(&self) -> u64 {
        self.registry.version()
    }

    /// The registry's definitions and their version number, read together (a write between
    /// two separate reads could pair one with the other's neighbour).
    pub fn registry_with_version(&self) -> (Arc<RegistryDocument>, u64) {
        self.registry.snapshot_with_version()
    }

    /// A page of the registry's history, newest first (after re-reading the registry, so a
    /// change made by another process is listed).
    pub async fn registry_history(&self, offset: u64, limit: u64) -> Result<HistoryPage> {
        let registry = Arc::clone(&self.registry);
        self.blocking(move |_, _| {
            reload_registry(&registry);
            Ok(registry.history_page(offset, limit)?)
        })
        .await
    }

    /// Registry version `version` with its whole document: 404 `registry_version_not_found`
    /// when it was never recorded, 410 `registry_version_expired` when no longer retained.
    pub async fn registry_version_document(&self, version: u64) -> Result<VersionDocument> {
        let registry = Arc::clone(&self.registry);
        self.blocking(move |_, _| {
            reload_registry(&registry);
            Ok(registry.version_document(version)?)
        })
        .await
    }

    /// Re-reads the registry file if another process changed it (blocking; called by the
    /// watcher). Returns whether the definitions changed.
    pub fn reload_registry(&self) -> bool {
        reload_registry(&self.registry)
    }

    /// The registry's folder, whose changes the watcher reports.
    pub fn registry_dir(&self) -> std::path::PathBuf {
        self.storage.layout().registry_dir()
    }
}

/// Where the entity key of a save came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// The save declared it.
    Declared,
    /// Kept from the table's previous declaration.
    Previous,
    /// The column `entity_id`.
    EntityId,
    /// The columns that are join keys of registered entities.
    RegisteredEntities,
    /// None could be found; the table has no entity key.
    None,
}

impl KeySource {
    /// The snake_case name the API answers with.
    pub fn as_str(self) -> &'static str {
        match self {
            KeySource::Declared => "declared",
            KeySource::Previous => "previous",
            KeySource::EntityId => "entity_id",
            KeySource::RegisteredEntities => "registered_entities",
            KeySource::None => "none",
        }
    }
}

/// Completes `declaration` for a JSON save of `records`: when it names no entity key, the
/// table keeps its previous one, else takes `entity_id`, else the columns that are join keys
/// of registered entities (several: a composite key, in column order). A view the table
/// already has also lends its created-timestamp column, so a later save that does not repeat
/// it keeps that column a timestamp.
pub(super) fn complete_declaration(
    storage: &Storage,
    registry: &RegistryDocument,
    group: &GroupName,
    name: &TableName,
    records: &RecordColumns,
    mut declaration: Declaration,
) -> (Declaration, KeySource) {
    let columns = records.names();
    if declaration.created_timestamp_field.is_none() {
        declaration.created_timestamp_field = registry
            .feature_views
            .iter()
            .find(|v| v.name == name.as_str())
            .and_then(|v| v.created_timestamp_field.clone())
            .filter(|c| columns.contains(c) && Some(c) != declaration.timestamp_field.as_ref());
    }
    if declaration.entity_key.is_some() {
        return (declaration, KeySource::Declared);
    }
    let previous = storage
        .get_in_group(group, name)
        .map(|t| t.entity_key.clone())
        .unwrap_or_default();
    if !previous.is_empty() && previous.iter().all(|k| columns.contains(k)) {
        return (declaration, KeySource::Previous);
    }
    if columns.iter().any(|c| c == DEFAULT_ENTITY_KEY) {
        return (declaration, KeySource::EntityId);
    }
    let key: Vec<String> = records
        .columns()
        .filter(|(column, values)| {
            registry.entities.iter().any(|e| e.join_key() == *column) && can_key(values)
        })
        .map(|(column, _)| column.to_owned())
        .collect();
    if key.is_empty() {
        return (declaration, KeySource::None);
    }
    declaration.entity_key = Some(key);
    (declaration, KeySource::RegisteredEntities)
}

/// Whether a column can be an entity key: integers or strings (not both), nulls aside.
fn can_key(values: &[JsonScalar]) -> bool {
    let ints = values.iter().any(|v| matches!(v, JsonScalar::Int(_)));
    let strings = values.iter().any(|v| matches!(v, JsonScalar::Str(_)));
    (ints != strings)
        && values.iter().all(|v| {
            matches!(
                v,
                JsonScalar::Int(_) | JsonScalar::Str(_) | JsonScalar::Null
            )
        })
}

/// A table's columns and served types, for registry validation; `None` when it does not exist
/// in that group.
pub(super) fn table_columns(
    storage: &Storage,
    group: &GroupName,
    name: &TableName,
) -> Option<Vec<(String, String)>> {
    let table = storage.get_in_group(group, name).ok()?;
    Some(
        table
            .file
            .schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), dtype_name(f.data_type())))
            .collect(),
    )
}

/// What every write that replaces a table's content (a save, a restore) does after it, so
/// they cannot drift apart: the table's cached reads dropped, whether the write succeeded or
/// not (a failed write may still have replaced the file), then its view brought in step.
/// The caller announces the write on the change bus once it returns.
pub(super) fn after_write<T>(
    storage: &Storage,
    cache: &TieredCache,
    registry: &Registry,
    group: &GroupName,
    name: &TableName,
    outcome: std::result::Result<T, StorageError>,
    options: &SyncOptions,
) -> Result<(T, ViewSync)> {
    cache.invalidate_table(name.as_str());
    let written = outcome?;
    Ok((written, sync_view(storage, registry, group, name, options)))
}

/// Brings the view of `group/name`, just written, in line with the table (see
/// `registry::sync`). A registry that cannot be written is reported in the answer, never
/// fatal: the table itself was saved.
pub(super) fn sync_view(
    storage: &Storage,
    registry: &Registry,
    group: &GroupName,
    name: &TableName,
    options: &SyncOptions,
) -> ViewSync {
    let failed = |message: String| ViewSync {
        status: SyncStatus::NotRegistered,
        feature_view: name.to_string(),
        message,
        entities_registered: Vec::new(),
        mismatches: Vec::new(),
        broken_feature_services: Vec::new(),
    };
    let table = match storage.get_in_group(group, name) {
        Ok(table) => table,
        Err(e) => return failed(format!("the saved table cannot be read back: {e}")),
    };
    let facts = TableFacts {
        group: group.clone(),
        name: name.clone(),
        columns: table_columns(storage, group, name).unwrap_or_default(),
        entity_key: table.entity_key.clone(),
        timestamp_field: table.timestamp_field.clone(),
    };
    match registry.sync_table(&facts, options) {
        Ok(sync) => {
            if sync.status == SyncStatus::Mismatch {
                tracing::warn!(view = %name, "{}", sync.message);
            }
            sync
        }
        Err(e) => {
            tracing::warn!(table = %name, error = %e, "could not update the registry after a save");
            failed(format!(
                "the table was saved, but the registry could not be updated: {e}"
            ))
        }
    }
}

/// The registry history's options: the store's clock (so tests that move time move the
/// history's too) and the tables' retention (`[storage.history]`), so "the definitions a
/// model trained with" stay readable as long as the rows it read.
pub(super) fn history_options(
    clock: &Arc<dyn crate::cache::Clock>,
    tables: crate::storage::HistoryConfig,
) -> HistoryOptions {
    let clock = Arc::clone(clock);
    HistoryOptions {
        clock: Arc::new(move || clock.wall_micros()),
        retention: crate::registry::Retention {
            keep: std::time::Duration::from_secs_f64(tables.keep_days * 86_400.0),
            keep_min: tables.keep_min as u64,
        },
    }
}
