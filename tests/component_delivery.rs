//! Reconcilers declared as `ReconcilerComponent` resources, pulled by digest
//! from the bed's real OCI registry: one kind upgraded on its own while its
//! resources keep converging, refused versions that never replace a working
//! one, a rollback with the registry down, the built-in back when the
//! declaration goes, and a shadow candidate that shows its writes before it
//! makes any.

use std::time::Duration;

use anyhow::Result;
use futures::future::try_join_all;
use keycloak_operator_e2e::operator::{Component, Operator, OperatorOptions, sum_metric};
use keycloak_operator_e2e::registry::{LyingRegistry, RegistryOutage, manifest_bytes, push};
use keycloak_operator_e2e::resources::{
    Declared, apply, component_kind, delete, get, install_crds, keycloak, realm, realm_kind, wait_condition, wait_gone,
    wait_ready,
};
use keycloak_operator_e2e::testbed::{KeycloakAdmin, TestNamespace, eventually, kube_client, unique_name};
use kube::Client;
use serde_json::{Value, json};

const KIND: &str = "keycloak.wasmop.dev/KeycloakRealm";
const REALMS: usize = 3;
const V2_ATTRIBUTE: &str = "keycloak.wasmop.dev/test-version";

/// A `ReconcilerComponent` for the realm kind, labelled for `operator`.
fn declaration(name: &str, operator: &Operator, oci: &str, grants: &[&str], candidate: Option<&str>) -> Value {
    let (key, value) = &operator.component_label;
    let mut object = json!({
        "apiVersion": "keycloak.wasmop.dev/v1alpha1",
        "kind": "ReconcilerComponent",
        "metadata": {"name": name, "labels": {key: value}},
        "spec": {"kind": KIND, "oci": oci, "grants": grants},
    });
    if let Some(candidate) = candidate {
        object["spec"]["rollout"] = json!({"candidate": {"oci": candidate, "mode": "Shadow"}});
    }
    object
}

async fn declare(client: &Client, object: Value) -> Result<()> {
    apply(client, &component_kind(), "", object).await?;
    Ok(())
}

/// Waits until the declaration reports `want` (as `Ready=True/Serving`).
async fn wait_declared(client: &Client, name: &str, want: &str) -> Result<Value> {
    wait_condition(client, &component_kind(), "", name, want, Duration::from_secs(90)).await
}

/// Waits until the declaration is Ready with `oci` serving.
async fn wait_serving(client: &Client, name: &str, oci: &str) -> Result<Value> {
    eventually(
        &format!("{oci} to serve"),
        Duration::from_secs(90),
        Duration::from_millis(250),
        || async {
            let object = get(client, &component_kind(), "", name).await?.unwrap_or_default();
            let serving = object["status"]["serving"]["source"] == oci;
            let ready = object["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True" && c["reason"] == "Serving")
            });
            let current = object["status"]["observedGeneration"] == object["metadata"]["generation"];
            Ok((serving && ready && current).then_some(object))
        },
    )
    .await
}

/// Waits until the realm resource is Ready and was reconciled by `version`.
async fn wait_reconciled_by(client: &Client, ns: &str, resource: &str, version: &str) -> Result<Value> {
    eventually(
        &format!("{resource} to be reconciled by {version}"),
        Duration::from_secs(90),
        Duration::from_millis(250),
        || async {
            let object = get(client, &realm_kind(), ns, resource).await?.unwrap_or_default();
            Ok((object["status"]["reconciledBy"]["version"] == version).then_some(()))
        },
    )
    .await?;
    wait_ready(client, &realm_kind(), ns, resource).await
}

fn failed_reconciles(metrics: &str) -> f64 {
    ["retrying", "stalled"]
        .iter()
        .map(|result| {
            sum_metric(
                metrics,
                "keycloak_operator_reconciles_total",
                &[("kind", KIND), ("result", result)],
            )
        })
        .sum()
}

struct Bed {
    client: Client,
    admin: KeycloakAdmin,
    _ns: TestNamespace,
    ns: String,
    realms: Vec<String>,
}

/// A namespace with a `Keycloak` and realms served by the built-in
/// component, their names in Keycloak.
async fn realms_served_by_the_builtin(
    operator_options: impl FnOnce(&str) -> OperatorOptions,
) -> Result<(Bed, Operator)> {
    let client = kube_client().await?;
    install_crds(&client).await?;
    let namespace = TestNamespace::create(&client, "delivery").await?;
    let ns = namespace.name().to_owned();
    keycloak(&client, &ns, "sso", None, &[]).await?;
    let operator = Operator::start(&operator_options(&ns)).await?;
    let realms: Vec<String> = (0..REALMS).map(|i| unique_name(&format!("deliver{i}"))).collect();
    for (i, name) in realms.iter().enumerate() {
        apply(
            &client,
            &realm_kind(),
            &ns,
            realm(&format!("r{i}"), name, "sso", None, json!({"deletionPolicy": "Delete"})),
        )
        .await?;
    }
    try_join_all((0..REALMS).map(|i| {
        let (client, ns) = (client.clone(), ns.clone());
        async move { wait_ready(&client, &realm_kind(), &ns, &format!("r{i}")).await }
    }))
    .await?;
    let bed = Bed {
        client,
        admin: KeycloakAdmin::connect().await?,
        _ns: namespace,
        ns,
        realms,
    };
    Ok((bed, operator))
}

impl Bed {
    /// Deletes the realms (their policy deletes them in Keycloak too).
    async fn delete_realms(&self) -> Result<()> {
        for i in 0..REALMS {
            delete(&self.client, &realm_kind(), &self.ns, &format!("r{i}")).await?;
        }
        for i in 0..REALMS {
            let name = format!("r{i}");
            wait_gone(&self.client, &realm_kind(), &self.ns, &name, Duration::from_secs(60)).await?;
        }
        Ok(())
    }
}

fn options(ns: &str) -> OperatorOptions {
    let mut options = OperatorOptions::standard(&[ns]);
    options.resync = "2s".into();
    options
}

async fn realm_attribute(admin: &KeycloakAdmin, realm: &str) -> Result<Value> {
    let held = admin.get_json(&format!("/realms/{realm}")).await?.unwrap_or_default();
    Ok(held["attributes"][V2_ATTRIBUTE].clone())
}

#[tokio::test]
async fn one_kind_is_upgraded_from_the_registry_refused_versions_never_serve_and_rollback_needs_no_registry()
-> Result<()> {
    // Given two versions of the realm component in the registry, and a
    // registry that answers v2's manifest whatever digest it is asked for
    let repository = format!("components/{}", unique_name("realm"));
    let v1 = push(Component::Realm, &repository, "v1").await?;
    let v2 = push(Component::RealmV2, &repository, "v2").await?;
    let lying = LyingRegistry::start(manifest_bytes(&v2).await?).await?;
    let lying_address = lying.address.clone();
    let (bed, mut operator) = realms_served_by_the_builtin(|ns| {
        let mut options = options(ns);
        options.insecure_registries.push(lying_address);
        options
    })
    .await?;
    let client = &bed.client;
    let builtin =
        get(client, &realm_kind(), &bed.ns, "r0").await?.unwrap_or_default()["status"]["reconciledBy"]["digest"]
            .clone();

    // A tag alone is refused at admission, with a message that says why
    let name = unique_name("realm");
    let _declared = Declared { name: name.clone() };
    let tagged = format!("{}:v2", v2.split('@').next().unwrap_or_default());
    let refused = declare(
        client,
        declaration(&name, &operator, &tagged, &["keycloak-admin", "read-secrets"], None),
    )
    .await
    .expect_err("a tag alone must be refused");
    assert!(
        format!("{refused:#}").contains("must be pinned by digest"),
        "{refused:#}"
    );

    // When the kind is declared with v2 while the realms' specs keep changing
    let churn = {
        let (client, ns, realms) = (client.clone(), bed.ns.clone(), bed.realms.clone());
        tokio::spawn(async move {
            for round in 0..30 {
                let i = round % REALMS;
                let spec = json!({"displayName": format!("round {round}"), "deletionPolicy": "Delete"});
                apply(
                    &client,
                    &realm_kind(),
                    &ns,
                    realm(&format!("r{i}"), &realms[i], "sso", None, spec),
                )
                .await?;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            anyhow::Ok(())
        })
    };
    declare(
        client,
        declaration(&name, &operator, &v2, &["keycloak-admin", "read-secrets"], None),
    )
    .await?;
    let status = wait_serving(client, &name, &v2).await?;
    churn.await??;

    // Then v2 serves the kind, the built-in is kept as the previous version,
    // and v2's behaviour shows in Keycloak
    assert_eq!(status["status"]["serving"]["version"], "0.2.0-test");
    assert_eq!(status["status"]["serving"]["source"], v2.as_str());
    assert_eq!(status["status"]["previous"]["source"], "built-in");
    for (i, realm_name) in bed.realms.iter().enumerate() {
        wait_reconciled_by(client, &bed.ns, &format!("r{i}"), "0.2.0-test").await?;
        assert_eq!(realm_attribute(&bed.admin, realm_name).await?, "v2");
    }
    let status = eventually(
        "the declaration to count the realms v2 reconciled",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || async {
            let object = get(client, &component_kind(), "", &name).await?.unwrap_or_default();
            let counted = object["status"]["serving"]["resourcesReconciled"].as_u64().unwrap_or(0);
            Ok((counted >= REALMS as u64).then_some(object))
        },
    )
    .await?;
    assert_eq!(status["status"]["observedGeneration"], status["metadata"]["generation"]);

    // When the digest is changed to v1
    declare(
        client,
        declaration(&name, &operator, &v1, &["keycloak-admin", "read-secrets"], None),
    )
    .await?;
    wait_serving(client, &name, &v1).await?;
    for i in 0..REALMS {
        wait_reconciled_by(client, &bed.ns, &format!("r{i}"), "0.1.0").await?;
    }
    // Then no reconcile failed across both swaps
    assert_eq!(
        failed_reconciles(&operator.metrics().await?),
        0.0,
        "failed reconciles during the swaps"
    );

    // When versions that fail a check are declared, each is refused with its reason and v1 keeps serving
    let missing = format!("{}@sha256:{}", v1.split('@').next().unwrap_or_default(), "0".repeat(64));
    let client_component = push(Component::Client, &repository, "client").await?;
    // A digest nothing was pulled by: the operator must ask the registry.
    let lied_about = format!("{}/{repository}@sha256:{}", lying.address, "1".repeat(64));
    let refusals = [
        (
            missing.as_str(),
            &["keycloak-admin", "read-secrets"][..],
            "Ready=False/PullFailed",
        ),
        (
            client_component.as_str(),
            &["keycloak-admin", "read-secrets"][..],
            "Stalled=True/KindMismatch",
        ),
        (
            v2.as_str(),
            &["keycloak-admin"][..],
            "Stalled=True/CapabilityNotGranted",
        ),
        (
            lied_about.as_str(),
            &["keycloak-admin", "read-secrets"][..],
            "Stalled=True/DigestMismatch",
        ),
    ];
    for (oci, grants, want) in refusals {
        declare(client, declaration(&name, &operator, oci, grants, None)).await?;
        let status = wait_declared(client, &name, want).await?;
        assert_eq!(
            status["status"]["serving"]["source"],
            v1.as_str(),
            "{want}: the working version keeps serving"
        );
        // A realm created now is still reconciled, by v1
        let late = unique_name("late");
        apply(
            client,
            &realm_kind(),
            &bed.ns,
            realm("late", &late, "sso", None, json!({"deletionPolicy": "Delete"})),
        )
        .await?;
        wait_reconciled_by(client, &bed.ns, "late", "0.1.0").await?;
        delete(client, &realm_kind(), &bed.ns, "late").await?;
        wait_gone(client, &realm_kind(), &bed.ns, "late", Duration::from_secs(60)).await?;
    }

    // Given v2 serving again, then v1, so that v2 is the previous version
    for oci in [&v2, &v1] {
        declare(
            client,
            declaration(&name, &operator, oci, &["keycloak-admin", "read-secrets"], None),
        )
        .await?;
        wait_serving(client, &name, oci).await?;
    }
    // When the registry is down and the digest is set back to v2
    let outage = RegistryOutage::begin().await?;
    declare(
        client,
        declaration(&name, &operator, &v2, &["keycloak-admin", "read-secrets"], None),
    )
    .await?;
    // Then v2 serves again from what the operator kept, without the registry
    wait_serving(client, &name, &v2).await?;
    for i in 0..REALMS {
        wait_reconciled_by(client, &bed.ns, &format!("r{i}"), "0.2.0-test").await?;
    }
    // And an operator started afresh while the registry is still down
    // serves v2 from its local store
    let mut restarted = options(&bed.ns);
    restarted.component_label = Some(operator.component_label.1.clone());
    restarted.insecure_registries.push(lying.address.clone());
    operator.terminate().await?;
    operator = Operator::start(&restarted).await?;
    let late = unique_name("late");
    apply(
        client,
        &realm_kind(),
        &bed.ns,
        realm("late", &late, "sso", None, json!({"deletionPolicy": "Delete"})),
    )
    .await?;
    wait_reconciled_by(client, &bed.ns, "late", "0.2.0-test").await?;
    assert_eq!(
        operator.metric("keycloak_operator_component_pulls_total", &[]).await?,
        0.0,
        "the restarted operator pulled nothing"
    );
    delete(client, &realm_kind(), &bed.ns, "late").await?;
    wait_gone(client, &realm_kind(), &bed.ns, "late", Duration::from_secs(60)).await?;
    outage.end().await?;

    // When the declaration is deleted, the built-in serves again
    delete(client, &component_kind(), "", &name).await?;
    wait_gone(client, &component_kind(), "", &name, Duration::from_secs(30)).await?;
    for i in 0..REALMS {
        let object = wait_reconciled_by(client, &bed.ns, &format!("r{i}"), "0.1.0").await?;
        assert_eq!(object["status"]["reconciledBy"]["digest"], builtin);
    }
    assert_eq!(failed_reconciles(&operator.metrics().await?), 0.0, "failed reconciles");

    bed.delete_realms().await
}

#[tokio::test]
async fn a_shadow_candidate_reports_its_writes_and_touches_nothing_until_it_is_promoted() -> Result<()> {
    let (bed, operator) = realms_served_by_the_builtin(options).await?;
    let client = &bed.client;
    let repository = format!("components/{}", unique_name("shadow"));
    let v1 = push(Component::Realm, &repository, "v1").await?;
    let v2 = push(Component::RealmV2, &repository, "v2").await?;
    let name = unique_name("shadow");
    let _declared = Declared { name: name.clone() };

    // When v1 serves and v2 is declared as a shadow candidate
    declare(
        client,
        declaration(&name, &operator, &v1, &["keycloak-admin", "read-secrets"], Some(&v2)),
    )
    .await?;
    wait_declared(client, &name, "CandidateReady=True/Shadowing").await?;

    // Then the declaration reports, for every realm, the write v2 would make
    let status = eventually(
        "the candidate's planned writes",
        Duration::from_secs(60),
        Duration::from_millis(500),
        || async {
            let object = get(client, &component_kind(), "", &name).await?.unwrap_or_default();
            let with_writes = object["status"]["candidate"]["resourcesWithWrites"]
                .as_u64()
                .unwrap_or(0);
            Ok((with_writes >= REALMS as u64).then_some(object))
        },
    )
    .await?;
    let candidate = &status["status"]["candidate"];
    assert_eq!(candidate["version"], "0.2.0-test");
    assert_eq!(candidate["mode"], "Shadow");
    assert_eq!(candidate["resourcesFailing"], 0);
    let writes = candidate["plannedWrites"].as_array().cloned().unwrap_or_default();
    assert!(!writes.is_empty());
    for write in &writes {
        assert_eq!(write["method"], "PUT", "{write}");
        assert_eq!(write["route"], "/realms/{realm}", "{write}");
        let changes: Vec<&str> = write["changes"]
            .as_array()
            .map(|c| c.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert!(
            changes.contains(&"+ /attributes/keycloak.wasmop.dev~1test-version: \"v2\""),
            "{changes:?}"
        );
    }
    assert!(
        sum_metric(
            &operator.metrics().await?,
            "keycloak_operator_shadow_writes_total",
            &[("kind", KIND)]
        ) >= REALMS as f64
    );
    // And Keycloak is untouched: no realm has v2's attribute, v1 still reconciles
    for (i, realm_name) in bed.realms.iter().enumerate() {
        assert_eq!(realm_attribute(&bed.admin, realm_name).await?, Value::Null);
        let object = get(client, &realm_kind(), &bed.ns, &format!("r{i}"))
            .await?
            .unwrap_or_default();
        assert_eq!(object["status"]["reconciledBy"]["version"], "0.1.0");
    }

    // When the candidate is promoted
    declare(
        client,
        declaration(&name, &operator, &v2, &["keycloak-admin", "read-secrets"], None),
    )
    .await?;
    // Then it serves, and what it had planned is written
    wait_serving(client, &name, &v2).await?;
    for (i, realm_name) in bed.realms.iter().enumerate() {
        wait_reconciled_by(client, &bed.ns, &format!("r{i}"), "0.2.0-test").await?;
        assert_eq!(realm_attribute(&bed.admin, realm_name).await?, "v2");
    }
    eventually(
        "the candidate to leave the status",
        Duration::from_secs(30),
        Duration::from_millis(500),
        || async {
            let object = get(client, &component_kind(), "", &name).await?.unwrap_or_default();
            Ok(object["status"]["candidate"].is_null().then_some(()))
        },
    )
    .await?;

    bed.delete_realms().await
}
