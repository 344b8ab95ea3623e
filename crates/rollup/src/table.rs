//! A rollup's segments as a DataFusion table: pruned by the manifest statistics and
//! scanned with the same Parquet source as raw segments.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::project_schema;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use quarry_segment_store::SegmentMeta;

use quarry_engine::QueryMetrics;
use quarry_engine::scan::{ScanContext, prune_segments, segment_scan};

/// The rollup rows stored in `files` (rollup segments), typed by `schema`.
pub(crate) struct RollupTable {
    schema: SchemaRef,
    files: Vec<Arc<SegmentMeta>>,
    scan: Arc<ScanContext>,
}

impl RollupTable {
    /// A table over `files`; a column a file lacks reads as null.
    pub(crate) fn new(
        schema: SchemaRef,
        files: Vec<Arc<SegmentMeta>>,
        scan: Arc<ScanContext>,
    ) -> Self {
        RollupTable {
            schema,
            files,
            scan,
        }
    }
}

impl fmt::Debug for RollupTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RollupTable")
            .field("files", &self.files.len())
            .finish()
    }
}

#[async_trait]
impl TableProvider for RollupTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Pruning is per file and row group: DataFusion keeps every filter above.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let files = prune_segments(state, &self.scan, &self.schema, &self.files, filters).await;
        QueryMetrics::add(&self.scan.metrics().segments_scanned, files.len());
        if files.is_empty() {
            return Ok(Arc::new(EmptyExec::new(project_schema(
                &self.schema,
                projection,
            )?)));
        }
        segment_scan(
            state,
            self.scan.object_store_url(),
            &self.schema,
            &files,
            projection,
            limit,
        )
    }
}
