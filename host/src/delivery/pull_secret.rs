//! Registry credentials from a pull Secret (`kubernetes.io/dockerconfigjson`),
//! the format `kubectl create secret docker-registry` writes.

use std::collections::BTreeMap;

use base64::Engine;
use k8s_openapi::api::core::v1::Secret;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

/// The Secret type that holds registry credentials.
pub const DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";
const KEY: &str = ".dockerconfigjson";

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, rename = "identitytoken")]
    identity_token: Option<String>,
}

/// `https://registry.example:5000/v1/` → `registry.example:5000`; Docker
/// Hub's aliases → `index.docker.io`.
fn host_of(key: &str) -> &str {
    let without_scheme = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = without_scheme.split('/').next().unwrap_or(without_scheme);
    match host {
        "docker.io" | "registry-1.docker.io" => "index.docker.io",
        other => other,
    }
}

/// The credentials the Secret holds for `registry` (`host[:port]`). Never
/// returns the values in an error.
pub fn registry_auth(secret: &Secret, registry: &str) -> Result<RegistryAuth, String> {
    let name = secret.metadata.name.as_deref().unwrap_or_default();
    if secret.type_.as_deref() != Some(DOCKER_CONFIG_JSON) {
        return Err(format!(
            "Secret {name} has type {:?}; a pull Secret has type {DOCKER_CONFIG_JSON}",
            secret.type_.as_deref().unwrap_or("Opaque")
        ));
    }
    let data = secret
        .data
        .as_ref()
        .and_then(|d| d.get(KEY))
        .ok_or_else(|| format!("Secret {name} has no key {KEY}"))?;
    let config: DockerConfig =
        serde_json::from_slice(&data.0).map_err(|_| format!("Secret {name}: {KEY} is not a Docker config JSON"))?;
    let wanted = host_of(registry);
    let entry = config
        .auths
        .iter()
        .find(|(key, _)| host_of(key) == wanted)
        .map(|(_, entry)| entry)
        .ok_or_else(|| format!("Secret {name} holds no credentials for {registry}"))?;
    if let Some(token) = &entry.identity_token {
        return Ok(RegistryAuth::Bearer(token.clone()));
    }
    if let (Some(user), Some(password)) = (&entry.username, &entry.password) {
        return Ok(RegistryAuth::Basic(user.clone(), password.clone()));
    }
    let auth = entry
        .auth
        .as_deref()
        .ok_or_else(|| format!("Secret {name}: the entry for {registry} has neither auth nor username and password"))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| format!("Secret {name}: the auth of {registry} is not base64 of user:password"))?;
    let (user, password) = decoded
        .split_once(':')
        .ok_or_else(|| format!("Secret {name}: the auth of {registry} is not base64 of user:password"))?;
    Ok(RegistryAuth::Basic(user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn secret(type_: &str, json: &str) -> Secret {
        Secret {
            metadata: kube::api::ObjectMeta {
                name: Some("pull".into()),
                ..Default::default()
            },
            type_: Some(type_.into()),
            data: Some([(KEY.to_owned(), ByteString(json.as_bytes().to_vec()))].into()),
            ..Default::default()
        }
    }

    #[test]
    fn credentials_are_found_by_registry_host() {
        let auth = base64::engine::general_purpose::STANDARD.encode("robot:pa:ss");
        let s = secret(
            DOCKER_CONFIG_JSON,
            &format!(
                r#"{{"auths": {{"https://registry.example:5000/v1/": {{"auth": "{auth}"}}, "other.example": {{"username": "u", "password": "p"}}}}}}"#
            ),
        );
        assert!(matches!(
            registry_auth(&s, "registry.example:5000"),
            Ok(RegistryAuth::Basic(u, p)) if u == "robot" && p == "pa:ss"
        ));
        assert!(matches!(registry_auth(&s, "other.example"), Ok(RegistryAuth::Basic(u, _)) if u == "u"));
        assert!(registry_auth(&s, "third.example").is_err());
    }

    #[test]
    fn an_unusable_secret_is_refused_without_its_values() {
        let wrong_type = secret("Opaque", r#"{"auths": {}}"#);
        assert!(
            registry_auth(&wrong_type, "r")
                .expect_err("wrong type")
                .contains("kubernetes.io/dockerconfigjson")
        );
        let garbage = secret(DOCKER_CONFIG_JSON, r#"{"auths": {"r": {"auth": "not-base64!"}}}"#);
        let error = registry_auth(&garbage, "r").expect_err("garbage");
        assert!(!error.contains("not-base64!"), "{error}");
    }
}
