//! The query engine: one DataFusion runtime (memory pool, object store, metadata
//! cache) shared by all queries, and a session per query scoped to its environment.

use std::num::NonZeroUsize;
use std::sync::Arc;

use datafusion::execution::SessionStateBuilder;
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::session_state::SessionState;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use datafusion::sql::sqlparser::dialect::dialect_from_str;
use quarry_segment_store::{DatasetSnapshot, RollupSet, Store};

use crate::bloom::BloomCache;
use crate::catalog::{CATALOG_NAME, SCHEMA_NAME, environment_catalogs};
use crate::panic_guard::{PanicSafeStream, QueryScope, catch_panics_in};
use crate::query_limits;
use crate::remote_buffers::{LiveDatasets, RemoteBuffers};
use crate::source::SharedSource;
use crate::table::ScanContext;
use crate::{DatasetSource, QueryConfig, QueryError, QueryMetrics};

/// Where the segment object store is registered in the runtime.
const SEGMENTS_URL: &str = "quarry://segments";
/// Memory for cached Parquet footers and page indexes of segments: 256 MiB.
const PARQUET_METADATA_CACHE_BYTES: usize = 256 << 20;
/// Memory consumers named in a "resources exhausted" error.
const REPORTED_TOP_CONSUMERS: usize = 5;

/// Runs SQL over the datasets of a store.
pub struct QueryEngine {
    source: SharedSource,
    /// Where the ingest nodes' unsealed rows come from, on a query node of a cluster.
    remote: Option<Arc<dyn RemoteBuffers>>,
    /// Template of every query's session: functions, config, the shared runtime.
    pub(crate) state: SessionState,
    scan: Arc<ScanContext>,
    metrics: Arc<QueryMetrics>,
    spec_many_groups: usize,
}

impl QueryEngine {
    /// An engine over the segment store.
    pub fn new(store: Arc<Store>, config: QueryConfig) -> Result<Self, QueryError> {
        Self::with_source(store, config)
    }

    /// An engine over any dataset source (tests use hand-built snapshots).
    pub fn with_source(
        source: Arc<dyn DatasetSource>,
        config: QueryConfig,
    ) -> Result<Self, QueryError> {
        let pool = TrackConsumersPool::new(
            FairSpillPool::new(config.memory_limit_bytes),
            NonZeroUsize::new(REPORTED_TOP_CONSUMERS).unwrap_or(NonZeroUsize::MIN),
        );
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(pool))
            .with_metadata_cache_limit(PARQUET_METADATA_CACHE_BYTES)
            .build_arc()?;
        let object_store_url = ObjectStoreUrl::parse(SEGMENTS_URL)?;
        let object_store = source.object_store();
        runtime.register_object_store(object_store_url.as_ref(), Arc::clone(&object_store));

        let mut session_config = SessionConfig::new()
            .with_target_partitions(config.target_partitions.max(1))
            .with_information_schema(true)
            .with_default_catalog_and_schema(CATALOG_NAME, SCHEMA_NAME)
            .with_create_default_catalog_and_schema(false);
        let parquet = &mut session_config.options_mut().execution.parquet;
        parquet.pushdown_filters = true;
        parquet.reorder_filters = true;
        let mut state = SessionStateBuilder::new()
            .with_config(session_config)
            .with_runtime_env(runtime)
            .with_default_features()
            .build();
        quarry_functions::register(&mut state)?;

        let metrics = Arc::new(QueryMetrics::default());
        let scan = Arc::new(ScanContext {
            object_store,
            object_store_url,
            bloom_cache: BloomCache::new(config.bloom_cache_bytes),
            metrics: Arc::clone(&metrics),
        });
        Ok(QueryEngine {
            source: SharedSource(source),
            remote: None,
            state,
            scan,
            metrics,
            spec_many_groups: config.spec_many_groups,
        })
    }

    /// Plans `sql` over the datasets of `env` and starts streaming its result.
    ///
    /// Only queries run: DDL, DML and `SET`-style statements are refused as invalid.
    ///
    /// A statement beyond the limits of [`crate::query_limits`] (a chain of
    /// thousands of operators, thousands of `UNION`s) is refused as
    /// [`QueryError::TooComplex`] before it is planned. A panic while planning or
    /// running it fails this query only: the stream ends with an error.
    pub async fn sql(&self, env: &str, sql: &str) -> Result<SendableRecordBatchStream, QueryError> {
        // One scope for planning and the stream: tasks spawned while planning
        // may fail while the stream is polled.
        let scope = QueryScope::new();
        catch_panics_in(&scope, async {
            let context = self.session(env)?;
            let state = context.state();
            // DataFusion's `sql_with_options`, in steps, with the shape checks between.
            let dialect_name = state.config().options().sql_parser.dialect;
            {
                // Scoped: a boxed dialect is not `Send`, and the future must be.
                let dialect = dialect_from_str(dialect_name).ok_or_else(|| {
                    QueryError::Execution(format!("unsupported SQL dialect {dialect_name}"))
                })?;
                query_limits::check_sql_text(sql, dialect.as_ref())?;
            }
            let statement = state.sql_to_statement(sql, &dialect_name)?;
            query_limits::check_statement(&statement)?;
            let plan = state.statement_to_plan(statement).await?;
            let read_only = SQLOptions::new()
                .with_allow_ddl(false)
                .with_allow_dml(false)
                .with_allow_statements(false);
            read_only.verify_plan(&plan)?;
            let frame = context.execute_logical_plan(plan).await?;
            let stream = frame.execute_stream().await?;
            Ok(PanicSafeStream::boxed(stream, Arc::clone(&scope)))
        })
        .await
    }

    /// A DataFusion session that sees exactly the datasets of `env`, with the
    /// engine's functions and shared runtime. Every query path (SQL, query specs,
    /// traces, BubbleUp) plans through one of these.
    pub fn session(&self, env: &str) -> Result<SessionContext, QueryError> {
        let mut state = self.state.clone();
        state.register_catalog_list(environment_catalogs(
            env,
            self.live_datasets(),
            Arc::clone(&self.scan),
        )?);
        Ok(SessionContext::new_with_state(state))
    }

    /// [`crate::QueryConfig::spec_many_groups`].
    pub fn spec_many_groups(&self) -> usize {
        self.spec_many_groups
    }

    /// Counters of the engine's work.
    pub fn metrics(&self) -> &QueryMetrics {
        &self.metrics
    }

    /// What dataset tables built outside the catalog (rollups) scan with.
    pub fn scan_context(&self) -> Arc<ScanContext> {
        Arc::clone(&self.scan)
    }

    /// The datasets this engine reads.
    pub fn source(&self) -> &Arc<dyn DatasetSource> {
        &self.source.0
    }

    /// Adds the ingest nodes' unsealed rows (from `remote`) to every dataset a
    /// query reads: what a query node of a cluster does.
    pub fn with_remote_buffers(mut self, remote: Arc<dyn RemoteBuffers>) -> Self {
        self.remote = Some(remote);
        self
    }

    /// A consistent snapshot of a dataset and its rollups, with the ingest
    /// nodes' unsealed rows in a cluster (`None`: no such dataset).
    pub async fn rollup_snapshot(
        &self,
        env: &str,
        dataset: &str,
    ) -> Result<Option<(DatasetSnapshot, RollupSet)>, QueryError> {
        self.live_datasets().snapshot(env, dataset).await
    }

    /// The names of the datasets of `env`, those only in ingest nodes' buffers
    /// included.
    pub async fn dataset_names(&self, env: &str) -> Result<Vec<String>, QueryError> {
        self.live_datasets().names(env).await
    }

    fn live_datasets(&self) -> LiveDatasets {
        LiveDatasets {
            source: self.source.clone(),
            remote: self.remote.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use quarry_schema::FieldType;

    use crate::QueryError;
    use crate::test_support::*;

    fn engine_with_one_dataset() -> crate::QueryEngine {
        let source = TestSource::new();
        let rows = batch(vec![
            ("timestamp", times(vec![1, 2])),
            ("n", ints(vec![Some(1), Some(2)])),
        ]);
        source.put(
            "tenant-a",
            "events",
            schema(&[("n", FieldType::Int)]),
            Vec::new(),
            vec![rows],
        );
        engine(&source)
    }

    #[tokio::test]
    async fn errors_map_to_the_right_kind() {
        let engine = engine_with_one_dataset();
        let bad_sql = engine.sql("tenant-a", "SELEC n FROM events").await;
        assert!(matches!(bad_sql, Err(QueryError::InvalidQuery(_))));
        let unknown_table = engine.sql("tenant-a", "SELECT * FROM nope").await;
        assert!(matches!(unknown_table, Err(QueryError::DatasetNotFound(name)) if name == "nope"));
        let unknown_column = engine.sql("tenant-a", "SELECT missing FROM events").await;
        assert!(matches!(unknown_column, Err(QueryError::InvalidQuery(_))));
        let ddl = engine.sql("tenant-a", "CREATE TABLE x AS SELECT 1").await;
        assert!(matches!(ddl, Err(QueryError::InvalidQuery(_))));
        let dml = engine
            .sql("tenant-a", "INSERT INTO events VALUES (1, 2)")
            .await;
        assert!(matches!(dml, Err(QueryError::InvalidQuery(_))));
    }

    /// The message of a statement refused as too complex.
    async fn too_complex(engine: &crate::QueryEngine, sql: &str) -> String {
        match engine.sql("tenant-a", sql).await {
            Err(QueryError::TooComplex(message)) => message,
            Err(other) => panic!("expected TooComplex, got {other:?}"),
            Ok(_) => panic!("expected TooComplex, the statement ran"),
        }
    }

    #[tokio::test]
    async fn statements_beyond_the_shape_limits_are_refused_naming_the_limit() {
        use crate::query_limits::{MAX_EXPRESSION_DEPTH, MAX_OPERATORS, MAX_SET_OPERATIONS};
        let engine = engine_with_one_dataset();
        let deep = format!("SELECT {}", vec!["1"; MAX_EXPRESSION_DEPTH + 1].join("+"));
        let message = too_complex(&engine, &deep).await;
        assert!(
            message.contains(&format!("the limit is {MAX_EXPRESSION_DEPTH} levels")),
            "{message}"
        );
        let terms: Vec<String> = (0..MAX_OPERATORS / 2 + 1)
            .map(|i| format!("n = {i}"))
            .collect();
        let wide_or = format!("SELECT n FROM events WHERE {}", terms.join(" OR "));
        let message = too_complex(&engine, &wide_or).await;
        assert!(
            message.contains(&format!("the limit is {MAX_OPERATORS} operators")),
            "{message}"
        );
        let selects: Vec<String> = (0..MAX_SET_OPERATIONS + 2)
            .map(|i| format!("SELECT {i}"))
            .collect();
        let message = too_complex(&engine, &selects.join(" UNION ALL ")).await;
        assert!(
            message.contains(&format!("the limit is {MAX_SET_OPERATIONS} set operations")),
            "{message}"
        );
    }

    #[tokio::test]
    async fn statements_within_the_shape_limits_still_run() {
        let engine = engine_with_one_dataset();
        let sum = format!("SELECT {} AS s", vec!["1"; 100].join("+"));
        assert_eq!(single_int(&query(&engine, "tenant-a", &sum).await), 100);
        let terms: Vec<String> = (0..100).map(|i| format!("n = {i}")).collect();
        let or = format!("SELECT count(*) FROM events WHERE {}", terms.join(" OR "));
        assert_eq!(single_int(&query(&engine, "tenant-a", &or).await), 2);
        let selects: Vec<String> = (0..50).map(|i| format!("SELECT {i} AS x")).collect();
        let union = format!(
            "SELECT count(*) FROM ({}) AS u",
            selects.join(" UNION ALL ")
        );
        assert_eq!(single_int(&query(&engine, "tenant-a", &union).await), 50);
    }

    #[test]
    fn the_engine_is_shareable_and_its_queries_are_send() {
        fn shareable<T: Send + Sync>(_: &T) {}
        fn sendable<T: Send>(_: T) {}
        let engine = engine_with_one_dataset();
        shareable(&engine);
        sendable(engine.sql("tenant-a", "SELECT 1"));
    }

    #[tokio::test]
    async fn a_query_over_its_memory_share_is_resources_exhausted() {
        let source = TestSource::new();
        let values: Vec<Option<String>> = (0..20_000).map(|i| Some(format!("value-{i}"))).collect();
        let rows = batch(vec![
            ("timestamp", times((0..20_000).collect())),
            ("s", strings(values.iter().map(|v| v.as_deref()).collect())),
        ]);
        source.put(
            "default",
            "big",
            schema(&[("s", FieldType::String)]),
            Vec::new(),
            vec![rows],
        );
        let config = crate::QueryConfig {
            target_partitions: 1,
            memory_limit_bytes: 4096,
            ..crate::QueryConfig::default()
        };
        let engine = crate::QueryEngine::with_source(source, config).unwrap();
        let outcome = match engine.sql("default", "SELECT array_agg(s) FROM big").await {
            Ok(stream) => datafusion::physical_plan::common::collect(stream)
                .await
                .map_err(QueryError::from),
            Err(error) => Err(error),
        };
        assert!(
            matches!(outcome, Err(QueryError::ResourcesExhausted(_))),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn environments_see_only_their_own_datasets() {
        let engine = engine_with_one_dataset();
        let own = query(&engine, "tenant-a", "SELECT sum(n) FROM events").await;
        assert_eq!(single_int(&own), 3);
        let other = engine.sql("tenant-b", "SELECT * FROM events").await;
        assert!(matches!(other, Err(QueryError::DatasetNotFound(_))));
        let qualified = engine
            .sql("tenant-b", "SELECT * FROM quarry.public.events")
            .await;
        assert!(matches!(qualified, Err(QueryError::DatasetNotFound(_))));
    }
}
