//! The Helm chart installed on the test bed: the image it names runs
//! (started by the kubelet stand-in exactly as the Deployment says) with the
//! chart's RBAC and nothing more, serves the quickstart and exports every
//! metric the dashboard and the alerts use; two replicas elect one leader
//! and fail over after a SIGKILL without a resource going un-Ready; an
//! upgrade from the previous release changes nothing in Keycloak.

#[path = "client_common.rs"]
mod client_common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use client_common::client_credentials_grant;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use keycloak_operator_e2e::bench::writes;
use keycloak_operator_e2e::chart::{ReadyWatch, Release, chart_dir, expressions, image, metric_names, quickstart};
use keycloak_operator_e2e::operator::sum_metric;
use keycloak_operator_e2e::resources::{
    admin_secret, apply, client_kind, delete, install_crds, keycloak_kind, realm_kind, secret_data, wait_gone,
    wait_ready,
};
use keycloak_operator_e2e::testbed::{
    TestNamespace, api_error_code, http_client, kube_client, kube_client_with_token, repo_root, unique_name,
};
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

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

/// Applies objects of the operator's kinds, as a GitOps tool would.
async fn apply_objects(client: &Client, namespace: &str, objects: Vec<Value>) -> Result<()> {
    for object in objects {
        let kind = match object["kind"].as_str() {
            Some("Keycloak") => keycloak_kind(),
            Some("KeycloakRealm") => realm_kind(),
            _ => client_kind(),
        };
        apply(client, &kind, namespace, object).await?;
    }
    Ok(())
}

/// Deletes the quickstart's clients and realm and waits until the realm is
/// gone from Keycloak (the operator must still run).
async fn delete_quickstart(client: &Client, namespace: &str, clients: &[&str]) -> Result<()> {
    for name in clients {
        delete(client, &client_kind(), namespace, name).await?;
    }
    delete(client, &realm_kind(), namespace, "shop").await?;
    wait_gone(client, &realm_kind(), namespace, "shop", Duration::from_secs(90)).await
}

/// Whether `metrics` show at least `n` reconciles of each kind.
fn reconciled_each_kind(metrics: &str, kinds: &[(&str, f64)]) -> bool {
    kinds.iter().all(|(kind, n)| {
        sum_metric(
            metrics,
            "keycloak_operator_reconciles_total",
            &[("kind", &format!("keycloak.wasmop.dev/{kind}"))],
        ) >= *n
    })
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
    apply_objects(&client, app.name(), quickstart(app.name(), &realm_name)?).await?;
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
    delete_quickstart(&client, app.name(), &["shop-backend"]).await
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

    // Given the quickstart Ready under that leader
    admin_secret(&client, app.name(), "sso-admin").await?;
    apply_objects(&client, app.name(), quickstart(app.name(), &unique_name("failover"))?).await?;
    let resources = [
        (keycloak_kind(), "sso"),
        (realm_kind(), "shop"),
        (client_kind(), "shop-backend"),
    ];
    for (kind, name) in &resources {
        wait_ready(&client, kind, app.name(), name).await?;
    }
    let watch = ReadyWatch::start(&client, app.name(), &resources);

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
    // And the successor reconciles every resource from its own caches, and
    // none of them goes un-Ready on the way (a leader that reconciled before
    // its caches were synced found realms "missing")
    let successor_metrics = release
        .kubelet
        .pods()
        .await
        .into_iter()
        .find(|p| p.name == successor)
        .and_then(|p| p.metrics)
        .context("the successor has no metrics port")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = http_client()
            .get(format!("{successor_metrics}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        if reconciled_each_kind(
            &text,
            &[("Keycloak", 1.0), ("KeycloakRealm", 1.0), ("KeycloakClient", 1.0)],
        ) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the successor did not reconcile every resource within 60s");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let not_ready = watch.stop().await?;
    assert!(not_ready.is_empty(), "not Ready during the failover: {not_ready:?}");
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
    delete_quickstart(&client, app.name(), &["shop-backend"]).await
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
    apply_objects(&client, app.name(), objects).await?;
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
    let watch = ReadyWatch::start(&client, app.name(), &resources);
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
                let reconciled = reconciled_each_kind(
                    &text,
                    &[("Keycloak", 1.0), ("KeycloakRealm", 1.0), ("KeycloakClient", 2.0)],
                );
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
    let not_ready = watch.stop().await?;
    assert!(not_ready.is_empty(), "not Ready during the upgrade: {not_ready:?}");
    // And the credentials Secrets keep their values
    let secrets_after = [
        secret_data(&client, app.name(), "shop-backend-credentials").await?,
        secret_data(&client, app.name(), "shop-frontend-credentials").await?,
    ];
    assert_eq!(secrets_before, secrets_after, "credentials changed across the upgrade");

    // The realm goes with its resource while the operator still runs
    delete_quickstart(&client, app.name(), &["shop-backend", "shop-frontend"]).await
}
