//! Given-steps of the scale story and benchmark: one `Keycloak`, ten
//! `KeycloakRealm`s, and confidential clients spread over them, each with a
//! redirect URI, a protocol mapper and a credentials Secret.

// The story and the benchmark each use a part of these.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::future::try_join_all;
use futures::stream::{self, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use keycloak_operator_e2e::bench::{delete_all, wait_all_gone};
use keycloak_operator_e2e::resources::{
    apply, client_kind, install_crds, keycloak, keycloak_client, realm, realm_kind, wait_gone, wait_ready,
};
use keycloak_operator_e2e::testbed::{KeycloakAdmin, TestNamespace, kube_client, unique_name};
use kube::api::{Api, DynamicObject};
use serde_json::{Value, json};

/// Realms the clients are spread over.
pub const REALMS: usize = 10;

/// How many resources are applied at once (the concurrency of a GitOps
/// tool's apply of a large directory).
pub const APPLY_CONCURRENCY: usize = 32;

/// The owner attributes the client component stamps on what it creates.
const OWNER_KIND: &str = "keycloak.wasmop.dev/owner-kind";
const OWNER_NAMESPACE: &str = "keycloak.wasmop.dev/owner-namespace";
const OWNER_NAME: &str = "keycloak.wasmop.dev/owner-name";

/// A namespace with a `Keycloak` (`sso`) and [`REALMS`] realm resources
/// `r0`…`r9` whose Keycloak realms are deleted with them.
pub struct ScaleBed {
    /// Kubernetes, as the cluster admin.
    pub client: kube::Client,
    /// Keycloak, as its admin.
    pub admin: KeycloakAdmin,
    /// The namespace.
    pub ns: TestNamespace,
    /// The realms' names in Keycloak, by resource index.
    pub realms: Vec<String>,
}

/// The realm resource client `i` belongs to.
pub fn realm_of(i: usize) -> String {
    format!("r{}", i % REALMS)
}

/// Client number `i`: its resource is `c<i>`, its clientId `<prefix>-<i>`.
pub fn scale_client(i: usize, prefix: &str) -> Value {
    keycloak_client(
        &format!("c{i}"),
        &format!("{prefix}-{i}"),
        &realm_of(i),
        None,
        json!({
            "redirectUris": [format!("https://app-{i}.example.com/*")],
            "protocolMappers": [{"name": "tenant", "protocolMapper": "oidc-hardcoded-claim-mapper",
                                 "config": {"claim.name": "tenant", "claim.value": format!("t{i}")}}],
        }),
    )
}

impl ScaleBed {
    /// Creates the namespace, the `Keycloak` and the realm resources. Not
    /// waited for.
    pub async fn create(prefix: &str) -> Result<Self> {
        let client = kube_client().await?;
        install_crds(&client).await?;
        let ns = TestNamespace::create(&client, prefix).await?;
        keycloak(&client, ns.name(), "sso", None, &[]).await?;
        let mut realms = Vec::with_capacity(REALMS);
        for i in 0..REALMS {
            let name = unique_name(&format!("{prefix}{i}"));
            apply(
                &client,
                &realm_kind(),
                ns.name(),
                realm(&realm_of(i), &name, "sso", None, json!({"deletionPolicy": "Delete"})),
            )
            .await?;
            realms.push(name);
        }
        Ok(ScaleBed {
            client,
            admin: KeycloakAdmin::connect().await?,
            ns,
            realms,
        })
    }

    /// The namespace's name.
    pub fn ns(&self) -> &str {
        self.ns.name()
    }

    /// The `KeycloakClient`s of the namespace.
    pub fn clients(&self) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), self.ns(), &client_kind())
    }

    /// Waits until every realm resource is Ready.
    pub async fn realms_ready(&self) -> Result<()> {
        try_join_all((0..REALMS).map(|i| {
            let client = self.client.clone();
            async move { wait_ready(&client, &realm_kind(), self.ns(), &realm_of(i)).await }
        }))
        .await?;
        Ok(())
    }

    /// Applies clients `0..count` at once, [`APPLY_CONCURRENCY`] requests in
    /// flight.
    pub async fn apply_clients(&self, count: usize, prefix: &str) -> Result<()> {
        stream::iter(0..count)
            .map(|i| async move { apply(&self.client, &client_kind(), self.ns(), scale_client(i, prefix)).await })
            .buffer_unordered(APPLY_CONCURRENCY)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(())
    }

    /// Every client Keycloak holds in realm `index`.
    pub async fn keycloak_clients(&self, index: usize) -> Result<Vec<Value>> {
        let list = self
            .admin
            .get_json(&format!("/realms/{}/clients?first=0&max=100000", self.realms[index]))
            .await?
            .context("the realm exists")?;
        Ok(list.as_array().cloned().unwrap_or_default())
    }

    /// Checks what Keycloak and the API server hold for clients `0..count`:
    /// exactly one Keycloak client per resource, owned by it; no client
    /// stamped as ours without a resource; each resource's Secret holding
    /// the secret Keycloak has.
    pub async fn check_one_owned_client_each(&self, count: usize, prefix: &str) -> Result<()> {
        try_join_all((0..REALMS).map(|index| self.check_realm(index, count, prefix))).await?;
        Ok(())
    }

    async fn check_realm(&self, index: usize, count: usize, prefix: &str) -> Result<()> {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), self.ns());
        let realm = &self.realms[index];
        let held = self.keycloak_clients(index).await?;
        let mut by_client_id: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
        for client in &held {
            by_client_id
                .entry(client["clientId"].as_str().unwrap_or_default())
                .or_default()
                .push(client);
        }
        let ours = held
            .iter()
            .filter(|c| c["attributes"][OWNER_KIND] == "KeycloakClient")
            .count();
        let expected: Vec<usize> = (0..count).filter(|i| i % REALMS == index).collect();
        if ours != expected.len() {
            bail!(
                "realm {realm} holds {ours} clients owned by a KeycloakClient, expected {}",
                expected.len()
            );
        }
        for i in expected {
            let client_id = format!("{prefix}-{i}");
            let found = by_client_id
                .get(client_id.as_str())
                .map(Vec::as_slice)
                .unwrap_or_default();
            let [client] = found else {
                bail!("Keycloak holds {} clients {client_id:?}, expected 1", found.len());
            };
            let owner = &client["attributes"];
            if owner[OWNER_NAMESPACE] != self.ns() || owner[OWNER_NAME] != format!("c{i}") {
                bail!("client {client_id:?} is not owned by resource c{i}: {owner}");
            }
            let id = client["id"].as_str().context("client id")?;
            let secret = self
                .admin
                .get_json(&format!("/realms/{realm}/clients/{id}/client-secret"))
                .await?
                .context("the client's secret")?;
            let mounted = secrets.get(&format!("c{i}-credentials")).await?;
            let value = mounted
                .data
                .as_ref()
                .and_then(|d| d.get("client-secret"))
                .map(|v| String::from_utf8_lossy(&v.0).into_owned());
            if value.as_deref() != secret["value"].as_str() {
                bail!("the Secret c{i}-credentials does not hold the secret Keycloak has for {client_id:?}");
            }
        }
        Ok(())
    }

    /// Deletes the realms (their clients go with them), then the client
    /// resources, whose cleanup then has nothing left to delete.
    pub async fn teardown(&self) -> Result<()> {
        let realms: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), self.ns(), &realm_kind());
        delete_all(&realms).await?;
        for i in 0..REALMS {
            wait_gone(
                &self.client,
                &realm_kind(),
                self.ns(),
                &realm_of(i),
                Duration::from_secs(180),
            )
            .await?;
        }
        let clients = self.clients();
        delete_all(&clients).await?;
        wait_all_gone(&clients, Duration::from_secs(600)).await
    }
}
