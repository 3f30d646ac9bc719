//! The HTTP skeleton over real connections, against both stores: envelopes,
//! request ids, unknown routes and methods, health, metrics, OpenAPI, docs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Backend, TestApp, assert_error, read};
use reqwest::Method;

async fn health_live_and_ready(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let res = app.get("/health/live").await;
    assert!(res.headers().contains_key("x-request-id"));
    let (status, body) = read(res).await;
    assert_eq!(status, 200);
    assert_eq!(body, serde_json::json!({"success": true, "data": {"status": "ok"}}));

    let (status, body) = read(app.get("/health/ready").await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["status"], "ready");
    assert_eq!(body["data"]["checks"], serde_json::json!({"store": "up", "cache": "up", "bus": "up"}));
    // Each enabled provider, as `GET /ai/providers` lists them.
    let providers = body["data"]["providers"].as_array().unwrap();
    assert!(!providers.is_empty(), "{body}");
    assert!(providers.iter().all(|p| p["name"].is_string() && p["available"] == true), "{body}");
}

async fn request_id_is_kept_or_replaced(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let kept = app.client.get(app.url("/health/live")).header("x-request-id", "trace-42.a_b").send().await.unwrap();
    assert_eq!(kept.headers()["x-request-id"], "trace-42.a_b");
    let replaced = app.client.get(app.url("/api/v1/nope")).header("x-request-id", "bad id!").send().await.unwrap();
    let header = replaced.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(header, "bad id!");
    let (status, body) = read(replaced).await;
    assert_eq!(status, 404);
    assert_eq!(assert_error(&body, "NOT_FOUND")["requestId"], header.as_str(), "error requestId equals the header");
}

async fn unknown_routes_are_json_404(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for path in ["/api/v1/nothing", "/api/v2/x", "/health/nope", "/metrics/extra", "/ws/x"] {
        let (status, body) = read(app.get(path).await).await;
        assert_eq!(status, 404, "{path}");
        assert_error(&body, "NOT_FOUND");
    }
    let res = app.request(Method::DELETE, "/api/v1/anything").await.send().await.unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, 404);
    assert_error(&body, "NOT_FOUND");
}

async fn wrong_method_is_json_405(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let res = app.request(Method::POST, "/health/live").await.send().await.unwrap();
    let (status, body) = read(res).await;
    assert_eq!(status, 405);
    assert_error(&body, "METHOD_NOT_ALLOWED");
}

async fn metrics_label_routes_by_pattern(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.get("/health/live").await;
    app.get("/api/v1/some-id-123").await;
    let res = app.get("/metrics").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let text = res.text().await.unwrap();
    assert!(
        text.contains(r#"http_request_duration_seconds_bucket{method="GET",route="/health/live",status_code="200""#),
        "{text}"
    );
    assert!(text.contains(r#"route="unmatched",status_code="404""#), "{text}");
    assert!(!text.contains("some-id-123"), "raw paths never become labels");
    // The store's pool, read at scrape time (the test server's pool holds 4).
    assert!(text.contains("db_pool_max_connections 4"), "{text}");
    assert!(text.contains(r#"db_pool_connections{state="idle"}"#), "{text}");
    assert!(text.contains(r#"db_pool_connections{state="in_use"}"#), "{text}");
}

/// Every family the contract names is listed by a fresh instance, before
/// any reply or connection: those a reply records with a series per
/// provider and its default model, at zero.
async fn metrics_list_the_contract_families_from_the_start(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let text = app.get("/metrics").await.text().await.unwrap();
    for family in [
        "http_request_duration_seconds",
        "ai_response_duration_seconds",
        "ai_time_to_first_token_seconds",
        "ai_tokens_total",
        "ai_fallbacks_total",
        "ws_connections",
        "active_users_total",
    ] {
        assert!(text.contains(&format!("# TYPE {family} ")), "{family} missing:\n{text}");
    }
    assert!(text.lines().any(|l| l == "ws_connections 0"), "{text}");
    assert!(text.lines().any(|l| l == "active_users_total 0"), "{text}");
    let (_, providers) = read(app.get("/health/ready").await).await;
    let provider = providers["data"]["providers"][0]["name"].as_str().unwrap().to_owned();
    for direction in ["input", "output"] {
        let series = format!(r#"ai_tokens_total{{provider="{provider}","#);
        assert!(
            text.lines().any(|l| l.starts_with(&series) && l.contains(&format!(r#"direction="{direction}"}} 0"#))),
            "{text}"
        );
    }
    assert!(text.contains(&format!(r#"ai_time_to_first_token_seconds_count{{provider="{provider}","#)), "{text}");
}

async fn openapi_and_docs_are_served(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let (status, doc) = read(app.get("/api/openapi.json").await).await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    assert!(doc["paths"]["/health/live"]["get"].is_object());
    assert!(doc["paths"]["/health/ready"]["get"].is_object());
    // Every operation has an id, and its own: OpenAPI requires them unique,
    // and client generators name their methods after them.
    let operations: Vec<&serde_json::Value> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| ["get", "put", "post", "delete", "patch"].map(|method| &item[method]))
        .filter(|operation| operation.is_object())
        .collect();
    let mut ids: Vec<&str> = operations.iter().filter_map(|operation| operation["operationId"].as_str()).collect();
    assert_eq!(ids.len(), operations.len(), "an operation without an id");
    ids.sort_unstable();
    let unique = ids.iter().collect::<std::collections::BTreeSet<_>>();
    assert_eq!(unique.len(), ids.len(), "duplicate operation ids: {ids:?}");

    let redirect = app.get("/api/docs").await;
    assert_eq!(redirect.status(), 308);
    let page = app.get("/api/docs/").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger"), "a rendered docs page");
    // Offline: every script the page loads is served by us.
    assert!(!html.contains("https://"), "no CDN assets: {html}");
    let script = app.get("/api/docs/swagger-ui-bundle.js").await;
    assert_eq!(script.status(), 200);
}

/// Browsers get the web client at `/` and on its own routes; API paths
/// never do, whatever they accept.
async fn web_client_is_served(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for path in ["/", "/sessions/some-id", "/settings"] {
        let res = app.client.get(app.url(path)).header("accept", "text/html,*/*;q=0.8").send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"), "{path}");
        let policy = res.headers()["content-security-policy"].to_str().unwrap().to_owned();
        assert!(policy.contains("script-src 'self'"), "{policy}");
        let etag = res.headers()["etag"].to_str().unwrap().to_owned();
        let html = res.text().await.unwrap();
        assert!(html.contains("<html"), "{path}: {html}");
        let again = app.client.get(app.url(path)).header("accept", "text/html").header("if-none-match", etag);
        assert_eq!(again.send().await.unwrap().status(), 304, "{path} revalidates");
    }
    for path in ["/api/v1/nothing", "/health/nope", "/ws/x", "/metrics/x"] {
        let res = app.client.get(app.url(path)).header("accept", "text/html").send().await.unwrap();
        let (status, body) = read(res).await;
        assert_eq!(status, 404, "{path}");
        assert_error(&body, "NOT_FOUND");
    }
    // Whatever takes HTML gets it (curl's `*/*` too); what refuses it, or
    // names no type at all, gets the JSON 404.
    for accept in ["*/*", "text/*", "application/json, text/html;q=0.1"] {
        let res = app.client.get(app.url("/settings")).header("accept", accept).send().await.unwrap();
        assert_eq!(res.status(), 200, "{accept}");
        assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"), "{accept}");
    }
    for accept in ["application/json", "text/html;q=0", "text/html;q=0, */*"] {
        let (status, body) =
            read(app.client.get(app.url("/settings")).header("accept", accept).send().await.unwrap()).await;
        assert_eq!(status, 404, "{accept}");
        assert_error(&body, "NOT_FOUND");
    }
    // No `Accept` at all (reqwest would add `*/*`): a bare probe.
    let head = {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut stream = tokio::net::TcpStream::connect(app.address).await.unwrap();
        stream.write_all(b"GET /settings HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    };
    assert!(head.starts_with("HTTP/1.1 404") && head.contains("NOT_FOUND"), "{head}");
    // `/` is the client's whatever the request accepts.
    let res = app.client.get(app.url("/")).header("accept", "application/json").send().await.unwrap();
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let res = app.client.post(app.url("/")).header("accept", "text/html").send().await.unwrap();
    assert_eq!(res.status(), 404, "only GET and HEAD serve the client");
}

for_both_stores!(
    web_client_is_served,
    health_live_and_ready,
    request_id_is_kept_or_replaced,
    unknown_routes_are_json_404,
    wrong_method_is_json_405,
    metrics_label_routes_by_pattern,
    metrics_list_the_contract_families_from_the_start,
    openapi_and_docs_are_served,
);

/// With the wire to Postgres cut, readiness answers 503 in the envelope
/// while liveness stays 200; restored, it recovers by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_is_503_while_the_store_is_unreachable() {
    let db = specgen_store_postgres::testing::TestDatabase::create_empty().await;
    let upstream = db.socket_addr();
    let proxy = specgen_test_support::proxy::FaultProxy::start(upstream).await.unwrap();
    let via_proxy = db.url_via(proxy.address());
    let app = TestApp::spawn_with(Backend::Postgres, |config| {
        config.database_url = specgen::config::ConnectionUrl::new(via_proxy);
    })
    .await;
    assert_eq!(app.get("/health/ready").await.status(), 200);

    proxy.cut();
    let started = std::time::Instant::now();
    let (status, body) = read(app.get("/health/ready").await).await;
    assert_eq!(status, 503, "{body}");
    let error = assert_error(&body, "UNAVAILABLE");
    assert_eq!(error["details"][0]["field"], "store");
    assert!(started.elapsed() < std::time::Duration::from_secs(8), "fails fast: {:?}", started.elapsed());
    assert_eq!(app.get("/health/live").await.status(), 200);

    proxy.restore();
    let mut recovered = false;
    for _ in 0..50 {
        if app.get("/health/ready").await.status() == 200 {
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(recovered, "readiness recovers once the store is back");
    drop(db);
}

/// An allowed origin may call the API and read the headers a client needs
/// (the request id, the rate limit's); any other origin gets no CORS grant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_grants_only_the_configured_origins() {
    let app =
        TestApp::spawn_with(Backend::Sqlite, |c| c.specgen_cors_origins = Some("https://app.example".into())).await;
    let allowed = app.client.get(app.url("/health/live")).header("origin", "https://app.example").send().await.unwrap();
    assert_eq!(allowed.headers()["access-control-allow-origin"], "https://app.example");
    let exposed = allowed.headers()["access-control-expose-headers"].to_str().unwrap().to_ascii_lowercase();
    for header in ["x-request-id", "retry-after", "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"] {
        assert!(exposed.contains(header), "{header} not exposed: {exposed}");
    }
    let foreign =
        app.client.get(app.url("/health/live")).header("origin", "https://evil.example").send().await.unwrap();
    assert!(!foreign.headers().contains_key("access-control-allow-origin"), "{:?}", foreign.headers());

    // A preflight is granted the methods the API serves, and only those.
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/chat/sessions"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "PATCH")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let methods = preflight.headers()["access-control-allow-methods"].to_str().unwrap().to_owned();
    for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        assert!(methods.contains(method), "{method} not granted: {methods}");
    }
    assert!(!methods.contains("TRACE") && !methods.contains("CONNECT"), "{methods}");
}
