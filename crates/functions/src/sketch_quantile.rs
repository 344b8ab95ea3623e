//! `quarry_sketch_quantile(sketch, q)` -> Float64: a quantile of an encoded sketch
//! (from `quarry_sketch` or `quarry_sketch_merge`, e.g. a rollup row). Null for a
//! null or empty sketch, or a `q` outside `[0, 1]`.

use std::sync::Arc;

use arrow::array::{Array, AsArray, Float64Array};
use arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use quarry_sketch::QuantileSketch;

use super::args::{as_floats, float_arg};
use super::sketch_rows::sketch_error;

/// Name of the function.
pub const SKETCH_QUANTILE: &str = "quarry_sketch_quantile";

/// See the module docs.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SketchQuantile {
    signature: Signature,
}

impl Default for SketchQuantile {
    fn default() -> Self {
        SketchQuantile {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for SketchQuantile {
    fn name(&self) -> &str {
        SKETCH_QUANTILE
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [sketch, q] => {
                let sketch = match sketch {
                    DataType::Binary
                    | DataType::LargeBinary
                    | DataType::BinaryView
                    | DataType::Null => DataType::Binary,
                    other => {
                        return plan_err!("{SKETCH_QUANTILE}: sketch must be binary, got {other}");
                    }
                };
                Ok(vec![sketch, float_arg(SKETCH_QUANTILE, "q", q)?])
            }
            _ => plan_err!("{SKETCH_QUANTILE} takes (sketch, q)"),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let all_scalars = args
            .args
            .iter()
            .all(|arg| matches!(arg, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [sketches, qs] = arrays.as_slice() else {
            return exec_err!("{SKETCH_QUANTILE} takes (sketch, q)");
        };
        let sketches = arrow::compute::cast(sketches, &DataType::Binary)?;
        let sketches = sketches.as_binary::<i32>();
        let qs = as_floats(qs)?;
        let mut out = Vec::with_capacity(sketches.len());
        for row in 0..sketches.len() {
            if sketches.is_null(row) || qs.is_null(row) {
                out.push(None);
                continue;
            }
            let sketch = QuantileSketch::from_bytes(sketches.value(row)).map_err(sketch_error)?;
            out.push(sketch.quantile(qs.value(row)));
        }
        let result: arrow::array::ArrayRef = Arc::new(Float64Array::from(out));
        if all_scalars {
            return Ok(ColumnarValue::Scalar(
                datafusion::common::ScalarValue::try_from_array(&result, 0)?,
            ));
        }
        Ok(ColumnarValue::Array(result))
    }
}
