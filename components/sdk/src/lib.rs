//! Guest-side library for Keycloak operator reconciler components.
//!
//! A component serves one kind of custom resource. It implements
//! [`Reconciler`] in plain Rust and exports it with [`export_reconciler!`]:
//!
//! ```ignore
//! struct MyKind;
//! impl keycloak_operator_sdk::Reconciler for MyKind {
//!     fn describe() -> Description { /* kind, capabilities, scope */ }
//!     fn reconcile(request: Request) -> Result<Response, ReconcileError> { /* ... */ }
//! }
//! keycloak_operator_sdk::export_reconciler!(MyKind);
//! ```
//!
//! The host passes the resource, its observed children and related objects;
//! the component returns the desired children and status. Keycloak is reached
//! only through [`keycloak::Keycloak`], which the host scopes to what the
//! resource may touch; the component never sees credentials or URLs.

mod description;
pub mod diff;
pub mod error;
pub mod keycloak;
pub mod lifecycle;
pub mod log;
pub mod ownership;
pub mod protocol_mappers;
mod request;
mod response;
#[doc(hidden)]
pub mod runtime;
pub mod secrets;
mod status;

/// Bindings generated from the WIT package in `wit/`.
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "reconciler-component",
        path: "../../wit",
        pub_export_macro: true,
        default_bindings_module: "keycloak_operator_sdk::bindings",
        export_macro_name: "export",
        additional_derives: [PartialEq],
    });
}

pub use bindings::keycloak_operator::reconciler::types::{
    Capability, Condition, Description, Detail, Event, EventType, FinalizeResponse, KeycloakScope, KindRef, Outcome,
    ReconcileError, ReconcileRequest, ReconcileResponse, Target,
};
pub use lifecycle::{Established, Lifecycle};
pub use request::Request;
pub use response::{Finalized, Response};
pub use status::{HostStatus, ReconciledBy};

/// A reconciler for one kind. Implement it and export it with
/// [`export_reconciler!`].
pub trait Reconciler {
    /// What the component serves and needs.
    fn describe() -> Description;

    /// Converges one resource and returns its desired children and status.
    fn reconcile(request: Request) -> Result<Response, ReconcileError>;

    /// Cleans up before the resource is deleted. Only called when
    /// [`Description::finalizer`] is set.
    fn finalize(_request: Request) -> Result<Finalized, ReconcileError> {
        Ok(Finalized::default())
    }
}

/// Adapts a [`Reconciler`] to the generated export trait. Used by
/// [`export_reconciler!`]; not meant to be called directly.
#[doc(hidden)]
pub fn __reconcile<R: Reconciler>(raw: ReconcileRequest) -> Result<ReconcileResponse, ReconcileError> {
    R::reconcile(Request::parse(raw)?).map(Response::into_raw)
}

/// See [`__reconcile`].
#[doc(hidden)]
pub fn __finalize<R: Reconciler>(raw: ReconcileRequest) -> Result<FinalizeResponse, ReconcileError> {
    R::finalize(Request::parse(raw)?).map(Finalized::into_raw)
}

/// Exports a [`Reconciler`] as the component's `reconciler` interface.
/// Only on WebAssembly: a native build (unit tests, clippy) has no world to
/// export, and the component-model export names are not valid native symbols.
#[macro_export]
macro_rules! export_reconciler {
    ($component:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct ExportedReconciler;
            impl $crate::bindings::exports::keycloak_operator::reconciler::reconciler::Guest for ExportedReconciler {
                fn describe() -> $crate::Description {
                    $crate::runtime::enter();
                    <$component as $crate::Reconciler>::describe()
                }
                fn reconcile(
                    request: $crate::ReconcileRequest,
                ) -> ::core::result::Result<$crate::ReconcileResponse, $crate::ReconcileError> {
                    $crate::runtime::enter();
                    $crate::__reconcile::<$component>(request)
                }
                fn finalize(
                    request: $crate::ReconcileRequest,
                ) -> ::core::result::Result<$crate::FinalizeResponse, $crate::ReconcileError> {
                    $crate::runtime::enter();
                    $crate::__finalize::<$component>(request)
                }
            }
    $crate::bindings::export!(ExportedReconciler with_types_in $crate::bindings);
        };
        // Natively the type is still used, so builds stay free of dead code.
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn() -> $crate::Description = <$component as $crate::Reconciler>::describe;
    };
}
