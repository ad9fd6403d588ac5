//! Reconciles per second for 200 realms against the test bed's real Keycloak.
//!
//! Run with `make bench` (needs `make testbed-up`). Prints:
//! - how long 200 new realms take to become Ready (creation throughput);
//! - steady-state reconciles per second with every realm resynced as fast
//!   as the operator can, and the share of that time spent waiting for
//!   Keycloak;
//! - Keycloak writes in steady state (must be 0);
//! - the operator's resident memory;
//! - for one realm declaring 10 and then 100 roles (one in ten composite,
//!   default roles set): time to Ready, and the Keycloak requests and
//!   writes of one steady-state resync, to show how they grow with size;
//! - the same for one realm using every section (roles, groups, client
//!   scopes, scope lists, flow bindings, required actions), 10 and then 100
//!   of each collection.

use std::time::{Duration, Instant};

use anyhow::Result;
use futures::stream::{self, StreamExt, TryStreamExt};
use keycloak_operator_e2e::bench::{SteadyState, wait_all_gone, wait_all_ready, writes};
use keycloak_operator_e2e::operator::{Operator, OperatorOptions};
use keycloak_operator_e2e::resources::{apply, delete, install_crds, keycloak, realm, realm_kind};
use keycloak_operator_e2e::testbed::{TestNamespace, kube_client, unique_name};
use kube::api::{Api, DynamicObject};
use serde_json::json;

const REALMS: usize = 200;
const WINDOW: Duration = Duration::from_secs(30);

fn operator_options(ns: &str, resync: &str) -> OperatorOptions {
    let mut options = OperatorOptions::standard(&[ns]);
    options.resync = resync.into();
    options.extra = "workers: 16\n".into();
    options
}

#[tokio::main]
async fn main() -> Result<()> {
    let client = kube_client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, "bench").await?;
    let ns = ns.name().to_owned();
    keycloak(&client, &ns, "sso", None, &[]).await?;
    let prefix = unique_name("b");

    // `REALM_BENCH=roles` measures only the realm with roles,
    // `REALM_BENCH=sections` only the realm using every section.
    let only = std::env::var("REALM_BENCH").unwrap_or_default();
    if only.is_empty() {
        many_realms(&client, &ns, &prefix).await?;
    }
    if only != "sections" {
        for roles in ROLE_SCALES {
            let what = format!(
                "one realm with {roles} roles ({} composite) and default roles",
                roles / 10
            );
            one_realm(
                &client,
                &ns,
                &prefix,
                &format!("roles{roles}"),
                &what,
                roles_spec(roles),
            )
            .await?;
        }
    }
    if only != "roles" {
        for size in SECTION_SCALES {
            let what = format!(
                "one realm with every section ({size} roles, {size} groups, {size} client scopes, \
                 scope lists, flow bindings, 3 required actions)"
            );
            one_realm(
                &client,
                &ns,
                &prefix,
                &format!("sections{size}"),
                &what,
                sections_spec(size),
            )
            .await?;
        }
    }
    Ok(())
}

/// Creation and steady state of [`REALMS`] realms.
async fn many_realms(client: &kube::Client, ns: &str, prefix: &str) -> Result<()> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &realm_kind());
    // Creation: 200 realms applied at once.
    let creating = Operator::start(&operator_options(ns, "10m")).await?;
    let applied = Instant::now();
    stream::iter(0..REALMS)
        .map(|i| {
            let (client, ns, prefix) = (client.clone(), ns.to_owned(), prefix.to_owned());
            async move {
                let manifest = realm(
                    &format!("r{i}"),
                    &format!("{prefix}-{i}"),
                    "sso",
                    None,
                    json!({"deletionPolicy": "Delete", "displayName": format!("Realm {i}")}),
                );
                apply(&client, &realm_kind(), &ns, manifest).await
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    let created = wait_all_ready(&api, REALMS, Duration::from_secs(900)).await?;
    let creation = applied.elapsed().max(created);
    let created_metrics = creating.metrics().await?;
    drop(creating);

    // Steady state: a fresh operator resyncing every realm as often as it
    // can (period shorter than one pass), with nothing to change.
    let steady = Operator::start(&operator_options(ns, "100ms")).await?;
    let steady_state = SteadyState::measure(&steady, &api, REALMS, "keycloak.wasmop.dev/KeycloakRealm", WINDOW).await?;

    println!("realms benchmark: {REALMS} KeycloakRealms against the test bed's Keycloak, 16 workers");
    println!(
        "creation: {REALMS} realms Ready {:.1}s after applying them = {:.1} realms/s ({} Keycloak writes)",
        creation.as_secs_f64(),
        REALMS as f64 / creation.as_secs_f64(),
        writes(&created_metrics)
    );
    steady_state.print();
    drop(steady);

    // Clean up: the realms go from Keycloak with their resources.
    let cleaning = Operator::start(&operator_options(ns, "10m")).await?;
    stream::iter(0..REALMS)
        .map(|i| {
            let (client, ns) = (client.clone(), ns.to_owned());
            async move { delete(&client, &realm_kind(), &ns, &format!("r{i}")).await }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    wait_all_gone(&api, Duration::from_secs(600)).await?;
    drop(cleaning);

    Ok(())
}

/// Sizes of the one-realm-with-roles figure.
const ROLE_SCALES: [usize; 2] = [10, 100];

/// The roles section of a realm with `count` roles: every tenth is a
/// composite of the one before it and of a client role.
fn roles_spec(count: usize) -> serde_json::Value {
    let roles: Vec<serde_json::Value> = (0..count)
        .map(|i| {
            let mut role = json!({"name": format!("role-{i}"), "description": format!("Role {i}"),
                                  "attributes": {"index": [i.to_string()]}});
            if i % 10 == 9 {
                role["composites"] = json!({"realmRoles": [format!("role-{}", i - 1)],
                                            "clientRoles": {"account": ["view-profile"]}});
            }
            role
        })
        .collect();
    json!({"deletionPolicy": "Delete", "roles": roles,
           "defaultRoles": {"realmRoles": ["role-0", "offline_access"]}})
}

/// Sizes of the realm-using-every-section figure.
const SECTION_SCALES: [usize; 2] = [10, 100];

/// A realm using every section the operator types, `size` of each
/// collection: roles (as [`roles_spec`]), groups in trees of ten (a parent
/// and nine subgroups, each mapping a role), client scopes with a mapper
/// each, both scope lists, two flow bindings and three required actions.
fn sections_spec(size: usize) -> serde_json::Value {
    let mut spec = roles_spec(size);
    let groups: Vec<serde_json::Value> = (0..size)
        .map(|i| {
            let path = if i % 10 == 0 {
                format!("/team-{}", i / 10)
            } else {
                format!("/team-{}/squad-{i}", i / 10)
            };
            json!({"path": path, "attributes": {"index": [i.to_string()]},
                   "roles": {"realmRoles": [format!("role-{i}")]}})
        })
        .collect();
    let scopes: Vec<serde_json::Value> = (0..size)
        .map(|i| {
            json!({"name": format!("scope-{i}"), "description": format!("Scope {i}"),
                   "attributes": {"include.in.token.scope": "true"},
                   "protocolMappers": [{"name": "audience", "protocolMapper": "oidc-audience-mapper",
                                        "config": {"included.custom.audience": format!("api-{i}")}}]})
        })
        .collect();
    spec["groups"] = json!(groups);
    spec["defaultGroups"] = json!(["/team-0"]);
    spec["clientScopes"] = json!(scopes);
    spec["defaultClientScopes"] = json!(["basic", "profile", "roles", "scope-0"]);
    spec["optionalClientScopes"] = json!(["email", "offline_access", "scope-1"]);
    spec["flowBindings"] = json!({"browser": "browser", "directGrant": "direct grant"});
    spec["requiredActions"] = json!([
        {"alias": "TERMS_AND_CONDITIONS", "enabled": true, "defaultAction": true, "priority": 5},
        {"alias": "CONFIGURE_TOTP", "enabled": true},
        {"alias": "VERIFY_EMAIL", "enabled": true},
    ]);
    spec
}

/// Creation time and steady-state requests of one realm declaring `spec`.
async fn one_realm(
    client: &kube::Client,
    ns: &str,
    prefix: &str,
    name: &str,
    what: &str,
    spec: serde_json::Value,
) -> Result<()> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &realm_kind());
    let creating = Operator::start(&operator_options(ns, "10m")).await?;
    let applied = Instant::now();
    let manifest = realm(name, &format!("{prefix}-{name}"), "sso", None, spec);
    apply(client, &realm_kind(), ns, manifest).await?;
    wait_all_ready(&api, 1, Duration::from_secs(600)).await?;
    let creation = applied.elapsed();
    let created_metrics = creating.metrics().await?;
    drop(creating);

    let steady = Operator::start(&operator_options(ns, "100ms")).await?;
    let state = SteadyState::measure(
        &steady,
        &api,
        1,
        "keycloak.wasmop.dev/KeycloakRealm",
        Duration::from_secs(10),
    )
    .await?;
    println!(
        "{what}: Ready {:.1}s after applying ({} Keycloak writes); \
         steady state {:.2} Keycloak requests per resync, {} writes",
        creation.as_secs_f64(),
        writes(&created_metrics),
        state.requests / state.reconciles.max(1.0),
        state.writes
    );
    drop(steady);
    let cleaning = Operator::start(&operator_options(ns, "10m")).await?;
    delete(client, &realm_kind(), ns, name).await?;
    wait_all_gone(&api, Duration::from_secs(300)).await?;
    drop(cleaning);
    Ok(())
}
