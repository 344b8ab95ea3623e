//! The storage write path: WAL appends with group commit (fsync before the
//! acknowledgement, as in production) and sealing a buffer into Parquet segments
//! with the manifest commit. Rows are the benchmark generator's events, decoded by
//! the Events API decoder, so batches have realistic widths and types.
//!
//! `cargo bench -p quarry-segment-store --bench write_path`

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use object_store::local::LocalFileSystem;
use quarry_datagen::{BatchBodies, Generator, GeneratorConfig};
use quarry_ingest::{DecodeContext, Limits, decode_batch};
use quarry_segment_store::{Store, StoreConfig};
use tempfile::TempDir;
use tokio::runtime::Runtime;

const END_TIME_NS: i64 = 1_700_000_000_000_000_000;
/// Events per appended batch: a typical SDK batch.
const BATCH_ROWS: usize = 100;
/// The dataset every benchmark writes.
const DATASET: &str = "bench";

/// `count` batches of `BATCH_ROWS` generated events (one service's dataset).
fn batches(count: usize) -> Vec<RecordBatch> {
    let events = (count * BATCH_ROWS * 12) as u64;
    let generator = Generator::new(GeneratorConfig::new(11, events, END_TIME_NS))
        .unwrap_or_else(|error| panic!("generator config: {error}"));
    let limits = Limits::default();
    let ctx = DecodeContext {
        schema: None,
        limits: &limits,
        now_ns: END_TIME_NS,
    };
    BatchBodies::new(generator, BATCH_ROWS)
        .filter(|body| body.dataset == "checkout" && body.events == BATCH_ROWS)
        .take(count)
        .map(|body| {
            decode_batch(&body.body, Some("application/json"), &ctx)
                .unwrap_or_else(|error| panic!("decode: {error}"))
                .batch
                .unwrap_or_else(|| panic!("no rows decoded"))
        })
        .collect()
}

/// A store in a fresh temporary directory that never seals on its own.
async fn open_store(dir: &TempDir) -> Arc<Store> {
    let mut config = StoreConfig::new(dir.path().join("wal"));
    config.seal_max_rows = usize::MAX;
    config.seal_max_bytes = usize::MAX;
    config.seal_max_age = Duration::from_secs(24 * 3600);
    let objects = dir.path().join("objects");
    std::fs::create_dir_all(&objects).unwrap_or_else(|error| panic!("mkdir: {error}"));
    let object_store = LocalFileSystem::new_with_prefix(&objects)
        .unwrap_or_else(|error| panic!("object store: {error}"));
    Store::open(config, Arc::new(object_store))
        .await
        .unwrap_or_else(|error| panic!("open store: {error}"))
}

/// Durable appends from `writers` concurrent tasks: group commit shares each
/// fsync among the appends waiting for it, so throughput grows with concurrency.
fn wal_append(c: &mut Criterion) {
    let runtime = Runtime::new().unwrap_or_else(|error| panic!("runtime: {error}"));
    let rows = batches(64);
    let mut group = c.benchmark_group("wal_append_fsync");
    group.sample_size(10);
    for writers in [1usize, 8, 32] {
        let appends_per_writer = 64 / writers.min(8);
        group.throughput(Throughput::Elements(
            (writers * appends_per_writer * BATCH_ROWS) as u64,
        ));
        group.bench_function(BenchmarkId::from_parameter(writers), |b| {
            b.iter_custom(|iterations| {
                runtime.block_on(async {
                    let dir = TempDir::new().unwrap_or_else(|error| panic!("tempdir: {error}"));
                    let store = open_store(&dir).await;
                    let start = Instant::now();
                    for _ in 0..iterations {
                        let tasks: Vec<_> = (0..writers)
                            .map(|writer| {
                                let store = Arc::clone(&store);
                                let rows = rows.clone();
                                tokio::spawn(async move {
                                    for i in 0..appends_per_writer {
                                        let batch = rows[(writer + i) % rows.len()].clone();
                                        store
                                            .append("default", DATASET, batch)
                                            .await
                                            .unwrap_or_else(|error| panic!("append: {error}"));
                                    }
                                })
                            })
                            .collect();
                        for task in tasks {
                            task.await.unwrap_or_else(|error| panic!("task: {error}"));
                        }
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
}

/// Sealing a buffer of 100,000 rows: sort by timestamp, encode Parquet (zstd, page
/// index, bloom filter), upload to the local object store, commit the manifest.
fn seal(c: &mut Criterion) {
    let runtime = Runtime::new().unwrap_or_else(|error| panic!("runtime: {error}"));
    let rows = batches(1000);
    let mut group = c.benchmark_group("seal_buffer");
    group.sample_size(10);
    group.throughput(Throughput::Elements((rows.len() * BATCH_ROWS) as u64));
    group.bench_function("100k_rows", |b| {
        b.iter_custom(|iterations| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    let dir = TempDir::new().unwrap_or_else(|error| panic!("tempdir: {error}"));
                    let store = open_store(&dir).await;
                    for batch in &rows {
                        store
                            .append("default", DATASET, batch.clone())
                            .await
                            .unwrap_or_else(|error| panic!("append: {error}"));
                    }
                    let start = Instant::now();
                    store
                        .seal_all()
                        .await
                        .unwrap_or_else(|error| panic!("seal: {error}"));
                    total += start.elapsed();
                }
                total
            })
        })
    });
    group.finish();
}

criterion_group!(benches, wal_append, seal);
criterion_main!(benches);
