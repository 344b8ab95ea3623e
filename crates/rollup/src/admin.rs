//! Creating, listing and deleting rollups (the HTTP API's operations), with the
//! progress of each rollup's backfill.

use std::sync::Arc;

use quarry_segment_store::{
    DatasetSnapshot, PutRollupMode, PutRollupOutcome, Rollup, RollupDefinition, Store,
};
use serde::Serialize;

use super::definition::check;
use super::partial::has_sketch;
use super::store_error;
use quarry_engine::{QueryEngine, QueryError};

/// A rollup and how far its maintenance got, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RollupStatus {
    pub name: String,
    pub id: String,
    pub definition: RollupDefinition,
    /// RFC 3339.
    pub created_at: String,
    /// Sealed raw segments rolled up so far.
    pub segments_done: usize,
    /// Sealed raw segments of the dataset.
    pub segments_total: usize,
    /// Every sealed segment is rolled up (buffered rows are added at query time).
    pub complete: bool,
}

impl RollupStatus {
    /// The status of `rollup` against the segments of `snapshot`.
    pub fn of(rollup: &Rollup, snapshot: &DatasetSnapshot) -> RollupStatus {
        let covered = rollup.covered();
        let done = snapshot
            .segments
            .iter()
            .filter(|segment| covered.contains(segment.path.as_str()))
            .count();
        let total = snapshot.segments.len();
        RollupStatus {
            name: rollup.definition.name.clone(),
            id: rollup.id.clone(),
            definition: rollup.definition.clone(),
            created_at: chrono::DateTime::from_timestamp_nanos(rollup.created_at_ns)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            segments_done: done,
            segments_total: total,
            complete: done == total,
        }
    }
}

/// Creates a rollup of an existing dataset; its backfill starts in the background.
pub async fn create_rollup(
    store: &Store,
    engine: &QueryEngine,
    env: &str,
    dataset: &str,
    definition: RollupDefinition,
) -> Result<RollupStatus, QueryError> {
    let Some(schema) = store.schema(env, dataset) else {
        return Err(QueryError::DatasetNotFound(dataset.to_owned()));
    };
    check(&definition, &schema, has_sketch(&engine.session(env)?))?;
    let name = definition.name.clone();
    match store
        .put_rollup(env, dataset, definition, PutRollupMode::Create)
        .await
        .map_err(store_error)?
    {
        PutRollupOutcome::Created(rollup) => status_of(store, env, dataset, &rollup),
        PutRollupOutcome::Exists(_) | PutRollupOutcome::Declined => {
            Err(QueryError::RollupExists(name))
        }
        PutRollupOutcome::NoDataset => Err(QueryError::DatasetNotFound(dataset.to_owned())),
    }
}

fn status_of(
    store: &Store,
    env: &str,
    dataset: &str,
    rollup: &Arc<Rollup>,
) -> Result<RollupStatus, QueryError> {
    let (snapshot, _) = store
        .rollup_snapshot(env, dataset)
        .ok_or_else(|| QueryError::DatasetNotFound(dataset.to_owned()))?;
    Ok(RollupStatus::of(rollup, &snapshot))
}

/// The rollups of a dataset, by name.
pub fn list_rollups(
    store: &Store,
    env: &str,
    dataset: &str,
) -> Result<Vec<RollupStatus>, QueryError> {
    let (snapshot, set) = store
        .rollup_snapshot(env, dataset)
        .ok_or_else(|| QueryError::DatasetNotFound(dataset.to_owned()))?;
    let mut statuses: Vec<RollupStatus> = set
        .rollups
        .iter()
        .map(|rollup| RollupStatus::of(rollup, &snapshot))
        .collect();
    statuses.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(statuses)
}

/// One rollup of a dataset.
pub fn get_rollup(
    store: &Store,
    env: &str,
    dataset: &str,
    name: &str,
) -> Result<RollupStatus, QueryError> {
    let (snapshot, set) = store
        .rollup_snapshot(env, dataset)
        .ok_or_else(|| QueryError::DatasetNotFound(dataset.to_owned()))?;
    let rollup = set
        .get(name)
        .ok_or_else(|| QueryError::RollupNotFound(name.to_owned()))?;
    Ok(RollupStatus::of(rollup, &snapshot))
}

/// Deletes a rollup and its files.
pub async fn delete_rollup(
    store: &Store,
    env: &str,
    dataset: &str,
    name: &str,
) -> Result<(), QueryError> {
    if store.schema(env, dataset).is_none() {
        return Err(QueryError::DatasetNotFound(dataset.to_owned()));
    }
    if store
        .drop_rollup(env, dataset, name)
        .await
        .map_err(store_error)?
    {
        Ok(())
    } else {
        Err(QueryError::RollupNotFound(name.to_owned()))
    }
}
