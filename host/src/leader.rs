//! Leader election with a `coordination.k8s.io` Lease (kube-lease-manager):
//! only the holder reconciles; when it dies, another replica takes over once
//! the Lease expires; on shutdown the holder releases it at once.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Leadership as a watch channel; dropping it releases the Lease.
pub struct Election {
    /// `true` while this replica leads.
    pub leading: watch::Receiver<bool>,
    task: JoinHandle<Result<kube_lease_manager::LeaseManager, LeaseManagerError>>,
}

impl Election {
    /// Joins the election for `lease` in `namespace` as `identity`.
    pub async fn join(
        client: Client,
        namespace: &str,
        lease: &str,
        identity: &str,
        duration: Duration,
        grace: Duration,
    ) -> Result<Self, LeaseManagerError> {
        let manager = LeaseManagerBuilder::new(client, lease)
            .with_namespace(namespace)
            .with_identity(identity)
            .with_duration(duration.as_secs().max(2))
            .with_grace(grace.as_secs().max(1))
            .build()
            .await?;
        let (leading, task) = manager.watch().await;
        Ok(Election { leading, task })
    }

    /// Leaves the election, releasing the Lease if held.
    pub async fn leave(self) {
        drop(self.leading);
        match tokio::time::timeout(Duration::from_secs(5), self.task).await {
            Ok(Ok(Ok(_))) => tracing::info!("released the leader Lease"),
            Ok(Ok(Err(error))) => {
                tracing::warn!(%error, "could not release the leader Lease; it expires on its own")
            }
            Ok(Err(error)) => tracing::warn!(%error, "lease manager task failed"),
            Err(_) => tracing::warn!("releasing the leader Lease timed out; it expires on its own"),
        }
    }
}
