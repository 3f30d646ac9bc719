//! The offline demo provider: no network, no key. It streams a reply that is
//! a pure function of the request, word by word at a realistic pace, so the
//! whole product (streaming, Markdown, usage, fallback) can be tried and
//! tested without an AI account. The reply says plainly that it is a demo.

use std::collections::VecDeque;
use std::time::Duration;

use async_trait::async_trait;
use specgen_domain::ProviderName;
use specgen_ports::{AiProvider, CompletionRequest, ProviderError, ReplyStream, StreamEvent, TokenUsage, TurnRole};

/// The only model the demo knows.
pub const DEMO_MODEL: &str = "demo";

/// How much of the user's message the reply quotes back, in words.
const ECHO_WORDS: usize = 24;

#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Pause before each word chunk, like a model generating tokens.
    pub chunk_delay: Duration,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self { chunk_delay: Duration::from_millis(25) }
    }
}

#[derive(Debug, Clone)]
pub struct DemoProvider {
    config: DemoConfig,
}

impl DemoProvider {
    pub fn new(config: DemoConfig) -> Self {
        Self { config }
    }
}

/// The reply the demo gives to `request`, in full.
pub fn demo_reply(request: &CompletionRequest) -> String {
    let last_user =
        request.turns.iter().rev().find(|t| t.role == TurnRole::User).map(|t| t.content.as_str()).unwrap_or_default();
    let words: Vec<&str> = last_user.split_whitespace().collect();
    let echo = match words.len() {
        0 => "(an empty message)".to_owned(),
        n if n <= ECHO_WORDS => format!("\u{201c}{}\u{201d}", words.join(" ")),
        _ => format!("\u{201c}{}\u{2026}\u{201d}", words[..ECHO_WORDS].join(" ")),
    };
    let earlier = request.turns.len().saturating_sub(1);
    let system = if request.system.as_deref().is_some_and(|s| !s.trim().is_empty()) {
        "a system prompt is set"
    } else {
        "no system prompt is set"
    };
    format!(
        "**Demo reply** \u{2014} this answer comes from Spec Gen's built-in demo provider, \
         not from a real AI model.\n\
         \n\
         You wrote {echo} ({count} words).\n\
         \n\
         What this demo shows:\n\
         - replies streamed word by word, like a real model\n\
         - Markdown rendering, including `inline code`\n\
         - token usage and a clean finish\n\
         \n\
         This conversation has {earlier} earlier {turns}, and {system}. \
         To get real answers, configure `ANTHROPIC_API_KEY` or `OPENAI_API_KEY`.",
        count = words.len(),
        turns = if earlier == 1 { "turn" } else { "turns" },
    )
}

/// Splits `text` into word chunks that keep their trailing whitespace, so
/// the chunks concatenate back to `text` exactly and none is empty.
pub fn word_chunks(text: &str) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut current = String::new();
    let mut in_space = false;
    for c in text.chars() {
        if !c.is_whitespace() && in_space {
            chunks.push(std::mem::take(&mut current));
        }
        in_space = c.is_whitespace();
        current.push(c);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// The demo's token estimate: one token per whitespace-separated word.
fn estimate_tokens(text: &str) -> u32 {
    u32::try_from(text.split_whitespace().count()).unwrap_or(u32::MAX)
}

fn input_tokens(request: &CompletionRequest) -> u32 {
    let system = request.system.as_deref().map_or(0, estimate_tokens);
    request.turns.iter().map(|t| estimate_tokens(&t.content)).fold(system, u32::saturating_add)
}

struct Playback {
    chunks: VecDeque<String>,
    delay: Duration,
    /// Events still to send once the text is out (usage, then Done).
    tail: VecDeque<StreamEvent>,
}

#[async_trait]
impl AiProvider for DemoProvider {
    fn name(&self) -> ProviderName {
        ProviderName::Demo
    }

    fn default_model(&self) -> &str {
        DEMO_MODEL
    }

    fn models(&self) -> Vec<String> {
        vec![DEMO_MODEL.to_owned()]
    }

    async fn stream(&self, request: CompletionRequest) -> Result<ReplyStream, ProviderError> {
        let mut chunks = word_chunks(&demo_reply(&request));
        // Honour the output cap like a real model: one token per word chunk.
        let cap = usize::try_from(request.max_output_tokens).unwrap_or(usize::MAX);
        let finish_reason = if chunks.len() > cap {
            chunks.truncate(cap);
            "length"
        } else {
            "stop"
        };
        let usage = TokenUsage {
            input_tokens: input_tokens(&request),
            output_tokens: u32::try_from(chunks.len()).unwrap_or(u32::MAX),
        };
        let playback = Playback {
            chunks: chunks.into(),
            delay: self.config.chunk_delay,
            tail: VecDeque::from([
                StreamEvent::Usage(usage),
                StreamEvent::Done { finish_reason: Some(finish_reason.to_owned()) },
            ]),
        };
        let stream = futures::stream::unfold(playback, |mut playback| async move {
            if let Some(chunk) = playback.chunks.pop_front() {
                if !playback.delay.is_zero() {
                    tokio::time::sleep(playback.delay).await;
                }
                return Some((Ok(StreamEvent::Delta(chunk)), playback));
            }
            let event = playback.tail.pop_front()?;
            Some((Ok(event), playback))
        });
        Ok(Box::pin(stream))
    }
}
