//! Fitting a decoded batch into its dataset's schema.
//!
//! Decoders pick each column's type from the dataset schema they were shown (or from
//! the first value they saw). Between that look and the append, another request may
//! have created the same column with another type; [`conform_batch`] settles this
//! under the dataset's lock with the same rule as for single values
//! ([`crate::placement`]): coerce the whole column when lossless, otherwise move it to
//! its sibling column. New columns are added to the schema.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch};
use arrow::compute::kernels::zip::zip;
use arrow::compute::{cast, is_not_null};
use arrow::datatypes::{Field, Schema};
use arrow::error::ArrowError;

use crate::{DatasetSchema, FieldType, Placement, placement, sibling_name};

/// Why a batch could not be fitted into its dataset's schema.
#[derive(Debug, thiserror::Error)]
pub enum ConformError {
    #[error("column {column:?} has Arrow type {data_type}, which Quarry does not store")]
    UnsupportedType { column: String, data_type: String },
    #[error("the batch has no {} column of type timestamp", crate::TIMESTAMP)]
    MissingTimestamp,
    #[error("arrow: {0}")]
    Arrow(#[from] ArrowError),
}

/// Rewrites `batch` so every column agrees with `schema`, adding new columns to it.
pub fn conform_batch(
    batch: RecordBatch,
    schema: &mut DatasetSchema,
) -> Result<RecordBatch, ConformError> {
    match batch.schema().column_with_name(crate::TIMESTAMP) {
        Some((_, field))
            if FieldType::from_data_type(field.data_type()) == Some(FieldType::Timestamp) => {}
        _ => return Err(ConformError::MissingTimestamp),
    }
    let mut out: Vec<(String, FieldType, ArrayRef)> = Vec::with_capacity(batch.num_columns());
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let field_type = FieldType::from_data_type(field.data_type()).ok_or_else(|| {
            ConformError::UnsupportedType {
                column: field.name().clone(),
                data_type: field.data_type().to_string(),
            }
        })?;
        let (name, field_type, column) =
            place_column(field.name(), field_type, column.clone(), schema)?;
        match out.iter_mut().find(|(existing, _, _)| *existing == name) {
            // Two batch columns landed on one name (a value and its former sibling):
            // each row has at most one of them, so keep whichever is set.
            Some((_, _, existing)) => *existing = zip(&is_not_null(existing)?, existing, &column)?,
            None => out.push((name, field_type, column)),
        }
    }
    let fields: Vec<Field> = out
        .iter()
        .map(|(name, field_type, _)| {
            Field::new(name, field_type.data_type(), name != crate::TIMESTAMP)
        })
        .collect();
    let columns = out.into_iter().map(|(_, _, column)| column).collect();
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// Finds the column a batch column belongs in, coercing it if the rule says so.
fn place_column(
    name: &str,
    field_type: FieldType,
    column: ArrayRef,
    schema: &mut DatasetSchema,
) -> Result<(String, FieldType, ArrayRef), ConformError> {
    let mut name = name.to_owned();
    loop {
        let Some(column_type) = schema.get(&name) else {
            schema.insert(&name, field_type);
            return Ok((name, field_type, column));
        };
        let rule = match placement(field_type, column_type, None) {
            Placement::Coerce if field_type == FieldType::Int && !ints_fit_float(&column) => {
                Placement::Sibling
            }
            rule => rule,
        };
        match rule {
            Placement::Same => return Ok((name, field_type, column)),
            Placement::Coerce => {
                let coerced = cast(&column, &column_type.data_type())?;
                return Ok((name, column_type, coerced));
            }
            // The sibling may itself exist with another type (a user field literally
            // named `x#int`): keep walking until a column accepts the values.
            Placement::Sibling => name = sibling_name(&name, field_type),
        }
    }
}

/// Whether every int in `column` converts to float64 exactly.
fn ints_fit_float(column: &ArrayRef) -> bool {
    let Some(ints) = column.as_any().downcast_ref::<Int64Array>() else {
        return false;
    };
    ints.iter()
        .flatten()
        .all(|value| placement(FieldType::Int, FieldType::Float, Some(value)) == Placement::Coerce)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, StringArray, TimestampNanosecondArray};

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        let ts: ArrayRef =
            Arc::new(TimestampNanosecondArray::from(vec![1, 2]).with_timezone(crate::TIMESTAMP_TZ));
        let mut all = vec![(crate::TIMESTAMP, ts)];
        all.extend(columns);
        RecordBatch::try_from_iter(all).unwrap()
    }

    #[test]
    fn new_columns_join_the_schema() {
        let mut schema = DatasetSchema::default();
        let out = conform_batch(
            batch(vec![("a", Arc::new(Int64Array::from(vec![1, 2])))]),
            &mut schema,
        )
        .unwrap();
        assert_eq!(schema.get("a"), Some(FieldType::Int));
        assert_eq!(out.num_columns(), 2);
    }

    #[test]
    fn ints_coerce_into_float_columns_and_strings_go_to_siblings() {
        let mut schema = DatasetSchema::default();
        schema.insert("d", FieldType::Float);
        schema.insert("s", FieldType::Int);
        let out = conform_batch(
            batch(vec![
                ("d", Arc::new(Int64Array::from(vec![1, 2]))),
                ("s", Arc::new(StringArray::from(vec!["x", "y"]))),
            ]),
            &mut schema,
        )
        .unwrap();
        let d = out.column_by_name("d").unwrap();
        assert_eq!(
            d.as_any().downcast_ref::<Float64Array>().unwrap().value(1),
            2.0
        );
        assert!(out.column_by_name("s").is_none());
        assert_eq!(schema.get("s#string"), Some(FieldType::String));
        let s = out.column_by_name("s#string").unwrap();
        assert_eq!(
            s.as_any().downcast_ref::<StringArray>().unwrap().value(0),
            "x"
        );
    }

    #[test]
    fn columns_landing_on_one_name_merge_row_by_row() {
        // Another request made `n` an int column after this batch was decoded with
        // `n` as string next to a `n#string` column: both now belong in `n#string`.
        let mut schema = DatasetSchema::default();
        schema.insert("n", FieldType::Int);
        let out = conform_batch(
            batch(vec![
                ("n", Arc::new(StringArray::from(vec![Some("a"), None]))),
                (
                    "n#string",
                    Arc::new(StringArray::from(vec![None, Some("b")])),
                ),
            ]),
            &mut schema,
        )
        .unwrap();
        assert_eq!(out.num_columns(), 2);
        let merged = out.column_by_name("n#string").unwrap();
        let merged = merged.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!((merged.value(0), merged.value(1)), ("a", "b"));
    }

    #[test]
    fn a_batch_without_timestamp_is_refused() {
        let mut schema = DatasetSchema::default();
        let plain = RecordBatch::try_from_iter(vec![(
            "a",
            Arc::new(Int64Array::from(vec![1])) as ArrayRef,
        )])
        .unwrap();
        assert!(matches!(
            conform_batch(plain, &mut schema),
            Err(ConformError::MissingTimestamp)
        ));
    }
}
