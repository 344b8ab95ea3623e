//! Segment pruning: how long a query takes to choose its segments from the
//! manifest (time range and column statistics, then `trace.trace_id` bloom
//! filters) and run, over a dataset of 200 sealed segments. A trace-id miss
//! should open no Parquet file at all; a hit opens the one segment holding it.
//!
//! `cargo bench -p quarry-engine --bench pruning`

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use criterion::{Criterion, criterion_group, criterion_main};
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use quarry_datagen::{BatchBodies, Generator, GeneratorConfig};
use quarry_engine::{QueryConfig, QueryEngine};
use quarry_ingest::{DecodeContext, Limits, decode_batch};
use quarry_segment_store::{Store, StoreConfig};
use tempfile::TempDir;
use tokio::runtime::Runtime;

const END_TIME_NS: i64 = 1_700_000_000_000_000_000;
const DATASET: &str = "checkout";
const SEGMENTS: usize = 200;
const ROWS_PER_SEGMENT: usize = 500;
/// The generator never makes this id.
const MISSING_TRACE_ID: &str = "00000000000000000000000000000000";

/// A store whose `checkout` dataset has `SEGMENTS` sealed segments with bloom
/// filters on `trace.trace_id`; returns a trace id present in the data.
async fn build_store(dir: &TempDir) -> (Arc<Store>, String) {
    let mut config = StoreConfig::new(dir.path().join("wal"));
    config.seal_max_rows = usize::MAX;
    config.seal_max_bytes = usize::MAX;
    config.seal_max_age = Duration::from_secs(24 * 3600);
    // One partition for all rows, so each seal makes exactly one segment.
    config.partition_width = Duration::from_secs(365 * 24 * 3600);
    config.bloom_filter_columns = vec!["trace.trace_id".to_string()];
    let objects = dir.path().join("objects");
    std::fs::create_dir_all(&objects).unwrap_or_else(|error| panic!("mkdir: {error}"));
    let object_store = LocalFileSystem::new_with_prefix(&objects)
        .unwrap_or_else(|error| panic!("object store: {error}"));
    let store = Store::open(config, Arc::new(object_store))
        .await
        .unwrap_or_else(|error| panic!("open store: {error}"));

    let events = (SEGMENTS * ROWS_PER_SEGMENT * 12) as u64;
    let generator = Generator::new(GeneratorConfig::new(5, events, END_TIME_NS))
        .unwrap_or_else(|error| panic!("generator config: {error}"));
    let limits = Limits::default();
    let bodies = BatchBodies::new(generator, ROWS_PER_SEGMENT)
        .filter(|body| body.dataset == DATASET && body.events == ROWS_PER_SEGMENT)
        .take(SEGMENTS);
    for body in bodies {
        let schema = store.schema("default", DATASET);
        let ctx = DecodeContext {
            schema: schema.as_ref(),
            limits: &limits,
            now_ns: END_TIME_NS,
        };
        let batch = decode_batch(&body.body, Some("application/json"), &ctx)
            .unwrap_or_else(|error| panic!("decode: {error}"))
            .batch
            .unwrap_or_else(|| panic!("no rows decoded"));
        store
            .append("default", DATASET, batch)
            .await
            .unwrap_or_else(|error| panic!("append: {error}"));
        store
            .seal_all()
            .await
            .unwrap_or_else(|error| panic!("seal: {error}"));
    }
    let engine = engine(&store);
    let rows = collect(
        &engine,
        &format!(
            r#"SELECT "trace.trace_id" FROM "{DATASET}" ORDER BY "timestamp" LIMIT 1 OFFSET 12345"#
        ),
    )
    .await;
    let trace_id = rows
        .first()
        .and_then(|batch| {
            batch
                .column(0)
                .as_string_opt::<i32>()
                .map(|c| c.value(0).to_string())
        })
        .unwrap_or_else(|| panic!("no trace id found"));
    (store, trace_id)
}

fn engine(store: &Arc<Store>) -> QueryEngine {
    QueryEngine::new(Arc::clone(store), QueryConfig::default())
        .unwrap_or_else(|error| panic!("engine: {error}"))
}

async fn collect(engine: &QueryEngine, sql: &str) -> Vec<RecordBatch> {
    let stream = engine
        .sql("default", sql)
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"));
    stream
        .try_collect()
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
}

fn count(batches: &[RecordBatch]) -> i64 {
    batches
        .first()
        .and_then(|batch| {
            batch
                .column(0)
                .as_primitive_opt::<arrow::datatypes::Int64Type>()
        })
        .filter(|column| !column.is_empty())
        .map(|column| column.value(0))
        .unwrap_or_else(|| panic!("no count"))
}

fn pruning(c: &mut Criterion) {
    let runtime = Runtime::new().unwrap_or_else(|error| panic!("runtime: {error}"));
    let dir = TempDir::new().unwrap_or_else(|error| panic!("tempdir: {error}"));
    let (store, hit) = runtime.block_on(build_store(&dir));
    let engine = engine(&store);
    let lookup = |trace_id: &str| {
        format!(r#"SELECT count(*) FROM "{DATASET}" WHERE "trace.trace_id" = '{trace_id}'"#)
    };
    // The answers are checked once, so the timings are of correct queries.
    let hit_rows = count(&runtime.block_on(collect(&engine, &lookup(&hit))));
    assert!(hit_rows > 0, "the hit trace id has no rows");
    let miss_rows = count(&runtime.block_on(collect(&engine, &lookup(MISSING_TRACE_ID))));
    assert_eq!(miss_rows, 0, "the missing trace id has rows");

    let mut group = c.benchmark_group("segment_pruning_200_segments");
    for (name, sql) in [
        ("trace_id_miss", lookup(MISSING_TRACE_ID)),
        ("trace_id_hit", lookup(&hit)),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| runtime.block_on(collect(&engine, &sql)))
        });
    }
    group.finish();
}

criterion_group!(benches, pruning);
criterion_main!(benches);
