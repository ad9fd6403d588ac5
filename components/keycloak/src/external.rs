//! The external form: a Keycloak that already runs.

use keycloak_operator_sdk::{ReconcileError, Request, Response};
use serde_json::json;

/// How often a healthy Keycloak is checked again, in seconds.
pub const HEALTH_INTERVAL_SECONDS: u32 = 60;

/// Asks Keycloak for its version with the operator's credentials.
pub fn reconcile(request: &Request) -> Result<Response, ReconcileError> {
    let url = request.target.as_ref().map(|t| t.url.clone()).unwrap_or_default();
    let version = server_version()?;
    Ok(Response::ready(
        "Connected",
        format!("Keycloak {version} answers at {url} with the operator's credentials"),
    )
    .status(json!({ "version": version, "url": url }))?
    .requeue_after(HEALTH_INTERVAL_SECONDS))
}

/// The version from `/admin/serverinfo`.
pub fn server_version() -> Result<String, ReconcileError> {
    use keycloak_operator_sdk::error::transient;
    let info = keycloak_operator_sdk::keycloak::get("/serverinfo", &[])?.ok_or_else(|| {
        transient(
            "ServerInfoMissing",
            "Keycloak has no server-info endpoint at /admin/serverinfo",
        )
    })?;
    Ok(info
        .pointer("/systemInfo/version")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("unknown")
        .to_owned())
}
