//! The unsealed rows of a dataset: its buffer batches as an in-memory scan.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, new_null_array};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::SchemaRef;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::physical_plan::ExecutionPlan;

/// Casts that give null for a value that does not convert.
const SAFE_CAST: CastOptions<'static> = CastOptions {
    safe: true,
    format_options: arrow::util::display::FormatOptions::new(),
};

/// Rewrites a buffer batch (any subset of the columns, in any order) to the full
/// table schema: columns in schema order, absent ones as nulls.
pub fn pad_to_schema(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(column) if column.data_type() == field.data_type() => Ok(Arc::clone(column)),
            // Types agree by one store's contract (a differing time zone
            // spelling of `timestamp` is the one difference a cast settles);
            // another ingest node may have typed a new column otherwise first,
            // and its values that do not cast read as nulls.
            Some(column) => Ok(cast_with_options(column, field.data_type(), &SAFE_CAST)?),
            None => Ok(new_null_array(field.data_type(), batch.num_rows())),
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

/// An in-memory scan of `batches` (each padded to `schema`), spread round-robin
/// over at most `target_partitions` partitions, then projected.
pub(crate) fn buffer_scan(
    batches: &[RecordBatch],
    schema: &SchemaRef,
    projection: Option<&Vec<usize>>,
    limit: Option<usize>,
    target_partitions: usize,
) -> Result<Arc<dyn ExecutionPlan>> {
    let partition_count = batches.len().clamp(1, target_partitions.max(1));
    let mut partitions: Vec<Vec<RecordBatch>> = vec![Vec::new(); partition_count];
    for (index, batch) in batches.iter().enumerate() {
        partitions[index % partition_count].push(pad_to_schema(batch, schema)?);
    }
    let source = MemorySourceConfig::try_new(&partitions, Arc::clone(schema), projection.cloned())?
        .with_limit(limit);
    Ok(DataSourceExec::from_data_source(source))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, StringArray, TimestampNanosecondArray};
    use arrow::datatypes::{DataType, Field, Schema};

    #[test]
    fn missing_columns_become_nulls_in_schema_order() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("timestamp", quarry_schema::timestamp_data_type(), false),
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Utf8, true),
        ]));
        let ts = TimestampNanosecondArray::from(vec![1, 2]).with_timezone("UTC");
        let batch = RecordBatch::try_from_iter(vec![
            ("b", Arc::new(StringArray::from(vec!["x", "y"])) as ArrayRef),
            ("timestamp", Arc::new(ts) as ArrayRef),
        ])
        .unwrap();
        let padded = pad_to_schema(&batch, &schema).unwrap();
        assert_eq!(padded.schema(), schema);
        assert_eq!(padded.column(1).null_count(), 2);
        assert_eq!(padded.column(2).as_string::<i32>().value(1), "y");
    }
}
