//! A commit entry: the write-once JSON object that publishes one state of a table.
//!
//! The entries are also the table's history (see `storage::history`): each one says what a
//! version's record needs (when it became current, its rows, what the write stored, who wrote
//! it), so listing the versions reads entries and nothing else. Those fields came after the
//! protocol: they default when absent, so entries written before them still read.

use serde::{Deserialize, Serialize};

use super::super::history::VersionOp;
use super::super::meta::ColumnMeta;

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
    /// The table was deleted; the deletion is a version of its own (the last one plus one),
    /// so a re-creation continues after it.
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// Its place in the table's log; entry `seq` can only be created once.
    pub seq: u64,
    /// What it did.
    pub op: Op,
    /// The table's version after it (a compaction keeps it; a delete takes the next one,
    /// except in entries written before history, which kept the last one).
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
    /// What the write was, as the table's history names it (`op` is the protocol's view:
    /// a create, a restore and a widening push are all `Replace` there). `None` in entries
    /// written before history, and in compactions, which make no version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_op: Option<VersionOp>,
    /// When it was committed (the version became current), milliseconds since the epoch by
    /// the writer's history clock; 0 in entries written before history.
    #[serde(default)]
    pub committed_ms: i64,
    /// Rows of the table in this state; 0 when unknown (entries written before history:
    /// the reader counts them from the footers).
    #[serde(default)]
    pub rows: u64,
    /// Rows the write added.
    #[serde(default)]
    pub rows_written: u64,
    /// Bytes of the data object the write stored.
    #[serde(default)]
    pub bytes_written: u64,
    /// The logical columns in this state.
    #[serde(default)]
    pub columns: Vec<ColumnMeta>,
    /// The token that wrote it, when auth is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_by: Option<String>,
    /// The version a restore copied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_from: Option<u64>,
    /// A compaction's folded base (its data key): said here, not derived from the entry
    /// before, because that entry may have been swept when the history is replayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_base: Option<String>,
    /// How many of the folded base's parts the compaction folded with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts_folded: Option<usize>,
}

impl Entry {
    /// Whether the table exists in this state.
    pub(crate) fn is_live(&self) -> bool {
        self.op != Op::Delete && self.base.is_some()
    }

    /// A draft of the entry for a commit: `seq` and `writer` are set by `Remote::commit`,
    /// the history fields by the caller.
    pub(crate) fn draft(op: Op, version: u64, group: String) -> Self {
        Self {
            seq: 0,
            op,
            version,
            group,
            base: None,
            parts: Vec::new(),
            entity_key: Vec::new(),
            timestamp_field: None,
            writer: String::new(),
            version_op: None,
            committed_ms: 0,
            rows: 0,
            rows_written: 0,
            bytes_written: 0,
            columns: Vec::new(),
            written_by: None,
            restored_from: None,
            from_base: None,
            parts_folded: None,
        }
    }

    /// Whether it was written before entries carried history (no instant).
    pub(crate) fn is_legacy(&self) -> bool {
        self.committed_ms == 0
    }
}
