//! Raw rows -> rollup rows: the partial aggregation that maintenance stores and
//! that queries apply on the fly to rows not rolled up yet.
//!
//! One DataFusion aggregate per call: group by the time bucket (`date_bin` from the
//! Unix epoch) and the dimensions; per group the weighted count, weighted sums and
//! non-null counts, extremes, and quantile sketches. The result always has exactly
//! [`rollup_schema`]'s columns, so rollup segments and on-the-fly rows union.

use arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::execution::FunctionRegistry;
use datafusion::functions::expr_fn::coalesce;
use datafusion::functions_aggregate::expr_fn::{max, min, sum};
use datafusion::logical_expr::{Expr, cast, lit, when};
use datafusion::prelude::{DataFrame, SessionContext};
use quarry_schema::{DatasetSchema, FieldType, SAMPLE_RATE, TIMESTAMP};
use quarry_segment_store::RollupDefinition;

use quarry_engine::time_bucket::bucket_start;

use super::columns::{
    COUNT_COLUMN, Measures, count_of, max_of, min_of, numeric_type, rollup_schema, sketch_of,
    sum_of,
};
use super::filters::conjunction;
use quarry_engine::QueryError;
use quarry_query::spec::column;

/// The sketch aggregate: `quarry_sketch(value, weight) -> Binary`.
pub const SKETCH_UDAF: &str = "quarry_sketch";
/// Merges sketches: `quarry_sketch_merge(binary) -> Binary`.
pub const SKETCH_MERGE_UDAF: &str = "quarry_sketch_merge";
/// Reads a quantile: `quarry_sketch_quantile(binary, q) -> Float64`.
pub const SKETCH_QUANTILE_UDF: &str = "quarry_sketch_quantile";

/// Whether the session has the sketch functions PERCENTILES needs.
pub fn has_sketch(context: &SessionContext) -> bool {
    context.udaf(SKETCH_UDAF).is_ok()
        && context.udaf(SKETCH_MERGE_UDAF).is_ok()
        && context.udf(SKETCH_QUANTILE_UDF).is_ok()
}

/// The weight of a row: its sample rate, 1 when absent.
fn weight(schema: &DatasetSchema) -> Expr {
    match schema.get(SAMPLE_RATE) {
        Some(FieldType::Int) => coalesce(vec![column(SAMPLE_RATE), lit(1i64)]),
        Some(FieldType::Float) => {
            coalesce(vec![cast(column(SAMPLE_RATE), DataType::Int64), lit(1i64)])
        }
        _ => lit(1i64),
    }
}

/// Rolls up the rows of `frame` (a dataset table with `schema`) per `definition`.
pub fn rollup_rows(
    frame: DataFrame,
    definition: &RollupDefinition,
    schema: &DatasetSchema,
    context: &SessionContext,
) -> Result<DataFrame, QueryError> {
    let mut frame = frame;
    // A filter on a column the dataset has not seen reads it as null.
    for filter in &definition.filters {
        if schema.get(&filter.column).is_none()
            && frame
                .schema()
                .field_with_unqualified_name(&filter.column)
                .is_err()
        {
            frame = frame.with_column(&filter.column, lit(ScalarValue::Utf8(None)))?;
        }
    }
    if let Some(filter) = conjunction(&definition.filters, frame.schema())? {
        frame = frame.filter(filter)?;
    }
    let mut group = vec![bucket_start(definition.granularity as i64).alias(TIMESTAMP)];
    for dimension in &definition.dimensions {
        if schema.get(dimension).is_some() {
            group.push(column(dimension).alias(dimension));
        }
    }
    let weight = weight(schema);
    let mut aggregates = vec![sum(weight.clone()).alias(COUNT_COLUMN)];
    let measures = Measures::of(definition);
    for name in &measures.sum {
        let Some(value_type) = numeric_type(schema, name) else {
            continue;
        };
        let weighted = match value_type {
            DataType::Int64 => column(name) * weight.clone(),
            _ => column(name) * cast(weight.clone(), DataType::Float64),
        };
        aggregates.push(sum(weighted).alias(sum_of(name)));
        let present = when(column(name).is_not_null(), weight.clone()).otherwise(lit(0i64))?;
        aggregates.push(sum(present).alias(count_of(name)));
    }
    for name in &measures.min {
        if numeric_type(schema, name).is_some() {
            aggregates.push(min(column(name)).alias(min_of(name)));
        }
    }
    for name in &measures.max {
        if numeric_type(schema, name).is_some() {
            aggregates.push(max(column(name)).alias(max_of(name)));
        }
    }
    if !measures.percentiles.is_empty() {
        let sketch = context.udaf(SKETCH_UDAF)?;
        for name in &measures.percentiles {
            if numeric_type(schema, name).is_some() {
                let value = cast(column(name), DataType::Float64);
                let call = sketch.call(vec![value, cast(weight.clone(), DataType::Float64)]);
                aggregates.push(call.alias(sketch_of(name)));
            }
        }
    }
    let aggregated = frame.aggregate(group, aggregates)?;
    conform(aggregated, &rollup_schema(definition, schema))
}

/// Projects `frame` onto exactly `target`'s columns and types: a column it lacks
/// is null.
pub fn conform(
    frame: DataFrame,
    target: &arrow::datatypes::SchemaRef,
) -> Result<DataFrame, QueryError> {
    let projection = target
        .fields()
        .iter()
        .map(|field| {
            let name = field.name();
            let expr = if frame.schema().field_with_unqualified_name(name).is_ok() {
                cast(column(name), field.data_type().clone())
            } else {
                lit(ScalarValue::try_from(field.data_type())?)
            };
            Ok(expr.alias(name))
        })
        .collect::<Result<Vec<_>, QueryError>>()?;
    Ok(frame.select(projection)?)
}
