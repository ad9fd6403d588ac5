//! The Keycloak admin API, through the host.
//!
//! Routes are templates under the admin API root, such as
//! `/realms/{realm}/clients/{id}`, with the placeholder values passed apart:
//! the host encodes each value as one path segment, checks the route against
//! the resource's scope, and records metrics per template. A component never
//! sees Keycloak's URL or credentials.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::ReconcileError;
pub use crate::bindings::keycloak_operator::reconciler::keycloak::Method;
use crate::bindings::keycloak_operator::reconciler::keycloak::{Error, Request, send as host_send};
use crate::error::{invalid_spec, permanent, transient};

/// Keycloak's answer to one request.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// The Location header (set on creation).
    pub location: Option<String>,
    /// The body, usually JSON.
    pub body: String,
}

impl Reply {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as a typed value.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ReconcileError> {
        serde_json::from_str(&self.body).map_err(|e| {
            transient(
                "UnexpectedKeycloakResponse",
                format!("Keycloak answered with unexpected JSON: {e}"),
            )
        })
    }

    /// The id of a created object: the last segment of the Location header.
    pub fn created_id(&self) -> Option<&str> {
        self.location.as_deref()?.rsplit('/').next().filter(|s| !s.is_empty())
    }

    /// Keycloak's own error message, if the body carries one.
    pub fn error_message(&self) -> String {
        let parsed: Option<Value> = serde_json::from_str(&self.body).ok();
        let message = parsed
            .as_ref()
            .and_then(|v| {
                v.get("errorMessage")
                    .or_else(|| v.get("error_description"))
                    .or_else(|| v.get("error"))
            })
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| self.body.clone());
        message.chars().take(300).collect()
    }
}

/// Sends one request. Transport failures and refusals by the host become
/// [`ReconcileError`]s; any HTTP status is returned as a [`Reply`].
pub fn send(
    method: Method,
    route: &str,
    params: &[&str],
    query: &[(&str, &str)],
    body: Option<&Value>,
) -> Result<Reply, ReconcileError> {
    let request = Request {
        method,
        route: route.to_owned(),
        params: params.iter().map(|p| (*p).to_owned()).collect(),
        query: query.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        body: body.map(Value::to_string),
    };
    match host_send(&request) {
        Ok(response) => Ok(Reply {
            status: response.status,
            location: response.location,
            body: response.body,
        }),
        Err(Error::Unavailable(message)) => Err(transient("KeycloakUnavailable", message)),
        Err(Error::Unauthenticated(message)) => Err(transient("KeycloakAuthenticationFailed", message)),
        Err(Error::Forbidden(message)) => Err(permanent("ScopeViolation", message)),
        Err(Error::Invalid(message)) => Err(permanent("InvalidKeycloakRequest", message)),
    }
}

/// The error for a status that `what` did not expect.
pub fn unexpected(what: &str, reply: &Reply) -> ReconcileError {
    let message = format!("{what}: Keycloak answered {}: {}", reply.status, reply.error_message());
    match reply.status {
        400 | 422 => invalid_spec("KeycloakRejected", message),
        401 | 403 => permanent("KeycloakForbidden", message),
        409 => transient("KeycloakConflict", message),
        _ => transient("KeycloakError", message),
    }
}

/// Reads one object; `None` when Keycloak answers 404.
pub fn get(route: &str, params: &[&str]) -> Result<Option<Value>, ReconcileError> {
    let reply = send(Method::Get, route, params, &[], None)?;
    match reply.status {
        404 => Ok(None),
        s if (200..300).contains(&s) => reply.json().map(Some),
        _ => Err(unexpected(&format!("reading {route}"), &reply)),
    }
}

/// Reads a list of objects.
pub fn list(route: &str, params: &[&str], query: &[(&str, &str)]) -> Result<Vec<Value>, ReconcileError> {
    let reply = send(Method::Get, route, params, query, None)?;
    if reply.is_success() {
        reply.json()
    } else {
        Err(unexpected(&format!("listing {route}"), &reply))
    }
}

/// Creates an object (POST); returns the reply, whose `created_id` names it.
pub fn create(route: &str, params: &[&str], body: &Value) -> Result<Reply, ReconcileError> {
    let reply = send(Method::Post, route, params, &[], Some(body))?;
    if reply.is_success() {
        Ok(reply)
    } else {
        Err(unexpected(&format!("creating under {route}"), &reply))
    }
}

/// Creates an object (POST), unless Keycloak answers that it exists
/// already (409): then `None`, and the caller judges the existing one (see
/// [`crate::Lifecycle::establish`]).
pub fn create_unless_exists(route: &str, params: &[&str], body: &Value) -> Result<Option<Reply>, ReconcileError> {
    let reply = send(Method::Post, route, params, &[], Some(body))?;
    match reply.status {
        409 => Ok(None),
        _ if reply.is_success() => Ok(Some(reply)),
        _ => Err(unexpected(&format!("creating under {route}"), &reply)),
    }
}

/// Updates an object (PUT).
pub fn update(route: &str, params: &[&str], body: &Value) -> Result<(), ReconcileError> {
    let reply = send(Method::Put, route, params, &[], Some(body))?;
    if reply.is_success() {
        Ok(())
    } else {
        Err(unexpected(&format!("updating {route}"), &reply))
    }
}

/// Deletes an object; `false` when it was already gone.
pub fn delete(route: &str, params: &[&str]) -> Result<bool, ReconcileError> {
    let reply = send(Method::Delete, route, params, &[], None)?;
    match reply.status {
        404 => Ok(false),
        s if (200..300).contains(&s) => Ok(true),
        _ => Err(unexpected(&format!("deleting {route}"), &reply)),
    }
}
