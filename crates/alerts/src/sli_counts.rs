//! Keeping an SLO's per-minute good and bad counts up to date, and answering
//! its report from them (or, to check them, from raw events).
//!
//! Minutes that ended [`SETTLE_SECS`] ago are final: they are counted once,
//! kept in the SLO's state and never rescanned. The minutes after them (the
//! tail, a few at most) are counted afresh for every report, so a report always
//! covers every event up to now.

use std::collections::BTreeMap;

use quarry_query::spec::{CalculatedField, Calculation, QueryResult, QuerySpec, TimeValue};
use serde_json::Value;

use crate::error::{AlertError, Result};
use crate::service::Alerts;
use crate::slo::{
    LONGEST_WINDOW_MINUTES, MINUTE_SECS, STANDARD_WINDOWS, Slo, SloReport, budget_remaining,
    burn_rate, compliance, report, window_end,
};

/// Seconds after a minute ends before its counts are final (late events of a
/// final minute are not counted by the kept counts).
pub const SETTLE_SECS: i64 = 60;
/// Minutes counted per query while catching up (the query API's bucket limit).
pub const MINUTES_PER_QUERY: i64 = 1_000;
/// The SLI's name inside the counting queries.
const SLI_FIELD: &str = "__quarry_sli";
/// The default step of a report's history, seconds.
pub const DEFAULT_HISTORY_STEP_SECS: i64 = 3_600;

/// The spec counting good and bad events per `granularity` over `[start, end)`.
pub fn counts_spec(expression: &str, start: i64, end: i64, granularity: i64) -> QuerySpec {
    QuerySpec {
        calculations: vec![Calculation {
            op: "COUNT".into(),
            column: None,
        }],
        breakdowns: vec![SLI_FIELD.into()],
        calculated_fields: vec![CalculatedField {
            name: SLI_FIELD.into(),
            expression: expression.to_owned(),
        }],
        start_time: Some(TimeValue::Seconds(start as f64)),
        end_time: Some(TimeValue::Seconds(end as f64)),
        granularity: Some(granularity as f64),
        // true, false and null.
        limit: Some(3),
        ..QuerySpec::default()
    }
}

/// Which side of the SLI a group key is: Some(true) good, Some(false) bad.
fn side(key: &serde_json::Map<String, Value>) -> Option<bool> {
    match key.get(SLI_FIELD) {
        Some(Value::Bool(good)) => Some(*good),
        Some(Value::String(text)) if text == "true" => Some(true),
        Some(Value::String(text)) if text == "false" => Some(false),
        _ => None,
    }
}

/// Per-minute [good, bad] from a counting query's series.
fn minutes_of(result: &QueryResult) -> BTreeMap<i64, [f64; 2]> {
    let mut minutes = BTreeMap::new();
    for point in &result.series {
        let (Some(good), Some(time)) = (side(&point.key), point.time.as_f64()) else {
            continue;
        };
        let count = point
            .values
            .get("COUNT")
            .and_then(Value::as_f64)
            .unwrap_or(0.0);
        let entry: &mut [f64; 2] = minutes.entry(time as i64).or_default();
        entry[usize::from(!good)] += count;
    }
    minutes
}

/// [good, bad] over a query's whole range, from its groups.
fn totals_of(result: &QueryResult) -> [f64; 2] {
    let mut totals = [0.0, 0.0];
    for group in &result.groups {
        if let Some(good) = side(&group.key) {
            totals[usize::from(!good)] += group
                .values
                .get("COUNT")
                .and_then(Value::as_f64)
                .unwrap_or(0.0);
        }
    }
    totals
}

/// An SLO as the API lists it (without its counts).
pub fn slo_json(slo: &Slo) -> Value {
    serde_json::json!({
        "id": slo.id,
        "dataset": slo.dataset,
        "name": slo.name,
        "description": slo.description,
        "sli": slo.sli,
        "target_per_million": slo.target_per_million,
        "time_period_days": slo.time_period_days,
        "created_at": slo.created_at,
        "updated_at": slo.updated_at,
    })
}

impl Alerts {
    /// Counts [good, bad] per minute over `[start, end)`, in chunks the query
    /// API accepts.
    async fn count_minutes(
        &self,
        env: &str,
        slo: &Slo,
        start: i64,
        end: i64,
        now_ns: i64,
    ) -> Result<BTreeMap<i64, [f64; 2]>> {
        let mut minutes = BTreeMap::new();
        let mut from = start;
        while from < end {
            let to = (from + MINUTES_PER_QUERY * MINUTE_SECS).min(end);
            let spec = counts_spec(&slo.sli.expression, from, to, MINUTE_SECS);
            match self.query(env, &slo.dataset, &spec, now_ns).await {
                Ok(result) => minutes.extend(minutes_of(&result)),
                // No dataset yet: no events either.
                Err(AlertError::NotFound(_)) => {}
                Err(error) => return Err(error),
            }
            from = to;
        }
        Ok(minutes)
    }

    /// Brings an SLO's kept counts up to the last final minute at `now_ns` and
    /// returns the SLO with them, and the tail's counts.
    pub(crate) async fn refresh_slo(
        &self,
        env: &str,
        dataset: &str,
        id: &str,
        now_ns: i64,
    ) -> Result<(Slo, BTreeMap<i64, [f64; 2]>)> {
        let mut slo = self.slo(env, dataset, id).await?;
        let now_s = now_ns.div_euclid(1_000_000_000);
        let end = window_end(now_s);
        let keep_from =
            end - (slo.time_period_days * 1_440).max(LONGEST_WINDOW_MINUTES) * MINUTE_SECS;
        let final_until = (now_s - SETTLE_SECS).div_euclid(MINUTE_SECS) * MINUTE_SECS;
        let counted_until = slo.counts.final_until.unwrap_or(keep_from).max(keep_from);
        if counted_until < final_until {
            let fresh = self
                .count_minutes(env, &slo, counted_until, final_until, now_ns)
                .await?;
            let previous = slo.counts.final_until;
            let updated = {
                let mut counts = slo.counts.clone();
                counts.minutes.extend(fresh);
                counts.final_until = Some(final_until);
                counts.prune(keep_from);
                counts
            };
            // Another refresh may have won meanwhile; keep whichever got further.
            let stored = self
                .mutate(|document| {
                    let stored = document
                        .environments
                        .get_mut(env)
                        .and_then(|env| env.slos.iter_mut().find(|s| s.id == id))
                        .ok_or_else(|| AlertError::NotFound(format!("SLO not found: {id}")))?;
                    if stored.counts.final_until == previous && stored.sli == slo.sli {
                        stored.counts = updated;
                    }
                    Ok(stored.clone())
                })
                .await?;
            slo = stored;
        }
        let tail_start = slo.counts.final_until.unwrap_or(keep_from).max(keep_from);
        let tail = self
            .count_minutes(env, &slo, tail_start, end, now_ns)
            .await?;
        Ok((slo, tail))
    }

    /// `GET /1/slos/{dataset}/{id}`: the SLO with its compliance, budget, burn
    /// rates and history at alert time; `raw` answers from raw events instead of
    /// the kept counts (no history then), to check them.
    pub async fn slo_report(
        &self,
        env: &str,
        dataset: &str,
        id: &str,
        raw: bool,
        history_step: Option<i64>,
    ) -> Result<Value> {
        let now_ns = self.now_ns();
        let report = if raw {
            let slo = self.slo(env, dataset, id).await?;
            self.raw_report(env, &slo, now_ns).await?
        } else {
            let (slo, tail) = self.refresh_slo(env, dataset, id, now_ns).await?;
            report(
                &slo,
                &tail,
                now_ns.div_euclid(1_000_000_000),
                history_step.unwrap_or(DEFAULT_HISTORY_STEP_SECS),
            )
        };
        let slo = self.slo(env, dataset, id).await?;
        let mut value = slo_json(&slo);
        if let (Value::Object(map), Ok(Value::Object(report))) =
            (&mut value, serde_json::to_value(&report))
        {
            map.extend(report);
        }
        Ok(value)
    }

    /// The report from raw events: one query per window.
    async fn raw_report(&self, env: &str, slo: &Slo, now_ns: i64) -> Result<SloReport> {
        let end = window_end(now_ns.div_euclid(1_000_000_000));
        let total = |start: i64| {
            let spec = counts_spec(&slo.sli.expression, start, end, end - start);
            async move {
                match self.query(env, &slo.dataset, &spec, now_ns).await {
                    Ok(result) => Ok(totals_of(&result)),
                    Err(AlertError::NotFound(_)) => Ok([0.0, 0.0]),
                    Err(error) => Err(error),
                }
            }
        };
        let start = end - slo.time_period_days * 86_400;
        let [good, bad] = total(start).await?;
        let mut burn_rates = BTreeMap::new();
        for (name, minutes) in STANDARD_WINDOWS {
            let [g, b] = total(end - minutes * MINUTE_SECS).await?;
            burn_rates.insert(name.to_owned(), burn_rate(g, b, slo.target_per_million));
        }
        Ok(SloReport {
            window_start: start,
            window_end: end,
            good,
            bad,
            compliance: 100.0 * compliance(good, bad),
            budget_remaining: 100.0 * budget_remaining(good, bad, slo.target_per_million),
            burn_rates,
            source: "raw".into(),
            history: Vec::new(),
        })
    }
}
