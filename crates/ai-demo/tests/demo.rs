// Test helpers may unwrap: a panic there is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use futures::StreamExt;
use specgen_ai_demo::{DemoConfig, DemoProvider, demo_reply, word_chunks};
use specgen_domain::ProviderName;
use specgen_ports::{AiProvider, ChatTurn, CompletionRequest, StreamEvent, TokenUsage, TurnRole};

fn request(last_user: &str) -> CompletionRequest {
    CompletionRequest {
        model: "demo".into(),
        system: Some("Be brief.".into()),
        turns: vec![
            ChatTurn { role: TurnRole::User, content: "First question here".into() },
            ChatTurn { role: TurnRole::Assistant, content: "First answer".into() },
            ChatTurn { role: TurnRole::User, content: last_user.into() },
        ],
        max_output_tokens: 1024,
        trace_headers: Vec::new(),
    }
}

fn provider(delay_ms: u64) -> DemoProvider {
    DemoProvider::new(DemoConfig { chunk_delay: Duration::from_millis(delay_ms) })
}

async fn events(provider: &DemoProvider, request: CompletionRequest) -> Vec<StreamEvent> {
    provider.stream(request).await.unwrap().map(|item| item.unwrap()).collect().await
}

fn text_of(events: &[StreamEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Delta(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn identity() {
    let demo = provider(0);
    assert_eq!(demo.name(), ProviderName::Demo);
    assert_eq!(demo.default_model(), "demo");
    assert_eq!(demo.models(), vec!["demo".to_owned()]);
}

#[test]
fn reply_is_deterministic_and_depends_on_the_request() {
    let a = request("How do I bake bread?");
    assert_eq!(demo_reply(&a), demo_reply(&a.clone()));
    assert_ne!(demo_reply(&a), demo_reply(&request("What is Rust?")));
}

#[test]
fn reply_is_labelled_as_a_demo() {
    let text = demo_reply(&request("Is this real?"));
    assert!(text.starts_with("**Demo reply**"), "{text}");
    assert!(text.contains("built-in demo provider"), "{text}");
    assert!(text.contains("not from a real AI model"), "{text}");
}

#[test]
fn reply_echoes_the_last_user_message_and_has_markdown() {
    let text = demo_reply(&request("How   do I\nbake bread?"));
    assert!(text.contains("\u{201c}How do I bake bread?\u{201d} (5 words)"), "{text}");
    assert!(!text.contains("First question"), "only the last user turn");
    assert!(text.contains("\n- "), "a Markdown list: {text}");
    assert!(text.contains("`inline code`"), "a code span: {text}");
    assert!(text.contains("2 earlier turns"), "{text}");
    assert!(text.contains("a system prompt is set"), "{text}");
}

#[test]
fn long_messages_are_summarised() {
    let long: Vec<String> = (1..=40).map(|i| format!("w{i}")).collect();
    let text = demo_reply(&request(&long.join(" ")));
    assert!(text.contains("w24\u{2026}\u{201d} (40 words)"), "{text}");
    assert!(!text.contains("w25"), "{text}");
}

#[test]
fn word_chunks_keep_all_text_and_split_on_words() {
    let text = "Hello  world,\n\n- item `x`\n";
    let chunks = word_chunks(text);
    assert_eq!(chunks, vec!["Hello  ", "world,\n\n", "- ", "item ", "`x`\n"]);
    assert_eq!(chunks.concat(), text);
    assert!(word_chunks("").is_empty());
    assert_eq!(word_chunks("  lead"), vec!["  ", "lead"]);
}

#[tokio::test]
async fn streams_words_then_usage_then_done() {
    let demo = provider(0);
    let req = request("Tell me something");
    let events = events(&demo, req.clone()).await;
    let expected = demo_reply(&req);
    assert_eq!(text_of(&events), expected);

    let deltas: Vec<&String> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Delta(t) => Some(t),
            _ => None,
        })
        .collect();
    assert!(deltas.len() > 20, "streamed in many small chunks");
    assert!(
        deltas.iter().all(|d| !d.is_empty() && d.split_whitespace().count() == 1),
        "one word per chunk: {deltas:?}"
    );

    let n = events.len();
    assert_eq!(n, deltas.len() + 2);
    // Input: 2 (system) + 3 + 2 + 3 words; output: one token per chunk.
    assert_eq!(events[n - 2], StreamEvent::Usage(TokenUsage { input_tokens: 10, output_tokens: deltas.len() as u32 }));
    assert_eq!(events[n - 1], StreamEvent::Done { finish_reason: Some("stop".into()) });
}

#[tokio::test]
async fn output_cap_ends_with_length() {
    let demo = provider(0);
    let mut req = request("Please use a short cap");
    req.max_output_tokens = 5;
    let events = events(&demo, req.clone()).await;
    let full = word_chunks(&demo_reply(&req));
    assert_eq!(text_of(&events), full[..5].concat());
    assert_eq!(events.last(), Some(&StreamEvent::Done { finish_reason: Some("length".into()) }));
    assert!(events.contains(&StreamEvent::Usage(TokenUsage { input_tokens: 12, output_tokens: 5 })));
}

#[tokio::test]
async fn chunks_are_paced_by_the_delay() {
    let delay = Duration::from_millis(10);
    let demo = provider(10);
    let req = request("Pace me");
    let chunks = word_chunks(&demo_reply(&req)).len() as u32;
    let started = Instant::now();
    let mut stream = demo.stream(req).await.unwrap();
    // The first word comes one delay later, the rest one delay apart.
    let first = stream.next().await.unwrap().unwrap();
    assert!(matches!(first, StreamEvent::Delta(_)));
    assert!(started.elapsed() >= delay);
    while stream.next().await.is_some() {}
    assert!(started.elapsed() >= delay * chunks, "{chunks} chunks in {:?}", started.elapsed());
}
