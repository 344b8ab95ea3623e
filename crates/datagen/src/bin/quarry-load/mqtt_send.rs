//! `quarry-load --to mqtt`: publishes the Events API batch bodies as MQTT
//! messages (QoS 1) to `<topic prefix>/<dataset>`, for a Quarry MQTT source with
//! `format = "honeycomb_events"` and the dataset from the topic's last level;
//! then waits until Quarry reports the rows stored (`quarry_stream_rows_total`
//! on its `/metrics`), so the run measures produce-to-durable throughput.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use quarry_datagen::{DatagenError, Generator};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use crate::args::Args;
use crate::stream_rows::{POLL, StreamRun};
use crate::summary::Summary;

/// Requests queued for the MQTT connection task.
const REQUEST_CAPACITY: usize = 1024;
/// Unacknowledged publishes in flight.
const INFLIGHT: u16 = 100;
/// Largest MQTT packet (the protocol's maximum).
const MAX_PACKET_BYTES: usize = 268_435_455;

/// Publishes every event of `generator` and waits until Quarry stored them.
pub async fn send_all(args: &Args, generator: Generator) -> Result<Summary, DatagenError> {
    let batch_size = args.batch_size();
    let url = url_parts(&args.mqtt_broker)?;
    let mut options = MqttOptions::new(format!("quarry-load-{}", std::process::id()), url.0, url.1);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_inflight(INFLIGHT)
        .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
    let (client, mut eventloop) = AsyncClient::new(options, REQUEST_CAPACITY);
    let acked = Arc::new(AtomicU64::new(0));
    let connection = {
        let acked = Arc::clone(&acked);
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(error) => return DatagenError::Http(format!("mqtt: {error}")),
                }
            }
        })
    };
    let run = StreamRun::begin(args, &generator).await?;
    let mut bodies = Vec::new();
    let produced = crate::send::produce(generator, batch_size, false, |prepared| {
        bodies.push(prepared);
        true
    })?;
    let prefix = args.mqtt_topic_prefix.trim_end_matches('/');
    for prepared in bodies {
        let topic = format!("{prefix}/{}", prepared.dataset);
        run.sent(prepared.body.len());
        client
            .publish(topic, QoS::AtLeastOnce, false, prepared.body)
            .await
            .map_err(|error| DatagenError::Http(format!("mqtt: {error}")))?;
    }
    let published = run.totals.requests.load(Ordering::Relaxed);
    let deadline = run.deadline();
    while acked.load(Ordering::Relaxed) < published {
        if connection.is_finished() || Instant::now() > deadline {
            return Err(DatagenError::Http(format!(
                "the broker acknowledged {} of {published} messages",
                acked.load(Ordering::Relaxed)
            )));
        }
        tokio::time::sleep(POLL).await;
    }
    let summary = run.finish(produced, 1, deadline).await;
    let _ = client.disconnect().await;
    connection.abort();
    summary
}

/// `mqtt://host:port` as host and port.
fn url_parts(broker: &str) -> Result<(String, u16), DatagenError> {
    let invalid = || {
        DatagenError::InvalidConfig(format!(
            "--mqtt-broker {broker:?}: expected mqtt://host:port"
        ))
    };
    let rest = broker
        .trim()
        .strip_prefix("mqtt://")
        .or_else(|| broker.trim().strip_prefix("tcp://"))
        .ok_or_else(invalid)?;
    let (host, port) = rest
        .trim_end_matches('/')
        .rsplit_once(':')
        .ok_or_else(invalid)?;
    Ok((host.to_owned(), port.parse().map_err(|_| invalid())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls() {
        assert_eq!(
            url_parts("mqtt://127.0.0.1:1883").unwrap(),
            ("127.0.0.1".into(), 1883)
        );
        assert!(url_parts("http://x:1").is_err());
        assert!(url_parts("mqtt://x").is_err());
    }
}
