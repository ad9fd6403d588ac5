//! The component runtime: one wasmtime engine, components compiled once per
//! digest, a fresh store per call, deadlines and memory caps per call, and a
//! registry that swaps component versions atomically.

mod admission;
pub mod cache;
mod component;
mod crd_check;
pub mod disk_budget;
pub mod engine;
pub mod imports;
pub mod model;
mod policy;
pub mod store;
mod wasi;
mod wit_v0_1;

pub use admission::{default_child_kinds, default_related_kinds};
pub use component::{CallFailure, CallLimits, Called, LoadError, LoadedComponent, Policy, Runtime, RuntimeSettings};
pub mod registry;
