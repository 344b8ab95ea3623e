//! Markers (`/1/markers/{dataset|__all__}`) and marker settings (a colour per
//! marker type), in Honeycomb's shapes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{AlertError, Result};
use crate::fields::{optional_i64, optional_string};

/// Markers kept per environment; the oldest go first beyond it.
pub const MAX_MARKERS: usize = 10_000;
/// Marker settings kept per environment.
pub const MAX_MARKER_SETTINGS: usize = 1_000;
/// The longest message, type or URL kept, in bytes.
pub const MAX_TEXT_BYTES: usize = 4_096;
/// The dataset name of environment-wide markers.
pub const ALL_DATASETS: &str = "__all__";
/// The colour of a marker whose type has no setting (Honeycomb's default grey).
pub const DEFAULT_COLOR: &str = "#a0a0a0";

/// A marker: a point (or span) in time with a message, drawn on time charts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Marker {
    pub id: String,
    /// `__all__` for an environment-wide marker.
    pub dataset: String,
    /// Unix seconds.
    pub start_time: i64,
    /// Unix seconds; absent for a point marker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<i64>,
    #[serde(default)]
    pub message: String,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub url: String,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// A marker type's colour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MarkerSetting {
    pub id: String,
    pub dataset: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub color: String,
    pub created_at: String,
    pub updated_at: String,
}

/// The fields a create or update request sets (absent fields keep their value
/// on update; on create `start_time` defaults to now).
#[derive(Debug, Default)]
pub struct MarkerFields {
    pub start_time: Option<i64>,
    pub end_time: Option<Option<i64>>,
    pub message: Option<String>,
    pub kind: Option<String>,
    pub url: Option<String>,
}

impl MarkerFields {
    /// Reads and checks a request body; errors name the bad field.
    pub fn from_json(body: &Value) -> Result<MarkerFields> {
        let object = body
            .as_object()
            .ok_or_else(|| AlertError::Invalid("body: expected a JSON object".into()))?;
        for key in object.keys() {
            if !["start_time", "end_time", "message", "type", "url"].contains(&key.as_str()) {
                return Err(AlertError::invalid(key, "unknown field"));
            }
        }
        let fields = MarkerFields {
            start_time: optional_i64(object, "start_time")?,
            end_time: match object.get("end_time") {
                None => None,
                Some(Value::Null) => Some(None),
                Some(_) => Some(optional_i64(object, "end_time")?),
            },
            message: optional_string(object, "message", MAX_TEXT_BYTES)?,
            kind: optional_string(object, "type", MAX_TEXT_BYTES)?,
            url: optional_string(object, "url", MAX_TEXT_BYTES)?,
        };
        if let Some(start) = fields.start_time
            && start < 0
        {
            return Err(AlertError::invalid(
                "start_time",
                "must be unix seconds >= 0",
            ));
        }
        Ok(fields)
    }

    /// Applies the fields to `marker`, then checks the time order.
    pub fn apply(self, marker: &mut Marker) -> Result<()> {
        if let Some(start) = self.start_time {
            marker.start_time = start;
        }
        if let Some(end) = self.end_time {
            marker.end_time = end;
        }
        if let Some(message) = self.message {
            marker.message = message;
        }
        if let Some(kind) = self.kind {
            marker.kind = kind;
        }
        if let Some(url) = self.url {
            marker.url = url;
        }
        if let Some(end) = marker.end_time
            && end < marker.start_time
        {
            return Err(AlertError::invalid(
                "end_time",
                "must not be before start_time",
            ));
        }
        Ok(())
    }
}

/// A marker as the API shows it: with its type's colour.
pub fn marker_json(marker: &Marker, settings: &[MarkerSetting]) -> Value {
    let mut value = serde_json::to_value(marker).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.remove("dataset");
        map.insert(
            "color".into(),
            Value::String(color_of(marker, settings).to_owned()),
        );
    }
    value
}

/// The colour of a marker: its dataset's setting for its type, else the
/// environment-wide one, else the default.
pub fn color_of<'a>(marker: &Marker, settings: &'a [MarkerSetting]) -> &'a str {
    let find = |dataset: &str| {
        settings
            .iter()
            .find(|setting| setting.kind == marker.kind && setting.dataset == dataset)
    };
    find(&marker.dataset)
        .or_else(|| find(ALL_DATASETS))
        .map_or(DEFAULT_COLOR, |setting| setting.color.as_str())
}

/// Checks a colour: `#rgb` or `#rrggbb`.
pub fn check_color(color: &str) -> Result<()> {
    let hex = color.strip_prefix('#').unwrap_or("");
    if (hex.len() == 3 || hex.len() == 6) && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(AlertError::invalid(
            "color",
            format!("{color:?} is not a colour like #ff0000"),
        ))
    }
}

/// Whether `marker` (of `dataset` or `__all__`) overlaps `[start, end)` seconds.
pub fn in_range(marker: &Marker, start: i64, end: i64) -> bool {
    let last = marker.end_time.unwrap_or(marker.start_time);
    marker.start_time < end && last >= start
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn marker(kind: &str, dataset: &str) -> Marker {
        Marker {
            id: "m".into(),
            dataset: dataset.into(),
            start_time: 100,
            end_time: None,
            message: String::new(),
            kind: kind.into(),
            url: String::new(),
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    fn setting(kind: &str, dataset: &str, color: &str) -> MarkerSetting {
        MarkerSetting {
            id: "s".into(),
            dataset: dataset.into(),
            kind: kind.into(),
            color: color.into(),
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn a_dataset_setting_wins_over_the_environment_one() {
        let settings = [
            setting("deploy", "__all__", "#111"),
            setting("deploy", "api", "#222"),
        ];
        assert_eq!(color_of(&marker("deploy", "api"), &settings), "#222");
        assert_eq!(color_of(&marker("deploy", "web"), &settings), "#111");
        assert_eq!(color_of(&marker("other", "api"), &settings), DEFAULT_COLOR);
    }

    #[test]
    fn bad_fields_are_named() {
        let error = MarkerFields::from_json(&json!({"start_time": "soon"})).unwrap_err();
        assert!(error.to_string().starts_with("start_time: "), "{error}");
        let error = MarkerFields::from_json(&json!({"colour": 1})).unwrap_err();
        assert_eq!(error.to_string(), "colour: unknown field");
        let mut m = marker("deploy", "api");
        let error = MarkerFields::from_json(&json!({"end_time": 50}))
            .unwrap()
            .apply(&mut m)
            .unwrap_err();
        assert!(error.to_string().starts_with("end_time: "), "{error}");
        assert!(check_color("#12345g").is_err());
        assert!(check_color("#abcdef").is_ok());
    }

    #[test]
    fn range_overlap_counts_spans_and_points() {
        let mut m = marker("deploy", "api");
        assert!(in_range(&m, 100, 101));
        assert!(!in_range(&m, 101, 200));
        m.end_time = Some(150);
        assert!(in_range(&m, 120, 130));
        assert!(!in_range(&m, 0, 100));
    }
}
