//! Prometheus metrics of the host, served on `/metrics`.

use std::collections::HashSet;
use std::sync::Mutex;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Distinct Keycloak route templates tracked before new ones are counted as
/// `other`: templates come from components, which must not be able to blow
/// up the label space.
const MAX_ROUTES: usize = 256;

/// Every metric the host exports.
pub struct Metrics {
    registry: Registry,
    /// Reconciles by kind and result (`ready`, `progressing`, `error`, `failed`).
    pub reconciles: IntCounterVec,
    /// Reconcile duration by kind, including Keycloak calls.
    pub reconcile_duration: HistogramVec,
    /// Time inside Keycloak calls per reconcile, by kind.
    pub reconcile_keycloak_duration: HistogramVec,
    /// Reconcile errors by kind and condition reason.
    pub reconcile_errors: IntCounterVec,
    /// Managed fields found drifted in Keycloak and reverted, by kind.
    pub drift_corrections: IntCounterVec,
    /// Reconciles that ended in a panic of the host's own code, by kind.
    pub reconcile_panics: IntCounterVec,
    /// Keycloak admin events read, by instance and whether the operator
    /// made the change (`operator`) or someone else (`other`).
    pub admin_events: IntCounterVec,
    /// Resources requeued because an admin event changed their objects, by kind.
    pub drift_requeues: IntCounterVec,
    /// Resources requeued because their Keycloak answers again.
    pub recovery_requeues: IntCounterVec,
    /// Keycloak requests by instance, method, route template and status code.
    pub keycloak_requests: IntCounterVec,
    /// Keycloak request duration by instance, method and route template.
    pub keycloak_request_duration: HistogramVec,
    /// Circuit state per instance: 0 closed, 1 half-open, 2 open.
    pub circuit_state: IntGaugeVec,
    /// Circuit state changes per instance and new state.
    pub circuit_transitions: IntCounterVec,
    /// Component loads by kind and result.
    pub component_loads: IntCounterVec,
    /// Component hot swaps by kind and result (`swapped`, `rejected`).
    pub component_swaps: IntCounterVec,
    /// The component version serving each kind (value 1).
    pub component_info: IntGaugeVec,
    /// Component pulls from OCI registries, by result (`pulled`, `failed`).
    pub component_pulls: IntCounterVec,
    /// Duration of component pulls.
    pub component_pull_duration: Histogram,
    /// Reconciles by a shadow candidate, by kind and result (`ready`,
    /// `progressing`, `stalled`, `failed`).
    pub shadow_reconciles: IntCounterVec,
    /// Keycloak writes a shadow candidate would have made, by kind.
    pub shadow_writes: IntCounterVec,
    /// Keys waiting in the work queue, by kind.
    pub queue_depth: IntGaugeVec,
    /// 1 while this replica holds the leader Lease.
    pub leader: IntGauge,
    routes: Mutex<HashSet<String>>,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let metric = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

fn histogram(registry: &Registry, name: &str, help: &str, labels: &[&str], buckets: Vec<f64>) -> HistogramVec {
    let metric =
        HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels).expect("valid metric definition");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric registered once");
    metric
}

impl Metrics {
    /// Registers every metric.
    #[allow(clippy::expect_used)]
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("keycloak_operator".into()), None).expect("valid prefix");
        let seconds = vec![
            0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        ];
        let leader = IntGauge::new("leader", "1 while this replica holds the leader Lease").expect("valid metric");
        registry
            .register(Box::new(leader.clone()))
            .expect("metric registered once");
        Metrics {
            reconciles: counter(
                &registry,
                "reconciles_total",
                "Reconciles by kind and result",
                &["kind", "result"],
            ),
            reconcile_duration: histogram(
                &registry,
                "reconcile_duration_seconds",
                "Reconcile duration",
                &["kind"],
                seconds.clone(),
            ),
            reconcile_keycloak_duration: histogram(
                &registry,
                "reconcile_keycloak_seconds",
                "Time spent in Keycloak calls per reconcile",
                &["kind"],
                seconds.clone(),
            ),
            reconcile_errors: counter(
                &registry,
                "reconcile_errors_total",
                "Reconcile errors by kind and reason",
                &["kind", "reason"],
            ),
            drift_corrections: counter(
                &registry,
                "drift_corrections_total",
                "Drifted managed fields reverted",
                &["kind"],
            ),
            reconcile_panics: counter(
                &registry,
                "reconcile_panics_total",
                "Reconciles ended by a panic in the host (a bug); the resource is retried with backoff",
                &["kind"],
            ),
            admin_events: counter(
                &registry,
                "keycloak_admin_events_total",
                "Keycloak admin events read to catch drift, by who made the change",
                &["keycloak", "source"],
            ),
            drift_requeues: counter(
                &registry,
                "drift_requeues_total",
                "Resources requeued because an admin event changed their Keycloak objects",
                &["kind"],
            ),
            recovery_requeues: counter(
                &registry,
                "recovery_requeues_total",
                "Resources requeued at once because the Keycloak they found unavailable answers again",
                &["kind"],
            ),
            keycloak_requests: counter(
                &registry,
                "keycloak_requests_total",
                "Keycloak admin requests by instance, method, route template and status",
                &["keycloak", "method", "route", "code"],
            ),
            keycloak_request_duration: histogram(
                &registry,
                "keycloak_request_duration_seconds",
                "Keycloak admin request duration",
                &["keycloak", "method", "route"],
                seconds.clone(),
            ),
            circuit_state: gauge(
                &registry,
                "keycloak_circuit_state",
                "Circuit state: 0 closed, 1 half-open, 2 open",
                &["keycloak"],
            ),
            circuit_transitions: counter(
                &registry,
                "keycloak_circuit_transitions_total",
                "Circuit state changes",
                &["keycloak", "state"],
            ),
            component_loads: counter(
                &registry,
                "component_loads_total",
                "Component loads by kind and result",
                &["kind", "result"],
            ),
            component_swaps: counter(
                &registry,
                "component_swaps_total",
                "Component hot swaps by kind and result",
                &["kind", "result"],
            ),
            component_info: gauge(
                &registry,
                "component_info",
                "The component version serving each kind",
                &["kind", "component", "version", "digest"],
            ),
            component_pulls: counter(
                &registry,
                "component_pulls_total",
                "Component pulls from OCI registries by result",
                &["result"],
            ),
            component_pull_duration: {
                let metric = Histogram::with_opts(
                    HistogramOpts::new("component_pull_duration_seconds", "Component pull duration")
                        .buckets(seconds.clone()),
                )
                .expect("valid metric definition");
                registry
                    .register(Box::new(metric.clone()))
                    .expect("metric registered once");
                metric
            },
            shadow_reconciles: counter(
                &registry,
                "shadow_reconciles_total",
                "Reconciles by a shadow candidate by kind and result",
                &["kind", "result"],
            ),
            shadow_writes: counter(
                &registry,
                "shadow_writes_total",
                "Keycloak writes a shadow candidate would have made",
                &["kind"],
            ),
            queue_depth: gauge(&registry, "queue_depth", "Keys waiting in the work queue", &["kind"]),
            leader,
            registry,
            routes: Mutex::new(HashSet::new()),
        }
    }

    /// Creates every series of a kind at zero when its controller starts, so
    /// that dashboards show the kind and alerts on increases see the first
    /// one (Prometheus has no sample before a series' first value).
    pub fn init_kind(&self, kind: &str) {
        for result in ["ready", "progressing", "retrying", "stalled"] {
            self.reconciles.with_label_values(&[kind, result]);
        }
        self.reconcile_duration.with_label_values(&[kind]);
        self.reconcile_keycloak_duration.with_label_values(&[kind]);
        self.drift_corrections.with_label_values(&[kind]);
        self.reconcile_panics.with_label_values(&[kind]);
        self.drift_requeues.with_label_values(&[kind]);
        self.recovery_requeues.with_label_values(&[kind]);
        for result in ["loaded", "failed"] {
            self.component_loads.with_label_values(&[kind, result]);
        }
        for result in ["swapped", "rejected"] {
            self.component_swaps.with_label_values(&[kind, result]);
        }
        self.queue_depth.with_label_values(&[kind]).set(0);
    }

    /// The route label for a template, bounded in number.
    pub fn route_label(&self, template: &str) -> String {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        if routes.contains(template) || (routes.len() < MAX_ROUTES && routes.insert(template.to_owned())) {
            template.to_owned()
        } else {
            "other".to_owned()
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::warn!(%error, "cannot encode metrics");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
