//! The CRDs of the built-in kinds, rendered from the Rust types in the `api`
//! crate. `crds/` in the repository holds this output and a test keeps it
//! from going stale.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use keycloak_operator_api::{Keycloak, KeycloakClient, KeycloakRealm, ReconcilerComponent};
use kube::CustomResourceExt;

/// Every CRD the operator ships, by file name.
pub fn all() -> Vec<(String, CustomResourceDefinition)> {
    [
        Keycloak::crd(),
        KeycloakRealm::crd(),
        KeycloakClient::crd(),
        ReconcilerComponent::crd(),
    ]
    .into_iter()
    .map(|crd| (format!("{}.yaml", crd.metadata.name.clone().unwrap_or_default()), crd))
    .collect()
}

/// One CRD as the YAML file committed in `crds/`.
pub fn render(crd: &CustomResourceDefinition) -> Result<String, serde_yaml::Error> {
    Ok(format!(
        "# Generated from the Rust types in api/ by `keycloak-operator crds`; do not edit.\n{}",
        serde_yaml::to_string(crd)?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn committed_crds_match_the_rust_types() {
        // crds/ and the Helm chart's copy (Helm reads only its own files).
        for dir in ["../crds", "../charts/keycloak-operator/files/crds"] {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
            for (file, crd) in all() {
                let want = render(&crd).expect("render");
                let have = std::fs::read_to_string(dir.join(&file)).unwrap_or_default();
                assert!(
                    want == have,
                    "{}/{file} is stale: run `make crds` and commit the result",
                    dir.display()
                );
            }
        }
    }

    #[test]
    fn realm_name_is_immutable_and_fields_are_described() {
        let (_, crd) = all()
            .into_iter()
            .find(|(f, _)| f.starts_with("keycloakrealms"))
            .expect("realm crd");
        let yaml = render(&crd).expect("render");
        assert!(yaml.contains("realmName is immutable"));
        assert!(yaml.contains("self == oldSelf"));
        assert!(yaml.contains("subresources"));
        assert!(yaml.contains("Name of the realm in Keycloak"));
    }
}
