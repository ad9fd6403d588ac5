//! `keycloak`: admin API requests, through the resource's scoped gateway.

use std::time::Instant;

use super::CallContext;
use keycloak_operator_api::reasons;

use crate::runtime::model::{Detail, KeycloakError, KeycloakRequest, KeycloakResponse};

/// Sends one request, recording what happened for conditions and metrics.
pub async fn send(call: &mut CallContext, request: KeycloakRequest) -> Result<KeycloakResponse, KeycloakError> {
    let Some(gateway) = call.keycloak.clone() else {
        return Err(KeycloakError::Forbidden(
            "this resource has no Keycloak access (capability keycloak-admin not granted, or the kind has no Keycloak scope)".into(),
        ));
    };
    let started = Instant::now();
    let result = gateway.send(request).await;
    let stats = &mut call.stats;
    stats.keycloak_requests += 1;
    stats.keycloak_time += started.elapsed();
    match &result {
        Err(KeycloakError::Unavailable(_)) => stats.keycloak_unavailable = true,
        Err(KeycloakError::Unauthenticated(_)) => stats.keycloak_unauthenticated = true,
        Err(KeycloakError::Forbidden(message)) => {
            stats.refusal = Some(Detail::new(
                reasons::SCOPE_VIOLATION,
                format!("the component asked for a Keycloak path outside this resource's scope: {message}"),
            ))
        }
        Err(KeycloakError::Refused { reason, message }) => stats.refusal = Some(Detail::new(reason, message)),
        _ => {}
    }
    result
}
