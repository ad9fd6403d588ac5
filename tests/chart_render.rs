//! The Helm chart, checked without running it: it lints, renders in both
//! modes and passes the API server's own validation (a server-side dry
//! run), its schema refuses bad values, and its alerts pass promtool, each
//! with a unit test and a runbook.

use std::collections::BTreeSet;

use anyhow::{Context, Result};
use keycloak_operator_e2e::chart::{chart_dir, documents, helm, helm_status, kubectl, run};
use keycloak_operator_e2e::managed::bed_var;
use keycloak_operator_e2e::resources::install_crds;
use keycloak_operator_e2e::testbed::{TestNamespace, kube_client, repo_root};
use serde_json::Value;

/// Installs the Prometheus Operator's CRDs (no controller runs) so that the
/// chart's monitoring objects can be validated by the API server.
async fn install_monitoring_crds() -> Result<()> {
    let dir = bed_var("TESTBED_PROMETHEUS_CRDS")?;
    run(
        &kubectl()?,
        &["apply", "--server-side", "--force-conflicts", "-f", &dir],
        None,
    )
    .await?;
    run(
        &kubectl()?,
        &[
            "wait",
            "--for=condition=Established",
            "crd/servicemonitors.monitoring.coreos.com",
            "crd/prometheusrules.monitoring.coreos.com",
            "--timeout=60s",
        ],
        None,
    )
    .await?;
    Ok(())
}

/// `helm template` into `namespace` with `values`.
async fn render(namespace: &str, values: &[&str]) -> Result<String> {
    let chart = chart_dir().display().to_string();
    let mut args = vec!["template", "kop", chart.as_str(), "--namespace", namespace];
    for value in values {
        args.extend(["--set", value]);
    }
    helm(&args).await
}

/// Everything optional turned on, to validate all the chart can render.
const EVERYTHING: &[&str] = &[
    "serviceMonitor.enabled=true",
    "prometheusRule.enabled=true",
    "grafanaDashboard.enabled=true",
    "networkPolicy.enabled=true",
];

#[tokio::test]
async fn the_chart_lints_renders_in_both_modes_passes_the_api_servers_validation_and_refuses_bad_values() -> Result<()>
{
    let client = kube_client().await?;
    install_crds(&client).await?;
    install_monitoring_crds().await?;
    let release = TestNamespace::create(&client, "chart-render").await?;
    let team_a = TestNamespace::create(&client, "team-a").await?;
    let team_b = TestNamespace::create(&client, "team-b").await?;
    let chart = chart_dir().display().to_string();

    // helm lint, both modes
    helm(&["lint", "--strict", &chart]).await?;
    let watched = format!("watchNamespaces={{{},{}}}", team_a.name(), team_b.name());
    helm(&["lint", "--strict", &chart, "--set", &watched]).await?;

    // Both modes render and the API server accepts every object (server-side dry run)
    for namespaced in [false, true] {
        let mut values: Vec<&str> = EVERYTHING.to_vec();
        if namespaced {
            values.push(&watched);
        }
        let rendered = render(release.name(), &values).await?;
        let docs = documents(&rendered)?;
        let kinds: BTreeSet<String> = docs
            .iter()
            .filter_map(|d| d["kind"].as_str().map(str::to_owned))
            .collect();
        for kind in [
            "Deployment",
            "ConfigMap",
            "ServiceAccount",
            "Service",
            "ServiceMonitor",
            "PrometheusRule",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "CustomResourceDefinition",
            "ClusterRole",
        ] {
            assert!(
                kinds.contains(kind),
                "namespaced={namespaced}: no {kind} rendered ({kinds:?})"
            );
        }
        run(
            &kubectl()?,
            &[
                "apply",
                "--server-side",
                "--dry-run=server",
                "--force-conflicts",
                "-f",
                "-",
            ],
            Some(&rendered),
        )
        .await
        .with_context(|| format!("server-side dry run, namespaced={namespaced}"))?;

        // In namespaced mode no cluster-wide rule names Secrets, and Roles exist only
        // in the watched namespaces and the release's own
        if namespaced {
            for doc in docs.iter().filter(|d| d["kind"] == "ClusterRole") {
                let rules = doc["rules"].as_array().cloned().unwrap_or_default();
                assert!(
                    rules.iter().all(|r| !r["resources"].to_string().contains("secrets")),
                    "a ClusterRole grants Secrets in namespaced mode: {doc}"
                );
            }
            let role_namespaces: BTreeSet<&str> = docs
                .iter()
                .filter(|d| d["kind"] == "Role")
                .filter_map(|d| d["metadata"]["namespace"].as_str())
                .collect();
            let expected: BTreeSet<&str> = [release.name(), team_a.name(), team_b.name()].into();
            assert_eq!(role_namespaces, expected);
        }
    }

    // The rendered configuration is one the operator accepts
    let rendered = render(release.name(), &[]).await?;
    let config = documents(&rendered)?
        .into_iter()
        .find(|d| d["kind"] == "ConfigMap")
        .and_then(|d| d["data"]["config.yaml"].as_str().map(str::to_owned))
        .context("no configuration rendered")?;
    assert!(config.contains("/usr/lib/keycloak-operator/components/realm_component.wasm"));

    // The schema refuses a wrong type, an unknown key and a malformed duration, saying which
    for (value, expected) in [
        ("replicaCount=two", "replicaCount"),
        ("nosuchkey=1", "nosuchkey"),
        ("config.resyncPeriod=soon", "resyncPeriod"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
    ] {
        let (ok, _, stderr) = helm_status(&["template", "kop", &chart, "--set", value]).await?;
        assert!(!ok, "{value} was accepted");
        assert!(
            stderr.contains("values don't meet the specifications of the schema"),
            "{value}: {stderr}"
        );
        assert!(stderr.contains(expected), "{value}: {stderr}");
    }
    Ok(())
}

#[tokio::test]
async fn every_alert_passes_promtool_has_a_unit_test_and_a_runbook() -> Result<()> {
    let helm_binary = bed_var("TESTBED_HELM")?;
    let script = repo_root().join("tests/chart/render-rules");
    let output = tokio::process::Command::new(&script)
        .arg("--check")
        .env("HELM", &helm_binary)
        .output()
        .await?;
    assert!(
        output.status.success(),
        "tests/chart/rules.yaml is stale: run tests/chart/render-rules\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let rules = repo_root().join("tests/chart/rules.yaml");
    let tests = repo_root().join("tests/chart/alerts.test.yaml");
    run("promtool", &["check", "rules", &rules.display().to_string()], None).await?;
    run("promtool", &["test", "rules", &tests.display().to_string()], None).await?;

    let rules: Value = serde_yaml::from_str(&std::fs::read_to_string(&rules)?)?;
    let unit_tests = std::fs::read_to_string(&tests)?;
    let alerts: Vec<Value> = rules["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .filter(|r| r["alert"].is_string())
        .collect();
    assert!(alerts.len() >= 8, "only {} alerts", alerts.len());
    for alert in alerts {
        let name = alert["alert"].as_str().unwrap_or_default();
        assert!(
            unit_tests.contains(&format!("alertname: {name}")),
            "{name} has no promtool unit test"
        );
        let url = alert["annotations"]["runbook_url"].as_str().unwrap_or_default();
        let page = url.rsplit("/docs/runbooks/").next().unwrap_or_default();
        assert!(
            url.contains("/docs/runbooks/") && repo_root().join("docs/runbooks").join(page).exists(),
            "{name}: runbook_url {url:?} does not name a page in docs/runbooks/"
        );
    }
    Ok(())
}
