//! `chat.completion.chunk`s turned into the port's `StreamEvent`s, and
//! async-openai's errors into `ProviderError`s.

use std::collections::VecDeque;

use async_openai::error::{OpenAIError, StreamError};
use async_openai::types::stream::StreamResponse;
use futures::StreamExt;
use serde::Deserialize;
use specgen_ports::{ProviderError, ReplyStream, StreamEvent, TokenUsage};

use crate::transport::Failure;

/// A streamed chunk, leniently: only what the adapter reads, every field
/// optional, `finish_reason` free text (servers differ).
#[derive(Debug, Deserialize)]
pub(crate) struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<Usage>,
    /// OpenAI, vLLM and LiteLLM report failures mid-stream this way.
    error: Option<ChunkError>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    #[serde(default)]
    index: u32,
    delta: Option<Delta>,
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Delta {
    content: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Usage {
    prompt_tokens: Option<u32>,
    completion_tokens: Option<u32>,
}

/// `{"message","type","code"}` as OpenAI sends it, or a bare string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ChunkError {
    Text(String),
    Detail {
        message: Option<String>,
        #[serde(rename = "type")]
        kind: Option<String>,
        code: Option<serde_json::Value>,
    },
}

impl ChunkError {
    fn into_provider_error(self) -> ProviderError {
        let (kind, message) = match self {
            Self::Text(message) => (None, message),
            Self::Detail { message, kind, code } => {
                let code = code.map(|c| match c {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                });
                (kind.or(code), message.unwrap_or_default())
            }
        };
        ProviderError::Upstream { kind: kind.unwrap_or_else(|| "error".to_owned()), message }
    }
}

#[derive(Default)]
struct Reply {
    finish_reason: Option<String>,
    usage: Option<TokenUsage>,
}

impl Reply {
    /// The events one chunk yields, in order.
    fn on_chunk(&mut self, chunk: Chunk, out: &mut VecDeque<StreamEvent>) -> Result<(), ProviderError> {
        if let Some(error) = chunk.error {
            return Err(error.into_provider_error());
        }
        // One reply is asked for (`n` unset): choice 0 is the reply.
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            if let Some(text) = choice.delta.and_then(|d| d.content)
                && !text.is_empty()
            {
                out.push_back(StreamEvent::Delta(text));
            }
            if choice.finish_reason.is_some() {
                self.finish_reason = choice.finish_reason;
            }
        }
        if let Some(reported) = chunk.usage {
            let mut usage = self.usage.unwrap_or_default();
            usage.input_tokens = reported.prompt_tokens.unwrap_or(usage.input_tokens);
            usage.output_tokens = reported.completion_tokens.unwrap_or(usage.output_tokens);
            if self.usage != Some(usage) {
                self.usage = Some(usage);
                out.push_back(StreamEvent::Usage(usage));
            }
        }
        Ok(())
    }
}

struct State {
    chunks: StreamResponse<Chunk>,
    reply: Reply,
    ready: VecDeque<StreamEvent>,
    /// Set once the stream has ended (after `[DONE]`) or failed.
    over: bool,
}

/// The port's stream over async-openai's. async-openai's stream only ends
/// after `[DONE]` (the transport turns any other end into an error), so its
/// end is a real `Done`. Dropping this stream drops async-openai's receiver;
/// its reader task then drops the response, closing the connection.
pub(crate) fn reply_stream(chunks: StreamResponse<Chunk>) -> ReplyStream {
    let state = State { chunks, reply: Reply::default(), ready: VecDeque::new(), over: false };
    Box::pin(futures::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(event) = state.ready.pop_front() {
                return Some((Ok(event), state));
            }
            if state.over {
                return None;
            }
            match state.chunks.next().await {
                Some(Ok(chunk)) => {
                    if let Err(error) = state.reply.on_chunk(chunk, &mut state.ready) {
                        state.over = true;
                        state.ready.clear();
                        return Some((Err(error), state));
                    }
                }
                Some(Err(error)) => {
                    state.over = true;
                    return Some((Err(map_error(error)), state));
                }
                None => {
                    state.over = true;
                    state.ready.push_back(StreamEvent::Done { finish_reason: state.reply.finish_reason.take() });
                }
            }
        }
    }))
}

fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// async-openai's errors in the port's terms (see the crate docs).
pub(crate) fn map_error(error: OpenAIError) -> ProviderError {
    match error {
        OpenAIError::Boxed(boxed) => match boxed.downcast::<Failure>() {
            Ok(failure) => match *failure {
                Failure::Status { status, retry_after, message } => {
                    ProviderError::Status { status, retry_after, message }
                }
                Failure::HeadTimeout => ProviderError::Timeout,
            },
            Err(other) => ProviderError::Protocol(describe(other.as_ref())),
        },
        OpenAIError::Reqwest(e) if e.is_timeout() => ProviderError::Timeout,
        OpenAIError::Reqwest(e) if e.is_builder() => ProviderError::Protocol(describe(&e)),
        // Refused, DNS, TLS, or reset before any response.
        OpenAIError::Reqwest(e) => ProviderError::Connect(describe(&e)),
        // Only reachable without our transport; kept faithful anyway
        // (async-openai has dropped the headers, so no retry-after).
        OpenAIError::ApiError(e) => ProviderError::Status {
            status: e.status_code.as_u16(),
            retry_after: None,
            message: e.api_error.to_string(),
        },
        // Every field of `Chunk` is optional: only garbage fails to parse.
        OpenAIError::JSONDeserialize(e, content) => ProviderError::Protocol(format!(
            "unparseable chunk ({e}): {}",
            content.chars().take(200).collect::<String>()
        )),
        OpenAIError::StreamError(stream_error) => match *stream_error {
            // eventsource-stream's Display: "Transport error: .." for the
            // body failing (cut, stall, our end-before-[DONE]); "UTF8 error"
            // and "Parse error" for bytes that are not SSE.
            StreamError::EventStream(text) if text.starts_with("Transport error") => ProviderError::Interrupted(text),
            StreamError::EventStream(text) => ProviderError::Protocol(text),
            StreamError::UnknownEvent(event) => ProviderError::Protocol(format!("unexpected event {:?}", event.event)),
        },
        other => ProviderError::Protocol(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(reply: &mut Reply, json: &str) -> Result<Vec<StreamEvent>, ProviderError> {
        let mut out = VecDeque::new();
        reply.on_chunk(serde_json::from_str(json).unwrap(), &mut out)?;
        Ok(out.into())
    }

    #[test]
    fn chunks_from_compatible_servers() {
        let mut reply = Reply::default();
        // Role-only opener: no empty delta.
        assert_eq!(
            feed(&mut reply, r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#).unwrap(),
            vec![]
        );
        assert_eq!(
            feed(
                &mut reply,
                r#"{"id":"x","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}],"usage":null}"#
            )
            .unwrap(),
            vec![StreamEvent::Delta("Hi".into())]
        );
        // A finish reason async-openai's enum does not know, with usage in
        // the same chunk (some vLLM versions).
        assert_eq!(
            feed(&mut reply, r#"{"choices":[{"index":0,"delta":{},"finish_reason":"abort"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}"#).unwrap(),
            vec![StreamEvent::Usage(TokenUsage { input_tokens: 3, output_tokens: 1 })]
        );
        assert_eq!(reply.finish_reason.as_deref(), Some("abort"));
        // Same usage again: nothing new to say.
        assert_eq!(
            feed(&mut reply, r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#).unwrap(),
            vec![]
        );
        // Other choices are not the reply.
        assert_eq!(feed(&mut reply, r#"{"choices":[{"index":1,"delta":{"content":"other"}}]}"#).unwrap(), vec![]);
    }

    #[test]
    fn error_chunk_is_upstream() {
        let mut reply = Reply::default();
        assert_eq!(
            feed(&mut reply, r#"{"error":{"message":"boom","type":"server_error","code":null}}"#),
            Err(ProviderError::Upstream { kind: "server_error".into(), message: "boom".into() })
        );
        assert_eq!(
            feed(&mut reply, r#"{"error":{"message":"slow","code":"rate_limit_exceeded"}}"#),
            Err(ProviderError::Upstream { kind: "rate_limit_exceeded".into(), message: "slow".into() })
        );
        assert_eq!(
            feed(&mut reply, r#"{"error":"model crashed"}"#),
            Err(ProviderError::Upstream { kind: "error".into(), message: "model crashed".into() })
        );
    }

    #[test]
    fn stream_errors_split_into_interrupted_and_protocol() {
        let transport = OpenAIError::StreamError(Box::new(StreamError::EventStream(
            "Transport error: error decoding response body".into(),
        )));
        assert!(matches!(map_error(transport), ProviderError::Interrupted(_)));
        let utf8 =
            OpenAIError::StreamError(Box::new(StreamError::EventStream("UTF8 error: invalid utf-8 sequence".into())));
        assert!(matches!(map_error(utf8), ProviderError::Protocol(_)));
        let garbage = serde_json::from_str::<Chunk>("{not json").unwrap_err();
        assert!(matches!(
            map_error(OpenAIError::JSONDeserialize(garbage, "{not json".into())),
            ProviderError::Protocol(_)
        ));
    }

    #[test]
    fn transport_failures_keep_status_and_retry_after() {
        let failure = Failure::Status {
            status: 429,
            retry_after: Some(std::time::Duration::from_secs(3)),
            message: "slow down".into(),
        };
        assert_eq!(
            map_error(OpenAIError::Boxed(Box::new(failure))),
            ProviderError::Status {
                status: 429,
                retry_after: Some(std::time::Duration::from_secs(3)),
                message: "slow down".into()
            }
        );
        assert_eq!(map_error(OpenAIError::Boxed(Box::new(Failure::HeadTimeout))), ProviderError::Timeout);
    }
}
