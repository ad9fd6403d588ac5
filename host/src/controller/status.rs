//! Status in the Kubernetes and kstatus conventions: `observedGeneration`,
//! and the conditions Ready, Reconciling, Stalled and Degraded with stable
//! reasons, so that `kubectl wait --for=condition=Ready` and Flux's health
//! checks work without configuration. kstatus reads Reconciling=True as "in
//! progress" and Stalled=True as "failed", so whenever Ready is False one of
//! them is True.

use keycloak_operator_api::{ComponentIdentity, condition_types, reasons};
use serde_json::{Map, Value, json};

use crate::runtime::model::{Condition, Detail};

/// Longest condition message written.
const MAX_MESSAGE: usize = 1024;

/// How a reconcile ended, for the conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Converged.
    Ready(Detail),
    /// Work under way; retried soon.
    Progressing(Detail),
    /// Failed, retried with backoff.
    Retrying(Detail),
    /// Failed, stuck until something changes.
    Stalled(Detail),
}

impl Verdict {
    /// The reason of the Ready condition.
    pub fn detail(&self) -> &Detail {
        match self {
            Verdict::Ready(d) | Verdict::Progressing(d) | Verdict::Retrying(d) | Verdict::Stalled(d) => d,
        }
    }

    /// A label for metrics.
    pub fn result_label(&self) -> &'static str {
        match self {
            Verdict::Ready(_) => "ready",
            Verdict::Progressing(_) => "progressing",
            Verdict::Retrying(_) => "retrying",
            Verdict::Stalled(_) => "stalled",
        }
    }
}

/// What goes into the status.
pub struct StatusInput<'a> {
    /// The outcome.
    pub verdict: &'a Verdict,
    /// Set when a dependency (Keycloak) is down.
    pub degraded: Option<Detail>,
    /// Extra conditions from the component.
    pub extra: &'a [Condition],
    /// `metadata.generation` reconciled.
    pub generation: Option<i64>,
    /// The component that reconciled.
    pub identity: Option<ComponentIdentity>,
    /// Kind-specific fields from the component; `None` keeps the current ones.
    pub fields: Option<Map<String, Value>>,
    /// The current status.
    pub current: Option<&'a Value>,
}

fn truncate(message: &str) -> String {
    match message.char_indices().nth(MAX_MESSAGE) {
        Some((end, _)) => format!("{}…", &message[..end]),
        None => message.to_owned(),
    }
}

fn condition(
    current: &[Value],
    kind: &str,
    status: bool,
    detail: &Detail,
    generation: Option<i64>,
    now: &str,
) -> Value {
    let status = if status { "True" } else { "False" };
    // The transition time changes only when the status does.
    let since = current
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
        .filter(|c| c.get("status").and_then(Value::as_str) == Some(status))
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(now));
    let mut c = json!({
        "type": kind,
        "status": status,
        "reason": detail.reason,
        "message": truncate(&detail.message),
        "lastTransitionTime": since,
    });
    if let Some(generation) = generation {
        c["observedGeneration"] = json!(generation);
    }
    c
}

/// Now, as a condition's `lastTransitionTime`.
pub fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The whole status the host writes.
pub fn desired(input: StatusInput<'_>, now: &str) -> Value {
    let current_conditions: Vec<Value> = input
        .current
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut status: Map<String, Value> = match input.fields {
        Some(fields) => fields,
        None => input.current.and_then(Value::as_object).cloned().unwrap_or_default(),
    };
    for host_owned in ["conditions", "observedGeneration", "reconciledBy"] {
        status.remove(host_owned);
    }
    let fine = |reason: &str, message: &str| Detail::new(reason, message);
    let (ready, reconciling, stalled) = match input.verdict {
        Verdict::Ready(_) => (true, None, None),
        Verdict::Progressing(d) | Verdict::Retrying(d) => (false, Some(d), None),
        Verdict::Stalled(d) => (false, None, Some(d)),
    };
    let g = input.generation;
    let detail = input.verdict.detail();
    let mut conditions = vec![
        condition(&current_conditions, condition_types::READY, ready, detail, g, now),
        condition(
            &current_conditions,
            condition_types::RECONCILING,
            reconciling.is_some(),
            reconciling.unwrap_or(&fine(reasons::RECONCILED, "Nothing left to do")),
            g,
            now,
        ),
        condition(
            &current_conditions,
            condition_types::STALLED,
            stalled.is_some(),
            stalled.unwrap_or(&fine(reasons::RECONCILED, "Not stalled")),
            g,
            now,
        ),
        condition(
            &current_conditions,
            condition_types::DEGRADED,
            input.degraded.is_some(),
            input
                .degraded
                .as_ref()
                .unwrap_or(&fine(reasons::DEPENDENCIES_HEALTHY, "Every dependency answers")),
            g,
            now,
        ),
    ];
    for extra in input.extra {
        let reserved = [
            condition_types::READY,
            condition_types::RECONCILING,
            condition_types::STALLED,
            condition_types::DEGRADED,
        ];
        if !reserved.contains(&extra.condition_type.as_str()) {
            conditions.push(condition(
                &current_conditions,
                &extra.condition_type,
                extra.status,
                &extra.detail,
                g,
                now,
            ));
        }
    }
    status.insert("conditions".into(), Value::Array(conditions));
    if let Some(generation) = g {
        status.insert("observedGeneration".into(), json!(generation));
    }
    match input.identity {
        Some(identity) => {
            status.insert("reconciledBy".into(), json!(identity));
        }
        None => {
            if let Some(previous) = input.current.and_then(|s| s.get("reconciledBy")) {
                status.insert("reconciledBy".into(), previous.clone());
            }
        }
    }
    Value::Object(status)
}

/// The reason of the current Ready condition, if any.
pub fn current_ready_reason(current: Option<&Value>) -> Option<String> {
    current?
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(condition_types::READY))?
        .get("reason")?
        .as_str()
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(verdict: &'a Verdict, current: Option<&'a Value>) -> StatusInput<'a> {
        StatusInput {
            verdict,
            degraded: None,
            extra: &[],
            generation: Some(3),
            identity: None,
            fields: None,
            current,
        }
    }

    fn find<'a>(status: &'a Value, kind: &str) -> &'a Value {
        status["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == kind))
            .expect("condition present")
    }

    #[test]
    fn ready_sets_every_condition_and_observed_generation() {
        let verdict = Verdict::Ready(Detail::new("Reconciled", "ok"));
        let status = desired(input(&verdict, None), "t0");
        assert_eq!(find(&status, "Ready")["status"], "True");
        assert_eq!(find(&status, "Reconciling")["status"], "False");
        assert_eq!(find(&status, "Stalled")["status"], "False");
        assert_eq!(find(&status, "Degraded")["status"], "False");
        assert_eq!(status["observedGeneration"], 3);
    }

    #[test]
    fn not_ready_always_says_reconciling_or_stalled_for_kstatus() {
        let retrying = Verdict::Retrying(Detail::new("KeycloakUnavailable", "down"));
        let status = desired(input(&retrying, None), "t0");
        assert_eq!(find(&status, "Ready")["status"], "False");
        assert_eq!(find(&status, "Ready")["reason"], "KeycloakUnavailable");
        assert_eq!(find(&status, "Reconciling")["status"], "True");
        let stalled = Verdict::Stalled(Detail::new("Conflict", "owned elsewhere"));
        let status = desired(input(&stalled, None), "t0");
        assert_eq!(find(&status, "Stalled")["status"], "True");
        assert_eq!(find(&status, "Stalled")["reason"], "Conflict");
    }

    #[test]
    fn transition_times_change_only_with_the_status() {
        let verdict = Verdict::Ready(Detail::new("Reconciled", "ok"));
        let first = desired(input(&verdict, None), "t0");
        let second = desired(input(&verdict, Some(&first)), "t1");
        assert_eq!(
            first, second,
            "an unchanged status is written identically, so no write is needed"
        );
        let failed = Verdict::Retrying(Detail::new("KeycloakUnavailable", "down"));
        let third = desired(input(&failed, Some(&second)), "t2");
        assert_eq!(find(&third, "Ready")["lastTransitionTime"], "t2");
        assert_eq!(find(&third, "Stalled")["lastTransitionTime"], "t0");
    }

    #[test]
    fn failures_keep_the_kind_specific_fields() {
        let current = json!({"realmId": "abc", "conditions": []});
        let failed = Verdict::Retrying(Detail::new("KeycloakUnavailable", "down"));
        let status = desired(input(&failed, Some(&current)), "t0");
        assert_eq!(status["realmId"], "abc");
    }
}
