//! The registry: entities, feature views and feature services, kept as one declarative JSON
//! document under `<data root>/registry/registry.json`.
//!
//! `apply` is an upsert by name, like Feast's: the objects in the document are created or
//! replaced, the others are kept. Every definition is validated first, against the document,
//! the registry and the tables' real columns, and nothing is written unless all of it is
//! valid. A view's empty feature list means "every column that is not a join key or a
//! timestamp", resolved at apply time so clients see the real list.
//!
//! Every write, whatever it changes, is a read-modify-write of the registry as it is stored
//! now: on the local kind, of the file under a lock shared by every process on the data root
//! (see [`file`]); on the s3 kind, of the latest entry of a log of write-once objects, retried
//! when another replica commits first (see [`object`]). The in-memory copy only serves reads,
//! and [`Registry::reload`] brings it up to date with the store.
//!
//! Every write that changes the document also records a numbered version of it (see
//! [`history`]): the registry version, 1 for the first write and one more for each later
//! one on both kinds.

mod delete;
pub mod feast_import;
mod file;
pub mod history;
mod local;
mod merge;
mod object;
mod sync;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;

use crate::model::{
    FeatureRef, FeatureService, FeatureView, GroupName, RegistryDocument, RegistryOperation,
    TableName,
};
use history::LocalHistory;

pub use file::LOCK_FILE;
pub use history::{
    Committed, HISTORY_DIR, HistoryOptions, HistoryPage, Retention, VersionDocument, WallClock,
    Writer,
};
pub use object::{LOG_PREFIX, MIN_ATTEMPTS, PATIENCE, SWEEP_EVERY, SWEEP_GRACE};
pub use sync::{SyncOptions, SyncStatus, TableFacts, ViewSync};

/// File name of the registry document.
pub const REGISTRY_FILE: &str = "registry.json";

/// One validation failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invalid {
    /// Where: `feature_views[0].entities[1]`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// What kind of objects still use one that a delete names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Referrers {
    /// Feature views (of an entity).
    FeatureViews,
    /// Feature services (of a feature view).
    FeatureServices,
}

impl std::fmt::Display for Referrers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Referrers::FeatureViews => "feature view(s)",
            Referrers::FeatureServices => "feature service(s)",
        })
    }
}

/// Registry failures.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The document has invalid definitions; nothing was applied.
    #[error("{} invalid definition(s): {}", .0.len(), .0.iter().map(|i| format!("{}: {}", i.field, i.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<Invalid>),
    /// No such object.
    #[error("{kind} {name:?} is not registered")]
    NotFound {
        /// `entity`, `feature view` or `feature service`.
        kind: &'static str,
        /// The name asked for.
        name: String,
    },
    /// A delete of an object that others still reference; nothing was deleted.
    #[error("{kind} {name:?} is still used by {by} {}: delete or change those first", .names.join(", "))]
    InUse {
        /// `entity` or `feature view`.
        kind: &'static str,
        /// The object.
        name: String,
        /// What kind of objects use it.
        by: Referrers,
        /// Those objects, by name.
        names: Vec<String>,
    },
    /// A write made on a version of the registry that is no longer the current one (its
    /// `If-Match` names another); nothing was written.
    #[error(
        "the registry changed since it was read (expected version {expected}, it is {current} now): read it again and retry"
    )]
    Changed {
        /// The version the writer read.
        expected: String,
        /// The version on disk now.
        current: String,
    },
    /// The registry file could not be read or written.
    #[error("registry file {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The object store holding the registry (s3 kind) is down, failing or refusing access;
    /// nothing was written.
    #[error("the object store holding the registry is unavailable: {reason}")]
    Unavailable {
        /// What the store answered, naming the key or setting, never a credential.
        reason: String,
    },
    /// Another writer (replica) committed a different definition of an object this apply
    /// defines while the apply was being committed (s3 kind); nothing was applied.
    #[error(
        "{kind} {name:?} was defined differently by another writer while this apply was being committed; nothing was applied: read it again and re-apply if yours should win"
    )]
    Conflict {
        /// `entity`, `feature view` or `feature service`.
        kind: &'static str,
        /// The object.
        name: String,
    },
    /// Other replicas kept committing registry changes for seconds while this write retried
    /// (s3 kind); it was not applied, and sending it again is safe.
    #[error(
        "the registry kept changing under this write ({attempts} attempts); nothing was applied: retry"
    )]
    Contended {
        /// How many times the write was tried.
        attempts: u32,
    },
    /// A registry version that was never recorded (0, or above the latest).
    #[error("registry version {version} does not exist: {}", retained(*.oldest, *.latest))]
    VersionNotFound {
        /// The version asked for.
        version: u64,
        /// The oldest version retained, if any.
        oldest: Option<u64>,
        /// The latest version (0: none yet).
        latest: u64,
    },
    /// A registry version that was recorded but is no longer retained.
    #[error("registry version {version} is no longer retained: {}", retained(*.oldest, *.latest))]
    VersionExpired {
        /// The version asked for.
        version: u64,
        /// The oldest version retained, if any.
        oldest: Option<u64>,
        /// The latest version.
        latest: u64,
    },
}

/// "versions 3 to 12 exist", for the version errors.
fn retained(oldest: Option<u64>, latest: u64) -> String {
    match oldest {
        None => "no registry version was recorded yet".into(),
        Some(oldest) if oldest == latest => format!("only version {latest} is retained"),
        Some(oldest) => format!("versions {oldest} to {latest} are retained"),
    }
}

/// What happened to each applied object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ApplyReport {
    /// Objects created, as `kind name`.
    pub created: Vec<String>,
    /// Objects whose definition changed.
    pub updated: Vec<String>,
    /// Objects applied again unchanged.
    pub unchanged: Vec<String>,
}

/// A table's columns and their logical types, for validation.
pub type Columns = Vec<(String, String)>;

/// The registered objects that name one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableReferences {
    /// Feature views over the table.
    pub feature_views: Vec<String>,
    /// Feature services that use those views.
    pub feature_services: Vec<String>,
}

/// The version tag of a registry document (an HTTP entity tag): a digest of its canonical
/// JSON, so every process computes the same tag for the same definitions.
pub fn version_tag(doc: &RegistryDocument) -> String {
    use sha2::{Digest, Sha256};
    let bytes = serde_json::to_vec(doc).unwrap_or_default();
    Sha256::digest(&bytes)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A precondition on a write: the version of the registry the writer read (`If-Match`).
/// `None` writes whatever the registry is now (upsert semantics).
pub type Expected<'a> = Option<&'a str>;

fn check_expected(current: &RegistryDocument, expected: Expected<'_>) -> Result<(), RegistryError> {
    match expected {
        Some(tag) if tag != "*" && tag != version_tag(current) => Err(RegistryError::Changed {
            expected: tag.to_owned(),
            current: version_tag(current),
        }),
        _ => Ok(()),
    }
}

/// Which stored version an in-memory document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stamp {
    /// The stamp of the registry file (`None`: no file yet).
    File(Option<file::Stamp>),
    /// The number of the log entry (0: no entry yet).
    Entry(u64),
}

/// The document as last read or written, which stored version it is, and its registry
/// version number.
#[derive(Debug)]
struct Loaded {
    doc: Arc<RegistryDocument>,
    stamp: Stamp,
    version: u64,
}

/// Where the registry is kept.
#[derive(Debug)]
enum Backend {
    /// `registry.json` in a folder of the data root, and its versions beside it (the local
    /// kind).
    File {
        dir: PathBuf,
        path: PathBuf,
        history: LocalHistory,
    },
    /// A log of entries in the object store (the s3 kind).
    Object(object::EntryLog),
}

/// The registry.
#[derive(Debug)]
pub struct Registry {
    backend: Backend,
    loaded: RwLock<Loaded>,
    /// Serialises this process's writers (before they queue on the file lock, or race other
    /// replicas for the next entry).
    writer: Mutex<()>,
    /// The history's clock and retention.
    history: HistoryOptions,
}

impl Registry {
    /// [`Self::open_with`] the default history options (the real clock, 7 days, 10 versions).
    pub fn open(dir: &Path) -> Result<Self, RegistryError> {
        Self::open_with(dir, HistoryOptions::default())
    }

    /// Opens the registry in `dir` (empty when the file does not exist yet), removing the
    /// temporary files of interrupted writes when no other process is writing, and recording
    /// the document as a version if none does yet (see [`history`]).
    pub fn open_with(dir: &Path, options: HistoryOptions) -> Result<Self, RegistryError> {
        let path = dir.join(REGISTRY_FILE);
        let history = LocalHistory::new(dir);
        if let Some(lock) = file::try_lock(dir) {
            file::sweep_temp_files(dir, &lock);
            history.sweep_temp_files(&lock);
        }
        let registry = Self {
            backend: Backend::File {
                dir: dir.to_owned(),
                path: path.clone(),
                history,
            },
            loaded: RwLock::new(Loaded {
                doc: Arc::new(RegistryDocument::default()),
                stamp: Stamp::File(None),
                version: 0,
            }),
            writer: Mutex::new(()),
            history: options,
        };
        let (doc, stamp, version) = registry.read_local()?;
        *registry.loaded.write().unwrap_or_else(|p| p.into_inner()) = Loaded {
            doc: Arc::new(doc),
            stamp: Stamp::File(stamp),
            version,
        };
        Ok(registry)
    }

    /// [`Self::open_object_with`] the default history options.
    pub fn open_object(tree: crate::storage::object::BlockingTree) -> Result<Self, RegistryError> {
        Self::open_object_with(tree, HistoryOptions::default())
    }

    /// Opens the registry kept in the object store `tree` (the s3 kind): reads its latest
    /// entry (empty when there is none yet). Fails with [`RegistryError::Unavailable`] when the
    /// store cannot be listed.
    pub fn open_object_with(
        tree: crate::storage::object::BlockingTree,
        options: HistoryOptions,
    ) -> Result<Self, RegistryError> {
        let log = object::EntryLog::new(tree, options.clone());
        let latest = log.newer_than(None)?;
        let loaded = match latest {
            Some(entry) => Loaded {
                doc: entry.doc,
                stamp: Stamp::Entry(entry.seq),
                version: entry.seq,
            },
            None => Loaded {
                doc: Arc::new(RegistryDocument::default()),
                stamp: Stamp::Entry(0),
                version: 0,
            },
        };
        Ok(Self {
            backend: Backend::Object(log),
            loaded: RwLock::new(loaded),
            writer: Mutex::new(()),
            history: options,
        })
    }

    /// The registry version of the definitions served now (0: nothing was ever recorded).
    pub fn version(&self) -> u64 {
        self.loaded
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .version
    }

    /// The current definitions.
    pub fn snapshot(&self) -> Arc<RegistryDocument> {
        Arc::clone(&self.loaded.read().unwrap_or_else(|p| p.into_inner()).doc)
    }

    /// The current definitions and their registry version, read together.
    pub fn snapshot_with_version(&self) -> (Arc<RegistryDocument>, u64) {
        let loaded = self.loaded.read().unwrap_or_else(|p| p.into_inner());
        (Arc::clone(&loaded.doc), loaded.version)
    }

    /// Re-reads the registry if another process changed it since it was last read (one
    /// `stat` of the file, or one LIST of the entries after the one held, when it did not);
    /// returns whether the definitions changed. A registry that cannot be read keeps the
    /// current definitions served.
    pub fn reload(&self) -> Result<bool, RegistryError> {
        let held = self.loaded.read().unwrap_or_else(|p| p.into_inner()).stamp;
        match &self.backend {
            Backend::File { path, .. } => {
                if Stamp::File(file::stamp(path)?) == held {
                    return Ok(false);
                }
                let (doc, stamp, version) = self.read_local()?;
                Ok(self.install(Arc::new(doc), Stamp::File(stamp), version))
            }
            Backend::Object(log) => {
                let known = match held {
                    Stamp::Entry(seq) if seq > 0 => Some(seq),
                    _ => None,
                };
                Ok(match log.newer_than(known)? {
                    Some(entry) => self.install(entry.doc, Stamp::Entry(entry.seq), entry.seq),
                    None => false,
                })
            }
        }
    }

    /// A feature view by name.
    pub fn view(&self, name: &str) -> Result<FeatureView, RegistryError> {
        self.snapshot()
            .feature_views
            .iter()
            .find(|v| v.name == name)
            .cloned()
            .ok_or_else(|| RegistryError::NotFound {
                kind: "feature view",
                name: name.to_owned(),
            })
    }

    /// A feature service by name.
    pub fn service(&self, name: &str) -> Result<FeatureService, RegistryError> {
        self.snapshot()
            .feature_services
            .iter()
            .find(|s| s.name == name)
            .cloned()
            .ok_or_else(|| RegistryError::NotFound {
                kind: "feature service",
                name: name.to_owned(),
            })
    }

    /// The one way the registry is written: `change` gets the document as it is stored now
    /// and returns the document to write (`None`: nothing to write) and its answer. On the
    /// local kind this runs under the cross-process lock and the file is replaced atomically
    /// only when the document changed; on the s3 kind a lost race for the next entry runs
    /// `change` again on the winner, so `change` must depend on nothing but its argument and
    /// the tables. A write that changes the document records a version of it, made by
    /// `operation` of `writer`. Also returns the version it left.
    fn update<R>(
        &self,
        operation: RegistryOperation,
        writer: &Writer,
        mut change: impl FnMut(
            &RegistryDocument,
        ) -> Result<(Option<RegistryDocument>, R), RegistryError>,
    ) -> Result<(R, Committed), RegistryError> {
        let _one = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let recording = object::Recording { operation, writer };
        match &self.backend {
            Backend::File { dir, path, history } => {
                self.update_file(dir, path, history, &recording, change)
            }
            Backend::Object(log) => {
                let base = {
                    let loaded = self.loaded.read().unwrap_or_else(|p| p.into_inner());
                    object::Entry {
                        seq: match loaded.stamp {
                            Stamp::Entry(seq) => seq,
                            Stamp::File(_) => 0,
                        },
                        doc: Arc::clone(&loaded.doc),
                    }
                };
                log.update(base, &recording, &mut change, &|entry| {
                    self.install(entry.doc, Stamp::Entry(entry.seq), entry.seq);
                })
            }
        }
    }

    /// Serves `doc` from now on; returns whether the definitions changed. Entries only move
    /// forward: a slower thread holding an older entry than the one served leaves it alone.
    fn install(&self, doc: Arc<RegistryDocument>, stamp: Stamp, version: u64) -> bool {
        let mut loaded = self.loaded.write().unwrap_or_else(|p| p.into_inner());
        if let (Stamp::Entry(held), Stamp::Entry(seq)) = (loaded.stamp, stamp)
            && seq <= held
        {
            return false;
        }
        let changed = loaded.doc != doc;
        *loaded = Loaded {
            doc,
            stamp,
            version,
        };
        changed
    }

    /// Validates `doc` and merges it in (upsert by name); `columns_of(group, table)` gives a
    /// table's columns, `None` when it does not exist. Every view applied is a declared one
    /// from then on (checked against its table on writes, never rewritten by them).
    pub fn apply(
        &self,
        doc: RegistryDocument,
        columns_of: &dyn Fn(&GroupName, &TableName) -> Option<Columns>,
    ) -> Result<ApplyReport, RegistryError> {
        self.apply_if(doc, None, &Writer::default(), columns_of)
            .map(|(report, _)| report)
    }

    /// [`Self::apply`] by `writer`, only if the registry is still at version `expected`; also
    /// returns the version it left.
    pub fn apply_if(
        &self,
        mut doc: RegistryDocument,
        expected: Expected<'_>,
        writer: &Writer,
        columns_of: &dyn Fn(&GroupName, &TableName) -> Option<Columns>,
    ) -> Result<(ApplyReport, Committed), RegistryError> {
        for view in &mut doc.feature_views {
            view.inferred = false;
        }
        self.update(
            RegistryOperation::Apply,
            writer,
            merge::applying(doc, expected, columns_of),
        )
    }

    /// What [`Self::apply_if`] of `doc` would report, against the registry as this process
    /// last read it, without writing: the dry run of an import. Invalid definitions fail as
    /// an apply's do.
    pub fn check(
        &self,
        doc: RegistryDocument,
        columns_of: &dyn Fn(&GroupName, &TableName) -> Option<Columns>,
    ) -> Result<ApplyReport, RegistryError> {
        merge::merge(&self.snapshot(), doc, columns_of).map(|(_, report)| report)
    }

    /// Brings the view of a table just written in line with it (see [`sync`]).
    pub fn sync_table(
        &self,
        table: &TableFacts,
        options: &SyncOptions,
    ) -> Result<ViewSync, RegistryError> {
        self.update(RegistryOperation::TableSync, &options.writer, |current| {
            sync::sync(current, table, options)
        })
        .map(|(sync, _)| sync)
    }

    /// The views over table `name` and the services that use them.
    pub fn references(&self, name: &str) -> TableReferences {
        let doc = self.snapshot();
        let feature_views: Vec<String> = doc
            .feature_views
            .iter()
            .filter(|v| v.name == name)
            .map(|v| v.name.clone())
            .collect();
        let feature_services = doc
            .feature_services
            .iter()
            .filter(|s| {
                s.features
                    .iter()
                    .any(|r| feature_views.contains(&referenced_view(r)))
            })
            .map(|s| s.name.clone())
            .collect();
        TableReferences {
            feature_views,
            feature_services,
        }
    }
}

fn position<T>(
    items: &[T],
    matches: impl Fn(&T) -> bool,
    kind: &'static str,
    name: &str,
) -> Result<usize, RegistryError> {
    items
        .iter()
        .position(matches)
        .ok_or_else(|| RegistryError::NotFound {
            kind,
            name: name.to_owned(),
        })
}

/// The view a service reference (`view` or `view:feature`) names.
fn referenced_view(reference: &str) -> String {
    reference
        .parse::<FeatureRef>()
        .map_or_else(|_| reference.to_owned(), |r| r.view)
}

/// The services that reference view `view`, by name.
fn services_of(doc: &RegistryDocument, view: &str) -> Vec<String> {
    doc.feature_services
        .iter()
        .filter(|s| s.features.iter().any(|r| referenced_view(r) == view))
        .map(|s| s.name.clone())
        .collect()
}

#[cfg(test)]
mod object_tests;
#[cfg(test)]
mod tests;
