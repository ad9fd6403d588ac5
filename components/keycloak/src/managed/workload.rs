//! The Deployment that runs Keycloak.

use keycloak_operator_api::managed::{ManagedKeycloak, UpdateStrategy, naming};
use serde_json::{Map, Value, json};

use super::database::DatabaseWiring;

/// The HTTP port inside the pod.
pub const HTTP_PORT: i32 = 8080;
/// The HTTPS port inside the pod.
pub const HTTPS_PORT: i32 = 8443;
/// The management port (health, metrics).
pub const MANAGEMENT_PORT: i32 = 9000;
/// JGroups' port, for the cache cluster between pods.
pub const JGROUPS_PORT: i32 = 7800;
/// Where a TLS Secret is mounted.
const TLS_DIR: &str = "/opt/keycloak/conf/tls";

/// How the next rollout replaces pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// One pod at a time, never below the desired count.
    Rolling,
    /// All pods stopped first.
    Recreate,
}

/// Labels that select the pods of one Keycloak.
pub fn selector(name: &str) -> Value {
    json!({"app.kubernetes.io/name": "keycloak", "app.kubernetes.io/instance": name})
}

/// The version the Deployment currently runs, from its image tag.
pub fn running_version(deployment: &Value) -> Option<String> {
    let image = deployment.pointer("/spec/template/spec/containers/0/image")?.as_str()?;
    image.rsplit_once(':').map(|(_, tag)| tag.to_owned())
}

/// Annotation on the Deployment naming the version an upgrade replaces,
/// kept until its rollout completes: once the Deployment names the new
/// version, nothing else remembers that an upgrade is under way.
pub const UPGRADING_FROM: &str = "keycloak.wasmop.dev/upgrading-from";

/// The version being upgraded from, while a version change rolls out.
pub fn upgrading_from(spec: &ManagedKeycloak, observed: Option<&Value>) -> Option<String> {
    let observed = observed?;
    if let Some(running) = running_version(observed).filter(|running| running != spec.version()) {
        return Some(running);
    }
    let from = observed
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(UPGRADING_FROM))
        .and_then(Value::as_str)?;
    (!rollout_complete(observed)).then(|| from.to_owned())
}

/// Whether every replica of the Deployment runs its current template.
fn rollout_complete(deployment: &Value) -> bool {
    let number = |pointer: &str| deployment.pointer(pointer).and_then(Value::as_i64).unwrap_or(0);
    let replicas = deployment
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    number("/status/observedGeneration") >= number("/metadata/generation")
        && number("/status/updatedReplicas") == replicas
        && number("/status/availableReplicas") == replicas
        && number("/status/replicas") == replicas
}

/// The strategy for the next rollout: `Auto` recreates while the version
/// changes, because Keycloak migrates its schema at start and nodes of two
/// versions must not share a cache cluster.
pub fn strategy(spec: &ManagedKeycloak, observed: Option<&Value>) -> Strategy {
    match spec.update_strategy {
        UpdateStrategy::Rolling => Strategy::Rolling,
        UpdateStrategy::Recreate => Strategy::Recreate,
        UpdateStrategy::Auto if upgrading_from(spec, observed).is_some() => Strategy::Recreate,
        UpdateStrategy::Auto => Strategy::Rolling,
    }
}

fn env(name: &str, value: impl Into<Value>) -> Value {
    json!({"name": name, "value": value.into()})
}

fn env_from_secret(name: &str, secret: &str, key: &str) -> Value {
    json!({"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})
}

/// `log-level` → `KC_LOG_LEVEL`.
fn option_variable(option: &str) -> String {
    format!("KC_{}", option.to_ascii_uppercase().replace(['-', '.'], "_"))
}

fn environment(name: &str, namespace: &str, spec: &ManagedKeycloak, database: &DatabaseWiring) -> Vec<Value> {
    let tls = spec.tls_secret_name.is_some();
    let mut vars = vec![
        env("KC_HEALTH_ENABLED", "true"),
        env("KC_METRICS_ENABLED", "true"),
        env("KC_HTTP_MANAGEMENT_PORT", MANAGEMENT_PORT.to_string()),
    ];
    if tls {
        vars.extend([
            env("KC_HTTP_ENABLED", "false"),
            env("KC_HTTPS_PORT", HTTPS_PORT.to_string()),
            env("KC_HTTPS_CERTIFICATE_FILE", format!("{TLS_DIR}/tls.crt")),
            env("KC_HTTPS_CERTIFICATE_KEY_FILE", format!("{TLS_DIR}/tls.key")),
        ]);
    } else {
        vars.extend([
            env("KC_HTTP_ENABLED", "true"),
            env("KC_HTTP_PORT", HTTP_PORT.to_string()),
        ]);
    }
    match &spec.hostname.hostname {
        Some(hostname) => vars.push(env("KC_HOSTNAME", hostname.as_str())),
        None => vars.push(env("KC_HOSTNAME_STRICT", "false")),
    }
    if let Some(admin) = &spec.hostname.admin {
        vars.push(env("KC_HOSTNAME_ADMIN", admin.as_str()));
    }
    if let Some(headers) = spec.hostname.proxy_headers {
        let value = match headers {
            keycloak_operator_api::managed::ProxyHeaders::Forwarded => "forwarded",
            keycloak_operator_api::managed::ProxyHeaders::Xforwarded => "xforwarded",
        };
        vars.push(env("KC_PROXY_HEADERS", value));
    }
    vars.extend(database.environment());
    if database.is_dev() {
        vars.push(env("KC_CACHE", "local"));
    } else {
        // Pods find each other through the headless Service's DNS records.
        let discovery = format!("{}.{namespace}.svc.cluster.local", naming::discovery_service(name));
        vars.extend([
            env("KC_CACHE", "ispn"),
            env("KC_CACHE_STACK", "kubernetes"),
            env("JAVA_OPTS_APPEND", format!("-Djgroups.dns.query={discovery}")),
        ]);
    }
    if !spec.features.enabled.is_empty() {
        vars.push(env("KC_FEATURES", spec.features.enabled.join(",")));
    }
    if !spec.features.disabled.is_empty() {
        vars.push(env("KC_FEATURES_DISABLED", spec.features.disabled.join(",")));
    }
    let bootstrap = naming::bootstrap_admin_secret(name);
    vars.push(env_from_secret("KC_BOOTSTRAP_ADMIN_USERNAME", &bootstrap, "username"));
    vars.push(env_from_secret("KC_BOOTSTRAP_ADMIN_PASSWORD", &bootstrap, "password"));
    for (option, value) in &spec.options {
        vars.push(env(&option_variable(option), value.as_str()));
    }
    for extra in &spec.env {
        vars.push(serde_json::to_value(extra).unwrap_or(Value::Null));
    }
    vars
}

fn probe(path: &str, scheme: &str, period: i32, failures: i32) -> Value {
    json!({
        "httpGet": {"path": path, "port": "management", "scheme": scheme},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": 5,
    })
}

fn container(name: &str, namespace: &str, spec: &ManagedKeycloak, database: &DatabaseWiring) -> Value {
    let tls = spec.tls_secret_name.is_some();
    let scheme = if tls { "HTTPS" } else { "HTTP" };
    let mut args = vec!["start"];
    if spec.optimized_image {
        args.push("--optimized");
    }
    let (port_name, port) = if tls {
        ("https", HTTPS_PORT)
    } else {
        ("http", HTTP_PORT)
    };
    let resources = spec
        .resources
        .as_ref()
        .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
        .unwrap_or_else(|| json!({"requests": {"cpu": "500m", "memory": "1250Mi"}, "limits": {"memory": "2Gi"}}));
    let mut mounts = vec![
        json!({"name": "data", "mountPath": "/opt/keycloak/data"}),
        json!({"name": "tmp", "mountPath": "/tmp"}),
    ];
    if tls {
        mounts.push(json!({"name": "tls", "mountPath": TLS_DIR, "readOnly": true}));
    }
    json!({
        "name": "keycloak",
        "image": spec.image(),
        "args": args,
        "env": environment(name, namespace, spec, database),
        "ports": [
            {"name": port_name, "containerPort": port, "protocol": "TCP"},
            {"name": "management", "containerPort": MANAGEMENT_PORT, "protocol": "TCP"},
            {"name": "jgroups", "containerPort": JGROUPS_PORT, "protocol": "TCP"},
        ],
        "startupProbe": probe("/health/started", scheme, 5, 60),
        "readinessProbe": probe("/health/ready", scheme, 10, 3),
        "livenessProbe": probe("/health/live", scheme, 10, 6),
        "resources": resources,
        // Keycloak's last log lines become the termination message, which is
        // how a crash for want of a database is told from other crashes.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": true,
            // Without a pre-built image Keycloak builds itself at start and
            // writes into its installation.
            "readOnlyRootFilesystem": spec.optimized_image,
        },
        "volumeMounts": mounts,
    })
}

fn pod_template(name: &str, namespace: &str, spec: &ManagedKeycloak, database: &DatabaseWiring) -> Value {
    let mut labels = selector(name);
    labels["app.kubernetes.io/component"] = json!("server");
    labels["app.kubernetes.io/version"] = json!(spec.version());
    // Makes the pods visible to the host as related objects of this Keycloak.
    labels["app.kubernetes.io/managed-by"] = json!("keycloak-operator");
    let s = &spec.scheduling;
    let affinity = s.affinity.as_ref().map(|a| serde_json::to_value(a).unwrap_or(Value::Null)).unwrap_or_else(|| {
        json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 100,
            "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": selector(name)}},
        }]}})
    });
    let spread = if s.topology_spread_constraints.is_empty() {
        json!([{
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": selector(name)},
        }])
    } else {
        serde_json::to_value(&s.topology_spread_constraints).unwrap_or(Value::Null)
    };
    let mut volumes = vec![
        json!({"name": "data", "emptyDir": {}}),
        json!({"name": "tmp", "emptyDir": {}}),
    ];
    if let Some(secret) = &spec.tls_secret_name {
        volumes.push(json!({"name": "tls", "secret": {"secretName": secret}}));
    }
    let mut pod = json!({
        "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container(name, namespace, spec, database)],
        "volumes": volumes,
        "affinity": affinity,
        "topologySpreadConstraints": spread,
        "terminationGracePeriodSeconds": 30,
        "enableServiceLinks": false,
    });
    if !s.node_selector.is_empty() {
        pod["nodeSelector"] = json!(s.node_selector);
    }
    if !s.tolerations.is_empty() {
        pod["tolerations"] = serde_json::to_value(&s.tolerations).unwrap_or(Value::Null);
    }
    if let Some(class) = &s.priority_class_name {
        pod["priorityClassName"] = json!(class);
    }
    let mut template = json!({"metadata": {"labels": labels}, "spec": pod});
    if let Some(patch) = &spec.pod_template {
        merge_patch(&mut template, &Value::Object(patch.clone()));
    }
    template
}

/// RFC 7386 JSON merge patch: objects merge, anything else replaces, and
/// `null` removes.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(patch) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            if let Value::Object(target) = target {
                for (key, value) in patch {
                    if value.is_null() {
                        target.remove(key);
                    } else {
                        merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

/// The Deployment.
pub fn deployment(
    name: &str,
    namespace: &str,
    spec: &ManagedKeycloak,
    database: &DatabaseWiring,
    strategy: Strategy,
) -> Value {
    let strategy = match strategy {
        Strategy::Rolling => json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}),
        Strategy::Recreate => json!({"type": "Recreate"}),
    };
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": selector(name)},
        "spec": {
            "replicas": spec.replicas,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": selector(name)},
            "strategy": strategy,
            "template": pod_template(name, namespace, spec, database),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_become_keycloak_environment_variables() {
        assert_eq!(option_variable("log-level"), "KC_LOG_LEVEL");
        assert_eq!(
            option_variable("spi-events-listener.jboss-logging"),
            "KC_SPI_EVENTS_LISTENER_JBOSS_LOGGING"
        );
    }

    #[test]
    fn merge_patch_merges_objects_replaces_lists_and_removes_nulls() {
        let mut target = json!({"a": {"b": 1, "c": 2}, "list": [1, 2], "gone": true});
        merge_patch(&mut target, &json!({"a": {"c": 3}, "list": [9], "gone": null}));
        assert_eq!(target, json!({"a": {"b": 1, "c": 3}, "list": [9]}));
    }

    #[test]
    fn auto_recreates_on_a_version_change_only() {
        let spec: ManagedKeycloak =
            serde_json::from_value(json!({"version": "26.7.3", "database": {"dev": true}})).expect("spec");
        let running = |v: &str| json!({"spec": {"template": {"spec": {"containers": [{"image": format!("quay.io/keycloak/keycloak:{v}")}]}}}});
        assert_eq!(strategy(&spec, Some(&running("26.7.3"))), Strategy::Rolling);
        assert_eq!(strategy(&spec, Some(&running("26.6.0"))), Strategy::Recreate);
        assert_eq!(strategy(&spec, None), Strategy::Rolling);
    }

    #[test]
    fn an_upgrade_keeps_recreating_until_its_rollout_completes() {
        let spec: ManagedKeycloak =
            serde_json::from_value(json!({"version": "26.7.3", "database": {"dev": true}})).expect("spec");
        let deployment = |available: i64| {
            json!({
                "metadata": {"generation": 2, "annotations": {UPGRADING_FROM: "26.6.0"}},
                "spec": {"replicas": 2, "template": {"spec": {"containers": [{"image": "quay.io/keycloak/keycloak:26.7.3"}]}}},
                "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": available},
            })
        };
        assert_eq!(upgrading_from(&spec, Some(&deployment(1))).as_deref(), Some("26.6.0"));
        assert_eq!(strategy(&spec, Some(&deployment(1))), Strategy::Recreate);
        assert_eq!(upgrading_from(&spec, Some(&deployment(2))), None);
        assert_eq!(strategy(&spec, Some(&deployment(2))), Strategy::Rolling);
    }
}
