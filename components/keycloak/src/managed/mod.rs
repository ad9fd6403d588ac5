//! The managed form: a Keycloak the operator runs.
//!
//! Every reconcile declares the whole desired state — Deployment, Services,
//! the bootstrap admin Secret, and the optional Ingress, NetworkPolicy and
//! PodDisruptionBudget — then reads the rollout. Only when every pod is
//! available does it talk to Keycloak: to read its version and, the first
//! time, to create the operator's own service-account client.

pub mod credentials;
pub mod database;
pub mod network;
pub mod rollout;
pub mod workload;

use keycloak_operator_api::Keycloak;
use keycloak_operator_api::managed::ManagedKeycloak;
use keycloak_operator_sdk::error::invalid_spec;
use keycloak_operator_sdk::{ReconcileError, Request, Response};
use serde_json::{Value, json};

use self::database::DatabaseWiring;
use self::rollout::Rollout;
use self::workload::Strategy;

/// How soon to look again while pods are starting.
const ROLLOUT_POLL_SECONDS: u32 = 10;

/// The desired children except the Secrets: what a managed Keycloak spec
/// turns into. Pure, so tests can dry-run it against a real API server.
pub fn workload_children(
    name: &str,
    namespace: &str,
    spec: &ManagedKeycloak,
    database: &DatabaseWiring,
    strategy: Strategy,
) -> Vec<Value> {
    let mut children = vec![workload::deployment(name, namespace, spec, database, strategy)];
    children.extend(network::services(name, spec));
    children.extend(network::disruption_budget(name, spec));
    children.extend(network::ingress(name, spec));
    children.extend(network::network_policy(name, namespace, spec));
    children
}

fn with_children(mut response: Response, children: Vec<Value>) -> Result<Response, ReconcileError> {
    for child in children {
        response = response.child(child)?;
    }
    Ok(response)
}

/// Converges a managed Keycloak.
pub fn reconcile(request: &Request, resource: &Keycloak, spec: &ManagedKeycloak) -> Result<Response, ReconcileError> {
    let name = request.name();
    let namespace = request.namespace();
    let database = DatabaseWiring::of(&spec.database, namespace)?;
    if database.is_dev() && spec.replicas > 1 {
        return Err(invalid_spec(
            "DevDatabaseSingleReplica",
            "the dev database lives in the pod: replicas must be 1",
        ));
    }
    database.check()?;

    let observed = request
        .children_of_kind("Deployment")
        .find(|d| d.pointer("/metadata/name").and_then(Value::as_str) == Some(name));
    let strategy = workload::strategy(spec, observed);
    let upgrading = workload::upgrading_from(spec, observed);
    let mut children = workload_children(name, namespace, spec, &database, strategy);
    if let (Some(from), Some(deployment)) = (&upgrading, children.first_mut()) {
        deployment["metadata"]["annotations"] = json!({ workload::UPGRADING_FROM: from });
    }
    children.push(credentials::bootstrap_secret(request, name)?);
    let operator_secret = credentials::operator_secret(request, name);
    children.extend(operator_secret.clone());

    let url = request.target.as_ref().map(|t| t.url.clone()).unwrap_or_default();
    let pods: Vec<&Value> = request.related_of_kind_all("Pod").collect();
    let rollout = rollout::assess(observed, &pods, spec.replicas);
    let available = match &rollout {
        Rollout::Available { available } | Rollout::InProgress { available, .. } | Rollout::Stuck { available, .. } => {
            *available
        }
    };
    let mut status = json!({
        "url": url,
        "availableReplicas": available,
        "operatorCredentials": if operator_secret.is_some() { "ServiceAccount" } else { "BootstrapAdmin" },
        "version": resource.status.as_ref().and_then(|s| s.version.clone()),
    });

    let response = match rollout {
        Rollout::Stuck { detail, .. } => Response::stalled(&detail.reason, detail.message),
        Rollout::InProgress { detail, .. } => {
            let message = match (&upgrading, strategy) {
                (Some(from), Strategy::Recreate) => format!(
                    "upgrading Keycloak from {from} to {}: every pod is replaced at once, because Keycloak migrates its database schema ({})",
                    spec.version(),
                    detail.message
                ),
                (Some(from), Strategy::Rolling) => format!(
                    "upgrading Keycloak from {from} to {} ({})",
                    spec.version(),
                    detail.message
                ),
                (None, _) => detail.message,
            };
            Response::progressing(&detail.reason, message).requeue_after(ROLLOUT_POLL_SECONDS)
        }
        Rollout::Available { available } => match crate::external::server_version() {
            Err(error) => {
                let why = match &error {
                    ReconcileError::Transient(d) | ReconcileError::Permanent(d) | ReconcileError::InvalidSpec(d) => {
                        d.message.clone()
                    }
                };
                Response::progressing(
                    "KeycloakStarting",
                    format!("{available} pod(s) available; Keycloak does not answer yet: {why}"),
                )
                .requeue_after(ROLLOUT_POLL_SECONDS)
            }
            Ok(version) => {
                status["version"] = json!(version);
                if operator_secret.is_none() {
                    let created = credentials::create_operator_client(request, name)?;
                    children.push(created);
                    status["operatorCredentials"] = json!("ServiceAccount");
                }
                let ready = Response::ready(
                    "Running",
                    format!("Keycloak {version} runs on {available} pod(s) and answers at {url}"),
                )
                .requeue_after(crate::external::HEALTH_INTERVAL_SECONDS);
                if request.condition_is("Ready", true) {
                    ready
                } else {
                    ready.event("KeycloakRunning", "Rollout", format!("Keycloak {version} is available"))
                }
            }
        },
    };
    let mut response = with_children(response, children)?.status(status)?;
    if database.is_dev() {
        response = response.condition(
            "ProductionReady",
            false,
            "DevDatabase",
            "the embedded dev database keeps its data in the pod and loses it with the pod; never use it in production",
        );
    } else {
        response = response.condition(
            "ProductionReady",
            true,
            "ExternalDatabase",
            "data is kept in PostgreSQL",
        );
    }
    Ok(response)
}
