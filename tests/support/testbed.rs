//! Access to the local test bed started by `make testbed-up`
//! (`tests/testbed/testbed up`): a real kube-apiserver backed by etcd, a
//! kube-controller-manager, and a real Keycloak.
//!
//! The bed describes itself in `.testbed/env` (shell `export` lines). This
//! module reads that file without touching the process environment; a
//! variable that is already set in the environment wins over the file, so CI
//! or a developer can point the tests at another bed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// The connection details of a running test bed.
#[derive(Debug, Clone)]
pub struct Testbed {
    /// The bed's data directory (`.testbed/` of the checkout by default).
    pub dir: PathBuf,
    /// Admin kubeconfig (client certificate in `system:masters`).
    pub kubeconfig: PathBuf,
    /// Keycloak's base URL, e.g. `http://127.0.0.1:20120`.
    pub keycloak_url: String,
    /// Keycloak's bootstrap admin user in the master realm.
    pub keycloak_admin_user: String,
    /// Its password.
    pub keycloak_admin_password: String,
}

/// The repository root: the parent of this crate's manifest directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent directory")
        .to_path_buf()
}

/// Parses the `export NAME='value'` lines that `testbed up` writes. Lines
/// whose value is not a single-quoted literal (such as the PATH line) are
/// skipped.
pub fn parse_env_file(text: &str) -> HashMap<String, String> {
    let mut vars = HashMap::new();
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix("export ") else {
            continue;
        };
        let Some((name, value)) = rest.split_once('=') else {
            continue;
        };
        if let Some(value) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\''))
            && !value.contains('\'')
        {
            vars.insert(name.to_string(), value.to_string());
        }
    }
    vars
}

fn load() -> Result<Testbed> {
    let dir = std::env::var_os("TESTBED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".testbed"));
    let env_file = dir.join("env");
    let from_file = match std::fs::read_to_string(&env_file) {
        Ok(text) => parse_env_file(&text),
        Err(_) => HashMap::new(),
    };
    let var = |name: &str| -> Result<String> {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| from_file.get(name).cloned())
            .with_context(|| {
                format!(
                    "{name} is not set and {} does not define it: is the test bed up? (run `make testbed-up`)",
                    env_file.display()
                )
            })
    };
    Ok(Testbed {
        dir: var("TESTBED_DIR").map(PathBuf::from).unwrap_or(dir.clone()),
        kubeconfig: PathBuf::from(var("KUBECONFIG")?),
        keycloak_url: var("KEYCLOAK_URL")?.trim_end_matches('/').to_string(),
        keycloak_admin_user: var("KEYCLOAK_ADMIN_USER")?,
        keycloak_admin_password: var("KEYCLOAK_ADMIN_PASSWORD")?,
    })
}

/// The running test bed. Panics with a hint to run `make testbed-up` when
/// there is none.
pub fn testbed() -> &'static Testbed {
    static BED: OnceLock<Testbed> = OnceLock::new();
    BED.get_or_init(|| load().unwrap_or_else(|e| panic!("{e:#}")))
}

/// Installs rustls' ring crypto provider as the process default, once.
/// reqwest is built with `rustls-no-provider` and needs it.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Another part of the process may have installed one already; either is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

async fn client_from_kubeconfig(kubeconfig: Kubeconfig) -> Result<Client> {
    install_crypto_provider();
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .context("loading the test bed's kubeconfig")?;
    config.connect_timeout = Some(Duration::from_secs(5));
    config.read_timeout = Some(Duration::from_secs(60));
    Client::try_from(config).context("building a Kubernetes client")
}

fn admin_kubeconfig() -> Result<Kubeconfig> {
    let path = &testbed().kubeconfig;
    Kubeconfig::read_from(path).with_context(|| format!("reading {}", path.display()))
}

/// A client acting as the bed's cluster admin (member of `system:masters`).
pub async fn kube_client() -> Result<Client> {
    client_from_kubeconfig(admin_kubeconfig()?).await
}

/// A client for the same API server that authenticates with a bearer token
/// (for example a ServiceAccount token minted with the TokenRequest API), so
/// that RBAC decides what it may do.
pub async fn kube_client_with_token(token: &str) -> Result<Client> {
    let text = std::fs::read_to_string(&testbed().kubeconfig)?;
    let mut doc: serde_yaml::Value = serde_yaml::from_str(&text)?;
    let users = doc
        .get_mut("users")
        .and_then(|u| u.as_sequence_mut())
        .context("kubeconfig has no users")?;
    for user in users.iter_mut() {
        let mut auth = serde_yaml::Mapping::new();
        auth.insert("token".into(), token.into());
        user["user"] = serde_yaml::Value::Mapping(auth);
    }
    let kubeconfig = Kubeconfig::from_yaml(&serde_yaml::to_string(&doc)?)?;
    client_from_kubeconfig(kubeconfig).await
}

/// A reqwest client for talking to Keycloak (and anything else over HTTP).
pub fn http_client() -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .build()
        .expect("building an HTTP client")
}

/// A name no other test (in this process or another) will pick: `prefix`,
/// then the process id and a per-process counter, then a clock-derived
/// suffix; lowercase alphanumerics and `-`, at most 63 characters (valid for
/// namespaces, Kubernetes object names and Keycloak realms alike).
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
        .unwrap_or(0);
    let suffix = format!("{:x}-{n}-{:x}", std::process::id(), nanos % 0x10_0000);
    let prefix: String = prefix
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(62 - suffix.len())
        .collect();
    format!("{}-{suffix}", prefix.trim_end_matches('-'))
}

/// Retries `f` until it returns `Ok(Some(_))` or `timeout` passes, sleeping
/// `every` in between. `Ok(None)` means "not yet"; an error ends the wait.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, every: Duration, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f().await? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(every).await;
    }
}

/// The HTTP status of a Kubernetes API error, if `err` is one.
pub fn api_error_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// Runs one command of the bed script, `tests/testbed/testbed <what>`
/// (`keycloak-stop`, `apiserver-start`, …), as the outage tests do.
pub async fn testbed_command(what: &str) -> Result<()> {
    let status = tokio::process::Command::new(repo_root().join("tests/testbed/testbed"))
        .arg(what)
        .env("TESTBED_DIR", &testbed().dir)
        .status()
        .await
        .with_context(|| format!("running testbed {what}"))?;
    if !status.success() {
        bail!("testbed {what} failed: {status}");
    }
    Ok(())
}

/// Runs `testbed <command>` when dropped, so that a piece of the bed an
/// outage test stopped is started again even when the test fails half-way
/// (other tests share the bed).
pub struct TestbedCommandOnDrop(pub &'static str);

impl Drop for TestbedCommandOnDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new(repo_root().join("tests/testbed/testbed"))
            .arg(self.0)
            .env("TESTBED_DIR", &testbed().dir)
            .status();
    }
}

/// Runs `cleanup` on a fresh thread with its own runtime and waits for it.
/// Used from `Drop`, where no async context can be relied on (the test's
/// runtime may be unwinding after a failed assertion).
fn run_detached_cleanup<F, Fut>(cleanup: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<()>>,
{
    let outcome = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("building a cleanup runtime");
        runtime.block_on(cleanup())
    })
    .join();
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("cleanup failed: {e:#}"),
        Err(_) => eprintln!("cleanup panicked"),
    }
}

/// A namespace of its own for one test, deleted (by the bed's namespace
/// controller, asynchronously) when the value is dropped — also when the
/// test fails.
pub struct TestNamespace {
    name: String,
}

impl TestNamespace {
    /// Creates a namespace named after `prefix` with a unique suffix, labelled
    /// `testbed.wasmop.dev/test=true` so leftovers are easy to find.
    pub async fn create(client: &Client, prefix: &str) -> Result<Self> {
        let name = unique_name(prefix);
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([("testbed.wasmop.dev/test".to_string(), "true".to_string())].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        Ok(Self { name })
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let name = self.name.clone();
        run_detached_cleanup(move || async move {
            let client = kube_client().await?;
            release_finalizers(&client, &name).await?;
            match Api::<Namespace>::all(client)
                .delete(&name, &DeleteParams::default())
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if api_error_code(&e) == Some(404) => Ok(()),
                Err(e) => Err(anyhow!(e).context(format!("deleting namespace {name}"))),
            }
        });
    }
}

/// Removes the operator's finalizers from what a test left in `namespace`:
/// the operator that would run them is gone, and the namespace controller
/// would otherwise retry the namespace's deletion for ever, loading the API
/// server for the rest of the run.
async fn release_finalizers(client: &kube::Client, namespace: &str) -> Result<()> {
    use kube::api::{DynamicObject, ListParams, Patch, PatchParams};
    let release = serde_json::json!({"metadata": {"finalizers": null}});
    for kind in [
        crate::resources::client_kind(),
        crate::resources::realm_kind(),
        crate::resources::keycloak_kind(),
    ] {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &kind);
        let Ok(list) = api.list(&ListParams::default()).await else {
            continue; // the CRD is not installed: nothing of this kind
        };
        for object in list.items {
            let name = object.metadata.name.clone().unwrap_or_default();
            if object.metadata.finalizers.as_ref().is_some_and(|f| !f.is_empty()) {
                match api.patch(&name, &PatchParams::default(), &Patch::Merge(&release)).await {
                    Ok(_) => {}
                    Err(e) if api_error_code(&e) == Some(404) => {}
                    Err(e) => return Err(anyhow!(e).context(format!("releasing {namespace}/{name}"))),
                }
            }
        }
    }
    Ok(())
}

/// A small client for Keycloak's admin REST API, authenticated as the bed's
/// bootstrap admin (password grant on the master realm, client `admin-cli`).
/// It fetches a new access token when the current one is about to expire.
pub struct KeycloakAdmin {
    http: reqwest::Client,
    base: String,
    user: String,
    password: String,
    token: Mutex<Option<(String, Instant)>>,
}

impl KeycloakAdmin {
    /// Connects to the bed's Keycloak with its admin credentials and obtains
    /// a first token (so a wrong password fails here, clearly).
    pub async fn connect() -> Result<Self> {
        let bed = testbed();
        let admin = Self {
            http: http_client(),
            base: bed.keycloak_url.clone(),
            user: bed.keycloak_admin_user.clone(),
            password: bed.keycloak_admin_password.clone(),
            token: Mutex::new(None),
        };
        admin.token().await?;
        Ok(admin)
    }

    /// Keycloak's base URL.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Requests a token from the master realm with the password grant.
    /// Returns the full token response (`access_token`, `expires_in`, ...).
    pub async fn password_grant(
        http: &reqwest::Client,
        base: &str,
        user: &str,
        password: &str,
    ) -> Result<reqwest::Response> {
        let url = format!("{base}/realms/master/protocol/openid-connect/token");
        http.post(url)
            .form(&[
                ("grant_type", "password"),
                ("client_id", "admin-cli"),
                ("username", user),
                ("password", password),
            ])
            .send()
            .await
            .context("requesting a Keycloak admin token")
    }

    /// A valid admin access token (cached until shortly before it expires).
    pub async fn token(&self) -> Result<String> {
        if let Some((token, until)) = self.token.lock().expect("token lock").clone()
            && Instant::now() < until
        {
            return Ok(token);
        }
        let response = Self::password_grant(&self.http, &self.base, &self.user, &self.password).await?;
        let status = response.status();
        if !status.is_success() {
            bail!(
                "Keycloak refused the admin password grant: {status} {}",
                response.text().await.unwrap_or_default()
            );
        }
        let body: Value = response.json().await?;
        let token = body["access_token"]
            .as_str()
            .context("token response without access_token")?
            .to_string();
        let lifetime = body["expires_in"].as_u64().unwrap_or(60);
        let until = Instant::now() + Duration::from_secs(lifetime.saturating_sub(10).max(1));
        *self.token.lock().expect("token lock") = Some((token.clone(), until));
        Ok(token)
    }

    /// Sends `method` to `{base}/admin{path}` (e.g. `path` = `/realms/x`) with
    /// the admin token and an optional JSON body; returns the raw response
    /// whatever its status.
    pub async fn request(&self, method: Method, path: &str, body: Option<&Value>) -> Result<reqwest::Response> {
        let url = format!("{}/admin{path}", self.base);
        let mut request = self.http.request(method.clone(), &url).bearer_auth(self.token().await?);
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.with_context(|| format!("{method} {url}"))
    }

    /// GET `path` and parse JSON; `None` on 404, an error on other failures.
    pub async fn get_json(&self, path: &str) -> Result<Option<Value>> {
        let response = self.request(Method::GET, path, None).await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(Some(response.json().await?)),
            s => bail!("GET {path}: {s} {}", response.text().await.unwrap_or_default()),
        }
    }

    /// Sends a request and fails unless the status is `expected`.
    pub async fn expect(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        expected: StatusCode,
    ) -> Result<reqwest::Response> {
        let response = self.request(method.clone(), path, body).await?;
        if response.status() != expected {
            let status = response.status();
            bail!(
                "{method} {path}: expected {expected}, got {status} {}",
                response.text().await.unwrap_or_default()
            );
        }
        Ok(response)
    }

    /// Makes the enabled realm `name` by hand, as someone did before the
    /// operator was asked to adopt it.
    pub async fn create_realm(&self, name: &str) -> Result<()> {
        self.expect(
            Method::POST,
            "/realms",
            Some(&serde_json::json!({"realm": name, "enabled": true})),
            StatusCode::CREATED,
        )
        .await?;
        Ok(())
    }
}

/// A Keycloak realm of its own for one test, deleted when dropped unless the
/// test already deleted it.
pub struct TestRealm {
    name: String,
}

impl TestRealm {
    /// Creates an enabled realm named after `prefix` with a unique suffix.
    pub async fn create(admin: &KeycloakAdmin, prefix: &str) -> Result<Self> {
        let name = unique_name(prefix);
        admin
            .expect(
                Method::POST,
                "/realms",
                Some(&serde_json::json!({ "realm": name, "enabled": true })),
                StatusCode::CREATED,
            )
            .await?;
        Ok(Self { name })
    }

    /// A guard for a realm that something else creates (the operator):
    /// deleted when dropped, so that stories ending with `Retain` do not
    /// leave their realms behind. Keycloak's admin API slows down with every
    /// realm the bed accumulates.
    pub fn cleanup(name: &str) -> Self {
        Self { name: name.to_owned() }
    }

    /// The realm's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestRealm {
    fn drop(&mut self) {
        let name = self.name.clone();
        run_detached_cleanup(move || async move {
            let admin = KeycloakAdmin::connect().await?;
            let response = admin.request(Method::DELETE, &format!("/realms/{name}"), None).await?;
            match response.status() {
                s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
                s => bail!("deleting realm {name}: {s}"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_env_file_that_testbed_up_writes() {
        let vars = parse_env_file(
            "# comment\nexport KUBECONFIG='/x/.testbed/kubeconfig'\nexport KEYCLOAK_URL='http://127.0.0.1:1'\nexport PATH='/bin':\"$PATH\"\n",
        );
        assert_eq!(vars["KUBECONFIG"], "/x/.testbed/kubeconfig");
        assert_eq!(vars["KEYCLOAK_URL"], "http://127.0.0.1:1");
        assert!(!vars.contains_key("PATH"));
    }

    #[test]
    fn unique_names_are_unique_and_valid() {
        let a = unique_name("Some_Test");
        let b = unique_name("Some_Test");
        assert_ne!(a, b);
        assert!(a.starts_with("some-test-"));
        let long = unique_name(&"x".repeat(100));
        assert!(long.len() <= 63, "{long}");
        assert!(
            long.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        );
    }
}
