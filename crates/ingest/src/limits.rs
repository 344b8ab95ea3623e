//! Per-request and per-event bounds on what a client may send. [`Limits`]
//! deserializes straight from the server's `[limits]` section.

use serde::Deserialize;

/// Default bound on a request body after decompression: 16 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Default bound on one event's encoded size: 1 MiB.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1024 * 1024;
/// Default bound on one event's fields after flattening nested objects.
pub const DEFAULT_MAX_FIELDS_PER_EVENT: usize = 2000;
/// Default bound on one string value: 64 KiB; longer values are truncated and marked.
pub const DEFAULT_MAX_STRING_BYTES: usize = 64 * 1024;
/// Default bound on the columns of one dataset (Quarry's own columns included).
pub const DEFAULT_MAX_COLUMNS_PER_DATASET: usize = 10_000;

/// The ingest limits, each enforced with its own clear error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest request body, in bytes after decompression.
    pub max_body_bytes: usize,
    /// Largest single event, in bytes of its encoding (JSON or msgpack) as sent.
    pub max_event_bytes: usize,
    /// Most fields one event may have after flattening.
    pub max_fields_per_event: usize,
    /// Longest string value in bytes; longer ones are truncated at a char boundary
    /// and their column is listed in `meta.truncated_fields`.
    pub max_string_bytes: usize,
    /// Most columns a dataset may have; events that would add more are rejected.
    pub max_columns_per_dataset: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            max_fields_per_event: DEFAULT_MAX_FIELDS_PER_EVENT,
            max_string_bytes: DEFAULT_MAX_STRING_BYTES,
            max_columns_per_dataset: DEFAULT_MAX_COLUMNS_PER_DATASET,
        }
    }
}

impl Limits {
    /// The first limit set to zero (which would refuse everything), by its key.
    pub fn zero_limit(&self) -> Option<&'static str> {
        [
            ("max_body_bytes", self.max_body_bytes),
            ("max_event_bytes", self.max_event_bytes),
            ("max_fields_per_event", self.max_fields_per_event),
            ("max_string_bytes", self.max_string_bytes),
            ("max_columns_per_dataset", self.max_columns_per_dataset),
        ]
        .into_iter()
        .find_map(|(key, value)| (value == 0).then_some(key))
    }
}
