//! The storage layer's error: what kind of failure, never an HTTP status.

use std::path::PathBuf;

/// Every failure of the Parquet tree.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// No table of that name exists (in that group, when a group was given).
    #[error("table {name:?} not found{}", hint.as_deref().map(|h| format!("; {h}")).unwrap_or_default())]
    TableNotFound {
        /// The table asked for.
        name: String,
        /// Where it is instead, when it exists under another group.
        hint: Option<String>,
    },
    /// A write names a table that already exists under another group (names are unique
    /// across groups).
    #[error(
        "table {name:?} already exists in group {existing_group:?}; table names are unique across groups"
    )]
    NameInOtherGroup {
        /// The table written.
        name: String,
        /// The group that already holds it.
        existing_group: String,
    },
    /// The name is in two groups on disk (another tool wrote the second file) and this
    /// request named the location that is not served. The catalog keeps serving the file it
    /// had first until one of them is removed or renamed.
    #[error(
        "table {name:?} exists twice: {served} is served and {ignored} is ignored (table names are unique across groups); remove or rename one of the files"
    )]
    DuplicateTable {
        /// The table.
        name: String,
        /// The file served, relative to the data root.
        served: String,
        /// The file asked for, which is not served.
        ignored: String,
    },
    /// The records could not become a table: wrong types, missing declared columns, etc.
    #[error("{message}")]
    InvalidRecords {
        /// The column at fault, when one is.
        column: Option<String>,
        /// The row at fault (0-based), when one is.
        row: Option<usize>,
        /// A sentence for the user.
        message: String,
    },
    /// A column asked for does not exist in the table.
    #[error("unknown column(s) {unknown:?}; the table has {available:?}")]
    UnknownColumns {
        /// The names that do not exist.
        unknown: Vec<String>,
        /// The table's columns, to help the caller.
        available: Vec<String>,
    },
    /// A filesystem operation failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A Parquet file could not be written, or is unreadable (corrupt, truncated).
    #[error("Parquet error on {path}: {source}")]
    Parquet {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// The table's file changed under an open snapshot: another tool is rewriting it in
    /// place. Retrying after the write completes succeeds.
    #[error("the file {path} is being rewritten by another tool; retry shortly")]
    FileChanged {
        /// The file.
        path: PathBuf,
    },
    /// The object store (the s3 kind) could not be reached, failed, or refused access: the
    /// call may succeed later. Nothing a reader trusts was half-written.
    #[error("the object store is unavailable: {reason}")]
    Unavailable {
        /// What went wrong, naming the key or setting, never a credential.
        reason: String,
    },
    /// Other replicas kept committing to this table while this write retried: it was not
    /// applied; sending it again is safe.
    #[error("table {name:?} is being written by other replicas; retry the write")]
    CommitContended {
        /// The table.
        name: String,
    },
    /// The version asked for was never written (or is the table's deletion, or the table
    /// did not exist at the instant asked for).
    #[error("table {name:?} has no {asked}; {available}")]
    VersionNotFound {
        /// The table.
        name: String,
        /// What was asked for ("version 7", "the version current at ...").
        asked: String,
        /// Which versions exist, for the caller.
        available: String,
    },
    /// The version asked for existed but is no longer retained (`[storage.history]`).
    #[error("{asked} of table {name:?} is no longer retained; {available}")]
    VersionExpired {
        /// The table.
        name: String,
        /// What was asked for.
        asked: String,
        /// Which versions are retained, for the caller.
        available: String,
    },
    /// An Arrow computation (cast, filter, concat) failed.
    #[error("Arrow error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// The metadata stored beside or inside a table could not be encoded or decoded.
    #[error("table metadata error on {path}: {source}")]
    Metadata {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
}

impl StorageError {
    /// Wraps an I/O error with the path it happened on.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// Wraps a Parquet error with the file it happened on.
    pub(crate) fn parquet(path: impl Into<PathBuf>, source: parquet::errors::ParquetError) -> Self {
        Self::Parquet {
            path: path.into(),
            source,
        }
    }

    /// A records error about one column (and optionally one row).
    pub(crate) fn invalid(column: &str, row: Option<usize>, message: String) -> Self {
        Self::InvalidRecords {
            column: Some(column.to_owned()),
            row,
            message,
        }
    }
}

/// Shorthand for results of this layer.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
