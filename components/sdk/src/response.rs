//! Builders for what a reconcile returns.

use serde::Serialize;
use serde_json::Value;

use crate::{Condition, Detail, Event, EventType, FinalizeResponse, Outcome, ReconcileError, ReconcileResponse};

/// A successful reconcile: the outcome, status fields, desired children,
/// Events, drift and a requeue hint.
#[derive(Debug, Clone)]
pub struct Response {
    outcome: Outcome,
    status: Value,
    children: Vec<Value>,
    conditions: Vec<Condition>,
    events: Vec<Event>,
    drift_corrected: Vec<String>,
    requeue_after_seconds: Option<u32>,
}

fn detail(reason: &str, message: impl Into<String>) -> Detail {
    Detail {
        reason: reason.to_owned(),
        message: message.into(),
    }
}

pub(crate) fn event(event_type: EventType, reason: &str, action: &str, message: impl Into<String>) -> Event {
    Event {
        event_type,
        reason: reason.to_owned(),
        action: action.to_owned(),
        message: message.into(),
    }
}

impl Response {
    fn with_outcome(outcome: Outcome) -> Self {
        Response {
            outcome,
            status: Value::Object(Default::default()),
            children: Vec::new(),
            conditions: Vec::new(),
            events: Vec::new(),
            drift_corrected: Vec::new(),
            requeue_after_seconds: None,
        }
    }

    /// The resource is converged.
    pub fn ready(reason: &str, message: impl Into<String>) -> Self {
        Self::with_outcome(Outcome::Ready(detail(reason, message)))
    }

    /// Work is under way; the host reports Reconciling and requeues.
    pub fn progressing(reason: &str, message: impl Into<String>) -> Self {
        Self::with_outcome(Outcome::Progressing(detail(reason, message)))
    }

    /// Declared, but stuck until something changes (an image that cannot be
    /// pulled): the host applies children and status, and reports Stalled.
    pub fn stalled(reason: &str, message: impl Into<String>) -> Self {
        Self::with_outcome(Outcome::Stalled(detail(reason, message)))
    }

    /// Kind-specific status fields (a struct serialising to a JSON object).
    /// A value that cannot be serialised fails the reconcile rather than
    /// reaching the host as something else.
    pub fn status(mut self, status: impl Serialize) -> Result<Self, ReconcileError> {
        self.status = serde_json::to_value(status).map_err(|e| not_serialisable("status", &e))?;
        Ok(self)
    }

    /// A desired child object. A child that cannot be serialised fails the
    /// reconcile: dropped, the host would prune the object it stands for.
    pub fn child(mut self, child: impl Serialize) -> Result<Self, ReconcileError> {
        let value = serde_json::to_value(child).map_err(|e| not_serialisable("a child", &e))?;
        self.children.push(value);
        Ok(self)
    }

    /// An extra condition besides the host's own.
    pub fn condition(mut self, condition_type: &str, status: bool, reason: &str, message: impl Into<String>) -> Self {
        self.conditions.push(Condition {
            condition_type: condition_type.to_owned(),
            status,
            detail: detail(reason, message),
        });
        self
    }

    /// A Normal Event.
    pub fn event(mut self, reason: &str, action: &str, message: impl Into<String>) -> Self {
        self.events.push(event(EventType::Normal, reason, action, message));
        self
    }

    /// A Warning Event.
    pub fn warning(mut self, reason: &str, action: &str, message: impl Into<String>) -> Self {
        self.events.push(event(EventType::Warning, reason, action, message));
        self
    }

    /// Managed fields that had drifted and were put back.
    pub fn drift_corrected(mut self, fields: impl IntoIterator<Item = String>) -> Self {
        self.drift_corrected.extend(fields);
        self
    }

    /// Reconcile again after this many seconds at the latest.
    pub fn requeue_after(mut self, seconds: u32) -> Self {
        self.requeue_after_seconds = Some(seconds);
        self
    }

    /// The WIT record the host receives.
    pub fn into_raw(self) -> ReconcileResponse {
        ReconcileResponse {
            outcome: self.outcome,
            status: self.status.to_string(),
            children: self.children.iter().map(Value::to_string).collect(),
            conditions: self.conditions,
            events: self.events,
            drift_corrected: self.drift_corrected,
            requeue_after_seconds: self.requeue_after_seconds,
        }
    }
}

fn not_serialisable(what: &str, error: &serde_json::Error) -> ReconcileError {
    crate::error::permanent(
        "SerializationFailed",
        format!("the component could not serialise {what}: {error}"),
    )
}

/// A successful finalize.
#[derive(Debug, Clone, Default)]
pub struct Finalized {
    events: Vec<Event>,
}

impl Finalized {
    /// A Normal Event.
    pub fn event(mut self, reason: &str, action: &str, message: impl Into<String>) -> Self {
        self.events.push(event(EventType::Normal, reason, action, message));
        self
    }

    /// A Warning Event.
    pub fn warning(mut self, reason: &str, action: &str, message: impl Into<String>) -> Self {
        self.events.push(event(EventType::Warning, reason, action, message));
        self
    }

    /// The WIT record the host receives.
    pub fn into_raw(self) -> FinalizeResponse {
        FinalizeResponse { events: self.events }
    }
}
