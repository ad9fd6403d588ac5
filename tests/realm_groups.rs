//! Stories of a realm's groups: declared by path in `spec.groups` with
//! attributes and role mappings, subgroups below them, the realm's default
//! groups; kept as declared against changes made in Keycloak, and removed
//! only when the operator made them — checked in what the real Keycloak
//! holds.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, Result};
use keycloak_operator_e2e::bench::RealmResyncs;
use keycloak_operator_e2e::operator::{Operator, OperatorOptions};
use keycloak_operator_e2e::resources::{KeycloakBed, delete, realm_kind, wait_ready, wait_realm_refused};
use keycloak_operator_e2e::testbed::{KeycloakAdmin, TestRealm, eventually, unique_name};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A group as Keycloak holds it, found by path.
async fn group_in_keycloak(admin: &KeycloakAdmin, realm: &str, path: &str) -> Result<Option<Value>> {
    let reply = admin
        .request(Method::GET, &format!("/realms/{realm}/group-by-path{path}"), None)
        .await?;
    if reply.status() == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let reply = reply.error_for_status().context("reading a group by path")?;
    Ok(Some(reply.json().await?))
}

async fn group_id(admin: &KeycloakAdmin, realm: &str, path: &str) -> Result<String> {
    let group = group_in_keycloak(admin, realm, path)
        .await?
        .with_context(|| format!("group {path} exists"))?;
    Ok(group["id"].as_str().unwrap_or_default().to_owned())
}

/// A group's role mappings, as `name` for realm roles and `client/name`
/// for client roles (by `clientId`).
async fn mappings_in_keycloak(admin: &KeycloakAdmin, realm: &str, path: &str) -> Result<BTreeSet<String>> {
    let id = group_id(admin, realm, path).await?;
    let mappings = admin
        .get_json(&format!("/realms/{realm}/groups/{id}/role-mappings"))
        .await?
        .context("group exists")?;
    let mut names = BTreeSet::new();
    for role in mappings["realmMappings"].as_array().into_iter().flatten() {
        names.insert(role["name"].as_str().unwrap_or_default().to_owned());
    }
    let clients: BTreeMap<String, Value> =
        serde_json::from_value(mappings["clientMappings"].clone()).unwrap_or_default();
    for (client, held) in clients {
        for role in held["mappings"].as_array().into_iter().flatten() {
            names.insert(format!("{client}/{}", role["name"].as_str().unwrap_or_default()));
        }
    }
    Ok(names)
}

async fn default_groups_in_keycloak(admin: &KeycloakAdmin, realm: &str) -> Result<BTreeSet<String>> {
    let held = admin
        .get_json(&format!("/realms/{realm}/default-groups"))
        .await?
        .context("realm exists")?;
    Ok(held
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| g["path"].as_str().unwrap_or_default().to_owned())
        .collect())
}

fn names(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// The groups section the stories declare: a tree two levels deep, role
/// mappings of both kinds, and a default group.
fn declared_groups() -> Value {
    json!({
        "roles": [{"name": "engineer"}],
        "groups": [
            {"path": "/engineering", "attributes": {"cost-center": ["42"]},
             "roles": {"realmRoles": ["engineer"], "clientRoles": {"account": ["view-profile"]}}},
            {"path": "/engineering/backend", "attributes": {"on-call": ["yes"]}},
            {"path": "/engineering/backend/payments", "roles": {"realmRoles": ["offline_access"]}},
            {"path": "/everyone"},
        ],
        "defaultGroups": ["/everyone", "/engineering/backend"],
    })
}

#[tokio::test]
async fn declared_groups_subgroups_mappings_and_default_groups_are_created_and_resyncs_only_read() -> Result<()> {
    let bed = KeycloakBed::given("realm-groups").await?;
    let ns = bed.ns.name();
    let mut options = OperatorOptions::standard(&[ns]);
    options.resync = "1s".into();
    let operator = Operator::start(&options).await?;
    let name = unique_name("groups");
    let _name_cleanup = TestRealm::cleanup(&name);

    // When a realm declares a tree of groups, their role mappings and default groups
    bed.apply_realm(&name, declared_groups()).await?;

    // Then Keycloak holds them as declared
    wait_ready(&bed.client, &realm_kind(), ns, "r").await?;
    let engineering = group_in_keycloak(&bed.admin, &name, "/engineering")
        .await?
        .context("/engineering exists")?;
    assert_eq!(engineering["attributes"]["cost-center"], json!(["42"]));
    let backend = group_in_keycloak(&bed.admin, &name, "/engineering/backend")
        .await?
        .context("/engineering/backend exists")?;
    assert_eq!(backend["attributes"]["on-call"], json!(["yes"]));
    assert_eq!(
        mappings_in_keycloak(&bed.admin, &name, "/engineering").await?,
        names(&["engineer", "account/view-profile"])
    );
    assert_eq!(
        mappings_in_keycloak(&bed.admin, &name, "/engineering/backend/payments").await?,
        names(&["offline_access"])
    );
    assert_eq!(
        default_groups_in_keycloak(&bed.admin, &name).await?,
        names(&["/everyone", "/engineering/backend"])
    );

    // And with nothing to change, resyncs only read, and a bounded number
    // of times: the realm, its roles, the top-level groups, the subgroups
    // of each declared parent (two) and the default groups
    let steady = RealmResyncs::measure(&operator, "keycloak.wasmop.dev/KeycloakRealm", Duration::from_secs(10)).await?;
    steady.assert_only_read(6.0);
    delete(&bed.client, &realm_kind(), ns, "r").await?;
    Ok(())
}

#[tokio::test]
async fn groups_changed_in_keycloak_are_put_back_and_only_groups_the_operator_made_are_deleted() -> Result<()> {
    // Given an operator whose resync is an hour away: only the drift watch
    // (Keycloak's admin events, polled every second) can notice a change
    let bed = KeycloakBed::given("realm-groups-drift").await?;
    let ns = bed.ns.name();
    let _operator = Operator::start(&OperatorOptions::drift_watched(&[ns])).await?;
    let name = unique_name("groupdrift");
    let _name_cleanup = TestRealm::cleanup(&name);

    // Given a top-level group made by hand, which the spec then lists as a parent
    bed.admin.create_realm(&name).await?;
    bed.admin
        .expect(
            Method::POST,
            &format!("/realms/{name}/groups"),
            Some(&json!({"name": "legacy", "attributes": {"origin": ["by hand"]}})),
            StatusCode::CREATED,
        )
        .await?;
    let mut spec = declared_groups();
    spec["adoptExisting"] = json!(true);
    spec["groups"]
        .as_array_mut()
        .context("groups")?
        .push(json!({"path": "/legacy/team", "attributes": {"managed": ["yes"]}}));
    bed.apply_realm(&name, spec.clone()).await?;
    wait_ready(&bed.client, &realm_kind(), ns, "r").await?;
    assert!(
        group_in_keycloak(&bed.admin, &name, "/legacy/team").await?.is_some(),
        "a declared subgroup of a group made by hand"
    );

    // (Past the window in which an admin event on a path the operator just
    // wrote is taken for its own)
    tokio::time::sleep(Duration::from_secs(4)).await;

    // When someone changes a managed attribute and adds one, maps another
    // role, deletes a declared subgroup, drops a default group, and makes a
    // subgroup of their own below an operator-made group
    let engineering_id = group_id(&bed.admin, &name, "/engineering").await?;
    let mut engineering = group_in_keycloak(&bed.admin, &name, "/engineering")
        .await?
        .context("engineering")?;
    engineering["attributes"]["cost-center"] = json!(["changed"]);
    engineering["attributes"]["by-hand"] = json!(["kept"]);
    bed.admin
        .expect(
            Method::PUT,
            &format!("/realms/{name}/groups/{engineering_id}"),
            Some(&engineering),
            StatusCode::NO_CONTENT,
        )
        .await?;
    let uma = bed
        .admin
        .get_json(&format!("/realms/{name}/roles/uma_authorization"))
        .await?
        .context("uma_authorization")?;
    bed.admin
        .expect(
            Method::POST,
            &format!("/realms/{name}/groups/{engineering_id}/role-mappings/realm"),
            Some(&json!([uma])),
            StatusCode::NO_CONTENT,
        )
        .await?;
    let payments_id = group_id(&bed.admin, &name, "/engineering/backend/payments").await?;
    bed.admin
        .expect(
            Method::DELETE,
            &format!("/realms/{name}/groups/{payments_id}"),
            None,
            StatusCode::NO_CONTENT,
        )
        .await?;
    let everyone_id = group_id(&bed.admin, &name, "/everyone").await?;
    bed.admin
        .expect(
            Method::DELETE,
            &format!("/realms/{name}/default-groups/{everyone_id}"),
            None,
            StatusCode::NO_CONTENT,
        )
        .await?;
    bed.admin
        .expect(
            Method::POST,
            &format!("/realms/{name}/groups/{everyone_id}/children"),
            Some(&json!({"name": "manual"})),
            StatusCode::CREATED,
        )
        .await?;

    // Then the managed parts are put back, and the rest is left alone
    eventually(
        "the groups' drift to be reverted by the drift watch, long before the resync",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || async {
            let engineering = group_in_keycloak(&bed.admin, &name, "/engineering").await?;
            let mappings = mappings_in_keycloak(&bed.admin, &name, "/engineering").await?;
            let payments = group_in_keycloak(&bed.admin, &name, "/engineering/backend/payments").await?;
            let defaults = default_groups_in_keycloak(&bed.admin, &name).await?;
            let reverted = engineering
                .as_ref()
                .is_some_and(|g| g["attributes"]["cost-center"] == json!(["42"]))
                && mappings == names(&["engineer", "account/view-profile"])
                && payments.is_some()
                && defaults == names(&["/everyone", "/engineering/backend"]);
            Ok(reverted.then_some(()))
        },
    )
    .await?;
    let engineering = group_in_keycloak(&bed.admin, &name, "/engineering")
        .await?
        .context("engineering")?;
    assert_eq!(
        engineering["attributes"]["by-hand"],
        json!(["kept"]),
        "unlisted attributes stay"
    );
    assert_eq!(
        mappings_in_keycloak(&bed.admin, &name, "/engineering/backend/payments").await?,
        names(&["offline_access"]),
        "the recreated subgroup has its roles again"
    );

    // When the spec stops listing every group but /engineering, which
    // becomes the one default group
    let mut spec = declared_groups();
    spec["adoptExisting"] = json!(true);
    spec["groups"] = json!([spec["groups"][0].clone()]);
    spec["defaultGroups"] = json!(["/engineering"]);
    bed.apply_realm(&name, spec).await?;

    // Then the operator's groups go, with their subgroups; an operator-made
    // group holding a hand-made subgroup stays, and so does the hand-made
    // parent of a group it made
    eventually(
        "/engineering/backend and /legacy/team to be deleted, and /engineering the only default group",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async {
            let backend = group_in_keycloak(&bed.admin, &name, "/engineering/backend").await?;
            let team = group_in_keycloak(&bed.admin, &name, "/legacy/team").await?;
            let defaults = default_groups_in_keycloak(&bed.admin, &name).await?;
            Ok((backend.is_none() && team.is_none() && defaults == names(&["/engineering"])).then_some(()))
        },
    )
    .await?;
    wait_ready(&bed.client, &realm_kind(), ns, "r").await?;
    for kept in ["/legacy", "/everyone", "/everyone/manual", "/engineering"] {
        assert!(
            group_in_keycloak(&bed.admin, &name, kept).await?.is_some(),
            "{kept} stays"
        );
    }
    let held = bed.admin.get_json(&format!("/realms/{name}")).await?.context("realm")?;
    assert_eq!(
        held["attributes"]["keycloak.wasmop.dev/managed-groups"], "[\"/engineering\",\"/everyone\"]",
        "the record names the groups the operator made and has not deleted"
    );
    delete(&bed.client, &realm_kind(), ns, "r").await?;
    Ok(())
}

#[tokio::test]
async fn a_group_below_a_missing_parent_or_mapping_a_missing_role_is_reported_with_its_field_and_heals() -> Result<()> {
    let bed = KeycloakBed::given("realm-groups-missing").await?;
    let ns = bed.ns.name();
    let _operator = Operator::start(&OperatorOptions::standard(&[ns])).await?;
    let name = unique_name("groupmissing");
    let _name_cleanup = TestRealm::cleanup(&name);

    // When a group's parent is neither declared nor in Keycloak
    let spec = json!({"groups": [{"path": "/ops/oncall", "roles": {"realmRoles": ["pager"]}}]});
    bed.apply_realm(&name, spec).await?;

    // Then the realm is not Ready, and the message names the field and the parent
    let message = wait_realm_refused(&bed.client, ns, "r", "GroupNotFound").await?;
    assert!(
        message.contains("spec.groups[0].path") && message.contains("/ops"),
        "{message}"
    );

    // When the parent appears (made by hand), the group is made, and the
    // role it maps is the next thing missing
    bed.admin
        .expect(
            Method::POST,
            &format!("/realms/{name}/groups"),
            Some(&json!({"name": "ops"})),
            StatusCode::CREATED,
        )
        .await?;
    let message = wait_realm_refused(&bed.client, ns, "r", "RoleNotFound").await?;
    assert!(
        message.contains("spec.groups[0].roles") && message.contains("pager"),
        "{message}"
    );

    // And when the role appears too, the realm heals at its retry
    bed.admin
        .expect(
            Method::POST,
            &format!("/realms/{name}/roles"),
            Some(&json!({"name": "pager"})),
            StatusCode::CREATED,
        )
        .await?;
    wait_ready(&bed.client, &realm_kind(), ns, "r").await?;
    assert_eq!(
        mappings_in_keycloak(&bed.admin, &name, "/ops/oncall").await?,
        names(&["pager"])
    );
    delete(&bed.client, &realm_kind(), ns, "r").await?;
    Ok(())
}
