//! What the registry's history records about each version: the write that made it, when,
//! by whom, and which definitions it created, updated or deleted. Pure types and the diff of
//! two documents; storing them is the registry's business.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::RegistryDocument;

/// The kind of registry write that made a version. The names are stable: clients filter on
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RegistryOperation {
    /// `POST /registry/apply` or `featurestore apply`.
    Apply,
    /// `DELETE /registry/entities/{name}`.
    DeleteEntity,
    /// `DELETE /registry/feature-views/{name}`.
    DeleteFeatureView,
    /// `DELETE /registry/feature-services/{name}`.
    DeleteFeatureService,
    /// A table save registered its feature view, or moved a view a save registered to the
    /// table's new columns.
    TableSync,
    /// Definitions found in the registry that no version recorded: a data root from before
    /// registry history, an edit of `registry.json` by hand, or a write interrupted between
    /// replacing the document and recording its version. Also every entry of an s3 registry
    /// written before history was recorded.
    Unrecorded,
}

/// The kind of a registered object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    /// An entity.
    Entity,
    /// A feature view.
    FeatureView,
    /// A feature service.
    FeatureService,
}

/// What a version did to one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// It did not exist before.
    Created,
    /// Its definition changed.
    Updated,
    /// It no longer exists.
    Deleted,
}

/// One object a version changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"kind": "feature_view", "name": "user_profile", "change": "updated"}))]
pub struct RegistryChange {
    /// What kind of object.
    pub kind: ObjectKind,
    /// Its name.
    pub name: String,
    /// What happened to it.
    pub change: ChangeKind,
}

/// One version of the registry, as its history lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "version": 4, "at": "2026-12-06T16:45:12.482113Z", "operation": "apply",
    "changes": [{"kind": "feature_service", "name": "example_service", "change": "created"}],
    "written_by": "ci-writer"
}))]
pub struct RegistryVersion {
    /// The version number: 1 for the first write, one more for each later one, never reused.
    pub version: u64,
    /// When it became current (RFC 3339, UTC).
    pub at: String,
    /// The write that made it.
    pub operation: RegistryOperation,
    /// The objects it created, updated or deleted, by kind then name.
    pub changes: Vec<RegistryChange>,
    /// The name of the token that made it, when the server runs with `[auth]` enabled; null
    /// otherwise (and for the command line, which needs no token).
    #[serde(default)]
    pub written_by: Option<String>,
}

/// The objects `after` created, updated or deleted relative to `before`: entities, then
/// views, then services, each by name.
pub fn registry_changes(
    before: &RegistryDocument,
    after: &RegistryDocument,
) -> Vec<RegistryChange> {
    let mut changes = Vec::new();
    diff_named(
        ObjectKind::Entity,
        &before.entities,
        &after.entities,
        |e| &e.name,
        &mut changes,
    );
    diff_named(
        ObjectKind::FeatureView,
        &before.feature_views,
        &after.feature_views,
        |v| &v.name,
        &mut changes,
    );
    diff_named(
        ObjectKind::FeatureService,
        &before.feature_services,
        &after.feature_services,
        |s| &s.name,
        &mut changes,
    );
    changes
}

fn diff_named<T: PartialEq>(
    kind: ObjectKind,
    before: &[T],
    after: &[T],
    name: impl Fn(&T) -> &String,
    out: &mut Vec<RegistryChange>,
) {
    let find = |items: &'_ [T], wanted: &str| items.iter().position(|i| name(i) == wanted);
    let mut names: Vec<&String> = before.iter().chain(after).map(&name).collect();
    names.sort();
    names.dedup();
    for object in names {
        let change = match (find(before, object), find(after, object)) {
            (None, Some(_)) => ChangeKind::Created,
            (Some(_), None) => ChangeKind::Deleted,
            (Some(b), Some(a)) if before[b] != after[a] => ChangeKind::Updated,
            _ => continue,
        };
        out.push(RegistryChange {
            kind,
            name: object.clone(),
            change,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(json: serde_json::Value) -> RegistryDocument {
        serde_json::from_value(json).expect("a registry document")
    }

    #[test]
    fn changes_name_what_was_created_updated_and_deleted() {
        let before = doc(serde_json::json!({
            "entities": [{"name": "a", "value_type": "int64"}, {"name": "b", "value_type": "int64"}],
            "feature_services": [{"name": "s", "features": ["v"]}]
        }));
        let after = doc(serde_json::json!({
            "entities": [{"name": "b", "value_type": "string"}, {"name": "c", "value_type": "int64"}],
            "feature_services": [{"name": "s", "features": ["v"]}]
        }));
        let change = |kind, name: &str, change| RegistryChange {
            kind,
            name: name.to_owned(),
            change,
        };
        assert_eq!(
            registry_changes(&before, &after),
            [
                change(ObjectKind::Entity, "a", ChangeKind::Deleted),
                change(ObjectKind::Entity, "b", ChangeKind::Updated),
                change(ObjectKind::Entity, "c", ChangeKind::Created),
            ]
        );
        assert!(registry_changes(&after, &after).is_empty());
    }
}
