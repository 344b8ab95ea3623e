//! One generated event (a span or a log record) and its JSON form.

use std::io::Write;

use chrono::{DateTime, SecondsFormat};

/// A field value, typed the way Quarry stores it.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// A string.
    Str(String),
    /// A 64-bit integer.
    Int(i64),
    /// A float (durations).
    Float(f64),
    /// A boolean.
    Bool(bool),
}

/// Whether an event is a span or a log record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A span of a trace.
    Span,
    /// A log record correlated with a span.
    Log,
}

/// One event for one dataset: a flat map of dotted field names to values.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The dataset (the service's name, as OTLP ingest would choose).
    pub dataset: &'static str,
    /// Event time in nanoseconds since the Unix epoch (whole microseconds).
    pub time_ns: i64,
    /// Span or log.
    pub kind: EventKind,
    /// The fields in a stable order.
    pub fields: Vec<(&'static str, FieldValue)>,
}

impl Event {
    /// The value of a field, if the event has it.
    pub fn get(&self, name: &str) -> Option<&FieldValue> {
        self.fields.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// The value of a string field.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        match self.get(name) {
            Some(FieldValue::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// The value of a float field.
    pub fn get_f64(&self, name: &str) -> Option<f64> {
        match self.get(name) {
            Some(FieldValue::Float(f)) => Some(*f),
            _ => None,
        }
    }

    /// The value of an integer field.
    pub fn get_i64(&self, name: &str) -> Option<i64> {
        match self.get(name) {
            Some(FieldValue::Int(i)) => Some(*i),
            _ => None,
        }
    }

    /// The value of a boolean field.
    pub fn get_bool(&self, name: &str) -> Option<bool> {
        match self.get(name) {
            Some(FieldValue::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    /// Appends the fields as one JSON object (`{"service.name":"cart",...}`).
    pub fn write_data_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        for (i, (name, value)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_json_str(out, name);
            out.push(b':');
            write_json_value(out, value);
        }
        out.push(b'}');
    }

    /// The event time as RFC 3339 with microseconds, as libhoney sends it.
    pub fn time_rfc3339(&self) -> String {
        DateTime::from_timestamp_nanos(self.time_ns).to_rfc3339_opts(SecondsFormat::Micros, true)
    }

    /// Appends one Honeycomb batch item: `{"time":"...","data":{...}}`.
    pub fn write_batch_item(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"time\":\"");
        out.extend_from_slice(self.time_rfc3339().as_bytes());
        out.extend_from_slice(b"\",\"data\":");
        self.write_data_json(out);
        out.push(b'}');
    }

    /// Appends one NDJSON line: `{"dataset":"...","time":"...","data":{...}}\n`.
    pub fn write_ndjson_line(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"dataset\":");
        write_json_str(out, self.dataset);
        out.extend_from_slice(b",\"time\":\"");
        out.extend_from_slice(self.time_rfc3339().as_bytes());
        out.extend_from_slice(b"\",\"data\":");
        self.write_data_json(out);
        out.extend_from_slice(b"}\n");
    }
}

fn write_json_value(out: &mut Vec<u8>, value: &FieldValue) {
    match value {
        FieldValue::Str(s) => write_json_str(out, s),
        FieldValue::Int(i) => {
            // Writing into a Vec cannot fail.
            let _ = write!(out, "{i}");
        }
        FieldValue::Float(f) if f.is_finite() => {
            let _ = write!(out, "{f}");
        }
        FieldValue::Float(_) => out.extend_from_slice(b"null"),
        FieldValue::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
    }
}

/// Appends a JSON string literal with the escapes JSON requires.
fn write_json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for &byte in s.as_bytes() {
        match byte {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0..=0x1f => {
                let _ = write!(out, "\\u{byte:04x}");
            }
            _ => out.push(byte),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Event {
        Event {
            dataset: "cart",
            time_ns: 1_700_000_000_123_456_000,
            kind: EventKind::Span,
            fields: vec![
                ("service.name", FieldValue::Str("cart".into())),
                ("body", FieldValue::Str("a \"quoted\"\n\u{1}line".into())),
                ("duration_ms", FieldValue::Float(12.5)),
                ("http.status_code", FieldValue::Int(200)),
                ("error", FieldValue::Bool(false)),
            ],
        }
    }

    #[test]
    fn data_json_round_trips_through_serde() {
        let mut out = Vec::new();
        sample().write_data_json(&mut out);
        let parsed: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(parsed["service.name"], "cart");
        assert_eq!(parsed["body"], "a \"quoted\"\n\u{1}line");
        assert_eq!(parsed["duration_ms"], 12.5);
        assert_eq!(parsed["http.status_code"], 200);
        assert_eq!(parsed["error"], false);
    }

    #[test]
    fn batch_item_carries_microsecond_time() {
        let mut out = Vec::new();
        sample().write_batch_item(&mut out);
        let parsed: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(parsed["time"], "2023-11-14T22:13:20.123456Z");
        assert_eq!(parsed["data"]["http.status_code"], 200);
    }

    #[test]
    fn ndjson_line_names_the_dataset() {
        let mut out = Vec::new();
        sample().write_ndjson_line(&mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        let parsed: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(parsed["dataset"], "cart");
    }
}
