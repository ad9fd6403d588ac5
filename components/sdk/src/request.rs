//! The request a component receives, parsed.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::invalid_spec;
use crate::{ReconcileError, ReconcileRequest, Target};

/// One reconcile's view of the cluster: the resource, its observed children,
/// the objects the host resolved for it, and its Keycloak target.
#[derive(Debug, Clone)]
pub struct Request {
    /// The resource being reconciled.
    pub parent: Value,
    /// Children the resource owns, as observed.
    pub children: Vec<Value>,
    /// Objects the host resolved for the resource (its Keycloak, its realm).
    pub related: Vec<Value>,
    /// Where Keycloak requests go, when the kind has a Keycloak scope.
    pub target: Option<Target>,
}

impl Request {
    /// Parses the host's JSON. The host always sends valid JSON; a failure
    /// here means a host/component mismatch and is reported as such.
    pub fn parse(raw: ReconcileRequest) -> Result<Self, ReconcileError> {
        let parse = |text: &str| {
            serde_json::from_str::<Value>(text).map_err(|e| {
                invalid_spec(
                    "InvalidRequest",
                    format!("the host sent an object that is not JSON: {e}"),
                )
            })
        };
        Ok(Request {
            parent: parse(&raw.parent)?,
            children: raw.children.iter().map(|c| parse(c)).collect::<Result<_, _>>()?,
            related: raw.related.iter().map(|c| parse(c)).collect::<Result<_, _>>()?,
            target: raw.target,
        })
    }

    /// The realm the host placed the resource in (or that it owns): the
    /// only realm its Keycloak requests may touch.
    pub fn realm(&self) -> Result<&str, ReconcileError> {
        self.target
            .as_ref()
            .and_then(|t| t.realm.as_deref())
            .ok_or_else(|| crate::error::transient("RealmNotResolved", "the host gave this resource no realm"))
    }

    /// The resource as a typed object. A spec that does not fit the type is
    /// reported as an invalid spec.
    pub fn parent_as<T: DeserializeOwned>(&self) -> Result<T, ReconcileError> {
        serde_json::from_value(self.parent.clone())
            .map_err(|e| invalid_spec("InvalidSpec", format!("the resource does not match its schema: {e}")))
    }

    /// A string field of the resource's metadata.
    pub fn metadata(&self, field: &str) -> Option<&str> {
        self.parent.get("metadata")?.get(field)?.as_str()
    }

    /// The resource's UID.
    pub fn uid(&self) -> &str {
        self.metadata("uid").unwrap_or_default()
    }

    /// The resource's name.
    pub fn name(&self) -> &str {
        self.metadata("name").unwrap_or_default()
    }

    /// The resource's namespace.
    pub fn namespace(&self) -> &str {
        self.metadata("namespace").unwrap_or_default()
    }

    /// The resource's kind.
    pub fn kind(&self) -> &str {
        self.parent.get("kind").and_then(Value::as_str).unwrap_or_default()
    }

    /// Whether the spec is the one last reconciled successfully; changes
    /// made in Keycloak since are then drift, not spec updates.
    ///
    /// `observedGeneration` alone does not say so: the host writes it after
    /// a failed reconcile too (Keycloak down, say), so a spec changed during
    /// an outage would look reconciled. The Ready condition must also be
    /// True for this generation.
    pub fn spec_unchanged_since_last_reconcile(&self) -> bool {
        let generation = self.parent.pointer("/metadata/generation").and_then(Value::as_i64);
        let observed = self
            .parent
            .pointer("/status/observedGeneration")
            .and_then(Value::as_i64);
        let ready_for_it = self
            .parent
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| {
                c["type"] == "Ready"
                    && c["status"] == "True"
                    && c["observedGeneration"].as_i64().is_none_or(|g| Some(g) == generation)
            });
        generation.is_some() && generation == observed && ready_for_it
    }

    /// The first related object of the given kind.
    pub fn related_of_kind(&self, kind: &str) -> Option<&Value> {
        self.related
            .iter()
            .find(|o| o.get("kind").and_then(Value::as_str) == Some(kind))
    }

    /// Every related object of the given kind.
    pub fn related_of_kind_all<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.related
            .iter()
            .filter(move |o| o.get("kind").and_then(Value::as_str) == Some(kind))
    }

    /// Whether the resource's condition of this type currently has this
    /// status (to record an Event only when something changes).
    pub fn condition_is(&self, condition_type: &str, status: bool) -> bool {
        let wanted = if status { "True" } else { "False" };
        self.parent
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| cs.iter().any(|c| c["type"] == condition_type && c["status"] == wanted))
    }

    /// Observed children of the given kind.
    pub fn children_of_kind<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.children
            .iter()
            .filter(move |o| o.get("kind").and_then(Value::as_str) == Some(kind))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::Request;

    fn request(generation: i64, status: Value) -> Request {
        Request {
            parent: json!({"metadata": {"generation": generation}, "status": status}),
            children: vec![],
            related: vec![],
            target: None,
        }
    }

    fn ready(status: &str, generation: i64) -> Value {
        json!({"observedGeneration": generation, "conditions": [
            {"type": "Ready", "status": status, "observedGeneration": generation}]})
    }

    #[test]
    fn the_spec_is_unchanged_only_when_it_was_reconciled_successfully() {
        assert!(request(2, ready("True", 2)).spec_unchanged_since_last_reconcile());
        assert!(
            !request(3, ready("True", 2)).spec_unchanged_since_last_reconcile(),
            "a new generation"
        );
        // The host records a generation after a failed reconcile too.
        assert!(
            !request(2, ready("False", 2)).spec_unchanged_since_last_reconcile(),
            "a failed reconcile"
        );
        assert!(
            !request(1, json!(null)).spec_unchanged_since_last_reconcile(),
            "never reconciled"
        );
    }
}
