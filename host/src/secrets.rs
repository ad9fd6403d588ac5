//! Secrets as a host capability: a component granted `read-secrets` reads
//! keys of Secrets in its resource's own namespace, never another's, one
//! `get` each.

use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt};

use crate::capability::{HostCapability, Preparation, Refusal};
use crate::controller::informer::{Informer, ObjectKey};
use crate::runtime::imports::SecretReader;
use crate::runtime::model::{Capability, Description, SecretError};

/// The Secrets capability.
pub struct SecretAccess {
    client: Client,
}

impl SecretAccess {
    /// Secrets read with `client`.
    pub fn new(client: Client) -> Self {
        SecretAccess { client }
    }
}

impl HostCapability for SecretAccess {
    fn watches(&self, _description: &Description) -> Vec<Arc<Informer>> {
        Vec::new()
    }

    fn affected(&self, _informer: &Informer, _key: &ObjectKey, _parents: &Informer) -> Vec<ObjectKey> {
        Vec::new()
    }

    fn prepare(&self, call: &mut Preparation<'_>) -> Result<(), Refusal> {
        if call.grants.contains(&Capability::ReadSecrets) {
            let namespace = call.object.namespace().unwrap_or_default();
            call.secrets = Some(Arc::new(NamespaceSecrets::new(self.client.clone(), &namespace)));
        }
        Ok(())
    }
}

/// Reads a Secret key in one namespace for the `secrets` import.
pub struct NamespaceSecrets {
    api: Api<Secret>,
    namespace: String,
}

impl NamespaceSecrets {
    /// Secrets of `namespace`.
    pub fn new(client: Client, namespace: &str) -> Self {
        NamespaceSecrets {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
        }
    }
}

impl SecretReader for NamespaceSecrets {
    fn read(&self, name: String, key: String) -> BoxFuture<'_, Result<String, SecretError>> {
        Box::pin(async move {
            let secret = self
                .api
                .get_opt(&name)
                .await
                .map_err(|e| SecretError::Unavailable(format!("reading Secret {}/{name}: {e}", self.namespace)))?
                .ok_or_else(|| SecretError::NotFound(format!("Secret {}/{name} does not exist", self.namespace)))?;
            let bytes = secret
                .data
                .and_then(|mut d| d.remove(&key))
                .ok_or_else(|| SecretError::NotFound(format!("Secret {}/{name} has no key {key:?}", self.namespace)))?;
            String::from_utf8(bytes.0).map_err(|_| {
                SecretError::Invalid(format!("key {key:?} of Secret {}/{name} is not UTF-8", self.namespace))
            })
        })
    }
}
