//! A second version of the realm component, for the hot-swap and delivery
//! tests: the shipped reconciler with another version number and one extra
//! realm attribute, so the new version's behaviour is visible in Keycloak.
//! It also asks for `read-secrets` (which it does not use), so that a
//! declaration granting only what version 1 needs refuses it.

// The shipped reconciler's source, compiled into this crate (a dependency on
// the realm crate would export its world twice once Cargo unifies features).
#[path = "../../../../components/realm/src/lib.rs"]
#[allow(dead_code)]
mod realm_component;

use keycloak_operator_sdk::{Capability, Description, Finalized, ReconcileError, Reconciler, Request, Response};
use realm_component::Options;

const V2: Options = Options {
    version: "0.2.0-test",
    extra_attributes: &[("keycloak.wasmop.dev/test-version", "v2")],
};

struct RealmV2;

impl Reconciler for RealmV2 {
    fn describe() -> Description {
        let mut description = realm_component::describe(&V2);
        description.capabilities.push(Capability::ReadSecrets);
        description
    }

    fn reconcile(request: Request) -> Result<Response, ReconcileError> {
        realm_component::reconcile(&V2, request)
    }

    fn finalize(request: Request) -> Result<Finalized, ReconcileError> {
        realm_component::finalize(request)
    }
}

keycloak_operator_sdk::export_reconciler!(RealmV2);
