//! JSON decode + flatten of Events API batch bodies into Arrow batches, the CPU
//! core of the ingest path. Bodies come from the benchmark generator
//! (`quarry-datagen`), so field counts, types and string sizes are realistic.
//!
//! `cargo bench -p quarry-ingest --bench decode`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use quarry_datagen::{BatchBodies, BatchBody, Generator, GeneratorConfig};
use quarry_ingest::{DecodeContext, Limits, decode_batch};

/// Generator end time: any fixed instant keeps the bodies identical run to run.
const END_TIME_NS: i64 = 1_700_000_000_000_000_000;

/// The first full body of `batch_size` events the generator produces.
fn sample_body(batch_size: usize) -> BatchBody {
    let events = (batch_size * 20) as u64;
    let generator = match Generator::new(GeneratorConfig::new(7, events, END_TIME_NS)) {
        Ok(generator) => generator,
        Err(error) => panic!("generator config: {error}"),
    };
    match BatchBodies::new(generator, batch_size).find(|body| body.events == batch_size) {
        Some(body) => body,
        None => panic!("the generator made no full batch of {batch_size}"),
    }
}

fn decode(c: &mut Criterion) {
    let limits = Limits::default();
    let mut group = c.benchmark_group("decode_batch_json");
    for batch_size in [100, 1000] {
        let body = sample_body(batch_size);
        group.throughput(Throughput::Elements(body.events as u64));
        group.bench_with_input(BenchmarkId::from_parameter(batch_size), &body, |b, body| {
            b.iter(|| {
                let ctx = DecodeContext {
                    schema: None,
                    limits: &limits,
                    now_ns: END_TIME_NS,
                };
                match decode_batch(&body.body, Some("application/json"), &ctx) {
                    Ok(decoded) => decoded,
                    Err(error) => panic!("decode failed: {error}"),
                }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
