//! OpenTelemetry traces for vidq.
//!
//! - [`init`] installs the tracing subscriber of a binary: its log lines, and, only when
//!   `otel.endpoint` is set, an OTLP/HTTP (protobuf) export of the spans of vidq's own crates.
//!   Without an endpoint no exporter is built and nothing leaves the process.
//! - The API continues a caller's W3C `traceparent` ([`continue_trace`]) and stores the
//!   request span's context with the job ([`job_trace`]); each task of the job is a span whose
//!   parent is that stored context ([`set_parent`]), so one job is one trace.
//!
//! Spans keep their OpenTelemetry context unstarted until they end or get a child (context
//! activation is off), so a task's span may be given its parent after the task has read the
//! job record, as long as no child span was opened before.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::Layer as _;
use vidq_core::{LogSettings, TelemetryError, TraceContext};

/// The `[otel]` section of the worker's and the API's settings. Everything is off unless
/// `endpoint` is set.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtelSettings {
    /// The OTLP/HTTP base URL of a collector, e.g. `http://otel-collector:4318`; spans go to
    /// its `/v1/traces` (appended unless the path already ends with it).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// `service.name` of the exported spans; the binary's own name when unset.
    #[serde(default)]
    pub service_name: Option<String>,
    /// The share of new traces sampled, 0.0 to 1.0 (a trace continued from a caller follows
    /// the caller's sampled flag).
    #[serde(default = "default_ratio")]
    pub sample_ratio: f64,
    /// Headers sent with every export (e.g. a collector's API key). Secret: never logged.
    #[serde(default)]
    pub headers: HashMap<String, SecretString>,
}

impl Default for OtelSettings {
    fn default() -> Self {
        Self {
            endpoint: None,
            service_name: None,
            sample_ratio: default_ratio(),
            headers: HashMap::new(),
        }
    }
}

impl std::fmt::Debug for OtelSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.headers.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("OtelSettings")
            .field("endpoint", &self.endpoint)
            .field("service_name", &self.service_name)
            .field("sample_ratio", &self.sample_ratio)
            .field("headers", &names)
            .finish()
    }
}

fn default_ratio() -> f64 {
    1.0
}

/// The export path under `otel.endpoint`.
const TRACES_PATH: &str = "/v1/traces";

impl OtelSettings {
    /// Checks the section; the error names the setting (`otel.endpoint`, ...) and what is
    /// wrong with it, never a header's value.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(endpoint) = &self.endpoint {
            traces_url(endpoint)?;
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(format!(
                "otel.sample_ratio: must be between 0.0 and 1.0, not {}",
                self.sample_ratio
            ));
        }
        if self.service_name.as_deref().is_some_and(str::is_empty) {
            return Err("otel.service_name: must not be empty".to_owned());
        }
        for (name, value) in &self.headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(format!("otel.headers: `{name}` is not a valid header name"));
            }
            if http::HeaderValue::from_str(value.expose_secret()).is_err() {
                return Err(format!(
                    "otel.headers.{name}: the value is not a valid header value"
                ));
            }
        }
        Ok(())
    }

    /// Whether spans are exported.
    #[must_use]
    pub fn enabled(&self) -> bool {
        self.endpoint.is_some()
    }
}

/// The `/v1/traces` URL of `endpoint`, or why `endpoint` is not an http(s) URL.
fn traces_url(endpoint: &str) -> Result<String, String> {
    let bad = |why: &str| format!("otel.endpoint: {why}");
    let url = url::Url::parse(endpoint).map_err(|e| bad(&format!("not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must be an http:// or https:// URL (OTLP/HTTP)"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("has no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not hold credentials; put them in otel.headers"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or fragment"));
    }
    let base = url.as_str().trim_end_matches('/');
    if base.ends_with(TRACES_PATH) {
        Ok(base.to_owned())
    } else {
        Ok(format!("{base}{TRACES_PATH}"))
    }
}

/// Why tracing could not start.
#[derive(Debug, thiserror::Error)]
pub enum OtelError {
    /// A setting of `[otel]` is wrong.
    #[error("invalid setting {0}")]
    Invalid(String),
    /// The exporter could not be built.
    #[error("building the OTLP exporter for otel.endpoint: {0}")]
    Exporter(String),
    /// The log side failed.
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
}

/// What [`init`] started; [`Telemetry::shutdown`] flushes the spans not yet exported.
#[must_use = "shut it down at exit, or the last spans are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether an exporter was built (`otel.endpoint` set).
    #[must_use]
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports what is buffered and stops the exporter, waiting at most `timeout`. Blocking:
    /// call it outside the async runtime or on a blocking thread.
    pub fn shutdown(self, timeout: Duration) {
        if let Some(provider) = self.provider
            && let Err(err) = provider.shutdown_with_timeout(timeout)
        {
            eprintln!("flushing the trace exporter: {err}");
        }
    }
}

/// The export layer: only the spans of vidq's own crates (not the exporter's, the HTTP
/// clients' or the queue library's), at `info` and above.
fn export_layer(
    provider: &SdkTracerProvider,
) -> impl tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync + 'static {
    let tracer = provider.tracer("vidq");
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_context_activation(false)
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_location(false)
        .with_filter(
            tracing_subscriber::filter::Targets::new().with_target("vidq", tracing::Level::INFO),
        )
}

/// Installs the global subscriber: log lines as `log` says, and the span export when
/// `otel.endpoint` is set (named `otel.service_name`, else `default_service`).
pub fn init(
    log: &LogSettings,
    otel: &OtelSettings,
    default_service: &str,
) -> Result<Telemetry, OtelError> {
    otel.validate().map_err(OtelError::Invalid)?;
    let provider = otel
        .endpoint
        .as_deref()
        .map(|endpoint| build_provider(endpoint, otel, default_service))
        .transpose()?;
    vidq_core::telemetry::init_with(log, provider.as_ref().map(export_layer))?;
    Ok(Telemetry { provider })
}

fn build_provider(
    endpoint: &str,
    otel: &OtelSettings,
    default_service: &str,
) -> Result<SdkTracerProvider, OtelError> {
    let url = traces_url(endpoint).map_err(OtelError::Invalid)?;
    let headers = otel
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.expose_secret().to_owned()))
        .collect();
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(url)
        .with_timeout(Duration::from_secs(10))
        .with_headers(headers)
        .build()
        .map_err(|e| OtelError::Exporter(e.to_string()))?;
    let service = otel
        .service_name
        .clone()
        .unwrap_or_else(|| default_service.to_owned());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .build();
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(otel.sample_ratio)));
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(sampler)
        .with_resource(resource)
        .build())
}

/// The OpenTelemetry context a W3C `traceparent` (and `tracestate`) carries; an empty one
/// (a new trace) when it is absent or malformed.
#[must_use]
pub fn extract(traceparent: Option<&str>, tracestate: Option<&str>) -> opentelemetry::Context {
    let mut carrier = HashMap::new();
    if let Some(parent) = traceparent {
        carrier.insert("traceparent".to_owned(), parent.trim().to_owned());
    }
    if let Some(state) = tracestate {
        carrier.insert("tracestate".to_owned(), state.trim().to_owned());
    }
    TraceContextPropagator::new().extract(&carrier)
}

fn header<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Makes the current span (a request handler's) continue the trace of the request's
/// `traceparent`, if it has a valid one; call it first thing in the handler.
pub fn continue_trace(headers: &http::HeaderMap) {
    let cx = extract(
        header(headers, "traceparent"),
        header(headers, "tracestate"),
    );
    if cx.span().span_context().is_valid() {
        let _ = Span::current().set_parent(cx);
    }
}

/// The trace context to store with a job created by the current request: the current span's
/// when spans are exported, else the caller's own `traceparent` when valid (so a worker that
/// exports still joins the caller's trace), else none.
#[must_use]
pub fn job_trace(headers: &http::HeaderMap) -> Option<TraceContext> {
    let cx = Span::current().context();
    let cx = if cx.span().span_context().is_valid() {
        cx
    } else {
        extract(
            header(headers, "traceparent"),
            header(headers, "tracestate"),
        )
    };
    inject(&cx)
}

fn inject(cx: &opentelemetry::Context) -> Option<TraceContext> {
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(cx, &mut carrier);
    Some(TraceContext {
        traceparent: carrier.remove("traceparent")?,
        tracestate: carrier.remove("tracestate").filter(|s| !s.is_empty()),
    })
}

/// Makes `span` a child of the stored `trace` (a job's), when there is one. Call it before
/// any child span of `span` is opened.
pub fn set_parent(span: &Span, trace: Option<&TraceContext>) {
    let Some(trace) = trace else { return };
    let cx = extract(Some(&trace.traceparent), trace.tracestate.as_deref());
    if cx.span().span_context().is_valid()
        && let Err(err) = span.set_parent(cx)
    {
        tracing::debug!(error = %err, "the task span could not join its job's trace");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(toml_like: &[(&str, &str)]) -> OtelSettings {
        let mut value = serde_json::Map::new();
        for (k, v) in toml_like {
            value.insert((*k).to_owned(), serde_json::Value::String((*v).to_owned()));
        }
        serde_json::from_value(serde_json::Value::Object(value)).unwrap()
    }

    /// The only test here that installs the global subscriber.
    #[test]
    fn without_an_endpoint_no_exporter_is_built() {
        let telemetry = init(&LogSettings::default(), &OtelSettings::default(), "t").unwrap();
        assert!(!telemetry.exporting());
        telemetry.shutdown(Duration::from_secs(1));
        // A bad endpoint is refused before anything is installed, naming the setting.
        let bad = settings(&[("endpoint", "ftp://c/")]);
        let err = init(&LogSettings::default(), &bad, "t").err().unwrap();
        assert!(err.to_string().contains("otel.endpoint"), "{err}");
    }

    #[test]
    fn off_by_default() {
        let otel = OtelSettings::default();
        assert!(!otel.enabled());
        assert!(otel.validate().is_ok());
        assert!((otel.sample_ratio - 1.0).abs() < f64::EPSILON);
    }

    #[test]
    fn endpoint_gets_the_traces_path() {
        assert_eq!(
            traces_url("http://collector:4318").unwrap(),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces_url("https://c.example/otlp/").unwrap(),
            "https://c.example/otlp/v1/traces"
        );
        assert_eq!(
            traces_url("http://c:4318/v1/traces").unwrap(),
            "http://c:4318/v1/traces"
        );
    }

    #[test]
    fn bad_endpoints_are_refused_by_name() {
        for bad in [
            "collector:4318",
            "ftp://collector/",
            "not a url",
            "http://user:pw@c:4318",
            "http://c:4318/?x=1",
        ] {
            let err = settings(&[("endpoint", bad)]).validate().unwrap_err();
            assert!(err.starts_with("otel.endpoint: "), "{bad}: {err}");
            assert!(!err.contains("pw@"), "{err}");
        }
    }

    #[test]
    fn ratio_and_headers_are_checked_and_header_values_never_shown() {
        let mut otel = OtelSettings {
            sample_ratio: 1.5,
            ..OtelSettings::default()
        };
        assert!(
            otel.validate()
                .unwrap_err()
                .starts_with("otel.sample_ratio")
        );
        otel.sample_ratio = 0.5;
        otel.headers
            .insert("x-api-key".into(), SecretString::from("s3cret-value"));
        assert!(otel.validate().is_ok());
        assert!(!format!("{otel:?}").contains("s3cret"));
        otel.headers
            .insert("x-bad".into(), SecretString::from("line\nbreak-s3cret"));
        let err = otel.validate().unwrap_err();
        assert!(err.contains("otel.headers.x-bad"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn a_traceparent_round_trips() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let cx = extract(Some(parent), Some("vendor=x"));
        let back = inject(&cx).unwrap();
        assert_eq!(back.traceparent, parent);
        assert_eq!(back.tracestate.as_deref(), Some("vendor=x"));
        assert_eq!(back.trace_id(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert!(inject(&extract(Some("00-zz-11-01"), None)).is_none());
        assert!(inject(&extract(None, None)).is_none());
    }
}
