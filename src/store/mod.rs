//! `FeatureStore`: the one facade the HTTP API and the CLI call.
//!
//! It owns the policy around storage: name resolution, batch lookups, limits, and running
//! every blocking file or Parquet operation on the blocking thread pool so request handlers
//! never block the event loop (the 2.5 sketch served one data request at a time because it
//! did). Types the API needs are re-exported from here so `api` never reaches into `storage`.

mod batch;
mod batch_history;
mod bus;
mod diff;
mod entity_rows;
mod error;
mod feast_import;
mod folding;
mod health;
mod historical;
mod history;
mod materialize;
mod null_types;
mod online;
mod online_history;
mod push;
mod registration;
mod shared;
mod stats;
mod status;
mod versions;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;

pub use crate::bus::BusStatus as ChangeBusStatus;
pub use crate::cache::{CacheStats, TierStats};
pub use crate::online::{FeatureColumn, FieldStatus};
pub use crate::registry::feast_import::FeastImportError;
pub use crate::registry::{
    ApplyReport, Committed, HistoryPage, Invalid, Referrers, RegistryError, SyncStatus,
    TableReferences, VersionDocument, ViewSync, Writer,
};
pub use crate::storage::{AppendOutcome, FoldOutcome};
pub use crate::storage::{
    ColumnInfo, Declaration, DuplicateTable, RecordColumns, SaveOutcome, StorageError, TableInfo,
    UnreadableTable, dtype_name, parse_timestamp_micros,
};
pub use crate::storage::{
    ColumnRetype, HistorySweep, LogicalType, StatsConfig, VersionOp, VersionRecord, VersionSelector,
};
pub use batch::{BatchQuery, BatchTable, EntityId};
pub use diff::KeyChanges;
pub use error::{NameKind, Result, StoreError};
pub use feast_import::{
    CopyProgress, CopyStatus, FeastImport, FeastImportOptions, TableCopy, Unmappable,
};
pub use folding::FoldGuard;
pub use health::{
    DeepCheck, HealthConfig, HealthReport, STALE_AFTER_AT_LEAST, STALE_AFTER_INTERVALS,
};
pub use historical::{
    ENTITY_TIMESTAMP, HistoricalAnswer, HistoricalEntities, HistoricalQuery, REGISTRY_VERSION_KEY,
    TABLE_VERSIONS_KEY, to_parquet_bytes,
};
pub use materialize::{MaterializeRequest, MaterializedView};
pub use online::{OnlineAnswer, OnlineQuery};
pub use online_history::{FeatureSeries, OnlineHistoryAnswer, OnlineSeriesAnswer, OnlineWhen};
pub use push::{PushOutcome, PushRequest, PushTarget};
pub use registration::{Deleted, KeySource, Saved, ViewOptions};
pub use stats::{DriftReport, STATS_BACKFILL_INTERVAL, TableStats, TableStatsGauges};
pub use status::{BackendInfo, ObjectStoreStatus, OnlineStatus};
pub use versions::{
    HISTORY_SWEEP_INTERVAL, HistoryUsage, Restored, TableDiff, VersionInfo, VersionPage,
    VersionPins,
};

use std::collections::HashMap;

use crate::cache::{CacheConfig, CacheKey, Clock, ReadKind, SystemClock, TieredCache};
use crate::model::{FeatureView, GroupName, TableName};
use crate::online::ViewIndex;
use crate::online::durable::OnlineDb;
use crate::online::redis::{OnlineBackend, RedisOnline};
use crate::registry::{Registry, SyncOptions};
use crate::storage::{Storage, StorageConfig, TableHandle};

/// A page of a table, as asked for.
#[derive(Debug, Clone)]
pub struct PageRequest {
    /// Columns to return, in this order; `None` for all, in table order.
    pub columns: Option<Vec<String>>,
    /// First row (0-based).
    pub offset: u64,
    /// Rows at most.
    pub limit: u64,
}

/// A page of a table.
#[derive(Debug, Clone)]
pub struct Page {
    /// The rows, with logical types, columns in the order asked.
    pub batch: RecordBatch,
    /// Rows in the whole table.
    pub total_rows: u64,
    /// Version the page was read from.
    pub version: u64,
}

/// One table in the listing.
#[derive(Debug, Clone)]
pub struct TableSummary {
    /// Group.
    pub group: String,
    /// Name.
    pub name: String,
    /// Rows.
    pub rows: u64,
    /// File size in bytes.
    pub file_size_bytes: u64,
    /// Version.
    pub version: u64,
    /// Column count.
    pub columns: usize,
    /// Last modification of the table's file.
    pub modified: std::time::SystemTime,
}

/// What a store is opened with.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The Parquet tree.
    pub storage: StorageConfig,
    /// The cache tiers.
    pub cache: CacheConfig,
    /// Most rows one table of a batch lookup may return.
    pub max_batch_rows: u64,
    /// The clock of the memory tier's TTL.
    pub clock: Arc<dyn Clock>,
    /// Whether to open the sled databases under `cache/` and `online/` (each can be held by
    /// one process only). A command that runs beside a possible server and needs neither
    /// (`apply`, `demo`, `historical`, `info`) leaves them to the server.
    pub local_databases: LocalDatabases,
    /// With `storage.backend = "s3"`: an object store to use instead of the one
    /// `storage.s3` and the `AWS_*` variables describe (an embedder's own client, or a test's
    /// with its credentials).
    pub object_store: Option<crate::storage::object::BlockingTree>,
    /// `[online]`: the local tier, or Redis shared by replicas.
    pub online: crate::online::redis::OnlineConfig,
    /// `health.check_interval_seconds`: how often `/health`'s deep checks run.
    pub health_check_interval: Duration,
}

/// Which of the data root's single-process databases a store opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalDatabases {
    /// The disk cache tier and the durable online store (the server).
    All,
    /// Only the durable online store (`materialize`).
    OnlineStore,
    /// Neither: the store reads and writes tables and the registry only.
    None,
}

impl StoreOptions {
    /// Options with the real clock.
    pub fn new(storage: StorageConfig, cache: CacheConfig, max_batch_rows: u64) -> Self {
        Self {
            storage,
            cache,
            max_batch_rows,
            clock: Arc::new(SystemClock),
            local_databases: LocalDatabases::All,
            object_store: None,
            online: crate::online::redis::OnlineConfig::default(),
            health_check_interval: Duration::from_secs(10),
        }
    }
}

/// The feature store.
#[derive(Debug, Clone)]
pub struct FeatureStore {
    storage: Arc<Storage>,
    cache: Arc<TieredCache>,
    registry: Arc<Registry>,
    indexes: Arc<online::IndexCache>,
    /// The durable online store; `None` when it could not be opened (then lookups are served
    /// from the tables, and pushes online and materialization fail with a clear error).
    durable: Option<Arc<OnlineDb>>,
    /// Why the durable online store is unavailable.
    durable_error: Option<String>,
    /// The shared online tier, with `online.backend = "redis"`: rows pushed online and
    /// materialized live there instead of in `durable`.
    redis: Option<Arc<RedisOnline>>,
    /// This replica's side of the change bus, with Redis (see `crate::bus`).
    bus: Option<Arc<crate::bus::ChangeBus>>,
    clock: Arc<dyn Clock>,
    started: Instant,
    max_batch_rows: u64,
    /// Tables whose pushed parts wait to be folded into their files.
    folds: Arc<folding::FoldQueue>,
    /// Where the tables live, for `/health`.
    backend: Arc<BackendInfo>,
    /// Rendered statistics answers and `/metrics` figures.
    stats: Arc<stats::StatsAnswers>,
    /// The last round of `/health`'s deep checks.
    health: Arc<health::HealthChecks>,
    /// Decoded view histories kept between historical requests (`cache.history_max_mb`).
    histories: Arc<crate::history::HistoryCache>,
    /// The histories the last as-of and last-N online reads used, held weakly.
    recent_histories: Arc<online_history::RecentHistories>,
}

impl FeatureStore {
    /// Opens the store on the tree of `options.storage`, with its caches under `cache/`.
    pub fn open(options: StoreOptions) -> Result<Self> {
        let folds = Arc::new(folding::FoldQueue::new(&options.storage));
        let backend = Arc::new(BackendInfo::of(&options.storage));
        let storage = match options.object_store {
            Some(tree) if options.storage.backend == crate::storage::StorageBackend::S3 => {
                Storage::open_on(options.storage, tree)?
            }
            _ => Storage::open(options.storage)?,
        };
        let mut cache_config = options.cache;
        if options.local_databases != LocalDatabases::All {
            cache_config.disk_max_mb = 0;
        }
        let histories = Arc::new(crate::history::HistoryCache::new(
            cache_config.history_max_mb,
        ));
        let cache = TieredCache::open(
            &cache_config,
            &storage.layout().cache_dir(),
            Arc::clone(&options.clock),
        );
        // The s3 kind keeps the registry in the bucket beside the tables, shared by every
        // replica; the local kind keeps its file (and cross-process lock) in the data root.
        let history = registration::history_options(&options.clock, storage.history_config());
        let registry = match storage.object_tree() {
            Some(tree) => Registry::open_object_with(tree.clone(), history)?,
            None => Registry::open_with(&storage.layout().registry_dir(), history)?,
        };
        let online_dir = storage.layout().online_dir();
        let redis = match options.online.backend {
            OnlineBackend::Local => None,
            OnlineBackend::Redis => Some(shared::open(&options.online.redis)?),
        };
        let (durable, durable_error) = if redis.is_some() {
            // Redis holds what sled would: rows left in a sled store by an earlier local run
            // are not mixed in.
            (
                None,
                Some("online.backend is \"redis\": the local online store is not used".to_owned()),
            )
        } else if options.local_databases == LocalDatabases::None {
            (None, Some("not opened by this command".to_owned()))
        } else {
            match OnlineDb::open(&online_dir) {
                Ok(db) => (Some(Arc::new(db)), None),
                Err(e) => {
                    // A command that needs it reports it to its user instead.
                    if options.local_databases == LocalDatabases::All {
                        tracing::warn!(path = %online_dir.display(), error = %e, "the durable online store is unavailable; online lookups are served from the tables");
                    }
                    (None, Some(e.to_string()))
                }
            }
        };
        Ok(Self {
            storage: Arc::new(storage),
            cache: Arc::new(cache),
            registry: Arc::new(registry),
            indexes: Arc::new(online::IndexCache::default()),
            durable,
            durable_error,
            bus: redis
                .as_ref()
                .map(|_| Arc::new(crate::bus::ChangeBus::new())),
            redis,
            clock: options.clock,
            started: Instant::now(),
            max_batch_rows: options.max_batch_rows,
            folds,
            backend,
            stats: Arc::default(),
            health: Arc::new(health::HealthChecks::new(options.health_check_interval)),
            histories,
            recent_histories: Arc::default(),
        })
    }

    /// Runs a blocking closure on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Storage, &TieredCache) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let storage = Arc::clone(&self.storage);
        let cache = Arc::clone(&self.cache);
        tokio::task::spawn_blocking(move || f(&storage, &cache))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Every table, by group then name. Rescans the local tree first, so tables added,
    /// replaced or removed by other tools are listed as they are. The s3 kind lists what its
    /// last poll saw (at most `storage.poll_interval_ms` old): a rescan there costs a LIST per
    /// table, too much for every listing.
    pub async fn list(&self) -> Result<Vec<TableSummary>> {
        self.blocking(|s, c| {
            if s.poll_interval().is_none() {
                refresh_tree(s, c);
            }
            Ok(s.list().iter().map(|h| summary(h)).collect())
        })
        .await
    }

    /// Brings the catalog in line with the tree and drops cache entries of tables that
    /// changed (blocking; called by the watcher). The views of tables another tool rewrote
    /// are followed or checked as after a save (mismatches are logged).
    pub fn refresh_tree(&self) -> Vec<String> {
        let changed = refresh_tree(&self.storage, &self.cache);
        self.follow_views(&changed);
        changed
    }

    /// After the catalog changed for `changed` (a poll round, a change-bus notice): each
    /// view followed or checked against its table, and the online index of a table that is
    /// gone forgotten.
    fn follow_views(&self, changed: &[String]) {
        for name in changed {
            let Some(table) = name
                .parse::<TableName>()
                .ok()
                .and_then(|n| self.storage.peek(&n))
            else {
                online::forget_index(&self.indexes, name);
                continue;
            };
            registration::sync_view(
                &self.storage,
                &self.registry,
                &table.group,
                &table.name,
                &SyncOptions::default(),
            );
        }
    }

    /// A page of `group/name`: memory tier, then disk tier, then Parquet.
    pub async fn page(
        &self,
        group: GroupName,
        name: TableName,
        request: PageRequest,
    ) -> Result<Page> {
        // Fast path on the event loop: the table is in the catalog and the page in memory.
        let mut memory_checked = false;
        if let Some(table) = self.storage.peek(&name)
            && table.group == group
        {
            let key = page_key(&table, &request);
            if let Some(batch) = self.cache.get_memory(&key) {
                return Ok(Page {
                    batch,
                    total_rows: table.file.row_count(),
                    version: table.version,
                });
            }
            memory_checked = true;
        }
        self.blocking(move |s, cache| {
            let table = s.get_in_group(&group, &name)?;
            read_page(cache, &table, &request, memory_checked)
        })
        .await
    }

    /// Replaces (or creates) `group/name` from JSON records, then brings its feature view in
    /// step: registers one when the table has none (its entity key inferred from the
    /// registered entities when not declared), lets one that a save registered follow the new
    /// columns, and checks one declared with `apply`.
    pub async fn save_records(
        &self,
        group: GroupName,
        name: TableName,
        records: RecordColumns,
        declaration: Declaration,
        view: ViewOptions,
    ) -> Result<Saved> {
        let registry = Arc::clone(&self.registry);
        let written = (group.to_string(), name.to_string());
        self.blocking(move |s, c| {
            reload_registry(&registry);
            let snapshot = registry.snapshot();
            let null_types = null_types::registered_types(&snapshot, &name);
            let (declaration, entity_key_source) = registration::complete_declaration(
                s,
                &snapshot,
                &group,
                &name,
                &records,
                declaration,
            );
            let options = SyncOptions {
                register: true,
                ttl_seconds: view.ttl_seconds,
                created_timestamp_field: declaration.created_timestamp_field.clone(),
                ..SyncOptions::default()
            };
            let outcome = s.save_records_typed(&group, &name, &records, declaration, &null_types);
            let (table, registry) =
                registration::after_write(s, c, &registry, &group, &name, outcome, &options)?;
            Ok(Saved {
                table,
                entity_key_source,
                registry,
            })
        })
        .await
        .inspect(|_| self.announce_table(Some(&written.0), &written.1))
    }

    /// Replaces (or creates) `group/name` from an Arrow batch with logical types. A view the
    /// table already has is followed or checked (mismatches are logged); none is registered,
    /// since the callers (the demo) declare their own.
    pub async fn save_batch(
        &self,
        group: GroupName,
        name: TableName,
        batch: RecordBatch,
        declaration: Declaration,
    ) -> Result<SaveOutcome> {
        let registry = Arc::clone(&self.registry);
        let written = (group.to_string(), name.to_string());
        self.blocking(move |s, c| {
            let outcome = s.save_batch(&group, &name, &batch, declaration);
            let options = SyncOptions::default();
            registration::after_write(s, c, &registry, &group, &name, outcome, &options)
                .map(|(outcome, _)| outcome)
        })
        .await
        .inspect(|_| self.announce_table(Some(&written.0), &written.1))
    }

    /// Storage facts of `group/name`.
    pub async fn info(&self, group: GroupName, name: TableName) -> Result<TableInfo> {
        self.blocking(move |s, _| Ok(s.info(&*s.get_in_group(&group, &name)?)))
            .await
    }

    /// Deletes `group/name`; returns the version it had and the registered objects that
    /// still name it.
    pub async fn delete(
        &self,
        group: GroupName,
        name: TableName,
        written_by: Option<String>,
    ) -> Result<Deleted> {
        let durable = self.durable.clone();
        let redis = self.redis.clone();
        let indexes = Arc::clone(&self.indexes);
        let registry = Arc::clone(&self.registry);
        let deleted = crate::bus::Change::TableDeleted {
            group: Some(group.to_string()),
            name: name.to_string(),
        };
        let outcome = self.blocking(move |s, c| {
            let deleted = s.delete(&group, &name, written_by);
            c.invalidate_table(name.as_str());
            let deleted = deleted?;
            // Rows pushed online to the deleted table must not resurface if a table of the
            // same name is created later.
            online::forget_index(&indexes, name.as_str());
            if let Some(db) = durable
                && let Err(e) = db.forget(name.as_str())
            {
                tracing::warn!(table = %name, error = %e, "could not drop the deleted table's online rows");
            }
            if let Some(redis) = redis {
                let (forget, view) = (Arc::clone(&redis), name.to_string());
                if let Err(e) = redis.wait(async move { forget.forget_view(&view).await }) {
                    tracing::warn!(table = %name, error = %e, "could not drop the deleted table's rows from redis; they are dropped by the next delete of a table of this name");
                }
            }
            reload_registry(&registry);
            Ok(Deleted {
                version: deleted,
                references: registry.references(name.as_str()),
            })
        })
        .await;
        if outcome.is_ok() {
            self.announce(deleted);
        }
        outcome
    }

    /// Feast's online lookup: the latest value of each feature for each entity row, with TTL
    /// enforced. Probes run on the caller's thread when every index is fresh; missing or stale
    /// indexes are built on the blocking pool first.
    pub async fn online_features(&self, query: OnlineQuery) -> Result<OnlineAnswer> {
        let registry = self.registry.snapshot();
        let plan = online::plan(&registry, &query)?;
        let now = self.clock.wall_micros();
        // Rows in the shared tier first: a view it answers alone needs no local index,
        // unless the read fails, and then the local index answers (the best this replica
        // knows).
        let mut from_redis = HashMap::new();
        let mut alone: Vec<String> = Vec::new();
        if let Some(redis) = &self.redis {
            let views = shared::shared_views(redis, &self.storage, &plan, now);
            if !views.is_empty() {
                // Boxed, as the index build below: the futures of these rarer paths would
                // otherwise be inlined into every lookup's future, which the HTTP handler's is
                // allocated around on each request.
                match Box::pin(shared::fetch(redis, &query, &views)).await {
                    Ok(rows) => {
                        alone = views
                            .iter()
                            .filter(|v| v.alone && rows.contains_key(&v.view.name))
                            .map(|v| v.view.name.clone())
                            .collect();
                        from_redis = rows;
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "lookup answered from the local index: redis did not answer");
                    }
                }
            }
        }
        let mut ready: HashMap<String, Arc<ViewIndex>> = HashMap::new();
        let mut missing: Vec<(FeatureView, Vec<String>)> = Vec::new();
        for view in plan.views() {
            if alone.contains(&view.name) {
                continue;
            }
            match online::fresh_index(&self.storage, &self.indexes, view, now) {
                Some(index) => {
                    ready.insert(view.name.clone(), index);
                }
                None => missing.push(((*view).clone(), online::join_keys(&plan, &view.name))),
            }
        }
        if !missing.is_empty() {
            let indexes = Arc::clone(&self.indexes);
            let durable = self.durable.clone();
            let built = Box::pin(self.blocking(move |s, _| {
                missing
                    .into_iter()
                    .map(|(view, keys)| {
                        online::build_index(s, &indexes, durable.as_deref(), &view, keys, now)
                    })
                    .collect::<Result<Vec<_>>>()
            }))
            .await?;
            for index in built {
                ready.insert(index.view.name.clone(), index);
            }
        }
        online::answer(&plan, query, &ready, &from_redis, now)
    }

    /// Builds the online index of every registered view (blocking; start-up preload). Views
    /// whose table cannot be indexed are logged and skipped.
    pub fn preload_indexes(&self) {
        let registry = self.registry.snapshot();
        let now = self.clock.wall_micros();
        for view in &registry.feature_views {
            let keys = online::view_join_keys(&registry, view);
            if let Some(redis) = &self.redis
                && shared::answers_alone(redis, &self.storage, view, &keys, now)
            {
                // Redis holds this very snapshot: lookups never need the index.
                continue;
            }
            if let Err(e) = online::build_index(
                &self.storage,
                &self.indexes,
                self.durable.as_deref(),
                view,
                keys,
                now,
            ) {
                tracing::warn!(view = %view.name, error = %e, "could not preload the online index");
            }
        }
    }

    /// Training data: each entity row joined, per requested view, with the latest feature
    /// row at or before its timestamp (within the view's TTL); see `offline` for the rule.
    pub async fn historical(&self, query: HistoricalQuery) -> Result<HistoricalAnswer> {
        // The definitions and their version number together: the answer names the very
        // registry version it was resolved against.
        let (registry, registry_version) = self.registry.snapshot_with_version();
        let histories = Arc::clone(&self.histories);
        self.blocking(move |s, _| {
            historical::historical(s, &histories, &registry, registry_version, query)
        })
        .await
    }

    /// The decoded history of feature view `view` at `selector` (the current version, a
    /// numbered one, or the one current at an instant): kept in memory by table version and
    /// shared by every caller, built once on first use (see `crate::history`).
    pub async fn view_history(
        &self,
        view: &str,
        selector: VersionSelector,
    ) -> Result<Arc<crate::history::ViewHistory>> {
        let registry = self.registry.snapshot();
        let histories = Arc::clone(&self.histories);
        let view = view.to_owned();
        self.blocking(move |s, _| {
            history::view_history_blocking(s, &histories, &registry, &view, selector)
                .map(|(history, _)| history)
        })
        .await
    }

    /// The kept histories' figures, in the cache tiers' shape (`/performance`, `/metrics`).
    pub fn history_stats(&self) -> TierStats {
        self.histories.stats()
    }

    /// Why the durable online store is not open, if it is not (another process holds it, or
    /// this store was opened without it).
    pub fn online_store_error(&self) -> Option<&str> {
        // With Redis the local store is not used: its absence is no error.
        if self.redis.is_some() {
            return None;
        }
        self.durable_error.as_deref()
    }

    /// Both cache tiers' statistics.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// Empties both cache tiers; returns how many entries they held.
    pub async fn clear_cache(&self) -> Result<usize> {
        let removed = self.blocking(|_, c| Ok(c.clear())).await?;
        self.announce(crate::bus::Change::Cache {
            group: None,
            name: None,
        });
        Ok(removed)
    }

    /// Drops the cache entries of `group/name`; returns how many.
    pub async fn clear_table_cache(&self, group: GroupName, name: TableName) -> Result<usize> {
        let cleared = crate::bus::Change::Cache {
            group: Some(group.to_string()),
            name: Some(name.to_string()),
        };
        let removed = self
            .blocking(move |s, c| {
                s.get_in_group(&group, &name)?;
                Ok(c.invalidate_table(name.as_str()))
            })
            .await?;
        self.announce(cleared);
        Ok(removed)
    }

    /// Every table in the catalog, without rescanning (cheap; for reports and metrics).
    pub fn catalog(&self) -> Vec<TableSummary> {
        self.storage.list().iter().map(|h| summary(h)).collect()
    }

    /// How often the s3 kind polls the bucket for other writers' commits; `None` for the
    /// local kind, whose tree is watched.
    pub fn poll_interval(&self) -> Option<std::time::Duration> {
        self.storage.poll_interval()
    }

    /// The folder of the local kind's feature tree (watched for changes by other tools).
    pub fn features_dir(&self) -> std::path::PathBuf {
        self.storage.layout().features_dir()
    }

    /// Flushes what must survive a restart (the disk cache, the online store); called at
    /// shutdown.
    pub fn flush(&self) {
        self.cache.flush();
        if let Some(db) = &self.durable
            && let Err(e) = db.flush()
        {
            tracing::warn!(error = %e, "could not flush the online store");
        }
    }

    /// The cache key a page read of `name` would use now; for tests of corruption handling.
    #[doc(hidden)]
    pub fn page_cache_key_for_test(
        &self,
        name: &TableName,
        request: &PageRequest,
    ) -> Option<CacheKey> {
        self.storage
            .peek(name)
            .map(|table| page_key(&table, request))
    }

    /// The cache, for tests of corruption handling.
    #[doc(hidden)]
    pub fn cache_for_test(&self) -> &TieredCache {
        &self.cache
    }

    /// The views this replica keeps a local online index of (tests check that a view the
    /// shared tier answers alone was served without one).
    pub fn local_indexes_for_test(&self) -> Vec<String> {
        online::kept_views(&self.indexes)
    }

    /// Whether the tree has no tables at all (used by `serve --demo`).
    pub async fn is_empty(&self) -> Result<bool> {
        self.blocking(|s, _| Ok(s.list().is_empty())).await
    }
}

/// [`Registry::reload`], logged instead of failing: a registry file that cannot be read
/// keeps the definitions last read in service.
fn reload_registry(registry: &Registry) -> bool {
    match registry.reload() {
        Ok(changed) => changed,
        Err(e) => {
            tracing::warn!(error = %e, "cannot re-read the registry; serving the definitions last read");
            false
        }
    }
}

fn refresh_tree(storage: &Storage, cache: &TieredCache) -> Vec<String> {
    let changed = storage.rescan();
    for table in &changed {
        cache.invalidate_table(table);
    }
    changed
}

fn page_key(table: &TableHandle, request: &PageRequest) -> CacheKey {
    CacheKey {
        table: table.name.to_string(),
        version: table.version,
        snapshot: table.file.snapshot_id(),
        kind: ReadKind::Page {
            columns: request.columns.clone(),
            offset: request.offset,
            limit: request.limit,
        },
    }
}

/// A page of `table` (any version) through the cache tiers; `memory_checked` when the caller
/// already missed the memory tier.
fn read_page(
    cache: &TieredCache,
    table: &TableHandle,
    request: &PageRequest,
    memory_checked: bool,
) -> Result<Page> {
    let key = page_key(table, request);
    let cached = if memory_checked {
        cache.get_disk(&key)
    } else {
        cache.get(&key).map(|(b, _)| b)
    };
    let batch = match cached {
        Some(batch) => batch,
        None => {
            let file = &table.file;
            let projection = match &request.columns {
                Some(columns) => file.column_indices(columns)?,
                None => file.all_columns(),
            };
            let batch = file.read_range(&projection, request.offset, request.limit)?;
            cache.put(key, &batch);
            batch
        }
    };
    Ok(Page {
        batch,
        total_rows: table.file.row_count(),
        version: table.version,
    })
}

fn summary(handle: &TableHandle) -> TableSummary {
    TableSummary {
        group: handle.group.to_string(),
        name: handle.name.to_string(),
        rows: handle.file.row_count(),
        file_size_bytes: handle.file.file_size(),
        version: handle.version,
        columns: handle.file.schema().fields().len(),
        modified: handle.file.modified(),
    }
}
