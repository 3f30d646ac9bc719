//! The provider contract against a fake speaking Anthropic's wire format.
// Test helpers may unwrap: a panic there is the failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use specgen_ai_claude::{ClaudeConfig, ClaudeProvider};
use specgen_ports::AiProvider;
use specgen_test_support::ai::{FAKE_API_KEY, FakeWire};

fn claude_against(base_url: String) -> Arc<dyn AiProvider> {
    let config = ClaudeConfig {
        api_key: FAKE_API_KEY.into(),
        base_url,
        model: "contract-default-model".into(),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
    };
    Arc::new(ClaudeProvider::new(config).expect("valid config"))
}

specgen_test_support::ai_provider_contract_tests!(claude_against, FakeWire::Anthropic);

mod deadlines {
    //! `request_timeout` bounds the wait for the response head and each
    //! silence in the stream, never the whole reply.

    use super::*;
    use futures::StreamExt;
    use specgen_ports::{ProviderError, StreamEvent};
    use specgen_test_support::ai::{FakeBehaviour, FakeUpstream, sample_chunks, sample_request};

    fn with_timeout(base_url: String, request_timeout: Duration) -> ClaudeProvider {
        ClaudeProvider::new(ClaudeConfig {
            api_key: FAKE_API_KEY.into(),
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
        let provider = with_timeout(format!("http://{address}"), Duration::from_millis(300));
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
            FakeWire::Anthropic,
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
            FakeWire::Anthropic,
            FakeBehaviour::Success { chunks: vec!["word ".to_owned(); 8], chunk_delay: Duration::from_millis(100) },
        )
        .await;
        let provider = with_timeout(fake.base_url(), Duration::from_millis(300));
        let items: Vec<_> = provider.stream(sample_request()).await.unwrap().collect().await;
        assert!(matches!(items.last(), Some(Ok(StreamEvent::Done { .. }))), "{items:?}");
    }
}
