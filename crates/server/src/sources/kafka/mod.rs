//! A Kafka source (`[[sources.kafka]]`): every partition of its topics is
//! consumed into the store with exactly-once delivery.
//!
//! Tasks: the source's supervisor connects, finds the topics' partitions
//! (again every [`DISCOVER_INTERVAL`], so partitions added later are picked up)
//! and starts one [`partition::PartitionConsumer`] per partition; one more
//! task commits the durable offsets to the consumer group for lag tools
//! ([`group`]). Positions live in the store's WAL, committed with the rows
//! ([`partition`]); see docs/streams.md for the guarantees.
//!
//! Files: `partition` (one partition's fetch/write loop), `transaction` (a
//! fetch's records into rows and dead letters), `group` (group offset commits).

pub mod group;
pub mod partition;
pub mod transaction;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use quarry_segment_store::{SourcePositions, Store};
use rskafka::BackoffConfig;
use rskafka::client::{Client, ClientBuilder};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::config::KafkaSourceConfig;
use crate::ingest_service::IngestService;
use crate::sources::deliver::{Deliverer, Stopped};
use crate::sources::kafka::group::{GroupCommitter, Offsets};
use crate::sources::kafka::partition::{PartitionConsumer, positions_prefix};
use crate::sources::kafka::transaction::RecordShape;
use crate::sources::status::SourceReporter;

/// How often the topics' partitions are listed again.
const DISCOVER_INTERVAL: Duration = Duration::from_secs(10);
/// How often durable offsets are committed to the group.
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// How long connecting may take before it counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long rskafka retries one call on its own before it reports the error
/// (the consumer then reports it and retries itself).
const CLIENT_RETRY_DEADLINE: Duration = Duration::from_secs(5);
/// First wait before reconnecting.
const RECONNECT_FIRST: Duration = Duration::from_millis(200);
/// Longest wait between two connection attempts.
const RECONNECT_MAX: Duration = Duration::from_secs(10);

/// Starts the source; it runs until `stop` turns true.
pub fn spawn(
    config: KafkaSourceConfig,
    ingest: IngestService,
    store: Arc<Store>,
    reporter: SourceReporter,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let deliverer = Deliverer::new(ingest.clone(), reporter.clone(), stop);
    let source = Source {
        shape: RecordShape {
            format: config.format,
            signal: config.signal,
            rule: config.dataset_rule(),
            environment: config.environment.clone(),
            dead_letter_dataset: config.dead_letter_dataset.clone(),
        },
        config,
        ingest,
        store,
        reporter,
        deliverer,
    };
    tokio::spawn(source.run())
}

/// A source's supervisor.
struct Source {
    config: KafkaSourceConfig,
    shape: RecordShape,
    ingest: IngestService,
    store: Arc<Store>,
    reporter: SourceReporter,
    deliverer: Deliverer,
}

impl Source {
    async fn run(mut self) {
        let Ok(client) = self.connect().await else {
            return;
        };
        let client = Arc::new(client);
        let mut tasks = JoinSet::new();
        tasks.spawn(commit_offsets(
            GroupCommitter::new(self.config.brokers.clone(), self.config.group.clone()),
            Arc::clone(&self.store),
            self.reporter.clone(),
            self.deliverer.clone(),
        ));
        let mut consuming: BTreeSet<(String, i32)> = BTreeSet::new();
        loop {
            self.discover(&client, &mut consuming, &mut tasks).await;
            if self.deliverer.sleep(DISCOVER_INTERVAL).await.is_err() {
                break;
            }
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Connects to the bootstrap brokers, retrying with backoff.
    async fn connect(&mut self) -> Result<Client, Stopped> {
        let mut wait = RECONNECT_FIRST;
        loop {
            let backoff = BackoffConfig {
                deadline: Some(CLIENT_RETRY_DEADLINE),
                ..BackoffConfig::default()
            };
            let built = ClientBuilder::new(self.config.brokers.clone())
                .client_id("quarry")
                .backoff_config(backoff)
                .build();
            let error = match tokio::time::timeout(CONNECT_TIMEOUT, built).await {
                Ok(Ok(client)) => {
                    self.reporter.connected(true);
                    tracing::info!(source = self.reporter.name(), brokers = ?self.config.brokers, "connected to Kafka");
                    return Ok(client);
                }
                Ok(Err(error)) => error.to_string(),
                Err(_) => format!("no answer within {CONNECT_TIMEOUT:?}"),
            };
            self.reporter.connected(false);
            self.reporter.error("connection", &error);
            tracing::warn!(source = self.reporter.name(), brokers = ?self.config.brokers, %error, "cannot connect to Kafka; retrying");
            self.deliverer.sleep(wait).await?;
            wait = (wait * 2).min(RECONNECT_MAX);
        }
    }

    /// Starts a consumer for every partition of the source's topics not yet
    /// consumed.
    async fn discover(
        &mut self,
        client: &Arc<Client>,
        consuming: &mut BTreeSet<(String, i32)>,
        tasks: &mut JoinSet<()>,
    ) {
        let topics = match tokio::time::timeout(CONNECT_TIMEOUT, client.list_topics()).await {
            Ok(Ok(topics)) => topics,
            Ok(Err(error)) => {
                self.reporter.error("connection", &error.to_string());
                tracing::warn!(source = self.reporter.name(), %error, "cannot list Kafka topics; trying again later");
                return;
            }
            Err(_) => {
                self.reporter
                    .error("connection", "listing topics timed out");
                return;
            }
        };
        let found: HashMap<&str, &BTreeSet<i32>> = topics
            .iter()
            .map(|topic| (topic.name.as_str(), &topic.partitions))
            .collect();
        for topic in &self.config.topics {
            let Some(partitions) = found.get(topic.as_str()) else {
                self.reporter.error(
                    "connection",
                    &format!("topic {topic:?} does not exist (yet)"),
                );
                tracing::warn!(
                    source = self.reporter.name(),
                    topic,
                    "a configured Kafka topic does not exist (yet); looking again later"
                );
                continue;
            };
            for &partition in partitions.iter() {
                if !consuming.insert((topic.clone(), partition)) {
                    continue;
                }
                tracing::info!(
                    source = self.reporter.name(),
                    topic,
                    partition,
                    "consuming a Kafka partition"
                );
                let consumer = PartitionConsumer {
                    topic: topic.clone(),
                    partition,
                    client: Arc::clone(client),
                    store: Arc::clone(&self.store),
                    ingest: self.ingest.clone(),
                    shape: self.shape.clone(),
                    deliverer: self.deliverer.clone(),
                    reporter: self.reporter.clone(),
                };
                tasks.spawn(consumer.run());
            }
        }
    }
}

/// Commits the source's durable offsets to its group whenever they moved,
/// and once more when the source stops.
async fn commit_offsets(
    mut committer: GroupCommitter,
    store: Arc<Store>,
    reporter: SourceReporter,
    mut deliverer: Deliverer,
) {
    let prefix = positions_prefix(reporter.name());
    let mut committed = Offsets::new();
    let mut failing = false;
    loop {
        let stopping = deliverer.sleep(COMMIT_INTERVAL).await.is_err();
        let offsets = durable_offsets(&store, &prefix);
        if offsets != committed && !offsets.is_empty() {
            match committer.commit(&offsets).await {
                Ok(()) => {
                    if failing {
                        tracing::info!(
                            source = reporter.name(),
                            "committing offsets to the consumer group works again"
                        );
                    }
                    failing = false;
                    committed = offsets;
                }
                Err(error) => {
                    reporter.error("group_commit", &error);
                    if !failing {
                        tracing::warn!(source = reporter.name(), %error, "cannot commit offsets to the consumer group (lag tools will lag; data is unaffected)");
                    }
                    failing = true;
                }
            }
        }
        if stopping {
            return;
        }
    }
}

/// The source's positions in the store, as (topic, partition) -> next offset.
fn durable_offsets(store: &Store, prefix: &str) -> Offsets {
    offsets_of(store.source_positions(), prefix)
}

/// The positions named with `prefix`, as (topic, partition) -> next offset.
fn offsets_of(positions: SourcePositions, prefix: &str) -> Offsets {
    positions
        .into_iter()
        .filter_map(|(key, next)| {
            let rest = key.strip_prefix(prefix)?;
            let (topic, partition) = rest.rsplit_once('/')?;
            Some(((topic.to_owned(), partition.parse().ok()?), next))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::kafka::partition::position_key;

    #[test]
    fn a_sources_offsets_are_read_back_from_its_position_names() {
        let positions = SourcePositions::from([
            (position_key("spans", "otlp_spans", 0), 17),
            (position_key("spans", "otlp.spans-v2", 11), 3),
            (position_key("spans-other", "otlp_spans", 0), 99),
            (position_key("logs", "otlp_spans", 0), 5),
        ]);
        let offsets = offsets_of(positions, &positions_prefix("spans"));
        assert_eq!(
            offsets,
            Offsets::from([
                (("otlp.spans-v2".to_owned(), 11), 3),
                (("otlp_spans".to_owned(), 0), 17),
            ])
        );
    }
}
