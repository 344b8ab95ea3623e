//! Concurrent OTLP clients sending trace export requests over OTLP/HTTP
//! (`POST /v1/traces`, protobuf) or OTLP/gRPC (`TraceService/Export`).
//!
//! Like the Events API sender: a producer thread encodes requests into a bounded
//! channel (or all of them first, with `--pregenerate`), `--concurrency` clients
//! send them and retry on 429 / `RESOURCE_EXHAUSTED` / `UNAVAILABLE` with backoff.
//! A span counts as accepted once the server answered without listing it as
//! rejected (`partial_success`).

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes};
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use quarry_datagen::{DatagenError, Generator, OtlpBodies};
use tokio::sync::mpsc;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::{Channel, Endpoint};

use crate::args::{Args, Protocol};
use crate::cpu;
use crate::summary::{Produced, Settings, Summary, Totals};

/// Bodies queued per client ahead of sending.
const QUEUE_PER_CLIENT: usize = 2;
/// First wait after an overload answer; doubled on each retry of the same body.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
/// Longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Attempts per body before giving up.
const MAX_ATTEMPTS: u32 = 300;
/// The OTLP/gRPC trace export method.
const TRACE_EXPORT: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// One request ready to send.
struct Prepared {
    body: Bytes,
    spans: u64,
}

/// How one client reaches the server.
#[derive(Clone)]
enum Transport {
    Http {
        client: Box<HttpClient>,
        uri: String,
    },
    Grpc {
        channel: Channel,
    },
}

/// What one attempt at sending a body came to.
enum Attempt {
    /// The server answered; this many spans were rejected (and why).
    Done {
        rejected: u64,
        error: Option<String>,
    },
    /// The server shed load: retry later.
    Retry,
}

/// Sends every span of `generator` and reports the run.
pub async fn send_all(args: &Args, generator: Generator) -> Result<Summary, DatagenError> {
    let config = generator.config().clone();
    let anomaly = generator.anomaly().clone();
    let concurrency = args.concurrency.max(1);
    let batch_size = args.batch_size();
    let gzip = args.gzip && args.protocol == Protocol::OtlpHttp;
    let transport = match args.protocol {
        Protocol::OtlpGrpc => {
            let endpoint = Endpoint::from_shared(args.otlp_grpc_url.clone())
                .map_err(|e| DatagenError::InvalidConfig(format!("--otlp-grpc-url: {e}")))?;
            let channel = endpoint
                .connect()
                .await
                .map_err(|e| DatagenError::Http(format!("{}: {e}", args.otlp_grpc_url)))?;
            Transport::Grpc { channel }
        }
        _ => Transport::Http {
            client: Box::new(
                Client::builder(TokioExecutor::new())
                    .pool_max_idle_per_host(concurrency)
                    .build_http(),
            ),
            uri: format!("{}/v1/traces", args.url.trim_end_matches('/')),
        },
    };
    let totals = Arc::new(Totals::default());

    let cpu_before = args.server_pid.map(cpu::cpu_seconds).transpose()?;
    let (produced, started, receiver) = if args.pregenerate {
        let mut bodies = Vec::new();
        let produced = produce(generator, batch_size, gzip, |p| {
            bodies.push(p);
            true
        })?;
        let (sender, receiver) = mpsc::channel(bodies.len().max(1));
        for body in bodies {
            let _ = sender.try_send(body);
        }
        (Ok(produced), Instant::now(), receiver)
    } else {
        let (sender, receiver) = mpsc::channel(concurrency * QUEUE_PER_CLIENT);
        let started = Instant::now();
        let handle = std::thread::spawn(move || {
            produce(generator, batch_size, gzip, |p| {
                sender.blocking_send(p).is_ok()
            })
        });
        (Err(handle), started, receiver)
    };
    // With --pregenerate, CPU is measured from here, like the clock.
    let cpu_before = match (args.pregenerate, args.server_pid) {
        (true, Some(pid)) => Some(cpu::cpu_seconds(pid)?),
        _ => cpu_before,
    };

    let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (transport, totals, receiver) = (transport.clone(), totals.clone(), receiver.clone());
        let key = args.api_key.clone();
        workers.push(tokio::spawn(async move {
            loop {
                let next = receiver.lock().await.recv().await;
                let Some(prepared) = next else {
                    return Ok(());
                };
                send(&transport, &key, gzip, &prepared, &totals).await?;
            }
        }));
    }
    let mut failure = None;
    for worker in workers {
        let outcome = worker
            .await
            .map_err(|e| DatagenError::Http(format!("client task failed: {e}")))
            .and_then(|r| r);
        if let Err(error) = outcome {
            receiver.lock().await.close();
            failure.get_or_insert(error);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = match (args.server_pid, cpu_before) {
        (Some(pid), Some(before)) => Some(cpu::cpu_seconds(pid)? - before),
        _ => None,
    };
    let produced = match produced {
        Ok(produced) => produced,
        Err(handle) => handle
            .join()
            .map_err(|_| DatagenError::Http("the generator thread panicked".into()))??,
    };
    if let Some(error) = failure {
        return Err(error);
    }
    let settings = Settings {
        args,
        config: &config,
        anomaly,
        gzip,
        concurrency,
        batch_size,
    };
    Ok(Summary::of_run(
        settings,
        produced,
        &totals,
        seconds,
        cpu_seconds,
    ))
}

/// Encodes every request and hands each to `sink` until it returns false.
fn produce(
    generator: Generator,
    batch_size: usize,
    gzip: bool,
    mut sink: impl FnMut(Prepared) -> bool,
) -> Result<Produced, DatagenError> {
    let mut produced = Produced::default();
    let mut bodies = OtlpBodies::new(generator, batch_size);
    for body in bodies.by_ref() {
        produced.events += body.spans as u64;
        produced.body_bytes += body.body.len() as u64;
        produced.data_bytes = produced.body_bytes;
        let bytes = if gzip {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(&body.body)?;
            encoder.finish()?
        } else {
            body.body
        };
        let prepared = Prepared {
            body: Bytes::from(bytes),
            spans: body.spans as u64,
        };
        if !sink(prepared) {
            break;
        }
    }
    let generator = bodies.into_inner();
    produced.traces = generator.traces_started();
    produced.sample_trace_id = generator.trace_id(produced.traces / 2);
    Ok(produced)
}

/// Sends one request, retrying while the server sheds load, and counts the spans.
async fn send(
    transport: &Transport,
    key: &str,
    gzip: bool,
    prepared: &Prepared,
    totals: &Totals,
) -> Result<(), DatagenError> {
    totals.requests.fetch_add(1, Ordering::Relaxed);
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1..=MAX_ATTEMPTS {
        totals
            .wire_bytes
            .fetch_add(prepared.body.len() as u64, Ordering::Relaxed);
        let outcome = match transport {
            Transport::Http { client, uri } => post(client, uri, key, gzip, prepared).await?,
            Transport::Grpc { channel } => export(channel.clone(), key, prepared).await?,
        };
        match outcome {
            Attempt::Done { rejected, error } => {
                let rejected = rejected.min(prepared.spans);
                totals
                    .accepted
                    .fetch_add(prepared.spans - rejected, Ordering::Relaxed);
                if rejected > 0 {
                    totals.rejected.fetch_add(rejected, Ordering::Relaxed);
                    totals
                        .first_rejection
                        .lock()
                        .get_or_insert(error.unwrap_or_default());
                }
                return Ok(());
            }
            Attempt::Retry if attempt < MAX_ATTEMPTS => {
                totals.retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Attempt::Retry => break,
        }
    }
    Err(DatagenError::Http(format!(
        "still overloaded after {MAX_ATTEMPTS} attempts"
    )))
}

/// One OTLP/HTTP attempt.
async fn post(
    client: &HttpClient,
    uri: &str,
    key: &str,
    gzip: bool,
    prepared: &Prepared,
) -> Result<Attempt, DatagenError> {
    let mut request = Request::post(uri)
        .header(header::CONTENT_TYPE, "application/x-protobuf")
        .header("x-honeycomb-team", key);
    if gzip {
        request = request.header(header::CONTENT_ENCODING, "gzip");
    }
    let request = request
        .body(Full::new(prepared.body.clone()))
        .map_err(|e| DatagenError::Http(e.to_string()))?;
    let response = client
        .request(request)
        .await
        .map_err(|e| DatagenError::Http(format!("{uri}: {e}")))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| DatagenError::Http(format!("{uri}: {e}")))?
        .to_bytes();
    match status {
        StatusCode::OK => done(&body),
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => Ok(Attempt::Retry),
        _ => Err(DatagenError::Http(format!(
            "{uri}: {status}: {}",
            String::from_utf8_lossy(&body)
        ))),
    }
}

/// One OTLP/gRPC attempt.
async fn export(channel: Channel, key: &str, prepared: &Prepared) -> Result<Attempt, DatagenError> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| DatagenError::Http(format!("gRPC channel: {e}")))?;
    let mut request = tonic::Request::new(prepared.body.clone());
    let key = key
        .parse()
        .map_err(|_| DatagenError::InvalidConfig("the API key is not valid metadata".into()))?;
    request.metadata_mut().insert("x-honeycomb-team", key);
    let path = http::uri::PathAndQuery::from_static(TRACE_EXPORT);
    match grpc.unary(request, path, RawCodec).await {
        Ok(response) => done(response.get_ref()),
        Err(status)
            if matches!(
                status.code(),
                tonic::Code::ResourceExhausted | tonic::Code::Unavailable
            ) =>
        {
            Ok(Attempt::Retry)
        }
        Err(status) => Err(DatagenError::Http(format!("{TRACE_EXPORT}: {status}"))),
    }
}

/// Reads the rejected-span count of an export response.
fn done(body: &[u8]) -> Result<Attempt, DatagenError> {
    let response = ExportTraceServiceResponse::decode(body)
        .map_err(|e| DatagenError::Response(format!("export response: {e}")))?;
    Ok(match response.partial_success {
        Some(partial) => Attempt::Done {
            rejected: u64::try_from(partial.rejected_spans).unwrap_or(0),
            error: Some(partial.error_message),
        },
        None => Attempt::Done {
            rejected: 0,
            error: None,
        },
    })
}

/// A gRPC codec over already-encoded messages, so requests are encoded once, by
/// the producer, and the client's CPU is not in the measurement's way.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}
