//! OTLP attribute values (`AnyValue`) into a [`FlatEvent`], each to its column type.
//!
//! string, bool, int and double keep their types; a `kvlist` is flattened with `.`
//! like a nested JSON object (to [`MAX_DEPTH`] levels of keys); arrays, and maps
//! nested deeper, become compact JSON text; bytes become base64 text (as OTLP/JSON
//! writes them). An empty value is a null: the field is absent.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use quarry_schema::fields::{LIBRARY_NAME, LIBRARY_VERSION, SAMPLE_RATE_ATTRIBUTES};

use crate::flat_event::{FlatEvent, MAX_DEPTH};
use crate::sample_rate::{sample_rate_from_f64, sample_rate_from_i64};

/// Records `attributes` as top-level fields; returns the sample rate one of them
/// stated, if any (a value that is not a positive whole number is ignored).
pub(crate) fn put_attributes(event: &mut FlatEvent, attributes: &[KeyValue]) -> Option<i64> {
    let mut sample_rate = None;
    for attribute in attributes {
        let Some(value) = attribute.value.as_ref() else {
            continue;
        };
        if SAMPLE_RATE_ATTRIBUTES.contains(&attribute.key.as_str()) {
            sample_rate = sample_rate_of(value).or(sample_rate);
            continue;
        }
        put_field(event, &attribute.key, value, 1);
    }
    sample_rate
}

/// Records `value` under `key` (at key depth `depth`) of the current object.
pub(crate) fn put_field(event: &mut FlatEvent, key: &str, value: &AnyValue, depth: usize) {
    let mark = event.enter(key);
    put_value(event, value, depth);
    event.leave(mark);
}

/// Records `value` at the current path, whose last key is `depth` keys deep.
pub(crate) fn put_value(event: &mut FlatEvent, value: &AnyValue, depth: usize) {
    let Some(value) = value.value.as_ref() else {
        return;
    };
    match value {
        Value::StringValue(text) => event.string(text),
        Value::BoolValue(flag) => event.bool(*flag),
        Value::IntValue(number) => event.int(*number),
        Value::DoubleValue(number) => event.float(*number),
        Value::BytesValue(bytes) => event.string(&BASE64.encode(bytes)),
        Value::KvlistValue(list) if depth < MAX_DEPTH => {
            event.open_object();
            for entry in &list.values {
                if let Some(value) = entry.value.as_ref() {
                    put_field(event, &entry.key, value, depth + 1);
                }
            }
        }
        Value::KvlistValue(_) | Value::ArrayValue(_) => put_json(event, value),
        // A Profiling-only reference into a string table: OTLP asks other signals
        // to treat it as absent.
        Value::StringValueStrindex(_) => {}
    }
}

/// Records a resource's attributes; returns the sample rate they state.
pub(crate) fn put_resource(event: &mut FlatEvent, resource: Option<&Resource>) -> Option<i64> {
    resource.and_then(|resource| put_attributes(event, &resource.attributes))
}

/// Records an instrumentation scope (`library.name`, `library.version`, then its
/// attributes); returns the sample rate they state.
pub(crate) fn put_scope(
    event: &mut FlatEvent,
    scope: Option<&InstrumentationScope>,
) -> Option<i64> {
    let scope = scope?;
    if !scope.name.is_empty() {
        put_text(event, LIBRARY_NAME, &scope.name);
    }
    if !scope.version.is_empty() {
        put_text(event, LIBRARY_VERSION, &scope.version);
    }
    put_attributes(event, &scope.attributes)
}

/// Records a string field at the top level.
pub(crate) fn put_text(event: &mut FlatEvent, key: &str, value: &str) {
    let mark = event.enter(key);
    event.string(value);
    event.leave(mark);
}

/// Records an int field at the top level.
pub(crate) fn put_int(event: &mut FlatEvent, key: &str, value: i64) {
    let mark = event.enter(key);
    event.int(value);
    event.leave(mark);
}

/// Records an unsigned int field at the top level (a float beyond `i64::MAX`).
pub(crate) fn put_uint(event: &mut FlatEvent, key: &str, value: u64) {
    let mark = event.enter(key);
    event.uint(value);
    event.leave(mark);
}

/// Records a float field at the top level.
pub(crate) fn put_float(event: &mut FlatEvent, key: &str, value: f64) {
    let mark = event.enter(key);
    event.float(value);
    event.leave(mark);
}

/// Records a bool field at the top level.
pub(crate) fn put_bool(event: &mut FlatEvent, key: &str, value: bool) {
    let mark = event.enter(key);
    event.bool(value);
    event.leave(mark);
}

/// Records an id as lower-case hex at the top level; an empty id is absent.
pub(crate) fn put_id(event: &mut FlatEvent, key: &str, id: &[u8]) {
    if id.is_empty() {
        return;
    }
    let mark = event.enter(key);
    event.hex(id);
    event.leave(mark);
}

/// Records a value as its compact JSON text.
fn put_json(event: &mut FlatEvent, value: &Value) {
    let buffer = event.json_buffer();
    if serde_json::to_writer(&mut *buffer, &JsonValue(value)).is_ok() {
        event.json_done();
    }
}

/// The sample rate an attribute value states, if it is a positive whole number
/// (an int, a whole double, or such a number as text).
fn sample_rate_of(value: &AnyValue) -> Option<i64> {
    match value.value.as_ref()? {
        Value::IntValue(rate) => sample_rate_from_i64(*rate).ok(),
        Value::DoubleValue(rate) => sample_rate_from_f64(*rate).ok(),
        Value::StringValue(text) => {
            let text = text.trim();
            match text.parse::<i64>() {
                Ok(rate) => sample_rate_from_i64(rate).ok(),
                Err(_) => sample_rate_from_f64(text.parse().ok()?).ok(),
            }
        }
        _ => None,
    }
}

/// An `AnyValue` as JSON: maps as objects, bytes as base64 text, empty as null.
struct JsonValue<'a>(&'a Value);

/// An optional `AnyValue` as JSON (null when empty).
struct JsonAny<'a>(&'a AnyValue);

impl Serialize for JsonAny<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.value.as_ref() {
            Some(value) => JsonValue(value).serialize(serializer),
            None => serializer.serialize_unit(),
        }
    }
}

impl Serialize for JsonValue<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::StringValue(text) => serializer.serialize_str(text),
            Value::BoolValue(flag) => serializer.serialize_bool(*flag),
            Value::IntValue(number) => serializer.serialize_i64(*number),
            Value::DoubleValue(number) => serializer.serialize_f64(*number),
            Value::BytesValue(bytes) => serializer.serialize_str(&BASE64.encode(bytes)),
            Value::ArrayValue(array) => {
                let mut seq = serializer.serialize_seq(Some(array.values.len()))?;
                for item in &array.values {
                    seq.serialize_element(&JsonAny(item))?;
                }
                seq.end()
            }
            Value::KvlistValue(list) => {
                let mut map = serializer.serialize_map(Some(list.values.len()))?;
                for entry in &list.values {
                    match entry.value.as_ref() {
                        Some(value) => map.serialize_entry(&entry.key, &JsonAny(value))?,
                        None => map.serialize_entry(&entry.key, &())?,
                    }
                }
                map.end()
            }
            Value::StringValueStrindex(_) => serializer.serialize_unit(),
        }
    }
}

/// Writes a list of numbers as a compact JSON array into the event at `key`.
pub(crate) fn put_json_numbers<T: Serialize>(event: &mut FlatEvent, key: &str, numbers: &[T]) {
    let mark = event.enter(key);
    let buffer = event.json_buffer();
    if serde_json::to_writer(&mut *buffer, numbers).is_ok() {
        event.json_done();
    }
    event.leave(mark);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;
    use crate::flat_event::Scalar;
    use crate::otlp::test_support::{any, kv};
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};

    fn fields(event: &FlatEvent) -> Vec<(String, String)> {
        event
            .fields()
            .iter()
            .map(|field| {
                let value = match field.value {
                    Scalar::Str { start, end } => format!("s:{}", event.text(start, end)),
                    Scalar::Int(v) => format!("i:{v}"),
                    Scalar::Float(v) => format!("f:{v}"),
                    Scalar::Bool(v) => format!("b:{v}"),
                };
                (event.name(field).to_owned(), value)
            })
            .collect()
    }

    #[test]
    fn every_value_type_lands_with_its_type() {
        let nested = Value::KvlistValue(KeyValueList {
            values: vec![
                kv("b", Value::IntValue(2)),
                kv(
                    "c",
                    Value::KvlistValue(KeyValueList {
                        values: vec![kv("d", Value::BoolValue(false))],
                    }),
                ),
            ],
        });
        let array = Value::ArrayValue(ArrayValue {
            values: vec![
                any(Value::StringValue("x".into())),
                any(Value::IntValue(1)),
                any(Value::DoubleValue(1.5)),
                any(Value::BoolValue(true)),
                AnyValue { value: None },
                any(Value::BytesValue(vec![1, 2])),
                any(Value::KvlistValue(KeyValueList {
                    values: vec![kv("k", Value::StringValue("v".into()))],
                })),
            ],
        });
        let attributes = vec![
            kv("s", Value::StringValue("text".into())),
            kv("b", Value::BoolValue(true)),
            kv("i", Value::IntValue(-7)),
            kv("d", Value::DoubleValue(0.25)),
            kv("bytes", Value::BytesValue(vec![0xde, 0xad, 0xbe, 0xef])),
            kv("arr", array),
            kv("map", nested),
            KeyValue {
                key: "empty".into(),
                value: None,
                ..Default::default()
            },
            KeyValue {
                key: "null".into(),
                value: Some(AnyValue { value: None }),
                ..Default::default()
            },
            kv("sampleRate", Value::IntValue(10)),
        ];
        let mut event = FlatEvent::new(&Limits::default());
        let rate = put_attributes(&mut event, &attributes);
        assert_eq!(rate, Some(10));
        let expected = [
            ("s", "s:text"),
            ("b", "b:true"),
            ("i", "i:-7"),
            ("d", "f:0.25"),
            ("bytes", "s:3q2+7w=="),
            ("arr", r#"s:["x",1,1.5,true,null,"AQI=",{"k":"v"}]"#),
            ("map.b", "i:2"),
            ("map.c.d", "b:false"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(fields(&event), expected);
    }

    #[test]
    fn maps_deeper_than_the_limit_become_json() {
        let mut value = Value::IntValue(1);
        for key in ["f", "e", "d", "c", "b"] {
            value = Value::KvlistValue(KeyValueList {
                values: vec![kv(key, value)],
            });
        }
        let mut event = FlatEvent::new(&Limits::default());
        put_attributes(&mut event, &[kv("a", value)]);
        assert_eq!(
            fields(&event),
            [("a.b.c.d.e".to_owned(), r#"s:{"f":1}"#.to_owned())]
        );
    }

    #[test]
    fn sample_rates_from_attributes() {
        let rate = |value: Value| sample_rate_of(&any(value));
        assert_eq!(rate(Value::IntValue(4)), Some(4));
        assert_eq!(rate(Value::DoubleValue(8.0)), Some(8));
        assert_eq!(rate(Value::StringValue(" 16 ".into())), Some(16));
        assert_eq!(rate(Value::StringValue("2.0".into())), Some(2));
        assert_eq!(rate(Value::IntValue(0)), None);
        assert_eq!(rate(Value::DoubleValue(2.5)), None);
        assert_eq!(rate(Value::StringValue("lots".into())), None);
        assert_eq!(rate(Value::BoolValue(true)), None);
        let mut event = FlatEvent::new(&Limits::default());
        let attributes = [
            kv("SampleRate", Value::IntValue(3)),
            kv("x", Value::IntValue(1)),
        ];
        assert_eq!(put_attributes(&mut event, &attributes), Some(3));
        assert_eq!(fields(&event).len(), 1);
    }
}
