//! JSON for non-finite floats: `"Infinity"`, `"-Infinity"` and `"NaN"`.
//!
//! Quarry stores infinite and NaN floats as they were sent (Parquet and Arrow keep
//! them), but JSON has no number for them and arrow's JSON writer turns them into
//! `null`, which reads as "no value". The SQL endpoint's `json` and `ndjson`
//! formats spell them as strings instead, as PostgreSQL's `to_json` and
//! JavaScript's `Number("Infinity")` do; finite values are written by arrow's own
//! encoder, unchanged.

use std::sync::{Arc, LazyLock};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, FieldRef, Float32Type, Float64Type};
use arrow::error::ArrowError;
use arrow::json::writer::{Encoder, EncoderFactory, EncoderOptions, NullableEncoder, make_encoder};

/// The JSON spelling of positive infinity.
pub const INFINITY: &str = "Infinity";
/// The JSON spelling of negative infinity.
pub const NEG_INFINITY: &str = "-Infinity";
/// The JSON spelling of NaN.
pub const NAN: &str = "NaN";

/// Options without a factory, for the finite values (arrow's default encoder).
static DEFAULT_OPTIONS: LazyLock<EncoderOptions> = LazyLock::new(EncoderOptions::default);

/// The encoder factory to give arrow's JSON writers.
pub(crate) fn non_finite_floats_as_names() -> Arc<dyn EncoderFactory> {
    Arc::new(NonFiniteFloatsAsNames)
}

/// Makes Float32 and Float64 columns write non-finite values as names.
#[derive(Debug)]
struct NonFiniteFloatsAsNames;

impl EncoderFactory for NonFiniteFloatsAsNames {
    fn make_default_encoder<'a>(
        &self,
        field: &'a FieldRef,
        array: &'a dyn Array,
        _options: &'a EncoderOptions,
    ) -> Result<Option<NullableEncoder<'a>>, ArrowError> {
        let value: Box<dyn Fn(usize) -> f64 + 'a> = match array.data_type() {
            DataType::Float64 => {
                let values = array.as_primitive::<Float64Type>();
                Box::new(move |index| values.value(index))
            }
            DataType::Float32 => {
                let values = array.as_primitive::<Float32Type>();
                Box::new(move |index| f64::from(values.value(index)))
            }
            _ => return Ok(None),
        };
        let finite = make_encoder(field, array, &DEFAULT_OPTIONS)?;
        let encoder = FloatEncoder { value, finite };
        Ok(Some(NullableEncoder::new(
            Box::new(encoder),
            array.logical_nulls(),
        )))
    }
}

struct FloatEncoder<'a> {
    value: Box<dyn Fn(usize) -> f64 + 'a>,
    finite: NullableEncoder<'a>,
}

impl Encoder for FloatEncoder<'_> {
    fn encode(&mut self, index: usize, out: &mut Vec<u8>) {
        let value = (self.value)(index);
        let name = if value.is_finite() {
            return self.finite.encode(index, out);
        } else if value.is_nan() {
            NAN
        } else if value.is_sign_positive() {
            INFINITY
        } else {
            NEG_INFINITY
        };
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.push(b'"');
    }
}
