//! Query specs run end to end over hand-built datasets.

use quarry_schema::FieldType;
use serde_json::{Value, json};

use super::{QueryResult, QuerySpec, run_query};
use quarry_engine::test_support::*;
use quarry_engine::{QueryEngine, QueryError};

pub(super) const SECOND: i64 = 1_000_000_000;
/// Every test row is within [0, 10 minutes).
const SPEC_TIME: &str = r#""start_time": 0, "end_time": 600"#;

/// A test row: (second, service, duration, sample rate, status).
type Row = (i64, Option<&'static str>, Option<f64>, i64, i64);

pub(super) fn engine_with_spans() -> QueryEngine {
    let source = TestSource::new();
    let rows: Vec<Row> = vec![
        (0, Some("api"), Some(10.0), 1, 200),
        (30, Some("api"), Some(20.0), 2, 200),
        (70, Some("api"), Some(30.0), 1, 500),
        (80, Some("db"), Some(5.0), 4, 200),
        (90, Some("db"), None, 1, 200),
        (130, None, Some(1.0), 1, 404),
    ];
    let batch = batch(vec![
        (
            "timestamp",
            times(rows.iter().map(|r| r.0 * SECOND).collect()),
        ),
        ("service", strings(rows.iter().map(|r| r.1).collect())),
        ("duration_ms", floats(rows.iter().map(|r| r.2).collect())),
        (
            "meta.sample_rate",
            ints(rows.iter().map(|r| Some(r.3)).collect()),
        ),
        ("status", ints(rows.iter().map(|r| Some(r.4)).collect())),
    ]);
    source.put(
        "default",
        "spans",
        schema(&[
            ("service", FieldType::String),
            ("duration_ms", FieldType::Float),
            ("meta.sample_rate", FieldType::Int),
            ("status", FieldType::Int),
        ]),
        Vec::new(),
        vec![batch],
    );
    engine(&source)
}

pub(super) async fn run(engine: &QueryEngine, spec: &str) -> Result<QueryResult, QueryError> {
    let spec = QuerySpec::from_json(spec.as_bytes()).map_err(QueryError::from)?;
    run_query(engine, "default", "spans", &spec, 600 * SECOND, None).await
}

fn groups(result: &QueryResult) -> Vec<(Value, Value)> {
    result
        .groups
        .iter()
        .map(|g| {
            (
                Value::Object(g.key.clone()),
                Value::Object(g.values.clone()),
            )
        })
        .collect()
}

#[tokio::test]
async fn counts_sums_and_averages_are_weighted_by_sample_rate() {
    let engine = engine_with_spans();
    let result = run(
        &engine,
        &format!(
            r#"{{{SPEC_TIME}, "granularity": 60, "calculations": [{{"op": "COUNT"}},
              {{"op": "SUM", "column": "duration_ms"}}, {{"op": "AVG", "column": "duration_ms"}},
              {{"op": "MAX", "column": "status"}}, {{"op": "COUNT_DISTINCT", "column": "status"}}],
              "breakdowns": ["service"]}}"#
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        groups(&result),
        vec![
            (
                json!({"service": "db"}),
                json!({"COUNT": 5, "SUM(duration_ms)": 20.0, "AVG(duration_ms)": 5.0,
                       "MAX(status)": 200, "COUNT_DISTINCT(status)": 1})
            ),
            (
                json!({"service": "api"}),
                json!({"COUNT": 4, "SUM(duration_ms)": 80.0, "AVG(duration_ms)": 20.0,
                       "MAX(status)": 500, "COUNT_DISTINCT(status)": 2})
            ),
            (
                json!({"service": null}),
                json!({"COUNT": 1, "SUM(duration_ms)": 1.0, "AVG(duration_ms)": 1.0,
                       "MAX(status)": 404, "COUNT_DISTINCT(status)": 1})
            ),
        ]
    );
    assert_eq!(result.totals["COUNT"], json!(10));
    assert_eq!(result.stats.rows_matched, 6);
    let api: Vec<(Value, Value)> = result
        .series
        .iter()
        .filter(|p| p.key["service"] == json!("api"))
        .map(|p| (p.time.clone(), p.values["COUNT"].clone()))
        .collect();
    assert_eq!(api, vec![(json!(0), json!(3)), (json!(60), json!(1))]);
    let null_group: Vec<Value> = result
        .series
        .iter()
        .filter(|p| p.key["service"].is_null())
        .map(|p| p.time.clone())
        .collect();
    assert_eq!(null_group, vec![json!(120)]);
}

#[tokio::test]
async fn filters_havings_orders_and_limits_pick_the_groups() {
    let engine = engine_with_spans();
    let result = run(
        &engine,
        &format!(
            r#"{{{SPEC_TIME}, "breakdowns": ["service"],
              "filters": [{{"column": "status", "op": "!=", "value": 500}},
                          {{"column": "service", "op": "exists"}}],
              "orders": [{{"column": "service", "order": "ascending"}}], "limit": 1}}"#
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        groups(&result),
        vec![(json!({"service": "api"}), json!({"COUNT": 3}))]
    );
    assert!(
        result
            .series
            .iter()
            .all(|p| p.key["service"] == json!("api"))
    );

    let result = run(
        &engine,
        &format!(
            r#"{{{SPEC_TIME}, "breakdowns": ["service"],
              "havings": [{{"calculate_op": "COUNT", "op": "<", "value": 5}}],
              "filters": [{{"column": "service", "op": "does-not-start-with", "value": "d"}}]}}"#
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        groups(&result),
        vec![
            (json!({"service": "api"}), json!({"COUNT": 4})),
            (json!({"service": null}), json!({"COUNT": 1})),
        ]
    );
}

#[tokio::test]
async fn calculated_fields_work_in_breakdowns_filters_and_calculations() {
    let engine = engine_with_spans();
    let result = run(
        &engine,
        &format!(
            r#"{{{SPEC_TIME}, "calculated_fields": [
                {{"name": "slow", "expression": "GTE($duration_ms, 20)"}},
                {{"name": "double", "expression": "MUL($duration_ms, 2)"}}],
              "breakdowns": ["slow"], "calculations": [{{"op": "MIN", "column": "double"}}],
              "filters": [{{"column": "double", "op": ">", "value": 3}}],
              "usage_mode": true}}"#
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        groups(&result),
        vec![
            (json!({"slow": true}), json!({"MIN(double)": 40.0})),
            (json!({"slow": false}), json!({"MIN(double)": 10.0})),
        ]
    );
}

#[tokio::test]
async fn bad_specs_name_the_field() {
    let engine = engine_with_spans();
    let cases = [
        (
            r#"{"calculations": [{"op": "COUNT"}, {"op": "P99", "column": "service"}]}"#,
            "calculations[1].column: P99 needs a numeric column; \"service\" is Utf8",
        ),
        (
            r#"{"breakdowns": ["nope"]}"#,
            "breakdowns[0]: unknown column \"nope\"",
        ),
        (
            r#"{"filters": [{"column": "status", "op": "=", "value": "abc"}]}"#,
            "filters[0].value: \"abc\" cannot be compared with a column of type Int64",
        ),
    ];
    for (spec, message) in cases {
        let error = run(&engine, spec).await.unwrap_err();
        assert!(
            matches!(&error, QueryError::InvalidSpec(text) if text == message),
            "{error}"
        );
    }
    let spec = QuerySpec::default();
    let missing = run_query(&engine, "default", "nope", &spec, 0, None).await;
    assert!(matches!(missing, Err(QueryError::DatasetNotFound(_))));
}

#[tokio::test]
async fn without_breakdowns_there_is_one_group_even_with_no_rows() {
    let engine = engine_with_spans();
    let result = run(&engine, r#"{"start_time": 1000, "end_time": 2000}"#)
        .await
        .unwrap();
    assert_eq!(groups(&result), vec![(json!({}), json!({"COUNT": 0}))]);
    assert!(result.series.is_empty());
}

#[tokio::test]
async fn a_heatmap_counts_weighted_values_per_time_and_value_bucket() {
    let engine = engine_with_spans();
    let result = run(
        &engine,
        &format!(
            r#"{{{SPEC_TIME}, "granularity": 60, "calculations": [{{"op": "HEATMAP", "column": "duration_ms"}}, {{"op": "COUNT"}}]}}"#
        ),
    )
    .await
    .unwrap();
    let heatmap = &result.heatmaps[0];
    assert_eq!(heatmap.name, "HEATMAP(duration_ms)");
    assert_eq!(heatmap.times.len(), 10);
    assert_eq!(
        result.groups[0].values.len(),
        1,
        "HEATMAP has no group value"
    );
    let first = heatmap.buckets.first().unwrap();
    let last = heatmap.buckets.last().unwrap();
    assert!(
        first.lower <= 1.0 && last.upper >= 30.0,
        "{first:?} {last:?}"
    );
    // Weighted: 10 (1) + 20 (2) + 30 (1) + 5 (4) + 1 (1); the null duration is not counted.
    let total: f64 = heatmap.totals.iter().map(|t| t.count).sum();
    assert_eq!(total, 9.0);
    let cells: f64 = heatmap.cells.iter().map(|c| c.count).sum();
    assert_eq!(cells, 9.0);
    let bucket_of = |value: f64| {
        heatmap
            .buckets
            .iter()
            .position(|b| {
                b.lower <= value && (value < b.upper || b.index == heatmap.buckets.len() - 1)
            })
            .unwrap()
    };
    let at_zero: Vec<(usize, f64)> = heatmap
        .cells
        .iter()
        .filter(|c| c.time == json!(0))
        .map(|c| (c.bucket, c.count))
        .collect();
    let mut want = vec![(bucket_of(10.0), 1.0), (bucket_of(20.0), 2.0)];
    want.sort_by_key(|w| w.0);
    assert_eq!(at_zero, want);
}

#[tokio::test]
async fn concurrency_counts_spans_in_flight_per_bucket() {
    let source = TestSource::new();
    // (start second, duration ms, service): a 150 s span overlaps buckets 0, 60, 120.
    let rows: Vec<(i64, f64, &str)> = vec![
        (10, 150_000.0, "a"),
        (20, 1_000.0, "a"),
        (70, 5_000.0, "a"),
        (75, 1_000.0, "b"),
    ];
    let batch = batch(vec![
        (
            "timestamp",
            times(rows.iter().map(|r| r.0 * SECOND).collect()),
        ),
        (
            "duration_ms",
            floats(rows.iter().map(|r| Some(r.1)).collect()),
        ),
        ("svc", strings(rows.iter().map(|r| Some(r.2)).collect())),
    ]);
    source.put(
        "default",
        "spans",
        schema(&[
            ("duration_ms", FieldType::Float),
            ("svc", FieldType::String),
        ]),
        Vec::new(),
        vec![batch],
    );
    let engine = engine(&source);
    let result = run(
        &engine,
        &format!(
            r#"{{{SPEC_TIME}, "granularity": 60, "breakdowns": ["svc"],
              "calculations": [{{"op": "COUNT"}}, {{"op": "CONCURRENCY"}}]}}"#
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        groups(&result),
        vec![
            (json!({"svc": "a"}), json!({"COUNT": 3, "CONCURRENCY": 2})),
            (json!({"svc": "b"}), json!({"COUNT": 1, "CONCURRENCY": 1})),
        ]
    );
    let a: Vec<(Value, Value, Value)> = result
        .series
        .iter()
        .filter(|p| p.key["svc"] == json!("a"))
        .map(|p| {
            (
                p.time.clone(),
                p.values["COUNT"].clone(),
                p.values["CONCURRENCY"].clone(),
            )
        })
        .collect();
    assert_eq!(
        a,
        vec![
            (json!(0), json!(2), json!(2)),
            (json!(60), json!(1), json!(2)),
            (json!(120), Value::Null, json!(1)),
        ]
    );
    assert_eq!(result.totals["CONCURRENCY"], json!(3));
    let error = run(
        &engine,
        r#"{"calculations": [{"op": "CONCURRENCY"}], "orders": [{"op": "CONCURRENCY"}]}"#,
    )
    .await
    .unwrap_err();
    assert!(error.to_string().starts_with("orders[0].op:"), "{error}");
}

/// 200,000 distinct breakdown values aggregate within a small memory pool, and
/// only the top groups (and their series) come back.
#[tokio::test]
async fn a_200k_value_breakdown_runs_in_a_bounded_pool() {
    const GROUPS: i64 = 200_000;
    let source = TestSource::new();
    let names: Vec<String> = (0..GROUPS).map(|i| format!("customer-{i:06}")).collect();
    // Customer i has i % 7 + 1 events' worth of sample rate, at most 7.
    let batch = batch(vec![
        (
            "timestamp",
            times((0..GROUPS).map(|i| (i % 600) * SECOND).collect()),
        ),
        (
            "customer",
            strings(names.iter().map(|n| Some(n.as_str())).collect()),
        ),
        (
            "meta.sample_rate",
            ints((0..GROUPS).map(|i| Some(i % 7 + 1)).collect()),
        ),
    ]);
    source.put(
        "default",
        "spans",
        schema(&[
            ("customer", FieldType::String),
            ("meta.sample_rate", FieldType::Int),
        ]),
        Vec::new(),
        vec![batch],
    );
    let config = quarry_engine::QueryConfig {
        target_partitions: 2,
        memory_limit_bytes: 64 << 20,
        ..quarry_engine::QueryConfig::default()
    };
    let engine = QueryEngine::with_source(source, config).unwrap();
    let result = run(
        &engine,
        &format!(
            r#"{{{SPEC_TIME}, "breakdowns": ["customer"], "limit": 3,
              "calculations": [{{"op": "COUNT"}}, {{"op": "MAX", "column": "meta.sample_rate"}}]}}"#
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        groups(&result)
            .iter()
            .map(|(k, v)| (k["customer"].clone(), v["COUNT"].clone()))
            .collect::<Vec<_>>(),
        vec![
            (json!("customer-000006"), json!(7)),
            (json!("customer-000013"), json!(7)),
            (json!("customer-000020"), json!(7)),
        ]
    );
    assert_eq!(result.totals["MAX(meta.sample_rate)"], json!(7));
    assert_eq!(result.series.len(), 3);
    assert_eq!(result.stats.rows_matched, GROUPS as u64);
}

/// The exemplars' ids are looked up after the pass: by a filter for a few
/// exemplars, by a semi-join for many (more than 512 times). Either way each
/// exemplar carries the ids of the very event it stands for, of its group.
#[tokio::test]
async fn exemplar_ids_are_those_of_the_picked_events_by_filter_and_by_join() {
    const ROWS: i64 = 1200;
    const CUSTOMERS: i64 = 600;
    const STEP_NS: i64 = SECOND / 2;
    let source = TestSource::new();
    let customers: Vec<String> = (0..ROWS)
        .map(|i| format!("c{:04}", i % CUSTOMERS))
        .collect();
    let traces: Vec<String> = (0..ROWS).map(|i| format!("trace-{i}")).collect();
    let spans: Vec<String> = (0..ROWS).map(|i| format!("span-{i}")).collect();
    let batch = batch(vec![
        ("timestamp", times((0..ROWS).map(|i| i * STEP_NS).collect())),
        (
            "customer",
            strings(customers.iter().map(|c| Some(c.as_str())).collect()),
        ),
        (
            "duration_ms",
            floats((0..ROWS).map(|i| Some(i as f64)).collect()),
        ),
        (
            "trace.trace_id",
            strings(traces.iter().map(|t| Some(t.as_str())).collect()),
        ),
        (
            "trace.span_id",
            strings(spans.iter().map(|s| Some(s.as_str())).collect()),
        ),
    ]);
    source.put(
        "default",
        "spans",
        schema(&[
            ("customer", FieldType::String),
            ("duration_ms", FieldType::Float),
            ("trace.trace_id", FieldType::String),
            ("trace.span_id", FieldType::String),
        ]),
        Vec::new(),
        vec![batch],
    );
    let engine = engine(&source);
    for limit in [5, CUSTOMERS] {
        let result = run(
            &engine,
            &format!(
                r#"{{{SPEC_TIME}, "breakdowns": ["customer"], "limit": {limit},
                  "calculations": [{{"op": "MAX", "column": "duration_ms"}}]}}"#
            ),
        )
        .await
        .unwrap();
        assert_eq!(result.groups.len(), limit as usize);
        let mut checked = 0;
        for group in &result.groups {
            let customer = group.key["customer"].as_str().unwrap_or_default();
            // Each customer has two events: the slowest first, then the other.
            assert_eq!(group.exemplars.len(), 2, "{customer}");
            for exemplar in &group.exemplars {
                let nanos = chrono::DateTime::parse_from_rfc3339(&exemplar.timestamp)
                    .ok()
                    .and_then(|t| t.timestamp_nanos_opt())
                    .unwrap_or(-1);
                let row = nanos / STEP_NS;
                assert_eq!(customers[row as usize], customer);
                assert_eq!(exemplar.value, Some(row as f64));
                assert_eq!(
                    exemplar.trace_id.as_deref(),
                    Some(traces[row as usize].as_str())
                );
                assert_eq!(
                    exemplar.span_id.as_deref(),
                    Some(spans[row as usize].as_str())
                );
                checked += 1;
            }
            assert!(group.exemplars[0].value > group.exemplars[1].value);
        }
        assert_eq!(checked, 2 * limit);
    }
}
