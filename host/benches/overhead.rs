//! Host overhead per reconcile: a fresh store, instantiation from the
//! pre-instantiated component, one call, and the drop — no I/O.
//!
//! Run with `make bench` (or `cargo bench -p keycloak-operator --bench overhead`).
//! Prints the median and 99th percentile per call, and calls per second on
//! one and two threads, for the allocator settings compared in
//! docs/benchmarks.md; then the same for a real realm reconcile whose
//! Keycloak answers are canned (guest JSON work included, network excluded).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use keycloak_operator::runtime::engine::{EngineSettings, RuntimeEngine};
use keycloak_operator::runtime::imports::{CallContext, KeycloakGateway};
use keycloak_operator::runtime::model::{
    Capability, KeycloakError, KeycloakRequest, KeycloakResponse, ReconcileRequest,
};
use keycloak_operator::runtime::{LoadedComponent, Runtime, RuntimeSettings};
use serde_json::json;

mod common;
use common::{component, components_dir, percentile_us, request_in_bench_realm};

/// A measured case: its name, the component, and its Keycloak.
type Case<'a> = (&'a str, &'a Arc<LoadedComponent>, Option<Arc<dyn KeycloakGateway>>);

const WARMUP: usize = 2_000;
const SAMPLES: usize = 20_000;

/// The noop built for `wasm32-wasip2` (`make bench` puts it there when that
/// target is installed): the same code with std's WASI imports, to show what
/// the components' target saves.
fn wasip2_noop() -> Option<PathBuf> {
    Some(components_dir().join("wasip2/noop_component.wasm")).filter(|path| path.exists())
}

/// Answers the realm component's read with the realm it wants, so that it
/// decides there is nothing to write (steady state).
struct CannedKeycloak {
    realm: String,
}

impl KeycloakGateway for CannedKeycloak {
    fn send(&self, _request: KeycloakRequest) -> BoxFuture<'_, Result<KeycloakResponse, KeycloakError>> {
        Box::pin(async move {
            Ok(KeycloakResponse {
                status: 200,
                location: None,
                body: self.realm.clone(),
            })
        })
    }
}

fn realm_request() -> (ReconcileRequest, String) {
    let parent = json!({
        "apiVersion": "keycloak.wasmop.dev/v1alpha1",
        "kind": "KeycloakRealm",
        "metadata": {"name": "bench", "namespace": "bench", "uid": "0000-bench", "generation": 1},
        "spec": {"keycloakRef": {"name": "sso"}, "realmName": "bench", "displayName": "Bench"},
        "status": {"observedGeneration": 1},
    });
    let realm = json!({
        "id": "bench-id", "realm": "bench", "enabled": true, "displayName": "Bench",
        "attributes": {
            "keycloak.wasmop.dev/owner-uid": "0000-bench",
            "keycloak.wasmop.dev/owner-namespace": "bench",
            "keycloak.wasmop.dev/owner-name": "bench",
            "keycloak.wasmop.dev/owner-kind": "KeycloakRealm",
        },
    });
    let request = request_in_bench_realm(&parent);
    (request, realm.to_string())
}

async fn call(component: &LoadedComponent, request: &ReconcileRequest, gateway: Option<Arc<dyn KeycloakGateway>>) {
    let mut context = CallContext::bare("bench", "bench");
    context.keycloak = gateway;
    let called = component.reconcile(context, request).await;
    match called.result {
        Ok(Ok(_)) => {}
        other => panic!("the benchmark call failed: {other:?}"),
    }
}

async fn latency(
    component: &LoadedComponent,
    request: &ReconcileRequest,
    gateway: Option<Arc<dyn KeycloakGateway>>,
) -> (f64, f64) {
    for _ in 0..WARMUP {
        call(component, request, gateway.clone()).await;
    }
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let started = Instant::now();
        call(component, request, gateway.clone()).await;
        samples.push(started.elapsed());
    }
    samples.sort();
    (percentile_us(&samples, 0.5), percentile_us(&samples, 0.99))
}

async fn throughput(
    component: Arc<LoadedComponent>,
    request: Arc<ReconcileRequest>,
    gateway: Option<Arc<dyn KeycloakGateway>>,
    threads: usize,
) -> f64 {
    let per_thread = SAMPLES;
    let started = Instant::now();
    let tasks: Vec<_> = (0..threads)
        .map(|_| {
            let (component, request, gateway) = (component.clone(), request.clone(), gateway.clone());
            tokio::spawn(async move {
                for _ in 0..per_thread {
                    call(&component, &request, gateway.clone()).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("benchmark task");
    }
    (threads * per_thread) as f64 / started.elapsed().as_secs_f64()
}

/// Resident memory of this process, in MiB.
pub fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let setups = [
        ("pooling, tuned (default)", EngineSettings::default()),
        (
            "pooling, wasmtime's defaults",
            EngineSettings {
                keep_resident: false,
                ..EngineSettings::default()
            },
        ),
        (
            "on-demand allocation",
            EngineSettings {
                pooling: false,
                ..EngineSettings::default()
            },
        ),
    ];
    let grants: BTreeSet<Capability> = [Capability::KeycloakAdmin].into();
    let (realm_request, canned_realm) = realm_request();
    let realm_request = Arc::new(realm_request);
    let canned: Arc<dyn KeycloakGateway> = Arc::new(CannedKeycloak { realm: canned_realm });
    println!("host overhead per reconcile: fresh Store + instantiate (InstancePre) + call + drop, no I/O");
    println!("{SAMPLES} calls per figure after {WARMUP} warm-up calls; 2 tokio worker threads");
    println!();
    println!(
        "{:<30} {:<22} {:>10} {:>10} {:>12} {:>12} {:>9}",
        "allocator", "component", "median µs", "p99 µs", "calls/s x1", "calls/s x2", "RSS MiB"
    );
    // BENCH_ONLY=<text> keeps the setups whose label contains it (profiling).
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    for (label, engine) in setups.into_iter().filter(|(label, _)| label.contains(only.as_str())) {
        let runtime = Runtime::new(RuntimeSettings {
            engine,
            ..RuntimeSettings::default()
        })
        .expect("runtime");
        let noop = Arc::new(
            runtime
                .load(&component("noop_component.wasm"), &runtime.policy([]))
                .await
                .expect("noop component"),
        );
        let realm = Arc::new(
            runtime
                .load(
                    &component("realm_component.wasm"),
                    &runtime.policy(grants.iter().copied()),
                )
                .await
                .expect("realm component"),
        );
        let noop_wasip2 = match wasip2_noop() {
            Some(path) => Some(Arc::new(
                runtime.load(&path, &runtime.policy([])).await.expect("wasip2 noop"),
            )),
            None => None,
        };
        let mut cases: Vec<Case<'_>> = vec![
            ("noop (host only)", &noop, None),
            ("realm, steady state", &realm, Some(canned.clone())),
        ];
        if let Some(noop_wasip2) = &noop_wasip2 {
            cases.push(("noop, wasip2 build", noop_wasip2, None));
        }
        let case = std::env::var("BENCH_CASE").unwrap_or_default();
        for (name, component, gateway) in cases.into_iter().filter(|(name, _, _)| name.contains(case.as_str())) {
            let (median, p99) = latency(component, &realm_request, gateway.clone()).await;
            let one = throughput(component.clone(), realm_request.clone(), gateway.clone(), 1).await;
            let two = throughput(component.clone(), realm_request.clone(), gateway.clone(), 2).await;
            println!(
                "{label:<30} {name:<22} {median:>10.1} {p99:>10.1} {one:>12.0} {two:>12.0} {:>9.0}",
                rss_mib()
            );
        }
    }
    if only.is_empty() || "wasmtime alone".contains(only.as_str()) {
        let (median, p99) = wasmtime_alone(&component("noop_component.wasm"));
        println!();
        println!("baseline: the same noop component in a bare wasmtime store (same engine and pool, no WASI,");
        println!("imports defined as traps, `describe` called through the dynamic API): what the host adds is");
        println!("the difference to the first row");
        println!(
            "{:<30} {:<22} {median:>10.1} {p99:>10.1}",
            "wasmtime alone", "noop (describe)"
        );
    }
}

/// A fresh `Store<()>` + instantiation + one `describe` + drop, with nothing
/// of the host around it: the floor this engine gives a component of this
/// shape.
fn wasmtime_alone(path: &std::path::Path) -> (f64, f64) {
    use wasmtime::component::{Component, Linker, Val};
    let engine = RuntimeEngine::new(&EngineSettings::default()).expect("engine");
    let component = Component::from_file(&engine.engine, path).expect("component");
    let mut linker: Linker<()> = Linker::new(&engine.engine);
    linker
        .define_unknown_imports_as_traps(&component)
        .expect("trapping imports");
    let pre = linker.instantiate_pre(&component).expect("pre-instantiation");
    let interface = component
        .get_export_index(None, "keycloak-operator:reconciler/reconciler@0.1.0")
        .expect("reconciler interface");
    let describe = component
        .get_export_index(Some(&interface), "describe")
        .expect("describe");
    let once = || {
        let mut store = wasmtime::Store::new(&engine.engine, ());
        store.set_epoch_deadline(u64::MAX / 2);
        let instance = pre.instantiate(&mut store).expect("instance");
        let func = instance.get_func(&mut store, describe).expect("describe");
        let mut results = [Val::Bool(false)];
        func.call(&mut store, &[], &mut results).expect("call");
    };
    for _ in 0..WARMUP {
        once();
    }
    let mut samples: Vec<Duration> = (0..SAMPLES)
        .map(|_| {
            let started = Instant::now();
            once();
            started.elapsed()
        })
        .collect();
    samples.sort();
    (percentile_us(&samples, 0.5), percentile_us(&samples, 0.99))
}
