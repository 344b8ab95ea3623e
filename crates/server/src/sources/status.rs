//! What each stream source is doing, for `/metrics` and `GET /api/v1/sources`:
//! counters per source, whether it is connected or paused, its last error, and
//! (Kafka) the consumer lag per partition.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;

/// Labels of a source's metrics.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct SourceLabel {
    /// The source's configured name.
    pub source: String,
    /// `mqtt` or `kafka`.
    pub transport: &'static str,
}

/// Labels of a source's errors.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ErrorLabel {
    /// The source's configured name.
    pub source: String,
    /// What failed: `connection`, `decode`, `oversize`, `overloaded`, `store`.
    pub kind: &'static str,
}

/// Labels of a Kafka partition's metrics.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct PartitionLabel {
    /// The source's configured name.
    pub source: String,
    /// The topic.
    pub topic: String,
    /// The partition number.
    pub partition: String,
}

/// Every stream source's metrics, registered once.
#[derive(Debug, Default)]
struct SourceMetrics {
    messages: Family<SourceLabel, Counter>,
    rows: Family<SourceLabel, Counter>,
    dead_letters: Family<SourceLabel, Counter>,
    duplicates: Family<SourceLabel, Counter>,
    errors: Family<ErrorLabel, Counter>,
    connected: Family<SourceLabel, Gauge>,
    paused: Family<SourceLabel, Gauge>,
    lag: Family<PartitionLabel, Gauge>,
}

/// One Kafka partition's position, as the status endpoint shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PartitionStatus {
    /// The topic.
    pub topic: String,
    /// The partition number.
    pub partition: i32,
    /// The offset of the next message to consume (everything before it is durable).
    pub next_offset: i64,
    /// The partition's high watermark when last fetched.
    pub high_watermark: i64,
    /// `high_watermark - next_offset`.
    pub lag: i64,
}

/// One source's state, as the status endpoint shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceStatus {
    /// The source's configured name.
    pub name: String,
    /// `mqtt` or `kafka`.
    pub transport: &'static str,
    /// Connected to its broker now.
    pub connected: bool,
    /// Paused because the store sheds load.
    pub paused: bool,
    /// Messages received.
    pub messages: u64,
    /// Rows stored from them.
    pub rows: u64,
    /// Messages written to the dead-letter dataset.
    pub dead_letters: u64,
    /// Redelivered messages recognised by their id and not stored again.
    pub duplicates: u64,
    /// The last error, if any.
    pub last_error: Option<String>,
    /// Kafka: each partition's position and lag.
    pub partitions: Vec<PartitionStatus>,
}

/// The registry of every stream source's status and metrics.
#[derive(Debug, Default)]
pub struct SourceStatuses {
    metrics: SourceMetrics,
    sources: Mutex<BTreeMap<String, SourceStatus>>,
}

impl SourceStatuses {
    /// Registers the sources' metrics.
    pub fn register(&self, registry: &mut Registry) {
        let metrics = &self.metrics;
        registry.register(
            "quarry_stream_messages",
            "Messages received by each stream source",
            metrics.messages.clone(),
        );
        registry.register(
            "quarry_stream_rows",
            "Rows stored from each stream source's messages",
            metrics.rows.clone(),
        );
        registry.register(
            "quarry_stream_dead_letters",
            "Undecodable messages written to the dead-letter dataset",
            metrics.dead_letters.clone(),
        );
        registry.register(
            "quarry_stream_duplicates",
            "Redelivered messages recognised by their message id and not stored again",
            metrics.duplicates.clone(),
        );
        registry.register(
            "quarry_stream_errors",
            "Errors of each stream source, by kind",
            metrics.errors.clone(),
        );
        registry.register(
            "quarry_stream_connected",
            "1 while the source is connected to its broker",
            metrics.connected.clone(),
        );
        registry.register(
            "quarry_stream_paused",
            "1 while the source waits because the store sheds load",
            metrics.paused.clone(),
        );
        registry.register(
            "quarry_stream_consumer_lag",
            "Messages of a Kafka partition not yet stored (high watermark minus next offset)",
            metrics.lag.clone(),
        );
    }

    /// A reporter for one source (listed from now on).
    pub fn reporter(self: &Arc<Self>, name: &str, transport: &'static str) -> SourceReporter {
        self.sources.lock().insert(
            name.to_owned(),
            SourceStatus {
                name: name.to_owned(),
                transport,
                ..Default::default()
            },
        );
        SourceReporter {
            statuses: Arc::clone(self),
            label: SourceLabel {
                source: name.to_owned(),
                transport,
            },
        }
    }

    /// Every source's status, by name.
    pub fn snapshot(&self) -> Vec<SourceStatus> {
        self.sources.lock().values().cloned().collect()
    }
}

/// Reports one source's events to the registry.
#[derive(Debug, Clone)]
pub struct SourceReporter {
    statuses: Arc<SourceStatuses>,
    label: SourceLabel,
}

impl SourceReporter {
    fn update(&self, change: impl FnOnce(&mut SourceStatus)) {
        if let Some(status) = self.statuses.sources.lock().get_mut(&self.label.source) {
            change(status);
        }
    }

    /// The source's name.
    pub fn name(&self) -> &str {
        &self.label.source
    }

    /// The source (dis)connected.
    pub fn connected(&self, connected: bool) {
        self.statuses
            .metrics
            .connected
            .get_or_create(&self.label)
            .set(i64::from(connected));
        self.update(|status| status.connected = connected);
    }

    /// The source paused (the store sheds load) or resumed.
    pub fn paused(&self, paused: bool) {
        self.statuses
            .metrics
            .paused
            .get_or_create(&self.label)
            .set(i64::from(paused));
        self.update(|status| status.paused = paused);
    }

    /// A message arrived.
    pub fn message(&self) {
        self.statuses
            .metrics
            .messages
            .get_or_create(&self.label)
            .inc();
        self.update(|status| status.messages += 1);
    }

    /// A message's rows are durable.
    pub fn stored(&self, rows: u64) {
        self.statuses
            .metrics
            .rows
            .get_or_create(&self.label)
            .inc_by(rows);
        self.update(|status| status.rows += rows);
    }

    /// A message went to the dead-letter dataset.
    pub fn dead_letter(&self) {
        self.statuses
            .metrics
            .dead_letters
            .get_or_create(&self.label)
            .inc();
        self.update(|status| status.dead_letters += 1);
    }

    /// A redelivered message was recognised and skipped.
    pub fn duplicate(&self) {
        self.statuses
            .metrics
            .duplicates
            .get_or_create(&self.label)
            .inc();
        self.update(|status| status.duplicates += 1);
    }

    /// Something failed; `kind` labels the metric, `message` is kept as the last error.
    pub fn error(&self, kind: &'static str, message: &str) {
        self.statuses
            .metrics
            .errors
            .get_or_create(&ErrorLabel {
                source: self.label.source.clone(),
                kind,
            })
            .inc();
        self.update(|status| status.last_error = Some(format!("{kind}: {message}")));
    }

    /// A Kafka partition's position after a fetch or a write.
    pub fn partition(&self, topic: &str, partition: i32, next_offset: i64, high_watermark: i64) {
        let lag = (high_watermark - next_offset).max(0);
        self.statuses
            .metrics
            .lag
            .get_or_create(&PartitionLabel {
                source: self.label.source.clone(),
                topic: topic.to_owned(),
                partition: partition.to_string(),
            })
            .set(lag);
        let position = PartitionStatus {
            topic: topic.to_owned(),
            partition,
            next_offset,
            high_watermark,
            lag,
        };
        self.update(|status| {
            match status
                .partitions
                .iter_mut()
                .find(|known| known.topic == topic && known.partition == partition)
            {
                Some(known) => *known = position,
                None => status.partitions.push(position),
            }
        });
    }
}
