//! Every child a managed Keycloak spec turns into is accepted by a real
//! API server (server-side apply, dry run): a schema mistake in the builders
//! fails here, fast, rather than in a user's cluster.

use anyhow::{Context, Result};
use keycloak_component::managed::database::DatabaseWiring;
use keycloak_component::managed::workload::Strategy;
use keycloak_component::managed::workload_children;
use keycloak_operator_api::managed::ManagedKeycloak;
use keycloak_operator_e2e::testbed::{TestNamespace, kube_client};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

fn resource(child: &Value) -> Result<ApiResource> {
    let api_version = child["apiVersion"].as_str().context("apiVersion")?;
    let kind = child["kind"].as_str().context("kind")?;
    let plural = match kind {
        "Deployment" => "deployments",
        "Service" => "services",
        "PodDisruptionBudget" => "poddisruptionbudgets",
        "Ingress" => "ingresses",
        "NetworkPolicy" => "networkpolicies",
        other => anyhow::bail!("unexpected child kind {other}"),
    };
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    Ok(ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: api_version.into(),
        kind: kind.into(),
        plural: plural.into(),
    })
}

fn specs() -> Vec<(&'static str, Value)> {
    vec![
        ("dev database", json!({"database": {"dev": true}})),
        (
            "everything",
            json!({
                "version": "26.7.3",
                "imageRepository": "registry.example/keycloak",
                "optimizedImage": true,
                "replicas": 3,
                "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "3Gi"}},
                "database": {"postgres": {"host": "db", "port": 6432, "database": "kc", "credentialsSecret": "db", "sslMode": "verify-full"}},
                "hostname": {"hostname": "https://sso.example.com/auth", "admin": "https://admin.sso.example.com", "proxyHeaders": "forwarded"},
                "tlsSecretName": "sso-tls",
                "ingress": {"className": "nginx", "tlsSecretName": "sso-tls", "annotations": {"nginx.ingress.kubernetes.io/backend-protocol": "HTTPS"}},
                "networkPolicy": {"allowedNamespaces": ["ingress-nginx", "keycloak-operator"]},
                "scheduling": {
                    "nodeSelector": {"kubernetes.io/os": "linux"},
                    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "sso", "effect": "NoSchedule"}],
                    "priorityClassName": "system-cluster-critical",
                    "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": "sso"}}}],
                },
                "features": {"enabled": ["token-exchange"], "disabled": ["impersonation"]},
                "options": {"log-level": "INFO", "spi-sticky-session-encoder-infinispan-should-attach-route": "false"},
                "env": [{"name": "JAVA_OPTS_KC_HEAP", "value": "-XX:MaxRAMPercentage=60"}],
                "podTemplate": {"metadata": {"annotations": {"example.com/team": "sso"}}, "spec": {"serviceAccountName": "keycloak"}},
                "updateStrategy": "Recreate",
            }),
        ),
        (
            "cloudnative-pg",
            json!({"replicas": 2, "database": {"cloudNativePG": {"clusterName": "pg"}}}),
        ),
    ]
}

#[tokio::test]
async fn every_generated_child_passes_a_server_side_dry_run() -> Result<()> {
    let client = kube_client().await?;
    let ns = TestNamespace::create(&client, "dry-run").await?;
    let ns = ns.name();
    for (label, spec) in specs() {
        let spec: ManagedKeycloak = serde_json::from_value(spec).with_context(|| label.to_owned())?;
        let database = DatabaseWiring::of(&spec.database, ns).map_err(|e| anyhow::anyhow!("{label}: {e:?}"))?;
        for strategy in [Strategy::Rolling, Strategy::Recreate] {
            for child in workload_children("sso", ns, &spec, &database, strategy) {
                let name = child["metadata"]["name"].as_str().context("name")?.to_owned();
                let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource(&child)?);
                api.patch(&name, &PatchParams::apply("dry-run").dry_run(), &Patch::Apply(&child))
                    .await
                    .with_context(|| format!("{label}: {} {name} was refused: {child}", child["kind"]))?;
            }
        }
    }
    Ok(())
}
