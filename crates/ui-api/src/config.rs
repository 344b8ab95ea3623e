//! Configuration: built-in defaults, overridden by the TOML file, overridden by flags.
//!
//! Every key of the file is optional (see `quarry.example.toml`); an unknown key is an
//! error naming it, so a typo never silently falls back to a default. Defaults of the
//! storage and limits sections are the engine crates' own (`StoreConfig::new`,
//! `Limits::default`), so they are stated once.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use quarry_ingest::Limits;
use quarry_rollup::{ConfiguredRollup, RollupSettings};
use quarry_segment_store::{
    DEFAULT_ENVIRONMENT, Durability, RollupDefinition, RollupFilter, RollupMeasure, StoreConfig,
};
use serde::Deserialize;

use crate::cli::ServeArgs;
use crate::error::ApiError;
use crate::names;

/// Default HTTP listen address.
pub const DEFAULT_HTTP: &str = "127.0.0.1:8080";
/// Default OTLP/gRPC listen address (the OpenTelemetry standard port).
pub const DEFAULT_OTLP_GRPC: &str = "127.0.0.1:4317";
/// Default OTLP/HTTP listen address (the OpenTelemetry standard port).
pub const DEFAULT_OTLP_HTTP: &str = "127.0.0.1:4318";
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

/// When a write is acknowledged (the file's and the flag's spelling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DurabilityMode {
    /// After fsync of the write-ahead log.
    Fsync,
    /// After the write reaches the OS; fsync runs periodically.
    Relaxed,
}

impl From<DurabilityMode> for Durability {
    fn from(mode: DurabilityMode) -> Self {
        match mode {
            DurabilityMode::Fsync => Durability::Fsync,
            DurabilityMode::Relaxed => Durability::Relaxed,
        }
    }
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
    /// Ingest limits.
    pub limits: Limits,
    /// API key -> environment; empty means no auth and one environment.
    pub api_keys: HashMap<String, String>,
    /// Ingest requests allowed in flight at once.
    pub max_concurrent_ingest: usize,
    /// Address of the OTLP/gRPC receiver; `None` when turned off.
    pub otlp_grpc: Option<String>,
    /// Address of the OTLP/HTTP receiver's own port; `None` when turned off (the
    /// `/v1/*` routes stay on the HTTP port).
    pub otlp_http: Option<String>,
    /// Rollups of the `[[rollups]]` sections and the default trace rollup switch.
    pub rollups: RollupSettings,
}

impl Config {
    /// Reads the file named by `--config` (if any) and applies the flags over it.
    pub fn load(args: &ServeArgs) -> Result<Config, ApiError> {
        let file = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|error| {
                    ApiError::Config(format!("cannot read {}: {error}", path.display()))
                })?;
                parse_file(&text)
                    .map_err(|error| ApiError::Config(format!("{}: {error}", path.display())))?
            }
            None => FileConfig::default(),
        };
        resolve(file, args)
    }

    /// Directory of the local object store holding segments.
    pub fn objects_dir(&self) -> PathBuf {
        self.data_dir.join(OBJECTS_SUBDIR)
    }
}

/// The TOML file as written; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileConfig {
    server: ServerSection,
    storage: StorageSection,
    limits: LimitsSection,
    auth: AuthSection,
    rollups: Vec<RollupSection>,
    rollup_defaults: RollupDefaultsSection,
    compaction: CompactionSection,
    retention: RetentionSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ServerSection {
    http: Option<String>,
    max_concurrent_ingest: Option<usize>,
    otlp_grpc: Option<String>,
    otlp_http: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct StorageSection {
    data_dir: Option<PathBuf>,
    durability: Option<DurabilityMode>,
    seal_max_rows: Option<usize>,
    seal_max_bytes: Option<usize>,
    seal_max_age_secs: Option<u64>,
    partition_width_secs: Option<u64>,
    row_group_rows: Option<usize>,
    bloom_filter_columns: Option<Vec<String>>,
    max_buffered_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct LimitsSection {
    max_body_bytes: Option<usize>,
    max_event_bytes: Option<usize>,
    max_fields_per_event: Option<usize>,
    max_string_bytes: Option<usize>,
    max_columns_per_dataset: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct AuthSection {
    api_keys: HashMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct CompactionSection {
    enabled: Option<bool>,
    interval_secs: Option<u64>,
    min_segments: Option<usize>,
    small_segment_bytes: Option<u64>,
    max_input_rows: Option<u64>,
    max_input_bytes: Option<u64>,
    orphan_grace_secs: Option<u64>,
    deletion_delay_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RetentionSection {
    /// A duration ("30d", "12h") or "forever".
    max_age: Option<String>,
    interval_secs: Option<u64>,
    /// Dataset name -> a duration or "forever".
    datasets: BTreeMap<String, String>,
}

/// The value of a maximum age that keeps data forever.
const FOREVER: &str = "forever";
/// A merge needs at least two segments.
const MIN_COMPACTION_SEGMENTS: usize = 2;

/// Applies `[compaction]` over the store's defaults.
fn apply_compaction(store: &mut StoreConfig, section: CompactionSection) -> Result<(), ApiError> {
    let compaction = &mut store.compaction;
    set(&mut compaction.enabled, section.enabled);
    set(
        &mut compaction.interval,
        positive("compaction.interval_secs", section.interval_secs)?.map(Duration::from_secs),
    );
    if let Some(min) = section.min_segments {
        if min < MIN_COMPACTION_SEGMENTS {
            return Err(ApiError::Config(format!(
                "compaction.min_segments must be at least {MIN_COMPACTION_SEGMENTS}"
            )));
        }
        compaction.min_segments = min;
    }
    set(
        &mut compaction.small_segment_bytes,
        positive(
            "compaction.small_segment_bytes",
            section.small_segment_bytes,
        )?,
    );
    set(
        &mut compaction.max_input_rows,
        positive("compaction.max_input_rows", section.max_input_rows)?,
    );
    set(
        &mut compaction.max_input_bytes,
        positive("compaction.max_input_bytes", section.max_input_bytes)?,
    );
    set(
        &mut compaction.orphan_grace,
        section.orphan_grace_secs.map(Duration::from_secs),
    );
    set(
        &mut compaction.deletion_delay,
        section.deletion_delay_secs.map(Duration::from_secs),
    );
    Ok(())
}

/// Applies `[retention]` over the store's defaults.
fn apply_retention(store: &mut StoreConfig, section: RetentionSection) -> Result<(), ApiError> {
    let retention = &mut store.retention;
    if let Some(max_age) = &section.max_age {
        retention.max_age = max_age_of("retention.max_age", max_age)?;
    }
    set(
        &mut retention.interval,
        positive("retention.interval_secs", section.interval_secs)?.map(Duration::from_secs),
    );
    for (dataset, max_age) in &section.datasets {
        let key = format!("retention.datasets.{dataset:?}");
        retention
            .dataset_max_age
            .insert(dataset.clone(), max_age_of(&key, max_age)?);
    }
    Ok(())
}

/// A maximum age: a positive duration (`humantime` syntax: "30d", "12h 30m") or
/// "forever" (`None`).
fn max_age_of(key: &str, text: &str) -> Result<Option<Duration>, ApiError> {
    if text.trim().eq_ignore_ascii_case(FOREVER) {
        return Ok(None);
    }
    match humantime::parse_duration(text.trim()) {
        Ok(age) if !age.is_zero() => Ok(Some(age)),
        Ok(_) => Err(ApiError::Config(format!("{key} must be greater than 0"))),
        Err(error) => Err(ApiError::Config(format!(
            "{key}: {text:?} is not a duration like \"30d\" or \"12h\", nor \"{FOREVER}\": {error}"
        ))),
    }
}

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

fn parse_file(text: &str) -> Result<FileConfig, toml::de::Error> {
    toml::from_str(text)
}

/// Layers flags over the file over the defaults, then checks the result.
fn resolve(file: FileConfig, args: &ServeArgs) -> Result<Config, ApiError> {
    let FileConfig {
        server,
        storage,
        limits: file_limits,
        auth,
        rollups,
        rollup_defaults,
        compaction,
        retention,
    } = file;
    let data_dir = args
        .data_dir
        .clone()
        .or(storage.data_dir)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let http = args
        .http
        .clone()
        .or(server.http)
        .unwrap_or_else(|| DEFAULT_HTTP.to_owned());

    let mut store = StoreConfig::new(data_dir.join(WAL_SUBDIR));
    if let Some(mode) = args.durability.or(storage.durability) {
        store.durability = mode.into();
    }
    set(
        &mut store.seal_max_rows,
        positive("storage.seal_max_rows", storage.seal_max_rows)?,
    );
    set(
        &mut store.seal_max_bytes,
        positive("storage.seal_max_bytes", storage.seal_max_bytes)?,
    );
    set(
        &mut store.seal_max_age,
        storage.seal_max_age_secs.map(Duration::from_secs),
    );
    let partition_secs = positive("storage.partition_width_secs", storage.partition_width_secs)?;
    set(
        &mut store.partition_width,
        partition_secs.map(Duration::from_secs),
    );
    set(
        &mut store.row_group_rows,
        positive("storage.row_group_rows", storage.row_group_rows)?,
    );
    set(
        &mut store.bloom_filter_columns,
        storage.bloom_filter_columns,
    );
    set(
        &mut store.max_buffered_bytes,
        positive("storage.max_buffered_bytes", storage.max_buffered_bytes)?,
    );
    apply_compaction(&mut store, compaction)?;
    apply_retention(&mut store, retention)?;
    if let Some(max_age) = &args.retention_max_age {
        store.retention.max_age = max_age_of("--retention-max-age", max_age)?;
    }

    let mut limits = Limits::default();
    set(
        &mut limits.max_body_bytes,
        positive("limits.max_body_bytes", file_limits.max_body_bytes)?,
    );
    set(
        &mut limits.max_event_bytes,
        positive("limits.max_event_bytes", file_limits.max_event_bytes)?,
    );
    set(
        &mut limits.max_fields_per_event,
        positive(
            "limits.max_fields_per_event",
            file_limits.max_fields_per_event,
        )?,
    );
    set(
        &mut limits.max_string_bytes,
        positive("limits.max_string_bytes", file_limits.max_string_bytes)?,
    );
    set(
        &mut limits.max_columns_per_dataset,
        positive(
            "limits.max_columns_per_dataset",
            file_limits.max_columns_per_dataset,
        )?,
    );

    let otlp_grpc = receiver_address(
        args.otlp_grpc.clone().or(server.otlp_grpc),
        DEFAULT_OTLP_GRPC,
    );
    let otlp_http = receiver_address(
        args.otlp_http.clone().or(server.otlp_http),
        DEFAULT_OTLP_HTTP,
    );
    let max_concurrent_ingest =
        positive("server.max_concurrent_ingest", server.max_concurrent_ingest)?
            .unwrap_or(DEFAULT_MAX_CONCURRENT_INGEST);
    check_api_keys(&auth.api_keys)?;
    let rollups = rollup_settings(rollups, rollup_defaults)?;

    Ok(Config {
        http,
        data_dir,
        store,
        limits,
        api_keys: auth.api_keys,
        max_concurrent_ingest,
        otlp_grpc,
        otlp_http,
        rollups,
    })
}

/// A receiver's address: the configured one, the default, or none for `off`.
fn receiver_address(configured: Option<String>, default: &str) -> Option<String> {
    match configured {
        Some(address) if address.trim().eq_ignore_ascii_case(OFF) => None,
        Some(address) => Some(address),
        None => Some(default.to_owned()),
    }
}

/// Replaces a default with a configured value, if there is one.
fn set<T>(target: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *target = value;
    }
}

/// Refuses a zero where zero would stall or break the server.
fn positive<T: PartialEq + Default>(key: &str, value: Option<T>) -> Result<Option<T>, ApiError> {
    match value {
        Some(value) if value == T::default() => {
            Err(ApiError::Config(format!("{key} must be greater than 0")))
        }
        value => Ok(value),
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

/// Creates the data directory's layout; returns the objects directory.
pub fn prepare_data_dir(config: &Config) -> Result<PathBuf, ApiError> {
    let objects = config.objects_dir();
    for dir in [config.store.wal_dir.as_path(), objects.as_path()] {
        create_dir(dir)?;
    }
    Ok(objects)
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

    fn from_toml(text: &str, args: &ServeArgs) -> Result<Config, ApiError> {
        let file = parse_file(text).map_err(|error| ApiError::Config(error.to_string()))?;
        resolve(file, args)
    }

    #[test]
    fn an_empty_file_gives_the_defaults() {
        let config = from_toml("", &ServeArgs::default()).unwrap();
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
    }

    #[test]
    fn the_file_overrides_defaults() {
        let text = r#"
            [server]
            http = "0.0.0.0:9000"
            otlp_grpc = "0.0.0.0:4317"
            otlp_http = "off"
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
        let config = from_toml(text, &ServeArgs::default()).unwrap();
        assert_eq!(config.http, "0.0.0.0:9000");
        assert_eq!(config.otlp_grpc.as_deref(), Some("0.0.0.0:4317"));
        assert_eq!(config.otlp_http, None);
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
        let args = ServeArgs {
            data_dir: Some(PathBuf::from("/b")),
            http: Some("127.0.0.1:0".into()),
            config: None,
            durability: Some(DurabilityMode::Fsync),
            otlp_grpc: Some("127.0.0.1:0".into()),
            otlp_http: Some("OFF".into()),
            ..ServeArgs::default()
        };
        let config = from_toml(text, &args).unwrap();
        assert_eq!(config.otlp_grpc.as_deref(), Some("127.0.0.1:0"));
        assert_eq!(config.otlp_http, None);
        assert_eq!(config.http, "127.0.0.1:0");
        assert_eq!(config.data_dir, PathBuf::from("/b"));
        assert_eq!(config.store.durability, Durability::Fsync);
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let error = from_toml("[storage]\nseal_max_rowz = 5\n", &ServeArgs::default()).unwrap_err();
        assert!(error.to_string().contains("seal_max_rowz"), "{error}");
        let error = from_toml("[sever]\n", &ServeArgs::default()).unwrap_err();
        assert!(error.to_string().contains("sever"), "{error}");
    }

    #[test]
    fn zeros_and_bad_environments_are_refused() {
        let error = from_toml(
            "[storage]\npartition_width_secs = 0\n",
            &ServeArgs::default(),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "configuration: storage.partition_width_secs must be greater than 0"
        );
        assert!(
            from_toml(
                "[auth]\napi_keys = { \"k\" = \"a/b\" }\n",
                &ServeArgs::default()
            )
            .is_err()
        );
        assert!(
            from_toml(
                "[auth]\napi_keys = { \"\" = \"prod\" }\n",
                &ServeArgs::default()
            )
            .is_err()
        );
        assert!(from_toml("[storage]\ndurability = \"never\"\n", &ServeArgs::default()).is_err());
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
        let config = from_toml(text, &ServeArgs::default()).unwrap();
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

        let flag = ServeArgs {
            retention_max_age: Some("forever".into()),
            ..ServeArgs::default()
        };
        assert_eq!(
            from_toml(text, &flag).unwrap().store.retention.max_age,
            None
        );
        let flag = ServeArgs {
            retention_max_age: Some("2h".into()),
            ..ServeArgs::default()
        };
        assert_eq!(
            from_toml("", &flag).unwrap().store.retention.max_age,
            Some(Duration::from_secs(7200))
        );

        let defaults = from_toml("", &ServeArgs::default()).unwrap();
        assert_eq!(defaults.store.retention.max_age, None);
        assert!(defaults.store.compaction.enabled);
        for (bad, key) in [
            ("[retention]\nmax_age = \"soon\"\n", "retention.max_age"),
            ("[retention]\nmax_age = \"0s\"\n", "retention.max_age"),
            (
                "[retention.datasets]\nx = \"3 fortnights\"\n",
                "retention.datasets.\"x\"",
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
            let error = from_toml(bad, &ServeArgs::default()).unwrap_err();
            assert!(error.to_string().contains(key), "{bad}: {error}");
        }
    }

    /// The example file documents the defaults: with every key uncommented (but the
    /// sample API keys), it must configure exactly what an empty file does.
    #[test]
    fn the_example_file_states_the_defaults() {
        let example = include_str!("../quarry.example.toml");
        let uncommented: String = example
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(setting) if is_setting(setting) && !setting.starts_with("api_keys") => setting,
                _ => line,
            })
            .map(|line| format!("{line}\n"))
            .collect();
        assert!(
            uncommented.matches("\nseal_max_rows = ").count() == 1,
            "{uncommented}"
        );
        let example = from_toml(&uncommented, &ServeArgs::default()).unwrap();
        let defaults = from_toml("", &ServeArgs::default()).unwrap();
        assert_eq!(format!("{example:?}"), format!("{defaults:?}"));
    }

    fn is_setting(line: &str) -> bool {
        line.split_once(" = ")
            .is_some_and(|(key, _)| key.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
    }

    #[test]
    fn load_reads_the_named_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("quarry.toml");
        std::fs::write(&path, "[server]\nhttp = \"127.0.0.1:7000\"\n").unwrap();
        let args = ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        };
        assert_eq!(Config::load(&args).unwrap().http, "127.0.0.1:7000");
        let missing = ServeArgs {
            config: Some(dir.path().join("nope.toml")),
            ..ServeArgs::default()
        };
        assert!(
            Config::load(&missing)
                .unwrap_err()
                .to_string()
                .contains("nope.toml")
        );
    }
}
