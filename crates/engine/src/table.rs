//! The dataset table: one snapshot of a dataset, as a DataFusion `TableProvider`.
//!
//! ```text
//!                 UnionExec (or its only input; EmptyExec when both are empty)
//!                ┌──────────┴──────────┐
//!   DataSourceExec (Parquet)     DataSourceExec (memory)
//!   segments left after           buffer batches padded to the
//!   segment_pruning, grouped      table schema
//!   by time, sorted by timestamp
//! ```
//!
//! Filter pushdown is `Inexact`: pruning works on whole segments, row groups and
//! pages, and the buffer is not filtered here, so DataFusion keeps every filter
//! above the scan (and pushes it into the Parquet source, which filters rows
//! while decoding).

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::project_schema;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::union::UnionExec;
use object_store::ObjectStore;
use quarry_segment_store::{DatasetSnapshot, SegmentMeta};

use crate::QueryMetrics;
use crate::bloom::BloomCache;
use crate::buffer_scan::buffer_scan;
use crate::segment_files::segment_scan;
use crate::segment_pruning::prune_segments;

/// What every dataset table of one engine shares.
pub struct ScanContext {
    /// The store segments are read from (bloom filters are fetched directly).
    pub(crate) object_store: Arc<dyn ObjectStore>,
    /// Where `object_store` is registered in the runtime, for the Parquet source.
    pub(crate) object_store_url: ObjectStoreUrl,
    pub(crate) bloom_cache: BloomCache,
    pub(crate) metrics: Arc<QueryMetrics>,
}

impl ScanContext {
    /// Where the segment object store is registered in the runtime.
    pub fn object_store_url(&self) -> &ObjectStoreUrl {
        &self.object_store_url
    }

    /// The engine's counters, which every scan adds to.
    pub fn metrics(&self) -> &QueryMetrics {
        &self.metrics
    }
}

impl fmt::Debug for ScanContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScanContext")
            .field("object_store_url", &self.object_store_url)
            .finish()
    }
}

/// One dataset as of one snapshot.
pub struct DatasetTable {
    name: String,
    schema: SchemaRef,
    snapshot: DatasetSnapshot,
    scan: Arc<ScanContext>,
}

impl DatasetTable {
    /// The table of `snapshot`, whose schema is the dataset's.
    pub fn new(name: &str, snapshot: DatasetSnapshot, scan: Arc<ScanContext>) -> Self {
        DatasetTable {
            name: name.to_owned(),
            schema: snapshot.schema.arrow_schema(),
            snapshot,
            scan,
        }
    }

    /// Without filters a `LIMIT` needs only enough rows: the buffer's (no I/O)
    /// first, then segments until their rows cover it.
    fn enough_segments(
        &self,
        segments: Vec<Arc<SegmentMeta>>,
        limit: usize,
    ) -> Vec<Arc<SegmentMeta>> {
        let buffered: usize = self
            .snapshot
            .buffer
            .iter()
            .map(|batch| batch.num_rows())
            .sum();
        let mut covered = buffered as u64;
        segments
            .into_iter()
            .take_while(|segment| {
                let needed = covered < limit as u64;
                covered += segment.rows;
                needed
            })
            .collect()
    }
}

impl fmt::Debug for DatasetTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatasetTable")
            .field("name", &self.name)
            .field("columns", &self.schema.fields().len())
            .field("segments", &self.snapshot.segments.len())
            .field("buffer_batches", &self.snapshot.buffer.len())
            .finish()
    }
}

#[async_trait]
impl TableProvider for DatasetTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Every filter helps prune, none is applied exactly here: see the module docs.
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
        let mut segments = prune_segments(
            state,
            &self.scan,
            &self.schema,
            &self.snapshot.segments,
            filters,
        )
        .await;
        // DataFusion passes a limit only when no filter stays above the scan.
        if let (Some(limit), true) = (limit, filters.is_empty()) {
            segments = self.enough_segments(segments, limit);
        }
        QueryMetrics::add(&self.scan.metrics.segments_scanned, segments.len());

        let target_partitions = state.config().target_partitions();
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::with_capacity(2);
        if !segments.is_empty() {
            inputs.push(segment_scan(
                state,
                &self.scan.object_store_url,
                &self.schema,
                &segments,
                projection,
                limit,
            )?);
        }
        if !self.snapshot.buffer.is_empty() {
            inputs.push(buffer_scan(
                &self.snapshot.buffer,
                &self.schema,
                projection,
                limit,
                target_partitions,
            )?);
        }
        if inputs.is_empty() {
            return Ok(Arc::new(EmptyExec::new(project_schema(
                &self.schema,
                projection,
            )?)));
        }
        UnionExec::try_new(inputs)
    }
}

#[cfg(test)]
mod tests {

    use arrow::array::{Array, AsArray, RecordBatch};
    use arrow::datatypes::{Float64Type, Int64Type, TimestampNanosecondType};
    use quarry_schema::FieldType;

    use crate::test_support::*;

    /// 2023-11-14T22:00:00Z in nanoseconds.
    const START_NS: i64 = 1_699_999_200_000_000_000;
    const HOUR_NS: i64 = 3_600_000_000_000;

    fn rfc3339(nanos: i64) -> String {
        chrono::DateTime::from_timestamp_nanos(nanos).to_rfc3339()
    }

    fn total_rows(batches: &[RecordBatch]) -> usize {
        batches.iter().map(RecordBatch::num_rows).sum()
    }

    #[tokio::test]
    async fn segments_and_buffer_union_with_missing_columns_as_nulls() {
        let source = TestSource::new();
        let first = source
            .write_segment(
                "default/events/1.parquet",
                &batch(vec![
                    (
                        "timestamp",
                        times(vec![START_NS, START_NS + 1, START_NS + 2, START_NS + 3]),
                    ),
                    (
                        "duration_ms",
                        floats(vec![Some(1.0), Some(2.0), None, Some(4.0)]),
                    ),
                    (
                        "service.name",
                        strings(vec![Some("api"), Some("api"), Some("db"), None]),
                    ),
                ]),
                &[],
                2,
            )
            .await;
        let second = source
            .write_segment(
                "default/events/2.parquet",
                &batch(vec![
                    (
                        "timestamp",
                        times(vec![START_NS + 10, START_NS + 11, START_NS + 12]),
                    ),
                    ("status", ints(vec![Some(200), Some(500), Some(200)])),
                    (
                        "duration_ms",
                        floats(vec![Some(10.0), Some(20.0), Some(30.0)]),
                    ),
                ]),
                &[],
                1024,
            )
            .await;
        // Buffer batches have any subset of the columns, in any order.
        let buffered = vec![
            batch(vec![
                ("service.name", strings(vec![Some("api"), Some("web")])),
                ("timestamp", times(vec![START_NS + 20, START_NS + 21])),
            ]),
            batch(vec![
                ("status", ints(vec![Some(404)])),
                ("timestamp", times(vec![START_NS + 22])),
                ("duration_ms", floats(vec![Some(100.0)])),
            ]),
        ];
        let dataset_schema = schema(&[
            ("duration_ms", FieldType::Float),
            ("service.name", FieldType::String),
            ("status", FieldType::Int),
        ]);
        source.put(
            "default",
            "events",
            dataset_schema,
            vec![first, second],
            buffered,
        );
        let engine = engine(&source);

        let counts = query(
            &engine,
            "default",
            r#"SELECT count(*), count(status), count("service.name"), sum(duration_ms), sum(status) FROM events"#,
        )
        .await;
        let row = &counts[0];
        assert_eq!(row.column(0).as_primitive::<Int64Type>().value(0), 10);
        assert_eq!(row.column(1).as_primitive::<Int64Type>().value(0), 4);
        assert_eq!(row.column(2).as_primitive::<Int64Type>().value(0), 5);
        assert_eq!(row.column(3).as_primitive::<Float64Type>().value(0), 167.0);
        assert_eq!(row.column(4).as_primitive::<Int64Type>().value(0), 1304);

        let missing = query(
            &engine,
            "default",
            "SELECT count(*) FROM events WHERE status IS NULL",
        )
        .await;
        assert_eq!(single_int(&missing), 6);
        let by_service = query(
            &engine,
            "default",
            r#"SELECT count(*) FROM events WHERE "service.name" = 'api'"#,
        )
        .await;
        assert_eq!(single_int(&by_service), 3);

        let ordered = query(
            &engine,
            "default",
            "SELECT timestamp FROM events ORDER BY timestamp DESC",
        )
        .await;
        let stamps: Vec<i64> = ordered
            .iter()
            .flat_map(|batch| {
                batch
                    .column(0)
                    .as_primitive::<TimestampNanosecondType>()
                    .values()
                    .to_vec()
            })
            .collect();
        let mut expected = stamps.clone();
        expected.sort_unstable_by(|a, b| b.cmp(a));
        assert_eq!(stamps, expected);
        assert_eq!(stamps.len(), 10);
        assert_eq!(stamps[0], START_NS + 22);
    }

    #[tokio::test]
    async fn a_time_range_prunes_segments_without_reading_them() {
        let source = TestSource::new();
        let mut segments = Vec::new();
        for hour in 0..3 {
            let start = START_NS + hour * HOUR_NS;
            let stamps = (0..10).map(|i| start + i * 1_000_000_000).collect();
            let values = (0..10).map(|i| Some(hour * 100 + i)).collect();
            let segment = source
                .write_segment(
                    &format!("default/t/{hour}.parquet"),
                    &batch(vec![("timestamp", times(stamps)), ("n", ints(values))]),
                    &[],
                    1024,
                )
                .await;
            segments.push(segment);
        }
        source.put(
            "default",
            "t",
            schema(&[("n", FieldType::Int)]),
            segments,
            Vec::new(),
        );
        let engine = engine(&source);

        let sql = format!(
            "SELECT count(*), sum(n) FROM t WHERE timestamp >= '{}'",
            rfc3339(START_NS + 2 * HOUR_NS)
        );
        let result = query(&engine, "default", &sql).await;
        assert_eq!(result[0].column(0).as_primitive::<Int64Type>().value(0), 10);
        assert_eq!(
            result[0].column(1).as_primitive::<Int64Type>().value(0),
            2045
        );
        let metrics = engine.metrics();
        assert_eq!(metrics.segments_considered.get(), 3);
        assert_eq!(metrics.segments_pruned_by_time_or_stats.get(), 2);
        assert_eq!(metrics.segments_scanned.get(), 1);

        // Min/max of any column prune too: n < 100 lives only in the first hour.
        let low = query(&engine, "default", "SELECT count(*) FROM t WHERE n < 100").await;
        assert_eq!(single_int(&low), 10);
        assert_eq!(metrics.segments_pruned_by_time_or_stats.get(), 4);

        // The filter also reaches the Parquet scan itself (row groups, pages, rows).
        let plan = query(&engine, "default", "EXPLAIN SELECT n FROM t WHERE n > 150").await;
        let text = arrow::util::pretty::pretty_format_batches(&plan)
            .unwrap()
            .to_string();
        assert!(text.contains("file_type=parquet, predicate="), "{text}");

        // Segments are grouped by time so each partition stays sorted: ordering by
        // time merges partitions instead of sorting.
        let plan = query(
            &engine,
            "default",
            "EXPLAIN SELECT n FROM t ORDER BY timestamp",
        )
        .await;
        let text = arrow::util::pretty::pretty_format_batches(&plan)
            .unwrap()
            .to_string();
        assert!(text.contains("SortPreservingMergeExec"), "{text}");
        assert!(!text.contains("SortExec:"), "{text}");
    }

    #[tokio::test]
    async fn a_trace_id_lookup_prunes_segments_by_bloom_filter() {
        let source = TestSource::new();
        // 'a001' lies within both segments' min/max, so only the bloom filters can
        // tell the first segment does not have it.
        let first = source
            .write_segment(
                "default/spans/1.parquet",
                &batch(vec![
                    (
                        "timestamp",
                        times(vec![START_NS, START_NS + 1, START_NS + 2, START_NS + 3]),
                    ),
                    (
                        "trace.trace_id",
                        strings(vec![Some("a000"), Some("a002"), Some("z"), Some("z")]),
                    ),
                    ("n", ints(vec![Some(1), Some(2), Some(3), Some(4)])),
                ]),
                &["trace.trace_id"],
                2,
            )
            .await;
        let second = source
            .write_segment(
                "default/spans/2.parquet",
                &batch(vec![
                    (
                        "timestamp",
                        times(vec![START_NS + 4, START_NS + 5, START_NS + 6]),
                    ),
                    (
                        "trace.trace_id",
                        strings(vec![Some("a001"), Some("b"), Some("a001")]),
                    ),
                    ("n", ints(vec![Some(10), Some(20), Some(30)])),
                ]),
                &["trace.trace_id"],
                2,
            )
            .await;
        assert_eq!(first.bloom_filters.len(), 2, "one filter per row group");
        let buffered = vec![batch(vec![
            ("timestamp", times(vec![START_NS + 7])),
            ("trace.trace_id", strings(vec![Some("a001")])),
            ("n", ints(vec![Some(100)])),
        ])];
        let dataset_schema =
            schema(&[("trace.trace_id", FieldType::String), ("n", FieldType::Int)]);
        source.put(
            "default",
            "spans",
            dataset_schema,
            vec![first, second],
            buffered,
        );
        let engine = engine(&source);
        let metrics = engine.metrics();

        let found = query(
            &engine,
            "default",
            r#"SELECT sum(n) FROM spans WHERE "trace.trace_id" = 'a001'"#,
        )
        .await;
        assert_eq!(single_int(&found), 140);
        assert_eq!(metrics.segments_pruned_by_bloom.get(), 1);
        assert_eq!(metrics.segments_pruned_by_time_or_stats.get(), 0);
        assert_eq!(metrics.segments_scanned.get(), 1);
        assert_eq!(metrics.bloom_filter_reads.get(), 4);

        // Literal first works the same, and the filters now come from the cache.
        let reversed = query(
            &engine,
            "default",
            r#"SELECT sum(n) FROM spans WHERE 'a001' = "trace.trace_id""#,
        )
        .await;
        assert_eq!(single_int(&reversed), 140);
        assert_eq!(metrics.segments_pruned_by_bloom.get(), 2);
        assert_eq!(metrics.bloom_filter_reads.get(), 4);

        // An IN list keeps every segment that may hold any of its values.
        let listed = query(
            &engine,
            "default",
            r#"SELECT sum(n) FROM spans WHERE "trace.trace_id" IN ('a001', 'a002')"#,
        )
        .await;
        assert_eq!(single_int(&listed), 142);
        assert_eq!(metrics.segments_pruned_by_bloom.get(), 2);

        let absent = query(
            &engine,
            "default",
            r#"SELECT count(*) FROM spans WHERE "trace.trace_id" = 'a0015'"#,
        )
        .await;
        assert_eq!(single_int(&absent), 0);
        assert_eq!(metrics.segments_pruned_by_bloom.get(), 4);
    }

    #[tokio::test]
    async fn quoted_names_with_dots_dashes_and_capitals_resolve() {
        let source = TestSource::new();
        let rows = batch(vec![
            ("timestamp", times(vec![START_NS, START_NS + 1])),
            ("trace.trace_id", strings(vec![Some("x"), Some("y")])),
            ("meta.sample_rate", ints(vec![Some(5), Some(7)])),
        ]);
        let dataset_schema = schema(&[
            ("trace.trace_id", FieldType::String),
            ("meta.sample_rate", FieldType::Int),
        ]);
        source.put(
            "default",
            "my-app.prod",
            dataset_schema.clone(),
            Vec::new(),
            vec![rows.clone()],
        );
        source.put("default", "MyData", dataset_schema, Vec::new(), vec![rows]);
        let engine = engine(&source);

        let count = query(&engine, "default", r#"SELECT count(*) FROM "my-app.prod""#).await;
        assert_eq!(single_int(&count), 2);
        let rate = query(
            &engine,
            "default",
            r#"SELECT sum("meta.sample_rate") FROM "my-app.prod" WHERE "trace.trace_id" = 'y'"#,
        )
        .await;
        assert_eq!(single_int(&rate), 7);
        let capital = query(&engine, "default", r#"SELECT count(*) FROM "MyData""#).await;
        assert_eq!(single_int(&capital), 2);
        let unquoted = engine.sql("default", "SELECT count(*) FROM MyData").await;
        assert!(
            matches!(unquoted, Err(crate::QueryError::DatasetNotFound(name)) if name == "mydata")
        );

        let tables = query(&engine, "default", "SHOW TABLES").await;
        let names: Vec<String> = tables
            .iter()
            .flat_map(|batch| {
                let column = batch
                    .column_by_name("table_name")
                    .unwrap()
                    .as_string::<i32>();
                (0..column.len())
                    .map(|i| column.value(i).to_owned())
                    .collect::<Vec<_>>()
            })
            .filter(|name| {
                ![
                    "tables",
                    "views",
                    "columns",
                    "df_settings",
                    "schemata",
                    "routines",
                    "parameters",
                ]
                .contains(&name.as_str())
            })
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.contains(&"my-app.prod".to_owned()));
    }

    #[tokio::test]
    async fn empty_datasets_and_unfiltered_limits_read_nothing_extra() {
        let source = TestSource::new();
        let segment = source
            .write_segment(
                "default/l/1.parquet",
                &batch(vec![("timestamp", times(vec![START_NS, START_NS + 1]))]),
                &[],
                1024,
            )
            .await;
        source.put(
            "default",
            "empty",
            schema(&[("a", FieldType::Bool)]),
            Vec::new(),
            Vec::new(),
        );
        let buffered = vec![batch(vec![(
            "timestamp",
            times(vec![START_NS + 5, START_NS + 6, START_NS + 7]),
        )])];
        source.put("default", "l", schema(&[]), vec![segment], buffered);
        let engine = engine(&source);

        let empty = query(&engine, "default", "SELECT count(*) FROM empty").await;
        assert_eq!(single_int(&empty), 0);
        let none = query(&engine, "default", "SELECT * FROM empty").await;
        assert_eq!(total_rows(&none), 0);

        let limited = query(&engine, "default", "SELECT * FROM l LIMIT 2").await;
        assert_eq!(total_rows(&limited), 2);
        assert_eq!(engine.metrics().segments_scanned.get(), 0);
        let all = query(&engine, "default", "SELECT * FROM l LIMIT 5").await;
        assert_eq!(total_rows(&all), 5);
        assert_eq!(engine.metrics().segments_scanned.get(), 1);
        let flags = query(&engine, "default", "SELECT a FROM empty").await;
        assert!(
            flags
                .iter()
                .all(|batch| batch.column(0).null_count() == batch.num_rows())
        );
    }
}
