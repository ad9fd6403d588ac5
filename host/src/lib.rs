//! The Keycloak operator host.
//!
//! The host owns everything generic — watches and caches, leader election,
//! the work queue and backoff, Kubernetes writes, status conditions, Events,
//! metrics, Keycloak credentials, circuit breaking and rate limiting — and
//! runs one WebAssembly reconciler component per kind in a sandbox.

pub mod capability;
pub mod config;
pub mod controller;
pub mod crds;
pub mod delivery;
pub mod http;
pub mod keycloak;
pub mod leader;
pub mod memory;
pub mod metrics;
pub mod operator;
pub mod runtime;
pub mod secrets;
