//! OTLP/gRPC: the trace, logs and metrics `Export` services on their own port.
//!
//! The services are written against tonic's server machinery with a pass-through
//! codec instead of the generated `*ServiceServer`s, for two reasons: a request
//! that is not valid protobuf must be answered `INVALID_ARGUMENT` (the generated
//! codec answers `INTERNAL`), and decoding belongs on the blocking pool with the
//! rest of the CPU-bound work, not on the async runtime. Responses are the
//! generated `Export*ServiceResponse` messages, encoded once here.

use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, Bytes};
use quarry_ingest::otlp::OtlpFormat;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::{DATASET_HEADER, encode_response};
use crate::error::ApiError;
use crate::ingest_service::{IngestRequest, Payload, Signal};
use crate::state::AppState;

/// The gRPC status code of an error (the HTTP status's counterpart).
pub fn code_of(error: &ApiError) -> Code {
    match error {
        ApiError::BadRequest(_)
        | ApiError::PayloadTooLarge(_)
        | ApiError::UnsupportedMediaType(_)
        | ApiError::MethodNotAllowed => Code::InvalidArgument,
        ApiError::Unauthorized => Code::Unauthenticated,
        ApiError::NotFound(_) => Code::NotFound,
        ApiError::Conflict(_) => Code::AlreadyExists,
        ApiError::Overloaded(_) | ApiError::QuotaExceeded { .. } => Code::ResourceExhausted,
        ApiError::Unavailable(_) => Code::Unavailable,
        ApiError::WrongRole(_) => Code::FailedPrecondition,
        ApiError::Internal(_) | ApiError::Config(_) | ApiError::Startup(_) => Code::Internal,
    }
}

/// The gRPC status of an error; an overload carries `RetryInfo`, which OTLP
/// exporters honour before retrying.
pub fn status_of(error: &ApiError) -> Status {
    let code = code_of(error);
    let message = error.client_message();
    if code == Code::ResourceExhausted {
        Status::with_error_details(
            code,
            message,
            ErrorDetails::with_retry_info(Some(error.retry_delay())),
        )
    } else {
        Status::new(code, message)
    }
}

/// Which service a [`Receiver`] is.
pub trait SignalService: Send + Sync + 'static {
    /// The signal it receives.
    const SIGNAL: Signal;
    /// The gRPC service name.
    const NAME: &'static str;
}

/// `opentelemetry.proto.collector.trace.v1.TraceService`.
pub struct TraceService;
/// `opentelemetry.proto.collector.logs.v1.LogsService`.
pub struct LogsService;
/// `opentelemetry.proto.collector.metrics.v1.MetricsService`.
pub struct MetricsService;

impl SignalService for TraceService {
    const SIGNAL: Signal = Signal::Traces;
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

impl SignalService for LogsService {
    const SIGNAL: Signal = Signal::Logs;
    const NAME: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
}

impl SignalService for MetricsService {
    const SIGNAL: Signal = Signal::Metrics;
    const NAME: &'static str = "opentelemetry.proto.collector.metrics.v1.MetricsService";
}

/// tonic refuses messages beyond its limit with `OUT_OF_RANGE`, which OTLP
/// exporters retry; its limit is this many times the body limit, so that a body
/// over the body limit (but under this) gets the body limit's `INVALID_ARGUMENT`.
const GRPC_SIZE_SLACK: usize = 2;

/// The method every OTLP service has.
const EXPORT_METHOD: &str = "Export";

/// One OTLP gRPC service over the shared state.
pub struct Receiver<S> {
    state: AppState,
    _service: PhantomData<S>,
}

impl<S> Receiver<S> {
    /// The service over `state`.
    pub fn new(state: AppState) -> Self {
        Receiver {
            state,
            _service: PhantomData,
        }
    }
}

impl<S> Clone for Receiver<S> {
    fn clone(&self) -> Self {
        Receiver::new(self.state.clone())
    }
}

impl<S: SignalService> NamedService for Receiver<S> {
    const NAME: &'static str = S::NAME;
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S, B> tower::Service<http::Request<B>> for Receiver<S>
where
    S: SignalService,
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let is_export = request
            .uri()
            .path()
            .rsplit_once('/')
            .is_some_and(|(_, method)| method == EXPORT_METHOD);
        if !is_export {
            let status = Status::unimplemented(format!("{} has only {EXPORT_METHOD}", S::NAME));
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let max_body_bytes = self.state.ingest.limits().max_body_bytes;
        let handler = ExportHandler::<S> {
            state: self.state.clone(),
            _service: PhantomData,
        };
        Box::pin(async move {
            let mut grpc = Grpc::new(PassThrough)
                .accept_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Zstd)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(max_body_bytes.saturating_mul(GRPC_SIZE_SLACK));
            Ok(grpc.unary(handler, request).await)
        })
    }
}

/// Handles one `Export` call with the request message still encoded.
struct ExportHandler<S> {
    state: AppState,
    _service: PhantomData<S>,
}

impl<S: SignalService> UnaryService<Bytes> for ExportHandler<S> {
    type Response = Bytes;
    type Future = BoxFuture<Result<tonic::Response<Bytes>, Status>>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let state = self.state.clone();
        Box::pin(async move {
            let outcome = async {
                let admission = state.ingest.admit()?;
                let (metadata, _extensions, body) = request.into_parts();
                let headers = metadata.into_headers();
                let environment = state.auth.environment(&headers)?;
                let dataset_override = headers
                    .get(DATASET_HEADER)
                    .and_then(|value| value.to_str().ok())
                    .map(|value| value.trim().to_owned())
                    .filter(|value| !value.is_empty());
                let request = IngestRequest {
                    environment,
                    body,
                    // gRPC bodies arrive decompressed.
                    content_encoding: None,
                    payload: Payload::Otlp {
                        signal: S::SIGNAL,
                        format: OtlpFormat::Protobuf,
                        dataset_override,
                    },
                };
                state.ingest.ingest(&admission, request).await
            }
            .await;
            match outcome {
                Ok(exported) => Ok(tonic::Response::new(Bytes::from(encode_response(
                    S::SIGNAL,
                    &exported,
                )))),
                Err(error) => Err(status_of(&error)),
            }
        })
    }
}

/// A codec that hands request messages over undecoded and writes responses that
/// are already encoded.
#[derive(Debug, Clone, Copy, Default)]
struct PassThrough;

impl Codec for PassThrough {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = PassThrough;
    type Decoder = PassThrough;

    fn encoder(&mut self) -> Self::Encoder {
        PassThrough
    }

    fn decoder(&mut self) -> Self::Decoder {
        PassThrough
    }
}

impl Encoder for PassThrough {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for PassThrough {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_grpc_codes() {
        assert_eq!(
            code_of(&ApiError::BadRequest("x".into())),
            Code::InvalidArgument
        );
        assert_eq!(
            code_of(&ApiError::PayloadTooLarge("x".into())),
            Code::InvalidArgument
        );
        assert_eq!(code_of(&ApiError::Unauthorized), Code::Unauthenticated);
        assert_eq!(
            code_of(&ApiError::Unavailable("x".into())),
            Code::Unavailable
        );
        assert_eq!(code_of(&ApiError::Internal("x".into())), Code::Internal);
        let status = status_of(&ApiError::Overloaded("busy".into()));
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(status.message(), "busy");
        let details = status.get_error_details();
        assert_eq!(
            details.retry_info().and_then(|info| info.retry_delay),
            Some(crate::error::RETRY_DELAY)
        );
    }
}
