//! Shadow rollout: a candidate version reconciles every resource right after
//! the serving version, with every Keycloak write intercepted. Reads pass
//! through; POST, PUT and DELETE are recorded — with a diff of what they
//! would change, secrets redacted — and answered as if they had succeeded,
//! without reaching Keycloak. The candidate's children and status are never
//! applied.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::BoxFuture;
use keycloak_operator_api::PlannedWrite;
use serde_json::Value;

use crate::runtime::imports::KeycloakGateway;
use crate::runtime::model::{KeycloakError, KeycloakRequest, KeycloakResponse, Method};

/// Planned writes kept in a `ReconcilerComponent`'s status.
pub const PLANNED_WRITES_SHOWN: usize = 10;
/// Changed fields listed per planned write.
const CHANGES_PER_WRITE: usize = 20;
/// Characters of a value shown in a change.
const VALUE_CHARS: usize = 120;
/// Writes recorded per resource and reconcile.
const WRITES_PER_RESOURCE: usize = 50;

/// Shown instead of a value that may be secret.
pub const REDACTED: &str = "<redacted>";

/// A gateway for a candidate: reads go to Keycloak, writes are recorded.
pub struct ShadowGateway {
    inner: Arc<dyn KeycloakGateway>,
    resource: String,
    writes: Mutex<Vec<PlannedWrite>>,
}

impl ShadowGateway {
    /// Wraps the real gateway of `resource` (`namespace/name`).
    pub fn new(inner: Arc<dyn KeycloakGateway>, resource: String) -> Self {
        ShadowGateway {
            inner,
            resource,
            writes: Mutex::new(Vec::new()),
        }
    }

    /// The writes recorded so far.
    pub fn writes(&self) -> Vec<PlannedWrite> {
        self.writes.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn intercept(&self, request: KeycloakRequest) -> Result<KeycloakResponse, KeycloakError> {
        let after = match request.body.as_deref().map(serde_json::from_str::<Value>) {
            Some(Ok(body)) => Some(body),
            Some(Err(_)) => Some(Value::String(REDACTED.into())),
            None => None,
        };
        // An update is shown against what Keycloak holds now: a read, which
        // the shadow may make.
        let before = if request.method == Method::Put && after.is_some() {
            let read = KeycloakRequest {
                method: Method::Get,
                route: request.route.clone(),
                params: request.params.clone(),
                query: Vec::new(),
                body: None,
            };
            match self.inner.send(read).await {
                Ok(response) if response.status == 200 => serde_json::from_str(&response.body).ok(),
                _ => None,
            }
        } else {
            None
        };
        let changes = match (&request.method, after) {
            (Method::Delete, _) | (_, None) => Vec::new(),
            (_, Some(after)) => diff(&request.route, before.as_ref(), &after),
        };
        {
            let mut writes = self.writes.lock().unwrap_or_else(|p| p.into_inner());
            if writes.len() < WRITES_PER_RESOURCE {
                writes.push(PlannedWrite {
                    resource: self.resource.clone(),
                    method: request.method.as_str().to_owned(),
                    route: request.route.clone(),
                    changes,
                });
            }
        }
        Ok(match request.method {
            // A made-up id: the candidate may go on as if it had created
            // something; reading it back finds nothing, as it should.
            Method::Post => KeycloakResponse {
                status: 201,
                location: Some("shadow-not-created".into()),
                body: String::new(),
            },
            _ => KeycloakResponse {
                status: 204,
                location: None,
                body: String::new(),
            },
        })
    }
}

impl KeycloakGateway for ShadowGateway {
    fn send(&self, request: KeycloakRequest) -> BoxFuture<'_, Result<KeycloakResponse, KeycloakError>> {
        match request.method {
            Method::Get => self.inner.send(request),
            _ => self.intercept(request).boxed(),
        }
    }
}

/// Whether a field's name says it may hold a secret.
fn secret_field(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "secret",
        "password",
        "credential",
        "privatekey",
        "private_key",
        "token",
        "bindcredential",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// The JSON leaves of `value` by pointer, with values under a secret-looking
/// field redacted.
fn leaves(value: &Value, pointer: String, redact: bool, out: &mut BTreeMap<String, String>) {
    match value {
        Value::Object(fields) if !fields.is_empty() => {
            for (name, field) in fields {
                let escaped = name.replace('~', "~0").replace('/', "~1");
                leaves(field, format!("{pointer}/{escaped}"), redact || secret_field(name), out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                leaves(item, format!("{pointer}/{i}"), redact, out);
            }
        }
        leaf => {
            let shown = if redact && !matches!(leaf, Value::Null | Value::Bool(_)) {
                REDACTED.to_owned()
            } else {
                shorten(leaf.to_string())
            };
            out.insert(if pointer.is_empty() { "/".into() } else { pointer }, shown);
        }
    }
}

fn shorten(mut text: String) -> String {
    if let Some((end, _)) = text.char_indices().nth(VALUE_CHARS) {
        text.truncate(end);
        text.push('…');
    }
    text
}

/// What writing `after` to `route` changes, one line per field: `+` a
/// field Keycloak does not hold, `~` a field whose value changes. Fields the
/// body leaves out are not listed: Keycloak's updates keep them. A field
/// whose name says it holds a secret is redacted, and so is every field of a
/// write to a route that does (`/users/{id}/reset-password` takes the
/// password as `value`).
pub fn diff(route: &str, before: Option<&Value>, after: &Value) -> Vec<String> {
    let secret_route = route.split('/').any(secret_field);
    let mut old = BTreeMap::new();
    if let Some(before) = before {
        leaves(before, String::new(), secret_route, &mut old);
    }
    let mut new = BTreeMap::new();
    leaves(after, String::new(), secret_route, &mut new);
    let mut changes = Vec::new();
    let mut more = 0;
    for (pointer, value) in &new {
        let line = match old.get(pointer) {
            Some(previous) if previous == value => continue,
            Some(previous) => format!("~ {pointer}: {previous} -> {value}"),
            None => format!("+ {pointer}: {value}"),
        };
        if changes.len() < CHANGES_PER_WRITE {
            changes.push(line);
        } else {
            more += 1;
        }
    }
    if more > 0 {
        changes.push(format!("… and {more} more"));
    }
    changes
}

/// What a candidate would do, per kind: the latest rehearsal of each
/// resource.
#[derive(Default)]
pub struct ShadowReports {
    kinds: Mutex<BTreeMap<String, KindReport>>,
}

#[derive(Default)]
struct KindReport {
    digest: String,
    resources: BTreeMap<String, Rehearsal>,
}

/// One resource's rehearsal by a candidate.
#[derive(Debug, Clone, Default)]
pub struct Rehearsal {
    /// The writes it would have made.
    pub writes: Vec<PlannedWrite>,
    /// It failed where the serving version did not.
    pub failed: bool,
}

/// A kind's report, as the status shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShadowSummary {
    /// Resources rehearsed.
    pub resources: u64,
    /// Resources that would be written to.
    pub resources_with_writes: u64,
    /// Resources where the candidate failed.
    pub resources_failing: u64,
    /// The first planned writes.
    pub planned_writes: Vec<PlannedWrite>,
}

impl ShadowReports {
    /// Records the rehearsal of `resource` by the candidate `digest` of
    /// `kind`; a new candidate starts a new report.
    pub fn record(&self, kind: &str, digest: &str, resource: &str, rehearsal: Rehearsal) {
        let mut kinds = self.kinds.lock().unwrap_or_else(|p| p.into_inner());
        let report = kinds.entry(kind.to_owned()).or_default();
        if report.digest != digest {
            *report = KindReport {
                digest: digest.to_owned(),
                resources: BTreeMap::new(),
            };
        }
        report.resources.insert(resource.to_owned(), rehearsal);
    }

    /// Forgets a resource that is gone.
    pub fn forget(&self, kind: &str, resource: &str) {
        if let Some(report) = self.kinds.lock().unwrap_or_else(|p| p.into_inner()).get_mut(kind) {
            report.resources.remove(resource);
        }
    }

    /// Drops the report of `kind` (its candidate went away).
    pub fn clear(&self, kind: &str) {
        self.kinds.lock().unwrap_or_else(|p| p.into_inner()).remove(kind);
    }

    /// The report of the candidate `digest` of `kind`.
    pub fn summary(&self, kind: &str, digest: &str) -> ShadowSummary {
        let kinds = self.kinds.lock().unwrap_or_else(|p| p.into_inner());
        let Some(report) = kinds.get(kind).filter(|r| r.digest == digest) else {
            return ShadowSummary::default();
        };
        ShadowSummary {
            resources: report.resources.len() as u64,
            resources_with_writes: report.resources.values().filter(|r| !r.writes.is_empty()).count() as u64,
            resources_failing: report.resources.values().filter(|r| r.failed).count() as u64,
            planned_writes: report
                .resources
                .values()
                .flat_map(|r| r.writes.iter().cloned())
                .take(PLANNED_WRITES_SHOWN)
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_diff_lists_changed_and_added_fields_only() {
        let before = json!({"displayName": "Shop", "enabled": true, "attributes": {"a": "1"}, "untouched": 5});
        let after = json!({"displayName": "The shop", "enabled": true, "attributes": {"a": "1", "b": "2"}});
        assert_eq!(
            diff("/realms/{realm}", Some(&before), &after),
            vec![r#"+ /attributes/b: "2""#, r#"~ /displayName: "Shop" -> "The shop""#]
        );
        assert!(diff("/realms/{realm}", Some(&before), &json!({"enabled": true})).is_empty());
    }

    #[test]
    fn secrets_never_appear_in_a_diff() {
        let after = json!({
            "clientId": "shop",
            "secret": "s3cr3t",
            "credentials": [{"type": "password", "value": "hunter2"}],
            "smtpServer": {"password": "mail-pass", "host": "smtp"},
            "config": {"bindCredential": ["ldap-pass"], "clientSecret": "idp-secret"},
        });
        let text = diff("/realms/{realm}/clients", None, &after).join("\n");
        for secret in ["s3cr3t", "hunter2", "mail-pass", "ldap-pass", "idp-secret"] {
            assert!(!text.contains(secret), "{secret} leaked into {text}");
        }
        assert!(text.contains(r#"/clientId: "shop""#));
        assert!(text.contains(r#"/smtpServer/host: "smtp""#));
        assert!(text.contains(REDACTED));
    }

    #[test]
    fn every_field_of_a_write_to_a_secret_route_is_redacted() {
        let after = json!({"type": "password", "value": "hunter2", "temporary": false});
        let text = diff("/realms/{realm}/users/{id}/reset-password", None, &after).join("\n");
        assert!(!text.contains("hunter2"), "the password leaked into {text}");
        assert!(text.contains("/value"), "the field is still listed: {text}");
    }

    #[test]
    fn long_diffs_are_cut() {
        let after = Value::Object((0..40).map(|i| (format!("f{i:02}"), json!(i))).collect());
        let changes = diff("/realms/{realm}", None, &after);
        assert_eq!(changes.len(), CHANGES_PER_WRITE + 1);
        assert_eq!(changes.last().map(String::as_str), Some("… and 20 more"));
    }

    #[test]
    fn a_new_candidate_starts_a_new_report() {
        let reports = ShadowReports::default();
        let write = |route: &str| PlannedWrite {
            resource: "ns/a".into(),
            method: "PUT".into(),
            route: route.into(),
            changes: Vec::new(),
        };
        reports.record(
            "k",
            "sha256:1",
            "ns/a",
            Rehearsal {
                writes: vec![write("/realms/{realm}")],
                failed: false,
            },
        );
        reports.record("k", "sha256:1", "ns/b", Rehearsal::default());
        let summary = reports.summary("k", "sha256:1");
        assert_eq!((summary.resources, summary.resources_with_writes), (2, 1));
        reports.record("k", "sha256:2", "ns/b", Rehearsal::default());
        assert_eq!(reports.summary("k", "sha256:1"), ShadowSummary::default());
        assert_eq!(reports.summary("k", "sha256:2").resources, 1);
    }
}
