//! The store's error: storage failures plus what only the store can judge.

use crate::registry::RegistryError;
use crate::storage::StorageError;

/// Which kind of registry name was not found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// A feature view.
    FeatureView,
    /// A feature of a known view.
    Feature,
    /// A feature service.
    FeatureService,
    /// A push source (or view) named by a push.
    PushSource,
}

impl std::fmt::Display for NameKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NameKind::FeatureView => "feature view(s) in",
            NameKind::Feature => "feature(s)",
            NameKind::FeatureService => "feature service",
            NameKind::PushSource => "push source",
        })
    }
}

/// Every failure a store operation reports.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A storage failure, kept whole.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Some of the tables named in a batch request do not exist.
    #[error("unknown feature table(s): {}", .0.join(", "))]
    UnknownTables(Vec<String>),
    /// `entity_ids` was given for a table that has no entity key.
    #[error(
        "table {table:?} has no entity key, so it cannot be filtered by entity_ids; declare one with `entity_key` when saving it, or omit entity_ids"
    )]
    NoEntityKey {
        /// The table.
        table: String,
    },
    /// Plain ids were given for a table keyed by several columns.
    #[error("table {table:?} is keyed by several columns ({}); send each of entity_ids as an object naming every key column, e.g. {}", .key.join(", "), composite_example(.key))]
    CompositeEntityKey {
        /// The table.
        table: String,
        /// Its key columns.
        key: Vec<String>,
    },
    /// A point-in-time lookup on a table without a timestamp field.
    #[error("table {table:?} has no timestamp field, so it cannot be read as of a timestamp")]
    NoTimestampField {
        /// The table.
        table: String,
    },
    /// A result would exceed the configured row limit.
    #[error(
        "table {table:?} would return {rows} rows, more than the limit of {limit}; filter with entity_ids or page through GET /features/{{group}}/{{name}}"
    )]
    ResultTooLarge {
        /// The table.
        table: String,
        /// Rows the request would return.
        rows: u64,
        /// The configured limit.
        limit: u64,
    },
    /// A registry failure, kept whole.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// Names in a request that the registry does not know, all of them.
    #[error("unknown {kind}: {}", .names.join(", "))]
    UnknownNames {
        /// What kind of name.
        kind: NameKind,
        /// The request field that named them.
        field: &'static str,
        /// Every unknown name.
        names: Vec<String>,
    },
    /// A request that is well-formed JSON but cannot be answered as asked.
    #[error("invalid field {field:?}: {message}")]
    InvalidRequest {
        /// The field at fault.
        field: String,
        /// Why.
        message: String,
    },
    /// `table_versions` pins views the request does not read: the pin would be ignored, and
    /// the training set believed pinned would not be.
    #[error(
        "table_versions names {}, which this request does not read; it reads {}",
        .views.join(", "),
        .requested.join(", ")
    )]
    UnrequestedPins {
        /// The pinned views the request does not read.
        views: Vec<String>,
        /// The views it reads.
        requested: Vec<String>,
    },
    /// A view declares features its table does not have (any more).
    #[error(
        "feature view {view:?} declares {columns:?}, but its table has no such column; re-apply the view or restore the column"
    )]
    ViewTableMismatch {
        /// The view.
        view: String,
        /// The missing columns.
        columns: Vec<String>,
    },
    /// The durable online store could not be opened or written (another process holds it,
    /// the disk failed).
    #[error("the online store is unavailable: {0}")]
    OnlineStoreUnavailable(String),
    /// `[stats] enabled = false`: versions have no statistics to serve.
    #[error(
        "statistics are turned off on this server (stats.enabled = false); set it to true (or FEATURESTORE__STATS__ENABLED=true) to compute them with every write"
    )]
    StatsDisabled,
    /// A comparison of a table's version with the one before it, when there is none.
    #[error(
        "table {table:?} has no retained version before version {version} to compare it with; write it again (or name both with ?from=&to=) to see its drift"
    )]
    NoPreviousVersion {
        /// The table.
        table: String,
        /// The version that has no predecessor.
        version: u64,
    },
    /// A Feast registry dump that cannot be imported, or a data file it names that cannot be
    /// read; nothing was written.
    #[error(transparent)]
    FeastImport(#[from] crate::registry::feast_import::FeastImportError),
    /// A background task failed to complete (it panicked or was cancelled).
    #[error("internal task failure: {0}")]
    Task(String),
}

/// Shorthand for results of this layer.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// An entity row naming every column of `key`, for messages: `{"user_id": 1, "movie_id": 10}`.
fn composite_example(key: &[String]) -> String {
    let members: Vec<String> = key.iter().map(|k| format!("{k:?}: 1")).collect();
    format!("{{{}}}", members.join(", "))
}
