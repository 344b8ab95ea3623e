//! The rollup row format: column names and types of a rollup's rows.
//!
//! Measure columns live under the reserved `meta.rollup.` prefix, so no user column
//! (which would have been renamed `<name>#user`) can collide with them.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use quarry_schema::fields::{ROLLUP_COUNT, ROLLUP_PREFIX};
use quarry_schema::{DatasetSchema, FieldType, TIMESTAMP, timestamp_data_type};
use quarry_segment_store::{MeasureOp, RollupDefinition};

/// Σ sample rate of the rows of a group.
pub const COUNT_COLUMN: &str = ROLLUP_COUNT;

/// Σ sample rate of the rows whose `column` is not null.
pub fn count_of(column: &str) -> String {
    format!("{ROLLUP_COUNT}.{column}")
}

/// Σ `column` × sample rate.
pub fn sum_of(column: &str) -> String {
    format!("{ROLLUP_PREFIX}sum.{column}")
}

/// Smallest value of `column`.
pub fn min_of(column: &str) -> String {
    format!("{ROLLUP_PREFIX}min.{column}")
}

/// Largest value of `column`.
pub fn max_of(column: &str) -> String {
    format!("{ROLLUP_PREFIX}max.{column}")
}

/// Weighted quantile sketch of `column`.
pub fn sketch_of(column: &str) -> String {
    format!("{ROLLUP_PREFIX}sketch.{column}")
}

/// A definition's measures, by kind: each set holds column names.
#[derive(Debug, Clone, Default)]
pub struct Measures {
    pub sum: BTreeSet<String>,
    pub min: BTreeSet<String>,
    pub max: BTreeSet<String>,
    pub percentiles: BTreeSet<String>,
}

impl Measures {
    /// The measures of `definition` (COUNT is implied).
    pub fn of(definition: &RollupDefinition) -> Measures {
        let mut measures = Measures::default();
        for measure in &definition.measures {
            let Some(column) = measure.column.clone() else {
                continue;
            };
            let set = match measure.op {
                MeasureOp::Count => continue,
                MeasureOp::Sum => &mut measures.sum,
                MeasureOp::Min => &mut measures.min,
                MeasureOp::Max => &mut measures.max,
                MeasureOp::Percentiles => &mut measures.percentiles,
            };
            set.insert(column);
        }
        measures
    }
}

/// The Arrow type a numeric column has in the dataset, if it is numeric.
pub fn numeric_type(schema: &DatasetSchema, column: &str) -> Option<DataType> {
    match schema.get(column)? {
        FieldType::Int => Some(DataType::Int64),
        FieldType::Float => Some(DataType::Float64),
        _ => None,
    }
}

/// The schema of a rollup's rows for the dataset's current schema: `timestamp`
/// (bucket start), each dimension with its dataset type (text when not seen yet:
/// then it is null everywhere), then the measure columns.
pub fn rollup_schema(definition: &RollupDefinition, schema: &DatasetSchema) -> SchemaRef {
    let mut fields = vec![Field::new(TIMESTAMP, timestamp_data_type(), true)];
    for dimension in &definition.dimensions {
        let data_type = schema
            .get(dimension)
            .map_or(DataType::Utf8, FieldType::data_type);
        fields.push(Field::new(dimension, data_type, true));
    }
    fields.push(Field::new(COUNT_COLUMN, DataType::Int64, true));
    let measures = Measures::of(definition);
    let value_type = |column: &str| numeric_type(schema, column).unwrap_or(DataType::Float64);
    for column in &measures.sum {
        fields.push(Field::new(sum_of(column), value_type(column), true));
        fields.push(Field::new(count_of(column), DataType::Int64, true));
    }
    for column in &measures.min {
        fields.push(Field::new(min_of(column), value_type(column), true));
    }
    for column in &measures.max {
        fields.push(Field::new(max_of(column), value_type(column), true));
    }
    for column in &measures.percentiles {
        fields.push(Field::new(sketch_of(column), DataType::Binary, true));
    }
    Arc::new(Schema::new(fields))
}
