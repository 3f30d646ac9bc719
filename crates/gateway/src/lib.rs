//! The real-time gateway, `GET /ws` (actix-ws): authenticated connections
//! join sessions and hear, live, every message, typing and AI chunk of them,
//! whichever instance each member is connected to. See `docs/gateway.md`.
//!
//! Like HTTP, it calls the application layer and the ports only: the event
//! bus carries each session's events between instances, the reply log makes
//! `resume` exact. Which adapters those are is the composition root's choice.

mod connection;
mod feed;
mod frames;
mod hub;
mod packet;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use specgen_app::App;
use specgen_domain::UserId;
use specgen_http::ApiError;
use specgen_ports::{EventBus, ReplyLog};
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
    config: GatewayConfig,
    /// Cancelled at shutdown: every connection closes with 1001.
    shutdown: CancellationToken,
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
        config: GatewayConfig,
    ) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| anyhow::anyhow!("the gateway must be built inside a tokio runtime"))?;
        metrics::gauge!("ws_connections").set(0.0);
        metrics::gauge!("active_users_total").set(0.0);
        Ok(Self {
            state: Arc::new(State {
                app,
                hub: hub::Hub::new(Arc::clone(&bus), runtime),
                bus,
                log,
                config,
                shutdown: CancellationToken::new(),
                users: Mutex::default(),
                connections: std::sync::atomic::AtomicUsize::new(0),
            }),
        })
    }

    /// Registers `GET /ws`.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        cfg.app_data(web::Data::new(self.clone())).route("/ws", web::get().to(upgrade));
    }

    /// Closes every connection with 1001 (going away) and refuses new ones.
    pub fn shutdown(&self) {
        self.state.shutdown.cancel();
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

/// Upgrades to a WebSocket. A bearer token on the upgrade authenticates at
/// once (a bad one is refused with the 401 envelope); without one, the
/// first frame must be `authenticate`.
async fn upgrade(req: HttpRequest, body: web::Payload, gateway: web::Data<Gateway>) -> Result<HttpResponse, ApiError> {
    let state = &gateway.state;
    if state.shutdown.is_cancelled() {
        return Err(ApiError::Unavailable("shutting down".into()));
    }
    let auth = match specgen_http::client::bearer_token(&req) {
        Some(token) => Some(state.app.authenticate(token).await?),
        None => None,
    };
    let (response, session, stream) = actix_ws::handle(&req, body)
        .map_err(|_| ApiError::BadRequest("GET /ws must be a WebSocket upgrade.".into()))?;
    let limit = state.config.max_frame_bytes;
    let stream = stream.max_frame_size(limit).aggregate_continuations().max_continuation_size(limit);
    actix_web::rt::spawn(connection::run(Arc::clone(state), session, stream, auth));
    Ok(response)
}
