//! What a component must be to be loaded: a well-formed kind, no more than
//! it was granted, the instance scope only for the `Keycloak` kind, child
//! and related kinds the host allows, and a CRD the host can report on.

use std::collections::BTreeSet;
use std::path::Path;

use super::component::{LoadError, RuntimeSettings};
use super::model::{Capability, Description, KeycloakScope};

/// Namespaced kinds a component may create as children by default. RBAC
/// kinds are deliberately absent: a component must not grant permissions.
pub fn default_child_kinds() -> BTreeSet<String> {
    [
        "v1/ConfigMap",
        "v1/Secret",
        "v1/Service",
        "apps/v1/Deployment",
        "apps/v1/StatefulSet",
        "policy/v1/PodDisruptionBudget",
        "networking.k8s.io/v1/Ingress",
        "networking.k8s.io/v1/NetworkPolicy",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

/// Kinds of related objects a component may see by default: the Pods of
/// its workloads (their status explains a failing rollout).
pub fn default_related_kinds() -> BTreeSet<String> {
    ["v1/Pod".to_owned()].into()
}

pub(super) fn admit(
    d: &Description,
    grants: &BTreeSet<Capability>,
    child_grants: Option<&BTreeSet<String>>,
    settings: &RuntimeSettings,
    path: &Path,
) -> Result<(), LoadError> {
    let invalid = |message: String| LoadError::InvalidDescription {
        path: path.to_owned(),
        message,
    };
    let dns_label = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
    };
    if !dns_label(&d.group) || !dns_label(&d.plural) || d.kind.is_empty() || d.versions.is_empty() {
        return Err(invalid(format!(
            "describe must name a group, kind, lower-case plural and at least one version (got group {:?}, kind {:?}, plural {:?}, versions {:?})",
            d.group, d.kind, d.plural, d.versions
        )));
    }
    let missing: Vec<String> = d
        .capabilities
        .iter()
        .filter(|c| !grants.contains(c))
        .map(ToString::to_string)
        .chain(
            ungranted_child_kinds(d, child_grants)
                .into_iter()
                .map(|kind| format!("child kind {kind}")),
        )
        .collect();
    if !missing.is_empty() {
        return Err(LoadError::NotGranted {
            path: path.to_owned(),
            missing: missing.join(", "),
        });
    }
    if d.keycloak_scope != KeycloakScope::None && !d.capabilities.contains(&Capability::KeycloakAdmin) {
        return Err(invalid("a Keycloak scope needs the keycloak-admin capability".into()));
    }
    if d.keycloak_scope == KeycloakScope::Instance && (d.group != keycloak_operator_api::GROUP || d.kind != "Keycloak")
    {
        return Err(invalid(format!(
            "only the {}/Keycloak kind may have the instance scope",
            keycloak_operator_api::GROUP
        )));
    }
    if let Some(crd) = &d.crd {
        super::crd_check::check_crd(crd).map_err(invalid)?;
    }
    for related in &d.related_kinds {
        let key = format!("{}/{}", related.api_version, related.kind);
        if !settings.allowed_related_kinds.contains(&key) {
            return Err(invalid(format!(
                "related kind {key} is not allowed (allowed: {})",
                settings
                    .allowed_related_kinds
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    for child in &d.child_kinds {
        let key = format!("{}/{}", child.api_version, child.kind);
        if !settings.allowed_child_kinds.contains(&key) {
            return Err(invalid(format!(
                "child kind {key} is not allowed (allowed: {})",
                settings
                    .allowed_child_kinds
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok(())
}

/// The child kinds a description names that `granted` leaves out (none when
/// everything the host allows is granted).
pub(super) fn ungranted_child_kinds(description: &Description, granted: Option<&BTreeSet<String>>) -> Vec<String> {
    let Some(granted) = granted else {
        return Vec::new();
    };
    description
        .child_kinds
        .iter()
        .map(|k| format!("{}/{}", k.api_version, k.kind))
        .filter(|key| !granted.contains(key))
        .collect()
}
