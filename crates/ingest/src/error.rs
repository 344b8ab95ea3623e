//! The one error type of the ingest crate.

use arrow::error::ArrowError;

/// Why a request body, or one event in it, could not be ingested.
///
/// Messages are written for the person who sent the data: they say what was wrong
/// and, where it helps, what is accepted instead.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The request had no body (or only whitespace).
    #[error("the request body is empty")]
    EmptyBody,
    /// The body (or one batch item) is not valid JSON / msgpack of the expected shape.
    #[error("{0}")]
    MalformedBody(String),
    /// A `Content-Encoding` Quarry cannot decompress.
    #[error("unsupported Content-Encoding {0:?}: send gzip, deflate, zstd or an uncompressed body")]
    UnsupportedEncoding(String),
    /// A `Content-Type` that is neither JSON nor msgpack.
    #[error("unsupported Content-Type {0:?}: send application/json or application/msgpack")]
    UnsupportedContentType(String),
    /// An OTLP/HTTP `Content-Type` that is neither protobuf nor JSON.
    #[error(
        "unsupported Content-Type {0:?} for OTLP: send application/x-protobuf or application/json"
    )]
    UnsupportedOtlpContentType(String),
    /// The (decompressed) body is larger than the configured limit.
    #[error("the request body is larger than {limit} bytes (measured after decompression)")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// One event is larger than the per-event limit.
    #[error("the event is {size} bytes, more than the limit of {limit} bytes per event")]
    EventTooLarge {
        /// The event's encoded size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// One event has more fields (after flattening nested objects) than allowed.
    #[error(
        "the event has {count} fields after flattening nested objects, more than the limit of {limit}"
    )]
    TooManyFields {
        /// Fields counted after flattening (null values not counted).
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// The event would create columns beyond the dataset's column budget.
    #[error(
        "the event would add new columns beyond the dataset's budget of {limit} columns; reuse existing field names"
    )]
    ColumnBudgetExceeded {
        /// The budget (all columns of the dataset).
        limit: usize,
    },
    /// An event time that is neither RFC 3339 nor an epoch number.
    #[error(
        "invalid event time {0}: expected RFC 3339 (e.g. \"2024-05-01T12:00:00.123Z\") or a number of seconds, milliseconds, microseconds or nanoseconds since 1970-01-01 UTC"
    )]
    InvalidTime(String),
    /// A sample rate that is not a positive integer.
    #[error("invalid sample rate {0}: it must be a positive integer (1 = not sampled)")]
    InvalidSampleRate(String),
    /// Building the Arrow batch failed (a bug, not bad input).
    #[error("building the Arrow batch failed: {0}")]
    Arrow(#[from] ArrowError),
}
