//! A component that does nothing: it implements the generated bindings
//! directly (no JSON parsing) so that a benchmark measures only what the host
//! spends per call — a fresh store, instantiation, the call, the drop.

#[cfg(target_arch = "wasm32")]
mod exported {
    use keycloak_operator_sdk::bindings::exports::keycloak_operator::reconciler::reconciler::Guest;
    use keycloak_operator_sdk::{
        Description, Detail, FinalizeResponse, KeycloakScope, Outcome, ReconcileError, ReconcileRequest,
        ReconcileResponse,
    };

    struct Noop;

    impl Guest for Noop {
        fn describe() -> Description {
            Description {
                name: "test/noop".into(),
                version: "0.1.0".into(),
                group: "test.wasmop.dev".into(),
                kind: "Noop".into(),
                plural: "noops".into(),
                versions: vec!["v1".into()],
                child_kinds: vec![],
                related_kinds: vec![],
                capabilities: vec![],
                keycloak_scope: KeycloakScope::None,
                finalizer: false,
                crd: None,
            }
        }

        fn reconcile(_request: ReconcileRequest) -> Result<ReconcileResponse, ReconcileError> {
            Ok(ReconcileResponse {
                outcome: Outcome::Ready(Detail {
                    reason: "Reconciled".into(),
                    message: String::new(),
                }),
                status: "{}".into(),
                children: vec![],
                conditions: vec![],
                events: vec![],
                drift_corrected: vec![],
                requeue_after_seconds: None,
            })
        }

        fn finalize(_request: ReconcileRequest) -> Result<FinalizeResponse, ReconcileError> {
            Ok(FinalizeResponse { events: vec![] })
        }
    }

    keycloak_operator_sdk::bindings::export!(Noop with_types_in keycloak_operator_sdk::bindings);
}
