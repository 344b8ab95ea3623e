//! Handing a source's requests to the ingest service until they are durable:
//! while the store sheds load the source waits (and so stops taking messages
//! from its broker) instead of dropping or buffering them.

use std::time::Duration;

use tokio::sync::watch;

use crate::error::ApiError;
use quarry_segment_store::SourcePositions;

use crate::ingest_service::{IngestOutcome, IngestRequest, IngestService, Prepared};
use crate::sources::status::SourceReporter;

/// First wait after the store refused a write as overloaded.
const RETRY_FIRST: Duration = Duration::from_millis(50);
/// Longest wait between two attempts.
const RETRY_MAX: Duration = Duration::from_secs(2);
/// Attempts at a request that failed with an internal error before its
/// message is dead-lettered (an internal error that repeats is the message's).
const INTERNAL_ATTEMPTS: u32 = 5;

/// What became of a request.
#[derive(Debug)]
pub enum Delivered {
    /// Its rows are durable (some items may have been refused: see the outcome).
    Stored(IngestOutcome),
    /// The input was refused as a whole; the reason.
    Refused(String),
}

/// The source is stopping; the request was not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped;

/// Writes a source's requests through the one ingest service.
#[derive(Clone)]
pub struct Deliverer {
    ingest: IngestService,
    reporter: SourceReporter,
    stop: watch::Receiver<bool>,
}

impl Deliverer {
    /// A deliverer for one source, giving up when `stop` turns true.
    pub fn new(
        ingest: IngestService,
        reporter: SourceReporter,
        stop: watch::Receiver<bool>,
    ) -> Deliverer {
        Deliverer {
            ingest,
            reporter,
            stop,
        }
    }

    /// Whether the source has been told to stop.
    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Sleeps `duration`, or less if the source is told to stop meanwhile.
    pub async fn sleep(&mut self, duration: Duration) -> Result<(), Stopped> {
        tokio::select! {
            () = tokio::time::sleep(duration) => {}
            _ = self.stop.wait_for(|stop| *stop) => {}
        }
        if self.stopping() {
            Err(Stopped)
        } else {
            Ok(())
        }
    }

    /// A receiver of the stop signal, for waits of the source's own.
    pub fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.clone()
    }

    /// Writes `request`, waiting while the store sheds load; returns once its
    /// rows are durable or it is refused as bad input.
    pub async fn deliver(&mut self, request: IngestRequest) -> Result<Delivered, Stopped> {
        let ingest = self.ingest.clone();
        self.retrying(|| {
            let (ingest, request) = (ingest.clone(), request.clone());
            async move {
                let admission = ingest.admit()?;
                ingest.ingest(&admission, request).await
            }
        })
        .await
    }

    /// Writes prepared requests with stream positions as one transaction,
    /// waiting while the store sheds load, like [`Deliverer::deliver`].
    pub async fn deliver_transaction(
        &mut self,
        environment: &str,
        prepared: &[&Prepared],
        positions: &SourcePositions,
    ) -> Result<Delivered, Stopped> {
        let ingest = self.ingest.clone();
        self.retrying(|| {
            let ingest = ingest.clone();
            async move {
                let admission = ingest.admit()?;
                ingest
                    .ingest_transaction(&admission, environment, prepared, positions.clone())
                    .await
            }
        })
        .await
    }

    /// Runs `attempt` until it succeeds, is refused as bad input, or the
    /// source stops; waits with backoff while the store sheds load.
    async fn retrying<F, Fut>(&mut self, mut attempt: F) -> Result<Delivered, Stopped>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<IngestOutcome, ApiError>>,
    {
        let mut wait = RETRY_FIRST;
        let mut internal_failures = 0;
        let mut paused = false;
        loop {
            if self.stopping() {
                return Err(Stopped);
            }
            let error = match attempt().await {
                Ok(outcome) => {
                    if paused {
                        self.reporter.paused(false);
                        tracing::info!(
                            source = self.reporter.name(),
                            "the store takes writes again; resuming"
                        );
                    }
                    return Ok(Delivered::Stored(outcome));
                }
                Err(error) => error,
            };
            match error {
                ApiError::BadRequest(reason)
                | ApiError::PayloadTooLarge(reason)
                | ApiError::UnsupportedMediaType(reason)
                | ApiError::NotFound(reason)
                | ApiError::Conflict(reason) => {
                    if paused {
                        self.reporter.paused(false);
                    }
                    return Ok(Delivered::Refused(reason));
                }
                ApiError::Overloaded(reason)
                | ApiError::Unavailable(reason)
                | ApiError::QuotaExceeded {
                    message: reason, ..
                } => {
                    if !paused {
                        paused = true;
                        self.reporter.paused(true);
                        self.reporter.error("overloaded", &reason);
                        tracing::warn!(source = self.reporter.name(), %reason, "the store sheds load; pausing this source");
                    }
                }
                other => {
                    internal_failures += 1;
                    self.reporter.error("store", &other.to_string());
                    tracing::warn!(source = self.reporter.name(), error = %other, attempt = internal_failures, "writing a message failed; retrying");
                    if internal_failures >= INTERNAL_ATTEMPTS {
                        if paused {
                            self.reporter.paused(false);
                        }
                        return Ok(Delivered::Refused(other.to_string()));
                    }
                }
            }
            self.sleep(wait).await?;
            wait = (wait * 2).min(RETRY_MAX);
        }
    }
}
