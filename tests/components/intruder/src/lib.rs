//! A test component playing a tenant's kind that tries to hand out realm
//! administration, each mode another way: mapping `realm-admin` to a user
//! (also through a route whose literal segments are passed as values),
//! mapping a realm role whose composites reach `realm-management`, making a
//! role a composite of `realm-admin`, or putting a user in a group that holds
//! `realm-management` roles. The host must refuse every write for a tenant,
//! whatever this component then claims. It serves the test-only kind
//! `IntruderProbe` (test.wasmop.dev/v1), placed in a realm (`spec.realmRef`).

use keycloak_operator_sdk::{
    Capability, Description, KeycloakScope, ReconcileError, Reconciler, Request, Response, keycloak,
};
use serde_json::{Value, json};

struct Intruder;

fn spec<'a>(request: &'a Request, field: &str) -> &'a str {
    request
        .parent
        .pointer(&format!("/spec/{field}"))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn first_id(list: &[Value]) -> Option<String> {
    list.first().and_then(|v| v["id"].as_str()).map(str::to_owned)
}

/// The user the probe plays with, created when missing.
fn user(realm: &str, username: &str) -> Result<String, ReconcileError> {
    let found = keycloak::list(
        "/realms/{realm}/users",
        &[realm],
        &[("username", username), ("exact", "true")],
    )?;
    if let Some(id) = first_id(&found) {
        return Ok(id);
    }
    keycloak::create(
        "/realms/{realm}/users",
        &[realm],
        &json!({"username": username, "enabled": true}),
    )?;
    let found = keycloak::list(
        "/realms/{realm}/users",
        &[realm],
        &[("username", username), ("exact", "true")],
    )?;
    first_id(&found).ok_or_else(|| keycloak_operator_sdk::error::transient("UserMissing", "the user was not created"))
}

fn realm_management(realm: &str) -> Result<(String, Value), ReconcileError> {
    let clients = keycloak::list("/realms/{realm}/clients", &[realm], &[("clientId", "realm-management")])?;
    let id = first_id(&clients).unwrap_or_default();
    let admin = keycloak::get(
        "/realms/{realm}/clients/{id}/roles/{role}",
        &[realm, &id, "realm-admin"],
    )?
    .unwrap_or(Value::Null);
    Ok((id, admin))
}

impl Reconciler for Intruder {
    fn describe() -> Description {
        Description {
            name: "test/intruder".into(),
            version: "0.1.0".into(),
            group: "test.wasmop.dev".into(),
            kind: "IntruderProbe".into(),
            plural: "intruderprobes".into(),
            versions: vec!["v1".into()],
            child_kinds: vec![],
            related_kinds: vec![],
            capabilities: vec![Capability::KeycloakAdmin],
            keycloak_scope: KeycloakScope::InRealm,
            finalizer: false,
            crd: Some(include_str!("../crd.yaml").into()),
        }
    }

    fn reconcile(request: Request) -> Result<Response, ReconcileError> {
        let realm = request
            .target
            .as_ref()
            .and_then(|t| t.realm.clone())
            .unwrap_or_default();
        let mode = spec(&request, "mode");
        if mode == "ok" {
            keycloak::get("/realms/{realm}", &[&realm])?;
            return Ok(Response::ready("Reconciled", "looked at the realm"));
        }
        let user = user(&realm, spec(&request, "username"))?;
        // Every attempt's answer is ignored: the probe always claims success,
        // and the host must not believe it.
        let _ = match mode {
            "grant-admin" => {
                let (client, admin) = realm_management(&realm)?;
                keycloak::create(
                    "/realms/{realm}/users/{id}/role-mappings/clients/{client}",
                    &[&realm, &user, &client],
                    &json!([admin]),
                )
                .map(|_| ())
            }
            "grant-disguised" => {
                // The same write, its literal segments passed as values.
                let (client, admin) = realm_management(&realm)?;
                keycloak::create(
                    "/realms/{realm}/{a}/{id}/{b}/{c}/{client}",
                    &[&realm, "users", &user, "role-mappings", "clients", &client],
                    &json!([admin]),
                )
                .map(|_| ())
            }
            "grant-composite" => {
                let role = keycloak::get("/realms/{realm}/roles/{role}", &[&realm, spec(&request, "role")])?
                    .unwrap_or(Value::Null);
                keycloak::create(
                    "/realms/{realm}/users/{id}/role-mappings/realm",
                    &[&realm, &user],
                    &json!([role]),
                )
                .map(|_| ())
            }
            "make-composite" => {
                let (_, admin) = realm_management(&realm)?;
                keycloak::create(
                    "/realms/{realm}/roles/{role}/composites",
                    &[&realm, spec(&request, "role")],
                    &json!([admin]),
                )
                .map(|_| ())
            }
            "join-group" => {
                let groups = keycloak::list(
                    "/realms/{realm}/groups",
                    &[&realm],
                    &[("search", spec(&request, "group")), ("exact", "true")],
                )?;
                let group = first_id(&groups).unwrap_or_default();
                keycloak::update(
                    "/realms/{realm}/users/{id}/groups/{group}",
                    &[&realm, &user, &group],
                    &json!({}),
                )
            }
            _ => return Ok(Response::stalled("UnknownMode", format!("unknown mode {mode}"))),
        };
        Response::ready("Reconciled", "granted whatever was asked").status(json!({"userId": user}))
    }
}

keycloak_operator_sdk::export_reconciler!(Intruder);
