//! Logs and traces. Logs go to stdout (JSON lines unless on a terminal),
//! filtered by `RUST_LOG`. With `OTEL_EXPORTER_OTLP_ENDPOINT` set, spans are
//! also exported over OTLP/HTTP (protobuf), in batches from a thread of
//! their own, and incoming and outgoing W3C `traceparent` headers are
//! honoured; without it nothing is exported. The standard `OTEL_*`
//! variables the SDK knows (`OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`,
//! `OTEL_EXPORTER_OTLP_HEADERS`, ...) apply.

use std::io::IsTerminal as _;

use anyhow::Context as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// Keeps the exporter alive; `shutdown` sends what is still buffered.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports every span still buffered (bounded by the SDK's timeouts).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("specgen: flushing traces failed: {e}");
        }
    }

    /// Exports what is buffered now (tests use it to read a trace at once).
    pub fn flush(&self) {
        if let Some(provider) = &self.provider {
            let _ = provider.force_flush();
        }
    }
}

/// Installs the global subscriber. Call it outside any async runtime: the
/// exporter's HTTP client is a blocking one, on its own thread.
pub fn init(log_filter: &str, otlp_endpoint: Option<&str>) -> anyhow::Result<Telemetry> {
    // actix-http logs every malformed request it refuses (a client's fault,
    // answered 400) at ERROR: that would page whoever watches error logs.
    let log_filter = if log_filter.contains("actix_http") {
        log_filter.to_owned()
    } else {
        format!("{log_filter},actix_http::h1::dispatcher=off")
    };
    let log_filter = EnvFilter::try_new(&log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = if std::io::stdout().is_terminal() {
        tracing_subscriber::fmt::layer().with_filter(log_filter).boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_filter(log_filter)
            .boxed()
    };
    let provider = otlp_endpoint.map(tracer_provider).transpose()?;
    // Spans at info and above are traced whatever RUST_LOG keeps for logs;
    // dependencies' spans are left out.
    let traces = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("specgen"))
            .with_filter(EnvFilter::new("warn,specgen=info,specgen_app=info,specgen_http=info,specgen_gateway=info"))
    });
    tracing_subscriber::registry().with(logs).with(traces).try_init().context("installing the log subscriber")?;
    if provider.is_some() {
        opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
    }
    Ok(Telemetry { provider })
}

fn tracer_provider(endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
    // The variable names the collector's base URL; traces go to /v1/traces
    // unless the signal-specific variable says otherwise.
    let traces_url = std::env::var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .unwrap_or_else(|_| format!("{}/v1/traces", endpoint.trim_end_matches('/')));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(traces_url)
        // A collector that does not answer must not hold up the exporter.
        .with_timeout(std::time::Duration::from_secs(5))
        .build()
        .context("building the OTLP exporter")?;
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "specgen".to_owned());
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service)
                .with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
                .build(),
        )
        .build())
}
