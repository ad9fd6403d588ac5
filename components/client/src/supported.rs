//! Names in the spec that only the server can tell are right: checked against
//! what it supports (`/admin/serverinfo`) before anything is written.
//!
//! Keycloak stores a protocol mapper of a type it does not have without
//! complaint (201), and the client then fails where tokens are issued, far
//! from the spec that caused it. The host serves the document from a cache
//! per Keycloak, so the check costs no request in steady state. When the
//! document cannot be read (an account that may not, an older host), the
//! check is skipped: it guards against mistakes, it is not a permission.

use std::collections::{BTreeMap, BTreeSet};

use keycloak_operator_api::KeycloakClientSpec;
use keycloak_operator_api::reasons;
use keycloak_operator_sdk::error::invalid_spec;
use keycloak_operator_sdk::{ReconcileError, keycloak, log};
use serde::Deserialize;

/// What the server supports, under the admin API root.
const SERVER_INFO: &str = "/serverinfo";

/// How long a message may grow with known names before they are clipped: the
/// host cuts condition messages at 1024 characters, and the clipping note
/// must stay readable.
const MESSAGE_BUDGET: usize = 990;

/// Known names shown at least, however long the rest of the message.
const MIN_NAMES_BUDGET: usize = 200;

/// The parts of `/admin/serverinfo` checked here; the rest of the document
/// (some 300 KiB) is skipped unparsed.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerInfo {
    /// Mapper types by protocol (`openid-connect`, `saml`, ...).
    #[serde(default)]
    protocol_mapper_types: BTreeMap<String, Vec<Provided>>,
}

/// One provider the server lists, by id.
#[derive(Debug, Deserialize)]
struct Provided {
    id: String,
}

impl ServerInfo {
    /// The mapper type ids the server has for `protocol`, if it lists any.
    fn mapper_types(&self, protocol: &str) -> Option<BTreeSet<&str>> {
        let types: BTreeSet<&str> = self
            .protocol_mapper_types
            .get(protocol)?
            .iter()
            .map(|p| p.id.as_str())
            .collect();
        (!types.is_empty()).then_some(types)
    }
}

/// Refuses a spec that names what the server does not have; nothing is read
/// when the spec names nothing to check.
pub fn check(spec: &KeycloakClientSpec) -> Result<(), ReconcileError> {
    if spec.protocol_mappers.is_empty() {
        return Ok(());
    }
    match read() {
        Some(info) => check_against(spec, &info),
        None => Ok(()),
    }
}

/// The document, or `None` (with a debug note) when it cannot be had.
fn read() -> Option<ServerInfo> {
    let skipped = |why: String| {
        log::debug(&format!("not checking names against the server's information: {why}"));
        None
    };
    let reply = match keycloak::send(keycloak::Method::Get, SERVER_INFO, &[], &[], None) {
        Ok(reply) => reply,
        Err(error) => return skipped(format!("{error:?}")),
    };
    if !reply.is_success() {
        return skipped(format!("Keycloak answered {}", reply.status));
    }
    match reply.json::<ServerInfo>() {
        Ok(info) => Some(info),
        Err(error) => skipped(format!("{error:?}")),
    }
}

/// The check itself, on a document already read.
pub fn check_against(spec: &KeycloakClientSpec, info: &ServerInfo) -> Result<(), ReconcileError> {
    let protocol = spec.protocol.as_keycloak();
    let Some(known) = info.mapper_types(protocol) else {
        // A server that lists no mapper types for the protocol says nothing
        // about the spec's.
        return Ok(());
    };
    let unknown: Vec<String> = spec
        .protocol_mappers
        .iter()
        .enumerate()
        .filter(|(_, m)| !known.contains(m.protocol_mapper.as_str()))
        .map(|(i, m)| format!("spec.protocolMappers[{i}].protocolMapper {:?}", m.protocol_mapper))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let (subject, verb) = if unknown.len() == 1 {
        (unknown[0].clone(), "is not a protocol mapper type")
    } else {
        (unknown.join(", "), "are not protocol mapper types")
    };
    let message = format!("{subject} {verb} this Keycloak has for protocol {protocol}; it has: ");
    let budget = MESSAGE_BUDGET.saturating_sub(message.len()).max(MIN_NAMES_BUDGET);
    Err(invalid_spec(
        reasons::UNKNOWN_PROTOCOL_MAPPER,
        message + &clipped(&known, budget),
    ))
}

/// `names` (sorted) joined, clipped with "…and N more" past `budget`
/// characters.
fn clipped(names: &BTreeSet<&str>, budget: usize) -> String {
    let mut shown = Vec::new();
    let mut used = 0;
    for name in names {
        if used + name.len() > budget && !shown.is_empty() {
            break;
        }
        used += name.len() + 2;
        shown.push(*name);
    }
    let mut text = shown.join(", ");
    if shown.len() < names.len() {
        text.push_str(&format!(" …and {} more", names.len() - shown.len()));
    }
    text
}

#[cfg(test)]
mod tests {
    use keycloak_operator_sdk::Detail;
    use serde_json::{Value, json};

    use super::*;

    fn spec(extra: Value) -> KeycloakClientSpec {
        let mut spec = json!({"realmRef": {"name": "r"}, "clientId": "c"});
        if let (Some(spec), Value::Object(extra)) = (spec.as_object_mut(), extra) {
            spec.extend(extra);
        }
        serde_json::from_value(spec).expect("valid spec")
    }

    fn mappers(types: &[&str]) -> Value {
        json!({"protocolMappers": types.iter().enumerate()
            .map(|(i, t)| json!({"name": format!("m{i}"), "protocolMapper": t}))
            .collect::<Vec<_>>()})
    }

    /// A server-info document as Keycloak 26 shapes it, cut down.
    fn info() -> ServerInfo {
        serde_json::from_value(json!({
            "systemInfo": {"version": "26.0.0"},
            "providers": {"authenticator": {"providers": {}}},
            "protocolMapperTypes": {
                "openid-connect": [
                    {"id": "oidc-usermodel-attribute-mapper", "name": "User Attribute", "category": "Token mapper",
                     "properties": [{"name": "claim.name", "type": "String"}]},
                    {"id": "oidc-hardcoded-claim-mapper", "name": "Hardcoded claim", "properties": []},
                    {"id": "oidc-audience-mapper", "name": "Audience"},
                ],
                "saml": [{"id": "saml-role-list-mapper", "name": "Role list"}],
            },
        }))
        .expect("the document parses")
    }

    fn refusal(result: Result<(), ReconcileError>) -> Detail {
        match result {
            Err(ReconcileError::InvalidSpec(detail)) => detail,
            other => panic!("expected an invalid spec, got {other:?}"),
        }
    }

    #[test]
    fn known_mapper_types_pass() {
        let spec = spec(mappers(&["oidc-hardcoded-claim-mapper", "oidc-audience-mapper"]));
        assert!(check_against(&spec, &info()).is_ok());
    }

    #[test]
    fn an_unknown_type_names_its_field_and_the_known_ones_sorted() {
        let spec = spec(mappers(&["oidc-audience-mapper", "no-such-mapper-type"]));
        let detail = refusal(check_against(&spec, &info()));
        assert_eq!(detail.reason, "UnknownProtocolMapper");
        assert_eq!(
            detail.message,
            "spec.protocolMappers[1].protocolMapper \"no-such-mapper-type\" is not a protocol mapper type this \
             Keycloak has for protocol openid-connect; it has: oidc-audience-mapper, oidc-hardcoded-claim-mapper, \
             oidc-usermodel-attribute-mapper"
        );
    }

    #[test]
    fn types_are_checked_against_the_clients_protocol() {
        let mut saml = spec(mappers(&["oidc-audience-mapper"]));
        saml.protocol = keycloak_operator_api::ClientProtocol::Saml;
        let detail = refusal(check_against(&saml, &info()));
        assert!(
            detail.message.contains("protocol saml; it has: saml-role-list-mapper"),
            "{}",
            detail.message
        );
        let both = spec(mappers(&["nope", "oidc-audience-mapper", "neither"]));
        let detail = refusal(check_against(&both, &info()));
        assert!(
            detail.message.starts_with(
                "spec.protocolMappers[0].protocolMapper \"nope\", spec.protocolMappers[2].protocolMapper \"neither\" are not"
            ),
            "{}",
            detail.message
        );
    }

    #[test]
    fn a_server_that_lists_nothing_for_the_protocol_is_not_held_against_the_spec() {
        let spec = spec(mappers(&["anything"]));
        assert!(check_against(&spec, &ServerInfo::default()).is_ok());
        let empty: ServerInfo = serde_json::from_value(json!({"protocolMapperTypes": {"openid-connect": []}}))
            .expect("the document parses");
        assert!(check_against(&spec, &empty).is_ok());
    }

    #[test]
    fn the_message_stays_within_what_a_condition_holds() {
        let names: Vec<String> = (0..200).map(|i| format!("custom-mapper-{i:03}")).collect();
        let providers: Vec<Value> = names.iter().map(|n| json!({"id": n})).collect();
        let info: ServerInfo = serde_json::from_value(json!({"protocolMapperTypes": {"openid-connect": providers}}))
            .expect("the document parses");
        let detail = refusal(check_against(&spec(mappers(&["typo"])), &info));
        assert!(detail.message.chars().count() <= 1024, "{}", detail.message.len());
        assert!(detail.message.ends_with(" more"), "{}", detail.message);
    }

    #[test]
    fn a_long_list_of_known_names_is_clipped() {
        let names: Vec<String> = (0..200).map(|i| format!("custom-mapper-{i:03}")).collect();
        let known: BTreeSet<&str> = names.iter().map(String::as_str).collect();
        let text = clipped(&known, 300);
        assert!(text.starts_with("custom-mapper-000, custom-mapper-001"), "{text}");
        assert!(text.len() < 300 + 20, "{}", text.len());
        let shown = text.matches("custom-mapper-").count();
        assert!(
            text.ends_with(&format!(", custom-mapper-{:03} …and {} more", shown - 1, 200 - shown)),
            "{text}"
        );
        let few: BTreeSet<&str> = ["b", "a"].into();
        assert_eq!(clipped(&few, 300), "a, b");
        assert_eq!(clipped(&few, 0), "a …and 1 more", "one name is always shown");
    }
}
