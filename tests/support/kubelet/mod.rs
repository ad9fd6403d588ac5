//! A kubelet stand-in for the operator's own pods: the bed has no kubelet and
//! no container runtime, yet the chart's test must run what the chart
//! deploys. It watches the Pods that the real ReplicaSet controller creates
//! from the chart's Deployment and runs each one the way the Deployment says:
//!
//! - the root filesystem is the image from the bed's registry (`crane
//!   export`), mounted read-only when the container asks for it, the process
//!   `chroot`ed into it, as the container's user, with no new privileges;
//! - the container's command and arguments (or the image's entrypoint and
//!   cmd), and exactly its environment (downward-API fields resolved,
//!   `$(VAR)` references expanded), plus what a kubelet adds:
//!   `KUBERNETES_SERVICE_HOST`/`PORT` and `HOSTNAME`;
//! - its volumes at their mount paths: ConfigMaps as files, `emptyDir`s, and
//!   the projected service account volume the API server injects (a token
//!   from the TokenRequest API bound to the Pod, the cluster's CA, the
//!   namespace) — so the process talks to the API server with the chart's
//!   RBAC and nothing more;
//! - a network namespace of its own (see [`crate::netns`]), its ports
//!   reachable from the host, its readiness probe polled and reported in the
//!   Pod's status; a container that exits is restarted, as
//!   `restartPolicy: Always` says.
//!
//! Not done: resource limits (no cgroups), image pull secrets, other volume
//! types than the chart uses.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use tokio::sync::Mutex;

mod container;

use crate::netns::NetworkNamespace;
use crate::testbed::http_client;

/// A pod the stand-in runs.
struct RunningPod {
    uid: String,
    child: tokio::process::Child,
    _network: NetworkNamespace,
    /// Container port (by name and by number) → port on the host.
    ports: BTreeMap<String, u16>,
    dir: PathBuf,
    restarts: u32,
    ready: Option<bool>,
    launch: Launch,
    pod_ip: String,
    started: tokio::time::Instant,
    /// Not restarted while set (a dead node).
    held: bool,
}

/// What is needed to start (and restart) the container.
#[derive(Clone)]
struct Launch {
    script: String,
    argv: Vec<String>,
    netns: String,
    log: PathBuf,
    readiness: Option<(String, u16)>,
    grace: Duration,
}

/// What a test sees of a running pod.
#[derive(Debug, Clone)]
pub struct PodView {
    /// The Pod's name.
    pub name: String,
    /// Base URL of its `metrics` port on the host.
    pub metrics: Option<String>,
    /// The container's process id.
    pub pid: Option<u32>,
    /// Times the container was restarted.
    pub restarts: u32,
    /// Its log file.
    pub log: PathBuf,
}

/// The stand-in, syncing the Pods of one selector in one namespace until
/// dropped (which stops every container it runs).
pub struct Kubelet {
    pods: Arc<Mutex<HashMap<String, RunningPod>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Kubelet {
    /// Starts syncing the Pods matching `selector` in `namespace`.
    pub fn start(client: Client, namespace: &str, selector: &str, dir: PathBuf) -> Self {
        let pods: Arc<Mutex<HashMap<String, RunningPod>>> = Arc::new(Mutex::new(HashMap::new()));
        let (namespace, selector) = (namespace.to_owned(), selector.to_owned());
        let task = {
            let pods = pods.clone();
            tokio::spawn(async move {
                let mut counter = 0u32;
                loop {
                    if let Err(error) = sync(&client, &namespace, &selector, &dir, &pods, &mut counter).await {
                        eprintln!("kubelet stand-in: {error:#}");
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            })
        };
        Kubelet { pods, task }
    }

    /// The pods running now.
    pub async fn pods(&self) -> Vec<PodView> {
        let pods = self.pods.lock().await;
        let mut views: Vec<PodView> = pods
            .iter()
            .map(|(name, pod)| PodView {
                name: name.clone(),
                metrics: pod.ports.get("metrics").map(|p| format!("http://127.0.0.1:{p}")),
                pid: pod.child.id(),
                restarts: pod.restarts,
                log: pod.launch.log.clone(),
            })
            .collect();
        views.sort_by(|a, b| a.name.cmp(&b.name));
        views
    }

    /// Waits until `count` pods run and are ready.
    pub async fn wait_ready(&self, count: usize, timeout: Duration) -> Result<Vec<PodView>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            {
                let pods = self.pods.lock().await;
                let ready = pods.values().filter(|p| p.ready == Some(true)).count();
                if ready >= count {
                    drop(pods);
                    return Ok(self.pods().await);
                }
            }
            if tokio::time::Instant::now() > deadline {
                let logs: Vec<String> = self
                    .pods()
                    .await
                    .iter()
                    .map(|p| {
                        let log = std::fs::read_to_string(&p.log).unwrap_or_default();
                        let tail: Vec<&str> = log.lines().rev().take(15).collect();
                        format!("{}:\n{}", p.name, tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
                    })
                    .collect();
                bail!(
                    "{count} ready pods did not appear within {timeout:?}; logs:\n{}",
                    logs.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Kills the container of `pod` at once (SIGKILL), as a crash or an OOM
    /// kill would; the stand-in restarts it, as a kubelet does.
    pub async fn kill(&self, pod: &str) -> Result<()> {
        let mut pods = self.pods.lock().await;
        let running = pods.get_mut(pod).with_context(|| format!("no running pod {pod}"))?;
        running.child.start_kill()?;
        Ok(())
    }

    /// Kills the container of `pod` (SIGKILL) and keeps it down until
    /// [`Kubelet::release`], as a node that died would.
    pub async fn kill_and_hold(&self, pod: &str) -> Result<()> {
        let mut pods = self.pods.lock().await;
        let running = pods.get_mut(pod).with_context(|| format!("no running pod {pod}"))?;
        running.held = true;
        running.child.start_kill()?;
        Ok(())
    }

    /// Lets a held pod's container be restarted.
    pub async fn release(&self, pod: &str) {
        if let Some(running) = self.pods.lock().await.get_mut(pod) {
            running.held = false;
        }
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.task.abort();
        if let Ok(mut pods) = self.pods.try_lock() {
            for (_, pod) in pods.iter_mut() {
                let _ = pod.child.start_kill();
            }
            pods.clear();
        }
    }
}

async fn sync(
    client: &Client,
    namespace: &str,
    selector: &str,
    dir: &Path,
    pods: &Mutex<HashMap<String, RunningPod>>,
    counter: &mut u32,
) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let listed = api.list(&ListParams::default().labels(selector)).await?;
    let live: HashMap<String, Pod> = listed
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| (p.metadata.name.clone().unwrap_or_default(), p))
        .collect();
    let mut running = pods.lock().await;
    // Gone from the API server (or being deleted): stop, with the grace period.
    let gone: Vec<String> = running
        .iter()
        .filter(|(name, pod)| live.get(*name).and_then(|p| p.metadata.uid.clone()) != Some(pod.uid.clone()))
        .map(|(name, _)| name.clone())
        .collect();
    for name in gone {
        if let Some(mut pod) = running.remove(&name) {
            stop(&mut pod).await;
        }
    }
    for (name, pod) in &live {
        if !running.contains_key(name) {
            *counter += 1;
            match container::start(client, pod, dir, *counter).await {
                Ok(started) => {
                    running.insert(name.clone(), started);
                }
                Err(error) => eprintln!("kubelet stand-in: cannot start {name}: {error:#}"),
            }
        }
    }
    for (name, pod) in running.iter_mut() {
        if let Ok(Some(_)) = pod.child.try_wait() {
            // restartPolicy: Always, with a back-off as a kubelet's (shorter).
            let backoff = Duration::from_secs(u64::from(pod.restarts.min(9) + 1));
            if !pod.held && pod.started.elapsed() >= backoff {
                pod.restarts += 1;
                pod.child = spawn(&pod.launch)?;
                pod.started = tokio::time::Instant::now();
            }
        }
        let ready = match &pod.launch.readiness {
            None => true,
            Some((path, port)) => {
                let host_port = pod.ports.get(&port.to_string()).copied().unwrap_or(0);
                http_client()
                    .get(format!("http://127.0.0.1:{host_port}{path}"))
                    .timeout(Duration::from_secs(1))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        };
        if pod.ready != Some(ready) {
            pod.ready = Some(ready);
            report(&api, name, &live[name], pod, ready).await?;
        }
    }
    Ok(())
}

async fn report(api: &Api<Pod>, name: &str, pod: &Pod, running: &RunningPod, ready: bool) -> Result<()> {
    let now = k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let ready_text = if ready { "True" } else { "False" };
    let container = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .cloned()
        .unwrap_or_default();
    let status = json!({"status": {
        "phase": "Running",
        "podIP": running.pod_ip,
        "podIPs": [{"ip": running.pod_ip}],
        "hostIP": "127.0.0.1",
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
            {"type": "Initialized", "status": "True", "lastTransitionTime": now},
            {"type": "ContainersReady", "status": ready_text, "lastTransitionTime": now},
            {"type": "Ready", "status": ready_text, "lastTransitionTime": now},
        ],
        "containerStatuses": [{
            "name": container.name, "image": container.image, "imageID": "", "ready": ready,
            "started": true, "restartCount": running.restarts, "state": {"running": {"startedAt": now}},
        }],
        "startTime": now,
    }});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    Ok(())
}

async fn stop(pod: &mut RunningPod) {
    if let Some(pid) = pod.child.id() {
        // SAFETY: signalling our own child process.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(pid as i32, libc::SIGTERM);
        }
    }
    if tokio::time::timeout(pod.launch.grace, pod.child.wait()).await.is_err() {
        let _ = pod.child.kill().await;
    }
    let _ = std::fs::remove_dir_all(pod.dir.join("volumes"));
}

fn spawn(launch: &Launch) -> Result<tokio::process::Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&launch.log)?;
    let child = tokio::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &launch.netns,
            "unshare",
            "--mount",
            "--uts",
            "--propagation",
            "private",
            "--",
        ])
        .args(["/bin/sh", "-c", &launch.script, "sh"])
        .args(&launch.argv)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .context("starting the container")?;
    Ok(child)
}
