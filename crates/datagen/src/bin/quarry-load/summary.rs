//! What a `quarry-load` run reports.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use quarry_datagen::{Anomaly, GeneratorConfig};
use serde::Serialize;

use crate::args::Args;

/// Counters the clients of a run share.
#[derive(Default)]
pub struct Totals {
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
    pub requests: AtomicU64,
    pub retries: AtomicU64,
    pub wire_bytes: AtomicU64,
    pub first_rejection: Mutex<Option<String>>,
}

/// What the producer learned while generating.
#[derive(Default)]
pub struct Produced {
    /// Events (spans, for OTLP) generated.
    pub events: u64,
    /// Bytes of the events' raw JSON (the request bodies, for OTLP).
    pub data_bytes: u64,
    pub body_bytes: u64,
    pub traces: u64,
    pub sample_trace_id: String,
}

/// How a run was set up.
pub struct Settings<'a> {
    pub args: &'a Args,
    pub config: &'a GeneratorConfig,
    pub anomaly: Anomaly,
    pub gzip: bool,
    pub concurrency: usize,
    pub batch_size: usize,
}

/// The outcome of one run, printed as a line and optionally written as JSON.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// `events`, `otlp-grpc` or `otlp-http`.
    pub protocol: String,
    /// Events generated and sent (spans, for OTLP).
    pub events: u64,
    /// Events the server accepted (status 202 in the batch response).
    pub accepted: u64,
    /// Events the server refused.
    pub rejected: u64,
    /// The first refusal's error, if any.
    pub first_rejection: Option<String>,
    /// Batch requests sent (retries not counted).
    pub requests: u64,
    /// Requests retried after 429 or 503.
    pub retries: u64,
    /// Wall-clock seconds from the first request to the last response.
    pub seconds: f64,
    /// `accepted / seconds`.
    pub events_per_second: f64,
    /// Bytes of the events' JSON `data` objects (the raw event JSON).
    pub data_bytes: u64,
    /// Bytes of the uncompressed request bodies.
    pub body_bytes: u64,
    /// Bytes sent on the wire (after gzip, if enabled).
    pub wire_bytes: u64,
    /// Whether bodies were gzip-compressed.
    pub gzip: bool,
    /// Whether bodies were built before the clock started.
    pub pregenerated: bool,
    /// Concurrent clients.
    pub concurrency: usize,
    /// Events per request.
    pub batch_size: usize,
    /// Generator seed.
    pub seed: u64,
    /// Start of the generated time window, ns since the epoch.
    pub start_time_ns: i64,
    /// End of the generated time window, ns since the epoch.
    pub end_time_ns: i64,
    /// Traces generated.
    pub traces: u64,
    /// A trace id that exists in the data (the middle trace), for lookups.
    pub sample_trace_id: String,
    /// The injected anomaly.
    pub anomaly: Anomaly,
    /// CPU seconds the server used during the run (with --server-pid).
    pub server_cpu_seconds: Option<f64>,
    /// Server CPU seconds per million accepted events.
    pub server_cpu_seconds_per_million: Option<f64>,
    /// Accepted events per server CPU second: the throughput of one core.
    pub events_per_server_cpu_second: Option<f64>,
}

impl Summary {
    /// The summary of a finished run: its settings, what was generated, what the
    /// server answered, the wall-clock seconds and the server's CPU seconds.
    pub fn of_run(
        settings: Settings<'_>,
        produced: Produced,
        totals: &Totals,
        seconds: f64,
        cpu_seconds: Option<f64>,
    ) -> Summary {
        let accepted = totals.accepted.load(Ordering::Relaxed);
        let mut summary = Summary {
            protocol: settings.args.protocol.name().to_owned(),
            events: produced.events,
            accepted,
            rejected: totals.rejected.load(Ordering::Relaxed),
            first_rejection: totals.first_rejection.lock().clone(),
            requests: totals.requests.load(Ordering::Relaxed),
            retries: totals.retries.load(Ordering::Relaxed),
            seconds,
            events_per_second: accepted as f64 / seconds.max(f64::MIN_POSITIVE),
            data_bytes: produced.data_bytes,
            body_bytes: produced.body_bytes,
            wire_bytes: totals.wire_bytes.load(Ordering::Relaxed),
            gzip: settings.gzip,
            pregenerated: settings.args.pregenerate,
            concurrency: settings.concurrency,
            batch_size: settings.batch_size,
            seed: settings.config.seed,
            start_time_ns: settings.config.start_time_ns(),
            end_time_ns: settings.config.end_time_ns,
            traces: produced.traces,
            sample_trace_id: produced.sample_trace_id,
            anomaly: settings.anomaly,
            server_cpu_seconds: None,
            server_cpu_seconds_per_million: None,
            events_per_server_cpu_second: None,
        };
        summary.set_cpu(cpu_seconds);
        summary
    }

    /// Fills in the server CPU figures from the CPU seconds of the run.
    pub fn set_cpu(&mut self, cpu_seconds: Option<f64>) {
        self.server_cpu_seconds = cpu_seconds;
        if let Some(cpu) = cpu_seconds.filter(|cpu| *cpu > 0.0) {
            self.server_cpu_seconds_per_million = Some(cpu / (self.accepted as f64 / 1e6));
            self.events_per_server_cpu_second = Some(self.accepted as f64 / cpu);
        }
    }

    /// One line for people.
    pub fn line(&self) -> String {
        let mut line = format!(
            "{}: sent {} events in {:.2} s: {:.0} events/s ({} requests, {} retries, {} rejected, \
             {:.1} MB of bodies)",
            self.protocol,
            self.events,
            self.seconds,
            self.events_per_second,
            self.requests,
            self.retries,
            self.rejected,
            self.body_bytes as f64 / 1e6
        );
        if let (Some(cpu), Some(per_million), Some(per_core)) = (
            self.server_cpu_seconds,
            self.server_cpu_seconds_per_million,
            self.events_per_server_cpu_second,
        ) {
            line.push_str(&format!(
                "; server CPU {cpu:.2} s: {per_million:.2} CPU s per million events, \
                 {per_core:.0} events per CPU second"
            ));
        }
        line
    }
}
