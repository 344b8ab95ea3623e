//! Concurrent clients posting batch bodies to `/1/batch/{dataset}`.
//!
//! A producer thread generates (and optionally gzips) bodies into a bounded
//! channel; `--concurrency` tasks take bodies from it and post them, retrying on
//! 429/503 with backoff. With `--pregenerate` every body is built first and the
//! clock measures sending alone.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, StatusCode, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use quarry_datagen::{BatchBodies, DatagenError, Generator};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::args::Args;
use crate::summary::{Produced, Settings, Summary, Totals};

/// Bodies queued per client ahead of sending.
const QUEUE_PER_CLIENT: usize = 2;
/// First wait after a 429/503; doubled on each retry of the same body.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
/// Longest wait between retries.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// Attempts per body before giving up.
const MAX_ATTEMPTS: u32 = 300;

/// One body ready to post.
pub struct Prepared {
    /// The dataset the body's events go to.
    pub dataset: &'static str,
    /// The batch body.
    pub body: Bytes,
    /// Events in it.
    pub events: u64,
}

/// One item of a batch response.
#[derive(Deserialize)]
struct ItemStatus {
    status: u16,
    #[serde(default)]
    error: Option<String>,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Sends every event of `generator` and reports the run.
pub async fn send_all(args: &Args, generator: Generator) -> Result<Summary, DatagenError> {
    let config = generator.config().clone();
    let anomaly = generator.anomaly().clone();
    let concurrency = args.concurrency.max(1);
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(concurrency)
        .build_http();
    let totals = Arc::new(Totals::default());
    let base = args.url.trim_end_matches('/').to_owned();
    let (gzip, batch_size) = (args.gzip, args.batch_size());
    let cpu_before = args.server_pid.map(crate::cpu::cpu_seconds).transpose()?;

    let (produced, started, receiver) = if args.pregenerate {
        let mut bodies = Vec::new();
        let produced = produce(generator, batch_size, gzip, |p| {
            bodies.push(p);
            true
        })?;
        let (sender, receiver) = mpsc::channel(bodies.len().max(1));
        for body in bodies {
            // The channel has room for every body.
            let _ = sender.try_send(body);
        }
        (ProducerResult::Done(produced), Instant::now(), receiver)
    } else {
        let (sender, receiver) = mpsc::channel(concurrency * QUEUE_PER_CLIENT);
        let started = Instant::now();
        let handle = std::thread::spawn(move || {
            produce(generator, batch_size, gzip, |p| {
                sender.blocking_send(p).is_ok()
            })
        });
        (ProducerResult::Running(handle), started, receiver)
    };

    let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (client, totals, receiver) = (client.clone(), totals.clone(), receiver.clone());
        let (base, key) = (base.clone(), args.api_key.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let next = receiver.lock().await.recv().await;
                let Some(prepared) = next else {
                    return Ok(());
                };
                post(&client, &base, &key, gzip, &prepared, &totals).await?;
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
            // Stop the others: closing the queue ends their loops.
            receiver.lock().await.close();
            failure.get_or_insert(error);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = match (args.server_pid, cpu_before) {
        (Some(pid), Some(before)) => Some(crate::cpu::cpu_seconds(pid)? - before),
        _ => None,
    };
    let produced = produced.finish()?;
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

/// The producer, running on its own thread or already finished.
enum ProducerResult {
    Done(Produced),
    Running(std::thread::JoinHandle<Result<Produced, DatagenError>>),
}

impl ProducerResult {
    fn finish(self) -> Result<Produced, DatagenError> {
        match self {
            ProducerResult::Done(produced) => Ok(produced),
            ProducerResult::Running(handle) => handle
                .join()
                .map_err(|_| DatagenError::Http("the generator thread panicked".into()))?,
        }
    }
}

/// Generates every body and hands each to `sink` until it returns false.
pub fn produce(
    generator: Generator,
    batch_size: usize,
    gzip: bool,
    mut sink: impl FnMut(Prepared) -> bool,
) -> Result<Produced, DatagenError> {
    let mut produced = Produced::default();
    let mut bodies = BatchBodies::new(generator, batch_size);
    for batch in bodies.by_ref() {
        produced.events += batch.events as u64;
        produced.data_bytes += batch.data_bytes as u64;
        produced.body_bytes += batch.body.len() as u64;
        let body = if gzip {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(&batch.body)?;
            encoder.finish()?
        } else {
            batch.body
        };
        let prepared = Prepared {
            dataset: batch.dataset,
            body: Bytes::from(body),
            events: batch.events as u64,
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

/// Posts one body, retrying while the server sheds load, and counts the statuses.
async fn post(
    client: &HttpClient,
    base: &str,
    key: &str,
    gzip: bool,
    prepared: &Prepared,
    totals: &Totals,
) -> Result<(), DatagenError> {
    let uri = format!("{base}/1/batch/{}", prepared.dataset);
    let mut backoff = FIRST_BACKOFF;
    totals.requests.fetch_add(1, Ordering::Relaxed);
    for attempt in 1..=MAX_ATTEMPTS {
        let mut request = Request::post(&uri)
            .header(header::CONTENT_TYPE, "application/json")
            .header("X-Honeycomb-Team", key);
        if gzip {
            request = request.header(header::CONTENT_ENCODING, "gzip");
        }
        let request = request
            .body(Full::new(prepared.body.clone()))
            .map_err(|e| DatagenError::Http(e.to_string()))?;
        totals
            .wire_bytes
            .fetch_add(prepared.body.len() as u64, Ordering::Relaxed);
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
            StatusCode::OK => return count_statuses(&body, prepared.events, totals),
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
                if attempt < MAX_ATTEMPTS =>
            {
                totals.retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            _ => {
                return Err(DatagenError::Http(format!(
                    "{uri}: {status}: {}",
                    String::from_utf8_lossy(&body)
                )));
            }
        }
    }
    Err(DatagenError::Http(format!(
        "{uri}: still overloaded after {MAX_ATTEMPTS} attempts"
    )))
}

/// Counts the per-event statuses of a batch response.
fn count_statuses(body: &[u8], events: u64, totals: &Totals) -> Result<(), DatagenError> {
    let items: Vec<ItemStatus> = serde_json::from_slice(body)
        .map_err(|e| DatagenError::Response(format!("batch response: {e}")))?;
    if items.len() as u64 != events {
        return Err(DatagenError::Response(format!(
            "{} statuses for {events} events",
            items.len()
        )));
    }
    for item in items {
        if item.status == 202 {
            totals.accepted.fetch_add(1, Ordering::Relaxed);
        } else {
            totals.rejected.fetch_add(1, Ordering::Relaxed);
            let mut first = totals.first_rejection.lock();
            if first.is_none() {
                *first = Some(format!(
                    "{}: {}",
                    item.status,
                    item.error.unwrap_or_default()
                ));
            }
        }
    }
    Ok(())
}
