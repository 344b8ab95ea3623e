//! Selecting rows of a batch and multiplying their `meta.sample_rate` (the column
//! the query engine weights COUNT, SUM, AVG and percentiles by) by the rate of
//! the rule that kept them.

use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use arrow::error::ArrowError;
use quarry_schema::SAMPLE_RATE;

/// Rows `rows` of `batch`.
pub fn select(batch: &RecordBatch, rows: &[u32]) -> Result<RecordBatch, ArrowError> {
    if rows.len() == batch.num_rows() && rows.iter().enumerate().all(|(i, r)| *r as usize == i) {
        return Ok(batch.clone());
    }
    take_record_batch(batch, &UInt32Array::from(rows.to_vec()))
}

/// Rows `rows` of `batch`, the sample rate of row `rows[i]` multiplied by
/// `rates[i]` (an absent or null rate counts as 1; the product saturates).
pub fn select_with_rates(
    batch: &RecordBatch,
    rows: &[u32],
    rates: &[u64],
) -> Result<RecordBatch, ArrowError> {
    let selected = select(batch, rows)?;
    if rates.iter().all(|rate| *rate == 1) {
        return Ok(selected);
    }
    let old = selected
        .column_by_name(SAMPLE_RATE)
        .and_then(|column| column.as_primitive_opt::<Int64Type>());
    let multiplied: Int64Array = rates
        .iter()
        .enumerate()
        .map(|(row, rate)| {
            let upstream = old
                .filter(|old| !old.is_null(row))
                .map_or(1, |old| old.value(row));
            let rate = i64::try_from(*rate).unwrap_or(i64::MAX);
            Some(upstream.saturating_mul(rate))
        })
        .collect();
    let schema = selected.schema();
    let mut columns = selected.columns().to_vec();
    let mut fields: Vec<Arc<Field>> = schema.fields().iter().cloned().collect();
    match schema.index_of(SAMPLE_RATE) {
        Ok(index) => columns[index] = Arc::new(multiplied),
        Err(_) => {
            fields.push(Arc::new(Field::new(SAMPLE_RATE, DataType::Int64, true)));
            columns.push(Arc::new(multiplied));
        }
    }
    RecordBatch::try_new(
        Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())),
        columns,
    )
}

#[cfg(test)]
mod tests {
    use arrow::array::StringArray;

    use super::*;

    #[test]
    fn rates_multiply_the_upstream_rate() {
        let schema = Schema::new(vec![
            Field::new("name", DataType::Utf8, false),
            Field::new(SAMPLE_RATE, DataType::Int64, true),
        ]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from(vec!["a", "b", "c"])),
                Arc::new(Int64Array::from(vec![Some(4), None, Some(i64::MAX / 2)])),
            ],
        )
        .unwrap();
        let out = select_with_rates(&batch, &[2, 0, 1], &[3, 5, 10]).unwrap();
        let rates = out
            .column_by_name(SAMPLE_RATE)
            .unwrap()
            .as_primitive::<Int64Type>();
        assert_eq!(rates.values().to_vec(), [i64::MAX, 20, 10]);
        let names = out.column(0).as_string::<i32>();
        assert_eq!(
            names.iter().collect::<Vec<_>>(),
            [Some("c"), Some("a"), Some("b")]
        );
        assert_eq!(select(&batch, &[0, 1, 2]).unwrap(), batch);
    }
}
