//! The host's configuration: a YAML file (mounted from a ConfigMap by the
//! Helm chart) naming the components and their grants, plus tuning.
//!
//! Which component serves which kind comes from here for now; declaring it as
//! Kubernetes resources will replace `components` without touching the rest.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::runtime::model::Capability;

/// The whole configuration. Every field has a default except `components`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostConfig {
    /// The reconciler components to load, one per kind.
    pub components: Vec<ComponentSpec>,
    /// Namespaces to watch; all when empty.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Every resource is reconciled at least this often: the safety net for
    /// drift that Keycloak's admin events do not show.
    #[serde(default = "defaults::resync", with = "duration")]
    pub resync_period: Duration,
    /// Reconciles running at once per kind.
    #[serde(default = "defaults::workers")]
    pub workers: usize,
    /// Requeue delay while a resource is progressing.
    #[serde(default = "defaults::progressing", with = "duration")]
    pub progressing_requeue: Duration,
    /// Per-object retry backoff after failures.
    #[serde(default)]
    pub backoff: BackoffConfig,
    /// Leader election.
    #[serde(default)]
    pub leader_election: LeaderElectionConfig,
    /// Keycloak access.
    #[serde(default)]
    pub keycloak: KeycloakConfig,
    /// Component sandbox.
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// How often component files (and this file) are checked for changes.
    #[serde(default = "defaults::watch", with = "duration")]
    pub component_watch_interval: Duration,
    /// Address of the metrics and health server.
    #[serde(default = "defaults::http")]
    pub http_address: String,
    /// The operator's own namespace: where pull Secrets of declared
    /// components are read and, by default, where the leader Lease lives.
    /// `$POD_NAMESPACE` when unset, else `default`.
    #[serde(default)]
    pub operator_namespace: Option<String>,
    /// Components declared as `ReconcilerComponent` resources.
    #[serde(default)]
    pub declared_components: DeclaredComponentsConfig,
    /// Addresses that replace managed Keycloaks' in-cluster URLs, by
    /// `namespace/name`. Only for running the host outside the cluster it
    /// manages (the end-to-end tests do); in a cluster, leave it empty.
    #[serde(default)]
    pub keycloak_address_overrides: std::collections::BTreeMap<String, String>,
}

/// One component and what it is granted.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ComponentSpec {
    /// The `.wasm` file.
    pub path: PathBuf,
    /// Capabilities granted to it.
    #[serde(default)]
    pub grants: Vec<Capability>,
}

/// Components declared as `ReconcilerComponent` resources and pulled from
/// OCI registries.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeclaredComponentsConfig {
    /// Watch `ReconcilerComponent`s. Off, only the components of this file
    /// serve.
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    /// Follow only the `ReconcilerComponent`s with these labels (a label
    /// selector such as `keycloak.wasmop.dev/operator=team-a`), so that two
    /// installations in one cluster each follow their own. All when unset.
    #[serde(default)]
    pub label_selector: Option<String>,
    /// Registries reached over plain HTTP (`host:port`); every other one
    /// over HTTPS. Only for a registry on a loopback address or a test bed.
    #[serde(default)]
    pub insecure_registries: Vec<String>,
    /// Timeout of one registry request.
    #[serde(default = "defaults::pull_timeout", with = "duration")]
    pub pull_timeout: Duration,
    /// Largest component accepted, MiB.
    #[serde(default = "defaults::max_component_mib", rename = "maxComponentMiB")]
    pub max_component_mib: u64,
    /// Most the pulled components kept in `runtime.cacheDir/artifacts` may
    /// take, MiB; the least recently used go first (a rollback to one of
    /// them then pulls again).
    #[serde(default = "defaults::store_max_mib", rename = "storeMaxMiB")]
    pub store_max_mib: u64,
}

impl Default for DeclaredComponentsConfig {
    fn default() -> Self {
        DeclaredComponentsConfig {
            enabled: true,
            label_selector: None,
            insecure_registries: Vec::new(),
            pull_timeout: defaults::pull_timeout(),
            max_component_mib: defaults::max_component_mib(),
            store_max_mib: defaults::store_max_mib(),
        }
    }
}

impl HostConfig {
    /// The operator's own namespace.
    pub fn operator_namespace(&self) -> String {
        self.operator_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok().filter(|n| !n.is_empty()))
            .unwrap_or_else(|| "default".into())
    }
}

/// Retry backoff per object.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackoffConfig {
    /// First delay.
    #[serde(default = "defaults::backoff_base", with = "duration")]
    pub base: Duration,
    /// Largest delay.
    #[serde(default = "defaults::backoff_cap", with = "duration")]
    pub cap: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            base: defaults::backoff_base(),
            cap: defaults::backoff_cap(),
        }
    }
}

/// Lease-based leader election.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeaderElectionConfig {
    /// Off only for a single replica.
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    /// Name of the Lease.
    #[serde(default = "defaults::lease_name")]
    pub lease_name: String,
    /// Namespace of the Lease; the pod's namespace (`POD_NAMESPACE`) by default.
    #[serde(default)]
    pub namespace: Option<String>,
    /// How long a Lease is valid without renewal.
    #[serde(default = "defaults::lease_duration", with = "duration")]
    pub lease_duration: Duration,
    /// How long before expiry the holder renews.
    #[serde(default = "defaults::lease_grace", with = "duration")]
    pub renew_grace: Duration,
}

impl Default for LeaderElectionConfig {
    fn default() -> Self {
        LeaderElectionConfig {
            enabled: true,
            lease_name: defaults::lease_name(),
            namespace: None,
            lease_duration: defaults::lease_duration(),
            renew_grace: defaults::lease_grace(),
        }
    }
}

/// Keycloak access.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeycloakConfig {
    /// Consecutive failures that open an instance's circuit.
    #[serde(default = "defaults::failure_threshold")]
    pub failure_threshold: u32,
    /// Time the circuit stays open before one probe.
    #[serde(default = "defaults::reset_timeout", with = "duration")]
    pub reset_timeout: Duration,
    /// Attempts per request.
    #[serde(default = "defaults::max_attempts")]
    pub max_attempts: u32,
    /// Timeout of one attempt.
    #[serde(default = "defaults::request_timeout", with = "duration")]
    pub request_timeout: Duration,
    /// Requests per second per instance.
    #[serde(default = "defaults::rate_limit")]
    pub rate_limit: f64,
    /// Burst per instance.
    #[serde(default = "defaults::burst")]
    pub burst: u32,
    /// Requests in flight at once per instance.
    #[serde(default = "defaults::max_in_flight")]
    pub max_in_flight: usize,
    /// Writes to a whole realm (creating, updating, deleting, importing
    /// into one) in flight at once per instance: each costs Keycloak seconds.
    /// Writes below a realm are limited only by `max_in_flight`.
    #[serde(default = "defaults::max_concurrent_writes")]
    pub max_concurrent_writes: usize,
    /// How often each realm's admin events are read to catch changes made
    /// outside the operator; `0s` leaves drift to the resync.
    #[serde(default = "defaults::drift_poll", with = "duration")]
    pub drift_poll_interval: Duration,
    /// How long Keycloak keeps admin events in realms where the operator
    /// turns them on (a retention already set stands).
    #[serde(default = "defaults::admin_events_retention", with = "duration")]
    pub admin_events_retention: Duration,
}

impl Default for KeycloakConfig {
    fn default() -> Self {
        KeycloakConfig {
            failure_threshold: defaults::failure_threshold(),
            reset_timeout: defaults::reset_timeout(),
            max_attempts: defaults::max_attempts(),
            request_timeout: defaults::request_timeout(),
            rate_limit: defaults::rate_limit(),
            burst: defaults::burst(),
            max_in_flight: defaults::max_in_flight(),
            max_concurrent_writes: defaults::max_concurrent_writes(),
            drift_poll_interval: defaults::drift_poll(),
            admin_events_retention: defaults::admin_events_retention(),
        }
    }
}

/// The component sandbox.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Memory cap of one component instance, MiB.
    #[serde(default = "defaults::memory_mib", rename = "memoryLimitMiB")]
    pub memory_limit_mib: usize,
    /// Computation time of one call (host calls excluded).
    #[serde(default = "defaults::guest_time", with = "duration")]
    pub guest_time_limit: Duration,
    /// Total time of one call.
    #[serde(default = "defaults::wall_time", with = "duration")]
    pub wall_time_limit: Duration,
    /// Where compiled components are cached.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// Most the compiled components in `cache_dir` may take, MiB; the least
    /// recently used go first.
    #[serde(default = "defaults::cache_max_mib", rename = "cacheMaxMiB")]
    pub cache_max_mib: u64,
    /// Use the pooling allocator when the address space allows.
    #[serde(default = "defaults::yes")]
    pub pooling: bool,
    /// Instances alive at once.
    #[serde(default = "defaults::max_instances")]
    pub max_instances: u32,
    /// Child kinds components may create (`apiVersion/Kind`); a safe default
    /// list when unset.
    #[serde(default)]
    pub allowed_child_kinds: Option<Vec<String>>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            memory_limit_mib: defaults::memory_mib(),
            guest_time_limit: defaults::guest_time(),
            wall_time_limit: defaults::wall_time(),
            cache_dir: None,
            cache_max_mib: defaults::cache_max_mib(),
            pooling: true,
            max_instances: defaults::max_instances(),
            allowed_child_kinds: None,
        }
    }
}

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Unreadable file.
    #[error("cannot read configuration {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Invalid YAML or fields.
    #[error("invalid configuration {path}: {source}")]
    Parse {
        /// File.
        path: PathBuf,
        /// Cause.
        source: serde_yaml::Error,
    },
    /// Values that do not make sense together.
    #[error("invalid configuration {path}: {message}")]
    Invalid {
        /// File.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl HostConfig {
    /// Reads and checks a configuration file. Relative component paths are
    /// relative to the file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses a configuration; `path` names it in errors and anchors
    /// relative component paths.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut config: HostConfig = serde_yaml::from_str(text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for component in &mut config.components {
            if component.path.is_relative() {
                component.path = base.join(&component.path);
            }
        }
        let invalid = |message: &str| ConfigError::Invalid {
            path: path.to_owned(),
            message: message.to_owned(),
        };
        if config.workers == 0 {
            return Err(invalid("workers must be at least 1"));
        }
        if config.leader_election.renew_grace >= config.leader_election.lease_duration {
            return Err(invalid("leaderElection.renewGrace must be shorter than leaseDuration"));
        }
        if config.resync_period < Duration::from_millis(100) {
            return Err(invalid("resyncPeriod must be at least 100ms"));
        }
        if config.keycloak.max_attempts == 0 || config.keycloak.failure_threshold == 0 {
            return Err(invalid(
                "keycloak.maxAttempts and keycloak.failureThreshold must be at least 1",
            ));
        }
        Ok(config)
    }
}

mod defaults {
    use std::time::Duration;

    /// Long: admin events bring drift within seconds; the resync only
    /// catches what they do not show.
    pub fn resync() -> Duration {
        Duration::from_secs(30 * 60)
    }
    pub fn drift_poll() -> Duration {
        Duration::from_secs(5)
    }
    pub fn admin_events_retention() -> Duration {
        Duration::from_secs(24 * 60 * 60)
    }
    pub fn workers() -> usize {
        8
    }
    pub fn progressing() -> Duration {
        Duration::from_secs(10)
    }
    pub fn watch() -> Duration {
        Duration::from_secs(2)
    }
    pub fn http() -> String {
        "0.0.0.0:8080".into()
    }
    pub fn backoff_base() -> Duration {
        Duration::from_secs(1)
    }
    pub fn backoff_cap() -> Duration {
        Duration::from_secs(300)
    }
    pub fn yes() -> bool {
        true
    }
    pub fn lease_name() -> String {
        "keycloak-operator".into()
    }
    pub fn lease_duration() -> Duration {
        Duration::from_secs(15)
    }
    pub fn lease_grace() -> Duration {
        Duration::from_secs(5)
    }
    pub fn failure_threshold() -> u32 {
        5
    }
    pub fn reset_timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub fn max_attempts() -> u32 {
        3
    }
    pub fn request_timeout() -> Duration {
        // Creating a realm takes Keycloak seconds, more on a busy machine; a
        // timeout shorter than that turns a slow success into a retry.
        Duration::from_secs(30)
    }
    pub fn rate_limit() -> f64 {
        200.0
    }
    pub fn burst() -> u32 {
        100
    }
    pub fn max_in_flight() -> usize {
        16
    }
    pub fn max_concurrent_writes() -> usize {
        4
    }
    pub fn memory_mib() -> usize {
        64
    }
    pub fn guest_time() -> Duration {
        Duration::from_secs(2)
    }
    pub fn wall_time() -> Duration {
        Duration::from_secs(120)
    }
    pub fn max_instances() -> u32 {
        256
    }
    pub fn pull_timeout() -> Duration {
        Duration::from_secs(60)
    }
    pub fn max_component_mib() -> u64 {
        64
    }
    pub fn cache_max_mib() -> u64 {
        1024
    }
    pub fn store_max_mib() -> u64 {
        256
    }
}

/// Durations written as `300ms`, `10s`, `5m`, `1h`, or plain seconds.
pub mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    /// Parses one duration.
    pub fn parse(text: &str) -> Result<Duration, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let value: f64 = number.parse().map_err(|_| format!("invalid duration {text:?}"))?;
        let seconds = match unit {
            "" | "s" => value,
            "ms" => value / 1000.0,
            "m" => value * 60.0,
            "h" => value * 3600.0,
            _ => {
                return Err(format!("invalid duration unit in {text:?} (use ms, s, m or h)"));
            }
        };
        Duration::try_from_secs_f64(seconds).map_err(|_| format!("invalid duration {text:?}"))
    }

    /// Serde adapter.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(f64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Seconds(s) => Duration::try_from_secs_f64(s).map_err(serde::de::Error::custom),
            Raw::Text(t) => parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_minimal_file_with_defaults_and_relative_paths() {
        let config = HostConfig::parse(
            "components:\n- path: realm.wasm\n  grants: [keycloak-admin]\nresyncPeriod: 30s\n",
            Path::new("/etc/kop/config.yaml"),
        )
        .expect("valid");
        assert_eq!(config.components[0].path, PathBuf::from("/etc/kop/realm.wasm"));
        assert_eq!(config.components[0].grants, vec![Capability::KeycloakAdmin]);
        assert_eq!(config.resync_period, Duration::from_secs(30));
        assert_eq!(config.workers, 8);
        assert!(config.leader_election.enabled);
    }

    #[test]
    fn rejects_unknown_fields_and_nonsense() {
        assert!(HostConfig::parse("components: []\nresyncPerod: 5m\n", Path::new("c.yaml")).is_err());
        assert!(HostConfig::parse("components: []\nworkers: 0\n", Path::new("c.yaml")).is_err());
        assert!(HostConfig::parse("components:\n- path: a.wasm\n  grants: [root]\n", Path::new("c.yaml")).is_err());
    }

    #[test]
    fn durations_in_units() {
        assert_eq!(duration::parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(duration::parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(duration::parse("2"), Ok(Duration::from_secs(2)));
        assert!(duration::parse("5 parsecs").is_err());
    }
}
