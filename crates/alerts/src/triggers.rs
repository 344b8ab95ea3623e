//! Triggers (`/1/triggers/{dataset}`): a query spec with one calculation, a
//! threshold, and how often it is evaluated; and the state machine that turns
//! evaluations into triggered and resolved alerts, per result group.

use std::collections::BTreeMap;

use quarry_query::spec::{QuerySpec, ValidSpec};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{AlertError, Result};
use crate::fields::{
    object_with, optional_bool, optional_f64, optional_i64, optional_string, recipient_ids,
};

/// Triggers kept per environment.
pub const MAX_TRIGGERS: usize = 1_000;
/// Honeycomb's bounds on a trigger's frequency, in seconds.
pub const MIN_FREQUENCY_SECS: i64 = 60;
pub const MAX_FREQUENCY_SECS: i64 = 86_400;
/// The default frequency (Honeycomb's).
pub const DEFAULT_FREQUENCY_SECS: i64 = 900;
/// A trigger's query covers at most a day ...
pub const MAX_TIME_RANGE_SECS: f64 = 86_400.0;
/// ... and at most this many times its frequency.
pub const MAX_RANGE_PER_FREQUENCY: f64 = 4.0;
/// Honeycomb's bounds on `exceeded_limit`.
pub const MAX_EXCEEDED_LIMIT: i64 = 5;
/// Groups whose state is kept per trigger (the evaluation's top groups).
pub const MAX_GROUPS: usize = 500;
/// Evaluations kept in a trigger's history.
pub const MAX_HISTORY: usize = 100;
/// Transitions (triggered / resolved) kept per trigger: kept apart from the
/// evaluations, so a quiet trigger's last alerts outlive 100 calm evaluations.
pub const MAX_TRANSITIONS: usize = 100;
/// The longest name or description, in bytes.
const MAX_NAME_BYTES: usize = 1_024;

/// When notifications are sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertType {
    /// When a group starts and stops exceeding the threshold.
    OnChange,
    /// At every evaluation a group exceeds it (and when it stops).
    OnTrue,
}

/// A threshold comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    pub op: String,
    pub value: f64,
    /// Consecutive exceeding evaluations before a group triggers.
    pub exceeded_limit: u32,
}

impl Threshold {
    /// Whether `value` exceeds the threshold (a missing value never does).
    pub fn exceeded(&self, value: Option<f64>) -> bool {
        let Some(value) = value else {
            return false;
        };
        match self.op.as_str() {
            ">" => value > self.value,
            ">=" => value >= self.value,
            "<" => value < self.value,
            "<=" => value <= self.value,
            _ => false,
        }
    }

    /// The value of `values` nearest to exceeding (or furthest past) the
    /// threshold: the largest for `>`/`>=`, the smallest for `<`/`<=`. What one
    /// number says of an evaluation with many groups.
    pub fn most_exceeding(&self, values: impl IntoIterator<Item = f64>) -> Option<f64> {
        let values = values.into_iter();
        if self.op.starts_with('>') {
            values.reduce(f64::max)
        } else {
            values.reduce(f64::min)
        }
    }
}

/// A trigger and its evaluation state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    pub id: String,
    pub dataset: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub disabled: bool,
    /// The saved query it was created from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_id: Option<String>,
    pub query: QuerySpec,
    /// The name of the calculation's value in results (`COUNT`, `P99(ms)`, ...).
    pub value_name: String,
    pub frequency: i64,
    pub alert_type: AlertType,
    pub threshold: Threshold,
    pub recipients: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub state: TriggerState,
}

/// What a trigger remembers between evaluations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TriggerState {
    /// Alert-clock time of the last evaluation (ns).
    #[serde(default)]
    pub last_evaluated_ns: Option<i64>,
    /// Per group (its key as canonical JSON).
    #[serde(default)]
    pub groups: BTreeMap<String, GroupState>,
    /// Recent evaluations, oldest first.
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    /// Recent alert transitions, oldest first.
    #[serde(default)]
    pub transitions: Vec<TransitionEntry>,
}

/// One group's alert opening or closing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransitionEntry {
    /// RFC 3339 (alert clock).
    pub time: String,
    /// `triggered` or `resolved`.
    pub status: String,
    /// The group's breakdown values (empty without breakdowns).
    pub group: Map<String, Value>,
    /// The group's value at that evaluation (none when it had no events).
    pub value: Option<f64>,
}

/// One group's alert state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupState {
    /// Consecutive evaluations over the threshold.
    pub exceeded: u32,
    /// Whether an alert is open.
    pub triggered: bool,
    /// Alerts opened so far for this group (part of the dedup key).
    pub episode: u64,
    /// The last value seen.
    pub value: Option<f64>,
}

/// One evaluation in a trigger's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// RFC 3339 (alert clock).
    pub time: String,
    /// Groups triggered after it.
    pub triggered_groups: usize,
    /// The value it found: with breakdowns, the group's value most past the
    /// threshold ([`Threshold::most_exceeding`]); none when there were no events.
    #[serde(default)]
    pub value: Option<f64>,
    /// Notifications it caused (`triggered` / `resolved` per group).
    pub events: Vec<String>,
    /// Set when the query failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What an evaluation decided for one group.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// An alert opened (or, for `on_true`, is still open and re-notified).
    Triggered { episode: u64, repeat: bool },
    /// An open alert closed.
    Resolved { episode: u64 },
}

/// Applies one evaluation's value to a group; returns the notification to send.
pub fn step(
    state: &mut GroupState,
    value: Option<f64>,
    threshold: &Threshold,
    alert_type: AlertType,
) -> Option<Transition> {
    state.value = value;
    if threshold.exceeded(value) {
        state.exceeded = state.exceeded.saturating_add(1);
        if state.triggered {
            (alert_type == AlertType::OnTrue).then_some(Transition::Triggered {
                episode: state.episode,
                repeat: true,
            })
        } else if state.exceeded >= threshold.exceeded_limit {
            state.triggered = true;
            state.episode += 1;
            Some(Transition::Triggered {
                episode: state.episode,
                repeat: false,
            })
        } else {
            None
        }
    } else {
        state.exceeded = 0;
        if state.triggered {
            state.triggered = false;
            Some(Transition::Resolved {
                episode: state.episode,
            })
        } else {
            None
        }
    }
}

impl Trigger {
    /// Whether any group has an open alert.
    pub fn triggered(&self) -> bool {
        self.state.groups.values().any(|group| group.triggered)
    }

    /// Whether it is due at `now_ns`.
    pub fn due(&self, now_ns: i64) -> bool {
        !self.disabled
            && self.state.last_evaluated_ns.is_none_or(|last| {
                now_ns.saturating_sub(last) >= self.frequency.saturating_mul(1_000_000_000)
            })
    }
}

/// The fields of a create or update request.
#[derive(Debug)]
pub struct TriggerRequest {
    pub name: Option<String>,
    pub description: Option<String>,
    pub disabled: Option<bool>,
    /// A spec given inline.
    pub query: Option<QuerySpec>,
    pub query_id: Option<String>,
    pub frequency: Option<i64>,
    pub alert_type: Option<AlertType>,
    pub threshold: Option<Threshold>,
    pub recipients: Option<Vec<String>>,
}

impl TriggerRequest {
    /// Reads a body; errors name the bad field.
    pub fn from_json(body: &Value) -> Result<TriggerRequest> {
        let object = object_with(
            body,
            &[
                "name",
                "description",
                "disabled",
                "query",
                "query_id",
                "frequency",
                "alert_type",
                "threshold",
                "recipients",
                "id",
                "triggered",
                "dataset",
                "created_at",
                "updated_at",
                "state",
            ],
        )?;
        let query = match object.get("query") {
            None | Some(Value::Null) => None,
            Some(value) => Some(
                QuerySpec::from_value(value.clone())
                    .map_err(|error| AlertError::Invalid(format!("query.{error}")))?,
            ),
        };
        let alert_type = match optional_string(object, "alert_type", 32)?.as_deref() {
            None => None,
            Some("on_change") => Some(AlertType::OnChange),
            Some("on_true") => Some(AlertType::OnTrue),
            Some(other) => {
                return Err(AlertError::invalid(
                    "alert_type",
                    format!("{other:?} is not on_change or on_true"),
                ));
            }
        };
        Ok(TriggerRequest {
            name: optional_string(object, "name", MAX_NAME_BYTES)?,
            description: optional_string(object, "description", MAX_NAME_BYTES)?,
            disabled: optional_bool(object, "disabled")?,
            query,
            query_id: optional_string(object, "query_id", 256)?,
            frequency: optional_i64(object, "frequency")?,
            alert_type,
            threshold: match object.get("threshold") {
                None | Some(Value::Null) => None,
                Some(Value::Object(threshold)) => Some(read_threshold(threshold)?),
                Some(_) => return Err(AlertError::invalid("threshold", "expected an object")),
            },
            recipients: object
                .contains_key("recipients")
                .then(|| recipient_ids(object))
                .transpose()?,
        })
    }
}

fn read_threshold(object: &Map<String, Value>) -> Result<Threshold> {
    let named = |error: AlertError| AlertError::Invalid(format!("threshold.{error}"));
    if let Some(key) = object
        .keys()
        .find(|key| !["op", "value", "exceeded_limit"].contains(&key.as_str()))
    {
        return Err(AlertError::invalid(
            &format!("threshold.{key}"),
            "unknown field",
        ));
    }
    let op = optional_string(object, "op", 8)
        .map_err(named)?
        .ok_or_else(|| AlertError::invalid("threshold.op", "required"))?;
    if ![">", ">=", "<", "<="].contains(&op.as_str()) {
        return Err(AlertError::invalid(
            "threshold.op",
            format!("{op:?} is not one of >, >=, <, <="),
        ));
    }
    let value = optional_f64(object, "value")
        .map_err(named)?
        .ok_or_else(|| AlertError::invalid("threshold.value", "required"))?;
    let limit = optional_i64(object, "exceeded_limit")
        .map_err(named)?
        .unwrap_or(1);
    if !(1..=MAX_EXCEEDED_LIMIT).contains(&limit) {
        return Err(AlertError::invalid(
            "threshold.exceeded_limit",
            format!("must be 1 to {MAX_EXCEEDED_LIMIT}"),
        ));
    }
    Ok(Threshold {
        op,
        value,
        exceeded_limit: limit as u32,
    })
}

/// Checks a trigger's query and frequency by Honeycomb's rules; returns the
/// name of the calculation's value in results.
pub fn check_query(spec: &QuerySpec, frequency: i64, now_ns: i64) -> Result<String> {
    if !(MIN_FREQUENCY_SECS..=MAX_FREQUENCY_SECS).contains(&frequency) {
        return Err(AlertError::invalid(
            "frequency",
            format!("must be {MIN_FREQUENCY_SECS} to {MAX_FREQUENCY_SECS} seconds"),
        ));
    }
    if frequency % 60 != 0 {
        return Err(AlertError::invalid(
            "frequency",
            "must be a multiple of 60 seconds",
        ));
    }
    if spec.calculations.len() != 1 {
        return Err(AlertError::invalid(
            "query.calculations",
            "a trigger's query has exactly one calculation",
        ));
    }
    let op = spec.calculations[0].op.to_ascii_uppercase();
    if op == "HEATMAP" || op == "CONCURRENCY" {
        return Err(AlertError::invalid(
            "query.calculations[0].op",
            format!("{op} cannot be used in a trigger"),
        ));
    }
    if spec.start_time.is_some() || spec.end_time.is_some() {
        return Err(AlertError::invalid(
            if spec.start_time.is_some() {
                "query.start_time"
            } else {
                "query.end_time"
            },
            "a trigger's query uses a relative time_range, not absolute times",
        ));
    }
    if !spec.orders.is_empty() {
        return Err(AlertError::invalid(
            "query.orders",
            "not allowed in a trigger's query",
        ));
    }
    if spec.limit.is_some() {
        return Err(AlertError::invalid(
            "query.limit",
            "not allowed in a trigger's query",
        ));
    }
    let range = spec
        .time_range
        .unwrap_or(quarry_query::spec::DEFAULT_TIME_RANGE_SECS as f64);
    if range > MAX_TIME_RANGE_SECS {
        return Err(AlertError::invalid(
            "query.time_range",
            "at most 86400 seconds for a trigger",
        ));
    }
    if range > frequency as f64 * MAX_RANGE_PER_FREQUENCY {
        return Err(AlertError::invalid(
            "query.time_range",
            "at most four times the trigger's frequency",
        ));
    }
    let valid = ValidSpec::new(spec, now_ns)
        .map_err(|error| AlertError::Invalid(format!("query.{error}")))?;
    valid
        .calculations
        .first()
        .map(|calculation| calculation.name.clone())
        .ok_or_else(|| AlertError::invalid("query.calculations", "required"))
}

/// A trigger as the API shows it.
pub fn trigger_json(trigger: &Trigger) -> Value {
    let mut value = serde_json::json!({
        "id": trigger.id,
        "dataset": trigger.dataset,
        "name": trigger.name,
        "description": trigger.description,
        "disabled": trigger.disabled,
        "query": trigger.query,
        "frequency": trigger.frequency,
        "alert_type": trigger.alert_type,
        "threshold": trigger.threshold,
        "recipients": trigger.recipients.iter().map(|id| serde_json::json!({"id": id})).collect::<Vec<_>>(),
        "triggered": trigger.triggered(),
        "created_at": trigger.created_at,
        "updated_at": trigger.updated_at,
        "state": {
            "groups": trigger.state.groups.iter().map(|(key, group)| serde_json::json!({
                "group": serde_json::from_str::<Value>(key).unwrap_or(Value::Null),
                "triggered": group.triggered,
                "value": group.value,
                "exceeded": group.exceeded,
            })).collect::<Vec<_>>(),
            "last_evaluated": trigger.state.last_evaluated_ns.map(crate::service::rfc3339),
            "last_value": trigger.state.history.last().and_then(|entry| entry.value),
            "history": trigger.state.history,
            "transitions": trigger.state.transitions,
        },
    });
    if let (Some(query_id), Value::Object(map)) = (&trigger.query_id, &mut value) {
        map.insert("query_id".into(), Value::String(query_id.clone()));
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn threshold(limit: u32) -> Threshold {
        Threshold {
            op: ">".into(),
            value: 10.0,
            exceeded_limit: limit,
        }
    }

    #[test]
    fn a_group_triggers_after_the_limit_and_resolves_once() {
        let mut group = GroupState::default();
        let t = threshold(2);
        assert_eq!(step(&mut group, Some(11.0), &t, AlertType::OnChange), None);
        assert_eq!(
            step(&mut group, Some(12.0), &t, AlertType::OnChange),
            Some(Transition::Triggered {
                episode: 1,
                repeat: false
            })
        );
        assert_eq!(step(&mut group, Some(13.0), &t, AlertType::OnChange), None);
        assert_eq!(
            step(&mut group, None, &t, AlertType::OnChange),
            Some(Transition::Resolved { episode: 1 })
        );
        assert_eq!(step(&mut group, Some(1.0), &t, AlertType::OnChange), None);
    }

    #[test]
    fn the_most_exceeding_value_follows_the_threshold_direction() {
        let above = threshold(1);
        assert_eq!(above.most_exceeding([3.0, 9.0, 4.0]), Some(9.0));
        let below = Threshold {
            op: "<=".into(),
            ..threshold(1)
        };
        assert_eq!(below.most_exceeding([3.0, 9.0, 1.5]), Some(1.5));
        assert_eq!(below.most_exceeding([]), None);
    }

    #[test]
    fn on_true_repeats_while_exceeded() {
        let mut group = GroupState::default();
        let t = threshold(1);
        assert!(matches!(
            step(&mut group, Some(11.0), &t, AlertType::OnTrue),
            Some(Transition::Triggered { repeat: false, .. })
        ));
        assert!(matches!(
            step(&mut group, Some(11.0), &t, AlertType::OnTrue),
            Some(Transition::Triggered {
                repeat: true,
                episode: 1
            })
        ));
    }

    #[test]
    fn honeycomb_rules_name_the_bad_field() {
        let spec = |value: Value| QuerySpec::from_value(value).unwrap();
        let check = |value: Value, frequency| {
            check_query(&spec(value), frequency, 1_000_000_000_000_000_000)
                .unwrap_err()
                .to_string()
        };
        assert!(
            check(
                json!({"calculations": [{"op": "HEATMAP", "column": "ms"}]}),
                900
            )
            .starts_with("query.calculations[0].op: ")
        );
        assert!(
            check(json!({"calculations": [{"op": "CONCURRENCY"}]}), 900)
                .starts_with("query.calculations[0].op: ")
        );
        assert!(check(json!({"calculations": [{"op": "COUNT"}]}), 30).starts_with("frequency: "));
        assert!(check(json!({"calculations": [{"op": "COUNT"}]}), 90).starts_with("frequency: "));
        assert!(
            check(
                json!({"calculations": [{"op": "COUNT"}], "time_range": 7200}),
                600
            )
            .starts_with("query.time_range: ")
        );
        assert!(check(json!({"calculations": []}), 600).starts_with("query.calculations: "));
        let name = check_query(
            &spec(json!({"calculations": [{"op": "P99", "column": "ms"}], "time_range": 600})),
            300,
            1_000_000_000_000_000_000,
        )
        .unwrap();
        assert_eq!(name, "P99(ms)");
        let error =
            TriggerRequest::from_json(&json!({"threshold": {"op": "=", "value": 1}})).unwrap_err();
        assert!(error.to_string().starts_with("threshold.op: "), "{error}");
        let error = TriggerRequest::from_json(&json!({"alert_type": "sometimes"})).unwrap_err();
        assert!(error.to_string().starts_with("alert_type: "), "{error}");
        let error = TriggerRequest::from_json(
            &json!({"threshold": {"op": ">", "value": 1, "exceeded_limit": 9}}),
        )
        .unwrap_err();
        assert!(
            error.to_string().starts_with("threshold.exceeded_limit: "),
            "{error}"
        );
    }
}
