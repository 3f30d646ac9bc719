//! Bad input over real HTTP, against both stores: what schemathesis
//! (`.ci/schemathesis.sh`) and a review behind it found, each pinned here so
//! that it stays fixed without a fuzzer run. The answers must be the
//! contract's: a 4xx envelope naming the field as the client spelled it,
//! never a 500, and an OpenAPI document that lists every status the server
//! gives.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine as _;
use common::{Backend, TestApp, assert_error, read};
use reqwest::Method;
use serde_json::{Value, json};

const SESSIONS: &str = "/api/v1/chat/sessions";

/// A cursor in the server's format (`<unix micros>.<uuid>`, base64url) at an
/// instant of the client's choosing.
/// A cursor as the server encodes one for `list` (`sessions`, or a session's
/// id for its messages).
fn cursor_at(list: &str, unix_micros: i64) -> String {
    let raw = format!("{list}~{unix_micros}.{}", uuid::Uuid::now_v7().simple());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// A forged cursor from before 4713 BC used to reach Postgres, which refuses
/// such a `timestamptz`, and come back as a 500. The server never issues a
/// cursor before the Unix epoch, so it is a bad cursor: 422 on both stores.
async fn forged_cursor_from_antiquity_is_422(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let me = app.register("cursor@example.com").await;
    for _ in 0..2 {
        let (status, body) = app.call(Method::POST, SESSIONS, Some(&me.access), Some(&json!({}))).await;
        assert_eq!(status, 201, "{body}");
    }
    let (_, first) = app.get_as(&format!("{SESSIONS}?limit=1"), &me.access).await;
    let session = first["data"]["items"][0]["id"].as_str().unwrap().to_owned();

    // Year -5000, year -1 and one microsecond before the epoch.
    for micros in [-220_000_000_000_000_000, -62_200_000_000_000_000, -1] {
        let (of_sessions, of_messages) =
            (cursor_at(&format!("sessions of {}", me.user_id), micros), cursor_at(&session, micros));
        for path in
            [format!("{SESSIONS}?cursor={of_sessions}"), format!("{SESSIONS}/{session}/messages?cursor={of_messages}")]
        {
            let (status, body) = app.get_as(&path, &me.access).await;
            assert_eq!(status, 422, "{path}: {body}");
            assert_eq!(assert_error(&body, "VALIDATION_FAILED")["details"][0]["field"], "cursor", "{body}");
        }
    }

    // A cursor the server did issue still pages on.
    let next = first["data"]["nextCursor"].as_str().expect("two sessions, one per page: a next page");
    let (status, body) = app.get_as(&format!("{SESSIONS}?limit=1&cursor={next}"), &me.access).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["items"].as_array().unwrap().len(), 1, "{body}");

    // A cursor is good only for the list that issued it.
    let other = first["data"]["items"][0]["id"].as_str().unwrap().to_owned();
    let (_, page) = app.get_as(&format!("{SESSIONS}?limit=1&cursor={next}"), &me.access).await;
    let session = page["data"]["items"][0]["id"].as_str().unwrap().to_owned();
    assert_ne!(session, other);
    let messages = format!("{SESSIONS}/{session}/messages");
    for n in 0..2 {
        let body = json!({"content": format!("m{n}"), "aiReply": false});
        assert_eq!(app.call(Method::POST, &messages, Some(&me.access), Some(&body)).await.0, 201);
    }
    let (_, history) = app.get_as(&format!("{messages}?limit=1"), &me.access).await;
    let of_messages = history["data"]["nextCursor"].as_str().expect("two messages, one per page").to_owned();
    let misused = [
        format!("{SESSIONS}/{session}/messages?cursor={next}"),
        format!("{SESSIONS}?cursor={of_messages}"),
        format!("{SESSIONS}/{other}/messages?cursor={of_messages}"),
    ];
    for path in misused {
        let (status, body) = app.get_as(&path, &me.access).await;
        assert_eq!(status, 422, "{path}: {body}");
        assert_eq!(assert_error(&body, "VALIDATION_FAILED")["details"][0]["field"], "cursor", "{body}");
    }
    // Another user's list of sessions is another list.
    let stranger = app.register("stranger@example.com").await;
    let (status, body) = app.get_as(&format!("{SESSIONS}?cursor={next}"), &stranger.access).await;
    assert_eq!(status, 422, "{body}");
    let (status, older) = app.get_as(&format!("{messages}?limit=1&cursor={of_messages}"), &me.access).await;
    assert_eq!(status, 200);
    assert_eq!(older["data"]["items"][0]["content"], "m0", "{older}");
}

/// Postgres's `jsonb` cannot hold U+0000: a NUL in a preference, key or
/// value, used to fail the write with a 500 there (and pass on SQLite).
async fn preferences_with_nul_are_422_and_change_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let me = app.register("prefs@example.com").await;
    let path = "/api/v1/users/me/profile";
    let (status, body) =
        app.call(Method::PATCH, path, Some(&me.access), Some(&json!({"preferences": {"theme": "dark"}}))).await;
    assert_eq!(status, 200, "{body}");

    for preferences in [json!({"theme": "x\u{0}y"}), json!({"a\u{0}": 1}), json!({"deep": [{"list": ["\u{0}"]}]})] {
        let (status, body) = app
            .call(Method::PATCH, path, Some(&me.access), Some(&json!({"preferences": preferences, "bio": "changed"})))
            .await;
        assert_eq!(status, 422, "{preferences}: {body}");
        assert_eq!(assert_error(&body, "VALIDATION_FAILED")["details"][0]["field"], "preferences", "{body}");
    }
    let (_, me_now) = app.get_as("/api/v1/users/me", &me.access).await;
    assert_eq!(me_now["data"]["profile"]["preferences"], json!({"theme": "dark"}), "{me_now}");
    assert_eq!(me_now["data"]["profile"]["bio"], "", "a refused patch changes no field: {me_now}");

    // Other control characters are not a problem for either store.
    let (status, body) =
        app.call(Method::PATCH, path, Some(&me.access), Some(&json!({"preferences": {"sep": "a\u{1}b\tc"}}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["preferences"]["sep"], "a\u{1}b\tc");
}

/// Field rules reported their Rust names (`display_name`, `client_message_id`)
/// where the client sent camelCase, so the web client could not put the
/// message next to its input.
async fn details_name_fields_as_sent(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let me = app.register("fields@example.com").await;
    let (_, session) = app.call(Method::POST, SESSIONS, Some(&me.access), Some(&json!({}))).await;
    let messages = format!("{SESSIONS}/{}/messages", session["data"]["id"].as_str().unwrap());
    let cases = [
        (Method::PATCH, "/api/v1/users/me/profile".to_owned(), json!({"displayName": "x"}), "displayName"),
        (Method::POST, SESSIONS.to_owned(), json!({"systemPrompt": "a\u{7}"}), "systemPrompt"),
        (Method::POST, messages, json!({"content": "hi", "clientMessageId": ""}), "clientMessageId"),
        (
            Method::PUT,
            "/api/v1/users/me/password".to_owned(),
            json!({"currentPassword": common::PASSWORD, "newPassword": "short"}),
            "newPassword",
        ),
        (Method::POST, "/api/v1/auth/refresh".to_owned(), json!({"refreshToken": ""}), "refreshToken"),
        (
            Method::POST,
            "/api/v1/auth/login".to_owned(),
            json!({"email": "fields@example.com", "password": "whatever", "deviceId": ""}),
            "deviceId",
        ),
    ];
    for (method, path, body, field) in cases {
        let (status, answer) = app.call(method.clone(), &path, Some(&me.access), Some(&body)).await;
        assert_eq!(status, 422, "{method} {path} {body}: {answer}");
        let details = assert_error(&answer, "VALIDATION_FAILED")["details"].clone();
        let fields: Vec<&str> = details.as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
        assert_eq!(fields, [field], "{method} {path}: {answer}");
    }
}

/// `details` names every failing field even when some have the wrong JSON
/// type (serde alone stops at the first), and only an object is a body
/// (serde alone fills a struct from an array, by position).
async fn every_failing_field_is_named_and_only_objects_are_bodies(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let me = app.register("every@example.com").await;
    let (_, session) = app.call(Method::POST, SESSIONS, Some(&me.access), Some(&json!({}))).await;
    let messages = format!("{SESSIONS}/{}/messages", session["data"]["id"].as_str().unwrap());
    let cases = [
        (
            messages.as_str(),
            json!({"content": 5, "aiReply": "x", "clientMessageId": 3}),
            vec!["aiReply", "clientMessageId", "content"],
        ),
        (messages.as_str(), json!({"content": "", "model": "", "aiReply": "x"}), vec!["aiReply", "content", "model"]),
        (SESSIONS, json!({"title": [], "systemPrompt": 1, "provider": 2}), vec!["provider", "systemPrompt", "title"]),
        (SESSIONS, json!(["hello", "sp", "demo", "m"]), vec!["body"]),
        ("/api/v1/auth/register", json!({}), vec!["email", "name", "password"]),
        ("/api/v1/auth/register", json!({"email": "bad", "password": "Passw0rdX"}), vec!["email", "name"]),
        ("/api/v1/auth/register", json!({"email": 5}), vec!["email", "name", "password"]),
        (messages.as_str(), json!({}), vec!["content"]),
        (messages.as_str(), json!(["hello"]), vec!["body"]),
    ];
    for (path, body, expected) in cases {
        let (status, answer) = app.call(Method::POST, path, Some(&me.access), Some(&body)).await;
        assert_eq!(status, 422, "{path} {body}: {answer}");
        let details = assert_error(&answer, "VALIDATION_FAILED")["details"].clone();
        let mut fields: Vec<&str> = details.as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
        fields.sort_unstable();
        assert_eq!(fields, expected, "{path} {body}: {answer}");
        assert!(!answer.to_string().contains("Request"), "no Rust type names: {answer}");
    }
    let (_, listed) = app.get_as(SESSIONS, &me.access).await;
    assert_eq!(listed["data"]["items"].as_array().unwrap().len(), 1, "no session was made: {listed}");
    let (_, history) = app.get_as(&messages, &me.access).await;
    assert_eq!(history["data"]["items"], json!([]), "no message was stored");
}

/// The document describes logout's optional body as "the object or null";
/// a `null` body was refused with 422.
async fn logout_takes_a_null_body(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let me = app.register("null@example.com").await;
    let res = app
        .client
        .post(app.url("/api/v1/auth/logout"))
        .bearer_auth(&me.access)
        .header("content-type", "application/json")
        .body("null")
        .send()
        .await
        .unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, 200, "{body}");
    // As without a body: the calling login's refresh token is revoked.
    let (status, body) = app.post_json("/api/v1/auth/refresh", &json!({"refreshToken": me.refresh})).await;
    assert_eq!(status, 401, "{body}");
}

/// RFC 9110 requires `Allow` on a 405; the server sent none.
async fn method_not_allowed_lists_the_allowed_methods(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = uuid::Uuid::now_v7();
    let cases = [
        (Method::PUT, format!("{SESSIONS}/{id}"), vec!["DELETE", "GET", "HEAD", "PATCH"]),
        (Method::DELETE, format!("{SESSIONS}/{id}/participants"), vec!["POST"]),
        (Method::POST, "/api/v1/users/me".to_owned(), vec!["DELETE", "GET", "HEAD"]),
        (Method::TRACE, "/health/live".to_owned(), vec!["GET", "HEAD"]),
        (Method::POST, "/metrics".to_owned(), vec!["GET", "HEAD"]),
        (Method::DELETE, "/api/openapi.json".to_owned(), vec!["GET", "HEAD"]),
    ];
    for (method, path, expected) in cases {
        let res = app.request(method.clone(), &path).await.send().await.unwrap();
        let allow = res.headers().get("allow").map(|v| v.to_str().unwrap().to_owned());
        let (status, body) = read(res).await;
        assert_eq!(status, 405, "{method} {path}: {body}");
        assert_error(&body, "METHOD_NOT_ALLOWED");
        let allow = allow.unwrap_or_else(|| panic!("{method} {path}: no Allow header"));
        let mut methods: Vec<&str> = allow.split(',').map(str::trim).collect();
        methods.sort_unstable();
        assert_eq!(methods, expected, "{method} {path}");
    }
}

/// `HEAD` answers as `GET` does, headers and all, without the body
/// (RFC 9110 asks every server for both): a monitor's `HEAD /health/live`,
/// `curl -I` on an API path.
async fn head_is_get_without_the_body(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let me = app.register("head@example.com").await;
    for (path, token, status) in [
        ("/health/live", None, 200),
        ("/api/v1/users/me", Some(&me.access), 200),
        ("/api/v1/users/me", None, 401),
        ("/api/v1/chat/sessions?limit=0", Some(&me.access), 422),
    ] {
        let head = |method: Method| {
            let request = app.client.request(method, app.url(path));
            match token {
                Some(token) => request.bearer_auth(token),
                None => request,
            }
        };
        let got = head(Method::GET).send().await.unwrap();
        let res = head(Method::HEAD).send().await.unwrap();
        assert_eq!(res.status(), status, "HEAD {path}");
        assert_eq!(got.status(), status, "GET {path}");
        assert_eq!(res.headers()["content-type"], got.headers()["content-type"], "HEAD {path}");
        assert!(res.headers().contains_key("x-request-id"), "HEAD {path}");
        assert!(res.bytes().await.unwrap().is_empty(), "HEAD {path} sent a body");
    }
    // Where there is no GET, there is no HEAD either.
    let res = app.client.head(app.url("/api/v1/auth/login")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "POST");
}

/// Every status an operation can answer because of what it takes is in the
/// served document: clients and fuzzers saw 400, 401, 413, 415 and 422
/// answers the document did not list.
async fn openapi_lists_the_errors_every_operation_can_answer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, doc) = read(app.get("/api/openapi.json").await).await;
    assert_eq!(status, 200);
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let responses = operation["responses"].as_object().unwrap();
            let has = |status: &str| responses.contains_key(status);
            let protected = operation["security"].as_array().is_some_and(|s| !s.is_empty());
            let params =
                |place: &str| operation["parameters"].as_array().is_some_and(|p| p.iter().any(|p| p["in"] == place));
            let what = format!("{method} {path}");
            if protected {
                assert!(has("401"), "{what} lacks 401");
            }
            if operation.get("requestBody").is_some() {
                for status in ["400", "413", "415", "422"] {
                    assert!(has(status), "{what} lacks {status}");
                }
            }
            if params("query") {
                assert!(has("422"), "{what} lacks its query errors");
            }
            if params("path") {
                assert!(has("404"), "{what} lacks 404");
            }
            if path.starts_with("/api/") {
                assert!(has("503"), "{what} lacks 503");
            }
            for (status, response) in responses {
                let described = response["description"].as_str().is_some_and(|d| !d.is_empty());
                assert!(described, "{what} {status} has no description (OpenAPI requires one)");
            }
            checked += 1;
        }
    }
    assert!(checked >= 22, "only {checked} operations in the document");

    // And the server gives them: no token, a body of the wrong media type.
    let (status, _) = app.call(Method::GET, "/api/v1/users/me", None, None).await;
    assert_eq!(status, 401);
    let res = app.client.post(app.url("/api/v1/auth/register")).body("x").send().await.unwrap();
    let (status, body): (u16, Value) = read(res).await;
    assert_eq!(status, 415, "{body}");
}

/// A message sent with `Accept: text/event-stream` answers 200 with an event
/// stream; the document listed only JSON for that status.
async fn the_event_stream_answer_is_documented(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (_, doc) = read(app.get("/api/openapi.json").await).await;
    let documented = &doc["paths"]["/api/v1/chat/sessions/{id}/messages"]["post"]["responses"]["200"]["content"];
    let me = app.register("sse-doc@example.com").await;
    let (_, session) = app.call(Method::POST, SESSIONS, Some(&me.access), Some(&json!({}))).await;
    let res = app
        .client
        .post(app.url(&format!("{SESSIONS}/{}/messages", session["data"]["id"].as_str().unwrap())))
        .bearer_auth(&me.access)
        .header("accept", "text/event-stream")
        .json(&json!({"content": "hello", "aiReply": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    let media_type = content_type.split(';').next().unwrap().trim();
    assert!(documented.get(media_type).is_some(), "{media_type} not among {documented}");
}

/// The largest doubles are stored by Postgres in full decimal and could not
/// be read back: refused on both stores, and the profile stays readable.
async fn preferences_with_numbers_beyond_a_double_are_422(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let me = app.register("numbers@example.com").await;
    let path = "/api/v1/users/me/profile";
    let (status, body) = app
        .call(Method::PATCH, path, Some(&me.access), Some(&json!({"preferences": {"n": 1.797_693_134_862_315_7e308}})))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(assert_error(&body, "VALIDATION_FAILED")["details"][0]["field"], "preferences", "{body}");
    let (status, body) =
        app.call(Method::PATCH, path, Some(&me.access), Some(&json!({"preferences": {"n": 1.5e307}}))).await;
    assert_eq!(status, 200, "{body}");
    let (status, me_now) = app.get_as("/api/v1/users/me", &me.access).await;
    assert_eq!(status, 200, "{me_now}");
    assert_eq!(me_now["data"]["profile"]["preferences"]["n"], json!(1.5e307));
}

/// What HTTP itself asks of the answers, from an audit by a client written
/// to the contract: a JSON body in another charset is refused and creates
/// nothing; a 401 says it wants a bearer token; no answer carrying a user's
/// data may be stored by a cache; every error has its `details`, empty but
/// for a 422.
async fn answers_keep_to_http(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let me = app.register("http-rules@example.com").await;
    let create = |content_type: &'static str| {
        app.client.post(app.url(SESSIONS)).bearer_auth(&me.access).header("content-type", content_type).body("{}")
    };
    let (status, body) = read(create("application/json; charset=iso-8859-1").send().await.unwrap()).await;
    assert_eq!(status, 415, "{body}");
    assert_error(&body, "UNSUPPORTED_MEDIA_TYPE");
    let (_, list) = app.get_as(SESSIONS, &me.access).await;
    assert_eq!(list["data"]["items"], json!([]), "a refused body creates nothing");
    let (status, body) = read(create("application/json; charset=UTF-8").send().await.unwrap()).await;
    assert_eq!(status, 201, "{body}");

    let res = app.get("/api/v1/users/me").await;
    assert_eq!(res.status(), 401);
    let challenge = res.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
    assert!(challenge.as_deref().is_some_and(|c| c.starts_with("Bearer ")), "{challenge:?}");
    assert_eq!(res.headers()["cache-control"], "no-store");
    let (_, body) = read(res).await;
    assert_eq!(assert_error(&body, "UNAUTHENTICATED")["details"], json!([]), "{body}");

    let res = app.client.get(app.url(SESSIONS)).bearer_auth(&me.access).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
}

/// A request with no body is one with no fields: a bare `POST` creates a
/// session with every default, a bare `PATCH` changes nothing (nor
/// `updatedAt`), and where fields are required the 422 names them all
/// instead of a 415 about a body that was never sent.
async fn no_body_is_no_fields(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let me = app.register("no-body@example.com").await;
    let res = app.client.post(app.url(SESSIONS)).bearer_auth(&me.access).send().await.unwrap();
    let (status, created) = read(res).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["data"]["title"], "New chat", "{created}");
    let path = format!("{SESSIONS}/{}", created["data"]["id"].as_str().unwrap());

    for patch in [None, Some(json!({})), Some(json!({"title": "New chat"}))] {
        app.clock.advance(time::Duration::seconds(1));
        let mut request = app.client.patch(app.url(&path)).bearer_auth(&me.access);
        if let Some(body) = &patch {
            request = request.json(body);
        }
        let (status, body) = read(request.send().await.unwrap()).await;
        assert_eq!(status, 200, "{patch:?}: {body}");
        assert_eq!(body["data"]["updatedAt"], created["data"]["updatedAt"], "{patch:?} changed nothing: {body}");
    }
    app.clock.advance(time::Duration::seconds(1));
    let (status, body) = app.call(Method::PATCH, &path, Some(&me.access), Some(&json!({"title": "Renamed"}))).await;
    assert_eq!(status, 200, "{body}");
    assert_ne!(body["data"]["updatedAt"], created["data"]["updatedAt"], "a real change moves updatedAt: {body}");

    let (_, before) = app.get_as("/api/v1/users/me", &me.access).await;
    app.clock.advance(time::Duration::seconds(1));
    let res = app.client.patch(app.url("/api/v1/users/me/profile")).bearer_auth(&me.access).send().await.unwrap();
    let (status, profile) = read(res).await;
    assert_eq!(status, 200, "{profile}");
    assert_eq!(profile["data"], before["data"]["profile"], "a bare PATCH changes nothing: {profile}");

    let res = app.client.post(app.url("/api/v1/auth/register")).send().await.unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, 422, "{body}");
    let error = assert_error(&body, "VALIDATION_FAILED");
    let fields: Vec<&str> = error["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
    for field in ["email", "password", "name"] {
        assert!(fields.contains(&field), "{field} not named: {body}");
    }
}

for_both_stores!(
    head_is_get_without_the_body,
    no_body_is_no_fields,
    answers_keep_to_http,
    preferences_with_numbers_beyond_a_double_are_422,
    forged_cursor_from_antiquity_is_422,
    preferences_with_nul_are_422_and_change_nothing,
    details_name_fields_as_sent,
    every_failing_field_is_named_and_only_objects_are_bodies,
    logout_takes_a_null_body,
    method_not_allowed_lists_the_allowed_methods,
    openapi_lists_the_errors_every_operation_can_answer,
    the_event_stream_answer_is_documented,
);
