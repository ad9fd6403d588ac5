//! Running the operator host as a real process against the test bed, the way
//! it runs in a cluster: its own configuration file, components copied into
//! its own directory (so a test can replace them), its own metrics port.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::testbed::{http_client, repo_root, testbed, unique_name};

/// A component shipped or built for the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// `Keycloak` (external form).
    Keycloak,
    /// `KeycloakRealm`.
    Realm,
    /// `KeycloakClient`.
    Client,
    /// A second version of the realm component.
    RealmV2,
    /// The test-only `ChaosProbe` kind.
    Chaos,
    /// The test-only `IntruderProbe` kind (a tenant's hostile kind).
    Intruder,
    /// The JavaScript `KeycloakUser` extension (`extensions/keycloak-user`).
    KeycloakUser,
    /// The test-only JavaScript `HostileScript` kind.
    HostileJs,
    /// The template's `ExampleRole` kind (`components/template`).
    Template,
}

impl Component {
    /// The file name under `target/components/` (where `make components`
    /// and `make extensions` put them).
    pub fn file(self) -> &'static str {
        match self {
            Component::Keycloak => "keycloak_component.wasm",
            Component::Realm => "realm_component.wasm",
            Component::Client => "client_component.wasm",
            Component::RealmV2 => "realm_v2_component.wasm",
            Component::Chaos => "chaos_component.wasm",
            Component::Intruder => "intruder_component.wasm",
            Component::KeycloakUser => "keycloak_user.wasm",
            Component::HostileJs => "hostile_js.wasm",
            Component::Template => "template_component.wasm",
        }
    }

    /// The built file.
    pub fn built(self) -> PathBuf {
        target_dir().join("components").join(self.file())
    }
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
}

/// The operator binary of the same profile as the tests.
pub fn binary() -> PathBuf {
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    target_dir().join(profile).join("keycloak-operator")
}

/// How to run one operator.
#[derive(Debug, Clone)]
pub struct OperatorOptions {
    /// Namespaces to watch (the test's own).
    pub namespaces: Vec<String>,
    /// Components and the capabilities granted to each.
    pub components: Vec<(Component, &'static [&'static str])>,
    /// Resync period.
    pub resync: String,
    /// Lease name for leader election; election is off when `None`.
    pub lease: Option<String>,
    /// Extra settings of the `runtime` section, as `key: value` lines.
    pub runtime: Vec<String>,
    /// Settings of the `keycloak` section, as `key: value` lines.
    pub keycloak: Vec<String>,
    /// Extra top-level YAML appended to the configuration.
    pub extra: String,
    /// Registries besides the bed's that the operator reaches over plain
    /// HTTP (`host:port`).
    pub insecure_registries: Vec<String>,
    /// The value of the label its `ReconcilerComponent`s carry; its own
    /// directory's name when unset (a restarted operator takes its
    /// predecessor's).
    pub component_label: Option<String>,
}

impl OperatorOptions {
    /// The shipped Keycloak and realm components, watching `namespaces`.
    pub fn standard(namespaces: &[&str]) -> Self {
        OperatorOptions {
            namespaces: namespaces.iter().map(|n| (*n).to_owned()).collect(),
            components: vec![
                (Component::Keycloak, &["keycloak-admin", "read-secrets"]),
                (Component::Realm, &["keycloak-admin", "read-secrets"]),
            ],
            resync: "5m".into(),
            lease: None,
            runtime: Vec::new(),
            keycloak: Vec::new(),
            extra: String::new(),
            insecure_registries: Vec::new(),
            component_label: None,
        }
    }

    /// [`OperatorOptions::standard`] with a resync an hour away and the
    /// drift watch polling every second: only the watch can notice a change
    /// made in Keycloak within a story.
    pub fn drift_watched(namespaces: &[&str]) -> Self {
        let mut options = Self::standard(namespaces);
        options.resync = "1h".into();
        options.keycloak = vec!["driftPollInterval: 1s".into()];
        options
    }
}

/// A running operator process, killed when dropped.
pub struct Operator {
    child: tokio::process::Child,
    /// Its directory: configuration, components, log.
    pub dir: PathBuf,
    /// Base URL of its metrics and health server.
    pub http: String,
    /// The label a `ReconcilerComponent` needs for this operator to follow
    /// it (each test's operator follows only its own).
    pub component_label: (String, String),
}

/// The label key that ties a test's `ReconcilerComponent`s to its operator.
pub const COMPONENT_LABEL: &str = "testbed.wasmop.dev/operator";

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

impl Operator {
    /// Starts an operator and waits until it is ready.
    pub async fn start(options: &OperatorOptions) -> Result<Self> {
        let mut operator = Self::spawn(options, "operator").await?;
        operator.wait_ready().await?;
        Ok(operator)
    }

    /// Starts an operator without waiting; `name` names its directory.
    pub async fn spawn(options: &OperatorOptions, name: &str) -> Result<Self> {
        let binary = binary();
        if !binary.exists() {
            bail!("{} is missing: run `make build` first", binary.display());
        }
        let dir = target_dir().join("e2e").join(unique_name(name));
        std::fs::create_dir_all(&dir)?;
        let port = free_port()?;
        let mut config = String::from("components:\n");
        for (component, grants) in &options.components {
            let built = component.built();
            if !built.exists() {
                bail!("{} is missing: run `make components` first", built.display());
            }
            std::fs::copy(&built, dir.join(component.file()))
                .with_context(|| format!("copying {}", built.display()))?;
            config.push_str(&format!(
                "- path: {}\n  grants: [{}]\n",
                component.file(),
                grants.join(", ")
            ));
        }
        config.push_str(&format!("namespaces: [{}]\n", options.namespaces.join(", ")));
        config.push_str(&format!("resyncPeriod: {}\n", options.resync));
        config.push_str(&format!("httpAddress: 127.0.0.1:{port}\n"));
        config.push_str("componentWatchInterval: 500ms\n");
        config.push_str(&format!(
            "runtime:\n  cacheDir: {}\n",
            target_dir().join("e2e-compile-cache").display()
        ));
        for line in &options.runtime {
            config.push_str(&format!("  {line}\n"));
        }
        if !options.keycloak.is_empty() {
            config.push_str("keycloak:\n");
            for line in &options.keycloak {
                config.push_str(&format!("  {line}\n"));
            }
        }
        config.push_str("backoff:\n  base: 500ms\n  cap: 10s\n");
        match &options.lease {
            Some(lease) => config.push_str(&format!(
                "leaderElection:\n  leaseName: {lease}\n  namespace: {}\n  leaseDuration: 6s\n  renewGrace: 2s\n",
                options.namespaces.first().map(String::as_str).unwrap_or("default")
            )),
            None => config.push_str("leaderElection:\n  enabled: false\n"),
        }
        // Cluster-scoped ReconcilerComponents would be seen by every test's
        // operator: each follows only the ones labelled for it.
        let label = options.component_label.clone().unwrap_or_else(|| {
            dir.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("operator")
                .to_owned()
        });
        let mut insecure = options.insecure_registries.clone();
        if let Ok(registry) = crate::managed::bed_var("OCI_REGISTRY") {
            insecure.push(registry);
        }
        config.push_str(&format!(
            "operatorNamespace: {}\ndeclaredComponents:\n  labelSelector: {COMPONENT_LABEL}={label}\n  insecureRegistries: [{}]\n",
            options.namespaces.first().map(String::as_str).unwrap_or("default"),
            insecure.join(", ")
        ));
        config.push_str(&options.extra);
        let config_path = dir.join("config.yaml");
        std::fs::write(&config_path, config)?;
        let log = std::fs::File::create(dir.join("operator.log"))?;
        // `OPERATOR_WRAPPER` runs the operator under another program, such
        // as a heap profiler (`heaptrack`), to find where its memory goes.
        let mut command = match std::env::var_os("OPERATOR_WRAPPER") {
            Some(wrapper) => {
                let mut command = tokio::process::Command::new(wrapper);
                command.arg(&binary);
                command
            }
            None => tokio::process::Command::new(&binary),
        };
        let child = command
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .arg("--identity")
            .arg(dir.file_name().and_then(|n| n.to_str()).unwrap_or("operator"))
            .env("KUBECONFIG", &testbed().kubeconfig)
            .env(
                "RUST_LOG",
                "info,keycloak_operator=debug,keycloak_operator::keycloak::drift_watch=trace,kube=warn",
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Operator {
            child,
            dir,
            http: format!("http://127.0.0.1:{port}"),
            component_label: (COMPONENT_LABEL.to_owned(), label),
        })
    }

    /// Waits until `/readyz` answers 200; fails at once if the process exits.
    pub async fn wait_ready(&mut self) -> Result<()> {
        let http = http_client();
        let url = format!("{}/readyz", self.http);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
                bail!("the operator exited ({status}) before it was ready:\n{log}");
            }
            if http.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                bail!(
                    "the operator did not become ready within 60s; see {}",
                    self.log_path().display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("operator.log")
    }

    /// Where its copy of a component lives.
    pub fn component_path(&self, component: Component) -> PathBuf {
        self.dir.join(component.file())
    }

    /// Replaces its copy of a component atomically (write, then rename), as
    /// a deployment tool would.
    pub fn replace_component(&self, component: Component, bytes: &[u8]) -> Result<()> {
        replace_atomically(&self.component_path(component), bytes)
    }

    /// The metrics text.
    pub async fn metrics(&self) -> Result<String> {
        Ok(http_client()
            .get(format!("{}/metrics", self.http))
            .send()
            .await?
            .text()
            .await?)
    }

    /// The sum of a metric's samples whose labels include every pair given.
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Result<f64> {
        Ok(sum_metric(&self.metrics().await?, name, labels))
    }

    /// How it exited, or `None` while it runs.
    pub fn exit_status(&mut self) -> Result<Option<std::process::ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// Waits until the circuit of Keycloak `key` (`namespace/name`) has
    /// opened at least once.
    pub async fn wait_circuit_open(&self, key: &str, timeout: Duration) -> Result<()> {
        crate::testbed::eventually("the circuit to open", timeout, Duration::from_millis(250), || async {
            let opened = self
                .metric(
                    "keycloak_operator_keycloak_circuit_transitions_total",
                    &[("keycloak", key), ("state", "open")],
                )
                .await?;
            Ok((opened >= 1.0).then_some(()))
        })
        .await
    }

    /// Its process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Kills it at once (SIGKILL), as a node failure would.
    pub async fn kill(&mut self) -> Result<()> {
        self.child.kill().await?;
        Ok(())
    }

    /// Asks it to stop (SIGTERM) and waits for it to exit.
    pub async fn terminate(&mut self) -> Result<std::process::ExitStatus> {
        if let Some(pid) = self.child.id() {
            std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()?;
        }
        Ok(tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await??)
    }
}

/// Writes a file by rename, so readers never see it half-written.
pub fn replace_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Sums the samples of `name` in Prometheus text whose labels contain all of
/// `labels`.
pub fn sum_metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = match series.split_once('{') {
                Some((metric, rest)) => (metric, rest),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let all = labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            all.then(|| value.parse::<f64>().ok()).flatten()
        })
        // Adding 0.0 turns the empty sum's -0.0 into 0.
        .sum::<f64>()
        + 0.0
}
