//! Honeycomb's alerting API: `/1/markers`, `/1/marker_settings`,
//! `/1/recipients`, `/1/triggers`, `/1/slos` and `/1/burn_alerts`, plus
//! `POST /api/v1/admin/alerts/evaluate` (one evaluation pass now; with a manual
//! alert clock, at the given time). The work is in `quarry-alerts`; these
//! handlers only read requests and shape answers (docs/alerts.md).

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use quarry_alerts::AlertError;
use quarry_query::spec::QuerySpec;
use serde_json::{Value, json};

use crate::auth::Environment;
use crate::error::ApiError;
use crate::state::AppState;

type Created = (StatusCode, Json<Value>);

fn body_json(body: &Bytes) -> Result<Value, ApiError> {
    if body.is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_slice(body)
        .map_err(|error| ApiError::BadRequest(format!("invalid JSON body: {error}")))
}

fn created(value: Value) -> Created {
    (StatusCode::CREATED, Json(value))
}

/// The saved query a trigger body names by `query_id` (when it has no `query`).
fn saved_query(
    state: &AppState,
    env: &str,
    dataset: &str,
    body: &Value,
) -> Result<Option<QuerySpec>, ApiError> {
    if body.get("query").is_some_and(|query| !query.is_null()) {
        return Ok(None);
    }
    match body.get("query_id") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(id)) => state
            .saved_queries
            .query(env, dataset, id)
            .map(Some)
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "query_id: no saved query {id} in dataset {dataset}"
                ))
            }),
        Some(other) => Err(ApiError::BadRequest(format!(
            "query_id: expected a string, got {other}"
        ))),
    }
}

// --------------------------------------------------------------------- markers

/// `POST /1/markers/{dataset}`.
pub async fn create_marker(
    State(state): State<AppState>,
    Environment(env): Environment,
    dataset: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Created, ApiError> {
    let Path(dataset) = dataset?;
    Ok(created(
        state
            .alerts
            .create_marker(&env, &dataset, &body_json(&body)?)
            .await?,
    ))
}

/// `GET /1/markers/{dataset}`.
pub async fn list_markers(
    State(state): State<AppState>,
    Environment(env): Environment,
    dataset: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(dataset) = dataset?;
    Ok(Json(Value::Array(
        state.alerts.list_markers(&env, &dataset).await,
    )))
}

/// `PUT /1/markers/{dataset}/{id}`.
pub async fn update_marker(
    State(state): State<AppState>,
    Environment(env): Environment,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let Path((dataset, id)) = path?;
    Ok(Json(
        state
            .alerts
            .update_marker(&env, &dataset, &id, &body_json(&body)?)
            .await?,
    ))
}

/// `DELETE /1/markers/{dataset}/{id}`: the deleted marker, as Honeycomb answers.
pub async fn delete_marker(
    State(state): State<AppState>,
    Environment(env): Environment,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path((dataset, id)) = path?;
    Ok(Json(state.alerts.delete_marker(&env, &dataset, &id).await?))
}

/// `POST /1/marker_settings/{dataset}`.
pub async fn create_marker_setting(
    State(state): State<AppState>,
    Environment(env): Environment,
    dataset: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Created, ApiError> {
    let Path(dataset) = dataset?;
    Ok(created(
        state
            .alerts
            .create_marker_setting(&env, &dataset, &body_json(&body)?)
            .await?,
    ))
}

/// `GET /1/marker_settings/{dataset}`.
pub async fn list_marker_settings(
    State(state): State<AppState>,
    Environment(env): Environment,
    dataset: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(dataset) = dataset?;
    Ok(Json(Value::Array(
        state.alerts.list_marker_settings(&env, &dataset).await,
    )))
}

/// `DELETE /1/marker_settings/{dataset}/{id}`.
pub async fn delete_marker_setting(
    State(state): State<AppState>,
    Environment(env): Environment,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path((dataset, id)) = path?;
    state
        .alerts
        .delete_marker_setting(&env, &dataset, &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ------------------------------------------------------------------ recipients

/// `POST /1/recipients`.
pub async fn create_recipient(
    State(state): State<AppState>,
    Environment(env): Environment,
    body: Bytes,
) -> Result<Created, ApiError> {
    Ok(created(
        state
            .alerts
            .create_recipient(&env, &body_json(&body)?)
            .await?,
    ))
}

/// `GET /1/recipients`.
pub async fn list_recipients(
    State(state): State<AppState>,
    Environment(env): Environment,
) -> Json<Value> {
    Json(Value::Array(state.alerts.list_recipients(&env).await))
}

/// `GET /1/recipients/{id}`.
pub async fn get_recipient(
    State(state): State<AppState>,
    Environment(env): Environment,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(id) = id?;
    Ok(Json(state.alerts.get_recipient(&env, &id).await?))
}

/// `PUT /1/recipients/{id}`.
pub async fn update_recipient(
    State(state): State<AppState>,
    Environment(env): Environment,
    id: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let Path(id) = id?;
    Ok(Json(
        state
            .alerts
            .update_recipient(&env, &id, &body_json(&body)?)
            .await?,
    ))
}

/// `DELETE /1/recipients/{id}`.
pub async fn delete_recipient(
    State(state): State<AppState>,
    Environment(env): Environment,
    id: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(id) = id?;
    state.alerts.delete_recipient(&env, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// -------------------------------------------------------------------- triggers

/// `POST /1/triggers/{dataset}`.
pub async fn create_trigger(
    State(state): State<AppState>,
    Environment(env): Environment,
    dataset: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Created, ApiError> {
    let Path(dataset) = dataset?;
    let body = body_json(&body)?;
    let saved = saved_query(&state, &env, &dataset, &body)?;
    Ok(created(
        state
            .alerts
            .create_trigger(&env, &dataset, &body, saved)
            .await?,
    ))
}

/// `GET /1/triggers/{dataset}`.
pub async fn list_triggers(
    State(state): State<AppState>,
    Environment(env): Environment,
    dataset: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(dataset) = dataset?;
    Ok(Json(Value::Array(
        state.alerts.list_triggers(&env, &dataset).await,
    )))
}

/// `GET /1/triggers/{dataset}/{id}`.
pub async fn get_trigger(
    State(state): State<AppState>,
    Environment(env): Environment,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path((dataset, id)) = path?;
    Ok(Json(state.alerts.get_trigger(&env, &dataset, &id).await?))
}

/// `PUT /1/triggers/{dataset}/{id}`.
pub async fn update_trigger(
    State(state): State<AppState>,
    Environment(env): Environment,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let Path((dataset, id)) = path?;
    let body = body_json(&body)?;
    let saved = saved_query(&state, &env, &dataset, &body)?;
    Ok(Json(
        state
            .alerts
            .update_trigger(&env, &dataset, &id, &body, saved)
            .await?,
    ))
}

/// `DELETE /1/triggers/{dataset}/{id}`.
pub async fn delete_trigger(
    State(state): State<AppState>,
    Environment(env): Environment,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path((dataset, id)) = path?;
    state.alerts.delete_trigger(&env, &dataset, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ------------------------------------------------------------------------ SLOs

/// `POST /1/slos/{dataset}`.
pub async fn create_slo(
    State(state): State<AppState>,
    Environment(env): Environment,
    dataset: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Created, ApiError> {
    let Path(dataset) = dataset?;
    Ok(created(
        state
            .alerts
            .create_slo(&env, &dataset, &body_json(&body)?)
            .await?,
    ))
}

/// `GET /1/slos/{dataset}`.
pub async fn list_slos(
    State(state): State<AppState>,
    Environment(env): Environment,
    dataset: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(dataset) = dataset?;
    Ok(Json(Value::Array(
        state.alerts.list_slos(&env, &dataset).await,
    )))
}

/// `GET /1/slos/{dataset}/{id}[?source=raw][&history_step=SECONDS]`: the SLO
/// with compliance, budget left, burn rates and history.
pub async fn get_slo(
    State(state): State<AppState>,
    Environment(env): Environment,
    path: Result<Path<(String, String)>, PathRejection>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let Path((dataset, id)) = path?;
    let raw = match params.get("source").map(String::as_str) {
        None | Some("rollup") => false,
        Some("raw") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "source: {other:?} is not rollup or raw"
            )));
        }
    };
    let step = match params.get("history_step") {
        None => None,
        Some(text) => Some(
            text.parse::<i64>()
                .ok()
                .filter(|step| (60..=86_400 * 90).contains(step))
                .ok_or_else(|| {
                    ApiError::BadRequest("history_step: seconds from 60 to 7776000".into())
                })?,
        ),
    };
    Ok(Json(
        state
            .alerts
            .slo_report(&env, &dataset, &id, raw, step)
            .await?,
    ))
}

/// `PUT /1/slos/{dataset}/{id}`.
pub async fn update_slo(
    State(state): State<AppState>,
    Environment(env): Environment,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let Path((dataset, id)) = path?;
    Ok(Json(
        state
            .alerts
            .update_slo(&env, &dataset, &id, &body_json(&body)?)
            .await?,
    ))
}

/// `DELETE /1/slos/{dataset}/{id}`.
pub async fn delete_slo(
    State(state): State<AppState>,
    Environment(env): Environment,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path((dataset, id)) = path?;
    state.alerts.delete_slo(&env, &dataset, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ----------------------------------------------------------------- burn alerts

/// `POST /1/burn_alerts/{dataset}`.
pub async fn create_burn_alert(
    State(state): State<AppState>,
    Environment(env): Environment,
    dataset: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Created, ApiError> {
    let Path(dataset) = dataset?;
    Ok(created(
        state
            .alerts
            .create_burn_alert(&env, &dataset, &body_json(&body)?)
            .await?,
    ))
}

/// `GET /1/burn_alerts/{dataset}[?slo_id=ID]`.
pub async fn list_burn_alerts(
    State(state): State<AppState>,
    Environment(env): Environment,
    dataset: Result<Path<String>, PathRejection>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let Path(dataset) = dataset?;
    let slo = params.get("slo_id").map(String::as_str);
    Ok(Json(Value::Array(
        state.alerts.list_burn_alerts(&env, &dataset, slo).await,
    )))
}

/// `GET /1/burn_alerts/{dataset}/{id}`.
pub async fn get_burn_alert(
    State(state): State<AppState>,
    Environment(env): Environment,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path((dataset, id)) = path?;
    Ok(Json(
        state.alerts.get_burn_alert(&env, &dataset, &id).await?,
    ))
}

/// `PUT /1/burn_alerts/{dataset}/{id}`.
pub async fn update_burn_alert(
    State(state): State<AppState>,
    Environment(env): Environment,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let Path((dataset, id)) = path?;
    Ok(Json(
        state
            .alerts
            .update_burn_alert(&env, &dataset, &id, &body_json(&body)?)
            .await?,
    ))
}

/// `DELETE /1/burn_alerts/{dataset}/{id}`.
pub async fn delete_burn_alert(
    State(state): State<AppState>,
    Environment(env): Environment,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path((dataset, id)) = path?;
    state.alerts.delete_burn_alert(&env, &dataset, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ----------------------------------------------------------------------- admin

/// `POST /api/v1/admin/alerts/evaluate` with `{"now": unix seconds}` (manual
/// alert clock only) or no body: one evaluation pass, then one delivery pass.
pub async fn evaluate(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    if !state.alerts.config().enabled || !state.store.holds_maintenance_lease() {
        return Err(ApiError::WrongRole(
            "this node does not evaluate alerts (see [alerts] enabled and the maintenance lease)"
                .into(),
        ));
    }
    let body = body_json(&body)?;
    if let Some(now) = body.get("now") {
        let seconds = now
            .as_f64()
            .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e10)
            .ok_or_else(|| {
                ApiError::BadRequest(format!("now: expected unix seconds, got {now}"))
            })?;
        state.alerts.set_now_ns((seconds * 1e9) as i64)?;
    }
    let now = state.alerts.now_ns();
    let report = state.alerts.evaluate(now).await;
    let delivered = state.alerts.deliver().await;
    Ok(Json(json!({
        "now": now as f64 / 1e9,
        "triggers_evaluated": report.triggers_evaluated,
        "slos_evaluated": report.slos_evaluated,
        "notifications": report.notifications,
        "delivered": delivered,
        "outbox": state.alerts.outbox_len().await,
        "errors": report.errors,
    })))
}

impl From<AlertError> for ApiError {
    fn from(error: AlertError) -> Self {
        let message = error.to_string();
        match error {
            AlertError::Invalid(_) => ApiError::BadRequest(message),
            AlertError::NotFound(_) => ApiError::NotFound(message),
            AlertError::TooMany(_) => ApiError::Conflict(message),
            AlertError::Storage(_) | AlertError::Query(_) => ApiError::Internal(message),
        }
    }
}
