//! Quarry's functions (`quarry-functions`) through SQL, over a dataset split
//! between a Parquet segment and the in-memory buffer, against exact computations
//! in Rust. They live here because only the engine has datasets to run them over.
//! Example-based semantics (NULLs, empty input, weights, argument errors) are the
//! sqllogictest files in `crates/functions/tests/slt/`.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int32Type, Int64Type, TimestampNanosecondType};
use quarry_schema::FieldType;

use quarry_functions::HeatmapScheme;

use crate::test_support::*;
use crate::{QueryConfig, QueryEngine};

/// Rows of the test dataset.
const ROWS: usize = 3_000;
/// Services: the breakdown of the grouped tests.
const SERVICES: [&str; 3] = ["api", "cart", "db"];

/// One generated event.
struct Event {
    time: i64,
    service: &'static str,
    duration: f64,
    rate: i64,
    trace: Option<String>,
    span: String,
}

/// Deterministic pseudo-random events: log-spread durations, sample rates 1..5,
/// one in seven without a trace id.
fn events() -> Vec<Event> {
    let mut state = 42u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        (state >> 33) as f64 / (1u64 << 31) as f64
    };
    (0..ROWS)
        .map(|i| {
            let service = SERVICES[i % SERVICES.len()];
            let scale = match service {
                "api" => 1.0,
                "cart" => 10.0,
                _ => 100.0,
            };
            Event {
                time: 1_000_000_000 * i as i64,
                service,
                duration: scale * 10f64.powf(next() * 3.0 - 1.0),
                rate: 1 + (next() * 5.0) as i64,
                trace: (i % 7 != 0).then(|| format!("t{:05}", i / 4)),
                span: format!("s{i:05}"),
            }
        })
        .collect()
}

fn batch_of(events: &[Event]) -> RecordBatch {
    batch(vec![
        ("timestamp", times(events.iter().map(|e| e.time).collect())),
        (
            "service.name",
            strings(events.iter().map(|e| Some(e.service)).collect()),
        ),
        (
            "duration_ms",
            floats(events.iter().map(|e| Some(e.duration)).collect()),
        ),
        (
            "meta.sample_rate",
            ints(events.iter().map(|e| Some(e.rate)).collect()),
        ),
        (
            "trace.trace_id",
            strings(events.iter().map(|e| e.trace.as_deref()).collect()),
        ),
        (
            "trace.span_id",
            strings(events.iter().map(|e| Some(e.span.as_str())).collect()),
        ),
    ])
}

/// The dataset `spans`: the first half sealed in a segment, the rest buffered.
async fn engine_with(events: &[Event], target_partitions: usize) -> QueryEngine {
    let source = TestSource::new();
    let (sealed, buffered) = events.split_at(events.len() / 2);
    let segment = source
        .write_segment("spans/1.parquet", &batch_of(sealed), &[], 512)
        .await;
    source.put(
        "default",
        "spans",
        schema(&[
            ("service.name", FieldType::String),
            ("duration_ms", FieldType::Float),
            ("meta.sample_rate", FieldType::Int),
            ("trace.trace_id", FieldType::String),
            ("trace.span_id", FieldType::String),
        ]),
        vec![segment],
        vec![batch_of(buffered)],
    );
    let config = QueryConfig {
        target_partitions,
        ..QueryConfig::default()
    };
    QueryEngine::with_source(source, config).unwrap()
}

/// The exact weighted lower quantile (the definition the sketch approximates).
fn exact_quantile(mut pairs: Vec<(f64, f64)>, q: f64) -> f64 {
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    if q == 0.0 {
        return pairs[0].0;
    }
    let rank = q * pairs.iter().map(|(_, w)| w).sum::<f64>();
    let mut cumulative = 0.0;
    for (value, weight) in &pairs {
        cumulative += weight;
        if cumulative >= rank {
            return *value;
        }
    }
    pairs[pairs.len() - 1].0
}

fn pairs_of(events: &[Event], service: Option<&str>) -> Vec<(f64, f64)> {
    events
        .iter()
        .filter(|e| service.is_none_or(|s| s == e.service))
        .map(|e| (e.duration, e.rate as f64))
        .collect()
}

fn one_batch(batches: Vec<RecordBatch>) -> RecordBatch {
    arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

fn assert_close(estimate: f64, exact: f64, what: &str) {
    assert!(
        (estimate - exact).abs() <= 0.01 * exact.abs() * (1.0 + 1e-9),
        "{what}: estimate {estimate}, exact {exact}"
    );
}

#[tokio::test]
async fn grouped_weighted_quantiles_are_within_one_percent() {
    let events = events();
    let engine = engine_with(&events, 2).await;
    for q in [0.001, 0.25, 0.5, 0.9, 0.99, 0.999] {
        let sql = format!(
            r#"SELECT "service.name", quarry_quantile(duration_ms, "meta.sample_rate", {q})
               FROM spans GROUP BY 1 ORDER BY 1"#
        );
        let result = one_batch(query(&engine, "default", &sql).await);
        assert_eq!(result.num_rows(), SERVICES.len());
        let names = result.column(0).as_string::<i32>();
        let values = result.column(1).as_primitive::<Float64Type>();
        for row in 0..result.num_rows() {
            let service = names.value(row);
            let exact = exact_quantile(pairs_of(&events, Some(service)), q);
            assert_close(values.value(row), exact, &format!("{service} q={q}"));
        }
    }
}

#[tokio::test]
async fn quantile_extremes_are_exact_and_weights_matter() {
    let events = events();
    let engine = engine_with(&events, 2).await;
    let sql = r#"SELECT quarry_quantile(duration_ms, "meta.sample_rate", 0),
                        quarry_quantile(duration_ms, "meta.sample_rate", 1.0),
                        min(duration_ms), max(duration_ms),
                        quarry_quantile(duration_ms, "meta.sample_rate", 0.5),
                        quarry_quantile(duration_ms, 1, 0.5)
                 FROM spans"#;
    let result = one_batch(query(&engine, "default", sql).await);
    let value = |column: usize| result.column(column).as_primitive::<Float64Type>().value(0);
    assert_eq!(value(0), value(2));
    assert_eq!(value(1), value(3));
    assert_close(
        value(4),
        exact_quantile(pairs_of(&events, None), 0.5),
        "weighted",
    );
    let unweighted: Vec<(f64, f64)> = events.iter().map(|e| (e.duration, 1.0)).collect();
    assert_close(value(5), exact_quantile(unweighted, 0.5), "unweighted");
}

#[tokio::test]
async fn sketches_merge_into_the_same_quantiles() {
    let events = events();
    let engine = engine_with(&events, 2).await;
    let sql = r#"SELECT quarry_sketch_quantile(quarry_sketch_merge(s), 0.99),
                        quarry_sketch_quantile(quarry_sketch_merge(s), 0)
                 FROM (SELECT "service.name", quarry_sketch(duration_ms, "meta.sample_rate") AS s
                       FROM spans GROUP BY 1)"#;
    let result = one_batch(query(&engine, "default", sql).await);
    let p99 = result.column(0).as_primitive::<Float64Type>().value(0);
    let min = result.column(1).as_primitive::<Float64Type>().value(0);
    assert_close(
        p99,
        exact_quantile(pairs_of(&events, None), 0.99),
        "merged p99",
    );
    let exact_min = events
        .iter()
        .map(|e| e.duration)
        .fold(f64::INFINITY, f64::min);
    assert_eq!(min, exact_min);
}

#[tokio::test]
async fn heatmap_buckets_group_natively_and_match_exact_counts() {
    let events = events();
    let engine = engine_with(&events, 2).await;
    let min = events
        .iter()
        .map(|e| e.duration)
        .fold(f64::INFINITY, f64::min);
    let max = events
        .iter()
        .map(|e| e.duration)
        .fold(f64::NEG_INFINITY, f64::max);
    let scheme = HeatmapScheme::choose(min, max, false).unwrap();
    let HeatmapScheme::Log {
        first,
        per_decade,
        decades,
        count,
    } = scheme
    else {
        panic!("three decades of latencies get a log scale: {scheme:?}");
    };
    let sql = format!(
        r#"SELECT quarry_heatmap_bucket(duration_ms, 'log', {first}, {per_decade}, {decades}, {count})
                  AS bucket, sum("meta.sample_rate")
           FROM spans GROUP BY 1 ORDER BY 1"#
    );
    let result = one_batch(query(&engine, "default", &sql).await);
    let mut expected: BTreeMap<i32, i64> = BTreeMap::new();
    for event in &events {
        let bucket = scheme.bucket_of(event.duration).unwrap();
        *expected.entry(bucket).or_default() += event.rate;
    }
    let buckets = result.column(0).as_primitive::<Int32Type>();
    let counts = result.column(1).as_primitive::<Int64Type>();
    let actual: BTreeMap<i32, i64> = (0..result.num_rows())
        .map(|row| (buckets.value(row), counts.value(row)))
        .collect();
    assert_eq!(actual, expected);
    assert!(actual.len() > 20, "the data spreads over many buckets");
    // Each counted value lies inside its bucket's boundaries.
    let edges = scheme.edges();
    for event in &events {
        let bucket = scheme.bucket_of(event.duration).unwrap() as usize;
        assert!(edges[bucket] <= event.duration && event.duration < edges[bucket + 1]);
    }
}

/// Exemplars of each service: (span id, trace id, value) in output order.
async fn exemplars_by_service(
    engine: &QueryEngine,
) -> BTreeMap<String, Vec<(String, Option<String>, f64)>> {
    let sql = r#"SELECT "service.name",
                        quarry_exemplars(duration_ms, "timestamp", "trace.trace_id",
                                         "trace.span_id", 'spans') AS ex
                 FROM spans GROUP BY 1"#;
    let result = one_batch(query(engine, "default", sql).await);
    let names = result.column(0).as_string::<i32>();
    let lists = result.column(1).as_list::<i32>();
    let mut out = BTreeMap::new();
    for row in 0..result.num_rows() {
        let items = lists.value(row);
        let items = items.as_struct();
        let dataset = items.column_by_name("dataset").unwrap().as_string::<i32>();
        let traces = items.column_by_name("trace_id").unwrap().as_string::<i32>();
        let spans = items.column_by_name("span_id").unwrap().as_string::<i32>();
        let values = items
            .column_by_name("value")
            .unwrap()
            .as_primitive::<Float64Type>();
        let times = items
            .column_by_name("timestamp")
            .unwrap()
            .as_primitive::<TimestampNanosecondType>();
        let picked = (0..items.len())
            .map(|i| {
                assert_eq!(dataset.value(i), "spans");
                assert!(times.is_valid(i));
                (
                    spans.value(i).to_owned(),
                    traces.is_valid(i).then(|| traces.value(i).to_owned()),
                    values.value(i),
                )
            })
            .collect();
        out.insert(names.value(row).to_owned(), picked);
    }
    out
}

#[tokio::test]
async fn exemplars_are_the_slowest_traced_event_and_two_stable_samples() {
    let events = events();
    let engine = engine_with(&events, 2).await;
    let exemplars = exemplars_by_service(&engine).await;
    assert_eq!(exemplars.len(), SERVICES.len());
    for (service, picked) in &exemplars {
        assert_eq!(picked.len(), 3, "{service}");
        let slowest_traced = events
            .iter()
            .filter(|e| e.service == service && e.trace.is_some())
            .max_by(|a, b| a.duration.total_cmp(&b.duration))
            .unwrap();
        assert_eq!(picked[0].0, slowest_traced.span, "{service}: slowest first");
        assert_eq!(picked[0].2, slowest_traced.duration);
        assert!(picked.iter().all(|(_, trace, _)| trace.is_some()));
        assert_ne!(picked[1].0, picked[2].0);
        // The same events with another split into partitions.
        let other = exemplars_by_service(&engine_with(&events, 5).await).await;
        assert_eq!(&other[service], picked, "{service}: deterministic");
    }
}

#[tokio::test]
async fn two_hundred_thousand_groups_fit_a_small_memory_budget() {
    const GROUPS: i64 = 200_000;
    let source = TestSource::new();
    let keys: Vec<Option<i64>> = (0..2 * GROUPS).map(|i| Some(i % GROUPS)).collect();
    let values: Vec<Option<f64>> = (0..2 * GROUPS)
        .map(|i| Some(1.0 + (i / GROUPS) as f64))
        .collect();
    let rows = batch(vec![
        ("timestamp", times((0..2 * GROUPS).collect())),
        ("key", ints(keys)),
        ("duration_ms", floats(values)),
    ]);
    source.put(
        "default",
        "wide",
        schema(&[("key", FieldType::Int), ("duration_ms", FieldType::Float)]),
        Vec::new(),
        vec![rows],
    );
    let config = QueryConfig {
        target_partitions: 2,
        memory_limit_bytes: 256 << 20,
        ..QueryConfig::default()
    };
    let engine = QueryEngine::with_source(Arc::clone(&source) as _, config).unwrap();
    let sql = r#"SELECT count(*), sum(p), min(p), max(p) FROM (
                   SELECT key, quarry_quantile(duration_ms, 1, 1.0) AS p
                   FROM wide GROUP BY key)"#;
    let result = one_batch(query(&engine, "default", sql).await);
    assert_eq!(
        result.column(0).as_primitive::<Int64Type>().value(0),
        GROUPS
    );
    // Every group saw 1.0 and 2.0: its maximum is exactly 2.
    let floats = |column: usize| result.column(column).as_primitive::<Float64Type>().value(0);
    assert_eq!(floats(1), 2.0 * GROUPS as f64);
    assert_eq!((floats(2), floats(3)), (2.0, 2.0));
}

#[tokio::test]
async fn expression_helpers_plan_through_the_dataframe_api() {
    use datafusion::common::Column;
    use datafusion::functions_aggregate::expr_fn::sum;
    use datafusion::logical_expr::{Expr, lit};

    let column = |name: &str| Expr::Column(Column::new_unqualified(name));
    let events = events();
    let engine = engine_with(&events, 2).await;
    let session = engine.session("default").unwrap();
    let scheme = HeatmapScheme::choose(0.0, 100_000.0, false).unwrap();
    let frame = session
        .table("spans")
        .await
        .unwrap()
        .aggregate(
            vec![
                quarry_functions::heatmap_bucket_expr(column("duration_ms"), &scheme)
                    .alias("bucket"),
            ],
            vec![
                sum(column("meta.sample_rate")).alias("weight"),
                quarry_functions::quantile_expr(
                    column("duration_ms"),
                    column("meta.sample_rate"),
                    0.5,
                )
                .alias("p50"),
                quarry_functions::exemplars_expr(
                    column("duration_ms"),
                    column("timestamp"),
                    column("trace.trace_id"),
                    column("trace.span_id"),
                    lit("spans"),
                )
                .alias("exemplars"),
            ],
        )
        .unwrap();
    let result = one_batch(frame.collect().await.unwrap());
    let weights = result
        .column_by_name("weight")
        .unwrap()
        .as_primitive::<Int64Type>();
    let total: i64 = weights.iter().flatten().sum();
    assert_eq!(total, events.iter().map(|e| e.rate).sum::<i64>());
    let exemplars = result.column_by_name("exemplars").unwrap().as_list::<i32>();
    assert!((0..result.num_rows()).all(|row| (1..=3).contains(&exemplars.value(row).len())));
}
