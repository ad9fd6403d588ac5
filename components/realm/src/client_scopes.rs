//! Client scopes, converged by name, and the realm's default and optional
//! client scopes.
//!
//! Keycloak lists a realm's client scopes in one request, with their
//! attributes and protocol mappers, so a resync costs one read for the
//! scopes (taken only when the spec declares scopes, sets a scope list or
//! the operator recorded some) and two for the realm's scope lists when the
//! spec sets either. A
//! scope is addressed by id. The mappers the operator created in a scope are
//! recorded in the scope's own attributes, so that one made by hand, or
//! shipped with one of Keycloak's scopes, is never deleted.

use std::collections::{BTreeMap, BTreeSet};

use keycloak_operator_api::{KeycloakRealmSpec, RealmClientScope};
use keycloak_operator_sdk::error::transient;
use keycloak_operator_sdk::protocol_mappers;
use keycloak_operator_sdk::{ReconcileError, keycloak};
use serde_json::{Map, Value, json};

const SCOPES: &str = "/realms/{realm}/client-scopes";
const SCOPE: &str = "/realms/{realm}/client-scopes/{scope}";
const MAPPERS: &str = "/realms/{realm}/client-scopes/{scope}/protocol-mappers/models";
const MAPPER: &str = "/realms/{realm}/client-scopes/{scope}/protocol-mappers/models/{mapper}";

/// Scope attribute: names of the mappers the operator created in the scope
/// (JSON array).
pub const MANAGED_MAPPERS: &str = "keycloak.wasmop.dev/managed-mappers";

/// Every client scope of the realm, mappers and attributes included.
pub fn list(realm: &str) -> Result<Vec<Value>, ReconcileError> {
    keycloak::list(SCOPES, &[realm], &[])
}

fn name_of(scope: &Value) -> &str {
    scope["name"].as_str().unwrap_or_default()
}

fn id_of(scope: &Value) -> String {
    scope["id"].as_str().unwrap_or_default().to_owned()
}

fn mappers_of(scope: &Value) -> &[Value] {
    scope["protocolMappers"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The mapper names a scope's attribute records; unreadable counts as none,
/// so nothing is deleted.
fn recorded_mappers(scope: &Value) -> BTreeSet<String> {
    scope["attributes"][MANAGED_MAPPERS]
        .as_str()
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default()
}

fn record_value(names: &BTreeSet<String>) -> Value {
    json!(Value::from(names.iter().cloned().collect::<Vec<_>>()).to_string())
}

fn wanted_mappers(scope: &RealmClientScope) -> Vec<Value> {
    scope
        .protocol_mappers
        .iter()
        .map(|mapper| {
            protocol_mappers::representation(
                &mapper.name,
                scope.protocol.as_keycloak(),
                &mapper.protocol_mapper,
                &json!(mapper.config),
            )
        })
        .collect()
}

/// The body creating `scope`, its mappers included (Keycloak creates them
/// with the scope) and recorded as the operator's.
fn creation(scope: &RealmClientScope) -> Value {
    let mappers = wanted_mappers(scope);
    let mut attributes: Map<String, Value> = scope.attributes.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    if !mappers.is_empty() {
        let names = scope.protocol_mappers.iter().map(|m| m.name.clone()).collect();
        attributes.insert(MANAGED_MAPPERS.to_owned(), record_value(&names));
    }
    let mut body = json!({
        "name": scope.name,
        "protocol": scope.protocol.as_keycloak(),
        "attributes": attributes,
        "protocolMappers": mappers,
    });
    if let Some(description) = &scope.description {
        body["description"] = json!(description);
    }
    body
}

/// What converging one scope that exists takes.
#[derive(Debug, Default, PartialEq)]
pub struct Change {
    /// The scope's id.
    pub id: String,
    /// The scope's name.
    pub name: String,
    /// The whole scope to write before its mappers change, when its fields
    /// differ or the mappers about to be created must be recorded first.
    pub before: Option<Value>,
    /// Its mappers' changes.
    pub mappers: protocol_mappers::Plan,
    /// The whole scope to write after, when deleted mappers leave the record.
    pub after: Option<Value>,
}

/// The change `scope` asks of `have`, if anything differs.
fn change(scope: &RealmClientScope, have: &Value) -> Option<Change> {
    let recorded = recorded_mappers(have);
    let mappers = protocol_mappers::plan(&wanted_mappers(scope), mappers_of(have), |name| recorded.contains(name));
    let present: BTreeSet<&str> = mappers_of(have).iter().filter_map(|m| m["name"].as_str()).collect();
    // Recorded before they are created; forgotten once neither declared nor
    // present; unrecorded only after they are deleted.
    let before_record: BTreeSet<String> = recorded
        .iter()
        .filter(|name| present.contains(name.as_str()) || scope.protocol_mappers.iter().any(|m| &m.name == *name))
        .cloned()
        .chain(mappers.created_names().map(str::to_owned))
        .collect();
    let after_record: BTreeSet<String> = before_record
        .iter()
        .filter(|name| {
            !mappers.delete.iter().any(|(_, deleted)| deleted == *name) || mappers.created_names().any(|n| n == *name)
        })
        .cloned()
        .collect();

    let mut attributes: Map<String, Value> = have["attributes"].as_object().cloned().unwrap_or_default();
    let attributes_differ = scope
        .attributes
        .iter()
        .any(|(key, value)| attributes.get(key).and_then(Value::as_str) != Some(value));
    let description_differs = scope
        .description
        .as_deref()
        .is_some_and(|want| have["description"].as_str().unwrap_or_default() != want);
    let protocol_differs = have["protocol"].as_str() != Some(scope.protocol.as_keycloak());
    let fields_differ = attributes_differ || description_differs || protocol_differs || before_record != recorded;
    if !fields_differ && mappers.is_empty() && after_record == before_record {
        return None;
    }

    attributes.extend(scope.attributes.iter().map(|(k, v)| (k.clone(), json!(v))));
    let mut body = have.clone();
    if let Some(object) = body.as_object_mut() {
        object.remove("protocolMappers");
    }
    body["protocol"] = json!(scope.protocol.as_keycloak());
    if let Some(description) = &scope.description {
        body["description"] = json!(description);
    }
    let with_record = |record: &BTreeSet<String>| {
        let mut body = body.clone();
        let mut attributes = attributes.clone();
        if !record.is_empty() || attributes.contains_key(MANAGED_MAPPERS) {
            attributes.insert(MANAGED_MAPPERS.to_owned(), record_value(record));
        }
        body["attributes"] = Value::Object(attributes);
        body
    };
    Some(Change {
        id: id_of(have),
        name: scope.name.clone(),
        before: fields_differ.then(|| with_record(&before_record)),
        after: (after_record != before_record).then(|| with_record(&after_record)),
        mappers,
    })
}

/// What converging the scopes takes.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Bodies of scopes to create.
    pub create: Vec<Value>,
    /// Scopes that exist and differ.
    pub change: Vec<Change>,
    /// Scopes the operator created that the spec no longer lists: (id, name).
    pub delete: Vec<(String, String)>,
    /// Recorded scopes that are neither listed nor present any more.
    pub forget: Vec<String>,
}

impl Plan {
    /// Names of the scopes about to be created.
    pub fn created_names(&self) -> impl Iterator<Item = String> + '_ {
        self.create.iter().map(|scope| name_of(scope).to_owned())
    }
}

/// Plans the scopes' convergence from what Keycloak holds and what the
/// operator recorded as its own.
pub fn plan(declared: &[RealmClientScope], current: &[Value], recorded: &BTreeSet<String>) -> Plan {
    let mut plan = Plan::default();
    for scope in declared {
        match current.iter().find(|have| name_of(have) == scope.name) {
            None => plan.create.push(creation(scope)),
            Some(have) => plan.change.extend(change(scope, have)),
        }
    }
    for name in recorded
        .iter()
        .filter(|name| !declared.iter().any(|s| &s.name == *name))
    {
        match current.iter().find(|have| name_of(have) == name) {
            Some(have) => plan.delete.push((id_of(have), name.clone())),
            None => plan.forget.push(name.clone()),
        }
    }
    plan
}

/// Creates and updates scopes as planned; returns what changed, for Events,
/// and the ids of the scopes created, by name. Deletions wait for
/// [`delete`], after the scope lists no longer hold them.
pub fn apply(realm: &str, plan: &Plan) -> Result<(Vec<String>, BTreeMap<String, String>), ReconcileError> {
    let mut changed = Vec::new();
    let mut created = BTreeMap::new();
    for body in &plan.create {
        let reply = keycloak::create(SCOPES, &[realm], body)?;
        let name = name_of(body);
        if let Some(id) = reply.created_id() {
            created.insert(name.to_owned(), id.to_owned());
        }
        changed.push(format!("clientScopes.{name}"));
    }
    for change in &plan.change {
        let params = [realm, change.id.as_str()];
        if let Some(body) = &change.before {
            keycloak::update(SCOPE, &params, body)?;
        }
        let mappers = protocol_mappers::apply(MAPPERS, MAPPER, &params, &change.mappers)?;
        if let Some(body) = &change.after {
            keycloak::update(SCOPE, &params, body)?;
        }
        changed.extend(mappers.iter().map(|m| format!("clientScopes.{}.{m}", change.name)));
        if change.before.is_some() && mappers.is_empty() {
            changed.push(format!("clientScopes.{}", change.name));
        }
    }
    Ok((changed, created))
}

/// Deletes the scopes the spec no longer lists that the operator created.
pub fn delete(realm: &str, plan: &Plan) -> Result<Vec<String>, ReconcileError> {
    let mut changed = Vec::new();
    for (id, name) in &plan.delete {
        keycloak::delete(SCOPE, &[realm, id])?;
        changed.push(format!("clientScopes.{name}"));
    }
    Ok(changed)
}

/// One of the realm's two scope lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum List {
    Default,
    Optional,
}

impl List {
    fn field(self) -> &'static str {
        match self {
            List::Default => "defaultClientScopes",
            List::Optional => "optionalClientScopes",
        }
    }

    fn route(self) -> &'static str {
        match self {
            List::Default => "/realms/{realm}/default-default-client-scopes",
            List::Optional => "/realms/{realm}/default-optional-client-scopes",
        }
    }

    fn item_route(self) -> &'static str {
        match self {
            List::Default => "/realms/{realm}/default-default-client-scopes/{scope}",
            List::Optional => "/realms/{realm}/default-optional-client-scopes/{scope}",
        }
    }

    fn other(self) -> List {
        match self {
            List::Default => List::Optional,
            List::Optional => List::Default,
        }
    }

    fn declared(self, spec: &KeycloakRealmSpec) -> Option<&Vec<String>> {
        match self {
            List::Default => spec.default_client_scopes.as_ref(),
            List::Optional => spec.optional_client_scopes.as_ref(),
        }
    }
}

const LISTS: [List; 2] = [List::Default, List::Optional];

/// Whether the spec needs the realm's scopes listed.
pub fn needed(spec: &KeycloakRealmSpec, recorded: &BTreeSet<String>) -> bool {
    !spec.client_scopes.is_empty() || !recorded.is_empty() || LISTS.iter().any(|l| l.declared(spec).is_some())
}

/// Refuses, before anything is written, a scope list naming a scope that is
/// neither declared nor in Keycloak.
pub fn check_lists(realm: &str, spec: &KeycloakRealmSpec, current: &[Value]) -> Result<(), ReconcileError> {
    for list in LISTS {
        for name in list.declared(spec).into_iter().flatten() {
            let known =
                spec.client_scopes.iter().any(|s| &s.name == name) || current.iter().any(|s| name_of(s) == name);
            if !known {
                return Err(transient(
                    "ClientScopeNotFound",
                    format!(
                        "spec.{} names client scope {name}, which realm {realm} lacks and spec.clientScopes does not declare",
                        list.field()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The changes that make the realm's scope lists those declared:
/// (list, scope name, add or not). Removals come first, so that a scope
/// moving from one list to the other is never in both; a scope joining a
/// list leaves the other one even when the spec does not set that one,
/// since Keycloak holds a scope in one list at most.
fn list_changes(spec: &KeycloakRealmSpec, held: &[(List, Vec<Value>)]) -> Vec<(List, String, bool)> {
    let names = |list: List| -> BTreeSet<&str> {
        held.iter()
            .filter(|(l, _)| *l == list)
            .flat_map(|(_, scopes)| scopes.iter().map(name_of))
            .collect()
    };
    let mut removals = Vec::new();
    let mut additions = Vec::new();
    for list in LISTS {
        let Some(wanted) = list.declared(spec) else { continue };
        let have = names(list);
        let wanted: BTreeSet<&str> = wanted.iter().map(String::as_str).collect();
        removals.extend(have.difference(&wanted).map(|name| (list, (*name).to_owned(), false)));
        for name in wanted.difference(&have) {
            let other = list.other();
            if other.declared(spec).is_none() && names(other).contains(name) {
                removals.push((other, (*name).to_owned(), false));
            }
            additions.push((list, (*name).to_owned(), true));
        }
    }
    removals.extend(additions);
    removals
}

/// Makes the realm's default and optional client scopes those the spec
/// sets; `ids` names every scope by id (those just created included).
/// Returns the lists that changed.
pub fn converge_lists(
    realm: &str,
    spec: &KeycloakRealmSpec,
    ids: &BTreeMap<String, String>,
) -> Result<Vec<String>, ReconcileError> {
    if LISTS.iter().all(|list| list.declared(spec).is_none()) {
        return Ok(Vec::new());
    }
    let mut held = Vec::new();
    for list in LISTS {
        held.push((list, keycloak::list(list.route(), &[realm], &[])?));
    }
    let mut changed = BTreeSet::new();
    for (list, name, add) in list_changes(spec, &held) {
        let id = held
            .iter()
            .flat_map(|(_, scopes)| scopes)
            .find(|scope| name_of(scope) == name)
            .map(id_of)
            .or_else(|| ids.get(&name).cloned())
            .ok_or_else(|| {
                transient(
                    "ClientScopeNotFound",
                    format!(
                        "spec.{} names client scope {name}, which realm {realm} lacks",
                        list.field()
                    ),
                )
            })?;
        if add {
            keycloak::update(list.item_route(), &[realm, &id], &json!({}))?;
        } else {
            keycloak::delete(list.item_route(), &[realm, &id])?;
        }
        changed.insert(list.field().to_owned());
    }
    Ok(changed.into_iter().collect())
}

/// Every scope by name → id: those listed and those just created.
pub fn ids(current: &[Value], created: BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut ids: BTreeMap<String, String> = current.iter().map(|s| (name_of(s).to_owned(), id_of(s))).collect();
    ids.extend(created);
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(value: Value) -> RealmClientScope {
        serde_json::from_value(value).expect("valid scope")
    }

    fn audience_scope() -> RealmClientScope {
        scope(json!({
            "name": "orders", "description": "Orders API",
            "attributes": {"include.in.token.scope": "true"},
            "protocolMappers": [{"name": "aud", "protocolMapper": "oidc-audience-mapper",
                                 "config": {"included.custom.audience": "orders"}}],
        }))
    }

    fn held(record: &[&str], mappers: Value) -> Value {
        let record: BTreeSet<String> = record.iter().map(|s| (*s).to_owned()).collect();
        json!({
            "id": "s1", "name": "orders", "description": "Orders API", "protocol": "openid-connect",
            "attributes": {"include.in.token.scope": "true", "gui.order": "1", MANAGED_MAPPERS: record_value(&record)},
            "protocolMappers": mappers,
        })
    }

    fn aud(id: &str, audience: &str) -> Value {
        json!({"id": id, "name": "aud", "protocol": "openid-connect", "protocolMapper": "oidc-audience-mapper",
               "config": {"included.custom.audience": audience, "access.token.claim": "true"}})
    }

    #[test]
    fn a_new_scope_is_created_with_its_mappers_recorded() {
        let plan = plan(&[audience_scope()], &[], &BTreeSet::new());
        let body = &plan.create[0];
        assert_eq!(body["protocol"], "openid-connect");
        assert_eq!(body["protocolMappers"][0]["protocolMapper"], "oidc-audience-mapper");
        assert_eq!(body["attributes"][MANAGED_MAPPERS], "[\"aud\"]");
        assert_eq!(body["attributes"]["include.in.token.scope"], "true");
    }

    #[test]
    fn a_matching_scope_plans_nothing() {
        let plan = plan(
            &[audience_scope()],
            &[held(&["aud"], json!([aud("m1", "orders")]))],
            &BTreeSet::new(),
        );
        assert_eq!(plan, Plan::default());
    }

    #[test]
    fn drift_is_corrected_keeping_what_is_not_declared() {
        let mut have = held(
            &["aud"],
            json!([aud("m1", "by-hand"), {"id": "m2", "name": "manual",
            "protocol": "openid-connect", "protocolMapper": "oidc-audience-mapper", "config": {}}]),
        );
        have["description"] = json!("changed");
        let plan = plan(&[audience_scope()], &[have], &BTreeSet::new());
        let change = &plan.change[0];
        let before = change.before.as_ref().expect("the description differs");
        assert_eq!(before["description"], "Orders API");
        assert_eq!(before["attributes"]["gui.order"], "1", "unlisted attributes stay");
        assert!(before.get("protocolMappers").is_none());
        assert_eq!(change.mappers.update.len(), 1);
        assert!(change.mappers.delete.is_empty(), "the hand-made mapper stays");
        assert_eq!(change.after, None);
    }

    #[test]
    fn mappers_are_recorded_before_creation_and_unrecorded_after_deletion() {
        let mut declared = audience_scope();
        declared.protocol_mappers[0].name = "aud2".into();
        let plan = plan(
            &[declared],
            &[held(&["aud"], json!([aud("m1", "orders")]))],
            &BTreeSet::new(),
        );
        let change = &plan.change[0];
        let before = change.before.as_ref().expect("the new mapper is recorded first");
        assert_eq!(before["attributes"][MANAGED_MAPPERS], "[\"aud\",\"aud2\"]");
        assert_eq!(change.mappers.delete, vec![("m1".to_owned(), "aud".to_owned())]);
        let after = change.after.as_ref().expect("the deleted one leaves the record");
        assert_eq!(after["attributes"][MANAGED_MAPPERS], "[\"aud2\"]");
    }

    #[test]
    fn only_recorded_scopes_are_deleted() {
        let current = [
            json!({"id": "1", "name": "retired"}),
            json!({"id": "2", "name": "manual"}),
        ];
        let recorded: BTreeSet<String> = ["retired", "vanished"].map(str::to_owned).into();
        let plan = plan(&[], &current, &recorded);
        assert_eq!(plan.delete, vec![("1".to_owned(), "retired".to_owned())]);
        assert_eq!(plan.forget, vec!["vanished".to_owned()]);
    }

    #[test]
    fn a_scope_moving_between_lists_leaves_one_before_joining_the_other() {
        let spec: KeycloakRealmSpec = serde_json::from_value(json!({
            "keycloakRef": {"name": "kc"}, "realmName": "r",
            "defaultClientScopes": ["profile", "orders"], "optionalClientScopes": ["email"],
        }))
        .expect("valid spec");
        let held = [
            (
                List::Default,
                vec![
                    json!({"id": "1", "name": "profile"}),
                    json!({"id": "2", "name": "email"}),
                ],
            ),
            (List::Optional, vec![json!({"id": "3", "name": "orders"})]),
        ];
        assert_eq!(
            list_changes(&spec, &held),
            vec![
                (List::Default, "email".to_owned(), false),
                (List::Optional, "orders".to_owned(), false),
                (List::Default, "orders".to_owned(), true),
                (List::Optional, "email".to_owned(), true),
            ]
        );
        assert!(check_lists("r", &spec, &[]).is_err());
    }

    #[test]
    fn a_scope_joining_a_list_leaves_the_other_one_even_when_that_one_is_not_managed() {
        let spec: KeycloakRealmSpec = serde_json::from_value(json!({
            "keycloakRef": {"name": "kc"}, "realmName": "r", "optionalClientScopes": ["email"],
        }))
        .expect("valid spec");
        let held = [
            (
                List::Default,
                vec![
                    json!({"id": "1", "name": "email"}),
                    json!({"id": "2", "name": "profile"}),
                ],
            ),
            (List::Optional, vec![json!({"id": "3", "name": "phone"})]),
        ];
        assert_eq!(
            list_changes(&spec, &held),
            vec![
                (List::Optional, "phone".to_owned(), false),
                (List::Default, "email".to_owned(), false),
                (List::Optional, "email".to_owned(), true),
            ]
        );
    }
}
