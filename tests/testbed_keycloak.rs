//! The test bed's Keycloak is a real Keycloak server: its admin REST API
//! answers an admin authenticated with a token from the master realm.
//!
//! Every test uses a realm of its own, so the tests run in parallel and leave
//! nothing behind.

use anyhow::{Context, Result};
use keycloak_operator_e2e::testbed::{KeycloakAdmin, TestRealm, http_client, testbed, unique_name};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn admin_token_is_issued_for_the_right_password_only() -> Result<()> {
    let bed = testbed();
    let http = http_client();

    let granted = KeycloakAdmin::password_grant(
        &http,
        &bed.keycloak_url,
        &bed.keycloak_admin_user,
        &bed.keycloak_admin_password,
    )
    .await?;
    assert_eq!(granted.status(), StatusCode::OK);
    let body: serde_json::Value = granted.json().await?;
    assert_eq!(
        body["token_type"].as_str().map(str::to_ascii_lowercase).as_deref(),
        Some("bearer")
    );
    assert!(
        body["access_token"].as_str().is_some_and(|t| t.split('.').count() == 3),
        "a JWT: {body}"
    );

    // A wrong password is an OAuth `invalid_grant` (Keycloak 26 answers 400, as RFC 6749 says).
    let refused =
        KeycloakAdmin::password_grant(&http, &bed.keycloak_url, &bed.keycloak_admin_user, "not-the-password").await?;
    assert!(refused.status().is_client_error(), "{}", refused.status());
    let body: serde_json::Value = refused.json().await?;
    assert_eq!(body["error"], "invalid_grant", "{body}");
    Ok(())
}

#[tokio::test]
async fn realm_is_created_read_back_and_deleted() -> Result<()> {
    let admin = KeycloakAdmin::connect().await?;
    let name = unique_name("realm");

    // Create.
    admin
        .expect(
            Method::POST,
            "/realms",
            Some(&json!({ "realm": name, "enabled": true, "displayName": "Test bed realm" })),
            StatusCode::CREATED,
        )
        .await?;

    // Read it back through the admin API, and see it served to OIDC clients.
    let realm = admin
        .get_json(&format!("/realms/{name}"))
        .await?
        .context("the realm exists")?;
    assert_eq!(realm["realm"], name.as_str());
    assert_eq!(realm["enabled"], true);
    assert_eq!(realm["displayName"], "Test bed realm");
    let discovery = http_client()
        .get(format!(
            "{}/realms/{name}/.well-known/openid-configuration",
            admin.base_url()
        ))
        .send()
        .await?;
    assert_eq!(discovery.status(), StatusCode::OK);
    let discovery: serde_json::Value = discovery.json().await?;
    assert!(
        discovery["issuer"]
            .as_str()
            .is_some_and(|i| i.ends_with(&format!("/realms/{name}"))),
        "{discovery}"
    );

    // Delete, after which it is gone.
    admin
        .expect(Method::DELETE, &format!("/realms/{name}"), None, StatusCode::NO_CONTENT)
        .await?;
    assert!(
        admin.get_json(&format!("/realms/{name}")).await?.is_none(),
        "404 after delete"
    );
    Ok(())
}

#[tokio::test]
async fn realms_of_parallel_tests_do_not_see_each_other() -> Result<()> {
    let admin = KeycloakAdmin::connect().await?;
    let a = TestRealm::create(&admin, "parallel-a").await?;
    let b = TestRealm::create(&admin, "parallel-b").await?;

    let names: Vec<String> = admin
        .get_json("/realms")
        .await?
        .context("realm list")?
        .as_array()
        .context("an array")?
        .iter()
        .filter_map(|r| r["realm"].as_str().map(str::to_string))
        .collect();
    assert!(
        names.contains(&a.name().to_string()) && names.contains(&b.name().to_string()),
        "{names:?}"
    );

    // An update to one realm leaves the other alone.
    admin
        .expect(
            Method::PUT,
            &format!("/realms/{}", a.name()),
            Some(&json!({ "displayName": "changed" })),
            StatusCode::NO_CONTENT,
        )
        .await?;
    let b_realm = admin
        .get_json(&format!("/realms/{}", b.name()))
        .await?
        .context("realm b")?;
    assert_ne!(b_realm["displayName"], "changed");
    Ok(())
}
