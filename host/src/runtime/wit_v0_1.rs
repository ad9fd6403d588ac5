//! Bindings of `keycloak-operator:reconciler@0.1.0`, and the conversions
//! between its generated types and the host's version-independent model.

use std::time::Instant;

use wasmtime::component::{ComponentExportIndex, Instance, TypedFunc};

use super::imports;
use super::model;
use super::store::StoreState;

wasmtime::component::bindgen!({
    world: "reconciler-component",
    path: "../wit",
    imports: {
        "keycloak-operator:reconciler/keycloak.send": async,
        "keycloak-operator:reconciler/secrets.read": async,
        default: async,
    },
    exports: { default: async },
});

use keycloak_operator::reconciler::{keycloak, log, secrets, types};

pub use ReconcilerComponentPre as BindingsPre;

/// Adds this version's interfaces to a linker.
pub fn add_to_linker(linker: &mut wasmtime::component::Linker<StoreState>) -> wasmtime::Result<()> {
    ReconcilerComponent::add_to_linker::<StoreState, wasmtime::component::HasSelf<StoreState>>(linker, |state| state)
}

impl types::Host for StoreState {}

impl log::Host for StoreState {
    async fn write(&mut self, level: log::Level, message: String) {
        let level = match level {
            log::Level::Trace => model::LogLevel::Trace,
            log::Level::Debug => model::LogLevel::Debug,
            log::Level::Info => model::LogLevel::Info,
            log::Level::Warn => model::LogLevel::Warn,
            log::Level::Error => model::LogLevel::Error,
        };
        imports::log::write(&self.call, level, &message);
        if level == model::LogLevel::Error {
            self.remember_error(message);
        }
    }
}

impl keycloak::Host for StoreState {
    async fn send(&mut self, request: keycloak::Request) -> Result<keycloak::Response, keycloak::Error> {
        let request = model::KeycloakRequest {
            method: match request.method {
                keycloak::Method::Get => model::Method::Get,
                keycloak::Method::Post => model::Method::Post,
                keycloak::Method::Put => model::Method::Put,
                keycloak::Method::Delete => model::Method::Delete,
            },
            route: request.route,
            params: request.params,
            query: request.query,
            body: request.body,
        };
        let started = Instant::now();
        let result = imports::keycloak::send(&mut self.call, request).await;
        self.charge_host_time(started);
        match result {
            Ok(r) => Ok(keycloak::Response {
                status: r.status,
                location: r.location,
                body: r.body,
            }),
            Err(model::KeycloakError::Unavailable(m)) => Err(keycloak::Error::Unavailable(m)),
            Err(model::KeycloakError::Forbidden(m)) => Err(keycloak::Error::Forbidden(m)),
            Err(model::KeycloakError::Unauthenticated(m)) => Err(keycloak::Error::Unauthenticated(m)),
            Err(model::KeycloakError::Invalid(m)) => Err(keycloak::Error::Invalid(m)),
            Err(model::KeycloakError::Refused { message, .. }) => Err(keycloak::Error::Forbidden(message)),
        }
    }
}

impl secrets::Host for StoreState {
    async fn read(&mut self, name: String, key: String) -> Result<String, secrets::Error> {
        let started = Instant::now();
        let result = imports::secrets::read(&mut self.call, name, key).await;
        self.charge_host_time(started);
        result.map_err(|e| match e {
            model::SecretError::NotFound(m) => secrets::Error::NotFound(m),
            model::SecretError::Forbidden(m) => secrets::Error::Forbidden(m),
            model::SecretError::Invalid(m) => secrets::Error::Invalid(m),
            model::SecretError::Unavailable(m) => secrets::Error::Unavailable(m),
        })
    }
}

/// The exported interface every reconciler component of this version has.
const RECONCILER_INTERFACE: &str = "keycloak-operator:reconciler/reconciler@0.1.0";

type DescribeFunc = TypedFunc<(), (types::Description,)>;
type ReconcileFunc = TypedFunc<(types::ReconcileRequest,), (Result<types::ReconcileResponse, types::ReconcileError>,)>;
type FinalizeFunc = TypedFunc<(types::ReconcileRequest,), (Result<types::FinalizeResponse, types::ReconcileError>,)>;

/// Where the reconciler's functions sit among a component's exports.
///
/// Found once per loaded component so that a call finds its function by
/// index. The generated `Bindings::new` would look up and type-check all
/// three functions again on every instantiation, which measured as a tenth
/// of the host's overhead per call.
#[derive(Clone)]
pub struct Exports {
    describe: ComponentExportIndex,
    reconcile: ComponentExportIndex,
    finalize: ComponentExportIndex,
}

impl Exports {
    /// Finds the functions of a component that `BindingsPre::new` accepted.
    pub fn new(pre: &BindingsPre<StoreState>) -> wasmtime::Result<Self> {
        let component = pre.instance_pre().component();
        let interface = component
            .get_export_index(None, RECONCILER_INTERFACE)
            .ok_or_else(|| wasmtime::format_err!("no export `{RECONCILER_INTERFACE}` found"))?;
        let function = |name: &str| {
            component
                .get_export_index(Some(&interface), name)
                .ok_or_else(|| wasmtime::format_err!("no export `{RECONCILER_INTERFACE}#{name}` found"))
        };
        Ok(Exports {
            describe: function("describe")?,
            reconcile: function("reconcile")?,
            finalize: function("finalize")?,
        })
    }

    fn func(
        &self,
        store: &mut wasmtime::Store<StoreState>,
        instance: &Instance,
        index: &ComponentExportIndex,
    ) -> wasmtime::Result<wasmtime::component::Func> {
        instance
            .get_func(store, index)
            .ok_or_else(|| wasmtime::format_err!("the instance lacks an export its component has"))
    }

    fn describe(&self, store: &mut wasmtime::Store<StoreState>, instance: &Instance) -> wasmtime::Result<DescribeFunc> {
        let func = self.func(store, instance, &self.describe)?;
        // SAFETY: `BindingsPre::new` type-checked this export against the
        // generated signature, which `DescribeFunc` repeats.
        Ok(unsafe { DescribeFunc::new_unchecked(func) })
    }

    fn reconcile(
        &self,
        store: &mut wasmtime::Store<StoreState>,
        instance: &Instance,
    ) -> wasmtime::Result<ReconcileFunc> {
        let func = self.func(store, instance, &self.reconcile)?;
        // SAFETY: as in `describe`.
        Ok(unsafe { ReconcileFunc::new_unchecked(func) })
    }

    fn finalize(&self, store: &mut wasmtime::Store<StoreState>, instance: &Instance) -> wasmtime::Result<FinalizeFunc> {
        let func = self.func(store, instance, &self.finalize)?;
        // SAFETY: as in `describe`.
        Ok(unsafe { FinalizeFunc::new_unchecked(func) })
    }
}

/// Calls `describe`.
pub async fn describe(
    exports: &Exports,
    instance: &Instance,
    store: &mut wasmtime::Store<StoreState>,
) -> wasmtime::Result<model::Description> {
    let (d,) = exports.describe(store, instance)?.call_async(&mut *store, ()).await?;
    Ok(model::Description {
        name: d.name,
        version: d.version,
        group: d.group,
        kind: d.kind,
        plural: d.plural,
        versions: d.versions,
        child_kinds: d.child_kinds.into_iter().map(kind_ref).collect(),
        related_kinds: d.related_kinds.into_iter().map(kind_ref).collect(),
        capabilities: d
            .capabilities
            .into_iter()
            .map(|c| match c {
                types::Capability::KeycloakAdmin => model::Capability::KeycloakAdmin,
                types::Capability::ReadSecrets => model::Capability::ReadSecrets,
            })
            .collect(),
        keycloak_scope: match d.keycloak_scope {
            types::KeycloakScope::None => model::KeycloakScope::None,
            types::KeycloakScope::Instance => model::KeycloakScope::Instance,
            types::KeycloakScope::Realm => model::KeycloakScope::Realm,
            types::KeycloakScope::InRealm => model::KeycloakScope::InRealm,
        },
        finalizer: d.finalizer,
        crd: d.crd,
    })
}

fn kind_ref(k: types::KindRef) -> model::KindRef {
    model::KindRef {
        api_version: k.api_version,
        kind: k.kind,
        plural: k.plural,
    }
}

fn request(r: &model::ReconcileRequest) -> types::ReconcileRequest {
    types::ReconcileRequest {
        parent: r.parent.clone(),
        children: r.children.clone(),
        related: r.related.clone(),
        target: r.target.as_ref().map(|t| types::Target {
            keycloak: t.keycloak.clone(),
            url: t.url.clone(),
            realm: t.realm.clone(),
        }),
    }
}

fn detail(d: types::Detail) -> model::Detail {
    model::Detail {
        reason: d.reason,
        message: d.message,
    }
}

fn event(e: types::Event) -> model::Event {
    model::Event {
        event_type: match e.event_type {
            types::EventType::Normal => model::EventType::Normal,
            types::EventType::Warning => model::EventType::Warning,
        },
        reason: e.reason,
        action: e.action,
        message: e.message,
    }
}

fn error(e: types::ReconcileError) -> model::ReconcileError {
    match e {
        types::ReconcileError::Transient(d) => model::ReconcileError::Transient(detail(d)),
        types::ReconcileError::Permanent(d) => model::ReconcileError::Permanent(detail(d)),
        types::ReconcileError::InvalidSpec(d) => model::ReconcileError::InvalidSpec(detail(d)),
    }
}

/// Calls `reconcile`.
pub async fn reconcile(
    exports: &Exports,
    instance: &Instance,
    store: &mut wasmtime::Store<StoreState>,
    req: &model::ReconcileRequest,
) -> wasmtime::Result<Result<model::ReconcileResponse, model::ReconcileError>> {
    let (result,) = exports
        .reconcile(store, instance)?
        .call_async(&mut *store, (request(req),))
        .await?;
    Ok(result
        .map(|r| model::ReconcileResponse {
            outcome: match r.outcome {
                types::Outcome::Ready(d) => model::Outcome::Ready(detail(d)),
                types::Outcome::Progressing(d) => model::Outcome::Progressing(detail(d)),
                types::Outcome::Stalled(d) => model::Outcome::Stalled(detail(d)),
            },
            status: r.status,
            children: r.children,
            conditions: r
                .conditions
                .into_iter()
                .map(|c| model::Condition {
                    condition_type: c.condition_type,
                    status: c.status,
                    detail: detail(c.detail),
                })
                .collect(),
            events: r.events.into_iter().map(event).collect(),
            drift_corrected: r.drift_corrected,
            requeue_after_seconds: r.requeue_after_seconds,
        })
        .map_err(error))
}

/// Calls `finalize`.
pub async fn finalize(
    exports: &Exports,
    instance: &Instance,
    store: &mut wasmtime::Store<StoreState>,
    req: &model::ReconcileRequest,
) -> wasmtime::Result<Result<model::FinalizeResponse, model::ReconcileError>> {
    let (result,) = exports
        .finalize(store, instance)?
        .call_async(&mut *store, (request(req),))
        .await?;
    Ok(result
        .map(|r| model::FinalizeResponse {
            events: r.events.into_iter().map(event).collect(),
        })
        .map_err(error))
}
