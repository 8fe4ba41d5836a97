//! Types for columns saved with only nulls, from what the registry declares.

use crate::model::{RegistryDocument, TableName, ValueType};
use crate::storage::LogicalType;

/// The column types the registry knows for table `name`: its view's declared feature types,
/// and the value types of entities whose join keys it may hold. A saved column of only nulls
/// takes them instead of staying typed null.
pub(super) fn registered_types(
    registry: &RegistryDocument,
    name: &TableName,
) -> Vec<(String, LogicalType)> {
    let mut types: Vec<(String, LogicalType)> = registry
        .feature_views
        .iter()
        .filter(|v| v.name == name.as_str())
        .flat_map(|v| &v.features)
        .filter_map(|f| {
            let t = f.dtype.as_deref().and_then(LogicalType::from_dtype)?;
            Some((f.name.clone(), t))
        })
        .collect();
    types.extend(registry.entities.iter().map(|e| {
        let t = match e.value_type {
            ValueType::Int64 => LogicalType::Int64,
            ValueType::String => LogicalType::String,
        };
        (e.join_key().to_owned(), t)
    }));
    types
}
