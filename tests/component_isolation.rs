//! A component that loops, allocates without bound, traps, or reaches outside
//! its scope fails alone: its resource says so, and every other kind keeps
//! being served by the same host process.

use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::core::v1::ConfigMap;
use keycloak_operator_e2e::operator::{Component, Operator, OperatorOptions};
use keycloak_operator_e2e::resources::{
    apply, chaos_kind, condition, delete, get, install_crds, keycloak, realm, realm_kind, wait_condition, wait_ready,
};
use keycloak_operator_e2e::testbed::{KeycloakAdmin, TestNamespace, TestRealm, eventually, kube_client, unique_name};
use serde_json::{Value, json};

fn probe(name: &str, mode: &str, realm_name: &str, children: &[&str]) -> Value {
    json!({
        "apiVersion": "test.wasmop.dev/v1",
        "kind": "ChaosProbe",
        "metadata": {"name": name},
        "spec": {"keycloakRef": {"name": "sso"}, "realmName": realm_name, "mode": mode, "children": children},
    })
}

/// How the chaos component misbehaves, one resource each.
const MODES: [&str; 7] = ["loop", "allocate", "trap", "escape", "climb", "malformed", "mistyped"];

fn options(ns: &str) -> OperatorOptions {
    let mut options = OperatorOptions::standard(&[ns]);
    options.components.push((Component::Chaos, &["keycloak-admin"]));
    options.runtime = vec!["guestTimeLimit: 1s".into(), "memoryLimitMiB: 32".into()];
    options
}

#[tokio::test]
async fn misbehaving_components_fail_alone_while_the_realm_component_keeps_serving() -> Result<()> {
    let client = kube_client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, "chaos").await?;
    let ns = ns.name();
    keycloak(&client, ns, "sso", None, &[]).await?;
    let operator = Operator::start(&options(ns)).await?;
    let admin = KeycloakAdmin::connect().await?;

    // Given components that loop, hoard memory, panic, rewrite the master
    // realm (directly, or climbing out of their own with `..` values), and
    // answer with a condition no API server accepts or a status field of a
    // type the kind's schema refuses
    let target = unique_name("chaos-target");
    // (each naming a realm of its own: one realm has one owner)
    for mode in MODES {
        apply(
            &client,
            &chaos_kind(),
            ns,
            probe(mode, mode, &format!("{target}-{mode}"), &[]),
        )
        .await?;
    }
    // And, at the same time, an ordinary realm
    let name = unique_name("bystander");
    let _name_cleanup = TestRealm::cleanup(&name);
    apply(
        &client,
        &realm_kind(),
        ns,
        realm("bystander", &name, "sso", None, json!({"deletionPolicy": "Delete"})),
    )
    .await?;

    // Then each failure is reported on its own resource with its own reason
    let expectations = [
        ("loop", "ComponentTimedOut", "time budget"),
        ("allocate", "ComponentOutOfMemory", "memory limit"),
        ("trap", "ComponentTrapped", "deliberate panic"),
        ("escape", "ScopeViolation", "master"),
        ("climb", "ScopeViolation", "dot segment"),
        ("malformed", "InvalidComponentOutput", "condition type \"not a type!\""),
        ("mistyped", "InvalidComponentOutput", "refused the status"),
    ];
    for (probe, reason, words) in expectations {
        let object = wait_condition(
            &client,
            &chaos_kind(),
            ns,
            probe,
            &format!("Ready=False/{reason}"),
            Duration::from_secs(120),
        )
        .await?;
        let message = condition(&object, "Ready")
            .and_then(|c| c["message"].as_str())
            .unwrap_or_default()
            .to_owned();
        assert!(message.contains(words), "{probe}: {message:?} should mention {words:?}");
        assert_eq!(
            condition(&object, "Stalled").map(|c| c["status"].clone()),
            Some(json!("True")),
            "{probe}"
        );
    }

    // And the realm component kept serving: the realm is Ready and exists
    wait_ready(&client, &realm_kind(), ns, "bystander").await?;
    assert!(admin.get_json(&format!("/realms/{name}")).await?.is_some());
    // And the master realm was never written on the escaping components' behalf
    // (they did send their PUTs; the host refused them before they left)
    for route in ["/realms/{realm}", "/realms/{realm}/users/{a}/{b}/{c}"] {
        assert_eq!(
            operator
                .metric(
                    "keycloak_operator_keycloak_requests_total",
                    &[("route", route), ("method", "PUT")]
                )
                .await?,
            0.0,
            "{route}"
        );
    }
    let master = admin.get_json("/realms/master").await?.unwrap_or_default();
    assert_ne!(master["displayName"], json!("hijacked"));
    // And the host is healthy
    let health = reqwest::get(format!("{}/healthz", operator.http)).await?;
    assert!(health.status().is_success());

    for mode in MODES {
        delete(&client, &chaos_kind(), ns, mode).await?;
    }
    delete(&client, &realm_kind(), ns, "bystander").await?;
    Ok(())
}

#[tokio::test]
async fn children_are_applied_with_owner_references_pruned_and_garbage_collected() -> Result<()> {
    let client = kube_client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, "children").await?;
    let ns = ns.name();
    keycloak(&client, ns, "sso", None, &[]).await?;
    let _operator = Operator::start(&options(ns)).await?;
    let configmaps: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), ns);
    let target = unique_name("children");

    // When a resource declares two children
    apply(
        &client,
        &chaos_kind(),
        ns,
        probe("parent", "children", &target, &["first", "second"]),
    )
    .await?;
    let parent = wait_ready(&client, &chaos_kind(), ns, "parent").await?;

    // Then both exist, owned by it and labelled as the operator's
    for name in ["first", "second"] {
        let child = eventually(
            "the child to exist",
            Duration::from_secs(90),
            Duration::from_millis(250),
            || async { Ok(configmaps.get_opt(name).await?) },
        )
        .await?;
        let owner = &child.metadata.owner_references.clone().unwrap_or_default()[0];
        assert_eq!(Some(owner.uid.as_str()), parent["metadata"]["uid"].as_str());
        assert_eq!(owner.controller, Some(true));
        assert_eq!(
            child
                .metadata
                .labels
                .unwrap_or_default()
                .get("app.kubernetes.io/managed-by")
                .map(String::as_str),
            Some("keycloak-operator")
        );
    }

    // When one is no longer declared
    apply(
        &client,
        &chaos_kind(),
        ns,
        probe("parent", "children", &target, &["second"]),
    )
    .await?;
    // Then it is pruned
    eventually(
        "the first child to be pruned",
        Duration::from_secs(90),
        Duration::from_millis(250),
        || async { Ok(configmaps.get_opt("first").await?.is_none().then_some(())) },
    )
    .await?;
    // And a child deleted by hand comes back
    configmaps.delete("second", &Default::default()).await?;
    eventually(
        "the second child to be re-created",
        Duration::from_secs(90),
        Duration::from_millis(250),
        || async {
            Ok(configmaps
                .get_opt("second")
                .await?
                .filter(|c| c.metadata.deletion_timestamp.is_none()))
        },
    )
    .await?;

    // When the parent is deleted, the garbage collector removes the child
    delete(&client, &chaos_kind(), ns, "parent").await?;
    eventually(
        "the child to be garbage-collected",
        Duration::from_secs(120),
        Duration::from_millis(500),
        || async { Ok(configmaps.get_opt("second").await?.is_none().then_some(())) },
    )
    .await?;
    assert!(get(&client, &chaos_kind(), ns, "parent").await?.is_none());
    Ok(())
}
