//! Importing a Feast repository: the JSON `feast registry-dump` prints, mapped onto a
//! registry document, with every object that cannot be mapped listed with the reason.
//!
//! Pure: it reads the dump and asks the caller which group a table already lives in; the
//! store applies the plan and copies the data (`store::feast_import`). What maps:
//! - entities with an int64 or string join key (Feast `INT32` widens to int64);
//! - feature views: features with their dtypes, entities, TTL (zero is forever), the batch
//!   source's timestamp and created-timestamp columns, description, owner, tags, and the
//!   name of a push source feeding the view; the table is the view's name, in the group a
//!   table of that name already has, else the group [`infer_group`] guesses, as for any save;
//! - feature services: each projection's features as `view:feature` references.
//!
//! What does not (listed in [`FeastPlan::unmappable`]): stream feature views, on-demand
//! feature views, views on entity-less or unmapped entities, views whose source renames
//! columns, features of types featurestore does not store (lists, bytes, maps), and services
//! that alias a view, rename join keys, or read anything not mapped. Lossy details of mapped
//! objects (an entity's tags, a service's tags) are listed in [`FeastPlan::notes`].

mod dump;
mod types;

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::model::{
    Entity, FeatureDef, FeatureService, FeatureView, GroupName, RegistryDocument, TableName,
    infer_group,
};
use dump::{Dump, Source, ViewSpec};

/// Why a dump cannot be imported at all.
#[derive(Debug, thiserror::Error)]
pub enum FeastImportError {
    /// Not the JSON `feast registry-dump` prints.
    #[error("not a Feast registry dump (the JSON `feast registry-dump` prints): {0}")]
    Malformed(String),
    /// A view's local Parquet file cannot be read; nothing was written.
    #[error("feature view {view:?}: cannot read its data file {path}: {message}")]
    DataFile {
        /// The view.
        view: String,
        /// The file, as resolved.
        path: String,
        /// What is wrong with it.
        message: String,
    },
}

/// One Feast object that is not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"kind": "on-demand feature view", "name": "trip_fare", "reason": "computed per request by a Python transformation, which featurestore does not run"}))]
pub struct Unmappable {
    /// `entity`, `feature view`, `feature`, `stream feature view`, `on-demand feature view`,
    /// `feature service`.
    pub kind: String,
    /// Its name (`view:feature` for a feature).
    pub name: String,
    /// Why it is not imported.
    pub reason: String,
}

impl Unmappable {
    fn new(kind: &str, name: &str, reason: impl Into<String>) -> Self {
        Self {
            kind: kind.to_owned(),
            name: name.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Where a mapped view's rows are, as the dump says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSource {
    /// A local Parquet file, relative to the Feast repository or absolute.
    LocalParquet(String),
    /// Anywhere else (a warehouse, an object store URL): not copied, and why.
    Elsewhere(String),
}

/// The table a mapped view reads, and how to fill it.
#[derive(Debug, Clone)]
pub struct TableSource {
    /// The view (= table name).
    pub view: String,
    /// The table's group.
    pub group: String,
    /// Where its rows are.
    pub source: DataSource,
    /// The columns to copy with their dtypes: join keys, timestamps, then features.
    pub columns: Vec<(String, String)>,
    /// Join key columns.
    pub entity_key: Vec<String>,
    /// Event timestamp column.
    pub timestamp_field: String,
    /// Created timestamp column, if any.
    pub created_timestamp_field: Option<String>,
}

/// What a dump maps to.
#[derive(Debug, Clone)]
pub struct FeastPlan {
    /// The Feast project.
    pub project: String,
    /// The definitions to apply.
    pub document: RegistryDocument,
    /// One per view of `document`: its table and where its rows are.
    pub tables: Vec<TableSource>,
    /// What is not imported, with the reason.
    pub unmappable: Vec<Unmappable>,
    /// What is imported with a loss.
    pub notes: Vec<String>,
}

impl FeastPlan {
    /// The plan with the views of `dropped` (and the services reading them) left out, each
    /// listed in the answer with `why(view)`: used for views whose table does not exist.
    pub fn without_views(
        &mut self,
        dropped: &BTreeSet<String>,
        why: impl Fn(&str) -> String,
    ) -> Vec<Unmappable> {
        let mut skipped = Vec::new();
        self.document.feature_views.retain(|v| {
            let keep = !dropped.contains(&v.name);
            if !keep {
                skipped.push(Unmappable::new("feature view", &v.name, why(&v.name)));
            }
            keep
        });
        self.tables.retain(|t| !dropped.contains(&t.view));
        self.document.feature_services.retain(|s| {
            let missing: Vec<&str> = s
                .features
                .iter()
                .map(|r| r.split(':').next().unwrap_or(r))
                .filter(|v| dropped.contains(*v))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            if !missing.is_empty() {
                skipped.push(Unmappable::new(
                    "feature service",
                    &s.name,
                    format!(
                        "reads feature view(s) {} that are not applied",
                        missing.join(", ")
                    ),
                ));
            }
            missing.is_empty()
        });
        skipped
    }

    /// `kind name` of every object the document applies, as an apply's report names them.
    pub fn objects(&self) -> Vec<String> {
        let doc = &self.document;
        doc.entities
            .iter()
            .map(|e| format!("entity {}", e.name))
            .chain(
                doc.feature_views
                    .iter()
                    .map(|v| format!("feature view {}", v.name)),
            )
            .chain(
                doc.feature_services
                    .iter()
                    .map(|s| format!("feature service {}", s.name)),
            )
            .collect()
    }
}

/// Parses a dump.
pub fn parse(dump: serde_json::Value) -> Result<PlanInput, FeastImportError> {
    if !dump.is_object() {
        return Err(FeastImportError::Malformed(
            "expected a JSON object with \"project\", \"entities\", \"featureViews\", ...".into(),
        ));
    }
    serde_json::from_value(dump)
        .map(PlanInput)
        .map_err(|e| FeastImportError::Malformed(e.to_string()))
}

/// A parsed dump, ready to be planned.
#[derive(Debug)]
pub struct PlanInput(Dump);

/// Maps a parsed dump; `group_of(table)` is the group a table of that name already lives in.
pub fn plan(input: PlanInput, group_of: &dyn Fn(&str) -> Option<String>) -> FeastPlan {
    let dump = input.0;
    let mut unmappable = Vec::new();
    let mut notes = Vec::new();

    let mut entities: BTreeMap<String, Entity> = BTreeMap::new();
    let mut entity_errors: BTreeMap<String, String> = BTreeMap::new();
    for entity in dump.entities.into_iter().map(|o| o.spec) {
        if entity.name == "__dummy" {
            notes.push(
                "entity __dummy: Feast's placeholder for entity-less views, not imported".into(),
            );
            entity_errors.insert(entity.name, "Feast's placeholder for views without entities; a featurestore view needs an entity".into());
            continue;
        }
        let checked = entity
            .name
            .parse::<TableName>()
            .map_err(|e| e.to_string().replace("table name", "entity name"))
            .and_then(|_| types::key_type(entity.value_type.as_deref()));
        let value_type = match checked {
            Ok(t) => t,
            Err(reason) => {
                unmappable.push(Unmappable::new("entity", &entity.name, reason.clone()));
                entity_errors.insert(entity.name, reason);
                continue;
            }
        };
        if !entity.tags.is_empty() || !entity.owner.is_empty() {
            notes.push(format!(
                "entity {}: its tags and owner are not kept (featurestore entities have a description only)",
                entity.name
            ));
        }
        let join_key = entity
            .join_key
            .filter(|k| !k.is_empty() && *k != entity.name);
        entities.insert(
            entity.name.clone(),
            Entity {
                name: entity.name,
                join_key,
                value_type,
                description: entity.description,
            },
        );
    }

    let mut views = Vec::new();
    let mut tables = Vec::new();
    let mut view_errors: BTreeMap<String, String> = BTreeMap::new();
    for spec in dump.feature_views.into_iter().map(|o| o.spec) {
        match map_view(
            spec,
            &entities,
            &entity_errors,
            group_of,
            &mut unmappable,
            &mut notes,
        ) {
            Ok((view, table)) => {
                views.push(view);
                tables.push(table);
            }
            Err((name, reason)) => {
                unmappable.push(Unmappable::new("feature view", &name, reason.clone()));
                view_errors.insert(name, reason);
            }
        }
    }
    for spec in dump.stream_feature_views.into_iter().map(|o| o.spec) {
        let source = spec
            .stream_source
            .as_ref()
            .map(|s| format!("{} ({})", s.name, s.kind.as_deref().unwrap_or("stream")))
            .unwrap_or_else(|| "a stream".into());
        let reason = format!(
            "a stream feature view fed by {source}: featurestore has no stream ingestion; push its rows with POST /push to a view instead"
        );
        unmappable.push(Unmappable::new(
            "stream feature view",
            &spec.name,
            reason.clone(),
        ));
        view_errors.insert(spec.name, reason);
    }
    for spec in dump.on_demand_feature_views.into_iter().map(|o| o.spec) {
        let reason =
            "computed per request by a Python transformation, which featurestore does not run";
        unmappable.push(Unmappable::new(
            "on-demand feature view",
            &spec.name,
            reason,
        ));
        view_errors.insert(spec.name, reason.into());
    }

    let mut services = Vec::new();
    for spec in dump.feature_services.into_iter().map(|o| o.spec) {
        match map_service(&spec, &views, &view_errors) {
            Ok(service) => {
                if !spec.tags.is_empty() || !spec.owner.is_empty() {
                    notes.push(format!(
                        "feature service {}: its tags and owner are not kept",
                        spec.name
                    ));
                }
                services.push(service);
            }
            Err(reason) => unmappable.push(Unmappable::new("feature service", &spec.name, reason)),
        }
    }

    FeastPlan {
        project: dump.project,
        document: RegistryDocument {
            entities: entities.into_values().collect(),
            feature_views: views,
            feature_services: services,
        },
        tables,
        unmappable,
        notes,
    }
}

/// A view and its table, or the view's name and why it cannot be mapped. Features whose type
/// cannot be stored are left out of the view and listed one by one.
fn map_view(
    spec: ViewSpec,
    entities: &BTreeMap<String, Entity>,
    entity_errors: &BTreeMap<String, String>,
    group_of: &dyn Fn(&str) -> Option<String>,
    unmappable: &mut Vec<Unmappable>,
    notes: &mut Vec<String>,
) -> Result<(FeatureView, TableSource), (String, String)> {
    let name = spec.name.clone();
    let fail = |reason: String| (name.clone(), reason);
    let table: TableName = spec.name.parse().map_err(|e| fail(format!("{e}")))?;
    let group = group_of(&spec.name).unwrap_or_else(|| infer_group(&spec.name).to_owned());
    group
        .parse::<GroupName>()
        .map_err(|e| fail(format!("group {group:?}: {e}")))?;
    let mut keys = Vec::new();
    for entity in &spec.entities {
        match (entities.get(entity), entity_errors.get(entity)) {
            (Some(e), _) => keys.push((e.join_key().to_owned(), e.value_type)),
            (None, Some(why)) => {
                return Err(fail(format!("entity {entity:?} is not imported: {why}")));
            }
            (None, None) => return Err(fail(format!("entity {entity:?} is not in the dump"))),
        }
    }
    if keys.is_empty() {
        return Err(fail(
            "it has no entity; a featurestore view needs one".into(),
        ));
    }
    let Some(batch) = spec.batch_source else {
        return Err(fail("it has no batch source".into()));
    };
    if !batch.field_mapping.is_empty() {
        return Err(fail(format!(
            "its source {} renames columns (field_mapping), which the import does not do; rename them in the data and drop the mapping",
            batch.name
        )));
    }
    if batch.timestamp_field.is_empty() {
        return Err(fail(format!(
            "its source {} names no timestamp field",
            batch.name
        )));
    }
    let ttl_seconds = types::ttl_seconds(spec.ttl.as_deref()).map_err(fail)?;
    let mut features = Vec::new();
    for column in &spec.features {
        match types::feature_dtype(column.value_type.as_deref()) {
            Ok(dtype) => features.push(FeatureDef {
                name: column.name.clone(),
                dtype: Some(dtype.to_owned()),
            }),
            Err(reason) => unmappable.push(Unmappable::new(
                "feature",
                &format!("{}:{}", spec.name, column.name),
                format!("{reason}; the view is imported without it"),
            )),
        }
    }
    if features.is_empty() {
        return Err(fail(
            "none of its features has a type featurestore stores".into(),
        ));
    }
    let push_source = match &spec.stream_source {
        Some(s) if s.kind.as_deref() == Some("PUSH_SOURCE") => Some(s.name.clone()),
        Some(s) => {
            notes.push(format!(
                "feature view {}: its stream source {} is not connected; the view serves what its table holds",
                spec.name, s.name
            ));
            None
        }
        None => None,
    };
    if !spec.online {
        notes.push(format!(
            "feature view {}: Feast serves it offline only; featurestore serves every view online too",
            spec.name
        ));
    }
    let created = Some(batch.created_timestamp_column.clone()).filter(|c| !c.is_empty());
    let key_columns: Vec<String> = keys.iter().map(|(k, _)| k.clone()).collect();
    let mut columns: Vec<(String, String)> = keys
        .iter()
        .map(|(k, t)| {
            let dtype = match t {
                crate::model::ValueType::Int64 => "int64",
                crate::model::ValueType::String => "string",
            };
            (k.clone(), dtype.to_owned())
        })
        .collect();
    for field in std::iter::once(&batch.timestamp_field).chain(created.iter()) {
        columns.push((field.clone(), "timestamp[us, UTC]".into()));
    }
    columns.extend(
        features
            .iter()
            .map(|f| (f.name.clone(), f.dtype.clone().unwrap_or_default())),
    );
    let view = FeatureView {
        name: table.to_string(),
        group: group.clone(),
        entities: spec.entities.clone(),
        timestamp_field: batch.timestamp_field.clone(),
        created_timestamp_field: created.clone(),
        ttl_seconds,
        features,
        description: spec.description,
        owner: spec.owner,
        tags: spec.tags,
        push_source,
        inferred: false,
    };
    let source = data_source(&batch);
    Ok((
        view,
        TableSource {
            view: table.to_string(),
            group,
            source,
            columns,
            entity_key: key_columns,
            timestamp_field: batch.timestamp_field,
            created_timestamp_field: created,
        },
    ))
}

/// Whether the import can copy a batch source's rows.
fn data_source(batch: &Source) -> DataSource {
    let kind = batch.kind.as_deref().unwrap_or("");
    let Some(file) = batch.file_options.as_ref().filter(|_| kind == "BATCH_FILE") else {
        return DataSource::Elsewhere(format!(
            "its batch source {} is {}, not a file",
            batch.name,
            if kind.is_empty() {
                "of an unknown kind"
            } else {
                kind
            }
        ));
    };
    let parquet = match &file.file_format {
        None => true,
        Some(format) => format.get("parquetFormat").is_some(),
    };
    if !parquet {
        return DataSource::Elsewhere(format!("its batch source {} is not Parquet", batch.name));
    }
    let uri = file.uri.strip_prefix("file://").unwrap_or(&file.uri);
    if uri.is_empty() || uri.contains("://") {
        return DataSource::Elsewhere(format!(
            "its batch source {} is at {:?}, not a local file",
            batch.name, file.uri
        ));
    }
    DataSource::LocalParquet(uri.to_owned())
}

/// A service's references, or why it cannot be mapped: every projection must name a mapped
/// view, keep the view's name and join keys, and take only mapped features.
fn map_service(
    spec: &dump::ServiceSpec,
    views: &[FeatureView],
    view_errors: &BTreeMap<String, String>,
) -> Result<FeatureService, String> {
    spec.name
        .parse::<TableName>()
        .map_err(|e| e.to_string().replace("table name", "service name"))?;
    let mut features = Vec::new();
    for projection in &spec.features {
        let name = &projection.feature_view_name;
        let Some(view) = views.iter().find(|v| &v.name == name) else {
            return Err(match view_errors.get(name) {
                Some(why) => format!("it reads {name}, which is not imported ({why})"),
                None => format!("it reads {name}, which is not in the dump"),
            });
        };
        if !projection.feature_view_name_alias.is_empty() {
            return Err(format!(
                "it renames view {name} to {:?}; featurestore services name features by their view",
                projection.feature_view_name_alias
            ));
        }
        if !projection.join_key_map.is_empty() {
            return Err(format!(
                "it renames join keys of view {name}, which featurestore services do not"
            ));
        }
        let columns: Vec<&str> = if projection.feature_columns.is_empty() {
            view.features.iter().map(|f| f.name.as_str()).collect()
        } else {
            projection
                .feature_columns
                .iter()
                .map(|c| c.name.as_str())
                .collect()
        };
        for column in columns {
            if !view.features.iter().any(|f| f.name == column) {
                return Err(format!("it reads {name}:{column}, which is not imported"));
            }
            features.push(format!("{name}:{column}"));
        }
    }
    if features.is_empty() {
        return Err("it reads no feature".into());
    }
    Ok(FeatureService {
        name: spec.name.clone(),
        features,
        description: spec.description.clone(),
        table_versions: BTreeMap::new(),
    })
}

#[cfg(test)]
mod tests;
