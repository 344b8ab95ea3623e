//! Quarry's query engine: SQL over the datasets of an environment, on DataFusion.
//!
//! quarry-engine owns the session (functions registered, memory pool, runtime),
//! the dataset tables and their pruning (manifest statistics, bloom filters),
//! `__all__`, result encodings, errors, metrics and the query limits. It depends
//! on the schema, the segment store and the SQL functions (`quarry-functions`),
//! and must NOT depend on the query products above it: query specs, calculated
//! fields, BubbleUp, traces, rollups.
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
mod all_datasets_table;
mod bloom;
mod buffer_scan;
mod catalog;
mod config;
mod distributed;
mod encode;
mod engine;
mod error;
#[cfg(test)]
mod functions_tests;
pub mod json_floats;
mod metrics;
pub mod panic_guard;
pub mod query_limits;
mod remote_buffers;
mod segment_files;
mod segment_pruning;
mod segment_stats;
mod source;
mod table;
#[cfg(any(test, feature = "test-support"))]
pub mod test_support;
pub mod time_bucket;

pub use all_datasets::{ALL_DATASETS, DATASET_COLUMN};
pub use catalog::{CATALOG_NAME, SCHEMA_NAME};
pub use config::{
    DEFAULT_BLOOM_CACHE_BYTES, DEFAULT_MEMORY_LIMIT_BYTES, InvalidQuerySetting, QueryConfig,
};
pub use distributed::is_distributed;
pub use encode::{OutputFormat, encode_stream};
pub use engine::QueryEngine;
pub use error::QueryError;
pub use metrics::QueryMetrics;
pub use remote_buffers::{NodeBuffer, RemoteBuffers};
pub use source::DatasetSource;

/// The building blocks of dataset tables, public for tables built outside the
/// catalog (rollup segments plus the rows not rolled up yet).
pub mod scan {
    pub use crate::buffer_scan::pad_to_schema;
    pub use crate::segment_files::segment_scan;
    pub use crate::segment_pruning::prune_segments;
    pub use crate::table::{DatasetTable, ScanContext};
}
