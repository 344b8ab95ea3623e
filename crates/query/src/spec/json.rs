//! Arrow values as JSON: numbers stay numbers, text stays text, missing is null.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimeUnit,
    TimestampNanosecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use serde_json::{Number, Value};

use quarry_engine::QueryError;

/// Every value of `array` as JSON (NaN and infinities as null).
pub fn json_values(array: &ArrayRef) -> Result<Vec<Value>, QueryError> {
    let len = array.len();
    let nulls = |f: &dyn Fn(usize) -> Value| -> Vec<Value> {
        (0..len)
            .map(|i| if array.is_null(i) { Value::Null } else { f(i) })
            .collect()
    };
    macro_rules! ints {
        ($t:ty) => {{
            let values = array.as_primitive::<$t>();
            nulls(&|i| Value::from(values.value(i)))
        }};
    }
    Ok(match array.data_type() {
        DataType::Null => vec![Value::Null; len],
        DataType::Boolean => {
            let values = array.as_boolean();
            nulls(&|i| Value::Bool(values.value(i)))
        }
        DataType::Int8 => ints!(Int8Type),
        DataType::Int16 => ints!(Int16Type),
        DataType::Int32 => ints!(Int32Type),
        DataType::Int64 => ints!(Int64Type),
        DataType::UInt8 => ints!(UInt8Type),
        DataType::UInt16 => ints!(UInt16Type),
        DataType::UInt32 => ints!(UInt32Type),
        DataType::UInt64 => ints!(UInt64Type),
        DataType::Float32 => {
            let values = array.as_primitive::<Float32Type>();
            nulls(&|i| float(f64::from(values.value(i))))
        }
        DataType::Float64 => {
            let values = array.as_primitive::<Float64Type>();
            nulls(&|i| float(values.value(i)))
        }
        DataType::Utf8 => {
            let values = array.as_string::<i32>();
            nulls(&|i| Value::String(values.value(i).to_owned()))
        }
        DataType::LargeUtf8 => {
            let values = array.as_string::<i64>();
            nulls(&|i| Value::String(values.value(i).to_owned()))
        }
        DataType::Utf8View => {
            let values = array.as_string_view();
            nulls(&|i| Value::String(values.value(i).to_owned()))
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            let values = array.as_primitive::<TimestampNanosecondType>();
            nulls(&|i| Value::String(rfc3339(values.value(i))))
        }
        DataType::List(_) => {
            let lists = array.as_list::<i32>();
            let mut out = Vec::with_capacity(len);
            for i in 0..len {
                out.push(if lists.is_null(i) {
                    Value::Null
                } else {
                    Value::Array(json_values(&lists.value(i))?)
                });
            }
            out
        }
        DataType::Struct(fields) => {
            let structs = array.as_struct();
            let columns = structs
                .columns()
                .iter()
                .map(json_values)
                .collect::<Result<Vec<_>, _>>()?;
            (0..len)
                .map(|i| {
                    if structs.is_null(i) {
                        return Value::Null;
                    }
                    Value::Object(
                        fields
                            .iter()
                            .zip(&columns)
                            .map(|(field, values)| (field.name().clone(), values[i].clone()))
                            .collect(),
                    )
                })
                .collect()
        }
        DataType::Dictionary(_, values) => {
            let plain = cast(array, values)?;
            json_values(&plain)?
        }
        _ => {
            let text = cast(array, &DataType::Utf8)?;
            json_values(&text)?
        }
    })
}

/// A float as JSON; NaN and infinities (no JSON form) as null.
pub fn float(value: f64) -> Value {
    Number::from_f64(value).map_or(Value::Null, Value::Number)
}

/// RFC 3339 with nanoseconds, UTC.
pub fn rfc3339(nanos: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(nanos)
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Epoch seconds: an integer when whole, else a float.
pub fn seconds(nanos: i64) -> Value {
    if nanos % 1_000_000_000 == 0 {
        Value::from(nanos / 1_000_000_000)
    } else {
        float(nanos as f64 / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{DictionaryArray, Float64Array, Int64Array, StringArray};
    use std::sync::Arc;

    #[test]
    fn values_keep_their_kind() {
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None]));
        assert_eq!(
            json_values(&ints).unwrap(),
            vec![Value::from(1), Value::Null]
        );
        let floats: ArrayRef = Arc::new(Float64Array::from(vec![1.5, f64::NAN]));
        assert_eq!(
            json_values(&floats).unwrap(),
            vec![Value::from(1.5), Value::Null]
        );
        let text: ArrayRef = Arc::new(StringArray::from(vec![Some("a"), None]));
        assert_eq!(
            json_values(&text).unwrap(),
            vec![Value::from("a"), Value::Null]
        );
        let dict: DictionaryArray<Int32Type> = vec![Some("x"), None].into_iter().collect();
        let dict: ArrayRef = Arc::new(dict);
        assert_eq!(
            json_values(&dict).unwrap(),
            vec![Value::from("x"), Value::Null]
        );
        assert_eq!(rfc3339(1_500_000_000), "1970-01-01T00:00:01.500000000Z");
        assert_eq!(seconds(60_000_000_000), Value::from(60));
        assert_eq!(seconds(1_500_000_000), Value::from(1.5));
    }
}
