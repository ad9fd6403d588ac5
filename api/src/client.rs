//! `KeycloakClient`: an OIDC or SAML client in a realm, with its credentials
//! in a Kubernetes Secret.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{ComponentIdentity, DeletionPolicy, ObjectReference, RoleSet};

/// Annotation that asks for a new client secret: set it to any new value
/// (a date, a counter) and the secret is rotated once for that value.
pub const ROTATE_SECRET_ANNOTATION: &str = "keycloak.wasmop.dev/rotate-secret";

/// A client in a realm.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "keycloak.wasmop.dev",
    version = "v1alpha1",
    kind = "KeycloakClient",
    namespaced,
    status = "KeycloakClientStatus",
    shortname = "kcclient",
    category = "keycloak",
    doc = "An OIDC or SAML client in a realm, kept converged with this spec; its credentials are written to a Secret.",
    printcolumn(name = "Client", type_ = "string", json_path = ".spec.clientId"),
    printcolumn(name = "Realm", type_ = "string", json_path = ".status.realm"),
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
#[x_kube(validation = Rule::new("!has(self.oidc) || self.protocol == 'openid-connect'").message("spec.oidc is only for protocol openid-connect"))]
#[x_kube(validation = Rule::new("!has(self.saml) || self.protocol == 'saml'").message("spec.saml is only for protocol saml"))]
#[x_kube(validation = Rule::new("self.protocol == 'openid-connect' || !has(self.credentials) || (!has(self.credentials.clientSecretRef) && !has(self.credentials.rotationPeriodSeconds))").message("SAML clients have no client secret: remove spec.credentials.clientSecretRef and rotationPeriodSeconds"))]
#[x_kube(validation = Rule::new("!has(self.oidc) || self.oidc.accessType != 'Public' || !has(self.oidc.serviceAccountsEnabled) || !self.oidc.serviceAccountsEnabled").message("a public client cannot have a service account"))]
#[x_kube(validation = Rule::new("!has(self.oidc) || !has(self.oidc.serviceAccountRoles) || (has(self.oidc.serviceAccountsEnabled) && self.oidc.serviceAccountsEnabled)").message("oidc.serviceAccountRoles needs oidc.serviceAccountsEnabled: true"))]
#[x_kube(validation = Rule::new("!has(self.credentials) || !has(self.credentials.clientSecretRef) || !has(self.credentials.rotationPeriodSeconds)").message("a secret from credentials.clientSecretRef is rotated by changing that Secret; remove credentials.rotationPeriodSeconds"))]
#[x_kube(validation = Rule::new("!has(self.credentials) || !has(self.credentials.clientSecretRef) || !has(self.credentials.secretName) || self.credentials.secretName != self.credentials.clientSecretRef.name").message("credentials.secretName is written by the operator and must differ from credentials.clientSecretRef.name"))]
#[x_kube(validation = Rule::new("!has(self.oidc) || !has(self.oidc.accessType) || self.oidc.accessType != 'Public' || !has(self.credentials) || !has(self.credentials.clientSecretRef)").message("a public client has no secret: remove credentials.clientSecretRef"))]
#[x_kube(validation = Rule::new("!(self.clientId in ['account', 'account-console', 'admin-cli', 'broker', 'realm-management', 'security-admin-console'])").message("clientId names one of Keycloak's built-in clients, which the operator does not manage"))]
#[serde(rename_all = "camelCase")]
pub struct KeycloakClientSpec {
    /// The `KeycloakRealm` to place the client in. A realm in another
    /// namespace must allow this namespace in `spec.clients.allowedNamespaces`.
    pub realm_ref: ObjectReference,
    /// The client's `clientId` in Keycloak (for SAML: the entity ID of the
    /// service provider). Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("clientId is immutable"))]
    #[schemars(length(min = 1, max = 255))]
    pub client_id: String,
    /// `openid-connect` (default) or `saml`. Immutable.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("protocol is immutable"))]
    pub protocol: ClientProtocol,
    /// Whether the client can be used. Defaults to true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Name shown to users (consent screen, account console).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// URL prepended to relative URLs of the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_url: Option<String>,
    /// Default URL to redirect to (links in the account console).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// URL of the client's admin interface (back-channel requests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_url: Option<String>,
    /// Valid redirect URIs after login (wildcards `*` as Keycloak allows).
    /// When set, the list is exact; when unset, Keycloak's value is left alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub redirect_uris: Option<Vec<String>>,
    /// OpenID Connect settings (protocol `openid-connect` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcSettings>,
    /// SAML settings (protocol `saml` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saml: Option<SamlSettings>,
    /// Client scopes always included in tokens. When set, the list is exact
    /// (except `service_account`, which Keycloak manages with the service
    /// account); when unset, the realm's defaults given at creation stay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub default_client_scopes: Option<Vec<String>>,
    /// Client scopes included on request (`scope=`). Exact when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    pub optional_client_scopes: Option<Vec<String>>,
    /// Protocol mappers of the client, by name: claims for OIDC, attribute
    /// statements for SAML. Mappers added in Keycloak by other means are left
    /// alone; a mapper removed from this list is deleted only if the operator
    /// created it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub protocol_mappers: Vec<ProtocolMapper>,
    /// Roles of the client. A role removed from this list is deleted only if
    /// the operator created it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 200), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub roles: Vec<ClientRole>,
    /// Client attributes to set, for settings the typed fields do not cover.
    /// Typed fields win over the same key here. Attributes not listed are
    /// left alone; an empty value removes the attribute.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    /// Any other fields of Keycloak's ClientRepresentation, passed through as
    /// given. Managed like the typed fields: only the fields given are
    /// compared and written. `id`, `clientId`, `protocol`, `secret`,
    /// `attributes`, `protocolMappers` and the client scopes cannot be set here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::realm::free_form_object")]
    pub representation: Option<serde_json::Map<String, serde_json::Value>>,
    /// Where the client's credentials come from and go to.
    #[serde(default)]
    pub credentials: ClientCredentials,
    /// What deleting this resource does to the client: `Delete` (default)
    /// removes it from Keycloak; `Retain` leaves it and releases it.
    #[serde(default = "default_client_deletion_policy")]
    pub deletion_policy: DeletionPolicy,
    /// Take over a client with this `clientId` that already exists in the
    /// realm and is not owned by another resource.
    #[serde(default)]
    pub adopt_existing: bool,
}

fn default_client_deletion_policy() -> DeletionPolicy {
    DeletionPolicy::Delete
}

/// The protocol of a client.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ClientProtocol {
    /// OpenID Connect / OAuth 2.
    #[default]
    #[serde(rename = "openid-connect")]
    OpenIdConnect,
    /// SAML 2.0.
    #[serde(rename = "saml")]
    Saml,
}

impl ClientProtocol {
    /// The value Keycloak's API uses.
    pub fn as_keycloak(self) -> &'static str {
        match self {
            ClientProtocol::OpenIdConnect => "openid-connect",
            ClientProtocol::Saml => "saml",
        }
    }
}

/// How an OIDC client authenticates, if at all.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum AccessType {
    /// Has a client secret (written to the credentials Secret).
    #[default]
    Confidential,
    /// A browser or native app without a secret (use PKCE).
    Public,
    /// Only accepts bearer tokens; never logs users in.
    BearerOnly,
}

/// OpenID Connect settings. Unset fields are not managed.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OidcSettings {
    /// Confidential (default), Public or BearerOnly.
    #[serde(default)]
    pub access_type: AccessType,
    /// Authorization code flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standard_flow_enabled: Option<bool>,
    /// Implicit flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub implicit_flow_enabled: Option<bool>,
    /// Resource-owner password grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_access_grants_enabled: Option<bool>,
    /// Client-credentials grant with a service account (confidential only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_accounts_enabled: Option<bool>,
    /// OAuth 2.0 device authorization grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_authorization_grant_enabled: Option<bool>,
    /// PKCE code challenge method required from the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkce_method: Option<PkceMethod>,
    /// Users must consent to the client's access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_required: Option<bool>,
    /// Front-channel logout (through the browser).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frontchannel_logout: Option<bool>,
    /// URL Keycloak calls in the browser on logout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frontchannel_logout_url: Option<String>,
    /// URL Keycloak calls server-to-server on logout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_url: Option<String>,
    /// Include the session id in back-channel logout tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_session_required: Option<bool>,
    /// Valid redirect URIs after logout. Exact when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// Allowed CORS origins (`+` for the redirect URIs' origins). Exact when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub web_origins: Option<Vec<String>>,
    /// Lifetime of access tokens issued to this client, in seconds
    /// (overrides the realm's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub access_token_lifespan_seconds: Option<i32>,
    /// Idle timeout of this client's sessions, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub client_session_idle_timeout_seconds: Option<i32>,
    /// Longest life of this client's sessions, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub client_session_max_lifespan_seconds: Option<i32>,
    /// Idle timeout of this client's offline sessions, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub client_offline_session_idle_timeout_seconds: Option<i32>,
    /// Issue refresh tokens (default true in Keycloak).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_refresh_tokens: Option<bool>,
    /// Roles granted to the client's service account. Needs
    /// `serviceAccountsEnabled: true`. A mapping removed from here is removed
    /// only if the operator added it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_roles: Option<ServiceAccountRoles>,
}

/// PKCE code challenge method.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PkceMethod {
    /// SHA-256 of the verifier (recommended).
    S256,
    /// The verifier itself.
    #[serde(rename = "plain")]
    Plain,
}

impl PkceMethod {
    /// The value Keycloak's API uses.
    pub fn as_keycloak(self) -> &'static str {
        match self {
            PkceMethod::S256 => "S256",
            PkceMethod::Plain => "plain",
        }
    }
}

/// Roles of the realm and of clients granted to a service account.
pub type ServiceAccountRoles = RoleSet;

/// SAML settings. Unset fields are not managed. The entity ID of the service
/// provider is `spec.clientId`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SamlSettings {
    /// Assertion consumer service URL, HTTP-POST binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assertion_consumer_url_post: Option<String>,
    /// Assertion consumer service URL, HTTP-Redirect binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assertion_consumer_url_redirect: Option<String>,
    /// Single logout service URL, HTTP-POST binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logout_url_post: Option<String>,
    /// Single logout service URL, HTTP-Redirect binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logout_url_redirect: Option<String>,
    /// Name ID format of the subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_id_format: Option<NameIdFormat>,
    /// Ignore the name ID format the service provider asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_name_id_format: Option<bool>,
    /// Always answer with the HTTP-POST binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_post_binding: Option<bool>,
    /// Sign SAML documents (responses).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_documents: Option<bool>,
    /// Sign assertions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_assertions: Option<bool>,
    /// Signature algorithm, such as `RSA_SHA256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_algorithm: Option<SamlSignatureAlgorithm>,
    /// The service provider must sign its requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_signature_required: Option<bool>,
    /// The service provider's signing certificate (PEM body, base64 DER),
    /// to verify its signatures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_certificate: Option<String>,
    /// Encrypt assertions for the service provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypt_assertions: Option<bool>,
    /// The service provider's encryption certificate (PEM body, base64 DER).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_certificate: Option<String>,
    /// URL name for IdP-initiated login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idp_initiated_sso_url_name: Option<String>,
}

/// SAML name ID format.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NameIdFormat {
    /// The username.
    Username,
    /// The email address.
    Email,
    /// A new identifier per session.
    Transient,
    /// A stable pairwise identifier.
    Persistent,
}

impl NameIdFormat {
    /// The value Keycloak's API uses.
    pub fn as_keycloak(self) -> &'static str {
        match self {
            NameIdFormat::Username => "username",
            NameIdFormat::Email => "email",
            NameIdFormat::Transient => "transient",
            NameIdFormat::Persistent => "persistent",
        }
    }
}

/// SAML signature algorithms Keycloak offers.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[allow(non_camel_case_types, missing_docs)]
pub enum SamlSignatureAlgorithm {
    RSA_SHA256,
    RSA_SHA512,
    RSA_SHA256_MGF1,
    RSA_SHA512_MGF1,
    ECDSA_SHA256,
    ECDSA_SHA512,
    RSA_SHA1,
    DSA_SHA1,
}

/// A protocol mapper, identified by its name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProtocolMapper {
    /// Name, unique in the client.
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    /// Mapper type, such as `oidc-hardcoded-claim-mapper`,
    /// `oidc-usermodel-attribute-mapper` or `saml-user-attribute-mapper`.
    #[schemars(length(min = 1, max = 255))]
    pub protocol_mapper: String,
    /// The mapper's configuration, as Keycloak names it (for instance
    /// `claim.name`, `access.token.claim`). Only the keys given are managed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
}

/// A role of the client.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientRole {
    /// Name, unique in the client.
    #[schemars(length(min = 1, max = 255))]
    pub name: String,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Where the client secret comes from and where the credentials are written.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientCredentials {
    /// Name of the Secret the operator writes (and owns) for a confidential
    /// or bearer-only OIDC client, in the resource's namespace. Keys:
    /// `client-id`, `client-secret`, `issuer-url`, `token-endpoint`,
    /// `discovery-url`. Defaults to `<metadata.name>-credentials`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"))]
    pub secret_name: Option<String>,
    /// Take the client secret from this key of an existing Secret in the
    /// resource's namespace instead of letting Keycloak generate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_ref: Option<SecretKeyReference>,
    /// Rotate a generated secret when it is older than this many seconds.
    /// Without it, secrets rotate only on demand (the annotation
    /// `keycloak.wasmop.dev/rotate-secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 60))]
    pub rotation_period_seconds: Option<i32>,
}

/// A key of a Secret in the resource's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyReference {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key holding the client secret.
    #[serde(default = "default_secret_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

fn default_secret_key() -> String {
    "client-secret".to_owned()
}

/// Observed state of a client. Never holds secret values.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeycloakClientStatus {
    /// The generation of the spec last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling, Stalled and Degraded, with stable reasons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The component that last reconciled this resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciled_by: Option<ComponentIdentity>,
    /// Keycloak's internal id of the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_uuid: Option<String>,
    /// The realm the client lives in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
    /// The `Keycloak` the realm lives on, as `namespace/name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keycloak: Option<String>,
    /// The Secret holding the client's credentials, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
    /// State of the generated client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_rotation: Option<SecretRotationStatus>,
}

/// State of a generated client secret (times only, never values).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRotationStatus {
    /// When Keycloak created the current secret (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_created_at: Option<String>,
    /// The last value of the `keycloak.wasmop.dev/rotate-secret` annotation
    /// that was acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled_request: Option<String>,
    /// When the previous secret stops working, if Keycloak keeps it valid
    /// for a grace period (a realm client policy with the `secret-rotation`
    /// executor); unset when it stopped working at the rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_valid_until: Option<String>,
    /// When the secret is next rotated by `credentials.rotationPeriodSeconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation_at: Option<String>,
}
