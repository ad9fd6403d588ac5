//! What the host's benchmarks share: where the built components are, and
//! how a sample of durations is summarised.

use std::path::PathBuf;
use std::time::Duration;

/// `target/components`, where `make components` and `make extensions` put
/// the built components.
pub fn components_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("components")
}

/// A built component, or a panic that says how to build it.
pub fn component(file: &str) -> PathBuf {
    let path = components_dir().join(file);
    assert!(
        path.exists(),
        "{} is missing: run `make components extensions` first",
        path.display()
    );
    path
}

/// The `p` quantile of sorted samples, in microseconds.
pub fn percentile_us(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index].as_secs_f64() * 1e6
}

/// A reconcile request for `parent`, placed in realm `bench` of Keycloak
/// `bench/sso` (which nothing reaches: the benches answer from memory).
pub fn request_in_bench_realm(parent: &serde_json::Value) -> keycloak_operator::runtime::model::ReconcileRequest {
    keycloak_operator::runtime::model::ReconcileRequest {
        parent: parent.to_string(),
        children: vec![],
        related: vec![],
        target: Some(keycloak_operator::runtime::model::Target {
            keycloak: "bench/sso".into(),
            url: "http://keycloak.invalid".into(),
            realm: Some("bench".into()),
        }),
    }
}
