//! One evaluation pass: every due trigger's query, every SLO's counts and its
//! burn alerts; transitions become notifications in the outbox, written in the
//! same persisted change as the alert state that caused them.

use serde_json::{Map, Value};
use tracing::warn;

use crate::burn::verdict;
use crate::document::Document;
use crate::error::Result;
use crate::notify::{AlertEvent, MAX_OUTBOX, Status, render};
use crate::service::{Alerts, new_id, rfc3339};
use crate::slo::window_end;
use crate::triggers::{
    HistoryEntry, MAX_GROUPS, MAX_HISTORY, MAX_TRANSITIONS, Transition, TransitionEntry, Trigger,
    step,
};

/// What one pass did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct PassReport {
    pub triggers_evaluated: usize,
    pub slos_evaluated: usize,
    pub notifications: usize,
    pub errors: Vec<String>,
}

/// A group's value and exemplars in one evaluation.
struct Observation {
    key: Map<String, Value>,
    value: Option<f64>,
    trace_ids: Vec<String>,
}

impl Alerts {
    /// Evaluates everything due at `now_ns` (alert time).
    pub async fn evaluate(&self, now_ns: i64) -> PassReport {
        let _one_pass = self.evaluating.lock().await;
        let mut report = PassReport::default();
        self.evaluate_triggers(now_ns, &mut report).await;
        self.evaluate_slos(now_ns, &mut report).await;
        report
    }

    async fn evaluate_triggers(&self, now_ns: i64, report: &mut PassReport) {
        let due: Vec<(String, Trigger)> = {
            let document = self.document.lock().await;
            document
                .environments
                .iter()
                .flat_map(|(env, state)| {
                    state
                        .triggers
                        .iter()
                        .filter(|trigger| trigger.due(now_ns))
                        .map(|trigger| (env.clone(), trigger.clone()))
                })
                .collect()
        };
        for (env, trigger) in due {
            report.triggers_evaluated += 1;
            let observed = self
                .query(&env, &trigger.dataset, &trigger.query, now_ns)
                .await
                .map(|result| observations(&trigger, &result));
            let observed = match observed {
                Ok(observed) => Ok(observed),
                // A dataset not written yet has no events: nothing exceeds.
                Err(crate::error::AlertError::NotFound(_)) => Ok(Vec::new()),
                Err(error) => Err(error.to_string()),
            };
            if let Err(error) = &observed {
                report
                    .errors
                    .push(format!("trigger {}: {error}", trigger.id));
            }
            let applied = self
                .mutate(|document| {
                    Ok(apply_trigger(
                        document,
                        &env,
                        &trigger.id,
                        observed,
                        now_ns,
                        &self.config.public_url,
                    ))
                })
                .await;
            match applied {
                Ok(count) => report.notifications += count,
                Err(error) => report
                    .errors
                    .push(format!("trigger {}: {error}", trigger.id)),
            }
        }
    }

    async fn evaluate_slos(&self, now_ns: i64, report: &mut PassReport) {
        let slos: Vec<(String, String, String)> = {
            let document = self.document.lock().await;
            document
                .environments
                .iter()
                .flat_map(|(env, state)| {
                    state
                        .slos
                        .iter()
                        .filter(|slo| state.burn_alerts.iter().any(|b| b.slo_id == slo.id))
                        .map(|slo| (env.clone(), slo.dataset.clone(), slo.id.clone()))
                })
                .collect()
        };
        for (env, dataset, id) in slos {
            report.slos_evaluated += 1;
            match self.evaluate_slo(&env, &dataset, &id, now_ns).await {
                Ok(count) => report.notifications += count,
                Err(error) => report.errors.push(format!("SLO {id}: {error}")),
            }
        }
    }

    async fn evaluate_slo(&self, env: &str, dataset: &str, id: &str, now_ns: i64) -> Result<usize> {
        let (slo, tail) = self.refresh_slo(env, dataset, id, now_ns).await?;
        let now_s = now_ns.div_euclid(1_000_000_000);
        let end = window_end(now_s);
        let state = crate::slo::report(&slo, &tail, now_s, slo.time_period_days * 86_400);
        let budget_left = state.budget_remaining / 100.0;
        let public_url = self.config.public_url.clone();
        self.mutate(|document| {
            let Some(state) = document.environments.get_mut(env) else {
                return Ok(0);
            };
            let mut events = Vec::new();
            for alert in state.burn_alerts.iter_mut().filter(|b| b.slo_id == slo.id) {
                let v = verdict(
                    &alert.policy,
                    &slo.counts,
                    &tail,
                    end,
                    slo.target_per_million,
                    slo.time_period_days,
                    budget_left,
                );
                alert.value = Some(v.value);
                let status = if v.firing && !alert.triggered {
                    alert.triggered = true;
                    alert.episode += 1;
                    alert.severity = v.severity.clone();
                    Some(Status::Triggered)
                } else if !v.firing && alert.triggered {
                    alert.triggered = false;
                    Some(Status::Resolved)
                } else {
                    None
                };
                if let Some(status) = status {
                    let spec =
                        crate::sli_counts::counts_spec(&slo.sli.expression, end - 3_600, end, 60);
                    events.push((
                        alert.recipients.clone(),
                        AlertEvent {
                            source: "burn_alert",
                            status,
                            id: alert.id.clone(),
                            name: format!("SLO {}: burn alert", slo.name),
                            environment: env.to_owned(),
                            dataset: slo.dataset.clone(),
                            description: v.detail.clone(),
                            value: Some(v.value),
                            threshold_op: match &alert.policy {
                                crate::burn::BurnPolicy::ExhaustionTime { .. } => "<".into(),
                                _ => ">=".into(),
                            },
                            threshold: v.threshold,
                            group: Map::new(),
                            query_url: query_url(&public_url, &slo.dataset, &spec),
                            exemplar_trace_ids: Vec::new(),
                            dedup_key: format!("quarry-burn-{}-{}", alert.id, alert.episode),
                            severity: alert.severity.clone(),
                            time: rfc3339(now_ns),
                            summary: format!("{} ({})", v.detail, status_word(status)),
                        },
                    ));
                }
            }
            let count = events.len();
            for (recipients, event) in events {
                enqueue(document, env, &recipients, &event);
            }
            Ok(count)
        })
        .await
    }
}

fn status_word(status: Status) -> &'static str {
    match status {
        Status::Triggered => "triggered",
        Status::Resolved => "resolved",
    }
}

/// The groups of a trigger's result: one (the totals) without breakdowns.
fn observations(trigger: &Trigger, result: &quarry_query::spec::QueryResult) -> Vec<Observation> {
    let trace_ids = |group: &quarry_query::spec::Group| {
        group
            .exemplars
            .iter()
            .filter_map(|exemplar| exemplar.trace_id.clone())
            .collect::<Vec<_>>()
    };
    if trigger.query.breakdowns.is_empty() {
        return vec![Observation {
            key: Map::new(),
            value: result
                .totals
                .get(&trigger.value_name)
                .and_then(Value::as_f64),
            trace_ids: result.groups.first().map(trace_ids).unwrap_or_default(),
        }];
    }
    result
        .groups
        .iter()
        .map(|group| Observation {
            key: group.key.clone(),
            value: group
                .values
                .get(&trigger.value_name)
                .and_then(Value::as_f64),
            trace_ids: trace_ids(group),
        })
        .collect()
}

/// Applies one evaluation's observations (or its error) to a trigger; returns
/// the notifications enqueued.
fn apply_trigger(
    document: &mut Document,
    env: &str,
    id: &str,
    observed: std::result::Result<Vec<Observation>, String>,
    now_ns: i64,
    public_url: &str,
) -> usize {
    let Some(state) = document.environments.get_mut(env) else {
        return 0;
    };
    // Deleted or changed meanwhile: the next pass evaluates the new version.
    let Some(trigger) = state.triggers.iter_mut().find(|t| t.id == id) else {
        return 0;
    };
    trigger.state.last_evaluated_ns = Some(now_ns);
    let observed = match observed {
        Ok(observed) => observed,
        Err(error) => {
            // A failed query changes no alert: neither opens nor closes one.
            push_history(trigger, now_ns, Vec::new(), None, Some(error));
            return 0;
        }
    };
    let evaluation_value = trigger
        .threshold
        .most_exceeding(observed.iter().filter_map(|observation| observation.value));
    let mut events = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for observation in observed {
        let key = serde_json::to_string(&observation.key).unwrap_or_default();
        seen.insert(key.clone());
        if !trigger.state.groups.contains_key(&key) && trigger.state.groups.len() >= MAX_GROUPS {
            continue;
        }
        let group = trigger.state.groups.entry(key).or_default();
        if let Some(transition) = step(
            group,
            observation.value,
            &trigger.threshold,
            trigger.alert_type,
        ) {
            events.push((
                transition,
                observation.key,
                observation.value,
                observation.trace_ids,
            ));
        }
    }
    // Groups gone from the result have no events, so they do not exceed.
    let gone: Vec<String> = trigger
        .state
        .groups
        .keys()
        .filter(|key| !seen.contains(*key))
        .cloned()
        .collect();
    for key in gone {
        if let Some(group) = trigger.state.groups.get_mut(&key)
            && let Some(transition) = step(group, None, &trigger.threshold, trigger.alert_type)
        {
            let group_key = serde_json::from_str(&key).unwrap_or_default();
            events.push((transition, group_key, None, Vec::new()));
        }
    }
    // Only groups with something to remember are kept.
    trigger
        .state
        .groups
        .retain(|_, group| group.triggered || group.exceeded > 0 || group.episode > 0);
    let trigger = trigger.clone();
    let mut words = Vec::new();
    let mut alert_events = Vec::new();
    let mut transitions = Vec::new();
    for (transition, key, value, trace_ids) in events {
        let (status, episode, repeat) = match transition {
            Transition::Triggered { episode, repeat } => (Status::Triggered, episode, repeat),
            Transition::Resolved { episode } => (Status::Resolved, episode, false),
        };
        // An on_true reminder is a notification but not a change of state.
        if !repeat {
            transitions.push(TransitionEntry {
                time: rfc3339(now_ns),
                status: status_word(status).to_owned(),
                group: key.clone(),
                value,
            });
        }
        let group_text = if key.is_empty() {
            String::new()
        } else {
            format!(" for {}", Value::Object(key.clone()))
        };
        words.push(format!("{}{group_text}", status_word(status)));
        let shown = value.map_or("no value".to_owned(), |v| format!("{v}"));
        alert_events.push(AlertEvent {
            source: "trigger",
            status,
            id: trigger.id.clone(),
            name: trigger.name.clone(),
            environment: env.to_owned(),
            dataset: trigger.dataset.clone(),
            description: trigger.description.clone(),
            value,
            threshold_op: trigger.threshold.op.clone(),
            threshold: trigger.threshold.value,
            dedup_key: dedup_key(&trigger.id, &key, episode),
            group: key,
            query_url: query_url(public_url, &trigger.dataset, &trigger.query),
            exemplar_trace_ids: trace_ids,
            severity: "page".into(),
            time: rfc3339(now_ns),
            summary: format!(
                "{} {}: {} = {shown} (threshold {} {}){group_text}",
                trigger.name,
                status_word(status),
                trigger.value_name,
                trigger.threshold.op,
                trigger.threshold.value
            ),
        });
    }
    if let Some(stored) = document
        .environments
        .get_mut(env)
        .and_then(|state| state.triggers.iter_mut().find(|t| t.id == id))
    {
        push_history(stored, now_ns, words, evaluation_value, None);
        stored.state.transitions.extend(transitions);
        let excess = stored
            .state
            .transitions
            .len()
            .saturating_sub(MAX_TRANSITIONS);
        stored.state.transitions.drain(..excess);
    }
    let count = alert_events.len();
    for event in alert_events {
        enqueue(document, env, &trigger.recipients, &event);
    }
    count
}

fn push_history(
    trigger: &mut Trigger,
    now_ns: i64,
    events: Vec<String>,
    value: Option<f64>,
    error: Option<String>,
) {
    let triggered_groups = trigger
        .state
        .groups
        .values()
        .filter(|g| g.triggered)
        .count();
    trigger.state.history.push(HistoryEntry {
        time: rfc3339(now_ns),
        triggered_groups,
        value,
        events,
        error,
    });
    let excess = trigger.state.history.len().saturating_sub(MAX_HISTORY);
    trigger.state.history.drain(..excess);
}

/// The same for every notification of one alert of one group.
fn dedup_key(trigger_id: &str, key: &Map<String, Value>, episode: u64) -> String {
    if key.is_empty() {
        return format!("quarry-trigger-{trigger_id}-{episode}");
    }
    let text = serde_json::to_string(key).unwrap_or_default();
    format!(
        "quarry-trigger-{trigger_id}-{:016x}-{episode}",
        fnv1a(text.as_bytes())
    )
}

/// FNV-1a, 64 bits: stable across releases (std's hasher is not).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The query in the web UI (`/?dataset=...&query=...`).
pub fn query_url(public_url: &str, dataset: &str, spec: &quarry_query::spec::QuerySpec) -> String {
    let base = if public_url.is_empty() {
        "http://localhost:8080"
    } else {
        public_url
    };
    let query = serde_json::to_string(spec).unwrap_or_default();
    match url::Url::parse(base) {
        Ok(mut url) => {
            url.set_path("/");
            url.query_pairs_mut()
                .clear()
                .append_pair("dataset", dataset)
                .append_pair("query", &query);
            url.to_string()
        }
        Err(_) => base.to_owned(),
    }
}

/// Puts one notification per recipient in the outbox.
fn enqueue(document: &mut Document, env: &str, recipients: &[String], event: &AlertEvent) {
    let Some(state) = document.environments.get(env) else {
        return;
    };
    let rendered: Vec<_> = recipients
        .iter()
        .filter_map(|id| state.recipients.iter().find(|r| &r.id == id))
        .map(|recipient| render(event, recipient, new_id()))
        .collect();
    document.outbox.extend(rendered);
    let excess = document.outbox.len().saturating_sub(MAX_OUTBOX);
    if excess > 0 {
        warn!(
            dropped = excess,
            "alert outbox full: dropping the oldest notifications"
        );
        document.outbox.drain(..excess);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Environment;
    use crate::triggers::{AlertType, MAX_TRANSITIONS, Threshold, TriggerState};

    fn document_with_trigger() -> Document {
        let trigger = Trigger {
            id: "t".into(),
            dataset: "api".into(),
            name: "errors".into(),
            description: String::new(),
            disabled: false,
            query_id: None,
            query: quarry_query::spec::QuerySpec::default(),
            value_name: "COUNT".into(),
            frequency: 60,
            alert_type: AlertType::OnChange,
            threshold: Threshold {
                op: ">".into(),
                value: 10.0,
                exceeded_limit: 1,
            },
            recipients: Vec::new(),
            created_at: String::new(),
            updated_at: String::new(),
            state: TriggerState::default(),
        };
        let mut document = Document::default();
        document.environments.insert(
            "default".into(),
            Environment {
                triggers: vec![trigger],
                ..Environment::default()
            },
        );
        document
    }

    fn observation(route: &str, value: f64) -> Observation {
        let mut key = Map::new();
        key.insert("route".into(), Value::String(route.into()));
        Observation {
            key,
            value: Some(value),
            trace_ids: Vec::new(),
        }
    }

    #[test]
    fn transitions_keep_time_group_and_value_and_are_bounded() {
        let mut document = document_with_trigger();
        // Odd evaluations open /pay's alert (value 20 + i), even ones close it.
        let evaluations = MAX_TRANSITIONS as i64 + 50;
        for i in 0..evaluations {
            let value = if i % 2 == 0 { 20.0 + i as f64 } else { 1.0 };
            let observed = vec![observation("/pay", value), observation("/home", 2.0)];
            apply_trigger(
                &mut document,
                "default",
                "t",
                Ok(observed),
                i * 60_000_000_000,
                "",
            );
        }
        let state = &document.environments["default"].triggers[0].state;
        assert_eq!(state.transitions.len(), MAX_TRANSITIONS);
        assert_eq!(state.history.len(), MAX_HISTORY);
        // The oldest kept is the 51st transition: evaluation 50, an opening.
        let first = &state.transitions[0];
        assert_eq!(first.status, "triggered");
        assert_eq!(first.value, Some(70.0));
        assert_eq!(first.time, rfc3339(50 * 60_000_000_000));
        assert_eq!(first.group.get("route"), Some(&Value::from("/pay")));
        let last = state.transitions.last().unwrap();
        assert_eq!((last.status.as_str(), last.value), ("resolved", Some(1.0)));
        // An evaluation's value is the group's most past the threshold.
        let newest = state.history.last().unwrap();
        assert_eq!(newest.value, Some(2.0));
        assert_eq!(
            state.history[state.history.len() - 2].value,
            Some(20.0 + 148.0)
        );
    }
}
