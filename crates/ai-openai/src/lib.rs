//! The `openai` provider: any OpenAI-compatible Chat Completions server
//! (OpenAI itself, Ollama, vLLM, LiteLLM, ...) through async-openai's
//! `Client<OpenAIConfig>`, streaming with `stream_options.include_usage`.
//!
//! async-openai builds and sends the request and parses the SSE. Two parts
//! are ours, for correctness: the HTTP transport (see `transport`: no hidden
//! retries, status + `retry-after`, detection of streams cut before
//! `[DONE]`, deadlines), and the chunk type (`byot`): async-openai's own
//! chunk type rejects a whole chunk over a `finish_reason` it does not know
//! (compatible servers send others) and cannot carry an in-stream `error`.
//!
//! Error mapping, in the port's terms: a non-2xx answer is `Status` (with
//! `retry-after` / `retry-after-ms` and the body's message); failing to
//! connect is `Connect`; no response head within `request_timeout` is
//! `Timeout`; once streaming, a cut, a stall or an end without `[DONE]` is
//! `Interrupted`, a chunk that does not parse is `Protocol`, and an
//! `{"error": ...}` chunk is `Upstream`.

mod chunks;
mod transport;

use std::fmt;
use std::time::Duration;

use anyhow::{Context, bail};
use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::types::chat::{
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestAssistantMessageContent, ChatCompletionRequestMessage,
    ChatCompletionRequestSystemMessage, ChatCompletionRequestSystemMessageContent, ChatCompletionRequestUserMessage,
    ChatCompletionRequestUserMessageContent, ChatCompletionStreamOptions, CreateChatCompletionRequest,
};
use async_trait::async_trait;
use reqwest::header::HeaderValue;
use specgen_domain::ProviderName;
use specgen_ports::{AiProvider, CompletionRequest, ProviderError, ReplyStream, TurnRole};

use crate::chunks::Chunk;
use crate::transport::Transport;

/// OpenAI's API root, ending in `/v1` (as in OpenAI's SDKs).
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
/// The model used when the configuration names none.
pub const DEFAULT_MODEL: &str = "gpt-4o-mini";

#[derive(Clone)]
pub struct OpenAiConfig {
    /// `None` for servers that need no key (Ollama, a local vLLM): no
    /// `Authorization` header is sent then.
    pub api_key: Option<String>,
    /// API root ending in `/v1`, e.g. `http://localhost:11434/v1`.
    pub base_url: String,
    /// Default model, used when neither the message nor the session names one.
    pub model: String,
    /// Deadline for establishing the TCP/TLS connection.
    pub connect_timeout: Duration,
    /// Deadline for the response head, and the longest silence tolerated
    /// between two reads of the stream. Not a total deadline.
    pub request_timeout: Duration,
}

impl OpenAiConfig {
    /// OpenAI's defaults around `api_key`.
    pub fn new(api_key: Option<String>) -> Self {
        Self {
            api_key,
            base_url: DEFAULT_BASE_URL.to_owned(),
            model: DEFAULT_MODEL.to_owned(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
        }
    }
}

// Hand-written so the key never reaches a log line through `{:?}`.
impl fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

pub struct OpenAiProvider {
    http: reqwest::Client,
    /// Holds the API key: never shown by `Debug`.
    openai: OpenAIConfig,
    transport: Transport,
    base_url: String,
    model: String,
}

impl fmt::Debug for OpenAiProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiProvider")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl OpenAiProvider {
    pub fn new(config: OpenAiConfig) -> anyhow::Result<Self> {
        if config.model.trim().is_empty() {
            bail!("the OpenAI model is empty");
        }
        let base = reqwest::Url::parse(config.base_url.trim())
            .with_context(|| format!("invalid OpenAI base URL {:?}", config.base_url))?;
        if !matches!(base.scheme(), "http" | "https") {
            bail!("the OpenAI base URL must be http(s): {base}");
        }
        let base_url = base.as_str().trim_end_matches('/').to_owned();
        let api_key = config.api_key.as_deref().map(str::trim).filter(|k| !k.is_empty());
        // async-openai builds the header with `unwrap`: refuse a key that
        // would make it panic on the first request.
        if let Some(key) = api_key
            && HeaderValue::from_str(&format!("Bearer {key}")).is_err()
        {
            bail!("the OpenAI API key has characters a header cannot carry");
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("specgen/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.connect_timeout)
            // Per read, not total (`timeout` would cut long replies).
            .read_timeout(config.request_timeout)
            .build()
            .context("building the OpenAI HTTP client")?;
        // Every field set explicitly: `OpenAIConfig::new()` would otherwise
        // pick up OPENAI_* variables behind the configuration's back.
        let openai = OpenAIConfig::new()
            .with_api_base(base_url.clone())
            .with_api_key(api_key.unwrap_or_default())
            .with_org_id("")
            .with_project_id("");
        let transport = Transport {
            http: http.clone(),
            head_timeout: config.request_timeout,
            send_auth: api_key.is_some(),
            extra_headers: Vec::new(),
        };
        Ok(Self { http, openai, transport, base_url, model: config.model.trim().to_owned() })
    }
}

fn chat_request(request: &CompletionRequest) -> CreateChatCompletionRequest {
    let system = request.system.as_deref().filter(|s| !s.trim().is_empty()).map(|s| {
        ChatCompletionRequestMessage::System(ChatCompletionRequestSystemMessage {
            content: ChatCompletionRequestSystemMessageContent::Text(s.to_owned()),
            name: None,
        })
    });
    let turns = request.turns.iter().map(|turn| match turn.role {
        TurnRole::User => ChatCompletionRequestMessage::User(ChatCompletionRequestUserMessage {
            content: ChatCompletionRequestUserMessageContent::Text(turn.content.clone()),
            name: None,
        }),
        TurnRole::Assistant => ChatCompletionRequestMessage::Assistant(ChatCompletionRequestAssistantMessage {
            content: Some(ChatCompletionRequestAssistantMessageContent::Text(turn.content.clone())),
            ..Default::default()
        }),
    });
    CreateChatCompletionRequest {
        model: request.model.clone(),
        messages: system.into_iter().chain(turns).collect(),
        stream: Some(true),
        stream_options: Some(ChatCompletionStreamOptions { include_usage: Some(true), include_obfuscation: None }),
        // `max_completion_tokens`, not the deprecated `max_tokens` that
        // OpenAI's reasoning models refuse; servers that only know
        // `max_tokens` ignore it rather than fail.
        max_completion_tokens: Some(request.max_output_tokens),
        ..Default::default()
    }
}

#[async_trait]
impl AiProvider for OpenAiProvider {
    fn name(&self) -> ProviderName {
        ProviderName::Openai
    }

    fn default_model(&self) -> &str {
        &self.model
    }

    fn models(&self) -> Vec<String> {
        vec![self.model.clone()]
    }

    async fn stream(&self, request: CompletionRequest) -> Result<ReplyStream, ProviderError> {
        // A client per call (cheap: the HTTP client and its pool are shared)
        // so the call's own headers reach the transport.
        let transport = Transport { extra_headers: request.trace_headers.clone(), ..self.transport.clone() };
        let client = Client::build(self.http.clone(), self.openai.clone()).with_http_service(transport);
        let chunks =
            client.chat().create_stream_byot::<_, Chunk>(chat_request(&request)).await.map_err(chunks::map_error)?;
        Ok(chunks::reply_stream(chunks))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use specgen_ports::ChatTurn;

    fn config() -> OpenAiConfig {
        OpenAiConfig::new(Some("sk-openai-secret-value".into()))
    }

    #[test]
    fn debug_output_never_shows_the_key() {
        let config = config();
        assert!(!format!("{config:?}").contains("secret-value"));
        let provider = OpenAiProvider::new(config).unwrap();
        assert!(!format!("{provider:?}").contains("secret-value"));
    }

    #[test]
    fn invalid_configuration_is_refused() {
        for bad in [
            OpenAiConfig { api_key: Some("line\nbreak".into()), ..config() },
            OpenAiConfig { base_url: "not a url".into(), ..config() },
            OpenAiConfig { base_url: "file:///tmp".into(), ..config() },
            OpenAiConfig { model: " ".into(), ..config() },
        ] {
            assert!(OpenAiProvider::new(bad).is_err());
        }
        assert!(OpenAiProvider::new(OpenAiConfig { api_key: None, ..config() }).is_ok());
    }

    #[test]
    fn request_body_is_chat_completions_json() {
        let request = CompletionRequest {
            model: "llama3.2".into(),
            system: None,
            turns: vec![
                ChatTurn { role: TurnRole::User, content: "hi".into() },
                ChatTurn { role: TurnRole::Assistant, content: "hello".into() },
            ],
            max_output_tokens: 64,
            trace_headers: Vec::new(),
        };
        let json = serde_json::to_value(chat_request(&request)).unwrap();
        // No nulls or unset options: strict compatible servers reject them.
        assert_eq!(
            json,
            serde_json::json!({
                "model": "llama3.2",
                "messages": [
                    { "role": "user", "content": "hi" },
                    { "role": "assistant", "content": "hello" },
                ],
                "stream": true,
                "stream_options": { "include_usage": true },
                "max_completion_tokens": 64,
            })
        );
    }
}
