//! Validating a document of definitions and merging it into the registry (upsert by name).
//! Pure: it sees the current document and a table's columns through a callback, so the same
//! merge runs on whatever version of the file a writer read under the lock.

use std::collections::{BTreeMap, HashMap};

use super::{ApplyReport, Columns, Expected, Invalid, RegistryError, referenced_view};
use crate::model::Entity;
use crate::model::{
    FeatureDef, FeatureRef, FeatureService, FeatureView, GroupName, RegistryDocument, TableName,
    ValueType,
};

/// Validates `doc` against `current` and the tables, and returns `current` with `doc` merged
/// in, and what changed; nothing when any definition is invalid (then every failure is listed).
pub(super) fn merge(
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
        for (view, version) in &service.table_versions {
            let field = format!("feature_services[{i}].table_versions.{view}");
            if !service.features.iter().any(|r| referenced_view(r) == *view) {
                invalid(
                    field.clone(),
                    format!(
                        "the service reads no feature of view {view:?}, so it cannot pin its version"
                    ),
                );
            }
            if *version == 0 {
                invalid(field, "table versions start at 1".into());
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

/// The change of an apply of `doc`, as `Registry::update_tagged` runs it: a merge into the
/// current document. It remembers its last attempt, because being run again means another
/// writer committed first (s3 kind): an object of `doc` that the winner changed from the
/// base of that attempt, to something else than this apply would have written, is a race
/// between two definitions, and the later one must not silently replace the earlier one
/// that its sender never saw. That loser fails with `Conflict` and writes nothing; winners
/// that changed other objects, or the same one identically, are merged into as before.
pub(super) fn applying<'a>(
    doc: RegistryDocument,
    expected: Expected<'a>,
    columns_of: &'a dyn Fn(&GroupName, &TableName) -> Option<Columns>,
) -> impl FnMut(&RegistryDocument) -> Result<(Option<RegistryDocument>, ApplyReport), RegistryError> + 'a
{
    let mut last: Option<(RegistryDocument, RegistryDocument)> = None;
    move |current| {
        super::check_expected(current, expected)?;
        if let Some((base, ours)) = &last
            && let Some((kind, name)) = raced_object(&doc, base, ours, current)
        {
            return Err(RegistryError::Conflict { kind, name });
        }
        let (merged, report) = merge(current, doc.clone(), columns_of)?;
        last = Some((current.clone(), merged.clone()));
        Ok((Some(merged), report))
    }
}

/// The first object of `doc` that `theirs` (the winner of a race) changed from `base` (what
/// the losing attempt merged into) to something else than `ours` (what it would have
/// written), as (kind, name).
pub(super) fn raced_object(
    doc: &RegistryDocument,
    base: &RegistryDocument,
    ours: &RegistryDocument,
    theirs: &RegistryDocument,
) -> Option<(&'static str, String)> {
    fn raced<T: PartialEq>(
        kind: &'static str,
        names: impl Iterator<Item = String>,
        of: impl Fn(&RegistryDocument, &str) -> Option<T>,
        (base, ours, theirs): (&RegistryDocument, &RegistryDocument, &RegistryDocument),
    ) -> Option<(&'static str, String)> {
        names
            .into_iter()
            .find(|name| {
                let winner = of(theirs, name);
                winner != of(base, name) && winner != of(ours, name)
            })
            .map(|name| (kind, name))
    }
    let docs = (base, ours, theirs);
    raced(
        "entity",
        doc.entities.iter().map(|e| e.name.clone()),
        |d, n| d.entities.iter().find(|e| e.name == n).cloned(),
        docs,
    )
    .or_else(|| {
        raced(
            "feature view",
            doc.feature_views.iter().map(|v| v.name.clone()),
            |d, n| d.feature_views.iter().find(|v| v.name == n).cloned(),
            docs,
        )
    })
    .or_else(|| {
        raced(
            "feature service",
            doc.feature_services.iter().map(|s| s.name.clone()),
            |d, n| d.feature_services.iter().find(|s| s.name == n).cloned(),
            docs,
        )
    })
}

/// Checks one service reference (`view` or `view:feature`) against the views.
pub(super) fn resolve_ref(
    reference: &str,
    views: &BTreeMap<String, FeatureView>,
) -> Result<(), String> {
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

pub(super) fn key_type_fits(value_type: ValueType, dtype: &str) -> bool {
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
