//! Kinds the core does not ship, run as an outside author's would be: the
//! JavaScript `KeycloakUser` extension and the Rust template, each published
//! to the bed's registry, declared by digest with a `ReconcilerComponent`,
//! their CRD installed from `describe`. A user it creates logs in with a
//! password grant; spec changes, drift and deletion behave as for the
//! built-in kinds; a hostile JavaScript build fails alone.

use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Secret;
use keycloak_operator_e2e::admin_realm::AdminRealm;
use keycloak_operator_e2e::operator::{Component, Operator, OperatorOptions};
use keycloak_operator_e2e::registry::push;
use keycloak_operator_e2e::resources::{
    Declared, TEST_MANAGER, apply, client_kind, component_kind, condition, delete, get, install_crds,
    install_described_crd, keycloak, keycloak_client, kind, realm, realm_kind, secret_data, wait_condition, wait_gone,
    wait_ready,
};
use keycloak_operator_e2e::testbed::{KeycloakAdmin, TestNamespace, TestRealm, eventually, kube_client, unique_name};
use kube::Client;
use kube::api::{Api, ApiResource, Patch, PatchParams};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(120);

fn user_kind() -> ApiResource {
    kind("users.extensions.wasmop.dev/v1alpha1", "KeycloakUser", "keycloakusers")
}

fn hostile_kind() -> ApiResource {
    kind("test.wasmop.dev/v1", "HostileScript", "hostilescripts")
}

fn role_kind() -> ApiResource {
    kind("example.com/v1alpha1", "ExampleRole", "exampleroles")
}

/// Publishes `component` and declares it for `operator`'s kind `kind`, as a
/// cluster admin approves a component: by digest, with its grants; waits
/// until it serves.
async fn publish_and_declare(
    client: &Client,
    operator: &Operator,
    component: Component,
    kind: &str,
    grants: &[&str],
    limits: Value,
) -> Result<Declared> {
    let repository = unique_name("extensions").replace('_', "-");
    let pinned = push(component, &repository, "0.1.0").await?;
    let name = unique_name("extension");
    let (key, value) = &operator.component_label;
    apply(
        client,
        &component_kind(),
        "",
        json!({
            "apiVersion": "keycloak.wasmop.dev/v1alpha1",
            "kind": "ReconcilerComponent",
            "metadata": {"name": name, "labels": {key: value}},
            "spec": {"kind": kind, "oci": pinned, "grants": grants, "limits": limits},
        }),
    )
    .await?;
    let declared = Declared { name: name.clone() };
    // A 12 MB JavaScript component compiles in seconds, more on a busy machine.
    let object = wait_condition(client, &component_kind(), "", &name, "Ready=True/Serving", TIMEOUT).await?;
    assert_eq!(object["status"]["serving"]["source"], pinned.as_str());
    Ok(declared)
}

async fn password_secret(client: &Client, ns: &str, name: &str, password: &str) -> Result<()> {
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "stringData": {"password": password},
    }))?;
    Api::<Secret>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::apply(TEST_MANAGER).force(), &Patch::Apply(&secret))
        .await?;
    Ok(())
}

fn keycloak_user(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "users.extensions.wasmop.dev/v1alpha1", "kind": "KeycloakUser",
        "metadata": {"name": name}, "spec": spec,
    })
}

/// Given an operator with the built-in kinds, a `Keycloak` and a realm.
async fn a_realm(prefix: &str) -> Result<(Client, TestNamespace, Operator, String, TestRealm)> {
    let client = kube_client().await?;
    install_crds(&client).await?;
    let namespace = TestNamespace::create(&client, prefix).await?;
    let ns = namespace.name().to_owned();
    keycloak(&client, &ns, "sso", None, &[]).await?;
    let mut options = OperatorOptions::standard(&[&ns]);
    options.resync = "2s".into();
    let operator = Operator::start(&options).await?;
    let realm_name = unique_name(prefix);
    let cleanup = TestRealm::cleanup(&realm_name);
    apply(
        &client,
        &realm_kind(),
        &ns,
        realm("shop", &realm_name, "sso", None, json!({"deletionPolicy": "Delete"})),
    )
    .await?;
    wait_ready(&client, &realm_kind(), &ns, "shop").await?;
    Ok((client, namespace, operator, realm_name, cleanup))
}

#[tokio::test]
async fn a_javascript_keycloak_user_from_the_registry_logs_in_and_is_kept_converged() -> Result<()> {
    let (client, namespace, operator, realm_name, _cleanup) = a_realm("jsuser").await?;
    let ns = namespace.name();
    let admin = KeycloakAdmin::connect().await?;
    let kc = AdminRealm {
        admin: &admin,
        name: realm_name.clone(),
    };
    // Given a role and a group in the realm, and the user's first password in a Secret
    kc.send(Method::POST, "/roles", json!({"name": "shopper"})).await?;
    kc.send(Method::POST, "/groups", json!({"name": "staff"})).await?;
    let staff = kc.get("/groups?search=staff&exact=true").await?[0]["id"]
        .as_str()
        .context("group staff")?
        .to_owned();
    kc.send(
        Method::POST,
        &format!("/groups/{staff}/children"),
        json!({"name": "ops"}),
    )
    .await?;
    password_secret(&client, ns, "alice-password", "first-Passw0rd!").await?;

    // When an admin installs the extension's CRD from its describe, and
    // publishes and declares the JavaScript component by digest
    let crd = install_described_crd(&client, &Component::KeycloakUser.built()).await?;
    assert_eq!(crd, "keycloakusers.users.extensions.wasmop.dev");
    let _declared = publish_and_declare(
        &client,
        &operator,
        Component::KeycloakUser,
        "users.extensions.wasmop.dev/KeycloakUser",
        &["keycloak-admin", "read-secrets"],
        json!({}),
    )
    .await?;

    // And a user applies a KeycloakUser
    let spec = json!({
        "realmRef": {"name": "shop"},
        "username": "alice",
        "email": "Alice@Example.org",
        "emailVerified": true,
        "firstName": "Alice",
        "lastName": "Liddell",
        "attributes": {"team": ["shop"]},
        "realmRoles": ["shopper"],
        "groups": ["/staff/ops"],
        "initialPassword": {"secretName": "alice-password", "key": "password", "temporary": false},
    });
    apply(&client, &user_kind(), ns, keycloak_user("alice", spec.clone())).await?;

    // Then it is Ready, reconciled by the extension, with the user's id in status
    let object = wait_ready(&client, &user_kind(), ns, "alice").await?;
    assert_eq!(
        object["status"]["reconciledBy"]["name"],
        "wasmop-extensions/keycloak-user"
    );
    let user = kc.user("alice").await?.context("alice in Keycloak")?;
    let id = user["id"].as_str().context("user id")?.to_owned();
    assert_eq!(object["status"]["userId"], id.as_str());
    // And Keycloak holds the user as the spec says
    assert_eq!(user["email"], "alice@example.org");
    assert_eq!(
        (user["firstName"].clone(), user["lastName"].clone()),
        (json!("Alice"), json!("Liddell"))
    );
    assert_eq!(user["attributes"]["team"], json!(["shop"]));
    assert!(kc.realm_roles_of(&id).await?.contains(&"shopper".to_owned()));
    assert_eq!(kc.group_paths_of(&id).await?, vec!["/staff/ops".to_owned()]);
    // And the user logs in with the password from the Secret
    let (status, token) = kc.password_grant("alice", "first-Passw0rd!").await?;
    assert_eq!(status, StatusCode::OK, "password grant: {token}");
    assert!(token["access_token"].is_string());
    // And the password is nowhere in the resource
    let text = serde_json::to_string(&get(&client, &user_kind(), ns, "alice").await?)?;
    assert!(!text.contains("first-Passw0rd!"));

    // When the spec changes
    let mut changed = spec.clone();
    changed["lastName"] = json!("Pleasance");
    changed["groups"] = json!([]);
    apply(&client, &user_kind(), ns, keycloak_user("alice", changed)).await?;
    // Then Keycloak follows: the name changes, the group it managed is left
    eventually(
        "alice to follow the new spec",
        TIMEOUT,
        Duration::from_millis(250),
        || async {
            let user = kc.user("alice").await?.unwrap_or_default();
            let groups = kc.group_paths_of(&id).await?;
            Ok((user["lastName"] == "Pleasance" && groups.is_empty()).then_some(()))
        },
    )
    .await?;
    wait_ready(&client, &user_kind(), ns, "alice").await?;

    // When someone changes the user in Keycloak by hand
    let mut by_hand = kc.user("alice").await?.context("alice")?;
    by_hand["firstName"] = json!("Mallory");
    by_hand["enabled"] = json!(false);
    kc.send(Method::PUT, &format!("/users/{id}"), by_hand).await?;
    // Then the next resync puts it back, and the user still logs in
    eventually(
        "the drift to be corrected",
        TIMEOUT,
        Duration::from_millis(250),
        || async {
            let user = kc.user("alice").await?.unwrap_or_default();
            Ok((user["firstName"] == "Alice" && user["enabled"] == true).then_some(()))
        },
    )
    .await?;
    let (status, _) = kc.password_grant("alice", "first-Passw0rd!").await?;
    assert_eq!(status, StatusCode::OK);

    // When the resource is deleted
    delete(&client, &user_kind(), ns, "alice").await?;
    wait_gone(&client, &user_kind(), ns, "alice", TIMEOUT).await?;
    // Then the user it created is gone from Keycloak, and cannot log in
    assert!(kc.user("alice").await?.is_none());
    let (status, _) = kc.password_grant("alice", "first-Passw0rd!").await?;
    assert_ne!(status, StatusCode::OK);
    Ok(())
}

#[tokio::test]
async fn a_hostile_javascript_build_fails_alone() -> Result<()> {
    let (client, namespace, operator, realm_name, _cleanup) = a_realm("jshostile").await?;
    let ns = namespace.name();
    let admin = KeycloakAdmin::connect().await?;
    let master_before = admin.get_json("/realms/master").await?.context("master")?;

    // Given the hostile component, declared with tight limits
    install_described_crd(&client, &Component::HostileJs.built()).await?;
    let _declared = publish_and_declare(
        &client,
        &operator,
        Component::HostileJs,
        "test.wasmop.dev/HostileScript",
        &["keycloak-admin"],
        json!({"memoryMiB": 16, "guestTimeLimit": "1s"}),
    )
    .await?;

    // When it is asked to spin, to hoard memory, to reach the master realm, and to behave
    for mode in ["loop", "allocate", "escape", "ok"] {
        apply(
            &client,
            &hostile_kind(),
            ns,
            json!({"apiVersion": "test.wasmop.dev/v1", "kind": "HostileScript",
                   "metadata": {"name": mode}, "spec": {"realmRef": {"name": "shop"}, "mode": mode}}),
        )
        .await?;
    }
    // Then each misbehaviour fails that resource alone, with its reason
    for (mode, reason) in [
        ("loop", "ComponentTimedOut"),
        ("allocate", "ComponentOutOfMemory"),
        ("escape", "ScopeViolation"),
    ] {
        let object = wait_condition(
            &client,
            &hostile_kind(),
            ns,
            mode,
            &format!("Ready=False/{reason}"),
            TIMEOUT,
        )
        .await?;
        assert!(condition(&object, "Ready").is_some(), "{mode}");
    }
    // And the well-behaved resource of the same component is served
    let ok = wait_ready(&client, &hostile_kind(), ns, "ok").await?;
    assert_eq!(ok["status"]["realmExists"], true);
    // And the master realm and the built-in kinds are untouched
    let master_after = admin.get_json("/realms/master").await?.context("master")?;
    assert_eq!(master_before["enabled"], master_after["enabled"]);
    assert_eq!(master_after["enabled"], true);
    let realm = get(&client, &realm_kind(), ns, "shop").await?.unwrap_or_default();
    assert_eq!(
        condition(&realm, "Ready").map(|c| c["status"].clone()),
        Some(json!("True"))
    );
    assert!(admin.get_json(&format!("/realms/{realm_name}")).await?.is_some());
    Ok(())
}

#[tokio::test]
async fn the_rust_template_serves_its_kind_from_the_registry() -> Result<()> {
    let (client, namespace, operator, realm_name, _cleanup) = a_realm("template").await?;
    let ns = namespace.name();
    let admin = KeycloakAdmin::connect().await?;
    let kc = AdminRealm {
        admin: &admin,
        name: realm_name,
    };
    // Given the template, built as an author would, published and declared
    install_described_crd(&client, &Component::Template.built()).await?;
    let _declared = publish_and_declare(
        &client,
        &operator,
        Component::Template,
        "example.com/ExampleRole",
        &["keycloak-admin"],
        json!({}),
    )
    .await?;
    // When an ExampleRole is applied
    let role = |description: &str| {
        json!({"apiVersion": "example.com/v1alpha1", "kind": "ExampleRole", "metadata": {"name": "auditor"},
               "spec": {"realmRef": {"name": "shop"}, "name": "auditor", "description": description}})
    };
    apply(&client, &role_kind(), ns, role("reads the books")).await?;
    // Then the role is in the realm, owned by the resource
    wait_ready(&client, &role_kind(), ns, "auditor").await?;
    let held = kc.get("/roles/auditor").await?;
    assert_eq!(held["description"], "reads the books");
    assert_eq!(
        held["attributes"]["keycloak.wasmop.dev/owner-kind"],
        json!(["ExampleRole"])
    );
    // When its description changes, Keycloak follows
    apply(&client, &role_kind(), ns, role("reads and signs the books")).await?;
    eventually(
        "the description to follow",
        TIMEOUT,
        Duration::from_millis(250),
        || async { Ok((kc.get("/roles/auditor").await?["description"] == "reads and signs the books").then_some(())) },
    )
    .await?;
    // When it is deleted, the role goes with it
    delete(&client, &role_kind(), ns, "auditor").await?;
    wait_gone(&client, &role_kind(), ns, "auditor", TIMEOUT).await?;
    let gone = kc.status_of("/roles/auditor").await?;
    assert_eq!(gone, StatusCode::NOT_FOUND);
    Ok(())
}

#[tokio::test]
async fn a_declared_component_creates_only_the_child_kinds_its_declaration_grants() -> Result<()> {
    let (client, namespace, operator, _realm_name, _cleanup) = a_realm("children").await?;
    let ns = namespace.name();
    // Given the client component, which describes v1/Secret children, published
    let pinned = push(Component::Client, &unique_name("extensions").replace('_', "-"), "0.1.0").await?;
    let name = unique_name("extension");
    let (key, value) = &operator.component_label;
    let declaration = |child_kinds: Value| {
        json!({
            "apiVersion": "keycloak.wasmop.dev/v1alpha1",
            "kind": "ReconcilerComponent",
            "metadata": {"name": name, "labels": {key: value}},
            "spec": {"kind": "keycloak.wasmop.dev/KeycloakClient", "oci": pinned,
                     "grants": ["keycloak-admin", "read-secrets"], "childKinds": child_kinds},
        })
    };
    let components = component_kind();
    let declaration_says = |want: &'static str| wait_condition(&client, &components, "", &name, want, TIMEOUT);
    let refusal = |object: &Value| {
        condition(object, "Ready")
            .map(|c| c["message"].to_string())
            .unwrap_or_default()
    };
    // When it is declared without granting that kind
    apply(&client, &component_kind(), "", declaration(json!([]))).await?;
    let _declared = Declared { name: name.clone() };
    // Then it is refused, naming the kind
    let message = refusal(&declaration_says("Ready=False/CapabilityNotGranted").await?);
    assert!(message.contains("child kind v1/Secret"), "{message}");
    // When the admin grants it, it serves, and a client gets its credentials Secret
    apply(&client, &component_kind(), "", declaration(json!(["v1/Secret"]))).await?;
    declaration_says("Ready=True/Serving").await?;
    let app = keycloak_client("shop-app", "shop-app", "shop", None, json!({}));
    apply(&client, &client_kind(), ns, app).await?;
    wait_ready(&client, &client_kind(), ns, "shop-app").await?;
    assert!(secret_data(&client, ns, "shop-app-credentials").await?.is_some());
    // When the grant is taken away again
    apply(&client, &component_kind(), "", declaration(json!([]))).await?;
    // Then the declaration says what the serving version now goes without,
    // and the client's next reconcile is refused its Secret
    let message = refusal(&declaration_says("Ready=False/CapabilityNotGranted").await?);
    assert!(message.contains("child kind v1/Secret"), "{message}");
    let stalled = wait_condition(
        &client,
        &client_kind(),
        ns,
        "shop-app",
        "Ready=False/ChildKindNotGranted",
        TIMEOUT,
    )
    .await?;
    assert!(refusal(&stalled).contains("v1/Secret"), "{stalled}");
    delete(&client, &client_kind(), ns, "shop-app").await?;
    wait_gone(&client, &client_kind(), ns, "shop-app", TIMEOUT).await?;
    Ok(())
}
