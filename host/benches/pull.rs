//! Pull and compile time of each shipped component, from the test bed's
//! real OCI registry (`make bench`; needs `make testbed-up`).
//!
//! Each component is pushed once, then pulled (manifest and layer, both
//! verified) and compiled into a fresh runtime without a disk cache, five
//! times; then loaded again from a warm compile cache. Prints the medians.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use keycloak_operator::delivery::{OciClient, OciSettings, PinnedReference};
use keycloak_operator::runtime::model::Capability;
use keycloak_operator::runtime::{Runtime, RuntimeSettings};
use oci_client::secrets::RegistryAuth;

const ROUNDS: usize = 5;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `OCI_REGISTRY` from the environment or the bed's `.testbed/env`.
fn registry() -> String {
    if let Ok(registry) = std::env::var("OCI_REGISTRY") {
        return registry;
    }
    let env = std::fs::read_to_string(repo_root().join(".testbed/env")).unwrap_or_default();
    env.lines()
        .find_map(|line| line.strip_prefix("export OCI_REGISTRY='"))
        .and_then(|rest| rest.strip_suffix('\''))
        .map(str::to_owned)
        .expect("no OCI registry: run `make testbed-up` first")
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let registry = registry();
    let client = OciClient::new(OciSettings {
        insecure_registries: vec![registry.clone()],
        ..OciSettings::default()
    });
    let components = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
        .join("components");
    let cache = std::env::temp_dir().join(format!("pull-bench-cache-{}", std::process::id()));
    println!("pull and compile of the shipped components from {registry} (median of {ROUNDS})");
    println!(
        "{:<28} {:>9} {:>9} {:>11} {:>14}",
        "component", "size KiB", "pull ms", "compile ms", "warm load ms"
    );
    for file in [
        "keycloak_component.wasm",
        "realm_component.wasm",
        "client_component.wasm",
    ] {
        let path = components.join(file);
        let bytes = std::fs::read(&path).expect("built component: run `make components`");
        let pinned = client
            .push(
                &format!(
                    "{registry}/bench/{}:latest",
                    file.trim_end_matches(".wasm").replace('_', "-")
                ),
                bytes.clone(),
                &RegistryAuth::Anonymous,
            )
            .await
            .expect("push");
        let pinned = PinnedReference::parse(&pinned).expect("pinned reference");
        let (mut pulls, mut compiles) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let started = Instant::now();
            let pulled = client.pull(&pinned, &RegistryAuth::Anonymous).await.expect("pull");
            pulls.push(started.elapsed());
            let runtime = Runtime::new(RuntimeSettings::default()).expect("runtime");
            let policy = runtime.policy([Capability::KeycloakAdmin, Capability::ReadSecrets]);
            let started = Instant::now();
            runtime
                .load_bytes(&pulled.bytes, Path::new(&pinned.text), &policy)
                .await
                .expect("load");
            compiles.push(started.elapsed());
        }
        let runtime = Runtime::new(RuntimeSettings {
            cache_dir: Some(cache.clone()),
            ..RuntimeSettings::default()
        })
        .expect("runtime");
        let policy = runtime.policy([Capability::KeycloakAdmin, Capability::ReadSecrets]);
        runtime.load_bytes(&bytes, &path, &policy).await.expect("first load");
        let mut warm = Vec::new();
        for _ in 0..ROUNDS {
            let started = Instant::now();
            runtime.load_bytes(&bytes, &path, &policy).await.expect("warm load");
            warm.push(started.elapsed());
        }
        println!(
            "{:<28} {:>9} {:>9} {:>11} {:>14}",
            file,
            bytes.len() / 1024,
            ms(median(pulls)),
            ms(median(compiles)),
            ms(median(warm))
        );
    }
    let _ = std::fs::remove_dir_all(cache);
}
