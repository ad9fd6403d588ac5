//! Stories of a realm's roles: declared in `spec.roles` and
//! `spec.defaultRoles`, created, kept as declared against changes made in
//! Keycloak, and removed only when the operator made them — checked in what
//! the real Keycloak holds.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result};
use keycloak_operator_e2e::bench::{RealmResyncs, SteadyState};
use keycloak_operator_e2e::operator::{Operator, OperatorOptions};
use keycloak_operator_e2e::resources::{
    KeycloakBed, apply, condition, delete, realm, realm_kind, wait_condition, wait_gone, wait_ready,
};
use keycloak_operator_e2e::testbed::{KeycloakAdmin, TestRealm, eventually, unique_name};
use kube::api::{Api, DynamicObject};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn given_a_keycloak(prefix: &str) -> Result<KeycloakBed> {
    KeycloakBed::given(prefix).await
}

/// The realm's roles as Keycloak holds them (full representations).
async fn roles_in_keycloak(admin: &KeycloakAdmin, realm: &str) -> Result<Vec<Value>> {
    let roles = admin
        .get_json(&format!("/realms/{realm}/roles?briefRepresentation=false"))
        .await?
        .context("realm exists")?;
    Ok(roles.as_array().cloned().unwrap_or_default())
}

async fn role_in_keycloak(admin: &KeycloakAdmin, realm: &str, name: &str) -> Result<Option<Value>> {
    Ok(roles_in_keycloak(admin, realm)
        .await?
        .into_iter()
        .find(|r| r["name"] == name))
}

/// A role's composites, as `name` for realm roles and `client/name` for
/// client roles (by `clientId`).
async fn composites_in_keycloak(admin: &KeycloakAdmin, realm: &str, role_id: &str) -> Result<BTreeSet<String>> {
    let composites = admin
        .get_json(&format!("/realms/{realm}/roles-by-id/{role_id}/composites"))
        .await?
        .context("role exists")?;
    let mut names = BTreeSet::new();
    for role in composites.as_array().into_iter().flatten() {
        let name = role["name"].as_str().unwrap_or_default();
        if role["clientRole"] == true {
            let container = role["containerId"].as_str().unwrap_or_default();
            let client = admin
                .get_json(&format!("/realms/{realm}/clients/{container}"))
                .await?
                .context("client exists")?;
            names.insert(format!("{}/{name}", client["clientId"].as_str().unwrap_or_default()));
        } else {
            names.insert(name.to_owned());
        }
    }
    Ok(names)
}

async fn default_roles_in_keycloak(admin: &KeycloakAdmin, realm: &str) -> Result<BTreeSet<String>> {
    let held = admin
        .get_json(&format!("/realms/{realm}"))
        .await?
        .context("realm exists")?;
    let id = held["defaultRole"]["id"]
        .as_str()
        .context("the realm has a default role")?;
    composites_in_keycloak(admin, realm, id).await
}

fn names(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// The roles section the stories declare.
fn declared_roles() -> Value {
    json!({
        "roles": [
            {"name": "viewer", "description": "Sees orders", "attributes": {"tier": ["gold"]}},
            {"name": "orders.editor", "description": "Edits orders",
             "composites": {"realmRoles": ["viewer"], "clientRoles": {"account": ["view-profile"]}}},
        ],
        "defaultRoles": {"realmRoles": ["viewer", "offline_access"]},
    })
}

#[tokio::test]
async fn declared_roles_composites_and_default_roles_are_created_and_resyncs_only_read() -> Result<()> {
    let bed = given_a_keycloak("realm-roles").await?;
    let ns = bed.ns.name();
    let mut options = OperatorOptions::standard(&[ns]);
    options.resync = "1s".into();
    let operator = Operator::start(&options).await?;
    let name = unique_name("roles");
    let _name_cleanup = TestRealm::cleanup(&name);

    // When a realm declares roles, a composite one and its default roles
    bed.apply_realm(&name, declared_roles()).await?;

    // Then Keycloak holds them as declared
    wait_ready(&bed.client, &realm_kind(), ns, "r").await?;
    let viewer = role_in_keycloak(&bed.admin, &name, "viewer")
        .await?
        .context("viewer exists")?;
    assert_eq!(viewer["description"], "Sees orders");
    assert_eq!(viewer["attributes"]["tier"], json!(["gold"]));
    let editor = role_in_keycloak(&bed.admin, &name, "orders.editor")
        .await?
        .context("orders.editor exists")?;
    assert_eq!(editor["composite"], true);
    let editor_id = editor["id"].as_str().unwrap_or_default();
    assert_eq!(
        composites_in_keycloak(&bed.admin, &name, editor_id).await?,
        names(&["viewer", "account/view-profile"])
    );
    // (Keycloak's own defaults, uma_authorization and account's roles, go:
    // the default roles are exactly the declared ones)
    assert_eq!(
        default_roles_in_keycloak(&bed.admin, &name).await?,
        names(&["viewer", "offline_access"])
    );

    // And with nothing to change, resyncs read a bounded number of times and never write
    let api: Api<DynamicObject> = Api::namespaced_with(bed.client.clone(), ns, &realm_kind());
    let steady = SteadyState::measure(
        &operator,
        &api,
        1,
        "keycloak.wasmop.dev/KeycloakRealm",
        Duration::from_secs(5),
    )
    .await?;
    steady.print();
    assert!(steady.reconciles >= 2.0, "resyncs happened: {}", steady.reconciles);
    assert_eq!(steady.writes, 0.0, "no write to Keycloak in steady state");
    // The realm, its role list, one role's composites, the default role's,
    // and the one client a composite names: five reads, however many roles.
    // (Counted over the realm's routes: the `Keycloak` resource resyncs too,
    // and reads the server's info)
    let resyncs =
        RealmResyncs::measure(&operator, "keycloak.wasmop.dev/KeycloakRealm", Duration::from_secs(10)).await?;
    resyncs.assert_only_read(5.0);
    delete(&bed.client, &realm_kind(), ns, "r").await?;
    Ok(())
}

#[tokio::test]
async fn roles_changed_in_keycloak_are_put_back_and_only_roles_the_operator_made_are_deleted() -> Result<()> {
    // Given an operator whose resync is an hour away: only the drift watch
    // (Keycloak's admin events, polled every second) can notice a change
    let bed = given_a_keycloak("realm-roles-drift").await?;
    let ns = bed.ns.name();
    let _operator = Operator::start(&OperatorOptions::drift_watched(&[ns])).await?;
    let name = unique_name("roledrift");
    let _name_cleanup = TestRealm::cleanup(&name);
    bed.apply_realm(&name, declared_roles()).await?;
    wait_ready(&bed.client, &realm_kind(), ns, "r").await?;

    // Given a role made by hand, which the spec then lists too
    bed.admin
        .expect(
            Method::POST,
            &format!("/realms/{name}/roles"),
            Some(&json!({"name": "legacy", "description": "made by hand"})),
            StatusCode::CREATED,
        )
        .await?;
    let mut spec = declared_roles();
    spec["roles"]
        .as_array_mut()
        .context("roles")?
        .push(json!({"name": "legacy"}));
    bed.apply_realm(&name, spec).await?;
    wait_ready(&bed.client, &realm_kind(), ns, "r").await?;

    // (Past the window in which an admin event on a path the operator just
    // wrote is taken for its own)
    tokio::time::sleep(Duration::from_secs(4)).await;

    // When someone changes a managed description, adds a composite and a
    // default role by hand, and makes another role
    let mut viewer = role_in_keycloak(&bed.admin, &name, "viewer").await?.context("viewer")?;
    let viewer_id = viewer["id"].as_str().unwrap_or_default().to_owned();
    viewer["description"] = json!("changed by hand");
    viewer["attributes"]["by-hand"] = json!(["kept"]);
    bed.admin
        .expect(
            Method::PUT,
            &format!("/realms/{name}/roles-by-id/{viewer_id}"),
            Some(&viewer),
            StatusCode::NO_CONTENT,
        )
        .await?;
    let editor = role_in_keycloak(&bed.admin, &name, "orders.editor")
        .await?
        .context("editor")?;
    let editor_id = editor["id"].as_str().unwrap_or_default().to_owned();
    let uma = role_in_keycloak(&bed.admin, &name, "uma_authorization")
        .await?
        .context("uma")?;
    bed.admin
        .expect(
            Method::POST,
            &format!("/realms/{name}/roles-by-id/{editor_id}/composites"),
            Some(&json!([uma])),
            StatusCode::NO_CONTENT,
        )
        .await?;
    let held = bed.admin.get_json(&format!("/realms/{name}")).await?.context("realm")?;
    let default_role = held["defaultRole"]["id"].as_str().unwrap_or_default().to_owned();
    bed.admin
        .expect(
            Method::POST,
            &format!("/realms/{name}/roles-by-id/{default_role}/composites"),
            Some(&json!([uma])),
            StatusCode::NO_CONTENT,
        )
        .await?;
    bed.admin
        .expect(
            Method::POST,
            &format!("/realms/{name}/roles"),
            Some(&json!({"name": "manual"})),
            StatusCode::CREATED,
        )
        .await?;

    // Then the managed parts are put back, and the rest is left alone
    eventually(
        "the roles' drift to be reverted by the drift watch, long before the resync",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || async {
            let viewer = role_in_keycloak(&bed.admin, &name, "viewer").await?;
            let composites = composites_in_keycloak(&bed.admin, &name, &editor_id).await?;
            let defaults = default_roles_in_keycloak(&bed.admin, &name).await?;
            let reverted = viewer.as_ref().is_some_and(|v| v["description"] == "Sees orders")
                && composites == names(&["viewer", "account/view-profile"])
                && defaults == names(&["viewer", "offline_access"]);
            Ok(reverted.then_some(()))
        },
    )
    .await?;
    let viewer = role_in_keycloak(&bed.admin, &name, "viewer").await?.context("viewer")?;
    assert_eq!(
        viewer["attributes"]["by-hand"],
        json!(["kept"]),
        "unlisted attributes stay"
    );
    assert!(
        role_in_keycloak(&bed.admin, &name, "manual").await?.is_some(),
        "hand-made roles stay"
    );

    // When the spec stops listing a role the operator made and the hand-made one
    apply(
        &bed.client,
        &realm_kind(),
        ns,
        realm(
            "r",
            &name,
            "sso",
            None,
            json!({
                "roles": [{"name": "viewer", "description": "Sees orders", "attributes": {"tier": ["gold"]}}],
                "defaultRoles": {"realmRoles": ["viewer", "offline_access"]},
            }),
        ),
    )
    .await?;

    // Then only the operator's is deleted
    eventually(
        "orders.editor to be deleted",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async {
            Ok(role_in_keycloak(&bed.admin, &name, "orders.editor")
                .await?
                .is_none()
                .then_some(()))
        },
    )
    .await?;
    assert!(
        role_in_keycloak(&bed.admin, &name, "legacy").await?.is_some(),
        "a role the operator did not create is not deleted"
    );
    let held = bed.admin.get_json(&format!("/realms/{name}")).await?.context("realm")?;
    assert_eq!(
        held["attributes"]["keycloak.wasmop.dev/managed-roles"], "[\"viewer\"]",
        "the record names only the roles the operator made and still manages"
    );
    delete(&bed.client, &realm_kind(), ns, "r").await?;
    Ok(())
}

#[tokio::test]
async fn a_composite_naming_a_missing_role_is_reported_with_its_field_and_heals_when_it_appears() -> Result<()> {
    let bed = given_a_keycloak("realm-roles-missing").await?;
    let ns = bed.ns.name();
    let _operator = Operator::start(&OperatorOptions::standard(&[ns])).await?;
    let name = unique_name("rolemissing");
    let _name_cleanup = TestRealm::cleanup(&name);

    // When a composite names a realm role that does not exist
    let spec = json!({"roles": [{"name": "editor", "composites": {"realmRoles": ["not-yet"]}}]});
    bed.apply_realm(&name, spec).await?;

    // Then the realm is not Ready, and the message names the field and the role
    let object = wait_condition(
        &bed.client,
        &realm_kind(),
        ns,
        "r",
        "Ready=False/RoleNotFound",
        Duration::from_secs(90),
    )
    .await?;
    let ready = condition(&object, "Ready").context("Ready condition")?;
    assert_eq!(ready["reason"], "RoleNotFound");
    let message = ready["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("spec.roles[0].composites") && message.contains("not-yet"),
        "{message}"
    );

    // When the role appears (made by hand), the realm heals at its retry
    bed.admin
        .expect(
            Method::POST,
            &format!("/realms/{name}/roles"),
            Some(&json!({"name": "not-yet"})),
            StatusCode::CREATED,
        )
        .await?;
    wait_ready(&bed.client, &realm_kind(), ns, "r").await?;
    let editor = role_in_keycloak(&bed.admin, &name, "editor").await?.context("editor")?;
    let editor_id = editor["id"].as_str().unwrap_or_default();
    assert_eq!(
        composites_in_keycloak(&bed.admin, &name, editor_id).await?,
        names(&["not-yet"])
    );
    delete(&bed.client, &realm_kind(), ns, "r").await?;
    Ok(())
}

#[tokio::test]
async fn adopting_a_retained_realm_deletes_none_of_the_former_owners_roles() -> Result<()> {
    let bed = given_a_keycloak("realm-roles-adopt").await?;
    let ns = bed.ns.name();
    let _operator = Operator::start(&OperatorOptions::standard(&[ns])).await?;
    let name = unique_name("roleadopt");
    let _name_cleanup = TestRealm::cleanup(&name);

    // Given a realm whose resource created a role, then was deleted with
    // the realm retained
    let spec = json!({"roles": [{"name": "reporting"}], "deletionPolicy": "Retain"});
    apply(&bed.client, &realm_kind(), ns, realm("first", &name, "sso", None, spec)).await?;
    wait_ready(&bed.client, &realm_kind(), ns, "first").await?;
    delete(&bed.client, &realm_kind(), ns, "first").await?;
    wait_gone(&bed.client, &realm_kind(), ns, "first", Duration::from_secs(90)).await?;

    // When another resource adopts it without listing that role
    let spec = json!({"adoptExisting": true, "displayName": "Adopted"});
    apply(
        &bed.client,
        &realm_kind(),
        ns,
        realm("second", &name, "sso", None, spec),
    )
    .await?;
    wait_ready(&bed.client, &realm_kind(), ns, "second").await?;

    // Then the role stays: the new owner did not create it
    assert!(
        role_in_keycloak(&bed.admin, &name, "reporting").await?.is_some(),
        "a role the adopting resource did not create is not deleted"
    );
    delete(&bed.client, &realm_kind(), ns, "second").await?;
    Ok(())
}
