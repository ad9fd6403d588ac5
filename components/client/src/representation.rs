//! The client representation a `KeycloakClient` spec asks for: top-level
//! fields and attributes. Protocol mappers, client scopes, roles and
//! service-account roles have endpoints of their own (see their modules).

use std::collections::BTreeMap;

use keycloak_operator_api::{AccessType, ClientProtocol, KeycloakClientSpec, OidcSettings, SamlSettings};
use keycloak_operator_sdk::ownership::Owner;
use serde_json::{Map, Value, json};

use crate::managed::{Managed, keys};

/// Fields of the pass-through that the typed spec or the operator owns, or
/// that have endpoints of their own (Keycloak ignores them on update).
const RESERVED: &[&str] = &[
    "id",
    "clientId",
    "protocol",
    "secret",
    "attributes",
    "protocolMappers",
    "defaultClientScopes",
    "optionalClientScopes",
];

/// What the operator adds to the spec's fields.
pub struct Bookkeeping<'a> {
    /// The owning resource.
    pub owner: &'a Owner,
    /// The sub-objects to record as the operator's.
    pub managed: &'a Managed,
    /// The rotate-secret annotation value to record as handled.
    pub rotation_handled: Option<&'a str>,
    /// A client secret supplied by the user (never logged).
    pub supplied_secret: Option<&'a str>,
}

/// The OIDC settings in effect: an OIDC client without `spec.oidc` is a
/// confidential client with Keycloak's defaults.
pub fn oidc_settings(spec: &KeycloakClientSpec) -> Option<OidcSettings> {
    match spec.protocol {
        ClientProtocol::OpenIdConnect => Some(spec.oidc.clone().unwrap_or_default()),
        ClientProtocol::Saml => None,
    }
}

/// Whether the client has a secret: OIDC, confidential or bearer-only.
pub fn has_secret(spec: &KeycloakClientSpec) -> bool {
    oidc_settings(spec).is_some_and(|o| o.access_type != AccessType::Public)
}

/// The managed fields of the client, as Keycloak's ClientRepresentation.
/// Settings the spec leaves unset are not included, so they stay unmanaged.
pub fn desired(spec: &KeycloakClientSpec, bookkeeping: &Bookkeeping<'_>) -> Value {
    let mut rep = Map::new();
    if let Some(extra) = &spec.representation {
        for (key, value) in extra {
            if !RESERVED.contains(&key.as_str()) {
                rep.insert(key.clone(), value.clone());
            }
        }
    }
    rep.insert("clientId".into(), json!(spec.client_id));
    rep.insert("protocol".into(), json!(spec.protocol.as_keycloak()));
    rep.insert("enabled".into(), json!(spec.enabled.unwrap_or(true)));
    let optional = [
        ("name", spec.name.clone().map(Value::from)),
        ("description", spec.description.clone().map(Value::from)),
        ("rootUrl", spec.root_url.clone().map(Value::from)),
        ("baseUrl", spec.base_url.clone().map(Value::from)),
        ("adminUrl", spec.admin_url.clone().map(Value::from)),
        ("redirectUris", spec.redirect_uris.clone().map(Value::from)),
    ];
    insert_set(&mut rep, optional);
    if let Some(secret) = bookkeeping.supplied_secret {
        rep.insert("secret".into(), json!(secret));
    }
    let mut attributes: BTreeMap<String, String> = spec.attributes.clone();
    if let Some(oidc) = oidc_settings(spec) {
        oidc_fields(&oidc, &mut rep, &mut attributes);
    }
    if let Some(saml) = &spec.saml {
        saml_attributes(saml, &mut attributes);
    }
    attributes.extend(bookkeeping.managed.attributes());
    if let Some(handled) = bookkeeping.rotation_handled {
        attributes.insert(keys::ROTATION_HANDLED.into(), handled.to_owned());
    }
    attributes.extend(bookkeeping.owner.attributes());
    rep.insert("attributes".into(), json!(attributes));
    Value::Object(rep)
}

fn insert_set<const N: usize>(rep: &mut Map<String, Value>, fields: [(&str, Option<Value>); N]) {
    for (key, value) in fields {
        if let Some(value) = value {
            rep.insert(key.into(), value);
        }
    }
}

fn set_attributes<const N: usize>(attributes: &mut BTreeMap<String, String>, fields: [(&str, Option<String>); N]) {
    for (key, value) in fields {
        if let Some(value) = value {
            attributes.insert(key.into(), value);
        }
    }
}

fn oidc_fields(oidc: &OidcSettings, rep: &mut Map<String, Value>, attributes: &mut BTreeMap<String, String>) {
    rep.insert("publicClient".into(), json!(oidc.access_type == AccessType::Public));
    rep.insert("bearerOnly".into(), json!(oidc.access_type == AccessType::BearerOnly));
    insert_set(
        rep,
        [
            ("standardFlowEnabled", oidc.standard_flow_enabled.map(Value::from)),
            ("implicitFlowEnabled", oidc.implicit_flow_enabled.map(Value::from)),
            (
                "directAccessGrantsEnabled",
                oidc.direct_access_grants_enabled.map(Value::from),
            ),
            ("serviceAccountsEnabled", oidc.service_accounts_enabled.map(Value::from)),
            ("consentRequired", oidc.consent_required.map(Value::from)),
            ("frontchannelLogout", oidc.frontchannel_logout.map(Value::from)),
            ("webOrigins", oidc.web_origins.clone().map(Value::from)),
        ],
    );
    let text = |b: Option<bool>| b.map(|b| b.to_string());
    let number = |n: Option<i32>| n.map(|n| n.to_string());
    set_attributes(
        attributes,
        [
            (
                "oauth2.device.authorization.grant.enabled",
                text(oidc.device_authorization_grant_enabled),
            ),
            (
                "pkce.code.challenge.method",
                oidc.pkce_method.map(|m| m.as_keycloak().to_owned()),
            ),
            ("frontchannel.logout.url", oidc.frontchannel_logout_url.clone()),
            ("backchannel.logout.url", oidc.backchannel_logout_url.clone()),
            (
                "backchannel.logout.session.required",
                text(oidc.backchannel_logout_session_required),
            ),
            // Keycloak keeps this list as one attribute, separated by "##".
            (
                "post.logout.redirect.uris",
                oidc.post_logout_redirect_uris.as_ref().map(|uris| uris.join("##")),
            ),
            ("access.token.lifespan", number(oidc.access_token_lifespan_seconds)),
            (
                "client.session.idle.timeout",
                number(oidc.client_session_idle_timeout_seconds),
            ),
            (
                "client.session.max.lifespan",
                number(oidc.client_session_max_lifespan_seconds),
            ),
            (
                "client.offline.session.idle.timeout",
                number(oidc.client_offline_session_idle_timeout_seconds),
            ),
            ("use.refresh.tokens", text(oidc.use_refresh_tokens)),
        ],
    );
}

fn saml_attributes(saml: &SamlSettings, attributes: &mut BTreeMap<String, String>) {
    let text = |b: Option<bool>| b.map(|b| b.to_string());
    let algorithm = saml
        .signature_algorithm
        .and_then(|a| serde_json::to_value(a).ok())
        .and_then(|v| v.as_str().map(str::to_owned));
    set_attributes(
        attributes,
        [
            (
                "saml_assertion_consumer_url_post",
                saml.assertion_consumer_url_post.clone(),
            ),
            (
                "saml_assertion_consumer_url_redirect",
                saml.assertion_consumer_url_redirect.clone(),
            ),
            ("saml_single_logout_service_url_post", saml.logout_url_post.clone()),
            (
                "saml_single_logout_service_url_redirect",
                saml.logout_url_redirect.clone(),
            ),
            (
                "saml_name_id_format",
                saml.name_id_format.map(|f| f.as_keycloak().to_owned()),
            ),
            ("saml_force_name_id_format", text(saml.force_name_id_format)),
            ("saml.force.post.binding", text(saml.force_post_binding)),
            ("saml.server.signature", text(saml.sign_documents)),
            ("saml.assertion.signature", text(saml.sign_assertions)),
            ("saml.signature.algorithm", algorithm),
            ("saml.client.signature", text(saml.client_signature_required)),
            ("saml.signing.certificate", saml.signing_certificate.clone()),
            ("saml.encrypt", text(saml.encrypt_assertions)),
            ("saml.encryption.certificate", saml.encryption_certificate.clone()),
            (
                "saml_idp_initiated_sso_url_name",
                saml.idp_initiated_sso_url_name.clone(),
            ),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> Owner {
        Owner {
            uid: "u1".into(),
            namespace: "ns".into(),
            name: "app".into(),
            kind: "KeycloakClient".into(),
        }
    }

    fn desired_for(spec: Value, secret: Option<&str>) -> Value {
        let spec: KeycloakClientSpec = serde_json::from_value(spec).expect("valid spec");
        let managed = Managed::declared(&spec);
        desired(
            &spec,
            &Bookkeeping {
                owner: &owner(),
                managed: &managed,
                rotation_handled: Some("r1"),
                supplied_secret: secret,
            },
        )
    }

    #[test]
    fn a_public_pkce_client_maps_to_keycloak_fields_and_attributes() {
        let rep = desired_for(
            json!({
                "realmRef": {"name": "r"}, "clientId": "spa",
                "redirectUris": ["https://app/*"],
                "oidc": {"accessType": "Public", "pkceMethod": "S256", "webOrigins": ["+"],
                         "postLogoutRedirectUris": ["https://app/", "https://app/bye"],
                         "accessTokenLifespanSeconds": 120},
                "attributes": {"pkce.code.challenge.method": "plain", "custom": "x"},
                "representation": {"clientId": "other", "fullScopeAllowed": false},
            }),
            None,
        );
        assert_eq!(rep["clientId"], "spa", "the pass-through cannot rename the client");
        assert_eq!(rep["publicClient"], true);
        assert_eq!(rep["bearerOnly"], false);
        assert_eq!(rep["fullScopeAllowed"], false);
        assert_eq!(rep["webOrigins"], json!(["+"]));
        let attributes = &rep["attributes"];
        assert_eq!(attributes["pkce.code.challenge.method"], "S256", "typed fields win");
        assert_eq!(attributes["custom"], "x");
        assert_eq!(attributes["post.logout.redirect.uris"], "https://app/##https://app/bye");
        assert_eq!(attributes["access.token.lifespan"], "120");
        assert_eq!(attributes["keycloak.wasmop.dev/owner-uid"], "u1");
        assert_eq!(attributes[keys::ROTATION_HANDLED], "r1");
        assert!(rep.get("secret").is_none());
        assert!(rep.get("standardFlowEnabled").is_none(), "unset flows stay unmanaged");
    }

    #[test]
    fn a_saml_client_has_saml_attributes_and_no_oidc_fields() {
        let rep = desired_for(
            json!({
                "realmRef": {"name": "r"}, "clientId": "https://sp.example.com/metadata",
                "protocol": "saml",
                "saml": {"assertionConsumerUrlPost": "https://sp/acs", "nameIdFormat": "email",
                         "signDocuments": true, "signatureAlgorithm": "RSA_SHA256"},
            }),
            None,
        );
        assert_eq!(rep["protocol"], "saml");
        assert!(rep.get("publicClient").is_none());
        let attributes = &rep["attributes"];
        assert_eq!(attributes["saml_assertion_consumer_url_post"], "https://sp/acs");
        assert_eq!(attributes["saml_name_id_format"], "email");
        assert_eq!(attributes["saml.server.signature"], "true");
        assert_eq!(attributes["saml.signature.algorithm"], "RSA_SHA256");
    }

    #[test]
    fn a_supplied_secret_is_part_of_the_representation() {
        let rep = desired_for(json!({"realmRef": {"name": "r"}, "clientId": "api"}), Some("s3cret"));
        assert_eq!(rep["secret"], "s3cret");
        assert_eq!(rep["publicClient"], false);
    }
}
