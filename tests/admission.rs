//! Bad input is refused at the door: a table of bad manifests, one row per
//! class of mistake, applied to the real kube-apiserver with the operator's
//! CRDs, each refused with a message that names the field or the rule. Run
//! with `--nocapture` to print the table that docs/reliability.md carries.

use anyhow::{Context, Result};
use keycloak_operator_e2e::resources::{
    TEST_MANAGER, client_kind, component_kind, delete, install_crds, keycloak_kind, realm_kind,
};
use keycloak_operator_e2e::testbed::{TestNamespace, kube_client, unique_name};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::Request;
use kube::core::Resource;
use serde_json::{Value, json};

/// The kinds of the operator's CRDs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Keycloak,
    Realm,
    Client,
    Component,
}

impl Kind {
    fn resource(self) -> ApiResource {
        match self {
            Kind::Keycloak => keycloak_kind(),
            Kind::Realm => realm_kind(),
            Kind::Client => client_kind(),
            Kind::Component => component_kind(),
        }
    }

    /// A valid spec, which each row then breaks in one way.
    fn valid_spec(self) -> Value {
        match self {
            Kind::Keycloak => json!({
                "external": {"url": "https://sso.example.com", "adminCredentials": {"secretName": "sso-admin"}},
            }),
            Kind::Realm => json!({"keycloakRef": {"name": "sso"}, "realmName": "shop"}),
            Kind::Client => json!({"realmRef": {"name": "shop"}, "clientId": "app"}),
            Kind::Component => json!({
                "kind": "keycloak.wasmop.dev/KeycloakRealm",
                "oci": format!("registry.example.com/components/realm@sha256:{}", "a".repeat(64)),
            }),
        }
    }

    fn manifest(self, name: &str) -> Value {
        let kind = self.resource();
        json!({
            "apiVersion": kind.api_version,
            "kind": kind.kind,
            "metadata": {"name": name},
            "spec": self.valid_spec(),
        })
    }

    fn cluster_scoped(self) -> bool {
        self == Kind::Component
    }
}

/// Who refuses the input.
#[derive(Clone, Copy, PartialEq, Eq)]
enum By {
    /// The CRD's OpenAPI schema (type, required, enum, range, pattern,
    /// length, list type).
    Schema,
    /// One of the CRD's CEL rules (`x-kubernetes-validations`).
    Cel,
    /// Strict field validation (`kubectl` asks for it by default).
    UnknownField,
    /// Nobody: accepted at admission (what happens next is in the row).
    Accepted,
}

/// One bad manifest: a valid one of `kind` changed by `change`, on creation
/// or, when `update`, as a change of an existing object.
struct Row {
    kind: Kind,
    input: &'static str,
    update: bool,
    change: fn(&mut Value),
    by: By,
    /// Must appear in the API server's message, for both ways of applying;
    /// for an accepted row, what happens to it instead.
    fragment: &'static str,
    /// Must appear instead in server-side apply's message, where it differs.
    ssa_fragment: Option<&'static str>,
}

impl Row {
    fn ssa(self, fragment: &'static str) -> Self {
        Row {
            ssa_fragment: Some(fragment),
            ..self
        }
    }
}

fn row(kind: Kind, input: &'static str, change: fn(&mut Value), by: By, fragment: &'static str) -> Row {
    Row {
        kind,
        input,
        update: false,
        change,
        by,
        fragment,
        ssa_fragment: None,
    }
}

fn update(kind: Kind, input: &'static str, change: fn(&mut Value), fragment: &'static str) -> Row {
    Row {
        kind,
        input,
        update: true,
        change,
        by: By::Cel,
        fragment,
        ssa_fragment: None,
    }
}

/// Sets the value at a JSON pointer, creating the objects on the way.
fn set(object: &mut Value, pointer: &str, value: Value) {
    let mut at = object;
    for part in pointer.trim_start_matches('/').split('/') {
        if !at.is_object() {
            *at = json!({});
        }
        at = &mut at[part];
    }
    *at = value;
}

/// Removes the field at a JSON pointer.
fn unset(object: &mut Value, pointer: &str) {
    if let Some((parent, field)) = pointer.rsplit_once('/')
        && let Some(Value::Object(map)) = object.pointer_mut(parent)
    {
        map.remove(field);
    }
}

fn managed(object: &mut Value) {
    unset(object, "/spec/external");
    set(object, "/spec/managed", json!({"database": {"dev": true}}));
}

#[rustfmt::skip]
fn table() -> Vec<Row> {
    use By::*;
    use Kind::*;
    vec![
        // Keycloak
        row(Keycloak, "neither `external` nor `managed`", |o| unset(o, "/spec/external"), Cel, "set exactly one of spec.external"),
        row(Keycloak, "both `external` and `managed`", |o| set(o, "/spec/managed", json!({"database": {"dev": true}})), Cel, "set exactly one of spec.external"),
        row(Keycloak, "`external` without `url`", |o| unset(o, "/spec/external/url"), Schema, "spec.external.url: Required value"),
        row(Keycloak, "`external.url` not http(s)", |o| set(o, "/spec/external/url", json!("ftp://sso.example.com")), Schema, "spec.external.url in body should match"),
        row(Keycloak, "`external.url` with a space", |o| set(o, "/spec/external/url", json!("https://sso example.com")), Schema, "spec.external.url in body should match"),
        row(Keycloak, "`external.url` over 2048 characters", |o| set(o, "/spec/external/url", json!(format!("https://sso.example.com/{}", "a".repeat(2048)))), Schema, "spec.external.url: Too long"),
        row(Keycloak, "admin credentials without a Secret name", |o| unset(o, "/spec/external/adminCredentials/secretName"), Schema, "spec.external.adminCredentials.secretName: Required value"),
        row(Keycloak, "admin credentials with an empty Secret name", |o| set(o, "/spec/external/adminCredentials/secretName", json!("")), Schema, "spec.external.adminCredentials.secretName in body should be at least 1 chars long"),
        row(Keycloak, "unknown grant", |o| set(o, "/spec/external/adminCredentials/grant", json!("Token")), Schema, "Unsupported value: \"Token\""),
        row(Keycloak, "`realms.maxPerNamespace` negative", |o| set(o, "/spec/realms/maxPerNamespace", json!(-1)), Schema, "spec.realms.maxPerNamespace in body should be greater than or equal to 0"),
        row(Keycloak, "`realms.maxPerNamespace` past uint32", |o| set(o, "/spec/realms/maxPerNamespace", json!(4_294_967_296_i64)), Schema, "spec.realms.maxPerNamespace in body should be less than or equal to"),
        row(Keycloak, "`managed` without `database`", |o| { managed(o); unset(o, "/spec/managed/database"); }, Schema, "spec.managed.database: Required value"),
        row(Keycloak, "`managed.database` empty", |o| { managed(o); set(o, "/spec/managed/database", json!({})); }, Cel, "set exactly one of database.postgres, database.cloudNativePG and database.dev"),
        row(Keycloak, "`managed.database` with two databases", |o| { managed(o); set(o, "/spec/managed/database/cloudNativePG", json!({"clusterName": "pg"})); }, Cel, "set exactly one of database.postgres, database.cloudNativePG and database.dev"),
        row(Keycloak, "`database.postgres` without `host`", |o| { managed(o); set(o, "/spec/managed/database", json!({"postgres": {"database": "kc", "credentialsSecret": "pg"}})); }, Schema, "spec.managed.database.postgres.host: Required value"),
        row(Keycloak, "`database.postgres.port` out of range", |o| { managed(o); set(o, "/spec/managed/database", json!({"postgres": {"host": "pg", "database": "kc", "credentialsSecret": "pg", "port": 70000}})); }, Schema, "spec.managed.database.postgres.port in body should be less than or equal to 65535"),
        row(Keycloak, "`database.postgres.sslMode` unknown", |o| { managed(o); set(o, "/spec/managed/database", json!({"postgres": {"host": "pg", "database": "kc", "credentialsSecret": "pg", "sslMode": "verify-ca"}})); }, Schema, "Unsupported value: \"verify-ca\""),
        row(Keycloak, "`managed.replicas` 0", |o| { managed(o); set(o, "/spec/managed/replicas", json!(0)); }, Schema, "spec.managed.replicas in body should be greater than or equal to 1"),
        row(Keycloak, "`managed.replicas` 101", |o| { managed(o); set(o, "/spec/managed/replicas", json!(101)); }, Schema, "spec.managed.replicas in body should be less than or equal to 100"),
        row(Keycloak, "`managed.replicas` a string", |o| { managed(o); set(o, "/spec/managed/replicas", json!("2")); }, Schema, "spec.managed.replicas"),
        row(Keycloak, "`managed.version` `latest`", |o| { managed(o); set(o, "/spec/managed/version", json!("latest")); }, Schema, "spec.managed.version in body should match"),
        row(Keycloak, "`managed.updateStrategy` unknown", |o| { managed(o); set(o, "/spec/managed/updateStrategy", json!("BlueGreen")); }, Schema, "Unsupported value: \"BlueGreen\""),
        row(Keycloak, "`managed.hostname.proxyHeaders` unknown", |o| { managed(o); set(o, "/spec/managed/hostname/proxyHeaders", json!("both")); }, Schema, "Unsupported value: \"both\""),
        row(Keycloak, "a misspelt field (`spec.externel`)", |o| set(o, "/spec/externel", json!({})), UnknownField, "spec.externel"),

        // KeycloakRealm
        row(Realm, "without `realmName`", |o| unset(o, "/spec/realmName"), Schema, "spec.realmName: Required value"),
        row(Realm, "without `keycloakRef`", |o| unset(o, "/spec/keycloakRef"), Schema, "spec.keycloakRef: Required value"),
        row(Realm, "`keycloakRef` without `name`", |o| set(o, "/spec/keycloakRef", json!({"namespace": "sso"})), Schema, "spec.keycloakRef.name: Required value"),
        row(Realm, "`keycloakRef.name` empty", |o| set(o, "/spec/keycloakRef/name", json!("")), Schema, "spec.keycloakRef.name in body should be at least 1 chars long"),
        row(Realm, "`keycloakRef.namespace` over 63 characters", |o| set(o, "/spec/keycloakRef/namespace", json!("n".repeat(64))), Schema, "spec.keycloakRef.namespace: Too long"),
        row(Realm, "`realmName` empty", |o| set(o, "/spec/realmName", json!("")), Schema, "spec.realmName in body should be at least 1 chars long"),
        row(Realm, "`realmName` with a slash", |o| set(o, "/spec/realmName", json!("shop/eu")), Schema, "spec.realmName in body should match"),
        row(Realm, "`realmName` with a space", |o| set(o, "/spec/realmName", json!("my shop")), Schema, "spec.realmName in body should match"),
        row(Realm, "`realmName` starting with a dot", |o| set(o, "/spec/realmName", json!(".shop")), Schema, "spec.realmName in body should match"),
        row(Realm, "`realmName` with `%`", |o| set(o, "/spec/realmName", json!("shop%2F")), Schema, "spec.realmName in body should match"),
        row(Realm, "`realmName` over 255 characters", |o| set(o, "/spec/realmName", json!("r".repeat(256))), Schema, "spec.realmName: Too long"),
        row(Realm, "`realmName: master`", |o| set(o, "/spec/realmName", json!("master")), Cel, "the master realm cannot be managed by a KeycloakRealm"),
        update(Realm, "`realmName` changed", |o| set(o, "/spec/realmName", json!("shop-eu")), "realmName is immutable"),
        row(Realm, "`enabled: \"yes\"` (a string)", |o| set(o, "/spec/enabled", json!("yes")), Schema, "spec.enabled"),
        row(Realm, "`deletionPolicy` unknown", |o| set(o, "/spec/deletionPolicy", json!("Keep")), Schema, "Unsupported value: \"Keep\""),
        row(Realm, "`settings.sslRequired` unknown", |o| set(o, "/spec/settings/sslRequired", json!("sometimes")), Schema, "Unsupported value: \"sometimes\""),
        row(Realm, "`settings.accessTokenLifespanSeconds` 0", |o| set(o, "/spec/settings/accessTokenLifespanSeconds", json!(0)), Schema, "spec.settings.accessTokenLifespanSeconds in body should be greater than or equal to 1"),
        row(Realm, "`settings.ssoSessionIdleTimeoutSeconds` past int32", |o| set(o, "/spec/settings/ssoSessionIdleTimeoutSeconds", json!(2_147_483_648_i64)), Schema, "format int32"),
        row(Realm, "`attributes` with a number value", |o| set(o, "/spec/attributes", json!({"tier": 1})), Schema, "spec.attributes.tier"),
        row(Realm, "`representation` a list", |o| set(o, "/spec/representation", json!([{"smtpServer": {}}])), Schema, "spec.representation"),
        row(Realm, "`clients.maxClients` negative", |o| set(o, "/spec/clients/maxClients", json!(-1)), Schema, "spec.clients.maxClients in body should be greater than or equal to 0"),
        row(Realm, "`clients.maxClients` past uint32", |o| set(o, "/spec/clients/maxClients", json!(4_294_967_296_i64)), Schema, "spec.clients.maxClients in body should be less than or equal to"),
        row(Realm, "`placement[].maxPerRealm` past uint32", |o| set(o, "/spec/placement", json!([{"kinds": ["*"], "maxPerRealm": 4_294_967_296_i64}])), Schema, "spec.placement[0].maxPerRealm in body should be less than or equal to"),
        row(Realm, "`placement` naming `KeycloakClient`", |o| set(o, "/spec/placement", json!([{"kinds": ["KeycloakClient"]}])), Cel, "KeycloakClients are placed by spec.clients"),
        row(Realm, "`placement` naming `keycloak.wasmop.dev/KeycloakClient`", |o| set(o, "/spec/placement", json!([{"kinds": ["keycloak.wasmop.dev/KeycloakClient"]}])), Cel, "KeycloakClients are placed by spec.clients"),
        row(Realm, "`placement` entry without kinds", |o| set(o, "/spec/placement", json!([{"kinds": []}])), Schema, "spec.placement[0].kinds in body should have at least 1 items"),
        row(Realm, "`placement` with 65 entries", |o| set(o, "/spec/placement", json!(vec![json!({"kinds": ["*"]}); 65])), Schema, "spec.placement: Too many"),
        row(Realm, "a misspelt field (`spec.realmname`)", |o| set(o, "/spec/realmname", json!("shop")), UnknownField, "spec.realmname"),
        row(Realm, "`realmName` with a dot", |o| set(o, "/spec/realmName", json!("shop.eu")), Accepted, "as Keycloak allows; managed like any other (`tests/realm_lifecycle.rs`)"),
        row(Realm, "`realmName: MASTER`", |o| set(o, "/spec/realmName", json!("MASTER")), Accepted, "a realm of its own: Keycloak's realm names are case-sensitive (`/admin/realms/MASTER` is 404)"),
        row(Realm, "`representation` holding a collection (`users`)", |o| set(o, "/spec/representation", json!({"users": [{"username": "eve"}]})), Cel, "spec.representation.users is a collection, which Keycloak's realm update ignores"),
        row(Realm, "`representation` holding `roles`", |o| set(o, "/spec/representation", json!({"roles": {"realm": [{"name": "a"}]}})), Cel, "spec.representation.roles is a collection, which Keycloak's realm update ignores (it would be rewritten at every resync): use spec.roles"),
        row(Realm, "`representation` holding `authenticationFlows`", |o| set(o, "/spec/representation", json!({"authenticationFlows": []})), Cel, "spec.representation.authenticationFlows is a collection"),
        row(Realm, "two roles of one name", |o| set(o, "/spec/roles", json!([{"name": "reader"}, {"name": "reader"}])), Schema, "spec.roles[1]: Duplicate value").ssa(".spec.roles: duplicate entries"),
        row(Realm, "a role without a name", |o| set(o, "/spec/roles", json!([{"description": "nameless"}])), Schema, "spec.roles[0].name: Required value").ssa("associative list with keys has an element that omits all key fields"),
        row(Realm, "a role that is a composite of itself", |o| set(o, "/spec/roles", json!([{"name": "reader", "composites": {"realmRoles": ["reader"]}}])), Cel, "a role cannot be a composite of itself"),
        row(Realm, "a role with a list-valued description", |o| set(o, "/spec/roles", json!([{"name": "reader", "description": ["a"]}])), Schema, "spec.roles[0].description").ssa(".description: expected string"),
        row(Realm, "`defaultRoles` naming one role twice", |o| set(o, "/spec/defaultRoles", json!({"realmRoles": ["a", "a"]})), Schema, "spec.defaultRoles.realmRoles[1]: Duplicate value").ssa(".spec.defaultRoles.realmRoles: duplicate entries"),
        row(Realm, "two groups of one path", |o| set(o, "/spec/groups", json!([{"path": "/eng"}, {"path": "/eng"}])), Schema, "spec.groups[1]: Duplicate value").ssa(".spec.groups: duplicate entries"),
        row(Realm, "a group path without its leading slash", |o| set(o, "/spec/groups", json!([{"path": "eng"}])), Schema, "spec.groups[0].path in body should match"),
        row(Realm, "a group path with an empty segment", |o| set(o, "/spec/groups", json!([{"path": "/eng//backend"}])), Schema, "spec.groups[0].path in body should match"),
        row(Realm, "`defaultGroups` naming a group twice", |o| set(o, "/spec/defaultGroups", json!(["/eng", "/eng"])), Schema, "spec.defaultGroups[1]: Duplicate value").ssa(".spec.defaultGroups: duplicate entries"),
        row(Realm, "`defaultGroups` naming a group by its bare name", |o| set(o, "/spec/defaultGroups", json!(["eng"])), Schema, "spec.defaultGroups[0] in body should match"),
        row(Realm, "`representation` holding `groups`", |o| set(o, "/spec/representation", json!({"groups": [{"name": "eng"}]})), Cel, "spec.representation.groups is a collection, which Keycloak's realm update ignores (it would be rewritten at every resync): use spec.groups"),
        row(Realm, "two client scopes of one name", |o| set(o, "/spec/clientScopes", json!([{"name": "orders"}, {"name": "orders"}])), Schema, "spec.clientScopes[1]: Duplicate value").ssa(".spec.clientScopes: duplicate entries"),
        row(Realm, "a client scope name holding a space", |o| set(o, "/spec/clientScopes", json!([{"name": "orders api"}])), Schema, "spec.clientScopes[0].name in body should match"),
        row(Realm, "a client scope of an unknown protocol", |o| set(o, "/spec/clientScopes", json!([{"name": "orders", "protocol": "oauth1"}])), Schema, "spec.clientScopes[0].protocol: Unsupported value: \"oauth1\""),
        row(Realm, "two mappers of one name in a client scope", |o| set(o, "/spec/clientScopes", json!([{"name": "orders", "protocolMappers": [{"name": "m", "protocolMapper": "oidc-audience-mapper"}, {"name": "m", "protocolMapper": "oidc-audience-mapper"}]}])), Schema, "spec.clientScopes[0].protocolMappers[1]: Duplicate value").ssa(".spec.clientScopes[name=\"orders\"].protocolMappers: duplicate entries"),
        row(Realm, "a client scope both default and optional", |o| { set(o, "/spec/defaultClientScopes", json!(["profile", "email"])); set(o, "/spec/optionalClientScopes", json!(["email"])) }, Cel, "a client scope cannot be both a default and an optional scope of the realm"),
        row(Realm, "`representation` holding `clientScopes`", |o| set(o, "/spec/representation", json!({"clientScopes": [{"name": "orders"}]})), Cel, "spec.representation.clientScopes is a collection, which Keycloak's realm update ignores (it would be rewritten at every resync): use spec.clientScopes"),
        row(Realm, "a default locale that is not supported", |o| set(o, "/spec/settings/localization", json!({"supportedLocales": ["en"], "defaultLocale": "de"})), Cel, "defaultLocale must be one of supportedLocales"),
        row(Realm, "one-time passwords of 10 digits", |o| set(o, "/spec/settings/otpPolicy", json!({"digits": 10})), Schema, "spec.settings.otpPolicy.digits: Invalid value: 10: spec.settings.otpPolicy.digits in body should be less than or equal to 8"),
        row(Realm, "a password rule whose value holds `)`", |o| set(o, "/spec/settings/passwordPolicy", json!([{"type": "regexPattern", "value": "a)b"}])), Cel, "a password rule's value cannot hold ')'"),
        row(Realm, "two password rules of one type", |o| set(o, "/spec/settings/passwordPolicy", json!([{"type": "length", "value": "8"}, {"type": "length", "value": "9"}])), Schema, "spec.settings.passwordPolicy[1]: Duplicate value").ssa(".spec.settings.passwordPolicy: duplicate entries"),
        row(Realm, "an identity provider's client secret in its config", |o| set(o, "/spec/identityProviders", json!([{"alias": "corp", "providerId": "oidc", "config": {"clientSecret": "s3cret"}}])), Cel, "the client secret cannot be in the spec: use clientSecretRef"),
        row(Realm, "an identity provider alias holding a space", |o| set(o, "/spec/identityProviders", json!([{"alias": "corp idp", "providerId": "oidc"}])), Schema, "spec.identityProviders[0].alias in body should match"),
        row(Realm, "two identity providers of one alias", |o| set(o, "/spec/identityProviders", json!([{"alias": "corp", "providerId": "oidc"}, {"alias": "corp", "providerId": "saml"}])), Schema, "spec.identityProviders[1]: Duplicate value").ssa(".spec.identityProviders: duplicate entries"),
        row(Realm, "an unknown flow binding (`flowBindings.login`)", |o| set(o, "/spec/flowBindings", json!({"login": "browser"})), UnknownField, "spec.flowBindings.login"),
        row(Realm, "two required actions of one alias", |o| set(o, "/spec/requiredActions", json!([{"alias": "VERIFY_EMAIL"}, {"alias": "VERIFY_EMAIL"}])), Schema, "spec.requiredActions[1]: Duplicate value").ssa(".spec.requiredActions: duplicate entries"),
        row(Realm, "a disabled required action made a default action", |o| set(o, "/spec/requiredActions", json!([{"alias": "VERIFY_EMAIL", "enabled": false, "defaultAction": true}])), Cel, "a disabled required action cannot be a default action"),
        row(Realm, "`representation` holding `defaultDefaultClientScopes`", |o| set(o, "/spec/representation", json!({"defaultDefaultClientScopes": ["profile"]})), Cel, "use spec.defaultClientScopes"),
        row(Realm, "`representation` holding `smtpServer`", |o| set(o, "/spec/representation", json!({"smtpServer": {"host": "mail"}})), Accepted, "a top-level field; passed through (a typed SMTP section with a Secret reference is not built yet)"),

        // KeycloakClient
        row(Client, "without `clientId`", |o| unset(o, "/spec/clientId"), Schema, "spec.clientId: Required value"),
        row(Client, "without `realmRef`", |o| unset(o, "/spec/realmRef"), Schema, "spec.realmRef: Required value"),
        row(Client, "`clientId` empty", |o| set(o, "/spec/clientId", json!("")), Schema, "spec.clientId in body should be at least 1 chars long"),
        row(Client, "`clientId` over 255 characters", |o| set(o, "/spec/clientId", json!("c".repeat(256))), Schema, "spec.clientId: Too long"),
        row(Client, "`clientId` of a built-in client (`admin-cli`)", |o| set(o, "/spec/clientId", json!("admin-cli")), Cel, "clientId names one of Keycloak's built-in clients"),
        update(Client, "`clientId` changed", |o| set(o, "/spec/clientId", json!("app2")), "clientId is immutable"),
        update(Client, "`protocol` changed", |o| set(o, "/spec/protocol", json!("saml")), "protocol is immutable"),
        row(Client, "`protocol` unknown", |o| set(o, "/spec/protocol", json!("oauth2")), Schema, "Unsupported value: \"oauth2\""),
        row(Client, "`redirectUris` a string", |o| set(o, "/spec/redirectUris", json!("https://app.example.com/*")), Schema, "spec.redirectUris"),
        row(Client, "`redirectUris` with 257 entries", |o| set(o, "/spec/redirectUris", json!(vec!["https://app.example.com/*"; 257])), Schema, "spec.redirectUris: Too many"),
        row(Client, "`oidc.accessType` unknown", |o| set(o, "/spec/oidc/accessType", json!("Private")), Schema, "Unsupported value: \"Private\""),
        row(Client, "`oidc.pkceMethod` unknown", |o| set(o, "/spec/oidc/pkceMethod", json!("S512")), Schema, "Unsupported value: \"S512\""),
        row(Client, "`oidc.accessTokenLifespanSeconds` 0", |o| set(o, "/spec/oidc/accessTokenLifespanSeconds", json!(0)), Schema, "spec.oidc.accessTokenLifespanSeconds in body should be greater than or equal to 1"),
        row(Client, "`credentials.rotationPeriodSeconds` under a minute", |o| set(o, "/spec/credentials/rotationPeriodSeconds", json!(59)), Schema, "spec.credentials.rotationPeriodSeconds in body should be greater than or equal to 60"),
        row(Client, "`credentials.secretName` not a DNS name", |o| set(o, "/spec/credentials/secretName", json!("App_Credentials")), Schema, "spec.credentials.secretName in body should match"),
        row(Client, "`credentials.clientSecretRef` without a Secret name", |o| set(o, "/spec/credentials/clientSecretRef", json!({"key": "secret"})), Schema, "spec.credentials.clientSecretRef.name: Required value"),
        row(Client, "`credentials.clientSecretRef.key` empty", |o| set(o, "/spec/credentials/clientSecretRef", json!({"name": "app-secret", "key": ""})), Schema, "spec.credentials.clientSecretRef.key in body should be at least 1 chars long"),
        row(Client, "two roles of the same name", |o| set(o, "/spec/roles", json!([{"name": "viewer"}, {"name": "viewer"}])), Schema, "spec.roles[1]: Duplicate value").ssa(".spec.roles: duplicate entries"),
        row(Client, "two protocol mappers of the same name", |o| set(o, "/spec/protocolMappers", json!([{"name": "tier", "protocolMapper": "oidc-hardcoded-claim-mapper"}, {"name": "tier", "protocolMapper": "oidc-hardcoded-claim-mapper"}])), Schema, "spec.protocolMappers[1]: Duplicate value").ssa(".spec.protocolMappers: duplicate entries"),
        row(Client, "a protocol mapper without a type", |o| set(o, "/spec/protocolMappers", json!([{"name": "tier"}])), Schema, "spec.protocolMappers[0].protocolMapper: Required value"),
        row(Client, "a service-account realm role twice", |o| set(o, "/spec/oidc", json!({"serviceAccountsEnabled": true, "serviceAccountRoles": {"realmRoles": ["viewer", "viewer"]}})), Schema, "spec.oidc.serviceAccountRoles.realmRoles[1]: Duplicate value").ssa(".spec.oidc.serviceAccountRoles.realmRoles: duplicate entries"),
        row(Client, "`saml.signatureAlgorithm` unknown", |o| { set(o, "/spec/protocol", json!("saml")); set(o, "/spec/saml/signatureAlgorithm", json!("RSA_MD5")); }, Schema, "Unsupported value: \"RSA_MD5\""),
        row(Client, "`oidc` on a SAML client", |o| { set(o, "/spec/protocol", json!("saml")); set(o, "/spec/oidc", json!({})); }, Cel, "spec.oidc is only for protocol openid-connect"),
        row(Client, "`saml` on an OIDC client", |o| set(o, "/spec/saml", json!({})), Cel, "spec.saml is only for protocol saml"),
        row(Client, "a SAML client with `clientSecretRef`", |o| { set(o, "/spec/protocol", json!("saml")); set(o, "/spec/credentials/clientSecretRef", json!({"name": "app-secret"})); }, Cel, "SAML clients have no client secret"),
        row(Client, "a SAML client with `rotationPeriodSeconds`", |o| { set(o, "/spec/protocol", json!("saml")); set(o, "/spec/credentials/rotationPeriodSeconds", json!(3600)); }, Cel, "SAML clients have no client secret"),
        row(Client, "a public client with a service account", |o| set(o, "/spec/oidc", json!({"accessType": "Public", "serviceAccountsEnabled": true})), Cel, "a public client cannot have a service account"),
        row(Client, "`serviceAccountRoles` without `serviceAccountsEnabled`", |o| set(o, "/spec/oidc", json!({"serviceAccountRoles": {"realmRoles": ["viewer"]}})), Cel, "oidc.serviceAccountRoles needs oidc.serviceAccountsEnabled: true"),
        row(Client, "`clientSecretRef` and `rotationPeriodSeconds`", |o| set(o, "/spec/credentials", json!({"clientSecretRef": {"name": "app-secret"}, "rotationPeriodSeconds": 3600})), Cel, "a secret from credentials.clientSecretRef is rotated by changing that Secret"),
        row(Client, "`secretName` equal to `clientSecretRef.name`", |o| set(o, "/spec/credentials", json!({"clientSecretRef": {"name": "app-secret"}, "secretName": "app-secret"})), Cel, "credentials.secretName is written by the operator and must differ"),
        row(Client, "a public client with `clientSecretRef`", |o| { set(o, "/spec/oidc", json!({"accessType": "Public"})); set(o, "/spec/credentials/clientSecretRef", json!({"name": "app-secret"})); }, Cel, "a public client has no secret"),
        row(Client, "a misspelt field (`spec.redirectURIs`)", |o| set(o, "/spec/redirectURIs", json!([])), UnknownField, "spec.redirectURIs"),
        row(Client, "`clientSecretRef` without a key", |o| set(o, "/spec/credentials/clientSecretRef", json!({"name": "app-secret"})), Accepted, "the key defaults to `client-secret`"),
        row(Client, "the same redirect URI twice", |o| set(o, "/spec/redirectUris", json!(["https://app.example.com/*", "https://app.example.com/*"])), Accepted, "Keycloak keeps the URIs as a set"),

        // ReconcilerComponent
        row(Component, "without `oci`", |o| unset(o, "/spec/oci"), Schema, "spec.oci: Required value"),
        row(Component, "without `kind`", |o| unset(o, "/spec/kind"), Schema, "spec.kind: Required value"),
        row(Component, "`oci` with a tag, no digest", |o| set(o, "/spec/oci", json!("registry.example.com/components/realm:1.0")), Cel, "must be pinned by digest"),
        row(Component, "`oci` with a short digest", |o| set(o, "/spec/oci", json!("registry.example.com/components/realm@sha256:abc")), Cel, "must be pinned by digest"),
        row(Component, "`oci` over 1024 characters", |o| set(o, "/spec/oci", json!(format!("registry.example.com/{}@sha256:{}", "c".repeat(1024), "a".repeat(64)))), Schema, "spec.oci: Too long"),
        row(Component, "`kind` without a group", |o| set(o, "/spec/kind", json!("KeycloakRealm")), Schema, "spec.kind in body should match"),
        update(Component, "`kind` changed", |o| set(o, "/spec/kind", json!("keycloak.wasmop.dev/KeycloakClient")), "kind is immutable"),
        row(Component, "an unknown grant", |o| set(o, "/spec/grants", json!(["cluster-admin"])), Schema, "Unsupported value: \"cluster-admin\""),
        row(Component, "a grant twice", |o| set(o, "/spec/grants", json!(["keycloak-admin", "keycloak-admin"])), Schema, "spec.grants[1]: Duplicate value").ssa(".spec.grants: duplicate entries"),
        row(Component, "a child kind twice", |o| set(o, "/spec/childKinds", json!(["v1/Secret", "v1/Secret"])), Schema, "spec.childKinds[1]: Duplicate value").ssa(".spec.childKinds: duplicate entries"),
        row(Component, "17 child kinds", |o| set(o, "/spec/childKinds", json!((0..17).map(|i| format!("v1/Kind{i}")).collect::<Vec<_>>())), Schema, "spec.childKinds: Too many"),
        row(Component, "`limits.guestTimeLimit` in hours", |o| set(o, "/spec/limits/guestTimeLimit", json!("1h")), Schema, "spec.limits.guestTimeLimit in body should match"),
        row(Component, "`limits.memoryMiB` 0", |o| set(o, "/spec/limits/memoryMiB", json!(0)), Schema, "spec.limits.memoryMiB in body should be greater than or equal to 1"),
        row(Component, "`limits.memoryMiB` over 4096", |o| set(o, "/spec/limits/memoryMiB", json!(4097)), Schema, "spec.limits.memoryMiB in body should be less than or equal to 4096"),
        row(Component, "`rollout.candidate` with a tag", |o| set(o, "/spec/rollout/candidate/oci", json!("registry.example.com/components/realm:2.0")), Cel, "must be pinned by digest"),
        row(Component, "`rollout.candidate.mode` unknown", |o| set(o, "/spec/rollout/candidate", json!({"oci": format!("registry.example.com/components/realm@sha256:{}", "b".repeat(64)), "mode": "Canary"})), Schema, "Unsupported value: \"Canary\""),
        row(Component, "`pullSecretName` empty", |o| set(o, "/spec/pullSecretName", json!("")), Schema, "spec.pullSecretName in body should be at least 1 chars long"),
    ]
}

/// How the API server answered one way of applying.
struct Answer {
    code: Option<u16>,
    message: String,
}

impl Answer {
    fn of(result: Result<(), kube::Error>) -> Result<Self> {
        match result {
            Ok(()) => Ok(Answer {
                code: None,
                message: String::new(),
            }),
            Err(kube::Error::Api(status)) => Ok(Answer {
                code: Some(status.code),
                message: status.message.clone(),
            }),
            Err(other) => Err(other).context("the API server did not answer"),
        }
    }

    fn refused(&self) -> bool {
        self.code.is_some()
    }
}

fn api(client: &Client, kind: Kind, namespace: &str) -> Api<DynamicObject> {
    if kind.cluster_scoped() {
        Api::all_with(client.clone(), &kind.resource())
    } else {
        Api::namespaced_with(client.clone(), namespace, &kind.resource())
    }
}

/// `kubectl apply --server-side --dry-run=server` (strict field validation).
async fn server_side_apply(client: &Client, kind: Kind, namespace: &str, object: &Value) -> Result<Answer> {
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let params = PatchParams::apply(TEST_MANAGER).force().dry_run().validation_strict();
    Answer::of(
        api(client, kind, namespace)
            .patch(name, &params, &Patch::Apply(object))
            .await
            .map(drop),
    )
}

/// `kubectl create --dry-run=server` (strict field validation), which
/// client-side `kubectl apply` also does for a new object.
async fn create(client: &Client, kind: Kind, namespace: &str, object: &Value) -> Result<Answer> {
    let resource = kind.resource();
    let namespace = (!kind.cluster_scoped()).then_some(namespace);
    let params = PostParams {
        dry_run: true,
        field_manager: Some(TEST_MANAGER.into()),
    };
    let mut request =
        Request::new(DynamicObject::url_path(&resource, namespace)).create(&params, serde_json::to_vec(object)?)?;
    let uri = format!("{}&fieldValidation=Strict", request.uri());
    *request.uri_mut() = uri.parse()?;
    Answer::of(client.request::<Value>(request).await.map(drop))
}

/// `kubectl patch --type merge --dry-run=server` of the spec of an
/// existing object (what `kubectl edit` sends).
async fn merge_patch(client: &Client, kind: Kind, namespace: &str, object: &Value) -> Result<Answer> {
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let params = PatchParams::default().dry_run().validation_strict();
    Answer::of(
        api(client, kind, namespace)
            .patch(name, &params, &Patch::Merge(&json!({"spec": object["spec"]})))
            .await
            .map(drop),
    )
}

/// The API server's message without the object's name in front and the
/// note that other rules were not checked.
fn essence(message: &str) -> String {
    let mut message = message.split_once(" is invalid: ").map_or(message, |(_, rest)| rest);
    for prefix in [": strict decoding error: ", "failed to create typed patch object ("] {
        if let Some((_, rest)) = message.split_once(prefix) {
            message = rest.split_once("): ").map_or(rest, |(_, rest)| rest);
        }
    }
    let message = match message.rfind("<nil>: Invalid value") {
        Some(at) if message[at..].contains("some validation rules were not checked") => &message[..at],
        _ => message,
    };
    // Several errors come as `[a, b]` or as lines `* a`.
    let message = match message.trim().strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']').unwrap_or(inner),
        None => message,
    };
    message
        .trim_end_matches([',', ' ', '\n'])
        .lines()
        .map(|l| l.trim().trim_start_matches('*').trim())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
        .replace('|', "\\|")
}

#[tokio::test]
async fn every_class_of_bad_input_is_refused_with_a_message_naming_the_field_or_rule() -> Result<()> {
    let client = kube_client().await?;
    install_crds(&client).await?;
    let ns = TestNamespace::create(&client, "admission").await?;
    let ns = ns.name();

    // Given one valid object of each kind that rows change (a cluster-scoped
    // `ReconcilerComponent` no operator follows: it carries no operator's label)
    let component = unique_name("admission");
    let existing = |kind: Kind| match kind {
        Kind::Component => component.clone(),
        _ => "existing".to_owned(),
    };
    for kind in [Kind::Realm, Kind::Client, Kind::Component] {
        let object = kind.manifest(&existing(kind));
        api(&client, kind, ns)
            .patch(
                &existing(kind),
                &PatchParams::apply(TEST_MANAGER).force(),
                &Patch::Apply(&object),
            )
            .await
            .with_context(|| format!("creating a valid {}", kind.resource().kind))?;
    }

    // When each bad manifest is applied, both as `kubectl create` (and
    // client-side `kubectl apply`) and as `kubectl apply --server-side`, or
    // as a change of the existing object
    let mut failures = Vec::new();
    let mut lines = vec![
        "| Input | Kind | Refused by | Message (`kubectl create`; `apply --server-side` alike unless said) |"
            .to_owned(),
        "| --- | --- | --- | --- |".to_owned(),
    ];
    for (i, row) in table().iter().enumerate() {
        let name = if row.update {
            existing(row.kind)
        } else {
            format!("row-{i}")
        };
        let mut object = row.kind.manifest(&name);
        (row.change)(&mut object);
        let (first, second) = if row.update {
            (
                merge_patch(&client, row.kind, ns, &object).await?,
                server_side_apply(&client, row.kind, ns, &object).await?,
            )
        } else {
            (
                create(&client, row.kind, ns, &object).await?,
                server_side_apply(&client, row.kind, ns, &object).await?,
            )
        };
        let kind = row.kind.resource().kind;
        let what = format!("{kind}: {}", row.input);

        // Then each is refused (422, or 400 for an unknown field; server-side
        // apply answers 500 for a value of the wrong type or an unknown
        // field) with a message naming the field or the rule — and the
        // accepted rows are accepted, so that the table says what is true
        let mut ssa_note = String::new();
        if row.by == By::Accepted {
            if first.refused() || second.refused() {
                failures.push(format!(
                    "{what}: expected accepted, got {} / {}",
                    first.message, second.message
                ));
            }
        } else {
            let want_first = if row.by == By::UnknownField { 400 } else { 422 };
            if first.code != Some(want_first) || !first.message.contains(row.fragment) {
                failures.push(format!(
                    "{what}: expected {want_first} with {:?}, got {:?} {:?}",
                    row.fragment, first.code, first.message
                ));
            }
            let want_second = row.ssa_fragment.unwrap_or(row.fragment);
            if !second.refused() || !second.message.contains(want_second) {
                failures.push(format!(
                    "{what} (server-side apply): expected a refusal with {want_second:?}, got {:?} {:?}",
                    second.code, second.message
                ));
            }
            if second.code != Some(422) {
                ssa_note = format!(
                    " (server-side apply: {}, `{}`)",
                    second.code.unwrap_or(0),
                    essence(&second.message)
                );
            }
        }
        let by = match row.by {
            By::Schema => "schema",
            By::Cel => "CEL",
            By::UnknownField => "strict field validation",
            By::Accepted => "— (accepted)",
        };
        let input = if row.update {
            format!("{} on update", row.input)
        } else {
            row.input.to_owned()
        };
        let message = if row.by == By::Accepted {
            row.fragment.to_owned()
        } else if first.refused() {
            format!("`{}`", essence(&first.message))
        } else {
            String::new()
        };
        lines.push(format!("| {input} | `{kind}` | {by} | {message}{ssa_note} |"));
    }
    println!("{}", lines.join("\n"));

    delete(&client, &component_kind(), "", &component).await?;
    assert!(
        failures.is_empty(),
        "{} rows do not hold:\n{}",
        failures.len(),
        failures.join("\n")
    );
    Ok(())
}
