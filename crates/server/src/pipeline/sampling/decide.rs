//! The rule engine: the first of an environment's ordered rules that matches a
//! trace decides whether it is kept and at which rate.

use std::collections::HashMap;
use std::time::Instant;

use super::dynamic::DynamicSampler;
use super::keep::keeps;
use super::rules::{Condition, ConditionOp, SamplingRule, SamplingRules};
use super::spans::{FieldValue, SpanRow, duration_ms, is_error, representative, value_of};

/// The `rule` label of traces no rule matched (kept whole at rate 1).
pub const NO_RULE: &str = "(no rule)";

/// What happens to a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether its spans are written.
    pub keep: bool,
    /// What each kept span stands for (multiplies the span's own sample rate).
    pub rate: u64,
    /// The rule that decided ([`NO_RULE`] when none matched).
    pub rule: String,
}

impl Decision {
    /// Kept at rate 1 by no rule (no rules, or none matched).
    pub fn keep_all() -> Decision {
        Decision {
            keep: true,
            rate: 1,
            rule: NO_RULE.to_owned(),
        }
    }
}

/// The dynamic samplers' state of one environment, by rule name.
pub type DynamicStates = HashMap<String, DynamicSampler>;

/// Decides the trace `trace_id` made of `spans` by `rules`.
pub fn decide(
    rules: &SamplingRules,
    dynamic: &mut DynamicStates,
    trace_id: &str,
    spans: &[SpanRow<'_>],
    now: Instant,
) -> Decision {
    let Some(rule) = rules.rules.iter().find(|rule| matches(rule, spans)) else {
        return Decision::keep_all();
    };
    let (keep, rate) = if rule.drop {
        (false, 0)
    } else if let Some(dynamic_rule) = &rule.dynamic {
        let sampler = dynamic
            .entry(rule.name.clone())
            .and_modify(|sampler| {
                if !sampler.matches(dynamic_rule) {
                    *sampler = DynamicSampler::new(dynamic_rule, now);
                }
            })
            .or_insert_with(|| DynamicSampler::new(dynamic_rule, now));
        let key = dynamic_key(&dynamic_rule.key_fields, spans);
        let rate = sampler.rate(&key, now);
        (keeps(trace_id, rate), rate)
    } else {
        let rate = rule.sample_rate.unwrap_or(1);
        (keeps(trace_id, rate), rate)
    };
    Decision {
        keep,
        rate,
        rule: rule.name.clone(),
    }
}

/// The dynamic sampler's key: the key fields' values on the trace's root span
/// (or first span), joined; a missing field is empty.
pub fn dynamic_key(fields: &[String], spans: &[SpanRow<'_>]) -> String {
    let Some(span) = representative(spans) else {
        return String::new();
    };
    fields
        .iter()
        .map(|field| {
            value_of(span.batch, span.row, field)
                .map(|value| value.to_text())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("\u{1f}")
}

/// Whether every part of `rule` holds for the trace.
fn matches(rule: &SamplingRule, spans: &[SpanRow<'_>]) -> bool {
    if !rule.datasets.is_empty() {
        let Some(span) = representative(spans) else {
            return false;
        };
        if !rule.datasets.iter().any(|dataset| dataset == span.dataset) {
            return false;
        }
    }
    if let Some(want) = rule.error {
        let has_error = spans.iter().any(|span| is_error(span.batch, span.row));
        if has_error != want {
            return false;
        }
    }
    if let Some(threshold) = rule.min_duration_ms {
        let slow = spans
            .iter()
            .any(|span| duration_ms(span.batch, span.row).is_some_and(|d| d >= threshold));
        if !slow {
            return false;
        }
    }
    rule.conditions
        .iter()
        .all(|condition| condition_holds(condition, spans))
}

/// Whether `condition` holds on some span of the trace (`does-not-exist`: on none
/// of them the field exists).
fn condition_holds(condition: &Condition, spans: &[SpanRow<'_>]) -> bool {
    let values = spans
        .iter()
        .map(|span| value_of(span.batch, span.row, &condition.field));
    match condition.op {
        ConditionOp::DoesNotExist => values.into_iter().all(|value| value.is_none()),
        ConditionOp::Exists => values.into_iter().any(|value| value.is_some()),
        op => values
            .into_iter()
            .flatten()
            .any(|value| compare(op, &value, condition.value.as_ref())),
    }
}

fn compare(op: ConditionOp, value: &FieldValue<'_>, operand: Option<&serde_json::Value>) -> bool {
    use serde_json::Value as Json;
    let Some(operand) = operand else {
        return false;
    };
    let equal = || match (value, operand) {
        (FieldValue::Bool(v), Json::Bool(o)) => Some(v == o),
        (FieldValue::Text(v), Json::String(o)) => Some(v == o),
        (_, Json::Number(o)) => Some(value.as_f64()? == o.as_f64()?),
        _ => None,
    };
    let order = || Some(value.as_f64()?.total_cmp(&operand.as_f64()?));
    let text = || match (value, operand) {
        (FieldValue::Text(v), Json::String(o)) => Some((*v, o.as_str())),
        _ => None,
    };
    match op {
        ConditionOp::Equals => equal() == Some(true),
        ConditionOp::NotEquals => equal() == Some(false),
        ConditionOp::Greater => order().is_some_and(|o| o.is_gt()),
        ConditionOp::GreaterOrEqual => order().is_some_and(|o| o.is_ge()),
        ConditionOp::Less => order().is_some_and(|o| o.is_lt()),
        ConditionOp::LessOrEqual => order().is_some_and(|o| o.is_le()),
        ConditionOp::StartsWith => text().is_some_and(|(v, o)| v.starts_with(o)),
        ConditionOp::Contains => text().is_some_and(|(v, o)| v.contains(o)),
        ConditionOp::Exists | ConditionOp::DoesNotExist => false,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use quarry_schema::fields::{DURATION_MS, ERROR, PARENT_ID, SERVICE_NAME, STATUS_CODE};

    use super::*;

    /// Rows: (parent, error, status_code, duration_ms, service, route).
    type Row<'a> = (
        Option<&'a str>,
        Option<bool>,
        i64,
        f64,
        &'a str,
        Option<&'a str>,
    );

    fn batch(rows: &[Row<'_>]) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new(PARENT_ID, DataType::Utf8, true),
            Field::new(ERROR, DataType::Boolean, true),
            Field::new(STATUS_CODE, DataType::Int64, true),
            Field::new(DURATION_MS, DataType::Float64, true),
            Field::new(SERVICE_NAME, DataType::Utf8, true),
            Field::new("http.route", DataType::Utf8, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from_iter(rows.iter().map(|r| r.0))),
                Arc::new(BooleanArray::from_iter(rows.iter().map(|r| r.1))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.2))),
                Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.3))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.4))),
                Arc::new(StringArray::from_iter(rows.iter().map(|r| r.5))),
            ],
        )
        .unwrap()
    }

    fn spans<'a>(dataset: &'a str, batch: &'a RecordBatch) -> Vec<SpanRow<'a>> {
        (0..batch.num_rows())
            .map(|row| SpanRow {
                dataset,
                batch,
                row,
            })
            .collect()
    }

    fn rules(json: &str) -> SamplingRules {
        let rules: SamplingRules = serde_json::from_str(json).unwrap();
        rules.validate("sampling").unwrap();
        rules
    }

    const RULES: &str = r#"{"rules": [
        {"name": "errors", "error": true, "sample_rate": 1},
        {"name": "slow", "min_duration_ms": 1000, "sample_rate": 1},
        {"name": "health", "conditions": [{"field": "http.route", "op": "=", "value": "/health"}], "drop": true},
        {"name": "admin", "datasets": ["admin"], "sample_rate": 1},
        {"name": "big", "conditions": [{"field": "status_code", "op": ">=", "value": 1},
                                       {"field": "http.route", "op": "starts-with", "value": "/big"}],
         "sample_rate": 1},
        {"name": "rest", "sample_rate": 1000000}
    ]}"#;

    fn decided(rows: &[Row<'_>], dataset: &str) -> Decision {
        let batch = batch(rows);
        let rules = rules(RULES);
        decide(
            &rules,
            &mut DynamicStates::new(),
            "0af7651916cd43dd8448eb211c80319c",
            &spans(dataset, &batch),
            Instant::now(),
        )
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let root = (None, None, 0, 5.0, "shop", Some("/cart"));
        let failed_child = (Some("aa"), Some(true), 2, 1.0, "db", None);
        let error_status = (Some("aa"), None, 2, 1.0, "db", None);
        let slow_child = (Some("aa"), None, 0, 1500.0, "db", None);
        let health = (None, None, 0, 1.0, "shop", Some("/health"));

        let by = |rows: &[Row<'_>], dataset: &str| decided(rows, dataset).rule;
        assert_eq!(by(&[root, failed_child], "shop"), "errors");
        assert_eq!(by(&[root, error_status], "shop"), "errors");
        assert_eq!(by(&[health, failed_child], "shop"), "errors");
        assert_eq!(by(&[root, slow_child], "shop"), "slow");
        assert_eq!(by(&[health], "shop"), "health");
        assert_eq!(by(&[root], "admin"), "admin");
        assert_eq!(by(&[root], "shop"), "rest");
        // Conditions may hold on different spans of the trace.
        let big_root = (None, None, 0, 1.0, "shop", Some("/big/1"));
        let ok_child = (Some("aa"), None, 1, 1.0, "db", None);
        assert_eq!(by(&[big_root, ok_child], "shop"), "big");
        assert_eq!(by(&[big_root], "shop"), "rest");

        let dropped = decided(&[health], "shop");
        assert!(!dropped.keep);
        let kept = decided(&[root, failed_child], "shop");
        assert_eq!((kept.keep, kept.rate), (true, 1));
        let rest = decided(&[root], "shop");
        assert_eq!(rest.rate, 1_000_000);
    }

    #[test]
    fn a_trace_no_rule_matches_is_kept_whole() {
        let batch = batch(&[(None, None, 0, 5.0, "shop", None)]);
        let rules = rules(r#"{"rules": [{"name": "errors", "error": true, "drop": true}]}"#);
        let decision = decide(
            &rules,
            &mut DynamicStates::new(),
            "t",
            &spans("shop", &batch),
            Instant::now(),
        );
        assert_eq!(decision, Decision::keep_all());
    }

    #[test]
    fn the_dynamic_key_comes_from_the_root_span() {
        let batch = batch(&[
            (Some("aa"), None, 0, 1.0, "db", None),
            (None, None, 2, 1.0, "shop", Some("/cart")),
        ]);
        let fields = [
            SERVICE_NAME.to_owned(),
            "http.route".into(),
            STATUS_CODE.into(),
            "absent".into(),
        ];
        assert_eq!(
            dynamic_key(&fields, &spans("shop", &batch)),
            "shop\u{1f}/cart\u{1f}2\u{1f}"
        );
        let rules = rules(
            r#"{"rules": [{"name": "dyn", "dynamic": {"key_fields": ["service.name"], "target_per_second": 5}}]}"#,
        );
        let mut states = DynamicStates::new();
        let decision = decide(
            &rules,
            &mut states,
            "t",
            &spans("shop", &batch),
            Instant::now(),
        );
        // The first interval keeps everything.
        assert_eq!(
            (decision.keep, decision.rate, decision.rule.as_str()),
            (true, 1, "dyn")
        );
        assert!(states.contains_key("dyn"));
    }
}
