//! Logs (text or JSON), traces (OTLP over gRPC when configured) and the Prometheus recorder.
//!
//! Metric names emitted elsewhere: `tether_hub_http_request_duration_seconds` (here, in
//! [`crate::http::observe`]); `tether_hub_keys_published`, `tether_hub_key_rotations_total`
//! and `tether_hub_tokens_minted_total` (the keys module).

use std::fmt;
use std::io::IsTerminal;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, TelemetryConfig};
use crate::http::observe::REQUEST_DURATION;

/// The OpenTelemetry `service.name`.
const SERVICE_NAME: &str = "tether-hub";

/// Latency buckets (seconds) of the request histogram: 1 ms to 10 s.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `telemetry.log_level` (or `RUST_LOG`) is not a valid filter.
    #[error("telemetry.log_level or RUST_LOG: {0}")]
    Filter(#[source] tracing_subscriber::filter::ParseError),
    /// The OTLP exporter could not be built.
    #[error("telemetry.otlp_endpoint: {0}")]
    Otlp(#[source] opentelemetry_otlp::ExporterBuildError),
    /// The Prometheus recorder could not be installed.
    #[error("metrics recorder: {0}")]
    Prometheus(#[source] metrics_exporter_prometheus::BuildError),
    /// A global subscriber was already installed.
    #[error("tracing subscriber: {0}")]
    Subscriber(#[source] tracing_subscriber::util::TryInitError),
}

/// Installed telemetry; call [`Telemetry::shutdown`] before exit to flush traces.
pub struct Telemetry {
    tracer_provider: Option<SdkTracerProvider>,
    prometheus: PrometheusHandle,
}

impl Telemetry {
    /// Installs the global subscriber and metrics recorder. Call once, from `main`.
    pub fn init(config: &TelemetryConfig) -> Result<Self, TelemetryError> {
        let prometheus = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.to_owned()), &LATENCY_BUCKETS)
            .and_then(PrometheusBuilder::install_recorder)
            .map_err(TelemetryError::Prometheus)?;

        // `RUST_LOG`, when set, overrides `telemetry.log_level` (debugging a deployment
        // without editing its config).
        let filter = match std::env::var("RUST_LOG") {
            Ok(directives) if !directives.is_empty() => EnvFilter::try_new(directives),
            _ => EnvFilter::try_new(&config.log_level),
        }
        .map_err(TelemetryError::Filter)?;
        let tracer_provider = match &config.otlp_endpoint {
            Some(endpoint) => {
                let exporter = opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(endpoint.as_str())
                    .build()
                    .map_err(TelemetryError::Otlp)?;
                let provider = SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(Resource::builder().with_service_name(SERVICE_NAME).build())
                    .build();
                opentelemetry::global::set_tracer_provider(provider.clone());
                Some(provider)
            }
            None => None,
        };
        let otel = tracer_provider.as_ref().map(|provider| {
            tracing_opentelemetry::layer().with_tracer(provider.tracer(SERVICE_NAME))
        });
        let registry = tracing_subscriber::registry().with(filter).with(otel);
        match config.log_format {
            LogFormat::Text => registry
                .with(tracing_subscriber::fmt::layer().with_ansi(std::io::stdout().is_terminal()))
                .try_init(),
            LogFormat::Json => registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .json()
                        .flatten_event(true)
                        .with_current_span(true)
                        .with_span_list(false),
                )
                .try_init(),
        }
        .map_err(TelemetryError::Subscriber)?;
        if let Some(endpoint) = &config.otlp_endpoint {
            tracing::info!(%endpoint, "exporting traces over OTLP");
        }
        Ok(Self {
            tracer_provider,
            prometheus,
        })
    }

    /// The handle `/metrics` renders.
    pub fn prometheus(&self) -> PrometheusHandle {
        self.prometheus.clone()
    }

    /// Flushes and stops the trace exporter.
    pub fn shutdown(self) {
        if let Some(provider) = self.tracer_provider
            && let Err(err) = provider.shutdown()
        {
            tracing::warn!(error = %err, "trace exporter did not shut down cleanly");
        }
    }
}

impl fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Telemetry")
            .field("otlp", &self.tracer_provider.is_some())
            .finish_non_exhaustive()
    }
}
