//! Support code shared by the end-to-end tests.

pub mod admin_realm;
pub mod bench;
pub mod chart;
pub mod fault;
pub mod kubelet;
pub mod managed;
pub mod netns;
pub mod operator;
pub mod proxy;
pub mod registry;
pub mod resources;
pub mod testbed;
