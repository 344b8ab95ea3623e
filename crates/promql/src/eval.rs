//! Evaluating an expression at one instant, over series already read.

use std::collections::{BTreeMap, HashMap, HashSet};

use promql_parser::label::Labels as LabelNames;
use promql_parser::parser::{
    AggregateExpr, BinModifier, BinaryExpr, Call, Expr, LabelModifier, MatrixSelector,
    VectorSelector,
};

use crate::PromError;
use crate::functions::{extrapolated_rate, histogram_quantile, instant_rate};
use crate::labels::{Labels, Sample, Series, without_name};
use crate::parse::{millis, offset_ms};

/// The bit pattern of Prometheus's staleness marker, which ends a series.
const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// What an expression evaluates to at one instant.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Scalar(f64),
    Vector(Vec<Sample>),
    Matrix(Vec<Series>),
    String(String),
}

/// The key a selector's series are read and found under: its matchers, not
/// its offset (one read serves every offset of a selector).
pub(crate) fn selector_key(selector: &VectorSelector) -> String {
    let mut key = selector.clone();
    key.offset = None;
    key.to_string()
}

/// Evaluates expressions over the series of every selector, read beforehand.
pub(crate) struct Evaluator<'d> {
    /// Series by [`selector_key`].
    pub series: &'d HashMap<String, Vec<Series>>,
    /// How far back an instant selector looks for a sample (5 minutes).
    pub lookback_ms: i64,
}

impl Evaluator<'_> {
    /// `expr`'s value at `time` (milliseconds).
    pub fn eval(&self, expr: &Expr, time: i64) -> Result<Value, PromError> {
        match expr {
            Expr::NumberLiteral(number) => Ok(Value::Scalar(number.val)),
            Expr::StringLiteral(text) => Ok(Value::String(text.val.clone())),
            Expr::Paren(paren) => self.eval(&paren.expr, time),
            Expr::Unary(unary) => Ok(match self.eval(&unary.expr, time)? {
                Value::Scalar(value) => Value::Scalar(-value),
                Value::Vector(samples) => Value::Vector(map_values(samples, |value| -value)),
                other => return Err(type_error("unary minus", &other)),
            }),
            Expr::VectorSelector(selector) => Ok(Value::Vector(self.instant(selector, time))),
            Expr::MatrixSelector(matrix) => Ok(Value::Matrix(self.range(matrix, time))),
            Expr::Call(call) => self.call(call, time),
            Expr::Aggregate(aggregate) => self.aggregate(aggregate, time),
            Expr::Binary(binary) => self.binary(binary, time),
            Expr::Subquery(_) | Expr::Extension(_) => {
                Err(PromError::Unsupported(format!("expression {expr}")))
            }
        }
    }

    fn series_of(&self, selector: &VectorSelector) -> &[Series] {
        self.series
            .get(&selector_key(selector))
            .map_or(&[], Vec::as_slice)
    }

    /// Each series' latest sample at most `lookback_ms` old, unless it is stale.
    fn instant(&self, selector: &VectorSelector, time: i64) -> Vec<Sample> {
        let at = time - offset_ms(selector);
        self.series_of(selector)
            .iter()
            .filter_map(|series| {
                let end = series.samples.partition_point(|&(t, _)| t <= at);
                let &(sampled, value) = series.samples.get(end.checked_sub(1)?)?;
                (sampled >= at - self.lookback_ms && value.to_bits() != STALE_NAN_BITS).then(|| {
                    Sample {
                        labels: series.labels.clone(),
                        value,
                    }
                })
            })
            .collect()
    }

    /// Each series' samples in `[time - offset - range, time - offset]`.
    fn range(&self, matrix: &MatrixSelector, time: i64) -> Vec<Series> {
        let at = time - offset_ms(&matrix.vs);
        let from = at - millis(matrix.range);
        self.series_of(&matrix.vs)
            .iter()
            .filter_map(|series| {
                let start = series.samples.partition_point(|&(t, _)| t < from);
                let end = series.samples.partition_point(|&(t, _)| t <= at);
                let samples: Vec<(i64, f64)> = series.samples[start..end]
                    .iter()
                    .copied()
                    .filter(|(_, value)| value.to_bits() != STALE_NAN_BITS)
                    .collect();
                (!samples.is_empty()).then(|| Series {
                    labels: series.labels.clone(),
                    samples,
                })
            })
            .collect()
    }

    fn call(&self, call: &Call, time: i64) -> Result<Value, PromError> {
        let name = call.func.name;
        let args = &call.args.args;
        let arg = |index: usize| {
            args.get(index)
                .ok_or_else(|| PromError::BadData(format!("{name}() needs argument {index}")))
        };
        match name {
            "rate" | "increase" | "delta" | "irate" | "idelta" => {
                let Expr::MatrixSelector(matrix) = arg(0)?.as_ref() else {
                    return Err(PromError::Unsupported(format!(
                        "{name}() of anything but a range selector"
                    )));
                };
                let end = time - offset_ms(&matrix.vs);
                let range_ms = millis(matrix.range);
                let samples = self
                    .range(matrix, time)
                    .into_iter()
                    .filter_map(|series| {
                        let value = match name {
                            "rate" => extrapolated_rate(&series.samples, end, range_ms, true, true),
                            "increase" => {
                                extrapolated_rate(&series.samples, end, range_ms, true, false)
                            }
                            "delta" => {
                                extrapolated_rate(&series.samples, end, range_ms, false, false)
                            }
                            "irate" => instant_rate(&series.samples, true),
                            _ => instant_rate(&series.samples, false),
                        }?;
                        Some(Sample {
                            labels: without_name(series.labels),
                            value,
                        })
                    })
                    .collect();
                Ok(Value::Vector(samples))
            }
            "histogram_quantile" => {
                let q = self.scalar_arg(arg(0)?, time, name)?;
                let buckets = self.vector_arg(arg(1)?, time, name)?;
                Ok(Value::Vector(histogram_quantile(q, buckets)))
            }
            "abs" | "ceil" | "floor" | "exp" | "ln" | "sqrt" => {
                let function: fn(f64) -> f64 = match name {
                    "abs" => f64::abs,
                    "ceil" => f64::ceil,
                    "floor" => f64::floor,
                    "exp" => f64::exp,
                    "ln" => f64::ln,
                    _ => f64::sqrt,
                };
                let samples = self.vector_arg(arg(0)?, time, name)?;
                Ok(Value::Vector(map_values(samples, function)))
            }
            "time" => Ok(Value::Scalar(time as f64 / 1000.0)),
            "vector" => Ok(Value::Vector(vec![Sample {
                labels: Labels::new(),
                value: self.scalar_arg(arg(0)?, time, name)?,
            }])),
            "scalar" => {
                let samples = self.vector_arg(arg(0)?, time, name)?;
                Ok(Value::Scalar(match samples.as_slice() {
                    [one] => one.value,
                    _ => f64::NAN,
                }))
            }
            other => Err(PromError::Unsupported(format!("function {other}()"))),
        }
    }

    fn scalar_arg(&self, expr: &Expr, time: i64, function: &str) -> Result<f64, PromError> {
        match self.eval(expr, time)? {
            Value::Scalar(value) => Ok(value),
            other => Err(type_error(function, &other)),
        }
    }

    fn vector_arg(&self, expr: &Expr, time: i64, function: &str) -> Result<Vec<Sample>, PromError> {
        match self.eval(expr, time)? {
            Value::Vector(samples) => Ok(samples),
            other => Err(type_error(function, &other)),
        }
    }

    fn aggregate(&self, aggregate: &AggregateExpr, time: i64) -> Result<Value, PromError> {
        let op = aggregate.op.to_string();
        let samples = self.vector_arg(&aggregate.expr, time, &op)?;
        let group_of = |labels: &Labels| grouping(labels, aggregate.modifier.as_ref());
        if op == "topk" || op == "bottomk" {
            let param = aggregate
                .param
                .as_deref()
                .ok_or_else(|| PromError::BadData(format!("{op} needs a parameter")))?;
            let k = self.scalar_arg(param, time, &op)?;
            return Ok(Value::Vector(top_k(samples, k, op == "topk", group_of)));
        }
        let mut groups: BTreeMap<Labels, Accumulator> = BTreeMap::new();
        for sample in samples {
            groups
                .entry(group_of(&sample.labels))
                .or_insert_with(|| Accumulator::first(sample.value))
                .add(sample.value);
        }
        let samples = groups
            .into_iter()
            .map(|(labels, accumulator)| Sample {
                labels,
                value: accumulator.result(&op),
            })
            .collect();
        Ok(Value::Vector(samples))
    }

    fn binary(&self, binary: &BinaryExpr, time: i64) -> Result<Value, PromError> {
        let op = binary.op.to_string();
        let modifier = binary.modifier.as_ref();
        let return_bool = modifier.is_some_and(|modifier| modifier.return_bool);
        let comparison = binary.op.is_comparison_operator();
        let lhs = self.eval(&binary.lhs, time)?;
        let rhs = self.eval(&binary.rhs, time)?;
        match (lhs, rhs) {
            (Value::Scalar(left), Value::Scalar(right)) => {
                let (value, keep) = operate(&op, left, right)?;
                Ok(Value::Scalar(if comparison {
                    f64::from(u8::from(keep))
                } else {
                    value
                }))
            }
            (Value::Vector(samples), Value::Scalar(scalar)) => {
                with_scalar(samples, scalar, &op, false, return_bool)
            }
            (Value::Scalar(scalar), Value::Vector(samples)) => {
                with_scalar(samples, scalar, &op, true, return_bool)
            }
            (Value::Vector(left), Value::Vector(right)) => {
                let matching = modifier.and_then(|modifier| modifier.matching.as_ref());
                if binary.op.is_set_operator() {
                    Ok(Value::Vector(set_operation(&op, left, right, matching)))
                } else {
                    vector_match(&op, left, right, modifier, return_bool)
                }
            }
            (left, right) => Err(PromError::BadData(format!(
                "operator {op} between {} and {}",
                type_name(&left),
                type_name(&right)
            ))),
        }
    }
}

/// Sum, count, minimum and maximum of a group, enough for every aggregation.
struct Accumulator {
    sum: f64,
    count: f64,
    min: f64,
    max: f64,
}

impl Accumulator {
    fn first(value: f64) -> Accumulator {
        Accumulator {
            sum: 0.0,
            count: 0.0,
            min: value,
            max: value,
        }
    }

    fn add(&mut self, value: f64) {
        self.sum += value;
        self.count += 1.0;
        // Prometheus: a NaN minimum or maximum gives way to any number.
        if self.min > value || self.min.is_nan() {
            self.min = value;
        }
        if self.max < value || self.max.is_nan() {
            self.max = value;
        }
    }

    fn result(&self, op: &str) -> f64 {
        match op {
            "sum" => self.sum,
            "avg" => self.sum / self.count,
            "count" => self.count,
            "min" => self.min,
            _ => self.max,
        }
    }
}

/// The group of a series under `by (…)`, `without (…)` or neither.
fn grouping(labels: &Labels, modifier: Option<&LabelModifier>) -> Labels {
    match modifier {
        None => Labels::new(),
        Some(LabelModifier::Include(names)) => keep_only(labels, names),
        Some(LabelModifier::Exclude(names)) => drop_all(without_name(labels.clone()), names),
    }
}

fn keep_only(labels: &Labels, names: &LabelNames) -> Labels {
    labels
        .iter()
        .filter(|(name, _)| names.labels.contains(name))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

fn drop_all(mut labels: Labels, names: &LabelNames) -> Labels {
    for name in &names.labels {
        labels.remove(name);
    }
    labels
}

/// `topk` (`highest`) or `bottomk`: the k samples of each group with the highest
/// (lowest) values, NaN last, with their own labels.
fn top_k(
    samples: Vec<Sample>,
    k: f64,
    highest: bool,
    group_of: impl Fn(&Labels) -> Labels,
) -> Vec<Sample> {
    if k.is_nan() || k < 1.0 {
        return Vec::new();
    }
    let k = k as usize;
    let mut groups: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
    for sample in samples {
        groups
            .entry(group_of(&sample.labels))
            .or_default()
            .push(sample);
    }
    let mut picked = Vec::new();
    for (_, mut members) in groups {
        members.sort_by(|a, b| {
            let order = match (a.value.is_nan(), b.value.is_nan()) {
                (true, true) => std::cmp::Ordering::Equal,
                (true, false) => return std::cmp::Ordering::Greater,
                (false, true) => return std::cmp::Ordering::Less,
                (false, false) => a.value.total_cmp(&b.value),
            };
            if highest { order.reverse() } else { order }
        });
        members.truncate(k);
        picked.extend(members);
    }
    picked
}

/// The value of `left op right`, and whether a comparison holds.
fn operate(op: &str, left: f64, right: f64) -> Result<(f64, bool), PromError> {
    Ok(match op {
        "+" => (left + right, true),
        "-" => (left - right, true),
        "*" => (left * right, true),
        "/" => (left / right, true),
        "%" => (left % right, true),
        "^" => (left.powf(right), true),
        "==" => (left, left == right),
        "!=" => (left, left != right),
        ">" => (left, left > right),
        "<" => (left, left < right),
        ">=" => (left, left >= right),
        "<=" => (left, left <= right),
        other => return Err(PromError::Unsupported(format!("operator {other}"))),
    })
}

fn is_arithmetic(op: &str) -> bool {
    matches!(op, "+" | "-" | "*" | "/" | "%" | "^")
}

/// A vector and a scalar (`scalar_left`: the scalar is the left operand).
fn with_scalar(
    samples: Vec<Sample>,
    scalar: f64,
    op: &str,
    scalar_left: bool,
    return_bool: bool,
) -> Result<Value, PromError> {
    let mut out = Vec::with_capacity(samples.len());
    for sample in samples {
        let (left, right) = if scalar_left {
            (scalar, sample.value)
        } else {
            (sample.value, scalar)
        };
        let (mut value, keep) = operate(op, left, right)?;
        if !is_arithmetic(op) {
            // A comparison keeps the vector's value, on whichever side it is.
            value = sample.value;
        }
        let labels = if is_arithmetic(op) || return_bool {
            without_name(sample.labels)
        } else {
            sample.labels
        };
        if return_bool {
            out.push(Sample {
                labels,
                value: f64::from(u8::from(keep)),
            });
        } else if keep {
            out.push(Sample { labels, value });
        }
    }
    Ok(Value::Vector(out))
}

/// The labels two series are matched on.
fn signature(labels: &Labels, matching: Option<&LabelModifier>) -> Labels {
    match matching {
        Some(LabelModifier::Include(names)) => keep_only(labels, names),
        Some(LabelModifier::Exclude(names)) => drop_all(without_name(labels.clone()), names),
        None => without_name(labels.clone()),
    }
}

/// `and`, `or` and `unless`.
fn set_operation(
    op: &str,
    left: Vec<Sample>,
    right: Vec<Sample>,
    matching: Option<&LabelModifier>,
) -> Vec<Sample> {
    let right_signatures: HashSet<Labels> = right
        .iter()
        .map(|sample| signature(&sample.labels, matching))
        .collect();
    match op {
        "and" => left
            .into_iter()
            .filter(|sample| right_signatures.contains(&signature(&sample.labels, matching)))
            .collect(),
        "unless" => left
            .into_iter()
            .filter(|sample| !right_signatures.contains(&signature(&sample.labels, matching)))
            .collect(),
        _ => {
            let left_signatures: HashSet<Labels> = left
                .iter()
                .map(|sample| signature(&sample.labels, matching))
                .collect();
            let mut out = left;
            out.extend(
                right.into_iter().filter(|sample| {
                    !left_signatures.contains(&signature(&sample.labels, matching))
                }),
            );
            out
        }
    }
}

/// Two vectors matched one to one.
fn vector_match(
    op: &str,
    left: Vec<Sample>,
    right: Vec<Sample>,
    modifier: Option<&BinModifier>,
    return_bool: bool,
) -> Result<Value, PromError> {
    let matching = modifier.and_then(|modifier| modifier.matching.as_ref());
    let mut by_signature: HashMap<Labels, f64> = HashMap::with_capacity(right.len());
    for sample in &right {
        let key = signature(&sample.labels, matching);
        if by_signature.insert(key.clone(), sample.value).is_some() {
            return Err(PromError::Execution(format!(
                "found duplicate series for the match group {key:?} on the right hand-side of the operation; many-to-many matching not allowed: matching labels must be unique on one side"
            )));
        }
    }
    let mut matched = HashSet::new();
    let mut out = Vec::new();
    for sample in left {
        let key = signature(&sample.labels, matching);
        let Some(&right_value) = by_signature.get(&key) else {
            continue;
        };
        if !matched.insert(key.clone()) {
            return Err(PromError::Execution(format!(
                "multiple matches for labels {key:?}: many-to-one matching must be explicit (group_left/group_right)"
            )));
        }
        let (value, keep) = operate(op, sample.value, right_value)?;
        let mut labels = if is_arithmetic(op) || return_bool {
            without_name(sample.labels)
        } else {
            sample.labels
        };
        match matching {
            Some(LabelModifier::Include(names)) => labels = keep_only(&labels, names),
            Some(LabelModifier::Exclude(names)) => labels = drop_all(labels, names),
            None => {}
        }
        if return_bool {
            out.push(Sample {
                labels,
                value: f64::from(u8::from(keep)),
            });
        } else if keep {
            out.push(Sample { labels, value });
        }
    }
    Ok(Value::Vector(out))
}

/// `samples` with `function` applied to each value, and no metric name.
fn map_values(samples: Vec<Sample>, function: impl Fn(f64) -> f64) -> Vec<Sample> {
    samples
        .into_iter()
        .map(|sample| Sample {
            labels: without_name(sample.labels),
            value: function(sample.value),
        })
        .collect()
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Scalar(_) => "scalar",
        Value::Vector(_) => "instant vector",
        Value::Matrix(_) => "range vector",
        Value::String(_) => "string",
    }
}

fn type_error(what: &str, value: &Value) -> PromError {
    PromError::BadData(format!("{what}: unexpected {}", type_name(value)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    fn evaluate(query: &str, data: &[(&str, Series)], time: i64) -> Value {
        let mut series: HashMap<String, Vec<Series>> = HashMap::new();
        let expr = parse(query).unwrap();
        let mut uses = Vec::new();
        crate::parse::selectors(&expr, 300_000, &mut uses);
        for found in uses {
            let key = selector_key(&found.selector);
            let matching = data
                .iter()
                .filter(|(name, series)| {
                    found.selector.name.as_deref() == Some(*name)
                        && found.selector.matchers.matchers.iter().all(|matcher| {
                            matcher.is_match(
                                series.labels.get(&matcher.name).map_or("", String::as_str),
                            )
                        })
                })
                .map(|(_, series)| series.clone())
                .collect();
            series.insert(key, matching);
        }
        Evaluator {
            series: &series,
            lookback_ms: 300_000,
        }
        .eval(&expr, time)
        .unwrap()
    }

    fn requests(code: &str, per_second: f64) -> (&'static str, Series) {
        (
            "requests_total",
            Series {
                labels: labels(&[
                    ("__name__", "requests_total"),
                    ("code", code),
                    ("job", "api"),
                ]),
                samples: (0..=20)
                    .map(|i| (i * 15_000, per_second * 15.0 * i as f64))
                    .collect(),
            },
        )
    }

    fn values(value: Value) -> Vec<(Labels, f64)> {
        let Value::Vector(samples) = value else {
            panic!("not a vector: {value:?}")
        };
        let mut out: Vec<(Labels, f64)> =
            samples.into_iter().map(|s| (s.labels, s.value)).collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    #[test]
    fn instant_selectors_look_back_five_minutes_and_stop_at_staleness() {
        let data = [requests("200", 1.0)];
        assert_eq!(
            values(evaluate("requests_total", &data, 100_000))[0].1,
            90.0
        );
        assert_eq!(
            values(evaluate("requests_total", &data, 300_000 + 299_000)).len(),
            1
        );
        assert!(values(evaluate("requests_total", &data, 300_000 + 301_000)).is_empty());
        let mut stale = requests("200", 1.0);
        stale
            .1
            .samples
            .push((301_000, f64::from_bits(STALE_NAN_BITS)));
        assert!(values(evaluate("requests_total", &[stale], 302_000)).is_empty());
    }

    #[test]
    fn sum_by_of_rate_groups_and_drops_the_name() {
        let data = [requests("200", 2.0), requests("500", 0.5)];
        let got = values(evaluate(
            "sum by (job) (rate(requests_total[1m]))",
            &data,
            150_000,
        ));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, labels(&[("job", "api")]));
        assert!((got[0].1 - 2.5).abs() < 1e-9, "{}", got[0].1);
        let got = values(evaluate("rate(requests_total[1m]) > 1", &data, 150_000));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0.get("code").map(String::as_str), Some("200"));
        assert!(!got[0].0.contains_key("__name__"));
    }

    #[test]
    fn vectors_match_one_to_one_ignoring_labels() {
        let data = [requests("200", 2.0), requests("500", 0.5)];
        let got = values(evaluate(
            r#"requests_total{code="500"} / ignoring(code) requests_total{code="200"}"#,
            &data,
            150_000,
        ));
        assert_eq!(got, vec![(labels(&[("job", "api")]), 0.25)]);
        let got = values(evaluate("topk(1, requests_total)", &data, 150_000));
        assert_eq!(got[0].0.get("code").map(String::as_str), Some("200"));
        let got = values(evaluate("requests_total > bool 100", &data, 150_000));
        assert_eq!(
            got.iter().map(|(_, v)| *v).collect::<Vec<_>>(),
            vec![1.0, 0.0]
        );
    }
}
