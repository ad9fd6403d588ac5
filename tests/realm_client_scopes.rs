//! Stories of a realm's client scopes: declared by name in
//! `spec.clientScopes` with attributes and protocol mappers, Keycloak's own
//! scopes adjusted, the realm's default and optional client scopes; kept as
//! declared against changes made in Keycloak, removed only when the operator
//! made them — checked in what the real Keycloak holds and in the tokens it
//! issues.

mod client_common;

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result};
use client_common::{client_credentials_grant, jwt_claims};
use keycloak_operator_e2e::bench::RealmResyncs;
use keycloak_operator_e2e::operator::{Operator, OperatorOptions};
use keycloak_operator_e2e::resources::{KeycloakBed, delete, realm_kind, wait_ready, wait_realm_refused};
use keycloak_operator_e2e::testbed::{KeycloakAdmin, TestRealm, eventually, unique_name};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const RECORD: &str = "keycloak.wasmop.dev/managed-client-scopes";

/// A client scope as Keycloak holds it, found by name.
async fn scope_in_keycloak(admin: &KeycloakAdmin, realm: &str, name: &str) -> Result<Option<Value>> {
    let scopes = admin
        .get_json(&format!("/realms/{realm}/client-scopes"))
        .await?
        .context("realm exists")?;
    Ok(scopes
        .as_array()
        .into_iter()
        .flatten()
        .find(|scope| scope["name"] == name)
        .cloned())
}

async fn scope_id(admin: &KeycloakAdmin, realm: &str, name: &str) -> Result<String> {
    let scope = scope_in_keycloak(admin, realm, name)
        .await?
        .with_context(|| format!("client scope {name} exists"))?;
    Ok(scope["id"].as_str().unwrap_or_default().to_owned())
}

fn mapper<'a>(scope: &'a Value, name: &str) -> Option<&'a Value> {
    scope["protocolMappers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["name"] == name)
}

/// The names in one of the realm's scope lists (`default` or `optional`).
async fn realm_list(admin: &KeycloakAdmin, realm: &str, list: &str) -> Result<BTreeSet<String>> {
    let held = admin
        .get_json(&format!("/realms/{realm}/default-{list}-client-scopes"))
        .await?
        .context("realm exists")?;
    Ok(held
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| s["name"].as_str().unwrap_or_default().to_owned())
        .collect())
}

fn names(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// The client scopes the stories declare: one of the operator's own with
/// two mappers, a SAML one, Keycloak's `profile` with a description of the
/// spec's, and both of the realm's lists.
fn declared_scopes() -> Value {
    json!({
        "clientScopes": [
            {"name": "orders", "description": "Orders API",
             "attributes": {"include.in.token.scope": "true", "display.on.consent.screen": "false"},
             "protocolMappers": [
                 {"name": "orders-audience", "protocolMapper": "oidc-audience-mapper",
                  "config": {"included.custom.audience": "orders-api", "access.token.claim": "true"}},
                 {"name": "tier", "protocolMapper": "oidc-hardcoded-claim-mapper",
                  "config": {"claim.name": "tier", "claim.value": "gold", "jsonType.label": "String",
                             "access.token.claim": "true"}},
             ]},
            {"name": "saml-extra", "protocol": "saml", "description": "SAML extras"},
            {"name": "profile", "description": "Profile, as the platform team words it"},
        ],
        "defaultClientScopes": ["basic", "orders", "profile", "roles"],
        "optionalClientScopes": ["email", "offline_access"],
    })
}

/// Makes a confidential client with a service account by hand, as an
/// application team would; returns its secret.
async fn client_made_by_hand(admin: &KeycloakAdmin, realm: &str, client_id: &str) -> Result<String> {
    let secret = "made-by-hand-secret";
    admin
        .expect(
            Method::POST,
            &format!("/realms/{realm}/clients"),
            Some(
                &json!({"clientId": client_id, "publicClient": false, "serviceAccountsEnabled": true,
                         "standardFlowEnabled": false, "secret": secret}),
            ),
            StatusCode::CREATED,
        )
        .await?;
    Ok(secret.to_owned())
}

#[tokio::test]
async fn declared_client_scopes_and_the_realms_scope_lists_are_created_reach_tokens_and_resyncs_only_read() -> Result<()>
{
    let bed = KeycloakBed::given("realm-scopes").await?;
    let ns = bed.ns.name();
    let mut options = OperatorOptions::standard(&[ns]);
    options.resync = "1s".into();
    let operator = Operator::start(&options).await?;
    let name = unique_name("scopes");
    let _name_cleanup = TestRealm::cleanup(&name);

    // When a realm declares client scopes with mappers, and its scope lists
    bed.apply_realm(&name, declared_scopes()).await?;

    // Then Keycloak holds them as declared
    wait_ready(&bed.client, &realm_kind(), ns, "r").await?;
    let orders = scope_in_keycloak(&bed.admin, &name, "orders")
        .await?
        .context("orders exists")?;
    assert_eq!(orders["description"], "Orders API");
    assert_eq!(orders["protocol"], "openid-connect");
    assert_eq!(orders["attributes"]["display.on.consent.screen"], "false");
    let tier = mapper(&orders, "tier").context("the tier mapper")?;
    assert_eq!(tier["protocolMapper"], "oidc-hardcoded-claim-mapper");
    assert_eq!(tier["config"]["claim.value"], "gold");
    assert!(mapper(&orders, "orders-audience").is_some());
    let saml = scope_in_keycloak(&bed.admin, &name, "saml-extra")
        .await?
        .context("saml-extra exists")?;
    assert_eq!(saml["protocol"], "saml");
    let profile = scope_in_keycloak(&bed.admin, &name, "profile")
        .await?
        .context("profile")?;
    assert_eq!(profile["description"], "Profile, as the platform team words it");
    assert!(
        mapper(&profile, "family name").is_some(),
        "Keycloak's own mappers of profile stay"
    );
    assert_eq!(
        realm_list(&bed.admin, &name, "default").await?,
        names(&["basic", "orders", "profile", "roles"])
    );
    assert_eq!(
        realm_list(&bed.admin, &name, "optional").await?,
        names(&["email", "offline_access"])
    );
    let held = bed.admin.get_json(&format!("/realms/{name}")).await?.context("realm")?;
    assert_eq!(
        held["attributes"][RECORD], "[\"orders\",\"saml-extra\"]",
        "the record names the scopes the operator made, not Keycloak's profile"
    );

    // And a client made afterwards gets the realm's default scopes, so its
    // tokens carry what the scope's mappers put in them
    let secret = client_made_by_hand(&bed.admin, &name, "reporting").await?;
    let token_endpoint = format!("{}/realms/{name}/protocol/openid-connect/token", bed.admin.base_url());
    let (status, answer) = client_credentials_grant(&token_endpoint, "reporting", &secret).await?;
    assert_eq!(status, 200, "{answer}");
    let claims = jwt_claims(answer["access_token"].as_str().context("access_token")?)?;
    assert_eq!(claims["tier"], "gold", "{claims}");
    let audience = match &claims["aud"] {
        Value::Array(all) => all.iter().any(|a| a == "orders-api"),
        one => one == "orders-api",
    };
    assert!(audience, "the orders audience: {claims}");
    assert!(
        claims["scope"]
            .as_str()
            .unwrap_or_default()
            .split(' ')
            .any(|s| s == "orders"),
        "{claims}"
    );
    assert!(
        claims.get("email_verified").is_none(),
        "email is only optional now: {claims}"
    );

    // And with nothing to change, resyncs only read, and a bounded number
    // of times: the realm, its client scopes (mappers included), and each
    // of its two scope lists
    let steady = RealmResyncs::measure(&operator, "keycloak.wasmop.dev/KeycloakRealm", Duration::from_secs(10)).await?;
    steady.assert_only_read(4.0);
    delete(&bed.client, &realm_kind(), ns, "r").await?;
    Ok(())
}

#[tokio::test]
async fn client_scopes_changed_in_keycloak_are_put_back_and_only_scopes_the_operator_made_are_deleted() -> Result<()> {
    // Given an operator whose resync is an hour away: only the drift watch
    // (Keycloak's admin events, polled every second) can notice a change
    let bed = KeycloakBed::given("realm-scopes-drift").await?;
    let ns = bed.ns.name();
    let _operator = Operator::start(&OperatorOptions::drift_watched(&[ns])).await?;
    let name = unique_name("scopedrift");
    let _name_cleanup = TestRealm::cleanup(&name);

    // Given a client scope made by hand in a realm the resource adopts
    bed.admin.create_realm(&name).await?;
    bed.admin
        .expect(
            Method::POST,
            &format!("/realms/{name}/client-scopes"),
            Some(&json!({"name": "legacy", "protocol": "openid-connect"})),
            StatusCode::CREATED,
        )
        .await?;
    let mut spec = declared_scopes();
    spec["adoptExisting"] = json!(true);
    bed.apply_realm(&name, spec.clone()).await?;
    wait_ready(&bed.client, &realm_kind(), ns, "r").await?;

    // (Past the window in which an admin event on a path the operator just
    // wrote is taken for its own)
    tokio::time::sleep(Duration::from_secs(4)).await;

    // When someone changes the scope's description and a mapper's claim,
    // deletes a declared mapper, adds a mapper of their own, takes the
    // scope out of the realm's defaults and puts their own scope in
    let orders_id = scope_id(&bed.admin, &name, "orders").await?;
    let mut orders = scope_in_keycloak(&bed.admin, &name, "orders")
        .await?
        .context("orders")?;
    let mut tier = mapper(&orders, "tier").context("tier")?.clone();
    let audience_id = mapper(&orders, "orders-audience").context("audience")?["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    orders["description"] = json!("changed by hand");
    orders.as_object_mut().context("scope")?.remove("protocolMappers");
    bed.admin
        .expect(
            Method::PUT,
            &format!("/realms/{name}/client-scopes/{orders_id}"),
            Some(&orders),
            StatusCode::NO_CONTENT,
        )
        .await?;
    tier["config"]["claim.value"] = json!("silver");
    let tier_id = tier["id"].as_str().unwrap_or_default().to_owned();
    let models = format!("/realms/{name}/client-scopes/{orders_id}/protocol-mappers/models");
    bed.admin
        .expect(
            Method::PUT,
            &format!("{models}/{tier_id}"),
            Some(&tier),
            StatusCode::NO_CONTENT,
        )
        .await?;
    bed.admin
        .expect(
            Method::DELETE,
            &format!("{models}/{audience_id}"),
            None,
            StatusCode::NO_CONTENT,
        )
        .await?;
    bed.admin
        .expect(
            Method::POST,
            &models,
            Some(
                &json!({"name": "manual", "protocol": "openid-connect", "protocolMapper": "oidc-audience-mapper",
                         "config": {"included.custom.audience": "by-hand"}}),
            ),
            StatusCode::CREATED,
        )
        .await?;
    bed.admin
        .expect(
            Method::DELETE,
            &format!("/realms/{name}/default-default-client-scopes/{orders_id}"),
            None,
            StatusCode::NO_CONTENT,
        )
        .await?;
    let legacy_id = scope_id(&bed.admin, &name, "legacy").await?;
    bed.admin
        .expect(
            Method::PUT,
            &format!("/realms/{name}/default-default-client-scopes/{legacy_id}"),
            None,
            StatusCode::NO_CONTENT,
        )
        .await?;

    // Then the managed parts are put back, and the rest is left alone
    eventually(
        "the client scope's drift to be reverted by the drift watch, long before the resync",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || async {
            let orders = scope_in_keycloak(&bed.admin, &name, "orders").await?;
            let defaults = realm_list(&bed.admin, &name, "default").await?;
            let reverted = orders.as_ref().is_some_and(|o| {
                o["description"] == "Orders API"
                    && mapper(o, "tier").is_some_and(|t| t["config"]["claim.value"] == "gold")
                    && mapper(o, "orders-audience").is_some()
            }) && defaults == names(&["basic", "orders", "profile", "roles"]);
            Ok(reverted.then_some(()))
        },
    )
    .await?;
    let orders = scope_in_keycloak(&bed.admin, &name, "orders")
        .await?
        .context("orders")?;
    assert!(mapper(&orders, "manual").is_some(), "a mapper made by hand stays");

    // When, alone, a scope the realm's optional scopes never held is added
    // to them by hand (an event on no object the operator read before)
    tokio::time::sleep(Duration::from_secs(4)).await;
    bed.admin
        .expect(
            Method::PUT,
            &format!("/realms/{name}/default-optional-client-scopes/{legacy_id}"),
            None,
            StatusCode::NO_CONTENT,
        )
        .await?;

    // Then the watch of the list itself sees it, and it is taken out again
    eventually(
        "legacy to leave the optional scopes, long before the resync",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || async {
            let optional = realm_list(&bed.admin, &name, "optional").await?;
            Ok((optional == names(&["email", "offline_access"])).then_some(()))
        },
    )
    .await?;

    // When the spec stops listing every scope but profile, and the lists
    let spec = json!({"adoptExisting": true, "clientScopes": [declared_scopes()["clientScopes"][2].clone()]});
    bed.apply_realm(&name, spec).await?;

    // Then the operator's scopes go, even one still among the realm's
    // defaults; the hand-made scope and Keycloak's own stay
    eventually(
        "orders and saml-extra to be deleted",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async {
            let orders = scope_in_keycloak(&bed.admin, &name, "orders").await?;
            let saml = scope_in_keycloak(&bed.admin, &name, "saml-extra").await?;
            Ok((orders.is_none() && saml.is_none()).then_some(()))
        },
    )
    .await?;
    wait_ready(&bed.client, &realm_kind(), ns, "r").await?;
    for kept in ["legacy", "profile", "email"] {
        assert!(
            scope_in_keycloak(&bed.admin, &name, kept).await?.is_some(),
            "{kept} stays"
        );
    }
    let held = bed.admin.get_json(&format!("/realms/{name}")).await?.context("realm")?;
    let record = held["attributes"][RECORD].as_str().unwrap_or_default();
    assert_eq!(record, "", "nothing is recorded any more");
    delete(&bed.client, &realm_kind(), ns, "r").await?;
    Ok(())
}

#[tokio::test]
async fn a_scope_list_naming_a_missing_scope_is_reported_with_its_field_and_heals() -> Result<()> {
    let bed = KeycloakBed::given("realm-scopes-missing").await?;
    let ns = bed.ns.name();
    let _operator = Operator::start(&OperatorOptions::standard(&[ns])).await?;
    let name = unique_name("scopemissing");
    let _name_cleanup = TestRealm::cleanup(&name);

    // When the realm's optional scopes name a scope that neither the spec
    // nor Keycloak has
    let spec = json!({"optionalClientScopes": ["email", "billing"]});
    bed.apply_realm(&name, spec).await?;

    // Then the realm is not Ready, and the message names the field and the scope
    let message = wait_realm_refused(&bed.client, ns, "r", "ClientScopeNotFound").await?;
    assert!(
        message.contains("spec.optionalClientScopes") && message.contains("billing"),
        "{message}"
    );
    assert!(
        !realm_list(&bed.admin, &name, "optional").await?.contains("email"),
        "nothing of the lists was written before the check"
    );

    // When the scope appears (made by hand), the realm heals at its retry
    bed.admin
        .expect(
            Method::POST,
            &format!("/realms/{name}/client-scopes"),
            Some(&json!({"name": "billing", "protocol": "openid-connect"})),
            StatusCode::CREATED,
        )
        .await?;
    wait_ready(&bed.client, &realm_kind(), ns, "r").await?;
    assert_eq!(
        realm_list(&bed.admin, &name, "optional").await?,
        names(&["email", "billing"])
    );
    assert!(
        !realm_list(&bed.admin, &name, "default").await?.contains("email"),
        "email left the default scopes, which the spec does not manage, to become optional"
    );
    delete(&bed.client, &realm_kind(), ns, "r").await?;
    Ok(())
}
