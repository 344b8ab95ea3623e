//! The queries of the Prometheus HTTP API: instant and range evaluation, and
//! the series, label names and label values of selectors.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use promql_parser::parser::{self, Expr, VectorSelector};
use quarry_engine::QueryEngine;

use crate::PromError;
use crate::eval::{Evaluator, Value, selector_key};
use crate::fetch::select;
use crate::labels::{Labels, Sample, Series};
use crate::parse::{SelectorUse, offset_ms, parse, selectors};

/// How far back an instant selector looks for a sample: Prometheus's default
/// `--query.lookback-delta`.
pub const DEFAULT_LOOKBACK_MS: i64 = 5 * 60 * 1000;

/// Most points one series of a range query may have (Prometheus's limit).
const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// The time range and resolution of a range query, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct RangeSpec {
    /// The first evaluation time.
    pub start: i64,
    /// The last evaluation time (inclusive when on a step).
    pub end: i64,
    /// Time between evaluations (> 0).
    pub step: i64,
}

/// A query's answer, in the Prometheus API's result types.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// A number at the evaluation time.
    Scalar(f64),
    /// A string at the evaluation time.
    String(String),
    /// One sample per series at the evaluation time.
    Vector(Vec<Sample>),
    /// Samples per series over time.
    Matrix(Vec<Series>),
}

/// PromQL over one engine's datasets.
#[derive(Clone)]
pub struct PromQl {
    engine: Arc<QueryEngine>,
    lookback_ms: i64,
}

impl PromQl {
    /// PromQL over `engine`'s datasets with Prometheus's default lookback.
    pub fn new(engine: Arc<QueryEngine>) -> PromQl {
        PromQl {
            engine,
            lookback_ms: DEFAULT_LOOKBACK_MS,
        }
    }

    /// `query` evaluated at `time` (ms) over `env`'s metric rows.
    pub async fn instant(&self, env: &str, query: &str, time: i64) -> Result<Answer, PromError> {
        let expr = parse(query)?;
        let series = self.read(env, &expr, time, time).await?;
        let evaluator = Evaluator {
            series: &series,
            lookback_ms: self.lookback_ms,
        };
        Ok(match evaluator.eval(&expr, time)? {
            Value::Scalar(value) => Answer::Scalar(value),
            Value::String(text) => Answer::String(text),
            Value::Vector(samples) => Answer::Vector(samples),
            Value::Matrix(series) => Answer::Matrix(series),
        })
    }

    /// `query` evaluated every `range.step` from `range.start` to `range.end`.
    pub async fn range(
        &self,
        env: &str,
        query: &str,
        range: RangeSpec,
    ) -> Result<Vec<Series>, PromError> {
        if range.step <= 0 {
            return Err(PromError::BadData(
                "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
            ));
        }
        if range.end < range.start {
            return Err(PromError::BadData(
                "end timestamp must not be before start time".into(),
            ));
        }
        if (range.end - range.start) / range.step >= MAX_POINTS_PER_SERIES {
            return Err(PromError::BadData(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into(),
            ));
        }
        let expr = parse(query)?;
        if matches!(expr, Expr::MatrixSelector(_) | Expr::StringLiteral(_)) {
            return Err(PromError::BadData(
                "invalid expression type for range query, must be Scalar or instant Vector".into(),
            ));
        }
        let series = self.read(env, &expr, range.start, range.end).await?;
        let evaluator = Evaluator {
            series: &series,
            lookback_ms: self.lookback_ms,
        };
        let mut out: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
        let mut time = range.start;
        while time <= range.end {
            match evaluator.eval(&expr, time)? {
                Value::Scalar(value) => out.entry(Labels::new()).or_default().push((time, value)),
                Value::Vector(samples) => {
                    for sample in samples {
                        out.entry(sample.labels)
                            .or_default()
                            .push((time, sample.value));
                    }
                }
                _ => {
                    return Err(PromError::BadData(
                        "invalid expression type for range query, must be Scalar or instant Vector"
                            .into(),
                    ));
                }
            }
            time += range.step;
        }
        Ok(out
            .into_iter()
            .map(|(labels, samples)| Series { labels, samples })
            .collect())
    }

    /// The label sets of the series `matchers` pick between `start` and `end`.
    pub async fn series(
        &self,
        env: &str,
        matchers: &[String],
        start: i64,
        end: i64,
    ) -> Result<Vec<Labels>, PromError> {
        let mut found = BTreeSet::new();
        for matcher in matchers {
            let selector = selector_of(matcher)?;
            for series in select(&self.engine, env, &selector, start, end).await? {
                found.insert(series.labels);
            }
        }
        Ok(found.into_iter().collect())
    }

    /// The label names of the series `matchers` pick (every metric series when
    /// there are none), sorted.
    pub async fn label_names(
        &self,
        env: &str,
        matchers: &[String],
        start: i64,
        end: i64,
    ) -> Result<Vec<String>, PromError> {
        let names: BTreeSet<String> = self
            .series(env, &or_every_series(matchers), start, end)
            .await?
            .into_iter()
            .flat_map(|labels| labels.into_keys())
            .collect();
        Ok(names.into_iter().collect())
    }

    /// The values of label `name` among the series `matchers` pick, sorted.
    pub async fn label_values(
        &self,
        env: &str,
        name: &str,
        matchers: &[String],
        start: i64,
        end: i64,
    ) -> Result<Vec<String>, PromError> {
        let values: BTreeSet<String> = self
            .series(env, &or_every_series(matchers), start, end)
            .await?
            .into_iter()
            .filter_map(|mut labels| labels.remove(name))
            .collect();
        Ok(values.into_iter().collect())
    }

    /// Reads every selector of `expr` over the window evaluations from `start`
    /// to `end` look at.
    async fn read(
        &self,
        env: &str,
        expr: &Expr,
        start: i64,
        end: i64,
    ) -> Result<HashMap<String, Vec<Series>>, PromError> {
        let mut uses: Vec<SelectorUse> = Vec::new();
        selectors(expr, self.lookback_ms, &mut uses);
        // One read per selector, over the union of its windows.
        let mut windows: HashMap<String, (VectorSelector, i64, i64)> = HashMap::new();
        for found in uses {
            let offset = offset_ms(&found.selector);
            let (from, to) = (start - offset - found.look_back_ms, end - offset);
            windows
                .entry(selector_key(&found.selector))
                .and_modify(|window| {
                    window.1 = window.1.min(from);
                    window.2 = window.2.max(to);
                })
                .or_insert((found.selector, from, to));
        }
        let mut series = HashMap::with_capacity(windows.len());
        for (key, (selector, from, to)) in windows {
            series.insert(key, select(&self.engine, env, &selector, from, to).await?);
        }
        Ok(series)
    }
}

/// The selector of one `match[]` parameter.
fn selector_of(matcher: &str) -> Result<VectorSelector, PromError> {
    match parser::parse(matcher).map_err(PromError::BadData)? {
        Expr::VectorSelector(selector) => Ok(selector),
        _ => Err(PromError::BadData(format!(
            "invalid parameter \"match[]\": {matcher:?} is not a series selector"
        ))),
    }
}

/// `matchers`, or one that picks every metric series when there are none.
fn or_every_series(matchers: &[String]) -> Vec<String> {
    if matchers.is_empty() {
        vec![r#"{__name__=~".+"}"#.to_owned()]
    } else {
        matchers.to_vec()
    }
}
