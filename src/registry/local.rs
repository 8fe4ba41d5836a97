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

    /// Under the lock: the version number of `doc`, the document on disk, recording it as an
    /// `unrecorded` version first when the latest version does not hold it.
    fn reconcile(
        &self,
        lock: &file::WriteLock,
        history: &LocalHistory,
        doc: &RegistryDocument,
    ) -> Result<u64, RegistryError> {
        let latest = history.latest()?;
        let (before, number) = match latest {
            Some(latest) if latest.document == *doc => return Ok(latest.record.version),
            None if *doc == RegistryDocument::default() => return Ok(0),
            Some(latest) => (latest.document, latest.record.version),
            None => (RegistryDocument::default(), 0),
        };
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
                crate::storage::write_json_atomic(path, &next)
                    .map_err(|e| file::file_error(path, e.to_string()))?;
                let stamp = file::stamp(path)?;
                let now = (self.history.clock)();
                let record = history::record(
                    base + 1,
                    now,
                    recording.operation,
                    recording.writer,
                    &current,
                    &next,
                );
                let tag = version_tag(&next);
                if let Err(e) = history.write(&lock, &next, &record) {
                    // The document is written but no version records it: serve it under a
                    // stamp that makes the next reload record it (as `unrecorded`).
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
