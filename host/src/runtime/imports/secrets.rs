//! `secrets`: keys of Secrets in the resource's own namespace.

use super::CallContext;
use crate::runtime::model::SecretError;

/// Reads one key.
pub async fn read(call: &mut CallContext, name: String, key: String) -> Result<String, SecretError> {
    let Some(reader) = call.secrets.clone() else {
        return Err(SecretError::Forbidden(
            "capability read-secrets not granted to this component".into(),
        ));
    };
    reader.read(name, key).await
}
