//! The ingest pipeline's API (docs/pipeline.md): an environment's redaction rules
//! and quotas, read and replaced at runtime, and its usage.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use crate::auth::Environment;
use crate::error::ApiError;
use crate::names;
use crate::pipeline::rules::EnvironmentRules;
use crate::state::AppState;

/// `GET /api/v1/admin/pipeline/{environment}`: the environment's rules.
pub async fn get_rules(
    State(state): State<AppState>,
    _caller: Environment,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<EnvironmentRules>, ApiError> {
    let Path(environment) = path?;
    let environment = names::environment_name(&environment)?;
    Ok(Json(state.pipeline.rules(environment)))
}

/// `PUT /api/v1/admin/pipeline/{environment}`: replaces the environment's rules
/// (validated, then persisted); answers the rules now in force. A bad rule is a
/// 400 naming its field (`redaction[1].regex: ...`).
pub async fn put_rules(
    State(state): State<AppState>,
    _caller: Environment,
    path: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Result<Json<EnvironmentRules>, ApiError> {
    let Path(environment) = path?;
    let environment = names::environment_name(&environment)?;
    let rules = EnvironmentRules::from_json(&body).map_err(crate::pipeline::PipelineError::from)?;
    state.pipeline.set_rules(environment, rules).await?;
    Ok(Json(state.pipeline.rules(environment)))
}

/// `GET /api/v1/usage`: the caller's environment's usage per dataset and hour
/// (events, bytes in, bytes stored), the last 48 hours this node saw.
pub async fn usage(
    State(state): State<AppState>,
    Environment(environment): Environment,
) -> Result<Json<Value>, ApiError> {
    let usage = state.pipeline.usage(&environment);
    Ok(Json(json!({ "environment": environment, "usage": usage })))
}
