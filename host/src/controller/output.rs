//! What a component's answer must be for the host to apply it.
//!
//! A component is not trusted: whatever it returns, the host must neither
//! crash nor write something the API server will refuse over and over (a
//! status write refused is a resource whose status never moves). So the
//! answer is checked before anything is written, against the rules of
//! `metav1.Condition` and of Events, and against sizes that keep one
//! resource from filling etcd. An answer that fails becomes the resource's
//! `InvalidComponentOutput`, naming the field.

use crate::runtime::model::{Condition, Event, Outcome, ReconcileError, ReconcileResponse};

/// Largest status (kind-specific fields, as JSON) a component may return.
pub const MAX_STATUS_BYTES: usize = 64 * 1024;
/// Most children one resource may have.
pub const MAX_CHILDREN: usize = 256;
/// Largest child, as JSON (a Secret or ConfigMap holds at most 1 MiB).
pub const MAX_CHILD_BYTES: usize = 1024 * 1024;
/// Most extra conditions a component may report.
pub const MAX_CONDITIONS: usize = 16;
/// Most Events one reconcile may record.
pub const MAX_EVENTS: usize = 16;
/// Most drifted fields one reconcile may report.
pub const MAX_DRIFTED: usize = 1024;
/// Longest condition type (`metav1.Condition`: a qualified name).
const MAX_TYPE: usize = 316;
/// Longest reason of a condition or an Event.
const MAX_REASON: usize = 128;
/// Longest Event action.
const MAX_ACTION: usize = 128;

/// Why an answer was refused, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the component returned {0}")]
pub struct InvalidOutput(String);

fn invalid(what: String) -> InvalidOutput {
    InvalidOutput(what)
}

/// Quotes a value from the component, clipped: it may be huge.
fn quote(value: &str) -> String {
    let clipped: String = value.chars().take(64).collect();
    if clipped.len() < value.len() {
        format!("{clipped:?}…")
    } else {
        format!("{clipped:?}")
    }
}

/// `^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$`, at most 128 characters:
/// what `metav1.Condition` accepts as a reason.
fn check_reason(field: &str, reason: &str) -> Result<(), InvalidOutput> {
    let bytes = reason.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= MAX_REASON
        && bytes[0].is_ascii_alphabetic()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b',' | b':'))
        && !matches!(bytes[bytes.len() - 1], b',' | b':');
    if valid {
        Ok(())
    } else {
        Err(invalid(format!(
            "{field} {}: a reason is CamelCase, 1–{MAX_REASON} letters, digits, '_', ',' or ':', starting with a letter",
            quote(reason)
        )))
    }
}

/// A DNS-1123 subdomain, the optional prefix of a condition type.
fn is_dns_subdomain(prefix: &str) -> bool {
    prefix.len() <= 253
        && prefix.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b.len() <= 63
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                && b[0] != b'-'
                && b[b.len() - 1] != b'-'
        })
}

/// `metav1.Condition`'s type: `Name` or `example.com/Name`, where the name
/// is alphanumeric with `-`, `_` or `.` inside, at most 63 characters.
fn check_condition_type(condition_type: &str) -> Result<(), InvalidOutput> {
    let (prefix, name) = match condition_type.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, condition_type),
    };
    let n = name.as_bytes();
    let name_valid = !n.is_empty()
        && n.len() <= 63
        && n[0].is_ascii_alphanumeric()
        && n[n.len() - 1].is_ascii_alphanumeric()
        && n.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
    if condition_type.len() <= MAX_TYPE && name_valid && prefix.is_none_or(is_dns_subdomain) {
        Ok(())
    } else {
        Err(invalid(format!(
            "condition type {}: a type is CamelCase or example.com/CamelCase",
            quote(condition_type)
        )))
    }
}

fn check_conditions(conditions: &[Condition]) -> Result<(), InvalidOutput> {
    if conditions.len() > MAX_CONDITIONS {
        return Err(invalid(format!(
            "{} conditions; at most {MAX_CONDITIONS} are kept",
            conditions.len()
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for condition in conditions {
        check_condition_type(&condition.condition_type)?;
        if !seen.insert(condition.condition_type.as_str()) {
            return Err(invalid(format!(
                "condition type {} twice",
                quote(&condition.condition_type)
            )));
        }
        check_reason(
            &format!("the reason of condition {}", condition.condition_type),
            &condition.detail.reason,
        )?;
    }
    Ok(())
}

/// Checks the Events of a reconcile or a cleanup.
pub fn check_events(events: &[Event]) -> Result<(), InvalidOutput> {
    if events.len() > MAX_EVENTS {
        return Err(invalid(format!(
            "{} Events at once; at most {MAX_EVENTS} are recorded",
            events.len()
        )));
    }
    for event in events {
        check_reason("the Event reason", &event.reason)?;
        if event.action.is_empty() || event.action.len() > MAX_ACTION {
            return Err(invalid(format!(
                "the Event action {}: 1–{MAX_ACTION} characters",
                quote(&event.action)
            )));
        }
    }
    Ok(())
}

/// Checks a successful answer.
pub fn check(response: &ReconcileResponse) -> Result<(), InvalidOutput> {
    let outcome = match &response.outcome {
        Outcome::Ready(d) | Outcome::Progressing(d) | Outcome::Stalled(d) => d,
    };
    check_reason("the outcome reason", &outcome.reason)?;
    if response.status.len() > MAX_STATUS_BYTES {
        return Err(invalid(format!(
            "a status of {} bytes; at most {MAX_STATUS_BYTES} are written",
            response.status.len()
        )));
    }
    if response.children.len() > MAX_CHILDREN {
        return Err(invalid(format!(
            "{} children; at most {MAX_CHILDREN} are applied",
            response.children.len()
        )));
    }
    if let Some(big) = response.children.iter().find(|c| c.len() > MAX_CHILD_BYTES) {
        return Err(invalid(format!(
            "a child of {} bytes; at most {MAX_CHILD_BYTES} are applied",
            big.len()
        )));
    }
    if response.drift_corrected.len() > MAX_DRIFTED {
        return Err(invalid(format!(
            "{} drifted fields; at most {MAX_DRIFTED} are counted",
            response.drift_corrected.len()
        )));
    }
    check_conditions(&response.conditions)?;
    check_events(&response.events)
}

/// Checks a failed answer: its reason becomes the Ready condition's.
pub fn check_error(error: &ReconcileError) -> Result<(), InvalidOutput> {
    check_reason("the error reason", &error.detail().reason)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::runtime::model::{Detail, EventType};

    fn ready() -> ReconcileResponse {
        ReconcileResponse {
            outcome: Outcome::Ready(Detail::new("Reconciled", "fine")),
            status: "{}".into(),
            children: vec![],
            conditions: vec![],
            events: vec![],
            drift_corrected: vec![],
            requeue_after_seconds: None,
        }
    }

    fn condition(condition_type: &str, reason: &str) -> Condition {
        Condition {
            condition_type: condition_type.into(),
            status: true,
            detail: Detail::new(reason, "m"),
        }
    }

    #[test]
    fn what_kubernetes_accepts_is_accepted() {
        let mut response = ready();
        response.conditions = vec![
            condition("CredentialsReady", "SecretWritten"),
            condition("users.example.com/Synced", "A_b,c:D9"),
        ];
        response.events = vec![Event {
            event_type: EventType::Normal,
            reason: "Created".into(),
            action: "Reconcile".into(),
            message: "ü".repeat(5000),
        }];
        assert_eq!(check(&response), Ok(()));
    }

    #[test]
    fn each_rule_names_what_broke_it() {
        let cases: Vec<(ReconcileResponse, &str)> = vec![
            (
                ReconcileResponse {
                    outcome: Outcome::Ready(Detail::new("all good", "")),
                    ..ready()
                },
                "outcome reason \"all good\"",
            ),
            (
                ReconcileResponse {
                    conditions: vec![condition("not a type!", "Fine")],
                    ..ready()
                },
                "condition type \"not a type!\"",
            ),
            (
                ReconcileResponse {
                    conditions: vec![condition("Synced", "Fine"), condition("Synced", "Fine")],
                    ..ready()
                },
                "twice",
            ),
            (
                ReconcileResponse {
                    conditions: vec![condition("Synced", "Trailing:")],
                    ..ready()
                },
                "reason of condition Synced",
            ),
            (
                ReconcileResponse {
                    status: format!("{{\"x\":\"{}\"}}", "a".repeat(MAX_STATUS_BYTES)),
                    ..ready()
                },
                "a status of",
            ),
            (
                ReconcileResponse {
                    children: vec!["{}".into(); MAX_CHILDREN + 1],
                    ..ready()
                },
                "children",
            ),
        ];
        for (response, words) in cases {
            let error = check(&response).expect_err(words).to_string();
            assert!(error.contains(words), "{error:?} should contain {words:?}");
        }
        let error = check_error(&ReconcileError::Transient(Detail::new("", "x"))).expect_err("empty reason");
        assert!(error.to_string().contains("error reason"));
    }

    /// Mirrors the API server's own regular expressions, to compare with.
    fn kubernetes_accepts_reason(reason: &str) -> bool {
        let b = reason.as_bytes();
        !b.is_empty()
            && b.len() <= MAX_REASON
            && b[0].is_ascii_alphabetic()
            && (b.len() == 1
                || (b[1..b.len() - 1]
                    .iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b',' | b':'))
                    && (b[b.len() - 1].is_ascii_alphanumeric() || b[b.len() - 1] == b'_')))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any strings at all, valid or not: a verdict, never a panic, and
        /// a reason accepted only when Kubernetes would accept it.
        #[test]
        fn arbitrary_answers_get_a_verdict_and_never_a_panic(
            reason in "\\PC{0,140}|[A-Za-z][A-Za-z0-9_,:]{0,130}",
            condition_type in "\\PC{0,80}|([a-z0-9.-]{1,20}/)?[A-Za-z0-9][A-Za-z0-9_.-]{0,70}",
            status in "\\PC{0,200}",
            children in proptest::collection::vec("\\PC{0,50}", 0..4),
            action in "\\PC{0,140}",
        ) {
            let response = ReconcileResponse {
                outcome: Outcome::Progressing(Detail::new(&reason, "m")),
                status,
                children,
                conditions: vec![condition(&condition_type, "Fine")],
                events: vec![Event { event_type: EventType::Warning, reason: "Fine".into(), action, message: String::new() }],
                drift_corrected: vec![],
                requeue_after_seconds: None,
            };
            let verdict = check(&response);
            if verdict.is_ok() {
                prop_assert!(kubernetes_accepts_reason(&reason), "{reason:?} accepted");
            }
            prop_assert_eq!(check_reason("r", &reason).is_ok(), kubernetes_accepts_reason(&reason), "{:?}", reason);
        }
    }
}
