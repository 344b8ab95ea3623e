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
    use arrow::array::{BooleanArray, Float64Array, StringArray, TimestampNanosecondArray};
    use proptest::prelude::*;

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

    /// Rows of a generated batch.
    const MAX_ROWS: usize = 24;
    /// User columns of a generated batch: distinct names without `#`, so no two
    /// land on one column (the merge rule has its own example above).
    const BATCH_NAMES: [&str; 3] = ["a", "b", "c"];
    /// Columns another request may have created first, siblings included, so the
    /// walk along `<name>#<type>` is exercised.
    const SCHEMA_NAMES: [&str; 8] = [
        "a", "b", "a#int", "a#float", "a#string", "a#bool", "b#string", "b#int",
    ];
    const VALUE_TYPES: [FieldType; 4] = [
        FieldType::Bool,
        FieldType::Int,
        FieldType::Float,
        FieldType::String,
    ];

    /// One cell of a column of any stored type.
    #[derive(Debug, Clone, PartialEq)]
    enum Cell {
        Bool(bool),
        Int(i64),
        Float(f64),
        Str(String),
    }

    fn cell(column: &ArrayRef, row: usize) -> Option<Cell> {
        use arrow::array::AsArray;
        use arrow::datatypes::{Float64Type, Int64Type};
        if column.is_null(row) {
            return None;
        }
        Some(match FieldType::from_data_type(column.data_type()) {
            Some(FieldType::Bool) => Cell::Bool(column.as_boolean().value(row)),
            Some(FieldType::Int) => Cell::Int(column.as_primitive::<Int64Type>().value(row)),
            Some(FieldType::Float) => Cell::Float(column.as_primitive::<Float64Type>().value(row)),
            Some(FieldType::String) => Cell::Str(column.as_string::<i32>().value(row).to_owned()),
            other => panic!("no cell of {other:?}"),
        })
    }

    /// Whether `stored` keeps `sent` without loss: the same value, an int as the
    /// float of the same value, or a number or bool as text that parses back to it.
    fn keeps(sent: &Cell, stored: &Cell) -> bool {
        match (sent, stored) {
            (Cell::Float(a), Cell::Float(b)) => a.to_bits() == b.to_bits(),
            (a, b) if a == b => true,
            (Cell::Int(i), Cell::Float(f)) => *f as i64 == *i && *i as f64 == *f,
            (Cell::Int(i), Cell::Str(s)) => s.parse::<i64>() == Ok(*i),
            (Cell::Float(f), Cell::Str(s)) => s
                .parse::<f64>()
                .is_ok_and(|back| back == *f || (back.is_nan() && f.is_nan())),
            (Cell::Bool(b), Cell::Str(s)) => s == if *b { "true" } else { "false" },
            _ => false,
        }
    }

    fn column_of(field_type: FieldType, rows: usize) -> BoxedStrategy<ArrayRef> {
        let cells = |s: BoxedStrategy<Cell>| prop::collection::vec(prop::option::of(s), rows);
        let cells = match field_type {
            FieldType::Bool => cells(any::<bool>().prop_map(Cell::Bool).boxed()),
            // Ints around 2^53 too: beyond it an int column cannot become float.
            FieldType::Int => cells(
                prop_oneof![any::<i64>(), -(1i64 << 54)..(1i64 << 54), -1000i64..1000,]
                    .prop_map(Cell::Int)
                    .boxed(),
            ),
            FieldType::Float => cells(any::<f64>().prop_map(Cell::Float).boxed()),
            _ => cells("\\PC{0,6}".prop_map(Cell::Str).boxed()),
        };
        cells
            .prop_map(move |cells| -> ArrayRef {
                match field_type {
                    FieldType::Bool => {
                        Arc::new(BooleanArray::from_iter(cells.iter().map(|c| match c {
                            Some(Cell::Bool(b)) => Some(*b),
                            _ => None,
                        })))
                    }
                    FieldType::Int => {
                        Arc::new(Int64Array::from_iter(cells.iter().map(|c| match c {
                            Some(Cell::Int(i)) => Some(*i),
                            _ => None,
                        })))
                    }
                    FieldType::Float => {
                        Arc::new(Float64Array::from_iter(cells.iter().map(|c| match c {
                            Some(Cell::Float(f)) => Some(*f),
                            _ => None,
                        })))
                    }
                    _ => Arc::new(StringArray::from_iter(cells.iter().map(|c| match c {
                        Some(Cell::Str(s)) => Some(s.clone()),
                        _ => None,
                    }))),
                }
            })
            .boxed()
    }

    /// A decoded batch (timestamp and up to three user columns of any type) and
    /// the schema other requests built meanwhile.
    fn batch_and_schema() -> impl Strategy<Value = (RecordBatch, DatasetSchema)> {
        let schema = prop::collection::vec(
            (
                prop::sample::select(&SCHEMA_NAMES[..]),
                prop::sample::select(&VALUE_TYPES[..]),
            ),
            0..6,
        )
        .prop_map(|columns| {
            let mut schema = DatasetSchema::default();
            for (name, field_type) in columns {
                schema.insert(name, field_type);
            }
            schema
        });
        let batch = (
            1..=MAX_ROWS,
            prop::sample::subsequence(&BATCH_NAMES[..], 0..=3),
        )
            .prop_flat_map(|(rows, names)| {
                let columns: Vec<_> = names
                    .iter()
                    .map(|name| {
                        let name = name.to_string();
                        prop::sample::select(&VALUE_TYPES[..])
                            .prop_flat_map(move |t| column_of(t, rows))
                            .prop_map(move |column| (name.clone(), column))
                    })
                    .collect();
                (Just(rows), columns)
            })
            .prop_map(|(rows, columns)| {
                let times: Vec<i64> = (0..rows as i64).collect();
                let ts: ArrayRef = Arc::new(
                    TimestampNanosecondArray::from(times).with_timezone(crate::TIMESTAMP_TZ),
                );
                let mut all = vec![(crate::TIMESTAMP.to_owned(), ts)];
                all.extend(columns);
                RecordBatch::try_from_iter(all).unwrap()
            });
        (batch, schema)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn conforming_keeps_every_value_in_its_column_or_a_sibling(
            (batch, before) in batch_and_schema(),
        ) {
            let mut schema = before.clone();
            let out = conform_batch(batch.clone(), &mut schema).unwrap();
            prop_assert_eq!(out.num_rows(), batch.num_rows());
            prop_assert_eq!(out.num_columns(), batch.num_columns());
            prop_assert_eq!(out.column(0), batch.column(0), "timestamp untouched");
            // The schema only grows, and says the type of every column written.
            for (name, field_type) in before.columns() {
                prop_assert_eq!(schema.get(name), Some(field_type));
            }
            for field in out.schema().fields() {
                prop_assert_eq!(
                    schema.get(field.name()),
                    FieldType::from_data_type(field.data_type())
                );
            }
            for (field, sent) in batch.schema().fields().iter().zip(batch.columns()).skip(1) {
                let name = field.name();
                let sent_type = FieldType::from_data_type(field.data_type()).unwrap();
                // Exactly one output column holds this column: itself or a sibling.
                let family: Vec<usize> = out
                    .schema()
                    .fields()
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| f.name() == name || f.name().starts_with(&format!("{name}#")))
                    .map(|(i, _)| i)
                    .collect();
                prop_assert_eq!(family.len(), 1, "{} lands in one column", name);
                let out_name = out.schema().field(family[0]).name().clone();
                let stored = out.column(family[0]);
                // The first type wins: a column the dataset had keeps its type.
                match before.get(name) {
                    None => prop_assert_eq!(&out_name, name),
                    Some(column_type) if out_name == *name => {
                        prop_assert_eq!(FieldType::from_data_type(stored.data_type()), Some(column_type));
                    }
                    Some(_) => prop_assert!(
                        out_name.starts_with(&sibling_name(name, sent_type)),
                        "{} moved to {}, not to its {:?} sibling",
                        name,
                        out_name,
                        sent_type
                    ),
                }
                for row in 0..batch.num_rows() {
                    let (sent, kept) = (cell(sent, row), cell(stored, row));
                    match (&sent, &kept) {
                        (None, None) => {}
                        (Some(sent), Some(kept)) => prop_assert!(
                            keeps(sent, kept),
                            "{} row {}: {:?} stored as {:?} in {}",
                            name,
                            row,
                            sent,
                            kept,
                            out_name
                        ),
                        _ => prop_assert!(false, "{} row {}: {:?} became {:?}", name, row, sent, kept),
                    }
                }
            }
            // Conforming is idempotent: the result already fits the grown schema.
            let mut again = schema.clone();
            prop_assert_eq!(&conform_batch(out.clone(), &mut again).unwrap(), &out);
            prop_assert_eq!(again.len(), schema.len());
        }
    }
}
