//! Rows other nodes have not sealed yet. On a query node of a cluster, every
//! dataset snapshot a query reads gets the ingest nodes' unsealed rows added,
//! so a query on any node sees every acknowledged event, as one node does.
//!
//! Why no row is counted twice or missed while it moves from an ingest node's
//! buffer to a segment: an ingest node answers with its rows in groups that are
//! sealed whole, each with the highest WAL sequence in it, and with the sequence
//! up to which its rows are in committed segments (`sealed_seq`). Seals of one
//! dataset commit in sequence order, and a node drops rows only after their
//! commit. So, with `M` the sequence up to which this node's manifest shows
//! that ingest node's rows in segments:
//! - every row after `M` was in the answer (it was sealed after the answer was
//!   taken, or is still unsealed), provided `M >= sealed_seq`: when the
//!   manifest here is behind, it is brought up to date first;
//! - a group whose highest sequence is at most `M` is in the snapshot's
//!   segments, and is left out; any other group is wholly after `M` (a seal
//!   takes a node's whole buffer), and is added.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use quarry_segment_store::{BufferSnapshot, DatasetSnapshot, RollupSet};

use crate::QueryError;
use crate::source::SharedSource;

/// Where the ingest nodes' unsealed rows come from.
#[async_trait]
pub trait RemoteBuffers: Send + Sync + 'static {
    /// Each ingest node's unsealed rows of one dataset (nodes that hold none of
    /// it may be left out). An unreachable node is an error
    /// ([`QueryError::IngestUnavailable`]): its rows would be missing.
    async fn fetch(&self, env: &str, dataset: &str) -> Result<Vec<NodeBuffer>, QueryError>;

    /// Names of the datasets of `env` the ingest nodes hold unsealed rows of.
    async fn datasets(&self, env: &str) -> Result<Vec<String>, QueryError>;
}

/// One ingest node's unsealed rows of one dataset.
#[derive(Debug, Clone)]
pub struct NodeBuffer {
    /// The node's id, as its seals name it in the manifest.
    pub node: String,
    pub buffer: BufferSnapshot,
}

/// How many times a snapshot waits for this node's manifest to show an ingest
/// node's latest seal, and how long each wait is: about a second in all, the
/// time query nodes take to see a commit.
const CATCH_UP_ATTEMPTS: usize = 40;
const CATCH_UP_PAUSE: Duration = Duration::from_millis(25);

/// This node's datasets, with the ingest nodes' unsealed rows when there are
/// ingest nodes to ask.
#[derive(Clone)]
pub(crate) struct LiveDatasets {
    pub(crate) source: SharedSource,
    pub(crate) remote: Option<Arc<dyn RemoteBuffers>>,
}

impl fmt::Debug for LiveDatasets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveDatasets")
            .field("remote", &self.remote.is_some())
            .finish()
    }
}

impl LiveDatasets {
    /// The names of the datasets of `env`, here or only in ingest nodes' buffers.
    pub(crate) async fn names(&self, env: &str) -> Result<Vec<String>, QueryError> {
        let mut names = self.source.0.datasets(env);
        if let Some(remote) = &self.remote {
            names.extend(remote.datasets(env).await?);
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// A consistent snapshot of one dataset and its rollups (`None`: no such
    /// dataset anywhere).
    pub(crate) async fn snapshot(
        &self,
        env: &str,
        dataset: &str,
    ) -> Result<Option<(DatasetSnapshot, RollupSet)>, QueryError> {
        let Some(remote) = &self.remote else {
            return Ok(self.source.0.rollup_snapshot(env, dataset));
        };
        let buffers = remote.fetch(env, dataset).await?;
        for _ in 0..CATCH_UP_ATTEMPTS {
            let local = self.source.0.rollup_snapshot(env, dataset);
            let seen = |node: &str| {
                local
                    .as_ref()
                    .and_then(|(snapshot, _)| snapshot.sealed_seq_by_node.get(node).copied())
                    .unwrap_or(0)
            };
            if buffers
                .iter()
                .all(|node| seen(&node.node) >= node.buffer.sealed_seq)
            {
                return Ok(with_unsealed_rows(local, buffers));
            }
            // An ingest node sealed rows whose commit this node has not read.
            if !self.source.0.catch_up().await? {
                tokio::time::sleep(CATCH_UP_PAUSE).await;
            }
        }
        Err(QueryError::IngestUnavailable(format!(
            "this node's manifest does not yet show the latest seals of dataset {dataset} \
             by the ingest nodes"
        )))
    }
}

/// `local` with the rows of each node's groups that its segments do not hold.
fn with_unsealed_rows(
    local: Option<(DatasetSnapshot, RollupSet)>,
    buffers: Vec<NodeBuffer>,
) -> Option<(DatasetSnapshot, RollupSet)> {
    if local.is_none() && buffers.iter().all(|node| node.buffer.groups.is_empty()) {
        return None;
    }
    let (mut snapshot, rollups) = local.unwrap_or_else(|| {
        let empty = DatasetSnapshot {
            schema: Default::default(),
            segments: Vec::new(),
            buffer: Vec::new(),
            sealed_seq_by_node: BTreeMap::new(),
        };
        (empty, RollupSet::default())
    });
    for node in buffers {
        // A column keeps the type it has here: rows of another type read as
        // nulls where they do not cast (see `pad_to_schema`).
        for (name, field_type) in node.buffer.schema.columns() {
            snapshot.schema.insert(name, field_type);
        }
        let in_segments = snapshot
            .sealed_seq_by_node
            .get(&node.node)
            .copied()
            .unwrap_or(0);
        for group in node.buffer.groups {
            if group.max_seq > in_segments {
                snapshot.buffer.extend(group.batches);
            }
        }
    }
    Some((snapshot, rollups))
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, RecordBatch};
    use quarry_schema::{DatasetSchema, FieldType};
    use quarry_segment_store::BufferGroup;

    use super::*;

    fn rows(values: &[i64]) -> RecordBatch {
        RecordBatch::try_from_iter(vec![(
            "n",
            Arc::new(Int64Array::from(values.to_vec())) as _,
        )])
        .unwrap()
    }

    fn node(name: &str, sealed_seq: u64, groups: Vec<(u64, &[i64])>) -> NodeBuffer {
        let mut schema = DatasetSchema::default();
        schema.insert("n", FieldType::Int);
        NodeBuffer {
            node: name.to_owned(),
            buffer: BufferSnapshot {
                schema,
                sealed_seq,
                groups: groups
                    .into_iter()
                    .map(|(max_seq, values)| BufferGroup {
                        max_seq,
                        batches: vec![rows(values)],
                    })
                    .collect(),
            },
        }
    }

    fn local(sealed: &[(&str, u64)]) -> Option<(DatasetSnapshot, RollupSet)> {
        Some((
            DatasetSnapshot {
                schema: DatasetSchema::default(),
                segments: Vec::new(),
                buffer: vec![rows(&[0])],
                sealed_seq_by_node: sealed
                    .iter()
                    .map(|(node, seq)| ((*node).to_owned(), *seq))
                    .collect(),
            },
            RollupSet::default(),
        ))
    }

    fn values(snapshot: &DatasetSnapshot) -> Vec<i64> {
        snapshot
            .buffer
            .iter()
            .flat_map(|batch| {
                batch
                    .column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect()
    }

    #[test]
    fn groups_already_in_segments_are_left_out() {
        // Node a: sealing group up to 5 (committed and seen here), buffer up to 9.
        // Node b: nothing of it in segments here yet, both groups added.
        let merged = with_unsealed_rows(
            local(&[("a", 5)]),
            vec![
                node("a", 2, vec![(5, &[1, 2]), (9, &[3])]),
                node("b", 0, vec![(4, &[10]), (7, &[11])]),
            ],
        )
        .unwrap()
        .0;
        assert_eq!(values(&merged), vec![0, 3, 10, 11]);
        assert_eq!(merged.schema.get("n"), Some(FieldType::Int));
    }

    #[test]
    fn a_dataset_only_in_buffers_exists() {
        let merged = with_unsealed_rows(None, vec![node("a", 0, vec![(3, &[7])])]);
        assert_eq!(values(&merged.unwrap().0), vec![7]);
        assert!(with_unsealed_rows(None, vec![node("a", 3, vec![])]).is_none());
    }
}
