//! The in-process event bus and reply log against their contracts. One
//! process is one instance: both handles are the same bus (or log).

use std::sync::Arc;

use specgen_inprocess::{InProcessBus, InProcessReplyLog};
use specgen_ports::{EventBus, ReplyLog};

async fn fresh_bus() -> (Arc<dyn EventBus>, Arc<dyn EventBus>) {
    let bus: Arc<dyn EventBus> = Arc::new(InProcessBus::new(1_024));
    (Arc::clone(&bus), bus)
}

async fn fresh_log() -> (Arc<dyn ReplyLog>, Arc<dyn ReplyLog>) {
    let log: Arc<dyn ReplyLog> = Arc::new(InProcessReplyLog::new());
    (Arc::clone(&log), log)
}

specgen_test_support::event_bus_contract_tests!(fresh_bus);
specgen_test_support::reply_log_contract_tests!(fresh_log);
