//! Notifications: an alert event rendered for each recipient's wire format,
//! kept in the outbox until delivered.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::recipients::{Recipient, Target};

/// Notifications kept undelivered; beyond it the oldest are dropped (logged),
/// so a dead receiver cannot grow memory without bound.
pub const MAX_OUTBOX: usize = 10_000;

/// Whether an alert opened or closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Triggered,
    Resolved,
}

/// What happened, independent of any wire format.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertEvent {
    /// `trigger` or `burn_alert`.
    pub source: &'static str,
    pub status: Status,
    /// The trigger's or burn alert's id.
    pub id: String,
    pub name: String,
    pub environment: String,
    pub dataset: String,
    pub description: String,
    pub value: Option<f64>,
    pub threshold_op: String,
    pub threshold: f64,
    /// The group's breakdown values (empty without breakdowns).
    pub group: Map<String, Value>,
    /// The query in the web UI.
    pub query_url: String,
    pub exemplar_trace_ids: Vec<String>,
    /// The same for every notification of one alert (triggered, repeats, resolved).
    pub dedup_key: String,
    /// `page` or `ticket` (PagerDuty: critical or warning).
    pub severity: String,
    /// When it was decided (alert clock), RFC 3339.
    pub time: String,
    /// One line for people.
    pub summary: String,
}

/// One rendered notification waiting for delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Unique per notification (receivers may use it to drop a duplicate).
    pub id: String,
    pub dedup_key: String,
    pub status: Status,
    pub recipient_id: String,
    pub endpoint: String,
    /// Sent as `X-Honeycomb-Webhook-Token` when not empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub secret: String,
    pub body: Value,
    #[serde(default)]
    pub attempts: u32,
    /// Wall-clock ns of the next attempt.
    #[serde(default)]
    pub next_attempt_ns: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// Renders `event` for `recipient`.
pub fn render(event: &AlertEvent, recipient: &Recipient, id: String) -> Notification {
    let (body, secret) = match &recipient.target {
        Target::Webhook { webhook_secret, .. } => (webhook_body(event), webhook_secret.clone()),
        Target::Slack { slack_channel, .. } => (slack_body(event, slack_channel), String::new()),
        Target::Pagerduty {
            pagerduty_integration_key,
            ..
        } => (
            pagerduty_body(event, pagerduty_integration_key),
            String::new(),
        ),
        Target::Alertmanager { .. } => (alertmanager_body(event), String::new()),
    };
    Notification {
        id,
        dedup_key: event.dedup_key.clone(),
        status: event.status,
        recipient_id: recipient.id.clone(),
        endpoint: recipient.target.endpoint(),
        secret,
        body,
        attempts: 0,
        next_attempt_ns: 0,
        last_error: None,
    }
}

fn status_word(status: Status) -> &'static str {
    match status {
        Status::Triggered => "triggered",
        Status::Resolved => "resolved",
    }
}

/// The generic webhook's JSON.
fn webhook_body(event: &AlertEvent) -> Value {
    json!({
        "version": "quarry.v1",
        "source": event.source,
        "status": status_word(event.status),
        "id": event.id,
        "name": event.name,
        "description": event.description,
        "environment": event.environment,
        "dataset": event.dataset,
        "value": event.value,
        "threshold": {"op": event.threshold_op, "value": event.threshold},
        "group": event.group,
        "query_url": event.query_url,
        "exemplar_trace_ids": event.exemplar_trace_ids,
        "dedup_key": event.dedup_key,
        "severity": event.severity,
        "time": event.time,
        "summary": event.summary,
    })
}

/// A Slack incoming webhook's `{"text"}` (with the channel when set).
fn slack_body(event: &AlertEvent, channel: &str) -> Value {
    let mark = match event.status {
        Status::Triggered => ":rotating_light: Triggered",
        Status::Resolved => ":white_check_mark: Resolved",
    };
    let mut body = json!({
        "text": format!("{mark}: {} — {} (<{}|query>)", event.name, event.summary, event.query_url),
    });
    if !channel.is_empty()
        && let Value::Object(map) = &mut body
    {
        map.insert("channel".into(), Value::String(channel.to_owned()));
    }
    body
}

/// A PagerDuty Events API v2 event.
fn pagerduty_body(event: &AlertEvent, routing_key: &str) -> Value {
    match event.status {
        Status::Resolved => json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": event.dedup_key,
        }),
        Status::Triggered => json!({
            "routing_key": routing_key,
            "event_action": "trigger",
            "dedup_key": event.dedup_key,
            "payload": {
                "summary": event.summary,
                "source": "quarry",
                "severity": if event.severity == "ticket" { "warning" } else { "critical" },
                "timestamp": event.time,
                "component": event.dataset,
                "group": event.environment,
                "class": event.source,
                "custom_details": webhook_body(event),
            },
            "links": [{"href": event.query_url, "text": "Query in Quarry"}],
        }),
    }
}

/// Alertmanager's `POST /api/v2/alerts` body: one alert, ended when resolved.
fn alertmanager_body(event: &AlertEvent) -> Value {
    let mut labels = Map::new();
    labels.insert("alertname".into(), Value::String(event.name.clone()));
    labels.insert("quarry_id".into(), Value::String(event.id.clone()));
    labels.insert(
        "environment".into(),
        Value::String(event.environment.clone()),
    );
    labels.insert("dataset".into(), Value::String(event.dataset.clone()));
    labels.insert("severity".into(), Value::String(event.severity.clone()));
    for (key, value) in &event.group {
        let text = match value {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        labels.insert(label_name(key), Value::String(text));
    }
    let mut alert = json!({
        "labels": labels,
        "annotations": {
            "summary": event.summary,
            "description": event.description,
            "value": event.value.map(|v| v.to_string()).unwrap_or_default(),
            "dedup_key": event.dedup_key,
        },
        "startsAt": event.time,
        "generatorURL": event.query_url,
    });
    if event.status == Status::Resolved
        && let Value::Object(map) = &mut alert
    {
        map.remove("startsAt");
        map.insert("endsAt".into(), Value::String(event.time.clone()));
    }
    Value::Array(vec![alert])
}

/// A Prometheus label name for a column (`[a-zA-Z_][a-zA-Z0-9_]*`).
fn label_name(column: &str) -> String {
    let mut name: String = column
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if name.chars().next().is_none_or(|c| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(status: Status) -> AlertEvent {
        let mut group = Map::new();
        group.insert("http.route".into(), json!("/pay"));
        AlertEvent {
            source: "trigger",
            status,
            id: "t1".into(),
            name: "errors".into(),
            environment: "default".into(),
            dataset: "api".into(),
            description: String::new(),
            value: Some(12.0),
            threshold_op: ">".into(),
            threshold: 10.0,
            group,
            query_url: "http://q/?dataset=api".into(),
            exemplar_trace_ids: vec!["abc".into()],
            dedup_key: "quarry-t1-1".into(),
            severity: "page".into(),
            time: "2026-01-01T00:00:00Z".into(),
            summary: "COUNT = 12 > 10".into(),
        }
    }

    fn recipient(target: Target) -> Recipient {
        Recipient {
            id: "r".into(),
            target,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn pagerduty_events_share_the_dedup_key() {
        let target = Target::Pagerduty {
            pagerduty_integration_key: "key".into(),
            pagerduty_integration_name: String::new(),
            pagerduty_url: "http://pd/v2/enqueue".into(),
        };
        let open = render(
            &event(Status::Triggered),
            &recipient(target.clone()),
            "n1".into(),
        );
        let close = render(&event(Status::Resolved), &recipient(target), "n2".into());
        assert_eq!(open.body["event_action"], "trigger");
        assert_eq!(open.body["payload"]["severity"], "critical");
        assert_eq!(close.body["event_action"], "resolve");
        assert_eq!(open.body["dedup_key"], close.body["dedup_key"]);
        assert_eq!(open.endpoint, "http://pd/v2/enqueue");
    }

    #[test]
    fn alertmanager_alerts_carry_the_group_as_labels_and_end_when_resolved() {
        let target = Target::Alertmanager {
            alertmanager_url: "http://am:9093".into(),
        };
        let open = render(
            &event(Status::Triggered),
            &recipient(target.clone()),
            "n".into(),
        );
        assert_eq!(open.body[0]["labels"]["http_route"], "/pay");
        assert!(open.body[0].get("endsAt").is_none());
        let close = render(&event(Status::Resolved), &recipient(target), "n".into());
        assert_eq!(close.body[0]["endsAt"], "2026-01-01T00:00:00Z");
        assert_eq!(label_name("9x"), "_9x");
    }

    #[test]
    fn the_webhook_names_value_threshold_group_and_exemplars() {
        let target = Target::Webhook {
            webhook_name: String::new(),
            webhook_url: "http://h".into(),
            webhook_secret: "s".into(),
        };
        let n = render(&event(Status::Triggered), &recipient(target), "n".into());
        assert_eq!(n.body["value"], 12.0);
        assert_eq!(n.body["threshold"], json!({"op": ">", "value": 10.0}));
        assert_eq!(n.body["group"], json!({"http.route": "/pay"}));
        assert_eq!(n.body["exemplar_trace_ids"], json!(["abc"]));
        assert_eq!(n.secret, "s");
    }
}
