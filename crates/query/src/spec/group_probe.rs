//! A look at the first rows of the one pass: do its breakdown keys have so many
//! values that states per (time bucket, keys) would be about as many as the rows?
//!
//! The one pass keeps a state per (time bucket, group): cheap for a breakdown by
//! service or route, but a breakdown by customer or user id makes nearly every
//! event a state of its own, and merging those (with their exemplar lists) cost
//! several times the scan. Such a spec answers in two passes instead (see
//! `run::two_passes`): groups by keys alone, then the time series and exemplars of
//! the top groups' rows only.
//!
//! Nothing tells the number of values before the scan, so the pass counts the
//! distinct keys of its first [`PROBE_ROWS`] rows, shared by all its partitions,
//! and ends its input as soon as they reach the engine's `spec_many_groups`
//! (4,096 by default): the cost of a wrong start is a few thousand rows. Either way the answer is the same; the probe
//! only picks the cheaper route to it.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::row::{RowConverter, SortField};
use datafusion::common::Result;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PhysicalExpr, PlanProperties,
};
use futures::{StreamExt, future};

/// Rows the probe looks at before it lets the pass run on.
const PROBE_ROWS: usize = 65_536;

const UNDECIDED: u8 = 0;
const FEW: u8 = 1;
const MANY: u8 = 2;

/// The verdict on one pass's keys, shared by its partitions.
pub(crate) struct GroupProbe {
    /// Distinct keys among the probed rows that make the keys "many".
    many_keys: usize,
    verdict: AtomicU8,
    seen: Mutex<Seen>,
}

struct Seen {
    rows: usize,
    keys: HashSet<Box<[u8]>>,
}

impl GroupProbe {
    pub(crate) fn new(many_keys: usize) -> Arc<GroupProbe> {
        Arc::new(GroupProbe {
            many_keys,
            verdict: AtomicU8::new(UNDECIDED),
            seen: Mutex::new(Seen {
                rows: 0,
                keys: HashSet::new(),
            }),
        })
    }

    /// Whether the probed rows had many distinct keys.
    pub(crate) fn found_many(&self) -> bool {
        self.verdict.load(Ordering::Acquire) == MANY
    }

    /// Counts the keys of `batch` while undecided.
    fn look(&self, keys: &[Arc<dyn PhysicalExpr>], batch: &RecordBatch) -> Result<()> {
        if self.verdict.load(Ordering::Acquire) != UNDECIDED || batch.num_rows() == 0 {
            return Ok(());
        }
        let columns = keys
            .iter()
            .map(|key| key.evaluate(batch)?.into_array(batch.num_rows()))
            .collect::<Result<Vec<_>>>()?;
        let converter = RowConverter::new(
            columns
                .iter()
                .map(|column| SortField::new(column.data_type().clone()))
                .collect(),
        )?;
        let rows = converter.convert_columns(&columns)?;
        // A poisoned lock only means another partition panicked mid-count: its
        // counts are still counts.
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for row in rows.iter() {
            if !seen.keys.contains(row.as_ref()) {
                seen.keys.insert(row.as_ref().into());
            }
        }
        seen.rows += batch.num_rows();
        if seen.keys.len() >= self.many_keys {
            self.verdict.store(MANY, Ordering::Release);
        } else if seen.rows >= PROBE_ROWS {
            self.verdict.store(FEW, Ordering::Release);
        }
        if self.verdict.load(Ordering::Acquire) != UNDECIDED {
            seen.keys = HashSet::new();
        }
        Ok(())
    }
}

/// Passes its input's batches through [`GroupProbe::look`]; ends every
/// partition's stream once the probe finds many keys.
#[derive(Debug)]
pub(crate) struct GroupProbeExec {
    input: Arc<dyn ExecutionPlan>,
    /// The breakdown keys, over the input's columns.
    keys: Vec<Arc<dyn PhysicalExpr>>,
    probe: Arc<GroupProbe>,
}

impl fmt::Debug for GroupProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupProbe")
            .field("verdict", &self.verdict.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl GroupProbeExec {
    pub(crate) fn new(
        input: Arc<dyn ExecutionPlan>,
        keys: Vec<Arc<dyn PhysicalExpr>>,
        probe: Arc<GroupProbe>,
    ) -> GroupProbeExec {
        GroupProbeExec { input, keys, probe }
    }
}

impl DisplayAs for GroupProbeExec {
    fn fmt_as(&self, _format: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "GroupProbeExec: keys={}", self.keys.len())
    }
}

impl ExecutionPlan for GroupProbeExec {
    fn name(&self) -> &str {
        "GroupProbeExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        for key in &self.keys {
            if f(key)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some(input) = children.pop() else {
            return Err(datafusion::common::DataFusionError::Internal(
                "GroupProbeExec takes one input".into(),
            ));
        };
        Ok(Arc::new(GroupProbeExec {
            input,
            keys: self.keys.clone(),
            probe: Arc::clone(&self.probe),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let schema = input.schema();
        let keys = self.keys.clone();
        let looking = Arc::clone(&self.probe);
        let deciding = Arc::clone(&self.probe);
        let stream = input
            .map(move |batch| {
                let batch = batch?;
                looking.look(&keys, &batch)?;
                Ok(batch)
            })
            .take_while(move |_| future::ready(!deciding.found_many()));
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_expr::expressions::Column;

    fn batch(values: impl IntoIterator<Item = i64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, true)]));
        let column: ArrayRef = Arc::new(Int64Array::from_iter_values(values));
        RecordBatch::try_new(schema, vec![column]).unwrap_or_else(|error| panic!("{error}"))
    }

    fn key() -> Vec<Arc<dyn PhysicalExpr>> {
        vec![Arc::new(Column::new("k", 0))]
    }

    #[test]
    fn few_keys_over_the_probed_rows_are_few() {
        let probe = GroupProbe::new(4_096);
        for _ in 0..PROBE_ROWS / 1024 {
            probe
                .look(&key(), &batch((0..1024).map(|i| i % 50)))
                .unwrap_or_else(|error| panic!("{error}"));
        }
        assert_eq!(probe.verdict.load(Ordering::Acquire), FEW);
        assert!(!probe.found_many());
    }

    #[test]
    fn many_keys_are_found_as_soon_as_they_are_seen() {
        let probe = GroupProbe::new(4_096);
        probe
            .look(&key(), &batch(0..4_095))
            .unwrap_or_else(|error| panic!("{error}"));
        assert!(!probe.found_many());
        probe
            .look(&key(), &batch([-1]))
            .unwrap_or_else(|error| panic!("{error}"));
        assert!(probe.found_many());
    }
}
