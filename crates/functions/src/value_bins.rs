//! `quarry_value_bin(value, coarsen)` -> Int64: the log-linear bin of a number,
//! read from the bits of its f64 (sign, exponent, top mantissa bits), as in
//! HdrHistogram and Prometheus' native histograms.
//!
//! Why bins by bits: they are fixed before any row is read, so a heatmap can
//! count rows per (time bucket, fine bin) in the same pass as every other
//! calculation, and choose its displayed buckets afterwards as unions of
//! adjacent fine bins, exactly, whatever the range turns out to be. A
//! data-dependent scheme (equal widths over `[min, max]`) needs the range
//! before the counting, so a second pass.
//!
//! - Each octave `[2^e, 2^(e+1))` holds [`FINE_BINS_PER_OCTAVE`] equal-width
//!   bins (each at most 1/32 of its lower edge wide); `coarsen` = c merges
//!   `2^c` adjacent bins (c > 5 merges whole octaves).
//! - A bin's value is its ordinal, increasing with the values it holds; zero
//!   and the smallest positives are ordinal 0, negatives are mirrored below it.
//! - Every bin is `lower <= value < upper` ([`bin_edges`]); both edges are
//!   exact f64s, so a comparison with them agrees with the bin of every row.
//! - Null, NaN and infinite values have no bin (null).

use std::sync::Arc;

use arrow::array::Int64Array;
use arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::args::{as_floats, float_arg};

/// Name of the function.
pub const VALUE_BIN: &str = "quarry_value_bin";
/// Mantissa bits a fine bin keeps.
const FINE_MANTISSA_BITS: u32 = 5;
/// Fine bins per octave.
pub const FINE_BINS_PER_OCTAVE: i64 = 1 << FINE_MANTISSA_BITS;
/// Bits of an f64 below the fine bin.
const FINE_SHIFT: u32 = 52 - FINE_MANTISSA_BITS;
/// Largest `coarsen`: one bin then spans every magnitude.
pub const MAX_COARSEN: u32 = 63 - FINE_SHIFT;
/// Bits of +infinity: edges at or beyond it are clamped to the largest f64.
const INFINITY_BITS: u64 = 0x7FF0_0000_0000_0000;

/// The bin of `value` merged `coarsen` times; `None` for NaN or infinities.
pub fn value_bin(value: f64, coarsen: u32) -> Option<i64> {
    if !value.is_finite() {
        return None;
    }
    let shift = FINE_SHIFT + coarsen.min(MAX_COARSEN);
    // -0.0 is zero.
    if value >= 0.0 {
        Some((value.abs().to_bits() >> shift) as i64)
    } else {
        // A negative value's bin holds magnitudes in (lower, upper], so that in
        // value order it is [-upper, -lower), like every other bin.
        let magnitude = (-value).to_bits() - 1;
        Some(-((magnitude >> shift) as i64) - 1)
    }
}

/// `(lower, upper)` of bin `ordinal` merged `coarsen` times: the bin holds
/// `lower <= value < upper`.
pub fn bin_edges(ordinal: i64, coarsen: u32) -> (f64, f64) {
    let shift = FINE_SHIFT + coarsen.min(MAX_COARSEN);
    let magnitude = |steps: u64| -> f64 {
        let bits = u128::from(steps) << shift;
        if bits >= u128::from(INFINITY_BITS) {
            f64::MAX
        } else {
            f64::from_bits(bits as u64)
        }
    };
    if ordinal >= 0 {
        let steps = ordinal as u64;
        (magnitude(steps), magnitude(steps + 1))
    } else {
        let steps = (-(ordinal + 1)) as u64;
        let upper = magnitude(steps);
        // Zero's edge is 0.0, never -0.0.
        (
            -magnitude(steps + 1),
            if upper == 0.0 { 0.0 } else { -upper },
        )
    }
}

/// See the module docs.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct ValueBinUdf {
    signature: Signature,
}

impl Default for ValueBinUdf {
    fn default() -> Self {
        ValueBinUdf {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for ValueBinUdf {
    fn name(&self) -> &str {
        VALUE_BIN
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [value, _] => Ok(vec![float_arg(VALUE_BIN, "value", value)?, DataType::Int64]),
            _ => plan_err!("{VALUE_BIN} takes (value, coarsen)"),
        }
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [value, coarsen] = args.args.as_slice() else {
            return exec_err!("{VALUE_BIN} takes (value, coarsen)");
        };
        let coarsen = match coarsen {
            ColumnarValue::Scalar(scalar) => match scalar.cast_to(&DataType::Int64) {
                Ok(ScalarValue::Int64(Some(c))) if (0..=MAX_COARSEN as i64).contains(&c) => {
                    c as u32
                }
                _ => {
                    return exec_err!(
                        "{VALUE_BIN}: coarsen must be an integer in 0..={MAX_COARSEN}, got {scalar}"
                    );
                }
            },
            ColumnarValue::Array(_) => return exec_err!("{VALUE_BIN}: coarsen must be a constant"),
        };
        let values = value.to_array(args.number_rows)?;
        let bins: Int64Array = as_floats(&values)?
            .iter()
            .map(|value| value.and_then(|value| value_bin(value, coarsen)))
            .collect();
        let result = Arc::new(bins);
        if matches!(value, ColumnarValue::Scalar(_)) {
            return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                result.as_ref(),
                0,
            )?));
        }
        Ok(ColumnarValue::Array(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value lies within the edges of its bin, at every coarseness, and a
    /// coarser bin is the union of the finer ones (ordinal >> 1).
    #[test]
    fn values_lie_in_their_bins_edges_at_every_coarseness() {
        let mut values = vec![
            0.0,
            -0.0,
            1.0,
            -1.0,
            1.5,
            -1.5,
            200.0,
            503.0,
            f64::MIN_POSITIVE,
            -f64::MIN_POSITIVE,
            5e-324,
            -5e-324,
            f64::MAX,
            f64::MIN,
            0.1,
            -0.1,
            1e300,
        ];
        values.extend((0..200).map(|i| (i as f64 - 100.0) * 0.37));
        for value in values {
            for coarsen in 0..=MAX_COARSEN {
                let ordinal = value_bin(value, coarsen).unwrap_or_else(|| panic!("{value}"));
                let (lower, upper) = bin_edges(ordinal, coarsen);
                assert!(
                    lower <= value && (value < upper || upper == f64::MAX),
                    "{value} not in [{lower}, {upper}) (bin {ordinal}, coarsen {coarsen})"
                );
                if coarsen > 0 {
                    let finer = value_bin(value, coarsen - 1).unwrap_or_default();
                    assert_eq!(finer >> 1, ordinal, "{value} at coarsen {coarsen}");
                }
            }
        }
    }

    /// Adjacent bins share their edge, and an edge value starts its bin.
    #[test]
    fn bins_tile_the_line() {
        for coarsen in [0, 3, 5, 9] {
            for ordinal in -300..300 {
                let (_, upper) = bin_edges(ordinal, coarsen);
                let (next_lower, _) = bin_edges(ordinal + 1, coarsen);
                if upper.abs() == f64::MAX || next_lower.abs() == f64::MAX {
                    continue; // beyond the largest f64: clamped edges
                }
                assert_eq!(
                    upper.to_bits(),
                    next_lower.to_bits(),
                    "{ordinal} @ {coarsen}"
                );
                assert_eq!(value_bin(next_lower, coarsen), Some(ordinal + 1));
            }
        }
        assert_eq!(bin_edges(0, 0).0.to_bits(), 0.0f64.to_bits());
        assert_eq!(bin_edges(-1, 0).1.to_bits(), 0.0f64.to_bits());
    }

    #[test]
    fn fine_bins_are_at_most_a_thirty_second_of_their_value_wide() {
        for value in [1.0, 1.99, 200.0, 255.0, 1234.5] {
            let (lower, upper) = bin_edges(value_bin(value, 0).unwrap_or_default(), 0);
            assert!(
                (upper - lower) <= lower / 32.0,
                "{value}: [{lower}, {upper})"
            );
        }
        assert_eq!(value_bin(f64::NAN, 0), None);
        assert_eq!(value_bin(f64::INFINITY, 0), None);
    }
}
