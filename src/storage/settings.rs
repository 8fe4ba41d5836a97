//! `[storage]` settings: how tables are narrowed, laid out in row groups and pages, and folded.

use serde::Deserialize;
use std::path::PathBuf;

use super::downcast::{DowncastPolicy, FloatDowncast, IntegerDowncast};
use super::object::S3Config;
use super::writer::WriteSettings;

/// `[storage]` configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// The data root (holds `features/`, `metadata/`, `registry/`, `cache/`; with the s3
    /// kind only this replica's caches).
    pub data_dir: PathBuf,
    /// Where the tables live.
    pub backend: StorageBackend,
    /// With the s3 kind: how often other writers' commits are looked for, in milliseconds.
    pub poll_interval_ms: u64,
    /// `[storage.s3]`, used by the s3 kind.
    #[serde(default)]
    pub s3: S3Config,
    /// `lossless`, `always` or `never`.
    pub float_downcast: FloatDowncast,
    /// `signed`, `unsigned` or `never`.
    pub integer_downcast: IntegerDowncast,
    /// Strings are stored as dictionaries when distinct / total is below this.
    pub dictionary_ratio: f64,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
    /// Rows per Parquet data page.
    pub page_rows: usize,
    /// Pushed parts a table may gather under steady pushes before they are folded into its
    /// file without waiting for a quiet moment.
    pub compact_after_parts: usize,
    /// Quiet time after a table's last push before its parts are folded into its file.
    pub fold_delay_ms: u64,
    /// Most of the time background folds of one table may take, as a share of wall time:
    /// after a fold that took `d`, the table's next one waits at least `d × (1 / share − 1)`.
    pub fold_max_share: f64,
    /// `[storage.history]`: how long versions stay readable.
    #[serde(default)]
    pub history: super::history::HistoryConfig,
    /// `[stats]` (a section of its own in the file; the configuration copies it here, since
    /// statistics are computed by the writes).
    #[serde(skip)]
    pub stats: super::StatsConfig,
}

/// Where the tables live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageBackend {
    /// Files under the data root.
    Local,
    /// Objects in the S3 bucket of `[storage.s3]`.
    S3,
}

impl StorageConfig {
    /// Checks ranges once at start-up; the message names the key.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.backend == StorageBackend::S3 {
            self.s3.validate().map_err(|e| e.to_string())?;
        }
        if !(10..=60_000).contains(&self.poll_interval_ms) {
            return Err("storage.poll_interval_ms must be between 10 and 60000".into());
        }
        if !(self.dictionary_ratio >= 0.0 && self.dictionary_ratio <= 1.0) {
            return Err("storage.dictionary_ratio must be between 0 and 1".into());
        }
        if self.row_group_rows == 0 {
            return Err("storage.row_group_rows must be at least 1".into());
        }
        if self.page_rows == 0 {
            return Err("storage.page_rows must be at least 1".into());
        }
        if self.compact_after_parts == 0 {
            return Err("storage.compact_after_parts must be at least 1".into());
        }
        if self.fold_delay_ms > 60_000 {
            return Err("storage.fold_delay_ms must be at most 60000 (one minute)".into());
        }
        if !(self.fold_max_share > 0.0 && self.fold_max_share <= 1.0) {
            return Err("storage.fold_max_share must be above 0 and at most 1".into());
        }
        self.history.validate()
    }

    pub(super) fn policy(&self) -> DowncastPolicy {
        DowncastPolicy {
            float: self.float_downcast,
            integer: self.integer_downcast,
            dictionary_ratio: self.dictionary_ratio,
        }
    }

    pub(super) fn write_settings(&self) -> WriteSettings {
        WriteSettings {
            row_group_rows: self.row_group_rows,
            page_rows: self.page_rows,
        }
    }
}
