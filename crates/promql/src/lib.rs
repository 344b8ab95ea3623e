//! PromQL over Quarry's metric rows, for the Prometheus HTTP query API.
//!
//! A query is parsed by `promql-parser` (a kept parser, GreptimeDB's) and checked
//! against the subset Quarry evaluates ([`parse`]); anything outside it is refused
//! naming what is unsupported. Every selector's samples are read through DataFusion
//! from the metric rows of the environment's datasets, with `metric.name`, the
//! time window and the equality matchers pushed into the scan ([`fetch`]). The
//! expression is then evaluated step by step with Prometheus's own semantics
//! ([`eval`]): the 5-minute lookback and staleness markers of instant selectors,
//! closed range windows, the extrapolation of `rate` and `increase`, one-to-one
//! vector matching and `histogram_quantile`'s bucket interpolation.
//!
//! The evaluator is written here rather than taken from a library because no
//! kept Rust crate evaluates PromQL without also being a time-series database;
//! it is small (the subset of issue 22) and its semantics are pinned by tests
//! against Prometheus itself (tests/test_prometheus.py).
//!
//! Labels map to columns as the OpenTelemetry Collector's Prometheus receiver
//! maps them: `__name__` is `metric.name`, `job` is `service.name`, `instance`
//! is `service.instance.id`, and every other label is the column of its name.

mod error;
mod eval;
mod fetch;
mod functions;
mod labels;
mod parse;
mod query;

pub use error::PromError;
pub use labels::{Labels, Sample, Series};
pub use query::{Answer, DEFAULT_LOOKBACK_MS, PromQl, RangeSpec};
