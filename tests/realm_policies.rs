//! Story of a realm's policies: passwords, one-time passwords, brute-force
//! lockouts, sessions, user events, languages, themes and browser headers,
//! declared under `settings` and kept as declared — checked in what the
//! real Keycloak holds and in what it then refuses.

use std::time::Duration;

use anyhow::{Context, Result};
use keycloak_operator_e2e::bench::RealmResyncs;
use keycloak_operator_e2e::operator::{Operator, OperatorOptions};
use keycloak_operator_e2e::resources::{KeycloakBed, delete, realm_kind, wait_ready};
use keycloak_operator_e2e::testbed::{TestRealm, eventually, unique_name};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn declared_policies_are_what_keycloak_enforces_drift_is_reverted_and_resyncs_only_read() -> Result<()> {
    let bed = KeycloakBed::given("realm-policies").await?;
    let ns = bed.ns.name();
    let mut options = OperatorOptions::standard(&[ns]);
    options.resync = "1s".into();
    let operator = Operator::start(&options).await?;
    let name = unique_name("policies");
    let _name_cleanup = TestRealm::cleanup(&name);

    // When a realm declares its policies
    let spec = json!({"settings": {
        "bruteForceProtected": true,
        "passwordPolicy": [{"type": "length", "value": "12"}, {"type": "digits", "value": "1"}, {"type": "notUsername"}],
        "otpPolicy": {"type": "totp", "algorithm": "HmacSHA256", "digits": 8, "periodSeconds": 60},
        "bruteForce": {"maxLoginFailures": 5, "waitIncrementSeconds": 120, "failureResetSeconds": 3600},
        "sessions": {"offlineSessionIdleTimeoutSeconds": 86400, "revokeRefreshToken": true,
                     "loginTimeoutSeconds": 900},
        "events": {"enabled": true, "expirationSeconds": 604800, "listeners": ["jboss-logging"],
                   "types": ["LOGIN", "LOGIN_ERROR", "LOGOUT"]},
        "localization": {"enabled": true, "supportedLocales": ["en", "de"], "defaultLocale": "de"},
        "themes": {"email": "keycloak"},
        "browserSecurityHeaders": {"xFrameOptions": "DENY"},
    }});
    bed.apply_realm(&name, spec).await?;

    // Then Keycloak holds them
    wait_ready(&bed.client, &realm_kind(), ns, "r").await?;
    let held = bed.admin.get_json(&format!("/realms/{name}")).await?.context("realm")?;
    assert_eq!(held["passwordPolicy"], "length(12) and digits(1) and notUsername");
    assert_eq!(held["otpPolicyAlgorithm"], "HmacSHA256");
    assert_eq!(held["otpPolicyDigits"], 8);
    assert_eq!(held["otpPolicyPeriod"], 60);
    assert_eq!(held["failureFactor"], 5);
    assert_eq!(held["waitIncrementSeconds"], 120);
    assert_eq!(held["maxDeltaTimeSeconds"], 3600);
    assert_eq!(held["offlineSessionIdleTimeout"], 86400);
    assert_eq!(held["revokeRefreshToken"], true);
    assert_eq!(held["accessCodeLifespanLogin"], 900);
    assert_eq!(held["defaultLocale"], "de");
    assert_eq!(held["internationalizationEnabled"], true);
    assert_eq!(held["emailTheme"], "keycloak");
    assert_eq!(held["browserSecurityHeaders"]["xFrameOptions"], "DENY");
    assert!(
        held["browserSecurityHeaders"]["contentSecurityPolicy"].is_string(),
        "headers not listed keep Keycloak's values"
    );
    let events = bed
        .admin
        .get_json(&format!("/realms/{name}/events/config"))
        .await?
        .context("events config")?;
    assert_eq!(events["eventsEnabled"], true);
    assert_eq!(events["eventsExpiration"], 604800);
    let mut types: Vec<&str> = events["enabledEventTypes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str())
        .collect();
    types.sort_unstable();
    assert_eq!(types, ["LOGIN", "LOGIN_ERROR", "LOGOUT"]);

    // And Keycloak enforces the password policy
    let refused = bed
        .admin
        .request(
            Method::POST,
            &format!("/realms/{name}/users"),
            Some(&json!({"username": "weak", "enabled": true,
                         "credentials": [{"type": "password", "value": "short1", "temporary": false}]})),
        )
        .await?;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "a password of 6 characters");
    bed.admin
        .expect(
            Method::POST,
            &format!("/realms/{name}/users"),
            Some(&json!({"username": "strong", "enabled": true,
                         "credentials": [{"type": "password", "value": "long-enough-1", "temporary": false}]})),
            StatusCode::CREATED,
        )
        .await?;

    // And with nothing to change, resyncs read the realm only, and write nothing
    let steady = RealmResyncs::measure(&operator, "keycloak.wasmop.dev/KeycloakRealm", Duration::from_secs(10)).await?;
    steady.assert_only_read(1.0);

    // When someone loosens the password policy and the lockout by hand
    bed.admin
        .expect(
            Method::PUT,
            &format!("/realms/{name}"),
            Some(&json!({"realm": name, "passwordPolicy": "length(4)", "failureFactor": 30})),
            StatusCode::NO_CONTENT,
        )
        .await?;

    // Then both are put back
    eventually(
        "the password policy and the lockout to be reverted",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || async {
            let held = bed.admin.get_json(&format!("/realms/{name}")).await?.context("realm")?;
            Ok(
                (held["passwordPolicy"] == "length(12) and digits(1) and notUsername" && held["failureFactor"] == 5)
                    .then_some(()),
            )
        },
    )
    .await?;
    delete(&bed.client, &realm_kind(), ns, "r").await?;
    Ok(())
}
