//! Accounts over real HTTP, against both stores: registration, sign-in on
//! many devices, token rotation and reuse, sign-out, profile, password
//! change, deletion, rate limits, and bad input on real endpoints.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Account, Backend, PASSWORD, TestApp, assert_error, read};
use reqwest::Method;
use serde_json::{Value, json};

const ME: &str = "/api/v1/users/me";

async fn refresh(app: &TestApp, token: &str) -> (u16, Value) {
    app.post_json("/api/v1/auth/refresh", &json!({"refreshToken": token})).await
}

fn without_request_id(mut body: Value) -> Value {
    body["error"]["requestId"] = Value::Null;
    body
}

async fn register_and_read_me(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"email": "Ada@Example.COM", "password": PASSWORD, "name": "  Ada  "}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let data = &body["data"];
    assert_eq!(data["user"]["email"], "ada@example.com");
    assert_eq!(data["user"]["name"], "Ada");
    assert_eq!(data["tokens"]["tokenType"], "Bearer");
    assert_eq!(data["tokens"]["expiresIn"], 900);
    assert!(body["data"]["user"].get("passwordHash").is_none());
    let account = Account::from_auth(data);

    let (status, me) = app.get_as(ME, &account.access).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["data"]["id"], account.user_id.as_str());
    assert_eq!(me["data"]["profile"]["displayName"], "Ada");
    assert_eq!(me["data"]["profile"]["timezone"], "UTC");
    assert_eq!(me["data"]["profile"]["preferences"], json!({}));

    let (status, body) = app.call(Method::GET, ME, None, None).await;
    assert_eq!(status, 401);
    assert_error(&body, "UNAUTHENTICATED");
}

async fn duplicate_email_conflicts_case_insensitively(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.register("dup@example.com").await;
    let (status, body) = app
        .post_json("/api/v1/auth/register", &json!({"email": "DUP@example.com", "password": PASSWORD, "name": "Other"}))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_error(&body, "CONFLICT");
}

async fn registration_rules_name_every_field(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, body) =
        app.post_json("/api/v1/auth/register", &json!({"email": "nope", "password": "short", "name": "A"})).await;
    assert_eq!(status, 422, "{body}");
    let error = assert_error(&body, "VALIDATION_FAILED");
    let mut fields: Vec<_> =
        error["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["email", "name", "password"]);

    let (status, body) = app
        .post_json("/api/v1/auth/register", &json!({"email": "c@example.com", "password": "Password1", "name": "Cee"}))
        .await;
    assert_eq!(status, 422, "a common password is refused: {body}");
    assert_eq!(body["error"]["details"][0]["field"], "password");

    let (status, body) =
        app.post_json("/api/v1/auth/register", &json!({"email": 7, "password": PASSWORD, "name": "Cee"})).await;
    assert_eq!(status, 422, "wrong JSON type: {body}");
    assert_eq!(body["error"]["details"][0]["field"], "email");

    let (status, body) = app.post_json("/api/v1/auth/register", &json!({"password": PASSWORD, "name": "Cee"})).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["details"][0]["field"], "email");
    // Nothing was created by any refused request.
    let (status, _) = app.login("c@example.com", "Password1", "d").await;
    assert_eq!(status, 401);
}

async fn bad_bodies_get_the_envelope(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let url = app.url("/api/v1/auth/register");
    let res =
        app.client.post(&url).header("content-type", "application/json").body("{\"email\": ").send().await.unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, 400);
    assert_error(&body, "BAD_REQUEST");

    let res = app.client.post(&url).header("content-type", "text/plain").body("{}").send().await.unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, 415);
    assert_error(&body, "UNSUPPORTED_MEDIA_TYPE");

    let huge = format!("{{\"email\": \"{}\"}}", "a".repeat(70 * 1024));
    let res = app.client.post(&url).header("content-type", "application/json").body(huge).send().await.unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, 413);
    assert_error(&body, "PAYLOAD_TOO_LARGE");

    let res = app.client.post(&url).header("content-type", "application/json").body("[1, 2]").send().await.unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, 422);
    assert_error(&body, "VALIDATION_FAILED");
}

async fn unknown_email_and_wrong_password_look_the_same(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.register("known@example.com").await;
    let (s1, wrong_password) = app.login("known@example.com", "Wrong-Pass-1", "d").await;
    let (s2, unknown_email) = app.login("unknown@example.com", "Wrong-Pass-1", "d").await;
    assert_eq!((s1, s2), (401, 401));
    assert_error(&wrong_password, "INVALID_CREDENTIALS");
    assert_eq!(without_request_id(wrong_password), without_request_id(unknown_email));
    // Case does not matter when signing in either.
    app.login_ok("KNOWN@example.com", "d").await;
}

async fn forged_expired_and_misused_tokens_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let account = app.register("tok@example.com").await;

    let parts: Vec<&str> = account.access.split('.').collect();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let none = format!("{}.{}.", b64.encode(br#"{"alg":"none","typ":"JWT"}"#), parts[1]);
    let other_key = {
        // Re-sign the same payload with another key: a valid JWT, wrong key.
        let key = jsonwebtoken::EncodingKey::from_secret(b"some-other-key-some-other-key-123");
        let claims: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
    };
    for (what, token) in [
        ("alg none", none.as_str()),
        ("other key", other_key.as_str()),
        ("refresh as access", &account.refresh),
        ("garbage", "abc"),
    ] {
        let (status, body) = app.get_as(ME, token).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert_error(&body, "UNAUTHENTICATED");
    }

    app.clock.advance(time::Duration::minutes(15));
    let (status, body) = app.get_as(ME, &account.access).await;
    assert_eq!(status, 401);
    assert_error(&body, "TOKEN_EXPIRED");
    // The refresh token still works and yields a fresh access token.
    let (status, body) = refresh(&app, &account.refresh).await;
    assert_eq!(status, 200, "{body}");
    let fresh = body["data"]["tokens"]["accessToken"].as_str().unwrap();
    assert_eq!(app.get_as(ME, fresh).await.0, 200);
}

async fn refresh_rotates_and_reuse_revokes_the_family(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let a = app.register("rot@example.com").await;
    let (status, body) = refresh(&app, &a.refresh).await;
    assert_eq!(status, 200, "{body}");
    let b = body["data"]["tokens"]["refreshToken"].as_str().unwrap().to_owned();
    assert_ne!(b, a.refresh);

    let (status, body) = refresh(&app, &a.refresh).await;
    assert_eq!(status, 401);
    assert_error(&body, "TOKEN_REUSED");
    let (status, body) = refresh(&app, &a.refresh).await;
    assert_eq!(status, 401);
    assert_error(&body, "TOKEN_REUSED");
    let (status, body) = refresh(&app, &b).await;
    assert_eq!(status, 401, "B was revoked with its family: {body}");
    assert_error(&body, "UNAUTHENTICATED");

    let (status, body) = refresh(&app, "never-issued").await;
    assert_eq!(status, 401);
    // The message is about the token the client sent, not an access token.
    assert!(assert_error(&body, "UNAUTHENTICATED")["message"].as_str().unwrap().contains("refresh token"), "{body}");
}

async fn logout_ends_one_login(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let laptop = app.register("out@example.com").await;
    let phone = app.login_ok("out@example.com", "phone").await;

    let (status, body) = app.call(Method::POST, "/api/v1/auth/logout", Some(&laptop.access), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(refresh(&app, &laptop.refresh).await.0, 401);
    assert_eq!(refresh(&app, &phone.refresh).await.0, 200, "the other device stays signed in");

    // With a body: that token's family.
    let tablet = app.login_ok("out@example.com", "tablet").await;
    let (status, _) = app
        .call(Method::POST, "/api/v1/auth/logout", Some(&tablet.access), Some(&json!({"refreshToken": tablet.refresh})))
        .await;
    assert_eq!(status, 200);
    assert_eq!(refresh(&app, &tablet.refresh).await.0, 401);

    let (status, body) = app.call(Method::POST, "/api/v1/auth/logout", None, None).await;
    assert_eq!(status, 401, "logout needs a bearer token: {body}");
}

async fn logout_all_ends_every_login(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let one = app.register("all@example.com").await;
    let two = app.login_ok("all@example.com", "second").await;
    let (status, _) = app.call(Method::POST, "/api/v1/auth/logout-all", Some(&one.access), None).await;
    assert_eq!(status, 200);
    for account in [&one, &two] {
        assert_eq!(app.get_as(ME, &account.access).await.0, 401);
        assert_eq!(refresh(&app, &account.refresh).await.0, 401);
    }
    app.clock.advance(time::Duration::milliseconds(1));
    let again = app.login_ok("all@example.com", "third").await;
    assert_eq!(app.get_as(ME, &again.access).await.0, 200, "signing in again works at once");
}

async fn password_change_signs_out_other_devices(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let here = app.register("pw@example.com").await;
    let there = app.login_ok("pw@example.com", "other").await;

    let (status, body) = app
        .call(
            Method::PUT,
            "/api/v1/users/me/password",
            Some(&here.access),
            Some(&json!({"currentPassword": "Not-The-Password-1", "newPassword": "Fresh-Badger-77"})),
        )
        .await;
    assert_eq!(status, 401);
    assert_error(&body, "INVALID_CREDENTIALS");
    assert_eq!(app.get_as(ME, &there.access).await.0, 200, "a wrong current password changes nothing");

    let (status, body) = app
        .call(
            Method::PUT,
            "/api/v1/users/me/password",
            Some(&here.access),
            Some(&json!({"currentPassword": PASSWORD, "newPassword": "Fresh-Badger-77"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.get_as(ME, &here.access).await.0, 200, "the login that changed it stays");
    assert_eq!(refresh(&app, &here.refresh).await.0, 200);
    assert_eq!(app.get_as(ME, &there.access).await.0, 401, "other devices' access tokens stop");
    assert_eq!(refresh(&app, &there.refresh).await.0, 401);
    assert_eq!(app.login("pw@example.com", PASSWORD, "x").await.0, 401);
    assert_eq!(app.login("pw@example.com", "Fresh-Badger-77", "x").await.0, 200);
}

async fn deleted_account_is_gone(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let account = app.register("del@example.com").await;
    let (status, body) =
        app.call(Method::DELETE, ME, Some(&account.access), Some(&json!({"password": "Wrong-Pass-1"}))).await;
    assert_eq!(status, 401);
    assert_error(&body, "INVALID_CREDENTIALS");
    assert_eq!(app.get_as(ME, &account.access).await.0, 200);

    let (status, body) =
        app.call(Method::DELETE, ME, Some(&account.access), Some(&json!({"password": PASSWORD}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.get_as(ME, &account.access).await.0, 401);
    assert_eq!(refresh(&app, &account.refresh).await.0, 401);
    assert_eq!(app.login("del@example.com", PASSWORD, "d").await.0, 401);
    let again = app.register("del@example.com").await;
    assert_ne!(again.user_id, account.user_id, "the email registers again as a new account");
}

async fn profile_updates_and_refuses_bad_fields(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let account = app.register("prof@example.com").await;
    let path = "/api/v1/users/me/profile";
    let (status, body) = app
        .call(
            Method::PATCH,
            path,
            Some(&account.access),
            Some(&json!({"displayName": "Prof X", "bio": "<b>hi</b>", "timezone": "Europe/Paris", "preferences": {"theme": "dark"},
                         "id": "00000000-0000-7000-8000-000000000000", "email": "evil@example.com", "createdAt": "2000-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["bio"], "<b>hi</b>");
    assert_eq!(body["data"]["timezone"], "Europe/Paris");

    let (status, body) = app
        .call(Method::PATCH, path, Some(&account.access), Some(&json!({"timezone": "Mars/Base", "preferences": [1]})))
        .await;
    assert_eq!(status, 422);
    let error = assert_error(&body, "VALIDATION_FAILED");
    assert_eq!(error["details"].as_array().unwrap().len(), 2);

    let (_, me) = app.get_as(ME, &account.access).await;
    assert_eq!(me["data"]["email"], "prof@example.com", "fields a client sends cannot set the email");
    assert_eq!(me["data"]["id"], account.user_id.as_str());
    assert_eq!(me["data"]["profile"]["displayName"], "Prof X");
    assert_eq!(me["data"]["profile"]["timezone"], "Europe/Paris", "the refused patch changed nothing");
    assert_eq!(me["data"]["profile"]["preferences"], json!({"theme": "dark"}));
}

async fn failed_logins_are_limited_per_pair(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.specgen_rate_login_pair = "3/60".into()).await;
    app.register("lim@example.com").await;
    for _ in 0..3 {
        assert_eq!(app.login("lim@example.com", "Wrong-Pass-1", "d").await.0, 401);
    }
    let res = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": "lim@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429, "a correct password does not unlock a blocked pair");
    let retry_after: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(res.headers()["ratelimit-limit"], "3");
    assert_eq!(res.headers()["ratelimit-remaining"], "0");
    assert!(res.headers().contains_key("ratelimit-reset"));
    let (_, body) = read(res).await;
    assert_error(&body, "RATE_LIMITED");

    app.clock.advance(time::Duration::seconds(61));
    assert_eq!(app.login("lim@example.com", PASSWORD, "d").await.0, 200, "the window has passed");
}

async fn failed_logins_are_limited_per_account_across_addresses(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| {
        c.specgen_rate_login_account = "4/3600".into();
        c.specgen_trusted_proxies = Some("127.0.0.1".into());
    })
    .await;
    app.register("acct@example.com").await;
    let login_from = |ip: &'static str, password: &'static str| {
        app.client
            .post(app.url("/api/v1/auth/login"))
            .header("x-forwarded-for", ip)
            .json(&json!({"email": "acct@example.com", "password": password}))
            .send()
    };
    for ip in ["203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4"] {
        assert_eq!(login_from(ip, "Wrong-Pass-1").await.unwrap().status(), 401);
    }
    assert_eq!(login_from("203.0.113.5", PASSWORD).await.unwrap().status(), 429);
    // An unknown email counts like a known one.
    for _ in 0..4 {
        app.login("ghost@example.com", "Wrong-Pass-1", "d").await;
    }
    assert_eq!(app.login("ghost@example.com", "Wrong-Pass-1", "d").await.0, 429);
}

async fn registrations_are_limited_per_address(backend: Backend) {
    let app = TestApp::spawn_with(backend, |c| c.specgen_rate_register = "2/3600".into()).await;
    app.register("r1@example.com").await;
    app.register("r2@example.com").await;
    let (status, body) = app
        .post_json("/api/v1/auth/register", &json!({"email": "r3@example.com", "password": PASSWORD, "name": "Three"}))
        .await;
    assert_eq!(status, 429, "{body}");
    // A forged X-Forwarded-For from an untrusted peer does not buy a new address.
    let res = app
        .client
        .post(app.url("/api/v1/auth/register"))
        .header("x-forwarded-for", "198.51.100.9")
        .json(&json!({"email": "r4@example.com", "password": PASSWORD, "name": "Four"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
}

/// The refresh token's `Set-Cookie` value, if the response set one.
fn refresh_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers().get_all("set-cookie").iter().find_map(|v| {
        let v = v.to_str().unwrap();
        v.starts_with("specgen_refresh=").then(|| v.to_owned())
    })
}

/// `specgen_refresh=VALUE` of a `Set-Cookie` value.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

/// With `X-Refresh-Cookie: 1` the refresh token lives only in an HttpOnly
/// cookie: it rotates there, a replayed one signs the login out, and
/// logout clears it.
async fn cookie_mode_keeps_the_refresh_token_out_of_the_body(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.register("jar@example.com").await;
    let login = |headers: bool| {
        let mut req = app
            .client
            .post(app.url("/api/v1/auth/login"))
            .json(&json!({"email": "jar@example.com", "password": PASSWORD, "deviceId": "browser"}));
        if headers {
            req = req.header("x-refresh-cookie", "1");
        }
        req.send()
    };
    let res = login(true).await.unwrap();
    let set = refresh_cookie(&res).expect("a refresh cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/api/v1/auth", "Max-Age=604800"] {
        assert!(set.contains(attribute), "{attribute} in {set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP on localhost: {set}");
    let (status, body) = read(res).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["tokens"]["refreshToken"], "", "no refresh token for page scripts");
    assert!(body["data"]["tokens"]["accessToken"].as_str().is_some_and(|t| !t.is_empty()));

    // Rotation through the cookie, with an empty body.
    let first = cookie_pair(&set);
    let refresh_with = |cookie: String| {
        app.client
            .post(app.url("/api/v1/auth/refresh"))
            .header("x-refresh-cookie", "1")
            .header("cookie", cookie)
            .header("content-type", "application/json")
            .body("{}")
            .send()
    };
    let res = refresh_with(first.clone()).await.unwrap();
    let second = cookie_pair(&refresh_cookie(&res).expect("a new cookie"));
    assert_ne!(second, first);
    let (status, body) = read(res).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["tokens"]["refreshToken"], "");

    // The spent one again: the whole login is signed out, the cookie cleared.
    let res = refresh_with(first).await.unwrap();
    let cleared = refresh_cookie(&res).expect("the cookie is cleared");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let (status, body) = read(res).await;
    assert_eq!(status, 401);
    assert_error(&body, "TOKEN_REUSED");
    let (status, _) = read(refresh_with(second).await.unwrap()).await;
    assert_eq!(status, 401, "the family is revoked");

    // Logout reads the cookie and clears it.
    let res = login(true).await.unwrap();
    let pair = cookie_pair(&refresh_cookie(&res).unwrap());
    let (_, body) = read(res).await;
    let access_now = body["data"]["tokens"]["accessToken"].as_str().unwrap().to_owned();
    let res = app
        .client
        .post(app.url("/api/v1/auth/logout"))
        .bearer_auth(&access_now)
        .header("x-refresh-cookie", "1")
        .header("cookie", pair.clone())
        .send()
        .await
        .unwrap();
    assert!(refresh_cookie(&res).unwrap().contains("Max-Age=0"));
    assert_eq!(res.status(), 200);
    let (status, _) = read(refresh_with(pair).await.unwrap()).await;
    assert_eq!(status, 401, "that login is over");

    // Without the header the cookie is ignored and the body is required.
    let (status, body) = app.post_json("/api/v1/auth/refresh", &json!({})).await;
    assert_eq!(status, 422);
    assert_error(&body, "VALIDATION_FAILED");
    let res = login(false).await.unwrap();
    assert!(refresh_cookie(&res).is_none());
    let (_, body) = read(res).await;
    assert!(!body["data"]["tokens"]["refreshToken"].as_str().unwrap().is_empty());
}

for_both_stores!(
    cookie_mode_keeps_the_refresh_token_out_of_the_body,
    register_and_read_me,
    duplicate_email_conflicts_case_insensitively,
    registration_rules_name_every_field,
    bad_bodies_get_the_envelope,
    unknown_email_and_wrong_password_look_the_same,
    forged_expired_and_misused_tokens_are_refused,
    refresh_rotates_and_reuse_revokes_the_family,
    logout_ends_one_login,
    logout_all_ends_every_login,
    password_change_signs_out_other_devices,
    deleted_account_is_gone,
    profile_updates_and_refuses_bad_fields,
    failed_logins_are_limited_per_pair,
    failed_logins_are_limited_per_account_across_addresses,
    registrations_are_limited_per_address,
);
