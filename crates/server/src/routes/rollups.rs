//! `/api/v1/rollups/{dataset}[/{name}]`: create, list, read and delete a dataset's
//! rollups (docs/rollups.md). Creations are committed to the manifest, so they
//! survive restarts; a new rollup is backfilled in the background and its status
//! shows the progress (`segments_done` / `segments_total`).

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use quarry_rollup::{self as rollup, RollupStatus};
use quarry_segment_store::RollupDefinition;
use serde_json::{Value, json};

use crate::auth::Environment;
use crate::error::ApiError;
use crate::state::AppState;

/// `POST /api/v1/rollups/{dataset}`: 201 with the new rollup's status.
pub async fn create(
    State(state): State<AppState>,
    Environment(environment): Environment,
    dataset: Result<Path<String>, PathRejection>,
    definition: Result<Json<RollupDefinition>, JsonRejection>,
) -> Result<(StatusCode, Json<RollupStatus>), ApiError> {
    let Path(dataset) = dataset?;
    let Json(definition) = definition?;
    let status = rollup::create_rollup(
        &state.store,
        &state.engine,
        &environment,
        &dataset,
        definition,
    )
    .await
    .map_err(ApiError::from)?;
    Ok((StatusCode::CREATED, Json(status)))
}

/// `GET /api/v1/rollups/{dataset}`: `{"rollups": [status, ...]}`.
pub async fn list(
    State(state): State<AppState>,
    Environment(environment): Environment,
    dataset: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path(dataset) = dataset?;
    let statuses =
        rollup::list_rollups(&state.store, &environment, &dataset).map_err(ApiError::from)?;
    Ok(Json(json!({ "rollups": statuses })))
}

/// `GET /api/v1/rollups/{dataset}/{name}`: one rollup's status.
pub async fn get(
    State(state): State<AppState>,
    Environment(environment): Environment,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<RollupStatus>, ApiError> {
    let Path((dataset, name)) = path?;
    let status =
        rollup::get_rollup(&state.store, &environment, &dataset, &name).map_err(ApiError::from)?;
    Ok(Json(status))
}

/// `DELETE /api/v1/rollups/{dataset}/{name}`: 204.
pub async fn delete(
    State(state): State<AppState>,
    Environment(environment): Environment,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path((dataset, name)) = path?;
    rollup::delete_rollup(&state.store, &environment, &dataset, &name)
        .await
        .map_err(ApiError::from)?;
    Ok(StatusCode::NO_CONTENT)
}
