//! The history sweep of the local kind: drops the versions retention no longer keeps from
//! each table's log, then removes the base files and parts no kept version reads.
//!
//! Order makes a crash harmless: the log is rewritten (atomically) before any file goes, so
//! a listed version's files always exist; files left by a crash in between belong to no
//! version and go at the next sweep. A reader that already opened a version keeps reading it:
//! its descriptors hold the removed files' data until it finishes. A reader that had only
//! listed the version finds it gone and is told it expired (410).

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use super::error::Result;
use super::history::{HistorySweep, LocalLog, replay};
use super::layout::Layout;
use super::{Storage, guard};
use crate::model::{GroupName, TableName};

impl Storage {
    /// Sweeps the history of every table by the retention settings; the server runs it on an
    /// interval, and at start-up when alone on the tree. The s3 kind sweeps the bucket.
    pub fn sweep_history(&self) -> Result<HistorySweep> {
        if let Some(remote) = &self.remote {
            return self.sweep_remote_history(remote);
        }
        let mut total = HistorySweep::default();
        for (group, name) in self.logged_tables() {
            let lock = self.write_lock(&name);
            let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
            let _across = self.lock_across_processes(&name);
            total.absorb(&name, self.sweep_table_history(&group, &name));
        }
        total.log_round("the tree");
        Ok(total)
    }

    /// Every (group, table) with a history log, or with history files (a log lost with them).
    fn logged_tables(&self) -> Vec<(GroupName, TableName)> {
        let mut found = HashSet::new();
        for table in self.list() {
            found.insert((table.group.clone(), table.name.clone()));
        }
        for group in self.group_dirs() {
            let logs = self.layout.root().join("metadata").join(group.as_str());
            for entry in fs::read_dir(&logs).into_iter().flatten().flatten() {
                let file = entry.file_name();
                if let Some(name) = file
                    .to_str()
                    .and_then(|f| f.strip_suffix(".history.jsonl"))
                    .and_then(|n| n.parse::<TableName>().ok())
                {
                    found.insert((group.clone(), name));
                }
            }
        }
        let mut all: Vec<_> = found.into_iter().collect();
        all.sort();
        all
    }

    /// Sweeps one table; the caller holds its write lock.
    fn sweep_table_history(&self, group: &GroupName, name: &TableName) -> Result<HistorySweep> {
        let current = self.peek(name).filter(|h| &h.group == group);
        if let Some(current) = &current {
            self.reconcile_history(current);
        }
        let log = LocalLog::at(self.layout.history_log_path(group, name));
        let replayed = replay(log.read()?);
        let times: Vec<i64> = replayed
            .versions
            .iter()
            .map(|(r, _)| r.became_current_ms)
            .collect();
        let deleted = current.is_none();
        let keep = self.config.history.retained(&times, self.now_ms(), deleted);
        let mut swept = HistorySweep::default();
        let kept: Vec<_> = replayed
            .versions
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(v, _)| v.clone())
            .collect();
        swept.versions_expired = replayed.versions.len() - kept.len();
        if swept.versions_expired > 0 || log_needs_compacting(&replayed, &log) {
            log.rewrite(&kept)?;
        }
        let removed = self.remove_unread_content(group, name, &kept, current.as_deref());
        swept.files_deleted += removed.files_deleted;
        // A version's statistics go with it; the current version's always stay.
        let described: HashSet<u64> = kept
            .iter()
            .map(|(r, _)| r.version)
            .chain(current.as_ref().map(|c| c.version))
            .collect();
        swept.files_deleted +=
            self.sweep_local_stats(group, name, |version| described.contains(&version));
        swept.bytes_freed += removed.bytes_freed;
        // Versions dropped from the log may be held open; the cache lets them go.
        let expired: Vec<u64> = replayed
            .versions
            .iter()
            .zip(&keep)
            .filter(|(_, k)| !**k)
            .map(|((r, _), _)| r.version)
            .collect();
        let mut pinned = guard(&self.pinned);
        for version in expired {
            pinned.pop(&(name.clone(), version));
        }
        Ok(swept)
    }

    /// Right after a local fold of the base `folded` into `into`: the fold's compaction
    /// re-points every version that read `folded` (or its parts, carried ones included) to
    /// `into`, so no version reads them any more and they go now rather than at the next
    /// sweep, without reading the log; a table fed by pushes then never holds more than its
    /// current file. A reader that opened them keeps its descriptors; one that replayed the
    /// log just before the fold retries on the new layout (see `table_at`). The caller holds
    /// the write lock.
    pub(super) fn drop_folded_content(
        &self,
        group: &GroupName,
        name: &TableName,
        folded: &str,
        into: &str,
    ) {
        if folded == into {
            return;
        }
        let base = self.layout.history_base_path(group, name, folded);
        if let Err(e) = fs::remove_file(&base)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::debug!(path = %base.display(), error = %e, "cannot remove a folded base file; the sweep will");
        }
        let parts = self.layout.parts_dir(group, name, folded);
        if let Err(e) = fs::remove_dir_all(&parts)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::debug!(path = %parts.display(), error = %e, "cannot remove folded parts; the sweep will");
        }
    }

    /// Removes the history base files and part folders of `group/name` that neither
    /// `versions` nor `current` reads, and temporary files left by crashes.
    fn remove_unread_content(
        &self,
        group: &GroupName,
        name: &TableName,
        versions: &[(
            super::history::VersionRecord,
            Option<super::history::Content>,
        )],
        current: Option<&super::TableHandle>,
    ) -> HistorySweep {
        let mut swept = HistorySweep::default();
        let mut bases: HashSet<String> = versions
            .iter()
            .filter_map(|(_, c)| c.as_ref().map(|c| c.base.clone()))
            .collect();
        if let Some(current) = current {
            bases.insert(current.file.base().base_id());
        }
        let history_dir = self.layout.history_dir(group, name);
        for entry in fs::read_dir(&history_dir).into_iter().flatten().flatten() {
            let file = entry.file_name();
            let Some(file) = file.to_str() else { continue };
            let base = file.strip_suffix(".parquet").unwrap_or(file);
            if Layout::is_temp_file(file) || !bases.contains(base) {
                swept.bytes_freed += size(&entry.path());
                if fs::remove_file(entry.path()).is_ok() {
                    swept.files_deleted += 1;
                }
            }
        }
        let appends = self.layout.appends_dir(group, name);
        for entry in fs::read_dir(&appends).into_iter().flatten().flatten() {
            let dir = entry.file_name();
            let Some(base) = dir.to_str() else { continue };
            if bases.contains(base) {
                for part in fs::read_dir(entry.path()).into_iter().flatten().flatten() {
                    if part.file_name().to_str().is_some_and(Layout::is_temp_file) {
                        let _ = fs::remove_file(part.path());
                    }
                }
                continue;
            }
            let freed = dir_size(&entry.path());
            let files = fs::read_dir(entry.path()).into_iter().flatten().count();
            if fs::remove_dir_all(entry.path()).is_ok() {
                swept.bytes_freed += freed;
                swept.files_deleted += files;
            }
        }
        if bases.is_empty() {
            let _ = fs::remove_dir(&history_dir);
            let _ = fs::remove_dir(&appends);
        }
        swept
    }

    /// Bytes kept only for `name`'s versions other than the current one: its history base
    /// files and parts that the current snapshot does not read (the version log, a few
    /// hundred bytes per write, is metadata and not counted).
    pub fn table_history_bytes(&self, group: &GroupName, name: &TableName) -> u64 {
        if let Some(remote) = &self.remote {
            return self.remote_history_bytes(remote, name);
        }
        let current = self
            .peek(name)
            .filter(|h| &h.group == group)
            .map(|h| h.file.base().base_id());
        let mut bytes = 0;
        let history_dir = self.layout.history_dir(group, name);
        for entry in fs::read_dir(&history_dir).into_iter().flatten().flatten() {
            let file = entry.file_name();
            let base = file.to_str().and_then(|f| f.strip_suffix(".parquet"));
            if base.is_some() && base != current.as_deref() {
                bytes += size(&entry.path());
            }
        }
        let appends = self.layout.appends_dir(group, name);
        for entry in fs::read_dir(&appends).into_iter().flatten().flatten() {
            if entry.file_name().to_str() != current.as_deref() {
                bytes += dir_size(&entry.path());
            }
        }
        bytes
    }

    /// Bytes kept for history across every table (`/metrics`, `/storage/info`).
    pub fn history_bytes(&self) -> u64 {
        if self.remote.is_some() {
            return self
                .list()
                .iter()
                .map(|t| self.table_history_bytes(&t.group, &t.name))
                .sum();
        }
        self.logged_tables()
            .iter()
            .map(|(group, name)| self.table_history_bytes(group, name))
            .sum()
    }
}

/// Whether the log holds lines replay folds away (compactions, re-recorded versions): a sweep
/// rewrites it then, so a table pushed to all week does not keep a line per fold forever.
fn log_needs_compacting(replayed: &super::history::Replayed, log: &LocalLog) -> bool {
    let lines = fs::read(log.path())
        .map(|b| b.iter().filter(|c| **c == b'\n').count())
        .unwrap_or(0);
    lines > replayed.versions.len()
}

fn size(path: &Path) -> u64 {
    fs::metadata(path).map_or(0, |m| m.len())
}

fn dir_size(path: &Path) -> u64 {
    fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| size(&e.path()))
        .sum()
}
