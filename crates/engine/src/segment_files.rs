//! The sealed rows of a dataset: its segments as one DataFusion Parquet scan.
//!
//! Everything the scan needs is known from the manifest: file sizes (no HEAD
//! requests), row counts and time ranges (so files can be grouped into partitions
//! that each stay sorted by `timestamp`). The table schema is the dataset's, never
//! inferred: a column a file lacks reads as nulls (DataFusion's expression
//! adapter), and filters pushed into the scan by DataFusion's `FilterPushdown`
//! prune row groups (statistics, bloom filters) and pages (page index), then
//! filter rows while decoding.

use std::sync::Arc;

use arrow::compute::SortOptions;
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use chrono::DateTime;
use datafusion::catalog::Session;
use datafusion::common::stats::Precision;
use datafusion::common::{ColumnStatistics, ScalarValue, Statistics, internal_err};
use datafusion::config::TableParquetOptions;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{
    FileGroup, FileScanConfig, FileScanConfigBuilder, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::Result;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
use datafusion::physical_plan::ExecutionPlan;
use object_store::ObjectMeta;
use object_store::path::Path;
use quarry_schema::TIMESTAMP;
use quarry_segment_store::SegmentMeta;

/// The object store path of a segment. Manifest paths are `Path`'s canonical
/// (already encoded) form; a raw one that does not parse is encoded here.
pub(crate) fn object_path(path: &str) -> Path {
    Path::parse(path).unwrap_or_else(|_| Path::from(path))
}

/// Scans `segments` (sorted by start time here) with DataFusion's Parquet source.
pub fn segment_scan(
    state: &dyn Session,
    object_store_url: &ObjectStoreUrl,
    schema: &SchemaRef,
    segments: &[Arc<SegmentMeta>],
    projection: Option<&Vec<usize>>,
    limit: Option<usize>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let time_zone = match schema.field_with_name(TIMESTAMP)?.data_type() {
        DataType::Timestamp(TimeUnit::Nanosecond, time_zone) => time_zone.clone(),
        other => return internal_err!("{TIMESTAMP} has type {other}, not nanosecond timestamps"),
    };
    let time_value = |nanos: i64| ScalarValue::TimestampNanosecond(Some(nanos), time_zone.clone());
    let mut ordered: Vec<&Arc<SegmentMeta>> = segments.iter().collect();
    ordered.sort_by_key(|segment| (segment.min_time_ns, segment.max_time_ns));
    let files = ordered
        .iter()
        .map(|segment| segment_file(segment, schema, &time_value))
        .collect::<Result<Vec<_>>>()?;

    let ordering = time_ordering(schema)?;
    let target_partitions = state.config().target_partitions().max(1);
    let file_groups = group_files(schema, files, ordering.as_ref(), target_partitions);

    let store = state.runtime_env().object_store(object_store_url)?;
    let metadata_cache = state.runtime_env().cache_manager.get_file_metadata_cache();
    let options = TableParquetOptions {
        global: state.config_options().execution.parquet.clone(),
        ..TableParquetOptions::default()
    };
    let source = ParquetSource::new(Arc::clone(schema))
        .with_table_parquet_options(options)
        // Segments are written with exactly what these read: page statistics and
        // index, bloom filters. Filter pushdown decodes only the matching rows.
        .with_pushdown_filters(true)
        .with_reorder_filters(true)
        .with_enable_page_index(true)
        .with_bloom_filter_on_read(true)
        // Footers come from the runtime's metadata cache after the first read.
        .with_parquet_file_reader_factory(Arc::new(CachedParquetFileReaderFactory::new(
            store,
            metadata_cache,
        )));

    let statistics = table_statistics(schema, segments, &time_value)?;
    let config: FileScanConfig =
        FileScanConfigBuilder::new(object_store_url.clone(), Arc::new(source))
            .with_file_groups(file_groups)
            .with_statistics(statistics)
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .with_output_ordering(ordering.into_iter().collect())
            .build();
    Ok(DataSourceExec::from_data_source(config))
}

/// `timestamp ASC`: every segment is written sorted by it.
fn time_ordering(schema: &SchemaRef) -> Result<Option<LexOrdering>> {
    let index = schema.index_of(TIMESTAMP)?;
    let expr = PhysicalSortExpr::new(
        Arc::new(Column::new(TIMESTAMP, index)),
        SortOptions {
            descending: false,
            nulls_first: false,
        },
    );
    Ok(LexOrdering::new([expr]))
}

/// Spreads files over at most `target_partitions` groups, keeping the files of each
/// group non-overlapping in time (so each partition stays sorted) when that fits;
/// otherwise spreads them evenly and DataFusion drops the ordering claim.
fn group_files(
    schema: &SchemaRef,
    files: Vec<PartitionedFile>,
    ordering: Option<&LexOrdering>,
    target_partitions: usize,
) -> Vec<FileGroup> {
    let all = FileGroup::new(files);
    if let Some(ordering) = ordering {
        let split = FileScanConfig::split_groups_by_statistics_with_target_partitions(
            schema,
            std::slice::from_ref(&all),
            ordering,
            target_partitions,
        );
        match split {
            Ok(groups) if groups.len() <= target_partitions => return groups,
            Ok(_) => {}
            Err(error) => tracing::debug!(%error, "could not group segments by time"),
        }
    }
    all.split_files(target_partitions)
}

/// A segment as a file to scan, with its known size and statistics.
fn segment_file(
    segment: &SegmentMeta,
    schema: &SchemaRef,
    time_value: &impl Fn(i64) -> ScalarValue,
) -> Result<PartitionedFile> {
    let meta = ObjectMeta {
        location: object_path(&segment.path),
        // Segments are immutable: their creation time identifies the version for
        // the metadata cache.
        last_modified: DateTime::from_timestamp_nanos(segment.created_at_ns),
        size: segment.size_bytes,
        e_tag: None,
        version: None,
    };
    let statistics = file_statistics(
        schema,
        segment.rows,
        segment.size_bytes,
        time_value(segment.min_time_ns),
        time_value(segment.max_time_ns),
    )?;
    Ok(PartitionedFile::new_from_meta(meta).with_statistics(Arc::new(statistics)))
}

/// Statistics of all the segments together.
fn table_statistics(
    schema: &SchemaRef,
    segments: &[Arc<SegmentMeta>],
    time_value: &impl Fn(i64) -> ScalarValue,
) -> Result<Statistics> {
    let rows = segments.iter().map(|segment| segment.rows).sum();
    let bytes = segments.iter().map(|segment| segment.size_bytes).sum();
    let min = segments
        .iter()
        .map(|segment| segment.min_time_ns)
        .min()
        .unwrap_or_default();
    let max = segments
        .iter()
        .map(|segment| segment.max_time_ns)
        .max()
        .unwrap_or_default();
    file_statistics(schema, rows, bytes, time_value(min), time_value(max))
}

/// Exact row count and `timestamp` range; other columns unknown (manifest string
/// bounds may be truncated, so they are not exact statistics).
fn file_statistics(
    schema: &SchemaRef,
    rows: u64,
    bytes: u64,
    min_time: ScalarValue,
    max_time: ScalarValue,
) -> Result<Statistics> {
    let time_index = schema.index_of(TIMESTAMP)?;
    let mut statistics = Statistics::new_unknown(schema)
        .with_num_rows(Precision::Exact(
            usize::try_from(rows).unwrap_or(usize::MAX),
        ))
        .with_total_byte_size(Precision::Inexact(
            usize::try_from(bytes).unwrap_or(usize::MAX),
        ));
    statistics.column_statistics[time_index] = ColumnStatistics::new_unknown()
        .with_null_count(Precision::Exact(0))
        .with_min_value(Precision::Exact(min_time))
        .with_max_value(Precision::Exact(max_time));
    Ok(statistics)
}
