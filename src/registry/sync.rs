//! Keeping a table's feature view in step with the table after each write.
//!
//! A view that a save registered (`inferred`) is the registry's own guess, so it follows the
//! table: its entities, timestamp and features are derived again from the columns on every
//! write, and a table deleted and created again with other columns gets the new view. A view
//! declared with `apply` is the user's: a write never changes it, but checks it, and the
//! write's answer lists what no longer matches and which feature services that breaks.

use std::collections::BTreeMap;

use serde::Serialize;

use super::merge::{merge, resolve_ref};
use super::{Columns, Invalid, RegistryError, services_of};
use crate::model::{Entity, FeatureView, GroupName, RegistryDocument, TableName, ValueType};

/// What the registry needs to know of a table just written.
#[derive(Debug, Clone)]
pub struct TableFacts {
    /// Its group.
    pub group: GroupName,
    /// Its name (= the view's name).
    pub name: TableName,
    /// Its columns and served types, in table order.
    pub columns: Columns,
    /// Its entity key columns (empty when none).
    pub entity_key: Vec<String>,
    /// Its event timestamp column.
    pub timestamp_field: Option<String>,
}

/// How a write wants its view handled.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Register a view when the table has none (saves through the API); when false, existing
    /// views are still followed or checked (the demo, which declares its own views).
    pub register: bool,
    /// TTL of a view this write registers or follows; `None` keeps the view's.
    pub ttl_seconds: Option<u64>,
    /// Created-timestamp column of a view this write registers or follows; `None` keeps the
    /// view's while the table still has that column.
    pub created_timestamp_field: Option<String>,
    /// Who made the table write, recorded in the registry version a change of the view makes.
    pub writer: super::Writer,
}

/// What a write did to its table's view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncStatus {
    /// This write registered the view.
    Registered,
    /// The view a save registered earlier now follows the table's new columns.
    Updated,
    /// The view matches the table.
    Unchanged,
    /// The view no longer matches the table; see `mismatches`.
    Mismatch,
    /// The table has no view and this write could not register one; the message says why.
    NotRegistered,
}

/// The answer about the view of a table just written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewSync {
    /// What happened.
    pub status: SyncStatus,
    /// The view (the table's name).
    pub feature_view: String,
    /// What happened and, when something is wrong, how to fix it.
    pub message: String,
    /// Entities this write registered.
    pub entities_registered: Vec<String>,
    /// How the view and the table disagree (or why the view could not be registered).
    pub mismatches: Vec<Invalid>,
    /// Feature services that reference what no longer matches.
    pub broken_feature_services: Vec<String>,
}

impl ViewSync {
    fn new(status: SyncStatus, table: &TableFacts, message: String) -> Self {
        Self {
            status,
            feature_view: table.name.to_string(),
            message,
            entities_registered: Vec::new(),
            mismatches: Vec::new(),
            broken_feature_services: Vec::new(),
        }
    }
}

/// The document to write (if any) and the answer, for `table` just written over `current`.
pub(super) fn sync(
    current: &RegistryDocument,
    table: &TableFacts,
    options: &SyncOptions,
) -> Result<(Option<RegistryDocument>, ViewSync), RegistryError> {
    match current
        .feature_views
        .iter()
        .find(|v| v.name == table.name.as_str())
    {
        None if options.register => register(current, table, options),
        None => Ok((
            None,
            ViewSync::new(
                SyncStatus::NotRegistered,
                table,
                format!("table {} has no feature view", table.name),
            ),
        )),
        Some(view) if view.inferred => follow(current, view, table, options),
        Some(view) => Ok((None, check(current, view, table)?)),
    }
}

/// Why `table` cannot key a view on its own, if it cannot.
fn unkeyable(table: &TableFacts) -> Vec<Invalid> {
    let mut why = Vec::new();
    if table.entity_key.is_empty() {
        why.push(Invalid {
            field: "entity_key".into(),
            message: "the table has no entity key: declare `entity_key`, name the key column \
                      `entity_id`, or register an entity whose join key is one of its columns \
                      (POST /registry/apply) and save again"
                .into(),
        });
    }
    if table.timestamp_field.is_none() {
        why.push(Invalid {
            field: "timestamp_field".into(),
            message: "the table has no timestamp field: declare `timestamp_field` or name the \
                      column `event_timestamp`"
                .into(),
        });
    }
    why
}

/// The view `table` implies, keeping what `previous` says beyond the columns, and the
/// entities it needs that are not registered yet.
fn derived_view(
    current: &RegistryDocument,
    table: &TableFacts,
    options: &SyncOptions,
    timestamp_field: String,
    previous: Option<&FeatureView>,
) -> Result<(FeatureView, Vec<Entity>), Vec<Invalid>> {
    let mut new_entities = Vec::new();
    let mut names = Vec::new();
    for key in &table.entity_key {
        if let Some(entity) = current.entities.iter().find(|e| e.join_key() == key) {
            names.push(entity.name.clone());
            continue;
        }
        let dtype = table
            .columns
            .iter()
            .find(|(c, _)| c == key)
            .map_or("missing", |(_, t)| t.as_str());
        let value_type = if dtype.starts_with("int") || dtype.starts_with("uint") {
            ValueType::Int64
        } else if dtype == "string" {
            ValueType::String
        } else {
            return Err(vec![Invalid {
                field: "entity_key".into(),
                message: format!(
                    "key column {key:?} is {dtype}; an entity's values are integers or strings"
                ),
            }]);
        };
        names.push(key.clone());
        new_entities.push(Entity {
            name: key.clone(),
            join_key: None,
            value_type,
            description: String::new(),
        });
    }
    let is_timestamp = |column: &str| {
        table
            .columns
            .iter()
            .any(|(c, t)| c == column && t.starts_with("timestamp"))
    };
    let created_timestamp_field = options.created_timestamp_field.clone().or_else(|| {
        previous
            .and_then(|v| v.created_timestamp_field.clone())
            .filter(|c| is_timestamp(c))
    });
    let view = FeatureView {
        name: table.name.to_string(),
        group: table.group.to_string(),
        entities: names,
        timestamp_field,
        created_timestamp_field,
        ttl_seconds: options
            .ttl_seconds
            .or_else(|| previous.and_then(|v| v.ttl_seconds)),
        features: Vec::new(),
        description: previous.map_or_else(
            || "registered when the table was first saved".to_owned(),
            |v| v.description.clone(),
        ),
        owner: previous.map(|v| v.owner.clone()).unwrap_or_default(),
        tags: previous.map(|v| v.tags.clone()).unwrap_or_default(),
        push_source: previous.and_then(|v| v.push_source.clone()),
        inferred: true,
    };
    Ok((view, new_entities))
}

/// Merges `view` and `entities` into `current`, validated against `table` alone.
fn merged_with(
    current: &RegistryDocument,
    table: &TableFacts,
    view: FeatureView,
    entities: Vec<Entity>,
) -> Result<Result<RegistryDocument, Vec<Invalid>>, RegistryError> {
    let doc = RegistryDocument {
        entities,
        feature_views: vec![view],
        feature_services: Vec::new(),
    };
    let columns_of = |g: &GroupName, n: &TableName| {
        (g == &table.group && n == &table.name).then(|| table.columns.clone())
    };
    match merge(current, doc, &columns_of) {
        Ok((merged, _)) => Ok(Ok(merged)),
        Err(RegistryError::Invalid(errors)) => {
            Ok(Err(errors.into_iter().map(unprefixed).collect()))
        }
        Err(e) => Err(e),
    }
}

/// `feature_views[0].features[1]` → `features[1]`: the answer is about one view.
fn unprefixed(invalid: Invalid) -> Invalid {
    Invalid {
        field: invalid
            .field
            .strip_prefix("feature_views[0].")
            .map_or_else(|| invalid.field.clone(), str::to_owned),
        message: invalid.message,
    }
}

fn messages(invalid: &[Invalid]) -> String {
    invalid
        .iter()
        .map(|i| i.message.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

fn summary(view: &FeatureView) -> String {
    let features: Vec<&str> = view.features.iter().map(|f| f.name.as_str()).collect();
    format!(
        "entities {}, timestamp {}, features {}",
        view.entities.join(", "),
        view.timestamp_field,
        features.join(", ")
    )
}

fn register(
    current: &RegistryDocument,
    table: &TableFacts,
    options: &SyncOptions,
) -> Result<(Option<RegistryDocument>, ViewSync), RegistryError> {
    let not_registered = |why: Vec<Invalid>, hint: &str| {
        let mut answer = ViewSync::new(
            SyncStatus::NotRegistered,
            table,
            format!(
                "table {} was saved but not registered as a feature view: {}{hint}",
                table.name,
                messages(&why)
            ),
        );
        answer.mismatches = why;
        answer
    };
    let why = unkeyable(table);
    let Some(timestamp_field) = table.timestamp_field.clone().filter(|_| why.is_empty()) else {
        return Ok((None, not_registered(why, "")));
    };
    let (view, entities) = match derived_view(current, table, options, timestamp_field, None) {
        Ok(derived) => derived,
        Err(why) => return Ok((None, not_registered(why, ""))),
    };
    let registered: Vec<String> = entities.iter().map(|e| e.name.clone()).collect();
    match merged_with(current, table, view, entities)? {
        Ok(merged) => {
            let view = registered_view(&merged, table);
            let mut message = format!(
                "registered feature view {} ({})",
                table.name,
                view.map(summary).unwrap_or_default()
            );
            if !registered.is_empty() {
                message.push_str(&format!(
                    "; registered entit{} {} typed from the table",
                    if registered.len() == 1 { "y" } else { "ies" },
                    registered.join(", ")
                ));
            }
            let mut answer = ViewSync::new(SyncStatus::Registered, table, message);
            answer.entities_registered = registered;
            Ok((Some(merged), answer))
        }
        Err(why) => Ok((
            None,
            not_registered(
                why,
                "; write the key column with the registered entity's type, or declare another \
                 entity_key, or register the view with POST /registry/apply naming entities \
                 that fit",
            ),
        )),
    }
}

fn registered_view<'d>(doc: &'d RegistryDocument, table: &TableFacts) -> Option<&'d FeatureView> {
    doc.feature_views
        .iter()
        .find(|v| v.name == table.name.as_str())
}

fn follow(
    current: &RegistryDocument,
    view: &FeatureView,
    table: &TableFacts,
    options: &SyncOptions,
) -> Result<(Option<RegistryDocument>, ViewSync), RegistryError> {
    let mismatch = |why: Vec<Invalid>| {
        let mut answer = ViewSync::new(
            SyncStatus::Mismatch,
            table,
            format!(
                "feature view {} (registered by an earlier save) cannot follow the table and was \
                 kept as it was: {}",
                table.name,
                messages(&why)
            ),
        );
        answer.mismatches = why;
        answer.broken_feature_services = services_of(current, &view.name);
        answer
    };
    // A file another tool wrote declares no key or timestamp: the view's own still apply
    // while the table has those columns.
    let mut table = table.clone();
    let columns = table.columns.clone();
    let has = |column: &str| columns.iter().any(|(c, _)| c == column);
    if table.entity_key.is_empty() {
        let keys: Vec<String> = view
            .entities
            .iter()
            .map(|name| {
                current
                    .entities
                    .iter()
                    .find(|e| &e.name == name)
                    .map_or_else(|| name.clone(), |e| e.join_key().to_owned())
            })
            .collect();
        if keys.iter().all(|k| has(k)) {
            table.entity_key = keys;
        }
    }
    if table.timestamp_field.is_none() && has(&view.timestamp_field) {
        table.timestamp_field = Some(view.timestamp_field.clone());
    }
    let table = &table;
    let why = unkeyable(table);
    let Some(timestamp_field) = table.timestamp_field.clone().filter(|_| why.is_empty()) else {
        return Ok((None, mismatch(why)));
    };
    let (derived, entities) =
        match derived_view(current, table, options, timestamp_field, Some(view)) {
            Ok(derived) => derived,
            Err(why) => return Ok((None, mismatch(why))),
        };
    let registered: Vec<String> = entities.iter().map(|e| e.name.clone()).collect();
    let merged = match merged_with(current, table, derived, entities)? {
        Ok(merged) => merged,
        Err(why) => return Ok((None, mismatch(why))),
    };
    if merged == *current {
        let answer = ViewSync::new(
            SyncStatus::Unchanged,
            table,
            format!("feature view {} matches the table", table.name),
        );
        return Ok((None, answer));
    }
    let views: BTreeMap<String, FeatureView> = merged
        .feature_views
        .iter()
        .map(|v| (v.name.clone(), v.clone()))
        .collect();
    let broken: Vec<String> = merged
        .feature_services
        .iter()
        .filter(|s| s.features.iter().any(|r| resolve_ref(r, &views).is_err()))
        .map(|s| s.name.clone())
        .collect();
    let mut message = format!(
        "feature view {} follows the table's new columns ({})",
        table.name,
        registered_view(&merged, table)
            .map(summary)
            .unwrap_or_default()
    );
    if !broken.is_empty() {
        message.push_str(&format!(
            "; feature service(s) {} reference features the table no longer has: re-apply them",
            broken.join(", ")
        ));
    }
    let mut answer = ViewSync::new(SyncStatus::Updated, table, message);
    answer.entities_registered = registered;
    answer.broken_feature_services = broken;
    Ok((Some(merged), answer))
}

/// Checks a declared view against the table; never changes it.
fn check(
    current: &RegistryDocument,
    view: &FeatureView,
    table: &TableFacts,
) -> Result<ViewSync, RegistryError> {
    let why = match merged_with(current, table, view.clone(), Vec::new())? {
        Ok(_) => {
            return Ok(ViewSync::new(
                SyncStatus::Unchanged,
                table,
                format!("feature view {} matches the table", table.name),
            ));
        }
        Err(why) => why,
    };
    // Only some features changed: the services that use those (or the whole view) break.
    // Anything else (a key, the timestamp) breaks every service of the view.
    let features: Option<Vec<&str>> = why
        .iter()
        .map(|i| {
            let index = i.field.strip_prefix("features[")?.split(']').next()?;
            let index: usize = index.parse().ok()?;
            view.features.get(index).map(|f| f.name.as_str())
        })
        .collect();
    let broken = match features {
        Some(features) => current
            .feature_services
            .iter()
            .filter(|s| {
                s.features.iter().any(|r| match r.split_once(':') {
                    Some((v, f)) => v == view.name && features.contains(&f),
                    None => *r == view.name,
                })
            })
            .map(|s| s.name.clone())
            .collect(),
        None => services_of(current, &view.name),
    };
    let mut message = format!(
        "feature view {} (declared with apply) no longer matches the table: {}; re-apply the \
         view (POST /registry/apply) or restore the columns",
        table.name,
        messages(&why)
    );
    if !broken.is_empty() {
        message.push_str(&format!(
            "; this breaks feature service(s) {}",
            broken.join(", ")
        ));
    }
    let mut answer = ViewSync::new(SyncStatus::Mismatch, table, message);
    answer.mismatches = why;
    answer.broken_feature_services = broken;
    Ok(answer)
}
