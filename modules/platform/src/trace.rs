//! Traces: OpenTelemetry spans for every request, REST call between modules, database
//! transaction, and event publish and consume, exported over OTLP (HTTP/protobuf) when
//! `traces.otlp_endpoint` is set (docs/operations.md, "Traces").
//!
//! The W3C `traceparent` carries a trace across every hop: HTTP headers both ways, the
//! outbox (a column beside each event, written in the transaction that raised it), and AMQP
//! message headers, so one trace follows a booking from `POST /book` through payment to
//! its email in either deployment.
//!
//! Off by default: spans then stay in `tracing` (the log lines' context), contexts are
//! empty and nothing is propagated; the request id (`X-Request-Id`) still joins a request's
//! log lines across processes.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::TraceSettings;

/// The header (HTTP) and message header (AMQP) that carry a trace context.
pub const TRACEPARENT: &str = "traceparent";

/// The exporting half of traces, kept by `main` to flush at exit.
pub struct Exporter(SdkTracerProvider);

impl Exporter {
    /// Sends the spans still buffered; call once, at exit.
    pub fn shutdown(self) {
        if let Err(e) = self.0.shutdown() {
            tracing::warn!(error = %e, "flushing the last spans failed");
        }
    }
}

/// The OpenTelemetry layer of the subscriber and its exporter, when `settings` turn traces
/// on; `service` names this process in the traces (`boxoffice-booking`, ...).
///
/// # Errors
/// The endpoint is not a valid URL, or the filter no valid directive.
pub fn layer<S>(
    settings: &TraceSettings,
    service: &str,
) -> Result<Option<(impl tracing_subscriber::Layer<S> + use<S>, Exporter)>, String>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let endpoint = settings.otlp_endpoint.trim_end_matches('/');
    if endpoint.is_empty() {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(format!("{endpoint}/v1/traces"))
        .with_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| format!("traces.otlp_endpoint {endpoint:?}: {e}"))?;
    let batches =
        BatchConfigBuilder::default().with_scheduled_delay(Duration::from_millis(settings.export_delay_ms)).build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(exporter).with_batch_config(batches).build())
        .with_resource(opentelemetry_sdk::Resource::builder().with_service_name(service.to_owned()).build())
        .build();
    let filter =
        EnvFilter::try_new(&settings.filter).map_err(|e| format!("traces.filter {:?}: {e}", settings.filter))?;
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("boxoffice"))
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_filter(filter);
    Ok(Some((layer, Exporter(provider))))
}

/// The `traceparent` that makes a span a child of `span`, when traces are on.
pub fn traceparent_of(span: &Span) -> Option<String> {
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// The `traceparent` of the span the caller runs in (see [`traceparent_of`]).
pub fn current() -> Option<String> {
    traceparent_of(&Span::current())
}

/// Makes `span` (just created, not entered yet) continue the trace `traceparent` names, or
/// start one when there is none or it is malformed, and records the trace id in its
/// `trace_id` field for the log lines.
pub fn follow(span: &Span, traceparent: Option<&str>) {
    if let Some(value) = traceparent {
        let carrier = HashMap::from([(TRACEPARENT.to_owned(), value.to_owned())]);
        let parent = TraceContextPropagator::new().extract(&carrier);
        if parent.span().span_context().is_valid() {
            // Fails only for a span already started, which callers never pass.
            let _ = span.set_parent(parent);
        }
    }
    let context = span.context();
    let ids = context.span().span_context().clone();
    if ids.is_valid() {
        span.record("trace_id", tracing::field::display(ids.trace_id()));
    }
}

/// A span name for a path: segments that are ids (UUIDs, numbers) become `{id}`, so names
/// stay few however many bookings there are.
pub fn path_template(path: &str) -> String {
    path.split('/')
        .map(|s| {
            if uuid::Uuid::parse_str(s).is_ok() || (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())) {
                "{id}"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_in_a_path_become_one_name() {
        assert_eq!(
            path_template("/api/bookings/0193f1c2-7d3e-7a4b-9c1d-2e3f4a5b6c7d/seats/12"),
            "/api/bookings/{id}/seats/{id}"
        );
        assert_eq!(path_template("/api/movies/movies"), "/api/movies/movies");
    }

    #[test]
    fn without_the_layer_nothing_is_propagated() {
        let span = tracing::info_span!("request", trace_id = tracing::field::Empty);
        follow(&span, Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
        assert_eq!(traceparent_of(&span), None);
    }
}
