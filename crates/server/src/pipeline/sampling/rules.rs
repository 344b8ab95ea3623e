//! Tail-sampling rules as an operator writes them (`sampling` of an environment's
//! pipeline rules), and their validation: every problem names its field
//! (`sampling.rules[2].sample_rate: ...`).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::pipeline::invalid::{InvalidRule, invalid};

/// Default wait after a trace's root span before it is decided.
pub const DEFAULT_DECISION_WAIT_MS: u64 = 2_000;
/// Default wait after a trace's first span before it is decided without a root.
pub const DEFAULT_TRACE_TIMEOUT_MS: u64 = 60_000;
/// Default interval at which a dynamic sampler recomputes its rates.
pub const DEFAULT_ADJUST_INTERVAL_MS: u64 = 15_000;
/// Default weight of the newest interval in a dynamic sampler's moving average.
pub const DEFAULT_EMA_WEIGHT: f64 = 0.5;
/// Longest wait accepted for `decision_wait_ms` and `trace_timeout_ms` (one hour).
const MAX_WAIT_MS: u64 = 3_600_000;
/// Most sampling rules per environment.
const MAX_RULES: usize = 100;
/// Most conditions of one rule, and key fields of one dynamic sampler.
const MAX_FIELDS: usize = 20;

/// An environment's tail sampling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingRules {
    /// Wait after the root span arrived before the trace is decided (late children).
    #[serde(default = "default_decision_wait")]
    pub decision_wait_ms: u64,
    /// Wait after the first span arrived before the trace is decided without a root.
    #[serde(default = "default_trace_timeout")]
    pub trace_timeout_ms: u64,
    /// Datasets whose spans are sampled; none means every dataset.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub datasets: Vec<String>,
    /// Tried in order; the first rule that matches a trace decides it. A trace no
    /// rule matches is kept whole at rate 1.
    pub rules: Vec<SamplingRule>,
}

fn default_decision_wait() -> u64 {
    DEFAULT_DECISION_WAIT_MS
}

fn default_trace_timeout() -> u64 {
    DEFAULT_TRACE_TIMEOUT_MS
}

/// One rule: what traces it matches (every part must hold; none matches all),
/// and what it does to them (exactly one of `sample_rate`, `drop`, `dynamic`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingRule {
    /// Unique within the environment; the rule's label on `/metrics`.
    pub name: String,
    /// Matches only traces whose root span (or first span, without a root) is in
    /// one of these datasets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub datasets: Vec<String>,
    /// `true`: matches traces with an error span (`error` = true or `status_code`
    /// = 2); `false`: traces without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<bool>,
    /// Matches traces with a span whose `duration_ms` is at least this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_duration_ms: Option<f64>,
    /// Each must hold on some span of the trace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Keep 1 trace in this many, chosen by a hash of the trace id (1: keep all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<u64>,
    /// Drop every matching trace.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drop: bool,
    /// Keep about `target_per_second` traces per second, shared fairly by key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic: Option<DynamicRule>,
}

/// A test of one field of a span.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// The flattened field name (`http.route`).
    pub field: String,
    /// The comparison.
    pub op: ConditionOp,
    /// The operand (none for `exists` and `does-not-exist`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
}

/// Comparisons of a [`Condition`] (the query spec's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConditionOp {
    #[serde(rename = "=")]
    Equals,
    #[serde(rename = "!=")]
    NotEquals,
    #[serde(rename = ">")]
    Greater,
    #[serde(rename = ">=")]
    GreaterOrEqual,
    #[serde(rename = "<")]
    Less,
    #[serde(rename = "<=")]
    LessOrEqual,
    #[serde(rename = "starts-with")]
    StartsWith,
    #[serde(rename = "contains")]
    Contains,
    #[serde(rename = "exists")]
    Exists,
    #[serde(rename = "does-not-exist")]
    DoesNotExist,
}

impl ConditionOp {
    /// Whether the comparison takes a value.
    fn takes_value(self) -> bool {
        !matches!(self, ConditionOp::Exists | ConditionOp::DoesNotExist)
    }
}

/// A dynamic sampler: per key, a moving average of traces per interval, and a
/// rate per key such that all keys together keep about the target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamicRule {
    /// Fields of the root span (or first span) whose values form the key.
    pub key_fields: Vec<String>,
    /// Traces to keep per second over all keys.
    pub target_per_second: f64,
    /// How often rates are recomputed.
    #[serde(default = "default_adjust_interval")]
    pub adjust_interval_ms: u64,
    /// Weight of the newest interval in the moving average (0 < w <= 1).
    #[serde(default = "default_ema_weight")]
    pub ema_weight: f64,
}

fn default_adjust_interval() -> u64 {
    DEFAULT_ADJUST_INTERVAL_MS
}

fn default_ema_weight() -> f64 {
    DEFAULT_EMA_WEIGHT
}

fn check_datasets(datasets: &[String], at: &str) -> Result<(), InvalidRule> {
    for (index, dataset) in datasets.iter().enumerate() {
        if crate::names::dataset_name(dataset).is_err() {
            return Err(invalid(
                format!("{at}.datasets[{index}]"),
                format!("{dataset:?} is not a dataset name"),
            ));
        }
    }
    Ok(())
}

fn check_field_name(field: &str, at: &str) -> Result<(), InvalidRule> {
    if field.is_empty() || field.len() > 1000 {
        return Err(invalid(at, "must be a field name of 1 to 1000 bytes"));
    }
    Ok(())
}

impl SamplingRules {
    /// Checks what the shape alone does not; `at` is the path of this value.
    pub fn validate(&self, at: &str) -> Result<(), InvalidRule> {
        for (name, wait) in [
            ("decision_wait_ms", self.decision_wait_ms),
            ("trace_timeout_ms", self.trace_timeout_ms),
        ] {
            if wait > MAX_WAIT_MS {
                return Err(invalid(
                    format!("{at}.{name}"),
                    format!("at most {MAX_WAIT_MS} (one hour)"),
                ));
            }
        }
        if self.trace_timeout_ms < self.decision_wait_ms {
            return Err(invalid(
                format!("{at}.trace_timeout_ms"),
                "must be at least decision_wait_ms",
            ));
        }
        check_datasets(&self.datasets, at)?;
        if self.rules.len() > MAX_RULES {
            return Err(invalid(
                format!("{at}.rules"),
                format!("at most {MAX_RULES} rules"),
            ));
        }
        let mut names = HashSet::new();
        for (index, rule) in self.rules.iter().enumerate() {
            let at = format!("{at}.rules[{index}]");
            rule.validate(&at)?;
            if !names.insert(rule.name.as_str()) {
                return Err(invalid(
                    format!("{at}.name"),
                    format!("{:?} is used by an earlier rule", rule.name),
                ));
            }
        }
        Ok(())
    }
}

impl SamplingRule {
    fn validate(&self, at: &str) -> Result<(), InvalidRule> {
        if self.name.trim().is_empty() || self.name.len() > 100 {
            return Err(invalid(
                format!("{at}.name"),
                "must be 1 to 100 bytes and not blank",
            ));
        }
        check_datasets(&self.datasets, at)?;
        if let Some(threshold) = self.min_duration_ms
            && !(threshold.is_finite() && threshold >= 0.0)
        {
            return Err(invalid(
                format!("{at}.min_duration_ms"),
                "must be a number of milliseconds, 0 or more",
            ));
        }
        if self.conditions.len() > MAX_FIELDS {
            return Err(invalid(
                format!("{at}.conditions"),
                format!("at most {MAX_FIELDS} conditions"),
            ));
        }
        for (index, condition) in self.conditions.iter().enumerate() {
            condition.validate(&format!("{at}.conditions[{index}]"))?;
        }
        let actions = usize::from(self.sample_rate.is_some())
            + usize::from(self.drop)
            + usize::from(self.dynamic.is_some());
        if actions != 1 {
            return Err(invalid(
                format!("{at}.sample_rate"),
                "a rule needs exactly one of sample_rate, drop and dynamic",
            ));
        }
        if self.sample_rate == Some(0) || self.sample_rate.is_some_and(|r| r > i64::MAX as u64) {
            return Err(invalid(
                format!("{at}.sample_rate"),
                "must be a whole number from 1 (keep all)",
            ));
        }
        if let Some(dynamic) = &self.dynamic {
            dynamic.validate(&format!("{at}.dynamic"))?;
        }
        Ok(())
    }
}

impl Condition {
    fn validate(&self, at: &str) -> Result<(), InvalidRule> {
        check_field_name(&self.field, &format!("{at}.field"))?;
        match (&self.value, self.op.takes_value()) {
            (None, true) => Err(invalid(format!("{at}.value"), "this op needs a value")),
            (Some(_), false) => Err(invalid(format!("{at}.value"), "this op takes no value")),
            (Some(value), true) => {
                let numeric_op = matches!(
                    self.op,
                    ConditionOp::Greater
                        | ConditionOp::GreaterOrEqual
                        | ConditionOp::Less
                        | ConditionOp::LessOrEqual
                );
                let text_op = matches!(self.op, ConditionOp::StartsWith | ConditionOp::Contains);
                let fits = match value {
                    serde_json::Value::Number(_) => !text_op,
                    serde_json::Value::String(_) => !numeric_op,
                    serde_json::Value::Bool(_) => !numeric_op && !text_op,
                    _ => false,
                };
                if fits {
                    Ok(())
                } else {
                    Err(invalid(
                        format!("{at}.value"),
                        "must be a number, a string or a boolean that the op can compare",
                    ))
                }
            }
            (None, false) => Ok(()),
        }
    }
}

impl DynamicRule {
    fn validate(&self, at: &str) -> Result<(), InvalidRule> {
        if self.key_fields.is_empty() || self.key_fields.len() > MAX_FIELDS {
            return Err(invalid(
                format!("{at}.key_fields"),
                format!("needs 1 to {MAX_FIELDS} fields"),
            ));
        }
        for (index, field) in self.key_fields.iter().enumerate() {
            check_field_name(field, &format!("{at}.key_fields[{index}]"))?;
        }
        if !(self.target_per_second.is_finite() && self.target_per_second > 0.0) {
            return Err(invalid(
                format!("{at}.target_per_second"),
                "must be greater than 0",
            ));
        }
        if !(100..=MAX_WAIT_MS).contains(&self.adjust_interval_ms) {
            return Err(invalid(
                format!("{at}.adjust_interval_ms"),
                format!("must be 100 to {MAX_WAIT_MS}"),
            ));
        }
        if !(self.ema_weight > 0.0 && self.ema_weight <= 1.0) {
            return Err(invalid(
                format!("{at}.ema_weight"),
                "must be greater than 0 and at most 1",
            ));
        }
        Ok(())
    }
}
