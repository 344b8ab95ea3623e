//! What the OTLP/gRPC and OTLP/HTTP receivers share: the dataset header and the
//! partial-success response. Both hand their requests to the ingest service
//! (`crate::ingest_service`), whose admission sheds load with 429 /
//! `RESOURCE_EXHAUSTED` and a retry delay, never an unbounded queue.

pub mod grpc;
mod response;

pub use response::{encode_response, json_response};

/// Header (HTTP) or metadata key (gRPC) sending every row of a request to one
/// dataset instead of the service's.
pub const DATASET_HEADER: &str = "x-honeycomb-dataset";
