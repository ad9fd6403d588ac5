//! The client's credentials in Kubernetes: the user-supplied secret it may
//! come from, and the Secret the operator writes for the application.
//!
//! Secret values pass through here and go only into a Keycloak request body
//! or the Secret's data: never into logs, status, Events or messages.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use keycloak_operator_api::{KeycloakClient, KeycloakClientSpec};
use keycloak_operator_sdk::error::{invalid_spec, transient};
use keycloak_operator_sdk::{ReconcileError, secrets};
use serde_json::{Map, Value, json};

/// Suffix of the default Secret name.
const DEFAULT_SUFFIX: &str = "-credentials";

/// Keys of the written Secret.
pub mod keys {
    /// The client's `clientId`.
    pub const CLIENT_ID: &str = "client-id";
    /// The client secret.
    pub const CLIENT_SECRET: &str = "client-secret";
    /// The realm's issuer URL.
    pub const ISSUER_URL: &str = "issuer-url";
    /// The token endpoint.
    pub const TOKEN_ENDPOINT: &str = "token-endpoint";
    /// The OpenID discovery document.
    pub const DISCOVERY_URL: &str = "discovery-url";
}

/// The name of the Secret the operator writes for `resource`.
pub fn secret_name(resource: &KeycloakClient) -> Result<String, ReconcileError> {
    if let Some(name) = &resource.spec.credentials.secret_name {
        return Ok(name.clone());
    }
    let name = format!(
        "{}{DEFAULT_SUFFIX}",
        resource.metadata.name.as_deref().unwrap_or_default()
    );
    if name.len() > 253 {
        return Err(invalid_spec(
            "InvalidSpec",
            "the resource's name is too long for the default credentials Secret name; set spec.credentials.secretName",
        ));
    }
    Ok(name)
}

/// The client secret the user supplies through `credentials.clientSecretRef`,
/// if any. A missing Secret or key is waited for (GitOps may apply it later).
pub fn supplied_secret(spec: &KeycloakClientSpec) -> Result<Option<String>, ReconcileError> {
    let Some(reference) = &spec.credentials.client_secret_ref else {
        return Ok(None);
    };
    match secrets::read(&reference.name, &reference.key)? {
        Some(value) if !value.is_empty() => Ok(Some(value)),
        _ => Err(transient(
            "CredentialsSecretNotFound",
            format!(
                "credentials.clientSecretRef names key {:?} of Secret {:?}, which does not exist or is empty",
                reference.key, reference.name
            ),
        )),
    }
}

/// Where an application finds the realm, from Keycloak's base URL.
pub struct Endpoints {
    /// `{url}/realms/{realm}`.
    pub issuer: String,
    /// The token endpoint.
    pub token: String,
    /// The discovery document.
    pub discovery: String,
}

impl Endpoints {
    /// The endpoints of `realm` on the Keycloak at `url`.
    pub fn new(url: &str, realm: &str) -> Self {
        let issuer = format!("{}/realms/{realm}", url.trim_end_matches('/'));
        Endpoints {
            token: format!("{issuer}/protocol/openid-connect/token"),
            discovery: format!("{issuer}/.well-known/openid-configuration"),
            issuer,
        }
    }
}

/// The Secret an application mounts: everything it needs to obtain tokens.
pub fn secret(name: &str, client_id: &str, client_secret: Option<&str>, endpoints: &Endpoints) -> Value {
    let mut data = Map::new();
    let mut put = |key: &str, value: &str| {
        data.insert(key.to_owned(), json!(STANDARD.encode(value)));
    };
    put(keys::CLIENT_ID, client_id);
    if let Some(client_secret) = client_secret {
        put(keys::CLIENT_SECRET, client_secret);
    }
    put(keys::ISSUER_URL, &endpoints.issuer);
    put(keys::TOKEN_ENDPOINT, &endpoints.token);
    put(keys::DISCOVERY_URL, &endpoints.discovery);
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": "Opaque",
        "data": data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_holds_base64_credentials_and_endpoints() {
        let endpoints = Endpoints::new("http://kc:8080/", "shop");
        assert_eq!(endpoints.issuer, "http://kc:8080/realms/shop");
        let secret = secret("app-credentials", "app", Some("s3cret"), &endpoints);
        assert_eq!(secret["kind"], "Secret");
        assert_eq!(secret["data"]["client-id"], "YXBw");
        assert_eq!(secret["data"]["client-secret"], "czNjcmV0");
        let token = STANDARD
            .decode(secret["data"]["token-endpoint"].as_str().unwrap_or_default())
            .unwrap_or_default();
        assert_eq!(
            String::from_utf8_lossy(&token),
            "http://kc:8080/realms/shop/protocol/openid-connect/token"
        );
    }

    #[test]
    fn the_default_name_derives_from_the_resource() {
        let resource: KeycloakClient = serde_json::from_value(json!({
            "apiVersion": "keycloak.wasmop.dev/v1alpha1", "kind": "KeycloakClient",
            "metadata": {"name": "orders"},
            "spec": {"realmRef": {"name": "r"}, "clientId": "orders"},
        }))
        .expect("valid resource");
        assert_eq!(secret_name(&resource).ok().as_deref(), Some("orders-credentials"));
    }
}
