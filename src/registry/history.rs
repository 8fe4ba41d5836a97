//! The registry's history: every write records a numbered version holding the whole document
//! and what the write was ([`RegistryVersion`]), so "which definitions did this model train
//! with" has an answer after later applies and deletes.
//!
//! Both kinds store a version the same way, as one immutable JSON object: the registry
//! document's three lists (so any tool reads it as a registry document) plus a `history`
//! member with the record. On the s3 kind these objects are the registry's log itself
//! (`registry/log/<version>.json`, see [`super::object`]); on the local kind they sit beside
//! `registry.json` in `registry/history/<version>.json`, written under the same lock.
//!
//! Why one file per version on the local kind, rather than an appended `history.jsonl`: the
//! same format and the same retention rule as the s3 log; a version is read without scanning
//! the others (a page of the listing reads only its own files); a version is never rewritten
//! (created by rename, so a crash leaves it whole or absent, with no torn line to skip); and
//! retention deletes files instead of rewriting a log.
//!
//! Order on the local kind, under the lock: the version is prepared (`history/pending.json`,
//! written atomically), then the document replaced, then the prepared version renamed to its
//! number. So a version is never named before the document has it. A crash before the
//! document was replaced leaves a prepared version whose document is not the registry's: it
//! is discarded. A crash after leaves one whose document is: it is committed as it was
//! prepared (operation, writer, changes). The next process to look (at open, on a reload
//! that sees the file changed, before each write) does either, under the lock. A document no
//! version or prepared version holds (an edit by hand, a data root from before history) is
//! recorded as an [`RegistryOperation::Unrecorded`] version. Numbers come from the highest
//! file, which retention never deletes, so a number is never reused.
//!
//! Retention ([`Retention`]) keeps every version that was current at some instant of the last
//! `keep` (a version stops being current when the next one is recorded) and always the latest
//! `keep_min`.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::file::{WriteLock, file_error};
use super::{Backend, Registry, RegistryError};
use crate::model::{
    Entity, FeatureService, FeatureView, RegistryDocument, RegistryOperation, RegistryVersion,
    registry_changes,
};

/// The local kind's folder of versions, inside the registry's folder.
pub const HISTORY_DIR: &str = "history";
/// The version a local write prepared before replacing the document, in [`HISTORY_DIR`].
pub const PENDING_FILE: &str = "pending.json";
/// Days every version stays readable after it stopped being current, by default (the table
/// history's `storage.history.keep_days` default).
pub const DEFAULT_KEEP_DAYS: u64 = 7;
/// Versions always kept, however old, by default (the table history's
/// `storage.history.keep_min` default).
pub const DEFAULT_KEEP_MIN: u64 = 10;

/// Wall-clock time in microseconds since the Unix epoch (UTC); injected so tests move time.
pub type WallClock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// How long versions are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Every version that was current at some instant of this window is kept.
    pub keep: Duration,
    /// The latest this many versions are always kept (at least 1: the current one).
    pub keep_min: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            keep: Duration::from_secs(DEFAULT_KEEP_DAYS * 24 * 3600),
            keep_min: DEFAULT_KEEP_MIN,
        }
    }
}

impl Retention {
    /// Whether a version that stopped being current at `superseded_micros` (when the next one
    /// was recorded) may go, `behind` versions below the latest, at `now_micros`.
    pub(super) fn expired(self, behind: u64, superseded_micros: i64, now_micros: i64) -> bool {
        let keep = i64::try_from(self.keep.as_micros()).unwrap_or(i64::MAX);
        behind >= self.keep_min.max(1) && superseded_micros < now_micros.saturating_sub(keep)
    }
}

/// What the registry's history is kept with: its clock and retention.
#[derive(Clone)]
pub struct HistoryOptions {
    /// Stamps each version's `at` and decides retention.
    pub clock: WallClock,
    /// How long versions are kept.
    pub retention: Retention,
}

impl std::fmt::Debug for HistoryOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistoryOptions")
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

impl Default for HistoryOptions {
    fn default() -> Self {
        Self {
            clock: Arc::new(|| chrono::Utc::now().timestamp_micros()),
            retention: Retention::default(),
        }
    }
}

/// Who made a registry write: recorded in the version it makes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Writer {
    /// The name of the token the request carried, when auth is on.
    pub token: Option<String>,
}

impl Writer {
    /// A writer identified by the token named `token` (`None`: auth off, or the CLI).
    pub fn new(token: Option<String>) -> Self {
        Self { token }
    }
}

/// The version a write made (or the one it left, when it changed nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The document's tag (the routes' `ETag`).
    pub tag: String,
    /// The registry version number (0: nothing was ever recorded).
    pub version: u64,
}

/// A page of the history, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    /// The versions of the page.
    pub versions: Vec<RegistryVersion>,
    /// Every version retained.
    pub total: u64,
    /// The current version (0: none yet).
    pub current: u64,
    /// The oldest version retained, if any.
    pub oldest: Option<u64>,
}

/// One version with its whole document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionDocument {
    /// The record.
    pub record: RegistryVersion,
    /// The definitions as they were at that version.
    pub document: RegistryDocument,
}

/// The stored form of a version: the document's lists, then the record.
#[derive(Debug, Serialize, Deserialize)]
struct StoredVersion {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    history: Option<RegistryVersion>,
    #[serde(default)]
    entities: Vec<Entity>,
    #[serde(default)]
    feature_views: Vec<FeatureView>,
    #[serde(default)]
    feature_services: Vec<FeatureService>,
}

/// The bytes of version `record` holding `doc`.
pub(super) fn encode(
    doc: &RegistryDocument,
    record: &RegistryVersion,
) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec_pretty(&StoredVersion {
        history: Some(record.clone()),
        entities: doc.entities.clone(),
        feature_views: doc.feature_views.clone(),
        feature_services: doc.feature_services.clone(),
    })
}

/// The document and record of a stored version (no record: an s3 entry from before
/// history was recorded).
pub(super) fn decode(
    bytes: &[u8],
) -> serde_json::Result<(RegistryDocument, Option<RegistryVersion>)> {
    let stored: StoredVersion = serde_json::from_slice(bytes)?;
    Ok((
        RegistryDocument {
            entities: stored.entities,
            feature_views: stored.feature_views,
            feature_services: stored.feature_services,
        },
        stored.history,
    ))
}

/// RFC 3339 (UTC, microseconds) of `micros`.
pub(super) fn rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Microseconds of an RFC 3339 instant; `None` when it is not one.
pub(super) fn micros_of(at: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(at)
        .ok()
        .map(|t| t.timestamp_micros())
}

/// The record of version `version`, which turned `before` into `after`.
pub(super) fn record(
    version: u64,
    at_micros: i64,
    operation: RegistryOperation,
    writer: &Writer,
    before: &RegistryDocument,
    after: &RegistryDocument,
) -> RegistryVersion {
    RegistryVersion {
        version,
        at: rfc3339(at_micros),
        operation,
        changes: registry_changes(before, after),
        written_by: writer.token.clone(),
    }
}

/// The 404 or 410 for a version that cannot be read, given the versions retained.
pub(super) fn missing(version: u64, retained: &[u64]) -> RegistryError {
    let oldest = retained.iter().min().copied();
    let latest = retained.iter().max().copied().unwrap_or(0);
    if version >= 1 && version < latest {
        RegistryError::VersionExpired {
            version,
            oldest,
            latest,
        }
    } else {
        RegistryError::VersionNotFound {
            version,
            oldest,
            latest,
        }
    }
}

/// The local kind's versions: `registry/history/<20 digits>.json`.
#[derive(Debug, Clone)]
pub(super) struct LocalHistory {
    dir: PathBuf,
}

impl LocalHistory {
    pub(super) fn new(registry_dir: &Path) -> Self {
        Self {
            dir: registry_dir.join(HISTORY_DIR),
        }
    }

    fn path(&self, version: u64) -> PathBuf {
        self.dir.join(format!("{version:020}.json"))
    }

    /// Every version retained, ascending.
    pub(super) fn numbers(&self) -> Result<Vec<u64>, RegistryError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(file_error(&self.dir, e.to_string())),
        };
        let mut numbers: Vec<u64> = entries
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name();
                let digits = name.to_str()?.strip_suffix(".json")?;
                (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| digits.parse().ok())
                    .flatten()
            })
            .collect();
        numbers.sort_unstable();
        Ok(numbers)
    }

    /// Version `version`; `None` when it is not retained.
    pub(super) fn read(&self, version: u64) -> Result<Option<VersionDocument>, RegistryError> {
        let path = self.path(version);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(file_error(&path, e.to_string())),
        };
        let (document, record) = decode(&bytes).map_err(|e| file_error(&path, e.to_string()))?;
        // A file without a record was not written by a registry write (they all have one):
        // say so rather than invent what it was.
        let record = record.ok_or_else(|| {
            file_error(
                &path,
                "not a registry version: it has no \"history\" record".into(),
            )
        })?;
        Ok(Some(VersionDocument { record, document }))
    }

    /// The latest version, if any.
    pub(super) fn latest(&self) -> Result<Option<VersionDocument>, RegistryError> {
        match self.numbers()?.last() {
            Some(&version) => self.read(version),
            None => Ok(None),
        }
    }

    /// Records `document` as the version `record` names (whole or not at all: temporary
    /// file, fsync, rename, fsync of the folder). Only under the registry's lock.
    pub(super) fn write(
        &self,
        _lock: &WriteLock,
        document: &RegistryDocument,
        record: &RegistryVersion,
    ) -> Result<(), RegistryError> {
        self.write_to(&self.path(record.version), document, record)
    }

    fn write_to(
        &self,
        path: &Path,
        document: &RegistryDocument,
        record: &RegistryVersion,
    ) -> Result<(), RegistryError> {
        fs::create_dir_all(&self.dir).map_err(|e| file_error(&self.dir, e.to_string()))?;
        let stored = StoredVersion {
            history: Some(record.clone()),
            entities: document.entities.clone(),
            feature_views: document.feature_views.clone(),
            feature_services: document.feature_services.clone(),
        };
        crate::storage::write_json_atomic(path, &stored)
            .map_err(|e| file_error(path, e.to_string()))
    }

    fn pending_path(&self) -> PathBuf {
        self.dir.join(PENDING_FILE)
    }

    /// Prepares the version a write is about to make, before it replaces the document (see
    /// the module doc). Only under the registry's lock.
    pub(super) fn prepare(
        &self,
        _lock: &WriteLock,
        document: &RegistryDocument,
        record: &RegistryVersion,
    ) -> Result<(), RegistryError> {
        self.write_to(&self.pending_path(), document, record)
    }

    /// Makes the prepared version the version `version`, once the document holds it.
    pub(super) fn commit(&self, _lock: &WriteLock, version: u64) -> Result<(), RegistryError> {
        let target = self.path(version);
        fs::rename(self.pending_path(), &target).map_err(|e| file_error(&target, e.to_string()))?;
        // The rename is durable only once the folder is.
        fs::File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| file_error(&self.dir, e.to_string()))
    }

    /// The version a write prepared and did not commit, if any. One that cannot be read is
    /// treated as absent: it was never committed, so nothing names it.
    pub(super) fn pending(&self) -> Option<VersionDocument> {
        let bytes = fs::read(self.pending_path()).ok()?;
        match decode(&bytes) {
            Ok((document, Some(record))) => Some(VersionDocument { record, document }),
            _ => None,
        }
    }

    /// Removes a prepared version whose write never replaced the document.
    pub(super) fn discard_pending(&self, _lock: &WriteLock) {
        match fs::remove_file(self.pending_path()) {
            Ok(()) => tracing::info!(
                "discarded the registry version a write prepared before it was interrupted (its document was never written)"
            ),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(error = %e, "cannot remove a prepared registry version"),
        }
    }

    /// Deletes the versions retention lets go, after version `latest` was recorded at
    /// `now`. Best effort: a failure is logged and the files wait for the next write.
    pub(super) fn sweep(&self, _lock: &WriteLock, latest: u64, retention: Retention, now: i64) {
        let numbers = match self.numbers() {
            Ok(numbers) => numbers,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the registry's versions to sweep old ones");
                return;
            }
        };
        // Oldest first; a version goes only when its successor was recorded long enough ago,
        // and `at` grows with the number, so the first one kept ends the sweep.
        for pair in numbers.windows(2) {
            let (version, successor) = (pair[0], pair[1]);
            if latest - version < retention.keep_min.max(1) {
                return;
            }
            let superseded = match self.read(successor) {
                Ok(Some(next)) => micros_of(&next.record.at),
                _ => None,
            };
            let Some(superseded) = superseded else {
                return;
            };
            if !retention.expired(latest - version, superseded, now) {
                return;
            }
            if let Err(e) = fs::remove_file(self.path(version)) {
                tracing::warn!(version, error = %e, "cannot delete an old registry version");
                return;
            }
        }
    }

    /// Removes temporary files of interrupted writes (under the lock, as for the document).
    pub(super) fn sweep_temp_files(&self, lock: &WriteLock) {
        super::file::sweep_temp_files(&self.dir, lock);
    }
}

/// Reading the history, on either kind.
impl Registry {
    /// The history, newest first: `limit` versions after the first `offset`.
    pub fn history_page(&self, offset: u64, limit: u64) -> Result<HistoryPage, RegistryError> {
        match &self.backend {
            Backend::File { history, .. } => {
                let numbers = history.numbers()?;
                let mut versions = Vec::new();
                let start = usize::try_from(offset).unwrap_or(usize::MAX);
                let count = usize::try_from(limit).unwrap_or(usize::MAX);
                for &version in numbers.iter().rev().skip(start).take(count) {
                    // A version swept since the listing is simply no longer retained.
                    if let Some(found) = history.read(version)? {
                        versions.push(found.record);
                    }
                }
                Ok(HistoryPage {
                    versions,
                    total: numbers.len() as u64,
                    current: numbers.last().copied().unwrap_or(0),
                    oldest: numbers.first().copied(),
                })
            }
            Backend::Object(log) => log.page(offset, limit),
        }
    }

    /// Version `version` with its whole document; [`RegistryError::VersionNotFound`] or
    /// [`RegistryError::VersionExpired`] when it cannot be read.
    pub fn version_document(&self, version: u64) -> Result<VersionDocument, RegistryError> {
        match &self.backend {
            Backend::File { history, .. } => {
                if version > 0
                    && let Some(found) = history.read(version)?
                {
                    return Ok(found);
                }
                Err(missing(version, &history.numbers()?))
            }
            Backend::Object(log) => log.version(version),
        }
    }
}
