//! Shared test code: the contract suites every adapter of a port must pass,
//! and fixtures that build valid domain values in one line.
//!
//! A store adapter runs the whole store suite with
//! `specgen_test_support::store_contract_tests!(fresh_store);` where
//! `fresh_store` is an `async fn() -> TestStore` returning an empty,
//! migrated, isolated store (its own database, schema or file).
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod ai;
pub mod contract;
pub mod fixtures;
pub mod proxy;

use specgen_ports::Store;

/// An isolated store for one test; `guard` keeps its database or directory
/// alive until the test ends (and may clean it up on drop).
pub struct TestStore {
    pub store: Store,
    pub guard: Box<dyn std::any::Any + Send>,
}
