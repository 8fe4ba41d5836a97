//! The s3 kind's history sweep: removes the log entries and data objects that no version
//! retention keeps still needs, and the garbage of writers that lost a race or crashed
//! before committing.
//!
//! Kept, for each table:
//! - every version `storage.history` retains now, or retained [`GRACE`] ago: a read on
//!   another replica that resolved a version just before it expired still finds its objects
//!   for an hour;
//! - every state that was the newest entry at some instant of the last [`GRACE`] (a reader
//!   may hold it open), the newest entry always;
//! - every data object younger than [`GRACE`]: a writer puts its object moments before its
//!   entry, so an object older than that which no entry names will never be named.
//!
//! Entries go before objects, so a crash in between leaves objects no entry names (swept the
//! next time), never a listed version whose objects are gone. Entries below the oldest one
//! kept go; the newest is never deleted, and a writer always lists the log before it
//! commits, so no writer can aim at a swept slot. Every replica sweeps every [`SWEEP_EVERY`];
//! two at once only repeat deletes. Times are by the history clock (tests move it), object
//! ages by the store's modification times.

use std::collections::HashSet;
use std::time::Duration;

use super::super::Storage;
use super::super::error::Result;
use super::super::guard;
use super::super::history::{HistorySweep, Step, replay};
use super::history::steps;
use super::{Entry, Remote, store_error};
use crate::model::TableName;
use crate::storage::object::ObjectError;

/// How long a state stays readable after it stopped being the newest (or retained), and how
/// old an object no entry names must be before it goes.
pub(super) const GRACE: Duration = Duration::from_secs(3600);
/// How often a process sweeps.
pub(super) const SWEEP_EVERY: Duration = Duration::from_secs(600);

impl Storage {
    /// Sweeps the history of every table in the bucket by retention.
    pub(in crate::storage) fn sweep_remote_history(&self, remote: &Remote) -> Result<HistorySweep> {
        let mut total = HistorySweep::default();
        for name in remote.table_names()? {
            total.absorb(&name, self.sweep_remote_table(remote, &name));
        }
        total.log_round("the bucket");
        Ok(total)
    }

    /// Sweeps one table (see the module doc).
    fn sweep_remote_table(&self, remote: &Remote, name: &TableName) -> Result<HistorySweep> {
        let tree = remote.tree();
        let now = self.now_ms();
        let grace = i64::try_from(GRACE.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now.saturating_sub(grace);
        let entries = remote.log_entries(name)?;
        let steps = steps(&entries);
        let version_seqs: Vec<u64> = steps
            .iter()
            .filter_map(|(seq, step)| matches!(step, Step::Version(..)).then_some(*seq))
            .collect();
        let replayed = replay(steps.into_iter().map(|(_, step)| step));
        let times: Vec<i64> = replayed
            .versions
            .iter()
            .map(|(r, _)| r.became_current_ms)
            .collect();
        let deleted = replayed.versions.last().is_some_and(|(_, c)| c.is_none());
        let retention = &self.config.history;
        let kept: Vec<bool> = retention
            .retained(&times, now, deleted)
            .into_iter()
            .zip(retention.retained(&times, cutoff, deleted))
            .map(|(now, then)| now || then)
            .collect();

        let mut named: HashSet<String> = HashSet::new();
        for ((_, content), _) in replayed.versions.iter().zip(&kept).filter(|(_, k)| **k) {
            let Some(content) = content else { continue };
            if let Some((base, parts)) = remote.base_and_parts(name, &content.base) {
                named.insert(base.key);
                if content.prefix_rows.is_none() {
                    named.extend(parts.into_iter().take(content.parts).map(|p| p.key));
                }
            }
        }
        // Every state that was the newest at some instant of the grace period.
        let mut floor = entries.last().map_or(0, |e| e.seq);
        for (i, entry) in entries.iter().enumerate() {
            let superseded = entries.get(i + 1).map(|next| next.committed_ms);
            if superseded.is_none_or(|at| at > cutoff) {
                named.extend(objects_of(entry));
                floor = floor.min(entry.seq);
            }
        }
        // Versions may have been swept from the history already (`version_seqs` is of the
        // versions replayed, in order): the oldest kept one bounds the log.
        if let Some(seq) = version_seqs
            .iter()
            .zip(&kept)
            .find_map(|(seq, k)| k.then_some(*seq))
        {
            floor = floor.min(seq);
        }

        let mut swept = HistorySweep {
            versions_expired: kept.iter().filter(|k| !**k).count(),
            ..HistorySweep::default()
        };
        for entry in entries.iter().filter(|e| e.seq < floor) {
            match tree.delete(&Remote::log_key(name, entry.seq)) {
                Ok(()) | Err(ObjectError::NotFound { .. }) => swept.files_deleted += 1,
                Err(e) => return Err(store_error(e)),
            }
        }
        let head: Vec<String> = entries.last().map(objects_of).unwrap_or_default();
        let mut history_bytes = 0;
        for object in tree.list(&Remote::data_prefix(name)).map_err(store_error)? {
            let key = object.location.as_ref();
            if named.contains(key) || object.last_modified.timestamp_millis() > cutoff {
                if !head.iter().any(|h| h == key) {
                    history_bytes += object.size;
                }
                continue;
            }
            match tree.delete(&object.location) {
                Ok(()) | Err(ObjectError::NotFound { .. }) => {
                    swept.files_deleted += 1;
                    swept.bytes_freed += object.size;
                }
                Err(e) => return Err(store_error(e)),
            }
        }
        if let Some(head) = entries.last() {
            remote.remember_history_bytes(name, head.seq, history_bytes);
        }
        // Statistics of the versions kept stay, and of any version newer than this replay
        // (another replica's write that landed meanwhile).
        let newest = replayed.versions.last().map_or(0, |(r, _)| r.version);
        let described: HashSet<u64> = replayed
            .versions
            .iter()
            .zip(&kept)
            .filter(|(_, k)| **k)
            .map(|((r, _), _)| r.version)
            .collect();
        swept.files_deleted += self.sweep_remote_stats(remote, name, |version| {
            version > newest || described.contains(&version)
        })?;
        // Versions dropped from the history may be held open; the cache lets them go.
        let mut pinned = guard(&self.pinned);
        for ((record, _), k) in replayed.versions.iter().zip(&kept) {
            if !k {
                pinned.pop(&(name.clone(), record.version));
            }
        }
        Ok(swept)
    }

    /// Sweeps every table when the last sweep of this process is [`SWEEP_EVERY`] old.
    pub(in crate::storage) fn sweep_if_due(&self, remote: &Remote, names: &[TableName]) {
        if !remote.sweep_due(SWEEP_EVERY) {
            return;
        }
        let mut total = HistorySweep::default();
        for name in names {
            total.absorb(name, self.sweep_remote_table(remote, name));
        }
        total.log_round("the bucket");
    }
}

/// The keys of the objects `entry` names.
fn objects_of(entry: &Entry) -> Vec<String> {
    entry
        .base
        .iter()
        .chain(&entry.parts)
        .map(|d| d.key.clone())
        .collect()
}
