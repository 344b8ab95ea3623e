//! The hook through which a spec may be answered by another plan than the one
//! compiled from raw rows. Rollups (`quarry-rollup`, docs/rollups.md) implement
//! it; this crate names no implementation, so the spec compiler does not depend
//! on them.

use async_trait::async_trait;
use datafusion::prelude::SessionContext;
use quarry_engine::{QueryEngine, QueryError};

use super::plan::Plan;
use super::validate::ValidSpec;

/// Answers a checked spec with a plan of its own (the same kind of [`Plan`] the
/// compiler builds, so groups, series, totals, orders, havings and limits run
/// unchanged), or declines and lets the raw plan answer.
#[async_trait]
pub trait PlanRewrite: Send + Sync {
    /// The plan of `spec` over `dataset` (or `__all__`) of `env` and the answer's
    /// `source` name (`rollup:<name>`), or `None` when raw rows must answer.
    /// `requested_source` is the spec's `source` field (`"raw"` forces raw rows);
    /// `context` is the session the plan runs in.
    async fn rewrite(
        &self,
        engine: &QueryEngine,
        context: &SessionContext,
        env: &str,
        dataset: &str,
        spec: &ValidSpec,
        requested_source: Option<&str>,
    ) -> Result<Option<(Plan, String)>, QueryError>;
}
