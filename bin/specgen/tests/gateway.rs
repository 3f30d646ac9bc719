//! The WebSocket gateway over real connections: authentication, frames good
//! and bad, live sessions shared between members, exact resume, stopping,
//! slow readers, access control, and two instances sharing Postgres and
//! Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::ws::{Next, Ws, chunk_text};
use common::{Account, Backend, PASSWORD, TestApp, first_of_a_deployment, read, same_deployment_as, use_fake_claude};
use reqwest::Method;
use serde_json::{Value, json};
use specgen_test_support::ai::{FakeBehaviour, FakeUpstream, FakeWire};

/// A session owned by `owner`, with `members` invited; its id.
async fn shared_session(app: &TestApp, owner: &Account, members: &[&str]) -> String {
    let (status, body) =
        app.call(Method::POST, "/api/v1/chat/sessions", Some(&owner.access), Some(&json!({"title": "team"}))).await;
    assert_eq!(status, 201, "{body}");
    let id = body["data"]["id"].as_str().unwrap().to_owned();
    for email in members {
        let path = format!("/api/v1/chat/sessions/{id}/participants");
        let (status, body) = app.call(Method::POST, &path, Some(&owner.access), Some(&json!({"email": email}))).await;
        assert_eq!(status, 201, "{body}");
    }
    id
}

/// Ada and Bob, and a session of Ada's that Bob is a member of.
async fn ada_and_bob(app: &TestApp) -> (Account, Account, String) {
    let ada = app.register("ada@example.com").await;
    let bob = app.register("bob@example.com").await;
    let session = shared_session(app, &ada, &["bob@example.com"]).await;
    (ada, bob, session)
}

async fn history(app: &TestApp, who: &Account, session: &str) -> Vec<Value> {
    let (status, body) = app.get_as(&format!("/api/v1/chat/sessions/{session}/messages"), &who.access).await;
    assert_eq!(status, 200, "{body}");
    body["data"]["items"].as_array().unwrap().clone()
}

/// A demo reply slow enough to act on while it streams.
fn slow_demo(config: &mut specgen::config::Config) {
    config.specgen_demo_chunk_delay_ms = 30;
}

/// Reads a whole reply from `ws`: the user message, the AI message, its
/// chunks and its final event; returns (those frames, AI message id).
/// Presence is left out: a join is announced asynchronously and may land
/// anywhere among them.
async fn read_reply(ws: &mut Ws) -> (Vec<Value>, String) {
    let frames: Vec<Value> =
        ws.until("message_complete").await.into_iter().filter(|f| f["event"] != "user_joined").collect();
    let ai = frames
        .iter()
        .find(|f| f["event"] == "message_created" && f["data"]["message"]["role"] == "assistant")
        .unwrap_or_else(|| panic!("no AI message among {frames:?}"));
    let id = ai["data"]["message"]["id"].as_str().unwrap().to_owned();
    (frames, id)
}

async fn upgrade_and_first_frame_authenticate(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.register("ada@example.com").await;

    // A token on the upgrade: `connected` at once.
    let mut ws = Ws::open(&app, Some(&ada.access)).await.unwrap();
    let connected = ws.expect("connected").await;
    assert_eq!(connected["data"]["userId"], ada.user_id.as_str());

    // Browsers: the first frame, its id echoed.
    let mut ws = Ws::connect(&app).await;
    ws.send_with_id("authenticate", json!({"token": ada.access}), "auth-1").await;
    let connected = ws.expect("connected").await;
    assert_eq!(connected["id"], "auth-1");
    assert_eq!(connected["data"]["userId"], ada.user_id.as_str());
    ws.send_with_id("ping", json!({}), "p1").await;
    assert_eq!(ws.expect("pong").await["id"], "p1");

    // A bad token on the upgrade is refused with the 401 envelope.
    match Ws::open(&app, Some("not-a-token")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401);
            let body: Value = serde_json::from_slice(response.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["error"]["code"], "UNAUTHENTICATED", "{body}");
            // The headers of every other 401, and no hint of an upgrade.
            let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
            assert_eq!(header("www-authenticate"), r#"Bearer realm="specgen""#);
            assert_eq!(header("cache-control"), "no-store");
            assert_eq!(header("connection"), "close");
            assert_eq!(header("x-request-id"), body["error"]["requestId"].as_str().unwrap());
        }
        other => panic!("expected a refused upgrade, got {:?}", other.map(|_| "a connection")),
    }
    // So is any other `Authorization`: it is not the same as none.
    for authorization in ["Basic YWRhOnB3", "Bearer ", "Bearer"] {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
        let mut request = format!("ws://{}/ws", app.address).into_client_request().unwrap();
        request.headers_mut().insert("authorization", authorization.parse().unwrap());
        match tokio_tungstenite::connect_async(request).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 401, "{authorization}");
            }
            other => panic!("{authorization}: expected a refused upgrade, got {:?}", other.map(|_| "a connection")),
        }
    }

    // A bad token in the first frame: error, then 4401.
    let mut ws = Ws::connect(&app).await;
    ws.send_with_id("authenticate", json!({"token": "forged"}), "a2").await;
    let error = ws.expect("error").await;
    assert_eq!((error["data"]["code"].as_str(), error["id"].as_str()), (Some("UNAUTHENTICATED"), Some("a2")));
    assert_eq!(ws.closed().await, Some(4401));

    // Anything else before authenticating: the same.
    let mut ws = Ws::connect(&app).await;
    ws.send("join_session", json!({"sessionId": uuid::Uuid::now_v7()})).await;
    assert_eq!(ws.expect("error").await["data"]["code"], "UNAUTHENTICATED");
    assert_eq!(ws.closed().await, Some(4401));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_after_the_upgrade_is_closed_with_4408() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.specgen_ws_auth_timeout = 1).await;
    let mut ws = Ws::connect(&app).await;
    let started = std::time::Instant::now();
    assert_eq!(ws.expect("error").await["data"]["code"], "UNAUTHENTICATED");
    assert_eq!(ws.closed().await, Some(4408));
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

async fn bad_frames_get_errors_and_the_connection_stays_usable(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.register("ada@example.com").await;
    let mut ws = Ws::connect_as(&app, &ada.access).await;

    ws.send_raw("this is not json".into()).await;
    assert_eq!(ws.expect("error").await["data"]["code"], "BAD_REQUEST");
    ws.send_raw(r#"{"event": "no_such_event", "data": {}, "id": "x1"}"#.into()).await;
    let error = ws.expect("error").await;
    assert_eq!((error["data"]["code"].as_str(), error["id"].as_str()), (Some("BAD_REQUEST"), Some("x1")));
    ws.send_raw(r#"{"data": {}, "id": "x2"}"#.into()).await;
    let error = ws.expect("error").await;
    assert_eq!((error["data"]["code"].as_str(), error["id"].as_str()), (Some("BAD_REQUEST"), Some("x2")));
    futures::SinkExt::send(&mut ws.stream, tokio_tungstenite::tungstenite::Message::binary(vec![1, 2, 3]))
        .await
        .unwrap();
    assert_eq!(ws.expect("error").await["data"]["code"], "BAD_REQUEST");

    // Well-formed frames with bad data: field-level errors.
    ws.send_with_id("join_session", json!({}), "j1").await;
    let error = ws.expect("error").await;
    assert_eq!(error["data"]["code"], "VALIDATION_FAILED", "{error}");
    assert_eq!(error["data"]["details"][0]["field"], "sessionId");
    let session = shared_session(&app, &ada, &[]).await;
    ws.send_with_id("send_message", json!({"sessionId": session, "content": "   "}), "m1").await;
    let error = ws.expect("error").await;
    assert_eq!((error["data"]["code"].as_str(), error["id"].as_str()), (Some("VALIDATION_FAILED"), Some("m1")));
    assert_eq!(error["data"]["details"][0]["field"], "content");
    // Every failing field at once, the session's id among them.
    ws.send_with_id("send_message", json!({"sessionId": 5, "content": 5, "aiReply": "x"}), "m2").await;
    let error = ws.expect("error").await;
    let mut fields: Vec<&str> =
        error["data"]["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["aiReply", "content", "sessionId"], "{error}");
    assert!(history(&app, &ada, &session).await.is_empty(), "nothing stored");

    // Still usable.
    ws.send_with_id("ping", json!({}), "still-here").await;
    assert_eq!(ws.expect("pong").await["id"], "still-here");

    // A frame over the limit closes with 1008.
    ws.send_raw(format!(r#"{{"event":"ping","data":{{"pad":"{}"}}}}"#, "x".repeat(70 * 1024))).await;
    assert_eq!(ws.closed().await, Some(1008));
}

async fn members_see_each_other_and_the_ai_stream_live(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (ada, bob, session) = ada_and_bob(&app).await;
    let mut ada_ws = Ws::connect_as(&app, &ada.access).await;
    let mut bob_ws = Ws::connect_as(&app, &bob.access).await;
    bob_ws.join(&session).await;
    ada_ws.join(&session).await;
    let joined = bob_ws.expect("user_joined").await;
    assert_eq!(joined["data"], json!({"userId": ada.user_id, "sessionId": session}));

    // Typing reaches the others, not the typist, nor the typist's other tab.
    let mut ada_tab = Ws::connect_as(&app, &ada.access).await;
    ada_tab.join(&session).await;
    ada_ws.send("typing", json!({"sessionId": session, "isTyping": true})).await;
    let typing = bob_ws.expect("typing").await;
    assert_eq!(typing["data"], json!({"sessionId": session, "userId": ada.user_id, "isTyping": true}));

    ada_ws
        .send_with_id(
            "send_message",
            json!({"sessionId": session, "content": "a < b, <b>bold</b>", "clientMessageId": "c-1"}),
            "s1",
        )
        .await;
    let (ada_frames, ai_id) = read_reply(&mut ada_ws).await;
    let (bob_frames, bob_ai_id) = read_reply(&mut bob_ws).await;
    assert_eq!(ai_id, bob_ai_id);
    for frames in [&ada_frames, &bob_frames] {
        assert_eq!(frames[0]["event"], "message_created", "the user message first: {frames:?}");
        assert_eq!(frames[0]["data"]["message"]["content"], "a < b, <b>bold</b>");
        assert_eq!(frames[0]["data"]["message"]["senderId"], ada.user_id.as_str());
        assert_eq!(frames[0]["data"]["message"]["clientMessageId"], "c-1");
        let streamed = chunk_text(frames, &ai_id);
        let complete = frames.last().unwrap();
        assert_eq!(complete["data"]["content"], streamed.as_str(), "the chunks add up to the reply");
        assert_eq!(complete["data"]["isComplete"], true);
        assert_eq!(complete["data"]["provider"], "demo");
    }
    assert!(chunk_text(&ada_frames, &ai_id).contains("a < b"), "the demo quotes the message back");
    // The other tab heard the message (its first frame since it joined), and
    // no typing of its own person.
    let (tab_frames, _) = read_reply(&mut ada_tab).await;
    assert_eq!(tab_frames[0]["event"], "message_created", "{tab_frames:?}");
    assert!(tab_frames.iter().all(|f| f["event"] != "typing"), "{tab_frames:?}");
    // The sender's own message_created answers its frame, with the frame's id.
    assert_eq!(ada_frames[0]["id"], "s1", "{:?}", ada_frames[0]);
    assert!(ada_frames[1..].iter().chain(&bob_frames).all(|f| f.get("id").is_none()), "{ada_frames:?} {bob_frames:?}");

    // A message sent over HTTP is heard on the socket too.
    let path = format!("/api/v1/chat/sessions/{session}/messages");
    let (status, body) = app
        .call(Method::POST, &path, Some(&bob.access), Some(&json!({"content": "from http", "aiReply": false})))
        .await;
    assert_eq!(status, 201, "{body}");
    let created = ada_ws.until("message_created").await;
    assert_eq!(created.last().unwrap()["data"]["message"]["content"], "from http");

    // The same clientMessageId again creates nothing and answers the original.
    ada_ws
        .send_with_id(
            "send_message",
            json!({"sessionId": session, "content": "a < b, <b>bold</b>", "clientMessageId": "c-1"}),
            "s2",
        )
        .await;
    let replayed = ada_ws.expect("message_created").await;
    assert_eq!(replayed["id"], "s2");
    assert_eq!(replayed["data"]["message"]["clientMessageId"], "c-1");
    // Then the reply as stored and its final event, as an SSE replay sends them.
    let replayed_reply = ada_ws.expect("message_created").await;
    assert_eq!(replayed_reply["id"], "s2");
    assert_eq!(replayed_reply["data"]["message"]["id"], ai_id.as_str());
    assert_eq!(replayed_reply["data"]["message"]["status"], "complete");
    let final_event = ada_ws.expect("message_complete").await;
    assert_eq!(
        (final_event["id"].as_str(), final_event["data"]["messageId"].as_str()),
        (Some("s2"), Some(ai_id.as_str()))
    );
    let stored = history(&app, &ada, &session).await;
    assert_eq!(stored.len(), 3, "{stored:?}");
    assert_eq!(stored[1]["id"], ai_id.as_str());
    assert_eq!(stored[1]["status"], "complete");

    // Sent one after the other without waiting: each answered with its id
    // (after the replay's final event).
    for (content, id) in [("first", "p1"), ("second", "p2")] {
        let data = json!({"sessionId": session, "content": content, "aiReply": false});
        ada_ws.send_with_id("send_message", data, id).await;
    }
    for (content, id) in [("first", "p1"), ("second", "p2")] {
        let frames = ada_ws.until("message_created").await;
        let created = frames.last().unwrap();
        assert_eq!(created["data"]["message"]["content"], content, "{created}");
        assert_eq!(created["id"], id, "{created}");
    }

    // Leaving is seen by the others.
    bob_ws.send("leave_session", json!({"sessionId": session})).await;
    bob_ws.until("left_session").await;
    let left = ada_ws.until("user_left").await;
    assert_eq!(left.last().unwrap()["data"]["userId"], bob.user_id.as_str());
}

/// Presence is per person: a second tab joining or one of two leaving is
/// not news to the others.
async fn presence_counts_people_not_tabs(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (ada, bob, session) = ada_and_bob(&app).await;
    let mut watcher = Ws::connect_as(&app, &ada.access).await;
    watcher.join(&session).await;
    let mut tab_one = Ws::connect_as(&app, &bob.access).await;
    tab_one.join(&session).await;
    assert_eq!(watcher.expect("user_joined").await["data"]["userId"], bob.user_id.as_str());
    let mut tab_two = Ws::connect_as(&app, &bob.access).await;
    tab_two.join(&session).await;
    drop(tab_one);
    watcher.silent_for(Duration::from_millis(300)).await;
    tab_two.send("leave_session", json!({"sessionId": session})).await;
    assert_eq!(watcher.expect("user_left").await["data"]["userId"], bob.user_id.as_str());
}

/// Two tabs of one person joining at the same moment: the others hear of
/// the person once, and neither tab hears of its own person.
async fn tabs_joining_at_once_do_not_hear_of_themselves(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.register("ada@example.com").await;
    let bob = app.register("bob@example.com").await;
    // A race: several rounds, so that the joins interleave in some of them.
    for _ in 0..8 {
        let session = shared_session(&app, &ada, &["bob@example.com"]).await;
        let mut watcher = Ws::connect_as(&app, &ada.access).await;
        watcher.join(&session).await;
        let mut tab_one = Ws::connect_as(&app, &bob.access).await;
        let mut tab_two = Ws::connect_as(&app, &bob.access).await;
        tab_one.send("join_session", json!({"sessionId": session})).await;
        tab_two.send("join_session", json!({"sessionId": session})).await;
        for tab in [&mut tab_one, &mut tab_two] {
            let frames = tab.until("joined_session").await;
            assert!(frames.iter().all(|f| f["event"] != "user_joined"), "{frames:?}");
            tab.silent_for(Duration::from_millis(100)).await;
        }
        assert_eq!(watcher.expect("user_joined").await["data"]["userId"], bob.user_id.as_str());
        watcher.silent_for(Duration::from_millis(100)).await;
    }
}

/// A `resume` that fails changes nothing: no join, no presence, no events.
async fn a_failed_resume_joins_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (ada, bob, session) = ada_and_bob(&app).await;
    let mut ada_ws = Ws::connect_as(&app, &ada.access).await;
    ada_ws.join(&session).await;
    ada_ws.send("send_message", json!({"sessionId": session, "content": "hello", "aiReply": false})).await;
    let created = ada_ws.expect("message_created").await;
    let user_message = created["data"]["message"]["id"].as_str().unwrap().to_owned();

    let mut bob_ws = Ws::connect_as(&app, &bob.access).await;
    for (message, id) in [(uuid::Uuid::now_v7().to_string(), "unknown"), (user_message, "not-a-reply")] {
        bob_ws.send_with_id("resume", json!({"sessionId": session, "messageId": message, "afterSeq": 0}), id).await;
        let error = bob_ws.expect("error").await;
        assert_eq!((error["data"]["code"].as_str(), error["id"].as_str()), (Some("NOT_FOUND"), Some(id)), "{error}");
    }
    ada_ws.silent_for(Duration::from_millis(200)).await;
    ada_ws.send("send_message", json!({"sessionId": session, "content": "anyone?", "aiReply": false})).await;
    ada_ws.expect("message_created").await;
    bob_ws.silent_for(Duration::from_millis(300)).await;

    // `afterSeq` is required.
    bob_ws.send_with_id("resume", json!({"sessionId": session, "messageId": uuid::Uuid::now_v7()}), "no-seq").await;
    let error = bob_ws.expect("error").await;
    assert_eq!(error["data"]["code"], "VALIDATION_FAILED", "{error}");
    assert_eq!(error["data"]["details"][0]["field"], "afterSeq", "{error}");
}

async fn strangers_cannot_join_post_stop_or_resume(backend: Backend) {
    let app = TestApp::spawn_with(backend, slow_demo).await;
    let ada = app.register("ada@example.com").await;
    let eve = app.register("eve@example.com").await;
    let session = shared_session(&app, &ada, &[]).await;
    let mut ada_ws = Ws::connect_as(&app, &ada.access).await;
    ada_ws.join(&session).await;
    ada_ws.send("send_message", json!({"sessionId": session, "content": "private"})).await;
    let frames = ada_ws.until("message_chunk").await;
    let ai_id = frames.last().unwrap()["data"]["messageId"].as_str().unwrap().to_owned();

    let mut eve_ws = Ws::connect_as(&app, &eve.access).await;
    for (event, data) in [
        ("join_session", json!({"sessionId": session})),
        ("send_message", json!({"sessionId": session, "content": "let me in"})),
        ("stop_generation", json!({"sessionId": session, "messageId": ai_id})),
        ("typing", json!({"sessionId": session, "isTyping": true})),
        ("resume", json!({"sessionId": session, "messageId": ai_id, "afterSeq": 0})),
        ("leave_session", json!({"sessionId": session})),
        ("join_session", json!({"sessionId": uuid::Uuid::now_v7()})),
        ("leave_session", json!({"sessionId": uuid::Uuid::now_v7()})),
    ] {
        eve_ws.send_with_id(event, data, event).await;
        let error = eve_ws.expect("error").await;
        assert_eq!((error["data"]["code"].as_str(), error["id"].as_str()), (Some("NOT_FOUND"), Some(event)), "{error}");
    }
    // The reply went on untouched, and Eve heard none of it.
    let rest = ada_ws.until("message_complete").await;
    assert_eq!(rest.last().unwrap()["data"]["messageId"], ai_id.as_str());
    eve_ws.silent_for(Duration::from_millis(200)).await;
    assert_eq!(history(&app, &ada, &session).await.len(), 2, "Eve's message was not stored");
}

async fn a_removed_member_stops_hearing_the_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (ada, bob, session) = ada_and_bob(&app).await;
    let mut ada_ws = Ws::connect_as(&app, &ada.access).await;
    ada_ws.join(&session).await;
    let mut bob_ws = Ws::connect_as(&app, &bob.access).await;
    bob_ws.join(&session).await;
    ada_ws.expect("user_joined").await;
    let path = format!("/api/v1/chat/sessions/{session}/participants/{}", bob.user_id);
    let (status, body) = app.call(Method::DELETE, &path, Some(&ada.access), None).await;
    assert_eq!(status, 200, "{body}");
    let left = bob_ws.expect("left_session").await;
    assert_eq!(left["data"]["sessionId"], session.as_str());
    // The others' presence list follows.
    let gone = ada_ws.expect("user_left").await;
    assert_eq!(gone["data"]["userId"], bob.user_id.as_str());
    let messages = format!("/api/v1/chat/sessions/{session}/messages");
    app.call(Method::POST, &messages, Some(&ada.access), Some(&json!({"content": "after", "aiReply": false}))).await;
    bob_ws.silent_for(Duration::from_millis(300)).await;
    // No longer a participant: leaving again is about a session Bob may not know.
    bob_ws.send_with_id("leave_session", json!({"sessionId": session}), "again").await;
    let error = bob_ws.expect("error").await;
    assert_eq!((error["data"]["code"].as_str(), error["id"].as_str()), (Some("NOT_FOUND"), Some("again")), "{error}");
}

/// A member who deletes their account leaves every session, open sockets
/// included: they hear nothing more, and the others see them go. An owner
/// who does takes their sessions with them, for every member's socket.
async fn a_deleted_account_stops_hearing_its_sessions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let ada = app.register("ada@example.com").await;
    let bob = app.register("bob@example.com").await;
    let adas = shared_session(&app, &ada, &["bob@example.com"]).await;
    let bobs = shared_session(&app, &bob, &["ada@example.com"]).await;
    let mut ada_ws = Ws::connect_as(&app, &ada.access).await;
    let mut bob_ws = Ws::connect_as(&app, &bob.access).await;
    for session in [&adas, &bobs] {
        ada_ws.join(session).await;
        bob_ws.join(session).await;
        ada_ws.expect("user_joined").await;
    }
    let (status, body) =
        app.call(Method::DELETE, "/api/v1/users/me", Some(&bob.access), Some(&json!({"password": PASSWORD}))).await;
    assert_eq!(status, 200, "{body}");
    // Sessions come and go in any order across rooms; a `user_left` from
    // the other side of a session being revoked may come between.
    let mut bob_left: Vec<String> = Vec::new();
    while bob_left.len() < 2 {
        let frame = bob_ws.frame().await;
        match frame["event"].as_str() {
            Some("left_session") => bob_left.push(frame["data"]["sessionId"].as_str().unwrap().to_owned()),
            Some("user_left") => {}
            _ => panic!("Bob heard {frame}"),
        }
    }
    bob_left.sort();
    let mut both = vec![adas.clone(), bobs.clone()];
    both.sort();
    assert_eq!(bob_left, both, "Bob left both sessions");
    // Ada sees Bob leave hers, and Bob's own session went with his account.
    let (mut saw_bob_leave, mut ada_left_bobs) = (false, false);
    while !(saw_bob_leave && ada_left_bobs) {
        let frame = ada_ws.frame().await;
        match frame["event"].as_str() {
            Some("user_left") if frame["data"]["sessionId"] == adas.as_str() => {
                assert_eq!(frame["data"]["userId"], bob.user_id.as_str());
                saw_bob_leave = true;
            }
            Some("left_session") => {
                assert_eq!(frame["data"]["sessionId"], bobs.as_str());
                ada_left_bobs = true;
            }
            Some("user_left") => {}
            _ => panic!("Ada heard {frame}"),
        }
    }
    let messages = format!("/api/v1/chat/sessions/{adas}/messages");
    let (status, _) = app
        .call(Method::POST, &messages, Some(&ada.access), Some(&json!({"content": "secret", "aiReply": false})))
        .await;
    assert_eq!(status, 201);
    assert_eq!(ada_ws.expect("message_created").await["data"]["message"]["content"], "secret");
    bob_ws.silent_for(Duration::from_millis(300)).await;
}

async fn stop_generation_cancels_for_everyone(backend: Backend) {
    let app = TestApp::spawn_with(backend, slow_demo).await;
    let (ada, bob, session) = ada_and_bob(&app).await;
    let mut ada_ws = Ws::connect_as(&app, &ada.access).await;
    let mut bob_ws = Ws::connect_as(&app, &bob.access).await;
    ada_ws.join(&session).await;
    bob_ws.join(&session).await;
    ada_ws.send("send_message", json!({"sessionId": session, "content": "tell me everything"})).await;
    let frames = bob_ws.until("message_chunk").await;
    let ai_id = frames.last().unwrap()["data"]["messageId"].as_str().unwrap().to_owned();
    bob_ws.send("stop_generation", json!({"sessionId": session, "messageId": ai_id})).await;
    for ws in [&mut ada_ws, &mut bob_ws] {
        let frames = ws.until("message_cancelled").await;
        let cancelled = frames.last().unwrap();
        assert_eq!(cancelled["data"]["messageId"], ai_id.as_str());
        assert!(frames.iter().all(|f| f["event"] != "message_complete"));
    }
    let stored = history(&app, &ada, &session).await;
    assert_eq!(stored[1]["status"], "cancelled");
    assert!(!stored[1]["content"].as_str().unwrap().is_empty(), "the partial text is kept");
    bob_ws.send_with_id("stop_generation", json!({"sessionId": session, "messageId": ai_id}), "again").await;
    assert_eq!(bob_ws.expect("error").await["data"]["code"], "CONFLICT");
}

/// A socket dropped mid-reply; a new one resumes after the last chunk it
/// had: the rest arrives once, in order, and adds up to the stored reply.
async fn resume_after_a_dropped_socket_is_exact(backend: Backend) {
    let app = TestApp::spawn_with(backend, slow_demo).await;
    let ada = app.register("ada@example.com").await;
    let session = shared_session(&app, &ada, &[]).await;
    let mut ws = Ws::connect_as(&app, &ada.access).await;
    ws.join(&session).await;
    ws.send("send_message", json!({"sessionId": session, "content": "one two three four five"})).await;
    let mut frames = Vec::new();
    let ai_id = loop {
        let frame = ws.frame().await;
        frames.push(frame.clone());
        if frame["event"] == "message_chunk" && frame["data"]["seq"] == 5 {
            break frame["data"]["messageId"].as_str().unwrap().to_owned();
        }
    };
    let before = chunk_text(&frames, &ai_id);
    drop(ws);
    // The reply goes on without anyone listening.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut ws = Ws::connect_as(&app, &ada.access).await;
    ws.send_with_id("resume", json!({"sessionId": session, "messageId": ai_id, "afterSeq": 5}), "r1").await;
    let rest = ws.until("message_complete").await;
    let mut seqs: Vec<u64> =
        rest.iter().filter(|f| f["event"] == "message_chunk").map(|f| f["data"]["seq"].as_u64().unwrap()).collect();
    let first_resumed = seqs[0];
    assert_eq!(first_resumed, 6, "exactly the missing chunks first: {seqs:?}");
    let count = seqs.len();
    seqs.dedup();
    assert_eq!(seqs.len(), count, "no duplicate");
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "no gap: {seqs:?}");
    let after: String =
        rest.iter().filter(|f| f["event"] == "message_chunk").map(|f| f["data"]["content"].as_str().unwrap()).collect();
    let complete = rest.last().unwrap();
    assert_eq!(format!("{before}{after}"), complete["data"]["content"].as_str().unwrap());
    assert_eq!(history(&app, &ada, &session).await[1]["content"], complete["data"]["content"]);

    // Once it has ended, resume answers its final state from the store.
    let mut late = Ws::connect_as(&app, &ada.access).await;
    late.send_with_id("resume", json!({"sessionId": session, "messageId": ai_id, "afterSeq": 2}), "r2").await;
    let final_event = late.expect("message_complete").await;
    assert_eq!(final_event["data"]["content"], complete["data"]["content"]);
    assert_eq!(final_event["id"], "r2", "the answer to that frame carries its id");
    late.silent_for(Duration::from_millis(200)).await;
}

/// Joining first and resuming after: chunks that arrived live in between
/// are not sent again.
async fn join_then_resume_sends_nothing_twice(backend: Backend) {
    let app = TestApp::spawn_with(backend, slow_demo).await;
    let ada = app.register("ada@example.com").await;
    let session = shared_session(&app, &ada, &[]).await;
    let mut sender = Ws::connect_as(&app, &ada.access).await;
    sender.join(&session).await;
    sender.send("send_message", json!({"sessionId": session, "content": "count with me"})).await;
    let frames = sender.until("message_chunk").await;
    let ai_id = frames.last().unwrap()["data"]["messageId"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut late = Ws::connect_as(&app, &ada.access).await;
    late.join(&session).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    late.send("resume", json!({"sessionId": session, "messageId": ai_id, "afterSeq": 0})).await;
    let rest = late.until("message_complete").await;
    let mut seqs: Vec<u64> =
        rest.iter().filter(|f| f["event"] == "message_chunk").map(|f| f["data"]["seq"].as_u64().unwrap()).collect();
    let count = seqs.len();
    seqs.sort_unstable();
    seqs.dedup();
    assert_eq!(seqs.len(), count, "no chunk twice");
    assert_eq!(seqs, (1..=count as u64).collect::<Vec<_>>(), "every chunk once");
}

/// A client that stops reading is closed with 1013; the others in the
/// session get the whole reply, which is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_is_cut_while_others_are_unaffected() {
    // A long reply at a pace any reader keeps up with (far faster than a
    // model writes): 6 MB in a few seconds, more than the kernel buffers
    // (at most 4 MiB sent + the client's tiny window) can hide.
    const CHUNKS: usize = 1_500;
    const WIDTH: usize = 4_000;
    let fake = FakeUpstream::start(
        FakeWire::Anthropic,
        FakeBehaviour::Success {
            chunks: (0..CHUNKS).map(|i| format!("{i:05} {} ", "z".repeat(WIDTH))).collect(),
            chunk_delay: Duration::from_millis(1),
        },
    )
    .await;
    let base = fake.base_url();
    let app = TestApp::spawn_with(Backend::Sqlite, |c| {
        use_fake_claude(c, base);
        c.specgen_ws_outbox = 64;
    })
    .await;
    let (ada, bob, session) = ada_and_bob(&app).await;
    let mut slow = Ws::connect_with_small_window(&app, &bob.access).await;
    slow.join(&session).await;
    let mut fast = Ws::connect_as(&app, &ada.access).await;
    fast.join(&session).await;

    let path = format!("/api/v1/chat/sessions/{session}/messages");
    let sender = {
        let (client, url, token) = (app.client.clone(), app.url(&path), ada.access.clone());
        tokio::spawn(async move {
            let res = client.post(url).bearer_auth(token).json(&json!({"content": "long one"})).send().await.unwrap();
            read(res).await
        })
    };
    // The fast reader gets everything.
    let (frames, ai_id) = read_reply(&mut fast).await;
    let streamed = chunk_text(&frames, &ai_id);
    assert_eq!(streamed.matches('z').count(), CHUNKS * WIDTH);
    let (status, body) = sender.await.unwrap();
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["aiMessage"]["status"], "complete");

    // The slow one, reading at last, finds it was cut.
    let cut = tokio::time::timeout(Duration::from_secs(30), slow.closed()).await;
    assert_eq!(cut.expect("the slow reader was never closed"), Some(1013));
    let stored = history(&app, &ada, &session).await;
    assert_eq!(stored[1]["content"], streamed.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_rate_limited_and_floods_are_closed() {
    let app = TestApp::spawn_with(Backend::Sqlite, |c| c.specgen_rate_messages = "2/60".into()).await;
    let ada = app.register("ada@example.com").await;
    let session = shared_session(&app, &ada, &[]).await;
    let mut ws = Ws::connect_as(&app, &ada.access).await;
    ws.join(&session).await;
    for n in 0..2 {
        ws.send("send_message", json!({"sessionId": session, "content": format!("m{n}"), "aiReply": false})).await;
        ws.expect("message_created").await;
    }
    ws.send_with_id("send_message", json!({"sessionId": session, "content": "m3", "aiReply": false}), "third").await;
    let error = ws.expect("error").await;
    assert_eq!((error["data"]["code"].as_str(), error["id"].as_str()), (Some("RATE_LIMITED"), Some("third")));
    assert!(error["data"]["retryAfter"].as_u64().unwrap() >= 1, "{error}");
    assert_eq!(history(&app, &ada, &session).await.len(), 2);

    // Frames far faster than any person sends them.
    for n in 0..200 {
        ws.send_with_id("ping", json!({}), &format!("p{n}")).await;
    }
    loop {
        match ws.next().await {
            Next::Frame(f) if f["event"] == "pong" => continue,
            Next::Frame(f) => {
                assert_eq!(f["data"]["code"], "RATE_LIMITED", "{f}");
                assert!(f["id"].as_str().is_some_and(|id| id.starts_with('p')), "names the frame refused: {f}");
            }
            Next::Closed(code) => {
                assert_eq!(code, Some(4429));
                break;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_and_active_users_are_measured_and_closed_at_shutdown() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let ada = app.register("ada@example.com").await;
    let bob = app.register("bob@example.com").await;
    let mut sockets = vec![
        Ws::connect_as(&app, &ada.access).await,
        Ws::connect_as(&app, &ada.access).await,
        Ws::connect_as(&app, &bob.access).await,
    ];
    assert_eq!((app.gateway.connections(), app.gateway.active_users()), (3, 2));
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("ws_connections 3"), "{metrics}");
    assert!(metrics.contains("active_users_total 2"), "{metrics}");

    sockets.pop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!((app.gateway.connections(), app.gateway.active_users()), (2, 1));

    let closing = app.gateway.clone();
    let stopped = tokio::spawn(async move { closing.shutdown(Duration::from_secs(5)).await });
    for ws in &mut sockets {
        assert_eq!(ws.closed().await, Some(1001), "a close frame for everyone");
    }
    stopped.await.unwrap();
    assert_eq!(app.gateway.connections(), 0);
    assert!(Ws::open(&app, Some(&ada.access)).await.is_err(), "no new connections while stopping");
}

/// A reply whose instance died mid-way (nothing stops it, nothing ends it)
/// is failed by whichever instance finds it stale, here one starting on
/// the shared store, and members joined on any instance get its final
/// event instead of waiting forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_orphaned_by_a_crash_ends_for_everyone_joined() {
    use specgen_test_support::fixtures;
    let a = TestApp::spawn_with(Backend::Postgres, first_of_a_deployment).await;
    let ada = a.register("ada@example.com").await;
    let session = shared_session(&a, &ada, &[]).await;
    let mut on_a = Ws::connect_as(&a, &ada.access).await;
    on_a.join(&session).await;

    // What a crashed instance leaves behind: a reply still `streaming`,
    // last written long ago.
    let store =
        specgen_store_postgres::PgStore::connect(specgen_store_postgres::PgConfig::new(a.config.database_url.expose()))
            .unwrap()
            .store();
    let asked = fixtures::user_message(session.parse().unwrap(), ada.user_id.parse().unwrap(), "hi");
    store.messages.insert(&asked).await.unwrap();
    let mut cut = fixtures::streaming_reply(&asked, "half of it");
    cut.updated_at -= time::Duration::minutes(10);
    store.messages.insert(&cut).await.unwrap();

    // Stopping it is not acknowledged: no instance answers for it.
    let cancel = format!("/api/v1/chat/sessions/{session}/messages/{}/cancel", cut.id);
    let (status, body) = a.call(Method::POST, &cancel, Some(&ada.access), None).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "UNAVAILABLE", "{body}");

    let shared = a.config.clone();
    let _b = TestApp::spawn_with(Backend::Postgres, |c| same_deployment_as(&shared, c)).await;
    let failed = on_a.expect("message_failed").await;
    assert_eq!(failed["data"]["messageId"], cut.id.to_string(), "{failed}");
    assert_eq!(failed["data"]["content"], "half of it", "{failed}");
    assert_eq!(failed["data"]["error"]["code"], "INTERRUPTED", "{failed}");
    let stored = history(&a, &ada, &session).await;
    assert_eq!(stored.last().unwrap()["status"], "failed", "{stored:?}");
}

/// Two instances sharing Postgres and Redis: a member on each sees the
/// other's messages and whole AI stream, can stop a reply running on the
/// other instance, and can resume it there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_live_sessions_through_redis() {
    let a = TestApp::spawn_with(Backend::Postgres, |c| {
        first_of_a_deployment(c);
        slow_demo(c);
    })
    .await;
    let shared = a.config.clone();
    let b = TestApp::spawn_with(Backend::Postgres, |c| {
        same_deployment_as(&shared, c);
        slow_demo(c);
    })
    .await;
    let ada = a.register("ada@example.com").await;
    let bob = a.register("bob@example.com").await;
    let session = shared_session(&a, &ada, &["bob@example.com"]).await;
    let mut on_a = Ws::connect_as(&a, &ada.access).await;
    let mut on_b = Ws::connect_as(&b, &bob.access).await;
    on_a.join(&session).await;
    on_b.join(&session).await;
    on_a.expect("user_joined").await;

    // Ada's message, answered on A, streams to Bob on B.
    on_a.send("send_message", json!({"sessionId": session, "content": "hello from A"})).await;
    let (a_frames, ai_id) = read_reply(&mut on_a).await;
    let (b_frames, _) = read_reply(&mut on_b).await;
    assert_eq!(b_frames[0]["data"]["message"]["content"], "hello from A");
    assert_eq!(chunk_text(&b_frames, &ai_id), chunk_text(&a_frames, &ai_id));
    assert!(!chunk_text(&b_frames, &ai_id).is_empty());

    // Bob's, answered on B, streams to Ada on A.
    on_b.send("send_message", json!({"sessionId": session, "content": "hello from B"})).await;
    let (b_frames, ai_id) = read_reply(&mut on_b).await;
    let (a_frames, _) = read_reply(&mut on_a).await;
    assert_eq!(a_frames[0]["data"]["message"]["content"], "hello from B");
    assert_eq!(chunk_text(&a_frames, &ai_id), chunk_text(&b_frames, &ai_id));

    // A reply running on A, resumed on B from Redis, then stopped from B.
    on_a.send("send_message", json!({"sessionId": session, "content": "a long one please"})).await;
    let frames = on_a.until("message_chunk").await;
    let ai_id = frames.last().unwrap()["data"]["messageId"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let mut late = Ws::connect_as(&b, &bob.access).await;
    late.send("resume", json!({"sessionId": session, "messageId": ai_id, "afterSeq": 0})).await;
    let resumed = late.until("message_chunk").await;
    assert_eq!(resumed.last().unwrap()["data"]["seq"], 1, "from the first chunk");
    let mut seen = 1;
    while seen < 3 {
        let frame = late.frame().await;
        if frame["event"] == "message_chunk" {
            seen += 1;
            assert_eq!(frame["data"]["seq"], seen, "in order without gaps");
        }
    }
    late.send("stop_generation", json!({"sessionId": session, "messageId": ai_id})).await;
    let ended = on_a.until("message_cancelled").await;
    assert_eq!(ended.last().unwrap()["data"]["messageId"], ai_id.as_str());
    let ended = late.until("message_cancelled").await;
    assert_eq!(ended.last().unwrap()["data"]["messageId"], ai_id.as_str());
    let stored = history(&b, &bob, &session).await;
    let reply = stored.iter().find(|m| m["id"] == ai_id.as_str()).unwrap();
    assert_eq!(reply["status"], "cancelled", "{stored:#?}");

    // Stopped from B over HTTP by the user message's id, which B's store
    // leads to the reply running on A.
    on_a.send("send_message", json!({"sessionId": session, "content": "another long one"})).await;
    let frames = on_a.until("message_chunk").await;
    let asked = frames
        .iter()
        .find(|f| f["event"] == "message_created" && f["data"]["message"]["role"] == "user")
        .map(|f| f["data"]["message"]["id"].as_str().unwrap().to_owned())
        .unwrap();
    let ai_id = frames.last().unwrap()["data"]["messageId"].as_str().unwrap().to_owned();
    let cancel = format!("/api/v1/chat/sessions/{session}/messages/{asked}/cancel");
    let (status, body) = b.call(Method::POST, &cancel, Some(&bob.access), None).await;
    assert_eq!(status, 200, "a reply running on the other instance: {body}");
    let ended = on_a.until("message_cancelled").await;
    assert_eq!(ended.last().unwrap()["data"]["messageId"], ai_id.as_str());
    let (status, body) = b.call(Method::POST, &cancel, Some(&bob.access), None).await;
    assert_eq!(status, 409, "now it has ended: {body}");
}

/// A session deleted through one instance stops its reply running on
/// another: the stop request travels on the bus.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_session_stops_its_reply_on_another_instance() {
    let slow = FakeUpstream::start(
        FakeWire::Anthropic,
        FakeBehaviour::Success {
            chunks: (0..200).map(|i| format!("w{i} ")).collect(),
            chunk_delay: Duration::from_millis(20),
        },
    )
    .await;
    let base = slow.base_url();
    let a = TestApp::spawn_with(Backend::Postgres, |c| {
        first_of_a_deployment(c);
        use_fake_claude(c, base);
    })
    .await;
    let shared = a.config.clone();
    let b = TestApp::spawn_with(Backend::Postgres, |c| same_deployment_as(&shared, c)).await;
    let ada = a.register("ada@example.com").await;
    let session = shared_session(&a, &ada, &[]).await;
    let mut on_a = Ws::connect_as(&a, &ada.access).await;
    on_a.send("send_message", json!({"sessionId": session, "content": "go on and on"})).await;
    on_a.until("message_chunk").await;

    let (status, body) =
        b.call(Method::DELETE, &format!("/api/v1/chat/sessions/{session}"), Some(&ada.access), None).await;
    assert_eq!(status, 200, "{body}");
    assert!(slow.wait_for_peer_close(Duration::from_secs(2)).await, "the upstream request on A was aborted");
}

/// Presence over two instances sharing Redis: Bob's tabs on A and on B are
/// one person, who arrives once and leaves once, whichever tab goes first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_counts_people_across_instances() {
    let a = TestApp::spawn_with(Backend::Postgres, first_of_a_deployment).await;
    let shared = a.config.clone();
    let b = TestApp::spawn_with(Backend::Postgres, |c| same_deployment_as(&shared, c)).await;
    let ada = a.register("ada@example.com").await;
    let bob = a.register("bob@example.com").await;
    let session = shared_session(&a, &ada, &["bob@example.com"]).await;
    let mut watcher = Ws::connect_as(&a, &ada.access).await;
    watcher.join(&session).await;

    let mut on_a = Ws::connect_as(&a, &bob.access).await;
    on_a.join(&session).await;
    assert_eq!(watcher.expect("user_joined").await["data"]["userId"], bob.user_id.as_str());
    let mut on_b = Ws::connect_as(&b, &bob.access).await;
    on_b.join(&session).await;
    watcher.silent_for(Duration::from_millis(300)).await;
    // His tab on A goes first: he is still there, on B.
    drop(on_a);
    watcher.silent_for(Duration::from_millis(300)).await;
    on_b.send("leave_session", json!({"sessionId": session})).await;
    assert_eq!(watcher.expect("user_left").await["data"]["userId"], bob.user_id.as_str());

    // Back on B first, then A: one arrival; B's tab going is not a departure.
    let mut on_b = Ws::connect_as(&b, &bob.access).await;
    on_b.join(&session).await;
    assert_eq!(watcher.expect("user_joined").await["data"]["userId"], bob.user_id.as_str());
    let mut on_a = Ws::connect_as(&a, &bob.access).await;
    on_a.join(&session).await;
    drop(on_b);
    watcher.silent_for(Duration::from_millis(300)).await;
    drop(on_a);
    assert_eq!(watcher.expect("user_left").await["data"]["userId"], bob.user_id.as_str());
}

for_both_stores!(
    upgrade_and_first_frame_authenticate,
    bad_frames_get_errors_and_the_connection_stays_usable,
    members_see_each_other_and_the_ai_stream_live,
    presence_counts_people_not_tabs,
    tabs_joining_at_once_do_not_hear_of_themselves,
    a_failed_resume_joins_nothing,
    strangers_cannot_join_post_stop_or_resume,
    a_removed_member_stops_hearing_the_session,
    a_deleted_account_stops_hearing_its_sessions,
    stop_generation_cancels_for_everyone,
    resume_after_a_dropped_socket_is_exact,
    join_then_resume_sends_nothing_twice,
);
