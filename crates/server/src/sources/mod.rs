//! Stream sources: MQTT subscriptions and Kafka topics consumed into the
//! store through the one ingest service, like every other transport. A
//! source only translates: a message and its topic into an ingest request; the
//! store's durable write into an acknowledgement to its broker.
//!
//! Files: `mqtt` (the MQTT client loop), `kafka` (Kafka partitions, exactly
//! once through store transactions), `message` (one message into rows or a
//! dead letter), `format` (a message's bytes as an ingest request),
//! `dead_letter` (rows of undecodable messages), `deliver` (retries while the
//! store sheds load), `dedupe` (redelivered MQTT messages), `status` (metrics
//! and the status endpoint's data).

pub mod dead_letter;
pub mod dedupe;
pub mod deliver;
pub mod format;
pub mod kafka;
pub mod message;
pub mod mqtt;
pub mod status;

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::SourcesConfig;
use crate::error::ApiError;
use crate::state::AppState;

/// How long stopping waits for a source to finish the message it holds.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The running stream sources of a server.
pub struct StreamSources {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl StreamSources {
    /// Starts every configured source (none on a node that takes no writes).
    pub fn start(state: &AppState, config: &SourcesConfig) -> Result<StreamSources, ApiError> {
        let (stop, stopping) = watch::channel(false);
        let mut sources = StreamSources {
            stop,
            tasks: Vec::new(),
        };
        if !state.role.ingests() {
            return Ok(sources);
        }
        for source in &config.mqtt {
            let reporter = state.sources.reporter(&source.name, "mqtt");
            tracing::info!(source = source.name, broker = source.broker, topics = ?source.topics, format = source.format.name(), "starting an MQTT source");
            let task = mqtt::spawn(
                source.clone(),
                state.ingest.clone(),
                std::sync::Arc::clone(&state.engine),
                reporter,
                stopping.clone(),
            );
            match task {
                Ok(task) => sources.tasks.push(task),
                Err(error) => {
                    sources.abort();
                    return Err(error);
                }
            }
        }
        for source in &config.kafka {
            let reporter = state.sources.reporter(&source.name, "kafka");
            tracing::info!(source = source.name, brokers = ?source.brokers, topics = ?source.topics, group = source.group, format = source.format.name(), "starting a Kafka source");
            sources.tasks.push(kafka::spawn(
                source.clone(),
                state.ingest.clone(),
                std::sync::Arc::clone(&state.store),
                reporter,
                stopping.clone(),
            ));
        }
        Ok(sources)
    }

    /// Stops every source: each finishes (and acknowledges) the message it is
    /// writing; messages not yet written are left unacknowledged with their broker.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            if tokio::time::timeout(STOP_GRACE, task).await.is_err() {
                tracing::warn!("a stream source was still busy after the grace period");
            }
        }
    }

    fn abort(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
