//! Secrets in the resource's own namespace (needs the `read-secrets`
//! capability). Values read here must never reach logs, status or Events.

use crate::ReconcileError;
use crate::bindings::keycloak_operator::reconciler::secrets::{Error, read as host_read};
use crate::error::{permanent, transient};

/// Reads one key of a Secret; `Ok(None)` when the Secret or key is missing.
pub fn read(name: &str, key: &str) -> Result<Option<String>, ReconcileError> {
    match host_read(name, key) {
        Ok(value) => Ok(Some(value)),
        Err(Error::NotFound(_)) => Ok(None),
        Err(Error::Forbidden(message)) => Err(permanent("SecretAccessDenied", message)),
        Err(Error::Invalid(message)) => Err(permanent("InvalidSecret", message)),
        Err(Error::Unavailable(message)) => Err(transient("KubernetesUnavailable", message)),
    }
}
