//! A TCP proxy in front of the real Keycloak that counts the connections
//! reaching it, to measure how many requests Keycloak would receive.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Result;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The running proxy; when dropped it stops accepting and cuts the open
/// connections too, so that clients holding keep-alive connections see
/// Keycloak vanish at once rather than at their next connect.
pub struct CountingProxy {
    /// Its address, `http://127.0.0.1:<port>`.
    pub url: String,
    connections: Arc<AtomicUsize>,
    accepted_at: Arc<Mutex<Vec<Instant>>>,
    task: tokio::task::JoinHandle<()>,
    // Dropping it wakes every connection task, which then closes both ends.
    _shutdown: watch::Sender<()>,
}

impl CountingProxy {
    /// Forwards every connection to `upstream` (`host:port`).
    pub async fn start(upstream: String) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        let accepted_at = Arc::new(Mutex::new(Vec::new()));
        let times = accepted_at.clone();
        let (shutdown, stopped) = watch::channel(());
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                // Counted before the upstream is tried: a Keycloak that is
                // down refuses the connection, and the attempt still counts.
                times.lock().unwrap_or_else(|p| p.into_inner()).push(Instant::now());
                let upstream = upstream.clone();
                let mut stopped = stopped.clone();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            _ = stopped.changed() => {}
                        }
                    }
                });
            }
        });
        Ok(CountingProxy {
            url,
            connections,
            accepted_at,
            task,
            _shutdown: shutdown,
        })
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// When each connection was accepted, oldest first.
    pub fn connection_times(&self) -> Vec<Instant> {
        self.accepted_at.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
