//! The registry: entities, feature views and feature services, kept as one declarative JSON
//! document under `<data root>/registry/registry.json`.
//!
//! `apply` is an upsert by name, like Feast's: the objects in the document are created or
//! replaced, the others are kept. Every definition is validated first, against the document,
//! the registry and the tables' real columns, and nothing is written unless all of it is
//! valid. A view's empty feature list means "every column that is not a join key or a
//! timestamp", resolved at apply time so clients see the real list.
//!
//! Every write, whatever it changes, is a read-modify-write of the file as it is on disk now,
//! under a lock shared by every process on the data root (see [`file`]); the in-memory copy
//! only serves reads, and [`Registry::reload`] brings it up to date with the file.

mod file;
mod merge;
mod sync;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;

use crate::model::{
    FeatureRef, FeatureService, FeatureView, GroupName, RegistryDocument, TableName,
};

pub use file::LOCK_FILE;
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

/// The document as last read or written, and the stamp of that file version.
#[derive(Debug)]
struct Loaded {
    doc: Arc<RegistryDocument>,
    stamp: Option<file::Stamp>,
}

/// The registry.
#[derive(Debug)]
pub struct Registry {
    dir: PathBuf,
    path: PathBuf,
    loaded: RwLock<Loaded>,
    /// Serialises this process's writers before they queue on the file lock.
    writer: Mutex<()>,
}

impl Registry {
    /// Opens the registry in `dir` (empty when the file does not exist yet), removing the
    /// temporary files of interrupted writes when no other process is writing.
    pub fn open(dir: &Path) -> Result<Self, RegistryError> {
        let path = dir.join(REGISTRY_FILE);
        if let Some(lock) = file::try_lock(dir) {
            file::sweep_temp_files(dir, &lock);
        }
        let (doc, stamp) = file::read(&path)?;
        Ok(Self {
            dir: dir.to_owned(),
            path,
            loaded: RwLock::new(Loaded {
                doc: Arc::new(doc),
                stamp,
            }),
            writer: Mutex::new(()),
        })
    }

    /// The current definitions.
    pub fn snapshot(&self) -> Arc<RegistryDocument> {
        Arc::clone(&self.loaded.read().unwrap_or_else(|p| p.into_inner()).doc)
    }

    /// Re-reads the file if another process replaced it since it was last read (one `stat`
    /// when it did not); returns whether the definitions changed. A file that cannot be read
    /// keeps the current definitions served.
    pub fn reload(&self) -> Result<bool, RegistryError> {
        let now = file::stamp(&self.path)?;
        if now == self.loaded.read().unwrap_or_else(|p| p.into_inner()).stamp {
            return Ok(false);
        }
        let (doc, stamp) = file::read(&self.path)?;
        let mut loaded = self.loaded.write().unwrap_or_else(|p| p.into_inner());
        let changed = *loaded.doc != doc;
        *loaded = Loaded {
            doc: Arc::new(doc),
            stamp,
        };
        Ok(changed)
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

    /// The one way the registry is written: under the cross-process lock, `change` gets the
    /// document as it is on disk now and returns the document to write (`None`: nothing to
    /// write) and its answer. The file is replaced atomically only when the document changed.
    /// `change` must depend on nothing but its argument and the tables, so that a backend
    /// without locks (conditional writes on an object store) can run it again after losing a
    /// race.
    fn update<R>(
        &self,
        change: impl FnOnce(&RegistryDocument) -> Result<(Option<RegistryDocument>, R), RegistryError>,
    ) -> Result<R, RegistryError> {
        self.update_tagged(change).map(|(answer, _)| answer)
    }

    /// [`Self::update`], also returning the version tag of the registry it left.
    fn update_tagged<R>(
        &self,
        change: impl FnOnce(&RegistryDocument) -> Result<(Option<RegistryDocument>, R), RegistryError>,
    ) -> Result<(R, String), RegistryError> {
        let _one = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let _lock = file::lock(&self.dir)?;
        let (current, stamp) = file::read(&self.path)?;
        let outcome = change(&current);
        let (next, answer) = match outcome {
            Ok(done) => done,
            Err(e) => {
                self.install(current, stamp);
                return Err(e);
            }
        };
        let installed = match next {
            Some(next) if next != current => {
                crate::storage::write_json_atomic(&self.path, &next)
                    .map_err(|e| file::file_error(&self.path, e.to_string()))?;
                let stamp = file::stamp(&self.path)?;
                let tag = version_tag(&next);
                self.install(next, stamp);
                tag
            }
            _ => {
                let tag = version_tag(&current);
                self.install(current, stamp);
                tag
            }
        };
        Ok((answer, installed))
    }

    fn install(&self, doc: RegistryDocument, stamp: Option<file::Stamp>) {
        *self.loaded.write().unwrap_or_else(|p| p.into_inner()) = Loaded {
            doc: Arc::new(doc),
            stamp,
        };
    }

    /// Validates `doc` and merges it in (upsert by name); `columns_of(group, table)` gives a
    /// table's columns, `None` when it does not exist. Every view applied is a declared one
    /// from then on (checked against its table on writes, never rewritten by them).
    pub fn apply(
        &self,
        doc: RegistryDocument,
        columns_of: &dyn Fn(&GroupName, &TableName) -> Option<Columns>,
    ) -> Result<ApplyReport, RegistryError> {
        self.apply_if(doc, None, columns_of)
            .map(|(report, _)| report)
    }

    /// [`Self::apply`] only if the registry is still at version `expected`; also returns the
    /// version it left.
    pub fn apply_if(
        &self,
        mut doc: RegistryDocument,
        expected: Expected<'_>,
        columns_of: &dyn Fn(&GroupName, &TableName) -> Option<Columns>,
    ) -> Result<(ApplyReport, String), RegistryError> {
        for view in &mut doc.feature_views {
            view.inferred = false;
        }
        self.update_tagged(|current| {
            check_expected(current, expected)?;
            let (merged, report) = merge::merge(current, doc, columns_of)?;
            Ok((Some(merged), report))
        })
    }

    /// Brings the view of a table just written in line with it (see [`sync`]).
    pub fn sync_table(
        &self,
        table: &TableFacts,
        options: &SyncOptions,
    ) -> Result<ViewSync, RegistryError> {
        self.update(|current| sync::sync(current, table, options))
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

    /// Deletes a feature view; refused while a feature service uses it.
    pub fn delete_view(
        &self,
        name: &str,
        expected: Expected<'_>,
    ) -> Result<(FeatureView, String), RegistryError> {
        self.update_tagged(|current| {
            check_expected(current, expected)?;
            let mut next = current.clone();
            let at = position(
                &next.feature_views,
                |v| v.name == name,
                "feature view",
                name,
            )?;
            let users = services_of(current, name);
            if !users.is_empty() {
                return Err(RegistryError::InUse {
                    kind: "feature view",
                    name: name.to_owned(),
                    by: Referrers::FeatureServices,
                    names: users,
                });
            }
            let removed = next.feature_views.remove(at);
            Ok((Some(next), removed))
        })
    }

    /// Deletes a feature service.
    pub fn delete_service(
        &self,
        name: &str,
        expected: Expected<'_>,
    ) -> Result<(FeatureService, String), RegistryError> {
        self.update_tagged(|current| {
            check_expected(current, expected)?;
            let mut next = current.clone();
            let at = position(
                &next.feature_services,
                |s| s.name == name,
                "feature service",
                name,
            )?;
            let removed = next.feature_services.remove(at);
            Ok((Some(next), removed))
        })
    }

    /// Deletes an entity; refused while a feature view uses it.
    pub fn delete_entity(
        &self,
        name: &str,
        expected: Expected<'_>,
    ) -> Result<(crate::model::Entity, String), RegistryError> {
        self.update_tagged(|current| {
            check_expected(current, expected)?;
            let mut next = current.clone();
            let at = position(&next.entities, |e| e.name == name, "entity", name)?;
            let users: Vec<String> = current
                .feature_views
                .iter()
                .filter(|v| v.entities.iter().any(|e| e == name))
                .map(|v| v.name.clone())
                .collect();
            if !users.is_empty() {
                return Err(RegistryError::InUse {
                    kind: "entity",
                    name: name.to_owned(),
                    by: Referrers::FeatureViews,
                    names: users,
                });
            }
            let removed = next.entities.remove(at);
            Ok((Some(next), removed))
        })
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
mod tests {
    use super::*;
    use crate::model::ValueType;

    fn columns(_: &GroupName, name: &TableName) -> Option<Columns> {
        (name.as_str() == "user_profile").then(|| {
            vec![
                ("user_id".into(), "int64".into()),
                ("age".into(), "int64".into()),
                ("favorite_genre".into(), "string".into()),
                ("event_timestamp".into(), "timestamp[us, UTC]".into()),
            ]
        })
    }

    fn doc() -> RegistryDocument {
        serde_json::from_value(serde_json::json!({
            "entities": [{"name": "user_id", "value_type": "int64"}],
            "feature_views": [{"name": "user_profile", "group": "user", "entities": ["user_id"],
                               "timestamp_field": "event_timestamp", "ttl_seconds": 604800}],
            "feature_services": [{"name": "svc", "features": ["user_profile:age", "user_profile"]}]
        }))
        .expect("valid document")
    }

    #[test]
    fn apply_fills_features_persists_and_reports_changes() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let registry = Registry::open(dir.path())?;
        let report = registry.apply(doc(), &columns)?;
        assert_eq!(report.created.len(), 3);
        let view = registry.view("user_profile")?;
        let names: Vec<&str> = view.features.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["age", "favorite_genre"]);
        let again = registry.apply(doc(), &columns)?;
        assert_eq!(again.unchanged.len(), 3);
        let reopened = Registry::open(dir.path())?;
        assert_eq!(reopened.snapshot(), registry.snapshot());
        Ok(())
    }

    #[test]
    fn two_registries_on_one_folder_keep_each_others_writes()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let first = Registry::open(dir.path())?;
        let second = Registry::open(dir.path())?;
        let entity = |name: &str| RegistryDocument {
            entities: vec![crate::model::Entity {
                name: name.into(),
                join_key: None,
                value_type: ValueType::Int64,
                description: String::new(),
            }],
            ..RegistryDocument::default()
        };
        first.apply(entity("a"), &columns)?;
        // `second` loaded the empty registry; its write must merge into the file, not
        // replace it with what it had in memory.
        second.apply(entity("b"), &columns)?;
        let names = |r: &Registry| -> Vec<String> {
            r.snapshot()
                .entities
                .iter()
                .map(|e| e.name.clone())
                .collect()
        };
        assert_eq!(names(&second), ["a", "b"]);
        assert_eq!(names(&first), ["a"]);
        assert!(first.reload()?);
        assert_eq!(names(&first), ["a", "b"]);
        assert!(!first.reload()?);
        let (_, tag) = first.delete_entity("a", None)?;
        assert_eq!(tag, version_tag(&first.snapshot()));
        assert!(matches!(
            second.delete_entity("b", Some("stale")),
            Err(RegistryError::Changed { .. })
        ));
        second.reload()?;
        assert_eq!(names(&second), ["b"]);
        Ok(())
    }

    #[test]
    fn invalid_definitions_are_all_reported_and_nothing_is_applied()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let registry = Registry::open(dir.path())?;
        let mut bad = doc();
        bad.feature_views[0].timestamp_field = "nope".into();
        bad.feature_views[0].entities.push("movie_id".into());
        bad.feature_services[0]
            .features
            .push("user_profile:missing".into());
        match registry.apply(bad, &columns) {
            Err(RegistryError::Invalid(errors)) => {
                let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
                assert!(
                    fields.contains(&"feature_views[0].timestamp_field"),
                    "{fields:?}"
                );
                assert!(
                    fields.contains(&"feature_views[0].entities[1]"),
                    "{fields:?}"
                );
                assert!(
                    fields.contains(&"feature_services[0].features[2]"),
                    "{fields:?}"
                );
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
        assert_eq!(*registry.snapshot(), RegistryDocument::default());
        Ok(())
    }
}
