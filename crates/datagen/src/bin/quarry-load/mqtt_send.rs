//! `quarry-load --to mqtt`: publishes the Events API batch bodies as MQTT
//! messages (QoS 1) to `<topic prefix>/<dataset>`, for a Quarry MQTT source with
//! `format = "honeycomb_events"` and the dataset from the topic's last level;
//! then waits until Quarry reports the rows stored (`quarry_stream_rows_total`
//! on its `/metrics`), so the run measures produce-to-durable throughput.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use quarry_datagen::{DatagenError, Generator};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use crate::args::Args;
use crate::summary::{Settings, Summary, Totals};

/// Requests queued for the MQTT connection task.
const REQUEST_CAPACITY: usize = 1024;
/// Unacknowledged publishes in flight.
const INFLIGHT: u16 = 100;
/// Largest MQTT packet (the protocol's maximum).
const MAX_PACKET_BYTES: usize = 268_435_455;
/// How often Quarry's `/metrics` is read while waiting for the rows.
const POLL: Duration = Duration::from_millis(100);
/// The counter of rows stored by Quarry's stream sources.
const ROWS_METRIC: &str = "quarry_stream_rows_total";

/// Publishes every event of `generator` and waits until Quarry stored them.
pub async fn send_all(args: &Args, generator: Generator) -> Result<Summary, DatagenError> {
    let config = generator.config().clone();
    let anomaly = generator.anomaly().clone();
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
    let rows_before = stored_rows(&args.url).await?;
    let cpu_before = args.server_pid.map(crate::cpu::cpu_seconds).transpose()?;
    let totals = Totals::default();
    let started = Instant::now();
    let mut bodies = Vec::new();
    let produced = crate::send::produce(generator, batch_size, false, |prepared| {
        bodies.push(prepared);
        true
    })?;
    let prefix = args.mqtt_topic_prefix.trim_end_matches('/');
    for prepared in bodies {
        let topic = format!("{prefix}/{}", prepared.dataset);
        totals.requests.fetch_add(1, Ordering::Relaxed);
        totals
            .wire_bytes
            .fetch_add(prepared.body.len() as u64, Ordering::Relaxed);
        client
            .publish(topic, QoS::AtLeastOnce, false, prepared.body)
            .await
            .map_err(|error| DatagenError::Http(format!("mqtt: {error}")))?;
    }
    let published = totals.requests.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(args.wait_secs);
    while acked.load(Ordering::Relaxed) < published {
        if connection.is_finished() || Instant::now() > deadline {
            return Err(DatagenError::Http(format!(
                "the broker acknowledged {} of {published} messages",
                acked.load(Ordering::Relaxed)
            )));
        }
        tokio::time::sleep(POLL).await;
    }
    let expected = rows_before + produced.events;
    loop {
        let stored = stored_rows(&args.url).await?;
        if stored >= expected {
            break;
        }
        if Instant::now() > deadline {
            return Err(DatagenError::Response(format!(
                "Quarry stored {} of {} rows within {} s",
                stored - rows_before,
                produced.events,
                args.wait_secs
            )));
        }
        tokio::time::sleep(POLL).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = match (args.server_pid, cpu_before) {
        (Some(pid), Some(before)) => Some(crate::cpu::cpu_seconds(pid)? - before),
        _ => None,
    };
    let _ = client.disconnect().await;
    connection.abort();
    totals.accepted.store(produced.events, Ordering::Relaxed);
    let settings = Settings {
        args,
        config: &config,
        anomaly,
        gzip: false,
        concurrency: 1,
        batch_size,
    };
    Ok(Summary::of_run(
        settings,
        produced,
        &totals,
        seconds,
        cpu_seconds,
    ))
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

/// Rows Quarry's stream sources stored so far (0 before the first).
async fn stored_rows(base: &str) -> Result<u64, DatagenError> {
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
