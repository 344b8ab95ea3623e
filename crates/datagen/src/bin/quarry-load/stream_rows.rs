//! The frame of a `--to mqtt|kafka` run: it measures produce-to-durable
//! throughput, from before the first message until Quarry's stream sources
//! report every row stored.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use quarry_datagen::{Anomaly, DatagenError, Generator, GeneratorConfig};

use crate::args::Args;
use crate::summary::{Produced, Settings, Summary, Totals};

/// How often Quarry's `/metrics` is read while waiting for the rows.
pub const POLL: Duration = Duration::from_millis(100);
/// The counter of rows stored by Quarry's stream sources.
const ROWS_METRIC: &str = "quarry_stream_rows_total";

/// One run through a broker: where its measurements start, and its totals.
pub struct StreamRun<'a> {
    args: &'a Args,
    config: GeneratorConfig,
    anomaly: Anomaly,
    rows_before: u64,
    cpu_before: Option<f64>,
    started: Instant,
    /// Requests (messages) and bytes sent.
    pub totals: Totals,
}

impl<'a> StreamRun<'a> {
    /// Starts measuring: Quarry's stored rows and the server's CPU time now.
    pub async fn begin(
        args: &'a Args,
        generator: &Generator,
    ) -> Result<StreamRun<'a>, DatagenError> {
        Ok(StreamRun {
            args,
            config: generator.config().clone(),
            anomaly: generator.anomaly().clone(),
            rows_before: stored_rows(&args.url).await?,
            cpu_before: args.server_pid.map(crate::cpu::cpu_seconds).transpose()?,
            started: Instant::now(),
            totals: Totals::default(),
        })
    }

    /// Counts one message of `bytes` sent.
    pub fn sent(&self, bytes: usize) {
        self.totals.requests.fetch_add(1, Ordering::Relaxed);
        self.totals
            .wire_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// When waiting for the broker and Quarry gives up.
    pub fn deadline(&self) -> Instant {
        Instant::now() + Duration::from_secs(self.args.wait_secs)
    }

    /// Waits for every row of `produced` in Quarry, then sums the run up.
    pub async fn finish(
        self,
        produced: Produced,
        concurrency: usize,
        deadline: Instant,
    ) -> Result<Summary, DatagenError> {
        let args = self.args;
        wait_for_rows(
            &args.url,
            self.rows_before,
            produced.events,
            deadline,
            args.wait_secs,
        )
        .await?;
        let seconds = self.started.elapsed().as_secs_f64();
        let cpu_seconds = match (args.server_pid, self.cpu_before) {
            (Some(pid), Some(before)) => Some(crate::cpu::cpu_seconds(pid)? - before),
            _ => None,
        };
        self.totals
            .accepted
            .store(produced.events, Ordering::Relaxed);
        let settings = Settings {
            args,
            config: &self.config,
            anomaly: self.anomaly,
            gzip: false,
            concurrency,
            batch_size: args.batch_size(),
        };
        Ok(Summary::of_run(
            settings,
            produced,
            &self.totals,
            seconds,
            cpu_seconds,
        ))
    }
}

/// Waits until Quarry's stream sources stored `events` rows more than
/// `rows_before`, or fails at `deadline`.
async fn wait_for_rows(
    base: &str,
    rows_before: u64,
    events: u64,
    deadline: Instant,
    wait_secs: u64,
) -> Result<(), DatagenError> {
    let expected = rows_before + events;
    loop {
        let stored = stored_rows(base).await?;
        if stored >= expected {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(DatagenError::Response(format!(
                "Quarry stored {} of {events} rows within {wait_secs} s",
                stored - rows_before,
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Rows Quarry's stream sources stored so far (0 before the first).
pub async fn stored_rows(base: &str) -> Result<u64, DatagenError> {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let uri = format!("{}/metrics", base.trim_end_matches('/'));
    let response = client
        .get(
            uri.parse()
                .map_err(|_| DatagenError::InvalidConfig(format!("--url {base:?}")))?,
        )
        .await
        .map_err(|error| DatagenError::Http(format!("{uri}: {error}")))?;
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|error| DatagenError::Http(format!("{uri}: {error}")))?
        .to_bytes();
    let text = String::from_utf8_lossy(&body);
    Ok(text
        .lines()
        .filter(|line| line.starts_with(ROWS_METRIC))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64)
}
