//! Identity providers, converged by alias, and their mappers by name.
//!
//! Keycloak lists a realm's providers in one request, config included, and
//! each provider's mappers in another (read only for providers whose
//! mappers the spec lists or the operator recorded). A provider's client
//! secret comes from a Secret. Keycloak masks it on read, so the provider's
//! config keeps a fingerprint of the secret last sent
//! ([`SECRET_FINGERPRINT`]): the secret is sent again only when the
//! Secret's value no longer matches it.

use std::collections::BTreeSet;

use keycloak_operator_api::{IdentityProviderMapper, RealmIdentityProvider};
use keycloak_operator_sdk::error::transient;
use keycloak_operator_sdk::{ReconcileError, keycloak, secrets};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

const PROVIDERS: &str = "/realms/{realm}/identity-provider/instances";
const PROVIDER: &str = "/realms/{realm}/identity-provider/instances/{alias}";
const MAPPERS: &str = "/realms/{realm}/identity-provider/instances/{alias}/mappers";
const MAPPER: &str = "/realms/{realm}/identity-provider/instances/{alias}/mappers/{id}";

/// Config key: a fingerprint of the client secret the operator sent.
pub const SECRET_FINGERPRINT: &str = "keycloak.wasmop.dev/client-secret-sha256";
/// Config key: names of the mappers the operator created (JSON array).
pub const MANAGED_MAPPERS: &str = "keycloak.wasmop.dev/managed-mappers";

/// Every identity provider of the realm, config included.
pub fn list(realm: &str) -> Result<Vec<Value>, ReconcileError> {
    keycloak::list(PROVIDERS, &[realm], &[("briefRepresentation", "false")])
}

fn alias_of(provider: &Value) -> &str {
    provider["alias"].as_str().unwrap_or_default()
}

/// The fingerprint of `secret` for provider `alias` of `realm`: salted with
/// both, so that one secret used twice does not show as one.
fn fingerprint(realm: &str, alias: &str, secret: &str) -> String {
    let digest = Sha256::digest(format!("{realm}\n{alias}\n{secret}").as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The declared providers' client secrets, by position, read before
/// anything is written. A missing Secret or key is reported with its field.
/// The values go to Keycloak only: never to logs, status or Events.
pub fn read_secrets(declared: &[RealmIdentityProvider]) -> Result<Vec<Option<String>>, ReconcileError> {
    declared
        .iter()
        .enumerate()
        .map(|(index, provider)| {
            let Some(reference) = &provider.client_secret_ref else {
                return Ok(None);
            };
            match secrets::read(&reference.name, &reference.key)? {
                Some(secret) if !secret.is_empty() => Ok(Some(secret)),
                _ => Err(transient(
                    "SecretNotFound",
                    format!(
                        "spec.identityProviders[{index}].clientSecretRef names key {:?} of Secret {:?}, which does not exist or is empty",
                        reference.key, reference.name
                    ),
                )),
            }
        })
        .collect()
}

fn recorded_mappers(provider: &Value) -> BTreeSet<String> {
    provider["config"][MANAGED_MAPPERS]
        .as_str()
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default()
}

/// The top-level fields `provider` manages, in Keycloak's names.
fn managed_fields(provider: &RealmIdentityProvider) -> Map<String, Value> {
    let mut fields = Map::new();
    let mut put = |key: &str, value: Option<Value>| {
        if let Some(value) = value {
            fields.insert(key.to_owned(), value);
        }
    };
    put("displayName", provider.display_name.clone().map(Value::from));
    put("enabled", provider.enabled.map(Value::from));
    put("trustEmail", provider.trust_email.map(Value::from));
    put("storeToken", provider.store_token.map(Value::from));
    put("linkOnly", provider.link_only.map(Value::from));
    put("hideOnLogin", provider.hide_on_login.map(Value::from));
    put(
        "firstBrokerLoginFlowAlias",
        provider.first_broker_login_flow.clone().map(Value::from),
    );
    put(
        "postBrokerLoginFlowAlias",
        provider.post_broker_login_flow.clone().map(Value::from),
    );
    fields
}

/// What converging one declared provider takes.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// Create it with this body, then these mappers.
    Create(Value, Vec<Value>),
    /// Delete it (its type changed) and create it again.
    Recreate(Value, Vec<Value>),
    /// Update it (when the body is set), then change its mappers.
    Update(Option<Value>, MapperPlan),
}

/// Changes to one provider's mappers.
#[derive(Debug, Default, PartialEq)]
pub struct MapperPlan {
    /// Bodies to create.
    pub create: Vec<Value>,
    /// (id, body) to update.
    pub update: Vec<(String, Value)>,
    /// (id, name) to delete.
    pub delete: Vec<(String, String)>,
}

impl MapperPlan {
    fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

fn mapper_body(alias: &str, mapper: &IdentityProviderMapper) -> Value {
    json!({
        "name": mapper.name,
        "identityProviderAlias": alias,
        "identityProviderMapper": mapper.identity_provider_mapper,
        "config": mapper.config,
    })
}

/// Plans one provider's mappers from those Keycloak holds.
pub fn plan_mappers(provider: &RealmIdentityProvider, current: &[Value], recorded: &BTreeSet<String>) -> MapperPlan {
    let mut plan = MapperPlan::default();
    for mapper in &provider.mappers {
        let want = mapper_body(&provider.alias, mapper);
        match current.iter().find(|have| have["name"] == mapper.name.as_str()) {
            None => plan.create.push(want),
            Some(have) => {
                let id = have["id"].as_str().unwrap_or_default().to_owned();
                if have["identityProviderMapper"] != want["identityProviderMapper"] {
                    plan.delete.push((id, mapper.name.clone()));
                    plan.create.push(want);
                } else if mapper
                    .config
                    .iter()
                    .any(|(key, value)| have["config"][key].as_str() != Some(value))
                {
                    let mut body = have.clone();
                    for (key, value) in &mapper.config {
                        body["config"][key] = json!(value);
                    }
                    plan.update.push((id, body));
                }
            }
        }
    }
    for have in current {
        let name = have["name"].as_str().unwrap_or_default();
        if !provider.mappers.iter().any(|m| m.name == name) && recorded.contains(name) {
            plan.delete
                .push((have["id"].as_str().unwrap_or_default().to_owned(), name.to_owned()));
        }
    }
    plan
}

/// The body creating `provider`, its secret and mapper record included.
fn creation(realm: &str, provider: &RealmIdentityProvider, secret: Option<&str>) -> Value {
    let mut body = Value::Object(managed_fields(provider));
    body["alias"] = json!(provider.alias);
    body["providerId"] = json!(provider.provider);
    let mut config: Map<String, Value> = provider.config.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    if let Some(secret) = secret {
        config.insert("clientSecret".into(), json!(secret));
        config.insert(
            SECRET_FINGERPRINT.into(),
            json!(fingerprint(realm, &provider.alias, secret)),
        );
    }
    if !provider.mappers.is_empty() {
        let names: Vec<&str> = provider.mappers.iter().map(|m| m.name.as_str()).collect();
        config.insert(MANAGED_MAPPERS.into(), json!(json!(names).to_string()));
    }
    body["config"] = Value::Object(config);
    body
}

/// The update `provider` asks of `have`, if anything differs: the whole
/// provider, with the secret only when its fingerprint changed (Keycloak
/// keeps the secret it holds when it is sent back masked).
fn update(
    realm: &str,
    provider: &RealmIdentityProvider,
    have: &Value,
    secret: Option<&str>,
    mappers: &MapperPlan,
) -> Option<Value> {
    let fields = managed_fields(provider);
    let mut differs = fields.iter().any(|(key, value)| &have[key] != value);
    let mut body = have.clone();
    for (key, value) in fields {
        body[key] = value;
    }
    for (key, value) in &provider.config {
        if have["config"][key].as_str() != Some(value) {
            differs = true;
            body["config"][key] = json!(value);
        }
    }
    if let Some(secret) = secret {
        let print = fingerprint(realm, &provider.alias, secret);
        if have["config"][SECRET_FINGERPRINT].as_str() != Some(print.as_str()) {
            differs = true;
            body["config"]["clientSecret"] = json!(secret);
            body["config"][SECRET_FINGERPRINT] = json!(print);
        }
    }
    let recorded = recorded_mappers(have);
    let record: BTreeSet<String> = recorded
        .iter()
        .filter(|name| !mappers.delete.iter().any(|(_, deleted)| deleted == *name))
        .cloned()
        .chain(
            mappers
                .create
                .iter()
                .filter_map(|m| m["name"].as_str().map(str::to_owned)),
        )
        .collect();
    if record != recorded {
        differs = true;
        body["config"][MANAGED_MAPPERS] = json!(json!(record.iter().collect::<Vec<_>>()).to_string());
    }
    differs.then_some(body)
}

/// Whether the provider's mappers must be read: the spec lists some, or the
/// operator recorded some.
fn mappers_needed(provider: &RealmIdentityProvider, have: &Value) -> bool {
    !provider.mappers.is_empty() || !recorded_mappers(have).is_empty()
}

/// Plans every declared provider. Reads the mappers of those that need it.
pub fn plan(
    realm: &str,
    declared: &[RealmIdentityProvider],
    secrets: &[Option<String>],
    current: &[Value],
) -> Result<Vec<(usize, Step)>, ReconcileError> {
    let mut steps = Vec::new();
    for (index, provider) in declared.iter().enumerate() {
        let secret = secrets.get(index).and_then(Option::as_deref);
        let wanted_mappers = || {
            provider
                .mappers
                .iter()
                .map(|m| mapper_body(&provider.alias, m))
                .collect::<Vec<_>>()
        };
        match current.iter().find(|have| alias_of(have) == provider.alias) {
            None => steps.push((index, Step::Create(creation(realm, provider, secret), wanted_mappers()))),
            Some(have) if have["providerId"] != provider.provider.as_str() => {
                steps.push((
                    index,
                    Step::Recreate(creation(realm, provider, secret), wanted_mappers()),
                ));
            }
            Some(have) => {
                let mappers = if mappers_needed(provider, have) {
                    let held = keycloak::list(MAPPERS, &[realm, &provider.alias], &[])?;
                    plan_mappers(provider, &held, &recorded_mappers(have))
                } else {
                    MapperPlan::default()
                };
                let body = update(realm, provider, have, secret, &mappers);
                if body.is_some() || !mappers.is_empty() {
                    steps.push((index, Step::Update(body, mappers)));
                }
            }
        }
    }
    Ok(steps)
}

/// Aliases of the declared providers about to be created: recorded before
/// they are, so that a failure half-way never leaves one unrecorded.
pub fn created_aliases(declared: &[RealmIdentityProvider], current: &[Value]) -> Vec<String> {
    declared
        .iter()
        .filter(|provider| !current.iter().any(|have| alias_of(have) == provider.alias))
        .map(|provider| provider.alias.clone())
        .collect()
}

/// Carries out the steps; returns what changed, for Events (never a
/// secret's value).
pub fn apply(
    realm: &str,
    declared: &[RealmIdentityProvider],
    steps: &[(usize, Step)],
) -> Result<Vec<String>, ReconcileError> {
    let mut changed = Vec::new();
    for (index, step) in steps {
        let alias = declared[*index].alias.as_str();
        let params = [realm, alias];
        match step {
            Step::Create(body, mappers) | Step::Recreate(body, mappers) => {
                if matches!(step, Step::Recreate(..)) {
                    keycloak::delete(PROVIDER, &params)?;
                }
                keycloak::create(PROVIDERS, &[realm], body)?;
                for mapper in mappers {
                    keycloak::create(MAPPERS, &params, mapper)?;
                }
            }
            Step::Update(body, mappers) => {
                if let Some(body) = body {
                    keycloak::update(PROVIDER, &params, body)?;
                }
                for (id, _) in &mappers.delete {
                    keycloak::delete(MAPPER, &[realm, alias, id])?;
                }
                for mapper in &mappers.create {
                    keycloak::create(MAPPERS, &params, mapper)?;
                }
                for (id, mapper) in &mappers.update {
                    keycloak::update(MAPPER, &[realm, alias, id], mapper)?;
                }
            }
        }
        changed.push(format!("identityProviders.{alias}"));
    }
    Ok(changed)
}

/// Deletes the providers the operator created that the spec no longer
/// lists; returns (deleted, forgotten) aliases.
pub fn remove_unlisted(
    realm: &str,
    declared: &[RealmIdentityProvider],
    current: &[Value],
    recorded: &BTreeSet<String>,
) -> Result<(Vec<String>, Vec<String>), ReconcileError> {
    let mut deleted = Vec::new();
    let mut forgotten = Vec::new();
    for alias in recorded
        .iter()
        .filter(|alias| !declared.iter().any(|p| &p.alias == *alias))
    {
        if current.iter().any(|have| alias_of(have) == alias) {
            keycloak::delete(PROVIDER, &[realm, alias])?;
            deleted.push(alias.clone());
        } else {
            forgotten.push(alias.clone());
        }
    }
    Ok((deleted, forgotten))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> RealmIdentityProvider {
        serde_json::from_value(json!({
            "alias": "corp", "providerId": "oidc", "displayName": "Corporate login",
            "config": {"clientId": "kc", "tokenUrl": "https://idp.example.com/token"},
            "clientSecretRef": {"name": "corp-idp"},
            "mappers": [{"name": "dept", "identityProviderMapper": "oidc-user-attribute-idp-mapper",
                         "config": {"claim": "dept", "user.attribute": "department"}}],
        }))
        .expect("valid provider")
    }

    fn held(secret: &str) -> Value {
        json!({
            "alias": "corp", "providerId": "oidc", "displayName": "Corporate login", "enabled": true,
            "config": {"clientId": "kc", "tokenUrl": "https://idp.example.com/token", "clientSecret": "**********",
                       "syncMode": "LEGACY", SECRET_FINGERPRINT: fingerprint("r", "corp", secret),
                       MANAGED_MAPPERS: "[\"dept\"]"},
        })
    }

    #[test]
    fn a_new_provider_carries_its_secret_fingerprint_and_mapper_record() {
        let body = creation("r", &provider(), Some("s3cret"));
        assert_eq!(body["providerId"], "oidc");
        assert_eq!(body["config"]["clientSecret"], "s3cret");
        assert_eq!(body["config"][SECRET_FINGERPRINT], fingerprint("r", "corp", "s3cret"));
        assert_eq!(body["config"][MANAGED_MAPPERS], "[\"dept\"]");
        assert_ne!(fingerprint("r", "corp", "s3cret"), fingerprint("r", "other", "s3cret"));
    }

    #[test]
    fn the_secret_is_sent_again_only_when_it_changed() {
        let none = MapperPlan::default();
        assert_eq!(update("r", &provider(), &held("s3cret"), Some("s3cret"), &none), None);
        let body = update("r", &provider(), &held("old"), Some("s3cret"), &none).expect("the secret changed");
        assert_eq!(body["config"]["clientSecret"], "s3cret");
        assert_eq!(body["config"]["syncMode"], "LEGACY", "unlisted config stays");
        let mut drifted = held("s3cret");
        drifted["config"]["tokenUrl"] = json!("https://elsewhere");
        let body = update("r", &provider(), &drifted, Some("s3cret"), &none).expect("config drifted");
        assert_eq!(
            body["config"]["clientSecret"], "**********",
            "sent back masked: Keycloak keeps its own"
        );
    }

    #[test]
    fn mappers_made_by_hand_stay_and_the_operators_go_when_unlisted() {
        let current = [
            json!({"id": "1", "name": "dept", "identityProviderMapper": "oidc-user-attribute-idp-mapper",
                   "config": {"claim": "dept", "user.attribute": "dept-by-hand", "syncMode": "INHERIT"}}),
            json!({"id": "2", "name": "old", "identityProviderMapper": "hardcoded-role-idp-mapper", "config": {}}),
            json!({"id": "3", "name": "manual", "identityProviderMapper": "hardcoded-role-idp-mapper", "config": {}}),
        ];
        let recorded: BTreeSet<String> = ["dept", "old"].map(str::to_owned).into();
        let plan = plan_mappers(&provider(), &current, &recorded);
        assert_eq!(plan.update.len(), 1);
        assert_eq!(plan.update[0].1["config"]["user.attribute"], "department");
        assert_eq!(plan.update[0].1["config"]["syncMode"], "INHERIT");
        assert_eq!(plan.delete, vec![("2".to_owned(), "old".to_owned())]);
        assert!(plan.create.is_empty());
    }
}
