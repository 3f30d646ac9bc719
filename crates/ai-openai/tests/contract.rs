//! The provider contract against a fake speaking OpenAI's chunk format, plus
//! what only an OpenAI-compatible adapter has to do.
// Test helpers may unwrap: a panic there is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use specgen_ai_openai::{OpenAiConfig, OpenAiProvider};
use specgen_ports::{AiProvider, ProviderError, StreamEvent};
use specgen_test_support::ai::{FAKE_API_KEY, FakeBehaviour, FakeUpstream, FakeWire, sample_chunks, sample_request};

fn config(base_url: String, api_key: Option<String>) -> OpenAiConfig {
    OpenAiConfig {
        api_key,
        base_url,
        model: "contract-default-model".into(),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
    }
}

fn openai_against(base_url: String) -> Arc<dyn AiProvider> {
    let config = config(base_url, Some(FAKE_API_KEY.into()));
    Arc::new(OpenAiProvider::new(config).expect("valid config"))
}

specgen_test_support::ai_provider_contract_tests!(openai_against, FakeWire::OpenAi);

#[tokio::test]
async fn without_a_key_no_authorization_header_is_sent() {
    // Ollama and local vLLM need no key; an empty `Bearer ` is noise at
    // best and rejected by some proxies.
    let fake = FakeUpstream::start(
        FakeWire::OpenAi,
        FakeBehaviour::Success { chunks: sample_chunks(), chunk_delay: Duration::ZERO },
    )
    .await;
    let provider = OpenAiProvider::new(config(fake.base_url(), None)).unwrap();
    let events: Vec<_> = provider.stream(sample_request()).await.unwrap().collect().await;
    assert!(matches!(events.last(), Some(Ok(StreamEvent::Done { .. }))));
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].header("authorization"), None);
}

#[tokio::test]
async fn a_non_json_error_body_keeps_its_status() {
    // async-openai alone would report a JSON decode error here and lose the
    // 404 (e.g. a wrong base URL behind a proxy).
    let fake = FakeUpstream::start(
        FakeWire::OpenAi,
        FakeBehaviour::Status { status: 404, retry_after: None, body: "404 page not found".into() },
    )
    .await;
    let provider = openai_against(fake.base_url());
    match provider.stream(sample_request()).await {
        Err(ProviderError::Status { status, message, .. }) => {
            assert_eq!(status, 404);
            assert_eq!(message, "404 page not found");
        }
        Err(other) => panic!("expected Status, got {other:?}"),
        Ok(_) => panic!("expected Status, got a stream"),
    }
}

#[tokio::test]
async fn a_base_url_with_a_trailing_slash_reaches_the_same_path() {
    let fake = FakeUpstream::start(
        FakeWire::OpenAi,
        FakeBehaviour::Success { chunks: sample_chunks(), chunk_delay: Duration::ZERO },
    )
    .await;
    let provider = openai_against(format!("{}/", fake.base_url()));
    let _: Vec<_> = provider.stream(sample_request()).await.unwrap().collect().await;
    assert_eq!(fake.requests()[0].path, "/v1/chat/completions");
}

mod deadlines {
    //! `request_timeout` bounds the wait for the response head and each
    //! silence in the stream, never the whole reply.

    use super::*;
    use futures::StreamExt;
    use specgen_ports::{ProviderError, StreamEvent};
    use specgen_test_support::ai::{FakeBehaviour, FakeUpstream, sample_chunks, sample_request};

    fn with_timeout(base_url: String, request_timeout: Duration) -> OpenAiProvider {
        OpenAiProvider::new(OpenAiConfig {
            api_key: Some(FAKE_API_KEY.into()),
            base_url,
            model: "m".into(),
            connect_timeout: Duration::from_secs(2),
            request_timeout,
        })
        .unwrap()
    }

    #[tokio::test]
    async fn no_response_head_is_a_timeout() {
        // Accepts connections and never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let _hold = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                open.push(socket);
            }
        });
        let provider = with_timeout(format!("http://{address}/v1"), Duration::from_millis(300));
        let started = std::time::Instant::now();
        match provider.stream(sample_request()).await {
            Err(ProviderError::Timeout) => {}
            Err(other) => panic!("expected Timeout, got {other:?}"),
            Ok(_) => panic!("expected Timeout, got a stream"),
        }
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn a_stall_mid_stream_is_interrupted() {
        let fake = FakeUpstream::start(
            FakeWire::OpenAi,
            FakeBehaviour::SlowFirstToken { delay: Duration::from_secs(2), chunks: sample_chunks() },
        )
        .await;
        let provider = with_timeout(fake.base_url(), Duration::from_millis(300));
        let items: Vec<_> = provider.stream(sample_request()).await.unwrap().collect().await;
        assert!(matches!(items.last(), Some(Err(ProviderError::Interrupted(_)))), "{items:?}");
        assert!(!items.iter().any(|i| matches!(i, Ok(StreamEvent::Delta(_)))));
    }

    #[tokio::test]
    async fn a_reply_may_take_longer_than_the_timeout() {
        let fake = FakeUpstream::start(
            FakeWire::OpenAi,
            FakeBehaviour::Success { chunks: vec!["word ".to_owned(); 8], chunk_delay: Duration::from_millis(100) },
        )
        .await;
        let provider = with_timeout(fake.base_url(), Duration::from_millis(300));
        let items: Vec<_> = provider.stream(sample_request()).await.unwrap().collect().await;
        assert!(matches!(items.last(), Some(Ok(StreamEvent::Done { .. }))), "{items:?}");
    }
}
