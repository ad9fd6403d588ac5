//! Given-steps shared by the `KeycloakClient` stories: a realm resource to put
//! clients in, an operator serving clients, and what an application does
//! with its credentials (a client-credentials grant, reading the token).

// Each story binary uses a part of these.
#![allow(dead_code)]

use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keycloak_operator_e2e::operator::{Component, OperatorOptions};
use keycloak_operator_e2e::resources::{
    apply, client_kind, delete, install_crds, keycloak, keycloak_client, realm, realm_kind, wait_gone, wait_ready,
};
use keycloak_operator_e2e::testbed::{KeycloakAdmin, TestNamespace, http_client, kube_client, unique_name};
use serde_json::Value;

/// Grants of the client component.
pub const CLIENT_GRANTS: &[&str] = &["keycloak-admin", "read-secrets"];

/// Name of the realm resource of a [`RealmBed`].
pub const REALM: &str = "realm";

/// The shipped components, the client component included.
pub fn client_options(namespaces: &[&str], resync: &str) -> OperatorOptions {
    let mut options = OperatorOptions::standard(namespaces);
    options.components.push((Component::Client, CLIENT_GRANTS));
    options.resync = resync.into();
    options
}

/// A namespace with a `Keycloak` (`sso`) and a `KeycloakRealm` (`realm`)
/// whose Keycloak realm is deleted with it.
pub struct RealmBed {
    /// Kubernetes, as the cluster admin.
    pub client: kube::Client,
    /// Keycloak, as its admin.
    pub admin: KeycloakAdmin,
    /// The namespace.
    pub ns: TestNamespace,
    /// The realm's name in Keycloak.
    pub realm: String,
}

impl RealmBed {
    /// Creates the namespace, the `Keycloak` and the realm resource, with
    /// `extra_realm_spec` merged into the realm's spec. Not waited for.
    pub async fn create(prefix: &str, extra_realm_spec: Value) -> Result<Self> {
        let client = kube_client().await?;
        install_crds(&client).await?;
        let ns = TestNamespace::create(&client, prefix).await?;
        keycloak(&client, ns.name(), "sso", None, &[]).await?;
        let realm_name = unique_name(prefix);
        let mut spec = serde_json::json!({"deletionPolicy": "Delete"});
        if let (Some(spec), Value::Object(extra)) = (spec.as_object_mut(), extra_realm_spec) {
            spec.extend(extra);
        }
        apply(
            &client,
            &realm_kind(),
            ns.name(),
            realm(REALM, &realm_name, "sso", None, spec),
        )
        .await?;
        Ok(RealmBed {
            client,
            admin: KeycloakAdmin::connect().await?,
            ns,
            realm: realm_name,
        })
    }

    /// The namespace's name.
    pub fn ns(&self) -> &str {
        self.ns.name()
    }

    /// Waits until the realm resource is Ready.
    pub async fn realm_ready(&self) -> Result<Value> {
        wait_ready(&self.client, &realm_kind(), self.ns(), REALM).await
    }

    /// The client with `client_id` as Keycloak holds it.
    pub async fn client_in_keycloak(&self, client_id: &str) -> Result<Option<Value>> {
        let list = self
            .admin
            .get_json(&format!("/realms/{}/clients?clientId={client_id}", self.realm))
            .await?
            .unwrap_or_default();
        Ok(list
            .as_array()
            .and_then(|clients| clients.iter().find(|c| c["clientId"] == client_id).cloned()))
    }

    /// Deletes the client resources, then the realm resource, waiting for
    /// each to be gone (their finalizers clean Keycloak up).
    pub async fn teardown(&self, clients: &[&str]) -> Result<()> {
        for name in clients {
            delete(&self.client, &client_kind(), self.ns(), name).await?;
        }
        for name in clients {
            wait_gone(&self.client, &client_kind(), self.ns(), name, Duration::from_secs(60)).await?;
        }
        delete(&self.client, &realm_kind(), self.ns(), REALM).await?;
        wait_gone(&self.client, &realm_kind(), self.ns(), REALM, Duration::from_secs(60)).await
    }
}

/// What an application does with its Secret: a client-credentials grant.
/// Returns the HTTP status and the JSON answer.
pub async fn client_credentials_grant(token_endpoint: &str, client_id: &str, secret: &str) -> Result<(u16, Value)> {
    let response = http_client()
        .post(token_endpoint)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret),
        ])
        .send()
        .await
        .with_context(|| format!("POST {token_endpoint}"))?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or_default()))
}

/// The claims of a JWT (its payload), without checking the signature: the
/// token comes straight from Keycloak's token endpoint.
pub fn jwt_claims(token: &str) -> Result<Value> {
    let Some(payload) = token.split('.').nth(1) else {
        bail!("not a JWT");
    };
    Ok(serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload)?)?)
}

/// Client number `i` of the scale test and benchmark: confidential, with a
/// redirect URI, a protocol mapper and a credentials Secret; its clientId is
/// `<prefix>-<i>`.
pub fn scale_client(i: usize, prefix: &str) -> Value {
    keycloak_client(
        &format!("c{i}"),
        &format!("{prefix}-{i}"),
        REALM,
        None,
        serde_json::json!({
            "redirectUris": [format!("https://app-{i}.example.com/*")],
            "protocolMappers": [{"name": "tenant", "protocolMapper": "oidc-hardcoded-claim-mapper",
                                 "config": {"claim.name": "tenant", "claim.value": format!("t{i}")}}],
        }),
    )
}
