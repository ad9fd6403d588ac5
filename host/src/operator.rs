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
use kube::runtime::events::Reporter;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::capability::HostCapability;
use crate::config::{ComponentSpec, HostConfig};
use crate::controller::children::ChildCaches;
use crate::controller::events::EventSink;
use crate::controller::informer::{Informer, NamespaceScope};
use crate::controller::{ControllerSettings, KindController, Shared};
use crate::delivery::{ArtifactStore, Delivery, DeliverySettings, OciClient, OciSettings, ShadowReports};
use crate::http::{self, Health};
use crate::keycloak::access::KeycloakAccess;
use crate::keycloak::drift_watch::{DriftSettings, DriftWatch};
use crate::keycloak::placement::References;
use crate::keycloak::{CircuitSettings, KeycloakPool, KeycloakSettings};
use crate::leader::Election;
use crate::metrics::Metrics;
use crate::runtime::engine::EngineSettings;
use crate::runtime::registry::{Registry, RegistryEvent};
use crate::runtime::{Runtime, RuntimeSettings, default_child_kinds, default_related_kinds};
use crate::secrets::SecretAccess;

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
        cache_max_bytes: r.cache_max_mib << 20,
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

fn oci_settings(config: &HostConfig) -> OciSettings {
    let d = &config.declared_components;
    OciSettings {
        insecure_registries: d.insecure_registries.clone(),
        timeout: d.pull_timeout,
        max_component_bytes: d.max_component_mib << 20,
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
    if registry.kinds().is_empty() && !config.declared_components.enabled {
        anyhow::bail!("no component could be loaded; see the errors above");
    }
    let shutdown = CancellationToken::new();
    let health = Arc::new(Health::default());
    tokio::spawn(signals(shutdown.clone(), health.clone()));
    tokio::spawn(crate::memory::trim_periodically(shutdown.clone()));
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
    tokio::spawn(watch_components(
        registry.clone(),
        options.config_path.clone(),
        config.clone(),
        watched,
        shutdown.clone(),
    ));
    let keycloak = Arc::new(KeycloakPool::new(
        client.clone(),
        keycloak_settings(&config),
        metrics.clone(),
    )?);
    let shadow = Arc::new(ShadowReports::default());
    let operator_namespace = config.operator_namespace();
    let election = if config.leader_election.enabled {
        let namespace = config
            .leader_election
            .namespace
            .clone()
            .unwrap_or_else(|| operator_namespace.clone());
        let election = Election::join(
            client.clone(),
            &namespace,
            &config.leader_election.lease_name,
            &options.identity,
            config.leader_election.lease_duration,
            config.leader_election.renew_grace,
        )
        .await?;
        tracing::info!(identity = %options.identity, lease = %format!("{namespace}/{}", config.leader_election.lease_name), "joined the leader election");
        Some(election)
    } else {
        None
    };
    let leading = match &election {
        Some(election) => election.leading.clone(),
        None => watch::channel(true).1,
    };
    // Every replica loads the declared components, so that a follower taking
    // over serves the declared versions at once; only the leader writes
    // their status.
    if config.declared_components.enabled {
        let delivery = Delivery::start(
            client.clone(),
            registry.clone(),
            metrics.clone(),
            OciClient::new(oci_settings(&config)),
            ArtifactStore::new(
                config.runtime.cache_dir.as_ref().map(|dir| dir.join("artifacts")),
                config.declared_components.store_max_mib << 20,
            ),
            shadow.clone(),
            DeliverySettings {
                operator_namespace,
                label_selector: config.declared_components.label_selector.clone(),
                backoff_base: config.backoff.base,
                backoff_cap: config.backoff.cap,
            },
            leading,
            shutdown.clone(),
        );
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = delivery.wait_initial() => {}
        }
        if registry.kinds().is_empty() {
            tracing::warn!("no kind is served yet: no built-in component loaded and no ReconcilerComponent declared");
        }
    }
    health.components_loaded.store(true, Ordering::Relaxed);
    let context = LeadContext {
        client: client.clone(),
        registry,
        keycloak,
        metrics: metrics.clone(),
        config: config.clone(),
        identity: options.identity.clone(),
        health: health.clone(),
        shadow,
    };
    let result = match election {
        Some(election) => follow(context, election, shutdown.clone()).await,
        None => {
            let leading = Leadership::start(&context);
            lead_until(leading, &context, shutdown.clone())
                .await
                .stop(&context)
                .await;
            Ok(())
        }
    };
    shutdown.cancel();
    let _ = server.await;
    tracing::info!("stopped");
    result
}

async fn signals(shutdown: CancellationToken, health: Arc<Health>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: finishing reconciles in flight, then releasing the Lease"),
        _ = int.recv() => tracing::info!("SIGINT: finishing reconciles in flight, then releasing the Lease"),
    }
    health.stopping.store(true, Ordering::Relaxed);
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
    health: Arc<Health>,
    shadow: Arc<ShadowReports>,
}

/// A kind's controller while this replica leads.
struct Running {
    cancel: CancellationToken,
    handle: JoinHandle<()>,
}

/// The controllers running while this replica leads.
struct Leadership {
    shared: Arc<Shared>,
    cancel: CancellationToken,
    controllers: BTreeMap<String, Running>,
    /// Caches that must list their objects before this leader is ready.
    caches: Vec<Arc<Informer>>,
    synced: Option<JoinHandle<()>>,
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
            realm_owners: Default::default(),
        });
        let caches = vec![
            references.keycloaks.clone(),
            references.realms.clone(),
            references.namespaces.clone(),
        ];
        let shared = Arc::new(Shared {
            client: context.client.clone(),
            capabilities: vec![
                Arc::new(KeycloakAccess::new(
                    context.keycloak.clone(),
                    references,
                    DriftWatch::new(
                        DriftSettings {
                            poll_interval: context.config.keycloak.drift_poll_interval,
                            retention: context.config.keycloak.admin_events_retention,
                        },
                        context.metrics.clone(),
                        cancel.clone(),
                    ),
                )) as Arc<dyn HostCapability>,
                Arc::new(SecretAccess::new(context.client.clone())),
            ],
            metrics: context.metrics.clone(),
            children: Arc::new(ChildCaches::new(context.client.clone(), scope.clone(), cancel.clone())),
            recorder: EventSink::new(
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
            shadow: context.shadow.clone(),
        });
        let mut leadership = Leadership {
            shared,
            cancel,
            controllers: BTreeMap::new(),
            caches,
            synced: None,
        };
        for (kind, _) in context.registry.kinds() {
            leadership.start_kind(context, &kind);
        }
        context.health.leading.store(true, Ordering::Relaxed);
        leadership.watch_sync(context);
        context.metrics.leader.set(1);
        leadership
    }

    /// Marks the leader ready once every cache it reads has synced.
    fn watch_sync(&mut self, context: &LeadContext) {
        if let Some(previous) = self.synced.take() {
            previous.abort();
        }
        context.health.caches_synced.store(false, Ordering::Relaxed);
        let caches = self.caches.clone();
        let health = context.health.clone();
        self.synced = Some(tokio::spawn(async move {
            for cache in caches {
                cache.wait_synced().await;
            }
            health.caches_synced.store(true, Ordering::Relaxed);
            tracing::info!("caches synced; ready as leader");
        }));
    }

    fn start_kind(&mut self, context: &LeadContext, kind: &str) {
        let Some(slot) = context.registry.slot(kind) else {
            return;
        };
        if self.controllers.contains_key(kind) {
            return;
        }
        let cancel = self.cancel.child_token();
        let running = KindController::start(
            self.shared.clone(),
            context.registry.clone(),
            kind.to_owned(),
            slot,
            cancel.clone(),
        );
        self.caches.push(running.parent);
        self.controllers.insert(
            kind.to_owned(),
            Running {
                cancel,
                handle: running.handle,
            },
        );
    }

    /// Stops the controller of a kind no longer served, after its
    /// reconciles in flight.
    fn stop_kind(&mut self, kind: &str) {
        if let Some(running) = self.controllers.remove(kind) {
            running.cancel.cancel();
            tokio::spawn(async move {
                let _ = running.handle.await;
            });
        }
        self.caches
            .retain(|cache| format!("{}/{}", cache.resource.group, cache.resource.kind) != kind);
    }

    /// Stops every controller after its reconciles in flight.
    async fn stop(self, context: &LeadContext) {
        self.cancel.cancel();
        if let Some(synced) = self.synced {
            synced.abort();
        }
        for (_, running) in self.controllers {
            let _ = running.handle.await;
        }
        context.health.leading.store(false, Ordering::Relaxed);
        context.health.caches_synced.store(false, Ordering::Relaxed);
        context.metrics.leader.set(0);
    }
}

/// Leads until `stop`: starts the controller of each kind that comes to be
/// served and stops the one of each kind that is no longer.
async fn lead_until(mut leading: Leadership, context: &LeadContext, stop: CancellationToken) -> Leadership {
    let mut events = context.registry.subscribe();
    // Kinds added between the start and the subscription.
    for (kind, _) in context.registry.kinds() {
        leading.start_kind(context, &kind);
    }
    loop {
        tokio::select! {
            _ = stop.cancelled() => return leading,
            event = events.recv() => match event {
                Ok(RegistryEvent::Added(kind)) => {
                    leading.start_kind(context, &kind);
                    leading.watch_sync(context);
                }
                Ok(RegistryEvent::Removed(kind)) => leading.stop_kind(&kind),
                Ok(RegistryEvent::Swapped(_)) => {}
                Err(RecvError::Lagged(_)) => {
                    let served: BTreeSet<String> = context.registry.kinds().into_iter().map(|(k, _)| k).collect();
                    let running: Vec<String> = leading.controllers.keys().cloned().collect();
                    for kind in running.iter().filter(|k| !served.contains(*k)) {
                        leading.stop_kind(kind);
                    }
                    for kind in &served {
                        leading.start_kind(context, kind);
                    }
                    leading.watch_sync(context);
                }
                Err(RecvError::Closed) => { stop.cancelled().await; return leading; }
            },
        }
    }
}

/// Leads while elected; on losing the Lease stops reconciling at once.
async fn follow(context: LeadContext, mut election: Election, shutdown: CancellationToken) -> anyhow::Result<()> {
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
            let leadership = lead_until(leadership, &context, lost).await;
            watch_loss.abort();
            leadership.stop(&context).await;
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
    /// Loads the file if it changed since last seen.
    async fn refresh(&mut self, registry: &Registry, spec: &ComponentSpec) {
        let now = stamp(&spec.path);
        if self.seen.get(&spec.path) == Some(&now) {
            return;
        }
        self.seen.insert(spec.path.clone(), now);
        let policy = registry.runtime().policy(spec.grants.iter().copied());
        registry.refresh(&spec.path, &policy).await;
    }
}

/// Polls the component files and the configuration file. A changed file is
/// loaded and swapped in if it passes the checks; a new component in the
/// configuration starts serving its kind (the registry announces it).
async fn watch_components(
    registry: Arc<Registry>,
    config_path: PathBuf,
    mut config: HostConfig,
    mut files: ComponentFiles,
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
            files.refresh(&registry, spec).await;
        }
    }
}
