//! The part of a resource's status the host writes for every kind.
//!
//! A kind's CRD must declare these fields, or the API server refuses the
//! host's status writes (server-side apply checks them against the schema).
//! Use it as the status type, or flatten it into a larger one:
//!
//! ```ignore
//! #[kube(status = "keycloak_operator_sdk::HostStatus")]
//! ```

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Conditions, the generation they describe and the component that wrote them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostStatus {
    /// The generation of the spec last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling, Stalled and Degraded, with stable reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The component that last reconciled the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciled_by: Option<ReconciledBy>,
}

/// A component's name, version and digest, as the host reports them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct ReconciledBy {
    /// The name it describes itself with.
    pub name: String,
    /// Its version.
    pub version: String,
    /// SHA-256 of the component, `sha256:<hex>`.
    pub digest: String,
}
