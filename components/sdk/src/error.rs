//! Constructors for [`ReconcileError`], the three ways a reconcile can fail.

use crate::{Detail, ReconcileError};

fn detail(reason: &str, message: impl Into<String>) -> Detail {
    Detail {
        reason: reason.to_owned(),
        message: message.into(),
    }
}

/// May succeed on retry; the host retries with backoff.
pub fn transient(reason: &str, message: impl Into<String>) -> ReconcileError {
    ReconcileError::Transient(detail(reason, message))
}

/// Will not succeed until something outside the spec changes; the resource
/// is reported as stalled.
pub fn permanent(reason: &str, message: impl Into<String>) -> ReconcileError {
    ReconcileError::Permanent(detail(reason, message))
}

/// The spec is wrong; the resource is stalled until the spec changes.
pub fn invalid_spec(reason: &str, message: impl Into<String>) -> ReconcileError {
    ReconcileError::InvalidSpec(detail(reason, message))
}
