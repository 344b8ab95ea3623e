//! Tail-based sampling (Refinery's model): an environment's spans wait in a
//! bounded buffer until their trace is complete, then the environment's ordered
//! rules decide the whole trace: keep it (every span carrying `meta.sample_rate`
//! multiplied by the rule's rate) or drop it.
//!
//! - [`rules`]: the rules as written, and their validation.
//! - [`decide`]: the rule engine; [`keep`]: deterministic 1-in-N by trace id;
//!   [`dynamic`]: the target-throughput sampler.
//! - [`buffer`]: buffered traces and remembered decisions; [`spans`]: reading
//!   rows; [`rates`]: selecting rows and multiplying their sample rates.
//! - [`journal`]: the durable log of buffered spans and decisions, so an
//!   acknowledged span survives `kill -9` and no trace is left half kept;
//!   [`recovery`]: reading it back at start-up, and what a rewrite keeps.
//!
//! The [`Sampler`] is driven by the ingest service ([`Sampler::sample`], before
//! the store append) and by the pipeline's decision loop ([`Sampler::decide_due`],
//! every [`SamplingSettings::tick`]). See docs/pipeline.md.

pub mod buffer;
pub mod decide;
pub mod dynamic;
pub mod journal;
pub mod keep;
pub mod rates;
pub mod recovery;
pub mod rules;
pub mod spans;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::error::ArrowError;
use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use quarry_ingest::otlp::DatasetBatch;

use self::buffer::{Bounds, Decisions, Due, Remembered, TraceBuffer, TraceKey, Waits};
use self::decide::{Decision, DynamicStates, decide};
use self::journal::{Journal, JournalError, Record};
use self::rates::{select, select_with_rates};
use self::recovery::{RowFate, live_records, replay};
use self::rules::SamplingRules;
use self::spans::{SpanRow, is_root, representative, trace_id_of, trace_ids};

/// Default most spans buffered on a node.
pub const DEFAULT_MAX_BUFFERED_SPANS: usize = 500_000;
/// Default most bytes of buffered batches on a node.
pub const DEFAULT_MAX_BUFFERED_BYTES: u64 = 256 << 20;
/// Default most decisions remembered for late spans.
pub const DEFAULT_DECISIONS_REMEMBERED: usize = 1_000_000;
/// Default time a decision is remembered.
pub const DEFAULT_DECISION_TTL: Duration = Duration::from_secs(600);
/// How often due traces are decided.
pub const DEFAULT_TICK: Duration = Duration::from_millis(100);
/// Default size past which the journal is rewritten (when it is also twice its
/// size after the last rewrite).
pub const DEFAULT_JOURNAL_REWRITE_BYTES: u64 = 64 << 20;

/// Where and within which bounds the sampler works.
#[derive(Debug, Clone)]
pub struct SamplingSettings {
    /// The journal's directory (`<data_dir>/sampling`).
    pub dir: PathBuf,
    /// Most spans buffered; past it the oldest traces are decided early.
    pub max_buffered_spans: usize,
    /// Most bytes buffered; past it the oldest traces are decided early.
    pub max_buffered_bytes: u64,
    /// Most decisions remembered for late spans.
    pub decisions_remembered: usize,
    /// How long a decision is remembered.
    pub decision_ttl: Duration,
    /// How often due traces are decided.
    pub tick: Duration,
    /// The journal is rewritten past this size (and twice its last rewritten size).
    pub journal_rewrite_bytes: u64,
}

impl SamplingSettings {
    /// The default bounds, the journal in `dir`.
    pub fn in_dir(dir: PathBuf) -> SamplingSettings {
        SamplingSettings {
            dir,
            max_buffered_spans: DEFAULT_MAX_BUFFERED_SPANS,
            max_buffered_bytes: DEFAULT_MAX_BUFFERED_BYTES,
            decisions_remembered: DEFAULT_DECISIONS_REMEMBERED,
            decision_ttl: DEFAULT_DECISION_TTL,
            tick: DEFAULT_TICK,
            journal_rewrite_bytes: DEFAULT_JOURNAL_REWRITE_BYTES,
        }
    }
}

/// Why sampling failed (the request is refused; nothing of it was acknowledged).
#[derive(Debug, thiserror::Error)]
pub enum SamplingError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("sampling: {0}")]
    Arrow(#[from] ArrowError),
    #[error("sampling is not started on this node")]
    NotStarted,
    /// The buffer holds twice its bounds (the store does not take kept traces
    /// fast enough): the request is refused as overloaded, to be retried.
    #[error("the tail sampling buffer is full ({spans} spans, {bytes} bytes); retry later")]
    Full { spans: usize, bytes: u64 },
}

/// How many times its bounds the buffer may hold before requests are refused
/// (between 1 and this, the oldest traces are decided early instead).
const REFUSE_AT_BOUNDS: usize = 2;

/// Labels of the traces counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TraceLabel {
    environment: String,
    dataset: String,
    rule: String,
    /// `kept` or `dropped`.
    decision: String,
}

/// Labels of the early decisions counter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct EnvironmentLabel {
    environment: String,
}

/// The sampler's series on `/metrics`.
#[derive(Debug, Default)]
struct SamplingMetrics {
    traces: Family<TraceLabel, Counter>,
    early: Family<EnvironmentLabel, Counter>,
    buffered_spans: Gauge,
    buffered_traces: Gauge,
}

/// What the sampler holds in memory.
struct State {
    buffer: TraceBuffer,
    decisions: Decisions,
    dynamic: HashMap<String, DynamicStates>,
    /// Journal size after the last rewrite.
    rewritten_bytes: u64,
}

/// Kept rows to append to the store, sample rates already multiplied.
#[derive(Debug)]
pub struct KeptRows {
    pub environment: String,
    pub dataset: String,
    pub batch: RecordBatch,
}

/// The kept rows of one held batch, before they are selected.
struct KeptPart {
    environment: String,
    dataset: String,
    batch: RecordBatch,
    rows: Vec<u32>,
    /// The rate of each row's trace.
    rates: Vec<u64>,
}

/// Kept traces whose rows are to be appended; once they all are, the traces are
/// reported with [`Sampler::applied`].
#[derive(Debug, Default)]
pub struct KeptTraces {
    pub rows: Vec<KeptRows>,
    pub traces: Vec<TraceKey>,
}

impl KeptTraces {
    /// Nothing to append or report.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.traces.is_empty()
    }
}

/// The tail sampler of every environment of a node.
pub struct Sampler {
    settings: SamplingSettings,
    /// Taken before `state` whenever both are needed.
    journal: Mutex<Option<Journal>>,
    state: Mutex<State>,
    metrics: SamplingMetrics,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler").finish_non_exhaustive()
    }
}

/// The waits of an environment's rules.
fn waits(rules: &SamplingRules) -> Waits {
    Waits {
        decision_wait: Duration::from_millis(rules.decision_wait_ms),
        trace_timeout: Duration::from_millis(rules.trace_timeout_ms),
    }
}

impl Sampler {
    /// A sampler whose journal is not opened yet ([`Sampler::recover`] opens it).
    pub fn new(settings: SamplingSettings) -> Sampler {
        let decisions = Decisions::new(settings.decisions_remembered, settings.decision_ttl);
        Sampler {
            settings,
            journal: Mutex::new(None),
            state: Mutex::new(State {
                buffer: TraceBuffer::default(),
                decisions,
                dynamic: HashMap::new(),
                rewritten_bytes: 0,
            }),
            metrics: SamplingMetrics::default(),
        }
    }

    /// How often [`Sampler::decide_due`] should run.
    pub fn tick(&self) -> Duration {
        self.settings.tick
    }

    /// Registers the sampler's series.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "quarry_sampling_traces",
            "Traces decided by tail sampling, by environment, dataset (of the root span), rule and decision (kept, dropped)",
            self.metrics.traces.clone(),
        );
        registry.register(
            "quarry_sampling_early_decisions",
            "Traces decided before their wait was over because the sampling buffer was full, by environment",
            self.metrics.early.clone(),
        );
        registry.register(
            "quarry_sampling_buffered_spans",
            "Spans waiting for their trace's sampling decision",
            self.metrics.buffered_spans.clone(),
        );
        registry.register(
            "quarry_sampling_buffered_traces",
            "Traces waiting for their sampling decision",
            self.metrics.buffered_traces.clone(),
        );
    }

    /// Splits a request's decoded batches: rows without a trace id, of datasets
    /// the rules leave out, and late spans of traces decided kept come back to be
    /// appended now (late kept spans with their rates multiplied); late spans of
    /// dropped traces are dropped; the other rows are buffered, and durable in
    /// the journal when this returns (so the request may be acknowledged).
    pub fn sample(
        &self,
        environment: &str,
        rules: &SamplingRules,
        batches: Vec<DatasetBatch>,
        now: Instant,
    ) -> Result<Vec<DatasetBatch>, SamplingError> {
        let mut journal_guard = self.journal.lock();
        let journal = journal_guard.as_mut().ok_or(SamplingError::NotStarted)?;
        let mut state = self.state.lock();
        let (spans, bytes) = (state.buffer.spans(), state.buffer.bytes());
        if spans
            >= self
                .settings
                .max_buffered_spans
                .saturating_mul(REFUSE_AT_BOUNDS)
            || bytes
                >= self
                    .settings
                    .max_buffered_bytes
                    .saturating_mul(REFUSE_AT_BOUNDS as u64)
        {
            return Err(SamplingError::Full { spans, bytes });
        }
        let mut now_batches = Vec::with_capacity(batches.len());
        let mut to_hold = Vec::new();
        for dataset_batch in batches {
            let in_scope =
                rules.datasets.is_empty() || rules.datasets.contains(&dataset_batch.dataset);
            let Some(ids) = trace_ids(&dataset_batch.batch).filter(|_| in_scope) else {
                now_batches.push(dataset_batch);
                continue;
            };
            let batch = &dataset_batch.batch;
            let (mut pass_rows, mut pass_rates) = (Vec::new(), Vec::new());
            let (mut hold_rows, mut hold_ids, mut hold_roots) =
                (Vec::new(), Vec::new(), Vec::new());
            for row in 0..batch.num_rows() {
                let Some(trace_id) = trace_id_of(ids, row) else {
                    pass_rows.push(row as u32);
                    pass_rates.push(1);
                    continue;
                };
                let key = TraceKey {
                    environment: environment.to_owned(),
                    trace_id: trace_id.to_owned(),
                };
                match state.decisions.get(&key, now) {
                    Some(Remembered { keep: true, rate }) => {
                        pass_rows.push(row as u32);
                        pass_rates.push(rate);
                    }
                    Some(Remembered { keep: false, .. }) => {}
                    None => {
                        hold_rows.push(row as u32);
                        hold_ids.push(key.trace_id);
                        hold_roots.push(is_root(batch, row));
                    }
                }
            }
            if !pass_rows.is_empty() {
                let passed = select_with_rates(batch, &pass_rows, &pass_rates)?;
                now_batches.push(DatasetBatch {
                    dataset: dataset_batch.dataset.clone(),
                    rows: passed.num_rows(),
                    batch: passed,
                });
            }
            if !hold_rows.is_empty() {
                let held = select(batch, &hold_rows)?;
                journal.append_spans(environment, &dataset_batch.dataset, &held)?;
                to_hold.push((dataset_batch.dataset, held, hold_ids, hold_roots));
            }
        }
        if !to_hold.is_empty() {
            journal.sync()?;
        }
        for (dataset, held, ids, roots) in to_hold {
            state
                .buffer
                .hold(environment, &dataset, held, &ids, &roots, now);
        }
        self.update_gauges(&state);
        Ok(now_batches)
    }

    fn update_gauges(&self, state: &State) {
        self.metrics
            .buffered_spans
            .set(i64::try_from(state.buffer.spans()).unwrap_or(i64::MAX));
        self.metrics
            .buffered_traces
            .set(i64::try_from(state.buffer.traces()).unwrap_or(i64::MAX));
    }

    /// Decides every trace that is due (`rules_of` gives an environment's rules
    /// now; none: keep its traces whole) and answers the kept rows to append.
    /// The decisions are durable in the journal before this returns.
    pub fn decide_due(
        &self,
        rules_of: &dyn Fn(&str) -> Option<Arc<SamplingRules>>,
        now: Instant,
    ) -> Result<KeptTraces, SamplingError> {
        let mut journal_guard = self.journal.lock();
        let journal = journal_guard.as_mut().ok_or(SamplingError::NotStarted)?;
        let mut guard = self.state.lock();
        let state = &mut *guard;
        let bounds = Bounds {
            max_spans: self.settings.max_buffered_spans,
            max_bytes: self.settings.max_buffered_bytes,
        };
        let due = state
            .buffer
            .due(now, |env| rules_of(env).map(|rules| waits(&rules)), bounds);
        if due.is_empty() {
            return Ok(KeptTraces::default());
        }
        let mut decided: BTreeMap<String, Vec<(String, Remembered)>> = BTreeMap::new();
        // Kept rows by held batch.
        let mut kept: BTreeMap<u64, KeptPart> = BTreeMap::new();
        let mut kept_traces = Vec::new();
        for (key, reason) in due {
            let parts = state.buffer.take(&key);
            let spans: Vec<SpanRow<'_>> = parts
                .iter()
                .flat_map(|part| {
                    part.rows.iter().map(|row| SpanRow {
                        dataset: &part.dataset,
                        batch: &part.batch,
                        row: *row as usize,
                    })
                })
                .collect();
            let decision = match rules_of(&key.environment) {
                Some(rules) => decide(
                    &rules,
                    state.dynamic.entry(key.environment.clone()).or_default(),
                    &key.trace_id,
                    &spans,
                    now,
                ),
                None => Decision::keep_all(),
            };
            let dataset = representative(&spans)
                .map(|span| span.dataset.to_owned())
                .unwrap_or_default();
            self.count(&key.environment, dataset, &decision, reason);
            let remembered = Remembered {
                keep: decision.keep,
                rate: decision.rate,
            };
            state.decisions.remember(key.clone(), remembered, now);
            decided
                .entry(key.environment.clone())
                .or_default()
                .push((key.trace_id.clone(), remembered));
            if decision.keep {
                for part in parts {
                    let entry = kept.entry(part.held).or_insert_with(|| KeptPart {
                        environment: key.environment.clone(),
                        dataset: part.dataset.clone(),
                        batch: part.batch.clone(),
                        rows: Vec::new(),
                        rates: Vec::new(),
                    });
                    entry
                        .rates
                        .extend(std::iter::repeat_n(decision.rate, part.rows.len()));
                    entry.rows.extend(part.rows);
                }
                kept_traces.push(key);
            }
        }
        self.update_gauges(state);
        for (environment, decisions) in &decided {
            journal.append_decided(environment, decisions)?;
        }
        journal.sync()?;
        let rows = kept
            .into_values()
            .map(|part| {
                Ok(KeptRows {
                    batch: select_with_rates(&part.batch, &part.rows, &part.rates)?,
                    environment: part.environment,
                    dataset: part.dataset,
                })
            })
            .collect::<Result<Vec<_>, ArrowError>>()?;
        Ok(KeptTraces {
            rows,
            traces: kept_traces,
        })
    }

    fn count(&self, environment: &str, dataset: String, decision: &Decision, reason: Due) {
        self.metrics
            .traces
            .get_or_create(&TraceLabel {
                environment: environment.to_owned(),
                dataset,
                rule: decision.rule.clone(),
                decision: if decision.keep { "kept" } else { "dropped" }.to_owned(),
            })
            .inc();
        if reason == Due::Early {
            self.metrics
                .early
                .get_or_create(&EnvironmentLabel {
                    environment: environment.to_owned(),
                })
                .inc();
        }
    }

    /// Records that the kept rows of `traces` are durable in the store.
    pub fn applied(&self, traces: &[TraceKey]) -> Result<(), SamplingError> {
        let mut journal_guard = self.journal.lock();
        let journal = journal_guard.as_mut().ok_or(SamplingError::NotStarted)?;
        let mut by_environment: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for key in traces {
            by_environment
                .entry(&key.environment)
                .or_default()
                .push(key.trace_id.clone());
        }
        for (environment, trace_ids) in by_environment {
            journal.append_applied(environment, &trace_ids)?;
        }
        // Not synced: if lost, a restart appends those traces' rows again
        // (duplicated, never partial).
        Ok(())
    }

    /// Rewrites the journal when it has grown, keeping only the undecided rows and
    /// the remembered decisions. Call it only when every kept trace was applied.
    pub fn compact_if_grown(&self) -> Result<(), SamplingError> {
        let mut journal_guard = self.journal.lock();
        let journal = journal_guard.as_mut().ok_or(SamplingError::NotStarted)?;
        let mut state = self.state.lock();
        let bytes = journal.bytes();
        if bytes < self.settings.journal_rewrite_bytes
            || bytes < state.rewritten_bytes.saturating_mul(2)
        {
            return Ok(());
        }
        let records = live_records(&state.decisions, &state.buffer, &[])?;
        journal.rewrite(&records)?;
        state.rewritten_bytes = journal.bytes();
        Ok(())
    }

    /// Opens the journal and replays it: rows of undecided traces are buffered
    /// again (their waits start now), decisions are remembered, and the rows of
    /// traces decided kept but not yet applied are answered, to be appended to
    /// the store and then reported with [`Sampler::applied`]. The journal is
    /// rewritten to what is still needed.
    pub fn recover(&self, now: Instant) -> Result<KeptTraces, SamplingError> {
        let mut journal_guard = self.journal.lock();
        let (mut journal, records) = Journal::open(&self.settings.dir)?;
        let mut state = self.state.lock();
        let replayed = replay(records);
        let mut pending_records = Vec::new();
        let mut kept = KeptTraces::default();
        for (key, decision) in &replayed.decisions {
            state.decisions.remember(key.clone(), *decision, now);
        }
        for (index, (environment, dataset, batch)) in replayed.spans.iter().enumerate() {
            let Some(ids) = trace_ids(batch) else {
                continue;
            };
            let (mut hold_rows, mut hold_ids, mut hold_roots) =
                (Vec::new(), Vec::new(), Vec::new());
            let (mut kept_rows, mut kept_rates) = (Vec::new(), Vec::new());
            for row in 0..batch.num_rows() {
                let Some(trace_id) = trace_id_of(ids, row) else {
                    continue;
                };
                match replayed.rows.get(&(index, row as u32)) {
                    Some(RowFate::Undecided) => {
                        hold_rows.push(row as u32);
                        hold_ids.push(trace_id.to_owned());
                        hold_roots.push(is_root(batch, row));
                    }
                    Some(RowFate::Pending(rate)) => {
                        kept_rows.push(row as u32);
                        kept_rates.push(*rate);
                    }
                    None => {}
                }
            }
            if !hold_rows.is_empty() {
                let held = select(batch, &hold_rows)?;
                state
                    .buffer
                    .hold(environment, dataset, held, &hold_ids, &hold_roots, now);
            }
            if !kept_rows.is_empty() {
                // Kept again as they were: the rows, then their decisions below.
                pending_records.push(Record::Spans {
                    environment: environment.clone(),
                    dataset: dataset.clone(),
                    batch: select(batch, &kept_rows)?,
                });
                kept.rows.push(KeptRows {
                    environment: environment.clone(),
                    dataset: dataset.clone(),
                    batch: select_with_rates(batch, &kept_rows, &kept_rates)?,
                });
            }
        }
        kept.traces = replayed.pending.into_iter().collect();
        let records = live_records(&state.decisions, &state.buffer, &pending_records)?;
        journal.rewrite(&records)?;
        state.rewritten_bytes = journal.bytes();
        self.update_gauges(&state);
        *journal_guard = Some(journal);
        tracing::info!(
            buffered_spans = state.buffer.spans(),
            kept_traces_to_write = kept.traces.len(),
            "sampling journal replayed"
        );
        Ok(kept)
    }
}

#[cfg(test)]
mod tests;
