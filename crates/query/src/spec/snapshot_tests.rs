//! The query-spec contract as `insta` snapshots (`snapshots/`): the responses of
//! representative specs, the plans a few specs compile to, and the messages of
//! invalid specs. A changed answer fails `cargo test` (scripts/test and CI run it
//! with `INSTA_UPDATE=no`); after an intended change, review and accept with
//! `cargo insta review`, or rewrite them with
//! `INSTA_UPDATE=always cargo test --workspace spec::snapshot_tests` and read the diff.

use quarry_engine::QueryEngine;
use quarry_engine::test_support::*;
use quarry_schema::FieldType;

use super::plan::compile;
use super::tests::{SECOND, engine_with_spans, run};
use super::{QuerySpec, ValidSpec};

/// Every test row is within [0, 10 minutes).
const RANGE: &str = r#""start_time": 0, "end_time": 600"#;

/// Runs `spec` (the range is added) over `spans` and snapshots the JSON response;
/// the wall time is redacted.
async fn assert_response(engine: &QueryEngine, name: &str, spec: &str) {
    let spec = format!("{{{RANGE}, {spec}}}");
    let result = run(engine, &spec)
        .await
        .unwrap_or_else(|error| panic!("{name}: {error}"));
    insta::with_settings!({ description => spec.as_str(), omit_expression => true }, {
        insta::assert_json_snapshot!(name, result, { ".stats.elapsed_ms" => "[elapsed_ms]" });
    });
}

#[tokio::test]
async fn responses() {
    let engine = engine_with_spans();
    let cases = [
        ("count", r#""calculations": [{"op": "COUNT"}]"#),
        (
            "breakdown_weighted_aggregates",
            r#""breakdowns": ["service"], "calculations": [{"op": "COUNT"},
               {"op": "SUM", "column": "duration_ms"}, {"op": "AVG", "column": "duration_ms"},
               {"op": "MIN", "column": "duration_ms"}, {"op": "MAX", "column": "status"}]"#,
        ),
        (
            "time_series",
            r#""granularity": 60, "breakdowns": ["status"], "calculations": [{"op": "COUNT"}]"#,
        ),
        (
            "heatmap",
            r#""granularity": 120, "calculations": [{"op": "HEATMAP", "column": "duration_ms"}]"#,
        ),
        (
            "p99_and_percentiles",
            r#""breakdowns": ["service"], "calculations": [{"op": "P99", "column": "duration_ms"},
               {"op": "P50", "column": "duration_ms"}, {"op": "P001", "column": "duration_ms"}]"#,
        ),
        (
            "count_distinct",
            r#""calculations": [{"op": "COUNT_DISTINCT", "column": "status"},
               {"op": "COUNT_DISTINCT", "column": "service"}]"#,
        ),
        (
            "filters_and",
            r#""filters": [{"column": "status", "op": "in", "value": [200, 404]},
               {"column": "duration_ms", "op": ">=", "value": 5}],
               "breakdowns": ["service"]"#,
        ),
        (
            "filters_or",
            r#""filter_combination": "OR",
               "filters": [{"column": "service", "op": "starts-with", "value": "d"},
               {"column": "service", "op": "does-not-exist"}], "breakdowns": ["service"]"#,
        ),
        (
            "order_by_calculation_with_limit",
            r#""breakdowns": ["service"], "calculations": [{"op": "MAX", "column": "duration_ms"}],
               "orders": [{"op": "MAX", "column": "duration_ms", "order": "ascending"}], "limit": 2"#,
        ),
        (
            "order_by_breakdown_and_having",
            r#""breakdowns": ["service"], "orders": [{"column": "service", "order": "descending"}],
               "havings": [{"calculate_op": "COUNT", "op": ">=", "value": 4}]"#,
        ),
        (
            "calculated_fields",
            r#""calculated_fields": [{"name": "slow", "expression": "GTE($duration_ms, 20)"},
               {"name": "ms_x2", "expression": "MUL($duration_ms, 2)"}],
               "breakdowns": ["slow"], "calculations": [{"op": "SUM", "column": "ms_x2"}]"#,
        ),
        (
            "usage_mode_unweighted",
            r#""usage_mode": true, "breakdowns": ["service"], "calculations": [{"op": "COUNT"}]"#,
        ),
        (
            "no_rows",
            r#""filters": [{"column": "service", "op": "=", "value": "nope"}],
               "calculations": [{"op": "COUNT"}, {"op": "P99", "column": "duration_ms"}]"#,
        ),
    ];
    for (name, spec) in cases {
        assert_response(&engine, name, spec).await;
    }
}

/// Two datasets with different columns, queried together as `__all__`.
#[tokio::test]
async fn all_datasets() {
    let source = TestSource::new();
    for (dataset, service, durations) in [("api", "api", [1.0, 2.0]), ("db", "db", [30.0, 40.0])] {
        let rows = batch(vec![
            ("timestamp", times(vec![10 * SECOND, 70 * SECOND])),
            ("service", strings(vec![Some(service), Some(service)])),
            (
                "duration_ms",
                floats(durations.iter().map(|d| Some(*d)).collect()),
            ),
        ]);
        source.put(
            "default",
            dataset,
            schema(&[
                ("service", FieldType::String),
                ("duration_ms", FieldType::Float),
            ]),
            Vec::new(),
            vec![rows],
        );
    }
    let engine = engine(&source);
    let spec = format!(
        r#"{{{RANGE}, "breakdowns": ["service"],
            "calculations": [{{"op": "COUNT"}}, {{"op": "MAX", "column": "duration_ms"}}]}}"#
    );
    let spec = QuerySpec::from_json(spec.as_bytes()).unwrap();
    let result = super::run_query(&engine, "default", "__all__", &spec, 600 * SECOND, None)
        .await
        .unwrap();
    insta::assert_json_snapshot!("all_datasets", result, { ".stats.elapsed_ms" => "[elapsed_ms]" });
}

/// The DataFusion logical plan of the rows a spec reads (`display_indent`), then
/// each calculation's partial aggregates and final expression.
async fn plan_text(engine: &QueryEngine, spec: &str) -> String {
    let spec = QuerySpec::from_json(format!("{{{RANGE}, {spec}}}").as_bytes()).unwrap();
    let valid = ValidSpec::new(&spec, 600 * SECOND).unwrap();
    let context = engine.session("default").unwrap();
    let plan = compile(&context, "spans", valid).await.unwrap();
    let mut text = format!("base:\n{}\n", plan.base.logical_plan().display_indent());
    for (index, calc) in plan.calcs.iter().enumerate() {
        match calc {
            Some(calc) => {
                let partials: Vec<String> = calc.partials.iter().map(ToString::to_string).collect();
                text.push_str(&format!(
                    "calculation {index}:\n  partials: {}\n  final: {}\n",
                    partials.join(", "),
                    calc.final_expr
                ));
            }
            None => text.push_str(&format!("calculation {index}: heatmap\n")),
        }
    }
    text
}

#[tokio::test]
async fn plans() {
    let engine = engine_with_spans();
    let cases = [
        ("plan_count", r#""calculations": [{"op": "COUNT"}]"#),
        (
            "plan_breakdown_filter_p99",
            r#""breakdowns": ["service"], "granularity": 60,
               "filters": [{"column": "status", "op": "!=", "value": 500}],
               "calculations": [{"op": "P99", "column": "duration_ms"},
               {"op": "COUNT_DISTINCT", "column": "status"}]"#,
        ),
        (
            "plan_calculated_field_usage_mode",
            r#""usage_mode": true, "calculated_fields":
               [{"name": "slow", "expression": "GTE($duration_ms, 20)"}],
               "breakdowns": ["slow"], "calculations": [{"op": "AVG", "column": "duration_ms"}]"#,
        ),
        (
            "plan_heatmap",
            r#""calculations": [{"op": "HEATMAP", "column": "duration_ms"}, {"op": "COUNT"}]"#,
        ),
    ];
    for (name, spec) in cases {
        let text = plan_text(&engine, spec).await;
        insta::with_settings!({ description => spec, omit_expression => true }, {
            insta::assert_snapshot!(name, text);
        });
    }
}

#[tokio::test]
async fn errors() {
    let engine = engine_with_spans();
    let cases = [
        r#"{"calculations": [{"op": "P42", "column": "duration_ms"}]}"#,
        r#"{"calculations": [{"op": "SUM"}]}"#,
        r#"{"calculations": [{"op": "AVG", "column": "service"}]}"#,
        r#"{"calculations": [{"op": "COUNT", "column": 7}]}"#,
        r#"{"breakdowns": ["nope"]}"#,
        r#"{"filters": [{"column": "status", "op": "~", "value": 1}]}"#,
        r#"{"filters": [{"column": "status", "op": "=", "value": "abc"}]}"#,
        r#"{"filters": [{"column": "status", "op": "in", "value": 200}]}"#,
        r#"{"filters": [{"column": "status", "op": "exists", "value": 1}]}"#,
        r#"{"filter_combination": "XOR"}"#,
        r#"{"start_time": 600, "end_time": 0}"#,
        r#"{"start_time": "yesterday"}"#,
        r#"{"time_range": -5}"#,
        r#"{"start_time": 0, "end_time": 600, "granularity": 0.001}"#,
        r#"{"limit": 0}"#,
        r#"{"limit": 1000000}"#,
        r#"{"orders": [{"op": "P99", "column": "duration_ms"}]}"#,
        r#"{"orders": [{"column": "service", "order": "sideways"}]}"#,
        r#"{"havings": [{"calculate_op": "COUNT", "op": "~", "value": 1}]}"#,
        r#"{"calculated_fields": [{"name": "x", "expression": "NOPE($status)"}]}"#,
        r#"{"calculated_fields": [{"name": "x", "expression": "GT($status"}]}"#,
        r#"{"source": "rollup"}"#,
        r#"[]"#,
    ];
    let mut text = String::new();
    for spec in cases {
        let message = match run(&engine, spec).await {
            Ok(_) => "(accepted)".to_owned(),
            Err(error) => error.to_string(),
        };
        text.push_str(&format!("{spec}\n  => {message}\n"));
    }
    insta::assert_snapshot!("errors", text);
}
