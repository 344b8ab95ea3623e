//! `quarry_heatmap_bucket(value, scale, first, step, step2, count)` -> Int32: the
//! heatmap bucket index of `value` under a [`HeatmapScheme`] given as literals, so
//! a heatmap is plain DataFusion: `GROUP BY time_bucket, quarry_heatmap_bucket(..)`
//! with `SUM(weight)`.
//!
//! Arguments after `value` (all constants): `'linear', first, mantissa, exponent,
//! count` or `'log', first, per_decade, decades, count` — the fields of
//! [`HeatmapScheme`]; build the call with [`heatmap_bucket_expr`]. Null or NaN
//! values have no bucket (null); values outside the range count in the first or
//! last bucket.
//!
//! [`heatmap_bucket_expr`]: crate::heatmap_bucket_expr

use std::sync::Arc;

use arrow::array::Int32Array;
use arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility, lit,
};

use super::args::{as_floats, float_arg};
use super::heatmap::{HeatmapScheme, bucket_in};

/// Name of the function.
pub const HEATMAP_BUCKET: &str = "quarry_heatmap_bucket";

/// See the module docs.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct HeatmapBucketUdf {
    signature: Signature,
}

impl Default for HeatmapBucketUdf {
    fn default() -> Self {
        HeatmapBucketUdf {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl HeatmapScheme {
    /// The literal arguments after `value` of `quarry_heatmap_bucket`.
    pub fn literal_args(&self) -> Vec<Expr> {
        match *self {
            HeatmapScheme::Linear {
                first,
                mantissa,
                exponent,
                count,
            } => vec![
                lit("linear"),
                lit(first),
                lit(mantissa),
                lit(exponent),
                lit(count),
            ],
            HeatmapScheme::Log {
                first,
                per_decade,
                decades,
                count,
            } => vec![
                lit("log"),
                lit(first),
                lit(per_decade),
                lit(decades),
                lit(count),
            ],
        }
    }

    /// The scheme named by the constant arguments of `quarry_heatmap_bucket`.
    fn from_args(args: &[ColumnarValue]) -> Result<HeatmapScheme> {
        let [scale, first, a, b, count] = args else {
            return exec_err!("{HEATMAP_BUCKET} takes (value, scale, first, step, step2, count)");
        };
        let int = |arg: &ColumnarValue, name: &str| -> Result<i64> {
            match arg {
                ColumnarValue::Scalar(value) => match value.cast_to(&DataType::Int64) {
                    Ok(ScalarValue::Int64(Some(number))) => Ok(number),
                    _ => exec_err!("{HEATMAP_BUCKET}: {name} must be an integer, got {value}"),
                },
                ColumnarValue::Array(_) => exec_err!("{HEATMAP_BUCKET}: {name} must be a constant"),
            }
        };
        let scale = match scale {
            ColumnarValue::Scalar(value) => match value.cast_to(&DataType::Utf8) {
                Ok(ScalarValue::Utf8(Some(text))) => text,
                _ => return exec_err!("{HEATMAP_BUCKET}: scale must be 'linear' or 'log'"),
            },
            ColumnarValue::Array(_) => {
                return exec_err!("{HEATMAP_BUCKET}: scale must be a constant");
            }
        };
        let (first, a, b, count) = (
            int(first, "first")?,
            int(a, "step")?,
            int(b, "step2")?,
            int(count, "count")?,
        );
        let scheme = match scale.as_str() {
            "linear" if matches!(a, 10 | 20 | 25 | 50) => HeatmapScheme::Linear {
                first,
                mantissa: a,
                exponent: b,
                count,
            },
            "log" if matches!(a, 1 | 2 | 3 | 5 | 10) && b >= 1 => HeatmapScheme::Log {
                first,
                per_decade: a,
                decades: b,
                count,
            },
            _ => return exec_err!("{HEATMAP_BUCKET}: invalid scheme ({scale}, {a}, {b})"),
        };
        if !(1..=super::heatmap::MAX_BUCKETS as i64).contains(&count) {
            return exec_err!("{HEATMAP_BUCKET}: count must be 1..=50, got {count}");
        }
        Ok(scheme)
    }
}

impl ScalarUDFImpl for HeatmapBucketUdf {
    fn name(&self) -> &str {
        HEATMAP_BUCKET
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [value, _, _, _, _, _] => Ok(vec![
                float_arg(HEATMAP_BUCKET, "value", value)?,
                DataType::Utf8,
                DataType::Int64,
                DataType::Int64,
                DataType::Int64,
                DataType::Int64,
            ]),
            _ => plan_err!("{HEATMAP_BUCKET} takes (value, scale, first, step, step2, count)"),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let Some((value, scheme_args)) = args.args.split_first() else {
            return exec_err!("{HEATMAP_BUCKET} takes (value, scale, first, step, step2, count)");
        };
        let scheme = HeatmapScheme::from_args(scheme_args)?;
        let edges = scheme.edges();
        let values = value.to_array(args.number_rows)?;
        let values = as_floats(&values)?;
        let buckets: Int32Array = values
            .iter()
            .map(|value| value.and_then(|value| bucket_in(&edges, value)))
            .collect();
        let result = Arc::new(buckets);
        if matches!(value, ColumnarValue::Scalar(_)) {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                result.as_ref(),
                0,
            )?));
        }
        Ok(ColumnarValue::Array(result))
    }
}
