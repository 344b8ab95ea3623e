//! What a sketch aggregate reads (values with weights, or sketches) and what it
//! returns (a quantile, or the sketch itself), and the two accumulators built from
//! them: one sketch for an ungrouped aggregate, one per group otherwise.

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BinaryBuilder, BooleanArray, Float64Array,
};
use arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result, ScalarValue};
use datafusion::logical_expr::{Accumulator, EmitTo, GroupsAccumulator};
use quarry_sketch::{QuantileSketch, SketchError};

use super::args::{as_floats, row_weight};

/// What the aggregate's rows hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum SketchInput {
    /// `(value, weight)` pairs.
    Values,
    /// Encoded sketches to merge.
    Sketches,
}

/// What the aggregate returns per group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum SketchOutput {
    /// The weighted quantile `q`, Float64.
    Quantile(f64),
    /// The encoded sketch, Binary.
    Sketch,
}

impl SketchOutput {
    /// The output of one sketch (null when nothing was added).
    fn scalar(self, sketch: &QuantileSketch) -> ScalarValue {
        match self {
            SketchOutput::Quantile(q) => ScalarValue::Float64(sketch.quantile(q)),
            SketchOutput::Sketch => {
                ScalarValue::Binary((!sketch.is_empty()).then(|| sketch.to_bytes()))
            }
        }
    }

    /// The outputs of many sketches, in order.
    fn array(self, sketches: &[QuantileSketch]) -> ArrayRef {
        match self {
            SketchOutput::Quantile(q) => std::sync::Arc::new(
                sketches
                    .iter()
                    .map(|sketch| sketch.quantile(q))
                    .collect::<Float64Array>(),
            ),
            SketchOutput::Sketch => std::sync::Arc::new(
                sketches
                    .iter()
                    .map(|sketch| (!sketch.is_empty()).then(|| sketch.to_bytes()))
                    .collect::<BinaryArray>(),
            ),
        }
    }
}

/// The arrays of one batch, ready to be added row by row.
enum Rows {
    Values {
        values: Float64Array,
        weights: Float64Array,
    },
    Sketches(BinaryArray),
}

impl Rows {
    fn new(input: SketchInput, arrays: &[ArrayRef]) -> Result<Rows> {
        let Some(first) = arrays.first() else {
            return Err(DataFusionError::Internal(
                "sketch aggregate without arguments".into(),
            ));
        };
        Ok(match input {
            SketchInput::Values => Rows::Values {
                values: as_floats(first)?,
                weights: match arrays.get(1) {
                    Some(weights) => as_floats(weights)?,
                    None => Float64Array::new_null(first.len()),
                },
            },
            SketchInput::Sketches => Rows::Sketches(binary(first)?),
        })
    }

    /// Adds row `row` to `sketch`. Null or non-finite values and rows whose weight
    /// is not positive are skipped; a null weight counts as 1.
    fn add(&self, sketch: &mut QuantileSketch, row: usize) -> Result<()> {
        match self {
            Rows::Values { values, weights } => {
                if values.is_null(row) {
                    return Ok(());
                }
                let value = values.value(row);
                if let (true, Some(weight)) = (value.is_finite(), row_weight(weights, row)) {
                    sketch.add(value, weight).map_err(sketch_error)?;
                }
                Ok(())
            }
            Rows::Sketches(sketches) => {
                if sketches.is_null(row) {
                    return Ok(());
                }
                let other =
                    QuantileSketch::from_bytes(sketches.value(row)).map_err(sketch_error)?;
                sketch.merge(&other).map_err(sketch_error)
            }
        }
    }
}

/// A Binary view of an argument (Binary, LargeBinary, BinaryView or Null).
fn binary(array: &ArrayRef) -> Result<BinaryArray> {
    let cast = arrow::compute::cast(array, &DataType::Binary)?;
    Ok(cast.as_binary::<i32>().clone())
}

/// A sketch error as a query execution error.
pub(crate) fn sketch_error(error: SketchError) -> DataFusionError {
    DataFusionError::Execution(format!("quantile sketch: {error}"))
}

/// Whether row `row` passes the aggregate's `FILTER` clause.
fn passes(filter: Option<&BooleanArray>, row: usize) -> bool {
    filter.is_none_or(|filter| filter.is_valid(row) && filter.value(row))
}

/// Heap bytes of a sketch (its inline part is counted with the vector holding it).
fn heap_bytes(sketch: &QuantileSketch) -> usize {
    sketch.size_bytes() - size_of::<QuantileSketch>()
}

/// The accumulator of an ungrouped aggregate: one sketch.
#[derive(Debug)]
pub(crate) struct SketchAccumulator {
    input: SketchInput,
    output: SketchOutput,
    sketch: QuantileSketch,
}

impl SketchAccumulator {
    pub(crate) fn new(input: SketchInput, output: SketchOutput) -> Self {
        SketchAccumulator {
            input,
            output,
            sketch: QuantileSketch::new(),
        }
    }
}

impl Accumulator for SketchAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let rows = Rows::new(self.input, values)?;
        let len = values.first().map_or(0, |array| array.len());
        for row in 0..len {
            rows.add(&mut self.sketch, row)?;
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(self.output.scalar(&self.sketch))
    }

    fn size(&self) -> usize {
        size_of_val(self) + heap_bytes(&self.sketch)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Binary(Some(self.sketch.to_bytes()))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let rows = Rows::new(SketchInput::Sketches, states)?;
        let len = states.first().map_or(0, |array| array.len());
        for row in 0..len {
            rows.add(&mut self.sketch, row)?;
        }
        Ok(())
    }
}

/// The accumulator of a grouped aggregate: a sketch per group, in one vector, with
/// a running count of their heap bytes so `size()` is O(1) and DataFusion's
/// memory pool sees every group (and spills or refuses before memory runs out).
pub(crate) struct SketchGroupsAccumulator {
    input: SketchInput,
    output: SketchOutput,
    sketches: Vec<QuantileSketch>,
    heap: usize,
}

impl SketchGroupsAccumulator {
    pub(crate) fn new(input: SketchInput, output: SketchOutput) -> Self {
        SketchGroupsAccumulator {
            input,
            output,
            sketches: Vec::new(),
            heap: 0,
        }
    }

    fn add_rows(
        &mut self,
        rows: &Rows,
        group_indices: &[usize],
        filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        if self.sketches.len() < total_num_groups {
            self.sketches
                .resize_with(total_num_groups, QuantileSketch::new);
        }
        for (row, group) in group_indices.iter().enumerate() {
            if !passes(filter, row) {
                continue;
            }
            let Some(sketch) = self.sketches.get_mut(*group) else {
                return Err(DataFusionError::Internal(format!(
                    "group {group} out of range"
                )));
            };
            let before = heap_bytes(sketch);
            rows.add(sketch, row)?;
            self.heap = self.heap + heap_bytes(sketch) - before;
        }
        Ok(())
    }

    /// Removes the groups to emit, keeping the heap count right.
    fn take(&mut self, emit_to: EmitTo) -> Vec<QuantileSketch> {
        let taken = emit_to.take_needed(&mut self.sketches);
        let freed: usize = taken.iter().map(heap_bytes).sum();
        self.heap = self.heap.saturating_sub(freed);
        taken
    }
}

impl GroupsAccumulator for SketchGroupsAccumulator {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let rows = Rows::new(self.input, values)?;
        self.add_rows(&rows, group_indices, opt_filter, total_num_groups)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let taken = self.take(emit_to);
        Ok(self.output.array(&taken))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let taken = self.take(emit_to);
        Ok(vec![SketchOutput::Sketch.array(&taken)])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        let rows = Rows::new(SketchInput::Sketches, values)?;
        self.add_rows(&rows, group_indices, None, total_num_groups)
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let rows = Rows::new(self.input, values)?;
        let len = values.first().map_or(0, |array| array.len());
        let mut builder = BinaryBuilder::with_capacity(len, len * 64);
        for row in 0..len {
            let mut sketch = QuantileSketch::new();
            if passes(opt_filter, row) {
                rows.add(&mut sketch, row)?;
            }
            if sketch.is_empty() {
                builder.append_null();
            } else {
                builder.append_value(sketch.to_bytes());
            }
        }
        Ok(vec![std::sync::Arc::new(builder.finish())])
    }

    fn size(&self) -> usize {
        self.sketches.capacity() * size_of::<QuantileSketch>() + self.heap
    }
}
