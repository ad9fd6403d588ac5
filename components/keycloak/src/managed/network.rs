//! Services, Ingress, NetworkPolicy and PodDisruptionBudget of a managed
//! Keycloak.

use keycloak_operator_api::managed::{ManagedKeycloak, naming};
use serde_json::{Value, json};

use super::workload::{HTTP_PORT, HTTPS_PORT, JGROUPS_PORT, MANAGEMENT_PORT, selector};

fn service(name: &str, owner: &str, ports: Value, headless: bool) -> Value {
    let mut spec = json!({"selector": selector(owner), "ports": ports});
    if headless {
        // Pods must find each other before they are Ready, to form the cluster.
        spec["clusterIP"] = json!("None");
        spec["publishNotReadyAddresses"] = json!(true);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": selector(owner)},
        "spec": spec,
    })
}

/// The HTTP(S) Service, the management Service, and the headless Service
/// for cache discovery.
pub fn services(name: &str, spec: &ManagedKeycloak) -> Vec<Value> {
    let (port_name, port) = if spec.tls_secret_name.is_some() {
        ("https", HTTPS_PORT)
    } else {
        ("http", HTTP_PORT)
    };
    vec![
        service(
            &naming::service(name),
            name,
            json!([{"name": port_name, "port": port, "targetPort": port_name, "protocol": "TCP"}]),
            false,
        ),
        service(
            &naming::management_service(name),
            name,
            json!([{"name": "management", "port": MANAGEMENT_PORT, "targetPort": "management", "protocol": "TCP"}]),
            false,
        ),
        service(
            &naming::discovery_service(name),
            name,
            json!([{"name": "jgroups", "port": JGROUPS_PORT, "targetPort": "jgroups", "protocol": "TCP"}]),
            true,
        ),
    ]
}

/// A PodDisruptionBudget keeping at least one pod through voluntary
/// disruptions, when there is more than one.
pub fn disruption_budget(name: &str, spec: &ManagedKeycloak) -> Option<Value> {
    (spec.replicas > 1).then(|| {
        json!({
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "labels": selector(name)},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(name)}},
        })
    })
}

/// The Ingress, when asked for.
pub fn ingress(name: &str, spec: &ManagedKeycloak) -> Option<Value> {
    let settings = spec.ingress.as_ref()?;
    let host = settings.host.clone().or_else(|| {
        spec.hostname.hostname.as_deref().map(|h| {
            let without_scheme = h.split_once("://").map_or(h, |(_, rest)| rest);
            without_scheme.split(['/', ':']).next().unwrap_or_default().to_owned()
        })
    });
    let (port_name, _) = if spec.tls_secret_name.is_some() {
        ("https", HTTPS_PORT)
    } else {
        ("http", HTTP_PORT)
    };
    let mut rule = json!({"http": {"paths": [{
        "path": "/",
        "pathType": "Prefix",
        "backend": {"service": {"name": naming::service(name), "port": {"name": port_name}}},
    }]}});
    if let Some(host) = &host {
        rule["host"] = json!(host);
    }
    let mut ingress_spec = json!({"rules": [rule]});
    if let Some(class) = &settings.class_name {
        ingress_spec["ingressClassName"] = json!(class);
    }
    if let Some(secret) = &settings.tls_secret_name {
        let mut tls = json!({"secretName": secret});
        if let Some(host) = &host {
            tls["hosts"] = json!([host]);
        }
        ingress_spec["tls"] = json!([tls]);
    }
    let mut metadata = json!({"name": name, "labels": selector(name)});
    if !settings.annotations.is_empty() {
        metadata["annotations"] = json!(settings.annotations);
    }
    Some(json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": metadata, "spec": ingress_spec}))
}

/// The NetworkPolicy, when asked for: Keycloak's port from its own namespace
/// and the listed ones, and the cache cluster's port only between its pods.
pub fn network_policy(name: &str, namespace: &str, spec: &ManagedKeycloak) -> Option<Value> {
    let settings = spec.network_policy.as_ref()?;
    let port = if spec.tls_secret_name.is_some() {
        HTTPS_PORT
    } else {
        HTTP_PORT
    };
    let mut namespaces: Vec<&str> = vec![namespace];
    namespaces.extend(settings.allowed_namespaces.iter().map(String::as_str));
    let from: Vec<Value> = namespaces
        .iter()
        .map(|ns| json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}))
        .collect();
    Some(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "labels": selector(name)},
        "spec": {
            "podSelector": {"matchLabels": selector(name)},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": from, "ports": [{"protocol": "TCP", "port": port}, {"protocol": "TCP", "port": MANAGEMENT_PORT}]},
                {"from": [{"podSelector": {"matchLabels": selector(name)}}], "ports": [{"protocol": "TCP", "port": JGROUPS_PORT}]},
            ],
        },
    }))
}
