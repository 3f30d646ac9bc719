//! The in-process cache against the cache contract.

use std::sync::Arc;

use specgen_inprocess::InProcessCache;
use specgen_ports::Cache;

async fn fresh() -> Arc<dyn Cache> {
    Arc::new(InProcessCache::new(1_000))
}

specgen_test_support::cache_contract_tests!(fresh);
