//! Manifest statistics of a snapshot's segments, seen by DataFusion's
//! `PruningPredicate` as one container per segment: planning reads no footers.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, UInt64Array,
};
use arrow::compute::cast;
use arrow::datatypes::SchemaRef;
use datafusion::common::pruning::PruningStatistics;
use datafusion::common::{Column, ScalarValue};
use quarry_schema::{FieldType, TIMESTAMP};
use quarry_segment_store::{SegmentMeta, StatValue};

/// Per-segment min / max / null counts / row counts, from the manifest.
///
/// A column a segment does not have is all null there (`null_count = rows`), which
/// lets `col = 'x'` prune it. The `timestamp` bounds come from the segment's time
/// range. String minimums may be truncated prefixes: still valid lower bounds.
pub(crate) struct SegmentStatistics<'a> {
    schema: SchemaRef,
    segments: &'a [Arc<SegmentMeta>],
}

impl<'a> SegmentStatistics<'a> {
    /// Statistics of `segments` for columns of the table `schema`.
    pub(crate) fn new(schema: SchemaRef, segments: &'a [Arc<SegmentMeta>]) -> Self {
        SegmentStatistics { schema, segments }
    }

    /// One bound per segment, typed like the column in the table schema.
    fn bounds(&self, column: &Column, bound: Bound) -> Option<ArrayRef> {
        let data_type = self
            .schema
            .field_with_name(&column.name)
            .ok()?
            .data_type()
            .clone();
        let field_type = FieldType::from_data_type(&data_type)?;
        let values = self.segments.iter().map(|segment| {
            segment.column(&column.name).and_then(|stats| match bound {
                Bound::Min => stats.min.as_ref(),
                Bound::Max => stats.max.as_ref(),
            })
        });
        let array: ArrayRef = match field_type {
            FieldType::Timestamp if column.name == TIMESTAMP => {
                let bounds: Int64Array = self
                    .segments
                    .iter()
                    .map(|segment| match bound {
                        Bound::Min => Some(segment.min_time_ns),
                        Bound::Max => Some(segment.max_time_ns),
                    })
                    .collect();
                Arc::new(bounds)
            }
            FieldType::Int | FieldType::Timestamp => Arc::new(
                values
                    .map(|value| match value {
                        Some(StatValue::Int(int)) => Some(*int),
                        _ => None,
                    })
                    .collect::<Int64Array>(),
            ),
            FieldType::Float => Arc::new(
                values
                    .map(|value| match value {
                        Some(StatValue::Float(float)) => Some(*float),
                        _ => None,
                    })
                    .collect::<Float64Array>(),
            ),
            FieldType::Bool => Arc::new(
                values
                    .map(|value| match value {
                        Some(StatValue::Bool(flag)) => Some(*flag),
                        _ => None,
                    })
                    .collect::<BooleanArray>(),
            ),
            FieldType::String => Arc::new(
                values
                    .map(|value| match value {
                        Some(StatValue::String(text)) => Some(text.as_str()),
                        _ => None,
                    })
                    .collect::<StringArray>(),
            ),
        };
        // Int64 -> Timestamp(ns, tz) is a reinterpretation; other types already match.
        if array.data_type() == &data_type {
            Some(array)
        } else {
            cast(&array, &data_type).ok()
        }
    }
}

/// Which end of a column's range.
#[derive(Clone, Copy)]
enum Bound {
    Min,
    Max,
}

impl PruningStatistics for SegmentStatistics<'_> {
    fn min_values(&self, column: &Column) -> Option<ArrayRef> {
        self.bounds(column, Bound::Min)
    }

    fn max_values(&self, column: &Column) -> Option<ArrayRef> {
        self.bounds(column, Bound::Max)
    }

    fn num_containers(&self) -> usize {
        self.segments.len()
    }

    fn null_counts(&self, column: &Column) -> Option<ArrayRef> {
        self.schema.field_with_name(&column.name).ok()?;
        let counts: UInt64Array = self
            .segments
            .iter()
            .map(|segment| match segment.column(&column.name) {
                Some(stats) => Some(stats.null_count),
                // `timestamp` is never null; any other absent column is all null.
                None if column.name == TIMESTAMP => Some(0),
                None => Some(segment.rows),
            })
            .collect();
        Some(Arc::new(counts))
    }

    fn row_counts(&self) -> Option<ArrayRef> {
        let counts: UInt64Array = self
            .segments
            .iter()
            .map(|segment| Some(segment.rows))
            .collect();
        Some(Arc::new(counts))
    }

    fn contained(&self, _column: &Column, _values: &HashSet<ScalarValue>) -> Option<BooleanArray> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;
    use arrow::datatypes::TimestampNanosecondType;
    use quarry_schema::DatasetSchema;
    use quarry_segment_store::ColumnStats;

    fn segment(
        rows: u64,
        min_time_ns: i64,
        max_time_ns: i64,
        columns: Vec<ColumnStats>,
    ) -> Arc<SegmentMeta> {
        Arc::new(SegmentMeta {
            path: "s.parquet".into(),
            size_bytes: 1,
            rows,
            min_time_ns,
            max_time_ns,
            partition_start_ns: 0,
            created_at_ns: 0,
            columns,
            bloom_filters: Vec::new(),
        })
    }

    fn schema() -> SchemaRef {
        let mut schema = DatasetSchema::default();
        schema.insert("n", FieldType::Int);
        schema.insert("s", FieldType::String);
        schema.arrow_schema()
    }

    #[test]
    fn time_bounds_come_from_the_time_range_and_absent_columns_are_all_null() {
        let stats_n = ColumnStats {
            name: "n".into(),
            field_type: FieldType::Int,
            null_count: 1,
            min: Some(StatValue::Int(3)),
            max: Some(StatValue::Int(9)),
        };
        let segments = vec![
            segment(10, 100, 200, vec![stats_n]),
            segment(5, 300, 400, Vec::new()),
        ];
        let stats = SegmentStatistics::new(schema(), &segments);
        let min_time = stats.min_values(&Column::from_name(TIMESTAMP)).unwrap();
        let min_time = min_time.as_primitive::<TimestampNanosecondType>();
        assert_eq!((min_time.value(0), min_time.value(1)), (100, 300));
        let max_time = stats.max_values(&Column::from_name(TIMESTAMP)).unwrap();
        assert_eq!(
            max_time.as_primitive::<TimestampNanosecondType>().value(1),
            400
        );
        let max_n = stats.max_values(&Column::from_name("n")).unwrap();
        assert_eq!(
            max_n.as_primitive::<arrow::datatypes::Int64Type>().value(0),
            9
        );
        assert!(max_n.is_null(1));
        let nulls = stats.null_counts(&Column::from_name("s")).unwrap();
        let nulls = nulls.as_primitive::<arrow::datatypes::UInt64Type>();
        assert_eq!((nulls.value(0), nulls.value(1)), (10, 5));
        assert!(stats.min_values(&Column::from_name("unknown")).is_none());
    }
}
