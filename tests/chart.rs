//! The Helm chart, proven on the test bed: it lints, renders in both modes
//! and passes the API server's own validation; its schema refuses bad
//! values; its alerts pass promtool; installed with helm, the image it
//! names runs (started by the kubelet stand-in exactly as the Deployment
//! says) with the chart's RBAC and nothing more, serves the quickstart, and
//! exports every metric the dashboard and the alerts use; two replicas elect
//! one leader and fail over after a SIGKILL.

#[path = "client_common.rs"]
mod client_common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use client_common::client_credentials_grant;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use keycloak_operator_e2e::chart::{Release, chart_dir, helm, helm_status, image, kubectl, run};
use keycloak_operator_e2e::managed::bed_var;
use keycloak_operator_e2e::operator::sum_metric;
use keycloak_operator_e2e::resources::{
    admin_secret, apply, client_kind, delete, install_crds, keycloak_kind, realm_kind, secret_data, wait_gone,
    wait_ready,
};
use keycloak_operator_e2e::testbed::{
    TestNamespace, api_error_code, http_client, kube_client, kube_client_with_token, repo_root, testbed, unique_name,
};
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

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

fn documents(yaml: &str) -> Result<Vec<Value>> {
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let value: Value = serde::Deserialize::deserialize(doc)?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
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

/// The `--set` values of a release of the working tree's image.
async fn image_values() -> Result<Vec<String>> {
    let (repository, digest) = image().await?;
    Ok(vec![
        format!("image.repository={repository}"),
        format!("image.digest={digest}"),
        "logJson=false".into(),
        "logLevel=info\\,keycloak_operator=debug\\,kube=warn".into(),
        // The bed's CRDs belong to every test, not to one release (the dry run
        // above validates the chart's own rendering of them).
        "crds.install=false".into(),
    ])
}

/// The quickstart (examples/quickstart/) placed in `namespace`, its realm
/// under a name of its own.
fn quickstart(namespace: &str, realm_name: &str) -> Result<Vec<Value>> {
    let mut objects = Vec::new();
    for file in ["client.yaml", "realm.yaml", "keycloak.yaml"] {
        let text = std::fs::read_to_string(repo_root().join("examples/quickstart").join(file))?
            .replace("${KEYCLOAK_URL}", &testbed().keycloak_url);
        for mut doc in documents(&text)? {
            doc["metadata"]["namespace"] = json!(namespace);
            if doc["kind"] == "KeycloakRealm" {
                doc["spec"]["realmName"] = json!(realm_name);
            }
            objects.push(doc);
        }
    }
    Ok(objects)
}

/// Every metric name a PromQL expression reads.
fn metric_names(expression: &str) -> BTreeSet<String> {
    let keywords = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "and",
        "or",
        "unless",
        "bool",
        "offset",
    ];
    // Aggregations may be written `sum by (kind) (...)`: not followed by `(`.
    let aggregations = [
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
    ];
    // Label matchers, strings, ranges and label lists name no metric.
    let mut text = String::new();
    let mut depth = 0;
    for c in expression.chars() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            _ if depth == 0 => text.push(c),
            _ => {}
        }
    }
    let mut names = BTreeSet::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut skip_list = false;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let rest: String = chars[i..].iter().collect();
            let called = rest.trim_start().starts_with('(');
            if keywords.contains(&word.as_str()) {
                skip_list = called;
            } else if !called && !skip_list && !aggregations.contains(&word.as_str()) {
                names.insert(word);
            }
            continue;
        }
        if c.is_ascii_digit() {
            // A number or a duration (`5m`): no name.
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            continue;
        }
        if c == ')' {
            skip_list = false;
        }
        if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += 1;
            }
        }
        i += 1;
    }
    names
}

fn expressions(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(fields) => {
            for (key, field) in fields {
                match (key.as_str(), field) {
                    ("expr", Value::String(e)) => out.push(e.clone()),
                    ("query" | "definition", Value::String(q)) if q.starts_with("label_values(") => {
                        // label_values(metric, label): only the metric
                        let inner = q.trim_start_matches("label_values(");
                        out.push(inner.split(',').next().unwrap_or_default().to_owned());
                    }
                    _ => expressions(field, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| expressions(i, out)),
        _ => {}
    }
}

async fn token_for(client: &Client, namespace: &str, account: &str) -> Result<String> {
    let request: TokenRequest = serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 600}}))?;
    let token = Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .create_token_request(account, &PostParams::default(), &request)
        .await?;
    token.status.and_then(|s| s.token).context("no token")
}

#[tokio::test]
async fn installed_with_helm_in_namespaced_mode_the_image_serves_the_quickstart_with_the_charts_rbac_only() -> Result<()>
{
    let client = kube_client().await?;
    install_crds(&client).await?;
    let app = TestNamespace::create(&client, "quickstart").await?;
    let elsewhere = TestNamespace::create(&client, "elsewhere").await?;

    // Given the chart installed with helm, watching one namespace, one replica
    let mut values = image_values().await?;
    values.extend([
        format!("watchNamespaces={{{}}}", app.name()),
        "replicaCount=1".into(),
        "config.resyncPeriod=30s".into(),
    ]);
    let release = Release::install(&client, &chart_dir(), &values).await?;
    let pods = release.ready_pods(1).await?;
    let metrics_url = pods[0].metrics.clone().context("the pod exposes no metrics port")?;

    // When the quickstart is applied, in the order a GitOps tool may pick
    admin_secret(&client, app.name(), "sso-admin").await?;
    let realm_name = unique_name("chart-shop");
    for object in quickstart(app.name(), &realm_name)? {
        let kind = match object["kind"].as_str() {
            Some("Keycloak") => keycloak_kind(),
            Some("KeycloakRealm") => realm_kind(),
            _ => client_kind(),
        };
        apply(&client, &kind, app.name(), object).await?;
    }
    // Then the Keycloak, the realm and the client are Ready, served by the image's components
    wait_ready(&client, &keycloak_kind(), app.name(), "sso").await?;
    let realm = wait_ready(&client, &realm_kind(), app.name(), "shop").await?;
    assert_eq!(realm["status"]["reconciledBy"]["name"], "keycloak-operator/realm");
    wait_ready(&client, &client_kind(), app.name(), "shop-backend").await?;
    // And an application gets a token with nothing but the credentials Secret
    let secret = secret_data(&client, app.name(), "shop-backend-credentials")
        .await?
        .context("no credentials Secret")?;
    let (status, answer) = client_credentials_grant(
        &secret["token-endpoint"],
        &secret["client-id"],
        &secret["client-secret"],
    )
    .await?;
    assert_eq!(status, 200, "{answer}");

    // And the chart's ServiceAccount may not touch Secrets outside the watched namespace
    let token = token_for(&client, &release.namespace, &release.service_account()).await?;
    let as_operator = kube_client_with_token(&token).await?;
    let intruder: Secret = serde_json::from_value(json!({"metadata": {"name": "planted"}, "stringData": {"k": "v"}}))?;
    let refused = Api::<Secret>::namespaced(as_operator.clone(), elsewhere.name())
        .create(&PostParams::default(), &intruder)
        .await
        .expect_err("writing a Secret outside the watched namespaces must be refused");
    assert_eq!(api_error_code(&refused), Some(403), "{refused}");
    let refused = Api::<Secret>::all(as_operator.clone())
        .list(&Default::default())
        .await
        .expect_err("listing Secrets cluster-wide must be refused");
    assert_eq!(api_error_code(&refused), Some(403), "{refused}");
    // (while in the watched namespace it may, which the credentials Secret above proves)

    // And every metric the dashboard and the alerts read is one the operator exports
    let live = http_client()
        .get(format!("{metrics_url}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let exported: BTreeSet<String> = live
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next().map(str::to_owned))
        .collect();
    let mut used = Vec::new();
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(chart_dir().join("files/dashboard.json"))?)?;
    expressions(&dashboard, &mut used);
    let rules: Value = serde_yaml::from_str(&std::fs::read_to_string(repo_root().join("tests/chart/rules.yaml"))?)?;
    expressions(&rules, &mut used);
    assert!(used.len() > 10, "only {} expressions found", used.len());
    let mut names = BTreeSet::new();
    for expression in &used {
        names.extend(metric_names(expression));
    }
    // `up` is Prometheus's own, for every target it scrapes.
    names.remove("up");
    let missing: Vec<&String> = names.iter().filter(|n| !exported.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "used but not exported: {missing:?} (exported: {exported:?})"
    );
    assert!(names.len() >= 10, "only {names:?}");

    // The realm goes with its resource while the operator still runs
    delete(&client, &client_kind(), app.name(), "shop-backend").await?;
    delete(&client, &realm_kind(), app.name(), "shop").await?;
    wait_gone(&client, &realm_kind(), app.name(), "shop", Duration::from_secs(90)).await?;
    Ok(())
}

#[tokio::test]
async fn two_replicas_elect_one_leader_and_the_other_takes_over_after_a_sigkill() -> Result<()> {
    let client = kube_client().await?;
    install_crds(&client).await?;
    let app = TestNamespace::create(&client, "replicas").await?;
    let mut values = image_values().await?;
    values.extend([
        format!("watchNamespaces={{{}}}", app.name()),
        "replicaCount=2".into(),
        "leaderElection.leaseDuration=6s".into(),
        "leaderElection.renewGrace=2s".into(),
    ]);
    let release = Release::install(&client, &chart_dir(), &values).await?;
    let pods = release.ready_pods(2).await?;
    assert_eq!(pods.len(), 2);

    // Exactly one leads
    let leaders = |pods: Vec<keycloak_operator_e2e::kubelet::PodView>| async move {
        let mut leading = Vec::new();
        for pod in pods {
            let Some(url) = &pod.metrics else { continue };
            if let Ok(response) = http_client().get(format!("{url}/metrics")).send().await {
                let text = response.text().await.unwrap_or_default();
                if sum_metric(&text, "keycloak_operator_leader", &[]) == 1.0 {
                    leading.push(pod.name.clone());
                }
            }
        }
        leading
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let leader = loop {
        let leading = leaders(release.kubelet.pods().await).await;
        if leading.len() == 1 {
            break leading[0].clone();
        }
        if leading.len() > 1 {
            bail!("two leaders: {leading:?}");
        }
        if Instant::now() > deadline {
            bail!("no leader within 30s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // When the leader's container is killed, and stays down (its node died)
    let killed = Instant::now();
    release.kubelet.kill_and_hold(&leader).await?;
    // Then the other pod leads within the lease duration (plus its renew interval)
    let successor = loop {
        let leading = leaders(release.kubelet.pods().await).await;
        if let Some(other) = leading.iter().find(|l| **l != leader) {
            break other.clone();
        }
        if killed.elapsed() > Duration::from_secs(15) {
            bail!("no other leader within 15s of the SIGKILL (lease 6s)");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let took = killed.elapsed();
    eprintln!("{successor} took over {took:?} after {leader} was killed");
    assert!(took < Duration::from_secs(12), "took {took:?}");
    // And the successor reconciles: a Keycloak applied now becomes Ready
    admin_secret(&client, app.name(), "sso-admin").await?;
    for object in quickstart(app.name(), &unique_name("failover"))? {
        if object["kind"] == "Keycloak" {
            apply(&client, &keycloak_kind(), app.name(), object).await?;
        }
    }
    wait_ready(&client, &keycloak_kind(), app.name(), "sso").await?;
    // And once its node is back, the killed container is restarted and follows
    release.kubelet.release(&leader).await;
    let restarted = Instant::now();
    let pods = loop {
        let pods = release.kubelet.pods().await;
        if pods.iter().any(|p| p.name == leader && p.restarts >= 1) {
            break pods;
        }
        if restarted.elapsed() > Duration::from_secs(30) {
            bail!("the killed container was not restarted: {pods:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    release.kubelet.wait_ready(2, Duration::from_secs(60)).await?;
    assert!(pods.iter().any(|p| p.name == leader && p.restarts >= 1), "{pods:?}");
    let leading = leaders(pods).await;
    assert_eq!(leading, vec![successor], "one leader after the restart");
    Ok(())
}

#[test]
fn metric_names_are_read_from_promql() {
    let names = metric_names(
        r#"sum by (kind) (rate(keycloak_operator_reconciles_total{result=~"retrying|stalled"}[5m])) / on(kind) group_left max(up{job="x"} offset 5m) > 0.2"#,
    );
    let expected: BTreeSet<String> = ["keycloak_operator_reconciles_total", "up"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(names, expected);
}

/// What tests/chart/previous-release built: the chart and image of the
/// pinned earlier commit.
fn previous_release() -> Result<(std::path::PathBuf, Vec<String>)> {
    let pin = std::fs::read_to_string(repo_root().join("tests/chart/previous-release.env"))?;
    let commit = pin
        .lines()
        .find_map(|l| l.strip_prefix("PREVIOUS_COMMIT="))
        .context("no PREVIOUS_COMMIT in tests/chart/previous-release.env")?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let file = target.join("previous").join(commit).join("release.env");
    let text = std::fs::read_to_string(&file).with_context(|| {
        format!(
            "{} is missing: run tests/chart/previous-release (make test does)",
            file.display()
        )
    })?;
    let mut release = std::collections::HashMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once('=') {
            release.insert(k.to_owned(), v.to_owned());
        }
    }
    let chart = std::path::PathBuf::from(release.get("PREVIOUS_CHART").context("no chart")?);
    let values = vec![
        format!(
            "image.repository={}",
            release.get("PREVIOUS_IMAGE_REPOSITORY").context("no image")?
        ),
        format!(
            "image.digest={}",
            release.get("PREVIOUS_IMAGE_DIGEST").context("no digest")?
        ),
    ];
    Ok((chart, values))
}

fn writes(metrics: &str) -> f64 {
    ["PUT", "POST", "DELETE"]
        .iter()
        .map(|m| sum_metric(metrics, "keycloak_operator_keycloak_requests_total", &[("method", m)]))
        .sum::<f64>()
        + 0.0
}

#[tokio::test]
async fn an_upgrade_from_the_previous_release_keeps_everything_ready_and_writes_nothing_to_keycloak() -> Result<()> {
    let client = kube_client().await?;
    install_crds(&client).await?;
    let app = TestNamespace::create(&client, "upgrade").await?;
    let (previous_chart, previous_image) = previous_release()?;
    let common = |image: Vec<String>| {
        let mut values = image;
        values.extend([
            format!("watchNamespaces={{{}}}", app.name()),
            "replicaCount=2".into(),
            "leaderElection.leaseDuration=6s".into(),
            "leaderElection.renewGrace=2s".into(),
            "config.resyncPeriod=1h".into(),
            "crds.install=false".into(),
        ]);
        values
    };

    // Given the previous release installed with its own chart and image
    let release = Release::install(&client, &previous_chart, &common(previous_image.clone())).await?;
    release.ready_pods(2).await?;
    // And the quickstart Ready under it, with a second client
    admin_secret(&client, app.name(), "sso-admin").await?;
    let realm_name = unique_name("upgrade-shop");
    let mut objects = quickstart(app.name(), &realm_name)?;
    let mut second = objects
        .iter()
        .find(|o| o["kind"] == "KeycloakClient")
        .cloned()
        .context("no client in the quickstart")?;
    second["metadata"]["name"] = json!("shop-frontend");
    second["spec"]["clientId"] = json!("shop-frontend");
    second["spec"]["credentials"]["secretName"] = json!("shop-frontend-credentials");
    second["spec"]["oidc"]["serviceAccountRoles"] = json!({});
    objects.push(second);
    for object in objects {
        let kind = match object["kind"].as_str() {
            Some("Keycloak") => keycloak_kind(),
            Some("KeycloakRealm") => realm_kind(),
            _ => client_kind(),
        };
        apply(&client, &kind, app.name(), object).await?;
    }
    let resources = [
        (keycloak_kind(), "sso"),
        (realm_kind(), "shop"),
        (client_kind(), "shop-backend"),
        (client_kind(), "shop-frontend"),
    ];
    for (kind, name) in &resources {
        wait_ready(&client, kind, app.name(), name).await?;
    }
    let secrets_before = [
        secret_data(&client, app.name(), "shop-backend-credentials").await?,
        secret_data(&client, app.name(), "shop-frontend-credentials").await?,
    ];
    assert!(secrets_before.iter().all(Option::is_some));

    // When the release is upgraded to this tree's chart and image, while
    // somebody watches every resource's Ready condition
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watching = {
        let (client, ns, stop) = (client.clone(), app.name().to_owned(), stop.clone());
        let resources = resources.clone();
        tokio::spawn(async move {
            let mut not_ready = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for (kind, name) in &resources {
                    let object = keycloak_operator_e2e::resources::get(&client, kind, &ns, name)
                        .await?
                        .unwrap_or_default();
                    let ready = keycloak_operator_e2e::resources::condition(&object, "Ready")
                        .is_some_and(|c| c["status"] == "True");
                    if !ready {
                        not_ready.push(format!("{} {name}: {}", kind.kind, object["status"]));
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            anyhow::Ok(not_ready)
        })
    };
    let (repository, digest) = image().await?;
    let mut values = common(vec![
        format!("image.repository={repository}"),
        format!("image.digest={digest}"),
    ]);
    values.push("logJson=false".into());
    release.upgrade(&chart_dir(), &values).await?;

    // Then the new pods replace the old ones, one of them leads, and it has
    // reconciled every resource without writing anything to Keycloak
    let new_image = format!("{repository}@{digest}");
    let deadline = Instant::now() + Duration::from_secs(180);
    let leader_metrics = loop {
        let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), &release.namespace);
        let listed = pods.list(&Default::default()).await?;
        let all_new = listed.items.len() == 2
            && listed.items.iter().all(|p| {
                p.spec
                    .as_ref()
                    .and_then(|s| s.containers.first())
                    .and_then(|c| c.image.clone())
                    .as_deref()
                    == Some(new_image.as_str())
            });
        let new_pods: BTreeSet<String> = listed.items.iter().filter_map(|p| p.metadata.name.clone()).collect();
        let mut leader = None;
        if all_new {
            // Only the new pods: an old one may still be stopping.
            for pod in release
                .kubelet
                .pods()
                .await
                .into_iter()
                .filter(|p| new_pods.contains(&p.name))
            {
                let Some(url) = &pod.metrics else { continue };
                let Ok(response) = http_client().get(format!("{url}/metrics")).send().await else {
                    continue;
                };
                let text = response.text().await.unwrap_or_default();
                // Each resource reconciled at least once by this process.
                let reconciled = [("Keycloak", 1.0), ("KeycloakRealm", 1.0), ("KeycloakClient", 2.0)]
                    .iter()
                    .all(|(k, n)| {
                        sum_metric(
                            &text,
                            "keycloak_operator_reconciles_total",
                            &[("kind", &format!("keycloak.wasmop.dev/{k}"))],
                        ) >= *n
                    });
                if sum_metric(&text, "keycloak_operator_leader", &[]) == 1.0 && reconciled {
                    leader = Some(text);
                }
            }
        }
        if let Some(text) = leader {
            break text;
        }
        if Instant::now() > deadline {
            bail!("the upgraded pods did not take over and reconcile everything within 180s");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(writes(&leader_metrics), 0.0, "the upgrade alone caused Keycloak writes");
    // And nothing went un-Ready on the way
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let not_ready = watching.await??;
    assert!(not_ready.is_empty(), "not Ready during the upgrade: {not_ready:?}");
    // And the credentials Secrets keep their values
    let secrets_after = [
        secret_data(&client, app.name(), "shop-backend-credentials").await?,
        secret_data(&client, app.name(), "shop-frontend-credentials").await?,
    ];
    assert_eq!(secrets_before, secrets_after, "credentials changed across the upgrade");

    // The realm goes with its resource while the operator still runs
    for name in ["shop-backend", "shop-frontend"] {
        delete(&client, &client_kind(), app.name(), name).await?;
    }
    delete(&client, &realm_kind(), app.name(), "shop").await?;
    wait_gone(&client, &realm_kind(), app.name(), "shop", Duration::from_secs(90)).await?;
    Ok(())
}
