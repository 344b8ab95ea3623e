//! The operations behind the HTTP API: create, list, read, update and delete
//! markers, marker settings, recipients, triggers, SLOs and burn alerts.
//! Bodies are JSON values; every change is persisted before it is answered.

use quarry_query::spec::QuerySpec;
use serde_json::Value;

use crate::burn::{
    BurnAlert, BurnAlertRequest, BurnPolicy, MAX_BURN_ALERTS, burn_alert_json, default_policy,
};
use crate::document::{Document, Environment};
use crate::error::{AlertError, Result};
use crate::fields::{object_with, optional_string};
use crate::markers::{
    MAX_MARKER_SETTINGS, MAX_MARKERS, Marker, MarkerFields, MarkerSetting, check_color, in_range,
    marker_json,
};
use crate::recipients::{MAX_RECIPIENTS, Recipient, Target, recipient_json};
use crate::service::{Alerts, new_id, rfc3339};
use crate::slo::{MAX_SLOS, Sli, Slo, SloRequest};
use crate::triggers::{
    AlertType, MAX_TRIGGERS, Trigger, TriggerRequest, TriggerState, check_query, trigger_json,
};

fn env_mut<'a>(document: &'a mut Document, environment: &str) -> &'a mut Environment {
    document
        .environments
        .entry(environment.to_owned())
        .or_default()
}

fn not_found(what: &str, id: &str) -> AlertError {
    AlertError::NotFound(format!("{what} not found: {id}"))
}

fn check_recipients(env: &Environment, ids: &[String]) -> Result<()> {
    for (i, id) in ids.iter().enumerate() {
        if !env.recipients.iter().any(|recipient| &recipient.id == id) {
            return Err(AlertError::invalid(
                &format!("recipients[{i}].id"),
                format!("no recipient {id}"),
            ));
        }
    }
    Ok(())
}

impl Alerts {
    // ------------------------------------------------------------------ markers

    /// `POST /1/markers/{dataset}`.
    pub async fn create_marker(&self, env: &str, dataset: &str, body: &Value) -> Result<Value> {
        let fields = MarkerFields::from_json(body)?;
        let now = self.now_ns();
        let mut marker = Marker {
            id: new_id(),
            dataset: dataset.to_owned(),
            start_time: now.div_euclid(1_000_000_000),
            end_time: None,
            message: String::new(),
            kind: String::new(),
            url: String::new(),
            created_at: rfc3339(now),
            updated_at: rfc3339(now),
        };
        fields.apply(&mut marker)?;
        self.mutate(|document| {
            let env = env_mut(document, env);
            if env.markers.len() >= MAX_MARKERS {
                // The oldest marker makes room: markers are a log.
                env.markers.remove(0);
            }
            env.markers.push(marker.clone());
            Ok(marker_json(&marker, &env.marker_settings))
        })
        .await
    }

    /// `GET /1/markers/{dataset}`.
    pub async fn list_markers(&self, env: &str, dataset: &str) -> Vec<Value> {
        let document = self.document.lock().await;
        document.environments.get(env).map_or_else(Vec::new, |env| {
            env.markers
                .iter()
                .filter(|marker| marker.dataset == dataset)
                .map(|marker| marker_json(marker, &env.marker_settings))
                .collect()
        })
    }

    /// `PUT /1/markers/{dataset}/{id}`.
    pub async fn update_marker(
        &self,
        env: &str,
        dataset: &str,
        id: &str,
        body: &Value,
    ) -> Result<Value> {
        let fields = MarkerFields::from_json(body)?;
        let now = rfc3339(self.now_ns());
        self.mutate(|document| {
            let env = env_mut(document, env);
            let marker = env
                .markers
                .iter_mut()
                .find(|marker| marker.id == id && marker.dataset == dataset)
                .ok_or_else(|| not_found("marker", id))?;
            fields.apply(marker)?;
            marker.updated_at = now;
            let marker = marker.clone();
            Ok(marker_json(&marker, &env.marker_settings))
        })
        .await
    }

    /// `DELETE /1/markers/{dataset}/{id}`.
    pub async fn delete_marker(&self, env: &str, dataset: &str, id: &str) -> Result<Value> {
        self.mutate(|document| {
            let env = env_mut(document, env);
            let at = env
                .markers
                .iter()
                .position(|marker| marker.id == id && marker.dataset == dataset)
                .ok_or_else(|| not_found("marker", id))?;
            let marker = env.markers.remove(at);
            Ok(marker_json(&marker, &env.marker_settings))
        })
        .await
    }

    /// Markers of `dataset` and of the whole environment overlapping
    /// `[start, end)` (unix seconds), by time: what a query result carries.
    pub async fn markers_between(
        &self,
        env: &str,
        dataset: &str,
        start: i64,
        end: i64,
    ) -> Vec<Value> {
        let document = self.document.lock().await;
        let Some(env) = document.environments.get(env) else {
            return Vec::new();
        };
        let mut markers: Vec<&Marker> = env
            .markers
            .iter()
            .filter(|marker| {
                (marker.dataset == dataset || marker.dataset == crate::markers::ALL_DATASETS)
                    && in_range(marker, start, end)
            })
            .collect();
        markers.sort_by_key(|marker| marker.start_time);
        markers
            .into_iter()
            .map(|marker| {
                let mut value = marker_json(marker, &env.marker_settings);
                if let Value::Object(map) = &mut value {
                    map.insert("dataset".into(), Value::String(marker.dataset.clone()));
                }
                value
            })
            .collect()
    }

    // ----------------------------------------------------------- marker settings

    /// `POST /1/marker_settings/{dataset}`: `{"type", "color"}`; one setting per
    /// type and dataset (a second POST of a type replaces its colour).
    pub async fn create_marker_setting(
        &self,
        env: &str,
        dataset: &str,
        body: &Value,
    ) -> Result<Value> {
        let object = object_with(body, &["type", "color"])?;
        let kind = optional_string(object, "type", 4_096)?
            .ok_or_else(|| AlertError::invalid("type", "required"))?;
        let color = optional_string(object, "color", 16)?
            .ok_or_else(|| AlertError::invalid("color", "required"))?;
        check_color(&color)?;
        let now = rfc3339(self.now_ns());
        self.mutate(|document| {
            let env = env_mut(document, env);
            if let Some(setting) = env
                .marker_settings
                .iter_mut()
                .find(|setting| setting.kind == kind && setting.dataset == dataset)
            {
                setting.color = color;
                setting.updated_at = now;
                return Ok(serde_json::to_value(&*setting).unwrap_or(Value::Null));
            }
            if env.marker_settings.len() >= MAX_MARKER_SETTINGS {
                return Err(AlertError::TooMany(format!(
                    "at most {MAX_MARKER_SETTINGS} marker settings"
                )));
            }
            let setting = MarkerSetting {
                id: new_id(),
                dataset: dataset.to_owned(),
                kind,
                color,
                created_at: now.clone(),
                updated_at: now,
            };
            env.marker_settings.push(setting.clone());
            Ok(serde_json::to_value(setting).unwrap_or(Value::Null))
        })
        .await
    }

    /// `GET /1/marker_settings/{dataset}`.
    pub async fn list_marker_settings(&self, env: &str, dataset: &str) -> Vec<Value> {
        let document = self.document.lock().await;
        document.environments.get(env).map_or_else(Vec::new, |env| {
            env.marker_settings
                .iter()
                .filter(|setting| setting.dataset == dataset)
                .filter_map(|setting| serde_json::to_value(setting).ok())
                .collect()
        })
    }

    /// `DELETE /1/marker_settings/{dataset}/{id}`.
    pub async fn delete_marker_setting(&self, env: &str, dataset: &str, id: &str) -> Result<()> {
        self.mutate(|document| {
            let env = env_mut(document, env);
            let before = env.marker_settings.len();
            env.marker_settings
                .retain(|setting| !(setting.id == id && setting.dataset == dataset));
            if env.marker_settings.len() == before {
                return Err(not_found("marker setting", id));
            }
            Ok(())
        })
        .await
    }

    // ---------------------------------------------------------------- recipients

    /// `POST /1/recipients`.
    pub async fn create_recipient(&self, env: &str, body: &Value) -> Result<Value> {
        let target = Target::from_json(body)?;
        let now = rfc3339(self.now_ns());
        self.mutate(|document| {
            let env = env_mut(document, env);
            if env.recipients.len() >= MAX_RECIPIENTS {
                return Err(AlertError::TooMany(format!(
                    "at most {MAX_RECIPIENTS} recipients"
                )));
            }
            let recipient = Recipient {
                id: new_id(),
                target,
                created_at: now.clone(),
                updated_at: now,
            };
            env.recipients.push(recipient.clone());
            Ok(recipient_json(&recipient))
        })
        .await
    }

    /// `GET /1/recipients`.
    pub async fn list_recipients(&self, env: &str) -> Vec<Value> {
        let document = self.document.lock().await;
        document.environments.get(env).map_or_else(Vec::new, |env| {
            env.recipients.iter().map(recipient_json).collect()
        })
    }

    /// `GET /1/recipients/{id}`.
    pub async fn get_recipient(&self, env: &str, id: &str) -> Result<Value> {
        let document = self.document.lock().await;
        document
            .environments
            .get(env)
            .and_then(|env| env.recipients.iter().find(|r| r.id == id))
            .map(recipient_json)
            .ok_or_else(|| not_found("recipient", id))
    }

    /// `PUT /1/recipients/{id}`.
    pub async fn update_recipient(&self, env: &str, id: &str, body: &Value) -> Result<Value> {
        let target = Target::from_json(body)?;
        let now = rfc3339(self.now_ns());
        self.mutate(|document| {
            let env = env_mut(document, env);
            let recipient = env
                .recipients
                .iter_mut()
                .find(|r| r.id == id)
                .ok_or_else(|| not_found("recipient", id))?;
            recipient.target = target;
            recipient.updated_at = now;
            Ok(recipient_json(recipient))
        })
        .await
    }

    /// `DELETE /1/recipients/{id}`: refused while a trigger or burn alert uses it.
    pub async fn delete_recipient(&self, env: &str, id: &str) -> Result<()> {
        self.mutate(|document| {
            let env = env_mut(document, env);
            let used = env
                .triggers
                .iter()
                .any(|t| t.recipients.iter().any(|r| r == id))
                || env
                    .burn_alerts
                    .iter()
                    .any(|b| b.recipients.iter().any(|r| r == id));
            if used {
                return Err(AlertError::TooMany(format!(
                    "recipient {id} is used by a trigger or burn alert"
                )));
            }
            let before = env.recipients.len();
            env.recipients.retain(|r| r.id != id);
            if env.recipients.len() == before {
                return Err(not_found("recipient", id));
            }
            Ok(())
        })
        .await
    }

    // ------------------------------------------------------------------ triggers

    /// `POST /1/triggers/{dataset}`; `saved` is the spec of the body's
    /// `query_id` (the caller resolves saved queries).
    pub async fn create_trigger(
        &self,
        env: &str,
        dataset: &str,
        body: &Value,
        saved: Option<QuerySpec>,
    ) -> Result<Value> {
        let request = TriggerRequest::from_json(body)?;
        let now = self.now_ns();
        let frequency = request
            .frequency
            .unwrap_or(crate::triggers::DEFAULT_FREQUENCY_SECS);
        let mut spec = match (request.query, saved) {
            (Some(spec), _) => spec,
            (None, Some(spec)) => spec,
            (None, None) => {
                return Err(AlertError::invalid(
                    "query",
                    "required: a query spec or a query_id",
                ));
            }
        };
        // A trigger's query looks back over its frequency unless it says otherwise.
        if spec.time_range.is_none() {
            spec.time_range = Some(frequency as f64);
        }
        let value_name = check_query(&spec, frequency, now)?;
        let threshold = request
            .threshold
            .ok_or_else(|| AlertError::invalid("threshold", "required"))?;
        let name = request
            .name
            .filter(|name| !name.trim().is_empty())
            .ok_or_else(|| AlertError::invalid("name", "required"))?;
        let recipients = request.recipients.unwrap_or_default();
        self.mutate(|document| {
            let env = env_mut(document, env);
            if env.triggers.len() >= MAX_TRIGGERS {
                return Err(AlertError::TooMany(format!(
                    "at most {MAX_TRIGGERS} triggers"
                )));
            }
            check_recipients(env, &recipients)?;
            let trigger = Trigger {
                id: new_id(),
                dataset: dataset.to_owned(),
                name,
                description: request.description.unwrap_or_default(),
                disabled: request.disabled.unwrap_or(false),
                query_id: request.query_id,
                query: spec,
                value_name,
                frequency,
                alert_type: request.alert_type.unwrap_or(AlertType::OnChange),
                threshold,
                recipients,
                created_at: rfc3339(now),
                updated_at: rfc3339(now),
                state: TriggerState::default(),
            };
            env.triggers.push(trigger.clone());
            Ok(trigger_json(&trigger))
        })
        .await
    }

    /// `GET /1/triggers/{dataset}`.
    pub async fn list_triggers(&self, env: &str, dataset: &str) -> Vec<Value> {
        let document = self.document.lock().await;
        document.environments.get(env).map_or_else(Vec::new, |env| {
            env.triggers
                .iter()
                .filter(|t| t.dataset == dataset)
                .map(trigger_json)
                .collect()
        })
    }

    /// `GET /1/triggers/{dataset}/{id}`.
    pub async fn get_trigger(&self, env: &str, dataset: &str, id: &str) -> Result<Value> {
        let document = self.document.lock().await;
        document
            .environments
            .get(env)
            .and_then(|env| {
                env.triggers
                    .iter()
                    .find(|t| t.id == id && t.dataset == dataset)
            })
            .map(trigger_json)
            .ok_or_else(|| not_found("trigger", id))
    }

    /// `PUT /1/triggers/{dataset}/{id}`: fields given replace the old ones; a new
    /// query or threshold starts its alert state afresh.
    pub async fn update_trigger(
        &self,
        env: &str,
        dataset: &str,
        id: &str,
        body: &Value,
        saved: Option<QuerySpec>,
    ) -> Result<Value> {
        let request = TriggerRequest::from_json(body)?;
        let now = self.now_ns();
        self.mutate(|document| {
            let env = env_mut(document, env);
            if let Some(ids) = &request.recipients {
                check_recipients(env, ids)?;
            }
            let trigger = env
                .triggers
                .iter_mut()
                .find(|t| t.id == id && t.dataset == dataset)
                .ok_or_else(|| not_found("trigger", id))?;
            let mut next = trigger.clone();
            if let Some(name) = request.name {
                next.name = name;
            }
            if let Some(description) = request.description {
                next.description = description;
            }
            if let Some(disabled) = request.disabled {
                next.disabled = disabled;
            }
            if let Some(frequency) = request.frequency {
                next.frequency = frequency;
            }
            if let Some(alert_type) = request.alert_type {
                next.alert_type = alert_type;
            }
            if let Some(recipients) = request.recipients {
                next.recipients = recipients;
            }
            let mut fresh = false;
            if let Some(mut spec) = request.query.or(saved) {
                if spec.time_range.is_none() {
                    spec.time_range = Some(next.frequency as f64);
                }
                next.query = spec;
                next.query_id = request.query_id;
                fresh = true;
            }
            if let Some(threshold) = request.threshold {
                next.threshold = threshold;
                fresh = true;
            }
            next.value_name = check_query(&next.query, next.frequency, now)?;
            if fresh && !next.triggered() {
                next.state.groups.clear();
            }
            next.updated_at = rfc3339(now);
            *trigger = next.clone();
            Ok(trigger_json(&next))
        })
        .await
    }

    /// `DELETE /1/triggers/{dataset}/{id}`.
    pub async fn delete_trigger(&self, env: &str, dataset: &str, id: &str) -> Result<()> {
        self.mutate(|document| {
            let env = env_mut(document, env);
            let before = env.triggers.len();
            env.triggers
                .retain(|t| !(t.id == id && t.dataset == dataset));
            if env.triggers.len() == before {
                return Err(not_found("trigger", id));
            }
            Ok(())
        })
        .await
    }

    // ---------------------------------------------------------------------- SLOs

    /// `POST /1/slos/{dataset}`: the SLI is checked by running it over the last
    /// minute (a bad expression is a 400 naming `sli.expression`).
    pub async fn create_slo(&self, env: &str, dataset: &str, body: &Value) -> Result<Value> {
        let request = SloRequest::from_json(body)?;
        let sli = request
            .sli
            .ok_or_else(|| AlertError::invalid("sli", "required"))?;
        let name = request
            .name
            .filter(|name| !name.trim().is_empty())
            .ok_or_else(|| AlertError::invalid("name", "required"))?;
        let target = request
            .target_per_million
            .ok_or_else(|| AlertError::invalid("target_per_million", "required"))?;
        let days = request
            .time_period_days
            .ok_or_else(|| AlertError::invalid("time_period_days", "required"))?;
        self.check_sli(env, dataset, &sli).await?;
        let now = rfc3339(self.now_ns());
        self.mutate(|document| {
            let env = env_mut(document, env);
            if env.slos.len() >= MAX_SLOS {
                return Err(AlertError::TooMany(format!("at most {MAX_SLOS} SLOs")));
            }
            let slo = Slo {
                id: new_id(),
                dataset: dataset.to_owned(),
                name,
                description: request.description.unwrap_or_default(),
                sli,
                target_per_million: target,
                time_period_days: days,
                created_at: now.clone(),
                updated_at: now,
                counts: Default::default(),
            };
            env.slos.push(slo.clone());
            Ok(crate::sli_counts::slo_json(&slo))
        })
        .await
    }

    /// Runs the SLI over one minute to check it.
    async fn check_sli(&self, env: &str, dataset: &str, sli: &Sli) -> Result<()> {
        let end = crate::slo::window_end(self.now_ns().div_euclid(1_000_000_000));
        let spec = crate::sli_counts::counts_spec(&sli.expression, end - 60, end, 60);
        self.query(env, dataset, &spec, self.now_ns())
            .await
            .map(|_| ())
            .map_err(|error| match error {
                AlertError::Invalid(message) => AlertError::Invalid(format!(
                    "sli.expression: {}",
                    message
                        .split_once(": ")
                        .map_or(message.as_str(), |(_, rest)| rest)
                )),
                other => other,
            })
    }

    /// `GET /1/slos/{dataset}`.
    pub async fn list_slos(&self, env: &str, dataset: &str) -> Vec<Value> {
        let document = self.document.lock().await;
        document.environments.get(env).map_or_else(Vec::new, |env| {
            env.slos
                .iter()
                .filter(|slo| slo.dataset == dataset)
                .map(crate::sli_counts::slo_json)
                .collect()
        })
    }

    /// An SLO's definition.
    pub(crate) async fn slo(&self, env: &str, dataset: &str, id: &str) -> Result<Slo> {
        let document = self.document.lock().await;
        document
            .environments
            .get(env)
            .and_then(|env| env.slos.iter().find(|s| s.id == id && s.dataset == dataset))
            .cloned()
            .ok_or_else(|| not_found("SLO", id))
    }

    /// `PUT /1/slos/{dataset}/{id}`: a new SLI starts the counts afresh.
    pub async fn update_slo(
        &self,
        env: &str,
        dataset: &str,
        id: &str,
        body: &Value,
    ) -> Result<Value> {
        let request = SloRequest::from_json(body)?;
        if let Some(sli) = &request.sli {
            self.check_sli(env, dataset, sli).await?;
        }
        let now = rfc3339(self.now_ns());
        self.mutate(|document| {
            let env = env_mut(document, env);
            let slo = env
                .slos
                .iter_mut()
                .find(|s| s.id == id && s.dataset == dataset)
                .ok_or_else(|| not_found("SLO", id))?;
            if let Some(name) = request.name {
                slo.name = name;
            }
            if let Some(description) = request.description {
                slo.description = description;
            }
            if let Some(target) = request.target_per_million {
                slo.target_per_million = target;
            }
            if let Some(days) = request.time_period_days {
                slo.time_period_days = days;
                slo.counts = Default::default();
            }
            if let Some(sli) = request.sli
                && sli != slo.sli
            {
                slo.sli = sli;
                slo.counts = Default::default();
            }
            slo.updated_at = now;
            Ok(crate::sli_counts::slo_json(slo))
        })
        .await
    }

    /// `DELETE /1/slos/{dataset}/{id}`, with its burn alerts.
    pub async fn delete_slo(&self, env: &str, dataset: &str, id: &str) -> Result<()> {
        self.mutate(|document| {
            let env = env_mut(document, env);
            let before = env.slos.len();
            env.slos.retain(|s| !(s.id == id && s.dataset == dataset));
            if env.slos.len() == before {
                return Err(not_found("SLO", id));
            }
            env.burn_alerts.retain(|b| b.slo_id != id);
            Ok(())
        })
        .await
    }

    // --------------------------------------------------------------- burn alerts

    /// `POST /1/burn_alerts/{dataset}`: the multi-window policy unless the body
    /// names Honeycomb's `exhaustion_time` or `budget_rate`.
    pub async fn create_burn_alert(&self, env: &str, dataset: &str, body: &Value) -> Result<Value> {
        let request = BurnAlertRequest::from_json(body)?;
        let slo_id = request
            .slo_id
            .ok_or_else(|| AlertError::invalid("slo.id", "required"))?;
        let now = rfc3339(self.now_ns());
        self.mutate(|document| {
            let env = env_mut(document, env);
            if !env
                .slos
                .iter()
                .any(|s| s.id == slo_id && s.dataset == dataset)
            {
                return Err(AlertError::invalid(
                    "slo.id",
                    format!("no SLO {slo_id} in this dataset"),
                ));
            }
            if env.burn_alerts.len() >= MAX_BURN_ALERTS {
                return Err(AlertError::TooMany(format!(
                    "at most {MAX_BURN_ALERTS} burn alerts"
                )));
            }
            let recipients = request.recipients.unwrap_or_default();
            check_recipients(env, &recipients)?;
            let alert = BurnAlert {
                id: new_id(),
                dataset: dataset.to_owned(),
                slo_id,
                policy: request.policy.unwrap_or(BurnPolicy::Multiwindow {
                    windows: default_policy(),
                }),
                description: request.description.unwrap_or_default(),
                recipients,
                created_at: now.clone(),
                updated_at: now,
                triggered: false,
                episode: 0,
                severity: String::new(),
                value: None,
            };
            env.burn_alerts.push(alert.clone());
            Ok(burn_alert_json(&alert))
        })
        .await
    }

    /// `GET /1/burn_alerts/{dataset}` (optionally of one SLO).
    pub async fn list_burn_alerts(
        &self,
        env: &str,
        dataset: &str,
        slo_id: Option<&str>,
    ) -> Vec<Value> {
        let document = self.document.lock().await;
        document.environments.get(env).map_or_else(Vec::new, |env| {
            env.burn_alerts
                .iter()
                .filter(|b| b.dataset == dataset && slo_id.is_none_or(|id| b.slo_id == id))
                .map(burn_alert_json)
                .collect()
        })
    }

    /// `GET /1/burn_alerts/{dataset}/{id}`.
    pub async fn get_burn_alert(&self, env: &str, dataset: &str, id: &str) -> Result<Value> {
        let document = self.document.lock().await;
        document
            .environments
            .get(env)
            .and_then(|env| {
                env.burn_alerts
                    .iter()
                    .find(|b| b.id == id && b.dataset == dataset)
            })
            .map(burn_alert_json)
            .ok_or_else(|| not_found("burn alert", id))
    }

    /// `PUT /1/burn_alerts/{dataset}/{id}`.
    pub async fn update_burn_alert(
        &self,
        env: &str,
        dataset: &str,
        id: &str,
        body: &Value,
    ) -> Result<Value> {
        let request = BurnAlertRequest::from_json(body)?;
        let now = rfc3339(self.now_ns());
        self.mutate(|document| {
            let env = env_mut(document, env);
            if let Some(ids) = &request.recipients {
                check_recipients(env, ids)?;
            }
            let alert = env
                .burn_alerts
                .iter_mut()
                .find(|b| b.id == id && b.dataset == dataset)
                .ok_or_else(|| not_found("burn alert", id))?;
            if let Some(policy) = request.policy {
                alert.policy = policy;
            }
            if let Some(description) = request.description {
                alert.description = description;
            }
            if let Some(recipients) = request.recipients {
                alert.recipients = recipients;
            }
            alert.updated_at = now;
            Ok(burn_alert_json(alert))
        })
        .await
    }

    /// `DELETE /1/burn_alerts/{dataset}/{id}`.
    pub async fn delete_burn_alert(&self, env: &str, dataset: &str, id: &str) -> Result<()> {
        self.mutate(|document| {
            let env = env_mut(document, env);
            let before = env.burn_alerts.len();
            env.burn_alerts
                .retain(|b| !(b.id == id && b.dataset == dataset));
            if env.burn_alerts.len() == before {
                return Err(not_found("burn alert", id));
            }
            Ok(())
        })
        .await
    }

    /// Notifications waiting for delivery (for operators and tests).
    pub async fn outbox_len(&self) -> usize {
        self.document.lock().await.outbox.len()
    }
}
