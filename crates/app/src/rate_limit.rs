//! Rate limiting that survives the loss of its shared store: when the
//! primary limiter (Redis) cannot answer, counting goes on in-process, so
//! the service keeps running with per-instance limits instead of failing.

use std::sync::Arc;

use async_trait::async_trait;
use specgen_ports::{RateDecision, RateLimitError, RateLimiter, RateRule};

pub struct FailoverRateLimiter {
    primary: Arc<dyn RateLimiter>,
    local: Arc<dyn RateLimiter>,
}

impl FailoverRateLimiter {
    pub fn new(primary: Arc<dyn RateLimiter>, local: Arc<dyn RateLimiter>) -> Self {
        Self { primary, local }
    }
}

#[async_trait]
impl RateLimiter for FailoverRateLimiter {
    async fn hit(&self, key: &str, rule: RateRule) -> Result<RateDecision, RateLimitError> {
        match self.primary.hit(key, rule).await {
            Ok(decision) => Ok(decision),
            Err(e) => {
                tracing::warn!(error = %e, "shared rate limiter down; counting in-process");
                self.local.hit(key, rule).await
            }
        }
    }

    async fn peek(&self, key: &str, rule: RateRule) -> Result<RateDecision, RateLimitError> {
        match self.primary.peek(key, rule).await {
            Ok(decision) => Ok(decision),
            Err(_) => self.local.peek(key, rule).await,
        }
    }
}
