//! Which provider answers: the requested one first, then the fallback order;
//! each skipped while its circuit breaker is open.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use specgen_domain::ProviderName;
use specgen_ports::AiProvider;

/// AI settings from the configuration.
#[derive(Debug, Clone)]
pub struct AiSettings {
    /// The default provider first, then the fallback order.
    pub order: Vec<ProviderName>,
    pub first_token_timeout: Duration,
    /// Longest silence between two chunks once a reply streams.
    pub idle_timeout: Duration,
    /// Longest a whole reply may take.
    pub total_timeout: Duration,
    pub max_output_tokens: u32,
    pub context: super::context::ContextBudget,
    /// Consecutive failures that open a provider's breaker.
    pub breaker_threshold: u32,
    /// How long an open breaker skips its provider.
    pub breaker_cooldown: Duration,
    /// Retry a provider that asks for it (`retry-after`) only if the pause is at most this.
    pub max_retry_wait: Duration,
    /// Tries per provider, retries included.
    pub attempts_per_provider: u32,
    /// No other instance runs replies this one could be asked to stop (its
    /// event bus is in-process): a reply not running here runs nowhere.
    pub alone: bool,
}

impl Default for AiSettings {
    fn default() -> Self {
        Self {
            order: vec![ProviderName::Demo],
            first_token_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            total_timeout: Duration::from_secs(300),
            max_output_tokens: 1024,
            context: super::context::ContextBudget::default(),
            breaker_threshold: 3,
            breaker_cooldown: Duration::from_secs(30),
            max_retry_wait: Duration::from_secs(2),
            attempts_per_provider: 2,
            alone: false,
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct BreakerState {
    consecutive_failures: u32,
    open_until: Option<Instant>,
}

/// One circuit breaker per provider, per instance.
#[derive(Debug, Default)]
pub struct Breakers {
    states: Mutex<HashMap<ProviderName, BreakerState>>,
}

impl Breakers {
    fn with<R>(&self, name: ProviderName, f: impl FnOnce(&mut BreakerState) -> R) -> R {
        let mut states = match self.states.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(states.entry(name).or_default())
    }

    /// Closed, or open but past its cool-down (one trial call goes through).
    pub fn available(&self, name: ProviderName) -> bool {
        self.with(name, |s| s.open_until.is_none_or(|until| Instant::now() >= until))
    }

    pub fn success(&self, name: ProviderName) {
        self.with(name, |s| *s = BreakerState::default());
    }

    pub fn failure(&self, name: ProviderName, threshold: u32, cooldown: Duration) {
        let opened = self.with(name, |s| {
            s.consecutive_failures += 1;
            if s.consecutive_failures >= threshold {
                s.open_until = Some(Instant::now() + cooldown);
                true
            } else {
                false
            }
        });
        if opened {
            tracing::warn!(provider = %name, cooldown_s = cooldown.as_secs(), "circuit opened: provider skipped during cool-down");
        }
    }
}

/// The enabled providers, in fallback order.
#[derive(Clone)]
pub struct Providers {
    ordered: Vec<Arc<dyn AiProvider>>,
}

impl Providers {
    /// `providers` in `order`; providers not named in `order` follow in the given order.
    pub fn new(mut providers: Vec<Arc<dyn AiProvider>>, order: &[ProviderName]) -> Self {
        providers.sort_by_key(|p| order.iter().position(|n| *n == p.name()).unwrap_or(usize::MAX));
        Self { ordered: providers }
    }

    pub fn all(&self) -> &[Arc<dyn AiProvider>] {
        &self.ordered
    }

    pub fn get(&self, name: ProviderName) -> Option<&Arc<dyn AiProvider>> {
        self.ordered.iter().find(|p| p.name() == name)
    }

    pub fn default_name(&self) -> Option<ProviderName> {
        self.ordered.first().map(|p| p.name())
    }

    /// `(provider, model)` to try in turn: the requested provider with the
    /// requested model, then the others with their default models. A model
    /// belongs to the provider it was named for: when that provider is not
    /// enabled (a session's setting from an earlier configuration), the
    /// default provider answers with its own default model.
    pub fn candidates(
        &self,
        requested: Option<ProviderName>,
        model: Option<&str>,
    ) -> Vec<(Arc<dyn AiProvider>, String)> {
        let (first, model) = match requested.map(|name| self.get(name)) {
            Some(Some(found)) => (Some(found), model),
            Some(None) => (self.ordered.first(), None),
            None => (self.ordered.first(), model),
        };
        let Some(first) = first else {
            return Vec::new();
        };
        let mut out = vec![(Arc::clone(first), model.map_or_else(|| first.default_model().to_owned(), str::to_owned))];
        for provider in &self.ordered {
            if provider.name() != first.name() {
                out.push((Arc::clone(provider), provider.default_model().to_owned()));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only its name and default model matter to the routing.
    struct Named(ProviderName, &'static str);

    #[async_trait::async_trait]
    impl AiProvider for Named {
        fn name(&self) -> ProviderName {
            self.0
        }
        fn default_model(&self) -> &str {
            self.1
        }
        fn models(&self) -> Vec<String> {
            vec![self.1.to_owned()]
        }
        async fn stream(
            &self,
            _: specgen_ports::CompletionRequest,
        ) -> Result<specgen_ports::ReplyStream, specgen_ports::ProviderError> {
            Err(specgen_ports::ProviderError::Connect("not called by these tests".into()))
        }
    }

    fn tried(
        providers: &Providers,
        requested: Option<ProviderName>,
        model: Option<&str>,
    ) -> Vec<(ProviderName, String)> {
        providers.candidates(requested, model).into_iter().map(|(p, model)| (p.name(), model)).collect()
    }

    #[test]
    fn a_model_goes_only_with_the_provider_it_was_named_for() {
        let providers = Providers::new(
            vec![Arc::new(Named(ProviderName::Demo, "demo-1")), Arc::new(Named(ProviderName::Claude, "sonnet"))],
            &[ProviderName::Claude, ProviderName::Demo],
        );
        let claude = (ProviderName::Claude, "sonnet".to_owned());
        let demo = (ProviderName::Demo, "demo-1".to_owned());
        assert_eq!(tried(&providers, None, None), [claude.clone(), demo.clone()]);
        assert_eq!(tried(&providers, None, Some("opus")), [(ProviderName::Claude, "opus".to_owned()), demo.clone()]);
        assert_eq!(
            tried(&providers, Some(ProviderName::Demo), Some("demo-2")),
            [(ProviderName::Demo, "demo-2".to_owned()), claude.clone()]
        );
        // openai is not enabled: its model is not sent to the others.
        assert_eq!(tried(&providers, Some(ProviderName::Openai), Some("gpt-x")), [claude, demo]);
    }

    #[test]
    fn breaker_opens_after_threshold_and_closes_on_success() {
        let breakers = Breakers::default();
        let name = ProviderName::Claude;
        breakers.failure(name, 2, Duration::from_secs(60));
        assert!(breakers.available(name));
        breakers.failure(name, 2, Duration::from_secs(60));
        assert!(!breakers.available(name), "open after two consecutive failures");
        assert!(breakers.available(ProviderName::Openai), "per provider");
        breakers.success(name);
        assert!(breakers.available(name));
        breakers.failure(name, 1, Duration::ZERO);
        assert!(breakers.available(name), "past its cool-down a trial goes through");
    }
}
