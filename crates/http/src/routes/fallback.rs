//! What answers when nothing else does, and the guarantee that every error
//! leaves as the contract's JSON envelope, never an empty or HTML body.

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpRequest, HttpResponse, ResponseError};

use crate::error::ApiError;

/// No route matched: the web client's files and routes, else 405 when the
/// path exists for another method, else 404.
pub async fn not_found(req: HttpRequest) -> HttpResponse {
    if let Some(page) = super::web_client::serve(&req) {
        return page;
    }
    if req.resource_map().has_resource(req.path()) {
        return ApiError::MethodNotAllowed.error_response();
    }
    ApiError::NotFound(format!("No route for {} {}", req.method(), req.path())).error_response()
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
