//! `ReconcilerComponent`: which WebAssembly component serves a kind, pulled
//! from an OCI registry by digest, with the capabilities a cluster admin
//! grants it, its limits and its rollout.
//!
//! Creating one is how an admin approves a component: the grants live here,
//! not in the component.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The CEL test of an OCI reference pinned by digest. A tag may precede the
/// digest for people's sake; the digest is what is pulled and verified.
const PINNED_RULE: &str = r"self.matches('^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)+(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?@sha256:[a-f0-9]{64}$')";
/// What a reference that is not pinned is told.
const PINNED_MESSAGE: &str =
    "must be pinned by digest: registry/repository@sha256:<64 hex digits> (a tag alone is not accepted)";

/// A reconciler component serving one kind.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "keycloak.wasmop.dev",
    version = "v1alpha1",
    kind = "ReconcilerComponent",
    status = "ReconcilerComponentStatus",
    shortname = "rcomp",
    category = "keycloak",
    doc = "Which WebAssembly component serves a kind: pulled from OCI by digest, with its grants, limits and rollout.",
    printcolumn(name = "Kind", type_ = "string", json_path = ".spec.kind"),
    printcolumn(name = "Serving", type_ = "string", json_path = ".status.serving.version"),
    printcolumn(name = "Candidate", type_ = "string", json_path = ".status.candidate.version"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct ReconcilerComponentSpec {
    /// The kind the component serves, as `group/Kind`, for example
    /// `keycloak.wasmop.dev/KeycloakRealm`. The component's own description
    /// must name the same kind. Immutable: declare another resource for
    /// another kind.
    #[x_kube(validation = Rule::new("self == oldSelf").message("kind is immutable"))]
    #[schemars(
        length(min = 3, max = 316),
        regex(pattern = r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?/[A-Z][A-Za-z0-9]*$")
    )]
    pub kind: String,
    /// The component, an OCI artifact pinned by digest:
    /// `registry/repository@sha256:<hex>` (`keycloak-operator component push`
    /// prints it).
    #[x_kube(validation = Rule::new(PINNED_RULE).message(PINNED_MESSAGE))]
    #[schemars(length(min = 1, max = 1024))]
    pub oci: String,
    /// A Secret of type `kubernetes.io/dockerconfigjson` in the operator's own
    /// namespace, for a private registry. Secrets in other namespaces are
    /// never read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub pull_secret_name: Option<String>,
    /// Capabilities granted to the component. A version that asks for more
    /// than this is refused; a grant taken away applies at once to the
    /// version serving.
    #[serde(default)]
    #[schemars(length(max = 2), extend("x-kubernetes-list-type" = "set"))]
    pub grants: Vec<Grant>,
    /// Kinds of Kubernetes objects (`apiVersion/Kind`, such as `v1/Secret`)
    /// the component may create as children of its resources, within the
    /// host's `runtime.allowedChildKinds`. A version that describes a child
    /// kind not listed is refused; a kind taken away applies at once: its
    /// children are no longer applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 4, max = 316)), extend("x-kubernetes-list-type" = "set"))]
    pub child_kinds: Vec<String>,
    /// Memory and time limits of one call.
    #[serde(default)]
    pub limits: ComponentLimits,
    /// A candidate version tried beside the serving one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
}

/// A capability the host grants a component.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Grant {
    /// Requests to the Keycloak admin API, confined to the resource's scope.
    KeycloakAdmin,
    /// Keys of Secrets in the resource's own namespace.
    ReadSecrets,
}

/// Limits of one call of the component. Unset fields take the host's
/// defaults (its configuration's `runtime` section), which are also the
/// largest values allowed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentLimits {
    /// Linear memory of one instance, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "memoryMiB")]
    #[schemars(range(min = 1, max = 4096))]
    pub memory_mib: Option<u32>,
    /// Computation time of one call, host calls excluded, such as `2s` or
    /// `500ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{1,6}(ms|s|m)$"))]
    pub guest_time_limit: Option<String>,
    /// Time of one call in all, host calls included, such as `2m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{1,6}(ms|s|m)$"))]
    pub wall_time_limit: Option<String>,
}

/// How a new version is tried before it serves.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// A version run beside the serving one. Promote it by moving its
    /// reference to `spec.oci` (and removing it here); drop it by removing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<Candidate>,
}

/// A candidate version.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    /// The candidate, pinned by digest like `spec.oci`.
    #[x_kube(validation = Rule::new(PINNED_RULE).message(PINNED_MESSAGE))]
    #[schemars(length(min = 1, max = 1024))]
    pub oci: String,
    /// How it runs. `Shadow`: it reconciles every resource right after the
    /// serving version, but the host sends none of its Keycloak writes and
    /// applies none of its children or status; what it would have written is
    /// reported in `status.candidate`.
    #[serde(default)]
    pub mode: RolloutMode,
}

/// How a candidate runs.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RolloutMode {
    /// Reconciles with every write intercepted and reported, none applied.
    #[default]
    Shadow,
}

/// Observed state of a component declaration.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReconcilerComponentStatus {
    /// The generation of the spec last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready (the declared version serves), Reconciling and Stalled, with
    /// stable reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The version serving the kind now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving: Option<ComponentVersion>,
    /// The version it replaced, kept for rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<ComponentVersion>,
    /// The candidate and what it would change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<CandidateStatus>,
}

/// One version of a component.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentVersion {
    /// The component's name, as it describes itself.
    pub name: String,
    /// The component's version, as it describes itself.
    pub version: String,
    /// SHA-256 of the component itself (what `status.reconciledBy.digest` of
    /// the resources names).
    pub digest: String,
    /// The OCI reference it was pulled from; `built-in` for the version that
    /// ships with the operator.
    pub source: String,
    /// Resources of the kind this version has reconciled, each counted once.
    #[serde(default)]
    pub resources_reconciled: u64,
}

/// A candidate and what it would change.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CandidateStatus {
    /// The component's name, as it describes itself.
    pub name: String,
    /// The component's version, as it describes itself.
    pub version: String,
    /// SHA-256 of the component itself.
    pub digest: String,
    /// The OCI reference it was pulled from.
    pub source: String,
    /// How it runs.
    pub mode: RolloutMode,
    /// Resources it reconciled, each counted once.
    #[serde(default)]
    pub resources_reconciled: u64,
    /// Resources it reconciled whose reconcile would have written to
    /// Keycloak.
    #[serde(default)]
    pub resources_with_writes: u64,
    /// Resources where it failed (trapped, timed out, returned an error)
    /// while the serving version did not.
    #[serde(default)]
    pub resources_failing: u64,
    /// The first few writes it would have made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub planned_writes: Vec<PlannedWrite>,
}

/// A Keycloak write a candidate would have made.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlannedWrite {
    /// The resource being reconciled, as `namespace/name`.
    pub resource: String,
    /// `POST`, `PUT` or `DELETE`.
    pub method: String,
    /// The route template, such as `/realms/{realm}`.
    pub route: String,
    /// What the body changes, one line per JSON field, such as
    /// `~ /displayName: "Shop" -> "The shop"`. Values of fields that may hold
    /// secrets are shown as `<redacted>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
}
