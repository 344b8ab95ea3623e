//! Reading typed fields from JSON request bodies, with errors naming the field.

use serde_json::{Map, Value};

use crate::error::{AlertError, Result};

/// An optional integer field (a float with no fraction is accepted).
pub fn optional_i64(object: &Map<String, Value>, field: &str) -> Result<Option<i64>> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_i64()
            .or_else(|| {
                value
                    .as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                    .map(|f| f as i64)
            })
            .map(Some)
            .ok_or_else(|| AlertError::invalid(field, format!("expected an integer, got {value}"))),
    }
}

/// An optional number field.
pub fn optional_f64(object: &Map<String, Value>, field: &str) -> Result<Option<f64>> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_f64()
            .filter(|f| f.is_finite())
            .map(Some)
            .ok_or_else(|| AlertError::invalid(field, format!("expected a number, got {value}"))),
    }
}

/// An optional string field of at most `max_bytes`.
pub fn optional_string(
    object: &Map<String, Value>,
    field: &str,
    max_bytes: usize,
) -> Result<Option<String>> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.len() <= max_bytes => Ok(Some(text.clone())),
        Some(Value::String(_)) => Err(AlertError::invalid(
            field,
            format!("longer than {max_bytes} bytes"),
        )),
        Some(value) => Err(AlertError::invalid(
            field,
            format!("expected a string, got {value}"),
        )),
    }
}

/// An optional boolean field.
pub fn optional_bool(object: &Map<String, Value>, field: &str) -> Result<Option<bool>> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(flag)) => Ok(Some(*flag)),
        Some(value) => Err(AlertError::invalid(
            field,
            format!("expected true or false, got {value}"),
        )),
    }
}

/// The body as an object whose keys are all among `known`.
pub fn object_with<'a>(body: &'a Value, known: &[&str]) -> Result<&'a Map<String, Value>> {
    let object = body
        .as_object()
        .ok_or_else(|| AlertError::Invalid("body: expected a JSON object".into()))?;
    if let Some(key) = object.keys().find(|key| !known.contains(&key.as_str())) {
        return Err(AlertError::invalid(key, "unknown field"));
    }
    Ok(object)
}

/// Checks an http(s) URL.
pub fn check_url(field: &str, text: &str) -> Result<()> {
    match url::Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => Ok(()),
        Ok(_) => Err(AlertError::invalid(field, "must be an http or https URL")),
        Err(error) => Err(AlertError::invalid(field, format!("not a URL ({error})"))),
    }
}

/// `[{"id": "..."}, ...]`: the ids of a recipients list.
pub fn recipient_ids(object: &Map<String, Value>) -> Result<Vec<String>> {
    let Some(list) = object.get("recipients") else {
        return Ok(Vec::new());
    };
    let list = list
        .as_array()
        .ok_or_else(|| AlertError::invalid("recipients", "expected an array"))?;
    list.iter()
        .enumerate()
        .map(|(i, entry)| {
            entry
                .get("id")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| {
                    AlertError::invalid(&format!("recipients[{i}].id"), "expected a recipient id")
                })
        })
        .collect()
}
