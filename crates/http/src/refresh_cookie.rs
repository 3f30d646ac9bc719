//! The web client's way of keeping the refresh token out of page scripts:
//! with `X-Refresh-Cookie: 1` on register, login, refresh and logout, the
//! refresh token travels only in an HttpOnly, SameSite=Strict cookie scoped
//! to `/api/v1/auth`, and the body's `refreshToken` is empty. Requiring the
//! custom header as well as the cookie keeps cross-site requests out: a
//! foreign page cannot send it without a CORS preflight we do not grant.

use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::{HttpRequest, HttpResponse};

use crate::dto::TokensDto;

pub const HEADER: &str = "x-refresh-cookie";
pub const NAME: &str = "specgen_refresh";
const PATH: &str = "/api/v1/auth";

/// Whether the client asked for cookie mode.
pub fn requested(req: &HttpRequest) -> bool {
    req.headers().get(HEADER).is_some_and(|v| v.as_bytes() == b"1")
}

/// The refresh token from the cookie, in cookie mode.
pub fn presented(req: &HttpRequest) -> Option<String> {
    if !requested(req) {
        return None;
    }
    req.cookie(NAME).map(|c| c.value().to_owned()).filter(|v| !v.is_empty())
}

/// In cookie mode, takes the refresh token out of `tokens` (the body then
/// carries an empty one) for [`store`].
pub fn take(req: &HttpRequest, tokens: &mut TokensDto) -> Option<String> {
    requested(req).then(|| std::mem::take(&mut tokens.refresh_token))
}

/// Sets the cookie holding `token` for `max_age_secs`.
pub fn store(req: &HttpRequest, response: &mut HttpResponse, token: String, max_age_secs: u64) {
    let age = CookieDuration::seconds(i64::try_from(max_age_secs).unwrap_or(i64::MAX));
    set(req, response, Cookie::build(NAME, token).max_age(age));
}

/// In cookie mode, removes the cookie (sign-out, or a token refused).
pub fn clear(req: &HttpRequest, response: &mut HttpResponse) {
    if requested(req) {
        set(req, response, Cookie::build(NAME, "").max_age(CookieDuration::ZERO));
    }
}

fn set(req: &HttpRequest, response: &mut HttpResponse, cookie: actix_web::cookie::CookieBuilder<'static>) {
    // `Secure` whenever the client reached us over TLS (directly or, behind a
    // trusted proxy, as the proxy says); plain-HTTP localhost needs it off.
    let secure = req.connection_info().scheme() == "https";
    let cookie = cookie.path(PATH).http_only(true).same_site(SameSite::Strict).secure(secure).finish();
    if let Err(e) = response.add_cookie(&cookie) {
        tracing::warn!(error = %e, "could not set the refresh cookie");
    }
}
