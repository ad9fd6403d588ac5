//! The test bed's OCI registry: publishing components with the operator's
//! own `component push`, stopping and starting the registry, and a
//! registry that lies about what a digest holds.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::managed::bed_var;
use crate::operator::{Component, binary};
use crate::testbed::{http_client, repo_root};

/// The registry's address, `127.0.0.1:<port>`.
pub fn oci_registry() -> Result<String> {
    bed_var("OCI_REGISTRY").context("the test bed has no OCI registry (is it up to date? run `make testbed-up`)")
}

/// Publishes a built component as `<registry>/<repository>:<tag>` with
/// `keycloak-operator component push`; returns the reference it prints,
/// pinned by digest.
pub async fn push(component: Component, repository: &str, tag: &str) -> Result<String> {
    push_file(&component.built(), repository, tag).await
}

/// Publishes a component file (a variant made by a test, say).
pub async fn push_file(file: &Path, repository: &str, tag: &str) -> Result<String> {
    let registry = oci_registry()?;
    let output = tokio::process::Command::new(binary())
        .args(["component", "push", "--insecure"])
        .arg(file)
        .arg(format!("{registry}/{repository}:{tag}"))
        .output()
        .await
        .context("running keycloak-operator component push")?;
    if !output.status.success() {
        bail!(
            "component push failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let pinned = String::from_utf8(output.stdout)?.trim().to_owned();
    if !pinned.contains("@sha256:") {
        bail!("component push printed {pinned:?}, not a reference pinned by digest");
    }
    Ok(pinned)
}

fn testbed_command(verb: &str) -> Result<()> {
    let status = std::process::Command::new(repo_root().join("tests/testbed/testbed"))
        .arg(verb)
        .status()
        .with_context(|| format!("running testbed {verb}"))?;
    if !status.success() {
        bail!("testbed {verb} failed ({status})");
    }
    Ok(())
}

/// Stops the bed's registry until the value is dropped (or `start` is
/// called), as an outage would.
pub struct RegistryOutage {
    started: bool,
}

impl RegistryOutage {
    /// Stops the registry.
    pub async fn begin() -> Result<Self> {
        tokio::task::spawn_blocking(|| testbed_command("registry-stop")).await??;
        let url = format!("http://{}/v2/", oci_registry()?);
        if http_client().get(&url).send().await.is_ok() {
            bail!("the registry still answers after registry-stop");
        }
        Ok(RegistryOutage { started: false })
    }

    /// Starts the registry again.
    pub async fn end(mut self) -> Result<()> {
        self.started = true;
        tokio::task::spawn_blocking(|| testbed_command("registry-start")).await?
    }
}

impl Drop for RegistryOutage {
    fn drop(&mut self) {
        if !self.started {
            // A failed test must not leave the bed without its registry.
            let _ = testbed_command("registry-start");
        }
    }
}

/// A registry that answers every manifest request with the same bytes,
/// whatever digest is asked for: the man in the middle a pinned digest
/// exists to defeat.
pub struct LyingRegistry {
    /// Its address, `127.0.0.1:<port>`.
    pub address: String,
    task: tokio::task::JoinHandle<()>,
}

impl LyingRegistry {
    /// Serves `manifest` for every manifest and `404` for everything else.
    pub async fn start(manifest: Vec<u8>) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?.to_string();
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let manifest = manifest.clone();
                tokio::spawn(async move {
                    let mut request = vec![0u8; 8192];
                    let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut request)).await
                    else {
                        return;
                    };
                    let head = String::from_utf8_lossy(&request[..n]).into_owned();
                    let path = head.split_whitespace().nth(1).unwrap_or_default().to_owned();
                    let (status, content_type, body) = if path.contains("/manifests/") {
                        ("200 OK", "application/vnd.oci.image.manifest.v1+json", manifest)
                    } else if path == "/v2/" {
                        ("200 OK", "application/json", b"{}".to_vec())
                    } else {
                        ("404 Not Found", "application/json", b"{}".to_vec())
                    };
                    let response = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.write_all(&body).await;
                });
            }
        });
        Ok(LyingRegistry { address, task })
    }
}

impl Drop for LyingRegistry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The raw manifest a pinned reference names, read from the bed's registry.
pub async fn manifest_bytes(pinned: &str) -> Result<Vec<u8>> {
    let (repository, digest) = pinned
        .split_once('/')
        .and_then(|(_, rest)| rest.split_once('@'))
        .context("a reference pinned by digest")?;
    let repository = repository.split(':').next().unwrap_or(repository);
    let url = format!("http://{}/v2/{repository}/manifests/{digest}", oci_registry()?);
    let response = http_client()
        .get(&url)
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await?
        .error_for_status()?;
    Ok(response.bytes().await?.to_vec())
}
