//! Rows of the dead-letter dataset: a message that cannot be decoded is kept
//! there (with where it came from and why), so it never blocks its partition or
//! subscription and can be looked at and replayed by hand.

use base64::Engine;
use bytes::Bytes;
use quarry_ingest::EventDefaults;
use serde_json::{Map, Value, json};

use crate::ingest_service::{IngestRequest, Payload};

/// Most bytes of a message kept (base64-encoded, 44 KiB) in its dead-letter
/// row: below the 64 KiB string limit, so the row is never truncated further.
pub const DEAD_LETTER_RAW_MAX_BYTES: usize = 32 * 1024;
/// Longest error message kept in a dead-letter row.
const ERROR_MAX_CHARS: usize = 2_000;

/// Where a dead message came from and why it died.
#[derive(Debug, Clone)]
pub struct DeadLetter<'a> {
    /// The source's configured name.
    pub source: &'a str,
    /// `mqtt` or `kafka`.
    pub transport: &'static str,
    /// The topic it was published to.
    pub topic: &'a str,
    /// Kafka: its partition.
    pub partition: Option<i32>,
    /// Kafka: its offset.
    pub offset: Option<i64>,
    /// Why it could not be stored.
    pub error: String,
    /// The message as received.
    pub raw: &'a [u8],
    /// Most bytes of `raw` kept (see [`raw_cap`]).
    pub raw_cap: usize,
}

/// Most bytes of a message its dead-letter row keeps: [`DEAD_LETTER_RAW_MAX_BYTES`],
/// or less when the ingest limits are lower, so that the row (base64 grows a
/// third, the error and names add up to about 2.5 KB) stays within them.
pub fn raw_cap(max_body_bytes: usize, max_event_bytes: usize) -> usize {
    DEAD_LETTER_RAW_MAX_BYTES.min(max_body_bytes.min(max_event_bytes) / 4)
}

impl DeadLetter<'_> {
    /// The ingest request writing this dead letter's row into `dataset`.
    pub fn request(&self, environment: &str, dataset: &str) -> IngestRequest {
        let kept = &self.raw[..self.raw.len().min(self.raw_cap)];
        let mut row = Map::new();
        row.insert("source".into(), json!(self.source));
        row.insert("transport".into(), json!(self.transport));
        row.insert("topic".into(), json!(self.topic));
        if let Some(partition) = self.partition {
            row.insert("partition".into(), json!(partition));
        }
        if let Some(offset) = self.offset {
            row.insert("offset".into(), json!(offset));
        }
        let error: String = self.error.chars().take(ERROR_MAX_CHARS).collect();
        row.insert("error".into(), json!(error));
        row.insert(
            "raw_base64".into(),
            json!(base64::engine::general_purpose::STANDARD.encode(kept)),
        );
        row.insert("raw_bytes".into(), json!(self.raw.len()));
        row.insert("raw_truncated".into(), json!(kept.len() < self.raw.len()));
        IngestRequest {
            environment: environment.to_owned(),
            body: Bytes::from(Value::Object(row).to_string()),
            content_encoding: None,
            payload: Payload::SingleEvent {
                dataset: dataset.to_owned(),
                content_type: Some("application/json".into()),
                defaults: EventDefaults::default(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_letter_keeps_where_why_and_a_capped_copy() {
        let raw = vec![b'x'; DEAD_LETTER_RAW_MAX_BYTES + 10];
        let letter = DeadLetter {
            source: "k",
            transport: "kafka",
            topic: "t",
            partition: Some(3),
            offset: Some(42),
            error: "bad".into(),
            raw: &raw,
            raw_cap: raw_cap(usize::MAX, usize::MAX),
        };
        let request = letter.request("default", "dead");
        let row: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(row["partition"], 3);
        assert_eq!(row["offset"], 42);
        assert_eq!(row["raw_bytes"], raw.len());
        assert_eq!(row["raw_truncated"], true);
        let kept = base64::engine::general_purpose::STANDARD
            .decode(row["raw_base64"].as_str().unwrap())
            .unwrap();
        assert_eq!(kept.len(), DEAD_LETTER_RAW_MAX_BYTES);
    }

    #[test]
    fn the_raw_copy_shrinks_with_the_limits() {
        assert_eq!(raw_cap(4096, 1 << 20), 1024);
        assert_eq!(raw_cap(10 << 20, 1 << 20), DEAD_LETTER_RAW_MAX_BYTES);
    }
}
