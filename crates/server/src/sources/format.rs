//! A stream message's bytes -> the ingest service's request, by the source's
//! format. Decoding itself is the ingest service's; this only frames the body
//! the way the matching HTTP route would.

use bytes::Bytes;
use quarry_ingest::EventDefaults;
use quarry_ingest::otlp::OtlpFormat;

use crate::config::{StreamFormat, StreamSignal};
use crate::ingest_service::{IngestRequest, Payload, Signal};

/// Content type of the JSON bodies handed to the ingest service.
const JSON: &str = "application/json";

/// Why a message cannot become a request (it goes to the dead-letter dataset).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// A `honeycomb_events` message is neither a JSON object nor an array.
    #[error("a honeycomb_events message must be a JSON object (one event) or array (a batch)")]
    NotAnEventOrBatch,
    /// A line of a `json_lines` message is not JSON.
    #[error("line {line} is not JSON: {reason}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// The parser's message.
        reason: String,
    },
    /// A message without events.
    #[error("the message is empty")]
    Empty,
    /// No dataset for an event message.
    #[error("{0}")]
    NoDataset(String),
}

/// The ingest request for one message of `format`.
///
/// `dataset` is where the rows go (for OTLP, `None` means each row's service).
pub fn request(
    format: StreamFormat,
    signal: StreamSignal,
    environment: &str,
    dataset: Option<String>,
    body: Bytes,
) -> Result<IngestRequest, FormatError> {
    let payload = match format {
        StreamFormat::OtlpProto | StreamFormat::OtlpJson => Payload::Otlp {
            signal: match signal {
                StreamSignal::Traces => Signal::Traces,
                StreamSignal::Logs => Signal::Logs,
                StreamSignal::Metrics => Signal::Metrics,
            },
            format: if format == StreamFormat::OtlpProto {
                OtlpFormat::Protobuf
            } else {
                OtlpFormat::Json
            },
            dataset_override: dataset,
        },
        StreamFormat::HoneycombEvents => {
            let dataset = dataset.ok_or_else(no_dataset)?;
            match first_byte(&body) {
                Some(b'{') => Payload::SingleEvent {
                    dataset,
                    content_type: Some(JSON.into()),
                    defaults: EventDefaults::default(),
                },
                Some(b'[') => Payload::EventBatch {
                    dataset,
                    content_type: Some(JSON.into()),
                },
                None => return Err(FormatError::Empty),
                Some(_) => return Err(FormatError::NotAnEventOrBatch),
            }
        }
        StreamFormat::JsonLines => {
            let dataset = dataset.ok_or_else(no_dataset)?;
            return Ok(IngestRequest {
                environment: environment.to_owned(),
                body: json_lines_as_batch(&body)?,
                content_encoding: None,
                payload: Payload::EventBatch {
                    dataset,
                    content_type: Some(JSON.into()),
                },
            });
        }
    };
    Ok(IngestRequest {
        environment: environment.to_owned(),
        body,
        content_encoding: None,
        payload,
    })
}

fn no_dataset() -> FormatError {
    FormatError::NoDataset("the message names no dataset".into())
}

fn first_byte(body: &[u8]) -> Option<u8> {
    body.iter()
        .copied()
        .find(|byte| !byte.is_ascii_whitespace())
}

/// `{..}\n{..}` -> `[{"data":{..}},{"data":{..}}]`, the Events API's batch, so
/// each line is one event with its own status. Each line is checked to be one
/// JSON value first, so a line cannot splice itself into its neighbours.
fn json_lines_as_batch(body: &[u8]) -> Result<Bytes, FormatError> {
    let text = std::str::from_utf8(body).map_err(|error| FormatError::BadLine {
        line: 1 + body[..error.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count(),
        reason: "not UTF-8".into(),
    })?;
    let mut batch = Vec::with_capacity(body.len() + 16);
    batch.push(b'[');
    let mut events = 0;
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        serde_json::from_str::<serde::de::IgnoredAny>(line).map_err(|error| {
            FormatError::BadLine {
                line: index + 1,
                reason: error.to_string(),
            }
        })?;
        if events > 0 {
            batch.push(b',');
        }
        batch.extend_from_slice(b"{\"data\":");
        batch.extend_from_slice(line.as_bytes());
        batch.push(b'}');
        events += 1;
    }
    if events == 0 {
        return Err(FormatError::Empty);
    }
    batch.push(b']');
    Ok(Bytes::from(batch))
}

/// The message id of a JSON event message: `field` of its top-level object (or
/// of the object's `data`, for an Events API batch item), as text. `None` for
/// other payloads (OTLP, arrays, several lines) and messages without it.
pub fn message_id(format: StreamFormat, body: &[u8], field: &str) -> Option<String> {
    if format.is_otlp() || first_byte(body) != Some(b'{') {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let id = value.get(field)?;
    match id {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_of(format: StreamFormat, body: &str) -> Result<IngestRequest, FormatError> {
        request(
            format,
            StreamSignal::Traces,
            "default",
            Some("ds".into()),
            Bytes::from(body.to_owned()),
        )
    }

    #[test]
    fn json_lines_become_a_batch_of_events() {
        let request = body_of(StreamFormat::JsonLines, "{\"a\":1}\n\n {\"b\":\"x\"} \n").unwrap();
        assert_eq!(
            std::str::from_utf8(&request.body).unwrap(),
            r#"[{"data":{"a":1}},{"data":{"b":"x"}}]"#
        );
        assert!(matches!(request.payload, Payload::EventBatch { .. }));
    }

    #[test]
    fn a_line_that_would_splice_into_its_neighbours_is_refused() {
        let error =
            body_of(StreamFormat::JsonLines, "{\"a\":1}\n1}},{\"data\":{\"x\":2").unwrap_err();
        assert!(
            matches!(error, FormatError::BadLine { line: 2, .. }),
            "{error}"
        );
        assert_eq!(
            body_of(StreamFormat::JsonLines, " \n").unwrap_err(),
            FormatError::Empty
        );
    }

    #[test]
    fn honeycomb_messages_are_an_event_or_a_batch() {
        let single = body_of(StreamFormat::HoneycombEvents, " {\"a\":1}").unwrap();
        assert!(matches!(single.payload, Payload::SingleEvent { .. }));
        let batch = body_of(StreamFormat::HoneycombEvents, "[{\"data\":{}}]").unwrap();
        assert!(matches!(batch.payload, Payload::EventBatch { .. }));
        assert_eq!(
            body_of(StreamFormat::HoneycombEvents, "42").unwrap_err(),
            FormatError::NotAnEventOrBatch
        );
    }

    #[test]
    fn message_ids_come_from_a_top_level_field() {
        let id = |body: &str| message_id(StreamFormat::JsonLines, body.as_bytes(), "id");
        assert_eq!(id(r#"{"id":"m-1","v":2}"#).as_deref(), Some("m-1"));
        assert_eq!(id(r#"{"id":17}"#).as_deref(), Some("17"));
        assert_eq!(id(r#"{"v":2}"#), None);
        assert_eq!(id("[1]"), None);
        assert_eq!(
            message_id(StreamFormat::OtlpJson, br#"{"id":"x"}"#, "id"),
            None
        );
    }
}
