//! What a `quarry-load` run reports.

use quarry_datagen::Anomaly;
use serde::Serialize;

/// The outcome of one run, printed as a line and optionally written as JSON.
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Events generated and sent.
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
}

impl Summary {
    /// One line for people.
    pub fn line(&self) -> String {
        format!(
            "sent {} events in {:.2} s: {:.0} events/s ({} requests, {} retries, {} rejected, \
             {:.1} MB raw JSON)",
            self.events,
            self.seconds,
            self.events_per_second,
            self.requests,
            self.retries,
            self.rejected,
            self.data_bytes as f64 / 1e6
        )
    }
}
