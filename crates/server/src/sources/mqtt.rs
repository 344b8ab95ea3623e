//! An MQTT source (`[[sources.mqtt]]`): subscribes with QoS 1 on a persistent
//! session and acknowledges each message (PUBACK) only once its rows, or its
//! dead letter, are durable in the WAL.
//!
//! Two tasks: the connection task polls the client's event loop (keep-alive,
//! reconnects with backoff, subscriptions, sending acknowledgements) and hands
//! messages over without ever waiting; the writer task writes them one at a
//! time, in order, and acknowledges each. Messages waiting for the writer are
//! the ones the broker sent unacknowledged: its in-flight window for live
//! traffic, and after a reconnect the backlog it chooses to resend (mosquitto
//! resends every unacknowledged message of the session at once).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use quarry_engine::QueryEngine;
use rumqttc::{
    AsyncClient, ConnectReturnCode, Event, EventLoop, MqttOptions, Packet, Publish, QoS,
    SubscribeFilter, SubscribeReasonCode,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::{DatasetRule, MqttSourceConfig};
use crate::error::ApiError;
use crate::ingest_service::IngestService;
use crate::sources::dedupe::Dedupe;
use crate::sources::deliver::{Deliverer, Stopped};
use crate::sources::format;
use crate::sources::message::{Message, MessageSink, Written};
use crate::sources::status::SourceReporter;

/// The MQTT port when a broker URL names none.
const DEFAULT_PORT: u16 = 1883;
/// Requests (acknowledgements, subscriptions) queued for the connection task.
const REQUEST_CAPACITY: usize = 256;
/// Largest packet the client reads: MQTT's own maximum, so that a message
/// beyond Quarry's body limit is read and dead-lettered, not refused by the
/// client in a loop of reconnects and redeliveries.
const MAX_PACKET_BYTES: usize = 268_435_455;
/// First wait before reconnecting after a connection failed.
const RECONNECT_FIRST: Duration = Duration::from_millis(100);
/// Longest wait between two connection attempts.
const RECONNECT_MAX: Duration = Duration::from_secs(10);

/// Where a broker is, from `mqtt://host:port`.
fn broker_address(broker: &str) -> Result<(String, u16), String> {
    let url = url::Url::parse(broker.trim()).map_err(|error| format!("{broker:?}: {error}"))?;
    if !matches!(url.scheme(), "mqtt" | "tcp") {
        return Err(format!(
            "{broker:?}: expected mqtt://host:port (TLS and websockets are not supported yet)"
        ));
    }
    let host = url
        .host_str()
        .ok_or_else(|| format!("{broker:?}: no host"))?
        .to_owned();
    Ok((host, url.port().unwrap_or(DEFAULT_PORT)))
}

/// Starts the source; it runs until `stop` turns true.
pub fn spawn(
    config: MqttSourceConfig,
    ingest: IngestService,
    engine: Arc<QueryEngine>,
    reporter: SourceReporter,
    stop: watch::Receiver<bool>,
) -> Result<JoinHandle<()>, ApiError> {
    let (host, port) = broker_address(&config.broker).map_err(|error| {
        ApiError::Config(format!("sources.mqtt {:?}.broker: {error}", config.name))
    })?;
    let mut options = MqttOptions::new(config.client_id.clone(), host, port);
    options
        .set_keep_alive(Duration::from_secs(config.keep_alive_secs))
        // A persistent session: the broker keeps the subscriptions and queues
        // QoS 1 messages while Quarry is away.
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
    if let Some(username) = &config.username {
        options.set_credentials(username, config.password.clone().unwrap_or_default());
    }
    let (client, eventloop) = AsyncClient::new(options, REQUEST_CAPACITY);
    let sink = MessageSink {
        format: config.format,
        signal: config.signal,
        environment: config.environment.clone(),
        dead_letter_dataset: config.dead_letter_dataset.clone(),
        transport: "mqtt",
        deliverer: Deliverer::new(ingest.clone(), reporter.clone(), stop.clone()),
        reporter: reporter.clone(),
        max_body_bytes: ingest.limits().max_body_bytes,
        max_event_bytes: ingest.limits().max_event_bytes,
    };
    let dedupe = config
        .message_id_field
        .clone()
        .map(|field| Dedupe::new(field, config.environment.clone(), engine));
    let connection = Connection {
        filters: config.topics.clone(),
        client: client.clone(),
        reporter: reporter.clone(),
        generation: Arc::new(AtomicU64::new(0)),
        stop,
    };
    let writer = Writer {
        rule: config.dataset_rule(),
        client,
        sink,
        dedupe,
        reporter,
        generation: Arc::clone(&connection.generation),
    };
    Ok(tokio::spawn(run(connection, eventloop, writer)))
}

/// The connection task's state.
struct Connection {
    filters: Vec<String>,
    client: AsyncClient,
    reporter: SourceReporter,
    /// Counts connections: a message is acknowledged only on the connection
    /// that delivered it (after a reconnect the broker sends it again, under
    /// the same packet id, which a late PUBACK would wrongly settle).
    generation: Arc<AtomicU64>,
    stop: watch::Receiver<bool>,
}

async fn run(mut connection: Connection, mut eventloop: EventLoop, writer: Writer) {
    // Unbounded: the connection task must never wait for the writer, since
    // the writer's acknowledgements go out through the connection task's
    // polls (a bounded hand-over deadlocked both once the broker resent a
    // backlog). What it holds is what the broker chose to send unacknowledged.
    let (handover, queue) = mpsc::unbounded_channel();
    let writer = tokio::spawn(writer.run(queue));
    let mut wait = RECONNECT_FIRST;
    let mut failing = false;
    loop {
        let event = tokio::select! {
            event = eventloop.poll() => event,
            _ = connection.stop.wait_for(|stop| *stop) => break,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                if ack.code != ConnectReturnCode::Success {
                    continue;
                }
                connection.generation.fetch_add(1, Ordering::SeqCst);
                connection.reporter.connected(true);
                wait = RECONNECT_FIRST;
                failing = false;
                tracing::info!(
                    source = connection.reporter.name(),
                    session_present = ack.session_present,
                    "connected to the MQTT broker"
                );
                // A kept session has the subscriptions already; subscribing
                // again would make the broker resend every retained message.
                if !ack.session_present {
                    connection.subscribe();
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                for (filter, code) in connection.filters.iter().zip(&ack.return_codes) {
                    match code {
                        SubscribeReasonCode::Success(qos) => {
                            tracing::info!(
                                source = connection.reporter.name(),
                                filter,
                                ?qos,
                                "subscribed"
                            )
                        }
                        SubscribeReasonCode::Failure => {
                            let message =
                                format!("the broker refused the subscription to {filter:?}");
                            connection.reporter.error("connection", &message);
                            tracing::error!(source = connection.reporter.name(), "{message}");
                        }
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                let generation = connection.generation.load(Ordering::SeqCst);
                if handover.send((generation, publish)).is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(error) => {
                connection.reporter.connected(false);
                connection.reporter.error("connection", &error.to_string());
                if failing {
                    tracing::debug!(source = connection.reporter.name(), %error, retry_in = ?wait, "MQTT connection failed again");
                } else {
                    tracing::warn!(source = connection.reporter.name(), %error, retry_in = ?wait, "MQTT connection failed; reconnecting with backoff");
                }
                failing = true;
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    _ = connection.stop.wait_for(|stop| *stop) => break,
                }
                wait = (wait * 2).min(RECONNECT_MAX);
            }
        }
    }
    // The writer finishes the message it holds; what is queued behind it was
    // not acknowledged and comes again on the next connection. The event loop
    // is polled meanwhile, so that the writer's acknowledgement goes out.
    drop(handover);
    let mut writer = writer;
    loop {
        tokio::select! {
            _ = &mut writer => break,
            event = eventloop.poll() => {
                if event.is_err() {
                    let _ = (&mut writer).await;
                    break;
                }
            }
        }
    }
    let _ = connection.client.try_disconnect();
    connection.reporter.connected(false);
    tracing::info!(source = connection.reporter.name(), "MQTT source stopped");
}

impl Connection {
    fn subscribe(&self) {
        let filters = self
            .filters
            .iter()
            .map(|filter| SubscribeFilter::new(filter.clone(), QoS::AtLeastOnce));
        if let Err(error) = self.client.try_subscribe_many(filters) {
            self.reporter.error("connection", &error.to_string());
            tracing::error!(source = self.reporter.name(), %error, "cannot subscribe");
        }
    }
}

/// The writer task's state.
struct Writer {
    rule: DatasetRule,
    client: AsyncClient,
    sink: MessageSink,
    dedupe: Option<Dedupe>,
    reporter: SourceReporter,
    generation: Arc<AtomicU64>,
}

impl Writer {
    async fn run(mut self, mut queue: mpsc::UnboundedReceiver<(u64, Publish)>) {
        while let Some((generation, publish)) = queue.recv().await {
            tracing::trace!(
                source = self.reporter.name(),
                pkid = publish.pkid,
                dup = publish.dup,
                topic = publish.topic,
                "writing a message"
            );
            if self.write(&publish).await.is_err() {
                return;
            }
            self.acknowledge(generation, &publish).await;
            tracing::trace!(
                source = self.reporter.name(),
                pkid = publish.pkid,
                "acknowledged"
            );
        }
    }

    /// Stores one message (or recognises it as stored already).
    async fn write(&mut self, publish: &Publish) -> Result<(), Stopped> {
        self.reporter.message();
        let dataset = dataset_of(&self.rule, &publish.topic);
        let id = match (&self.dedupe, &dataset) {
            (Some(dedupe), Ok(Some(dataset))) => {
                format::message_id(self.sink.format, &publish.payload, dedupe.field())
                    .map(|id| (dataset.clone(), id))
            }
            _ => None,
        };
        tracing::trace!(
            source = self.reporter.name(),
            ?id,
            "checking for a duplicate"
        );
        if let (Some(dedupe), Some((dataset, id))) = (&self.dedupe, &id)
            && dedupe.seen(dataset, id, publish.dup).await
        {
            self.reporter.duplicate();
            tracing::debug!(
                source = self.reporter.name(),
                dataset,
                id,
                "a redelivered message is stored already; acknowledging it only"
            );
            return Ok(());
        }
        tracing::trace!(source = self.reporter.name(), "storing");
        let written = self
            .sink
            .write(Message {
                topic: &publish.topic,
                partition: None,
                offset: None,
                dataset,
                body: publish.payload.clone(),
            })
            .await?;
        if let (Some(dedupe), Some((dataset, id)), Written::Rows(_)) =
            (&mut self.dedupe, &id, written)
        {
            dedupe.remember(dataset, id);
        }
        Ok(())
    }

    /// PUBACK, on the connection that delivered the message only.
    async fn acknowledge(&self, generation: u64, publish: &Publish) {
        if self.generation.load(Ordering::SeqCst) != generation {
            tracing::debug!(
                source = self.reporter.name(),
                "not acknowledging a message of an earlier connection; the broker sends it again"
            );
            return;
        }
        if let Err(error) = self.client.ack(publish).await {
            tracing::warn!(source = self.reporter.name(), %error, "cannot acknowledge a message; the broker sends it again");
        }
    }
}

/// The dataset of a message on `topic`, by the source's rule.
fn dataset_of(rule: &DatasetRule, topic: &str) -> Result<Option<String>, String> {
    match rule {
        DatasetRule::ServiceName | DatasetRule::Header(_) => Ok(None),
        DatasetRule::Fixed(dataset) => Ok(Some(dataset.clone())),
        DatasetRule::TopicLevel(level) => match topic.split('/').nth(*level) {
            Some(name) if !name.trim().is_empty() => Ok(Some(name.to_owned())),
            _ => Err(format!(
                "topic {topic:?} has no level {level} to name the dataset"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        assert_eq!(
            broker_address("mqtt://127.0.0.1:1884").unwrap(),
            ("127.0.0.1".into(), 1884)
        );
        assert_eq!(
            broker_address("tcp://broker").unwrap(),
            ("broker".into(), 1883)
        );
        assert!(
            broker_address("mqtts://broker")
                .unwrap_err()
                .contains("not supported")
        );
        assert!(broker_address("nonsense").is_err());
    }

    #[test]
    fn datasets_from_a_topic_level() {
        let rule = DatasetRule::TopicLevel(1);
        assert_eq!(
            dataset_of(&rule, "devices/pump-7/telemetry")
                .unwrap()
                .as_deref(),
            Some("pump-7")
        );
        assert!(dataset_of(&rule, "devices").is_err());
        assert!(dataset_of(&rule, "devices//x").is_err());
        assert_eq!(
            dataset_of(&DatasetRule::Fixed("d".into()), "a/b")
                .unwrap()
                .as_deref(),
            Some("d")
        );
    }
}
