//! The trace context of the current span, for calls that leave the process.

use opentelemetry::propagation::Injector;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

struct Headers(Vec<(String, String)>);

impl Injector for Headers {
    fn set(&mut self, key: &str, value: String) {
        self.0.push((key.to_owned(), value));
    }
}

/// W3C trace-context headers (`traceparent`, `tracestate`) of the current
/// span, through the globally installed propagator; empty when tracing is
/// off (no propagator, or no sampled span).
pub fn trace_headers() -> Vec<(String, String)> {
    let context = tracing::Span::current().context();
    let mut headers = Headers(Vec::new());
    opentelemetry::global::get_text_map_propagator(|propagator| propagator.inject_context(&context, &mut headers));
    headers.0
}
