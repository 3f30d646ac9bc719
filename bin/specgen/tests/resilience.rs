//! Faults under load, bounded in time: the store's connections cut and
//! refused (as a Postgres restart does) while clients send, Redis cut while
//! members chat, the server killed with SIGKILL mid-reply, and AI providers
//! failing every way while several replies run at once. Wire faults go
//! through the fault-injecting proxy of `specgen-test-support`. Each test
//! prints a `RESILIENCE` line with what it measured.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::ws::Ws;
use common::{Account, Backend, TestApp, read, use_fake_claude, use_fake_openai};
use reqwest::Method;
use serde_json::{Value, json};
use specgen_test_support::ai::{FakeBehaviour, FakeUpstream, FakeWire};
use specgen_test_support::proxy::FaultProxy;

async fn new_session(app: &TestApp, who: &Account) -> String {
    let (status, body) =
        app.call(Method::POST, "/api/v1/chat/sessions", Some(&who.access), Some(&json!({"title": "load"}))).await;
    assert_eq!(status, 201, "{body}");
    body["data"]["id"].as_str().unwrap().to_owned()
}

async fn history(app: &TestApp, who: &Account, session: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/chat/sessions/{session}/messages?limit=100");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, body) = app.get_as(&path, &who.access).await;
        assert_eq!(status, 200, "{body}");
        items.extend(body["data"]["items"].as_array().unwrap().iter().cloned());
        match body["data"]["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return items,
        }
    }
}

/// The store's connections are cut and new ones refused for two seconds
/// while four clients send flat out: requests fail fast with 503 meanwhile,
/// the service recovers by itself, and every acknowledged message is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_fails_fast_recovers_and_loses_nothing() {
    let db = specgen_store_postgres::testing::TestDatabase::create_empty().await;
    let proxy = FaultProxy::start(db.socket_addr()).await.unwrap();
    let via_proxy = db.url_via(proxy.address());
    let app = TestApp::spawn_with(Backend::Postgres, |c| {
        c.database_url = specgen::config::ConnectionUrl::new(via_proxy);
        c.specgen_rate_messages = "100000/60".into();
    })
    .await;
    let me = app.register("steady@example.com").await;
    let session = new_session(&app, &me).await;
    let path = format!("/api/v1/chat/sessions/{session}/messages");

    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let failures: Arc<Mutex<Vec<(u16, Duration)>>> = Arc::default();
    let successes_after_restore: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let started = Instant::now();
    let restored_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let (http, url, token) = (app.client.clone(), app.url(&path), me.access.clone());
            let (acknowledged, failures, after, restored_at) = (
                Arc::clone(&acknowledged),
                Arc::clone(&failures),
                Arc::clone(&successes_after_restore),
                Arc::clone(&restored_at),
            );
            tokio::spawn(async move {
                let mut n = 0;
                while started.elapsed() < Duration::from_secs(7) {
                    n += 1;
                    let key = format!("c{client}-{n}");
                    let sent = Instant::now();
                    let res = http
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&json!({"content": key, "clientMessageId": key, "aiReply": false}))
                        .send()
                        .await
                        .unwrap();
                    let status = res.status().as_u16();
                    let body: Value = res.json().await.unwrap();
                    match status {
                        201 => {
                            acknowledged.lock().unwrap().push(key);
                            if restored_at.lock().unwrap().is_some() {
                                after.lock().unwrap().push(Instant::now());
                            }
                        }
                        503 => {
                            assert_eq!(body["error"]["code"], "UNAVAILABLE", "{body}");
                            failures.lock().unwrap().push((status, sent.elapsed()));
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        other => panic!("unexpected {other}: {body}"),
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.restore();
    let restored = Instant::now();
    *restored_at.lock().unwrap() = Some(restored);
    for client in clients {
        client.await.unwrap();
    }

    let failures = failures.lock().unwrap().clone();
    assert!(!failures.is_empty(), "the outage was felt");
    let slowest_failure = failures.iter().map(|(_, took)| *took).max().unwrap();
    assert!(slowest_failure < Duration::from_secs(6), "fails fast: {slowest_failure:?}");
    let first_success = successes_after_restore.lock().unwrap().iter().min().copied();
    let recovered_after = first_success.expect("requests succeed again once the store is back") - restored;
    assert!(recovered_after < Duration::from_secs(5), "recovers by itself: {recovered_after:?}");

    let stored: HashSet<String> =
        history(&app, &me, &session).await.iter().map(|m| m["content"].as_str().unwrap().to_owned()).collect();
    let acknowledged = acknowledged.lock().unwrap().clone();
    let lost: Vec<_> = acknowledged.iter().filter(|k| !stored.contains(*k)).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    eprintln!(
        "RESILIENCE store outage (2 s): {} requests acknowledged, {} failed with 503 (slowest failure {:?}), \
         first success {:?} after the store came back, {} acknowledged messages lost",
        acknowledged.len(),
        failures.len(),
        slowest_failure,
        recovered_after,
        lost.len()
    );
    drop(db);
}

/// Redis cut while members of a session chat on two instances: the service
/// goes on (sending succeeds, rate limits hold in-process, members on the
/// same instance hear each other), and once Redis is back the instances
/// hear each other again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_keeps_the_service_going() {
    let redis: std::net::SocketAddr = "127.0.0.1:6379".parse().unwrap();
    let proxy = FaultProxy::start(redis).await.unwrap();
    let secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    let namespace = format!("specgen-test-{}", uuid::Uuid::now_v7().simple());
    let redis_via_proxy = format!("redis://{}", proxy.address());
    let a = TestApp::spawn_with(Backend::Postgres, |c| {
        c.redis_url = Some(specgen::config::ConnectionUrl::new(redis_via_proxy));
        c.specgen_redis_namespace = namespace.clone();
        c.jwt_secret = Some(specgen::config::Secret::new(secret.clone()));
        c.specgen_rate_messages = "12/60".into();
    })
    .await;
    let shared = a.config.clone();
    let b = TestApp::spawn_with(Backend::Postgres, |c| {
        c.database_url = shared.database_url.clone();
        c.redis_url = Some(specgen::config::ConnectionUrl::new("redis://127.0.0.1:6379"));
        c.specgen_redis_namespace = namespace.clone();
        c.jwt_secret = shared.jwt_secret.clone();
    })
    .await;
    let ada = a.register("ada@example.com").await;
    let bob = a.register("bob@example.com").await;
    let session = new_session(&a, &ada).await;
    let (status, _) = a
        .call(
            Method::POST,
            &format!("/api/v1/chat/sessions/{session}/participants"),
            Some(&ada.access),
            Some(&json!({"email": "bob@example.com"})),
        )
        .await;
    assert_eq!(status, 201);
    let mut bob_on_a = Ws::connect_as(&a, &bob.access).await;
    bob_on_a.join(&session).await;
    let mut bob_on_b = Ws::connect_as(&b, &bob.access).await;
    bob_on_b.join(&session).await;
    let path = format!("/api/v1/chat/sessions/{session}/messages");
    let send = |text: &str| {
        let body = json!({"content": text, "aiReply": false});
        let (http, url, token) = (a.client.clone(), a.url(&path), ada.access.clone());
        async move { read(http.post(url).bearer_auth(token).json(&body).send().await.unwrap()).await }
    };
    let heard = |frames: &[Value], text: &str| {
        frames.iter().any(|f| f["event"] == "message_created" && f["data"]["message"]["content"] == text)
    };

    let readiness = || async { read(a.get("/health/ready").await).await };
    let (status, body) = readiness().await;
    assert_eq!((status, &body["data"]["status"]), (200, &json!("ready")), "{body}");
    assert_eq!(body["data"]["checks"], json!({"store": "up", "cache": "up", "bus": "up"}));

    let (status, _) = send("before").await;
    assert_eq!(status, 201);
    assert!(heard(&bob_on_a.until("message_created").await, "before"));
    assert!(heard(&bob_on_b.until("message_created").await, "before"), "across instances");

    proxy.cut();
    let outage = Instant::now();
    // The room's shared feed reports the gap: its members are asked to
    // reconnect (1013), once, as after any gap; a client does so at once.
    let mut cut_once = false;
    if let Ok(common::ws::Next::Closed(code)) = tokio::time::timeout(Duration::from_secs(3), bob_on_a.next()).await {
        assert_eq!(code, Some(1013));
        cut_once = true;
        bob_on_a = Ws::connect_as(&a, &bob.access).await;
        bob_on_a.join(&session).await;
    }
    let mut sent_during = 0;
    for n in 0..5 {
        let text = format!("during {n}");
        let (status, body) = send(&text).await;
        assert_eq!(status, 201, "sending goes on without Redis: {body}");
        sent_during += 1;
        // Same-instance fan-out: Bob's connection on A hears it.
        let frames = bob_on_a.until("message_created").await;
        assert!(heard(&frames, &text), "{frames:?}");
    }
    // Rate limits hold, counted in-process: 12 a minute, 6 used so far.
    let mut limited = false;
    for n in 0..12 {
        let (status, _) = send(&format!("burst {n}")).await;
        if status == 429 {
            limited = true;
            break;
        }
    }
    assert!(limited, "the message limit still applies while Redis is down");
    // Still ready (the store answers), and it says what it is missing.
    let (status, body) = readiness().await;
    assert_eq!((status, &body["data"]["status"]), (200, &json!("degraded")), "{body}");
    assert_eq!(body["data"]["checks"], json!({"store": "up", "cache": "down", "bus": "down"}));
    let outage_length = outage.elapsed();

    proxy.restore();
    let restored = Instant::now();
    // Back to shared mode: what Ada sends on A reaches Bob on B again.
    let mut crossed_after = None;
    'wait: for attempt in 0..40 {
        let text = format!("after {attempt}");
        // The limit window may still be full: a refused send is fine here.
        let _ = send(&text).await;
        let deadline = Instant::now() + Duration::from_millis(250);
        while Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_millis(50), bob_on_b.next()).await {
                Ok(common::ws::Next::Frame(f)) if heard(std::slice::from_ref(&f), &text) => {
                    crossed_after = Some(restored.elapsed());
                    break 'wait;
                }
                Ok(common::ws::Next::Closed(_)) => {
                    // Cut for the gap the outage left: reconnect, as clients do.
                    bob_on_b = Ws::connect_as(&b, &bob.access).await;
                    bob_on_b.join(&session).await;
                }
                _ => {}
            }
        }
        if attempt == 20 {
            // Past the rate-limit window's worth of waiting, give up slowly.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let crossed_after = crossed_after.expect("instances hear each other again after Redis returns");
    let (status, body) = readiness().await;
    assert_eq!((status, &body["data"]["checks"]["cache"]), (200, &json!("up")), "{body}");
    eprintln!(
        "RESILIENCE redis outage ({outage_length:?}): members asked to reconnect once: {cut_once}; {sent_during} \
         messages sent (201) and heard on the same instance; rate limit enforced in-process; cross-instance \
         fan-out back {crossed_after:?} after Redis returned"
    );
}

/// The real binary killed with SIGKILL mid-reply and started again on the
/// same data: the user's message is there, the reply is `failed` with the
/// partial text it had, and a client that resumes gets that final state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_reply_keeps_the_message_and_the_partial_reply() {
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start(data.path());
    let base = server.base.clone();
    let http = reqwest::Client::new();
    let token = register(&http, &base, "crash@example.com").await;
    let session: Value = http
        .post(format!("{base}/api/v1/chat/sessions"))
        .bearer_auth(&token)
        .json(&json!({"title": "crash"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let session = session["data"]["id"].as_str().unwrap().to_owned();
    let mut res = http
        .post(format!("{base}/api/v1/chat/sessions/{session}/messages"))
        .bearer_auth(&token)
        .header("accept", "text/event-stream")
        .json(&json!({"content": "a long story please", "clientMessageId": "before-the-crash"}))
        .send()
        .await
        .unwrap();
    // Past the first store write of the partial text (every 500 ms).
    let mut seen = String::new();
    while seen.matches("event: message_chunk").count() < 25 {
        seen.push_str(&String::from_utf8_lossy(&res.chunk().await.unwrap().unwrap()));
    }
    server.kill();
    let streamed: String = common::parse_sse(&seen[..seen.rfind("\n\n").unwrap() + 2])
        .into_iter()
        .filter(|(name, _)| name == "message_chunk")
        .map(|(_, data)| data["content"].as_str().unwrap().to_owned())
        .collect();

    let server = Server::start(data.path());
    let base = server.base.clone();
    let items: Value = http
        .get(format!("{base}/api/v1/chat/sessions/{session}/messages"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let items = items["data"]["items"].as_array().unwrap();
    assert_eq!(items[0]["content"], "a long story please");
    assert_eq!(items[0]["clientMessageId"], "before-the-crash");
    let reply = &items[1];
    assert_eq!(reply["status"], "failed", "{reply}");
    assert_eq!(reply["error"]["code"], "INTERRUPTED");
    let partial = reply["content"].as_str().unwrap();
    assert!(!partial.is_empty() && streamed.starts_with(partial), "stored {partial:?}, streamed {streamed:?}");

    // A client that resumes the reply gets its final state.
    let url = format!("ws://{}/ws", base.trim_start_matches("http://"));
    let mut request = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url).unwrap();
    request.headers_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (stream, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut ws = Ws { stream };
    ws.expect("connected").await;
    ws.send("resume", json!({"sessionId": session, "messageId": reply["id"], "afterSeq": 3})).await;
    let frames = ws.until("message_failed").await;
    let failed = frames.last().unwrap();
    assert_eq!(failed["data"]["content"], partial);
    assert_eq!(failed["data"]["error"]["code"], "INTERRUPTED");
    eprintln!(
        "RESILIENCE SIGKILL mid-reply: user message kept, reply failed/INTERRUPTED with {} of the {} characters \
         streamed before the kill, resume answers message_failed",
        partial.len(),
        streamed.len()
    );
}

/// The real binary on a data directory of its own.
struct Server {
    child: std::process::Child,
    base: String,
}

impl Server {
    fn start(data: &std::path::Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let base = format!("http://127.0.0.1:{port}");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_specgen"))
            .arg("serve")
            .env_clear()
            .env("SPECGEN_LISTEN", format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", format!("sqlite://{}", data.join("specgen.db").display()))
            .env("SPECGEN_DATA_DIR", data)
            .env("SPECGEN_DEMO_CHUNK_DELAY_MS", "40")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, base }
    }

    /// SIGKILL: no shutdown code runs.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn register(http: &reqwest::Client, base: &str, email: &str) -> String {
    let body: Value = http
        .post(format!("{base}/api/v1/auth/register"))
        .json(&json!({"email": email, "password": common::PASSWORD, "name": "Crash Test"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["data"]["tokens"]["accessToken"].as_str().unwrap().to_owned()
}

/// Every way a provider fails, each while eight replies run at once, with a
/// healthy provider to fall back to: every user message is kept; failures
/// before the first token fall back and complete; failures after it end
/// `failed` with their partial text, never `complete`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_faults_under_concurrent_load_lose_no_message() {
    let words = |n: usize| -> Vec<String> { (0..n).map(|i| format!("w{i} ")).collect() };
    let faults: Vec<(&str, FakeBehaviour, bool)> = vec![
        ("500", FakeBehaviour::Status { status: 500, retry_after: None, body: "{}".into() }, true),
        ("429", FakeBehaviour::Status { status: 429, retry_after: Some(1), body: "{}".into() }, true),
        ("slow first token", FakeBehaviour::SlowFirstToken { delay: Duration::from_secs(3), chunks: words(3) }, true),
        ("cut mid-stream", FakeBehaviour::CutMidStream { chunks: words(10), after_chunks: 4 }, false),
        ("malformed event", FakeBehaviour::MalformedEvent { first_chunk: "w0 ".into() }, false),
    ];
    let healthy = FakeUpstream::start(
        FakeWire::OpenAi,
        FakeBehaviour::Success { chunks: words(5), chunk_delay: Duration::from_millis(2) },
    )
    .await;
    let mut report = Vec::new();
    for (name, behaviour, falls_back) in faults {
        let broken = FakeUpstream::start(FakeWire::Anthropic, behaviour).await;
        let (b, h) = (broken.base_url(), healthy.base_url());
        let app = TestApp::spawn_with(Backend::Sqlite, |c| {
            use_fake_claude(c, b);
            use_fake_openai(c, h);
            c.ai_first_token_timeout = 1;
            c.specgen_rate_messages = "1000/60".into();
        })
        .await;
        let me = app.register("load@example.com").await;
        let session = new_session(&app, &me).await;
        let path = format!("/api/v1/chat/sessions/{session}/messages");
        let sends: Vec<_> = (0..8)
            .map(|n| {
                let (http, url, token) = (app.client.clone(), app.url(&path), me.access.clone());
                tokio::spawn(async move {
                    let body = json!({"content": format!("question {n}")});
                    read(http.post(url).bearer_auth(token).json(&body).send().await.unwrap()).await
                })
            })
            .collect();
        let (mut complete, mut failed) = (0, 0);
        for send in sends {
            let (status, body) = send.await.unwrap();
            assert_eq!(status, 201, "{name}: {body}");
            let ai = &body["data"]["aiMessage"];
            match ai["status"].as_str().unwrap() {
                "complete" => {
                    assert!(falls_back, "{name}: a reply cut after its first token never ends complete: {ai}");
                    assert_eq!(ai["provider"], "openai", "{name}: {ai}");
                    complete += 1;
                }
                "failed" => {
                    assert!(!falls_back, "{name}: should have fallen back: {ai}");
                    assert!(ai["content"].as_str().unwrap().starts_with("w0 "), "{name}: partial text kept: {ai}");
                    failed += 1;
                }
                other => panic!("{name}: {other}: {ai}"),
            }
        }
        let stored = history(&app, &me, &session).await;
        let questions = stored.iter().filter(|m| m["role"] == "user").count();
        assert_eq!(questions, 8, "{name}: every user message kept");
        report.push(format!("{name}: {complete} fell back and completed, {failed} failed with partial text"));
    }
    eprintln!("RESILIENCE provider faults, 8 concurrent replies each: {}; 0 user messages lost", report.join("; "));
}

/// An instance starting on a shared store fails only replies no instance
/// is writing: a reply running on another instance goes on and completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_starting_leaves_other_instances_replies_alone() {
    let a = TestApp::spawn_with(Backend::Postgres, |c| c.specgen_demo_chunk_delay_ms = 50).await;
    let me = a.register("shared@example.com").await;
    let session = new_session(&a, &me).await;
    let path = format!("/api/v1/chat/sessions/{session}/messages");
    let mut res = a
        .client
        .post(a.url(&path))
        .bearer_auth(&me.access)
        .header("accept", "text/event-stream")
        .json(&json!({"content": "take your time"}))
        .send()
        .await
        .unwrap();
    let mut seen = String::new();
    while !seen.contains("event: message_chunk") {
        seen.push_str(&String::from_utf8_lossy(&res.chunk().await.unwrap().unwrap()));
    }
    // Past the reply's first stored write.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let shared = a.config.clone();
    let _b = TestApp::spawn_with(Backend::Postgres, |c| c.database_url = shared.database_url.clone()).await;
    let during = history(&a, &me, &session).await;
    assert_eq!(during[1]["status"], "streaming", "B's start-up left A's live reply alone: {:?}", during[1]);
    while let Some(bytes) = res.chunk().await.unwrap() {
        seen.push_str(&String::from_utf8_lossy(&bytes));
    }
    assert!(seen.contains("event: message_complete"), "{seen}");
    let stored = history(&a, &me, &session).await;
    assert_eq!(stored[1]["status"], "complete");
}
