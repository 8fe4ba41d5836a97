//! Keeping the catalog in line with the tree when other processes or tools change it, and
//! sweeping what interrupted writes left behind.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use super::layout::Layout;
use super::{Storage, guard, read_lock, write_lock};
use crate::model::{GroupName, TableName};

impl Storage {
    /// Brings the catalog in line with the tree: loads new or changed files, drops removed
    /// ones. Files that fail to open (half-copied, corrupt) are skipped with a log line, and
    /// the previous snapshot, if any, keeps serving.
    ///
    /// A name found in several groups (another tool wrote a second file) keeps being served
    /// from the group the catalog already had; a name new to the catalog is served from the
    /// group a lookup would try first (its inferred group, then by name). The duplicate is
    /// logged once, when it appears or changes, and reported by [`Storage::duplicates`].
    pub fn rescan(&self) -> Vec<String> {
        if let Some(remote) = &self.remote {
            return self.follow_all(remote);
        }
        let mut changed = Vec::new();
        let mut found: HashMap<TableName, Vec<GroupName>> = HashMap::new();
        for group in self.group_dirs() {
            let entries = fs::read_dir(self.layout.group_dir(&group))
                .into_iter()
                .flatten()
                .flatten();
            for entry in entries {
                if let Some((g, name)) =
                    Layout::table_from_parts(group.as_str().as_ref(), &entry.file_name())
                {
                    found.entry(name).or_default().push(g);
                }
            }
        }
        let mut duplicates = HashMap::new();
        for (name, mut groups) in found.iter().map(|(n, g)| (n, g.clone())) {
            let Some(served) = self.served_group(name, &groups) else {
                continue;
            };
            groups.retain(|g| g != &served);
            if !groups.is_empty() {
                duplicates.insert(name.clone(), (served.clone(), groups));
            }
            if self.refresh_table(&served, name) {
                changed.push(name.to_string());
            }
        }
        self.record_duplicates(duplicates);
        write_lock(&self.tables).retain(|name, _| {
            let keep = found.contains_key(name);
            if !keep {
                changed.push(name.to_string());
            }
            keep
        });
        guard(&self.unreadable).retain(|name, _| found.contains_key(name));
        changed
    }

    /// Brings the catalog in line with the tree for `name` alone (another replica said it
    /// changed): on the s3 kind, its newest commit entry; the local kind has no per-table
    /// check cheaper than its rescan (a stat per table), so it rescans. Returns the names
    /// that changed; a store that cannot be reached changes nothing (the poll retries).
    pub fn rescan_one(&self, name: &TableName) -> Vec<String> {
        let Some(remote) = &self.remote else {
            return self.rescan();
        };
        match self.follow(remote, name) {
            Ok(true) => vec![name.to_string()],
            Ok(false) => Vec::new(),
            Err(e) => {
                tracing::debug!(table = %name, error = %e, "cannot follow the table another replica changed; the next poll will");
                Vec::new()
            }
        }
    }

    /// Reloads one table if its file changed on disk since it was opened; true if it did.
    pub(super) fn refresh_table(&self, group: &GroupName, name: &TableName) -> bool {
        let path = self.layout.table_path(group, name);
        // Checked without the write lock first, so an unchanged tree costs no lock; then again
        // under it, since a write (a save, a fold) may have installed this very file in
        // between, and loading it over that write's handle would put back a stale version.
        if self
            .catalog_matches_file(group, name, &path)
            .unwrap_or(true)
        {
            return false;
        }
        let lock = self.write_lock(name);
        let _guard = lock.lock().unwrap_or_else(|p| p.into_inner());
        if self
            .catalog_matches_file(group, name, &path)
            .unwrap_or(true)
        {
            return false;
        }
        let current = read_lock(&self.tables).get(name).cloned();
        match self.load(group, name, &path, current.map(|h| h.version)) {
            Ok(handle) => {
                write_lock(&self.tables).insert(name.clone(), Arc::new(handle));
                self.mark_readable(name);
                true
            }
            Err(e) => {
                // Log once per damage, not on every rescan that finds it again.
                if !guard(&self.unreadable).contains_key(name) {
                    tracing::warn!(path = %path.display(), error = %e, "skipping unreadable table file");
                }
                self.mark_unreadable(group, name, &e);
                false
            }
        }
    }

    /// Whether the catalog's handle of `name` is the file at `path` as it is now (same group,
    /// length and modification time); `None` when the file is gone.
    pub(super) fn catalog_matches_file(
        &self,
        group: &GroupName,
        name: &TableName,
        path: &Path,
    ) -> Option<bool> {
        let stat = fs::metadata(path).ok()?;
        let current = read_lock(&self.tables).get(name).cloned();
        Some(current.is_some_and(|h| {
            h.group == *group
                && h.file.fingerprint().len == stat.len()
                && stat.modified().ok().map(|m| {
                    m.duration_since(SystemTime::UNIX_EPOCH)
                        .map_or(0, |d| d.as_nanos())
                }) == Some(h.file.fingerprint().modified_nanos)
        }))
    }

    pub(super) fn sweep_temp_files(&self) {
        // Not the registry's folder: another process may be writing the registry right now,
        // so the registry sweeps its own temporary files, under its cross-process lock.
        let mut dirs = vec![self.layout.root().to_path_buf()];
        for top in ["features", "metadata"] {
            let top = self.layout.root().join(top);
            dirs.extend(
                fs::read_dir(&top)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_dir()),
            );
        }
        for dir in dirs {
            for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
                let file_name = entry.file_name();
                if file_name.to_str().is_some_and(Layout::is_temp_file) {
                    match fs::remove_file(entry.path()) {
                        Ok(()) => {
                            tracing::info!(path = %entry.path().display(), "removed a temporary file left by an interrupted write")
                        }
                        Err(e) => {
                            tracing::warn!(path = %entry.path().display(), error = %e, "could not remove a temporary file")
                        }
                    }
                }
            }
        }
    }
}
