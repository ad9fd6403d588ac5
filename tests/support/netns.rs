//! A network namespace per pod, as a container runtime gives one: the pod
//! has its own loopback, so two replicas can both listen on the port their
//! Deployment names. What a cluster network would route to the pod — the API
//! server, Keycloak, the registry, all on the bed's 127.0.0.1 — is bridged
//! in by listeners opened inside the namespace; the pod's own ports are
//! bridged out to free ports on the host's loopback, where the kubelet
//! stand-in probes them.
//!
//! A socket belongs to the namespace of the thread that made it, so each
//! socket inside the pod's namespace is made on a short-lived thread that
//! has joined it; the copying itself runs on the test's runtime.

use std::fs::File;
use std::net::{TcpListener as StdListener, TcpStream as StdStream};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A named network namespace with its loopback up, deleted when dropped.
pub struct NetworkNamespace {
    /// Its name (`ip netns` lists it).
    pub name: String,
    bridges: Vec<JoinHandle<()>>,
}

fn ip(args: &[&str]) -> Result<()> {
    let status = std::process::Command::new("ip")
        .args(args)
        .status()
        .context("running ip (iproute2)")?;
    if !status.success() {
        bail!("ip {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Runs `make` on a thread that has joined the namespace at `path`.
fn inside<T: Send + 'static>(path: PathBuf, make: impl FnOnce() -> std::io::Result<T> + Send + 'static) -> Result<T> {
    std::thread::spawn(move || -> Result<T> {
        let namespace = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: setns on this thread only, with a valid descriptor; the
        // thread ends right after, so no other code runs in the namespace.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNET) };
        if rc != 0 {
            bail!("setns into {}: {}", path.display(), std::io::Error::last_os_error());
        }
        Ok(make()?)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the namespace thread panicked"))?
}

async fn pipe(mut a: TcpStream, mut b: TcpStream) {
    let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
}

impl NetworkNamespace {
    /// Creates the namespace `name` (replacing a leftover of that name).
    pub fn create(name: &str) -> Result<Self> {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", name])
            .stderr(std::process::Stdio::null())
            .status();
        ip(&["netns", "add", name])?;
        ip(&["-n", name, "link", "set", "lo", "up"])?;
        Ok(NetworkNamespace {
            name: name.to_owned(),
            bridges: Vec::new(),
        })
    }

    fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Makes the host's `127.0.0.1:port` reachable at `127.0.0.1:port`
    /// inside the namespace.
    pub fn bridge_in(&mut self, port: u16) -> Result<()> {
        let listener = inside(self.path(), move || {
            let listener = StdListener::bind(("127.0.0.1", port))?;
            listener.set_nonblocking(true)?;
            Ok(listener)
        })?;
        let listener = TcpListener::from_std(listener)?;
        self.bridges.push(tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Ok(outbound) = TcpStream::connect(("127.0.0.1", port)).await {
                        pipe(inbound, outbound).await;
                    }
                });
            }
        }));
        Ok(())
    }

    /// Makes the namespace's `127.0.0.1:port` reachable on the host at the
    /// port returned.
    pub async fn bridge_out(&mut self, port: u16) -> Result<u16> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let host_port = listener.local_addr()?.port();
        let path = self.path();
        self.bridges.push(tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let path = path.clone();
                tokio::spawn(async move {
                    let connected = tokio::task::spawn_blocking(move || {
                        inside(path, move || {
                            let stream = StdStream::connect(("127.0.0.1", port))?;
                            stream.set_nonblocking(true)?;
                            Ok(stream)
                        })
                    })
                    .await;
                    if let Ok(Ok(stream)) = connected
                        && let Ok(outbound) = TcpStream::from_std(stream)
                    {
                        pipe(inbound, outbound).await;
                    }
                });
            }
        }));
        Ok(host_port)
    }
}

impl Drop for NetworkNamespace {
    fn drop(&mut self) {
        for bridge in &self.bridges {
            bridge.abort();
        }
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(std::process::Stdio::null())
            .status();
    }
}
