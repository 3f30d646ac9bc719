//! The application layer: Spec Gen's use cases, written against the ports
//! only. HTTP and the gateway call these; they never reach a store directly.

pub mod health;

use std::sync::Arc;

use specgen_ports::{Clock, Store};

pub use health::{CheckStatus, Readiness};

/// Everything a use case needs, wired once by the composition root.
#[derive(Clone)]
pub struct App {
    store: Store,
    clock: Arc<dyn Clock>,
}

impl App {
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }
}
