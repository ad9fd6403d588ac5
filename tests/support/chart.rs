//! The Helm chart on the test bed: helm itself (built into the bed's cache),
//! the operator's image built without a container runtime and pushed to the
//! bed's registry, and a release the kubelet stand-in runs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use std::collections::BTreeSet;

use anyhow::{Context, Result, bail};
use kube::Client;
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use crate::kubelet::Kubelet;
use crate::managed::bed_var;
use crate::registry::oci_registry;
use crate::testbed::{repo_root, testbed, unique_name};

/// The chart in the working tree.
pub fn chart_dir() -> PathBuf {
    repo_root().join("charts/keycloak-operator")
}

/// Runs helm with the bed's kubeconfig; returns stdout, or fails with
/// stderr.
pub async fn helm(args: &[&str]) -> Result<String> {
    let (ok, stdout, stderr) = helm_status(args).await?;
    if !ok {
        bail!("helm {} failed:\n{stderr}", args.join(" "));
    }
    Ok(stdout)
}

/// Runs helm; returns whether it succeeded, stdout and stderr.
pub async fn helm_status(args: &[&str]) -> Result<(bool, String, String)> {
    let helm = bed_var("TESTBED_HELM")?;
    let output = tokio::process::Command::new(&helm)
        .args(args)
        .env("KUBECONFIG", &testbed().kubeconfig)
        .env("HELM_CACHE_HOME", repo_root().join("target/helm/cache"))
        .env("HELM_CONFIG_HOME", repo_root().join("target/helm/config"))
        .env("HELM_DATA_HOME", repo_root().join("target/helm/data"))
        .output()
        .await
        .with_context(|| format!("running {helm}"))?;
    Ok((
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

/// Runs a program with the bed's kubeconfig; fails with its stderr.
pub async fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .env("KUBECONFIG", &testbed().kubeconfig)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("running {program}"))?;
    if let Some(mut pipe) = child.stdin.take() {
        if let Some(text) = stdin {
            pipe.write_all(text.as_bytes()).await?;
        }
        drop(pipe);
    }
    let output = child.wait_with_output().await?;
    if !output.status.success() {
        bail!(
            "{program} {} failed:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `kubectl` of the bed.
pub fn kubectl() -> Result<String> {
    Ok(format!("{}/kubectl", bed_var("TESTBED_BIN")?))
}

/// The image of the working tree (`image/build`), pushed to the bed's
/// registry once per test process: `repository` and `sha256:` digest.
pub async fn image() -> Result<(String, String)> {
    static IMAGE: OnceCell<(String, String)> = OnceCell::const_new();
    IMAGE
        .get_or_try_init(|| async { build_image(&repo_root(), None, "dev").await })
        .await
        .cloned()
}

/// Builds the image of the tree at `root` with `image/build` (from its
/// build output in `target_dir`), tagged `tag`.
pub async fn build_image(root: &Path, target_dir: Option<&Path>, tag: &str) -> Result<(String, String)> {
    let repository = format!("{}/keycloak-operator", oci_registry()?);
    let mut command = tokio::process::Command::new(root.join("image/build"));
    command
        .arg(format!("{repository}:{tag}"))
        .env("CRANE", bed_var("TESTBED_CRANE")?)
        .current_dir(root);
    if let Some(dir) = target_dir {
        command.env("CARGO_TARGET_DIR", dir);
    }
    let output = command.output().await.context("running image/build")?;
    if !output.status.success() {
        bail!("image/build failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let pinned = String::from_utf8(output.stdout)?.trim().to_owned();
    let digest = pinned
        .rsplit_once('@')
        .map(|(_, d)| d.to_owned())
        .context("image/build printed no digest")?;
    Ok((repository, digest))
}

/// A Helm release in a namespace of its own, run by the kubelet stand-in;
/// uninstalled (and its namespace deleted) when dropped.
pub struct Release {
    /// Release name.
    pub name: String,
    /// The release's namespace.
    pub namespace: String,
    /// The stand-in running its pods.
    pub kubelet: Kubelet,
    _namespace: crate::testbed::TestNamespace,
}

impl Release {
    /// Installs `chart` with `values` (`--set` pairs) into a new namespace,
    /// and starts the kubelet stand-in for its pods.
    pub async fn install(client: &Client, chart: &Path, values: &[String]) -> Result<Self> {
        let namespace = crate::testbed::TestNamespace::create(client, "chart").await?;
        let name = unique_name("kop")
            .chars()
            .take(20)
            .collect::<String>()
            .trim_end_matches('-')
            .to_owned();
        let mut args = vec![
            "install".to_owned(),
            name.clone(),
            chart.display().to_string(),
            "--namespace".into(),
            namespace.name().to_owned(),
        ];
        for value in values {
            args.push("--set".into());
            args.push(value.clone());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        helm(&args).await?;
        let selector = format!("app.kubernetes.io/instance={name}");
        let kubelet = Kubelet::start(
            client.clone(),
            namespace.name(),
            &selector,
            repo_root().join("target/e2e/kubelet"),
        );
        Ok(Release {
            name,
            namespace: namespace.name().to_owned(),
            kubelet,
            _namespace: namespace,
        })
    }

    /// `helm upgrade` to `chart` with `values`.
    pub async fn upgrade(&self, chart: &Path, values: &[String]) -> Result<()> {
        let mut args = vec![
            "upgrade".to_owned(),
            self.name.clone(),
            chart.display().to_string(),
            "--namespace".into(),
            self.namespace.clone(),
        ];
        for value in values {
            args.push("--set".into());
            args.push(value.clone());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        helm(&args).await?;
        Ok(())
    }

    /// The ServiceAccount the chart made for the operator.
    pub fn service_account(&self) -> String {
        format!("{}-keycloak-operator", self.name)
    }

    /// The pods' metrics endpoints, once `count` pods are ready.
    pub async fn ready_pods(&self, count: usize) -> Result<Vec<crate::kubelet::PodView>> {
        self.kubelet.wait_ready(count, Duration::from_secs(120)).await
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        let (name, namespace) = (self.name.clone(), self.namespace.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
            if let Ok(runtime) = runtime {
                let _ = runtime.block_on(helm(&["uninstall", &name, "--namespace", &namespace, "--wait=false"]));
            }
        })
        .join();
    }
}

/// The documents of a YAML stream, empty ones left out.
pub fn documents(yaml: &str) -> Result<Vec<Value>> {
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let value: Value = serde::Deserialize::deserialize(doc)?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

/// The quickstart (examples/quickstart/) placed in `namespace`, its realm
/// under a name of its own.
pub fn quickstart(namespace: &str, realm_name: &str) -> Result<Vec<Value>> {
    let mut objects = Vec::new();
    for file in ["client.yaml", "realm.yaml", "keycloak.yaml"] {
        let text = std::fs::read_to_string(repo_root().join("examples/quickstart").join(file))?
            .replace("${KEYCLOAK_URL}", &crate::testbed::testbed().keycloak_url);
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
pub fn metric_names(expression: &str) -> BTreeSet<String> {
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

/// Every PromQL expression of a dashboard or a rules file (and the metric
/// of each `label_values(...)` query).
pub fn expressions(value: &Value, out: &mut Vec<String>) {
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

/// Records every moment a resource is not Ready, until stopped: for
/// "nothing went un-Ready while ..." checks.
pub struct ReadyWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<Result<Vec<String>>>,
}

impl ReadyWatch {
    /// Starts watching `resources` (kind and name) in `namespace`, four times
    /// a second.
    pub fn start(client: &Client, namespace: &str, resources: &[(kube::api::ApiResource, &str)]) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (client, ns, flag) = (client.clone(), namespace.to_owned(), stop.clone());
        let resources: Vec<(kube::api::ApiResource, String)> =
            resources.iter().map(|(k, n)| (k.clone(), (*n).to_owned())).collect();
        let task = tokio::spawn(async move {
            let mut not_ready = Vec::new();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                for (kind, name) in &resources {
                    let object = crate::resources::get(&client, kind, &ns, name)
                        .await?
                        .unwrap_or_default();
                    let ready = crate::resources::condition(&object, "Ready").is_some_and(|c| c["status"] == "True");
                    if !ready {
                        not_ready.push(format!("{} {name}: {}", kind.kind, object["status"]));
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Ok(not_ready)
        });
        ReadyWatch { stop, task }
    }

    /// Stops and returns what was seen not Ready.
    pub async fn stop(self) -> Result<Vec<String>> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
