//! Stories of a realm's identity providers: declared by alias with their
//! config and mappers, the client secret taken from a Secret (never from
//! the spec) and sent again only when the Secret changes; kept as declared,
//! and removed only when the operator made them — checked in what the real
//! Keycloak holds.

use std::time::Duration;

use anyhow::{Context, Result};
use keycloak_operator_e2e::bench::RealmResyncs;
use keycloak_operator_e2e::operator::{Operator, OperatorOptions};
use keycloak_operator_e2e::resources::{KeycloakBed, apply, delete, kind, realm_kind, wait_ready, wait_realm_refused};
use keycloak_operator_e2e::testbed::{KeycloakAdmin, TestRealm, eventually, unique_name};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const FINGERPRINT: &str = "keycloak.wasmop.dev/client-secret-sha256";

/// Puts `secret` in the Secret `corp-idp` (key `client-secret`).
async fn idp_secret(bed: &KeycloakBed, secret: &str) -> Result<()> {
    let manifest = json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "corp-idp"},
        "stringData": {"client-secret": secret},
    });
    apply(&bed.client, &kind("v1", "Secret", "secrets"), bed.ns.name(), manifest).await?;
    Ok(())
}

async fn provider(admin: &KeycloakAdmin, realm: &str, alias: &str) -> Result<Option<Value>> {
    admin
        .get_json(&format!("/realms/{realm}/identity-provider/instances/{alias}"))
        .await
}

async fn mappers(admin: &KeycloakAdmin, realm: &str, alias: &str) -> Result<Vec<Value>> {
    let held = admin
        .get_json(&format!("/realms/{realm}/identity-provider/instances/{alias}/mappers"))
        .await?
        .context("the provider exists")?;
    Ok(held.as_array().cloned().unwrap_or_default())
}

fn named<'a>(items: &'a [Value], name: &str) -> Option<&'a Value> {
    items.iter().find(|item| item["name"] == name)
}

/// A corporate OpenID Connect provider with a mapper, and GitHub, both with
/// their secret from `corp-idp`.
fn declared_providers() -> Value {
    json!({"identityProviders": [
        {"alias": "corp", "providerId": "oidc", "displayName": "Corporate login", "trustEmail": true,
         "config": {"clientId": "keycloak", "authorizationUrl": "https://idp.example.com/authorize",
                    "tokenUrl": "https://idp.example.com/token", "clientAuthMethod": "client_secret_post",
                    "syncMode": "IMPORT"},
         "clientSecretRef": {"name": "corp-idp"},
         "mappers": [{"name": "department", "identityProviderMapper": "oidc-user-attribute-idp-mapper",
                      "config": {"claim": "dept", "user.attribute": "department", "syncMode": "INHERIT"}}]},
        {"alias": "github", "providerId": "github", "config": {"clientId": "gh-app"},
         "clientSecretRef": {"name": "corp-idp", "key": "client-secret"}},
    ]})
}

#[tokio::test]
async fn providers_are_created_with_their_secret_which_is_sent_again_only_when_the_secret_changes() -> Result<()> {
    let bed = KeycloakBed::given("realm-idps").await?;
    let ns = bed.ns.name();
    let mut options = OperatorOptions::standard(&[ns]);
    options.resync = "1s".into();
    let operator = Operator::start(&options).await?;
    let name = unique_name("idps");
    let _name_cleanup = TestRealm::cleanup(&name);

    // Given the client secret in a Secret, and a provider made by hand
    idp_secret(&bed, "first-secret").await?;
    bed.admin.create_realm(&name).await?;
    bed.admin
        .expect(
            Method::POST,
            &format!("/realms/{name}/identity-provider/instances"),
            Some(&json!({"alias": "legacy", "providerId": "oidc", "config": {"clientId": "old"}})),
            StatusCode::CREATED,
        )
        .await?;

    // When the realm declares two providers
    let mut spec = declared_providers();
    spec["adoptExisting"] = json!(true);
    bed.apply_realm(&name, spec.clone()).await?;

    // Then Keycloak holds them, the secret set (and masked) and fingerprinted
    wait_ready(&bed.client, &realm_kind(), ns, "r").await?;
    let corp = provider(&bed.admin, &name, "corp").await?.context("corp exists")?;
    assert_eq!(corp["displayName"], "Corporate login");
    assert_eq!(corp["trustEmail"], true);
    assert_eq!(corp["config"]["tokenUrl"], "https://idp.example.com/token");
    assert_eq!(
        corp["config"]["clientSecret"], "**********",
        "set, and masked by Keycloak"
    );
    let first_print = corp["config"][FINGERPRINT].as_str().unwrap_or_default().to_owned();
    assert_eq!(first_print.len(), 64, "a SHA-256 of the secret: {first_print}");
    assert!(!serde_json::to_string(&corp)?.contains("first-secret"));
    let held = mappers(&bed.admin, &name, "corp").await?;
    let department = named(&held, "department").context("the department mapper")?;
    assert_eq!(department["config"]["user.attribute"], "department");
    let github = provider(&bed.admin, &name, "github").await?.context("github exists")?;
    assert_eq!(github["providerId"], "github");
    assert_eq!(github["config"]["clientSecret"], "**********");

    // And with nothing to change, resyncs only read: the realm, the
    // providers, and the one provider's mappers the spec lists
    let steady = RealmResyncs::measure(&operator, "keycloak.wasmop.dev/KeycloakRealm", Duration::from_secs(10)).await?;
    steady.assert_only_read(3.0);

    // When the Secret changes
    idp_secret(&bed, "second-secret").await?;

    // Then the new secret is sent, once
    eventually(
        "the new secret to reach Keycloak",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || async {
            let corp = provider(&bed.admin, &name, "corp").await?.context("corp")?;
            let print = corp["config"][FINGERPRINT].as_str().unwrap_or_default().to_owned();
            Ok((print.len() == 64 && print != first_print).then_some(()))
        },
    )
    .await?;
    let steady = RealmResyncs::measure(&operator, "keycloak.wasmop.dev/KeycloakRealm", Duration::from_secs(5)).await?;
    assert_eq!(steady.writes, 0.0, "sent once, not at every resync");

    // When someone changes a managed config key and adds a mapper of their own
    let mut corp = provider(&bed.admin, &name, "corp").await?.context("corp")?;
    corp["config"]["tokenUrl"] = json!("https://elsewhere.example.com/token");
    bed.admin
        .expect(
            Method::PUT,
            &format!("/realms/{name}/identity-provider/instances/corp"),
            Some(&corp),
            StatusCode::NO_CONTENT,
        )
        .await?;
    bed.admin
        .expect(
            Method::POST,
            &format!("/realms/{name}/identity-provider/instances/corp/mappers"),
            Some(&json!({"name": "manual", "identityProviderAlias": "corp",
                         "identityProviderMapper": "hardcoded-attribute-idp-mapper",
                         "config": {"attribute": "origin", "attribute.value": "corp"}})),
            StatusCode::CREATED,
        )
        .await?;

    // Then the config is put back, without losing the secret, and the
    // hand-made mapper stays
    eventually(
        "the token URL to be put back",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || async {
            let corp = provider(&bed.admin, &name, "corp").await?.context("corp")?;
            Ok((corp["config"]["tokenUrl"] == "https://idp.example.com/token").then_some(()))
        },
    )
    .await?;
    let corp = provider(&bed.admin, &name, "corp").await?.context("corp")?;
    assert_eq!(corp["config"]["clientSecret"], "**********");
    assert!(named(&mappers(&bed.admin, &name, "corp").await?, "manual").is_some());

    // When the spec stops listing GitHub
    let mut spec = declared_providers();
    spec["adoptExisting"] = json!(true);
    spec["identityProviders"] = json!([spec["identityProviders"][0].clone()]);
    bed.apply_realm(&name, spec).await?;

    // Then the operator's GitHub provider goes; the hand-made one stays
    eventually(
        "github to be deleted",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || async { Ok(provider(&bed.admin, &name, "github").await?.is_none().then_some(())) },
    )
    .await?;
    assert!(
        provider(&bed.admin, &name, "legacy").await?.is_some(),
        "made by hand: stays"
    );
    let held = bed.admin.get_json(&format!("/realms/{name}")).await?.context("realm")?;
    assert_eq!(
        held["attributes"]["keycloak.wasmop.dev/managed-identity-providers"],
        "[\"corp\"]"
    );
    delete(&bed.client, &realm_kind(), ns, "r").await?;
    Ok(())
}

#[tokio::test]
async fn a_provider_whose_secret_is_missing_is_reported_with_its_field_and_made_once_it_exists() -> Result<()> {
    let bed = KeycloakBed::given("realm-idps-missing").await?;
    let ns = bed.ns.name();
    let _operator = Operator::start(&OperatorOptions::standard(&[ns])).await?;
    let name = unique_name("idpmissing");
    let _name_cleanup = TestRealm::cleanup(&name);

    // When a provider's secret names a Secret that does not exist
    bed.apply_realm(&name, declared_providers()).await?;

    // Then the realm is not Ready, the field is named, and no provider is made
    let message = wait_realm_refused(&bed.client, ns, "r", "SecretNotFound").await?;
    assert!(
        message.contains("spec.identityProviders[0].clientSecretRef") && message.contains("corp-idp"),
        "{message}"
    );
    assert!(provider(&bed.admin, &name, "corp").await?.is_none());

    // When the Secret appears, the providers are made at the retry
    idp_secret(&bed, "late-secret").await?;
    wait_ready(&bed.client, &realm_kind(), ns, "r").await?;
    assert!(provider(&bed.admin, &name, "corp").await?.is_some());
    delete(&bed.client, &realm_kind(), ns, "r").await?;
    Ok(())
}
