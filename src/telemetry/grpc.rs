//! One server span per RPC, following the OpenTelemetry RPC semantic conventions, and
//! the caller's W3C trace context as its parent.
//!
//! [`RpcSpanLayer`] wraps the whole gRPC server (a tower layer, outside the auth
//! interceptor, so refused calls are traced too). For each call it:
//!
//! - extracts `traceparent`/`tracestate` from the request's metadata (gRPC metadata are
//!   HTTP/2 headers) with the global propagator, and makes that context the parent of
//!   the call's span;
//! - opens the span `{rpc.service}/{rpc.method}` (kind `server`) with `rpc.system`,
//!   `rpc.service`, `rpc.method`, `server.address`, `server.port`,
//!   `network.peer.address`, `network.peer.port`; the handler, and whatever it starts
//!   (a RunNow's `run` span), runs inside it;
//! - records `rpc.grpc.status_code` when the status is known: in the response headers
//!   for a refused call, in the trailers after the last message otherwise; and ends the
//!   span then, so a stream (WatchRun, DownloadReport) is timed to its last message;
//! - records `rpc.server.call.duration`.
//!
//! Nothing of the request's metadata other than the trace context is read: the
//! `authorization` header never reaches a span.
//!
//! Health checks are not traced: probes every few seconds would bury the real calls.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use http_body::{Body, Frame, SizeHint};
use opentelemetry::propagation::Extractor;
use tonic::Code;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// The `tracing` target of the RPC server spans (the log lines leave them out: they
/// would repeat the peer address on every line).
pub const SPAN_TARGET: &str = "alis_import::rpc";

/// The service whose calls are not traced.
const HEALTH_SERVICE: &str = "grpc.health.v1.Health";

/// Wraps a gRPC server's routes in [`RpcSpan`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RpcSpanLayer;

impl<S> tower::Layer<S> for RpcSpanLayer {
    type Service = RpcSpan<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcSpan { inner }
    }
}

/// A gRPC server that opens a span per call (see the module doc).
#[derive(Debug, Clone)]
pub struct RpcSpan<S> {
    inner: S,
}

impl<S, B, ResBody> tower::Service<http::Request<B>> for RpcSpan<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<ResBody>>,
{
    type Response = http::Response<TracedBody<ResBody>>;
    type Error = S::Error;
    type Future = TracedResponse<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let call = Call::start(&request);
        // The interceptor runs inside `call`, the handler inside the future: both in
        // the span.
        let future = match &call {
            Some(call) => call.span.in_scope(|| self.inner.call(request)),
            None => self.inner.call(request),
        };
        TracedResponse { future, call }
    }
}

/// One traced call: its span, and what its duration metric needs. Ends the span when
/// dropped; a call dropped before its status was known (the client went away) is
/// recorded as CANCELLED.
#[derive(Debug)]
struct Call {
    span: Span,
    service: String,
    method: String,
    started: Instant,
    ended: bool,
}

impl Call {
    /// A span for a gRPC call (`POST /package.Service/Method`), or none for anything
    /// else and for health checks.
    fn start<B>(request: &http::Request<B>) -> Option<Self> {
        let (service, method) = service_and_method(request.uri().path())?;
        if service == HEALTH_SERVICE {
            return None;
        }
        let span = tracing::info_span!(
            target: SPAN_TARGET,
            "rpc",
            otel.name = %format_args!("{service}/{method}"),
            otel.kind = "server",
            otel.status_code = Empty,
            rpc.system = "grpc",
            rpc.service = service,
            rpc.method = method,
            rpc.grpc.status_code = Empty,
            server.address = Empty,
            server.port = Empty,
            network.peer.address = Empty,
            network.peer.port = Empty,
        );
        let addresses = request.extensions().get::<TcpConnectInfo>().or_else(|| {
            request
                .extensions()
                .get::<TlsConnectInfo<TcpConnectInfo>>()
                .map(TlsConnectInfo::get_ref)
        });
        if let Some(info) = addresses {
            if let Some(local) = info.local_addr() {
                span.record("server.address", local.ip().to_string())
                    .record("server.port", i64::from(local.port()));
            }
            if let Some(peer) = info.remote_addr() {
                span.record("network.peer.address", peer.ip().to_string())
                    .record("network.peer.port", i64::from(peer.port()));
            }
        }
        let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.extract(&HeaderExtractor(request.headers()))
        });
        // Fails only when no OpenTelemetry layer is installed (export off): then the
        // span is for nobody and has no parent to take.
        let _ = span.set_parent(parent);
        Some(Self {
            span,
            service: service.to_owned(),
            method: method.to_owned(),
            started: Instant::now(),
            ended: false,
        })
    }

    /// The call's status is known: records it and the duration, once.
    fn end(&mut self, code: Code) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        self.span.record("rpc.grpc.status_code", code as i64);
        if is_server_error(code) {
            self.span.record("otel.status_code", "ERROR");
        }
        super::metrics().record_rpc(&self.service, &self.method, code, self.started.elapsed());
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.end(Code::Cancelled);
    }
}

/// `/package.Service/Method` → (`package.Service`, `Method`).
fn service_and_method(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/'))
        .then_some((service, method))
}

/// The status codes that mark a server span as failed (semantic conventions: the
/// server's fault, not the caller's).
fn is_server_error(code: Code) -> bool {
    matches!(
        code,
        Code::Unknown
            | Code::DeadlineExceeded
            | Code::Unimplemented
            | Code::Internal
            | Code::Unavailable
            | Code::DataLoss
    )
}

/// The `grpc-status` of a header or trailer map.
fn grpc_status(headers: &http::HeaderMap) -> Option<Code> {
    let value = headers.get("grpc-status")?.to_str().ok()?;
    value.trim().parse::<i32>().ok().map(Code::from)
}

/// The request's headers as the propagator reads them.
struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

pin_project_lite::pin_project! {
    /// The inner server's response future, inside the call's span.
    pub struct TracedResponse<F> {
        #[pin]
        future: F,
        call: Option<Call>,
    }
}

impl<F, ResBody, E> Future for TracedResponse<F>
where
    F: Future<Output = Result<http::Response<ResBody>, E>>,
{
    type Output = Result<http::Response<TracedBody<ResBody>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let span = this.call.as_ref().map(|call| call.span.clone());
        let _entered = span.as_ref().map(Span::enter);
        let response = match this.future.poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(response) => response,
        };
        let mut call = this.call.take();
        Poll::Ready(match response {
            Ok(response) => {
                // A refused call is "trailers only": its status is in the headers.
                if let (Some(call), Some(code)) = (call.as_mut(), grpc_status(response.headers())) {
                    call.end(code);
                }
                Ok(response.map(|body| TracedBody { body, call }))
            }
            Err(error) => {
                if let Some(call) = call.as_mut() {
                    call.end(Code::Internal);
                }
                Err(error)
            }
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its call's span open until the trailers.
    pub struct TracedBody<B> {
        #[pin]
        body: B,
        call: Option<Call>,
    }
}

impl<B: Body> Body for TracedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        // A streaming handler's stream is polled here: keep it in the span.
        let span = this.call.as_ref().map(|call| call.span.clone());
        let _entered = span.as_ref().map(Span::enter);
        let frame = match this.body.poll_frame(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(frame) => frame,
        };
        if let Some(call) = this.call.as_mut() {
            match &frame {
                Some(Ok(frame)) => {
                    if let Some(code) = frame.trailers_ref().and_then(grpc_status) {
                        call.end(code);
                    }
                }
                Some(Err(_)) => call.end(Code::Internal),
                // Without trailers the status is OK (a trailers-only error ended above).
                None => call.end(Code::Ok),
            }
        }
        if frame.is_none() {
            *this.call = None;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grpc_path_names_its_service_and_method() {
        assert_eq!(
            service_and_method("/alis.certimport.v1.CertImportService/ListTasks"),
            Some(("alis.certimport.v1.CertImportService", "ListTasks"))
        );
        for not_grpc in [
            "/",
            "",
            "/Service",
            "/Service/",
            "//Method",
            "/a/b/c",
            "a/b",
        ] {
            assert_eq!(service_and_method(not_grpc), None, "{not_grpc:?}");
        }
    }

    #[test]
    fn only_the_servers_own_failures_mark_the_span_failed() {
        assert!(is_server_error(Code::Internal));
        assert!(is_server_error(Code::Unavailable));
        for callers_fault in [
            Code::Ok,
            Code::InvalidArgument,
            Code::NotFound,
            Code::Aborted,
            Code::PermissionDenied,
            Code::Unauthenticated,
            Code::FailedPrecondition,
        ] {
            assert!(!is_server_error(callers_fault), "{callers_fault:?}");
        }
    }

    #[test]
    fn the_status_is_read_from_grpc_status() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(grpc_status(&headers), None);
        headers.insert("grpc-status", http::HeaderValue::from_static("16"));
        assert_eq!(grpc_status(&headers), Some(Code::Unauthenticated));
        headers.insert("grpc-status", http::HeaderValue::from_static("x"));
        assert_eq!(grpc_status(&headers), None);
    }
}
