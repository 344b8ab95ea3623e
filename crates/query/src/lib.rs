//! Quarry's query products above the engine: Honeycomb query specs (compiled to
//! DataFusion plans, with drill-down to events), BubbleUp, and trace assembly.
//!
//! ```text
//!  spec::run_query ──► ValidSpec ──► Plan ──► groups, series, totals, heatmaps
//!                                     ▲
//!                      spec::PlanRewrite (rollups, in quarry-rollup)
//! ```
//!
//! quarry-query depends on the engine (`quarry-engine`), the SQL functions
//! (`quarry-functions`) and calculated fields (`quarry-derived`). It must NOT
//! depend on rollups: the spec runner takes them as a [`spec::PlanRewrite`] that
//! the caller (the server) passes in.

pub mod bubbleup;
pub mod spec;
pub mod trace;
