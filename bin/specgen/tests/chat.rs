//! Messages and AI replies over real HTTP: content rules, idempotency,
//! history, SSE, fallback between providers speaking their real wire formats
//! (fake upstreams), failures mid-stream, cancellation, rate limits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Account, Backend, TestApp, assert_error, parse_sse, read, use_fake_claude, use_fake_openai, use_redis};
use reqwest::Method;
use serde_json::{Value, json};
use specgen_test_support::ai::{FakeBehaviour, FakeUpstream, FakeWire};

async fn session(app: &TestApp, who: &Account) -> String {
    let (status, body) =
        app.call(Method::POST, "/api/v1/chat/sessions", Some(&who.access), Some(&json!({"title": "t"}))).await;
    assert_eq!(status, 201, "{body}");
    format!("/api/v1/chat/sessions/{}/messages", body["data"]["id"].as_str().unwrap())
}

async fn send(app: &TestApp, who: &Account, path: &str, body: Value) -> (u16, Value) {
    app.call(Method::POST, path, Some(&who.access), Some(&body)).await
}

fn chunks(text: &[&str]) -> Vec<String> {
    text.iter().map(|s| (*s).to_owned()).collect()
}

async fn history(app: &TestApp, who: &Account, path: &str) -> Vec<Value> {
    let (status, body) = app.get_as(path, &who.access).await;
    assert_eq!(status, 200, "{body}");
    body["data"]["items"].as_array().unwrap().clone()
}

async fn demo_reply_is_stored_with_the_exact_message(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let me = app.register("chat@example.com").await;
    let path = session(&app, &me).await;
    let typed = "  is a < b? <div onclick=\"x\">é 😀\n\tindented ";
    let (status, body) = send(&app, &me, &path, json!({"content": typed})).await;
    assert_eq!(status, 201, "{body}");
    let user = &body["data"]["userMessage"];
    let ai = &body["data"]["aiMessage"];
    assert_eq!(user["content"], typed, "stored exactly as sent");
    assert_eq!(user["role"], "user");
    assert_eq!(user["senderId"], me.user_id.as_str());
    assert_eq!(ai["status"], "complete", "{ai}");
    assert_eq!(ai["provider"], "demo");
    assert_eq!(ai["senderId"], Value::Null);
    assert!(ai["content"].as_str().unwrap().contains("demo"), "labelled as a demo: {ai}");
    assert!(ai["latencyMs"].as_i64().is_some());
    assert!(ai["usage"]["outputTokens"].as_u64().unwrap() > 0);

    let items = history(&app, &me, &path).await;
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], user["id"], "oldest first");
    assert_eq!(items[1]["id"], ai["id"]);
    assert_eq!(items[0]["content"], typed);

    let (status, body) = send(&app, &me, &path, json!({"content": "no reply please", "aiReply": false})).await;
    assert_eq!(status, 201);
    assert_eq!(body["data"]["aiMessage"], Value::Null);
    // `null` is the default, as for every optional field: a reply.
    let (status, body) = send(&app, &me, &path, json!({"content": "and now one", "aiReply": null})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["aiMessage"]["status"], "complete", "{body}");
}

async fn bad_content_is_refused_and_stores_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let me = app.register("rules@example.com").await;
    let path = session(&app, &me).await;
    let too_long = "x".repeat(10_001);
    for content in [json!("   \n\t "), json!("nul\u{0}byte"), json!("bell\u{7}"), json!(too_long), json!(42)] {
        let (status, body) = send(&app, &me, &path, json!({"content": content, "aiReply": false})).await;
        assert_eq!(status, 422, "{content}: {body}");
        assert_eq!(assert_error(&body, "VALIDATION_FAILED")["details"][0]["field"], "content");
    }
    let exactly = "é".repeat(10_000);
    assert_eq!(send(&app, &me, &path, json!({"content": exactly, "aiReply": false})).await.0, 201);
    assert_eq!(history(&app, &me, &path).await.len(), 1);
}

async fn client_message_id_makes_sending_idempotent(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let me = app.register("idem@example.com").await;
    let path = session(&app, &me).await;
    let (status, first) = send(&app, &me, &path, json!({"content": "hello", "clientMessageId": "k-1"})).await;
    assert_eq!(status, 201);
    let (status, again) = send(&app, &me, &path, json!({"content": "hello", "clientMessageId": "k-1"})).await;
    assert_eq!(status, 200, "a replay answers 200: {again}");
    assert_eq!(again["data"]["userMessage"]["id"], first["data"]["userMessage"]["id"]);
    assert_eq!(again["data"]["aiMessage"]["id"], first["data"]["aiMessage"]["id"]);
    assert_eq!(history(&app, &me, &path).await.len(), 2, "nothing new was created");

    // Retried as a stream, it streams: the original messages, then the
    // reply's final event with its whole text.
    let events = send_sse(&app, &me, &path, json!({"content": "hello", "clientMessageId": "k-1"})).await;
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["message_created", "message_created", "message_complete"], "{events:?}");
    assert_eq!(events[0].1["message"]["id"], first["data"]["userMessage"]["id"]);
    assert_eq!(events[1].1["message"]["id"], first["data"]["aiMessage"]["id"]);
    assert_eq!(events[2].1["messageId"], first["data"]["aiMessage"]["id"]);
    assert_eq!(events[2].1["content"], first["data"]["aiMessage"]["content"]);
    // Without a reply, the stream ends after the user message, as the original's did.
    let no_reply = json!({"content": "note", "clientMessageId": "k-2", "aiReply": false});
    assert_eq!(send(&app, &me, &path, no_reply.clone()).await.0, 201);
    let events = send_sse(&app, &me, &path, no_reply).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].1["message"]["content"], "note");
    assert_eq!(history(&app, &me, &path).await.len(), 3, "nothing new was created");
}

/// Sends racing with one key: the first insert wins, the others answer with
/// its message, and only the winner's reply runs (each send's reply task
/// waits for its own insert and ends quietly when that insert lost).
async fn racing_sends_with_one_key_create_one_message_and_one_reply(backend: Backend) {
    let fake = FakeUpstream::start(
        FakeWire::Anthropic,
        FakeBehaviour::Success { chunks: chunks(&["Just ", "once."]), chunk_delay: Duration::ZERO },
    )
    .await;
    let base = fake.base_url();
    let app = TestApp::spawn_with(backend, |c| use_fake_claude(c, base)).await;
    let me = app.register("race@example.com").await;
    let path = session(&app, &me).await;
    let body = json!({"content": "only once", "clientMessageId": "race-1"});
    // Every send gets past the check for an earlier use of the key (a read)
    // and waits at the insert; then the first insert wins.
    let held = app.hold_message_writes().await;
    let sends = futures::future::join_all((0..8).map(|_| send(&app, &me, &path, body.clone())));
    let release = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        held.release().await;
    };
    let (answers, ()) = tokio::join!(sends, release);
    let created: Vec<&Value> = answers.iter().filter(|(status, _)| *status == 201).map(|(_, b)| b).collect();
    assert_eq!(created.len(), 1, "one send creates: {answers:?}");
    let user_id = &created[0]["data"]["userMessage"]["id"];
    for (status, answer) in &answers {
        assert!(*status == 201 || *status == 200, "{status}: {answer}");
        assert_eq!(&answer["data"]["userMessage"]["id"], user_id, "every answer names the one message");
        // Replays answer as the original does: once the reply has ended.
        assert_eq!(answer["data"]["aiMessage"]["status"], "complete", "{answer}");
        assert_eq!(answer["data"]["aiMessage"]["content"], "Just once.", "{answer}");
    }
    let items = history(&app, &me, &path).await;
    let roles: Vec<&str> = items.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant"], "one message, one reply: {items:?}");
    assert_eq!(items[1]["status"], "complete");
    assert_eq!(items[1]["content"], "Just once.");
    assert_eq!(fake.requests().len(), 1, "the provider was asked once");
}

async fn strangers_cannot_post_and_messages_are_rate_limited(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.specgen_rate_messages = "3/60".into()).await;
    let me = app.register("limit@example.com").await;
    let stranger = app.register("nosy@example.com").await;
    let path = session(&app, &me).await;
    let (status, body) = send(&app, &stranger, &path, json!({"content": "hi"})).await;
    assert_eq!(status, 404);
    assert_error(&body, "NOT_FOUND");
    assert_eq!(app.get_as(&path, &stranger.access).await.0, 404);
    for _ in 0..3 {
        assert_eq!(send(&app, &me, &path, json!({"content": "hi", "aiReply": false})).await.0, 201);
    }
    let (status, body) = send(&app, &me, &path, json!({"content": "hi", "aiReply": false})).await;
    assert_eq!(status, 429, "{body}");
    assert_error(&body, "RATE_LIMITED");
    assert_eq!(history(&app, &me, &path).await.len(), 3);
}

for_both_stores!(
    demo_reply_is_stored_with_the_exact_message,
    bad_content_is_refused_and_stores_nothing,
    client_message_id_makes_sending_idempotent,
    racing_sends_with_one_key_create_one_message_and_one_reply,
    strangers_cannot_post_and_messages_are_rate_limited,
);

/// A send retried while its reply is still being written (a client that
/// timed out, say) answers as the original request does, once the reply has
/// ended, not with a half-written or missing reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_send_answers_with_the_finished_reply() {
    let fake = FakeUpstream::start(
        FakeWire::Anthropic,
        FakeBehaviour::Success {
            chunks: chunks(&["Slow", " and", " steady", " wins."]),
            chunk_delay: Duration::from_millis(150),
        },
    )
    .await;
    let base = fake.base_url();
    let app = TestApp::spawn_with(Backend::Sqlite, |c| use_fake_claude(c, base)).await;
    let me = app.register("retry@example.com").await;
    let path = session(&app, &me).await;
    let body = json!({"content": "take your time", "clientMessageId": "retry-1"});
    let original = tokio::spawn({
        let (http, url, token, body) = (app.client.clone(), app.url(&path), me.access.clone(), body.clone());
        async move { read(http.post(url).bearer_auth(token).json(&body).send().await.unwrap()).await }
    });
    // Retry once the user message is stored and the reply is under way.
    let mut stored = false;
    for _ in 0..100 {
        if history(&app, &me, &path).await.iter().any(|m| m["role"] == "user") {
            stored = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(stored, "the user message is stored");
    let (status, again) = send(&app, &me, &path, body).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["data"]["aiMessage"]["status"], "complete", "{again}");
    assert_eq!(again["data"]["aiMessage"]["content"], "Slow and steady wins.");
    let (status, first) = original.await.unwrap();
    assert_eq!(status, 201);
    assert_eq!(again["data"]["aiMessage"]["id"], first["data"]["aiMessage"]["id"]);
    assert_eq!(fake.requests().len(), 1, "the provider was asked once");
}

/// Sends with `Accept: text/event-stream` and returns the parsed events.
async fn send_sse(app: &TestApp, who: &Account, path: &str, body: Value) -> Vec<(String, Value)> {
    let res = app
        .client
        .post(app.url(path))
        .bearer_auth(&who.access)
        .header("accept", "text/event-stream")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    parse_sse(&res.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_streams_every_chunk_in_order_then_one_final_event() {
    let fake = FakeUpstream::start(
        FakeWire::Anthropic,
        FakeBehaviour::Success {
            chunks: chunks(&["Hel", "lo", ", ", "world", "!"]),
            chunk_delay: Duration::from_millis(5),
        },
    )
    .await;
    let base = fake.base_url();
    let app = TestApp::spawn_with(Backend::Sqlite, |c| use_fake_claude(c, base)).await;
    let me = app.register("sse@example.com").await;
    let path = session(&app, &me).await;
    let events = send_sse(&app, &me, &path, json!({"content": "greet me"})).await;
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[..2], ["message_created", "message_created"]);
    assert_eq!(events[0].1["message"]["role"], "user");
    assert_eq!(events[1].1["message"]["status"], "streaming");
    assert_eq!(events[1].1["message"]["provider"], "claude");
    let chunk_events: Vec<&Value> = events.iter().filter(|(n, _)| n == "message_chunk").map(|(_, d)| d).collect();
    let seqs: Vec<u64> = chunk_events.iter().map(|d| d["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5], "seq starts at 1, no gaps");
    let text: String = chunk_events.iter().map(|d| d["content"].as_str().unwrap()).collect();
    assert_eq!(text, "Hello, world!");
    let (last, data) = events.last().unwrap();
    assert_eq!(last, "message_complete");
    assert_eq!(data["content"], "Hello, world!");
    assert_eq!(data["isComplete"], true);
    assert_eq!(
        names
            .iter()
            .filter(|n| n.starts_with("message_c") && **n != "message_created" && **n != "message_chunk")
            .count(),
        1
    );

    // The upstream saw the user's words and our key, in Anthropic's format.
    let request = &fake.requests()[0];
    assert_eq!(request.header("x-api-key"), Some(specgen_test_support::ai::FAKE_API_KEY));
    assert!(request.header("anthropic-version").is_some());
    assert_eq!(request.body["messages"].as_array().unwrap().last().unwrap()["content"], "greet me");

    let items = history(&app, &me, &path).await;
    assert_eq!(items[1]["status"], "complete");
    assert_eq!(items[1]["content"], "Hello, world!");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_provider_falls_back_to_the_next() {
    let broken = FakeUpstream::start(
        FakeWire::Anthropic,
        FakeBehaviour::Status { status: 500, retry_after: None, body: json!({"type": "error"}).to_string() },
    )
    .await;
    let healthy = FakeUpstream::start(
        FakeWire::OpenAi,
        FakeBehaviour::Success { chunks: chunks(&["from ", "openai"]), chunk_delay: Duration::ZERO },
    )
    .await;
    let (b, h) = (broken.base_url(), healthy.base_url());
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        use_fake_claude(c, b);
        use_fake_openai(c, h);
    })
    .await;
    let me = app.register("fallback@example.com").await;
    let path = session(&app, &me).await;
    let (status, body) = send(&app, &me, &path, json!({"content": "anyone there?"})).await;
    assert_eq!(status, 201, "{body}");
    let ai = &body["data"]["aiMessage"];
    assert_eq!(ai["status"], "complete");
    assert_eq!(ai["provider"], "openai", "the message names what produced its text");
    assert_eq!(ai["content"], "from openai");
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"ai_fallbacks_total{from="claude",to="openai"}"#), "{metrics}");
    assert!(metrics.contains("ai_time_to_first_token_seconds"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_first_token_falls_back_within_the_deadline() {
    let slow = FakeUpstream::start(
        FakeWire::Anthropic,
        FakeBehaviour::SlowFirstToken { delay: Duration::from_secs(5), chunks: chunks(&["too late"]) },
    )
    .await;
    let healthy = FakeUpstream::start(
        FakeWire::OpenAi,
        FakeBehaviour::Success { chunks: chunks(&["in time"]), chunk_delay: Duration::ZERO },
    )
    .await;
    let (s, h) = (slow.base_url(), healthy.base_url());
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        use_fake_claude(c, s);
        use_fake_openai(c, h);
        c.ai_first_token_timeout = 1;
    })
    .await;
    let me = app.register("slow@example.com").await;
    let path = session(&app, &me).await;
    let started = std::time::Instant::now();
    let (_, body) = send(&app, &me, &path, json!({"content": "quick"})).await;
    assert_eq!(body["data"]["aiMessage"]["provider"], "openai");
    assert_eq!(body["data"]["aiMessage"]["content"], "in time");
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_provider_failing_keeps_the_message_and_says_why() {
    let broken = FakeUpstream::start(
        FakeWire::Anthropic,
        FakeBehaviour::Status { status: 503, retry_after: None, body: "{}".into() },
    )
    .await;
    let b = broken.base_url();
    let app = TestApp::spawn_with(Backend::Sqlite, |c| use_fake_claude(c, b)).await;
    let me = app.register("down@example.com").await;
    let path = session(&app, &me).await;
    let (status, body) = send(&app, &me, &path, json!({"content": "please keep this"})).await;
    assert_eq!(status, 201, "{body}");
    let ai = &body["data"]["aiMessage"];
    assert_eq!(ai["status"], "failed");
    assert_eq!(ai["error"]["code"], "AI_UNAVAILABLE");
    let items = history(&app, &me, &path).await;
    assert_eq!(items[0]["content"], "please keep this");
    assert_eq!(items[1]["status"], "failed");

    // Over SSE the reply follows the usual sequence: created as streaming,
    // then its one final event.
    let events = send_sse(&app, &me, &path, json!({"content": "again, streamed"})).await;
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["message_created", "message_created", "message_failed"], "{events:?}");
    assert_eq!(events[1].1["message"]["role"], "assistant");
    assert_eq!(events[1].1["message"]["status"], "streaming");
    assert_eq!(events[2].1["error"]["code"], "AI_UNAVAILABLE", "{events:?}");

    // Three failures open the breaker: the provider shows as unavailable.
    send(&app, &me, &path, json!({"content": "again"})).await;
    let (status, providers) = app.get_as("/api/v1/ai/providers", &me.access).await;
    assert_eq!(status, 200);
    assert_eq!(providers["data"][0]["name"], "claude");
    assert_eq!(providers["data"][0]["isDefault"], true);
    assert_eq!(providers["data"][0]["available"], false, "{providers}");
    // Readiness reports it too: still ready (the store answers), degraded.
    let (status, ready) = read(app.get("/health/ready").await).await;
    assert_eq!(status, 200);
    assert_eq!(ready["data"]["status"], "degraded", "{ready}");
    assert_eq!(ready["data"]["providers"], json!([{"name": "claude", "available": false}]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_mid_stream_is_failed_with_its_partial_text_never_complete() {
    let cut = FakeUpstream::start(
        FakeWire::Anthropic,
        FakeBehaviour::CutMidStream { chunks: chunks(&["partial ", "answer ", "never ", "finished"]), after_chunks: 2 },
    )
    .await;
    let healthy = FakeUpstream::start(
        FakeWire::OpenAi,
        FakeBehaviour::Success { chunks: chunks(&["should not be used"]), chunk_delay: Duration::ZERO },
    )
    .await;
    let (c_url, h) = (cut.base_url(), healthy.base_url());
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        use_fake_claude(c, c_url);
        use_fake_openai(c, h);
    })
    .await;
    let me = app.register("cut@example.com").await;
    let path = session(&app, &me).await;
    let events = send_sse(&app, &me, &path, json!({"content": "tell me"})).await;
    let (last, data) = events.last().unwrap();
    assert_eq!(last, "message_failed", "{events:?}");
    assert_eq!(data["content"], "partial answer ");
    assert_eq!(data["error"]["code"], "AI_STREAM_FAILED");
    // Said plainly to every member, without the HTTP client's own words.
    assert_eq!(data["error"]["message"], "the connection to the provider broke off mid-reply", "{data}");
    let items = history(&app, &me, &path).await;
    assert_eq!(items[1]["status"], "failed");
    assert_eq!(items[1]["content"], "partial answer ");
    assert_eq!(items[1]["provider"], "claude");
    assert!(healthy.requests().is_empty(), "after the first token there is no silent switch");
}

/// One SSE send to an app whose Claude upstream sends `chunks` `gap` apart,
/// with the given idle and total deadlines (seconds): the events, how long
/// the send took, and the reply as stored.
async fn paced_reply(
    chunks: Vec<String>,
    gap: Duration,
    idle: u64,
    total: u64,
) -> (Vec<(String, Value)>, Duration, Value) {
    let fake = FakeUpstream::start(
        FakeWire::Anthropic,
        FakeBehaviour::FirstByteAfter { delay: Duration::ZERO, chunks, chunk_delay: gap },
    )
    .await;
    let url = fake.base_url();
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        use_fake_claude(c, url);
        c.specgen_ai_idle_timeout = idle;
        c.specgen_ai_total_timeout = total;
    })
    .await;
    let me = app.register("paced@example.com").await;
    let path = session(&app, &me).await;
    let started = std::time::Instant::now();
    let events = send_sse(&app, &me, &path, json!({"content": "go"})).await;
    let took = started.elapsed();
    let stored = history(&app, &me, &path).await[1].clone();
    (events, took, stored)
}

/// A reply whose provider goes quiet, or runs past the whole reply's
/// deadline, ends `failed` with the text it had, and says which deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_or_overlong_reply_is_failed_with_its_partial_text() {
    // Chunks two seconds apart against a one-second idle deadline.
    let (events, took, stored) = paced_reply(chunks(&["first ", "never sent"]), Duration::from_secs(2), 1, 300).await;
    let (last, data) = events.last().unwrap();
    assert_eq!(last, "message_failed", "{events:?}");
    assert!(data["content"].as_str().unwrap().ends_with("first "), "{data}");
    assert_eq!(data["error"]["code"], "AI_STREAM_FAILED");
    assert!(data["error"]["message"].as_str().unwrap().contains("sent nothing for 1 s"), "{data}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(stored["status"], "failed");
    assert!(stored["content"].as_str().unwrap().ends_with("first "), "{stored}");

    // Chunks every 400 ms never trip the idle deadline, but the whole reply
    // (ten chunks, four seconds) runs past a two-second total deadline.
    let ten = (0..10).map(|i| format!("c{i} ")).collect();
    let (events, _, stored) = paced_reply(ten, Duration::from_millis(400), 1, 2).await;
    let (last, data) = events.last().unwrap();
    assert_eq!(last, "message_failed", "{events:?}");
    assert!(data["error"]["message"].as_str().unwrap().contains("longer than 2 s"), "{data}");
    let streamed = events.iter().filter(|(name, _)| name == "message_chunk").count();
    assert!((3..10).contains(&streamed), "{streamed} chunks before the deadline: {events:?}");
    assert_eq!(stored["status"], "failed");
    assert_eq!(stored["content"], data["content"]);
}

/// An app whose Claude upstream streams `words` words (`{prefix}{i} `)
/// `gap` apart, and an SSE send of `content` to it by a new user, whose
/// response is still open. Bind `upstream`: dropped, it stops streaming.
struct OpenStream {
    upstream: FakeUpstream,
    app: TestApp,
    me: Account,
    path: String,
    res: reqwest::Response,
}

async fn open_stream(prefix: &str, words: usize, gap: Duration, email: &str, content: &str) -> OpenStream {
    let upstream = FakeUpstream::start(
        FakeWire::Anthropic,
        FakeBehaviour::Success { chunks: (0..words).map(|i| format!("{prefix}{i} ")).collect(), chunk_delay: gap },
    )
    .await;
    let url = upstream.base_url();
    let app = TestApp::spawn_with(Backend::Sqlite, |c| use_fake_claude(c, url)).await;
    let me = app.register(email).await;
    let path = session(&app, &me).await;
    let res = app
        .client
        .post(app.url(&path))
        .bearer_auth(&me.access)
        .header("accept", "text/event-stream")
        .json(&json!({"content": content}))
        .send()
        .await
        .unwrap();
    OpenStream { upstream, app, me, path, res }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_the_reply_and_keeps_its_partial_text() {
    let OpenStream { upstream: slow, app, me, path, mut res } =
        open_stream("w", 200, Duration::from_millis(20), "stop@example.com", "go on and on").await;
    // Read until the AI message exists, then cancel it.
    let mut seen = String::new();
    let ai_id = loop {
        seen.push_str(&String::from_utf8_lossy(&res.chunk().await.unwrap().unwrap()));
        if let Some((_, data)) = parse_sse_prefix(&seen)
            .into_iter()
            .find(|(n, d)| n == "message_created" && d["message"]["role"] == "assistant")
        {
            break data["message"]["id"].as_str().unwrap().to_owned();
        }
    };
    let (status, body) = app.call(Method::POST, &format!("{path}/{ai_id}/cancel"), Some(&me.access), None).await;
    assert_eq!(status, 200, "{body}");
    while let Some(bytes) = res.chunk().await.unwrap() {
        seen.push_str(&String::from_utf8_lossy(&bytes));
    }
    let events = parse_sse(&seen);
    let (last, data) = events.last().unwrap();
    assert_eq!(last, "message_cancelled");
    let partial = data["content"].as_str().unwrap().to_owned();
    assert!(partial.starts_with("w0 ") && partial.len() < 200 * 4, "{partial}");
    let items = history(&app, &me, &path).await;
    assert_eq!(items[1]["status"], "cancelled");
    assert_eq!(items[1]["content"], partial.as_str());
    assert!(slow.wait_for_peer_close(Duration::from_secs(2)).await, "the upstream request was aborted");

    let (status, body) = app.call(Method::POST, &format!("{path}/{ai_id}/cancel"), Some(&me.access), None).await;
    assert_eq!(status, 409, "an ended reply cannot be cancelled: {body}");
}

/// Stopping the reply of a message sent without one. A single instance
/// knows at once that nothing runs: `409`. With instances sharing a bus,
/// another may still be waiting for its reply's first token, so within the
/// first-token deadlines the stop is passed on and answered `200`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_reply_that_was_never_asked_for() {
    for (shared_bus, expected) in [(false, 409), (true, 200)] {
        let app = TestApp::spawn_with(Backend::Postgres, |c| {
            if shared_bus {
                use_redis(c);
            }
        })
        .await;
        let me = app.register("no-reply@example.com").await;
        let path = session(&app, &me).await;
        let (status, body) = send(&app, &me, &path, json!({"content": "a note", "aiReply": false})).await;
        assert_eq!(status, 201, "{body}");
        let id = body["data"]["userMessage"]["id"].as_str().unwrap();
        let (status, body) = app.call(Method::POST, &format!("{path}/{id}/cancel"), Some(&me.access), None).await;
        assert_eq!(status, expected, "shared bus: {shared_bus}: {body}");
        if expected == 409 {
            assert_eq!(body["error"]["code"], "CONFLICT", "{body}");
        }
    }
}

/// Deleting a session stops its replies: nobody is left to read them, and
/// the provider would go on being paid for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_session_stops_its_replies() {
    let OpenStream { upstream: slow, app, me, path, mut res } =
        open_stream("d", 200, Duration::from_millis(20), "gone-session@example.com", "go on and on").await;
    let mut seen = String::new();
    while !parse_sse_prefix(&seen).iter().any(|(n, _)| n == "message_chunk") {
        seen.push_str(&String::from_utf8_lossy(&res.chunk().await.unwrap().unwrap()));
    }
    let session = path.trim_end_matches("/messages");
    let (status, body) = app.call(Method::DELETE, session, Some(&me.access), None).await;
    assert_eq!(status, 200, "{body}");
    while let Some(bytes) = res.chunk().await.unwrap() {
        seen.push_str(&String::from_utf8_lossy(&bytes));
    }
    let events = parse_sse(&seen);
    let (last, data) = events.last().unwrap();
    assert_eq!(last, "message_cancelled", "{data}");
    assert!(data["content"].as_str().unwrap().len() < 200 * 4, "stopped early: {data}");
    assert!(slow.wait_for_peer_close(Duration::from_secs(2)).await, "the upstream request was aborted");
}

/// Complete frames of a body still being read.
fn parse_sse_prefix(text: &str) -> Vec<(String, Value)> {
    match text.rfind("\n\n") {
        Some(end) => parse_sse(&text[..end + 2]),
        None => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_does_not_stop_the_reply() {
    // The upstream is bound so that it keeps streaming.
    let OpenStream { upstream: _upstream, app, me, path, mut res } =
        open_stream("p", 20, Duration::from_millis(20), "gone@example.com", "answer while I am away").await;
    res.chunk().await.unwrap();
    drop(res);
    let expected: String = (0..20).map(|i| format!("p{i} ")).collect();
    let mut stored = Value::Null;
    for _ in 0..100 {
        let items = history(&app, &me, &path).await;
        if items.len() == 2 && items[1]["status"] == "complete" {
            stored = items[1].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(stored["content"], expected.as_str(), "{stored}");
}

/// A reply still streaming when the server stops is stopped before the
/// server closes its request: the SSE client gets the reply's final event
/// (`failed`, `INTERRUPTED`, with the text so far), not a cut stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_ends_a_streamed_reply_with_its_final_event() {
    let OpenStream { upstream: _upstream, app, mut res, .. } =
        open_stream("p", 400, Duration::from_millis(25), "stopping@example.com", "a long one, please").await;
    let mut text = String::new();
    while !text.contains("message_chunk") {
        text.push_str(&String::from_utf8_lossy(&res.chunk().await.unwrap().expect("a chunk before the end")));
    }
    let (_, ()) = tokio::join!(
        async {
            while let Some(bytes) = res.chunk().await.expect("the stream ends cleanly, not cut") {
                text.push_str(&String::from_utf8_lossy(&bytes));
            }
        },
        app.stop(Duration::from_secs(2)),
    );
    let events = parse_sse(&text);
    let (last, data) = events.last().unwrap();
    assert_eq!(last, "message_failed", "{events:?}");
    assert_eq!(data["error"]["code"], "INTERRUPTED", "{data}");
    assert!(data["content"].as_str().unwrap().starts_with("p0 p1 "), "{data}");
    assert_eq!(
        events
            .iter()
            .filter(|(name, _)| name.starts_with("message_") && name != "message_created" && name != "message_chunk")
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_left_streaming_by_a_crash_are_failed_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("crash.db").display());
    let store =
        specgen_store_sqlite::SqliteStore::open(specgen_store_sqlite::SqliteConfig::new(dir.path().join("crash.db")))
            .unwrap();
    store.migrate().await.unwrap();
    let s = store.store();
    let (user, profile) = specgen_test_support::fixtures::user();
    s.users.register(&user, &profile).await.unwrap();
    let session = specgen_test_support::fixtures::session(user.id);
    s.sessions.create(&session).await.unwrap();
    let asked = specgen_test_support::fixtures::user_message(session.id, user.id, "hi");
    s.messages.insert(&asked).await.unwrap();
    let cut = specgen_test_support::fixtures::streaming_reply(&asked, "half of it");
    s.messages.insert(&cut).await.unwrap();
    drop(store);

    let _app =
        TestApp::spawn_with(Backend::Sqlite, |c| c.database_url = specgen::config::ConnectionUrl::new(url)).await;
    let reopened =
        specgen_store_sqlite::SqliteStore::open(specgen_store_sqlite::SqliteConfig::new(dir.path().join("crash.db")))
            .unwrap();
    let found = reopened.store().messages.find(session.id, cut.id).await.unwrap().unwrap();
    assert_eq!(found.status, specgen_domain::MessageStatus::Failed);
    assert_eq!(found.content, "half of it");
    assert_eq!(found.error.unwrap().code, "INTERRUPTED");
    let still = reopened.store().messages.find(session.id, asked.id).await.unwrap().unwrap();
    assert_eq!(still.content, "hi", "the user's message is untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_lists_the_enabled_ones_default_first() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let me = app.register("prov@example.com").await;
    let (status, body) = app.get_as("/api/v1/ai/providers", &me.access).await;
    assert_eq!(status, 200);
    let list = body["data"].as_array().unwrap();
    assert_eq!(list.len(), 1, "only demo without keys: {body}");
    assert_eq!(list[0]["name"], "demo");
    assert_eq!(list[0]["isDemo"], true);
    assert_eq!(list[0]["available"], true);
    assert_eq!(app.call(Method::GET, "/api/v1/ai/providers", None, None).await.0, 401);
    let (status, body) = read(app.client.get(app.url("/api/v1/ai/providers")).send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert_error(&body, "UNAUTHENTICATED");
}
