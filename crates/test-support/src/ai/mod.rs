//! Test doubles for AI upstreams and the provider contract.
//!
//! [`FakeUpstream`] is a small HTTP/1.1 server on `127.0.0.1:0` that speaks
//! either Anthropic's Messages SSE or OpenAI's `chat.completion.chunk` SSE
//! ([`FakeWire`]), follows one scripted [`FakeBehaviour`] per test, and
//! records every request it receives. An adapter crate runs the whole
//! provider contract against it with
//! `specgen_test_support::ai_provider_contract_tests!(make, FakeWire::Anthropic);`
//! where `make` is a `fn(base_url: String) -> Arc<dyn AiProvider>` building
//! the adapter with [`FAKE_API_KEY`].

pub mod contract;
mod fake;
mod wire;

pub use fake::{
    FakeBehaviour, FakeUpstream, RecordedRequest, UPSTREAM_OWN_TIME_PREFIX, UPSTREAM_RECEIVED_AT_PREFIX,
    upstream_own_time, upstream_received_at,
};

use specgen_ports::{ChatTurn, CompletionRequest, TokenUsage, TurnRole};

/// The API key every contract `make` function must configure; the contract
/// checks that it reaches the upstream in the wire's auth header.
pub const FAKE_API_KEY: &str = "sk-fake-contract-key-0123456789";

/// Usage the fake reports unless a test asks for other numbers.
pub const FAKE_USAGE: TokenUsage = TokenUsage { input_tokens: 31, output_tokens: 7 };

/// Which provider wire format a [`FakeUpstream`] speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeWire {
    /// Anthropic Messages API: `POST /v1/messages`, named SSE events.
    Anthropic,
    /// OpenAI Chat Completions: `POST /v1/chat/completions`, `data:` chunks
    /// ending in `data: [DONE]`.
    OpenAi,
}

impl FakeWire {
    /// The base URL as that provider's SDKs spell it: Anthropic's has no
    /// `/v1`, OpenAI's ends in `/v1`.
    pub fn base_url(self, address: std::net::SocketAddr) -> String {
        match self {
            Self::Anthropic => format!("http://{address}"),
            Self::OpenAi => format!("http://{address}/v1"),
        }
    }

    /// The path a completion request must be sent to.
    pub fn completion_path(self) -> &'static str {
        match self {
            Self::Anthropic => "/v1/messages",
            Self::OpenAi => "/v1/chat/completions",
        }
    }

    /// The finish reason the fake reports for a normal end.
    pub fn finish_reason(self) -> &'static str {
        match self {
            Self::Anthropic => "end_turn",
            Self::OpenAi => "stop",
        }
    }

    /// An error body as the provider sends it with an error status.
    pub fn error_body(self, kind: &str, message: &str) -> String {
        match self {
            Self::Anthropic => serde_json::json!({
                "type": "error",
                "error": { "type": kind, "message": message },
            }),
            Self::OpenAi => serde_json::json!({
                "error": { "message": message, "type": kind, "param": null, "code": null },
            }),
        }
        .to_string()
    }
}

/// A request with a system prompt and a few turns, the last one the user's.
pub fn sample_request() -> CompletionRequest {
    CompletionRequest {
        model: "contract-model-1".into(),
        system: Some("You are a terse assistant.".into()),
        turns: vec![
            ChatTurn { role: TurnRole::User, content: "Hello there".into() },
            ChatTurn { role: TurnRole::Assistant, content: "Hi! How can I help?".into() },
            ChatTurn { role: TurnRole::User, content: "Tell me a very short story.".into() },
        ],
        max_output_tokens: 256,
        trace_headers: vec![("traceparent".into(), SAMPLE_TRACEPARENT.into())],
    }
}

/// The trace context the sample request carries, which adapters must forward.
pub const SAMPLE_TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Text chunks for scripted replies; the reply is their concatenation.
pub fn sample_chunks() -> Vec<String> {
    ["Once", " upon", " a time,", " a **tiny**", " crab", " wrote `Rust`."].into_iter().map(String::from).collect()
}
