//! The SSE events each wire format sends, as the real APIs spell them.

use serde_json::{Value, json};
use specgen_ports::TokenUsage;

use super::FakeWire;

/// Renders the events of one scripted reply.
pub(crate) struct Render<'a> {
    pub wire: FakeWire,
    /// Echoed from the request, as the real APIs do.
    pub model: &'a str,
    pub usage: TokenUsage,
}

fn sse(event: Option<&str>, data: &Value) -> String {
    match event {
        Some(name) => format!("event: {name}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    }
}

impl Render<'_> {
    fn openai_chunk(&self, choices: Value, usage: Value) -> String {
        sse(
            None,
            &json!({
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 1_700_000_000,
                "model": self.model,
                "system_fingerprint": "fp_fake",
                "choices": choices,
                "usage": usage,
            }),
        )
    }

    /// What precedes the first text delta.
    pub fn preamble(&self) -> Vec<String> {
        match self.wire {
            FakeWire::Anthropic => vec![
                sse(
                    Some("message_start"),
                    &json!({
                        "type": "message_start",
                        "message": {
                            "id": "msg_fake", "type": "message", "role": "assistant",
                            "model": self.model, "content": [],
                            "stop_reason": null, "stop_sequence": null,
                            "usage": { "input_tokens": self.usage.input_tokens, "output_tokens": 1 },
                        },
                    }),
                ),
                sse(
                    Some("content_block_start"),
                    &json!({
                        "type": "content_block_start", "index": 0,
                        "content_block": { "type": "text", "text": "" },
                    }),
                ),
                sse(Some("ping"), &json!({ "type": "ping" })),
            ],
            // OpenAI opens with the role and an empty content, which an
            // adapter must not turn into an empty delta.
            FakeWire::OpenAi => vec![self.openai_chunk(
                json!([{ "index": 0, "delta": { "role": "assistant", "content": "" },
                         "logprobs": null, "finish_reason": null }]),
                Value::Null,
            )],
        }
    }

    pub fn delta(&self, text: &str) -> String {
        match self.wire {
            FakeWire::Anthropic => sse(
                Some("content_block_delta"),
                &json!({
                    "type": "content_block_delta", "index": 0,
                    "delta": { "type": "text_delta", "text": text },
                }),
            ),
            FakeWire::OpenAi => self.openai_chunk(
                json!([{ "index": 0, "delta": { "content": text },
                         "logprobs": null, "finish_reason": null }]),
                Value::Null,
            ),
        }
    }

    /// The normal end: stop reason, final usage, then the stop marker.
    pub fn finish(&self) -> Vec<String> {
        let reason = self.wire.finish_reason();
        match self.wire {
            FakeWire::Anthropic => vec![
                sse(Some("content_block_stop"), &json!({ "type": "content_block_stop", "index": 0 })),
                sse(
                    Some("message_delta"),
                    &json!({
                        "type": "message_delta",
                        "delta": { "stop_reason": reason, "stop_sequence": null },
                        "usage": { "output_tokens": self.usage.output_tokens },
                    }),
                ),
                sse(Some("message_stop"), &json!({ "type": "message_stop" })),
            ],
            FakeWire::OpenAi => vec![
                self.openai_chunk(
                    json!([{ "index": 0, "delta": {}, "logprobs": null, "finish_reason": reason }]),
                    Value::Null,
                ),
                // `stream_options.include_usage`: a last chunk with no choices.
                self.openai_chunk(
                    json!([]),
                    json!({
                        "prompt_tokens": self.usage.input_tokens,
                        "completion_tokens": self.usage.output_tokens,
                        "total_tokens": self.usage.input_tokens + self.usage.output_tokens,
                    }),
                ),
                "data: [DONE]\n\n".to_owned(),
            ],
        }
    }

    pub fn malformed(&self) -> String {
        match self.wire {
            FakeWire::Anthropic => "event: content_block_delta\ndata: {not json\n\n".to_owned(),
            FakeWire::OpenAi => "data: {not json\n\n".to_owned(),
        }
    }

    /// An error reported inside an already started stream.
    pub fn error_event(&self, kind: &str, message: &str) -> String {
        match self.wire {
            FakeWire::Anthropic => {
                sse(Some("error"), &json!({ "type": "error", "error": { "type": kind, "message": message } }))
            }
            FakeWire::OpenAi => {
                sse(None, &json!({ "error": { "message": message, "type": kind, "param": null, "code": null } }))
            }
        }
    }
}
