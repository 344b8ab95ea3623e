//! Argument plumbing shared by Quarry's functions: type coercion rules and
//! constant arguments.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Array, RecordBatch};
use arrow::datatypes::{DataType, Schema};
use datafusion::common::{Result, ScalarValue, plan_err};
use datafusion::logical_expr::ColumnarValue;
use datafusion::physical_expr::PhysicalExpr;

/// Whether a value of `data_type` can be read as a Float64 number (null included:
/// a column missing from every segment is a typed-less null).
pub(crate) fn is_numeric_or_null(data_type: &DataType) -> bool {
    data_type.is_numeric() || *data_type == DataType::Null
}

/// Coerces a numeric argument to Float64, or names the function and argument in
/// the planning error.
pub(crate) fn float_arg(function: &str, argument: &str, data_type: &DataType) -> Result<DataType> {
    if is_numeric_or_null(data_type) {
        Ok(DataType::Float64)
    } else {
        plan_err!("{function}: {argument} must be numeric, got {data_type}")
    }
}

/// The value of an argument that must be a constant (a literal, or an expression
/// of literals), evaluated once at plan time.
pub(crate) fn constant_arg(function: &str, expr: &Arc<dyn PhysicalExpr>) -> Result<ScalarValue> {
    let empty = RecordBatch::new_empty(Arc::new(Schema::empty()));
    match expr.evaluate(&empty) {
        Ok(ColumnarValue::Scalar(value)) => Ok(value),
        _ => plan_err!("{function}: the quantile must be a constant"),
    }
}

/// A quantile argument: a constant number in `[0, 1]`.
pub(crate) fn quantile_arg(function: &str, value: &ScalarValue) -> Result<f64> {
    let q = match value.cast_to(&DataType::Float64) {
        Ok(ScalarValue::Float64(Some(q))) => q,
        _ => return plan_err!("{function}: the quantile must be a number, got {value}"),
    };
    if !(0.0..=1.0).contains(&q) {
        return plan_err!("{function}: the quantile must be between 0 and 1, got {q}");
    }
    Ok(q)
}

/// An argument array as Float64 (the signature already coerced numbers; a
/// remaining Null-typed array becomes all nulls).
pub(crate) fn as_floats(array: &ArrayRef) -> Result<Float64Array> {
    let cast = arrow::compute::cast(array, &DataType::Float64)?;
    Ok(cast
        .as_any()
        .downcast_ref::<Float64Array>()
        .cloned()
        .unwrap_or_else(|| Float64Array::new_null(array.len())))
}

/// The weight of row `row`: a missing weight counts as 1 (an unsampled event);
/// a weight that is not positive and finite drops the row (`None`).
pub(crate) fn row_weight(weights: &Float64Array, row: usize) -> Option<f64> {
    if weights.is_null(row) {
        return Some(1.0);
    }
    let weight = weights.value(row);
    (weight.is_finite() && weight > 0.0).then_some(weight)
}
