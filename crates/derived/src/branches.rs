//! IF, SWITCH and COALESCE over values whose types are known only at planning.
//!
//! DataFusion's CASE and `coalesce` need their values to share a type and refuse
//! some mixes (a boolean column beside a number). When every value's type is
//! known at compile time the compiler casts statically and uses those built-ins;
//! when a column is among the values it uses [`Branches`], whose result type is
//! [`union_type`] of what the values turn out to be.

use arrow::array::{Array, ArrayRef, BooleanArray, new_null_array};
use arrow::compute::kernels::zip::zip;
use arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use super::dynamic::{cast_or_null, nulls_to_false, over_arrays};

/// The one type a set of values is given: itself when they agree (nulls aside),
/// the wider number for a mix of numbers, otherwise a string.
pub fn union_type<'a>(types: impl Iterator<Item = &'a DataType>) -> DataType {
    let types: Vec<&DataType> = types.filter(|t| **t != DataType::Null).collect();
    let Some(first) = types.first() else {
        return DataType::Null;
    };
    if types.iter().all(|t| t == first) {
        return (*first).clone();
    }
    let integer = |t: &DataType| t.is_integer();
    let numeric = |t: &DataType| t.is_numeric();
    if types.iter().all(|t| integer(t)) {
        DataType::Int64
    } else if types.iter().all(|t| numeric(t)) {
        DataType::Float64
    } else {
        DataType::Utf8
    }
}

/// Where `value` counts for COALESCE: not null, and not an empty string (as in
/// Honeycomb, an empty string is a missing value there).
fn present(value: &ArrayRef) -> Result<BooleanArray> {
    let not_null = arrow::compute::is_not_null(value)?;
    if !matches!(
        value.data_type(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    ) {
        return Ok(not_null);
    }
    let text = cast_or_null(value, &DataType::Utf8)?;
    let empty = arrow::array::StringArray::new_scalar("");
    let non_empty = nulls_to_false(&arrow::compute::kernels::cmp::neq(&text, &empty)?);
    Ok(arrow::compute::and(&not_null, &non_empty)?)
}

/// How the arguments of a [`Branches`] are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BranchMode {
    /// `condition, value, condition, value, ..., [default]`; conditions are booleans.
    If,
    /// `value, value, ...`: the first that is not null nor an empty string.
    Coalesce,
}

/// `quarry_if` / `quarry_coalesce`: see the module documentation.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Branches {
    mode: BranchMode,
    signature: Signature,
}

impl Branches {
    /// Indices of the value arguments among `count` arguments.
    fn value_indices(&self, count: usize) -> Vec<usize> {
        match self.mode {
            BranchMode::Coalesce => (0..count).collect(),
            BranchMode::If => {
                let mut indices: Vec<usize> = (1..count).step_by(2).collect();
                if count % 2 == 1 {
                    indices.push(count - 1);
                }
                indices
            }
        }
    }

    fn evaluate(&self, arrays: &[ArrayRef], target: &DataType) -> Result<ArrayRef> {
        let rows = arrays.first().map_or(0, |array| array.len());
        if *target == DataType::Null {
            return Ok(new_null_array(target, rows));
        }
        let cast = |array: &ArrayRef| cast_or_null(array, target);
        match self.mode {
            BranchMode::Coalesce => {
                let Some((last, rest)) = arrays.split_last() else {
                    return exec_err!("quarry_coalesce needs an argument");
                };
                let mut result = cast(last)?;
                for value in rest.iter().rev() {
                    result = zip(&present(value)?, &cast(value)?, &result)?;
                }
                Ok(result)
            }
            BranchMode::If => {
                let (pairs, default) = if arrays.len() % 2 == 1 {
                    (&arrays[..arrays.len() - 1], arrays.last())
                } else {
                    (arrays, None)
                };
                let mut result = match default {
                    Some(default) => cast(default)?,
                    None => new_null_array(target, rows),
                };
                for pair in pairs.chunks(2).rev() {
                    let [condition, value] = pair else {
                        return exec_err!("quarry_if takes condition, value pairs");
                    };
                    let condition = cast_or_null(condition, &DataType::Boolean)?;
                    let mask = condition
                        .as_any()
                        .downcast_ref::<BooleanArray>()
                        .map(nulls_to_false)
                        .unwrap_or_else(|| BooleanArray::from(vec![false; rows]));
                    result = zip(&mask, &cast(value)?, &result)?;
                }
                Ok(result)
            }
        }
    }
}

impl ScalarUDFImpl for Branches {
    fn name(&self) -> &str {
        match self.mode {
            BranchMode::If => "quarry_if",
            BranchMode::Coalesce => "quarry_coalesce",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        let indices = self.value_indices(arg_types.len());
        Ok(union_type(indices.iter().map(|&index| &arg_types[index])))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let target = args.return_type().clone();
        over_arrays(args, |arrays| self.evaluate(arrays, &target))
    }
}

/// `quarry_if(c1, v1, ..., [default])`: the value of the first true condition.
pub fn if_values(args: Vec<Expr>) -> Expr {
    udf(BranchMode::If, args)
}

/// `quarry_coalesce(v1, ...)`: the first value that is not null nor `""`.
pub fn coalesce_values(args: Vec<Expr>) -> Expr {
    udf(BranchMode::Coalesce, args)
}

fn udf(mode: BranchMode, args: Vec<Expr>) -> Expr {
    ScalarUDF::new_from_impl(Branches {
        mode,
        signature: Signature::variadic_any(Volatility::Immutable),
    })
    .call(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_types() {
        let union = |types: &[DataType]| union_type(types.iter());
        assert_eq!(union(&[DataType::Int64, DataType::Null]), DataType::Int64);
        assert_eq!(union(&[DataType::Int64, DataType::Int32]), DataType::Int64);
        assert_eq!(
            union(&[DataType::Int64, DataType::Float64]),
            DataType::Float64
        );
        assert_eq!(union(&[DataType::Boolean, DataType::Int64]), DataType::Utf8);
        assert_eq!(union(&[DataType::Utf8, DataType::Float64]), DataType::Utf8);
        assert_eq!(
            union(&[DataType::Boolean, DataType::Boolean]),
            DataType::Boolean
        );
        assert_eq!(union(&[DataType::Null]), DataType::Null);
    }
}
