//! Deleting registered objects: each delete is one registry write (and version), refused
//! while other objects still use the one it names.

use super::{
    Committed, Expected, Referrers, Registry, RegistryError, Writer, check_expected, position,
    services_of,
};
use crate::model::{Entity, FeatureService, FeatureView, RegistryOperation};

/// The deletes of the registry facade.
impl Registry {
    /// Deletes a feature view; refused while a feature service uses it.
    pub fn delete_view(
        &self,
        name: &str,
        expected: Expected<'_>,
        writer: &Writer,
    ) -> Result<(FeatureView, Committed), RegistryError> {
        self.update(RegistryOperation::DeleteFeatureView, writer, |current| {
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
        writer: &Writer,
    ) -> Result<(FeatureService, Committed), RegistryError> {
        self.update(RegistryOperation::DeleteFeatureService, writer, |current| {
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
        writer: &Writer,
    ) -> Result<(Entity, Committed), RegistryError> {
        self.update(RegistryOperation::DeleteEntity, writer, |current| {
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
