//! The sampler end to end in memory: buffering, decisions, late spans, bounds,
//! and recovery from its journal after a crash.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use quarry_ingest::otlp::DatasetBatch;
use quarry_schema::SAMPLE_RATE;
use quarry_schema::fields::{DURATION_MS, ERROR, PARENT_ID, TRACE_ID};

use super::rules::SamplingRules;
use super::*;

/// A span: (trace, parent, error, duration_ms, upstream sample rate).
type Span<'a> = (&'a str, Option<&'a str>, bool, f64, i64);

fn batch(spans: &[Span<'_>]) -> RecordBatch {
    let schema = Schema::new(vec![
        Field::new(TRACE_ID, DataType::Utf8, true),
        Field::new(PARENT_ID, DataType::Utf8, true),
        Field::new(ERROR, DataType::Boolean, true),
        Field::new(DURATION_MS, DataType::Float64, true),
        Field::new(SAMPLE_RATE, DataType::Int64, true),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(StringArray::from_iter_values(spans.iter().map(|s| s.0))),
            Arc::new(StringArray::from_iter(spans.iter().map(|s| s.1))),
            Arc::new(BooleanArray::from_iter(spans.iter().map(|s| Some(s.2)))),
            Arc::new(Float64Array::from_iter_values(spans.iter().map(|s| s.3))),
            Arc::new(Int64Array::from_iter_values(spans.iter().map(|s| s.4))),
        ],
    )
    .unwrap()
}

fn request(dataset: &str, spans: &[Span<'_>]) -> Vec<DatasetBatch> {
    let batch = batch(spans);
    vec![DatasetBatch {
        dataset: dataset.into(),
        rows: batch.num_rows(),
        batch,
    }]
}

fn rules() -> Arc<SamplingRules> {
    let rules: SamplingRules = serde_json::from_str(
        r#"{"decision_wait_ms": 2000, "trace_timeout_ms": 10000, "rules": [
            {"name": "errors", "error": true, "sample_rate": 1},
            {"name": "slow", "min_duration_ms": 1000, "sample_rate": 1},
            {"name": "never", "conditions": [{"field": "duration_ms", "op": "<", "value": 0.5}], "drop": true},
            {"name": "rest", "sample_rate": 7}
        ]}"#,
    )
    .unwrap();
    rules.validate("sampling").unwrap();
    Arc::new(rules)
}

fn sampler(dir: &std::path::Path) -> Sampler {
    let sampler = Sampler::new(SamplingSettings::in_dir(dir.to_owned()));
    let recovered = sampler.recover(Instant::now()).unwrap();
    assert!(recovered.is_empty());
    sampler
}

/// (trace id, sample rate) of every kept row.
fn kept_rows(kept: &KeptTraces) -> Vec<(String, i64)> {
    let mut rows = Vec::new();
    for part in &kept.rows {
        let ids = part
            .batch
            .column_by_name(TRACE_ID)
            .unwrap()
            .as_string::<i32>();
        let rates = part
            .batch
            .column_by_name(SAMPLE_RATE)
            .unwrap()
            .as_primitive::<Int64Type>();
        for row in 0..part.batch.num_rows() {
            rows.push((ids.value(row).to_owned(), rates.value(row)));
        }
    }
    rows.sort();
    rows
}

fn decide(sampler: &Sampler, now: Instant) -> KeptTraces {
    let rules = rules();
    sampler
        .decide_due(&|_| Some(Arc::clone(&rules)), now)
        .unwrap()
}

#[test]
fn traces_wait_for_their_root_then_are_kept_whole_with_their_rates() {
    let dir = tempfile::tempdir().unwrap();
    let sampler = sampler(dir.path());
    let start = Instant::now();
    // t-err: an error in a child; t-slow: a slow root; t-fast: dropped by "never".
    let first = request(
        "shop",
        &[
            ("t-err", Some("r"), true, 1.0, 1),
            ("t-slow", None, false, 1500.0, 2),
            ("t-fast", None, false, 0.1, 1),
            ("", None, false, 1.0, 1),
        ],
    );
    let now_rows = sampler.sample("prod", &rules(), first, start).unwrap();
    // Only the row without a trace id is written at once.
    assert_eq!(now_rows.iter().map(|b| b.rows).sum::<usize>(), 1);
    let later = start + Duration::from_millis(500);
    sampler
        .sample(
            "prod",
            &rules(),
            request("db", &[("t-err", None, false, 3.0, 1)]),
            later,
        )
        .unwrap();
    assert!(decide(&sampler, start + Duration::from_millis(1999)).is_empty());
    let kept = decide(&sampler, start + Duration::from_millis(2000));
    // t-slow and t-fast are due (roots at start); t-err's root came later.
    assert_eq!(kept_rows(&kept), [("t-slow".to_owned(), 2)]);
    let kept = decide(&sampler, later + Duration::from_millis(2000));
    assert_eq!(
        kept_rows(&kept),
        [("t-err".to_owned(), 1), ("t-err".to_owned(), 1)]
    );
    sampler.applied(&kept.traces).unwrap();
    // Late spans follow their trace's decision.
    let late = sampler
        .sample(
            "prod",
            &rules(),
            request(
                "db",
                &[
                    ("t-slow", Some("r"), false, 1.0, 3),
                    ("t-fast", Some("r"), false, 1.0, 1),
                ],
            ),
            later + Duration::from_secs(3),
        )
        .unwrap();
    assert_eq!(late.len(), 1);
    let rates = late[0]
        .batch
        .column_by_name(SAMPLE_RATE)
        .unwrap()
        .as_primitive::<Int64Type>();
    assert_eq!((late[0].rows, rates.value(0)), (1, 3));
    let text = metrics_text(&sampler);
    assert!(
        text.contains(r#"quarry_sampling_traces_total{environment="prod",dataset="shop",rule="never",decision="dropped"} 1"#),
        "{text}"
    );
}

fn metrics_text(sampler: &Sampler) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    sampler.register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    text
}

#[test]
fn the_rest_is_kept_at_its_rate_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let sampler = sampler(dir.path());
    let start = Instant::now();
    let ids: Vec<String> = (0..7_000).map(|i| format!("{i:032x}")).collect();
    let spans: Vec<Span<'_>> = ids
        .iter()
        .map(|id| (id.as_str(), None, false, 5.0, 1))
        .collect();
    sampler
        .sample("prod", &rules(), request("shop", &spans), start)
        .unwrap();
    let kept = decide(&sampler, start + Duration::from_secs(2));
    let rows = kept_rows(&kept);
    // Binomial(7000, 1/7): mean 1000, sigma 29.3; 5 sigma is 146.
    assert!((854..=1146).contains(&rows.len()), "{}", rows.len());
    assert!(
        rows.iter()
            .all(|(id, rate)| *rate == 7 && keep::keeps(id, 7))
    );
}

#[test]
fn a_full_buffer_decides_its_oldest_traces_early() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = SamplingSettings::in_dir(dir.path().to_owned());
    settings.max_buffered_spans = 10;
    let sampler = Sampler::new(settings);
    sampler.recover(Instant::now()).unwrap();
    let start = Instant::now();
    let ids: Vec<String> = (0..20).map(|i| format!("t{i:02}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let at = start + Duration::from_millis(i as u64);
        sampler
            .sample(
                "prod",
                &rules(),
                request("shop", &[(id.as_str(), Some("p"), true, 1.0, 1)]),
                at,
            )
            .unwrap();
    }
    let kept = decide(&sampler, start + Duration::from_millis(100));
    // 20 spans brought back to 9: the 11 oldest, all errors, kept.
    let expected: Vec<(String, i64)> = ids[..11].iter().map(|id| (id.clone(), 1)).collect();
    assert_eq!(kept_rows(&kept), expected);
    assert!(
        metrics_text(&sampler)
            .contains(r#"quarry_sampling_early_decisions_total{environment="prod"} 11"#)
    );
}

#[test]
fn after_a_crash_undecided_traces_wait_again_and_kept_ones_are_written_whole() {
    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    {
        let sampler = sampler(dir.path());
        let spans = [
            ("t-kept", None, true, 1.0, 1),
            ("t-kept", Some("a"), false, 1.0, 1),
            ("t-dropped", None, false, 0.1, 1),
            ("t-open", Some("a"), false, 1.0, 1),
        ];
        sampler
            .sample("prod", &rules(), request("shop", &spans), start)
            .unwrap();
        sampler
            .sample(
                "prod",
                &rules(),
                request("db", &[("t-kept", Some("a"), false, 2.0, 5)]),
                start,
            )
            .unwrap();
        let kept = decide(&sampler, start + Duration::from_secs(2));
        assert_eq!(kept_rows(&kept).len(), 3);
        // Killed before the kept rows were written (applied never recorded).
    }
    let restarted = Sampler::new(SamplingSettings::in_dir(dir.path().to_owned()));
    let recovered = restarted.recover(Instant::now()).unwrap();
    assert_eq!(
        kept_rows(&recovered),
        [
            ("t-kept".to_owned(), 1),
            ("t-kept".to_owned(), 1),
            ("t-kept".to_owned(), 5)
        ]
    );
    assert_eq!(recovered.traces.len(), 1);
    // t-open waits again (no root: until its timeout).
    {
        let state = restarted.state.lock();
        assert_eq!((state.buffer.traces(), state.buffer.spans()), (1, 1));
    }
    restarted.applied(&recovered.traces).unwrap();
    drop(restarted);

    // Applied now: a second restart writes nothing again, and t-open still waits.
    let again = Sampler::new(SamplingSettings::in_dir(dir.path().to_owned()));
    let recovered = again.recover(Instant::now()).unwrap();
    assert!(recovered.is_empty(), "{recovered:?}");
    let later = Instant::now() + Duration::from_secs(10);
    let kept = decide(&again, later);
    assert_eq!(
        kept_rows(&kept).len(),
        usize::from(keep::keeps("t-open", 7))
    );
    // A late span of the dropped trace is still dropped after the restarts.
    let late = again
        .sample(
            "prod",
            &rules(),
            request("db", &[("t-dropped", Some("x"), false, 1.0, 1)]),
            later,
        )
        .unwrap();
    assert!(late.is_empty());
}

#[test]
fn a_rewritten_journal_keeps_only_what_is_undecided_and_the_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = SamplingSettings::in_dir(dir.path().to_owned());
    settings.journal_rewrite_bytes = 1;
    let start = Instant::now();
    {
        let sampler = Sampler::new(settings.clone());
        sampler.recover(start).unwrap();
        let spans = [
            ("t-kept", None, true, 1.0, 1),
            ("t-dropped", None, false, 0.1, 1),
        ];
        sampler
            .sample("prod", &rules(), request("shop", &spans), start)
            .unwrap();
        let kept = decide(&sampler, start + Duration::from_secs(2));
        sampler.applied(&kept.traces).unwrap();
        let later = start + Duration::from_secs(3);
        let open = [("t-open", Some("a"), false, 1.0, 1)];
        sampler
            .sample("prod", &rules(), request("db", &open), later)
            .unwrap();
        let before = sampler.journal.lock().as_ref().unwrap().bytes();
        sampler.compact_if_grown().unwrap();
        let after = sampler.journal.lock().as_ref().unwrap().bytes();
        assert!(after < before, "{after} >= {before}");
        // Grown by less than twice its rewritten size: not rewritten again.
        sampler.compact_if_grown().unwrap();
        assert_eq!(sampler.journal.lock().as_ref().unwrap().bytes(), after);
    }
    let restarted = Sampler::new(settings);
    let recovered = restarted.recover(Instant::now()).unwrap();
    assert!(recovered.is_empty(), "{recovered:?}");
    {
        let state = restarted.state.lock();
        assert_eq!((state.buffer.traces(), state.buffer.spans()), (1, 1));
    }
    let now = Instant::now();
    let late = [
        ("t-kept", Some("x"), false, 1.0, 1),
        ("t-dropped", Some("x"), false, 1.0, 1),
    ];
    let passed = restarted
        .sample("prod", &rules(), request("shop", &late), now)
        .unwrap();
    let ids: Vec<&str> = passed
        .iter()
        .flat_map(|b| {
            let ids = b.batch.column_by_name(TRACE_ID).unwrap().as_string::<i32>();
            (0..b.rows).map(move |row| ids.value(row))
        })
        .collect();
    assert_eq!(ids, ["t-kept"]);
}

#[test]
fn past_twice_its_bounds_the_buffer_refuses_requests() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = SamplingSettings::in_dir(dir.path().to_owned());
    settings.max_buffered_spans = 2;
    let sampler = Sampler::new(settings);
    sampler.recover(Instant::now()).unwrap();
    let now = Instant::now();
    let spans = [
        ("a", Some("p"), false, 1.0, 1),
        ("b", Some("p"), false, 1.0, 1),
        ("c", Some("p"), false, 1.0, 1),
        ("d", Some("p"), false, 1.0, 1),
    ];
    sampler
        .sample("prod", &rules(), request("shop", &spans), now)
        .unwrap();
    let refused = sampler.sample("prod", &rules(), request("shop", &spans[..1]), now);
    assert!(
        matches!(refused, Err(SamplingError::Full { spans: 4, .. })),
        "{refused:?}"
    );
    // Once the oldest are decided early, requests are taken again.
    decide(&sampler, now);
    // 4 spans brought back under 90% of 2: the 3 oldest decided.
    assert_eq!(sampler.state.lock().buffer.spans(), 1);
    sampler
        .sample("prod", &rules(), request("shop", &spans[..1]), now)
        .unwrap();
}
