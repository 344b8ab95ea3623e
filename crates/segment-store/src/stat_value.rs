//! How a [`StatValue`] is written in the manifest's JSON, non-finite floats included.
//!
//! JSON has no number for infinity or NaN, and `serde_json` writes such an `f64`
//! as `null`. Builds before this module did exactly that: a segment holding
//! `inf` was recorded with `{"float": null}` as its maximum, and the next start
//! failed to read the manifest. Floats are now written as a number when finite and
//! as `"Infinity"`, `"-Infinity"` or `"NaN"` otherwise (the spellings of
//! JavaScript, PostgreSQL and Arrow's own casts). On the way in, the old `null`
//! reads as an unknown bound: a segment with an unknown bound is never pruned on
//! that side, which is always correct, so data directories written with the bug
//! start again unchanged.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serializer};

use crate::StatValue;

const INFINITY: &str = "Infinity";
const NEG_INFINITY: &str = "-Infinity";
const NAN: &str = "NaN";

/// `#[serde(with)]` for the `f64` of [`StatValue::Float`].
pub(crate) mod float {
    use super::*;

    /// A number when finite, else `"Infinity"`, `"-Infinity"` or `"NaN"`.
    pub(crate) fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        if value.is_finite() {
            serializer.serialize_f64(*value)
        } else if value.is_nan() {
            serializer.serialize_str(NAN)
        } else if value.is_sign_positive() {
            serializer.serialize_str(INFINITY)
        } else {
            serializer.serialize_str(NEG_INFINITY)
        }
    }

    /// A number or one of the three names; `null` is an error here (see
    /// [`unknown_if_null`](super::unknown_if_null) for where it is not).
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        deserializer
            .deserialize_any(FloatVisitor)?
            .ok_or_else(|| de::Error::custom("a float statistic is null"))
    }
}

/// Reads an optional statistics bound, taking a float written as `null` (by
/// builds before non-finite floats were spelled out) as an unknown bound.
pub(crate) fn unknown_if_null<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<StatValue>, D::Error> {
    Ok(Option::<StoredStatValue>::deserialize(deserializer)?.and_then(StoredStatValue::known))
}

/// [`StatValue`] as it may be stored, with the float of old manifests nullable.
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum StoredStatValue {
    Bool(bool),
    Int(i64),
    Float(#[serde(deserialize_with = "nullable_float")] Option<f64>),
    String(String),
}

impl StoredStatValue {
    fn known(self) -> Option<StatValue> {
        Some(match self {
            StoredStatValue::Bool(value) => StatValue::Bool(value),
            StoredStatValue::Int(value) => StatValue::Int(value),
            StoredStatValue::Float(value) => StatValue::Float(value?),
            StoredStatValue::String(value) => StatValue::String(value),
        })
    }
}

fn nullable_float<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    deserializer.deserialize_any(FloatVisitor)
}

/// Accepts a JSON number, `"Infinity"`, `"-Infinity"`, `"NaN"` or `null` (`None`).
struct FloatVisitor;

impl<'de> Visitor<'de> for FloatVisitor {
    type Value = Option<f64>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a number, \"Infinity\", \"-Infinity\" or \"NaN\"")
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
        Ok(Some(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        Ok(Some(value as f64))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        Ok(Some(value as f64))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        match value {
            INFINITY => Ok(Some(f64::INFINITY)),
            NEG_INFINITY => Ok(Some(f64::NEG_INFINITY)),
            NAN => Ok(Some(f64::NAN)),
            other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
        }
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use crate::ColumnStats;
    use crate::StatValue;
    use quarry_schema::FieldType;

    fn float_column(min: f64, max: f64) -> ColumnStats {
        ColumnStats {
            name: "f".into(),
            field_type: FieldType::Float,
            null_count: 0,
            min: Some(StatValue::Float(min)),
            max: Some(StatValue::Float(max)),
        }
    }

    #[test]
    fn infinite_bounds_round_trip_as_names() {
        let stats = float_column(f64::NEG_INFINITY, f64::INFINITY);
        let json = serde_json::to_string(&stats).unwrap();
        assert!(
            json.contains(r#""min":{"float":"-Infinity"},"max":{"float":"Infinity"}"#),
            "{json}"
        );
        let back: ColumnStats = serde_json::from_str(&json).unwrap();
        assert_eq!(back, stats);
    }

    #[test]
    fn finite_bounds_stay_numbers() {
        let stats = float_column(-1.5, 2.0);
        let json = serde_json::to_string(&stats).unwrap();
        assert!(
            json.contains(r#""min":{"float":-1.5},"max":{"float":2.0}"#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<ColumnStats>(&json).unwrap(), stats);
        let integral = r#"{"name":"f","field_type":"float","null_count":0,"min":{"float":3},"max":{"float":4}}"#;
        let read: ColumnStats = serde_json::from_str(integral).unwrap();
        assert_eq!(read.min, Some(StatValue::Float(3.0)));
    }

    #[test]
    fn nan_round_trips() {
        let json = serde_json::to_string(&StatValue::Float(f64::NAN)).unwrap();
        assert_eq!(json, r#"{"float":"NaN"}"#);
        let back: StatValue = serde_json::from_str(&json).unwrap();
        assert!(matches!(back, StatValue::Float(value) if value.is_nan()));
    }

    /// What builds with the bug wrote for a column holding +inf and -inf.
    #[test]
    fn a_null_float_bound_of_old_manifests_reads_as_unknown() {
        let old = r#"{"name":"f","field_type":"float","null_count":0,"min":{"float":null},"max":{"float":null}}"#;
        let read: ColumnStats = serde_json::from_str(old).unwrap();
        assert_eq!((read.min, read.max), (None, None));
        let half = r#"{"name":"f","field_type":"float","null_count":1,"min":{"float":-2.5},"max":{"float":null}}"#;
        let read: ColumnStats = serde_json::from_str(half).unwrap();
        assert_eq!(read.min, Some(StatValue::Float(-2.5)));
        assert_eq!(read.max, None);
        let absent = r#"{"name":"s","field_type":"string","null_count":3,"min":null}"#;
        let read: ColumnStats = serde_json::from_str(absent).unwrap();
        assert_eq!((read.min, read.max), (None, None));
    }

    #[test]
    fn other_strings_are_refused() {
        let error = serde_json::from_str::<StatValue>(r#"{"float":"lots"}"#).unwrap_err();
        assert!(error.to_string().contains("Infinity"), "{error}");
    }
}
