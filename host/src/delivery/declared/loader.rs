//! Getting one declared version ready to serve: the grants and limits of
//! its declaration as a policy, the artifact from the local store or the
//! registry (with the pull Secret), compiled and checked. What goes wrong
//! becomes a [`Failure`] with a stable reason.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use keycloak_operator_api::{ComponentLimits, Grant, component_reasons};
use kube::Client;
use kube::api::Api;
use oci_client::secrets::RegistryAuth;

use crate::config::duration;
use crate::delivery::oci::{OciClient, OciError, PinnedReference, PulledComponent};
use crate::delivery::pull_secret::registry_auth;
use crate::delivery::store::ArtifactStore;
use crate::metrics::Metrics;
use crate::runtime::model::Capability;
use crate::runtime::registry::Registry;
use crate::runtime::{CallLimits, LoadError, LoadedComponent, Policy};

/// Why a declared version is not serving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Failure {
    pub(super) reason: &'static str,
    pub(super) message: String,
    /// Retried with backoff (a registry down) rather than waiting for a
    /// change of the spec.
    pub(super) transient: bool,
}

impl Failure {
    pub(super) fn stalled(reason: &'static str, message: impl Into<String>) -> Self {
        Failure {
            reason,
            message: message.into(),
            transient: false,
        }
    }

    pub(super) fn transient(reason: &'static str, message: impl Into<String>) -> Self {
        Failure {
            reason,
            message: message.into(),
            transient: true,
        }
    }
}

fn capability(grant: Grant) -> Capability {
    match grant {
        Grant::KeycloakAdmin => Capability::KeycloakAdmin,
        Grant::ReadSecrets => Capability::ReadSecrets,
    }
}

pub(super) fn load_failure(error: &LoadError) -> Failure {
    let message = error.to_string();
    match error {
        LoadError::NotGranted { .. } => Failure::stalled(component_reasons::CAPABILITY_NOT_GRANTED, message),
        LoadError::InvalidDescription { .. } => Failure::stalled(component_reasons::INVALID_COMPONENT, message),
        LoadError::InvalidLimits { .. } => Failure::stalled(component_reasons::INVALID_LIMITS, message),
        LoadError::Read { .. } | LoadError::Compile { .. } | LoadError::Link { .. } | LoadError::Describe { .. } => {
            Failure::stalled(component_reasons::COMPILE_FAILED, message)
        }
    }
}

fn pull_failure(error: &OciError) -> Failure {
    let message = error.to_string();
    match error {
        OciError::Pull { .. } | OciError::Push { .. } => Failure::transient(component_reasons::PULL_FAILED, message),
        OciError::InvalidReference { .. } => Failure::stalled(component_reasons::PULL_FAILED, message),
        OciError::DigestMismatch { .. } => Failure::stalled(component_reasons::DIGEST_MISMATCH, message),
        OciError::NotAComponent { .. } => Failure::stalled(component_reasons::NOT_A_COMPONENT, message),
    }
}

/// Loads declared versions.
pub(super) struct Loader {
    pub(super) client: Client,
    pub(super) registry: Arc<Registry>,
    pub(super) metrics: Arc<Metrics>,
    pub(super) oci: OciClient,
    pub(super) store: ArtifactStore,
    /// Where pull Secrets are read: the operator's own namespace.
    pub(super) operator_namespace: String,
}

impl Loader {
    /// What a declaration grants: capabilities, child kinds and limits.
    pub(super) fn policy(
        &self,
        limits: &ComponentLimits,
        grants: &[Grant],
        child_kinds: &[String],
    ) -> Result<Policy, Failure> {
        let defaults = self.registry.runtime().default_limits();
        let time = |value: &Option<String>, default: Duration, field: &str| match value {
            None => Ok(default),
            Some(text) => duration::parse(text)
                .map_err(|e| Failure::stalled(component_reasons::INVALID_LIMITS, format!("spec.limits.{field}: {e}"))),
        };
        Ok(Policy {
            grants: grants.iter().copied().map(capability).collect::<BTreeSet<_>>(),
            child_kinds: Some(child_kinds.iter().cloned().collect()),
            limits: CallLimits {
                memory_bytes: limits
                    .memory_mib
                    .map_or(defaults.memory_bytes, |mib| (mib as usize) << 20),
                guest_time: time(&limits.guest_time_limit, defaults.guest_time, "guestTimeLimit")?,
                wall_time: time(&limits.wall_time_limit, defaults.wall_time, "wallTimeLimit")?,
            },
        })
    }

    /// Pulls (or takes from the store), compiles and checks a version.
    pub(super) async fn load(
        &self,
        kind: &str,
        oci: &str,
        policy: &Policy,
        pull_secret: Option<&str>,
    ) -> Result<Arc<LoadedComponent>, Failure> {
        let pinned = PinnedReference::parse(oci).map_err(|e| pull_failure(&e))?;
        let pulled = match self.store.get(&pinned.digest) {
            Some(pulled) => pulled,
            None => {
                let pulled = self.pull(&pinned, pull_secret).await?;
                self.store.put(&pinned.digest, &pulled);
                pulled
            }
        };
        // Loaded with every grant first, so that a component for another kind
        // is reported as that (KindMismatch), not as asking too much for this one.
        let everything = Policy {
            grants: [Capability::KeycloakAdmin, Capability::ReadSecrets].into(),
            child_kinds: None,
            limits: policy.limits,
        };
        let component = self
            .registry
            .runtime()
            .load_bytes(&pulled.bytes, Path::new(oci), &everything)
            .await
            .map_err(|e| load_failure(&e))?;
        let served = component.description.kind_key();
        if served != kind {
            return Err(Failure::stalled(
                component_reasons::KIND_MISMATCH,
                format!(
                    "{oci} serves {served}, not {kind} ({}); a ReconcilerComponent declares one kind",
                    component.label()
                ),
            ));
        }
        let missing = component.missing_grants(policy);
        if !missing.is_empty() {
            return Err(Failure::stalled(
                component_reasons::CAPABILITY_NOT_GRANTED,
                format!(
                    "{oci} ({}) asks for what this declaration does not grant: {} (spec.grants, spec.childKinds)",
                    component.label(),
                    missing.join(", ")
                ),
            ));
        }
        Ok(Arc::new(component.with_policy(policy).map_err(|e| load_failure(&e))?))
    }

    async fn pull(&self, pinned: &PinnedReference, pull_secret: Option<&str>) -> Result<PulledComponent, Failure> {
        let auth = match pull_secret {
            None => RegistryAuth::Anonymous,
            Some(name) => {
                let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.operator_namespace);
                let namespace = &self.operator_namespace;
                let secret = secrets.get_opt(name).await.map_err(|e| {
                    Failure::transient(
                        component_reasons::PULL_SECRET_INVALID,
                        format!("cannot read the pull Secret {namespace}/{name}: {e}"),
                    )
                })?;
                let secret = secret.ok_or_else(|| {
                    Failure::transient(
                        component_reasons::PULL_SECRET_INVALID,
                        format!("the pull Secret {namespace}/{name} does not exist (pull Secrets are read from the operator's namespace only)"),
                    )
                })?;
                registry_auth(&secret, pinned.registry())
                    .map_err(|m| Failure::stalled(component_reasons::PULL_SECRET_INVALID, m))?
            }
        };
        let started = std::time::Instant::now();
        let pulled = self.oci.pull(pinned, &auth).await;
        let result = if pulled.is_ok() { "pulled" } else { "failed" };
        self.metrics.component_pulls.with_label_values(&[result]).inc();
        self.metrics
            .component_pull_duration
            .observe(started.elapsed().as_secs_f64());
        pulled.map_err(|e| pull_failure(&e))
    }
}
