//! Protocol mappers of a client, converged by name (see
//! [`keycloak_operator_sdk::protocol_mappers`]). Mappers come with the
//! client representation, so steady state costs no extra read; the
//! operator's own are recorded in the client's `Managed` record.

use keycloak_operator_api::{KeycloakClientSpec, ProtocolMapper};
use keycloak_operator_sdk::ReconcileError;
use keycloak_operator_sdk::protocol_mappers::{self, Plan};
use serde_json::{Value, json};

use crate::managed::Managed;

const MAPPERS: &str = "/realms/{realm}/clients/{id}/protocol-mappers/models";
const MAPPER: &str = "/realms/{realm}/clients/{id}/protocol-mappers/models/{mapper}";

/// A mapper as Keycloak represents it.
pub fn representation(spec: &KeycloakClientSpec, mapper: &ProtocolMapper) -> Value {
    protocol_mappers::representation(
        &mapper.name,
        spec.protocol.as_keycloak(),
        &mapper.protocol_mapper,
        &json!(mapper.config),
    )
}

fn plan(spec: &KeycloakClientSpec, client: &Value, recorded: &Managed) -> Plan {
    let wanted: Vec<Value> = spec
        .protocol_mappers
        .iter()
        .map(|mapper| representation(spec, mapper))
        .collect();
    let current = client
        .get("protocolMappers")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    protocol_mappers::plan(&wanted, current, |name| recorded.mappers.contains(name))
}

/// Converges the mappers of `client`; returns what changed, for Events.
pub fn converge(
    realm: &str,
    spec: &KeycloakClientSpec,
    client: &Value,
    recorded: &Managed,
) -> Result<Vec<String>, ReconcileError> {
    let id = client["id"].as_str().unwrap_or_default();
    protocol_mappers::apply(MAPPERS, MAPPER, &[realm, id], &plan(spec, client, recorded))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_protocol_and_the_record_decide_the_plan() {
        let spec: KeycloakClientSpec = serde_json::from_value(json!({
            "realmRef": {"name": "r"}, "clientId": "c", "protocol": "saml",
            "protocolMappers": [{"name": "role-list", "protocolMapper": "saml-role-list-mapper", "config": {"single": "true"}}],
        }))
        .expect("valid spec");
        let client = json!({"protocolMappers": [
            {"id": "1", "name": "old", "protocol": "saml", "protocolMapper": "saml-role-list-mapper", "config": {}},
            {"id": "2", "name": "manual", "protocol": "saml", "protocolMapper": "saml-role-list-mapper", "config": {}},
        ]});
        let recorded = Managed {
            mappers: ["old".to_owned()].into(),
            ..Managed::default()
        };
        let plan = plan(&spec, &client, &recorded);
        assert_eq!(plan.create, vec![representation(&spec, &spec.protocol_mappers[0])]);
        assert_eq!(plan.create[0]["protocol"], "saml");
        assert_eq!(plan.delete, vec![("1".to_owned(), "old".to_owned())]);
    }
}
