//! The reconcile contract as host-side types, independent of any WIT version.
//!
//! Each supported WIT world version converts its generated types to and from
//! these, so the controller never depends on a particular version and an
//! older component keeps working after the host learns a newer one.

use std::fmt;

/// What a component asks of the host beyond computing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// Requests to the Keycloak admin API.
    KeycloakAdmin,
    /// Reading keys of Secrets in the resource's own namespace.
    ReadSecrets,
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Capability::KeycloakAdmin => "keycloak-admin",
            Capability::ReadSecrets => "read-secrets",
        })
    }
}

/// How resources of a kind reach Keycloak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeycloakScope {
    /// Never.
    None,
    /// The resource is a `Keycloak`: its whole admin API.
    Instance,
    /// Via `spec.keycloakRef`, owning the realm `spec.realmName`.
    Realm,
    /// Via `spec.realmRef`, inside that realm.
    InRealm,
}

/// A kind of Kubernetes object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KindRef {
    /// `group/version` or `version`.
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Plural resource name.
    pub plural: String,
}

/// What a component serves and needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Description {
    /// Component name.
    pub name: String,
    /// Component version.
    pub version: String,
    /// API group served.
    pub group: String,
    /// Kind served.
    pub kind: String,
    /// Plural of the kind.
    pub plural: String,
    /// API versions, preferred first.
    pub versions: Vec<String>,
    /// Kinds of children returned.
    pub child_kinds: Vec<KindRef>,
    /// Kinds of related objects wanted (labelled with the resource's name).
    pub related_kinds: Vec<KindRef>,
    /// Capabilities needed.
    pub capabilities: Vec<Capability>,
    /// How resources reach Keycloak.
    pub keycloak_scope: KeycloakScope,
    /// Whether deletion waits for `finalize`.
    pub finalizer: bool,
    /// CRD YAML.
    pub crd: Option<String>,
}

impl Description {
    /// `group/kind`, the key components are registered under.
    pub fn kind_key(&self) -> String {
        format!("{}/{}", self.group, self.kind)
    }
}

/// Where Keycloak requests go (never secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The `Keycloak` resource, `namespace/name`.
    pub keycloak: String,
    /// Base URL of that Keycloak.
    pub url: String,
    /// The realm the resource may touch, if scoped to one.
    pub realm: Option<String>,
}

/// Input of `reconcile` and `finalize`.
#[derive(Debug, Clone)]
pub struct ReconcileRequest {
    /// The resource, JSON.
    pub parent: String,
    /// Observed children, JSON.
    pub children: Vec<String>,
    /// Related objects, JSON.
    pub related: Vec<String>,
    /// Keycloak target.
    pub target: Option<Target>,
}

/// A reason and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detail {
    /// CamelCase reason.
    pub reason: String,
    /// Message for people.
    pub message: String,
}

impl Detail {
    /// A detail from parts.
    pub fn new(reason: &str, message: impl Into<String>) -> Self {
        Detail {
            reason: reason.to_owned(),
            message: message.into(),
        }
    }
}

/// An extra condition reported by a component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// Condition type.
    pub condition_type: String,
    /// Whether it holds.
    pub status: bool,
    /// Reason and message.
    pub detail: Detail,
}

/// Normal or Warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Normal.
    Normal,
    /// Warning.
    Warning,
}

/// An Event to record on the resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Normal or Warning.
    pub event_type: EventType,
    /// CamelCase reason.
    pub reason: String,
    /// Action taken.
    pub action: String,
    /// Message.
    pub message: String,
}

/// Ready or still progressing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Converged.
    Ready(Detail),
    /// Work under way.
    Progressing(Detail),
    /// Declared, but stuck until something changes.
    Stalled(Detail),
}

/// Output of a successful `reconcile`.
#[derive(Debug, Clone)]
pub struct ReconcileResponse {
    /// Ready or progressing.
    pub outcome: Outcome,
    /// Kind-specific status fields, JSON object.
    pub status: String,
    /// Desired children, JSON.
    pub children: Vec<String>,
    /// Extra conditions.
    pub conditions: Vec<Condition>,
    /// Events.
    pub events: Vec<Event>,
    /// Drifted fields that were corrected.
    pub drift_corrected: Vec<String>,
    /// Requeue hint.
    pub requeue_after_seconds: Option<u32>,
}

/// How a reconcile failed, as the component reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReconcileError {
    /// Retry with backoff.
    Transient(Detail),
    /// Stalled until something outside changes.
    Permanent(Detail),
    /// Stalled until the spec changes.
    InvalidSpec(Detail),
}

impl ReconcileError {
    /// Reason and message.
    pub fn detail(&self) -> &Detail {
        match self {
            ReconcileError::Transient(d) | ReconcileError::Permanent(d) | ReconcileError::InvalidSpec(d) => d,
        }
    }
}

/// Output of a successful `finalize`.
#[derive(Debug, Clone, Default)]
pub struct FinalizeResponse {
    /// Events.
    pub events: Vec<Event>,
}

/// HTTP method of a Keycloak request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// DELETE.
    Delete,
}

impl Method {
    /// The method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }

    /// Whether repeating the request cannot change the outcome.
    pub fn is_idempotent(self) -> bool {
        !matches!(self, Method::Post)
    }
}

/// A Keycloak admin request from a component.
#[derive(Debug, Clone)]
pub struct KeycloakRequest {
    /// Method.
    pub method: Method,
    /// Route template.
    pub route: String,
    /// Placeholder values.
    pub params: Vec<String>,
    /// Query parameters.
    pub query: Vec<(String, String)>,
    /// JSON body.
    pub body: Option<String>,
}

/// Keycloak's answer.
#[derive(Debug, Clone)]
pub struct KeycloakResponse {
    /// Status code.
    pub status: u16,
    /// Location header.
    pub location: Option<String>,
    /// Body.
    pub body: String,
}

/// Why a Keycloak request got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeycloakError {
    /// Unreachable, failing, or circuit open.
    #[error("Keycloak unavailable: {0}")]
    Unavailable(String),
    /// Refused by the host (scope or capability).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The host could not authenticate.
    #[error("cannot authenticate to Keycloak: {0}")]
    Unauthenticated(String),
    /// Malformed request.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// Refused by a policy of the host beyond the scope (a tenant granting
    /// realm administration, say); the reason becomes the resource's.
    #[error("refused: {message}")]
    Refused {
        /// Stable, CamelCase.
        reason: String,
        /// For people.
        message: String,
    },
}

/// Why a Secret key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Missing Secret or key.
    #[error("not found: {0}")]
    NotFound(String),
    /// Capability not granted.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Not UTF-8.
    #[error("invalid: {0}")]
    Invalid(String),
    /// API server unreachable.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// Log severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Trace.
    Trace,
    /// Debug.
    Debug,
    /// Info.
    Info,
    /// Warn.
    Warn,
    /// Error.
    Error,
}
