//! Registry definitions: entities, feature views and feature services, as users declare them
//! (the same JSON document for `featurestore apply FILE` and `POST /registry/apply`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The type of an entity's join key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    /// 64-bit integer ids.
    Int64,
    /// String ids.
    String,
}

/// A named join key (`user_id`, `movie_id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "user_id", "join_key": "user_id", "value_type": "int64", "description": "A user of the service"}))]
pub struct Entity {
    /// Entity name.
    pub name: String,
    /// The column that holds it in feature views (defaults to the name).
    #[serde(default)]
    pub join_key: Option<String>,
    /// Type of its values.
    pub value_type: ValueType,
    /// What it is.
    #[serde(default)]
    pub description: String,
}

impl Entity {
    /// The join key column.
    pub fn join_key(&self) -> &str {
        self.join_key.as_deref().unwrap_or(&self.name)
    }
}

/// A feature of a view, with its type as served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeatureDef {
    /// Column name.
    pub name: String,
    /// Logical type (`int64`, `float64`, `string`, `bool`, `timestamp[us, UTC]`); filled in from
    /// the table when omitted.
    #[serde(default)]
    pub dtype: Option<String>,
}

/// A feature view: one table, its entities, its time column and its TTL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "name": "user_profile", "group": "user", "entities": ["user_id"],
    "timestamp_field": "event_timestamp", "ttl_seconds": 604800,
    "features": [{"name": "age", "dtype": "int64"}, {"name": "avg_rating", "dtype": "float64"}],
    "description": "Profile snapshots of users", "owner": "ml-team@example.com", "tags": {"team": "recsys"},
    "push_source": "user_profile_push"
}))]
pub struct FeatureView {
    /// View name = table name.
    pub name: String,
    /// The table's group.
    pub group: String,
    /// Entity names whose join keys key the view.
    pub entities: Vec<String>,
    /// Event timestamp column.
    pub timestamp_field: String,
    /// Created (ingestion) timestamp column, used to break ties.
    #[serde(default)]
    pub created_timestamp_field: Option<String>,
    /// Seconds a value stays valid; null or absent means forever.
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
    /// Features served; empty means every column that is not a key or timestamp.
    #[serde(default)]
    pub features: Vec<FeatureDef>,
    /// What it holds.
    #[serde(default)]
    pub description: String,
    /// Who owns it.
    #[serde(default)]
    pub owner: String,
    /// Free-form labels.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Name under which producers push rows to this view (`POST /push` with
    /// `push_source_name`), as Feast's push sources are named; the view's own name is always
    /// accepted too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_source: Option<String>,
    /// True when a table save registered the view (it then follows the table's columns on
    /// every save); absent for views declared with `apply`, which are only checked. Applying
    /// a view makes it declared.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inferred: bool,
}

/// A named list of features, one per model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "movie_recommendation_service", "features": ["user_profile:age", "movie_metadata"], "description": "Features of the recommender", "table_versions": {"user_profile": 7}}))]
pub struct FeatureService {
    /// Service name.
    pub name: String,
    /// Feature references: `view:feature`, or `view` for all of a view's features.
    pub features: Vec<String>,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// Table versions the service pins for training data, by view: `{"user_profile": 7}`
    /// makes training requests through this service read version 7 of `user_profile`'s
    /// table, so a model can be retrained on exactly the rows it saw. Each key must be a view
    /// the service reads, each version at least 1; views not named read their current
    /// version. Online serving always uses the current version. Absent when empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(example = json!({"user_profile": 7}))]
    pub table_versions: BTreeMap<String, u64>,
}

/// A registry document: what `apply` takes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistryDocument {
    /// Entities.
    #[serde(default)]
    pub entities: Vec<Entity>,
    /// Feature views.
    #[serde(default)]
    pub feature_views: Vec<FeatureView>,
    /// Feature services.
    #[serde(default)]
    pub feature_services: Vec<FeatureService>,
}

/// `view:feature`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FeatureRef {
    /// The view.
    pub view: String,
    /// The feature.
    pub feature: String,
}

/// Why a feature reference does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("feature reference {0:?} must look like \"view:feature\"")]
pub struct FeatureRefError(pub String);

impl FromStr for FeatureRef {
    type Err = FeatureRefError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once(':') {
            Some((view, feature))
                if !view.is_empty() && !feature.is_empty() && !feature.contains(':') =>
            {
                Ok(FeatureRef {
                    view: view.to_owned(),
                    feature: feature.to_owned(),
                })
            }
            _ => Err(FeatureRefError(text.to_owned())),
        }
    }
}

impl fmt::Display for FeatureRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.view, self.feature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_refs_need_a_view_and_a_feature() {
        let r: FeatureRef = "user_profile:age".parse().expect("valid ref");
        assert_eq!(
            (r.view.as_str(), r.feature.as_str()),
            ("user_profile", "age")
        );
        for bad in ["user_profile", ":age", "user_profile:", "a:b:c"] {
            assert!(bad.parse::<FeatureRef>().is_err(), "{bad}");
        }
    }

    #[test]
    fn documents_reject_unknown_fields() {
        let doc = r#"{"entities": [{"name": "user_id", "value_type": "int64", "typo": 1}]}"#;
        assert!(serde_json::from_str::<RegistryDocument>(doc).is_err());
    }
}
