//! Components as OCI artifacts, in the layout `wkg` and wasmCloud use: an
//! image manifest whose config has the media type
//! `application/vnd.wasm.config.v0+json` and whose single layer is the
//! component (`application/wasm`).
//!
//! A pull is pinned by the manifest's digest, and both the manifest and the
//! layer are checked against their digests here, whatever the registry
//! claims: a registry (or anything between it and us) cannot swap the code.

use std::time::Duration;

use futures::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{DigestError, OciDistributionError};
use oci_client::manifest::{OCI_IMAGE_MEDIA_TYPE, OciDescriptor, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sha2::{Digest, Sha256};

/// Media type of the config blob of a component artifact.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// Media type of the component layer.
pub const LAYER_MEDIA_TYPE: &str = "application/wasm";
/// Older layer and config media types (wasm-to-oci) also accepted on pull.
const LEGACY_LAYER_MEDIA_TYPE: &str = "application/vnd.wasm.content.layer.v1+wasm";
const LEGACY_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v1+json";

/// Why a component could not be pulled or pushed.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// Not a reference pinned by a SHA-256 digest.
    #[error("{reference:?} is not an OCI reference pinned by digest: {message}")]
    InvalidReference {
        /// The reference as written.
        reference: String,
        /// What is wrong.
        message: String,
    },
    /// The registry could not be asked, refused, or does not hold it.
    #[error("pulling {reference} failed: {message}")]
    Pull {
        /// The reference.
        reference: String,
        /// The registry's or the transport's error.
        message: String,
    },
    /// What came back is not what the digest pins.
    #[error("{what} of {reference} does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The reference.
        reference: String,
        /// `the manifest` or `the component layer`.
        what: &'static str,
        /// The digest asked for.
        expected: String,
        /// The digest of what came.
        actual: String,
    },
    /// The artifact is not a component in the expected layout.
    #[error("{reference} is not a component artifact: {message}")]
    NotAComponent {
        /// The reference.
        reference: String,
        /// What is wrong.
        message: String,
    },
    /// Publishing failed.
    #[error("pushing to {reference} failed: {message}")]
    Push {
        /// The reference.
        reference: String,
        /// The registry's or the transport's error.
        message: String,
    },
}

/// A reference pinned by digest, such as
/// `registry.example/components/realm@sha256:…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedReference {
    reference: Reference,
    /// `sha256:<hex>` of the manifest.
    pub digest: String,
    /// The reference as written.
    pub text: String,
}

impl PinnedReference {
    /// Parses a reference; it must carry a SHA-256 digest.
    pub fn parse(text: &str) -> Result<Self, OciError> {
        let invalid = |message: String| OciError::InvalidReference {
            reference: text.to_owned(),
            message,
        };
        let reference: Reference = text.parse().map_err(|e| invalid(format!("{e}")))?;
        let digest = reference
            .digest()
            .ok_or_else(|| invalid("it has no @sha256:<digest>; a tag alone can change under you".into()))?
            .to_owned();
        let hex = digest
            .strip_prefix("sha256:")
            .ok_or_else(|| invalid("only sha256 digests are accepted".into()))?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(invalid("the digest is not 64 lower-case hex digits".into()));
        }
        let reference = Reference::with_digest(
            reference.registry().to_owned(),
            reference.repository().to_owned(),
            digest.clone(),
        );
        Ok(PinnedReference {
            reference,
            digest,
            text: text.to_owned(),
        })
    }

    /// The registry's host (and port).
    pub fn registry(&self) -> &str {
        self.reference.resolve_registry()
    }
}

/// A component as pulled and verified.
#[derive(Debug, Clone)]
pub struct PulledComponent {
    /// The component's bytes.
    pub bytes: Vec<u8>,
    /// `sha256:<hex>` of the bytes (the layer's digest).
    pub layer_digest: String,
}

/// Settings of registry access.
#[derive(Debug, Clone)]
pub struct OciSettings {
    /// Registries reached over plain HTTP (`host:port`), for a registry on a
    /// loopback address; every other registry is reached over HTTPS.
    pub insecure_registries: Vec<String>,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Largest component accepted, in bytes.
    pub max_component_bytes: u64,
}

impl Default for OciSettings {
    fn default() -> Self {
        OciSettings {
            insecure_registries: Vec::new(),
            timeout: Duration::from_secs(60),
            max_component_bytes: 64 << 20,
        }
    }
}

/// Pulls and pushes components.
pub struct OciClient {
    client: Client,
    settings: OciSettings,
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Serialises JSON the way registries and OCI tools hash it: canonical
/// (sorted keys, no insignificant white space), so that the digest printed
/// is the digest of the bytes sent.
fn canonical_json(value: &impl serde::Serialize) -> Result<Vec<u8>, serde_json::Error> {
    // serde_json's maps are sorted (no `preserve_order` feature) and its
    // compact writer adds no white space.
    serde_json::to_vec(&serde_json::to_value(value)?)
}

impl OciClient {
    /// A client with these settings.
    pub fn new(settings: OciSettings) -> Self {
        let config = ClientConfig {
            protocol: if settings.insecure_registries.is_empty() {
                ClientProtocol::Https
            } else {
                ClientProtocol::HttpsExcept(settings.insecure_registries.clone())
            },
            read_timeout: Some(settings.timeout),
            connect_timeout: Some(Duration::from_secs(10)),
            platform_resolver: None,
            user_agent: concat!("keycloak-operator/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        };
        OciClient {
            client: Client::new(config),
            settings,
        }
    }

    /// Pulls the component `pinned` names, checking the manifest and the
    /// layer against their digests and the artifact's layout.
    pub async fn pull(&self, pinned: &PinnedReference, auth: &RegistryAuth) -> Result<PulledComponent, OciError> {
        let reference = &pinned.text;
        let pull_error = |message: String| OciError::Pull {
            reference: reference.clone(),
            message,
        };
        let timeout = self.settings.timeout;
        let (raw, _) = tokio::time::timeout(
            timeout,
            self.client
                .pull_manifest_raw(&pinned.reference, auth, &[OCI_IMAGE_MEDIA_TYPE]),
        )
        .await
        .map_err(|_| pull_error(format!("the registry did not answer within {timeout:?}")))?
        .map_err(|e| refused(reference, "the manifest", e))?;
        let actual = sha256(&raw);
        if actual != pinned.digest {
            return Err(OciError::DigestMismatch {
                reference: reference.clone(),
                what: "the manifest",
                expected: pinned.digest.clone(),
                actual,
            });
        }
        let layer = self.component_layer(reference, &raw)?;
        let mut stream = tokio::time::timeout(timeout, self.client.pull_blob_stream(&pinned.reference, &layer))
            .await
            .map_err(|_| pull_error(format!("the registry did not answer within {timeout:?}")))?
            .map_err(|e| refused(reference, "the component layer", e))?;
        let mut bytes = Vec::with_capacity(usize::try_from(layer.size).unwrap_or(0));
        let limit = self.settings.max_component_bytes;
        let read = async {
            while let Some(chunk) = stream.stream.next().await {
                let chunk = chunk.map_err(|e| pull_error(e.to_string()))?;
                if bytes.len() as u64 + chunk.len() as u64 > limit {
                    return Err(OciError::NotAComponent {
                        reference: reference.clone(),
                        message: format!("the layer is larger than the {limit} bytes allowed"),
                    });
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(())
        };
        tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| pull_error(format!("the component did not arrive within {timeout:?}")))??;
        let layer_digest = sha256(&bytes);
        if layer_digest != layer.digest {
            return Err(OciError::DigestMismatch {
                reference: reference.clone(),
                what: "the component layer",
                expected: layer.digest,
                actual: layer_digest,
            });
        }
        Ok(PulledComponent { bytes, layer_digest })
    }

    /// The one component layer of a manifest, after checking the layout.
    fn component_layer(&self, reference: &str, raw: &[u8]) -> Result<OciDescriptor, OciError> {
        let not_a_component = |message: String| OciError::NotAComponent {
            reference: reference.to_owned(),
            message,
        };
        let manifest: OciImageManifest = serde_json::from_slice(raw)
            .map_err(|e| not_a_component(format!("the manifest is not an OCI image manifest: {e}")))?;
        let config = &manifest.config.media_type;
        if config != CONFIG_MEDIA_TYPE && config != LEGACY_CONFIG_MEDIA_TYPE {
            return Err(not_a_component(format!(
                "its config media type is {config}, not {CONFIG_MEDIA_TYPE}"
            )));
        }
        let [layer] = manifest.layers.as_slice() else {
            return Err(not_a_component(format!(
                "it has {} layers; a component artifact has exactly one",
                manifest.layers.len()
            )));
        };
        if layer.media_type != LAYER_MEDIA_TYPE && layer.media_type != LEGACY_LAYER_MEDIA_TYPE {
            return Err(not_a_component(format!(
                "its layer's media type is {}, not {LAYER_MEDIA_TYPE}",
                layer.media_type
            )));
        }
        if u64::try_from(layer.size).map_or(true, |size| size > self.settings.max_component_bytes) {
            return Err(not_a_component(format!(
                "its layer declares {} bytes; at most {} are accepted",
                layer.size, self.settings.max_component_bytes
            )));
        }
        Ok(layer.clone())
    }

    /// Publishes `component` under `target` (a tag or a bare repository) and
    /// returns the reference pinned by the manifest's digest.
    pub async fn push(&self, target: &str, component: Vec<u8>, auth: &RegistryAuth) -> Result<String, OciError> {
        let push_error = |message: String| OciError::Push {
            reference: target.to_owned(),
            message,
        };
        let reference: Reference = target.parse().map_err(|e| OciError::InvalidReference {
            reference: target.to_owned(),
            message: format!("{e}"),
        })?;
        let layer_digest = sha256(&component);
        // No creation time: the same component pushed twice gets the same
        // digest, so a pin in git names the code and nothing else.
        let config = canonical_json(&serde_json::json!({
            "architecture": "wasm",
            "os": "wasip2",
            "layerDigests": [layer_digest],
        }))
        .map_err(|e| push_error(e.to_string()))?;
        let config_digest = sha256(&config);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_IMAGE_MEDIA_TYPE,
            "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": config_digest, "size": config.len()},
            "layers": [{"mediaType": LAYER_MEDIA_TYPE, "digest": layer_digest, "size": component.len()}],
        });
        let manifest = canonical_json(&manifest).map_err(|e| push_error(e.to_string()))?;
        let manifest_digest = sha256(&manifest);
        self.client
            .store_auth_if_needed(reference.resolve_registry(), auth)
            .await;
        self.client
            .push_blob(&reference, component, &layer_digest)
            .await
            .map_err(|e| push_error(error_chain(&e)))?;
        self.client
            .push_blob(&reference, config, &config_digest)
            .await
            .map_err(|e| push_error(error_chain(&e)))?;
        self.client
            .push_manifest_raw(
                &reference,
                manifest,
                http::HeaderValue::from_static(OCI_IMAGE_MEDIA_TYPE),
            )
            .await
            .map_err(|e| push_error(error_chain(&e)))?;
        Ok(format!(
            "{}/{}@{manifest_digest}",
            reference.registry(),
            reference.repository()
        ))
    }
}

/// A pull the client gave up on: a digest it found wrong (oci-client checks
/// too) is a mismatch, anything else a failed pull.
fn refused(reference: &str, what: &'static str, error: OciDistributionError) -> OciError {
    match error {
        OciDistributionError::DigestError(DigestError::VerificationError { expected, actual }) => {
            OciError::DigestMismatch {
                reference: reference.to_owned(),
                what,
                expected,
                actual,
            }
        }
        other => OciError::Pull {
            reference: reference.to_owned(),
            message: error_chain(&other),
        },
    }
}

/// An error and its causes on one line (oci-client wraps reqwest's errors,
/// whose own text leaves the cause out).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn a_reference_must_be_pinned_by_a_sha256_digest() {
        let pinned = PinnedReference::parse(&format!("127.0.0.1:5000/components/realm@sha256:{HEX}")).expect("pinned");
        assert_eq!(pinned.digest, format!("sha256:{HEX}"));
        assert_eq!(pinned.registry(), "127.0.0.1:5000");
        let tagged = PinnedReference::parse(&format!("ghcr.io/x/realm:1.2@sha256:{HEX}")).expect("tag and digest");
        assert_eq!(tagged.digest, format!("sha256:{HEX}"));
        for bad in [
            "ghcr.io/x/realm:1.2".to_owned(),
            "ghcr.io/x/realm".to_owned(),
            format!("ghcr.io/x/realm@sha256:{}", &HEX[..10]),
            format!("ghcr.io/x/realm@sha512:{HEX}{HEX}"),
            "not a reference".to_owned(),
        ] {
            assert!(PinnedReference::parse(&bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn the_layout_is_checked_before_the_layer_is_pulled() {
        // As `main` does: reqwest is built without a default TLS provider.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = OciClient::new(OciSettings::default());
        let manifest = |config: &str, layers: &[(&str, i64)]| {
            serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_IMAGE_MEDIA_TYPE,
                "config": {"mediaType": config, "digest": format!("sha256:{HEX}"), "size": 2},
                "layers": layers.iter().map(|(t, size)| serde_json::json!({"mediaType": t, "digest": format!("sha256:{HEX}"), "size": size})).collect::<Vec<_>>(),
            }))
            .expect("json")
        };
        assert!(
            client
                .component_layer("r", &manifest(CONFIG_MEDIA_TYPE, &[(LAYER_MEDIA_TYPE, 10)]))
                .is_ok()
        );
        let refused = [
            manifest("application/vnd.oci.image.config.v1+json", &[(LAYER_MEDIA_TYPE, 10)]),
            manifest(CONFIG_MEDIA_TYPE, &[]),
            manifest(CONFIG_MEDIA_TYPE, &[(LAYER_MEDIA_TYPE, 10), (LAYER_MEDIA_TYPE, 10)]),
            manifest(CONFIG_MEDIA_TYPE, &[("application/vnd.oci.image.layer.v1.tar", 10)]),
            manifest(CONFIG_MEDIA_TYPE, &[(LAYER_MEDIA_TYPE, 1 << 40)]),
            b"{}".to_vec(),
        ];
        for raw in refused {
            assert!(matches!(
                client.component_layer("r", &raw),
                Err(OciError::NotAComponent { .. })
            ));
        }
    }

    #[test]
    fn canonical_json_sorts_keys_without_white_space() {
        let bytes = canonical_json(&serde_json::json!({"b": 1, "a": {"d": 2, "c": [3]}})).expect("json");
        assert_eq!(
            String::from_utf8(bytes).expect("utf-8"),
            r#"{"a":{"c":[3],"d":2},"b":1}"#
        );
    }
}
