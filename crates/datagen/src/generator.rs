//! The event stream: one trace at a time, spans and their correlated logs.
//!
//! Memory is bounded by construction: the only per-event state is the queue of the
//! current trace's events, at most [`max_trace_events`] long; identifiers come from
//! counters ([`crate::ids`]), distributions are closed-form samplers, and nothing
//! remembers earlier traces. 100 million events cost the same memory as 100.
//!
//! Time: trace `k` starts at the fraction `emitted / events` of the window (plus a
//! little jitter), so any prefix of the stream covers the window in order and the
//! whole stream spreads evenly over it.

use std::collections::VecDeque;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Pareto, Zipf};

use quarry_schema::fields::{
    BODY, CLOUD_REGION, DURATION_MS, ERROR, HOST_NAME, HTTP_METHOD, HTTP_ROUTE, HTTP_STATUS_CODE,
    NAME, PARENT_ID, SERVICE_NAME, SEVERITY, SEVERITY_TEXT, SPAN_ID, SPAN_KIND, SPAN_KIND_SERVER,
    TRACE_ID,
};

use crate::DatagenError;
use crate::config::{GeneratorConfig, TRACE_END_MARGIN, duration_ns};
use crate::event::{Event, EventKind, FieldValue};
use crate::ids::IdKeys;
use crate::scenario::{Anomaly, Scenario};
use crate::topology::{
    FRONTEND, HOSTS_PER_REGION, REGIONS, ROOT_WEIGHTS, SERVICES, ServiceId, max_trace_spans,
};

/// Chance that a span's self time gets an extra heavy-tail factor (GC pause, retry).
const TAIL_PROBABILITY: f64 = 0.003;
/// Pareto shape of that factor (smaller is heavier).
const TAIL_SHAPE: f64 = 1.2;
/// Longest self time of one span, in ms, so a trace never outlives the window.
const MAX_SELF_MS: f64 = 20_000.0;
/// Chance that a failed call fails its caller too.
const ERROR_PROPAGATION: f64 = 0.5;
/// A span this many times slower than its operation's median logs a WARN.
const SLOW_LOG_FACTOR: f64 = 8.0;
/// Gap between consecutive calls, in µs.
const CALL_GAP_US: i64 = 50;
/// Server error statuses and their weights.
const SERVER_ERRORS: [(i64, f64); 3] = [(500, 0.7), (503, 0.2), (504, 0.1)];
/// Largest multiplier between a customer rank and its id (coprime to 10^k), so the
/// most frequent customer is not `cust-000001`.
const ID_SCRAMBLE: u64 = 7919;

/// Most events one trace can produce: every span plus one log record each.
pub fn max_trace_events() -> usize {
    2 * max_trace_spans()
}

/// A seeded, endless-until-`events` iterator of spans and logs in trace order.
#[derive(Debug)]
pub struct Generator {
    config: GeneratorConfig,
    rng: ChaCha8Rng,
    ids: IdKeys,
    scenario: Scenario,
    customer: Zipf<f64>,
    merchant: Zipf<f64>,
    self_time: Vec<Vec<LogNormal<f64>>>,
    tail: Pareto<f64>,
    emitted: u64,
    traces: u64,
    spans: u64,
    pending: VecDeque<Event>,
}

/// What all spans and logs of one trace share.
struct TraceContext {
    trace_id: String,
    request_id: String,
    customer_id: String,
    merchant_id: String,
    region: &'static str,
}

/// What one finished span reports to its caller.
struct SpanOutcome {
    end_us: i64,
    error: bool,
}

impl Generator {
    /// A generator for `config`; fails when the config is invalid.
    pub fn new(config: GeneratorConfig) -> Result<Generator, DatagenError> {
        config.validate()?;
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        let scenario = Scenario::new(&config, &mut rng);
        let zipf = |n: u64, s: f64| {
            Zipf::new(n as f64, s).map_err(|e| DatagenError::InvalidConfig(e.to_string()))
        };
        let customer = zipf(config.customers, config.customer_zipf_exponent)?;
        let merchant = zipf(config.merchants, config.merchant_zipf_exponent)?;
        let self_time = SERVICES
            .iter()
            .map(|s| {
                s.operations
                    .iter()
                    .map(|op| {
                        LogNormal::new(op.median_ms.ln(), op.sigma)
                            .map_err(|e| DatagenError::InvalidConfig(e.to_string()))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tail =
            Pareto::new(1.0, TAIL_SHAPE).map_err(|e| DatagenError::InvalidConfig(e.to_string()))?;
        Ok(Generator {
            ids: IdKeys::new(config.seed),
            config,
            rng,
            scenario,
            customer,
            merchant,
            self_time,
            tail,
            emitted: 0,
            traces: 0,
            spans: 0,
            pending: VecDeque::with_capacity(max_trace_events()),
        })
    }

    /// The deploy history and the injected anomaly.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// The injected anomaly.
    pub fn anomaly(&self) -> &Anomaly {
        &self.scenario.anomaly
    }

    /// The config this generator follows.
    pub fn config(&self) -> &GeneratorConfig {
        &self.config
    }

    /// Traces started so far.
    pub fn traces_started(&self) -> u64 {
        self.traces
    }

    /// Events produced so far.
    pub fn events_emitted(&self) -> u64 {
        self.emitted
    }

    /// Events generated but not yet returned (always at most [`max_trace_events`]).
    pub fn pending_events(&self) -> usize {
        self.pending.len()
    }

    /// `trace.trace_id` of the `index`-th trace of this generator's seed.
    pub fn trace_id(&self, index: u64) -> String {
        self.ids.trace_id(index)
    }

    fn next_trace(&mut self) {
        let index = self.traces;
        self.traces += 1;
        let region_index = pick_weighted(&mut self.rng, REGIONS.iter().map(|r| r.1));
        let customer_rank = self.customer.sample(&mut self.rng) as u64;
        let merchant_rank = self.merchant.sample(&mut self.rng) as u64;
        let trace = TraceContext {
            trace_id: self.ids.trace_id(index),
            request_id: self.ids.request_id(index),
            customer_id: format!("cust-{:06}", scramble(customer_rank, self.config.customers)),
            merchant_id: format!("m-{:05}", scramble(merchant_rank, self.config.merchants)),
            region: REGIONS[region_index].0,
        };
        let start_us = self.trace_start_us();
        let root = pick_weighted(&mut self.rng, ROOT_WEIGHTS.iter().copied());
        self.span(&trace, FRONTEND, root, None, start_us);
    }

    /// Start of the next trace, in µs since the epoch.
    fn trace_start_us(&mut self) -> i64 {
        let span_ns = duration_ns(self.config.window) - duration_ns(TRACE_END_MARGIN);
        let fraction = self.emitted as f64 / self.config.events.max(1) as f64;
        let jitter_us = self.rng.random_range(0..1000);
        (self.config.start_time_ns() + (span_ns as f64 * fraction) as i64) / 1000 + jitter_us
    }

    /// Generates one span (and its callees and logs) starting at `start_us`.
    fn span(
        &mut self,
        trace: &TraceContext,
        service: ServiceId,
        operation: usize,
        parent: Option<&str>,
        start_us: i64,
    ) -> SpanOutcome {
        let op = &SERVICES[service].operations[operation];
        let service_name = SERVICES[service].name;
        let span_id = self.ids.span_id(self.spans);
        self.spans += 1;
        let build_id = self
            .scenario
            .build_at(service, start_us.saturating_mul(1000))
            .to_owned();

        let mut self_ms = self.self_time[service][operation].sample(&mut self.rng);
        if self.rng.random_bool(TAIL_PROBABILITY) {
            self_ms *= self.tail.sample(&mut self.rng);
        }
        if self
            .scenario
            .anomaly
            .applies(service_name, trace.region, &build_id)
        {
            self_ms *= self.scenario.anomaly.slowdown;
        }
        let self_us = (self_ms.min(MAX_SELF_MS) * 1000.0) as i64;

        // The span is placed first in the trace's queue and filled in once its
        // callees (which decide its duration and error) are generated.
        let slot = self.pending.len();
        self.pending.push_back(placeholder(service_name));

        let mut cursor = start_us + self_us / 3;
        let mut error = self.rng.random_bool(op.error_rate);
        for call in op.calls {
            if !self.rng.random_bool(call.probability) {
                continue;
            }
            let repeats = self.rng.random_range(1..=call.max_repeat);
            for _ in 0..repeats {
                cursor += CALL_GAP_US;
                let child = self.span(trace, call.service, call.operation, Some(&span_id), cursor);
                cursor = child.end_us;
                if child.error && self.rng.random_bool(ERROR_PROPAGATION) {
                    error = true;
                }
            }
        }
        let end_us = cursor + self_us - self_us / 3;
        let duration_ms = (end_us - start_us) as f64 / 1000.0;
        let status = if error {
            SERVER_ERRORS[pick_weighted(&mut self.rng, SERVER_ERRORS.iter().map(|e| e.1))].0
        } else if self.rng.random_bool(op.client_error_rate) {
            op.client_error_status
        } else {
            200
        };
        let host = format!(
            "{service_name}-{}-{}",
            trace.region,
            self.rng.random_range(0..HOSTS_PER_REGION)
        );

        let mut fields = Vec::with_capacity(18);
        fields.push((TRACE_ID, str_value(&trace.trace_id)));
        fields.push((SPAN_ID, str_value(&span_id)));
        if let Some(parent) = parent {
            fields.push((PARENT_ID, str_value(parent)));
        }
        fields.push((SERVICE_NAME, str_value(service_name)));
        fields.push((NAME, str_value(op.name)));
        fields.push((SPAN_KIND, str_value(SPAN_KIND_SERVER)));
        fields.push((DURATION_MS, FieldValue::Float(duration_ms)));
        fields.push((ERROR, FieldValue::Bool(error)));
        fields.push((HTTP_METHOD, str_value(op.method)));
        fields.push((HTTP_ROUTE, str_value(op.route)));
        fields.push((HTTP_STATUS_CODE, FieldValue::Int(status)));
        fields.push(("customer_id", str_value(&trace.customer_id)));
        fields.push(("merchant_id", str_value(&trace.merchant_id)));
        fields.push(("request_id", str_value(&trace.request_id)));
        fields.push((CLOUD_REGION, str_value(trace.region)));
        fields.push(("build_id", str_value(&build_id)));
        fields.push((HOST_NAME, str_value(&host)));
        self.pending[slot] = Event {
            dataset: service_name,
            time_ns: start_us * 1000,
            kind: EventKind::Span,
            fields,
        };

        let slow = self_ms > op.median_ms * SLOW_LOG_FACTOR;
        let log = if error {
            Some((
                "ERROR",
                format!(
                    "{} failed with status {status} for {} (request {})",
                    op.name, trace.customer_id, trace.request_id
                ),
            ))
        } else if slow {
            Some((
                "WARN",
                format!(
                    "{} took {duration_ms:.1} ms on {host} (build {build_id})",
                    op.name
                ),
            ))
        } else if op.log_probability > 0.0 && self.rng.random_bool(op.log_probability) {
            Some((
                "INFO",
                format!(
                    "{} for {} at {}",
                    op.log_message, trace.customer_id, trace.merchant_id
                ),
            ))
        } else {
            None
        };
        if let Some((severity, body)) = log {
            self.pending.push_back(Event {
                dataset: service_name,
                time_ns: end_us * 1000,
                kind: EventKind::Log,
                fields: vec![
                    (TRACE_ID, str_value(&trace.trace_id)),
                    (PARENT_ID, str_value(&span_id)),
                    (SERVICE_NAME, str_value(service_name)),
                    (SEVERITY_TEXT, str_value(severity)),
                    (SEVERITY, str_value(&severity.to_ascii_lowercase())),
                    (BODY, FieldValue::Str(body)),
                    ("customer_id", str_value(&trace.customer_id)),
                    ("merchant_id", str_value(&trace.merchant_id)),
                    ("request_id", str_value(&trace.request_id)),
                    (CLOUD_REGION, str_value(trace.region)),
                    ("build_id", str_value(&build_id)),
                    (HOST_NAME, FieldValue::Str(host)),
                ],
            });
        }
        SpanOutcome { end_us, error }
    }
}

impl Iterator for Generator {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        if self.emitted >= self.config.events {
            return None;
        }
        if self.pending.is_empty() {
            self.next_trace();
        }
        let event = self.pending.pop_front()?;
        self.emitted += 1;
        Some(event)
    }
}

fn str_value(s: &str) -> FieldValue {
    FieldValue::Str(s.to_owned())
}

fn placeholder(dataset: &'static str) -> Event {
    Event {
        dataset,
        time_ns: 0,
        kind: EventKind::Span,
        fields: Vec::new(),
    }
}

/// A Zipf rank (1-based) mapped to an id in `0..n`, bijectively when `n` and
/// [`ID_SCRAMBLE`] are coprime.
fn scramble(rank: u64, n: u64) -> u64 {
    (rank.saturating_sub(1) % n).wrapping_mul(ID_SCRAMBLE) % n
}

/// An index drawn with the given (not necessarily normalized) weights.
fn pick_weighted(rng: &mut impl Rng, weights: impl Iterator<Item = f64> + Clone) -> usize {
    let total: f64 = weights.clone().sum();
    let mut x = rng.random::<f64>() * total;
    let mut last = 0;
    for (i, w) in weights.enumerate() {
        if x < w {
            return i;
        }
        x -= w;
        last = i;
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    const END_NS: i64 = 1_700_000_000_000_000_000;

    fn events(seed: u64, n: u64) -> Vec<Event> {
        Generator::new(GeneratorConfig::new(seed, n, END_NS))
            .unwrap()
            .collect()
    }

    fn median(mut values: Vec<f64>) -> f64 {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    }

    #[test]
    fn a_seed_always_gives_the_same_events() {
        assert_eq!(events(42, 5_000), events(42, 5_000));
        assert_ne!(events(42, 100), events(43, 100));
        // A shorter run is a prefix of a longer one only up to the time spread,
        // but ids and fields of the first trace do not depend on the length.
        assert_eq!(
            events(42, 10)[0].get_str("trace.trace_id"),
            events(42, 10_000)[0].get_str("trace.trace_id")
        );
    }

    #[test]
    fn exactly_n_events_inside_the_window() {
        let config = GeneratorConfig::new(1, 20_000, END_NS);
        let start = config.start_time_ns();
        let all: Vec<Event> = Generator::new(config).unwrap().collect();
        assert_eq!(all.len(), 20_000);
        assert!(
            all.iter()
                .all(|e| e.time_ns >= start && e.time_ns <= END_NS)
        );
        // The stream walks through the window: the last events are near its end.
        let last = all.last().unwrap().time_ns;
        assert!(END_NS - last < 2 * duration_ns(TRACE_END_MARGIN));
        assert!(all.iter().all(|e| e.time_ns % 1000 == 0));
    }

    #[test]
    fn memory_is_bounded_by_one_trace() {
        let mut generator = Generator::new(GeneratorConfig::new(5, 50_000, END_NS)).unwrap();
        let bound = max_trace_events();
        let mut most = 0;
        while generator.next().is_some() {
            most = most.max(generator.pending_events());
            assert!(generator.pending_events() <= bound);
        }
        assert!(most > 0);
        assert_eq!(generator.events_emitted(), 50_000);
    }

    #[test]
    fn traces_are_well_formed_trees() {
        let all = events(9, 20_000);
        let mut spans_by_trace: HashMap<&str, HashSet<&str>> = HashMap::new();
        let mut span_ids = HashSet::new();
        for e in all.iter().filter(|e| e.kind == EventKind::Span) {
            let trace = e.get_str("trace.trace_id").unwrap();
            let span = e.get_str("trace.span_id").unwrap();
            assert!(span_ids.insert(span), "span ids are unique");
            spans_by_trace.entry(trace).or_default().insert(span);
            assert_eq!(e.get_str("service.name"), Some(e.dataset));
        }
        let mut roots = 0;
        for e in &all {
            let trace = e.get_str("trace.trace_id").unwrap();
            match e.get_str("trace.parent_id") {
                Some(parent) => assert!(spans_by_trace[trace].contains(parent)),
                None => {
                    roots += 1;
                    assert_eq!(e.dataset, "frontend");
                    assert_eq!(e.kind, EventKind::Span);
                }
            }
        }
        assert_eq!(roots, spans_by_trace.len());
        let datasets: HashSet<&str> = all.iter().map(|e| e.dataset).collect();
        assert_eq!(datasets.len(), SERVICES.len());
        // One request id per trace, never shared between traces.
        let mut request_of: HashMap<&str, &str> = HashMap::new();
        let mut requests = HashSet::new();
        for e in &all {
            let trace = e.get_str("trace.trace_id").unwrap();
            let request = e.get_str("request_id").unwrap();
            if request_of.insert(trace, request).is_none() {
                assert!(requests.insert(request));
            }
            assert_eq!(request_of[trace], request);
        }
    }

    #[test]
    fn distributions_are_roughly_right() {
        let all = events(2, 100_000);
        let spans: Vec<&Event> = all.iter().filter(|e| e.kind == EventKind::Span).collect();
        let logs = all.len() - spans.len();
        let log_share = logs as f64 / all.len() as f64;
        assert!((0.05..0.4).contains(&log_share), "log share {log_share}");

        let errors = spans
            .iter()
            .filter(|e| e.get_bool("error") == Some(true))
            .count();
        let error_share = errors as f64 / spans.len() as f64;
        assert!(
            (0.005..0.02).contains(&error_share),
            "error share {error_share}"
        );
        for e in &spans {
            let status = e.get_i64("http.status_code").unwrap();
            assert_eq!(e.get_bool("error") == Some(true), status >= 500);
        }

        // customer_id: Zipf(1.1) over 100,000 makes the top customer about 13 % of
        // traces and still reaches thousands of distinct customers.
        let roots: Vec<&&Event> = spans
            .iter()
            .filter(|e| e.get("trace.parent_id").is_none())
            .collect();
        let mut per_customer: HashMap<&str, usize> = HashMap::new();
        for e in &roots {
            *per_customer
                .entry(e.get_str("customer_id").unwrap())
                .or_default() += 1;
        }
        let top = per_customer.values().max().copied().unwrap_or(0) as f64 / roots.len() as f64;
        assert!((0.08..0.2).contains(&top), "top customer share {top}");
        assert!(
            per_customer.len() > 3_000,
            "{} customers",
            per_customer.len()
        );
        assert!(per_customer.keys().all(|c| c.len() == "cust-000000".len()));

        // Per-operation latency: auth is fast, payment is slow, tails are heavy.
        let durations = |service: &str| -> Vec<f64> {
            spans
                .iter()
                .filter(|e| e.dataset == service)
                .map(|e| e.get_f64("duration_ms").unwrap())
                .collect()
        };
        let auth = durations("auth");
        let auth_median = median(auth.clone());
        assert!(
            (1.0..2.5).contains(&auth_median),
            "auth median {auth_median}"
        );
        let mut sorted = auth;
        sorted.sort_by(f64::total_cmp);
        let p99 = sorted[sorted.len() * 99 / 100];
        assert!(p99 > 2.0 * auth_median, "auth p99 {p99}");
        assert!(median(durations("payment")) > 20.0 * auth_median);
    }

    #[test]
    fn the_anomaly_is_in_the_data() {
        let mut generator = Generator::new(GeneratorConfig::new(4, 300_000, END_NS)).unwrap();
        let anomaly = generator.anomaly().clone();
        let mut bad = Vec::new();
        let mut good = Vec::new();
        for e in generator.by_ref() {
            if e.dataset != anomaly.service
                || e.kind != EventKind::Span
                || e.get_str("name") != Some("FraudCheck")
            {
                continue;
            }
            let duration = e.get_f64("duration_ms").unwrap();
            if e.get_str("build_id") == Some(anomaly.build_id.as_str()) {
                assert!(e.time_ns >= anomaly.starts_at_ns);
                if e.get_str("cloud.region") == Some(anomaly.region) {
                    bad.push(duration);
                } else {
                    good.push(duration);
                }
            }
        }
        assert!(
            bad.len() > 50 && good.len() > 50,
            "{} {}",
            bad.len(),
            good.len()
        );
        let ratio = median(bad) / median(good);
        assert!((6.0..15.0).contains(&ratio), "slowdown {ratio}");
    }
}
