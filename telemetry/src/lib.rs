//! Logging and tracing for every recapp binary, and W3C trace context over gRPC.
//!
//! - [`init`] once at the top of `main` (inside the tokio runtime); keep the returned
//!   [`TelemetryGuard`] alive until the process ends, so buffered spans are flushed.
//! - [`init_for_tests`] in test helpers: silent unless `TEST_LOG` is set.
//! - [`grpc_server_span`] for `Server::builder().trace_fn(..)`: one span per request,
//!   continuing the caller's trace from its `traceparent` header.
//! - [`TraceContextInterceptor`] (or [`inject_trace_context`]) on clients, so the next
//!   service continues the same trace.
//! - [`current_trace_id`] for audit and security events.
//!
//! Every subscriber installed here has a tracing-opentelemetry layer, so spans always have
//! real trace ids, whether or not an OTLP collector is configured.

use std::sync::Once;

use anyhow::Context as _;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tonic::metadata::{Ascii, MetadataKey, MetadataMap, MetadataValue};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Noisy dependencies, quietened unless `RUST_LOG` names them explicitly.
const QUIET_DEPENDENCIES: &str = "tonic=warn,h2=warn,hyper=warn,tower=warn,sqlx=warn,sea_orm=warn";

/// The instrumentation scope of the spans this crate's tracer creates.
const TRACER_NAME: &str = "recapp";

/// Configures [`init`].
#[derive(Clone, Debug)]
pub struct TelemetryConfig {
    /// The service name reported with traces; `OTEL_SERVICE_NAME` overrides it.
    pub service_name: String,
    /// JSON lines (for collectors) instead of compact human-readable logs.
    pub json_logs: bool,
    /// The filter used when `RUST_LOG` is unset or empty, e.g. `"info"`.
    pub default_filter: String,
}

/// Keeps the tracer provider alive; dropping it flushes and shuts the provider down.
#[must_use = "dropping the guard shuts tracing down"]
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(error) = self.provider.shutdown() {
            eprintln!("Failed to shut down the tracer provider: {error}");
        }
    }
}

/// Installs the global tracing subscriber and the W3C trace-context propagator.
///
/// - an `EnvFilter` from `RUST_LOG` (else `default_filter`), with `tonic`, `h2`, `hyper`,
///   `tower`, `sqlx` and `sea_orm` at `warn` unless `RUST_LOG` says otherwise;
/// - logs on stderr, JSON when `json_logs`, else compact;
/// - always an OpenTelemetry layer backed by an `SdkTracerProvider`, so spans get trace ids;
/// - an OTLP gRPC batch exporter only when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
///   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; it is configured by the standard
///   `OTEL_EXPORTER_OTLP_*` variables and needs a tokio runtime (call `init` inside it).
///
/// Fails, rather than panicking, when a global subscriber is already set, when `RUST_LOG`
/// does not parse, or when the exporter cannot be built.
pub fn init(config: TelemetryConfig) -> anyhow::Result<TelemetryGuard> {
    let filter = env_filter(non_empty_env("RUST_LOG"), &config.default_filter)?;
    let service_name = non_empty_env("OTEL_SERVICE_NAME").unwrap_or(config.service_name);
    let provider = tracer_provider(service_name, otlp_endpoint_configured())?;

    let json = config.json_logs.then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(std::io::stderr)
    });
    let compact = (!config.json_logs).then(|| {
        tracing_subscriber::fmt::layer()
            .compact()
            .with_writer(std::io::stderr)
    });
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer(TRACER_NAME));

    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(json)
        .with(compact)
        .with(otel)
        .try_init();
    if let Err(error) = installed {
        // Nothing was exported through it yet; a failed shutdown here changes nothing.
        let _ = provider.shutdown();
        return Err(error).context("Failed to install the global tracing subscriber");
    }

    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(provider.clone());
    Ok(TelemetryGuard { provider })
}

/// A global subscriber for tests: silent unless `TEST_LOG` is set (then it logs to the
/// test writer, filtered by `RUST_LOG`, else `debug`). Safe to call any number of times,
/// also after another subscriber was set (then it does nothing). Spans get real trace ids.
pub fn init_for_tests() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let verbose = std::env::var_os("TEST_LOG").is_some();
        let filter = if verbose {
            env_filter(non_empty_env("RUST_LOG"), "debug")
        } else {
            env_filter(None, "info")
        }
        .unwrap_or_else(|_| EnvFilter::new("info"));
        let fmt = verbose.then(|| {
            tracing_subscriber::fmt::layer()
                .compact()
                .with_test_writer()
        });
        // The tracer keeps its provider alive for the rest of the test process.
        let provider = SdkTracerProvider::builder().build();
        let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer(TRACER_NAME));

        // Another subscriber may already be set (e.g. by the test itself): that is fine.
        let _ = tracing_subscriber::registry()
            .with(filter)
            .with(fmt)
            .with(otel)
            .try_init();
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    });
}

/// The span for one incoming gRPC request, for `Server::builder().trace_fn(grpc_server_span)`.
///
/// An info span named `grpc` whose OpenTelemetry name (`otel.name`) is the request path
/// (`/recapp.identity.v1.IdentityService/Login`), with `otel.kind = "server"`,
/// `rpc.system = "grpc"`, `rpc.service` and `rpc.method`. Its parent is the remote span
/// in the request's W3C `traceparent`/`tracestate` headers; without valid ones it starts a
/// new trace.
pub fn grpc_server_span(request: &http::Request<()>) -> tracing::Span {
    let path = request.uri().path();
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or(("", ""));
    let span = tracing::info_span!(
        "grpc",
        otel.name = path,
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
    );

    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(request.headers()));
    if parent.span().span_context().is_valid() {
        // Fails only when the span is disabled or there is no OpenTelemetry layer, and
        // then there is no trace to continue anyway.
        let _ = span.set_parent(parent);
    }
    span
}

/// The span for one incoming HTTP request (the gateway): an info span named `http`
/// whose OpenTelemetry name is `METHOD path`, continuing the W3C trace context of the
/// request's headers when they carry a valid one.
pub fn http_server_span(method: &str, path: &str, headers: &http::HeaderMap) -> tracing::Span {
    let span = tracing::info_span!(
        "http",
        otel.name = format!("{method} {path}"),
        otel.kind = "server",
        http.request.method = method,
        url.path = path,
    );
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
    span
}

/// The trace id (32 lowercase hex digits) of the current span, or `None` when there is no
/// current span or no OpenTelemetry layer gave it a valid trace id.
pub fn current_trace_id() -> Option<String> {
    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

/// Writes the current span's trace context as W3C `traceparent` (and `tracestate`) into
/// outgoing tonic metadata. Writes nothing when there is no valid current trace.
pub fn inject_trace_context(metadata: &mut MetadataMap) {
    let context = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut MetadataInjector(metadata));
}

/// A tonic client interceptor that calls [`inject_trace_context`] on every request:
/// `Client::with_interceptor(channel, TraceContextInterceptor)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceContextInterceptor;

impl tonic::service::Interceptor for TraceContextInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        inject_trace_context(request.metadata_mut());
        Ok(request)
    }
}

/// Reads propagation headers from an HTTP request.
struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Writes propagation headers into tonic metadata, skipping anything not valid there.
struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            MetadataKey::<Ascii>::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value),
        ) {
            self.0.insert(key, value);
        }
    }
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

fn otlp_endpoint_configured() -> bool {
    non_empty_env("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
        || non_empty_env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
}

/// The quiet defaults come first so that a directive in `rust_log` for the same target
/// replaces them (`RUST_LOG=tonic=debug` works).
fn env_filter(rust_log: Option<String>, default_filter: &str) -> anyhow::Result<EnvFilter> {
    let directives = rust_log.unwrap_or_else(|| default_filter.to_owned());
    EnvFilter::builder()
        .parse(format!("{QUIET_DEPENDENCIES},{directives}"))
        .with_context(|| format!("Invalid log filter {directives:?}"))
}

fn tracer_provider(service_name: String, export: bool) -> anyhow::Result<SdkTracerProvider> {
    let resource = Resource::builder().with_service_name(service_name).build();
    let builder = SdkTracerProvider::builder().with_resource(resource);
    if !export {
        return Ok(builder.build());
    }

    tokio::runtime::Handle::try_current()
        .context("The OTLP exporter needs a tokio runtime: call init inside it")?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .context("Failed to build the OTLP span exporter")?;
    Ok(builder.with_batch_exporter(exporter).build())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::SpanId;
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::trace::{SpanData, SpanExporter};
    use tracing_subscriber::Registry;

    use super::*;

    const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const PARENT_SPAN_ID: &str = "00f067aa0ba902b7";
    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    /// Keeps every finished span, to look at after the test.
    #[derive(Clone, Debug, Default)]
    struct Recorder(Arc<Mutex<Vec<SpanData>>>);

    impl SpanExporter for Recorder {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.lock().unwrap().extend(batch);
            Ok(())
        }
    }

    /// Runs `f` with a subscriber that has an OpenTelemetry layer, scoped to this thread.
    fn with_tracing<T>(f: impl FnOnce() -> T) -> (T, Vec<SpanData>) {
        let recorder = Recorder::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(recorder.clone())
            .build();
        let subscriber = Registry::default()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let result = tracing::subscriber::with_default(subscriber, f);
        provider.force_flush().unwrap();
        let spans = recorder.0.lock().unwrap().clone();
        (result, spans)
    }

    fn request(path: &str, headers: &[(&'static str, &'static str)]) -> http::Request<()> {
        let mut builder = http::Request::builder().uri(format!("http://localhost{path}"));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    fn traceparent_trace_id(metadata: &MetadataMap) -> Option<String> {
        let traceparent = metadata.get("traceparent")?.to_str().ok()?;
        traceparent.split('-').nth(1).map(str::to_owned)
    }

    #[test]
    fn a_request_with_a_traceparent_continues_that_trace() {
        let request = request(
            "/recapp.identity.v1.IdentityService/Login",
            &[("traceparent", TRACEPARENT)],
        );

        let (trace_id, _) = with_tracing(|| grpc_server_span(&request).in_scope(current_trace_id));

        assert_eq!(trace_id.as_deref(), Some(TRACE_ID));
    }

    #[test]
    fn the_server_span_is_named_by_the_path_and_is_a_child_of_the_remote_span() {
        let request = request(
            "/recapp.identity.v1.IdentityService/Login",
            &[("traceparent", TRACEPARENT), ("tracestate", "vendor=1")],
        );

        let ((), spans) = with_tracing(|| {
            let span = grpc_server_span(&request);
            span.in_scope(|| tracing::info!("Handled"));
        });

        let [span] = spans.as_slice() else {
            panic!("expected one span, got {spans:?}");
        };
        assert_eq!(span.name, "/recapp.identity.v1.IdentityService/Login");
        assert_eq!(span.span_context.trace_id().to_string(), TRACE_ID);
        assert_eq!(
            span.parent_span_id,
            SpanId::from_hex(PARENT_SPAN_ID).unwrap()
        );
        assert_eq!(span.span_kind, opentelemetry::trace::SpanKind::Server);
        let attribute = |key: &str| {
            span.attributes
                .iter()
                .find(|kv| kv.key.as_str() == key)
                .map(|kv| kv.value.to_string())
        };
        assert_eq!(attribute("rpc.system").as_deref(), Some("grpc"));
        assert_eq!(
            attribute("rpc.service").as_deref(),
            Some("recapp.identity.v1.IdentityService")
        );
        assert_eq!(attribute("rpc.method").as_deref(), Some("Login"));
    }

    #[test]
    fn injecting_inside_the_server_span_writes_a_traceparent_with_the_same_trace_id() {
        let request = request("/a.B/C", &[("traceparent", TRACEPARENT)]);

        let (metadata, _) = with_tracing(|| {
            grpc_server_span(&request).in_scope(|| {
                let mut metadata = MetadataMap::new();
                inject_trace_context(&mut metadata);
                metadata
            })
        });

        assert_eq!(traceparent_trace_id(&metadata).as_deref(), Some(TRACE_ID));
        let traceparent = metadata.get("traceparent").unwrap().to_str().unwrap();
        assert!(!traceparent.contains(PARENT_SPAN_ID), "{traceparent}");
    }

    #[test]
    fn the_interceptor_adds_the_current_traceparent_to_a_request() {
        use tonic::service::Interceptor as _;
        let request = request("/a.B/C", &[("traceparent", TRACEPARENT)]);

        let (outgoing, _) = with_tracing(|| {
            grpc_server_span(&request).in_scope(|| {
                TraceContextInterceptor
                    .call(tonic::Request::new(()))
                    .unwrap()
            })
        });

        assert_eq!(
            traceparent_trace_id(outgoing.metadata()).as_deref(),
            Some(TRACE_ID)
        );
    }

    #[test]
    fn a_request_without_a_traceparent_starts_a_fresh_valid_trace() {
        let first = request("/a.B/C", &[]);
        let second = request("/a.B/C", &[("traceparent", "00-not-a-valid-header-01")]);

        let ((first, second), _) = with_tracing(|| {
            (
                grpc_server_span(&first).in_scope(current_trace_id),
                grpc_server_span(&second).in_scope(current_trace_id),
            )
        });

        for trace_id in [&first, &second] {
            let trace_id = trace_id.as_deref().unwrap();
            assert_eq!(trace_id.len(), 32);
            assert!(
                trace_id
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
            assert_ne!(trace_id, "0".repeat(32));
            assert_ne!(trace_id, TRACE_ID);
        }
        assert_ne!(first, second);
    }

    #[test]
    fn there_is_no_trace_id_outside_a_span_or_without_an_opentelemetry_layer() {
        let request = request("/a.B/C", &[("traceparent", TRACEPARENT)]);

        let (outside, _) = with_tracing(current_trace_id);
        let plain = tracing::subscriber::with_default(Registry::default(), || {
            let span = grpc_server_span(&request);
            let mut metadata = MetadataMap::new();
            span.in_scope(|| inject_trace_context(&mut metadata));
            (span.in_scope(current_trace_id), metadata)
        });

        assert_eq!(outside, None);
        assert_eq!(plain.0, None);
        assert!(plain.1.is_empty());
    }

    #[test]
    fn a_directive_in_rust_log_overrides_the_quiet_default_for_that_target() {
        let filter = env_filter(Some("debug,tonic=trace".to_owned()), "info").unwrap();

        let shown = filter.to_string();

        assert!(shown.contains("tonic=trace"), "{shown}");
        assert!(!shown.contains("tonic=warn"), "{shown}");
        assert!(shown.contains("h2=warn"), "{shown}");
    }

    #[test]
    fn an_invalid_log_filter_is_an_error() {
        assert!(env_filter(Some("[[[".to_owned()), "info").is_err());
        assert!(env_filter(None, "info").is_ok());
    }

    #[test]
    fn the_otlp_exporter_outside_a_tokio_runtime_is_an_error_not_a_panic() {
        let outside = tracer_provider("test".to_owned(), true);

        assert!(outside.is_err());
    }

    #[test]
    fn the_otlp_exporter_builds_inside_a_tokio_runtime_and_shuts_down() {
        let runtime = tokio::runtime::Runtime::new().unwrap();

        let provider = runtime
            .block_on(async { tracer_provider("test".to_owned(), true) })
            .unwrap();

        provider.shutdown().unwrap();
    }

    /// The only test that touches the process-wide subscriber.
    #[test]
    fn init_installs_once_then_fails_without_panicking_and_init_for_tests_is_a_no_op() {
        let config = TelemetryConfig {
            service_name: "test".to_owned(),
            json_logs: true,
            default_filter: "info".to_owned(),
        };

        let guard = init(config.clone()).unwrap();
        init_for_tests();
        init_for_tests();
        let second = init(config);

        assert!(second.is_err());
        // Scoped subscribers of other test threads never apply here: the global one does,
        // and its OpenTelemetry layer gives spans real trace ids.
        let trace_id = tracing::info_span!("in-a-test").in_scope(current_trace_id);
        assert_eq!(trace_id.map(|id| id.len()), Some(32));
        drop(guard);
    }
}
