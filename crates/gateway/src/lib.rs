//! The real-time gateway, `GET /ws` (actix-ws): authenticated connections
//! join sessions and hear, live, every message, typing and AI chunk of them,
//! whichever instance each member is connected to. See `docs/gateway.md`.
//!
//! Like HTTP, it calls the application layer and the ports only: the event
//! bus carries each session's events between instances, the reply log makes
//! `resume` exact, the presence registry counts people over all instances.
//! Which adapters those are is the composition root's choice.

mod connection;
mod feed;
mod frames;
mod hub;
mod link;
mod packet;
mod presence;
mod socket;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use actix_codec::Framed;
use actix_http::HttpMessage as _;
use actix_http::body::BodySize;
use actix_http::ws;
use actix_web::rt::net::TcpStream;
use actix_web::{HttpResponse, web};
use futures::SinkExt as _;
use specgen_app::App;
use specgen_domain::UserId;
use specgen_http::ApiError;
use specgen_ports::{EventBus, PresenceRegistry, ReplyLog};
use tokio_util::sync::CancellationToken;

pub use feed::GatewayFeed;

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Largest frame (or message of continuation frames) a client may send;
    /// beyond it the connection closes with 1008.
    pub max_frame_bytes: usize,
    /// Frames a connection may have queued before it is cut with 1013.
    pub outbox_capacity: usize,
    /// A ping goes out this often...
    pub heartbeat_every: Duration,
    /// ...and a peer silent for this long is closed, so a dead peer goes
    /// within `heartbeat_every + peer_timeout`.
    pub peer_timeout: Duration,
    /// Time to send `authenticate` when the upgrade carried no token.
    pub auth_timeout: Duration,
    /// Frames per second a client may send, on average...
    pub frames_per_second: u32,
    /// ...with bursts of this many; beyond, it is closed with 4429.
    pub frame_burst: u32,
    /// How long a finished reply's chunks stay readable for `resume`.
    pub reply_grace: Duration,
    /// How long a connection's presence in a session lasts unless renewed
    /// (a third of it apart): the most that the people of an instance that
    /// died still count as there.
    pub presence_lease: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            max_frame_bytes: 64 * 1024,
            outbox_capacity: 1024,
            heartbeat_every: Duration::from_secs(10),
            peer_timeout: Duration::from_secs(20),
            auth_timeout: Duration::from_secs(10),
            frames_per_second: 20,
            frame_burst: 60,
            reply_grace: Duration::from_secs(120),
            presence_lease: Duration::from_secs(30),
        }
    }
}

/// The gateway of one instance; cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    state: Arc<State>,
}

pub(crate) struct State {
    app: App,
    bus: Arc<dyn EventBus>,
    log: Arc<dyn ReplyLog>,
    hub: hub::Hub,
    presences: Arc<presence::Presences>,
    config: GatewayConfig,
    /// Cancelled at shutdown: every connection closes with 1001.
    shutdown: CancellationToken,
    /// Every connection's task.
    tasks: tokio_util::task::TaskTracker,
    /// Connections per user on this instance (`active_users_total`).
    users: Mutex<HashMap<UserId, usize>>,
    /// Open connections, authenticated or not (`ws_connections`).
    connections: std::sync::atomic::AtomicUsize,
}

impl State {
    fn users(&self) -> MutexGuard<'_, HashMap<UserId, usize>> {
        self.users.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn user_arrived(&self, user: UserId) {
        let mut users = self.users();
        *users.entry(user).or_default() += 1;
        metrics::gauge!("active_users_total").set(users.len() as f64);
    }

    fn user_left(&self, user: UserId) {
        let mut users = self.users();
        if let Some(count) = users.get_mut(&user) {
            *count -= 1;
            if *count == 0 {
                users.remove(&user);
            }
        }
        metrics::gauge!("active_users_total").set(users.len() as f64);
    }
}

impl Gateway {
    /// Must be called within a Tokio runtime: the rooms' bus readers run on it.
    pub fn new(
        app: App,
        bus: Arc<dyn EventBus>,
        log: Arc<dyn ReplyLog>,
        presence: Arc<dyn PresenceRegistry>,
        config: GatewayConfig,
    ) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| anyhow::anyhow!("the gateway must be built inside a tokio runtime"))?;
        metrics::gauge!("ws_connections").set(0.0);
        metrics::gauge!("active_users_total").set(0.0);
        let presences = Arc::new(presence::Presences::new(presence, config.presence_lease));
        presence::Presences::renew_while_alive(Arc::downgrade(&presences), &runtime);
        Ok(Self {
            state: Arc::new(State {
                app,
                hub: hub::Hub::new(Arc::clone(&bus), runtime),
                presences,
                bus,
                log,
                config,
                shutdown: CancellationToken::new(),
                tasks: tokio_util::task::TaskTracker::new(),
                users: Mutex::default(),
                connections: std::sync::atomic::AtomicUsize::new(0),
            }),
        })
    }

    /// Registers `GET /ws` for requests that are not upgrades (they get a
    /// 400); upgrades come through [`Gateway::upgrade`].
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.route("/ws", web::get().to(not_an_upgrade));
    }

    /// Closes every connection with 1001 (going away) and refuses new ones;
    /// waits up to `grace` for the close frames to go out.
    pub async fn shutdown(&self, grace: Duration) {
        self.state.shutdown.cancel();
        self.state.tasks.close();
        if tokio::time::timeout(grace, self.state.tasks.wait()).await.is_err() {
            tracing::warn!(open = self.connections(), "WebSocket connections still closing at shutdown");
        }
    }

    /// Connections open on this instance.
    pub fn connections(&self) -> usize {
        self.state.connections.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Distinct users connected to this instance.
    pub fn active_users(&self) -> usize {
        self.state.users().len()
    }

    /// Sessions with at least one member connected here.
    pub fn rooms_open(&self) -> usize {
        self.state.hub.rooms_open()
    }
}

/// `GET /ws` without an upgrade: the upgraded ones never reach the routes.
async fn not_an_upgrade() -> Result<HttpResponse, ApiError> {
    Err(ApiError::BadRequest("GET /ws must be a WebSocket upgrade.".into()))
}

/// An HTTP/1 request asking to upgrade, with its connection.
pub type UpgradeRequest = (actix_http::Request, Framed<TcpStream, actix_http::h1::Codec>);

impl Gateway {
    /// Takes an upgrade request from the HTTP server. `/ws` becomes a
    /// WebSocket: a bearer token on the upgrade authenticates at once (a bad
    /// one, or any other `Authorization`, is refused with the 401 envelope);
    /// without one, the first frame must be `authenticate`. Upgrades of any
    /// other path are refused.
    pub async fn upgrade(self, (req, mut framed): UpgradeRequest) {
        let state = &self.state;
        let request_id = specgen_http::request_id::keep_or_make(req.headers().get(specgen_http::request_id::HEADER));
        let accepted = async {
            if req.path() != "/ws" {
                return Err(ApiError::NotFound(format!("No WebSocket at {}", req.path())));
            }
            if state.shutdown.is_cancelled() {
                return Err(ApiError::Unavailable("shutting down".into()));
            }
            ws::verify_handshake(req.head())
                .map_err(|e| ApiError::BadRequest(format!("Not a valid WebSocket upgrade: {e}")))?;
            // Any `Authorization` is a claim to be someone: one that is not
            // a usable bearer token (another scheme, an empty token) is a bad
            // one, refused as over HTTP, not taken as no header at all.
            match specgen_http::client::bearer_in(req.headers()) {
                Some(token) => Ok(Some(state.app.authenticate(token).await?)),
                None if req.headers().contains_key(actix_web::http::header::AUTHORIZATION) => {
                    Err(ApiError::Unauthenticated("A bearer access token is required.".into()))
                }
                None => Ok(None),
            }
        };
        // Boxed, so the connection's lasting state does not carry it.
        let auth = match Box::pin(accepted).await {
            Ok(auth) => auth,
            Err(error) => return refuse(framed, &error, request_id).await,
        };
        let response = ws::handshake_response(req.head())
            .insert_header((specgen_http::request_id::HEADER, request_id.as_str()))
            .finish()
            .drop_body();
        if framed.send((response, BodySize::None).into()).await.is_err() {
            return;
        }
        // Keep only the stream and any bytes already read: the request, the
        // HTTP codec and its write buffer would otherwise live as long as
        // the connection does.
        drop(req);
        let parts = framed.into_parts();
        drop(parts.write_buf);
        drop(parts.codec);
        let (reader, write) = socket::split(parts.io, parts.read_buf, state.config.max_frame_bytes);
        let link = link::Link::new(write, state.config.outbox_capacity);
        // A task of its own, so the HTTP dispatcher (sized for any request
        // the routes can serve) is freed rather than kept for the
        // connection's life; tracked, so shutdown can wait for the close frames.
        let connection = connection::run(Arc::clone(state), reader, link, auth);
        actix_web::rt::spawn(state.tasks.track_future(connection));
    }
}

/// Answers an upgrade with the error envelope and closes the connection.
async fn refuse(mut framed: Framed<TcpStream, actix_http::h1::Codec>, error: &ApiError, request_id: String) {
    // The routes' answer to the same error (`WWW-Authenticate`,
    // `Cache-Control`, `Retry-After`...), sent by hand.
    let (mut response, body) = actix_http::Response::from(error.response_for(request_id.clone())).into_parts();
    let body = actix_web::body::MessageBody::try_into_bytes(body).unwrap_or_default();
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(specgen_http::request_id::HEADER, value);
    }
    // The codec would otherwise answer the upgrade request's
    // `Connection: upgrade` in kind.
    response.head_mut().set_connection_type(actix_http::ConnectionType::Close);
    // One flush for head and body, so a client reading the refusal finds
    // its body with it.
    let sent = async {
        framed.feed((response, BodySize::Sized(body.len() as u64)).into()).await?;
        framed.feed(actix_http::h1::Message::Chunk(Some(body))).await?;
        framed.send(actix_http::h1::Message::Chunk(None)).await
    };
    if let Err(e) = sent.await {
        tracing::debug!(error = %e, "could not send an upgrade refusal");
    }
}
