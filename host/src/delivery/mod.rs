//! Component delivery: components declared as `ReconcilerComponent`
//! resources, pulled from OCI registries by digest, swapped in one kind at a
//! time, tried in shadow mode before they serve, and rolled back from what
//! is already on the machine.

pub mod declared;
pub mod oci;
pub mod pull_secret;
pub mod shadow;
pub mod store;

pub use declared::{Delivery, DeliverySettings};
pub use oci::{OciClient, OciError, OciSettings, PinnedReference};
pub use shadow::{Rehearsal, ShadowGateway, ShadowReports};
pub use store::ArtifactStore;
