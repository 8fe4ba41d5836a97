//! Pure domain types with no I/O: validated names, group inference, registry definitions.
//!
//! Everything that later becomes part of a filesystem path is a validated newtype here, so the
//! storage layer can build paths from them without re-checking (and without any chance of a
//! `../` reaching `std::fs`).

mod group;
mod ids;
mod names;
mod registry;
mod registry_history;

pub use group::infer_group;
pub use ids::canonical_i64;
pub use names::{GroupName, MAX_NAME_LEN, NameError, TableName};
pub use registry::{
    Entity, FeatureDef, FeatureRef, FeatureRefError, FeatureService, FeatureView, RegistryDocument,
    ValueType,
};
pub use registry_history::{
    ChangeKind, ObjectKind, RegistryChange, RegistryOperation, RegistryVersion, registry_changes,
};
