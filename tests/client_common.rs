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

/// Applies clients `0..count` of [`scale_client`] at once (32 in flight),
/// in the background, so that a fault can land while they are applied.
pub fn apply_scale_clients(bed: &RealmBed, count: usize, prefix: &str) -> tokio::task::JoinHandle<Result<()>> {
    use futures::stream::{self, StreamExt, TryStreamExt};
    let (client, ns, prefix) = (bed.client.clone(), bed.ns().to_owned(), prefix.to_owned());
    tokio::spawn(async move {
        stream::iter(0..count)
            .map(|i| {
                let (client, ns) = (client.clone(), ns.clone());
                let manifest = scale_client(i, &prefix);
                async move { apply(&client, &client_kind(), &ns, manifest).await }
            })
            .buffer_unordered(32)
            .try_collect::<Vec<_>>()
            .await?;
        Ok(())
    })
}

/// What Keycloak holds against the client resources of a [`RealmBed`].
#[derive(Debug, Default)]
pub struct Census {
    /// Client resources in the namespace.
    pub resources: usize,
    /// Clients in the realm (Keycloak's own included).
    pub in_keycloak: usize,
    /// clientIds Keycloak holds more than once.
    pub duplicates: Vec<String>,
    /// Clients carrying a `KeycloakClient` owner that no resource matches
    /// (gone, another UID, or another clientId).
    pub orphans: Vec<String>,
    /// Resources without exactly one client of theirs, owned by them.
    pub missing: Vec<String>,
    /// Resources whose credentials Secret does not hold Keycloak's secret.
    pub stale_secrets: Vec<String>,
}

impl Census {
    /// Counts the realm's clients and compares each resource's credentials
    /// Secret (`<name>-credentials`) with `GET .../client-secret`.
    pub async fn take(bed: &RealmBed) -> Result<Self> {
        use std::collections::{BTreeMap, HashMap};

        use futures::stream::{self, StreamExt};
        use keycloak_operator_e2e::resources::secret_data;
        use kube::api::{Api, DynamicObject, ListParams};

        let owner = |key: &str| format!("keycloak.wasmop.dev/owner-{key}");
        let api: Api<DynamicObject> = Api::namespaced_with(bed.client.clone(), bed.ns(), &client_kind());
        // name -> (uid, clientId)
        let resources: BTreeMap<String, (String, String)> = api
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .map(|o| {
                let client_id = o.data["spec"]["clientId"].as_str().unwrap_or_default().to_owned();
                (
                    o.metadata.name.unwrap_or_default(),
                    (o.metadata.uid.unwrap_or_default(), client_id),
                )
            })
            .collect();
        let max = resources.len() + 100;
        let held = bed
            .admin
            .get_json(&format!("/realms/{}/clients?first=0&max={max}", bed.realm))
            .await?
            .unwrap_or_default();
        let held = held.as_array().cloned().unwrap_or_default();
        if held.len() >= max {
            bail!("the realm holds {max} clients or more: the page may be truncated");
        }
        let mut census = Census {
            resources: resources.len(),
            in_keycloak: held.len(),
            ..Census::default()
        };
        let mut by_client_id: HashMap<&str, Vec<&Value>> = HashMap::new();
        for c in &held {
            by_client_id
                .entry(c["clientId"].as_str().unwrap_or_default())
                .or_default()
                .push(c);
        }
        census.duplicates = by_client_id
            .iter()
            .filter(|(_, clients)| clients.len() > 1)
            .map(|(id, clients)| format!("{id} x{}", clients.len()))
            .collect();
        for c in &held {
            let attributes = &c["attributes"];
            if attributes[owner("kind")] != "KeycloakClient" {
                continue;
            }
            let name = attributes[owner("name")].as_str().unwrap_or_default();
            let matched = attributes[owner("namespace")] == bed.ns()
                && resources.get(name).is_some_and(|(uid, client_id)| {
                    attributes[owner("uid")] == uid.as_str() && c["clientId"] == client_id.as_str()
                });
            if !matched {
                census.orphans.push(format!(
                    "{} (id {}, owner {}/{name} uid {})",
                    c["clientId"],
                    c["id"],
                    attributes[owner("namespace")],
                    attributes[owner("uid")]
                ));
            }
        }
        let mut ours = Vec::new();
        for (name, (uid, client_id)) in &resources {
            let clients = by_client_id
                .get(client_id.as_str())
                .map(Vec::as_slice)
                .unwrap_or_default();
            match clients {
                [one] if one["attributes"][owner("uid")] == uid.as_str() => {
                    ours.push((name.clone(), one["id"].as_str().unwrap_or_default().to_owned()));
                }
                _ => census
                    .missing
                    .push(format!("{name} ({client_id}): {} clients", clients.len())),
            }
        }
        let stale: Vec<Option<String>> = stream::iter(ours)
            .map(|(name, id)| async move {
                let in_keycloak = bed
                    .admin
                    .get_json(&format!("/realms/{}/clients/{id}/client-secret", bed.realm))
                    .await?
                    .and_then(|s| s["value"].as_str().map(str::to_owned));
                let data = secret_data(&bed.client, bed.ns(), &format!("{name}-credentials")).await?;
                let in_secret = data.as_ref().and_then(|d| d.get("client-secret").cloned());
                let fresh = in_keycloak.is_some() && in_keycloak == in_secret;
                // The values are secrets: name only which side is off.
                Ok::<_, anyhow::Error>((!fresh).then(|| {
                    format!(
                        "{name}: Keycloak has {}, the Secret {}",
                        if in_keycloak.is_some() { "a secret" } else { "none" },
                        match (&data, &in_secret) {
                            (None, _) => "is missing",
                            (Some(_), None) => "has no client-secret",
                            (Some(_), Some(_)) => "holds another",
                        }
                    )
                }))
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_>>()?;
        census.stale_secrets = stale.into_iter().flatten().collect();
        Ok(census)
    }

    /// Fails, naming the first offenders, unless each of `expected`
    /// resources has exactly one client, no owned client is orphaned and
    /// every Secret holds Keycloak's secret.
    pub fn check(&self, expected: usize) -> Result<()> {
        let few = |v: &[String]| v.iter().take(10).cloned().collect::<Vec<_>>().join("; ");
        if self.resources != expected {
            bail!("{} client resources, expected {expected}", self.resources);
        }
        if !self.duplicates.is_empty() {
            bail!(
                "{} clientIds held twice: {}",
                self.duplicates.len(),
                few(&self.duplicates)
            );
        }
        if !self.orphans.is_empty() {
            bail!("{} orphaned clients: {}", self.orphans.len(), few(&self.orphans));
        }
        if !self.missing.is_empty() {
            bail!(
                "{} resources without their one client: {}",
                self.missing.len(),
                few(&self.missing)
            );
        }
        if !self.stale_secrets.is_empty() {
            bail!(
                "{} stale credentials Secrets: {}",
                self.stale_secrets.len(),
                few(&self.stale_secrets)
            );
        }
        Ok(())
    }

    /// One line of figures.
    pub fn print(&self) {
        println!(
            "census: {} resources, {} clients in the realm, {} duplicates, {} orphans, {} missing, {} stale Secrets",
            self.resources,
            self.in_keycloak,
            self.duplicates.len(),
            self.orphans.len(),
            self.missing.len(),
            self.stale_secrets.len()
        );
    }
}

/// Deletes the realm first (its clients go with it), then the client
/// resources, which then need no cleanup in Keycloak: the fast way for many.
pub async fn teardown_realm_first(bed: &RealmBed) -> Result<()> {
    use keycloak_operator_e2e::bench::wait_all_gone;
    use kube::api::{Api, DynamicObject, ListParams};
    delete(&bed.client, &realm_kind(), bed.ns(), REALM).await?;
    wait_gone(&bed.client, &realm_kind(), bed.ns(), REALM, Duration::from_secs(120)).await?;
    let api: Api<DynamicObject> = Api::namespaced_with(bed.client.clone(), bed.ns(), &client_kind());
    api.delete_collection(&Default::default(), &ListParams::default())
        .await?;
    wait_all_gone(&api, Duration::from_secs(300)).await
}
