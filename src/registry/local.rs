//! The local kind's side of a registry write and read: the document under the lock, and the
//! version that records it (see [`super::history`] for the order and what a crash leaves).

use std::path::Path;
use std::sync::Arc;

use super::history::{self, LocalHistory, Writer};
use super::{Backend, Committed, Registry, RegistryError, Stamp, file, object, version_tag};
use crate::model::{RegistryDocument, RegistryOperation};

/// The local kind's reads and writes.
impl Registry {
    /// The local kind's document, its stamp and its version number. When no version records
    /// the document (a crash between the two writes, an edit by hand, a data root from before
    /// history), it is recorded now under the lock. A registry that cannot be locked (a
    /// read-only data root) is served with the latest number recorded, and a warning.
    pub(super) fn read_local(
        &self,
    ) -> Result<(RegistryDocument, Option<file::Stamp>, u64), RegistryError> {
        let Backend::File { dir, path, history } = &self.backend else {
            return Ok((RegistryDocument::default(), None, 0));
        };
        let (doc, stamp) = file::read(path)?;
        let latest = history.latest()?;
        match &latest {
            Some(latest) if latest.document == doc => {
                return Ok((doc, stamp, latest.record.version));
            }
            None if doc == RegistryDocument::default() => return Ok((doc, stamp, 0)),
            _ => {}
        }
        let recorded = file::lock(dir).and_then(|lock| {
            let (doc, stamp) = file::read(path)?;
            let version = self.reconcile(&lock, history, &doc)?;
            Ok((doc, stamp, version))
        });
        recorded.or_else(|e| {
            tracing::warn!(error = %e, "cannot record the registry's current definitions as a version");
            Ok((doc, stamp, latest.map_or(0, |l| l.record.version)))
        })
    }

    /// Under the lock: the version number of `doc`, the document on disk. A version an
    /// interrupted write prepared is committed when `doc` is its document and discarded
    /// otherwise; a `doc` no version holds is recorded as an `unrecorded` version.
    fn reconcile(
        &self,
        lock: &file::WriteLock,
        history: &LocalHistory,
        doc: &RegistryDocument,
    ) -> Result<u64, RegistryError> {
        let latest = history.latest()?;
        let number = latest.as_ref().map_or(0, |l| l.record.version);
        let pending = history.pending();
        let recorded = match &latest {
            Some(latest) => latest.document == *doc,
            None => *doc == RegistryDocument::default(),
        };
        if recorded {
            if pending.is_some() {
                history.discard_pending(lock);
            }
            return Ok(number);
        }
        if let Some(pending) = pending {
            if pending.document == *doc && pending.record.version == number + 1 {
                history.commit(lock, pending.record.version)?;
                tracing::info!(
                    version = pending.record.version,
                    "committed the registry version a write prepared before it was interrupted"
                );
                return Ok(pending.record.version);
            }
            history.discard_pending(lock);
        }
        let before = latest.map(|l| l.document).unwrap_or_default();
        let record = history::record(
            number + 1,
            (self.history.clock)(),
            RegistryOperation::Unrecorded,
            &Writer::default(),
            &before,
            doc,
        );
        history.write(lock, doc, &record)?;
        tracing::info!(
            version = record.version,
            "recorded registry definitions no version held (an interrupted write, an edit by hand, or a registry from before history)"
        );
        Ok(record.version)
    }

    /// The local kind's write: read the file under the lock, change it, replace it, then
    /// record the version (see [`history`] for why in that order).
    pub(super) fn update_file<R>(
        &self,
        dir: &Path,
        path: &Path,
        history: &LocalHistory,
        recording: &object::Recording<'_>,
        change: impl FnOnce(&RegistryDocument) -> Result<(Option<RegistryDocument>, R), RegistryError>,
    ) -> Result<(R, Committed), RegistryError> {
        let lock = file::lock(dir)?;
        let (current, stamp) = file::read(path)?;
        let base = self.reconcile(&lock, history, &current)?;
        let outcome = change(&current);
        let (next, answer) = match outcome {
            Ok(done) => done,
            Err(e) => {
                self.install(Arc::new(current), Stamp::File(stamp), base);
                return Err(e);
            }
        };
        let committed = match next {
            Some(next) if next != current => {
                let now = (self.history.clock)();
                let record = history::record(
                    base + 1,
                    now,
                    recording.operation,
                    recording.writer,
                    &current,
                    &next,
                );
                history.prepare(&lock, &next, &record)?;
                if let Err(e) = crate::storage::write_json_atomic(path, &next) {
                    history.discard_pending(&lock);
                    return Err(file::file_error(path, e.to_string()));
                }
                let stamp = file::stamp(path)?;
                let tag = version_tag(&next);
                if let Err(e) = history.commit(&lock, record.version) {
                    // The document is written but its version only prepared: serve it under a
                    // stamp that makes the next reload commit that version.
                    self.install(Arc::new(next), Stamp::File(None), base);
                    return Err(e);
                }
                history.sweep(&lock, record.version, self.history.retention, now);
                self.install(Arc::new(next), Stamp::File(stamp), record.version);
                Committed {
                    tag,
                    version: record.version,
                }
            }
            _ => {
                let tag = version_tag(&current);
                self.install(Arc::new(current), Stamp::File(stamp), base);
                Committed { tag, version: base }
            }
        };
        Ok((answer, committed))
    }
}
