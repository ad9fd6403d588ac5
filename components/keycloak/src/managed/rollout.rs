//! Reading a rollout from the Deployment and its Pods: available, under way,
//! or stuck — and if stuck, why, in terms a platform team can act on.

use keycloak_operator_sdk::Detail;
use serde_json::Value;

/// Where the rollout stands.
#[derive(Debug, Clone, PartialEq)]
pub enum Rollout {
    /// Every desired pod is updated and available.
    Available {
        /// Available pods.
        available: i32,
    },
    /// Pods are being created or replaced.
    InProgress {
        /// Why not yet available.
        detail: Detail,
        /// Available pods.
        available: i32,
    },
    /// It will not finish without a change (bad image, database, crashes).
    Stuck {
        /// What is wrong.
        detail: Detail,
        /// Available pods.
        available: i32,
    },
}

fn detail(reason: &str, message: impl Into<String>) -> Detail {
    Detail {
        reason: reason.to_owned(),
        message: message.into(),
    }
}

fn int(value: &Value, pointer: &str) -> i64 {
    value.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// Log lines of Keycloak that say it cannot reach or log in to its database.
/// Compared lower-case; Keycloak 26 prints, for example, "ERROR: Failed to
/// obtain JDBC connection" and "ERROR: Connection to 10.0.0.5:5432 refused".
const DATABASE_UNREACHABLE: &[&str] = &[
    "failed to obtain jdbc connection",
    "connection refused",
    "unknownhostexception",
    "the connection attempt failed",
    "could not connect to server",
];
const DATABASE_REJECTED: &[&str] = &["password authentication failed", "does not exist", "fatal: role"];

fn pod_problem(pod: &Value) -> Option<Detail> {
    let name = pod.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("a pod");
    let statuses = pod.pointer("/status/containerStatuses").and_then(Value::as_array)?;
    for status in statuses {
        let waiting = status
            .pointer("/state/waiting/reason")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let waiting_message = status
            .pointer("/state/waiting/message")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if matches!(
            waiting,
            "ImagePullBackOff" | "ErrImagePull" | "InvalidImageName" | "ErrImageNeverPull"
        ) {
            let image = status.get("image").and_then(Value::as_str).unwrap_or_default();
            return Some(detail(
                "ImagePullFailed",
                format!("pod {name} cannot pull image {image}: {waiting} {waiting_message}"),
            ));
        }
        if waiting == "CreateContainerConfigError" {
            return Some(detail("ContainerConfigError", format!("pod {name}: {waiting_message}")));
        }
        let last = status
            .pointer("/lastState/terminated/message")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let restarts = status.get("restartCount").and_then(Value::as_i64).unwrap_or(0);
        if restarts > 0 || waiting == "CrashLoopBackOff" {
            let line = |markers: &[&str]| {
                last.lines()
                    .find(|l| {
                        let l = l.to_lowercase();
                        markers.iter().any(|m| l.contains(m))
                    })
                    .map(|l| l.trim().chars().take(300).collect::<String>())
            };
            if let Some(line) = line(DATABASE_REJECTED) {
                return Some(detail(
                    "DatabaseAuthenticationFailed",
                    format!("pod {name}: Keycloak cannot log in to its database: {line}"),
                ));
            }
            if let Some(line) = line(DATABASE_UNREACHABLE) {
                return Some(detail(
                    "DatabaseUnreachable",
                    format!("pod {name}: Keycloak cannot reach its database: {line}"),
                ));
            }
            if waiting == "CrashLoopBackOff" {
                let tail: String = last.lines().last().unwrap_or_default().chars().take(300).collect();
                return Some(detail(
                    "KeycloakCrashing",
                    format!("pod {name} keeps exiting ({restarts} restarts); last log line: {tail}"),
                ));
            }
        }
    }
    None
}

/// Assesses the rollout of `replicas` pods of `deployment` (as observed),
/// with its `pods`.
pub fn assess(deployment: Option<&Value>, pods: &[&Value], replicas: i32) -> Rollout {
    let Some(deployment) = deployment else {
        return Rollout::InProgress {
            detail: detail("Deploying", "the Deployment is being created"),
            available: 0,
        };
    };
    let available = int(deployment, "/status/availableReplicas") as i32;
    if let Some(problem) = pods.iter().find_map(|pod| pod_problem(pod)) {
        return Rollout::Stuck {
            detail: problem,
            available,
        };
    }
    let deadline_exceeded = deployment
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded")
        });
    if deadline_exceeded {
        return Rollout::Stuck {
            detail: detail(
                "RolloutStuck",
                "the Deployment made no progress within its deadline; see its pods' events",
            ),
            available,
        };
    }
    let current = int(deployment, "/status/observedGeneration") >= int(deployment, "/metadata/generation");
    let updated = int(deployment, "/status/updatedReplicas");
    let wanted = i64::from(replicas);
    if !current || updated < wanted || i64::from(available) < wanted {
        return Rollout::InProgress {
            detail: detail(
                "RolloutInProgress",
                format!("{available} of {replicas} Keycloak pods available, {updated} updated"),
            ),
            available,
        };
    }
    Rollout::Available { available }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(generation: i64, observed: i64, updated: i64, available: i64) -> Value {
        json!({"metadata": {"generation": generation}, "status": {"observedGeneration": observed, "updatedReplicas": updated, "availableReplicas": available}})
    }

    #[test]
    fn available_only_when_every_pod_is_updated_and_available() {
        assert_eq!(
            assess(Some(&deployment(2, 2, 2, 2)), &[], 2),
            Rollout::Available { available: 2 }
        );
        assert!(matches!(
            assess(Some(&deployment(2, 1, 2, 2)), &[], 2),
            Rollout::InProgress { .. }
        ));
        assert!(matches!(
            assess(Some(&deployment(2, 2, 2, 1)), &[], 2),
            Rollout::InProgress { .. }
        ));
        assert!(matches!(assess(None, &[], 1), Rollout::InProgress { .. }));
    }

    #[test]
    fn tells_a_bad_image_from_a_database_that_does_not_answer() {
        let pulling = json!({"metadata": {"name": "kc-1"}, "status": {"containerStatuses": [{"image": "kc:nope", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}});
        let Rollout::Stuck { detail, .. } = assess(Some(&deployment(1, 1, 0, 0)), &[&pulling], 1) else {
            panic!("stuck")
        };
        assert_eq!(detail.reason, "ImagePullFailed");
        let crashing = json!({"metadata": {"name": "kc-1"}, "status": {"containerStatuses": [{
            "restartCount": 3,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"message": "ERROR [org.keycloak] Failed to start server\nCaused by: java.net.ConnectException: Connection refused"}},
        }]}});
        let Rollout::Stuck { detail, .. } = assess(Some(&deployment(1, 1, 1, 0)), &[&crashing], 1) else {
            panic!("stuck")
        };
        assert_eq!(detail.reason, "DatabaseUnreachable");
    }
}
