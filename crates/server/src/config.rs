//! Configuration: built-in defaults, overridden by the TOML file, overridden by flags.
//!
//! Every key of the file is optional (see `quarry.example.toml`); an unknown key is an
//! error naming it, so a typo never silently falls back to a default. The engine
//! sections (`[storage]`, `[compaction]`, `[retention]`, `[limits]`, `[query]`)
//! deserialize straight into the engine crates' own configuration types, whose
//! defaults and checks are stated once, there.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use quarry_alerts::AlertsConfig;
use quarry_engine::QueryConfig;
use quarry_ingest::Limits;
use quarry_object_storage::{ObjectStorage, ObjectStorageConfig};
use quarry_rollup::{ConfiguredRollup, RollupSettings};
use quarry_schema::{SharedClock, system_clock};
use quarry_segment_store::{
    DEFAULT_ENVIRONMENT, Durability, InvalidSetting, RollupDefinition, RollupFilter, RollupMeasure,
    StoreConfig, parse_max_age,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::names;

/// Default HTTP listen address.
pub const DEFAULT_HTTP: &str = "127.0.0.1:8080";
/// Default OTLP/gRPC listen address (the OpenTelemetry standard port).
pub const DEFAULT_OTLP_GRPC: &str = "127.0.0.1:4317";
/// Default OTLP/HTTP listen address (the OpenTelemetry standard port).
pub const DEFAULT_OTLP_HTTP: &str = "127.0.0.1:4318";
/// Default Postgres wire protocol listen address (Postgres's standard port).
pub const DEFAULT_PG: &str = "127.0.0.1:5432";
/// The address value that turns a receiver off.
const OFF: &str = "off";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./quarry-data";
/// Default bound on ingest requests in flight; beyond it requests get 429 at once.
pub const DEFAULT_MAX_CONCURRENT_INGEST: usize = 256;
/// Subdirectory of the data directory holding the write-ahead log.
const WAL_SUBDIR: &str = "wal";
/// Subdirectory of the data directory holding the local object store.
const OBJECTS_SUBDIR: &str = "objects";
/// Subdirectory of the data directory holding the read cache of remote objects.
const CACHE_SUBDIR: &str = "cache";

/// What a node does (`--role`, `[server] role`). Nodes of every role can share one
/// object store (docs/deploy.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, as one node on its own: ingest, queries and maintenance.
    #[default]
    All,
    /// Takes writes (every ingest protocol) into its WAL and buffers and seals
    /// them into the object store; answers queries too.
    Ingest,
    /// Answers queries, SQL and the UI from the object store; takes no writes.
    Query,
    /// Runs compaction, retention and the orphan sweep; takes no writes.
    Compactor,
}

impl Role {
    /// Whether the node takes writes.
    pub fn ingests(self) -> bool {
        matches!(self, Role::All | Role::Ingest)
    }

    /// Whether the node runs background maintenance (compaction, retention, the
    /// orphan sweep, rollup maintenance).
    pub fn maintains(self) -> bool {
        matches!(self, Role::All | Role::Compactor)
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Ingest => "ingest",
            Role::Query => "query",
            Role::Compactor => "compactor",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// File holding a node's generated id, in its data directory.
const NODE_ID_FILE: &str = "node-id";

/// What the command line sets over the file: each field, when set, wins over the
/// file's key, which wins over the built-in default.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// The TOML file to read; none means built-in defaults only.
    pub config: Option<PathBuf>,
    /// `[storage] data_dir`.
    pub data_dir: Option<PathBuf>,
    /// `[server] http`.
    pub http: Option<String>,
    /// `[storage] durability`.
    pub durability: Option<Durability>,
    /// `[server] otlp_grpc` (`off` turns the receiver off).
    pub otlp_grpc: Option<String>,
    /// `[server] otlp_http` (`off` turns the receiver off).
    pub otlp_http: Option<String>,
    /// `[server] pg` (`off` turns the Postgres port off).
    pub pg: Option<String>,
    /// `[retention] max_age` (`30d`, `12h`, ... or `forever`).
    pub retention_max_age: Option<String>,
    /// `[server] role`.
    pub role: Option<Role>,
    /// `[server] node_id`.
    pub node_id: Option<String>,
    /// `[cluster] worker`.
    pub worker: Option<String>,
    /// `[cluster] peers`.
    pub peers: Option<Vec<String>>,
    /// `[cluster] ingest_peers`.
    pub ingest_peers: Option<Vec<String>>,
}

/// The configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on (`host:port`).
    pub http: String,
    /// Root of the write-ahead log and the local object store.
    pub data_dir: PathBuf,
    /// The store's tunables (its WAL lies under `data_dir`).
    pub store: StoreConfig,
    /// Where segments and the manifest live (local disk unless `object_store`).
    pub object_storage: ObjectStorageConfig,
    /// Ingest limits.
    pub limits: Limits,
    /// The query engine's tunables.
    pub query: QueryConfig,
    /// API key -> environment; empty means no auth and one environment.
    pub api_keys: HashMap<String, String>,
    /// Ingest requests allowed in flight at once.
    pub max_concurrent_ingest: usize,
    /// Address of the OTLP/gRPC receiver; `None` when turned off.
    pub otlp_grpc: Option<String>,
    /// Address of the OTLP/HTTP receiver's own port; `None` when turned off (the
    /// `/v1/*` routes stay on the HTTP port).
    pub otlp_http: Option<String>,
    /// Address of the Postgres wire protocol port; `None` when turned off.
    pub pg: Option<String>,
    /// Rollups of the `[[rollups]]` sections and the default trace rollup switch.
    pub rollups: RollupSettings,
    /// Wall time for the whole server, the store included (the system clock;
    /// tests set a manual one).
    pub clock: SharedClock,
    /// What this node does.
    pub role: Role,
    /// This node's name among the writers of one object store: configured, or
    /// generated once and kept in the data directory when the store is remote;
    /// `None` for a node on local disk (the manifest's unnamed single writer).
    pub node_id: Option<String>,
    /// Where this node's cluster port (gRPC) listens: the distributed-query
    /// worker on a node that answers queries, the buffer service on one that
    /// ingests; `None`: none.
    pub worker: Option<String>,
    /// Workers that queries received here are distributed over (this node's own
    /// among them); empty: every query runs on this node alone.
    pub peers: Vec<url::Url>,
    /// Bytes of segment files per distributed scan task (`None`: the library's
    /// default, 16 MiB).
    pub scan_bytes_per_task: Option<usize>,
    /// The ingest nodes' cluster ports, whose unsealed rows every query here
    /// reads; empty: none (a single node, or queries see sealed rows only).
    pub ingest_peers: Vec<url::Url>,
    /// Stream sources (`[[sources.mqtt]]`, `[[sources.kafka]]`) consumed into
    /// the store (docs/streams.md).
    pub sources: SourcesConfig,
    /// Triggers, SLOs and notifications (docs/alerts.md).
    pub alerts: AlertsConfig,
    /// `[pipeline]`: the hash key of redaction rules, the usage interval.
    pub pipeline: PipelineSection,
}

impl Config {
    /// Reads the file `overrides.config` names (if any) and applies the overrides
    /// (the command line's flags) over it.
    pub fn load(args: &Overrides) -> Result<Config, ApiError> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|error| {
                    ApiError::Config(format!("cannot read {}: {error}", path.display()))
                })?;
                parse_file(&text).map_err(|error| match error {
                    ApiError::Config(message) => {
                        ApiError::Config(format!("{}: {message}", path.display()))
                    }
                    other => other,
                })?
            }
            None => FileConfig::default(),
        };
        resolve(file, args)
    }

    /// The store's configuration, reading the server's clock, with this node's
    /// id and role.
    pub fn store_config(&self) -> StoreConfig {
        StoreConfig {
            clock: Arc::clone(&self.clock),
            node_id: self.node_id.clone().unwrap_or_default(),
            run_maintenance: self.role.maintains(),
            // A remote store may be shared: maintenance needs its lease there.
            maintenance_lease: self.object_storage.object_store.is_some(),
            ..self.store.clone()
        }
    }

    /// Directory of the local object store holding segments.
    pub fn objects_dir(&self) -> PathBuf {
        self.data_dir.join(OBJECTS_SUBDIR)
    }

    /// Default directory of the read cache of a remote object store.
    pub fn cache_dir(&self) -> PathBuf {
        self.data_dir.join(CACHE_SUBDIR)
    }
}

/// Top-level sections of the file; each deserializes on its own, so an error
/// names its key as `section.key`.
const SECTIONS: [&str; 13] = [
    "server",
    "cluster",
    "storage",
    "compaction",
    "retention",
    "limits",
    "auth",
    "rollups",
    "rollup_defaults",
    "query",
    "sources",
    "alerts",
    "pipeline",
];

/// The TOML file as written; every key optional. The engine sections are the
/// engine crates' own configuration types (with their defaults).
#[derive(Debug, Default)]
struct FileConfig {
    server: ServerSection,
    data_dir: Option<PathBuf>,
    store: StoreConfig,
    object_storage: ObjectStorageConfig,
    limits: Limits,
    auth: AuthSection,
    rollups: Vec<RollupSection>,
    rollup_defaults: RollupDefaultsSection,
    query: QueryConfig,
    cluster: ClusterSection,
    sources: SourcesConfig,
    alerts: AlertsConfig,
    pipeline: PipelineSection,
}

/// `[pipeline]`: redaction, quotas and usage (docs/pipeline.md).
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineSection {
    /// The HMAC key of `hash` redaction rules (at least 16 bytes). Unset: a random
    /// key generated once and kept in the data directory (nodes sharing data
    /// must then be given one key here, or equal values hash differently).
    pub hash_key: Option<String>,
    /// How often usage rows are written (`30s`, `1m`); default one minute.
    #[serde(default, with = "humantime_serde_opt")]
    pub usage_interval: Option<std::time::Duration>,
    /// Most spans buffered for tail sampling on this node (default 500,000);
    /// past it the oldest traces are decided early.
    pub sampling_max_buffered_spans: Option<usize>,
    /// Most bytes of spans buffered for tail sampling (default 256 MiB).
    pub sampling_max_buffered_bytes: Option<u64>,
}

impl std::fmt::Debug for PipelineSection {
    // The key is a secret: a configuration printed for debugging must not show it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineSection")
            .field("hash_key", &self.hash_key.as_ref().map(|_| "<set>"))
            .field("usage_interval", &self.usage_interval)
            .field(
                "sampling_max_buffered_spans",
                &self.sampling_max_buffered_spans,
            )
            .field(
                "sampling_max_buffered_bytes",
                &self.sampling_max_buffered_bytes,
            )
            .finish()
    }
}

/// Shortest accepted `pipeline.hash_key`, in bytes.
const MIN_HASH_KEY_BYTES: usize = 16;

/// `Option<Duration>` as a humantime string (`"30s"`).
mod humantime_serde_opt {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<std::time::Duration>, D::Error> {
        let text = Option::<String>::deserialize(deserializer)?;
        text.map(|text| humantime::parse_duration(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// `[cluster]`: distributed query execution (docs/deploy.md).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ClusterSection {
    /// Listen address of this node's cluster port (gRPC).
    worker: Option<String>,
    /// Worker URLs (`http://host:port`) queries are distributed over.
    peers: Vec<String>,
    /// Ingest nodes' cluster ports (`http://host:port`).
    ingest_peers: Vec<String>,
    /// Bytes of segment files per scan task (more tasks, more nodes).
    scan_bytes_per_task: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ServerSection {
    role: Option<Role>,
    node_id: Option<String>,
    http: Option<String>,
    max_concurrent_ingest: Option<usize>,
    otlp_grpc: Option<String>,
    otlp_http: Option<String>,
    pg: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct AuthSection {
    api_keys: HashMap<String, String>,
}

/// The `[storage]` key that is the server's, not the store's.
const DATA_DIR_KEY: &str = "data_dir";
/// The `[storage]` keys that say where objects live ([`ObjectStorageConfig`]).
const OBJECT_STORAGE_KEYS: [&str; 3] = ["object_store", "s3", "read_cache"];

/// One `[[rollups]]` entry: a rollup definition (docs/rollups.md) and its dataset.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RollupSection {
    env: Option<String>,
    dataset: String,
    name: String,
    granularity: u64,
    #[serde(default)]
    dimensions: Vec<String>,
    #[serde(default)]
    measures: Vec<RollupMeasure>,
    #[serde(default)]
    filters: Vec<RollupFilter>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RollupDefaultsSection {
    /// Give datasets of spans the default `requests` rollup.
    traces: bool,
}

impl Default for RollupDefaultsSection {
    fn default() -> Self {
        RollupDefaultsSection { traces: true }
    }
}

/// Checks the `[[rollups]]` entries (their shape; columns are checked against a
/// dataset when it exists).
fn rollup_settings(
    sections: Vec<RollupSection>,
    defaults: RollupDefaultsSection,
) -> Result<RollupSettings, ApiError> {
    let mut configured: Vec<ConfiguredRollup> = Vec::new();
    for (index, section) in sections.into_iter().enumerate() {
        let env = section
            .env
            .unwrap_or_else(|| DEFAULT_ENVIRONMENT.to_owned());
        let definition = RollupDefinition {
            name: section.name,
            granularity: section.granularity,
            dimensions: section.dimensions,
            measures: section.measures,
            filters: section.filters,
        };
        if let Err(error) = quarry_rollup::definition::check_shape(&definition) {
            return Err(ApiError::Config(format!("rollups[{index}].{error}")));
        }
        if configured.iter().any(|other| {
            other.env == env
                && other.dataset == section.dataset
                && other.definition.name == definition.name
        }) {
            return Err(ApiError::Config(format!(
                "rollups[{index}]: {:?} is defined twice for dataset {:?}",
                definition.name, section.dataset
            )));
        }
        configured.push(ConfiguredRollup {
            env,
            dataset: section.dataset,
            definition,
        });
    }
    Ok(RollupSettings {
        configured,
        trace_default: defaults.traces,
    })
}

fn parse_file(text: &str) -> Result<FileConfig, ApiError> {
    let mut file: toml::Table =
        toml::from_str(text).map_err(|error| ApiError::Config(error.to_string()))?;
    if let Some(unknown) = file.keys().find(|key| !SECTIONS.contains(&key.as_str())) {
        return Err(ApiError::Config(format!(
            "unknown section `{unknown}`, expected one of {}",
            SECTIONS.join(", ")
        )));
    }
    let mut storage: toml::Table = section(&mut file, "storage")?;
    let data_dir = match storage.remove(DATA_DIR_KEY) {
        Some(value) => Some(typed(value, "storage.data_dir")?),
        None => None,
    };
    let mut object_storage = toml::Table::new();
    for key in OBJECT_STORAGE_KEYS {
        if let Some(value) = storage.remove(key) {
            object_storage.insert(key.to_owned(), value);
        }
    }
    let object_storage: ObjectStorageConfig = typed(toml::Value::Table(object_storage), "storage")?;
    let mut store: StoreConfig = typed(toml::Value::Table(storage), "storage")?;
    store.compaction = section(&mut file, "compaction")?;
    store.retention = section(&mut file, "retention")?;
    Ok(FileConfig {
        server: section(&mut file, "server")?,
        data_dir,
        store,
        object_storage,
        limits: section(&mut file, "limits")?,
        auth: section(&mut file, "auth")?,
        rollups: section(&mut file, "rollups")?,
        rollup_defaults: section(&mut file, "rollup_defaults")?,
        query: section(&mut file, "query")?,
        cluster: section(&mut file, "cluster")?,
        sources: section(&mut file, "sources")?,
        alerts: section(&mut file, "alerts")?,
        pipeline: section(&mut file, "pipeline")?,
    })
}

/// A section of the file as its type; absent means the type's defaults.
fn section<T: DeserializeOwned + Default>(
    file: &mut toml::Table,
    name: &str,
) -> Result<T, ApiError> {
    match file.remove(name) {
        Some(value) => typed(value, name),
        None => Ok(T::default()),
    }
}

/// A value of the file as `T`; an error names the key (`retention.max_age: ...`).
fn typed<T: DeserializeOwned>(value: toml::Value, key: &str) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let key = if path.is_empty() || path == "." {
            key.to_owned()
        } else {
            format!("{key}.{path}")
        };
        ApiError::Config(format!("{key}: {}", error.into_inner()))
    })
}

/// Layers flags over the file over the defaults, then checks the result.
fn resolve(file: FileConfig, args: &Overrides) -> Result<Config, ApiError> {
    let FileConfig {
        server,
        data_dir,
        mut store,
        object_storage,
        limits,
        auth,
        rollups,
        rollup_defaults,
        query,
        cluster,
        mut sources,
        alerts,
        pipeline,
    } = file;
    let data_dir = args
        .data_dir
        .clone()
        .or(data_dir)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let http = args
        .http
        .clone()
        .or(server.http)
        .unwrap_or_else(|| DEFAULT_HTTP.to_owned());

    store.wal_dir = data_dir.join(WAL_SUBDIR);
    if let Some(durability) = args.durability {
        store.durability = durability;
    }
    if let Some(max_age) = &args.retention_max_age {
        store.retention.max_age = parse_max_age(max_age)
            .map_err(|problem| ApiError::Config(format!("--retention-max-age: {problem}")))?;
    }
    let invalid =
        |section: &str, error: InvalidSetting| ApiError::Config(format!("{section}.{error}"));
    store
        .validate()
        .map_err(|error| invalid("storage", error))?;
    object_storage
        .validate()
        .map_err(|error| ApiError::Config(error.to_string()))?;
    store
        .compaction
        .validate()
        .map_err(|error| invalid("compaction", error))?;
    store
        .retention
        .validate()
        .map_err(|error| invalid("retention", error))?;
    if let Some(key) = limits.zero_limit() {
        return Err(ApiError::Config(format!(
            "limits.{key} must be greater than 0"
        )));
    }
    query
        .validate()
        .map_err(|error| ApiError::Config(format!("query.{error}")))?;

    let otlp_grpc = receiver_address(
        args.otlp_grpc.clone().or(server.otlp_grpc),
        DEFAULT_OTLP_GRPC,
    );
    let otlp_http = receiver_address(
        args.otlp_http.clone().or(server.otlp_http),
        DEFAULT_OTLP_HTTP,
    );
    let pg = receiver_address(args.pg.clone().or(server.pg), DEFAULT_PG);
    let max_concurrent_ingest = match server.max_concurrent_ingest {
        Some(0) => {
            return Err(ApiError::Config(
                "server.max_concurrent_ingest must be greater than 0".into(),
            ));
        }
        Some(max) => max,
        None => DEFAULT_MAX_CONCURRENT_INGEST,
    };
    check_api_keys(&auth.api_keys)?;
    let rollups = rollup_settings(rollups, rollup_defaults)?;
    let node_id = args.node_id.clone().or(server.node_id);
    if let Some(id) = &node_id {
        check_node_id(id)?;
    }
    let peers = peer_urls("cluster.peers", args.peers.clone().unwrap_or(cluster.peers))?;
    let ingest_peers = peer_urls(
        "cluster.ingest_peers",
        args.ingest_peers.clone().unwrap_or(cluster.ingest_peers),
    )?;
    sources.validate()?;
    if pipeline
        .hash_key
        .as_ref()
        .is_some_and(|key| key.len() < MIN_HASH_KEY_BYTES)
    {
        return Err(ApiError::Config(format!(
            "pipeline.hash_key must be at least {MIN_HASH_KEY_BYTES} bytes"
        )));
    }
    if pipeline
        .usage_interval
        .is_some_and(|interval| interval.is_zero())
    {
        return Err(ApiError::Config(
            "pipeline.usage_interval must be greater than 0".into(),
        ));
    }
    if pipeline.sampling_max_buffered_spans == Some(0) {
        return Err(ApiError::Config(
            "pipeline.sampling_max_buffered_spans must be greater than 0".into(),
        ));
    }
    if pipeline.sampling_max_buffered_bytes == Some(0) {
        return Err(ApiError::Config(
            "pipeline.sampling_max_buffered_bytes must be greater than 0".into(),
        ));
    }

    Ok(Config {
        http,
        data_dir,
        store,
        object_storage,
        limits,
        query,
        api_keys: auth.api_keys,
        max_concurrent_ingest,
        otlp_grpc,
        otlp_http,
        pg,
        rollups,
        clock: system_clock(),
        role: args.role.or(server.role).unwrap_or_default(),
        node_id,
        worker: args.worker.clone().or(cluster.worker),
        peers,
        scan_bytes_per_task: cluster.scan_bytes_per_task,
        ingest_peers,
        sources,
        alerts,
        pipeline,
    })
}

/// `[sources]`: stream sources consumed into the store (docs/streams.md).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourcesConfig {
    /// `[[sources.mqtt]]`: MQTT subscriptions.
    pub mqtt: Vec<MqttSourceConfig>,
    /// `[[sources.kafka]]`: Kafka topics.
    pub kafka: Vec<KafkaSourceConfig>,
}

/// What a stream message holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamFormat {
    /// An OTLP export request in protobuf, as the Collector's kafka exporter writes it.
    OtlpProto,
    /// An OTLP export request in JSON.
    OtlpJson,
    /// One Events API event (a JSON object) or batch (a JSON array).
    HoneycombEvents,
    /// JSON objects, one per line, each an event.
    JsonLines,
}

impl StreamFormat {
    /// The format's name in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            StreamFormat::OtlpProto => "otlp_proto",
            StreamFormat::OtlpJson => "otlp_json",
            StreamFormat::HoneycombEvents => "honeycomb_events",
            StreamFormat::JsonLines => "json_lines",
        }
    }

    /// Whether messages are OTLP, whose rows take their service's dataset.
    pub fn is_otlp(self) -> bool {
        matches!(self, StreamFormat::OtlpProto | StreamFormat::OtlpJson)
    }
}

/// Which OTLP signal a source's messages carry (one topic per signal, as the
/// Collector's kafka exporter writes them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamSignal {
    /// Spans (`otlp_spans` topic by the Collector's default).
    #[default]
    Traces,
    /// Log records (`otlp_logs`).
    Logs,
    /// Metric data points (`otlp_metrics`).
    Metrics,
}

/// The dead-letter dataset when a source names none.
pub const DEFAULT_DEAD_LETTER_DATASET: &str = "stream_dead_letters";
/// Seconds between MQTT keep-alive pings when a source sets none.
const DEFAULT_MQTT_KEEP_ALIVE_SECS: u64 = 30;

fn default_dead_letter_dataset() -> String {
    DEFAULT_DEAD_LETTER_DATASET.to_owned()
}

fn default_environment() -> String {
    DEFAULT_ENVIRONMENT.to_owned()
}

fn default_keep_alive_secs() -> u64 {
    DEFAULT_MQTT_KEEP_ALIVE_SECS
}

/// Where a stream message's rows go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatasetRule {
    /// OTLP: each row's `service.name`, as for OTLP over HTTP and gRPC.
    ServiceName,
    /// One dataset for every message.
    Fixed(String),
    /// MQTT: the topic's level at this index (0-based), e.g. the `+` of
    /// `devices/+/telemetry` is level 1.
    TopicLevel(usize),
    /// Kafka: the value of this message header (messages without it are
    /// dead-lettered, unless the format is OTLP, whose rows then take their
    /// service's dataset).
    Header(String),
}

/// One `[[sources.mqtt]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSourceConfig {
    /// The source's name in logs, `/metrics` and dead letters (default `mqtt-<n>`).
    #[serde(default)]
    pub name: String,
    /// `mqtt://host:port` (port 1883 when left out).
    pub broker: String,
    /// The client id; fixed, so the broker keeps the session (and queues QoS 1
    /// messages) while Quarry is down.
    pub client_id: String,
    /// Topic filters, with `+` and `#` wildcards, subscribed with QoS 1.
    pub topics: Vec<String>,
    /// What the messages hold.
    pub format: StreamFormat,
    /// The OTLP signal, for the `otlp_*` formats.
    #[serde(default)]
    pub signal: StreamSignal,
    /// The environment the rows are written to.
    #[serde(default = "default_environment")]
    pub environment: String,
    /// A fixed dataset (OTLP: overrides the services' datasets).
    #[serde(default)]
    pub dataset: Option<String>,
    /// The topic level (0-based) naming the dataset.
    #[serde(default)]
    pub dataset_topic_level: Option<usize>,
    /// A top-level field of a JSON event naming the message: a message whose
    /// id was stored already is acknowledged and not stored again.
    #[serde(default)]
    pub message_id_field: Option<String>,
    /// Where undecodable messages go.
    #[serde(default = "default_dead_letter_dataset")]
    pub dead_letter_dataset: String,
    /// Seconds between keep-alive pings.
    #[serde(default = "default_keep_alive_secs")]
    pub keep_alive_secs: u64,
    /// Broker login.
    #[serde(default)]
    pub username: Option<String>,
    /// Broker password (with `username`).
    #[serde(default)]
    pub password: Option<String>,
}

impl MqttSourceConfig {
    /// Where the source's rows go.
    pub fn dataset_rule(&self) -> DatasetRule {
        match (&self.dataset, self.dataset_topic_level) {
            (Some(dataset), _) => DatasetRule::Fixed(dataset.clone()),
            (None, Some(level)) => DatasetRule::TopicLevel(level),
            (None, None) => DatasetRule::ServiceName,
        }
    }
}

/// One `[[sources.kafka]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// The source's name in logs, `/metrics`, the WAL and dead letters
    /// (default `kafka-<n>`); its consumed offsets are kept under it.
    #[serde(default)]
    pub name: String,
    /// Bootstrap brokers, `host:port`.
    pub brokers: Vec<String>,
    /// Topics to consume (every partition of each).
    pub topics: Vec<String>,
    /// Consumer group the consumed offsets are committed to, for lag tools.
    pub group: String,
    /// What the messages hold.
    pub format: StreamFormat,
    /// The OTLP signal, for the `otlp_*` formats.
    #[serde(default)]
    pub signal: StreamSignal,
    /// The environment the rows are written to.
    #[serde(default = "default_environment")]
    pub environment: String,
    /// A fixed dataset (OTLP: overrides the services' datasets).
    #[serde(default)]
    pub dataset: Option<String>,
    /// A message header naming the dataset.
    #[serde(default)]
    pub dataset_header: Option<String>,
    /// Where undecodable messages go.
    #[serde(default = "default_dead_letter_dataset")]
    pub dead_letter_dataset: String,
}

impl KafkaSourceConfig {
    /// Where the source's rows go.
    pub fn dataset_rule(&self) -> DatasetRule {
        match (&self.dataset, &self.dataset_header) {
            (Some(dataset), _) => DatasetRule::Fixed(dataset.clone()),
            (None, Some(header)) => DatasetRule::Header(header.clone()),
            (None, None) => DatasetRule::ServiceName,
        }
    }
}

impl SourcesConfig {
    /// Names unnamed sources and checks each one; an error names its entry.
    fn validate(&mut self) -> Result<(), ApiError> {
        let mut names = std::collections::HashSet::new();
        for (index, source) in self.mqtt.iter_mut().enumerate() {
            let key = format!("sources.mqtt[{index}]");
            if source.name.is_empty() {
                source.name = format!("mqtt-{index}");
            }
            if source.dataset.is_some() && source.dataset_topic_level.is_some() {
                return Err(ApiError::Config(format!(
                    "{key}: set either dataset or dataset_topic_level, not both"
                )));
            }
            if source.topics.is_empty() {
                return Err(ApiError::Config(format!(
                    "{key}.topics: name at least one topic filter"
                )));
            }
            if let Some(bad) = source
                .topics
                .iter()
                .find(|filter| !valid_topic_filter(filter))
            {
                return Err(ApiError::Config(format!(
                    "{key}.topics: {bad:?} is not an MQTT topic filter ('+' and '#' stand alone in a level, '#' only last)"
                )));
            }
            if source.client_id.trim().is_empty() {
                return Err(ApiError::Config(format!(
                    "{key}.client_id must not be empty"
                )));
            }
            if source.keep_alive_secs < 5 {
                return Err(ApiError::Config(format!(
                    "{key}.keep_alive_secs must be at least 5"
                )));
            }
            check_source_names(
                &key,
                &source.name,
                &source.environment,
                source.dataset.as_deref(),
                &source.dead_letter_dataset,
            )?;
            check_dataset_rule(&key, source.format, &source.dataset_rule())?;
            if !names.insert(source.name.clone()) {
                return Err(ApiError::Config(format!(
                    "{key}: the name {:?} is taken",
                    source.name
                )));
            }
        }
        for (index, source) in self.kafka.iter_mut().enumerate() {
            let key = format!("sources.kafka[{index}]");
            if source.name.is_empty() {
                source.name = format!("kafka-{index}");
            }
            if source.dataset.is_some() && source.dataset_header.is_some() {
                return Err(ApiError::Config(format!(
                    "{key}: set either dataset or dataset_header, not both"
                )));
            }
            if source.brokers.is_empty() {
                return Err(ApiError::Config(format!(
                    "{key}.brokers: name at least one broker"
                )));
            }
            if source.topics.is_empty() {
                return Err(ApiError::Config(format!(
                    "{key}.topics: name at least one topic"
                )));
            }
            if source.group.trim().is_empty() {
                return Err(ApiError::Config(format!("{key}.group must not be empty")));
            }
            check_source_names(
                &key,
                &source.name,
                &source.environment,
                source.dataset.as_deref(),
                &source.dead_letter_dataset,
            )?;
            check_dataset_rule(&key, source.format, &source.dataset_rule())?;
            if !names.insert(source.name.clone()) {
                return Err(ApiError::Config(format!(
                    "{key}: the name {:?} is taken",
                    source.name
                )));
            }
        }
        Ok(())
    }
}

/// Whether `filter` is an MQTT topic filter: non-empty, `+` and `#` alone in
/// their level, `#` only as the last level.
fn valid_topic_filter(filter: &str) -> bool {
    let levels: Vec<&str> = filter.split('/').collect();
    !filter.is_empty()
        && levels.iter().enumerate().all(|(index, level)| {
            let wildcard_inside = level.len() > 1 && (level.contains('+') || level.contains('#'));
            let hash_not_last = *level == "#" && index + 1 != levels.len();
            !wildcard_inside && !hash_not_last
        })
}

fn check_source_names(
    key: &str,
    name: &str,
    environment: &str,
    dataset: Option<&str>,
    dead_letter: &str,
) -> Result<(), ApiError> {
    let fine = name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !fine {
        return Err(ApiError::Config(format!(
            "{key}.name {name:?}: use up to 128 letters, digits, '-', '_' or '.'"
        )));
    }
    names::environment_name(environment)
        .map_err(|error| ApiError::Config(format!("{key}.environment: {error}")))?;
    if let Some(dataset) = dataset {
        names::dataset_name(dataset)
            .map_err(|error| ApiError::Config(format!("{key}.dataset: {error}")))?;
    }
    names::dataset_name(dead_letter)
        .map_err(|error| ApiError::Config(format!("{key}.dead_letter_dataset: {error}")))?;
    Ok(())
}

/// Events need a dataset: only OTLP rows can take their service's.
fn check_dataset_rule(key: &str, format: StreamFormat, rule: &DatasetRule) -> Result<(), ApiError> {
    if *rule == DatasetRule::ServiceName && !format.is_otlp() {
        return Err(ApiError::Config(format!(
            "{key}: format {} needs a dataset (dataset, dataset_topic_level or dataset_header)",
            format.name()
        )));
    }
    Ok(())
}

/// The cluster-port URLs of setting `key`.
fn peer_urls(key: &str, peers: Vec<String>) -> Result<Vec<url::Url>, ApiError> {
    peers.iter().map(|peer| peer_url(key, peer)).collect()
}

/// A peer's cluster-port URL (`http://host:port`), from setting `key`.
fn peer_url(key: &str, peer: &str) -> Result<url::Url, ApiError> {
    let url = url::Url::parse(peer.trim())
        .map_err(|error| ApiError::Config(format!("{key}: {peer:?}: {error}")))?;
    if url.scheme() != "http" || url.host().is_none() || url.port().is_none() {
        return Err(ApiError::Config(format!(
            "{key}: {peer:?}: expected http://host:port"
        )));
    }
    Ok(url)
}

/// A node id is a short name of letters, digits, `-`, `_` and `.`.
fn check_node_id(id: &str) -> Result<(), ApiError> {
    let fine = (1..=128).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if fine {
        Ok(())
    } else {
        Err(ApiError::Config(format!(
            "server.node_id {id:?}: use 1 to 128 letters, digits, '-', '_' or '.'"
        )))
    }
}

/// A receiver's address: the configured one, the default, or none for `off`.
fn receiver_address(configured: Option<String>, default: &str) -> Option<String> {
    match configured {
        Some(address) if address.trim().eq_ignore_ascii_case(OFF) => None,
        Some(address) => Some(address),
        None => Some(default.to_owned()),
    }
}

fn check_api_keys(api_keys: &HashMap<String, String>) -> Result<(), ApiError> {
    for (key, environment) in api_keys {
        if key.is_empty() {
            return Err(ApiError::Config(
                "auth.api_keys: an API key must not be empty".into(),
            ));
        }
        names::environment_name(environment)
            .map_err(|error| ApiError::Config(format!("auth.api_keys: {error}")))?;
    }
    Ok(())
}

/// Creates the WAL directory and opens the object storage (the local objects
/// directory, or the configured S3 bucket with its read cache).
pub fn open_object_storage(config: &mut Config) -> Result<ObjectStorage, ApiError> {
    create_dir(&config.store.wal_dir)?;
    if config.node_id.is_none() && config.object_storage.object_store.is_some() {
        config.node_id = Some(persistent_node_id(&config.data_dir)?);
    }
    quarry_object_storage::open(
        &config.object_storage,
        &config.objects_dir(),
        &config.cache_dir(),
        quarry_segment_store::is_immutable_object,
    )
    .map_err(|error| ApiError::Startup(format!("cannot open the object storage: {error}")))
}

/// The id generated for this data directory (and its WAL) on its first start
/// with a remote store, read back on every later one.
fn persistent_node_id(data_dir: &Path) -> Result<String, ApiError> {
    let path = data_dir.join(NODE_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(ApiError::Startup(format!(
                "cannot read {}: {error}",
                path.display()
            )));
        }
    }
    let id = format!("node-{}", uuid::Uuid::now_v7().simple());
    std::fs::write(&path, &id)
        .map_err(|error| ApiError::Startup(format!("cannot write {}: {error}", path.display())))?;
    Ok(id)
}

fn create_dir(dir: &Path) -> Result<(), ApiError> {
    std::fs::create_dir_all(dir).map_err(|error| {
        ApiError::Config(format!(
            "cannot create directory {}: {error}",
            dir.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn from_toml(text: &str, args: &Overrides) -> Result<Config, ApiError> {
        let file = parse_file(text)?;
        resolve(file, args)
    }

    #[test]
    fn an_empty_file_gives_the_defaults() {
        let config = from_toml("", &Overrides::default()).unwrap();
        assert_eq!(config.http, "127.0.0.1:8080");
        assert_eq!(config.data_dir, PathBuf::from("./quarry-data"));
        assert_eq!(config.store.wal_dir, PathBuf::from("./quarry-data/wal"));
        assert_eq!(config.objects_dir(), PathBuf::from("./quarry-data/objects"));
        assert_eq!(config.store.durability, Durability::Fsync);
        assert_eq!(
            config.store.seal_max_rows,
            quarry_segment_store::DEFAULT_SEAL_MAX_ROWS
        );
        assert_eq!(
            config.limits.max_body_bytes,
            Limits::default().max_body_bytes
        );
        assert_eq!(config.max_concurrent_ingest, 256);
        assert!(config.api_keys.is_empty());
        assert_eq!(config.otlp_grpc.as_deref(), Some("127.0.0.1:4317"));
        assert_eq!(config.otlp_http.as_deref(), Some("127.0.0.1:4318"));
        assert_eq!(config.pg.as_deref(), Some("127.0.0.1:5432"));
    }

    #[test]
    fn the_file_overrides_defaults() {
        let text = r#"
            [server]
            http = "0.0.0.0:9000"
            otlp_grpc = "0.0.0.0:4317"
            otlp_http = "off"
            pg = "0.0.0.0:5433"
            [storage]
            data_dir = "/var/lib/quarry"
            durability = "relaxed"
            seal_max_rows = 1000
            seal_max_age_secs = 5
            partition_width_secs = 60
            bloom_filter_columns = ["user_id"]
            [limits]
            max_body_bytes = 1024
            max_columns_per_dataset = 50
            [auth]
            api_keys = { "k1" = "production", "k2" = "staging" }
        "#;
        let config = from_toml(text, &Overrides::default()).unwrap();
        assert_eq!(config.http, "0.0.0.0:9000");
        assert_eq!(config.otlp_grpc.as_deref(), Some("0.0.0.0:4317"));
        assert_eq!(config.otlp_http, None);
        assert_eq!(config.pg.as_deref(), Some("0.0.0.0:5433"));
        assert_eq!(config.store.wal_dir, PathBuf::from("/var/lib/quarry/wal"));
        assert_eq!(config.store.durability, Durability::Relaxed);
        assert_eq!(config.store.seal_max_rows, 1000);
        assert_eq!(config.store.seal_max_age, Duration::from_secs(5));
        assert_eq!(config.store.partition_width, Duration::from_secs(60));
        assert_eq!(
            config.store.bloom_filter_columns,
            vec!["user_id".to_owned()]
        );
        assert_eq!(config.limits.max_body_bytes, 1024);
        assert_eq!(config.limits.max_columns_per_dataset, 50);
        assert_eq!(config.api_keys["k2"], "staging");
    }

    #[test]
    fn flags_override_the_file() {
        let text = "[server]\nhttp = \"0.0.0.0:9000\"\n[storage]\ndata_dir = \"/a\"\ndurability = \"relaxed\"\n";
        let args = Overrides {
            data_dir: Some(PathBuf::from("/b")),
            http: Some("127.0.0.1:0".into()),
            config: None,
            durability: Some(Durability::Fsync),
            otlp_grpc: Some("127.0.0.1:0".into()),
            otlp_http: Some("OFF".into()),
            pg: Some("off".into()),
            ..Overrides::default()
        };
        let config = from_toml(text, &args).unwrap();
        assert_eq!(config.pg, None);
        assert_eq!(config.otlp_grpc.as_deref(), Some("127.0.0.1:0"));
        assert_eq!(config.otlp_http, None);
        assert_eq!(config.http, "127.0.0.1:0");
        assert_eq!(config.data_dir, PathBuf::from("/b"));
        assert_eq!(config.store.durability, Durability::Fsync);
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let error = from_toml("[storage]\nseal_max_rowz = 5\n", &Overrides::default()).unwrap_err();
        assert!(error.to_string().contains("seal_max_rowz"), "{error}");
        let error = from_toml("[sever]\n", &Overrides::default()).unwrap_err();
        assert!(error.to_string().contains("sever"), "{error}");
    }

    #[test]
    fn zeros_and_bad_environments_are_refused() {
        let error = from_toml(
            "[storage]\npartition_width_secs = 0\n",
            &Overrides::default(),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "configuration: storage.partition_width_secs must be greater than 0"
        );
        assert!(
            from_toml(
                "[auth]\napi_keys = { \"k\" = \"a/b\" }\n",
                &Overrides::default()
            )
            .is_err()
        );
        assert!(
            from_toml(
                "[auth]\napi_keys = { \"\" = \"prod\" }\n",
                &Overrides::default()
            )
            .is_err()
        );
        assert!(from_toml("[storage]\ndurability = \"never\"\n", &Overrides::default()).is_err());
    }

    #[test]
    fn compaction_and_retention_sections() {
        let text = r#"
            [compaction]
            enabled = false
            interval_secs = 5
            min_segments = 2
            small_segment_bytes = 1000
            max_input_rows = 10
            max_input_bytes = 2000
            orphan_grace_secs = 0
            deletion_delay_secs = 9
            [retention]
            max_age = "30d"
            interval_secs = 7
            [retention.datasets]
            "debug logs" = "12h 30m"
            audit = "forever"
        "#;
        let config = from_toml(text, &Overrides::default()).unwrap();
        let compaction = &config.store.compaction;
        assert!(!compaction.enabled);
        assert_eq!(compaction.interval, Duration::from_secs(5));
        assert_eq!(
            (
                compaction.min_segments,
                compaction.small_segment_bytes,
                compaction.max_input_rows,
                compaction.max_input_bytes
            ),
            (2, 1000, 10, 2000)
        );
        assert_eq!(compaction.orphan_grace, Duration::ZERO);
        assert_eq!(compaction.deletion_delay, Duration::from_secs(9));
        let retention = &config.store.retention;
        assert_eq!(retention.max_age, Some(Duration::from_secs(30 * 86400)));
        assert_eq!(retention.interval, Duration::from_secs(7));
        assert_eq!(
            retention.max_age_for("debug logs"),
            Some(Duration::from_secs(12 * 3600 + 1800))
        );
        assert_eq!(retention.max_age_for("audit"), None);
        assert_eq!(
            retention.max_age_for("other"),
            Some(Duration::from_secs(30 * 86400))
        );

        let flag = Overrides {
            retention_max_age: Some("forever".into()),
            ..Overrides::default()
        };
        assert_eq!(
            from_toml(text, &flag).unwrap().store.retention.max_age,
            None
        );
        let flag = Overrides {
            retention_max_age: Some("2h".into()),
            ..Overrides::default()
        };
        assert_eq!(
            from_toml("", &flag).unwrap().store.retention.max_age,
            Some(Duration::from_secs(7200))
        );

        let defaults = from_toml("", &Overrides::default()).unwrap();
        assert_eq!(defaults.store.retention.max_age, None);
        assert!(defaults.store.compaction.enabled);
        for (bad, key) in [
            ("[retention]\nmax_age = \"soon\"\n", "retention.max_age"),
            ("[retention]\nmax_age = \"0s\"\n", "retention.max_age"),
            (
                "[retention.datasets]\nx = \"3 fortnights\"\n",
                "retention.datasets: \"x\"",
            ),
            (
                "[compaction]\nmin_segments = 1\n",
                "compaction.min_segments",
            ),
            (
                "[compaction]\ninterval_secs = 0\n",
                "compaction.interval_secs",
            ),
        ] {
            let error = from_toml(bad, &Overrides::default()).unwrap_err();
            assert!(error.to_string().contains(key), "{bad}: {error}");
        }
    }

    const EXAMPLE: &str = include_str!("../quarry.example.toml");

    /// Keys whose default depends on the machine (the example shows one value).
    const MACHINE_DEFAULTS: [&str; 1] = ["target_partitions"];

    /// The example file documents the defaults: with every key uncommented (but the
    /// sample API keys), it must configure exactly what an empty file does.
    #[test]
    fn the_example_file_states_the_defaults() {
        let uncommented: String = EXAMPLE
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(setting)
                    if is_setting(setting)
                        && !setting.starts_with("api_keys")
                        && !MACHINE_DEFAULTS.iter().any(|key| setting.starts_with(key)) =>
                {
                    setting
                }
                _ => line,
            })
            .map(|line| format!("{line}\n"))
            .collect();
        assert!(
            uncommented.matches("\nseal_max_rows = ").count() == 1,
            "{uncommented}"
        );
        let example = from_toml(&uncommented, &Overrides::default()).unwrap();
        let defaults = from_toml("", &Overrides::default()).unwrap();
        assert_eq!(format!("{example:?}"), format!("{defaults:?}"));
    }

    /// Every key the example documents is read: set alone to another value than
    /// its default, it changes the configuration.
    #[test]
    fn every_key_of_the_example_file_is_read() {
        let defaults = format!("{:?}", from_toml("", &Overrides::default()).unwrap());
        let mut section = String::new();
        let mut checked = Vec::new();
        for line in EXAMPLE.lines() {
            if let Some(header) = line.strip_prefix('[').filter(|_| !line.starts_with("[[")) {
                section = header.trim_end_matches(']').to_owned();
                continue;
            }
            let Some(setting) = line.strip_prefix("# ").filter(|line| is_setting(line)) else {
                continue;
            };
            let (key, value) = setting.split_once(" = ").unwrap();
            if key == "api_keys" {
                continue;
            }
            let text = format!("[{section}]\n{key} = {}\n", other_value(value));
            let changed = from_toml(&text, &Overrides::default())
                .unwrap_or_else(|error| panic!("{text}: {error}"));
            assert_ne!(
                format!("{changed:?}"),
                defaults,
                "{section}.{key} is documented but not read"
            );
            checked.push(format!("{section}.{key}"));
        }
        for key in [
            "server.http",
            "storage.data_dir",
            "storage.wal_file_max_bytes",
            "compaction.deletion_delay_secs",
            "retention.max_age",
            "limits.max_columns_per_dataset",
            "query.memory_limit_bytes",
            "rollup_defaults.traces",
        ] {
            assert!(
                checked.iter().any(|checked| checked == key),
                "{key}: {checked:?}"
            );
        }
    }

    /// A valid value other than `value` (the documented default).
    fn other_value(value: &str) -> String {
        if let Ok(number) = value.parse::<u64>() {
            return (number + 1_000_003).to_string();
        }
        match value {
            "true" => return "false".into(),
            "false" => return "true".into(),
            "[]" => return r#"["user_id"]"#.into(),
            r#""fsync""# => return r#""relaxed""#.into(),
            r#""forever""# => return r#""30d""#.into(),
            _ => {}
        }
        let text = value.trim_matches('"');
        match text.rsplit_once(':') {
            Some((host, port)) if port.parse::<u16>().is_ok() => {
                format!("\"{host}:{}\"", port.parse::<u16>().unwrap() + 1)
            }
            _ => format!("\"{text}-elsewhere\""),
        }
    }

    fn is_setting(line: &str) -> bool {
        line.split_once(" = ")
            .is_some_and(|(key, _)| key.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
    }

    #[test]
    fn roles_node_ids_and_object_storage_are_read() {
        let text = r#"
            [server]
            role = "query"
            node_id = "query-1"
            [storage]
            object_store = "s3://telemetry/prod"
            [storage.s3]
            endpoint = "http://127.0.0.1:8333"
            path_style = true
            [storage.read_cache]
            max_bytes = 1000
        "#;
        let config = from_toml(text, &Overrides::default()).unwrap();
        assert_eq!(config.role, Role::Query);
        assert!(!config.role.ingests() && !config.role.maintains());
        assert_eq!(config.node_id.as_deref(), Some("query-1"));
        let store = config.store_config();
        assert_eq!(store.node_id, "query-1");
        assert!(!store.run_maintenance);
        let storage = &config.object_storage;
        assert_eq!(storage.object_store.as_deref(), Some("s3://telemetry/prod"));
        assert_eq!(
            storage.s3.endpoint.as_deref(),
            Some("http://127.0.0.1:8333")
        );
        assert!(storage.s3.path_style && !storage.s3.allow_http);
        assert_eq!(storage.read_cache.max_bytes, 1000);

        let flags = Overrides {
            role: Some(Role::Compactor),
            node_id: Some("c".into()),
            ..Overrides::default()
        };
        let config = from_toml(text, &flags).unwrap();
        assert_eq!(
            (config.role, config.node_id.as_deref()),
            (Role::Compactor, Some("c"))
        );

        for (bad, expected) in [
            ("[server]\nrole = \"writer\"\n", "server.role"),
            ("[server]\nnode_id = \"a b\"\n", "server.node_id"),
            (
                "[storage]\nobject_store = \"gs://b\"\n",
                "expected s3://bucket",
            ),
            ("[storage.s3]\nendpointt = \"x\"\n", "storage.s3"),
        ] {
            let error = from_toml(bad, &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{bad}: {error}");
        }
    }

    #[test]
    fn a_remote_store_gives_the_node_a_persistent_id() {
        let dir = tempfile::tempdir().unwrap();
        let text = "[storage]\nobject_store = \"s3://b\"\n";
        let args = Overrides {
            data_dir: Some(dir.path().to_path_buf()),
            ..Overrides::default()
        };
        let mut config = resolve(parse_file(text).unwrap(), &args).unwrap();
        assert_eq!(config.node_id, None);
        let first = persistent_node_id(dir.path()).unwrap();
        assert!(first.starts_with("node-"), "{first}");
        assert_eq!(persistent_node_id(dir.path()).unwrap(), first);
        config.node_id = Some("named".into());
        assert_eq!(config.store_config().node_id, "named");
    }

    #[test]
    fn load_reads_the_named_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quarry.toml");
        std::fs::write(&path, "[server]\nhttp = \"127.0.0.1:7000\"\n").unwrap();
        let args = Overrides {
            config: Some(path),
            ..Overrides::default()
        };
        assert_eq!(Config::load(&args).unwrap().http, "127.0.0.1:7000");
        let missing = Overrides {
            config: Some(dir.path().join("nope.toml")),
            ..Overrides::default()
        };
        assert!(
            Config::load(&missing)
                .unwrap_err()
                .to_string()
                .contains("nope.toml")
        );
    }

    const MQTT_SOURCE: &str = r#"
        [[sources.mqtt]]
        broker = "mqtt://127.0.0.1:1883"
        client_id = "quarry"
        topics = ["devices/+/telemetry", "gateways/#"]
        format = "json_lines"
        dataset_topic_level = 1
    "#;

    #[test]
    fn mqtt_sources_are_read_named_and_checked() {
        let config = from_toml(MQTT_SOURCE, &Overrides::default()).unwrap();
        let [source] = config.sources.mqtt.as_slice() else {
            panic!("{:?}", config.sources)
        };
        assert_eq!(source.name, "mqtt-0");
        assert_eq!(source.environment, "default");
        assert_eq!(source.dead_letter_dataset, DEFAULT_DEAD_LETTER_DATASET);
        assert_eq!(source.dataset_rule(), DatasetRule::TopicLevel(1));
        assert_eq!(source.format, StreamFormat::JsonLines);
        for (change, expected) in [
            ("topics = [\"a/b#\"]", "not an MQTT topic filter"),
            ("topics = [\"a/#/b\"]", "not an MQTT topic filter"),
            ("topics = []", "at least one topic filter"),
            ("dataset = \"d\"", "either dataset or dataset_topic_level"),
            ("client_id = \" \"", "client_id must not be empty"),
            ("format = \"xml\"", "format"),
            ("dead_letter_dataset = \"a/b\"", "dead_letter_dataset"),
        ] {
            let key = change.split(" = ").next().unwrap();
            let text: String = MQTT_SOURCE
                .lines()
                .filter(|line| !line.trim_start().starts_with(&format!("{key} =")))
                .chain([change])
                .collect::<Vec<_>>()
                .join("\n");
            let error = from_toml(&text, &Overrides::default()).unwrap_err();
            assert!(error.to_string().contains(expected), "{change}: {error}");
        }
    }

    #[test]
    fn event_formats_need_a_dataset_and_otlp_does_not() {
        let text = MQTT_SOURCE.replace("dataset_topic_level = 1", "");
        let error = from_toml(&text, &Overrides::default()).unwrap_err();
        assert!(error.to_string().contains("needs a dataset"), "{error}");
        let otlp = text.replace("json_lines", "otlp_proto");
        let config = from_toml(&otlp, &Overrides::default()).unwrap();
        assert_eq!(
            config.sources.mqtt[0].dataset_rule(),
            DatasetRule::ServiceName
        );
    }
}
