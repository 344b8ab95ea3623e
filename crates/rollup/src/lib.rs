//! Rollups: metrics as aggregates materialized from the same events (see
//! docs/rollups.md).
//!
//! - [`definition`]: checking definitions; the default trace rollup.
//! - [`columns`]: the rollup row format.
//! - [`partial`]: raw rows -> rollup rows (one DataFusion aggregate).
//! - [`maintain`]: the background task rolling up each sealed segment once.
//! - [`admin`]: create / list / get / delete with backfill progress.
//! - [`plan`]: answering a query spec from a rollup plus the rows not rolled up yet.
//! - [`spec_plan`]: [`RollupRewrite`], the spec runner's plan rewrite that does it.
//!
//! quarry-rollup sits above the query specs (`quarry-query`, whose `Plan` it
//! builds) and the engine (`quarry-engine`, whose tables it scans). Nothing below
//! depends on it: the server hands [`RollupRewrite`] to
//! `quarry_query::spec::run_query`.
//!
//! The store (`quarry_segment_store::rollup`) only records definitions and rollup
//! segments; everything that computes lives here, so dependencies point one way.

use quarry_engine::QueryError;

pub mod admin;
pub mod columns;
pub mod definition;
pub mod filters;
pub mod maintain;
pub mod partial;
pub mod plan;
pub mod spec_plan;
mod table;

/// A store failure while maintaining or changing rollups (not the client's fault).
pub(crate) fn store_error(error: quarry_segment_store::StoreError) -> QueryError {
    QueryError::Execution(format!("rollup storage: {error}"))
}

pub use admin::{RollupStatus, create_rollup, delete_rollup, get_rollup, list_rollups};
pub use maintain::{ConfiguredRollup, RollupMaintenance, RollupSettings};
pub use plan::{RollupCalculation, RollupRelation};
pub use spec_plan::RollupRewrite;
#[cfg(test)]
mod tests;
