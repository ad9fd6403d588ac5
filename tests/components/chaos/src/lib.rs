//! A test component that misbehaves on request, to prove that a component
//! which loops, allocates without bound, traps or reaches outside its scope
//! fails alone, that an answer the API server would refuse is reported
//! rather than written, and that the host refuses what no realm-scoped kind may do
//! (own the master realm, or a realm another resource owns), whatever the
//! component. It serves the test-only kind `ChaosProbe` (test.wasmop.dev/v1).

use keycloak_operator_sdk::{
    Capability, Description, KeycloakScope, KindRef, ReconcileError, Reconciler, Request, Response, keycloak,
};
use serde_json::{Value, json};

struct Chaos;

impl Reconciler for Chaos {
    fn describe() -> Description {
        Description {
            name: "test/chaos".into(),
            version: "0.1.0".into(),
            group: "test.wasmop.dev".into(),
            kind: "ChaosProbe".into(),
            plural: "chaosprobes".into(),
            versions: vec!["v1".into()],
            child_kinds: vec![KindRef {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                plural: "configmaps".into(),
            }],
            related_kinds: vec![],
            capabilities: vec![Capability::KeycloakAdmin],
            keycloak_scope: KeycloakScope::Realm,
            finalizer: false,
            crd: Some(include_str!("../crd.yaml").into()),
        }
    }

    fn reconcile(request: Request) -> Result<Response, ReconcileError> {
        let mode = request
            .parent
            .pointer("/spec/mode")
            .and_then(Value::as_str)
            .unwrap_or("ok");
        let realm = request
            .parent
            .pointer("/spec/realmName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        match mode {
            "loop" => loop {
                std::hint::black_box(());
            },
            "allocate" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "trap" => panic!("chaos: a deliberate panic"),
            "escape" => {
                // Rewrite the master realm, then pretend all went well: the
                // host must refuse the write and not believe the answer.
                let _ = keycloak::update(
                    "/realms/{realm}",
                    &["master"],
                    &json!({"realm": "master", "displayName": "hijacked"}),
                );
                Ok(Response::ready("Reconciled", "nothing to see here"))
            }
            "climb" => {
                // Values that are dot segments: encoded or not, a URL parser
                // resolves them, and this PUT would land on the master realm
                // if the host let it leave.
                let _ = keycloak::update(
                    "/realms/{realm}/users/{a}/{b}/{c}",
                    &[&realm, "..", "..", "master"],
                    &json!({"realm": "master", "displayName": "hijacked"}),
                );
                Ok(Response::ready("Reconciled", "nothing to see here"))
            }
            "malformed" => {
                // What the API server would refuse in a status.
                Ok(Response::ready("Reconciled", "fine").condition("not a type!", true, "Fine", "m"))
            }
            // A status field of the wrong type: only the kind's schema knows.
            "mistyped" => Response::ready("Reconciled", "fine").status(json!({"realmExists": "perhaps"})),
            "write" => {
                // Rewrite the realm the spec names: refused by the host when
                // that realm is the master realm or another resource's.
                keycloak::update(
                    "/realms/{realm}",
                    &[&realm],
                    &json!({"realm": realm, "displayName": "hijacked"}),
                )?;
                Ok(Response::ready("Reconciled", "rewrote the realm"))
            }
            "children" => {
                let names: Vec<String> = request
                    .parent
                    .pointer("/spec/children")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                    .unwrap_or_default();
                let mut response = Response::ready("Reconciled", format!("{} children", names.len()));
                for name in names {
                    response = response.child(json!({
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {"name": name},
                        "data": {"owner": request.name()},
                    }))?;
                }
                Ok(response)
            }
            _ => {
                let exists = keycloak::get("/realms/{realm}", &[&realm])?.is_some();
                Ok(Response::ready("Reconciled", format!("realm {realm} exists: {exists}"))
                    .status(json!({"realmExists": exists}))?)
            }
        }
    }
}

keycloak_operator_sdk::export_reconciler!(Chaos);
