//! Rollup answers against raw answers over the same rows: generated queries,
//! maintained and backfilled segments, pending segments and buffered rows.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use object_store::local::LocalFileSystem;
use quarry_segment_store::{MeasureOp, RollupDefinition, RollupMeasure, Store, StoreConfig};
use serde_json::{Value, json};

use super::{RollupRewrite, RollupSettings, create_rollup, get_rollup};
use quarry_engine::test_support::{batch, floats, ints, strings, times};
use quarry_engine::{QueryConfig, QueryEngine};
use quarry_query::spec::{QueryResult, QuerySpec, run_query};

/// 2023-11-14T22:00:00Z, on an hour boundary.
const START_NS: i64 = 1_699_999_200_000_000_000;
const START_S: i64 = START_NS / 1_000_000_000;
const MINUTE_NS: i64 = 60_000_000_000;
const HOUR_NS: i64 = 60 * MINUTE_NS;
const ENV: &str = "default";
const DATASET: &str = "api";

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const SERVICES: [Option<&str>; 4] = [Some("api"), Some("db"), Some("web"), None];
const STATUSES: [i64; 3] = [200, 404, 500];

fn events(rng: &mut Rng, rows: usize, start_ns: i64, span_ns: i64) -> RecordBatch {
    let mut stamp = Vec::new();
    let mut service = Vec::new();
    let mut status = Vec::new();
    let mut ms = Vec::new();
    let mut bytes = Vec::new();
    let mut rate = Vec::new();
    for _ in 0..rows {
        stamp.push(start_ns + (rng.next() % span_ns as u64) as i64);
        service.push(SERVICES[rng.below(4) as usize]);
        status.push(Some(STATUSES[rng.below(3) as usize]));
        ms.push((rng.below(10) > 0).then(|| rng.below(100_000) as f64 / 7.0));
        bytes.push((rng.below(5) > 0).then(|| rng.below(10_000) as i64 - 100));
        rate.push(Some(1 + rng.below(4) as i64));
    }
    batch(vec![
        ("timestamp", times(stamp)),
        ("service", strings(service)),
        ("status", ints(status)),
        ("ms", floats(ms)),
        ("bytes", ints(bytes)),
        ("meta.sample_rate", ints(rate)),
    ])
}

fn measure(op: MeasureOp, column: Option<&str>) -> RollupMeasure {
    RollupMeasure {
        op,
        column: column.map(str::to_owned),
    }
}

fn definition() -> RollupDefinition {
    RollupDefinition {
        name: "by_service".into(),
        granularity: 60,
        dimensions: vec!["service".into(), "status".into()],
        measures: vec![
            measure(MeasureOp::Count, None),
            measure(MeasureOp::Sum, Some("ms")),
            measure(MeasureOp::Min, Some("ms")),
            measure(MeasureOp::Max, Some("ms")),
            measure(MeasureOp::Sum, Some("bytes")),
            measure(MeasureOp::Max, Some("bytes")),
        ],
        filters: vec![],
    }
}

async fn open(dir: &std::path::Path) -> Arc<Store> {
    open_with(dir, |_| {}).await
}

async fn open_with(dir: &std::path::Path, configure: impl FnOnce(&mut StoreConfig)) -> Arc<Store> {
    let objects = dir.join("objects");
    std::fs::create_dir_all(&objects).unwrap();
    let mut config = StoreConfig::new(dir.join("wal"));
    config.seal_max_age = std::time::Duration::from_secs(3600);
    configure(&mut config);
    Store::open(
        config,
        Arc::new(LocalFileSystem::new_with_prefix(objects).unwrap()),
    )
    .await
    .unwrap()
}

fn new_engine(store: &Arc<Store>) -> Arc<QueryEngine> {
    Arc::new(QueryEngine::new(Arc::clone(store), QueryConfig::default()).unwrap())
}

/// Runs `spec` (JSON) over the dataset, forcing raw rows when `raw`.
async fn answer(engine: &QueryEngine, spec: &Value, raw: bool) -> QueryResult {
    let mut spec = spec.clone();
    if raw {
        spec["source"] = json!("raw");
    }
    let parsed = QuerySpec::from_value(spec.clone()).unwrap();
    run_query(
        engine,
        ENV,
        DATASET,
        &parsed,
        START_NS + 24 * HOUR_NS,
        Some(&RollupRewrite),
    )
    .await
    .unwrap_or_else(|error| panic!("{spec}: {error}"))
}

/// Whether two JSON values agree: numbers within a relative 1e-9 (float sums
/// depend on the order of addition), everything else exactly.
fn agree(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            (x - y).abs() <= 1e-9 * x.abs().max(1.0)
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| agree(v, w)))
        }
        _ => a == b,
    }
}

/// Groups and series points by their key, for comparisons independent of order.
fn keyed(result: &QueryResult) -> (BTreeMap<String, Value>, BTreeMap<String, Value>) {
    let groups = result
        .groups
        .iter()
        .map(|g| {
            (
                Value::Object(g.key.clone()).to_string(),
                Value::Object(g.values.clone()),
            )
        })
        .collect();
    let series = result
        .series
        .iter()
        .map(|p| {
            (
                format!("{}|{}", p.time, Value::Object(p.key.clone())),
                Value::Object(p.values.clone()),
            )
        })
        .collect();
    (groups, series)
}

fn assert_same(raw: &QueryResult, rolled: &QueryResult, what: &str) {
    assert!(
        agree(
            &Value::Object(raw.totals.clone()),
            &Value::Object(rolled.totals.clone())
        ),
        "{what}: totals raw {:?} rollup {:?}",
        raw.totals,
        rolled.totals
    );
    let (raw_groups, raw_series) = keyed(raw);
    let (groups, series) = keyed(rolled);
    assert_eq!(
        raw_groups.keys().collect::<Vec<_>>(),
        groups.keys().collect::<Vec<_>>(),
        "{what}: groups"
    );
    for (key, values) in &raw_groups {
        assert!(
            agree(values, &groups[key]),
            "{what}: group {key}: raw {values} rollup {}",
            groups[key]
        );
    }
    assert_eq!(
        raw_series.keys().collect::<Vec<_>>(),
        series.keys().collect::<Vec<_>>(),
        "{what}: series points"
    );
    for (key, values) in &raw_series {
        assert!(
            agree(values, &series[key]),
            "{what}: point {key}: raw {values} rollup {}",
            series[key]
        );
    }
}

/// Generated specs: filters on the dimensions, breakdowns, calculations, ranges.
fn generated_specs(rng: &mut Rng, count: usize) -> Vec<Value> {
    let ops = [
        json!({"op": "COUNT"}),
        json!({"op": "SUM", "column": "ms"}),
        json!({"op": "AVG", "column": "ms"}),
        json!({"op": "MIN", "column": "ms"}),
        json!({"op": "MAX", "column": "ms"}),
        json!({"op": "SUM", "column": "bytes"}),
        json!({"op": "AVG", "column": "bytes"}),
        json!({"op": "MAX", "column": "bytes"}),
    ];
    // At most one filter per column, none empty alone: every spec matches rows
    // (the spec compiler refuses an empty breakdown result today).
    let service_filters = [
        json!({"column": "service", "op": "=", "value": "api"}),
        json!({"column": "service", "op": "!=", "value": "db"}),
        json!({"column": "service", "op": "exists"}),
        json!({"column": "service", "op": "does-not-exist"}),
        json!({"column": "service", "op": "starts-with", "value": "w"}),
        json!({"column": "service", "op": "does-not-contain", "value": "e"}),
    ];
    let status_filters = [
        json!({"column": "status", "op": ">=", "value": 400}),
        json!({"column": "status", "op": "in", "value": [200, 500]}),
        json!({"column": "status", "op": "not-in", "value": [404]}),
    ];
    (0..count)
        .map(|_| {
            let mut calculations: Vec<Value> = Vec::new();
            for _ in 0..1 + rng.below(4) {
                let op = ops[rng.below(ops.len() as u64) as usize].clone();
                if !calculations.contains(&op) {
                    calculations.push(op);
                }
            }
            let mut chosen: Vec<Value> = Vec::new();
            if rng.below(2) == 0 {
                chosen.push(service_filters[rng.below(6) as usize].clone());
            }
            if rng.below(2) == 0 {
                chosen.push(status_filters[rng.below(3) as usize].clone());
            }
            let breakdowns = match rng.below(4) {
                0 => json!([]),
                1 => json!(["service"]),
                2 => json!(["status"]),
                _ => json!(["service", "status"]),
            };
            let granularity = [60, 300, 600, 3600][rng.below(4) as usize];
            let start = START_S + rng.below(60) as i64 * 60;
            let end = start + (1 + rng.below(300)) as i64 * 60;
            json!({
                "calculations": calculations,
                "filters": chosen,
                "filter_combination": if rng.below(4) == 0 { "OR" } else { "AND" },
                "breakdowns": breakdowns,
                "start_time": start,
                "end_time": end,
                "granularity": granularity,
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_queries_agree_with_raw_rows_across_maintenance_backfill_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let mut rng = Rng(0x5eed);
    for hour in 0..3 {
        let rows = events(&mut rng, 2_000, START_NS + hour * HOUR_NS, HOUR_NS);
        store.append(ENV, DATASET, rows).await.unwrap();
    }
    store.seal_all().await.unwrap();
    let engine = new_engine(&store);
    // Created after its data: everything is backfilled.
    let status = create_rollup(&store, &engine, ENV, DATASET, definition())
        .await
        .unwrap();
    assert_eq!((status.segments_done, status.segments_total), (0, 3));
    super::maintain::round(&store, &engine, &RollupSettings::default())
        .await
        .unwrap();
    let status = get_rollup(&store, ENV, DATASET, "by_service").unwrap();
    assert_eq!(
        (status.segments_done, status.segments_total, status.complete),
        (3, 3, true)
    );
    // A sealed segment not rolled up yet, and buffered rows: both read raw.
    let late = events(&mut rng, 500, START_NS + 3 * HOUR_NS, HOUR_NS);
    store.append(ENV, DATASET, late).await.unwrap();
    store.seal_all().await.unwrap();
    let buffered = events(&mut rng, 300, START_NS + 30 * MINUTE_NS, 4 * HOUR_NS);
    store.append(ENV, DATASET, buffered).await.unwrap();

    let specs = generated_specs(&mut rng, 60);
    for (index, spec) in specs.iter().enumerate() {
        let raw = answer(&engine, spec, true).await;
        let rolled = answer(&engine, spec, false).await;
        assert_eq!(raw.source, "raw");
        assert_eq!(rolled.source, "rollup:by_service", "spec {index}: {spec}");
        assert_same(&raw, &rolled, &format!("spec {index} {spec}"));
    }

    // After a restart (rows re-read from the WAL, rollups from the manifest) and
    // maintenance of the late segment, answers are unchanged.
    store.shutdown().await.unwrap();
    drop(engine);
    drop(store);
    let store = open(dir.path()).await;
    let engine = new_engine(&store);
    super::maintain::round(&store, &engine, &RollupSettings::default())
        .await
        .unwrap();
    let status = get_rollup(&store, ENV, DATASET, "by_service").unwrap();
    assert_eq!((status.segments_done, status.segments_total), (4, 4));
    for (index, spec) in specs.iter().enumerate().take(20) {
        let raw = answer(&engine, spec, true).await;
        let rolled = answer(&engine, spec, false).await;
        assert_eq!(rolled.source, "rollup:by_service");
        assert_same(&raw, &rolled, &format!("after restart, spec {index}"));
    }
    // Maintenance again changes nothing: each segment is rolled up once.
    super::maintain::round(&store, &engine, &RollupSettings::default())
        .await
        .unwrap();
    let set = store.rollups(ENV, DATASET).unwrap();
    assert_eq!(set.get("by_service").unwrap().segments.len(), 4);
}

/// Compares every spec raw and from the rollup (and, when given, the raw answers
/// with earlier ones).
async fn assert_all_agree(
    engine: &QueryEngine,
    specs: &[Value],
    earlier_raw: Option<&[QueryResult]>,
    what: &str,
) {
    for (index, spec) in specs.iter().enumerate() {
        let raw = answer(engine, spec, true).await;
        let rolled = answer(engine, spec, false).await;
        assert_eq!(rolled.source, "rollup:by_service", "{what}, spec {index}");
        assert_same(&raw, &rolled, &format!("{what}, spec {index} {spec}"));
        if let Some(earlier) = earlier_raw {
            assert_same(&earlier[index], &raw, &format!("{what}, raw spec {index}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_queries_agree_across_compaction_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_with(dir.path(), |config| {
        config.compaction.enabled = false;
        config.retention.max_age = Some(std::time::Duration::from_secs(3600));
    })
    .await;
    let mut rng = Rng(0xc0_ffee);
    // Three seals, each into hours 0, 1 and 2: nine small segments, three per hour.
    for _ in 0..3 {
        for hour in 0..3 {
            let rows = events(&mut rng, 400, START_NS + hour * HOUR_NS, HOUR_NS);
            store.append(ENV, DATASET, rows).await.unwrap();
        }
        store.seal_all().await.unwrap();
    }
    let engine = new_engine(&store);
    create_rollup(&store, &engine, ENV, DATASET, definition())
        .await
        .unwrap();
    super::maintain::round(&store, &engine, &RollupSettings::default())
        .await
        .unwrap();
    let specs = generated_specs(&mut rng, 40);
    let mut before = Vec::new();
    for spec in &specs {
        before.push(answer(&engine, spec, true).await);
    }

    let report = store.compact(Some(2)).await.unwrap();
    assert_eq!(
        (report.merges, report.segments_in, report.rows),
        (3, 9, 3600)
    );
    // Right after the commit the merged segments are pending (read raw), then
    // rolled up again by maintenance: answers agree, and raw answers are unchanged.
    let status = get_rollup(&store, ENV, DATASET, "by_service").unwrap();
    assert_eq!((status.segments_done, status.segments_total), (0, 3));
    assert_all_agree(&engine, &specs, Some(&before), "pending after compaction").await;
    super::maintain::round(&store, &engine, &RollupSettings::default())
        .await
        .unwrap();
    let status = get_rollup(&store, ENV, DATASET, "by_service").unwrap();
    assert_eq!((status.segments_done, status.segments_total), (3, 3));
    assert_all_agree(&engine, &specs, Some(&before), "after compaction").await;

    // One hour of retention at 3:01: hours 0 and 1 (and their rollup rows) go.
    let report = store
        .enforce_retention(START_NS + 3 * HOUR_NS + MINUTE_NS)
        .await
        .unwrap();
    assert_eq!((report.segments_dropped, report.rows_dropped), (2, 2400));
    assert_eq!(report.rollup_files_dropped, 2);
    let snapshot = store.snapshot(ENV, DATASET).unwrap();
    assert_eq!(snapshot.segments.len(), 1);
    assert!(snapshot.segments[0].min_time_ns >= START_NS + 2 * HOUR_NS);
    assert_all_agree(&engine, &specs, None, "after retention").await;
    let status = get_rollup(&store, ENV, DATASET, "by_service").unwrap();
    assert_eq!((status.segments_done, status.segments_total), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_outside_the_rollup_are_left_to_raw_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let mut rng = Rng(7);
    store
        .append(ENV, DATASET, events(&mut rng, 100, START_NS, HOUR_NS))
        .await
        .unwrap();
    let engine = new_engine(&store);
    create_rollup(&store, &engine, ENV, DATASET, definition())
        .await
        .unwrap();
    let base = json!({
        "calculations": [{"op": "COUNT"}],
        "start_time": START_S,
        "end_time": START_S + 3600,
        "granularity": 60,
    });
    let source_of = |change: Value| {
        let mut spec = base.clone();
        for (key, value) in change.as_object().unwrap() {
            spec[key] = value.clone();
        }
        let engine = Arc::clone(&engine);
        async move { answer(&engine, &spec, false).await.source }
    };
    assert_eq!(source_of(json!({})).await, "rollup:by_service");
    let raw = [
        (
            json!({"breakdowns": ["ms"]}),
            "breakdown on a non-dimension",
        ),
        (
            json!({"calculations": [{"op": "MIN", "column": "bytes"}]}),
            "a measure the rollup lacks",
        ),
        (
            json!({"calculations": [{"op": "P99", "column": "ms"}]}),
            "no sketch of ms",
        ),
        (
            json!({"calculations": [{"op": "COUNT_DISTINCT", "column": "service"}]}),
            "count distinct",
        ),
        (json!({"granularity": 90}), "granularity not a multiple"),
        (json!({"start_time": START_S + 1}), "start inside a bucket"),
        (
            json!({"filters": [{"column": "ms", "op": ">", "value": 1}]}),
            "filter on a non-dimension",
        ),
        (json!({"usage_mode": true}), "usage mode"),
        (
            json!({"calculated_fields": [{"name": "x", "expression": "$status"}]}),
            "calculated fields",
        ),
        (json!({"source": "raw"}), "forced raw"),
    ];
    for (change, why) in raw {
        assert_eq!(source_of(change).await, "raw", "{why}");
    }
}
