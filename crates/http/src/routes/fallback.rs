//! What answers when nothing else does, and the guarantee that every error
//! leaves as the contract's JSON envelope, never an empty or HTML body.

use std::collections::HashMap;
use std::sync::OnceLock;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpRequest, HttpResponse, ResponseError};

use crate::error::ApiError;

/// No route matched: the web client's files and routes, else 405 when the
/// path exists for another method, else 404.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    if let Some(page) = super::web_client::serve(&req) {
        return page;
    }
    if let Some(pattern) = req.resource_map().match_pattern(req.path()) {
        let mut response = ApiError::MethodNotAllowed.error_response();
        // RFC 9110 (15.5.6): a 405 must list the methods the resource takes.
        if let Ok(allow) = header::HeaderValue::from_str(allowed_methods(&pattern)) {
            response.headers_mut().insert(header::ALLOW, allow);
        }
        return response;
    }
    ApiError::NotFound(format!("No route for {} {}", req.method(), req.path())).error_response()
}

/// `HEAD` is `GET` without the body (RFC 9110 9.3.2 asks every server for
/// both): routed as a `GET`, whose answer actix-http sends with its headers
/// only, since it noted the request's method when it parsed it.
pub fn head_as_get<S>(mut req: ServiceRequest, service: &S) -> S::Future
where
    S: Service<ServiceRequest>,
{
    if req.method() == Method::HEAD {
        req.head_mut().method = Method::GET;
    }
    service.call(req)
}

/// The methods served on a route pattern, as an `Allow` value. Handlers are
/// registered one resource per method, each guarded by its method, so actix
/// cannot tell which methods a path takes (its own 405s only know the one
/// resource they matched); the OpenAPI document, built from the same route
/// list as the server, can. The routes outside it (`/metrics`, the API
/// document and its viewer, the `/ws` upgrade) are all GET-only.
fn allowed_methods(pattern: &str) -> &'static str {
    static BY_PATTERN: OnceLock<HashMap<String, String>> = OnceLock::new();
    let by_pattern = BY_PATTERN.get_or_init(|| {
        crate::openapi()
            .paths
            .paths
            .into_iter()
            .map(|(path, item)| {
                let methods = [
                    ("GET", item.get.is_some()),
                    ("HEAD", item.get.is_some()),
                    ("PUT", item.put.is_some()),
                    ("POST", item.post.is_some()),
                    ("DELETE", item.delete.is_some()),
                    ("OPTIONS", item.options.is_some()),
                    ("PATCH", item.patch.is_some()),
                    ("TRACE", item.trace.is_some()),
                ];
                let allowed: Vec<&str> = methods.iter().filter(|(_, served)| *served).map(|(m, _)| *m).collect();
                (path, allowed.join(", "))
            })
            .collect()
    });
    by_pattern.get(pattern).map_or("GET, HEAD", String::as_str)
}

/// Rewrites an error response that is not JSON (actix's own 405, 404, 413 ...)
/// into the envelope for its status.
pub fn ensure_json_error<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .response()
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let error = match res.status() {
        StatusCode::BAD_REQUEST => ApiError::BadRequest("The request is malformed.".into()),
        StatusCode::UNAUTHORIZED => ApiError::Unauthenticated("Authentication is required.".into()),
        StatusCode::FORBIDDEN => ApiError::Forbidden("Not allowed.".into()),
        StatusCode::NOT_FOUND => ApiError::NotFound(format!("No route for {}", res.request().path())),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(
            res.request().app_data::<actix_web::web::Data<crate::HttpConfig>>().map_or(0, |c| c.body_limit),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType,
        StatusCode::SERVICE_UNAVAILABLE => ApiError::Unavailable("unknown".into()),
        status if status.is_client_error() => ApiError::BadRequest(format!("The request was refused ({status}).")),
        status => ApiError::Internal(anyhow::anyhow!("unhandled error response {status}")),
    };
    let (req, original) = res.into_parts();
    let mut rewritten: HttpResponse<BoxBody> = error.error_response();
    // Keep headers such as `Allow` on 405.
    for (name, value) in original.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rewritten.headers_mut().insert(name.clone(), value.clone());
        }
    }
    let res = ServiceResponse::new(req, rewritten).map_body(|_, body| EitherBody::right(body));
    Ok(ErrorHandlerResponse::Response(res))
}
