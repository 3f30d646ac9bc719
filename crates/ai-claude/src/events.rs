//! Anthropic's streaming events turned into the port's `StreamEvent`s.
//!
//! Order on the wire: `message_start` (input usage), per content block
//! `content_block_start` / `content_block_delta`* / `content_block_stop`,
//! `message_delta` (stop reason, output usage), `message_stop`; `ping` and
//! `error` may come at any point. Event types this adapter does not know are
//! skipped, as Anthropic asks of clients.

use std::borrow::Cow;
use std::time::Duration;

use futures::{Stream, StreamExt};
use serde::Deserialize;
use specgen_ports::{ProviderError, ReplyStream, StreamEvent, TokenUsage};
use sse_parse::{Event, EventStream};

use crate::describe;

/// How long a finished stream may take to drain its last bytes so the
/// connection can go back to the pool.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// One event's JSON, read in a single pass. Every event type shares this
/// shape (`type` plus the fields some types carry); a serde enum tagged by
/// `type` would buffer each event into an intermediate tree first, which
/// cost more than the rest of the parsing together (callgrind).
#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    /// `message_start`.
    message: Option<StartMessage>,
    /// `content_block_delta` (a [`Delta`]) and `message_delta` (the stop reason).
    delta: Option<Delta<'a>>,
    /// `message_delta`.
    usage: Option<Usage>,
    /// `error`.
    error: Option<ErrorBody>,
}

#[derive(Deserialize)]
struct StartMessage {
    usage: Option<Usage>,
}

/// A content block's delta, or the message's: `text_delta` carries reply
/// text; thinking, tool input and citations do not belong to it.
#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    text: Option<String>,
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
        // sse-parse names an event without an `event:` line "message".
        let wire: Wire<'_> = serde_json::from_str(&event.data)
            .map_err(|e| ProviderError::Protocol(format!("unparseable `{}` event: {e}", event.event)))?;
        let missing = |field: &str| ProviderError::Protocol(format!("`{}` event without `{field}`", wire.kind));
        Ok(match wire.kind.as_ref() {
            "message_start" => {
                let message = wire.message.as_ref().ok_or_else(|| missing("message"))?;
                self.usage_step(message.usage.as_ref())
            }
            "content_block_delta" => {
                let delta = wire.delta.ok_or_else(|| missing("delta"))?;
                match (delta.kind.as_deref(), delta.text) {
                    (Some("text_delta"), Some(text)) if !text.is_empty() => Step::Emit(StreamEvent::Delta(text)),
                    (Some("text_delta"), None) => return Err(missing("delta.text")),
                    _ => Step::Skip,
                }
            }
            "message_delta" => {
                let delta = wire.delta.ok_or_else(|| missing("delta"))?;
                if delta.stop_reason.is_some() {
                    self.stop_reason = delta.stop_reason;
                }
                self.usage_step(wire.usage.as_ref())
            }
            "message_stop" => Step::Finish(StreamEvent::Done { finish_reason: self.stop_reason.take() }),
            "error" => {
                let error = wire.error.ok_or_else(|| missing("error"))?;
                return Err(ProviderError::Upstream { kind: error.kind, message: error.message });
            }
            // content_block_start/stop, ping, and types added after this adapter.
            _ => Step::Skip,
        })
    }

    /// Folds reported counts into the running usage; emits it if it changed.
    /// Input counts cache reads and writes too: all of it was processed.
    fn usage_step(&mut self, reported: Option<&Usage>) -> Step {
        let Some(reported) = reported else { return Step::Skip };
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

fn stream_error(error: sse_parse::Error<reqwest::Error>) -> ProviderError {
    let sse_parse::Error::Transport(e) = error;
    ProviderError::Interrupted(describe(&e))
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
    let events = Box::pin(EventStream::new(response.bytes_stream()));
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

    /// A stream whose body arrives in pieces of `size` bytes.
    async fn stream_items(body: &str, size: usize) -> Vec<Result<StreamEvent, ProviderError>> {
        let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
            body.as_bytes().chunks(size).map(|c| Ok(c.to_vec())).collect();
        let http = http::Response::new(reqwest::Body::wrap_stream(futures::stream::iter(pieces)));
        reply_stream(reqwest::Response::from(http)).collect().await
    }

    /// Events that arrive together, or split anywhere (mid-line, mid-UTF-8
    /// character, between `\r` and `\n`), read the same.
    #[tokio::test]
    async fn events_read_the_same_however_the_bytes_arrive() {
        let mut body = String::from(
            "event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3}}}\r\n\r\n",
        );
        let words: Vec<String> = (0..60).map(|i| format!("mot{i}é ")).collect();
        for word in &words {
            body.push_str(&format!(
                "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"delta\":{{\"type\":\"text_delta\",\"text\":\"{word}\"}}}}\n\n"
            ));
        }
        body.push_str(": a comment\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":60}}\n\n");
        body.push_str("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");

        let mut expected = vec![StreamEvent::Usage(TokenUsage { input_tokens: 3, output_tokens: 0 })];
        expected.extend(words.iter().map(|w| StreamEvent::Delta(w.clone())));
        expected.push(StreamEvent::Usage(TokenUsage { input_tokens: 3, output_tokens: 60 }));
        expected.push(StreamEvent::Done { finish_reason: Some("end_turn".into()) });
        for size in [body.len(), 4096, 97, 7, 1] {
            let items: Vec<StreamEvent> = stream_items(&body, size).await.into_iter().map(Result::unwrap).collect();
            assert_eq!(items, expected, "pieces of {size} bytes");
        }
    }

    #[tokio::test]
    async fn a_body_that_ends_mid_event_is_interrupted() {
        let body = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\nevent: content_block_delta\ndata: {\"type\":";
        let items = stream_items(body, 5).await;
        assert_eq!(items[0], Ok(StreamEvent::Delta("Hi".into())));
        assert!(matches!(items[1], Err(ProviderError::Interrupted(_))), "{items:?}");
        assert_eq!(items.len(), 2);
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
        for data in [
            "{not json",
            r#"{"no_type":1}"#,
            r#"{"type":"content_block_delta"}"#,
            r#"{"type":"content_block_delta","delta":{"type":"text_delta"}}"#,
            r#"{"type":"content_block_delta","delta":{"type":"text_delta","text":7}}"#,
            r#"{"type":"message_start"}"#,
            r#"{"type":"message_delta","usage":{"output_tokens":3}}"#,
            r#"{"type":"error"}"#,
        ] {
            let err = p.on_event(&event("content_block_delta", data)).unwrap_err();
            assert!(matches!(err, ProviderError::Protocol(_)), "{data}: {err:?}");
        }
    }
}
