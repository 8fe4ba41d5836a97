//! The only code that knows where things live under the data root.
//!
//! ```text
//! <root>/features/<group>/<name>.parquet   one table (its base file)
//! <root>/features/<group>/_appends/<name>/<base>/part-<n>.parquet
//!                                          rows pushed to it since the base was written
//! <root>/features/<group>/_history/<name>/<base>.parquet
//!                                          a second name of every base file written, so a
//!                                          replaced one stays readable for its versions
//! <root>/metadata/<group>/<name>.history.jsonl
//!                                          the table's versions (see `history`)
//! <root>/metadata/<group>/<name>.stats/<version>.json
//!                                          the statistics of each version (see `stats_store`)
//! <root>/metadata/<group>/<name>.json      its sidecar (a readable copy of the footer metadata,
//!                                          and the version counter that survives a delete)
//! <root>/cache/                            the disk cache
//! <root>/online/                           the durable online store (sled)
//! <root>/registry/                         registry definitions
//! ```
//! Temporary files are written beside their target as `.<file>.tmp-<pid>-<n>`: a leading dot
//! and a `.tmp-` infix, so listings skip them and start-up can sweep leftovers of a crash.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::model::{GroupName, TableName};

/// The groups created on a fresh tree.
pub const DEFAULT_GROUPS: [&str; 4] = ["content", "user", "interaction", "misc"];

const TABLE_EXT: &str = "parquet";
const TEMP_MARKER: &str = ".tmp-";
/// Folder, inside a group folder, of the parts appended to its tables.
pub const APPENDS_DIR: &str = "_appends";

/// Folder, inside a group folder, of the base files kept for the tables' history.
pub const HISTORY_DIR: &str = "_history";

/// Paths of the data root.
#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// A layout rooted at `root` (nothing is created).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The data root itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/features`.
    pub fn features_dir(&self) -> PathBuf {
        self.root.join("features")
    }

    /// `<root>/features/<group>`.
    pub fn group_dir(&self, group: &GroupName) -> PathBuf {
        self.features_dir().join(group.as_str())
    }

    /// `<root>/features/<group>/<name>.parquet`.
    pub fn table_path(&self, group: &GroupName, name: &TableName) -> PathBuf {
        self.group_dir(group).join(format!("{name}.{TABLE_EXT}"))
    }

    /// `<root>/features/<group>/_appends/<name>`: every appended part of a table. The leading
    /// underscore makes Spark, pyarrow and DuckDB dataset readers skip it when they read a
    /// whole group folder, and it can never be a table file name.
    pub fn appends_dir(&self, group: &GroupName, name: &TableName) -> PathBuf {
        self.group_dir(group).join(APPENDS_DIR).join(name.as_str())
    }

    /// The folder of the parts appended to the base file identified by `base_id`.
    pub fn parts_dir(&self, group: &GroupName, name: &TableName, base_id: &str) -> PathBuf {
        self.appends_dir(group, name).join(base_id)
    }

    /// Part number `seq` of the base file `base_id`; zero-padded so names sort in append order.
    pub fn part_path(
        &self,
        group: &GroupName,
        name: &TableName,
        base_id: &str,
        seq: usize,
    ) -> PathBuf {
        self.parts_dir(group, name, base_id)
            .join(format!("part-{seq:06}.{TABLE_EXT}"))
    }

    /// `<root>/features/<group>/_history/<name>`: the base files a table's versions read.
    pub fn history_dir(&self, group: &GroupName, name: &TableName) -> PathBuf {
        self.group_dir(group).join(HISTORY_DIR).join(name.as_str())
    }

    /// The history name of the base file `base_id`.
    pub fn history_base_path(&self, group: &GroupName, name: &TableName, base_id: &str) -> PathBuf {
        self.history_dir(group, name)
            .join(format!("{base_id}.{TABLE_EXT}"))
    }

    /// `<root>/metadata/<group>/<name>.history.jsonl`: the table's version log.
    pub fn history_log_path(&self, group: &GroupName, name: &TableName) -> PathBuf {
        self.root
            .join("metadata")
            .join(group.as_str())
            .join(format!("{name}.history.jsonl"))
    }

    /// `<root>/metadata/<group>/<name>.stats`: the statistics of the table's versions, one
    /// file per version, beside its other metadata.
    pub fn stats_dir(&self, group: &GroupName, name: &TableName) -> PathBuf {
        self.root
            .join("metadata")
            .join(group.as_str())
            .join(format!("{name}.stats"))
    }

    /// The statistics of version `version` of `group/name`.
    pub fn stats_path(&self, group: &GroupName, name: &TableName, version: u64) -> PathBuf {
        self.stats_dir(group, name).join(format!("{version}.json"))
    }

    /// The version a file of [`Layout::stats_dir`] holds the statistics of; `None` for
    /// anything else (temporary files included).
    pub fn stats_version(file_name: &str) -> Option<u64> {
        if Self::is_temp_file(file_name) {
            return None;
        }
        file_name.strip_suffix(".json")?.parse().ok()
    }

    /// Whether `file_name` is a part file (as opposed to a temporary file or anything else).
    pub fn is_part_file(file_name: &str) -> bool {
        !Self::is_temp_file(file_name)
            && file_name.starts_with("part-")
            && file_name.ends_with(TABLE_EXT)
    }

    /// The table path relative to the data root, as shown to API users.
    pub fn relative_table_path(&self, group: &GroupName, name: &TableName) -> String {
        format!("features/{group}/{name}.{TABLE_EXT}")
    }

    /// `<root>/registry`: the registry's folder.
    pub fn registry_dir(&self) -> PathBuf {
        self.root.join("registry")
    }

    /// `<root>/cache`: the disk cache tier's folder.
    pub fn cache_dir(&self) -> PathBuf {
        self.root.join("cache")
    }

    /// `<root>/online`: the durable online store (materialized and pushed rows).
    pub fn online_dir(&self) -> PathBuf {
        self.root.join("online")
    }

    /// `<root>/metadata/<group>/<name>.json`.
    pub fn sidecar_path(&self, group: &GroupName, name: &TableName) -> PathBuf {
        self.root
            .join("metadata")
            .join(group.as_str())
            .join(format!("{name}.json"))
    }

    /// The folders a fresh tree gets (features with its default groups, metadata, registry,
    /// cache).
    pub fn skeleton_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = DEFAULT_GROUPS
            .iter()
            .map(|g| self.features_dir().join(g))
            .collect();
        dirs.extend(
            ["metadata", "registry", "cache"]
                .iter()
                .map(|d| self.root.join(d)),
        );
        dirs
    }

    /// A fresh temporary path beside `target`, unique within this process.
    pub fn temp_path_for(target: &Path) -> PathBuf {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let file = target
            .file_name()
            .and_then(OsStr::to_str)
            .unwrap_or("table");
        target.with_file_name(format!(".{file}{TEMP_MARKER}{}-{n}", std::process::id()))
    }

    /// Whether a file name is one of our temporary files.
    pub fn is_temp_file(file_name: &str) -> bool {
        file_name.starts_with('.') && file_name.contains(TEMP_MARKER)
    }

    /// Parses `<group>/<name>.parquet` parts back into validated names; `None` for anything
    /// that is not a table file (temp files, other extensions, invalid names).
    pub fn table_from_parts(group: &OsStr, file: &OsStr) -> Option<(GroupName, TableName)> {
        let file = file.to_str()?;
        if Self::is_temp_file(file) {
            return None;
        }
        let stem = file.strip_suffix(TABLE_EXT)?.strip_suffix('.')?;
        let group = group.to_str()?.parse().ok()?;
        let name = stem.parse().ok()?;
        Some((group, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_files_are_recognised_and_never_parsed_as_tables() {
        let target = Path::new("/x/features/user/user_profile.parquet");
        let temp = Layout::temp_path_for(target);
        let file = temp.file_name().and_then(OsStr::to_str).unwrap_or_default();
        assert!(Layout::is_temp_file(file));
        assert_eq!(temp.parent(), target.parent());
        assert!(Layout::table_from_parts(OsStr::new("user"), OsStr::new(file)).is_none());
        assert!(Layout::table_from_parts(OsStr::new("user"), OsStr::new("a.csv")).is_none());
        assert!(Layout::table_from_parts(OsStr::new("user"), OsStr::new("a.parquet")).is_some());
    }
}
