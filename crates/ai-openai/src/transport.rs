//! The HTTP transport under async-openai's `Client` (its `middleware`
//! escape hatch). async-openai 0.43 builds the request, joins the base URL,
//! adds the bearer header and parses the SSE; this layer supplies what its
//! default transport cannot:
//!
//! - **No hidden retries.** The default executor retries 429, 5xx and
//!   connect errors three times with backoff; retry and fallback belong to
//!   the routing layer, which must see the first failure at once.
//! - **Status and `retry-after`.** On a non-2xx answer async-openai keeps
//!   the status but drops the headers, and a 4xx whose body is not OpenAI's
//!   JSON error loses even the status (it becomes a JSON decode error). We
//!   answer non-2xx here, with status, `retry-after` and the body's message.
//! - **Cut streams.** async-openai ends its stream identically on
//!   `data: [DONE]` and on a body that simply stops, so a reply truncated by
//!   a proxy would look complete. We watch the raw bytes for `[DONE]` and
//!   turn a clean end without it into a body error.
//! - **Deadlines.** Our own reqwest client (connect and per-read timeouts)
//!   plus a deadline for the response head; no total timeout, which would
//!   cut long replies.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_openai::error::OpenAIError;
use async_openai::middleware::HttpRequestFactory;
use futures::StreamExt;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why the transport refused a response, carried through
/// `OpenAIError::Boxed` to the adapter's error mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    Status {
        status: u16,
        retry_after: Option<Duration>,
        message: String,
    },
    /// No response head within the request timeout.
    HeadTimeout,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status { status, message, .. } => write!(f, "provider answered {status}: {message}"),
            Self::HeadTimeout => f.write_str("no response head before the deadline"),
        }
    }
}

impl std::error::Error for Failure {}

/// The body ended cleanly but before `data: [DONE]`.
#[derive(Debug)]
pub(crate) struct EndedBeforeDone;

impl fmt::Display for EndedBeforeDone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stream ended before data: [DONE]")
    }
}

impl std::error::Error for EndedBeforeDone {}

#[derive(Clone)]
pub(crate) struct Transport {
    pub http: reqwest::Client,
    pub head_timeout: Duration,
    /// False when no API key is configured: no `Authorization` header then
    /// (async-openai always sends one, empty or not).
    pub send_auth: bool,
    /// Added to the request (the caller's trace context).
    pub extra_headers: Vec<(String, String)>,
}

impl tower::Service<HttpRequestFactory> for Transport {
    type Response = reqwest::Response;
    type Error = OpenAIError;
    type Future = Pin<Box<dyn Future<Output = Result<reqwest::Response, OpenAIError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, factory: HttpRequestFactory) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let mut request = factory.build().await?;
            if !this.send_auth {
                request.headers_mut().remove(AUTHORIZATION);
            }
            for (name, value) in &this.extra_headers {
                if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
                    request.headers_mut().insert(name, value);
                }
            }
            let response = match tokio::time::timeout(this.head_timeout, this.http.execute(request)).await {
                Err(_) => return Err(boxed(Failure::HeadTimeout)),
                Ok(sent) => sent.map_err(OpenAIError::Reqwest)?,
            };
            if !response.status().is_success() {
                return Err(boxed(status_failure(response, this.head_timeout).await));
            }
            Ok(guard_done(response))
        })
    }
}

fn boxed(failure: Failure) -> OpenAIError {
    OpenAIError::Boxed(Box::new(failure))
}

/// `retry-after-ms` (OpenAI) or `retry-after` in seconds; the HTTP-date
/// form is ignored.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let number = |name: &str| -> Option<f64> {
        let value: f64 = headers.get(name)?.to_str().ok()?.trim().parse().ok()?;
        (value.is_finite() && value >= 0.0).then_some(value)
    };
    number("retry-after-ms")
        .map(|ms| Duration::from_secs_f64(ms / 1000.0))
        .or_else(|| number("retry-after").map(Duration::from_secs_f64))
}

async fn status_failure(response: reqwest::Response, deadline: Duration) -> Failure {
    let status = response.status();
    let retry_after = retry_after(response.headers());
    let body = match tokio::time::timeout(deadline, response.bytes()).await {
        Ok(Ok(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
        _ => String::new(),
    };
    Failure::Status {
        status: status.as_u16(),
        retry_after,
        message: error_message(&body).unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned()),
    }
}

/// OpenAI's `{"error":{"message":..,"type":..}}` as "type: message" (also
/// what vLLM and LiteLLM send; Ollama sends `{"error":"text"}`), else the
/// start of the body.
fn error_message(body: &str) -> Option<String> {
    let value: serde_json::Value = match serde_json::from_str(body) {
        Ok(value) => value,
        Err(_) => {
            let text = body.trim();
            return (!text.is_empty()).then(|| text.chars().take(300).collect());
        }
    };
    let error = &value["error"];
    if let Some(text) = error.as_str() {
        return Some(text.to_owned());
    }
    let parts: Vec<&str> = [error["type"].as_str(), error["message"].as_str()].into_iter().flatten().collect();
    if parts.is_empty() { Some(body.trim().chars().take(300).collect()) } else { Some(parts.join(": ")) }
}

/// Spots a `data: [DONE]` line in a byte stream, across chunk boundaries.
#[derive(Default)]
pub(crate) struct DoneScan {
    line: Vec<u8>,
    /// The current line is longer than any `[DONE]` line.
    long: bool,
    pub seen: bool,
}

impl DoneScan {
    const LONGEST: usize = b"data: [DONE]".len();

    pub fn feed(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            if byte == b'\n' || byte == b'\r' {
                if !self.long && matches!(self.line.as_slice(), b"data: [DONE]" | b"data:[DONE]") {
                    self.seen = true;
                }
                self.line.clear();
                self.long = false;
            } else if self.line.len() < Self::LONGEST {
                self.line.push(byte);
            } else {
                self.long = true;
            }
        }
    }
}

/// The same response, with a body that fails at a clean end without
/// `[DONE]` (async-openai then reports a stream error, not a normal end).
fn guard_done(response: reqwest::Response) -> reqwest::Response {
    let status = response.status();
    let version = response.version();
    let headers = response.headers().clone();
    let state = (Box::pin(response.bytes_stream()), DoneScan::default(), false);
    let body = futures::stream::unfold(state, |(mut bytes, mut scan, ended)| async move {
        if ended {
            return None;
        }
        match bytes.next().await {
            Some(Ok(chunk)) => {
                scan.feed(&chunk);
                Some((Ok(chunk), (bytes, scan, false)))
            }
            Some(Err(error)) => Some((Err(BoxError::from(error)), (bytes, scan, true))),
            None if scan.seen => None,
            None => Some((Err(BoxError::from(EndedBeforeDone)), (bytes, scan, true))),
        }
    });
    let mut guarded = http::Response::new(reqwest::Body::wrap_stream(body));
    *guarded.status_mut() = status;
    *guarded.version_mut() = version;
    *guarded.headers_mut() = headers;
    reqwest::Response::from(guarded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(chunks: &[&str]) -> bool {
        let mut scan = DoneScan::default();
        for chunk in chunks {
            scan.feed(chunk.as_bytes());
        }
        scan.seen
    }

    #[test]
    fn done_is_found_across_chunks_and_line_endings() {
        assert!(scan(&["data: {\"a\":1}\n\ndata: [DONE]\n\n"]));
        assert!(scan(&["data: [DO", "NE]\r\n\r\n"]));
        assert!(scan(&["data:[DONE]\r"]));
        assert!(!scan(&["data: {\"a\":1}\n\n"]));
        assert!(!scan(&["data: [DONE] but more\n"]));
        assert!(!scan(&["xxdata: [DONE]\n"]));
        assert!(!scan(&["data: {\"text\":\"data: [DONE]\"}\n"]));
        // Unterminated: an SSE event only counts once its line ends.
        assert!(!scan(&["data: [DONE]"]));
    }

    #[test]
    fn retry_after_prefers_milliseconds() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(250)));
        headers.remove("retry-after-ms");
        headers.insert("retry-after", HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn error_message_reads_the_usual_shapes() {
        assert_eq!(
            error_message(
                r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#
            ),
            Some("requests: Rate limit reached".into())
        );
        assert_eq!(error_message(r#"{"error":"model \"x\" not found"}"#), Some("model \"x\" not found".into()));
        assert_eq!(error_message("Bad Gateway"), Some("Bad Gateway".into()));
        assert_eq!(error_message(""), None);
    }
}
