//! The operator process: load components, serve metrics and health, join the
//! leader election, run one controller per kind while leading, watch
//! component files for new versions, and shut down gracefully on SIGTERM.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::Namespace;
use keycloak_operator_api::{Keycloak, KeycloakRealm};
use kube::Client;
use kube::api::ApiResource;
use kube::runtime::events::{Recorder, Reporter};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{ComponentSpec, HostConfig};
use crate::controller::children::ChildCaches;
use crate::controller::informer::{Informer, NamespaceScope};
use crate::controller::target::References;
use crate::controller::{ControllerSettings, KindController, Shared};
use crate::http::{self, Health};
use crate::keycloak::{CircuitSettings, KeycloakPool, KeycloakSettings};
use crate::leader::Election;
use crate::metrics::Metrics;
use crate::runtime::engine::EngineSettings;
use crate::runtime::registry::{Refresh, Registry};
use crate::runtime::{Runtime, RuntimeSettings, default_child_kinds, default_related_kinds};

/// Settings that come from the command line rather than the file.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The configuration file (watched for changes).
    pub config_path: PathBuf,
    /// This replica's identity in the leader election.
    pub identity: String,
}

fn runtime_settings(config: &HostConfig) -> RuntimeSettings {
    let r = &config.runtime;
    RuntimeSettings {
        engine: EngineSettings {
            pooling: r.pooling,
            max_instances: r.max_instances,
            memory_limit_bytes: r.memory_limit_mib << 20,
            ..EngineSettings::default()
        },
        cache_dir: r.cache_dir.clone(),
        guest_time_limit: r.guest_time_limit,
        wall_time_limit: r.wall_time_limit,
        allowed_child_kinds: r
            .allowed_child_kinds
            .as_ref()
            .map(|kinds| kinds.iter().cloned().collect::<BTreeSet<_>>())
            .unwrap_or_else(default_child_kinds),
        allowed_related_kinds: default_related_kinds(),
    }
}

fn keycloak_settings(config: &HostConfig) -> KeycloakSettings {
    let k = &config.keycloak;
    KeycloakSettings {
        circuit: CircuitSettings {
            failure_threshold: k.failure_threshold,
            reset_timeout: k.reset_timeout,
        },
        max_attempts: k.max_attempts,
        request_timeout: k.request_timeout,
        rate_limit: k.rate_limit,
        burst: k.burst,
        max_in_flight: k.max_in_flight,
        max_concurrent_writes: k.max_concurrent_writes,
        ..KeycloakSettings::default()
    }
}

/// Runs the operator until SIGTERM or SIGINT.
pub async fn run(config: HostConfig, options: RunOptions) -> anyhow::Result<()> {
    let client = Client::try_default().await?;
    let metrics = Arc::new(Metrics::new());
    let runtime = Runtime::new(runtime_settings(&config))
        .map_err(|e| anyhow::anyhow!("cannot start the component runtime: {e:#}"))?;
    tracing::info!(allocator = ?runtime.allocator(), "component runtime ready");
    let registry = Arc::new(Registry::new(runtime, metrics.clone()));
    let mut watched = ComponentFiles::default();
    for spec in &config.components {
        watched.refresh(&registry, spec).await;
    }
    if registry.kinds().is_empty() {
        anyhow::bail!("no component could be loaded; see the errors above");
    }
    let shutdown = CancellationToken::new();
    let health = Arc::new(Health::default());
    tokio::spawn(signals(shutdown.clone()));
    let server = {
        let (address, metrics, health, shutdown) = (
            config.http_address.clone(),
            metrics.clone(),
            health.clone(),
            shutdown.clone(),
        );
        tokio::spawn(async move {
            if let Err(error) = http::serve(&address, metrics, health, shutdown.clone()).await {
                tracing::error!(%error, %address, "metrics and health server failed");
                shutdown.cancel();
            }
        })
    };
    let (added_tx, mut added_rx) = mpsc::unbounded_channel();
    tokio::spawn(watch_components(
        registry.clone(),
        options.config_path.clone(),
        config.clone(),
        watched,
        added_tx,
        shutdown.clone(),
    ));
    let keycloak = Arc::new(KeycloakPool::new(
        client.clone(),
        keycloak_settings(&config),
        metrics.clone(),
    )?);
    let context = LeadContext {
        client: client.clone(),
        registry,
        keycloak,
        metrics: metrics.clone(),
        config: config.clone(),
        identity: options.identity.clone(),
    };
    let result = if config.leader_election.enabled {
        let namespace = config
            .leader_election
            .namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .unwrap_or_else(|| "default".into());
        let election = Election::join(
            client,
            &namespace,
            &config.leader_election.lease_name,
            &options.identity,
            config.leader_election.lease_duration,
            config.leader_election.renew_grace,
        )
        .await?;
        tracing::info!(identity = %options.identity, lease = %format!("{namespace}/{}", config.leader_election.lease_name), "joined the leader election");
        health.ready.store(true, Ordering::Relaxed);
        follow(context, election, added_rx, shutdown.clone()).await
    } else {
        health.ready.store(true, Ordering::Relaxed);
        let leading = Leadership::start(&context);
        lead_until(leading, &context, &mut added_rx, shutdown.clone())
            .await
            .stop(&context.metrics)
            .await;
        Ok(())
    };
    shutdown.cancel();
    let _ = server.await;
    tracing::info!("stopped");
    result
}

async fn signals(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: finishing reconciles in flight, then releasing the Lease"),
        _ = int.recv() => tracing::info!("SIGINT: finishing reconciles in flight, then releasing the Lease"),
    }
    shutdown.cancel();
}

/// What leading needs.
struct LeadContext {
    client: Client,
    registry: Arc<Registry>,
    keycloak: Arc<KeycloakPool>,
    metrics: Arc<Metrics>,
    config: HostConfig,
    identity: String,
}

/// The controllers running while this replica leads.
struct Leadership {
    shared: Arc<Shared>,
    cancel: CancellationToken,
    controllers: Vec<JoinHandle<()>>,
    started: BTreeSet<String>,
}

impl Leadership {
    fn start(context: &LeadContext) -> Self {
        let cancel = CancellationToken::new();
        let scope = NamespaceScope(context.config.namespaces.clone());
        let spawn = |resource: ApiResource, namespaced: bool| {
            Informer::spawn(
                context.client.clone(),
                resource,
                namespaced,
                &scope,
                None,
                cancel.clone(),
            )
        };
        // The caches references are resolved from. Referenced objects may
        // live outside the watched namespaces' list only if listed there.
        let references = Arc::new(References {
            keycloaks: spawn(ApiResource::erase::<Keycloak>(&()), true),
            realms: spawn(ApiResource::erase::<KeycloakRealm>(&()), true),
            namespaces: spawn(ApiResource::erase::<Namespace>(&()), false),
            address_overrides: context.config.keycloak_address_overrides.clone(),
        });
        let shared = Arc::new(Shared {
            client: context.client.clone(),
            keycloak: context.keycloak.clone(),
            metrics: context.metrics.clone(),
            references,
            children: Arc::new(ChildCaches::new(context.client.clone(), scope.clone(), cancel.clone())),
            recorder: Recorder::new(
                context.client.clone(),
                Reporter {
                    controller: "keycloak-operator".into(),
                    instance: Some(context.identity.clone()),
                },
            ),
            settings: ControllerSettings {
                workers: context.config.workers,
                resync_period: context.config.resync_period,
                progressing_requeue: context.config.progressing_requeue,
                backoff_base: context.config.backoff.base,
                backoff_cap: context.config.backoff.cap,
            },
            scope,
        });
        let mut leadership = Leadership {
            shared,
            cancel,
            controllers: Vec::new(),
            started: BTreeSet::new(),
        };
        for (kind, _) in context.registry.kinds() {
            leadership.start_kind(context, &kind);
        }
        context.metrics.leader.set(1);
        leadership
    }

    fn start_kind(&mut self, context: &LeadContext, kind: &str) {
        let Some(slot) = context.registry.slot(kind) else {
            return;
        };
        if self.started.insert(kind.to_owned()) {
            self.controllers.push(KindController::start(
                self.shared.clone(),
                context.registry.clone(),
                kind.to_owned(),
                slot,
                self.cancel.clone(),
            ));
        }
    }

    /// Stops every controller after its reconciles in flight.
    async fn stop(self, metrics: &Metrics) {
        self.cancel.cancel();
        for controller in self.controllers {
            let _ = controller.await;
        }
        metrics.leader.set(0);
    }
}

async fn lead_until(
    mut leading: Leadership,
    context: &LeadContext,
    added: &mut mpsc::UnboundedReceiver<String>,
    stop: CancellationToken,
) -> Leadership {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return leading,
            kind = added.recv() => match kind {
                Some(kind) => leading.start_kind(context, &kind),
                None => { stop.cancelled().await; return leading; }
            },
        }
    }
}

/// Leads while elected; on losing the Lease stops reconciling at once.
async fn follow(
    context: LeadContext,
    mut election: Election,
    mut added: mpsc::UnboundedReceiver<String>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    loop {
        let leading = *election.leading.borrow_and_update();
        if leading {
            tracing::info!(identity = %context.identity, "became leader; starting controllers");
            let leadership = Leadership::start(&context);
            let lost = CancellationToken::new();
            let watch_loss = {
                let lost = lost.clone();
                let shutdown = shutdown.clone();
                let mut leading = election.leading.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = leading.wait_for(|l| !*l) => tracing::warn!("lost the leader Lease; stopping controllers"),
                    }
                    lost.cancel();
                })
            };
            let leadership = lead_until(leadership, &context, &mut added, lost).await;
            watch_loss.abort();
            leadership.stop(&context.metrics).await;
        }
        if shutdown.is_cancelled() {
            break;
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            changed = election.leading.changed() => {
                if changed.is_err() {
                    anyhow::bail!("the leader election stopped");
                }
            }
        }
    }
    election.leave().await;
    Ok(())
}

/// Modification stamps of the component files, to notice new versions.
#[derive(Default)]
struct ComponentFiles {
    seen: BTreeMap<PathBuf, (Option<SystemTime>, u64)>,
}

fn stamp(path: &Path) -> (Option<SystemTime>, u64) {
    std::fs::metadata(path)
        .map(|m| (m.modified().ok(), m.len()))
        .unwrap_or((None, 0))
}

impl ComponentFiles {
    /// Loads the file if it changed since last seen; returns the refresh.
    async fn refresh(&mut self, registry: &Registry, spec: &ComponentSpec) -> Option<Refresh> {
        let now = stamp(&spec.path);
        if self.seen.get(&spec.path) == Some(&now) {
            return None;
        }
        self.seen.insert(spec.path.clone(), now);
        Some(registry.refresh(&spec.path, &spec.grants).await)
    }
}

/// Polls the component files and the configuration file. A changed file is
/// loaded and swapped in if it passes the checks; a new component in the
/// configuration starts serving its kind.
async fn watch_components(
    registry: Arc<Registry>,
    config_path: PathBuf,
    mut config: HostConfig,
    mut files: ComponentFiles,
    added: mpsc::UnboundedSender<String>,
    shutdown: CancellationToken,
) {
    let mut config_stamp = stamp(&config_path);
    let mut interval = tokio::time::interval(config.component_watch_interval);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = interval.tick() => {}
        }
        let now = stamp(&config_path);
        if now != config_stamp {
            config_stamp = now;
            match HostConfig::load(&config_path) {
                Ok(updated) => {
                    tracing::info!(path = %config_path.display(), "configuration changed; reloading the component list");
                    config.components = updated.components;
                }
                Err(error) => tracing::error!(%error, "ignoring the changed configuration"),
            }
        }
        for spec in &config.components {
            if let Some(Refresh::Added { kind }) = files.refresh(&registry, spec).await {
                let _ = added.send(kind);
            }
        }
    }
}
