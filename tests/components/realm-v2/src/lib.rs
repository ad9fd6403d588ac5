//! A second version of the realm component, for the hot-swap test: the
//! shipped reconciler with another version number and one extra realm
//! attribute, so the new version's behaviour is visible in Keycloak.

// The shipped reconciler's source, compiled into this crate (a dependency on
// the realm crate would export its world twice once Cargo unifies features).
#[path = "../../../../components/realm/src/lib.rs"]
#[allow(dead_code)]
mod realm_component;

use keycloak_operator_sdk::{Description, Finalized, ReconcileError, Reconciler, Request, Response};
use realm_component::Options;

const V2: Options = Options {
    version: "0.2.0-test",
    extra_attributes: &[("keycloak.wasmop.dev/test-version", "v2")],
};

struct RealmV2;

impl Reconciler for RealmV2 {
    fn describe() -> Description {
        realm_component::describe(&V2)
    }

    fn reconcile(request: Request) -> Result<Response, ReconcileError> {
        realm_component::reconcile(&V2, request)
    }

    fn finalize(request: Request) -> Result<Finalized, ReconcileError> {
        realm_component::finalize(request)
    }
}

keycloak_operator_sdk::export_reconciler!(RealmV2);
