//! Who is calling: the client's address (behind trusted proxies) and the
//! authenticated user. One extractor for every protected route.

use std::future::{Ready, ready};
use std::net::IpAddr;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use futures::future::LocalBoxFuture;
use specgen_app::AuthContext;

use crate::HttpConfig;
use crate::error::ApiError;
use crate::state::AppState;

/// The client's address. `X-Forwarded-For` is believed only when the peer is
/// a configured trusted proxy, and then read from the right, skipping
/// further trusted proxies, so a client cannot forge its own address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

pub fn client_ip(req: &HttpRequest) -> IpAddr {
    let peer = req.peer_addr().map_or(IpAddr::from([127, 0, 0, 1]), |a| a.ip());
    let Some(config) = req.app_data::<web::Data<HttpConfig>>() else {
        return peer;
    };
    let trusted = |ip: &IpAddr| config.trusted_proxies.iter().any(|net| net.contains(ip));
    if !trusted(&peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|part| part.trim().parse().ok())
        .collect();
    forwarded.iter().rev().find(|ip| !trusted(ip)).copied().unwrap_or(peer)
}

impl FromRequest for ClientIp {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(ClientIp(client_ip(req))))
    }
}

/// The caller, authenticated by `Authorization: Bearer <access token>`.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser(pub AuthContext);

/// The bearer token of a request, if it has one.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    bearer_in(req.headers())
}

/// The bearer token in `Authorization`, if there is one.
pub fn bearer_in(headers: &actix_web::http::header::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer_token(req).map(str::to_owned);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let Some(token) = token else {
                return Err(ApiError::Unauthenticated("A bearer access token is required.".into()));
            };
            let state = state.ok_or_else(|| ApiError::Internal(anyhow::anyhow!("application state missing")))?;
            Ok(AuthUser(state.app.authenticate(&token).await?))
        })
    }
}
