//! `quarry_in_sorted(value, sorted)` -> Boolean: whether the integer (or
//! timestamp, as nanoseconds) `value` is one of `sorted`, a constant list of
//! Int64 values; null when `value` is null.
//!
//! What `value IN (...)` says, for thousands of values: the query spec looks up
//! the ids of its exemplars by their timestamps, and as an IN list each of those
//! is an expression to simplify, coerce and copy through every optimizer pass
//! (seconds of planning for a heatmap's 17,000 exemplars), while DataFusion's
//! `array_has` over a constant list rewrites itself to that IN list. One list
//! literal plans as one expression, and as a filter the Parquet scan evaluates
//! it on the timestamps alone, decoding the other columns of matching rows
//! only. Each row is a binary search of the list (sorted here once per batch
//! when it is not sorted already).

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray};
use arrow::datatypes::{DataType, Field, Int64Type};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

/// Name of the function.
pub const IN_SORTED: &str = "quarry_in_sorted";

/// See the module docs.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct InSortedUdf {
    signature: Signature,
}

impl Default for InSortedUdf {
    fn default() -> Self {
        InSortedUdf {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

fn list_of_int64() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Int64, true)))
}

impl ScalarUDFImpl for InSortedUdf {
    fn name(&self) -> &str {
        IN_SORTED
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [value, sorted] = arg_types else {
            return plan_err!("{IN_SORTED} takes (value, sorted)");
        };
        let integer =
            value.is_integer() || matches!(value, DataType::Timestamp(..) | DataType::Null);
        if !integer {
            return plan_err!("{IN_SORTED}: value must be an integer or timestamp, got {value}");
        }
        match sorted {
            DataType::List(field) | DataType::LargeList(field)
                if field.data_type().is_integer() || *field.data_type() == DataType::Null => {}
            DataType::Null => {}
            other => {
                return plan_err!("{IN_SORTED}: sorted must be a list of integers, got {other}");
            }
        }
        Ok(vec![DataType::Int64, list_of_int64()])
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [value, sorted] = args.args.as_slice() else {
            return exec_err!("{IN_SORTED} takes (value, sorted)");
        };
        let list = match sorted {
            ColumnarValue::Scalar(ScalarValue::List(list)) => Arc::clone(list),
            ColumnarValue::Scalar(scalar) if scalar.is_null() => {
                return Ok(ColumnarValue::Scalar(ScalarValue::Boolean(None)));
            }
            _ => return exec_err!("{IN_SORTED}: sorted must be a constant list"),
        };
        if list.is_null(0) {
            return Ok(ColumnarValue::Scalar(ScalarValue::Boolean(None)));
        }
        let items = list.value(0);
        let items = items.as_primitive::<Int64Type>();
        let mut wanted: Cow<[i64]> = if items.null_count() == 0 {
            Cow::Borrowed(items.values().as_ref())
        } else {
            Cow::Owned(items.iter().flatten().collect())
        };
        if !wanted.is_sorted() {
            wanted.to_mut().sort_unstable();
        }
        let values = value.to_array(args.number_rows)?;
        let Some(values) = values.as_primitive_opt::<Int64Type>() else {
            return exec_err!(
                "{IN_SORTED}: value must be Int64, got {}",
                values.data_type()
            );
        };
        let found: BooleanArray = values
            .iter()
            .map(|value| value.map(|value| wanted.binary_search(&value).is_ok()))
            .collect();
        if matches!(value, ColumnarValue::Scalar(_)) {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &found, 0,
            )?));
        }
        Ok(ColumnarValue::Array(Arc::new(found)))
    }
}
