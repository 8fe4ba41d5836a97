//! A commit entry: the write-once JSON object that publishes one state of a table.

use serde::{Deserialize, Serialize};

/// What a commit did to its table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Op {
    /// A new base object replaced the table (or created it).
    Replace,
    /// A part object was added after the previous parts.
    Append,
    /// The base and parts were folded into a new base object; same rows, same version.
    Compact,
    /// The table was deleted; the entry keeps its last version so a re-creation continues.
    Delete,
}

/// An immutable data object named by an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DataRef {
    /// Its key, relative to the store's prefix.
    pub key: String,
    /// Its size in bytes, so its footer is read with one ranged request.
    pub size: u64,
    /// When it was written, milliseconds since the epoch (served as the table's mtime).
    pub written_ms: i64,
}

/// One committed state of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// Its place in the table's log; entry `seq` can only be created once.
    pub seq: u64,
    /// What it did.
    pub op: Op,
    /// The table's version after it (a compaction keeps it; a delete records the last one).
    pub version: u64,
    /// The table's group.
    pub group: String,
    /// The base object; `None` after a delete.
    pub base: Option<DataRef>,
    /// The appended parts, in append order.
    #[serde(default)]
    pub parts: Vec<DataRef>,
    /// Entity key columns in effect.
    #[serde(default)]
    pub entity_key: Vec<String>,
    /// Timestamp field in effect.
    #[serde(default)]
    pub timestamp_field: Option<String>,
    /// The process that wrote it (random per process), for the logs.
    pub writer: String,
}

impl Entry {
    /// Whether the table exists in this state.
    pub(crate) fn is_live(&self) -> bool {
        self.op != Op::Delete && self.base.is_some()
    }
}
