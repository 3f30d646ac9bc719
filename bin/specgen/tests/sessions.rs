//! Sessions and participants over real HTTP, against both stores; the
//! access rule (non-participants get 404 for everything about a session).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Account, Backend, TestApp, assert_error, use_redis};
use reqwest::Method;
use serde_json::{Value, json};

const SESSIONS: &str = "/api/v1/chat/sessions";

async fn create(app: &TestApp, who: &Account, body: Value) -> Value {
    let (status, body) = app.call(Method::POST, SESSIONS, Some(&who.access), Some(&body)).await;
    assert_eq!(status, 201, "{body}");
    body["data"].clone()
}

fn session_path(session: &Value) -> String {
    format!("{SESSIONS}/{}", session["id"].as_str().unwrap())
}

async fn create_get_patch_delete(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.register("owner@example.com").await;
    let session = create(
        &app,
        &owner,
        json!({"title": "  Plans  ", "systemPrompt": "Be brief.", "provider": "demo", "model": "demo"}),
    )
    .await;
    assert_eq!(session["title"], "Plans");
    assert_eq!(session["ownerId"], owner.user_id.as_str());
    assert_eq!(session["lastMessageAt"], Value::Null);
    let untitled = create(&app, &owner, json!({})).await;
    assert_eq!(untitled["title"], "New chat");

    let path = session_path(&session);
    let (status, got) = app.get_as(&path, &owner.access).await;
    assert_eq!(status, 200);
    assert_eq!(got["data"]["participants"][0]["role"], "owner");
    assert_eq!(got["data"]["participants"][0]["userId"], owner.user_id.as_str());
    assert_eq!(got["data"]["systemPrompt"], "Be brief.");

    let (status, patched) = app
        .call(Method::PATCH, &path, Some(&owner.access), Some(&json!({"title": "Renamed", "systemPrompt": null})))
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["data"]["title"], "Renamed");
    assert_eq!(patched["data"]["systemPrompt"], Value::Null);
    assert_eq!(patched["data"]["provider"], "demo", "absent fields stay");

    let (status, body) =
        app.call(Method::PATCH, &path, Some(&owner.access), Some(&json!({"title": "", "provider": "gpt"}))).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"].as_array().unwrap().len(), 2);
    // A provider this server has not enabled, as when sending a message.
    for (method, at) in [(Method::POST, SESSIONS), (Method::PATCH, path.as_str())] {
        let (status, body) = app.call(method, at, Some(&owner.access), Some(&json!({"provider": "openai"}))).await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(assert_error(&body, "VALIDATION_FAILED")["details"][0]["field"], "provider");
    }
    let (_, got) = app.get_as(&path, &owner.access).await;
    assert_eq!(got["data"]["provider"], "demo", "a refused change changes nothing");

    let (status, _) = app.call(Method::DELETE, &path, Some(&owner.access), None).await;
    assert_eq!(status, 200);
    let (status, body) = app.get_as(&path, &owner.access).await;
    assert_eq!(status, 404);
    assert_error(&body, "NOT_FOUND");
}

async fn list_is_paged_most_recent_first(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.register("lister@example.com").await;
    let mut made = Vec::new();
    for i in 0..5 {
        made.push(create(&app, &owner, json!({"title": format!("s{i}")})).await["id"].as_str().unwrap().to_owned());
        app.clock.advance(time::Duration::seconds(1));
    }
    let (status, first) = app.get_as(&format!("{SESSIONS}?limit=2"), &owner.access).await;
    assert_eq!(status, 200, "{first}");
    let ids = |page: &Value| {
        page["data"]["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&first), [made[4].clone(), made[3].clone()]);
    let cursor = first["data"]["nextCursor"].as_str().unwrap();
    let (_, second) = app.get_as(&format!("{SESSIONS}?limit=2&cursor={cursor}"), &owner.access).await;
    assert_eq!(ids(&second), [made[2].clone(), made[1].clone()]);
    let cursor = second["data"]["nextCursor"].as_str().unwrap();
    let (_, last) = app.get_as(&format!("{SESSIONS}?limit=2&cursor={cursor}"), &owner.access).await;
    assert_eq!(ids(&last), [made[0].clone()]);
    assert_eq!(last["data"]["nextCursor"], Value::Null);

    let bad_queries = [
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?limit=ten", "limit"),
        ("?limit=5&limit=6", "limit"),
        ("?cursor=a&limit=5&cursor=b", "cursor"),
        ("?cursor=garbage", "cursor"),
    ];
    for (bad, field) in bad_queries {
        let (status, body) = app.get_as(&format!("{SESSIONS}{bad}"), &owner.access).await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert_eq!(assert_error(&body, "VALIDATION_FAILED")["details"][0]["field"], field, "{bad}");
    }
}

async fn participants_join_leave_and_access_rule(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let owner = app.register("host@example.com").await;
    let member = app.register("guest@example.com").await;
    let stranger = app.register("stranger@example.com").await;
    let session = create(&app, &owner, json!({"title": "Shared"})).await;
    let path = session_path(&session);

    // A stranger learns nothing: 404 for reading, changing, deleting, joining.
    for (method, sub, body) in [
        (Method::GET, "", None),
        (Method::PATCH, "", Some(json!({"title": "mine"}))),
        (Method::DELETE, "", None),
        (Method::POST, "/participants", Some(json!({"email": "stranger@example.com"}))),
    ] {
        let (status, body) =
            app.call(method.clone(), &format!("{path}{sub}"), Some(&stranger.access), body.as_ref()).await;
        assert_eq!(status, 404, "{method} {sub}: {body}");
        assert_error(&body, "NOT_FOUND");
    }

    let participants = format!("{path}/participants");
    let (status, added) =
        app.call(Method::POST, &participants, Some(&owner.access), Some(&json!({"email": "GUEST@example.com"}))).await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["data"]["role"], "member");
    assert_eq!(added["data"]["userId"], member.user_id.as_str());
    let (status, body) =
        app.call(Method::POST, &participants, Some(&owner.access), Some(&json!({"email": "guest@example.com"}))).await;
    assert_eq!(status, 409);
    assert_error(&body, "CONFLICT");
    let (status, body) =
        app.call(Method::POST, &participants, Some(&owner.access), Some(&json!({"email": "nobody@example.com"}))).await;
    assert_eq!(status, 404);
    assert_error(&body, "NOT_FOUND");

    // The member sees it, but may not change it.
    let (status, listed) = app.get_as(SESSIONS, &member.access).await;
    assert_eq!(status, 200);
    assert_eq!(listed["data"]["items"][0]["id"], session["id"]);
    let (status, body) = app.call(Method::PATCH, &path, Some(&member.access), Some(&json!({"title": "mine"}))).await;
    assert_eq!(status, 403);
    assert_error(&body, "FORBIDDEN");
    let (status, body) =
        app.call(Method::DELETE, &format!("{participants}/{}", owner.user_id), Some(&member.access), None).await;
    assert_eq!(status, 403, "a member removes nobody but themself: {body}");
    assert_error(&body, "FORBIDDEN");
    let (status, body) =
        app.call(Method::DELETE, &format!("{participants}/{}", owner.user_id), Some(&owner.access), None).await;
    assert_eq!(status, 409, "the owner cannot leave: {body}");

    // The member leaves; then it is a stranger too.
    let (status, _) =
        app.call(Method::DELETE, &format!("{participants}/{}", member.user_id), Some(&member.access), None).await;
    assert_eq!(status, 200);
    assert_eq!(app.get_as(&path, &member.access).await.0, 404);
}

for_both_stores!(create_get_patch_delete, list_is_paged_most_recent_first, participants_join_leave_and_access_rule);

/// Two instances on one Postgres and one Redis: a member removed through one
/// is refused by the other at once (the shared cache was invalidated), and
/// each sees the other's new sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_cache_and_its_invalidation() {
    let namespace = format!("specgen-test-{}", uuid::Uuid::now_v7().simple());
    let ns = namespace.clone();
    let a = TestApp::spawn_with(Backend::Postgres, |c| {
        use_redis(c);
        c.specgen_redis_namespace = ns;
        c.jwt_secret = Some(specgen::config::Secret::new("shared-between-instances-0123456789".into()));
    })
    .await;
    let url = a.database_url().unwrap();
    let b = TestApp::spawn_with(Backend::Postgres, |c| {
        use_redis(c);
        c.specgen_redis_namespace = namespace;
        c.jwt_secret = Some(specgen::config::Secret::new("shared-between-instances-0123456789".into()));
        c.database_url = specgen::config::ConnectionUrl::new(url);
    })
    .await;
    let owner = a.register("two-owner@example.com").await;
    let member = a.register("two-member@example.com").await;
    let session = create(&a, &owner, json!({"title": "Both"})).await;
    let path = session_path(&session);
    let (status, _) = a
        .call(
            Method::POST,
            &format!("{path}/participants"),
            Some(&owner.access),
            Some(&json!({"email": "two-member@example.com"})),
        )
        .await;
    assert_eq!(status, 201);
    // Warm both the session entry and the member's list through instance B.
    assert_eq!(b.get_as(&path, &member.access).await.0, 200);
    let (_, listed) = b.get_as(SESSIONS, &member.access).await;
    assert_eq!(listed["data"]["items"].as_array().unwrap().len(), 1);
    let (status, _) = b
        .call(
            Method::POST,
            &format!("{path}/messages"),
            Some(&member.access),
            Some(&json!({"content": "hi", "aiReply": false})),
        )
        .await;
    assert_eq!(status, 201, "the cached access check lets the member post");

    let (status, _) =
        a.call(Method::DELETE, &format!("{path}/participants/{}", member.user_id), Some(&owner.access), None).await;
    assert_eq!(status, 200);
    let (status, body) = b
        .call(
            Method::POST,
            &format!("{path}/messages"),
            Some(&member.access),
            Some(&json!({"content": "still here?", "aiReply": false})),
        )
        .await;
    assert_eq!(status, 404, "instance B refuses at once: {body}");
    let (_, listed) = b.get_as(SESSIONS, &member.access).await;
    assert!(listed["data"]["items"].as_array().unwrap().is_empty(), "the member's cached list was dropped too");

    let other = create(&b, &owner, json!({"title": "Made on B"})).await;
    let (_, listed) = a.get_as(SESSIONS, &owner.access).await;
    assert_eq!(listed["data"]["items"][0]["id"], other["id"]);
}
