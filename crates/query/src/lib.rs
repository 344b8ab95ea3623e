//! Quarry's query engine: SQL over the datasets of an environment, on DataFusion.
//!
//! ```text
//!  QueryEngine::sql(env, sql)
//!     │ session scoped to `env`: catalog `quarry`, schema `public` = its datasets
//!     ▼
//!  DatasetTable::scan ── prune segments by manifest stats, then bloom filters
//!     │
//!     ▼
//!  Union(Parquet scan of segments, memory scan of the buffer) ──► stream of batches
//!     │
//!     ▼
//!  encode_stream: JSON / NDJSON / CSV / Arrow IPC bytes
//! ```
//!
//! Dataset and column names with dots or dashes are written double-quoted:
//! `SELECT "trace.trace_id" FROM "my-app.prod"`. Unquoted names are lower-cased, as
//! in any SQL engine.

mod all_datasets;
mod bloom;
pub mod bubbleup;
mod buffer_scan;
mod catalog;
mod config;
pub mod derived;
mod encode;
mod engine;
mod error;
pub mod functions;
pub mod json_floats;
mod metrics;
pub mod panic_guard;
pub mod query_limits;
pub mod rollup;
mod segment_files;
mod segment_pruning;
mod segment_stats;
mod source;
pub mod spec;
mod table;
#[cfg(test)]
mod test_support;
pub mod time_bucket;
pub mod trace;

pub use all_datasets::{ALL_DATASETS, DATASET_COLUMN};
pub use catalog::{CATALOG_NAME, SCHEMA_NAME};
pub use config::{
    DEFAULT_BLOOM_CACHE_BYTES, DEFAULT_MEMORY_LIMIT_BYTES, InvalidQuerySetting, QueryConfig,
};
pub use encode::{OutputFormat, encode_stream};
pub use engine::QueryEngine;
pub use error::QueryError;
pub use metrics::QueryMetrics;
pub use source::DatasetSource;
