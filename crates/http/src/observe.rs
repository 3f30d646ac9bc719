//! Per-request metrics and logs: `http_request_duration_seconds` labelled by
//! the matched route pattern (never the raw path, so ids cannot explode the
//! label set), and one structured log line per request.

use std::future::{Ready, ready};
use std::rc::Rc;
use std::time::Instant;

use actix_web::Error;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use futures::future::LocalBoxFuture;

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
        let service = Rc::clone(&self.service);
        Box::pin(async move {
            let result = service.call(req).await;
            let status = match &result {
                Ok(res) => res.status().as_u16(),
                Err(e) => e.as_response_error().status_code().as_u16(),
            };
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
