//! Anthropic's streaming events turned into the port's `StreamEvent`s.
//!
//! Order on the wire: `message_start` (input usage), per content block
//! `content_block_start` / `content_block_delta`* / `content_block_stop`,
//! `message_delta` (stop reason, output usage), `message_stop`; `ping` and
//! `error` may come at any point. Event types this adapter does not know are
//! skipped, as Anthropic asks of clients.

use std::time::Duration;

use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use specgen_ports::{ProviderError, ReplyStream, StreamEvent, TokenUsage};

use crate::describe;

/// How long a finished stream may take to drain its last bytes so the
/// connection can go back to the pool.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Wire {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {},
    ContentBlockDelta {
        delta: Delta,
    },
    ContentBlockStop {},
    MessageDelta {
        delta: MessageDeltaBody,
        usage: Option<Usage>,
    },
    MessageStop {},
    Ping {},
    Error {
        error: ErrorBody,
    },
    #[serde(other)]
    Unknown,
}

#[derive(Deserialize)]
struct StartMessage {
    usage: Option<Usage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Delta {
    TextDelta {
        text: String,
    },
    /// Thinking, tool input, citations: not part of the reply's text.
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct MessageDeltaBody {
    stop_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct Usage {
    input_tokens: Option<u32>,
    output_tokens: Option<u32>,
    cache_creation_input_tokens: Option<u32>,
    cache_read_input_tokens: Option<u32>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "type")]
    kind: String,
    message: String,
}

/// What one SSE event means for the reply stream.
#[derive(Debug, PartialEq)]
enum Step {
    Skip,
    Emit(StreamEvent),
    /// The last event: the reply is complete.
    Finish(StreamEvent),
}

#[derive(Default)]
struct Parser {
    usage: Option<TokenUsage>,
    stop_reason: Option<String>,
}

impl Parser {
    fn on_event(&mut self, event: &Event) -> Result<Step, ProviderError> {
        let wire: Wire = serde_json::from_str(&event.data).map_err(|e| {
            let name = if event.event.is_empty() { "message" } else { &event.event };
            ProviderError::Protocol(format!("unparseable `{name}` event: {e}"))
        })?;
        Ok(match wire {
            Wire::MessageStart { message } => self.usage_step(message.usage.unwrap_or_default()),
            Wire::ContentBlockDelta { delta: Delta::TextDelta { text } } if !text.is_empty() => {
                Step::Emit(StreamEvent::Delta(text))
            }
            Wire::MessageDelta { delta, usage } => {
                if delta.stop_reason.is_some() {
                    self.stop_reason = delta.stop_reason;
                }
                self.usage_step(usage.unwrap_or_default())
            }
            Wire::MessageStop {} => Step::Finish(StreamEvent::Done { finish_reason: self.stop_reason.take() }),
            Wire::Error { error } => {
                return Err(ProviderError::Upstream { kind: error.kind, message: error.message });
            }
            Wire::ContentBlockDelta { .. }
            | Wire::ContentBlockStart {}
            | Wire::ContentBlockStop {}
            | Wire::Ping {}
            | Wire::Unknown => Step::Skip,
        })
    }

    /// Folds reported counts into the running usage; emits it if it changed.
    /// Input counts cache reads and writes too: all of it was processed.
    fn usage_step(&mut self, reported: Usage) -> Step {
        let before = self.usage;
        let mut usage = before.unwrap_or_default();
        let cached = [reported.cache_creation_input_tokens, reported.cache_read_input_tokens];
        if let Some(input) = reported.input_tokens {
            usage.input_tokens = cached.into_iter().flatten().fold(input, u32::saturating_add);
        }
        if let Some(output) = reported.output_tokens {
            usage.output_tokens = output;
        }
        let known = reported.input_tokens.is_some() || reported.output_tokens.is_some();
        if known && before != Some(usage) {
            self.usage = Some(usage);
            Step::Emit(StreamEvent::Usage(usage))
        } else {
            Step::Skip
        }
    }
}

fn stream_error(error: EventStreamError<reqwest::Error>) -> ProviderError {
    match error {
        EventStreamError::Transport(e) => ProviderError::Interrupted(describe(&e)),
        EventStreamError::Utf8(e) => ProviderError::Protocol(format!("stream is not UTF-8: {e}")),
        EventStreamError::Parser(e) => ProviderError::Protocol(format!("invalid SSE: {e}")),
    }
}

/// Lets the connection finish its body in the background so the pool can
/// reuse it (saves a TLS handshake on the next message).
fn drain<S: Stream + Send + Unpin + 'static>(mut events: S) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(DRAIN_LIMIT, async { while events.next().await.is_some() {} }).await;
    });
}

/// The port's stream over an accepted (2xx) response. It ends after `Done`
/// or after the first error; dropping it drops the response, which closes
/// the upstream connection mid-body.
pub(crate) fn reply_stream(response: reqwest::Response) -> ReplyStream {
    let events = Box::pin(response.bytes_stream().eventsource());
    let state = Some((events, Parser::default()));
    Box::pin(futures::stream::unfold(state, |state| async move {
        let (mut events, mut parser) = state?;
        loop {
            let event = match events.next().await {
                Some(Ok(event)) => event,
                Some(Err(error)) => return Some((Err(stream_error(error)), None)),
                None => {
                    let cut = ProviderError::Interrupted("stream ended before message_stop".into());
                    return Some((Err(cut), None));
                }
            };
            match parser.on_event(&event) {
                Ok(Step::Skip) => {}
                Ok(Step::Emit(item)) => return Some((Ok(item), Some((events, parser)))),
                Ok(Step::Finish(item)) => {
                    drain(events);
                    return Some((Ok(item), None));
                }
                Err(error) => return Some((Err(error), None)),
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, data: &str) -> Event {
        Event { event: name.into(), data: data.into(), ..Event::default() }
    }

    fn usage(input_tokens: u32, output_tokens: u32) -> Step {
        Step::Emit(StreamEvent::Usage(TokenUsage { input_tokens, output_tokens }))
    }

    #[test]
    fn a_typical_stream() {
        let mut p = Parser::default();
        let steps: Vec<Step> = [
            ("message_start", r#"{"type":"message_start","message":{"id":"m","usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":1}}}"#),
            ("content_block_start", r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#),
            ("ping", r#"{"type":"ping"}"#),
            ("content_block_delta", r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#),
            ("content_block_delta", r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":""}}"#),
            ("content_block_delta", r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{"}}"#),
            ("content_block_stop", r#"{"type":"content_block_stop","index":0}"#),
            ("message_delta", r#"{"type":"message_delta","delta":{"stop_reason":"max_tokens","stop_sequence":null},"usage":{"output_tokens":1}}"#),
            ("message_delta", r#"{"type":"message_delta","delta":{"stop_reason":null},"usage":{"output_tokens":4}}"#),
            ("some_future_event", r#"{"type":"some_future_event","x":1}"#),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ]
        .into_iter()
        .map(|(n, d)| p.on_event(&event(n, d)).unwrap())
        .collect();
        assert_eq!(
            steps,
            vec![
                usage(15, 1),
                Step::Skip,
                Step::Skip,
                Step::Emit(StreamEvent::Delta("Hi".into())),
                Step::Skip, // empty text is not a delta
                Step::Skip, // tool input is not reply text
                Step::Skip,
                Step::Skip, // usage unchanged
                usage(15, 4),
                Step::Skip,
                Step::Finish(StreamEvent::Done { finish_reason: Some("max_tokens".into()) }),
            ]
        );
    }

    #[test]
    fn error_event_is_upstream() {
        let mut p = Parser::default();
        let err = p
            .on_event(&event("error", r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#))
            .unwrap_err();
        assert_eq!(err, ProviderError::Upstream { kind: "overloaded_error".into(), message: "Overloaded".into() });
    }

    #[test]
    fn bad_json_is_protocol() {
        let mut p = Parser::default();
        for data in ["{not json", r#"{"no_type":1}"#, r#"{"type":"content_block_delta"}"#] {
            let err = p.on_event(&event("content_block_delta", data)).unwrap_err();
            assert!(matches!(err, ProviderError::Protocol(_)), "{data}: {err:?}");
        }
    }
}
