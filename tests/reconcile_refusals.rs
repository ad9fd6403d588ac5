//! Bad input that passes admission: the CRDs cannot know which Keycloaks,
//! Secrets, client scopes or roles exist, or what Keycloak refuses, so such
//! mistakes are caught by a reconcile and reported in the resource's `Ready`
//! condition, with a stable reason and a message naming the culprit. The
//! rows complete the admission table of `tests/admission.rs`; run with
//! `--nocapture` to print them.

use std::time::Duration;

use anyhow::{Context, Result};
use keycloak_operator_e2e::operator::{Component, Operator, OperatorOptions};
use keycloak_operator_e2e::resources::{
    apply, client_kind, condition, install_crds, keycloak, keycloak_client, keycloak_kind, realm, realm_kind,
    wait_condition, wait_ready,
};
use keycloak_operator_e2e::testbed::{TestNamespace, TestRealm, kube_client, unique_name};
use kube::api::ApiResource;
use serde_json::{Value, json};

/// One manifest that admission accepts and a reconcile refuses.
struct Row {
    input: &'static str,
    kind: ApiResource,
    manifest: Value,
    /// `Ready=False/<Reason>`.
    want: &'static str,
    /// Must appear in the condition's message.
    fragment: &'static str,
}

#[tokio::test]
async fn input_only_a_reconcile_can_judge_is_reported_in_the_ready_condition() -> Result<()> {
    let client = kube_client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, "refusals").await?;
    let ns = ns.name();
    // (the realms' guards before the operator: dropped after it is gone,
    // so that their deletion does not race its reconciles)
    let shop = unique_name("shop");
    let _shop_cleanup = TestRealm::cleanup(&shop);
    let strict = unique_name("strict");
    let _strict_cleanup = TestRealm::cleanup(&strict);
    let composite = unique_name("composite");
    let _composite_cleanup = TestRealm::cleanup(&composite);
    let defaults = unique_name("defaults");
    let _defaults_cleanup = TestRealm::cleanup(&defaults);
    let default_groups = unique_name("defaultgroups");
    let _default_groups_cleanup = TestRealm::cleanup(&default_groups);
    let mut options = OperatorOptions::standard(&[ns]);
    options
        .components
        .push((Component::Client, &["keycloak-admin", "read-secrets"]));
    let _operator = Operator::start(&options).await?;

    // Given a Keycloak and a realm that are fine
    keycloak(&client, ns, "sso", None, &[]).await?;
    apply(
        &client,
        &realm_kind(),
        ns,
        realm("shop", &shop, "sso", None, json!({"deletionPolicy": "Delete"})),
    )
    .await?;
    wait_ready(&client, &realm_kind(), ns, "shop").await?;

    // When manifests that admission accepts but that are wrong are applied
    let rows = vec![
        Row {
            input: "`adminCredentials.secretName` naming no Secret",
            kind: keycloak_kind(),
            manifest: json!({
                "apiVersion": "keycloak.wasmop.dev/v1alpha1",
                "kind": "Keycloak",
                "metadata": {"name": "locked"},
                "spec": {"external": {
                    "url": keycloak_operator_e2e::testbed::testbed().keycloak_url,
                    "adminCredentials": {"secretName": "no-such-secret"},
                }},
            }),
            want: "Ready=False/KeycloakAuthenticationFailed",
            fragment: "no-such-secret",
        },
        Row {
            input: "`keycloakRef` naming no Keycloak",
            kind: realm_kind(),
            manifest: realm("orphan", &unique_name("orphan"), "nowhere", None, json!({})),
            want: "Ready=False/ReferenceNotFound",
            fragment: "nowhere",
        },
        Row {
            input: "`representation` Keycloak refuses (`passwordPolicy: noSuchPolicy(3)`)",
            kind: realm_kind(),
            manifest: realm(
                "strict",
                &strict,
                "sso",
                None,
                json!({"deletionPolicy": "Delete", "representation": {"passwordPolicy": "noSuchPolicy(3)"}}),
            ),
            want: "Ready=False/KeycloakRejected",
            fragment: "Password policy not found",
        },
        Row {
            input: "`roles[].composites` naming a client the realm lacks",
            kind: realm_kind(),
            manifest: realm(
                "composite",
                &composite,
                "sso",
                None,
                json!({"deletionPolicy": "Delete", "roles": [{"name": "editor", "composites": {"clientRoles": {"no-such-client": ["view"]}}}]}),
            ),
            want: "Ready=False/RoleNotFound",
            fragment: "spec.roles[0].composites.clientRoles: realm",
        },
        Row {
            input: "`defaultRoles` naming a realm role the realm lacks",
            kind: realm_kind(),
            manifest: realm(
                "defaults",
                &defaults,
                "sso",
                None,
                json!({"deletionPolicy": "Delete", "defaultRoles": {"realmRoles": ["no-such-role"]}}),
            ),
            want: "Ready=False/RoleNotFound",
            fragment: "spec.defaultRoles: the realm has no role \"no-such-role\"",
        },
        Row {
            input: "`defaultGroups` naming a group the realm lacks",
            kind: realm_kind(),
            manifest: realm(
                "default-groups",
                &default_groups,
                "sso",
                None,
                json!({"deletionPolicy": "Delete", "groups": [{"path": "/staff"}], "defaultGroups": ["/staff", "/nobody"]}),
            ),
            want: "Ready=False/GroupNotFound",
            fragment: "spec.defaultGroups[1]: realm",
        },
        Row {
            input: "`defaultClientScopes` naming a scope the realm lacks",
            kind: client_kind(),
            manifest: keycloak_client(
                "no-scope",
                "no-scope",
                "shop",
                None,
                json!({"defaultClientScopes": ["no-such-scope"]}),
            ),
            want: "Ready=False/ClientScopeNotFound",
            fragment: "no-such-scope",
        },
        Row {
            input: "`credentials.clientSecretRef` naming no Secret",
            kind: client_kind(),
            manifest: keycloak_client(
                "no-secret",
                "no-secret",
                "shop",
                None,
                json!({"credentials": {"clientSecretRef": {"name": "no-such-secret"}}}),
            ),
            want: "Ready=False/CredentialsSecretNotFound",
            fragment: "no-such-secret",
        },
        Row {
            input: "`oidc.serviceAccountRoles` naming a realm role the realm lacks",
            kind: client_kind(),
            manifest: keycloak_client(
                "no-role",
                "no-role",
                "shop",
                None,
                json!({"oidc": {"serviceAccountsEnabled": true, "serviceAccountRoles": {"realmRoles": ["no-such-role"]}}}),
            ),
            want: "Ready=False/RoleNotFound",
            fragment: "no-such-role",
        },
        Row {
            input: "`realmRef` naming no realm",
            kind: client_kind(),
            manifest: keycloak_client("lost", "lost", "no-such-realm", None, json!({})),
            want: "Ready=False/ReferenceNotFound",
            fragment: "no-such-realm",
        },
    ];
    for row in &rows {
        apply(&client, &row.kind, ns, row.manifest.clone())
            .await
            .with_context(|| format!("admission refused {}", row.input))?;
    }

    // Then each says what is wrong in its Ready condition
    let mut lines = vec![
        "| Input | Kind | Refused by | Reason: message |".to_owned(),
        "| --- | --- | --- | --- |".to_owned(),
    ];
    for row in &rows {
        let name = row.manifest["metadata"]["name"].as_str().unwrap_or_default();
        let object = wait_condition(&client, &row.kind, ns, name, row.want, Duration::from_secs(120))
            .await
            .with_context(|| row.input)?;
        let ready = condition(&object, "Ready").cloned().unwrap_or_default();
        let message = ready["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(row.fragment),
            "{}: {message:?} should mention {:?}",
            row.input,
            row.fragment
        );
        lines.push(format!(
            "| {} | `{}` | status condition | `{}`: {} |",
            row.input,
            row.kind.kind,
            ready["reason"].as_str().unwrap_or_default(),
            message.replace('|', "\\|")
        ));
    }
    println!("{}", lines.join("\n"));
    Ok(())
}
