//! Recipients (`/1/recipients`): where notifications go. Quarry speaks four
//! wire formats: a generic JSON webhook, a Slack-compatible incoming webhook,
//! PagerDuty's Events API v2 and Alertmanager's `POST /api/v2/alerts`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::error::{AlertError, Result};
use crate::fields::{check_url, object_with, optional_string};

/// Recipients kept per environment.
pub const MAX_RECIPIENTS: usize = 1_000;
/// PagerDuty's Events API v2 endpoint, used when a recipient names no other.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// One recipient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Recipient {
    pub id: String,
    #[serde(flatten)]
    pub target: Target,
    pub created_at: String,
    pub updated_at: String,
}

/// A recipient's kind and details, in Honeycomb's `{"type", "details"}` shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "details", rename_all = "lowercase")]
pub enum Target {
    /// Generic JSON (`docs/alerts.md` shows the body).
    Webhook {
        #[serde(default)]
        webhook_name: String,
        webhook_url: String,
        /// Sent as the `X-Honeycomb-Webhook-Token` header when set.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        webhook_secret: String,
    },
    /// A Slack incoming webhook (or anything taking `{"text": ...}`).
    Slack {
        slack_webhook_url: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        slack_channel: String,
    },
    /// PagerDuty Events API v2.
    Pagerduty {
        pagerduty_integration_key: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        pagerduty_integration_name: String,
        /// Events API endpoint (PagerDuty's by default).
        #[serde(default = "default_pagerduty_url")]
        pagerduty_url: String,
    },
    /// Prometheus Alertmanager: alerts are posted to `{url}/api/v2/alerts`.
    Alertmanager { alertmanager_url: String },
}

fn default_pagerduty_url() -> String {
    PAGERDUTY_EVENTS_URL.to_owned()
}

impl Target {
    /// Reads and checks `{"type", "details"}`; errors name the bad field.
    pub fn from_json(body: &Value) -> Result<Target> {
        let object = object_with(body, &["type", "details"])?;
        let kind = optional_string(object, "type", 64)?
            .ok_or_else(|| AlertError::invalid("type", "required"))?;
        let empty = Map::new();
        let details = match object.get("details") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(details)) => details,
            Some(_) => return Err(AlertError::invalid("details", "expected an object")),
        };
        let text = |key: &str| -> Result<String> {
            Ok(optional_string(details, key, 2048)
                .map_err(|error| AlertError::Invalid(format!("details.{error}")))?
                .unwrap_or_default())
        };
        let url = |key: &str| -> Result<String> {
            let value = text(key)?;
            check_url(&format!("details.{key}"), &value)?;
            Ok(value)
        };
        let allowed: &[&str] = match kind.as_str() {
            "webhook" => &["webhook_name", "webhook_url", "webhook_secret"],
            "slack" => &["slack_webhook_url", "slack_channel"],
            "pagerduty" => &[
                "pagerduty_integration_key",
                "pagerduty_integration_name",
                "pagerduty_url",
            ],
            "alertmanager" => &["alertmanager_url"],
            other => {
                return Err(AlertError::invalid(
                    "type",
                    format!("{other:?} is not one of webhook, slack, pagerduty, alertmanager"),
                ));
            }
        };
        if let Some(key) = details.keys().find(|key| !allowed.contains(&key.as_str())) {
            return Err(AlertError::invalid(
                &format!("details.{key}"),
                "unknown field",
            ));
        }
        Ok(match kind.as_str() {
            "webhook" => Target::Webhook {
                webhook_name: text("webhook_name")?,
                webhook_url: url("webhook_url")?,
                webhook_secret: text("webhook_secret")?,
            },
            "slack" => Target::Slack {
                slack_webhook_url: url("slack_webhook_url")?,
                slack_channel: text("slack_channel")?,
            },
            "pagerduty" => {
                let key = text("pagerduty_integration_key")?;
                if key.is_empty() {
                    return Err(AlertError::invalid(
                        "details.pagerduty_integration_key",
                        "required",
                    ));
                }
                let endpoint = text("pagerduty_url")?;
                let endpoint = if endpoint.is_empty() {
                    default_pagerduty_url()
                } else {
                    check_url("details.pagerduty_url", &endpoint)?;
                    endpoint
                };
                Target::Pagerduty {
                    pagerduty_integration_key: key,
                    pagerduty_integration_name: text("pagerduty_integration_name")?,
                    pagerduty_url: endpoint,
                }
            }
            _ => Target::Alertmanager {
                alertmanager_url: url("alertmanager_url")?,
            },
        })
    }

    /// Where notifications are posted.
    pub fn endpoint(&self) -> String {
        match self {
            Target::Webhook { webhook_url, .. } => webhook_url.clone(),
            Target::Slack {
                slack_webhook_url, ..
            } => slack_webhook_url.clone(),
            Target::Pagerduty { pagerduty_url, .. } => pagerduty_url.clone(),
            Target::Alertmanager { alertmanager_url } => {
                format!("{}/api/v2/alerts", alertmanager_url.trim_end_matches('/'))
            }
        }
    }

    /// The recipient's kind, as in the API.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Webhook { .. } => "webhook",
            Target::Slack { .. } => "slack",
            Target::Pagerduty { .. } => "pagerduty",
            Target::Alertmanager { .. } => "alertmanager",
        }
    }
}

/// A recipient as the API shows it.
pub fn recipient_json(recipient: &Recipient) -> Value {
    serde_json::to_value(recipient).unwrap_or_else(|_| json!({"id": recipient.id}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_reads_its_details_and_names_bad_ones() {
        let target = Target::from_json(
            &json!({"type": "alertmanager", "details": {"alertmanager_url": "http://am:9093/"}}),
        )
        .unwrap();
        assert_eq!(target.endpoint(), "http://am:9093/api/v2/alerts");
        let target = Target::from_json(
            &json!({"type": "pagerduty", "details": {"pagerduty_integration_key": "k"}}),
        )
        .unwrap();
        assert_eq!(target.endpoint(), PAGERDUTY_EVENTS_URL);
        let error =
            Target::from_json(&json!({"type": "webhook", "details": {"webhook_url": "ftp://x"}}))
                .unwrap_err();
        assert!(
            error.to_string().starts_with("details.webhook_url: "),
            "{error}"
        );
        let error = Target::from_json(&json!({"type": "email"})).unwrap_err();
        assert!(error.to_string().starts_with("type: "), "{error}");
        let error =
            Target::from_json(&json!({"type": "slack", "details": {"slack_url": "http://x"}}))
                .unwrap_err();
        assert_eq!(error.to_string(), "details.slack_url: unknown field");
    }

    #[test]
    fn a_recipient_round_trips_in_honeycomb_shape() {
        let recipient = Recipient {
            id: "r1".into(),
            target: Target::Webhook {
                webhook_name: "hook".into(),
                webhook_url: "http://h/x".into(),
                webhook_secret: String::new(),
            },
            created_at: "t".into(),
            updated_at: "t".into(),
        };
        let value = recipient_json(&recipient);
        assert_eq!(value["type"], "webhook");
        assert_eq!(value["details"]["webhook_url"], "http://h/x");
        let back: Recipient = serde_json::from_value(value).unwrap();
        assert_eq!(back, recipient);
    }
}
