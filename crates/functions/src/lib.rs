//! Quarry's own SQL functions: weighted quantiles and mergeable sketches, heatmap
//! buckets, value bins, exemplars and OTLP histogram quantiles.
//!
//! quarry-functions depends only on arrow, DataFusion, the sketch algorithm
//! (`quarry-sketch`) and the vocabulary crate `quarry-schema`: no storage, no
//! engine, no query specs. Their contract is the sqllogictest files in
//! `tests/slt/` (run by `tests/sqllogictests.rs`); their tests through
//! SQL over a dataset (segment plus buffer) live with the engine that registers
//! them (`quarry-engine`, `functions_tests.rs`).
//!
//! Registered in every session ([`register`]), so SQL and the query-spec compiler
//! call the same code; docs/functions.md describes them for users.
//!
//! | function | kind | result |
//! |---|---|---|
//! | `quarry_quantile(value, weight, q)` | aggregate | Float64, within 1% |
//! | `quarry_sketch(value, weight)` | aggregate | Binary sketch |
//! | `quarry_sketch_merge(sketch)` | aggregate | Binary sketch |
//! | `quarry_sketch_quantile(sketch, q)` | scalar | Float64 |
//! | `quarry_heatmap_bucket(value, scale, first, step, step2, count)` | scalar | Int32 |
//! | `quarry_value_bin(value, coarsen)` | scalar | Int64 log-linear bin |
//! | `quarry_exemplars(value, timestamp, trace_id, span_id, dataset)` | aggregate | List<Struct> |
//! | `quarry_histogram_quantile(series, time_ns, delta, bounds, counts, q)` | aggregate | Float64, OTLP histograms |
//! | `quarry_in_sorted(value, sorted)` | scalar | Boolean: `value IN sorted`, one list literal |
//!
//! The `*_expr` helpers build the calls as DataFusion expressions.

mod args;
mod exemplars;
mod heatmap;
mod heatmap_bucket;
mod histogram_quantile;
mod in_sorted;
mod sketch_aggregates;
mod sketch_quantile;
mod sketch_rows;
mod value_bins;

use std::sync::{Arc, LazyLock};

use datafusion::common::Result;
use datafusion::execution::FunctionRegistry;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{AggregateUDF, Expr, ScalarUDF, lit};

pub use exemplars::{EXEMPLARS, ExemplarsUdaf, MAX_EXEMPLARS, exemplar_fields, exemplars_type};
pub use heatmap::{HeatmapBucket, HeatmapScale, HeatmapScheme, LOG_SCALE_MIN_RATIO, MAX_BUCKETS};
pub use heatmap_bucket::{HEATMAP_BUCKET, HeatmapBucketUdf};
pub use histogram_quantile::{HISTOGRAM_QUANTILE, HistogramQuantile};
pub use in_sorted::{IN_SORTED, InSortedUdf};
pub use quarry_sketch::{DEFAULT_RELATIVE_ACCURACY, QuantileSketch};
pub use sketch_aggregates::{QUANTILE, SKETCH, SKETCH_MERGE, SketchAggregate};
pub use sketch_quantile::{SKETCH_QUANTILE, SketchQuantile};
pub use value_bins::{
    FINE_BINS_PER_OCTAVE, MAX_COARSEN, VALUE_BIN, ValueBinUdf, bin_edges, value_bin,
};

static QUANTILE_UDAF: LazyLock<Arc<AggregateUDF>> =
    LazyLock::new(|| Arc::new(AggregateUDF::from(SketchAggregate::quantile())));
static SKETCH_UDAF: LazyLock<Arc<AggregateUDF>> =
    LazyLock::new(|| Arc::new(AggregateUDF::from(SketchAggregate::sketch())));
static SKETCH_MERGE_UDAF: LazyLock<Arc<AggregateUDF>> =
    LazyLock::new(|| Arc::new(AggregateUDF::from(SketchAggregate::sketch_merge())));
static EXEMPLARS_UDAF: LazyLock<Arc<AggregateUDF>> =
    LazyLock::new(|| Arc::new(AggregateUDF::from(ExemplarsUdaf::default())));
static HISTOGRAM_QUANTILE_UDAF: LazyLock<Arc<AggregateUDF>> =
    LazyLock::new(|| Arc::new(AggregateUDF::from(HistogramQuantile::default())));
static SKETCH_QUANTILE_UDF: LazyLock<Arc<ScalarUDF>> =
    LazyLock::new(|| Arc::new(ScalarUDF::from(SketchQuantile::default())));
static HEATMAP_BUCKET_UDF: LazyLock<Arc<ScalarUDF>> =
    LazyLock::new(|| Arc::new(ScalarUDF::from(HeatmapBucketUdf::default())));
static VALUE_BIN_UDF: LazyLock<Arc<ScalarUDF>> =
    LazyLock::new(|| Arc::new(ScalarUDF::from(ValueBinUdf::default())));
static IN_SORTED_UDF: LazyLock<Arc<ScalarUDF>> =
    LazyLock::new(|| Arc::new(ScalarUDF::from(InSortedUdf::default())));

/// Adds every Quarry function to `state`.
pub fn register(state: &mut SessionState) -> Result<()> {
    for udaf in [
        &QUANTILE_UDAF,
        &SKETCH_UDAF,
        &SKETCH_MERGE_UDAF,
        &EXEMPLARS_UDAF,
        &HISTOGRAM_QUANTILE_UDAF,
    ] {
        state.register_udaf(Arc::clone(udaf))?;
    }
    for udf in [
        &SKETCH_QUANTILE_UDF,
        &HEATMAP_BUCKET_UDF,
        &VALUE_BIN_UDF,
        &IN_SORTED_UDF,
    ] {
        state.register_udf(Arc::clone(udf))?;
    }
    Ok(())
}

/// `quarry_quantile(value, weight, q)`: the weighted `q`-quantile (0..=1) of
/// `value`, within 1% relative error; exact min/max at `q` = 0/1. A null weight
/// counts as 1; rows with a null value or a weight <= 0 are skipped.
pub fn quantile_expr(value: Expr, weight: Expr, q: f64) -> Expr {
    QUANTILE_UDAF.call(vec![value, weight, lit(q)])
}

/// `quarry_histogram_quantile(series, time_ns, delta, bounds, counts, q)`: the
/// `q`-quantile of the values recorded by OTLP explicit-bucket histogram points
/// (see the function's module docs for cumulative series and interpolation).
pub fn histogram_quantile_expr(
    series: Expr,
    time_ns: Expr,
    delta: Expr,
    bounds: Expr,
    counts: Expr,
    q: f64,
) -> Expr {
    HISTOGRAM_QUANTILE_UDAF.call(vec![series, time_ns, delta, bounds, counts, lit(q)])
}

/// `quarry_sketch(value, weight)`: the encoded sketch of `value` (for rollups).
pub fn sketch_expr(value: Expr, weight: Expr) -> Expr {
    SKETCH_UDAF.call(vec![value, weight])
}

/// `quarry_sketch_merge(sketch)`: encoded sketches merged into one.
pub fn sketch_merge_expr(sketch: Expr) -> Expr {
    SKETCH_MERGE_UDAF.call(vec![sketch])
}

/// `quarry_sketch_quantile(sketch, q)`: a quantile of an encoded sketch.
pub fn sketch_quantile_expr(sketch: Expr, q: f64) -> Expr {
    SKETCH_QUANTILE_UDF.call(vec![sketch, lit(q)])
}

/// `quarry_heatmap_bucket(value, ...)`: the bucket index of `value` in `scheme`.
pub fn heatmap_bucket_expr(value: Expr, scheme: &HeatmapScheme) -> Expr {
    let mut args = vec![value];
    args.extend(scheme.literal_args());
    HEATMAP_BUCKET_UDF.call(args)
}

/// `quarry_in_sorted(value, sorted)`: whether `value` is one of `sorted` (see
/// the function's module docs).
pub fn in_sorted_expr(value: Expr, sorted: &[i64]) -> Expr {
    let list =
        arrow::array::ListArray::from_iter_primitive::<arrow::datatypes::Int64Type, _, _>([Some(
            sorted.iter().copied().map(Some),
        )]);
    IN_SORTED_UDF.call(vec![
        value,
        lit(datafusion::common::ScalarValue::List(Arc::new(list))),
    ])
}

/// `quarry_value_bin(value, coarsen)`: the log-linear bin of `value` (see
/// [`value_bin`]).
pub fn value_bin_expr(value: Expr, coarsen: u32) -> Expr {
    VALUE_BIN_UDF.call(vec![value, lit(i64::from(coarsen))])
}

/// `quarry_exemplars(value, timestamp, trace_id, span_id, dataset)`: up to
/// [`MAX_EXEMPLARS`] events of the group (the slowest, then two by span-id hash;
/// rows with a trace id first). Pass `lit(ScalarValue::Null)` for a missing column.
pub fn exemplars_expr(
    value: Expr,
    timestamp: Expr,
    trace_id: Expr,
    span_id: Expr,
    dataset: Expr,
) -> Expr {
    EXEMPLARS_UDAF.call(vec![value, timestamp, trace_id, span_id, dataset])
}
