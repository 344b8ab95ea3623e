//! The three functions whose meaning depends on a value's type at run time.
//!
//! `compile` receives columns as untyped `Expr`s, so it cannot choose a cast from
//! a column's type, and DataFusion's own coercions reject some pairs outright
//! (`Boolean < Int64` does not plan). These UDFs take any argument types and
//! apply Honeycomb's rules on the arrays they see; everything else in the
//! language is built from DataFusion's own functions.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, Float64Array, Int64Array, new_null_array};
use arrow::compute::kernels::cmp;
use arrow::compute::{CastOptions, can_cast_types, cast_with_options, prep_null_mask_filter};
use arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// Casts that yield null instead of failing on a value that does not convert.
const SAFE_CAST: CastOptions<'static> = CastOptions {
    safe: true,
    format_options: arrow::util::display::FormatOptions::new(),
};

/// Nanoseconds per second, to turn timestamps into Unix seconds.
const NANOS_PER_SECOND: f64 = 1e9;

/// How a value behaves in comparisons and arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Integer,
    Float,
    String,
    Boolean,
    Time,
    Other,
}

fn kind(data_type: &DataType) -> Kind {
    match data_type {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => Kind::Integer,
        DataType::Float16
        | DataType::Float32
        | DataType::Float64
        | DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => Kind::Float,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Kind::String,
        DataType::Boolean => Kind::Boolean,
        DataType::Timestamp(..) | DataType::Date32 | DataType::Date64 => Kind::Time,
        // Dictionary-encoded values behave as the values they encode.
        DataType::Dictionary(_, values) => kind(values),
        _ => Kind::Other,
    }
}

/// `array` cast to `target`, or all nulls when arrow has no such cast.
pub(super) fn cast_or_null(array: &ArrayRef, target: &DataType) -> Result<ArrayRef> {
    if array.data_type() == target {
        return Ok(Arc::clone(array));
    }
    if !can_cast_types(array.data_type(), target) {
        return Ok(new_null_array(target, array.len()));
    }
    Ok(cast_with_options(array, target, &SAFE_CAST)?)
}

/// `booleans` with every null read as false.
pub(super) fn nulls_to_false(booleans: &BooleanArray) -> BooleanArray {
    if booleans.null_count() == 0 {
        return BooleanArray::new(booleans.values().clone(), None);
    }
    prep_null_mask_filter(booleans)
}

/// Runs `f` over the arguments as arrays; the result is a scalar when every
/// argument was one, so constant folding keeps working.
pub(super) fn over_arrays(
    args: ScalarFunctionArgs,
    f: impl Fn(&[ArrayRef]) -> Result<ArrayRef>,
) -> Result<ColumnarValue> {
    let all_scalars = args
        .args
        .iter()
        .all(|arg| matches!(arg, ColumnarValue::Scalar(_)));
    let arrays = ColumnarValue::values_to_arrays(&args.args)?;
    let result = f(&arrays)?;
    if all_scalars && result.len() == 1 {
        return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
            &result, 0,
        )?));
    }
    Ok(ColumnarValue::Array(result))
}

/// `quarry_to_number(x)`: integers and booleans to Int64 (true is 1), floats to
/// Float64, strings parsed as Float64 (null when they do not parse), timestamps to
/// Unix seconds as Float64; anything else is null.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ToNumber {
    signature: Signature,
}

impl ToNumber {
    fn number_type(data_type: &DataType) -> DataType {
        match kind(data_type) {
            Kind::Integer | Kind::Boolean => DataType::Int64,
            _ if *data_type == DataType::Null => DataType::Int64,
            _ => DataType::Float64,
        }
    }

    fn convert(array: &ArrayRef) -> Result<ArrayRef> {
        let target = Self::number_type(array.data_type());
        if let DataType::Timestamp(unit, _) = array.data_type() {
            let per_second = match unit {
                TimeUnit::Second => 1.0,
                TimeUnit::Millisecond => 1e3,
                TimeUnit::Microsecond => 1e6,
                TimeUnit::Nanosecond => NANOS_PER_SECOND,
            };
            let raw = cast_or_null(array, &DataType::Int64)?;
            let raw = raw.as_any().downcast_ref::<Int64Array>().map(|ints| {
                ints.unary::<_, arrow::datatypes::Float64Type>(|v| v as f64 / per_second)
            });
            return Ok(match raw {
                Some(seconds) => Arc::new(seconds) as ArrayRef,
                None => new_null_array(&DataType::Float64, array.len()),
            });
        }
        cast_or_null(array, &target)
    }
}

impl ScalarUDFImpl for ToNumber {
    fn name(&self) -> &str {
        "quarry_to_number"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [data_type] => Ok(Self::number_type(data_type)),
            _ => exec_err!("quarry_to_number takes one argument"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        over_arrays(args, |arrays| match arrays {
            [array] => Self::convert(array),
            _ => exec_err!("quarry_to_number takes one argument"),
        })
    }
}

/// `quarry_truthy(x)`: never null. Booleans as they are, numbers true when not
/// zero, strings true when they read as true (`true`, `t`, `yes`, `y`, `on`, `1`,
/// any case), timestamps true; null and anything else false.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Truthy {
    signature: Signature,
}

impl Truthy {
    fn convert(array: &ArrayRef) -> Result<ArrayRef> {
        let booleans = match kind(array.data_type()) {
            Kind::Boolean | Kind::String => cast_or_null(array, &DataType::Boolean)?,
            Kind::Integer | Kind::Float => {
                let numbers = cast_or_null(array, &DataType::Float64)?;
                let zero = Float64Array::new_scalar(0.0);
                Arc::new(cmp::neq(&numbers, &zero)?)
            }
            Kind::Time => Arc::new(BooleanArray::from(vec![true; array.len()])),
            Kind::Other => new_null_array(&DataType::Boolean, array.len()),
        };
        let booleans = booleans
            .as_any()
            .downcast_ref::<BooleanArray>()
            .map(nulls_to_false)
            .unwrap_or_else(|| BooleanArray::from(vec![false; array.len()]));
        // A true of a null input (a timestamp slot) must read false.
        let present = arrow::compute::is_not_null(array)?;
        Ok(Arc::new(arrow::compute::and(&booleans, &present)?))
    }
}

impl ScalarUDFImpl for Truthy {
    fn name(&self) -> &str {
        "quarry_truthy"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        over_arrays(args, |arrays| match arrays {
            [array] => Self::convert(array),
            _ => exec_err!("quarry_truthy takes one argument"),
        })
    }
}

/// Which comparison a [`Compare`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// `LT`
    Less,
    /// `LTE`
    LessEqual,
    /// `GT`
    Greater,
    /// `GTE`
    GreaterEqual,
    /// `EQUALS`
    Equal,
}

/// `quarry_lt(a, b)` and friends: Honeycomb's comparisons, never null. Numbers
/// compare as numbers (an integer equals the same float), strings
/// lexicographically, booleans (false < true) and timestamps as themselves; a
/// null operand or operands of different kinds (the string "200" and the number
/// 200) give false.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Compare {
    op: CompareOp,
    signature: Signature,
}

impl Compare {
    fn compare(&self, left: &ArrayRef, right: &ArrayRef) -> Result<ArrayRef> {
        let common = match (kind(left.data_type()), kind(right.data_type())) {
            (Kind::Integer, Kind::Integer) => Some(DataType::Int64),
            (Kind::Integer | Kind::Float, Kind::Integer | Kind::Float) => Some(DataType::Float64),
            (Kind::String, Kind::String) => Some(DataType::Utf8),
            (Kind::Boolean, Kind::Boolean) => Some(DataType::Boolean),
            (Kind::Time, Kind::Time) => Some(DataType::Timestamp(TimeUnit::Nanosecond, None)),
            _ => None,
        };
        let Some(common) = common else {
            return Ok(Arc::new(BooleanArray::from(vec![false; left.len()])));
        };
        let left = cast_or_null(left, &common)?;
        let right = cast_or_null(right, &common)?;
        let result = match self.op {
            CompareOp::Less => cmp::lt(&left, &right)?,
            CompareOp::LessEqual => cmp::lt_eq(&left, &right)?,
            CompareOp::Greater => cmp::gt(&left, &right)?,
            CompareOp::GreaterEqual => cmp::gt_eq(&left, &right)?,
            CompareOp::Equal => cmp::eq(&left, &right)?,
        };
        Ok(Arc::new(nulls_to_false(&result)))
    }
}

impl ScalarUDFImpl for Compare {
    fn name(&self) -> &str {
        match self.op {
            CompareOp::Less => "quarry_lt",
            CompareOp::LessEqual => "quarry_lte",
            CompareOp::Greater => "quarry_gt",
            CompareOp::GreaterEqual => "quarry_gte",
            CompareOp::Equal => "quarry_equals",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        over_arrays(args, |arrays| match arrays {
            [left, right] => self.compare(left, right),
            _ => exec_err!("{} takes two arguments", self.name()),
        })
    }
}

/// `x` as a number (see [`ToNumber`]).
pub fn to_number(x: Expr) -> Expr {
    ScalarUDF::new_from_impl(ToNumber {
        signature: Signature::any(1, Volatility::Immutable),
    })
    .call(vec![x])
}

/// `x` as a condition (see [`Truthy`]).
pub fn truthy(x: Expr) -> Expr {
    ScalarUDF::new_from_impl(Truthy {
        signature: Signature::any(1, Volatility::Immutable),
    })
    .call(vec![x])
}

/// `left <op> right` under Honeycomb's rules (see [`Compare`]).
pub fn compare(op: CompareOp, left: Expr, right: Expr) -> Expr {
    ScalarUDF::new_from_impl(Compare {
        op,
        signature: Signature::any(2, Volatility::Immutable),
    })
    .call(vec![left, right])
}
