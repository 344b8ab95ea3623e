//! The ingest pipeline: what happens to an environment's events between decoding
//! and the WAL. Every transport reaches it through the one ingest service, so the
//! same rules hold for the Events API, OTLP and stream sources.
//!
//! - [`redact`]: drop, hash or mask fields (rules per environment and dataset).
//! - [`quota`]: events/s and bytes/s token buckets per environment, and a
//!   storage quota.
//! - [`usage`]: events, bytes in and bytes stored per dataset and hour.
//! - [`persist`]: the rules, changed at runtime over the API, kept in the object
//!   store so they survive restarts and are shared by the nodes.
//! - [`sampling`]: tail-based sampling of traces (rules per environment).
//!
//! See docs/pipeline.md.

pub mod invalid;
pub mod patterns;
pub mod persist;
pub mod quota;
pub mod redact;
pub mod rules;
pub mod sampling;
pub mod usage;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::Array;
use object_store::ObjectStore;
use parking_lot::RwLock;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use quarry_ingest::otlp::DatasetBatch;
use quarry_segment_store::Store;

use self::persist::RulesStore;
use self::quota::{OverLimit, RateLimits};
use self::redact::{HashKey, RedactError, RedactionCounts, Redactor};
use self::rules::{EnvironmentRules, InvalidRule, PipelineRules};
use self::sampling::rules::SamplingRules;
use self::sampling::{KeptTraces, Sampler, SamplingError, SamplingSettings};
use self::usage::{USAGE_DATASET, Usage, UsageRow};

/// How often usage rows are written and stored bytes measured, by default.
pub const DEFAULT_USAGE_INTERVAL: Duration = Duration::from_secs(60);
/// How long a client over its storage quota is told to wait (space is freed by
/// retention, not by time alone).
const STORAGE_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Attempts to write the kept traces recovered at start-up before giving up.
const START_APPEND_ATTEMPTS: usize = 50;

/// Why the pipeline refused a request or a change.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The environment sends faster than its quota.
    #[error("environment {environment:?} is over its quota of {unit} per second; retry in {:.1}s", .retry_after.as_secs_f64())]
    RateLimited {
        environment: String,
        unit: &'static str,
        retry_after: Duration,
    },
    /// The environment stores as much as its quota allows.
    #[error("environment {environment:?} stores {stored} bytes, its quota is {limit} bytes")]
    StorageFull {
        environment: String,
        stored: u64,
        limit: u64,
    },
    /// A rule that cannot be used (names its field).
    #[error(transparent)]
    Invalid(#[from] InvalidRule),
    /// Redaction failed; the batch is refused rather than written unredacted.
    #[error(transparent)]
    Redact(#[from] RedactError),
    /// Another node changed the rules at the same moment.
    #[error("the pipeline rules were changed concurrently; read them again and retry")]
    Conflict,
    /// The rules could not be read or written.
    #[error("pipeline rules storage: {0}")]
    Storage(String),
    /// Spans could not be buffered durably for sampling.
    #[error(transparent)]
    Sampling(#[from] SamplingError),
}

impl PipelineError {
    /// How long a refused client should wait, for rate and storage refusals.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            PipelineError::RateLimited { retry_after, .. } => Some(*retry_after),
            PipelineError::StorageFull { .. } => Some(STORAGE_RETRY_AFTER),
            _ => None,
        }
    }
}

/// `[pipeline]` of the configuration file.
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    /// The HMAC key of `hash` rules.
    pub hash_key: Vec<u8>,
    /// How often usage rows are written and stored bytes measured.
    pub usage_interval: Duration,
    /// Where tail sampling journals buffered spans, and its bounds.
    pub sampling: SamplingSettings,
}

/// Directory in the data directory of the sampling journal.
const SAMPLING_DIR: &str = "sampling";
/// File in the data directory holding the generated hash key.
const HASH_KEY_FILE: &str = "pipeline-hash-key";
/// Bytes of a generated hash key (SHA-256's block is 64; 32 random bytes is the
/// strength of the hash itself).
const GENERATED_KEY_BYTES: usize = 32;

impl PipelineSettings {
    /// The settings of `[pipeline]` (its `hash_key` and `usage_interval`); without
    /// a configured hash key, the key kept in `data_dir` (generated on first start).
    pub fn new(
        hash_key: Option<&str>,
        usage_interval: Option<Duration>,
        data_dir: &std::path::Path,
    ) -> Result<PipelineSettings, PipelineError> {
        let hash_key = match hash_key {
            Some(key) => key.as_bytes().to_vec(),
            None => stored_hash_key(&data_dir.join(HASH_KEY_FILE))?,
        };
        Ok(PipelineSettings {
            hash_key,
            usage_interval: usage_interval.unwrap_or(DEFAULT_USAGE_INTERVAL),
            sampling: SamplingSettings::in_dir(data_dir.join(SAMPLING_DIR)),
        })
    }
}

/// The key in `path`, or a new random one written there (readable by its owner only).
fn stored_hash_key(path: &std::path::Path) -> Result<Vec<u8>, PipelineError> {
    use std::io::{Read, Write};
    let failed = |error: std::io::Error| {
        PipelineError::Storage(format!("hash key {}: {error}", path.display()))
    };
    match std::fs::read(path) {
        Ok(key) if key.len() >= GENERATED_KEY_BYTES => return Ok(key),
        Ok(_) => {
            return Err(PipelineError::Storage(format!(
                "hash key {} is shorter than {GENERATED_KEY_BYTES} bytes",
                path.display()
            )));
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(failed(error)),
    }
    let mut key = vec![0u8; GENERATED_KEY_BYTES];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut key))
        .map_err(failed)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(failed)?;
    file.write_all(&key)
        .and_then(|()| file.sync_all())
        .map_err(failed)?;
    Ok(key)
}

/// Labels of a redaction counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RuleLabel {
    environment: String,
    rule: String,
}

/// Labels of a quota refusal counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct QuotaLabel {
    environment: String,
    /// `events`, `bytes` or `storage`.
    limit: String,
}

/// The pipeline's counters on `/metrics`.
#[derive(Debug, Default)]
struct PipelineMetrics {
    redactions: Family<RuleLabel, Counter>,
    refusals: Family<QuotaLabel, Counter>,
}

/// One environment's compiled rules.
struct Compiled {
    rules: EnvironmentRules,
    redactor: Option<Arc<Redactor>>,
    sampling: Option<Arc<SamplingRules>>,
}

/// The ingest pipeline of every environment.
pub struct Pipeline {
    environments: RwLock<HashMap<String, Arc<Compiled>>>,
    key: HashKey,
    limits: RateLimits,
    usage: Usage,
    metrics: PipelineMetrics,
    persisted: RulesStore,
    /// One change at a time (persist, then apply).
    changing: tokio::sync::Mutex<()>,
    usage_interval: Duration,
    sampler: Arc<Sampler>,
    /// The decision loop, once sampling is started.
    deciding: parking_lot::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline").finish_non_exhaustive()
    }
}

impl Pipeline {
    /// A pipeline with no rules, persisting them in `objects`.
    pub fn new(objects: Arc<dyn ObjectStore>, settings: &PipelineSettings) -> Pipeline {
        Pipeline {
            environments: RwLock::new(HashMap::new()),
            key: redact::hash_key(&settings.hash_key),
            limits: RateLimits::default(),
            usage: Usage::default(),
            metrics: PipelineMetrics::default(),
            persisted: RulesStore::new(objects),
            changing: tokio::sync::Mutex::new(()),
            usage_interval: settings.usage_interval,
            sampler: Arc::new(Sampler::new(settings.sampling.clone())),
            deciding: parking_lot::Mutex::new(None),
        }
    }

    /// Reads the persisted rules (at startup, before any ingest).
    pub async fn load(&self) -> Result<(), PipelineError> {
        let _changing = self.changing.lock().await;
        self.load_locked().await
    }

    async fn load_locked(&self) -> Result<(), PipelineError> {
        let persisted = self.persisted.load().await?;
        for (environment, rules) in persisted.environments {
            rules.validate().map_err(|error| InvalidRule {
                field: format!("environments.{environment}.{}", error.field),
                problem: error.problem,
            })?;
            self.apply(&environment, rules)?;
        }
        Ok(())
    }

    /// An environment's rules (empty when none were set).
    pub fn rules(&self, environment: &str) -> EnvironmentRules {
        self.environments
            .read()
            .get(environment)
            .map(|compiled| compiled.rules.clone())
            .unwrap_or_default()
    }

    /// Replaces an environment's rules: validated, persisted, then in force for
    /// every request decoded from then on.
    pub async fn set_rules(
        &self,
        environment: &str,
        rules: EnvironmentRules,
    ) -> Result<(), PipelineError> {
        rules.validate()?;
        let _changing = self.changing.lock().await;
        let mut all = PipelineRules {
            environments: self
                .environments
                .read()
                .iter()
                .map(|(env, compiled)| (env.clone(), compiled.rules.clone()))
                .collect(),
        };
        if rules == EnvironmentRules::default() {
            all.environments.remove(environment);
        } else {
            all.environments
                .insert(environment.to_owned(), rules.clone());
        }
        if let Err(error) = self.persisted.save(&all).await {
            if matches!(error, PipelineError::Conflict) {
                // Another node wrote newer rules: take them, so a retry builds on them.
                self.load_locked().await?;
            }
            return Err(error);
        }
        self.apply(environment, rules)
    }

    fn apply(&self, environment: &str, rules: EnvironmentRules) -> Result<(), PipelineError> {
        let redactor = if rules.redaction.is_empty() {
            None
        } else {
            let redactor =
                Redactor::new(&rules.redaction, self.key.clone()).map_err(|problem| {
                    InvalidRule {
                        field: "redaction".into(),
                        problem,
                    }
                })?;
            Some(Arc::new(redactor))
        };
        self.limits.set(environment, Some(&rules.quota));
        let sampling = rules.sampling.clone().map(Arc::new);
        self.environments.write().insert(
            environment.to_owned(),
            Arc::new(Compiled {
                rules,
                redactor,
                sampling,
            }),
        );
        Ok(())
    }

    fn compiled(&self, environment: &str) -> Option<Arc<Compiled>> {
        self.environments.read().get(environment).cloned()
    }

    /// Admits a request's body bytes against the environment's byte rate and
    /// storage quota (before decoding: a flood costs no decoding).
    pub fn admit_request(&self, environment: &str, body_bytes: u64) -> Result<(), PipelineError> {
        let Some(compiled) = self.compiled(environment) else {
            return Ok(());
        };
        if let Some(limit) = compiled.rules.quota.storage_bytes {
            let stored = self.usage.stored_bytes(environment);
            if stored >= limit {
                self.refused(environment, "storage");
                return Err(PipelineError::StorageFull {
                    environment: environment.to_owned(),
                    stored,
                    limit,
                });
            }
        }
        self.limits
            .take_bytes(environment, body_bytes)
            .map_err(|over| self.rate_limited(environment, over))
    }

    /// Admits a decoded request's events against the environment's event rate.
    pub fn admit_events(&self, environment: &str, events: u64) -> Result<(), PipelineError> {
        self.limits
            .take_events(environment, events)
            .map_err(|over| self.rate_limited(environment, over))
    }

    fn rate_limited(&self, environment: &str, over: OverLimit) -> PipelineError {
        self.refused(environment, over.unit);
        PipelineError::RateLimited {
            environment: environment.to_owned(),
            unit: over.unit,
            retry_after: over.retry_after,
        }
    }

    fn refused(&self, environment: &str, limit: &str) {
        self.metrics
            .refusals
            .get_or_create(&QuotaLabel {
                environment: environment.to_owned(),
                limit: limit.to_owned(),
            })
            .inc();
    }

    /// Applies the environment's redaction rules to decoded batches (CPU work:
    /// call it off the async runtime).
    pub fn redact(
        &self,
        environment: &str,
        batches: Vec<DatasetBatch>,
    ) -> Result<Vec<DatasetBatch>, PipelineError> {
        let Some(redactor) = self.compiled(environment).and_then(|c| c.redactor.clone()) else {
            return Ok(batches);
        };
        let mut counts = RedactionCounts::new();
        let redacted = batches
            .into_iter()
            .map(|batch| {
                let DatasetBatch {
                    dataset,
                    batch,
                    rows,
                } = batch;
                let batch = redactor.redact(&dataset, batch, &mut counts)?;
                Ok(DatasetBatch {
                    dataset,
                    batch,
                    rows,
                })
            })
            .collect::<Result<Vec<_>, RedactError>>()?;
        for (rule, count) in counts {
            self.metrics
                .redactions
                .get_or_create(&RuleLabel {
                    environment: environment.to_owned(),
                    rule,
                })
                .inc_by(count);
        }
        Ok(redacted)
    }

    /// An environment's sampling rules, when it samples.
    fn sampling_rules(&self, environment: &str) -> Option<Arc<SamplingRules>> {
        self.compiled(environment)?.sampling.clone()
    }

    /// Tail sampling of a request's decoded (and redacted) batches: answers the
    /// rows to append now; the spans it buffers are durable when it returns, and
    /// are written by the decision loop once their trace is decided kept.
    pub async fn sample(
        &self,
        environment: &str,
        batches: Vec<DatasetBatch>,
    ) -> Result<Vec<DatasetBatch>, PipelineError> {
        let Some(rules) = self.sampling_rules(environment) else {
            return Ok(batches);
        };
        let sampler = Arc::clone(&self.sampler);
        let environment = environment.to_owned();
        // Journal writes and fsync: off the async runtime.
        tokio::task::spawn_blocking(move || {
            sampler.sample(&environment, &rules, batches, std::time::Instant::now())
        })
        .await
        .map_err(|error| PipelineError::Storage(format!("sampling task failed: {error}")))?
        .map_err(PipelineError::from)
    }

    /// Replays the sampling journal (writing the kept traces a crash left
    /// unwritten, buffering the undecided ones again), then starts the decision
    /// loop. Call it after [`Pipeline::load`], before the first request.
    pub async fn start_sampling(self: &Arc<Self>, store: Arc<Store>) -> Result<(), PipelineError> {
        let sampler = Arc::clone(&self.sampler);
        let recovered =
            tokio::task::spawn_blocking(move || sampler.recover(std::time::Instant::now()))
                .await
                .map_err(|error| {
                    PipelineError::Storage(format!("sampling recovery failed: {error}"))
                })??;
        let mut recovered = Some(recovered);
        for attempt in 0..START_APPEND_ATTEMPTS {
            let Some(kept) = recovered.take() else { break };
            recovered = self.write_kept(&store, kept).await;
            if recovered.is_some() {
                tracing::warn!(
                    attempt,
                    "cannot write recovered sampled traces yet; retrying"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        if recovered.is_some() {
            return Err(PipelineError::Storage(
                "cannot write the kept traces recovered from the sampling journal".into(),
            ));
        }
        let pipeline = Arc::clone(self);
        let handle = tokio::spawn(async move { pipeline.decide_forever(store).await });
        if let Some(old) = self.deciding.lock().replace(handle) {
            old.abort();
        }
        Ok(())
    }

    /// Stops the decision loop (buffered traces stay in the journal, decided after
    /// the next start).
    pub async fn stop_sampling(&self) {
        let handle = self.deciding.lock().take();
        if let Some(handle) = handle {
            handle.abort();
            let _ = handle.await;
        }
    }

    /// The decision loop: every tick, decides the due traces and writes the kept
    /// ones; a write the store refuses (overloaded) is retried at the next tick.
    async fn decide_forever(self: Arc<Self>, store: Arc<Store>) {
        let mut ticks = tokio::time::interval(self.sampler.tick());
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut unwritten: std::collections::VecDeque<KeptTraces> = Default::default();
        loop {
            ticks.tick().await;
            while let Some(kept) = unwritten.pop_front() {
                if let Some(left) = self.write_kept(&store, kept).await {
                    unwritten.push_front(left);
                    break;
                }
            }
            if !unwritten.is_empty() {
                // The store refuses writes: decide nothing more until it takes
                // them (the buffer fills, and past twice its bounds requests are
                // refused), so memory stays bounded.
                continue;
            }
            let (pipeline, sampler) = (Arc::clone(&self), Arc::clone(&self.sampler));
            let decided = tokio::task::spawn_blocking(move || {
                sampler.decide_due(
                    &|env| pipeline.sampling_rules(env),
                    std::time::Instant::now(),
                )
            })
            .await;
            match decided {
                Ok(Ok(kept)) if !kept.is_empty() => unwritten.push_back(kept),
                Ok(Ok(_)) => {}
                Ok(Err(error)) => tracing::warn!(%error, "sampling decisions failed"),
                Err(error) => tracing::warn!(%error, "sampling decision task failed"),
            }
            while let Some(kept) = unwritten.pop_front() {
                if let Some(left) = self.write_kept(&store, kept).await {
                    unwritten.push_front(left);
                    break;
                }
            }
            if unwritten.is_empty() {
                // Only when every kept trace is written: the rewrite keeps none of them.
                let sampler = Arc::clone(&self.sampler);
                match tokio::task::spawn_blocking(move || sampler.compact_if_grown()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => tracing::warn!(%error, "cannot rewrite the sampling journal"),
                    Err(error) => tracing::warn!(%error, "sampling journal rewrite task failed"),
                }
            }
        }
    }

    /// Appends kept rows to the store, then records their traces as applied;
    /// answers what is left when the store refused some rows.
    async fn write_kept(&self, store: &Store, kept: KeptTraces) -> Option<KeptTraces> {
        let KeptTraces { rows, traces } = kept;
        let appends = rows.into_iter().map(|rows| async move {
            match store
                .append(&rows.environment, &rows.dataset, rows.batch.clone())
                .await
            {
                Ok(()) => None,
                Err(error) => {
                    tracing::warn!(environment = %rows.environment, dataset = %rows.dataset, %error, "cannot write kept sampled spans yet");
                    Some(rows)
                }
            }
        });
        let left: Vec<_> = futures::future::join_all(appends)
            .await
            .into_iter()
            .flatten()
            .collect();
        if !left.is_empty() {
            return Some(KeptTraces { rows: left, traces });
        }
        if let Err(error) = self.sampler.applied(&traces) {
            tracing::warn!(%error, "cannot record applied sampling decisions");
        }
        None
    }

    /// Counts what a request wrote: its rows per dataset, its body bytes shared
    /// among them by rows.
    pub fn record_usage(
        &self,
        environment: &str,
        written: &[(String, u64, u64)],
        body_bytes: u64,
        now_ns: i64,
    ) {
        let rows: u64 = written.iter().map(|(_, rows, _)| rows).sum();
        let mut bytes_left = body_bytes;
        for (index, (dataset, dataset_rows, memory)) in written.iter().enumerate() {
            let bytes = if index + 1 == written.len() || rows == 0 {
                bytes_left
            } else {
                body_bytes * dataset_rows / rows
            };
            bytes_left -= bytes.min(bytes_left);
            self.usage
                .record(environment, dataset, *dataset_rows, bytes, *memory, now_ns);
        }
    }

    /// An environment's usage per dataset and hour.
    pub fn usage(&self, environment: &str) -> Vec<UsageRow> {
        self.usage.report(environment)
    }

    /// Measures bytes stored per dataset and writes the usage rows received since
    /// the last flush to each environment's usage dataset.
    pub async fn flush_usage(&self, store: &Store, now_ns: i64) {
        let mut environments = self.usage.environments();
        environments.extend(self.environments.read().keys().cloned());
        environments.sort();
        environments.dedup();
        for environment in &environments {
            for dataset in store.datasets(environment) {
                let Some(snapshot) = store.snapshot(environment, &dataset.name) else {
                    continue;
                };
                let segments: u64 = snapshot.segments.iter().map(|s| s.size_bytes).sum();
                let buffered: u64 = snapshot
                    .buffer
                    .iter()
                    .map(|batch| batch.get_array_memory_size() as u64)
                    .sum();
                self.usage
                    .set_stored(environment, &dataset.name, segments + buffered, now_ns);
            }
        }
        for (environment, batch) in self.usage.take_rows(now_ns) {
            if let Err(error) = store
                .append(&environment, USAGE_DATASET, batch.clone())
                .await
            {
                tracing::warn!(%environment, %error, "cannot write usage rows; retrying at the next flush");
                self.usage.restore(&environment, &batch);
            }
        }
    }

    /// How often [`Pipeline::flush_usage`] should run.
    pub fn usage_interval(&self) -> Duration {
        self.usage_interval
    }

    /// Registers the pipeline's counters.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "quarry_pipeline_redactions",
            "Values redacted (dropped, hashed or masked), by environment and rule",
            self.metrics.redactions.clone(),
        );
        registry.register(
            "quarry_pipeline_quota_refusals",
            "Ingest requests refused by a quota, by environment and limit",
            self.metrics.refusals.clone(),
        );
        self.sampler.register(registry);
    }
}

/// Bytes a batch holds in memory (its share of stored bytes until measured).
pub fn batch_bytes(batch: &arrow::array::RecordBatch) -> u64 {
    batch
        .columns()
        .iter()
        .map(|column| column.get_array_memory_size() as u64)
        .sum()
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;

    fn settings() -> PipelineSettings {
        PipelineSettings {
            hash_key: b"a key of sixteen bytes".to_vec(),
            usage_interval: DEFAULT_USAGE_INTERVAL,
            sampling: SamplingSettings::in_dir("sampling-is-not-started".into()),
        }
    }

    fn rules(json: &str) -> EnvironmentRules {
        EnvironmentRules::from_json(json.as_bytes()).unwrap()
    }

    #[tokio::test]
    async fn rules_are_persisted_and_read_back_by_a_new_pipeline() {
        let objects: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let first = Pipeline::new(Arc::clone(&objects), &settings());
        first.load().await.unwrap();
        let prod = rules(
            r#"{"redaction": [{"name": "pii", "action": "mask", "patterns": ["email"]}],
                "quota": {"events_per_second": 10}}"#,
        );
        first.set_rules("prod", prod.clone()).await.unwrap();
        first
            .set_rules("dev", rules(r#"{"quota": {"storage_bytes": 5}}"#))
            .await
            .unwrap();
        first
            .set_rules("dev", EnvironmentRules::default())
            .await
            .unwrap();

        let second = Pipeline::new(Arc::clone(&objects), &settings());
        second.load().await.unwrap();
        assert_eq!(second.rules("prod"), prod);
        assert_eq!(second.rules("dev"), EnvironmentRules::default());
        // Its next change follows the newest version instead of conflicting.
        second.set_rules("dev", prod.clone()).await.unwrap();
    }

    #[tokio::test]
    async fn a_stale_node_gets_a_conflict_then_sees_the_newer_rules() {
        let objects: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let (one, two) = (
            Pipeline::new(Arc::clone(&objects), &settings()),
            Pipeline::new(Arc::clone(&objects), &settings()),
        );
        one.load().await.unwrap();
        two.load().await.unwrap();
        let quota = rules(r#"{"quota": {"events_per_second": 10}}"#);
        one.set_rules("prod", quota.clone()).await.unwrap();
        let error = two.set_rules("dev", quota.clone()).await.unwrap_err();
        assert!(matches!(error, PipelineError::Conflict), "{error}");
        assert_eq!(two.rules("prod"), quota);
        two.set_rules("dev", quota.clone()).await.unwrap();
    }

    #[tokio::test]
    async fn quotas_refuse_only_their_environment_and_say_when_to_retry() {
        let pipeline = Pipeline::new(Arc::new(InMemory::new()), &settings());
        pipeline
            .set_rules(
                "noisy",
                rules(r#"{"quota": {"events_per_second": 10, "events_burst": 10}}"#),
            )
            .await
            .unwrap();
        pipeline.admit_events("noisy", 10).unwrap();
        let error = pipeline.admit_events("noisy", 1).unwrap_err();
        assert!(
            error
                .retry_after()
                .is_some_and(|wait| wait > Duration::ZERO)
        );
        pipeline.admit_events("quiet", 1_000_000).unwrap();
    }

    #[tokio::test]
    async fn the_storage_quota_counts_what_was_written() {
        let pipeline = Pipeline::new(Arc::new(InMemory::new()), &settings());
        pipeline
            .set_rules("prod", rules(r#"{"quota": {"storage_bytes": 1000}}"#))
            .await
            .unwrap();
        pipeline.admit_request("prod", 10).unwrap();
        pipeline.record_usage("prod", &[("a".into(), 5, 600), ("b".into(), 5, 600)], 10, 0);
        let error = pipeline.admit_request("prod", 10).unwrap_err();
        assert!(
            matches!(error, PipelineError::StorageFull { stored: 1200, .. }),
            "{error}"
        );
        let usage = pipeline.usage("prod");
        assert_eq!(usage.iter().map(|row| row.counts.bytes_in).sum::<u64>(), 10);
    }
}
