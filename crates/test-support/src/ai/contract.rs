//! The AI provider contract: what every network adapter must do against its
//! wire format, success and failure alike. The routing layer relies on these
//! promises (errors before the first token, `Done` only on a real end,
//! transient vs permanent, prompt cancellation).

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use specgen_ports::{AiProvider, ProviderError, ReplyStream, StreamEvent, TokenUsage};

use super::{FAKE_API_KEY, FAKE_USAGE, FakeBehaviour, FakeUpstream, FakeWire, sample_chunks, sample_request};

/// Builds the adapter under test pointed at `base_url`, configured with
/// [`FAKE_API_KEY`].
pub type MakeProvider = fn(String) -> Arc<dyn AiProvider>;

type Item = Result<StreamEvent, ProviderError>;

/// Longest a contract case waits for any one stream item before failing.
const ITEM_WAIT: Duration = Duration::from_secs(10);

/// Expands to one `#[tokio::test]` per contract case for the adapter built by
/// `$make` (a [`MakeProvider`]) against a fake speaking `$wire` (a `FakeWire`).
#[macro_export]
macro_rules! ai_provider_contract_tests {
    ($make:path, $wire:expr) => {
        $crate::ai_provider_contract_tests!(@cases $make, $wire;
            success_streams_deltas_then_usage_then_done,
            usage_numbers_come_through,
            request_is_well_formed,
            streams_incrementally,
            server_error_is_status_before_any_event,
            rate_limit_carries_retry_after,
            client_error_is_permanent,
            slow_first_token_is_not_the_adapters_deadline,
            cut_mid_stream_is_interrupted,
            body_ending_without_stop_is_interrupted,
            malformed_event_is_protocol_error,
            error_event_is_upstream_error,
            connection_refused_is_connect_error,
            dropping_the_stream_closes_the_upstream_connection,
        );
    };
    (@cases $make:path, $wire:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::ai::contract::$case($make, $wire).await;
            }
        )+
    };
}

async fn open(provider: &Arc<dyn AiProvider>) -> ReplyStream {
    match tokio::time::timeout(ITEM_WAIT, provider.stream(sample_request())).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => panic!("stream() failed: {error:?}"),
        Err(_) => panic!("stream() did not return within {ITEM_WAIT:?}"),
    }
}

/// Every item until the stream ends.
async fn collect(mut stream: ReplyStream) -> Vec<Item> {
    let mut items = Vec::new();
    loop {
        match tokio::time::timeout(ITEM_WAIT, stream.next()).await {
            Ok(Some(item)) => items.push(item),
            Ok(None) => return items,
            Err(_) => panic!("stream stalled after {items:?}"),
        }
        assert!(items.len() < 10_000, "stream never ends");
    }
}

fn all_ok(items: Vec<Item>) -> Vec<StreamEvent> {
    items.into_iter().map(|item| item.unwrap_or_else(|e| panic!("unexpected stream error: {e:?}"))).collect()
}

fn deltas(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .filter_map(|item| match item {
            Ok(StreamEvent::Delta(text)) => Some(text.clone()),
            _ => None,
        })
        .collect()
}

fn assert_no_done(items: &[Item]) {
    assert!(
        !items.iter().any(|item| matches!(item, Ok(StreamEvent::Done { .. }))),
        "a failed stream must never report Done: {items:?}"
    );
}

/// The error a failed stream ends with (and nothing after it).
fn final_error(items: &[Item]) -> &ProviderError {
    match items.last() {
        Some(Err(error)) => error,
        _ => panic!("expected the stream to end with an error: {items:?}"),
    }
}

/// The `Status` error `stream()` must fail with: (status, message, error).
async fn expect_status(provider: &Arc<dyn AiProvider>) -> (u16, String, ProviderError) {
    match provider.stream(sample_request()).await {
        Ok(_) => panic!("expected an error status before any event, got a stream"),
        Err(error) => match &error {
            ProviderError::Status { status, message, .. } => (*status, message.clone(), error),
            other => panic!("expected ProviderError::Status, got {other:?}"),
        },
    }
}

pub async fn success_streams_deltas_then_usage_then_done(make: MakeProvider, wire: FakeWire) {
    let chunks = sample_chunks();
    let fake = FakeUpstream::start(
        wire,
        FakeBehaviour::Success { chunks: chunks.clone(), chunk_delay: Duration::from_millis(5) },
    )
    .await;
    let provider = make(fake.base_url());
    let events = all_ok(collect(open(&provider).await).await);

    let texts: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Delta(text) => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, chunks, "every delta, in order, none merged or empty");
    assert_eq!(texts.concat(), chunks.concat());

    let done = StreamEvent::Done { finish_reason: Some(wire.finish_reason().to_owned()) };
    assert_eq!(events.last(), Some(&done), "ends with Done: {events:?}");
    let dones = events.iter().filter(|e| matches!(e, StreamEvent::Done { .. })).count();
    assert_eq!(dones, 1, "exactly one Done: {events:?}");
    assert!(
        matches!(events[events.len() - 2], StreamEvent::Usage(_)),
        "the final usage comes after the last delta, right before Done: {events:?}"
    );
}

pub async fn usage_numbers_come_through(make: MakeProvider, wire: FakeWire) {
    let usage = TokenUsage { input_tokens: 1234, output_tokens: 567 };
    assert_ne!(usage, FAKE_USAGE);
    let fake = FakeUpstream::start_with_usage(
        wire,
        FakeBehaviour::Success { chunks: sample_chunks(), chunk_delay: Duration::ZERO },
        usage,
    )
    .await;
    let provider = make(fake.base_url());
    let events = all_ok(collect(open(&provider).await).await);
    let usages: Vec<TokenUsage> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Usage(u) => Some(*u),
            _ => None,
        })
        .collect();
    assert_eq!(usages.last(), Some(&usage), "final usage: {events:?}");
    assert!(
        usages.iter().all(|u| u.input_tokens == usage.input_tokens),
        "input tokens as reported from the first usage on: {usages:?}"
    );
    assert!(usages.windows(2).all(|w| w[0] != w[1]), "usage is emitted when it changes, not repeated: {usages:?}");
}

/// A message's `content` as text, whether sent as a string or as text blocks.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(text) => text.clone(),
        Value::Array(blocks) => blocks.iter().filter_map(|b| b["text"].as_str()).collect::<String>(),
        other => panic!("unexpected content shape: {other}"),
    }
}

fn roles_and_texts(messages: &Value) -> Vec<(String, String)> {
    messages
        .as_array()
        .unwrap_or_else(|| panic!("messages must be an array: {messages}"))
        .iter()
        .map(|m| (m["role"].as_str().unwrap_or_default().to_owned(), content_text(&m["content"])))
        .collect()
}

pub async fn request_is_well_formed(make: MakeProvider, wire: FakeWire) {
    let fake =
        FakeUpstream::start(wire, FakeBehaviour::Success { chunks: sample_chunks(), chunk_delay: Duration::ZERO })
            .await;
    let provider = make(fake.base_url());
    all_ok(collect(open(&provider).await).await);

    let requests = fake.requests();
    assert_eq!(requests.len(), 1, "exactly one request, no retries");
    let request = &requests[0];
    let sample = sample_request();
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, wire.completion_path());
    assert!(
        request.header("content-type").is_some_and(|v| v.starts_with("application/json")),
        "JSON body: {:?}",
        request.headers
    );
    assert_eq!(request.header("traceparent"), Some(super::SAMPLE_TRACEPARENT), "the caller's trace goes upstream");
    let body = &request.body;
    assert_eq!(body["model"], json!(sample.model));
    assert_eq!(body["stream"], json!(true));

    let turns: Vec<(String, String)> = sample
        .turns
        .iter()
        .map(|t| {
            let role = match t.role {
                specgen_ports::TurnRole::User => "user",
                specgen_ports::TurnRole::Assistant => "assistant",
            };
            (role.to_owned(), t.content.clone())
        })
        .collect();
    let system = sample.system.clone().unwrap_or_default();
    match wire {
        FakeWire::Anthropic => {
            assert_eq!(request.header("x-api-key"), Some(FAKE_API_KEY));
            assert_eq!(request.header("anthropic-version"), Some("2023-06-01"));
            assert_eq!(request.header("authorization"), None);
            assert_eq!(body["max_tokens"], json!(sample.max_output_tokens));
            assert_eq!(content_text(&body["system"]), system);
            assert_eq!(roles_and_texts(&body["messages"]), turns);
        }
        FakeWire::OpenAi => {
            let bearer = format!("Bearer {FAKE_API_KEY}");
            assert_eq!(request.header("authorization"), Some(bearer.as_str()));
            assert_eq!(request.header("x-api-key"), None);
            assert_eq!(body["stream_options"]["include_usage"], json!(true));
            let cap = body.get("max_completion_tokens").or_else(|| body.get("max_tokens"));
            assert_eq!(cap, Some(&json!(sample.max_output_tokens)));
            let mut expected = vec![("system".to_owned(), system)];
            expected.extend(turns);
            assert_eq!(roles_and_texts(&body["messages"]), expected);
        }
    }
}

pub async fn streams_incrementally(make: MakeProvider, wire: FakeWire) {
    let delay = Duration::from_millis(150);
    let chunks = sample_chunks();
    let spread = delay * (chunks.len() as u32 - 1);
    let fake = FakeUpstream::start(wire, FakeBehaviour::Success { chunks, chunk_delay: delay }).await;
    let provider = make(fake.base_url());
    let mut stream = open(&provider).await;
    let mut first_delta = None;
    let mut done = None;
    while let Some(item) = tokio::time::timeout(ITEM_WAIT, stream.next()).await.expect("stream stalled") {
        match item.expect("no error") {
            StreamEvent::Delta(_) if first_delta.is_none() => first_delta = Some(Instant::now()),
            StreamEvent::Done { .. } => done = Some(Instant::now()),
            _ => {}
        }
    }
    let (first, done) = (first_delta.expect("a delta"), done.expect("Done"));
    // The fake spaces its deltas `spread` apart in total: a buffering adapter
    // would hand them all over at the end.
    assert!(done - first >= spread / 2, "first delta only {:?} before Done; expected about {spread:?}", done - first);
}

pub async fn server_error_is_status_before_any_event(make: MakeProvider, wire: FakeWire) {
    let fake = FakeUpstream::start(
        wire,
        FakeBehaviour::Status {
            status: 500,
            retry_after: None,
            body: wire.error_body("api_error", "fake internal error"),
        },
    )
    .await;
    let provider = make(fake.base_url());
    let (status, message, error) = expect_status(&provider).await;
    assert_eq!(status, 500);
    assert_eq!(error.retry_after(), None);
    assert!(message.contains("fake internal error"), "message from the body: {message}");
    assert!(error.is_transient());
    assert_eq!(fake.requests().len(), 1, "the adapter itself must not retry");
}

pub async fn rate_limit_carries_retry_after(make: MakeProvider, wire: FakeWire) {
    let fake = FakeUpstream::start(
        wire,
        FakeBehaviour::Status {
            status: 429,
            retry_after: Some(7),
            body: wire.error_body("rate_limit_error", "slow down please"),
        },
    )
    .await;
    let provider = make(fake.base_url());
    let (status, message, error) = expect_status(&provider).await;
    assert_eq!(status, 429);
    assert!(message.contains("slow down please"), "{message}");
    assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
    assert!(error.is_transient());
    // Retrying (and honouring retry-after) is the routing layer's call.
    assert_eq!(fake.requests().len(), 1, "the adapter itself must not retry");
}

pub async fn client_error_is_permanent(make: MakeProvider, wire: FakeWire) {
    let fake = FakeUpstream::start(
        wire,
        FakeBehaviour::Status {
            status: 400,
            retry_after: None,
            body: wire.error_body("invalid_request_error", "max_tokens is too large"),
        },
    )
    .await;
    let provider = make(fake.base_url());
    let (status, message, error) = expect_status(&provider).await;
    assert_eq!(status, 400);
    assert!(message.contains("max_tokens is too large"), "{message}");
    assert!(!error.is_transient());
    assert_eq!(fake.requests().len(), 1);
}

pub async fn slow_first_token_is_not_the_adapters_deadline(make: MakeProvider, wire: FakeWire) {
    let delay = Duration::from_millis(800);
    let chunks = sample_chunks();
    let fake = FakeUpstream::start(wire, FakeBehaviour::SlowFirstToken { delay, chunks: chunks.clone() }).await;
    let provider = make(fake.base_url());
    let started = Instant::now();
    let mut stream = open(&provider).await;
    // The head is sent at once: stream() returns on acceptance, not on the
    // first token (the routing layer owns the first-token deadline).
    assert!(started.elapsed() < delay, "stream() waited {:?} for the first token", started.elapsed());
    let first = loop {
        match tokio::time::timeout(ITEM_WAIT, stream.next()).await {
            Ok(Some(Ok(StreamEvent::Delta(text)))) => break text,
            Ok(Some(Ok(_))) => {}
            other => panic!("expected a delta, got {other:?}"),
        }
    };
    assert!(started.elapsed() >= delay, "first delta after {:?}", started.elapsed());
    assert_eq!(first, chunks[0]);
    let rest = all_ok(collect(stream).await);
    assert!(matches!(rest.last(), Some(StreamEvent::Done { .. })));
}

async fn cut_case(make: MakeProvider, wire: FakeWire, behaviour: FakeBehaviour, sent: usize) {
    let chunks = sample_chunks();
    let fake = FakeUpstream::start(wire, behaviour).await;
    let provider = make(fake.base_url());
    let items = collect(open(&provider).await).await;
    assert_eq!(deltas(&items), chunks[..sent].to_vec(), "{items:?}");
    assert_no_done(&items);
    let error = final_error(&items);
    assert!(matches!(error, ProviderError::Interrupted(_)), "expected Interrupted, got {error:?}");
    assert!(error.is_transient());
}

pub async fn cut_mid_stream_is_interrupted(make: MakeProvider, wire: FakeWire) {
    let behaviour = FakeBehaviour::CutMidStream { chunks: sample_chunks(), after_chunks: 3 };
    cut_case(make, wire, behaviour, 3).await;
}

pub async fn body_ending_without_stop_is_interrupted(make: MakeProvider, wire: FakeWire) {
    let behaviour = FakeBehaviour::EndsWithoutStop { chunks: sample_chunks(), after_chunks: 2 };
    cut_case(make, wire, behaviour, 2).await;
}

pub async fn malformed_event_is_protocol_error(make: MakeProvider, wire: FakeWire) {
    let fake = FakeUpstream::start(wire, FakeBehaviour::MalformedEvent { first_chunk: "Valid start".into() }).await;
    let provider = make(fake.base_url());
    let items = collect(open(&provider).await).await;
    assert_eq!(deltas(&items), vec!["Valid start".to_owned()], "nothing after the bad event: {items:?}");
    assert_no_done(&items);
    let error = final_error(&items);
    assert!(matches!(error, ProviderError::Protocol(_)), "expected Protocol, got {error:?}");
}

pub async fn error_event_is_upstream_error(make: MakeProvider, wire: FakeWire) {
    let chunks = sample_chunks();
    let fake = FakeUpstream::start(
        wire,
        FakeBehaviour::ErrorEvent {
            chunks: chunks.clone(),
            after_chunks: 2,
            kind: "overloaded_error".into(),
            message: "Overloaded right now".into(),
        },
    )
    .await;
    let provider = make(fake.base_url());
    let items = collect(open(&provider).await).await;
    assert_eq!(deltas(&items), chunks[..2].to_vec());
    assert_no_done(&items);
    match final_error(&items) {
        error @ ProviderError::Upstream { kind, message } => {
            assert_eq!(kind, "overloaded_error");
            assert!(message.contains("Overloaded right now"), "{message}");
            assert!(error.is_transient());
        }
        other => panic!("expected Upstream, got {other:?}"),
    }
}

pub async fn connection_refused_is_connect_error(make: MakeProvider, wire: FakeWire) {
    // A port that was just free and is now closed: connecting is refused.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    let provider = make(wire.base_url(address));
    let started = Instant::now();
    match tokio::time::timeout(ITEM_WAIT, provider.stream(sample_request())).await {
        Ok(Err(error @ ProviderError::Connect(_))) => assert!(error.is_transient()),
        Ok(Err(other)) => panic!("expected Connect, got {other:?}"),
        Ok(Ok(_)) => panic!("expected Connect, got a stream"),
        Err(_) => panic!("a refused connection must fail fast"),
    }
    assert!(started.elapsed() < Duration::from_secs(3), "refusal took {:?}", started.elapsed());
}

pub async fn dropping_the_stream_closes_the_upstream_connection(make: MakeProvider, wire: FakeWire) {
    // Long enough (8 s) that the fake is still streaming when we drop.
    let fake = FakeUpstream::start(
        wire,
        FakeBehaviour::Success { chunks: vec!["tick ".to_owned(); 80], chunk_delay: Duration::from_millis(100) },
    )
    .await;
    let provider = make(fake.base_url());
    let mut stream = open(&provider).await;
    loop {
        match tokio::time::timeout(ITEM_WAIT, stream.next()).await {
            Ok(Some(Ok(StreamEvent::Delta(_)))) => break,
            Ok(Some(Ok(_))) => {}
            other => panic!("expected a delta, got {other:?}"),
        }
    }
    assert_eq!(fake.peer_closes(), 0);
    drop(stream);
    assert!(
        fake.wait_for_peer_close(Duration::from_secs(3)).await,
        "the upstream connection stayed open after the stream was dropped"
    );
}
