//! Choosing the segments a scan reads, in metadata only.
//!
//! ```text
//!  snapshot segments ──► PruningPredicate over manifest stats ──► bloom filters ──► scan
//!                        (time range, min/max, null counts:        (only for `col = lit`
//!                         no file I/O)                              / `IN`: a few KiB each)
//! ```

use std::collections::HashSet;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::DFSchema;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::utils::{Guarantee, conjunction};
use datafusion::physical_optimizer::pruning::{PruningPredicate, PruningPredicateBuilder};
use quarry_segment_store::SegmentMeta;

use crate::QueryMetrics;
use crate::bloom::{BloomStatistics, load_blooms};
use crate::segment_stats::SegmentStatistics;
use crate::table::ScanContext;

/// The segments that may hold rows matching `filters`; counts the metrics.
pub async fn prune_segments(
    state: &dyn Session,
    scan: &ScanContext,
    schema: &SchemaRef,
    segments: &[Arc<SegmentMeta>],
    filters: &[Expr],
) -> Vec<Arc<SegmentMeta>> {
    let metrics = &scan.metrics;
    QueryMetrics::add(&metrics.segments_considered, segments.len());
    let Some(predicate) = pruning_predicate(state, schema, filters) else {
        return segments.to_vec();
    };

    let candidates = keep(
        segments,
        predicate.prune(&SegmentStatistics::new(Arc::clone(schema), segments)),
    );
    QueryMetrics::add(
        &metrics.segments_pruned_by_time_or_stats,
        segments.len() - candidates.len(),
    );

    let bloom_columns = bloom_columns(&predicate, &candidates);
    if bloom_columns.is_empty() {
        return candidates;
    }
    let blooms = load_blooms(
        &scan.object_store,
        &scan.bloom_cache,
        metrics,
        &candidates,
        &bloom_columns,
    )
    .await;
    let survivors = keep(&candidates, predicate.prune(&BloomStatistics::new(&blooms)));
    QueryMetrics::add(
        &metrics.segments_pruned_by_bloom,
        candidates.len() - survivors.len(),
    );
    survivors
}

/// The pruning predicate of the conjunction of `filters`, if it can prune anything.
///
/// A filter that does not convert to a physical expression is left out: pruning
/// with fewer conjuncts is weaker, never wrong (DataFusion still applies it).
fn pruning_predicate(
    state: &dyn Session,
    schema: &SchemaRef,
    filters: &[Expr],
) -> Option<Arc<PruningPredicate>> {
    if filters.is_empty() {
        return None;
    }
    let df_schema = DFSchema::try_from(Arc::clone(schema)).ok()?;
    let physical: Vec<_> = filters
        .iter()
        .filter_map(
            |filter| match state.create_physical_expr(filter.clone(), &df_schema) {
                Ok(expr) => Some(expr),
                Err(error) => {
                    tracing::debug!(%filter, %error, "filter not usable for segment pruning");
                    None
                }
            },
        )
        .collect();
    if physical.is_empty() {
        return None;
    }
    PruningPredicateBuilder::new()
        .with_file_schema(Arc::clone(schema))
        .with_max_in_list_size(state.config_options().execution.parquet.max_in_list_size)
        .build(conjunction(physical))
}

/// The segments whose flag is set; all of them when pruning failed.
fn keep(
    segments: &[Arc<SegmentMeta>],
    flags: datafusion::error::Result<Vec<bool>>,
) -> Vec<Arc<SegmentMeta>> {
    match flags {
        Ok(flags) => segments
            .iter()
            .zip(flags)
            .filter(|(_, keep)| *keep)
            .map(|(segment, _)| Arc::clone(segment))
            .collect(),
        Err(error) => {
            tracing::debug!(%error, "segment pruning failed; scanning every segment");
            segments.to_vec()
        }
    }
}

/// Columns the predicate requires to equal one of some literals (`col = 'x'`,
/// `col IN (...)`) that some candidate segment has bloom filters for.
fn bloom_columns(predicate: &PruningPredicate, candidates: &[Arc<SegmentMeta>]) -> HashSet<String> {
    let looked_up: HashSet<&str> = predicate
        .literal_guarantees()
        .iter()
        .filter(|guarantee| guarantee.guarantee == Guarantee::In)
        .map(|guarantee| guarantee.column.name.as_str())
        .collect();
    candidates
        .iter()
        .flat_map(|segment| &segment.bloom_filters)
        .filter(|location| looked_up.contains(location.column.as_str()))
        .map(|location| location.column.clone())
        .collect()
}
