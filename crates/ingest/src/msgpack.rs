//! MessagePack events and batches (libhoney-go and libhoney-js send batches this way).
//!
//! Items are decoded one at a time with rmpv into borrowed `ValueRef`s (strings are
//! not copied) and walked into the same [`FlatEvent`] as JSON. msgpack-only types map
//! as follows: timestamp extensions (type -1, and Go msgp's type 5) become RFC 3339
//! strings in data and event times in `time`; binary becomes a string when it is
//! UTF-8 and a JSON array of bytes otherwise; other extensions become
//! `{"ext": type, "data": [bytes]}` JSON strings; non-string map keys use their
//! text form.

use rmpv::ValueRef;
use serde_json::{Map, Number, Value};

use crate::event_time::{
    epoch_from_f64, epoch_from_i64, epoch_from_u64, format_rfc3339, msgpack_ext_time,
    parse_event_time,
};
use crate::flat_event::{FlatEvent, MAX_DEPTH};
use crate::sample_rate::{
    parse_sample_rate, sample_rate_from_f64, sample_rate_from_i64, sample_rate_from_u64,
};
use crate::{IngestError, ItemMeta};

/// Deepest msgpack nesting decoded, as serde_json's recursion limit; bounds the
/// stack used on hostile input.
const MAX_NESTING: usize = 128;

/// Flattens a body holding one msgpack map into `event`.
pub(crate) fn flatten_event(body: &[u8], event: &mut FlatEvent) -> Result<(), IngestError> {
    let mut rest = body;
    let value = read_value(&mut rest)?;
    if !rest.is_empty() {
        return Err(IngestError::MalformedBody(
            "unexpected bytes after the msgpack event".to_owned(),
        ));
    }
    match &value {
        ValueRef::Map(entries) => {
            flatten_entries(entries, event, 0);
            Ok(())
        }
        other => Err(IngestError::MalformedBody(format!(
            "the event must be a msgpack map, not {}",
            kind(other)
        ))),
    }
}

/// Splits a msgpack batch body into its items and flattens each into `event`,
/// calling `on_item` once per item in order with what was read of it.
pub(crate) fn for_each_item(
    body: &[u8],
    max_event_bytes: usize,
    event: &mut FlatEvent,
    mut on_item: impl FnMut(&mut FlatEvent, Result<ItemMeta, IngestError>),
) -> Result<(), IngestError> {
    let (count, mut rest) = array_header(body).ok_or_else(|| {
        IngestError::MalformedBody("the batch body must be a msgpack array of events".to_owned())
    })?;
    for _ in 0..count {
        let before = rest.len();
        let value = read_value(&mut rest)?;
        let size = before - rest.len();
        event.clear();
        let item = if size > max_event_bytes {
            Err(IngestError::EventTooLarge {
                size,
                limit: max_event_bytes,
            })
        } else {
            read_item(&value, event)
        };
        on_item(event, item);
    }
    if !rest.is_empty() {
        return Err(IngestError::MalformedBody(
            "unexpected bytes after the msgpack batch array".to_owned(),
        ));
    }
    Ok(())
}

fn read_value<'a>(rest: &mut &'a [u8]) -> Result<ValueRef<'a>, IngestError> {
    rmpv::decode::read_value_ref_with_max_depth(rest, MAX_NESTING)
        .map_err(|error| IngestError::MalformedBody(format!("invalid msgpack: {error}")))
}

/// The element count of a msgpack array header and the bytes after it.
fn array_header(body: &[u8]) -> Option<(usize, &[u8])> {
    let (&marker, rest) = body.split_first()?;
    match marker {
        0x90..=0x9f => Some((usize::from(marker & 0x0f), rest)),
        0xdc => {
            let (len, rest) = rest.split_first_chunk::<2>()?;
            Some((usize::from(u16::from_be_bytes(*len)), rest))
        }
        0xdd => {
            let (len, rest) = rest.split_first_chunk::<4>()?;
            Some((usize::try_from(u32::from_be_bytes(*len)).ok()?, rest))
        }
        _ => None,
    }
}

/// Reads one batch item map `{data, time, samplerate}`.
fn read_item(value: &ValueRef<'_>, event: &mut FlatEvent) -> Result<ItemMeta, IngestError> {
    let ValueRef::Map(entries) = value else {
        return Err(IngestError::MalformedBody(format!(
            "the batch item must be a map, not {}",
            kind(value)
        )));
    };
    let mut meta = ItemMeta {
        time_ns: None,
        sample_rate: None,
    };
    let mut has_data = false;
    for (key, value) in entries {
        let key = match key {
            ValueRef::String(text) => text.as_str(),
            _ => None,
        };
        match key {
            Some("data") => {
                let ValueRef::Map(data) = value else {
                    return Err(IngestError::MalformedBody(format!(
                        "the batch item's \"data\" must be a map, not {}",
                        kind(value)
                    )));
                };
                event.clear();
                flatten_entries(data, event, 0);
                has_data = true;
            }
            Some("time") => meta.time_ns = item_time(value)?,
            Some("samplerate") => meta.sample_rate = item_sample_rate(value)?,
            _ => {}
        }
    }
    if !has_data {
        return Err(IngestError::MalformedBody(
            "the batch item has no \"data\" map".to_owned(),
        ));
    }
    Ok(meta)
}

fn item_time(value: &ValueRef<'_>) -> Result<Option<i64>, IngestError> {
    let time = match value {
        ValueRef::Nil => return Ok(None),
        ValueRef::String(text) => match text.as_str() {
            Some(text) => parse_event_time(text)?,
            None => {
                return Err(IngestError::InvalidTime(
                    "(text that is not UTF-8)".to_owned(),
                ));
            }
        },
        ValueRef::Integer(int) => match (int.as_i64(), int.as_u64()) {
            (Some(int), _) => epoch_from_i64(int)?,
            (None, Some(uint)) => epoch_from_u64(uint)?,
            (None, None) => return Err(IngestError::InvalidTime(int.to_string())),
        },
        ValueRef::F32(float) => epoch_from_f64(f32_to_f64(*float))?,
        ValueRef::F64(float) => epoch_from_f64(*float)?,
        ValueRef::Ext(ext_type, data) => msgpack_ext_time(*ext_type, data).ok_or_else(|| {
            IngestError::InvalidTime(format!("(msgpack extension type {ext_type})"))
        })?,
        other => return Err(IngestError::InvalidTime(format!("({})", kind(other)))),
    };
    Ok(Some(time))
}

fn item_sample_rate(value: &ValueRef<'_>) -> Result<Option<i64>, IngestError> {
    let rate = match value {
        ValueRef::Nil => return Ok(None),
        ValueRef::Integer(int) => match (int.as_i64(), int.as_u64()) {
            (Some(int), _) => sample_rate_from_i64(int)?,
            (None, Some(uint)) => sample_rate_from_u64(uint)?,
            (None, None) => return Err(IngestError::InvalidSampleRate(int.to_string())),
        },
        ValueRef::F32(float) => sample_rate_from_f64(f64::from(*float))?,
        ValueRef::F64(float) => sample_rate_from_f64(*float)?,
        ValueRef::String(text) => match text.as_str() {
            Some(text) => sample_rate_from_u64(parse_sample_rate(text)?)?,
            None => {
                return Err(IngestError::InvalidSampleRate(
                    "(text that is not UTF-8)".to_owned(),
                ));
            }
        },
        other => return Err(IngestError::InvalidSampleRate(format!("({})", kind(other)))),
    };
    Ok(Some(rate))
}

/// Flattens map entries whose keys sit at `depth + 1`.
fn flatten_entries(entries: &[(ValueRef<'_>, ValueRef<'_>)], event: &mut FlatEvent, depth: usize) {
    for (key, value) in entries {
        let mark = match key {
            ValueRef::String(text) => match text.as_str() {
                Some(text) => event.enter(text),
                None => event.enter(&String::from_utf8_lossy(text.as_bytes())),
            },
            ValueRef::Integer(int) => event.enter_display(int),
            other => event.enter_display(to_json(other)),
        };
        flatten_value(value, event, depth + 1);
        event.leave(mark);
    }
}

/// Records one value at the event's current path, `depth` keys deep.
fn flatten_value(value: &ValueRef<'_>, event: &mut FlatEvent, depth: usize) {
    match value {
        ValueRef::Nil => {}
        ValueRef::Boolean(value) => event.bool(*value),
        ValueRef::Integer(int) => match (int.as_i64(), int.as_u64()) {
            (Some(int), _) => event.int(int),
            (None, Some(uint)) => event.uint(uint),
            (None, None) => {}
        },
        ValueRef::F32(float) => event.float(f32_to_f64(*float)),
        ValueRef::F64(float) => event.float(*float),
        ValueRef::String(text) => match text.as_str() {
            Some(text) => event.string(text),
            None => event.string(&String::from_utf8_lossy(text.as_bytes())),
        },
        ValueRef::Binary(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => event.string(text),
            Err(_) => json_string(value, event),
        },
        ValueRef::Map(entries) if depth < MAX_DEPTH => {
            event.open_object();
            flatten_entries(entries, event, depth);
        }
        ValueRef::Ext(ext_type, data) => match msgpack_ext_time(*ext_type, data) {
            Some(nanos) => event.string(&format_rfc3339(nanos)),
            None => json_string(value, event),
        },
        ValueRef::Map(_) | ValueRef::Array(_) => json_string(value, event),
    }
}

fn json_string(value: &ValueRef<'_>, event: &mut FlatEvent) {
    event.json_value(&to_json(value));
}

/// The JSON form of a msgpack value (for arrays, deep maps and odd types).
fn to_json(value: &ValueRef<'_>) -> Value {
    match value {
        ValueRef::Nil => Value::Null,
        ValueRef::Boolean(value) => Value::Bool(*value),
        ValueRef::Integer(int) => match (int.as_i64(), int.as_u64()) {
            (Some(int), _) => Value::from(int),
            (None, Some(uint)) => Value::from(uint),
            (None, None) => Value::Null,
        },
        ValueRef::F32(float) => float_json(f32_to_f64(*float)),
        ValueRef::F64(float) => float_json(*float),
        ValueRef::String(text) => {
            Value::String(String::from_utf8_lossy(text.as_bytes()).into_owned())
        }
        ValueRef::Binary(bytes) => match std::str::from_utf8(bytes) {
            Ok(text) => Value::String(text.to_owned()),
            Err(_) => Value::Array(bytes.iter().map(|&b| Value::from(b)).collect()),
        },
        ValueRef::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        ValueRef::Map(entries) => {
            let mut map = Map::new();
            for (key, value) in entries {
                let key = match key {
                    ValueRef::String(text) => String::from_utf8_lossy(text.as_bytes()).into_owned(),
                    other => to_json(other).to_string(),
                };
                map.insert(key, to_json(value));
            }
            Value::Object(map)
        }
        ValueRef::Ext(ext_type, data) => match msgpack_ext_time(*ext_type, data) {
            Some(nanos) => Value::String(format_rfc3339(nanos)),
            None => {
                let mut map = Map::new();
                map.insert("ext".to_owned(), Value::from(*ext_type));
                map.insert(
                    "data".to_owned(),
                    Value::Array(data.iter().map(|&b| Value::from(b)).collect()),
                );
                Value::Object(map)
            }
        },
    }
}

/// JSON has no NaN or infinity; those become their text.
fn float_json(value: f64) -> Value {
    Number::from_f64(value).map_or_else(|| Value::String(value.to_string()), Value::Number)
}

/// Widens an f32 to the f64 of its shortest decimal form, so `1.1f32` is `1.1`, not
/// `1.100000023841858` (what the client wrote is the decimal).
fn f32_to_f64(value: f32) -> f64 {
    if !value.is_finite() {
        return f64::from(value);
    }
    value.to_string().parse().unwrap_or(f64::from(value))
}

/// A short name of a msgpack value's kind, for error messages.
fn kind(value: &ValueRef<'_>) -> &'static str {
    match value {
        ValueRef::Nil => "nil",
        ValueRef::Boolean(_) => "a boolean",
        ValueRef::Integer(_) => "an integer",
        ValueRef::F32(_) | ValueRef::F64(_) => "a float",
        ValueRef::String(_) => "a string",
        ValueRef::Binary(_) => "binary data",
        ValueRef::Array(_) => "an array",
        ValueRef::Map(_) => "a map",
        ValueRef::Ext(..) => "an extension value",
    }
}
