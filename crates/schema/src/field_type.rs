//! Column types and the rule for a value whose type differs from its column's.

use arrow::datatypes::DataType;
use serde::{Deserialize, Serialize};

/// The type of a dataset column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    Bool,
    Int,
    Float,
    String,
    Timestamp,
}

/// Largest integer magnitude a float64 holds exactly (2^53).
const MAX_EXACT_FLOAT_INT: i64 = 1 << 53;

impl FieldType {
    /// The Arrow type columns of this type are stored as.
    pub fn data_type(self) -> DataType {
        match self {
            FieldType::Bool => DataType::Boolean,
            FieldType::Int => DataType::Int64,
            FieldType::Float => DataType::Float64,
            FieldType::String => DataType::Utf8,
            FieldType::Timestamp => crate::timestamp_data_type(),
        }
    }

    /// The field type of an Arrow type, if Quarry stores that type.
    pub fn from_data_type(data_type: &DataType) -> Option<FieldType> {
        match data_type {
            DataType::Boolean => Some(FieldType::Bool),
            DataType::Int64 => Some(FieldType::Int),
            DataType::Float64 => Some(FieldType::Float),
            DataType::Utf8 => Some(FieldType::String),
            DataType::Timestamp(arrow::datatypes::TimeUnit::Nanosecond, _) => {
                Some(FieldType::Timestamp)
            }
            _ => None,
        }
    }

    /// Suffix of the sibling column holding conflicting values of this type.
    pub fn suffix(self) -> &'static str {
        match self {
            FieldType::Bool => "bool",
            FieldType::Int => "int",
            FieldType::Float => "float",
            FieldType::String => "string",
            FieldType::Timestamp => "timestamp",
        }
    }

    /// The type name Honeycomb's columns API uses.
    pub fn honeycomb_name(self) -> &'static str {
        match self {
            FieldType::Bool => "boolean",
            FieldType::Int => "integer",
            FieldType::Float => "float",
            FieldType::String | FieldType::Timestamp => "string",
        }
    }
}

/// Where a value of one type goes when its column has another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The types agree.
    Same,
    /// Coerce the value into the column's type without loss (an int into a float
    /// column, a number or bool into a string column).
    Coerce,
    /// Keep the value, unchanged, in the sibling column `<name>#<value type>`.
    Sibling,
}

/// The rule for a value of `value_type` arriving in a column of `column_type`.
///
/// `int_value` is the value when it is an int, so that ints beyond 2^53 (which a
/// float64 cannot hold exactly) go to the sibling column instead of losing digits.
pub fn placement(
    value_type: FieldType,
    column_type: FieldType,
    int_value: Option<i64>,
) -> Placement {
    use FieldType::*;
    match (value_type, column_type) {
        (v, c) if v == c => Placement::Same,
        (Int, Float) => match int_value {
            Some(i) if i.unsigned_abs() > MAX_EXACT_FLOAT_INT as u64 => Placement::Sibling,
            _ => Placement::Coerce,
        },
        (Int | Float | Bool, String) => Placement::Coerce,
        _ => Placement::Sibling,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VALUE_TYPES: [FieldType; 4] = [
        FieldType::Bool,
        FieldType::Int,
        FieldType::Float,
        FieldType::String,
    ];

    #[test]
    fn lossless_coercions_and_siblings() {
        assert_eq!(
            placement(FieldType::Int, FieldType::Float, Some(3)),
            Placement::Coerce
        );
        assert_eq!(
            placement(FieldType::Int, FieldType::Float, Some((1 << 53) + 1)),
            Placement::Sibling
        );
        assert_eq!(
            placement(FieldType::Float, FieldType::Int, None),
            Placement::Sibling
        );
        assert_eq!(
            placement(FieldType::Bool, FieldType::String, None),
            Placement::Coerce
        );
        assert_eq!(
            placement(FieldType::String, FieldType::Int, None),
            Placement::Sibling
        );
        assert_eq!(
            placement(FieldType::String, FieldType::String, None),
            Placement::Same
        );
    }

    #[test]
    fn arrow_types_round_trip() {
        for t in [
            FieldType::Bool,
            FieldType::Int,
            FieldType::Float,
            FieldType::String,
            FieldType::Timestamp,
        ] {
            assert_eq!(FieldType::from_data_type(&t.data_type()), Some(t));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn the_placement_rule_never_loses_an_int(value in any::<i64>()) {
            // Coerce into float only when the float holds the int exactly.
            let rule = placement(FieldType::Int, FieldType::Float, Some(value));
            let exact = value as f64 as i128 == i128::from(value)
                && value.unsigned_abs() <= 1u64 << 53;
            prop_assert_eq!(rule == Placement::Coerce, exact);
            prop_assert_eq!(rule == Placement::Sibling, !exact);
        }

        #[test]
        fn the_placement_rule_by_types(
            value_type in prop::sample::select(&VALUE_TYPES[..]),
            column_type in prop::sample::select(&VALUE_TYPES[..]),
        ) {
            let rule = placement(value_type, column_type, Some(0));
            let expected = if value_type == column_type {
                Placement::Same
            } else if column_type == FieldType::String
                || (value_type, column_type) == (FieldType::Int, FieldType::Float)
            {
                Placement::Coerce
            } else {
                Placement::Sibling
            };
            prop_assert_eq!(rule, expected);
        }
    }
}
