//! Stories of a `KeycloakClient`'s life, checked both in the resource's
//! status and in what the real Keycloak holds.

mod client_common;

use std::time::Duration;

use anyhow::{Context, Result};
use client_common::{REALM, RealmBed, client_credentials_grant, client_options, jwt_claims};
use keycloak_operator_e2e::bench::writes;
use keycloak_operator_e2e::operator::Operator;
use keycloak_operator_e2e::resources::{
    apply, client_kind, condition, delete, keycloak_client, secret_data, wait_condition, wait_gone, wait_ready,
};
use keycloak_operator_e2e::testbed::{eventually, unique_name};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const OWNER_UID: &str = "keycloak.wasmop.dev/owner-uid";

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

fn mapper_names(client: &Value) -> Vec<String> {
    let mut names: Vec<String> = client["protocolMappers"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m["name"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn a_confidential_client_gets_a_secret_that_obtains_a_token_with_its_roles_and_claims() -> Result<()> {
    let bed = RealmBed::create("client-cc", json!({})).await?;
    let ns = bed.ns();
    let _operator = Operator::start(&client_options(&[ns], "5m")).await?;
    let client_id = unique_name("orders");

    // When a confidential client with a service account, roles and mappers is applied
    apply(
        &bed.client,
        &client_kind(),
        ns,
        keycloak_client(
            "orders",
            &client_id,
            REALM,
            None,
            json!({
                "name": "Orders API",
                "oidc": {
                    "accessType": "Confidential",
                    "standardFlowEnabled": false,
                    "serviceAccountsEnabled": true,
                    "serviceAccountRoles": {
                        "realmRoles": ["offline_access"],
                        "clientRoles": {"realm-management": ["view-users"], client_id.as_str(): ["orders.read"]},
                    },
                },
                "roles": [{"name": "orders.read", "description": "Read orders"}, {"name": "orders.write"}],
                "protocolMappers": [
                    {"name": "team", "protocolMapper": "oidc-hardcoded-claim-mapper",
                     "config": {"claim.name": "team", "claim.value": "checkout", "jsonType.label": "String",
                                "access.token.claim": "true"}},
                    {"name": "audience", "protocolMapper": "oidc-audience-mapper",
                     "config": {"included.client.audience": client_id.as_str(), "access.token.claim": "true"}},
                ],
            }),
        ),
    )
    .await?;

    // Then it becomes Ready, naming its Secret and never a secret value
    let object = wait_ready(&bed.client, &client_kind(), ns, "orders").await?;
    let status = &object["status"];
    assert_eq!(status["realm"], bed.realm.as_str());
    assert_eq!(status["keycloak"], format!("{ns}/sso"));
    assert_eq!(status["credentialsSecret"], "orders-credentials");
    assert_eq!(status["reconciledBy"]["name"], "keycloak-operator/client");
    assert!(status["secretRotation"]["secretCreatedAt"].is_string(), "{status}");

    // And the Secret holds everything an application needs
    let data = secret_data(&bed.client, ns, "orders-credentials")
        .await?
        .context("the credentials Secret exists")?;
    let secret = data.get("client-secret").context("client-secret")?;
    assert!(!status.to_string().contains(secret.as_str()), "no secret in status");
    assert_eq!(data["client-id"], client_id);
    assert_eq!(
        data["issuer-url"],
        format!("{}/realms/{}", bed.admin.base_url(), bed.realm)
    );
    assert!(data["discovery-url"].ends_with("/.well-known/openid-configuration"));

    // And a real token is obtained using only what the Secret holds
    let (code, answer) = client_credentials_grant(&data["token-endpoint"], &data["client-id"], secret).await?;
    assert_eq!(code, 200, "token request refused: {answer}");
    let claims = jwt_claims(answer["access_token"].as_str().context("access_token")?)?;
    assert_eq!(claims["iss"], data["issuer-url"].as_str());
    assert_eq!(claims["azp"], client_id.as_str());
    // with the mapped roles
    assert!(
        names(&claims["realm_access"]["roles"]).contains(&"offline_access".to_owned()),
        "{claims}"
    );
    assert!(
        names(&claims["resource_access"]["realm-management"]["roles"]).contains(&"view-users".to_owned()),
        "{claims}"
    );
    assert_eq!(
        names(&claims["resource_access"][&client_id]["roles"]),
        vec!["orders.read"]
    );
    // and the mappers' claims
    assert_eq!(claims["team"], "checkout");
    let audience = match &claims["aud"] {
        Value::String(one) => vec![one.clone()],
        many => names(many),
    };
    assert!(audience.contains(&client_id), "{claims}");

    // And Keycloak holds the client as declared, owned by the resource
    let held = bed.client_in_keycloak(&client_id).await?.context("client exists")?;
    assert_eq!(held["name"], "Orders API");
    assert_eq!(held["publicClient"], false);
    assert_eq!(held["standardFlowEnabled"], false);
    assert_eq!(held["serviceAccountsEnabled"], true);
    assert_eq!(held["attributes"][OWNER_UID], object["metadata"]["uid"]);
    assert_eq!(status["clientUuid"], held["id"]);
    assert_eq!(mapper_names(&held), vec!["audience", "team"]);

    // When the resource is deleted (deletionPolicy Delete by default)
    delete(&bed.client, &client_kind(), ns, "orders").await?;
    wait_gone(&bed.client, &client_kind(), ns, "orders", Duration::from_secs(60)).await?;
    // Then the client is gone from Keycloak
    assert!(bed.client_in_keycloak(&client_id).await?.is_none());
    bed.teardown(&[]).await
}

#[tokio::test]
async fn a_public_pkce_client_and_a_saml_client_are_created_as_declared() -> Result<()> {
    let bed = RealmBed::create("client-kinds", json!({})).await?;
    let ns = bed.ns();
    let _operator = Operator::start(&client_options(&[ns], "5m")).await?;
    let spa = unique_name("spa");
    // A SAML client's clientId is its entity ID, typically a URL.
    let entity_id = format!("https://{}.example.com/saml/metadata", unique_name("sp"));

    // When a public single-page app with PKCE and a SAML service provider are applied
    apply(
        &bed.client,
        &client_kind(),
        ns,
        keycloak_client(
            "spa",
            &spa,
            REALM,
            None,
            json!({
                "redirectUris": ["https://spa.example.com/callback"],
                "rootUrl": "https://spa.example.com",
                "oidc": {
                    "accessType": "Public",
                    "pkceMethod": "S256",
                    "standardFlowEnabled": true,
                    "directAccessGrantsEnabled": false,
                    "frontchannelLogout": true,
                    "webOrigins": ["+"],
                    "postLogoutRedirectUris": ["https://spa.example.com/bye"],
                    "accessTokenLifespanSeconds": 120,
                },
                "defaultClientScopes": ["basic", "profile", "email", "web-origins"],
                "optionalClientScopes": ["offline_access"],
            }),
        ),
    )
    .await?;
    apply(
        &bed.client,
        &client_kind(),
        ns,
        keycloak_client(
            "sp",
            &entity_id,
            REALM,
            None,
            json!({
                "protocol": "saml",
                "name": "Service provider",
                "redirectUris": ["https://sp.example.com/*"],
                "saml": {
                    "assertionConsumerUrlPost": "https://sp.example.com/saml/acs",
                    "logoutUrlPost": "https://sp.example.com/saml/logout",
                    "nameIdFormat": "email",
                    "forceNameIdFormat": true,
                    "signDocuments": true,
                    "signAssertions": true,
                    "signatureAlgorithm": "RSA_SHA256",
                    "clientSignatureRequired": false,
                    "forcePostBinding": true,
                },
                "protocolMappers": [
                    {"name": "email", "protocolMapper": "saml-user-property-mapper",
                     "config": {"user.attribute": "email", "attribute.name": "email",
                                "attribute.nameformat": "Basic", "friendly.name": "Email"}},
                ],
            }),
        ),
    )
    .await?;

    // Then both become Ready, and neither has a Secret (they have no secret)
    let public = wait_ready(&bed.client, &client_kind(), ns, "spa").await?;
    let saml = wait_ready(&bed.client, &client_kind(), ns, "sp").await?;
    for object in [&public, &saml] {
        assert!(
            object["status"].get("credentialsSecret").is_none(),
            "{}",
            object["status"]
        );
    }
    assert!(secret_data(&bed.client, ns, "spa-credentials").await?.is_none());

    // And Keycloak holds the public client as declared
    let held = bed.client_in_keycloak(&spa).await?.context("public client exists")?;
    assert_eq!(held["publicClient"], true);
    assert_eq!(held["standardFlowEnabled"], true);
    assert_eq!(held["directAccessGrantsEnabled"], false);
    assert_eq!(held["frontchannelLogout"], true);
    assert_eq!(held["rootUrl"], "https://spa.example.com");
    assert_eq!(names(&held["redirectUris"]), vec!["https://spa.example.com/callback"]);
    assert_eq!(names(&held["webOrigins"]), vec!["+"]);
    let attributes = &held["attributes"];
    assert_eq!(attributes["pkce.code.challenge.method"], "S256");
    assert_eq!(attributes["post.logout.redirect.uris"], "https://spa.example.com/bye");
    assert_eq!(attributes["access.token.lifespan"], "120");
    let mut scopes = names(&held["defaultClientScopes"]);
    scopes.sort();
    assert_eq!(scopes, vec!["basic", "email", "profile", "web-origins"]);
    assert_eq!(names(&held["optionalClientScopes"]), vec!["offline_access"]);
    assert_eq!(held["attributes"][OWNER_UID], public["metadata"]["uid"]);

    // And the SAML client as declared
    let held = bed
        .client_in_keycloak(&entity_id)
        .await?
        .context("SAML client exists")?;
    assert_eq!(held["protocol"], "saml");
    assert_eq!(held["name"], "Service provider");
    let attributes = &held["attributes"];
    assert_eq!(
        attributes["saml_assertion_consumer_url_post"],
        "https://sp.example.com/saml/acs"
    );
    assert_eq!(
        attributes["saml_single_logout_service_url_post"],
        "https://sp.example.com/saml/logout"
    );
    assert_eq!(attributes["saml_name_id_format"], "email");
    assert_eq!(attributes["saml_force_name_id_format"], "true");
    assert_eq!(attributes["saml.server.signature"], "true");
    assert_eq!(attributes["saml.assertion.signature"], "true");
    assert_eq!(attributes["saml.signature.algorithm"], "RSA_SHA256");
    assert_eq!(attributes["saml.client.signature"], "false");
    assert_eq!(attributes["saml.force.post.binding"], "true");
    assert_eq!(mapper_names(&held), vec!["email"]);
    assert_eq!(held["protocolMappers"][0]["protocol"], "saml");
    assert_eq!(held["protocolMappers"][0]["config"]["attribute.name"], "email");

    bed.teardown(&["spa", "sp"]).await
}

#[tokio::test]
async fn spec_changes_are_applied_drift_is_reverted_and_hand_made_mappers_stay() -> Result<()> {
    let bed = RealmBed::create("client-update", json!({})).await?;
    let ns = bed.ns();
    let operator = Operator::start(&client_options(&[ns], "2s")).await?;
    let client_id = unique_name("web");
    let manifest = |redirects: Value, mappers: Value| {
        keycloak_client(
            "web",
            &client_id,
            REALM,
            None,
            json!({
                "name": "Web",
                "redirectUris": redirects,
                "oidc": {"standardFlowEnabled": true},
                "protocolMappers": mappers,
            }),
        )
    };
    let team = json!({"name": "team", "protocolMapper": "oidc-hardcoded-claim-mapper",
                      "config": {"claim.name": "team", "claim.value": "web", "access.token.claim": "true"}});
    let extra = json!({"name": "extra", "protocolMapper": "oidc-hardcoded-claim-mapper",
                       "config": {"claim.name": "extra", "claim.value": "1", "access.token.claim": "true"}});
    apply(
        &bed.client,
        &client_kind(),
        ns,
        manifest(json!(["https://a.example.com/*"]), json!([team, extra])),
    )
    .await?;
    wait_ready(&bed.client, &client_kind(), ns, "web").await?;
    let id = bed.client_in_keycloak(&client_id).await?.context("exists")?["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    // Given a mapper someone added by hand in Keycloak
    bed.admin
        .expect(
            Method::POST,
            &format!("/realms/{}/clients/{id}/protocol-mappers/models", bed.realm),
            Some(&json!({"name": "manual", "protocol": "openid-connect",
                         "protocolMapper": "oidc-hardcoded-claim-mapper",
                         "config": {"claim.name": "manual", "claim.value": "x"}})),
            StatusCode::CREATED,
        )
        .await?;

    // When the redirect URIs change and a mapper is removed from the spec
    apply(
        &bed.client,
        &client_kind(),
        ns,
        manifest(
            json!(["https://b.example.com/*", "https://c.example.com/*"]),
            json!([team]),
        ),
    )
    .await?;
    wait_ready(&bed.client, &client_kind(), ns, "web").await?;

    // Then Keycloak follows, and only the operator's mapper is removed
    let held = bed.client_in_keycloak(&client_id).await?.context("exists")?;
    let mut redirects = names(&held["redirectUris"]);
    redirects.sort();
    assert_eq!(redirects, vec!["https://b.example.com/*", "https://c.example.com/*"]);
    assert_eq!(mapper_names(&held), vec!["manual", "team"]);

    // When someone changes managed fields by hand
    let mut changed = held.clone();
    changed["name"] = json!("Changed by hand");
    changed["redirectUris"] = json!(["https://evil.example.com/*"]);
    changed["attributes"]["added-by-hand"] = json!("yes");
    bed.admin
        .expect(
            Method::PUT,
            &format!("/realms/{}/clients/{id}", bed.realm),
            Some(&changed),
            StatusCode::NO_CONTENT,
        )
        .await?;

    // Then they are reverted at the next resync; the rest is left alone
    eventually(
        "the drift to be reverted",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || async {
            let held = bed.client_in_keycloak(&client_id).await?.context("exists")?;
            Ok((held["name"] == "Web" && names(&held["redirectUris"]).len() == 2).then_some(held))
        },
    )
    .await?;
    let held = bed.client_in_keycloak(&client_id).await?.context("exists")?;
    assert_eq!(held["attributes"]["added-by-hand"], "yes", "unmanaged attributes stay");
    assert_eq!(mapper_names(&held), vec!["manual", "team"], "hand-made mappers stay");
    assert!(
        operator
            .metric("keycloak_operator_drift_corrections_total", &[])
            .await?
            >= 1.0
    );

    // And with nothing to change, resyncs only read
    let before = operator.metrics().await?;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let after = operator.metrics().await?;
    let reads = |text: &str| {
        keycloak_operator_e2e::operator::sum_metric(
            text,
            "keycloak_operator_keycloak_requests_total",
            &[("method", "GET")],
        )
    };
    assert!(reads(&after) > reads(&before) + 2.0, "resyncs happened");
    assert_eq!(writes(&after), writes(&before), "no write to Keycloak in steady state");
    bed.teardown(&["web"]).await
}

#[tokio::test]
async fn an_existing_client_is_adopted_only_on_request_and_another_owner_is_never_overwritten() -> Result<()> {
    let bed = RealmBed::create("client-adopt", json!({})).await?;
    let ns = bed.ns();
    let _operator = Operator::start(&client_options(&[ns], "5m")).await?;
    bed.realm_ready().await?;
    let client_id = unique_name("legacy");
    bed.admin
        .expect(
            Method::POST,
            &format!("/realms/{}/clients", bed.realm),
            Some(&json!({"clientId": client_id, "name": "Hand made"})),
            StatusCode::CREATED,
        )
        .await?;

    // When a resource names it without opting in
    let manifest = |adopt: bool| {
        keycloak_client(
            "legacy",
            &client_id,
            REALM,
            None,
            json!({"name": "Managed", "adoptExisting": adopt}),
        )
    };
    apply(&bed.client, &client_kind(), ns, manifest(false)).await?;

    // Then it is refused and the client is untouched
    let object = wait_condition(
        &bed.client,
        &client_kind(),
        ns,
        "legacy",
        "Ready=False/AdoptionRequired",
        Duration::from_secs(30),
    )
    .await?;
    assert_eq!(
        condition(&object, "Stalled").map(|c| c["status"].clone()),
        Some(json!("True"))
    );
    let held = bed.client_in_keycloak(&client_id).await?.context("exists")?;
    assert_eq!(held["name"], "Hand made");

    // When it opts in
    apply(&bed.client, &client_kind(), ns, manifest(true)).await?;

    // Then the client is taken over
    let object = wait_ready(&bed.client, &client_kind(), ns, "legacy").await?;
    let held = bed.client_in_keycloak(&client_id).await?.context("exists")?;
    assert_eq!(held["name"], "Managed");
    assert_eq!(held["attributes"][OWNER_UID], object["metadata"]["uid"]);
    // and its existing secret is what the Secret holds
    let data = secret_data(&bed.client, ns, "legacy-credentials")
        .await?
        .context("Secret")?;
    assert_eq!(data["client-secret"], held["secret"].as_str().unwrap_or_default());

    // When a second resource names the same client (and would delete it)
    apply(
        &bed.client,
        &client_kind(),
        ns,
        keycloak_client(
            "intruder",
            &client_id,
            REALM,
            None,
            json!({"name": "Intruder", "adoptExisting": true, "deletionPolicy": "Delete"}),
        ),
    )
    .await?;

    // Then it is stalled with reason Conflict, and the client is untouched
    wait_condition(
        &bed.client,
        &client_kind(),
        ns,
        "intruder",
        "Ready=False/Conflict",
        Duration::from_secs(30),
    )
    .await?;
    assert_eq!(
        bed.client_in_keycloak(&client_id).await?.context("exists")?["name"],
        "Managed"
    );
    // And deleting it leaves the first resource's client alone
    delete(&bed.client, &client_kind(), ns, "intruder").await?;
    wait_gone(&bed.client, &client_kind(), ns, "intruder", Duration::from_secs(60)).await?;
    let held = bed.client_in_keycloak(&client_id).await?.context("still exists")?;
    assert_eq!(held["attributes"][OWNER_UID], object["metadata"]["uid"]);
    bed.teardown(&["legacy"]).await
}

#[tokio::test]
async fn a_retained_client_stays_in_keycloak_released_and_can_be_adopted_again() -> Result<()> {
    let bed = RealmBed::create("client-retain", json!({})).await?;
    let ns = bed.ns();
    let _operator = Operator::start(&client_options(&[ns], "5m")).await?;
    let client_id = unique_name("kept");
    let manifest = |name: &str, adopt: bool| {
        keycloak_client(
            name,
            &client_id,
            REALM,
            None,
            json!({
                "deletionPolicy": "Retain",
                "adoptExisting": adopt,
                "roles": [{"name": "viewer"}],
            }),
        )
    };
    apply(&bed.client, &client_kind(), ns, manifest("first", false)).await?;
    wait_ready(&bed.client, &client_kind(), ns, "first").await?;
    let secret = bed.client_in_keycloak(&client_id).await?.context("exists")?["secret"].clone();

    // When the resource is deleted with deletionPolicy Retain
    delete(&bed.client, &client_kind(), ns, "first").await?;
    wait_gone(&bed.client, &client_kind(), ns, "first", Duration::from_secs(60)).await?;

    // Then the client and its secret stay in Keycloak, released
    let held = bed.client_in_keycloak(&client_id).await?.context("retained")?;
    assert_eq!(held["secret"], secret);
    assert_eq!(held["attributes"][OWNER_UID].as_str().unwrap_or_default(), "");
    // And its credentials Secret went with the resource (garbage collection)
    eventually(
        "the credentials Secret to be collected",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || async {
            Ok(secret_data(&bed.client, ns, "first-credentials")
                .await?
                .is_none()
                .then_some(()))
        },
    )
    .await?;

    // When a new resource adopts it
    apply(&bed.client, &client_kind(), ns, manifest("second", true)).await?;
    let object = wait_ready(&bed.client, &client_kind(), ns, "second").await?;

    // Then it is owned again, with the same secret and role
    let held = bed.client_in_keycloak(&client_id).await?.context("exists")?;
    assert_eq!(held["attributes"][OWNER_UID], object["metadata"]["uid"]);
    let data = secret_data(&bed.client, ns, "second-credentials")
        .await?
        .context("Secret")?;
    assert_eq!(data["client-secret"], secret.as_str().unwrap_or_default());
    let roles = bed
        .admin
        .get_json(&format!(
            "/realms/{}/clients/{}/roles",
            bed.realm,
            held["id"].as_str().unwrap_or_default()
        ))
        .await?
        .unwrap_or_default();
    assert_eq!(roles.as_array().map(Vec::len), Some(1));
    bed.teardown(&["second"]).await
}
