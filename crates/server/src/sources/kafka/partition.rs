//! One Kafka partition's consumer: fetch, prepare, write rows and the next
//! offset as one store transaction, repeat.
//!
//! Exactly once: the offset after the last record of a fetch is committed in
//! the same WAL transaction as the rows the fetch produced
//! ([`quarry_segment_store::Store::append_transaction`]). A restart resumes
//! from the store's position, so a record is either durable with its offset
//! or neither is, and it is fetched again. The consumer group only learns the
//! offsets afterwards, for lag tools ([`super::group`]); it is never read.

use std::sync::Arc;
use std::time::Duration;

use quarry_segment_store::{SourcePositions, Store};
use rskafka::client::Client;
use rskafka::client::error::{Error as KafkaError, ProtocolError};
use rskafka::client::partition::{OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::record::RecordAndOffset;

use crate::ingest_service::{IngestService, Prepared};
use crate::sources::deliver::{Delivered, Deliverer, Stopped};
use crate::sources::kafka::transaction::{RecordParts, RecordShape, prepare_record};
use crate::sources::status::SourceReporter;

/// Longest a fetch waits on the broker for new records.
const FETCH_MAX_WAIT_MS: i32 = 250;
/// Most bytes one fetch asks for (and so, about, one transaction holds).
const FETCH_MAX_BYTES: i32 = 4 << 20;
/// How long one broker call may take before it counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// First wait after a broker call failed.
const RETRY_FIRST: Duration = Duration::from_millis(100);
/// Longest wait between two failed broker calls.
const RETRY_MAX: Duration = Duration::from_secs(5);

/// The name of a partition's position in the store.
pub fn position_key(source: &str, topic: &str, partition: i32) -> String {
    format!("{}{topic}/{partition}", positions_prefix(source))
}

/// What every position name of a source starts with.
pub fn positions_prefix(source: &str) -> String {
    format!("kafka/{source}/")
}

/// One partition's consumer.
pub struct PartitionConsumer {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The source's client.
    pub client: Arc<Client>,
    /// Where rows go, and where positions are kept.
    pub store: Arc<Store>,
    /// Decodes and writes.
    pub ingest: IngestService,
    /// How records become rows.
    pub shape: RecordShape,
    /// Waits while the store sheds load; knows when to stop.
    pub deliverer: Deliverer,
    /// The source's status.
    pub reporter: SourceReporter,
}

impl PartitionConsumer {
    /// Consumes until the source stops.
    pub async fn run(mut self) {
        let key = position_key(self.reporter.name(), &self.topic, self.partition);
        let Ok(partition) = self.partition_client().await else {
            return; // stopping
        };
        let mut next = self.store.source_positions().get(&key).copied();
        let mut wait = RETRY_FIRST;
        loop {
            if self.deliverer.stopping() {
                return;
            }
            let step = self.step(&partition, &key, &mut next).await;
            match step {
                Ok(()) => wait = RETRY_FIRST,
                Err(Step::Stopped) => return,
                Err(failed) => {
                    match failed {
                        Step::Broker(error) => {
                            self.reporter.connected(false);
                            self.reporter.error("connection", &error);
                            tracing::warn!(source = self.reporter.name(), topic = self.topic, partition = self.partition, %error, "a Kafka call failed; retrying");
                        }
                        Step::Store(error) => {
                            self.reporter.error("store", &error);
                            tracing::warn!(source = self.reporter.name(), topic = self.topic, partition = self.partition, %error, "writing a Kafka fetch failed; fetching it again");
                        }
                        Step::Stopped => return,
                    }
                    if self.deliverer.sleep(wait).await.is_err() {
                        return;
                    }
                    wait = (wait * 2).min(RETRY_MAX);
                }
            }
        }
    }

    /// The partition's client, retried until it exists or the source stops.
    async fn partition_client(&mut self) -> Result<PartitionClient, Stopped> {
        let mut wait = RETRY_FIRST;
        loop {
            let created = tokio::time::timeout(
                CALL_TIMEOUT,
                self.client.partition_client(
                    self.topic.clone(),
                    self.partition,
                    UnknownTopicHandling::Error,
                ),
            )
            .await;
            match created {
                Ok(Ok(client)) => return Ok(client),
                Ok(Err(error)) => {
                    self.reporter.error("connection", &error.to_string());
                    tracing::warn!(source = self.reporter.name(), topic = self.topic, partition = self.partition, %error, "no client for a Kafka partition yet; retrying");
                }
                Err(_) => self.reporter.error("connection", "timed out"),
            }
            self.deliverer.sleep(wait).await?;
            wait = (wait * 2).min(RETRY_MAX);
        }
    }

    /// One fetch, and its transaction when it brought records.
    async fn step(
        &mut self,
        partition: &PartitionClient,
        key: &str,
        next: &mut Option<i64>,
    ) -> Result<(), Step> {
        let offset = match *next {
            Some(offset) => offset,
            None => {
                // Never consumed: start at the oldest record the broker keeps.
                let earliest = self.call(partition.get_offset(OffsetAt::Earliest)).await?;
                *next = Some(earliest);
                earliest
            }
        };
        let fetched = self
            .call(partition.fetch_records(offset, 1..FETCH_MAX_BYTES, FETCH_MAX_WAIT_MS))
            .await;
        let (records, high_watermark) = match fetched {
            Ok(fetched) => fetched,
            Err(Step::Broker(error)) if error.contains("OffsetOutOfRange") => {
                *next = Some(self.reset(partition, offset).await?);
                return Ok(());
            }
            Err(other) => return Err(other),
        };
        self.reporter.connected(true);
        let records: Vec<RecordAndOffset> = records
            .into_iter()
            .filter(|record| record.offset >= offset)
            .collect();
        let Some(last) = records.last().map(|record| record.offset) else {
            // A high watermark below the position is not taken as a lost log:
            // Kafka says so with OffsetOutOfRange, and some compatible brokers
            // report a watermark short of their last batch's end.
            self.reporter
                .partition(&self.topic, self.partition, offset, high_watermark);
            return Ok(());
        };
        let mut parts = Vec::with_capacity(records.len());
        for record in &records {
            let prepared = prepare_record(
                &self.ingest,
                &self.shape,
                &self.reporter,
                &self.topic,
                self.partition,
                record,
            )
            .await
            .map_err(|error| Step::Store(format!("preparing a message: {error}")))?;
            parts.push(prepared);
        }
        self.write(key, parts, last + 1).await?;
        *next = Some(last + 1);
        self.reporter
            .partition(&self.topic, self.partition, last + 1, high_watermark);
        Ok(())
    }

    /// Writes `parts` with the partition's next offset as one transaction. If
    /// the store refuses the whole as bad input, writes each record on its own
    /// so only the refused ones go to the dead-letter dataset.
    async fn write(&mut self, key: &str, parts: Vec<RecordParts>, next: i64) -> Result<(), Step> {
        let prepared: Vec<&Prepared> = parts.iter().flat_map(RecordParts::prepared).collect();
        let positions = SourcePositions::from([(key.to_owned(), next)]);
        match self
            .deliverer
            .deliver_transaction(&self.shape.environment, &prepared, &positions)
            .await?
        {
            Delivered::Stored(_) => {
                self.count(&parts);
                return Ok(());
            }
            Delivered::Refused(reason) => {
                tracing::warn!(source = self.reporter.name(), topic = self.topic, partition = self.partition, %reason, "the store refused a fetch's rows; writing its messages one by one");
            }
        }
        for part in parts {
            let positions = SourcePositions::from([(key.to_owned(), part.offset + 1)]);
            let prepared: Vec<&Prepared> = part.prepared().collect();
            let written = self
                .deliverer
                .deliver_transaction(&self.shape.environment, &prepared, &positions)
                .await?;
            match written {
                Delivered::Stored(_) => self.count(std::slice::from_ref(&part)),
                Delivered::Refused(reason) => {
                    self.reporter.error("store", &reason);
                    tracing::error!(source = self.reporter.name(), topic = self.topic, partition = self.partition, offset = part.offset, %reason, "the store refused a message's rows; it is skipped");
                    let skipped = self
                        .deliverer
                        .deliver_transaction(&self.shape.environment, &[], &positions)
                        .await?;
                    if let Delivered::Refused(reason) = skipped {
                        return Err(Step::Store(format!("committing an offset: {reason}")));
                    }
                }
            }
        }
        Ok(())
    }

    /// Counts what a durable transaction stored: the messages' rows (not
    /// their dead letters') and the dead letters.
    fn count(&self, parts: &[RecordParts]) {
        let rows = parts
            .iter()
            .filter_map(|part| part.rows.as_ref())
            .map(Prepared::rows)
            .sum();
        self.reporter.stored(rows);
        for _ in parts.iter().filter(|part| part.dead_letter.is_some()) {
            self.reporter.dead_letter();
        }
    }

    /// The position after the broker said `offset` is outside its log
    /// (retention deleted it, or the log was truncated or lost): its earliest
    /// offset now, as `auto.offset.reset = earliest` would (a duplicate is
    /// preferred to a loss).
    async fn reset(&mut self, partition: &PartitionClient, offset: i64) -> Result<i64, Step> {
        let earliest = self.call(partition.get_offset(OffsetAt::Earliest)).await?;
        let latest = self.call(partition.get_offset(OffsetAt::Latest)).await?;
        self.reporter.error(
            "offset_reset",
            &format!(
                "offset {offset} is outside the log ({earliest}..{latest}); resuming at {earliest}"
            ),
        );
        tracing::warn!(
            source = self.reporter.name(),
            topic = self.topic,
            partition = self.partition,
            offset,
            earliest,
            latest,
            "the broker's log no longer holds this partition's position; resuming at its earliest offset"
        );
        Ok(earliest)
    }

    /// A broker call, bounded in time, cut short when the source stops.
    async fn call<T>(
        &mut self,
        call: impl Future<Output = Result<T, KafkaError>>,
    ) -> Result<T, Step> {
        let mut stop = self.deliverer.stop_signal();
        tokio::select! {
            result = tokio::time::timeout(CALL_TIMEOUT, call) => match result {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(error)) => Err(Step::Broker(describe(&error))),
                Err(_) => Err(Step::Broker(format!("no answer within {CALL_TIMEOUT:?}"))),
            },
            _ = stop.wait_for(|stop| *stop) => Err(Step::Stopped),
        }
    }
}

/// Why a step did not finish.
enum Step {
    Stopped,
    /// A broker call failed (retried after a wait).
    Broker(String),
    /// Preparing or writing the fetch failed (it is fetched again after a wait).
    Store(String),
}

impl From<Stopped> for Step {
    fn from(_: Stopped) -> Step {
        Step::Stopped
    }
}

/// A short description of a client error (rskafka's own repeats the request).
fn describe(error: &KafkaError) -> String {
    match error {
        KafkaError::ServerError {
            protocol_error,
            error_message,
            ..
        } => match (protocol_error, error_message) {
            (ProtocolError::OffsetOutOfRange, _) => "OffsetOutOfRange".into(),
            (protocol_error, Some(message)) => format!("{protocol_error}: {message}"),
            (protocol_error, None) => protocol_error.to_string(),
        },
        other => other.to_string(),
    }
}
