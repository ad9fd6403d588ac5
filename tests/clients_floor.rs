//! The floor of the clients benchmark: the operator's result — each
//! confidential client created in Keycloak and its secret written to a
//! Kubernetes Secret — by a bare script making the fewest calls: create the
//! client, read its secret back, create the Secret. No lookups, no
//! ownership, no status, no retries, nothing to converge on a second run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::stream::{self, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use keycloak_operator_e2e::testbed::KeycloakAdmin;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const LABEL: &str = "bench.wasmop.dev/floor";

/// What a floor run took.
pub struct FloorRun {
    /// From the first request to the last Secret written.
    pub elapsed: Duration,
    /// Requests sent to Keycloak (the admin token's aside).
    pub keycloak_requests: usize,
}

/// Creates `count` clients `<prefix>-<i>` spread over `realms` (which must
/// exist), `concurrency` at a time, each with its Secret in `namespace`.
pub async fn run(
    admin: &KeycloakAdmin,
    kube: &kube::Client,
    namespace: &str,
    realms: &[String],
    count: usize,
    prefix: &str,
    concurrency: usize,
) -> Result<FloorRun> {
    let secrets: Api<Secret> = Api::namespaced(kube.clone(), namespace);
    let requests = AtomicUsize::new(0);
    admin.token().await?;
    let started = Instant::now();
    stream::iter(0..count)
        .map(|i| {
            let (secrets, requests) = (&secrets, &requests);
            async move {
                let realm = &realms[i % realms.len()];
                let client_id = format!("{prefix}-{i}");
                let created = admin
                    .request(
                        Method::POST,
                        &format!("/realms/{realm}/clients"),
                        Some(&client(i, &client_id)),
                    )
                    .await?;
                requests.fetch_add(1, Ordering::Relaxed);
                if created.status() != StatusCode::CREATED {
                    bail!("creating {client_id}: {}", created.status());
                }
                let id = created
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| l.rsplit('/').next())
                    .context("no Location for the new client")?
                    .to_owned();
                let secret = admin
                    .get_json(&format!("/realms/{realm}/clients/{id}/client-secret"))
                    .await?
                    .context("the client's secret")?;
                requests.fetch_add(1, Ordering::Relaxed);
                let value = secret["value"].as_str().context("a secret value")?;
                let issuer = format!("{}/realms/{realm}", admin.base_url());
                let object: Secret = serde_json::from_value(json!({
                    "metadata": {"name": format!("floor-{i}-credentials"), "labels": {LABEL: "true"}},
                    "stringData": {
                        "client-id": client_id,
                        "client-secret": value,
                        "token-endpoint": format!("{issuer}/protocol/openid-connect/token"),
                        "issuer-url": issuer,
                    },
                }))?;
                secrets.create(&PostParams::default(), &object).await?;
                Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(FloorRun {
        elapsed: started.elapsed(),
        keycloak_requests: requests.into_inner(),
    })
}

/// Creates the floor's realms in Keycloak (not timed: the operator's
/// realms exist before its clients are applied too).
pub async fn create_realms(admin: &KeycloakAdmin, realms: &[String]) -> Result<()> {
    for realm in realms {
        let response = admin
            .request(Method::POST, "/realms", Some(&json!({"realm": realm, "enabled": true})))
            .await?;
        if response.status() != StatusCode::CREATED {
            bail!("creating realm {realm}: {}", response.status());
        }
    }
    Ok(())
}

/// Deletes the floor's realms and Secrets.
pub async fn clean_up(admin: &KeycloakAdmin, kube: &kube::Client, namespace: &str, realms: &[String]) -> Result<()> {
    for realm in realms {
        admin.request(Method::DELETE, &format!("/realms/{realm}"), None).await?;
    }
    let secrets: Api<Secret> = Api::namespaced(kube.clone(), namespace);
    secrets
        .delete_collection(&DeleteParams::default(), &ListParams::default().labels(LABEL))
        .await?;
    Ok(())
}

/// The same client the operator creates for resource `i`, without the
/// operator's ownership attributes.
fn client(i: usize, client_id: &str) -> Value {
    json!({
        "clientId": client_id,
        "protocol": "openid-connect",
        "publicClient": false,
        "redirectUris": [format!("https://app-{i}.example.com/*")],
        "protocolMappers": [{"name": "tenant", "protocol": "openid-connect",
                             "protocolMapper": "oidc-hardcoded-claim-mapper",
                             "config": {"claim.name": "tenant", "claim.value": format!("t{i}")}}],
    })
}
