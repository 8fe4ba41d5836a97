//! History of the s3 kind: the commit entries are the versions (see `storage::history`).
//!
//! Each entry that made a version (a replace, an append, a restore, a delete, an adopted
//! file) becomes one [`Step::Version`] whose content is its base object and its parts; a
//! compaction becomes a [`Step::Compaction`], so the versions it folded read the same rows
//! from the new base. Nothing is copied to keep a version: objects are never rewritten, and
//! the sweep (`sweep`) removes them only when no retained version names them.

use super::super::Storage;
use super::super::error::{Result, StorageError};
use super::super::history::{
    Compaction, Content, Replayed, Step, VersionOp, VersionRecord, replay,
};
use super::super::table::TableFile;
use super::{Entry, Op, Remote, store_error};
use crate::model::TableName;

impl Storage {
    /// The versions of `name` from its commit entries.
    pub(in crate::storage) fn remote_replayed(
        &self,
        remote: &Remote,
        name: &TableName,
    ) -> Result<Replayed> {
        Ok(replay(
            steps(&remote.log_entries(name)?)
                .into_iter()
                .map(|(_, s)| s),
        ))
    }

    /// Opens a retained content of the s3 kind: its base object (the whole of it, or a
    /// prefix) and its first parts. An object the sweep removed is reported as a missing
    /// file, which the caller turns into "version expired".
    pub(in crate::storage) fn open_remote_content(
        &self,
        remote: &Remote,
        name: &TableName,
        content: &Content,
    ) -> Result<TableFile> {
        let gone = || StorageError::Io {
            path: content.base.clone().into(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the version's data objects were swept",
            ),
        };
        let Some((base, parts)) = remote.base_and_parts(name, &content.base) else {
            return Err(gone());
        };
        // A missing object reads as an expired version; the caller lists the retained ones.
        let open = |data: &super::DataRef| {
            remote.open_data(data, None).map_err(|e| match e {
                StorageError::VersionExpired { .. } => gone(),
                other => other,
            })
        };
        let base = open(&base)?;
        if let Some(rows) = content.prefix_rows {
            return Ok(TableFile::prefix(base, rows));
        }
        if parts.len() < content.parts {
            return Err(gone());
        }
        let parts = parts[..content.parts]
            .iter()
            .map(open)
            .collect::<Result<Vec<_>>>()?;
        Ok(TableFile::from_segments(base, parts))
    }

    /// Bytes kept for `name`'s versions other than the current one: its data objects the
    /// newest entry does not name. Counted with one LIST when the head moved since the
    /// last count.
    pub(in crate::storage) fn remote_history_bytes(
        &self,
        remote: &Remote,
        name: &TableName,
    ) -> u64 {
        let Some(head) = remote.known_head(name) else {
            return 0;
        };
        if let Some((seq, bytes)) = remote.cached_history_bytes(name)
            && seq == head.seq
        {
            return bytes;
        }
        let named: Vec<&str> = head
            .base
            .iter()
            .chain(&head.parts)
            .map(|d| d.key.as_str())
            .collect();
        match remote.tree().list(&Remote::data_prefix(name)) {
            Ok(objects) => {
                let bytes = objects
                    .iter()
                    .filter(|o| !named.contains(&o.location.as_ref()))
                    .map(|o| o.size)
                    .sum();
                remote.remember_history_bytes(name, head.seq, bytes);
                bytes
            }
            Err(e) => {
                tracing::debug!(table = %name, error = %store_error(e), "cannot count the table's history bytes");
                remote.cached_history_bytes(name).map_or(0, |(_, b)| b)
            }
        }
    }
}

impl Remote {
    /// The last count of `name`'s history bytes and the head seq it was made at.
    pub(super) fn cached_history_bytes(&self, name: &TableName) -> Option<(u64, u64)> {
        self.history_bytes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .copied()
    }

    /// Records a count of `name`'s history bytes made at head `seq`.
    pub(super) fn remember_history_bytes(&self, name: &TableName, seq: u64, bytes: u64) {
        self.history_bytes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.clone(), (seq, bytes));
    }
}

/// The replay steps of a log, each with the seq of the entry it came from.
pub(super) fn steps(entries: &[Entry]) -> Vec<(u64, Step)> {
    let mut steps = Vec::with_capacity(entries.len());
    let mut last: Option<VersionRecord> = None;
    let mut live = false;
    for (i, entry) in entries.iter().enumerate() {
        let previous_version = last.as_ref().map_or(0, |r| r.version);
        match (entry.op, &entry.base) {
            (Op::Compact, Some(base)) => {
                let fold = match (&entry.from_base, entry.parts_folded) {
                    (Some(from), Some(folded)) => Some((from.clone(), folded)),
                    // An entry from before history: the entry before it says what was folded.
                    _ => i
                        .checked_sub(1)
                        .and_then(|j| entries.get(j))
                        .filter(|before| before.seq + 1 == entry.seq)
                        .and_then(|before| {
                            let from = before.base.as_ref()?.key.clone();
                            Some((from, before.parts.len().checked_sub(entry.parts.len())?))
                        }),
                };
                if let Some((from_base, parts_folded)) = fold {
                    steps.push((
                        entry.seq,
                        Step::Compaction(Compaction {
                            from_base,
                            parts_folded,
                            to_base: base.key.clone(),
                        }),
                    ));
                }
                if entry.version <= previous_version {
                    continue;
                }
                // A fold that had to take a new number (another writer's version was higher)
                // still names a content: it is listed like a write.
            }
            (Op::Delete, _) if entry.version <= previous_version => {
                // Deletes written before history kept the last version's number: the version
                // is the table's last content, not the deletion (the next write creates).
                live = false;
                continue;
            }
            (_, None) if entry.op != Op::Delete => continue,
            _ => {}
        }
        let op = entry.version_op.unwrap_or(match entry.op {
            Op::Replace if live => VersionOp::Replace,
            Op::Replace => VersionOp::Create,
            Op::Append => VersionOp::Append,
            Op::Delete => VersionOp::Delete,
            Op::Compact => VersionOp::External,
        });
        let record = VersionRecord {
            version: entry.version,
            op,
            became_current_ms: entry.committed_ms,
            rows: entry.rows,
            rows_written: entry.rows_written,
            bytes_written: entry.bytes_written,
            columns: entry.columns.clone(),
            columns_added: Vec::new(),
            columns_removed: Vec::new(),
            columns_retyped: Vec::new(),
            written_by: entry.written_by.clone(),
            restored_from: entry.restored_from,
            entity_key: entry.entity_key.clone(),
            timestamp_field: entry.timestamp_field.clone(),
        }
        .with_changes_from(last.as_ref().map_or(&[][..], |r| &r.columns[..]));
        let content = entry
            .base
            .as_ref()
            .filter(|_| entry.is_live())
            .map(|base| Content {
                base: base.key.clone(),
                parts: entry.parts.len(),
                prefix_rows: None,
            });
        live = content.is_some();
        last = Some(record.clone());
        steps.push((entry.seq, Step::Version(record, content)));
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::super::DataRef;
    use super::*;

    fn data(key: &str) -> DataRef {
        DataRef {
            key: key.into(),
            size: 1,
            written_ms: 1,
        }
    }

    /// An entry as a release before history wrote it: no record fields (the reader fills
    /// rows and the instant from the footers).
    fn legacy(seq: u64, op: Op, version: u64, base: Option<&str>, parts: &[&str]) -> Entry {
        Entry {
            seq,
            base: base.map(data),
            parts: parts.iter().map(|p| data(p)).collect(),
            committed_ms: seq as i64,
            rows: 10 + parts.len() as u64,
            ..Entry::draft(op, version, "user".into())
        }
    }

    fn replayed(entries: &[Entry]) -> Replayed {
        replay(steps(entries).into_iter().map(|(_, s)| s))
    }

    #[test]
    fn a_delete_written_before_history_is_not_taken_for_the_last_version() {
        let entries = [
            legacy(1, Op::Replace, 1, Some("a"), &[]),
            legacy(2, Op::Append, 2, Some("a"), &["p1"]),
            legacy(3, Op::Delete, 2, None, &[]),
            legacy(4, Op::Replace, 3, Some("b"), &[]),
        ];
        let versions: Vec<(u64, VersionOp)> = replayed(&entries)
            .versions
            .iter()
            .map(|(r, _)| (r.version, r.op))
            .collect();
        assert_eq!(
            versions,
            vec![
                (1, VersionOp::Create),
                (2, VersionOp::Append),
                (3, VersionOp::Create)
            ]
        );
    }

    #[test]
    fn a_compaction_written_before_history_is_read_from_the_entry_before_it() {
        let entries = [
            legacy(1, Op::Replace, 1, Some("a"), &[]),
            legacy(2, Op::Append, 2, Some("a"), &["p1"]),
            legacy(3, Op::Append, 3, Some("a"), &["p1", "p2"]),
            legacy(4, Op::Compact, 3, Some("c"), &["p2"]),
        ];
        let contents: Vec<Content> = replayed(&entries)
            .versions
            .into_iter()
            .filter_map(|(_, c)| c)
            .collect();
        // One part folded, one carried: version 2 is a prefix of the new base, version 3 the
        // new base and the carried part; version 1, on a base not folded, stays where it was.
        assert_eq!(contents[0].base, "c");
        assert_eq!(contents[0].prefix_rows, Some(10));
        assert_eq!(
            (contents[1].base.as_str(), contents[1].prefix_rows),
            ("c", Some(11))
        );
        assert_eq!((contents[2].base.as_str(), contents[2].parts), ("c", 1));
    }

    #[test]
    fn a_compaction_that_names_what_it_folded_needs_no_entry_before_it() {
        let mut fold = legacy(9, Op::Compact, 3, Some("c"), &[]);
        fold.from_base = Some("a".into());
        fold.parts_folded = Some(2);
        // The entries before the fold's were swept but for version 3's own.
        let entries = [legacy(7, Op::Append, 3, Some("a"), &["p1", "p2"]), fold];
        let contents: Vec<Content> = replayed(&entries)
            .versions
            .into_iter()
            .filter_map(|(_, c)| c)
            .collect();
        assert_eq!(
            (contents[0].base.as_str(), contents[0].prefix_rows),
            ("c", Some(12))
        );
    }
}
