//! Rotation of a generated client secret: on demand (the rotate-secret
//! annotation) and on a period.
//!
//! The secret is regenerated with Keycloak's own endpoint
//! (`POST …/client-secret`), so a realm client policy with the
//! `secret-rotation` executor, where the Keycloak has the
//! `client-secret-rotation` feature, keeps the previous secret valid for its
//! grace period. Without one, the previous secret stops working at once.
//! The annotation value acted on is recorded on the client in Keycloak, so a
//! request is handled once even if the status write is lost.

use keycloak_operator_api::{KeycloakClient, ROTATE_SECRET_ANNOTATION, SecretRotationStatus};
use keycloak_operator_sdk::ownership::attribute;
use keycloak_operator_sdk::{ReconcileError, keycloak};
use serde_json::Value;

use crate::managed::keys;

const CLIENT_SECRET: &str = "/realms/{realm}/clients/{id}/client-secret";

/// Keycloak's attributes on the secret (seconds since the epoch).
const CREATED: &str = "client.secret.creation.time";
const PREVIOUS_EXPIRES: &str = "client.secret.rotated.expiration.time";

/// Why the secret is rotated now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// The annotation holds a value not acted on yet.
    Requested(String),
    /// The secret is older than the rotation period.
    Period,
}

/// The rotate-secret annotation's value, if set.
pub fn requested(resource: &KeycloakClient) -> Option<&str> {
    resource
        .metadata
        .annotations
        .as_ref()?
        .get(ROTATE_SECRET_ANNOTATION)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

fn seconds(client: &Value, key: &str) -> Option<i64> {
    attribute(client.get("attributes"), key)?.parse().ok()
}

/// Whether the (generated) secret of `client` must be rotated now.
pub fn due(resource: &KeycloakClient, client: &Value, now: i64) -> Option<Due> {
    if let Some(request) = requested(resource) {
        let handled = attribute(client.get("attributes"), keys::ROTATION_HANDLED);
        if handled.as_deref() != Some(request) {
            return Some(Due::Requested(request.to_owned()));
        }
    }
    let period = resource.spec.credentials.rotation_period_seconds?;
    // A secret of unknown age (set by hand) is rotated: the period is a promise.
    match seconds(client, CREATED) {
        Some(created) if now < created + i64::from(period) => None,
        _ => Some(Due::Period),
    }
}

/// Asks Keycloak for a new secret.
pub fn rotate(realm: &str, id: &str) -> Result<(), ReconcileError> {
    let reply = keycloak::send(keycloak::Method::Post, CLIENT_SECRET, &[realm, id], &[], None)?;
    if reply.is_success() {
        Ok(())
    } else {
        Err(keycloak::unexpected("regenerating the client secret", &reply))
    }
}

/// Seconds until the next periodic rotation of `client`, if one is set.
pub fn next_rotation_in(resource: &KeycloakClient, client: &Value, now: i64) -> Option<i64> {
    let period = resource.spec.credentials.rotation_period_seconds?;
    let created = seconds(client, CREATED).unwrap_or(now);
    Some((created + i64::from(period) - now).max(1))
}

/// The status of the secret of `client` (times only).
pub fn status(resource: &KeycloakClient, client: &Value, now: i64) -> SecretRotationStatus {
    let created = seconds(client, CREATED);
    SecretRotationStatus {
        secret_created_at: created.map(rfc3339),
        handled_request: attribute(client.get("attributes"), keys::ROTATION_HANDLED).filter(|v| !v.is_empty()),
        previous_secret_valid_until: seconds(client, PREVIOUS_EXPIRES)
            .filter(|until| *until > now)
            .map(rfc3339),
        next_rotation_at: resource
            .spec
            .credentials
            .rotation_period_seconds
            .map(|period| rfc3339(created.unwrap_or(now) + i64::from(period))),
    }
}

/// Seconds since the epoch now, from the host's wall clock (WASI).
#[cfg(target_arch = "wasm32")]
pub fn now() -> i64 {
    i64::try_from(wasip2::clocks::wall_clock::now().seconds).unwrap_or(i64::MAX)
}

/// Seconds since the epoch now (native unit tests).
#[cfg(not(target_arch = "wasm32"))]
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// Seconds since the epoch as RFC 3339 in UTC, as Kubernetes writes times.
pub fn rfc3339(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resource(annotation: Option<&str>, period: Option<i32>) -> KeycloakClient {
        let mut value = json!({
            "apiVersion": "keycloak.wasmop.dev/v1alpha1", "kind": "KeycloakClient",
            "metadata": {"name": "app"},
            "spec": {"realmRef": {"name": "r"}, "clientId": "app", "credentials": {}},
        });
        if let Some(a) = annotation {
            value["metadata"]["annotations"] = json!({ ROTATE_SECRET_ANNOTATION: a });
        }
        if let Some(p) = period {
            value["spec"]["credentials"]["rotationPeriodSeconds"] = json!(p);
        }
        serde_json::from_value(value).expect("valid resource")
    }

    #[test]
    fn a_request_is_handled_once() {
        let client = json!({"attributes": {CREATED: "1000"}});
        assert_eq!(
            due(&resource(Some("r1"), None), &client, 2000),
            Some(Due::Requested("r1".into()))
        );
        let handled = json!({"attributes": {CREATED: "1000", keys::ROTATION_HANDLED: "r1"}});
        assert_eq!(due(&resource(Some("r1"), None), &handled, 2000), None);
        assert_eq!(due(&resource(None, None), &client, 2000), None);
    }

    #[test]
    fn a_period_rotates_old_secrets_and_says_when_next() {
        let client = json!({"attributes": {CREATED: "1000"}});
        assert_eq!(due(&resource(None, Some(600)), &client, 1500), None);
        assert_eq!(due(&resource(None, Some(600)), &client, 1600), Some(Due::Period));
        assert_eq!(next_rotation_in(&resource(None, Some(600)), &client, 1500), Some(100));
        assert_eq!(due(&resource(None, Some(600)), &json!({}), 1600), Some(Due::Period));
    }

    #[test]
    fn status_has_times_only() {
        let client = json!({"attributes": {CREATED: "0", PREVIOUS_EXPIRES: "100", keys::ROTATION_HANDLED: "r1"}});
        let status = status(&resource(None, Some(60)), &client, 50);
        assert_eq!(status.secret_created_at.as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(
            status.previous_secret_valid_until.as_deref(),
            Some("1970-01-01T00:01:40Z")
        );
        assert_eq!(status.handled_request.as_deref(), Some("r1"));
        assert_eq!(status.next_rotation_at.as_deref(), Some("1970-01-01T00:01:00Z"));
    }

    #[test]
    fn formats_dates_like_kubernetes() {
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_702_394), "2026-11-26T14:13:14Z");
    }
}
