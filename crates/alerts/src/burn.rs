//! Burn alerts (`/1/burn_alerts/{dataset}`): Honeycomb's `exhaustion_time` and
//! `budget_rate`, and Quarry's default `multiwindow` (the multi-window,
//! multi-burn-rate policy of Google's SRE workbook).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{AlertError, Result};
use crate::fields::{object_with, optional_i64, optional_string, recipient_ids};
use crate::slo::{LONGEST_WINDOW_MINUTES, MINUTE_SECS, MinuteCounts, burn_rate};

/// Burn alerts kept per environment.
pub const MAX_BURN_ALERTS: usize = 1_000;
/// Honeycomb's bound on `exhaustion_minutes` (7 days).
pub const MAX_EXHAUSTION_MINUTES: i64 = 10_080;
/// The window an exhaustion forecast extrapolates from, at least and at most.
pub const MIN_FORECAST_MINUTES: i64 = 60;

/// One pair of windows of the multi-window policy: both windows must burn at
/// least `burn_rate` times the sustainable rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowPair {
    pub long_minutes: i64,
    pub short_minutes: i64,
    pub burn_rate: f64,
    /// `page` or `ticket`.
    pub severity: String,
}

/// The default policy: page at 14.4x over 1 h and 5 min, and 6x over 6 h and
/// 30 min; ticket at 3x over 24 h and 2 h, and 1x over 72 h and 12 h.
pub fn default_policy() -> Vec<WindowPair> {
    let pair = |long, short, rate, severity: &str| WindowPair {
        long_minutes: long,
        short_minutes: short,
        burn_rate: rate,
        severity: severity.to_owned(),
    };
    vec![
        pair(60, 5, 14.4, "page"),
        pair(360, 30, 6.0, "page"),
        pair(1_440, 120, 3.0, "ticket"),
        pair(4_320, 720, 1.0, "ticket"),
    ]
}

/// What a burn alert watches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "alert_type", rename_all = "snake_case")]
pub enum BurnPolicy {
    /// Fires when the budget would run out within `exhaustion_minutes` at the
    /// recent rate.
    ExhaustionTime { exhaustion_minutes: i64 },
    /// Fires when the budget fell by at least the threshold (per million of
    /// the budget) within the window.
    BudgetRate {
        budget_rate_window_minutes: i64,
        budget_rate_decrease_threshold_per_million: i64,
    },
    /// Fires when both windows of any pair burn at their rate.
    Multiwindow { windows: Vec<WindowPair> },
}

/// A burn alert and its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BurnAlert {
    pub id: String,
    pub dataset: String,
    pub slo_id: String,
    #[serde(flatten)]
    pub policy: BurnPolicy,
    #[serde(default)]
    pub description: String,
    pub recipients: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub triggered: bool,
    #[serde(default)]
    pub episode: u64,
    /// The severity of the open alert (`page`/`ticket`; `page` for Honeycomb's types).
    #[serde(default)]
    pub severity: String,
    /// The last value checked (minutes left, budget decrease, or burn rate).
    #[serde(default)]
    pub value: Option<f64>,
}

/// A burn alert's verdict at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub firing: bool,
    pub severity: String,
    /// What was compared: minutes left, budget fall per million, or burn rate.
    pub value: f64,
    /// What it was compared with.
    pub threshold: f64,
    /// Which window(s), for people.
    pub detail: String,
}

/// Checks `policy` at `end` (the windows' end, unix seconds).
pub fn verdict(
    policy: &BurnPolicy,
    counts: &MinuteCounts,
    tail: &std::collections::BTreeMap<i64, [f64; 2]>,
    end: i64,
    target_per_million: i64,
    period_days: i64,
    budget_left: f64,
) -> Verdict {
    let rate = |minutes: i64| {
        let [good, bad] = counts.sum(tail, end - minutes * MINUTE_SECS, end);
        burn_rate(good, bad, target_per_million)
    };
    let period_minutes = (period_days * 1_440) as f64;
    match policy {
        BurnPolicy::ExhaustionTime { exhaustion_minutes } => {
            let lookback =
                (*exhaustion_minutes).clamp(MIN_FORECAST_MINUTES, LONGEST_WINDOW_MINUTES);
            let recent = rate(lookback);
            // A burn rate of 1 spends the whole budget over the period.
            let minutes_left = if budget_left <= 0.0 {
                0.0
            } else if recent <= 0.0 {
                f64::MAX
            } else {
                budget_left * period_minutes / recent
            };
            Verdict {
                firing: minutes_left < *exhaustion_minutes as f64,
                severity: "page".into(),
                value: minutes_left.min(1e12),
                threshold: *exhaustion_minutes as f64,
                detail: format!(
                    "budget exhausted in {:.0} minutes at the last {lookback} minutes' rate",
                    minutes_left.min(1e12)
                ),
            }
        }
        BurnPolicy::BudgetRate {
            budget_rate_window_minutes,
            budget_rate_decrease_threshold_per_million,
        } => {
            let fallen = rate(*budget_rate_window_minutes) * *budget_rate_window_minutes as f64
                / period_minutes
                * 1_000_000.0;
            Verdict {
                firing: fallen >= *budget_rate_decrease_threshold_per_million as f64,
                severity: "page".into(),
                value: fallen,
                threshold: *budget_rate_decrease_threshold_per_million as f64,
                detail: format!(
                    "budget fell {:.0} per million in {budget_rate_window_minutes} minutes",
                    fallen
                ),
            }
        }
        BurnPolicy::Multiwindow { windows } => {
            let mut best: Option<Verdict> = None;
            for pair in windows {
                let long = rate(pair.long_minutes);
                let short = rate(pair.short_minutes);
                let firing = long >= pair.burn_rate && short >= pair.burn_rate;
                let candidate = Verdict {
                    firing,
                    severity: pair.severity.clone(),
                    value: long.min(short),
                    threshold: pair.burn_rate,
                    detail: format!(
                        "burn rate {long:.2}x over {} min and {short:.2}x over {} min (limit {}x)",
                        pair.long_minutes, pair.short_minutes, pair.burn_rate
                    ),
                };
                // The first firing pair wins (pages come first in the policy).
                match &best {
                    Some(current) if current.firing || !firing => {}
                    _ => best = Some(candidate),
                }
            }
            best.unwrap_or(Verdict {
                firing: false,
                severity: "page".into(),
                value: 0.0,
                threshold: 0.0,
                detail: String::new(),
            })
        }
    }
}

/// The fields of a create or update request.
#[derive(Debug)]
pub struct BurnAlertRequest {
    pub slo_id: Option<String>,
    pub policy: Option<BurnPolicy>,
    pub description: Option<String>,
    pub recipients: Option<Vec<String>>,
}

impl BurnAlertRequest {
    /// Reads and checks a body; errors name the bad field.
    pub fn from_json(body: &Value) -> Result<BurnAlertRequest> {
        let object = object_with(
            body,
            &[
                "alert_type",
                "exhaustion_minutes",
                "budget_rate_window_minutes",
                "budget_rate_decrease_threshold_per_million",
                "windows",
                "slo",
                "slo_id",
                "description",
                "recipients",
                "id",
                "dataset",
                "created_at",
                "updated_at",
                "triggered",
            ],
        )?;
        let slo_id = match object.get("slo") {
            Some(Value::Object(slo)) => Some(
                slo.get("id")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| AlertError::invalid("slo.id", "expected an SLO id"))?,
            ),
            Some(_) => return Err(AlertError::invalid("slo", "expected {\"id\": ...}")),
            None => optional_string(object, "slo_id", 256)?,
        };
        let alert_type = optional_string(object, "alert_type", 32)?;
        let names_policy = [
            "alert_type",
            "exhaustion_minutes",
            "budget_rate_window_minutes",
            "windows",
        ]
        .iter()
        .any(|key| object.contains_key(*key));
        let kind = match alert_type.as_deref() {
            Some(kind) => kind,
            None if object.contains_key("exhaustion_minutes") => "exhaustion_time",
            None if object.contains_key("budget_rate_window_minutes") => "budget_rate",
            None => "multiwindow",
        };
        let policy = if names_policy {
            Some(read_policy(kind, object)?)
        } else {
            None
        };
        Ok(BurnAlertRequest {
            slo_id,
            policy,
            description: optional_string(object, "description", 1_024)?,
            recipients: object
                .contains_key("recipients")
                .then(|| recipient_ids(object))
                .transpose()?,
        })
    }
}

/// The policy of `kind` from the request's fields.
fn read_policy(kind: &str, object: &serde_json::Map<String, Value>) -> Result<BurnPolicy> {
    match kind {
        "multiwindow" => Ok(BurnPolicy::Multiwindow {
            windows: match object.get("windows") {
                None | Some(Value::Null) => default_policy(),
                Some(value) => read_windows(value)?,
            },
        }),
        "exhaustion_time" => {
            let minutes = optional_i64(object, "exhaustion_minutes")?.ok_or_else(|| {
                AlertError::invalid("exhaustion_minutes", "required for exhaustion_time")
            })?;
            if !(0..=MAX_EXHAUSTION_MINUTES).contains(&minutes) {
                return Err(AlertError::invalid(
                    "exhaustion_minutes",
                    format!("must be 0 to {MAX_EXHAUSTION_MINUTES}"),
                ));
            }
            Ok(BurnPolicy::ExhaustionTime {
                exhaustion_minutes: minutes,
            })
        }
        "budget_rate" => {
            let window = optional_i64(object, "budget_rate_window_minutes")?.ok_or_else(|| {
                AlertError::invalid("budget_rate_window_minutes", "required for budget_rate")
            })?;
            if !(60..=LONGEST_WINDOW_MINUTES).contains(&window) {
                return Err(AlertError::invalid(
                    "budget_rate_window_minutes",
                    format!("must be 60 to {LONGEST_WINDOW_MINUTES}"),
                ));
            }
            let threshold = optional_i64(object, "budget_rate_decrease_threshold_per_million")?
                .ok_or_else(|| {
                    AlertError::invalid(
                        "budget_rate_decrease_threshold_per_million",
                        "required for budget_rate",
                    )
                })?;
            if !(1..=1_000_000).contains(&threshold) {
                return Err(AlertError::invalid(
                    "budget_rate_decrease_threshold_per_million",
                    "must be 1 to 1000000",
                ));
            }
            Ok(BurnPolicy::BudgetRate {
                budget_rate_window_minutes: window,
                budget_rate_decrease_threshold_per_million: threshold,
            })
        }
        other => Err(AlertError::invalid(
            "alert_type",
            format!("{other:?} is not one of exhaustion_time, budget_rate, multiwindow"),
        )),
    }
}

fn read_windows(value: &Value) -> Result<Vec<WindowPair>> {
    let list = value
        .as_array()
        .filter(|list| !list.is_empty() && list.len() <= 8)
        .ok_or_else(|| AlertError::invalid("windows", "expected 1 to 8 window pairs"))?;
    list.iter()
        .enumerate()
        .map(|(i, entry)| {
            let pair: WindowPair = serde_json::from_value(entry.clone())
                .map_err(|error| AlertError::invalid(&format!("windows[{i}]"), error))?;
            let field = |name: &str| format!("windows[{i}].{name}");
            if !(1..=LONGEST_WINDOW_MINUTES).contains(&pair.long_minutes) {
                return Err(AlertError::invalid(
                    &field("long_minutes"),
                    format!("must be 1 to {LONGEST_WINDOW_MINUTES}"),
                ));
            }
            if !(1..=pair.long_minutes).contains(&pair.short_minutes) {
                return Err(AlertError::invalid(
                    &field("short_minutes"),
                    "must be 1 to long_minutes",
                ));
            }
            if !(pair.burn_rate.is_finite() && pair.burn_rate > 0.0) {
                return Err(AlertError::invalid(&field("burn_rate"), "must be above 0"));
            }
            if !["page", "ticket"].contains(&pair.severity.as_str()) {
                return Err(AlertError::invalid(
                    &field("severity"),
                    "must be page or ticket",
                ));
            }
            Ok(pair)
        })
        .collect()
}

/// A burn alert as the API shows it.
pub fn burn_alert_json(alert: &BurnAlert) -> Value {
    let mut value = serde_json::to_value(alert).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("slo".into(), serde_json::json!({"id": alert.slo_id}));
        map.insert(
            "recipients".into(),
            Value::Array(
                alert
                    .recipients
                    .iter()
                    .map(|id| serde_json::json!({"id": id}))
                    .collect(),
            ),
        );
        map.remove("episode");
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;

    /// Counts of `minutes` minutes ending at `end`, `bad_per_minute` of 100 bad.
    fn counts(end: i64, minutes: i64, bad: impl Fn(i64) -> f64) -> MinuteCounts {
        let mut counts = MinuteCounts::default();
        for m in 0..minutes {
            let start = end - (m + 1) * 60;
            let b = bad(m);
            counts.minutes.insert(start, [100.0 - b, b]);
        }
        counts
    }

    #[test]
    fn the_default_policy_pages_on_a_fast_burn_but_not_a_blip() {
        let end = 1_000_000 * 60;
        let policy = BurnPolicy::Multiwindow {
            windows: default_policy(),
        };
        // 99 %: 30 % errors for the last hour burns at 30x.
        let fast = counts(end, 4_320, |m| if m < 60 { 30.0 } else { 0.0 });
        let v = verdict(&policy, &fast, &BTreeMap::new(), end, 990_000, 30, 1.0);
        assert!(v.firing, "{v:?}");
        assert_eq!(v.severity, "page");
        // Three minutes of 100 % errors: the 5-minute window burns, the hour not enough.
        let blip = counts(end, 4_320, |m| if m < 3 { 100.0 } else { 0.0 });
        let v = verdict(&policy, &blip, &BTreeMap::new(), end, 990_000, 30, 1.0);
        assert!(!v.firing, "{v:?}");
    }

    #[test]
    fn exhaustion_and_budget_rate_follow_their_thresholds() {
        let end = 1_000_000 * 60;
        let steady = counts(end, 240, |_| 2.0); // 2 % bad at 99 %: burn 2x
        let v = verdict(
            &BurnPolicy::ExhaustionTime {
                exhaustion_minutes: 240,
            },
            &steady,
            &BTreeMap::new(),
            end,
            990_000,
            1,
            0.5,
        );
        // Half of a one-day budget at 2x lasts 6 hours: not within 4.
        assert!((v.value - 360.0).abs() < 1e-6, "{v:?}");
        assert!(!v.firing);
        let v = verdict(
            &BurnPolicy::BudgetRate {
                budget_rate_window_minutes: 60,
                budget_rate_decrease_threshold_per_million: 50_000,
            },
            &steady,
            &BTreeMap::new(),
            end,
            990_000,
            1,
            0.5,
        );
        // 2x for an hour of a day spends 1/12 of the budget: 83,333 per million.
        assert!((v.value - 83_333.333).abs() < 1.0, "{v:?}");
        assert!(v.firing);
    }

    #[test]
    fn requests_default_to_the_multiwindow_policy_and_name_bad_fields() {
        let request =
            BurnAlertRequest::from_json(&json!({"slo": {"id": "s"}, "alert_type": "multiwindow"}))
                .unwrap();
        assert_eq!(
            request.policy,
            Some(BurnPolicy::Multiwindow {
                windows: default_policy()
            })
        );
        let request =
            BurnAlertRequest::from_json(&json!({"slo": {"id": "s"}, "exhaustion_minutes": 60}))
                .unwrap();
        assert_eq!(
            request.policy,
            Some(BurnPolicy::ExhaustionTime {
                exhaustion_minutes: 60
            })
        );
        let error = BurnAlertRequest::from_json(&json!({"alert_type": "budget_rate", "budget_rate_window_minutes": 5, "budget_rate_decrease_threshold_per_million": 1})).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("budget_rate_window_minutes: "),
            "{error}"
        );
        let error = BurnAlertRequest::from_json(
            &json!({"alert_type": "exhaustion_time", "exhaustion_minutes": -1}),
        )
        .unwrap_err();
        assert!(
            error.to_string().starts_with("exhaustion_minutes: "),
            "{error}"
        );
        let error = BurnAlertRequest::from_json(&json!({"alert_type": "sometimes"})).unwrap_err();
        assert!(error.to_string().starts_with("alert_type: "), "{error}");
    }
}
