//! A seeded, streaming generator of realistic telemetry for Quarry's benchmarks,
//! tests and demo mode.
//!
//! Eight services of a shop ([`topology`]) call each other; every request is one
//! trace whose spans go to the dataset of their service (as OTLP ingest routes
//! them), with correlated log records in the same datasets. Fields follow Quarry's
//! OpenTelemetry mapping (`trace.trace_id`, `trace.span_id`, `trace.parent_id`,
//! `service.name`, `name`, `duration_ms`, `error`, `http.route`,
//! `http.status_code`, ...) plus high-cardinality fields: `customer_id` (Zipf over
//! 100,000 values), `merchant_id` (Zipf over 10,000) and a unique `request_id` per
//! trace. One anomaly is injected ([`Anomaly`]): one build of `payment` in one
//! region makes its spans ten times slower.
//!
//! ```
//! use quarry_datagen::{BatchBodies, Generator, GeneratorConfig};
//! let config = GeneratorConfig::new(42, 1_000, 1_700_000_000_000_000_000);
//! let generator = Generator::new(config).unwrap();
//! println!("{}", generator.anomaly().description);
//! let events: usize = BatchBodies::new(generator, 500).map(|b| b.events).sum();
//! assert_eq!(events, 1_000);
//! ```
//!
//! quarry-datagen depends only on the vocabulary crate `quarry-schema` (for the
//! field names it writes), never on storage, ingest or queries: tests and
//! benchmarks of every layer use it.

pub mod batch;
pub mod config;
mod error;
pub mod event;
pub mod generator;
pub mod ids;
pub mod otlp;
pub mod scenario;
pub mod topology;

pub use batch::{BatchBodies, BatchBody};
pub use config::{GeneratorConfig, parse_count, parse_duration};
pub use error::DatagenError;
pub use event::{Event, EventKind, FieldValue};
pub use generator::{Generator, max_trace_events};
pub use otlp::{OtlpBodies, OtlpBody};
pub use scenario::{Anomaly, Scenario};
