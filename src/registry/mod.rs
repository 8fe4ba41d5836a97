//! The registry: entities, feature views and feature services, kept as one declarative JSON
//! document under `<data root>/registry/registry.json`.
//!
//! `apply` is an upsert by name, like Feast's: the objects in the document are created or
//! replaced, the others are kept. Every definition is validated first, against the document,
//! the registry and the tables' real columns, and nothing is written unless all of it is
//! valid. A view's empty feature list means "every column that is not a join key or a
//! timestamp", resolved at apply time so clients see the real list.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::Serialize;

use crate::model::{
    Entity, FeatureDef, FeatureRef, FeatureService, FeatureView, GroupName, RegistryDocument,
    TableName, ValueType,
};

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

/// The registry.
#[derive(Debug)]
pub struct Registry {
    path: PathBuf,
    doc: RwLock<Arc<RegistryDocument>>,
}

impl Registry {
    /// Opens the registry in `dir` (empty when the file does not exist yet).
    pub fn open(dir: &Path) -> Result<Self, RegistryError> {
        let path = dir.join(REGISTRY_FILE);
        let doc = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| RegistryError::File {
                path: path.clone(),
                message: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => RegistryDocument::default(),
            Err(e) => {
                return Err(RegistryError::File {
                    path,
                    message: e.to_string(),
                });
            }
        };
        Ok(Self {
            path,
            doc: RwLock::new(Arc::new(doc)),
        })
    }

    /// The current definitions.
    pub fn snapshot(&self) -> Arc<RegistryDocument> {
        Arc::clone(&self.doc.read().unwrap_or_else(|p| p.into_inner()))
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

    /// Validates `doc` and merges it in (upsert by name); `columns_of(group, table)` gives a
    /// table's columns, `None` when it does not exist. Writes the registry file atomically.
    pub fn apply(
        &self,
        doc: RegistryDocument,
        columns_of: &dyn Fn(&GroupName, &TableName) -> Option<Columns>,
    ) -> Result<ApplyReport, RegistryError> {
        // One writer at a time: hold the write lock across validate + persist + swap.
        let mut current = self.doc.write().unwrap_or_else(|p| p.into_inner());
        let (merged, report) = merge(&current, doc, columns_of)?;
        crate::storage::write_json_atomic(&self.path, &merged).map_err(|e| {
            RegistryError::File {
                path: self.path.clone(),
                message: e.to_string(),
            }
        })?;
        *current = Arc::new(merged);
        Ok(report)
    }
}

fn merge(
    current: &RegistryDocument,
    doc: RegistryDocument,
    columns_of: &dyn Fn(&GroupName, &TableName) -> Option<Columns>,
) -> Result<(RegistryDocument, ApplyReport), RegistryError> {
    let mut errors = Vec::new();
    let mut report = ApplyReport::default();
    let mut invalid = |field: String, message: String| errors.push(Invalid { field, message });

    duplicates(
        "entities",
        doc.entities.iter().map(|e| e.name.as_str()),
        &mut invalid,
    );
    duplicates(
        "feature_views",
        doc.feature_views.iter().map(|v| v.name.as_str()),
        &mut invalid,
    );
    duplicates(
        "feature_services",
        doc.feature_services.iter().map(|s| s.name.as_str()),
        &mut invalid,
    );

    let mut entities: BTreeMap<String, Entity> = current
        .entities
        .iter()
        .map(|e| (e.name.clone(), e.clone()))
        .collect();
    for (i, entity) in doc.entities.into_iter().enumerate() {
        if let Err(e) = entity.name.parse::<TableName>() {
            invalid(
                format!("entities[{i}].name"),
                e.to_string().replace("table name", "entity name"),
            );
        }
        record(
            &mut report,
            "entity",
            &entity.name,
            entities.get(&entity.name),
            &entity,
        );
        entities.insert(entity.name.clone(), entity);
    }

    let mut views: BTreeMap<String, FeatureView> = current
        .feature_views
        .iter()
        .map(|v| (v.name.clone(), v.clone()))
        .collect();
    for (i, mut view) in doc.feature_views.into_iter().enumerate() {
        let at = |field: &str| format!("feature_views[{i}].{field}");
        let (group, name) = match (
            view.group.parse::<GroupName>(),
            view.name.parse::<TableName>(),
        ) {
            (Ok(g), Ok(n)) => (g, n),
            (g, n) => {
                if let Err(e) = g {
                    invalid(at("group"), e.to_string());
                }
                if let Err(e) = n {
                    invalid(at("name"), e.to_string());
                }
                continue;
            }
        };
        let Some(columns) = columns_of(&group, &name) else {
            invalid(
                at("name"),
                format!("no table {group}/{name}: write the table before registering its view"),
            );
            continue;
        };
        let dtype_of: HashMap<&str, &str> = columns
            .iter()
            .map(|(c, t)| (c.as_str(), t.as_str()))
            .collect();
        for (j, entity) in view.entities.iter().enumerate() {
            if view.entities[..j].contains(entity) {
                invalid(
                    format!("{}[{j}]", at("entities")),
                    format!("entity {entity:?} is listed twice"),
                );
            }
        }
        if view.entities.is_empty() {
            invalid(
                at("entities"),
                "a feature view needs at least one entity".into(),
            );
        }
        let mut keys = Vec::new();
        for (j, entity_name) in view.entities.iter().enumerate() {
            let Some(entity) = entities.get(entity_name) else {
                invalid(
                    format!("{}[{j}]", at("entities")),
                    format!("entity {entity_name:?} is not defined"),
                );
                continue;
            };
            let key = entity.join_key();
            match dtype_of.get(key) {
                None => invalid(
                    format!("{}[{j}]", at("entities")),
                    format!("table {name} has no join key column {key:?}"),
                ),
                Some(t) if !key_type_fits(entity.value_type, t) => invalid(
                    format!("{}[{j}]", at("entities")),
                    format!(
                        "join key {key:?} is {t} in the table but the entity says {:?}",
                        entity.value_type
                    ),
                ),
                Some(_) => {}
            }
            keys.push(key.to_owned());
        }
        match dtype_of.get(view.timestamp_field.as_str()) {
            Some(t) if t.starts_with("timestamp") => {}
            Some(t) => invalid(
                at("timestamp_field"),
                format!("column {:?} is {t}, not a timestamp", view.timestamp_field),
            ),
            None => invalid(
                at("timestamp_field"),
                format!("table {name} has no column {:?}", view.timestamp_field),
            ),
        }
        if let Some(created) = &view.created_timestamp_field {
            match dtype_of.get(created.as_str()) {
                Some(t) if t.starts_with("timestamp") => {}
                _ => invalid(
                    at("created_timestamp_field"),
                    format!("table {name} has no timestamp column {created:?}"),
                ),
            }
        }
        if view.features.is_empty() {
            let skip: Vec<&str> = keys
                .iter()
                .map(String::as_str)
                .chain([view.timestamp_field.as_str()])
                .chain(view.created_timestamp_field.as_deref())
                .collect();
            view.features = columns
                .iter()
                .filter(|(c, _)| !skip.contains(&c.as_str()))
                .map(|(c, t)| FeatureDef {
                    name: c.clone(),
                    dtype: Some(t.clone()),
                })
                .collect();
        }
        for (j, feature) in view.features.iter().enumerate() {
            let field = format!("{}[{j}]", at("features"));
            if view.features[..j].iter().any(|f| f.name == feature.name) {
                invalid(
                    field.clone(),
                    format!("feature {:?} is listed twice", feature.name),
                );
            }
            if keys.contains(&feature.name)
                || feature.name == view.timestamp_field
                || view.created_timestamp_field.as_ref() == Some(&feature.name)
            {
                invalid(
                    field,
                    format!(
                        "{:?} is a join key or timestamp of the view, not a feature",
                        feature.name
                    ),
                );
            }
        }
        for (j, feature) in view.features.iter_mut().enumerate() {
            match (dtype_of.get(feature.name.as_str()), &feature.dtype) {
                (None, _) => invalid(
                    format!("{}[{j}]", at("features")),
                    format!("table {name} has no column {:?}", feature.name),
                ),
                (Some(actual), Some(declared)) if declared != actual => invalid(
                    format!("{}[{j}].dtype", at("features")),
                    format!("column {:?} is {actual}, not {declared}", feature.name),
                ),
                (Some(actual), _) => feature.dtype = Some((*actual).to_owned()),
            }
        }
        if let Some(source) = &view.push_source {
            if let Err(e) = source.parse::<TableName>() {
                invalid(
                    at("push_source"),
                    e.to_string().replace("table name", "push source name"),
                );
            }
            if let Some(other) = views
                .values()
                .find(|v| v.name != view.name && v.push_source.as_ref() == Some(source))
            {
                invalid(
                    at("push_source"),
                    format!("push source {source:?} already feeds view {:?}", other.name),
                );
            }
        }
        record(
            &mut report,
            "feature view",
            &view.name,
            views.get(&view.name),
            &view,
        );
        views.insert(view.name.clone(), view);
    }

    let mut services: BTreeMap<String, FeatureService> = current
        .feature_services
        .iter()
        .map(|s| (s.name.clone(), s.clone()))
        .collect();
    for (i, service) in doc.feature_services.into_iter().enumerate() {
        if let Err(e) = service.name.parse::<TableName>() {
            invalid(
                format!("feature_services[{i}].name"),
                e.to_string().replace("table name", "service name"),
            );
        }
        if service.features.is_empty() {
            invalid(
                format!("feature_services[{i}].features"),
                "a feature service needs at least one feature".into(),
            );
        }
        for (j, reference) in service.features.iter().enumerate() {
            let field = format!("feature_services[{i}].features[{j}]");
            if let Err(message) = resolve_ref(reference, &views) {
                invalid(field, message);
            }
        }
        record(
            &mut report,
            "feature service",
            &service.name,
            services.get(&service.name),
            &service,
        );
        services.insert(service.name.clone(), service);
    }

    if !errors.is_empty() {
        return Err(RegistryError::Invalid(errors));
    }
    let merged = RegistryDocument {
        entities: entities.into_values().collect(),
        feature_views: views.into_values().collect(),
        feature_services: services.into_values().collect(),
    };
    Ok((merged, report))
}

/// Checks one service reference (`view` or `view:feature`) against the views.
fn resolve_ref(reference: &str, views: &BTreeMap<String, FeatureView>) -> Result<(), String> {
    let (view_name, feature) = match reference.parse::<FeatureRef>() {
        Ok(r) => (r.view, Some(r.feature)),
        Err(_) if !reference.contains(':') => (reference.to_owned(), None),
        Err(e) => return Err(e.to_string()),
    };
    let Some(view) = views.get(&view_name) else {
        return Err(format!("feature view {view_name:?} is not defined"));
    };
    match feature {
        Some(f) if !view.features.iter().any(|d| d.name == f) => {
            Err(format!("feature view {view_name:?} has no feature {f:?}"))
        }
        _ => Ok(()),
    }
}

fn key_type_fits(value_type: ValueType, dtype: &str) -> bool {
    match value_type {
        ValueType::Int64 => dtype.starts_with("int") || dtype.starts_with("uint"),
        ValueType::String => dtype == "string",
    }
}

fn duplicates<'a>(
    kind: &str,
    names: impl Iterator<Item = &'a str>,
    invalid: &mut impl FnMut(String, String),
) {
    let mut seen = HashMap::new();
    for (i, name) in names.enumerate() {
        if let Some(first) = seen.insert(name, i) {
            invalid(
                format!("{kind}[{i}].name"),
                format!("{name:?} is also defined at {kind}[{first}]"),
            );
        }
    }
}

fn record<T: PartialEq>(
    report: &mut ApplyReport,
    kind: &str,
    name: &str,
    before: Option<&T>,
    after: &T,
) {
    let line = format!("{kind} {name}");
    match before {
        None => report.created.push(line),
        Some(b) if b == after => report.unchanged.push(line),
        Some(_) => report.updated.push(line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
