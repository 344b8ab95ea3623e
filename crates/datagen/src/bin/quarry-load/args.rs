//! Command-line flags of `quarry-load`.

use std::path::PathBuf;

use clap::Parser;
use quarry_datagen::{DatagenError, GeneratorConfig, parse_count, parse_duration};

/// Tokio worker threads of the client: enough to keep the connections busy while
/// leaving the server most of a small machine.
pub const CLIENT_THREADS: usize = 2;

/// Events per request of the Events API protocol, by default.
const EVENTS_BATCH_SIZE: usize = 1000;
/// Spans per OTLP export request, by default (the OpenTelemetry SDKs' batch size).
const OTLP_BATCH_SIZE: usize = 512;

/// How the load reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// Honeycomb Events API batches, `POST /1/batch/{dataset}` (spans and logs).
    Events,
    /// OTLP/gRPC trace exports to --otlp-grpc-url (spans only).
    OtlpGrpc,
    /// OTLP/HTTP protobuf trace exports, `POST <url>/v1/traces` (spans only).
    OtlpHttp,
    /// Events API batch bodies published as MQTT messages (QoS 1) to
    /// `--mqtt-topic-prefix/<dataset>`, for an MQTT source of Quarry's
    /// (docs/streams.md); the run ends once Quarry stored every row.
    Mqtt,
    /// Events API batch bodies produced as Kafka records to --kafka-topic,
    /// each with a `dataset` header, for a Kafka source of Quarry's
    /// (docs/streams.md); the run ends once Quarry stored every row.
    Kafka,
}

impl Protocol {
    /// The flag value.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Events => "events",
            Protocol::OtlpGrpc => "otlp-grpc",
            Protocol::OtlpHttp => "otlp-http",
            Protocol::Mqtt => "mqtt",
            Protocol::Kafka => "kafka",
        }
    }
}

/// Sends generated telemetry to Quarry's Events API (`POST /1/batch/{dataset}`) or,
/// as OTLP trace exports, to its OTLP/gRPC or OTLP/HTTP receiver.
#[derive(Debug, Parser)]
#[command(name = "quarry-load", version)]
pub struct Args {
    /// Base URL of the Quarry server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Events to generate (spans and logs): 100k, 1M, 10M, ...
    #[arg(long, default_value = "1M", value_parser = parse_count_flag)]
    pub events: u64,
    /// Concurrent HTTP clients.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Events (spans for OTLP) per request [default: 1000; 512 for OTLP]
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Protocol: the Events API, OTLP trace exports over gRPC or HTTP, or
    /// Events API bodies through an MQTT broker or Kafka (`--to mqtt|kafka`).
    #[arg(long, alias = "to", value_enum, default_value = "events")]
    pub protocol: Protocol,
    /// The MQTT broker (with --to mqtt).
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    pub mqtt_broker: String,
    /// Topic prefix: each body goes to `<prefix>/<dataset>` (with --to mqtt).
    #[arg(long, default_value = "quarry-load")]
    pub mqtt_topic_prefix: String,
    /// Kafka bootstrap brokers, `host:port` (with --to kafka).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:9092")]
    pub kafka_brokers: Vec<String>,
    /// The topic records go to (with --to kafka).
    #[arg(long, default_value = "quarry-load")]
    pub kafka_topic: String,
    /// Partitions of the topic when quarry-load creates it (with --to kafka).
    #[arg(long, default_value_t = 4)]
    pub kafka_partitions: i32,
    /// Seconds to wait for the broker's acknowledgements and Quarry's rows
    /// (with --to mqtt or kafka).
    #[arg(long, default_value_t = 600)]
    pub wait_secs: u64,
    /// Endpoint of the OTLP/gRPC receiver (with --protocol otlp-grpc).
    #[arg(long, default_value = "http://127.0.0.1:4317")]
    pub otlp_grpc_url: String,
    /// Process id of the server, to report its CPU seconds per million events
    /// (read from /proc/<pid>/stat before and after the run).
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// Seed of the generator: equal seeds give equal events.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Time window the events spread over, ending at --end-time: 30m, 4h, 1d.
    #[arg(long, default_value = "4h")]
    pub window: String,
    /// End of the window: RFC 3339 or Unix seconds [default: now].
    #[arg(long)]
    pub end_time: Option<String>,
    /// Compress bodies with gzip (Content-Encoding: gzip).
    #[arg(long)]
    pub gzip: bool,
    /// Build every body before sending, so the measured time is sending alone
    /// (memory: about the size of all bodies).
    #[arg(long)]
    pub pregenerate: bool,
    /// Write the events as NDJSON lines (`{"dataset","time","data"}`) to stdout
    /// instead of sending them.
    #[arg(long)]
    pub ndjson: bool,
    /// Print the scenario (services, deploys, anomaly) as JSON and exit.
    #[arg(long)]
    pub describe: bool,
    /// Value of the X-Honeycomb-Team header.
    #[arg(long, default_value = "quarry-load")]
    pub api_key: String,
    /// Also write the run's summary as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub summary_json: Option<PathBuf>,
}

impl Args {
    /// Events (or spans) per request.
    pub fn batch_size(&self) -> usize {
        self.batch_size
            .unwrap_or(match self.protocol {
                Protocol::Events | Protocol::Mqtt | Protocol::Kafka => EVENTS_BATCH_SIZE,
                Protocol::OtlpGrpc | Protocol::OtlpHttp => OTLP_BATCH_SIZE,
            })
            .max(1)
    }

    /// The generator config these flags describe.
    pub fn generator_config(&self) -> Result<GeneratorConfig, DatagenError> {
        let end_time_ns = match &self.end_time {
            Some(text) => parse_end_time(text)?,
            None => chrono::Utc::now()
                .timestamp_nanos_opt()
                .ok_or_else(|| DatagenError::InvalidConfig("the clock is out of range".into()))?,
        };
        Ok(GeneratorConfig::new(self.seed, self.events, end_time_ns)
            .with_window(parse_duration(&self.window)?))
    }
}

fn parse_count_flag(text: &str) -> Result<u64, String> {
    parse_count(text).map_err(|e| e.to_string())
}

/// RFC 3339 or Unix seconds, in ns since the epoch.
fn parse_end_time(text: &str) -> Result<i64, DatagenError> {
    let invalid = || DatagenError::InvalidConfig(format!("not a time: {text:?}"));
    if let Ok(seconds) = text.trim().parse::<i64>() {
        return seconds.checked_mul(1_000_000_000).ok_or_else(invalid);
    }
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .map_err(|_| invalid())?
        .timestamp_nanos_opt()
        .ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_times_parse() {
        assert_eq!(
            parse_end_time("1700000000").unwrap(),
            1_700_000_000_000_000_000
        );
        assert_eq!(
            parse_end_time("2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000_000_000
        );
        assert!(parse_end_time("yesterday").is_err());
    }

    #[test]
    fn flags_parse() {
        let args = Args::try_parse_from([
            "quarry-load",
            "--events",
            "10k",
            "--window",
            "1h",
            "--end-time",
            "1700000000",
        ])
        .unwrap();
        let config = args.generator_config().unwrap();
        assert_eq!(config.events, 10_000);
        assert_eq!(config.window.as_secs(), 3600);
        assert_eq!(args.batch_size(), 1000);
        let otlp = Args::try_parse_from(["quarry-load", "--protocol", "otlp-grpc"]).unwrap();
        assert_eq!(otlp.protocol, Protocol::OtlpGrpc);
        assert_eq!(otlp.batch_size(), 512);
    }
}
