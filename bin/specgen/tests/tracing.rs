//! Traces exported over OTLP/HTTP to a local collector: one request, with
//! an incoming `traceparent`, gives one trace whose tree holds the request,
//! its store and cache calls, the AI reply and its provider call (with the
//! GenAI attributes); the call to the provider carries the trace onward.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Backend, TestApp, use_fake_claude};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use reqwest::Method;
use serde_json::json;
use specgen_test_support::ai::{FakeBehaviour, FakeUpstream, FakeWire};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// An OTLP/HTTP collector that keeps every span it is sent.
struct Collector {
    url: String,
    spans: Arc<Mutex<Vec<Span>>>,
}

impl Collector {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
        let kept = Arc::clone(&spans);
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let kept = Arc::clone(&kept);
                tokio::spawn(async move {
                    while let Some(body) = read_request(&mut socket).await {
                        let export = ExportTraceServiceRequest::decode(body.as_slice()).unwrap();
                        {
                            let mut spans = kept.lock().unwrap();
                            for resource in export.resource_spans {
                                for scope in resource.scope_spans {
                                    spans.extend(scope.spans);
                                }
                            }
                        }
                        let ok = "HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                        socket.write_all(ok.as_bytes()).await.unwrap();
                    }
                });
            }
        });
        Self { url, spans }
    }

    fn trace(&self, trace_id: &[u8]) -> Vec<Span> {
        self.spans.lock().unwrap().iter().filter(|s| s.trace_id == trace_id).cloned().collect()
    }
}

/// One HTTP/1.1 request's body (content-length framed); `None` at EOF.
async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let length: usize =
        head.lines().find_map(|l| l.strip_prefix("content-length:")).map(|v| v.trim().parse().unwrap())?;
    while buf.len() < head_end + length {
        let mut chunk = vec![0u8; head_end + length - buf.len()];
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(buf[head_end..head_end + length].to_vec())
}

fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a AnyValue> {
    span.attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()).and_then(|v| v.value.as_ref())
}

fn text(span: &Span, key: &str) -> Option<String> {
    match attribute(span, key)? {
        AnyValue::StringValue(s) => Some(s.clone()),
        other => Some(format!("{other:?}")),
    }
}

fn number(span: &Span, key: &str) -> Option<i64> {
    match attribute(span, key)? {
        AnyValue::IntValue(n) => Some(*n),
        AnyValue::StringValue(s) => s.parse().ok(),
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_is_one_trace_through_store_cache_and_provider() {
    let collector = Collector::start().await;
    let endpoint = collector.url.clone();
    // Outside the runtime: the exporter's client is a blocking one.
    let telemetry =
        std::thread::spawn(move || specgen::telemetry::init("warn", Some(&endpoint)).unwrap()).join().unwrap();
    let fake = FakeUpstream::start(
        FakeWire::Anthropic,
        FakeBehaviour::Success { chunks: vec!["Traced ".into(), "reply.".into()], chunk_delay: Duration::ZERO },
    )
    .await;
    let base = fake.base_url();
    let app = TestApp::spawn_with(Backend::Sqlite, |c| use_fake_claude(c, base)).await;
    let me = app.register("tracer@example.com").await;
    let (status, body) =
        app.call(Method::POST, "/api/v1/chat/sessions", Some(&me.access), Some(&json!({"title": "t"}))).await;
    assert_eq!(status, 201, "{body}");
    let path = format!("/api/v1/chat/sessions/{}/messages", body["data"]["id"].as_str().unwrap());

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let res = app
        .client
        .post(app.url(&path))
        .bearer_auth(&me.access)
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .json(&json!({"content": "follow me"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let trace_bytes: Vec<u8> = (0..16).map(|i| u8::from_str_radix(&trace_id[2 * i..2 * i + 2], 16).unwrap()).collect();

    // The reply's spans end with it; wait for the provider call's to arrive.
    let mut spans = Vec::new();
    for _ in 0..100 {
        // The flush blocks until the exporter thread has sent the batch.
        tokio::task::block_in_place(|| telemetry.flush());
        spans = collector.trace(&trace_bytes);
        if spans.iter().any(|s| s.name.starts_with("chat ")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    let by_id: HashMap<Vec<u8>, &Span> = spans.iter().map(|s| (s.span_id.clone(), s)).collect();

    // The request continues the caller's trace.
    let request = spans
        .iter()
        .find(|s| s.name == "POST /api/v1/chat/sessions/{id}/messages")
        .unwrap_or_else(|| panic!("no request span among {names:?}"));
    assert_eq!(hex(&request.parent_span_id), caller_span);
    assert_eq!(number(request, "http.response.status_code"), Some(201));

    // Every span of the trace hangs off the request.
    let descends_from_request = |span: &Span| {
        let mut at = span;
        for _ in 0..16 {
            if at.span_id == request.span_id {
                return true;
            }
            match by_id.get(&at.parent_span_id) {
                Some(parent) => at = parent,
                None => return false,
            }
        }
        false
    };
    for span in &spans {
        assert!(descends_from_request(span), "{} is outside the request's tree: {names:?}", span.name);
    }
    for expected in ["db messages.insert", "db messages.recent", "ai.reply"] {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }
    assert!(names.iter().any(|n| n.starts_with("cache ")), "a cache call in {names:?}");

    // The provider call, with the GenAI conventions.
    let call = spans.iter().find(|s| s.name.starts_with("chat ")).unwrap();
    assert_eq!(text(call, "gen_ai.system").as_deref(), Some("claude"));
    assert_eq!(text(call, "gen_ai.operation.name").as_deref(), Some("chat"));
    assert!(text(call, "gen_ai.request.model").is_some());
    assert_eq!(
        number(call, "gen_ai.usage.input_tokens"),
        Some(i64::from(specgen_test_support::ai::FAKE_USAGE.input_tokens))
    );
    assert_eq!(
        number(call, "gen_ai.usage.output_tokens"),
        Some(i64::from(specgen_test_support::ai::FAKE_USAGE.output_tokens))
    );
    assert!(text(call, "gen_ai.response.finish_reasons").is_some_and(|r| r.contains("end_turn")), "{call:?}");

    // The upstream request carried the trace, with the provider call as parent.
    let sent = fake.requests()[0].header("traceparent").unwrap().to_owned();
    assert_eq!(sent, format!("00-{trace_id}-{}-01", hex(&call.span_id)));
    tokio::task::block_in_place(|| telemetry.shutdown());
}
