//! `X-Request-Id`: kept when the client sends a valid one, made up otherwise,
//! echoed on every response and in every error body.

use std::future::{Ready, ready};
use std::rc::Rc;

use actix_web::Error;
use actix_web::HttpMessage;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{HeaderName, HeaderValue};
use futures::future::LocalBoxFuture;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being handled, for error bodies built deep inside it.
pub fn current() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_else(|_| "unknown".to_owned())
}

/// The incoming id when it is valid, a new one otherwise.
pub fn keep_or_make(incoming: Option<&HeaderValue>) -> String {
    incoming
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_valid(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

/// The id as kept in request extensions.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

fn is_valid(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

pub struct RequestIdMiddleware;

impl<S, B> Transform<S, ServiceRequest> for RequestIdMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = RequestIdService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequestIdService { service: Rc::new(service) }))
    }
}

pub struct RequestIdService<S> {
    service: Rc<S>,
}

impl<S, B> Service<ServiceRequest> for RequestIdService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let id = keep_or_make(req.headers().get(&HEADER));
        req.extensions_mut().insert(RequestId(id.clone()));
        let service = Rc::clone(&self.service);
        Box::pin(REQUEST_ID.scope(id.clone(), async move {
            let mut res = service.call(req).await?;
            if let Ok(value) = HeaderValue::from_str(&id) {
                res.headers_mut().insert(HEADER, value);
            }
            Ok(res)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::is_valid;

    #[test]
    fn validity() {
        assert!(is_valid("abc-123_x.y"));
        assert!(!is_valid(""));
        assert!(!is_valid("has space"));
        assert!(!is_valid(&"a".repeat(129)));
    }
}
