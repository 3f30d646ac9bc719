//! Per-request metrics and logs: `http_request_duration_seconds` labelled by
//! the matched route pattern (never the raw path, so ids cannot explode the
//! label set), and one structured log line per request.

use std::future::{Ready, ready};
use std::rc::Rc;
use std::time::Instant;

use actix_web::Error;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use futures::future::LocalBoxFuture;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Request headers as the propagator reads them.
struct Headers<'a>(&'a actix_web::http::header::HeaderMap);

impl opentelemetry::propagation::Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(actix_web::http::header::HeaderName::as_str).collect()
    }
}

pub const HTTP_REQUEST_DURATION: &str = "http_request_duration_seconds";

pub struct Observe;

impl<S, B> Transform<S, ServiceRequest> for Observe
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = ObserveService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(ObserveService { service: Rc::new(service) }))
    }
}

pub struct ObserveService<S> {
    service: Rc<S>,
}

impl<S, B> Service<ServiceRequest> for ObserveService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let started = Instant::now();
        let method = req.method().to_string();
        let route = req.match_pattern().unwrap_or_else(|| "unmatched".to_owned());
        let path = req.path().to_owned();
        let span = tracing::info_span!(
            "http.request",
            otel.name = format!("{method} {route}"),
            otel.kind = "server",
            http.request.method = %method,
            http.route = %route,
            url.path = %path,
            http.response.status_code = tracing::field::Empty,
            request_id = tracing::field::Empty,
        );
        // An incoming W3C `traceparent` makes this request part of the
        // caller's trace.
        let parent = opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(req.headers())));
        let _ = span.set_parent(parent);
        let service = Rc::clone(&self.service);
        let request_span = span.clone();
        Box::pin(async move {
            let result = service.call(req).instrument(request_span).await;
            let status = match &result {
                Ok(res) => res.status().as_u16(),
                Err(e) => e.as_response_error().status_code().as_u16(),
            };
            span.record("http.response.status_code", status);
            span.record("request_id", crate::request_id::current());
            let elapsed = started.elapsed();
            metrics::histogram!(
                HTTP_REQUEST_DURATION,
                "method" => method.clone(),
                "route" => route.clone(),
                "status_code" => status.to_string(),
            )
            .record(elapsed.as_secs_f64());
            tracing::info!(
                request_id = crate::request_id::current(),
                method,
                route,
                path,
                status,
                elapsed_ms = elapsed.as_secs_f64() * 1e3,
                "request"
            );
            result
        })
    }
}
