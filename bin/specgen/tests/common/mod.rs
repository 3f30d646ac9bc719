//! Starts the real server in-process (the same wiring as `specgen serve`) on
//! a free port, against either store, and talks to it over real HTTP.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, Response};
use serde_json::{Value, json};
use specgen::config::{Config, ConnectionUrl};
use specgen_ports::ManualClock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub address: SocketAddr,
    pub client: reqwest::Client,
    /// The server's clock: advance it to expire tokens and rate-limit windows.
    pub clock: Arc<ManualClock>,
    pub gateway: specgen_gateway::Gateway,
    pub app: specgen_app::App,
    /// The configuration it runs with (to start a second instance like it).
    pub config: Config,
    handle: actix_web::dev::ServerHandle,
    _data_dir: tempfile::TempDir,
    _database: Option<specgen_store_postgres::testing::TestDatabase>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            specgen_listen: "127.0.0.1:0".parse().unwrap(),
            specgen_data_dir: data_dir.path().to_owned(),
            specgen_db_max_connections: 4,
            // Demo replies stream quickly in tests.
            specgen_demo_chunk_delay_ms: 1,
            ..Config::default()
        };
        let database = match backend {
            Backend::Sqlite => {
                let path = data_dir.path().join("specgen.db");
                config.database_url = ConnectionUrl::new(format!("sqlite://{}", path.display()));
                None
            }
            Backend::Postgres => {
                let db = specgen_store_postgres::testing::TestDatabase::create_empty().await;
                config.database_url = ConnectionUrl::new(db.url().to_owned());
                Some(db)
            }
        };
        adjust(&mut config);
        let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
        let running = specgen::wiring::start_with_clock(&config, clock.clone()).await.unwrap();
        let handle = running.server.handle();
        tokio::spawn(running.server);
        Self {
            address: running.address,
            client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
            clock,
            gateway: running.gateway,
            app: running.app,
            config,
            handle,
            _data_dir: data_dir,
            _database: database,
        }
    }

    /// Stops the server as SIGTERM does (`specgen::wiring::stop`).
    pub async fn stop(&self, grace: Duration) {
        specgen::wiring::stop(&self.app, &self.gateway, &self.handle, grace).await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// Sends `body` as JSON and returns the status and parsed body.
    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        let res = self.client.post(self.url(path)).json(body).send().await.unwrap();
        read(res).await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Stop accepting at once; the runtime ends with the test anyway.
        let handle = self.handle.clone();
        drop(handle.stop(false));
    }
}

/// Status and JSON body; panics with the raw text if the body is not JSON.
pub async fn read(res: Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, body)
}

/// Asserts the contract's error envelope and returns its `error` object.
pub fn assert_error(body: &Value, code: &str) -> Value {
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(body["error"]["requestId"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    body["error"].clone()
}

/// Runs each listed `async fn(Backend)` once per store.
#[macro_export]
macro_rules! for_both_stores {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            )+
        }
    };
}

impl TestApp {
    /// Any method, optional bearer token and JSON body; status and parsed body.
    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<&Value>) -> (u16, Value) {
        let mut req = self.client.request(method, self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        read(req.send().await.unwrap()).await
    }

    pub async fn get_as(&self, path: &str, token: &str) -> (u16, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    /// Registers `email` with the standard test password; returns the account.
    pub async fn register(&self, email: &str) -> Account {
        let (status, body) = self
            .post_json("/api/v1/auth/register", &json!({"email": email, "password": PASSWORD, "name": "Test User"}))
            .await;
        assert_eq!(status, 201, "{body}");
        Account::from_auth(&body["data"])
    }

    /// Attempts a login; status and body.
    pub async fn login(&self, email: &str, password: &str, device: &str) -> (u16, Value) {
        self.post_json("/api/v1/auth/login", &json!({"email": email, "password": password, "deviceId": device})).await
    }

    pub async fn login_ok(&self, email: &str, device: &str) -> Account {
        let (status, body) = self.login(email, PASSWORD, device).await;
        assert_eq!(status, 200, "{body}");
        Account::from_auth(&body["data"])
    }
}

/// A password that passes the policy and is not a common one.
pub const PASSWORD: &str = "Sturdy-Otter-42";

/// One signed-in login of a user.
#[derive(Debug, Clone)]
pub struct Account {
    pub user_id: String,
    pub access: String,
    pub refresh: String,
}

impl Account {
    pub fn from_auth(data: &Value) -> Self {
        Self {
            user_id: data["user"]["id"].as_str().unwrap().to_owned(),
            access: data["tokens"]["accessToken"].as_str().unwrap().to_owned(),
            refresh: data["tokens"]["refreshToken"].as_str().unwrap().to_owned(),
        }
    }
}

/// Points the `claude` provider at a fake upstream.
pub fn use_fake_claude(config: &mut Config, base_url: String) {
    config.anthropic_api_key = Some(specgen::config::Secret::new(specgen_test_support::ai::FAKE_API_KEY.to_owned()));
    config.anthropic_base_url = specgen::config::ConnectionUrl::new(base_url);
}

/// Points the `openai` provider at a fake upstream.
pub fn use_fake_openai(config: &mut Config, base_url: String) {
    config.openai_api_key = Some(specgen::config::Secret::new(specgen_test_support::ai::FAKE_API_KEY.to_owned()));
    config.openai_base_url = Some(specgen::config::ConnectionUrl::new(base_url));
}

/// Server-Sent Events parsed from a finished body: `(event, data)`.
pub fn parse_sse(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|frame| !frame.trim().is_empty())
        .map(|frame| {
            let mut name = String::new();
            let mut data = String::new();
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = v.to_owned();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push_str(v);
                }
            }
            (name, serde_json::from_str(&data).unwrap_or_else(|e| panic!("bad SSE data ({e}): {data}")))
        })
        .collect()
}

/// Uses the local Redis (`TEST_REDIS_URL`) under a namespace of its own.
pub fn use_redis(config: &mut Config) {
    let url = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    config.redis_url = Some(specgen::config::ConnectionUrl::new(url));
    config.specgen_redis_namespace = format!("specgen-test-{}", uuid::Uuid::now_v7().simple());
}

/// The first instance of a deployment of several: Redis under a namespace
/// of its own, and a token key of its own that the others will share (see
/// [`same_deployment_as`]).
pub fn first_of_a_deployment(config: &mut Config) {
    use_redis(config);
    let secret = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
    config.jwt_secret = Some(specgen::config::Secret::new(secret));
}

/// Another instance of the deployment `shared` configures: the same
/// database, Redis (and namespace) and token key.
pub fn same_deployment_as(shared: &Config, config: &mut Config) {
    config.database_url = shared.database_url.clone();
    config.redis_url = shared.redis_url.clone();
    config.specgen_redis_namespace = shared.specgen_redis_namespace.clone();
    config.jwt_secret = shared.jwt_secret.clone();
}

/// A second connection holding off every write to the messages while it
/// lives (reads go on): requests that write queue behind it.
pub enum MessageWritesHeld {
    Sqlite(diesel::SqliteConnection),
    Postgres(Box<diesel_async::AsyncPgConnection>),
}

impl MessageWritesHeld {
    pub async fn release(self) {
        use diesel::connection::SimpleConnection as _;
        use diesel_async::SimpleAsyncConnection as _;
        match self {
            Self::Sqlite(mut c) => c.batch_execute("ROLLBACK").unwrap(),
            Self::Postgres(mut c) => c.batch_execute("ROLLBACK").await.unwrap(),
        }
    }
}

impl TestApp {
    /// Takes the store's write lock on the messages from outside the server:
    /// SQLite's database-wide one, or a Postgres table lock that still lets
    /// the messages be read.
    pub async fn hold_message_writes(&self) -> MessageWritesHeld {
        use diesel::Connection as _;
        use diesel::connection::SimpleConnection as _;
        use diesel_async::{AsyncConnection as _, SimpleAsyncConnection as _};
        let url = self.config.database_url.expose();
        match url.strip_prefix("sqlite://") {
            Some(path) => {
                let mut c = diesel::SqliteConnection::establish(path).unwrap();
                c.batch_execute("BEGIN IMMEDIATE").unwrap();
                MessageWritesHeld::Sqlite(c)
            }
            None => {
                let mut c = diesel_async::AsyncPgConnection::establish(url).await.unwrap();
                c.batch_execute("BEGIN; LOCK TABLE messages IN SHARE ROW EXCLUSIVE MODE").await.unwrap();
                MessageWritesHeld::Postgres(Box::new(c))
            }
        }
    }

    /// The database URL this instance runs on (to start a second instance on it).
    pub fn database_url(&self) -> Option<String> {
        self._database.as_ref().map(|db| db.url().to_owned())
    }
}
pub mod ws;
