//! The host side of the component's imports, one module per WIT interface.
//! Each module holds the version-independent logic; the per-version bindings
//! only convert types and delegate here.

pub mod keycloak;
pub mod log;
pub mod secrets;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use super::model::{Detail, KeycloakError, KeycloakRequest, KeycloakResponse, SecretError};

/// Sends Keycloak requests for one resource, already resolved to one
/// Keycloak instance and scoped to what the resource may touch.
pub trait KeycloakGateway: Send + Sync {
    /// Sends one request.
    fn send(&self, request: KeycloakRequest) -> BoxFuture<'_, Result<KeycloakResponse, KeycloakError>>;
}

/// Reads Secrets in one namespace.
pub trait SecretReader: Send + Sync {
    /// Reads one key.
    fn read(&self, name: String, key: String) -> BoxFuture<'_, Result<String, SecretError>>;
}

/// What one call may use and what it did, for logs, metrics and conditions.
pub struct CallContext {
    /// `name@version` of the component, for logs.
    pub component: String,
    /// `Kind namespace/name` of the resource, for logs.
    pub resource: String,
    /// Keycloak access, when granted and the resource has a target.
    pub keycloak: Option<Arc<dyn KeycloakGateway>>,
    /// Secret access, when granted.
    pub secrets: Option<Arc<dyn SecretReader>>,
    /// What the call did.
    pub stats: CallStats,
}

impl CallContext {
    /// A context with no capabilities (for `describe`).
    pub fn bare(component: impl Into<String>, resource: impl Into<String>) -> Self {
        CallContext {
            component: component.into(),
            resource: resource.into(),
            keycloak: None,
            secrets: None,
            stats: CallStats::default(),
        }
    }
}

/// What one call did with its imports.
#[derive(Debug, Clone, Default)]
pub struct CallStats {
    /// Keycloak requests sent.
    pub keycloak_requests: u32,
    /// Time spent waiting for Keycloak.
    pub keycloak_time: Duration,
    /// Whether some request found Keycloak unavailable.
    pub keycloak_unavailable: bool,
    /// Whether some request could not authenticate.
    pub keycloak_unauthenticated: bool,
    /// The first request the host refused (out of scope, or against a
    /// policy): the resource is stalled with this, whatever the component
    /// made of the refusal.
    pub refusal: Option<Detail>,
}
