//! The `claude` provider: Anthropic's Messages API, natively, over reqwest
//! and `sse-parse` (there is no maintained Anthropic SDK to lean on).
//!
//! Error mapping, in the port's terms: a non-2xx answer is `Status` (with
//! `retry-after` and the body's message); failing to connect is `Connect`;
//! the adapter's deadline before the response head is `Timeout`; once the
//! stream runs, a cut, a stall past the read timeout, or an end without
//! `message_stop` is `Interrupted`, an event that does not parse is
//! `Protocol`, and an `error` event is `Upstream`.

mod events;

use std::fmt;
use std::time::Duration;

use anyhow::{Context, bail};
use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderValue};
use serde::Serialize;
use specgen_domain::ProviderName;
use specgen_ports::{AiProvider, CompletionRequest, ProviderError, ReplyStream, TurnRole};

/// Anthropic's API root, without `/v1` (as in Anthropic's SDKs).
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
/// The model used when the configuration names none.
pub const DEFAULT_MODEL: &str = "claude-sonnet-4-5";
/// The Messages API version this adapter speaks.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

#[derive(Clone)]
pub struct ClaudeConfig {
    pub api_key: String,
    /// API root without `/v1`, e.g. `https://api.anthropic.com` or a proxy.
    pub base_url: String,
    /// Default model, used when neither the message nor the session names one.
    pub model: String,
    /// Deadline for establishing the TCP/TLS connection.
    pub connect_timeout: Duration,
    /// Deadline for the response head, and the longest silence tolerated
    /// between two reads of the stream (Anthropic pings while it thinks).
    /// Not a total deadline: long replies may stream for minutes.
    pub request_timeout: Duration,
}

impl ClaudeConfig {
    /// Anthropic's defaults around `api_key`.
    pub fn new(api_key: impl Into<String>) -> Self {
        Self {
            api_key: api_key.into(),
            base_url: DEFAULT_BASE_URL.to_owned(),
            model: DEFAULT_MODEL.to_owned(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
        }
    }
}

// Hand-written so the key never reaches a log line through `{:?}`.
impl fmt::Debug for ClaudeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClaudeConfig")
            .field("api_key", &"<redacted>")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

pub struct ClaudeProvider {
    http: reqwest::Client,
    endpoint: String,
    model: String,
    request_timeout: Duration,
}

impl fmt::Debug for ClaudeProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClaudeProvider")
            .field("endpoint", &self.endpoint)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl ClaudeProvider {
    pub fn new(config: ClaudeConfig) -> anyhow::Result<Self> {
        if config.api_key.trim().is_empty() {
            bail!("the Anthropic API key is empty");
        }
        if config.model.trim().is_empty() {
            bail!("the Anthropic model is empty");
        }
        let base = reqwest::Url::parse(config.base_url.trim())
            .with_context(|| format!("invalid Anthropic base URL {:?}", config.base_url))?;
        if !matches!(base.scheme(), "http" | "https") {
            bail!("the Anthropic base URL must be http(s): {base}");
        }
        // Sensitive: reqwest then keeps the key out of its Debug output.
        let mut key = HeaderValue::from_str(config.api_key.trim())
            .map_err(|_| anyhow::anyhow!("the Anthropic API key has characters a header cannot carry"))?;
        key.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", key);
        headers.insert("anthropic-version", HeaderValue::from_static(ANTHROPIC_VERSION));
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("specgen/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.connect_timeout)
            // Per read, not total (`timeout` would cut long replies).
            .read_timeout(config.request_timeout)
            .build()
            .context("building the Anthropic HTTP client")?;
        Ok(Self {
            http,
            endpoint: format!("{}/v1/messages", base.as_str().trim_end_matches('/')),
            model: config.model.trim().to_owned(),
            request_timeout: config.request_timeout,
        })
    }
}

#[derive(Serialize)]
struct MessagesBody<'a> {
    model: &'a str,
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    system: Option<&'a str>,
    stream: bool,
    messages: Vec<MessageBody<'a>>,
}

#[derive(Serialize)]
struct MessageBody<'a> {
    role: &'static str,
    content: &'a str,
}

fn body(request: &CompletionRequest) -> MessagesBody<'_> {
    MessagesBody {
        model: &request.model,
        max_tokens: request.max_output_tokens,
        system: request.system.as_deref().filter(|s| !s.trim().is_empty()),
        stream: true,
        messages: request
            .turns
            .iter()
            // The API rejects empty text content (e.g. a reply that failed
            // before its first token); such a turn carries nothing anyway.
            .filter(|t| !t.content.trim().is_empty())
            .map(|t| MessageBody {
                role: match t.role {
                    TurnRole::User => "user",
                    TurnRole::Assistant => "assistant",
                },
                content: &t.content,
            })
            .collect(),
    }
}

#[async_trait]
impl AiProvider for ClaudeProvider {
    fn name(&self) -> ProviderName {
        ProviderName::Claude
    }

    fn default_model(&self) -> &str {
        &self.model
    }

    fn models(&self) -> Vec<String> {
        vec![self.model.clone()]
    }

    async fn stream(&self, request: CompletionRequest) -> Result<ReplyStream, ProviderError> {
        let send = request
            .trace_headers
            .iter()
            .fold(self.http.post(&self.endpoint), |post, (name, value)| post.header(name, value))
            .json(&body(&request))
            .send();
        let response = match tokio::time::timeout(self.request_timeout, send).await {
            Err(_) => return Err(ProviderError::Timeout),
            Ok(Err(error)) => return Err(send_error(&error)),
            Ok(Ok(response)) => response,
        };
        if !response.status().is_success() {
            return Err(status_error(response, self.request_timeout).await);
        }
        Ok(events::reply_stream(response))
    }
}

/// An error and its causes on one line (reqwest's top level alone says
/// little: "error sending request").
pub(crate) fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn send_error(error: &reqwest::Error) -> ProviderError {
    if error.is_timeout() {
        ProviderError::Timeout
    } else if error.is_builder() {
        ProviderError::Protocol(describe(error))
    } else {
        // Refused, DNS, TLS, or reset before any response.
        ProviderError::Connect(describe(error))
    }
}

/// `retry-after` in seconds (fractions allowed); the HTTP-date form is not
/// used by Anthropic and is ignored.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: f64 = headers.get("retry-after")?.to_str().ok()?.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

async fn status_error(response: reqwest::Response, deadline: Duration) -> ProviderError {
    let status = response.status();
    let retry_after = retry_after(response.headers());
    let body = match tokio::time::timeout(deadline, response.bytes()).await {
        Ok(Ok(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
        _ => String::new(),
    };
    ProviderError::Status {
        status: status.as_u16(),
        retry_after,
        message: error_message(&body).unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned()),
    }
}

/// `{"type":"error","error":{"type":..,"message":..}}` as "type: message";
/// otherwise the start of the body as text.
fn error_message(body: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        error: Detail,
    }
    #[derive(serde::Deserialize)]
    struct Detail {
        #[serde(rename = "type")]
        kind: Option<String>,
        message: Option<String>,
    }
    if let Ok(Envelope { error }) = serde_json::from_str::<Envelope>(body) {
        let parts: Vec<String> = [error.kind, error.message].into_iter().flatten().collect();
        if !parts.is_empty() {
            return Some(parts.join(": "));
        }
    }
    let text = body.trim();
    (!text.is_empty()).then(|| text.chars().take(300).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use specgen_ports::ChatTurn;

    fn config() -> ClaudeConfig {
        ClaudeConfig::new("sk-ant-secret-value")
    }

    #[test]
    fn debug_output_never_shows_the_key() {
        let config = config();
        assert!(!format!("{config:?}").contains("secret-value"));
        let provider = ClaudeProvider::new(config).unwrap();
        assert!(!format!("{provider:?}").contains("secret-value"));
    }

    #[test]
    fn endpoint_joins_base_url_with_or_without_slash() {
        for base in ["http://127.0.0.1:9/", "http://127.0.0.1:9"] {
            let provider = ClaudeProvider::new(ClaudeConfig { base_url: base.into(), ..config() }).unwrap();
            assert_eq!(provider.endpoint, "http://127.0.0.1:9/v1/messages");
        }
        let proxied =
            ClaudeProvider::new(ClaudeConfig { base_url: "https://proxy.example/anthropic".into(), ..config() })
                .unwrap();
        assert_eq!(proxied.endpoint, "https://proxy.example/anthropic/v1/messages");
    }

    #[test]
    fn invalid_configuration_is_refused() {
        for bad in [
            ClaudeConfig { api_key: " ".into(), ..config() },
            ClaudeConfig { api_key: "line\nbreak".into(), ..config() },
            ClaudeConfig { base_url: "not a url".into(), ..config() },
            ClaudeConfig { base_url: "ftp://x".into(), ..config() },
            ClaudeConfig { model: "".into(), ..config() },
        ] {
            assert!(ClaudeProvider::new(bad).is_err());
        }
    }

    #[test]
    fn body_omits_empty_system_and_empty_turns() {
        let request = CompletionRequest {
            model: "m".into(),
            system: Some("  ".into()),
            turns: vec![
                ChatTurn { role: TurnRole::User, content: "hi".into() },
                ChatTurn { role: TurnRole::Assistant, content: "".into() },
                ChatTurn { role: TurnRole::User, content: "again".into() },
            ],
            max_output_tokens: 9,
            trace_headers: Vec::new(),
        };
        let json = serde_json::to_value(body(&request)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "model": "m", "max_tokens": 9, "stream": true,
                "messages": [
                    { "role": "user", "content": "hi" },
                    { "role": "user", "content": "again" },
                ],
            })
        );
    }

    #[test]
    fn retry_after_parses_seconds_only() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert("retry-after", HeaderValue::from_static("1.5"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(1500)));
        for bad in ["-1", "soon", "Wed, 21 Oct 2015 07:28:00 GMT"] {
            headers.insert("retry-after", HeaderValue::from_static(bad));
            assert_eq!(retry_after(&headers), None, "{bad}");
        }
    }

    #[test]
    fn error_message_prefers_the_json_error() {
        assert_eq!(
            error_message(r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#),
            Some("overloaded_error: Overloaded".into())
        );
        assert_eq!(error_message("upstream connect error"), Some("upstream connect error".into()));
        assert_eq!(error_message("  "), None);
        assert_eq!(error_message(&"x".repeat(1000)).map(|m| m.len()), Some(300));
    }
}
