//! JSON events and batches, flattened straight from the parser (no `Value` tree).
//!
//! Only arrays and objects nested below [`MAX_DEPTH`] go through a
//! `serde_json::Value`, because they are stored as their compact JSON text.

use std::fmt;

use serde::Deserialize;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{DeserializeSeed, Deserializer as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::event_time::{epoch_from_f64, epoch_from_i64, epoch_from_u64, parse_event_time};
use crate::flat_event::{FlatEvent, MAX_DEPTH};
use crate::sample_rate::{
    parse_sample_rate, sample_rate_from_f64, sample_rate_from_i64, sample_rate_from_u64,
};
use crate::{IngestError, ItemMeta};

/// Flattens a body holding one JSON object into `event`.
pub(crate) fn flatten_event(body: &[u8], event: &mut FlatEvent) -> Result<(), IngestError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    de.deserialize_map(ObjectEntries { event, depth: 0 })
        .and_then(|()| de.end())
        .map_err(|error| {
            IngestError::MalformedBody(format!("the event is not a valid JSON object: {error}"))
        })
}

/// Splits a JSON batch body into its items and flattens each into `event`, calling
/// `on_item` once per item in order with what was read of it.
pub(crate) fn for_each_item(
    body: &[u8],
    max_event_bytes: usize,
    event: &mut FlatEvent,
    mut on_item: impl FnMut(&mut FlatEvent, Result<ItemMeta, IngestError>),
) -> Result<(), IngestError> {
    let items: Vec<&RawValue> = serde_json::from_slice(body).map_err(|error| {
        IngestError::MalformedBody(format!(
            "the batch body must be a JSON array of events: {error}"
        ))
    })?;
    for raw in items {
        event.clear();
        let text = raw.get();
        let item = if text.len() > max_event_bytes {
            Err(IngestError::EventTooLarge {
                size: text.len(),
                limit: max_event_bytes,
            })
        } else {
            read_item(text, event)
        };
        on_item(event, item);
    }
    Ok(())
}

/// Reads one batch item `{"data": {...}, "time": ..., "samplerate": ...}`.
fn read_item(text: &str, event: &mut FlatEvent) -> Result<ItemMeta, IngestError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let read = de
        .deserialize_map(ItemVisitor { event })
        .map_err(|error| IngestError::MalformedBody(format!("invalid batch item: {error}")))?;
    if !read.has_data {
        return Err(IngestError::MalformedBody(
            "the batch item has no \"data\" object".to_owned(),
        ));
    }
    Ok(ItemMeta {
        time_ns: read.time.transpose()?,
        sample_rate: read.sample_rate.transpose()?,
    })
}

/// Flattens the entries of an object whose keys sit at `depth + 1`.
struct ObjectEntries<'e> {
    event: &'e mut FlatEvent,
    depth: usize,
}

impl<'de> Visitor<'de> for ObjectEntries<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object of event fields")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let event = self.event;
        while let Some(mark) = map.next_key_seed(KeySeed { event: &mut *event })? {
            map.next_value_seed(ValueSeed {
                event: &mut *event,
                depth: self.depth + 1,
            })?;
            event.leave(mark);
        }
        Ok(())
    }
}

/// Appends a key to the event's current path.
struct KeySeed<'e> {
    event: &'e mut FlatEvent,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = crate::flat_event::PathMark;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = crate::flat_event::PathMark;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Self::Value, E> {
        Ok(self.event.enter(key))
    }
}

/// Records the value at the event's current path, `depth` keys deep.
struct ValueSeed<'e> {
    event: &'e mut FlatEvent,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<(), E> {
        self.event.bool(value);
        Ok(())
    }

    fn visit_i64<E>(self, value: i64) -> Result<(), E> {
        self.event.int(value);
        Ok(())
    }

    fn visit_u64<E>(self, value: u64) -> Result<(), E> {
        self.event.uint(value);
        Ok(())
    }

    fn visit_f64<E>(self, value: f64) -> Result<(), E> {
        self.event.float(value);
        Ok(())
    }

    fn visit_str<E>(self, value: &str) -> Result<(), E> {
        self.event.string(value);
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        // null: the field is absent from this event.
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        if self.depth < MAX_DEPTH {
            self.event.open_object();
            ObjectEntries {
                event: self.event,
                depth: self.depth,
            }
            .visit_map(map)
        } else {
            let value = serde_json::Value::deserialize(MapAccessDeserializer::new(map))?;
            self.event.json_value(&value);
            Ok(())
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        let value = serde_json::Value::deserialize(SeqAccessDeserializer::new(seq))?;
        self.event.json_value(&value);
        Ok(())
    }
}

/// What a batch item held besides its data.
struct ItemRead {
    has_data: bool,
    time: Option<Result<i64, IngestError>>,
    sample_rate: Option<Result<i64, IngestError>>,
}

/// Reads a batch item object, flattening `data` into the event.
struct ItemVisitor<'e> {
    event: &'e mut FlatEvent,
}

impl<'de> Visitor<'de> for ItemVisitor<'_> {
    type Value = ItemRead;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object {\"data\": {...}, \"time\": ..., \"samplerate\": ...}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ItemRead, A::Error> {
        let mut read = ItemRead {
            has_data: false,
            time: None,
            sample_rate: None,
        };
        while let Some(key) = map.next_key_seed(ItemKeySeed)? {
            match key {
                ItemKey::Data => {
                    // A repeated "data" key replaces the earlier one, as in JSON objects.
                    self.event.clear();
                    map.next_value_seed(DataSeed {
                        event: &mut *self.event,
                    })?;
                    read.has_data = true;
                }
                ItemKey::Time => read.time = map.next_value_seed(TimeSeed)?,
                ItemKey::SampleRate => read.sample_rate = map.next_value_seed(SampleRateSeed)?,
                ItemKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(read)
    }
}

/// The keys of a batch item Quarry reads.
enum ItemKey {
    Data,
    Time,
    SampleRate,
    Other,
}

struct ItemKeySeed;

impl<'de> DeserializeSeed<'de> for ItemKeySeed {
    type Value = ItemKey;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<ItemKey, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for ItemKeySeed {
    type Value = ItemKey;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a batch item key")
    }

    fn visit_str<E>(self, key: &str) -> Result<ItemKey, E> {
        Ok(match key {
            "data" => ItemKey::Data,
            "time" => ItemKey::Time,
            "samplerate" => ItemKey::SampleRate,
            _ => ItemKey::Other,
        })
    }
}

/// The `data` object of a batch item.
struct DataSeed<'e> {
    event: &'e mut FlatEvent,
}

impl<'de> DeserializeSeed<'de> for DataSeed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(ObjectEntries {
            event: self.event,
            depth: 0,
        })
    }
}

/// An item's `time`: RFC 3339 text or an epoch number; null means "not given".
struct TimeSeed;

impl<'de> DeserializeSeed<'de> for TimeSeed {
    type Value = Option<Result<i64, IngestError>>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TimeSeed {
    type Value = Option<Result<i64, IngestError>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an RFC 3339 time string or an epoch number")
    }

    fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
        Ok(Some(parse_event_time(value)))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Self::Value, E> {
        Ok(Some(epoch_from_i64(value)))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Self::Value, E> {
        Ok(Some(epoch_from_u64(value)))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Self::Value, E> {
        Ok(Some(epoch_from_f64(value)))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// An item's `samplerate`: a positive integer (a whole float or numeric string is
/// accepted too); null means "not given".
struct SampleRateSeed;

impl<'de> DeserializeSeed<'de> for SampleRateSeed {
    type Value = Option<Result<i64, IngestError>>;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for SampleRateSeed {
    type Value = Option<Result<i64, IngestError>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a positive integer sample rate")
    }

    fn visit_i64<E>(self, value: i64) -> Result<Self::Value, E> {
        Ok(Some(sample_rate_from_i64(value)))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Self::Value, E> {
        Ok(Some(sample_rate_from_u64(value)))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Self::Value, E> {
        Ok(Some(sample_rate_from_f64(value)))
    }

    fn visit_str<E>(self, value: &str) -> Result<Self::Value, E> {
        Ok(Some(
            parse_sample_rate(value).and_then(sample_rate_from_u64),
        ))
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}
