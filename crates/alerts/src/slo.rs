//! SLOs (`/1/slos/{dataset}`): an SLI expression (true good, false bad, null
//! not counted), a target per million and a period; and the arithmetic of
//! compliance, error budget and burn rate over per-minute good/bad counts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{AlertError, Result};
use crate::fields::{object_with, optional_i64, optional_string};

/// SLOs kept per environment.
pub const MAX_SLOS: usize = 500;
/// Honeycomb's bounds on an SLO's period, in days.
pub const MAX_PERIOD_DAYS: i64 = 90;
/// A minute, in seconds: the width of the kept counts.
pub const MINUTE_SECS: i64 = 60;
/// The standard burn-rate windows reported by GET, in minutes.
pub const STANDARD_WINDOWS: [(&str, i64); 7] = [
    ("5m", 5),
    ("30m", 30),
    ("1h", 60),
    ("2h", 120),
    ("6h", 360),
    ("24h", 1_440),
    ("72h", 4_320),
];
/// The longest window any default policy reads (72 h), in minutes.
pub const LONGEST_WINDOW_MINUTES: i64 = 4_320;

/// An SLO and its kept counts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Slo {
    pub id: String,
    pub dataset: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub sli: Sli,
    pub target_per_million: i64,
    pub time_period_days: i64,
    pub created_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub counts: MinuteCounts,
}

/// The SLI: a calculated-field expression, under an alias.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sli {
    pub alias: String,
    pub expression: String,
}

/// Weighted good and bad events per minute: the SLO's own rollup.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MinuteCounts {
    /// Minutes before this (unix seconds) are final and kept in `minutes`.
    #[serde(default)]
    pub final_until: Option<i64>,
    /// Minute start (unix seconds) -> [good, bad]; minutes with neither are left out.
    #[serde(default)]
    pub minutes: BTreeMap<i64, [f64; 2]>,
}

impl MinuteCounts {
    /// Good and bad over minutes in `[start, end)`, from the kept counts and
    /// `tail` (counts of minutes not final yet).
    pub fn sum(&self, tail: &BTreeMap<i64, [f64; 2]>, start: i64, end: i64) -> [f64; 2] {
        let mut total = [0.0, 0.0];
        for source in [&self.minutes, tail] {
            for (_, [good, bad]) in source.range(start..end) {
                total[0] += good;
                total[1] += bad;
            }
        }
        total
    }

    /// Forgets minutes before `start`.
    pub fn prune(&mut self, start: i64) {
        self.minutes = self.minutes.split_off(&start);
    }
}

/// The allowed fraction of bad events.
pub fn allowed_bad(target_per_million: i64) -> f64 {
    (1_000_000 - target_per_million) as f64 / 1_000_000.0
}

/// Compliance over good and bad: 1 with no events.
pub fn compliance(good: f64, bad: f64) -> f64 {
    let total = good + bad;
    if total > 0.0 { good / total } else { 1.0 }
}

/// The fraction of the error budget left (negative when overspent).
pub fn budget_remaining(good: f64, bad: f64, target_per_million: i64) -> f64 {
    let total = good + bad;
    let allowed = allowed_bad(target_per_million);
    // A target of 100 % (not accepted by the API) would have no budget at all.
    if total <= 0.0 || allowed <= 0.0 {
        return 1.0;
    }
    1.0 - (bad / total) / allowed
}

/// How fast the budget burns: the bad fraction over the allowed one (1 spends
/// exactly the budget over the period).
pub fn burn_rate(good: f64, bad: f64, target_per_million: i64) -> f64 {
    let total = good + bad;
    let allowed = allowed_bad(target_per_million);
    if total <= 0.0 {
        0.0
    } else if allowed <= 0.0 {
        if bad > 0.0 { f64::MAX } else { 0.0 }
    } else {
        (bad / total) / allowed
    }
}

/// The end (exclusive) of the minute holding `now_s`: windows end there, so the
/// current minute counts and every window is whole minutes.
pub fn window_end(now_s: i64) -> i64 {
    now_s.div_euclid(MINUTE_SECS) * MINUTE_SECS + MINUTE_SECS
}

/// The fields of a create or update request.
#[derive(Debug, Default)]
pub struct SloRequest {
    pub name: Option<String>,
    pub description: Option<String>,
    pub sli: Option<Sli>,
    pub target_per_million: Option<i64>,
    pub time_period_days: Option<i64>,
}

impl SloRequest {
    /// Reads and checks a body; errors name the bad field.
    pub fn from_json(body: &Value) -> Result<SloRequest> {
        let object = object_with(
            body,
            &[
                "name",
                "description",
                "sli",
                "target_per_million",
                "time_period_days",
                "id",
                "dataset",
                "created_at",
                "updated_at",
            ],
        )?;
        let sli = match object.get("sli") {
            None | Some(Value::Null) => None,
            Some(Value::Object(sli)) => {
                let named = |error: AlertError| AlertError::Invalid(format!("sli.{error}"));
                if let Some(key) = sli
                    .keys()
                    .find(|k| !["alias", "expression"].contains(&k.as_str()))
                {
                    return Err(AlertError::invalid(&format!("sli.{key}"), "unknown field"));
                }
                let expression = optional_string(sli, "expression", 16_384)
                    .map_err(named)?
                    .filter(|e| !e.trim().is_empty())
                    .ok_or_else(|| {
                        AlertError::invalid(
                            "sli.expression",
                            "required: a calculated-field expression returning true, false or null",
                        )
                    })?;
                let alias = optional_string(sli, "alias", 255)
                    .map_err(named)?
                    .unwrap_or_else(|| "sli".to_owned());
                Some(Sli { alias, expression })
            }
            Some(_) => return Err(AlertError::invalid("sli", "expected an object")),
        };
        let request = SloRequest {
            name: optional_string(object, "name", 1_024)?,
            description: optional_string(object, "description", 1_024)?,
            sli,
            target_per_million: optional_i64(object, "target_per_million")?,
            time_period_days: optional_i64(object, "time_period_days")?,
        };
        if let Some(target) = request.target_per_million
            && !(0..1_000_000).contains(&target)
        {
            return Err(AlertError::invalid(
                "target_per_million",
                "must be 0 to 999999",
            ));
        }
        if let Some(days) = request.time_period_days
            && !(1..=MAX_PERIOD_DAYS).contains(&days)
        {
            return Err(AlertError::invalid(
                "time_period_days",
                format!("must be 1 to {MAX_PERIOD_DAYS}"),
            ));
        }
        Ok(request)
    }
}

/// The SLO's report at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct SloReport {
    /// Unix seconds: the period's window `[window_start, window_end)`.
    pub window_start: i64,
    pub window_end: i64,
    pub good: f64,
    pub bad: f64,
    /// Percent, as Honeycomb reports it.
    pub compliance: f64,
    /// Percent of the period's error budget left.
    pub budget_remaining: f64,
    /// Window name -> burn rate.
    pub burn_rates: BTreeMap<String, f64>,
    /// `rollup` (kept counts plus the last minutes) or `raw`.
    pub source: String,
    /// Per history bucket: counts, and compliance and budget left from the
    /// window's start to the bucket's end (the burn-down).
    pub history: Vec<HistoryPoint>,
}

/// One bucket of an SLO's history.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryPoint {
    /// Start of the bucket, unix seconds.
    pub time: i64,
    pub good: f64,
    pub bad: f64,
    pub compliance: f64,
    pub budget_remaining: f64,
}

/// Builds a report from per-minute counts (kept plus tail).
pub fn report(
    slo: &Slo,
    tail: &BTreeMap<i64, [f64; 2]>,
    now_s: i64,
    history_step: i64,
) -> SloReport {
    let end = window_end(now_s);
    let start = end - slo.time_period_days * 86_400;
    let [good, bad] = slo.counts.sum(tail, start, end);
    let burn_rates = STANDARD_WINDOWS
        .iter()
        .map(|(name, minutes)| {
            let [g, b] = slo.counts.sum(tail, end - minutes * MINUTE_SECS, end);
            ((*name).to_owned(), burn_rate(g, b, slo.target_per_million))
        })
        .collect();
    let step = history_step.max(MINUTE_SECS);
    let mut history = Vec::new();
    let (mut cum_good, mut cum_bad) = (0.0, 0.0);
    let mut time = start;
    while time < end {
        let next = (time + step).min(end);
        let [g, b] = slo.counts.sum(tail, time, next);
        cum_good += g;
        cum_bad += b;
        history.push(HistoryPoint {
            time,
            good: g,
            bad: b,
            compliance: 100.0 * compliance(cum_good, cum_bad),
            budget_remaining: 100.0 * budget_remaining(cum_good, cum_bad, slo.target_per_million),
        });
        time = next;
    }
    SloReport {
        window_start: start,
        window_end: end,
        good,
        bad,
        compliance: 100.0 * compliance(good, bad),
        budget_remaining: 100.0 * budget_remaining(good, bad, slo.target_per_million),
        burn_rates,
        source: "rollup".into(),
        history,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn budget_and_burn_follow_the_target() {
        // 99.9 %: 1 bad in 1000 spends the budget exactly.
        assert!((burn_rate(999.0, 1.0, 999_000) - 1.0).abs() < 1e-9);
        assert!((budget_remaining(999.0, 1.0, 999_000)).abs() < 1e-9);
        assert!((budget_remaining(1998.0, 1.0, 999_000) - 0.4997).abs() < 1e-3);
        assert_eq!(compliance(0.0, 0.0), 1.0);
        assert_eq!(burn_rate(0.0, 0.0, 999_000), 0.0);
        assert_eq!(window_end(119), 120);
        assert_eq!(window_end(120), 180);
    }

    #[test]
    fn sums_read_kept_minutes_and_the_tail() {
        let mut counts = MinuteCounts::default();
        counts.minutes.insert(0, [1.0, 2.0]);
        counts.minutes.insert(60, [3.0, 0.0]);
        let tail = BTreeMap::from([(120, [5.0, 1.0])]);
        assert_eq!(counts.sum(&tail, 0, 180), [9.0, 3.0]);
        assert_eq!(counts.sum(&tail, 60, 120), [3.0, 0.0]);
        counts.prune(60);
        assert_eq!(counts.sum(&tail, 0, 180), [8.0, 1.0]);
    }

    #[test]
    fn requests_name_the_bad_field() {
        let error = SloRequest::from_json(&json!({"target_per_million": 1_000_000})).unwrap_err();
        assert!(error.to_string().starts_with("target_per_million: "));
        let error = SloRequest::from_json(&json!({"time_period_days": 0})).unwrap_err();
        assert!(error.to_string().starts_with("time_period_days: "));
        let error = SloRequest::from_json(&json!({"sli": {"alias": "x"}})).unwrap_err();
        assert!(error.to_string().starts_with("sli.expression: "));
    }
}
