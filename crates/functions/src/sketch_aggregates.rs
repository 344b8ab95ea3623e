//! The sketch aggregates:
//!
//! - `quarry_quantile(value, weight, q)` -> Float64: the weighted `q`-quantile,
//!   within 1% of the exact value (exact at `q = 0` and `q = 1`);
//! - `quarry_sketch(value, weight)` -> Binary: the sketch itself, for rollups;
//! - `quarry_sketch_merge(sketch)` -> Binary: many sketches merged into one.
//!
//! All three share one state (an encoded [`QuantileSketch`]), so partial results
//! from partitions merge exactly, and one per-group accumulator that keeps every
//! group's sketch in a vector (200,000 groups cost 200,000 small sketches, counted
//! in the memory pool).
//!
//! [`QuantileSketch`]: quarry_sketch::QuantileSketch

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{Result, plan_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, GroupsAccumulator, Signature, Volatility,
};

use super::args::{constant_arg, float_arg, quantile_arg};
use super::sketch_rows::{SketchAccumulator, SketchGroupsAccumulator, SketchInput, SketchOutput};

/// Name of the weighted quantile aggregate.
pub const QUANTILE: &str = "quarry_quantile";
/// Name of the sketch-building aggregate.
pub const SKETCH: &str = "quarry_sketch";
/// Name of the sketch-merging aggregate.
pub const SKETCH_MERGE: &str = "quarry_sketch_merge";

/// Which of the three aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Quantile,
    Sketch,
    SketchMerge,
}

/// One of the sketch aggregates (see the module docs).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SketchAggregate {
    kind: Kind,
    signature: Signature,
}

impl SketchAggregate {
    /// `quarry_quantile(value, weight, q)`.
    pub fn quantile() -> Self {
        Self::new(Kind::Quantile)
    }

    /// `quarry_sketch(value, weight)`.
    pub fn sketch() -> Self {
        Self::new(Kind::Sketch)
    }

    /// `quarry_sketch_merge(sketch)`.
    pub fn sketch_merge() -> Self {
        Self::new(Kind::SketchMerge)
    }

    fn new(kind: Kind) -> Self {
        SketchAggregate {
            kind,
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }

    fn input(&self) -> SketchInput {
        match self.kind {
            Kind::Quantile | Kind::Sketch => SketchInput::Values,
            Kind::SketchMerge => SketchInput::Sketches,
        }
    }

    fn output(&self, args: &AccumulatorArgs) -> Result<SketchOutput> {
        match self.kind {
            Kind::Quantile => {
                let Some(q) = args.exprs.get(2) else {
                    return plan_err!("{QUANTILE} takes (value, weight, q)");
                };
                Ok(SketchOutput::Quantile(quantile_arg(
                    QUANTILE,
                    &constant_arg(QUANTILE, q)?,
                )?))
            }
            Kind::Sketch | Kind::SketchMerge => Ok(SketchOutput::Sketch),
        }
    }
}

impl AggregateUDFImpl for SketchAggregate {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Quantile => QUANTILE,
            Kind::Sketch => SKETCH,
            Kind::SketchMerge => SKETCH_MERGE,
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let name = self.name();
        match (self.kind, arg_types) {
            (Kind::Quantile, [value, weight, q]) => Ok(vec![
                float_arg(name, "value", value)?,
                float_arg(name, "weight", weight)?,
                float_arg(name, "q", q)?,
            ]),
            (Kind::Sketch, [value, weight]) => Ok(vec![
                float_arg(name, "value", value)?,
                float_arg(name, "weight", weight)?,
            ]),
            (Kind::SketchMerge, [sketch]) => match sketch {
                DataType::Binary
                | DataType::LargeBinary
                | DataType::BinaryView
                | DataType::Null => Ok(vec![DataType::Binary]),
                other => plan_err!("{name}: sketch must be binary, got {other}"),
            },
            (Kind::Quantile, _) => plan_err!("{name} takes (value, weight, q)"),
            (Kind::Sketch, _) => plan_err!("{name} takes (value, weight)"),
            (Kind::SketchMerge, _) => plan_err!("{name} takes (sketch)"),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(match self.kind {
            Kind::Quantile => DataType::Float64,
            Kind::Sketch | Kind::SketchMerge => DataType::Binary,
        })
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(SketchAccumulator::new(
            self.input(),
            self.output(&args)?,
        )))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format_state_name(args.name, "sketch"),
            DataType::Binary,
            true,
        ))])
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(SketchGroupsAccumulator::new(
            self.input(),
            self.output(&args)?,
        )))
    }
}
