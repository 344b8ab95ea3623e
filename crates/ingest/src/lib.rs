//! Wire formats to columnar batches: Honeycomb Events API payloads (JSON and
//! msgpack), OTLP traces, logs and metrics ([`otlp`]) and Prometheus remote
//! write ([`remote_write`], by way of OTLP metrics) become Arrow
//! `RecordBatch`es ready for `Store::append`.
//!
//! The request path is: [`decode_body`] (Content-Encoding, size bound) then
//! [`decode_single_event`] or [`decode_batch`]. Decoding flattens nested objects,
//! types each column after the dataset schema (or the first value seen), applies
//! the conflict rule of [`quarry_schema::placement`], and enforces [`Limits`]. The
//! batch has `timestamp` first, then `meta.sample_rate`, then
//! `meta.truncated_fields` when a string was cut, then user fields in order of
//! first appearance; it passes [`quarry_schema::conform_batch`] unchanged against
//! the schema it was decoded for.
//!
//! Decisions where Honeycomb's API leaves room:
//! - A field name seen twice in one event (`{"a.b": 1, "a": {"b": 2}}`) keeps the
//!   last value.
//! - The column budget counts every column of the dataset schema plus the user
//!   columns this batch adds; Quarry's own `meta.` columns never cause a rejection.
//! - The event size limit measures the event in the encoding it was sent in (a
//!   batch item's JSON or msgpack bytes; for single events, the body).
//!
//! quarry-ingest depends only on `quarry-schema`: it turns bytes into batches and
//! must not know where they are stored (`quarry-segment-store`) or how they are
//! queried; admission and appends are the server's ingest service's.

mod batch_builder;
mod content_type;
mod decode;
mod encoding;
mod error;
mod event_time;
mod flat_event;
mod json;
mod limits;
mod msgpack;
pub mod otlp;
pub mod remote_write;
mod sample_rate;

pub(crate) use decode::ItemMeta;
pub use decode::{
    BatchDecode, DecodeContext, EventDefaults, EventStatus, decode_batch, decode_single_event,
};
pub use encoding::decode_body;
pub use error::IngestError;
pub use event_time::parse_event_time;
pub use limits::{
    DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_COLUMNS_PER_DATASET, DEFAULT_MAX_EVENT_BYTES,
    DEFAULT_MAX_FIELDS_PER_EVENT, DEFAULT_MAX_STRING_BYTES, Limits,
};
pub use sample_rate::parse_sample_rate;
