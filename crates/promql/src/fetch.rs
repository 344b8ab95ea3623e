//! Reading a selector's series through DataFusion.
//!
//! Each dataset of the environment with metric rows is scanned once per
//! selector, with `metric.name`, the time window and the equality matchers as
//! filters, so the scan prunes segments and row groups by them. The other
//! matchers (`!=`, `=~`, `!~`) and empty-value equality are applied to the
//! label sets afterwards, as Prometheus applies them to series.

use std::collections::HashMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use arrow::util::display::array_value_to_string;
use datafusion::common::TableReference;
use datafusion::prelude::{Expr as DfExpr, SessionContext, ident, lit};
use datafusion::scalar::ScalarValue;
use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::VectorSelector;
use quarry_engine::panic_guard::catch_panics;
use quarry_engine::{QueryEngine, QueryError};
use quarry_schema::TIMESTAMP_TZ;
use quarry_schema::fields::{METRIC_NAME, TIMESTAMP, VALUE};

use crate::PromError;
use crate::labels::{Labels, NAME_LABEL, Series, column_of, label_of};

/// Every series of `env` that `selector` (its matchers; not its offset) picks,
/// with their samples from `from_ms` to `to_ms` inclusive.
pub(crate) async fn select(
    engine: &QueryEngine,
    env: &str,
    selector: &VectorSelector,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<Series>, PromError> {
    let matchers = matchers_of(selector);
    let batches = catch_panics(scan_all(engine, env, &matchers, from_ms, to_ms)).await?;
    let mut found: HashMap<Labels, Vec<(i64, f64)>> = HashMap::new();
    for batch in &batches {
        collect_rows(batch, &matchers, &mut found)?;
    }
    let mut series: Vec<Series> = found
        .into_iter()
        .map(|(labels, mut samples)| {
            samples.sort_by_key(|&(time, _)| time);
            // One sample per millisecond: the last written wins, as a
            // Prometheus TSDB keeps one.
            samples.dedup_by(|later, earlier| {
                let same = later.0 == earlier.0;
                if same {
                    earlier.1 = later.1;
                }
                same
            });
            Series { labels, samples }
        })
        .collect();
    series.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(series)
}

/// The selector's matchers, its metric name as a `__name__` matcher among them.
fn matchers_of(selector: &VectorSelector) -> Vec<Matcher> {
    let mut matchers = selector.matchers.matchers.clone();
    if let Some(name) = &selector.name
        && !matchers.iter().any(|matcher| matcher.name == NAME_LABEL)
    {
        matchers.push(Matcher::new(MatchOp::Equal, NAME_LABEL, name));
    }
    matchers
}

async fn scan_all(
    engine: &QueryEngine,
    env: &str,
    matchers: &[Matcher],
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<RecordBatch>, QueryError> {
    let context = engine.session(env)?;
    let mut batches = Vec::new();
    for dataset in engine.dataset_names(env).await? {
        batches.extend(scan_dataset(&context, &dataset, matchers, from_ms, to_ms).await?);
    }
    Ok(batches)
}

async fn scan_dataset(
    context: &SessionContext,
    dataset: &str,
    matchers: &[Matcher],
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<RecordBatch>, QueryError> {
    let frame = context.table(TableReference::bare(dataset)).await?;
    let schema = frame.schema().clone();
    let has = |column: &str| schema.field_with_unqualified_name(column).ok();
    if has(METRIC_NAME).is_none() || has(VALUE).is_none() {
        return Ok(Vec::new());
    }
    let mut filter = ident(TIMESTAMP)
        .gt_eq(timestamp_literal(from_ms))
        .and(ident(TIMESTAMP).lt_eq(timestamp_literal(to_ms)))
        .and(ident(METRIC_NAME).is_not_null());
    for matcher in matchers {
        let MatchOp::Equal = matcher.op else { continue };
        if matcher.value.is_empty() {
            continue;
        }
        let column = column_of(&matcher.name);
        match has(column) {
            Some(field) if field.data_type() == &DataType::Utf8 => {
                filter = filter.and(ident(column).eq(lit(matcher.value.clone())));
            }
            Some(_) => {}
            // No column: no row of this dataset has the label, so none matches.
            None if variant_columns(&schema, column) => {}
            None => return Ok(Vec::new()),
        }
    }
    Ok(frame.filter(filter)?.collect().await?)
}

/// Whether `schema` holds `column` only under a type variant's name (`code#int`).
fn variant_columns(schema: &datafusion::common::DFSchema, column: &str) -> bool {
    schema
        .fields()
        .iter()
        .any(|field| label_of(field.name()) == Some(column) && field.name() != column)
}

fn timestamp_literal(ms: i64) -> DfExpr {
    lit(ScalarValue::TimestampNanosecond(
        Some(ms.saturating_mul(1_000_000)),
        Some(TIMESTAMP_TZ.into()),
    ))
}

/// Adds the rows of `batch` that `matchers` pick to `found`, by label set.
fn collect_rows(
    batch: &RecordBatch,
    matchers: &[Matcher],
    found: &mut HashMap<Labels, Vec<(i64, f64)>>,
) -> Result<(), PromError> {
    let schema = batch.schema();
    let column = |name: &str| {
        schema
            .index_of(name)
            .map(|index| batch.column(index))
            .map_err(|error| PromError::Execution(error.to_string()))
    };
    let times = cast(column(TIMESTAMP)?, &DataType::Int64)?;
    let times = times.as_primitive::<Int64Type>();
    let values = cast(column(VALUE)?, &DataType::Float64)?;
    let values = values.as_primitive::<Float64Type>();
    let label_columns: Vec<(&str, &dyn Array)> = schema
        .fields()
        .iter()
        .zip(batch.columns())
        .filter_map(|(field, array)| label_of(field.name()).map(|label| (label, array.as_ref())))
        .collect();
    for row in 0..batch.num_rows() {
        if times.is_null(row) || values.is_null(row) {
            continue;
        }
        let mut labels = Labels::new();
        for (label, array) in &label_columns {
            if array.is_valid(row) {
                let text = array_value_to_string(*array, row)?;
                if !text.is_empty() {
                    labels.insert((*label).to_owned(), text);
                }
            }
        }
        let picked = matchers
            .iter()
            .all(|matcher| matcher.is_match(labels.get(&matcher.name).map_or("", String::as_str)));
        if picked {
            found
                .entry(labels)
                .or_default()
                .push((times.value(row).div_euclid(1_000_000), values.value(row)));
        }
    }
    Ok(())
}

impl From<arrow::error::ArrowError> for PromError {
    fn from(error: arrow::error::ArrowError) -> Self {
        PromError::Execution(error.to_string())
    }
}
