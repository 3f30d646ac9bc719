//! The AI provider port: one streamed chat completion at a time. Adapters
//! (Claude, OpenAI-compatible, the offline demo) speak their wire format
//! behind it; routing, fallback and deadlines live in the application layer.

use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use futures::Stream;
use specgen_domain::ProviderName;

/// Who said a turn of the conversation sent to a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnRole {
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatTurn {
    pub role: TurnRole,
    pub content: String,
}

/// One completion request, already trimmed to the context budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletionRequest {
    /// The model as the provider spells it.
    pub model: String,
    /// The session's system prompt, if any.
    pub system: Option<String>,
    /// Oldest first; the last turn is the user's new message.
    pub turns: Vec<ChatTurn>,
    /// Upper bound on the reply's length, in tokens.
    pub max_output_tokens: u32,
    /// W3C trace-context headers (`traceparent`, `tracestate`) to send with
    /// the upstream request, so the provider call continues the caller's
    /// trace; empty when tracing is off.
    pub trace_headers: Vec<(String, String)>,
}

/// Token counts as the provider reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenUsage {
    pub input_tokens: u32,
    pub output_tokens: u32,
}

/// What a provider's stream yields, in order: any number of `Delta`s and
/// `Usage`s, then exactly one `Done`. A stream that ends without `Done` was cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// The next piece of the reply's text (never empty).
    Delta(String),
    /// Usage so far; a later one supersedes an earlier one.
    Usage(TokenUsage),
    /// The reply ended normally; `finish_reason` as the provider says it
    /// (`end_turn`, `stop`, `max_tokens`, `length`, ...).
    Done { finish_reason: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// No connection could be made (refused, DNS, TLS, reset before a response).
    #[error("cannot reach the provider: {0}")]
    Connect(String),
    /// The provider answered with an error status before streaming.
    #[error("provider answered {status}: {message}")]
    Status { status: u16, retry_after: Option<Duration>, message: String },
    /// The adapter's own network deadline passed.
    #[error("provider timed out")]
    Timeout,
    /// An event or body the adapter could not understand.
    #[error("malformed provider response: {0}")]
    Protocol(String),
    /// The stream stopped before its end (connection cut, EOF without a stop event).
    #[error("provider stream interrupted: {0}")]
    Interrupted(String),
    /// The provider sent an error event inside the stream (e.g. `overloaded_error`).
    #[error("provider error {kind}: {message}")]
    Upstream { kind: String, message: String },
}

impl ProviderError {
    /// Worth trying again (the same provider after a pause, or the next one):
    /// connection failures, timeouts, 429, 5xx and overload events. A 4xx
    /// other than 429 means the request itself is wrong.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connect(_) | Self::Timeout | Self::Interrupted(_) => true,
            Self::Status { status, .. } => *status == 429 || *status == 408 || *status >= 500,
            Self::Upstream { kind, .. } => {
                kind.contains("overloaded") || kind.contains("rate_limit") || kind.contains("api_error")
            }
            Self::Protocol(_) => false,
        }
    }

    /// The pause the provider asked for (`retry-after`), if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

pub type ReplyStream = Pin<Box<dyn Stream<Item = Result<StreamEvent, ProviderError>> + Send>>;

#[async_trait]
pub trait AiProvider: Send + Sync {
    fn name(&self) -> ProviderName;

    /// The model used when neither the message nor the session names one.
    fn default_model(&self) -> &str;

    /// Models to offer in pickers (a hint: any model the provider accepts works).
    fn models(&self) -> Vec<String>;

    /// Sends the request and returns once the provider has accepted it (HTTP
    /// status received). Errors here happened before any token. Dropping the
    /// stream aborts the upstream request.
    async fn stream(&self, request: CompletionRequest) -> Result<ReplyStream, ProviderError>;
}
