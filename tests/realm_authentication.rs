//! Stories of how a realm's users log in: the realm's flow bindings (to
//! Keycloak's flows or to one made by hand) and its required actions; kept
//! as declared against changes made in Keycloak, and refused with the field
//! named when they name what Keycloak lacks — checked in what the real
//! Keycloak holds and in the users it makes.

use std::time::Duration;

use anyhow::{Context, Result};
use keycloak_operator_e2e::bench::RealmResyncs;
use keycloak_operator_e2e::operator::{Operator, OperatorOptions};
use keycloak_operator_e2e::resources::{KeycloakBed, delete, realm_kind, wait_ready, wait_realm_refused};
use keycloak_operator_e2e::testbed::{KeycloakAdmin, TestRealm, eventually, unique_name};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A realm made by hand, holding a copy of the browser flow named
/// `browser-with-otp`, as a team that built its own login would have it.
async fn realm_with_a_custom_flow(admin: &KeycloakAdmin, name: &str) -> Result<()> {
    admin.create_realm(name).await?;
    admin
        .expect(
            Method::POST,
            &format!("/realms/{name}/authentication/flows/browser/copy"),
            Some(&json!({"newName": "browser-with-otp"})),
            StatusCode::CREATED,
        )
        .await?;
    Ok(())
}

async fn required_action(admin: &KeycloakAdmin, realm: &str, alias: &str) -> Result<Value> {
    admin
        .get_json(&format!("/realms/{realm}/authentication/required-actions/{alias}"))
        .await?
        .with_context(|| format!("required action {alias}"))
}

/// What the stories declare: the browser flow bound to the custom copy, the
/// direct grant to Keycloak's own, terms to accept first for every new user,
/// OTP set-up turned off, and email verification on (as Keycloak has it:
/// the operator never writes it).
fn declared_login() -> Value {
    json!({
        "adoptExisting": true,
        "flowBindings": {"browser": "browser-with-otp", "directGrant": "direct grant"},
        "requiredActions": [
            {"alias": "TERMS_AND_CONDITIONS", "enabled": true, "defaultAction": true, "priority": 5},
            {"alias": "CONFIGURE_TOTP", "enabled": false},
            {"alias": "VERIFY_EMAIL", "enabled": true},
        ],
    })
}

#[tokio::test]
async fn flow_bindings_and_required_actions_are_set_reach_new_users_and_resyncs_only_read() -> Result<()> {
    let bed = KeycloakBed::given("realm-login").await?;
    let ns = bed.ns.name();
    let mut options = OperatorOptions::standard(&[ns]);
    options.resync = "1s".into();
    let operator = Operator::start(&options).await?;
    let name = unique_name("login");
    let _name_cleanup = TestRealm::cleanup(&name);
    realm_with_a_custom_flow(&bed.admin, &name).await?;

    // When the realm resource binds the flows and declares required actions
    bed.apply_realm(&name, declared_login()).await?;

    // Then Keycloak uses them
    wait_ready(&bed.client, &realm_kind(), ns, "r").await?;
    let held = bed.admin.get_json(&format!("/realms/{name}")).await?.context("realm")?;
    assert_eq!(held["browserFlow"], "browser-with-otp");
    assert_eq!(held["directGrantFlow"], "direct grant");
    assert_eq!(
        held["registrationFlow"], "registration",
        "an unset binding is left alone"
    );
    let terms = required_action(&bed.admin, &name, "TERMS_AND_CONDITIONS").await?;
    assert_eq!(
        (&terms["enabled"], &terms["defaultAction"], &terms["priority"]),
        (&json!(true), &json!(true), &json!(5))
    );
    let otp = required_action(&bed.admin, &name, "CONFIGURE_TOTP").await?;
    assert_eq!(otp["enabled"], false);

    // And a user made afterwards is asked to accept the terms
    bed.admin
        .expect(
            Method::POST,
            &format!("/realms/{name}/users"),
            Some(&json!({"username": "newcomer", "enabled": true})),
            StatusCode::CREATED,
        )
        .await?;
    let users = bed
        .admin
        .get_json(&format!("/realms/{name}/users?username=newcomer&exact=true"))
        .await?
        .context("users")?;
    assert_eq!(users[0]["requiredActions"], json!(["TERMS_AND_CONDITIONS"]), "{users}");

    // And with nothing to change, resyncs only read: the realm and its
    // required actions, and no flow (the bindings are as declared)
    let steady = RealmResyncs::measure(&operator, "keycloak.wasmop.dev/KeycloakRealm", Duration::from_secs(10)).await?;
    steady.assert_only_read(2.0);
    delete(&bed.client, &realm_kind(), ns, "r").await?;
    Ok(())
}

#[tokio::test]
async fn required_actions_and_bindings_changed_in_keycloak_are_put_back_within_seconds() -> Result<()> {
    let bed = KeycloakBed::given("realm-login-drift").await?;
    let ns = bed.ns.name();
    let _operator = Operator::start(&OperatorOptions::drift_watched(&[ns])).await?;
    let name = unique_name("logindrift");
    let _name_cleanup = TestRealm::cleanup(&name);
    realm_with_a_custom_flow(&bed.admin, &name).await?;
    bed.apply_realm(&name, declared_login()).await?;
    wait_ready(&bed.client, &realm_kind(), ns, "r").await?;
    // (Past the window in which an admin event on a path the operator just
    // wrote is taken for its own)
    tokio::time::sleep(Duration::from_secs(4)).await;

    // When someone turns email verification off: a change to nothing but
    // a required action the operator only ever read
    let mut verify = required_action(&bed.admin, &name, "VERIFY_EMAIL").await?;
    verify["enabled"] = json!(false);
    bed.admin
        .expect(
            Method::PUT,
            &format!("/realms/{name}/authentication/required-actions/VERIFY_EMAIL"),
            Some(&verify),
            StatusCode::NO_CONTENT,
        )
        .await?;

    // Then the drift watch puts it back, long before the hour's resync
    eventually(
        "the required action to be reverted",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || async {
            let verify = required_action(&bed.admin, &name, "VERIFY_EMAIL").await?;
            Ok((verify["enabled"] == true).then_some(()))
        },
    )
    .await?;

    // When someone binds the browser flow back to Keycloak's own
    tokio::time::sleep(Duration::from_secs(4)).await;
    bed.admin
        .expect(
            Method::PUT,
            &format!("/realms/{name}"),
            Some(&json!({"realm": name, "browserFlow": "browser"})),
            StatusCode::NO_CONTENT,
        )
        .await?;

    // Then that is put back too
    eventually(
        "the browser binding to be reverted",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || async {
            let held = bed.admin.get_json(&format!("/realms/{name}")).await?.context("realm")?;
            Ok((held["browserFlow"] == "browser-with-otp").then_some(()))
        },
    )
    .await?;
    delete(&bed.client, &realm_kind(), ns, "r").await?;
    Ok(())
}

#[tokio::test]
async fn a_binding_to_a_missing_flow_or_an_unknown_required_action_is_reported_with_its_field() -> Result<()> {
    let bed = KeycloakBed::given("realm-login-missing").await?;
    let ns = bed.ns.name();
    let _operator = Operator::start(&OperatorOptions::standard(&[ns])).await?;
    let name = unique_name("loginmissing");
    let _name_cleanup = TestRealm::cleanup(&name);

    // When a new realm binds its browser flow to a flow nobody made
    let spec = json!({"flowBindings": {"browser": "no-such-flow"}});
    bed.apply_realm(&name, spec).await?;

    // Then the realm is made with Keycloak's own flows, and is not Ready,
    // with the field and the flow named (not Keycloak's bare 500)
    let message = wait_realm_refused(&bed.client, ns, "r", "FlowNotFound").await?;
    assert!(
        message.contains("spec.flowBindings.browser") && message.contains("no-such-flow"),
        "{message}"
    );
    let held = bed.admin.get_json(&format!("/realms/{name}")).await?.context("realm")?;
    assert_eq!(held["browserFlow"], "browser");

    // When the binding is fixed but a required action is one Keycloak lacks
    let spec = json!({"flowBindings": {"browser": "browser"}, "requiredActions": [{"alias": "NO_SUCH_ACTION"}]});
    bed.apply_realm(&name, spec).await?;
    let message = wait_realm_refused(&bed.client, ns, "r", "RequiredActionNotFound").await?;
    assert!(
        message.contains("spec.requiredActions[0].alias") && message.contains("NO_SUCH_ACTION"),
        "{message}"
    );

    // And once the spec names what Keycloak has, the realm is Ready
    let spec =
        json!({"flowBindings": {"browser": "browser"}, "requiredActions": [{"alias": "VERIFY_EMAIL", "priority": 1}]});
    bed.apply_realm(&name, spec).await?;
    eventually(
        "VERIFY_EMAIL to come first",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async { Ok((required_action(&bed.admin, &name, "VERIFY_EMAIL").await?["priority"] == 1).then_some(())) },
    )
    .await?;
    wait_ready(&bed.client, &realm_kind(), ns, "r").await?;
    delete(&bed.client, &realm_kind(), ns, "r").await?;
    Ok(())
}
