//! What a managed Keycloak needs from the test bed where a cluster would
//! provide it: a PostgreSQL database, a kubelet that marks pods Ready, and a
//! machine to run the container the operator declared.
//!
//! There is no kubelet in the test bed, so the tests prove the generated
//! configuration by booting the real Keycloak distribution locally with
//! exactly the command, arguments and environment of the Deployment the
//! operator applied. Only the network placement is changed (ports on
//! 127.0.0.1 instead of the pod's), and the operator reaches it through the
//! test-only `keycloakAddressOverrides`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use crate::testbed::{eventually, http_client, parse_env_file, testbed, unique_name};

/// A value of the bed's `.testbed/env`.
pub fn bed_var(name: &str) -> Result<String> {
    if let Ok(value) = std::env::var(name) {
        return Ok(value);
    }
    let text = std::fs::read_to_string(testbed().dir.join("env"))?;
    parse_env_file(&text)
        .remove(name)
        .with_context(|| format!("{name} is not in the test bed's env"))
}

/// A database of its own in the bed's PostgreSQL, owned by the `keycloak`
/// role, dropped when the value is dropped.
pub struct TestDatabase {
    /// Database name.
    pub name: String,
    /// Role.
    pub user: String,
    /// Its password.
    pub password: String,
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
}

fn psql(database: &TestDatabase, sql: &str) -> Result<()> {
    let status = std::process::Command::new("psql")
        .args([
            "-h",
            &database.host,
            "-p",
            &database.port.to_string(),
            "-U",
            &database.user,
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-q",
            "-c",
            sql,
        ])
        .env("PGPASSWORD", &database.password)
        .status()
        .context("running psql")?;
    if !status.success() {
        bail!("psql failed: {sql}");
    }
    Ok(())
}

impl TestDatabase {
    /// Creates the database.
    pub fn create() -> Result<Self> {
        let password = std::fs::read_to_string(testbed().dir.join("credentials/postgres-keycloak"))
            .context("the bed's PostgreSQL password (is the bed on the postgres profile?)")?
            .trim()
            .to_owned();
        let database = TestDatabase {
            name: unique_name("kc").replace('-', "_"),
            user: "keycloak".into(),
            password,
            host: bed_var("TESTBED_POSTGRES_HOST")?,
            port: bed_var("TESTBED_POSTGRES_PORT")?.parse()?,
        };
        psql(&database, &format!("CREATE DATABASE {}", database.name))?;
        Ok(database)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Err(error) = psql(self, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)) {
            eprintln!("dropping database {}: {error:#}", self.name);
        }
    }
}

/// The Pods of a managed Keycloak, once the real ReplicaSet controller has
/// created at least one.
async fn pods_of(pods: &Api<Pod>, keycloak: &str) -> Result<Vec<Pod>> {
    let selector = format!("app.kubernetes.io/instance={keycloak}");
    eventually(
        "the ReplicaSet controller to create pods",
        Duration::from_secs(60),
        Duration::from_millis(250),
        || {
            let pods = pods.clone();
            let selector = selector.clone();
            async move {
                let list = pods.list(&ListParams::default().labels(&selector)).await?;
                Ok((!list.items.is_empty()).then_some(list.items))
            }
        },
    )
    .await
}

/// What a kubelet would do when the pods' containers are ready: mark every
/// Pod of the Keycloak Ready, so that the real ReplicaSet and Deployment
/// controllers count them available.
pub async fn kubelet_marks_pods_ready(client: &Client, namespace: &str, keycloak: &str) -> Result<usize> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods_of(&pods, keycloak).await?;
    let now = k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    for pod in &list {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let image = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        let status = json!({"status": {
            "phase": "Running",
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
            ],
            "containerStatuses": [{
                "name": "keycloak", "image": image, "imageID": "", "ready": true, "started": true, "restartCount": 0,
                "state": {"running": {"startedAt": now}},
            }],
            "startTime": now,
        }});
        pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await?;
    }
    Ok(list.len())
}

/// What a kubelet would report for a container in trouble: `state` and
/// `lastState` of the Keycloak container of every Pod of the Keycloak.
pub async fn kubelet_reports_container(
    client: &Client,
    namespace: &str,
    keycloak: &str,
    container_status: Value,
) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods_of(&pods, keycloak).await?;
    for pod in list {
        let mut status = container_status.clone();
        status["name"] = json!("keycloak");
        status["image"] = json!(
            pod.spec
                .as_ref()
                .and_then(|s| s.containers.first())
                .and_then(|c| c.image.clone())
                .unwrap_or_default()
        );
        status["imageID"] = json!("");
        status["ready"] = json!(false);
        let patch = json!({"status": {"phase": "Pending", "containerStatuses": [status]}});
        pods.patch_status(
            &pod.metadata.name.unwrap_or_default(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await?;
    }
    Ok(())
}

/// A Keycloak booted from a Deployment's pod template; stopped when dropped.
pub struct BootedKeycloak {
    child: tokio::process::Child,
    /// Its base URL on 127.0.0.1.
    pub url: String,
    /// Its management URL (health).
    pub management: String,
    /// Its log file.
    pub log: PathBuf,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Picks the two ports a booted Keycloak will listen on, before the
/// operator is told where to find it.
pub fn reserve_ports() -> Result<(u16, u16)> {
    Ok((free_port()?, free_port()?))
}

async fn resolve_env(client: &Client, namespace: &str, env: &[Value]) -> Result<HashMap<String, String>> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let mut out = HashMap::new();
    for var in env {
        let name = var["name"].as_str().context("env without a name")?.to_owned();
        if let Some(value) = var["value"].as_str() {
            out.insert(name, value.to_owned());
        } else if let Some(reference) = var.pointer("/valueFrom/secretKeyRef") {
            let secret = reference["name"].as_str().context("secretKeyRef without a name")?;
            let key = reference["key"].as_str().context("secretKeyRef without a key")?;
            let data = secrets
                .get(secret)
                .await
                .with_context(|| format!("Secret {secret}"))?
                .data
                .unwrap_or_default();
            let value = data
                .get(key)
                .with_context(|| format!("Secret {secret} has no key {key}"))?;
            out.insert(name, String::from_utf8(value.0.clone())?);
        } else {
            bail!("env {name} has a source the test cannot resolve: {var}");
        }
    }
    Ok(out)
}

impl BootedKeycloak {
    /// Reads the Deployment `name`, resolves its Secret references, and runs
    /// its container's arguments with its environment on a fresh copy of the
    /// Keycloak distribution of the image's version, on the given ports.
    pub async fn boot(client: &Client, namespace: &str, name: &str, ports: (u16, u16), workdir: &Path) -> Result<Self> {
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
        let deployment = eventually(
            "the Deployment",
            Duration::from_secs(60),
            Duration::from_millis(250),
            || {
                let deployments = deployments.clone();
                async move { Ok(deployments.get_opt(name).await?) }
            },
        )
        .await?;
        let container = serde_json::to_value(&deployment)?
            .pointer("/spec/template/spec/containers/0")
            .cloned()
            .context("the Deployment has no container")?;
        let image = container["image"].as_str().unwrap_or_default();
        let version = image.rsplit_once(':').map(|(_, v)| v).unwrap_or_default();
        let bed_version = bed_var("KEYCLOAK_HOME")?;
        if !bed_version.contains(&format!("keycloak-{version}/")) {
            bail!("the Deployment runs Keycloak {version}, the test bed has {bed_version}");
        }
        let args: Vec<String> = container["args"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default();
        let mut env = resolve_env(
            client,
            namespace,
            container["env"].as_array().map(Vec::as_slice).unwrap_or(&[]),
        )
        .await?;
        // The container's memory limit bounds the JVM in a pod (Keycloak's
        // default heap is 70% of it); a local process sees the whole machine
        // instead, and one Keycloak taking 70% of it starves everything else.
        env.entry("JAVA_OPTS_KC_HEAP".into())
            .or_insert_with(|| "-Xms128m -Xmx1g".into());
        // Network placement only: the pod's ports, on this machine's loopback.
        env.insert("KC_HTTP_HOST".into(), "127.0.0.1".into());
        env.insert("KC_HTTP_PORT".into(), ports.0.to_string());
        env.insert("KC_HTTP_MANAGEMENT_PORT".into(), ports.1.to_string());
        env.insert("KC_HTTP_MANAGEMENT_HOST".into(), "127.0.0.1".into());
        // A fresh copy: Keycloak builds itself into its installation at start.
        let home = PathBuf::from(bed_version)
            .parent()
            .context("KEYCLOAK_HOME has a parent")?
            .join("dist");
        let install = workdir.join("keycloak");
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(&home)
            .arg(&install)
            .status()?;
        if !status.success() {
            bail!("copying {} failed", home.display());
        }
        let log = workdir.join("keycloak.log");
        let file = std::fs::File::create(&log)?;
        let child = tokio::process::Command::new(install.join("bin/kc.sh"))
            .args(&args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", workdir)
            .envs(&env)
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true)
            .process_group(0)
            .spawn()
            .context("starting kc.sh")?;
        Ok(BootedKeycloak {
            child,
            url: format!("http://127.0.0.1:{}", ports.0),
            management: format!("http://127.0.0.1:{}", ports.1),
            log,
        })
    }

    /// Waits until its health endpoint says ready.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let http = http_client();
        let url = format!("{}/health/ready", self.management);
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("Keycloak exited ({status}); see {}", self.log.display());
            }
            if http.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                bail!("Keycloak was not ready within {timeout:?}; see {}", self.log.display());
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

impl Drop for BootedKeycloak {
    fn drop(&mut self) {
        // kc.sh starts java as its child: stop the whole group.
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg("--")
                .arg(format!("-{pid}"))
                .status();
        }
    }
}

/// A `Keycloak` manifest of the managed form with `spec` as `spec.managed`.
pub fn managed_keycloak(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "keycloak.wasmop.dev/v1alpha1",
        "kind": "Keycloak",
        "metadata": {"name": name},
        "spec": {"managed": spec},
    })
}

/// Creates or replaces a Secret with `data` (plain strings).
pub async fn apply_secret(client: &Client, ns: &str, name: &str, data: &[(&str, &str)]) -> Result<()> {
    let string_data: serde_json::Map<String, Value> = data.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns}, "stringData": string_data,
    }))?;
    Api::<Secret>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::apply("e2e-test").force(), &Patch::Apply(&secret))
        .await?;
    Ok(())
}

/// One key of a Secret, as text (empty when missing).
pub fn secret_value(secret: &Secret, key: &str) -> String {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        .unwrap_or_default()
}

/// The shipped components for namespace `ns`, reaching managed Keycloaks at
/// `overrides` (`namespace/name` → URL) instead of their in-cluster address.
pub fn managed_options(ns: &str, overrides: &[(String, String)]) -> crate::operator::OperatorOptions {
    let mut options = crate::operator::OperatorOptions::standard(&[ns]);
    if !overrides.is_empty() {
        options.extra.push_str("keycloakAddressOverrides:\n");
        for (key, url) in overrides {
            options.extra.push_str(&format!("  {key}: {url}\n"));
        }
    }
    options
}

/// Installs CloudNativePG's real `Cluster` CRD (no CNPG controller runs).
pub async fn install_cnpg_crd(client: &Client) -> Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crd_file = PathBuf::from(bed_var("TESTBED_CNPG_CRDS")?).join("postgresql.cnpg.io_clusters.yaml");
    let crd: CustomResourceDefinition = serde_yaml::from_str(&std::fs::read_to_string(&crd_file)?)?;
    Api::<CustomResourceDefinition>::all(client.clone())
        .patch(
            "clusters.postgresql.cnpg.io",
            &PatchParams::apply("e2e-test").force(),
            &Patch::Apply(&crd),
        )
        .await?;
    Ok(())
}
