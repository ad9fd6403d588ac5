//! The bootstrap admin (generated once, used once) and the operator's own
//! service-account client, which the host authenticates with from then on.
//!
//! The client gets only the master realm's `create-realm` role: enough to
//! read the server's information and to create realms, and Keycloak gives
//! whoever creates a realm full administration of that realm. It has no
//! access to realms it did not create (adopting one needs the roles of that
//! realm's `<realm>-realm` client in master granted to the operator's
//! service account by hand; see docs/managed-keycloak.md).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keycloak_operator_api::managed::naming;
use keycloak_operator_sdk::error::transient;
use keycloak_operator_sdk::keycloak::{self, Method};
use keycloak_operator_sdk::ownership::Owner;
use keycloak_operator_sdk::{ReconcileError, Request};
use serde_json::{Value, json};

const MASTER: &str = "master";
/// The roles of the operator's client, in the master realm.
pub const OPERATOR_ROLES: &[&str] = &["create-realm"];

fn secret(name: &str, data: &[(&str, &str)], role: &str) -> Value {
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), json!(STANDARD.encode(v))))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/component": role}},
        "type": "Opaque",
        "data": data,
    })
}

/// An observed child Secret of this name, returned unchanged (so that it is
/// neither regenerated nor pruned).
fn observed_secret(request: &Request, name: &str) -> Option<Value> {
    request
        .children_of_kind("Secret")
        .find(|s| s.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
        .map(|s| {
            json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "labels": s.pointer("/metadata/labels").cloned().unwrap_or(json!({}))},
                "type": "Opaque",
                "data": s.get("data").cloned().unwrap_or(json!({})),
            })
        })
}

fn random_password() -> Result<String, ReconcileError> {
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<24>()?))
}

/// Cryptographically secure bytes from the host (WASI `random`).
#[cfg(target_arch = "wasm32")]
fn random_bytes<const N: usize>() -> Result<[u8; N], ReconcileError> {
    let bytes = wasip2::random::random::get_random_bytes(N as u64);
    <[u8; N]>::try_from(bytes.as_slice())
        .map_err(|_| transient("RandomnessUnavailable", "the host gave too few random bytes".to_owned()))
}

/// Cryptographically secure bytes from the OS (native unit tests).
#[cfg(not(target_arch = "wasm32"))]
fn random_bytes<const N: usize>() -> Result<[u8; N], ReconcileError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|e| transient("RandomnessUnavailable", format!("no randomness for a password: {e}")))?;
    Ok(bytes)
}

/// The bootstrap admin Secret: the observed one when it exists (it is
/// generated once and never overwritten), else a new random password.
pub fn bootstrap_secret(request: &Request, keycloak: &str) -> Result<Value, ReconcileError> {
    let name = naming::bootstrap_admin_secret(keycloak);
    match observed_secret(request, &name) {
        Some(existing) => Ok(existing),
        None => Ok(secret(
            &name,
            &[("username", "temp-admin"), ("password", &random_password()?)],
            "bootstrap-admin",
        )),
    }
}

/// The operator client's Secret, if it was made already.
pub fn operator_secret(request: &Request, keycloak: &str) -> Option<Value> {
    observed_secret(request, &naming::operator_client_secret(keycloak))
}

/// Creates (or finds) the operator's client in the master realm, grants its
/// service account the operator's roles, and returns its Secret.
pub fn create_operator_client(request: &Request, keycloak_name: &str) -> Result<Value, ReconcileError> {
    let client_id = naming::OPERATOR_CLIENT_ID;
    let existing = keycloak::list("/realms/{realm}/clients", &[MASTER], &[("clientId", client_id)])?;
    let id = match existing.first().and_then(|c| c.get("id")).and_then(Value::as_str) {
        Some(id) => id.to_owned(),
        None => {
            let body = json!({
                "clientId": client_id,
                "name": "Keycloak operator",
                "description": "The operator's own credentials (client-credentials grant); created by the operator",
                "enabled": true,
                "publicClient": false,
                "serviceAccountsEnabled": true,
                "standardFlowEnabled": false,
                "implicitFlowEnabled": false,
                "directAccessGrantsEnabled": false,
                "attributes": Owner::of(request).attributes(),
            });
            let reply = keycloak::create("/realms/{realm}/clients", &[MASTER], &body)?;
            reply.created_id().map(str::to_owned).ok_or_else(|| {
                transient(
                    "UnexpectedKeycloakResponse",
                    "Keycloak created the operator client without saying its id",
                )
            })?
        }
    };
    let user = keycloak::get("/realms/{realm}/clients/{id}/service-account-user", &[MASTER, &id])?
        .and_then(|u| u.get("id").and_then(Value::as_str).map(str::to_owned))
        .ok_or_else(|| {
            transient(
                "ServiceAccountMissing",
                "the operator client has no service-account user yet",
            )
        })?;
    let mut roles = Vec::new();
    for role in OPERATOR_ROLES {
        let role = keycloak::get("/realms/{realm}/roles/{role}", &[MASTER, role])?
            .ok_or_else(|| transient("RoleMissing", format!("the master realm has no role {role}")))?;
        roles.push(role);
    }
    let reply = keycloak::send(
        Method::Post,
        "/realms/{realm}/users/{id}/role-mappings/realm",
        &[MASTER, &user],
        &[],
        Some(&Value::Array(roles)),
    )?;
    if !reply.is_success() {
        return Err(keycloak::unexpected("granting the operator client its roles", &reply));
    }
    let secret_value = keycloak::get("/realms/{realm}/clients/{id}/client-secret", &[MASTER, &id])?
        .and_then(|s| s.get("value").and_then(Value::as_str).map(str::to_owned))
        .ok_or_else(|| {
            transient(
                "UnexpectedKeycloakResponse",
                "Keycloak did not return the operator client's secret",
            )
        })?;
    Ok(secret(
        &naming::operator_client_secret(keycloak_name),
        &[("client-id", client_id), ("client-secret", &secret_value)],
        "operator-credentials",
    ))
}
