//! The managed form of `Keycloak`: a Keycloak the operator runs itself.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, EnvVar, ResourceRequirements, Toleration, TopologySpreadConstraint};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The Keycloak version the operator runs unless told otherwise.
pub const DEFAULT_KEYCLOAK_VERSION: &str = "26.7.3";
/// The official image repository.
pub const DEFAULT_IMAGE_REPOSITORY: &str = "quay.io/keycloak/keycloak";

/// A Keycloak the operator runs: a Deployment of the official image with its
/// Services, bootstrap admin Secret, database wiring and optional Ingress,
/// PodDisruptionBudget and NetworkPolicy.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ManagedKeycloak {
    /// Keycloak version (the image tag). Changing it follows `updateStrategy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+\.[0-9]+\.[0-9]+([.-][A-Za-z0-9.-]+)?$"))]
    pub version: Option<String>,
    /// Image repository; the tag is `version`. Defaults to the official image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_repository: Option<String>,
    /// The image was built with `kc.sh build` for these options, so the server
    /// can start with `--optimized` (faster start, no build at start-up).
    #[serde(default)]
    pub optimized_image: bool,
    /// Number of Keycloak pods. More than one forms a cache cluster through
    /// the headless Service and gets a PodDisruptionBudget.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 100))]
    pub replicas: i32,
    /// Compute resources of the Keycloak container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// The database Keycloak keeps its data in.
    pub database: Database,
    /// Public hostname and proxy settings.
    #[serde(default)]
    pub hostname: HostnameSettings,
    /// Serve HTTPS with the certificate of this `kubernetes.io/tls` Secret
    /// (plain HTTP inside the cluster when unset, for a TLS-terminating proxy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret_name: Option<String>,
    /// An Ingress for the public hostname.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSettings>,
    /// A NetworkPolicy that admits traffic to Keycloak only from the listed
    /// namespaces (and its own pods, for clustering).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<NetworkPolicySettings>,
    /// Where the pods may run.
    #[serde(default)]
    pub scheduling: Scheduling,
    /// Keycloak features to enable or disable (`--features`, `--features-disabled`).
    #[serde(default)]
    pub features: Features,
    /// Further Keycloak options, as `name: value` (the `--name=value` of
    /// `kc.sh`, for example `log-level: INFO`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
    /// Extra environment variables of the Keycloak container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// A partial pod template merged over the generated one (JSON merge
    /// patch), for what the fields above do not cover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::realm::free_form_object")]
    pub pod_template: Option<serde_json::Map<String, serde_json::Value>>,
    /// How a change of version rolls out.
    #[serde(default)]
    pub update_strategy: UpdateStrategy,
}

fn one() -> i32 {
    1
}

impl ManagedKeycloak {
    /// The version that runs.
    pub fn version(&self) -> &str {
        self.version.as_deref().unwrap_or(DEFAULT_KEYCLOAK_VERSION)
    }

    /// The container image.
    pub fn image(&self) -> String {
        format!(
            "{}:{}",
            self.image_repository.as_deref().unwrap_or(DEFAULT_IMAGE_REPOSITORY),
            self.version()
        )
    }
}

/// Exactly one kind of database.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("[has(self.postgres), has(self.cloudNativePG), has(self.dev)].filter(x, x).size() == 1").message("set exactly one of database.postgres, database.cloudNativePG and database.dev"))]
pub struct Database {
    /// An external PostgreSQL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<ExternalPostgres>,
    /// A CloudNativePG `Cluster` in the same namespace: its `<name>-app`
    /// Secret and `<name>-rw` Service are used.
    #[serde(default, rename = "cloudNativePG", skip_serializing_if = "Option::is_none")]
    pub cloud_native_pg: Option<CloudNativePg>,
    /// Keycloak's embedded development database. Data lives in the pod and
    /// is lost with it: never for production (the status says so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<bool>,
}

/// An external PostgreSQL database.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalPostgres {
    /// Host name or address.
    #[schemars(length(min = 1))]
    pub host: String,
    /// Port.
    #[serde(default = "postgres_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Database name.
    #[schemars(length(min = 1))]
    pub database: String,
    /// Secret in the Keycloak's namespace with the database user's
    /// credentials, keys `username` and `password`.
    #[schemars(length(min = 1))]
    pub credentials_secret: String,
    /// TLS to the database (libpq's `sslmode`).
    #[serde(default)]
    pub ssl_mode: SslMode,
}

fn postgres_port() -> i32 {
    5432
}

/// libpq's `sslmode`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS if the server offers it.
    #[default]
    Prefer,
    /// TLS, without checking the certificate.
    Require,
    /// TLS, checking the certificate and the host name.
    VerifyFull,
}

impl SslMode {
    /// The value of `sslmode`.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// A CloudNativePG cluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudNativePg {
    /// Name of the `Cluster` (postgresql.cnpg.io) in the Keycloak's namespace.
    #[schemars(length(min = 1))]
    pub cluster_name: String,
}

/// Public hostname and reverse-proxy settings.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostnameSettings {
    /// Public URL or host name of Keycloak (`--hostname`). Unset: the
    /// hostname comes from requests (development only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Public URL of the admin console, if it differs (`--hostname-admin`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<String>,
    /// Which forwarding headers a reverse proxy sets (`--proxy-headers`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_headers: Option<ProxyHeaders>,
}

/// Forwarding headers.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProxyHeaders {
    /// RFC 7239 `Forwarded`.
    Forwarded,
    /// `X-Forwarded-*`.
    Xforwarded,
}

/// An Ingress for Keycloak.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressSettings {
    /// Host the Ingress serves (defaults to the host of `hostname.hostname`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// IngressClass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    /// `kubernetes.io/tls` Secret for the Ingress's TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret_name: Option<String>,
    /// Annotations of the Ingress (for the ingress controller).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A NetworkPolicy for Keycloak.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySettings {
    /// Namespaces (by name) whose pods may reach Keycloak's HTTP port, besides
    /// Keycloak's own; the ingress controller's namespace belongs here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_namespaces: Vec<String>,
}

/// Scheduling of the pods.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Scheduling {
    /// Node labels the pods require.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Affinity rules. Unset: pods prefer different nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Tolerations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Topology spread. Unset: pods spread across zones where possible.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,
    /// PriorityClass of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
}

/// Keycloak features.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Features {
    /// Features to enable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enabled: Vec<String>,
    /// Features to disable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disabled: Vec<String>,
}

/// How a change of version rolls out.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum UpdateStrategy {
    /// Rolling for changes within a version, Recreate when the version
    /// changes: Keycloak migrates its schema at start, and nodes of two
    /// versions must not share a cache cluster.
    #[default]
    Auto,
    /// Always rolling (only safe for patch releases that say so).
    Rolling,
    /// Always stop every pod first.
    Recreate,
}

/// Names and addresses of what the operator creates for a managed Keycloak,
/// shared by the component that creates them and the host that uses them.
pub mod naming {
    /// The Secret with the generated bootstrap admin (used once).
    pub fn bootstrap_admin_secret(keycloak: &str) -> String {
        format!("{keycloak}-bootstrap-admin")
    }

    /// The Secret with the operator's own service-account client.
    pub fn operator_client_secret(keycloak: &str) -> String {
        format!("{keycloak}-operator-client")
    }

    /// The client id of the operator's service-account client.
    pub const OPERATOR_CLIENT_ID: &str = "keycloak-operator";

    /// The HTTP(S) Service.
    pub fn service(keycloak: &str) -> String {
        keycloak.to_owned()
    }

    /// The management Service (health, metrics).
    pub fn management_service(keycloak: &str) -> String {
        format!("{keycloak}-management")
    }

    /// The headless Service for cache discovery between pods.
    pub fn discovery_service(keycloak: &str) -> String {
        format!("{keycloak}-discovery")
    }

    /// The in-cluster URL of the Keycloak.
    pub fn url(keycloak: &str, namespace: &str, tls: bool) -> String {
        if tls {
            format!("https://{keycloak}.{namespace}.svc:8443")
        } else {
            format!("http://{keycloak}.{namespace}.svc:8080")
        }
    }
}
