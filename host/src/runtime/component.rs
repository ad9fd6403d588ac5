//! Loading a component (compile once per digest, link, pre-instantiate,
//! describe, check) and calling it in a fresh store per call.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use wasmtime::component::{Instance, Linker};
use wasmtime::{Store, UpdateDeadline};

use super::admission::{self, default_child_kinds, default_related_kinds};
use super::cache::CompileCache;
use super::engine::{Allocator, EngineSettings, RuntimeEngine};
use super::imports::{CallContext, CallStats};
use super::model::{
    Capability, Description, FinalizeResponse, KeycloakScope, ReconcileError, ReconcileRequest, ReconcileResponse,
};
pub use super::policy::{CallLimits, Policy};
use super::store::{Budget, StoreState};
use super::wit_v0_1 as v0_1;

/// Limits and places of the runtime.
#[derive(Debug, Clone)]
pub struct RuntimeSettings {
    /// Engine and pool.
    pub engine: EngineSettings,
    /// Where compiled components are kept; `None` disables the disk cache.
    pub cache_dir: Option<PathBuf>,
    /// Most bytes the compiled components in `cache_dir` may take.
    pub cache_max_bytes: u64,
    /// Time a component may compute in one call (host imports excluded).
    pub guest_time_limit: Duration,
    /// Time one call may take in all, host imports included.
    pub wall_time_limit: Duration,
    /// Kinds of children any component may return.
    pub allowed_child_kinds: BTreeSet<String>,
    /// Kinds of related objects any component may see.
    pub allowed_related_kinds: BTreeSet<String>,
}

impl Default for RuntimeSettings {
    fn default() -> Self {
        RuntimeSettings {
            engine: EngineSettings::default(),
            cache_dir: None,
            cache_max_bytes: 1 << 30,
            guest_time_limit: Duration::from_secs(2),
            wall_time_limit: Duration::from_secs(120),
            allowed_child_kinds: default_child_kinds(),
            allowed_related_kinds: default_related_kinds(),
        }
    }
}

/// Why a component could not be loaded. A component that fails to load
/// never replaces a working one.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read component {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Not a valid component for this engine.
    #[error("{path} is not a valid WebAssembly component: {message}")]
    Compile {
        /// File.
        path: PathBuf,
        /// Cause.
        message: String,
    },
    /// Imports or exports do not match what the host provides.
    #[error(
        "{path} does not fit the host: {message} (a component targets keycloak-operator:reconciler@0.1 and may import only its interfaces and WASI io, clocks, random, cli and filesystem; no sockets or HTTP)"
    )]
    Link {
        /// File.
        path: PathBuf,
        /// Cause.
        message: String,
    },
    /// `describe` failed.
    #[error("{path}: describe failed: {failure}")]
    Describe {
        /// File.
        path: PathBuf,
        /// Cause.
        failure: CallFailure,
    },
    /// The component asks for more than it was granted.
    #[error("{path} asks for what it was not granted: {missing}")]
    NotGranted {
        /// File.
        path: PathBuf,
        /// The missing grants.
        missing: String,
    },
    /// The description is unusable.
    #[error("{path}: {message}")]
    InvalidDescription {
        /// File.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The limits asked for cannot be given.
    #[error("{path}: {message}")]
    InvalidLimits {
        /// File.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Why a call did not return normally.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallFailure {
    /// The component trapped (a panic, an unreachable instruction...).
    #[error("component trapped: {0}")]
    Trapped(String),
    /// The component used up its time budget.
    #[error("component exceeded its time budget ({guest_ms} ms of computation, {wall_ms} ms in all)")]
    TimedOut {
        /// Guest time used.
        guest_ms: u128,
        /// Wall time used.
        wall_ms: u128,
    },
    /// The component asked for more memory than its cap.
    #[error("component exceeded its memory limit of {limit_mib} MiB")]
    OutOfMemory {
        /// The cap.
        limit_mib: usize,
    },
    /// No instance could be made (the pool is full, for example).
    #[error("component could not be instantiated: {0}")]
    Instantiate(String),
}

/// The runtime: engine, linker with the host's imports, compile cache.
pub struct Runtime {
    engine: RuntimeEngine,
    linker: Linker<StoreState>,
    cache: CompileCache,
    settings: RuntimeSettings,
}

impl Runtime {
    /// Builds the engine and the linker.
    pub fn new(settings: RuntimeSettings) -> wasmtime::Result<Arc<Self>> {
        let engine = RuntimeEngine::new(&settings.engine)?;
        let mut linker = Linker::new(&engine.engine);
        super::wasi::add_to_linker(&mut linker)?;
        v0_1::add_to_linker(&mut linker)?;
        let cache = CompileCache::new(&engine.engine, settings.cache_dir.clone(), settings.cache_max_bytes);
        Ok(Arc::new(Runtime {
            engine,
            linker,
            cache,
            settings,
        }))
    }

    /// The allocator the engine uses.
    pub fn allocator(&self) -> Allocator {
        self.engine.allocator
    }

    /// The limits a component gets unless it is given others: the host's
    /// configuration, which is also the most a component may be given.
    pub fn default_limits(&self) -> CallLimits {
        CallLimits {
            memory_bytes: self.settings.engine.memory_limit_bytes,
            guest_time: self.settings.guest_time_limit,
            wall_time: self.settings.wall_time_limit,
        }
    }

    /// A policy with `grants` and the default limits.
    pub fn policy(&self, grants: impl IntoIterator<Item = Capability>) -> Policy {
        Policy {
            grants: grants.into_iter().collect(),
            child_kinds: None,
            limits: self.default_limits(),
        }
    }

    /// Loads, checks and describes the component in `path`.
    pub async fn load(self: &Arc<Self>, path: &Path, policy: &Policy) -> Result<LoadedComponent, LoadError> {
        let bytes = tokio::fs::read(path).await.map_err(|source| LoadError::Read {
            path: path.to_owned(),
            source,
        })?;
        self.load_bytes(&bytes, path, policy).await
    }

    /// Loads a component from memory; `path` names it in errors.
    pub async fn load_bytes(
        self: &Arc<Self>,
        bytes: &[u8],
        path: &Path,
        policy: &Policy,
    ) -> Result<LoadedComponent, LoadError> {
        self.check_limits(&policy.limits, path)?;
        let digest_hex = hex::encode(Sha256::digest(bytes));
        let engine = self.engine.engine.clone();
        let cache = self.cache.clone();
        let owned = bytes.to_vec();
        let key = digest_hex.clone();
        // Compiling takes tens of milliseconds: keep it off the async workers.
        let compiled = tokio::task::spawn_blocking(move || cache.load_or_compile(&engine, &owned, &key))
            .await
            .map_err(|e| LoadError::Compile {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
        let (component, from_cache) = compiled.map_err(|e| LoadError::Compile {
            path: path.to_owned(),
            message: format!("{e:#}"),
        })?;
        let link_error = |e: wasmtime::Error| LoadError::Link {
            path: path.to_owned(),
            message: format!("{e:#}"),
        };
        let pre = self.linker.instantiate_pre(&component).map_err(link_error)?;
        // Type-checks the exports against this version of the contract.
        let pre = v0_1::BindingsPre::new(pre).map_err(link_error)?;
        let exports = v0_1::Exports::new(&pre).map_err(link_error)?;
        let mut loaded = LoadedComponent {
            description: placeholder_description(),
            digest: format!("sha256:{digest_hex}"),
            source: path.to_owned(),
            grants: policy.grants.clone(),
            child_grants: policy.child_kinds.clone(),
            limits: policy.limits,
            from_cache,
            loaded_at: SystemTime::now(),
            pre,
            exports,
            runtime: self.clone(),
        };
        let describe = CallContext::bare(path.display().to_string(), "describe");
        loaded.description = loaded.describe(describe).await.map_err(|failure| LoadError::Describe {
            path: path.to_owned(),
            failure,
        })?;
        self.check(&loaded, path)?;
        Ok(loaded)
    }

    fn check_limits(&self, limits: &CallLimits, path: &Path) -> Result<(), LoadError> {
        limits
            .check(&self.default_limits())
            .map_err(|message| LoadError::InvalidLimits {
                path: path.to_owned(),
                message,
            })
    }

    fn check(&self, loaded: &LoadedComponent, path: &Path) -> Result<(), LoadError> {
        admission::admit(
            &loaded.description,
            &loaded.grants,
            loaded.child_grants.as_ref(),
            &self.settings,
            path,
        )
    }

    fn new_store(&self, call: CallContext, limits: &CallLimits) -> Store<StoreState> {
        let budget = Budget::new(limits.guest_time, limits.wall_time);
        let state = StoreState::new(call, limits.memory_bytes, budget);
        let mut store = Store::new(&self.engine.engine, state);
        store.limiter(|state| &mut state.limiter);
        store.set_epoch_deadline(1);
        // Every epoch tick, check the budget; otherwise yield to the async
        // runtime so that a spinning guest does not hold a worker thread.
        store.epoch_deadline_callback(|mut ctx| {
            if ctx.data_mut().budget.check() {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store
    }
}

fn placeholder_description() -> Description {
    Description {
        name: String::new(),
        version: String::new(),
        group: String::new(),
        kind: String::new(),
        plural: String::new(),
        versions: Vec::new(),
        child_kinds: Vec::new(),
        related_kinds: Vec::new(),
        capabilities: Vec::new(),
        keycloak_scope: KeycloakScope::None,
        finalizer: false,
        crd: None,
    }
}

/// A loaded, checked component, ready to be instantiated per call.
pub struct LoadedComponent {
    /// What it serves and needs.
    pub description: Description,
    /// `sha256:<hex>` of the component file.
    pub digest: String,
    /// Where it was loaded from.
    pub source: PathBuf,
    /// Capabilities granted to it (by the configuration file or its
    /// `ReconcilerComponent`).
    pub grants: BTreeSet<Capability>,
    /// The child kinds it was granted (`None`: any the host allows).
    pub child_grants: Option<BTreeSet<String>>,
    /// Limits of each call.
    pub limits: CallLimits,
    /// Whether the compiled code came from the disk cache.
    pub from_cache: bool,
    /// When it was loaded.
    pub loaded_at: SystemTime,
    pre: v0_1::BindingsPre<StoreState>,
    exports: v0_1::Exports,
    runtime: Arc<Runtime>,
}

/// The outcome of one call and what it did.
pub struct Called<T> {
    /// The component's answer, or why there was none.
    pub result: Result<T, CallFailure>,
    /// What the call did with its imports.
    pub stats: CallStats,
}

impl LoadedComponent {
    /// `name@version (digest)`, for logs.
    pub fn label(&self) -> String {
        format!("{}@{}", self.description.name, self.description.version)
    }

    /// The same version under another policy: new grants or limits take
    /// effect without compiling or describing again. The policy is not
    /// checked against what the component needs: a capability taken away is
    /// simply refused when the component asks for it.
    pub fn with_policy(&self, policy: &Policy) -> Result<LoadedComponent, LoadError> {
        self.runtime.check_limits(&policy.limits, &self.source)?;
        Ok(LoadedComponent {
            description: self.description.clone(),
            digest: self.digest.clone(),
            source: self.source.clone(),
            grants: policy.grants.clone(),
            child_grants: policy.child_kinds.clone(),
            limits: policy.limits,
            from_cache: self.from_cache,
            loaded_at: SystemTime::now(),
            pre: self.pre.clone(),
            exports: self.exports.clone(),
            runtime: self.runtime.clone(),
        })
    }

    /// Its grants and limits.
    pub fn policy(&self) -> Policy {
        Policy {
            grants: self.grants.clone(),
            child_kinds: self.child_grants.clone(),
            limits: self.limits,
        }
    }

    /// What it needs that `policy` does not grant: capabilities by name,
    /// child kinds as `child kind apiVersion/Kind`.
    pub fn missing_grants(&self, policy: &Policy) -> Vec<String> {
        let capabilities = self
            .description
            .capabilities
            .iter()
            .filter(|c| !policy.grants.contains(c))
            .map(ToString::to_string);
        let child_kinds = admission::ungranted_child_kinds(&self.description, policy.child_kinds.as_ref())
            .into_iter()
            .map(|kind| format!("child kind {kind}"));
        capabilities.chain(child_kinds).collect()
    }

    /// Whether it may create children of `api_version`/`kind` now.
    pub fn may_create_child(&self, api_version: &str, kind: &str) -> bool {
        self.child_grants
            .as_ref()
            .is_none_or(|granted| granted.contains(&format!("{api_version}/{kind}")))
    }

    /// Identity recorded in resource status.
    pub fn identity(&self) -> keycloak_operator_api::ComponentIdentity {
        keycloak_operator_api::ComponentIdentity {
            name: self.description.name.clone(),
            version: self.description.version.clone(),
            digest: self.digest.clone(),
        }
    }

    async fn instantiate(&self, call: CallContext) -> Result<(Instance, Store<StoreState>), CallFailure> {
        let mut store = self.runtime.new_store(call, &self.limits);
        match self.pre.instance_pre().instantiate_async(&mut store).await {
            Ok(instance) => Ok((instance, store)),
            Err(error) => Err(classify(&store, &error, self.limits.memory_bytes)
                .unwrap_or_else(|| CallFailure::Instantiate(format!("{error:#}")))),
        }
    }

    fn finish<T>(&self, store: Store<StoreState>, result: wasmtime::Result<T>) -> Called<T> {
        let state = store.data();
        let stderr = state.stderr();
        if !stderr.is_empty() {
            tracing::debug!(component = %self.label(), resource = %state.call.resource, stderr = %stderr, "component wrote to stderr");
        }
        let result = result.map_err(|error| {
            classify(&store, &error, self.limits.memory_bytes).unwrap_or_else(|| {
                // The trap itself, not wasmtime's backtrace; the guest's own
                // last words first when it left any: std's panic message on
                // stderr (wasip2 builds without the SDK's hook), else the last
                // line it logged at error level (the SDK's panic hook).
                let last_words = if stderr.is_empty() {
                    state.last_error().unwrap_or_default()
                } else {
                    stderr.as_str()
                };
                let trap = error
                    .downcast_ref::<wasmtime::Trap>()
                    .map(ToString::to_string)
                    .unwrap_or_else(|| error.root_cause().to_string());
                let message = if last_words.is_empty() {
                    trap
                } else {
                    format!("{last_words} ({trap})")
                };
                CallFailure::Trapped(truncate(message, 600))
            })
        });
        Called {
            result,
            stats: store.into_data().call.stats,
        }
    }

    /// Calls `describe` in a fresh store.
    pub async fn describe(&self, call: CallContext) -> Result<Description, CallFailure> {
        let (instance, mut store) = self.instantiate(call).await?;
        let result = v0_1::describe(&self.exports, &instance, &mut store).await;
        self.finish(store, result).result
    }

    /// Calls `reconcile` in a fresh store.
    pub async fn reconcile(
        &self,
        call: CallContext,
        request: &ReconcileRequest,
    ) -> Called<Result<ReconcileResponse, ReconcileError>> {
        let (instance, mut store) = match self.instantiate(call).await {
            Ok(instance) => instance,
            Err(failure) => {
                return Called {
                    result: Err(failure),
                    stats: CallStats::default(),
                };
            }
        };
        let result = v0_1::reconcile(&self.exports, &instance, &mut store, request).await;
        self.finish(store, result)
    }

    /// Calls `finalize` in a fresh store.
    pub async fn finalize(
        &self,
        call: CallContext,
        request: &ReconcileRequest,
    ) -> Called<Result<FinalizeResponse, ReconcileError>> {
        let (instance, mut store) = match self.instantiate(call).await {
            Ok(instance) => instance,
            Err(failure) => {
                return Called {
                    result: Err(failure),
                    stats: CallStats::default(),
                };
            }
        };
        let result = v0_1::finalize(&self.exports, &instance, &mut store, request).await;
        self.finish(store, result)
    }
}

/// Names a failure the store's own bookkeeping explains: the deadline or
/// the memory cap.
fn classify(store: &Store<StoreState>, _error: &wasmtime::Error, memory_limit: usize) -> Option<CallFailure> {
    let state = store.data();
    if state.budget.timed_out {
        let wall = state.budget.started.elapsed();
        return Some(CallFailure::TimedOut {
            guest_ms: wall.saturating_sub(state.budget.host_time).as_millis(),
            wall_ms: wall.as_millis(),
        });
    }
    if state.limiter.exceeded {
        return Some(CallFailure::OutOfMemory {
            limit_mib: memory_limit >> 20,
        });
    }
    None
}

fn truncate(mut s: String, max: usize) -> String {
    if let Some((end, _)) = s.char_indices().nth(max) {
        s.truncate(end);
        s.push('…');
    }
    s
}
