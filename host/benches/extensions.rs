//! What a component written in JavaScript costs beside one written in Rust.
//!
//! Run with `make bench` (or `cargo bench -p keycloak-operator --bench extensions`
//! after `make components extensions`). Prints, for the JavaScript
//! `KeycloakUser` (extensions/keycloak-user, componentize-js) and the Rust
//! template (components/template, the smallest component on the SDK):
//! - the component's size, the time to compile it and the size of the
//!   compiled artifact the cache keeps, and a start from that cache;
//! - the smallest memory limit its steady-state reconcile runs within;
//! - per reconcile in steady state — a fresh store, instantiation, one call
//!   whose Keycloak answers come from memory, the drop — median and p99;
//! - the template's line count.
//!
//! The Keycloak here is a map in memory that keeps what is written to it, so
//! that after one call both components find everything converged; the bench
//! fails if a measured call writes.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use keycloak_operator::runtime::engine::{EngineSettings, RuntimeEngine};
use keycloak_operator::runtime::imports::{CallContext, KeycloakGateway};
use keycloak_operator::runtime::model::{
    Capability, KeycloakError, KeycloakRequest, KeycloakResponse, Method, ReconcileRequest,
};
use keycloak_operator::runtime::{CallLimits, LoadedComponent, Policy, Runtime, RuntimeSettings};
use serde_json::{Value, json};

mod common;
use common::{component, percentile_us, request_in_bench_realm};

const UID: &str = "0000-bench";
const COMPILES: usize = 3;

/// Keycloak as a map from route (with its placeholders filled) to object.
/// A PUT replaces the object; anything not in the map is a 404.
struct MemoryKeycloak {
    objects: Mutex<HashMap<String, Value>>,
    writes: AtomicUsize,
}

impl MemoryKeycloak {
    fn new(objects: impl IntoIterator<Item = (String, Value)>) -> Arc<Self> {
        Arc::new(MemoryKeycloak {
            objects: Mutex::new(objects.into_iter().collect()),
            writes: AtomicUsize::new(0),
        })
    }

    fn path(request: &KeycloakRequest) -> String {
        let mut path = String::new();
        let mut params = request.params.iter();
        for (i, piece) in request.route.split('{').enumerate() {
            match (i, piece.split_once('}')) {
                (0, _) | (_, None) => path.push_str(piece),
                (_, Some((_, rest))) => {
                    path.push_str(params.next().map(String::as_str).unwrap_or_default());
                    path.push_str(rest);
                }
            }
        }
        path
    }
}

impl KeycloakGateway for MemoryKeycloak {
    fn send(&self, request: KeycloakRequest) -> BoxFuture<'_, Result<KeycloakResponse, KeycloakError>> {
        Box::pin(async move {
            let path = Self::path(&request);
            let mut objects = self.objects.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let (status, body) = match request.method {
                Method::Get => match objects.get(&path) {
                    Some(object) => (200, object.to_string()),
                    None => (404, String::new()),
                },
                Method::Put => {
                    self.writes.fetch_add(1, Ordering::Relaxed);
                    let body: Value = serde_json::from_str(request.body.as_deref().unwrap_or("{}")).unwrap_or_default();
                    // A user list answers the lookup by username: keep it in step.
                    if let Some(list) = objects.get_mut(path.rsplit_once('/').map_or("", |(parent, _)| parent))
                        && let Some(first) = list.as_array_mut().and_then(|l| l.first_mut())
                    {
                        *first = body.clone();
                    }
                    objects.insert(path, body);
                    (204, String::new())
                }
                Method::Post | Method::Delete => {
                    self.writes.fetch_add(1, Ordering::Relaxed);
                    (405, String::new())
                }
            };
            Ok(KeycloakResponse {
                status,
                location: None,
                body,
            })
        })
    }
}

/// The owner attributes as lists, the way users and roles hold them.
fn owner_attributes(kind: &str) -> Value {
    json!({
        "keycloak.wasmop.dev/owner-uid": [UID],
        "keycloak.wasmop.dev/owner-namespace": ["bench"],
        "keycloak.wasmop.dev/owner-name": ["bench"],
        "keycloak.wasmop.dev/owner-kind": [kind],
    })
}

fn request(api_version: &str, kind: &str, spec: Value) -> ReconcileRequest {
    let parent = json!({
        "apiVersion": api_version, "kind": kind,
        "metadata": {"name": "bench", "namespace": "bench", "uid": UID, "generation": 1},
        "spec": spec,
        "status": {"observedGeneration": 1},
    });
    request_in_bench_realm(&parent)
}

/// A measured component: its file, a steady-state request and its Keycloak.
struct Case {
    name: &'static str,
    file: &'static str,
    request: ReconcileRequest,
    keycloak: Arc<MemoryKeycloak>,
}

fn javascript_user() -> Case {
    let user = json!({
        "id": "u-1", "username": "alice", "email": "alice@example.org", "enabled": true,
        "attributes": owner_attributes("KeycloakUser"), "requiredActions": [],
    });
    Case {
        name: "JavaScript KeycloakUser",
        file: "keycloak_user.wasm",
        request: request(
            "users.extensions.wasmop.dev/v1alpha1",
            "KeycloakUser",
            json!({"realmRef": {"name": "shop"}, "username": "alice", "email": "alice@example.org"}),
        ),
        keycloak: MemoryKeycloak::new([
            ("/realms/bench/users".to_owned(), json!([user])),
            ("/realms/bench/users/u-1".to_owned(), user),
            (
                "/realms/bench/users/profile".to_owned(),
                json!({"unmanagedAttributePolicy": "ADMIN_EDIT"}),
            ),
        ]),
    }
}

fn rust_template() -> Case {
    let role =
        json!({"name": "auditor", "description": "reads the books", "attributes": owner_attributes("ExampleRole")});
    Case {
        name: "Rust template (ExampleRole)",
        file: "template_component.wasm",
        request: request(
            "example.com/v1alpha1",
            "ExampleRole",
            json!({"realmRef": {"name": "shop"}, "name": "auditor", "description": "reads the books"}),
        ),
        keycloak: MemoryKeycloak::new([("/realms/bench/roles/auditor".to_owned(), role)]),
    }
}

/// One reconcile; the number of Keycloak requests it sent.
async fn call(component: &LoadedComponent, case: &Case) -> Result<u32, String> {
    let mut context = CallContext::bare("bench", "bench");
    context.keycloak = Some(case.keycloak.clone() as Arc<dyn KeycloakGateway>);
    let called = component.reconcile(context, &case.request).await;
    match called.result {
        Ok(Ok(_)) if called.stats.refusal.is_none() => Ok(called.stats.keycloak_requests),
        other => Err(format!("{other:?} (refusal: {:?})", called.stats.refusal)),
    }
}

/// Median and p99 in µs, and the Keycloak requests of one call.
async fn latency(component: &LoadedComponent, case: &Case, warmup: usize, samples: usize) -> (f64, f64, u32) {
    for _ in 0..warmup {
        call(component, case).await.expect("a steady-state reconcile");
    }
    let writes = case.keycloak.writes.load(Ordering::Relaxed);
    let mut durations: Vec<Duration> = Vec::with_capacity(samples);
    let mut requests = 0;
    for _ in 0..samples {
        let started = Instant::now();
        requests = call(component, case).await.expect("a steady-state reconcile");
        durations.push(started.elapsed());
    }
    assert_eq!(
        case.keycloak.writes.load(Ordering::Relaxed),
        writes,
        "{}: a steady-state reconcile wrote to Keycloak",
        case.name
    );
    durations.sort();
    (
        percentile_us(&durations, 0.5),
        percentile_us(&durations, 0.99),
        requests,
    )
}

/// The smallest of a few memory limits under which the steady-state
/// reconcile still succeeds.
async fn smallest_memory_limit(runtime: &Arc<Runtime>, path: &Path, case: &Case) -> Option<usize> {
    for mib in [1, 2, 4, 6, 8, 10, 12, 16, 24, 32, 48, 64] {
        let policy = Policy {
            grants: [Capability::KeycloakAdmin, Capability::ReadSecrets].into(),
            child_kinds: None,
            limits: CallLimits {
                memory_bytes: mib << 20,
                ..runtime.default_limits()
            },
        };
        let Ok(loaded) = runtime.load(path, &policy).await else {
            continue;
        };
        if call(&loaded, case).await.is_ok() {
            return Some(mib);
        }
    }
    None
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let engine = RuntimeEngine::new(&EngineSettings::default()).expect("engine");
    let cache = std::env::temp_dir().join(format!("keycloak-operator-bench-extensions-{}", std::process::id()));
    let settings = || RuntimeSettings {
        cache_dir: Some(cache.clone()),
        ..RuntimeSettings::default()
    };
    println!("JavaScript (componentize-js 0.23.0) beside Rust (SDK), same host, default engine");
    println!();
    println!(
        "{:<28} {:>9} {:>11} {:>12} {:>11} {:>9} {:>10} {:>8} {:>7} {:>7}",
        "component",
        "wasm MiB",
        "compile s",
        "compiled MiB",
        "cached ms",
        "mem MiB",
        "median µs",
        "p99 µs",
        "GETs",
        "calls"
    );
    for case in [rust_template(), javascript_user()] {
        let path = component(case.file);
        let bytes = std::fs::read(&path).expect("component bytes");
        let mut compiled_len = 0;
        let compiles: Vec<Duration> = (0..COMPILES)
            .map(|_| {
                let started = Instant::now();
                compiled_len = engine.engine.precompile_component(&bytes).expect("compile").len();
                started.elapsed()
            })
            .collect();
        // Fill the disk cache, then start the way a restarted operator does.
        let first = Runtime::new(settings()).expect("runtime");
        let policy = first.policy([Capability::KeycloakAdmin, Capability::ReadSecrets]);
        first.load(&path, &policy).await.expect("first load");
        let runtime = Runtime::new(settings()).expect("runtime");
        let started = Instant::now();
        let loaded = runtime.load(&path, &policy).await.expect("load from the cache");
        let cached = started.elapsed();
        assert!(loaded.from_cache, "the second start must come from the cache");
        let memory = smallest_memory_limit(&runtime, &path, &case)
            .await
            .map_or("> 64".to_owned(), |m| m.to_string());
        let (warmup, samples) = if case.file.ends_with("user.wasm") {
            (200, 2_000)
        } else {
            (2_000, 20_000)
        };
        let (p50, p99, requests) = latency(&loaded, &case, warmup, samples).await;
        println!(
            "{:<28} {:>9.2} {:>11.2} {:>12.1} {:>11.1} {:>9} {:>10.1} {:>8.1} {:>7} {:>7}",
            case.name,
            mib(bytes.len()),
            median(compiles).as_secs_f64(),
            mib(compiled_len),
            cached.as_secs_f64() * 1e3,
            memory,
            p50,
            p99,
            requests,
            samples
        );
    }
    let template = include_str!("../../components/template/src/lib.rs");
    let code = template
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("//"))
        .count();
    println!();
    println!(
        "compile s: median of {COMPILES} compilations (Engine::precompile_component); cached ms: a new runtime loading it from the disk cache (read, deserialise, link, describe)"
    );
    println!(
        "mem MiB: the smallest memory limit (of 1, 2, 4, 6, 8, 10, 12, 16, 24, 32, 48, 64) a steady-state reconcile runs within"
    );
    println!(
        "median/p99: fresh Store + instantiate + reconcile + drop, Keycloak answered from memory (no network), no writes;"
    );
    println!("GETs: the Keycloak requests of one such reconcile (all reads)");
    println!(
        "smallest Rust component on the SDK: components/template/src/lib.rs, {} lines, {code} of them code (no blanks, no comments)",
        template.lines().count()
    );
    let _ = std::fs::remove_dir_all(&cache);
}
