//! Where the query engine gets datasets from: the segment store, or in tests a
//! hand-built stand-in.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use object_store::ObjectStore;
use quarry_segment_store::{DatasetSnapshot, RollupSet, Store};

use crate::QueryError;

/// The read side of the store the query engine needs.
#[async_trait]
pub trait DatasetSource: Send + Sync + 'static {
    /// A consistent snapshot of one dataset, if it exists.
    fn snapshot(&self, env: &str, dataset: &str) -> Option<DatasetSnapshot>;
    /// Names of the environment's datasets.
    fn datasets(&self, env: &str) -> Vec<String>;
    /// The object store holding every segment file (`SegmentMeta::path` is in it).
    fn object_store(&self) -> Arc<dyn ObjectStore>;
    /// A snapshot of a dataset together with its rollups (sources without rollups
    /// have none).
    fn rollup_snapshot(&self, env: &str, dataset: &str) -> Option<(DatasetSnapshot, RollupSet)> {
        self.snapshot(env, dataset)
            .map(|snapshot| (snapshot, RollupSet::default()))
    }
    /// Reads what other writers committed to a shared manifest since the last
    /// look; whether anything changed (sources of their own never change so).
    async fn catch_up(&self) -> Result<bool, QueryError> {
        Ok(false)
    }
}

#[async_trait]
impl DatasetSource for Store {
    fn snapshot(&self, env: &str, dataset: &str) -> Option<DatasetSnapshot> {
        Store::snapshot(self, env, dataset)
    }

    fn datasets(&self, env: &str) -> Vec<String> {
        Store::datasets(self, env)
            .into_iter()
            .map(|info| info.name)
            .collect()
    }

    fn object_store(&self) -> Arc<dyn ObjectStore> {
        Store::object_store(self)
    }

    fn rollup_snapshot(&self, env: &str, dataset: &str) -> Option<(DatasetSnapshot, RollupSet)> {
        Store::rollup_snapshot(self, env, dataset)
    }

    async fn catch_up(&self) -> Result<bool, QueryError> {
        self.follow_manifest().await.map_err(|error| {
            QueryError::IngestUnavailable(format!("cannot read the manifest: {error}"))
        })
    }
}

/// A shared source, printable for DataFusion's `Debug` bounds.
#[derive(Clone)]
pub(crate) struct SharedSource(pub(crate) Arc<dyn DatasetSource>);

impl fmt::Debug for SharedSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DatasetSource")
    }
}
